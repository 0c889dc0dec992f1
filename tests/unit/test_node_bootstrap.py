"""Node TLS bootstrap pieces without a cluster: bootstrap tokens, cluster-info's JWS, CA pinning,
CSR building, the certificate store, rotation timing, the bootstrap signer's data."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from apimachinery.bootstraptoken import (
    BootstrapToken,
    ca_cert_hash,
    detached_signature,
    detached_signature_valid,
    generate_token,
    normalize_ca_hash,
    parse_token,
)
from certs import ensure_pki
from client.certificate import (
    CertificateManager,
    CertificateRequestError,
    CertificateStore,
    csr_object,
    digested_name,
    issued_certificate,
    kubelet_client_usages,
    make_csr,
    new_private_key,
    private_key_pem,
    rotation_deadline,
    split_pem,
)
from controller_manager.bootstrapsigner import signed_data, signing_tokens
from kubelet.bootstrap import (
    client_config_still_valid,
    ensure_self_signed_serving_cert,
    write_cert_kubeconfig,
)
from minictl.join import DiscoveryError, RetryableDiscoveryError, validate_cluster_info
from minictl.kubeadm import cluster_info_kubeconfig, join_rbac
from tests.conftest import until

# upstream's published vectors (k8s.io/cluster-bootstrap/token/jws tests)
JWS_CONTENT = "Hello from the other side. I must have called a thousand times."
JWS_ID, JWS_SECRET = "joshua", "my voice is my passcode"


# --- tokens -------------------------------------------------------------------------------------------


def test_generated_tokens_parse() -> None:
    token = generate_token()
    token_id, secret = parse_token(token)
    assert len(token_id) == 6 and len(secret) == 16 and token == f"{token_id}.{secret}"
    assert generate_token() != token
    for bad in ("abcdef", "ABCDEF.0123456789abcdef", "abcde.0123456789abcdef", "abcdef.0123456789abcde"):
        with pytest.raises(ValueError):
            parse_token(bad)


def test_token_secret_round_trip_as_kubeadm_writes_it() -> None:
    expires = dt.datetime(2030, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    bt = BootstrapToken("abcdef", "0123456789abcdef", "rack 3", expires)
    secret = bt.to_secret()
    assert secret["metadata"] == {"name": "bootstrap-token-abcdef", "namespace": "kube-system"}
    assert secret["type"] == "bootstrap.kubernetes.io/token"
    data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert data == {
        "token-id": "abcdef", "token-secret": "0123456789abcdef", "description": "rack 3",
        "expiration": "2030-01-02T03:04:05Z", "usage-bootstrap-signing": "true",
        "usage-bootstrap-authentication": "true",
        "auth-extra-groups": "system:bootstrappers:kubeadm:default-node-token",
    }
    back = BootstrapToken.from_secret(secret)
    assert back == bt
    assert not back.expired(dt.datetime(2029, 1, 1, tzinfo=dt.UTC)) and back.expired(expires)
    with pytest.raises(ValueError):
        BootstrapToken("abcdef", "0123456789abcdef", groups=("system:nodes",)).to_secret()
    with pytest.raises(ValueError):
        BootstrapToken("abcdef", "0123456789abcdef", usages=("everything",)).to_secret()
    assert BootstrapToken.from_secret({**secret, "type": "Opaque"}) is None


def test_detached_jws_matches_upstream_vectors() -> None:
    head = "eyJhbGciOiJIUzI1NiIsImtpZCI6Impvc2h1YSJ9.."
    assert detached_signature(JWS_CONTENT, JWS_ID, JWS_SECRET) == head + "VShe2taLd-YTrmWuRkcL_8QTNDHYxQIEBsAYYiIj1_8"
    assert detached_signature("", JWS_ID, JWS_SECRET) == head + "7Ui1ALizW4jXphVUB7xUqC9vLYLL9RZeOFfVLoB7Tgk"
    assert detached_signature(JWS_CONTENT, JWS_ID, "") == head + "UfkqvDGiIFxrMnFseDj9LYJOLNrvjW8aHhF71mvvAs8"
    sig = detached_signature(JWS_CONTENT, JWS_ID, JWS_SECRET)
    assert detached_signature_valid(sig, JWS_CONTENT, JWS_ID, JWS_SECRET)
    assert not detached_signature_valid(sig + "foo", JWS_CONTENT, JWS_ID, JWS_SECRET)
    assert not detached_signature_valid(sig, JWS_CONTENT + " ", JWS_ID, JWS_SECRET)


def _ca(tmp_path: Path) -> tuple[bytes, x509.Certificate]:
    pki = ensure_pki(tmp_path / "pki")
    pem = pki.ca_cert.read_bytes()
    return pem, x509.load_pem_x509_certificate(pem)


def test_ca_hash_is_sha256_of_the_subject_public_key_info(tmp_path: Path) -> None:
    import hashlib

    _, cert = _ca(tmp_path)
    spki = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert ca_cert_hash(cert) == "sha256:" + hashlib.sha256(spki).hexdigest()
    assert normalize_ca_hash(ca_cert_hash(cert).upper().replace("SHA256", "sha256")) == ca_cert_hash(cert)
    for bad in ("abc", "md5:" + "0" * 32, "sha256:xyz", "sha256:" + "0" * 63):
        with pytest.raises(ValueError):
            normalize_ca_hash(bad)


# --- discovery ------------------------------------------------------------------------------------------


def _cluster_info(ca_pem: bytes, tokens: dict[str, str]) -> dict[str, Any]:
    data = {"kubeconfig": cluster_info_kubeconfig("https://10.0.0.1:6443", ca_pem)}
    return {"data": signed_data(data, tokens)}


def test_discovery_accepts_signed_cluster_info_with_the_pinned_ca(tmp_path: Path) -> None:
    ca_pem, cert = _ca(tmp_path)
    cm = _cluster_info(ca_pem, {"abcdef": "0123456789abcdef", "zzzzzz": "zzzzzzzzzzzzzzzz"})
    info = validate_cluster_info(cm, "abcdef.0123456789abcdef", [ca_cert_hash(cert)])
    assert info.server == "https://10.0.0.1:6443" and info.ca_pem == ca_pem and info.ca_hash == ca_cert_hash(cert)
    # no hash: only with the explicit unsafe flag
    assert validate_cluster_info(cm, "abcdef.0123456789abcdef", [], unsafe_skip_ca_verification=True).ca_pem == ca_pem


def test_discovery_refuses_a_wrong_hash_a_wrong_secret_and_an_unsigned_token(tmp_path: Path) -> None:
    ca_pem, _ = _ca(tmp_path)
    cm = _cluster_info(ca_pem, {"abcdef": "0123456789abcdef"})
    with pytest.raises(DiscoveryError, match="matches none of the pinned public keys"):
        validate_cluster_info(cm, "abcdef.0123456789abcdef", ["sha256:" + "0" * 64])
    with pytest.raises(DiscoveryError, match="does not match the token"):
        validate_cluster_info(cm, "abcdef.aaaaaaaaaaaaaaaa", [], unsafe_skip_ca_verification=True)
    with pytest.raises(RetryableDiscoveryError, match="no JWS signed token"):
        validate_cluster_info(cm, "bbbbbb.0123456789abcdef", [], unsafe_skip_ca_verification=True)
    tampered = {"data": {**cm["data"], "kubeconfig": cm["data"]["kubeconfig"].replace("10.0.0.1", "10.6.6.6")}}
    with pytest.raises(DiscoveryError, match="does not match the token"):
        validate_cluster_info(tampered, "abcdef.0123456789abcdef", [], unsafe_skip_ca_verification=True)


def test_bootstrap_signer_keeps_one_signature_per_signing_token() -> None:
    now = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)

    def secret(token_id: str, **kw: Any) -> dict[str, Any]:
        return BootstrapToken(token_id, "0123456789abcdef", **kw).to_secret()

    secrets = [
        secret("aaaaaa"),
        secret("bbbbbb", expires=now - dt.timedelta(seconds=1)),  # expired
        secret("cccccc", usages=("authentication",)),  # not for signing
        secret("dddddd", expires=now + dt.timedelta(hours=1)),
    ]
    tokens, next_expiry = signing_tokens(secrets, now)
    assert tokens == {"aaaaaa": "0123456789abcdef", "dddddd": "0123456789abcdef"}
    assert next_expiry == now + dt.timedelta(hours=1)
    data = signed_data({"kubeconfig": "x", "jws-kubeconfig-bbbbbb": "stale"}, tokens)
    assert sorted(data) == ["jws-kubeconfig-aaaaaa", "jws-kubeconfig-dddddd", "kubeconfig"]
    assert data["jws-kubeconfig-aaaaaa"] == detached_signature("x", "aaaaaa", "0123456789abcdef")


def test_join_rbac_has_kubeadms_bindings() -> None:
    objs = {o["metadata"]["name"]: o for _, _, o in join_rbac()}
    group = "system:bootstrappers:kubeadm:default-node-token"
    assert objs["kubeadm:kubelet-bootstrap"]["roleRef"]["name"] == "system:node-bootstrapper"
    assert objs["kubeadm:kubelet-bootstrap"]["subjects"][0]["name"] == group
    assert objs["kubeadm:node-autoapprove-bootstrap"]["roleRef"]["name"].endswith(":nodeclient")
    assert objs["kubeadm:node-autoapprove-certificate-rotation"]["roleRef"]["name"].endswith(":selfnodeclient")
    assert objs["kubeadm:node-autoapprove-certificate-rotation"]["subjects"][0]["name"] == "system:nodes"
    role = next(o for _, _ns, o in join_rbac() if o["kind"] == "Role")
    assert role["metadata"]["namespace"] == "kube-public"
    assert role["rules"] == [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"],
                              "resourceNames": ["cluster-info"]}]


# --- CSRs -------------------------------------------------------------------------------------------------


def test_kubelet_client_csr_is_what_upstream_requests() -> None:
    key = new_private_key()
    assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"
    assert kubelet_client_usages(key) == ["digital signature", "client auth"]
    assert "key encipherment" in kubelet_client_usages(rsa.generate_private_key(65537, 2048))
    pem = make_csr(key, "system:node:n1", ["system:nodes"])
    req = x509.load_pem_x509_csr(pem)
    assert req.is_signature_valid
    assert req.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "system:node:n1"
    assert [a.value for a in req.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)] == ["system:nodes"]
    obj = csr_object(pem, "kubernetes.io/kube-apiserver-client-kubelet", ["digital signature", "client auth"],
                     name="node-csr-x")
    assert obj["apiVersion"] == "certificates.k8s.io/v1" and obj["metadata"] == {"name": "node-csr-x"}
    assert base64.b64decode(obj["spec"]["request"]) == pem
    assert "expirationSeconds" not in obj["spec"]
    assert csr_object(pem, "s", [], expiration_seconds=600)["metadata"] == {"generateName": "csr-"}


def test_digested_name_is_stable_per_key_and_subject() -> None:
    key, other = new_private_key(), new_private_key()
    usages = ["digital signature", "client auth"]
    a = digested_name(key.public_key(), "system:node:n1", ["system:nodes"], usages)
    assert a.startswith("node-csr-") and len(a) == len("node-csr-") + 43
    assert a == digested_name(key.public_key(), "system:node:n1", ["system:nodes"], usages)
    assert a != digested_name(other.public_key(), "system:node:n1", ["system:nodes"], usages)
    assert a != digested_name(key.public_key(), "system:node:n2", ["system:nodes"], usages)


def test_issued_certificate_reads_conditions() -> None:
    csr = {"metadata": {"name": "c", "uid": "u1"}, "status": {}}
    assert issued_certificate(csr, "u1") is None
    csr["status"] = {"conditions": [{"type": "Approved", "status": "True"}]}
    assert issued_certificate(csr, "u1") is None  # approved, not signed yet
    csr["status"]["certificate"] = base64.b64encode(b"PEM").decode()
    assert issued_certificate(csr, "u1") == b"PEM"
    with pytest.raises(CertificateRequestError, match="deleted and created again"):
        issued_certificate(csr, "u2")
    denied = {"metadata": {"name": "c", "uid": "u1"},
              "status": {"conditions": [{"type": "Denied", "status": "True", "reason": "NotMine", "message": "no"}]}}
    with pytest.raises(CertificateRequestError, match="was denied: reason NotMine"):
        issued_certificate(denied, "u1")
    failed = {"metadata": {"name": "c", "uid": "u1"}, "status": {"conditions": [{"type": "Failed", "status": "True"}]}}
    with pytest.raises(CertificateRequestError, match="failed"):
        issued_certificate(failed, "u1")


def test_manager_replaces_a_pair_from_outside_the_store_at_once(tmp_path: Path) -> None:
    key = new_private_key()
    now = dt.datetime.now(dt.UTC)
    fresh = (_self_signed(key, now, 10), private_key_pem(key))
    store = CertificateStore(tmp_path)
    # the kubeconfig's own pair, brand new: still rotated into the store at once (forceRotation)
    m = CertificateManager(_FakeAPI(_FakeCSRs(lambda req: b"")), store, "system:node:n1", ["system:nodes"],
                                 initial=fresh)
    assert m.seconds_until_rotation() == 0 and m.cert_pem == fresh[0]
    # once the store holds a valid pair, that one is used and renewed after 70-90 % of its life
    store.update(*fresh)
    m = CertificateManager(_FakeAPI(_FakeCSRs(lambda req: b"")), store, "system:node:n1", ["system:nodes"],
                                 initial=fresh)
    assert 7 * 86400 - 60 < m.seconds_until_rotation() <= 9 * 86400


# --- the certificate store and rotation -----------------------------------------------------------------


def _self_signed(key: ec.EllipticCurvePrivateKey, not_before: dt.datetime, days: float, cn: str = "system:node:n1") -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(not_before)
            .not_valid_after(not_before + dt.timedelta(days=days))
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM)


def test_store_keeps_cert_and_key_together_behind_a_symlink(tmp_path: Path) -> None:
    store = CertificateStore(tmp_path / "pki")
    assert store.load() is None
    key = new_private_key()
    now = dt.datetime.now(dt.UTC)
    path = store.update(_self_signed(key, now, 1), private_key_pem(key), now=now)
    assert path == tmp_path / "pki" / "kubelet-client-current.pem" and path.is_symlink()
    target = path.resolve()
    assert target.name.startswith("kubelet-client-") and target.stat().st_mode & 0o777 == 0o600
    cert, cert_pem, key_pem = store.load()
    assert b"CERTIFICATE" in cert_pem and b"PRIVATE KEY" in key_pem
    assert split_pem(path.read_bytes()) == (cert_pem, key_pem)
    key2 = new_private_key()
    store.update(_self_signed(key2, now, 2), private_key_pem(key2), now=now)  # same second: still a new file
    assert path.resolve() != target and target.exists()
    assert store.load()[0].not_valid_after_utc > cert.not_valid_after_utc
    # a pair whose key does not match its certificate is not "current"
    path.unlink()
    path.write_bytes(_self_signed(key, now, 1) + private_key_pem(key2))
    assert store.load() is None
    with pytest.raises(ValueError):
        store.update(b"garbage", private_key_pem(key))
    with pytest.raises(ValueError, match="not for this private key"):
        store.update(_self_signed(key, now, 1), private_key_pem(key2))


def test_rotation_deadline_is_70_to_90_percent_of_the_lifetime() -> None:
    key = new_private_key()
    start = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    cert = x509.load_pem_x509_certificate(_self_signed(key, start, 100))
    assert rotation_deadline(cert, lambda: 0.0) == start + dt.timedelta(days=70)
    assert rotation_deadline(cert, lambda: 1.0) == start + dt.timedelta(days=90)
    assert rotation_deadline(cert, lambda: 0.5) == start + dt.timedelta(days=80)


class _FakeCSRs:
    """Just enough of the certificates API: create → approved and signed by `sign`."""

    def __init__(self, sign: Any) -> None:
        self.sign = sign
        self.created: list[dict[str, Any]] = []

    async def create(self, obj: dict[str, Any], namespace: str | None = None) -> dict[str, Any]:
        self.created.append(obj)
        return {**obj, "metadata": {"name": f"csr-{len(self.created)}", "uid": f"u{len(self.created)}"}}

    async def list(self, field_selector: str | None = None, **kw: Any) -> dict[str, Any]:
        obj = self.created[-1]
        req = x509.load_pem_x509_csr(base64.b64decode(obj["spec"]["request"]))
        cert = base64.b64encode(self.sign(req)).decode()
        return {"metadata": {"resourceVersion": "1"}, "items": [{
            "metadata": {"name": f"csr-{len(self.created)}", "uid": f"u{len(self.created)}"},
            "status": {"conditions": [{"type": "Approved", "status": "True"}], "certificate": cert}}]}


class _FakeAPI:
    def __init__(self, csrs: _FakeCSRs) -> None:
        self.csrs = csrs

    def resource(self, api_version: str, plural: str) -> _FakeCSRs:
        assert (api_version, plural) == ("certificates.k8s.io/v1", "certificatesigningrequests")
        return self.csrs


def _ten_day_signer(now: dt.datetime, seen: list[x509.CertificateSigningRequest] | None = None) -> Any:
    """A CA that signs every request for ten days from `now` (and notes it in `seen`)."""
    ca_key = new_private_key()

    def sign(req: x509.CertificateSigningRequest) -> bytes:
        if seen is not None:
            seen.append(req)
        cert = (x509.CertificateBuilder().subject_name(req.subject)
                .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ca")]))
                .public_key(req.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now).not_valid_after(now + dt.timedelta(days=10)).sign(ca_key, hashes.SHA256()))
        return cert.public_bytes(serialization.Encoding.PEM)

    return sign


async def _run_until(manager: CertificateManager, done: Any, what: str) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(manager.run(stop))
    await until(done, 5, what)
    stop.set()
    await asyncio.wait_for(task, 5)


def test_manager_rotates_with_a_new_key_and_hands_the_pair_over(tmp_path: Path) -> None:
    now = dt.datetime.now(dt.UTC)
    key = new_private_key()
    old = _self_signed(key, now - dt.timedelta(days=9), 10)  # 90 % gone: due now
    csrs = _FakeCSRs(_ten_day_signer(now))
    handed: list[tuple[bytes, bytes]] = []

    async def on_rotated(cert: bytes, key_pem: bytes) -> None:
        handed.append((cert, key_pem))

    store = CertificateStore(tmp_path)
    m = CertificateManager(_FakeAPI(csrs), store, "system:node:n1", ["system:nodes"],
                                 on_rotated=on_rotated, initial=(old, private_key_pem(key)))
    assert m.seconds_until_rotation() == 0

    asyncio.run(_run_until(m, lambda: handed, "the rotated pair to be handed over"))
    assert m.rotations == 1 and len(csrs.created) == 1
    spec = csrs.created[0]["spec"]
    assert spec["signerName"] == "kubernetes.io/kube-apiserver-client-kubelet"
    assert spec["usages"] == ["digital signature", "client auth"]
    _cert, cert_pem, key_pem = store.load()
    assert handed == [(cert_pem, key_pem)]
    assert key_pem != private_key_pem(key)  # a new key every rotation
    assert m.seconds_until_rotation() > 6 * 86400  # next one after 70 % of 10 days


def test_a_serving_manager_with_an_empty_store_requests_one_at_once(tmp_path: Path) -> None:
    from client.certificate import kubelet_serving_usages

    requests: list[x509.CertificateSigningRequest] = []
    csrs = _FakeCSRs(_ten_day_signer(dt.datetime.now(dt.UTC), requests))
    store = CertificateStore(tmp_path, "kubelet-server")
    with pytest.raises(ValueError, match="no client certificate"):  # a client manager needs a pair
        CertificateManager(_FakeAPI(csrs), store, "system:node:n1", ["system:nodes"])
    handed: list[bytes] = []

    async def on_rotated(cert: bytes, _key: bytes) -> None:
        handed.append(cert)

    m = CertificateManager(_FakeAPI(csrs), store, "system:node:n1", ["system:nodes"],
                                 signer_name="kubernetes.io/kubelet-serving", usages=kubelet_serving_usages,
                                 dns_names=["n1"], ip_addresses=["10.0.0.5"], request_at_once=True,
                                 on_rotated=on_rotated)
    assert m.cert is None and m.seconds_until_rotation() == 0

    asyncio.run(_run_until(m, lambda: handed, "the first serving certificate"))
    spec = csrs.created[0]["spec"]
    assert spec["signerName"] == "kubernetes.io/kubelet-serving"
    assert spec["usages"] == ["digital signature", "server auth"]
    sans = requests[0].extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["n1"]
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["10.0.0.5"]
    assert store.current_path.name == "kubelet-server-current.pem" and store.load() is not None
    assert m.seconds_until_rotation() > 6 * 86400


# --- the kubelet's files ------------------------------------------------------------------------------------


def test_kubeconfig_validity_and_the_store_kubeconfig(tmp_path: Path) -> None:
    kc = tmp_path / "kubelet.kubeconfig"
    assert client_config_still_valid(kc) == (False, f"{kc} does not exist")
    store = CertificateStore(tmp_path / "pki")
    key = new_private_key()
    now = dt.datetime.now(dt.UTC)
    store.update(_self_signed(key, now - dt.timedelta(days=2), 1), private_key_pem(key))  # expired
    write_cert_kubeconfig(kc, "https://10.0.0.1:6443", b"CA", store.current_path)
    cfg = yaml.safe_load(kc.read_text())
    assert cfg["users"][0]["user"] == {"client-certificate": str(store.current_path),
                                       "client-key": str(store.current_path)}
    assert kc.stat().st_mode & 0o777 == 0o600
    ok, why = client_config_still_valid(kc)
    assert not ok and "expired" in why
    store.update(_self_signed(key, now, 1), private_key_pem(key))
    assert client_config_still_valid(kc) == (True, "")


def test_self_signed_serving_cert_is_made_once(tmp_path: Path) -> None:
    crt, key = ensure_self_signed_serving_cert(tmp_path / "pki", "n1", ["10.0.0.5"])
    cert = x509.load_pem_x509_certificate(crt.read_bytes())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "n1" in sans.get_values_for_type(x509.DNSName)
    assert [str(a) for a in sans.get_values_for_type(x509.IPAddress)] == ["10.0.0.5"]
    before = crt.read_bytes()
    assert ensure_self_signed_serving_cert(tmp_path / "pki", "n1", ["10.0.0.6"]) == (crt, key)
    assert crt.read_bytes() == before


# --- a joined worker's plan ------------------------------------------------------------------------------


def test_a_worker_runs_the_node_components_with_a_bootstrap_kubeconfig(tmp_path: Path) -> None:
    from minictl.components import ClusterConfig, apiserver_command, plan

    cfg = ClusterConfig(str(tmp_path), with_node=True, join_server="https://10.0.0.1:6443", node_name="w1",
                        bind_address="10.0.0.2", advertise_address="10.0.0.2")
    assert cfg.server_url == cfg.public_server_url == "https://10.0.0.1:6443"
    specs = {s.name: s for s in plan(cfg)}
    assert list(specs) == ["containerd", "kubelet", "kube-proxy"]
    kubelet = specs["kubelet"].cmd
    flag = {kubelet[i]: kubelet[i + 1] for i in range(len(kubelet) - 1) if kubelet[i].startswith("--")}
    assert flag["--bootstrap-kubeconfig"] == str(tmp_path / "kubeconfigs" / "bootstrap-kubelet.kubeconfig")
    assert flag["--kubeconfig"] == str(tmp_path / "kubeconfigs" / "kubelet.kubeconfig")
    assert flag["--cert-dir"] == str(tmp_path / "kubelet" / "pki")
    assert "--tls-cert-file" not in flag and flag["--node-ip"] == "10.0.0.2"
    assert flag["--rotate-server-certificates"] == "true"  # its serving certificate from the cluster CA
    proxy = specs["kube-proxy"].cmd
    assert proxy[proxy.index("--kubeconfig") + 1] == flag["--kubeconfig"]
    # a control plane: anonymous requests only when asked (cluster up asks for new clusters)
    cp = ClusterConfig(str(tmp_path / "cp"), advertise_address="10.0.0.1")
    assert "--anonymous-auth" not in apiserver_command(cp)
    cp.anonymous_auth = True
    assert "--anonymous-auth" in apiserver_command(cp)
    assert cp.public_server_url == "https://10.0.0.1:6443"


def test_a_client_follows_its_kubeconfigs_certificate_file(tmp_path: Path) -> None:
    """kube-proxy on a joined node shares the kubelet's certificate: a renewal is picked up by
    any APIClient made from a kubeconfig that names the certificate file."""
    from client import APIClient
    from client.config import from_kubeconfig

    store = CertificateStore(tmp_path / "pki")
    now = dt.datetime.now(dt.UTC)
    key = new_private_key()
    store.update(_self_signed(key, now, 1), private_key_pem(key), now=now)
    kc = write_cert_kubeconfig(tmp_path / "kubelet.kubeconfig", "https://127.0.0.1:6443", None, store.current_path)
    config = from_kubeconfig(kc, certificate_reload_interval=0.01)
    assert config.kubeconfig_path == kc

    async def scenario() -> None:
        async with APIClient(config) as api:
            resets: list[int] = []
            api.reset_connections = lambda: resets.append(1)  # type: ignore[method-assign]
            await asyncio.sleep(0.05)  # several rereads of an unchanged file
            assert resets == []
            key2 = new_private_key()
            renewed = _self_signed(key2, now, 2)
            store.update(renewed, private_key_pem(key2), now=now)
            await until(lambda: resets == [1], 5, "the renewed certificate loaded")
            assert renewed in api._client_cert_pem  # the store file: certificate and key
            # the kubelet hands its rotated pair over itself (certificate and key apart): the
            # follower, reading the same pair from the combined store file, must not reset again
            key3 = new_private_key()
            rotated = _self_signed(key3, now, 3)
            store.update(rotated, private_key_pem(key3), now=now)
            api.use_client_certificate(rotated, private_key_pem(key3))
            assert resets == [1, 1]
            await asyncio.sleep(0.05)  # several rereads of the store file
            assert resets == [1, 1]

    asyncio.run(scenario())
