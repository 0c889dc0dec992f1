"""NodeResourcesBalancedAllocation: prefer nodes whose cpu and memory would be used in
similar fractions: score = (1 - standard deviation of the fractions) * 100, each fraction
capped at 1, computed from the real requests (no defaults), as upstream."""

from __future__ import annotations

import math

from scheduler.framework import CycleState, Plugin, memoized_scores
from scheduler.nodeinfo import NodeInfo
from scheduler.podinfo import PodInfo

NAME = "NodeResourcesBalancedAllocation"


def balanced_score(fractions: list[float]) -> int:
    if len(fractions) == 2:
        std = abs((fractions[0] - fractions[1]) / 2)
    elif len(fractions) > 2:
        mean = sum(fractions) / len(fractions)
        std = math.sqrt(sum((f - mean) * (f - mean) for f in fractions) / len(fractions))
    else:
        std = 0.0
    return int((1 - std) * 100)


class BalancedAllocation(Plugin):
    name = NAME

    def score_nodes(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo]) -> list[int]:
        pc, pm = pod.req_cpu, pod.req_mem
        return memoized_scores(nodes, (NAME, pc, pm), lambda ni: balanced_allocation(ni, pc, pm))


def balanced_allocation(ni: NodeInfo, pc: int, pm: int) -> int:
    fractions = []
    if ni.alloc_cpu:
        fractions.append(min((ni.req_cpu + pc) / ni.alloc_cpu, 1.0))
    if ni.alloc_mem:
        fractions.append(min((ni.req_mem + pm) / ni.alloc_mem, 1.0))
    return balanced_score(fractions)
