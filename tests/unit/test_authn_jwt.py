"""apiserver.authn.jwt: compact JWS signing and verification (RS256, ES256)."""

from __future__ import annotations

import base64
import hashlib

import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from apiserver.authn.jwt import (
    JWTError,
    Signer,
    Verifier,
    b64url,
    b64url_decode,
    key_id,
    load_private_key,
    load_public_keys,
)


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def test_b64url_round_trip_without_padding() -> None:
    for data in (b"", b"a", b"ab", b"abc", bytes(range(256))):
        s = b64url(data)
        assert "=" not in s and "+" not in s and "/" not in s
        assert b64url_decode(s) == data


def test_key_id_is_sha256_of_the_spki(rsa_key: rsa.RSAPrivateKey) -> None:
    der = rsa_key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    expected = base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()
    assert key_id(rsa_key.public_key()) == expected


@pytest.mark.parametrize("which", ["rsa", "ec"])
def test_sign_and_verify(which: str, rsa_key, ec_key) -> None:
    key = rsa_key if which == "rsa" else ec_key
    token = Signer(key).sign({"sub": "x", "n": 1})
    header = orjson.loads(b64url_decode(token.split(".")[0]))
    assert header == {"alg": "RS256" if which == "rsa" else "ES256", "kid": key_id(key.public_key())}
    got_header, claims = Verifier([key.public_key()]).verify(token)
    assert claims == {"sub": "x", "n": 1} and got_header == header


def test_tampered_payload_fails(rsa_key) -> None:
    token = Signer(rsa_key).sign({"sub": "alice"})
    h, _, s = token.split(".")
    forged = b64url(orjson.dumps({"sub": "admin"}))
    with pytest.raises(JWTError):
        Verifier([rsa_key.public_key()]).verify(f"{h}.{forged}.{s}")


def test_other_key_fails_and_rotation_accepts_both(rsa_key) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = Signer(other).sign({"sub": "x"})
    with pytest.raises(JWTError):
        Verifier([rsa_key.public_key()]).verify(token)
    assert Verifier([rsa_key.public_key(), other.public_key()]).verify(token)[1] == {"sub": "x"}


def test_alg_none_and_garbage_are_rejected(rsa_key) -> None:
    v = Verifier([rsa_key.public_key()])
    none_token = b64url(b'{"alg":"none"}') + "." + b64url(b'{"sub":"x"}') + "."
    for bad in (none_token, "a.b", "not-a-token", "a.b.c.d", b64url(b"[]") + "." + b64url(b"{}") + ".xx"):
        with pytest.raises(JWTError):
            v.verify(bad)


def test_key_files(tmp_path, rsa_key, ec_key) -> None:
    priv = tmp_path / "sa.key"
    priv.write_bytes(rsa_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    pub = tmp_path / "sa.pub"
    pub.write_bytes(
        rsa_key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        + ec_key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    assert key_id(load_private_key(priv).public_key()) == key_id(rsa_key.public_key())
    assert [key_id(k) for k in load_public_keys(pub)] == [key_id(rsa_key.public_key()), key_id(ec_key.public_key())]
    # a private key file also works as the verifying key file (as upstream accepts)
    assert [key_id(k) for k in load_public_keys(priv)] == [key_id(rsa_key.public_key())]
    empty = tmp_path / "empty.pem"
    empty.write_text("nothing here")
    with pytest.raises(ValueError):
        load_public_keys(empty)
