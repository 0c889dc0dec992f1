"""The scheduling framework: plugins behind PreFilter / Filter / PreScore / Score / PostFilter.

A plugin is an object with a `name` and any of these methods (upstream's extension points):

    pre_filter(state, pod) -> Status | set[str] | None   # Skip, reject, or restrict to node names
    filter(state, pod, node) -> Status | None            # one node
    filter_nodes(state, pod, nodes, failed) -> list       # many nodes (optional fast path)
    add_pod(state, pod, other, node) / remove_pod(...)   # PreFilter extensions (preemption, nominated pods)
    pre_score(state, pod, nodes) -> Status | None         # Skip means: no score for this pod
    score_nodes(state, pod, nodes) -> list[int] | int     # raw scores, one per node; an int means every
                                                          # node gets this (already normalized) score
    normalize(state, pod, nodes, scores) -> None          # in place, to 0..100
    async post_filter(state, pod, statuses) -> (nominated node | None, Status | None)
    reserve(state, pod, node_name) -> Status | None       # the chosen node, right after the pod is assumed
    unreserve(state, pod, node_name) -> None              # undo reserve (a later step failed); idempotent
    async pre_bind(state, pod, node_name) -> Status | None # in the binding task, before POST pods/<name>/binding

Filters run per node in the configured order and a node's verdict is its first failing
plugin, exactly as upstream. For speed they are run *plugin-major* over a batch of nodes
(each plugin loops over the nodes the previous ones let through), which yields the same
per-node verdicts with far fewer Python calls. `events` lists the cluster events that may
make a pod this plugin rejected schedulable again (upstream EventsToRegister).

Reserve runs in the scheduling cycle once the pod is assumed on its node (a plugin records
what it decided, e.g. VolumeBinding assumes the PVs it chose so the next pods do not pick
them too); PreBind runs in the pod's binding task and may wait (VolumeBinding waits there
for its claims to be bound). A failing Reserve or PreBind — or binding — runs every
Unreserve (in reverse order), forgets the assumed pod and requeues it, as upstream.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from scheduler.nodeinfo import NodeInfo
from scheduler.podinfo import PodInfo
from scheduler.status import ERROR, SKIP, UNSCHEDULABLE, UNSCHEDULABLE_AND_UNRESOLVABLE, Status, is_success

if TYPE_CHECKING:
    from scheduler.cache import SchedulerCache
    from scheduler.queue import SchedulingQueue

# Cluster-event resources and action bits (upstream framework.ActionType).
POD = "Pod"
NODE = "Node"
NAMESPACE = "Namespace"
PERSISTENT_VOLUME_CLAIM = "PersistentVolumeClaim"
PERSISTENT_VOLUME = "PersistentVolume"
STORAGE_CLASS = "StorageClass"
ADD = 1
DELETE = 2
UPDATE_NODE_ALLOCATABLE = 4
UPDATE_NODE_LABEL = 8
UPDATE_NODE_TAINT = 16
UPDATE_NODE_CONDITION = 32
UPDATE = UPDATE_NODE_ALLOCATABLE | UPDATE_NODE_LABEL | UPDATE_NODE_TAINT | UPDATE_NODE_CONDITION
ALL = 63
WILDCARD = "*"

ClusterEvent = tuple[str, int, str]  # (resource, action bits, label)

NODE_ADD: ClusterEvent = (NODE, ADD, "NodeAdd")
NODE_SPEC_UNSCHEDULABLE_CHANGE: ClusterEvent = (NODE, UPDATE_NODE_TAINT, "NodeSpecUnschedulableChange")
NODE_ALLOCATABLE_CHANGE: ClusterEvent = (NODE, UPDATE_NODE_ALLOCATABLE, "NodeAllocatableChange")
NODE_LABEL_CHANGE: ClusterEvent = (NODE, UPDATE_NODE_LABEL, "NodeLabelChange")
NODE_TAINT_CHANGE: ClusterEvent = (NODE, UPDATE_NODE_TAINT, "NodeTaintChange")
NODE_CONDITION_CHANGE: ClusterEvent = (NODE, UPDATE_NODE_CONDITION, "NodeConditionChange")
ASSIGNED_POD_ADD: ClusterEvent = (POD, ADD, "AssignedPodAdd")
ASSIGNED_POD_UPDATE: ClusterEvent = (POD, UPDATE, "AssignedPodUpdate")
ASSIGNED_POD_DELETE: ClusterEvent = (POD, DELETE, "AssignedPodDelete")
NAMESPACE_EVENT: ClusterEvent = (NAMESPACE, ADD | UPDATE, "NamespaceChange")
PVC_ADD: ClusterEvent = (PERSISTENT_VOLUME_CLAIM, ADD, "PvcAdd")
PVC_UPDATE: ClusterEvent = (PERSISTENT_VOLUME_CLAIM, UPDATE, "PvcUpdate")
PV_ADD: ClusterEvent = (PERSISTENT_VOLUME, ADD, "PvAdd")
PV_UPDATE: ClusterEvent = (PERSISTENT_VOLUME, UPDATE, "PvUpdate")
STORAGE_CLASS_ADD: ClusterEvent = (STORAGE_CLASS, ADD, "StorageClassAdd")
STORAGE_CLASS_UPDATE: ClusterEvent = (STORAGE_CLASS, UPDATE, "StorageClassUpdate")
UNSCHEDULABLE_TIMEOUT: ClusterEvent = (WILDCARD, ALL, "UnschedulableTimeout")
FORCE_ACTIVATE: ClusterEvent = (WILDCARD, ALL, "ForceActivate")


class CycleState:
    """Per-scheduling-cycle data: plugin states and which plugins skip Filter / Score."""

    __slots__ = ("data", "skip_filter", "skip_score")

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}
        self.skip_filter: set[str] = set()
        self.skip_score: set[str] = set()

    def clone(self) -> CycleState:
        c = CycleState()
        c.data = {k: (v.clone() if hasattr(v, "clone") else v) for k, v in self.data.items()}
        c.skip_filter = set(self.skip_filter)
        c.skip_score = set(self.skip_score)
        return c


class ChangeNotifier:
    """Wakes coroutines waiting for "something in the informer stores changed".

    The informer event handlers call `notify()`; a waiter checks its condition against the
    stores and, if unmet, awaits `wait(timeout)` — with no await between the check and the
    wait, no change can slip through unseen (one event loop)."""

    __slots__ = ("_waiters",)

    def __init__(self) -> None:
        self._waiters: set[asyncio.Future[None]] = set()

    def notify(self) -> None:
        if self._waiters:
            waiters, self._waiters = self._waiters, set()
            for f in waiters:
                if not f.done():
                    f.set_result(None)

    async def wait(self, timeout: float | None = None) -> bool:
        """Until the next notify (True) or `timeout` seconds (False)."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.add(fut)
        try:
            done, _ = await asyncio.wait({fut}, timeout=timeout)
            return bool(done)
        finally:
            self._waiters.discard(fut)
            if not fut.done():
                fut.cancel()

    @property
    def waiting(self) -> int:
        return len(self._waiters)


