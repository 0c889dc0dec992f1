"""Strategies for flowcontrol.apiserver.k8s.io/v1 FlowSchema and PriorityLevelConfiguration (+status).

Defaults and validation follow upstream's pkg/apis/flowcontrol/v1/defaults.go and
validation/validation.go (1.31, requests at v1: a Limited level may have zero
nominalConcurrencyShares). The mandatory objects (apiserver/flowcontrol/config.py) keep their
specs — but for the `exempt` level's `spec.exempt`, which administrators may tune. What the
objects do is apiserver/flowcontrol/.
"""

from __future__ import annotations

import math
from typing import Any

from apimachinery.validation import (
    GoValue,
    child,
    duplicate_cause,
    forbidden_cause,
    go_string_slice,
    index,
    invalid_cause,
    name_is_dns_label,
    name_is_dns_subdomain,
    not_supported_cause,
    required_cause,
)
from apiserver.flowcontrol import config
from apiserver.registry.base import Cause, Obj, Strategy, as_dict, as_int, as_list, as_str

DISTINGUISHER_METHODS = ("ByNamespace", "ByUser")
SUBJECT_KINDS = ("Group", "ServiceAccount", "User")
LEVEL_TYPES = ("Exempt", "Limited")
LIMIT_RESPONSE_TYPES = ("Queue", "Reject")
SUPPORTED_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "proxy", "update", "watch")
MAX_QUEUES = 10_000_000
#: shuffle sharding uses at most this many bits of a flow's hash (upstream's shufflesharding.MaxHashBits)
MAX_HASH_BITS = 60
#: the annotation v1beta3 used to carry a zero nominalConcurrencyShares through conversions
PRESERVE_ZERO_SHARES = "flowcontrol.k8s.io/v1beta3-preserve-zero-concurrency-shares"
NS_ERR_INTRO = "each member of this list must be '*' or a DNS-1123 label; "


def required_entropy_bits(deck_size: int, hand_size: int) -> int:
    """Bits of a hash that dealing `hand_size` of `deck_size` queues consumes (upstream's estimate)."""
    return math.ceil(math.log2(deck_size) * hand_size)


# -- defaulting ---------------------------------------------------------------------------


def default_flow_schema(obj: Obj) -> None:
    spec = obj.get("spec")
    if isinstance(spec, dict) and not spec.get("matchingPrecedence"):
        spec["matchingPrecedence"] = 1000


def default_priority_level(obj: Obj) -> None:
    spec = as_dict(obj.get("spec"))
    limited = spec.get("limited")
    if isinstance(limited, dict):
        if limited.get("nominalConcurrencyShares") is None:
            limited["nominalConcurrencyShares"] = 30
        if limited.get("lendablePercent") is None:
            limited["lendablePercent"] = 0
        queuing = as_dict(limited.get("limitResponse")).get("queuing")
        if isinstance(queuing, dict):
            for field, value in (("handSize", 8), ("queues", 64), ("queueLengthLimit", 50)):
                if not queuing.get(field):
                    queuing[field] = value
    exempt = spec.get("exempt")
    if isinstance(exempt, dict):
        for field in ("nominalConcurrencyShares", "lendablePercent"):
            if exempt.get(field) is None:
                exempt[field] = 0


# -- FlowSchema validation ----------------------------------------------------------------


def _wildcard_list(values: list[str], path: str, what: str, required: str, others: str) -> list[Cause]:
    """The checks every rule list shares: not empty, and `*` alone when present."""
    if not values:
        return [required_cause(child(path, what), required)]
    if "*" in values and len(values) > 1:
        return [invalid_cause(child(path, what), GoValue(go_string_slice(values)),
                              f"if '*' is present, must not specify other {others}")]
    return []


def _validate_verbs(rule: Obj, path: str) -> list[Cause]:
    verbs = [as_str(v) for v in as_list(rule.get("verbs"))]
    causes = _wildcard_list(verbs, path, "verbs", "verbs must contain at least one value", "verbs")
    if not causes and "*" not in verbs and not set(verbs) <= set(SUPPORTED_VERBS):
        causes.append(not_supported_cause(child(path, "verbs"), GoValue(go_string_slice(verbs)), SUPPORTED_VERBS))
    return causes


def validate_non_resource_url(url: str, path: str) -> Cause | None:
    """upstream's ValidateNonResourceURLPath: absolute, no blanks or `//`, `*` only as a `/*` suffix."""
    if not url:
        return invalid_cause(path, url, "must not be empty")
    if url == "/":
        return None
    if not url.startswith("/"):
        return invalid_cause(path, url, "must start with slash")
    if " " in url:
        return invalid_cause(path, url, "must not contain white-space")
    if "//" in url:
        return invalid_cause(path, url, "must not contain double slash")
    stars = url.count("*")
    if stars > 1 or (stars == 1 and not url.endswith("/*")):
        return invalid_cause(path, url, "wildcard can only do suffix matching")
    return None


