"""Dynamic admission webhooks against a real apiserver: a real HTTPS webhook server in the test
(a throwaway CA and serving certificate), configured by URL with its caBundle, or as a Service."""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import json
import os
import shutil
import ssl
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.conftest import ControlPlane, private_control_plane, read_audit_events, wait_for
from tests.conftest import audited as audited_events

ARV1 = "admissionregistration.k8s.io/v1"
MWC = f"/apis/{ARV1}/mutatingwebhookconfigurations"
VWC = f"/apis/{ARV1}/validatingwebhookconfigurations"


# -- a throwaway PKI and an HTTPS webhook server ---------------------------------------------


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_pki(d: Path, dns_names: list[str]) -> tuple[bytes, Path, Path]:
    """→ (CA PEM, serving cert path, key path) for 127.0.0.1, localhost and `dns_names`."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(_name("webhook-test-ca")).issuer_name(_name("webhook-test-ca"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    sans += [x509.DNSName(n) for n in dns_names]
    cert = (x509.CertificateBuilder().subject_name(_name("webhook")).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    cert_path, key_path = d / "tls.crt", d / "tls.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return ca.public_bytes(serialization.Encoding.PEM), cert_path, key_path


def https_server(handler: type[BaseHTTPRequestHandler], cert: Path, key: Path, client_ca_pem: str = ""
                 ) -> ThreadingHTTPServer:
    """A threaded HTTPS server on 127.0.0.1 (a free port), serving from a daemon thread; with
    `client_ca_pem`, client certificates of that CA are verified when presented."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(cert), str(key))
    if client_ca_pem:
        ctx.load_verify_locations(cadata=client_ca_pem)
        ctx.verify_mode = ssl.CERT_OPTIONAL
    httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


Handler = Callable[[dict[str, Any]], Any]


def allow(review: dict[str, Any], **response: Any) -> dict[str, Any]:
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "response": {"uid": review["request"]["uid"], "allowed": True, **response}}


def deny(review: dict[str, Any], **response: Any) -> dict[str, Any]:
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "response": {"uid": review["request"]["uid"], "allowed": False, **response}}


def json_patch(review: dict[str, Any], ops: list[dict[str, Any]], **response: Any) -> dict[str, Any]:
    return allow(review, patchType="JSONPatch", patch=base64.b64encode(json.dumps(ops).encode()).decode(), **response)


class WebhookServer:
    """HTTPS on 127.0.0.1; each path answers with its handler; every review is recorded."""

    SERVICE_NAMES = ("hooks.webhook-svc.svc",)

    def __init__(self, d: Path) -> None:
        self.ca_pem, cert, key = make_pki(d, list(self.SERVICE_NAMES))
        self.handlers: dict[str, Handler] = {}
        self.calls: dict[str, list[dict[str, Any]]] = {}
        self.headers: dict[str, list[dict[str, str]]] = {}
        outer = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                path, _, query = self.path.partition("?")
                review = json.loads(body)
                review["_query"] = query
                outer.calls.setdefault(path, []).append(review)
                outer.headers.setdefault(path, []).append(dict(self.headers))
                handler = outer.handlers.get(path, allow)
                answer = handler(review)
                status, data = (answer if isinstance(answer, tuple) else (200, json.dumps(answer).encode()))
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
                    pass  # the apiserver gave up (a timeout test)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = https_server(H, cert, key)
        self.port = self.httpd.server_address[1]

    @property
    def ca_bundle(self) -> str:
        return base64.b64encode(self.ca_pem).decode()

    def url(self, path: str) -> str:
        return f"https://127.0.0.1:{self.port}{path}"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# -- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cp() -> Iterator[ControlPlane]:
    # its own apiserver: webhooks are cluster-wide, and these must not touch other tests' requests
    with private_control_plane("mk8s-webhooks-", controller_manager=False) as plane:
        yield plane


@pytest.fixture(scope="module")
def hooks() -> Iterator[WebhookServer]:
    d = Path(tempfile.mkdtemp(prefix="mk8s-webhook-pki-"))
    srv = WebhookServer(d)
    yield srv
    srv.stop()
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def api(cp: ControlPlane) -> Iterator[httpx.Client]:
    with cp.client() as c:
        yield c


@pytest.fixture
def ns(api: httpx.Client) -> Iterator[str]:
    """A namespace labelled for this test only (the webhooks select it by that label)."""
    name = f"wh-{os.urandom(4).hex()}"
    r = api.post("/api/v1/namespaces", json={"metadata": {"name": name, "labels": {"webhook-test": name}}})
    assert r.status_code == 201, r.text
    yield name
    api.delete(f"/api/v1/namespaces/{name}")


@pytest.fixture
def configs(api: httpx.Client) -> Iterator[list[str]]:
    """Paths of configurations a test created; deleted afterwards."""
    created: list[str] = []
    yield created
    for path in created:
        api.delete(path)


def webhook(name: str, url: str, ca_bundle: str, ns: str, **kw: Any) -> dict[str, Any]:
    hook = {
        "name": name,
        "clientConfig": {"url": url, "caBundle": ca_bundle},
        "rules": [{"operations": ["CREATE", "UPDATE", "DELETE"], "apiGroups": [""], "apiVersions": ["v1"],
                   "resources": ["configmaps"]}],
        "namespaceSelector": {"matchLabels": {"webhook-test": ns}},
        "sideEffects": "None",
        "admissionReviewVersions": ["v1"],
    }
    hook.update(kw)
    return hook


def create_config(api: httpx.Client, configs: list[str], base: str, name: str, *hooks: dict[str, Any]) -> dict:
    kind = "MutatingWebhookConfiguration" if base == MWC else "ValidatingWebhookConfiguration"
    r = api.post(base, json={"apiVersion": ARV1, "kind": kind, "metadata": {"name": name}, "webhooks": list(hooks)})
    assert r.status_code == 201, r.text
    configs.append(f"{base}/{name}")
    return r.json()


def cm(name: str, labels: dict[str, str] | None = None, **data: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if labels:
        meta["labels"] = labels
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data}


