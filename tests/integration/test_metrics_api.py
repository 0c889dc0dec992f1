"""metrics.k8s.io against a real apiserver scraping a stand-in kubelet: `kubectl top` and the API.

The stand-in serves /stats/summary over TLS with the node's kubelet serving certificate, with
cumulative CPU that grows at fixed rates, counted on the kubelet's whole-second clock — so every
rate the apiserver computes is exact whatever its window: node 500m, container `app` 250m,
`side` 1m. A second Ready node's kubelet accepts connections and never answers: its scrape times
out, and no request waits on it. (tests/e2e/kubelet/test_kubelet_metrics.py does the same with the real kubelet.)
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web

from apimachinery import protobuf as pbuf
from minictl.components import free_port
from tests.conftest import ControlPlane, private_control_plane, wait_for

NODE = "testnode"
GHOST = "ghost"
NS = f"m-{os.urandom(3).hex()}"
GI, MI, KI = 1024**3, 1024**2, 1024
RESOLUTION = 2
#: cores each stand-in counter grows by, and its working set
NODE_RATE, NODE_MEMORY = 0.5, 1 * GI
CONTAINERS = {"app": (0.25, 64 * MI), "side": (0.001, 12345 * KI)}


class FakeKubelet:
    """/stats/summary of node NODE with pod NS/web (two containers), on a thread of its own."""

    def __init__(self, cert: Path, key: Path) -> None:
        self.port = free_port()
        self.base = int(time.time()) - 3600
        self.requests = 0
        self.ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ctx.load_cert_chain(cert, key)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def _stats(self, now: int, rate: float, memory: int, name: str = "") -> dict[str, Any]:
        at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
        out = {"startTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.base)),
               "cpu": {"time": at, "usageNanoCores": 0, "usageCoreNanoSeconds": int(rate * 1e9) * (now - self.base)},
               "memory": {"time": at, "workingSetBytes": memory}}
        return {"name": name, **out} if name else out

    async def summary(self, request: web.Request) -> web.Response:
        self.requests += 1
        now = int(time.time())  # the kubelet's clock has whole seconds, and so do its counters here
        containers = [self._stats(now, rate, mem, name) for name, (rate, mem) in CONTAINERS.items()]
        return web.json_response({
            "node": {"nodeName": NODE, **self._stats(now, NODE_RATE, NODE_MEMORY)},
            "pods": [{"podRef": {"namespace": NS, "name": "web", "uid": "u1"}, "containers": containers},
                     # not in the API: never shown
                     {"podRef": {"namespace": NS, "name": "gone", "uid": "u2"}, "containers": containers}],
        })

    def start(self) -> None:
        app = web.Application()
        app.router.add_get("/stats/summary", self.summary)
        self.runner = web.AppRunner(app)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)

    async def _start(self) -> None:
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port, ssl_context=self.ctx).start()

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def _register_node(api: httpx.Client, name: str, address: str, port: int) -> None:
    r = api.post("/api/v1/nodes", json={"apiVersion": "v1", "kind": "Node",
                                        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}}})
    assert r.status_code == 201, r.text
    status = {"status": {
        "capacity": {"cpu": "2", "memory": "4Gi", "pods": "110"},
        "allocatable": {"cpu": "2", "memory": "4Gi", "pods": "110"},
        "addresses": [{"type": "InternalIP", "address": address}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "ready",
                        "lastHeartbeatTime": "2026-01-01T00:00:00Z", "lastTransitionTime": "2026-01-01T00:00:00Z"}],
    }}
    r = api.patch(f"/api/v1/nodes/{name}/status", json=status,
                  headers={"Content-Type": "application/merge-patch+json"})
    assert r.status_code == 200, r.text


@pytest.fixture(scope="module")
def cluster() -> Iterator[tuple[ControlPlane, FakeKubelet]]:
    with private_control_plane("mk8s-metrics-", controller_manager=False) as cp, \
            socket.create_server(("127.0.0.1", 0), backlog=64) as silent:  # connects, never answers
        # restarted with a short resolution (the fixture starts it with the defaults)
        cp.stop("apiserver")
        cp.cfg.extra_apiserver_args = ["--metric-resolution", f"{RESOLUTION}s"]
        cp.start_apiserver()
        cp.wait_ready()
        cp.start_controller_manager()
        kubelet = FakeKubelet(*cp.pki.kubelet_serving(NODE))
        kubelet.start()
        try:
            with cp.client() as api:
                _register_node(api, NODE, "127.0.0.1", kubelet.port)
                _register_node(api, GHOST, "127.0.0.1", silent.getsockname()[1])
                r = api.post("/api/v1/namespaces", json={"apiVersion": "v1", "kind": "Namespace",
                                                         "metadata": {"name": NS}})
                assert r.status_code == 201, r.text
                cp.wait_namespace_ready(NS)
                for name, labels in (("web", {"app": "web"}), ("idle", {"app": "idle"})):
                    r = api.post(f"/api/v1/namespaces/{NS}/pods", json={
                        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels},
                        "spec": {"nodeName": NODE, "containers": [{"name": c, "image": "busybox"} for c in CONTAINERS]}})
                    assert r.status_code == 201, r.text
            yield cp, kubelet
        finally:
            kubelet.stop()


@pytest.fixture(scope="module")
def cp(cluster: tuple[ControlPlane, FakeKubelet]) -> ControlPlane:
    return cluster[0]


@pytest.fixture(scope="module")
def api(cp: ControlPlane) -> Iterator[httpx.Client]:
    with cp.client(timeout=30) as c:
        # the first request starts the scraper; the pod shows once two scrapes are in
        wait_for(lambda: c.get(f"/apis/metrics.k8s.io/v1beta1/namespaces/{NS}/pods/web").status_code == 200,
                 20, 0.2, "metrics of pod web")
        yield c


def _rows(out: str) -> list[list[str]]:
    return [line.split() for line in out.strip().splitlines()]


def test_kubectl_top_node(cp: ControlPlane, api: httpx.Client) -> None:
    rows = _rows(cp.kubectl("top", "node").stdout)
    assert rows[0] == ["NAME", "CPU(cores)", "CPU(%)", "MEMORY(bytes)", "MEMORY(%)"]
    # the ghost's kubelet never answers: it has no metrics, and kubectl shows the node as unknown
    assert rows[1:] == [[NODE, "500m", "25%", "1024Mi", "25%"], [GHOST, *["<unknown>"] * 4]]
    assert _rows(cp.kubectl("top", "node", NODE, "--no-headers").stdout) == [[NODE, "500m", "25%", "1024Mi", "25%"]]
    r = cp.kubectl("top", "node", "-l", "kubernetes.io/hostname=nobody", check=False)
    assert r.returncode == 1 and "metrics not available yet" in r.stderr


def test_kubectl_top_pod(cp: ControlPlane, api: httpx.Client) -> None:
    rows = _rows(cp.kubectl("top", "pod", "-n", NS).stdout)
    assert rows == [["NAME", "CPU(cores)", "MEMORY(bytes)"], ["web", "251m", "76Mi"]]
    rows = _rows(cp.kubectl("top", "pod", "-n", NS, "--containers").stdout)
    assert rows == [["POD", "NAME", "CPU(cores)", "MEMORY(bytes)"], ["web", "app", "250m", "64Mi"],
                    ["web", "side", "1m", "12Mi"]]
    assert _rows(cp.kubectl("top", "pod", "-A", "-l", "app=web").stdout)[1] == [NS, "web", "251m", "76Mi"]
    assert _rows(cp.kubectl("top", "pod", "web", "-n", NS, "--no-headers").stdout) == [["web", "251m", "76Mi"]]
    r = cp.kubectl("top", "pod", "-n", NS, "-l", "app=idle", check=False)
    assert r.returncode != 0 and "metrics not available yet" in r.stderr


def test_minictl_top_prints_what_kubectl_prints(cp: ControlPlane, api: httpx.Client) -> None:
    import subprocess
    import sys

    def minictl(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "minictl", "--kubeconfig", str(cp.kubeconfig), *args],
                              capture_output=True, text=True, timeout=60)

    for args in (["top", "node"], ["top", "node", NODE, "--no-headers"], ["top", "nodes", "-l", "x=none"],
                 ["top", "pod", "-n", NS], ["top", "pods", "-n", NS, "--containers"],
                 ["top", "pod", "-A", "-l", "app=web"], ["top", "pod", "-A", "--containers", "-l", "app=web"],
                 ["top", "pod", "web", "-n", NS], ["top", "pod", "-n", NS, "-l", "app=idle"],
                 ["top", "pod", "-n", "default"], ["top", "pod", "nope", "-n", NS]):
        mine, theirs = minictl(*args), cp.kubectl(*args, check=False)
        assert (mine.returncode, _rows(mine.stdout), mine.stderr.strip()) == \
            (theirs.returncode, _rows(theirs.stdout), theirs.stderr.strip()), args


def test_objects_have_upstreams_shape(api: httpx.Client) -> None:
    r = api.get(f"/apis/metrics.k8s.io/v1beta1/namespaces/{NS}/pods/web")
    pod = r.json()
    assert list(pod) == ["kind", "apiVersion", "metadata", "timestamp", "window", "containers"]
    assert (pod["kind"], pod["apiVersion"]) == ("PodMetrics", "metrics.k8s.io/v1beta1")
    assert set(pod["metadata"]) == {"name", "namespace", "labels", "creationTimestamp"}
    assert pod["metadata"]["labels"] == {"app": "web"}
    assert pod["containers"] == [{"name": "app", "usage": {"cpu": "250m", "memory": "64Mi"}},
                                 {"name": "side", "usage": {"cpu": "1m", "memory": "12345Ki"}}]
    assert pod["window"].endswith("s") and pod["timestamp"].endswith("Z")
    nodes = api.get("/apis/metrics.k8s.io/v1beta1/nodes").json()
    assert (nodes["kind"], nodes["metadata"]) == ("NodeMetricsList", {})
    [node] = nodes["items"]
    assert node["metadata"]["name"] == NODE and node["metadata"]["labels"] == {"kubernetes.io/hostname": NODE}
    assert node["usage"] == {"cpu": "500m", "memory": "1Gi"}
    assert "kind" not in node  # list items carry no type, as upstream's
    # all namespaces, selectors
    listed = api.get("/apis/metrics.k8s.io/v1beta1/pods").json()["items"]
    assert [(p["metadata"]["namespace"], p["metadata"]["name"]) for p in listed] == [(NS, "web")]
    assert api.get(f"/apis/metrics.k8s.io/v1beta1/namespaces/{NS}/pods",
                   params={"labelSelector": "app!=web"}).json()["items"] == []
    assert len(api.get("/apis/metrics.k8s.io/v1beta1/pods", params={
        "fieldSelector": f"metadata.namespace={NS},metadata.name=web"}).json()["items"]) == 1
    assert api.get("/apis/metrics.k8s.io/v1beta1/nodes", params={"fieldSelector": "metadata.name=x"}).json()["items"] == []


def test_protobuf_and_tables(cp: ControlPlane, api: httpx.Client) -> None:
    r = api.get(f"/apis/metrics.k8s.io/v1beta1/namespaces/{NS}/pods",
                headers={"Accept": "application/vnd.kubernetes.protobuf, application/json"})
    assert r.headers["content-type"] == pbuf.CONTENT_TYPE
    got = pbuf.decode(r.content)
    assert got["kind"] == "PodMetricsList" and got["items"][0]["containers"][0]["usage"]["cpu"] == "250m"
    table = api.get("/apis/metrics.k8s.io/v1beta1/nodes",
                    headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"}).json()
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "cpu", "memory", "Window"]
    assert table["rows"][0]["cells"][:3] == [NODE, "500m", "1Gi"]
    rows = _rows(cp.kubectl("get", "podmetrics", "-n", NS).stdout)
    assert rows[0] == ["NAME", "CPU", "MEMORY", "WINDOW"] and rows[1][:3] == ["web", "251m", "77881Ki"]


def test_errors(api: httpx.Client) -> None:
    base = f"/apis/metrics.k8s.io/v1beta1/namespaces/{NS}/pods"
    r = api.get(f"{base}/nope")  # no such pod: the pod lister's answer, as metrics-server's
    assert r.status_code == 404 and r.json()["message"] == 'pods "nope" not found'
    r = api.get(f"{base}/idle")  # a pod without metrics
    assert r.status_code == 404 and r.json()["reason"] == "NotFound"
    assert r.json()["message"] == f'podmetrics.metrics.k8s.io "{NS}/idle" not found'
    assert r.json()["details"] == {"name": f"{NS}/idle", "group": "metrics.k8s.io", "kind": "podmetrics"}
    r = api.get(f"/apis/metrics.k8s.io/v1beta1/nodes/{GHOST}")
    assert r.status_code == 404 and r.json()["message"] == f'nodemetrics.metrics.k8s.io "{GHOST}" not found'
    assert api.get("/apis/metrics.k8s.io/v1beta1/nodes/nope").json()["message"] == 'node "nope" not found'
    assert api.get(base, params={"watch": "true"}).status_code == 405
    assert api.post(base, json={"apiVersion": "metrics.k8s.io/v1beta1", "kind": "PodMetrics"}).status_code == 405
    assert api.delete(f"{base}/web").status_code == 405
    r = api.get(base, params={"fieldSelector": "spec.nodeName=x"})
    assert r.status_code == 400
    assert r.json()["message"] == '"spec.nodeName" is not a known field selector: only "metadata.name", "metadata.namespace"'


def test_a_dead_kubelet_never_hangs_a_request(api: httpx.Client) -> None:
    started = time.monotonic()
    for _ in range(3):
        assert api.get("/apis/metrics.k8s.io/v1beta1/nodes").status_code == 200
    assert time.monotonic() - started < 2  # answered from the store, never from the kubelets


def test_rbac_view_reads_pod_metrics(cp: ControlPlane, api: httpx.Client) -> None:
    r = api.post(f"/apis/rbac.authorization.k8s.io/v1/namespaces/{NS}/rolebindings", json={
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "viewer"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "viewer"}]})
    assert r.status_code == 201, r.text
    role = api.get("/apis/rbac.authorization.k8s.io/v1/clusterroles/system:aggregated-metrics-reader").json()
    assert role["rules"] == [{"apiGroups": ["metrics.k8s.io"], "resources": ["nodes", "pods"],
                              "verbs": ["get", "list", "watch"]}]

    def can(*args: str) -> str:
        return cp.kubectl("auth", "can-i", *args, "--as", "viewer", check=False).stdout.strip()

    wait_for(lambda: can("list", "pods.metrics.k8s.io", "-n", NS) == "yes", 10, 0.2, "view to aggregate metrics")
    assert can("list", "nodes.metrics.k8s.io") == "no"
    rows = _rows(cp.kubectl("top", "pod", "-n", NS, "--as", "viewer").stdout)
    assert rows[1] == ["web", "251m", "76Mi"]