def _validate_resource_rule(rule: Obj, path: str) -> list[Cause]:
    causes = _validate_verbs(rule, path)
    for what, message, others in (("apiGroups", "resource rules must supply at least one api group", "api groups"),
                                  ("resources", "resource rules must supply at least one resource", "resources")):
        values = [as_str(v) for v in as_list(rule.get(what))]
        causes += _wildcard_list(values, path, what, message, others)
    namespaces = [as_str(v) for v in as_list(rule.get("namespaces"))]
    if not namespaces and rule.get("clusterScope") is not True:
        causes.append(required_cause(child(path, "namespaces"),
                                     "resource rules that are not cluster scoped must supply at least one namespace"))
    elif "*" in namespaces:
        if len(namespaces) > 1:
            causes.append(invalid_cause(child(path, "namespaces"), GoValue(go_string_slice(namespaces)),
                                        "if '*' is present, must not specify other namespaces"))
    else:
        for i, ns in enumerate(namespaces):
            causes += [invalid_cause(index(child(path, "namespaces"), i), ns, NS_ERR_INTRO + m)
                       for m in name_is_dns_label(ns)]
    return causes


def _validate_non_resource_rule(rule: Obj, path: str) -> list[Cause]:
    causes = _validate_verbs(rule, path)
    urls = [as_str(v) for v in as_list(rule.get("nonResourceURLs"))]
    causes += _wildcard_list(urls, path, "nonResourceURLs", "nonResourceURLs must contain at least one value",
                             "non-resource URLs")
    if urls and "*" not in urls:
        for i, url in enumerate(urls):
            cause = validate_non_resource_url(url, index(child(path, "nonResourceURLs"), i))
            if cause is not None:
                causes.append(cause)
    return causes


def _validate_subject(subject: Obj, path: str) -> list[Cause]:
    kind = subject.get("kind")
    members = {"User": "user", "Group": "group", "ServiceAccount": "serviceAccount"}
    if kind not in members:
        return [not_supported_cause(child(path, "kind"), kind if kind is not None else "", SUBJECT_KINDS)]
    own = members[kind]
    causes: list[Cause] = []
    body = subject.get(own)
    if not isinstance(body, dict):
        causes.append(required_cause(child(path, own), f"{own} is required when subject kind is '{kind}'"))
    elif kind == "ServiceAccount":
        name, namespace = as_str(body.get("name")), as_str(body.get("namespace"))
        sa_path = child(path, own)
        if not name:
            causes.append(required_cause(child(sa_path, "name")))
        elif name != "*":
            causes += [invalid_cause(child(sa_path, "name"), name, m) for m in name_is_dns_subdomain(name)]
        if namespace:
            causes += [invalid_cause(child(sa_path, "namespace"), namespace, m) for m in name_is_dns_label(namespace)]
        else:
            causes.append(required_cause(child(sa_path, "namespace"), "must specify namespace for service account"))
    elif not as_str(body.get("name")):
        causes.append(required_cause(child(child(path, own), "name")))
    for other_kind, member in (("ServiceAccount", "serviceAccount"), ("User", "user"), ("Group", "group")):
        if member != own and subject.get(member) is not None:
            causes.append(forbidden_cause(child(path, member),
                                          f"{member} is forbidden when subject kind is not '{other_kind}'"))
    return causes


def _validate_policy_rules(rule: Obj, path: str) -> list[Cause]:
    causes: list[Cause] = []
    subjects = as_list(rule.get("subjects"))
    if not subjects:
        causes.append(required_cause(child(path, "subjects"), "subjects must contain at least one value"))
    for i, s in enumerate(subjects):
        causes += _validate_subject(as_dict(s), index(child(path, "subjects"), i))
    resource_rules, non_resource_rules = as_list(rule.get("resourceRules")), as_list(rule.get("nonResourceRules"))
    if not resource_rules and not non_resource_rules:
        causes.append(required_cause(path, "at least one of resourceRules and nonResourceRules has to be non-empty"))
    for i, r in enumerate(resource_rules):
        causes += _validate_resource_rule(as_dict(r), index(child(path, "resourceRules"), i))
    for i, r in enumerate(non_resource_rules):
        causes += _validate_non_resource_rule(as_dict(r), index(child(path, "nonResourceRules"), i))
    return causes