class Handle:
    """What plugins may reach: the cache, the nominator (queue) and the informer stores.

    `stores` maps a short name ("namespaces", "pdbs", "services", "replicasets",
    "statefulsets", "replicationcontrollers", "pods", "nodes", "pvcs", "pvs",
    "storageclasses") to an informer Store (or None). `changes` is notified on every
    PVC/PV/StorageClass change, pod deletion and node change. `plugin_args` holds per-plugin
    settings by plugin name (upstream's pluginConfig args), e.g.
    {"VolumeBinding": {"bind_timeout_seconds": 600}}.
    """

    def __init__(self, cache: SchedulerCache, queue: SchedulingQueue | None = None) -> None:
        self.cache = cache
        self.queue = queue
        self.stores: dict[str, Any] = {}
        self.api: Any = None
        self.events: Any = None
        self.scheduler_name = "default-scheduler"
        self.framework: Framework | None = None
        self.metrics: Any = None  # SchedulerMetrics (preemption counters)
        self.changes = ChangeNotifier()
        self.plugin_args: dict[str, dict[str, Any]] = {}

    def store(self, name: str) -> Any:
        return self.stores.get(name)

    def lookup(self, store_name: str, key: str) -> dict[str, Any] | None:
        """The informer's object under `key` ("<ns>/<name>" or "<name>"); None when it is not
        there or the resource is not served (no such store)."""
        store = self.stores.get(store_name)
        return store.get(key) if store is not None else None

    def namespace_labels(self, namespace: str) -> dict[str, str]:
        ns = self.lookup("namespaces", namespace)
        return ((ns or {}).get("metadata") or {}).get("labels") or {}


