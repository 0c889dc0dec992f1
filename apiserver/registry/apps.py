"""Strategies for apps/v1 kinds."""

from __future__ import annotations

from apimachinery.validation import invalid_cause, not_supported_cause
from apiserver.registry.base import Cause, Obj, Strategy, default_field
from apiserver.registry.workloads import (
    default_template,
    selector_immutable,
    validate_replicas,
    validate_selector_and_template,
)


class _Workload(Strategy):
    has_status = True
    tracks_generation = True

    def default(self, obj: Obj) -> None:
        default_template(obj)

    def validate(self, obj: Obj, namespaced: bool) -> list[Cause]:
        causes = super().validate(obj, namespaced)
        causes += validate_selector_and_template(obj)
        causes += validate_replicas(obj.get("spec") or {})
        return causes

    def validate_update(self, new: Obj, old: Obj, namespaced: bool) -> list[Cause]:
        return super().validate_update(new, old, namespaced) + selector_immutable(new, old)


def _int_or_percent(v: object) -> bool:
    if isinstance(v, bool):
        return False
    if isinstance(v, int):
        return v >= 0
    return isinstance(v, str) and v.endswith("%") and v[:-1].isdigit()


class DeploymentStrategy(_Workload):
    def default(self, obj: Obj) -> None:
        super().default(obj)
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return
        spec.setdefault("replicas", 1)
        strategy = spec.setdefault("strategy", {})
        default_field(strategy, "type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            ru = strategy.setdefault("rollingUpdate", {})
            ru.setdefault("maxUnavailable", "25%")
            ru.setdefault("maxSurge", "25%")
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("progressDeadlineSeconds", 600)

    def validate(self, obj: Obj, namespaced: bool) -> list[Cause]:
        causes = super().validate(obj, namespaced)
        strategy = (obj.get("spec") or {}).get("strategy") or {}
        t = strategy.get("type", "RollingUpdate")
        if t not in ("RollingUpdate", "Recreate"):
            causes.append(not_supported_cause("spec.strategy.type", t, ("Recreate", "RollingUpdate")))
        ru = strategy.get("rollingUpdate")
        if t == "Recreate" and ru:
            causes.append(invalid_cause("spec.strategy.rollingUpdate", ru, "may not be specified when strategy `type` is 'Recreate'"))
        if isinstance(ru, dict):
            for f in ("maxSurge", "maxUnavailable"):
                if f in ru and not _int_or_percent(ru[f]):
                    causes.append(invalid_cause(f"spec.strategy.rollingUpdate.{f}", ru[f], "must be an integer or percentage (e.g '5%')"))
            if ru.get("maxSurge") in (0, "0%") and ru.get("maxUnavailable") in (0, "0%"):
                causes.append(invalid_cause("spec.strategy.rollingUpdate.maxUnavailable", ru.get("maxUnavailable"), "may not be 0 when `maxSurge` is 0"))
        return causes


class ReplicaSetStrategy(_Workload):
    selectable_fields = ("status.replicas",)

    def default(self, obj: Obj) -> None:
        super().default(obj)
        if isinstance(obj.get("spec"), dict):
            obj["spec"].setdefault("replicas", 1)


TEMPLATE_GENERATION = "deprecated.daemonset.template.generation"


class DaemonSetStrategy(_Workload):
    """Keeps `deprecated.daemonset.template.generation` = the generation of the last template
    change (upstream's strategy does; the controller labels pods with it)."""

    def prepare_for_create(self, obj: Obj) -> None:
        super().prepare_for_create(obj)
        obj["metadata"].setdefault("annotations", {})[TEMPLATE_GENERATION] = "1"

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        super().prepare_for_update(new, old)
        annotations = new["metadata"].setdefault("annotations", {})
        old_value = ((old["metadata"].get("annotations") or {}).get(TEMPLATE_GENERATION))
        if (new.get("spec") or {}).get("template") != (old.get("spec") or {}).get("template"):
            annotations[TEMPLATE_GENERATION] = str(old["metadata"].get("generation", 1) + 1)
        elif old_value is not None:
            annotations[TEMPLATE_GENERATION] = old_value

    def default(self, obj: Obj) -> None:
        super().default(obj)
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return
        us = spec.setdefault("updateStrategy", {})
        default_field(us, "type", "RollingUpdate")
        if us["type"] == "RollingUpdate":
            ru = us.setdefault("rollingUpdate", {})
            ru.setdefault("maxUnavailable", 1)
            ru.setdefault("maxSurge", 0)
        spec.setdefault("revisionHistoryLimit", 10)


class StatefulSetStrategy(_Workload):
    def default(self, obj: Obj) -> None:
        super().default(obj)
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return
        spec.setdefault("replicas", 1)
        default_field(spec, "podManagementPolicy", "OrderedReady")
        us = spec.setdefault("updateStrategy", {})
        default_field(us, "type", "RollingUpdate")
        if us["type"] == "RollingUpdate":
            us.setdefault("rollingUpdate", {}).setdefault("partition", 0)
        spec.setdefault("revisionHistoryLimit", 10)
        retention = spec.setdefault("persistentVolumeClaimRetentionPolicy", {})
        if isinstance(retention, dict):
            default_field(retention, "whenDeleted", "Retain")
            default_field(retention, "whenScaled", "Retain")

    def validate(self, obj: Obj, namespaced: bool) -> list[Cause]:
        causes = super().validate(obj, namespaced)
        p = (obj.get("spec") or {}).get("podManagementPolicy", "OrderedReady")
        if p not in ("OrderedReady", "Parallel"):
            causes.append(not_supported_cause("spec.podManagementPolicy", p, ("OrderedReady", "Parallel")))
        return causes

    def validate_update(self, new: Obj, old: Obj, namespaced: bool) -> list[Cause]:
        causes = super().validate_update(new, old, namespaced)
        ns, os_ = new.get("spec") or {}, old.get("spec") or {}
        for f in ("serviceName", "podManagementPolicy", "volumeClaimTemplates"):
            if ns.get(f) != os_.get(f):
                causes.append(
                    {
                        "reason": "FieldValueForbidden",
                        "message": "Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', "
                        "'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
                        "field": "spec",
                    }
                )
                break
        return causes


class ControllerRevisionStrategy(Strategy):
    def validate(self, obj: Obj, namespaced: bool) -> list[Cause]:
        causes = super().validate(obj, namespaced)
        rev = obj.get("revision")
        if not isinstance(rev, int) or rev < 0:
            causes.append(invalid_cause("revision", rev, "must be greater than or equal to 0"))
        return causes
