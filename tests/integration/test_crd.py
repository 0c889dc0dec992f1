"""CustomResourceDefinitions against the real apiserver: a definition becomes an API (discovery,
OpenAPI, REST, watch, tables, /status, /scale), its objects are pruned, defaulted and validated by
the definition's schema, and deleting the definition deletes them — with unmodified kubectl and
the official Python client, as upstream."""

from __future__ import annotations

import json
import os

import httpx
import pytest
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

from tests.conftest import ControlPlane, wait_for

CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"


def crontab_crd(group: str, *, plural: str = "crontabs", kind: str = "CronTab", short: str = "ct",
                versions: list | None = None) -> dict:
    schema = {
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "properties": {
                    "cronSpec": {"type": "string", "pattern": r"^(\d+|\*)(/\d+)?(\s+(\d+|\*)(/\d+)?){4}$"},
                    "image": {"type": "string"},
                    "replicas": {"type": "integer", "minimum": 1, "maximum": 10, "default": 1},
                    "color": {"type": "string", "enum": ["red", "green"]},
                },
                "required": ["cronSpec"],
            },
            "status": {
                "type": "object",
                "properties": {"replicas": {"type": "integer"}, "labelSelector": {"type": "string"}},
            },
        },
    }
    version = {
        "name": "v1", "served": True, "storage": True,
        "schema": {"openAPIV3Schema": schema},
        "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.replicas",
                                                 "statusReplicasPath": ".status.replicas",
                                                 "labelSelectorPath": ".status.labelSelector"}},
        "additionalPrinterColumns": [
            {"name": "Spec", "type": "string", "jsonPath": ".spec.cronSpec"},
            {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"},
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        ],
        "selectableFields": [{"jsonPath": ".spec.color"}],
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {"group": group, "scope": "Namespaced",
                 "names": {"plural": plural, "singular": kind.lower(), "kind": kind, "shortNames": [short],
                           "categories": ["all"]},
                 "versions": versions or [version]},
    }


def established(api: httpx.Client, name: str) -> bool:
    r = api.get(f"{CRDS}/{name}")
    conds = {c["type"]: c for c in (r.json().get("status") or {}).get("conditions") or []} if r.status_code == 200 else {}
    return conds.get("Established", {}).get("status") == "True"


@pytest.fixture
def group(api: httpx.Client):
    g = f"g{os.urandom(3).hex()}.example.com"
    yield g
    for item in api.get(CRDS).json()["items"]:
        if item["spec"]["group"] == g:
            api.delete(f"{CRDS}/{item['metadata']['name']}")


def make_crd(api: httpx.Client, crd: dict) -> dict:
    r = api.post(CRDS, json=crd)
    assert r.status_code == 201, r.text
    wait_for(lambda: established(api, crd["metadata"]["name"]), 10, 0.05, "Established")
    return api.get(f"{CRDS}/{crd['metadata']['name']}").json()


