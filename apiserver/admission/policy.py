"""The ValidatingAdmissionPolicy admission plugin: CEL validations declared in the API
(admissionregistration.k8s.io/v1 ValidatingAdmissionPolicy + ValidatingAdmissionPolicyBinding),
as upstream's admission/plugin/policy/validating.

For each policy whose matchConstraints match the request (rules with resourceNames and
excludeResourceRules, matchPolicy Equivalent, namespace and object selectors — the matching
webhooks use, apiserver.admission.webhook.RequestMatcher) and each of its bindings whose
matchResources match too: the parameters (paramKind + the binding's paramRef: one object by
name or every object a selector picks, from this apiserver's watch cache), then per parameter
the matchConditions, `variables`, the validations and the auditAnnotations, evaluated with
`object`, `oldObject`, `request`, `params`, `namespaceObject`, `authorizer` and `variables` on
the CEL thread (apiserver.celengine). A failed validation does what the binding's
validationActions say: Deny (the request fails with the validation's reason: 422 Invalid by
default), Warn (a `Warning` header) and/or Audit (the audit annotation
validation.policy.admission.k8s.io/validation_failure). Errors — an expression that fails,
a missing parameter object, a namespaced paramKind for a cluster-scoped request — obey the
policy's failurePolicy. auditAnnotations go to the audit log as `<policy>/<key>`.

Not done: static type checking (status.typeChecking stays unset; cel-python checks names only
when evaluating) and the policy status controller.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from apimachinery import errors
from apimachinery.selectors import LabelSelector, LabelSelectorError, selector_from_label_selector
from apiserver.admission import Attributes, matchconditions
from apiserver.admission.webhook import Configurations, Matched, RequestMatcher, request_notes
from apiserver.admission.webhookmatch import (
    Request,
    is_exempt,
    object_selector_matches,
    parse_selector,
    rule_matches,
)
from apiserver.registry.admissionpolicy import REASON_CODES
from apiserver.watchcache import Filter

if TYPE_CHECKING:
    from apiserver.resources import Resource
    from apiserver.server import APIServer

log = logging.getLogger(__name__)

#: evaluation steps for one policy × binding × parameter (4 × a webhook's match conditions,
#: as upstream's per-evaluation cost budget is to theirs)
POLICY_STEPS = 100_000
#: upstream's MaxEvaluatedMessageExpressionSizeBytes and maxAuditAnnotationValueLength
MAX_MESSAGE = 5 * 1024
MAX_ANNOTATION_VALUE = 10 * 1024
VALIDATION_FAILURE = "validation.policy.admission.k8s.io/validation_failure"
NAMESPACE_META = ("name", "generateName", "namespace", "uid", "resourceVersion", "generation", "creationTimestamp",
                  "deletionTimestamp", "deletionGracePeriodSeconds", "labels", "annotations", "finalizers")


class ConfigurationError(Exception):
    """A policy or binding that cannot be applied to this request (obeys failurePolicy)."""


@dataclass(slots=True)
class Policy:
    name: str
    spec: dict[str, Any]
    namespace_selector: LabelSelector | str
    object_selector: LabelSelector | str

    @property
    def failure_policy(self) -> str:
        return self.spec.get("failurePolicy") or "Fail"


@dataclass(slots=True)
class Binding:
    name: str
    spec: dict[str, Any]
    match: dict[str, Any] | None
    namespace_selector: LabelSelector | str
    object_selector: LabelSelector | str

    @property
    def actions(self) -> list[str]:
        return [a for a in self.spec.get("validationActions") or [] if isinstance(a, str)]


def _name(obj: dict[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name") or "")


def _selectors(match: dict[str, Any] | None) -> tuple[LabelSelector | str, LabelSelector | str]:
    match = match or {}
    return parse_selector(match.get("namespaceSelector")), parse_selector(match.get("objectSelector"))


def parse_policies(objects: list[dict[str, Any]]) -> list[Policy]:
    out = []
    for obj in sorted(objects, key=_name):
        spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
        match = spec.get("matchConstraints") if isinstance(spec.get("matchConstraints"), dict) else {}
        out.append(Policy(_name(obj), spec, *_selectors(match)))
    return out


def parse_bindings(objects: list[dict[str, Any]]) -> dict[str, list[Binding]]:
    """Bindings by the policy they bind, each policy's in name order."""
    out: dict[str, list[Binding]] = {}
    for obj in sorted(objects, key=_name):
        spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
        match = spec.get("matchResources") if isinstance(spec.get("matchResources"), dict) else None
        out.setdefault(str(spec.get("policyName") or ""), []).append(
            Binding(_name(obj), spec, match, *_selectors(match)))
    return out