def validate_flow_schema_spec(name: str, spec: Obj) -> list[Cause]:
    causes: list[Cause] = []
    precedence = as_int(spec.get("matchingPrecedence")) or 0
    if precedence <= 0:
        causes.append(invalid_cause("spec.matchingPrecedence", precedence, "must be a positive value"))
    if precedence > config.MAX_MATCHING_PRECEDENCE:
        causes.append(invalid_cause("spec.matchingPrecedence", precedence,
                                    f"must not be greater than {config.MAX_MATCHING_PRECEDENCE}"))
    if precedence == 1 and name != config.EXEMPT:
        causes.append(invalid_cause("spec.matchingPrecedence", precedence,
                                    "only the schema named 'exempt' may have matchingPrecedence 1"))
    method = spec.get("distinguisherMethod")
    if method is not None and as_dict(method).get("type") not in DISTINGUISHER_METHODS:
        causes.append(not_supported_cause("spec.distinguisherMethod.type", method, DISTINGUISHER_METHODS))
    level = as_str(as_dict(spec.get("priorityLevelConfiguration")).get("name"))
    if level:
        causes += [invalid_cause("spec.priorityLevelConfiguration.name", level, m)
                   for m in name_is_dns_subdomain(level)]
    else:
        causes.append(required_cause("spec.priorityLevelConfiguration.name", "must reference a priority level"))
    for i, rule in enumerate(as_list(spec.get("rules"))):
        causes += _validate_policy_rules(as_dict(rule), index("spec.rules", i))
    return causes


def _validate_conditions(status: Any) -> list[Cause]:
    """Both kinds' status: condition types given and unique."""
    causes: list[Cause] = []
    seen: set[str] = set()
    for i, cond in enumerate(as_list(as_dict(status).get("conditions"))):
        path = index("status.conditions", i)
        ctype = as_str(as_dict(cond).get("type"))
        if ctype in seen:
            causes.append(duplicate_cause(child(path, "type"), ctype))
        seen.add(ctype)
        if not ctype:
            causes.append(required_cause(child(path, "type"), "must not be empty"))
    return causes


def _mandatory_spec_cause(plural: str, obj: Obj) -> Cause | None:
    """The mandatory objects' specs are fixed — but for the exempt level's `exempt` field."""
    name = as_str(as_dict(obj.get("metadata")).get("name"))
    fixed = config.MANDATORY_SPECS[plural].get(name)
    if fixed is None:
        return None
    spec = as_dict(obj.get("spec"))
    if plural == "prioritylevelconfigurations" and name == config.EXEMPT:
        if config.specs_equal({**spec, "exempt": fixed["exempt"]}, fixed):
            return None
        return invalid_cause("spec", spec, f"spec of '{name}' except the 'spec.exempt' field must equal the fixed value")
    if config.specs_equal(spec, fixed):
        return None
    return invalid_cause("spec", spec, f"spec of '{name}' must equal the fixed value")


class _ConfigurationStrategy(Strategy):
    """What both kinds share: generations, a status of conditions, the mandatory objects' specs."""

    has_status = True
    tracks_generation = True
    status_writable_meta = ()  # a /status write changes the status only (upstream's status strategies)
    plural = ""

    def validate_spec(self, obj: Obj) -> list[Cause]:
        raise NotImplementedError

    def validate(self, obj: Obj, namespaced: bool) -> list[Cause]:
        causes = super().validate(obj, namespaced) + self.validate_spec(obj)
        mandatory = _mandatory_spec_cause(self.plural, obj)
        if mandatory is not None:
            causes.append(mandatory)
        return causes + _validate_conditions(obj.get("status"))

    def validate_status_update(self, new: Obj, old: Obj) -> list[Cause]:
        return _validate_conditions(new.get("status"))


class FlowSchemaStrategy(_ConfigurationStrategy):
    plural = "flowschemas"

    def default(self, obj: Obj) -> None:
        default_flow_schema(obj)

    def validate_spec(self, obj: Obj) -> list[Cause]:
        return validate_flow_schema_spec(as_str(as_dict(obj.get("metadata")).get("name")), as_dict(obj.get("spec")))


# -- PriorityLevelConfiguration validation ------------------------------------------------


def _validate_percent(value: Any, path: str) -> list[Cause]:
    if value is not None and not 0 <= value <= 100:
        return [invalid_cause(path, value, "must be between 0 and 100, inclusive")]
    return []


