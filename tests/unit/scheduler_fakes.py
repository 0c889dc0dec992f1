"""Builders for the scheduler's unit tests: Node and Pod dicts, and an in-memory cluster."""

from __future__ import annotations

import itertools
import random
from typing import Any

from scheduler.algorithm import Algorithm, ScheduleResult
from scheduler.cache import SchedulerCache
from scheduler.framework import CycleState, Handle
from scheduler.plugins import new_framework
from scheduler.podinfo import PodInfo
from scheduler.queue import SchedulingQueue
from scheduler.status import FitError
from scheduler.volumehelpers import ANN_BIND_COMPLETED

Obj = dict[str, Any]
_uid = itertools.count(1)


def make_node(name: str, cpu: str = "4", memory: str = "8Gi", pods: int = 110, *, labels: dict | None = None,
              taints: list | None = None, unschedulable: bool = False, images: list | None = None,
              extra: dict | None = None) -> Obj:
    alloc = {"cpu": cpu, "memory": memory, "pods": str(pods), **(extra or {})}
    node: Obj = {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})},
                     "resourceVersion": "1"},
        "spec": {},
        "status": {"allocatable": alloc, "capacity": alloc, "conditions": [{"type": "Ready", "status": "True"}]},
    }
    if taints:
        node["spec"]["taints"] = taints
    if unschedulable:
        node["spec"]["unschedulable"] = True
    if images:
        node["status"]["images"] = images
    return node


