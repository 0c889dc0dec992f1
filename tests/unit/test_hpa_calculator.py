"""The horizontal pod autoscaler's replica math (controller_manager.podautoscaler_replicas) and its
stabilization / scaling policies (controller_manager.podautoscaler_behavior), on a FakeClock."""

from __future__ import annotations

import datetime as dt

import pytest

from apimachinery.meta import format_time
from apimachinery.selectors import LabelSelector, parse_label_selector
from controller_manager.base import FakeClock
from controller_manager.podautoscaler_behavior import (
    ScaleHistory,
    behavior_with_defaults,
    convert_desired_replicas_with_rules,
)
from controller_manager.podautoscaler_replicas import (
    MetricsError,
    PodMetric,
    ReplicaCalculator,
    Tolerances,
    calculate_requests,
    group_pods,
    pod_metrics_info,
    resource_utilization_ratio,
)

NS = "default"
SELECTOR = parse_label_selector("app=web")
TOL = Tolerances(0.1, 0.1)


class FakeMetrics:
    """The MetricsClient surface: fixed milli-values per pod (or an error)."""

    def __init__(self, clock: FakeClock, values: dict[str, int] | None = None, error: str | None = None,
                 window: float = 30.0, age: float = 60.0) -> None:
        self.clock, self.values, self.error, self.window, self.age = clock, values or {}, error, window, age
        self.calls: list[tuple] = []

    def _info(self) -> dict[str, PodMetric]:
        ts = self.clock.now() - dt.timedelta(seconds=self.age)
        return {name: PodMetric(v, ts, self.window) for name, v in self.values.items()}

    async def resource_metric(self, resource, namespace, selector, container):
        self.calls.append(("resource", resource, namespace, str(selector), container))
        if self.error:
            raise MetricsError(self.error)
        return self._info(), self.clock.now()

    async def raw_metric(self, name, namespace, selector, metric_selector):
        if self.error:
            raise MetricsError(self.error)
        return self._info(), self.clock.now()

    async def object_metric(self, name, namespace, object_ref, metric_selector):
        if self.error:
            raise MetricsError(self.error)
        return sum(self.values.values()), self.clock.now()

    async def external_metric(self, name, namespace, selector):
        if self.error:
            raise MetricsError(self.error)
        return list(self.values.values()), self.clock.now()


def pod(name: str, cpu: str | None = "1", phase: str = "Running", ready: str | None = "True",
        started_ago: float = 3600, ready_ago: float | None = None, now: dt.datetime | None = None,
        containers: list[dict] | None = None, **meta) -> dict:
    now = now or FakeClock().now()
    status: dict = {"phase": phase, "startTime": format_time(now - dt.timedelta(seconds=started_ago))}
    if ready is not None:
        status["conditions"] = [{"type": "Ready", "status": ready, "lastTransitionTime": format_time(
            now - dt.timedelta(seconds=started_ago if ready_ago is None else ready_ago))}]
    if containers is None:
        containers = [{"name": "app", "resources": {"requests": {"cpu": cpu}} if cpu else {}}]
    return {"metadata": {"name": name, "namespace": NS, "labels": {"app": "web"}, **meta},
            "spec": {"containers": containers}, "status": status}


def calc(clock: FakeClock, pods: list[dict], values: dict[str, int] | None = None, **kw) -> ReplicaCalculator:
    metrics = FakeMetrics(clock, values, **kw)
    return ReplicaCalculator(metrics, lambda ns, sel: [p for p in pods if sel.matches(p["metadata"]["labels"])],
                             cpu_initialization_period=300, delay_of_initial_readiness_status=30, clock=clock)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


# -- utilization targets --------------------------------------------------------------------


async def test_scale_up_by_utilization(clock):
    pods = [pod(f"p{i}") for i in range(3)]
    c = calc(clock, pods, {"p0": 300, "p1": 500, "p2": 700})
    # 50 % used against a 30 % target: ceil(50/30 × 3) = 5
    assert await c.resource_replicas(3, 30, "cpu", TOL, NS, SELECTOR) == (5, 50, 500, clock.now())


async def test_scale_down_by_utilization(clock):
    pods = [pod(f"p{i}") for i in range(5)]
    c = calc(clock, pods, {"p0": 100, "p1": 300, "p2": 500, "p3": 250, "p4": 250})
    replicas, utilization, raw, _ = await c.resource_replicas(5, 50, "cpu", TOL, NS, SELECTOR)
    assert (replicas, utilization, raw) == (3, 28, 280)  # ceil(0.56 × 5)


