"""QoS classes and how requests/limits become cgroup settings (upstream's qos and cm helpers)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# the pod's requests are upstream's PodRequests (init containers, sidecars, overhead), as the
# scheduler counts them
from apimachinery.quantity import pod_requests, resource_int

GUARANTEED = "Guaranteed"
BURSTABLE = "Burstable"
BEST_EFFORT = "BestEffort"

MIN_SHARES = 2
MAX_SHARES = 262144
SHARES_PER_CPU = 1024
QUOTA_PERIOD = 100_000  # µs, the CFS default
MIN_QUOTA = 1000
GUARANTEED_OOM_SCORE_ADJ = -997
BEST_EFFORT_OOM_SCORE_ADJ = 1000


def _amounts(rl: dict[str, Any] | None, names: tuple[str, ...] = ("cpu", "memory")) -> dict[str, int]:
    out = {}
    for name in names:
        value = (rl or {}).get(name)
        if value is not None:
            out[name] = resource_int(name, value)
    return out


def container_requests(container: dict[str, Any]) -> dict[str, int]:
    return _amounts((container.get("resources") or {}).get("requests"))


def container_limits(container: dict[str, Any]) -> dict[str, int]:
    return _amounts((container.get("resources") or {}).get("limits"))


def qos_class(spec: dict[str, Any]) -> str:
    """Guaranteed: every container has equal, non-zero cpu and memory requests and limits;
    BestEffort: nobody requests or limits anything; Burstable otherwise (upstream GetPodQOS)."""
    containers = list(spec.get("containers") or []) + list(spec.get("initContainers") or [])
    any_set = False
    guaranteed = True
    for c in containers:
        req = {k: v for k, v in container_requests(c).items() if v}
        lim = {k: v for k, v in container_limits(c).items() if v}
        if req or lim:
            any_set = True
        if set(lim) != {"cpu", "memory"}:
            guaranteed = False
            continue
        for name in ("cpu", "memory"):
            if name in req and req[name] != lim[name]:
                guaranteed = False
    if not any_set:
        return BEST_EFFORT
    return GUARANTEED if guaranteed else BURSTABLE


def milli_cpu_to_shares(milli: int) -> int:
    if milli <= 0:
        return MIN_SHARES
    return max(MIN_SHARES, min(MAX_SHARES, milli * SHARES_PER_CPU // 1000))


def milli_cpu_to_quota(milli: int, period: int = QUOTA_PERIOD) -> int:
    if milli <= 0:
        return 0
    return max(MIN_QUOTA, milli * period // 1000)


def oom_score_adj(qos: str, memory_request: int, memory_capacity: int) -> int:
    if qos == GUARANTEED:
        return GUARANTEED_OOM_SCORE_ADJ
    if qos == BEST_EFFORT:
        return BEST_EFFORT_OOM_SCORE_ADJ
    if memory_capacity <= 0:
        return 999
    adj = 1000 - (1000 * memory_request) // memory_capacity
    return max(1000 + GUARANTEED_OOM_SCORE_ADJ, min(999, adj))


@dataclass(frozen=True)
class CgroupResources:
    """Limits for one cgroup; None means unlimited / not set."""

    cpu_shares: int | None = None
    cpu_quota: int | None = None
    cpu_period: int | None = None
    memory_limit: int | None = None
    pids_limit: int | None = None


def container_resources(container: dict[str, Any]) -> CgroupResources:
    """What CRI's LinuxContainerResources gets for one container."""
    req, lim = container_requests(container), container_limits(container)
    cpu_request = req.get("cpu", 0)
    cpu_limit = lim.get("cpu", 0)
    shares = milli_cpu_to_shares(cpu_limit if not cpu_request and cpu_limit else cpu_request)
    quota = milli_cpu_to_quota(cpu_limit) if cpu_limit else None
    return CgroupResources(
        cpu_shares=shares,
        cpu_quota=quota,
        cpu_period=QUOTA_PERIOD if quota else None,
        memory_limit=lim.get("memory") or None,
    )


def pod_limits(spec: dict[str, Any]) -> dict[str, int | None]:
    """Pod limits: the sum over containers when every container limits the resource, else None."""
    out: dict[str, int | None] = {}
    overhead = _amounts(spec.get("overhead"))
    containers = list(spec.get("containers") or [])
    for name in ("cpu", "memory"):
        values = [container_limits(c).get(name) for c in containers]
        if not containers or any(not v for v in values):
            out[name] = None
            continue
        total = sum(v for v in values if v)
        for c in spec.get("initContainers") or []:
            v = container_limits(c).get(name)
            if not v:
                total = 0
                break
            total = max(total, v)
        # the pod overhead is added where the pod has a limit (upstream PodLimits)
        out[name] = total + overhead.get(name, 0) if total else None
    return out


def pod_cgroup_resources(spec: dict[str, Any]) -> CgroupResources:
    """Limits of the pod-level cgroup (upstream ResourceConfigForPod)."""
    qos = qos_class(spec)
    if qos == BEST_EFFORT:
        return CgroupResources(cpu_shares=MIN_SHARES)
    req = pod_requests(spec)
    lim = pod_limits(spec)
    cpu_limit = lim.get("cpu")
    quota = milli_cpu_to_quota(cpu_limit) if cpu_limit else None
    return CgroupResources(
        cpu_shares=milli_cpu_to_shares(req.get("cpu", 0)),
        cpu_quota=quota,
        cpu_period=QUOTA_PERIOD if quota else None,
        memory_limit=lim.get("memory"),
    )
