"""Informer events → the cache and the queue (upstream eventhandlers.go).

- Assigned pods (any scheduler's) go to the cache; a new or changed one may satisfy pending
  pods' affinity, a deleted one frees room (AssignedPodDelete moves pods that failed on
  resources, ports, affinity or spreading).
- Unassigned pods with one of our scheduler names go to the queue; when one gets bound it
  leaves the queue and enters the cache (confirming the assumed pod).
- Nodes go to the cache; a new node, or a change of what scheduling looks at (becoming
  schedulable, allocatable, labels, taints, conditions), moves pending pods that could now
  fit it (after a quick admission check against that node).
- PersistentVolumeClaims, PersistentVolumes and StorageClasses (when served) move the pods
  the volume plugins rejected (a claim's change only the pods using it), and — as pod
  deletions and node changes do — wake the PreBinds waiting for their claims to be bound.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from apimachinery.nodeaffinity import RequiredNodeAffinity
from apimachinery.taints import NO_SCHEDULE, find_untolerated_taint
from client import deleted_object
from scheduler.framework import (
    ASSIGNED_POD_ADD,
    ASSIGNED_POD_DELETE,
    ASSIGNED_POD_UPDATE,
    NODE_ADD,
    NODE_ALLOCATABLE_CHANGE,
    NODE_CONDITION_CHANGE,
    NODE_LABEL_CHANGE,
    NODE_SPEC_UNSCHEDULABLE_CHANGE,
    NODE_TAINT_CHANGE,
    PV_ADD,
    PV_UPDATE,
    PVC_ADD,
    PVC_UPDATE,
    STORAGE_CLASS_ADD,
    STORAGE_CLASS_UPDATE,
    ClusterEvent,
)
from scheduler.nodeinfo import NodeInfo
from scheduler.plugins.node_resources_fit import insufficient_resources
from scheduler.plugins.volume_binding import pvc_event_filter
from scheduler.podinfo import PodInfo
from scheduler.scheduler import is_assigned

if TYPE_CHECKING:
    from scheduler.scheduler import Scheduler

Obj = dict[str, Any]


def _rv(obj: Obj) -> str:
    return (obj.get("metadata") or {}).get("resourceVersion") or ""


def _uid(obj: Obj) -> str:
    return (obj.get("metadata") or {}).get("uid") or ""


def admission_check(pod: PodInfo, ni: NodeInfo) -> bool:
    """Resources, required node affinity, node name and host ports fit (upstream AdmissionCheck)."""
    if insufficient_resources(pod, ni):
        return False
    if not RequiredNodeAffinity(pod.spec).matches(ni.labels, ni.name):
        return False
    if pod.node_name and pod.node_name != ni.name:
        return False
    return all(not ni.port_conflicts(ip, proto, port) for ip, proto, port in pod.host_ports)


def pre_check_for_node(ni: NodeInfo) -> Callable[[PodInfo], bool]:
    """Would a pending pod pass the cheap checks on this (new or changed) node? (upstream preCheckForNode)"""
    def check(pod: PodInfo) -> bool:
        if not admission_check(pod, ni):
            return False
        return find_untolerated_taint(ni.taints, pod.tolerations, lambda t: t.get("effect") == NO_SCHEDULE) is None
    return check


def _conditions(node: Obj) -> dict[str, str]:
    return {c.get("type"): c.get("status") for c in (node.get("status") or {}).get("conditions") or ()}


def node_scheduling_property_changes(new: Obj, old: Obj) -> list[ClusterEvent]:
    """Upstream nodeSchedulingPropertiesChange."""
    events = []
    new_spec, old_spec = new.get("spec") or {}, old.get("spec") or {}
    if bool(new_spec.get("unschedulable")) != bool(old_spec.get("unschedulable")) and not new_spec.get("unschedulable"):
        events.append(NODE_SPEC_UNSCHEDULABLE_CHANGE)
    if (new.get("status") or {}).get("allocatable") != (old.get("status") or {}).get("allocatable"):
        events.append(NODE_ALLOCATABLE_CHANGE)
    if (new.get("metadata") or {}).get("labels") != (old.get("metadata") or {}).get("labels"):
        events.append(NODE_LABEL_CHANGE)
    if (new_spec.get("taints") or []) != (old_spec.get("taints") or []):
        events.append(NODE_TAINT_CHANGE)
    if _conditions(new) != _conditions(old):
        events.append(NODE_CONDITION_CHANGE)
    return events


class EventHandlers:
    def __init__(self, sched: Scheduler) -> None:
        self.sched = sched

    # -- pods --------------------------------------------------------------------------

    def _add_to_cache(self, pod: Obj, event: ClusterEvent) -> None:
        self.sched.cache.add_pod(pod)
        pi = self.sched.cache.pod(_uid(pod))
        if pi is not None:
            self.sched.queue.assigned_pod_added(pi, event)

    def on_pod_add(self, pod: Obj) -> None:
        s = self.sched
        if is_assigned(pod):
            self._add_to_cache(pod, ASSIGNED_POD_ADD)
        elif s.responsible_for(pod):
            s.queue.add(pod)

    def on_pod_update(self, old: Obj, new: Obj) -> None:
        s = self.sched
        if is_assigned(old):
            self._add_to_cache(new, ASSIGNED_POD_UPDATE)
        elif is_assigned(new):
            if s.responsible_for(old):
                s.queue.delete(old)
            self._add_to_cache(new, ASSIGNED_POD_ADD)
        elif s.responsible_for(new):
            if _rv(old) == _rv(new) or s.cache.is_assumed(_uid(new)):
                return
            s.queue.update(old, new)
        elif s.responsible_for(old):
            s.queue.delete(old)

    def on_pod_delete(self, obj: Any) -> None:
        s = self.sched
        s.changes.notify()
        pod = deleted_object(obj)
        if is_assigned(pod):
            s.cache.remove_pod(pod)
            s.queue.move_all_to_active_or_backoff(ASSIGNED_POD_DELETE)
        elif s.responsible_for(pod):
            s.queue.delete(pod)

    # -- nodes -------------------------------------------------------------------------

    def on_node_add(self, node: Obj) -> None:
        ni = self.sched.cache.add_node(node)
        self.sched.queue.move_all_to_active_or_backoff(NODE_ADD, pre_check_for_node(ni))

    def on_node_update(self, old: Obj, new: Obj) -> None:
        ni = self.sched.cache.update_node(new)
        for event in node_scheduling_property_changes(new, old):
            self.sched.queue.move_all_to_active_or_backoff(event, pre_check_for_node(ni))
        self.sched.changes.notify()

    def on_node_delete(self, obj: Any) -> None:
        self.sched.cache.remove_node(deleted_object(obj))
        self.sched.changes.notify()

    # -- storage (the volume plugins) ----------------------------------------------------

    def _storage_event(self, event: ClusterEvent, pre_check: Callable[[PodInfo], bool] | None = None) -> None:
        self.sched.changes.notify()
        self.sched.queue.move_all_to_active_or_backoff(event, pre_check)

    def on_pvc_add(self, pvc: Obj) -> None:
        self._storage_event(PVC_ADD, pvc_event_filter(pvc))

    # (the informer drops updates that carry the same resourceVersion: every update is a change)
    def on_pvc_update(self, old: Obj, new: Obj) -> None:
        self._storage_event(PVC_UPDATE, pvc_event_filter(new))

    def on_pv_add(self, pv: Obj) -> None:
        self._storage_event(PV_ADD)

    def on_pv_update(self, old: Obj, new: Obj) -> None:
        self._storage_event(PV_UPDATE)

    def on_storage_class_add(self, sc: Obj) -> None:
        self._storage_event(STORAGE_CLASS_ADD)

    def on_storage_class_update(self, old: Obj, new: Obj) -> None:
        self._storage_event(STORAGE_CLASS_UPDATE)

    def on_storage_delete(self, obj: Any) -> None:
        self.sched.changes.notify()  # upstream moves no pods on these deletions

    def register(self, informers: Mapping[str, Any]) -> None:
        """Add the handlers to the "pods" and "nodes" informers, and to "pvcs", "pvs" and
        "storageclasses" when there are such informers."""
        informers["nodes"].add_handler(self.on_node_add, self.on_node_update, self.on_node_delete)
        informers["pods"].add_handler(self.on_pod_add, self.on_pod_update, self.on_pod_delete)
        for name, on_add, on_update in (("pvcs", self.on_pvc_add, self.on_pvc_update),
                                        ("pvs", self.on_pv_add, self.on_pv_update),
                                        ("storageclasses", self.on_storage_class_add, self.on_storage_class_update)):
            informer = informers.get(name)
            if informer is not None:
                informer.add_handler(on_add, on_update, self.on_storage_delete)
