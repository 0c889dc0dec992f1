"""The audit policy (`--audit-policy-file`): which requests are audited, at which level.

An audit.k8s.io/v1 `Policy` (YAML or JSON) as upstream's kube-apiserver reads it: its rules are
tried in order and the first that matches the request sets the level (`None`, `Metadata`,
`Request`, `RequestResponse`); a request no rule matches is not audited. A rule matches on
users, userGroups, verbs, resources (group, resources — `pods`, `pods/log`, `*`, `*/log`,
`pods/*` — and resourceNames), namespaces (`""`: cluster-scoped) and nonResourceURLs (exact, `*`,
or a prefix ending in `*`); its omitStages add to the policy's, its omitManagedFields (when set)
replaces the policy's. A file that does not decode or validate is an error (`PolicyError`), with
messages worded as upstream's field errors, so the apiserver refuses to start on it.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

log = logging.getLogger("apiserver.audit")

API_VERSION = "audit.k8s.io/v1"
LEVELS = ("None", "Metadata", "Request", "RequestResponse")
#: a level's rank: compare levels with these (`rank >= RANK["Request"]`)
RANK = {name: i for i, name in enumerate(LEVELS)}
STAGES = ("RequestReceived", "ResponseStarted", "ResponseComplete", "Panic")

_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_RULE_FIELDS = {"level", "users", "userGroups", "verbs", "resources", "namespaces", "nonResourceURLs",
                "omitStages", "omitManagedFields"}
_POLICY_FIELDS = {"apiVersion", "kind", "metadata", "rules", "omitStages", "omitManagedFields"}


class PolicyError(ValueError):
    """The policy file cannot be used (unreadable, undecodable, or invalid)."""


@dataclass(frozen=True, slots=True)
class GroupResources:
    group: str = ""
    resources: tuple[str, ...] = ()
    resource_names: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Rule:
    level: str
    users: frozenset[str] = frozenset()
    user_groups: frozenset[str] = frozenset()
    verbs: frozenset[str] = frozenset()
    resources: tuple[GroupResources, ...] = ()
    namespaces: frozenset[str] = frozenset()
    non_resource_urls: tuple[str, ...] = ()
    omit_stages: frozenset[str] = frozenset()
    omit_managed_fields: bool | None = None

    def matches(self, user: Any, attrs: Attributes) -> bool:
        """upstream's ruleMatches: every field the rule sets must match."""
        if self.users and (user is None or user.name not in self.users):
            return False
        if self.user_groups and (user is None or self.user_groups.isdisjoint(user.groups)):
            return False
        if self.verbs and attrs.verb not in self.verbs:
            return False
        if self.namespaces or self.resources:
            return self._matches_resource(attrs)
        if self.non_resource_urls:
            return not attrs.is_resource and any(_path_matches(attrs.path, spec) for spec in self.non_resource_urls)
        return True

    def _matches_resource(self, a: Attributes) -> bool:
        if not a.is_resource:
            return False
        if self.namespaces and a.namespace not in self.namespaces:  # cluster-scoped: ""
            return False
        if not self.resources:
            return True
        combined = f"{a.resource}/{a.subresource}" if a.subresource else a.resource
        for gr in self.resources:
            if gr.group != a.group:
                continue
            if not gr.resources:
                return True
            if gr.resource_names and a.name not in gr.resource_names:
                continue
            for res in gr.resources:
                if res == combined or res == "*":
                    return True
                if a.subresource and res.startswith("*/") and res[2:] == a.subresource:
                    return True
                if res.endswith("/*") and res[:-2] == a.resource:  # the resource and all its subresources
                    return True
        return False


def _path_matches(path: str, spec: str) -> bool:
    return spec == "*" or spec == path or (spec.endswith("*") and path.startswith(spec.rstrip("*")))


@dataclass(frozen=True, slots=True)
class Attributes:
    """What a rule looks at besides the user (upstream's authorizer attributes)."""

    verb: str
    is_resource: bool
    path: str = ""
    group: str = ""
    namespace: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""


