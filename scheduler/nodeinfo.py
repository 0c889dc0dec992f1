"""One node as the scheduler sees it: its allocatable resources and what its pods request.

Upstream's framework.NodeInfo. Resources are ints (millicores for cpu); `requested` holds
the sums of the pods' requests, `nonzero_cpu/mem` the sums with the 100m/200Mi defaults
(used by spreading scores). Pods carrying inter-pod (anti-)affinity terms are kept apart so
the affinity plugins only look at those. `generation` changes on every change.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from apimachinery.quantity import CPU, EPHEMERAL_STORAGE, MEMORY, PODS, resource_list_ints
from scheduler.podinfo import PodInfo

Obj = dict[str, Any]

ZONE_LABEL = "topology.kubernetes.io/zone"
REGION_LABEL = "topology.kubernetes.io/region"
ZONE_LABEL_BETA = "failure-domain.beta.kubernetes.io/zone"
REGION_LABEL_BETA = "failure-domain.beta.kubernetes.io/region"
HOSTNAME_LABEL = "kubernetes.io/hostname"

_EMPTY: Mapping[str, str] = {}

_generation = 0


def next_generation() -> int:
    global _generation
    _generation += 1
    return _generation


def zone_key(labels: Mapping[str, str]) -> str:
    """region + zone, as upstream's utilnode.GetZoneKey ("" when the node has neither)."""
    zone = labels.get(ZONE_LABEL) or labels.get(ZONE_LABEL_BETA) or ""
    region = labels.get(REGION_LABEL) or labels.get(REGION_LABEL_BETA) or ""
    if not zone and not region:
        return ""
    return f"{region}:\x00:{zone}"


class NodeInfo:
    __slots__ = (
        "alloc", "alloc_cpu", "alloc_eph", "alloc_mem", "allowed_pods", "free_cpu", "free_mem", "free_pods",
        "generation", "images", "labels", "memo", "name", "node", "nonzero_cpu", "nonzero_mem", "pods", "pods_with_affinity",
        "pods_with_required_anti_affinity", "port_any", "port_exact", "req_cpu", "req_eph", "req_mem", "requested",
        "taints", "unschedulable", "zone",
    )

    def __init__(self, name: str) -> None:
        self.name = name
        self.node: Obj | None = None
        self.labels: Mapping[str, str] = _EMPTY
        self.taints: list[Obj] = []
        self.unschedulable = False
        self.zone = ""
        self.alloc: dict[str, int] = {}
        self.alloc_cpu = self.alloc_mem = self.alloc_eph = self.allowed_pods = 0
        self.requested: dict[str, int] = {}
        self.req_cpu = self.req_mem = self.req_eph = 0
        self.nonzero_cpu = self.nonzero_mem = 0
        self.free_cpu = self.free_mem = self.free_pods = 0  # allocatable minus requested (filters read these)
        self.pods: dict[str, PodInfo] = {}
        self.pods_with_affinity: dict[str, PodInfo] = {}
        self.pods_with_required_anti_affinity: dict[str, PodInfo] = {}
        self.port_exact: dict[tuple[str, str, int], int] = {}
        self.port_any: dict[tuple[str, int], int] = {}
        self.images: dict[str, int] = {}  # image name → size in bytes
        # score plugins' results for this node's current state, by (plugin, pod request): a node
        # changes far less often than it is scored; replaced (not cleared) on every change
        self.memo: dict[tuple, int] = {}
        self.generation = next_generation()

    # -- the node ------------------------------------------------------------------------

    def set_node(self, node: Obj) -> None:
        self.node = node
        meta = node.get("metadata") or {}
        spec = node.get("spec") or {}
        status = node.get("status") or {}
        self.labels = meta.get("labels") or _EMPTY
        self.taints = spec.get("taints") or []
        self.unschedulable = bool(spec.get("unschedulable"))
        self.zone = zone_key(self.labels)
        alloc = resource_list_ints(status.get("allocatable"))
        self.alloc = alloc
        self.alloc_cpu = alloc.get(CPU, 0)
        self.alloc_mem = alloc.get(MEMORY, 0)
        self.alloc_eph = alloc.get(EPHEMERAL_STORAGE, 0)
        self.allowed_pods = alloc.get(PODS, 0)
        images: dict[str, int] = {}
        for img in status.get("images") or ():
            size = int(img.get("sizeBytes") or 0)
            for n in img.get("names") or ():
                images[n] = size
        self.images = images
        self._refresh_free()
        self.memo = {}
        self.generation = next_generation()

    def _refresh_free(self) -> None:
        self.free_cpu = self.alloc_cpu - self.req_cpu
        self.free_mem = self.alloc_mem - self.req_mem
        self.free_pods = self.allowed_pods - len(self.pods)

    # -- pods ----------------------------------------------------------------------------

    def add_pod(self, pi: PodInfo) -> None:
        self.pods[pi.uid] = pi
        if pi.has_affinity:
            self.pods_with_affinity[pi.uid] = pi
        if pi.required_anti_affinity_terms:
            self.pods_with_required_anti_affinity[pi.uid] = pi
        self._account(pi, 1)

    def remove_pod(self, pi: PodInfo) -> bool:
        old = self.pods.pop(pi.uid, None)
        if old is None:
            return False
        self.pods_with_affinity.pop(pi.uid, None)
        self.pods_with_required_anti_affinity.pop(pi.uid, None)
        self._account(old, -1)
        return True

    def _account(self, pi: PodInfo, sign: int) -> None:
        req = self.requested
        for name, v in pi.requests.items():
            req[name] = req.get(name, 0) + sign * v
        self.req_cpu = req.get(CPU, 0)
        self.req_mem = req.get(MEMORY, 0)
        self.req_eph = req.get(EPHEMERAL_STORAGE, 0)
        self.nonzero_cpu += sign * pi.nonzero_cpu
        self.nonzero_mem += sign * pi.nonzero_mem
        self._refresh_free()
        self.memo = {}
        for ip, proto, port in pi.host_ports:
            for table, key in ((self.port_exact, (ip, proto, port)), (self.port_any, (proto, port))):
                n = table.get(key, 0) + sign  # type: ignore[attr-defined]
                if n > 0:
                    table[key] = n  # type: ignore[index]
                else:
                    table.pop(key, None)  # type: ignore[attr-defined]
        self.generation = next_generation()

    def port_conflicts(self, ip: str, proto: str, port: int) -> bool:
        """Upstream HostPortInfo.CheckConflict: 0.0.0.0 conflicts with any IP on the same protocol/port."""
        if ip == "0.0.0.0":
            return (proto, port) in self.port_any
        return (ip, proto, port) in self.port_exact or ("0.0.0.0", proto, port) in self.port_exact

    def iter_pods(self) -> Iterator[PodInfo]:
        return iter(self.pods.values())

    # -- copies (preemption simulates removing pods) -------------------------------------

    def clone(self) -> NodeInfo:
        c = NodeInfo.__new__(NodeInfo)
        for slot in NodeInfo.__slots__:
            setattr(c, slot, getattr(self, slot))
        c.requested = dict(self.requested)
        c.pods = dict(self.pods)
        c.pods_with_affinity = dict(self.pods_with_affinity)
        c.pods_with_required_anti_affinity = dict(self.pods_with_required_anti_affinity)
        c.port_exact = dict(self.port_exact)
        c.port_any = dict(self.port_any)
        c.memo = {}
        return c

    def __repr__(self) -> str:
        return (f"NodeInfo({self.name}, pods={len(self.pods)}, cpu={self.req_cpu}/{self.alloc_cpu}, "
                f"mem={self.req_mem}/{self.alloc_mem})")
