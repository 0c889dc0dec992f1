"""The OpenAPI generator (names, types, patch extensions, operations) and the serving handlers."""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import re
from pathlib import Path
from typing import Any

import orjson
import pytest

from apimachinery import strategic
from apiserver import openapi_gen
from apiserver.openapi import OpenAPI, negotiate
from apiserver.resources import RESOURCES, TABLE, Resource, ResourceTable

CORE = "io.k8s.api.core.v1."
APPS = "io.k8s.api.apps.v1."
META = "io.k8s.apimachinery.pkg.apis.meta.v1."


@pytest.fixture(scope="module")
def generated() -> dict[str, Any]:
    return openapi_gen.generate(TABLE)


@pytest.fixture(scope="module")
def v2(generated: dict[str, Any]) -> dict[str, Any]:
    return orjson.loads(generated["v2"])


@pytest.fixture(scope="module")
def v3(generated: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {gv: orjson.loads(entry["doc"]) for gv, entry in generated["v3"].items()}


def test_definition_names_follow_upstream(v2: dict[str, Any]) -> None:
    defs = v2["definitions"]
    for name in [
        APPS + "Deployment", APPS + "DeploymentSpec", APPS + "DeploymentList", APPS + "RollingUpdateDeployment",
        CORE + "Pod", CORE + "PodSpec", CORE + "Container", CORE + "PodTemplateSpec", CORE + "Event",
        CORE + "Binding", "io.k8s.api.events.v1.Event", "io.k8s.api.events.v1.EventSeries",
        "io.k8s.api.autoscaling.v1.Scale", "io.k8s.api.policy.v1.Eviction",
        "io.k8s.api.authentication.v1.TokenRequest", "io.k8s.api.authentication.v1.BoundObjectReference",
        "io.k8s.api.rbac.v1.Subject", "io.k8s.api.discovery.v1.EndpointPort", CORE + "EndpointPort",
        "io.k8s.api.coordination.v1.Lease", "io.k8s.api.batch.v1.JobTemplateSpec",
        META + "ObjectMeta", META + "LabelSelector", META + "OwnerReference", META + "ManagedFieldsEntry",
        META + "Status", META + "DeleteOptions", META + "WatchEvent", META + "APIResourceList", META + "Patch",
        META + "Time", META + "MicroTime", META + "FieldsV1",
        "io.k8s.apimachinery.pkg.api.resource.Quantity", "io.k8s.apimachinery.pkg.util.intstr.IntOrString",
        "io.k8s.apimachinery.pkg.runtime.RawExtension",
    ]:
        assert name in defs, name
    # Types of another group embedded in a batch/v1 kind keep their own package.
    assert "io.k8s.api.scheduling.v1alpha3.WorkloadPodGroupDisruptionMode" in defs
    assert not [n for n in defs if n.startswith("io.k8s.api.batch.v1alpha")]
    # Every name is in upstream's form.
    pattern = re.compile(r"^io\.k8s\.(api\.[a-z]+\.v\d+(alpha\d+|beta\d+)?|apimachinery\.pkg\.[a-z.]+\d?"
                         r"|apiextensions-apiserver\.pkg\.apis\.apiextensions\.v1|metrics\.pkg\.apis\.metrics\.v1beta1"
                             r"|kube-aggregator\.pkg\.apis\.apiregistration\.v1)"
                         r"\.[A-Z]\w*$")
    assert [n for n in defs if not pattern.match(n)] == []


def test_kinds_carry_group_version_kind(v2: dict[str, Any]) -> None:
    defs = v2["definitions"]
    assert defs[APPS + "Deployment"]["x-kubernetes-group-version-kind"] == [
        {"group": "apps", "kind": "Deployment", "version": "v1"}]
    assert defs[APPS + "DeploymentList"]["x-kubernetes-group-version-kind"] == [
        {"group": "apps", "kind": "DeploymentList", "version": "v1"}]
    assert defs["io.k8s.api.events.v1.Event"]["x-kubernetes-group-version-kind"] == [
        {"group": "events.k8s.io", "kind": "Event", "version": "v1"}]
    assert defs[META + "Status"]["x-kubernetes-group-version-kind"] == [{"group": "", "kind": "Status", "version": "v1"}]
    delete_gvks = defs[META + "DeleteOptions"]["x-kubernetes-group-version-kind"]
    assert {"group": "apps", "kind": "DeleteOptions", "version": "v1"} in delete_gvks
    assert {"group": "", "kind": "DeleteOptions", "version": "v1"} in delete_gvks


def test_types_with_kubernetes_semantics(v2: dict[str, Any]) -> None:
    defs = v2["definitions"]

    def prop(d: str, f: str) -> dict[str, Any]:
        return defs[d]["properties"][f]

    assert prop(APPS + "RollingUpdateDeployment", "maxSurge")["$ref"].endswith("intstr.IntOrString")
    assert prop(CORE + "ServicePort", "targetPort")["$ref"].endswith("intstr.IntOrString")
    assert defs["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]["format"] == "int-or-string"
    assert defs["io.k8s.apimachinery.pkg.api.resource.Quantity"]["type"] == "string"
    assert prop(CORE + "ResourceRequirements", "limits")["additionalProperties"]["$ref"].endswith("resource.Quantity")
    assert prop(CORE + "EmptyDirVolumeSource", "sizeLimit")["$ref"].endswith("resource.Quantity")
    assert prop(META + "ObjectMeta", "creationTimestamp")["$ref"] == "#/definitions/" + META + "Time"
    assert defs[META + "Time"] == {**defs[META + "Time"], "type": "string", "format": "date-time"}
    assert prop("io.k8s.api.coordination.v1.LeaseSpec", "renewTime")["$ref"].endswith("MicroTime")
    assert prop(APPS + "ControllerRevision", "data")["$ref"].endswith("runtime.RawExtension")
    assert prop(META + "ManagedFieldsEntry", "fieldsV1")["$ref"].endswith("FieldsV1")
    assert prop(CORE + "Secret", "data")["additionalProperties"] == {"type": "string", "format": "byte"}
    # JSON names, descriptions and required fields come from the client's models.
    assert set(defs[CORE + "Probe"]["properties"]) >= {"exec", "httpGet", "tcpSocket", "periodSeconds"}
    assert "continue" in defs[META + "ListMeta"]["properties"]
    assert defs[CORE + "Container"]["required"] == ["name"]
    assert defs[APPS + "DeploymentStrategy"]["description"].startswith("DeploymentStrategy describes how")
    assert "Recreate" in prop(APPS + "DeploymentStrategy", "type")["description"]


def test_patch_extensions(v2: dict[str, Any]) -> None:
    defs = v2["definitions"]

    def ext(d: str, f: str) -> dict[str, Any]:
        return {k: v for k, v in defs[d]["properties"][f].items() if k.startswith("x-kubernetes")}

    assert ext(CORE + "PodSpec", "containers") == {
        "x-kubernetes-patch-merge-key": "name", "x-kubernetes-patch-strategy": "merge",
        "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]}
    assert ext(CORE + "ServiceSpec", "ports") == {
        "x-kubernetes-patch-merge-key": "port", "x-kubernetes-patch-strategy": "merge",
        "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["port", "protocol"]}
    assert ext(CORE + "Container", "ports")["x-kubernetes-list-map-keys"] == ["containerPort", "protocol"]
    assert ext(CORE + "Container", "env")["x-kubernetes-patch-merge-key"] == "name"
    assert ext(CORE + "Container", "volumeMounts")["x-kubernetes-patch-merge-key"] == "mountPath"
    assert ext(CORE + "PodSpec", "volumes")["x-kubernetes-patch-strategy"] == "merge,retainKeys"
    assert ext(META + "ObjectMeta", "finalizers") == {"x-kubernetes-patch-strategy": "merge",
                                                      "x-kubernetes-list-type": "set"}
    assert ext(META + "ObjectMeta", "ownerReferences")["x-kubernetes-patch-merge-key"] == "uid"
    assert ext(APPS + "DeploymentSpec", "strategy") == {"x-kubernetes-patch-strategy": "retainKeys"}
    assert ext("io.k8s.api.policy.v1.PodDisruptionBudgetSpec", "selector") == {"x-kubernetes-patch-strategy": "replace"}
    assert ext("io.k8s.api.batch.v1.JobStatus", "conditions")["x-kubernetes-list-type"] == "atomic"
    assert ext(CORE + "NodeSpec", "podCIDRs") == {"x-kubernetes-patch-strategy": "merge", "x-kubernetes-list-type": "set"}
    assert ext(CORE + "PodSpec", "tolerations") == {}  # no tags upstream: replaced as a whole
    assert ext(CORE + "Container", "command") == {}


def _patch_meta_v3(doc: dict[str, Any], schema: dict[str, Any], key: str, is_list: bool) -> tuple[Any, Any, Any]:
    """What kubectl's PatchMetaFromOpenAPIV3 finds for `key`: (merge key, strategy, sub-schema)."""
    schemas = doc["components"]["schemas"]
    prop = schema["properties"][key]
    meta = (prop.get("x-kubernetes-patch-merge-key"), prop.get("x-kubernetes-patch-strategy"))
    sub = prop["items"] if is_list and "items" in prop else prop
    if sub.get("allOf"):
        sub = sub["allOf"][0]
    if "$ref" in sub:
        sub = schemas[sub["$ref"].removeprefix("#/components/schemas/")]
    return meta[0], meta[1], sub


def test_v3_patch_metadata_matches_the_strategic_table(v3: dict[str, dict[str, Any]]) -> None:
    """Walk every served kind's v3 schema the way kubectl apply does and compare with
    apimachinery.strategic, the table the server's own strategic merge patch uses."""
    checked = 0

    def walk(doc: dict[str, Any], schema: dict[str, Any], fields: dict[str, Any], where: str) -> None:
        nonlocal checked
        for key, desc in fields.items():
            key_, strategy, sub = _patch_meta_v3(doc, schema, key, bool(desc.get("list")))
            assert (key_, strategy) == (desc.get("patchMergeKey"), desc.get("patchStrategy")), f"{where}.{key}"
            checked += 1
            if desc.get("fields"):
                walk(doc, sub, desc["fields"], f"{where}.{key}")

    for r in RESOURCES:
        fields = strategic.BUILTIN_PATCH_META.get((r.api_version, r.kind))
        if fields is None:
            continue
        doc = v3[f"apis/{r.group}/{r.version}" if r.group else f"api/{r.version}"]
        schema = next(s for s in doc["components"]["schemas"].values()
                      if {"group": r.group, "kind": r.kind, "version": r.version}
                      in s.get("x-kubernetes-group-version-kind", []))
        walk(doc, schema, fields, f"{r.api_version}/{r.kind}")
    assert checked > 50


def test_every_reference_resolves(v2: dict[str, Any], v3: dict[str, dict[str, Any]]) -> None:
    refs = set(re.findall(r'"#/definitions/([^"]+)"', orjson.dumps(v2).decode()))
    assert refs - set(v2["definitions"]) == set()
    for gv, doc in v3.items():
        refs = set(re.findall(r'"#/components/schemas/([^"]+)"', orjson.dumps(doc).decode()))
        assert refs - set(doc["components"]["schemas"]) == set(), gv
        # OpenAPI 3.0 ignores siblings of $ref: descriptions and extensions go with allOf.
        for schema in doc["components"]["schemas"].values():
            for prop in schema.get("properties", {}).values():
                assert "$ref" not in prop or len(prop) == 1


def test_paths_and_operations(v2: dict[str, Any], v3: dict[str, dict[str, Any]]) -> None:
    paths = v2["paths"]
    ops = {op["operationId"]: (p, method, op) for p, item in paths.items()
           for method, op in item.items() if method != "parameters"}
    assert len(ops) == sum(1 for item in paths.values() for m in item if m != "parameters")  # unique ids
    expected = {
        "listAppsV1NamespacedDeployment": ("/apis/apps/v1/namespaces/{namespace}/deployments", "get", "list"),
        "createAppsV1NamespacedDeployment": ("/apis/apps/v1/namespaces/{namespace}/deployments", "post", "post"),
        "deleteAppsV1CollectionNamespacedDeployment": ("/apis/apps/v1/namespaces/{namespace}/deployments",
                                                       "delete", "deletecollection"),
        "readAppsV1NamespacedDeployment": ("/apis/apps/v1/namespaces/{namespace}/deployments/{name}", "get", "get"),
        "patchAppsV1NamespacedDeployment": ("/apis/apps/v1/namespaces/{namespace}/deployments/{name}", "patch",
                                            "patch"),
        "readAppsV1NamespacedDeploymentScale": ("/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale",
                                                "get", "get"),
        "listAppsV1DeploymentForAllNamespaces": ("/apis/apps/v1/deployments", "get", "list"),
        "watchAppsV1NamespacedDeploymentList": ("/apis/apps/v1/watch/namespaces/{namespace}/deployments", "get",
                                                "watchlist"),
        "watchCoreV1Namespace": ("/api/v1/watch/namespaces/{name}", "get", "watch"),
        "listCoreV1Node": ("/api/v1/nodes", "get", "list"),
        "createCoreV1NamespacedPodBinding": ("/api/v1/namespaces/{namespace}/pods/{name}/binding", "post", "post"),
        "createCoreV1NamespacedPodEviction": ("/api/v1/namespaces/{namespace}/pods/{name}/eviction", "post", "post"),
        "readCoreV1NamespacedPodLog": ("/api/v1/namespaces/{namespace}/pods/{name}/log", "get", "get"),
        "connectCoreV1GetNamespacedPodExec": ("/api/v1/namespaces/{namespace}/pods/{name}/exec", "get", "connect"),
        "connectCoreV1PostNodeProxyWithPath": ("/api/v1/nodes/{name}/proxy/{path}", "post", "connect"),
        "replaceCoreV1NamespaceFinalize": ("/api/v1/namespaces/{name}/finalize", "put", "put"),
        "createCoreV1NamespacedServiceAccountToken": ("/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token",
                                                      "post", "post"),
        "listRbacAuthorizationV1ClusterRole": ("/apis/rbac.authorization.k8s.io/v1/clusterroles", "get", "list"),
        "patchEventsV1NamespacedEvent": ("/apis/events.k8s.io/v1/namespaces/{namespace}/events/{name}", "patch",
                                         "patch"),
        "getAppsV1APIResources": ("/apis/apps/v1/", "get", None),
    }
    for op_id, (path, method, action) in expected.items():
        assert op_id in ops, op_id
        assert ops[op_id][:2] == (path, method)
        assert ops[op_id][2].get("x-kubernetes-action") == action
    scale = ops["readAppsV1NamespacedDeploymentScale"][2]
    assert scale["x-kubernetes-group-version-kind"] == {"group": "autoscaling", "kind": "Scale", "version": "v1"}
    assert scale["responses"]["200"]["schema"]["$ref"].endswith("autoscaling.v1.Scale")
    create = ops["createAppsV1NamespacedDeployment"][2]
    assert [p["name"] for p in create["parameters"]] == ["body", "dryRun", "fieldManager", "fieldValidation"]
    assert {p["name"] for p in ops["listAppsV1NamespacedDeployment"][2]["parameters"]} >= {
        "labelSelector", "fieldSelector", "watch", "limit", "continue", "resourceVersion", "timeoutSeconds"}

    # kubectl's QueryParamVerifierV3: every served kind has a PATCH taking fieldValidation and dryRun.
    for r in RESOURCES:
        if "patch" not in r.verbs:
            continue
        doc = v3[f"apis/{r.group}/{r.version}" if r.group else f"api/{r.version}"]
        gvk = {"group": r.group, "kind": r.kind, "version": r.version}
        patch_ops = [item["patch"] for item in doc["paths"].values()
                     if "patch" in item and item["patch"]["x-kubernetes-group-version-kind"] == gvk]
        assert patch_ops, r.kind
        assert {"fieldValidation", "dryRun"} <= {p["name"] for p in patch_ops[0]["parameters"]}
        assert set(patch_ops[0]["requestBody"]["content"]) >= {"application/strategic-merge-patch+json",
                                                              "application/apply-patch+yaml"}


def test_create_only_kinds_and_kinds_without_a_model(v2: dict[str, Any]) -> None:
    reviews = v2["paths"].get("/apis/authorization.k8s.io/v1/subjectaccessreviews")
    if reviews is None:
        pytest.skip("no review kinds in the resource table")
    assert list(reviews) == ["parameters", "post"]
    assert reviews["post"]["operationId"] == "createAuthorizationV1SubjectAccessReview"

    widget = Resource("example.com", "v1", "Widget", "widgets", True)
    result = openapi_gen.generate(ResourceTable([*RESOURCES, widget]))
    assert any("example.com/v1 Widget left out" in issue for issue in result["issues"])
    assert "example.com/v1/Widget" not in result["prune"]["kinds"]
    assert "apis/example.com/v1" not in result["v3"] and "apis/apps/v1" in result["v3"]


def test_v3_documents_per_group_version(generated: dict[str, Any], v3: dict[str, dict[str, Any]]) -> None:
    assert set(v3) == {f"apis/{g}/{v}" if g else f"api/{v}" for g, vs in TABLE.groups.items() for v in vs}
    for gv, entry in generated["v3"].items():
        assert entry["hash"] == hashlib.sha512(entry["doc"].encode()).hexdigest().upper()
        assert v3[gv]["openapi"].startswith("3.0")
        prefix = "/" + gv + "/"
        assert all(p.startswith(prefix) for p in v3[gv]["paths"]), gv
    apps = v3["apis/apps/v1"]["components"]["schemas"]
    assert APPS + "Deployment" in apps and CORE + "PodSpec" in apps and META + "ObjectMeta" in apps
    assert "io.k8s.api.rbac.v1.Role" not in apps
    strategy = apps[APPS + "DeploymentSpec"]["properties"]["strategy"]
    assert strategy == {"allOf": [{"$ref": "#/components/schemas/" + APPS + "DeploymentStrategy"}],
                        "description": "The deployment strategy to use to replace existing pods with new ones.",
                        "x-kubernetes-patch-strategy": "retainKeys"}


METRICS = "io.k8s.metrics.pkg.apis.metrics.v1beta1."


def test_metrics_kinds_are_described_by_hand(generated: dict[str, Any], v2: dict[str, Any],
                                             v3: dict[str, dict[str, Any]]) -> None:
    """The client has no metrics.k8s.io models: their definitions are metrics-server's, written out."""
    assert not [i for i in generated["issues"] if "metrics.k8s.io" in i]
    defs = v2["definitions"]
    node = defs[METRICS + "NodeMetrics"]
    assert node["x-kubernetes-group-version-kind"] == [{"group": "metrics.k8s.io", "kind": "NodeMetrics",
                                                        "version": "v1beta1"}]
    assert node["required"] == ["timestamp", "window", "usage"]
    assert node["properties"]["metadata"] == {"$ref": "#/definitions/" + META + "ObjectMeta"}
    assert node["properties"]["window"] == {"$ref": "#/definitions/" + META + "Duration"}
    assert defs[META + "Duration"]["type"] == "string"
    assert node["properties"]["usage"]["additionalProperties"] == {
        "$ref": "#/definitions/io.k8s.apimachinery.pkg.api.resource.Quantity"}
    pod = defs[METRICS + "PodMetrics"]
    assert pod["properties"]["containers"]["items"] == {"$ref": "#/definitions/" + METRICS + "ContainerMetrics"}
    assert pod["properties"]["containers"]["x-kubernetes-list-type"] == "atomic"
    assert defs[METRICS + "PodMetricsList"]["properties"]["items"]["items"] == {
        "$ref": "#/definitions/" + METRICS + "PodMetrics"}
    # read-only paths: get and list, no watch, no writes
    paths = v2["paths"]
    assert set(paths["/apis/metrics.k8s.io/v1beta1/namespaces/{namespace}/pods/{name}"]) == {"parameters", "get"}
    assert set(paths["/apis/metrics.k8s.io/v1beta1/nodes"]) == {"parameters", "get"}
    assert "/apis/metrics.k8s.io/v1beta1/pods" in paths
    assert not [p for p in paths if p.startswith("/apis/metrics.k8s.io/v1beta1/watch")]
    schemas = v3["apis/metrics.k8s.io/v1beta1"]["components"]["schemas"]
    assert {METRICS + k for k in ("NodeMetrics", "NodeMetricsList", "PodMetrics", "PodMetricsList",
                                  "ContainerMetrics")} <= set(schemas)
    assert generated["prune"]["kinds"]["metrics.k8s.io/v1beta1/PodMetrics"] == METRICS + "PodMetrics"
    assert generated["prune"]["types"][METRICS + "NodeMetrics"]["p"]["window"] == "s"


def test_prune_tree_shape(generated: dict[str, Any]) -> None:
    tree = generated["prune"]
    assert tree["kinds"]["apps/v1/Deployment"] == APPS + "Deployment"
    assert tree["kinds"]["v1/Pod"] == CORE + "Pod"
    assert tree["kinds"]["autoscaling/v1/Scale"] == "io.k8s.api.autoscaling.v1.Scale"
    types = tree["types"]
    assert types[CORE + "PodSpec"]["p"]["containers"] == {"a": CORE + "Container"}
    assert types[META + "ObjectMeta"]["p"]["labels"] == {"m": "s"}  # map of strings: values must be strings
    assert types[APPS + "ControllerRevision"]["p"]["data"] == 1  # RawExtension: free-form
    assert types[META + "ManagedFieldsEntry"]["p"]["fieldsV1"] == 1
    assert types[CORE + "ResourceRequirements"]["p"]["limits"] == {"m": "q"}  # quantities: string or number
    assert types[CORE + "Container"]["p"]["image"] == "s"
    assert types[CORE + "ContainerPort"]["p"]["containerPort"] == "i"


def test_cache_key_tracks_the_table(tmp_path: Path) -> None:
    key = openapi_gen.cache_key(TABLE)
    assert key == openapi_gen.cache_key(TABLE)
    assert key.startswith(importlib.metadata.version("kubernetes") + "-")
    smaller = ResourceTable([r for r in RESOURCES if r.kind != "Lease"])
    assert openapi_gen.cache_key(smaller) != key
    assert openapi_gen.cache_file(TABLE, tmp_path) == tmp_path / f"openapi-{key}.json"


def test_negotiation_prefers_json_or_refuses() -> None:
    pb2 = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"
    assert negotiate("", "v2") == "json"
    assert negotiate("application/json", "v2") == "json"
    assert negotiate("application/json, */*", "v3") == "json"
    assert negotiate("*/*", "v2") == "json"
    assert negotiate(pb2, "v2") == "protobuf"  # client-go's OpenAPISchema()
    assert negotiate("application/com.github.proto-openapi.spec.v2.v1.0+protobuf", "v2") == "protobuf"
    assert negotiate(f"{pb2}, application/json;q=0.5", "v2") == "protobuf"
    assert negotiate(f"{pb2};q=0.5, application/json", "v2") == "json"
    pb3 = "application/com.github.proto-openapi.spec.v3@v1.0+protobuf"
    assert negotiate(pb3, "v3") is None  # no v3 protobuf here → 406
    assert negotiate(f"{pb3}, application/json", "v3") == "json"
    assert negotiate("application/json;q=0", "v2") is None
    assert negotiate("text/html", "v3") is None


@pytest.fixture(scope="module")
def served(generated: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> OpenAPI:
    directory = tmp_path_factory.mktemp("openapi-cache")
    openapi_gen.cache_file(TABLE, directory).write_bytes(orjson.dumps(generated))
    api = OpenAPI(TABLE, directory=directory, start=True)
    assert api.wait(30)
    assert "generated_seconds" not in api.stats  # the cached file was used, nothing generated
    return api


def test_v3_root_and_group_version_documents(served: OpenAPI, generated: dict[str, Any]) -> None:
    root = served.v3_root()
    assert root.status_code == 200 and root.media_type == "application/json"
    paths = orjson.loads(root.body)["paths"]
    url = paths["apis/apps/v1"]["serverRelativeURL"]
    digest = generated["v3"]["apis/apps/v1"]["hash"]
    assert url == f"/openapi/v3/apis/apps/v1?hash={digest}"
    assert paths["api/v1"]["serverRelativeURL"].startswith("/openapi/v3/api/v1?hash=")

    plain = served.v3("apis/apps/v1", "", "application/json")
    assert plain.status_code == 200 and plain.body == generated["v3"]["apis/apps/v1"]["doc"].encode()
    assert plain.headers["etag"] == f'"{digest}"' and "cache-control" not in plain.headers

    pinned = served.v3("apis/apps/v1", digest, "application/json")
    assert pinned.headers["cache-control"] == "public, immutable" and "expires" in pinned.headers
    stale = served.v3("apis/apps/v1", "0123", "application/json")
    assert stale.status_code == 301 and stale.headers["location"] == url

    assert served.v3("apis/apps/v1", "", "application/json", f'"{digest}"').status_code == 304
    assert served.v3("apis/nope/v1", "", "*/*").status_code == 404
    pb3 = "application/com.github.proto-openapi.spec.v3@v1.0+protobuf"
    assert served.v3("apis/apps/v1", "", pb3).status_code == 406
    assert served.v3_root(root.headers["etag"]).status_code == 304


def test_v2_document(served: OpenAPI, generated: dict[str, Any]) -> None:
    ok = served.v2("application/json")
    assert ok.status_code == 200 and ok.body == generated["v2"].encode()
    assert ok.headers["etag"] == f'"{generated["v2_etag"]}"' and ok.headers["vary"] == "Accept"
    pb = served.v2("application/com.github.proto-openapi.spec.v2@v1.0+protobuf")
    assert pb.status_code == 200 and pb.media_type == "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
    assert pb.body == base64.b64decode(generated["v2_pb"]) and pb.headers["etag"] == ok.headers["etag"]
    assert served.v2("text/html").status_code == 406
    assert served.v2("application/json", ok.headers["etag"]).status_code == 304


def _wire(data: bytes) -> dict[int, list[Any]]:
    """A minimal protobuf wire-format reader: field number → values (ints or raw bytes)."""
    out: dict[int, list[Any]] = {}
    i = 0

    def varint() -> int:
        nonlocal i
        n = shift = 0
        while True:
            b = data[i]
            i += 1
            n |= (b & 0x7F) << shift
            shift += 7
            if b < 0x80:
                return n

    while i < len(data):
        key = varint()
        number, wire_type = key >> 3, key & 7
        if wire_type == 0:
            out.setdefault(number, []).append(varint())
        elif wire_type == 2:
            size = varint()
            out.setdefault(number, []).append(data[i:i + size])
            i += size
        else:
            raise AssertionError(f"unexpected wire type {wire_type}")
    return out


def _named(entries: list[bytes]) -> dict[str, bytes]:
    return {_wire(e)[1][0].decode(): _wire(e).get(2, [b""])[0] for e in entries}


def test_v2_protobuf_is_gnostics_document(generated: dict[str, Any]) -> None:
    """Field numbers of gnostic's openapi.v2 messages, as kube-openapi's readers decode them."""
    doc = _wire(base64.b64decode(generated["v2_pb"]))
    assert doc[1] == [b"2.0"]
    definitions = _named(_wire(doc[9][0])[1])  # Definitions.additional_properties: NamedSchema
    deployment = _wire(definitions[APPS + "Deployment"])
    assert _wire(deployment[22][0])[1] == [b"object"]  # Schema.type: TypeItem.value
    props = _named(_wire(deployment[25][0])[1])  # Schema.properties
    assert _wire(props["spec"])[1] == [b"#/definitions/" + (APPS + "DeploymentSpec").encode()]  # Schema._ref
    extension = _wire(deployment[31][0])  # Schema.vendor_extension: NamedAny
    assert extension[1] == [b"x-kubernetes-group-version-kind"]
    assert orjson.loads(_wire(extension[2][0])[2][0]) == [{"group": "apps", "kind": "Deployment", "version": "v1"}]
    containers = _wire(_named(_wire(_wire(definitions[CORE + "PodSpec"])[25][0])[1])["containers"])
    assert _wire(_wire(containers[23][0])[1][0])[1] == [b"#/definitions/" + (CORE + "Container").encode()]
    exts = {_wire(e)[1][0]: orjson.loads(_wire(_wire(e)[2][0])[2][0]) for e in containers[31]}
    assert exts[b"x-kubernetes-patch-merge-key"] == "name"
    paths = _named(_wire(doc[8][0])[2])  # Paths.path: NamedPathItem
    patch = _wire(_wire(paths["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"])[8][0])  # PathItem.patch
    assert patch[5] == [b"patchAppsV1NamespacedDeployment"]
    query = [_wire(_wire(_wire(_wire(p)[1][0])[2][0])[3][0]) for p in patch[8][1:]]  # NonBodyParameter.query
    assert [q[4][0] for q in query] == [b"dryRun", b"fieldManager", b"fieldValidation", b"force"]


def test_unavailable_documents_answer_503(tmp_path: Path) -> None:
    api = OpenAPI(TABLE, directory=tmp_path)
    api._error = "boom"  # as after a failed generation
    api._done.set()
    assert api.v2("application/json").status_code == 503
    assert api.v3_root().status_code == 503
    assert b"boom" in api.v3("api/v1").body


def test_metadata_fields_are_described_as_upstream(v2: dict[str, Any]) -> None:
    defs = v2["definitions"]
    meta = defs["io.k8s.api.apps.v1.Deployment"]["properties"]["metadata"]
    assert meta["$ref"] == "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
    assert meta["description"].startswith("Standard object's metadata. More info: ")
    assert defs["io.k8s.api.core.v1.PodList"]["properties"]["metadata"]["description"].startswith(
        "Standard list metadata.")