async def test_within_tolerance_keeps_the_count(clock):
    pods = [pod(f"p{i}") for i in range(3)]
    c = calc(clock, pods, {"p0": 1010, "p1": 1030, "p2": 1020})
    assert (await c.resource_replicas(3, 100, "cpu", TOL, NS, SELECTOR))[:2] == (3, 102)
    # a tighter scale-up tolerance (behavior.scaleUp.tolerance) acts on the same numbers
    assert (await c.resource_replicas(3, 100, "cpu", Tolerances(0.1, 0.01), NS, SELECTOR))[0] == 4
    # exactly at the edge is still within
    c = calc(clock, pods, {"p0": 1100, "p1": 1100, "p2": 1100})
    assert (await c.resource_replicas(3, 100, "cpu", TOL, NS, SELECTOR))[0] == 3


async def test_requests_sum_every_container_and_restartable_init_containers(clock):
    containers = [{"name": "a", "resources": {"requests": {"cpu": "250m"}}},
                  {"name": "b", "resources": {"requests": {"cpu": "250m"}}}]
    init = [{"name": "sidecar", "restartPolicy": "Always", "resources": {"requests": {"cpu": "500m"}}},
            {"name": "setup", "resources": {}}]  # a plain init container does not count
    p = pod("p0", containers=containers)
    p["spec"]["initContainers"] = init
    assert calculate_requests([p], "", "cpu") == {"p0": 1000}
    assert calculate_requests([p], "b", "cpu") == {"p0": 250}
    with pytest.raises(MetricsError, match="container c not found in Pod p0"):
        calculate_requests([p], "c", "cpu")
    with pytest.raises(MetricsError, match="missing request for memory in container a of Pod p0"):
        calculate_requests([p], "", "memory")
    p["spec"]["resources"] = {"requests": {"cpu": "2"}}  # pod-level requests win (without a container)
    assert calculate_requests([p], "", "cpu") == {"p0": 2000}
    assert calculate_requests([p], "a", "cpu") == {"p0": 250}


async def test_missing_request_is_an_error(clock):
    pods = [pod("p0", cpu=None)]
    c = calc(clock, pods, {"p0": 300})
    with pytest.raises(MetricsError, match=r"^missing request for cpu in container app of Pod p0$"):
        await c.resource_replicas(1, 50, "cpu", TOL, NS, SELECTOR)


# -- missing metrics, unready and ignored pods ---------------------------------------------


async def test_missing_metrics_count_as_full_request_on_scale_down(clock):
    pods = [pod(f"p{i}") for i in range(4)]
    c = calc(clock, pods, {"p0": 100, "p1": 100, "p2": 100})
    # 10 % of requests, target 50 %: p3 is assumed at 100 % → 1300/4000 = 32 % → ceil(0.64 × 4) = 3
    replicas, utilization, _, _ = await c.resource_replicas(4, 50, "cpu", TOL, NS, SELECTOR)
    assert (replicas, utilization) == (3, 10)


async def test_missing_metrics_assume_the_target_above_100_percent(clock):
    pods = [pod(f"p{i}") for i in range(4)]
    c = calc(clock, pods, {"p0": 1000, "p1": 1000, "p2": 1000})
    # 100 % used against 300 %: p3 is assumed at 300 % → 6000/4000 = 150 % → ceil(0.5 × 4) = 2
    assert (await c.resource_replicas(4, 300, "cpu", TOL, NS, SELECTOR))[0] == 2


async def test_missing_metrics_count_as_zero_on_scale_up(clock):
    pods = [pod(f"p{i}") for i in range(4)]
    c = calc(clock, pods, {"p0": 900, "p1": 900, "p2": 900})
    # 90 % against 50 %: p3 counts 0 → 2700/4000 = 67 % → ceil(1.34 × 4) = 6
    assert (await c.resource_replicas(4, 50, "cpu", TOL, NS, SELECTOR))[0] == 6


async def test_missing_metrics_that_flip_the_direction_change_nothing(clock):
    pods = [pod("p0"), pod("p1")]
    c = calc(clock, pods, {"p0": 600})
    # 60 % against 50 % says up, but with p1 at 0 it is 30 %: stay
    assert (await c.resource_replicas(2, 50, "cpu", TOL, NS, SELECTOR))[0] == 2


