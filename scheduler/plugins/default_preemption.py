"""DefaultPreemption (PostFilter): when a pod fits nowhere, evict lower-priority pods on one node.

Upstream's preemption.Evaluator with the default plugin's choices:
1. the pod must be eligible (preemptionPolicy is not Never; no lower-priority pod of its
   nominated node is already terminating because of an earlier preemption);
2. only nodes that failed with Unschedulable (not ...AndUnresolvable) are candidates; from a
   random offset, simulate each: remove every lower-priority pod, check the pod fits, then
   add victims back from the most important down while it still fits (PDB-violating ones
   first), until max(10 % of the nodes, 100) candidates are found;
3. pick the node with the fewest PDB violations, then the lowest highest-victim priority,
   the lowest priority sum, the fewest victims, the latest start of its top victims;
4. mark the victims (DisruptionTarget condition), delete them gracefully, record
   `Preempted` events, clear lower-priority pods' nominations on that node, and nominate
   the node for the pod (status.nominatedNodeName).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
from collections.abc import Sequence
from typing import Any

from apimachinery.meta import now
from apimachinery.selectors import LabelSelectorError, selector_from_label_selector
from scheduler.framework import CycleState, Plugin
from scheduler.nodeinfo import NodeInfo
from scheduler.podinfo import PodInfo, more_important_pod
from scheduler.status import (
    ERROR,
    UNSCHEDULABLE,
    UNSCHEDULABLE_AND_UNRESOLVABLE,
    Status,
    statuses_message,
)

log = logging.getLogger("scheduler.preemption")

NAME = "DefaultPreemption"
NOT_HELPFUL = "Preemption is not helpful for scheduling"
NO_VICTIMS = "No preemption victims found for incoming pod"
NOT_ELIGIBLE_NEVER = "not eligible due to preemptionPolicy=Never."
NOT_ELIGIBLE_TERMINATING = "not eligible due to a terminating pod on the nominated node."
MIN_CANDIDATE_NODES_PERCENTAGE = 10
MIN_CANDIDATE_NODES_ABSOLUTE = 100
DISRUPTION_TARGET = "DisruptionTarget"
PREEMPTION_BY_SCHEDULER = "PreemptionByScheduler"


class Candidate:
    __slots__ = ("name", "num_pdb_violations", "victims")

    def __init__(self, name: str, victims: list[PodInfo], num_pdb_violations: int) -> None:
        self.name = name
        self.victims = victims
        self.num_pdb_violations = num_pdb_violations

    def __repr__(self) -> str:
        return f"Candidate({self.name}, victims={[v.key for v in self.victims]}, pdb={self.num_pdb_violations})"


def calculate_num_candidates(num_nodes: int, percentage: int = MIN_CANDIDATE_NODES_PERCENTAGE,
                             absolute: int = MIN_CANDIDATE_NODES_ABSOLUTE) -> int:
    n = num_nodes * percentage // 100
    return min(max(n, absolute), num_nodes)


def _by_importance(a: PodInfo, b: PodInfo) -> int:
    if more_important_pod(a, b):
        return -1
    if more_important_pod(b, a):
        return 1
    return 0


def sort_by_importance(pods: list[PodInfo]) -> None:
    pods.sort(key=functools.cmp_to_key(_by_importance))


def filter_pods_with_pdb_violation(pods: Sequence[PodInfo],
                                   pdbs: Sequence[dict[str, Any]]) -> tuple[list[PodInfo], list[PodInfo]]:
    """Split (keeping order) into the pods whose eviction would violate a PDB and the rest."""
    allowed = [int(((p.get("status") or {}).get("disruptionsAllowed")) or 0) for p in pdbs]
    selectors = []
    for p in pdbs:
        try:
            selectors.append(selector_from_label_selector((p.get("spec") or {}).get("selector")))
        except LabelSelectorError:
            selectors.append(None)
    violating, ok = [], []
    for pi in pods:
        violated = False
        if pi.labels:
            for i, pdb in enumerate(pdbs):
                sel = selectors[i]
                if (pdb.get("metadata") or {}).get("namespace") != pi.namespace or sel is None:
                    continue
                if sel.empty or sel.matches_nothing or not sel.matches(pi.labels):
                    continue  # a nil or empty selector matches nothing
                if pi.name in ((pdb.get("status") or {}).get("disruptedPods") or {}):
                    continue  # already processed by the apiserver
                allowed[i] -= 1
                if allowed[i] < 0:
                    violated = True
        (violating if violated else ok).append(pi)
    return violating, ok


def _earliest_start_of_top_victims(victims: list[PodInfo]) -> str:
    top = max(v.priority for v in victims)
    now_ts = now()
    return min((v.start_time or now_ts) for v in victims if v.priority == top)


def pick_one_node(candidates: Sequence[Candidate]) -> Candidate:
    """Upstream pickOneNodeForPreemption, criteria in order; candidates keep their order on ties."""
    for c in candidates:
        if not c.victims:
            return c  # a node that needs no preemption at all
    pool = list(candidates)

    def keep_min(key: Any) -> None:
        nonlocal pool
        best = min(key(c) for c in pool)
        pool = [c for c in pool if key(c) == best]

    keep_min(lambda c: c.num_pdb_violations)
    if len(pool) > 1:
        keep_min(lambda c: c.victims[0].priority)
    if len(pool) > 1:
        keep_min(lambda c: sum(v.priority + 2**31 for v in c.victims))
    if len(pool) > 1:
        keep_min(lambda c: len(c.victims))
    if len(pool) > 1:
        latest = pool[0]
        latest_ts = _earliest_start_of_top_victims(latest.victims)
        for c in pool[1:]:
            ts = _earliest_start_of_top_victims(c.victims)
            if ts > latest_ts:
                latest, latest_ts = c, ts
        return latest
    return pool[0]


def terminating_by_preemption(pi: PodInfo) -> bool:
    if not pi.deleting:
        return False
    for c in (pi.pod.get("status") or {}).get("conditions") or ():
        if c.get("type") == DISRUPTION_TARGET and c.get("reason") == PREEMPTION_BY_SCHEDULER \
                and c.get("status") == "True":
            return True
    return False


class DefaultPreemption(Plugin):
    name = NAME

    def __init__(self, handle: Any, rng: random.Random | None = None) -> None:
        super().__init__(handle)
        self.rng = rng or random.Random()

    # -- eligibility -------------------------------------------------------------------

    def eligible(self, pod: PodInfo, nominated_status: Status | None) -> tuple[bool, str]:
        if pod.preemption_policy == "Never":
            return False, NOT_ELIGIBLE_NEVER
        nominated = pod.nominated_node_name
        if nominated:
            if nominated_status is not None and nominated_status.code == UNSCHEDULABLE_AND_UNRESOLVABLE:
                return True, ""
            ni = self.handle.cache.get(nominated)
            if ni is not None:
                for p in ni.pods.values():
                    if p.priority < pod.priority and terminating_by_preemption(p):
                        return False, NOT_ELIGIBLE_TERMINATING
        return True, ""

    # -- the dry run -------------------------------------------------------------------

    def select_victims_on_node(self, state: CycleState, pod: PodInfo, ni: NodeInfo,
                               pdbs: Sequence[dict[str, Any]]) -> tuple[list[PodInfo], int, Status | None]:
        fw = self.handle.framework
        potential = [p for p in ni.pods.values() if p.priority < pod.priority]
        if not potential:
            return [], 0, Status(UNSCHEDULABLE_AND_UNRESOLVABLE, NO_VICTIMS, plugin=NAME)
        for p in potential:
            ni.remove_pod(p)
            fw.run_pre_filter_remove_pod(state, pod, p, ni)
        st = fw.run_filter_with_nominated_pods(state, pod, ni)
        if st is not None:
            return [], 0, st
        sort_by_importance(potential)
        violating, non_violating = filter_pods_with_pdb_violation(potential, pdbs)
        victims: list[PodInfo] = []

        def reprieve(p: PodInfo) -> bool:
            ni.add_pod(p)
            fw.run_pre_filter_add_pod(state, pod, p, ni)
            if fw.run_filter_with_nominated_pods(state, pod, ni) is None:
                return True
            ni.remove_pod(p)
            fw.run_pre_filter_remove_pod(state, pod, p, ni)
            victims.append(p)
            return False

        num_violating = 0
        for p in violating:
            if not reprieve(p):
                num_violating += 1
        for p in non_violating:
            reprieve(p)
        if violating and non_violating:
            sort_by_importance(victims)
        return victims, num_violating, None

    def find_candidates(self, state: CycleState, pod: PodInfo,
                        statuses: dict[str, Status]) -> tuple[list[Candidate], dict[str, Status]]:
        all_nodes = self.handle.cache.node_list()
        node_statuses: dict[str, Status] = {}
        potential = []
        for ni in all_nodes:
            st = statuses.get(ni.name)
            if st is not None and st.code == UNSCHEDULABLE_AND_UNRESOLVABLE:
                node_statuses[ni.name] = Status(UNSCHEDULABLE_AND_UNRESOLVABLE, NOT_HELPFUL, plugin=NAME)
            else:
                potential.append(ni)
        if not potential:
            return [], node_statuses
        pdb_store = self.handle.store("pdbs")
        pdbs = pdb_store.list() if pdb_store is not None else []
        n = len(potential)
        offset = self.rng.randrange(n)
        wanted = calculate_num_candidates(n)
        non_violating: list[Candidate] = []
        violating: list[Candidate] = []
        for i in range(n):
            ni = potential[(offset + i) % n]
            victims, num_violating, st = self.select_victims_on_node(state.clone(), pod, ni.clone(), pdbs)
            if st is None:
                c = Candidate(ni.name, victims, num_violating)
                (non_violating if num_violating == 0 else violating).append(c)
                if non_violating and len(non_violating) + len(violating) >= wanted:
                    break
            else:
                node_statuses[ni.name] = st
        return non_violating[:wanted] + violating[:wanted], node_statuses

    # -- PostFilter --------------------------------------------------------------------

    async def post_filter(self, state: CycleState, pod: PodInfo,
                          statuses: dict[str, Status]) -> tuple[str | None, Status | None]:
        h = self.handle
        if h.metrics is not None:
            h.metrics.preemption_attempts.inc()
        pods = h.store("pods")
        if pods is not None:
            latest = pods.get(pod.key)
            if latest is None:
                return None, Status(ERROR, f"pod {pod.key} not found")
            if latest is not pod.pod:
                pod = PodInfo(latest)
        ok, msg = self.eligible(pod, statuses.get(pod.nominated_node_name))
        if not ok:
            return None, Status(UNSCHEDULABLE, f"preemption: {msg}")
        if not h.cache.node_list():
            return None, Status(ERROR, "no nodes available")
        candidates, node_statuses = self.find_candidates(state, pod, statuses)
        if not candidates:
            message = statuses_message(len(node_statuses), node_statuses)
            return "", Status(UNSCHEDULABLE, f"preemption: {message}")
        best = pick_one_node(candidates)
        await self.prepare_candidate(best, pod)
        return best.name, None

    async def prepare_candidate(self, c: Candidate, pod: PodInfo) -> None:
        h = self.handle
        pods_api = h.api.resource("v1", "pods") if h.api is not None else None

        async def evict(v: PodInfo) -> None:
            if pods_api is None:
                return
            cond = {"type": DISRUPTION_TARGET, "status": "True", "reason": PREEMPTION_BY_SCHEDULER,
                    "message": f"{pod.scheduler_name}: preempting to accommodate a higher priority pod",
                    "lastTransitionTime": now()}
            try:
                await pods_api.patch(v.name, {"status": {"conditions": [cond]}}, v.namespace, "strategic",
                                     subresource="status")
                await pods_api.delete(v.name, v.namespace)
            except Exception as e:
                if getattr(e, "code", None) != 404:
                    log.warning("preempting pod %s: %s", v.key, e)
                    return
            if h.events is not None:
                h.events.event(v.pod, "Normal", "Preempted",
                               f"Preempted by pod {pod.uid} on node {c.name}", "Preempting")

        await asyncio.gather(*(evict(v) for v in c.victims))
        if h.metrics is not None:
            h.metrics.preemption_victims.observe(len(c.victims))
        # lower-priority pods nominated to this node may not fit any more: let them look again
        if h.queue is not None and pods_api is not None:
            for npi in h.queue.nominated_pods_for_node(c.name):
                if npi.priority < pod.priority:
                    try:
                        await pods_api.patch(npi.name, {"status": {"nominatedNodeName": None}}, npi.namespace,
                                             "merge", subresource="status")
                    except Exception as e:
                        log.warning("clearing the nominated node of %s: %s", npi.key, e)
