"""The default plugins, one per file, in upstream's order, with upstream's default score weights.

Filter order (a node's verdict is its first failing plugin): NodeUnschedulable, NodeName,
TaintToleration, NodeAffinity, NodePorts, NodeResourcesFit, VolumeRestrictions, VolumeBinding,
VolumeZone, PodTopologySpread, InterPodAffinity (upstream's NodeVolumeLimits, between
VolumeRestrictions and VolumeBinding, is left out: it counts CSI attach limits). Score
weights: TaintToleration 3, NodeAffinity 2, PodTopologySpread 2, InterPodAffinity 2,
NodeResourcesFit 1 (LeastAllocated), NodeResourcesBalancedAllocation 1, ImageLocality 1.
PostFilter: DefaultPreemption. Reserve and PreBind: VolumeBinding. QueueSort: PrioritySort.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from scheduler.framework import Framework, Handle, Plugin
from scheduler.plugins.balanced_allocation import BalancedAllocation
from scheduler.plugins.default_preemption import DefaultPreemption
from scheduler.plugins.image_locality import ImageLocality
from scheduler.plugins.inter_pod_affinity import InterPodAffinity
from scheduler.plugins.node_affinity import NodeAffinity
from scheduler.plugins.node_name import NodeName
from scheduler.plugins.node_ports import NodePorts
from scheduler.plugins.node_resources_fit import NodeResourcesFit
from scheduler.plugins.node_unschedulable import NodeUnschedulable
from scheduler.plugins.pod_topology_spread import PodTopologySpread
from scheduler.plugins.taint_toleration import TaintToleration
from scheduler.plugins.volume_binding import VolumeBinding
from scheduler.plugins.volume_restrictions import VolumeRestrictions
from scheduler.plugins.volume_zone import VolumeZone

REGISTRY: dict[str, Callable[[Handle], Plugin]] = {
    "NodeUnschedulable": NodeUnschedulable,
    "NodeName": NodeName,
    "TaintToleration": TaintToleration,
    "NodeAffinity": NodeAffinity,
    "NodePorts": NodePorts,
    "NodeResourcesFit": NodeResourcesFit,
    "VolumeRestrictions": VolumeRestrictions,
    "VolumeBinding": VolumeBinding,
    "VolumeZone": VolumeZone,
    "PodTopologySpread": PodTopologySpread,
    "InterPodAffinity": InterPodAffinity,
    "DefaultPreemption": DefaultPreemption,
    "NodeResourcesBalancedAllocation": BalancedAllocation,
    "ImageLocality": ImageLocality,
}

DEFAULT_PLUGINS: tuple[str, ...] = tuple(REGISTRY)

DEFAULT_WEIGHTS: dict[str, int] = {
    "TaintToleration": 3,
    "NodeAffinity": 2,
    "PodTopologySpread": 2,
    "InterPodAffinity": 2,
    "NodeResourcesFit": 1,
    "NodeResourcesBalancedAllocation": 1,
    "ImageLocality": 1,
}


def new_framework(handle: Handle, disabled: Iterable[str] = (),
                  weights: dict[str, int] | None = None) -> Framework:
    """The default profile: every registered plugin except `disabled`, with `weights` overriding the defaults."""
    off = set(disabled)
    unknown = off - set(REGISTRY)
    if unknown:
        raise ValueError(f"unknown plugin(s): {', '.join(sorted(unknown))}")
    plugins = [REGISTRY[name](handle) for name in DEFAULT_PLUGINS if name not in off]
    return Framework(handle, plugins, {**DEFAULT_WEIGHTS, **(weights or {})})


__all__ = ["DEFAULT_PLUGINS", "DEFAULT_WEIGHTS", "REGISTRY", "new_framework"]
