"""Strategies for admissionregistration.k8s.io/v1 Mutating/ValidatingWebhookConfiguration.

Defaults and validation follow upstream's pkg/apis/admissionregistration/v1/defaults.go and
pkg/apis/admissionregistration/validation (the v1 create rules: sideEffects must be None or
NoneOnDryRun, a known AdmissionReview version, unique webhook names). On update, as upstream,
a rule the stored object already broke is not enforced again (so old objects stay writable).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from typing import Any
from urllib.parse import urlsplit

from apimachinery.validation import (
    child,
    duplicate_cause,
    index,
    invalid_cause,
    is_dns1035_label,
    is_dns1123_subdomain,
    is_qualified_name,
    is_valid_port_num,
    not_supported_cause,
    required_cause,
    too_many_cause,
    type_invalid_cause,
    validate_label_selector,
)
from apiserver.registry.base import Cause, Obj, Strategy, as_dict, as_int, as_list, as_str

GROUP = "admissionregistration.k8s.io"
FAILURE_POLICIES = ("Fail", "Ignore")
MATCH_POLICIES = ("Equivalent", "Exact")
SIDE_EFFECTS = ("None", "NoneOnDryRun", "Some", "Unknown")
NO_SIDE_EFFECTS = ("None", "NoneOnDryRun")
OPERATIONS = ("*", "CONNECT", "CREATE", "DELETE", "UPDATE")
REINVOCATION_POLICIES = ("IfNeeded", "Never")
SCOPES = ("*", "Cluster", "Namespaced")
#: AdmissionReview versions this server can send, in upstream's order of preference
REVIEW_VERSIONS = ("v1", "v1beta1")
MAX_MATCH_CONDITIONS = 64


# -- defaulting ---------------------------------------------------------------------------


def default_webhook(hook: Obj, mutating: bool) -> None:
    hook.setdefault("failurePolicy", "Fail")
    hook.setdefault("matchPolicy", "Equivalent")
    if hook.get("namespaceSelector") is None:
        hook["namespaceSelector"] = {}
    if hook.get("objectSelector") is None:
        hook["objectSelector"] = {}
    if hook.get("timeoutSeconds") is None:
        hook["timeoutSeconds"] = 10
    if mutating and hook.get("reinvocationPolicy") is None:
        hook["reinvocationPolicy"] = "Never"
    for rule in as_list(hook.get("rules")):
        if isinstance(rule, dict) and rule.get("scope") is None:
            rule["scope"] = "*"
    service = as_dict(as_dict(hook.get("clientConfig")).get("service"))
    if service and service.get("port") is None:
        service["port"] = 443


# -- validation ---------------------------------------------------------------------------


def is_fully_qualified_name(path: str, name: str) -> list[Cause]:
    """utilvalidation.IsFullyQualifiedName: a DNS subdomain of at least three segments."""
    if not name:
        return [required_cause(path)]
    errs = is_dns1123_subdomain(name)
    if errs:
        return [invalid_cause(path, name, ",".join(errs))]
    if len(name.split(".")) < 3:
        return [invalid_cause(path, name, "should be a domain with at least three segments separated by dots")]
    return []


def string_list(value: Any, path: str, causes: list[Cause]) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        causes.append(type_invalid_cause(path, value, "must be of type array"))
        return []
    out = []
    for i, v in enumerate(value):
        if not isinstance(v, str):
            causes.append(type_invalid_cause(index(path, i), v, "must be of type string"))
        else:
            out.append(v)
    return out


def _validate_resources(resources: list[str], path: str) -> list[Cause]:
    causes: list[Cause] = []
    if not resources:
        causes.append(required_cause(path))
    with_wildcard_sub: set[str] = set()  # "x/*"
    sub_with_wildcard_res: set[str] = set()  # "*/x"
    double = single = plain = False
    for i, rs in enumerate(resources):
        if rs == "":
            causes.append(required_cause(index(path, i)))
            continue
        if rs == "*/*":
            double = True
        if rs == "*":
            single = True
        if "/" not in rs:
            plain = rs != "*"  # upstream keeps the last one's answer, quirk included
            continue
        res, sub = rs.split("/", 1)
        if res in with_wildcard_sub:
            causes.append(invalid_cause(index(path, i), rs, f"if '{res}/*' is present, must not specify {rs}"))
        if sub in sub_with_wildcard_res:
            causes.append(invalid_cause(index(path, i), rs, f"if '*/{sub}' is present, must not specify {rs}"))
        if sub == "*":
            with_wildcard_sub.add(res)
        if res == "*":
            sub_with_wildcard_res.add(sub)
    if len(resources) > 1 and double:
        causes.append(invalid_cause(path, resources, "if '*/*' is present, must not specify other resources"))
    if single and plain:
        causes.append(invalid_cause(path, resources,
                                    "if '*' is present, must not specify other resources without subresources"))
    return causes


def validate_rule(rule: Any, path: str) -> list[Cause]:
    if not isinstance(rule, dict):
        return [type_invalid_cause(path, rule, "must be of type object")]
    causes: list[Cause] = []
    ops = string_list(rule.get("operations"), child(path, "operations"), causes)
    if not ops:
        causes.append(required_cause(child(path, "operations")))
    if len(ops) > 1 and "*" in ops:
        causes.append(invalid_cause(child(path, "operations"), ops, "if '*' is present, must not specify other operations"))
    for i, op in enumerate(ops):
        if op not in OPERATIONS:
            causes.append(not_supported_cause(index(child(path, "operations"), i), op, OPERATIONS))
    groups = string_list(rule.get("apiGroups"), child(path, "apiGroups"), causes)
    if not groups:
        causes.append(required_cause(child(path, "apiGroups")))
    if len(groups) > 1 and "*" in groups:
        causes.append(invalid_cause(child(path, "apiGroups"), groups, "if '*' is present, must not specify other API groups"))
    versions = string_list(rule.get("apiVersions"), child(path, "apiVersions"), causes)
    if not versions:
        causes.append(required_cause(child(path, "apiVersions")))
    if len(versions) > 1 and "*" in versions:
        causes.append(invalid_cause(child(path, "apiVersions"), versions,
                                    "if '*' is present, must not specify other API versions"))
    for i, v in enumerate(versions):
        if v == "":
            causes.append(required_cause(index(child(path, "apiVersions"), i)))
    resources = string_list(rule.get("resources"), child(path, "resources"), causes)
    causes += _validate_resources(resources, child(path, "resources"))
    scope = rule.get("scope")
    if scope is not None and scope not in SCOPES:
        causes.append(not_supported_cause(child(path, "scope"), scope, SCOPES))
    return causes


def validate_webhook_url(path: str, url: str) -> list[Cause]:
    """webhook.ValidateWebhookURL with https forced."""
    form = "; desired format: https://host[/path]"
    try:
        u = urlsplit(url)
        host = u.netloc.rpartition("@")[2]
    except ValueError as e:
        return [required_cause(path, f"url must be a valid URL: {e}{form}")]
    causes: list[Cause] = []
    if u.scheme != "https":
        causes.append(invalid_cause(path, u.scheme, "'https' is the only allowed URL scheme" + form))
    if not host:
        causes.append(invalid_cause(path, host, "host must be provided" + form))
    if "@" in u.netloc:
        causes.append(invalid_cause(path, u.netloc.rpartition("@")[0], "user information is not permitted in the URL"))
    if u.fragment:
        causes.append(invalid_cause(path, u.fragment, "fragments are not permitted in the URL"))
    if u.query:
        causes.append(invalid_cause(path, u.query, "query parameters are not permitted in the URL"))
    return causes


def validate_webhook_service(path: str, svc: Obj) -> list[Cause]:
    """webhook.ValidateWebhookService."""
    causes: list[Cause] = []
    if not as_str(svc.get("name")):
        causes.append(required_cause(child(path, "name"), "service name is required"))
    if not as_str(svc.get("namespace")):
        causes.append(required_cause(child(path, "namespace"), "service namespace is required"))
    port = svc.get("port")
    errs = ["must be an integer"] if as_int(port) is None else is_valid_port_num(port)
    if errs:
        causes.append(invalid_cause(child(path, "port"), port, "port is not valid: " + ", ".join(errs)))
    p = svc.get("path")
    if p is None:
        return causes
    if not isinstance(p, str):
        return [*causes, type_invalid_cause(child(path, "path"), p, "must be of type string")]
    if p in ("", "/"):
        return causes
    if p == "//":
        return [*causes, invalid_cause(child(path, "path"), p, "segment[0] may not be empty")]
    if not p.startswith("/"):
        causes.append(invalid_cause(child(path, "path"), p, "must start with a '/'"))
    rest = p[1:]
    if rest.endswith("/"):
        rest = rest[:-1]
    for i, step in enumerate(rest.split("/")):
        if not step:
            causes.append(invalid_cause(child(path, "path"), p, f"segment[{i}] may not be empty"))
            continue
        causes += [invalid_cause(child(path, "path"), p, f"segment[{i}]: {m}") for m in is_dns1123_subdomain(step)]
    return causes


def _validate_client_config(cc: Any, path: str) -> list[Cause]:
    if not isinstance(cc, dict):
        cc = {}
    url, service = cc.get("url"), cc.get("service")
    if (url is None) == (service is None):
        return [required_cause(path, "exactly one of url or service is required")]
    causes: list[Cause] = []
    bundle = cc.get("caBundle")
    if bundle is not None:
        try:
            base64.b64decode(bundle if isinstance(bundle, str) else b"!", validate=True)
        except (binascii.Error, ValueError):
            causes.append(invalid_cause(child(path, "caBundle"), "<bytes>", "must be base64-encoded PEM data"))
    if url is not None:
        if not isinstance(url, str):
            return [*causes, type_invalid_cause(child(path, "url"), url, "must be of type string")]
        return causes + validate_webhook_url(child(path, "url"), url)
    if not isinstance(service, dict):
        return [*causes, type_invalid_cause(child(path, "service"), service, "must be of type object")]
    return causes + validate_webhook_service(child(path, "service"), service)


def validate_match_conditions(conds: Any, path: str) -> list[Cause]:
    if conds is None:
        return []
    if not isinstance(conds, list):
        return [type_invalid_cause(path, conds, "must be of type array")]
    causes: list[Cause] = []
    if len(conds) > MAX_MATCH_CONDITIONS:
        causes.append(too_many_cause(path, len(conds), MAX_MATCH_CONDITIONS))
    names: set[str] = set()
    for i, mc in enumerate(conds):
        p = index(path, i)
        mc = as_dict(mc)
        expr = as_str(mc.get("expression")).strip()
        if not expr:
            causes.append(required_cause(child(p, "expression")))
        else:
            from apiserver.admission.matchconditions import compile_error

            err = compile_error(expr)
            if err:
                causes.append(invalid_cause(child(p, "expression"), expr, err))
        name = as_str(mc.get("name"))
        if not name:
            causes.append(required_cause(child(p, "name")))
        else:
            causes += [invalid_cause(child(p, "name"), name, m) for m in is_qualified_name(name)]
            if name in names:
                causes.append(duplicate_cause(child(p, "name"), name))
            names.add(name)
    return causes


def _validate_review_versions(versions: Any, path: str, require_known: bool) -> list[Cause]:
    causes: list[Cause] = []
    vs = string_list(versions, path, causes)
    if not vs:
        return [*causes, required_cause(path, f"must specify one of {', '.join(REVIEW_VERSIONS)}")]
    seen: set[str] = set()
    for i, v in enumerate(vs):
        if v in seen:
            causes.append(invalid_cause(index(path, i), v, "duplicate version"))
            continue
        seen.add(v)
        causes += [invalid_cause(index(path, i), v, m) for m in is_dns1035_label(v)]
    if require_known and not any(v in REVIEW_VERSIONS for v in vs):
        causes.append(invalid_cause(path, vs, f"must include at least one of {', '.join(REVIEW_VERSIONS)}"))
    return causes


class _Options:
    """Which rules apply: all on create; on update, those the old object already met."""

    def __init__(self, old: Obj | None = None) -> None:
        old_hooks = [as_dict(h) for h in as_list((old or {}).get("webhooks"))]
        self.require_no_side_effects = old is None or all(h.get("sideEffects") in NO_SIDE_EFFECTS for h in old_hooks)
        self.require_known_versions = old is None or all(
            not as_list(h.get("admissionReviewVersions"))
            or any(v in REVIEW_VERSIONS for v in as_list(h.get("admissionReviewVersions"))) for h in old_hooks)
        names = [h.get("name") for h in old_hooks]
        self.require_unique_names = old is None or len(names) == len(set(map(str, names)))


def validate_webhooks(obj: Obj, mutating: bool, opts: _Options, old: Obj | None = None) -> list[Cause]:
    causes: list[Cause] = []
    hooks = obj.get("webhooks")
    if hooks is not None and not isinstance(hooks, list):
        return [type_invalid_cause("webhooks", hooks, "must be of type array")]
    # unchanged match conditions are not compiled again (upstream's ignoreMatchConditions)
    old_conditions = [as_dict(h).get("matchConditions") for h in as_list((old or {}).get("webhooks"))]
    new_conditions = [as_dict(h).get("matchConditions") for h in hooks or []]
    check_conditions = old is None or old_conditions != new_conditions
    names: set[str] = set()
    allowed_effects = NO_SIDE_EFFECTS if opts.require_no_side_effects else SIDE_EFFECTS
    for i, hook in enumerate(hooks or []):
        p = index("webhooks", i)
        if not isinstance(hook, dict):
            causes.append(type_invalid_cause(p, hook, "must be of type object"))
            continue
        name = as_str(hook.get("name"))
        causes += is_fully_qualified_name(child(p, "name"), name)
        rules = hook.get("rules")
        if rules is not None and not isinstance(rules, list):
            causes.append(type_invalid_cause(child(p, "rules"), rules, "must be of type array"))
        for j, rule in enumerate(as_list(rules)):
            causes += validate_rule(rule, index(child(p, "rules"), j))
        fp = hook.get("failurePolicy")
        if fp is not None and fp not in FAILURE_POLICIES:
            causes.append(not_supported_cause(child(p, "failurePolicy"), fp, FAILURE_POLICIES))
        mp = hook.get("matchPolicy")
        if mp is not None and mp not in MATCH_POLICIES:
            causes.append(not_supported_cause(child(p, "matchPolicy"), mp, MATCH_POLICIES))
        se = hook.get("sideEffects")
        if se is None:
            causes.append(required_cause(child(p, "sideEffects"), f"must specify one of {', '.join(allowed_effects)}"))
        elif se not in allowed_effects:
            causes.append(not_supported_cause(child(p, "sideEffects"), se, allowed_effects))
        ts = hook.get("timeoutSeconds")
        if ts is not None and not 1 <= (as_int(ts) or 0) <= 30:
            causes.append(invalid_cause(child(p, "timeoutSeconds"), ts, "the timeout value must be between 1 and 30 seconds"))
        for sel in ("namespaceSelector", "objectSelector"):
            causes += validate_label_selector(hook.get(sel), child(p, sel))
        if mutating:
            rp = hook.get("reinvocationPolicy")
            if rp is not None and rp not in REINVOCATION_POLICIES:
                causes.append(not_supported_cause(child(p, "reinvocationPolicy"), rp, REINVOCATION_POLICIES))
        causes += _validate_client_config(hook.get("clientConfig"), child(p, "clientConfig"))
        if check_conditions:
            causes += validate_match_conditions(hook.get("matchConditions"), child(p, "matchConditions"))
        causes += _validate_review_versions(hook.get("admissionReviewVersions"), child(p, "admissionReviewVersions"),
                                            opts.require_known_versions)
        if opts.require_unique_names and name:
            if name in names:
                causes.append(duplicate_cause(child(p, "name"), name))
            names.add(name)
    return causes


class WebhookConfigurationStrategy(Strategy):
    #: metadata.generation follows changes of `webhooks` (upstream's strategy)
    tracks_generation = True
    mutating = False

    def default(self, obj: Obj) -> None:
        for hook in as_list(obj.get("webhooks")):
            if isinstance(hook, dict):
                default_webhook(hook, self.mutating)

    def spec_changed(self, new: Obj, old: Obj) -> bool:
        return new.get("webhooks") != old.get("webhooks")

    def validate(self, obj: Obj, namespaced: bool) -> list[Cause]:
        return super().validate(obj, namespaced) + validate_webhooks(obj, self.mutating, _Options())

    def validate_update(self, new: Obj, old: Obj, namespaced: bool) -> list[Cause]:
        from apimachinery.validation import validate_object_meta_update

        causes = Strategy.validate(self, new, namespaced)
        causes += validate_webhooks(new, self.mutating, _Options(old), old)
        causes += validate_object_meta_update(new.get("metadata") or {}, old.get("metadata") or {})
        return causes

    def table_printer(self) -> Any:
        """Upstream's printer: NAME, WEBHOOKS, AGE."""
        from apiserver.tables import AGE, NAME, age

        def row(o: Obj, now: dt.datetime) -> list[Any]:
            meta = as_dict(o.get("metadata"))
            return [meta.get("name"), len(as_list(o.get("webhooks"))), age(meta.get("creationTimestamp"), now)]

        webhooks = ("Webhooks", "integer", "", 0, "Webhooks indicates the number of webhooks registered in this "
                                                  "configuration")
        return [NAME, webhooks, AGE], row


class MutatingWebhookConfigurationStrategy(WebhookConfigurationStrategy):
    mutating = True


class ValidatingWebhookConfigurationStrategy(WebhookConfigurationStrategy):
    mutating = False
