"""The scheduler's side of PersistentVolume binding (upstream component-helpers/storage/volume).

Which PV may satisfy a claim is decided by ONE set of rules, shared with the PV binder:
`apimachinery.volumebinding.find_best_match` (class, "" matching ""; volumeMode, default
Filesystem; accessModes ⊇ the claim's; capacity ≥ request; the claim's selector; the
claim's spec.volumeName; not pre-bound to another claim; phase Available; not being
deleted; the smallest wins; a PV pre-bound to the claim wins over all). This module adds
what only the scheduler needs:

- `find_matching_volume(claim, volumes, node_labels=..., node_name=...)`: that rule on one
  node — the PV's spec.nodeAffinity.required must match it (`check_node_affinity`); as
  upstream, a claim that a PV is pre-bound to matches that PV or, on other nodes, nothing.
- `bind_volume_to_claim(pv, claim)` (shared with the binder): upstream GetBindVolumeToClaim.
- `is_claim_bound`, `class_provisions` and `topology_matches` (an empty term matches no node, as upstream).

Nothing here reads a store or talks to the API; callers pass the objects in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from apimachinery.nodeaffinity import NodeSelector
from apimachinery.volumebinding import (
    ANN_BIND_COMPLETED,
    ANN_BOUND_BY_CONTROLLER,
    ANN_SELECTED_NODE,
    NO_PROVISIONER,
    WAIT_FOR_FIRST_CONSUMER,
    bind_volume_to_claim,
    claim_ref,
    find_best_match,
    is_bound_to,
    pod_claim_names,
    storage_class_name,
)

Obj = dict[str, Any]

CLAIM_LOST = "Lost"

# the Handle's informer stores the volume plugins read
PVC_STORE = "pvcs"
PV_STORE = "pvs"
CLASS_STORE = "storageclasses"

__all__ = [
    "ANN_BIND_COMPLETED",
    "ANN_BOUND_BY_CONTROLLER",
    "ANN_SELECTED_NODE",
    "CLAIM_LOST",
    "CLASS_STORE",
    "NO_PROVISIONER",
    "PVC_STORE",
    "PV_STORE",
    "WAIT_FOR_FIRST_CONSUMER",
    "bind_volume_to_claim",
    "check_node_affinity",
    "claim_ref",
    "class_provisions",
    "find_matching_volume",
    "is_bound_to",
    "is_claim_bound",
    "pod_claim_names",
    "storage_class_name",
    "topology_matches",
]


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def _spec(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("spec") or {}


def is_claim_bound(claim: Mapping[str, Any]) -> bool:
    """Fully bound: spec.volumeName and the bind-completed annotation (upstream isPVCFullyBound)."""
    return bool(_spec(claim).get("volumeName")) and ANN_BIND_COMPLETED in (_meta(claim).get("annotations") or {})


def check_node_affinity(pv: Mapping[str, Any], labels: Mapping[str, str], node_name: str = "") -> bool:
    """spec.nodeAffinity.required (a NodeSelector) matches the node (upstream CheckNodeAffinity).

    No nodeAffinity, or no `required`, matches every node. `node_name` lets a matchFields
    term on metadata.name match too (upstream passes only the labels)."""
    required = (_spec(pv).get("nodeAffinity") or {}).get("required")
    if required is None:
        return True
    return NodeSelector(required).matches(labels, node_name)


def find_matching_volume(claim: Obj, volumes: Iterable[Obj], *, node_labels: Mapping[str, str] | None = None,
                         node_name: str = "", excluded: Iterable[str] = (),
                         delay_binding: bool = False) -> Obj | None:
    """The PV for `claim` among `volumes` that fits the node (`node_labels`, `node_name`), or None:
    `apimachinery.volumebinding.find_best_match` with the PV's node affinity as the node test."""
    fits = None
    if node_labels is not None:
        labels = node_labels

        def fits(pv: Obj) -> bool:
            return check_node_affinity(pv, labels, node_name)
    return find_best_match(claim, volumes, delay_binding, fits, frozenset(excluded))


def class_provisions(sc: Mapping[str, Any]) -> bool:
    """The class has a real provisioner (dynamic provisioning is possible)."""
    p = sc.get("provisioner") or ""
    return bool(p) and p != NO_PROVISIONER


def topology_matches(sc: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """The node satisfies the class's allowedTopologies (none: every node) — upstream MatchTopologySelectorTerms."""
    terms = sc.get("allowedTopologies") or []
    if not terms:
        return True
    for term in terms:
        exprs = (term or {}).get("matchLabelExpressions") or []
        if exprs and all(labels.get(e.get("key") or "") in (e.get("values") or ()) for e in exprs):
            return True
    return False
