"""ConfigMaps and Secrets the node's pods reference, each kept current by its own watch.

Upstream's watch-based manager: a node may only read objects its pods use, one by one
(`fieldSelector=metadata.name=<name>`), so every referenced object gets a single-object
informer for as long as some pod references it. Changes call `on_change(users)` with the uids
of the pods using the object, so they resync (volume contents are rewritten, atomically).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from client import APIClient, Informer, is_not_found

log = logging.getLogger("kubelet.objectcache")

SYNC_TIMEOUT = 10.0


class _Entry:
    def __init__(self, informer: Informer) -> None:
        self.informer = informer
        self.users: set[str] = set()


class ObjectCache:
    def __init__(self, api: APIClient, plural: str, on_change: Callable[[set[str]], None]) -> None:
        self.api = api
        self.plural = plural
        self.on_change = on_change
        self._entries: dict[tuple[str, str], _Entry] = {}
        self._refs_of: dict[str, set[tuple[str, str]]] = {}  # pod uid → what it references

    def set_references(self, pod_uid: str, refs: set[tuple[str, str]]) -> None:
        """Make `pod_uid` reference exactly `refs` ((namespace, name) pairs). Called on every
        sync of a pod, so it costs only the difference to the pod's previous references."""
        old = self._refs_of.get(pod_uid, set())
        if old == refs:
            return
        for key in old - refs:
            entry = self._entries.get(key)
            if entry is not None:
                entry.users.discard(pod_uid)
                if not entry.users:
                    self._drop(key)
        for key in refs - old:
            entry = self._entries.get(key)
            if entry is None:
                entry = self._entries[key] = _Entry(self._informer(*key))
            entry.users.add(pod_uid)
        if refs:
            self._refs_of[pod_uid] = set(refs)
        else:
            self._refs_of.pop(pod_uid, None)

    def users(self, namespace: str, name: str) -> set[str]:
        """Uids of the pods referencing the object."""
        entry = self._entries.get((namespace, name))
        return set(entry.users) if entry is not None else set()

    def forget_pod(self, pod_uid: str) -> None:
        self.set_references(pod_uid, set())

    def _informer(self, namespace: str, name: str) -> Informer:
        informer = Informer(self.api, "v1", self.plural, namespace=namespace, field_selector=f"metadata.name={name}")

        def changed(*_: Any) -> None:
            if informer.has_synced:
                self.on_change(self.users(namespace, name))

        informer.add_handler(changed, lambda old, new: changed(), changed)
        informer.start()
        return informer

    def _drop(self, key: tuple[str, str]) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            asyncio.get_running_loop().create_task(entry.informer.stop())

    async def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The object, or None when it does not exist. Falls back to a GET if not referenced."""
        entry = self._entries.get((namespace, name))
        if entry is not None and await entry.informer.wait_synced(SYNC_TIMEOUT):
            return entry.informer.store.get(f"{namespace}/{name}")
        try:
            return await self.api.resource("v1", self.plural).get(name, namespace)
        except Exception as e:
            if is_not_found(e):
                return None
            raise

    async def stop(self) -> None:
        entries = list(self._entries.values())
        self._entries.clear()
        self._refs_of.clear()
        await asyncio.gather(*(e.informer.stop() for e in entries), return_exceptions=True)

    def __len__(self) -> int:
        return len(self._entries)


def pod_object_references(pod: dict[str, Any]) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    """(configmaps, secrets) a pod reads: volumes, projections, env and envFrom (not pull secrets)."""
    ns = pod["metadata"].get("namespace", "default")
    spec = pod.get("spec") or {}
    cms: set[tuple[str, str]] = set()
    secrets: set[tuple[str, str]] = set()
    for v in spec.get("volumes") or []:
        if (v.get("configMap") or {}).get("name"):
            cms.add((ns, v["configMap"]["name"]))
        if (v.get("secret") or {}).get("secretName"):
            secrets.add((ns, v["secret"]["secretName"]))
        for src in (v.get("projected") or {}).get("sources") or []:
            if (src.get("configMap") or {}).get("name"):
                cms.add((ns, src["configMap"]["name"]))
            if (src.get("secret") or {}).get("name"):
                secrets.add((ns, src["secret"]["name"]))
    for key in ("initContainers", "containers", "ephemeralContainers"):
        for c in spec.get(key) or []:
            for e in c.get("env") or []:
                vf = e.get("valueFrom") or {}
                if (vf.get("configMapKeyRef") or {}).get("name"):
                    cms.add((ns, vf["configMapKeyRef"]["name"]))
                if (vf.get("secretKeyRef") or {}).get("name"):
                    secrets.add((ns, vf["secretKeyRef"]["name"]))
            for ef in c.get("envFrom") or []:
                if (ef.get("configMapRef") or {}).get("name"):
                    cms.add((ns, ef["configMapRef"]["name"]))
                if (ef.get("secretRef") or {}).get("name"):
                    secrets.add((ns, ef["secretRef"]["name"]))
    return cms, secrets
