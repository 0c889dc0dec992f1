"""Unmodified kubectl and the official Python client against our OpenAPI documents.

kubectl's default `--validate=strict` reads /openapi/v3 and the group-version document to see
that the server takes `fieldValidation`; `explain` renders the v3 schemas; client-side `apply`
computes strategic merge patches from their x-kubernetes-patch-* extensions.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from kubernetes import config, dynamic

from tests.conftest import ControlPlane, wait_for

DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      containers:
      - name: web
        image: nginx
        {extra}
"""


@pytest.fixture(scope="module")
def kubectl_cache() -> Iterator[str]:
    """kubectl's discovery/HTTP cache, private to this module (removed afterwards)."""
    d = tempfile.mkdtemp(prefix="mk8s-kubectl-cache-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def kubectl(cp: ControlPlane, cache: str, *args: str, input: str | None = None, check: bool = True):
    return cp.kubectl("--cache-dir", cache, *args, input=input, check=check)


def test_create_with_default_validation(control_plane: ControlPlane, kubectl_cache: str, namespace: str) -> None:
    cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\ndata:\n  a: b\n"
    r = kubectl(control_plane, kubectl_cache, "-n", namespace, "create", "-f", "-", input=cm)
    assert r.stdout.strip() == "configmap/cfg created"
    assert "openapi" not in r.stderr


def test_explain_prints_descriptions(control_plane: ControlPlane, kubectl_cache: str) -> None:
    out = kubectl(control_plane, kubectl_cache, "explain", "deployment.spec.strategy").stdout
    assert "KIND:       Deployment" in out and "FIELD: strategy <DeploymentStrategy>" in out
    assert "DeploymentStrategy describes how to replace existing pods with new ones." in out
    assert "rollingUpdate\t<RollingUpdateDeployment>" in out
    assert 'Type of deployment. Can be "Recreate" or "RollingUpdate"' in out
    # fields whose type is a definition are described too (the client's models lack those texts)
    assert "Rolling update config params. Present only if DeploymentStrategyType =" in out
    spec = kubectl(control_plane, kubectl_cache, "explain", "pod.spec").stdout
    assert "Specification of the desired behavior of the pod." in spec and "<no description>" not in spec
    ports = kubectl(control_plane, kubectl_cache, "explain", "pods.spec.containers.ports").stdout
    assert "containerPort\t<integer> -required-" in ports


def test_strict_validation_names_the_unknown_field(control_plane: ControlPlane, kubectl_cache: str,
                                                   namespace: str) -> None:
    manifest = DEPLOYMENT.format(name="typo", replicas=1, extra="imagee: nginx")
    r = kubectl(control_plane, kubectl_cache, "-n", namespace, "create", "--validate=strict", "-f", "-",
                input=manifest, check=False)
    assert r.returncode != 0
    assert ('Deployment in version "v1" cannot be handled as a Deployment: strict decoding error: '
            'unknown field "spec.template.spec.containers[0].imagee"') in r.stderr
    missing = kubectl(control_plane, kubectl_cache, "-n", namespace, "get", "deployment", "typo", check=False)
    assert missing.returncode != 0

    r = kubectl(control_plane, kubectl_cache, "-n", namespace, "create", "--validate=warn", "-f", "-",
                input=manifest)
    assert 'Warning: unknown field "spec.template.spec.containers[0].imagee"' in r.stderr
    got = json.loads(kubectl(control_plane, kubectl_cache, "-n", namespace, "get", "deployment", "typo",
                             "-o", "json").stdout)
    assert "imagee" not in got["spec"]["template"]["spec"]["containers"][0]


def test_apply_computes_strategic_patches(control_plane: ControlPlane, kubectl_cache: str, namespace: str) -> None:
    env = "env: [{name: A, value: '1'}, {name: B, value: '2'}]"
    first = DEPLOYMENT.format(name="app", replicas=1, extra=env)
    r = kubectl(control_plane, kubectl_cache, "-n", namespace, "apply", "-f", "-", input=first)
    assert r.stdout.strip() == "deployment.apps/app created"

    # Drop B, change A, add a port: a three-way strategic merge patch keyed by env name.
    second = DEPLOYMENT.format(name="app", replicas=3,
                               extra="env: [{name: A, value: '9'}]\n        ports: [{containerPort: 8080}]")
    r = kubectl(control_plane, kubectl_cache, "-n", namespace, "apply", "-f", "-", input=second)
    assert r.stdout.strip() == "deployment.apps/app configured"
    assert "error calculating patch" not in r.stderr and "Warning" not in r.stderr
    got = json.loads(kubectl(control_plane, kubectl_cache, "-n", namespace, "get", "deployment", "app",
                             "-o", "json").stdout)
    container = got["spec"]["template"]["spec"]["containers"][0]
    assert got["spec"]["replicas"] == 3
    assert container["env"] == [{"name": "A", "value": "9"}]
    assert container["ports"][0]["containerPort"] == 8080

    r = kubectl(control_plane, kubectl_cache, "-n", namespace, "apply", "-f", "-", input=second)
    assert r.stdout.strip() == "deployment.apps/app unchanged"


LIST = """
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: listed}
  data: {a: b}
  junk: 1
- apiVersion: apps/v1
  kind: Deployment
  metadata: {name: listed}
  spec:
    selector: {matchLabels: {app: listed}}
    template:
      metadata: {labels: {app: listed}}
      spec:
        containers: [{name: c, image: nginx, resources: {limits: {cpu: 1, memory: 1Gi}}}]
"""


def test_list_files_are_validated_with_the_v2_protobuf(control_plane: ControlPlane, kubectl_cache: str,
                                                      namespace: str) -> None:
    """`kind: List` skips the server-side check: kubectl validates each item against /openapi/v2,
    which client-go only reads as gnostic protobuf."""
    r = kubectl(control_plane, kubectl_cache, "-n", namespace, "create", "-f", "-", input=LIST, check=False)
    assert r.returncode != 0
    assert 'ValidationError(ConfigMap): unknown field "junk" in io.k8s.api.core.v1.ConfigMap' in r.stderr
    r = kubectl(control_plane, kubectl_cache, "-n", namespace, "create", "-f", "-",
                input=LIST.replace("  junk: 1\n", ""))
    assert r.stdout.split() == ["configmap/listed", "created", "deployment.apps/listed", "created"]
    out = kubectl(control_plane, kubectl_cache, "explain", "deployment.spec.strategy",
                  "--output=plaintext-openapiv2").stdout
    assert "DeploymentStrategy describes how to replace existing pods with new ones." in out


def test_python_dynamic_client_discovery(control_plane: ControlPlane, namespace: str, tmp_path: Path) -> None:
    api_client = config.new_client_from_config(config_file=str(control_plane.kubeconfig))
    try:
        dyn = dynamic.DynamicClient(api_client, cache_file=str(tmp_path / "discovery.json"))
        deployments = dyn.resources.get(api_version="apps/v1", kind="Deployment")
        assert deployments.namespaced and deployments.name == "deployments"
        configmaps = dyn.resources.get(api_version="v1", kind="ConfigMap")
        created = configmaps.create(body={"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "dyn"},
                                          "data": {"k": "v"}}, namespace=namespace)
        assert created.metadata.name == "dyn"
        assert "dyn" in [c.metadata.name for c in configmaps.get(namespace=namespace).items]
        pods = dyn.resources.get(api_version="v1", kind="Pod")
        assert "status" in pods.subresources
    finally:
        api_client.close()


def test_openapi_endpoints(api: httpx.Client) -> None:
    root = api.get("/openapi/v3")
    assert root.status_code == 200 and root.headers["content-type"] == "application/json"
    url = root.json()["paths"]["apis/apps/v1"]["serverRelativeURL"]
    doc = api.get(url, headers={"Accept": "application/json"})
    assert doc.status_code == 200
    assert doc.headers["cache-control"] == "public, immutable"
    assert doc.headers["etag"] == '"' + url.split("hash=")[1] + '"'
    assert "io.k8s.api.apps.v1.Deployment" in doc.json()["components"]["schemas"]
    assert api.get("/openapi/v3/apis/apps/v1?hash=stale").status_code == 301
    assert api.get("/openapi/v3/apis/apps/v1", headers={"If-None-Match": doc.headers["etag"]}).status_code == 304
    v2 = api.get("/openapi/v2", headers={"Accept": "application/json"})
    assert v2.status_code == 200 and v2.json()["swagger"] == "2.0"
    pb = api.get("/openapi/v2", headers={"Accept": "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"})
    assert pb.status_code == 200
    assert pb.headers["content-type"] == "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
    pb3 = api.get(url, headers={"Accept": "application/com.github.proto-openapi.spec.v3@v1.0+protobuf"})
    assert pb3.status_code == 406


def test_field_validation_over_http(api: httpx.Client, namespace: str) -> None:
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "w", "colour": "red"}, "datta": {}}
    warned = api.post(f"/api/v1/namespaces/{namespace}/configmaps", json=body)
    assert warned.status_code == 201
    assert warned.headers.get_list("warning") == ['299 - "unknown field \\"metadata.colour\\""',
                                                  '299 - "unknown field \\"datta\\""']
    assert "datta" not in warned.json() and "colour" not in warned.json()["metadata"]
    body["metadata"]["name"] = "s"
    strict = api.post(f"/api/v1/namespaces/{namespace}/configmaps?fieldValidation=Strict", json=body)
    assert strict.status_code == 400
    assert strict.json()["message"] == ('ConfigMap in version "v1" cannot be handled as a ConfigMap: strict decoding '
                                        'error: unknown field "metadata.colour", unknown field "datta"')


