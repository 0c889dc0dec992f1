"""The scheduling queue: active (by priority, then time), backoff, and unschedulable pods.

Upstream's internal/queue.PriorityQueue:
- `add` puts a new pending pod in activeQ (unless its schedulingGates hold it back);
- a pod that failed goes to the unschedulable pods — or straight to backoffQ when a cluster
  event arrived while it was being scheduled (moveRequestCycle), or when no plugin rejected
  it (an error);
- a cluster event (node added, pod deleted, ...) moves the unschedulable pods that one of
  the plugins that rejected them cares about to activeQ, or to backoffQ if their backoff
  (1 s doubling per attempt up to 10 s) has not expired;
- backoffQ is flushed into activeQ every second, and pods left unschedulable for 5 minutes
  are retried anyway.

The nominator remembers pods nominated to nodes by preemption, so other pods leave room.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from scheduler.framework import WILDCARD, ClusterEvent
from scheduler.plugins.priority_sort import sort_key
from scheduler.podinfo import PodInfo

log = logging.getLogger("scheduler.queue")

Obj = dict[str, Any]

ACTIVE_Q = "active"
BACKOFF_Q = "backoff"
UNSCHEDULABLE_Q = "unschedulable"
GATED = "gated"
POD_ADD = "PodAdd"
POD_UPDATE = "PodUpdate"
BACKOFF_COMPLETE = "BackoffComplete"
SCHEDULE_ATTEMPT_FAILURE = "ScheduleAttemptFailure"


class QueuedPodInfo:
    __slots__ = ("attempts", "gated", "initial_attempt_timestamp", "pod_info", "timestamp",
                 "unschedulable_plugins")

    def __init__(self, pod_info: PodInfo, now: float) -> None:
        self.pod_info = pod_info
        self.timestamp = now
        self.initial_attempt_timestamp: float | None = None
        self.attempts = 0
        self.unschedulable_plugins: set[str] = set()
        self.gated = False

    @property
    def key(self) -> str:
        return self.pod_info.key

    def __repr__(self) -> str:
        return f"QueuedPodInfo({self.pod_info.key}, attempts={self.attempts}, plugins={sorted(self.unschedulable_plugins)})"


def pod_spec_changed(old: Obj, new: Obj) -> bool:
    """Anything but status/resourceVersion/generation/managedFields/finalizers changed (upstream isPodUpdated)."""
    def strip(p: Obj) -> Obj:
        meta = {k: v for k, v in (p.get("metadata") or {}).items()
                if k not in ("resourceVersion", "generation", "managedFields", "finalizers")}
        return {k: v for k, v in p.items() if k != "status"} | {"metadata": meta}
    return strip(old) != strip(new)


class Nominator:
    """Pods nominated to nodes (status.nominatedNodeName or a fresh preemption decision)."""

    def __init__(self, lookup: Callable[[str], Obj | None] | None = None) -> None:
        self._by_node: dict[str, dict[str, PodInfo]] = {}
        self._node_of: dict[str, str] = {}
        self._lookup = lookup

    def add(self, pi: PodInfo, node: str | None = None) -> None:
        """Nominate `pi` to `node`, or (node None) to the node its status names."""
        self.delete(pi)
        name = pi.nominated_node_name if node is None else node
        if not name:
            return
        if self._lookup is not None:
            current = self._lookup(pi.key)
            if current is None or (current.get("spec") or {}).get("nodeName"):
                return  # gone, or already bound: nothing to reserve
        self._node_of[pi.uid] = name
        self._by_node.setdefault(name, {})[pi.uid] = pi

    def delete(self, pi: PodInfo) -> None:
        name = self._node_of.pop(pi.uid, None)
        if name is None:
            return
        pods = self._by_node.get(name)
        if pods is not None:
            pods.pop(pi.uid, None)
            if not pods:
                del self._by_node[name]

    def update(self, old: PodInfo, new: PodInfo) -> None:
        node: str | None = None
        if not old.nominated_node_name and not new.nominated_node_name:
            node = self._node_of.get(old.uid)  # keep a reservation made in memory
        self.delete(old)
        self.add(new, node)

    def nominated_pods_for_node(self, node: str) -> list[PodInfo]:
        pods = self._by_node.get(node)
        return list(pods.values()) if pods else []

    def nominated_node(self, uid: str) -> str:
        return self._node_of.get(uid, "")

    def __len__(self) -> int:
        return len(self._node_of)


class _Heap:
    """A heap of QueuedPodInfo by key, with removal and update (lazy deletion)."""

    def __init__(self, key: Callable[[QueuedPodInfo], Any]) -> None:
        self._key = key
        self._heap: list[list[Any]] = []
        self._entries: dict[str, list[Any]] = {}
        self._seq = itertools.count()

    def push(self, qpi: QueuedPodInfo) -> None:
        self.remove(qpi.key)
        entry = [self._key(qpi), next(self._seq), qpi, True]
        self._entries[qpi.key] = entry
        heapq.heappush(self._heap, entry)

    def remove(self, key: str) -> QueuedPodInfo | None:
        entry = self._entries.pop(key, None)
        if entry is None:
            return None
        entry[3] = False
        return entry[2]

    def get(self, key: str) -> QueuedPodInfo | None:
        entry = self._entries.get(key)
        return entry[2] if entry is not None else None

    def peek(self) -> QueuedPodInfo | None:
        heap = self._heap
        while heap and not heap[0][3]:
            heapq.heappop(heap)
        return heap[0][2] if heap else None

    def pop(self) -> QueuedPodInfo | None:
        heap = self._heap
        while heap:
            entry = heapq.heappop(heap)
            if entry[3]:
                del self._entries[entry[2].key]
                return entry[2]
        return None

    def values(self) -> list[QueuedPodInfo]:
        return [e[2] for e in self._entries.values()]

    def __contains__(self, key: str) -> bool:
        return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)


class SchedulingQueue:
    def __init__(
        self,
        cluster_events: Mapping[str, Iterable[tuple[str, int]]] | None = None,
        *,
        initial_backoff: float = 1.0,
        max_backoff: float = 10.0,
        max_in_unschedulable: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
        pod_lookup: Callable[[str], Obj | None] | None = None,
        ns_labels: Callable[[str], Mapping[str, str]] | None = None,
        on_incoming: Callable[[str, str], None] | None = None,
    ) -> None:
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self.max_in_unschedulable = max_in_unschedulable
        self.clock = clock
        # plugin name → (resource, action bits) it registered for
        self.cluster_events = {k: tuple(v) for k, v in (cluster_events or {}).items()}
        self._active = _Heap(lambda q: sort_key(q.pod_info.priority, q.timestamp))
        self._backoff = _Heap(self.backoff_expiry)
        self._unschedulable: dict[str, QueuedPodInfo] = {}
        self.nominator = Nominator(pod_lookup)
        self._ns_labels = ns_labels or (lambda ns: {})
        self._on_incoming = on_incoming
        self.scheduling_cycle = 0
        self.move_request_cycle = -1
        self._wakeup = asyncio.Event()
        self.closed = False

    # -- sizes -------------------------------------------------------------------------

    def sizes(self) -> dict[str, int]:
        gated = sum(1 for q in self._unschedulable.values() if q.gated)
        return {ACTIVE_Q: len(self._active), BACKOFF_Q: len(self._backoff),
                UNSCHEDULABLE_Q: len(self._unschedulable) - gated, GATED: gated}

    def __contains__(self, key: str) -> bool:
        return key in self._active or key in self._backoff or key in self._unschedulable

    def _incoming(self, queue: str, event: str) -> None:
        if self._on_incoming is not None:
            self._on_incoming(queue, event)

    # -- adding ------------------------------------------------------------------------

    def _to_active(self, qpi: QueuedPodInfo, event: str) -> bool:
        """PreEnqueue (scheduling gates) then activeQ; a gated pod waits among the unschedulable."""
        if (qpi.pod_info.spec.get("schedulingGates") or ()):
            qpi.gated = True
            self._unschedulable[qpi.key] = qpi
            return False
        qpi.gated = False
        self._active.push(qpi)
        self._wakeup.set()
        self._incoming(ACTIVE_Q, event)
        return True

    def add(self, pod: Obj | PodInfo) -> None:
        pi = pod if isinstance(pod, PodInfo) else PodInfo(pod)
        qpi = QueuedPodInfo(pi, self.clock())
        self._backoff.remove(qpi.key)
        self._unschedulable.pop(qpi.key, None)
        self._to_active(qpi, POD_ADD)
        self.nominator.add(pi)

    def add_unschedulable_if_not_present(self, qpi: QueuedPodInfo, cycle: int) -> bool:
        """Put a pod that failed back (cycle: the scheduling cycle it failed in). False if already queued."""
        key = qpi.key
        if key in self._active or key in self._backoff:
            return False
        qpi.timestamp = self.clock()
        if self.move_request_cycle >= cycle or not qpi.unschedulable_plugins:
            self._backoff.push(qpi)
            self._incoming(BACKOFF_Q, SCHEDULE_ATTEMPT_FAILURE)
        else:
            self._unschedulable[key] = qpi
            self._incoming(UNSCHEDULABLE_Q, SCHEDULE_ATTEMPT_FAILURE)
        self.nominator.add(qpi.pod_info)
        return True

    def update(self, old: Obj, new: Obj) -> None:
        pi = PodInfo(new)
        old_pi = PodInfo(old)
        key = pi.key
        for heap in (self._active, self._backoff):
            qpi = heap.get(key)
            if qpi is not None:
                self.nominator.update(old_pi, pi)
                qpi.pod_info = pi
                heap.push(qpi)
                return
        qpi = self._unschedulable.get(key)
        if qpi is not None:
            self.nominator.update(old_pi, pi)
            qpi.pod_info = pi
            if pod_spec_changed(old, new):
                del self._unschedulable[key]
                if self.is_backing_off(qpi):
                    self._backoff.push(qpi)
                    self._incoming(BACKOFF_Q, POD_UPDATE)
                else:
                    self._to_active(qpi, POD_UPDATE)
            return
        # not queued (e.g. being scheduled right now): queue it again
        qpi = QueuedPodInfo(pi, self.clock())
        self._to_active(qpi, POD_UPDATE)
        self.nominator.update(old_pi, pi)

    def delete(self, pod: Obj | PodInfo) -> None:
        pi = pod if isinstance(pod, PodInfo) else PodInfo(pod)
        self._active.remove(pi.key)
        self._backoff.remove(pi.key)
        self._unschedulable.pop(pi.key, None)
        self.nominator.delete(pi)

    # -- popping -----------------------------------------------------------------------

    async def pop(self) -> QueuedPodInfo | None:
        """The next pod to schedule (waits for one); None once closed."""
        while True:
            if self.closed:
                return None
            qpi = self._active.pop()
            if qpi is not None:
                qpi.attempts += 1
                if qpi.initial_attempt_timestamp is None:
                    qpi.initial_attempt_timestamp = self.clock()
                self.scheduling_cycle += 1
                return qpi
            self._wakeup.clear()
            await self._wakeup.wait()

    def pop_nowait(self) -> QueuedPodInfo | None:
        qpi = self._active.pop()
        if qpi is not None:
            qpi.attempts += 1
            if qpi.initial_attempt_timestamp is None:
                qpi.initial_attempt_timestamp = self.clock()
            self.scheduling_cycle += 1
        return qpi

    def close(self) -> None:
        self.closed = True
        self._wakeup.set()

    # -- backoff -----------------------------------------------------------------------

    def backoff_duration(self, qpi: QueuedPodInfo) -> float:
        d = self.initial_backoff
        for _ in range(1, qpi.attempts):
            if d > self.max_backoff - d:
                return self.max_backoff
            d += d
        return d

    def backoff_expiry(self, qpi: QueuedPodInfo) -> float:
        return qpi.timestamp + self.backoff_duration(qpi)

    def is_backing_off(self, qpi: QueuedPodInfo) -> bool:
        if qpi.gated:
            return False  # never attempted: nothing to back off from
        return self.backoff_expiry(qpi) > self.clock()

    def flush_backoff_completed(self) -> int:
        """Move pods whose backoff expired to activeQ; returns how many moved."""
        now = self.clock()
        moved = 0
        while True:
            qpi = self._backoff.peek()
            if qpi is None or self.backoff_expiry(qpi) > now:
                break
            self._backoff.pop()
            self._to_active(qpi, BACKOFF_COMPLETE)
            moved += 1
        return moved

    def flush_unschedulable_leftover(self) -> int:
        now = self.clock()
        stale = [q for q in self._unschedulable.values()
                 if not q.gated and now - q.timestamp > self.max_in_unschedulable]
        if stale:
            self._move(stale, ("*", 63, "UnschedulableTimeout"))
        return len(stale)

    async def run_flushers(self, stop: asyncio.Event, backoff_every: float = 1.0,
                           leftover_every: float = 30.0) -> None:
        """The two periodic flushes, until `stop`."""
        last_leftover = self.clock()
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), backoff_every)
            except TimeoutError:
                pass
            self.flush_backoff_completed()
            if self.clock() - last_leftover >= leftover_every:
                last_leftover = self.clock()
                self.flush_unschedulable_leftover()

    # -- cluster events ----------------------------------------------------------------

    def _matches_event(self, qpi: QueuedPodInfo, event: ClusterEvent) -> bool:
        resource, action, _label = event
        if resource == WILDCARD:
            return True
        for plugin in qpi.unschedulable_plugins:
            for res, act in self.cluster_events.get(plugin, ()):
                if (res == WILDCARD or res == resource) and act & action:
                    return True
        return False

    def _move(self, pods: Iterable[QueuedPodInfo], event: ClusterEvent) -> int:
        moved = 0
        for qpi in pods:
            if qpi.gated:
                continue
            if qpi.unschedulable_plugins and not self._matches_event(qpi, event):
                continue
            self._unschedulable.pop(qpi.key, None)
            if self.is_backing_off(qpi):
                self._backoff.push(qpi)
                self._incoming(BACKOFF_Q, event[2])
            else:
                self._to_active(qpi, event[2])
            moved += 1
        self.move_request_cycle = self.scheduling_cycle
        return moved

    def move_all_to_active_or_backoff(self, event: ClusterEvent,
                                      pre_check: Callable[[PodInfo], bool] | None = None) -> int:
        pods = [q for q in self._unschedulable.values() if pre_check is None or pre_check(q.pod_info)]
        return self._move(pods, event)

    def assigned_pod_added(self, pi: PodInfo, event: ClusterEvent) -> int:
        """Move the unschedulable pods whose required affinity terms match the new/updated pod."""
        if not self._unschedulable:
            self.move_request_cycle = self.scheduling_cycle
            return 0
        ns_labels = self._ns_labels(pi.namespace)
        pods = [q for q in self._unschedulable.values()
                if any(t.matches(pi.namespace, pi.labels, ns_labels) for t in q.pod_info.required_affinity_terms)]
        return self._move(pods, event)

    # -- the nominator -----------------------------------------------------------------

    def nominated_pods_for_node(self, node: str) -> list[PodInfo]:
        return self.nominator.nominated_pods_for_node(node)

    def pending_pods(self) -> list[PodInfo]:
        out = [q.pod_info for q in self._active.values()]
        out += [q.pod_info for q in self._backoff.values()]
        out += [q.pod_info for q in self._unschedulable.values()]
        return out

    def unschedulable_pod(self, key: str) -> QueuedPodInfo | None:
        return self._unschedulable.get(key)