def probe(api: httpx.Client, ns: str, labels: dict[str, str] | None = None) -> httpx.Response:
    """A dry-run create: goes through admission (webhooks with sideEffects None see it), stores nothing."""
    return api.post(f"/api/v1/namespaces/{ns}/configmaps", params={"dryRun": "All"},
                    json=cm(f"probe-{os.urandom(3).hex()}", labels))


def uid_of(name: str) -> str:
    return f"{name}-{os.urandom(3).hex()}"


# -- tests -------------------------------------------------------------------------------------


def test_mutation_by_json_patch_is_stored(api: httpx.Client, hooks: WebhookServer, ns: str,
                                          configs: list[str]) -> None:
    path = f"/mutate-{ns}"

    def mutate(review: dict[str, Any]) -> Any:
        obj = review["request"]["object"]
        if review["request"]["operation"] == "DELETE":
            return allow(review)
        ops = [{"op": "add", "path": "/data/added", "value": "by-webhook"}]
        if "labels" not in obj["metadata"]:
            ops.append({"op": "add", "path": "/metadata/labels", "value": {}})
        ops.append({"op": "add", "path": "/metadata/labels/mutated", "value": "yes"})
        return json_patch(review, ops)

    hooks.handlers[path] = mutate
    create_config(api, configs, MWC, uid_of("mutate"), webhook("add.mutate.example.com", hooks.url(path),
                                                                 hooks.ca_bundle, ns))
    wait_for(lambda: probe(api, ns).json()["data"].get("added") == "by-webhook", what="the mutating webhook")

    r = api.post(f"/api/v1/namespaces/{ns}/configmaps", json=cm("one", a="1"))
    assert r.status_code == 201, r.text
    stored = api.get(f"/api/v1/namespaces/{ns}/configmaps/one").json()
    assert stored["data"] == {"a": "1", "added": "by-webhook"}
    assert stored["metadata"]["labels"] == {"mutated": "yes"}
    # the answer is the stored object (the patch replaced the object's metadata: it was answered
    # without its resourceVersion once), and what the webhook added is no manager's (upstream)
    assert r.json()["metadata"]["resourceVersion"] == stored["metadata"]["resourceVersion"]
    owned = stored["metadata"]["managedFields"][0]["fieldsV1"]
    assert owned["f:data"] == {"f:a": {}} and "f:labels" not in owned.get("f:metadata", {})

    # what the webhook was sent
    review = next(c for c in hooks.calls[path] if c["request"].get("name") == "one")
    assert review["apiVersion"] == "admission.k8s.io/v1" and review["kind"] == "AdmissionReview"
    assert review["_query"] == "timeout=10s"
    req = review["request"]
    assert req["uid"]
    assert req["kind"] == {"group": "", "version": "v1", "kind": "ConfigMap"}
    assert req["resource"] == {"group": "", "version": "v1", "resource": "configmaps"}
    assert req["requestKind"] == req["kind"] and req["requestResource"] == req["resource"]
    assert req["namespace"] == ns and req["operation"] == "CREATE" and req["dryRun"] is False
    assert req["userInfo"]["username"] == "kubernetes-admin"
    assert "system:authenticated" in req["userInfo"]["groups"]
    assert req["object"]["data"] == {"a": "1"} and req["oldObject"] is None
    assert req["options"]["kind"] == "CreateOptions" and req["options"]["apiVersion"] == "meta.k8s.io/v1"

    # an update: the old object comes along, the patch applies again
    r = api.put(f"/api/v1/namespaces/{ns}/configmaps/one", json={**stored, "data": {"a": "2"}})
    assert r.status_code == 200, r.text
    assert r.json()["data"] == {"a": "2", "added": "by-webhook"}
    upd = hooks.calls[path][-1]["request"]
    assert upd["operation"] == "UPDATE" and upd["oldObject"]["data"] == {"a": "1", "added": "by-webhook"}
    assert upd["options"]["kind"] == "UpdateOptions"

    # a delete: mutating webhooks see it too, with the old object and the DeleteOptions
    assert api.delete(f"/api/v1/namespaces/{ns}/configmaps/one").status_code == 200
    dele = hooks.calls[path][-1]["request"]
    assert dele["operation"] == "DELETE" and dele["object"] is None and dele["oldObject"]["metadata"]["name"] == "one"
    assert dele["options"]["kind"] == "DeleteOptions"


def test_reinvocation_if_needed(api: httpx.Client, hooks: WebhookServer, ns: str, configs: list[str]) -> None:
    """An IfNeeded webhook runs again when a later webhook changed the object."""
    first, second = f"/first-{ns}", f"/second-{ns}"

    def count_keys(review: dict[str, Any]) -> Any:
        data = review["request"]["object"].get("data") or {}
        return json_patch(review, [{"op": "add", "path": "/data/keys", "value": str(len(data))}])

    def add_b(review: dict[str, Any]) -> Any:
        if "b" in (review["request"]["object"].get("data") or {}):
            return allow(review)
        return json_patch(review, [{"op": "add", "path": "/data/b", "value": "x"}])

    hooks.handlers[first], hooks.handlers[second] = count_keys, add_b
    # configurations run by name: "a-…" first
    create_config(api, configs, MWC, uid_of("a-count"),
                  webhook("count.example.com", hooks.url(first), hooks.ca_bundle, ns, reinvocationPolicy="IfNeeded"))
    create_config(api, configs, MWC, uid_of("b-add"), webhook("add-b.example.com", hooks.url(second),
                                                             hooks.ca_bundle, ns))
    wait_for(lambda: "b" in probe(api, ns).json()["data"], what="both webhooks")
    r = api.post(f"/api/v1/namespaces/{ns}/configmaps", json=cm("re", a="1"))
    assert r.status_code == 201, r.text
    # first: {a} → keys=1; second adds b; first again: {a, keys, b} → keys=3
    assert r.json()["data"] == {"a": "1", "b": "x", "keys": "3"}