def _validate_queuing(queuing: Obj, path: str) -> list[Cause]:
    causes: list[Cause] = []
    length_limit = as_int(queuing.get("queueLengthLimit")) or 0
    if length_limit <= 0:
        causes.append(invalid_cause(child(path, "queueLengthLimit"), length_limit, "must be positive"))
    queues = as_int(queuing.get("queues")) or 0
    if queues <= 0:
        causes.append(invalid_cause(child(path, "queues"), queues, "must be positive"))
    elif queues > MAX_QUEUES:
        causes.append(invalid_cause(child(path, "queues"), queues, f"must not be greater than {MAX_QUEUES}"))
    hand_size = as_int(queuing.get("handSize")) or 0
    if hand_size <= 0:
        causes.append(invalid_cause(child(path, "handSize"), hand_size, "must be positive"))
    elif hand_size > queues:
        causes.append(invalid_cause(child(path, "handSize"), hand_size, f"should not be greater than queues ({queues})"))
    elif required_entropy_bits(queues, hand_size) > MAX_HASH_BITS:
        causes.append(invalid_cause(child(path, "handSize"), hand_size,
                                    f"required entropy bits of deckSize {queues} and handSize {hand_size} should not "
                                    f"be greater than {MAX_HASH_BITS}"))
    return causes


def _validate_limit_response(response: Obj, path: str) -> list[Cause]:
    rtype = response.get("type")
    queuing = response.get("queuing")
    if rtype == "Reject":
        if queuing is not None:
            return [forbidden_cause(child(path, "queuing"), "must be nil if limited.limitResponse.type is not Limited")]
        return []
    if rtype == "Queue":
        if not isinstance(queuing, dict):
            return [required_cause(child(path, "queuing"), "must not be empty if limited.limitResponse.type is Limited")]
        return _validate_queuing(queuing, child(path, "queuing"))
    return [not_supported_cause(child(path, "type"), rtype if rtype is not None else "", LIMIT_RESPONSE_TYPES)]


def _validate_limited(limited: Obj, path: str) -> list[Cause]:
    causes: list[Cause] = []
    shares = as_int(limited.get("nominalConcurrencyShares"))
    if shares is not None and shares < 0:
        causes.append(invalid_cause(child(path, "nominalConcurrencyShares"), shares, "must be a non-negative integer"))
    causes += _validate_limit_response(as_dict(limited.get("limitResponse")), child(path, "limitResponse"))
    causes += _validate_percent(as_int(limited.get("lendablePercent")), child(path, "lendablePercent"))
    borrowing = as_int(limited.get("borrowingLimitPercent"))
    if borrowing is not None and borrowing < 0:
        causes.append(invalid_cause(child(path, "borrowingLimitPercent"), borrowing,
                                    "if specified, must be a non-negative integer"))
    return causes


def _validate_exempt(exempt: Obj, path: str) -> list[Cause]:
    causes: list[Cause] = []
    shares = as_int(exempt.get("nominalConcurrencyShares"))
    if shares is not None and shares < 0:
        causes.append(invalid_cause(child(path, "nominalConcurrencyShares"), shares, "must be a non-negative number"))
    return causes + _validate_percent(as_int(exempt.get("lendablePercent")), child(path, "lendablePercent"))


def validate_priority_level_spec(name: str, spec: Obj) -> list[Cause]:
    causes: list[Cause] = []
    ltype = spec.get("type")
    if (name == config.EXEMPT) != (ltype == "Exempt"):
        causes.append(invalid_cause("spec.type", ltype if ltype is not None else "",
                                    "type must be 'Exempt' if and only if name is 'exempt'"))
    limited, exempt = spec.get("limited"), spec.get("exempt")
    if ltype == "Exempt":
        if limited is not None:
            causes.append(forbidden_cause("spec.limited", "must be nil if the type is not Limited"))
        if exempt is not None:
            causes += _validate_exempt(as_dict(exempt), "spec.exempt")
    elif ltype == "Limited":
        if exempt is not None:
            causes.append(forbidden_cause("spec.exempt", "must be nil if the type is Limited"))
        if limited is None:
            causes.append(required_cause("spec.limited", "must not be empty when type is Limited"))
        else:
            causes += _validate_limited(as_dict(limited), "spec.limited")
    else:
        causes.append(not_supported_cause("spec.type", ltype if ltype is not None else "", LEVEL_TYPES))
    return causes


class PriorityLevelConfigurationStrategy(_ConfigurationStrategy):
    plural = "prioritylevelconfigurations"

    def default(self, obj: Obj) -> None:
        default_priority_level(obj)

    def validate_spec(self, obj: Obj) -> list[Cause]:
        meta = as_dict(obj.get("metadata"))
        causes = []
        if PRESERVE_ZERO_SHARES in as_dict(meta.get("annotations")):
            causes.append(forbidden_cause("metadata.annotations", f"annotation '{PRESERVE_ZERO_SHARES}' is forbidden"))
        return causes + validate_priority_level_spec(as_str(meta.get("name")), as_dict(obj.get("spec")))
