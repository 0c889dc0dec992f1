"""A kubelet's identity (system:node:<name>) against the Node authorizer and NodeRestriction."""

from __future__ import annotations

import os
import ssl
from collections.abc import Iterator

import httpx
import pytest

from certs import issue_client_cert
from tests.conftest import ControlPlane, wait_for

MERGE = {"content-type": "application/merge-patch+json"}


def node_client(cp: ControlPlane, node: str) -> httpx.Client:
    name = f"node-{node}"
    if not cp.pki.cert(name).exists():
        issue_client_cert(cp.pki, name, f"system:node:{node}", ["system:nodes"])
    ctx = ssl.create_default_context(cafile=str(cp.pki.ca_cert))
    ctx.load_cert_chain(*map(str, cp.pki.client(name)))
    return httpx.Client(base_url=cp.url, verify=ctx, timeout=15)


@pytest.fixture
def nodes(control_plane: ControlPlane, api: httpx.Client) -> Iterator[tuple[str, str, httpx.Client]]:
    """Two nodes (created by the admin); a client for the first."""
    me, other = f"n-{os.urandom(3).hex()}", f"n-{os.urandom(3).hex()}"
    for n in (me, other):
        api.post("/api/v1/nodes", json={"metadata": {"name": n}}).raise_for_status()
    with node_client(control_plane, me) as c:
        yield me, other, c
    for n in (me, other):
        api.delete(f"/api/v1/nodes/{n}")


def pod_on(node: str, name: str, secret: str) -> dict:
    return {"metadata": {"name": name}, "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}],
                                                  "volumes": [{"name": "s", "secret": {"secretName": secret}}]}}


