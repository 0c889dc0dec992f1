"""The garbage collector: deletes objects whose owners are gone, as ownerReferences say.

Upstream pkg/controller/garbagecollector, in three parts:

- The graph builder watches every resource the apiserver serves that can be listed, watched
  and deleted (found through discovery, re-checked every 30 s; events excepted) and keeps a
  graph of uid → node (identity, ownerReferences, dependents). An owner referenced before it
  is observed (or that never existed) gets a "virtual" node that is checked against the API.
  One task applies every informer event in order and decides what needs attention:
  dependents of a deleted owner, owners whose blocking dependents went away, objects
  starting a foreground deletion (deletionTimestamp + `foregroundDeletion` finalizer) or an
  orphaning one (+ `orphan` finalizer).
- attemptToDelete workers (--concurrent-gc-syncs) look at one node: a virtual node that the
  API does not have turns into a (virtual) delete event; a node deleting its dependents in
  the foreground drops its finalizer once no dependent with blockOwnerDeletion is left
  (and asks for those to be deleted); any other node's owners are classified as solid
  (exists), dangling (absent, or another uid: remembered in an absent-owner cache) or
  waiting (being deleted in the foreground). With a solid owner the dangling/waiting
  references are removed; with owners waiting and own dependents it is deleted in the
  foreground itself; with no solid owner it is deleted (propagation from its own
  finalizers: orphan, foreground, else background), with a uid precondition.
- attemptToOrphan workers remove an orphaning owner's references from every dependent,
  then the owner's `orphan` finalizer.

`kubectl delete --cascade=background|foreground|orphan` picks the propagation policy; the
apiserver turns it into the finalizers this controller acts on. Namespaced owners must be
in the dependent's namespace; cluster-scoped owners may own anything; a cluster-scoped
object naming a namespaced owner is reported (event OwnerRefInvalidNamespace) and left alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from client import (
    ApiError,
    HandlerRegistration,
    Informer,
    ResourceInfo,
    WorkQueue,
    deleted_object,
    is_conflict,
    is_not_found,
)
from controller_manager.base import Controller, ControllerContext, register
from controller_manager.discovery import discover

Obj = dict[str, Any]

FOREGROUND = "foregroundDeletion"
ORPHAN = "orphan"
RESYNC_RESOURCES_PERIOD = 30.0  # upstream: --garbage-collector resource resync, 30 s
ABSENT_OWNER_CACHE_SIZE = 1024
UPDATE_RETRIES = 5


def group_of(api_version: str) -> str:
    return api_version.rpartition("/")[0]


@dataclass(frozen=True)
class Identity:
    """Who an object is: apiVersion, kind, namespace ("" for cluster-scoped), name, uid."""

    api_version: str
    kind: str
    namespace: str
    name: str
    uid: str

    @classmethod
    def of(cls, obj: Obj) -> Identity:
        meta = obj.get("metadata") or {}
        return cls(obj.get("apiVersion", ""), obj.get("kind", ""), meta.get("namespace") or "", meta.get("name", ""),
                   meta.get("uid", ""))

    @classmethod
    def of_ref(cls, ref: Obj, namespace: str) -> Identity:
        return cls(ref.get("apiVersion", ""), ref.get("kind", ""), namespace, ref.get("name", ""), ref.get("uid", ""))

    def __str__(self) -> str:
        where = f"{self.namespace}/" if self.namespace else ""
        return f"{self.api_version}/{self.kind} {where}{self.name} (uid {self.uid})"


def ref_matches(ref: Obj, ident: Identity) -> bool:
    """An ownerReference names exactly these coordinates (upstream ownerReferenceMatchesCoordinates)."""
    return (ref.get("uid") == ident.uid and ref.get("name") == ident.name and ref.get("kind") == ident.kind
            and ref.get("apiVersion") == ident.api_version)


def being_deleted(obj: Obj) -> bool:
    return bool((obj.get("metadata") or {}).get("deletionTimestamp"))


def has_finalizer(obj: Obj, name: str) -> bool:
    return name in ((obj.get("metadata") or {}).get("finalizers") or [])


def starts_waiting(old: Obj | None, new: Obj, finalizer: str) -> bool:
    """`new` is being deleted with `finalizer`, and `old` (if any) was not yet."""
    if not (being_deleted(new) and has_finalizer(new, finalizer)):
        return False
    return old is None or not (being_deleted(old) and has_finalizer(old, finalizer))


@dataclass(eq=False)
class GraphNode:
    identity: Identity
    owners: list[Obj] = field(default_factory=list)
    dependents: set[GraphNode] = field(default_factory=set)
    being_deleted: bool = False
    deleting_dependents: bool = False
    virtual: bool = False

    @property
    def uid(self) -> str:
        return self.identity.uid

    def blocking_dependents(self) -> list[GraphNode]:
        """Dependents whose reference to this node has blockOwnerDeletion=true."""
        return [d for d in list(self.dependents)
                if any(r.get("uid") == self.uid and r.get("blockOwnerDeletion") for r in d.owners)]


def partition_dependents(dependents: list[GraphNode], owner: Identity) -> tuple[list[GraphNode], list[GraphNode]]:
    """Dependents whose reference matches `owner`'s coordinates, and those whose does not."""
    matching, mismatching = [], []
    for dep in dependents:
        found_match = found_mismatch = False
        if owner.namespace and owner.namespace != dep.identity.namespace:
            found_mismatch = True
        else:
            for ref in dep.owners:
                if ref.get("uid") == owner.uid:
                    if ref_matches(ref, owner):
                        found_match = True
                    else:
                        found_mismatch = True
        if found_match:
            matching.append(dep)
        if found_mismatch:
            mismatching.append(dep)
    return matching, mismatching


