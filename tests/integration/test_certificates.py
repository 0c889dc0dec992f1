"""certificates.k8s.io/v1 CertificateSigningRequests end to end: a real apiserver and a real
controller-manager running csrsigning, csrapproving and csrcleaner as the certificate-controller
ServiceAccount, the cluster CA signing.

* a bootstrap-token user's node-client request is auto-approved and signed, and the certificate
  authenticates as system:node:<name> in system:nodes; the node then renews through selfnodeclient;
* a user's kube-apiserver-client request is approved and denied with unmodified kubectl
  (`kubectl certificate approve|deny`, protobuf), and its certificate authenticates;
* admission: system:masters requests are refused, approving needs `approve` on the signer;
* the strategy: requestor fields set by the server, /status and /approval rules, the Failed
  condition of a request the signer refuses, `kubectl get csr` columns, the Python client.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import ssl
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from certs import csr as csrlib
from tests.conftest import ControlPlane, private_control_plane, wait_for


def new_csr(cn: str, orgs: Any = (), **sans: Any) -> tuple[bytes, Any]:
    """(CSR PEM, its new key)."""
    key = csrlib.new_private_key()
    return csrlib.make_csr(key, cn, orgs, **sans), key


CSRS = "/apis/certificates.k8s.io/v1/certificatesigningrequests"
CONTROLLERS = ("serviceaccount-controller,root-ca-certificate-publisher-controller,"
               "csrsigning-controller,csrapproving-controller,csrcleaner-controller")


@pytest.fixture(scope="module")
def cp() -> Iterator[ControlPlane]:
    with private_control_plane("mk8s-csr-", controller_manager=False) as plane:
        plane.start_controller_manager(CONTROLLERS, extra=[
            "--cluster-signing-cert-file", str(plane.pki.ca_cert),
            "--cluster-signing-key-file", str(plane.pki.ca_key),
        ])
        plane.wait_namespace_ready("default")
        yield plane


@pytest.fixture
def api(cp: ControlPlane) -> Iterator[httpx.Client]:
    with cp.client() as c:
        yield c


def b64(data: bytes | str) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


def csr_body(name: str, pem: bytes, signer: str, usages: list[str], **spec) -> dict:
    return {"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest", "metadata": {"name": name},
            "spec": {"request": b64(pem), "signerName": signer, "usages": usages, **spec}}


def issued(api: httpx.Client, name: str) -> dict | None:
    obj = api.get(f"{CSRS}/{name}").json()
    return obj if (obj.get("status") or {}).get("certificate") else None


def cert_client(cp: ControlPlane, cert_pem: bytes, key) -> httpx.Client:
    d = Path(tempfile.mkdtemp(prefix="mk8s-csr-cert-"))
    (d / "c.crt").write_bytes(cert_pem)
    (d / "c.key").write_bytes(csrlib.private_key_pem(key))
    ctx = ssl.create_default_context(cafile=str(cp.pki.ca_cert))
    ctx.load_cert_chain(str(d / "c.crt"), str(d / "c.key"))
    return httpx.Client(base_url=cp.url, verify=ctx, timeout=15)


def whoami(c: httpx.Client) -> dict:
    r = c.post("/apis/authentication.k8s.io/v1/selfsubjectreviews", json={})
    assert r.status_code == 201, r.text
    return r.json()["status"]["userInfo"]


def binding(name: str, role: str, group: str) -> dict:
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": group}]}


def test_node_bootstrap_auto_approved_and_signed(cp: ControlPlane, api: httpx.Client) -> None:
    # what kubeadm sets up for `kubeadm join`: bootstrappers may create CSRs and get them approved,
    # nodes may renew their own client certificates
    for b in (binding("kubeadm:kubelet-bootstrap", "system:node-bootstrapper", "system:bootstrappers"),
              binding("kubeadm:node-autoapprove-bootstrap",
                      "system:certificates.k8s.io:certificatesigningrequests:nodeclient", "system:bootstrappers"),
              binding("kubeadm:node-autoapprove-certificate-rotation",
                      "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient", "system:nodes")):
        r = api.post("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", json=b)
        assert r.status_code == 201, r.text
    token_id, secret = os.urandom(3).hex(), os.urandom(8).hex()
    r = api.post("/api/v1/namespaces/kube-system/secrets", json={
        "metadata": {"name": f"bootstrap-token-{token_id}"}, "type": "bootstrap.kubernetes.io/token",
        "data": {"token-id": b64(token_id), "token-secret": b64(secret), "usage-bootstrap-authentication": b64("true"),
                 "auth-extra-groups": b64("system:bootstrappers:kubeadm:default-node-token")}})
    assert r.status_code == 201, r.text

    ctx = ssl.create_default_context(cafile=str(cp.pki.ca_cert))
    pem, key = new_csr("system:node:joiner", ["system:nodes"])
    body = csr_body("node-csr-joiner", pem, csrlib.KUBE_APISERVER_CLIENT_KUBELET,
                    ["digital signature", "client auth"], username="someone-else", groups=["system:masters"])
    with httpx.Client(base_url=cp.url, verify=ctx, timeout=15,
                      headers={"Authorization": f"Bearer {token_id}.{secret}"}) as boot:
        r = wait_for(lambda: (lambda r: r if r.status_code != 401 else None)(boot.post(CSRS, json=body)),
                     what="the bootstrap token to authenticate")
        assert r.status_code == 201, r.text
        spec = r.json()["spec"]
        # the requestor is who sent it, whatever the body said
        assert spec["username"] == f"system:bootstrap:{token_id}"
        assert spec["groups"] == ["system:bootstrappers", "system:bootstrappers:kubeadm:default-node-token",
                                  "system:authenticated"]
        csr = wait_for(lambda: issued(boot, "node-csr-joiner"), 30, 0.1, "the node CSR to be approved and issued")
    approved = [c for c in csr["status"]["conditions"] if c["type"] == "Approved"]
    assert approved and approved[0]["reason"] == "AutoApproved"
    assert approved[0]["message"] == "Auto approving kubelet client certificate after SubjectAccessReview."
    assert approved[0]["lastUpdateTime"] and approved[0]["lastTransitionTime"]

    cert_pem = base64.b64decode(csr["status"]["certificate"])
    cert = x509.load_pem_x509_certificate(cert_pem)
    assert csrlib.common_name(cert) == "system:node:joiner" and csrlib.organizations(cert) == ["system:nodes"]
    assert cert.issuer == x509.load_pem_x509_certificate(cp.pki.ca_cert.read_bytes()).subject
    life = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert dt.timedelta(days=364) < life <= dt.timedelta(days=365)  # --cluster-signing-duration's year
    with cert_client(cp, cert_pem, key) as node:
        user = whoami(node)
        assert user["username"] == "system:node:joiner"
        assert "system:nodes" in user["groups"]

        # renewal: the node asks for a new certificate of its own name (selfnodeclient)
        pem2, _ = new_csr("system:node:joiner", ["system:nodes"])
        r = node.post(CSRS, json=csr_body("node-csr-joiner-2", pem2, csrlib.KUBE_APISERVER_CLIENT_KUBELET,
                                          ["digital signature", "client auth"], expirationSeconds=3600))
        assert r.status_code == 201, r.text
        renewed = wait_for(lambda: issued(node, "node-csr-joiner-2"), 30, 0.1, "the renewal to be issued")
    msg = [c["message"] for c in renewed["status"]["conditions"] if c["type"] == "Approved"]
    assert msg == ["Auto approving self kubelet client certificate after SubjectAccessReview."]
    cert2 = x509.load_pem_x509_certificate(base64.b64decode(renewed["status"]["certificate"]))
    # expirationSeconds under 8 hours: now-5m .. now+1h
    assert cert2.not_valid_after_utc - cert2.not_valid_before_utc == dt.timedelta(minutes=65)


def test_kubectl_approve_and_deny(cp: ControlPlane, api: httpx.Client) -> None:
    pem, key = new_csr("alice", ["devs"])
    cp.kubectl("create", "-f", "-", input=json.dumps(csr_body(
        "alice", pem, csrlib.KUBE_APISERVER_CLIENT, ["digital signature", "key encipherment", "client auth"],
        expirationSeconds=7200)))
    pem_b, _ = new_csr("bob", ["devs"])
    cp.kubectl("create", "-f", "-", input=json.dumps(csr_body("bob", pem_b, csrlib.KUBE_APISERVER_CLIENT,
                                                              ["client auth"])))
    out = cp.kubectl("get", "csr", "alice", "bob").stdout.splitlines()
    assert out[0].split() == ["NAME", "AGE", "SIGNERNAME", "REQUESTOR", "REQUESTEDDURATION", "CONDITION"]
    assert out[1].split()[2:] == ["kubernetes.io/kube-apiserver-client", "kubernetes-admin", "120m", "Pending"]
    assert out[2].split()[2:] == ["kubernetes.io/kube-apiserver-client", "kubernetes-admin", "<none>", "Pending"]
    assert "approved" in cp.kubectl("certificate", "approve", "alice").stdout
    assert "denied" in cp.kubectl("certificate", "deny", "bob").stdout
    csr = wait_for(lambda: issued(api, "alice"), 30, 0.1, "alice's certificate")
    cert_pem = base64.b64decode(csr["status"]["certificate"])
    cert = x509.load_pem_x509_certificate(cert_pem)
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    with cert_client(cp, cert_pem, key) as alice:
        user = whoami(alice)
        assert user["username"] == "alice" and "devs" in user["groups"]
    wait_for(lambda: "Approved,Issued" in cp.kubectl("get", "csr", "alice").stdout, 10, 0.1, "Approved,Issued")
    described = cp.kubectl("describe", "csr", "alice").stdout
    for text in ("Requesting User:", "kubernetes-admin", "kubernetes.io/kube-apiserver-client", "Approved,Issued",
                 "Common Name:", "alice", "Organization:", "devs"):
        assert text in described, described
    bob = api.get(f"{CSRS}/bob").json()
    assert [c["type"] for c in bob["status"]["conditions"]] == ["Denied"]
    assert bob["status"]["conditions"][0]["reason"] == "KubectlDeny"
    assert "certificate" not in bob["status"]
    assert cp.kubectl("get", "csr", "bob").stdout.split()[-1] == "Denied"
    # kubectl refuses to approve a denied request; the server would too
    r = cp.kubectl("certificate", "approve", "bob", check=False)
    assert r.returncode != 0 and 'certificate signing request "bob" is already Denied' in r.stderr
    r = api.put(f"{CSRS}/bob/approval", json={**bob, "status": {"conditions": [
        *bob["status"]["conditions"], {"type": "Approved", "status": "True"}]}})
    assert r.status_code == 422 and "Approved and Denied conditions are mutually exclusive" in r.json()["message"]


def test_system_masters_refused(cp: ControlPlane, api: httpx.Client) -> None:
    pem, _ = new_csr("mallory", ["system:masters"])
    r = api.post(CSRS, json=csr_body("mallory", pem, csrlib.KUBE_APISERVER_CLIENT, ["client auth"]))
    assert r.status_code == 403, r.text
    assert ("use of kubernetes.io/kube-apiserver-client signer with system:masters group is not allowed"
            in r.json()["message"])
    # other signers may (their signer decides)
    r = api.post(CSRS, json=csr_body("mallory-custom", pem, "example.com/custom", ["client auth"]))
    assert r.status_code == 201, r.text


def test_approve_needs_signer_permission(cp: ControlPlane, api: httpx.Client) -> None:
    pem, _ = new_csr("carol", [])
    assert api.post(CSRS, json=csr_body("carol", pem, csrlib.KUBE_APISERVER_CLIENT, ["client auth"])).status_code == 201
    # without any permission: RBAC refuses the request itself
    r = cp.kubectl("certificate", "approve", "carol", "--as", "dave", check=False)
    assert r.returncode != 0 and "forbidden" in r.stderr
    # allowed to write /approval, but not to approve for the signer: admission refuses
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "csr-approver"},
            "rules": [{"apiGroups": ["certificates.k8s.io"], "resources": ["certificatesigningrequests"],
                       "verbs": ["get", "list"]},
                      {"apiGroups": ["certificates.k8s.io"], "resources": ["certificatesigningrequests/approval"],
                       "verbs": ["update"]}]}
    assert api.post("/apis/rbac.authorization.k8s.io/v1/clusterroles", json=role).status_code == 201
    rb = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "dave-csr"},
          "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "csr-approver"},
          "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "dave"}]}
    assert api.post("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", json=rb).status_code == 201

    def refused() -> str | None:
        r = cp.kubectl("certificate", "approve", "carol", "--as", "dave", check=False)
        return r.stderr if "not permitted" in r.stderr else None

    err = wait_for(refused, 10, 0.2, "the approval to be refused by admission")
    assert 'user not permitted to approve requests with signerName "kubernetes.io/kube-apiserver-client"' in err
    r = httpx.Client(base_url=cp.url, verify=cp.ssl_context(), headers={"Impersonate-User": "dave"}).put(
        f"{CSRS}/carol/approval", json={**api.get(f"{CSRS}/carol").json(), "status": {"conditions": [
            {"type": "Approved", "status": "True", "reason": "ByHand"}]}})
    assert r.status_code == 403 and r.json()["reason"] == "Forbidden", r.text
    # with upstream's approver role for that signer it works
    rb2 = binding("dave-approver", "system:certificates.k8s.io:kube-apiserver-client-approver", "approvers")
    rb2["subjects"] = [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "dave"}]
    assert api.post("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", json=rb2).status_code == 201
    wait_for(lambda: cp.kubectl("certificate", "approve", "carol", "--as", "dave", check=False).returncode == 0,
             10, 0.2, "dave's approval")
    wait_for(lambda: issued(api, "carol"), 30, 0.1, "carol's certificate")


def test_strategy_rules(cp: ControlPlane, api: httpx.Client) -> None:
    pem, _ = new_csr("erin", [])
    body = csr_body("erin", pem, "example.com/erin-signer", ["client auth"])
    body["status"] = {"conditions": [{"type": "Approved", "status": "True"}], "certificate": b64("x")}
    r = api.post(CSRS, json=body)
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["status"] == {}  # clients cannot create approved requests
    assert created["spec"]["username"] == "kubernetes-admin" and "system:masters" in created["spec"]["groups"]

    # the object itself: spec and status stay as stored
    upd = {**created, "spec": {**created["spec"], "signerName": "example.com/other"},
           "status": {"conditions": [{"type": "Approved", "status": "True"}]},
           "metadata": {**created["metadata"], "labels": {"a": "b"}}}
    r = api.put(f"{CSRS}/erin", json=upd)
    assert r.status_code == 200, r.text
    assert r.json()["spec"]["signerName"] == "example.com/erin-signer" and r.json()["status"] == {}
    assert r.json()["metadata"]["labels"] == {"a": "b"}

    # /status may not add Approved
    cur = r.json()
    r = api.put(f"{CSRS}/erin/status", json={**cur, "status": {"conditions": [{"type": "Approved", "status": "True"}]}})
    assert r.status_code == 422, r.text
    assert 'updates may not add a condition of type "Approved"' in r.json()["message"]
    # /approval: both Approved and Denied → invalid; Approved → fine, with timestamps
    r = api.put(f"{CSRS}/erin/approval", json={**cur, "status": {"conditions": [
        {"type": "Approved", "status": "True"}, {"type": "Denied", "status": "True"}]}})
    assert r.status_code == 422 and "mutually exclusive" in r.json()["message"]
    r = api.put(f"{CSRS}/erin/approval", json={**cur, "status": {"conditions": [{"type": "Approved"}]}})
    assert r.status_code == 200, r.text
    cond = r.json()["status"]["conditions"][0]
    assert cond["status"] == "True" and cond["lastUpdateTime"] and cond["lastTransitionTime"]
    # /approval cannot set the certificate; /status can, once, and only PEM certificates
    cur = r.json()
    r = api.put(f"{CSRS}/erin/approval", json={**cur, "status": {**cur["status"], "certificate": b64("junk")}})
    assert r.status_code == 200 and "certificate" not in r.json()["status"]
    r = api.put(f"{CSRS}/erin/status", json={**cur, "status": {**cur["status"], "certificate": b64("junk")}})
    assert r.status_code == 422 and "must contain at least one CERTIFICATE PEM block" in r.json()["message"]
    ca_pem = cp.pki.ca_cert.read_bytes()
    r = api.put(f"{CSRS}/erin/status", json={**cur, "status": {**cur["status"], "certificate": b64(ca_pem)}})
    assert r.status_code == 200, r.text
    cur = r.json()
    # /status keeps the stored Approved condition whatever the writer sends for it
    r = api.put(f"{CSRS}/erin/status", json={**cur, "status": {**cur["status"], "conditions": [
        {"type": "Approved", "status": "True", "reason": "Changed"}, {"type": "Failed", "status": "True"}]}})
    assert r.status_code == 200, r.text
    assert [c.get("reason") for c in r.json()["status"]["conditions"]] == [None, None]
    cur = r.json()
    two = b64(ca_pem + ca_pem)
    r = api.put(f"{CSRS}/erin/status", json={**cur, "status": {**cur["status"], "certificate": two}})
    assert r.status_code == 422 and "updates may not modify existing certificate content" in r.json()["message"]
    # field selector on spec.signerName
    r = api.get(CSRS, params={"fieldSelector": "spec.signerName=example.com/erin-signer"})
    assert [i["metadata"]["name"] for i in r.json()["items"]] == ["erin"]
    # validation on create
    bad = csr_body("bad", b"nope", "no-slash", ["client auth", "client auth", "hover"], expirationSeconds=60)
    r = api.post(CSRS, json=bad)
    assert r.status_code == 422
    fields = sorted(c["field"] for c in r.json()["details"]["causes"])
    assert fields == ["spec.expirationSeconds", "spec.request", "spec.signerName", "spec.usages[1]", "spec.usages[2]"]
    legacy = csr_body("legacy", pem, csrlib.LEGACY_UNKNOWN, ["client auth"])
    r = api.post(CSRS, json=legacy)
    assert r.status_code == 422 and "the legacy signerName is not allowed via this API version" in r.json()["message"]


def test_signer_refuses_bad_kubelet_request(cp: ControlPlane, api: httpx.Client) -> None:
    pem, _ = new_csr("system:node:x", ["devs"])  # not system:nodes
    r = api.post(CSRS, json=csr_body("bad-kubelet", pem, csrlib.KUBE_APISERVER_CLIENT_KUBELET,
                                     ["digital signature", "client auth"]))
    assert r.status_code == 201, r.text
    cp.kubectl("certificate", "approve", "bad-kubelet")

    def failed() -> dict | None:
        obj = api.get(f"{CSRS}/bad-kubelet").json()
        return next((c for c in obj["status"].get("conditions", []) if c["type"] == "Failed"), None)

    cond = wait_for(failed, 30, 0.1, "the Failed condition")
    assert cond["reason"] == "SignerValidationFailure" and cond["message"] == "subject organization is not system:nodes"
    assert cp.kubectl("get", "csr", "bad-kubelet").stdout.split()[-1] == "Approved,Failed"
    # a kubelet-serving request with its SANs is signed with them
    pem2, _ = new_csr("system:node:x", ["system:nodes"], dns_names=["x.local"], ip_addresses=["10.1.2.3"])
    r = api.post(CSRS, json=csr_body("serving-x", pem2, csrlib.KUBELET_SERVING,
                                     ["digital signature", "server auth"]))
    assert r.status_code == 201, r.text
    cp.kubectl("certificate", "approve", "serving-x")
    csr = wait_for(lambda: issued(api, "serving-x"), 30, 0.1, "the serving certificate")
    cert = x509.load_pem_x509_certificate(base64.b64decode(csr["status"]["certificate"]))
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["x.local"]
    assert [str(i) for i in san.get_values_for_type(x509.IPAddress)] == ["10.1.2.3"]


def test_python_client_reads_csrs(cp: ControlPlane, api: httpx.Client) -> None:
    from kubernetes import client, config

    pem, _ = new_csr("frank", [])
    assert api.post(CSRS, json=csr_body("frank", pem, csrlib.KUBE_APISERVER_CLIENT, ["client auth"],
                                        expirationSeconds=86400)).status_code == 201
    k8s = config.new_client_from_config(str(cp.kubeconfig))
    try:
        certs_api = client.CertificatesV1Api(k8s)
        got = certs_api.read_certificate_signing_request("frank")
        assert got.spec.signer_name == csrlib.KUBE_APISERVER_CLIENT and got.spec.expiration_seconds == 86400
        assert got.spec.username == "kubernetes-admin"
        names = [i.metadata.name for i in certs_api.list_certificate_signing_request().items]
        assert "frank" in names
        got.status.conditions = [client.V1CertificateSigningRequestCondition(
            type="Approved", status="True", reason="PythonClient", message="approved from python")]
        out = certs_api.replace_certificate_signing_request_approval("frank", got)
        assert out.status.conditions[0].reason == "PythonClient"
        done = wait_for(lambda: certs_api.read_certificate_signing_request("frank").status.certificate, 30, 0.1,
                        "frank's certificate")
        assert b"BEGIN CERTIFICATE" in base64.b64decode(done)
    finally:
        k8s.close()
