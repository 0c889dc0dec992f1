"""persistentVolumeClaim and generic ephemeral volumes on a real node: the kubelet reads the claim
and its PersistentVolume with its own node identity (through the Node authorizer) and mounts the
PV's host path. No binder runs here: each test binds claim and volume itself, as the PV
controller would (PV spec.claimRef with the claim's uid, the claim's spec.volumeName, its
status.phase Bound through the status subresource)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import wait_for
from tests.e2e.kubelet.conftest import (
    container_status,
    create_pod,
    events_for,
    pod_manifest,
    running,
    wait_pod,
)

pytestmark = pytest.mark.e2e

MERGE = {"Content-Type": "application/merge-patch+json"}


def _delete_for_good(api: httpx.Client, path: str) -> None:
    """DELETE, then drop the protection finalizer StorageObjectInUseProtection adds: its
    controllers do not run in this cluster."""
    r = api.delete(path)
    assert r.status_code in (200, 202, 404), r.text
    r = api.patch(path, json={"metadata": {"finalizers": None}}, headers=MERGE)
    assert r.status_code in (200, 404), r.text
    wait_for(lambda: api.get(path).status_code == 404, 20, 0.1, f"{path} gone")


@pytest.fixture
def pvs(api: httpx.Client) -> Iterator[list[str]]:
    """Names of the PersistentVolumes a test creates (cluster-scoped: deleted here)."""
    names: list[str] = []
    yield names
    for name in names:
        with contextlib.suppress(Exception):
            _delete_for_good(api, f"/api/v1/persistentvolumes/{name}")


def _create_claim(api: httpx.Client, ns: str, name: str, **meta: Any) -> dict[str, Any]:
    r = api.post(f"/api/v1/namespaces/{ns}/persistentvolumeclaims", json={
        "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name, **meta},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}},
                 "storageClassName": ""}})
    assert r.status_code == 201, r.text
    return r.json()


def _bind(api: httpx.Client, ns: str, claim: dict[str, Any], pv_name: str, source: dict[str, Any]) -> None:
    """What the PV controller does: a PV whose claimRef is the claim, then the claim's two halves."""
    meta = claim["metadata"]
    r = api.post("/api/v1/persistentvolumes", json={
        "apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": pv_name},
        "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "storageClassName": "",
                 "persistentVolumeReclaimPolicy": "Retain", **source,
                 "claimRef": {"kind": "PersistentVolumeClaim", "apiVersion": "v1", "namespace": ns,
                              "name": meta["name"], "uid": meta["uid"]}}})
    assert r.status_code == 201, r.text
    r = api.patch(f"/api/v1/persistentvolumes/{pv_name}/status", json={"status": {"phase": "Bound"}},
                  headers=MERGE)
    assert r.status_code == 200, r.text
    r = api.patch(f"/api/v1/namespaces/{ns}/persistentvolumeclaims/{meta['name']}",
                  json={"spec": {"volumeName": pv_name}}, headers=MERGE)
    assert r.status_code == 200, r.text
    r = api.patch(f"/api/v1/namespaces/{ns}/persistentvolumeclaims/{meta['name']}/status",
                  json={"status": {"phase": "Bound", "accessModes": ["ReadWriteOnce"],
                                   "capacity": {"storage": "1Gi"}}}, headers=MERGE)
    assert r.status_code == 200, r.text
    assert r.json()["status"]["phase"] == "Bound" and r.json()["spec"]["volumeName"] == pv_name


def _failed_mount(api: httpx.Client, ns: str, pod: str) -> list[str]:
    return [e["message"] for e in events_for(api, ns, pod) if e["reason"] == "FailedMount"]


def _creating(api: httpx.Client, ns: str, name: str, message: str) -> dict[str, Any]:
    """The pod stays ContainerCreating with a FailedMount event carrying `message`."""
    def check(p: dict[str, Any]) -> bool:
        waiting = (container_status(p, "main").get("state") or {}).get("waiting") or {}
        return waiting.get("reason") == "ContainerCreating" and any(
            message in m for m in _failed_mount(api, ns, name))

    pod = wait_pod(api, ns, name, check, 30, f"{name}: ContainerCreating with a FailedMount event")
    assert pod["status"]["phase"] == "Pending"
    return pod