@dataclass(slots=True)
class Decision:
    """One validation's outcome (upstream's PolicyDecision): deny or admit, and why."""

    deny: bool
    message: str = ""
    reason: str = ""
    index: int = 0
    error: bool = False


@dataclass(slots=True)
class Outcome:
    #: the validations' (and a failed evaluation's): they do what the binding's actions say
    decisions: list[Decision] = field(default_factory=list)
    #: (key, value) to publish
    annotations: list[tuple[str, str]] = field(default_factory=list)
    #: audit annotations that failed under failurePolicy Fail: these deny whatever the actions
    annotation_errors: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Denial:
    policy: str
    binding: str
    message: str
    reason: str = ""


def _error_text(e: BaseException) -> str:
    return str(e.args[0]) if e.args else str(e)


def evaluate(spec: dict[str, Any], activation_json: dict[str, Any], authorizer: Any) -> Outcome:
    """One policy × binding × parameter, on the CEL thread: conditions, variables, validations and
    audit annotations (upstream's validator.Validate)."""
    from apiserver.celengine import OUT_OF_BUDGET, Engine, OutOfBudget, Run

    engine = Engine.get()
    t, to_cel = engine.types, engine.celpy.json_to_cel
    fail = (spec.get("failurePolicy") or "Fail") != "Ignore"

    def error(message: str) -> Outcome:
        return Outcome([Decision(fail, message, error=True)])

    conditions = [c for c in spec.get("matchConditions") or [] if isinstance(c, dict)]
    if conditions:
        matched = matchconditions.evaluate(conditions, activation_json["object"], activation_json["oldObject"],
                                           activation_json["request"], spec.get("failurePolicy") or "Fail",
                                           authorizer, activation_json["params"])
        if matched.error:
            return error(matched.error)
        if not matched.matches:
            return Outcome()
    activation = {k: to_cel(v) for k, v in activation_json.items()}
    activation["authorizer"] = authorizer(t)
    run = Run(engine, POLICY_STEPS)

    def run_expression(expr: str, budget: Run | None = None) -> Any:
        """The value, or the exception that stands for the failure (OutOfBudget is raised)."""
        prog = engine.compile(expr, authz=True)
        if not hasattr(prog, "evaluate"):
            return engine.celpy.CELEvalError(prog or "optional syntax (.? and [?]) is not supported")
        try:
            return (budget or run).evaluate(prog, activation)
        except OutOfBudget:
            raise
        except Exception as e:  # CELEvalError and cel-python's own faults alike
            return e

    class Variables(t.MapType):  # type: ignore[misc, name-defined]
        """upstream's composited variables: each evaluated when first used, then kept; an error is
        the value, failing only the expressions that use it."""

        def __init__(self, expressions: dict[str, str]) -> None:
            super().__init__({t.StringType(k): None for k in expressions})
            self.expressions, self.values = expressions, {}

        def __getitem__(self, key: Any) -> Any:
            name = str(key)
            if name not in self.expressions:
                return super().__getitem__(key)
            if name not in self.values:
                self.values[name] = engine.celpy.CELEvalError(f"variable {name} refers to itself")
                self.values[name] = run_expression(self.expressions[name])
            return self.values[name]

    try:
        activation["variables"] = Variables({str(v.get("name") or ""): str(v.get("expression") or "")
                                             for v in spec.get("variables") or [] if isinstance(v, dict)})
        out = Outcome()
        for i, v in enumerate(spec.get("validations") or []):
            if not isinstance(v, dict):
                continue
            expr = str(v.get("expression") or "")
            result = run_expression(expr)
            if isinstance(result, Exception):
                out.decisions.append(Decision(fail, f"expression '{expr}' resulted in error: {_error_text(result)}",
                                              index=i, error=True))
                continue
            if isinstance(result, (bool, t.BoolType)) and bool(result):
                out.decisions.append(Decision(False, index=i))
                continue
            message = ""
            if isinstance(v.get("messageExpression"), str) and v["messageExpression"].strip():
                produced = run_expression(v["messageExpression"])
                if isinstance(produced, str):
                    message = str(produced).strip()
                    if len(message) > MAX_MESSAGE or "\n" in message:
                        message = ""
            message = message or str(v.get("message") or "").strip() or f"failed expression: {expr.strip()}"
            out.decisions.append(Decision(True, message, str(v.get("reason") or "Invalid"), i))
        annotation_budget = Run(engine, POLICY_STEPS)  # upstream gives audit annotations a budget of their own
        for a in spec.get("auditAnnotations") or []:
            if not isinstance(a, dict):
                continue
            expr = str(a.get("valueExpression") or "")
            value = run_expression(expr, annotation_budget)
            if isinstance(value, Exception):
                if fail:
                    out.annotation_errors.append(f"expression '{expr}' resulted in error: {_error_text(value)}")
            elif isinstance(value, str):
                if str(value).strip():
                    out.annotations.append((str(a.get("key") or ""), str(value).strip()[:MAX_ANNOTATION_VALUE]))
            elif value is not None:  # an error whatever the failurePolicy, as upstream's validator
                kind = type(value).__name__.removesuffix("Type").lower()
                out.annotation_errors.append(f"valueExpression '{expr}' resulted in unsupported return type: "
                                             f"{kind}. Return type must be either string or null.")
        return out
    except OutOfBudget:
        return error(OUT_OF_BUDGET)


