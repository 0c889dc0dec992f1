"""CRD conversion webhooks against the real apiserver: a definition with two versions whose
schemas differ (v1 `spec.cronSpec`, stored; v2 `spec.schedule`) and `conversion.strategy: Webhook`
pointing at a real HTTPS server in the test. Every path that moves an object between versions —
create, get, list, watch, update, patch, delete, /status, /scale — goes through it; its failures
are 500s worded as upstream's, and nothing is stored when a write's conversion fails."""

from __future__ import annotations

import copy
import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ControlPlane, wait_for
from tests.integration.test_admission_webhooks import WebhookServer
from tests.integration.test_crd import CRDS, crontab_crd, make_crd

MERGE = {"content-type": "application/merge-patch+json"}


def convert_object(obj: dict[str, Any], desired: str) -> dict[str, Any]:
    out = copy.deepcopy(obj)
    version = desired.rsplit("/", 1)[1]
    spec = out.setdefault("spec", {})
    if version == "v2" and "cronSpec" in spec:
        spec["schedule"] = spec.pop("cronSpec")
    elif version == "v1" and "schedule" in spec:
        spec["cronSpec"] = spec.pop("schedule")
    out["apiVersion"] = desired
    out.setdefault("metadata", {}).setdefault("labels", {})["converted"] = version
    out["metadata"]["generation"] = 99  # only labels and annotations are taken from a conversion
    return out


def converter(review: dict[str, Any]) -> dict[str, Any]:
    req = review["request"]
    return {"apiVersion": review["apiVersion"], "kind": "ConversionReview",
            "response": {"uid": req["uid"], "result": {"status": "Success"},
                         "convertedObjects": [convert_object(o, req["desiredAPIVersion"]) for o in req["objects"]]}}


@pytest.fixture(scope="module")
def hooks() -> Iterator[WebhookServer]:
    d = Path(tempfile.mkdtemp(prefix="mk8s-conversion-pki-"))
    srv = WebhookServer(d)
    srv.handlers["/convert"] = converter
    yield srv
    srv.stop()
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def group(api: httpx.Client, hooks: WebhookServer) -> Iterator[str]:
    import os

    g = f"conv{os.urandom(3).hex()}.example.com"
    crd = crontab_crd(g)
    v1 = crd["spec"]["versions"][0]
    v2 = copy.deepcopy(v1)
    v2.update(name="v2", storage=False)
    props = v2["schema"]["openAPIV3Schema"]["properties"]["spec"]
    props["properties"]["schedule"] = props["properties"].pop("cronSpec")
    props["required"] = ["schedule"]
    v2["additionalPrinterColumns"][0]["jsonPath"] = ".spec.schedule"
    v2.pop("selectableFields")
    crd["spec"]["versions"] = [v1, v2]
    crd["spec"]["names"].pop("categories")  # not in `kubectl get all` of later tests while it goes away
    crd["spec"]["conversion"] = {"strategy": "Webhook", "webhook": {
        "conversionReviewVersions": ["v1"],
        "clientConfig": {"url": hooks.url("/convert"), "caBundle": hooks.ca_bundle}}}
    make_crd(api, crd)
    hooks.handlers["/convert"] = converter
    yield g
    hooks.handlers["/convert"] = converter
    api.delete(f"{CRDS}/crontabs.{g}")
    wait_for(lambda: api.get(f"{CRDS}/crontabs.{g}").status_code == 404, 30, 0.1, "the definition deleted")


def reviews(hooks: WebhookServer) -> list[dict[str, Any]]:
    return hooks.calls.setdefault("/convert", [])


def v2_body(name: str, schedule: str = "*/5 * * * *") -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {"schedule": schedule, "replicas": 2}}


