"""autoscaling/v2 and autoscaling/v1 HorizontalPodAutoscalers against the real apiserver: kubectl
(autoscale, get, describe, apply), both versions reading and writing one stored object, status only
through /status, and the official Python client."""

from __future__ import annotations

import json

import httpx
import orjson
import pytest
from kubernetes import client, config

from apimachinery import protobuf as pbuf
from apiserver.registry.autoscaling import (
    BEHAVIOR_ANNOTATION,
    CONDITIONS_ANNOTATION,
    CURRENT_METRICS_ANNOTATION,
    METRICS_ANNOTATION,
    to_v1,
)
from tests.conftest import ControlPlane
from tests.integration.test_kubectl_protobuf import request_bodies

V1 = "/apis/autoscaling/v1/namespaces/{ns}/horizontalpodautoscalers"
V2 = "/apis/autoscaling/v2/namespaces/{ns}/horizontalpodautoscalers"
CPU50 = {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}}

HPA_YAML = """\
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: multi
  labels: {app: web}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  minReplicas: 2
  maxReplicas: 10
  metrics:
  - type: Resource
    resource: {name: cpu, target: {type: Utilization, averageUtilization: 50}}
  - type: Resource
    resource: {name: memory, target: {type: AverageValue, averageValue: 0.5Gi}}
  - type: Pods
    pods:
      metric: {name: packets-per-second}
      target: {type: AverageValue, averageValue: 1k}
  - type: Object
    object:
      metric: {name: requests-per-second}
      describedObject: {apiVersion: networking.k8s.io/v1, kind: Ingress, name: main-route}
      target: {type: Value, value: 10000}
  - type: External
    external:
      metric:
        name: queue_messages_ready
        selector: {matchLabels: {queue: worker_tasks}}
      target: {type: AverageValue, averageValue: 30}
  behavior:
    scaleDown:
      stabilizationWindowSeconds: 120
      policies: [{type: Pods, value: 1, periodSeconds: 60}]
"""


def _deployment(api: httpx.Client, ns: str, name: str = "web", replicas: int = 2) -> None:
    r = api.post(f"/apis/apps/v1/namespaces/{ns}/deployments", json={
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}})
    assert r.status_code == 201, r.text


def _kubectl(cp: ControlPlane, ns: str, *args: str, **kw):
    return cp.kubectl("-n", ns, *args, **kw)


def test_kubectl_autoscale_get_and_describe(control_plane: ControlPlane, api: httpx.Client, namespace: str) -> None:
    _deployment(api, namespace)
    out = _kubectl(control_plane, namespace, "autoscale", "deployment", "web", "--cpu-percent=50", "--min=1",
                   "--max=5")
    assert out.stdout.strip() == "horizontalpodautoscaler.autoscaling/web autoscaled"

    hpa = api.get(V2.format(ns=namespace) + "/web").json()
    assert hpa["spec"] == {"scaleTargetRef": {"kind": "Deployment", "name": "web", "apiVersion": "apps/v1"},
                           "minReplicas": 1, "maxReplicas": 5, "metrics": [CPU50]}
    assert hpa["status"] == {"currentMetrics": None, "desiredReplicas": 0}
    assert hpa["metadata"]["generation"] == 1

    lines = _kubectl(control_plane, namespace, "get", "hpa").stdout.splitlines()
    assert lines[0].split() == ["NAME", "REFERENCE", "TARGETS", "MINPODS", "MAXPODS", "REPLICAS", "AGE"]
    assert lines[1].split()[:7] == ["web", "Deployment/web", "cpu:", "<unknown>/50%", "1", "5", "0"]
    assert "horizontalpodautoscaler.autoscaling/web" in _kubectl(control_plane, namespace, "get", "all").stdout
    assert _kubectl(control_plane, namespace, "get", "horizontalpodautoscalers.v1.autoscaling", "web",
                    "-o", "jsonpath={.spec.maxReplicas}").stdout == "5"

    described = _kubectl(control_plane, namespace, "describe", "hpa", "web").stdout
    assert "Reference:" in described and "Deployment/web" in described
    assert "resource cpu on pods  (as a percentage of request):  <unknown> / 50%" in described
    assert "Min replicas:" in described and "Max replicas:" in described

    # a second autoscale is refused: kubectl falls back to autoscaling/v1 after v2's 409, which refuses it too
    again = _kubectl(control_plane, namespace, "-v=4", "autoscale", "deployment", "web", "--cpu=60%", "--max=3",
                     check=False)
    assert again.returncode != 0
    assert "Falling back to try the autoscaling/v1 HorizontalPodAutoscaler" in again.stderr
    assert 'horizontalpodautoscalers.autoscaling "web" already exists' in again.stderr


