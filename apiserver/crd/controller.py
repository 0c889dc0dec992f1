"""What upstream's apiextensions-apiserver runs beside its handlers, here in the apiserver
itself: the naming controller (NamesAccepted, acceptedNames), the establishing controller
(Established), serving (rows in the resource table, a watch cache per definition) and the
finalizer controller (deleting a definition deletes its objects first).

One queue of definition names; `sync(name)` looks at the cached definition and does whatever
is due, so repeated or reordered events are harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

import orjson

from apimachinery import errors
from apimachinery.meta import now
from apiserver.bootstrap import SYSTEM_USER
from apiserver.crd import openapi as crd_openapi
from apiserver.crd.resource import accepted_names, rows_for, storage_row
from apiserver.registry.apiextensions import (
    CLEANUP_FINALIZER,
    ESTABLISHED,
    NAMES_ACCEPTED,
    TERMINATING,
    condition_true,
    set_condition,
)
from apiserver.watchcache import CacheEvent, WatchCache

if TYPE_CHECKING:
    from apiserver.server import APIServer

log = logging.getLogger("apiserver.crd")

GROUP = "apiextensions.k8s.io"
NAME_FIELDS = (("plural", "PluralConflict"), ("singular", "SingularConflict"), ("kind", "KindConflict"),
               ("listKind", "ListKindConflict"))
#: How often a terminating definition whose objects are still held (finalizers) is looked at again.
CLEANUP_RECHECK = 1.0


def with_condition(status: dict[str, Any], ctype: str, value: str, reason: str, message: str) -> None:
    """Set a condition in a definition's status (upstream's SetCRDCondition)."""
    set_condition({"status": status}, ctype, value, reason, message, now())


def _names(data: bytes) -> Any:
    crd = orjson.loads(data)
    return crd["spec"].get("names"), (crd.get("status") or {}).get("acceptedNames")


class CRDController:
    def __init__(self, server: APIServer) -> None:
        self.server = server
        self.res = server.resource(GROUP, "customresourcedefinitions")
        self.cache: WatchCache = server.caches[self.res.storage_prefix]
        self.queue: asyncio.Queue[str] = asyncio.Queue()
        self.queued: set[str] = set()
        #: what each served definition was served from (its resourceVersion), to skip no-op rebuilds
        self.served: dict[str, str] = {}
        self.definitions: dict[str, dict[str, Any]] = {}  # the served definitions, by name
        self.cache_prefixes: dict[str, str] = {}  # the watch cache of each definition, by name
        self._base_definitions: dict[str, dict[str, Any]] | None = None
        self._task: asyncio.Task[None] | None = None
        self.synced = False
        self._publishing: set[asyncio.Task[None]] = set()
        #: each definition's group and accepted names, by name, with the revision they were read at
        #: (decoding every other definition on every sync made a start with N definitions O(N²))
        self._names: dict[str, tuple[int, str, tuple[str, ...], tuple[str, ...]]] = {}

    def start(self) -> None:
        self.cache.listeners.append(self._on_event)
        self._task = asyncio.create_task(self._run(), name="crd-controller")

    async def stop(self) -> None:
        for task in [self._task, *self._publishing]:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    def _on_event(self, ev: CacheEvent) -> None:
        self.enqueue(ev.entry.name)
        if ev.type == "DELETED" or (ev.prev is not None and _names(ev.prev.data) != _names(ev.entry.data)):
            # names were given up: another definition may now get the ones it wanted
            for other in self.cache.objects.values():
                self.enqueue(other.name)

    def enqueue(self, name: str) -> None:
        if name not in self.queued:
            self.queued.add(name)
            self.queue.put_nowait(name)

    async def _run(self) -> None:
        await self.cache.ready.wait()
        for entry in list(self.cache.objects.values()):
            self.enqueue(entry.name)
        initial = self.queue.qsize()
        while True:
            if initial == 0:
                self.synced = True  # every stored definition was looked at once (readyz waits for it)
            initial -= 1
            name = await self.queue.get()
            self.queued.discard(name)
            try:
                await self.sync(name)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # etcd down, a conflict: try again shortly
                log.warning("custom resource definition %s: %s; retrying", name, e)
                asyncio.get_running_loop().call_later(1.0, self.enqueue, name)

    def _get(self, name: str) -> dict[str, Any] | None:
        entry = self.cache.get(self.res.key("", name))
        return orjson.loads(entry.data) if entry is not None else None

    # -- one definition -----------------------------------------------------------------

    async def sync(self, name: str) -> None:
        crd = self._get(name)
        if crd is None:
            await self._unserve(name)
            return
        if crd["metadata"].get("deletionTimestamp"):
            await self._finalize(crd)
            return
        status = self._names_status(crd)
        if condition_true({"status": status}, NAMES_ACCEPTED) or condition_true(crd, ESTABLISHED):
            # serve first, then say so: a client that waits for Established can use the API at once
            self._serve({**crd, "status": status})
            if not condition_true(crd, ESTABLISHED):
                with_condition(status, ESTABLISHED, "True", "InitialNamesAccepted",
                               "the initial names have been accepted")
        if status != crd.get("status"):
            await self._write_status(name, status)

    def _accepted_names(self, entry: Any) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
        """A definition's group, accepted resource names and accepted kinds (decoded once per revision)."""
        known = self._names.get(entry.name)
        if known is not None and known[0] == entry.revision:
            return known[1:]
        other = orjson.loads(entry.data)
        acc = (other.get("status") or {}).get("acceptedNames") or {}
        resources = tuple(n for n in (acc.get("plural"), acc.get("singular"), *(acc.get("shortNames") or ())) if n)
        kinds = tuple(n for n in (acc.get("kind"), acc.get("listKind")) if n)
        group = (other.get("spec") or {}).get("group") or ""
        if len(self._names) > 2 * len(self.cache.objects) + 16:  # forget deleted definitions now and then
            live = {e.name for e in self.cache.objects.values()}
            self._names = {k: v for k, v in self._names.items() if k in live}
        self._names[entry.name] = (entry.revision, group, resources, kinds)
        return group, resources, kinds

    def _names_status(self, crd: dict[str, Any]) -> dict[str, Any]:
        """Upstream's naming controller: each requested name is accepted unless another definition
        of the group (or a built-in resource) has it; a conflicting name keeps the one accepted
        before. Resource names (plural, singular, short names) and kinds (kind, listKind) are two
        pools; when several conflict, the condition names the last one checked, as upstream."""
        status = orjson.loads(orjson.dumps(crd.get("status") or {}))
        names = crd["spec"]["names"]
        group = crd["spec"]["group"]
        resources: set[str] = set()
        kinds: set[str] = set()
        for entry in self.cache.objects.values():
            if entry.name == crd["metadata"]["name"]:
                continue
            other_group, other_resources, other_kinds = self._accepted_names(entry)
            if other_group == group:
                resources.update(other_resources)
                kinds.update(other_kinds)
        for r in self.server.table.static:
            if r.group == group:
                resources.add(r.plural)
                kinds.update((r.kind, r.list_kind))
        accepted = dict(status.get("acceptedNames") or {})
        new = dict(accepted)
        problem: tuple[str, str] | None = None
        for field, pool, reason in (("plural", resources, "PluralConflict"), ("singular", resources, "SingularConflict"),
                                    ("kind", kinds, "KindConflict"), ("listKind", kinds, "ListKindConflict")):
            if field == "kind":  # short names are checked between the resource names and the kinds
                shorts = names.get("shortNames") or []
                clash = [n for n in shorts if n not in (accepted.get("shortNames") or []) and n in resources]
                if clash:
                    problem = ("ShortNamesConflict", f'"{clash[0]}" is already in use')
                else:
                    new["shortNames"] = shorts
            requested = names.get(field) or ""
            if requested != accepted.get(field) and requested in pool:
                problem = (reason, f'"{requested}" is already in use')
            else:
                new[field] = requested
        new["categories"] = names.get("categories") or []
        status["acceptedNames"] = {k: v for k, v in new.items() if v not in (None, [])} | \
            {"plural": new.get("plural") or "", "kind": new.get("kind") or ""}
        if problem is None:
            with_condition(status, NAMES_ACCEPTED, "True", "NoConflicts", "no conflicts found")
        else:
            with_condition(status, NAMES_ACCEPTED, "False", *problem)
            if not condition_true(crd, ESTABLISHED):
                with_condition(status, ESTABLISHED, "False", "NotAccepted", "not all names are accepted")
        return status

    async def _write_status(self, name: str, status: dict[str, Any]) -> None:
        def change(new: dict[str, Any]) -> None:
            new["status"] = status

        await self._update(name, change, "status")

    async def _update(self, name: str, change: Any, subresource: str) -> None:
        """Write the definition changed by `change(copy)` as the apiserver (gone is fine)."""
        async def mutate(old: dict[str, Any]) -> dict[str, Any]:
            new = orjson.loads(orjson.dumps(old))
            new["metadata"].pop("resourceVersion", None)
            change(new)
            return new

        try:
            await self.server.api.update_object(self.res, "", name, mutate, "", SYSTEM_USER, False, {}, subresource)
        except errors.StatusError as e:
            if e.code != 404:
                raise

    # -- serving ------------------------------------------------------------------------

    def _serve(self, crd: dict[str, Any], terminating: bool = False) -> None:
        name = crd["metadata"]["name"]
        stamp = f"{crd['metadata'].get('resourceVersion')}/{terminating}/{orjson.dumps(crd.get('status'))!r}"
        if self.served.get(name) == stamp:
            return
        rows = rows_for(crd, terminating)
        before = {(r.group, r.version) for r in self.server.table.dynamic.get(name, ())}
        # the cache belongs to the definition, not to its served versions (there may be none)
        storage = storage_row(crd)
        if storage.storage_prefix not in self.server.caches:
            group, plural = crd["spec"]["group"], accepted_names(crd)["plural"]

            def fields(obj: dict[str, Any]) -> dict[str, str]:
                return self.server.api.field_set(self.server.table.by_plural(group, plural) or storage, obj)

            cache = WatchCache(self.server.store, storage.storage_prefix, storage.namespaced, fields)
            self.server.caches[storage.storage_prefix] = cache
            cache.start()
            self.server.quota.track(storage, cache)
        self.cache_prefixes[name] = storage.storage_prefix
        self.server.table.set_dynamic(name, rows)
        self.definitions[name] = crd
        self._publish(before | {(r.group, r.version) for r in rows})
        self.served[name] = stamp

    async def _unserve(self, name: str) -> None:
        before = {(r.group, r.version) for r in self.server.table.dynamic.get(name, ())}
        self.server.table.set_dynamic(name, [])
        self.definitions.pop(name, None)
        self._publish(before)
        self.served.pop(name, None)
        prefix = self.cache_prefixes.pop(name, None)
        if prefix is not None and prefix not in self.cache_prefixes.values():
            cache = self.server.caches.pop(prefix, None)
            if cache is not None:
                await cache.stop()

    def _publish(self, group_versions: set[tuple[str, str]]) -> None:
        """OpenAPI documents and Local APIServices of these group versions, as now served."""
        for work in (self._publish_when_loaded(group_versions), self._register_api_services(group_versions)):
            task = asyncio.create_task(work, name="crd-publish")
            self._publishing.add(task)
            task.add_done_callback(self._publishing.discard)

    async def _register_api_services(self, group_versions: set[tuple[str, str]]) -> None:
        try:
            await self.server.aggregator.sync_custom_groups(group_versions)
        except Exception as e:  # etcd down: the next change of a definition catches up
            log.warning("APIServices of custom resources %s: %s", sorted(group_versions), e)

    async def _publish_when_loaded(self, group_versions: set[tuple[str, str]]) -> None:
        """Rebuild the OpenAPI documents of these custom group versions from what is served then
        (once the built-in documents are loaded: custom ones borrow their meta definitions)."""
        openapi = self.server.openapi
        await openapi.ready()
        if self._base_definitions is None:
            self._base_definitions = crd_openapi.base_definitions(openapi.builtin_v3())
        for group, version in group_versions:
            served = [(self.definitions[n], r) for n, rows in self.server.table.dynamic.items()
                      for r in rows if (r.group, r.version) == (group, version)]
            doc = crd_openapi.gv_document(group, version, served, self._base_definitions) if served else None
            openapi.set_custom(f"apis/{group}/{version}", doc)

    # -- deletion (upstream's finalizer controller) -------------------------------------

    async def _finalize(self, crd: dict[str, Any]) -> None:
        name = crd["metadata"]["name"]
        if CLEANUP_FINALIZER not in (crd["metadata"].get("finalizers") or []):
            return  # cleaned up; others' finalizers keep it
        if condition_true(crd, ESTABLISHED):
            self._serve(crd, terminating=True)  # no new objects from now on
        status = orjson.loads(orjson.dumps(crd.get("status") or {}))
        with_condition(status, TERMINATING, "True", "InstanceDeletionInProgress",
                       "CustomResource deletion is in progress")
        if status != crd.get("status"):
            await self._write_status(name, status)
        left = await self._delete_objects(crd)
        if left:
            status = orjson.loads(orjson.dumps(status))
            with_condition(status, TERMINATING, "True", "InstanceDeletionCheck",
                           f"could not confirm zero CustomResources remaining: {left} objects still exist")
            if status != crd.get("status"):
                await self._write_status(name, status)
            asyncio.get_running_loop().call_later(CLEANUP_RECHECK, self.enqueue, name)
            return
        await self._remove_finalizer(name)

    async def _delete_objects(self, crd: dict[str, Any]) -> int:
        """Delete every stored object of the definition, served or not (read from etcd itself);
        → how many are still there (held by finalizers)."""
        res = storage_row(crd, terminating=True)
        store = self.server.store
        kvs, _, _, _ = await store.list(res.prefix())
        for kv in kvs:
            meta = kv.decode()["metadata"]
            try:
                # below admission, as upstream's finalizer (a conversion webhook may be gone already)
                await self.server.api.delete_object(res, meta.get("namespace", ""), meta["name"], {}, SYSTEM_USER, {},
                                                    admit=False)
            except errors.StatusError as err:
                if err.code != 404:
                    raise
        _, _, _, left = await store.list(res.prefix(), limit=1)
        return left

    async def _remove_finalizer(self, name: str) -> None:
        def change(new: dict[str, Any]) -> None:
            new["metadata"]["finalizers"] = [f for f in new["metadata"].get("finalizers") or []
                                             if f != CLEANUP_FINALIZER]

        await self._update(name, change, "")
