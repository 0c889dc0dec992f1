"""The horizontal pod autoscaler controller (upstream pkg/controller/podautoscaler/horizontal.go).

Every --horizontal-pod-autoscaler-sync-period (15 s) each autoscaling/v2 HorizontalPodAutoscaler is
reconciled (its key waits that long in the queue after every add, change and sync, as upstream's
fixed-interval rate limiter does):

1. `spec.scaleTargetRef` (apiVersion/kind → resource through discovery) and its `/scale`
   (GET; `status.selector` picks the pods). Failure: AbleToScale=False FailedGetScale.
2. Bounds first: a target at 0 replicas is left alone (ScalingActive=False ScalingDisabled), one
   above maxReplicas / below minReplicas is brought within them.
3. Otherwise each metric gives a desired count (podautoscaler_replicas.py: Resource and
   ContainerResource from metrics.k8s.io; Pods/Object/External from the custom and external
   metrics APIs, which fail with upstream's messages when no adapter serves them), the highest
   wins; a failing metric sets ScalingActive=False with its reason (FailedGetResourceMetric, ...)
   and, when nothing valid is left (or it would scale down), FailedComputeMetricsReplicas.
4. Stabilization and limits (podautoscaler_behavior.py): the downscale window, or `spec.behavior`'s
   windows and policies; ScalingLimited tells whether min/max or a rate limited the count.
5. A changed count is written to `/scale` (event SuccessfulRescale "New size: N; reason: ...",
   AbleToScale=True SucceededRescale), then the status (currentReplicas, desiredReplicas,
   currentMetrics, lastScaleTime, observedGeneration, conditions) through `/status`, only when it
   changed.
"""

from __future__ import annotations

import copy
from collections.abc import Hashable
from typing import Any

from apimachinery.meta import format_time, key_of, split_key
from apimachinery.quantity import QuantityError, format_quantity, new_milli_quantity, parse_quantity
from apimachinery.selectors import LabelSelector, LabelSelectorError, nothing, parse_label_selector
from apimachinery.selectors import selector_from_label_selector as as_selector
from client import NORMAL, WARNING, APIConnectionError, ApiError, ResourceInfo, WorkQueue, deleted_object
from client.store import NAMESPACE_INDEX
from controller_manager.base import Controller, ControllerContext, register
from controller_manager.podautoscaler_behavior import Condition, ScaleHistory, behavior_with_defaults
from controller_manager.podautoscaler_replicas import (
    MetricsError,
    ReplicaCalculator,
    RESTMetricsClient,
    Tolerances,
    go_label_selector,
    quantity_milli,
)
from controller_manager.podutil import labels_of

Obj = dict[str, Any]