def test_definition_status_discovery_and_openapi(api: httpx.Client, group: str) -> None:
    crd = make_crd(api, crontab_crd(group))
    conds = {c["type"]: c for c in crd["status"]["conditions"]}
    assert (conds["NamesAccepted"]["status"], conds["NamesAccepted"]["reason"]) == ("True", "NoConflicts")
    assert (conds["Established"]["status"], conds["Established"]["reason"]) == ("True", "InitialNamesAccepted")
    assert crd["status"]["acceptedNames"]["plural"] == "crontabs"
    assert crd["status"]["acceptedNames"]["shortNames"] == ["ct"]
    assert crd["status"]["storedVersions"] == ["v1"]

    # discovery, legacy and aggregated
    assert any(g["name"] == group for g in api.get("/apis").json()["groups"])
    doc = api.get(f"/apis/{group}/v1").json()
    names = {r["name"]: r for r in doc["resources"]}
    assert set(names) == {"crontabs", "crontabs/status", "crontabs/scale"}
    assert names["crontabs"]["shortNames"] == ["ct"] and names["crontabs"]["categories"] == ["all"]
    assert names["crontabs"]["singularName"] == "crontab" and names["crontabs"]["namespaced"] is True
    agg = api.get("/apis", headers={"Accept": "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"})
    assert any(i["metadata"]["name"] == group for i in agg.json()["items"])

    # OpenAPI v3: listed in the root and served with the schema and the standard fields
    root = api.get("/openapi/v3").json()["paths"]
    assert f"apis/{group}/v1" in root
    spec = api.get(f"/openapi/v3/apis/{group}/v1").json()
    rev = ".".join(reversed(group.split(".")))
    crontab = spec["components"]["schemas"][f"{rev}.v1.CronTab"]
    assert crontab["properties"]["spec"]["properties"]["replicas"]["default"] == 1
    assert crontab["x-kubernetes-group-version-kind"] == [{"group": group, "kind": "CronTab", "version": "v1"}]
    assert "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta" in spec["components"]["schemas"]
    assert f"/apis/{group}/v1/namespaces/{{namespace}}/crontabs/{{name}}/scale" in spec["paths"]

    # deleting the definition takes the API away again
    assert api.delete(f"{CRDS}/crontabs.{group}").status_code == 200
    wait_for(lambda: api.get(f"/apis/{group}/v1").status_code == 404, 10, 0.05, "the group version is gone")
    assert f"apis/{group}/v1" not in api.get("/openapi/v3").json()["paths"]
    assert api.get(f"{CRDS}/crontabs.{group}").status_code == 404


def test_objects_are_pruned_defaulted_and_validated(api: httpx.Client, group: str, namespace: str) -> None:
    make_crd(api, crontab_crd(group))
    url = f"/apis/{group}/v1/namespaces/{namespace}/crontabs"
    body = {"apiVersion": f"{group}/v1", "kind": "CronTab", "metadata": {"name": "a"},
            "spec": {"cronSpec": "* * * * */5", "image": "busybox", "extra": 1}, "status": {"replicas": 7}}
    r = api.post(url, json=body)
    assert r.status_code == 201, r.text
    obj = r.json()
    assert "extra" not in obj["spec"] and 'unknown field \\"spec.extra\\"' in r.headers.get("warning", "")
    assert obj["spec"]["replicas"] == 1  # the schema's default
    assert "status" not in obj  # status is a subresource: ignored on create
    assert obj["metadata"]["generation"] == 1

    r = api.post(url, params={"fieldValidation": "Strict"}, json={**body, "metadata": {"name": "b"}})
    assert r.status_code == 400 and 'strict decoding error: unknown field "spec.extra"' in r.json()["message"]

    bad = {**body, "metadata": {"name": "c"},
           "spec": {"cronSpec": "nope", "replicas": 20, "color": "blue", "image": 5}}
    r = api.post(url, json=bad)
    assert r.status_code == 422, r.text
    causes = {c["field"]: c for c in r.json()["details"]["causes"]}
    assert set(causes) == {"spec.cronSpec", "spec.replicas", "spec.color", "spec.image"}
    assert causes["spec.color"]["reason"] == "FieldValueNotSupported"
    assert "should be less than or equal to 10" in causes["spec.replicas"]["message"]
    r = api.post(url, json={**body, "metadata": {"name": "d"}, "spec": {}})
    assert r.status_code == 422 and r.json()["details"]["causes"][0]["field"] == "spec.cronSpec"
    assert r.json()["details"]["causes"][0]["reason"] == "FieldValueRequired"

    # a PUT must carry the resourceVersion; status is kept; generation follows the spec
    r = api.put(f"{url}/a", json={**obj, "metadata": {"name": "a"}})
    assert r.status_code == 422 and r.json()["details"]["causes"][0]["field"] == "metadata.resourceVersion"
    changed = json.loads(json.dumps(obj))
    changed["spec"]["image"] = "nginx"
    r = api.put(f"{url}/a", json=changed)
    assert r.status_code == 200 and r.json()["metadata"]["generation"] == 2
    r = api.patch(f"{url}/a/status", json={"status": {"replicas": 2, "labelSelector": "app=a"}},
                  headers={"Content-Type": "application/merge-patch+json"})
    assert r.status_code == 200 and r.json()["status"]["replicas"] == 2 and r.json()["metadata"]["generation"] == 2
    r = api.patch(f"{url}/a", json={"status": {"replicas": 9}}, headers={"Content-Type": "application/merge-patch+json"})
    assert r.json()["status"]["replicas"] == 2

    # strategic merge patch is refused for custom resources (upstream's 415)
    r = api.patch(f"{url}/a", json={"spec": {"image": "x"}},
                  headers={"Content-Type": "application/strategic-merge-patch+json"})
    assert r.status_code == 415 and r.json()["reason"] == "UnsupportedMediaType"

    # /scale at the definition's paths
    scale = api.get(f"{url}/a/scale").json()
    assert (scale["kind"], scale["spec"]["replicas"], scale["status"]) == ("Scale", 1, {"replicas": 2, "selector": "app=a"})
    r = api.patch(f"{url}/a/scale", json={"spec": {"replicas": 3}},
                  headers={"Content-Type": "application/merge-patch+json"})
    assert r.status_code == 200 and r.json()["spec"]["replicas"] == 3
    assert api.get(f"{url}/a").json()["spec"]["replicas"] == 3

    # selectableFields serve field selectors
    r = api.patch(f"{url}/a", json={"spec": {"color": "red"}}, headers={"Content-Type": "application/merge-patch+json"})
    assert r.status_code == 200, r.text
    items = api.get(url, params={"fieldSelector": "spec.color=red"}).json()["items"]
    assert [i["metadata"]["name"] for i in items] == ["a"]
    assert api.get(url, params={"fieldSelector": "spec.image=x"}).status_code == 400

    # stored under /registry/<group>/<plural>/<namespace>/<name>
    assert api.get(f"{url}/a").json()["apiVersion"] == f"{group}/v1"


