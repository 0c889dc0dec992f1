"""Certificate signing requests: what the apiserver, the admission plugins and the csr controllers
share about certificates.k8s.io/v1 CertificateSigningRequests.

* PEM parsing as Go's encoding/pem reads it (junk around blocks is skipped, headers are seen),
  `parse_csr` (upstream certificates.ParseCSR) and `validate_certificate_pem` (status.certificate);
* the well-known signers' rules (upstream pkg/apis/certificates/helpers.go and the csrsigning
  controller): `validate_kubelet_client_csr`, `validate_kubelet_serving_csr`,
  `validate_apiserver_client_usages`;
* `sign` (upstream's authority.PermissiveSigningPolicy: the CSR's subject and SANs, the requested
  usages, everything else of the request dropped, 5 minutes backdated);
* `make_csr`, a client's side of it (kubelets bootstrapping, tests).
"""

from __future__ import annotations

import base64
import binascii
import datetime
import ipaddress
import re
from collections.abc import Iterable, Sequence
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from apimachinery.meta import parse_time

# -- names -----------------------------------------------------------------------------------

KUBE_APISERVER_CLIENT = "kubernetes.io/kube-apiserver-client"
KUBE_APISERVER_CLIENT_KUBELET = "kubernetes.io/kube-apiserver-client-kubelet"
KUBELET_SERVING = "kubernetes.io/kubelet-serving"
LEGACY_UNKNOWN = "kubernetes.io/legacy-unknown"
#: the signers kube-controller-manager's csrsigning controller issues for
KNOWN_SIGNERS = (KUBE_APISERVER_CLIENT, KUBE_APISERVER_CLIENT_KUBELET, KUBELET_SERVING, LEGACY_UNKNOWN)

APPROVED, DENIED, FAILED = "Approved", "Denied", "Failed"

NODES_GROUP = "system:nodes"
NODE_USER_PREFIX = "system:node:"
MASTERS_GROUP = "system:masters"

#: x509 KeyUsage bits (cryptography's x509.KeyUsage argument names) per key usage string
KEY_USAGES: dict[str, str] = {
    "signing": "digital_signature",
    "digital signature": "digital_signature",
    "content commitment": "content_commitment",
    "key encipherment": "key_encipherment",
    "key agreement": "key_agreement",
    "data encipherment": "data_encipherment",
    "cert sign": "key_cert_sign",
    "crl sign": "crl_sign",
    "encipher only": "encipher_only",
    "decipher only": "decipher_only",
}

#: extended key usages per key usage string
EXT_KEY_USAGES: dict[str, x509.ObjectIdentifier] = {
    "any": x509.ObjectIdentifier("2.5.29.37.0"),
    "server auth": ExtendedKeyUsageOID.SERVER_AUTH,
    "client auth": ExtendedKeyUsageOID.CLIENT_AUTH,
    "code signing": ExtendedKeyUsageOID.CODE_SIGNING,
    "email protection": ExtendedKeyUsageOID.EMAIL_PROTECTION,
    "s/mime": ExtendedKeyUsageOID.EMAIL_PROTECTION,
    "ipsec end system": x509.ObjectIdentifier("1.3.6.1.5.5.7.3.5"),
    "ipsec tunnel": x509.ObjectIdentifier("1.3.6.1.5.5.7.3.6"),
    "ipsec user": x509.ObjectIdentifier("1.3.6.1.5.5.7.3.7"),
    "timestamping": ExtendedKeyUsageOID.TIME_STAMPING,
    "ocsp signing": ExtendedKeyUsageOID.OCSP_SIGNING,
    "microsoft sgc": x509.ObjectIdentifier("1.3.6.1.4.1.311.10.3.3"),
    "netscape sgc": x509.ObjectIdentifier("2.16.840.1.113730.4.1"),
}

#: every valid spec.usages value (upstream's allValidUsages)
VALID_USAGES = tuple(sorted({*KEY_USAGES, *EXT_KEY_USAGES}))

#: upstream's signing policy: backdate 5 minutes; lifetimes under 8 hours are not shortened by it
BACKDATE = datetime.timedelta(minutes=5)
SHORT = datetime.timedelta(hours=8)
MIN_DURATION = datetime.timedelta(minutes=10)


