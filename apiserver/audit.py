"""Audit: one JSON line per API request (user, verb, resource, code, latency).

Written to a buffered file (flushed at least every second) so that it stays off the
request's latency; with no path configured, nothing is written.
"""

from __future__ import annotations

import time
from typing import Any

import orjson


class AuditLog:
    def __init__(self, path: str | None) -> None:
        self._f = open(path, "ab", buffering=1 << 16) if path else None
        self._last_flush = time.monotonic()

    def record(self, req: Any, info: Any, code: int, seconds: float) -> None:
        if self._f is None:
            return
        user = req.user
        line: dict[str, Any] = {
            "ts": time.time(),
            "user": user.name if user else None,
            "groups": list(user.groups) if user else None,
            "method": req.method,
            "path": req.path,
            "code": code,
            "ms": round(seconds * 1000, 3),
        }
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
        self._f.write(orjson.dumps(line) + b"\n")
        now = time.monotonic()
        if now - self._last_flush > 1.0:
            self._f.flush()
            self._last_flush = now

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None
