"""The cluster PKI: one CA, serving and client certificates, the ServiceAccount key pair.

Everything lives flat in one directory (``<name>.crt`` / ``<name>.key``), like kubeadm's
``/etc/kubernetes/pki``. ``ensure_pki`` is idempotent: it only creates what is missing and
re-issues a leaf certificate (keeping its key) when it is expired or about to expire, when
its subject or SANs no longer match what is asked for, or when it no longer chains to the CA.

Key types: ECDSA P-256 for the CA and every TLS leaf. Generation is instant (RSA 2048 takes
~50 ms a key), handshakes are cheaper, and it is what kubeadm offers as
``encryptionAlgorithm: ECDSA-P256``; Python's ssl (OpenSSL), Go's crypto/tls (kubectl, etcd
3.5) and the kubernetes Python client all accept it — the tests prove each one. The
ServiceAccount signing key is RSA 2048 because tokens are signed RS256, as upstream does.
"""

from __future__ import annotations

import datetime
import fcntl
import ipaddress
import itertools
import json
import os
import secrets
import shutil
import socket
import subprocess
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from certs.csr import common_name, subject_values

CA_COMMON_NAME = "minik8s-ca"
CA_VALIDITY_DAYS = 3650
SERVICE_ACCOUNT_KEY_BITS = 2048
# The first address of the service CIDR: the ClusterIP of the `kubernetes` service.
KUBERNETES_SERVICE_IP = "10.96.0.1"
KUBERNETES_SERVICE_NAMES = (
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)
# A leaf is re-issued when less than this is left (or a third of its lifetime, if shorter).
RENEW_BEFORE = datetime.timedelta(days=30)
# Backdating covers clock skew between machines of one cluster.
CLOCK_SKEW = datetime.timedelta(minutes=5)
ROTATE_HINT = "run `minictl certs rotate`"
# The aggregator's own CA and client identity (kubeadm's front-proxy-ca / front-proxy-client): a
# separate CA, because a certificate it signed may assert any user to an extension apiserver.
FRONT_PROXY_CA = "front-proxy-ca"
FRONT_PROXY_CLIENT = "front-proxy-client"

# Fixed client identities: file name -> (common name, organizations).
CLIENT_IDENTITIES: dict[str, tuple[str, tuple[str, ...]]] = {
    "admin": ("kubernetes-admin", ("system:masters",)),
    "kube-scheduler": ("system:kube-scheduler", ()),
    "kube-controller-manager": ("system:kube-controller-manager", ()),
    "kube-proxy": ("system:kube-proxy", ()),
    "apiserver-kubelet-client": ("kube-apiserver-kubelet-client", ("system:masters",)),
    "apiserver-etcd-client": ("kube-apiserver-etcd-client", ()),
}

SERVER_AUTH = (ExtendedKeyUsageOID.SERVER_AUTH,)
CLIENT_AUTH = (ExtendedKeyUsageOID.CLIENT_AUTH,)
# etcd's certificates serve and also dial: peers connect to each other, and etcd's own
# grpc-gateway connects back to the member presenting the serving certificate.
SERVER_AND_CLIENT_AUTH = (ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH)


class PKIError(RuntimeError):
    """The PKI directory holds something we cannot use (unreadable key, missing CA key...)."""


def _utcnow() -> datetime.datetime:
    """The clock used to issue and check certificates; tests patch it to make old certificates."""
    return datetime.datetime.now(datetime.UTC)


# ---------------------------------------------------------------------------------------------
# Paths


