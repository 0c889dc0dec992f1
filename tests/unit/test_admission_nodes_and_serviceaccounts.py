"""NodeRestriction, the ServiceAccount and NamespaceLifecycle admission plugins, with object look-ups faked."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import orjson
import pytest

from apimachinery import errors
from apiserver.admission import CREATE, DELETE, UPDATE, Attributes
from apiserver.admission import noderestriction as nr
from apiserver.admission import serviceaccount as sa_plugin
from apiserver.admission.plugins import NamespaceLifecycle
from apiserver.authn import UserInfo
from apiserver.resources import TABLE
from apiserver.watchcache import Entry

PODS = TABLE.lookup("", "v1", "pods")
NODES = TABLE.lookup("", "v1", "nodes")
LEASES = TABLE.lookup("coordination.k8s.io", "v1", "leases")
SAS = TABLE.lookup("", "v1", "serviceaccounts")
NODE1 = UserInfo("system:node:n1", "", ("system:nodes",))
ALICE = UserInfo("alice", "", ("system:authenticated",))


@pytest.fixture
def objects(monkeypatch) -> dict[tuple[str, str, str], dict[str, Any]]:
    store: dict[tuple[str, str, str], dict[str, Any]] = {}

    async def get_object(server: Any, group: str, plural: str, ns: str, name: str) -> dict[str, Any] | None:
        return store.get((plural, ns, name))

    monkeypatch.setattr(nr, "get_object", get_object)
    monkeypatch.setattr(sa_plugin, "get_object", get_object)
    return store


def a(op: str, res, obj: Any = None, old: Any = None, name: str = "", ns: str = "", sub: str = "",
      user: UserInfo = NODE1) -> Attributes:
    return Attributes(op, res, sub, ns, name, obj, old, user)


async def denied(plugin, attrs: Attributes) -> str:
    with pytest.raises(errors.StatusError) as e:
        await plugin.validate(attrs)
    assert e.value.code == 403
    return e.value.message


# -- NodeRestriction ---------------------------------------------------------------------------


def test_forbidden_labels() -> None:
    assert nr.forbidden_labels({"kubernetes.io/hostname": "n1", "node.kubernetes.io/instance-type": "x",
                                "kubelet.kubernetes.io/foo": "1", "example.com/team": "a"}) == []
    assert nr.forbidden_labels({"node-restriction.kubernetes.io/pool": "a", "node-role.kubernetes.io/master": "",
                                "foo.k8s.io/bar": "1"}) == ["foo.k8s.io/bar", "node-restriction.kubernetes.io/pool",
                                                            "node-role.kubernetes.io/master"]


async def test_nodes_only_touch_their_own_node(objects) -> None:
    p = nr.NodeRestriction(None)  # type: ignore[arg-type]
    msg = await denied(p, a(UPDATE, NODES, {"metadata": {"name": "n2"}}, {"metadata": {"name": "n2"}}, name="n2"))
    assert msg == 'nodes "n2" is forbidden: NodeRestriction: node "n1" is not allowed to modify node "n2"'
    await p.validate(a(CREATE, NODES, {"metadata": {"name": "n1", "labels": {"kubernetes.io/hostname": "n1"}}}))
    msg = await denied(p, a(CREATE, NODES, {"metadata": {"name": "n1", "labels": {"node-restriction.kubernetes.io/a": "b"}}}))
    assert "is not allowed to set the following labels: node-restriction.kubernetes.io/a" in msg
    old = {"metadata": {"name": "n1"}, "spec": {}}
    new = {"metadata": {"name": "n1"}, "spec": {"taints": [{"key": "k", "effect": "NoSchedule"}]}}
    assert "is not allowed to modify taints" in await denied(p, a(UPDATE, NODES, new, old, name="n1"))
    # other users are none of its business
    await p.validate(a(UPDATE, NODES, new, old, name="n2", user=ALICE))


async def test_pods_status_deletion_and_mirror_pods(objects) -> None:
    p = nr.NodeRestriction(None)  # type: ignore[arg-type]
    theirs = {"metadata": {"name": "x", "namespace": "ns"}, "spec": {"nodeName": "n2"}}
    mine = {"metadata": {"name": "y", "namespace": "ns"}, "spec": {"nodeName": "n1"}}
    assert "can only update pod status for pods with spec.nodeName set to itself" in await denied(
        p, a(UPDATE, PODS, theirs, theirs, "x", "ns", "status"))
    await p.validate(a(UPDATE, PODS, mine, mine, "y", "ns", "status"))
    assert "can only delete pods" in await denied(p, a(DELETE, PODS, None, theirs, "x", "ns"))
    await p.validate(a(DELETE, PODS, None, mine, "y", "ns"))
    plain = {"metadata": {"name": "m", "namespace": "ns"}, "spec": {"nodeName": "n1", "containers": []}}
    assert "can only create mirror pods" in await denied(p, a(CREATE, PODS, plain, None, "m", "ns"))
    mirror = {"metadata": {"name": "m", "namespace": "ns", "annotations": {"kubernetes.io/config.mirror": "h"}},
              "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "x"}]}}
    await p.validate(a(CREATE, PODS, mirror, None, "m", "ns"))
    mirror["spec"]["volumes"] = [{"name": "s", "secret": {"secretName": "s"}}]
    assert "can not create pods that reference secrets" in await denied(p, a(CREATE, PODS, mirror, None, "m", "ns"))
    assert "unexpected operation" in await denied(p, a(UPDATE, PODS, mine, mine, "y", "ns"))
    # other subresources (exec, binding...) are never a node's business, whatever RBAC says
    assert await denied(p, a("CONNECT", PODS, {}, None, "y", "ns", "exec")) == (
        'pods/exec "y" is forbidden: NodeRestriction: unexpected pod subresource "exec", only \'status\' and '
        "'eviction' are allowed")
    assert "unexpected pod subresource" in await denied(p, a(CREATE, PODS, {}, None, "y", "ns", "binding"))


async def test_leases_and_tokens(objects) -> None:
    p = nr.NodeRestriction(None)  # type: ignore[arg-type]
    assert "same name as the requesting node" in await denied(
        p, a(CREATE, LEASES, {"metadata": {"name": "n2"}}, None, "", "kube-node-lease"))
    await p.validate(a(CREATE, LEASES, {"metadata": {"name": "n1"}}, None, "", "kube-node-lease"))
    objects[("pods", "ns", "mine")] = {"metadata": {"name": "mine", "uid": "u1"}, "spec": {"nodeName": "n1"}}
    objects[("pods", "ns", "theirs")] = {"metadata": {"name": "theirs", "uid": "u2"}, "spec": {"nodeName": "n2"}}

    def token(ref: dict | None) -> Attributes:
        return a(CREATE, SAS, {"spec": {"boundObjectRef": ref} if ref else {}}, None, "default", "ns", "token")

    assert "not bound to a pod" in await denied(p, token(None))
    assert "without a uid" in await denied(p, token({"kind": "Pod", "name": "mine"}))
    assert "scheduled on a different node" in await denied(p, token({"kind": "Pod", "name": "theirs", "uid": "u2"}))
    await p.validate(token({"kind": "Pod", "name": "mine", "uid": "u1"}))


# -- ServiceAccount ------------------------------------------------------------------------------


def test_token_volume_is_mounted_where_the_path_is_free() -> None:
    spec = {"containers": [{"name": "a"}, {"name": "b", "volumeMounts": [
        {"name": "own", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}]}],
        "initContainers": [{"name": "i"}]}
    sa_plugin.mount_token(spec)
    (vol,) = spec["volumes"]
    assert vol["name"].startswith("kube-api-access-") and len(vol["name"]) == len("kube-api-access-") + 5
    sources = vol["projected"]["sources"]
    assert sources[0] == {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}}
    assert sources[1]["configMap"]["name"] == "kube-root-ca.crt"
    assert sources[2]["downwardAPI"]["items"][0]["fieldRef"]["fieldPath"] == "metadata.namespace"
    assert vol["projected"]["defaultMode"] == 420
    mount = {"name": vol["name"], "readOnly": True, "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}
    assert spec["containers"][0]["volumeMounts"] == [mount] and spec["initContainers"][0]["volumeMounts"] == [mount]
    assert len(spec["containers"][1]["volumeMounts"]) == 1  # its own mount wins
    sa_plugin.mount_token(spec)
    assert len(spec["volumes"]) == 1  # idempotent


async def test_service_account_admission(objects) -> None:
    objects[("namespaces", "", "ns")] = {"metadata": {"name": "ns"}}
    objects[("serviceaccounts", "ns", "default")] = {"metadata": {"name": "default"}, "imagePullSecrets": [{"name": "reg"}]}
    objects[("serviceaccounts", "ns", "quiet")] = {"metadata": {"name": "quiet"}, "automountServiceAccountToken": False}
    plugin = sa_plugin.ServiceAccount(None)  # type: ignore[arg-type]

    def create(spec: dict, annotations: dict | None = None) -> Attributes:
        obj = {"metadata": {"name": "p", "namespace": "ns", "annotations": annotations or {}}, "spec": spec}
        return a(CREATE, PODS, obj, None, "p", "ns", user=ALICE)

    attrs = create({"containers": [{"name": "c"}]})
    await plugin.admit(attrs)
    spec = attrs.obj["spec"]
    assert spec["serviceAccountName"] == spec["serviceAccount"] == "default"
    assert spec["imagePullSecrets"] == [{"name": "reg"}] and spec["volumes"][0]["name"].startswith("kube-api-access-")
    attrs = create({"serviceAccountName": "quiet", "containers": [{"name": "c"}]})
    await plugin.admit(attrs)
    assert "volumes" not in attrs.obj["spec"]  # the ServiceAccount opted out
    attrs = create({"serviceAccountName": "quiet", "automountServiceAccountToken": True, "containers": [{"name": "c"}]})
    await plugin.admit(attrs)
    assert attrs.obj["spec"]["volumes"]  # the pod overrides its ServiceAccount
    with pytest.raises(errors.StatusError) as e:
        await plugin.admit(create({"serviceAccountName": "nope", "containers": [{"name": "c"}]}))
    assert e.value.code == 403 and e.value.message == (
        'pods "p" is forbidden: ServiceAccount: error looking up service account ns/nope: serviceaccount "nope" not found')
    mirror = create({"containers": [{"name": "c"}]}, {"kubernetes.io/config.mirror": "x"})
    await plugin.admit(mirror)
    assert "serviceAccountName" not in mirror.obj["spec"]  # mirror pods run as nobody
    with pytest.raises(errors.StatusError):
        await plugin.admit(create({"serviceAccountName": "default", "containers": [{"name": "c"}]}, {"kubernetes.io/config.mirror": "x"}))


# -- NamespaceLifecycle --------------------------------------------------------------------------


class _StaleNamespaceCache:
    """A watch cache that hasn't seen the namespace's deletion yet: it still says Active."""

    def __init__(self) -> None:
        self.ready = asyncio.Event()
        self.ready.set()

    def get(self, key: str) -> Any:
        return Entry(b"{}", 1, "", key.rsplit("/", 1)[1], {}, {"status.phase": "Active"})


class _LiveNamespaceStore:
    """etcd: the namespace already carries its deletionTimestamp."""

    def __init__(self) -> None:
        self.reads = 0

    async def get(self, key: str) -> Any:
        self.reads += 1
        ns = {"metadata": {"name": key.rsplit("/", 1)[1], "deletionTimestamp": "2026-11-22T00:00:00Z"},
              "status": {"phase": "Active"}}

        class KV:
            def decode(self) -> dict[str, Any]:
                return orjson.loads(orjson.dumps(ns))

        return KV()


async def test_namespace_lifecycle_reads_etcd_after_admitting_a_namespace_delete() -> None:
    namespaces = TABLE.lookup("", "v1", "namespaces")
    configmaps = TABLE.lookup("", "v1", "configmaps")
    store = _LiveNamespaceStore()
    server = SimpleNamespace(cache_for=lambda g, r: _StaleNamespaceCache(), store=store)
    p = NamespaceLifecycle(server)  # type: ignore[arg-type]
    create = a(CREATE, configmaps, {"metadata": {"name": "x"}}, name="x", ns="doomed", user=ALICE)
    await p.validate(create)  # the cache says Active and nothing was deleted here: trusted, no etcd read
    assert store.reads == 0
    await p.validate(a(DELETE, namespaces, name="doomed", user=ALICE))
    message = await denied(p, create)
    assert "being terminated" in message and store.reads == 1
    await p.validate(a(CREATE, configmaps, {"metadata": {"name": "x"}}, name="x", ns="other", user=ALICE))
    assert store.reads == 1  # other namespaces still come from the cache
    assert "may not be deleted" in await denied(p, a(DELETE, namespaces, name="kube-system", user=ALICE))