# -- PEM -------------------------------------------------------------------------------------

_BEGIN = re.compile(rb"-----BEGIN ([^-\r\n]*)-----[ \t]*\r?\n")


class PEMBlock:
    __slots__ = ("der", "headers", "type")

    def __init__(self, type_: str, headers: dict[str, str], der: bytes) -> None:
        self.type, self.headers, self.der = type_, headers, der


def pem_blocks(data: bytes) -> list[PEMBlock]:
    """Every PEM block of `data`, in order, as Go's pem.Decode finds them one after the other
    (text before, between and after blocks is skipped; a block that doesn't decode is skipped)."""
    out: list[PEMBlock] = []
    pos = 0
    while True:
        m = _BEGIN.search(data, pos)
        if m is None:
            return out
        typ = m.group(1).decode("latin-1")
        end_marker = b"-----END " + m.group(1) + b"-----"
        end = data.find(end_marker, m.end())
        if end < 0:
            pos = m.end()
            continue
        body = data[m.end():end]
        headers: dict[str, str] = {}
        lines = body.splitlines()
        if lines and b":" in lines[0]:
            while lines and lines[0].strip():
                k, _, v = lines.pop(0).partition(b":")
                headers[k.strip().decode("latin-1")] = v.strip().decode("latin-1")
        try:
            der = base64.b64decode(b"".join(line.strip() for line in lines), validate=True)
        except (binascii.Error, ValueError):
            pos = m.end()
            continue
        out.append(PEMBlock(typ, headers, der))
        pos = end + len(end_marker)


def _as_bytes(data: bytes | str) -> bytes:
    return data.encode() if isinstance(data, str) else data


