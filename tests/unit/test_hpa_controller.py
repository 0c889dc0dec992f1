"""The horizontal pod autoscaler controller against the in-memory API of tests/unit/cm_fakes.py
(with /scale, label-selected lists and metrics.k8s.io PodMetrics added here)."""

from __future__ import annotations

import copy
import datetime as dt

import pytest

from apimachinery.meta import format_time
from apimachinery.selectors import parse_label_selector, selector_from_label_selector
from client import ApiError, ResourceInfo
from controller_manager.podautoscaler import FixedIntervalRateLimiter, HorizontalController, ReconcileError
from tests.unit.cm_fakes import FakeAPI, FakeResource, default_served, make_context

NS = "default"
HPA = ("autoscaling/v2", "horizontalpodautoscalers")


class ScaleResource(FakeResource):
    """FakeResource plus label-selected lists and the /scale subresource of workloads."""

    async def list(self, namespace=None, label_selector=None, **kw):
        out = await super().list(namespace, **kw)
        sel = parse_label_selector(label_selector or "")
        out["items"] = [o for o in out["items"] if sel.matches(o["metadata"].get("labels") or {})]
        return out

    async def get_subresource(self, name, subresource, namespace=None, params=None):
        if subresource != "scale":
            return await super().get_subresource(name, subresource, namespace, params)
        self.api._fail("get_subresource", self.plural)
        cur = self._current(name, namespace)
        selector = selector_from_label_selector((cur.get("spec") or {}).get("selector"))
        return {"kind": "Scale", "apiVersion": "autoscaling/v1",
                "metadata": {"name": name, "namespace": namespace, "uid": cur["metadata"]["uid"],
                             "resourceVersion": cur["metadata"]["resourceVersion"]},
                "spec": {"replicas": (cur.get("spec") or {}).get("replicas", 0)},
                "status": {"replicas": (cur.get("status") or {}).get("replicas", 0), "selector": str(selector)}}

    async def update_subresource(self, name, subresource, body, namespace=None):
        if subresource != "scale":
            return await super().update_subresource(name, subresource, body, namespace)
        self.api._fail("update_subresource", self.plural)
        cur = self._current(name, namespace)
        self._check_rv(cur, (body.get("metadata") or {}).get("resourceVersion"))
        self.api.actions.append(("update_subresource", self.plural, namespace, name, subresource,
                                 copy.deepcopy(body)))
        new = copy.deepcopy(cur)
        new["spec"]["replicas"] = body["spec"]["replicas"]
        return self._store(new)


class HPAFakeAPI(FakeAPI):
    def __init__(self, clock=None) -> None:
        served = [*default_served(), ResourceInfo("metrics.k8s.io/v1beta1", "pods", "PodMetrics", True, ("get", "list")),
                  ResourceInfo("example.com/v1", "widgets", "Widget", True, ("get", "list"))]
        super().__init__(clock, served)

    def resource(self, api_version: str, plural: str) -> ScaleResource:
        return ScaleResource(self, api_version, plural)


@pytest.fixture
def env():
    api = HPAFakeAPI()
    ctx = make_context(api, horizontal_pod_autoscaler_sync_period=15.0)
    return api, ctx, HorizontalController(ctx)


def deployment(api: HPAFakeAPI, replicas: int, name: str = "web", selector: dict | None = None) -> None:
    sel = {"matchLabels": {"app": name}} if selector is None else selector
    api.seed("apps/v1", "deployments", {"metadata": {"name": name, "namespace": NS, "generation": 1},
                                        "spec": {"replicas": replicas, "selector": sel or None},
                                        "status": {"replicas": replicas}})


def pods(api: HPAFakeAPI, usage_milli: list[int], app: str = "web", request: str = "1") -> None:
    """Running, Ready pods (started an hour ago) with `request` cpu each, and their PodMetrics."""
    now = api.clock.now()
    hour_ago = format_time(now - dt.timedelta(hours=1))
    for i, used in enumerate(usage_milli):
        name = f"{app}-{i}"
        api.seed("v1", "pods", {
            "metadata": {"name": name, "namespace": NS, "labels": {"app": app}},
            "spec": {"containers": [{"name": "app", "resources": {"requests": {"cpu": request}}}]},
            "status": {"phase": "Running", "startTime": hour_ago,
                       "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": hour_ago}]}})
        set_usage(api, name, used, app)


