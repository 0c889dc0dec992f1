"""The scheduler's view of the cluster: nodes and the pods bound (or assumed bound) to them.

Upstream's internal/cache: the informers add/update/remove nodes and assigned pods; the
scheduling cycle *assumes* a pod onto its chosen node at once (so the next cycle already
sees the resources taken) and the binding cycle either confirms it (the informer delivers
the bound pod) or *forgets* it (binding failed). Everything runs on one event loop, so the
scheduling cycle reads this cache directly instead of a snapshot.

Nodes are listed in upstream's node-tree order: round-robin over zones, so a partial scan
(percentageOfNodesToScore) still sees every zone.
"""

from __future__ import annotations

import logging
from typing import Any

from scheduler.nodeinfo import NodeInfo
from scheduler.podinfo import PodInfo

log = logging.getLogger("scheduler.cache")

Obj = dict[str, Any]


class SchedulerCache:
    def __init__(self) -> None:
        self.nodes: dict[str, NodeInfo] = {}
        self._pods: dict[str, PodInfo] = {}  # uid → the pod as accounted on its node
        self._assumed: set[str] = set()
        self._binding_finished: set[str] = set()
        self.image_nodes: dict[str, set[str]] = {}
        self._zones: dict[str, list[str]] = {}
        self._zone_order: list[str] = []
        self._node_list: list[NodeInfo] | None = None
        self._with_affinity: set[str] = set()
        self._with_required_anti_affinity: set[str] = set()
        self._prefer_no_schedule: set[str] = set()  # nodes with a PreferNoSchedule taint
        self._pvc_refs: dict[str, int] = {}  # "<ns>/<claim>" → volumes of cached pods naming it

    # -- nodes -----------------------------------------------------------------------

    def _info(self, name: str) -> NodeInfo:
        ni = self.nodes.get(name)
        if ni is None:
            ni = self.nodes[name] = NodeInfo(name)
        return ni

    def add_node(self, node: Obj) -> NodeInfo:
        name = node["metadata"]["name"]
        ni = self._info(name)
        had_node = ni.node is not None
        old_zone = ni.zone
        self._remove_images(ni)
        ni.set_node(node)
        self._add_images(ni)
        if any(t.get("effect") == "PreferNoSchedule" for t in ni.taints):
            self._prefer_no_schedule.add(name)
        else:
            self._prefer_no_schedule.discard(name)
        if not had_node:
            self._tree_add(name, ni.zone)
        elif old_zone != ni.zone:
            self._tree_remove(name, old_zone)
            self._tree_add(name, ni.zone)
        return ni

    def update_node(self, node: Obj) -> NodeInfo:
        return self.add_node(node)

    def remove_node(self, node: Obj) -> None:
        name = node["metadata"]["name"]
        ni = self.nodes.get(name)
        if ni is None or ni.node is None:
            return
        self._tree_remove(name, ni.zone)
        self._remove_images(ni)
        self._prefer_no_schedule.discard(name)
        ni.images = {}
        if ni.pods:
            ni.node = None  # pods still point at it; their delete events will come
        else:
            del self.nodes[name]

    def _add_images(self, ni: NodeInfo) -> None:
        for img in ni.images:
            self.image_nodes.setdefault(img, set()).add(ni.name)

    def _remove_images(self, ni: NodeInfo) -> None:
        for img in ni.images:
            nodes = self.image_nodes.get(img)
            if nodes is not None:
                nodes.discard(ni.name)
                if not nodes:
                    del self.image_nodes[img]

    def _tree_add(self, name: str, zone: str) -> None:
        names = self._zones.get(zone)
        if names is None:
            names = self._zones[zone] = []
            self._zone_order.append(zone)
        names.append(name)
        self._node_list = None

    def _tree_remove(self, name: str, zone: str) -> None:
        names = self._zones.get(zone)
        if names is None:
            return
        try:
            names.remove(name)
        except ValueError:
            return
        if not names:
            del self._zones[zone]
            self._zone_order.remove(zone)
        self._node_list = None

    def node_list(self) -> list[NodeInfo]:
        """Nodes with a Node object, zone-interleaved (upstream nodeTree.list)."""
        if self._node_list is None:
            lists = [self._zones[z] for z in self._zone_order]
            out: list[NodeInfo] = []
            longest = max((len(x) for x in lists), default=0)
            for i in range(longest):
                for names in lists:
                    if i < len(names):
                        out.append(self.nodes[names[i]])
            self._node_list = out
        return self._node_list

    @property
    def num_nodes(self) -> int:
        return len(self.node_list())

    def get(self, name: str) -> NodeInfo | None:
        ni = self.nodes.get(name)
        return ni if ni is not None and ni.node is not None else None

    @property
    def has_prefer_no_schedule_taints(self) -> bool:
        """Some node carries a PreferNoSchedule taint (else TaintToleration scores every node alike)."""
        return bool(self._prefer_no_schedule)

    def image_spread(self, image: str) -> int:
        """How many nodes have this image."""
        nodes = self.image_nodes.get(image)
        return len(nodes) if nodes else 0

    # -- pods ------------------------------------------------------------------------

    def _place(self, pi: PodInfo) -> None:
        ni = self._info(pi.node_name)
        ni.add_pod(pi)
        self._pods[pi.uid] = pi
        self._track(ni)
        self._count_claims(pi, 1)

    def _unplace(self, pi: PodInfo) -> None:
        ni = self.nodes.get(pi.node_name)
        if self._pods.pop(pi.uid, None) is not None:
            self._count_claims(pi, -1)
        if ni is None:
            return
        ni.remove_pod(pi)
        self._track(ni)
        if ni.node is None and not ni.pods:
            del self.nodes[ni.name]

    def _count_claims(self, pi: PodInfo, sign: int) -> None:
        refs = self._pvc_refs
        for key in pi.claim_keys:
            n = refs.get(key, 0) + sign
            if n > 0:
                refs[key] = n
            else:
                refs.pop(key, None)

    def pvc_used_by_pods(self, key: str) -> bool:
        """Some bound or assumed pod has a volume naming the claim "<ns>/<name>" (upstream
        StorageInfoLister.IsPVCUsedByPods). Unlike upstream's snapshot this counts the pods of
        a node whose Node object is gone too: they may still run and hold the volume."""
        return key in self._pvc_refs

    def _track(self, ni: NodeInfo) -> None:
        if ni.pods_with_affinity:
            self._with_affinity.add(ni.name)
        else:
            self._with_affinity.discard(ni.name)
        if ni.pods_with_required_anti_affinity:
            self._with_required_anti_affinity.add(ni.name)
        else:
            self._with_required_anti_affinity.discard(ni.name)

    def assume_pod(self, pi: PodInfo) -> None:
        """Account `pi` (already carrying its node name) before the binding is confirmed."""
        if pi.uid in self._pods:
            raise ValueError(f"pod {pi.key} is already in the cache")
        self._place(pi)
        self._assumed.add(pi.uid)

    def finish_binding(self, pi: PodInfo) -> None:
        if pi.uid in self._assumed:
            self._binding_finished.add(pi.uid)

    def forget_pod(self, pi: PodInfo) -> None:
        """Undo assume_pod (the binding failed)."""
        cur = self._pods.get(pi.uid)
        if cur is None or pi.uid not in self._assumed:
            return
        self._unplace(cur)
        self._assumed.discard(pi.uid)
        self._binding_finished.discard(pi.uid)

    def is_assumed(self, uid: str) -> bool:
        return uid in self._assumed

    def add_pod(self, pod: Obj) -> None:
        """An assigned pod from the informer (confirms an assumed pod)."""
        meta = pod.get("metadata") or {}
        uid = meta.get("uid") or ""
        cur = self._pods.get(uid)
        if cur is not None and uid in self._assumed and self._confirm_in_place(cur, pod):
            return
        pi = PodInfo(pod)
        cur = self._pods.get(pi.uid)
        if cur is not None:
            if pi.uid in self._assumed:
                self._assumed.discard(pi.uid)
                self._binding_finished.discard(pi.uid)
                if cur.node_name != pi.node_name:
                    log.warning("pod %s was assumed on %s but is bound to %s", pi.key, cur.node_name, pi.node_name)
            self._unplace(cur)
        self._place(pi)

    def _confirm_in_place(self, cur: PodInfo, pod: Obj) -> bool:
        """The bound pod is the assumed one (same spec and labels): keep its parsed form."""
        spec = pod.get("spec") or {}
        meta = pod.get("metadata") or {}
        if spec != cur.spec or (meta.get("labels") or {}) != cur.labels:
            return False
        cur.pod = pod
        cur.spec = spec
        cur.deleting = bool(meta.get("deletionTimestamp"))
        status = pod.get("status") or {}
        cur.start_time = status.get("startTime") or ""
        cur.nominated_node_name = status.get("nominatedNodeName") or ""
        self._assumed.discard(cur.uid)
        self._binding_finished.discard(cur.uid)
        return True

    def update_pod(self, old: Obj, new: Obj) -> None:
        self.add_pod(new)

    def remove_pod(self, pod: Obj) -> None:
        uid = (pod.get("metadata") or {}).get("uid") or ""
        cur = self._pods.get(uid)
        if cur is None:
            return
        self._unplace(cur)
        self._assumed.discard(uid)
        self._binding_finished.discard(uid)

    def pod(self, uid: str) -> PodInfo | None:
        return self._pods.get(uid)

    @property
    def num_pods(self) -> int:
        return len(self._pods)

    @property
    def num_assumed(self) -> int:
        return len(self._assumed)

    def nodes_with_affinity_pods(self) -> list[NodeInfo]:
        return [self.nodes[n] for n in self._with_affinity if self.nodes[n].node is not None]

    def nodes_with_required_anti_affinity_pods(self) -> list[NodeInfo]:
        return [self.nodes[n] for n in self._with_required_anti_affinity if self.nodes[n].node is not None]

    @property
    def has_affinity_pods(self) -> bool:
        return bool(self._with_affinity)

    @property
    def has_required_anti_affinity_pods(self) -> bool:
        return bool(self._with_required_anti_affinity)