def decode_b64_field(value: Any) -> bytes:
    """A []byte field of the JSON form (base64) → bytes; ValueError if it is not base64."""
    if value is None:
        return b""
    if not isinstance(value, str):
        raise ValueError("must be a base64-encoded string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as e:
        raise ValueError(f"illegal base64 data: {e}") from None


def parse_csr(pem_data: bytes | str) -> x509.CertificateSigningRequest:
    """upstream certificates.ParseCSR: the first PEM block must be a CERTIFICATE REQUEST that parses.
    Raises ValueError with upstream's message."""
    blocks = pem_blocks(_as_bytes(pem_data))
    if not blocks or blocks[0].type != "CERTIFICATE REQUEST":
        raise ValueError("PEM block type must be CERTIFICATE REQUEST")
    try:
        return x509.load_der_x509_csr(blocks[0].der)
    except ValueError as e:
        raise ValueError(f"x509: malformed certificate request: {e}") from None


def check_csr_signature(req: x509.CertificateSigningRequest) -> None:
    try:
        ok = req.is_signature_valid
    except Exception as e:  # an algorithm cryptography cannot check
        raise ValueError(f"x509: cannot verify signature: {e}") from None
    if not ok:
        raise ValueError("x509: signature verification failure" if not isinstance(req.public_key(), ec.EllipticCurvePublicKey)
                         else "x509: ECDSA verification failure")


def validate_certificate_pem(data: bytes) -> str | None:
    """upstream validateCertificate (status.certificate): None if fine, else the error."""
    if not data:
        return None
    blocks = pem_blocks(data)
    for b in blocks:
        if b.type != "CERTIFICATE":
            return f'only CERTIFICATE PEM blocks are allowed, found "{b.type}"'
        if b.headers:
            return "no PEM block headers are permitted"
        try:
            x509.load_der_x509_certificate(b.der)
        except ValueError as e:
            return f"x509: malformed certificate: {e}"
    if not blocks:
        return "must contain at least one CERTIFICATE PEM block"
    return None


def first_certificate(data: bytes) -> x509.Certificate | None:
    for b in pem_blocks(data):
        if b.type == "CERTIFICATE":
            try:
                return x509.load_der_x509_certificate(b.der)
            except ValueError:
                return None
    return None


# -- what a request asks for -----------------------------------------------------------------

def subject_values(req: x509.CertificateSigningRequest | x509.Certificate, oid: x509.ObjectIdentifier) -> list[str]:
    return [str(a.value) for a in req.subject.get_attributes_for_oid(oid)]


def common_name(req: x509.CertificateSigningRequest | x509.Certificate) -> str:
    """Go's pkix.Name.CommonName: the last CN attribute — what the apiserver's x509
    authenticator reads, so the approver and the authenticator always name the same user."""
    cns = subject_values(req, NameOID.COMMON_NAME)
    return cns[-1] if cns else ""


def _single_common_name(req: x509.CertificateSigningRequest) -> str | None:
    if len(subject_values(req, NameOID.COMMON_NAME)) > 1:
        return "subject has more than one common name"
    return None


def organizations(req: x509.CertificateSigningRequest | x509.Certificate) -> list[str]:
    return subject_values(req, NameOID.ORGANIZATION_NAME)


def _sans(req: x509.CertificateSigningRequest) -> x509.SubjectAlternativeName | None:
    try:
        return req.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None


def requested_sans(req: x509.CertificateSigningRequest) -> dict[str, list[Any]]:
    """The request's subjectAltNames by kind: dns, ip, email, uri."""
    san = _sans(req)
    if san is None:
        return {"dns": [], "ip": [], "email": [], "uri": []}
    return {
        "dns": san.get_values_for_type(x509.DNSName),
        "ip": san.get_values_for_type(x509.IPAddress),
        "email": san.get_values_for_type(x509.RFC822Name),
        "uri": san.get_values_for_type(x509.UniformResourceIdentifier),
    }


# -- the well-known signers' rules (upstream helpers.go, signer.go) ---------------------------

_KUBELET_CLIENT_USAGES = ({"digital signature", "key encipherment", "client auth"}, {"digital signature", "client auth"})
_KUBELET_SERVING_USAGES = ({"digital signature", "key encipherment", "server auth"}, {"digital signature", "server auth"})


def _usages_text(usages: set[str]) -> str:
    return "[" + " ".join(sorted(usages)) + "]"


def validate_kubelet_client_csr(req: x509.CertificateSigningRequest, usages: Iterable[str]) -> str | None:
    """upstream ValidateKubeletClientCSR: None when `req` is a kubelet's client certificate request."""
    if organizations(req) != [NODES_GROUP]:
        return "subject organization is not system:nodes"
    if err := _single_common_name(req):
        return err
    sans = requested_sans(req)
    if sans["dns"]:
        return "DNS subjectAltNames are not allowed"
    if sans["email"]:
        return "Email subjectAltNames are not allowed"
    if sans["ip"]:
        return "IP subjectAltNames are not allowed"
    if sans["uri"]:
        return "URI subjectAltNames are not allowed"
    if not common_name(req).startswith(NODE_USER_PREFIX):
        return "subject common name does not begin with system:node:"
    if set(usages) not in _KUBELET_CLIENT_USAGES:
        return f"usages did not match {_usages_text(_KUBELET_CLIENT_USAGES[0])}"
    return None


def validate_kubelet_serving_csr(req: x509.CertificateSigningRequest, usages: Iterable[str]) -> str | None:
    """upstream ValidateKubeletServingCSR."""
    if organizations(req) != [NODES_GROUP]:
        return "subject organization is not system:nodes"
    if err := _single_common_name(req):
        return err
    sans = requested_sans(req)
    if not sans["dns"] and not sans["ip"]:
        return "DNS or IP subjectAltName is required"
    if sans["email"]:
        return "Email subjectAltNames are not allowed"
    if sans["uri"]:
        return "URI subjectAltNames are not allowed"
    if set(usages) not in _KUBELET_SERVING_USAGES:
        return f"usages did not match {_usages_text(_KUBELET_SERVING_USAGES[0])}"
    if not common_name(req).startswith(NODE_USER_PREFIX):
        return "subject common name does not begin with system:node:"
    return None


def validate_apiserver_client_usages(usages: Sequence[str]) -> str | None:
    """upstream validAPIServerClientUsages (kubernetes.io/kube-apiserver-client)."""
    has_client_auth = False
    for u in usages:
        if u in ("digital signature", "key encipherment"):
            continue
        if u == "client auth":
            has_client_auth = True
            continue
        return f"invalid usage for client certificate: {u}"
    if not has_client_auth:
        return "missing required usage for client certificate: client auth"
    return None


def signer_rule_error(signer: str, req: x509.CertificateSigningRequest, usages: Sequence[str]) -> str | None:
    """What the csrsigning controller refuses for `signer` (None: fine to sign)."""
    if signer == KUBELET_SERVING:
        return validate_kubelet_serving_csr(req, usages)
    if signer == KUBE_APISERVER_CLIENT_KUBELET:
        return validate_kubelet_client_csr(req, usages)
    if signer == KUBE_APISERVER_CLIENT:
        return validate_apiserver_client_usages(usages)
    return None  # legacy-unknown: no restrictions (upstream keeps v1beta1's behaviour)


# -- conditions ------------------------------------------------------------------------------

def conditions(csr: dict[str, Any]) -> list[dict[str, Any]]:
    status = csr.get("status")
    conds = status.get("conditions") if isinstance(status, dict) else None
    return [c for c in conds if isinstance(c, dict)] if isinstance(conds, list) else []


def has_condition(csr: dict[str, Any], typ: str) -> bool:
    return any(c.get("type") == typ for c in conditions(csr))


def has_true_condition(csr: dict[str, Any], typ: str) -> bool:
    return any(c.get("type") == typ and c.get("status") in ("True", None, "") for c in conditions(csr))


def approval_state(csr: dict[str, Any]) -> tuple[bool, bool]:
    """(approved, denied) as upstream's GetCertApprovalCondition reads them."""
    return has_condition(csr, APPROVED), has_condition(csr, DENIED)


def is_approved(csr: dict[str, Any]) -> bool:
    approved, denied = approval_state(csr)
    return approved and not denied


def issued_certificate(csr: dict[str, Any]) -> bytes:
    status = csr.get("status")
    try:
        return decode_b64_field(status.get("certificate") if isinstance(status, dict) else None)
    except ValueError:
        return b""


def certificate_not_after(csr: dict[str, Any]) -> datetime.datetime | None:
    """NotAfter of the issued certificate (None if none or unreadable)."""
    cert = first_certificate(issued_certificate(csr))
    return cert.not_valid_after_utc if cert is not None else None


def condition_update_time(c: dict[str, Any]) -> datetime.datetime | None:
    ts = c.get("lastUpdateTime")
    if not isinstance(ts, str) or not ts:
        return None
    try:
        return parse_time(ts)
    except ValueError:
        return None


def request_of(csr: dict[str, Any]) -> x509.CertificateSigningRequest:
    spec = csr.get("spec") or {}
    return parse_csr(decode_b64_field(spec.get("request")))


# -- signing ---------------------------------------------------------------------------------

def duration_for(expiration_seconds: int | None, max_ttl: datetime.timedelta) -> datetime.timedelta:
    """upstream signer.duration: the requested lifetime, at most the signer's, at least 10 minutes."""
    if expiration_seconds is None:
        return max_ttl
    requested = datetime.timedelta(seconds=expiration_seconds)
    if requested > max_ttl:
        return max_ttl
    return max(requested, MIN_DURATION)


def _key_usage_ext(usages: Iterable[str]) -> x509.KeyUsage | None:
    bits = {KEY_USAGES[u] for u in usages if u in KEY_USAGES}
    if not bits:
        return None
    names = ("digital_signature", "content_commitment", "key_encipherment", "data_encipherment",
             "key_agreement", "key_cert_sign", "crl_sign", "encipher_only", "decipher_only")
    kw = {n: n in bits for n in names}
    if not kw["key_agreement"]:  # cryptography insists these two are only set with key agreement
        kw["encipher_only"] = kw["decipher_only"] = False
    return x509.KeyUsage(**kw)


def sign(
    req: x509.CertificateSigningRequest,
    usages: Sequence[str],
    ca_cert: x509.Certificate,
    ca_key: Any,
    ttl: datetime.timedelta,
    now: datetime.datetime | None = None,
) -> bytes:
    """Issue a certificate for `req` (PEM): its subject, SANs and key, the requested usages, not a
    CA; NotBefore backdated 5 minutes, NotAfter capped at the CA's (upstream PermissiveSigningPolicy).
    Raises ValueError when the CA has expired or a usage is unknown."""
    now = now or datetime.datetime.now(datetime.UTC)
    unknown = [u for u in usages if u not in KEY_USAGES and u not in EXT_KEY_USAGES]
    if unknown:
        raise ValueError(f"unrecognized usage: {unknown[0]}")
    signer_not_after = ca_cert.not_valid_after_utc
    not_before = now - BACKDATE
    not_after = now + ttl if ttl < SHORT else now + ttl - BACKDATE
    if not_after >= signer_not_after:
        not_after = signer_not_after
    if not_before >= signer_not_after:
        raise ValueError(f"the signer has expired: NotAfter={signer_not_after}")
    if now >= signer_not_after:
        raise ValueError(f"refusing to sign a certificate that expired in the past: NotAfter={signer_not_after}")
    public = req.public_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(req.subject)
        .issuer_name(ca_cert.subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    )
    ku = _key_usage_ext(usages)
    if ku is not None:
        builder = builder.add_extension(ku, critical=True)
    eku = []
    for u in usages:
        oid = EXT_KEY_USAGES.get(u)
        if oid is not None and oid not in eku:
            eku.append(oid)
    if eku:
        builder = builder.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
    builder = builder.add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
    try:
        ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        builder = builder.add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski),
                                        critical=False)
    except x509.ExtensionNotFound:
        pass
    san = _sans(req)
    if san is not None and len(san):
        builder = builder.add_extension(san, critical=False)
    algorithm = None if _is_edwards(ca_key) else hashes.SHA256()
    cert = builder.sign(ca_key, algorithm)  # type: ignore[arg-type]
    return cert.public_bytes(serialization.Encoding.PEM)