def set_usage(api: HPAFakeAPI, name: str, used: int, app: str = "web") -> None:
    api.seed("metrics.k8s.io/v1beta1", "pods", {
        "kind": "PodMetrics", "apiVersion": "metrics.k8s.io/v1beta1",
        "metadata": {"name": name, "namespace": NS, "labels": {"app": app}},
        "timestamp": format_time(api.clock.now() - dt.timedelta(seconds=5)), "window": "15s",
        "containers": [{"name": "app", "usage": {"cpu": f"{used}m", "memory": "10Mi"}}]})


def cpu(utilization: int) -> list[dict]:
    return [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization",
                                                                        "averageUtilization": utilization}}}]


def hpa(api: HPAFakeAPI, name: str = "web", target: str = "web", min_replicas: int = 1, max_replicas: int = 10,
        metrics: list | None = None, behavior: dict | None = None, kind: str = "Deployment",
        api_version: str = "apps/v1") -> None:
    spec = {"scaleTargetRef": {"apiVersion": api_version, "kind": kind, "name": target},
            "minReplicas": min_replicas, "maxReplicas": max_replicas,
            "metrics": metrics or cpu(50)}
    if behavior is not None:
        spec["behavior"] = behavior
    api.seed(*HPA, {"metadata": {"name": name, "namespace": NS, "generation": 2}, "spec": spec})


def status(api: HPAFakeAPI, name: str = "web") -> dict:
    return api.get_obj(*HPA, NS, name).get("status") or {}


def conditions(api: HPAFakeAPI, name: str = "web") -> dict[str, tuple[str, str, str]]:
    return {c["type"]: (c["status"], c["reason"], c["message"]) for c in status(api, name).get("conditions", [])}


def replicas(api: HPAFakeAPI, name: str = "web") -> int:
    return api.get_obj("apps/v1", "deployments", NS, name)["spec"]["replicas"]


def events(ctx) -> list[tuple[str, str, str]]:
    return [(e[2], e[3], e[4]) for e in ctx.events]


async def test_scales_up_on_cpu_utilization(env):
    api, ctx, c = env
    deployment(api, 2)
    pods(api, [900, 900])
    hpa(api)
    await c.sync(f"{NS}/web")
    # 90 % against 50 %: ceil(1.8 × 2) = 4
    assert replicas(api) == 4
    st = status(api)
    assert st["currentReplicas"] == 2 and st["desiredReplicas"] == 4 and st["observedGeneration"] == 2
    assert st["lastScaleTime"] == format_time(ctx.clock.now())
    assert st["currentMetrics"] == [{"type": "Resource", "resource": {
        "name": "cpu", "current": {"averageValue": "900m", "averageUtilization": 90}}}]
    assert conditions(api) == {
        "AbleToScale": ("True", "SucceededRescale", "the HPA controller was able to update the target scale to 4"),
        "ScalingActive": ("True", "ValidMetricFound", "the HPA was able to successfully calculate a replica count "
                                                      "from cpu resource utilization (percentage of request)"),
        "ScalingLimited": ("False", "DesiredWithinRange", "the desired count is within the acceptable range"),
    }
    assert [c["type"] for c in st["conditions"]] == ["AbleToScale", "ScalingActive", "ScalingLimited"]
    assert events(ctx) == [("Normal", "SuccessfulRescale",
                            "New size: 4; reason: cpu resource utilization (percentage of request) above target")]
    scale_write = api.writes("update_subresource")[0]
    assert scale_write[4] == "scale" and scale_write[5]["spec"]["replicas"] == 4