def test_node_cannot_modify_another_node(nodes: tuple[str, str, httpx.Client]) -> None:
    me, other, kubelet = nodes
    r = kubelet.patch(f"/api/v1/nodes/{me}", json={"metadata": {"labels": {"example.com/ok": "1"}}}, headers=MERGE)
    assert r.status_code == 200, r.text
    r = kubelet.patch(f"/api/v1/nodes/{me}/status", json={"status": {"conditions": [
        {"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "ok"}]}}, headers=MERGE)
    assert r.status_code == 200, r.text
    r = kubelet.get(f"/api/v1/nodes/{other}")
    assert r.status_code == 403 and f"node '{me}' cannot read '{other}', only its own Node object" in r.json()["message"]
    r = kubelet.patch(f"/api/v1/nodes/{other}", json={"metadata": {"labels": {"x": "y"}}}, headers=MERGE)
    assert r.status_code == 403
    assert r.json()["message"] == (f'nodes "{other}" is forbidden: NodeRestriction: node "{me}" is not allowed to '
                                   f'modify node "{other}"')
    r = kubelet.patch(f"/api/v1/nodes/{other}/status", json={"status": {"conditions": []}}, headers=MERGE)
    assert r.status_code == 403 and "NodeRestriction" in r.json()["message"]
    r = kubelet.patch(f"/api/v1/nodes/{me}", json={"spec": {"taints": [{"key": "k", "effect": "NoSchedule"}]}}, headers=MERGE)
    assert r.status_code == 403 and "not allowed to modify taints" in r.json()["message"]
    r = kubelet.patch(f"/api/v1/nodes/{me}", json={"metadata": {"labels": {"node-restriction.kubernetes.io/x": "1"}}},
                      headers=MERGE)
    assert r.status_code == 403 and "not allowed to modify labels" in r.json()["message"]
    assert kubelet.get("/api/v1/nodes").status_code == 403
    assert kubelet.delete(f"/api/v1/nodes/{me}").status_code == 403


def test_node_reads_only_its_pods_secrets(api: httpx.Client, namespace: str, nodes: tuple[str, str, httpx.Client]) -> None:
    me, other, kubelet = nodes
    base = f"/api/v1/namespaces/{namespace}"
    for s in ("mine", "theirs", "unused"):
        api.post(f"{base}/secrets", json={"metadata": {"name": s}, "stringData": {"k": "v"}}).raise_for_status()
    api.post(f"{base}/pods", json=pod_on(me, "mine", "mine")).raise_for_status()
    api.post(f"{base}/pods", json=pod_on(other, "theirs", "theirs")).raise_for_status()
    wait_for(lambda: kubelet.get(f"{base}/secrets/mine").status_code == 200, what="the graph to learn the pod")
    r = kubelet.get(f"{base}/secrets/theirs")
    assert r.status_code == 403
    assert r.json()["message"] == (
        f'secrets "theirs" is forbidden: User "system:node:{me}" cannot get resource "secrets" in API group "" in the '
        f"namespace \"{namespace}\": no relationship found between node '{me}' and this object")
    assert kubelet.get(f"{base}/secrets/unused").status_code == 403
    assert kubelet.get(f"{base}/secrets").status_code == 403  # no listing
    # a single-object watch (what a kubelet does) is fine
    r = kubelet.get(f"{base}/secrets", params={"fieldSelector": "metadata.name=mine", "limit": "1"})
    assert r.status_code == 200 and [i["metadata"]["name"] for i in r.json()["items"]] == ["mine"]
    # pods: its own, through a field selector
    assert kubelet.get(f"{base}/pods/mine").status_code == 200
    assert kubelet.get(f"{base}/pods/theirs").status_code == 403
    r = kubelet.get("/api/v1/pods", params={"fieldSelector": f"spec.nodeName={me}"})
    assert r.status_code == 200 and [p["metadata"]["name"] for p in r.json()["items"]] == ["mine"]
    assert kubelet.get("/api/v1/pods").status_code == 403
    # status of its own pods only
    st = {"status": {"phase": "Running"}}
    assert kubelet.patch(f"{base}/pods/mine/status", json=st, headers=MERGE).status_code == 200
    r = kubelet.patch(f"{base}/pods/theirs/status", json=st, headers=MERGE)
    assert r.status_code == 403 and "NodeRestriction" in r.json()["message"]
    # deleting the pod takes the secret away
    api.delete(f"{base}/pods/mine", params={"gracePeriodSeconds": "0"}).raise_for_status()
    wait_for(lambda: kubelet.get(f"{base}/secrets/mine").status_code == 403, what="access to end with the pod")


def test_node_writes_only_its_own_csinode(api: httpx.Client, nodes: tuple[str, str, httpx.Client]) -> None:
    me, other, kubelet = nodes
    csinodes = "/apis/storage.k8s.io/v1/csinodes"

    def body(name: str) -> dict:
        return {"metadata": {"name": name}, "spec": {"drivers": []}}

    r = kubelet.post(csinodes, json=body(other))
    assert r.status_code == 403
    assert r.json()["message"] == (f'csinodes.storage.k8s.io "{other}" is forbidden: NodeRestriction: can only '
                                   f"access CSINode with the same name as the requesting node")
    r = kubelet.post(csinodes, json=body(me))
    assert r.status_code == 201, r.text
    r = kubelet.patch(f"{csinodes}/{me}", json={"metadata": {"labels": {"a": "b"}}}, headers=MERGE)
    assert r.status_code == 200, r.text
    api.post(csinodes, json=body(other)).raise_for_status()
    for r in (kubelet.get(f"{csinodes}/{other}"), kubelet.delete(f"{csinodes}/{other}"), kubelet.get(csinodes)):
        assert r.status_code == 403, r.text
    assert kubelet.delete(f"{csinodes}/{me}").status_code == 200
    api.delete(f"{csinodes}/{other}").raise_for_status()


def test_node_leases_and_tokens(api: httpx.Client, namespace: str, nodes: tuple[str, str, httpx.Client]) -> None:
    me, other, kubelet = nodes
    leases = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases"
    r = kubelet.post(leases, json={"metadata": {"name": me}, "spec": {"holderIdentity": me, "leaseDurationSeconds": 40}})
    assert r.status_code == 201, r.text
    assert kubelet.patch(f"{leases}/{me}", json={"spec": {"renewTime": "2026-01-01T00:00:00.000000Z"}},
                         headers=MERGE).status_code == 200
    r = kubelet.post(leases, json={"metadata": {"name": other}, "spec": {"holderIdentity": me}})
    assert r.status_code == 403 and "same name as the requesting node" in r.json()["message"]
    assert kubelet.get(f"{leases}/{other}").status_code == 403
    base = f"/api/v1/namespaces/{namespace}"
    api.post(f"{base}/secrets", json={"metadata": {"name": "s"}, "stringData": {"k": "v"}}).raise_for_status()
    mine = api.post(f"{base}/pods", json=pod_on(me, "mine", "s")).json()
    theirs = api.post(f"{base}/pods", json=pod_on(other, "theirs", "s")).json()

    def token_for(pod: dict) -> httpx.Response:
        return kubelet.post(f"{base}/serviceaccounts/default/token", json={"spec": {"boundObjectRef": {
            "kind": "Pod", "apiVersion": "v1", "name": pod["metadata"]["name"], "uid": pod["metadata"]["uid"]}}})

    r = wait_for(lambda: (lambda r: r if r.status_code == 201 else None)(token_for(mine)), what="a token for its pod")
    assert r.json()["status"]["token"]
    r = token_for(theirs)
    assert r.status_code == 403 and "scheduled on a different node" in r.json()["message"]
    r = kubelet.post(f"{base}/serviceaccounts/default/token", json={"spec": {}})
    assert r.status_code == 403 and "not bound to a pod" in r.json()["message"]


def test_node_evicts_only_its_own_pods(api: httpx.Client, namespace: str, nodes: tuple[str, str, httpx.Client]) -> None:
    me, other, kubelet = nodes
    base = f"/api/v1/namespaces/{namespace}"
    for node, name in ((me, "mine"), (other, "theirs")):
        api.post(f"{base}/pods", json={"metadata": {"name": name}, "spec": {
            "nodeName": node, "containers": [{"name": "c", "image": "busybox"}]}}).raise_for_status()

    def evict(name: str) -> httpx.Response:
        return kubelet.post(f"{base}/pods/{name}/eviction", json={
            "apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": name, "namespace": namespace}})

    r = evict("theirs")
    assert r.status_code == 403, r.text
    assert r.json()["message"].endswith(f'NodeRestriction: node "{me}" can only evict pods with spec.nodeName set '
                                        "to itself")
    assert api.get(f"{base}/pods/theirs").json()["metadata"].get("deletionTimestamp") is None
    assert evict("mine").status_code == 201
    assert api.get(f"{base}/pods/mine").json()["metadata"].get("deletionTimestamp")