class Plugin:
    """Base for plugins: a name, the cluster events that can resolve its rejections."""

    name = ""
    events: tuple[tuple[str, int], ...] = ()

    def __init__(self, handle: Handle) -> None:
        self.handle = handle

    # A default batch filter for plugins that only implement `filter`.
    def filter_nodes(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo],
                     failed: dict[str, Status]) -> list[NodeInfo]:
        f = self.filter  # type: ignore[attr-defined]
        out = []
        for ni in nodes:
            st = f(state, pod, ni)
            if st is None:
                out.append(ni)
            else:
                failed[ni.name] = st
        return out

    def score_nodes(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo]) -> list[int]:
        f = self.score  # type: ignore[attr-defined]
        return [f(state, pod, ni) for ni in nodes]


MEMO_LIMIT = 32  # results kept per node (distinct pod requests) before the memo starts over


def memoized_scores(nodes: list[NodeInfo], key: tuple, compute: Callable[[NodeInfo], int]) -> list[int]:
    """compute(node) for each node, reusing results memoized on nodes that did not change since."""
    out = [ni.memo.get(key) for ni in nodes]
    if None in out:
        for i, v in enumerate(out):
            if v is None:
                ni = nodes[i]
                v = out[i] = compute(ni)
                memo = ni.memo
                if len(memo) >= MEMO_LIMIT:
                    memo.clear()
                memo[key] = v
    return out  # type: ignore[return-value]


def default_normalize(scores: list[int], reverse: bool = False, max_priority: int = 100) -> None:
    """Upstream helper.DefaultNormalizeScore: scale to 0..max by the maximum (optionally reversed)."""
    max_count = max(scores, default=0)
    if max_count <= 0:
        if reverse:
            for i in range(len(scores)):
                scores[i] = max_priority
        return
    for i, s in enumerate(scores):
        s = max_priority * s // max_count
        scores[i] = max_priority - s if reverse else s


def _has(pl: object, method: str) -> bool:
    """The plugin overrides `method` (not just inherits Plugin's generic helper)."""
    fn = getattr(type(pl), method, None)
    return fn is not None and fn is not getattr(Plugin, method, None)


