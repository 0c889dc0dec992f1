"""Read one object the way the security stages need it: from the watch cache, else from etcd.

Authentication and admission look objects up on every request; the watch cache answers
in microseconds. A miss (the object may be newer than the cache) falls back to etcd, as
upstream's informer-backed getters fall back to a live read.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from apiserver.server import APIServer


async def get_object(server: APIServer, group: str, plural: str, ns: str, name: str) -> dict[str, Any] | None:
    res = server.resource(group, plural)
    cache = server.caches.get(res.storage_prefix)
    key = res.key(ns, name)
    if cache is not None and cache.ready.is_set():
        entry = cache.get(key)
        if entry is not None:
            return orjson.loads(entry.data)
    kv = await server.store.get(key)
    return kv.decode() if kv is not None else None