async def test_unready_pods_count_as_zero_on_scale_up(clock):
    now = clock.now()
    pods = [pod("p0", ready="False", now=now), pod("p1", now=now), pod("p2", now=now)]
    c = calc(clock, pods, {"p0": 300, "p1": 500, "p2": 700})
    # ready pods: 60 % against 30 %; with p0 at 0: 40 % → ceil(4/3 × 3) = 4 (not 6)
    replicas, utilization, raw, _ = await c.resource_replicas(3, 30, "cpu", TOL, NS, SELECTOR)
    assert (replicas, utilization, raw) == (4, 60, 600)


async def test_unready_pods_are_left_out_of_a_scale_down(clock):
    now = clock.now()
    pods = [pod("p0", ready="False", now=now), pod("p1", now=now), pod("p2", now=now)]
    c = calc(clock, pods, {"p0": 1000, "p1": 100, "p2": 100})
    # only ready pods count: 10 % against 50 % → ceil(0.2 × 2) = 1
    assert (await c.resource_replicas(3, 50, "cpu", TOL, NS, SELECTOR))[:2] == (1, 10)


async def test_cpu_initialization_period(clock):
    now = clock.now()
    # started 60 s ago, ready 20 s ago, its sample is 10 s old with a 30 s window: taken before
    # a full window of readiness — unready; the other pod started long ago
    young = pod("young", started_ago=60, ready_ago=20, now=now)
    old = pod("old", now=now)
    metrics = {"young": PodMetric(900, now - dt.timedelta(seconds=10), 30.0),
               "old": PodMetric(900, now - dt.timedelta(seconds=10), 30.0)}
    ready, unready, missing, ignored = group_pods([young, old], metrics, "cpu", 300, 30, now)
    assert (ready, unready, missing, ignored) == (1, {"young"}, set(), set())
    # a full window after it became ready, it counts
    metrics["young"] = PodMetric(900, now - dt.timedelta(seconds=10), 5.0)
    assert group_pods([young, old], metrics, "cpu", 300, 30, now)[0] == 2
    # memory is never held back
    metrics["young"] = PodMetric(900, now - dt.timedelta(seconds=10), 30.0)
    assert group_pods([young, old], metrics, "memory", 300, 30, now)[0] == 2
    # past the initialization period: unready only if it never became ready in the first 30 s
    late = pod("late", ready="False", started_ago=600, ready_ago=590, now=now)  # went unready at 10 s
    flapped = pod("flapped", ready="False", started_ago=600, ready_ago=100, now=now)  # ready once, then not
    metrics.update({"late": metrics["old"], "flapped": metrics["old"]})
    assert group_pods([late, flapped], metrics, "cpu", 300, 30, now)[:2] == (1, {"late"})
    # no Ready condition or no start time: unready
    bare = pod("bare", ready=None, now=now)
    metrics["bare"] = metrics["old"]
    assert group_pods([bare], metrics, "cpu", 300, 30, now)[1] == {"bare"}


async def test_pending_deleted_and_failed_pods(clock):
    now = clock.now()
    pods = [pod("run", now=now), pod("pending", phase="Pending", now=now), pod("failed", phase="Failed", now=now),
            pod("gone", now=now, deletionTimestamp=format_time(now))]
    metrics = {n: PodMetric(500, now - dt.timedelta(seconds=60), 30.0) for n in ("run", "failed", "gone")}
    assert group_pods(pods, metrics, "cpu", 300, 30, now) == (1, {"pending"}, set(), {"failed", "gone"})
    c = calc(clock, pods, {"run": 1000, "failed": 0, "gone": 0})
    # the ignored pods' samples are dropped; 100 % on `run` says up, but with the pending pod
    # counted at 0 it is 50 %, the target: the count stays
    assert (await c.resource_replicas(4, 50, "cpu", TOL, NS, SELECTOR))[:2] == (4, 100)
    # against 25 %: ceil(50/25 × 2 considered pods) = 4 from 1
    assert (await c.resource_replicas(1, 25, "cpu", TOL, NS, SELECTOR))[:2] == (4, 100)


