"""The aggregator against the real apiserver: an extension apiserver in the test (HTTPS, trusting
only client certificates of the requestheader CA that the apiserver publishes in
kube-system/extension-apiserver-authentication) behind an ExternalName Service, registered by an
APIService. Availability, the proxy (identity headers, RBAC first, streaming), discovery for kubectl,
the Local APIServices, and what happens when the extension goes away."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ControlPlane, wait_for
from tests.integration.test_admission_webhooks import https_server, make_pki

GROUP, VERSION = "wardle.example.com", "v1alpha1"
APISERVICES = "/apis/apiregistration.k8s.io/v1/apiservices"
NAME = f"{VERSION}.{GROUP}"
AGGREGATED = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"


class ExtensionServer:
    """A tiny extension apiserver: discovery for one group/version with `flunders`, a list, a get,
    a create and a watch; every request's headers and client certificate are recorded."""

    def __init__(self, d: Path, service_dns: str, client_ca_pem: str, allowed_names: list[str]) -> None:
        self.ca_pem, cert, key = make_pki(d, [service_dns])
        self.requests: list[dict[str, Any]] = []
        outer = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _record(self) -> dict[str, Any]:
                peer = self.connection.getpeercert() or {}
                cn = next((v for rdn in peer.get("subject", ()) for k, v in rdn if k == "commonName"), "")
                entry = {"method": self.command, "path": self.path, "cn": cn,
                         "headers": [(k.lower(), v) for k, v in self.headers.items()]}
                outer.requests.append(entry)
                return entry

            def _send(self, code: int, doc: Any) -> None:
                data = json.dumps(doc).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Connection", "close")  # stop() then ends it all: no kept-alive connection
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                entry = self._record()
                if entry["cn"] not in allowed_names:
                    self._send(401, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 401})
                    return
                path, _, query = self.path.partition("?")
                ns = namespace_of(path)
                base = f"/apis/{GROUP}/{VERSION}"
                if path == base:
                    self._send(200, {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": f"{GROUP}/{VERSION}",
                                     "resources": [{"name": "flunders", "singularName": "flunder", "namespaced": True,
                                                    "kind": "Flunder", "verbs": ["create", "get", "list", "watch"],
                                                    "shortNames": ["fl"]},
                                                   {"name": "flunders/status", "singularName": "", "namespaced": True,
                                                    "kind": "Flunder", "verbs": ["get"]}]})
                elif path == f"/openapi/v3{base}":
                    self._send(200, OPENAPI)
                elif path.endswith("/elsewhere"):
                    self.send_response(302)
                    self.send_header("Location", "https://attacker.example.com/steal")
                    self.send_header("Content-Length", "0")
                    self.send_header("Connection", "close")
                    self.end_headers()
                elif "/flunders" in path and "watch=1" in query.replace("watch=true", "watch=1"):
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Transfer-Encoding", "chunked")
                    self.send_header("Connection", "close")
                    self.end_headers()
                    for name in ("w1", "w2"):
                        line = json.dumps({"type": "ADDED", "object": flunder(name, ns)}).encode() + b"\n"
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
                        self.wfile.flush()
                    self.wfile.write(b"0\r\n\r\n")
                elif path.endswith("/flunders"):
                    self._send(200, {"kind": "FlunderList", "apiVersion": f"{GROUP}/{VERSION}", "metadata": {},
                                     "items": [flunder("one", ns), flunder("two", ns)]})
                elif "/flunders/" in path:
                    self._send(200, flunder(path.rsplit("/", 1)[1], ns))
                else:
                    self._send(404, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 404,
                                     "reason": "NotFound", "message": "the server could not find the requested resource"})

            def do_POST(self) -> None:
                self._record()
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                self._send(201, body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = https_server(H, cert, key, client_ca_pem)
        self.port = self.httpd.server_address[1]

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


FLUNDER_REF = {"$ref": "#/components/schemas/com.example.wardle.v1alpha1.Flunder"}
OPENAPI = {"openapi": "3.0.0", "info": {"title": "wardle", "version": "v0.1"}, "paths": {
    f"/apis/{GROUP}/{VERSION}/namespaces/{{namespace}}/flunders/{{name}}": {"get": {
        "x-kubernetes-action": "get", "x-kubernetes-group-version-kind": {"group": GROUP, "kind": "Flunder", "version": VERSION},
        "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": FLUNDER_REF}}}}}}},
    "components": {"schemas": {
    "com.example.wardle.v1alpha1.Flunder": {
        "type": "object", "description": "A Flunder is a test kind.",
        "properties": {"apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"},
                       "spec": {"type": "object", "description": "What the flunder should be.",
                                "properties": {"reference": {"type": "string", "description": "Another flunder."}}}},
        "x-kubernetes-group-version-kind": [{"group": GROUP, "kind": "Flunder", "version": VERSION}]}}}}