def test_kubectl_works_with_custom_resources(control_plane: ControlPlane, api: httpx.Client, group: str,
                                            namespace: str) -> None:
    crd = crontab_crd(group)
    control_plane.kubectl("apply", "-f", "-", input=json.dumps(crd))
    control_plane.kubectl("wait", "--for", "condition=Established", f"crd/crontabs.{group}", "--timeout=20s")
    manifest = {"apiVersion": f"{group}/v1", "kind": "CronTab", "metadata": {"name": "nightly"},
                "spec": {"cronSpec": "0 3 * * *", "image": "busybox"}}
    out = control_plane.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(manifest)).stdout
    assert out.strip() == f"crontab.{group}/nightly created"
    lines = control_plane.kubectl("get", "ct", "-n", namespace).stdout.splitlines()
    assert lines[0].split() == ["NAME", "SPEC", "REPLICAS", "AGE"]
    assert lines[1].split()[:6] == ["nightly", "0", "3", "*", "*", "*"] and lines[1].split()[6] == "1"
    assert f"crontab.{group}/nightly" in control_plane.kubectl("get", "all", "-n", namespace, "-o", "name").stdout

    manifest["spec"]["image"] = "nginx"  # a second apply patches (JSON merge patch for custom kinds)
    out = control_plane.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(manifest)).stdout
    assert out.strip() == f"crontab.{group}/nightly configured"
    control_plane.kubectl("scale", "-n", namespace, "ct/nightly", "--replicas=4")
    got = json.loads(control_plane.kubectl("get", "-n", namespace, "crontab", "nightly", "-o", "json").stdout)
    assert (got["spec"]["image"], got["spec"]["replicas"]) == ("nginx", 4)
    explained = control_plane.kubectl("explain", "crontabs.spec", "--api-version", f"{group}/v1").stdout
    assert "cronSpec" in explained and "replicas" in explained

    bad = control_plane.kubectl("apply", "-n", namespace, "-f", "-", check=False,
                                input=json.dumps({**manifest, "spec": {"cronSpec": "0 3 * * *", "imagee": "x"}}))
    assert bad.returncode != 0 and 'unknown field "spec.imagee"' in bad.stderr

    control_plane.kubectl("delete", "crd", f"crontabs.{group}")
    r = control_plane.kubectl("get", "ct", "-n", namespace, check=False)
    assert r.returncode != 0