class ValidatingAdmissionPolicy(RequestMatcher):
    name = "ValidatingAdmissionPolicy"

    def __init__(self, server: APIServer) -> None:
        super().__init__(server)
        self.policies = Configurations(server, "validatingadmissionpolicies", parse_policies)
        self.bindings = Configurations(server, "validatingadmissionpolicybindings", parse_bindings)

    async def validate(self, a: Attributes) -> None:
        if is_exempt(a.resource.group, a.resource.plural):
            return  # a bad policy must not be able to block its own repair
        policies = await self.policies.get()
        if not policies:
            return
        bindings = await self.bindings.get()
        denials: list[Denial] = []
        for policy in policies:
            bound = bindings.get(policy.name)
            if bound:
                await self._apply(policy, bound, a, denials)
        if denials:
            raise self._denied(a, denials[0])

    async def _apply(self, policy: Policy, bindings: list[Binding], a: Attributes, denials: list[Denial]) -> None:
        def config_error(e: Exception, binding: Binding | None) -> None:
            if policy.failure_policy == "Ignore":
                log.info("policy %s: failing open: %s", policy.name, e)
                return
            what = "binding" if binding is not None else "policy"
            denials.append(Denial(policy.name, binding.name if binding else "", f"failed to configure {what}: {e}"))

        try:
            matched = await self._matches(policy.spec.get("matchConstraints"), policy.namespace_selector,
                                          policy.object_selector, a, require_rules=True)
        except ConfigurationError as e:
            config_error(e, None)
            return
        if matched is None:
            return
        param_resource = None
        if policy.spec.get("paramKind"):
            try:
                param_resource = self._param_resource(policy)
            except ConfigurationError as e:
                config_error(e, None)
                return
        from apiserver.celengine import off_loop

        notes = request_notes()
        annotations: dict[str, list[str]] = {}
        base: dict[str, Any] | None = None  # the CEL variables all bindings share, made once needed
        for binding in bindings:
            try:
                if binding.match is not None and await self._matches(
                        binding.match, binding.namespace_selector, binding.object_selector, a) is None:
                    continue
                params = await self._params(param_resource, binding, a)
            except ConfigurationError as e:
                config_error(e, binding)
                continue
            if not params:
                continue
            if base is None:
                base = await self._activation(a, matched)
            for param in params:
                try:
                    outcome = await off_loop(evaluate, policy.spec, {**base, "params": param},
                                             self.authorizer_variable(a))
                except Exception as e:  # cel-python's own faults on odd input: the policy's error, never a 500
                    log.warning("policy %s, binding %s: evaluation failed: %r", policy.name, binding.name, e)
                    fail = policy.failure_policy != "Ignore"
                    outcome = Outcome([Decision(fail, f"failed to evaluate CEL expression: {e}", error=True)])
                for d in outcome.decisions:
                    if d.deny:  # a failed validation, or an error under failurePolicy Fail
                        self._act(policy, binding, d, a, denials)
                denials += [Denial(policy.name, binding.name, e) for e in outcome.annotation_errors]
                for key, value in outcome.annotations:
                    if value not in annotations.setdefault(key, []):
                        annotations[key].append(value)
        for key, values in annotations.items():
            notes.annotate(f"{policy.name}/{key}", ", ".join(values))

    def _act(self, policy: Policy, binding: Binding, d: Decision, a: Attributes, denials: list[Denial]) -> None:
        """What the binding's validationActions say to do with a failed validation."""
        notes = request_notes()
        for action in binding.actions:
            if action == "Deny":
                denials.append(Denial(policy.name, binding.name, d.message, d.reason))
            elif action == "Warn":
                notes.warn(f"Validation failed for ValidatingAdmissionPolicy '{policy.name}' with binding "
                           f"'{binding.name}': {d.message}")
            elif action == "Audit":
                notes.annotate(VALIDATION_FAILURE, orjson.dumps([{
                    "message": d.message, "policy": policy.name, "binding": binding.name,
                    "expressionIndex": d.index, "validationActions": binding.actions}]).decode())

    # -- matching (upstream's matching.Matcher) --

    async def _matches(self, match: Any, namespace_selector: LabelSelector | str, object_selector: LabelSelector | str,
                       a: Attributes, require_rules: bool = False) -> Matched | None:
        """The matched resource, or None; a selector that cannot be applied is a ConfigurationError,
        for requests the rules cover only (as upstream's Matcher reports errors after the rules)."""
        match = match if isinstance(match, dict) else {}
        policy = str(match.get("matchPolicy") or "Equivalent")

        def named(rule: dict[str, Any], req: Request) -> bool:
            names = rule.get("resourceNames")
            return rule_matches(rule, req) and (not names or a.name in names)

        if self.match_rules(match.get("excludeResourceRules"), policy, a, named) is not None:
            return None
        rules = match.get("resourceRules")
        if not rules and not require_rules:
            matched: Matched | None = Matched(a.resource, a.subresource, self._kind(a.resource, a.subresource))
        else:
            matched = self.match_rules(rules, policy, a, named)
        if matched is None:
            return None
        for selector in (namespace_selector, object_selector):
            if isinstance(selector, str):
                raise ConfigurationError(selector)
        if not object_selector_matches(object_selector, a.obj, a.old):  # type: ignore[arg-type]
            return None
        try:
            if not await self.namespace_matches(namespace_selector, a):
                return None
        except errors.StatusError as e:
            raise ConfigurationError(e.message) from None
        return matched

    # -- parameters (upstream's CollectParams) --

    def _param_resource(self, policy: Policy) -> Resource:
        kind = policy.spec.get("paramKind") or {}
        api_version, name = str(kind.get("apiVersion") or ""), str(kind.get("kind") or "")
        group, _, version = api_version.rpartition("/")
        table = self.server.table
        preferred = table.by_kind(group, name)
        res = preferred and table.lookup(group, version, preferred.plural)
        if res is not None and not getattr(res.strategy, "virtual", False) and res.storage_prefix in self.server.caches:
            return res
        raise ConfigurationError(f"failed to find resource referenced by paramKind: '{group}/{version}, Kind={name}'")

    async def _params(self, res: Resource | None, binding: Binding, a: Attributes) -> list[dict[str, Any] | None]:
        ref = binding.spec.get("paramRef")
        if res is None or not isinstance(ref, dict):
            return [None]  # no paramKind, or a binding without paramRef: params is null
        namespace = str(ref.get("namespace") or "")
        if res.namespaced:
            namespace = namespace or a.namespace
            if not namespace:
                raise ConfigurationError("cannot use namespaced paramRef in policy binding that matches cluster-scoped "
                                         "resources")
        elif namespace:
            raise ConfigurationError("paramRef.namespace must not be provided for a cluster-scoped `paramKind`")
        cache = self.server.caches.get(res.storage_prefix)
        if cache is None:  # the kind went away (a custom resource definition deleted meanwhile)
            raise ConfigurationError(f"paramKind kind `{res.api_version}, Kind={res.kind}` not known")
        if not cache.ready.is_set():
            try:
                await cache.sync_with_store()
            except errors.StatusError:
                raise ConfigurationError(f"paramKind kind `{res.api_version}, Kind={res.kind}` not yet synced to use "
                                         "for admission") from None
        prefix = f"{cache.prefix}{namespace}/" if res.namespaced else cache.prefix
        found: list[dict[str, Any]] = []
        if ref.get("name"):
            entry = cache.get(f"{prefix}{ref['name']}")
            if entry is not None:
                found.append(orjson.loads(entry.data))
        else:
            try:
                selector = selector_from_label_selector(ref.get("selector") or {})
            except (LabelSelectorError, ValueError, TypeError) as e:
                raise ConfigurationError(str(e)) from None
            flt = Filter(namespace if res.namespaced else None, None, selector)
            found = [orjson.loads(e.data) for e in cache.list(flt)]
        if not found and ref.get("parameterNotFoundAction", "Deny") == "Deny":
            raise ConfigurationError("no params found for policy binding with `Deny` parameterNotFoundAction")
        if res.strategy.conversion_webhook is not None:
            return list(await self.server.api.converted(res, found, is_list=True))
        convert = res.strategy.output_converter(res)
        return [convert(p) if convert is not None else p for p in found]

    # -- the CEL variables --

    async def _activation(self, a: Attributes, matched: Matched) -> dict[str, Any]:
        obj, old = await self.versioned(matched, a, a.obj), await self.versioned(matched, a, a.old)
        request = self.review_request(matched, a, "", obj, old)
        request.pop("object", None)
        request.pop("oldObject", None)
        return {"object": obj, "oldObject": old, "request": request,
                "namespaceObject": await self._namespace_object(a), "params": None}

    async def _namespace_object(self, a: Attributes) -> dict[str, Any] | None:
        is_namespace = a.resource.group == "" and a.resource.plural == "namespaces"
        if not a.namespace or is_namespace:
            return None  # cluster-scoped; a namespace request has no namespace of its own (as upstream)
        ns = await self.namespace(a.namespace)
        if ns is None:
            return None
        # upstream's CreateNamespaceObject: spec, status and these metadata fields, no type meta
        meta = ns.get("metadata") or {}
        out: dict[str, Any] = {"metadata": {k: meta[k] for k in NAMESPACE_META if k in meta}}
        for part in ("spec", "status"):
            if part in ns:
                out[part] = ns[part]
        return out

    def _denied(self, a: Attributes, d: Denial) -> errors.StatusError:
        """admission.NewForbidden's words, with the validation's reason and code (422 Invalid by default)."""
        message = (f"ValidatingAdmissionPolicy '{d.policy}' with binding '{d.binding}' denied request: {d.message}"
                   if d.binding else f"ValidatingAdmissionPolicy '{d.policy}' denied request: {d.message}")
        res = a.resource
        meta = (a.obj or {}).get("metadata") if isinstance(a.obj, dict) else None
        meta = meta if isinstance(meta, dict) else {}
        name = a.name or str(meta.get("name") or meta.get("generateName") or "Unknown")
        err = errors.forbidden(f'{res.group_resource} "{name}" is forbidden: {message}', res.plural, name, res.group)
        err.reason = d.reason or "Invalid"
        err.code = REASON_CODES.get(err.reason, 422)
        err.details = {**(err.details or {}), "causes": [{"message": message}]}
        return err
