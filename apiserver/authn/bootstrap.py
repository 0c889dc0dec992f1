"""Bootstrap tokens: `<id>.<secret>` bearer tokens backed by Secrets in kube-system.

A new node authenticates with one to join the cluster (upstream's bootstrap token
authenticator). The Secret is `kube-system/bootstrap-token-<id>` of type
`bootstrap.kubernetes.io/token` with data `token-id`, `token-secret`,
`usage-bootstrap-authentication: "true"`, optionally `expiration` (RFC 3339) and
`auth-extra-groups` (comma-separated, each `system:bootstrappers:...`). The user is
`system:bootstrap:<id>` in `system:bootstrappers` plus those extra groups.
"""

from __future__ import annotations

import hmac
import logging
from typing import Any

from apimachinery.bootstraptoken import (
    BOOTSTRAPPERS,
    EXTRA_GROUP_RE,
    NAMESPACE,
    SECRET_PREFIX,
    TOKEN_RE,
    BootstrapToken,
)
from apiserver.authn import UserInfo, bearer_token
from apiserver.authn.serviceaccount import Getter, TokenInvalid

log = logging.getLogger("apiserver.authn.bootstrap")

USER_PREFIX = "system:bootstrap:"


def token_groups(token: BootstrapToken) -> tuple[str, ...]:
    """system:bootstrappers and the token's valid extra groups (an invalid one refuses the token)."""
    groups = [BOOTSTRAPPERS]
    for g in token.groups:
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
        token = BootstrapToken.from_secret(secret)  # None: wrong type, or token-id not the name's
        if token is None:
            raise TokenInvalid(f"secret {NAMESPACE}/{SECRET_PREFIX}{token_id} is not a bootstrap token")
        if secret["metadata"].get("deletionTimestamp"):
            raise TokenInvalid("bootstrap token is being deleted")
        if not hmac.compare_digest(token.token_secret.encode(), token_secret.encode()):
            raise TokenInvalid("bootstrap token secret does not match")
        if token.expired():
            raise TokenInvalid("bootstrap token has expired")
        if "authentication" not in token.usages:
            raise TokenInvalid("bootstrap token is not usable for authentication")
        # audiences: bootstrap tokens are valid for the API server's own audiences only
        return UserInfo(USER_PREFIX + token_id, "", token_groups(token)), list(audiences or [])
