"""One pod's placement decision: filter the nodes, score the feasible ones, pick the best.

Upstream's schedule_one.go (schedulePod, findNodesThatFitPod, findNodesThatPassFilters,
numFeasibleNodesToFind, prioritizeNodes, selectHost):
- a pod with a nominated node (an earlier preemption) tries that node first;
- nodes are scanned round-robin from where the previous cycle stopped, and the scan stops
  once `numFeasibleNodesToFind` feasible nodes are found: all nodes below 100, otherwise
  percentageOfNodesToScore % of them (adaptive default: 50 - nodes/125, at least 5 %),
  but at least 100;
- a single feasible node is taken without scoring; otherwise the weighted plugin scores are
  summed and the highest total wins, ties broken uniformly at random.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from scheduler.cache import SchedulerCache
from scheduler.framework import CycleState, Framework
from scheduler.nodeinfo import NodeInfo
from scheduler.podinfo import PodInfo
from scheduler.status import ERROR, NO_NODES_AVAILABLE, Diagnosis, FitError, Status

MIN_FEASIBLE_NODES_TO_FIND = 100
MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND = 5
MIN_CHUNK = 16  # nodes filtered per batch at least (upstream checks 16 nodes in parallel)


class NoNodesAvailable(Exception):
    def __str__(self) -> str:
        return NO_NODES_AVAILABLE


class SchedulingError(Exception):
    """A plugin failed (Error status): not the pod's fault."""


@dataclass
class ScheduleResult:
    host: str
    evaluated_nodes: int
    feasible_nodes: int


def num_feasible_nodes_to_find(percentage: int, num_all_nodes: int) -> int:
    """How many feasible nodes are enough (upstream numFeasibleNodesToFind)."""
    if num_all_nodes < MIN_FEASIBLE_NODES_TO_FIND:
        return num_all_nodes
    if percentage == 0:
        percentage = 50 - num_all_nodes // 125
        if percentage < MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND:
            percentage = MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND
    n = num_all_nodes * percentage // 100
    return max(n, MIN_FEASIBLE_NODES_TO_FIND)


class Algorithm:
    def __init__(self, cache: SchedulerCache, percentage_of_nodes_to_score: int = 0,
                 rng: random.Random | None = None) -> None:
        self.cache = cache
        self.percentage = percentage_of_nodes_to_score
        self.next_start_node_index = 0
        self.rng = rng or random.Random()

    # -- filtering ---------------------------------------------------------------------

    def find_nodes_that_fit(self, fw: Framework, state: CycleState, pod: PodInfo,
                            all_nodes: list[NodeInfo]) -> tuple[list[NodeInfo], Diagnosis]:
        diagnosis = Diagnosis()
        names, st = fw.run_pre_filter(state, pod)
        if st is not None:
            if not st.is_unschedulable():
                raise SchedulingError(st.message)
            for ni in all_nodes:
                diagnosis.node_to_status[ni.name] = st
            diagnosis.pre_filter_msg = st.message
            if st.plugin:
                diagnosis.unschedulable_plugins.add(st.plugin)
            return [], diagnosis
        if pod.nominated_node_name:
            ni = self.cache.get(pod.nominated_node_name)
            if ni is not None:
                nst = fw.run_filter_with_nominated_pods(state, pod, ni)
                if nst is None:
                    return [ni], diagnosis
                self._check_error(nst)
                diagnosis.node_to_status[ni.name] = nst
        nodes = all_nodes
        if names is not None:
            nodes = [ni for ni in (self.cache.get(n) for n in sorted(names)) if ni is not None]
        feasible = self.find_nodes_that_pass_filters(fw, state, pod, diagnosis, nodes)
        return feasible, diagnosis

    @staticmethod
    def _check_error(st: Status) -> None:
        if st.code == ERROR:
            raise SchedulingError(st.message)

    def find_nodes_that_pass_filters(self, fw: Framework, state: CycleState, pod: PodInfo, diagnosis: Diagnosis,
                                     nodes: list[NodeInfo]) -> list[NodeInfo]:
        num_all = len(nodes)
        if num_all == 0:
            return []
        to_find = num_feasible_nodes_to_find(self.percentage, num_all)
        start = self.next_start_node_index % num_all
        ordered = nodes[start:] + nodes[:start] if start else nodes
        failed: dict[str, Status] = {}
        feasible: list[NodeInfo] = []
        queue = fw.handle.queue
        with_nominated = queue is not None and len(queue.nominator) > 0
        i = 0
        while len(feasible) < to_find and i < num_all:
            want = to_find - len(feasible)
            end = min(i + max(want, MIN_CHUNK), num_all)
            chunk = ordered[i:end]
            i = end
            if with_nominated:
                passed = []
                for ni in chunk:
                    st = fw.run_filter_with_nominated_pods(state, pod, ni)
                    if st is None:
                        passed.append(ni)
                    else:
                        failed[ni.name] = st
            else:
                passed = fw.filter_batch(state, pod, chunk, failed)
            if len(passed) >= want:
                # found enough: nodes after the last one kept count as not processed (as a sequential scan)
                passed = passed[:want]
                last = passed[-1]
                for ni in reversed(chunk):
                    if ni is last:
                        break
                    failed.pop(ni.name, None)
            feasible.extend(passed)
        for st in failed.values():
            self._check_error(st)
            if st.plugin:
                diagnosis.unschedulable_plugins.add(st.plugin)
        diagnosis.node_to_status.update(failed)
        self.next_start_node_index = (start + len(feasible) + len(failed)) % num_all
        return feasible

    # -- scoring -----------------------------------------------------------------------

    def select_host(self, nodes: list[NodeInfo], totals: list[int]) -> str:
        best = max(totals)
        tied = [i for i, t in enumerate(totals) if t == best]
        return nodes[tied[0] if len(tied) == 1 else self.rng.choice(tied)].name

    def schedule_pod(self, fw: Framework, state: CycleState, pod: PodInfo) -> ScheduleResult:
        """The chosen node; raises FitError (fits nowhere), NoNodesAvailable or SchedulingError."""
        all_nodes = self.cache.node_list()
        if not all_nodes:
            raise NoNodesAvailable()
        feasible, diagnosis = self.find_nodes_that_fit(fw, state, pod, all_nodes)
        if not feasible:
            raise FitError(pod.key, len(all_nodes), diagnosis)
        evaluated = len(feasible) + len(diagnosis.node_to_status)
        if len(feasible) == 1:
            return ScheduleResult(feasible[0].name, evaluated, 1)
        st = fw.run_pre_score(state, pod, feasible)
        if st is not None:
            raise SchedulingError(st.message)
        totals = fw.run_score(state, pod, feasible)
        return ScheduleResult(self.select_host(feasible, totals), evaluated, len(feasible))