def flunder(name: str, namespace: str = "default") -> dict[str, Any]:
    return {"kind": "Flunder", "apiVersion": f"{GROUP}/{VERSION}",
            "metadata": {"name": name, "namespace": namespace, "creationTimestamp": "2026-01-01T00:00:00Z"}}


def namespace_of(path: str) -> str:
    parts = path.split("?")[0].split("/")
    return parts[parts.index("namespaces") + 1] if "namespaces" in parts else "default"


def condition(api: httpx.Client, name: str = NAME) -> dict[str, Any]:
    r = api.get(f"{APISERVICES}/{name}")
    if r.status_code != 200:
        return {}
    return next((c for c in r.json().get("status", {}).get("conditions") or [] if c["type"] == "Available"), {})


@pytest.fixture
def extension(api: httpx.Client, namespace: str) -> Iterator[ExtensionServer]:
    auth = api.get("/api/v1/namespaces/kube-system/configmaps/extension-apiserver-authentication").json()["data"]
    d = Path(tempfile.mkdtemp(prefix="mk8s-aggregator-pki-"))
    srv = ExtensionServer(d, f"wardle.{namespace}.svc", auth["requestheader-client-ca-file"],
                          json.loads(auth["requestheader-allowed-names"]))
    api.post(f"/api/v1/namespaces/{namespace}/services", json={
        "metadata": {"name": "wardle"}, "spec": {"type": "ExternalName", "externalName": "localhost"}}).raise_for_status()
    import base64

    r = api.post(APISERVICES, json={"metadata": {"name": NAME}, "spec": {
        "group": GROUP, "version": VERSION, "groupPriorityMinimum": 1000, "versionPriority": 15,
        "service": {"namespace": namespace, "name": "wardle", "port": srv.port},
        "caBundle": base64.b64encode(srv.ca_pem).decode()}})
    assert r.status_code == 201, r.text
    yield srv
    api.delete(f"{APISERVICES}/{NAME}")
    srv.stop()
    shutil.rmtree(d, ignore_errors=True)


def test_the_published_authentication_info(api: httpx.Client, control_plane: ControlPlane) -> None:
    data = api.get("/api/v1/namespaces/kube-system/configmaps/extension-apiserver-authentication").json()["data"]
    assert data["client-ca-file"] == control_plane.pki.ca_cert.read_text()
    assert data["requestheader-client-ca-file"] == control_plane.pki.front_proxy_ca_cert.read_text()
    assert data["requestheader-client-ca-file"] != data["client-ca-file"]
    assert json.loads(data["requestheader-allowed-names"]) == ["front-proxy-client"]
    assert json.loads(data["requestheader-username-headers"]) == ["X-Remote-User"]
    assert json.loads(data["requestheader-group-headers"]) == ["X-Remote-Group"]
    assert json.loads(data["requestheader-extra-headers-prefix"]) == ["X-Remote-Extra-"]


