"""CertificateSigningRequest pieces without a server: validation and the strategy's subresource
rules (apiserver.registry.certificates), the signers' rules and signing (certs.csr), the csr
controllers' decisions, the printer and the protobuf form."""

from __future__ import annotations

import base64
import copy
import datetime as dt
import re
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from apimachinery import protobuf as pbuf
from apiserver.authn import UserInfo
from apiserver.registry.certificates import CertificateSigningRequestStrategy, condition_text, csr_row
from certs import csr as csrlib
from controller_manager.certificates_approving import is_node_client_cert, is_self_node_client_cert
from controller_manager.certificates_cleaner import cleanup_deadline
from controller_manager.certificates_signing import signers_from_options


def new_csr(cn: str, orgs: Any = (), **sans: Any) -> tuple[bytes, Any]:
    """(CSR PEM, its new key)."""
    key = csrlib.new_private_key()
    return csrlib.make_csr(key, cn, orgs, **sans), key


ST = CertificateSigningRequestStrategy()
T0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def csr(name: str = "x", cn: str = "system:node:n1", orgs: tuple[str, ...] = ("system:nodes",),
        signer: str = csrlib.KUBE_APISERVER_CLIENT_KUBELET, usages: tuple[str, ...] = ("digital signature", "client auth"),
        **spec) -> dict:
    pem, _ = new_csr(cn, orgs, **{k: spec.pop(k) for k in ("dns_names", "ip_addresses") if k in spec})
    return {"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
            "metadata": {"name": name, "creationTimestamp": "2024-01-01T00:00:00Z", "resourceVersion": "1"},
            "spec": {"request": b64(pem), "signerName": signer, "usages": list(usages), **spec}}


def created(obj: dict, user: UserInfo | None = None) -> dict:
    ST.prepare_for_create(obj)
    ST.prepare_for_create_by(obj, user or UserInfo("u", "uid-1", ("g",), {"k": ("v",)}))
    ST.default(obj)
    return obj


def fields(causes: list[dict]) -> list[str]:
    return sorted(c["field"] for c in causes)


# -- create ----------------------------------------------------------------------------------

def test_create_sets_requestor_and_clears_status() -> None:
    obj = csr(username="evil", groups=["system:masters"])
    obj["status"] = {"conditions": [{"type": "Approved"}], "certificate": "eA=="}
    created(obj)
    assert obj["status"] == {}
    assert obj["spec"]["username"] == "u" and obj["spec"]["uid"] == "uid-1"
    assert obj["spec"]["groups"] == ["g"] and obj["spec"]["extra"] == {"k": ["v"]}
    assert ST.validate(obj, False) == []


def test_create_validation() -> None:
    obj = csr(usages=("client auth", "client auth", "flying"), expirationSeconds=599)
    obj["spec"]["signerName"] = "example.com"
    obj["spec"]["request"] = b64(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    causes = ST.validate(obj, False)
    assert fields(causes) == ["spec.expirationSeconds", "spec.request", "spec.signerName", "spec.usages[1]",
                              "spec.usages[2]"]
    msgs = {c["field"]: c["message"] for c in causes}
    assert msgs["spec.request"].endswith("PEM block type must be CERTIFICATE REQUEST")
    assert "may not specify a duration less than 600 seconds (10 minutes)" in msgs["spec.expirationSeconds"]
    assert msgs["spec.usages[1]"] == 'Duplicate value: "client auth"'
    assert "must be a fully qualified domain and path of the form 'example.com/signer-name'" in msgs["spec.signerName"]


@pytest.mark.parametrize(("signer", "ok"), [
    ("example.com/a", True), ("a.b.c/d.e-f", True), ("example/a", False), ("Example.com/a", False),
    ("example.com/a/b", False), ("", False),
])
def test_signer_names(signer: str, ok: bool) -> None:
    obj = csr()
    obj["spec"]["signerName"] = signer
    assert (ST.validate(obj, False) == []) is ok


def test_request_signature_is_checked() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    req = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "a")])).sign(key, hashes.SHA256()))
    der = bytearray(req.public_bytes(serialization.Encoding.DER))
    der[-5] ^= 0xFF  # break the signature
    pem = b"-----BEGIN CERTIFICATE REQUEST-----\n" + base64.encodebytes(bytes(der)) + b"-----END CERTIFICATE REQUEST-----\n"
    obj = csr()
    obj["spec"]["request"] = b64(pem)
    assert fields(ST.validate(obj, False)) == ["spec.request"]


