"""autoscaling HorizontalPodAutoscalers: defaults, validation, v1 <-> v2 conversion and the table."""

from __future__ import annotations

import copy
import datetime as dt
import json

import pytest

from apiserver.registry import autoscaling as hpa
from apiserver.resources import TABLE
from apiserver.tables import PRINTERS, hpa_targets

REF = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}


def _hpa(spec: dict, **extra) -> dict:
    return {"apiVersion": hpa.V2, "kind": hpa.KIND, "metadata": {"name": "web", "namespace": "ns"},
            "spec": spec, **extra}


def _errors(spec: dict, old: dict | None = None) -> list[str]:
    new = _hpa(spec)
    return [f"{c['field']}: {c['message']}" for c in hpa.validate_spec(spec, hpa.validation_options(new, old))]


# --- defaults ---------------------------------------------------------------------------------------


def test_defaults_min_replicas_and_the_cpu_metric() -> None:
    obj = _hpa({"scaleTargetRef": REF, "maxReplicas": 3})
    hpa.set_defaults(obj)
    assert obj["spec"] == {"scaleTargetRef": REF, "minReplicas": 1, "maxReplicas": 3, "metrics": [
        {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]}
    assert list(obj["spec"]) == ["scaleTargetRef", "minReplicas", "maxReplicas", "metrics"]  # Go's order


def test_behavior_is_defaulted_only_when_given() -> None:
    obj = _hpa({"scaleTargetRef": REF, "maxReplicas": 3, "minReplicas": 2})
    hpa.set_defaults(obj)
    assert "behavior" not in obj["spec"] and obj["spec"]["minReplicas"] == 2

    obj = _hpa({"scaleTargetRef": REF, "maxReplicas": 3, "behavior": {"scaleDown": {"stabilizationWindowSeconds": 60}}})
    hpa.set_defaults(obj)
    assert obj["spec"]["behavior"] == {
        "scaleUp": {"stabilizationWindowSeconds": 0, "selectPolicy": "Max", "policies": [
            {"type": "Pods", "value": 4, "periodSeconds": 15}, {"type": "Percent", "value": 100, "periodSeconds": 15}]},
        # no stabilization default: the controller's --horizontal-pod-autoscaler-downscale-stabilization applies
        "scaleDown": {"stabilizationWindowSeconds": 60, "selectPolicy": "Max",
                      "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}]},
    }
    # an explicit empty list is kept (and refused by validation), a null one is defaulted
    obj = _hpa({"scaleTargetRef": REF, "maxReplicas": 3,
                "behavior": {"scaleUp": {"policies": []}, "scaleDown": {"policies": None, "tolerance": "0.05"}}})
    hpa.set_defaults(obj)
    assert obj["spec"]["behavior"]["scaleUp"]["policies"] == []
    assert obj["spec"]["behavior"]["scaleDown"] == {"selectPolicy": "Max", "policies": [
        {"type": "Percent", "value": 100, "periodSeconds": 15}], "tolerance": "50m"}
    assert _errors(obj["spec"]) == ["spec.behavior.scaleUp.policies: Required value: must specify at least one Policy"]


def test_quantities_are_stored_canonical() -> None:
    obj = _hpa({"scaleTargetRef": REF, "maxReplicas": 3, "metrics": [
        {"type": "Pods", "pods": {"metric": {"name": "qps"}, "target": {"type": "AverageValue", "averageValue": "0.5"}}},
        {"type": "External", "external": {"metric": {"name": "q"}, "target": {"type": "Value", "value": 1000}}},
        {"type": "Object", "object": {"describedObject": REF, "metric": {"name": "m"},
                                      "target": {"type": "Value", "value": "bogus"}}}]})
    hpa.set_defaults(obj)
    targets = [m[m["type"].lower()]["target"] for m in obj["spec"]["metrics"]]
    assert [t.get("averageValue") or t.get("value") for t in targets] == ["500m", "1k", "bogus"]
    assert _errors(obj["spec"]) == [
        "spec.metrics[2].object.target.value: Invalid value: \"bogus\": quantities must match the regular "
        "expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"]


# --- validation -------------------------------------------------------------------------------------


def test_spec_validation_messages() -> None:
    assert _errors({"scaleTargetRef": {}, "minReplicas": 0, "maxReplicas": 0}) == [
        "spec.minReplicas: Invalid value: 0: must be greater than or equal to 1",
        "spec.maxReplicas: Invalid value: 0: must be greater than 0",
        "spec.scaleTargetRef.kind: Required value",
        "spec.scaleTargetRef.name: Required value",
        'spec.scaleTargetRef.apiVersion: Invalid value: "": must specify an API group',
        "spec.metrics: Forbidden: must specify at least one Object or External metric to support scaling to zero "
        "replicas",
    ]
    assert _errors({"scaleTargetRef": {"apiVersion": "a/b/c", "kind": "..", "name": "a/b"}, "minReplicas": 5,
                    "maxReplicas": 3}) == [
        "spec.maxReplicas: Invalid value: 3: must be greater than or equal to `minReplicas`",
        "spec.scaleTargetRef.kind: Invalid value: \"..\": may not be '..'",
        "spec.scaleTargetRef.name: Invalid value: \"a/b\": may not contain '/'",
        'spec.scaleTargetRef.apiVersion: Invalid value: "a/b/c": unexpected GroupVersion string: a/b/c',
    ]
    # a ReplicationController is the one target of the core group
    assert _errors({"scaleTargetRef": {"kind": "ReplicationController", "name": "rc"}, "maxReplicas": 3}) == []


def test_metric_validation_messages() -> None:
    metrics = [
        {"type": ""},
        {"type": "Pods"},
        {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 0}},
         "pods": {}},  # upstream validates the first source present (pods), then forbids it
        {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "AverageValue", "averageValue": "-1",
                                                                    "averageUtilization": 0}}},
        {"type": "Object", "object": {"describedObject": {"kind": "Service", "name": "s", "apiVersion": "v1"},
                                      "metric": {"name": "a/b"}, "target": {"type": "Bogus"}}},
        {"type": "External", "external": {"metric": {"name": "q"},
                                          "target": {"type": "Value", "value": "1", "averageValue": "2"}}},
        {"type": "ContainerResource", "containerResource": {"name": "foo", "container": "Bad",
                                                            "target": {"type": "AverageValue"}}},
    ]
    assert _errors({"scaleTargetRef": REF, "maxReplicas": 3, "metrics": metrics}) == [
        "spec.metrics[0].type: Required value: must specify a metric source type",
        'spec.metrics[0].type: Unsupported value: "": supported values: "ContainerResource", "External", "Object", '
        '"Pods", "Resource"',
        "spec.metrics[1].pods: Required value: must populate information for the given metric source",
        "spec.metrics[2].pods.metric.name: Required value: must specify a metric name",
        "spec.metrics[2].pods.target.type: Required value: must specify a metric target type",
        'spec.metrics[2].pods.target.type: Invalid value: "": must be either Utilization, Value, or AverageValue',
        "spec.metrics[2].pods.target.averageValue: Required value: must specify a positive target averageValue",
        "spec.metrics[2].pods: Forbidden: must populate the given metric source only",
        'spec.metrics[3].resource.target.averageValue: Invalid value: "-1": must be positive',
        "spec.metrics[3].resource.target.averageUtilization: Invalid value: 0: must be greater than 0",
        "spec.metrics[3].resource.target.averageValue: Forbidden: may not set both a target raw value and a target "
        "utilization",
        "spec.metrics[4].object.metric.name: Invalid value: \"a/b\": may not contain '/'",
        'spec.metrics[4].object.target.type: Invalid value: "Bogus": must be either Utilization, Value, or '
        'AverageValue',
        "spec.metrics[4].object.target.averageValue: Required value: must set either a target value or averageValue",
        "spec.metrics[5].external.target.value: Forbidden: may not set both a target value for metric and a per-pod "
        "target",
        'spec.metrics[6].containerResource.name: Invalid value: "foo": must be a standard resource type or fully '
        'qualified',
        'spec.metrics[6].containerResource.name: Invalid value: "foo": must be a standard resource for containers',
        'spec.metrics[6].containerResource.container: Invalid value: "Bad": a lowercase RFC 1123 label must consist '
        "of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. "
        "'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
        "spec.metrics[6].containerResource.target.averageUtilization: Required value: must set either a target raw "
        "value or a target utilization",
    ]


