"""An in-memory apiserver and informers for unit tests of controllers (no processes, no sockets).

    api = FakeAPI(clock)
    ctx = ControllerContext(api, FakeInformerFactory(api), clock=clock, recorder_factory=api.recorder)
    rsc = ReplicaSetController(ctx)
    api.create("apps/v1", "replicasets", rs)
    await rsc.sync("default/web")

Writes go to `api.objects` and, as watch events, to the informers at once — or, for a
resource in `api.held`, only when `api.flush()` is called (a slow watch). `api.actions`
records every write; `api.fail_next(verb, plural, error)` makes the next such call fail.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable
from typing import Any

from apimachinery import errors
from apimachinery.meta import format_time, generate_name, new_uid
from apimachinery.patch import json_patch, merge_patch
from apimachinery.selectors import parse_label_selector
from apimachinery.strategic import schema_for, strategic_merge_patch
from client.store import DeletedFinalStateUnknown, IndexFunc, Store
from controller_manager.base import Clock

Obj = dict[str, Any]

CLUSTER_SCOPED = {"nodes", "namespaces", "persistentvolumes", "clusterroles", "clusterrolebindings",
                  "priorityclasses", "storageclasses", "csinodes"}
KINDS = {
    "pods": "Pod", "nodes": "Node", "namespaces": "Namespace", "events": "Event", "services": "Service",
    "replicasets": "ReplicaSet", "deployments": "Deployment", "daemonsets": "DaemonSet",
    "statefulsets": "StatefulSet", "controllerrevisions": "ControllerRevision", "jobs": "Job",
    "cronjobs": "CronJob", "persistentvolumeclaims": "PersistentVolumeClaim", "serviceaccounts": "ServiceAccount",
    "leases": "Lease", "endpoints": "Endpoints", "endpointslices": "EndpointSlice", "secrets": "Secret",
    "configmaps": "ConfigMap", "poddisruptionbudgets": "PodDisruptionBudget",
}
GENERATION_TRACKED = {"replicasets", "deployments", "daemonsets", "statefulsets", "jobs", "cronjobs"}


class FakeResource:
    """The ResourceClient verbs over FakeAPI."""

    def __init__(self, api: FakeAPI, api_version: str, plural: str) -> None:
        self.api, self.api_version, self.plural = api, api_version, plural

    def _ns(self, obj: Obj | None, namespace: str | None) -> str:
        if self.plural in CLUSTER_SCOPED:
            return ""
        return namespace or ((obj or {}).get("metadata") or {}).get("namespace") or "default"

    async def get(self, name: str, namespace: str | None = None, resource_version: str | None = None) -> Obj:
        self.api._check("get", self.plural)
        return copy.deepcopy(self.api._get(self.api_version, self.plural, self._ns(None, namespace), name))

    async def list(self, namespace: str | None = None, label_selector: Any = None, field_selector: Any = None,
                   limit: int | None = None, resource_version: str | None = None, continue_token: str | None = None,
                   resource_version_match: str | None = None) -> Obj:
        self.api._check("list", self.plural)
        lsel = parse_label_selector(label_selector if isinstance(label_selector, str) else
                                    ",".join(f"{k}={v}" for k, v in (label_selector or {}).items()))
        items = []
        for obj in self.api.objects.get((self.api_version, self.plural), {}).values():
            m = obj["metadata"]
            if namespace and m.get("namespace") != namespace:
                continue
            if not lsel.matches(m.get("labels") or {}):
                continue
            items.append(copy.deepcopy(obj))
        return {"kind": KINDS.get(self.plural, "") + "List", "apiVersion": self.api_version,
                "metadata": {"resourceVersion": str(self.api.rv)}, "items": items}

    async def list_all(self, namespace: str | None = None, label_selector: Any = None, field_selector: Any = None,
                       page_size: int = 500, resource_version: str | None = None) -> Obj:
        return await self.list(namespace, label_selector, field_selector)

    async def create(self, obj: Obj, namespace: str | None = None, **_: Any) -> Obj:
        return self.api.create(self.api_version, self.plural, obj, namespace)

    async def update(self, obj: Obj, namespace: str | None = None, **_: Any) -> Obj:
        return self.api.update(self.api_version, self.plural, obj, namespace)

    async def update_status(self, obj: Obj, namespace: str | None = None, **_: Any) -> Obj:
        return self.api.update(self.api_version, self.plural, obj, namespace, status=True)

    async def patch(self, name: str, patch: Any, namespace: str | None = None, patch_type: str = "merge",
                    subresource: str | None = None, **_: Any) -> Obj:
        return self.api.patch(self.api_version, self.plural, name, patch, self._ns(None, namespace), patch_type,
                              subresource)

    async def delete(self, name: str, namespace: str | None = None, propagation_policy: str | None = None,
                     grace_period_seconds: int | None = None, preconditions: Any = None, **_: Any) -> Obj:
        return self.api.delete(self.api_version, self.plural, name, self._ns(None, namespace), preconditions,
                               propagation_policy)

    async def create_subresource(self, name: str, subresource: str, body: Obj, namespace: str | None = None,
                                 params: Any = None) -> Obj:
        self.api._check("create", f"{self.plural}/{subresource}")
        self.api.actions.append(("create", f"{self.plural}/{subresource}", name))
        if self.plural == "pods" and subresource == "binding":
            ns = self._ns(None, namespace)
            return self.api.patch(self.api_version, "pods", name, {"spec": {"nodeName": body["target"]["name"]}},
                                  ns, "merge", None, record=False)
        return {}


class FakeAPI:
    """A tiny in-memory apiserver with the semantics controllers rely on."""

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock = clock or Clock()
        self.objects: dict[tuple[str, str], dict[str, Obj]] = {}
        self.rv = 100
        self.actions: list[tuple[str, str, str]] = []
        self.events: list[tuple[str, str, str, str]] = []  # (object name, type, reason, message)
        self.held: set[str] = set()
        self._pending: list[tuple[str, str, str, Obj, Obj | None]] = []
        self._failures: dict[tuple[str, str], list[BaseException]] = {}
        self._informers: list[FakeInformer] = []
        self.config = type("Config", (), {"namespace": "default", "user_agent": "fake"})()

    # -- the client surface ------------------------------------------------------------

    def resource(self, api_version: str, plural: str) -> FakeResource:
        return FakeResource(self, api_version, plural)

    def recorder(self, component: str) -> FakeRecorder:
        return FakeRecorder(self, component)

    async def close(self) -> None:
        pass

    # -- test controls -----------------------------------------------------------------

    def fail_next(self, verb: str, plural: str, error: BaseException, times: int = 1) -> None:
        self._failures.setdefault((verb, plural), []).extend([error] * times)

    def _check(self, verb: str, plural: str) -> None:
        queue = self._failures.get((verb, plural))
        if queue:
            raise queue.pop(0)

    def hold(self, plural: str) -> None:
        """Stop delivering watch events for `plural` until flush() (a slow watch)."""
        self.held.add(plural)

    def flush(self, plural: str | None = None) -> None:
        keep = []
        for item in self._pending:
            if plural is None or item[1] == plural:
                self._deliver(*item)
            else:
                keep.append(item)
        self._pending = keep
        if plural is None:
            self.held.clear()
        else:
            self.held.discard(plural)

    def writes(self, verb: str | None = None, plural: str | None = None) -> list[tuple[str, str, str]]:
        return [a for a in self.actions if (verb is None or a[0] == verb) and (plural is None or a[1] == plural)]

    def list_objects(self, api_version: str, plural: str, namespace: str | None = None) -> list[Obj]:
        return [o for o in self.objects.get((api_version, plural), {}).values()
                if namespace is None or o["metadata"].get("namespace") == namespace]

    def get_object(self, api_version: str, plural: str, namespace: str, name: str) -> Obj | None:
        return self.objects.get((api_version, plural), {}).get(f"{namespace}/{name}" if namespace else name)

    # -- storage -----------------------------------------------------------------------

    def _key(self, plural: str, ns: str, name: str) -> str:
        return name if plural in CLUSTER_SCOPED else f"{ns}/{name}"

    def _get(self, api_version: str, plural: str, ns: str, name: str) -> Obj:
        obj = self.objects.get((api_version, plural), {}).get(self._key(plural, ns, name))
        if obj is None:
            raise errors.not_found(plural, name)
        return obj

    def _next_rv(self) -> str:
        self.rv += 1
        return str(self.rv)

    def _now(self) -> str:
        return format_time(self.clock.now())

    def create(self, api_version: str, plural: str, obj: Obj, namespace: str | None = None) -> Obj:
        self._check("create", plural)
        obj = copy.deepcopy(obj)
        m = obj.setdefault("metadata", {})
        if plural not in CLUSTER_SCOPED:
            m["namespace"] = namespace or m.get("namespace") or "default"
        if not m.get("name"):
            if not m.get("generateName"):
                raise errors.invalid(KINDS.get(plural, plural), "", [errors.field_cause("metadata.name", "name or generateName is required", "FieldValueRequired")])
            m["name"] = generate_name(m["generateName"])
        key = self._key(plural, m.get("namespace", ""), m["name"])
        store = self.objects.setdefault((api_version, plural), {})
        if key in store:
            raise errors.already_exists(plural, m["name"])
        obj.setdefault("apiVersion", api_version)
        obj.setdefault("kind", KINDS.get(plural, ""))
        m.setdefault("uid", new_uid())
        m.setdefault("creationTimestamp", self._now())
        m["resourceVersion"] = self._next_rv()
        if plural in GENERATION_TRACKED:
            m["generation"] = 1
        if plural == "pods":
            obj.setdefault("status", {}).setdefault("phase", "Pending")
        store[key] = obj
        self.actions.append(("create", plural, key))
        self._emit("ADDED", api_version, plural, obj, None)
        return copy.deepcopy(obj)

    def update(self, api_version: str, plural: str, obj: Obj, namespace: str | None = None, status: bool = False,
               record: bool = True) -> Obj:
        self._check("update_status" if status else "update", plural)
        m = obj["metadata"]
        ns = "" if plural in CLUSTER_SCOPED else (namespace or m.get("namespace") or "default")
        old = self._get(api_version, plural, ns, m["name"])
        if m.get("resourceVersion") and m["resourceVersion"] != old["metadata"]["resourceVersion"]:
            raise errors.conflict(plural, m["name"], "the object has been modified; please apply your changes "
                                  "to the latest version and try again")
        new = copy.deepcopy(obj)
        if status:
            new = {**copy.deepcopy(old), "status": new.get("status") or {}}
        else:
            if plural in GENERATION_TRACKED or plural == "pods":
                new["status"] = copy.deepcopy(old.get("status") or {})
            if plural in GENERATION_TRACKED and new.get("spec") != old.get("spec"):
                new["metadata"]["generation"] = (old["metadata"].get("generation") or 1) + 1
            for f in ("uid", "creationTimestamp", "deletionTimestamp", "namespace"):
                if f in old["metadata"]:
                    new["metadata"][f] = old["metadata"][f]
        new["metadata"]["resourceVersion"] = self._next_rv()
        key = self._key(plural, ns, m["name"])
        if (new["metadata"].get("deletionTimestamp") and not new["metadata"].get("finalizers")):
            del self.objects[(api_version, plural)][key]
            if record:
                self.actions.append(("update_status" if status else "update", plural, key))
            self._emit("DELETED", api_version, plural, new, old)
            return copy.deepcopy(new)
        self.objects[(api_version, plural)][key] = new
        if record:
            self.actions.append(("update_status" if status else "update", plural, key))
        self._emit("MODIFIED", api_version, plural, new, old)
        return copy.deepcopy(new)

    def patch(self, api_version: str, plural: str, name: str, patch: Any, ns: str, patch_type: str = "merge",
              subresource: str | None = None, record: bool = True) -> Obj:
        self._check("patch", plural)
        old = self._get(api_version, plural, ns, name)
        if patch_type == "strategic":
            new = strategic_merge_patch(old, patch, schema_for(api_version, old.get("kind", "")))
        elif patch_type == "json":
            new = json_patch(copy.deepcopy(old), patch)
        else:
            new = merge_patch(copy.deepcopy(old), patch)
        if new["metadata"].get("uid") != old["metadata"].get("uid"):
            raise errors.conflict(plural, name, f"Precondition failed: UID in precondition: {new['metadata'].get('uid')}, "
                                  f"UID in object meta: {old['metadata'].get('uid')}")
        new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
        if record:
            self.actions.append(("patch", f"{plural}/{subresource}" if subresource else plural, self._key(plural, ns, name)))
        return self.update(api_version, plural, new, ns, status=subresource == "status", record=False)

    def delete(self, api_version: str, plural: str, name: str, ns: str, preconditions: Any = None,
               propagation_policy: str | None = None) -> Obj:
        self._check("delete", plural)
        old = self._get(api_version, plural, ns, name)
        if preconditions and preconditions.get("uid") and preconditions["uid"] != old["metadata"].get("uid"):
            raise errors.conflict(plural, name, "Precondition failed: UID in precondition")
        key = self._key(plural, ns, name)
        self.actions.append(("delete", plural, key))
        if old["metadata"].get("finalizers") or propagation_policy == "Foreground":
            new = copy.deepcopy(old)
            new["metadata"]["deletionTimestamp"] = self._now()
            if propagation_policy == "Foreground":
                new["metadata"]["finalizers"] = [*new["metadata"].get("finalizers", []), "foregroundDeletion"]
            new["metadata"]["resourceVersion"] = self._next_rv()
            self.objects[(api_version, plural)][key] = new
            self._emit("MODIFIED", api_version, plural, new, old)
            return copy.deepcopy(new)
        del self.objects[(api_version, plural)][key]
        self._emit("DELETED", api_version, plural, old, old)
        return {"kind": "Status", "apiVersion": "v1", "status": "Success"}

    # -- watch delivery ----------------------------------------------------------------

    def _emit(self, etype: str, api_version: str, plural: str, obj: Obj, old: Obj | None) -> None:
        item = (etype, plural, api_version, copy.deepcopy(obj), old)
        if plural in self.held:
            self._pending.append(item)
        else:
            self._deliver(*item)

    def _deliver(self, etype: str, plural: str, api_version: str, obj: Obj, old: Obj | None) -> None:
        for inf in self._informers:
            if inf.plural == plural and inf.api_version == api_version:
                inf._event(etype, obj)


class FakeRecorder:
    def __init__(self, api: FakeAPI, component: str) -> None:
        self.api, self.component = api, component

    def event(self, obj: Obj, type: str, reason: str, message: str, action: str | None = None) -> None:
        self.api.events.append((obj["metadata"]["name"], type, reason, message))

    def eventf(self, obj: Obj, type: str, reason: str, fmt: str, *args: Any) -> None:
        self.event(obj, type, reason, fmt % args if args else fmt)

    async def close(self, timeout: float = 0) -> None:
        pass


class FakeInformer:
    """Store + handlers, fed synchronously by FakeAPI (handlers run inline, in order)."""

    def __init__(self, api: FakeAPI, api_version: str, plural: str) -> None:
        self.api, self.api_version, self.plural = api, api_version, plural
        self.store = Store()
        self._handlers: list[tuple[Callable[..., Any] | None, ...]] = []
        for obj in api.list_objects(api_version, plural):
            self.store.put(copy.deepcopy(obj))
        api._informers.append(self)

    has_synced = True

    async def wait_synced(self, timeout: float | None = None) -> bool:
        return True

    def add_handler(self, on_add=None, on_update=None, on_delete=None):
        self._handlers.append((on_add, on_update, on_delete))
        for obj in self.store.list():
            self._call(on_add, obj)
        return self._handlers[-1]

    def add_index(self, name: str, fn: IndexFunc) -> None:
        self.store.add_index(name, fn)

    def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    @staticmethod
    def _call(fn: Callable[..., Any] | None, *args: Any) -> None:
        if fn is None:
            return
        result = fn(*args)
        if inspect.isawaitable(result):
            raise RuntimeError("FakeInformer handlers must be synchronous")

    def _event(self, etype: str, obj: Obj) -> None:
        from apimachinery.meta import key_of

        key = key_of(obj)
        old = self.store.get(key)
        if etype == "DELETED":
            if old is None:
                return
            self.store.delete(key)
            for _, _, on_delete in self._handlers:
                self._call(on_delete, obj)
            return
        self.store.put(obj)
        for on_add, on_update, _ in self._handlers:
            if old is None:
                self._call(on_add, obj)
            else:
                self._call(on_update, old, obj)

    def relist_delete(self, key: str) -> None:
        """Drop an object as a re-list would (a DeletedFinalStateUnknown tombstone)."""
        old = self.store.delete(key)
        if old is not None:
            for _, _, on_delete in self._handlers:
                self._call(on_delete, DeletedFinalStateUnknown(key, old))


class FakeInformerFactory:
    def __init__(self, api: FakeAPI) -> None:
        self.api = api
        self._informers: dict[tuple[str, str], FakeInformer] = {}

    def informer(self, api_version: str, plural: str, namespace: str | None = None, label_selector: Any = None,
                 field_selector: Any = None) -> FakeInformer:
        key = (api_version, plural)
        if key not in self._informers:
            self._informers[key] = FakeInformer(self.api, api_version, plural)
        return self._informers[key]

    def start(self) -> None:
        pass

    async def wait_for_cache_sync(self, timeout: float | None = None) -> bool:
        return True

    async def stop(self) -> None:
        pass


async def run_until_idle(controllers: list[Any], settle: Callable[[], Any] | None = None, rounds: int = 200,
                         raise_errors: bool = False) -> int:
    """Process every queued key of every controller (and call `settle`, e.g. a fake kubelet)
    until nothing is queued; returns the number of syncs. Failed syncs are re-queued once per round."""
    syncs = 0
    for _ in range(rounds):
        if settle is not None:
            settle()
        busy = False
        for c in controllers:
            keys = []
            while len(c.queue):
                key = await c.queue.get()
                keys.append(key)
            for key in keys:
                busy = True
                syncs += 1
                try:
                    await c.sync(key)
                except Exception:
                    if raise_errors:
                        c.queue.done(key)
                        raise
                    c.queue.done(key)
                    c.queue.add(key)
                    continue
                c.queue.done(key)
        if not busy:
            return syncs
    raise AssertionError(f"controllers still busy after {rounds} rounds")


def make_pods_ready(api: FakeAPI, namespace: str | None = None, when: Any = None) -> int:
    """A fake kubelet: every Pending, not-deleted pod becomes Running and Ready (returns how many)."""
    n = 0
    for pod in list(api.list_objects("v1", "pods", namespace)):
        if pod["metadata"].get("deletionTimestamp") or (pod.get("status") or {}).get("phase") != "Pending":
            continue
        ts = format_time(when or api.clock.now())
        status = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": ts}],
                  "containerStatuses": [{"name": c.get("name", ""), "ready": True, "restartCount": 0}
                                        for c in (pod.get("spec") or {}).get("containers") or []]}
        api.update("v1", "pods", {**pod, "status": status}, status=True)
        n += 1
    return n