class NamespacedOwnerOfClusterScopedObject(Exception):
    """A cluster-scoped object names a namespaced owner: retrying cannot fix that."""


class AbsentOwners:
    """Owners known not to exist, by (uid, namespace) — uids are never reused."""

    def __init__(self, size: int = ABSENT_OWNER_CACHE_SIZE) -> None:
        self.size = size
        self._items: OrderedDict[tuple[str, str], None] = OrderedDict()

    def add(self, uid: str, namespace: str) -> None:
        self._items[(uid, namespace)] = None
        self._items.move_to_end((uid, namespace))
        while len(self._items) > self.size:
            self._items.popitem(last=False)

    def __contains__(self, key: tuple[str, str]) -> bool:
        return key in self._items


@register
class GarbageCollector(Controller):
    name = "garbage-collector-controller"
    aliases = ("garbagecollector",)
    workers_option = "concurrent_gc_syncs"
    service_account = "generic-garbage-collector"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.uid_to_node: dict[str, GraphNode] = {}
        self.absent = AbsentOwners()
        self.changes: asyncio.Queue[tuple[str, Any, Any]] = asyncio.Queue()
        self.orphan_queue: WorkQueue[str] = WorkQueue(name=f"{self.name} orphan")
        self.monitors: dict[tuple[str, str], tuple[Informer, HandlerRegistration]] = {}
        self.resources: dict[tuple[str, str], ResourceInfo] = {}  # (apiVersion, kind) → resource
        self._log_requeue = logging.getLogger(f"controller_manager.{self.name}.requeue")

    # -- monitors (one informer per resource) --------------------------------------------

    async def sync_monitors(self) -> bool:
        """Watch every resource discovery lists that is not watched yet; True if any was added."""
        try:
            discovered = await discover(self.ctx.client)
        except Exception as e:
            self.log.warning("garbage collector: discovery failed: %s", e)
            return False
        added = False
        for info in discovered.gc_monitorable():
            self.resources[(info.api_version, info.kind)] = info
            key = (info.api_version, info.plural)
            if key in self.monitors:
                continue
            inf = self.informer(info.api_version, info.plural)
            reg = inf.add_handler(
                lambda obj: self.changes.put_nowait(("add", obj, None)),
                lambda old, new: self.changes.put_nowait(("update", new, old)),
                lambda item: self.changes.put_nowait(("delete", deleted_object(item), None)),
            )
            self.monitors[key] = (inf, reg)
            added = True
        if discovered.failed:
            self.log.warning("garbage collector: discovery failed for %s", sorted(discovered.failed))
        if added:
            self.ctx.informers.start()
        return added

    async def _resync_monitors(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(RESYNC_RESOURCES_PERIOD):
                    await stop.wait()
            if not stop.is_set():
                await self.sync_monitors()

    async def graph_synced(self) -> None:
        """Every monitor listed, and the graph built from those lists."""
        await asyncio.gather(*(inf.wait_synced() for inf, _ in self.monitors.values()))
        await asyncio.gather(*(reg.wait_synced() for _, reg in self.monitors.values()))
        await self.changes.join()

    # -- running -------------------------------------------------------------------------

    async def run(self, workers: int, stop: asyncio.Event) -> None:
        self.log.info("starting %s", self.name)
        if not self.options.enable_garbage_collector:
            self.log.info("%s: disabled by --enable-garbage-collector=false", self.name)
            await stop.wait()
            return
        while not await self.sync_monitors() and not self.monitors:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5.0):
                    await stop.wait()
            if stop.is_set():
                return
        builder = asyncio.create_task(self._build_graph(), name="gc graph builder")
        tasks: list[asyncio.Task[Any]] = [builder]
        try:
            waiter = asyncio.ensure_future(self.graph_synced())
            stopper = asyncio.ensure_future(stop.wait())
            await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
            for t in (waiter, stopper):
                if not t.done():
                    t.cancel()
            if stop.is_set():
                return
            self.log.info("%s: graph synced (%d objects); %d workers", self.name, len(self.uid_to_node), workers)
            tasks += [asyncio.create_task(self._worker(self.queue, self.attempt_to_delete)) for _ in range(workers)]
            tasks += [asyncio.create_task(self._worker(self.orphan_queue, self.attempt_to_orphan))
                      for _ in range(workers)]
            tasks.append(asyncio.create_task(self._resync_monitors(stop)))
            await stop.wait()
        finally:
            self.queue.shutdown()
            self.orphan_queue.shutdown()
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t
            self.log.info("stopped %s", self.name)

    async def _worker(self, queue: WorkQueue[str], fn) -> None:
        """Like client.run_workers, but a handler may ask for a quiet rate-limited requeue (True)."""
        while True:
            uid = await queue.get()
            if uid is None:
                return
            try:
                requeue = await fn(uid)
            except asyncio.CancelledError:
                queue.done(uid)
                raise
            except Exception as e:
                self.ctx.sync_total.inc(self.name, "error")
                node = self.uid_to_node.get(uid)
                self.log.warning("%s: %s failed (retry %d): %s", self.name, node.identity if node else uid,
                                 queue.num_requeues(uid) + 1, e)
                queue.add_rate_limited(uid)
            else:
                self.ctx.sync_total.inc(self.name, "success")
                if requeue:
                    queue.add_rate_limited(uid)
                else:
                    queue.forget(uid)
            queue.done(uid)

    async def sync(self, key: str) -> None:  # the base's entry point: one attemptToDelete pass
        await self.attempt_to_delete(key)

    # -- the graph builder ---------------------------------------------------------------

    async def _build_graph(self) -> None:
        while True:
            etype, obj, old = await self.changes.get()
            try:
                self.process_graph_change(etype, obj, old)
            except Exception:
                self.log.exception("garbage collector: processing a %s event failed", etype)
            finally:
                self.changes.task_done()

    def enqueue_virtual_delete(self, ident: Identity) -> None:
        self.changes.put_nowait(("virtual-delete", ident, None))

    def process_graph_change(self, etype: str, obj: Any, old: Obj | None) -> None:
        if etype == "virtual-delete":
            self._process_delete(obj, virtual=True)
            return
        ident = Identity.of(obj)
        if not ident.uid:
            return
        if etype == "delete":
            self._process_delete(ident, virtual=False)
            return
        node = self.uid_to_node.get(ident.uid)
        if node is not None and node.virtual:
            # first observation of an owner known only by references so far
            if ident != node.identity:
                _, suspicious = partition_dependents(list(node.dependents), ident)
                for dep in suspicious:
                    if ident.namespace and dep.identity.namespace != ident.namespace:
                        self._report_invalid_namespace(dep, ident.uid)
                    self.queue.add(dep.uid)
                node.identity = ident
            node.virtual = False
        owners = list((obj.get("metadata") or {}).get("ownerReferences") or [])
        if node is None:
            node = GraphNode(ident, owners, being_deleted=being_deleted(obj),
                             deleting_dependents=being_deleted(obj) and has_finalizer(obj, FOREGROUND))
            self.uid_to_node[ident.uid] = node
            self._add_dependent_to_owners(node, owners)
        else:
            added, removed, changed = diff_owners(node.owners, owners)
            if added or removed or changed:
                self._unblocked_owners_to_queue(removed, changed)
                node.owners = owners
                self._add_dependent_to_owners(node, added)
                self._remove_dependent_from_owners(node, removed)
            if being_deleted(obj):
                node.being_deleted = True
        self._process_transitions(old, obj, node)

    def _process_delete(self, ident: Identity, virtual: bool) -> None:
        node = self.uid_to_node.get(ident.uid)
        if node is None:
            return
        remove = True
        if virtual:
            if node.virtual:
                matching, mismatching = partition_dependents(list(node.dependents), ident)
                if mismatching:
                    # dependents disagree about who this owner is: keep the node, check the others
                    remove = False
                    if matching:
                        self.absent.add(ident.uid, ident.namespace)
                        for dep in matching:
                            self.queue.add(dep.uid)
                    if node.identity == ident:
                        alternative = alternate_identity(mismatching, ident)
                        if alternative is not None:
                            node.identity = alternative
                            self.queue.add_rate_limited(node.uid)
            elif node.identity != ident:
                # an observed object disagrees with the coordinates that were not found
                remove = False
                matching, _ = partition_dependents(list(node.dependents), ident)
                if matching:
                    self.absent.add(ident.uid, ident.namespace)
                    for dep in matching:
                        self.queue.add(dep.uid)
        if not remove:
            return
        self._remove_node(node)
        if node.dependents:
            self.absent.add(ident.uid, ident.namespace)
        for dep in list(node.dependents):
            self.queue.add(dep.uid)
        for ref in node.owners:
            owner = self.uid_to_node.get(ref.get("uid", ""))
            if owner is not None and owner.deleting_dependents:
                self.queue.add(owner.uid)  # it may be waiting for this dependent only

    def _remove_node(self, node: GraphNode) -> None:
        self.uid_to_node.pop(node.uid, None)
        self._remove_dependent_from_owners(node, node.owners)

    def _add_dependent_to_owners(self, node: GraphNode, owners: list[Obj]) -> None:
        suspicious = False
        for ref in owners:
            uid = ref.get("uid", "")
            if not uid:
                continue
            owner = self.uid_to_node.get(uid)
            if owner is None:
                owner = GraphNode(Identity.of_ref(ref, node.identity.namespace), virtual=True)
                self.uid_to_node[uid] = owner
                owner.dependents.add(node)
                self.queue.add(uid)  # is it there at all? the API will tell
                continue
            owner.dependents.add(node)
            if suspicious:
                continue
            owner_ns = owner.identity.namespace
            if owner_ns and owner_ns != node.identity.namespace:
                if not owner.virtual:
                    self._report_invalid_namespace(node, uid)
                suspicious = True
            elif not ref_matches(ref, owner.identity):
                suspicious = True
            elif not owner_ns and owner.identity.namespace != node.identity.namespace and owner.virtual:
                suspicious = True
        if suspicious:
            self.queue.add(node.uid)

    def _remove_dependent_from_owners(self, node: GraphNode, owners: list[Obj]) -> None:
        for ref in owners:
            owner = self.uid_to_node.get(ref.get("uid", ""))
            if owner is not None:
                owner.dependents.discard(node)

    def _unblocked_owners_to_queue(self, removed: list[Obj], changed: list[tuple[Obj, Obj]]) -> None:
        """Owners deleting in the foreground that a reference no longer blocks: look at them again."""
        for ref in removed:
            if ref.get("blockOwnerDeletion"):
                owner = self.uid_to_node.get(ref.get("uid", ""))
                if owner is not None and owner.deleting_dependents:
                    self.queue.add(owner.uid)
        for old, new in changed:
            if old.get("blockOwnerDeletion") and not new.get("blockOwnerDeletion"):
                owner = self.uid_to_node.get(new.get("uid", ""))
                if owner is not None and owner.deleting_dependents:
                    self.queue.add(owner.uid)

    def _process_transitions(self, old: Obj | None, new: Obj, node: GraphNode) -> None:
        if starts_waiting(old, new, ORPHAN):
            self.orphan_queue.add(node.uid)
            return
        if starts_waiting(old, new, FOREGROUND):
            node.deleting_dependents = True
            for dep in list(node.dependents):
                self.queue.add(dep.uid)
            self.queue.add(node.uid)

    def _report_invalid_namespace(self, node: GraphNode, owner_uid: str) -> None:
        ref = next((r for r in node.owners if r.get("uid") == owner_uid), None)
        if ref is None:
            return
        ident = node.identity
        obj = {"apiVersion": ident.api_version, "kind": ident.kind,
               "metadata": {"name": ident.name, "namespace": ident.namespace, "uid": ident.uid}}
        if not ident.namespace:
            del obj["metadata"]["namespace"]
        self.recorder.event(obj, "Warning", "OwnerRefInvalidNamespace",
                            f"ownerRef {ref} does not resolve to a parent with uid {owner_uid} in namespace "
                            f"{ident.namespace}")

    # -- API access ----------------------------------------------------------------------

    async def resource_for(self, api_version: str, kind: str) -> ResourceInfo:
        info = self.resources.get((api_version, kind))
        if info is None:
            info = await self.client.discovery.resolve_kind(api_version, kind)
            self.resources[(api_version, kind)] = info
        return info

    async def get_object(self, ident: Identity) -> Obj:
        info = await self.resource_for(ident.api_version, ident.kind)
        api = self.client.resource(info.api_version, info.plural)
        return await api.get(ident.name, ident.namespace if info.namespaced else None)

    async def delete_object(self, ident: Identity, policy: str) -> None:
        info = await self.resource_for(ident.api_version, ident.kind)
        api = self.client.resource(info.api_version, info.plural)
        self.log.info("garbage collector: deleting %s (propagation %s)", ident, policy)
        try:
            await api.delete(ident.name, ident.namespace if info.namespaced else None, propagation_policy=policy,
                             preconditions={"uid": ident.uid})
        except ApiError as e:
            if not (is_not_found(e) or (is_conflict(e) and "Precondition" in e.message)):
                raise  # gone already, or another object by that name now: nothing to delete

    async def patch_metadata(self, ident: Identity, change) -> Obj | None:
        """Read the latest object, let `change(meta)` return new metadata fields (None: nothing to
        do), and merge-patch them under the read resourceVersion, retrying on conflicts."""
        info = await self.resource_for(ident.api_version, ident.kind)
        api = self.client.resource(info.api_version, info.plural)
        ns = ident.namespace if info.namespaced else None
        for _ in range(UPDATE_RETRIES):
            try:
                latest = await api.get(ident.name, ns)
            except ApiError as e:
                if is_not_found(e):
                    return None
                raise
            if latest["metadata"].get("uid") != ident.uid:
                return None
            fields = change(latest["metadata"])
            if fields is None:
                return latest
            patch = {"metadata": {**fields, "resourceVersion": latest["metadata"]["resourceVersion"]}}
            try:
                return await api.patch(ident.name, patch, ns, "merge")
            except ApiError as e:
                if is_not_found(e):
                    return None
                if not is_conflict(e):
                    raise
        raise RuntimeError(f"{ident}: too many conflicts")

    async def remove_finalizer(self, node: GraphNode, finalizer: str) -> None:
        def change(meta: Obj) -> Obj | None:
            finalizers = meta.get("finalizers") or []
            if finalizer not in finalizers:
                return None
            rest = [f for f in finalizers if f != finalizer]
            return {"finalizers": rest or None}

        await self.patch_metadata(node.identity, change)

    async def remove_owner_refs(self, ident: Identity, uids: set[str]) -> None:
        def change(meta: Obj) -> Obj | None:
            refs = meta.get("ownerReferences") or []
            rest = [r for r in refs if r.get("uid") not in uids]
            if len(rest) == len(refs):
                return None
            return {"ownerReferences": rest or None}

        await self.patch_metadata(ident, change)

    async def unblock_owner_refs(self, ident: Identity) -> None:
        def change(meta: Obj) -> Obj | None:
            refs = meta.get("ownerReferences") or []
            if not any(r.get("blockOwnerDeletion") for r in refs):
                return None
            return {"ownerReferences": [{**r, "blockOwnerDeletion": False} if r.get("blockOwnerDeletion") else r
                                        for r in refs]}

        await self.patch_metadata(ident, change)

    # -- attemptToDelete -----------------------------------------------------------------

    async def attempt_to_delete(self, uid: str) -> bool:
        """One look at a node; True asks for a rate-limited requeue."""
        node = self.uid_to_node.get(uid)
        if node is None:
            return False
        try:
            await self.attempt_to_delete_item(node)
        except NamespacedOwnerOfClusterScopedObject:
            for ref in node.owners:
                self._report_invalid_namespace(node, ref.get("uid", ""))
            return False
        except _VirtualDeleteEnqueued:
            return False
        # a virtual node is looked at again until an informer sees it or the API says it is gone
        return node.virtual and self.uid_to_node.get(uid) is node

    async def attempt_to_delete_item(self, node: GraphNode) -> None:
        if node.being_deleted and not node.deleting_dependents:
            return  # on its way out; its dependents are looked at when it is gone
        ident = node.identity
        if node.virtual:
            info = await self.resource_for(ident.api_version, ident.kind)
            if not info.namespaced and ident.namespace:
                ident = Identity(ident.api_version, ident.kind, "", ident.name, ident.uid)
        try:
            latest = await self.get_object(ident)
        except ApiError as e:
            if not is_not_found(e):
                raise
            self.enqueue_virtual_delete(ident)
            raise _VirtualDeleteEnqueued from None
        if latest["metadata"].get("uid") != ident.uid:
            self.enqueue_virtual_delete(ident)
            raise _VirtualDeleteEnqueued
        if node.deleting_dependents or (being_deleted(latest) and has_finalizer(latest, FOREGROUND)):
            await self.process_deleting_dependents(node)
            return
        if being_deleted(latest):
            return  # the graph has not seen it yet, but it is on its way out already
        refs = latest["metadata"].get("ownerReferences") or []
        if not refs:
            return
        solid, dangling, waiting = await self.classify_references(node, refs)
        if solid:
            if not dangling and not waiting:
                return
            gone = {r["uid"] for r in dangling + waiting}
            self.log.info("garbage collector: removing dangling/waiting owner references %s from %s", sorted(gone), ident)
            await self.remove_owner_refs(ident, gone)
            return
        if waiting and node.dependents:
            for dep in list(node.dependents):
                if dep.deleting_dependents:
                    # a cycle would block both forever: let the owners go first
                    await self.unblock_owner_refs(ident)
                    break
            await self.delete_object(ident, "Foreground")
            return
        if has_finalizer(latest, ORPHAN):
            policy = "Orphan"
        elif has_finalizer(latest, FOREGROUND):
            policy = "Foreground"
        else:
            policy = "Background"
        await self.delete_object(ident, policy)

    async def process_deleting_dependents(self, node: GraphNode) -> None:
        blocking = node.blocking_dependents()
        if not blocking:
            self.log.info("garbage collector: %s has no blocking dependents left; removing %s", node.identity, FOREGROUND)
            await self.remove_finalizer(node, FOREGROUND)
            return
        for dep in blocking:
            if not dep.deleting_dependents:
                self.queue.add(dep.uid)

    async def classify_references(self, node: GraphNode, refs: list[Obj]) -> tuple[list[Obj], list[Obj], list[Obj]]:
        solid, dangling, waiting = [], [], []
        for ref in refs:
            is_dangling, owner = await self.is_dangling(ref, node)
            if is_dangling:
                dangling.append(ref)
            elif being_deleted(owner) and has_finalizer(owner, FOREGROUND):
                waiting.append(ref)
            else:
                solid.append(ref)
        return solid, dangling, waiting

    async def is_dangling(self, ref: Obj, node: GraphNode) -> tuple[bool, Obj | None]:
        uid = ref.get("uid", "")
        if (uid, "") in self.absent or (uid, node.identity.namespace) in self.absent:
            return True, None
        info = await self.resource_for(ref.get("apiVersion", ""), ref.get("kind", ""))
        if info.namespaced and not node.identity.namespace:
            raise NamespacedOwnerOfClusterScopedObject(f"{node.identity} names a namespaced owner {ref}")
        ns = node.identity.namespace if info.namespaced else ""
        api = self.client.resource(info.api_version, info.plural)
        try:
            owner = await api.get(ref.get("name", ""), ns or None)
        except ApiError as e:
            if not is_not_found(e):
                raise
            self.absent.add(uid, ns)
            return True, None
        if owner["metadata"].get("uid") != uid:
            self.absent.add(uid, ns)
            return True, None
        return False, owner

    # -- attemptToOrphan -----------------------------------------------------------------

    async def attempt_to_orphan(self, uid: str) -> bool:
        owner = self.uid_to_node.get(uid)
        if owner is None:
            return False
        dependents = list(owner.dependents)
        results = await asyncio.gather(*(self.remove_owner_refs(d.identity, {uid}) for d in dependents),
                                       return_exceptions=True)
        failed = [r for r in results if isinstance(r, BaseException)]
        if failed:
            raise RuntimeError(f"orphaning the dependents of {owner.identity}: {failed[0]}")
        self.log.info("garbage collector: orphaned %d dependents of %s", len(dependents), owner.identity)
        await self.remove_finalizer(owner, ORPHAN)
        return False