def test_every_path_converts_through_the_webhook(api: httpx.Client, hooks: WebhookServer, group: str,
                                                 namespace: str) -> None:
    v1 = f"/apis/{group}/v1/namespaces/{namespace}/crontabs"
    v2 = f"/apis/{group}/v2/namespaces/{namespace}/crontabs"
    calls = reviews(hooks)
    calls.clear()
    r = api.post(v2, json={"apiVersion": f"{group}/v2", "kind": "CronTab", **v2_body("a")})
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["apiVersion"] == f"{group}/v2" and created["spec"] == {"schedule": "*/5 * * * *", "replicas": 2}
    assert created["metadata"]["generation"] == 1
    # stored at v1 (what the webhook made of it), so reading v1 needs no call
    review = calls[-1]
    assert review["apiVersion"] == "apiextensions.k8s.io/v1" and review["kind"] == "ConversionReview"
    assert review["request"]["desiredAPIVersion"] == f"{group}/v1" and review["_query"] == "timeout=30s"
    assert [o["spec"] for o in review["request"]["objects"]] == [{"schedule": "*/5 * * * *", "replicas": 2}]
    before = len(calls)
    stored = api.get(f"{v1}/a").json()
    assert stored["spec"] == {"cronSpec": "*/5 * * * *", "replicas": 2}
    assert stored["metadata"]["labels"] == {"converted": "v1"} and stored["metadata"]["generation"] == 1
    assert len(calls) == before

    got = api.get(f"{v2}/a").json()
    assert got["apiVersion"] == f"{group}/v2" and got["spec"]["schedule"] == "*/5 * * * *"
    assert len(calls) == before + 1 and calls[-1]["request"]["desiredAPIVersion"] == f"{group}/v2"

    # a list converts its items in one review; v1 objects created through v1 go there too
    api.post(v1, json={"apiVersion": f"{group}/v1", "kind": "CronTab", "metadata": {"name": "b"},
                       "spec": {"cronSpec": "1 * * * *"}}).raise_for_status()
    before = len(calls)
    items = api.get(v2).json()["items"]
    assert sorted((i["metadata"]["name"], i["spec"]["schedule"]) for i in items) == [
        ("a", "*/5 * * * *"), ("b", "1 * * * *")]
    assert len(calls) == before + 1 and len(calls[-1]["request"]["objects"]) == 2
    # the table's columns are the served version's
    table = api.get(v2, headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"}).json()
    assert sorted(row["cells"][1] for row in table["rows"]) == ["*/5 * * * *", "1 * * * *"]
    # paginated from etcd too
    page = api.get(v2, params={"limit": 1}).json()
    assert page["items"][0]["apiVersion"] == f"{group}/v2" and "schedule" in page["items"][0]["spec"]

    # update and patch through v2: the webhook sees the old object at v2, the new one goes back to v1
    got["spec"]["schedule"] = "2 * * * *"
    r = api.put(f"{v2}/a", json=got)
    assert r.status_code == 200, r.text
    assert r.json()["spec"]["schedule"] == "2 * * * *" and r.json()["metadata"]["generation"] == 2
    r = api.patch(f"{v2}/a", json={"spec": {"replicas": 3}}, headers=MERGE)
    assert r.status_code == 200, r.text
    assert r.json()["spec"] == {"schedule": "2 * * * *", "replicas": 3}
    assert api.get(f"{v1}/a").json()["spec"] == {"cronSpec": "2 * * * *", "replicas": 3}
    # an unchanged PUT writes nothing
    same = api.get(f"{v2}/a").json()
    assert api.put(f"{v2}/a", json=same).json()["metadata"]["resourceVersion"] == same["metadata"]["resourceVersion"]

    # /status and /scale are read at the served version
    status = api.get(f"{v2}/a/status").json()
    assert status["apiVersion"] == f"{group}/v2" and status["spec"]["schedule"] == "2 * * * *"
    assert api.get(f"{v2}/a/scale").json()["spec"]["replicas"] == 3
    r = api.patch(f"{v2}/a/scale", json={"spec": {"replicas": 4}}, headers=MERGE)
    assert r.status_code == 200, r.text
    assert api.get(f"{v1}/a").json()["spec"]["replicas"] == 4

    # a watch's events are converted
    with api.stream("GET", v2, params={"watch": "1", "resourceVersion": "0", "timeoutSeconds": "5"}) as w:
        lines = w.iter_lines()
        seen = {}
        for _ in range(2):
            ev = json.loads(next(lines))
            seen[ev["object"]["metadata"]["name"]] = ev["object"]
    assert {n: o["apiVersion"] for n, o in seen.items()} == {"a": f"{group}/v2", "b": f"{group}/v2"}
    assert seen["b"]["spec"]["schedule"] == "1 * * * *"

    # a delete held by a finalizer answers with the object, at the served version
    api.patch(f"{v2}/b", json={"metadata": {"finalizers": ["example.com/hold"]}}, headers=MERGE).raise_for_status()
    r = api.delete(f"{v2}/b")
    assert r.status_code == 200, r.text
    assert r.json()["apiVersion"] == f"{group}/v2" and r.json()["spec"]["schedule"] == "1 * * * *"
    assert r.json()["metadata"]["deletionTimestamp"]
    api.patch(f"{v2}/b", json={"metadata": {"finalizers": None}}, headers=MERGE).raise_for_status()
    assert api.get(f"{v1}/b").status_code == 404
    r = api.delete(f"{v2}/a")
    assert r.status_code == 200 and r.json()["kind"] == "Status" and r.json()["details"]["name"] == "a"


def test_kubectl_and_the_python_client(control_plane: ControlPlane, api: httpx.Client, hooks: WebhookServer,
                                       group: str, namespace: str) -> None:
    manifest = {"apiVersion": f"{group}/v2", "kind": "CronTab", **v2_body("k"),
                "metadata": {"name": "k", "namespace": namespace}}
    control_plane.kubectl("apply", "-f", "-", input=json.dumps(manifest))
    out = control_plane.kubectl("get", f"crontabs.v2.{group}", "-n", namespace, "k", "-o", "json").stdout
    assert json.loads(out)["spec"]["schedule"] == "*/5 * * * *"
    out = control_plane.kubectl("get", f"crontabs.v1.{group}", "-n", namespace, "k").stdout
    assert out.split("\n")[1].split()[:3] == ["k", "*/5", "*"]
    # server-side apply, twice with a change: field management works across the conversion
    manifest["metadata"]["name"] = "s"
    control_plane.kubectl("apply", "--server-side", "-f", "-", input=json.dumps(manifest))
    manifest["spec"]["replicas"] = 5
    control_plane.kubectl("apply", "--server-side", "-f", "-", input=json.dumps(manifest))
    stored = api.get(f"/apis/{group}/v1/namespaces/{namespace}/crontabs/s").json()
    assert stored["spec"] == {"cronSpec": "*/5 * * * *", "replicas": 5}
    assert [(m["manager"], m["apiVersion"]) for m in stored["metadata"]["managedFields"]] == [
        ("kubectl", f"{group}/v2")]

    from kubernetes import client, config

    config.load_kube_config(str(control_plane.kubeconfig))
    custom = client.CustomObjectsApi()
    got = custom.get_namespaced_custom_object(group, "v2", namespace, "crontabs", "s")
    assert got["spec"]["schedule"] == "*/5 * * * *" and got["spec"]["replicas"] == 5


def test_conversion_failures_are_500s_and_store_nothing(api: httpx.Client, hooks: WebhookServer, group: str,
                                                        namespace: str) -> None:
    v1 = f"/apis/{group}/v1/namespaces/{namespace}/crontabs"
    v2 = f"/apis/{group}/v2/namespaces/{namespace}/crontabs"
    api.post(v1, json={"apiVersion": f"{group}/v1", "kind": "CronTab", "metadata": {"name": "x"},
                       "spec": {"cronSpec": "1 * * * *"}}).raise_for_status()

    def failing(review: dict[str, Any]) -> dict[str, Any]:
        return {"apiVersion": review["apiVersion"], "kind": "ConversionReview",
                "response": {"uid": review["request"]["uid"],
                             "result": {"status": "Failure", "message": "cannot convert this"}}}

    hooks.handlers["/convert"] = failing
    r = api.get(f"{v2}/x")
    assert r.status_code == 500, r.text
    assert r.json()["message"] == f"conversion webhook for {group}/v1, Kind=CronTab failed: cannot convert this"
    assert api.get(v2).status_code == 500
    r = api.post(v2, json={"apiVersion": f"{group}/v2", "kind": "CronTab", **v2_body("y")})
    assert r.status_code == 500 and r.json()["reason"] == "InternalError", r.text
    assert r.json()["message"] == (f"Internal error occurred: conversion webhook for {group}/v2, Kind=CronTab failed: "
                                   "cannot convert this")
    r = api.patch(f"{v2}/x", json={"spec": {"replicas": 3}}, headers=MERGE)
    assert r.status_code == 500 and r.json()["reason"] == "InternalError", r.text
    assert api.get(f"{v1}/y").status_code == 404
    assert api.get(f"{v1}/x").json()["spec"] == {"cronSpec": "1 * * * *", "replicas": 1}
    # reading the stored version needs no conversion
    assert api.get(f"{v1}/x").status_code == 200

    # a watch that cannot convert an event says so and ends
    with api.stream("GET", v2, params={"watch": "1", "resourceVersion": "0", "timeoutSeconds": "5"}) as w:
        ev = json.loads(next(w.iter_lines()))
    assert ev["type"] == "ERROR" and ev["object"]["code"] == 500
    assert "cannot convert this" in ev["object"]["message"]

    def renaming(review: dict[str, Any]) -> dict[str, Any]:
        answer = converter(review)
        answer["response"]["convertedObjects"][0]["metadata"]["name"] = "other"
        return answer

    hooks.handlers["/convert"] = renaming
    r = api.get(f"{v2}/x")
    assert r.status_code == 500
    assert r.json()["message"] == (f"conversion webhook for {group}/v1, Kind=CronTab returned invalid object: "
                                   "must have the same name: x != other")
    r = api.get(v2)  # a list's items: upstream's words for them (and its index quirk)
    assert r.status_code == 500
    assert r.json()["message"] == (f"conversion webhook for {group}/v1, Kind=CronTabList returned invalid converted "
                                   "object at index 1: must have the same name: x != other")

    def wrong_uid(review: dict[str, Any]) -> dict[str, Any]:
        answer = converter(review)
        answer["response"]["uid"] = "nope"
        return answer

    hooks.handlers["/convert"] = wrong_uid
    r = api.get(f"{v2}/x")
    assert r.status_code == 500 and "Kind=CronTab failed: expected response.uid=" in r.json()["message"]

    def bad_label(review: dict[str, Any]) -> dict[str, Any]:
        answer = converter(review)
        answer["response"]["convertedObjects"][0]["metadata"]["labels"] = {"bad key!": "v"}
        return answer

    hooks.handlers["/convert"] = bad_label
    r = api.get(f"{v2}/x")
    assert r.status_code == 500
    assert r.json()["message"].startswith(f"conversion webhook for {group}/v1, Kind=CronTab returned invalid metadata: "
                                          'metadata.labels: Invalid value: "bad key!"')

    hooks.handlers["/convert"] = lambda review: (404, b"not here")
    r = api.get(f"{v2}/x")
    assert r.status_code == 500
    assert r.json()["message"] == (f"conversion webhook for {group}/v1, Kind=CronTab failed: the server could not "
                                   "find the requested resource")

    hooks.handlers["/convert"] = converter
    wait_for(lambda: api.get(f"{v2}/x").status_code == 200, 5, 0.05, "conversions working again")


def test_an_unreachable_webhook(api: httpx.Client, group: str, namespace: str) -> None:
    crd = api.get(f"{CRDS}/crontabs.{group}").json()
    crd["spec"]["conversion"]["webhook"]["clientConfig"] = {"service": {"namespace": namespace, "name": "nowhere",
                                                                         "path": "/convert"}}
    api.put(f"{CRDS}/crontabs.{group}", json=crd).raise_for_status()
    v2 = f"/apis/{group}/v2/namespaces/{namespace}/crontabs"

    def refused() -> httpx.Response | None:
        r = api.post(v2, json={"apiVersion": f"{group}/v2", "kind": "CronTab", **v2_body("z")})
        return r if r.status_code == 500 else None

    r = wait_for(refused, 10, 0.1, "the new client config in use")
    assert r.json()["message"] == (
        f'Internal error occurred: conversion webhook for {group}/v2, Kind=CronTab failed: Post '
        f'"https://nowhere.{namespace}.svc:443/convert?timeout=30s": service "nowhere" not found')


def test_an_unchanged_write_moves_an_object_to_the_storage_version(api: httpx.Client, hooks: WebhookServer,
                                                                  group: str, namespace: str) -> None:
    v2 = f"/apis/{group}/v2/namespaces/{namespace}/crontabs"
    api.post(v2, json={"apiVersion": f"{group}/v2", "kind": "CronTab", **v2_body("m")}).raise_for_status()  # at v1
    crd = api.get(f"{CRDS}/crontabs.{group}").json()
    for v in crd["spec"]["versions"]:
        v["storage"] = v["name"] == "v2"
    api.put(f"{CRDS}/crontabs.{group}", json=crd).raise_for_status()
    calls = reviews(hooks)

    def rewritten() -> bool:  # once this server serves the new storage version, an unchanged PUT writes
        current = api.get(f"{v2}/m").json()
        return api.put(f"{v2}/m", json=current).json()["metadata"]["resourceVersion"] != \
            current["metadata"]["resourceVersion"]

    wait_for(rewritten, 10, 0.1, "the object rewritten at the new storage version")
    before = len(calls)
    assert api.get(f"{v2}/m").json()["spec"]["schedule"] == "*/5 * * * *"
    assert len(calls) == before  # stored at v2 now: no conversion to read it there
    same = api.get(f"{v2}/m").json()
    assert api.put(f"{v2}/m", json=same).json()["metadata"]["resourceVersion"] == same["metadata"]["resourceVersion"]


def test_admission_webhooks_see_the_version_they_registered_for(api: httpx.Client, hooks: WebhookServer, group: str,
                                                                namespace: str) -> None:
    """A mutating webhook registered for v1 only (matchPolicy Equivalent, the default) gets a v2
    request's object converted to v1, and its patch (written against v1) is converted back."""
    import base64

    def add_image(review: dict[str, Any]) -> dict[str, Any]:
        obj = review["request"]["object"]
        assert obj["apiVersion"] == f"{group}/v1" and "cronSpec" in obj["spec"]
        ops = [{"op": "add", "path": "/spec/image", "value": f"from-v1:{obj['spec']['cronSpec']}"}]
        return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                "response": {"uid": review["request"]["uid"], "allowed": True, "patchType": "JSONPatch",
                             "patch": base64.b64encode(json.dumps(ops).encode()).decode()}}

    hooks.handlers["/mutate"] = add_image
    name = f"conv-{namespace}"
    r = api.post("/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations", json={
        "metadata": {"name": name},
        "webhooks": [{"name": "image.conv.example.com", "sideEffects": "None", "admissionReviewVersions": ["v1"],
                      "clientConfig": {"url": hooks.url("/mutate"), "caBundle": hooks.ca_bundle},
                      "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
                      "rules": [{"operations": ["CREATE"], "apiGroups": [group], "apiVersions": ["v1"],
                                 "resources": ["crontabs"]}]}]})
    assert r.status_code == 201, r.text
    try:
        v2 = f"/apis/{group}/v2/namespaces/{namespace}/crontabs"
        body = {"apiVersion": f"{group}/v2", "kind": "CronTab", **v2_body("adm")}

        def mutated() -> dict[str, Any] | None:  # the configuration reaches the admission plugin shortly
            r = api.post(v2, json={**body, "metadata": {"generateName": "adm-"}})
            assert r.status_code == 201, r.text
            return r.json() if "image" in r.json()["spec"] else None

        created = wait_for(mutated, 10, 0.1, "the mutating webhook called")
        assert created["apiVersion"] == f"{group}/v2"
        assert created["spec"] == {"schedule": "*/5 * * * *", "replicas": 2, "image": "from-v1:*/5 * * * *"}
    finally:
        api.delete(f"/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/{name}")