async def test_errors(clock):
    c = calc(clock, [], {"p0": 100})
    with pytest.raises(MetricsError, match=r"^no pods returned by selector while calculating replica count$"):
        await c.resource_replicas(1, 50, "cpu", TOL, NS, SELECTOR)
    c = calc(clock, [pod("p0", phase="Pending")], {"p0": 100})
    with pytest.raises(MetricsError, match=r"^did not receive metrics for targeted pods \(pods might be unready\)$"):
        await c.resource_replicas(1, 50, "cpu", TOL, NS, SELECTOR)
    c = calc(clock, [pod("p0")], error="no metrics returned from resource metrics API")
    with pytest.raises(MetricsError, match=r"^unable to get metrics for resource cpu: no metrics returned from "
                                           r"resource metrics API$"):
        await c.resource_replicas(1, 50, "cpu", TOL, NS, SELECTOR)
    with pytest.raises(MetricsError, match=r"^no metrics returned matched known pods$"):
        resource_utilization_ratio({"x": PodMetric(1, clock.now(), 1)}, {"y": 1}, 50)


async def test_average_value_targets(clock):
    pods = [pod(f"p{i}") for i in range(3)]
    c = calc(clock, pods, {"p0": 300, "p1": 500, "p2": 700})
    # an average of 500m against 200m: ceil(2.5 × 3) = 8
    assert (await c.raw_resource_replicas(3, 200, "cpu", TOL, NS, SELECTOR))[:2] == (8, 500)
    # a missing pod on the way down is assumed at the target: (300+500+700+2000)/4 = 875 vs 2000 → 2
    c = calc(clock, [*pods, pod("p3")], {"p0": 300, "p1": 500, "p2": 700})
    assert (await c.raw_resource_replicas(4, 2000, "cpu", TOL, NS, SELECTOR))[:2] == (2, 500)
    # Pods metrics take the same path
    assert (await c.metric_replicas(4, 2000, "qps", TOL, NS, SELECTOR, LabelSelector()))[:2] == (2, 500)


async def test_object_and_external_targets(clock):
    pods = [pod(f"p{i}") for i in range(2)]
    c = calc(clock, pods, {"x": 3000})
    # a whole-object value of 3 against 1: ceil(3 × 2 ready pods) = 6
    assert (await c.object_metric_replicas(2, 1000, "m", TOL, NS, {"kind": "Service", "name": "s"}, SELECTOR,
                                           LabelSelector()))[:2] == (6, 3000)
    # from zero replicas: ceil(ratio)
    assert (await c.object_metric_replicas(0, 1000, "m", TOL, NS, {}, SELECTOR, LabelSelector()))[0] == 3
    # per pod: 3000 over 2 replicas against 500 each → 6; the reported average is per replica
    assert (await c.object_per_pod_metric_replicas(2, 500, "m", TOL, NS, {}, LabelSelector()))[:2] == (6, 1500)
    assert (await c.external_metric_replicas(2, 1000, "q", TOL, NS, None, SELECTOR))[:2] == (6, 3000)
    assert (await c.external_per_pod_metric_replicas(2, 1500, "q", TOL, NS, None))[:2] == (2, 1500)
    failing = calc(clock, pods, error="no custom metrics API (custom.metrics.k8s.io) registered")
    with pytest.raises(MetricsError, match=r"^unable to get metric m: Service on default s/no custom metrics API"):
        await failing.object_metric_replicas(2, 1000, "m", TOL, NS, {"kind": "Service", "name": "s"}, SELECTOR,
                                             LabelSelector())
    with pytest.raises(MetricsError, match=r"^unable to get external metric default/q/&LabelSelector\{MatchLabels:"
                                           r"map\[string\]string\{a: b,\},MatchExpressions:\[\]LabelSelectorRequirement"
                                           r"\{\},\}: no custom"):
        await failing.external_metric_replicas(2, 1000, "q", TOL, NS, {"matchLabels": {"a": "b"}}, SELECTOR)


def test_pod_metrics_from_the_api():
    ts = "2024-01-01T00:00:00Z"
    items = [
        {"metadata": {"name": "a", "namespace": NS}, "timestamp": ts, "window": "15s",
         "containers": [{"name": "app", "usage": {"cpu": "250m", "memory": "64Mi"}},
                        {"name": "side", "usage": {"cpu": "1m", "memory": "1Mi"}}]},
        {"metadata": {"name": "b", "namespace": NS}, "timestamp": ts, "window": "15s",
         "containers": [{"name": "app", "usage": {"memory": "64Mi"}}]},  # no cpu: left out
        {"metadata": {"name": "c", "namespace": NS}, "timestamp": ts, "window": "15s", "containers": []},
    ]
    info = pod_metrics_info(items, "cpu")
    assert list(info) == ["a"] and info["a"].value == 251 and info["a"].window == 15.0
    assert pod_metrics_info(items[:1], "cpu", "side")["a"].value == 1
    with pytest.raises(MetricsError, match=r"^container side not present in metrics for pod default/b$"):
        pod_metrics_info(items[:2], "cpu", "side")


