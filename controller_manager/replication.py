"""The ReplicationController manager: upstream's "replicationcontroller" controller.

Upstream (pkg/controller/replication) runs the ReplicaSet controller itself over adapters that
convert ReplicationControllers to ReplicaSets; the only difference that matters to the logic is
the selector, a plain label map here (equality only) where a ReplicaSet has a metav1.LabelSelector.
So this is the ReplicaSet controller pointed at core/v1 replicationcontrollers, with that one
conversion: pods are created, adopted, released and counted exactly as for a ReplicaSet, and
owned through a `v1 ReplicationController` controller reference.
"""

from __future__ import annotations

from apimachinery.selectors import label_selector_from_map
from controller_manager.base import register
from controller_manager.replicaset import Obj, ReplicaSetController


@register
class ReplicationManager(ReplicaSetController):
    name = "replicationcontroller-controller"
    aliases = ("replicationcontroller",)
    event_source = "replication-controller"  # upstream's recorder component for this controller
    workers_option = "concurrent_rc_syncs"
    service_account = "replication-controller"

    api_version = "v1"
    kind = "ReplicationController"
    plural = "replicationcontrollers"

    def label_selector(self, rs: Obj) -> Obj | None:
        return label_selector_from_map((rs.get("spec") or {}).get("selector"))
