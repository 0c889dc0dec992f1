"""The horizontal pod autoscaler's replica calculator and metrics clients (upstream
pkg/controller/podautoscaler/replica_calculator.go and metrics/).

Everything here answers one question — how many replicas would bring a metric to its target —
the way upstream does, with upstream's error texts (they end up in the HPA's conditions and
events):

* Resource metrics come from metrics.k8s.io PodMetrics (what the apiserver serves itself, see
  apiserver/metricsapi.py): a pod's value is the sum of its containers' usage (a pod with a
  container lacking the resource is left out), or one container's for ContainerResource.
* Pods are grouped as upstream's groupPods does: deleted and Failed pods are ignored, Pending
  ones are unready, pods without a metric are missing, and for CPU a pod is unready while it is
  not Ready, or within --horizontal-pod-autoscaler-cpu-initialization-period of its start until
  one metric window has passed since it became Ready (after that period: only when it never
  became ready within --horizontal-pod-autoscaler-initial-readiness-delay).
* Utilization is the sum of usage over the sum of requests (containers plus restartable init
  containers, or the pod-level request), in whole percent; the usage ratio is utilization over
  target. Within the tolerance nothing changes; otherwise ceil(ratio × ready pods). With missing
  or unready pods the ratio is computed again treating missing pods as 0 % on a scale-up and 100 %
  (or the target, when above 100 %) on a scale-down, unready pods as 0 % on a scale-up; if that
  flips the direction or lands within the tolerance the count stays as it is.
* Pods, Object and External metrics come from custom.metrics.k8s.io / external.metrics.k8s.io:
  without an adapter serving them, they fail with upstream's messages.

Values are milli-units (int), as upstream's MilliValue().
"""

from __future__ import annotations

import datetime as dt
import math
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from apimachinery.duration import parse_duration
from apimachinery.meta import parse_time
from apimachinery.podutil import sidecars
from apimachinery.quantity import QuantityError, milli_value
from apimachinery.selectors import LabelSelector, LabelSelectorError, selector_from_label_selector
from client import APIClient, APIConnectionError, ApiError, is_not_found
from controller_manager.base import Clock
from controller_manager.podutil import is_pod_ready, pod_condition

Obj = dict[str, Any]

MAX_INT32 = 2**31 - 1
MIN_INT32 = -(2**31)
#: metrics-server's default window, used for custom metrics that give none (upstream's default)
DEFAULT_METRIC_WINDOW = 60.0
CUSTOM_METRICS_GROUP = "custom.metrics.k8s.io"
CUSTOM_METRICS_VERSION = "custom.metrics.k8s.io/v1beta2"
EXTERNAL_METRICS_VERSION = "external.metrics.k8s.io/v1beta1"
_EPOCH = dt.datetime(1, 1, 1, tzinfo=dt.UTC)  # Go's zero time


class MetricsError(Exception):
    """A failure computing a metric; its text is what upstream puts in conditions and events."""


@dataclass(frozen=True)
class PodMetric:
    value: int  # milli-units
    timestamp: dt.datetime
    window: float  # seconds


PodMetricsInfo = dict[str, PodMetric]


@dataclass(frozen=True)
class Tolerances:
    """How far below / above 1.0 the usage ratio may be before the count changes."""

    scale_down: float = 0.1
    scale_up: float = 0.1

    def within(self, ratio: float) -> bool:
        return 1.0 - self.scale_down <= ratio <= 1.0 + self.scale_up


def _ceil_int32(x: float) -> int:
    """int32(math.Ceil(x)), clamped (upstream clamps where overflow is possible)."""
    if math.isnan(x):
        return 0
    if x >= MAX_INT32:
        return MAX_INT32
    if x <= MIN_INT32:
        return MIN_INT32
    return math.ceil(x)


