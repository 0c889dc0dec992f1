"""The ResourceQuota admission plugin (upstream plugin/pkg/admission/resourcequota), exact
under concurrency.

Usage is charged before the object is written: per namespace, an asyncio lock serializes
the check and a compare-and-swap of each matching quota's `status.used` in etcd, so
concurrent creates can never take a quota over its hard limit. A charge whose object
never appears (the write failed) is released again.

Usage also has to come down when objects go away, and a new quota needs its first
`status`: upstream's resourcequota controller does that. Until the controller-manager has
one, `QuotaAccounting` recomputes a namespace's usage from the watch caches (plus the
charges still in flight) when a quota is created or changed, and when a tracked object is
deleted or a pod ends.

Tracked resources: `pods`, `cpu`/`memory`/`ephemeral-storage` requests and limits (and
extended `requests.*`), `services` (`services.nodeports`, `services.loadbalancers`),
`persistentvolumeclaims` and `requests.storage`, `configmaps`, `secrets`,
`resourcequotas`, and `count/<resource>[.<group>]` for anything served. Scopes:
Terminating, NotTerminating, BestEffort, NotBestEffort and `scopeSelector` on
PriorityClass.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import orjson

from apimachinery.quantity import BINARY_SI, QuantityError, format_quantity, milli_value, new_milli_quantity
from apiserver.admission import CREATE, UPDATE, Attributes, Plugin
from apiserver.storage import TxnFailed

if TYPE_CHECKING:
    from apiserver.resources import Resource
    from apiserver.server import APIServer

log = logging.getLogger("apiserver.admission.resourcequota")

Usage = dict[str, int]  # resource name → amount in milli-units (exact for every resource)

INFLIGHT_SECONDS = 10.0
POD_NAMES = {"pods", "cpu", "memory", "ephemeral-storage", "requests.cpu", "requests.memory",
             "requests.ephemeral-storage", "limits.cpu", "limits.memory", "limits.ephemeral-storage"}
#: resources a quota may only track with `cpu`/`memory` requests in every container
CONSTRAINED = ("cpu", "memory", "requests.cpu", "requests.memory", "limits.cpu", "limits.memory")
LEGACY_COUNTS = {"services": "services", "persistentvolumeclaims": "persistentvolumeclaims", "configmaps": "configmaps",
                 "secrets": "secrets", "resourcequotas": "resourcequotas", "replicationcontrollers": "replicationcontrollers"}
ONE = 1000


# -- usage of one object ---------------------------------------------------------------------


def _milli(v: Any) -> int | None:
    try:
        return milli_value(v)
    except (QuantityError, TypeError, ValueError):
        return None


def _rl(x: Any) -> Usage:
    out: Usage = {}
    if isinstance(x, dict):
        for k, v in x.items():
            m = _milli(v)
            if m is not None:
                out[k] = m
    return out


def _containers_of(spec: dict[str, Any], key: str) -> list[dict[str, Any]]:
    v = spec.get(key)
    return [c for c in v if isinstance(c, dict)] if isinstance(v, list) else []


def _resources(c: dict[str, Any]) -> tuple[Usage, Usage]:
    res = c.get("resources") if isinstance(c.get("resources"), dict) else {}
    limits = _rl(res.get("limits"))
    requests = {**limits, **_rl(res.get("requests"))}  # requests default to limits
    return requests, limits


def pod_totals(spec: dict[str, Any]) -> tuple[Usage, Usage]:
    """(requests, limits) of a pod: containers summed, each init container only raises the max."""
    req: Usage = {}
    lim: Usage = {}
    for c in _containers_of(spec, "containers"):
        r, li = _resources(c)
        for k, v in r.items():
            req[k] = req.get(k, 0) + v
        for k, v in li.items():
            lim[k] = lim.get(k, 0) + v
    for c in _containers_of(spec, "initContainers"):
        r, li = _resources(c)
        for k, v in r.items():
            req[k] = max(req.get(k, 0), v)
        for k, v in li.items():
            lim[k] = max(lim.get(k, 0), v)
    for k, v in _rl(spec.get("overhead")).items():
        req[k] = req.get(k, 0) + v
        if k in lim:
            lim[k] += v
    return req, lim


def pod_counts_for_compute(pod: dict[str, Any]) -> bool:
    """Upstream's QuotaV1Pod: terminal pods (and ones past their deletion grace) stop counting."""
    if ((pod.get("status") or {}) if isinstance(pod.get("status"), dict) else {}).get("phase") in ("Succeeded", "Failed"):
        return False
    meta = pod.get("metadata") or {}
    ts, grace = meta.get("deletionTimestamp"), meta.get("deletionGracePeriodSeconds")
    if ts and grace is not None:
        from apimachinery.meta import parse_time

        with contextlib.suppress(ValueError):
            if time.time() > parse_time(ts).timestamp() + grace:
                return False
    return True