@dataclass(frozen=True)
class PKI:
    """Paths of the files in one PKI directory. Constructing it touches no file."""

    dir: Path

    def cert(self, name: str) -> Path:
        return self.dir / f"{name}.crt"

    def key(self, name: str) -> Path:
        return self.dir / f"{name}.key"

    @property
    def ca_cert(self) -> Path:
        return self.cert("ca")

    @property
    def ca_key(self) -> Path:
        return self.key("ca")

    @property
    def apiserver_cert(self) -> Path:
        return self.cert("apiserver")

    @property
    def apiserver_key(self) -> Path:
        return self.key("apiserver")

    @property
    def etcd_server_cert(self) -> Path:
        return self.cert("etcd-server")

    @property
    def etcd_server_key(self) -> Path:
        return self.key("etcd-server")

    @property
    def etcd_peer_cert(self) -> Path:
        return self.cert("etcd-peer")

    @property
    def etcd_peer_key(self) -> Path:
        return self.key("etcd-peer")

    @property
    def apiserver_etcd_client_cert(self) -> Path:
        return self.cert("apiserver-etcd-client")

    @property
    def apiserver_etcd_client_key(self) -> Path:
        return self.key("apiserver-etcd-client")

    @property
    def apiserver_kubelet_client_cert(self) -> Path:
        return self.cert("apiserver-kubelet-client")

    @property
    def apiserver_kubelet_client_key(self) -> Path:
        return self.key("apiserver-kubelet-client")

    @property
    def front_proxy_ca_cert(self) -> Path:
        return self.cert(FRONT_PROXY_CA)

    @property
    def front_proxy_client(self) -> tuple[Path, Path]:
        """(cert, key) the apiserver's aggregator presents to extension apiservers."""
        return self.cert(FRONT_PROXY_CLIENT), self.key(FRONT_PROXY_CLIENT)

    @property
    def sa_key(self) -> Path:
        return self.dir / "sa.key"

    @property
    def sa_pub(self) -> Path:
        return self.dir / "sa.pub"

    @property
    def node_names(self) -> list[str]:
        """Nodes that have a client certificate (``node-<name>.crt``) here."""
        return sorted(p.name[len("node-") : -len(".crt")] for p in self.dir.glob("node-*.crt"))

    def client(self, name: str) -> tuple[Path, Path]:
        """(cert, key) of a client identity: "admin", "kube-scheduler", "node-<node>", "alice"..."""
        cert, key = self.cert(name), self.key(name)
        if not cert.is_file() or not key.is_file():
            raise FileNotFoundError(f"no client certificate {name!r} in {self.dir}")
        return cert, key

    def kubelet_serving(self, node_name: str) -> tuple[Path, Path]:
        """(cert, key) the kubelet of ``node_name`` serves its HTTPS endpoint with."""
        return self.cert(f"kubelet-{node_name}"), self.key(f"kubelet-{node_name}")


# ---------------------------------------------------------------------------------------------
# Host discovery


def host_ipv4_addresses() -> list[str]:
    """Non-loopback, non-link-local IPv4 addresses of this machine, without sending traffic."""
    found = _addresses_from_ip_command()
    if found is None:
        found = _addresses_from_fib_trie()
    usable = []
    for text in found:
        addr = ipaddress.IPv4Address(text)
        if not addr.is_loopback and not addr.is_link_local and str(addr) not in usable:
            usable.append(str(addr))
    return usable


def _addresses_from_ip_command() -> list[str] | None:
    ip = shutil.which("ip") or next((p for p in ("/usr/sbin/ip", "/sbin/ip") if os.path.exists(p)), None)
    if ip is None:
        return None
    try:
        out = subprocess.run(
            [ip, "-j", "-4", "addr", "show"], capture_output=True, check=True, timeout=5
        ).stdout
        return [a["local"] for link in json.loads(out) for a in link.get("addr_info", []) if "local" in a]
    except (OSError, subprocess.SubprocessError, ValueError, KeyError, TypeError):
        return None


def _addresses_from_fib_trie() -> list[str]:
    # A local address appears as "|-- a.b.c.d" followed by "/32 host LOCAL".
    try:
        lines = Path("/proc/net/fib_trie").read_text().splitlines()
    except OSError:
        return []
    return [
        prev.split()[-1]
        for prev, line in itertools.pairwise(lines)
        if line.strip() == "/32 host LOCAL" and prev.strip().startswith("|--")
    ]


def _hostname() -> str | None:
    """This machine's name if it can be a DNS SAN (ASCII), else None."""
    name = socket.gethostname().lower()
    return name if name and name.isascii() else None


# ---------------------------------------------------------------------------------------------
# Files


