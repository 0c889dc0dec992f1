"""Node selectors and node affinity, as upstream's component-helpers nodeaffinity package.

- A NodeSelectorTerm's matchExpressions become a label selector (In, NotIn, Exists,
  DoesNotExist, Gt, Lt; NotIn/DoesNotExist match a node without the label); its matchFields
  support `metadata.name` with In/NotIn of exactly one value. A term with neither matches
  nothing; the terms of a NodeSelector are ORed; a term that does not parse is dropped
  (the others still count), as LazyErrorNodeSelector does.
- The pod's `nodeSelector` map must match as well (ANDed with required node affinity).
- Preferred terms add their weight when they match (terms with weight 0 are ignored).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from apimachinery.selectors import (
    DOES_NOT_EXIST,
    EXISTS,
    GREATER_THAN,
    IN,
    LESS_THAN,
    NOT_IN,
    LabelSelector,
    LabelSelectorError,
    Requirement,
    selector_from_set,
)

NODE_NAME_FIELD = "metadata.name"

_OPERATORS = {"In": IN, "NotIn": NOT_IN, "Exists": EXISTS, "DoesNotExist": DOES_NOT_EXIST,
              "Gt": GREATER_THAN, "Lt": LESS_THAN}


class NodeSelectorError(ValueError):
    """A node selector term that does not parse (message as upstream's field error)."""


def selector_from_requirements(exprs: Sequence[Mapping[str, Any]]) -> LabelSelector:
    """matchExpressions as a label selector (upstream nodeSelectorRequirementsAsSelector)."""
    reqs = []
    errs = []
    for i, expr in enumerate(exprs):
        op = _OPERATORS.get(expr.get("operator") or "")
        if op is None:
            errs.append(f"matchExpressions[{i}].operator: Invalid value: {expr.get('operator')!r}: "
                        "not a valid selector operator")
            continue
        try:
            reqs.append(Requirement.new(expr.get("key") or "", op, expr.get("values") or (),
                                        path=f"matchExpressions[{i}]"))
        except LabelSelectorError as e:
            errs.append(str(e))
    if errs:
        raise NodeSelectorError("; ".join(errs))
    return LabelSelector(reqs)


def field_requirements(exprs: Sequence[Mapping[str, Any]]) -> tuple[tuple[str, bool, str], ...]:
    """matchFields as (field, equal?, value) (upstream nodeSelectorRequirementsAsFieldSelector)."""
    out = []
    for i, expr in enumerate(exprs):
        op = expr.get("operator")
        values = expr.get("values") or []
        if op not in ("In", "NotIn"):
            raise NodeSelectorError(f"matchFields[{i}].operator: Unsupported value: {op!r}: "
                                    'supported values: "In", "NotIn"')
        if len(values) != 1:
            raise NodeSelectorError(f"matchFields[{i}].values: Invalid value: {values!r}: must have one element")
        out.append((expr.get("key") or "", op == "In", values[0]))
    return tuple(out)


class NodeSelectorTerm:
    __slots__ = ("fields", "labels")

    def __init__(self, term: Mapping[str, Any]) -> None:
        exprs = term.get("matchExpressions") or []
        fields = term.get("matchFields") or []
        self.labels: LabelSelector | None = selector_from_requirements(exprs) if exprs else None
        self.fields: tuple[tuple[str, bool, str], ...] | None = field_requirements(fields) if fields else None

    def matches(self, labels: Mapping[str, str], node_name: str) -> bool:
        if self.labels is None and self.fields is None:
            return False
        if self.labels is not None and not self.labels.matches(labels):
            return False
        if self.fields is not None:
            for key, equal, value in self.fields:
                have = node_name if key == NODE_NAME_FIELD else ""
                if (have == value) != equal:
                    return False
        return True


def _is_empty_term(term: Mapping[str, Any]) -> bool:
    return not term.get("matchExpressions") and not term.get("matchFields")


class NodeSelector:
    """ORed NodeSelectorTerms; unparseable terms are dropped and their errors kept."""

    __slots__ = ("errors", "terms")

    def __init__(self, selector: Mapping[str, Any]) -> None:
        self.terms: list[NodeSelectorTerm] = []
        self.errors: list[str] = []
        for term in selector.get("nodeSelectorTerms") or ():
            if not isinstance(term, Mapping) or _is_empty_term(term):
                continue
            try:
                self.terms.append(NodeSelectorTerm(term))
            except NodeSelectorError as e:
                self.errors.append(str(e))

    def matches(self, labels: Mapping[str, str], node_name: str) -> bool:
        for t in self.terms:
            if t.matches(labels, node_name):
                return True
        return False


class RequiredNodeAffinity:
    """The pod's nodeSelector AND its required node affinity (upstream GetRequiredNodeAffinity)."""

    __slots__ = ("label_selector", "node_selector", "pairs")

    def __init__(self, pod_spec: Mapping[str, Any]) -> None:
        ns = pod_spec.get("nodeSelector")
        self.label_selector: LabelSelector | None = selector_from_set(ns) if ns else None
        self.pairs: tuple[tuple[str, str], ...] = tuple(ns.items()) if ns else ()  # the nodeSelector, for fast paths
        required = (((pod_spec.get("affinity") or {}).get("nodeAffinity") or {})
                    .get("requiredDuringSchedulingIgnoredDuringExecution"))
        self.node_selector = NodeSelector(required) if required is not None else None

    @property
    def empty(self) -> bool:
        return self.label_selector is None and self.node_selector is None

    def matches(self, labels: Mapping[str, str], node_name: str) -> bool:
        if self.label_selector is not None and not self.label_selector.matches(labels):
            return False
        if self.node_selector is not None:
            return self.node_selector.matches(labels, node_name)
        return True


class PreferredSchedulingTerms:
    """Weighted preferred terms; building raises NodeSelectorError for an invalid term."""

    __slots__ = ("terms",)

    def __init__(self, preferred: Sequence[Mapping[str, Any]]) -> None:
        self.terms: list[tuple[NodeSelectorTerm, int]] = []
        errs = []
        for t in preferred:
            weight = int(t.get("weight") or 0)
            pref = t.get("preference") or {}
            if weight == 0 or _is_empty_term(pref):
                continue
            try:
                self.terms.append((NodeSelectorTerm(pref), weight))
            except NodeSelectorError as e:
                errs.append(str(e))
        if errs:
            raise NodeSelectorError("; ".join(errs))

    def score(self, labels: Mapping[str, str], node_name: str) -> int:
        total = 0
        for term, weight in self.terms:
            if term.matches(labels, node_name):
                total += weight
        return total


def pod_preferred_terms(pod_spec: Mapping[str, Any]) -> PreferredSchedulingTerms | None:
    preferred = (((pod_spec.get("affinity") or {}).get("nodeAffinity") or {})
                 .get("preferredDuringSchedulingIgnoredDuringExecution"))
    if not preferred:
        return None
    return PreferredSchedulingTerms(preferred)