def test_versions_names_and_deletion(api: httpx.Client, group: str, namespace: str) -> None:
    crd = crontab_crd(group)
    v1 = crd["spec"]["versions"][0]
    beta = {**json.loads(json.dumps(v1)), "name": "v1beta1", "storage": False, "deprecated": True}
    crd["spec"]["versions"] = [beta, v1]
    make_crd(api, crd)
    r = api.post(f"/apis/{group}/v1beta1/namespaces/{namespace}/crontabs",
                 json={"apiVersion": f"{group}/v1beta1", "kind": "CronTab", "metadata": {"name": "x"},
                       "spec": {"cronSpec": "* * * * *"}})
    assert r.status_code == 201, r.text
    assert r.json()["apiVersion"] == f"{group}/v1beta1"
    assert f"{group}/v1beta1 CronTab is deprecated" in r.headers.get("warning", "")
    with api.stream("GET", f"/apis/{group}/v1beta1/namespaces/{namespace}/crontabs",
                    params={"watch": "1", "timeoutSeconds": "1"}) as watch_resp:  # watches say so too
        assert f"{group}/v1beta1 CronTab is deprecated" in watch_resp.headers.get("warning", "")
    assert api.get(f"/apis/{group}/v1/namespaces/{namespace}/crontabs/x").json()["apiVersion"] == f"{group}/v1"
    # the preferred version is the GA one
    assert api.get(f"/apis/{group}").json()["preferredVersion"]["version"] == "v1"

    # a second definition in the group may not take a name that is in use
    other = crontab_crd(group, plural="crontabs2", kind="CronTab", short="ct2")
    r = api.post(CRDS, json=other)
    assert r.status_code == 201

    def names_refused() -> bool:
        conds = {c["type"]: c for c in (api.get(f"{CRDS}/crontabs2.{group}").json().get("status") or {}).get("conditions") or []}
        return conds.get("NamesAccepted", {}).get("status") == "False"

    wait_for(names_refused, 10, 0.05, "NamesAccepted=False")
    conds = {c["type"]: c for c in api.get(f"{CRDS}/crontabs2.{group}").json()["status"]["conditions"]}
    assert conds["NamesAccepted"]["reason"] == "ListKindConflict"  # the last of the conflicts checked (upstream)
    assert conds["NamesAccepted"]["message"] == '"CronTabList" is already in use'
    assert conds["Established"]["status"] == "False"
    assert api.get(f"/apis/{group}/v1/namespaces/{namespace}/crontabs2").status_code == 404

    # deleting a definition deletes its objects first; one held by a finalizer holds the definition
    url = f"/apis/{group}/v1/namespaces/{namespace}/crontabs"
    r = api.post(url, json={"apiVersion": f"{group}/v1", "kind": "CronTab",
                            "metadata": {"name": "held", "finalizers": ["example.com/hold"]},
                            "spec": {"cronSpec": "* * * * *"}})
    assert r.status_code == 201, r.text
    assert api.delete(f"{CRDS}/crontabs.{group}").status_code == 200

    def terminating_reason() -> str:
        crd = api.get(f"{CRDS}/crontabs.{group}").json()
        conds = {c["type"]: c for c in (crd.get("status") or {}).get("conditions") or []}
        return conds.get("Terminating", {}).get("reason", "")

    wait_for(lambda: terminating_reason() == "InstanceDeletionCheck", 10, 0.05, "the definition waits for its objects")
    assert api.get(f"{url}/x").status_code == 404  # deleted
    r = api.post(url, json={"apiVersion": f"{group}/v1", "kind": "CronTab", "metadata": {"name": "late"},
                            "spec": {"cronSpec": "* * * * *"}})
    assert r.status_code == 405 and "terminating" in r.json()["message"]
    api.patch(f"{url}/held", json={"metadata": {"finalizers": None}},
              headers={"Content-Type": "application/merge-patch+json"})
    wait_for(lambda: api.get(f"{CRDS}/crontabs.{group}").status_code == 404, 10, 0.05, "the definition is gone")
    # the names are free again: the other definition gets them
    wait_for(lambda: established(api, f"crontabs2.{group}"), 10, 0.05, "the second definition is established")


