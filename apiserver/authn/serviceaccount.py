"""ServiceAccount tokens: bound JWTs signed with the cluster's SA key (upstream pkg/serviceaccount).

Claims as upstream writes them: `iss`, `sub` = `system:serviceaccount:<ns>:<name>`, `aud`,
`exp`, `iat`, `nbf`, `jti`, and the private `kubernetes.io` claim naming the namespace, the
ServiceAccount (name, uid) and what the token is bound to (pod, secret or node; name, uid).

A token is valid while its signature verifies, the issuer is ours, it is within
`nbf`..`exp` (one minute of leeway), one of its audiences is expected, and the objects it
names still exist with the same uids — deleting the pod revokes its tokens.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from apiserver.authn import UserInfo, bearer_token
from apiserver.authn.jwt import JWTError, Signer, Verifier

log = logging.getLogger("apiserver.authn.serviceaccount")

SA_PREFIX = "system:serviceaccount:"
ALL_SERVICE_ACCOUNTS = "system:serviceaccounts"
LEEWAY = 60  # seconds, go-jose's DefaultLeeway
#: Tokens the kubelet asks for with this lifetime are issued for a year but flagged stale
#: after it (upstream's safe rollout of time-bound tokens).
WARN_ONLY_EXPIRATION = 3607
EXTENDED_EXPIRATION = 24 * 365 * 3600

EXTRA_POD_NAME = "authentication.kubernetes.io/pod-name"
EXTRA_POD_UID = "authentication.kubernetes.io/pod-uid"
EXTRA_NODE_NAME = "authentication.kubernetes.io/node-name"
EXTRA_NODE_UID = "authentication.kubernetes.io/node-uid"
EXTRA_CREDENTIAL_ID = "authentication.kubernetes.io/credential-id"

#: (group, plural, namespace, name) → the object or None
Getter = Callable[[str, str, str, str], Awaitable[dict[str, Any] | None]]


def sa_username(namespace: str, name: str) -> str:
    return f"{SA_PREFIX}{namespace}:{name}"


def split_sa_username(username: str) -> tuple[str, str] | None:
    """`system:serviceaccount:ns:name` → (ns, name), else None."""
    if not username.startswith(SA_PREFIX):
        return None
    ns, sep, name = username[len(SA_PREFIX):].partition(":")
    if not sep or not ns or not name or ":" in name:
        return None
    return ns, name


def sa_groups(namespace: str) -> tuple[str, ...]:
    return (ALL_SERVICE_ACCOUNTS, f"{ALL_SERVICE_ACCOUNTS}:{namespace}")


class TokenInvalid(Exception):
    """A token of ours that is not (or no longer) valid; the message says why (TokenReview shows it)."""


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str
    expiration: int  # unix seconds


class TokenIssuer:
    def __init__(self, signer: Signer, issuer: str) -> None:
        self.signer = signer
        self.issuer = issuer

    def issue(
        self,
        sa: dict[str, Any],
        audiences: list[str],
        expiration_seconds: int,
        *,
        pod: dict[str, Any] | None = None,
        secret: dict[str, Any] | None = None,
        node: dict[str, Any] | None = None,
        warn_after: int = 0,
        now: int | None = None,
    ) -> IssuedToken:
        now = int(time.time()) if now is None else now
        meta = sa["metadata"]
        ns = meta["namespace"]
        private: dict[str, Any] = {
            "namespace": ns,
            "serviceaccount": {"name": meta["name"], "uid": meta.get("uid", "")},
        }
        if pod is not None:
            private["pod"] = _ref(pod)
        elif secret is not None:
            private["secret"] = _ref(secret)
        if node is not None:
            private["node"] = _ref(node)
        if warn_after:
            private["warnafter"] = now + warn_after
        exp = now + expiration_seconds
        claims = {
            "aud": audiences,
            "exp": exp,
            "iat": now,
            "iss": self.issuer,
            "jti": str(uuid.uuid4()),
            "kubernetes.io": private,
            "nbf": now,
            "sub": sa_username(ns, meta["name"]),
        }
        return IssuedToken(self.signer.sign(claims), exp)


def _ref(obj: dict[str, Any]) -> dict[str, str]:
    return {"name": obj["metadata"]["name"], "uid": obj["metadata"].get("uid", "")}


class ServiceAccountAuthenticator:
    """Bearer-token authenticator for bound ServiceAccount tokens."""

    CACHE_SIZE = 4096

    def __init__(self, verifier: Verifier, issuers: list[str], api_audiences: list[str], getter: Getter) -> None:
        self.verifier = verifier
        self.issuers = frozenset(issuers)
        self.api_audiences = list(api_audiences)
        self.get = getter
        # signature checks cost tens of microseconds; the token string is the cache key
        self._verified: OrderedDict[str, dict[str, Any]] = OrderedDict()

    async def authenticate(self, req: Any) -> UserInfo | None:
        token = bearer_token(req)
        if not token:
            return None
        try:
            result = await self.authenticate_token(token, None)
        except TokenInvalid as e:
            log.debug("service account token rejected: %s", e)
            return None
        return result[0] if result else None

    async def authenticate_token(self, token: str, audiences: list[str] | None) -> tuple[UserInfo, list[str]] | None:
        """None when the token is not one of ours; TokenInvalid when it is ours but not valid."""
        claims = self._claims(token)
        if claims is None:
            return None
        private = claims.get("kubernetes.io")
        if not isinstance(private, dict):
            return None  # legacy secret-based tokens are not issued here
        now = time.time()
        exp, nbf = claims.get("exp"), claims.get("nbf")
        if not isinstance(exp, (int, float)) or now > exp + LEEWAY:
            raise TokenInvalid("service account token has expired")
        if isinstance(nbf, (int, float)) and now < nbf - LEEWAY:
            raise TokenInvalid("service account token is not valid yet")
        token_aud = claims.get("aud")
        if isinstance(token_aud, str):
            token_aud = [token_aud]
        wanted = audiences or self.api_audiences
        matched = [a for a in wanted if a in (token_aud or ())]
        if not matched:
            raise TokenInvalid(f"token audiences {_quote_list(token_aud or [])} is invalid for the target audiences {_quote_list(wanted)}")
        ns = private.get("namespace")
        sa_ref = private.get("serviceaccount") or {}
        if not isinstance(ns, str) or not isinstance(sa_ref, dict) or not sa_ref.get("name"):
            raise TokenInvalid("service account token claims are malformed")
        sa = await self.get("", "serviceaccounts", ns, sa_ref["name"])
        if sa is None:
            raise TokenInvalid(f'serviceaccounts "{sa_ref["name"]}" not found')
        _check_alive(sa, now, f"service account {ns}/{sa_ref['name']} has been deleted")
        if sa["metadata"].get("uid") != sa_ref.get("uid"):
            raise TokenInvalid(f"service account UID ({sa['metadata'].get('uid')}) does not match claim ({sa_ref.get('uid')})")
        extra: dict[str, tuple[str, ...]] = {}
        for kind, plural, namespaced in (("secret", "secrets", True), ("pod", "pods", True), ("node", "nodes", False)):
            ref = private.get(kind)
            if not isinstance(ref, dict):
                continue
            obj = await self.get("", plural, ns if namespaced else "", ref.get("name") or "")
            if obj is None:
                raise TokenInvalid("service account token has been invalidated")
            _check_alive(obj, now, "service account token has been invalidated")
            if obj["metadata"].get("uid") != ref.get("uid"):
                raise TokenInvalid(f"{kind} UID ({obj['metadata'].get('uid')}) does not match service account {kind} ref claim ({ref.get('uid')})")
            if kind == "pod":
                extra[EXTRA_POD_NAME] = (ref["name"],)
                extra[EXTRA_POD_UID] = (ref["uid"],)
            elif kind == "node":
                extra[EXTRA_NODE_NAME] = (ref["name"],)
                extra[EXTRA_NODE_UID] = (ref["uid"],)
        if claims.get("jti"):
            extra[EXTRA_CREDENTIAL_ID] = (f"JTI={claims['jti']}",)
        user = UserInfo(sa_username(ns, sa_ref["name"]), sa_ref.get("uid", ""), sa_groups(ns), extra)
        return user, matched

    def _claims(self, token: str) -> dict[str, Any] | None:
        claims = self._verified.get(token)
        if claims is not None:
            self._verified.move_to_end(token)
            return claims
        if token.count(".") != 2:
            return None
        try:
            _, claims = self.verifier.verify(token)
        except JWTError:
            return None
        if claims.get("iss") not in self.issuers:
            return None
        self._verified[token] = claims
        if len(self._verified) > self.CACHE_SIZE:
            self._verified.popitem(last=False)
        return claims


def _check_alive(obj: dict[str, Any], now: float, message: str) -> None:
    """Objects deleted more than the leeway ago no longer vouch for a token."""
    ts = obj["metadata"].get("deletionTimestamp")
    if not ts:
        return
    from apimachinery.meta import parse_time

    if parse_time(ts).timestamp() < now - LEEWAY:
        raise TokenInvalid(message)


def _quote_list(items: list[str]) -> str:
    return "[" + " ".join(f'"{i}"' for i in items) + "]"
