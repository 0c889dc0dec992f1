"""NodeUnschedulable: no pods on a cordoned node (spec.unschedulable) unless they tolerate
the `node.kubernetes.io/unschedulable:NoSchedule` taint."""

from __future__ import annotations

from apimachinery.taints import NO_SCHEDULE, TAINT_NODE_UNSCHEDULABLE, tolerations_tolerate_taint
from scheduler.framework import ADD, NODE, UPDATE_NODE_TAINT, CycleState, Plugin
from scheduler.nodeinfo import NodeInfo
from scheduler.podinfo import PodInfo
from scheduler.status import UNSCHEDULABLE_AND_UNRESOLVABLE, Status

NAME = "NodeUnschedulable"
REASON = "node(s) were unschedulable"
_UNSCHEDULABLE_TAINT = {"key": TAINT_NODE_UNSCHEDULABLE, "effect": NO_SCHEDULE}
_REJECTED = Status(UNSCHEDULABLE_AND_UNRESOLVABLE, REASON, plugin=NAME)


def tolerates_unschedulable(pod: PodInfo) -> bool:
    return tolerations_tolerate_taint(pod.tolerations, _UNSCHEDULABLE_TAINT)


class NodeUnschedulable(Plugin):
    name = NAME
    events = ((NODE, ADD | UPDATE_NODE_TAINT),)

    def filter(self, state: CycleState, pod: PodInfo, ni: NodeInfo) -> Status | None:
        if not ni.unschedulable or tolerates_unschedulable(pod):
            return None
        return _REJECTED

    def filter_nodes(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo],
                     failed: dict[str, Status]) -> list[NodeInfo]:
        if tolerates_unschedulable(pod):
            return nodes
        out = [ni for ni in nodes if not ni.unschedulable]
        if len(out) != len(nodes):
            for ni in nodes:
                if ni.unschedulable:
                    failed[ni.name] = _REJECTED
        return out
