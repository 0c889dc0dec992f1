"""Kubelet e2e fixtures: a real control plane, the private containerd of tests/e2e/conftest.py, and
the kubelet as a real process (its own node identity) — everything removed afterwards.

The kubelet writes its own CNI config for the containerd fixture's bridge and subnet (as the
node's podCIDR), uses the fixture's cgroup root and CNI network name (so the fixture's teardown
removes those), and installs its iptables chains, which are removed here.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from certs import write_cluster_kubeconfigs
from kubelet import naming, network
from kubelet.cri import CRIClient, CRIError, pb
from kubelet.cri.containerd import unmount_under
from minictl.components import component_env, free_port
from tests.conftest import ControlPlane, private_control_plane, wait_for

NODE = "testnode"
BUSYBOX = "localhost/minik8s/busybox:latest"


class KubeletProcess:
    """The kubelet under test, started like `minictl cluster up` would (kubelet_command flags)."""

    def __init__(self, cp: ControlPlane, containerd: Any, root: Path, extra_args: list[str] | None = None) -> None:
        self.cp = cp
        self.containerd = containerd
        self.root = root
        self.port = free_port()
        self.healthz_port = free_port()
        kubeconfigs = write_cluster_kubeconfigs(cp.pki, root / "kubeconfigs", cp.url)
        self.kubeconfig = kubeconfigs[f"kubelet-{NODE}"]
        self.manifests = root / "manifests"
        self.manifests.mkdir(parents=True, exist_ok=True)
        self.extra_args = extra_args or []
        self.proc: subprocess.Popen | None = None
        self.log_path = root / "kubelet.log"

    def command(self) -> list[str]:
        cert, key = self.cp.pki.kubelet_serving(NODE)
        node = self.containerd
        return [
            str(Path(__file__).resolve().parents[3] / ".venv" / "bin" / "python"), "-m", "kubelet",
            "--kubeconfig", str(self.kubeconfig),
            "--hostname-override", NODE,
            "--node-ip", "127.0.0.1",
            "--root-dir", str(self.root / "kubelet"),
            "--container-runtime-endpoint", node.endpoint,
            "--address", "127.0.0.1",
            "--port", str(self.port),
            "--healthz-port", str(self.healthz_port),
            "--tls-cert-file", str(cert),
            "--tls-private-key-file", str(key),
            "--client-ca-file", str(self.cp.pki.ca_cert),
            "--cni-conf-dir", str(node.paths.cni_conf_dir),
            "--cni-bridge", node.bridge,
            "--cni-network-name", node.cgroup_root,
            "--pod-cidr", str(node.subnet),
            "--cluster-cidr", "10.244.0.0/16",
            "--cluster-dns", "10.96.0.10",
            "--cgroup-root", f"/{node.cgroup_root}/kubelet",
            "--pod-manifest-path", str(self.manifests),
            "--file-check-frequency", "1s",
            "--sync-frequency", "10s",
            "--node-status-update-frequency", "2s",
            # the test machine's disk may be fuller than the defaults allow
            "--eviction-hard", "memory.available<50Mi",
            "--log-level", "debug",
            *self.extra_args,
        ]

    def start(self) -> None:
        log = open(self.log_path, "ab")
        env = component_env()
        env["PATH"] = env.get("PATH", "") + ":/usr/local/sbin:/usr/sbin:/sbin"
        self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT, env=env,
                                     start_new_session=True)
        self.proc._log = log  # type: ignore[attr-defined]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> None:
        p = self.proc
        if p is None:
            return
        if p.poll() is None:
            p.send_signal(sig)
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        p._log.close()  # type: ignore[attr-defined]
        self.proc = None

    def restart(self, api: httpx.Client, extra_args: list[str] | None = None) -> None:
        """Stop the kubelet, start it with `extra_args` (none: as the session started it), wait until
        its node is Ready again."""
        self.stop()
        self.extra_args = list(extra_args or [])
        self.start()
        self.wait_ready(api)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def wait_ready(self, api: httpx.Client, timeout: float = 60) -> dict[str, Any]:
        def ready() -> dict[str, Any] | None:
            if not self.alive():
                raise RuntimeError(f"kubelet exited:\n{self.log_tail()}")
            r = api.get(f"/api/v1/nodes/{NODE}")
            if r.status_code != 200:
                return None
            node = r.json()
            conds = {c["type"]: c["status"] for c in node.get("status", {}).get("conditions", [])}
            return node if conds.get("Ready") == "True" else None

        return wait_for(ready, timeout, 0.2, "node Ready")


@pytest.fixture(scope="session")
def kcluster() -> Iterator[ControlPlane]:
    """A control plane of the kubelet tests' own (its apiserver reaches kubelets with its
    kubelet-client certificate, as every apiserver minictl starts does)."""
    with private_control_plane("mk8s-kubelet-e2e-") as cp:
        yield cp


@pytest.fixture(scope="session")
def kubelet(kcluster: ControlPlane, containerd_node: Any) -> Iterator[KubeletProcess]:
    root = Path(tempfile.mkdtemp(prefix="mk8s-kubelet-root-"))
    k = KubeletProcess(kcluster, containerd_node, root)
    try:
        k.start()
        with kcluster.client() as api:
            k.wait_ready(api)
        yield k
    finally:
        pods_dir = root / "kubelet" / "pods"
        if k.alive():
            # every test's pods are deleted by then: the kubelet must have cleaned up after them
            with contextlib.suppress(AssertionError):
                wait_for(lambda: not any(pods_dir.iterdir()) if pods_dir.exists() else True, 30, 0.2,
                         "the kubelet to clean up its pods")
        k.stop()
        if os.environ.get("MINIK8S_SHOW_KUBELET_LOG"):
            print(k.log_tail(200))
        # whatever the kubelet left in the runtime goes now, while its CNI data dir still exists
        asyncio.run(_remove_kubelet_pods(containerd_node.endpoint))
        try:
            left = unmount_under(root)
        except OSError as e:
            left = [str(e)]
        asyncio.run(network.cleanup_filter_rules(containerd_node.bridge))
        if os.environ.get("MINIK8S_KEEP_TEST_DATA"):
            print(f"kubelet data kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
        if left:
            print(f"mounts the kubelet left behind (unmounted now): {left}")


async def _remove_kubelet_pods(endpoint: str) -> None:
    managed = {naming.KUBELET_MANAGED: "true"}
    async with CRIClient(endpoint, timeout=30) as cri:
        for c in await cri.list_containers(pb.ContainerFilter(label_selector=managed)):
            with contextlib.suppress(CRIError):
                await cri.stop_container(c.id, 0)
            with contextlib.suppress(CRIError):
                await cri.remove_container(c.id)
        for sandbox in await cri.list_pod_sandbox(pb.PodSandboxFilter(label_selector=managed)):
            with contextlib.suppress(CRIError):
                await cri.stop_pod_sandbox(sandbox.id)
                await cri.remove_pod_sandbox(sandbox.id)


@pytest.fixture
def api(kcluster: ControlPlane) -> Iterator[httpx.Client]:
    with kcluster.client(timeout=30) as c:
        yield c


def prepare_namespace(api: httpx.Client, name: str, ca_cert: Path) -> None:
    """What the controller-manager would add to a new namespace (it does not run here): the
    default ServiceAccount and the kube-root-ca.crt ConfigMap pods' token volumes project."""
    r = api.post("/api/v1/namespaces", json={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    assert r.status_code in (201, 409), r.text
    r = api.post(f"/api/v1/namespaces/{name}/serviceaccounts",
                 json={"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}})
    assert r.status_code in (201, 409), r.text
    r = api.post(f"/api/v1/namespaces/{name}/configmaps", json={
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "kube-root-ca.crt"},
        "data": {"ca.crt": ca_cert.read_text()}})
    assert r.status_code in (201, 409), r.text


@pytest.fixture
def ns(api: httpx.Client, kubelet: KubeletProcess, kcluster: ControlPlane) -> Iterator[str]:
    """A fresh namespace, prepared as the controller-manager would."""
    name = f"kt-{os.urandom(3).hex()}"
    prepare_namespace(api, name, kcluster.pki.ca_cert)
    yield name
    # pods go first (graceful: the kubelet stops them and deletes them), then the namespace object
    with contextlib.suppress(Exception):
        api.delete(f"/api/v1/namespaces/{name}/pods")
        wait_for(lambda: not api.get(f"/api/v1/namespaces/{name}/pods").json()["items"], 60, 0.2, "pods gone")
    with contextlib.suppress(Exception):
        api.delete(f"/api/v1/namespaces/{name}")


@pytest.fixture
def host_dir() -> Iterator[Path]:
    """A host directory for the pods' hostPath volumes (it outlives the pods); removed afterwards."""
    d = Path(tempfile.mkdtemp(prefix="mk8s-host-"))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def pod_manifest(name: str, containers: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    for c in containers:
        c.setdefault("image", BUSYBOX)
        c.setdefault("imagePullPolicy", "IfNotPresent")
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"nodeName": NODE, "containers": containers, "terminationGracePeriodSeconds": 2, **spec},
    }


def create_pod(api: httpx.Client, ns: str, pod: dict[str, Any]) -> dict[str, Any]:
    r = api.post(f"/api/v1/namespaces/{ns}/pods", json=pod)
    assert r.status_code == 201, r.text
    return r.json()


def get_pod(api: httpx.Client, ns: str, name: str) -> dict[str, Any] | None:
    r = api.get(f"/api/v1/namespaces/{ns}/pods/{name}")
    if r.status_code == 404:
        return None
    assert r.status_code == 200, r.text
    return r.json()


def wait_pod(api: httpx.Client, ns: str, name: str, predicate: Callable[[dict[str, Any]], Any],
             timeout: float = 60, what: str = "") -> dict[str, Any]:
    last: dict[str, Any] = {}

    def check() -> Any:
        pod = get_pod(api, ns, name)
        if pod is None:
            return None
        last["pod"] = pod
        return pod if predicate(pod) else None

    try:
        return wait_for(check, timeout, 0.1, what or f"pod {ns}/{name}")
    except AssertionError as e:
        status = (last.get("pod") or {}).get("status")
        events = [f"{ev.get('reason')}: {ev.get('message')}" for ev in events_for(api, ns, name)]
        raise AssertionError(f"{e}; last status: {status}; events: {events}") from None


def running(pod: dict[str, Any]) -> bool:
    return (pod.get("status") or {}).get("phase") == "Running"


def container_status(pod: dict[str, Any], name: str, init: bool = False) -> dict[str, Any]:
    key = "initContainerStatuses" if init else "containerStatuses"
    for s in (pod.get("status") or {}).get(key) or []:
        if s["name"] == name:
            return s
    return {}


def condition(pod: dict[str, Any], ctype: str) -> str:
    for c in (pod.get("status") or {}).get("conditions") or []:
        if c.get("type") == ctype:
            return c.get("status", "")
    return ""


def events_for(api: httpx.Client, ns: str, name: str) -> list[dict[str, Any]]:
    r = api.get(f"/api/v1/namespaces/{ns}/events")
    return [e for e in r.json()["items"] if e["involvedObject"].get("name") == name]


def wait_seconds(deadline: float) -> float:
    return max(0.0, deadline - time.monotonic())


def read_until(source: Any, marker: bytes, timeout: float = 15) -> bytes:
    """What a pipe or terminal (a file descriptor, or anything with fileno()) gives until
    `marker` shows; AssertionError when the deadline passes or the stream ends first."""
    fd = source if isinstance(source, int) else source.fileno()
    seen = b""
    deadline = time.monotonic() + timeout
    while marker not in seen:
        left = deadline - time.monotonic()
        ready, _, _ = select.select([fd], [], [], max(left, 0))
        if not ready:
            raise AssertionError(f"no {marker!r} within {timeout}s; got {seen!r}")
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # a terminal whose other side is gone (EIO)
            chunk = b""
        if not chunk:
            raise AssertionError(f"the stream ended before {marker!r}; got {seen!r}")
        seen += chunk
    return seen
