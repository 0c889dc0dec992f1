"""The taint-eviction controller: pods leave nodes with NoExecute taints they do not tolerate.

Upstream pkg/controller/tainteviction (the node lifecycle controller's former taint
manager). Whenever a node's NoExecute taints or a pod's node/tolerations change, the pods
on that node are judged:
- a taint the pod does not tolerate: it is deleted now;
- every taint tolerated: it is deleted after the shortest tolerationSeconds of the
  tolerations used (counted from when the controller first saw it due; an earlier
  deadline already scheduled is kept), never when none of them sets tolerationSeconds
  (the apiserver's DefaultTolerationSeconds admission gives pods 300 s for not-ready and
  unreachable unless they say otherwise);
- no NoExecute taint (any more): a scheduled deletion is cancelled.
Before deletion the pod gets the DisruptionTarget condition (reason DeletionByTaintManager)
and an event TaintManagerEviction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from apimachinery.meta import format_time, key_of, split_key
from client import ApiError, deleted_object, is_not_found
from controller_manager.base import Controller, ControllerContext, add_index_once, register
from controller_manager.taints import matching_tolerations, min_toleration_seconds, no_execute_taints

Obj = dict[str, Any]

NODE_NAME_INDEX = "nodeName"


@dataclass
class Scheduled:
    created: float  # monotonic
    fire_at: float


def _taint_identity(taints: list[Obj]) -> list[tuple]:
    return sorted((t.get("key"), t.get("value"), t.get("effect")) for t in taints)


@register
class TaintEvictionController(Controller):
    name = "taint-eviction-controller"
    #: upstream's role for it (system:controller:taint-eviction-controller) is not in the bootstrap
    #: policy yet; node-controller's role grants what it needs (pods delete, pods/status patch)
    service_account = "node-controller"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.nodes = self.informer("v1", "nodes")
        self.nodes.add_handler(self._node_added, self._node_updated, self._node_deleted)
        self.pods = self.informer("v1", "pods")
        add_index_once(self.pods, NODE_NAME_INDEX, lambda p: (p.get("spec") or {}).get("nodeName") or None)
        self.pods.add_handler(self._pod_added, self._pod_updated, self._pod_deleted)
        self.pods_api = self.client.resource("v1", "pods")
        self.scheduled: dict[str, Scheduled] = {}  # pod key → its pending eviction

    # -- informer events -----------------------------------------------------------------

    def _node_added(self, node: Obj) -> None:
        if no_execute_taints(node):
            self._enqueue_node_pods(node["metadata"]["name"])

    def _node_updated(self, old: Obj, new: Obj) -> None:
        if _taint_identity(no_execute_taints(old)) != _taint_identity(no_execute_taints(new)):
            self._enqueue_node_pods(new["metadata"]["name"])

    def _node_deleted(self, item: Any) -> None:
        self._enqueue_node_pods(deleted_object(item)["metadata"]["name"])

    def _enqueue_node_pods(self, node_name: str) -> None:
        for pod in self.pods.store.by_index(NODE_NAME_INDEX, node_name):
            self.queue.add(key_of(pod))

    def _pod_added(self, pod: Obj) -> None:
        if (pod.get("spec") or {}).get("nodeName"):
            self.queue.add(key_of(pod))

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        o, n = old.get("spec") or {}, new.get("spec") or {}
        if o.get("nodeName") != n.get("nodeName") or o.get("tolerations") != n.get("tolerations"):
            self.queue.add(key_of(new))

    def _pod_deleted(self, item: Any) -> None:
        self.scheduled.pop(key_of(deleted_object(item)), None)

    # -- the sync ------------------------------------------------------------------------

    def _cancel(self, key: str) -> None:
        if self.scheduled.pop(key, None) is not None:
            self.log.info("cancelled the taint eviction of pod %s", key)

    async def sync(self, key: str) -> None:
        pod = self.pods.store.get(key)
        if pod is None:
            self.scheduled.pop(key, None)
            return
        node_name = (pod.get("spec") or {}).get("nodeName")
        node = self.nodes.store.get(node_name) if node_name else None
        taints = no_execute_taints(node)
        if not taints or pod["metadata"].get("deletionTimestamp"):
            self._cancel(key)
            return
        now = self.clock.monotonic()
        tolerated, used = matching_tolerations(taints, (pod.get("spec") or {}).get("tolerations") or [])
        if not tolerated:
            self.scheduled.pop(key, None)
            await self.evict(pod)
            return
        wait = min_toleration_seconds(used)
        if wait < 0:
            self._cancel(key)  # tolerated forever
            return
        fire_at = now + wait
        current = self.scheduled.get(key)
        if current is not None:
            if current.created + wait < fire_at:
                fire_at = current.created + wait  # an earlier deadline stands
            if fire_at <= now:
                self.scheduled.pop(key, None)
                await self.evict(pod)
                return
            self.scheduled[key] = Scheduled(current.created, fire_at)
        else:
            if wait <= 0:
                await self.evict(pod)
                return
            self.scheduled[key] = Scheduled(now, fire_at)
        self.queue.add_after(key, fire_at - now)

    async def evict(self, pod: Obj) -> None:
        ns, name = split_key(key_of(pod))
        self.recorder.event(pod, "Normal", "TaintManagerEviction", f"Marking for deletion Pod {ns}/{name}")
        condition = {"type": "DisruptionTarget", "status": "True", "reason": "DeletionByTaintManager",
                     "message": "Taint manager: deleting due to NoExecute taint",
                     "lastTransitionTime": format_time(self.clock.now())}
        try:
            await self.pods_api.patch(name, {"status": {"conditions": [condition]}}, ns, "strategic",
                                      subresource="status")
            await self.pods_api.delete(name, ns, preconditions={"uid": pod["metadata"].get("uid", "")})
        except ApiError as e:
            if not is_not_found(e):
                raise
        self.log.info("evicted pod %s/%s from a NoExecute-tainted node", ns, name)
