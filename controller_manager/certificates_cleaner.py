"""The CSR cleaner: delete CertificateSigningRequests that have served their purpose
(upstream pkg/controller/certificates/cleaner, "csrcleaner").

Upstream's periods: an approved request 1 hour after its certificate was issued (the Approved
condition's lastUpdateTime), a denied or failed one 1 hour after that condition, a pending one
(no conditions) 24 hours after creation, and an issued one as soon as its certificate expired.
Upstream lists every request once an hour; here each request is looked at again exactly when its
deadline comes (the informer brings it back on every change).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from apimachinery.meta import parse_time
from certs import csr as csrlib
from client import is_not_found
from controller_manager.base import Controller, ControllerContext, register

Obj = dict[str, Any]
CSR_API = "certificates.k8s.io/v1"

APPROVED_EXPIRATION = dt.timedelta(hours=1)
DENIED_EXPIRATION = dt.timedelta(hours=1)
FAILED_EXPIRATION = dt.timedelta(hours=1)
PENDING_EXPIRATION = dt.timedelta(hours=24)


def cleanup_deadline(csr: Obj) -> dt.datetime | None:
    """When `csr` is to be deleted (None: never, as it stands)."""
    deadlines: list[dt.datetime] = []
    conds = csrlib.conditions(csr)
    issued = bool(csrlib.issued_certificate(csr))
    for c in conds:
        t = csrlib.condition_update_time(c)
        typ = c.get("type")
        if typ == csrlib.APPROVED and issued:
            if t is not None:
                deadlines.append(t + APPROVED_EXPIRATION)
            not_after = csrlib.certificate_not_after(csr)
            if not_after is not None:
                deadlines.append(not_after)
        elif typ == csrlib.DENIED and t is not None:
            deadlines.append(t + DENIED_EXPIRATION)
        elif typ == csrlib.FAILED and t is not None:
            deadlines.append(t + FAILED_EXPIRATION)
    created = (csr.get("metadata") or {}).get("creationTimestamp")
    if not conds and created:
        try:
            deadlines.append(parse_time(created) + PENDING_EXPIRATION)
        except ValueError:
            pass
    return min(deadlines) if deadlines else None


@register
class CSRCleanerController(Controller):
    name = "csrcleaner-controller"
    aliases = ("csrcleaner",)
    service_account = "certificate-controller"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.csrs = self.watch(CSR_API, "certificatesigningrequests")
        self.api = self.client.resource(CSR_API, "certificatesigningrequests")

    async def sync(self, key: str) -> None:
        csr = self.csrs.store.get(key)
        if csr is None or csr["metadata"].get("deletionTimestamp"):
            return
        deadline = cleanup_deadline(csr)
        if deadline is None:
            return
        left = (deadline - self.clock.now()).total_seconds()
        if left > 0:
            self.enqueue_after(key, left)
            return
        try:
            await self.api.delete(key, preconditions={"uid": csr["metadata"]["uid"]})
        except Exception as e:
            if not is_not_found(e):
                raise RuntimeError(f'unable to delete CSR "{key}": {e}') from e
            return
        self.log.info("deleted csr %s", key)