def test_denial_status_is_passed_on(api: httpx.Client, hooks: WebhookServer, ns: str, configs: list[str]) -> None:
    path, bare = f"/deny-{ns}", f"/deny-bare-{ns}"
    hooks.handlers[path] = lambda rv: deny(rv, status={"code": 403, "reason": "Forbidden",
                                                       "message": "configmaps named bad-* are not allowed"})
    hooks.handlers[bare] = lambda rv: deny(rv)
    create_config(api, configs, VWC, uid_of("deny"),
                  webhook("deny.example.com", hooks.url(path), hooks.ca_bundle, ns,
                          objectSelector={"matchLabels": {"deny": "full"}}),
                  webhook("deny-bare.example.com", hooks.url(bare), hooks.ca_bundle, ns,
                          objectSelector={"matchLabels": {"deny": "bare"}}))
    wait_for(lambda: probe(api, ns, {"deny": "full"}).status_code == 403, what="the validating webhook")

    r = api.post(f"/api/v1/namespaces/{ns}/configmaps", json=cm("bad-1", {"deny": "full"}))
    assert r.status_code == 403
    st = r.json()
    assert st["kind"] == "Status" and st["status"] == "Failure" and st["reason"] == "Forbidden"
    assert st["message"] == 'admission webhook "deny.example.com" denied the request: configmaps named bad-* are not allowed'
    assert api.get(f"/api/v1/namespaces/{ns}/configmaps/bad-1").status_code == 404

    # no status at all: upstream (v1.31) answers 400 "... denied the request without explanation"
    r = api.post(f"/api/v1/namespaces/{ns}/configmaps", json=cm("bad-2", {"deny": "bare"}))
    assert r.status_code == 400
    assert r.json()["message"] == 'admission webhook "deny-bare.example.com" denied the request without explanation'

    # the object selector: an unlabelled object goes to neither webhook
    before = len(hooks.calls.get(path, [])) + len(hooks.calls.get(bare, []))
    assert api.post(f"/api/v1/namespaces/{ns}/configmaps", json=cm("fine")).status_code == 201
    assert len(hooks.calls.get(path, [])) + len(hooks.calls.get(bare, [])) == before


def test_namespace_selector(api: httpx.Client, hooks: WebhookServer, ns: str, configs: list[str]) -> None:
    path = f"/nssel-{ns}"
    hooks.handlers[path] = lambda rv: deny(rv, status={"message": "no", "code": 403})
    create_config(api, configs, VWC, uid_of("nssel"), webhook("nssel.example.com", hooks.url(path), hooks.ca_bundle, ns))
    wait_for(lambda: probe(api, ns).status_code == 403, what="the validating webhook")
    other = f"wh-other-{os.urandom(3).hex()}"
    assert api.post("/api/v1/namespaces", json={"metadata": {"name": other}}).status_code == 201
    try:
        calls = len(hooks.calls[path])
        assert api.post(f"/api/v1/namespaces/{other}/configmaps", json=cm("x")).status_code == 201
        assert len(hooks.calls[path]) == calls
        # labelling the namespace brings it under the webhook
        api.patch(f"/api/v1/namespaces/{other}", json={"metadata": {"labels": {"webhook-test": ns}}},
                  headers={"Content-Type": "application/merge-patch+json"}).raise_for_status()
        wait_for(lambda: probe(api, other).status_code == 403, what="the namespace's new label")
    finally:
        api.delete(f"/api/v1/namespaces/{other}")


def test_failure_policy_with_a_dead_webhook(api: httpx.Client, hooks: WebhookServer, ns: str,
                                           configs: list[str]) -> None:
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    url = f"https://127.0.0.1:{dead_port}/dead"
    name = uid_of("dead")
    create_config(api, configs, VWC, name, webhook("dead.example.com", url, hooks.ca_bundle, ns))
    wait_for(lambda: probe(api, ns).status_code == 500, what="the dead webhook")
    r = api.post(f"/api/v1/namespaces/{ns}/configmaps", json=cm("x"))
    assert r.status_code == 500
    st = r.json()
    inner = (f'failed calling webhook "dead.example.com": failed to call webhook: Post "{url}?timeout=10s": '
             f"dial tcp 127.0.0.1:{dead_port}: connect: connection refused")
    assert st["reason"] == "InternalError"
    assert st["message"] == f"Internal error occurred: {inner}"
    assert st["details"]["causes"] == [{"message": inner}]

    # failurePolicy Ignore: the request goes through without the webhook
    cfg = api.get(f"{VWC}/{name}").json()
    cfg["webhooks"][0]["failurePolicy"] = "Ignore"
    api.put(f"{VWC}/{name}", json=cfg).raise_for_status()
    wait_for(lambda: probe(api, ns).status_code == 201, what="failurePolicy Ignore")
    assert api.post(f"/api/v1/namespaces/{ns}/configmaps", json=cm("y")).status_code == 201


def test_timeout(api: httpx.Client, hooks: WebhookServer, ns: str, configs: list[str]) -> None:
    path = f"/slow-{ns}"

    def slow(review: dict[str, Any]) -> Any:
        time.sleep(3)
        return allow(review)

    hooks.handlers[path] = slow
    create_config(api, configs, VWC, uid_of("slow"),
                  webhook("slow.example.com", hooks.url(path), hooks.ca_bundle, ns, timeoutSeconds=1))
    wait_for(lambda: probe(api, ns).status_code == 500, timeout=20, what="the slow webhook")
    started = time.monotonic()
    r = api.post(f"/api/v1/namespaces/{ns}/configmaps", json=cm("x"))
    took = time.monotonic() - started
    assert r.status_code == 500
    assert r.json()["message"] == ('Internal error occurred: failed calling webhook "slow.example.com": failed to '
                                   f'call webhook: Post "{hooks.url(path)}?timeout=1s": context deadline exceeded')
    assert took < 2.5
    assert hooks.calls[path][-1]["_query"] == "timeout=1s"


