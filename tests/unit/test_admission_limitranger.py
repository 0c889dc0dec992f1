"""LimitRanger: defaults and min/max/ratio checks with upstream's messages."""

from __future__ import annotations

from apiserver.admission.limitranger import (
    aggregate,
    apply_defaults,
    check_claim,
    check_pod,
    default_limit_range_item,
)


def container(name: str = "c", requests: dict | None = None, limits: dict | None = None) -> dict:
    res: dict = {}
    if requests is not None:
        res["requests"] = requests
    if limits is not None:
        res["limits"] = limits
    return {"name": name, "image": "x", "resources": res}


def test_item_defaults_follow_upstream() -> None:
    item = {"type": "Container", "max": {"cpu": "2"}, "min": {"memory": "64Mi"}, "default": {"memory": "256Mi"}}
    default_limit_range_item(item)
    assert item["default"] == {"memory": "256Mi", "cpu": "2"}  # default ← max
    assert item["defaultRequest"] == {"memory": "256Mi", "cpu": "2"}  # defaultRequest ← default (before min)
    pod_item = {"type": "Pod", "max": {"cpu": "2"}}
    default_limit_range_item(pod_item)
    assert "default" not in pod_item


def test_defaults_fill_only_what_is_missing() -> None:
    spec = {"containers": [container("a", requests={"cpu": "50m"}), container("b", limits={"memory": "1Gi"})],
            "initContainers": [container("i")]}
    items = [{"type": "Container", "default": {"cpu": "500m", "memory": "512Mi"}, "defaultRequest": {"cpu": "100m", "memory": "256Mi"}}]
    notes = apply_defaults(spec, items)
    a, b = spec["containers"]
    assert a["resources"] == {"requests": {"cpu": "50m", "memory": "256Mi"}, "limits": {"cpu": "500m", "memory": "512Mi"}}
    assert b["resources"]["limits"] == {"memory": "1Gi", "cpu": "500m"}
    assert spec["initContainers"][0]["resources"]["requests"] == {"cpu": "100m", "memory": "256Mi"}
    assert notes == [
        "cpu, memory request for init container i", "cpu, memory limit for init container i",
        "memory request for container a", "cpu, memory limit for container a",
        "cpu, memory request for container b", "cpu limit for container b",
    ]
    assert apply_defaults({"containers": [container()]}, [{"type": "Pod", "max": {"cpu": "1"}}]) == []


def test_container_bounds_messages() -> None:
    items = [{"type": "Container", "min": {"cpu": "100m"}, "max": {"cpu": "1", "memory": "1Gi"}}]
    spec = {"containers": [container("c", requests={"cpu": "50m", "memory": "128Mi"}, limits={"cpu": "2", "memory": "128Mi"})]}
    assert check_pod(spec, items) == [
        "minimum cpu usage per Container is 100m, but request is 50m",
        "maximum cpu usage per Container is 1, but limit is 2",
    ]
    spec = {"containers": [container("c", requests={"cpu": "200m"})]}
    assert check_pod(spec, items) == [
        "maximum cpu usage per Container is 1.  No limit is specified",
        "maximum memory usage per Container is 1Gi.  No limit is specified",
    ]
    ok = {"containers": [container("c", requests={"cpu": "200m", "memory": "1Gi"}, limits={"cpu": "1", "memory": "1Gi"})]}
    assert check_pod(ok, items) == []


def test_ratio_and_pod_totals() -> None:
    items = [{"type": "Container", "maxLimitRequestRatio": {"cpu": "2"}}]
    spec = {"containers": [container("c", requests={"cpu": "100m"}, limits={"cpu": "300m"})]}
    assert check_pod(spec, items) == ["cpu max limit to request ratio per Container is 2, but provided ratio is 3.000000"]
    spec = {"containers": [container("c", limits={"cpu": "300m"})]}
    assert check_pod(spec, items) == [
        "cpu max limit to request ratio per Container is 2, but no request is specified or request is 0"]
    pod_items = [{"type": "Pod", "max": {"memory": "1Gi"}}]
    two = {"containers": [container("a", requests={"memory": "600Mi"}, limits={"memory": "600Mi"}),
                          container("b", requests={"memory": "600Mi"}, limits={"memory": "600Mi"})]}
    assert check_pod(two, pod_items) == ["maximum memory usage per Pod is 1Gi, but limit is 1200Mi"]


def test_claims_and_aggregation() -> None:
    items = [{"type": "PersistentVolumeClaim", "min": {"storage": "1Gi"}, "max": {"storage": "10Gi"}}]
    assert check_claim({"resources": {"requests": {"storage": "20Gi"}}}, items) == [
        "maximum storage usage per PersistentVolumeClaim is 10Gi, but request is 20Gi"]
    assert check_claim({"resources": {"requests": {"storage": "512Mi"}}}, items) == [
        "minimum storage usage per PersistentVolumeClaim is 1Gi, but request is 512Mi"]
    assert check_claim({"resources": {"requests": {"storage": "5Gi"}}}, items) == []
    assert aggregate(["a"]) == "a" and aggregate(["a", "b"]) == "[a, b]"