async def test_max_replicas_and_the_scale_up_limit(env):
    api, _, c = env
    deployment(api, 2)
    pods(api, [1000, 1000])
    hpa(api, max_replicas=3, metrics=cpu(10))
    await c.sync(f"{NS}/web")
    assert replicas(api) == 3
    assert conditions(api)["ScalingLimited"] == (
        "True", "TooManyReplicas", "the desired replica count is more than the maximum replica count")
    assert status(api)["desiredReplicas"] == 3
    # without a low maxReplicas: at most max(2 × current, 4) at once
    api2 = HPAFakeAPI()
    c2 = HorizontalController(make_context(api2))
    deployment(api2, 3)
    pods(api2, [1000, 1000, 1000])
    hpa(api2, max_replicas=100, metrics=cpu(10))
    await c2.sync(f"{NS}/web")
    assert replicas(api2) == 6
    assert conditions(api2)["ScalingLimited"][:2] == ("True", "ScaleUpLimit")


async def test_scale_down_waits_for_the_stabilization_window(env):
    api, ctx, c = env
    deployment(api, 4)
    pods(api, [100, 100, 100, 100])
    hpa(api)
    await c.sync(f"{NS}/web")
    # 10 % against 50 % says 1, but the first recommendation (the current 4) is in the window
    assert replicas(api) == 4 and not api.writes("update_subresource")
    assert conditions(api)["AbleToScale"] == (
        "True", "ScaleDownStabilized",
        "recent recommendations were higher than current one, applying the highest recent recommendation")
    st = status(api)
    assert st["desiredReplicas"] == 4 and "lastScaleTime" not in st
    ctx.clock.step(301)
    await c.sync(f"{NS}/web")
    assert replicas(api) == 1
    assert events(ctx)[-1] == ("Normal", "SuccessfulRescale", "New size: 1; reason: All metrics below target")
    assert conditions(api)["AbleToScale"][1] == "SucceededRescale"


async def test_status_is_written_only_when_it_changes(env):
    api, ctx, c = env
    deployment(api, 2)
    pods(api, [500, 520])
    hpa(api)
    await c.sync(f"{NS}/web")
    assert replicas(api) == 2  # 51 % against 50 %: within the tolerance
    assert conditions(api)["AbleToScale"][1] == "ReadyForNewScale"
    assert len(api.writes("update_status")) == 1
    ctx.clock.step(15)
    await c.sync(f"{NS}/web")
    assert len(api.writes("update_status")) == 1
    set_usage(api, "web-1", 600)
    await c.sync(f"{NS}/web")
    assert len(api.writes("update_status")) == 2
    assert status(api)["currentMetrics"][0]["resource"]["current"] == {"averageValue": "550m",
                                                                       "averageUtilization": 55}


async def test_missing_resource_metrics(env):
    api, ctx, c = env
    deployment(api, 2)
    pods(api, [500, 500])
    api.table("metrics.k8s.io/v1beta1", "pods").clear()  # the pods have no metrics (yet)
    hpa(api)
    with pytest.raises(ReconcileError, match="failed to compute desired number of replicas"):
        await c.sync(f"{NS}/web")
    error = "failed to get cpu utilization: unable to get metrics for resource cpu: no metrics returned from resource metrics API"
    assert conditions(api)["ScalingActive"] == ("False", "FailedGetResourceMetric",
                                                f"the HPA was unable to compute the replica count: {error}")
    assert conditions(api)["AbleToScale"][1] == "SucceededGetScale"
    assert events(ctx) == [
        ("Warning", "FailedGetResourceMetric", error),
        ("Warning", "FailedComputeMetricsReplicas",
         f"invalid metrics (1 invalid out of 1), first error is: failed to get cpu resource metric value: {error}")]
    st = status(api)
    assert st["currentReplicas"] == 2 and st["currentMetrics"] == [{"type": ""}]  # upstream keeps the slot
    assert replicas(api) == 2