def test_dry_run_and_side_effects(cp: ControlPlane, api: httpx.Client, hooks: WebhookServer, ns: str,
                                  configs: list[str]) -> None:
    path, some = f"/dry-{ns}", f"/some-{ns}"
    name = uid_of("dry")
    create_config(api, configs, VWC, name, webhook("dry.example.com", hooks.url(path), hooks.ca_bundle, ns,
                                                   sideEffects="NoneOnDryRun"))
    wait_for(lambda: probe(api, ns) and hooks.calls.get(path), what="the NoneOnDryRun webhook")
    assert hooks.calls[path][-1]["request"]["dryRun"] is True
    assert hooks.calls[path][-1]["request"]["options"]["dryRun"] == ["All"]

    # v1 refuses sideEffects Some on create; an object stored earlier (v1beta1 days) may have it
    some_name = uid_of("some")
    stored = {"apiVersion": ARV1, "kind": "ValidatingWebhookConfiguration",
              "metadata": {"name": some_name, "uid": "5f0c3b9e-0000-4000-8000-000000000001",
                           "creationTimestamp": "2024-01-01T00:00:00Z", "generation": 1},
              "webhooks": [{**webhook("some.example.com", hooks.url(some), hooks.ca_bundle, ns, sideEffects="Some"),
                            "failurePolicy": "Fail", "matchPolicy": "Equivalent", "objectSelector": {},
                            "timeoutSeconds": 10}]}
    cp.etcdctl("put", f"/registry/validatingwebhookconfigurations/{some_name}", json.dumps(stored))
    configs.append(f"{VWC}/{some_name}")
    wait_for(lambda: probe(api, ns).status_code == 400, what="the sideEffects Some webhook")
    r = probe(api, ns)
    assert r.json()["message"] == 'admission webhook "some.example.com" does not support dry run'
    assert r.json()["reason"] == "BadRequest"
    assert some not in hooks.calls
    # a real write calls it
    assert api.post(f"/api/v1/namespaces/{ns}/configmaps", json=cm("real")).status_code == 201
    assert hooks.calls[some][-1]["request"]["dryRun"] is False


def test_warnings_and_audit_annotations_reach_the_client(cp: ControlPlane, api: httpx.Client, hooks: WebhookServer,
                                                         ns: str, configs: list[str]) -> None:
    path = f"/warn-{ns}"
    hooks.handlers[path] = lambda rv: allow(rv, warnings=["configmap data is not encrypted", 'quote " inside'],
                                            auditAnnotations={"checked": "yes"})
    create_config(api, configs, VWC, uid_of("warn"), webhook("warn.example.com", hooks.url(path), hooks.ca_bundle, ns))
    wait_for(lambda: probe(api, ns).headers.get("warning"), what="the warning webhook")
    r = api.post(f"/api/v1/namespaces/{ns}/configmaps", json=cm("w"))
    assert r.status_code == 201
    assert r.headers.get_list("warning") == ['299 - "configmap data is not encrypted"', '299 - "quote \\" inside"']
    out = cp.kubectl("create", "configmap", "w2", "-n", ns)
    assert "Warning: configmap data is not encrypted" in out.stderr

    def audited() -> dict[str, Any] | None:
        for entry in audited_events(read_audit_events(cp.cfg.log("audit")), verb="create", namespace=ns):
            if "warn.example.com/checked" in entry.get("annotations", {}):
                return entry
        return None

    entry = wait_for(audited, what="the audit line")  # the log is flushed a second after writing
    assert entry["annotations"] == {"warn.example.com/checked": "yes", "authorization.k8s.io/decision": "allow",
                                    "authorization.k8s.io/reason": ""}


def test_service_reference(api: httpx.Client, hooks: WebhookServer, configs: list[str]) -> None:
    """clientConfig.service: the call goes to a ready endpoint, verified as <svc>.<ns>.svc."""
    svc_ns = "webhook-svc"
    if api.get(f"/api/v1/namespaces/{svc_ns}").status_code == 404:
        assert api.post("/api/v1/namespaces", json={"metadata": {"name": svc_ns,
                                                                 "labels": {"webhook-test": svc_ns}}}).status_code == 201
    base = f"/api/v1/namespaces/{svc_ns}"
    api.post(f"{base}/services", json={"metadata": {"name": "hooks"}, "spec": {
        "ports": [{"name": "https", "port": 443, "targetPort": hooks.port}]}}).raise_for_status()
    api.post(f"{base}/endpoints", json={"metadata": {"name": "hooks"}, "subsets": [
        {"addresses": [{"ip": "127.0.0.1"}], "ports": [{"name": "https", "port": hooks.port}]}]}).raise_for_status()
    path = "/via-service"
    hooks.handlers[path] = lambda rv: deny(rv, status={"code": 403, "message": "via service"})
    hook = webhook("svc.example.com", "", hooks.ca_bundle, svc_ns)
    hook["clientConfig"] = {"service": {"namespace": svc_ns, "name": "hooks", "path": path},
                            "caBundle": hooks.ca_bundle}
    cfg = create_config(api, configs, VWC, uid_of("svc"), hook)
    assert cfg["webhooks"][0]["clientConfig"]["service"]["port"] == 443  # defaulted
    wait_for(lambda: probe(api, svc_ns).status_code == 403, what="the webhook behind a service")
    assert probe(api, svc_ns).json()["message"] == 'admission webhook "svc.example.com" denied the request: via service'
    assert hooks.headers[path][-1]["Host"] == "hooks.webhook-svc.svc:443"


def test_match_conditions(api: httpx.Client, hooks: WebhookServer, ns: str, configs: list[str]) -> None:
    path = f"/cond-{ns}"
    hooks.handlers[path] = lambda rv: deny(rv, status={"code": 403, "message": "conditional"})
    create_config(api, configs, VWC, uid_of("cond"), webhook(
        "cond.example.com", hooks.url(path), hooks.ca_bundle, ns,
        matchConditions=[{"name": "only-strict", "expression": "has(object.data) && 'strict' in object.data"},
                         {"name": "not-admin-exempt", "expression": "request.userInfo.username != 'nobody'"}]))
    body = {**cm(f"c-{os.urandom(2).hex()}"), "data": {"strict": "1"}}
    wait_for(lambda: api.post(f"/api/v1/namespaces/{ns}/configmaps", params={"dryRun": "All"},
                              json=body).status_code == 403, what="the conditional webhook")
    calls = len(hooks.calls[path])
    assert api.post(f"/api/v1/namespaces/{ns}/configmaps", json=cm("loose", a="1")).status_code == 201
    assert len(hooks.calls[path]) == calls  # the condition was false: not called