def test_legacy_signer_only_when_stored() -> None:
    obj = created(csr(signer=csrlib.LEGACY_UNKNOWN))
    assert "the legacy signerName is not allowed via this API version" in ST.validate(obj, False)[0]["message"]
    assert ST.validate_update(copy.deepcopy(obj), obj, False) == []


# -- updates ---------------------------------------------------------------------------------

def test_main_update_keeps_spec_and_status() -> None:
    old = created(csr())
    new = copy.deepcopy(old)
    new["spec"]["signerName"] = "example.com/x"
    new["status"] = {"conditions": [{"type": "Approved", "status": "True"}]}
    ST.prepare_for_update(new, old)
    assert new["spec"] == old["spec"] and new["status"] == {}


def test_status_update_preserves_approval_and_sets_certificate_once() -> None:
    old = created(csr())
    old["status"] = {"conditions": [{"type": "Approved", "status": "True", "reason": "R",
                                     "lastUpdateTime": "2024-01-01T00:00:00Z",
                                     "lastTransitionTime": "2024-01-01T00:00:00Z"}]}
    new = copy.deepcopy(old)
    new["status"]["conditions"][0]["reason"] = "Changed"
    new["status"]["conditions"].append({"type": "Failed", "reason": "Oops"})
    merged = ST.prepare_for_status_update(new, old)
    assert merged["status"]["conditions"][0]["reason"] == "R"
    failed = merged["status"]["conditions"][1]
    assert failed["status"] == "True" and failed["lastUpdateTime"] and failed["lastTransitionTime"]
    assert ST.validate_status_update(merged, old) == []
    # adding Approved/Denied through /status is refused
    new2 = copy.deepcopy(old)
    new2["status"]["conditions"].append({"type": "Denied", "status": "True"})
    merged2 = ST.prepare_for_status_update(new2, old)
    msgs = [c["message"] for c in ST.validate_status_update(merged2, old)]
    assert 'Forbidden: updates may not add a condition of type "Denied"' in msgs
    # removing Approved is refused
    merged3 = ST.prepare_for_status_update({**old, "status": {}}, old)
    assert any('may not remove a condition of type "Approved"' in c["message"]
               for c in ST.validate_status_update(merged3, old))


def test_certificate_rules() -> None:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "ca")])
    ca = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(ca_key.public_key())
          .serial_number(1).not_valid_before(T0).not_valid_after(T0 + dt.timedelta(days=3650))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True).sign(ca_key, hashes.SHA256()))
    pem = ca.public_bytes(serialization.Encoding.PEM)
    assert csrlib.validate_certificate_pem(b"text before\n" + pem + b"after") is None
    assert csrlib.validate_certificate_pem(b"nothing") == "must contain at least one CERTIFICATE PEM block"
    key_pem = ca_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption())
    assert csrlib.validate_certificate_pem(key_pem) == 'only CERTIFICATE PEM blocks are allowed, found "PRIVATE KEY"'
    with_headers = pem.replace(b"-----\n", b"-----\nProc-Type: 4,ENCRYPTED\n\n", 1)
    assert csrlib.validate_certificate_pem(with_headers) == "no PEM block headers are permitted"

    old = created(csr())
    new = copy.deepcopy(old)
    new["status"] = {"certificate": b64(pem)}
    # only /status may set it ...
    assert [c["message"] for c in ST.validate_update(new, old, False)] == [
        "Forbidden: updates may not set certificate content"]
    assert ST.validate_status_update(new, old) == []
    # ... once
    newer = copy.deepcopy(new)
    newer["status"]["certificate"] = b64(pem + pem)
    assert [c["message"] for c in ST.validate_status_update(newer, new)] == [
        "Forbidden: updates may not modify existing certificate content"]
    # /approval keeps the stored certificate
    merged = ST.prepare_for_subresource_update("approval", {**new, "status": {"conditions": [{"type": "Approved"}]}}, new)
    assert merged["status"]["certificate"] == new["status"]["certificate"]
    assert merged["status"]["conditions"][0]["status"] == "True"


