"""The scheduler: informers feed the cache and the queue; one loop schedules, bindings run async.

Upstream's scheduler.go + schedule_one.go. Each scheduling cycle (one pod at a time):
pop the next pod, run the algorithm (filters, scores), *assume* the pod on the chosen node
in the cache, run the Reserve plugins, and hand the binding to its own task so the next
cycle starts at once: PreBind plugins (VolumeBinding may wait there for its claims to be
bound), then `POST pods/<name>/binding`. A failed Reserve, PreBind or binding unreserves,
forgets the assumed pod and requeues it. A pod that
fits nowhere runs PostFilter (preemption), gets a `FailedScheduling` event with the
per-plugin reasons, its PodScheduled condition, and waits in the queue for an event that
may help it.
"""

from __future__ import annotations

import asyncio
import logging
import time
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from apimachinery.meta import now
from client import NORMAL, WARNING, ApiError, EventRecorder
from scheduler.algorithm import Algorithm, NoNodesAvailable, SchedulingError
from scheduler.cache import SchedulerCache
from scheduler.framework import ASSIGNED_POD_DELETE, ChangeNotifier, CycleState, Framework, Handle
from scheduler.metrics import ERROR, SCHEDULED, UNSCHEDULABLE, SchedulerMetrics
from scheduler.plugins import new_framework
from scheduler.podinfo import PodInfo
from scheduler.queue import QueuedPodInfo, SchedulingQueue
from scheduler.status import ERROR as ERROR_CODE
from scheduler.status import FitError, Status

log = logging.getLogger("scheduler")

Obj = dict[str, Any]

DEFAULT_SCHEDULER_NAME = "default-scheduler"
REASON_UNSCHEDULABLE = "Unschedulable"
REASON_SCHEDULER_ERROR = "SchedulerError"
MAX_EVENT_MESSAGE = 1024  # upstream truncates event messages to 1 KiB


@dataclass
class SchedulerConfig:
    """What upstream's KubeSchedulerConfiguration holds that we support."""

    scheduler_names: list[str] = field(default_factory=lambda: [DEFAULT_SCHEDULER_NAME])
    percentage_of_nodes_to_score: int = 0
    pod_initial_backoff_seconds: float = 1.0
    pod_max_backoff_seconds: float = 10.0
    pod_max_in_unschedulable_seconds: float = 300.0
    disabled_plugins: list[str] = field(default_factory=list)
    score_weights: dict[str, int] = field(default_factory=dict)
    event_writers: int = 8  # parallel Event writers (each pod always goes to the same one)
    event_queue_size: int = 2000  # per writer; beyond, events are dropped (as upstream's broadcaster)
    max_concurrent_bindings: int = 32  # bindings in flight; beyond, they wait (keeps connections warm)
    bind_timeout_seconds: float = 600.0  # VolumeBinding: how long PreBind waits for the claims to be bound
    identity: str = ""


def truncate_message(msg: str) -> str:
    if len(msg) <= MAX_EVENT_MESSAGE:
        return msg
    return msg[: MAX_EVENT_MESSAGE - 3] + "..."


class ShardedEvents:
    """Several EventRecorders writing in parallel; an object always maps to the same one, so
    repeated events about it are still folded into one Event (count, lastTimestamp)."""

    def __init__(self, api: Any, component: str, host: str | None, shards: int, queue_size: int = 1000) -> None:
        self.recorders = [EventRecorder(api, component, host, queue_size=queue_size) for _ in range(max(1, shards))]

    def event(self, obj: Obj, type: str, reason: str, message: str, action: str | None = None) -> None:
        meta = obj.get("metadata") or {}
        key = f"{meta.get('namespace')}/{meta.get('name')}".encode()
        self.recorders[zlib.crc32(key) % len(self.recorders)].event(obj, type, reason, message, action)

    @property
    def dropped(self) -> int:
        return sum(r.dropped for r in self.recorders)

    async def close(self, timeout: float = 5.0) -> None:
        await asyncio.gather(*(r.close(timeout) for r in self.recorders))


def is_assigned(pod: Obj) -> bool:
    return bool((pod.get("spec") or {}).get("nodeName"))


def scheduler_name_of(pod: Obj) -> str:
    return (pod.get("spec") or {}).get("schedulerName") or DEFAULT_SCHEDULER_NAME


