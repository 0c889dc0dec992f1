"""PodTopologySpread: keep matching pods evenly spread over topology domains.

Hard constraints (whenUnsatisfiable: DoNotSchedule) filter: placing the pod in a domain
must keep `matching pods there + self - global minimum <= maxSkew` (the minimum is 0 while
fewer than minDomains domains exist); a node without a constraint's topology label is
rejected outright. Soft constraints (ScheduleAnyway) score: fewer matching pods in the
node's domains is better, each constraint weighted by log(number of domains + 2).

Pods without constraints get the system defaults (hostname maxSkew 3, zone maxSkew 5, both
ScheduleAnyway) with a selector built from the Services, ReplicationControllers,
ReplicaSets and StatefulSets that own or select the pod. nodeAffinityPolicy (default
Honor) and nodeTaintsPolicy (default Ignore) decide which nodes count; matchLabelKeys add
the pod's own label values to the selector.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from apimachinery.nodeaffinity import RequiredNodeAffinity
from apimachinery.selectors import (
    LabelSelector,
    LabelSelectorError,
    Requirement,
    selector_from_label_selector,
    selector_from_set,
)
from apimachinery.taints import do_not_schedule, find_untolerated_taint
from scheduler.framework import ADD, ALL, DELETE, NODE, POD, UPDATE_NODE_LABEL, CycleState, Plugin
from scheduler.nodeinfo import HOSTNAME_LABEL, ZONE_LABEL, NodeInfo
from scheduler.podinfo import PodInfo
from scheduler.status import ERROR, SKIP, UNSCHEDULABLE, UNSCHEDULABLE_AND_UNRESOLVABLE, Status

NAME = "PodTopologySpread"
REASON_CONSTRAINTS = "node(s) didn't match pod topology spread constraints"
REASON_LABEL = REASON_CONSTRAINTS + " (missing required label)"
_LABEL_MISSING = Status(UNSCHEDULABLE_AND_UNRESOLVABLE, REASON_LABEL, plugin=NAME)
_SKEW = Status(UNSCHEDULABLE, REASON_CONSTRAINTS, plugin=NAME)
_PRESCORE_KEY = "PreScore" + NAME

DO_NOT_SCHEDULE = "DoNotSchedule"
SCHEDULE_ANYWAY = "ScheduleAnyway"
HONOR = "Honor"
IGNORE = "Ignore"

SYSTEM_DEFAULT_CONSTRAINTS: tuple[dict[str, Any], ...] = (
    {"topologyKey": HOSTNAME_LABEL, "whenUnsatisfiable": SCHEDULE_ANYWAY, "maxSkew": 3},
    {"topologyKey": ZONE_LABEL, "whenUnsatisfiable": SCHEDULE_ANYWAY, "maxSkew": 5},
)


class Constraint:
    __slots__ = ("max_skew", "min_domains", "node_affinity_policy", "node_taints_policy", "selector", "topology_key")

    def __init__(self, max_skew: int, topology_key: str, selector: LabelSelector, min_domains: int = 1,
                 node_affinity_policy: str = HONOR, node_taints_policy: str = IGNORE) -> None:
        self.max_skew = max_skew
        self.topology_key = topology_key
        self.selector = selector
        self.min_domains = min_domains
        self.node_affinity_policy = node_affinity_policy
        self.node_taints_policy = node_taints_policy

    def includes_node(self, pod: PodInfo, ni: NodeInfo, required: RequiredNodeAffinity) -> bool:
        """Upstream matchNodeInclusionPolicies: which nodes' domains count for this constraint."""
        if self.node_affinity_policy == HONOR and not required.matches(ni.labels, ni.name):
            return False
        if self.node_taints_policy == HONOR and ni.taints:
            if find_untolerated_taint(ni.taints, pod.tolerations, do_not_schedule) is not None:
                return False
        return True


def parse_constraints(raw: Iterable[Mapping[str, Any]], pod_labels: Mapping[str, str],
                      action: str) -> list[Constraint]:
    """The constraints with `whenUnsatisfiable == action` (upstream filterTopologySpreadConstraints)."""
    out = []
    for c in raw:
        if c.get("whenUnsatisfiable") != action:
            continue
        selector = selector_from_label_selector(c.get("labelSelector"))
        keys = c.get("matchLabelKeys") or []
        extra = {k: pod_labels[k] for k in keys if k in pod_labels}
        if extra and not selector.matches_nothing:
            selector = LabelSelector([*selector_from_set(extra).requirements, *selector.requirements])
        out.append(Constraint(
            int(c.get("maxSkew") or 1), c.get("topologyKey") or "", selector, int(c.get("minDomains") or 1),
            c.get("nodeAffinityPolicy") or HONOR, c.get("nodeTaintsPolicy") or IGNORE,
        ))
    return out


def count_pods_match_selector(pods: Iterable[PodInfo], selector: LabelSelector, namespace: str) -> int:
    if selector.empty:
        return 0
    n = 0
    for p in pods:
        if p.deleting or p.namespace != namespace:
            continue  # terminating pods do not count (upstream #87621)
        if selector.matches(p.labels):
            n += 1
    return n