@dataclass(frozen=True, slots=True)
class RequestAuditConfig:
    level: str
    omit_stages: frozenset[str] = frozenset()
    omit_managed_fields: bool = False


NOT_AUDITED = RequestAuditConfig("None")


@dataclass(frozen=True, slots=True)
class Policy:
    rules: tuple[Rule, ...]
    omit_stages: frozenset[str] = frozenset()
    omit_managed_fields: bool = False

    def evaluate(self, user: Any, attrs: Attributes) -> RequestAuditConfig:
        """The first matching rule's level, stages to omit and managedFields choice."""
        for rule in self.rules:
            if rule.matches(user, attrs):
                if rule.level == "None":
                    return NOT_AUDITED
                return RequestAuditConfig(
                    rule.level, self.omit_stages | rule.omit_stages,
                    self.omit_managed_fields if rule.omit_managed_fields is None else rule.omit_managed_fields)
        return NOT_AUDITED


# -- loading ----------------------------------------------------------------------------------


def load_policy_file(path: str | Path) -> Policy:
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise PolicyError(f"failed to read file path {str(path)!r}: {e.strerror or e}") from None
    try:
        return load_policy(text)
    except PolicyError as e:
        raise PolicyError(f"{e}: from file {path}") from None


def load_policy(text: str) -> Policy:
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise PolicyError(f"failed decoding: {e}") from None
    if not isinstance(doc, dict):
        raise PolicyError("failed decoding: the policy must be an object with apiVersion, kind and rules")
    if doc.get("kind") != "Policy" or doc.get("apiVersion") != API_VERSION:
        raise PolicyError(f"failed decoding: unknown group version field {doc.get('apiVersion')!r}, kind "
                          f"{doc.get('kind')!r} in policy (want apiVersion {API_VERSION}, kind Policy)")
    _warn_unknown(doc, _POLICY_FIELDS, "")
    errs: list[str] = []
    raw_rules = _list(doc.get("rules"), "rules")
    rules = []
    for i, r in enumerate(raw_rules):
        if not isinstance(r, dict):
            raise PolicyError(f"failed decoding: rules[{i}]: expected an object, got {_type(r)}")
        _warn_unknown(r, _RULE_FIELDS, f"rules[{i}].")
        rules.append(_rule(r, f"rules[{i}]", errs))
    omit = _strings(doc.get("omitStages"), "omitStages")
    errs += _validate_stages(omit, "omitStages")
    if errs:
        raise PolicyError(_aggregate(errs))
    if not rules:
        raise PolicyError("loaded illegal policy with 0 rules")
    return Policy(tuple(rules), frozenset(omit), _bool(doc.get("omitManagedFields"), "omitManagedFields") or False)


