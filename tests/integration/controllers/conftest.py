"""Workload controllers against a real etcd + apiserver, with a real controller-manager process.

The controller-manager runs as its own identity (controller-manager.kubeconfig) with
per-controller ServiceAccounts (--use-service-account-credentials, as kubeadm runs it), so a
permission missing from the bootstrap policy fails here. There is no kubelet: tests that need
ready pods fake the pod status through pods/status with the admin client (`FakeKubelet`).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from certs import write_cluster_kubeconfigs
from minictl.components import component_env, free_port
from tests.conftest import ControlPlane, private_control_plane, wait_for

LEASE = ("--leader-elect-lease-duration", "3s", "--leader-elect-renew-deadline", "2s",
         "--leader-elect-retry-period", "0.5s")


class ControllerManager:
    """One `python -m controller_manager` process, stopped by pid."""

    def __init__(self, cp: ControlPlane, name: str = "controller-manager", extra: list[str] | None = None,
                 leader_elect: bool = False, controllers: str = "*") -> None:
        self.cp = cp
        self.name = name
        kubeconfigs = write_cluster_kubeconfigs(cp.pki, cp.cfg.dir / "kubeconfigs", cp.url)
        self.port = free_port()
        self.cmd = [
            sys.executable, "-m", "controller_manager",
            "--kubeconfig", str(kubeconfigs["controller-manager"]),
            "--use-service-account-credentials",
            f"--leader-elect={'true' if leader_elect else 'false'}", *LEASE,
            "--secure-port", str(self.port),
            "--controllers", controllers,
            "--root-ca-file", str(cp.pki.ca_cert),
            "--kube-api-qps", "200", "--kube-api-burst", "400",
            "--log-level", "info",
            *(extra or []),
        ]
        self.log_path = cp.cfg.log(name)
        self.proc: subprocess.Popen | None = None

    def start(self, wait_ready: bool = True) -> ControllerManager:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.cmd, stdout=log, stderr=subprocess.STDOUT, env=component_env(),
                                         start_new_session=True)
        if wait_ready:
            def ready() -> bool:
                if self.proc is not None and self.proc.poll() is not None:
                    raise RuntimeError(f"{self.name} exited with {self.proc.returncode}; log: {self.log_path}")
                return httpx.get(f"http://127.0.0.1:{self.port}/readyz", timeout=2).status_code == 200

            wait_for(ready, 30, 0.2, f"{self.name} /readyz")
        return self

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def stop(self, sig: int = signal.SIGTERM) -> None:
        p, self.proc = self.proc, None
        if p is None or p.poll() is not None:
            return
        p.send_signal(sig)
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def assert_no_rbac_denials(self) -> None:
        denials = [line for line in self.log_text().splitlines() if "is forbidden: User" in line]
        assert not denials, "RBAC denials in the controller-manager log:\n" + "\n".join(denials[:10])


class FakeKubelet:
    """Marks the pods of a namespace Running and Ready (pods/status, admin client), in a thread."""

    def __init__(self, cp: ControlPlane, namespace: str, predicate: Callable[[dict], bool] | None = None) -> None:
        self.cp = cp
        self.namespace = namespace
        self.predicate = predicate or (lambda p: True)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> FakeKubelet:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        with self.cp.client() as c:
            while not self._stop.is_set():
                try:
                    make_ready(c, self.namespace, self.predicate)
                except httpx.HTTPError:
                    pass
                self._stop.wait(0.2)


def ready_status(pod: dict, now: str | None = None) -> dict:
    ts = now or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    containers = (pod.get("spec") or {}).get("containers") or []
    return {
        "phase": "Running",
        "conditions": [{"type": t, "status": "True", "lastTransitionTime": ts}
                       for t in ("PodScheduled", "Initialized", "ContainersReady", "Ready")],
        "containerStatuses": [{"name": c["name"], "image": c.get("image", ""), "imageID": "", "ready": True,
                               "started": True, "restartCount": 0, "state": {"running": {"startedAt": ts}}}
                              for c in containers],
        "startTime": ts,
    }


def make_ready(c: httpx.Client, namespace: str, predicate: Callable[[dict], bool] = lambda p: True) -> int:
    """Every Pending, not-deleted pod of the namespace becomes Running and Ready."""
    n = 0
    for pod in c.get(f"/api/v1/namespaces/{namespace}/pods").json().get("items", []):
        if pod["metadata"].get("deletionTimestamp") or pod["status"].get("phase") != "Pending" or not predicate(pod):
            continue
        body = {**pod, "status": ready_status(pod)}
        r = c.put(f"/api/v1/namespaces/{namespace}/pods/{pod['metadata']['name']}/status", json=body)
        if r.status_code == 200:
            n += 1
    return n


def set_phase(c: httpx.Client, namespace: str, name: str, phase: str, exit_code: int | None = None) -> None:
    """Finish a pod (Succeeded / Failed), as a kubelet would report it."""
    pod = c.get(f"/api/v1/namespaces/{namespace}/pods/{name}").json()
    ts = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    code = exit_code if exit_code is not None else (0 if phase == "Succeeded" else 1)
    status = {
        "phase": phase,
        "conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": ts, "reason": "PodCompleted"}],
        "containerStatuses": [{"name": ctr["name"], "image": ctr.get("image", ""), "imageID": "", "ready": False,
                               "restartCount": 0,
                               "state": {"terminated": {"exitCode": code, "reason": "Completed" if code == 0 else "Error",
                                                        "startedAt": ts, "finishedAt": ts}}}
                              for ctr in pod["spec"]["containers"]],
    }
    r = c.put(f"/api/v1/namespaces/{namespace}/pods/{name}/status", json={**pod, "status": status})
    r.raise_for_status()


@pytest.fixture(scope="package")
def plane() -> Iterator[ControlPlane]:
    """A control plane of its own: the controllers here must not act on other tests' objects."""
    with private_control_plane("mk8s-cm-workloads-", controller_manager=False) as cp:
        yield cp


