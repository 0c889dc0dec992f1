"""/stats/summary: node, pod and container CPU/memory/filesystem usage (upstream's Summary API).

Containers come from CRI ListContainerStats, the running ones only (as upstream's CRI stats provider:
exited containers — earlier attempts, finished init containers — are no current usage), each with
its own start time (the container's creation, as upstream: metrics readers such as the apiserver's
metrics.k8s.io API tell restarts by it). CPU rates (usageNanoCores) are computed between two samples
when the runtime does not report them. The node's numbers come from /proc and statvfs.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from typing import TYPE_CHECKING, Any

from kubelet import naming
from kubelet.cri import pb
from kubelet.machine import CpuUsage, fs_stats, meminfo
from kubelet.qos import qos_class

if TYPE_CHECKING:
    from kubelet.kubelet import Kubelet


def _ts(t: float | None = None) -> str:
    return dt.datetime.fromtimestamp(t if t is not None else time.time(), dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class StatsProvider:
    def __init__(self, kubelet: Kubelet) -> None:
        self.kubelet = kubelet
        self.node_cpu = CpuUsage()
        self._container_cpu: dict[str, tuple[float, int]] = {}  # id -> (monotonic, core-ns)
        self.started = time.time()

    def _rate(self, cid: str, total: int, reported: int) -> int:
        now = time.monotonic()
        previous = self._container_cpu.get(cid)
        self._container_cpu[cid] = (now, total)
        if reported:
            return reported
        if previous is None or now <= previous[0]:
            return 0
        return max(0, int((total - previous[1]) / (now - previous[0])))

    async def container_rows(self) -> list[dict[str, Any]]:
        """Per running container: what /metrics/cadvisor shows (kubelet.resourcemetrics)."""
        k = self.kubelet
        running = pb.ContainerFilter(state=pb.ContainerStateValue(state=pb.CONTAINER_RUNNING))
        containers = {c.id: c for c in await k.cri.list_containers(running)}
        now = time.time()
        rows = []
        for s in await k.cri.list_container_stats():
            c = containers.get(s.attributes.id)
            if c is None:
                continue
            labels = c.labels
            uid = labels.get(naming.POD_UID, "")
            pod = k.pod(uid) if uid else None
            parent = k.cgroups.pod_cgroup(uid, qos_class(pod.get("spec") or {})) if pod and k.cfg.cgroups_per_qos else ""
            measured = s.cpu.timestamp or s.memory.timestamp
            rows.append({
                "container": c.metadata.name, "id": f"{parent}/{c.id}", "image": c.image.image or c.image_ref,
                "name": c.id, "namespace": labels.get(naming.POD_NAMESPACE, ""), "pod": labels.get(naming.POD_NAME, ""),
                "cpu_seconds": s.cpu.usage_core_nano_seconds.value / 1e9, "last_seen": int(now),
                "rss_bytes": s.memory.rss_bytes.value, "usage_bytes": s.memory.usage_bytes.value,
                "working_set_bytes": s.memory.working_set_bytes.value, "start_time": c.created_at / 1e9,
                "ms": int(measured / 1e6) if measured else int(now * 1000),
            })
        return rows

    async def summary(self) -> dict[str, Any]:
        k = self.kubelet
        now = _ts()
        total_ns = self.node_cpu.sample()
        mem = meminfo()
        root = fs_stats(k.cfg.root)
        node: dict[str, Any] = {
            "nodeName": k.node_name,
            "startTime": _ts(self.started),
            "cpu": {"time": now, "usageNanoCores": self.node_cpu.nano_cores, "usageCoreNanoSeconds": total_ns},
            "memory": {
                "time": now,
                "availableBytes": mem.get("MemAvailable", 0),
                "usageBytes": mem.get("MemTotal", 0) - mem.get("MemFree", 0),
                "workingSetBytes": mem.get("MemTotal", 0) - mem.get("MemAvailable", 0),
                "rssBytes": mem.get("AnonPages", 0),
                "pageFaults": 0,
                "majorPageFaults": 0,
            },
            "fs": {
                "time": now, "availableBytes": root.available, "capacityBytes": root.capacity,
                "usedBytes": root.used, "inodesFree": root.inodes_free, "inodes": root.inodes,
                "inodesUsed": root.inodes - root.inodes_free,
            },
            "systemContainers": [],
        }
        try:
            info = await k.cri.image_fs_info()
            if info.image_filesystems:
                image_fs = info.image_filesystems[0]
                stats = fs_stats(image_fs.fs_id.mountpoint) if image_fs.fs_id.mountpoint else root
                node["runtime"] = {"imageFs": {
                    "time": now, "availableBytes": stats.available, "capacityBytes": stats.capacity,
                    "usedBytes": image_fs.used_bytes.value, "inodesFree": stats.inodes_free,
                    "inodes": stats.inodes, "inodesUsed": image_fs.inodes_used.value,
                }}
        except Exception:
            pass
        container_stats = await k.cri.list_container_stats()
        running = pb.ContainerFilter(state=pb.ContainerStateValue(state=pb.CONTAINER_RUNNING))
        created = {c.id: c.created_at for c in await k.cri.list_containers(running)}
        by_pod: dict[str, list[Any]] = {}
        for s in container_stats:
            uid = s.attributes.labels.get(naming.POD_UID, "")
            if uid and s.attributes.id in created:
                by_pod.setdefault(uid, []).append(s)
        live = set()
        pods = []
        for pod in k.known_pods():
            meta = pod["metadata"]
            uid = meta["uid"]
            stats = by_pod.get(uid)
            if not stats:
                continue
            containers = []
            pod_cpu = pod_cpu_rate = pod_ws = pod_usage = pod_rss = 0
            for s in stats:
                live.add(s.attributes.id)
                total = s.cpu.usage_core_nano_seconds.value
                rate = self._rate(s.attributes.id, total, s.cpu.usage_nano_cores.value)
                ws = s.memory.working_set_bytes.value
                containers.append({
                    "name": s.attributes.metadata.name,
                    "startTime": _ts(created[s.attributes.id] / 1e9),
                    "cpu": {"time": now, "usageNanoCores": rate, "usageCoreNanoSeconds": total},
                    "memory": {
                        "time": now, "workingSetBytes": ws, "usageBytes": s.memory.usage_bytes.value,
                        "rssBytes": s.memory.rss_bytes.value, "pageFaults": s.memory.page_faults.value,
                        "majorPageFaults": s.memory.major_page_faults.value,
                    },
                    "rootfs": {"time": now, "usedBytes": s.writable_layer.used_bytes.value,
                               "inodesUsed": s.writable_layer.inodes_used.value,
                               "capacityBytes": root.capacity, "availableBytes": root.available},
                })
                pod_cpu += total
                pod_cpu_rate += rate
                pod_ws += ws
                pod_usage += s.memory.usage_bytes.value
                pod_rss += s.memory.rss_bytes.value
            volumes = []
            pod_dir = k.volumes.pod_dir(uid) / "volumes"
            if pod_dir.is_dir():
                for plugin in os.listdir(pod_dir):
                    for name in os.listdir(pod_dir / plugin):
                        from kubelet.eviction import dir_usage

                        volumes.append({"name": name, "time": now, "usedBytes": dir_usage(pod_dir / plugin / name)})
            pods.append({
                "podRef": {"name": meta["name"], "namespace": meta.get("namespace", "default"), "uid": uid},
                "startTime": (pod.get("status") or {}).get("startTime") or now,
                "containers": containers,
                "cpu": {"time": now, "usageNanoCores": pod_cpu_rate, "usageCoreNanoSeconds": pod_cpu},
                "memory": {"time": now, "workingSetBytes": pod_ws, "usageBytes": pod_usage, "rssBytes": pod_rss},
                "volume": volumes,
            })
        for cid in [c for c in self._container_cpu if c not in live]:
            del self._container_cpu[cid]
        return {"node": node, "pods": pods}
