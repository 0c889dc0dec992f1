"""A small JSON Web Token (RFC 7519) signer/verifier: compact JWS with RS256 or ES256/384/512.

Enough for ServiceAccount tokens: one header `{"alg", "kid", "typ"?}`, JSON claims, one
signature. `kid` is upstream's key id (base64url SHA-256 of the public key's DER SPKI), so
verifiers can pick the key without trying them all.
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import Any

import orjson
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

_EC_ALGS = {"secp256r1": ("ES256", hashes.SHA256, 32), "secp384r1": ("ES384", hashes.SHA384, 48),
            "secp521r1": ("ES512", hashes.SHA512, 66)}


class JWTError(Exception):
    """The token is malformed or its signature does not verify."""


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(s: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))
    except (ValueError, TypeError) as e:
        raise JWTError("invalid base64url segment") from e


def key_id(public_key: PublicKey) -> str:
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return b64url(hashlib.sha256(der).digest())


def _alg_of(key: PublicKey) -> str:
    if isinstance(key, rsa.RSAPublicKey):
        return "RS256"
    return _EC_ALGS[key.curve.name][0]


def load_private_key(path: str | Path) -> PrivateKey:
    key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    if not isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)):
        raise ValueError(f"{path}: only RSA and ECDSA keys can sign ServiceAccount tokens")
    return key


def load_public_keys(path: str | Path) -> list[PublicKey]:
    """Every public key in a PEM file: PUBLIC KEY blocks, certificates, or private keys (as upstream)."""
    data = Path(path).read_bytes()
    keys: list[PublicKey] = []
    for block in data.split(b"-----BEGIN ")[1:]:
        pem = b"-----BEGIN " + block
        label = block.split(b"-----", 1)[0]
        if label == b"PUBLIC KEY" or label == b"RSA PUBLIC KEY":
            keys.append(serialization.load_pem_public_key(pem))  # type: ignore[arg-type]
        elif label == b"CERTIFICATE":
            keys.append(x509.load_pem_x509_certificate(pem).public_key())  # type: ignore[arg-type]
        elif label.endswith(b"PRIVATE KEY"):
            keys.append(serialization.load_pem_private_key(pem, password=None).public_key())  # type: ignore[arg-type]
    if not keys:
        raise ValueError(f"{path}: no public keys found")
    return keys


class Signer:
    def __init__(self, key: PrivateKey) -> None:
        self.key = key
        self.alg = _alg_of(key.public_key())
        self.kid = key_id(key.public_key())

    def sign(self, claims: dict[str, Any]) -> str:
        header = b64url(orjson.dumps({"alg": self.alg, "kid": self.kid}))
        payload = b64url(orjson.dumps(claims))
        signing_input = f"{header}.{payload}".encode("ascii")
        if isinstance(self.key, rsa.RSAPrivateKey):
            sig = self.key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
        else:
            _, hash_cls, size = _EC_ALGS[self.key.curve.name]
            r, s = decode_dss_signature(self.key.sign(signing_input, ec.ECDSA(hash_cls())))
            sig = r.to_bytes(size, "big") + s.to_bytes(size, "big")
        return f"{header}.{payload}.{b64url(sig)}"


def split(token: str) -> tuple[dict[str, Any], dict[str, Any], bytes, bytes]:
    """→ (header, claims, signing input, signature); JWTError when not a compact JWS."""
    parts = token.split(".")
    if len(parts) != 3:
        raise JWTError("not a compact JWS")
    try:
        header = orjson.loads(b64url_decode(parts[0]))
        claims = orjson.loads(b64url_decode(parts[1]))
    except orjson.JSONDecodeError as e:
        raise JWTError("malformed JSON in token") from e
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise JWTError("malformed token")
    return header, claims, f"{parts[0]}.{parts[1]}".encode("ascii"), b64url_decode(parts[2])


class Verifier:
    """Checks signatures against a set of public keys (several during key rotation)."""

    def __init__(self, keys: list[PublicKey]) -> None:
        self.keys = [(key_id(k), _alg_of(k), k) for k in keys]

    def verify(self, token: str) -> tuple[dict[str, Any], dict[str, Any]]:
        header, claims, signing_input, sig = split(token)
        alg = header.get("alg")
        kid = header.get("kid")
        candidates = [k for k in self.keys if k[1] == alg and (not kid or k[0] == kid)]
        if not candidates:
            # an unknown kid may still be one of our keys (tokens from another kid scheme)
            candidates = [k for k in self.keys if k[1] == alg]
        for _, _, key in candidates:
            if _verify(key, alg, signing_input, sig):
                return header, claims
        raise JWTError("invalid signature")


def _verify(key: PublicKey, alg: str, signing_input: bytes, sig: bytes) -> bool:
    try:
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(sig, signing_input, padding.PKCS1v15(), hashes.SHA256())
        else:
            _, hash_cls, size = _EC_ALGS[key.curve.name]
            if len(sig) != 2 * size:
                return False
            der = encode_dss_signature(int.from_bytes(sig[:size], "big"), int.from_bytes(sig[size:], "big"))
            key.verify(der, signing_input, ec.ECDSA(hash_cls()))
        return True
    except InvalidSignature:
        return False