# -- stabilization and limits without spec.behavior -----------------------------------------


def test_rules_limit_the_count():
    assert convert_desired_replicas_with_rules(1, 10, 1, 20) == (
        4, "ScaleUpLimit", "the desired replica count is increasing faster than the maximum scale rate")
    assert convert_desired_replicas_with_rules(5, 12, 1, 8) == (
        8, "TooManyReplicas", "the desired replica count is more than the maximum replica count")
    assert convert_desired_replicas_with_rules(5, 0, 2, 8) == (
        2, "TooFewReplicas", "the desired replica count is less than the minimum replica count")
    assert convert_desired_replicas_with_rules(5, 7, 2, 8) == (
        7, "DesiredWithinRange", "the desired count is within the acceptable range")


def test_downscale_stabilization_window(clock):
    h = ScaleHistory(clock, downscale_stabilization=300)
    h.record_initial_recommendation("ns/h", 5)
    replicas, conds = h.normalize("ns/h", 5, 2, 1, 10)
    assert replicas == 5
    assert conds == [("AbleToScale", "True", "ScaleDownStabilized", "recent recommendations were higher than "
                      "current one, applying the highest recent recommendation"),
                     ("ScalingLimited", "False", "DesiredWithinRange", "the desired count is within the acceptable range")]
    clock.step(200)
    assert h.normalize("ns/h", 5, 3, 1, 10)[0] == 5  # the initial 5 is still in the window
    clock.step(101)
    # the initial 5 expired; 2 (200 s old) and 3 remain: the highest wins
    replicas, conds = h.normalize("ns/h", 5, 1, 1, 10)
    assert replicas == 3 and conds[0][2] == "ScaleDownStabilized"
    clock.step(300)
    replicas, conds = h.normalize("ns/h", 5, 1, 1, 10)
    assert replicas == 1 and conds[0] == ("AbleToScale", "True", "ReadyForNewScale",
                                          "recommended size matches current size")
    # scaling up is never held back by the window, only limited in size
    replicas, conds = h.normalize("ns/h", 1, 9, 1, 10)
    assert replicas == 4 and conds[1][:3] == ("ScalingLimited", "True", "ScaleUpLimit")
    assert len(h.recommendations["ns/h"]) <= 4  # expired samples are reused, not appended


# -- spec.behavior -----------------------------------------------------------------------------


def behavior(up: dict | None = None, down: dict | None = None) -> dict:
    b = {}
    if up is not None:
        b["scaleUp"] = up
    if down is not None:
        b["scaleDown"] = down
    return behavior_with_defaults(b, 300)


