"""Which admission webhooks a request goes to: rules, scope and label selectors, as upstream's
admission/plugin/webhook (rules.Matcher, namespace and object matchers, ShouldCallHook).

Pure functions over plain dicts, so that they can be tested without a server.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from apimachinery.selectors import LabelSelector, LabelSelectorError, everything, selector_from_label_selector

#: upstream never calls webhooks for these (rules.IsExemptAdmissionConfigurationResource): a bad
#: webhook must not be able to block its own repair
EXEMPT_GROUP = "admissionregistration.k8s.io"
EXEMPT_RESOURCES = frozenset({
    "validatingwebhookconfigurations", "mutatingwebhookconfigurations", "validatingadmissionpolicies",
    "validatingadmissionpolicybindings", "mutatingadmissionpolicies", "mutatingadmissionpolicybindings",
})


def is_exempt(group: str, plural: str) -> bool:
    return group == EXEMPT_GROUP and plural in EXEMPT_RESOURCES


@dataclass(frozen=True, slots=True)
class Request:
    """What the rules look at: the operation and the resource as the request named it."""

    operation: str
    group: str
    version: str
    resource: str
    subresource: str
    #: the request's namespace ("" for cluster-scoped objects); upstream sets it to the
    #: namespace's own name for requests on a namespace object
    namespace: str

    @property
    def is_namespace_object(self) -> bool:
        return self.group == "" and self.resource == "namespaces"


def _exact_or_wildcard(items: Any, value: str) -> bool:
    return isinstance(items, list) and any(i == "*" or i == value for i in items)


def _split_resource(r: str) -> tuple[str, str]:
    res, _, sub = r.partition("/")
    return res, sub


def rule_matches(rule: Mapping[str, Any], req: Request) -> bool:
    """rules.Matcher.Matches: scope, operation, group, version and resource[/subresource]."""
    scope = rule.get("scope") or "*"
    if scope == "Namespaced":
        # namespace objects are cluster-scoped, though their requests carry a namespace
        if req.is_namespace_object or not req.namespace:
            return False
    elif scope == "Cluster":
        if not (req.is_namespace_object or not req.namespace):
            return False
    elif scope != "*":
        return False
    if not _exact_or_wildcard(rule.get("operations"), req.operation):
        return False
    if not _exact_or_wildcard(rule.get("apiGroups"), req.group):
        return False
    if not _exact_or_wildcard(rule.get("apiVersions"), req.version):
        return False
    for r in rule.get("resources") or []:
        if not isinstance(r, str):
            continue
        res, sub = _split_resource(r)
        if (res == "*" or res == req.resource) and (sub == "*" or sub == req.subresource):
            return True
    return False


def parse_selector(d: Any) -> LabelSelector | str:
    """A webhook's namespace/object selector; unset is everything; an unparsable one → its error."""
    if d is None:
        return everything()
    if not isinstance(d, dict):
        return "selector must be an object"
    try:
        return selector_from_label_selector(d)
    except (LabelSelectorError, ValueError, TypeError) as e:
        return str(e)


def labels_of(obj: Any) -> dict[str, str] | None:
    """metadata.labels, or None when `obj` is no object (matchObject's accessor failure)."""
    if not isinstance(obj, dict):
        return None
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        return None
    labels = meta.get("labels")
    return labels if isinstance(labels, dict) else {}


def object_selector_matches(selector: LabelSelector, obj: Any, old: Any) -> bool:
    """MatchObjectSelector: the new or the old object's labels; an empty selector matches all."""
    if selector.empty:
        return True
    for o in (obj, old):
        labels = labels_of(o)
        if labels is not None and selector.matches(labels):
            return True
    return False


@dataclass(slots=True)
class Hook:
    """One webhook of one configuration, parsed once per version of the configuration."""

    configuration: str
    index: int  # within its configuration
    spec: dict[str, Any]
    mutating: bool
    namespace_selector: LabelSelector | str = field(default_factory=everything)
    object_selector: LabelSelector | str = field(default_factory=everything)

    @property
    def name(self) -> str:
        return str(self.spec.get("name") or "")

    @property
    def uid(self) -> str:
        """Unique across configurations (upstream: "<configuration>/<webhook>/<index>")."""
        return f"{self.configuration}/{self.name}/{self.index}"

    @property
    def failure_policy(self) -> str:
        return self.spec.get("failurePolicy") or "Fail"

    @property
    def match_policy(self) -> str:
        return self.spec.get("matchPolicy") or "Equivalent"


def hooks_of(configurations: list[dict[str, Any]], mutating: bool) -> list[Hook]:
    """Every webhook, configurations sorted by name (upstream's order), webhooks in their order."""
    out: list[Hook] = []
    for cfg in sorted(configurations, key=lambda c: str((c.get("metadata") or {}).get("name") or "")):
        name = str((cfg.get("metadata") or {}).get("name") or "")
        for i, spec in enumerate(cfg.get("webhooks") or []):
            if not isinstance(spec, dict):
                continue
            out.append(Hook(name, i, spec, mutating, parse_selector(spec.get("namespaceSelector")),
                            parse_selector(spec.get("objectSelector"))))
    return out
