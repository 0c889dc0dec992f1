"""The node lifecycle controller: node health from heartbeats, and the taints that follow.

Upstream pkg/controller/nodelifecycle. Every --node-monitor-period it looks at each node:
- Heartbeats are the kubelet's Lease `kube-node-lease/<node>` (renewTime) and its posted
  NodeStatus (the Ready condition's lastHeartbeatTime). Whenever either changes, the
  controller notes the time on its own clock. A node not heard from for
  --node-monitor-grace-period (--node-startup-grace-period while it never posted a Ready
  condition) gets Ready, MemoryPressure, DiskPressure and PIDPressure set to Unknown
  ("Kubelet stopped posting node status." / "Kubelet never posted node status."); its pods
  are then marked not Ready (event NodeNotReady).
- NoExecute taints mirror Ready: `node.kubernetes.io/not-ready` when Ready is False,
  `node.kubernetes.io/unreachable` when Unknown, none when True. They are added through a
  per-zone rate-limited queue (--node-eviction-rate nodes per second; in a zone where at
  least --unhealthy-zone-threshold of more than 2 nodes are down, --secondary-node-eviction-rate
  when the zone is larger than --large-cluster-size-threshold, else not at all). When every
  zone is fully down the controller assumes it is the one cut off: it removes the taints and
  taints nothing until some node is Ready again.
  The taint-eviction controller (taint_eviction.py) evicts the pods that do not tolerate them.
- NoSchedule taints mirror conditions for the scheduler (on every node change):
  not-ready/unreachable (Ready False/Unknown), memory-, disk-, pid-pressure,
  network-unavailable, and `node.kubernetes.io/unschedulable` for spec.unschedulable.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from apimachinery.meta import format_time, parse_time, split_key
from apimachinery.taints import NO_EXECUTE, NO_SCHEDULE
from client import ApiError, TokenBucket, deleted_object, is_conflict, is_not_found
from controller_manager.base import Controller, ControllerContext, add_index_once, periodic, register
from controller_manager.podutil import pod_condition
from controller_manager.taints import (
    DISK_PRESSURE,
    MEMORY_PRESSURE,
    NETWORK_UNAVAILABLE,
    NOT_READY,
    PID_PRESSURE,
    UNREACHABLE,
    UNSCHEDULABLE,
    has_taint,
    swap_taints,
)

Obj = dict[str, Any]

LEASE_NAMESPACE = "kube-node-lease"
NODE_NAME_INDEX = "nodeName"
ZONE_LABEL = "topology.kubernetes.io/zone"
REGION_LABEL = "topology.kubernetes.io/region"
EXCLUDE_DISRUPTION_LABEL = "node.kubernetes.io/exclude-disruption"
NO_EXECUTE_TAINTING_PERIOD = 0.1  # upstream nodeEvictionPeriod
TAINT_RETRIES = 5

NOT_READY_TAINT = {"key": NOT_READY, "effect": NO_EXECUTE}
UNREACHABLE_TAINT = {"key": UNREACHABLE, "effect": NO_EXECUTE}

#: node condition → {status: the NoSchedule taint it brings}
CONDITION_TAINTS = {
    "Ready": {"False": NOT_READY, "Unknown": UNREACHABLE},
    "MemoryPressure": {"True": MEMORY_PRESSURE},
    "DiskPressure": {"True": DISK_PRESSURE},
    "NetworkUnavailable": {"True": NETWORK_UNAVAILABLE},
    "PIDPressure": {"True": PID_PRESSURE},
}
CONDITION_TAINT_KEYS = {k for m in CONDITION_TAINTS.values() for k in m.values()}
MONITORED_CONDITIONS = ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure")

STATE_INITIAL, STATE_NORMAL, STATE_FULL, STATE_PARTIAL = "Initial", "Normal", "FullDisruption", "PartialDisruption"


def node_condition(node: Obj, type_: str) -> Obj | None:
    for c in (node.get("status") or {}).get("conditions") or []:
        if c.get("type") == type_:
            return c
    return None


def zone_key(node: Obj) -> str:
    labels = node["metadata"].get("labels") or {}
    region, zone = labels.get(REGION_LABEL, ""), labels.get(ZONE_LABEL, "")
    if not region and not zone:
        return ""
    return f"{region}:\x00:{zone}"


def compute_zone_state(ready_conditions: list[Obj | None], unhealthy_threshold: float) -> tuple[int, str]:
    ready = sum(1 for c in ready_conditions if c is not None and c.get("status") == "True")
    not_ready = len(ready_conditions) - ready
    if ready == 0 and not_ready > 0:
        return not_ready, STATE_FULL
    if not_ready > 2 and not_ready / (not_ready + ready) >= unhealthy_threshold:
        return not_ready, STATE_PARTIAL
    return not_ready, STATE_NORMAL


@dataclass
class NodeHealth:
    status: Obj
    probe_time: float  # the controller's monotonic clock when a heartbeat was last seen
    ready_transition_time: float
    lease_renew: dt.datetime | None = None
    uid: str = ""


class RateLimitedQueue:
    """Node names waiting for their NoExecute taint, taken at a zone's rate (upstream RateLimitedTimedQueue)."""

    def __init__(self, qps: float, clock) -> None:
        self._clock = clock
        self._items: OrderedDict[str, tuple[str, float]] = OrderedDict()  # name → (uid, process at)
        self.swap_limiter(qps)

    def swap_limiter(self, qps: float) -> None:
        self.qps = qps
        self._bucket = TokenBucket(qps, 1, self._clock) if qps > 0 else None

    def add(self, name: str, uid: str) -> bool:
        if name in self._items:
            return False
        self._items[name] = (uid, self._clock())
        return True

    def remove(self, name: str) -> bool:
        return self._items.pop(name, None) is not None

    def __contains__(self, name: str) -> bool:
        return name in self._items

    def __len__(self) -> int:
        return len(self._items)

    async def try_each(self, fn) -> None:
        """Hand the due names, oldest first and as the rate allows, to `fn(name)` → (done, retry after)."""
        for name in list(self._items):
            entry = self._items.get(name)
            if entry is None:
                continue
            if self._bucket is None or not self._bucket.try_take():
                return
            uid, at = entry
            now = self._clock()
            if now < at:
                return
            done, wait = await fn(name)
            if done:
                self._items.pop(name, None)
            elif name in self._items:
                self._items[name] = (uid, now + wait)
                self._items.move_to_end(name)