async def test_custom_metrics_are_not_served(env):
    api, ctx, c = env
    deployment(api, 2)
    pods(api, [900, 900])
    pods_metric = {"type": "Pods", "pods": {"metric": {"name": "qps"},
                                            "target": {"type": "AverageValue", "averageValue": "10"}}}
    hpa(api, metrics=[pods_metric])
    with pytest.raises(ReconcileError):
        await c.sync(f"{NS}/web")
    error = ("unable to get metric qps: unable to fetch metrics from custom metrics API: no custom metrics API "
             "(custom.metrics.k8s.io) registered")
    assert conditions(api)["ScalingActive"] == ("False", "FailedGetPodsMetric",
                                                f"the HPA was unable to compute the replica count: {error}")
    assert ("Warning", "FailedGetPodsMetric", error) in events(ctx)
    # with a working CPU metric next to it, the HPA scales on that and reports the other afterwards
    ctx.events.clear()
    hpa_obj = api.get_obj(*HPA, NS, "web")
    hpa_obj["spec"]["metrics"] = [pods_metric, *cpu(50)]
    c.hpas.store.put(copy.deepcopy(hpa_obj))
    with pytest.raises(ReconcileError, match=r"^invalid metrics \(1 invalid out of 2\), first error is: failed to get "
                                             r"pods metric value: unable to get metric qps"):
        await c.sync(f"{NS}/web")
    assert replicas(api) == 4
    assert conditions(api)["ScalingActive"][:2] == ("True", "ValidMetricFound")
    assert status(api)["currentMetrics"][0] == {"type": ""}
    assert status(api)["currentMetrics"][1]["type"] == "Resource"


async def test_external_and_object_metrics_fail_with_upstreams_messages(env):
    api, ctx, c = env
    deployment(api, 2)
    pods(api, [900, 900])
    hpa(api, metrics=[{"type": "External", "external": {"metric": {"name": "queue"},
                                                        "target": {"type": "Value", "value": "10"}}}])
    with pytest.raises(ReconcileError):
        await c.sync(f"{NS}/web")
    error = ("unable to get external metric default/queue/nil: unable to fetch metrics from external metrics API: "
             "the server could not find the requested resource (get queue.external.metrics.k8s.io)")
    assert conditions(api)["ScalingActive"] == ("False", "FailedGetExternalMetric",
                                                f"the HPA was unable to compute the replica count: {error}")
    assert events(ctx)[-1][2] == ("invalid metrics (1 invalid out of 1), first error is: failed to get queue "
                                  f"external metric value: failed to get external metric queue: {error}")


async def test_scale_target_errors(env):
    api, ctx, c = env
    hpa(api, target="nope")
    with pytest.raises(ReconcileError, match="failed to query scale subresource for Deployment/default/nope"):
        await c.sync(f"{NS}/web")
    assert conditions(api) == {"AbleToScale": (
        "False", "FailedGetScale", "the HPA controller was unable to get the target's current scale: "
                                   'deployments "nope" not found')}
    assert events(ctx) == [("Warning", "FailedGetScale", 'deployments "nope" not found')]
    hpa(api, name="widget", kind="Gadget", api_version="example.com/v1")
    with pytest.raises(ReconcileError):
        await c.sync(f"{NS}/widget")
    assert conditions(api, "widget")["AbleToScale"][2] == ("the HPA controller was unable to get the target's "
                                                           'current scale: no matches for kind "Gadget" in group '
                                                           '"example.com"')
    api.errors[("get_subresource", "deployments")] = ApiError(500, "InternalError", "etcd is down")
    deployment(api, 2)
    with pytest.raises(ReconcileError):
        await c.sync(f"{NS}/web")
    assert conditions(api)["AbleToScale"][2].endswith("current scale: etcd is down")


async def test_bounds_come_before_metrics(env):
    api, ctx, c = env
    deployment(api, 0)
    hpa(api)
    await c.sync(f"{NS}/web")
    assert conditions(api)["ScalingActive"] == ("False", "ScalingDisabled",
                                                "scaling is disabled since the replica count of the target is zero")
    assert not api.writes("update_subresource") and status(api)["desiredReplicas"] == 0
    # above maxReplicas: straight to the maximum, metrics unread (there are none)
    deployment(api, 12)
    await c.sync(f"{NS}/web")
    assert replicas(api) == 10
    assert events(ctx)[-1] == ("Normal", "SuccessfulRescale",
                               "New size: 10; reason: Current number of replicas above Spec.MaxReplicas")
    deployment(api, 1)
    hpa(api, min_replicas=3)
    await c.sync(f"{NS}/web")
    assert replicas(api) == 3
    assert events(ctx)[-1][2] == "New size: 3; reason: Current number of replicas below Spec.MinReplicas"


