"""Strategies for core/v1 ReplicationController and PodTemplate.

Upstream's pkg/registry/core/replicationcontroller and .../podtemplate: an RC is a ReplicaSet
whose selector is a plain label map (equality only), defaulted from the template's labels.
"""

from __future__ import annotations

from typing import Any

from apimachinery.selectors import label_selector_from_map, selector_from_set
from apimachinery.validation import (
    forbidden_cause,
    invalid_cause,
    not_supported_cause,
    required_cause,
    validate_nonnegative,
)
from apiserver.registry.base import Cause, Obj, Strategy
from apiserver.registry.podspec import default_pod_spec
from apiserver.registry.workloads import default_template, validate_pod_template_spec, validate_replicas


class ReplicationControllerStrategy(Strategy):
    has_status = True
    tracks_generation = True
    selectable_fields = ("status.replicas",)  # see fields()

    def default(self, obj: Obj) -> None:
        """SetDefaults_ReplicationController: an empty selector and empty object labels both
        default to the template's labels; replicas to 1."""
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return
        tpl = spec.get("template")
        labels = ((tpl.get("metadata") or {}).get("labels") if isinstance(tpl, dict) else None) or {}
        if labels and isinstance(labels, dict):
            if not spec.get("selector"):
                spec["selector"] = dict(labels)
            meta = obj["metadata"]
            if not meta.get("labels"):
                meta["labels"] = dict(labels)
        spec.setdefault("replicas", 1)
        default_template(obj)

    def label_selector(self, obj: Obj) -> dict[str, Any] | None:
        return label_selector_from_map((obj.get("spec") or {}).get("selector"))

    def fields(self, obj: Obj) -> dict[str, str]:
        # an int32 upstream: an RC without status selects as "0"
        return {"status.replicas": str(_count(obj.get("status") or {}, "replicas"))}

    def validate(self, obj: Obj, namespaced: bool) -> list[Cause]:
        """ValidateReplicationControllerSpec (the selector stays mutable: no update rule)."""
        causes = super().validate(obj, namespaced)
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            spec = {}
        causes += validate_nonnegative(spec.get("minReadySeconds"), "spec.minReadySeconds")
        sel = spec.get("selector") or {}
        if not sel:
            causes.append(required_cause("spec.selector"))
        causes += validate_replicas(spec)
        tpl = spec.get("template")
        if not isinstance(tpl, dict):
            causes.append(required_cause("spec.template"))
            return causes
        labels = (tpl.get("metadata") or {}).get("labels") or {}
        if sel and isinstance(sel, dict) and not selector_from_set(sel).matches(labels):
            causes.append(invalid_cause("spec.template.metadata.labels", labels,
                                        "`selector` does not match template `labels`"))
        causes += validate_pod_template_spec(tpl, "spec.template")
        pod_spec = tpl.get("spec") or {}
        rp = pod_spec.get("restartPolicy")
        if rp != "Always":
            causes.append(not_supported_cause("spec.template.spec.restartPolicy", rp, ("Always",)))
        if pod_spec.get("activeDeadlineSeconds") is not None:
            causes.append(forbidden_cause("spec.template.spec.activeDeadlineSeconds",
                                          "activeDeadlineSeconds in ReplicationController is not Supported"))
        return causes

    def validate_status_update(self, new: Obj, old: Obj) -> list[Cause]:
        """ValidateReplicationControllerStatus: counts are non-negative and bounded by replicas."""
        st = new.get("status") or {}
        causes: list[Cause] = []
        for f in ("replicas", "fullyLabeledReplicas", "readyReplicas", "availableReplicas", "observedGeneration"):
            causes += validate_nonnegative(st.get(f), f"status.{f}")
        replicas, ready = _count(st, "replicas"), _count(st, "readyReplicas")
        for f in ("fullyLabeledReplicas", "readyReplicas", "availableReplicas"):
            if _count(st, f) > replicas:
                causes.append(invalid_cause(f"status.{f}", st.get(f), "cannot be greater than status.replicas"))
        if _count(st, "availableReplicas") > ready:
            causes.append(invalid_cause("status.availableReplicas", st.get("availableReplicas"),
                                        "cannot be greater than readyReplicas"))
        return causes


def _count(status: Obj, f: str) -> int:
    v = status.get(f)
    return v if isinstance(v, int) and not isinstance(v, bool) else 0


class PodTemplateStrategy(Strategy):
    """No status; metadata.generation counts changes of `template` (upstream's PrepareForUpdate)."""

    tracks_generation = True

    def spec_changed(self, new: Obj, old: Obj) -> bool:
        return new.get("template") != old.get("template")

    def default(self, obj: Obj) -> None:
        tpl = obj.get("template")
        if isinstance(tpl, dict):
            default_pod_spec(tpl.get("spec"))

    def validate(self, obj: Obj, namespaced: bool) -> list[Cause]:
        # `template` is a struct upstream: a missing one validates as an empty template
        tpl = obj.get("template")
        return super().validate(obj, namespaced) + validate_pod_template_spec(tpl if isinstance(tpl, dict) else {},
                                                                               "template")
