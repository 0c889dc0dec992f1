"""Bootstrap tokens: `<id>.<secret>` bearer tokens backed by Secrets in kube-system.

A new node authenticates with one to join the cluster (upstream's bootstrap token
authenticator). The Secret is `kube-system/bootstrap-token-<id>` of type
`bootstrap.kubernetes.io/token` with data `token-id`, `token-secret`,
`usage-bootstrap-authentication: "true"`, optionally `expiration` (RFC 3339) and
`auth-extra-groups` (comma-separated, each `system:bootstrappers:...`). The user is
`system:bootstrap:<id>` in `system:bootstrappers` plus those extra groups.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import re
import time
from typing import Any

from apimachinery.meta import parse_time
from apiserver.authn import UserInfo, bearer_token
from apiserver.authn.serviceaccount import Getter, TokenInvalid

log = logging.getLogger("apiserver.authn.bootstrap")

TOKEN_RE = re.compile(r"^([a-z0-9]{6})\.([a-z0-9]{16})$")
EXTRA_GROUP_RE = re.compile(r"^system:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]$")
SECRET_TYPE = "bootstrap.kubernetes.io/token"
SECRET_PREFIX = "bootstrap-token-"
NAMESPACE = "kube-system"
BOOTSTRAPPERS = "system:bootstrappers"
USER_PREFIX = "system:bootstrap:"


def secret_string(secret: dict[str, Any], key: str) -> str:
    raw = (secret.get("data") or {}).get(key)
    if not isinstance(raw, str):
        return ""
    try:
        return base64.b64decode(raw, validate=True).decode()
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return ""


def token_groups(secret: dict[str, Any]) -> tuple[str, ...]:
    groups = [BOOTSTRAPPERS]
    for g in secret_string(secret, "auth-extra-groups").split(","):
        g = g.strip()
        if not g:
            continue
        if not EXTRA_GROUP_RE.match(g):
            raise TokenInvalid(f"bootstrap group {g!r} is invalid (must match {EXTRA_GROUP_RE.pattern})")
        if g not in groups:
            groups.append(g)
    return tuple(groups)


class BootstrapTokenAuthenticator:
    def __init__(self, getter: Getter) -> None:
        self.get = getter

    async def authenticate(self, req: Any) -> UserInfo | None:
        token = bearer_token(req)
        if not token:
            return None
        try:
            result = await self.authenticate_token(token, None)
        except TokenInvalid as e:
            log.debug("bootstrap token rejected: %s", e)
            return None
        return result[0] if result else None

    async def authenticate_token(self, token: str, audiences: list[str] | None) -> tuple[UserInfo, list[str]] | None:
        m = TOKEN_RE.match(token)
        if m is None:
            return None
        token_id, token_secret = m.group(1), m.group(2)
        secret = await self.get("", "secrets", NAMESPACE, SECRET_PREFIX + token_id)
        if secret is None:
            raise TokenInvalid(f"no bootstrap token with id {token_id}")
        if secret.get("type") != SECRET_TYPE:
            raise TokenInvalid(f"secret {NAMESPACE}/{SECRET_PREFIX}{token_id} is not of type {SECRET_TYPE}")
        if secret["metadata"].get("deletionTimestamp"):
            raise TokenInvalid("bootstrap token is being deleted")
        if not hmac.compare_digest(secret_string(secret, "token-secret").encode(), token_secret.encode()):
            raise TokenInvalid("bootstrap token secret does not match")
        if secret_string(secret, "token-id") != token_id:
            raise TokenInvalid("bootstrap token id does not match its secret")
        expiration = secret_string(secret, "expiration")
        if expiration:
            try:
                expired = parse_time(expiration).timestamp() < time.time()
            except ValueError:
                expired = True
            if expired:
                raise TokenInvalid("bootstrap token has expired")
        if secret_string(secret, "usage-bootstrap-authentication") != "true":
            raise TokenInvalid("bootstrap token is not usable for authentication")
        # audiences: bootstrap tokens are valid for the API server's own audiences only
        return UserInfo(USER_PREFIX + token_id, "", token_groups(secret)), list(audiences or [])