def _ensure_dir(path: Path) -> None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.stat().st_mode & 0o777 != 0o700:
        path.chmod(0o700)


def write_file_atomic(path: Path, data: bytes, mode: int) -> None:
    """Write via a temp file created with ``mode`` (never wider), then rename over ``path``."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    write_file_atomic(path, pem, 0o600)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    write_file_atomic(path, cert.public_bytes(serialization.Encoding.PEM), 0o644)


def _load_key(path: Path):
    try:
        return serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError) as e:
        raise PKIError(f"private key {path} cannot be read: {e}") from e


def _load_cert(path: Path) -> x509.Certificate | None:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError):
        return None


@contextmanager
def _locked(pki_dir: Path) -> Iterator[None]:
    # Two processes (minictl, a test, a joining node) may set up the same directory at once.
    fd = os.open(pki_dir / ".lock", os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------------------------
# Certificates


@dataclass(frozen=True)
class LeafSpec:
    """What one leaf certificate must say."""

    name: str
    common_name: str
    organizations: tuple[str, ...] = ()
    usages: tuple[x509.ObjectIdentifier, ...] = CLIENT_AUTH
    dns_names: tuple[str, ...] = ()
    ip_addresses: tuple[str, ...] = ()


@dataclass
class _CA:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _subject(common_name: str, organizations: Iterable[str] = ()) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attrs)


def _key_usage(public_key, *, ca: bool) -> x509.KeyUsage:
    # RSA key exchange needs keyEncipherment; ECDSA keys only ever sign.
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=isinstance(public_key, rsa.RSAPublicKey) and not ca,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _make_ca_cert(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey, common_name: str = CA_COMMON_NAME
                  ) -> x509.Certificate:
    now = _utcnow()
    name = _subject(common_name)
    public = key.public_key()
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + datetime.timedelta(days=CA_VALIDITY_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_key_usage(public, ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )


def _issue(
    ca: _CA,
    public_key,
    subject: x509.Name,
    usages: Sequence[x509.ObjectIdentifier],
    sans: Sequence[x509.GeneralName],
    validity_days: int,
) -> x509.Certificate:
    now = _utcnow()
    ca_ski = ca.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca.cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + datetime.timedelta(days=validity_days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(public_key, ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage(list(usages)), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
    return builder.sign(ca.key, hashes.SHA256())


def _ensure_ca(pki: PKI, name: str = "ca", common_name: str = CA_COMMON_NAME) -> _CA:
    cert_path, key_path = pki.cert(name), pki.key(name)
    key_exists, cert_exists = key_path.exists(), cert_path.exists()
    if key_exists:
        key = _load_key(key_path)
        cert = _load_cert(cert_path) if cert_exists else None
        if cert is not None and _public_bytes(cert.public_key()) != _public_bytes(key.public_key()):
            raise PKIError(f"{cert_path} does not belong to {key_path}")
        if cert is None:
            # Keep the key: a re-made CA certificate over the same key still verifies old leaves.
            cert = _make_ca_cert(key, common_name)
            _write_cert(cert_path, cert)
        return _CA(cert, key)
    if cert_exists:
        raise PKIError(f"{cert_path} exists but its key {key_path} is missing; cannot issue certificates")
    key = _new_key()
    cert = _make_ca_cert(key, common_name)
    _write_key(key_path, key)
    _write_cert(cert_path, cert)
    return _CA(cert, key)


def _load_ca(pki: PKI) -> _CA:
    cert = _load_cert(pki.ca_cert)
    if cert is None or not pki.ca_key.exists():
        raise PKIError(f"no usable CA in {pki.dir}: run ensure_pki first")
    return _CA(cert, _load_key(pki.ca_key))


def _public_bytes(public_key) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _signed_by(cert: x509.Certificate, ca: _CA) -> bool:
    if cert.issuer != ca.cert.subject:
        return False
    public = ca.cert.public_key()
    try:
        if isinstance(public, ec.EllipticCurvePublicKey):
            public.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(cert.signature_hash_algorithm))
        elif isinstance(public, rsa.RSAPublicKey):
            public.verify(
                cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(), cert.signature_hash_algorithm
            )
        else:
            return False
    except InvalidSignature:
        return False
    return True


def _needs_renewal(cert: x509.Certificate) -> bool:
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    return cert.not_valid_after_utc - _utcnow() < min(RENEW_BEFORE, lifetime / 3)


def _sans(dns_names: Iterable[str], ip_addresses: Iterable[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = [x509.DNSName(d) for d in dict.fromkeys(dns_names)]
    names += [x509.IPAddress(ipaddress.ip_address(i)) for i in dict.fromkeys(ip_addresses)]
    return names


def _cert_sans(cert: x509.Certificate) -> tuple[set[str], set[str]]:
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set(), set()
    return set(ext.get_values_for_type(x509.DNSName)), {
        str(i) for i in ext.get_values_for_type(x509.IPAddress)
    }


def _cert_usages(cert: x509.Certificate) -> set[x509.ObjectIdentifier]:
    try:
        return set(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    except x509.ExtensionNotFound:
        return set()


def _split_hosts(hosts: Iterable[str]) -> tuple[list[str], list[str]]:
    """Split user-given hosts into DNS names and (normalised) IP addresses."""
    dns, ips = [], []
    for host in hosts:
        host = host.strip().strip("[]")
        if not host:
            continue
        try:
            ips.append(str(ipaddress.ip_address(host)))
        except ValueError:
            dns.append(host.lower())
    return dns, ips


def _ensure_leaf(pki: PKI, ca: _CA, spec: LeafSpec, validity_days: int) -> bool:
    """Make sure ``spec`` is issued; return True if a certificate was (re-)written."""
    cert_path, key_path = pki.cert(spec.name), pki.key(spec.name)
    if key_path.exists():
        key = _load_key(key_path)
    else:
        key = _new_key()
        _write_key(key_path, key)
    cert = _load_cert(cert_path) if cert_path.exists() else None
    subject = _subject(spec.common_name, spec.organizations)
    want_ips = {str(ipaddress.ip_address(i)) for i in spec.ip_addresses}
    if cert is not None:
        have_dns, have_ips = _cert_sans(cert)
        if (
            cert.subject == subject
            and _public_bytes(cert.public_key()) == _public_bytes(key.public_key())
            and _signed_by(cert, ca)
            and not _needs_renewal(cert)
            and set(spec.usages) <= _cert_usages(cert)
            and set(spec.dns_names) <= have_dns
            and want_ips <= have_ips
        ):
            return False
    sans = _sans(spec.dns_names, spec.ip_addresses)
    _write_cert(cert_path, _issue(ca, key.public_key(), subject, spec.usages, sans, validity_days))
    return True


def _ensure_service_account_keys(pki: PKI) -> None:
    if pki.sa_key.exists():
        key = _load_key(pki.sa_key)
    else:
        key = rsa.generate_private_key(public_exponent=65537, key_size=SERVICE_ACCOUNT_KEY_BITS)
        _write_key(pki.sa_key, key)
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    if not pki.sa_pub.exists() or pki.sa_pub.read_bytes() != public_pem:
        write_file_atomic(pki.sa_pub, public_pem, 0o644)


def cluster_leaf_specs(hosts: Sequence[str] = (), node_names: Sequence[str] = ()) -> list[LeafSpec]:
    """Every leaf certificate ``ensure_pki`` issues, with the SANs it would give them now."""
    extra_dns, extra_ips = _split_hosts(hosts)
    host_ips = host_ipv4_addresses()
    hostname = tuple(filter(None, [_hostname()]))
    specs = [
        LeafSpec(
            "apiserver",
            "kube-apiserver",
            usages=SERVER_AUTH,
            dns_names=("localhost", *hostname, *KUBERNETES_SERVICE_NAMES, *extra_dns),
            ip_addresses=("127.0.0.1", "::1", KUBERNETES_SERVICE_IP, *host_ips, *extra_ips),
        ),
        LeafSpec(
            "etcd-server",
            "kube-etcd",
            usages=SERVER_AND_CLIENT_AUTH,
            dns_names=("localhost", *extra_dns),
            ip_addresses=("127.0.0.1", "::1", *extra_ips),
        ),
        LeafSpec(
            "etcd-peer",
            "kube-etcd-peer",
            usages=SERVER_AND_CLIENT_AUTH,
            dns_names=("localhost", *hostname, *extra_dns),
            ip_addresses=("127.0.0.1", "::1", *host_ips, *extra_ips),
        ),
    ]
    for name, (cn, orgs) in CLIENT_IDENTITIES.items():
        specs.append(LeafSpec(name, cn, orgs))
    for node in dict.fromkeys(node_names):
        specs.append(LeafSpec(f"node-{node}", f"system:node:{node}", ("system:nodes",)))
        specs.append(kubelet_serving_spec(node, host_ips))
    return specs


def kubelet_serving_spec(node_name: str, addresses: Sequence[str] = ()) -> LeafSpec:
    """The kubelet's serving certificate: named like the node, as upstream's server TLS bootstrap."""
    dns, ips = _split_hosts([node_name, *addresses])
    return LeafSpec(
        f"kubelet-{node_name}",
        f"system:node:{node_name}",
        ("system:nodes",),
        usages=SERVER_AUTH,
        dns_names=tuple(dns),
        ip_addresses=("127.0.0.1", *ips),
    )


# ---------------------------------------------------------------------------------------------
# Public operations


def ensure_pki(
    pki_dir: Path,
    *,
    hosts: Sequence[str] = (),
    node_names: Sequence[str] = (),
    validity_days: int = 365,
) -> PKI:
    """Create whatever is missing in ``pki_dir``; keep every existing key. See the module doc."""
    pki = PKI(Path(pki_dir))
    _ensure_dir(pki.dir)
    with _locked(pki.dir):
        ca = _ensure_ca(pki)
        for spec in cluster_leaf_specs(hosts, node_names):
            _ensure_leaf(pki, ca, spec, validity_days)
        front_proxy = _ensure_ca(pki, FRONT_PROXY_CA, FRONT_PROXY_CA)
        _ensure_leaf(pki, front_proxy, LeafSpec(FRONT_PROXY_CLIENT, FRONT_PROXY_CLIENT), validity_days)
        _ensure_service_account_keys(pki)
    return pki


def issue_client_cert(
    pki: PKI, name: str, common_name: str, organizations: Sequence[str] = (), *, validity_days: int = 365
) -> tuple[Path, Path]:
    """Issue (or keep, if still right) a client certificate ``<name>.crt`` for an extra identity."""
    with _locked(pki.dir):
        _ensure_leaf(pki, _load_ca(pki), LeafSpec(name, common_name, tuple(organizations)), validity_days)
    return pki.cert(name), pki.key(name)


def issue_kubelet_serving_cert(
    pki: PKI, node_name: str, addresses: Sequence[str] = (), *, validity_days: int = 365
) -> tuple[Path, Path]:
    """Serving certificate for a kubelet on another machine, with that machine's addresses."""
    with _locked(pki.dir):
        _ensure_leaf(pki, _load_ca(pki), kubelet_serving_spec(node_name, addresses), validity_days)
    return pki.kubelet_serving(node_name)


