"""Strategies for batch/v1 kinds."""

from __future__ import annotations

import zoneinfo

from apimachinery import cron
from apimachinery.validation import forbidden_cause, invalid_cause, not_supported_cause, required_cause
from apiserver.registry.base import Cause, Obj, Strategy
from apiserver.registry.workloads import default_template, selector_immutable, validate_selector_and_template

CONTROLLER_UID = "batch.kubernetes.io/controller-uid"
JOB_NAME = "batch.kubernetes.io/job-name"


class JobStrategy(Strategy):
    has_status = True
    tracks_generation = True
    # batch/v1 keeps a deleted Job's pods unless the client asks otherwise (kubectl asks for Background)
    default_propagation = "Orphan"
    default_propagation_warning = (
        "child pods are preserved by default when jobs are deleted; set propagationPolicy=Background to remove "
        "them or set propagationPolicy=Orphan to suppress this warning"
    )
    selectable_fields = ("status.successful",)

    def default(self, obj: Obj) -> None:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return
        default_template(obj)
        if spec.get("completions") is None and spec.get("parallelism") is None:
            spec["completions"] = 1
        spec.setdefault("parallelism", 1)
        spec.setdefault("backoffLimit", 6)
        spec.setdefault("completionMode", "NonIndexed")
        spec.setdefault("suspend", False)
        if not spec.get("podFailurePolicy"):
            spec.setdefault("podReplacementPolicy", "TerminatingOrFailed")
        meta = obj["metadata"]
        if not spec.get("manualSelector") and meta.get("uid") and not spec.get("selector"):
            # upstream generates a selector on the job's own uid, so pods of another job never match
            uid, name = meta["uid"], meta.get("name", "")
            spec["selector"] = {"matchLabels": {CONTROLLER_UID: uid}}
            tpl = spec.setdefault("template", {})
            labels = tpl.setdefault("metadata", {}).setdefault("labels", {})
            labels.update({CONTROLLER_UID: uid, JOB_NAME: name, "controller-uid": uid, "job-name": name})

    def validate(self, obj: Obj, namespaced: bool) -> list[Cause]:
        causes = super().validate(obj, namespaced) + validate_selector_and_template(obj)
        spec = obj.get("spec") or {}
        rp = ((spec.get("template") or {}).get("spec") or {}).get("restartPolicy")
        if rp not in ("OnFailure", "Never"):
            causes.append(not_supported_cause("spec.template.spec.restartPolicy", rp, ("OnFailure", "Never")))
        for f in ("parallelism", "completions", "backoffLimit", "activeDeadlineSeconds", "ttlSecondsAfterFinished"):
            v = spec.get(f)
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 0):
                causes.append(invalid_cause(f"spec.{f}", v, "must be greater than or equal to 0"))
        cm = spec.get("completionMode", "NonIndexed")
        if cm not in ("NonIndexed", "Indexed"):
            causes.append(not_supported_cause("spec.completionMode", cm, ("NonIndexed", "Indexed")))
        if cm == "Indexed" and spec.get("completions") is None:
            causes.append(required_cause("spec.completions", "when completion mode is Indexed"))
        return causes

    def validate_update(self, new: Obj, old: Obj, namespaced: bool) -> list[Cause]:
        causes = super().validate_update(new, old, namespaced) + selector_immutable(new, old)
        ns, os_ = new.get("spec") or {}, old.get("spec") or {}
        if ns.get("completions") != os_.get("completions"):
            causes.append(invalid_cause("spec.completions", ns.get("completions"), "field is immutable"))
        if _template_changed(ns.get("template"), os_.get("template"), bool(os_.get("suspend")),
                             bool((old.get("status") or {}).get("startTime"))):
            causes.append(invalid_cause("spec.template", "", "field is immutable"))
        return causes


#: What a suspended Job that never started may still change in its pod template (upstream's
#: mutable scheduling directives): where its pods will run, not what they run.
_MUTABLE_TEMPLATE_META = ("labels", "annotations")
_MUTABLE_TEMPLATE_SPEC = ("nodeSelector", "affinity", "tolerations", "schedulingGates")


def _template_changed(new: Obj | None, old: Obj | None, suspended: bool, started: bool) -> bool:
    if new == old:
        return False
    if not (suspended and not started and isinstance(new, dict) and isinstance(old, dict)):
        return True
    return _without_scheduling_directives(new) != _without_scheduling_directives(old)


def _without_scheduling_directives(template: Obj) -> Obj:
    out = dict(template)
    for part, keys in (("metadata", _MUTABLE_TEMPLATE_META), ("spec", _MUTABLE_TEMPLATE_SPEC)):
        if isinstance(out.get(part), dict):
            out[part] = {k: v for k, v in out[part].items() if k not in keys}
    return out


class CronJobStrategy(Strategy):
    has_status = True
    tracks_generation = True

    def default(self, obj: Obj) -> None:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return
        spec.setdefault("concurrencyPolicy", "Allow")
        spec.setdefault("suspend", False)
        spec.setdefault("successfulJobsHistoryLimit", 3)
        spec.setdefault("failedJobsHistoryLimit", 1)
        tpl = (spec.get("jobTemplate") or {}).get("spec")
        if isinstance(tpl, dict) and isinstance(tpl.get("template"), dict):
            from apiserver.registry.podspec import default_pod_spec

            default_pod_spec(tpl["template"].get("spec"))

    def validate(self, obj: Obj, namespaced: bool) -> list[Cause]:
        causes = super().validate(obj, namespaced)
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return [*causes, required_cause("spec")]
        sched = spec.get("schedule")
        if not sched:
            causes.append(required_cause("spec.schedule"))
        else:
            try:
                cron.parse(str(sched))
            except cron.CronError as e:
                causes.append(invalid_cause("spec.schedule", sched, str(e)))
        tz = spec.get("timeZone")
        if tz is not None:
            try:
                zoneinfo.ZoneInfo(tz)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                causes.append(invalid_cause("spec.timeZone", tz, "unknown time zone " + str(tz)))
        cp = spec.get("concurrencyPolicy", "Allow")
        if cp not in ("Allow", "Forbid", "Replace"):
            causes.append(not_supported_cause("spec.concurrencyPolicy", cp, ("Allow", "Forbid", "Replace")))
        jt = (spec.get("jobTemplate") or {}).get("spec")
        if not isinstance(jt, dict) or not isinstance(jt.get("template"), dict):
            causes.append(required_cause("spec.jobTemplate.spec.template"))
        else:
            rp = (jt["template"].get("spec") or {}).get("restartPolicy")
            if rp not in ("OnFailure", "Never"):
                causes.append(not_supported_cause("spec.jobTemplate.spec.template.spec.restartPolicy", rp, ("OnFailure", "Never")))
            if jt.get("selector") and not jt.get("manualSelector"):
                causes.append(forbidden_cause("spec.jobTemplate.spec.selector", "`selector` will be auto-generated"))
        return causes