def test_match_conditions_ask_the_authorizer_as_the_requesting_user(api: httpx.Client, hooks: WebhookServer,
                                                                     ns: str, configs: list[str]) -> None:
    # the webhook applies to users who may not list secrets in the namespace (the admin may)
    path = f"/authz-{ns}"
    hooks.handlers[path] = lambda rv: deny(rv, status={"code": 403, "message": "only secret readers may"})
    role = {"metadata": {"name": "cm-writer"}, "rules": [
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create", "get", "list"]}]}
    api.post(f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles", json=role).raise_for_status()
    api.post(f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings", json={
        "metadata": {"name": "cm-writer"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                                        "name": "cm-writer"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "writer"}]}).raise_for_status()
    create_config(api, configs, VWC, uid_of("authz"), webhook(
        "authz.example.com", hooks.url(path), hooks.ca_bundle, ns,
        matchConditions=[{"name": "not-a-secret-reader", "expression":
                          f"!authorizer.group('').resource('secrets').namespace('{ns}').check('list').allowed()"},
                         {"name": "may-create-it", "expression": "authorizer.requestResource.check('create').allowed()"}]))
    writer = {"Impersonate-User": "writer"}
    wait_for(lambda: api.post(f"/api/v1/namespaces/{ns}/configmaps", params={"dryRun": "All"}, headers=writer,
                              json=cm(f"w-{os.urandom(2).hex()}")).status_code == 403, what="the authorizer condition")
    r = api.post(f"/api/v1/namespaces/{ns}/configmaps", headers=writer, json=cm("by-writer"))
    assert r.status_code == 403 and "only secret readers may" in r.json()["message"]
    calls = len(hooks.calls[path])
    assert api.post(f"/api/v1/namespaces/{ns}/configmaps", json=cm("by-admin")).status_code == 201
    assert len(hooks.calls[path]) == calls  # the admin may list secrets: the webhook was skipped


def test_webhook_configurations_are_never_sent_to_webhooks(api: httpx.Client, hooks: WebhookServer,
                                                           configs: list[str]) -> None:
    path = "/everything"
    hooks.handlers[path] = lambda rv: deny(rv, status={"code": 403, "message": "no"})
    hook = webhook("all.example.com", hooks.url(path), hooks.ca_bundle, "x",
                   rules=[{"operations": ["*"], "apiGroups": ["admissionregistration.k8s.io"], "apiVersions": ["*"],
                           "resources": ["*"]}], namespaceSelector={})
    name = uid_of("all")
    create_config(api, configs, VWC, name, hook)
    # changing (and deleting) it is never blocked by itself
    wait_for(lambda: api.get(f"{VWC}/{name}").status_code == 200)
    cfg = api.get(f"{VWC}/{name}").json()
    cfg["metadata"]["labels"] = {"touched": "yes"}
    assert api.put(f"{VWC}/{name}", json=cfg).status_code == 200
    assert path not in hooks.calls


def test_invalid_configurations_name_their_fields(api: httpx.Client) -> None:
    bad = {
        "apiVersion": ARV1, "kind": "ValidatingWebhookConfiguration", "metadata": {"name": "bad"},
        "webhooks": [
            {"name": "short.name", "clientConfig": {"url": "http://user@example.com/x?y=1#z"},
             "rules": [{"operations": ["FOO"], "apiGroups": [], "apiVersions": ["v1"], "resources": ["*", "pods"],
                        "scope": "Everywhere"}],
             "timeoutSeconds": 31, "admissionReviewVersions": ["v2"], "failurePolicy": "Sometimes"},
            {"name": "dup.example.com", "clientConfig": {"url": "https://x.example.com", "service": {"name": "s"}},
             "sideEffects": "Some", "admissionReviewVersions": ["v1"]},
            {"name": "dup.example.com", "clientConfig": {"service": {"name": "s", "namespace": "n", "port": 0,
                                                                        "path": "no-slash"}},
             "sideEffects": "None", "admissionReviewVersions": ["v1"],
             "matchConditions": [{"name": "c", "expression": "object.("}]},
        ],
    }
    r = api.post(VWC, json=bad)
    assert r.status_code == 422, r.text
    st = r.json()
    assert st["reason"] == "Invalid" and st["details"]["kind"] == "ValidatingWebhookConfiguration"
    fields = {c["field"] for c in st["details"]["causes"]}
    assert {
        "webhooks[0].name", "webhooks[0].clientConfig.url", "webhooks[0].rules[0].operations[0]",
        "webhooks[0].rules[0].apiGroups", "webhooks[0].rules[0].resources", "webhooks[0].rules[0].scope",
        "webhooks[0].timeoutSeconds", "webhooks[0].admissionReviewVersions", "webhooks[0].failurePolicy",
        "webhooks[0].sideEffects", "webhooks[1].clientConfig", "webhooks[1].sideEffects", "webhooks[2].name",
        "webhooks[2].clientConfig.service.port", "webhooks[2].clientConfig.service.path",
        "webhooks[2].matchConditions[0].expression",
    } <= fields
    messages = {c["field"]: c["message"] for c in st["details"]["causes"]}
    assert messages["webhooks[0].name"] == ('Invalid value: "short.name": should be a domain with at least three '
                                            "segments separated by dots")
    assert messages["webhooks[1].clientConfig"] == "Required value: exactly one of url or service is required"
    assert messages["webhooks[2].name"] == 'Duplicate value: "dup.example.com"'
    assert messages["webhooks[1].sideEffects"] == ('Unsupported value: "Some": supported values: "None", '
                                                   '"NoneOnDryRun"')
    assert messages["webhooks[0].timeoutSeconds"] == "Invalid value: 31: the timeout value must be between 1 and 30 seconds"


def test_defaults_generation_and_table(api: httpx.Client, hooks: WebhookServer, configs: list[str]) -> None:
    name = uid_of("defaults")
    hook = {"name": "d.example.com", "clientConfig": {"url": "https://127.0.0.1:1/x"}, "sideEffects": "None",
            "admissionReviewVersions": ["v1"],
            "rules": [{"operations": ["CREATE"], "apiGroups": ["apps"], "apiVersions": ["v1"],
                       "resources": ["deployments"]}]}
    out = create_config(api, configs, MWC, name, hook)
    got = out["webhooks"][0]
    assert got["failurePolicy"] == "Fail" and got["matchPolicy"] == "Equivalent"
    assert got["namespaceSelector"] == {} and got["objectSelector"] == {}
    assert got["timeoutSeconds"] == 10 and got["reinvocationPolicy"] == "Never"
    assert got["rules"][0]["scope"] == "*"
    assert out["metadata"]["generation"] == 1
    out["webhooks"][0]["timeoutSeconds"] = 5
    assert api.put(f"{MWC}/{name}", json=out).json()["metadata"]["generation"] == 2
    table = api.get(MWC, headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"}).json()
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Webhooks", "Age"]
    row = next(r for r in table["rows"] if r["cells"][0] == name)
    assert row["cells"][1] == 1


VWC_YAML = """\
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata:
  name: {name}
webhooks:
- name: kubectl.example.com
  clientConfig:
    url: {url}
    caBundle: {ca}
  rules:
  - operations: ["CREATE"]
    apiGroups: [""]
    apiVersions: ["v1"]
    resources: ["configmaps"]
    scope: Namespaced
  namespaceSelector:
    matchLabels:
      webhook-test: {ns}
  sideEffects: None
  admissionReviewVersions: ["v1", "v1beta1"]
  timeoutSeconds: {timeout}
"""


def test_kubectl_apply(cp: ControlPlane, api: httpx.Client, hooks: WebhookServer, ns: str,
                       configs: list[str]) -> None:
    name = uid_of("kubectl")
    configs.append(f"{VWC}/{name}")
    path = f"/kubectl-{ns}"
    hooks.handlers[path] = lambda rv: deny(rv, status={"code": 403, "reason": "Forbidden", "message": "kubectl says no"})
    doc = VWC_YAML.format(name=name, url=hooks.url(path), ca=hooks.ca_bundle, ns=ns, timeout=5)
    out = cp.kubectl("apply", "-f", "-", input=doc)
    assert f"validatingwebhookconfiguration.admissionregistration.k8s.io/{name} created" in out.stdout
    out = cp.kubectl("apply", "-f", "-", input=doc.replace("timeoutSeconds: 5", "timeoutSeconds: 7"))
    assert f"validatingwebhookconfiguration.admissionregistration.k8s.io/{name} configured" in out.stdout
    assert api.get(f"{VWC}/{name}").json()["webhooks"][0]["timeoutSeconds"] == 7
    lines = cp.kubectl("get", "validatingwebhookconfigurations", name).stdout.splitlines()
    assert lines[0].split() == ["NAME", "WEBHOOKS", "AGE"] and lines[1].split()[:2] == [name, "1"]
    wait_for(lambda: probe(api, ns).status_code == 403, what="the applied webhook")
    r = cp.kubectl("create", "configmap", "k", "-n", ns, check=False)
    assert r.returncode != 0
    assert 'admission webhook "kubectl.example.com" denied the request: kubectl says no' in r.stderr
    r = cp.kubectl("apply", "-n", ns, "-f", "-", input="apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: k\n",
                   check=False)
    assert ('Error from server (Forbidden): error when creating "STDIN": admission webhook "kubectl.example.com" '
            "denied the request: kubectl says no") in r.stderr
    cp.kubectl("delete", "validatingwebhookconfiguration", name)
    wait_for(lambda: probe(api, ns).status_code == 201, what="the webhook to go away")


def test_python_client(cp: ControlPlane, hooks: WebhookServer, configs: list[str]) -> None:
    from kubernetes import client, config

    k8s = config.new_client_from_config(config_file=str(cp.kubeconfig))
    v1 = client.AdmissionregistrationV1Api(k8s)
    name = uid_of("pyclient")
    configs.append(f"{VWC}/{name}")
    body = client.V1ValidatingWebhookConfiguration(
        metadata=client.V1ObjectMeta(name=name),
        webhooks=[client.V1ValidatingWebhook(
            name="py.example.com", side_effects="None", admission_review_versions=["v1"],
            client_config=client.AdmissionregistrationV1WebhookClientConfig(url=hooks.url("/py"),
                                                                            ca_bundle=hooks.ca_bundle),
            rules=[client.V1RuleWithOperations(operations=["CREATE"], api_groups=[""], api_versions=["v1"],
                                               resources=["secrets"])])])
    created = v1.create_validating_webhook_configuration(body)
    assert created.webhooks[0].failure_policy == "Fail" and created.webhooks[0].timeout_seconds == 10
    assert created.webhooks[0].client_config.ca_bundle == hooks.ca_bundle
    names = [c.metadata.name for c in v1.list_validating_webhook_configuration().items]
    assert name in names
    m = client.V1MutatingWebhookConfiguration(
        metadata=client.V1ObjectMeta(name=name),
        webhooks=[client.V1MutatingWebhook(
            name="py.example.com", side_effects="NoneOnDryRun", admission_review_versions=["v1"],
            reinvocation_policy="IfNeeded",
            client_config=client.AdmissionregistrationV1WebhookClientConfig(url=hooks.url("/py")))])
    configs.append(f"{MWC}/{name}")
    got = v1.create_mutating_webhook_configuration(m)
    assert got.webhooks[0].reinvocation_policy == "IfNeeded"
    assert v1.read_mutating_webhook_configuration(name).metadata.generation == 1
    v1.delete_mutating_webhook_configuration(name)
    assert name not in [c.metadata.name for c in v1.list_mutating_webhook_configuration().items]


def test_equivalent_versions_hpa(api: httpx.Client, hooks: WebhookServer, ns: str, configs: list[str]) -> None:
    """matchPolicy Equivalent: a rule for autoscaling/v1 also catches autoscaling/v2 requests, and the
    webhook gets the object converted to the version it asked for."""
    path = f"/hpa-{ns}"
    hooks.handlers[path] = lambda rv: deny(rv, status={"code": 403, "message": "hpa"})
    hook = webhook("hpa.example.com", hooks.url(path), hooks.ca_bundle, ns,
                   rules=[{"operations": ["CREATE"], "apiGroups": ["autoscaling"], "apiVersions": ["v1"],
                           "resources": ["horizontalpodautoscalers"]}])
    create_config(api, configs, VWC, uid_of("hpa"), hook)
    hpa = {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "h"},
           "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                    "minReplicas": 1, "maxReplicas": 3}}
    wait_for(lambda: api.post(f"/apis/autoscaling/v2/namespaces/{ns}/horizontalpodautoscalers",
                              params={"dryRun": "All"}, json=hpa).status_code == 403, what="the HPA webhook")
    req = hooks.calls[path][-1]["request"]
    assert req["kind"] == {"group": "autoscaling", "version": "v1", "kind": "HorizontalPodAutoscaler"}
    assert req["resource"]["version"] == "v1" and req["requestResource"]["version"] == "v2"
    assert req["object"]["apiVersion"] == "autoscaling/v1"
    assert req["object"]["spec"]["maxReplicas"] == 3


def test_mutations_cannot_reach_what_the_endpoint_may_not_change(api: httpx.Client, hooks: WebhookServer, ns: str,
                                                                 configs: list[str]) -> None:
    """Mutating admission runs before the strategy resets what an update may not change (upstream:
    the updated object's transformers, then BeforeUpdate): a patch to status on a main-resource
    update, or to the uid, is dropped."""
    path = f"/status-{ns}"

    def mutate(review: dict[str, Any]) -> Any:
        if review["request"]["operation"] != "UPDATE":
            return allow(review)
        return json_patch(review, [{"op": "add", "path": "/status", "value": {"loadBalancer": {
            "ingress": [{"ip": "192.0.2.1"}]}}}, {"op": "replace", "path": "/metadata/uid", "value": "forged"},
            {"op": "add", "path": "/metadata/labels", "value": {"patched": "yes"}}])

    hooks.handlers[path] = mutate
    hook = webhook("status.mutate.example.com", hooks.url(path), hooks.ca_bundle, ns)
    hook["rules"][0]["resources"] = ["services"]
    create_config(api, configs, MWC, uid_of("status"), hook)
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
           "spec": {"ports": [{"port": 80}], "selector": {"app": "x"}}}
    r = api.post(f"/api/v1/namespaces/{ns}/services", json=svc)
    assert r.status_code == 201, r.text
    created = r.json()

    def updated() -> dict[str, Any] | None:
        cur = api.get(f"/api/v1/namespaces/{ns}/services/s").json()
        cur["metadata"].setdefault("annotations", {})["n"] = os.urandom(2).hex()
        r = api.put(f"/api/v1/namespaces/{ns}/services/s", json=cur)
        assert r.status_code == 200, r.text
        return r.json() if r.json()["metadata"].get("labels") == {"patched": "yes"} else None

    out = wait_for(updated, what="the webhook to be called")
    assert out["status"] == created["status"] and out["metadata"]["uid"] == created["metadata"]["uid"]


def test_pod_binding_is_admitted_as_the_creation_of_a_binding(api: httpx.Client, hooks: WebhookServer, ns: str,
                                                               configs: list[str]) -> None:
    """POST pods/NAME/binding reaches webhooks as upstream's BindingREST.Create does: operation CREATE,
    kind v1 Binding, the Binding as the object; a mutating webhook may change it (here: the target)
    and a validating one may refuse it, leaving the pod unbound."""
    path = f"/binding-{ns}"

    def retarget(review: dict[str, Any]) -> Any:
        return json_patch(review, [{"op": "replace", "path": "/target/name", "value": "node-b"}])

    hooks.handlers[path] = retarget
    hook = webhook("binding.mutate.example.com", hooks.url(path), hooks.ca_bundle, ns,
                   rules=[{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"],
                           "resources": ["pods/binding"]}])
    create_config(api, configs, MWC, uid_of("binding"), hook)
    deny_path = f"/binding-deny-{ns}"
    hooks.handlers[deny_path] = lambda review: deny(review, status={"code": 403, "message": "no binding to node-c"}) \
        if review["request"]["object"]["target"]["name"] == "node-c" else allow(review)
    deny_hook = webhook("binding.deny.example.com", hooks.url(deny_path), hooks.ca_bundle, ns,
                        rules=[{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"],
                                "resources": ["pods/binding"]}])
    create_config(api, configs, VWC, uid_of("binding-deny"), deny_hook)
    assert api.post(f"/api/v1/namespaces/{ns}/serviceaccounts", json={"metadata": {"name": "default"}}).status_code == 201
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
           "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
    assert api.post(f"/api/v1/namespaces/{ns}/pods", json=pod).status_code == 201

    binding = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"}, "target": {"kind": "Node", "name": "node-a"}}
    r = api.post(f"/api/v1/namespaces/{ns}/pods/p/binding", json=binding)
    assert r.status_code == 201, r.text
    review = hooks.calls[path][-1]["request"]
    assert review["operation"] == "CREATE"
    assert review["kind"] == {"group": "", "version": "v1", "kind": "Binding"}
    assert review["resource"] == {"group": "", "version": "v1", "resource": "pods"} and review["subResource"] == "binding"
    assert review["object"]["kind"] == "Binding" and review["object"]["target"]["name"] == "node-a"
    assert review["oldObject"] is None
    # the validating webhook saw the mutated Binding, and the pod was bound where the mutation said
    assert hooks.calls[deny_path][-1]["request"]["object"]["target"]["name"] == "node-b"
    assert api.get(f"/api/v1/namespaces/{ns}/pods/p").json()["spec"]["nodeName"] == "node-b"

    hooks.handlers[path] = lambda review: json_patch(
        review, [{"op": "replace", "path": "/target/name", "value": "node-c"}])
    assert api.post(f"/api/v1/namespaces/{ns}/pods", json={**pod, "metadata": {"name": "q"}}).status_code == 201
    r = api.post(f"/api/v1/namespaces/{ns}/pods/q/binding", json={**binding, "metadata": {"name": "q"}})
    assert r.status_code == 403 and "no binding to node-c" in r.json()["message"], r.text
    assert not api.get(f"/api/v1/namespaces/{ns}/pods/q").json()["spec"].get("nodeName")


def test_in_tree_plugins_run_again_after_a_webhook_changed_the_object(api: httpx.Client, hooks: WebhookServer,
                                                                      ns: str, configs: list[str]) -> None:
    """A webhook injects a sidecar: as upstream reinvokes the in-tree mutating plugins once a webhook
    changed the object, LimitRanger gives the sidecar the namespace's defaults and the ServiceAccount
    plugin mounts the token into it — each plugin's own additions stay single."""
    path = f"/sidecar-{ns}"

    def inject(review: dict[str, Any]) -> Any:
        names = [c["name"] for c in review["request"]["object"]["spec"]["containers"]]
        if "sidecar" in names:
            return allow(review)
        return json_patch(review, [{"op": "add", "path": "/spec/containers/-",
                                    "value": {"name": "sidecar", "image": "busybox"}}])

    hooks.handlers[path] = inject
    hook = webhook("sidecar.example.com", hooks.url(path), hooks.ca_bundle, ns,
                   rules=[{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}])
    create_config(api, configs, MWC, uid_of("sidecar"), hook)
    assert api.post(f"/api/v1/namespaces/{ns}/serviceaccounts", json={"metadata": {"name": "default"}}).status_code == 201
    lr = {"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "defaults"},
          "spec": {"limits": [{"type": "Container", "default": {"cpu": "200m", "memory": "64Mi"}}]}}
    assert api.post(f"/api/v1/namespaces/{ns}/limitranges", json=lr).status_code == 201
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
           "spec": {"containers": [{"name": "main", "image": "busybox"}]}}
    out = wait_for(lambda: (lambda r: r.json() if r.status_code == 201 else None)(
        api.post(f"/api/v1/namespaces/{ns}/pods", params={"dryRun": "All"}, json=pod)), what="the LimitRange in the cache")
    containers = {c["name"]: c for c in out["spec"]["containers"]}
    assert set(containers) == {"main", "sidecar"}
    for c in containers.values():
        assert c["resources"]["limits"] == {"cpu": "200m", "memory": "64Mi"}, c
        assert [m["mountPath"] for m in c.get("volumeMounts") or []] == ["/var/run/secrets/kubernetes.io/serviceaccount"]
    assert len([v for v in out["spec"]["volumes"] if v["name"].startswith("kube-api-access-")]) == 1
    assert "cpu, memory limit for container sidecar" in out["metadata"]["annotations"]["kubernetes.io/limit-ranger"]


