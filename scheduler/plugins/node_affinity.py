"""NodeAffinity: the pod's nodeSelector and required node affinity must match the node;
matching preferred terms add their weights to the score (normalized by the maximum).

PreFilter narrows the candidate nodes when every required term pins `metadata.name`
(matchFields In), as upstream does for DaemonSet-style pods.
"""

from __future__ import annotations

from apimachinery.nodeaffinity import (
    NODE_NAME_FIELD,
    NodeSelectorError,
    RequiredNodeAffinity,
    pod_preferred_terms,
)
from scheduler.framework import ADD, NODE, UPDATE, CycleState, Plugin, default_normalize
from scheduler.nodeinfo import NodeInfo
from scheduler.podinfo import PodInfo
from scheduler.status import ERROR, SKIP, UNSCHEDULABLE_AND_UNRESOLVABLE, Status

NAME = "NodeAffinity"
REASON_POD = "node(s) didn't match Pod's node affinity/selector"
REASON_CONFLICT = "pod affinity terms conflict"
_REJECTED = Status(UNSCHEDULABLE_AND_UNRESOLVABLE, REASON_POD, plugin=NAME)
_PRESCORE_KEY = "PreScore" + NAME


def _required(pod: PodInfo) -> dict | None:
    return ((pod.affinity.get("nodeAffinity") or {}).get("requiredDuringSchedulingIgnoredDuringExecution"))


class NodeAffinity(Plugin):
    name = NAME
    events = ((NODE, ADD | UPDATE),)

    def pre_filter(self, state: CycleState, pod: PodInfo) -> Status | set[str] | None:
        required = _required(pod)
        if required is None and pod.spec.get("nodeSelector") is None:
            return Status(SKIP)
        state.data[NAME] = RequiredNodeAffinity(pod.spec)
        if required is None or not required.get("nodeSelectorTerms"):
            return None
        names: set[str] | None = None
        for term in required["nodeSelectorTerms"]:
            term_names: set[str] | None = None
            for r in (term or {}).get("matchFields") or ():
                if r.get("key") == NODE_NAME_FIELD and r.get("operator") == "In":
                    s = set(r.get("values") or ())
                    term_names = s if term_names is None else term_names & s
            if term_names is None:
                return None  # this term does not pin names: every node may match (terms are ORed)
            names = term_names if names is None else names | term_names
        if names is not None and not names:
            return Status(UNSCHEDULABLE_AND_UNRESOLVABLE, REASON_CONFLICT, plugin=NAME)
        return names

    def filter(self, state: CycleState, pod: PodInfo, ni: NodeInfo) -> Status | None:
        rna: RequiredNodeAffinity | None = state.data.get(NAME)
        if rna is None:
            rna = RequiredNodeAffinity(pod.spec)
        return None if rna.matches(ni.labels, ni.name) else _REJECTED

    def filter_nodes(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo],
                     failed: dict[str, Status]) -> list[NodeInfo]:
        rna: RequiredNodeAffinity | None = state.data.get(NAME)
        if rna is None:
            rna = RequiredNodeAffinity(pod.spec)
        if rna.node_selector is None and len(rna.pairs) == 1:
            key, value = rna.pairs[0]  # the common case: a one-label nodeSelector
            out = [ni for ni in nodes if ni.labels.get(key) == value]
        else:
            m = rna.matches
            out = [ni for ni in nodes if m(ni.labels, ni.name)]
        if len(out) != len(nodes):
            passed = {id(ni) for ni in out}
            for ni in nodes:
                if id(ni) not in passed:
                    failed[ni.name] = _REJECTED
        return out

    def pre_score(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo]) -> Status | None:
        try:
            preferred = pod_preferred_terms(pod.spec)
        except NodeSelectorError as e:
            return Status(ERROR, str(e))
        if preferred is None or not preferred.terms:
            return Status(SKIP)
        state.data[_PRESCORE_KEY] = preferred
        return None

    def score_nodes(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo]) -> list[int]:
        preferred = state.data.get(_PRESCORE_KEY)
        if preferred is None:
            preferred = pod_preferred_terms(pod.spec)
            if preferred is None:
                return [0] * len(nodes)
        return [preferred.score(ni.labels, ni.name) for ni in nodes]

    def normalize(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo], scores: list[int]) -> None:
        default_normalize(scores)