def test_cold_cache_generates_in_a_subprocess(monkeypatch: pytest.MonkeyPatch) -> None:
    """A fresh cache dir: the apiserver serves at once, generates the documents in the background,
    and a strict write arriving meanwhile waits for the schema instead of skipping the check."""
    data = Path(tempfile.mkdtemp(prefix="mk8s-openapi-cold-"))
    cache = data / "cache"
    monkeypatch.setenv("MINIK8S_CACHE_DIR", str(cache))
    cp = ControlPlane(data / "cluster")
    try:
        cp.start()
        with cp.client() as c:
            bad = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cold"}, "junk": 1}
            r = c.post("/api/v1/namespaces/default/configmaps?fieldValidation=Strict", json=bad)
            assert r.status_code == 400 and 'unknown field "junk"' in r.json()["message"]
            root = c.get("/openapi/v3")
            assert root.status_code == 200 and "api/v1" in root.json()["paths"]
        files = list(cache.glob("openapi-*.json"))
        assert len(files) == 1
        assert set(orjson.loads(files[0].read_bytes())["v3"]) >= {"api/v1", "apis/apps/v1"}
        log = cp.cfg.log("apiserver").read_text()
        assert "generating OpenAPI documents" in log
        wait_for(lambda: "OpenAPI documents loaded" in cp.cfg.log("apiserver").read_text(), 10,
                 what="the apiserver to log the load")
    finally:
        cp.stop_all()
        shutil.rmtree(data, ignore_errors=True)
