"""node.k8s.io/v1 RuntimeClass: served and validated as upstream, printed with its columns, and the
RuntimeClass admission plugin (overhead, scheduling, unknown classes) on pod creation."""

from __future__ import annotations

import os

import httpx
import pytest
from kubernetes import client, config

from tests.conftest import ControlPlane

NODE_API = "/apis/node.k8s.io/v1"


def invalid(r: httpx.Response) -> list[tuple[str, str]]:
    assert r.status_code == 422, r.text
    assert r.json()["reason"] == "Invalid"
    return [(c["field"], c["message"]) for c in r.json()["details"]["causes"]]


def forbidden(r: httpx.Response) -> str:
    assert r.status_code == 403, r.text
    assert r.json()["reason"] == "Forbidden"
    return r.json()["message"]


@pytest.fixture
def rc_name(api: httpx.Client):
    name = f"rc-{os.urandom(3).hex()}"
    yield name
    for suffix in ("", "-plain"):
        api.delete(f"{NODE_API}/runtimeclasses/{name}{suffix}")


def pod(name: str, runtime_class: str | None, **spec: object) -> dict:
    body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [{"name": "c", "image": "busybox"}], **spec}}
    if runtime_class:
        body["spec"]["runtimeClassName"] = runtime_class
    return body


def test_runtime_class_validation(api: httpx.Client, rc_name: str) -> None:
    url = f"{NODE_API}/runtimeclasses"
    # no handler is an empty one: invalid as a DNS label (upstream's NameIsDNSLabel)
    [(field, message)] = invalid(api.post(url, json={"metadata": {"name": rc_name}}))
    assert field == "handler" and message.startswith('Invalid value: "": a lowercase RFC 1123 label must consist of')
    causes = invalid(api.post(url, json={
        "metadata": {"name": rc_name}, "handler": "runc",
        "scheduling": {"tolerations": [{"operator": "Equal", "value": "x"},
                                       {"key": "k", "effect": "NoSchedule", "tolerationSeconds": 5},
                                       {"key": "bad key", "value": "not a label value!"}]}}))
    assert causes == [
        ("scheduling.tolerations[0].operator", 'Invalid value: "Equal": operator must be Exists when `key` is empty, '
                                               'which means "match all values and all keys"'),
        ("scheduling.tolerations[1].effect", 'Invalid value: "NoSchedule": effect must be \'NoExecute\' when '
                                             "`tolerationSeconds` is set"),
        ("scheduling.tolerations[2].key", causes[2][1]),
        ("scheduling.tolerations[2].operator", causes[3][1]),
    ]
    assert "a valid label must be an empty string or consist of" in causes[3][1]
    causes = invalid(api.post(url, json={
        "metadata": {"name": rc_name}, "handler": "Not_A_Label",
        "overhead": {"podFixed": {"cpu": "-1"}},
        "scheduling": {"nodeSelector": {"bad key!": "x"},
                       "tolerations": [{"key": "a", "operator": "Exists", "effect": "NoSchedule"},
                                       {"key": "a", "operator": "Exists", "effect": "NoSchedule"}]}}))
    fields = [f for f, _ in causes]
    assert fields == ["handler", "overhead.limits[cpu]", "scheduling.nodeSelector", "scheduling.tolerations[1]"]
    assert "a lowercase RFC 1123 label" in causes[0][1]
    assert causes[3][1].startswith("Duplicate value")

    created = api.post(url, json={"metadata": {"name": rc_name}, "handler": "runc"})
    assert created.status_code == 201, created.text
    assert created.json()["apiVersion"] == "node.k8s.io/v1" and created.json()["kind"] == "RuntimeClass"
    changed = {**created.json(), "handler": "crun"}
    assert invalid(api.put(f"{url}/{rc_name}", json=changed)) == [("handler", "Invalid value: \"crun\": field is immutable")]
    labelled = {**created.json(), "metadata": {**created.json()["metadata"], "labels": {"a": "b"}}}
    assert api.put(f"{url}/{rc_name}", json=labelled).status_code == 200


def test_kubectl_and_python_client(control_plane: ControlPlane, api: httpx.Client, rc_name: str) -> None:
    manifest = (f"apiVersion: node.k8s.io/v1\nkind: RuntimeClass\nmetadata: {{name: {rc_name}}}\nhandler: runc\n"
                "overhead: {podFixed: {cpu: 250m, memory: 64Mi}}\n")
    r = control_plane.kubectl("apply", "-f", "-", input=manifest)
    assert r.stdout.strip() == f"runtimeclass.node.k8s.io/{rc_name} created"
    lines = control_plane.kubectl("get", "runtimeclass", rc_name).stdout.splitlines()
    assert lines[0].split() == ["NAME", "HANDLER", "AGE"]
    assert lines[1].split()[:2] == [rc_name, "runc"]
    assert "runtimeclasses" in control_plane.kubectl("api-resources", "--api-group", "node.k8s.io").stdout
    with client.ApiClient(config.new_client_from_config(str(control_plane.kubeconfig)).configuration) as k8s:
        node_api = client.NodeV1Api(k8s)
        got = node_api.read_runtime_class(rc_name)
        assert (got.handler, got.overhead.pod_fixed) == ("runc", {"cpu": "250m", "memory": "64Mi"})
        node_api.create_runtime_class(client.V1RuntimeClass(
            metadata=client.V1ObjectMeta(name=f"{rc_name}-plain"), handler="crun"))
        assert {c.metadata.name for c in node_api.list_runtime_class().items} >= {rc_name, f"{rc_name}-plain"}


