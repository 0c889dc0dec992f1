"""RBAC: rule matching, the in-memory index, aggregation, and the bootstrap policy."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from apimachinery.selectors import parse_field_selector
from apiserver.authn import UserInfo
from apiserver.authz import (
    ALLOW,
    NO_OPINION,
    AuthorizerChain,
    AuthzAttributes,
    PrivilegedGroups,
    attributes_for,
    forbidden,
)
from apiserver.authz.rbac import RBACAuthorizer, RBACIndex, compile_rule
from apiserver.rbac_bootstrap import cluster_role_bindings, cluster_roles, node_rules, policy, reconciled
from apiserver.requestinfo import parse
from apiserver.watchcache import CacheEvent, Entry

GROUP = "rbac.authorization.k8s.io"


class FakeCache:
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.objects: dict[str, Entry] = {}
        self.listeners: list[Any] = []
        self.ready = asyncio.Event()
        self.ready.set()

    def put(self, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        ns = meta.get("namespace", "")
        key = f"{self.prefix}{ns}/{meta['name']}" if ns else f"{self.prefix}{meta['name']}"
        prev = self.objects.get(key)
        e = Entry(orjson.dumps(obj), 1, ns, meta["name"], meta.get("labels") or {}, {})
        self.objects[key] = e
        for fn in self.listeners:
            fn(CacheEvent("MODIFIED" if prev else "ADDED", 1, e, prev))

    def get(self, key: str) -> Entry | None:
        return self.objects.get(key)


class FakeServer:
    def __init__(self) -> None:
        self.caches = {p: FakeCache(f"/registry/{p}/") for p in ("roles", "rolebindings", "clusterroles", "clusterrolebindings")}

    def cache_for(self, group: str, plural: str) -> FakeCache:
        return self.caches[plural]


def attrs(user: UserInfo, verb: str, resource: str = "", ns: str = "", group: str = "", sub: str = "", name: str = "",
          path: str = "") -> AuthzAttributes:
    if path:
        return AuthzAttributes(user, verb, False, path=path)
    return AuthzAttributes(user, verb, True, group, "v1", ns, resource, sub, name, "")


ALICE = UserInfo("alice", "", ("devs", "system:authenticated"))


# -- rule matching -----------------------------------------------------------------------------


@pytest.mark.parametrize(("rule", "request_", "allowed"), [
    ({"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}, ("get", "pods", ""), True),
    ({"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}, ("list", "pods", ""), False),
    ({"verbs": ["*"], "apiGroups": [""], "resources": ["pods"]}, ("delete", "pods", ""), True),
    ({"verbs": ["get"], "apiGroups": ["apps"], "resources": ["pods"]}, ("get", "pods", ""), False),
    ({"verbs": ["get"], "apiGroups": ["*"], "resources": ["*"]}, ("get", "deployments", "apps"), True),
    # subresources are only matched by name: pods does not cover pods/status
    ({"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}, ("get", "pods/status", ""), False),
    ({"verbs": ["get"], "apiGroups": [""], "resources": ["pods/status"]}, ("get", "pods/status", ""), True),
    ({"verbs": ["get"], "apiGroups": ["*"], "resources": ["*/scale"]}, ("get", "deployments/scale", "apps"), True),
    ({"verbs": ["get"], "apiGroups": ["*"], "resources": ["*/scale"]}, ("get", "deployments", "apps"), False),
])
def test_resource_rules(rule: dict, request_: tuple, allowed: bool) -> None:
    verb, resource, group = request_
    res, _, sub = resource.partition("/")
    assert compile_rule(rule).allows(attrs(ALICE, verb, res, "ns", group, sub)) is allowed


def test_resource_names() -> None:
    r = compile_rule({"verbs": ["get", "list", "update"], "apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["a"]})
    assert r.allows(attrs(ALICE, "get", "configmaps", "ns", name="a"))
    assert not r.allows(attrs(ALICE, "get", "configmaps", "ns", name="b"))
    assert not r.allows(attrs(ALICE, "list", "configmaps", "ns"))  # no name: resourceNames never match


def test_non_resource_urls() -> None:
    r = compile_rule({"verbs": ["get"], "nonResourceURLs": ["/healthz", "/apis/*"]})
    assert r.allows(attrs(ALICE, "get", path="/healthz"))
    assert r.allows(attrs(ALICE, "get", path="/apis/apps/v1"))
    assert not r.allows(attrs(ALICE, "get", path="/healthz/etcd"))
    assert not r.allows(attrs(ALICE, "post", path="/healthz"))
    assert not r.allows(attrs(ALICE, "get", "healthz"))  # resource requests never match URL rules


def test_attributes_take_the_name_from_a_field_selector() -> None:
    info = parse("GET", "/api/v1/namespaces/ns/secrets", {"watch": "1", "fieldSelector": "metadata.name=s1"})
    a = attributes_for(ALICE, info, {"fieldSelector": "metadata.name=s1"})
    assert (a.verb, a.name, a.namespace) == ("watch", "s1", "ns")
    info = parse("GET", "/api/v1/pods", {})
    a = attributes_for(ALICE, info, {"fieldSelector": "spec.nodeName=n1"})
    assert a.name == "" and a.field_selector == parse_field_selector("spec.nodeName=n1")


def test_watch_query_makes_only_lists_watches() -> None:
    assert parse("GET", "/api/v1/namespaces/ns/pods", {"watch": "true"}).verb == "watch"
    assert parse("GET", "/api/v1/namespaces/ns/pods", {"watch": "false"}).verb == "list"
    # a named GET ignores ?watch (upstream serves the object); the deprecated /watch/ path watches it
    assert parse("GET", "/api/v1/namespaces/ns/pods/p", {"watch": "true"}).verb == "get"
    info = parse("GET", "/api/v1/watch/namespaces/ns/pods/p", {})
    assert (info.verb, info.name) == ("watch", "p")


def test_forbidden_message_is_upstreams() -> None:
    e = forbidden(attrs(ALICE, "create", "pods", "team1"))
    assert e.code == 403 and e.message == (
        'pods is forbidden: User "alice" cannot create resource "pods" in API group "" in the namespace "team1"')
    e = forbidden(attrs(ALICE, "get", "deployments", "", "apps", "scale", "d"))
    assert e.message == ('deployments.apps "d" is forbidden: User "alice" cannot get resource "deployments/scale" '
                         'in API group "apps" at the cluster scope')


# -- the index -------------------------------------------------------------------------------


def role(kind: str, name: str, rules: list[dict], ns: str = "", labels: dict | None = None, agg: list | None = None) -> dict:
    meta: dict[str, Any] = {"name": name, "labels": labels or {}}
    if ns:
        meta["namespace"] = ns
    obj: dict[str, Any] = {"kind": kind, "metadata": meta, "rules": rules}
    if agg is not None:
        obj["aggregationRule"] = {"clusterRoleSelectors": [{"matchLabels": m} for m in agg]}
    return obj


def binding(kind: str, name: str, role_kind: str, role_name: str, subjects: list[dict], ns: str = "") -> dict:
    meta: dict[str, Any] = {"name": name}
    if ns:
        meta["namespace"] = ns
    return {"kind": kind, "metadata": meta, "roleRef": {"apiGroup": GROUP, "kind": role_kind, "name": role_name},
            "subjects": subjects}


READ_PODS = [{"verbs": ["get", "list", "watch"], "apiGroups": [""], "resources": ["pods"]}]


@pytest.fixture
def server() -> FakeServer:
    s = FakeServer()
    s.rbac = RBACIndex(s)  # type: ignore[attr-defined]
    return s


async def decide(server: FakeServer, a: AuthzAttributes) -> tuple[str, str]:
    return await RBACAuthorizer(server).authorize(a)  # type: ignore[arg-type]


async def test_role_binding_scopes_to_its_namespace(server: FakeServer) -> None:
    c = server.caches
    c["clusterroles"].put(role("ClusterRole", "reader", READ_PODS))
    c["rolebindings"].put(binding("RoleBinding", "b", "ClusterRole", "reader", [{"kind": "User", "name": "alice"}], "team1"))
    assert (await decide(server, attrs(ALICE, "get", "pods", "team1")))[0] == ALLOW
    assert (await decide(server, attrs(ALICE, "get", "pods", "team2")))[0] == NO_OPINION
    assert (await decide(server, attrs(ALICE, "get", "pods", "")))[0] == NO_OPINION
    assert (await decide(server, attrs(ALICE, "create", "pods", "team1")))[0] == NO_OPINION


async def test_groups_service_accounts_and_cluster_bindings(server: FakeServer) -> None:
    c = server.caches
    c["roles"].put(role("Role", "r", READ_PODS, "team1"))
    c["rolebindings"].put(binding("RoleBinding", "b", "Role", "r", [{"kind": "Group", "name": "devs"},
                                                                    {"kind": "ServiceAccount", "name": "bot"}], "team1"))
    c["clusterroles"].put(role("ClusterRole", "nodes", [{"verbs": ["list"], "apiGroups": [""], "resources": ["nodes"]}]))
    c["clusterrolebindings"].put(binding("ClusterRoleBinding", "cb", "ClusterRole", "nodes",
                                         [{"kind": "ServiceAccount", "name": "bot", "namespace": "team1"}]))
    bot = UserInfo("system:serviceaccount:team1:bot", "", ("system:serviceaccounts",))
    assert (await decide(server, attrs(ALICE, "list", "pods", "team1")))[0] == ALLOW  # through the group
    assert (await decide(server, attrs(bot, "list", "pods", "team1")))[0] == ALLOW  # SA subject, binding's namespace
    assert (await decide(server, attrs(bot, "list", "nodes")))[0] == ALLOW
    assert (await decide(server, attrs(ALICE, "list", "nodes")))[0] == NO_OPINION


async def test_changes_take_effect_and_missing_roles_are_reported(server: FakeServer) -> None:
    c = server.caches
    c["rolebindings"].put(binding("RoleBinding", "b", "ClusterRole", "later", [{"kind": "User", "name": "alice"}], "t"))
    decision, reason = await decide(server, attrs(ALICE, "get", "pods", "t"))
    assert decision == NO_OPINION and reason == 'RBAC: clusterrole.rbac.authorization.k8s.io "later" not found'
    c["clusterroles"].put(role("ClusterRole", "later", READ_PODS))
    assert (await decide(server, attrs(ALICE, "get", "pods", "t")))[0] == ALLOW


async def test_aggregation_is_transitive_and_live(server: FakeServer) -> None:
    c = server.caches
    c["clusterroles"].put(role("ClusterRole", "view", [], agg=[{"agg-view": "true"}], labels={"agg-edit": "true"}))
    c["clusterroles"].put(role("ClusterRole", "edit", [], agg=[{"agg-edit": "true"}]))
    c["clusterroles"].put(role("ClusterRole", "view-pods", READ_PODS, labels={"agg-view": "true"}))
    c["rolebindings"].put(binding("RoleBinding", "b", "ClusterRole", "edit", [{"kind": "User", "name": "alice"}], "t"))
    assert server.rbac.effective_rules("edit") == READ_PODS  # type: ignore[attr-defined]
    assert (await decide(server, attrs(ALICE, "watch", "pods", "t")))[0] == ALLOW
    secrets = [{"verbs": ["get"], "apiGroups": [""], "resources": ["secrets"]}]
    c["clusterroles"].put(role("ClusterRole", "edit-secrets", secrets, labels={"agg-edit": "true"}))
    assert (await decide(server, attrs(ALICE, "get", "secrets", "t")))[0] == ALLOW
    assert sorted(server.rbac.aggregated_roles()) == ["edit", "view"]  # type: ignore[attr-defined]


async def test_masters_short_cut_and_rules_review(server: FakeServer) -> None:
    chain = AuthorizerChain([PrivilegedGroups(), RBACAuthorizer(server)])  # type: ignore[arg-type]
    admin = UserInfo("kubernetes-admin", "", ("system:masters",))
    assert (await chain.decide(attrs(admin, "delete", "nodes", name="x")))[0] == ALLOW
    server.caches["clusterroles"].put(role("ClusterRole", "reader", READ_PODS))
    server.caches["rolebindings"].put(binding("RoleBinding", "b", "ClusterRole", "reader", [{"kind": "User", "name": "alice"}], "t"))
    resource, non_resource, incomplete = chain.rules_for(ALICE, "t")
    assert resource == [{"verbs": ["get", "list", "watch"], "apiGroups": [""], "resources": ["pods"]}]
    assert non_resource == [] and incomplete is False


# -- the bootstrap policy ----------------------------------------------------------------------


def test_policy_is_consistent() -> None:
    names = [o["metadata"]["name"] for o in cluster_roles()]
    assert len(names) == len(set(names))
    for must in ("cluster-admin", "admin", "edit", "view", "system:node", "system:kube-scheduler",
                 "system:kube-controller-manager", "system:node-proxier", "system:discovery", "system:basic-user",
                 "system:controller:replicaset-controller", "system:controller:namespace-controller"):
        assert must in names
    roles = {o["metadata"]["name"] for o in cluster_roles()}
    for b in cluster_role_bindings():
        assert b["roleRef"]["name"] in roles
    masters = next(b for b in cluster_role_bindings() if b["metadata"]["name"] == "cluster-admin")
    assert masters["subjects"] == [{"apiGroup": GROUP, "kind": "Group", "name": "system:masters"}]
    for _, obj in policy():
        assert obj["metadata"]["annotations"]["rbac.authorization.kubernetes.io/autoupdate"] == "true"
        for r in obj.get("rules") or []:
            assert r["verbs"] == sorted(r["verbs"]) and compile_rule(r) is not None
    assert next(o for o in cluster_roles() if o["metadata"]["name"] == "system:node")["rules"] == node_rules()


def test_reconcile_adds_and_keeps() -> None:
    want = role("ClusterRole", "r", READ_PODS)
    want["metadata"]["annotations"] = {"rbac.authorization.kubernetes.io/autoupdate": "true"}
    extra = [{"verbs": ["get"], "apiGroups": [""], "resources": ["secrets"]}]
    current = role("ClusterRole", "r", extra)
    current["metadata"]["resourceVersion"] = "5"
    out = reconciled(current, want)
    assert out is not None and out["rules"] == extra + READ_PODS and "resourceVersion" not in out["metadata"]
    assert reconciled(out, want) is None  # nothing left to add
    current["metadata"]["annotations"] = {"rbac.authorization.kubernetes.io/autoupdate": "false"}
    assert reconciled(current, want) is None  # the administrator owns it now
