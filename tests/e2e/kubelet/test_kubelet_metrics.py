"""metrics.k8s.io with the real kubelet: the apiserver scrapes its /stats/summary, and `kubectl top
node|pod [--containers]` shows a running busybox pod and the node (apiserver/metricsapi.py)."""

from __future__ import annotations

import re

import pytest

from apimachinery.quantity import parse_quantity
from tests.conftest import wait_for
from tests.e2e.kubelet.conftest import NODE, create_pod, pod_manifest, running, wait_pod

pytestmark = pytest.mark.e2e

METRICS = "/apis/metrics.k8s.io/v1beta1"
#: a little CPU every second, so that the rate is not zero
SPIN = "while true; do i=0; while [ $i -lt 3000 ]; do i=$((i+1)); done; sleep 1; done"
GO_DURATION = re.compile(r"^(\d+h)?(\d+m)?\d+(\.\d+)?s$")


def _rows(out: str) -> list[list[str]]:
    return [line.split() for line in out.strip().splitlines()]


def test_kubectl_top_shows_a_running_pod_and_the_node(api, ns, kubelet, kcluster):
    pod = pod_manifest("busy", [{"name": "main", "command": ["sleep", "3600"]},
                                {"name": "spin", "command": ["sh", "-c", SPIN]}])
    pod["metadata"]["labels"] = {"app": "busy"}
    create_pod(api, ns, pod)
    wait_pod(api, ns, "busy", running)

    # the first metrics request starts the apiserver's scraper; the pod shows once it has two points
    def pod_metrics():
        r = api.get(f"{METRICS}/namespaces/{ns}/pods/busy")
        assert r.status_code in (200, 404), r.text
        return r.json() if r.status_code == 200 else None

    pm = wait_for(pod_metrics, 60, 0.5, "PodMetrics of busy")
    assert (pm["kind"], pm["apiVersion"]) == ("PodMetrics", "metrics.k8s.io/v1beta1")
    assert list(pm) == ["kind", "apiVersion", "metadata", "timestamp", "window", "containers"]
    assert pm["metadata"]["name"] == "busy" and pm["metadata"]["namespace"] == ns
    assert pm["metadata"]["labels"] == {"app": "busy"} and pm["metadata"]["creationTimestamp"]
    assert GO_DURATION.match(pm["window"]), pm["window"]
    assert sorted(c["name"] for c in pm["containers"]) == ["main", "spin"]
    for c in pm["containers"]:
        assert set(c["usage"]) == {"cpu", "memory"}
        assert re.fullmatch(r"\d+[num]?", c["usage"]["cpu"]), c
        assert re.fullmatch(r"\d+(Ki|Mi|Gi)?", c["usage"]["memory"]), c
        assert parse_quantity(c["usage"]["memory"]) > 0

    rows = _rows(kcluster.kubectl("top", "pod", "-n", ns).stdout)
    assert rows[0] == ["NAME", "CPU(cores)", "MEMORY(bytes)"]
    assert [r[0] for r in rows[1:]] == ["busy"]
    assert re.fullmatch(r"\d+m", rows[1][1]) and re.fullmatch(r"\d+Mi", rows[1][2]), rows
    rows = _rows(kcluster.kubectl("top", "pod", "-n", ns, "--containers", "-l", "app=busy").stdout)
    assert rows[0] == ["POD", "NAME", "CPU(cores)", "MEMORY(bytes)"]
    assert sorted((r[0], r[1]) for r in rows[1:]) == [("busy", "main"), ("busy", "spin")]
    assert [r[1] for r in _rows(kcluster.kubectl("top", "pod", "-A", "--no-headers").stdout) if r[0] == ns] == ["busy"]

    # the spinning container uses CPU: some scrape shows it
    def spinning():
        got = pod_metrics() or {"containers": []}
        return any(c["name"] == "spin" and parse_quantity(c["usage"]["cpu"]) > 0 for c in got["containers"])

    wait_for(spinning, 40, 1, "CPU use of the spinning container")

    # the node
    nm = wait_for(lambda: api.get(f"{METRICS}/nodes/{NODE}").json() if api.get(f"{METRICS}/nodes/{NODE}").status_code == 200
                  else None, 30, 0.5, "NodeMetrics of the node")
    assert (nm["kind"], nm["metadata"]["name"]) == ("NodeMetrics", NODE)
    assert nm["metadata"]["labels"].get("kubernetes.io/hostname")
    assert parse_quantity(nm["usage"]["cpu"]) > 0 and parse_quantity(nm["usage"]["memory"]) > 0
    assert GO_DURATION.match(nm["window"])
    rows = _rows(kcluster.kubectl("top", "node").stdout)
    assert rows[0] == ["NAME", "CPU(cores)", "CPU(%)", "MEMORY(bytes)", "MEMORY(%)"]
    [row] = [r for r in rows[1:] if r[0] == NODE]
    assert re.fullmatch(r"\d+m", row[1]) and re.fullmatch(r"\d+%", row[2]), row
    assert re.fullmatch(r"\d+Mi", row[3]) and re.fullmatch(r"\d+%", row[4]), row


def test_metrics_of_a_missing_pod_are_a_404(api, ns, kubelet, kcluster):
    r = api.get(f"{METRICS}/namespaces/{ns}/pods/nope")
    assert r.status_code == 404 and r.json()["reason"] == "NotFound"
    assert r.json()["message"] == 'pods "nope" not found'
    r = kcluster.kubectl("top", "pod", "nope", "-n", ns, check=False)
    assert r.returncode != 0 and "NotFound" in r.stderr
    # a pod that exists but runs nowhere (not scheduled) has no metrics: upstream's podmetrics 404
    pending = pod_manifest("pending", [{"name": "c", "command": ["sleep", "1"]}])
    del pending["spec"]["nodeName"]
    create_pod(api, ns, pending)
    r = api.get(f"{METRICS}/namespaces/{ns}/pods/pending")
    assert r.status_code == 404
    assert r.json()["message"] == f'podmetrics.metrics.k8s.io "{ns}/pending" not found'
    assert api.get(f"{METRICS}/namespaces/{ns}/pods").json()["items"] == []
