"""Bootstrap tokens and the cluster-info ConfigMap: upstream's k8s.io/cluster-bootstrap, in Python.

A bootstrap token is `<id>.<secret>` (6 + 16 characters of [a-z0-9]) stored as the Secret
`kube-system/bootstrap-token-<id>` of type `bootstrap.kubernetes.io/token`. It serves two ends:

- authentication (`usage-bootstrap-authentication`): a new node's bearer token, the user
  `system:bootstrap:<id>` in `system:bootstrappers` (+ `auth-extra-groups`);
- signing (`usage-bootstrap-signing`): the bootstrap signer adds `jws-kubeconfig-<id>` to
  `kube-public/cluster-info`, a detached JWS (RFC 7515 appendix F) of its `kubeconfig` made
  with the token secret, so a joining node that knows the token can trust what it read over
  an unverified TLS connection.

The discovery hash `sha256:<hex>` pins the cluster CA by its SubjectPublicKeyInfo, as
`kubeadm join --discovery-token-ca-cert-hash` does.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from apimachinery.meta import format_time, parse_time

TOKEN_RE = re.compile(r"^([a-z0-9]{6})\.([a-z0-9]{16})$")
TOKEN_ID_RE = re.compile(r"^[a-z0-9]{6}$")
EXTRA_GROUP_RE = re.compile(r"^system:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]$")
SECRET_TYPE = "bootstrap.kubernetes.io/token"
SECRET_PREFIX = "bootstrap-token-"
NAMESPACE = "kube-system"
BOOTSTRAPPERS = "system:bootstrappers"
#: kubeadm's group for node tokens (`kubeadm token create` puts every token in it)
DEFAULT_NODE_TOKEN_GROUP = "system:bootstrappers:kubeadm:default-node-token"
DEFAULT_USAGES = ("signing", "authentication")
KNOWN_USAGES = ("signing", "authentication")

CLUSTER_INFO_NAMESPACE = "kube-public"
CLUSTER_INFO_NAME = "cluster-info"
KUBECONFIG_KEY = "kubeconfig"
JWS_PREFIX = "jws-kubeconfig-"

_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"


def random_string(n: int) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(n))


def generate_token() -> str:
    """A fresh `<id>.<secret>` token."""
    return f"{random_string(6)}.{random_string(16)}"


def parse_token(token: str) -> tuple[str, str]:
    """(id, secret) of a token; ValueError naming the expected form otherwise."""
    m = TOKEN_RE.match(token.strip())
    if m is None:
        raise ValueError(f"the bootstrap token {token!r} is not of the form [a-z0-9]{{6}}.[a-z0-9]{{16}}")
    return m.group(1), m.group(2)


def _b64(value: str) -> str:
    return base64.b64encode(value.encode()).decode("ascii")


def _unb64(value: Any) -> str:
    if not isinstance(value, str):
        return ""
    try:
        return base64.b64decode(value, validate=True).decode()
    except ValueError:
        return ""


@dataclass
class BootstrapToken:
    """One token as `kubeadm token create/list` sees it."""

    token_id: str
    token_secret: str = ""
    description: str = ""
    expires: dt.datetime | None = None
    usages: tuple[str, ...] = DEFAULT_USAGES
    groups: tuple[str, ...] = (DEFAULT_NODE_TOKEN_GROUP,)
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def token(self) -> str:
        return f"{self.token_id}.{self.token_secret}"

    @property
    def secret_name(self) -> str:
        return SECRET_PREFIX + self.token_id

    def expired(self, now: dt.datetime | None = None) -> bool:
        return self.expires is not None and self.expires <= (now or dt.datetime.now(dt.UTC))

    def to_secret(self) -> dict[str, Any]:
        for usage in self.usages:
            if usage not in KNOWN_USAGES:
                raise ValueError(f"unknown usage {usage!r}; valid: {', '.join(KNOWN_USAGES)}")
        for group in self.groups:
            if not EXTRA_GROUP_RE.match(group):
                raise ValueError(f"group {group!r} must match {EXTRA_GROUP_RE.pattern}")
        data = {"token-id": self.token_id, "token-secret": self.token_secret}
        if self.description:
            data["description"] = self.description
        if self.expires is not None:
            data["expiration"] = format_time(self.expires)
        for usage in self.usages:
            data[f"usage-bootstrap-{usage}"] = "true"
        if self.groups:
            data["auth-extra-groups"] = ",".join(self.groups)
        return {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": self.secret_name, "namespace": NAMESPACE},
            "type": SECRET_TYPE,
            "data": {k: _b64(v) for k, v in data.items()},
        }

    @classmethod
    def from_secret(cls, secret: dict[str, Any]) -> BootstrapToken | None:
        """The token a Secret holds, or None if it is no (well-formed) bootstrap token."""
        if secret.get("type") != SECRET_TYPE:
            return None
        data = secret.get("data") or {}
        token_id = _unb64(data.get("token-id"))
        if not TOKEN_ID_RE.match(token_id) or (secret.get("metadata") or {}).get("name") != SECRET_PREFIX + token_id:
            return None
        expires = secret_expiration(secret)
        usages = tuple(u for u in KNOWN_USAGES if _unb64(data.get(f"usage-bootstrap-{u}")) == "true")
        groups = tuple(g.strip() for g in _unb64(data.get("auth-extra-groups")).split(",") if g.strip())
        return cls(token_id, _unb64(data.get("token-secret")), _unb64(data.get("description")), expires,
                   usages, groups)


def secret_expiration(secret: dict[str, Any]) -> dt.datetime | None:
    """The `expiration` of a token Secret (upstream GetExpiration): None if it has none; an
    unreadable one counts as long expired."""
    exp = _unb64((secret.get("data") or {}).get("expiration"))
    if not exp:
        return None
    try:
        return parse_time(exp)
    except ValueError:
        return dt.datetime.fromtimestamp(0, dt.UTC)


# --- JWS (detached, HS256) ---------------------------------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def detached_signature(content: str, token_id: str, token_secret: str) -> str:
    """`<header>..<signature>`: a compact HS256 JWS of `content` with the payload left out.

    The key is the token secret zero-padded to 32 bytes and the protected header is
    `{"alg":"HS256","kid":"<id>"}`, so the value equals what upstream's bootstrap signer writes.
    """
    key = token_secret.encode().ljust(32, b"\0")
    header = _b64url(b'{"alg":"HS256","kid":"' + token_id.encode() + b'"}')
    signing_input = f"{header}.{_b64url(content.encode())}".encode("ascii")
    signature = _b64url(hmac.new(key, signing_input, hashlib.sha256).digest())
    return f"{header}..{signature}"


def detached_signature_valid(signature: str, content: str, token_id: str, token_secret: str) -> bool:
    return hmac.compare_digest(signature.encode(), detached_signature(content, token_id, token_secret).encode())


# --- CA pinning ---------------------------------------------------------------------------------------


def ca_cert_hash(cert: x509.Certificate) -> str:
    """`sha256:<hex>` of the certificate's SubjectPublicKeyInfo (kubeadm's --discovery-token-ca-cert-hash)."""
    spki = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return "sha256:" + hashlib.sha256(spki).hexdigest()


def normalize_ca_hash(value: str) -> str:
    """`sha256:<64 hex>` (lower-case) from what a user typed; ValueError for anything else."""
    algo, sep, digest = value.strip().partition(":")
    if not sep or algo.lower() != "sha256":
        raise ValueError(f"CA hash {value!r} must be of the form sha256:<hex> (only sha256 is supported)")
    digest = digest.lower()
    if not re.fullmatch(r"[0-9a-f]{64}", digest):
        raise ValueError(f"CA hash {value!r}: the sha256 digest must be 64 hex characters")
    return f"sha256:{digest}"