def _div_trunc(a: int, b: int) -> int:
    """Go's integer division (truncates toward zero)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def _time(value: Any) -> dt.datetime:
    try:
        return parse_time(value) if value else _EPOCH
    except (TypeError, ValueError):
        return _EPOCH


def _window(value: Any) -> float:
    try:
        return parse_duration(value) / 1e9 if value else 0.0
    except ValueError:
        return 0.0


# -- metrics ---------------------------------------------------------------------------------


def pod_metrics_info(items: list[Obj], resource: str, container: str = "") -> PodMetricsInfo:
    """PodMetrics items → {pod: metric} (upstream getPodMetrics / getContainerMetrics)."""
    out: PodMetricsInfo = {}
    for m in items:
        meta = m.get("metadata") or {}
        name = meta.get("name", "")
        ts, window = _time(m.get("timestamp")), _window(m.get("window"))
        containers = m.get("containers") or []
        if container:
            found = next((c for c in containers if c.get("name") == container), None)
            if found is None:
                raise MetricsError(f"container {container} not present in metrics for pod "
                                   f"{meta.get('namespace', '')}/{name}")
            usage = (found.get("usage") or {}).get(resource)
            if usage is not None:
                out[name] = PodMetric(milli_value(usage), ts, window)
            continue
        total, missing = 0, not containers
        for c in containers:
            usage = (c.get("usage") or {}).get(resource)
            if usage is None:
                missing = True
                break
            total += milli_value(usage)
        if not missing:
            out[name] = PodMetric(total, ts, window)
    return out


class MetricsClient(Protocol):
    """Where the calculator gets its numbers (upstream's MetricsClient interface)."""

    async def resource_metric(self, resource: str, namespace: str, selector: LabelSelector,
                              container: str) -> tuple[PodMetricsInfo, dt.datetime]: ...

    async def raw_metric(self, name: str, namespace: str, selector: LabelSelector,
                         metric_selector: LabelSelector) -> tuple[PodMetricsInfo, dt.datetime]: ...

    async def object_metric(self, name: str, namespace: str, object_ref: Obj,
                            metric_selector: LabelSelector) -> tuple[int, dt.datetime]: ...

    async def external_metric(self, name: str, namespace: str,
                              selector: LabelSelector) -> tuple[list[int], dt.datetime]: ...


def _api_message(e: Exception) -> str:
    return e.message if isinstance(e, ApiError) else str(e)


class RESTMetricsClient:
    """MetricsClient over the apiserver: metrics.k8s.io, custom.metrics.k8s.io, external.metrics.k8s.io."""

    #: how long the answer to "is a custom metrics API registered?" is kept (upstream's cached
    #: discovery is reset once per resync period)
    DISCOVERY_TTL = 60.0

    def __init__(self, client: APIClient) -> None:
        self.client = client
        self._custom_metrics: tuple[float, bool] | None = None  # (monotonic time asked, served?)

    async def resource_metric(self, resource: str, namespace: str, selector: LabelSelector,
                              container: str) -> tuple[PodMetricsInfo, dt.datetime]:
        try:
            listed = await self.client.resource("metrics.k8s.io/v1beta1", "pods").list(
                namespace, label_selector=str(selector) or None)
        except (ApiError, APIConnectionError) as e:
            raise MetricsError(f"unable to fetch metrics from resource metrics API: {_api_message(e)}") from None
        items = listed.get("items") or []
        if not items:
            raise MetricsError("no metrics returned from resource metrics API")
        try:
            info = pod_metrics_info(items, resource, container)
        except MetricsError as e:
            raise MetricsError(f"failed to get container metrics: {e}") from None
        return info, _time(items[0].get("timestamp"))

    async def _custom_metrics_served(self) -> None:
        now = time.monotonic()
        if self._custom_metrics is None or now - self._custom_metrics[0] > self.DISCOVERY_TTL:
            groups = await self.client.request("GET", "/apis")
            served = any(g.get("name") == CUSTOM_METRICS_GROUP for g in groups.get("groups") or [])
            self._custom_metrics = (now, served)
        if not self._custom_metrics[1]:
            raise MetricsError(f"no custom metrics API ({CUSTOM_METRICS_GROUP}) registered")

    async def _get(self, path: str, params: Mapping[str, str], what: str) -> Obj:
        try:
            return await self.client.request("GET", path, {k: v for k, v in params.items() if v} or None)
        except ApiError as e:
            if is_not_found(e):
                raise MetricsError(f"the server could not find the requested resource (get {what})") from None
            raise MetricsError(e.message) from None
        except APIConnectionError as e:
            raise MetricsError(str(e)) from None

    async def raw_metric(self, name: str, namespace: str, selector: LabelSelector,
                         metric_selector: LabelSelector) -> tuple[PodMetricsInfo, dt.datetime]:
        try:
            await self._custom_metrics_served()
            listed = await self._get(
                f"/apis/{CUSTOM_METRICS_VERSION}/namespaces/{urllib.parse.quote(namespace)}/pods/*/"
                f"{urllib.parse.quote(name)}",
                {"labelSelector": str(selector), "metricLabelSelector": str(metric_selector)},
                f"pods.{CUSTOM_METRICS_GROUP} *")
        except (MetricsError, ApiError, APIConnectionError) as e:
            raise MetricsError(f"unable to fetch metrics from custom metrics API: {_api_message(e)}") from None
        items = listed.get("items") or []
        if not items:
            raise MetricsError("no metrics returned from custom metrics API")
        out: PodMetricsInfo = {}
        for m in items:
            seconds = m.get("windowSeconds")
            window = float(seconds) if seconds is not None else DEFAULT_METRIC_WINDOW
            pod = (m.get("describedObject") or {}).get("name", "")
            out[pod] = PodMetric(milli_value(m.get("value", "0")), _time(m.get("timestamp")), window)
        return out, _time(items[0].get("timestamp"))

    async def object_metric(self, name: str, namespace: str, object_ref: Obj,
                            metric_selector: LabelSelector) -> tuple[int, dt.datetime]:
        api_version, kind = object_ref.get("apiVersion", ""), object_ref.get("kind", "")
        ns = urllib.parse.quote(namespace)
        try:
            await self._custom_metrics_served()
            if kind == "Namespace" and "/" not in api_version:
                path, what = f"/apis/{CUSTOM_METRICS_VERSION}/namespaces/{ns}/metrics/{name}", "namespaces"
            else:
                info = await self.client.discovery.resolve_kind(api_version, kind)
                group = info.group
                plural = f"{info.plural}.{group}" if group else info.plural
                path = (f"/apis/{CUSTOM_METRICS_VERSION}/namespaces/{ns}/{plural}/"
                        f"{urllib.parse.quote(object_ref.get('name', ''))}/{urllib.parse.quote(name)}")
                what = f"{plural}.{CUSTOM_METRICS_GROUP} {object_ref.get('name', '')}"
            listed = await self._get(path, {"metricLabelSelector": str(metric_selector)}, what)
        except (MetricsError, ApiError, APIConnectionError) as e:
            raise MetricsError(f"unable to fetch metrics from custom metrics API: {_api_message(e)}") from None
        items = listed.get("items") or []
        if len(items) != 1:
            raise MetricsError(f"unable to fetch metrics from custom metrics API: the custom metrics API "
                               f"server returned {len(items)} results when we asked for exactly one")
        return milli_value(items[0].get("value", "0")), _time(items[0].get("timestamp"))

    async def external_metric(self, name: str, namespace: str,
                              selector: LabelSelector) -> tuple[list[int], dt.datetime]:
        try:
            listed = await self._get(
                f"/apis/{EXTERNAL_METRICS_VERSION}/namespaces/{urllib.parse.quote(namespace)}/"
                f"{urllib.parse.quote(name)}",
                {"labelSelector": str(selector)}, f"{name}.external.metrics.k8s.io")
        except MetricsError as e:
            raise MetricsError(f"unable to fetch metrics from external metrics API: {e}") from None
        items = listed.get("items") or []
        if not items:
            raise MetricsError("no metrics returned from external metrics API")
        return [milli_value(m.get("value", "0")) for m in items], _time(items[0].get("timestamp"))


# -- pods ------------------------------------------------------------------------------------


def group_pods(pods: list[Obj], metrics: PodMetricsInfo, resource: str, cpu_initialization_period: float,
               delay_of_initial_readiness_status: float, now: dt.datetime) -> tuple[int, set[str], set[str], set[str]]:
    """(ready count, unready, missing, ignored) as upstream's groupPods."""
    ready = 0
    unready: set[str] = set()
    missing: set[str] = set()
    ignored: set[str] = set()
    for pod in pods:
        name = pod["metadata"]["name"]
        status = pod.get("status") or {}
        phase = status.get("phase")
        if pod["metadata"].get("deletionTimestamp") or phase == "Failed":
            ignored.add(name)
            continue
        if phase == "Pending":
            unready.add(name)
            continue
        metric = metrics.get(name)
        if metric is None:
            missing.add(name)
            continue
        if resource == "cpu":
            cond = pod_condition(pod, "Ready")
            if cond is None or not status.get("startTime"):
                not_ready = True
            else:
                start = _time(status["startTime"])
                transition = _time(cond.get("lastTransitionTime"))
                if start + dt.timedelta(seconds=cpu_initialization_period) > now:
                    # still initializing: unready, or not one metric window since it became ready
                    not_ready = (cond.get("status") == "False"
                                 or metric.timestamp < transition + dt.timedelta(seconds=metric.window))
                else:
                    # unready and never ready since its start (within the initial readiness delay)
                    not_ready = (cond.get("status") == "False"
                                 and start + dt.timedelta(seconds=delay_of_initial_readiness_status) > transition)
            if not_ready:
                unready.add(name)
                continue
        ready += 1
    return ready, unready, missing, ignored


def _pod_level_requests_set(pod: Obj) -> bool:
    requests = ((pod.get("spec") or {}).get("resources") or {}).get("requests") or {}
    return any(r in requests for r in ("cpu", "memory", "hugepages-2Mi", "hugepages-1Gi"))


def calculate_requests(pods: list[Obj], container: str, resource: str) -> dict[str, int]:
    """Each pod's request of `resource` in milli-units (upstream calculateRequests)."""
    out: dict[str, int] = {}
    for pod in pods:
        name = pod["metadata"]["name"]
        spec = pod.get("spec") or {}
        if not container and _pod_level_requests_set(pod):
            request = ((spec.get("resources") or {}).get("requests") or {}).get(resource)
            if request is None:
                raise MetricsError(f"missing pod-level request for {resource} in Pod {name}")
            out[name] = milli_value(request)
            continue
        containers = list(spec.get("containers") or [])
        containers += sidecars(spec)
        total, found = 0, False
        for c in containers:
            if not container or container == c.get("name"):
                request = ((c.get("resources") or {}).get("requests") or {}).get(resource)
                if request is None:
                    raise MetricsError(f"missing request for {resource} in container {c.get('name', '')} "
                                       f"of Pod {name}")
                total += milli_value(request)
            if container and container == c.get("name"):
                found = True
                break
        if container and not found:
            raise MetricsError(f"container {container} not found in Pod {name}")
        out[name] = total
    return out


def resource_utilization_ratio(metrics: PodMetricsInfo, requests: Mapping[str, int],
                               target_utilization: int) -> tuple[float, int, int]:
    """(usage ratio, utilization %, raw average milli-value) (upstream GetResourceUtilizationRatio)."""
    metrics_total = requests_total = entries = 0
    for pod, metric in metrics.items():
        request = requests.get(pod)
        if request is None:
            continue  # missing requests are checked elsewhere: an extraneous metric
        metrics_total += metric.value
        requests_total += request
        entries += 1
    if requests_total == 0:
        raise MetricsError("no metrics returned matched known pods")
    utilization = max(MIN_INT32, min(MAX_INT32, _div_trunc(metrics_total * 100, requests_total)))
    return utilization / target_utilization, utilization, _div_trunc(metrics_total, entries)


def metric_usage_ratio(metrics: PodMetricsInfo, target_usage: int) -> tuple[float, int]:
    """(usage ratio, average usage) (upstream GetMetricUsageRatio)."""
    usage = _div_trunc(sum(m.value for m in metrics.values()), len(metrics))
    return usage / target_usage, usage


def _ratio(numerator: float, denominator: float) -> float:
    """Go's float64 division: x/0 is ±Inf (or NaN for 0/0)."""
    if denominator:
        return numerator / denominator
    if numerator == 0:
        return math.nan
    return math.inf if numerator > 0 else -math.inf


# -- the calculator --------------------------------------------------------------------------

PodLister = Callable[[str, LabelSelector], list[Obj]]


class ReplicaCalculator:
    """Desired replica counts per metric (upstream ReplicaCalculator)."""

    def __init__(self, metrics: MetricsClient, pod_lister: PodLister, cpu_initialization_period: float = 300.0,
                 delay_of_initial_readiness_status: float = 30.0, clock: Clock | None = None) -> None:
        self.metrics = metrics
        self.pod_lister = pod_lister
        self.cpu_initialization_period = cpu_initialization_period
        self.delay_of_initial_readiness_status = delay_of_initial_readiness_status
        self.clock = clock or Clock()

    def _pods(self, namespace: str, selector: LabelSelector) -> list[Obj]:
        pods = self.pod_lister(namespace, selector)
        if not pods:
            raise MetricsError("no pods returned by selector while calculating replica count")
        return pods

    def _group(self, pods: list[Obj], metrics: PodMetricsInfo, resource: str) -> tuple[int, set[str], set[str]]:
        ready, unready, missing, ignored = group_pods(pods, metrics, resource, self.cpu_initialization_period,
                                                      self.delay_of_initial_readiness_status, self.clock.now())
        for name in ignored | unready:
            metrics.pop(name, None)
        if not metrics:
            raise MetricsError("did not receive metrics for targeted pods (pods might be unready)")
        return ready, unready, missing

    @staticmethod
    def _rebalanced(current: int, ratio: float, new_ratio: float, tolerances: Tolerances, considered: int) -> int:
        """The second pass, once missing/unready pods have assumed values."""
        if tolerances.within(new_ratio) or (ratio < 1.0 < new_ratio) or (ratio > 1.0 > new_ratio):
            return current  # too small a change, or the assumed values flip the direction
        replicas = _ceil_int32(new_ratio * considered)
        if (new_ratio < 1.0 and replicas > current) or (new_ratio > 1.0 and replicas < current):
            return current  # counting the assumed pods would flip the direction
        return replicas

    async def resource_replicas(self, current: int, target_utilization: int, resource: str, tolerances: Tolerances,
                                namespace: str, selector: LabelSelector,
                                container: str = "") -> tuple[int, int, int, dt.datetime]:
        """(replicas, utilization %, raw average milli-value, timestamp) for a Utilization target."""
        try:
            metrics, timestamp = await self.metrics.resource_metric(resource, namespace, selector, container)
        except MetricsError as e:
            raise MetricsError(f"unable to get metrics for resource {resource}: {e}") from None
        pods = self._pods(namespace, selector)
        ready, unready, missing = self._group(pods, metrics, resource)
        requests = calculate_requests(pods, container, resource)
        ratio, utilization, raw = resource_utilization_ratio(metrics, requests, target_utilization)

        scale_up_with_unready = bool(unready) and ratio > 1.0
        if not scale_up_with_unready and not missing:
            if tolerances.within(ratio):
                return current, utilization, raw, timestamp
            return _ceil_int32(ratio * ready), utilization, raw, timestamp

        if missing:
            if ratio < 1.0:
                # scale-down: missing pods use 100 % of their request (or the target, above 100 %)
                fallback = max(100, target_utilization)
                for name in missing:
                    metrics[name] = PodMetric(_div_trunc(requests[name] * fallback, 100), timestamp, 0.0)
            elif ratio > 1.0:
                for name in missing:  # scale-up: missing pods use nothing
                    metrics[name] = PodMetric(0, timestamp, 0.0)
        if scale_up_with_unready:
            for name in unready:
                metrics[name] = PodMetric(0, timestamp, 0.0)
        new_ratio, _, _ = resource_utilization_ratio(metrics, requests, target_utilization)
        return self._rebalanced(current, ratio, new_ratio, tolerances, len(metrics)), utilization, raw, timestamp

    async def raw_resource_replicas(self, current: int, target_usage: int, resource: str, tolerances: Tolerances,
                                    namespace: str, selector: LabelSelector,
                                    container: str = "") -> tuple[int, int, dt.datetime]:
        """(replicas, average usage, timestamp) for an AverageValue resource target."""
        try:
            metrics, timestamp = await self.metrics.resource_metric(resource, namespace, selector, container)
        except MetricsError as e:
            raise MetricsError(f"unable to get metrics for resource {resource}: {e}") from None
        replicas, usage = self.plain_metric_replicas(metrics, current, target_usage, tolerances, namespace,
                                                     selector, resource)
        return replicas, usage, timestamp

    async def metric_replicas(self, current: int, target_usage: int, metric_name: str, tolerances: Tolerances,
                              namespace: str, selector: LabelSelector,
                              metric_selector: LabelSelector) -> tuple[int, int, dt.datetime]:
        """(replicas, average usage, timestamp) for a Pods metric."""
        try:
            metrics, timestamp = await self.metrics.raw_metric(metric_name, namespace, selector, metric_selector)
        except MetricsError as e:
            raise MetricsError(f"unable to get metric {metric_name}: {e}") from None
        replicas, usage = self.plain_metric_replicas(metrics, current, target_usage, tolerances, namespace,
                                                     selector, "")
        return replicas, usage, timestamp

    def plain_metric_replicas(self, metrics: PodMetricsInfo, current: int, target_usage: int,
                              tolerances: Tolerances, namespace: str, selector: LabelSelector,
                              resource: str) -> tuple[int, int]:
        """Average-value targets (upstream calcPlainMetricReplicas)."""
        pods = self._pods(namespace, selector)
        ready, unready, missing = self._group(pods, metrics, resource)
        ratio, usage = metric_usage_ratio(metrics, target_usage)

        scale_up_with_unready = bool(unready) and ratio > 1.0
        if not scale_up_with_unready and not missing:
            if tolerances.within(ratio):
                return current, usage
            return _ceil_int32(ratio * ready), usage

        now = self.clock.now()
        if missing:
            if ratio < 1.0:
                for name in missing:  # scale-down: missing pods use exactly the target
                    metrics[name] = PodMetric(target_usage, now, 0.0)
            elif ratio > 1.0:
                for name in missing:
                    metrics[name] = PodMetric(0, now, 0.0)
        if scale_up_with_unready:
            for name in unready:
                metrics[name] = PodMetric(0, now, 0.0)
        new_ratio, _ = metric_usage_ratio(metrics, target_usage)
        return self._rebalanced(current, ratio, new_ratio, tolerances, len(metrics)), usage

    def _ready_pods_count(self, namespace: str, selector: LabelSelector) -> int:
        try:
            pods = self._pods(namespace, selector)
        except MetricsError as e:
            raise MetricsError(f"unable to calculate ready pods: {e}") from None
        return sum(1 for p in pods if (p.get("status") or {}).get("phase") == "Running" and is_pod_ready(p))

    def usage_ratio_replica_count(self, current: int, ratio: float, tolerances: Tolerances, namespace: str,
                                  selector: LabelSelector) -> int:
        """Replicas for a whole-object ratio; with 0 replicas, ceil(ratio) (scale from zero)."""
        if current == 0:
            return _ceil_int32(ratio)
        if tolerances.within(ratio):
            return current
        return _ceil_int32(ratio * self._ready_pods_count(namespace, selector))

    async def object_metric_replicas(self, current: int, target_usage: int, metric_name: str,
                                     tolerances: Tolerances, namespace: str, object_ref: Obj,
                                     selector: LabelSelector,
                                     metric_selector: LabelSelector) -> tuple[int, int, dt.datetime]:
        try:
            usage, _ = await self.metrics.object_metric(metric_name, namespace, object_ref, metric_selector)
        except MetricsError as e:  # (upstream's argument order, kept: the kind lands after the name)
            raise MetricsError(f"unable to get metric {metric_name}: {object_ref.get('kind', '')} on {namespace} "
                               f"{object_ref.get('name', '')}/{e}") from None
        replicas = self.usage_ratio_replica_count(current, _ratio(usage, target_usage), tolerances, namespace,
                                                  selector)
        return replicas, usage, _EPOCH

    def _per_pod(self, status_replicas: int, usage: int, target_per_pod: int,
                 tolerances: Tolerances) -> tuple[int, int]:
        replicas = status_replicas
        if not tolerances.within(_ratio(usage, target_per_pod * status_replicas)):
            replicas = _ceil_int32(_ratio(usage, target_per_pod))
        average = math.ceil(usage / status_replicas) if status_replicas else usage
        return replicas, average

    async def object_per_pod_metric_replicas(self, status_replicas: int, target_per_pod: int, metric_name: str,
                                             tolerances: Tolerances, namespace: str, object_ref: Obj,
                                             metric_selector: LabelSelector) -> tuple[int, int, dt.datetime]:
        try:
            usage, timestamp = await self.metrics.object_metric(metric_name, namespace, object_ref,
                                                                metric_selector)
        except MetricsError as e:
            raise MetricsError(f"unable to get metric {metric_name}: {object_ref.get('kind', '')} on {namespace} "
                               f"{object_ref.get('name', '')}/{e}") from None
        replicas, average = self._per_pod(status_replicas, usage, target_per_pod, tolerances)
        return replicas, average, timestamp

    async def _external_usage(self, metric_name: str, namespace: str,
                              metric_selector: Obj | None) -> tuple[int, dt.datetime]:
        try:
            selector = selector_from_label_selector(metric_selector)
        except LabelSelectorError as e:
            raise MetricsError(str(e)) from None
        try:
            values, timestamp = await self.metrics.external_metric(metric_name, namespace, selector)
        except MetricsError as e:
            raise MetricsError(f"unable to get external metric {namespace}/{metric_name}/"
                               f"{go_label_selector(metric_selector)}: {e}") from None
        return min(sum(values), 2**63 - 1), timestamp

    async def external_metric_replicas(self, current: int, target_usage: int, metric_name: str,
                                       tolerances: Tolerances, namespace: str, metric_selector: Obj | None,
                                       pod_selector: LabelSelector) -> tuple[int, int, dt.datetime]:
        usage, _ = await self._external_usage(metric_name, namespace, metric_selector)
        replicas = self.usage_ratio_replica_count(current, _ratio(usage, target_usage), tolerances, namespace,
                                                  pod_selector)
        return replicas, usage, _EPOCH

    async def external_per_pod_metric_replicas(self, status_replicas: int, target_per_pod: int, metric_name: str,
                                               tolerances: Tolerances, namespace: str,
                                               metric_selector: Obj | None) -> tuple[int, int, dt.datetime]:
        usage, timestamp = await self._external_usage(metric_name, namespace, metric_selector)
        replicas, average = self._per_pod(status_replicas, usage, target_per_pod, tolerances)
        return replicas, average, timestamp


def go_label_selector(sel: Obj | None) -> str:
    """A metav1.LabelSelector as Go's %+v prints a *LabelSelector (for upstream's messages)."""
    if sel is None:
        return "nil"
    labels = ",".join(f"{k}: {v}" for k, v in sorted((sel.get("matchLabels") or {}).items()))
    exprs = ",".join(
        f"LabelSelectorRequirement{{Key:{e.get('key', '')},Operator:{e.get('operator', '')},"
        f"Values:[]string{{{','.join(e.get('values') or [])}}},}}"
        for e in sel.get("matchExpressions") or [])
    return (f"&LabelSelector{{MatchLabels:map[string]string{{{labels + ',' if labels else ''}}},"
            f"MatchExpressions:[]LabelSelectorRequirement{{{exprs}}},}}")


def quantity_milli(value: Any) -> int | None:
    """A Quantity's milli-value, or None when it is absent or not a quantity."""
    if value is None:
        return None
    try:
        return milli_value(value)
    except (QuantityError, ValueError, TypeError):
        return None

