"""The filter upstream uses instead of APF (`--enable-priority-and-fairness=false`): WithMaxInFlightLimit.

Read-only requests (get, list, watch) and mutating ones each have their own limit
(`--max-requests-inflight`, `--max-mutating-requests-inflight`; 0: none); a request over it is
answered 429 at once (Retry-After: 1) — unless its user is in system:masters. Long-running requests
are not counted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from apiserver.authn import MASTERS, UserInfo
from apiserver.flowcontrol.controller import Seat, TooManyRequests, request_kind
from apiserver.requestinfo import RequestInfo, is_long_running

if TYPE_CHECKING:
    from apiserver.server import APIServer


class MaxInFlight:
    def __init__(self, server: APIServer, read_only: int, mutating: int) -> None:
        self.server = server
        self.limits = {"readOnly": read_only, "mutating": mutating}

    def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def admit(self, user: UserInfo, info: RequestInfo, gone: Any = None) -> Seat | None:
        """At once or not at all (the max-in-flight filter has no queue, so `gone` is not needed)."""
        if is_long_running(info):
            return None
        kind = request_kind(info)
        limit = self.limits[kind]
        if limit and self.server.inflight[kind] >= limit:
            if MASTERS in user.groups:  # a super-admin always gets an answer (upstream)
                return None
            raise TooManyRequests([(b"retry-after", b"1")])
        self.server.inflight[kind] += 1
        return Seat(self, None, ("", ""), kind, [])

    def finished(self, seat: Seat) -> None:
        self.server.inflight[seat.kind] -= 1
