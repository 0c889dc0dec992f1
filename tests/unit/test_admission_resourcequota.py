"""ResourceQuota: what objects count for, scopes, constraints and message formats."""

from __future__ import annotations

from apiserver.admission.resourcequota import (
    format_amount,
    missing_requests,
    object_usage,
    pod_usage,
    pretty,
    scope_matches,
    service_usage,
    tracks,
)
from apiserver.resources import TABLE

PODS = TABLE.lookup("", "v1", "pods")
SERVICES = TABLE.lookup("", "v1", "services")
CONFIGMAPS = TABLE.lookup("", "v1", "configmaps")
DEPLOYMENTS = TABLE.lookup("apps", "v1", "deployments")


def pod(containers: list[dict], phase: str = "Pending", **spec) -> dict:
    return {"metadata": {"name": "p"}, "spec": {"containers": containers, **spec}, "status": {"phase": phase}}


def c(requests: dict | None = None, limits: dict | None = None, name: str = "c") -> dict:
    return {"name": name, "resources": {k: v for k, v in (("requests", requests), ("limits", limits)) if v is not None}}


def test_pod_usage_in_milli_units() -> None:
    p = pod([c({"cpu": "250m", "memory": "64Mi"}, {"cpu": "500m", "memory": "128Mi"}), c({"cpu": "1"}, name="d")],
            initContainers=[c({"cpu": "2"}, name="i")])
    u = pod_usage(p)
    assert u["pods"] == 1000 and u["count/pods"] == 1000
    assert u["requests.cpu"] == u["cpu"] == 2000  # the init container's 2 cpu exceed the 1.25 of the others
    assert u["requests.memory"] == 64 * 1024 * 1024 * 1000
    assert u["limits.cpu"] == 500 and u["limits.memory"] == 128 * 1024 * 1024 * 1000


def test_terminal_pods_only_count_as_objects() -> None:
    assert pod_usage(pod([c({"cpu": "1"})], phase="Succeeded")) == {"count/pods": 1000}


def test_services_count_node_ports() -> None:
    svc = {"spec": {"type": "NodePort", "ports": [{"port": 80}, {"port": 443}]}}
    assert service_usage(svc) == {"services": 1000, "count/services": 1000, "services.nodeports": 2000}
    lb = {"spec": {"type": "LoadBalancer", "ports": [{"port": 80}], "allocateLoadBalancerNodePorts": False}}
    assert service_usage(lb) == {"services": 1000, "count/services": 1000, "services.loadbalancers": 1000}


def test_object_counts_and_what_tracks_what() -> None:
    assert object_usage(CONFIGMAPS, {}) == {"configmaps": 1000, "count/configmaps": 1000}
    assert object_usage(DEPLOYMENTS, {}) == {"count/deployments.apps": 1000}
    assert tracks(PODS, "requests.cpu") and tracks(PODS, "requests.nvidia.com/gpu") and tracks(PODS, "count/pods")
    assert not tracks(PODS, "requests.storage") and not tracks(PODS, "configmaps")
    assert tracks(DEPLOYMENTS, "count/deployments.apps") and not tracks(DEPLOYMENTS, "count/deployments")
    assert tracks(SERVICES, "services.nodeports") and not tracks(CONFIGMAPS, "secrets")


def test_scopes_select_pods() -> None:
    best_effort = pod([c()])
    burstable = pod([c({"cpu": "100m"})], activeDeadlineSeconds=60, priorityClassName="high")

    def q(scopes: list[str] | None = None, selector: list[dict] | None = None) -> dict:
        spec: dict = {"hard": {"pods": "1"}}
        if scopes:
            spec["scopes"] = scopes
        if selector:
            spec["scopeSelector"] = {"matchExpressions": selector}
        return {"spec": spec}

    assert scope_matches(q(["BestEffort"]), PODS, best_effort) and not scope_matches(q(["BestEffort"]), PODS, burstable)
    assert scope_matches(q(["NotBestEffort", "Terminating"]), PODS, burstable)
    assert not scope_matches(q(["NotTerminating"]), PODS, burstable)
    high = [{"scopeName": "PriorityClass", "operator": "In", "values": ["high"]}]
    assert scope_matches(q(selector=high), PODS, burstable) and not scope_matches(q(selector=high), PODS, best_effort)
    assert not scope_matches(q(["BestEffort"]), CONFIGMAPS, {})  # scoped quotas only track pods
    assert scope_matches(q(), CONFIGMAPS, {})


def test_cpu_and_memory_quotas_need_explicit_requests() -> None:
    p = pod([c({"cpu": "100m"}, name="a"), c(name="b")])
    assert missing_requests(PODS, p, {"pods", "requests.cpu", "limits.memory"}) == (
        "must specify limits.memory for: a,b; requests.cpu for: b")
    assert missing_requests(PODS, p, {"pods"}) == ""


def test_formatting() -> None:
    assert format_amount("requests.cpu", 1500) == "1500m" and format_amount("cpu", 2000) == "2"
    assert format_amount("limits.memory", 128 * 1024 * 1024 * 1000) == "128Mi"
    assert format_amount("pods", 3000) == "3" and format_amount("count/deployments.apps", 1000) == "1"
    assert pretty({"requests.cpu": 500, "pods": 1000}) == "pods=1,requests.cpu=500m"


def test_amounts_in_refusals_read_as_upstream_prints_them() -> None:
    from apiserver.admission.resourcequota import format_amount

    milli = 1000
    assert format_amount("limits.memory", 1_000_000_000 * milli) == "1G"  # a quota of "1G"
    assert format_amount("requests.memory", 512 * 1024 * 1024 * milli) == "512Mi"
    assert format_amount("requests.storage", 12345 * milli) == "12345"
    assert format_amount("limits.memory", 2_000_000_000 * milli) == "2G"  # not 1953125Ki
    assert format_amount("limits.memory", 512_000_000 * milli) == "512M"
    assert format_amount("requests.memory", 1024 * milli) == "1Ki"
    assert format_amount("requests.cpu", 1500) == "1500m"
    assert format_amount("pods", 7 * milli) == "7"
