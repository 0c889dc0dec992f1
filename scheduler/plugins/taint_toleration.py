"""TaintToleration: NoSchedule/NoExecute taints the pod does not tolerate rule a node out;
untolerated PreferNoSchedule taints lower its score (fewer is better, reversed normalization)."""

from __future__ import annotations

from apimachinery.taints import (
    PREFER_NO_SCHEDULE,
    do_not_schedule,
    find_untolerated_taint,
    taint_string,
    tolerations_tolerate_taint,
)
from scheduler.framework import ADD, NODE, UPDATE, CycleState, Plugin, default_normalize
from scheduler.nodeinfo import NodeInfo
from scheduler.podinfo import PodInfo
from scheduler.status import UNSCHEDULABLE_AND_UNRESOLVABLE, Status

NAME = "TaintToleration"


def untolerated_reason(taint: dict) -> str:
    return f"node(s) had untolerated taint {taint_string(taint)}"


class TaintToleration(Plugin):
    name = NAME
    events = ((NODE, ADD | UPDATE),)

    def filter(self, state: CycleState, pod: PodInfo, ni: NodeInfo) -> Status | None:
        if not ni.taints:
            return None
        taint = find_untolerated_taint(ni.taints, pod.tolerations, do_not_schedule)
        if taint is None:
            return None
        return Status(UNSCHEDULABLE_AND_UNRESOLVABLE, untolerated_reason(taint), plugin=NAME)

    def filter_nodes(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo],
                     failed: dict[str, Status]) -> list[NodeInfo]:
        out = [ni for ni in nodes if not ni.taints]
        if len(out) == len(nodes):
            return out
        out = []
        f = self.filter
        for ni in nodes:
            st = f(state, pod, ni) if ni.taints else None
            if st is None:
                out.append(ni)
            else:
                failed[ni.name] = st
        return out

    def pre_score(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo]) -> Status | None:
        # an empty effect tolerates every effect, PreferNoSchedule included
        state.data[NAME] = [t for t in pod.tolerations if (t.get("effect") or "") in ("", PREFER_NO_SCHEDULE)]
        return None

    def score_nodes(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo]) -> list[int] | int:
        if not self.handle.cache.has_prefer_no_schedule_taints:
            return 100  # nothing untolerated anywhere: every node normalizes to the maximum
        tolerations = state.data.get(NAME, [])
        out = []
        for ni in nodes:
            n = 0
            for taint in ni.taints:
                if taint.get("effect") == PREFER_NO_SCHEDULE and not tolerations_tolerate_taint(tolerations, taint):
                    n += 1
            out.append(n)
        return out

    def normalize(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo], scores: list[int]) -> None:
        default_normalize(scores, reverse=True)
