"""VolumeRestrictions: volumes that only one pod may use at a time (upstream volumerestrictions).

- ReadWriteOncePod: PreFilter looks up the claims of the pod's `persistentVolumeClaim`
  volumes (a missing one rejects the pod, UnschedulableAndUnresolvable, as upstream) and
  counts those with the ReadWriteOncePod access mode that a bound or assumed pod anywhere in
  the cluster already names. Filter rejects every node while that count is above zero —
  Unschedulable, so preemption may help: AddPod / RemovePod keep the count as preemption
  removes victims (or adds nominated pods), and on the node of the pod holding the claim,
  evicting it (when its priority is lower) makes room.
- In-tree disks, checked against the pods on the node: the same GCE PD unless every mount is
  read-only, the same AWS EBS volume ID, the same iSCSI IQN or RBD image (a shared monitor,
  pool and image) unless both are read-only.

Like upstream, a claim in use is only known from the pods the scheduler sees (terminated
pods leave its informer); unlike upstream, AddPod / RemovePod count only pods in the pod's
own namespace (upstream compares claim names alone).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from scheduler.framework import (
    ADD,
    DELETE,
    NODE,
    PERSISTENT_VOLUME_CLAIM,
    POD,
    UPDATE_NODE_LABEL,
    UPDATE_NODE_TAINT,
    CycleState,
    Plugin,
)
from scheduler.nodeinfo import NodeInfo
from scheduler.podinfo import PodInfo
from scheduler.status import SKIP, UNSCHEDULABLE, UNSCHEDULABLE_AND_UNRESOLVABLE, Status
from scheduler.volumehelpers import PVC_STORE

NAME = "VolumeRestrictions"
ERR_REASON_DISK_CONFLICT = "node(s) had no available disk"
ERR_REASON_RWOP_CONFLICT = ("node has pod using PersistentVolumeClaim with the same name and "
                            "ReadWriteOncePod access mode")
READ_WRITE_ONCE_POD = "ReadWriteOncePod"
DEFAULT_RBD_POOL = "rbd"  # upstream's default for rbd.pool (SetDefaults_RBDVolumeSource)

_DISK_CONFLICT = Status(UNSCHEDULABLE, ERR_REASON_DISK_CONFLICT, plugin=NAME)
_RWOP_CONFLICT = Status(UNSCHEDULABLE, ERR_REASON_RWOP_CONFLICT, plugin=NAME)

Obj = dict[str, Any]


def _src(volume: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    s = volume.get(kind)
    return s if isinstance(s, Mapping) else None


def _read_only(src: Mapping[str, Any]) -> bool:
    return bool(src.get("readOnly"))


def is_volume_conflict(volume: Mapping[str, Any], other: PodInfo) -> bool:
    """`volume` (one of the pod's disk volumes) may not be mounted next to `other`'s volumes
    (upstream isVolumeConflict)."""
    gce, ebs = _src(volume, "gcePersistentDisk"), _src(volume, "awsElasticBlockStore")
    iscsi, rbd = _src(volume, "iscsi"), _src(volume, "rbd")
    for ev in other.disk_volumes:
        if gce is not None and (egce := _src(ev, "gcePersistentDisk")) is not None:
            if gce.get("pdName") == egce.get("pdName") and not (_read_only(gce) and _read_only(egce)):
                return True
        if ebs is not None and (eebs := _src(ev, "awsElasticBlockStore")) is not None:
            if ebs.get("volumeID") == eebs.get("volumeID"):
                return True
        if iscsi is not None and (eiscsi := _src(ev, "iscsi")) is not None:
            # iSCSI volumes are RWO or ROX: one read-write mount at most
            if iscsi.get("iqn") == eiscsi.get("iqn") and not (_read_only(iscsi) and _read_only(eiscsi)):
                return True
        if rbd is not None and (erbd := _src(ev, "rbd")) is not None:
            # the same image: a shared Ceph monitor, the same pool and image name
            if (set(rbd.get("monitors") or ()) & set(erbd.get("monitors") or ())
                    and (rbd.get("pool") or DEFAULT_RBD_POOL) == (erbd.get("pool") or DEFAULT_RBD_POOL)
                    and rbd.get("image") == erbd.get("image")
                    and not (_read_only(rbd) and _read_only(erbd))):
                return True
    return False


class _State:
    """The pod's ReadWriteOncePod claims ("<ns>/<name>") and how many uses of them pods make."""

    __slots__ = ("claims", "conflicts")

    def __init__(self, claims: frozenset[str], conflicts: int) -> None:
        self.claims = claims
        self.conflicts = conflicts

    def clone(self) -> _State:
        return _State(self.claims, self.conflicts)

    def update_with(self, other: PodInfo, delta: int) -> None:
        if self.claims:
            self.conflicts += delta * sum(1 for key in other.claim_keys if key in self.claims)


class VolumeRestrictions(Plugin):
    name = NAME
    # a pod holding the claim or disk going away; a new node (label/taint updates too, as
    # upstream registers for every plugin that registers Node/Add); the missing claim created
    events = ((POD, DELETE), (NODE, ADD | UPDATE_NODE_TAINT | UPDATE_NODE_LABEL), (PERSISTENT_VOLUME_CLAIM, ADD))

    def rwop_claims(self, pod: PodInfo) -> frozenset[str] | Status:
        """The pod's claims with the ReadWriteOncePod access mode, or a rejection for a missing one."""
        out = set()
        for key in pod.claim_keys:
            pvc = self.handle.lookup(PVC_STORE, key)
            if pvc is None:
                name = key.partition("/")[2]
                return Status(UNSCHEDULABLE_AND_UNRESOLVABLE, f'persistentvolumeclaim "{name}" not found')
            if READ_WRITE_ONCE_POD in ((pvc.get("spec") or {}).get("accessModes") or ()):
                out.add(key)
        return frozenset(out)

    def pre_filter(self, state: CycleState, pod: PodInfo) -> Status | None:
        if not pod.claim_keys and not pod.disk_volumes:
            return Status(SKIP)
        claims = self.rwop_claims(pod)
        if isinstance(claims, Status):
            return claims
        cache = self.handle.cache
        # at most one pod may hold a ReadWriteOncePod claim: count claims in use, not their users
        conflicts = sum(1 for key in claims if cache.pvc_used_by_pods(key))
        if not pod.disk_volumes and conflicts == 0:
            return Status(SKIP)
        state.data[NAME] = _State(claims, conflicts)
        return None

    def add_pod(self, state: CycleState, pod: PodInfo, other: PodInfo, ni: NodeInfo) -> None:
        s: _State | None = state.data.get(NAME)
        if s is not None:
            s.update_with(other, 1)

    def remove_pod(self, state: CycleState, pod: PodInfo, other: PodInfo, ni: NodeInfo) -> None:
        s: _State | None = state.data.get(NAME)
        if s is not None:
            s.update_with(other, -1)

    def filter(self, state: CycleState, pod: PodInfo, ni: NodeInfo) -> Status | None:
        for v in pod.disk_volumes:
            for other in ni.pods.values():
                if other.disk_volumes and is_volume_conflict(v, other):
                    return _DISK_CONFLICT
        s: _State | None = state.data.get(NAME)
        if s is None:
            st = self.pre_filter(state, pod)  # not prefiltered in this cycle: decide now
            if st is not None:
                return None if st.code == SKIP else st.with_plugin(NAME)
            s = state.data[NAME]
        if s.conflicts > 0:
            return _RWOP_CONFLICT
        return None
