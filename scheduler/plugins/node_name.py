"""NodeName: a pod that names its node (spec.nodeName) fits only there."""

from __future__ import annotations

from scheduler.framework import ADD, NODE, UPDATE, CycleState, Plugin
from scheduler.nodeinfo import NodeInfo
from scheduler.podinfo import PodInfo
from scheduler.status import UNSCHEDULABLE_AND_UNRESOLVABLE, Status

NAME = "NodeName"
REASON = "node(s) didn't match the requested node name"
_REJECTED = Status(UNSCHEDULABLE_AND_UNRESOLVABLE, REASON, plugin=NAME)


class NodeName(Plugin):
    name = NAME
    events = ((NODE, ADD | UPDATE),)

    def filter(self, state: CycleState, pod: PodInfo, ni: NodeInfo) -> Status | None:
        if not pod.node_name or pod.node_name == ni.name:
            return None
        return _REJECTED

    def filter_nodes(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo],
                     failed: dict[str, Status]) -> list[NodeInfo]:
        if not pod.node_name:
            return nodes
        return super().filter_nodes(state, pod, nodes, failed)