def labels_have_keys(labels: Mapping[str, str], constraints: Sequence[Constraint]) -> bool:
    for c in constraints:
        if c.topology_key not in labels:
            return False
    return True


class _FilterState:
    """Matching-pod counts per (topologyKey, value) and the minimum per key."""

    __slots__ = ("constraints", "domains", "min_match", "tp_counts")

    def __init__(self, constraints: list[Constraint]) -> None:
        self.constraints = constraints
        self.tp_counts: dict[tuple[str, str], int] = {}
        self.domains: dict[str, int] = {}
        self.min_match: dict[str, int] = {}

    def recompute(self) -> None:
        mins: dict[str, int] = {}
        domains: dict[str, int] = {}
        for (key, _value), n in self.tp_counts.items():
            domains[key] = domains.get(key, 0) + 1
            cur = mins.get(key)
            if cur is None or n < cur:
                mins[key] = n
        self.min_match = mins
        self.domains = domains

    def min_match_num(self, c: Constraint) -> int | None:
        m = self.min_match.get(c.topology_key)
        if m is None:
            return None
        if self.domains.get(c.topology_key, 0) < c.min_domains:
            return 0
        return m

    def clone(self) -> _FilterState:
        s = _FilterState(self.constraints)
        s.tp_counts = dict(self.tp_counts)
        s.domains = dict(self.domains)
        s.min_match = dict(self.min_match)
        return s


class _ScoreState:
    __slots__ = ("constraints", "counts", "ignored", "weights")

    def __init__(self, constraints: list[Constraint]) -> None:
        self.constraints = constraints
        self.ignored: set[str] = set()
        self.counts: list[dict[str, int]] = [{} for _ in constraints]
        self.weights: list[float] = []


