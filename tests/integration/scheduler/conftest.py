"""Fixtures for the scheduler's integration tests: the scheduler as a real process (its own
kubeconfig, system:kube-scheduler), Node objects (no kubelet needed) and pods.

Each module runs its own scheduler with a unique schedulerName, so pods left pending by
other tests in the session are never touched, and every Node a test creates is deleted
after it. `storage` makes PersistentVolumes, claims and classes, the test playing the PV
binder (no controller-manager runs here).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from certs import write_cluster_kubeconfigs
from minictl.components import component_env, free_port
from tests.conftest import ControlPlane, wait_for

HOSTNAME = "kubernetes.io/hostname"
BIND_COMPLETED = "pv.kubernetes.io/bind-completed"
MERGE = {"Content-Type": "application/merge-patch+json"}


class SchedulerProcess:
    """`python -m scheduler` with the scheduler's own kubeconfig, stopped by pid."""

    def __init__(self, kubeconfig: Path, log_dir: Path, name: str, *args: str) -> None:
        self.port = free_port()
        self.log_path = log_dir / f"scheduler-{name}-{self.port}.log"
        self.cmd = [sys.executable, "-m", "scheduler", "--kubeconfig", str(kubeconfig), "--port", str(self.port),
                    "--scheduler-name", name, *args]
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.cmd, stdout=self._log, stderr=subprocess.STDOUT, env=component_env(),
                                     start_new_session=True)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def get(self, path: str) -> httpx.Response:
        return httpx.get(f"http://127.0.0.1:{self.port}{path}", timeout=5)

    def wait_ready(self, timeout: float = 30) -> None:
        def ready() -> bool:
            if self.proc.poll() is not None:
                raise RuntimeError(f"scheduler exited with {self.proc.returncode}: {self.log()}")
            return self.get("/readyz").status_code == 200
        wait_for(ready, timeout, 0.1, "scheduler /readyz")

    def metric(self, name: str) -> float:
        total = 0.0
        for line in self.get("/metrics").text.splitlines():
            if line.startswith(name) and not line.startswith("#"):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