class _VirtualDeleteEnqueued(Exception):
    """The node's object is not there: a virtual delete event was queued for the graph."""


def diff_owners(old: list[Obj], new: list[Obj]) -> tuple[list[Obj], list[Obj], list[tuple[Obj, Obj]]]:
    """(added, removed, changed (old, new) pairs) between two ownerReferences lists, by uid."""
    old_by = {r.get("uid"): r for r in old}
    new_by = {r.get("uid"): r for r in new}
    added = [r for u, r in new_by.items() if u not in old_by]
    removed = [r for u, r in old_by.items() if u not in new_by]
    changed = [(old_by[u], r) for u, r in new_by.items() if u in old_by and old_by[u] != r]
    return added, removed, changed


def alternate_identity(dependents: list[GraphNode], verified_absent: Identity) -> Identity | None:
    """Another set of coordinates the dependents use for this owner uid (upstream getAlternateOwnerIdentity)."""
    candidates = []
    for dep in dependents:
        for ref in dep.owners:
            if ref.get("uid") != verified_absent.uid:
                continue
            ident = Identity.of_ref(ref, dep.identity.namespace)
            if ident != verified_absent:
                candidates.append(ident)
    if not candidates:
        return None
    candidates.sort(key=lambda i: (i.api_version, i.kind, i.namespace, i.name))
    # the first candidate after the absent one (wrapping), so each is tried in turn
    for c in candidates:
        if (c.api_version, c.kind, c.namespace, c.name) > (verified_absent.api_version, verified_absent.kind,
                                                          verified_absent.namespace, verified_absent.name):
            return c
    return candidates[0]
