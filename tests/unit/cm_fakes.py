"""Fakes for unit tests of the controller-manager's infrastructure controllers.

`FakeAPI` stands in for `client.APIClient`: an in-memory object store with the verbs the
controllers use (optimistic concurrency, generateName, uid/deletion preconditions,
finalizers and deletionTimestamp, merge/strategic patches, namespaces/<n>/finalize, the
propagation finalizers the apiserver adds), a record of every write, and injectable errors.
`FakeInformerFactory` hands out `FakeInformer`s whose stores the API keeps current (as a
watch would) when `mirror=True`; tests can also drive informer events by hand.
"""

from __future__ import annotations

import asyncio
import copy
import inspect
import itertools
import uuid
from typing import Any

from apimachinery.meta import format_time
from apimachinery.patch import merge_patch
from apimachinery.strategic import schema_for, strategic_merge_patch
from client import ApiError, ResourceInfo, Store
from client.discovery import BUILTIN_RESOURCES, api_prefix
from controller_manager.base import ControllerContext, FakeClock

Obj = dict[str, Any]


def not_found(plural: str, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{plural} "{name}" not found')


def conflict(plural: str, name: str, msg: str = "the object has been modified") -> ApiError:
    return ApiError(409, "Conflict", f'Operation cannot be fulfilled on {plural} "{name}": {msg}')


class FakeRegistration:
    def __init__(self, on_add, on_update, on_delete) -> None:
        self.on_add, self.on_update, self.on_delete = on_add, on_update, on_delete
        self.has_synced = True

    async def wait_synced(self) -> None:
        return None


class FakeInformer:
    def __init__(self, api_version: str, plural: str, namespace: str | None = None) -> None:
        self.api_version, self.plural, self.namespace = api_version, plural, namespace
        self.store = Store()
        self.handlers: list[FakeRegistration] = []
        self.has_synced = True
        self._started = True
        self.pending: list[Any] = []  # awaitables returned by async handlers

    def add_handler(self, on_add=None, on_update=None, on_delete=None) -> FakeRegistration:
        reg = FakeRegistration(on_add, on_update, on_delete)
        self.handlers.append(reg)
        for obj in self.store.list():
            self._call(on_add, obj)
        return reg

    def add_index(self, name, fn) -> None:
        self.store.add_index(name, fn)

    async def wait_synced(self, timeout: float | None = None) -> bool:
        return True

    def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    def _call(self, fn, *args) -> None:
        if fn is None:
            return
        r = fn(*args)
        if inspect.isawaitable(r):
            self.pending.append(r)

    def _wants(self, obj: Obj) -> bool:
        return self.namespace is None or obj["metadata"].get("namespace") == self.namespace

    # -- events (what a watch would deliver) ---------------------------------------------

    def add(self, obj: Obj) -> Obj:
        obj = copy.deepcopy(obj)
        if not self._wants(obj):
            return obj
        old = self.store.put(obj)
        for h in self.handlers:
            if old is None:
                self._call(h.on_add, obj)
            else:
                self._call(h.on_update, old, obj)
        return obj

    update = add

    def delete(self, obj: Obj) -> None:
        if not self._wants(obj):
            return
        from apimachinery.meta import key_of

        old = self.store.delete(key_of(obj))
        if old is not None:
            for h in self.handlers:
                self._call(h.on_delete, old)


class FakeInformerFactory:
    def __init__(self, api: FakeAPI | None = None) -> None:
        self.api = api
        self._informers: dict[tuple, FakeInformer] = {}

    def informer(self, api_version: str, plural: str, namespace: str | None = None, label_selector=None,
                 field_selector=None) -> FakeInformer:
        key = (api_version, plural, namespace)
        inf = self._informers.get(key)
        if inf is None:
            inf = self._informers[key] = FakeInformer(api_version, plural, namespace)
            if self.api is not None:
                self.api.informers.setdefault((api_version.rpartition("/")[0], plural), []).append(inf)
                for obj in self.api.objects_of(api_version, plural):
                    inf.store.put(copy.deepcopy(obj))
        return inf

    @property
    def informers(self) -> list[FakeInformer]:
        return list(self._informers.values())

    def start(self) -> None:
        pass

    async def wait_for_cache_sync(self, timeout=None) -> bool:
        return True

    async def stop(self) -> None:
        pass


class FakeDiscovery:
    def __init__(self, api: FakeAPI) -> None:
        self.api = api

    def _all(self) -> list[ResourceInfo]:
        return self.api.served

    async def resolve(self, api_version: str, plural: str) -> ResourceInfo:
        for r in self._all():
            if r.api_version == api_version and r.plural == plural:
                return r
        raise ApiError(404, "NotFound", f"the server doesn't have a resource type {plural!r} in {api_version}")

    async def resolve_kind(self, api_version: str, kind: str) -> ResourceInfo:
        for r in self._all():
            if r.api_version == api_version and r.kind == kind:
                return r
        raise ApiError(404, "NotFound", f"the server doesn't have a resource type {kind!r} in {api_version}")

    def invalidate(self) -> None:
        pass


ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


def default_served() -> list[ResourceInfo]:
    seen = set()
    out = []
    for (av, plural), info in BUILTIN_RESOURCES.items():
        if plural in ("evictions", "tokenreviews", "subjectaccessreviews", "selfsubjectaccessreviews"):
            continue
        if (av.rpartition("/")[0], plural) in seen and av == "autoscaling/v1":
            continue
        seen.add((av.rpartition("/")[0], plural))
        out.append(ResourceInfo(av, plural, info.kind, info.namespaced, ALL_VERBS))
    return out


class FakeConfig:
    ssl_context = None
    namespace = "default"


class FakeAPI:
    """An in-memory apiserver behind the APIClient surface the controllers use."""

    def __init__(self, clock: FakeClock | None = None, served: list[ResourceInfo] | None = None) -> None:
        self.clock = clock or FakeClock()
        self.served = served if served is not None else default_served()
        self.config = FakeConfig()
        self.discovery = FakeDiscovery(self)
        #: (group, plural) → {(namespace, name): object}
        self.data: dict[tuple[str, str], dict[tuple[str, str], Obj]] = {}
        self.informers: dict[tuple[str, str], list[FakeInformer]] = {}
        self.actions: list[tuple] = []
        #: (verb, plural) → exception to raise once (or always, with `sticky`)
        self.errors: dict[tuple[str, str], Exception] = {}
        self.sticky_errors: dict[tuple[str, str], Exception] = {}
        self._rv = itertools.count(100)
        self._names = itertools.count(1)

    # -- plumbing ------------------------------------------------------------------------

    def info(self, api_version: str, plural: str) -> ResourceInfo:
        for r in self.served:
            if r.api_version == api_version and r.plural == plural:
                return r
        group = api_version.rpartition("/")[0]
        for r in self.served:
            if r.group == group and r.plural == plural:
                return r
        raise ApiError(404, "NotFound", f"the server doesn't have a resource type {plural!r} in {api_version}")

    def table(self, api_version: str, plural: str) -> dict[tuple[str, str], Obj]:
        return self.data.setdefault((api_version.rpartition("/")[0], plural), {})

    def objects_of(self, api_version: str, plural: str) -> list[Obj]:
        return list(self.table(api_version, plural).values())

    def get_obj(self, api_version: str, plural: str, namespace: str | None, name: str) -> Obj | None:
        return self.table(api_version, plural).get((namespace or "", name))

    def resource(self, api_version: str, plural: str) -> FakeResource:
        return FakeResource(self, api_version, plural)

    def _fail(self, verb: str, plural: str) -> None:
        err = self.errors.pop((verb, plural), None) or self.sticky_errors.get((verb, plural))
        if err is not None:
            raise err

    def _notify(self, api_version: str, plural: str, obj: Obj | None, deleted: Obj | None = None) -> None:
        for inf in self.informers.get((api_version.rpartition("/")[0], plural), []):
            if obj is not None:
                inf.add(obj)
            elif deleted is not None:
                inf.delete(deleted)

    def seed(self, api_version: str, plural: str, obj: Obj) -> Obj:
        """Put an object in place (no action recorded), with uid/resourceVersion filled in."""
        obj = copy.deepcopy(obj)
        info = self.info(api_version, plural)
        meta = obj.setdefault("metadata", {})
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", format_time(self.clock.now()))
        meta["resourceVersion"] = str(next(self._rv))
        obj.setdefault("apiVersion", info.api_version)
        obj.setdefault("kind", info.kind)
        ns = meta.get("namespace", "") if info.namespaced else ""
        self.table(api_version, plural)[(ns, meta["name"])] = obj
        self._notify(api_version, plural, obj)
        return copy.deepcopy(obj)

    async def request(self, method: str, path: str, params=None, body=None) -> Obj:
        if path == "/api":
            return {"kind": "APIVersions", "versions": ["v1"]}
        if path == "/apis":
            groups: dict[str, list[str]] = {}
            for r in self.served:
                if r.group:
                    groups.setdefault(r.group, [])
                    if r.api_version not in groups[r.group]:
                        groups[r.group].append(r.api_version)
            return {"kind": "APIGroupList", "groups": [
                {"name": g, "versions": [{"groupVersion": v} for v in vs], "preferredVersion": {"groupVersion": vs[0]}}
                for g, vs in groups.items()]}
        for av in {r.api_version for r in self.served}:
            if path == api_prefix(av):
                return {"kind": "APIResourceList", "groupVersion": av, "resources": [
                    {"name": r.plural, "kind": r.kind, "namespaced": r.namespaced, "verbs": list(r.verbs)}
                    for r in self.served if r.api_version == av]}
        raise ApiError(404, "NotFound", f"the server could not find the requested resource ({path})")

    def writes(self, verb: str | None = None, plural: str | None = None) -> list[tuple]:
        return [a for a in self.actions if (verb is None or a[0] == verb) and (plural is None or a[1] == plural)]


def _held(obj: Obj) -> bool:
    meta = obj["metadata"]
    return bool(meta.get("finalizers")) or bool((obj.get("spec") or {}).get("finalizers") and obj.get("kind") == "Namespace")


class FakeResource:
    def __init__(self, api: FakeAPI, api_version: str, plural: str) -> None:
        self.api = api
        self.api_version = api_version
        self.plural = plural

    @property
    def _info(self) -> ResourceInfo:
        return self.api.info(self.api_version, self.plural)

    def _ns(self, namespace: str | None) -> str:
        return (namespace or "") if self._info.namespaced else ""

    def _table(self) -> dict[tuple[str, str], Obj]:
        return self.api.table(self.api_version, self.plural)

    def _store(self, obj: Obj) -> Obj:
        obj["metadata"]["resourceVersion"] = str(next(self.api._rv))
        ns = obj["metadata"].get("namespace", "") if self._info.namespaced else ""
        self._table()[(ns, obj["metadata"]["name"])] = obj
        self.api._notify(self.api_version, self.plural, obj)
        return copy.deepcopy(obj)

    def _remove(self, obj: Obj) -> None:
        ns = obj["metadata"].get("namespace", "") if self._info.namespaced else ""
        self._table().pop((ns, obj["metadata"]["name"]), None)
        self.api._notify(self.api_version, self.plural, None, obj)

    async def info(self) -> ResourceInfo:
        return self._info

    async def get(self, name: str, namespace: str | None = None, resource_version: str | None = None) -> Obj:
        self.api._fail("get", self.plural)
        obj = self._table().get((self._ns(namespace), name))
        if obj is None:
            raise not_found(self.plural, name)
        return copy.deepcopy(obj)

    async def list(self, namespace: str | None = None, label_selector=None, field_selector=None, limit=None,
                   resource_version=None, continue_token=None, resource_version_match=None) -> Obj:
        self.api._fail("list", self.plural)
        items = [copy.deepcopy(o) for (ns, _), o in self._table().items() if namespace in (None, ns)]
        return {"items": items, "metadata": {"resourceVersion": "1"}}

    async def create(self, obj: Obj, namespace: str | None = None, **kw) -> Obj:
        self.api._fail("create", self.plural)
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        if self._info.namespaced:
            meta["namespace"] = namespace or meta.get("namespace")
            ns_obj = self.api.get_obj("v1", "namespaces", None, meta["namespace"])
            if ns_obj is not None and ns_obj["metadata"].get("deletionTimestamp"):
                raise ApiError(403, "Forbidden", f"unable to create new content in namespace {meta['namespace']} "
                               "because it is being terminated",
                               {"causes": [{"reason": "NamespaceTerminating"}]})
        if not meta.get("name"):
            meta["name"] = f"{meta.get('generateName', 'x-')}{next(self.api._names):05d}"
        if (self._ns(meta.get("namespace")), meta["name"]) in self._table():
            raise ApiError(409, "AlreadyExists", f'{self.plural} "{meta["name"]}" already exists')
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = format_time(self.api.clock.now())
        obj.setdefault("apiVersion", self._info.api_version)
        obj.setdefault("kind", self._info.kind)
        self.api.actions.append(("create", self.plural, meta.get("namespace"), meta["name"], copy.deepcopy(obj)))
        return self._store(obj)

    def _current(self, name: str, namespace: str | None) -> Obj:
        obj = self._table().get((self._ns(namespace), name))
        if obj is None:
            raise not_found(self.plural, name)
        return obj

    def _check_rv(self, cur: Obj, rv: str | None) -> None:
        if rv and rv != cur["metadata"]["resourceVersion"]:
            raise conflict(self.plural, cur["metadata"]["name"])

    def _finish_write(self, new: Obj) -> Obj:
        if new["metadata"].get("deletionTimestamp") and not _held(new):
            self._remove(new)
            return copy.deepcopy(new)
        return self._store(new)

    async def update(self, obj: Obj, namespace: str | None = None, **kw) -> Obj:
        self.api._fail("update", self.plural)
        name = obj["metadata"]["name"]
        cur = self._current(name, namespace or obj["metadata"].get("namespace"))
        self._check_rv(cur, obj["metadata"].get("resourceVersion"))
        new = copy.deepcopy(obj)
        if "status" in cur:
            new["status"] = copy.deepcopy(cur["status"])
        self.api.actions.append(("update", self.plural, cur["metadata"].get("namespace"), name, copy.deepcopy(new)))
        return self._finish_write(new)

    async def update_status(self, obj: Obj, namespace: str | None = None, **kw) -> Obj:
        self.api._fail("update_status", self.plural)
        name = obj["metadata"]["name"]
        cur = self._current(name, namespace or obj["metadata"].get("namespace"))
        self._check_rv(cur, obj["metadata"].get("resourceVersion"))
        new = copy.deepcopy(cur)
        new["status"] = copy.deepcopy(obj.get("status"))
        self.api.actions.append(("update_status", self.plural, cur["metadata"].get("namespace"), name,
                                 copy.deepcopy(new)))
        return self._store(new)

    async def patch(self, name: str, patch: Any, namespace: str | None = None, patch_type: str = "merge",
                    subresource: str | None = None, **kw) -> Obj:
        self.api._fail("patch", self.plural)
        cur = self._current(name, namespace)
        rv = ((patch or {}).get("metadata") or {}).get("resourceVersion") if isinstance(patch, dict) else None
        self._check_rv(cur, rv)
        if patch_type == "merge":
            new = merge_patch(copy.deepcopy(cur), patch)
        else:
            new = strategic_merge_patch(cur, patch, schema_for(cur.get("apiVersion", ""), cur.get("kind", "")))
        if subresource == "status":
            kept = copy.deepcopy(cur)
            kept["status"] = new.get("status")
            new = kept
        self.api.actions.append(("patch", self.plural, cur["metadata"].get("namespace"), name,
                                 copy.deepcopy(patch), subresource))
        return self._finish_write(new)

    async def delete(self, name: str, namespace: str | None = None, propagation_policy: str | None = None,
                     grace_period_seconds: int | None = None, preconditions=None, dry_run: bool = False) -> Obj:
        self.api._fail("delete", self.plural)
        cur = self._current(name, namespace)
        if preconditions and preconditions.get("uid") and preconditions["uid"] != cur["metadata"].get("uid"):
            raise conflict(self.plural, name, "Precondition failed: UID in precondition does not match")
        self.api.actions.append(("delete", self.plural, cur["metadata"].get("namespace"), name,
                                 {"propagationPolicy": propagation_policy, "gracePeriodSeconds": grace_period_seconds}))
        new = copy.deepcopy(cur)
        finalizers = [f for f in new["metadata"].get("finalizers") or [] if f not in ("orphan", "foregroundDeletion")]
        want = {"Orphan": "orphan", "Foreground": "foregroundDeletion"}.get(propagation_policy or "")
        if want:
            finalizers.append(want)
        if finalizers:
            new["metadata"]["finalizers"] = finalizers
        if _held(new):
            new["metadata"].setdefault("deletionTimestamp", format_time(self.api.clock.now()))
            if new.get("kind") == "Namespace":
                new.setdefault("status", {})["phase"] = "Terminating"
            return self._store(new)
        self._remove(cur)
        return {"kind": "Status", "status": "Success"}

    async def delete_collection(self, namespace: str | None = None, label_selector=None, field_selector=None,
                                propagation_policy: str | None = None, grace_period_seconds=None, dry_run=False) -> Obj:
        self.api._fail("deletecollection", self.plural)
        self.api.actions.append(("deletecollection", self.plural, namespace, None, {"propagationPolicy": propagation_policy}))
        for (ns, name) in list(self._table()):
            if namespace in (None, ns):
                await self.delete(name, ns, propagation_policy)
        return {"items": []}

    async def create_subresource(self, name: str, subresource: str, body: Obj, namespace: str | None = None,
                                 params=None) -> Obj:
        self.api.actions.append(("create_subresource", self.plural, namespace, name, subresource, body))
        return {}

    async def get_subresource(self, name: str, subresource: str, namespace: str | None = None, params=None):
        self.api._fail("get_subresource", self.plural)
        cur = self._current(name, namespace)
        if subresource == "scale":
            return {"kind": "Scale", "metadata": {"name": name, "uid": cur["metadata"]["uid"]},
                    "spec": {"replicas": (cur.get("spec") or {}).get("replicas", 1)}}
        return copy.deepcopy(cur)

    async def update_subresource(self, name: str, subresource: str, body: Obj, namespace: str | None = None) -> Obj:
        self.api._fail("update_subresource", self.plural)
        cur = self._current(name, namespace)
        self._check_rv(cur, (body.get("metadata") or {}).get("resourceVersion"))
        self.api.actions.append(("update_subresource", self.plural, namespace, name, subresource, copy.deepcopy(body)))
        new = copy.deepcopy(cur)
        if subresource == "finalize":
            new.setdefault("spec", {})["finalizers"] = list((body.get("spec") or {}).get("finalizers") or [])
            if not new["spec"]["finalizers"]:
                del new["spec"]["finalizers"]
        return self._finish_write(new)


def make_context(api: FakeAPI | None = None, clock: FakeClock | None = None, **options: Any) -> ControllerContext:
    """A ControllerContext over the fakes; `options` set ControllerManagerOptions fields."""
    from controller_manager.base import ControllerManagerOptions

    clock = clock or (api.clock if api is not None else FakeClock())
    api = api or FakeAPI(clock)
    recorded: list[tuple] = []

    class Recorder:
        def __init__(self, component: str) -> None:
            self.component = component
            self.events = recorded

        def event(self, obj, type, reason, message, action=None) -> None:
            recorded.append((obj.get("kind"), (obj.get("metadata") or {}).get("name"), type, reason, message))

        def eventf(self, obj, type, reason, fmt, *args) -> None:
            self.event(obj, type, reason, fmt % args if args else fmt)

        async def close(self, timeout: float = 5.0) -> None:
            pass

    ctx = ControllerContext(api, FakeInformerFactory(api), ControllerManagerOptions(**options), clock=clock,
                            recorder_factory=Recorder)  # type: ignore[arg-type]
    ctx.events = recorded  # type: ignore[attr-defined]
    return ctx


async def drain(*informers: FakeInformer) -> None:
    """Await what async handlers returned."""
    for inf in informers:
        while inf.pending:
            await inf.pending.pop(0)


async def run_queue(controller, limit: int = 200) -> list[str]:
    """Sync every key the controller's queue holds now (and those added meanwhile), in order."""
    done = []
    for _ in range(limit):
        if not len(controller.queue):
            break
        key = await controller.queue.get()
        try:
            await controller.sync(key)
        finally:
            controller.queue.done(key)
        done.append(key)
    await asyncio.sleep(0)
    return done
