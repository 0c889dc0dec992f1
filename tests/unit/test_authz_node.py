"""The Node authorizer: the pod graph and what a kubelet may do with it."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from apimachinery.selectors import parse_field_selector
from apiserver.authn import UserInfo
from apiserver.authz import ALLOW, NO_OPINION, AuthzAttributes
from apiserver.authz.node import NodeAuthorizer, node_identity, pod_references
from apiserver.watchcache import CacheEvent, Entry


class FakeCache:
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.objects: dict[str, Entry] = {}
        self.listeners: list[Any] = []
        self.ready = asyncio.Event()
        self.ready.set()

    def _entry(self, obj: dict[str, Any]) -> tuple[str, Entry]:
        meta = obj["metadata"]
        ns = meta.get("namespace", "")
        return f"{self.prefix}{ns}/{meta['name']}", Entry(orjson.dumps(obj), 1, ns, meta["name"], {}, {})

    def put(self, obj: dict[str, Any]) -> None:
        key, e = self._entry(obj)
        prev = self.objects.get(key)
        self.objects[key] = e
        for fn in self.listeners:
            fn(CacheEvent("MODIFIED" if prev else "ADDED", 1, e, prev))

    def delete(self, obj: dict[str, Any]) -> None:
        key, e = self._entry(obj)
        prev = self.objects.pop(key)
        for fn in self.listeners:
            fn(CacheEvent("DELETED", 2, e, prev))

    def get(self, key: str) -> Entry | None:
        return self.objects.get(key)


class FakeServer:
    def __init__(self) -> None:
        self.caches = {p: FakeCache(f"/registry/{p}/") for p in ("pods", "persistentvolumeclaims")}

    def cache_for(self, group: str, plural: str) -> FakeCache:
        return self.caches[plural]


NODE1 = UserInfo("system:node:n1", "", ("system:nodes", "system:authenticated"))


def pod(name: str, node: str | None, **spec: Any) -> dict[str, Any]:
    s = {"containers": [{"name": "c", "image": "x"}], "serviceAccountName": "default", **spec}
    if node:
        s["nodeName"] = node
    return {"metadata": {"name": name, "namespace": "ns", "uid": name + "-uid"}, "spec": s}


def req(verb: str, resource: str, name: str = "", ns: str = "ns", sub: str = "", group: str = "",
        fs: str = "", user: UserInfo = NODE1) -> AuthzAttributes:
    return AuthzAttributes(user, verb, True, group, "v1", ns, resource, sub, name, "",
                           parse_field_selector(fs) if fs else None)


@pytest.fixture
def world() -> tuple[FakeServer, NodeAuthorizer]:
    server = FakeServer()
    return server, NodeAuthorizer(server)  # type: ignore[arg-type]


def test_node_identity() -> None:
    assert node_identity(NODE1) == (True, "n1")
    assert node_identity(UserInfo("system:node:n1", "", ())) == (False, "")  # needs the group
    assert node_identity(UserInfo("alice", "", ("system:nodes",))) == (False, "")
    assert node_identity(UserInfo("system:node:", "", ("system:nodes",))) == (True, "")


def test_pod_references_cover_every_place_a_pod_names_objects() -> None:
    p = pod("p", "n1", imagePullSecrets=[{"name": "pull"}], volumes=[
        {"name": "a", "secret": {"secretName": "vol-secret"}},
        {"name": "b", "configMap": {"name": "vol-cm"}},
        {"name": "c", "persistentVolumeClaim": {"claimName": "claim"}},
        {"name": "d", "projected": {"sources": [{"secret": {"name": "proj-secret"}}, {"configMap": {"name": "proj-cm"}}]}},
        {"name": "e", "ephemeral": {"volumeClaimTemplate": {}}},
    ], initContainers=[{"name": "i", "envFrom": [{"secretRef": {"name": "envfrom-secret"}}, {"configMapRef": {"name": "envfrom-cm"}}]}])
    p["spec"]["containers"][0]["env"] = [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "env-secret", "key": "k"}}},
                                        {"name": "Y", "valueFrom": {"configMapKeyRef": {"name": "env-cm", "key": "k"}}}]
    refs = pod_references(p)
    assert {r[2] for r in refs if r[0] == "secrets"} == {"pull", "vol-secret", "proj-secret", "envfrom-secret", "env-secret"}
    assert {r[2] for r in refs if r[0] == "configmaps"} == {"vol-cm", "proj-cm", "envfrom-cm", "env-cm"}
    assert {r[2] for r in refs if r[0] == "persistentvolumeclaims"} == {"claim", "p-e"}
    assert ("serviceaccounts", "ns", "default") in refs and ("pods", "ns", "p") in refs
    assert pod_references({"metadata": {}, "spec": {"containers": "garbage", "volumes": [1]}}) == {("pods", "", "")}


async def test_secrets_follow_the_graph(world) -> None:
    server, authz = world
    pods = server.caches["pods"]
    mine = pod("mine", "n1", volumes=[{"name": "s", "secret": {"secretName": "s1"}}])
    pods.put(mine)
    pods.put(pod("theirs", "n2", volumes=[{"name": "s", "secret": {"secretName": "s2"}}]))
    pods.put(pod("unscheduled", None, volumes=[{"name": "s", "secret": {"secretName": "s3"}}]))
    assert (await authz.authorize(req("get", "secrets", "s1")))[0] == ALLOW
    assert (await authz.authorize(req("watch", "secrets", "s1")))[0] == ALLOW  # single-object watch
    decision, reason = await authz.authorize(req("get", "secrets", "s2"))
    assert decision == NO_OPINION and reason == "no relationship found between node 'n1' and this object"
    assert (await authz.authorize(req("get", "secrets", "s3")))[0] == NO_OPINION
    assert (await authz.authorize(req("list", "secrets")))[0] == NO_OPINION
    assert (await authz.authorize(req("update", "secrets", "s1")))[0] == NO_OPINION
    # the edge goes away with the pod
    pods.delete(mine)
    assert (await authz.authorize(req("get", "secrets", "s1")))[0] == NO_OPINION
    # and comes with a binding
    pods.put(pod("unscheduled", "n1", volumes=[{"name": "s", "secret": {"secretName": "s3"}}]))
    assert (await authz.authorize(req("get", "secrets", "s3")))[0] == ALLOW


async def test_relist_rebuilds_the_graph(world) -> None:
    server, authz = world
    pods = server.caches["pods"]
    pods.put(pod("a", "n1", volumes=[{"name": "s", "configMap": {"name": "cm"}}]))
    assert (await authz.authorize(req("get", "configmaps", "cm")))[0] == ALLOW
    pods.objects = {}  # what the watch cache does when it relists after compaction
    assert (await authz.authorize(req("get", "configmaps", "cm")))[0] == NO_OPINION


async def test_persistent_volumes_through_claims(world) -> None:
    server, authz = world
    server.caches["pods"].put(pod("a", "n1", volumes=[{"name": "v", "persistentVolumeClaim": {"claimName": "c1"}}]))
    server.caches["persistentvolumeclaims"].put({"metadata": {"name": "c1", "namespace": "ns"}, "spec": {"volumeName": "pv1"}})
    assert (await authz.authorize(req("get", "persistentvolumeclaims", "c1")))[0] == ALLOW
    assert (await authz.authorize(req("get", "persistentvolumes", "pv1", ns="")))[0] == ALLOW
    assert (await authz.authorize(req("get", "persistentvolumes", "pv2", ns="")))[0] == NO_OPINION


async def test_nodes_pods_leases_tokens(world) -> None:
    server, authz = world
    server.caches["pods"].put(pod("mine", "n1"))
    assert (await authz.authorize(req("get", "nodes", "n1", ns="")))[0] == ALLOW
    assert (await authz.authorize(req("get", "nodes", "n2", ns="")))[0] == NO_OPINION
    assert (await authz.authorize(req("list", "nodes", ns="")))[0] == NO_OPINION
    assert (await authz.authorize(req("patch", "nodes", "n1", ns="", sub="status")))[0] == ALLOW
    assert (await authz.authorize(req("list", "pods", ns="", fs="spec.nodeName=n1")))[0] == ALLOW
    assert (await authz.authorize(req("list", "pods", ns="", fs="spec.nodeName=n2")))[0] == NO_OPINION
    assert (await authz.authorize(req("get", "pods", "mine")))[0] == ALLOW
    assert (await authz.authorize(req("update", "pods", "mine", sub="status")))[0] == ALLOW
    assert (await authz.authorize(req("update", "pods", "mine")))[0] == NO_OPINION
    lease = {"group": "coordination.k8s.io", "ns": "kube-node-lease"}
    assert (await authz.authorize(req("update", "leases", "n1", **lease)))[0] == ALLOW
    assert (await authz.authorize(req("update", "leases", "n2", **lease)))[0] == NO_OPINION
    assert (await authz.authorize(req("get", "leases", "n1", ns="default", group="coordination.k8s.io")))[0] == NO_OPINION
    assert (await authz.authorize(req("create", "serviceaccounts", "default", sub="token")))[0] == ALLOW
    assert (await authz.authorize(req("create", "serviceaccounts", "other", sub="token")))[0] == NO_OPINION
    # the static system:node rules cover the rest
    assert (await authz.authorize(req("list", "services", ns="")))[0] == ALLOW
    assert (await authz.authorize(req("create", "events")))[0] == ALLOW
    assert (await authz.authorize(req("list", "deployments", group="apps")))[0] == NO_OPINION


async def test_csinode_only_its_own(world) -> None:
    _, authz = world
    csi = {"group": "storage.k8s.io", "ns": ""}
    for verb in ("get", "update", "patch", "delete"):
        assert (await authz.authorize(req(verb, "csinodes", "n1", **csi)))[0] == ALLOW
        decision, reason = await authz.authorize(req(verb, "csinodes", "n2", **csi))
        assert decision == NO_OPINION and reason == "can only access CSINode with the same name as the requesting node"
    # the name of a create is in its body: NodeRestriction checks it
    assert (await authz.authorize(req("create", "csinodes", **csi)))[0] == ALLOW
    assert (await authz.authorize(req("list", "csinodes", **csi))) == (
        NO_OPINION, "can only get, create, update, patch, or delete a CSINode")
    assert (await authz.authorize(req("get", "csinodes", "n1", sub="status", **csi)))[0] == NO_OPINION


async def test_not_a_node_is_none_of_its_business(world) -> None:
    _, authz = world
    alice = UserInfo("alice", "", ("system:authenticated",))
    assert await authz.authorize(req("get", "secrets", "s1", user=alice)) == (NO_OPINION, "")