class PodTopologySpread(Plugin):
    name = NAME
    events = ((POD, ALL), (NODE, ADD | DELETE | UPDATE_NODE_LABEL))
    system_defaulted = True

    # -- constraints -------------------------------------------------------------------

    def default_selector(self, pod: PodInfo) -> LabelSelector:
        """Union of the selectors of the Services, RC, RS and StatefulSet of the pod (upstream DefaultSelector)."""
        h = self.handle
        label_set: dict[str, str] = {}
        services = h.store("services")
        if services is not None:
            for svc in services.by_index("namespace", pod.namespace):
                sel = (svc.get("spec") or {}).get("selector")
                if sel is None:
                    continue
                if selector_from_set(sel).matches(pod.labels):
                    label_set.update(sel)
        selector = selector_from_set(label_set)
        owner = next((r for r in (pod.pod.get("metadata") or {}).get("ownerReferences") or () if r.get("controller")),
                     None)
        if owner is None:
            return selector
        api_version, kind = owner.get("apiVersion") or "", owner.get("kind") or ""
        store_name = {("v1", "ReplicationController"): "replicationcontrollers",
                      ("apps/v1", "ReplicaSet"): "replicasets",
                      ("apps/v1", "StatefulSet"): "statefulsets"}.get((api_version, kind))
        store = h.store(store_name) if store_name else None
        if store is None:
            return selector
        owner_obj = store.get_by_name(pod.namespace, owner.get("name") or "")
        if owner_obj is None:
            return selector
        owner_sel = (owner_obj.get("spec") or {}).get("selector")
        if kind == "ReplicationController":
            label_set.update(owner_sel or {})
            return selector_from_set(label_set)
        try:
            other = selector_from_label_selector(owner_sel)
        except LabelSelectorError:
            return selector
        if other.matches_nothing:
            return selector
        reqs: list[Requirement] = [*selector.requirements, *other.requirements]
        return LabelSelector(reqs)

    def constraints(self, pod: PodInfo, action: str) -> list[Constraint]:
        raw = pod.spec.get("topologySpreadConstraints")
        if raw:
            return parse_constraints(raw, pod.labels, action)
        defaults = parse_constraints(SYSTEM_DEFAULT_CONSTRAINTS, pod.labels, action) if self.system_defaulted else []
        if not defaults:
            return []
        selector = self.default_selector(pod)
        if selector.empty:
            return []
        for c in defaults:
            c.selector = selector
        return defaults

    # -- PreFilter / Filter ------------------------------------------------------------

    def pre_filter(self, state: CycleState, pod: PodInfo) -> Status | None:
        try:
            constraints = self.constraints(pod, DO_NOT_SCHEDULE)
        except LabelSelectorError as e:
            return Status(ERROR, f"obtaining pod's hard topology spread constraints: {e}")
        if not constraints:
            return Status(SKIP)
        s = _FilterState(constraints)
        required = RequiredNodeAffinity(pod.spec)
        counts = s.tp_counts
        for ni in self.handle.cache.node_list():
            labels = ni.labels
            if not labels_have_keys(labels, constraints):
                continue
            for c in constraints:
                if not c.includes_node(pod, ni, required):
                    continue
                pair = (c.topology_key, labels[c.topology_key])
                counts[pair] = counts.get(pair, 0) + count_pods_match_selector(ni.pods.values(), c.selector,
                                                                               pod.namespace)
        s.recompute()
        state.data[NAME] = s
        return None

    def _update(self, state: CycleState, pod: PodInfo, other: PodInfo, ni: NodeInfo, delta: int) -> None:
        s: _FilterState | None = state.data.get(NAME)
        if s is None or other.namespace != pod.namespace or ni.node is None:
            return
        if not labels_have_keys(ni.labels, s.constraints):
            return
        required = RequiredNodeAffinity(pod.spec)
        for c in s.constraints:
            if not c.selector.matches(other.labels) or not c.includes_node(pod, ni, required):
                continue
            pair = (c.topology_key, ni.labels[c.topology_key])
            s.tp_counts[pair] = s.tp_counts.get(pair, 0) + delta
        s.recompute()

    def add_pod(self, state: CycleState, pod: PodInfo, other: PodInfo, ni: NodeInfo) -> None:
        self._update(state, pod, other, ni, 1)

    def remove_pod(self, state: CycleState, pod: PodInfo, other: PodInfo, ni: NodeInfo) -> None:
        self._update(state, pod, other, ni, -1)

    def filter(self, state: CycleState, pod: PodInfo, ni: NodeInfo) -> Status | None:
        s: _FilterState | None = state.data.get(NAME)
        if s is None or not s.constraints:
            return None
        for c in s.constraints:
            value = ni.labels.get(c.topology_key)
            if value is None:
                return _LABEL_MISSING
            min_match = s.min_match_num(c)
            if min_match is None:
                continue
            self_match = 1 if c.selector.matches(pod.labels) else 0
            match_num = s.tp_counts.get((c.topology_key, value), 0)
            if match_num + self_match - min_match > c.max_skew:
                return _SKEW
        return None

    # -- PreScore / Score --------------------------------------------------------------

    def pre_score(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo]) -> Status | None:
        all_nodes = self.handle.cache.node_list()
        if not all_nodes:
            return Status(SKIP)
        try:
            constraints = self.constraints(pod, SCHEDULE_ANYWAY)
        except LabelSelectorError as e:
            return Status(ERROR, f"obtaining pod's soft topology spread constraints: {e}")
        if not constraints:
            return Status(SKIP)
        s = _ScoreState(constraints)
        require_all = bool(pod.spec.get("topologySpreadConstraints")) or not self.system_defaulted
        sizes = [0] * len(constraints)
        for ni in nodes:
            if require_all and not labels_have_keys(ni.labels, constraints):
                s.ignored.add(ni.name)
                continue
            for i, c in enumerate(constraints):
                if c.topology_key == HOSTNAME_LABEL:
                    continue  # counted per node at Score
                value = ni.labels.get(c.topology_key, "")
                if value not in s.counts[i]:
                    s.counts[i][value] = 0
                    sizes[i] += 1
        for i, c in enumerate(constraints):
            size = len(nodes) - len(s.ignored) if c.topology_key == HOSTNAME_LABEL else sizes[i]
            s.weights.append(math.log(size + 2))
        required = RequiredNodeAffinity(pod.spec)
        for ni in all_nodes:
            if require_all and not labels_have_keys(ni.labels, constraints):
                continue
            for i, c in enumerate(constraints):
                counts = s.counts[i]
                if not counts:
                    continue
                value = ni.labels.get(c.topology_key, "")
                if value not in counts or not c.includes_node(pod, ni, required):
                    continue
                counts[value] += count_pods_match_selector(ni.pods.values(), c.selector, pod.namespace)
        state.data[_PRESCORE_KEY] = s
        return None

    def score_nodes(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo]) -> list[int]:
        s: _ScoreState | None = state.data.get(_PRESCORE_KEY)
        if s is None:
            return [0] * len(nodes)
        out = []
        for ni in nodes:
            if ni.name in s.ignored:
                out.append(0)
                continue
            score = 0.0
            for i, c in enumerate(s.constraints):
                value = ni.labels.get(c.topology_key)
                if value is None:
                    continue
                if c.topology_key == HOSTNAME_LABEL:
                    cnt = count_pods_match_selector(ni.pods.values(), c.selector, pod.namespace)
                else:
                    cnt = s.counts[i].get(value, 0)
                score += cnt * s.weights[i] + (c.max_skew - 1)
            out.append(math.floor(score + 0.5))  # Go math.Round (scores are >= 0)
        return out

    def normalize(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo], scores: list[int]) -> None:
        s: _ScoreState | None = state.data.get(_PRESCORE_KEY)
        if s is None:
            return
        valid = [sc for ni, sc in zip(nodes, scores, strict=True) if ni.name not in s.ignored]
        min_score = min(valid, default=0)
        max_score = max(valid, default=0)
        for i, ni in enumerate(nodes):
            if ni.name in s.ignored:
                scores[i] = 0
            elif max_score == 0:
                scores[i] = 100
            else:
                scores[i] = 100 * (max_score + min_score - scores[i]) // max_score
