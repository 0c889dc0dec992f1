"""Dynamic admission webhooks: the MutatingAdmissionWebhook and ValidatingAdmissionWebhook plugins.

As upstream's admission/plugin/webhook: the configurations come from this apiserver's own watch
cache; each request is matched against every webhook (rules, matchPolicy Equivalent through the
resources that share storage, namespace/object selectors, matchConditions) and the matching ones
are called over HTTPS with an AdmissionReview (v1, else v1beta1). Mutating webhooks run one after
another (configurations by name, webhooks in order) and their JSON patches are applied to the
object; once a webhook changed it, every mutating plugin runs once more (Chain.admit), and of the
webhooks those with reinvocationPolicy IfNeeded that ran before a change (a later webhook's, or
an in-tree plugin's on that second run).
Validating webhooks run in parallel; any denial fails the request. Failures to call a webhook
obey its failurePolicy. Warnings of the answers become `Warning` headers, their auditAnnotations
go to the audit log (see `RequestNotes`).

CONNECT requests (pods/exec, attach, portforward) carry their options object (apiserver/podproxy.py).
Differences from upstream: DELETE requests pass mutating webhooks in the validation phase (they
can deny, never patch); a patch of a CONNECT's options is not applied to the stream.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextvars
import functools
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import orjson

from apimachinery import errors
from apimachinery.patch import deep_copy_json, json_patch
from apiserver.admission import CONNECT, CREATE, DELETE, UPDATE, Attributes, Plugin, matchconditions
from apiserver.admission.webhookmatch import (
    Hook,
    Request,
    hooks_of,
    is_exempt,
    labels_of,
    object_selector_matches,
    rule_matches,
)
from apiserver.registry.admissionregistration import GROUP, REVIEW_VERSIONS
from apiserver.webhookclient import CallError, WebhookCaller

if TYPE_CHECKING:

    from apimachinery.selectors import LabelSelector
    from apiserver.resources import Resource
    from apiserver.server import APIServer

log = logging.getLogger(__name__)

USER_AGENT = "kube-apiserver-admission"
T = TypeVar("T")


# -- what a request collects on its way: warnings and audit annotations ----------------------


class RequestNotes:
    """Warnings for the client (`Warning` headers) and annotations for the audit line."""

    __slots__ = ("annotations", "warnings")

    def __init__(self) -> None:
        self.warnings: list[str] = []
        self.annotations: dict[str, str] = {}

    def warn(self, text: str) -> None:
        if text and text not in self.warnings:  # upstream's recorder drops duplicates
            self.warnings.append(text)

    def annotate(self, key: str, value: str) -> None:
        self.annotations.setdefault(key, value)  # as upstream's AddAnnotation: the first value stays

    def headers(self) -> list[tuple[bytes, bytes]]:
        from apiserver.fieldschema import warning_header

        return [warning_header(w) for w in self.warnings]


_NOTES: contextvars.ContextVar[RequestNotes | None] = contextvars.ContextVar("admission_notes", default=None)


def begin_request() -> RequestNotes:
    """Start collecting for the request being served (the apiserver's pipeline calls this)."""
    notes = RequestNotes()
    _NOTES.set(notes)
    return notes


def request_notes() -> RequestNotes:
    """The current request's notes (a throwaway set outside a request, e.g. internal writes)."""
    return _NOTES.get() or RequestNotes()


# -- errors ----------------------------------------------------------------------------------


def internal_error(inner: str) -> errors.StatusError:
    """apierrors.NewInternalError."""
    return errors.StatusError(500, "InternalError", f"Internal error occurred: {inner}", {"causes": [{"message": inner}]})


def rejection(hook_name: str, result: Any) -> errors.StatusError:
    """A denial as upstream's webhookerrors.ToStatusErr words it (codes below 400 become 400)."""
    st = result if isinstance(result, dict) else {}
    code = st.get("code")
    code = code if isinstance(code, int) and not isinstance(code, bool) and code >= 400 else 400
    denied = f'admission webhook "{hook_name}" denied the request'
    message, reason = st.get("message"), st.get("reason")
    if isinstance(message, str) and message:
        text = f"{denied}: {message}"
    elif isinstance(reason, str) and reason:
        text = f"{denied}: {reason}"
    else:
        text = f"{denied} without explanation"
    details = st.get("details") if isinstance(st.get("details"), dict) else None
    return errors.StatusError(code, reason if isinstance(reason, str) else "", text, details)


def dry_run_unsupported(hook_name: str) -> errors.StatusError:
    return errors.bad_request(f'admission webhook "{hook_name}" does not support dry run')


# -- the configurations, from the watch cache -----------------------------------------------


class Configurations(Generic[T]):
    """The objects of one admissionregistration kind, parsed again (`parse`) whenever one changed."""

    def __init__(self, server: APIServer, plural: str, parse: Callable[[list[dict[str, Any]]], T]) -> None:
        self.server = server
        self.plural = plural
        self.parse = parse
        self._signature: tuple[tuple[str, int], ...] | None = None
        self._parsed: T | None = None

    async def get(self) -> T:
        cache = self.server.cache_for(GROUP, self.plural)
        if not cache.ready.is_set():
            await cache.sync_with_store()  # 503 if it cannot load (upstream: "not yet ready")
        objects = cache.objects
        signature = tuple((k, e.revision) for k, e in objects.items())
        if signature != self._signature or self._parsed is None:
            self._parsed = self.parse([orjson.loads(e.data) for e in objects.values()])
            self._signature = signature
        return self._parsed


# -- calling a webhook -------------------------------------------------------------------------


@dataclass(slots=True)
class Matched:
    #: the served resource (version) whose form a webhook or policy gets: the request's own, or
    #: an equivalent one (matchPolicy Equivalent)
    res: Resource
    subresource: str
    kind: tuple[str, str, str]


@dataclass(slots=True)
class Invocation(Matched):
    hook: Hook


@dataclass(slots=True)
class Answer:
    allowed: bool
    patch: bytes = b""
    patch_type: str = ""
    result: Any = None
    warnings: list[str] = field(default_factory=list)
    audit_annotations: dict[str, str] = field(default_factory=dict)


def verify_answer(review: Any, version: str, uid: str, mutating: bool) -> Answer:
    """webhookrequest.VerifyAdmissionResponse; a ValueError says what is wrong."""
    if not isinstance(review, dict):
        raise ValueError("webhook response was absent")
    resp = review.get("response")
    if not isinstance(resp, dict):
        raise ValueError("webhook response was absent")
    patch_b64 = resp.get("patch")
    try:
        patch = base64.b64decode(patch_b64, validate=True) if isinstance(patch_b64, str) and patch_b64 else b""
    except (binascii.Error, ValueError) as e:
        raise ValueError(f"illegal base64 data in response.patch: {e}") from None
    patch_type = resp.get("patchType")
    if version == "v1":
        if resp.get("uid") != uid:
            raise ValueError(f'expected response.uid="{uid}", got "{resp.get("uid") or ""}"')
        av = str(review.get("apiVersion") or "")
        group, _, ver = av.rpartition("/")
        kind = str(review.get("kind") or "")
        if (group, ver, kind) != ("admission.k8s.io", "v1", "AdmissionReview"):
            raise ValueError(f"expected webhook response of admission.k8s.io/v1, Kind=AdmissionReview, "
                             f"got {group}/{ver}, Kind={kind}")
        if mutating:
            if patch and patch_type is None:
                raise ValueError("webhook returned response.patch but not response.patchType")
            if not patch and patch_type is not None:
                raise ValueError("webhook returned response.patchType but not response.patch")
            if patch_type is not None and not patch_type:
                raise ValueError(f'webhook returned invalid response.patchType of "{patch_type}"')
        else:
            if patch:
                raise ValueError("validating webhook may not return response.patch")
            if patch_type is not None:
                raise ValueError("validating webhook may not return response.patchType")
    else:
        # v1beta1 answers were never checked for uid or kind; a patch is a JSON patch
        patch_type = "JSONPatch" if patch and mutating else ""
        if not mutating:
            patch = b""
    warnings = [w for w in resp.get("warnings") or [] if isinstance(w, str)]
    annotations = resp.get("auditAnnotations")
    return Answer(
        allowed=resp.get("allowed") is True,
        patch=patch,
        patch_type=str(patch_type or ""),
        result=resp.get("status"),
        warnings=warnings,
        audit_annotations={str(k): str(v) for k, v in annotations.items()} if isinstance(annotations, dict) else {},
    )


# -- the plugins -------------------------------------------------------------------------------


def _other_kind(subresource: str) -> bool:
    """A subresource whose object is another kind than the resource's (scale aside: it is converted
    to and from the resource)."""
    from apiserver.resources import SUBRESOURCE_KINDS

    return subresource != "scale" and subresource in SUBRESOURCE_KINDS


class RequestMatcher(Plugin):
    """What webhooks and admission policies share: the served resource their rules match
    (matchPolicy Equivalent through the resources that share storage), namespace selectors, the
    objects as that resource's version shows them, and the request as AdmissionReview and CEL
    see it."""

    def __init__(self, server: APIServer) -> None:
        self.server = server

    def _request(self, a: Attributes, res: Resource) -> Request:
        namespace = a.namespace
        if res.group == "" and res.plural == "namespaces" and a.operation != CREATE:
            namespace = a.name  # upstream's request info names a namespace object's own namespace
        return Request(a.operation, res.group, res.version, res.plural, a.subresource, namespace)

    def _kind(self, res: Resource, subresource: str) -> tuple[str, str, str]:
        from apiserver.resources import SUBRESOURCE_KINDS

        return SUBRESOURCE_KINDS.get(subresource) or (res.group, res.version, res.kind)

    def _equivalents(self, res: Resource) -> list[Resource]:
        """The other served versions/groups of the same stored objects (matchPolicy Equivalent)."""
        return [r for r in self.server.table.resources
                if r.storage_prefix == res.storage_prefix and (r.group, r.version) != (res.group, res.version)
                and r.namespaced == res.namespaced and not getattr(r.strategy, "virtual", False)]

    def match_rules(self, rules: Any, match_policy: str, a: Attributes,
                    matches: Callable[[dict[str, Any], Request], bool] = rule_matches) -> Matched | None:
        """The resource the first matching rule names: the request's own, else (Equivalent) an
        equivalent one, earlier rules first as upstream."""
        res = a.resource
        rules = [r for r in rules or [] if isinstance(r, dict)]
        request = self._request(a, res)
        if any(matches(rule, request) for rule in rules):
            return Matched(res, a.subresource, self._kind(res, a.subresource))
        if match_policy == "Equivalent" and (equivalents := self._equivalents(res)):
            requests = [(r, self._request(a, r)) for r in equivalents]
            for rule in rules:
                eq = next((r for r, req in requests if matches(rule, req)), None)
                if eq is not None:
                    return Matched(eq, a.subresource, self._kind(eq, a.subresource))
        return None

    def authorizer_variable(self, a: Attributes) -> Any:
        """The `authorizer` of match conditions: checks as the requesting user."""
        from apiserver.admission.celauthz import variable

        loop = asyncio.get_running_loop()
        requested = {"group": a.resource.group, "resource": a.resource.plural, "subresource": a.subresource,
                     "namespace": a.namespace, "name": a.name}
        return functools.partial(variable, user=a.user, decide=self.server.authz.decide, loop=loop,
                                 request_resource=requested)

    async def namespace_matches(self, selector: LabelSelector | str, a: Attributes) -> bool:
        """MatchNamespaceSelector: cluster-scoped objects other than namespaces always match."""
        is_namespace = a.resource.group == "" and a.resource.plural == "namespaces"
        if not a.namespace and not is_namespace:
            return True
        if isinstance(selector, str):
            raise internal_error(selector)
        if selector.empty:
            return True
        if is_namespace and not a.subresource and a.operation in (CREATE, UPDATE):
            # the request's own namespace object: the stored one is not there yet, or is stale
            return selector.matches(labels_of(a.obj) or {})
        return selector.matches(await self._namespace_labels(a.namespace or a.name))

    async def _namespace_labels(self, name: str) -> dict[str, str]:
        entry = self._cached_namespace(name)
        if entry is not None:
            return entry.labels  # (no decoding on the common path)
        ns = await self.namespace(name)
        if ns is None:
            raise errors.not_found("namespaces", name)
        return labels_of(ns) or {}

    def _cached_namespace(self, name: str) -> Any:
        cache = self.server.cache_for("", "namespaces")
        return cache.get(f"{cache.prefix}{name}") if cache.ready.is_set() else None

    async def namespace(self, name: str) -> dict[str, Any] | None:
        """The Namespace object, from the watch cache, else etcd (a cache miss may be its latency)."""
        entry = self._cached_namespace(name)
        if entry is not None:
            return orjson.loads(entry.data)
        kv = await self.server.store.get(f"/registry/namespaces/{name}")
        return kv.decode() if kv is not None else None

    # -- the objects as the webhook's version shows them --

    async def versioned(self, inv: Matched, a: Attributes, obj: dict[str, Any] | None) -> dict[str, Any] | None:
        """The object at the version the webhook or policy matched (matchPolicy Equivalent may
        have matched another version of the request's resource)."""
        if obj is None:
            return None
        if inv.subresource == "scale":
            from apiserver.subresources import Subresources

            return Subresources.to_scale(a.resource, obj)
        copy = deep_copy_json(obj)
        if _other_kind(inv.subresource):
            return copy  # e.g. serviceaccounts/token: the TokenRequest itself
        if inv.res.strategy.conversion_webhook is not None:
            # a custom resource whose definition converts through a webhook: objects are at the
            # request's version here, and go to the matched one through the webhook
            return (await self.server.api.converted(inv.res, [copy], inv.res.api_version, write=True))[0]
        conv = inv.res.strategy.output_converter(inv.res)
        return conv(copy) if conv is not None else copy

    # -- the AdmissionReview --

    def _options(self, a: Attributes) -> dict[str, Any] | None:
        opts = a.options if isinstance(a.options, dict) else {}
        if a.operation == DELETE:
            return {**opts, "kind": "DeleteOptions", "apiVersion": "meta.k8s.io/v1"}
        if a.operation == CONNECT:
            return opts or None
        out: dict[str, Any] = {"kind": "CreateOptions" if a.operation == CREATE else "UpdateOptions",
                               "apiVersion": "meta.k8s.io/v1"}
        if a.dry_run:
            out["dryRun"] = ["All"]
        for k in ("fieldManager", "fieldValidation"):
            if isinstance(opts.get(k), str) and opts[k]:
                out[k] = opts[k]
        return out

    def review_request(self, inv: Matched, a: Attributes, uid: str, obj: Any, old: Any) -> dict[str, Any]:
        g, v, k = inv.kind
        rg, rv, rk = self._kind(a.resource, a.subresource)
        req: dict[str, Any] = {
            "uid": uid,
            "kind": {"group": g, "version": v, "kind": k},
            "resource": {"group": inv.res.group, "version": inv.res.version, "resource": inv.res.plural},
            "requestKind": {"group": rg, "version": rv, "kind": rk},
            "requestResource": {"group": a.resource.group, "version": a.resource.version,
                                "resource": a.resource.plural},
        }
        if inv.subresource:
            req["subResource"] = inv.subresource
        if a.subresource:
            req["requestSubResource"] = a.subresource
        if a.name:
            req["name"] = a.name
        if a.namespace:
            req["namespace"] = a.namespace
        req.update(operation=a.operation, userInfo=a.user.as_dict(), object=obj, oldObject=old, dryRun=a.dry_run,
                   options=self._options(a))
        return req


class _WebhookPlugin(RequestMatcher):
    plural = ""
    mutating = False

    def __init__(self, server: APIServer) -> None:
        super().__init__(server)
        self.configurations = Configurations(server, self.plural, functools.partial(hooks_of, mutating=self.mutating))
        self.caller = WebhookCaller(server, USER_AGENT)

    # -- matching (upstream's ShouldCallHook) --

    async def should_call(self, hook: Hook, a: Attributes) -> Invocation | None:
        matched = self.match_rules(hook.spec.get("rules"), hook.match_policy, a)
        if matched is None:
            return None
        invocation = Invocation(matched.res, matched.subresource, matched.kind, hook)
        if not await self.namespace_matches(hook.namespace_selector, a):
            return None
        if isinstance(hook.object_selector, str):
            raise internal_error(hook.object_selector)
        if not object_selector_matches(hook.object_selector, a.obj, a.old):
            return None
        conditions = [c for c in hook.spec.get("matchConditions") or [] if isinstance(c, dict)]
        if conditions:
            obj, old = await self.versioned(invocation, a, a.obj), await self.versioned(invocation, a, a.old)
            from apiserver.celengine import off_loop

            result = await off_loop(matchconditions.evaluate, conditions, obj, old,
                                    self.review_request(invocation, a, "", obj, old), hook.failure_policy,
                                    self.authorizer_variable(a))
            if result.error:
                log.warning("failed evaluating match conditions, failing closed %s: %s", hook.name, result.error)
                res = a.resource
                raise errors.forbidden(f'{res.group_resource} "{a.name}" is forbidden: {result.error}',
                                       res.plural, a.name, res.group)
            if not result.matches:
                return None
        return invocation

    # -- the HTTP call --

    async def call(self, inv: Invocation, a: Attributes, obj: Any, old: Any) -> Answer:
        """Send the AdmissionReview and check the answer (CallError when that fails)."""
        hook = inv.hook
        spec = hook.spec
        if a.dry_run:
            effects = spec.get("sideEffects")
            if effects is None:
                raise CallError("Webhook SideEffects is nil")
            if effects not in ("None", "NoneOnDryRun"):
                raise dry_run_unsupported(hook.name)
        version = next((v for v in spec.get("admissionReviewVersions") or [] if v in REVIEW_VERSIONS), None)
        if version is None:
            raise CallError("could not create admission objects: webhook does not accept known AdmissionReview "
                            "versions (v1, v1beta1)")
        uid = str(uuid.uuid4())
        review = {"kind": "AdmissionReview", "apiVersion": f"admission.k8s.io/{version}",
                  "request": self.review_request(inv, a, uid, obj, old)}
        timeout = spec.get("timeoutSeconds")
        timeout = timeout if isinstance(timeout, int) and not isinstance(timeout, bool) and timeout > 0 else 10
        try:
            body = await self.caller.post(spec.get("clientConfig") or {}, review, timeout)
        except CallError as e:
            raise CallError(f"failed to call webhook: {e}") from None
        try:
            return verify_answer(body, version, uid, self.mutating)
        except ValueError as e:
            raise CallError(f"received invalid webhook response: {e}") from None

    def record(self, hook: Hook, answer: Answer) -> None:
        notes = request_notes()
        for k, v in answer.audit_annotations.items():
            notes.annotate(f"{hook.name}/{k}", v)
        for w in answer.warnings:
            notes.warn(w)

    async def close(self) -> None:
        await self.caller.close()


class MutatingAdmissionWebhook(_WebhookPlugin):
    name = "MutatingAdmissionWebhook"
    plural = "mutatingwebhookconfigurations"
    mutating = True

    async def admit(self, a: Attributes) -> None:
        if a.operation == DELETE or is_exempt(a.resource.group, a.resource.plural):
            return
        hooks = await self.configurations.get()
        if hooks:
            await self._dispatch(a, hooks)

    async def validate(self, a: Attributes) -> None:
        # DELETE passes admission only in its validation phase here; upstream calls mutating
        # webhooks for it too (they may deny, there is nothing to patch)
        if a.operation != DELETE or is_exempt(a.resource.group, a.resource.plural):
            return
        hooks = await self.configurations.get()
        if hooks:
            await self._dispatch(a, hooks)

    async def _dispatch(self, a: Attributes, hooks: list[Hook]) -> None:
        ctx = a.reinvocation
        round_ = 1 if ctx.is_reinvoke else 0
        if ctx.is_reinvoke and ctx.previously and a.obj != ctx.last_output:
            # in-tree plugins changed the object on their second run: the IfNeeded webhooks that
            # ran since the last webhook change run again too (upstream's IsOutputChangedSince…)
            ctx.webhooks |= ctx.previously
            ctx.previously = set()
        state = {"defaulted": False}
        for i, hook in enumerate(hooks):
            if ctx.is_reinvoke and hook.uid not in ctx.webhooks:
                continue
            inv = await self.should_call(hook, a)
            if inv is None:
                continue
            if await self._call_one(inv, a, round_, i, state):
                # the chain runs again (Chain.admit), calling the IfNeeded webhooks seen so far
                ctx.webhooks |= ctx.previously
                ctx.previously = set()
                ctx.should_reinvoke = True
            if hook.spec.get("reinvocationPolicy") == "IfNeeded":
                ctx.previously.add(hook.uid)
        if not ctx.is_reinvoke and ctx.previously and a.obj is not None:
            ctx.last_output = deep_copy_json(a.obj)

    def _default(self, a: Attributes, obj: dict[str, Any]) -> None:
        """Upstream's webhooks see (and patch) defaulted objects: the kind's defaults, as decoding
        applies them there (a status write is not defaulted here, as the handler does)."""
        if a.subresource in ("", "scale") and a.operation in (CREATE, UPDATE):
            a.resource.strategy.default(obj)

    async def _call_one(self, inv: Invocation, a: Attributes, round_: int, i: int, state: dict[str, bool]) -> bool:
        hook = inv.hook
        if a.obj is not None and not state["defaulted"] and not inv.subresource:
            self._default(a, a.obj)
            state["defaulted"] = True
        obj, old = await self.versioned(inv, a, a.obj), await self.versioned(inv, a, a.old)
        changed = False
        try:
            answer = await self.call(inv, a, obj, old)
            self.record(hook, answer)
            if not answer.allowed:
                raise rejection(hook.name, answer.result)
            changed = await self._apply_patch(inv, a, obj, answer)
        except CallError as e:
            if hook.failure_policy == "Ignore":
                log.warning("failed calling webhook, failing open %s: %s", hook.name, e)
                request_notes().annotate(f"failed-open.mutation.webhook.admission.k8s.io/round_{round_}_index_{i}",
                                         hook.name)
                return False
            log.warning("failed calling webhook, failing closed %s: %s", hook.name, e)
            raise internal_error(f'failed calling webhook "{hook.name}": {e}') from None
        finally:
            request_notes().annotate(
                f"mutation.webhook.admission.k8s.io/round_{round_}_index_{i}",
                orjson.dumps({"configuration": hook.configuration, "webhook": hook.name, "mutated": changed}).decode())
        return changed

    async def _apply_patch(self, inv: Invocation, a: Attributes, obj: dict[str, Any] | None, answer: Answer) -> bool:
        """Apply the answer's JSON patch to the request's object (in place: the handler holds it)."""
        hook = inv.hook
        if not answer.patch:
            return False
        try:
            ops = orjson.loads(answer.patch)
        except orjson.JSONDecodeError as e:
            raise CallError(f"received undecodable patch in webhook response: {e}") from None
        if not isinstance(ops, list):
            raise CallError("received undecodable patch in webhook response: the patch is not a JSON array")
        if not ops:
            return False
        if obj is None or a.obj is None:
            raise internal_error(f'admission webhook "{hook.name}" attempted to modify the object, which is not '
                                 "supported for this operation")
        if answer.patch_type != "JSONPatch":
            raise CallError(f'unsupported patch type "{answer.patch_type}"')
        try:
            patched = json_patch(obj, ops)
        except errors.StatusError as e:
            causes = (e.details or {}).get("causes") or [{}]
            raise internal_error(causes[0].get("message") or e.message) from None
        if not isinstance(patched, dict):
            raise internal_error(f'admission webhook "{hook.name}" patched the object into a non-object')
        if patched == obj:
            return False
        if inv.subresource == "scale":
            replicas = (patched.get("spec") or {}).get("replicas")
            if isinstance(replicas, int) and not isinstance(replicas, bool):
                a.resource.strategy.set_scale_replicas(a.obj, replicas)
            return True
        if not _other_kind(inv.subresource):
            if inv.res.strategy.conversion_webhook is not None:  # back to the request's version
                patched = (await self.server.api.converted(a.resource, [patched], a.resource.api_version,
                                                           write=True))[0]
            else:
                patched = inv.res.strategy.to_storage(inv.res, patched)
            self._default(a, patched)
        a.obj.clear()
        a.obj.update(patched)
        return True


class ValidatingAdmissionWebhook(_WebhookPlugin):
    name = "ValidatingAdmissionWebhook"
    plural = "validatingwebhookconfigurations"
    mutating = False

    async def validate(self, a: Attributes) -> None:
        if is_exempt(a.resource.group, a.resource.plural):
            return
        hooks = await self.configurations.get()
        if not hooks:
            return
        invocations = []
        for i, hook in enumerate(hooks):
            inv = await self.should_call(hook, a)
            if inv is not None:
                invocations.append((i, inv))
        if not invocations:
            return
        results = await asyncio.gather(*(self._call_one(inv, a, i) for i, inv in invocations), return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        for extra in failures[1:]:
            log.info("rejected by another webhook as well: %s", extra)
        if failures:
            raise failures[0]  # upstream returns the first error (merging them is a TODO there too)

    async def _call_one(self, inv: Invocation, a: Attributes, i: int) -> None:
        hook = inv.hook
        try:
            answer = await self.call(inv, a, await self.versioned(inv, a, a.obj), await self.versioned(inv, a, a.old))
        except CallError as e:
            if hook.failure_policy == "Ignore":
                log.warning("failed calling webhook, failing open %s: %s", hook.name, e)
                request_notes().annotate(f"failed-open.validating.webhook.admission.k8s.io/round_0_index_{i}",
                                         hook.name)
                return
            log.warning("failed calling webhook, failing closed %s: %s", hook.name, e)
            raise internal_error(f'failed calling webhook "{hook.name}": {e}') from None
        self.record(hook, answer)
        if not answer.allowed:
            raise rejection(hook.name, answer.result)