def _ca_cert_paths(pki: PKI) -> list[Path]:
    return [pki.ca_cert, pki.front_proxy_ca_cert]


def _leaf_cert_paths(pki: PKI) -> list[Path]:
    return sorted(p for p in pki.dir.glob("*.crt") if p not in _ca_cert_paths(pki))


def _issuer_for(pki: PKI, name: str, cluster_ca: _CA) -> _CA:
    """The CA a leaf is re-issued by: the front-proxy client by its own CA, the rest by the cluster's."""
    if name == FRONT_PROXY_CLIENT:
        cert = _load_cert(pki.front_proxy_ca_cert)
        if cert is None or not pki.key(FRONT_PROXY_CA).exists():
            raise PKIError(f"no usable {FRONT_PROXY_CA} in {pki.dir}: run ensure_pki first")
        return _CA(cert, _load_key(pki.key(FRONT_PROXY_CA)))
    return cluster_ca


def check_expiry(pki: PKI, warn_days: int = 30) -> list[str]:
    """Human messages for every certificate in the PKI that has expired or expires soon."""
    now = _utcnow()
    messages = []
    for path in [*_ca_cert_paths(pki), *_leaf_cert_paths(pki)]:
        if not path.exists():
            continue
        cert = _load_cert(path)
        if cert is None:
            messages.append(f"certificate {path.name} cannot be read, {ROTATE_HINT}")
            continue
        end = cert.not_valid_after_utc
        when = end.strftime("%Y-%m-%d %H:%M UTC")
        if path in _ca_cert_paths(pki):
            hint = "the CA is not rotated by `minictl certs rotate`: create a new cluster PKI"
        else:
            hint = ROTATE_HINT
        if end <= now:
            messages.append(f"certificate {path.name} expired on {when}, {hint}")
        elif end - now <= datetime.timedelta(days=warn_days):
            days = (end - now).days
            left = f"in {days} day{'s' if days != 1 else ''}" if days else "in less than a day"
            messages.append(f"certificate {path.name} expires on {when} ({left}), {hint}")
    return messages


