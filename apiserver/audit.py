"""Audit: one JSON line per API request (user, verb, resource, code, latency).

Written to a buffered file, flushed one second after the first unflushed line, so that it
stays off the request's latency; with no path configured, nothing is written.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson


class AuditLog:
    def __init__(self, path: str | None) -> None:
        self._f = open(path, "ab", buffering=1 << 16) if path else None
        self._flush_pending = False

    def record(self, req: Any, info: Any, code: int, seconds: float,
               annotations: dict[str, str] | None = None) -> None:
        if self._f is None:
            return
        # as upstream's audit events: `user` is who authenticated, `impersonatedUser` whom they acted as
        impersonator = req.scope.get("minik8s.impersonator")
        user = impersonator or req.user
        line: dict[str, Any] = {
            "ts": time.time(),
            "user": user.name if user else None,
            "groups": list(user.groups) if user else None,
            "method": req.method,
            "path": req.path,
            "code": code,
            "ms": round(seconds * 1000, 3),
        }
        if impersonator is not None:
            line["impersonatedUser"] = req.user.as_dict()
        if info is not None and info.is_resource:
            line.update(
                verb=info.verb,
                group=info.group,
                resource=info.resource,
                subresource=info.subresource or None,
                namespace=info.namespace or None,
                name=info.name or None,
            )
        ua = req.header(b"user-agent")
        if ua:
            line["userAgent"] = ua
        if annotations:  # e.g. admission webhooks' auditAnnotations, as upstream's audit event carries them
            line["annotations"] = annotations
        self._f.write(orjson.dumps(line) + b"\n")
        if not self._flush_pending:  # a timer, not the next request: an idle server's lines land too
            self._flush_pending = True
            asyncio.get_running_loop().call_later(1.0, self._flush)

    def _flush(self) -> None:
        self._flush_pending = False
        if self._f is not None:
            self._f.flush()

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None