@pytest.fixture(scope="package")
def controller_manager(plane: ControlPlane) -> Iterator[ControllerManager]:
    cm = ControllerManager(plane).start()
    try:
        yield cm
    finally:
        cm.stop()


@pytest.fixture
def admin(plane: ControlPlane) -> Iterator[httpx.Client]:
    with plane.client() as c:
        yield c


@pytest.fixture
def ns(admin: httpx.Client) -> Iterator[str]:
    name = f"t-{os.urandom(4).hex()}"
    admin.post("/api/v1/namespaces", json={"metadata": {"name": name}}).raise_for_status()
    yield name
    admin.delete(f"/api/v1/namespaces/{name}")


def get(c: httpx.Client, path: str) -> Any:
    r = c.get(path)
    r.raise_for_status()
    return r.json()


class Watcher:
    """Follows one collection with a watch (admin client) and calls `check(objects)` on every event."""

    def __init__(self, cp: ControlPlane, path: str, check: Callable[[dict[str, dict]], None]) -> None:
        self.cp = cp
        self.path = path
        self.check = check
        self.objects: dict[str, dict] = {}
        self.events = 0
        self.errors: list[str] = []
        #: (event type, name, resourceVersion, spec.replicas, status) of every event, for failure reports
        self.history: list[tuple] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._started = threading.Event()

    def __enter__(self) -> Watcher:
        self._thread.start()
        self._started.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        with self.cp.client(timeout=httpx.Timeout(10, read=2)) as c:
            listed = c.get(self.path).json()
            for item in listed.get("items", []):
                self.objects[item["metadata"]["name"]] = item
            rv = listed["metadata"]["resourceVersion"]
            self._started.set()
            while not self._stop.is_set():
                try:
                    with c.stream("GET", self.path, params={"watch": "1", "resourceVersion": rv}) as r:
                        for line in r.iter_lines():
                            if not line:
                                continue
                            ev = httpx.Response(200, content=line).json()
                            obj = ev["object"]
                            rv = obj["metadata"].get("resourceVersion", rv)
                            if ev["type"] == "DELETED":
                                self.objects.pop(obj["metadata"]["name"], None)
                            elif ev["type"] in ("ADDED", "MODIFIED"):
                                self.objects[obj["metadata"]["name"]] = obj
                            else:
                                continue
                            self.events += 1
                            self.history.append((ev["type"], obj["metadata"]["name"], rv,
                                                 (obj.get("spec") or {}).get("replicas"), obj.get("status")))
                            try:
                                self.check(self.objects)
                            except AssertionError as e:
                                self.errors.append(f"after {ev['type']} {obj['metadata']['name']} at {rv}: {e}")
                            if self._stop.is_set():
                                return
                except httpx.ReadTimeout:
                    continue
                except httpx.HTTPError as e:
                    if not self._stop.is_set():
                        self.errors.append(f"watch failed: {e!r}")
                    return