def pod_usage(pod: dict[str, Any]) -> Usage:
    usage: Usage = {"count/pods": ONE}
    if not pod_counts_for_compute(pod):
        return usage
    spec = pod.get("spec") if isinstance(pod.get("spec"), dict) else {}
    req, lim = pod_totals(spec)
    usage["pods"] = ONE
    for name in ("cpu", "memory", "ephemeral-storage"):
        if name in req:
            usage[name] = usage[f"requests.{name}"] = req[name]
        if name in lim:
            usage[f"limits.{name}"] = lim[name]
    for name, v in req.items():
        if name not in ("cpu", "memory", "ephemeral-storage") and ("/" in name or name.startswith("hugepages-")):
            usage[f"requests.{name}"] = v
    return usage


def service_usage(svc: dict[str, Any]) -> Usage:
    spec = svc.get("spec") if isinstance(svc.get("spec"), dict) else {}
    usage = {"services": ONE, "count/services": ONE}
    ports = spec.get("ports") if isinstance(spec.get("ports"), list) else []
    t = spec.get("type")
    if t == "NodePort":
        usage["services.nodeports"] = len(ports) * ONE
    elif t == "LoadBalancer":
        usage["services.loadbalancers"] = ONE
        if spec.get("allocateLoadBalancerNodePorts", True) is not False:
            usage["services.nodeports"] = len(ports) * ONE
    return usage


def claim_usage(pvc: dict[str, Any]) -> Usage:
    spec = pvc.get("spec") if isinstance(pvc.get("spec"), dict) else {}
    usage = {"persistentvolumeclaims": ONE, "count/persistentvolumeclaims": ONE}
    storage = _rl(((spec.get("resources") or {}) if isinstance(spec.get("resources"), dict) else {}).get("requests")).get("storage")
    sc = spec.get("storageClassName")
    if storage is not None:
        usage["requests.storage"] = storage
    if isinstance(sc, str) and sc:
        usage[f"{sc}.storageclass.storage.k8s.io/persistentvolumeclaims"] = ONE
        if storage is not None:
            usage[f"{sc}.storageclass.storage.k8s.io/requests.storage"] = storage
    return usage


def object_usage(res: Resource, obj: dict[str, Any]) -> Usage:
    if not res.group:
        if res.plural == "pods":
            return pod_usage(obj)
        if res.plural == "services":
            return service_usage(obj)
        if res.plural == "persistentvolumeclaims":
            return claim_usage(obj)
        if res.plural in LEGACY_COUNTS:
            return {res.plural: ONE, f"count/{res.plural}": ONE}
        return {f"count/{res.plural}": ONE}
    return {f"count/{res.plural}.{res.group}": ONE}


def tracks(res: Resource, name: str) -> bool:
    """Does an object of `res` contribute to quota resource `name`?"""
    if name.startswith("count/"):
        rest = name[len("count/"):]
        return rest == (f"{res.plural}.{res.group}" if res.group else res.plural)
    if res.group:
        return False
    if res.plural == "pods":
        return name in POD_NAMES or (name.startswith(("requests.", "limits.")) and name != "requests.storage")
    if res.plural == "services":
        return name in ("services", "services.nodeports", "services.loadbalancers")
    if res.plural == "persistentvolumeclaims":
        return name in ("persistentvolumeclaims", "requests.storage") or ".storageclass.storage.k8s.io/" in name
    return name == LEGACY_COUNTS.get(res.plural)


# -- quotas ----------------------------------------------------------------------------------


def hard_of(quota: dict[str, Any]) -> Usage:
    return _rl((quota.get("spec") or {}).get("hard"))