async def test_selector_problems(env):
    api, ctx, c = env
    deployment(api, 2, selector={})  # the scale has no selector
    hpa(api)
    with pytest.raises(ReconcileError, match="selector is required"):
        await c.sync(f"{NS}/web")
    assert conditions(api)["ScalingActive"] == ("False", "InvalidSelector", "the HPA target's scale is missing a selector")
    assert ("Warning", "SelectorRequired", "selector is required") in events(ctx)
    # two HPAs over the same pods
    deployment(api, 2)
    pods(api, [500, 500])
    hpa(api, name="other")
    await c.sync(f"{NS}/web")
    with pytest.raises(ReconcileError):
        await c.sync(f"{NS}/other")
    message = "pods by selector app=web are controlled by multiple HPAs: [default/other default/web]"
    assert conditions(api, "other")["ScalingActive"] == ("False", "AmbiguousSelector", message)
    assert ("Warning", "AmbiguousSelector", message) in events(ctx)


async def test_behavior_policies_and_disabled_scale_down(env):
    api, ctx, c = env
    deployment(api, 2)
    pods(api, [1000, 1000])
    behavior = {"scaleUp": {"policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}]},
                "scaleDown": {"selectPolicy": "Disabled"}}
    hpa(api, metrics=cpu(20), behavior=behavior)
    await c.sync(f"{NS}/web")
    assert replicas(api) == 3
    assert conditions(api)["ScalingLimited"][:2] == ("True", "ScaleUpLimit")
    ctx.clock.step(30)
    deployment(api, 3)
    await c.sync(f"{NS}/web")
    assert replicas(api) == 3  # one pod per minute: the period's pod is used
    ctx.clock.step(31)
    await c.sync(f"{NS}/web")
    assert replicas(api) == 4
    # no scale-down, however idle
    deployment(api, 4)
    for i in range(2):
        set_usage(api, f"web-{i}", 1)
    ctx.clock.step(600)
    await c.sync(f"{NS}/web")
    assert replicas(api) == 4
    assert conditions(api)["ScalingLimited"][:2] == ("True", "ScaleDownLimit")


async def test_failed_rescale(env):
    api, ctx, c = env
    deployment(api, 2)
    pods(api, [900, 900])
    hpa(api)
    api.errors[("update_subresource", "deployments")] = ApiError(409, "Conflict", "the object has been modified")
    with pytest.raises(ReconcileError, match="failed to rescale Deployment/default/web"):
        await c.sync(f"{NS}/web")
    assert conditions(api)["AbleToScale"] == ("False", "FailedUpdateScale", "the HPA controller was unable to "
                                              "update the target scale: the object has been modified")
    assert events(ctx)[-1] == ("Warning", "FailedRescale", "New size: 4; reason: cpu resource utilization "
                               "(percentage of request) above target; error: the object has been modified")
    assert status(api)["currentReplicas"] == 2 and "lastScaleTime" not in status(api)


async def test_deleted_hpa_is_forgotten_and_keys_wait_a_sync_period(env):
    api, _, c = env
    deployment(api, 2)
    pods(api, [900, 900])
    hpa(api)
    # added HPAs wait one sync period in the queue (upstream's fixed-interval rate limiter)
    assert len(c.queue) == 0 and f"{NS}/web" in c.queue._waiting_at
    await c.sync(f"{NS}/web")
    assert c.history.recommendations.get(f"{NS}/web")
    api.resource(*HPA)._remove(api.get_obj(*HPA, NS, "web"))
    await c.sync(f"{NS}/web")
    assert f"{NS}/web" not in c.history.recommendations and f"{NS}/web" not in c.selectors
    assert FixedIntervalRateLimiter(15.0).when("x") == 15.0


def test_tolerances_from_behavior(env):
    _, _, c = env
    assert c.tolerances(None) == c.tolerances({}) == c.tolerances({"scaleUp": {"tolerance": None}})
    t = c.tolerances({"scaleUp": {"tolerance": "50m"}, "scaleDown": {"tolerance": "0.5"}})
    assert (t.scale_up, t.scale_down) == (0.05, 0.5)