def test_approval_update() -> None:
    old = created(csr())
    new = copy.deepcopy(old)
    new["spec"]["usages"] = ["server auth"]
    new["status"] = {"conditions": [{"type": "Approved", "status": "True"}], "certificate": "eA=="}
    merged = ST.prepare_for_subresource_update("approval", new, old)
    assert merged["spec"] == old["spec"] and "certificate" not in merged["status"]
    assert ST.validate_subresource_update("approval", merged, old, False) == []
    both = copy.deepcopy(merged)
    both["status"]["conditions"].append({"type": "Denied", "status": "True"})
    assert any("mutually exclusive" in c["message"] for c in ST.validate_subresource_update("approval", both, merged, False))
    bad = copy.deepcopy(old)
    bad["status"] = {"conditions": [{"type": "Approved", "status": "False"}]}
    merged = ST.prepare_for_subresource_update("approval", bad, old)
    assert fields(ST.validate_subresource_update("approval", merged, old, False)) == ["status.conditions[0].status"]


# -- printing and protobuf -------------------------------------------------------------------

def test_condition_text_and_row() -> None:
    obj = created(csr(expirationSeconds=3600))
    assert condition_text(obj) == "Pending"
    obj["status"] = {"conditions": [{"type": "Approved"}, {"type": "Failed"}]}
    assert condition_text(obj) == "Approved,Failed"
    obj["status"] = {"conditions": [{"type": "Approved"}, {"type": "Denied"}], "certificate": "eA=="}
    assert condition_text(obj) == "Denied,Issued"
    row = csr_row(obj, T0 + dt.timedelta(minutes=3))
    assert row == ["x", "3m", csrlib.KUBE_APISERVER_CLIENT_KUBELET, "u", "60m", "Denied,Issued"]


def test_protobuf_round_trip() -> None:
    obj = created(csr(expirationSeconds=600))
    obj["metadata"]["uid"] = "1"
    obj["status"] = {"conditions": [{"type": "Approved", "status": "True", "reason": "R",
                                     "lastUpdateTime": "2024-01-01T00:00:00Z",
                                     "lastTransitionTime": "2024-01-01T00:00:00Z"}],
                     "certificate": b64(b"cert")}
    assert pbuf.decode(pbuf.encode(obj)) == obj


# -- signers ---------------------------------------------------------------------------------

def req_of(obj: dict) -> x509.CertificateSigningRequest:
    return csrlib.request_of(obj)


def test_kubelet_client_rules() -> None:
    ok = csr()
    assert csrlib.validate_kubelet_client_csr(req_of(ok), ok["spec"]["usages"]) is None
    rsa_usages = ["digital signature", "key encipherment", "client auth"]
    assert csrlib.validate_kubelet_client_csr(req_of(ok), rsa_usages) is None
    assert csrlib.validate_kubelet_client_csr(req_of(ok), ["client auth"]) == \
        "usages did not match [client auth digital signature key encipherment]"
    assert csrlib.validate_kubelet_client_csr(req_of(csr(orgs=("x",))), ["client auth"]) == \
        "subject organization is not system:nodes"
    assert csrlib.validate_kubelet_client_csr(req_of(csr(cn="n1")), ok["spec"]["usages"]) == \
        "subject common name does not begin with system:node:"
    assert csrlib.validate_kubelet_client_csr(req_of(csr(dns_names=["a"])), ok["spec"]["usages"]) == \
        "DNS subjectAltNames are not allowed"


def test_kubelet_serving_and_apiserver_client_rules() -> None:
    usages = ["digital signature", "server auth"]
    assert csrlib.validate_kubelet_serving_csr(req_of(csr(ip_addresses=["10.0.0.1"])), usages) is None
    assert csrlib.validate_kubelet_serving_csr(req_of(csr()), usages) == "DNS or IP subjectAltName is required"
    assert csrlib.validate_apiserver_client_usages(["client auth", "digital signature"]) is None
    assert csrlib.validate_apiserver_client_usages(["server auth", "client auth"]) == \
        "invalid usage for client certificate: server auth"
    assert csrlib.validate_apiserver_client_usages(["digital signature"]) == \
        "missing required usage for client certificate: client auth"