def scope_matches(quota: dict[str, Any], res: Resource, obj: dict[str, Any]) -> bool:
    spec = quota.get("spec") or {}
    scopes = list(spec.get("scopes") or [])
    selector = [e for e in ((spec.get("scopeSelector") or {}).get("matchExpressions") or []) if isinstance(e, dict)]
    if not scopes and not selector:
        return True
    if res.group or res.plural != "pods":
        return False  # scoped quotas only ever track pods
    pod_spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
    for scope in scopes:
        if not _scope_holds(scope, "Exists", [], pod_spec):
            return False
    return all(_scope_holds(e.get("scopeName"), e.get("operator"), e.get("values") or [], pod_spec) for e in selector)


def _scope_holds(scope: Any, op: Any, values: list[Any], spec: dict[str, Any]) -> bool:
    from apiserver.registry.podspec import qos_class

    if scope == "PriorityClass":
        pc = spec.get("priorityClassName") or ""
        if op == "In":
            return pc in values
        if op == "NotIn":
            return pc not in values
        if op == "Exists":
            return bool(pc)
        if op == "DoesNotExist":
            return not pc
        return False
    deadline = spec.get("activeDeadlineSeconds")
    terminating = isinstance(deadline, int) and deadline >= 0
    holds = {
        "Terminating": terminating,
        "NotTerminating": not terminating,
        "BestEffort": qos_class(spec) == "BestEffort",
        "NotBestEffort": qos_class(spec) != "BestEffort",
    }.get(scope)
    if holds is None:
        return False
    return holds if op in ("Exists", None) else (not holds if op == "DoesNotExist" else holds)


def format_amount(name: str, milli: int) -> str:
    base = name.rsplit("/", 1)[-1].removeprefix("requests.").removeprefix("limits.")
    if base == "cpu":
        return format_quantity(new_milli_quantity(milli))
    value = Decimal(milli) / 1000
    if base in ("memory", "storage", "ephemeral-storage") or base.startswith("hugepages-"):
        # amounts keep no format here: the shorter of the binary (512Mi) and decimal (2G) forms,
        # binary on a tie — what a quota written either way reads as upstream, which keeps formats
        binary, decimal = format_quantity(value, BINARY_SI), format_quantity(value)
        return decimal if len(decimal) < len(binary) else binary
    return format_quantity(value)


def pretty(usage: Usage) -> str:
    return ",".join(f"{k}={format_amount(k, v)}" for k, v in sorted(usage.items()))


def missing_requests(res: Resource, obj: dict[str, Any], names: set[str]) -> str:
    """Upstream's pod constraint: quota'd cpu/memory must be requested by every container."""
    if res.group or res.plural != "pods":
        return ""
    required = names.intersection(CONSTRAINED)
    if not required:
        return ""
    spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
    missing: dict[str, list[str]] = {}
    for c in _containers_of(spec, "initContainers") + _containers_of(spec, "containers"):
        requests, limits = _resources(c)
        for name in required:
            base = name.split(".")[-1]
            have = limits if name.startswith("limits.") else requests
            if base not in have:
                missing.setdefault(name, []).append(c.get("name", ""))
    if not missing:
        return ""
    return "must specify " + "; ".join(f"{k} for: {','.join(sorted(set(v)))}" for k, v in sorted(missing.items()))


@dataclass(slots=True)
class _Charge:
    plugin: Plugin
    a: Attributes
    delta: Usage
    matching: list[str]
    done: asyncio.Future[None]


