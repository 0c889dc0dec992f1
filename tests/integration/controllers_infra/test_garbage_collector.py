"""Cascading deletion with a real garbage collector, driven by `kubectl delete --cascade=...`."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import ControlPlane, wait_for
from tests.integration.controllers_infra.conftest import ControllerManager, wait_for_audit

MERGE = {"content-type": "application/merge-patch+json"}


def owner_ref(obj: dict, block: bool = True) -> dict:
    return {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "name": obj["metadata"]["name"],
            "uid": obj["metadata"]["uid"], "blockOwnerDeletion": block}


def make_family(admin: httpx.Client, ns: str, name: str, held: bool = False) -> tuple[dict, list[str]]:
    """An owner ConfigMap with two dependent ConfigMaps and a dependent (unscheduled) pod."""
    base = f"/api/v1/namespaces/{ns}"
    owner = admin.post(f"{base}/configmaps", json={"metadata": {"name": name}}).json()
    owner.setdefault("apiVersion", "v1")
    owner.setdefault("kind", "ConfigMap")
    deps = []
    for i in range(2):
        meta = {"name": f"{name}-dep{i}", "ownerReferences": [owner_ref(owner)]}
        if held and i == 0:
            meta["finalizers"] = ["example.com/hold"]
        admin.post(f"{base}/configmaps", json={"metadata": meta}).raise_for_status()
        deps.append(f"configmaps/{name}-dep{i}")
    admin.post(f"{base}/pods", json={"metadata": {"name": f"{name}-pod", "ownerReferences": [owner_ref(owner)]},
                                     "spec": {"containers": [{"name": "c", "image": "x"}]}}).raise_for_status()
    deps.append(f"pods/{name}-pod")
    return owner, deps


def exists(admin: httpx.Client, ns: str, what: str) -> bool:
    return admin.get(f"/api/v1/namespaces/{ns}/{what}").status_code == 200


def test_cascade_background(infra_plane: ControlPlane, admin: httpx.Client, ns: str,
                            controller_manager: ControllerManager) -> None:
    _, deps = make_family(admin, ns, "bg")
    infra_plane.kubectl("delete", "configmap", "bg", "-n", ns, "--cascade=background", "--wait=false")
    wait_for(lambda: not any(exists(admin, ns, d) for d in deps), 20, 0.1, "the dependents to be collected")
    assert not exists(admin, ns, "configmaps/bg")
    # the deletions were the garbage collector's, as its own ServiceAccount
    assert "system:serviceaccount:kube-system:generic-garbage-collector" in wait_for_audit(
        infra_plane, "delete", "pods", ns)
    controller_manager.assert_no_rbac_denials()


def test_cascade_foreground_waits_for_blocking_dependents(infra_plane: ControlPlane, admin: httpx.Client, ns: str,
                                                           controller_manager: ControllerManager) -> None:
    _, deps = make_family(admin, ns, "fg", held=True)
    infra_plane.kubectl("delete", "configmap", "fg", "-n", ns, "--cascade=foreground", "--wait=false")
    # the dependents go; the one held by a finalizer keeps the owner (foregroundDeletion finalizer) in place
    wait_for(lambda: not exists(admin, ns, deps[1]) and not exists(admin, ns, deps[2]), 20, 0.1,
             "the unheld dependents to be collected")
    held = admin.get(f"/api/v1/namespaces/{ns}/{deps[0]}").json()
    assert held["metadata"]["deletionTimestamp"]
    owner = admin.get(f"/api/v1/namespaces/{ns}/configmaps/fg").json()
    assert owner["metadata"]["finalizers"] == ["foregroundDeletion"] and owner["metadata"]["deletionTimestamp"]
    # the last blocking dependent goes: so does the owner
    admin.patch(f"/api/v1/namespaces/{ns}/{deps[0]}", json={"metadata": {"finalizers": None}}, headers=MERGE
                ).raise_for_status()
    wait_for(lambda: not exists(admin, ns, "configmaps/fg"), 20, 0.1, "the owner to be gone")
    controller_manager.assert_no_rbac_denials()


def test_cascade_orphan(infra_plane: ControlPlane, admin: httpx.Client, ns: str,
                        controller_manager: ControllerManager) -> None:
    _owner, deps = make_family(admin, ns, "or")
    infra_plane.kubectl("delete", "configmap", "or", "-n", ns, "--cascade=orphan", "--wait=false")
    wait_for(lambda: not exists(admin, ns, "configmaps/or"), 20, 0.1, "the owner to be gone")
    for d in deps:
        obj = admin.get(f"/api/v1/namespaces/{ns}/{d}").json()
        assert obj["metadata"].get("ownerReferences") in (None, []), d
    controller_manager.assert_no_rbac_denials()


@pytest.mark.parametrize("scope", ["namespaced", "cluster"])
def test_dangling_and_cluster_scoped_owners(infra_plane: ControlPlane, admin: httpx.Client, ns: str, scope: str) -> None:
    base = f"/api/v1/namespaces/{ns}"
    if scope == "cluster":
        owner = admin.post("/apis/rbac.authorization.k8s.io/v1/clusterroles",
                           json={"metadata": {"generateName": "gc-owner-"}, "rules": []}).json()
    else:
        owner = admin.post(f"{base}/secrets", json={"metadata": {"name": "owner"}}).json()
        owner.setdefault("apiVersion", "v1")
        owner.setdefault("kind", "Secret")
    admin.post(f"{base}/configmaps", json={"metadata": {"name": "dep", "ownerReferences": [owner_ref(owner)]}}
               ).raise_for_status()
    # a reference to an owner that never existed: collected at once
    ghost = {**owner_ref(owner), "uid": "00000000-0000-0000-0000-000000000000", "name": "ghost"}
    admin.post(f"{base}/configmaps", json={"metadata": {"name": "dangling", "ownerReferences": [ghost]}}
               ).raise_for_status()
    wait_for(lambda: not exists(admin, ns, "configmaps/dangling"), 20, 0.1, "the dangling dependent to be collected")
    assert exists(admin, ns, "configmaps/dep")
    if scope == "cluster":
        admin.delete(f"/apis/rbac.authorization.k8s.io/v1/clusterroles/{owner['metadata']['name']}").raise_for_status()
    else:
        admin.delete(f"{base}/secrets/owner").raise_for_status()
    wait_for(lambda: not exists(admin, ns, "configmaps/dep"), 20, 0.1, "the dependent to be collected")
