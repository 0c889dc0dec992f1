"""NodePorts: the pod's host ports (hostIP, protocol, hostPort) must be free on the node;
0.0.0.0 conflicts with every address."""

from __future__ import annotations

from scheduler.framework import ADD, DELETE, NODE, POD, UPDATE, CycleState, Plugin
from scheduler.nodeinfo import NodeInfo
from scheduler.podinfo import PodInfo
from scheduler.status import SKIP, UNSCHEDULABLE, Status

NAME = "NodePorts"
REASON = "node(s) didn't have free ports for the requested pod ports"
_REJECTED = Status(UNSCHEDULABLE, REASON, plugin=NAME)


class NodePorts(Plugin):
    name = NAME
    events = ((POD, DELETE), (NODE, ADD | UPDATE))

    def pre_filter(self, state: CycleState, pod: PodInfo) -> Status | None:
        return None if pod.host_ports else Status(SKIP)

    def filter(self, state: CycleState, pod: PodInfo, ni: NodeInfo) -> Status | None:
        for ip, proto, port in pod.host_ports:
            if ni.port_conflicts(ip, proto, port):
                return _REJECTED
        return None