class Scheduler:
    """Wire with `attach(...)` (API client, stores), then `await run(stop)`."""

    def __init__(self, config: SchedulerConfig | None = None, metrics: SchedulerMetrics | None = None,
                 clock: Any = time.monotonic) -> None:
        self.config = config or SchedulerConfig()
        self.metrics = metrics or SchedulerMetrics()
        self.clock = clock
        self.cache = SchedulerCache()
        self.handles: dict[str, Handle] = {}
        self.profiles: dict[str, Framework] = {}
        self.queue = SchedulingQueue(
            initial_backoff=self.config.pod_initial_backoff_seconds,
            max_backoff=self.config.pod_max_backoff_seconds,
            max_in_unschedulable=self.config.pod_max_in_unschedulable_seconds,
            clock=clock,
            pod_lookup=self._lookup_pod,
            ns_labels=self._namespace_labels,
            on_incoming=lambda q, ev: self.metrics.queue_incoming.inc(q, ev),
        )
        self.changes = ChangeNotifier()  # informer changes that waiting PreBinds care about
        for name in self.config.scheduler_names:
            handle = Handle(self.cache, self.queue)
            handle.scheduler_name = name
            handle.metrics = self.metrics
            handle.changes = self.changes
            handle.plugin_args = {"VolumeBinding": {"bind_timeout_seconds": self.config.bind_timeout_seconds}}
            fw = new_framework(handle, self.config.disabled_plugins, self.config.score_weights)
            self.handles[name] = handle
            self.profiles[name] = fw
        events: dict[str, Iterable[tuple[str, int]]] = {}
        for fw in self.profiles.values():
            for plugin, evs in fw.cluster_events.items():
                events[plugin] = tuple(evs)
        self.queue.cluster_events = events
        self.algorithm = Algorithm(self.cache, self.config.percentage_of_nodes_to_score)
        self.api: Any = None
        self.pods_api: Any = None
        self.stores: dict[str, Any] = {}
        self.events: dict[str, Any] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._binding_slots: asyncio.Semaphore | None = None
        self.inflight_bindings = 0
        self.metrics.watch(self.queue.sizes, self._cache_sizes, lambda: self.inflight_bindings, self._dropped)

    # -- wiring ------------------------------------------------------------------------

    def attach(self, api: Any, stores: dict[str, Any], events: dict[str, Any] | None = None) -> None:
        """The API client (bindings, status patches, preemption), informer stores, event sinks per profile."""
        self.api = api
        self.pods_api = api.resource("v1", "pods") if api is not None else None
        self.stores = stores
        self.events = events or {}
        for name, handle in self.handles.items():
            handle.api = api
            handle.stores = stores
            handle.events = self.events.get(name)

    def responsible_for(self, pod: Obj) -> bool:
        return scheduler_name_of(pod) in self.profiles

    def _lookup_pod(self, key: str) -> Obj | None:
        store = self.stores.get("pods")
        return store.get(key) if store is not None else None

    def _namespace_labels(self, namespace: str) -> dict[str, str]:
        store = self.stores.get("namespaces")
        ns = store.get(namespace) if store is not None else None
        return ((ns or {}).get("metadata") or {}).get("labels") or {}

    def _cache_sizes(self) -> dict[str, int]:
        return {"nodes": self.cache.num_nodes, "pods": self.cache.num_pods, "assumed_pods": self.cache.num_assumed}

    def _dropped(self) -> int:
        return sum(getattr(e, "dropped", 0) for e in self.events.values())

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _event(self, profile: str, obj: Obj, type: str, reason: str, message: str, action: str) -> None:
        sink = self.events.get(profile)
        if sink is not None:
            sink.event(obj, type, reason, message, action)

    # -- the loop ----------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Schedule until `stop` is set (informers must be running and synced)."""
        flusher = self._spawn(self.queue.run_flushers(stop))
        waiter = asyncio.create_task(stop.wait())
        try:
            while not stop.is_set():
                qpi = self.queue.pop_nowait()
                if qpi is None:
                    popper = asyncio.create_task(self.queue.pop())
                    done, _ = await asyncio.wait({popper, waiter}, return_when=asyncio.FIRST_COMPLETED)
                    if popper not in done:
                        popper.cancel()
                        break
                    qpi = popper.result()
                    if qpi is None:
                        break
                await self.schedule_one(qpi)
                await asyncio.sleep(0)  # let informers and bindings run between cycles
        finally:
            waiter.cancel()
            flusher.cancel()
            self.queue.close()

    async def drain(self, timeout: float = 10.0) -> None:
        """Wait for in-flight bindings and status updates (shutdown, tests)."""
        pending = [t for t in self._tasks if not t.done()]
        if pending:
            await asyncio.wait(pending, timeout=timeout)

    # -- one cycle ---------------------------------------------------------------------

    def _skip(self, profile: str, pi: PodInfo) -> bool:
        if pi.deleting:
            self._event(profile, pi.pod, WARNING, "FailedScheduling",
                        f"skip schedule deleting pod: {pi.namespace}/{pi.name}", "Scheduling")
            return True
        return self.cache.is_assumed(pi.uid)

    async def schedule_one(self, qpi: QueuedPodInfo) -> None:
        pi = qpi.pod_info
        profile = pi.scheduler_name
        fw = self.profiles.get(profile)
        if fw is None:
            log.error("no profile for scheduler name %s (pod %s)", profile, pi.key)
            return
        if self._skip(profile, pi):
            return
        start = self.clock()
        state = CycleState()
        try:
            result = self.algorithm.schedule_pod(fw, state, pi)
        except FitError as fe:
            nominated: str | None = None
            if fw.post_filter_plugins:
                nominated, st = await fw.run_post_filter(state, pi, fe.diagnosis.node_to_status)
                if st is not None:
                    fe.diagnosis.post_filter_msg = st.message
            qpi.unschedulable_plugins = set(fe.diagnosis.unschedulable_plugins)
            for plugin in qpi.unschedulable_plugins:
                self.metrics.unschedulable_reasons.inc(plugin, profile)
            self.metrics.schedule_attempts.inc(UNSCHEDULABLE, profile)
            self.metrics.attempt_duration.observe(self.clock() - start, UNSCHEDULABLE, profile)
            self.handle_failure(profile, qpi, REASON_UNSCHEDULABLE, str(fe), nominated)
            return
        except NoNodesAvailable as e:
            qpi.unschedulable_plugins = set()
            self.metrics.schedule_attempts.inc(UNSCHEDULABLE, profile)
            self.metrics.attempt_duration.observe(self.clock() - start, UNSCHEDULABLE, profile)
            self.handle_failure(profile, qpi, REASON_UNSCHEDULABLE, str(e), "")
            return
        except SchedulingError as e:
            qpi.unschedulable_plugins = set()
            self.metrics.schedule_attempts.inc(ERROR, profile)
            self.metrics.attempt_duration.observe(self.clock() - start, ERROR, profile)
            self.handle_failure(profile, qpi, REASON_SCHEDULER_ERROR, str(e), "")
            return
        self.metrics.algorithm_duration.observe(self.clock() - start)
        assumed = pi.with_node(result.host)
        try:
            self.cache.assume_pod(assumed)
        except ValueError as e:
            qpi.unschedulable_plugins = set()
            self.metrics.schedule_attempts.inc(ERROR, profile)
            self.handle_failure(profile, qpi, REASON_SCHEDULER_ERROR, str(e), "")
            return
        if fw.reserve_plugins:
            st = fw.run_reserve(state, assumed, result.host)
            if st is not None:
                fw.run_unreserve(state, assumed, result.host)
                self.cache.forget_pod(assumed)
                self._record_failure(profile, qpi, start, st)
                return
        self.queue.nominator.delete(pi)
        self.inflight_bindings += 1
        self._spawn(self.binding_cycle(profile, qpi, assumed, start, state))

    def _record_failure(self, profile: str, qpi: QueuedPodInfo, start: float, st: Status) -> None:
        """A Reserve/PreBind failure: a rejection waits for its plugin's events, an error backs off."""
        if st.is_unschedulable():
            qpi.unschedulable_plugins = {st.plugin} if st.plugin else set()
            result, reason = UNSCHEDULABLE, REASON_UNSCHEDULABLE
        else:
            qpi.unschedulable_plugins = set()
            result, reason = ERROR, REASON_SCHEDULER_ERROR
        self.metrics.schedule_attempts.inc(result, profile)
        self.metrics.attempt_duration.observe(self.clock() - start, result, profile)
        self.handle_failure(profile, qpi, reason, st.message, "")

    def _binding_failed(self, profile: str, qpi: QueuedPodInfo, assumed: PodInfo, start: float,
                        state: CycleState, st: Status) -> None:
        self.inflight_bindings -= 1
        host = assumed.node_name
        log.info("binding %s to %s failed: %s", assumed.key, host, st.message)
        fw = self.profiles.get(profile)
        if fw is not None and fw.reserve_plugins:
            fw.run_unreserve(state, assumed, host)
        self.cache.forget_pod(assumed)
        # the assumed pod held resources: its removal is like an assigned pod's deletion
        self.queue.move_all_to_active_or_backoff(ASSIGNED_POD_DELETE, lambda p: p.uid != assumed.uid)
        self._record_failure(profile, qpi, start, st)

    async def binding_cycle(self, profile: str, qpi: QueuedPodInfo, assumed: PodInfo, start: float,
                            state: CycleState | None = None) -> None:
        host = assumed.node_name
        if state is None:
            state = CycleState()
        fw = self.profiles.get(profile)
        if fw is not None and fw.pre_bind_plugins:
            try:
                st = await fw.run_pre_bind(state, assumed, host)
            except Exception as e:  # a plugin bug must not leave the pod assumed forever
                log.exception("PreBind of %s on %s", assumed.key, host)
                st = Status(ERROR_CODE, f"running PreBind plugins: {e}")
            if st is not None:
                self._binding_failed(profile, qpi, assumed, start, state, st)
                return
        body = {"apiVersion": "v1", "kind": "Binding",
                "metadata": {"name": assumed.name, "namespace": assumed.namespace, "uid": assumed.uid},
                "target": {"apiVersion": "v1", "kind": "Node", "name": host}}
        if self._binding_slots is None:
            self._binding_slots = asyncio.Semaphore(max(1, self.config.max_concurrent_bindings))
        bind_start = self.clock()
        try:
            async with self._binding_slots:
                await self.pods_api.create_subresource(assumed.name, "binding", body, assumed.namespace)
        except Exception as e:
            msg = e.message if isinstance(e, ApiError) else str(e)
            self._binding_failed(profile, qpi, assumed, start, state, Status(ERROR_CODE, msg))
            return
        self.inflight_bindings -= 1
        t = self.clock()
        self.cache.finish_binding(assumed)
        m = self.metrics
        m.binding_duration.observe(t - bind_start)
        m.schedule_attempts.inc(SCHEDULED, profile)
        m.attempt_duration.observe(t - start, SCHEDULED, profile)
        m.pod_attempts.observe(qpi.attempts)
        if qpi.initial_attempt_timestamp is not None:
            attempts = str(qpi.attempts) if qpi.attempts < 16 else "15+"
            m.e2e_duration.observe(t - qpi.initial_attempt_timestamp, attempts)
        self._event(profile, assumed.pod, NORMAL, "Scheduled",
                    f"Successfully assigned {assumed.namespace}/{assumed.name} to {host}", "Binding")

    # -- failures ----------------------------------------------------------------------

    def handle_failure(self, profile: str, qpi: QueuedPodInfo, reason: str, message: str,
                       nominated: str | None) -> None:
        """Requeue (if the pod still exists unbound), nominate, record the event and the condition."""
        pi = qpi.pod_info
        current = self._lookup_pod(pi.key) if self.stores.get("pods") is not None else pi.pod
        if current is None:
            log.info("pod %s no longer exists; not requeued", pi.key)
        elif is_assigned(current):
            log.info("pod %s was bound to %s meanwhile; not requeued", pi.key, current["spec"]["nodeName"])
        else:
            if current is not pi.pod:
                qpi.pod_info = PodInfo(current)
            self.queue.add_unschedulable_if_not_present(qpi, self.queue.scheduling_cycle)
        self.queue.nominator.add(qpi.pod_info, nominated)
        log.debug("pod %s: %s", pi.key, message)
        self._event(profile, pi.pod, WARNING, "FailedScheduling", truncate_message(message), "Scheduling")
        if current is not None and not is_assigned(current) and self.pods_api is not None:
            patch = status_patch(current, reason, message, nominated)
            if patch is not None:
                self._spawn(self._patch_status(pi, patch))

    async def _patch_status(self, pi: PodInfo, patch: Obj) -> None:
        try:
            await self.pods_api.patch(pi.name, patch, pi.namespace, "strategic", subresource="status")
        except Exception as e:
            log.warning("updating the status of pod %s: %s", pi.key, e)


def status_patch(pod: Obj, reason: str, message: str, nominated: str | None) -> Obj | None:
    """The status patch upstream's updatePod would send, or None when nothing changes."""
    status = pod.get("status") or {}
    old = next((c for c in status.get("conditions") or () if c.get("type") == "PodScheduled"), None)
    changed = (old is None or old.get("status") != "False" or old.get("reason") != reason
               or old.get("message") != message)
    nnn_changes = nominated is not None and (status.get("nominatedNodeName") or "") != nominated
    if not changed and not nnn_changes:
        return None
    out: Obj = {}
    if changed:
        transition = old.get("lastTransitionTime") if old is not None and old.get("status") == "False" else now()
        out["conditions"] = [{"type": "PodScheduled", "status": "False", "reason": reason, "message": message,
                              "lastProbeTime": None, "lastTransitionTime": transition}]
    if nnn_changes:
        out["nominatedNodeName"] = nominated or None
    return {"status": out}