class Framework:
    """One profile's plugins, in upstream's order, with score weights."""

    def __init__(self, handle: Handle, plugins: Sequence[Plugin], weights: dict[str, int]) -> None:
        self.handle = handle
        handle.framework = self
        self.plugins = list(plugins)
        self.pre_filter_plugins = [p for p in plugins if _has(p, "pre_filter")]
        self.filter_plugins = [p for p in plugins if _has(p, "filter")]
        self.ext_plugins = [p for p in plugins if _has(p, "add_pod")]
        self.pre_score_plugins = [p for p in plugins if _has(p, "pre_score")]
        self.score_plugins = [(p, weights.get(p.name, 1)) for p in plugins
                              if _has(p, "score") or _has(p, "score_nodes")]
        self.post_filter_plugins = [p for p in plugins if _has(p, "post_filter")]
        self.reserve_plugins = [p for p in plugins if _has(p, "reserve")]
        self.pre_bind_plugins = [p for p in plugins if _has(p, "pre_bind")]
        self.weights = dict(weights)
        # plugin name → the event kinds that may resolve its rejections
        self.cluster_events: dict[str, tuple[tuple[str, int], ...]] = {p.name: p.events for p in plugins}

    def plugin(self, name: str) -> Plugin | None:
        for p in self.plugins:
            if p.name == name:
                return p
        return None

    # -- PreFilter ---------------------------------------------------------------------

    def run_pre_filter(self, state: CycleState, pod: PodInfo) -> tuple[set[str] | None, Status | None]:
        """Returns (node names to restrict to or None for all, failure status or None)."""
        names: set[str] | None = None
        restricting: list[str] = []
        for pl in self.pre_filter_plugins:
            r = pl.pre_filter(state, pod)  # type: ignore[attr-defined]
            if r is None:
                continue
            if isinstance(r, Status):
                if r.code == SKIP:
                    state.skip_filter.add(pl.name)
                    continue
                return None, r.with_plugin(pl.name)
            restricting.append(pl.name)
            names = set(r) if names is None else names & r
            if not names:
                msg = f"node(s) didn't satisfy plugin(s) [{' '.join(restricting)}] simultaneously"
                if len(restricting) == 1:
                    msg = f"node(s) didn't satisfy plugin {restricting[0]}"
                return None, Status(UNSCHEDULABLE, msg, plugin=pl.name)
        return names, None

    def run_pre_filter_add_pod(self, state: CycleState, pod: PodInfo, other: PodInfo, ni: NodeInfo) -> None:
        for pl in self.ext_plugins:
            if pl.name not in state.skip_filter:
                pl.add_pod(state, pod, other, ni)  # type: ignore[attr-defined]

    def run_pre_filter_remove_pod(self, state: CycleState, pod: PodInfo, other: PodInfo, ni: NodeInfo) -> None:
        for pl in self.ext_plugins:
            if pl.name not in state.skip_filter:
                pl.remove_pod(state, pod, other, ni)  # type: ignore[attr-defined]

    # -- Filter ------------------------------------------------------------------------

    def run_filter(self, state: CycleState, pod: PodInfo, ni: NodeInfo) -> Status | None:
        """All filters on one node; the first failure wins."""
        skip = state.skip_filter
        for pl in self.filter_plugins:
            if pl.name in skip:
                continue
            st = pl.filter(state, pod, ni)  # type: ignore[attr-defined]
            if st is not None and st.code != 0:
                return st if st.plugin else st.with_plugin(pl.name)
        return None

    def filter_batch(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo],
                     failed: dict[str, Status]) -> list[NodeInfo]:
        """The nodes of `nodes` passing every filter; failures (first failing plugin) go to `failed`."""
        skip = state.skip_filter
        for pl in self.filter_plugins:
            if not nodes:
                break
            if pl.name in skip:
                continue
            nodes = pl.filter_nodes(state, pod, nodes, failed)
        return nodes

    def add_nominated_pods(self, state: CycleState, pod: PodInfo,
                           ni: NodeInfo) -> tuple[bool, CycleState, NodeInfo]:
        """Clone node and state with the pods nominated to this node of priority >= pod's (upstream addNominatedPods)."""
        queue = self.handle.queue
        nominated = queue.nominated_pods_for_node(ni.name) if queue is not None else ()
        if not nominated:
            return False, state, ni
        added = False
        state_out, ni_out = state, ni
        for npi in nominated:
            if npi.priority >= pod.priority and npi.uid != pod.uid:
                if not added:
                    state_out, ni_out = state.clone(), ni.clone()
                    added = True
                placed = npi.with_node(ni.name)
                ni_out.add_pod(placed)
                self.run_pre_filter_add_pod(state_out, pod, placed, ni_out)
        return added, state_out, ni_out

    def run_filter_with_nominated_pods(self, state: CycleState, pod: PodInfo, ni: NodeInfo) -> Status | None:
        """Filters with the higher-or-equal priority nominated pods counted, then without them."""
        added, state2, ni2 = self.add_nominated_pods(state, pod, ni)
        st = self.run_filter(state2, pod, ni2)
        if not added or st is not None:
            return st
        return self.run_filter(state, pod, ni)

    # -- Score -------------------------------------------------------------------------

    def run_pre_score(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo]) -> Status | None:
        for pl in self.pre_score_plugins:
            st = pl.pre_score(state, pod, nodes)  # type: ignore[attr-defined]
            if st is None:
                continue
            if st.code == SKIP:
                state.skip_score.add(pl.name)
                continue
            return st.with_plugin(pl.name)
        return None

    def run_score(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo],
                  per_plugin: dict[str, list[int]] | None = None) -> list[int]:
        """Weighted sums of the normalized plugin scores, one per node."""
        skip = state.skip_score
        parts: list[list[int]] = []
        offset = 0  # scores every node gets alike
        for pl, weight in self.score_plugins:
            if pl.name in skip:
                continue
            scores = pl.score_nodes(state, pod, nodes)
            if isinstance(scores, int):
                offset += weight * scores
                if per_plugin is not None:
                    per_plugin[pl.name] = [scores] * len(nodes)
                continue
            normalize: Callable[..., None] | None = getattr(pl, "normalize", None)
            if normalize is not None:
                normalize(state, pod, nodes, scores)
            if per_plugin is not None:
                per_plugin[pl.name] = list(scores)
            parts.append(scores if weight == 1 else [weight * s for s in scores])
        if not parts:
            return [offset] * len(nodes)
        if len(parts) == 1:
            return [s + offset for s in parts[0]] if offset else parts[0]
        if len(parts) == 2:
            return [a + b + offset for a, b in zip(parts[0], parts[1], strict=True)]
        totals = list(map(sum, zip(*parts, strict=True)))
        return [t + offset for t in totals] if offset else totals

    # -- PostFilter --------------------------------------------------------------------

    async def run_post_filter(self, state: CycleState, pod: PodInfo,
                              statuses: dict[str, Status]) -> tuple[str | None, Status | None]:
        """(nominated node name, or "" to clear it, or None for no change; the status)."""
        reasons: list[str] = []
        nominated: str | None = None
        first_plugin = ""
        for pl in self.post_filter_plugins:
            node, st = await pl.post_filter(state, pod, statuses)  # type: ignore[attr-defined]
            if is_success(st):
                return node, None
            assert st is not None
            if st.code == UNSCHEDULABLE_AND_UNRESOLVABLE:
                return node, st.with_plugin(pl.name)
            if st.code == ERROR:
                return None, st.with_plugin(pl.name)
            if node is not None:
                nominated = node
            reasons.extend(st.reasons)
            first_plugin = first_plugin or pl.name
        if not self.post_filter_plugins:
            return None, None
        return nominated, Status(UNSCHEDULABLE, *reasons, plugin=first_plugin)

    # -- Reserve / PreBind -------------------------------------------------------------

    def run_reserve(self, state: CycleState, pod: PodInfo, node_name: str) -> Status | None:
        """Reserve of every plugin in order; the first failure (with its plugin) stops it."""
        for pl in self.reserve_plugins:
            st = pl.reserve(state, pod, node_name)  # type: ignore[attr-defined]
            if not is_success(st):
                assert st is not None
                if st.is_unschedulable():
                    return st.with_plugin(pl.name)
                return Status(ERROR, f'running Reserve plugin "{pl.name}": {st.message}', plugin=pl.name)
        return None

    def run_unreserve(self, state: CycleState, pod: PodInfo, node_name: str) -> None:
        """Unreserve of every Reserve plugin, in reverse order (each must tolerate an unreserved pod)."""
        for pl in reversed(self.reserve_plugins):
            unreserve = getattr(pl, "unreserve", None)
            if unreserve is not None:
                unreserve(state, pod, node_name)

    async def run_pre_bind(self, state: CycleState, pod: PodInfo, node_name: str) -> Status | None:
        """PreBind of every plugin in order; a rejection keeps its code, anything else becomes an
        Error "running PreBind plugin "<name>": <message>" (upstream RunPreBindPlugins)."""
        for pl in self.pre_bind_plugins:
            st = await pl.pre_bind(state, pod, node_name)  # type: ignore[attr-defined]
            if not is_success(st):
                assert st is not None
                if st.is_unschedulable():
                    return st.with_plugin(pl.name)
                return Status(ERROR, f'running PreBind plugin "{pl.name}": {st.message}', plugin=pl.name)
        return None