@register
class NodeLifecycleController(Controller):
    name = "node-lifecycle-controller"
    aliases = ("nodelifecycle",)
    service_account = "node-controller"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        o = self.options
        self.monitor_period = o.node_monitor_period
        self.grace_period = o.node_monitor_grace_period
        self.startup_grace_period = o.node_startup_grace_period
        self.eviction_qps = o.node_eviction_rate
        self.secondary_eviction_qps = o.secondary_node_eviction_rate
        self.large_cluster_threshold = o.large_cluster_size_threshold
        self.unhealthy_zone_threshold = o.unhealthy_zone_threshold
        self.nodes = self.watch("v1", "nodes")  # node changes → NoSchedule tainting pass
        self.leases = self.informer("coordination.k8s.io/v1", "leases", namespace=LEASE_NAMESPACE)
        self.pods = self.informer("v1", "pods")
        add_index_once(self.pods, NODE_NAME_INDEX, lambda p: (p.get("spec") or {}).get("nodeName") or None)
        self.nodes_api = self.client.resource("v1", "nodes")
        self.pods_api = self.client.resource("v1", "pods")
        self.health: dict[str, NodeHealth] = {}
        self.known_nodes: dict[str, str] = {}  # name → uid
        self.zone_states: dict[str, str] = {}
        self.tainters: dict[str, RateLimitedQueue] = {}
        self._pods_to_retry: set[str] = set()
        self.nodes.add_handler(None, None, self._node_deleted)

    def _node_deleted(self, item: Any) -> None:
        node = deleted_object(item)
        name = node["metadata"]["name"]
        self.health.pop(name, None)
        tainter = self.tainters.get(zone_key(node))
        if tainter is not None:
            tainter.remove(name)

    def background(self, stop: asyncio.Event):
        return [self._monitor_loop(stop), periodic(NO_EXECUTE_TAINTING_PERIOD, self.do_no_execute_tainting_pass, stop)]

    async def _monitor_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.monitor_node_health()
            except Exception:
                self.log.exception("monitoring node health failed")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.monitor_period):
                    await stop.wait()

    # -- NoSchedule taints (per node change) ---------------------------------------------

    async def sync(self, key: str) -> None:
        _, name = split_key(key)
        node = self.nodes.store.get(name)
        if node is None:
            return
        want = []
        for c in (node.get("status") or {}).get("conditions") or []:
            taint_key = CONDITION_TAINTS.get(c.get("type"), {}).get(c.get("status"))
            if taint_key:
                want.append({"key": taint_key, "effect": NO_SCHEDULE})
        if (node.get("spec") or {}).get("unschedulable"):
            want.append({"key": UNSCHEDULABLE, "effect": NO_SCHEDULE})
        have = [t for t in (node.get("spec") or {}).get("taints") or []
                if t.get("effect") == NO_SCHEDULE and (t.get("key") in CONDITION_TAINT_KEYS or t.get("key") == UNSCHEDULABLE)]
        add = [t for t in want if not has_taint(have, t)]
        remove = [t for t in have if not has_taint(want, t)]
        if add or remove:
            await self.swap_node_taints(name, add, remove, node)

    async def swap_node_taints(self, name: str, add: list[Obj], remove: list[Obj], node: Obj | None = None) -> bool:
        """Add and remove taints on a node (merge patch under its resourceVersion, retried on conflicts)."""
        for attempt in range(TAINT_RETRIES):
            if node is None or attempt > 0:
                try:
                    node = await self.nodes_api.get(name)
                except ApiError as e:
                    if is_not_found(e):
                        return False
                    raise
            new = swap_taints((node.get("spec") or {}).get("taints"), add, remove, self.clock.now())
            if new is None:
                return True
            patch = {"metadata": {"resourceVersion": node["metadata"]["resourceVersion"]}, "spec": {"taints": new}}
            try:
                await self.nodes_api.patch(name, patch, patch_type="merge")
                return True
            except ApiError as e:
                if is_not_found(e):
                    return False
                if not is_conflict(e):
                    raise
        raise RuntimeError(f"node {name}: too many conflicts updating taints")

    # -- health monitoring ---------------------------------------------------------------

    def _tainter(self, zone: str) -> RateLimitedQueue:
        q = self.tainters.get(zone)
        if q is None:
            q = self.tainters[zone] = RateLimitedQueue(self.eviction_qps, self.clock.monotonic)
            self.zone_states.setdefault(zone, STATE_INITIAL)
        return q

    async def monitor_node_health(self) -> None:
        nodes = self.nodes.store.list()
        names = {n["metadata"]["name"] for n in nodes}
        for node in nodes:
            name = node["metadata"]["name"]
            if self.known_nodes.get(name) != node["metadata"].get("uid"):
                self.known_nodes[name] = node["metadata"].get("uid", "")
                self._tainter(zone_key(node))
                self.recorder.event(node, "Normal", "RegisteredNode", f"Registered Node {name} in Controller")
                await self.mark_node_reachable(node)
        for name in list(self.known_nodes):
            if name not in names:
                del self.known_nodes[name]
                self.health.pop(name, None)
        zone_conditions: dict[str, list[Obj | None]] = {}
        for node in nodes:
            name = node["metadata"]["name"]
            try:
                observed, current = await self.try_update_node_health(node)
            except Exception as e:
                self.log.warning("updating the health of node %s failed: %s", name, e)
                continue
            if EXCLUDE_DISRUPTION_LABEL not in (node["metadata"].get("labels") or {}):
                zone_conditions.setdefault(zone_key(node), []).append(current)
            if current is None:
                continue
            await self.process_taint_based_eviction(node, current)
            if current.get("status") != "True" and (observed.get("status") == "True" or name in self._pods_to_retry):
                if observed.get("status") == "True":
                    self.recorder.event(node, "Normal", "NodeNotReady", f"Node {name} status is now: NodeNotReady")
                try:
                    await self.mark_pods_not_ready(name)
                    self._pods_to_retry.discard(name)
                except Exception as e:
                    self.log.warning("marking the pods of node %s not ready failed: %s; will retry", name, e)
                    self._pods_to_retry.add(name)
        await self.handle_disruption(zone_conditions, nodes)

    async def try_update_node_health(self, node: Obj) -> tuple[Obj, Obj | None]:
        """Update the controller's view of a node (and mark it Unknown when silent too long).

        Returns (the Ready condition as the node reported it, the Ready condition now)."""
        name = node["metadata"]["name"]
        now = self.clock.monotonic()
        ready = node_condition(node, "Ready")
        created = node["metadata"].get("creationTimestamp") or format_time(self.clock.now())
        if ready is None:
            observed = {"type": "Ready", "status": "Unknown", "lastHeartbeatTime": created, "lastTransitionTime": created}
            grace = self.startup_grace_period
        else:
            observed = dict(ready)
            grace = self.grace_period
        saved = self.health.get(name)
        if saved is not None and saved.uid != node["metadata"].get("uid"):
            saved = None  # deleted and re-registered under the same name
        status = node.get("status") or {}
        if saved is None:
            saved = NodeHealth(status, now, now, uid=node["metadata"].get("uid", ""))
            self.health[name] = saved
        else:
            saved_ready = node_condition({"status": saved.status}, "Ready")
            if saved_ready is None and ready is not None:
                saved.probe_time = saved.ready_transition_time = now
            elif saved_ready is not None and ready is not None:
                if saved_ready.get("status") != ready.get("status"):
                    saved.probe_time = saved.ready_transition_time = now
                elif saved_ready.get("lastHeartbeatTime") != ready.get("lastHeartbeatTime"):
                    saved.probe_time = now
            saved.status = status
        lease = self.leases.store.get(f"{LEASE_NAMESPACE}/{name}")
        renew = (lease or {}).get("spec", {}).get("renewTime") if lease else None
        if renew:
            try:
                renewed = parse_time(renew)
            except ValueError:
                renewed = None
            if renewed is not None and (saved.lease_renew is None or saved.lease_renew < renewed):
                saved.lease_renew = renewed
                saved.probe_time = now
        if now <= saved.probe_time + grace:
            return observed, ready
        # silent for longer than the grace period: Unknown, whatever the node last said
        new_node = {**node, "status": {**status, "conditions": [dict(c) for c in status.get("conditions") or []]}}
        conds = new_node["status"]["conditions"]
        ts = format_time(self.clock.now())
        for t in MONITORED_CONDITIONS:
            c = next((c for c in conds if c.get("type") == t), None)
            if c is None:
                conds.append({"type": t, "status": "Unknown", "reason": "NodeStatusNeverUpdated",
                              "message": "Kubelet never posted node status.", "lastHeartbeatTime": created,
                              "lastTransitionTime": ts})
            elif c.get("status") != "Unknown":
                c.update(status="Unknown", reason="NodeStatusUnknown", message="Kubelet stopped posting node status.",
                         lastTransitionTime=ts)
        current = next(c for c in conds if c.get("type") == "Ready")
        if current != observed:
            self.log.info("node %s: no heartbeat for %.0fs; marking it %s", name, now - saved.probe_time, "Unknown")
            await self.nodes_api.update_status(new_node)
            saved.status = new_node["status"]
            saved.ready_transition_time = now
        return observed, current

    async def mark_pods_not_ready(self, node_name: str) -> None:
        errors = []
        for pod in self.pods.store.by_index(NODE_NAME_INDEX, node_name):
            cond = pod_condition(pod, "Ready")
            if cond is None or cond.get("status") == "False":
                continue
            patch = {"status": {"conditions": [{"type": "Ready", "status": "False",
                                                "lastTransitionTime": format_time(self.clock.now())}]}}
            try:
                await self.pods_api.patch(pod["metadata"]["name"], patch, pod["metadata"]["namespace"], "strategic",
                                          subresource="status")
            except ApiError as e:
                if not is_not_found(e):
                    errors.append(e)
                continue
            self.recorder.event(pod, "Warning", "NodeNotReady", "Node is not ready")
        if errors:
            raise errors[0]

    # -- NoExecute taints ----------------------------------------------------------------

    async def process_taint_based_eviction(self, node: Obj, ready: Obj) -> None:
        name = node["metadata"]["name"]
        taints = (node.get("spec") or {}).get("taints")
        status = ready.get("status")
        tainter = self._tainter(zone_key(node))
        if status == "False":
            if has_taint(taints, UNREACHABLE_TAINT):
                await self.swap_node_taints(name, [NOT_READY_TAINT], [UNREACHABLE_TAINT])
            else:
                if not has_taint(taints, NOT_READY_TAINT):
                    tainter.remove(name)
                tainter.add(name, node["metadata"].get("uid", ""))
        elif status == "Unknown":
            if has_taint(taints, NOT_READY_TAINT):
                await self.swap_node_taints(name, [UNREACHABLE_TAINT], [NOT_READY_TAINT])
            else:
                if not has_taint(taints, UNREACHABLE_TAINT):
                    tainter.remove(name)
                tainter.add(name, node["metadata"].get("uid", ""))
        elif status == "True":
            await self.mark_node_reachable(node)

    async def mark_node_reachable(self, node: Obj) -> None:
        name = node["metadata"]["name"]
        taints = (node.get("spec") or {}).get("taints")
        if has_taint(taints, UNREACHABLE_TAINT) or has_taint(taints, NOT_READY_TAINT):
            await self.swap_node_taints(name, [], [UNREACHABLE_TAINT, NOT_READY_TAINT])
            self.log.info("node %s is healthy again: removed its NoExecute taints", name)
        tainter = self.tainters.get(zone_key(node))
        if tainter is not None:
            tainter.remove(name)

    async def do_no_execute_tainting_pass(self) -> None:
        for zone in list(self.zone_states):
            tainter = self.tainters.get(zone)
            if tainter is not None and len(tainter):
                await tainter.try_each(self._taint_one)

    async def _taint_one(self, name: str) -> tuple[bool, float]:
        node = self.nodes.store.get(name)
        if node is None:
            return True, 0.0
        ready = node_condition(node, "Ready")
        if ready is None:
            return True, 0.0
        if ready.get("status") == "False":
            add, opposite = NOT_READY_TAINT, UNREACHABLE_TAINT
        elif ready.get("status") == "Unknown":
            add, opposite = UNREACHABLE_TAINT, NOT_READY_TAINT
        else:
            return True, 0.0  # Ready again: nothing to taint
        try:
            ok = await self.swap_node_taints(name, [add], [opposite], node)
        except Exception as e:
            self.log.warning("tainting node %s failed: %s", name, e)
            return False, 0.05
        if ok:
            self.log.info("node %s: added taint %s:NoExecute", name, add["key"])
        return ok, 0.0

    # -- zones ---------------------------------------------------------------------------

    def _set_zone_limiter(self, zone: str, size: int, state: str) -> None:
        tainter = self._tainter(zone)
        if state == STATE_NORMAL or state == STATE_FULL:
            tainter.swap_limiter(self.eviction_qps)
        elif state == STATE_PARTIAL:
            tainter.swap_limiter(self.secondary_eviction_qps if size > self.large_cluster_threshold else 0.0)

    async def handle_disruption(self, zone_conditions: dict[str, list[Obj | None]], nodes: list[Obj]) -> None:
        new_states: dict[str, str] = {}
        all_fully_disrupted = True
        for zone, conds in zone_conditions.items():
            _, state = compute_zone_state(conds, self.unhealthy_zone_threshold)
            if state != STATE_FULL:
                all_fully_disrupted = False
            new_states[zone] = state
            self.zone_states.setdefault(zone, STATE_INITIAL)
        all_were_fully_disrupted = True
        for zone, state in list(self.zone_states.items()):
            if zone not in zone_conditions:
                del self.zone_states[zone]
                continue
            if state != STATE_FULL:
                all_were_fully_disrupted = False
                break
        if all_fully_disrupted and all_were_fully_disrupted:
            return
        if all_fully_disrupted:
            self.log.warning("every node is not Ready: entering master disruption mode (no evictions)")
            for node in nodes:
                try:
                    await self.mark_node_reachable(node)
                except Exception as e:
                    self.log.warning("removing taints from node %s failed: %s", node["metadata"]["name"], e)
            for zone in self.zone_states:
                self._tainter(zone).swap_limiter(0.0)
                self.zone_states[zone] = STATE_FULL
            return
        if all_were_fully_disrupted:
            self.log.info("some nodes are Ready again: leaving master disruption mode")
            now = self.clock.monotonic()
            for h in self.health.values():
                h.probe_time = h.ready_transition_time = now
            for zone in self.zone_states:
                self._set_zone_limiter(zone, len(zone_conditions.get(zone, [])), new_states[zone])
                self.zone_states[zone] = new_states[zone]
            return
        for zone, state in list(self.zone_states.items()):
            new = new_states[zone]
            if state == new:
                continue
            self.log.info("zone %r is now in state %s", zone, new)
            self._set_zone_limiter(zone, len(zone_conditions.get(zone, [])), new)
            self.zone_states[zone] = new
