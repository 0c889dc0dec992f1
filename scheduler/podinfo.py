"""A pod as the scheduler sees it: parsed once (requests, ports, affinity terms), used many times.

Upstream's framework.PodInfo plus the bits of NodeInfo.calculateResource: requests as ints
(millicores, bytes), the "non-zero" requests used for spreading scores (a container without a
cpu/memory request counts as 100m / 200Mi), host ports, the claims and in-tree disks its volumes
use, and inter-pod (anti-)affinity terms with their label and namespace selectors parsed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from apimachinery.meta import now
from apimachinery.podutil import host_ports
from apimachinery.quantity import CPU, EPHEMERAL_STORAGE, MEMORY, pod_requests
from apimachinery.selectors import LabelSelector, LabelSelectorError, selector_from_label_selector

Obj = dict[str, Any]

DEFAULT_MILLI_CPU_REQUEST = 100  # 0.1 core, upstream schedutil.DefaultMilliCPURequest
DEFAULT_MEMORY_REQUEST = 200 * 1024 * 1024  # 200 MiB, upstream schedutil.DefaultMemoryRequest

_EMPTY: Mapping[str, str] = {}


def is_scalar_resource_name(name: str) -> bool:
    """Extended, prefixed-native, hugepages and attachable-volumes resources (upstream IsScalarResourceName)."""
    return "/" in name or name.startswith("hugepages-") or name.startswith("attachable-volumes-")


def is_fit_resource(name: str) -> bool:
    """Resources NodeResourcesFit accounts for; others (e.g. "pods") are ignored as upstream's Resource.Add does."""
    return name in (CPU, MEMORY, EPHEMERAL_STORAGE) or is_scalar_resource_name(name)


def _container_with_defaults(c: Mapping[str, Any]) -> dict[str, Any]:
    """A container whose missing cpu/memory requests are the scheduler's defaults."""
    res = c.get("resources") or {}
    req = dict(res.get("limits") or {})
    req.update(res.get("requests") or {})
    req.setdefault(CPU, f"{DEFAULT_MILLI_CPU_REQUEST}m")
    req.setdefault(MEMORY, str(DEFAULT_MEMORY_REQUEST))
    out: dict[str, Any] = {"resources": {"requests": req}}
    if c.get("restartPolicy"):
        out["restartPolicy"] = c["restartPolicy"]
    return out


def non_zero_requests(spec: Mapping[str, Any]) -> tuple[int, int]:
    """(millicpu, memory) with per-container defaults, as upstream's NonMissingContainerRequests."""
    synthetic = {
        "containers": [_container_with_defaults(c) for c in spec.get("containers") or ()],
        "initContainers": [_container_with_defaults(c) for c in spec.get("initContainers") or ()],
    }
    if spec.get("overhead"):
        synthetic["overhead"] = spec["overhead"]
    req = pod_requests(synthetic)
    return req.get(CPU, 0), req.get(MEMORY, 0)


def pod_priority(pod: Mapping[str, Any]) -> int:
    """spec.priority, 0 when unset (upstream corev1helpers.PodPriority)."""
    p = (pod.get("spec") or {}).get("priority")
    return p if isinstance(p, int) else 0


class AffinityTerm:
    """A parsed PodAffinityTerm: which pods (namespaces + selector) and the topology key."""

    __slots__ = ("namespace_selector", "namespaces", "selector", "topology_key", "weight")

    def __init__(self, namespaces: frozenset[str], namespace_selector: LabelSelector, selector: LabelSelector,
                 topology_key: str, weight: int = 0) -> None:
        self.namespaces = namespaces
        self.namespace_selector = namespace_selector
        self.selector = selector
        self.topology_key = topology_key
        self.weight = weight

    def matches(self, namespace: str, labels: Mapping[str, str] | None, ns_labels: Mapping[str, str] | None) -> bool:
        """The pod (its namespace, labels and its namespace's labels) is one this term is about."""
        if namespace in self.namespaces or self.namespace_selector.matches(ns_labels or _EMPTY):
            return self.selector.matches(labels or _EMPTY)
        return False

    def __repr__(self) -> str:
        return (f"AffinityTerm(namespaces={sorted(self.namespaces)}, nsSelector={self.namespace_selector!r}, "
                f"selector={self.selector!r}, topologyKey={self.topology_key!r}, weight={self.weight})")


