"""Which FlowSchema a request belongs to (upstream's matchesFlowSchema, pkg/util/flowcontrol/rule.go).

FlowSchemas are compiled once per configuration into sets, in matching order (matchingPrecedence,
then name). The subjects part of a match depends on the user only, so the schemas a user can match
at all are worked out once per distinct user and kept; a request then checks the rules of those.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from apiserver.authn import UserInfo
from apiserver.authn.serviceaccount import SA_PREFIX, sa_username
from apiserver.requestinfo import RequestInfo

Obj = dict[str, Any]


def _set(values: Any) -> frozenset[str] | None:
    """A rule's list as a set; None for "everything": upstream's wildcard counts only when it
    is the list's one member (validation allows it only so)."""
    values = [v for v in values or [] if isinstance(v, str)]
    if values == ["*"]:
        return None
    return frozenset(values)


def _has(allowed: frozenset[str] | None, value: str) -> bool:
    return allowed is None or value in allowed


@dataclass(frozen=True, slots=True)
class ResourceRule:
    verbs: frozenset[str] | None
    groups: frozenset[str] | None
    resources: frozenset[str] | None  # `pods` or `pods/status`
    namespaces: frozenset[str] | None
    cluster_scope: bool

    def matches(self, info: RequestInfo) -> bool:
        if self.verbs is not None and info.verb not in self.verbs:
            return False
        if self.resources is not None:
            resource = f"{info.resource}/{info.subresource}" if info.subresource else info.resource
            if resource not in self.resources:
                return False
        if self.groups is not None and info.group not in self.groups:
            return False
        if not info.namespace:
            return self.cluster_scope
        return self.namespaces is None or info.namespace in self.namespaces


@dataclass(frozen=True, slots=True)
class URLRule:
    verbs: frozenset[str] | None
    every: bool
    exact: frozenset[str]
    #: upstream matches a path below any listed URL too: `/healthz` covers `/healthz/etcd`, `/apis/*`
    #: covers `/apis/x` (not `/apis`)
    prefixes: tuple[str, ...]

    def matches(self, info: RequestInfo) -> bool:
        if not _has(self.verbs, info.verb):
            return False
        path = info.path
        return self.every or path in self.exact or path.startswith(self.prefixes)


def _url_rule(rule: Obj) -> URLRule:
    urls = [u for u in rule.get("nonResourceURLs") or [] if isinstance(u, str)]
    prefixes = []
    for u in urls:
        prefix = u.removesuffix("*")
        prefixes.append(prefix if prefix.endswith("/") else prefix + "/")
    return URLRule(_set(rule.get("verbs")), "*" in urls, frozenset(urls), tuple(prefixes))


@dataclass(frozen=True, slots=True)
class Subjects:
    """One PolicyRulesWithSubjects' subjects."""

    users: frozenset[str]  # users named, and ServiceAccounts named in full
    groups: frozenset[str]
    every: bool  # a User or Group subject `*`
    sa_namespaces: tuple[str, ...]  # `system:serviceaccount:<ns>:` of the ServiceAccount subjects named `*`

    def match(self, user: UserInfo) -> bool:
        if self.every or user.name in self.users or not self.groups.isdisjoint(user.groups):
            return True
        return bool(self.sa_namespaces) and user.name.startswith(self.sa_namespaces)


def _subjects(subjects: Any) -> Subjects:
    users: set[str] = set()
    groups: set[str] = set()
    every = False
    sa_namespaces: list[str] = []
    for s in subjects or []:
        if not isinstance(s, dict):
            continue
        kind = s.get("kind")
        body = s.get({"User": "user", "Group": "group", "ServiceAccount": "serviceAccount"}.get(kind, ""))
        if not isinstance(body, dict):
            continue
        name = body.get("name") or ""
        if kind == "ServiceAccount":
            ns = body.get("namespace") or ""
            if name == "*":
                sa_namespaces.append(f"{SA_PREFIX}{ns}:")
            else:
                users.add(sa_username(ns, name))
        elif name == "*":
            every = True
        else:
            (users if kind == "User" else groups).add(name)
    return Subjects(frozenset(users), frozenset(groups), every, tuple(sa_namespaces))


@dataclass(frozen=True, slots=True)
class PolicyRules:
    subjects: Subjects
    resource_rules: tuple[ResourceRule, ...]
    url_rules: tuple[URLRule, ...]

    def matches(self, info: RequestInfo) -> bool:
        """The request part of a match (the subjects were checked per user)."""
        for r in self.resource_rules if info.is_resource else self.url_rules:
            if r.matches(info):
                return True
        return False


def _policy_rules(rule: Obj) -> PolicyRules:
    resource_rules = tuple(
        ResourceRule(_set(r.get("verbs")), _set(r.get("apiGroups")), _set(r.get("resources")),
                     _set(r.get("namespaces")), r.get("clusterScope") is True)
        for r in rule.get("resourceRules") or [] if isinstance(r, dict))
    url_rules = tuple(_url_rule(r) for r in rule.get("nonResourceRules") or [] if isinstance(r, dict))
    return PolicyRules(_subjects(rule.get("subjects")), resource_rules, url_rules)


@dataclass(frozen=True, slots=True)
class Schema:
    """A FlowSchema, compiled."""

    name: str
    uid: str
    level: str
    precedence: int
    distinguisher: str  # "ByUser", "ByNamespace" or "" (none)
    rules: tuple[PolicyRules, ...]

    def matches(self, user: UserInfo, info: RequestInfo) -> bool:
        return any(r.subjects.match(user) and r.matches(info) for r in self.rules)

    def distinguish(self, user: UserInfo, info: RequestInfo) -> str:
        if self.distinguisher == "ByUser":
            return user.name
        if self.distinguisher == "ByNamespace":
            return info.namespace
        return ""


def compile_schema(obj: Obj) -> Schema:
    meta, spec = obj.get("metadata") or {}, obj.get("spec") or {}
    method = spec.get("distinguisherMethod")
    return Schema(
        meta.get("name", ""), meta.get("uid", ""), (spec.get("priorityLevelConfiguration") or {}).get("name", ""),
        spec.get("matchingPrecedence") or 0, method.get("type", "") if isinstance(method, dict) else "",
        tuple(_policy_rules(r) for r in spec.get("rules") or [] if isinstance(r, dict)),
    )


def matching_order(schema: Schema) -> tuple[int, str]:
    return schema.precedence, schema.name


class Classifier:
    """FlowSchemas in matching order (`schemas` come sorted), and per user the ones whose subjects
    include the user."""

    #: distinct users remembered (the set is rebuilt from scratch when full)
    USERS = 4096

    def __init__(self, schemas: list[Schema]) -> None:
        self.schemas = schemas
        self._by_user: dict[tuple[str, tuple[str, ...]], tuple[tuple[Schema, tuple[PolicyRules, ...]], ...]] = {}

    def _candidates(self, user: UserInfo) -> tuple[tuple[Schema, tuple[PolicyRules, ...]], ...]:
        key = (user.name, user.groups)
        found = self._by_user.get(key)
        if found is None:
            found = tuple((s, rules) for s in self.schemas
                          if (rules := tuple(r for r in s.rules if r.subjects.match(user))))
            if len(self._by_user) >= self.USERS:
                self._by_user.clear()
            self._by_user[key] = found
        return found

    def classify(self, user: UserInfo, info: RequestInfo) -> Schema | None:
        """The first FlowSchema in matching order that matches (None: none does)."""
        for schema, rules in self._candidates(user):
            for r in rules:
                if r.matches(info):
                    return schema
        return None