def test_auto_approval_recognizers() -> None:
    obj = csr()
    req = req_of(obj)
    assert is_node_client_cert(obj, req) and not is_self_node_client_cert(obj, req)
    obj["spec"]["username"] = "system:node:n1"
    assert is_self_node_client_cert(obj, req)
    serving = csr(signer=csrlib.KUBELET_SERVING)
    assert not is_node_client_cert(serving, req_of(serving))


def test_a_node_cannot_ask_for_another_nodes_name() -> None:
    """Two CNs: the approver, the signer and the authenticator must not disagree on who it is."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(x509.NameOID.ORGANIZATION_NAME, "system:nodes"),
                         x509.NameAttribute(x509.NameOID.COMMON_NAME, "system:node:attacker"),
                         x509.NameAttribute(x509.NameOID.COMMON_NAME, "system:node:victim")])
    req = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
    obj = csr()
    obj["spec"].update(request=b64(req.public_bytes(serialization.Encoding.PEM)), username="system:node:attacker")
    assert csrlib.common_name(req) == "system:node:victim"  # Go's pkix.Name: the last one
    usages = obj["spec"]["usages"]
    assert csrlib.validate_kubelet_client_csr(req, usages) == "subject has more than one common name"
    assert not is_self_node_client_cert(obj, req) and not is_node_client_cert(obj, req)
    serving = ["digital signature", "server auth"]
    assert csrlib.validate_kubelet_serving_csr(req, serving) == "subject has more than one common name"
    # the authenticator reads the same (last) CN as the approver, as upstream's x509 authenticator
    from apiserver.authn import user_from_peercert

    two = {"subject": ((("organizationName", "system:nodes"),), (("commonName", "system:node:a"),),
                       (("commonName", "system:node:b"),))}
    assert user_from_peercert(two) == UserInfo("system:node:b", "", ("system:nodes",))
    one = {"subject": ((("organizationName", "system:nodes"),), (("commonName", "system:node:a"),))}
    assert user_from_peercert(one) == UserInfo("system:node:a", "", ("system:nodes",))


def _ca(days: int = 3650) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "ca")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(T0 - dt.timedelta(days=1)).not_valid_after(T0 + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    return cert, key


def test_sign_lifetimes_and_usages() -> None:
    ca, key = _ca()
    req = req_of(csr(dns_names=["n1.local"]))
    pem = csrlib.sign(req, ["digital signature", "key encipherment", "server auth"], ca, key,
                      dt.timedelta(days=365), T0)
    cert = x509.load_pem_x509_certificate(pem)
    assert cert.not_valid_before_utc == T0 - dt.timedelta(minutes=5)
    assert cert.not_valid_after_utc == T0 + dt.timedelta(days=365) - dt.timedelta(minutes=5)
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ku.digital_signature and ku.key_encipherment and not ku.key_cert_sign
    assert list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        x509.ExtendedKeyUsageOID.SERVER_AUTH]
    assert cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.DNSName) == ["n1.local"]
    assert cert.subject == req.subject and cert.issuer == ca.subject
    # short-lived: NotAfter not backdated
    short = x509.load_pem_x509_certificate(csrlib.sign(req, ["client auth"], ca, key, dt.timedelta(hours=1), T0))
    assert short.not_valid_after_utc == T0 + dt.timedelta(hours=1)
    # capped at the CA's NotAfter
    small_ca, small_key = _ca(days=10)
    capped = x509.load_pem_x509_certificate(csrlib.sign(req, ["client auth"], small_ca, small_key,
                                                        dt.timedelta(days=365), T0))
    assert capped.not_valid_after_utc == small_ca.not_valid_after_utc


def test_duration_for() -> None:
    year = dt.timedelta(days=365)
    assert csrlib.duration_for(None, year) == year
    assert csrlib.duration_for(3600, year) == dt.timedelta(hours=1)
    assert csrlib.duration_for(10**9, year) == year
    assert csrlib.duration_for(60, year) == dt.timedelta(minutes=10)


def test_signer_flags() -> None:
    from controller_manager.base import ControllerManagerOptions as Options

    none = Options()
    assert signers_from_options(none) == {}
    ca = {"cluster_signing_cert_file": "ca.crt", "cluster_signing_key_file": "ca.key"}
    assert sorted(signers_from_options(Options(**ca))) == sorted(csrlib.KNOWN_SIGNERS)
    serving = {"cluster_signing_kubelet_serving_cert_file": "s.crt", "cluster_signing_kubelet_serving_key_file": "s.key"}
    assert list(signers_from_options(Options(**serving))) == [csrlib.KUBELET_SERVING]
    with pytest.raises(ValueError, match="at the same time"):
        signers_from_options(Options(**ca, **serving))
    with pytest.raises(ValueError, match="must be given together"):
        signers_from_options(Options(cluster_signing_cert_file="ca.crt"))


# -- cleaner ---------------------------------------------------------------------------------

def test_cleanup_deadlines() -> None:
    obj = created(csr())
    assert cleanup_deadline(obj) == T0 + dt.timedelta(hours=24)  # pending
    obj["status"] = {"conditions": [{"type": "Denied", "status": "True", "lastUpdateTime": "2024-01-02T00:00:00Z"}]}
    assert cleanup_deadline(obj) == dt.datetime(2024, 1, 2, 1, tzinfo=dt.UTC)
    obj["status"] = {"conditions": [{"type": "Approved", "status": "True", "lastUpdateTime": "2024-01-02T00:00:00Z"}]}
    assert cleanup_deadline(obj) is None  # approved, not issued yet: kept
    ca, key = _ca()
    short = csrlib.sign(req_of(obj), ["client auth"], ca, key, dt.timedelta(minutes=30), T0)
    obj["status"]["certificate"] = b64(short)
    assert cleanup_deadline(obj) == T0 + dt.timedelta(minutes=30)  # expired before the hour is up
    obj["status"]["certificate"] = b64(csrlib.sign(req_of(obj), ["client auth"], ca, key, dt.timedelta(days=3), T0))
    assert cleanup_deadline(obj) == dt.datetime(2024, 1, 2, 1, tzinfo=dt.UTC)


def _serving(cn: str = "system:node:n1", username: str = "system:node:n1", groups: tuple[str, ...] = (
        "system:nodes", "system:authenticated"), **sans: Any) -> dict:
    sans = sans or {"dns_names": ["n1"], "ip_addresses": ["10.0.0.5"]}
    return csr(cn=cn, signer=csrlib.KUBELET_SERVING, usages=("digital signature", "server auth"),
               username=username, groups=list(groups), **sans)


NODE_N1 = {"metadata": {"name": "n1"}, "status": {"addresses": [
    {"type": "InternalIP", "address": "10.0.0.5"}, {"type": "Hostname", "address": "n1-host"}]}}


def test_kubelet_serving_approver_takes_only_the_nodes_own_names() -> None:
    from controller_manager.kubelet_serving_approver import NotYet, refusal

    ok = _serving(dns_names=["n1", "n1-host"], ip_addresses=["10.0.0.5"])
    assert refusal(ok, req_of(ok), NODE_N1) is None
    # the node may still register or report the address: retried, not dropped
    for obj, node, why in [
        (_serving(ip_addresses=["10.0.0.99"]), NODE_N1, "names ['10.0.0.99'] are not the node's name or addresses"),
        (_serving(dns_names=["kubernetes.default"]), NODE_N1,
         "names ['kubernetes.default'] are not the node's name or addresses"),
        (_serving(), None, "node 'n1' does not exist"),
    ]:
        with pytest.raises(NotYet, match=re.escape(why)):
            refusal(obj, req_of(obj), node)
    cases = [
        (_serving(username="system:node:n2"), NODE_N1, "requested by 'system:node:n2', not by the node 'system:node:n1' itself"),
        (_serving(groups=("system:authenticated",)), NODE_N1, "not by the node"),
        (_serving(cn="n1", username="n1"), NODE_N1, "subject common name does not begin with system:node:"),
    ]
    for obj, node, why in cases:
        assert why in (refusal(obj, req_of(obj), node) or ""), (obj["spec"], why)
    client_usages = _serving()
    client_usages["spec"]["usages"] = ["digital signature", "client auth"]
    assert "usages did not match" in refusal(client_usages, req_of(client_usages), NODE_N1)
