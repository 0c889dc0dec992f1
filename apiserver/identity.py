"""The apiserver's identity Lease (upstream's APIServerIdentity): who serves this cluster.

Each apiserver keeps a Lease `kube-system/apiserver-<hash of its hostname>` labelled
`apiserver.kubernetes.io/identity=kube-apiserver` and `kubernetes.io/hostname=<host>`, holder
`<name>_<uuid>`, renewed every 10 s for an hour's duration. A restarted apiserver replaces the one
it left; once an hour every apiserver deletes identity leases that expired (an apiserver that
went away for good). Its own lease goes on a graceful stop.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import hashlib
import logging
import random
import socket
import struct
import uuid
from typing import TYPE_CHECKING, Any

from apimachinery import errors
from apimachinery.meta import now_micro, parse_time
from apimachinery.selectors import selector_from_set
from apiserver.bootstrap import SYSTEM_USER
from apiserver.watchcache import Filter

if TYPE_CHECKING:
    from apiserver.server import APIServer

log = logging.getLogger("apiserver.identity")

IDENTITY_LABEL = "apiserver.kubernetes.io/identity"
KUBE_APISERVER = "kube-apiserver"
HOSTNAME_LABEL = "kubernetes.io/hostname"
NAMESPACE = "kube-system"
LEASE_DURATION_SECONDS = 3600
RENEW_INTERVAL = 10.0
GC_PERIOD = 3600.0


def apiserver_id(hostname: str) -> str:
    """`apiserver-` and the lower-case base32 of the first 16 bytes of sha256 over the
    length-prefixed hostname and component name (upstream's APIServerID)."""
    data = b"".join(struct.pack(">H", len(p)) + p for p in (hostname.encode(), KUBE_APISERVER.encode()))
    digest = hashlib.sha256(data).digest()[:16]
    return "apiserver-" + base64.b32encode(digest).decode().rstrip("=").lower()


def is_expired(lease: dict[str, Any], now: dt.datetime) -> bool:
    """Renewed longer ago than its duration; one without either is expired too (upstream's GC)."""
    spec = lease.get("spec") or {}
    renew, duration = spec.get("renewTime"), spec.get("leaseDurationSeconds")
    if not renew or duration is None:
        return True
    try:
        return parse_time(renew) + dt.timedelta(seconds=int(duration)) < now
    except (ValueError, TypeError):
        return True


class IdentityLease:
    def __init__(self, server: APIServer, hostname: str | None = None) -> None:
        self.server = server
        self.hostname = hostname or socket.gethostname()
        self.name = apiserver_id(self.hostname)
        self.holder = f"{self.name}_{uuid.uuid4()}"

    @property
    def _res(self) -> Any:
        return self.server.resource("coordination.k8s.io", "leases")

    def _lease(self) -> dict[str, Any]:
        return {
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": self.name, "namespace": NAMESPACE,
                         "labels": {IDENTITY_LABEL: KUBE_APISERVER, HOSTNAME_LABEL: self.hostname}},
            "spec": {"holderIdentity": self.holder, "leaseDurationSeconds": LEASE_DURATION_SECONDS,
                     "renewTime": now_micro()},
        }

    async def run(self) -> None:
        """Replace what a previous run of this apiserver left, then renew until cancelled."""
        await self.delete()
        while True:
            try:
                await self.renew()
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.warning("renewing the identity lease %s: %s", self.name, e)
            await asyncio.sleep(RENEW_INTERVAL * (1 + 0.04 * random.random()))

    async def renew(self) -> None:
        lease = self._lease()

        async def mutate(old: dict[str, Any]) -> dict[str, Any]:
            new = {**old, "spec": {**(old.get("spec") or {}), **lease["spec"]}}
            new["metadata"] = {**old["metadata"], "labels": {**(old["metadata"].get("labels") or {}),
                                                             **lease["metadata"]["labels"]}}
            new["metadata"].pop("resourceVersion", None)
            return new

        try:
            await self.server.api.update_object(self._res, NAMESPACE, self.name, mutate, "", SYSTEM_USER, False, {}, "")
        except errors.StatusError as e:
            if e.code != 404:
                raise
            await self.server.api.create_object(self._res, NAMESPACE, lease, SYSTEM_USER, False, {})

    async def delete(self) -> None:
        with contextlib.suppress(errors.StatusError):  # not there: nothing to replace
            await self.server.api.delete_object(self._res, NAMESPACE, self.name, {}, SYSTEM_USER, {})


async def collect_expired(server: APIServer, now: dt.datetime | None = None) -> list[str]:
    """Delete the expired identity leases of kube-apiservers; their names."""
    res = server.resource("coordination.k8s.io", "leases")
    now = now or dt.datetime.now(dt.UTC)
    flt = Filter(namespace=NAMESPACE, labels=selector_from_set({IDENTITY_LABEL: KUBE_APISERVER}))
    deleted = []
    for entry in server.cache_for("coordination.k8s.io", "leases").list(flt):
        kv = await server.store.get(res.key(NAMESPACE, entry.name))  # the latest, before deleting
        if kv is None or not is_expired(kv.decode(), now):
            continue
        with contextlib.suppress(errors.StatusError):
            await server.api.delete_object(res, NAMESPACE, entry.name, {}, SYSTEM_USER, {})
            deleted.append(entry.name)
    return deleted


async def collect_periodically(server: APIServer) -> None:
    while True:
        try:
            gone = await collect_expired(server)
            if gone:
                log.info("deleted expired apiserver identity leases: %s", ", ".join(gone))
        except asyncio.CancelledError:
            raise
        except Exception as e:
            log.warning("collecting expired apiserver identity leases: %s", e)
        await asyncio.sleep(GC_PERIOD)