API_VERSION = "autoscaling/v2"
PLURAL = "horizontalpodautoscalers"
ABLE_TO_SCALE = "AbleToScale"
SCALING_ACTIVE = "ScalingActive"
#: what the apiserver defaults an HPA without metrics to (autoscaling.DefaultCPUUtilization)
DEFAULT_METRICS = [{"type": "Resource",
                    "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]


class FixedIntervalRateLimiter:
    """Every key waits the same interval (upstream NewDefaultHPARateLimiter)."""

    def __init__(self, interval: float) -> None:
        self.interval = interval

    def when(self, item: Hashable) -> float:
        return self.interval

    def forget(self, item: Hashable) -> None:
        pass

    def num_requeues(self, item: Hashable) -> int:
        return 0


class ReconcileError(Exception):
    """A failed reconciliation (logged, and the HPA is looked at again after the sync period)."""


class MetricFailure(Exception):
    """One metric could not be computed: the condition to set if it is the first, and the error."""

    def __init__(self, condition: Condition, message: str) -> None:
        super().__init__(message)
        self.condition = condition


def _message(e: BaseException) -> str:
    return e.message if isinstance(e, ApiError) else str(e)


def _milli_quantity(milli: int) -> str:
    return format_quantity(new_milli_quantity(milli))


def _semantic(status: Obj | None) -> Obj:
    """A status without zero values: absent, zero, nil and empty are all the same to upstream's typed
    Semantic.DeepEqual (and the apiserver leaves out some of them)."""
    return {k: v for k, v in (status or {}).items() if v not in (None, [], {}, "", 0)}


@register
class HorizontalController(Controller):
    name = "horizontal-pod-autoscaler-controller"
    event_source = "horizontal-pod-autoscaler"
    aliases = ("horizontalpodautoscaling",)
    workers_option = "concurrent_horizontal_pod_autoscaler_syncs"
    service_account = "horizontal-pod-autoscaler"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        opts = ctx.options
        self.sync_period = float(opts.horizontal_pod_autoscaler_sync_period)
        self.tolerance = float(opts.horizontal_pod_autoscaler_tolerance)
        self.queue = WorkQueue(FixedIntervalRateLimiter(self.sync_period), name=self.name)
        self.hpas = self.informer(API_VERSION, PLURAL)
        self.hpas.add_handler(self._hpa_added, lambda old, new: self._hpa_added(new), self._hpa_deleted)
        self.pods = self.informer("v1", "pods")
        self.hpa_api = self.client.resource(API_VERSION, PLURAL)
        self.history = ScaleHistory(self.clock, float(opts.horizontal_pod_autoscaler_downscale_stabilization))
        self.calc = ReplicaCalculator(RESTMetricsClient(self.client), self.list_pods,
                                      float(opts.horizontal_pod_autoscaler_cpu_initialization_period),
                                      float(opts.horizontal_pod_autoscaler_initial_readiness_delay), self.clock)
        #: every HPA's last pod selector (Nothing until its first sync), to spot overlapping HPAs
        self.selectors: dict[str, LabelSelector] = {}

    # -- informer events -----------------------------------------------------------------

    def _hpa_added(self, hpa: Obj) -> None:
        key = key_of(hpa)
        self.queue.add_rate_limited(key)  # first looked at one sync period later, as upstream
        self.selectors.setdefault(key, nothing())

    def _hpa_deleted(self, obj: Any) -> None:
        key = key_of(deleted_object(obj))
        self.queue.forget(key)
        self.selectors.pop(key, None)

    def list_pods(self, namespace: str, selector: LabelSelector) -> list[Obj]:
        return [p for p in self.pods.store.by_index(NAMESPACE_INDEX, namespace) if selector.matches(labels_of(p))]

    # -- sync ----------------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        hpa = self.hpas.store.get(key)
        if hpa is None:
            self.log.info("horizontal pod autoscaler %s has been deleted", key)
            self.history.forget(key)
            return
        try:
            await self.reconcile(copy.deepcopy(hpa), key)
        finally:
            # looked at again every sync period, whatever happened (upstream processNextWorkItem)
            self.queue.add_after(key, self.sync_period)

    def _event(self, hpa: Obj, type_: str, reason: str, message: str) -> None:
        self.recorder.event(hpa, type_, reason, message)

    def _set_condition(self, hpa: Obj, type_: str, status: str, reason: str, message: str) -> None:
        """upstream setCondition: added if absent; lastTransitionTime moves when the status does."""
        conds = hpa.setdefault("status", {}).setdefault("conditions", [])
        cond = next((c for c in conds if c.get("type") == type_), None)
        if cond is None:
            cond = {"type": type_}
            conds.append(cond)
        if cond.get("status") != status:
            cond["status"] = status
            cond["lastTransitionTime"] = format_time(self.clock.now())
        cond["reason"] = reason
        cond["message"] = message

    def _apply(self, hpa: Obj, conditions: list[Condition]) -> None:
        for c in conditions:
            self._set_condition(hpa, *c)

    async def reconcile(self, hpa: Obj, key: str) -> None:
        """upstream reconcileAutoscaler (`hpa` is a private copy)."""
        original = copy.deepcopy(hpa.get("status") or {})
        meta, spec = hpa["metadata"], hpa.get("spec") or {}
        ref = spec.get("scaleTargetRef") or {}
        ns = meta.get("namespace", "")
        reference = f"{ref.get('kind', '')}/{ns}/{ref.get('name', '')}"

        try:
            info = await self.scale_target(ref)
            scale = await self.client.resource(info.api_version, info.plural).get_subresource(
                ref.get("name", ""), "scale", ns)
            if not isinstance(scale, dict):
                raise ReconcileError(f"unexpected answer for the scale of {reference}")
        except (ApiError, APIConnectionError, ReconcileError) as e:
            message = _message(e)
            self._event(hpa, WARNING, "FailedGetScale", message)
            self._set_condition(hpa, ABLE_TO_SCALE, "False", "FailedGetScale",
                                f"the HPA controller was unable to get the target's current scale: {message}")
            await self._update_status_if_needed(original, hpa, log_only=True)
            raise ReconcileError(f"failed to query scale subresource for {reference}: {message}") from None
        self._set_condition(hpa, ABLE_TO_SCALE, "True", "SucceededGetScale",
                            "the HPA controller was able to get the target's current scale")
        current = int((scale.get("spec") or {}).get("replicas") or 0)
        self.history.record_initial_recommendation(key, current)

        min_replicas = spec.get("minReplicas")
        min_replicas = 1 if min_replicas is None else int(min_replicas)
        max_replicas = int(spec.get("maxReplicas") or 0)
        behavior = behavior_with_defaults(spec.get("behavior"), self.history.downscale_stabilization)
        statuses: list[Obj] | None = None
        desired, reason, rescale = 0, "", True
        pending_error: str | None = None

        if current == 0 and min_replicas != 0:
            rescale = False  # autoscaling is disabled for this target
            self._set_condition(hpa, SCALING_ACTIVE, "False", "ScalingDisabled",
                                "scaling is disabled since the replica count of the target is zero")
        elif current > max_replicas:
            reason, desired = "Current number of replicas above Spec.MaxReplicas", max_replicas
        elif current < min_replicas:
            reason, desired = "Current number of replicas below Spec.MinReplicas", min_replicas
        else:
            metric_desired, metric_name, statuses, error = await self.compute_replicas_for_metrics(
                hpa, scale, spec.get("metrics") or DEFAULT_METRICS, key, behavior)
            if error is not None and metric_desired == -1:
                self._set_status(hpa, current, (hpa.get("status") or {}).get("desiredReplicas", 0), statuses, False)
                await self._update_status_if_needed(original, hpa, log_only=True)
                self._event(hpa, WARNING, "FailedComputeMetricsReplicas", error)
                raise ReconcileError(f"failed to compute desired number of replicas based on listed metrics "
                                     f"for {reference}: {error}")
            pending_error = error  # some metrics still work: scale on them, report the rest afterwards
            self.log.debug("%s: proposing %d desired replicas (based on %s)", reference, metric_desired, metric_name)
            rescale_metric = ""
            if metric_desired > desired:
                desired, rescale_metric = metric_desired, metric_name
            if desired > current:
                reason = f"{rescale_metric} above target"
            if desired < current:
                reason = "All metrics below target"
            if behavior is None:
                desired, conds = self.history.normalize(key, current, desired, min_replicas, max_replicas)
            else:
                desired, conds = self.history.normalize_with_behaviors(key, current, desired, min_replicas,
                                                                       max_replicas, behavior)
            self._apply(hpa, conds)
            rescale = desired != current

        if rescale:
            new_scale = {**scale, "spec": {**(scale.get("spec") or {}), "replicas": desired}}
            try:
                await self.client.resource(info.api_version, info.plural).update_subresource(
                    ref.get("name", ""), "scale", new_scale, ns)
            except (ApiError, APIConnectionError) as e:
                message = _message(e)
                self._event(hpa, WARNING, "FailedRescale", f"New size: {desired}; reason: {reason}; error: {message}")
                self._set_condition(hpa, ABLE_TO_SCALE, "False", "FailedUpdateScale",
                                    f"the HPA controller was unable to update the target scale: {message}")
                self._set_status(hpa, current, (hpa.get("status") or {}).get("desiredReplicas", 0), statuses, False)
                await self._update_status_if_needed(original, hpa, log_only=True)
                raise ReconcileError(f"failed to rescale {reference}: {message}") from None
            self._set_condition(hpa, ABLE_TO_SCALE, "True", "SucceededRescale",
                                f"the HPA controller was able to update the target scale to {desired}")
            self._event(hpa, NORMAL, "SuccessfulRescale", f"New size: {desired}; reason: {reason}")
            self.history.store_scale_event(behavior, key, current, desired)
            self.log.info("successfully rescaled %s: %d -> %d (%s)", key, current, desired, reason)
        else:
            desired = current

        self._set_status(hpa, current, desired, statuses, rescale)
        await self._update_status_if_needed(original, hpa)
        if pending_error is not None:
            raise ReconcileError(pending_error)

    # -- the scale target ----------------------------------------------------------------

    async def scale_target(self, ref: Obj) -> ResourceInfo:
        """The resource of `kind` in the reference's group (any served version, the given one first),
        as upstream's RESTMapper finds it; discovery is asked afresh once on a miss."""
        api_version, kind = ref.get("apiVersion") or "", ref.get("kind") or ""
        if api_version.count("/") > 1:
            raise ReconcileError(f"unexpected GroupVersion string: {api_version}")
        group, _, version = api_version.rpartition("/")
        for attempt in range(2):
            if version:  # the named version first, from the cached discovery: no request when it is served
                try:
                    return await self.client.discovery.resolve_kind(api_version, kind)
                except ApiError:
                    pass
            versions: list[str] = []
            if group:
                try:
                    doc = await self.client.request("GET", f"/apis/{group}")
                    versions += [v["groupVersion"] for v in doc.get("versions") or []
                                 if v.get("groupVersion") and v["groupVersion"] != api_version]
                except ApiError:
                    pass
            elif not version:
                versions = ["v1"]
            for gv in versions:
                try:
                    return await self.client.discovery.resolve_kind(gv, kind)
                except ApiError:
                    continue
            if attempt == 0:
                self.client.discovery.invalidate()
        raise ReconcileError(f'no matches for kind "{kind}" in group "{group}"')

    # -- metrics ---------------------------------------------------------------------------

    def _validate_selector(self, hpa: Obj, key: str, selector: str) -> LabelSelector:
        """upstream validateAndParseSelector: present, parseable, and no other HPA's pods."""
        if not selector:
            self._event(hpa, WARNING, "SelectorRequired", "selector is required")
            self._set_condition(hpa, SCALING_ACTIVE, "False", "InvalidSelector",
                                "the HPA target's scale is missing a selector")
            raise MetricsError("selector is required")
        try:
            parsed = parse_label_selector(selector)
        except ApiError as e:
            message = f"couldn't convert selector into a corresponding internal selector object: {e.message}"
            self._event(hpa, WARNING, "InvalidSelector", message)
            self._set_condition(hpa, SCALING_ACTIVE, "False", "InvalidSelector", message)
            raise MetricsError(message) from None
        if key in self.selectors:  # registered when its add was seen
            self.selectors[key] = parsed
        ns = split_key(key)[0]
        selecting: set[str] = set()
        for pod in self.list_pods(ns, parsed):
            labels = labels_of(pod)
            selecting.update(k for k, sel in self.selectors.items() if split_key(k)[0] == ns and sel.matches(labels))
        if len(selecting) > 1:
            message = f"pods by selector {selector} are controlled by multiple HPAs: [{' '.join(sorted(selecting))}]"
            self._event(hpa, WARNING, "AmbiguousSelector", message)
            self._set_condition(hpa, SCALING_ACTIVE, "False", "AmbiguousSelector", message)
            raise MetricsError(message)
        return parsed

    def tolerances(self, behavior: Obj | None) -> Tolerances:
        """--horizontal-pod-autoscaler-tolerance, or behavior.scale{Down,Up}.tolerance where set."""

        def tolerance(rules: Obj | None) -> float:
            try:
                return float(parse_quantity((rules or {})["tolerance"]))
            except (KeyError, TypeError, QuantityError, ValueError):
                return self.tolerance

        return Tolerances(tolerance((behavior or {}).get("scaleDown")), tolerance((behavior or {}).get("scaleUp")))

    async def compute_replicas_for_metrics(self, hpa: Obj, scale: Obj, specs: list[Obj], key: str,
                                           behavior: Obj | None) -> tuple[int, str, list[Obj] | None, str | None]:
        """(replicas, metric, statuses, error): the highest proposal of the valid metrics; -1 when
        none is valid, or some are invalid and the rest would scale down (upstream computeReplicasForMetrics)."""
        try:
            selector = self._validate_selector(hpa, key, (scale.get("status") or {}).get("selector") or "")
        except MetricsError as e:
            return -1, "", None, str(e)
        spec_replicas = int((scale.get("spec") or {}).get("replicas") or 0)
        status_replicas = int((scale.get("status") or {}).get("replicas") or 0)
        tolerances = self.tolerances(behavior)
        statuses: list[Obj] = [{"type": ""} for _ in specs]  # a failed metric keeps its (empty) place
        replicas, metric = 0, ""
        invalid, first_error, first_condition = 0, "", None
        for i, ms in enumerate(specs):
            try:
                proposal, name, statuses[i] = await self.compute_replicas_for_metric(
                    hpa, ms, spec_replicas, status_replicas, selector, tolerances)
            except MetricFailure as f:
                if invalid == 0:
                    first_error, first_condition = str(f), f.condition
                invalid += 1
                continue
            if replicas == 0 or proposal > replicas:
                replicas, metric = proposal, name
        error = None
        if invalid:
            error = f"invalid metrics ({invalid} invalid out of {len(specs)}), first error is: {first_error}"
        if invalid >= len(specs) or (invalid > 0 and replicas < spec_replicas):
            if first_condition is not None:
                self._set_condition(hpa, *first_condition)
            return -1, "", statuses, error
        self._set_condition(hpa, SCALING_ACTIVE, "True", "ValidMetricFound",
                            f"the HPA was able to successfully calculate a replica count from {metric}")
        return replicas, metric, statuses, error

    def _unable(self, hpa: Obj, reason: str, error: str) -> Condition:
        """upstream getUnableComputeReplicaCountCondition: a Warning event and the condition to set."""
        self._event(hpa, WARNING, reason, error)
        return SCALING_ACTIVE, "False", reason, f"the HPA was unable to compute the replica count: {error}"

    async def compute_replicas_for_metric(self, hpa: Obj, ms: Obj, spec_replicas: int, status_replicas: int,
                                          selector: LabelSelector, tol: Tolerances) -> tuple[int, str, Obj]:
        """(replicas, metric name, metric status) for one metric; MetricFailure otherwise."""
        kind = ms.get("type") or ""
        ns = hpa["metadata"].get("namespace", "")
        if kind == "Resource":
            source = ms.get("resource") or {}
            try:
                replicas, current, name = await self._resource(source, "", spec_replicas, ns, selector, tol)
            except MetricsError as e:
                condition = self._unable(hpa, "FailedGetResourceMetric", str(e))
                raise MetricFailure(condition, f"failed to get {source.get('name', '')} resource metric value: "
                                               f"{e}") from None
            return replicas, name, {"type": kind, "resource": {"name": source.get("name", ""), "current": current}}
        if kind == "ContainerResource":
            source = ms.get("containerResource") or {}
            container = source.get("container", "")
            try:
                replicas, current, name = await self._resource(source, container, spec_replicas, ns, selector, tol)
            except MetricsError as e:
                condition = self._unable(hpa, "FailedGetContainerResourceMetric", str(e))
                raise MetricFailure(condition, f"failed to get {container} container metric value: {e}") from None
            return replicas, name, {"type": kind, "containerResource": {
                "name": source.get("name", ""), "container": container, "current": current}}
        if kind == "Pods":
            return await self._pods_metric(hpa, ms.get("pods") or {}, spec_replicas, ns, selector, tol)
        if kind == "Object":
            return await self._object_metric(hpa, ms.get("object") or {}, spec_replicas, status_replicas, ns,
                                             selector, tol)
        if kind == "External":
            return await self._external_metric(hpa, ms.get("external") or {}, spec_replicas, status_replicas, ns,
                                               selector, tol)
        error = f'unknown metric source type "{kind}"'
        raise MetricFailure(self._unable(hpa, "InvalidMetricSourceType", error), error)

    async def _resource(self, source: Obj, container: str, current: int, ns: str, selector: LabelSelector,
                        tol: Tolerances) -> tuple[int, Obj, str]:
        """upstream computeStatusForResourceMetricGeneric: (replicas, current value status, metric name)."""
        resource = source.get("name", "")
        target = source.get("target") or {}
        average_value = quantity_milli(target.get("averageValue"))
        if average_value is not None:
            try:
                replicas, raw, _ = await self.calc.raw_resource_replicas(current, average_value, resource, tol, ns,
                                                                         selector, container)
            except MetricsError as e:
                raise MetricsError(f"failed to get {resource} usage: {e}") from None
            return replicas, {"averageValue": _milli_quantity(raw)}, f"{resource} resource"
        utilization = target.get("averageUtilization")
        if utilization is None:
            raise MetricsError("invalid resource metric source: neither an average utilization target nor an "
                               "average value (usage) target was set")
        try:
            replicas, percentage, raw, _ = await self.calc.resource_replicas(current, int(utilization), resource,
                                                                             tol, ns, selector, container)
        except MetricsError as e:
            raise MetricsError(f"failed to get {resource} utilization: {e}") from None
        what = "container resource" if container else "resource"
        return (replicas, {"averageValue": _milli_quantity(raw), "averageUtilization": percentage},
                f"{resource} {what} utilization (percentage of request)")

    def _metric_selector(self, hpa: Obj, metric: Obj, reason: str, what: str) -> LabelSelector:
        try:
            return as_selector(metric.get("selector"))  # none: Nothing, which asks for no label filter
        except LabelSelectorError as e:
            raise MetricFailure(self._unable(hpa, reason, str(e)), f"failed to get {what} metric value: {e}") from None

    async def _pods_metric(self, hpa: Obj, source: Obj, current: int, ns: str, selector: LabelSelector,
                           tol: Tolerances) -> tuple[int, str, Obj]:
        metric = source.get("metric") or {}
        metric_selector = self._metric_selector(hpa, metric, "FailedGetPodsMetric", "pods")
        target = quantity_milli((source.get("target") or {}).get("averageValue"))
        try:
            if target is None:
                raise MetricsError("invalid pods metric source: no average value target was set")
            replicas, usage, _ = await self.calc.metric_replicas(current, target, metric.get("name", ""), tol, ns,
                                                                 selector, metric_selector)
        except MetricsError as e:
            condition = self._unable(hpa, "FailedGetPodsMetric", str(e))
            raise MetricFailure(condition, f"failed to get pods metric value: {e}") from None
        status = {"type": "Pods", "pods": {"metric": metric, "current": {"averageValue": _milli_quantity(usage)}}}
        return replicas, f"pods metric {metric.get('name', '')}", status

    async def _object_metric(self, hpa: Obj, source: Obj, spec_replicas: int, status_replicas: int, ns: str,
                             selector: LabelSelector, tol: Tolerances) -> tuple[int, str, Obj]:
        metric = source.get("metric") or {}
        metric_selector = self._metric_selector(hpa, metric, "FailedGetObjectMetric", "object")
        target = source.get("target") or {}
        described = source.get("describedObject") or {}
        value, average = quantity_milli(target.get("value")), quantity_milli(target.get("averageValue"))
        name = metric.get("name", "")
        try:
            if target.get("type") == "Value" and value is not None:
                replicas, usage, _ = await self.calc.object_metric_replicas(
                    spec_replicas, value, name, tol, ns, described, selector, metric_selector)
                status = {"type": "Object", "object": {"describedObject": described, "metric": metric,
                                                       "current": {"value": _milli_quantity(usage)}}}
                return replicas, f"{described.get('kind', '')} metric {name}", status
            if target.get("type") == "AverageValue" and average is not None:
                try:
                    replicas, usage, _ = await self.calc.object_per_pod_metric_replicas(
                        status_replicas, average, name, tol, ns, described, metric_selector)
                except MetricsError as e:
                    condition = self._unable(hpa, "FailedGetObjectMetric", str(e))
                    raise MetricFailure(condition, f"failed to get object metric value: failed to get {name} "
                                                   f"object metric: {e}") from None
                status = {"type": "Object", "object": {"metric": metric,
                                                       "current": {"averageValue": _milli_quantity(usage)}}}
                return replicas, f"external metric {name}({go_label_selector(metric.get('selector'))})", status
            raise MetricsError("invalid object metric source: neither a value target nor an average value "
                               "target was set")
        except MetricsError as e:
            condition = self._unable(hpa, "FailedGetObjectMetric", str(e))
            raise MetricFailure(condition, f"failed to get object metric value: {e}") from None

    async def _external_metric(self, hpa: Obj, source: Obj, spec_replicas: int, status_replicas: int, ns: str,
                               selector: LabelSelector, tol: Tolerances) -> tuple[int, str, Obj]:
        metric = source.get("metric") or {}
        target = source.get("target") or {}
        name = metric.get("name", "")
        value, average = quantity_milli(target.get("value")), quantity_milli(target.get("averageValue"))
        if average is not None:  # per pod, against the target's replicas
            field, failed = "averageValue", f"failed to get {name} external metric"
            computing = self.calc.external_per_pod_metric_replicas(status_replicas, average, name, tol, ns,
                                                                   metric.get("selector"))
        elif value is not None:  # the whole value, against the ready pods
            field, failed = "value", f"failed to get external metric {name}"
            computing = self.calc.external_metric_replicas(spec_replicas, value, name, tol, ns,
                                                           metric.get("selector"), selector)
        else:
            error = "invalid external metric source: neither a value target nor an average value target was set"
            condition = self._unable(hpa, "FailedGetExternalMetric", error)
            raise MetricFailure(condition, f"failed to get {name} external metric value: {error}")
        try:
            replicas, usage, _ = await computing
        except MetricsError as e:
            condition = self._unable(hpa, "FailedGetExternalMetric", str(e))
            raise MetricFailure(condition, f"failed to get {name} external metric value: {failed}: {e}") from None
        status = {"type": "External", "external": {"metric": metric, "current": {field: _milli_quantity(usage)}}}
        return replicas, f"external metric {name}({go_label_selector(metric.get('selector'))})", status

    # -- status ----------------------------------------------------------------------------

    def _set_status(self, hpa: Obj, current: int, desired: int, statuses: list[Obj] | None, rescale: bool) -> None:
        """upstream setStatus (observedGeneration as upstream's newest, where the object has one)."""
        old = hpa.get("status") or {}
        status: Obj = {}
        generation = hpa["metadata"].get("generation")
        if generation is not None:
            status["observedGeneration"] = generation
        elif old.get("observedGeneration") is not None:
            status["observedGeneration"] = old["observedGeneration"]
        last = format_time(self.clock.now()) if rescale else old.get("lastScaleTime")
        if last:
            status["lastScaleTime"] = last
        status["currentReplicas"] = current
        status["desiredReplicas"] = desired
        if statuses:
            status["currentMetrics"] = statuses
        if old.get("conditions"):
            status["conditions"] = old["conditions"]
        hpa["status"] = status

    async def _update_status_if_needed(self, original: Obj, hpa: Obj, log_only: bool = False) -> None:
        if _semantic(original) == _semantic(hpa.get("status")):
            return
        try:
            await self.hpa_api.update_status(hpa)
        except (ApiError, APIConnectionError) as e:
            message = _message(e)
            self._event(hpa, WARNING, "FailedUpdateStatus", message)
            error = f"failed to update status for {hpa['metadata']['name']}: {message}"
            if log_only:  # another error is being reported already
                self.log.warning("%s", error)
                return
            raise ReconcileError(error) from None
        self.log.debug("successfully updated status for %s", key_of(hpa))