def test_host_path_pv_written_by_one_pod_and_read_read_only_by_another(api, ns, kubelet, kcluster, host_dir, pvs):
    claim = _create_claim(api, ns, "data")
    pv_path = host_dir / "vol"  # DirectoryOrCreate: the kubelet makes it
    pvs.append(f"{ns}-data")
    _bind(api, ns, claim, pvs[0], {"hostPath": {"path": str(pv_path), "type": "DirectoryOrCreate"}})

    create_pod(api, ns, pod_manifest("writer", [
        {"name": "main", "command": ["sh", "-c", "echo written-by-pod > /data/hello && "
                                                 "echo nested > /nested/inner && sleep 3600"],
         "volumeMounts": [{"name": "store", "mountPath": "/data"},
                          {"name": "store", "mountPath": "/nested", "subPath": "sub/dir"}]},
        {"name": "viewer", "command": ["sleep", "3600"],
         "volumeMounts": [{"name": "store", "mountPath": "/data", "readOnly": True}]},
    ], volumes=[{"name": "store", "persistentVolumeClaim": {"claimName": "data"}}]))
    wait_pod(api, ns, "writer", running)
    wait_for(lambda: (pv_path / "hello").is_file() and (pv_path / "hello").read_text() == "written-by-pod\n",
             20, 0.2, "the pod's file on the PV's host path")
    wait_for(lambda: (pv_path / "sub" / "dir" / "inner").is_file(), 20, 0.2, "the subPath file on the host")
    assert (pv_path / "sub" / "dir" / "inner").read_text() == "nested\n"

    def sh(pod: str, container: str, cmd: str) -> Any:
        return kcluster.kubectl("exec", "-n", ns, pod, "-c", container, "--", "sh", "-c", cmd, check=False)

    # the volumeMount's readOnly makes this container's view read-only, the claim stays writable
    assert sh("writer", "viewer", "cat /data/hello").stdout == "written-by-pod\n"
    assert "Read-only file system" in sh("writer", "viewer", "echo x > /data/viewer").stderr
    assert not (pv_path / "viewer").exists()

    # a second pod with the claim read-only (persistentVolumeClaim.readOnly) sees the data, cannot write
    create_pod(api, ns, pod_manifest("reader", [
        {"name": "main", "command": ["sleep", "3600"], "volumeMounts": [{"name": "store", "mountPath": "/data"}]},
    ], volumes=[{"name": "store", "persistentVolumeClaim": {"claimName": "data", "readOnly": True}}]))
    wait_pod(api, ns, "reader", running)
    assert sh("reader", "main", "cat /data/hello /data/sub/dir/inner").stdout == "written-by-pod\nnested\n"
    r = sh("reader", "main", "echo x > /data/reader")
    assert r.returncode != 0 and "Read-only file system" in r.stderr
    assert not (pv_path / "reader").exists()
    assert "ro" in sh("reader", "main", "grep ' /data ' /proc/mounts").stdout.split()[3].split(",")

    # the PV's data outlives the pods: deleting them leaves the host path alone
    for pod in ("writer", "reader"):
        assert api.delete(f"/api/v1/namespaces/{ns}/pods/{pod}").status_code == 200
    wait_for(lambda: not api.get(f"/api/v1/namespaces/{ns}/pods").json()["items"], 60, 0.2, "pods gone")
    assert (pv_path / "hello").read_text() == "written-by-pod\n"


def test_unbound_claim_keeps_the_pod_creating_until_it_is_bound(api, ns, kubelet, kcluster, host_dir, pvs):
    claim = _create_claim(api, ns, "later")
    local = host_dir / "local"
    local.mkdir()
    create_pod(api, ns, pod_manifest("waiter", [
        {"name": "main", "command": ["sh", "-c", "echo bound > /data/out && sleep 3600"],
         "volumeMounts": [{"name": "store", "mountPath": "/data"}]},
    ], volumes=[{"name": "store", "persistentVolumeClaim": {"claimName": "later"}}]))
    _creating(api, ns, "waiter", 'MountVolume.SetUp failed for volume "store" : error processing PVC '
                                 f'{ns}/later: PVC {ns}/later has non-bound phase ("Pending") or empty '
                                 'pvc.Spec.VolumeName ("")')
    assert not (local / "out").exists()

    pvs.append(f"{ns}-later")
    _bind(api, ns, claim, pvs[0], {"local": {"path": str(local)},
                                   "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                                       {"key": "kubernetes.io/hostname", "operator": "In",
                                        "values": ["testnode"]}]}]}}})
    wait_pod(api, ns, "waiter", running, 30)
    wait_for(lambda: (local / "out").is_file(), 20, 0.2, "the pod's file in the local PV")
    assert (local / "out").read_text() == "bound\n"


def test_missing_claim_and_generic_ephemeral_volume(api, ns, kubelet, kcluster, host_dir, pvs):
    template = {"spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "",
                         "resources": {"requests": {"storage": "1Gi"}}}}
    pod = create_pod(api, ns, pod_manifest("eph", [
        {"name": "main", "command": ["sh", "-c", "echo ephemeral > /scratch/out && sleep 3600"],
         "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}]},
    ], volumes=[{"name": "scratch", "ephemeral": {"volumeClaimTemplate": template}}]))
    # the ephemeral-volume controller does not run here: the claim <pod>-<volume> is missing
    _creating(api, ns, "eph", f'error processing PVC {ns}/eph-scratch: persistentvolumeclaim "eph-scratch" '
                              "not found")

    # a claim of that name the pod does not own is refused
    stranger = _create_claim(api, ns, "eph-scratch")
    pvs.append(f"{ns}-stranger")
    _bind(api, ns, stranger, pvs[-1], {"hostPath": {"path": str(host_dir / "stranger"), "type": "DirectoryOrCreate"}})
    _creating(api, ns, "eph", f"PVC {ns}/eph-scratch was not created for pod {ns}/eph (pod is not owner)")
    assert not (host_dir / "stranger").exists()

    # the claim the controller would make: controlled by the pod
    _delete_for_good(api, f"/api/v1/namespaces/{ns}/persistentvolumeclaims/eph-scratch")
    owner = {"apiVersion": "v1", "kind": "Pod", "name": "eph", "uid": pod["metadata"]["uid"], "controller": True,
             "blockOwnerDeletion": True}
    claim = _create_claim(api, ns, "eph-scratch", ownerReferences=[owner])
    pvs.append(f"{ns}-eph")
    _bind(api, ns, claim, pvs[-1], {"hostPath": {"path": str(host_dir / "eph"), "type": "DirectoryOrCreate"}})
    wait_pod(api, ns, "eph", running, 30)
    wait_for(lambda: (host_dir / "eph" / "out").is_file(), 20, 0.2, "the pod's file in the ephemeral volume")
    assert (host_dir / "eph" / "out").read_text() == "ephemeral\n"
    assert not (host_dir / "stranger").exists()
    assert os.listdir(host_dir) == ["eph"]