def _is_edwards(key: Any) -> bool:
    from cryptography.hazmat.primitives.asymmetric import ed448, ed25519

    return isinstance(key, (ed25519.Ed25519PrivateKey, ed448.Ed448PrivateKey))


def load_signer(cert_file: str, key_file: str) -> tuple[x509.Certificate, Any]:
    """A CA certificate and its private key from PEM files (ValueError if they don't match)."""
    with open(cert_file, "rb") as f:
        cert = x509.load_pem_x509_certificate(f.read())
    with open(key_file, "rb") as f:
        key = serialization.load_pem_private_key(f.read(), password=None)
    if not same_key(cert, key):
        raise ValueError(f"{cert_file} does not belong to {key_file}")
    return cert, key


# -- a client's side -------------------------------------------------------------------------

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


def new_private_key() -> ec.EllipticCurvePrivateKey:
    """An ECDSA P-256 key, the kind upstream's kubelet generates."""
    return ec.generate_private_key(ec.SECP256R1())


def private_key_pem(key: PrivateKey) -> bytes:
    fmt = serialization.PrivateFormat.TraditionalOpenSSL  # "EC PRIVATE KEY", as keyutil writes it
    return key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption())


def make_csr(key: Any, common_name_: str, organizations: Iterable[str] = (),
             dns_names: Iterable[str] = (), ip_addresses: Iterable[str] = ()) -> bytes:
    """A PEM "CERTIFICATE REQUEST" for `key` naming the subject (and SANs, for serving
    certificates), as kubelets and `openssl req` make them."""
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name_))
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(attrs))
    sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns_names]
    sans += [x509.IPAddress(ipaddress.ip_address(i)) for i in ip_addresses]
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    algorithm = None if _is_edwards(key) else hashes.SHA256()
    return builder.sign(key, algorithm).public_bytes(serialization.Encoding.PEM)  # type: ignore[arg-type]


def same_key(a: Any, b: Any) -> bool:
    """Whether two certificates/requests/keys (anything with a public key) share one key pair."""
    def spki(x: Any) -> bytes:
        pub = x.public_key() if hasattr(x, "public_key") else x
        return pub.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)

    return spki(a) == spki(b)
