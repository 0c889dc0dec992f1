"""Node-pressure eviction: watch memory, disk and PIDs against the hard thresholds, report
MemoryPressure / DiskPressure / PIDPressure, reclaim images under disk pressure, and evict
one pod per round while a threshold stays crossed — BestEffort first, then Burstable, then
Guaranteed; within a class the pods using most above their requests first.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from apimachinery.quantity import format_quantity
from kubelet.config import KubeletConfig, Threshold
from kubelet.machine import fs_stats, meminfo, pid_stats
from kubelet.nodestatus import NodeConditions
from kubelet.qos import BEST_EFFORT, BURSTABLE, pod_requests, qos_class

log = logging.getLogger("kubelet.eviction")

QOS_RANK = {BEST_EFFORT: 0, BURSTABLE: 1}
MEMORY_SIGNALS = ("memory.available",)
DISK_SIGNALS = ("nodefs.available", "nodefs.inodesFree", "imagefs.available", "imagefs.inodesFree")
PID_SIGNALS = ("pid.available",)


@dataclass
class Observation:
    available: int
    capacity: int


def observe(root_dir: str | os.PathLike[str], image_dir: str | os.PathLike[str]) -> dict[str, Observation]:
    mem = meminfo()
    node_fs = fs_stats(root_dir)
    image_fs = fs_stats(image_dir)
    pid_max, pids = pid_stats()
    return {
        "memory.available": Observation(mem.get("MemAvailable", 0), mem.get("MemTotal", 0)),
        "nodefs.available": Observation(node_fs.available, node_fs.capacity),
        "nodefs.inodesFree": Observation(node_fs.inodes_free, node_fs.inodes),
        "imagefs.available": Observation(image_fs.available, image_fs.capacity),
        "imagefs.inodesFree": Observation(image_fs.inodes_free, image_fs.inodes),
        "pid.available": Observation(pid_max - pids, pid_max),
    }


def crossed(thresholds: list[Threshold], observations: dict[str, Observation]) -> list[tuple[Threshold, Observation]]:
    out = []
    for t in thresholds:
        obs = observations.get(t.signal)
        if obs is not None and obs.available < t.value(obs.capacity):
            out.append((t, obs))
    return out


def rank_for_eviction(pods: list[dict[str, Any]], usage: dict[str, int], resource: str) -> list[dict[str, Any]]:
    """Pods in the order to evict them: QoS class, then usage above requests (most first)."""

    def key(pod: dict[str, Any]) -> tuple[int, int, int]:
        spec = pod.get("spec") or {}
        uid = pod["metadata"]["uid"]
        used = usage.get(uid, 0)
        requested = pod_requests(spec).get(resource, 0) if resource == "memory" else 0
        priority = int(spec.get("priority") or 0)
        return QOS_RANK.get(qos_class(spec), 2), priority, -(used - requested)

    return sorted(pods, key=key)


def dir_usage(path: Path) -> int:
    total = 0
    for directory, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(directory, name)).st_size
            except OSError:
                pass
    return total


class EvictionManager:
    def __init__(
        self,
        cfg: KubeletConfig,
        conditions: NodeConditions,
        image_dir: str,
        active_pods: Callable[[], list[dict[str, Any]]],
        memory_usage: Callable[[dict[str, Any]], int],
        disk_usage: Callable[[dict[str, Any]], Awaitable[int]],
        reclaim_images: Callable[[], Awaitable[int]],
        evict: Callable[[dict[str, Any], str, str], Awaitable[bool]],
        on_conditions_changed: Callable[[], None] | None = None,
    ) -> None:
        self.cfg = cfg
        self.conditions = conditions
        self.image_dir = image_dir
        self.active_pods = active_pods
        self.memory_usage = memory_usage
        self.disk_usage = disk_usage
        self.reclaim_images = reclaim_images
        self.evict = evict
        self.on_conditions_changed = on_conditions_changed
        self._last_crossed: dict[str, float] = {}  # pressure kind -> last time a threshold was crossed
        self.evictions = 0

    def admit(self, pod: dict[str, Any]) -> tuple[bool, str, str]:
        """Reject new pods the node cannot take under pressure (upstream's eviction admit handler)."""
        if self.conditions.disk_pressure:
            return False, "Evicted", "The node had condition: [DiskPressure]. "
        if self.conditions.memory_pressure and qos_class(pod.get("spec") or {}) == BEST_EFFORT:
            return False, "Evicted", "The node had condition: [MemoryPressure]. "
        if self.conditions.pid_pressure:
            return False, "Evicted", "The node had condition: [PIDPressure]. "
        return True, "", ""

    def _set_conditions(self, now: float) -> None:
        period = self.cfg.eviction_pressure_transition_period
        before = (self.conditions.memory_pressure, self.conditions.disk_pressure, self.conditions.pid_pressure)
        for kind in ("memory", "disk", "pid"):
            pressure = now - self._last_crossed.get(kind, -1e18) < period
            setattr(self.conditions, f"{kind}_pressure", pressure)
        after = (self.conditions.memory_pressure, self.conditions.disk_pressure, self.conditions.pid_pressure)
        if before != after and self.on_conditions_changed is not None:
            self.on_conditions_changed()

    async def synchronize(self) -> dict[str, Any] | None:
        """One round; returns the pod evicted, if any."""
        observations = await asyncio.to_thread(observe, self.cfg.root, self.image_dir)
        hits = crossed(self.cfg.eviction_hard, observations)
        now = time.monotonic()
        for t, _ in hits:
            kind = "memory" if t.signal in MEMORY_SIGNALS else "disk" if t.signal in DISK_SIGNALS else "pid"
            self._last_crossed[kind] = now
        self._set_conditions(now)
        if not hits:
            return None
        t, obs = hits[0]
        if t.signal in DISK_SIGNALS:  # first try to free disk without hurting pods
            freed = await self.reclaim_images()
            if freed:
                log.info("eviction: reclaimed %d bytes of images", freed)
                observations = await asyncio.to_thread(observe, self.cfg.root, self.image_dir)
                hits = crossed(self.cfg.eviction_hard, observations)
                if not hits:
                    return None
                t, obs = hits[0]
        pods = self.active_pods()
        if not pods:
            return None
        if t.signal in MEMORY_SIGNALS:
            resource = "memory"
            usage = {p["metadata"]["uid"]: self.memory_usage(p) for p in pods}
        elif t.signal in PID_SIGNALS:
            resource = "pids"
            usage = {}
        else:
            resource = "ephemeral-storage"
            usage = {p["metadata"]["uid"]: await self.disk_usage(p) for p in pods}
        resource_name = {"memory": "memory", "pids": "pids"}.get(resource, "ephemeral-storage")
        available = format_quantity(obs.available, "BinarySI") if resource != "pids" else str(obs.available)
        message = (f"The node was low on resource: {resource_name}. Threshold quantity: {t.describe()}, "
                   f"available: {available}. ")
        for pod in rank_for_eviction(pods, usage, resource):
            if await self.evict(pod, message, resource_name):
                self.evictions += 1
                return pod
        return None

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.synchronize()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("eviction round failed")
            try:
                await asyncio.wait_for(stop.wait(), self.cfg.eviction_monitoring_interval)
            except TimeoutError:
                pass
