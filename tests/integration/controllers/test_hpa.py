"""The horizontal pod autoscaler end to end: a real apiserver (serving metrics.k8s.io from the
kubelets' /stats/summary), a controller-manager process running the deployment, replicaset and HPA
controllers as their own ServiceAccounts, and a stand-in kubelet whose pods' CPU use the test sets.

The stand-in (test_metrics_api's server, with a summary of its own) serves /stats/summary over
TLS with the node's serving certificate, for every Running pod of the test's namespace, with
cumulative CPU counters that grow at the rate the test asks (counted on whole seconds, as the
kubelet's clock): the apiserver's PodMetrics then report exactly that rate. Pods are made Running
and Ready through pods/status (conftest's FakeKubelet).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web

from tests.conftest import ControlPlane, private_control_plane, wait_for
from tests.integration.controllers.conftest import ControllerManager, FakeKubelet
from tests.integration.test_metrics_api import FakeKubelet as SummaryServer
from tests.integration.test_metrics_api import _register_node as register_node

NODE = "testnode"  # the control plane's PKI has a kubelet serving certificate for it
NS = f"hpa-{os.urandom(3).hex()}"
RESOLUTION = 1
STABILIZATION = 10
CONTROLLERS = ("serviceaccount-controller,root-ca-certificate-publisher-controller,deployment-controller,"
               "replicaset-controller,horizontal-pod-autoscaler-controller")


class MetricsKubelet(SummaryServer):
    """/stats/summary for the Running pods of NS; each container uses `millicores` of CPU."""

    def __init__(self, cp: ControlPlane, cert: Path, key: Path) -> None:
        super().__init__(cert, key)
        self.cp = cp
        self.millicores = 0
        self.pods: list[dict[str, Any]] = []
        self.counters: dict[str, tuple[int, int]] = {}  # pod uid → (second, cumulative nanoseconds)
        self.stop_polling = threading.Event()
        self.poller = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        """The pods the kubelet "runs": the namespace's Running pods, refreshed a few times a second."""
        with self.cp.client() as c:
            while not self.stop_polling.is_set():
                try:
                    items = c.get(f"/api/v1/namespaces/{NS}/pods").json().get("items", [])
                    self.pods = [p for p in items if (p.get("status") or {}).get("phase") == "Running"
                                 and not p["metadata"].get("deletionTimestamp")]
                except httpx.HTTPError:
                    pass
                self.stop_polling.wait(0.2)

    def _cpu(self, uid: str, now: int) -> int:
        """The container's cumulative CPU (never 0: a zero point is incomplete to the scraper)."""
        last, total = self.counters.get(uid, (now, 1))
        total += self.millicores * 1_000_000 * (now - last)
        self.counters[uid] = (now, total)
        return total

    async def summary(self, request: web.Request) -> web.Response:
        now = int(time.time())  # the kubelet's clock has whole seconds
        at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
        pods = []
        for p in list(self.pods):
            started = p["status"].get("startTime") or p["metadata"]["creationTimestamp"]
            containers = [{"name": ctr["name"], "startTime": started,
                           "cpu": {"time": at, "usageNanoCores": 0,
                                   "usageCoreNanoSeconds": self._cpu(p["metadata"]["uid"], now)},
                           "memory": {"time": at, "workingSetBytes": 8 * 1024 * 1024}}
                          for ctr in p["spec"]["containers"]]
            pods.append({"podRef": {"namespace": NS, "name": p["metadata"]["name"], "uid": p["metadata"]["uid"]},
                         "containers": containers})
        return web.json_response({"node": {"nodeName": NODE, **self._stats(now, 0.1, 1024**3)}, "pods": pods})

    def start(self) -> None:
        super().start()
        self.poller.start()

    def stop(self) -> None:
        self.stop_polling.set()
        self.poller.join(10)
        super().stop()


@pytest.fixture(scope="module")
def cluster() -> Iterator[tuple[ControlPlane, MetricsKubelet, ControllerManager]]:
    with private_control_plane("mk8s-hpa-", controller_manager=False) as cp:
        # a short metric resolution (the fixture starts the apiserver with the defaults)
        cp.stop("apiserver")
        cp.cfg.extra_apiserver_args = ["--metric-resolution", f"{RESOLUTION}s"]
        cp.start_apiserver()
        cp.wait_ready()
        kubelet = MetricsKubelet(cp, *cp.pki.kubelet_serving(NODE))
        kubelet.start()
        cm = ControllerManager(cp, name="controller-manager-hpa", controllers=CONTROLLERS, extra=[
            "--horizontal-pod-autoscaler-sync-period", "1s",
            "--horizontal-pod-autoscaler-downscale-stabilization", f"{STABILIZATION}s"])
        try:
            with cp.client() as api:
                register_node(api, NODE, "127.0.0.1", kubelet.port)
                api.post("/api/v1/namespaces", json={"metadata": {"name": NS}}).raise_for_status()
            cm.start()
            cp.wait_namespace_ready(NS)
            yield cp, kubelet, cm
        finally:
            cm.stop()
            kubelet.stop()


