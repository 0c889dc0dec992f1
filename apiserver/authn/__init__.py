"""Authentication: who is calling. Each authenticator yields a UserInfo or passes.

Stage one of the request pipeline. No credentials → 401, unless anonymous access was
explicitly enabled.
"""

from __future__ import annotations

import csv
import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from apimachinery import errors

log = logging.getLogger("apiserver.authn")

AUTHENTICATED = "system:authenticated"
UNAUTHENTICATED = "system:unauthenticated"
ANONYMOUS = "system:anonymous"
MASTERS = "system:masters"


@dataclass(frozen=True, slots=True)
class UserInfo:
    name: str
    uid: str = ""
    groups: tuple[str, ...] = ()
    extra: dict[str, tuple[str, ...]] = field(default_factory=dict, hash=False, compare=False)

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"username": self.name, "groups": list(self.groups)}
        if self.uid:
            d["uid"] = self.uid
        if self.extra:
            d["extra"] = {k: list(v) for k, v in self.extra.items()}
        return d


def with_authenticated(user: UserInfo) -> UserInfo:
    if AUTHENTICATED in user.groups or user.name == ANONYMOUS:
        return user
    return UserInfo(user.name, user.uid, (*user.groups, AUTHENTICATED), user.extra)


class Authenticator(Protocol):
    async def authenticate(self, req: Any) -> UserInfo | None: ...


class ClientCertAuthenticator:
    """x509: the TLS layer verified the chain against the cluster CA; CN is the user, O the groups."""

    async def authenticate(self, req: Any) -> UserInfo | None:
        return req.scope.get("minik8s.peer_user")


def user_from_peercert(peercert: dict[str, Any] | None) -> UserInfo | None:
    """Build a user from `ssl.SSLObject.getpeercert()` (only set when the chain verified)."""
    if not peercert:
        return None
    cns: list[str] = []
    orgs: list[str] = []
    for rdn in peercert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                cns.append(value)
            elif key == "organizationName":
                orgs.append(value)
    # Go's pkix.Name.CommonName: the last CN — the one certs.csr.common_name (and so the CSR
    # approver) reads too
    cn = cns[-1] if cns else ""
    if not cn:
        return None
    return UserInfo(cn, "", tuple(orgs))


class TokenFileAuthenticator:
    """Static bearer tokens from a CSV file: token,user,uid,"group1,group2" (upstream's format)."""

    def __init__(self, path: str | Path) -> None:
        self.tokens: dict[str, UserInfo] = {}
        self._seen: dict[str, UserInfo] = {}
        with open(path, newline="") as f:
            for lineno, row in enumerate(csv.reader(f), 1):
                if not row or row[0].startswith("#"):
                    continue
                if len(row) < 3:
                    raise ValueError(f"{path}:{lineno}: expected token,user,uid[,groups]")
                groups = tuple(g.strip() for g in row[3].split(",") if g.strip()) if len(row) > 3 else ()
                # keyed by digest: the lookup reveals nothing about near-miss tokens
                self.tokens[_digest(row[0].strip())] = UserInfo(row[1].strip(), row[2].strip(), groups)

    async def authenticate(self, req: Any) -> UserInfo | None:
        token = bearer_token(req)
        if not token:
            return None
        user = self._seen.get(token)
        if user is None:
            user = self.tokens.get(_digest(token))
            if user is not None and len(self._seen) < 1024:
                self._seen[token] = user  # the file's tokens only: bounded by its size
        return user

    async def authenticate_token(self, token: str, audiences: list[str] | None) -> tuple[UserInfo, list[str]] | None:
        user = self.tokens.get(_digest(token))
        return (user, list(audiences or [])) if user is not None else None


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def bearer_token(req: Any) -> str:
    auth = req.header(b"authorization")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    return ""


class AuthenticatorChain:
    def __init__(self, authenticators: list[Any], anonymous: bool = False, api_audiences: list[str] | None = None) -> None:
        self.authenticators = authenticators
        self.anonymous = anonymous
        self.api_audiences = list(api_audiences or [])

    async def review_token(self, token: str, audiences: list[str] | None) -> tuple[UserInfo, list[str]]:
        """TokenReview: the user behind a bearer token and the audiences it is valid for.

        Raises ValueError with the reason when no token authenticator accepts it.
        """
        reason = "invalid bearer token"
        for a in self.authenticators:
            check = getattr(a, "authenticate_token", None)
            if check is None:
                continue
            try:
                result = await check(token, audiences)
            except Exception as e:  # one authenticator's reason; others may still accept
                reason = str(e) or reason
                continue
            if result is not None:
                user, auds = result
                return with_authenticated(user), auds or list(audiences or self.api_audiences)
        raise ValueError(reason)

    async def authenticate(self, req: Any) -> UserInfo:
        for a in self.authenticators:
            user = await a.authenticate(req)
            if user is not None:
                return with_authenticated(user)
        if bearer_token(req):
            # A token was presented and nobody accepted it: never fall back to anonymous.
            raise errors.unauthorized()
        if self.anonymous:
            return UserInfo(ANONYMOUS, "", (UNAUTHENTICATED,))
        raise errors.unauthorized()
