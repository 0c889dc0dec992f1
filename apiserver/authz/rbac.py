"""RBAC: Roles, ClusterRoles and their bindings, evaluated from memory.

The four RBAC watch caches feed an index that is rebuilt (decoded once) whenever one of
them changes; the rules that apply to a (user, groups, namespace) are resolved once and
kept until the next change, so authorizing a request is a dictionary lookup and a few set
tests. Matching follows upstream's `rbac.RuleAllows`: verbs, API groups, resources
(`pods/status`, `*/scale`, `*`), resourceNames, and nonResourceURLs with a trailing `*`.

ClusterRoles with an `aggregationRule` get the union of the rules of the ClusterRoles
their selectors match (transitively); the index uses that union directly and
`ClusterRoleAggregator` writes it back into the objects, as upstream's
clusterrole-aggregation controller does, so `kubectl get clusterrole admin -o yaml`
shows it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from apimachinery import errors
from apimachinery.selectors import LabelSelectorError, selector_from_label_selector
from apiserver.authn import UserInfo
from apiserver.authn.serviceaccount import sa_username
from apiserver.authz import ALLOW, NO_OPINION, AuthzAttributes

if TYPE_CHECKING:
    from apiserver.server import APIServer

log = logging.getLogger("apiserver.authz.rbac")

GROUP = "rbac.authorization.k8s.io"
PLURALS = ("roles", "rolebindings", "clusterroles", "clusterrolebindings")


@dataclass(frozen=True, slots=True)
class Rule:
    """One PolicyRule, as sets for fast matching."""

    verbs: frozenset[str]
    api_groups: frozenset[str]
    resources: frozenset[str]
    names: frozenset[str]
    urls: tuple[str, ...]
    source: dict[str, Any]

    def allows(self, a: AuthzAttributes) -> bool:
        if "*" not in self.verbs and a.verb not in self.verbs:
            return False
        if not a.is_resource:
            return _url_matches(self.urls, a.path)
        if not self.resources:
            return False
        if "*" not in self.api_groups and a.api_group not in self.api_groups:
            return False
        if not _resource_matches(self.resources, a.resource, a.subresource):
            return False
        return not self.names or (bool(a.name) and a.name in self.names)


def compile_rule(d: Any) -> Rule | None:
    if not isinstance(d, dict):
        return None

    def strs(key: str) -> list[str]:
        v = d.get(key) or []
        return [x for x in v if isinstance(x, str)] if isinstance(v, list) else []

    return Rule(
        frozenset(strs("verbs")), frozenset(strs("apiGroups")), frozenset(strs("resources")),
        frozenset(strs("resourceNames")), tuple(strs("nonResourceURLs")), d,
    )


def _resource_matches(resources: frozenset[str], resource: str, subresource: str) -> bool:
    if "*" in resources:
        return True
    if subresource:
        return f"{resource}/{subresource}" in resources or f"*/{subresource}" in resources
    return resource in resources


def _url_matches(urls: tuple[str, ...], path: str) -> bool:
    for u in urls:
        if u == "*" or u == path:
            return True
        if u.endswith("*") and path.startswith(u.rstrip("*")):
            return True
    return False


def rules_allow(a: AuthzAttributes, rules: list[Rule]) -> bool:
    return any(r.allows(a) for r in rules)


def subject_keys(user: UserInfo) -> list[tuple[str, str]]:
    return [("u", user.name), *(("g", g) for g in user.groups)]


def _subject_key(s: Any, binding_ns: str) -> tuple[str, str] | None:
    if not isinstance(s, dict) or not isinstance(s.get("name"), str):
        return None
    kind = s.get("kind")
    if kind == "User":
        return ("u", s["name"])
    if kind == "Group":
        return ("g", s["name"])
    if kind == "ServiceAccount":
        ns = s.get("namespace") or binding_ns
        return ("u", sa_username(ns, s["name"])) if ns else None
    return None


@dataclass(slots=True)
class Resolved:
    rules: list[Rule]
    errors: list[str]


class RBACIndex:
    """All RBAC objects of the cluster, decoded and indexed by subject."""

    CACHE_SIZE = 10_000

    def __init__(self, server: APIServer) -> None:
        self.server = server
        self.caches = [server.cache_for(GROUP, p) for p in PLURALS]
        self._dirty = True
        self._seen: tuple[Any, ...] = ()
        self.generation = 0
        self.cluster_roles: dict[str, dict[str, Any]] = {}
        self.roles: dict[tuple[str, str], list[Rule]] = {}
        self._cr_rules: dict[str, list[Rule]] = {}
        self._crb: dict[tuple[str, str], list[str]] = {}
        self._rb: dict[str, dict[tuple[str, str], list[tuple[str, str]]]] = {}
        self._resolved: OrderedDict[tuple[str, tuple[str, ...], str], Resolved] = OrderedDict()
        for c in self.caches:
            c.listeners.append(self._changed)

    def _changed(self, ev: Any) -> None:
        self._dirty = True

    @property
    def ready(self) -> bool:
        return all(c.ready.is_set() for c in self.caches)

    async def wait_ready(self, timeout: float = 5.0) -> None:
        for c in self.caches:
            if not c.ready.is_set():
                await asyncio.wait_for(c.ready.wait(), timeout)

    def _fresh(self) -> None:
        seen = tuple(c.objects for c in self.caches)
        if self._dirty or len(seen) != len(self._seen) or any(a is not b for a, b in zip(seen, self._seen, strict=False)):
            self._rebuild(seen)

    def _rebuild(self, seen: tuple[Any, ...]) -> None:
        self._dirty = False
        self._seen = seen
        self.generation += 1
        self._resolved.clear()
        roles_c, rbs_c, crs_c, crbs_c = self.caches
        self.cluster_roles = {e.name: orjson.loads(e.data) for e in crs_c.objects.values()}
        self.roles = {}
        for e in roles_c.objects.values():
            obj = orjson.loads(e.data)
            self.roles[(e.namespace, e.name)] = [r for r in map(compile_rule, obj.get("rules") or []) if r]
        self._cr_rules = {name: [r for r in map(compile_rule, self._effective(name)) if r] for name in self.cluster_roles}
        self._crb = {}
        for e in crbs_c.objects.values():
            obj = orjson.loads(e.data)
            ref = obj.get("roleRef") or {}
            if ref.get("kind") != "ClusterRole":
                continue
            for s in obj.get("subjects") or []:
                k = _subject_key(s, "")
                if k is not None:
                    self._crb.setdefault(k, []).append(ref.get("name", ""))
        self._rb = {}
        for e in rbs_c.objects.values():
            obj = orjson.loads(e.data)
            ref = obj.get("roleRef") or {}
            by_subject = self._rb.setdefault(e.namespace, {})
            for s in obj.get("subjects") or []:
                k = _subject_key(s, e.namespace)
                if k is not None:
                    by_subject.setdefault(k, []).append((ref.get("kind", ""), ref.get("name", "")))

    # -- aggregation ---------------------------------------------------------------------

    def effective_rules(self, name: str) -> list[dict[str, Any]]:
        """A ClusterRole's rules; for an aggregated one, the union of the matching roles' rules."""
        self._fresh()
        return self._effective(name)

    def _effective(self, name: str, _visiting: frozenset[str] = frozenset()) -> list[dict[str, Any]]:
        role = self.cluster_roles.get(name)
        if role is None:
            return []
        agg = role.get("aggregationRule")
        if not isinstance(agg, dict):
            return list(role.get("rules") or [])
        selectors = []
        for sel in agg.get("clusterRoleSelectors") or []:
            try:
                selectors.append(selector_from_label_selector(sel))
            except (LabelSelectorError, AttributeError):
                continue
        out: list[dict[str, Any]] = []
        visiting = _visiting | {name}
        for other in sorted(self.cluster_roles):
            if other in visiting:
                continue
            labels = self.cluster_roles[other]["metadata"].get("labels") or {}
            if not any(s.matches(labels) for s in selectors):
                continue
            for rule in self._effective(other, visiting):
                if rule not in out:
                    out.append(rule)
        return out

    def aggregated_roles(self) -> list[str]:
        self._fresh()
        return [n for n, r in self.cluster_roles.items() if isinstance(r.get("aggregationRule"), dict)]

    # -- resolution ----------------------------------------------------------------------

    def resolve(self, user: UserInfo, namespace: str) -> Resolved:
        self._fresh()
        key = (user.name, user.groups, namespace)
        hit = self._resolved.get(key)
        if hit is not None:
            self._resolved.move_to_end(key)
            return hit
        rules: list[Rule] = []
        errs: list[str] = []
        seen: set[tuple[str, str, str]] = set()
        keys = subject_keys(user)
        for k in keys:
            for name in self._crb.get(k, ()):
                self._add_role(("ClusterRole", name, ""), rules, errs, seen)
        if namespace:
            by_subject = self._rb.get(namespace, {})
            for k in keys:
                for kind, name in by_subject.get(k, ()):
                    self._add_role((kind, name, namespace if kind == "Role" else ""), rules, errs, seen)
        resolved = Resolved(rules, errs)
        self._resolved[key] = resolved
        if len(self._resolved) > self.CACHE_SIZE:
            self._resolved.popitem(last=False)
        return resolved

    def _add_role(self, ref: tuple[str, str, str], rules: list[Rule], errs: list[str], seen: set) -> None:
        if ref in seen:
            return
        seen.add(ref)
        kind, name, ns = ref
        if kind == "ClusterRole":
            found = self._cr_rules.get(name)
            if found is None:
                errs.append(f'clusterrole.rbac.authorization.k8s.io "{name}" not found')
                return
        elif kind == "Role":
            found = self.roles.get((ns, name))
            if found is None:
                errs.append(f'role.rbac.authorization.k8s.io "{name}" not found')
                return
        else:
            return
        rules.extend(found)


class RBACAuthorizer:
    def __init__(self, server: APIServer) -> None:
        self.index: RBACIndex = server.rbac

    async def authorize(self, a: AuthzAttributes) -> tuple[str, str]:
        if not self.index.ready:
            try:
                await self.index.wait_ready()
            except TimeoutError:
                return NO_OPINION, "RBAC: the policy cache is not ready"
        resolved = self.index.resolve(a.user, a.namespace)
        for r in resolved.rules:
            if r.allows(a):
                return ALLOW, ""
        if resolved.errors:
            return NO_OPINION, "RBAC: " + (resolved.errors[0] if len(resolved.errors) == 1 else "[" + ", ".join(resolved.errors) + "]")
        return NO_OPINION, ""

    def rules_for(self, user: UserInfo, namespace: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]], bool]:
        resolved = self.index.resolve(user, namespace)
        resource: list[dict[str, Any]] = []
        non_resource: list[dict[str, Any]] = []
        for r in resolved.rules:
            if r.urls:
                non_resource.append({"verbs": sorted(r.verbs), "nonResourceURLs": list(r.urls)})
            elif r.resources:
                entry: dict[str, Any] = {"verbs": sorted(r.verbs), "apiGroups": sorted(r.api_groups),
                                         "resources": sorted(r.resources)}
                if r.names:
                    entry["resourceNames"] = sorted(r.names)
                resource.append(entry)
        return resource, non_resource, bool(resolved.errors)


class ClusterRoleAggregator:
    """Writes each aggregated ClusterRole's effective rules back into it (upstream's controller)."""

    def __init__(self, server: APIServer, index: RBACIndex) -> None:
        self.server = server
        self.index = index
        self.enabled = False
        self._task: asyncio.Task[None] | None = None
        self._again = False
        server.cache_for(GROUP, "clusterroles").listeners.append(self._on_change)

    def _on_change(self, ev: Any) -> None:
        if self.enabled:
            self.kick()

    def kick(self) -> None:
        """Schedule a sync (coalescing bursts of changes into one pass)."""
        self.enabled = True
        if self._task is not None and not self._task.done():
            self._again = True
            return
        self._task = asyncio.get_running_loop().create_task(self._run(), name="clusterrole-aggregation")

    async def _run(self) -> None:
        while True:
            self._again = False
            await asyncio.sleep(0.02)
            try:
                await self.sync()
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.warning("clusterrole aggregation failed: %s; retrying", e)
                await asyncio.sleep(1)
                self._again = True
            if not self._again:
                return

    async def sync(self) -> None:
        from apiserver.bootstrap import SYSTEM_USER

        await self.index.wait_ready()
        await self.server.cache_for(GROUP, "clusterroles").sync_with_store()
        res = self.server.resource(GROUP, "clusterroles")
        for name in self.index.aggregated_roles():
            want = self.index.effective_rules(name)
            current = self.index.cluster_roles.get(name) or {}
            if (current.get("rules") or []) == want:
                continue

            async def mutate(old: dict[str, Any], want: list[dict[str, Any]] = want) -> dict[str, Any]:
                new = dict(old)
                new["metadata"] = dict(old["metadata"])
                new["metadata"].pop("resourceVersion", None)
                new["rules"] = want
                return new

            try:
                await self.server.api.update_object(res, "", name, mutate, "", SYSTEM_USER, False, {}, "")
            except errors.StatusError as e:
                if e.code != 404:  # deleted meanwhile: nothing to aggregate into
                    raise

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