def test_behavior_validation_messages() -> None:
    behavior = {"scaleUp": {"stabilizationWindowSeconds": -1, "selectPolicy": "Foo", "policies": []},
                "scaleDown": {"stabilizationWindowSeconds": 3601, "tolerance": "-0.1",
                              "policies": [{"type": "X", "value": 0, "periodSeconds": 1801},
                                           {"type": "Pods", "value": 1, "periodSeconds": 0}]}}
    assert _errors({"scaleTargetRef": REF, "maxReplicas": 3, "behavior": behavior}) == [
        "spec.behavior.scaleUp.stabilizationWindowSeconds: Invalid value: -1: must be greater than or equal to zero",
        'spec.behavior.scaleUp.selectPolicy: Unsupported value: "Foo": supported values: "Disabled", "Max", "Min"',
        "spec.behavior.scaleUp.policies: Required value: must specify at least one Policy",
        "spec.behavior.scaleDown.stabilizationWindowSeconds: Invalid value: 3601: must be less than or equal to 3600",
        'spec.behavior.scaleDown.policies[0].type: Unsupported value: "X": supported values: "Percent", "Pods"',
        "spec.behavior.scaleDown.policies[0].value: Invalid value: 0: must be greater than zero",
        "spec.behavior.scaleDown.policies[0].periodSeconds: Invalid value: 1801: must be less than or equal to 1800",
        "spec.behavior.scaleDown.policies[1].periodSeconds: Invalid value: 0: must be greater than zero",
        'spec.behavior.scaleDown.tolerance: Invalid value: "-100m": must be greater than or equal to 0',
    ]