def rotate(
    pki: PKI, names: Sequence[str] | None = None, *, validity_days: int = 365, new_keys: bool = False
) -> list[Path]:
    """Re-issue leaf certificates (all, or ``names`` such as "apiserver" or "admin.crt").

    The CA is kept. Subject, SANs and usages are carried over from each current certificate,
    so extra identities rotate too. Keys are kept unless ``new_keys``. Returns the rewritten
    certificate paths.
    """
    with _locked(pki.dir):
        ca = _load_ca(pki)
        if names is None:
            paths = _leaf_cert_paths(pki)
        else:
            paths = [pki.cert(n.removesuffix(".crt")) for n in names]
            for p in paths:
                if p in _ca_cert_paths(pki):
                    raise PKIError(f"rotate keeps the CAs; it cannot re-issue {p.name}")
                if not p.exists():
                    raise PKIError(f"no certificate {p.name} in {pki.dir}")
        done = []
        for cert_path in paths:
            name = cert_path.name.removesuffix(".crt")
            old = _load_cert(cert_path)
            if old is None:
                raise PKIError(f"certificate {cert_path} cannot be read; remove it and run ensure_pki")
            key_path = pki.key(name)
            if new_keys or not key_path.exists():
                key = _new_key()
                _write_key(key_path, key)
            else:
                key = _load_key(key_path)
            try:
                sans = list(old.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
            except x509.ExtensionNotFound:
                sans = []
            try:
                usages = list(old.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
            except x509.ExtensionNotFound:
                usages = list(CLIENT_AUTH)
            cert = _issue(_issuer_for(pki, name, ca), key.public_key(), old.subject, usages, sans, validity_days)
            _write_cert(cert_path, cert)
            done.append(cert_path)
    return done


def write_self_signed_serving_cert(cert_path: Path, key_path: Path, common_name: str, hosts: Iterable[str],
                                   validity_days: int = 365) -> None:
    """A new key and a self-signed server certificate for `hosts` (DNS names or IPs), as upstream's
    GenerateSelfSignedCertKey (valid from an hour back): the kubelet's without --tls-cert-file."""
    _ensure_dir(cert_path.parent)
    key = _new_key()
    now = _utcnow()
    name = _subject(common_name)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=validity_days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(key.public_key(), ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(_sans(*_split_hosts(hosts))), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_key(key_path, key)
    _write_cert(cert_path, cert)


def certificate_identity(cert_path: Path) -> tuple[str, list[str]]:
    """(common name, organizations) of a certificate: the user and groups the apiserver sees
    (the last CN, as Go's pkix.Name and the apiserver's x509 authenticator read it)."""
    cert = x509.load_pem_x509_certificate(Path(cert_path).read_bytes())
    return common_name(cert), subject_values(cert, NameOID.ORGANIZATION_NAME)
