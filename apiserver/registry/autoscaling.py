"""autoscaling HorizontalPodAutoscalers: served as autoscaling/v2 and autoscaling/v1, stored once.

The stored form is v2 (upstream's storage version). A v1 object is converted on the way in
(`from_v1`) and every answer of the v1 resource on the way out (`to_v1`), as upstream's
pkg/apis/autoscaling/v1/conversion.go does: `targetCPUUtilizationPercentage` is a Resource cpu
Utilization metric, and what v1 cannot say (other metrics, current metrics, conditions, behavior)
travels in `autoscaling.alpha.kubernetes.io/*` annotations so a v1 read-modify-write loses nothing.

Defaults follow pkg/apis/autoscaling/v2/defaults.go (and v1's minReplicas), validation
pkg/apis/autoscaling/validation with its messages, and the strategy
pkg/registry/autoscaling/horizontalpodautoscaler: status only through /status.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any

from apimachinery import errors
from apimachinery.quantity import QuantityError, format_quantity, parse_quantity
from apimachinery.validation import (
    IS_NEGATIVE_ERROR_MSG,
    child,
    forbidden_cause,
    index,
    invalid_cause,
    is_qualified_name,
    not_supported_cause,
    required_cause,
    validate_dns1123_label,
    validate_nonnegative,
    validate_object_meta_update,
    validate_path_segment_name,
)
from apiserver.registry.base import Cause, Obj, Strategy, as_dict, as_int, as_list, as_str
from apiserver.schema import PruneSchema, TypeMismatch, json_type

V1 = "autoscaling/v1"
V2 = "autoscaling/v2"
KIND = "HorizontalPodAutoscaler"

# Annotations carrying v2 fields through a v1 object (pkg/apis/autoscaling/annotations.go).
METRICS_ANNOTATION = "autoscaling.alpha.kubernetes.io/metrics"
CURRENT_METRICS_ANNOTATION = "autoscaling.alpha.kubernetes.io/current-metrics"
CONDITIONS_ANNOTATION = "autoscaling.alpha.kubernetes.io/conditions"
BEHAVIOR_ANNOTATION = "autoscaling.alpha.kubernetes.io/behavior"
SCALE_DOWN_TOLERANCE_ANNOTATION = "autoscaling.alpha.kubernetes.io/scale-down-tolerance"
SCALE_UP_TOLERANCE_ANNOTATION = "autoscaling.alpha.kubernetes.io/scale-up-tolerance"
#: Dropped from an object before conversion writes its own (DropRoundTripHorizontalPodAutoscalerAnnotations).
ROUND_TRIP_ANNOTATIONS = (METRICS_ANNOTATION, BEHAVIOR_ANNOTATION, SCALE_DOWN_TOLERANCE_ANNOTATION,
                          SCALE_UP_TOLERANCE_ANNOTATION, CURRENT_METRICS_ANNOTATION, CONDITIONS_ANNOTATION)

#: The CPU utilization an HPA without metrics targets (autoscaling.DefaultCPUUtilization).
DEFAULT_CPU_UTILIZATION = 80
MAX_PERIOD_SECONDS = 1800
MAX_STABILIZATION_WINDOW_SECONDS = 3600

RESOURCE, PODS, OBJECT, EXTERNAL, CONTAINER_RESOURCE = "Resource", "Pods", "Object", "External", "ContainerResource"
#: metric source type → the field holding it
SOURCE_FIELDS = {OBJECT: "object", PODS: "pods", RESOURCE: "resource", EXTERNAL: "external",
                 CONTAINER_RESOURCE: "containerResource"}
METRIC_SOURCE_TYPES = sorted(SOURCE_FIELDS)  # upstream lists a sets.String: sorted
TARGET_TYPES = ("Utilization", "Value", "AverageValue")
SELECT_POLICIES = ("Disabled", "Max", "Min")
POLICY_TYPES = ("Percent", "Pods")

# v2/defaults.go: the behavior upstream's HPA had before behaviors existed. Scale-down has no
# stabilization default here: the controller's --horizontal-pod-autoscaler-downscale-stabilization
# (300s) applies when it is unset.
SCALE_UP_DEFAULTS: Obj = {"stabilizationWindowSeconds": 0, "selectPolicy": "Max", "policies": [
    {"type": "Pods", "value": 4, "periodSeconds": 15}, {"type": "Percent", "value": 100, "periodSeconds": 15}]}
SCALE_DOWN_DEFAULTS: Obj = {"selectPolicy": "Max", "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}]}
_RULE_FIELDS = ("stabilizationWindowSeconds", "selectPolicy", "policies", "tolerance")
_SPEC_FIELDS = ("scaleTargetRef", "minReplicas", "maxReplicas", "metrics", "behavior")


def cpu_utilization_metric(utilization: Any) -> Obj:
    return {"type": RESOURCE, "resource": {"name": "cpu", "target": {"type": "Utilization",
                                                                    "averageUtilization": utilization}}}


# wrong JSON types read as zero values (the schema check answers them before validation)
_dict, _list, _str, _int = as_dict, as_list, as_str, as_int


def _canonical(q: Any) -> Any:
    """A quantity's canonical string (what upstream's typed round trip writes back); bad input as is."""
    try:
        return format_quantity(parse_quantity(q))
    except (QuantityError, TypeError, ValueError, ArithmeticError):
        return q


# --- defaults -------------------------------------------------------------------------------------


def _with_rule_defaults(rules: Any, defaults: Obj) -> Obj:
    """GenerateHPAScaleUpRules / GenerateHPAScaleDownRules: the set fields over the defaults."""
    out = copy.deepcopy(defaults)
    for f in _RULE_FIELDS:
        if _dict(rules).get(f) is not None:
            out[f] = rules[f]
    return {f: out[f] for f in _RULE_FIELDS if f in out}  # Go's field order


def set_defaults(obj: Obj) -> None:
    """SetDefaults_HorizontalPodAutoscaler (v2; v1's only default, minReplicas, is the same)."""
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    if spec.get("minReplicas") is None:
        spec["minReplicas"] = 1
    if not spec.get("metrics"):
        spec["metrics"] = [cpu_utilization_metric(DEFAULT_CPU_UTILIZATION)]
    if isinstance(spec.get("behavior"), dict):
        spec["behavior"] = {"scaleUp": _with_rule_defaults(spec["behavior"].get("scaleUp"), SCALE_UP_DEFAULTS),
                            "scaleDown": _with_rule_defaults(spec["behavior"].get("scaleDown"), SCALE_DOWN_DEFAULTS)}
    canonicalize_spec(spec)
    ordered = {k: spec[k] for k in _SPEC_FIELDS if k in spec}  # Go's field order, as upstream writes it
    ordered.update((k, v) for k, v in spec.items() if k not in ordered)
    spec.clear()
    spec.update(ordered)


def _canonicalize_fields(holder: Any, fields: tuple[str, ...]) -> None:
    if isinstance(holder, dict):
        for f in fields:
            if holder.get(f) is not None:
                holder[f] = _canonical(holder[f])


def canonicalize_spec(spec: Obj) -> None:
    """Quantities as upstream stores them ("0.5" → "500m", 100 → "100")."""
    for m in _list(spec.get("metrics")):
        for source in SOURCE_FIELDS.values():
            _canonicalize_fields(_dict(_dict(m).get(source)).get("target"), ("value", "averageValue"))
    behavior = _dict(spec.get("behavior"))
    for direction in ("scaleUp", "scaleDown"):
        _canonicalize_fields(behavior.get(direction), ("tolerance",))


def normalize_status(status: Obj) -> None:
    """The status as upstream's typed decoding leaves it: desiredReplicas and currentMetrics are
    always written (no omitempty), a zero currentReplicas and empty lists are not."""
    status.setdefault("desiredReplicas", 0)
    if not status.get("currentMetrics"):
        status["currentMetrics"] = None
    for m in _list(status.get("currentMetrics")):
        for source in SOURCE_FIELDS.values():
            _canonicalize_fields(_dict(_dict(m).get(source)).get("current"), ("value", "averageValue"))
    if status.get("currentReplicas") == 0:
        del status["currentReplicas"]
    if status.get("conditions") == []:
        del status["conditions"]


# --- validation -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RefOptions:
    """CrossVersionObjectReferenceValidationOptions."""

    allow_invalid_api_version: bool = False
    allow_empty_api_group: bool = False


@dataclass(frozen=True)
class SpecOptions:
    """HorizontalPodAutoscalerSpecValidationOptions."""

    min_replicas_lower_bound: int = 1
    scale_target_ref: RefOptions = RefOptions()
    object_metrics: RefOptions = RefOptions(allow_empty_api_group=True)


def api_version_error(ref: Obj, opts: RefOptions) -> str:
    """ValidateAPIVersion: "" when the reference's apiVersion is acceptable."""
    if opts.allow_invalid_api_version:
        return ""
    av = _str(ref.get("apiVersion"))
    if av in ("", "/"):
        group = ""
    elif av.count("/") > 1:
        return f"unexpected GroupVersion string: {av}"  # schema.ParseGroupVersion
    else:
        group = av.split("/")[0] if "/" in av else ""
    if not group and not opts.allow_empty_api_group:
        return "must specify an API group"
    return ""


def validation_options(new: Obj, old: Obj | None) -> SpecOptions:
    """validationOptionsForHorizontalPodAutoscaler (HPAScaleToZero is off, as upstream's default)."""
    new_spec, old_spec = _dict(new.get("spec")), _dict((old or {}).get("spec"))
    lower = 0 if old is not None and _int(old_spec.get("minReplicas")) == 0 else 1
    new_ref, old_ref = _dict(new_spec.get("scaleTargetRef")), _dict(old_spec.get("scaleTargetRef"))
    target = RefOptions()
    if old is not None and _str(old_ref.get("apiVersion")) == _str(new_ref.get("apiVersion")) \
            and _str(old_ref.get("kind")) == _str(new_ref.get("kind")):
        target = RefOptions(allow_invalid_api_version=True)  # an update that keeps kind and apiVersion
    elif new_ref.get("kind") == "ReplicationController":
        target = RefOptions(allow_empty_api_group=True)  # the one scalable kind of the core group
    metrics = RefOptions(allow_empty_api_group=True)
    for m in _list(old_spec.get("metrics")):
        o = _dict(m).get("object")
        if _dict(m).get("type") == OBJECT and isinstance(o, dict) and api_version_error(
                _dict(o.get("describedObject")), metrics):
            metrics = RefOptions(allow_invalid_api_version=True, allow_empty_api_group=True)  # already invalid
            break
    return SpecOptions(lower, target, metrics)


def validate_cross_version_object_reference(ref: Any, path: str, opts: RefOptions) -> list[Cause]:
    ref = _dict(ref)
    causes: list[Cause] = []
    for f in ("kind", "name"):
        value = _str(ref.get(f))
        if not value:
            causes.append(required_cause(child(path, f)))
        else:
            causes += [invalid_cause(child(path, f), value, m) for m in validate_path_segment_name(value)]
    msg = api_version_error(ref, opts)
    if msg:
        causes.append(invalid_cause(child(path, "apiVersion"), _str(ref.get("apiVersion")), msg))
    return causes


def _quantity_sign(q: Any) -> int | None:
    try:
        v = parse_quantity(q)
    except (QuantityError, TypeError, ValueError, ArithmeticError):
        return None
    return (v > 0) - (v < 0)


def _validate_quantity(q: Any, path: str) -> list[Cause]:
    if not isinstance(q, (str, int, float)) or isinstance(q, bool):
        return [invalid_cause(path, _str(q), "must be a quantity")]
    try:
        parse_quantity(q)
    except (QuantityError, TypeError, ValueError, ArithmeticError) as e:
        return [invalid_cause(path, q, str(e))]
    return []


def _type_required(typ: str, path: str, detail: str) -> list[Cause]:
    return [] if typ else [required_cause(child(path, "type"), detail)]


def validate_metric_target(target: Any, path: str) -> list[Cause]:
    t = _dict(target)
    typ = _str(t.get("type"))
    causes = _type_required(typ, path, "must specify a metric target type")
    if typ not in TARGET_TYPES:
        causes.append(invalid_cause(child(path, "type"), typ, "must be either Utilization, Value, or AverageValue"))
    for f in ("value", "averageValue"):
        if t.get(f) is None:
            continue
        bad = _validate_quantity(t[f], child(path, f))
        causes += bad
        if not bad and _quantity_sign(t[f]) != 1:
            causes.append(invalid_cause(child(path, f), _canonical(t[f]), "must be positive"))
    u = _int(t.get("averageUtilization"))
    if u is not None and u < 1:
        causes.append(invalid_cause(child(path, "averageUtilization"), u, "must be greater than 0"))
    return causes


def validate_metric_identifier(ident: Any, path: str) -> list[Cause]:
    name = _str(_dict(ident).get("name"))
    if not name:
        return [required_cause(child(path, "name"), "must specify a metric name")]
    return [invalid_cause(child(path, "name"), name, m) for m in validate_path_segment_name(name)]


def _validate_object_source(src: Obj, path: str, opts: SpecOptions) -> list[Cause]:
    target = _dict(src.get("target"))
    causes = validate_cross_version_object_reference(src.get("describedObject"), child(path, "describedObject"),
                                                     opts.object_metrics)
    causes += validate_metric_identifier(src.get("metric"), child(path, "metric"))
    causes += validate_metric_target(target, child(path, "target"))
    if target.get("value") is None and target.get("averageValue") is None:
        causes.append(required_cause(child(path, "target.averageValue"), "must set either a target value or averageValue"))
    return causes


def _validate_external_source(src: Obj, path: str, opts: SpecOptions) -> list[Cause]:
    target = _dict(src.get("target"))
    causes = validate_metric_identifier(src.get("metric"), child(path, "metric"))
    causes += validate_metric_target(target, child(path, "target"))
    return causes + _one_target_value(target, path, "averageValue", "value", "a target value for metric",
                                      "a per-pod target")


def _validate_pods_source(src: Obj, path: str, opts: SpecOptions) -> list[Cause]:
    target = _dict(src.get("target"))
    causes = validate_metric_identifier(src.get("metric"), child(path, "metric"))
    causes += validate_metric_target(target, child(path, "target"))
    if target.get("averageValue") is None:
        causes.append(required_cause(child(path, "target.averageValue"), "must specify a positive target averageValue"))
    return causes


def _one_target_value(target: Obj, path: str, required: str, forbidden: str, first: str, second: str) -> list[Cause]:
    """Exactly one of the target's `required` and `forbidden` fields (each named as the error is reported)."""
    a, b = target.get(required), target.get(forbidden)
    if a is None and b is None:
        return [required_cause(child(path, f"target.{required}"), f"must set either {first} or {second}")]
    if a is not None and b is not None:
        return [forbidden_cause(child(path, f"target.{forbidden}"), f"may not set both {first} and {second}")]
    return []


def _validate_utilization_or_value(target: Obj, path: str) -> list[Cause]:
    causes = validate_metric_target(target, child(path, "target"))
    return causes + _one_target_value(target, path, "averageUtilization", "averageValue", "a target raw value",
                                      "a target utilization")


def _validate_resource_source(src: Obj, path: str, opts: SpecOptions) -> list[Cause]:
    causes: list[Cause] = []
    if not _str(src.get("name")):
        causes.append(required_cause(child(path, "name"), "must specify a resource name"))
    return causes + _validate_utilization_or_value(_dict(src.get("target")), path)


#: resource names a container may request (helper.IsStandardContainerResourceName, without hugepages-*)
_CONTAINER_RESOURCES = frozenset({"cpu", "memory", "ephemeral-storage"})
#: core/v1 standardResources (helper.IsStandardResourceName)
_STANDARD_RESOURCES = _CONTAINER_RESOURCES | {
    "requests.cpu", "requests.memory", "requests.ephemeral-storage", "requests.storage", "limits.cpu",
    "limits.memory", "limits.ephemeral-storage", "pods", "services", "replicationcontrollers", "resourcequotas",
    "secrets", "configmaps", "persistentvolumeclaims", "services.nodeports", "services.loadbalancers"}


def validate_container_resource_name(name: str, path: str) -> list[Cause]:
    """core/v1 ValidateContainerResourceName."""
    causes = [invalid_cause(path, name, m) for m in is_qualified_name(name)]
    hugepages = name.startswith("hugepages-") or name.startswith("requests.hugepages-")
    if not causes and "/" not in name and name not in _STANDARD_RESOURCES and not hugepages:
        causes.append(invalid_cause(path, name, "must be a standard resource type or fully qualified"))
    if "/" not in name:
        if name not in _CONTAINER_RESOURCES and not name.startswith("hugepages-"):
            causes.append(invalid_cause(path, name, "must be a standard resource for containers"))
    elif "kubernetes.io/" not in name and (name.startswith("requests.") or is_qualified_name("requests." + name)):
        causes.append(invalid_cause(path, name, "doesn't follow extended resource name standard"))
    return causes


def _validate_container_resource_source(src: Obj, path: str, opts: SpecOptions) -> list[Cause]:
    causes: list[Cause] = []
    name, container = _str(src.get("name")), _str(src.get("container"))
    if not name:
        causes.append(required_cause(child(path, "name"), "must specify a resource name"))
    else:
        causes += validate_container_resource_name(name, child(path, "name"))
    if not container:
        causes.append(required_cause(child(path, "container"), "must specify a container"))
    else:
        causes += validate_dns1123_label(container, child(path, "container"))
    return causes + _validate_utilization_or_value(_dict(src.get("target")), path)


#: the sources in the order upstream's validateMetricSpec looks at them
_SOURCE_VALIDATORS = (("object", _validate_object_source), ("external", _validate_external_source),
                      ("pods", _validate_pods_source), ("resource", _validate_resource_source),
                      ("containerResource", _validate_container_resource_source))


def validate_metric_spec(spec: Any, path: str, opts: SpecOptions) -> list[Cause]:
    spec = _dict(spec)
    typ = _str(spec.get("type"))
    causes = _type_required(typ, path, "must specify a metric source type")
    if typ not in SOURCE_FIELDS:
        # upstream reports this twice (before and in its switch); one cause says it
        causes.append(not_supported_cause(child(path, "type"), typ, METRIC_SOURCE_TYPES))
    present: list[str] = []
    for f, validate in _SOURCE_VALIDATORS:
        if spec.get(f) is not None:
            present.append(f)
            if len(present) == 1:
                causes += validate(_dict(spec[f]), child(path, f), opts)
    expected = SOURCE_FIELDS.get(typ, "")
    if expected and spec.get(expected) is None:
        causes.append(required_cause(child(path, expected), "must populate information for the given metric source"))
    if len(present) != 1:
        causes += [forbidden_cause(child(path, f), "must populate the given metric source only")
                   for f in sorted(set(present) - {expected})]
    return causes


def validate_behavior(behavior: Any, path: str) -> list[Cause]:
    causes: list[Cause] = []
    for direction in ("scaleUp", "scaleDown"):
        rules = _dict(behavior).get(direction)
        if rules is None:
            continue
        rules, p = _dict(rules), child(path, direction)
        window = _int(rules.get("stabilizationWindowSeconds"))
        if window is not None and window < 0:
            causes.append(invalid_cause(child(p, "stabilizationWindowSeconds"), window,
                                        "must be greater than or equal to zero"))
        if window is not None and window > MAX_STABILIZATION_WINDOW_SECONDS:
            causes.append(invalid_cause(child(p, "stabilizationWindowSeconds"), window,
                                        f"must be less than or equal to {MAX_STABILIZATION_WINDOW_SECONDS}"))
        select = rules.get("selectPolicy")
        if select is not None and select not in SELECT_POLICIES:
            causes.append(not_supported_cause(child(p, "selectPolicy"), _str(select), SELECT_POLICIES))
        policies = _list(rules.get("policies"))
        if not policies:
            causes.append(required_cause(child(p, "policies"), "must specify at least one Policy"))
        for i, policy in enumerate(policies):
            causes += _validate_policy(_dict(policy), index(child(p, "policies"), i))
        tolerance = rules.get("tolerance")
        if tolerance is not None:
            bad = _validate_quantity(tolerance, child(p, "tolerance"))
            if not bad and (_quantity_sign(tolerance) or 0) < 0:
                bad = [invalid_cause(child(p, "tolerance"), _canonical(tolerance), IS_NEGATIVE_ERROR_MSG)]
            causes += bad
    return causes


def _validate_policy(policy: Obj, path: str) -> list[Cause]:
    causes: list[Cause] = []
    typ = _str(policy.get("type"))
    if typ not in POLICY_TYPES:
        causes.append(not_supported_cause(child(path, "type"), typ, POLICY_TYPES))
    value, period = _int(policy.get("value")) or 0, _int(policy.get("periodSeconds")) or 0
    if value <= 0:
        causes.append(invalid_cause(child(path, "value"), value, "must be greater than zero"))
    if period <= 0:
        causes.append(invalid_cause(child(path, "periodSeconds"), period, "must be greater than zero"))
    if period > MAX_PERIOD_SECONDS:
        causes.append(invalid_cause(child(path, "periodSeconds"), period,
                                    f"must be less than or equal to {MAX_PERIOD_SECONDS}"))
    return causes


def validate_spec(spec: Any, opts: SpecOptions, path: str = "spec") -> list[Cause]:
    """validateHorizontalPodAutoscalerSpec."""
    spec = _dict(spec)
    causes: list[Cause] = []
    min_replicas, max_replicas = _int(spec.get("minReplicas")), _int(spec.get("maxReplicas")) or 0
    if min_replicas is not None and min_replicas < opts.min_replicas_lower_bound:
        causes.append(invalid_cause(child(path, "minReplicas"), min_replicas,
                                    f"must be greater than or equal to {opts.min_replicas_lower_bound}"))
    if max_replicas < 1:
        causes.append(invalid_cause(child(path, "maxReplicas"), max_replicas, "must be greater than 0"))
    if min_replicas is not None and max_replicas < min_replicas:
        causes.append(invalid_cause(child(path, "maxReplicas"), max_replicas,
                                    "must be greater than or equal to `minReplicas`"))
    causes += validate_cross_version_object_reference(spec.get("scaleTargetRef"), child(path, "scaleTargetRef"),
                                                      opts.scale_target_ref)
    metrics = _list(spec.get("metrics"))
    for i, m in enumerate(metrics):
        causes += validate_metric_spec(m, index(child(path, "metrics"), i), opts)
    if min_replicas == 0 and not any(_dict(m).get("type") in (OBJECT, EXTERNAL) for m in metrics):
        causes.append(forbidden_cause(child(path, "metrics"),
                                      "must specify at least one Object or External metric to support scaling to "
                                      "zero replicas"))
    causes += validate_behavior(spec.get("behavior"), child(path, "behavior"))
    return causes


# --- v1 <-> v2 ------------------------------------------------------------------------------------

_GO_HTML_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def go_marshal(value: Any) -> str:
    """encoding/json.Marshal of a value built in Go's field order: compact, <>& escaped, UTF-8 kept."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    for ch, esc in _GO_HTML_ESCAPES.items():
        text = text.replace(ch, esc)
    return text


def _put(out: Obj, key: str, value: Any) -> None:
    """An omitempty pointer field: written only when set."""
    if value is not None:
        out[key] = value


def _quantity(v: Any) -> Any:
    """A non-pointer resource.Quantity: its zero value is "0"."""
    return "0" if v is None else _canonical(v)


def _optional_quantity(v: Any) -> Any:
    return None if v is None else _canonical(v)


def _ref(r: Any) -> Obj:
    r = _dict(r)
    out = {"kind": r.get("kind") or "", "name": r.get("name") or ""}
    if r.get("apiVersion"):
        out["apiVersion"] = r["apiVersion"]
    return out


def _selector(sel: Any) -> Obj | None:
    """A metav1.LabelSelector as Go marshals it (map keys sorted, empty parts left out)."""
    if not isinstance(sel, dict):
        return None
    out: Obj = {}
    if isinstance(sel.get("matchLabels"), dict) and sel["matchLabels"]:
        out["matchLabels"] = dict(sorted(sel["matchLabels"].items()))
    if _list(sel.get("matchExpressions")):
        out["matchExpressions"] = []
        for e in sel["matchExpressions"]:
            item = {"key": _dict(e).get("key") or "", "operator": _dict(e).get("operator") or ""}
            if _dict(e).get("values"):
                item["values"] = e["values"]
            out["matchExpressions"].append(item)
    return out


def _identifier(name: Any, selector: Any) -> Obj:
    out: Obj = {"name": name or ""}
    _put(out, "selector", selector)
    return out


def is_cpu_utilization(metric: Any) -> bool:
    """The one metric autoscaling/v1 carries in targetCPUUtilizationPercentage."""
    m = _dict(metric)
    resource = _dict(m.get("resource"))
    return (m.get("type") == RESOURCE and resource.get("name") == "cpu"
            and _dict(resource.get("target")).get("averageUtilization") is not None)


# v1's MetricSpec and MetricStatus are v2beta1's shapes: a spec's "target*" fields are a status's
# "current*" ones, and a status writes some quantities a spec leaves out when unset (non-pointers there).
TARGET, CURRENT = "target", "current"


def metric_to_v1(m: Obj, part: str) -> Obj:
    """Convert_autoscaling_MetricSpec_To_v1_MetricSpec (part TARGET) / ..._MetricStatus_... (part CURRENT)."""
    status = part == CURRENT
    out: Obj = {"type": m.get("type") or ""}
    if isinstance(m.get("object"), dict):
        o = m["object"]
        value, ident = _dict(o.get(part)), _dict(o.get("metric"))
        v: Obj = {"target": _ref(o.get("describedObject")), "metricName": ident.get("name") or "",
                  f"{part}Value": _quantity(value.get("value"))}
        _put(v, "selector", _selector(ident.get("selector")))
        _put(v, "averageValue", _optional_quantity(value.get("averageValue")))
        out["object"] = v
    if isinstance(m.get("pods"), dict):
        value, ident = _dict(m["pods"].get(part)), _dict(m["pods"].get("metric"))
        v = {"metricName": ident.get("name") or "", f"{part}AverageValue": _quantity(value.get("averageValue"))}
        _put(v, "selector", _selector(ident.get("selector")))
        out["pods"] = v
    for field in ("resource", "containerResource"):
        if isinstance(m.get(field), dict):
            value = _dict(m[field].get(part))
            v = {"name": m[field].get("name") or ""}
            _put(v, f"{part}AverageUtilization", value.get("averageUtilization"))
            _put(v, f"{part}AverageValue", (_quantity if status else _optional_quantity)(value.get("averageValue")))
            if field == "containerResource":
                v["container"] = m[field].get("container") or ""
            out[field] = v
    if isinstance(m.get("external"), dict):
        value, ident = _dict(m["external"].get(part)), _dict(m["external"].get("metric"))
        v = {"metricName": ident.get("name") or ""}
        _put(v, "metricSelector", _selector(ident.get("selector")))
        _put(v, f"{part}Value", (_quantity if status else _optional_quantity)(value.get("value")))
        _put(v, f"{part}AverageValue", _optional_quantity(value.get("averageValue")))
        out["external"] = v
    return out


def metric_from_v1(m: Obj, part: str) -> Obj:
    """Convert_v1_MetricSpec_To_autoscaling_MetricSpec (part TARGET) / ..._MetricStatus_... (part CURRENT).
    A target says its type, from which of its values are set."""
    spec = part == TARGET
    out: Obj = {"type": m.get("type") or ""}
    if isinstance(m.get("object"), dict):
        o = m["object"]
        value: Obj = {"type": "Value" if o.get("averageValue") is None else "AverageValue"} if spec else {}
        value["value"] = _quantity(o.get(f"{part}Value"))
        _put(value, "averageValue", _optional_quantity(o.get("averageValue")))
        ident, described = _identifier(o.get("metricName"), o.get("selector")), _ref(o.get("target"))
        out["object"] = ({"describedObject": described, part: value, "metric": ident} if spec
                         else {"metric": ident, part: value, "describedObject": described})
    if isinstance(m.get("pods"), dict):
        p = m["pods"]
        value = {"type": "AverageValue"} if spec else {}
        value["averageValue"] = _quantity(p.get(f"{part}AverageValue"))
        out["pods"] = {"metric": _identifier(p.get("metricName"), p.get("selector")), part: value}
    for field in ("resource", "containerResource"):
        if isinstance(m.get(field), dict):
            src = m[field]
            utilization = src.get(f"{part}AverageUtilization")
            value = {"type": "AverageValue" if utilization is None else "Utilization"} if spec else {}
            _put(value, "averageValue", (_optional_quantity if spec else _quantity)(src.get(f"{part}AverageValue")))
            _put(value, "averageUtilization", utilization)
            v: Obj = {"name": src.get("name") or "", part: value}
            if field == "containerResource":
                v["container"] = src.get("container") or ""
            out[field] = v
    if isinstance(m.get("external"), dict):
        e = m["external"]
        value = {"type": "AverageValue" if e.get(f"{part}Value") is None else "Value"} if spec else {}
        _put(value, "value", (_optional_quantity if spec else _quantity)(e.get(f"{part}Value")))
        _put(value, "averageValue", _optional_quantity(e.get(f"{part}AverageValue")))
        out["external"] = {"metric": _identifier(e.get("metricName"), e.get("metricSelector")), part: value}
    return out


def _condition(c: Obj) -> Obj:
    """A HorizontalPodAutoscalerCondition as Go writes it (the same fields in v1 and v2)."""
    out: Obj = {"type": c.get("type") or "", "status": c.get("status") or "",
                "lastTransitionTime": c.get("lastTransitionTime")}
    for f in ("reason", "message"):
        if c.get(f):
            out[f] = c[f]
    _put(out, "observedGeneration", c.get("observedGeneration"))
    return out


# The behavior annotation is json.Marshal of upstream's *internal* type, which has no json tags:
# Go field names, nil pointers and slices as null.
_GO_RULE_FIELDS = (("StabilizationWindowSeconds", "stabilizationWindowSeconds"), ("SelectPolicy", "selectPolicy"),
                   ("Policies", "policies"), ("Tolerance", "tolerance"))
_GO_POLICY_FIELDS = (("Type", "type"), ("Value", "value"), ("PeriodSeconds", "periodSeconds"))


def _behavior_to_go(behavior: Obj) -> Obj:
    def rules(r: Any) -> Obj | None:
        if not isinstance(r, dict):
            return None
        out: Obj = {}
        for go, js in _GO_RULE_FIELDS:
            v = r.get(js)
            if js == "policies" and isinstance(v, list):
                v = [{g: _dict(p).get(j, "" if j == "type" else 0) for g, j in _GO_POLICY_FIELDS} for p in v]
            elif js == "tolerance":
                v = _optional_quantity(v)
            out[go] = v
        return out

    return {"ScaleUp": rules(behavior.get("scaleUp")), "ScaleDown": rules(behavior.get("scaleDown"))}


def _go_field(obj: Obj, name: str) -> Any:
    """A field as encoding/json finds it: the exact key, else one that matches ignoring case."""
    if name in obj:
        return obj[name]
    return next((v for k, v in obj.items() if k.lower() == name.lower()), None)


def _policy_from_go(p: Obj) -> Obj:
    out: Obj = {}
    for go, js in _GO_POLICY_FIELDS:
        v = _go_field(p, go)
        out[js] = ("" if js == "type" else 0) if v is None else v
    return out


def _behavior_from_go(text: str) -> Obj | None:
    """The annotation's behavior; None when it does not decode, does not fit the type or is empty:
    upstream moves only well-formed data (`err == nil && behavior != (HorizontalPodAutoscalerBehavior{})`)."""
    try:
        raw = json.loads(text)
    except ValueError:
        return None
    if not isinstance(raw, dict):
        return None

    def rules(r: Any) -> Obj | None:
        if not isinstance(r, dict):
            return None
        out: Obj = {}
        for go, js in _GO_RULE_FIELDS:
            v = _go_field(r, go)
            if v is None:
                continue
            if js == "policies" and isinstance(v, list):
                v = [_policy_from_go(p) if isinstance(p, dict) else p for p in v]
            out[js] = v
        return out

    behavior: Obj = {}
    for go, js in (("ScaleUp", "scaleUp"), ("ScaleDown", "scaleDown")):
        r = _go_field(raw, go)
        behavior[js] = rules(r) if isinstance(r, dict) else r
    if not _well_typed(behavior, "HorizontalPodAutoscalerBehavior"):
        return None
    return {k: v for k, v in behavior.items() if v is not None} or None


# The Go types the annotations are decoded into (autoscaling/v1's MetricSpec and MetricStatus are
# v2beta1's shapes; the behavior is the internal type, checked once its field names are matched), as
# apiserver.schema's prune tree: what upstream's typed json.Unmarshal refuses is refused here.
_SELECTOR = {"p": {"matchLabels": {"m": "s"}, "matchExpressions": {"a": "LabelSelectorRequirement"}}}
_V1_SOURCES = {
    "ObjectMetric": {"target": "CrossVersionObjectReference", "metricName": "s", "selector": "LabelSelector",
                     "averageValue": "q"},
    "PodsMetric": {"metricName": "s", "selector": "LabelSelector"},
    "ResourceMetric": {"name": "s"},
    "ContainerResourceMetric": {"name": "s", "container": "s"},
    "ExternalMetric": {"metricName": "s", "metricSelector": "LabelSelector"},
}
#: each source's values, by part: a spec's "target*" fields are a status's "current*" ones
_V1_VALUES = {"ObjectMetric": {"{}Value": "q"}, "PodsMetric": {"{}AverageValue": "q"},
              "ResourceMetric": {"{}AverageUtilization": "i", "{}AverageValue": "q"},
              "ContainerResourceMetric": {"{}AverageUtilization": "i", "{}AverageValue": "q"},
              "ExternalMetric": {"{}Value": "q", "{}AverageValue": "q"}}
_SOURCE_TYPES = {"object": "ObjectMetric", "pods": "PodsMetric", "resource": "ResourceMetric",
                 "containerResource": "ContainerResourceMetric", "external": "ExternalMetric"}


def _annotation_types() -> dict[str, Any]:
    types: dict[str, Any] = {
        "LabelSelector": _SELECTOR,
        "LabelSelectorRequirement": {"p": {"key": "s", "operator": "s", "values": {"a": "s"}}},
        "CrossVersionObjectReference": {"p": {"kind": "s", "name": "s", "apiVersion": "s"}},
        "HorizontalPodAutoscalerCondition": {"p": {"type": "s", "status": "s", "lastTransitionTime": "s",
                                                   "reason": "s", "message": "s", "observedGeneration": "i"}},
        "HPAScalingPolicy": {"p": {"type": "s", "value": "i", "periodSeconds": "i"}},
        "HPAScalingRules": {"p": {"stabilizationWindowSeconds": "i", "selectPolicy": "s",
                                  "policies": {"a": "HPAScalingPolicy"}, "tolerance": "q"}},
        "HorizontalPodAutoscalerBehavior": {"p": {"scaleUp": "HPAScalingRules", "scaleDown": "HPAScalingRules"}},
    }
    for kind, part in (("Source", "target"), ("Status", "current")):
        for name, fields in _V1_SOURCES.items():
            values = {f.format(part): t for f, t in _V1_VALUES[name].items()}
            types[name + kind] = {"p": {**fields, **values}}
        types["Metric" + ("Spec" if kind == "Source" else kind)] = {"p": {
            "type": "s", **{f: t + kind for f, t in _SOURCE_TYPES.items()}}}
    return {"types": types, "kinds": {f"autoscaling/v1/{k}": k for k in (
        "MetricSpec", "MetricStatus", "HorizontalPodAutoscalerCondition", "HorizontalPodAutoscalerBehavior")}}


_ANNOTATION_SCHEMA = PruneSchema(_annotation_types())
#: annotation → the Go type of its list's items
_ANNOTATION_ITEMS = {METRICS_ANNOTATION: "MetricSpec", CURRENT_METRICS_ANNOTATION: "MetricStatus",
                     CONDITIONS_ANNOTATION: "HorizontalPodAutoscalerCondition"}


def _cannot_handle(key: str, detail: str) -> errors.StatusError:
    return errors.bad_request(f'{KIND} in version "v1" cannot be handled as a {KIND}: '
                              f"annotation {key}: json: {detail}")


def _well_typed(value: Any, type_name: str) -> bool:
    """True when `value` (a decoded JSON object) fits the Go type; unknown fields and nulls are dropped."""
    try:
        _ANNOTATION_SCHEMA.prune("autoscaling", "v1", type_name, value)
    except TypeMismatch:
        return False
    return True


def _annotation_list(annotations: Obj, key: str) -> list[Obj] | None:
    """A JSON list of objects in an annotation; None when absent or not JSON (left alone). JSON of the
    wrong shape is a 400, as upstream's typed json.Unmarshal fails the decoding of the whole object."""
    text = annotations.get(key)
    if not isinstance(text, str):
        return None
    try:
        items = json.loads(text)
    except ValueError:
        return None
    if items is None:
        return None  # Go: a nil slice
    item_type = _ANNOTATION_ITEMS[key]
    if not isinstance(items, list):
        raise _cannot_handle(key, f"cannot unmarshal {json_type(items)} into Go value of type []v1.{item_type}")
    out: list[Obj] = []
    for item in items:
        if item is None:
            item = {}  # a null element decodes to the zero value
        if not isinstance(item, dict):
            raise _cannot_handle(key, f"cannot unmarshal {json_type(item)} into Go value of type v1.{item_type}")
        try:
            _ANNOTATION_SCHEMA.prune("autoscaling", "v1", item_type, item)
        except TypeMismatch as e:
            raise _cannot_handle(key, f"cannot unmarshal {e.got} into Go struct field {item_type}.{e.path} "
                                      f"of type {e.want}") from None
        out.append(item)
    return out


def to_v1(obj: Obj) -> Obj:
    """The stored (v2) object as autoscaling/v1 (Convert_autoscaling_HorizontalPodAutoscaler_To_v1_...)."""
    meta = dict(_dict(obj.get("metadata")))
    annotations = {k: v for k, v in _dict(meta.get("annotations")).items() if k not in ROUND_TRIP_ANNOTATIONS}
    spec, status = _dict(obj.get("spec")), _dict(obj.get("status"))
    metrics, current = _list(spec.get("metrics")), _list(status.get("currentMetrics"))
    others = [metric_to_v1(_dict(m), TARGET) for m in metrics if not is_cpu_utilization(m)]
    if others:
        annotations[METRICS_ANNOTATION] = go_marshal(others)
    if current:
        annotations[CURRENT_METRICS_ANNOTATION] = go_marshal([metric_to_v1(_dict(m), CURRENT) for m in current])
    if status.get("conditions"):
        annotations[CONDITIONS_ANNOTATION] = go_marshal([_condition(_dict(c)) for c in status["conditions"]])
    if isinstance(spec.get("behavior"), dict):
        annotations[BEHAVIOR_ANNOTATION] = go_marshal(_behavior_to_go(spec["behavior"]))
    if annotations:
        meta["annotations"] = annotations
    else:
        meta.pop("annotations", None)

    v1_spec: Obj = {"scaleTargetRef": _ref(spec.get("scaleTargetRef"))}
    _put(v1_spec, "minReplicas", spec.get("minReplicas"))
    v1_spec["maxReplicas"] = spec.get("maxReplicas") or 0
    for m in metrics:  # the first cpu Resource metric decides, as upstream's loop breaks there
        resource = _dict(_dict(m).get("resource"))
        if _dict(m).get("type") == RESOURCE and resource.get("name") == "cpu":
            _put(v1_spec, "targetCPUUtilizationPercentage", _dict(resource.get("target")).get("averageUtilization"))
            break

    v1_status: Obj = {}
    _put(v1_status, "observedGeneration", status.get("observedGeneration"))
    _put(v1_status, "lastScaleTime", status.get("lastScaleTime"))
    v1_status["currentReplicas"] = status.get("currentReplicas") or 0
    v1_status["desiredReplicas"] = status.get("desiredReplicas") or 0
    for m in current:  # no break upstream: the last cpu utilization wins
        resource = _dict(_dict(m).get("resource"))
        utilization = _dict(resource.get("current")).get("averageUtilization")
        if _dict(m).get("type") == RESOURCE and resource.get("name") == "cpu" and utilization is not None:
            v1_status["currentCPUUtilizationPercentage"] = utilization
    return {"kind": KIND, "apiVersion": V1, "metadata": meta, "spec": v1_spec, "status": v1_status}


def from_v1(obj: Obj) -> Obj:
    """An autoscaling/v1 object in the stored (v2) form (Convert_v1_HorizontalPodAutoscaler_To_autoscaling_...)."""
    meta = dict(_dict(obj.get("metadata")))
    annotations = _dict(meta.get("annotations"))
    v1_spec, v1_status = _dict(obj.get("spec")), _dict(obj.get("status"))

    spec: Obj = {"scaleTargetRef": _ref(v1_spec.get("scaleTargetRef"))}
    _put(spec, "minReplicas", v1_spec.get("minReplicas"))
    spec["maxReplicas"] = v1_spec.get("maxReplicas") or 0
    metrics = [metric_from_v1(m, TARGET) for m in _annotation_list(annotations, METRICS_ANNOTATION) or []]
    if v1_spec.get("targetCPUUtilizationPercentage") is not None:
        metrics.append(cpu_utilization_metric(v1_spec["targetCPUUtilizationPercentage"]))
    # v1 formerly defaulted in the controller; conversion applies it, knowing the annotation's metrics
    spec["metrics"] = metrics or [cpu_utilization_metric(DEFAULT_CPU_UTILIZATION)]
    behavior = _behavior_from_go(annotations[BEHAVIOR_ANNOTATION]) if BEHAVIOR_ANNOTATION in annotations else None
    _put(spec, "behavior", behavior)

    status: Obj = {}
    _put(status, "observedGeneration", v1_status.get("observedGeneration"))
    _put(status, "lastScaleTime", v1_status.get("lastScaleTime"))
    status["currentReplicas"] = v1_status.get("currentReplicas") or 0
    status["desiredReplicas"] = v1_status.get("desiredReplicas") or 0
    current = _annotation_list(annotations, CURRENT_METRICS_ANNOTATION)
    if current is not None:  # "the ones here have more information"
        status["currentMetrics"] = [metric_from_v1(m, CURRENT) for m in current]
    elif v1_status.get("currentCPUUtilizationPercentage") is not None:
        status["currentMetrics"] = [{"type": RESOURCE, "resource": {"name": "cpu", "current": {
            "averageUtilization": v1_status["currentCPUUtilizationPercentage"]}}}]
    conditions = _annotation_list(annotations, CONDITIONS_ANNOTATION)
    if conditions:
        status["conditions"] = [_condition(c) for c in conditions]
    normalize_status(status)

    kept = {k: v for k, v in annotations.items() if k not in ROUND_TRIP_ANNOTATIONS}
    if kept:
        meta["annotations"] = kept
    else:
        meta.pop("annotations", None)
    return {"apiVersion": V2, "kind": KIND, "metadata": meta, "spec": spec, "status": status}


# --- the strategy ---------------------------------------------------------------------------------


class HorizontalPodAutoscalerStrategy(Strategy):
    has_status = True
    tracks_generation = True

    def initial_status(self, obj: Obj) -> None:
        obj["status"] = {"currentMetrics": None, "desiredReplicas": 0}

    def default(self, obj: Obj) -> None:
        set_defaults(obj)

    def validate(self, obj: Obj, namespaced: bool) -> list[Cause]:
        return super().validate(obj, namespaced) + validate_spec(obj.get("spec"), validation_options(obj, None))

    def validate_update(self, new: Obj, old: Obj, namespaced: bool) -> list[Cause]:
        causes = Strategy.validate(self, new, namespaced)
        causes += validate_object_meta_update(_dict(new.get("metadata")), _dict(old.get("metadata")))
        return causes + validate_spec(new.get("spec"), validation_options(new, old))

    def prepare_for_status_update(self, new: Obj, old: Obj) -> Obj:
        merged = super().prepare_for_status_update(new, old)
        status = merged.get("status")
        merged["status"] = status = dict(status) if isinstance(status, dict) else {}
        normalize_status(status)
        return merged

    def validate_status_update(self, new: Obj, old: Obj) -> list[Cause]:
        status = _dict(new.get("status"))
        causes = validate_object_meta_update(_dict(new.get("metadata")), _dict(old.get("metadata")))
        causes += validate_nonnegative(status.get("currentReplicas"), "status.currentReplicas")
        return causes + validate_nonnegative(status.get("desiredReplicas"), "status.desiredReplicas")

    # -- versions: v2 is stored, v1 converted both ways -------------------------------------

    def to_storage(self, res: Any, obj: Obj) -> Obj:
        return from_v1(obj) if res.api_version == V1 else obj

    def output_converter(self, res: Any) -> Any:
        return to_v1 if res.api_version == V1 else None
