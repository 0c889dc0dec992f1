"""What every namespace needs before pods can run in it: the `default` ServiceAccount and
the `kube-root-ca.crt` ConfigMap (the CA bundle projected into pods' token volumes).

Upstream's controller-manager publishes both (serviceaccount-controller and
root-ca-cert-publisher). Until our controller-manager does, the apiserver does it itself:
for every existing namespace at start, for each new namespace as the watch cache sees it,
and again when either object is deleted or (the ConfigMap) changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from apimachinery import errors

if TYPE_CHECKING:
    from apiserver.server import APIServer

log = logging.getLogger("apiserver.namespace_publisher")

ROOT_CA_CONFIGMAP = "kube-root-ca.crt"
DEFAULT_SERVICE_ACCOUNT = "default"
DESCRIPTION = (
    "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints "
    "such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across "
    "distributions of Kubernetes clusters."
)


class NamespacePublisher:
    def __init__(self, server: APIServer, ca_file: str | None) -> None:
        self.server = server
        self.ca_pem = Path(ca_file).read_text() if ca_file else None
        self._pending: set[str] = set()
        self._task: asyncio.Task[None] | None = None
        self.ns_cache = server.cache_for("", "namespaces")
        self.ns_cache.listeners.append(self._on_namespace)
        server.cache_for("", "serviceaccounts").listeners.append(self._on_service_account)
        server.cache_for("", "configmaps").listeners.append(self._on_configmap)

    # -- triggers ------------------------------------------------------------------------

    def _on_namespace(self, ev: Any) -> None:
        if ev.type != "DELETED":
            self.enqueue(ev.entry.name)

    def _on_service_account(self, ev: Any) -> None:
        if ev.type == "DELETED" and ev.entry.name == DEFAULT_SERVICE_ACCOUNT:
            self.enqueue(ev.entry.namespace)

    def _on_configmap(self, ev: Any) -> None:
        if ev.entry.name != ROOT_CA_CONFIGMAP or self.ca_pem is None:
            return
        if ev.type == "DELETED" or (orjson.loads(ev.entry.data).get("data") or {}).get("ca.crt") != self.ca_pem:
            self.enqueue(ev.entry.namespace)

    def enqueue(self, namespace: str) -> None:
        self._pending.add(namespace)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="namespace-publisher")

    # -- work ----------------------------------------------------------------------------

    async def _run(self) -> None:
        while self._pending:
            batch = list(self._pending)
            self._pending.clear()
            results = await asyncio.gather(*(self.publish(ns) for ns in batch), return_exceptions=True)
            for ns, r in zip(batch, results, strict=True):
                if isinstance(r, Exception):
                    log.warning("publishing defaults into namespace %s failed: %s; retrying", ns, r)
                    self._pending.add(ns)
            if self._pending:
                await asyncio.sleep(0.5 if any(isinstance(r, Exception) for r in results) else 0)

    async def publish_all(self) -> None:
        """Every namespace that exists now (called from the apiserver's bootstrap)."""
        kvs, _, _ = await self.server.store.list("/registry/namespaces/")
        await asyncio.gather(*(self.publish(kv.decode()["metadata"]["name"]) for kv in kvs))

    async def publish(self, namespace: str) -> None:
        from apiserver.bootstrap import SYSTEM_USER

        kv = await self.server.store.get(f"/registry/namespaces/{namespace}")
        if kv is None:
            return
        ns = kv.decode()
        if ns["metadata"].get("deletionTimestamp") or (ns.get("status") or {}).get("phase") == "Terminating":
            return
        api = self.server.api
        sa_res = self.server.resource("", "serviceaccounts")
        if await self.server.store.get(sa_res.key(namespace, DEFAULT_SERVICE_ACCOUNT)) is None:
            await _create(api, sa_res, namespace, {
                "apiVersion": "v1", "kind": "ServiceAccount",
                "metadata": {"name": DEFAULT_SERVICE_ACCOUNT, "namespace": namespace},
            }, SYSTEM_USER)
        if self.ca_pem is None:
            return
        cm_res = self.server.resource("", "configmaps")
        want = {
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": ROOT_CA_CONFIGMAP, "namespace": namespace,
                         "annotations": {"kubernetes.io/description": DESCRIPTION}},
            "data": {"ca.crt": self.ca_pem},
        }
        current = await self.server.store.get(cm_res.key(namespace, ROOT_CA_CONFIGMAP))
        if current is None:
            await _create(api, cm_res, namespace, want, SYSTEM_USER)
            return
        if (current.decode().get("data") or {}).get("ca.crt") == self.ca_pem:
            return

        async def mutate(old: dict[str, Any]) -> dict[str, Any]:
            new = dict(old)
            new["metadata"] = dict(old["metadata"])
            new["metadata"].pop("resourceVersion", None)
            new["data"] = want["data"]
            return new

        with contextlib.suppress(errors.StatusError):
            await api.update_object(cm_res, namespace, ROOT_CA_CONFIGMAP, mutate, "", SYSTEM_USER, False, {}, "")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task


async def _create(api: Any, res: Any, namespace: str, obj: dict[str, Any], user: Any) -> None:
    try:
        await api.create_object(res, namespace, obj, user, False, {})
    except errors.StatusError as e:
        # 409: someone else made it; 403/404: the namespace is going away
        if e.code not in (403, 404, 409):
            raise