def test_python_client(control_plane: ControlPlane, group: str, namespace: str) -> None:
    cfg = client.Configuration()
    config.load_kube_config(str(control_plane.kubeconfig), client_configuration=cfg)
    with client.ApiClient(cfg) as ac:
        ext = client.ApiextensionsV1Api(ac)
        ext.create_custom_resource_definition(crontab_crd(group))
        wait_for(lambda: any(c.type == "Established" and c.status == "True"
                             for c in ext.read_custom_resource_definition(f"crontabs.{group}").status.conditions or []),
                 10, 0.05, "Established")
        co = client.CustomObjectsApi(ac)
        body = {"apiVersion": f"{group}/v1", "kind": "CronTab", "metadata": {"name": "p"},
                "spec": {"cronSpec": "* * * * *"}}
        created = co.create_namespaced_custom_object(group, "v1", namespace, "crontabs", body)
        assert created["spec"]["replicas"] == 1
        co.patch_namespaced_custom_object(group, "v1", namespace, "crontabs", "p", {"spec": {"image": "z"}})
        w = watch.Watch()
        events = []
        for ev in w.stream(co.list_namespaced_custom_object, group, "v1", namespace, "crontabs",
                           resource_version=created["metadata"]["resourceVersion"], timeout_seconds=10):
            events.append((ev["type"], ev["object"]["spec"].get("image")))
            if ev["type"] == "MODIFIED":
                co.delete_namespaced_custom_object(group, "v1", namespace, "crontabs", "p")
            if ev["type"] == "DELETED":
                w.stop()
        assert events == [("MODIFIED", "z"), ("DELETED", "z")]
        listed = co.list_namespaced_custom_object(group, "v1", namespace, "crontabs")
        assert listed["items"] == [] and listed["kind"] == "CronTabList"
        with pytest.raises(ApiException) as e:
            co.get_namespaced_custom_object(group, "v1", namespace, "crontabs", "p")
        assert e.value.status == 404
        ext.delete_custom_resource_definition(f"crontabs.{group}")


def test_definitions_are_served_again_after_a_restart() -> None:
    from tests.conftest import private_control_plane

    with private_control_plane("mk8s-crd-restart-", controller_manager=False) as cp, cp.client() as api:
        group = "restart.example.com"
        make_crd(api, crontab_crd(group))
        url = f"/apis/{group}/v1/namespaces/default/crontabs"
        r = api.post(url, json={"apiVersion": f"{group}/v1", "kind": "CronTab", "metadata": {"name": "a"},
                                "spec": {"cronSpec": "* * * * *"}})
        assert r.status_code == 201, r.text
        cp.stop("apiserver")
        cp.start_apiserver()
        cp.wait_ready()
        wait_for(lambda: api.get(f"{url}/a").status_code == 200, 10, 0.05, "the object served again")
        assert api.get(f"{url}/a").json()["spec"]["replicas"] == 1
        lines = cp.kubectl("get", "ct").stdout.splitlines()
        assert lines[0].split() == ["NAME", "SPEC", "REPLICAS", "AGE"] and lines[1].split()[0] == "a"


