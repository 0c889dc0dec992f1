"""Bootstrap tokens: `<id>.<secret>` backed by kube-system secrets."""

from __future__ import annotations

import base64
import time
from typing import Any

import pytest

from apimachinery.bootstraptoken import BootstrapToken
from apiserver.authn.bootstrap import BootstrapTokenAuthenticator, token_groups
from apiserver.authn.serviceaccount import TokenInvalid


def b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


def secret(token_id: str = "abcdef", token_secret: str = "0123456789abcdef", **data: str) -> dict[str, Any]:
    values = {"token-id": token_id, "token-secret": token_secret, "usage-bootstrap-authentication": "true", **data}
    return {
        "metadata": {"name": f"bootstrap-token-{token_id}", "namespace": "kube-system"},
        "type": "bootstrap.kubernetes.io/token",
        "data": {k: b64(v) for k, v in values.items()},
    }


def authenticator(*secrets: dict[str, Any]) -> BootstrapTokenAuthenticator:
    by_name = {s["metadata"]["name"]: s for s in secrets}

    async def get(group: str, plural: str, ns: str, name: str) -> dict[str, Any] | None:
        assert (plural, ns) == ("secrets", "kube-system")
        return by_name.get(name)

    return BootstrapTokenAuthenticator(get)


async def test_valid_token() -> None:
    a = authenticator(secret(**{"auth-extra-groups": "system:bootstrappers:kubeadm:default-node-token"}))
    user, _ = await a.authenticate_token("abcdef.0123456789abcdef", None)
    assert user.name == "system:bootstrap:abcdef"
    assert user.groups == ("system:bootstrappers", "system:bootstrappers:kubeadm:default-node-token")


async def test_not_a_bootstrap_token_is_passed_on() -> None:
    a = authenticator(secret())
    for token in ("abcdef.0123456789abcde", "ABCDEF.0123456789abcdef", "a.b.c", "abcdef0123456789abcdef"):
        assert await a.authenticate_token(token, None) is None


@pytest.mark.parametrize("case", ["missing", "wrong-secret", "expired", "no-usage", "wrong-type", "deleting", "id-mismatch"])
async def test_rejected_tokens(case: str) -> None:
    s = secret()
    if case == "missing":
        a = authenticator()
    else:
        if case == "wrong-secret":
            s = secret(token_secret="ffffffffffffffff")
        elif case == "expired":
            s = secret(expiration=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 60)))
        elif case == "no-usage":
            s["data"]["usage-bootstrap-authentication"] = b64("false")
        elif case == "wrong-type":
            s["type"] = "Opaque"
        elif case == "deleting":
            s["metadata"]["deletionTimestamp"] = "2020-01-01T00:00:00Z"
        elif case == "id-mismatch":
            s["data"]["token-id"] = b64("zzzzzz")
        a = authenticator(s)
    with pytest.raises(TokenInvalid):
        await a.authenticate_token("abcdef.0123456789abcdef", None)


async def test_future_expiration_is_fine() -> None:
    a = authenticator(secret(expiration=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))))
    assert (await a.authenticate_token("abcdef.0123456789abcdef", None))[0].name == "system:bootstrap:abcdef"


def test_extra_groups_must_be_bootstrappers() -> None:
    assert token_groups(BootstrapToken.from_secret(secret(
        **{"auth-extra-groups": "system:bootstrappers:a, system:bootstrappers:a"}))) == (
        "system:bootstrappers", "system:bootstrappers:a")
    with pytest.raises(TokenInvalid):
        token_groups(BootstrapToken.from_secret(secret(**{"auth-extra-groups": "system:masters"})))