def test_update_ratchets_as_upstream() -> None:
    zero = {"scaleTargetRef": REF, "maxReplicas": 3, "minReplicas": 0, "metrics": [
        {"type": "External", "external": {"metric": {"name": "q"}, "target": {"type": "Value", "value": "1"}}}]}
    assert _errors(zero) == ["spec.minReplicas: Invalid value: 0: must be greater than or equal to 1"]
    assert _errors(zero, old=_hpa(copy.deepcopy(zero))) == []  # it already scaled to zero
    # an invalid apiVersion that an update leaves alone (with the kind) is not checked again
    legacy = {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "maxReplicas": 3}
    assert _errors(legacy, old=_hpa(copy.deepcopy(legacy))) == []
    assert _errors({**legacy, "scaleTargetRef": {"kind": "StatefulSet", "name": "web"}}, old=_hpa(legacy)) == [
        'spec.scaleTargetRef.apiVersion: Invalid value: "": must specify an API group']


def test_status_updates() -> None:
    st = hpa.HorizontalPodAutoscalerStrategy()
    old = _hpa({"scaleTargetRef": REF, "maxReplicas": 3}, status={"currentMetrics": None, "desiredReplicas": 0})
    old["metadata"]["resourceVersion"] = "5"
    new = copy.deepcopy(old)
    new["spec"]["maxReplicas"] = 10  # ignored: /status writes status only
    new["status"] = {"currentReplicas": 0, "desiredReplicas": 2, "currentMetrics": [], "conditions": []}
    merged = st.prepare_for_status_update(new, old)
    assert merged["spec"]["maxReplicas"] == 3
    assert merged["status"] == {"desiredReplicas": 2, "currentMetrics": None}  # as the typed round trip leaves it
    new["status"] = {"currentReplicas": -1, "desiredReplicas": -2}
    assert [c["field"] for c in st.validate_status_update(new, old)] == ["status.currentReplicas",
                                                                          "status.desiredReplicas"]


def test_generation_counts_spec_changes_after_defaults() -> None:
    st = hpa.HorizontalPodAutoscalerStrategy()
    stored = _hpa({"scaleTargetRef": REF, "maxReplicas": 3})
    hpa.set_defaults(stored)
    # the handler defaults an update before comparing (upstream defaults while decoding)
    same, more = _hpa({"scaleTargetRef": REF, "maxReplicas": 3}), _hpa({"scaleTargetRef": REF, "maxReplicas": 4})
    st.default(same)
    st.default(more)
    assert not st.spec_changed(same, stored)
    assert st.spec_changed(more, stored)
    assert st.tracks_generation and st.has_status


# --- v1 <-> v2 --------------------------------------------------------------------------------------

