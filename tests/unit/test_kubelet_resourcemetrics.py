"""/metrics/resource and /configz of the kubelet (kubelet.resourcemetrics), from a summary."""

from __future__ import annotations

from kubelet.config import KubeletConfig
from kubelet.resourcemetrics import configz, render

T = "2026-11-22T10:00:00Z"
MS = 1795341600000  # T in milliseconds

SUMMARY = {
    "node": {"nodeName": "n1", "cpu": {"time": T, "usageCoreNanoSeconds": 12_500_000_000},
             "memory": {"time": T, "workingSetBytes": 1_000_000}},
    "pods": [{
        "podRef": {"name": "web", "namespace": "ns", "uid": "u1"},
        "cpu": {"time": T, "usageCoreNanoSeconds": 1_250_000_000},
        "memory": {"time": T, "workingSetBytes": 2048},
        "containers": [{"name": "httpd", "startTime": "2026-11-22T09:00:00Z",
                        "cpu": {"time": T, "usageCoreNanoSeconds": 1_250_000_000},
                        "memory": {"time": T, "workingSetBytes": 2048}}],
    }],
}


def test_resource_metrics_have_upstreams_names_labels_and_timestamps():
    text = render(SUMMARY)
    lines = text.splitlines()
    assert "# TYPE container_cpu_usage_seconds_total counter" in lines
    assert f'container_cpu_usage_seconds_total{{container="httpd",namespace="ns",pod="web"}} 1.25 {MS}' in lines
    assert f'container_memory_working_set_bytes{{container="httpd",namespace="ns",pod="web"}} 2048 {MS}' in lines
    # upstream stamps every sample with its measurement time but the start time
    assert f'container_start_time_seconds{{container="httpd",namespace="ns",pod="web"}} {MS // 1000 - 3600}' in lines
    assert f"node_cpu_usage_seconds_total 12.5 {MS}" in lines and f"node_memory_working_set_bytes 1000000 {MS}" in lines
    assert f'pod_cpu_usage_seconds_total{{namespace="ns",pod="web"}} 1.25 {MS}' in lines
    assert f'pod_memory_working_set_bytes{{namespace="ns",pod="web"}} 2048 {MS}' in lines
    assert lines[-1] == "resource_scrape_error 0"
    assert text.index("# HELP container_") < text.index("# HELP node_") < text.index("# HELP pod_")


def test_a_failed_summary_is_a_scrape_error_only():
    assert render(None).splitlines()[-1] == "resource_scrape_error 1"
    assert "node_cpu" not in render(None)


def test_label_values_are_escaped():
    summary = {"pods": [{"podRef": {"name": 'a"b', "namespace": "n\\s"}, "cpu": {"time": T, "usageCoreNanoSeconds": 0},
                         "containers": []}]}
    assert f'pod_cpu_usage_seconds_total{{namespace="n\\\\s",pod="a\\"b"}} 0 {MS}' in render(summary)


def test_configz_speaks_kubelet_configuration():
    cfg = KubeletConfig(node_name="n1", cluster_dns=["10.96.0.10"], sync_frequency=60, pod_cidr="10.244.1.0/24",
                        rotate_server_certificates=True)
    out = configz(cfg)["kubeletconfig"]
    assert (out["kind"], out["apiVersion"]) == ("KubeletConfiguration", "kubelet.config.k8s.io/v1beta1")
    assert out["syncFrequency"] == "1m0s" and out["clusterDNS"] == ["10.96.0.10"] and out["serverTLSBootstrap"]
    assert out["evictionHard"]["memory.available"] == str(100 * 1024 * 1024)
    assert out["evictionHard"]["nodefs.available"] == "10%" and out["podCIDR"] == "10.244.1.0/24"


def test_cadvisor_metrics_have_cadvisors_names_and_labels():
    from kubelet.resourcemetrics import render_cadvisor

    row = {"container": "httpd", "id": "/kubepods/besteffort/podu1/c1", "image": "busybox:1.35", "name": "c1",
           "namespace": "ns", "pod": "web", "cpu_seconds": 1.5, "last_seen": 1795341600, "rss_bytes": 10,
           "usage_bytes": 30, "working_set_bytes": 20, "start_time": 1795338000.0, "ms": MS}
    lines = render_cadvisor([row]).splitlines()
    labels = '{container="httpd",id="/kubepods/besteffort/podu1/c1",image="busybox:1.35",name="c1",namespace="ns",pod="web"}'
    assert f"container_cpu_usage_seconds_total{labels} 1.5 {MS}" in lines
    assert f"container_memory_working_set_bytes{labels} 20 {MS}" in lines
    assert f"container_start_time_seconds{labels} 1795338000 {MS}" in lines
    assert "# TYPE container_cpu_usage_seconds_total counter" in lines
    assert render_cadvisor([]) == ""