def make_pod(name: str, namespace: str = "default", *, cpu: str | None = None, memory: str | None = None,
             labels: dict | None = None, node: str | None = None, priority: int | None = None,
             tolerations: list | None = None, node_selector: dict | None = None, affinity: dict | None = None,
             spread: list | None = None, ports: list | None = None, image: str = "busybox",
             extra_requests: dict | None = None, uid: str | None = None, start_time: str | None = None,
             deleting: bool = False, scheduler_name: str | None = None, preemption_policy: str | None = None,
             nominated_node: str | None = None, owner: dict | None = None) -> Obj:
    requests: dict[str, str] = {}
    if cpu:
        requests["cpu"] = cpu
    if memory:
        requests["memory"] = memory
    requests.update(extra_requests or {})
    container: Obj = {"name": "c", "image": image}
    if requests:
        container["resources"] = {"requests": requests}
    if ports:
        container["ports"] = ports
    pod: Obj = {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "uid": uid or f"uid-{name}-{next(_uid)}",
                     "labels": labels or {}, "resourceVersion": "1"},
        "spec": {"containers": [container]},
        "status": {"phase": "Pending"},
    }
    spec = pod["spec"]
    if node:
        spec["nodeName"] = node
    if priority is not None:
        spec["priority"] = priority
    if tolerations:
        spec["tolerations"] = tolerations
    if node_selector is not None:
        spec["nodeSelector"] = node_selector
    if affinity:
        spec["affinity"] = affinity
    if spread:
        spec["topologySpreadConstraints"] = spread
    if scheduler_name:
        spec["schedulerName"] = scheduler_name
    if preemption_policy:
        spec["preemptionPolicy"] = preemption_policy
    if start_time:
        pod["status"]["startTime"] = start_time
    if deleting:
        pod["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    if nominated_node:
        pod["status"]["nominatedNodeName"] = nominated_node
    if owner:
        pod["metadata"]["ownerReferences"] = [owner]
    return pod


# -- storage objects (the volume plugins' tests) ---------------------------------------------

HOSTNAME = "kubernetes.io/hostname"


def pv(name: str, size: str = "1Gi", cls: str = "local", *, node: str | None = None, modes: tuple = ("ReadWriteOnce",),
       labels: dict | None = None, phase: str = "Available", claim: Obj | None = None, mode: str | None = None,
       rv: str = "10", deleting: bool = False) -> Obj:
    obj: Obj = {"apiVersion": "v1", "kind": "PersistentVolume",
                "metadata": {"name": name, "labels": labels or {}, "resourceVersion": rv, "uid": f"pv-uid-{name}"},
                "spec": {"capacity": {"storage": size}, "accessModes": list(modes), "storageClassName": cls,
                         "hostPath": {"path": f"/data/{name}"}},
                "status": {"phase": phase}}
    if node is not None:
        obj["spec"]["nodeAffinity"] = {"required": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": HOSTNAME, "operator": "In", "values": [node]}]}]}}
    if claim is not None:
        m = claim["metadata"]
        obj["spec"]["claimRef"] = {"kind": "PersistentVolumeClaim", "namespace": m["namespace"], "name": m["name"],
                                   "uid": m["uid"]}
    if mode:
        obj["spec"]["volumeMode"] = mode
    if deleting:
        obj["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return obj


def pvc(name: str, size: str = "1Gi", cls: str | None = "local", *, ns: str = "default",
        modes: tuple = ("ReadWriteOnce",), volume: str | None = None, bound: bool = False,
        selector: dict | None = None, annotations: dict | None = None, owner: Obj | None = None,
        rv: str = "5", mode: str | None = None) -> Obj:
    obj: Obj = {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                "metadata": {"name": name, "namespace": ns, "uid": f"pvc-uid-{name}", "resourceVersion": rv,
                             "annotations": dict(annotations or {})},
                "spec": {"accessModes": list(modes), "resources": {"requests": {"storage": size}}},
                "status": {"phase": "Bound" if bound else "Pending"}}
    if cls is not None:
        obj["spec"]["storageClassName"] = cls
    if volume:
        obj["spec"]["volumeName"] = volume
    if bound:
        obj["metadata"]["annotations"][ANN_BIND_COMPLETED] = "yes"
    if selector is not None:
        obj["spec"]["selector"] = selector
    if owner is not None:
        obj["metadata"]["ownerReferences"] = [{"apiVersion": "v1", "kind": "Pod", "name": owner["metadata"]["name"],
                                               "uid": owner["metadata"]["uid"], "controller": True}]
    if mode:
        obj["spec"]["volumeMode"] = mode
    return obj


def storage_class(name: str, mode: str = "WaitForFirstConsumer", provisioner: str = "kubernetes.io/no-provisioner",
                  topologies: list | None = None) -> Obj:
    obj: Obj = {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": name},
                "provisioner": provisioner, "volumeBindingMode": mode, "reclaimPolicy": "Delete"}
    if topologies is not None:
        obj["allowedTopologies"] = topologies
    return obj


def with_claims(pod: Obj, *claims: str, ephemeral: tuple[str, ...] = ()) -> Obj:
    vols = [{"name": f"v-{c}", "persistentVolumeClaim": {"claimName": c}} for c in claims]
    vols += [{"name": e, "ephemeral": {"volumeClaimTemplate": {"spec": {}}}} for e in ephemeral]
    pod["spec"]["volumes"] = [{"name": "cfg", "configMap": {"name": "x"}}, *vols]
    return pod


class FakeStore:
    """The part of client.Store the scheduler reads."""

    def __init__(self, objs: list[Obj] | None = None) -> None:
        self.items: dict[str, Obj] = {}
        for o in objs or ():
            self.put(o)

    @staticmethod
    def key(obj: Obj) -> str:
        m = obj["metadata"]
        return f"{m['namespace']}/{m['name']}" if m.get("namespace") else m["name"]

    def put(self, obj: Obj) -> None:
        self.items[self.key(obj)] = obj

    def get(self, key: str) -> Obj | None:
        return self.items.get(key)

    def get_by_name(self, namespace: str | None, name: str) -> Obj | None:
        return self.items.get(f"{namespace}/{name}" if namespace else name)

    def list(self) -> list[Obj]:
        return list(self.items.values())

    def by_index(self, index: str, value: str) -> list[Obj]:
        assert index == "namespace"
        return [o for o in self.items.values() if o["metadata"].get("namespace") == value]


class Cluster:
    """Cache + queue + the default framework, driven synchronously."""

    def __init__(self, nodes: list[Obj] = (), pods: list[Obj] = (), percentage: int = 0, seed: int = 1,
                 disabled: tuple[str, ...] = ()) -> None:
        self.cache = SchedulerCache()
        self.queue = SchedulingQueue()
        self.handle = Handle(self.cache, self.queue)
        self.handle.stores = {"namespaces": FakeStore(), "pdbs": FakeStore(), "services": FakeStore(),
                              "replicasets": FakeStore(), "statefulsets": FakeStore(),
                              "replicationcontrollers": FakeStore()}
        self.fw = new_framework(self.handle, disabled)
        self.queue.cluster_events = dict(self.fw.cluster_events)
        self.algorithm = Algorithm(self.cache, percentage, rng=random.Random(seed))
        for n in nodes:
            self.cache.add_node(n)
        for p in pods:
            self.cache.add_pod(p)

    def node(self, name: str):
        return self.cache.get(name)

    def schedule(self, pod: Obj) -> ScheduleResult:
        """Raises FitError when the pod fits nowhere."""
        return self.algorithm.schedule_pod(self.fw, CycleState(), PodInfo(pod))

    def place(self, pod: Obj) -> str:
        """Schedule and assume, as a scheduling cycle does; returns the node."""
        pi = PodInfo(pod)
        host = self.algorithm.schedule_pod(self.fw, CycleState(), pi).host
        self.cache.assume_pod(pi.with_node(host))
        return host

    def prefiltered(self, pod: Obj) -> tuple[CycleState, PodInfo]:
        state = CycleState()
        pi = PodInfo(pod)
        _names, st = self.fw.run_pre_filter(state, pi)
        assert st is None, st
        return state, pi

    def filter(self, pod: Obj, node: str):
        """The first failing status of `pod` on `node` (after PreFilter), or None."""
        state, pi = self.prefiltered(pod)
        return self.fw.run_filter(state, pi, self.cache.get(node))

    def scores(self, pod: Obj, nodes: list[str] | None = None) -> dict[str, dict[str, int]]:
        """Normalized per-plugin scores: {plugin: {node: score}}."""
        state, pi = self.prefiltered(pod)
        infos = [self.cache.get(n) for n in (nodes or [ni.name for ni in self.cache.node_list()])]
        st = self.fw.run_pre_score(state, pi, infos)
        assert st is None, st
        per: dict[str, list[int]] = {}
        self.fw.run_score(state, pi, infos, per)
        return {p: {ni.name: s for ni, s in zip(infos, v, strict=True)} for p, v in per.items()}


class FakePodsAPI:
    """Records the calls the scheduler makes on pods (patch, delete, bindings)."""

    def __init__(self, fail_binding: Exception | None = None) -> None:
        self.patches: list[tuple[str, str, Any, str | None]] = []
        self.deletes: list[tuple[str, str]] = []
        self.bindings: list[tuple[str, str, str]] = []
        self.fail_binding = fail_binding

    async def patch(self, name: str, patch: Any, namespace: str | None = None, patch_type: str = "merge",
                    subresource: str | None = None, **kw: Any) -> Obj:
        self.patches.append((namespace or "", name, patch, subresource))
        return {}

    async def delete(self, name: str, namespace: str | None = None, **kw: Any) -> Obj:
        self.deletes.append((namespace or "", name))
        return {}

    async def create_subresource(self, name: str, subresource: str, body: Obj, namespace: str | None = None,
                                 **kw: Any) -> Obj:
        assert subresource == "binding"
        if self.fail_binding is not None:
            raise self.fail_binding
        self.bindings.append((namespace or "", name, body["target"]["name"]))
        return {"kind": "Status", "status": "Success"}


class FakeAPI:
    def __init__(self, pods: FakePodsAPI | None = None) -> None:
        self.pods = pods or FakePodsAPI()

    def resource(self, api_version: str, plural: str) -> FakePodsAPI:
        assert (api_version, plural) == ("v1", "pods")
        return self.pods


class FakeEvents:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str, str]] = []  # (object name, type, reason, message)
        self.dropped = 0

    def event(self, obj: Obj, type: str, reason: str, message: str, action: str | None = None) -> None:
        self.events.append((obj["metadata"]["name"], type, reason, message))


def prepare(c: Cluster, pods: list[dict]) -> tuple[FakeAPI, FakeEvents]:
    """What preemption needs besides the cache: an API, an event sink, the pods store."""
    api, events = FakeAPI(), FakeEvents()
    c.handle.api, c.handle.events = api, events
    c.handle.stores["pods"] = FakeStore(pods)
    return api, events


async def preempt(c: Cluster, pod: dict):
    """Schedule `pod`, which must fit nowhere; → PostFilter's (nominated node, status)."""
    state, pi = CycleState(), PodInfo(pod)
    try:
        c.algorithm.schedule_pod(c.fw, state, pi)
    except FitError as fe:
        return await c.fw.run_post_filter(state, pi, fe.diagnosis.node_to_status)
    raise AssertionError("the pod fits: nothing to preempt")