def _rule(r: dict[str, Any], path: str, errs: list[str]) -> Rule:
    level = r.get("level")
    if level is None or level == "":
        errs.append(f"{path}.level: Required value")
    elif level not in LEVELS:
        errs.append(f'{path}.level: Unsupported value: {_quote(level)}: supported values: '
                    + ", ".join(f'"{v}"' for v in LEVELS))
    urls = _strings(r.get("nonResourceURLs"), f"{path}.nonResourceURLs")
    for i, u in enumerate(urls):
        if u == "*":
            continue
        if not u.startswith("/"):
            errs.append(f"{path}.nonResourceURLs[{i}]: Invalid value: {_quote(u)}: "
                        "non-resource URL rules must begin with a '/' character")
        star = u.find("*")
        if star != -1 and star != len(u) - 1:
            errs.append(f"{path}.nonResourceURLs[{i}]: Invalid value: {_quote(u)}: "
                        "non-resource URL wildcards '*' must be the final character of the rule")
    groups = []
    for j, gr in enumerate(_list(r.get("resources"), f"{path}.resources")):
        if not isinstance(gr, dict):
            raise PolicyError(f"failed decoding: {path}.resources[{j}]: expected an object, got {_type(gr)}")
        _warn_unknown(gr, {"group", "resources", "resourceNames"}, f"{path}.resources[{j}].")
        g = gr.get("group") or ""
        if not isinstance(g, str):
            raise PolicyError(f"failed decoding: {path}.resources[{j}].group: expected a string, got {_type(g)}")
        resources = _strings(gr.get("resources"), f"{path}.resources[{j}].resources")
        names = _strings(gr.get("resourceNames"), f"{path}.resources[{j}].resourceNames")
        if g and (len(g) > 253 or not _DNS1123_SUBDOMAIN.match(g)):
            errs.append(f"{path}.resources.group: Invalid value: {_quote(g)}: a lowercase RFC 1123 subdomain must "
                        "consist of lower case alphanumeric characters, '-' or '.', and must start and end with "
                        "an alphanumeric character")
        if names and not resources:
            errs.append(f"{path}.resources.resourceNames: Invalid value: {names}: "
                        "using resourceNames requires at least one resource")
        groups.append(GroupResources(g, tuple(resources), tuple(names)))
    namespaces = _strings(r.get("namespaces"), f"{path}.namespaces")
    if urls and (groups or namespaces):
        errs.append(f"{path}.nonResourceURLs: Invalid value: {urls}: "
                    "rules cannot apply to both regular resources and non-resource URLs")
    omit = _strings(r.get("omitStages"), f"{path}.omitStages")
    errs += _validate_stages(omit, f"{path}.omitStages")
    return Rule(
        level=level if isinstance(level, str) else "",
        users=frozenset(_strings(r.get("users"), f"{path}.users")),
        user_groups=frozenset(_strings(r.get("userGroups"), f"{path}.userGroups")),
        verbs=frozenset(_strings(r.get("verbs"), f"{path}.verbs")),
        resources=tuple(groups),
        namespaces=frozenset(namespaces),
        non_resource_urls=tuple(urls),
        omit_stages=frozenset(omit),
        omit_managed_fields=_bool(r.get("omitManagedFields"), f"{path}.omitManagedFields"),
    )


def _validate_stages(stages: list[str], path: str) -> list[str]:
    return [f'{path}[{i}]: Unsupported value: {_quote(s)}: supported values: ' + ", ".join(f'"{v}"' for v in STAGES)
            for i, s in enumerate(stages) if s not in STAGES]


def _list(v: Any, path: str) -> list[Any]:
    if v is None:
        return []
    if not isinstance(v, list):
        raise PolicyError(f"failed decoding: {path}: expected a list, got {_type(v)}")
    return v


def _strings(v: Any, path: str) -> list[str]:
    out = _list(v, path)
    for i, s in enumerate(out):
        if not isinstance(s, str):
            raise PolicyError(f"failed decoding: {path}[{i}]: expected a string, got {_type(s)}")
    return out


def _bool(v: Any, path: str) -> bool | None:
    if v is None or isinstance(v, bool):
        return v
    raise PolicyError(f"failed decoding: {path}: expected a boolean, got {_type(v)}")


def _type(v: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number",
            float: "a number"}.get(type(v), type(v).__name__)


def _quote(v: Any) -> str:
    return f'"{v}"' if isinstance(v, str) else repr(v)


def _aggregate(errs: list[str]) -> str:
    return errs[0] if len(errs) == 1 else "[" + ", ".join(errs) + "]"


def _warn_unknown(d: dict[str, Any], known: set[str], prefix: str) -> None:
    # upstream's decoder ignores unknown fields; a typo (omitStage) would silently do nothing, so say so
    for k in d:
        if k not in known:
            log.warning("audit policy: unknown field %s%s ignored", prefix, k)


#: what our own clusters (minictl cluster up, the tests, the benches) audit with: every request at
#: Metadata level, without the RequestReceived stage (each request is one ResponseComplete line, a
#: watch or other long-running request also its ResponseStarted line)
DEFAULT_POLICY = f"""\
# Written by minictl: the audit policy of this cluster's apiserver (--audit-policy-file).
# Every request at Metadata level (who, what, when, the answer's code - no bodies), one line
# per request: the RequestReceived stage is left out.
apiVersion: {API_VERSION}
kind: Policy
omitStages:
  - RequestReceived
rules:
  - level: Metadata
"""
