"""VolumeZone: a pod's bound PersistentVolumes' zone and region labels must match the node's
(upstream volumezone).

PreFilter reads the pod's `persistentVolumeClaim` volumes: each claim's PV and that PV's
topology labels — topology.kubernetes.io/zone and /region and the deprecated
failure-domain.beta.kubernetes.io ones; a value may list several zones separated by "__"
(a value with an empty part is ignored, as upstream). An unbound claim of a
WaitForFirstConsumer class is skipped (VolumeBinding picks its volume for the node); any
other unbound claim, or a missing claim, class or volume, rejects the pod
(UnschedulableAndUnresolvable). A pod whose volumes carry no such labels skips the plugin.

Filter: a node without any of the four labels fits (a single-zone cluster); otherwise, for
each PV label the node's label of the same key — or, for a beta key, its GA twin — must be
one of the PV's values.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from scheduler.framework import (
    ADD,
    NODE,
    PERSISTENT_VOLUME,
    PERSISTENT_VOLUME_CLAIM,
    STORAGE_CLASS,
    UPDATE,
    UPDATE_NODE_LABEL,
    UPDATE_NODE_TAINT,
    CycleState,
    Plugin,
)
from scheduler.nodeinfo import REGION_LABEL, REGION_LABEL_BETA, ZONE_LABEL, ZONE_LABEL_BETA, NodeInfo
from scheduler.podinfo import PodInfo
from scheduler.status import SKIP, UNSCHEDULABLE_AND_UNRESOLVABLE, Status
from scheduler.volumehelpers import (
    CLASS_STORE,
    PV_STORE,
    PVC_STORE,
    WAIT_FOR_FIRST_CONSUMER,
    storage_class_name,
)

NAME = "VolumeZone"
ERR_REASON_CONFLICT = "node(s) had no available volume zone"
LABEL_MULTI_ZONE_DELIMITER = "__"
TOPOLOGY_LABELS = (ZONE_LABEL_BETA, REGION_LABEL_BETA, ZONE_LABEL, REGION_LABEL)
_GA_LABEL = {ZONE_LABEL_BETA: ZONE_LABEL, REGION_LABEL_BETA: REGION_LABEL}

_CONFLICT = Status(UNSCHEDULABLE_AND_UNRESOLVABLE, ERR_REASON_CONFLICT, plugin=NAME)

Obj = dict[str, Any]
PVTopology = tuple[str, frozenset[str]]  # (label key, the zones / regions allowed)


def label_zones_to_set(value: str) -> frozenset[str] | None:
    """A zone label's value as a set ("a__b" → {a, b}); None when a part is empty (upstream
    LabelZonesToSet fails then)."""
    out = set()
    for part in value.split(LABEL_MULTI_ZONE_DELIMITER):
        zone = part.strip()
        if not zone:
            return None
        out.add(zone)
    return frozenset(out)


def pv_topologies(pv: Mapping[str, Any]) -> list[PVTopology]:
    labels = (pv.get("metadata") or {}).get("labels") or {}
    out = []
    for key in TOPOLOGY_LABELS:
        value = labels.get(key)
        if isinstance(value, str):
            zones = label_zones_to_set(value)
            if zones is not None:
                out.append((key, zones))
    return out


def _not_found(kind: str, name: str) -> Status:
    return Status(UNSCHEDULABLE_AND_UNRESOLVABLE, f'{kind} "{name}" not found')


class VolumeZone(Plugin):
    name = NAME
    # (upstream: a class added, not updated, as its binding mode is immutable)
    events = ((STORAGE_CLASS, ADD), (NODE, ADD | UPDATE_NODE_LABEL | UPDATE_NODE_TAINT),
              (PERSISTENT_VOLUME_CLAIM, ADD | UPDATE), (PERSISTENT_VOLUME, ADD | UPDATE))

    def pod_pv_topologies(self, pod: PodInfo) -> list[PVTopology] | Status:
        """The topology labels of the pod's bound volumes, or a rejection (upstream getPVbyPod)."""
        h = self.handle
        out: list[PVTopology] = []
        for key in pod.claim_keys:
            name = key.partition("/")[2]
            if not name:
                return Status(UNSCHEDULABLE_AND_UNRESOLVABLE, "PersistentVolumeClaim had no name")
            pvc = h.lookup(PVC_STORE, key)
            if pvc is None:
                return _not_found("persistentvolumeclaim", name)
            pv_name = (pvc.get("spec") or {}).get("volumeName") or ""
            if not pv_name:
                cls_name = storage_class_name(pvc)
                if not cls_name:
                    return Status(UNSCHEDULABLE_AND_UNRESOLVABLE,
                                  "PersistentVolumeClaim had no pv name and storageClass name")
                cls = h.lookup(CLASS_STORE, cls_name)
                if cls is None:
                    return _not_found("storageclass.storage.k8s.io", cls_name)
                mode = cls.get("volumeBindingMode")
                if not mode:
                    return Status(UNSCHEDULABLE_AND_UNRESOLVABLE,
                                  f'VolumeBindingMode not set for StorageClass "{cls_name}"')
                if mode == WAIT_FOR_FIRST_CONSUMER:
                    continue  # not bound yet: VolumeBinding chooses a volume that fits the node
                return Status(UNSCHEDULABLE_AND_UNRESOLVABLE, "PersistentVolume had no name")
            pv = h.lookup(PV_STORE, pv_name)
            if pv is None:
                return _not_found("persistentvolume", pv_name)
            out += pv_topologies(pv)
        return out

    def pre_filter(self, state: CycleState, pod: PodInfo) -> Status | None:
        topologies = self.pod_pv_topologies(pod)
        if isinstance(topologies, Status):
            return topologies
        if not topologies:
            return Status(SKIP)
        state.data[NAME] = topologies  # read-only afterwards: shared by clones
        return None

    def filter(self, state: CycleState, pod: PodInfo, ni: NodeInfo) -> Status | None:
        if not pod.spec.get("volumes"):
            return None
        topologies: list[PVTopology] | Status | None = state.data.get(NAME)
        if topologies is None:  # not prefiltered in this cycle: look the volumes up now
            topologies = self.pod_pv_topologies(pod)
            if isinstance(topologies, Status):
                return topologies.with_plugin(NAME)
        labels = ni.labels
        if not any(key in labels for key in TOPOLOGY_LABELS):
            return None  # a node without zone labels: a single-zone cluster
        for key, values in topologies:
            value = labels.get(key)
            if value is None:
                value = labels.get(_GA_LABEL.get(key, key))  # a PV's beta label against the node's GA one
            if value is None or value not in values:
                return _CONFLICT
        return None