def test_validation_rules(api: httpx.Client, group: str, namespace: str) -> None:
    """x-kubernetes-validations (CEL) rules, including a transition rule that sees oldSelf."""
    crd = crontab_crd(group)
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    spec["properties"].update({"min": {"type": "integer"}, "max": {"type": "integer"},
                               "owner": {"type": "string", "x-kubernetes-validations": [
                                   {"rule": "self == oldSelf", "message": "owner is immutable"}]}})
    spec["x-kubernetes-validations"] = [{"rule": "self.min <= self.max", "message": "min must not exceed max"}]
    make_crd(api, crd)
    url = f"/apis/{group}/v1/namespaces/{namespace}/crontabs"
    body = {"apiVersion": f"{group}/v1", "kind": "CronTab", "metadata": {"name": "r"},
            "spec": {"cronSpec": "* * * * *", "min": 3, "max": 1, "owner": "a"}}
    r = api.post(url, json=body)
    assert r.status_code == 422, r.text
    assert [(c["field"], c["message"]) for c in r.json()["details"]["causes"]] == [
        ("spec", "Invalid value: min must not exceed max")]
    body["spec"]["max"] = 5
    assert api.post(url, json=body).status_code == 201
    r = api.patch(f"{url}/r", json={"spec": {"owner": "b"}}, headers={"Content-Type": "application/merge-patch+json"})
    assert r.status_code == 422 and r.json()["details"]["causes"][0]["field"] == "spec.owner"
    assert "owner is immutable" in r.json()["details"]["causes"][0]["message"]
    r = api.patch(f"{url}/r", json={"spec": {"max": 6}}, headers={"Content-Type": "application/merge-patch+json"})
    assert r.status_code == 200, r.text


def test_expensive_rules_run_off_the_event_loop(control_plane: ControlPlane, api: httpx.Client, group: str,
                                               namespace: str) -> None:
    """A rule the definition's cost estimate admits may take seconds in cel-python: it runs in the
    CEL thread, and other requests are served meanwhile."""
    import threading

    crd = crontab_crd(group)
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    spec["properties"]["l"] = {"type": "array", "maxItems": 200, "items": {"type": "integer"}}
    spec["x-kubernetes-validations"] = [{"rule": "self.l.all(x, self.l.all(y, x + y >= 0))"},
                                        {"rule": "self.cronSpec.find('^(a+)+$') == ''"}]  # RE2: linear time
    make_crd(api, crd)
    url = f"/apis/{group}/v1/namespaces/{namespace}/crontabs"
    body = {"apiVersion": f"{group}/v1", "kind": "CronTab", "metadata": {"name": "heavy"},
            "spec": {"cronSpec": "* * * * *", "l": list(range(100))}}
    done: list[int] = []

    def create() -> None:
        with control_plane.client(timeout=120) as c:
            done.append(c.post(url, json=body).status_code)

    worker = threading.Thread(target=create)
    worker.start()
    served_meanwhile = 0
    with control_plane.client(timeout=120) as c:
        while not done:
            assert c.get("/readyz").status_code == 200
            served_meanwhile += 1 if not done else 0
    worker.join()
    assert done == [201]
    # 10,000 iterations of the inner rule take seconds; on the event loop nothing else would be answered
    assert served_meanwhile > 10