def test_admission_sets_overhead_and_scheduling(api: httpx.Client, namespace: str, rc_name: str) -> None:
    r = api.post(f"{NODE_API}/runtimeclasses", json={
        "metadata": {"name": rc_name}, "handler": "runc",
        "overhead": {"podFixed": {"cpu": "100m", "memory": "32Mi"}},
        "scheduling": {"nodeSelector": {"runtime": "runc"},
                       "tolerations": [{"key": "sandboxed", "operator": "Exists", "effect": "NoSchedule"},
                                       {"key": "gpu", "operator": "Equal", "value": "a", "effect": "NoSchedule"}]}})
    assert r.status_code == 201, r.text
    pods = f"/api/v1/namespaces/{namespace}/pods"
    created = api.post(pods, json=pod("p", rc_name, nodeSelector={"zone": "a"}, tolerations=[
        {"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}]))
    assert created.status_code == 201, created.text
    spec = created.json()["spec"]
    assert spec["overhead"] == {"cpu": "100m", "memory": "32Mi"}
    assert spec["nodeSelector"] == {"zone": "a", "runtime": "runc"}
    tolerations = [t for t in spec["tolerations"] if t["key"] in ("gpu", "sandboxed")]
    # the pod's own `gpu Exists` covers the class's `gpu=a`: only the superset stays
    assert tolerations == [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"},
                           {"key": "sandboxed", "operator": "Exists", "effect": "NoSchedule"}]

    # the same overhead written out (in other units) is accepted; a different one is not
    same = api.post(pods, json=pod("same", rc_name, overhead={"cpu": "0.1", "memory": "32Mi"}))
    assert same.status_code == 201, same.text
    message = forbidden(api.post(pods, json=pod("other", rc_name, overhead={"cpu": "1"})))
    assert message == ('pods "other" is forbidden: RuntimeClass: '
                       "pod rejected: Pod's Overhead doesn't match RuntimeClass's defined Overhead")
    conflict = forbidden(api.post(pods, json=pod("conflict", rc_name, nodeSelector={"runtime": "crun"})))
    assert conflict.endswith("conflict: runtimeClass.scheduling.nodeSelector[runtime] = runc; "
                             "pod.spec.nodeSelector[runtime] = crun")


def test_admission_refuses_unknown_classes_and_unexplained_overhead(api: httpx.Client, namespace: str,
                                                                    rc_name: str) -> None:
    pods = f"/api/v1/namespaces/{namespace}/pods"
    message = forbidden(api.post(pods, json=pod("missing", f"{rc_name}-nope")))
    assert message == f'pods "missing" is forbidden: RuntimeClass: pod rejected: RuntimeClass "{rc_name}-nope" not found'
    message = forbidden(api.post(pods, json=pod("overhead", None, overhead={"cpu": "1"})))
    assert message.endswith("pod rejected: Pod Overhead set without corresponding RuntimeClass defined Overhead")
    # a class created just now is found (no waiting for the watch cache)
    assert api.post(f"{NODE_API}/runtimeclasses", json={"metadata": {"name": rc_name}, "handler": "runc"}).status_code == 201
    r = api.post(pods, json=pod("now", rc_name))
    assert r.status_code == 201, r.text
    assert "overhead" not in r.json()["spec"]
    # a template's class name is validated (a pod's is looked up by admission first, as upstream)
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "bad"},
                  "spec": {"selector": {"matchLabels": {"a": "b"}},
                           "template": {"metadata": {"labels": {"a": "b"}}, "spec": pod("x", "Bad_Name")["spec"]}}}
    causes = invalid(api.post(f"/apis/apps/v1/namespaces/{namespace}/deployments", json=deployment))
    assert [f for f, _ in causes] == ["spec.template.spec.runtimeClassName"]
    assert "a lowercase RFC 1123 subdomain" in causes[0][1]
    deployment["spec"]["template"]["spec"]["runtimeClassName"] = ""  # set, though empty: checked as upstream
    causes = invalid(api.post(f"/apis/apps/v1/namespaces/{namespace}/deployments", json=deployment))
    assert [f for f, _ in causes] == ["spec.template.spec.runtimeClassName"]