def test_local_api_services(api: httpx.Client, control_plane: ControlPlane) -> None:
    core = api.get(f"{APISERVICES}/v1.").json()
    assert core["spec"] == {"group": "", "version": "v1", "groupPriorityMinimum": 18000, "versionPriority": 1}
    assert core["metadata"]["labels"] == {"kube-aggregator.kubernetes.io/automanaged": "onstart"}
    wait_for(lambda: condition(api, "v1.apps").get("reason") == "Local", 10, 0.1, "local APIServices available")
    assert condition(api, "v1.apps")["message"] == "Local APIServices are always available"
    out = control_plane.kubectl("get", "apiservices").stdout.splitlines()
    assert out[0].split() == ["NAME", "SERVICE", "AVAILABLE", "AGE"]
    rows = {line.split()[0]: line.split()[1:3] for line in out[1:]}
    assert rows["v1."] == ["Local", "True"] and rows["v1.apps"] == ["Local", "True"]
    # served here, but left to metrics-server's chart to register (as upstream, which has none)
    assert "v1beta1.metrics.k8s.io" not in rows


def test_an_extension_apiserver_behind_an_api_service(api: httpx.Client, control_plane: ControlPlane,
                                                      namespace: str, extension: ExtensionServer) -> None:
    wait_for(lambda: condition(api).get("status") == "True", 15, 0.1, "the APIService available")
    assert condition(api)["reason"] == "Passed" and condition(api)["message"] == "all checks passed"
    # the availability check presented the front-proxy certificate
    assert any(r["path"] == f"/apis/{GROUP}/{VERSION}" and r["cn"] == "front-proxy-client" for r in extension.requests)

    # discovery: the group in /apis, its APIGroup, and its resources in aggregated discovery
    names = [g["name"] for g in api.get("/apis").json()["groups"]]
    # by groupPriorityMinimum, as upstream: the built-in groups, then 1000 (this one), metrics-server's 100
    assert names[:3] == ["apiregistration.k8s.io", "apps", "events.k8s.io"]
    assert names.index("discovery.k8s.io") < names.index(GROUP) < names.index("metrics.k8s.io")
    aggregated_names = [i["metadata"]["name"] for i in api.get("/apis", headers={"Accept": AGGREGATED}).json()["items"]]
    assert set(aggregated_names) == set(names) and aggregated_names[:3] == names[:3]  # ties: by group name there
    groups = {g["name"]: g for g in api.get("/apis").json()["groups"]}
    assert groups[GROUP]["preferredVersion"] == {"groupVersion": f"{GROUP}/{VERSION}", "version": VERSION}
    assert api.get(f"/apis/{GROUP}").json()["versions"] == [{"groupVersion": f"{GROUP}/{VERSION}", "version": VERSION}]

    def aggregated_resources() -> list[str] | None:
        doc = api.get("/apis", headers={"Accept": AGGREGATED}).json()
        item = next((i for i in doc["items"] if i["metadata"]["name"] == GROUP), None)
        return [r["resource"] for v in item["versions"] for r in v["resources"]] if item else None

    assert wait_for(aggregated_resources, 10, 0.1, "the extension's resources in aggregated discovery") == ["flunders"]

    # the extension's OpenAPI is served here: kubectl explain knows its kinds
    index = wait_for(lambda: (lambda p: p if f"apis/{GROUP}/{VERSION}" in p else None)(
        api.get("/openapi/v3").json()["paths"]), 10, 0.1, "the extension's OpenAPI in the index")
    assert index[f"apis/{GROUP}/{VERSION}"]["serverRelativeURL"].startswith(f"/openapi/v3/apis/{GROUP}/{VERSION}?hash=")
    out = control_plane.kubectl("explain", "flunders.spec").stdout
    assert "What the flunder should be." in out and "Another flunder." in out

    # kubectl through the proxy: discovery, list, get, create, watch
    extension.requests.clear()
    out = control_plane.kubectl("get", "flunders", "-n", namespace, "-o", "json").stdout
    assert [i["metadata"]["name"] for i in json.loads(out)["items"]] == ["one", "two"]
    assert control_plane.kubectl("get", "fl", "x", "-n", namespace, "-o", "name").stdout.strip() == \
        f"flunder.{GROUP}/x"
    listed = next(r for r in extension.requests if r["path"].split("?")[0].endswith(f"/namespaces/{namespace}/flunders"))
    headers = listed["headers"]
    assert listed["cn"] == "front-proxy-client"
    assert ("x-remote-user", "kubernetes-admin") in headers
    assert {v for k, v in headers if k == "x-remote-group"} >= {"system:masters", "system:authenticated"}
    assert not any(k == "authorization" for k, _ in headers)
    # identity headers a client sends itself never reach the extension
    extension.requests.clear()
    api.get(f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/flunders",
            headers={"X-Remote-User": "mallory", "X-Remote-Group": "evil", "X-Remote-Extra-Scopes": "all"})
    headers = extension.requests[-1]["headers"]
    assert [v for k, v in headers if k == "x-remote-user"] == ["kubernetes-admin"]
    assert "evil" not in [v for k, v in headers if k == "x-remote-group"]
    assert not any(k.startswith("x-remote-extra-") for k, _ in headers)
    # a redirect is not passed on: it would send the client's credentials elsewhere
    r = api.get(f"/apis/{GROUP}/{VERSION}/elsewhere")
    assert r.status_code == 502 and "attempted to redirect" in r.text and "location" not in r.headers

    r = api.post(f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/flunders", json=flunder("new", namespace))
    assert r.status_code == 201 and r.json()["metadata"]["name"] == "new"
    with api.stream("GET", f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/flunders",
                    params={"watch": "1"}) as w:
        events = [json.loads(line) for line in w.iter_lines() if line]
    assert [e["object"]["metadata"]["name"] for e in events] == ["w1", "w2"]
    # the backend's answers pass as they are (a 404 Status, its content type)
    r = api.get(f"/apis/{GROUP}/{VERSION}/nothing-here")
    assert r.status_code == 404 and r.json()["reason"] == "NotFound"

    # authorization happens here first: a user RBAC does not allow never reaches the extension
    extension.requests.clear()
    alice = {"Impersonate-User": "alice"}
    r = api.get(f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/flunders", headers=alice)
    assert r.status_code == 403 and r.json()["reason"] == "Forbidden"
    assert extension.requests == []
    api.post(f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/roles", json={
        "metadata": {"name": "flunders"},
        "rules": [{"apiGroups": [GROUP], "resources": ["flunders"], "verbs": ["list"]}]}).raise_for_status()
    api.post(f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/rolebindings", json={
        "metadata": {"name": "alice"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                                 "name": "flunders"},
        "subjects": [{"kind": "User", "name": "alice", "apiGroup": "rbac.authorization.k8s.io"}]}).raise_for_status()
    r = wait_for(lambda: (lambda r: r if r.status_code == 200 else None)(
        api.get(f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/flunders", headers=alice)), 10, 0.1, "alice allowed")
    headers = extension.requests[-1]["headers"]
    assert ("x-remote-user", "alice") in headers
    assert not any(k.startswith("impersonate-") for k, _ in headers)  # the identity is in X-Remote-* only

    # the Python client sees it too
    from kubernetes import client, config

    config.load_kube_config(str(control_plane.kubeconfig))
    names = [s.metadata.name for s in client.ApiregistrationV1Api().list_api_service().items]
    assert NAME in names and "v1.apps" in names

    # the extension goes away: its requests answer 503, and a failed one has it checked at once
    extension.stop()
    r = api.get(f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/flunders")
    assert r.status_code == 503 and r.text.startswith("Error trying to reach service: ")
    wait_for(lambda: condition(api).get("reason") == "FailedDiscoveryCheck", 10, 0.1, "the APIService unavailable")
    assert f"apis/{GROUP}/{VERSION}" not in api.get("/openapi/v3").json()["paths"]  # nor its OpenAPI
    assert condition(api)["status"] == "False"
    assert condition(api)["message"].startswith(
        f"failing or missing response from https://wardle.{namespace}.svc:{extension.port}/apis/{GROUP}/{VERSION}: ")
    doc = api.get("/apis", headers={"Accept": AGGREGATED}).json()  # its group stays in discovery, as Stale
    item = next(i for i in doc["items"] if i["metadata"]["name"] == GROUP)
    assert item["versions"] == [{"version": VERSION, "freshness": "Stale", "resources": []}]
    r = api.get(f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/flunders")
    assert r.status_code == 503 and r.text == "service unavailable\n"
    out = control_plane.kubectl("get", "apiservices", NAME).stdout.splitlines()[1].split()
    assert out[1:3] == [f"{namespace}/wardle", "False"] and out[3] == "(FailedDiscoveryCheck)"

    api.delete(f"/api/v1/namespaces/{namespace}/services/wardle").raise_for_status()
    wait_for(lambda: condition(api).get("reason") == "ServiceNotFound", 15, 0.1, "the service gone")
    assert condition(api)["message"] == f'service/wardle in "{namespace}" is not present'


def test_api_services_are_validated(api: httpx.Client) -> None:
    def create(name: str, **spec: Any) -> httpx.Response:
        return api.post(APISERVICES, json={"metadata": {"name": name}, "spec": spec})

    r = create("v1.other.example.com", group="g.example.com", version="v1", groupPriorityMinimum=1, versionPriority=1)
    assert r.status_code == 422
    assert 'must be `spec.version+"."+spec.group`: "v1.g.example.com"' in r.json()["message"]
    r = create("v2.", version="v2", groupPriorityMinimum=0, versionPriority=1001)
    causes = {c["field"]: c["message"] for c in r.json()["details"]["causes"]}
    assert r.status_code == 422
    assert causes["spec.group"] == "Required value: only v1 may have an empty group and it better be legacy kube"
    assert "must be positive and less than 20000" in causes["spec.groupPriorityMinimum"]
    assert "must be positive and less than 1000" in causes["spec.versionPriority"]
    r = create("v1.x.example.com", group="x.example.com", version="v1", groupPriorityMinimum=1, versionPriority=1,
               caBundle="Y2E=")
    assert r.status_code == 422 and "local APIServices may not have a caBundle" in r.json()["message"]
    r = create("v1.y.example.com", group="y.example.com", version="v1", groupPriorityMinimum=1, versionPriority=1,
               insecureSkipTLSVerify=True, caBundle="Y2E=", service={"namespace": "ns", "name": "s"})
    assert r.status_code == 422 and "may not be true if caBundle is present" in r.json()["message"]
    r = create("v1.z.example.com", group="z.example.com", version="v1", groupPriorityMinimum=1, versionPriority=1,
               service={"namespace": "ns", "name": "s"})
    assert r.status_code == 201 and r.json()["spec"]["service"]["port"] == 443  # defaulted
    wait_for(lambda: condition(api, "v1.z.example.com").get("reason") == "ServiceNotFound", 10, 0.1, "checked")
    api.delete(f"{APISERVICES}/v1.z.example.com")
    assert os.environ.get("NO_SUCH") is None


def test_custom_resource_groups_get_local_api_services(api: httpx.Client) -> None:
    from tests.integration.test_crd import CRDS, crontab_crd, make_crd

    group = f"reg{os.urandom(3).hex()}.example.com"
    crd = crontab_crd(group)
    crd["spec"]["names"].pop("categories")
    make_crd(api, crd)
    name = f"v1.{group}"

    def registered() -> dict[str, Any] | None:
        r = api.get(f"{APISERVICES}/{name}")
        return r.json() if r.status_code == 200 else None

    svc = wait_for(registered, 10, 0.1, "the definition's APIService")
    assert svc["metadata"]["labels"] == {"kube-aggregator.kubernetes.io/automanaged": "true"}
    assert svc["spec"] == {"group": group, "version": "v1", "groupPriorityMinimum": 1000, "versionPriority": 100}
    wait_for(lambda: condition(api, name).get("reason") == "Local", 10, 0.1, "available")
    api.delete(f"{CRDS}/crontabs.{group}").raise_for_status()
    wait_for(lambda: api.get(f"{APISERVICES}/{name}").status_code == 404, 30, 0.1, "the APIService removed")