def deployment_body() -> dict:
    labels = {"app": "web"}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels}, "spec": {"containers": [
                         {"name": "c", "image": "img", "resources": {"requests": {"cpu": "100m"}}}]}}}}


def hpa_body() -> dict:
    return {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "web"},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                     "minReplicas": 1, "maxReplicas": 3,
                     "metrics": [{"type": "Resource", "resource": {
                         "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}}]}}


def conditions(hpa: dict) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in (hpa.get("status") or {}).get("conditions") or []}


def rescale_messages(api: httpx.Client) -> list[str]:
    items = api.get(f"/api/v1/namespaces/{NS}/events").json()["items"]
    return [e["message"] for e in items if e["reason"] == "SuccessfulRescale"
            and e["involvedObject"]["kind"] == "HorizontalPodAutoscaler"
            and e["source"].get("component") == "horizontal-pod-autoscaler"]


def test_hpa_scales_a_deployment_on_cpu(cluster: tuple[ControlPlane, MetricsKubelet, ControllerManager]) -> None:
    cp, kubelet, cm = cluster
    hpa_path = f"/apis/autoscaling/v2/namespaces/{NS}/horizontalpodautoscalers/web"
    deploy_path = f"/apis/apps/v1/namespaces/{NS}/deployments/web"
    with cp.client() as api, FakeKubelet(cp, NS):
        kubelet.millicores = 90  # 90 % of the request, against a 50 % target
        api.post(f"/apis/apps/v1/namespaces/{NS}/deployments", json=deployment_body()).raise_for_status()
        wait_for(lambda: api.get(f"/apis/metrics.k8s.io/v1beta1/namespaces/{NS}/pods").json()["items"], 30, 0.2,
                 "metrics of the first pod")
        api.post(f"/apis/autoscaling/v2/namespaces/{NS}/horizontalpodautoscalers", json=hpa_body()).raise_for_status()

        # up: 1 → 2 (one pod at 90 %), then → 3 and no further (maxReplicas)
        wait_for(lambda: api.get(deploy_path).json()["spec"]["replicas"] == 3, 60, 0.2, "a scale-up to 3")

        def settled_at_max() -> bool:  # the sync after the rescale: 3 pods at 90 % want 6
            hpa = api.get(hpa_path).json()
            return (hpa["status"].get("currentReplicas") == 3
                    and conditions(hpa).get("ScalingLimited") == ("True", "TooManyReplicas"))

        wait_for(settled_at_max, 30, 0.2, "3 replicas, ScalingLimited TooManyReplicas")
        hpa = api.get(hpa_path).json()
        st = hpa["status"]
        assert st["currentReplicas"] == 3 and st["desiredReplicas"] == 3 and st["lastScaleTime"]
        assert st["observedGeneration"] == hpa["metadata"]["generation"]
        [metric] = st["currentMetrics"]
        assert metric["type"] == "Resource" and metric["resource"]["name"] == "cpu"
        assert metric["resource"]["current"] == {"averageUtilization": 90, "averageValue": "90m"}
        conds = conditions(hpa)
        assert conds["AbleToScale"][0] == "True" and conds["ScalingActive"] == ("True", "ValidMetricFound")
        wait_for(lambda: any(m.startswith("New size: 3; ") for m in rescale_messages(api)), 10, 0.2, "the event")
        messages = rescale_messages(api)
        assert "New size: 2; reason: cpu resource utilization (percentage of request) above target" in messages
        assert api.get(deploy_path).json()["spec"]["replicas"] == 3
        # what kubectl makes of it
        out = cp.kubectl("get", "hpa", "web", "-n", NS).stdout.splitlines()
        assert out[1].split()[:6] == ["web", "Deployment/web", "cpu:", "90%/50%", "1", "3"], out
        out = cp.kubectl("describe", "hpa", "web", "-n", NS).stdout
        assert "ScalingLimited  True    TooManyReplicas" in out, out
        assert "SuccessfulRescale" in out and "New size: 3; reason: cpu resource utilization" in out, out
        # the v1 view of the same object
        v1 = api.get(f"/apis/autoscaling/v1/namespaces/{NS}/horizontalpodautoscalers/web").json()
        assert v1["status"]["currentCPUUtilizationPercentage"] == 90

        # down: 10 % says 1, but only once the stabilization window has no higher recommendation
        kubelet.millicores = 10
        lowered = time.monotonic()
        wait_for(lambda: conditions(api.get(hpa_path).json()).get("AbleToScale", ("", ""))[1] == "ScaleDownStabilized",
                 20, 0.2, "the scale-down held back")
        assert api.get(deploy_path).json()["spec"]["replicas"] == 3
        wait_for(lambda: api.get(deploy_path).json()["spec"]["replicas"] == 1, 60, 0.2, "a scale-down to 1")
        assert time.monotonic() - lowered >= STABILIZATION - 1
        wait_for(lambda: "New size: 1; reason: All metrics below target" in rescale_messages(api), 10, 0.2,
                 "the scale-down event")
        wait_for(lambda: api.get(hpa_path).json()["status"]["desiredReplicas"] == 1, 10, 0.2, "desiredReplicas 1")
    cm.assert_no_rbac_denials()
