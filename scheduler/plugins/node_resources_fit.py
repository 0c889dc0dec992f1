"""NodeResourcesFit: the pod's requests must fit in what the node's pods leave of its
allocatable (cpu, memory, ephemeral-storage, extended resources, and the pod count);
scored LeastAllocated over cpu and memory (weights 1/1), with the 100m/200Mi defaults
for containers that request nothing, as upstream."""

from __future__ import annotations

from apimachinery.quantity import CPU, EPHEMERAL_STORAGE, MEMORY, resource_list_fits
from scheduler.framework import ADD, DELETE, NODE, POD, UPDATE, CycleState, Plugin, memoized_scores
from scheduler.nodeinfo import NodeInfo
from scheduler.podinfo import PodInfo
from scheduler.status import UNSCHEDULABLE, Status

NAME = "NodeResourcesFit"
TOO_MANY_PODS = "Too many pods"
_ORDER = {CPU: 0, MEMORY: 1, EPHEMERAL_STORAGE: 2}


def insufficient_resources(pod: PodInfo, ni: NodeInfo) -> list[str]:
    """Upstream fitsRequest's reasons: "Too many pods", then "Insufficient <resource>"."""
    reasons = []
    if len(ni.pods) + 1 > ni.allowed_pods:
        reasons.append(TOO_MANY_PODS)
    if pod.requests:
        short = resource_list_fits(pod.requests, ni.alloc, ni.requested)
        short.sort(key=lambda n: (_ORDER.get(n, 3), n))
        reasons.extend(f"Insufficient {n}" for n in short)
    return reasons


def least_requested_score(requested: int, capacity: int) -> int:
    if capacity == 0 or requested > capacity:
        return 0
    return (capacity - requested) * 100 // capacity


class NodeResourcesFit(Plugin):
    name = NAME
    events = ((POD, DELETE), (NODE, ADD | UPDATE))

    def filter(self, state: CycleState, pod: PodInfo, ni: NodeInfo) -> Status | None:
        reasons = insufficient_resources(pod, ni)
        return Status(UNSCHEDULABLE, *reasons, plugin=NAME) if reasons else None

    def filter_nodes(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo],
                     failed: dict[str, Status]) -> list[NodeInfo]:
        cpu, mem = pod.req_cpu, pod.req_mem
        if all(n in (CPU, MEMORY) for n in pod.requests):
            # a sufficient test on precomputed free resources; anything else takes the exact path
            out = [ni for ni in nodes if ni.free_pods > 0 and ni.free_cpu >= cpu and ni.free_mem >= mem]
            if len(out) == len(nodes):
                return out
            quick = {id(ni) for ni in out}
        else:
            quick = set()
        out = []
        for ni in nodes:
            if id(ni) in quick:
                out.append(ni)
                continue
            reasons = insufficient_resources(pod, ni)
            if reasons:
                failed[ni.name] = Status(UNSCHEDULABLE, *reasons, plugin=NAME)
            else:
                out.append(ni)
        return out

    def score_nodes(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo]) -> list[int]:
        pc, pm = pod.nonzero_cpu, pod.nonzero_mem
        return memoized_scores(nodes, (NAME, pc, pm), lambda ni: least_allocated(ni, pc, pm))


def least_allocated(ni: NodeInfo, pc: int, pm: int) -> int:
    """(allocatable - requested) * 100 / allocatable per resource, averaged (weights 1/1); a resource
    the node has none of does not count (upstream skips it)."""
    ac, am = ni.alloc_cpu, ni.alloc_mem
    if ac and am:
        return (least_requested_score(ni.nonzero_cpu + pc, ac) + least_requested_score(ni.nonzero_mem + pm, am)) // 2
    return _partial_score(ni, pc, pm)


def _partial_score(ni: NodeInfo, pc: int, pm: int) -> int:
    if ni.alloc_cpu:
        return least_requested_score(ni.nonzero_cpu + pc, ni.alloc_cpu)
    if ni.alloc_mem:
        return least_requested_score(ni.nonzero_mem + pm, ni.alloc_mem)
    return 0