V2_FULL = _hpa({
    "scaleTargetRef": REF, "minReplicas": 1, "maxReplicas": 5,
    "metrics": [
        {"type": "Pods", "pods": {"metric": {"name": "qps", "selector": {"matchLabels": {"q": "a&b", "a": "1"}}},
                                  "target": {"type": "AverageValue", "averageValue": "500m"}}},
        {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}},
        {"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue",
                                                                       "averageValue": "100Mi"}}},
        {"type": "Object", "object": {"describedObject": {"kind": "Ingress", "name": "main",
                                                          "apiVersion": "networking.k8s.io/v1"},
                                      "target": {"type": "AverageValue", "averageValue": "10"},
                                      "metric": {"name": "rps"}}},
        {"type": "External", "external": {"metric": {"name": "queue"}, "target": {"type": "Value", "value": "30"}}},
        {"type": "ContainerResource", "containerResource": {
            "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 60}, "container": "app"}},
    ],
    "behavior": {"scaleUp": {"stabilizationWindowSeconds": 0, "selectPolicy": "Max",
                             "policies": [{"type": "Pods", "value": 4, "periodSeconds": 15}]},
                 "scaleDown": {"selectPolicy": "Min", "policies": [{"type": "Percent", "value": 10,
                                                                    "periodSeconds": 60}], "tolerance": "50m"}},
}, status={"observedGeneration": 3, "lastScaleTime": "2026-11-21T20:39:48Z", "currentReplicas": 2,
           "desiredReplicas": 3, "currentMetrics": [
               {"type": "Resource", "resource": {"name": "cpu", "current": {"averageValue": "250m",
                                                                           "averageUtilization": 62}}},
               {"type": "External", "external": {"metric": {"name": "queue"}, "current": {"value": "12"}}}],
           "conditions": [{"type": "AbleToScale", "status": "True", "lastTransitionTime": "2026-11-21T20:39:48Z",
                           "reason": "SucceededRescale", "message": "the HPA controller was able to update the "
                                                                    "target scale to 3"}]})
V2_FULL["metadata"]["annotations"] = {"team": "web"}


def test_v2_to_v1_carries_the_rest_in_annotations() -> None:
    v1 = hpa.to_v1(V2_FULL)
    assert v1["apiVersion"] == "autoscaling/v1" and v1["kind"] == "HorizontalPodAutoscaler"
    assert v1["spec"] == {"scaleTargetRef": {"kind": "Deployment", "name": "web", "apiVersion": "apps/v1"},
                          "minReplicas": 1, "maxReplicas": 5, "targetCPUUtilizationPercentage": 50}
    assert v1["status"] == {"observedGeneration": 3, "lastScaleTime": "2026-11-21T20:39:48Z", "currentReplicas": 2,
                            "desiredReplicas": 3, "currentCPUUtilizationPercentage": 62}
    a = v1["metadata"]["annotations"]
    assert a["team"] == "web"
    # json.Marshal of v1's (v2beta1-shaped) types, in Go's field order, HTML characters escaped
    assert a[hpa.METRICS_ANNOTATION] == (
        '[{"type":"Pods","pods":{"metricName":"qps","targetAverageValue":"500m",'
        '"selector":{"matchLabels":{"a":"1","q":"a\\u0026b"}}}},'
        '{"type":"Resource","resource":{"name":"memory","targetAverageValue":"100Mi"}},'
        '{"type":"Object","object":{"target":{"kind":"Ingress","name":"main","apiVersion":"networking.k8s.io/v1"},'
        '"metricName":"rps","targetValue":"0","averageValue":"10"}},'
        '{"type":"External","external":{"metricName":"queue","targetValue":"30"}},'
        '{"type":"ContainerResource","containerResource":{"name":"cpu","targetAverageUtilization":60,'
        '"container":"app"}}]')
    assert a[hpa.CURRENT_METRICS_ANNOTATION] == (
        '[{"type":"Resource","resource":{"name":"cpu","currentAverageUtilization":62,"currentAverageValue":"250m"}},'
        '{"type":"External","external":{"metricName":"queue","currentValue":"12"}}]')
    assert json.loads(a[hpa.CONDITIONS_ANNOTATION]) == V2_FULL["status"]["conditions"]
    # the behavior annotation is upstream's internal type marshalled without json tags
    assert a[hpa.BEHAVIOR_ANNOTATION] == (
        '{"ScaleUp":{"StabilizationWindowSeconds":0,"SelectPolicy":"Max","Policies":[{"Type":"Pods","Value":4,'
        '"PeriodSeconds":15}],"Tolerance":null},"ScaleDown":{"StabilizationWindowSeconds":null,"SelectPolicy":"Min",'
        '"Policies":[{"Type":"Percent","Value":10,"PeriodSeconds":60}],"Tolerance":"50m"}}')
    assert V2_FULL["metadata"]["annotations"] == {"team": "web"}  # the stored object is left alone