def test_odd_definitions_and_objects_are_never_a_500(api: httpx.Client, group: str, namespace: str) -> None:
    """Every field of a rich definition (its schema included) and of a custom object set to each
    odd JSON value: always a Status below 500."""
    from tests.integration.test_api_errors import each_field_replaced

    crd = crontab_crd(group)
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    spec["properties"].update({
        "tags": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set", "maxItems": 3},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "when": {"type": "string", "format": "date-time"},
        "size": {"x-kubernetes-int-or-string": True, "anyOf": [{"type": "integer"}, {"type": "string"}]},
        "nested": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
        "matrix": {"type": "array", "items": {"type": "object", "properties": {"a": {"type": "integer"}}}},
    })
    spec["x-kubernetes-validations"] = [{"rule": "self.replicas <= 5", "message": "too many"},
                                        {"rule": "!has(self.tags) || self.tags.all(t, t.size() < 10)"}]
    crd["spec"]["conversion"] = {"strategy": "None"}
    seen = 0
    for body in each_field_replaced(crd):
        r = api.post(CRDS, params={"dryRun": "All"}, json=body)
        assert r.status_code < 500 and (r.status_code < 400 or r.json()["kind"] == "Status"), (body, r.text)
        seen += 1
    make_crd(api, crd)
    obj = {"apiVersion": f"{group}/v1", "kind": "CronTab", "metadata": {"name": "odd", "labels": {"a": "b"}},
           "spec": {"cronSpec": "* * * * *", "replicas": 2, "tags": ["a"], "labels": {"k": "v"},
                    "when": "2026-01-01T00:00:00Z", "size": 3, "nested": {"x": [1]}, "color": "red"}}
    url = f"/apis/{group}/v1/namespaces/{namespace}/crontabs"
    for body in each_field_replaced(obj):
        r = api.post(url, params={"dryRun": "All"}, json=body)
        assert r.status_code < 500 and (r.status_code < 400 or r.json()["kind"] == "Status"), (body, r.text)
        seen += 1
    assert seen > 1000


def test_quota_counts_custom_resources(api: httpx.Client, group: str, namespace: str) -> None:
    make_crd(api, crontab_crd(group))
    quota = f"/api/v1/namespaces/{namespace}/resourcequotas"
    assert api.post(quota, json={"metadata": {"name": "q"}, "spec": {"hard": {f"count/crontabs.{group}": "1"}}}
                    ).status_code == 201
    url = f"/apis/{group}/v1/namespaces/{namespace}/crontabs"

    def create(name: str) -> int:
        return api.post(url, json={"apiVersion": f"{group}/v1", "kind": "CronTab", "metadata": {"name": name},
                                   "spec": {"cronSpec": "* * * * *"}}).status_code

    wait_for(lambda: create("a") == 201, 10, 0.1, "the quota to be ready")
    assert create("b") == 403
    wait_for(lambda: api.get(f"{quota}/q").json().get("status", {}).get("used", {}).get(f"count/crontabs.{group}") == "1",
             10, 0.1, "usage recorded")
    assert api.delete(f"{url}/a").status_code == 200
    # the deletion is seen in the definition's cache and the usage recomputed from it
    wait_for(lambda: api.get(f"{quota}/q").json()["status"]["used"][f"count/crontabs.{group}"] == "0",
             10, 0.1, "usage after the delete")
    assert create("b") == 201 and create("c") == 403


def test_deleting_a_definition_without_served_versions_deletes_its_objects(api: httpx.Client, group: str,
                                                                            namespace: str) -> None:
    crd = make_crd(api, crontab_crd(group))
    url = f"/apis/{group}/v1/namespaces/{namespace}/crontabs"
    assert api.post(url, json={"apiVersion": f"{group}/v1", "kind": "CronTab", "metadata": {"name": "kept"},
                               "spec": {"cronSpec": "* * * * *"}}).status_code == 201
    crd["spec"]["versions"][0]["served"] = False
    assert api.put(f"{CRDS}/crontabs.{group}", json=crd).status_code == 200, "served: false"
    wait_for(lambda: api.get(url).status_code == 404, 10, 0.05, "the version is no longer served")
    assert api.delete(f"{CRDS}/crontabs.{group}").status_code == 200
    wait_for(lambda: api.get(f"{CRDS}/crontabs.{group}").status_code == 404, 10, 0.05, "the definition is gone")
    make_crd(api, crontab_crd(group))  # the same definition again: nothing of the old objects is left
    assert api.get(url).json()["items"] == []