def test_exec_attach_and_portforward_are_admitted_as_connect(cp: ControlPlane, api: httpx.Client,
                                                              hooks: WebhookServer, ns: str,
                                                              configs: list[str]) -> None:
    """pods/exec, attach and portforward reach webhooks as upstream's CONNECT: the options object
    (PodExecOptions...) made from the query, no oldObject, no options; a denial stops the stream
    before the pod is even looked up (kubectl shows it), an allowed one goes on to the pod."""
    path = f"/connect-{ns}"

    def no_rm(review: dict[str, Any]) -> Any:
        obj = review["request"]["object"]
        if "rm" in (obj.get("command") or []) or obj.get("ports") == [22]:
            return deny(review, status={"code": 403, "message": "not that"})
        return allow(review)

    hooks.handlers[path] = no_rm
    create_config(api, configs, VWC, uid_of("connect"), webhook(
        "connect.example.com", hooks.url(path), hooks.ca_bundle, ns,
        rules=[{"operations": ["CONNECT"], "apiGroups": [""], "apiVersions": ["v1"],
                "resources": ["pods/exec", "pods/attach", "pods/portforward"]}]))
    assert api.post(f"/api/v1/namespaces/{ns}/serviceaccounts", json={"metadata": {"name": "default"}}).status_code == 201
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
           "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
    assert api.post(f"/api/v1/namespaces/{ns}/pods", json=pod).status_code == 201
    exec_url = f"/api/v1/namespaces/{ns}/pods/p/exec"
    wait_for(lambda: api.post(exec_url, params=[("command", "rm"), ("stdout", "true")]).status_code == 403,
             what="the CONNECT webhook")

    r = cp.kubectl("-n", ns, "exec", "p", "--", "rm", "-rf", "/x", check=False)
    assert r.returncode != 0
    assert 'admission webhook "connect.example.com" denied the request: not that' in r.stderr, r.stderr
    review = hooks.calls[path][-1]["request"]
    assert review["operation"] == "CONNECT" and review["subResource"] == "exec" and review["name"] == "p"
    assert review["kind"] == {"group": "", "version": "v1", "kind": "PodExecOptions"}
    assert review["resource"] == {"group": "", "version": "v1", "resource": "pods"}
    assert review["object"]["command"] == ["rm", "-rf", "/x"] and review["object"]["kind"] == "PodExecOptions"
    assert review["object"]["stdout"] is True and review["object"]["container"] == "c"
    assert review["oldObject"] is None and review["options"] is None

    # allowed: admission passes and the request goes on to the pod, which has no node yet
    r = api.post(exec_url, params=[("command", "ls"), ("stdout", "1"), ("tty", "false")])
    assert r.status_code == 400 and "does not have a host assigned" in r.json()["message"], r.text
    obj = hooks.calls[path][-1]["request"]["object"]
    assert obj == {"kind": "PodExecOptions", "apiVersion": "v1", "stdout": True, "command": ["ls"]}

    r = api.post(f"/api/v1/namespaces/{ns}/pods/p/portforward", params={"ports": "22"})
    assert r.status_code == 403 and r.json()["message"].endswith("denied the request: not that"), r.text
    review = hooks.calls[path][-1]["request"]
    assert review["kind"]["kind"] == "PodPortForwardOptions" and review["object"]["ports"] == [22]
    r = api.post(f"/api/v1/namespaces/{ns}/pods/p/portforward", params={"ports": "ssh"})
    assert r.status_code == 400 and r.json()["kind"] == "Status", r.text
    r = api.post(f"/api/v1/namespaces/{ns}/pods/p/attach", params={"stdin": "true", "container": "c"})
    assert r.status_code == 400  # allowed, then: no node
    assert hooks.calls[path][-1]["request"]["object"] == {"kind": "PodAttachOptions", "apiVersion": "v1",
                                                          "stdin": True, "container": "c"}