def test_v1_round_trip_keeps_everything_but_the_metric_order() -> None:
    back = hpa.from_v1(hpa.to_v1(V2_FULL))
    assert back["apiVersion"] == "autoscaling/v2"
    assert back["metadata"]["annotations"] == {"team": "web"}
    # the cpu utilization metric comes back last (upstream appends it after the annotation's metrics)
    metrics = copy.deepcopy(V2_FULL["spec"]["metrics"])
    # v1's Object source has a non-pointer targetValue: upstream's conversion always sets value, "0" here
    metrics[3]["object"]["target"] = {"type": "AverageValue", "value": "0", "averageValue": "10"}
    assert back["spec"]["metrics"] == [m for m in metrics if not hpa.is_cpu_utilization(m)] + [metrics[1]]
    # ... which upstream's validation then refuses: such an HPA cannot be written back through v1 unchanged
    assert _errors(back["spec"]) == ['spec.metrics[2].object.target.value: Invalid value: "0": must be positive']
    assert back["spec"]["behavior"] == V2_FULL["spec"]["behavior"]
    status = V2_FULL["status"]
    # v1's non-pointer quantities come back as their zero ("0") where v2 had none
    assert back["status"]["currentMetrics"] == [status["currentMetrics"][0], {
        "type": "External", "external": {"metric": {"name": "queue"}, "current": {"value": "12"}}}]
    assert back["status"]["conditions"] == status["conditions"]
    assert {k: back["status"][k] for k in ("observedGeneration", "lastScaleTime", "currentReplicas",
                                           "desiredReplicas")} == {k: status[k] for k in ("observedGeneration",
                                                                                           "lastScaleTime",
                                                                                           "currentReplicas",
                                                                                           "desiredReplicas")}
    again = hpa.to_v1(back)
    assert again == hpa.to_v1({**V2_FULL, "spec": back["spec"]})