def parse_affinity_term(namespace: str, term: Mapping[str, Any], weight: int = 0) -> AffinityTerm:
    """Upstream newAffinityTerm: a nil labelSelector selects nothing; no namespaces and no
    namespaceSelector means the pod's own namespace."""
    selector = selector_from_label_selector(term.get("labelSelector"))
    names = term.get("namespaces") or []
    ns_sel_raw = term.get("namespaceSelector")
    namespaces = frozenset([namespace]) if not names and ns_sel_raw is None else frozenset(names)
    ns_selector = selector_from_label_selector(ns_sel_raw)
    return AffinityTerm(namespaces, ns_selector, selector, term.get("topologyKey") or "", weight)


def _terms(namespace: str, raw: Any) -> tuple[AffinityTerm, ...]:
    return tuple(parse_affinity_term(namespace, t) for t in raw or () if isinstance(t, Mapping))


def _weighted_terms(namespace: str, raw: Any) -> tuple[AffinityTerm, ...]:
    out = []
    for t in raw or ():
        if isinstance(t, Mapping):
            out.append(parse_affinity_term(namespace, t.get("podAffinityTerm") or {}, int(t.get("weight") or 0)))
    return tuple(out)


#: in-tree volume sources two pods may not both mount (VolumeRestrictions' disk conflicts)
DISK_SOURCES = ("gcePersistentDisk", "awsElasticBlockStore", "rbd", "iscsi")


def _volume_refs(namespace: str, spec: Mapping[str, Any]) -> tuple[tuple[str, ...], tuple[Obj, ...]]:
    """("<ns>/<claim>" of each persistentVolumeClaim volume, in order and repeated as upstream's
    PVCRefCounts counts them; the volumes with a disk source)."""
    claims: list[str] = []
    disks: list[Obj] = []
    for v in spec.get("volumes") or ():
        if not isinstance(v, Mapping):
            continue
        pvc = v.get("persistentVolumeClaim")
        if isinstance(pvc, Mapping):
            claims.append(f"{namespace}/{pvc.get('claimName') or ''}")
        elif any(isinstance(v.get(s), Mapping) for s in DISK_SOURCES):
            disks.append(v)  # type: ignore[arg-type]
    return tuple(claims), tuple(disks)


