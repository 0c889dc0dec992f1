"""ServiceAccount tokens: what is issued and what the authenticator accepts or rejects."""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from apiserver.authn.jwt import Signer, Verifier, b64url_decode
from apiserver.authn.serviceaccount import (
    EXTRA_CREDENTIAL_ID,
    EXTRA_NODE_NAME,
    EXTRA_POD_NAME,
    EXTRA_POD_UID,
    ServiceAccountAuthenticator,
    TokenInvalid,
    TokenIssuer,
    sa_username,
    split_sa_username,
)

ISSUER = "https://kubernetes.default.svc.cluster.local"


class Objects:
    """A getter over a dict: (plural, ns, name) → object."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}

    def add(self, plural: str, ns: str, name: str, uid: str, **extra: Any) -> dict[str, Any]:
        obj = {"metadata": {"name": name, "namespace": ns, "uid": uid, **extra.pop("meta", {})}, **extra}
        self.objects[(plural, ns, name)] = obj
        return obj

    async def __call__(self, group: str, plural: str, ns: str, name: str) -> dict[str, Any] | None:
        return self.objects.get((plural, ns, name))


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def world(key):
    objs = Objects()
    sa = objs.add("serviceaccounts", "ns1", "bot", "sa-uid")
    issuer = TokenIssuer(Signer(key), ISSUER)
    auth = ServiceAccountAuthenticator(Verifier([key.public_key()]), [ISSUER], [ISSUER], objs)
    return objs, sa, issuer, auth


def claims_of(token: str) -> dict[str, Any]:
    return orjson.loads(b64url_decode(token.split(".")[1]))


def test_usernames() -> None:
    assert sa_username("ns", "n") == "system:serviceaccount:ns:n"
    assert split_sa_username("system:serviceaccount:ns:n") == ("ns", "n")
    for bad in ("alice", "system:serviceaccount:ns", "system:serviceaccount::n", "system:serviceaccount:a:b:c"):
        assert split_sa_username(bad) is None


def test_issued_claims_are_upstreams(world) -> None:
    objs, sa, issuer, _ = world
    pod = objs.add("pods", "ns1", "p", "pod-uid")
    node = objs.add("nodes", "", "n1", "node-uid")
    issued = issuer.issue(sa, ["aud1"], 3600, pod=pod, node=node, warn_after=3607, now=1000)
    c = claims_of(issued.token)
    assert issued.expiration == 4600
    assert c["iss"] == ISSUER and c["sub"] == "system:serviceaccount:ns1:bot" and c["aud"] == ["aud1"]
    assert (c["iat"], c["nbf"], c["exp"]) == (1000, 1000, 4600) and c["jti"]
    assert c["kubernetes.io"] == {
        "namespace": "ns1", "serviceaccount": {"name": "bot", "uid": "sa-uid"},
        "pod": {"name": "p", "uid": "pod-uid"}, "node": {"name": "n1", "uid": "node-uid"}, "warnafter": 4607,
    }


async def test_valid_token_yields_the_service_account_user(world) -> None:
    objs, sa, issuer, auth = world
    pod = objs.add("pods", "ns1", "p", "pod-uid")
    token = issuer.issue(sa, [ISSUER], 3600, pod=pod).token
    user, auds = await auth.authenticate_token(token, None)
    assert user.name == "system:serviceaccount:ns1:bot" and user.uid == "sa-uid"
    assert user.groups == ("system:serviceaccounts", "system:serviceaccounts:ns1")
    assert user.extra[EXTRA_POD_NAME] == ("p",) and user.extra[EXTRA_POD_UID] == ("pod-uid",)
    assert user.extra[EXTRA_CREDENTIAL_ID][0].startswith("JTI=")
    assert EXTRA_NODE_NAME not in user.extra
    assert auds == [ISSUER]


@pytest.mark.parametrize("case", ["expired", "not-yet", "audience", "sa-gone", "sa-recreated", "pod-gone", "pod-recreated"])
async def test_invalid_tokens(world, case: str) -> None:
    objs, sa, issuer, auth = world
    pod = objs.add("pods", "ns1", "p", "pod-uid")
    now = int(time.time())
    kw: dict[str, Any] = {"pod": pod}
    audiences, lifetime, issued_at = [ISSUER], 3600, now
    if case == "expired":
        issued_at = now - 7200  # beyond the minute of leeway
    elif case == "not-yet":
        issued_at = now + 600
    elif case == "audience":
        audiences = ["somebody-else"]
    token = issuer.issue(sa, audiences, lifetime, now=issued_at, **kw).token
    if case == "sa-gone":
        del objs.objects[("serviceaccounts", "ns1", "bot")]
    elif case == "sa-recreated":
        objs.add("serviceaccounts", "ns1", "bot", "another-uid")
    elif case == "pod-gone":
        del objs.objects[("pods", "ns1", "p")]
    elif case == "pod-recreated":
        objs.add("pods", "ns1", "p", "another-uid")
    with pytest.raises(TokenInvalid):
        await auth.authenticate_token(token, None)


async def test_requested_audiences_for_token_review(world) -> None:
    _, sa, issuer, auth = world
    token = issuer.issue(sa, ["vault", "other"], 3600).token
    _, auds = await auth.authenticate_token(token, ["vault"])
    assert auds == ["vault"]
    with pytest.raises(TokenInvalid):
        await auth.authenticate_token(token, None)  # not for the API server


async def test_foreign_tokens_are_not_ours(world, key) -> None:
    _objs, sa, _, auth = world
    other_issuer = TokenIssuer(Signer(key), "https://someone.example")
    assert await auth.authenticate_token(other_issuer.issue(sa, [ISSUER], 3600).token, None) is None
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert await auth.authenticate_token(TokenIssuer(Signer(stranger), ISSUER).issue(sa, [ISSUER], 3600).token, None) is None
    assert await auth.authenticate_token("abcdef.0123456789abcdef", None) is None
    assert await auth.authenticate_token("garbage", None) is None


async def test_deleted_object_keeps_tokens_valid_only_within_leeway(world) -> None:
    _objs, sa, issuer, auth = world
    token = issuer.issue(sa, [ISSUER], 3600).token
    sa["metadata"]["deletionTimestamp"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 30))
    assert await auth.authenticate_token(token, None) is not None  # graceful deletion still running
    sa["metadata"]["deletionTimestamp"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 3600))
    with pytest.raises(TokenInvalid):
        await auth.authenticate_token(token, None)