class Env:
    """API helpers for one test: its namespace, its nodes, its scheduler name."""

    def __init__(self, cp: ControlPlane, api: httpx.Client, namespace: str, scheduler_name: str) -> None:
        self.cp = cp
        self.api = api
        self.ns = namespace
        self.scheduler_name = scheduler_name
        self.nodes: list[str] = []
        self.prefix = f"{namespace}-"

    # -- objects -----------------------------------------------------------------------

    def node(self, name: str, cpu: str = "2", memory: str = "4Gi", pods: int = 110, labels: dict | None = None,
             taints: list | None = None) -> str:
        full = self.prefix + name
        alloc = {"cpu": cpu, "memory": memory, "pods": str(pods)}
        body: dict[str, Any] = {
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": full, "labels": {"kubernetes.io/hostname": full, **(labels or {})}},
            "spec": {"taints": taints} if taints else {},
            "status": {"allocatable": alloc, "capacity": alloc,
                       "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}]},
        }
        r = self.api.post("/api/v1/nodes", json=body)
        assert r.status_code == 201, r.text
        self.nodes.append(full)
        return full

    def pod(self, name: str, cpu: str | None = "100m", labels: dict | None = None,
            scheduler_name: str | None = None, **spec: Any) -> dict:
        container: dict[str, Any] = {"name": "c", "image": "busybox"}
        if cpu:
            container["resources"] = {"requests": {"cpu": cpu}}
        body = {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": labels or {}},
            "spec": {"containers": [container], "schedulerName": scheduler_name or self.scheduler_name,
                     "automountServiceAccountToken": False, **spec},
        }
        r = self.api.post(f"/api/v1/namespaces/{self.ns}/pods", json=body)
        assert r.status_code == 201, r.text
        return r.json()

    @contextlib.contextmanager
    def priority_class(self, value: int) -> Iterator[str]:
        """A PriorityClass of `value` for the duration (cluster-scoped: named uniquely)."""
        name = f"{self.ns}-{value}-{os.urandom(2).hex()}"
        r = self.api.post("/apis/scheduling.k8s.io/v1/priorityclasses",
                          json={"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
                                "metadata": {"name": name}, "value": value})
        assert r.status_code == 201, r.text
        try:
            yield name
        finally:
            self.api.delete(f"/apis/scheduling.k8s.io/v1/priorityclasses/{name}")

    def get_pod(self, name: str) -> dict:
        r = self.api.get(f"/api/v1/namespaces/{self.ns}/pods/{name}")
        assert r.status_code == 200, r.text
        return r.json()

    def node_of(self, name: str) -> str | None:
        return self.get_pod(name)["spec"].get("nodeName")

    def wait_bound(self, *names: str, timeout: float = 20) -> dict[str, str]:
        def bound() -> dict[str, str] | None:
            out = {n: self.node_of(n) for n in names}
            return out if all(out.values()) else None
        return wait_for(bound, timeout, 0.1, f"pods {names} bound")

    def events(self, name: str | None = None, reason: str | None = None) -> list[dict]:
        items = self.api.get(f"/api/v1/namespaces/{self.ns}/events").json()["items"]
        return [e for e in items if (name is None or e["involvedObject"]["name"] == name)
                and (reason is None or e["reason"] == reason)]

    def wait_event(self, name: str, reason: str, timeout: float = 20) -> dict:
        return wait_for(lambda: (self.events(name, reason) or [None])[-1], timeout, 0.1, f"{reason} event for {name}")

    def cleanup(self) -> None:
        for n in self.nodes:
            with contextlib.suppress(Exception):
                self.api.delete(f"/api/v1/nodes/{n}")
        with contextlib.suppress(Exception):
            self.api.delete(f"/api/v1/namespaces/{self.ns}/pods", params={"gracePeriodSeconds": "0"})


@pytest.fixture(scope="module")
def kubeconfigs(control_plane: ControlPlane) -> Iterator[dict[str, Path]]:
    d = Path(tempfile.mkdtemp(prefix="sched-kc-"))
    yield write_cluster_kubeconfigs(control_plane.pki, d, control_plane.url)
    for f in d.iterdir():
        f.unlink()
    d.rmdir()


@pytest.fixture(scope="module")
def scheduler_name() -> str:
    return f"it-scheduler-{os.urandom(3).hex()}"


@pytest.fixture(scope="module")
def scheduler(control_plane: ControlPlane, kubeconfigs: dict[str, Path],
              scheduler_name: str) -> Iterator[SchedulerProcess]:
    """One scheduler for the module (no leader election), ready."""
    p = SchedulerProcess(kubeconfigs["scheduler"], control_plane.cfg.dir / "logs", scheduler_name,
                         "--leader-elect=false", "--pod-max-backoff-seconds", "2")
    try:
        p.wait_ready()
        yield p
    finally:
        p.stop()


@pytest.fixture
def env(control_plane: ControlPlane, api: httpx.Client, namespace: str, scheduler_name: str) -> Iterator[Env]:
    r = api.post(f"/api/v1/namespaces/{namespace}/serviceaccounts",
                 json={"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}})
    assert r.status_code in (201, 409), r.text  # the apiserver may create it with the namespace
    e = Env(control_plane, api, namespace, scheduler_name)
    try:
        yield e
    finally:
        e.cleanup()


def wait_until(predicate: Any, timeout: float = 20, what: str = "condition") -> Any:
    return wait_for(predicate, timeout, 0.1, what)


class Storage:
    """PVs, claims and classes for one test; the cluster-scoped ones are deleted afterwards."""

    def __init__(self, env: Env) -> None:
        self.env = env
        self.api = env.api
        self.cluster_objects: list[str] = []

    def _create(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        r = self.api.post(path, json=body)
        assert r.status_code == 201, r.text
        return r.json()

    def storage_class(self, name: str, mode: str, provisioner: str = "kubernetes.io/no-provisioner") -> str:
        full = f"{self.env.ns}-{name}"
        self._create("/apis/storage.k8s.io/v1/storageclasses", {
            "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": full},
            "provisioner": provisioner, "volumeBindingMode": mode})
        self.cluster_objects.append(f"/apis/storage.k8s.io/v1/storageclasses/{full}")
        return full

    def pv(self, name: str, cls: str, node: str | None, size: str = "1Gi", claim: dict | None = None,
           modes: tuple[str, ...] = ("ReadWriteOnce",), labels: dict | None = None) -> str:
        """A hostPath volume on `node` (None: no node affinity), pre-bound to `claim` if given."""
        full = f"{self.env.ns}-{name}"
        spec: dict[str, Any] = {
            "capacity": {"storage": size}, "accessModes": list(modes), "storageClassName": cls,
            "persistentVolumeReclaimPolicy": "Delete", "hostPath": {"path": f"/tmp/{full}"}}
        if node is not None:
            spec["nodeAffinity"] = {"required": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": HOSTNAME, "operator": "In", "values": [node]}]}]}}
        if claim is not None:
            m = claim["metadata"]
            spec["claimRef"] = {"kind": "PersistentVolumeClaim", "apiVersion": "v1", "namespace": m["namespace"],
                                "name": m["name"], "uid": m["uid"]}
        self._create("/api/v1/persistentvolumes", {"apiVersion": "v1", "kind": "PersistentVolume",
                                                   "metadata": {"name": full, "labels": labels or {}}, "spec": spec})
        self.cluster_objects.append(f"/api/v1/persistentvolumes/{full}")
        phase = "Bound" if claim is not None else "Available"
        r = self.api.patch(f"/api/v1/persistentvolumes/{full}/status", content=f'{{"status":{{"phase":"{phase}"}}}}',
                           headers=MERGE)
        assert r.status_code == 200, r.text
        return full

    def claim(self, name: str, cls: str, size: str = "1Gi",
              modes: tuple[str, ...] = ("ReadWriteOnce",)) -> dict[str, Any]:
        return self._create(f"/api/v1/namespaces/{self.env.ns}/persistentvolumeclaims", {
            "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name},
            "spec": {"accessModes": list(modes), "storageClassName": cls,
                     "resources": {"requests": {"storage": size}}}})

    def bound_claim(self, name: str, cls: str, node: str | None = None, modes: tuple[str, ...] = ("ReadWriteOnce",),
                    labels: dict | None = None) -> str:
        """A claim bound to a volume of its own (named after it), as the PV binder leaves them."""
        claim = self.claim(name, cls, modes=modes)
        volume = self.pv(name, cls, node, claim=claim, modes=modes, labels=labels)
        self.bind_claim(name, volume)
        return volume

    def get_claim(self, name: str) -> dict[str, Any]:
        r = self.api.get(f"/api/v1/namespaces/{self.env.ns}/persistentvolumeclaims/{name}")
        assert r.status_code == 200, r.text
        return r.json()

    def get_pv(self, name: str) -> dict[str, Any]:
        r = self.api.get(f"/api/v1/persistentvolumes/{name}")
        assert r.status_code == 200, r.text
        return r.json()

    def bind_claim(self, name: str, volume: str) -> None:
        """What the PV binder does last: the claim's volumeName, bind-completed, phase Bound."""
        path = f"/api/v1/namespaces/{self.env.ns}/persistentvolumeclaims/{name}"
        body = {"metadata": {"annotations": {BIND_COMPLETED: "yes"}}, "spec": {"volumeName": volume}}
        r = self.api.patch(path, content=json.dumps(body), headers=MERGE)
        assert r.status_code == 200, r.text
        r = self.api.patch(f"{path}/status", content='{"status":{"phase":"Bound"}}', headers=MERGE)
        assert r.status_code == 200, r.text

    def cleanup(self) -> None:
        """Delete what this test made outside its namespace, claims too; no protection controller
        runs here to lift the pv/pvc-protection finalizers, so drop them."""
        r = self.api.get(f"/api/v1/namespaces/{self.env.ns}/persistentvolumeclaims")
        claims = [f"/api/v1/namespaces/{self.env.ns}/persistentvolumeclaims/{c['metadata']['name']}"
                  for c in (r.json().get("items") or [] if r.status_code == 200 else [])]
        for path in [*claims, *reversed(self.cluster_objects)]:
            with contextlib.suppress(Exception):
                self.api.delete(path)
                self.api.patch(path, content='{"metadata":{"finalizers":null}}', headers=MERGE)


@pytest.fixture
def storage(env: Env) -> Iterator[Storage]:
    s = Storage(env)
    try:
        yield s
    finally:
        s.cleanup()


def pod_with_claim(env: Env, name: str, claim: str, **spec: Any) -> dict:
    return env.pod(name, volumes=[{"name": "data", "persistentVolumeClaim": {"claimName": claim}}], **spec)


def condition(env: Env, pod: str) -> dict | None:
    return next((c for c in env.get_pod(pod)["status"].get("conditions") or () if c["type"] == "PodScheduled"), None)