class PodInfo:
    """Everything the plugins read from a pod, computed once per pod version."""

    __slots__ = (
        "affinity", "claim_keys", "deleting", "disk_volumes", "host_ports", "images", "key", "labels", "name",
        "namespace", "node_name",
        "node_selector", "nominated_node_name", "nonzero_cpu", "nonzero_mem", "parse_error", "pod",
        "preemption_policy", "preferred_affinity_terms", "preferred_anti_affinity_terms", "priority", "req_cpu",
        "req_eph", "req_mem", "requests", "required_affinity_terms", "required_anti_affinity_terms",
        "scheduler_name", "spec", "start_time", "tolerations", "uid",
    )

    def __init__(self, pod: Obj) -> None:
        self.pod = pod
        meta = pod.get("metadata") or {}
        spec = pod.get("spec") or {}
        self.spec = spec
        self.name: str = meta.get("name") or ""
        self.namespace: str = meta.get("namespace") or ""
        self.key = f"{self.namespace}/{self.name}"
        self.uid: str = meta.get("uid") or self.key
        self.labels: Mapping[str, str] = meta.get("labels") or _EMPTY
        self.deleting = bool(meta.get("deletionTimestamp"))
        self.node_name: str = spec.get("nodeName") or ""
        self.scheduler_name: str = spec.get("schedulerName") or "default-scheduler"
        self.priority = pod_priority(pod)
        self.preemption_policy: str = spec.get("preemptionPolicy") or "PreemptLowerPriority"
        status = pod.get("status") or {}
        self.nominated_node_name: str = status.get("nominatedNodeName") or ""
        self.start_time: str = status.get("startTime") or ""
        requests = pod_requests(spec)
        self.requests = {k: v for k, v in requests.items() if v > 0 and is_fit_resource(k)}
        self.req_cpu = requests.get(CPU, 0)
        self.req_mem = requests.get(MEMORY, 0)
        self.req_eph = requests.get(EPHEMERAL_STORAGE, 0)
        self.nonzero_cpu, self.nonzero_mem = non_zero_requests(spec)
        self.host_ports = host_ports(spec)
        self.claim_keys, self.disk_volumes = _volume_refs(self.namespace, spec)
        self.tolerations: list[Obj] = spec.get("tolerations") or []
        self.node_selector: Mapping[str, str] | None = spec.get("nodeSelector")
        self.affinity: Mapping[str, Any] = spec.get("affinity") or _EMPTY
        self.images = tuple(c.get("image") or "" for c in (*(spec.get("initContainers") or ()),
                                                           *(spec.get("containers") or ())))
        self.parse_error = ""
        self.required_affinity_terms: tuple[AffinityTerm, ...] = ()
        self.required_anti_affinity_terms: tuple[AffinityTerm, ...] = ()
        self.preferred_affinity_terms: tuple[AffinityTerm, ...] = ()
        self.preferred_anti_affinity_terms: tuple[AffinityTerm, ...] = ()
        pa = self.affinity.get("podAffinity")
        paa = self.affinity.get("podAntiAffinity")
        if pa or paa:
            ns = self.namespace
            try:
                if pa:
                    self.required_affinity_terms = _terms(ns, pa.get("requiredDuringSchedulingIgnoredDuringExecution"))
                    self.preferred_affinity_terms = _weighted_terms(
                        ns, pa.get("preferredDuringSchedulingIgnoredDuringExecution"))
                if paa:
                    self.required_anti_affinity_terms = _terms(
                        ns, paa.get("requiredDuringSchedulingIgnoredDuringExecution"))
                    self.preferred_anti_affinity_terms = _weighted_terms(
                        ns, paa.get("preferredDuringSchedulingIgnoredDuringExecution"))
            except LabelSelectorError as e:
                self.parse_error = str(e)

    @property
    def has_affinity(self) -> bool:
        """Carries any inter-pod (anti-)affinity term (upstream: filed under PodsWithAffinity)."""
        return bool(self.required_affinity_terms or self.required_anti_affinity_terms
                    or self.preferred_affinity_terms or self.preferred_anti_affinity_terms)

    def with_node(self, node_name: str) -> PodInfo:
        """A copy bound to `node_name` (the assumed pod), sharing the parsed parts."""
        clone = PodInfo.__new__(PodInfo)
        for slot in PodInfo.__slots__:
            setattr(clone, slot, getattr(self, slot))
        pod = dict(self.pod)
        pod["spec"] = {**self.spec, "nodeName": node_name}
        clone.pod = pod
        clone.spec = pod["spec"]
        clone.node_name = node_name
        return clone

    def __repr__(self) -> str:
        return f"PodInfo({self.key}, node={self.node_name!r}, priority={self.priority})"


def more_important_pod(a: PodInfo, b: PodInfo) -> bool:
    """Higher priority first, then the one started earlier (upstream util.MoreImportantPod)."""
    if a.priority != b.priority:
        return a.priority > b.priority
    now_ts = now()
    return (a.start_time or now_ts) < (b.start_time or now_ts)
