"""InterPodAffinity: place pods relative to other pods by topology domain.

Filter (required terms): the pod's affinity terms need, in the node's domain for each
term's topologyKey, existing pods matching all of them (or, for the first pod of a group
that matches its own terms, no such pod anywhere); its anti-affinity terms need no matching
pod in the domain; and no existing pod's required anti-affinity may match the pod in the
node's domains. Score (preferred terms, both directions, plus existing pods' required
affinity with weight 1): summed per topology domain, normalized min..max to 0..100.

Terms select pods by label selector and by namespaces (a list, or a namespaceSelector
over the namespaces' labels; neither means the pod's own namespace).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from scheduler.framework import ADD, ALL, NODE, POD, UPDATE_NODE_LABEL, CycleState, Plugin
from scheduler.nodeinfo import NodeInfo
from scheduler.podinfo import AffinityTerm, PodInfo
from scheduler.status import SKIP, UNSCHEDULABLE, UNSCHEDULABLE_AND_UNRESOLVABLE, Status

NAME = "InterPodAffinity"
REASON_AFFINITY = "node(s) didn't match pod affinity rules"
REASON_ANTI_AFFINITY = "node(s) didn't match pod anti-affinity rules"
REASON_EXISTING_ANTI_AFFINITY = "node(s) didn't satisfy existing pods anti-affinity rules"
_AFFINITY = Status(UNSCHEDULABLE_AND_UNRESOLVABLE, REASON_AFFINITY, plugin=NAME)
_ANTI = Status(UNSCHEDULABLE, REASON_ANTI_AFFINITY, plugin=NAME)
_EXISTING = Status(UNSCHEDULABLE, REASON_EXISTING_ANTI_AFFINITY, plugin=NAME)
_PRESCORE_KEY = "PreScore" + NAME
HARD_POD_AFFINITY_WEIGHT = 1

Pair = tuple[str, str]


class _NamespaceLabels:
    """Namespace labels, looked up once per cycle."""

    def __init__(self, lookup: Any) -> None:
        self._lookup = lookup
        self._memo: dict[str, Mapping[str, str]] = {}

    def __call__(self, namespace: str) -> Mapping[str, str]:
        v = self._memo.get(namespace)
        if v is None:
            v = self._memo[namespace] = self._lookup(namespace)
        return v


def matches_all(terms: Iterable[AffinityTerm], pod: PodInfo, ns_labels: Mapping[str, str]) -> bool:
    terms = tuple(terms)
    if not terms:
        return False
    return all(t.matches(pod.namespace, pod.labels, ns_labels) for t in terms)


def _bump(counts: dict[Pair, int], pair: Pair, delta: int) -> None:
    n = counts.get(pair, 0) + delta
    if n:
        counts[pair] = n
    else:
        counts.pop(pair, None)


class _FilterState:
    __slots__ = ("affinity", "anti_affinity", "existing_anti_affinity", "ns_labels", "pod_ns_labels")

    def __init__(self) -> None:
        self.existing_anti_affinity: dict[Pair, int] = {}
        self.affinity: dict[Pair, int] = {}
        self.anti_affinity: dict[Pair, int] = {}
        self.ns_labels: _NamespaceLabels | None = None
        self.pod_ns_labels: Mapping[str, str] = {}

    def clone(self) -> _FilterState:
        c = _FilterState()
        c.existing_anti_affinity = dict(self.existing_anti_affinity)
        c.affinity = dict(self.affinity)
        c.anti_affinity = dict(self.anti_affinity)
        c.ns_labels = self.ns_labels
        c.pod_ns_labels = self.pod_ns_labels
        return c

    def update_with(self, pod: PodInfo, other: PodInfo, ni: NodeInfo, delta: int) -> None:
        """Account `other` (placed on `ni`) for or against `pod` (upstream preFilterState.updateWithPod)."""
        self.count_existing_anti_affinity(pod, other, ni, delta)
        self.count_incoming(pod, other, ni, delta)

    def count_existing_anti_affinity(self, pod: PodInfo, other: PodInfo, ni: NodeInfo, delta: int) -> None:
        """`other`'s required anti-affinity terms that match `pod`."""
        for t in other.required_anti_affinity_terms:
            if t.matches(pod.namespace, pod.labels, self.pod_ns_labels):
                v = ni.labels.get(t.topology_key)
                if v is not None:
                    _bump(self.existing_anti_affinity, (t.topology_key, v), delta)

    def count_incoming(self, pod: PodInfo, other: PodInfo, ni: NodeInfo, delta: int) -> None:
        """Whether `other` matches `pod`'s required affinity (all terms) and anti-affinity terms."""
        labels = ni.labels
        ns_labels = self.ns_labels(other.namespace) if self.ns_labels else {}
        if matches_all(pod.required_affinity_terms, other, ns_labels):
            for t in pod.required_affinity_terms:
                v = labels.get(t.topology_key)
                if v is not None:
                    _bump(self.affinity, (t.topology_key, v), delta)
        for t in pod.required_anti_affinity_terms:
            if t.matches(other.namespace, other.labels, ns_labels):
                v = labels.get(t.topology_key)
                if v is not None:
                    _bump(self.anti_affinity, (t.topology_key, v), delta)