def test_kubectl_autoscale_sends_protobuf(control_plane: ControlPlane, api: httpx.Client, namespace: str) -> None:
    _deployment(api, namespace, "pb")
    args = ("autoscale", "deployment", "pb", "--cpu=70%", "--min=2", "--max=4")
    sent_as_json = json.loads(_kubectl(control_plane, namespace, *args, "--dry-run=client", "-o", "json").stdout)
    r = _kubectl(control_plane, namespace, "-v=10", *args)
    assert "Content-Type: application/vnd.kubernetes.protobuf" in r.stderr
    (body,) = request_bodies(r.stderr)
    decoded = pbuf.decode(body)
    assert decoded == sent_as_json
    assert pbuf.encode(decoded) == body
    stored = api.get(V2.format(ns=namespace) + "/pb").json()
    assert stored["spec"]["metrics"] == [{"type": "Resource", "resource": {
        "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}]
    # and protobuf answers, for typed clients (kubectl describe's), in both versions
    for path, api_version in ((V2, "autoscaling/v2"), (V1, "autoscaling/v1")):
        r = api.get(path.format(ns=namespace) + "/pb", headers={"Accept": pbuf.CONTENT_TYPE})
        assert r.headers["content-type"] == pbuf.CONTENT_TYPE
        got = pbuf.decode(r.content)
        assert got["apiVersion"] == api_version and got["spec"]["maxReplicas"] == 4


def test_v2_yaml_read_through_v1_and_written_back(control_plane: ControlPlane, api: httpx.Client,
                                                  namespace: str) -> None:
    _deployment(api, namespace)
    out = _kubectl(control_plane, namespace, "apply", "-f", "-", input=HPA_YAML)
    assert out.stdout.strip() == "horizontalpodautoscaler.autoscaling/multi created"
    v2 = api.get(V2.format(ns=namespace) + "/multi").json()
    metrics = v2["spec"]["metrics"]
    # quantities as upstream stores them; the behavior defaulted around what was given
    assert metrics[1]["resource"]["target"]["averageValue"] == "512Mi"
    assert metrics[3]["object"]["target"]["value"] == "10k"
    assert v2["spec"]["behavior"] == {
        "scaleUp": {"stabilizationWindowSeconds": 0, "selectPolicy": "Max", "policies": [
            {"type": "Pods", "value": 4, "periodSeconds": 15}, {"type": "Percent", "value": 100, "periodSeconds": 15}]},
        "scaleDown": {"stabilizationWindowSeconds": 120, "selectPolicy": "Max",
                      "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}]}}
    # applied again, kubectl patches the non-canonical quantities back in ("configured", as upstream): the
    # stored object does not change
    _kubectl(control_plane, namespace, "apply", "-f", "-", input=HPA_YAML)
    again = api.get(V2.format(ns=namespace) + "/multi").json()
    assert again["metadata"]["resourceVersion"] == v2["metadata"]["resourceVersion"]

    v1 = api.get(V1.format(ns=namespace) + "/multi").json()
    assert v1["apiVersion"] == "autoscaling/v1"
    assert v1["spec"] == {"scaleTargetRef": {"kind": "Deployment", "name": "web", "apiVersion": "apps/v1"},
                          "minReplicas": 2, "maxReplicas": 10, "targetCPUUtilizationPercentage": 50}
    assert v1["status"] == {"currentReplicas": 0, "desiredReplicas": 0}
    annotations = v1["metadata"]["annotations"]
    assert [m["type"] for m in json.loads(annotations[METRICS_ANNOTATION])] == ["Resource", "Pods", "Object",
                                                                                "External"]
    assert json.loads(annotations[BEHAVIOR_ANNOTATION])["ScaleDown"]["StabilizationWindowSeconds"] == 120
    assert "kubectl.kubernetes.io/last-applied-configuration" in annotations

    # a v1 client changes what it knows about and writes the whole object back: nothing else is lost
    v1["spec"]["maxReplicas"] = 12
    r = api.put(V1.format(ns=namespace) + "/multi", json=v1)
    assert r.status_code == 200, r.text
    assert r.json()["apiVersion"] == "autoscaling/v1" and r.json()["spec"]["maxReplicas"] == 12
    after = api.get(V2.format(ns=namespace) + "/multi").json()
    assert after["spec"]["maxReplicas"] == 12
    assert after["spec"]["metrics"] == metrics[1:] + metrics[:1]  # upstream puts the cpu metric last
    assert after["spec"]["behavior"] == v2["spec"]["behavior"]
    assert set(after["metadata"]["annotations"]) == {"kubectl.kubernetes.io/last-applied-configuration"}
    assert after["metadata"]["generation"] == v2["metadata"]["generation"] + 1

    # a merge patch through v1
    r = api.patch(V1.format(ns=namespace) + "/multi", content=b'{"spec":{"targetCPUUtilizationPercentage":60}}',
                  headers={"Content-Type": "application/merge-patch+json"})
    assert r.status_code == 200, r.text
    patched = api.get(V2.format(ns=namespace) + "/multi").json()["spec"]["metrics"]
    assert patched[-1]["resource"]["target"]["averageUtilization"] == 60 and len(patched) == 5

    # v1 lists and watches answer v1 objects
    listed = api.get(V1.format(ns=namespace)).json()
    assert listed["kind"] == "HorizontalPodAutoscalerList" and listed["apiVersion"] == "autoscaling/v1"
    assert [i["apiVersion"] for i in listed["items"]] == ["autoscaling/v1"]
    r = api.get(V1.format(ns=namespace), params={"watch": "true", "timeoutSeconds": "1"})
    events = [orjson.loads(line) for line in r.content.splitlines() if line]
    assert events[0]["type"] == "ADDED" and events[0]["object"]["apiVersion"] == "autoscaling/v1"
    assert "targetCPUUtilizationPercentage" in events[0]["object"]["spec"]


def test_created_through_v1(api: httpx.Client, namespace: str) -> None:
    body = {"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "old"},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                     "maxReplicas": 3}, "status": {"currentReplicas": 7}}
    r = api.post(V1.format(ns=namespace), json=body)
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["apiVersion"] == "autoscaling/v1"
    assert created["spec"] == {"scaleTargetRef": {"kind": "Deployment", "name": "web", "apiVersion": "apps/v1"},
                               "minReplicas": 1, "maxReplicas": 3, "targetCPUUtilizationPercentage": 80}
    assert created["status"] == {"currentReplicas": 0, "desiredReplicas": 0}  # a create sets no status
    v2 = api.get(V2.format(ns=namespace) + "/old").json()
    assert v2["spec"]["metrics"] == [{"type": "Resource", "resource": {
        "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]


def test_status_only_through_status(control_plane: ControlPlane, api: httpx.Client, namespace: str) -> None:
    _deployment(api, namespace)
    _kubectl(control_plane, namespace, "autoscale", "deployment", "web", "--cpu=50%", "--max=5")
    url = V2.format(ns=namespace) + "/web"
    hpa = api.get(url).json()
    hpa["status"] = {"currentReplicas": 9, "desiredReplicas": 9}
    r = api.put(url, json=hpa)
    assert r.status_code == 200 and r.json()["status"] == {"currentMetrics": None, "desiredReplicas": 0}

    hpa = api.get(url).json()
    hpa["spec"]["maxReplicas"] = 50  # ignored by /status
    hpa["status"] = {"observedGeneration": 1, "currentReplicas": 2, "desiredReplicas": 3, "currentMetrics": [
        {"type": "Resource", "resource": {"name": "cpu", "current": {"averageValue": "0.12", "averageUtilization": 12}}}],
        "conditions": [{"type": "AbleToScale", "status": "True", "lastTransitionTime": "2026-11-21T20:39:48Z",
                        "reason": "ReadyForNewScale", "message": "recommended size matches current size"}]}
    r = api.put(url + "/status", json=hpa)
    assert r.status_code == 200, r.text
    stored = api.get(url).json()
    assert stored["spec"]["maxReplicas"] == 5 and stored["metadata"]["generation"] == 1
    assert stored["status"]["currentMetrics"][0]["resource"]["current"] == {"averageValue": "120m",
                                                                            "averageUtilization": 12}
    row = _kubectl(control_plane, namespace, "get", "hpa", "web", "--no-headers").stdout.split()
    assert row[:7] == ["web", "Deployment/web", "cpu:", "12%/50%", "1", "5", "2"]

    # the same status as v1 sees it, and a v1 status write
    v1 = api.get(V1.format(ns=namespace) + "/web").json()
    assert v1["status"] == {"observedGeneration": 1, "currentReplicas": 2, "desiredReplicas": 3,
                            "currentCPUUtilizationPercentage": 12}
    assert json.loads(v1["metadata"]["annotations"][CONDITIONS_ANNOTATION])[0]["reason"] == "ReadyForNewScale"
    assert CURRENT_METRICS_ANNOTATION in v1["metadata"]["annotations"]
    v1["status"]["desiredReplicas"] = 4
    r = api.put(V1.format(ns=namespace) + "/web/status", json=v1)
    assert r.status_code == 200, r.text
    stored = api.get(url).json()
    assert stored["status"]["desiredReplicas"] == 4
    assert stored["status"]["conditions"][0]["reason"] == "ReadyForNewScale"
    assert "annotations" not in stored["metadata"]

    r = api.patch(url + "/status", content=b'{"status":{"desiredReplicas":-1}}',
                  headers={"Content-Type": "application/merge-patch+json"})
    assert r.status_code == 422
    assert r.json()["details"]["causes"] == [{"reason": "FieldValueInvalid", "field": "status.desiredReplicas",
                                              "message": "Invalid value: -1: must be greater than or equal to 0"}]


@pytest.mark.parametrize(("path", "spec", "message"), [
    (V2, {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}, "minReplicas": 0,
          "maxReplicas": 3},
     'HorizontalPodAutoscaler.autoscaling "bad" is invalid: [spec.minReplicas: Invalid value: 0: must be greater '
     "than or equal to 1, spec.metrics: Forbidden: must specify at least one Object or External metric to support "
     "scaling to zero replicas]"),
    (V1, {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}, "minReplicas": 4,
          "maxReplicas": 3},
     'HorizontalPodAutoscaler.autoscaling "bad" is invalid: spec.maxReplicas: Invalid value: 3: must be greater '
     "than or equal to `minReplicas`"),
    (V2, {"scaleTargetRef": {"name": "web"}, "maxReplicas": 3, "metrics": [{"type": "Pods"}]},
     'HorizontalPodAutoscaler.autoscaling "bad" is invalid: [spec.scaleTargetRef.kind: Required value, '
     'spec.scaleTargetRef.apiVersion: Invalid value: "": must specify an API group, '
     "spec.metrics[0].pods: Required value: must populate information for the given metric source]"),
])
def test_validation(api: httpx.Client, namespace: str, path: str, spec: dict, message: str) -> None:
    version = path.split("/")[3]
    r = api.post(path.format(ns=namespace), json={"apiVersion": f"autoscaling/{version}",
                                                  "kind": "HorizontalPodAutoscaler", "metadata": {"name": "bad"},
                                                  "spec": spec})
    assert r.status_code == 422, r.text
    assert r.json()["message"] == message


def test_quantities_accept_numbers_and_refuse_garbage(api: httpx.Client, namespace: str) -> None:
    spec = {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}, "maxReplicas": 3,
            "metrics": [{"type": "External", "external": {"metric": {"name": "q"},
                                                          "target": {"type": "Value", "value": 1500}}}]}
    body = {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "q"}, "spec": spec}
    r = api.post(V2.format(ns=namespace), json=body, params={"fieldValidation": "Strict"})
    assert r.status_code == 201, r.text
    assert r.json()["spec"]["metrics"][0]["external"]["target"]["value"] == "1500"
    spec["metrics"][0]["external"]["target"]["value"] = "lots"
    r = api.post(V2.format(ns=namespace), json={**body, "metadata": {"name": "q2"}})
    assert r.status_code == 422 and "spec.metrics[0].external.target.value" in r.text


def test_python_client(control_plane: ControlPlane, namespace: str) -> None:
    k8s = config.new_client_from_config(config_file=str(control_plane.kubeconfig))
    v2, v1 = client.AutoscalingV2Api(k8s), client.AutoscalingV1Api(k8s)
    ref = client.V2CrossVersionObjectReference(api_version="apps/v1", kind="Deployment", name="web")
    created = v2.create_namespaced_horizontal_pod_autoscaler(namespace, client.V2HorizontalPodAutoscaler(
        metadata=client.V1ObjectMeta(name="py"),
        spec=client.V2HorizontalPodAutoscalerSpec(
            scale_target_ref=ref, max_replicas=4, metrics=[client.V2MetricSpec(
                type="Resource", resource=client.V2ResourceMetricSource(
                    name="cpu", target=client.V2MetricTarget(type="Utilization", average_utilization=60)))],
            behavior=client.V2HorizontalPodAutoscalerBehavior(
                scale_up=client.V2HPAScalingRules(select_policy="Disabled")))))
    assert created.spec.min_replicas == 1 and created.status.desired_replicas == 0
    assert created.spec.behavior.scale_up.policies[0].type == "Pods"
    assert created.spec.behavior.scale_down.select_policy == "Max"
    got = v2.read_namespaced_horizontal_pod_autoscaler("py", namespace)
    assert got.metadata.uid == created.metadata.uid
    assert [h.metadata.name for h in v2.list_namespaced_horizontal_pod_autoscaler(namespace).items] == ["py"]

    old = v1.read_namespaced_horizontal_pod_autoscaler("py", namespace)
    assert old.spec.target_cpu_utilization_percentage == 60 and old.status.current_replicas == 0
    assert BEHAVIOR_ANNOTATION in old.metadata.annotations
    assert [h.metadata.name for h in v1.list_horizontal_pod_autoscaler_for_all_namespaces().items
            if h.metadata.namespace == namespace] == ["py"]
    made = v1.create_namespaced_horizontal_pod_autoscaler(namespace, client.V1HorizontalPodAutoscaler(
        metadata=client.V1ObjectMeta(name="py1"), spec=client.V1HorizontalPodAutoscalerSpec(
            scale_target_ref=client.V1CrossVersionObjectReference(api_version="apps/v1", kind="Deployment",
                                                                 name="web"),
            max_replicas=2, target_cpu_utilization_percentage=30)))
    assert made.spec.target_cpu_utilization_percentage == 30 and made.spec.min_replicas == 1

    status = v2.patch_namespaced_horizontal_pod_autoscaler_status("py", namespace, {"status": {
        "currentReplicas": 1, "desiredReplicas": 2}})
    assert status.status.desired_replicas == 2
    v2.delete_namespaced_horizontal_pod_autoscaler("py", namespace)
    v1.delete_namespaced_horizontal_pod_autoscaler("py1", namespace)
    assert v2.list_namespaced_horizontal_pod_autoscaler(namespace).items == []


def test_quota_counts_each_autoscaler_once(api: httpx.Client, namespace: str) -> None:
    r = api.post(f"/api/v1/namespaces/{namespace}/resourcequotas", json={
        "apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "q"},
        "spec": {"hard": {"count/horizontalpodautoscalers.autoscaling": "1"}}})
    assert r.status_code == 201, r.text
    spec = {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}, "maxReplicas": 3}
    first = api.post(V1.format(ns=namespace), json={"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
                                                     "metadata": {"name": "a"}, "spec": spec})
    assert first.status_code == 201, first.text
    second = api.post(V2.format(ns=namespace), json={"apiVersion": "autoscaling/v2",
                                                     "kind": "HorizontalPodAutoscaler", "metadata": {"name": "b"},
                                                     "spec": spec})
    assert second.status_code == 403, second.text
    assert "exceeded quota: q, requested: count/horizontalpodautoscalers.autoscaling=1, used: " \
           "count/horizontalpodautoscalers.autoscaling=1, limited: count/horizontalpodautoscalers.autoscaling=1" \
           in second.json()["message"]


RICH_V2 = {
    "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "odd", "labels": {"a": "b"}},
    "spec": {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
        "minReplicas": 2, "maxReplicas": 10,
        "metrics": [
            CPU50,
            {"type": "ContainerResource", "containerResource": {"name": "memory", "container": "c", "target": {
                "type": "AverageValue", "averageValue": "1Gi"}}},
            {"type": "Pods", "pods": {"metric": {"name": "qps", "selector": {"matchExpressions": [
                {"key": "a", "operator": "In", "values": ["b"]}]}},
                "target": {"type": "AverageValue", "averageValue": "1k"}}},
            {"type": "Object", "object": {"metric": {"name": "rps"}, "describedObject": {
                "apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "name": "main"},
                "target": {"type": "Value", "value": "10k"}}},
            {"type": "External", "external": {"metric": {"name": "q", "selector": {"matchLabels": {"q": "w"}}},
                                              "target": {"type": "AverageValue", "averageValue": "30"}}},
        ],
        "behavior": {"scaleUp": {"stabilizationWindowSeconds": 0, "selectPolicy": "Max",
                                 "policies": [{"type": "Pods", "value": 4, "periodSeconds": 15}]},
                     "scaleDown": {"policies": [{"type": "Percent", "value": 10, "periodSeconds": 60}]}},
    },
    "status": {
        "currentReplicas": 2, "desiredReplicas": 3,
        "currentMetrics": [
            {"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 40,
                                                                         "averageValue": "100m"}}},
            {"type": "Object", "object": {"metric": {"name": "rps"}, "current": {"value": "5k"}, "describedObject": {
                "apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "name": "main"}}},
            {"type": "External", "external": {"metric": {"name": "q"}, "current": {"averageValue": "3"}}},
        ],
        "conditions": [{"type": "AbleToScale", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z",
                        "reason": "ReadyForNewScale", "message": "ok"}],
    },
}


def _below_500(r: httpx.Response, body: dict) -> None:
    assert r.status_code < 500 and (r.status_code < 400 or r.json()["kind"] == "Status"), (body, r.text)


def test_odd_values_in_any_field_or_annotation_are_never_a_500(api: httpx.Client, namespace: str) -> None:
    """Every field of a rich v2 autoscaler, and every field of the JSON in each of a v1 autoscaler's
    round-trip annotations, set to each odd JSON value: always a Status below 500."""
    from tests.integration.test_api_errors import each_field_replaced

    seen = 0
    for body in each_field_replaced(RICH_V2):
        _below_500(api.post(V2.format(ns=namespace), params={"dryRun": "All"}, json=body), body)
        seen += 1
    v1 = to_v1(json.loads(json.dumps(RICH_V2)))
    annotations = v1["metadata"]["annotations"]
    assert set(annotations) == {METRICS_ANNOTATION, CURRENT_METRICS_ANNOTATION, CONDITIONS_ANNOTATION,
                                BEHAVIOR_ANNOTATION}
    for key, text in annotations.items():
        for content in [*each_field_replaced({"v": json.loads(text)}), {"v": None}, {"v": 5}, {"v": "x"}]:
            body = json.loads(json.dumps(v1))
            body["metadata"]["annotations"][key] = json.dumps(content["v"])
            _below_500(api.post(V1.format(ns=namespace), params={"dryRun": "All"}, json=body), body)
            seen += 1
    assert seen > 1000


@pytest.mark.parametrize(("annotation", "value"), [
    (METRICS_ANNOTATION, '[{"type":["x"]}]'),
    (METRICS_ANNOTATION, '[{"type":"Object","object":{"target":{"kind":"Service","name":"s","apiVersion":5},'
                         '"metricName":"hits","targetValue":"100"}}]'),
    (METRICS_ANNOTATION, '[{"type":"Pods","pods":{"metricName":{"a":1},"targetAverageValue":"1"}}]'),
    (METRICS_ANNOTATION, '[{"type":"Resource","resource":{"name":"memory","targetAverageUtilization":"50"}}]'),
    (CONDITIONS_ANNOTATION, '[{"type":"AbleToScale","status":"True","lastTransitionTime":5}]'),
])
def test_ill_typed_annotations_are_a_bad_request(api: httpx.Client, namespace: str, annotation: str,
                                                 value: str) -> None:
    body = {"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "bad", "annotations": {annotation: value}},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                     "maxReplicas": 3}}
    r = api.post(V1.format(ns=namespace), json=body)
    assert r.status_code == 400, r.text
    status = r.json()
    assert status["reason"] == "BadRequest"
    assert status["message"].startswith('HorizontalPodAutoscaler in version "v1" cannot be handled as a '
                                        f"HorizontalPodAutoscaler: annotation {annotation}: json: cannot unmarshal ")
    # nothing was stored: the namespace still lists, in protobuf too
    r = api.get(V2.format(ns=namespace), headers={"Accept": pbuf.CONTENT_TYPE})
    assert r.status_code == 200 and not pbuf.decode(r.content)["items"]


def test_an_ill_typed_behavior_annotation_is_ignored(api: httpx.Client, namespace: str) -> None:
    """Upstream moves a behavior from its annotation only when it decodes (`err == nil`)."""
    body = {"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "b", "annotations": {BEHAVIOR_ANNOTATION: json.dumps(
                {"ScaleUp": {"Policies": [{"Type": "Pods", "Value": "x", "PeriodSeconds": 15}]}})}},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                     "maxReplicas": 3}}
    r = api.post(V1.format(ns=namespace), json=body)
    assert r.status_code == 201, r.text
    assert "annotations" not in r.json()["metadata"]
    assert "behavior" not in api.get(V2.format(ns=namespace) + "/b").json()["spec"]
