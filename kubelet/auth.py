"""Who may use the kubelet's HTTPS API: x509 client certificates signed by the cluster CA or
bearer tokens (TokenReview), authorized by the apiserver (SubjectAccessReview) against
`nodes/<subresource>` of this node — upstream's webhook authn/authz, with its cache TTLs.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from client import APIClient

log = logging.getLogger("kubelet.auth")

TOKEN_CACHE_TTL = 120.0
ALLOWED_TTL = 300.0
DENIED_TTL = 30.0


@dataclass(frozen=True)
class User:
    name: str
    groups: tuple[str, ...] = ()
    uid: str = ""
    extra: dict[str, tuple[str, ...]] = field(default_factory=dict, hash=False, compare=False)


def user_from_peercert(peercert: dict[str, Any] | None) -> User | None:
    if not peercert:
        return None
    cn, orgs = "", []
    for rdn in peercert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                cn = value
            elif key == "organizationName":
                orgs.append(value)
    return User(cn, (*orgs, "system:authenticated")) if cn else None


def subresource_for(path: str) -> str:
    """upstream's kubelet auth: which nodes/<subresource> a path needs."""
    first = path.strip("/").split("/", 1)[0]
    return {"stats": "stats", "metrics": "metrics", "logs": "log", "spec": "spec",
            "checkpoint": "checkpoint", "configz": "configz", "healthz": "healthz"}.get(first, "proxy")


def verb_for(method: str, path: str, websocket: bool) -> str:
    first = path.strip("/").split("/", 1)[0]
    if first in ("exec", "attach", "portForward", "run") and websocket:
        return "create"  # a websocket upgrade is a GET, but it does what a POST does
    return {"GET": "get", "HEAD": "get", "POST": "create", "PUT": "update", "PATCH": "patch",
            "DELETE": "delete"}.get(method, method.lower())


class KubeletAuth:
    def __init__(self, api: APIClient | None, node_name: str, *, anonymous: bool = False,
                 webhook_authn: bool = True, authorization_mode: str = "Webhook") -> None:
        self.api = api
        self.node_name = node_name
        self.anonymous = anonymous
        self.webhook_authn = webhook_authn
        self.authorization_mode = authorization_mode
        self._tokens: dict[str, tuple[float, User | None]] = {}
        self._decisions: dict[tuple[Any, ...], tuple[float, bool, str]] = {}

    async def authenticate(self, peercert: dict[str, Any] | None, authorization: str) -> User | None:
        user = user_from_peercert(peercert)
        if user is not None:
            return user
        if authorization.lower().startswith("bearer ") and self.webhook_authn and self.api is not None:
            return await self._review_token(authorization[7:].strip())
        if self.anonymous:
            return User("system:anonymous", ("system:unauthenticated",))
        return None

    async def _review_token(self, token: str) -> User | None:
        key = hashlib.sha256(token.encode()).hexdigest()
        now = time.monotonic()
        cached = self._tokens.get(key)
        if cached is not None and now - cached[0] < TOKEN_CACHE_TTL:
            return cached[1]
        assert self.api is not None
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}}
        try:
            out = await self.api.request("POST", "/apis/authentication.k8s.io/v1/tokenreviews", body=body)
        except Exception as e:
            log.warning("TokenReview failed: %s", e)
            return None
        status = out.get("status") or {}
        user = None
        if status.get("authenticated"):
            u = status.get("user") or {}
            user = User(u.get("username", ""), tuple(u.get("groups") or ()), u.get("uid", ""),
                        {k: tuple(v) for k, v in (u.get("extra") or {}).items()})
        self._tokens[key] = (now, user)
        if len(self._tokens) > 4096:
            self._tokens.clear()
        return user

    async def authorize(self, user: User, verb: str, subresource: str) -> tuple[bool, str]:
        if self.authorization_mode == "AlwaysAllow":
            return True, ""
        if self.api is None:
            return False, "no authorizer configured"
        key = (user.name, user.groups, verb, subresource)
        now = time.monotonic()
        cached = self._decisions.get(key)
        if cached is not None and now - cached[0] < (ALLOWED_TTL if cached[1] else DENIED_TTL):
            return cached[1], cached[2]
        spec: dict[str, Any] = {
            "user": user.name,
            "groups": list(user.groups),
            "resourceAttributes": {"verb": verb, "resource": "nodes", "subresource": subresource,
                                   "name": self.node_name, "group": "", "version": "v1"},
        }
        if user.uid:
            spec["uid"] = user.uid
        if user.extra:
            spec["extra"] = {k: list(v) for k, v in user.extra.items()}
        body = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": spec}
        try:
            out = await self.api.request("POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", body=body)
        except Exception as e:
            log.warning("SubjectAccessReview failed: %s", e)
            return False, f"authorization failed: {e}"
        status = out.get("status") or {}
        allowed, reason = bool(status.get("allowed")), status.get("reason", "")
        self._decisions[key] = (now, allowed, reason)
        if len(self._decisions) > 4096:
            self._decisions.clear()
        return allowed, reason