def test_behavior_defaults():
    b = behavior_with_defaults({}, 300)
    assert b == {"scaleUp": {"stabilizationWindowSeconds": 0, "selectPolicy": "Max",
                             "policies": [{"type": "Pods", "value": 4, "periodSeconds": 15},
                                          {"type": "Percent", "value": 100, "periodSeconds": 15}]},
                 "scaleDown": {"stabilizationWindowSeconds": 300, "selectPolicy": "Max",
                               "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}]}}
    b = behavior_with_defaults({"scaleDown": {"stabilizationWindowSeconds": 10, "selectPolicy": "Min"}}, 300)
    assert b["scaleDown"]["stabilizationWindowSeconds"] == 10 and b["scaleDown"]["selectPolicy"] == "Min"
    assert b["scaleDown"]["policies"] == [{"type": "Percent", "value": 100, "periodSeconds": 15}]
    assert behavior_with_defaults(None, 300) is None


@pytest.mark.parametrize(("select", "expected"), [("Max", 6), ("Min", 4), ("Disabled", 2)])
def test_scale_up_policies(clock, select, expected):
    h = ScaleHistory(clock)
    b = behavior(up={"selectPolicy": select, "policies": [{"type": "Pods", "value": 4, "periodSeconds": 60},
                                                          {"type": "Percent", "value": 100, "periodSeconds": 60}]})
    replicas, conds = h.normalize_with_behaviors("ns/h", 2, 20, 1, 30, b)
    assert replicas == expected
    assert conds[1] == ("ScalingLimited", "True", "ScaleUpLimit",
                        "the desired replica count is increasing faster than the maximum scale rate")


def test_scale_events_count_against_the_period(clock):
    h = ScaleHistory(clock)
    b = behavior(up={"policies": [{"type": "Pods", "value": 4, "periodSeconds": 60}]})
    assert h.normalize_with_behaviors("ns/h", 2, 20, 1, 30, b)[0] == 6
    h.store_scale_event(b, "ns/h", 2, 6)
    clock.step(10)
    # 4 pods were added 10 s ago: the period started at 2, so 6 is all that is allowed
    assert h.normalize_with_behaviors("ns/h", 6, 20, 1, 30, b)[0] == 6
    clock.step(51)
    assert h.normalize_with_behaviors("ns/h", 6, 20, 1, 30, b)[0] == 10
    h.store_scale_event(b, "ns/h", 6, 10)
    assert [e.change for e in h.scale_up_events["ns/h"]] == [4]  # the outdated event was reused
    clock.step(1)
    h.store_scale_event(b, "ns/h", 10, 12)
    assert [e.change for e in h.scale_up_events["ns/h"]] == [4, 2]
    # a scale-down in the period is given back to the period's start
    b2 = behavior(down={"stabilizationWindowSeconds": 0,
                        "policies": [{"type": "Percent", "value": 50, "periodSeconds": 60}]})
    h2 = ScaleHistory(clock)
    replicas, conds = h2.normalize_with_behaviors("ns/x", 10, 1, 1, 30, b2)
    assert replicas == 5 and conds[1][2] == "ScaleDownLimit"
    h2.store_scale_event(b2, "ns/x", 10, 5)
    clock.step(5)
    assert h2.normalize_with_behaviors("ns/x", 5, 1, 1, 30, b2)[0] == 5  # 50 % of 10 already gone
    clock.step(60)
    assert h2.normalize_with_behaviors("ns/x", 5, 1, 1, 30, b2)[0] == 2  # int(5 × 0.5)


def test_behavior_limits_min_and_max(clock):
    h = ScaleHistory(clock)
    b = behavior(down={"stabilizationWindowSeconds": 0})
    assert h.normalize_with_behaviors("ns/h", 5, 40, 1, 8, b) == (8, [
        ("AbleToScale", "True", "ReadyForNewScale", "recommended size matches current size"),
        ("ScalingLimited", "True", "TooManyReplicas", "the desired replica count is more than the maximum replica count")])
    replicas, conds = h.normalize_with_behaviors("ns/h", 5, 1, 3, 8, b)
    assert replicas == 3 and conds[1][2] == "TooFewReplicas"
    replicas, conds = h.normalize_with_behaviors("ns/h", 5, 6, 3, 8, b)
    assert replicas == 6 and conds[1] == ("ScalingLimited", "False", "DesiredWithinRange",
                                          "the desired count is within the acceptable range")


def test_behavior_stabilization_windows(clock):
    h = ScaleHistory(clock)
    b = behavior(up={"stabilizationWindowSeconds": 60}, down={"stabilizationWindowSeconds": 120})
    h.record_initial_recommendation("ns/h", 10)
    # down: the highest recommendation of the last 120 s (10) holds
    replicas, conds = h.normalize_with_behaviors("ns/h", 10, 3, 1, 30, b)
    assert replicas == 10 and conds[0] == ("AbleToScale", "True", "ScaleDownStabilized",
                                           "recent recommendations were higher than current one, applying the "
                                           "highest recent recommendation")
    clock.step(121)
    assert h.normalize_with_behaviors("ns/h", 10, 3, 1, 30, b)[0] == 3
    # up: the lowest recommendation of the last 60 s (3, just now) holds
    replicas, conds = h.normalize_with_behaviors("ns/h", 3, 12, 1, 30, b)
    assert replicas == 3 and conds[0][2] == "ScaleUpStabilized"
    assert conds[0][3] == "recent recommendations were lower than current one, applying the lowest recent recommendation"
    clock.step(61)
    assert h.normalize_with_behaviors("ns/h", 3, 12, 1, 30, b)[0] == 7  # 3 + 4 pods / 15 s (default policy: max)