def test_v1_to_v2() -> None:
    v1 = {"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
          "metadata": {"name": "web", "namespace": "ns"},
          "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web", "apiVersion": "apps/v1"},
                   "maxReplicas": 4, "targetCPUUtilizationPercentage": 70},
          "status": {"currentReplicas": 1, "desiredReplicas": 1, "currentCPUUtilizationPercentage": 12}}
    v2 = hpa.from_v1(v1)
    assert v2["spec"] == {"scaleTargetRef": {"kind": "Deployment", "name": "web", "apiVersion": "apps/v1"},
                          "maxReplicas": 4, "metrics": [hpa.cpu_utilization_metric(70)]}
    assert v2["status"] == {"currentReplicas": 1, "desiredReplicas": 1, "currentMetrics": [
        {"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 12}}}]}
    assert "annotations" not in v2["metadata"]
    # no target and no metrics annotation: v1's old implicit 80%
    del v1["spec"]["targetCPUUtilizationPercentage"]
    assert hpa.from_v1(v1)["spec"]["metrics"] == [hpa.cpu_utilization_metric(80)]


def test_v1_annotations_from_older_writers_and_malformed_ones() -> None:
    v1 = {"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
          "metadata": {"name": "web", "annotations": {
              hpa.METRICS_ANNOTATION: '[{"type":"Object","object":{"target":{"kind":"Service","name":"s"},'
                                      '"metricName":"hits","targetValue":"100"}},'
                                      '{"type":"Pods","pods":{"metricName":"qps","targetAverageValue":"1k"}},'
                                      '{"type":"External","external":{"metricName":"q","targetAverageValue":"2"}},'
                                      '{"type":"Resource","resource":{"name":"memory","targetAverageUtilization":70}}]',
              hpa.BEHAVIOR_ANNOTATION: '{"scaleup":{"policies":[{"type":"Percent","value":50,"periodSeconds":30}]}}',
              hpa.CONDITIONS_ANNOTATION: "not json",
              hpa.CURRENT_METRICS_ANNOTATION: ""}},
          "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web", "apiVersion": "apps/v1"},
                   "minReplicas": 2, "maxReplicas": 4}}
    v2 = hpa.from_v1(v1)
    assert v2["spec"]["metrics"] == [
        {"type": "Object", "object": {"describedObject": {"kind": "Service", "name": "s"},
                                      "target": {"type": "Value", "value": "100"}, "metric": {"name": "hits"}}},
        {"type": "Pods", "pods": {"metric": {"name": "qps"}, "target": {"type": "AverageValue", "averageValue": "1k"}}},
        {"type": "External", "external": {"metric": {"name": "q"},
                                          "target": {"type": "AverageValue", "averageValue": "2"}}},
        {"type": "Resource", "resource": {"name": "memory", "target": {"type": "Utilization",
                                                                       "averageUtilization": 70}}},
    ]
    # encoding/json matches field names case-insensitively
    assert v2["spec"]["behavior"] == {"scaleUp": {"policies": [{"type": "Percent", "value": 50, "periodSeconds": 30}]}}
    assert "conditions" not in v2["status"] and v2["status"]["currentMetrics"] is None
    assert "annotations" not in v2["metadata"]  # every round-trip annotation is dropped, malformed or not


def test_stale_round_trip_annotations_on_the_stored_object_are_replaced() -> None:
    stored = _hpa({"scaleTargetRef": REF, "maxReplicas": 3, "minReplicas": 1,
                   "metrics": [hpa.cpu_utilization_metric(50)]}, status={"desiredReplicas": 0, "currentMetrics": None})
    stored["metadata"]["annotations"] = {hpa.METRICS_ANNOTATION: "[]", hpa.CONDITIONS_ANNOTATION: "stale"}
    assert "annotations" not in hpa.to_v1(stored)["metadata"]


# --- the resource table and `kubectl get hpa` -------------------------------------------------------


def test_served_as_v2_first_then_v1_from_one_storage() -> None:
    v2, v1 = TABLE.lookup("autoscaling", "v2", "horizontalpodautoscalers"), TABLE.lookup(
        "autoscaling", "v1", "horizontalpodautoscalers")
    assert TABLE.groups["autoscaling"] == ["v2", "v1"]
    assert TABLE.by_plural("autoscaling", "horizontalpodautoscalers") is v2
    assert v1.storage_prefix == v2.storage_prefix == "/registry/horizontalpodautoscalers/"
    assert (v2.storage_plural, v1.storage_plural) == ("", "horizontalpodautoscalers")  # quota counts v2's
    for r in (v1, v2):
        assert (r.short_names, r.categories, r.subresources, r.namespaced) == (("hpa",), ("all",), ("status",), True)
    assert v2.strategy.to_storage(v2, V2_FULL) is V2_FULL and v2.strategy.output_converter(v2) is None
    assert v1.strategy.output_converter(v1) is hpa.to_v1


def _metric(typ: str, **source) -> dict:
    return {"type": typ, {"Resource": "resource", "Pods": "pods", "Object": "object", "External": "external",
                          "ContainerResource": "containerResource"}[typ]: source}


@pytest.mark.parametrize(("metric", "status", "text"), [
    (hpa.cpu_utilization_metric(50), None, "cpu: <unknown>/50%"),
    (hpa.cpu_utilization_metric(50), {"type": "Resource", "resource": {"name": "cpu", "current": {
        "averageUtilization": 12, "averageValue": "120m"}}}, "cpu: 12%/50%"),
    (_metric("Resource", name="memory", target={"type": "AverageValue", "averageValue": "100Mi"}), None,
     "memory: <unknown>/100Mi"),
    (_metric("Resource", name="memory", target={"type": "AverageValue", "averageValue": "100Mi"}),
     {"type": "Resource", "resource": {"name": "memory", "current": {"averageValue": "52428800"}}},
     "memory: 52428800/100Mi"),  # the quantity as it was written (DecimalSI), as upstream's String()
    (_metric("ContainerResource", name="cpu", container="app", target={"type": "Utilization"}), None,
     "cpu: <unknown>/<auto>"),
    (_metric("Pods", metric={"name": "qps"}, target={"type": "AverageValue", "averageValue": "1k"}),
     {"type": "Pods", "pods": {"metric": {"name": "qps"}, "current": {"averageValue": "500"}}}, "500/1k"),
    (_metric("Object", metric={"name": "rps"}, target={"type": "AverageValue", "averageValue": "10"}), None,
     "<unknown>/10 (avg)"),
    (_metric("External", metric={"name": "q"}, target={"type": "Value", "value": "30"}),
     {"type": "External", "external": {"metric": {"name": "q"}, "current": {"value": "12"}}}, "12/30"),
    ({"type": "Custom"}, None, "<unknown type>"),
])
def test_targets_column(metric: dict, status: dict | None, text: str) -> None:
    assert hpa_targets([metric], [status] if status else []) == text


def test_targets_column_shows_two_metrics_then_a_count() -> None:
    assert hpa_targets([], []) == "<none>"
    cpu = hpa.cpu_utilization_metric(50)
    assert hpa_targets([cpu] * 4, []) == "cpu: <unknown>/50%, cpu: <unknown>/50% + 2 more..."


def test_table_rows_of_both_versions() -> None:
    columns, row = PRINTERS["horizontalpodautoscalers"]
    assert [c[0] for c in columns] == ["Name", "Reference", "Targets", "MinPods", "MaxPods", "Replicas", "Age"]
    assert {c[1] for c in columns} == {"string"}
    now = dt.datetime(2026, 11, 21, 20, 41, 48, tzinfo=dt.UTC)
    stored = copy.deepcopy(V2_FULL)
    stored["metadata"]["creationTimestamp"] = "2026-11-21T20:39:48Z"
    # upstream pairs a metric with the current metric at the same index
    assert row(stored, now) == ["web", "Deployment/web", "<unknown>/500m, cpu: <unknown>/50% + 4 more...", "1", 5, 2,
                                "2m"]
    stored["status"]["currentMetrics"].insert(0, {"type": "Pods", "pods": {"metric": {"name": "qps"},
                                                                          "current": {"averageValue": "250m"}}})
    assert row(stored, now)[2] == "250m/500m, cpu: 62%/50% + 4 more..."
    # a v1 object prints as its v2 form (where the cpu metric is last)
    assert row(hpa.to_v1(stored), now) == ["web", "Deployment/web", "250m/500m, memory: 250m/100Mi + 4 more...",
                                           "1", 5, 2, "2m"]
    del stored["spec"]["minReplicas"]
    assert row(stored, now)[3] == "<unset>"


def test_every_current_metric_survives_v1() -> None:
    current = [
        {"type": "Object", "object": {"metric": {"name": "rps", "selector": {"matchLabels": {"a": "b"}}},
                                      "current": {"value": "5", "averageValue": "1"},
                                      "describedObject": {"kind": "Ingress", "name": "main"}}},
        {"type": "Pods", "pods": {"metric": {"name": "qps"}, "current": {"averageValue": "250m"}}},
        {"type": "Resource", "resource": {"name": "memory", "current": {"averageValue": "1Gi"}}},
        {"type": "ContainerResource", "containerResource": {
            "name": "cpu", "current": {"averageValue": "50m", "averageUtilization": 50}, "container": "app"}},
        {"type": "External", "external": {"metric": {"name": "q"}, "current": {"value": "3", "averageValue": "1"}}},
    ]
    stored = _hpa({"scaleTargetRef": REF, "maxReplicas": 3, "metrics": [hpa.cpu_utilization_metric(50)]},
                  status={"desiredReplicas": 1, "currentMetrics": current})
    v1 = hpa.to_v1(stored)
    assert json.loads(v1["metadata"]["annotations"][hpa.CURRENT_METRICS_ANNOTATION])[3] == {
        "type": "ContainerResource", "containerResource": {"name": "cpu", "currentAverageUtilization": 50,
                                                            "currentAverageValue": "50m", "container": "app"}}
    assert hpa.from_v1(v1)["status"]["currentMetrics"] == current


# --- ill-typed annotations: a 400 (or, for the behavior, ignored), never an exception ---------------


def _v1_with(annotations: dict) -> dict:
    return {"apiVersion": hpa.V1, "kind": hpa.KIND, "metadata": {"name": "web", "namespace": "ns",
                                                                 "annotations": annotations},
            "spec": {"scaleTargetRef": REF, "maxReplicas": 4, "targetCPUUtilizationPercentage": 50}}


@pytest.mark.parametrize(("key", "value", "message"), [
    (hpa.METRICS_ANNOTATION, '[{"type":["x"]}]',
     "json: cannot unmarshal array into Go struct field MetricSpec.type of type string"),
    (hpa.METRICS_ANNOTATION, '[{"type":"Object","object":{"target":{"kind":"Service","name":"s","apiVersion":5},'
                             '"metricName":"hits","targetValue":"100"}}]',
     "cannot unmarshal number into Go struct field MetricSpec.object.target.apiVersion of type string"),
    (hpa.METRICS_ANNOTATION, '[{"type":"Pods","pods":{"metricName":{"a":1},"targetAverageValue":"1"}}]',
     "cannot unmarshal object into Go struct field MetricSpec.pods.metricName of type string"),
    (hpa.METRICS_ANNOTATION, '[{"type":"Resource","resource":{"name":"memory","targetAverageUtilization":"50"}}]',
     "cannot unmarshal string into Go struct field MetricSpec.resource.targetAverageUtilization of type integer"),
    (hpa.METRICS_ANNOTATION, '[{"type":"External","external":{"metricName":"q","metricSelector":'
                             '{"matchLabels":["a"]},"targetValue":"1"}}]',
     "MetricSpec.external.metricSelector.matchLabels of type object"),
    (hpa.METRICS_ANNOTATION, '{"type":"Pods"}', "cannot unmarshal object into Go value of type []v1.MetricSpec"),
    (hpa.METRICS_ANNOTATION, '[5]', "cannot unmarshal number into Go value of type v1.MetricSpec"),
    (hpa.CURRENT_METRICS_ANNOTATION, '[{"type":"Resource","resource":{"name":"cpu","currentAverageValue":{}}}]',
     "MetricStatus.resource.currentAverageValue of type int-or-string"),
    (hpa.CONDITIONS_ANNOTATION, '[{"type":"AbleToScale","status":true}]',
     "HorizontalPodAutoscalerCondition.status of type string"),
])
def test_ill_typed_annotations_are_a_bad_request(key: str, value: str, message: str) -> None:
    with pytest.raises(hpa.errors.StatusError) as e:
        hpa.from_v1(_v1_with({key: value}))
    status = e.value.status()
    assert status["code"] == 400 and status["reason"] == "BadRequest"
    assert status["message"].startswith(
        f'HorizontalPodAutoscaler in version "v1" cannot be handled as a HorizontalPodAutoscaler: annotation {key}: ')
    assert message in status["message"]


@pytest.mark.parametrize("behavior", [
    '{"ScaleUp":{"Policies":[{"Type":"Pods","Value":"x","PeriodSeconds":15}]}}',
    '{"ScaleUp":{"Policies":"x"}}',
    '{"ScaleUp":{"Policies":[5]}}',
    '{"ScaleDown":5}',
    '{"ScaleDown":{"StabilizationWindowSeconds":1.5}}',
    '{"ScaleDown":{"SelectPolicy":["Max"]}}',
])
def test_an_ill_typed_behavior_annotation_is_ignored_as_upstream(behavior: str) -> None:
    v2 = hpa.from_v1(_v1_with({hpa.BEHAVIOR_ANNOTATION: behavior}))
    assert "behavior" not in v2["spec"] and "annotations" not in v2["metadata"]


def test_null_elements_decode_to_zero_values() -> None:
    v2 = hpa.from_v1(_v1_with({hpa.METRICS_ANNOTATION: "[null]", hpa.CONDITIONS_ANNOTATION: "null"}))
    assert v2["spec"]["metrics"][0] == {"type": ""}
    assert "conditions" not in v2["status"]


RICH_SPEC = {
    "scaleTargetRef": REF, "minReplicas": 2, "maxReplicas": 10,
    "metrics": [
        hpa.cpu_utilization_metric(50),
        {"type": "ContainerResource", "containerResource": {"name": "memory", "container": "c", "target": {
            "type": "AverageValue", "averageValue": "1Gi"}}},
        {"type": "Pods", "pods": {"metric": {"name": "qps", "selector": {"matchExpressions": [
            {"key": "a", "operator": "In", "values": ["b"]}]}}, "target": {"type": "AverageValue",
                                                                          "averageValue": "1k"}}},
        {"type": "Object", "object": {"metric": {"name": "rps"}, "describedObject": {
            "apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "name": "main"},
            "target": {"type": "Value", "value": "10k"}}},
        {"type": "External", "external": {"metric": {"name": "q", "selector": {"matchLabels": {"q": "w"}}},
                                          "target": {"type": "Value", "value": "30"}}},
    ],
    "behavior": {"scaleUp": {"stabilizationWindowSeconds": 0, "selectPolicy": "Max", "tolerance": "0.1",
                             "policies": [{"type": "Pods", "value": 4, "periodSeconds": 15}]},
                 "scaleDown": {"policies": [{"type": "Percent", "value": 10, "periodSeconds": 60}]}},
}


def test_validation_and_conversion_never_raise_on_odd_values() -> None:
    """Past the schema check a wrong type cannot reach validation; should one, it is a cause, not a crash."""
    from tests.integration.test_api_errors import each_field_replaced

    strategy = hpa.HorizontalPodAutoscalerStrategy()
    stored = _hpa(copy.deepcopy(RICH_SPEC), status={"desiredReplicas": 0, "currentMetrics": None})
    for spec in each_field_replaced(RICH_SPEC):
        obj = _hpa(copy.deepcopy(spec))
        strategy.default(obj)
        strategy.validate(obj, True)
        strategy.validate_update(obj, stored, True)
        strategy.validate_update(stored, obj, True)
        try:
            hpa.from_v1(hpa.to_v1(obj))
        except hpa.errors.StatusError as e:  # the odd value in an annotation
            assert e.status()["code"] == 400