class QuotaAccounting:
    """Per-namespace locks, charges in flight, and usage recomputation from the watch caches."""

    def __init__(self, server: APIServer) -> None:
        self.server = server
        self.res = server.resource("", "resourcequotas")
        self.cache = server.cache_for("", "resourcequotas")
        self._locks: dict[str, asyncio.Lock] = {}
        #: ns → uid → (resource, object) charged but not yet seen in the cache
        self.inflight: dict[str, dict[str, tuple[Resource, dict[str, Any]]]] = {}
        self._scheduled: set[str] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._quota_ns: set[str] | None = None
        self._quota_ns_of: Any = None
        #: charges waiting for the namespace's next group commit
        self._queues: dict[str, list[_Charge]] = {}
        self._draining: set[str] = set()
        #: (ns, name) → (quota, mod_revision) as this apiserver last wrote it
        self._known: dict[tuple[str, str], tuple[dict[str, Any], int]] = {}
        self.cache.listeners.append(self._on_quota)
        #: caches followed (weak: a custom resource's cache dies with its definition, and an id could
        #: be reused by the next one)
        self._watched: weakref.WeakSet[Any] = weakref.WeakSet()
        for res in server.table.resources:
            cache = server.caches.get(res.storage_prefix)
            if cache is not None:
                self.track(res, cache)

    def track(self, res: Resource, cache: Any) -> None:
        """Follow a resource's cache (the custom resources' caches come and go with their definitions)."""
        if res.namespaced and cache not in self._watched:
            self._watched.add(cache)
            cache.listeners.append(self._listener_for(res))

    def lock(self, ns: str) -> asyncio.Lock:
        lock = self._locks.get(ns)
        if lock is None:
            lock = self._locks[ns] = asyncio.Lock()
        return lock

    def namespaces_with_quota(self) -> set[str]:
        if self._quota_ns is None or self._quota_ns_of is not self.cache.objects:
            self._quota_ns_of = self.cache.objects
            self._quota_ns = {e.namespace for e in self.cache.objects.values()}
        return self._quota_ns

    def quotas(self, ns: str) -> list[dict[str, Any]]:
        prefix = f"{self.cache.prefix}{ns}/"
        return [orjson.loads(e.data) for k, e in self.cache.objects.items() if k.startswith(prefix)]

    # -- triggers ------------------------------------------------------------------------

    def _on_quota(self, ev: Any) -> None:
        self._quota_ns = None
        known = self._known.get((ev.entry.namespace, ev.entry.name))
        if known is not None and known[1] != ev.entry.revision and ev.entry.revision >= known[1]:
            del self._known[(ev.entry.namespace, ev.entry.name)]
        if ev.type == "DELETED":
            return
        q = orjson.loads(ev.entry.data)
        if (q.get("status") or {}).get("hard") != (q.get("spec") or {}).get("hard") or "used" not in (q.get("status") or {}):
            self.schedule(ev.entry.namespace)

    def _listener_for(self, res: Resource) -> Callable[[Any], None]:
        def listen(ev: Any) -> None:
            ns = ev.entry.namespace
            if ns not in self.namespaces_with_quota():
                return
            pending = self.inflight.get(ns)
            if ev.type == "ADDED" and pending:
                uid = (orjson.loads(ev.entry.data).get("metadata") or {}).get("uid")
                if pending.pop(uid, None) is not None and not pending:
                    del self.inflight[ns]
            elif ev.type == "DELETED":
                self.schedule(ns)
            elif ev.type == "MODIFIED" and res.plural == "pods" and not res.group and ev.prev is not None:
                now_counts = pod_counts_for_compute(orjson.loads(ev.entry.data))
                if not now_counts and pod_counts_for_compute(orjson.loads(ev.prev.data)):
                    self.schedule(ns)

        return listen

    def schedule(self, ns: str) -> None:
        if ns in self._scheduled:
            return
        self._scheduled.add(ns)
        task = asyncio.get_running_loop().create_task(self._recompute_later(ns), name=f"quota-recompute {ns}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _recompute_later(self, ns: str) -> None:
        await asyncio.sleep(0.05)  # coalesce bursts (a namespace being emptied)
        self._scheduled.discard(ns)
        for attempt in range(5):
            try:
                async with self.lock(ns):
                    await self.recompute(ns)
                return
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.warning("recomputing quota usage in %s failed: %s", ns, e)
                await asyncio.sleep(0.5 * (attempt + 1))

    # -- usage ---------------------------------------------------------------------------

    def measured(self, ns: str, quota: dict[str, Any]) -> Usage:
        """Usage of a quota's resources from the caches plus what is in flight (lock held)."""
        hard = hard_of(quota)
        used = dict.fromkeys(hard, 0)
        counted: set[str] = set()
        for res in self.server.table.resources:
            # each stored object once: versions and kinds sharing a storage are counted by the first
            if not res.namespaced or res.storage_prefix in counted:
                continue
            counted.add(res.storage_prefix)
            names = [n for n in hard if tracks(res, n)]
            if not names:
                continue
            cache = self.server.caches[res.storage_prefix]
            prefix = res.prefix(ns)
            objs = [orjson.loads(e.data) for k, e in cache.objects.items() if k.startswith(prefix)]
            objs += [o for r, o in (self.inflight.get(ns) or {}).values() if r.storage_prefix == res.storage_prefix]
            for obj in objs:
                if not scope_matches(quota, res, obj):
                    continue
                u = object_usage(res, obj)
                for n in names:
                    used[n] += u.get(n, 0)
        return used

    async def recompute(self, ns: str) -> None:
        kvs, _, _, _ = await self.server.store.list(self.res.prefix(ns))
        for kv in kvs:
            for _ in range(5):
                quota = kv.decode()
                status = self._status(quota, self.measured(ns, quota))
                if status == quota.get("status"):
                    break
                try:
                    await self._write(quota, kv.mod_revision, status)
                    break
                except TxnFailed as e:
                    if e.current is None:
                        break
                    kv = e.current

    @staticmethod
    def _status(quota: dict[str, Any], used: Usage) -> dict[str, Any]:
        hard = (quota.get("spec") or {}).get("hard") or {}
        return {"hard": dict(hard), "used": {k: format_amount(k, v) for k, v in sorted(used.items()) if k in hard}}

    async def _write(self, quota: dict[str, Any], mod_revision: int, status: dict[str, Any]) -> tuple[dict[str, Any], int]:
        """Compare-and-swap the quota's status → (quota as written, its new revision)."""
        new = dict(quota)
        new["metadata"] = {k: v for k, v in quota["metadata"].items() if k != "resourceVersion"}
        new["status"] = status
        ns, name = quota["metadata"]["namespace"], quota["metadata"]["name"]
        self._known.pop((ns, name), None)
        rev = await self.server.store.update(self.res.key(ns, name), orjson.dumps(new), mod_revision)
        return new, rev

    # -- charging --------------------------------------------------------------------------

    async def charge(self, plugin: Plugin, a: Attributes, delta: Usage, matching: list[str]) -> None:
        """Check `delta` against the named quotas of a.namespace and record it before returning.

        Concurrent charges in one namespace are committed together (group commit): each is
        checked, in arrival order, against the usage that includes every charge admitted
        before it, and one compare-and-swap per quota records them all before any of their
        objects is written. One etcd transaction per batch instead of two per request.
        """
        pending = _Charge(plugin, a, delta, matching, asyncio.get_running_loop().create_future())
        queue = self._queues.setdefault(a.namespace, [])
        queue.append(pending)
        if len(queue) == 1 and a.namespace not in self._draining:
            self._draining.add(a.namespace)
            task = asyncio.get_running_loop().create_task(self._drain(a.namespace), name=f"quota-charge {a.namespace}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        await pending.done

    async def _drain(self, ns: str) -> None:
        try:
            async with self.lock(ns):
                while self._queues.get(ns):
                    batch = self._queues.pop(ns)
                    try:
                        await self._commit(ns, batch)
                    except Exception as e:  # etcd down: every waiter gets the error
                        for c in batch:
                            if not c.done.done():
                                c.done.set_exception(e)
        finally:
            self._draining.discard(ns)
            if self._queues.get(ns):  # arrived while we were finishing
                self._draining.add(ns)
                task = asyncio.get_running_loop().create_task(self._drain(ns), name=f"quota-charge {ns}")
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _quota(self, ns: str, name: str) -> tuple[dict[str, Any], int] | None:
        """The quota as we last wrote it (our writes are the freshest), else from etcd."""
        known = self._known.get((ns, name))
        if known is not None:
            return known
        kv = await self.server.store.get(self.res.key(ns, name))
        if kv is None:
            return None
        return kv.decode(), kv.mod_revision

    async def _commit(self, ns: str, batch: list[_Charge]) -> None:
        names = sorted({n for c in batch for n in c.matching})
        for _ in range(10):
            state: dict[str, tuple[dict[str, Any], int, Usage, Usage]] = {}  # name → quota, rev, hard, used
            for name in names:
                found = await self._quota(ns, name)
                if found is None:
                    continue
                quota, rev = found
                status = quota.get("status") or {}
                if status.get("hard") != (quota.get("spec") or {}).get("hard") or "used" not in status:
                    used = self.measured(ns, quota)  # no usage recorded yet: measure it now
                else:
                    used = _rl(status.get("used"))
                state[name] = (quota, rev, hard_of(quota), used)
            running = {name: dict(st[3]) for name, st in state.items()}
            outcome: dict[int, Exception | None] = {}
            for i, c in enumerate(batch):
                refusal = None
                for name in c.matching:
                    if name not in state:
                        continue
                    quota, _, hard, _ = state[name]
                    requested = {k: v for k, v in c.delta.items() if k in hard}
                    exceeded = sorted(k for k in requested if running[name].get(k, 0) + requested[k] > hard[k])
                    if exceeded:
                        refusal = c.plugin.forbidden(c.a, (
                            f"exceeded quota: {name}, "
                            f"requested: {pretty({k: requested[k] for k in exceeded})}, "
                            f"used: {pretty({k: running[name].get(k, 0) for k in exceeded})}, "
                            f"limited: {pretty({k: hard[k] for k in exceeded})}"))
                        break
                outcome[i] = refusal
                if refusal is None and not c.a.dry_run:
                    for name in c.matching:
                        if name in state:
                            hard = state[name][2]
                            for k, v in c.delta.items():
                                if k in hard:
                                    running[name][k] = max(running[name].get(k, 0) + v, 0)
            written: list[str] = []
            try:
                for name, (quota, rev, hard, _used) in state.items():
                    new_used = {**dict.fromkeys(hard, 0), **{k: v for k, v in running[name].items() if k in hard}}
                    status = self._status(quota, new_used)
                    if status == quota.get("status"):
                        continue
                    self._known[(ns, name)] = await self._write(quota, rev, status)
                    written.append(name)
            except TxnFailed as e:
                failed = name
                self._known.pop((ns, failed), None)
                if e.current is not None:
                    self._known[(ns, failed)] = (e.current.decode(), e.current.mod_revision)
                for name in written:  # undo, then redo the whole batch on fresh data
                    undo = {k: state[name][3].get(k, 0) - running[name].get(k, 0) for k in state[name][2]}
                    await self._adjust(ns, name, undo)
                continue
            loop = asyncio.get_running_loop()
            for i, c in enumerate(batch):
                err = outcome[i]
                if err is not None:
                    c.done.set_exception(err)
                    continue
                if c.a.operation == CREATE and not c.a.dry_run and isinstance(c.a.obj, dict):
                    uid = (c.a.obj.get("metadata") or {}).get("uid")
                    if uid:
                        self.inflight.setdefault(ns, {})[uid] = (c.a.resource, c.a.obj)
                        loop.call_later(INFLIGHT_SECONDS, self._expire, ns, uid)
                c.done.set_result(None)
            return
        for c in batch:
            c.done.set_exception(c.plugin.forbidden(c.a, "too many concurrent quota updates, please retry"))

    async def _adjust(self, ns: str, name: str, delta: Usage) -> None:
        for _ in range(10):
            kv = await self.server.store.get(self.res.key(ns, name))
            if kv is None:
                return
            quota = kv.decode()
            hard = hard_of(quota)
            used = _rl((quota.get("status") or {}).get("used"))
            for k, v in delta.items():
                if k in hard:
                    used[k] = max(used.get(k, 0) + v, 0)
            try:
                await self._write(quota, kv.mod_revision, self._status(quota, used))
                return
            except TxnFailed:
                continue

    def _expire(self, ns: str, uid: str) -> None:
        pending = self.inflight.get(ns)
        if pending and pending.pop(uid, None) is not None:
            if not pending:
                del self.inflight[ns]
            self.schedule(ns)  # the object never appeared: give its charge back

    async def stop(self) -> None:
        for t in list(self._tasks):
            t.cancel()
        for t in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t


class ResourceQuota(Plugin):
    name = "ResourceQuota"

    def __init__(self, server: APIServer) -> None:
        self.server = server
        self.accounting: QuotaAccounting = server.quota

    async def validate(self, a: Attributes) -> None:
        if a.subresource or not a.namespace or not a.resource.namespaced:
            return
        if a.operation == UPDATE:
            if a.resource.group or a.resource.plural not in ("services", "persistentvolumeclaims"):
                return
        elif a.operation != CREATE:
            return
        if not isinstance(a.obj, dict) or a.namespace not in self.accounting.namespaces_with_quota():
            return
        res = a.resource
        quotas = [q for q in self.accounting.quotas(a.namespace)
                  if any(tracks(res, n) for n in hard_of(q)) and scope_matches(q, res, a.obj)]
        if not quotas:
            return
        for q in quotas:
            why = missing_requests(res, a.obj, set(hard_of(q)))
            if why:
                raise self.forbidden(a, f"failed quota: {q['metadata']['name']}: {why}")
        delta = object_usage(res, a.obj)
        if a.operation == UPDATE and isinstance(a.old, dict):
            old = object_usage(res, a.old)
            delta = {k: delta.get(k, 0) - old.get(k, 0) for k in set(delta) | set(old)}
        delta = {k: v for k, v in delta.items() if v}
        if not delta:
            return
        await self.accounting.charge(self, a, delta, [q["metadata"]["name"] for q in quotas])