class InterPodAffinity(Plugin):
    name = NAME
    events = ((POD, ALL), (NODE, ADD | UPDATE_NODE_LABEL))

    # -- PreFilter / Filter ------------------------------------------------------------

    def pre_filter(self, state: CycleState, pod: PodInfo) -> Status | None:
        if pod.parse_error:
            return Status(UNSCHEDULABLE_AND_UNRESOLVABLE, f"parsing pod: {pod.parse_error}")
        cache = self.handle.cache
        has_terms = bool(pod.required_affinity_terms or pod.required_anti_affinity_terms)
        if not has_terms and not cache.has_required_anti_affinity_pods:
            return Status(SKIP)
        s = _FilterState()
        s.ns_labels = _NamespaceLabels(self.handle.namespace_labels)
        s.pod_ns_labels = s.ns_labels(pod.namespace)
        for ni in cache.nodes_with_required_anti_affinity_pods():
            for other in ni.pods_with_required_anti_affinity.values():
                s.count_existing_anti_affinity(pod, other, ni, 1)
        if has_terms:
            for ni in cache.node_list():
                for other in ni.pods.values():
                    s.count_incoming(pod, other, ni, 1)
        if not s.existing_anti_affinity and not has_terms:
            return Status(SKIP)
        state.data[NAME] = s
        return None

    def add_pod(self, state: CycleState, pod: PodInfo, other: PodInfo, ni: NodeInfo) -> None:
        s: _FilterState | None = state.data.get(NAME)
        if s is not None:
            s.update_with(pod, other, ni, 1)

    def remove_pod(self, state: CycleState, pod: PodInfo, other: PodInfo, ni: NodeInfo) -> None:
        s: _FilterState | None = state.data.get(NAME)
        if s is not None:
            s.update_with(pod, other, ni, -1)

    def filter(self, state: CycleState, pod: PodInfo, ni: NodeInfo) -> Status | None:
        s: _FilterState | None = state.data.get(NAME)
        if s is None:
            return None
        labels = ni.labels
        if pod.required_affinity_terms:
            pods_exist = True
            for t in pod.required_affinity_terms:
                v = labels.get(t.topology_key)
                if v is None:
                    return _AFFINITY  # every topology label must exist on the node
                if s.affinity.get((t.topology_key, v), 0) <= 0:
                    pods_exist = False
            if not pods_exist:
                # the first pod of a group with affinity to itself may go anywhere with the labels
                if s.affinity or not matches_all(pod.required_affinity_terms, pod, s.pod_ns_labels):
                    return _AFFINITY
        for t in pod.required_anti_affinity_terms:
            v = labels.get(t.topology_key)
            if v is not None and s.anti_affinity.get((t.topology_key, v), 0) > 0:
                return _ANTI
        if s.existing_anti_affinity:
            existing = s.existing_anti_affinity
            for k, v in labels.items():
                if existing.get((k, v), 0) > 0:
                    return _EXISTING
        return None

    # -- PreScore / Score --------------------------------------------------------------

    def pre_score(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo]) -> Status | None:
        if not nodes:
            return Status(SKIP)
        cache = self.handle.cache
        has_constraints = bool(pod.preferred_affinity_terms or pod.preferred_anti_affinity_terms)
        if not has_constraints and not cache.has_affinity_pods:
            return Status(SKIP)
        ns_labels = _NamespaceLabels(self.handle.namespace_labels)
        pod_ns_labels = ns_labels(pod.namespace)
        scores: dict[str, dict[str, int]] = {}

        def add(term: AffinityTerm, weight: int, labels: Mapping[str, str]) -> None:
            v = labels.get(term.topology_key)
            if v is not None:
                per_key = scores.setdefault(term.topology_key, {})
                per_key[v] = per_key.get(v, 0) + weight

        node_infos = cache.node_list() if has_constraints else cache.nodes_with_affinity_pods()
        for ni in node_infos:
            labels = ni.labels
            if not labels:
                continue
            others = ni.pods if has_constraints else ni.pods_with_affinity
            for other in others.values():
                other_ns = ns_labels(other.namespace)
                for t in pod.preferred_affinity_terms:
                    if t.matches(other.namespace, other.labels, other_ns):
                        add(t, t.weight, labels)
                for t in pod.preferred_anti_affinity_terms:
                    if t.matches(other.namespace, other.labels, other_ns):
                        add(t, -t.weight, labels)
                for t in other.required_affinity_terms:
                    if t.matches(pod.namespace, pod.labels, pod_ns_labels):
                        add(t, HARD_POD_AFFINITY_WEIGHT, labels)
                for t in other.preferred_affinity_terms:
                    if t.matches(pod.namespace, pod.labels, pod_ns_labels):
                        add(t, t.weight, labels)
                for t in other.preferred_anti_affinity_terms:
                    if t.matches(pod.namespace, pod.labels, pod_ns_labels):
                        add(t, -t.weight, labels)
        if not scores:
            return Status(SKIP)
        state.data[_PRESCORE_KEY] = scores
        return None

    def score_nodes(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo]) -> list[int]:
        scores: dict[str, dict[str, int]] = state.data.get(_PRESCORE_KEY) or {}
        out = []
        for ni in nodes:
            total = 0
            for key, per_value in scores.items():
                v = ni.labels.get(key)
                if v is not None:
                    total += per_value.get(v, 0)
            out.append(total)
        return out

    def normalize(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo], scores: list[int]) -> None:
        if not state.data.get(_PRESCORE_KEY) or not scores:
            return
        lo, hi = min(scores), max(scores)
        diff = hi - lo
        for i, s in enumerate(scores):
            scores[i] = int(100.0 * ((s - lo) / diff)) if diff > 0 else 0

