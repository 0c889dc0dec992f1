"""The proxy subresources: nodes/<name>/proxy/<path> to the node's kubelet (over the apiserver's
verified kubelet-client connection: `kubectl get --raw /api/v1/nodes/<node>/proxy/stats/summary`),
pods/<name>[:port]/proxy and services/<name>[:port]/proxy to a pod, as with upstream."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.conftest import KUBECTL, wait_for
from tests.e2e.kubelet.conftest import NODE, create_pod, pod_manifest, running, wait_pod

pytestmark = pytest.mark.e2e

PROXY = f"/api/v1/nodes/{NODE}/proxy"


def raw(kcluster, path: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([KUBECTL, "--kubeconfig", str(kcluster.kubeconfig), "get", "--raw", path],
                          capture_output=True, text=True, timeout=60)


def test_kubectl_reaches_the_kubelet_through_the_node_proxy(api, kubelet, kcluster):
    assert raw(kcluster, f"{PROXY}/healthz").stdout == "ok"
    summary = json.loads(raw(kcluster, f"{PROXY}/stats/summary").stdout)
    assert summary["node"]["nodeName"] == NODE and summary["node"]["memory"]["workingSetBytes"] > 0
    pods = json.loads(raw(kcluster, f"{PROXY}/pods").stdout)
    assert pods["kind"] == "PodList"
    # query strings and status codes pass through; the kubelet's own metrics are text
    r = api.get(f"{PROXY}/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    assert "kubelet_running_pods" in r.text or "kubelet_pod_workers" in r.text
    assert api.get(f"{PROXY}/no-such-path").status_code == 404
    # what metrics-server scrapes, and the running configuration
    resource = raw(kcluster, f"{PROXY}/metrics/resource").stdout
    assert "# TYPE node_cpu_usage_seconds_total counter" in resource and "resource_scrape_error 0" in resource
    config = json.loads(raw(kcluster, f"{PROXY}/configz").stdout)["kubeletconfig"]
    # the node's /var/log (nodes/log): a listing; nothing outside it
    listing = api.get(f"{PROXY}/logs/")
    assert listing.status_code == 200 and listing.headers["content-type"].startswith("text/html")
    assert api.get(f"{PROXY}/logs/%2E%2E/etc/hostname").status_code in (403, 404)
    assert config["kind"] == "KubeletConfiguration" and config["clusterDNS"] == ["10.96.0.10"]
    # a POST reaches the kubelet too: the answer to a method it does not serve is its own, not a Status
    r = api.post(f"{PROXY}/healthz", content=b"{}")
    assert r.status_code == 405 and r.headers["content-type"].startswith("text/plain"), (r.status_code, r.text)


def test_node_proxy_errors_are_statuses(api, kubelet, kcluster):
    r = api.get("/api/v1/nodes/no-such-node/proxy/healthz")
    assert r.status_code == 404 and r.json()["reason"] == "NotFound" and r.json()["details"]["kind"] == "nodes"
    r = api.get(f"/api/v1/nodes/{NODE}:notaport/proxy/healthz")
    assert r.status_code == 400 and r.json()["kind"] == "Status"
    # RBAC: nodes/proxy is its own permission
    r = api.get(f"{PROXY}/healthz", headers={"Impersonate-User": "someone"})
    assert r.status_code == 403 and "nodes/proxy" in r.json()["message"]
    out = raw(kcluster, "/api/v1/nodes/no-such-node/proxy/healthz")
    assert out.returncode != 0 and "not found" in out.stderr


WEB = ["sh", "-c", "echo $HOSTNAME > /tmp/index.html && exec httpd -f -p 8080 -h /tmp"]


def test_pod_and_service_proxies_reach_the_pod(api, ns, kubelet, kcluster):
    create_pod(api, ns, pod_manifest("web", [{"name": "httpd", "command": WEB, "ports": [{"containerPort": 8080}]}]))
    pod = wait_pod(api, ns, "web", running)
    base = f"/api/v1/namespaces/{ns}"
    # no port: the first declared container port; the answer is the pod's own
    wait_for(lambda: api.get(f"{base}/pods/web/proxy/").text.strip() == "web", 30, 0.5, "httpd to answer")
    assert raw(kcluster, f"{base}/pods/web:8080/proxy/index.html").stdout.strip() == "web"
    assert api.get(f"{base}/pods/web:8080/proxy/missing").status_code == 404  # the pod's 404, passed through
    # the running container in the kubelet's resource metrics
    wait_for(lambda: f'container_memory_working_set_bytes{{container="httpd",namespace="{ns}",pod="web"}}'
             in api.get(f"{PROXY}/metrics/resource").text, 30, 0.5, "the container's resource metrics")
    cadvisor = api.get(f"{PROXY}/metrics/cadvisor").text
    mine = [line for line in cadvisor.splitlines()
            if line.startswith("container_memory_working_set_bytes{") and 'pod="web"' in line and f'namespace="{ns}"' in line]
    assert len(mine) == 1 and 'container="httpd"' in mine[0] and f'/pod{pod["metadata"]["uid"]}/' in mine[0], mine
    r = api.get(f"{base}/pods/nope/proxy/")
    assert r.status_code == 404 and r.json()["reason"] == "NotFound"

    # a selectorless Service whose Endpoints name the pod; by port name, number or the only port
    api.post(f"{base}/services", json={"metadata": {"name": "websvc"}, "spec": {
        "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}).raise_for_status()
    api.post(f"{base}/endpoints", json={"metadata": {"name": "websvc"}, "subsets": [{
        "addresses": [{"ip": pod["status"]["podIP"], "targetRef": {"kind": "Pod", "name": "web", "namespace": ns}}],
        "ports": [{"name": "http", "port": 8080}]}]}).raise_for_status()
    for spec in ("websvc:http", "websvc:80"):
        assert api.get(f"{base}/services/{spec}/proxy/").text.strip() == "web", spec
    assert raw(kcluster, f"{base}/services/http:websvc:http/proxy/").stdout.strip() == "web"
    r = api.get(f"{base}/services/websvc:81/proxy/")
    assert r.status_code == 503 and 'no service port 81 found for service "websvc"' in r.json()["message"]

    # an address that is not its pod's IP is never used (upstream's guard against proxying anywhere)
    api.post(f"{base}/services", json={"metadata": {"name": "rogue"}, "spec": {
        "ports": [{"name": "http", "port": 80}]}}).raise_for_status()
    api.post(f"{base}/endpoints", json={"metadata": {"name": "rogue"}, "subsets": [{
        "addresses": [{"ip": "10.244.250.250", "targetRef": {"kind": "Pod", "name": "web", "namespace": ns}},
                      {"ip": pod["status"]["podIP"]}],
        "ports": [{"name": "http", "port": 8080}]}]}).raise_for_status()
    r = api.get(f"{base}/services/rogue:http/proxy/")
    assert r.status_code == 503 and "no endpoints available" in r.json()["message"]
    # RBAC: pods/proxy and services/proxy are permissions of their own
    r = api.get(f"{base}/pods/web/proxy/", headers={"Impersonate-User": "someone"})
    assert r.status_code == 403 and "pods/proxy" in r.json()["message"]
