"""ServiceAccount tokens for projected volumes, requested through TokenRequest and refreshed.

Tokens are bound to the pod (boundObjectRef with its uid), cached per (service account,
audiences, lifetime, pod) and refreshed once 80 % of their lifetime has passed or they are a
day old — upstream's token manager rules.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from apimachinery.meta import parse_time
from client import APIClient

log = logging.getLogger("kubelet.tokens")

MAX_TTL_BEFORE_REFRESH = 24 * 3600


@dataclass
class _Token:
    token: str
    issued: float
    expires: float

    def needs_refresh(self, now: float) -> bool:
        lifetime = self.expires - self.issued
        return now >= self.issued + 0.8 * lifetime or now - self.issued > MAX_TTL_BEFORE_REFRESH


class TokenManager:
    def __init__(self, api: APIClient, clock=time.time) -> None:
        self.api = api
        self.clock = clock
        self._cache: dict[tuple[Any, ...], _Token] = {}

    async def token(
        self, pod: dict[str, Any], service_account: str, audiences: list[str], expiration_seconds: int
    ) -> str:
        meta = pod["metadata"]
        key = (meta.get("namespace"), service_account, tuple(audiences), expiration_seconds, meta["uid"])
        now = self.clock()
        cached = self._cache.get(key)
        if cached is not None and not cached.needs_refresh(now):
            return cached.token
        body: dict[str, Any] = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {
                "audiences": list(audiences),
                "expirationSeconds": expiration_seconds,
                "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": meta["name"], "uid": meta["uid"]},
            },
        }
        try:
            out = await self.api.resource("v1", "serviceaccounts").create_subresource(
                service_account, "token", body, meta.get("namespace")
            )
        except Exception:
            if cached is not None and cached.expires > now:
                log.warning("refreshing the token of %s/%s failed; keeping the current one", meta.get("namespace"),
                            service_account, exc_info=True)
                return cached.token
            raise
        status = out.get("status") or {}
        expires = now + expiration_seconds
        if status.get("expirationTimestamp"):
            expires = parse_time(status["expirationTimestamp"]).timestamp()
        self._cache[key] = _Token(status.get("token", ""), now, expires)
        return self._cache[key].token

    def forget_pod(self, uid: str) -> None:
        for key in [k for k in self._cache if k[4] == uid]:
            del self._cache[key]

    def next_refresh(self) -> float | None:
        """Seconds until the earliest cached token needs a refresh (None when there are none)."""
        if not self._cache:
            return None
        now = self.clock()
        return max(0.0, min(t.issued + 0.8 * (t.expires - t.issued) for t in self._cache.values()) - now)
