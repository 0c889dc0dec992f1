"""The pod garbage collector: removes pods nobody else will (upstream pkg/controller/podgc).

Every 20 s (and once at start) it force-deletes (grace period 0):
- terminated pods (phase Succeeded/Failed) beyond --terminated-pod-gc-threshold (0 or less:
  never), evicted ones first, then the oldest;
- terminating pods on nodes that are not Ready and carry the
  `node.kubernetes.io/out-of-service` taint (their kubelet is known to be gone);
- pods bound to nodes that no longer exist: a node missing from the informer is quarantined
  for 40 s, then confirmed with a GET (the informer may just be late);
- terminating pods that were never scheduled.
A pod that has not finished is first marked Failed (and, when orphaned, given the
DisruptionTarget condition, reason DeletionByPodGC), since no kubelet will ever do it.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from apimachinery.meta import format_time
from client import ApiError, is_not_found
from controller_manager.base import Controller, ControllerContext, register
from controller_manager.conditions import is_node_ready
from controller_manager.podutil import creation_time, is_pod_terminal, phase

Obj = dict[str, Any]

GC_CHECK_PERIOD = 20.0
QUARANTINE_TIME = 40.0
OUT_OF_SERVICE_TAINT = "node.kubernetes.io/out-of-service"


def has_taint(node: Obj, key: str) -> bool:
    return any(t.get("key") == key for t in (node.get("spec") or {}).get("taints") or [])


def eviction_then_age(pod: Obj) -> tuple:
    """Sort key: evicted pods first, then by creation time (upstream byEvictionAndCreationTimestamp)."""
    evicted = (pod.get("status") or {}).get("reason") == "Evicted"
    created = creation_time(pod)
    return (0 if evicted else 1, created.timestamp() if created else 0.0, pod["metadata"].get("name", ""))


@register
class PodGCController(Controller):
    name = "pod-garbage-collector-controller"
    aliases = ("podgc",)
    service_account = "pod-garbage-collector"

    gc_check_period = GC_CHECK_PERIOD
    quarantine_time = QUARANTINE_TIME

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.pods = self.informer("v1", "pods")
        self.nodes = self.informer("v1", "nodes")
        self.pods_api = self.client.resource("v1", "pods")
        self.nodes_api = self.client.resource("v1", "nodes")
        self.threshold = self.options.terminated_pod_gc_threshold
        #: node name → when it was first found missing from the informer (monotonic)
        self._missing_since: dict[str, float] = {}

    def background(self, stop: asyncio.Event):
        return [self._loop(stop)]

    async def _loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.gc()
            except Exception:
                self.log.exception("pod GC pass failed")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.gc_check_period):
                    await stop.wait()

    async def sync(self, key: str) -> None:  # everything happens in the periodic pass
        return None

    async def gc(self) -> None:
        pods = self.pods.store.list()
        if self.threshold > 0:
            await self.gc_terminated(pods)
        await self.gc_terminating(pods)
        await self.gc_orphaned(pods)
        await self.gc_unscheduled_terminating(pods)

    async def _delete_all(self, pods: list[Obj], condition: Obj | None = None) -> None:
        results = await asyncio.gather(*(self.mark_failed_and_delete(p, condition) for p in pods),
                                       return_exceptions=True)
        for pod, r in zip(pods, results, strict=True):
            if isinstance(r, Exception):
                self.log.warning("pod GC: deleting %s/%s failed: %s", pod["metadata"].get("namespace"),
                                 pod["metadata"]["name"], r)

    async def gc_terminated(self, pods: list[Obj]) -> None:
        terminated = [p for p in pods if phase(p) not in ("Pending", "Running", "Unknown")]
        excess = len(terminated) - self.threshold
        if excess <= 0:
            return
        self.log.info("pod GC: garbage collecting %d terminated pods", excess)
        await self._delete_all(sorted(terminated, key=eviction_then_age)[:excess])

    async def gc_terminating(self, pods: list[Obj]) -> None:
        doomed = []
        for pod in pods:
            if not pod["metadata"].get("deletionTimestamp"):
                continue
            node = self.nodes.store.get((pod.get("spec") or {}).get("nodeName") or "")
            if node is not None and not is_node_ready(node) and has_taint(node, OUT_OF_SERVICE_TAINT):
                doomed.append(pod)
        if doomed:
            self.log.info("pod GC: garbage collecting %d terminating pods on out-of-service nodes", len(doomed))
            await self._delete_all(sorted(doomed, key=eviction_then_age))

    async def gc_orphaned(self, pods: list[Obj]) -> None:
        now = self.clock.monotonic()
        existing = set(self.nodes.store.keys())
        for pod in pods:
            node = (pod.get("spec") or {}).get("nodeName")
            if node and node not in existing:
                self._missing_since.setdefault(node, now)
        deleted: set[str] = set()
        for node, since in list(self._missing_since.items()):
            if node in existing:
                del self._missing_since[node]
                continue
            if now - since < self.quarantine_time:
                continue
            del self._missing_since[node]
            try:
                await self.nodes_api.get(node)
            except ApiError as e:
                if is_not_found(e):
                    deleted.add(node)
                else:
                    self.log.warning("pod GC: checking node %s failed: %s", node, e)
        orphans = [p for p in pods if (p.get("spec") or {}).get("nodeName") in deleted]
        if orphans:
            self.log.info("pod GC: deleting %d pods bound to deleted nodes %s", len(orphans), sorted(deleted))
            condition = {"type": "DisruptionTarget", "status": "True", "reason": "DeletionByPodGC",
                         "message": "PodGC: node no longer exists"}
            await self._delete_all(orphans, condition)

    async def gc_unscheduled_terminating(self, pods: list[Obj]) -> None:
        doomed = [p for p in pods if p["metadata"].get("deletionTimestamp") and not (p.get("spec") or {}).get("nodeName")]
        if doomed:
            await self._delete_all(doomed)

    async def mark_failed_and_delete(self, pod: Obj, condition: Obj | None = None) -> None:
        meta = pod["metadata"]
        ns, name = meta.get("namespace"), meta["name"]
        self.log.info("pod GC: force deleting pod %s/%s", ns, name)
        try:
            if not is_pod_terminal(pod):
                status: Obj = {"phase": "Failed"}
                if condition is not None:
                    status["conditions"] = [{**condition, "lastTransitionTime": format_time(self.clock.now())}]
                await self.pods_api.patch(name, {"status": status}, ns, "strategic", subresource="status")
            await self.pods_api.delete(name, ns, grace_period_seconds=0, preconditions={"uid": meta.get("uid", "")})
        except ApiError as e:
            if not is_not_found(e):
                raise
