"""Strategies for batch/v1 kinds."""

from __future__ import annotations

import re
import zoneinfo
from typing import Any

from apimachinery import cron
from apimachinery.validation import (
    OMIT_VALUE,
    duplicate_cause,
    forbidden_cause,
    go_quote,
    invalid_cause,
    not_supported_cause,
    required_cause,
    too_long_cause,
    too_many_cause,
    validate_immutable,
    validate_qualified_name,
)
from apiserver.registry.base import Cause, Obj, Strategy, as_dict, as_int, as_list, as_str
from apiserver.registry.workloads import default_template, selector_immutable, validate_selector_and_template

CONTROLLER_UID = "batch.kubernetes.io/controller-uid"
JOB_NAME = "batch.kubernetes.io/job-name"
MAX_INT32 = 2**31 - 1

# upstream pkg/apis/batch/validation limits
MAX_FAILED_INDEXES = 100_000
COMPLETIONS_SOFT_LIMIT = 100_000
PARALLELISM_LIMIT_FOR_HIGH_COMPLETIONS = 10_000
MAX_FAILED_INDEXES_FOR_HIGH_COMPLETIONS = 10_000
MAX_POD_FAILURE_POLICY_RULES = 20
MAX_ON_EXIT_CODES_VALUES = 255
MAX_ON_POD_CONDITIONS_PATTERNS = 20
MAX_SUCCEEDED_INDEXES_LENGTH = 64 * 1024
MAX_SUCCESS_POLICY_RULES = 20
# sorted, as upstream lists a set's members in its messages
POD_FAILURE_POLICY_ACTIONS = ("Count", "FailIndex", "FailJob", "Ignore")
ON_EXIT_CODES_OPERATORS = ("In", "NotIn")
ON_POD_CONDITIONS_STATUSES = ("False", "True", "Unknown")
POD_REPLACEMENT_POLICIES = ("Failed", "TerminatingOrFailed")


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
        if spec.get("backoffLimit") is None:
            # with a limit per index the global one only applies when asked for
            spec["backoffLimit"] = MAX_INT32 if spec.get("backoffLimitPerIndex") is not None else 6
        spec.setdefault("completionMode", "NonIndexed")
        spec.setdefault("suspend", False)
        pfp = spec.get("podFailurePolicy")
        if spec.get("podReplacementPolicy") is None:
            # a pod failure policy must see a pod's final state, so it only replaces failed pods
            spec["podReplacementPolicy"] = "Failed" if pfp is not None else "TerminatingOrFailed"
        for rule in as_list(as_dict(pfp).get("rules")):
            for pattern in as_list(as_dict(rule).get("onPodConditions")):
                if isinstance(pattern, dict) and pattern.get("status") is None:
                    pattern["status"] = "True"
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
        elif spec.get("podFailurePolicy") is not None and rp != "Never":
            causes.append(invalid_cause("spec.template.spec.restartPolicy", rp,
                                        'only "Never" is supported when podFailurePolicy is specified'))
        for f in ("parallelism", "completions", "backoffLimit", "activeDeadlineSeconds", "ttlSecondsAfterFinished",
                  "backoffLimitPerIndex", "maxFailedIndexes"):
            v = spec.get(f)
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 0):
                causes.append(invalid_cause(f"spec.{f}", v, "must be greater than or equal to 0"))
        if spec.get("maxFailedIndexes") is not None and spec.get("backoffLimitPerIndex") is None:
            causes.append(required_cause("spec.backoffLimitPerIndex", "when maxFailedIndexes is specified"))
        cm = spec.get("completionMode", "NonIndexed")
        if cm not in ("NonIndexed", "Indexed"):
            causes.append(not_supported_cause("spec.completionMode", cm, ("NonIndexed", "Indexed")))
        if cm == "Indexed":
            if spec.get("completions") is None:
                causes.append(required_cause("spec.completions", "when completion mode is Indexed"))
            causes += _validate_per_index_limits(spec)
        else:
            for f in ("backoffLimitPerIndex", "maxFailedIndexes"):
                if spec.get(f) is not None:
                    causes.append(invalid_cause(f"spec.{f}", spec[f], "requires indexed completion mode"))
        if spec.get("podFailurePolicy") is not None:
            causes += _validate_pod_failure_policy(spec, "spec.podFailurePolicy")
        if spec.get("successPolicy") is not None:
            if cm != "Indexed":
                causes.append(invalid_cause("spec.successPolicy", spec["successPolicy"],
                                            "requires indexed completion mode"))
            else:
                causes += _validate_success_policy(spec, "spec.successPolicy")
        causes += _validate_pod_replacement_policy(spec, "spec.podReplacementPolicy")
        return causes

    def validate_update(self, new: Obj, old: Obj, namespaced: bool) -> list[Cause]:
        causes = super().validate_update(new, old, namespaced) + selector_immutable(new, old)
        ns, os_ = new.get("spec") or {}, old.get("spec") or {}
        if ns.get("completions") != os_.get("completions"):
            causes.append(invalid_cause("spec.completions", ns.get("completions"), "field is immutable"))
        if _template_changed(ns.get("template"), os_.get("template"), bool(os_.get("suspend")),
                             bool((old.get("status") or {}).get("startTime"))):
            causes.append(invalid_cause("spec.template", "", "field is immutable"))
        # the controller keeps per-index state (failure counts, failed and succeeded indexes) under these
        for f in ("completionMode", "podFailurePolicy", "backoffLimitPerIndex", "successPolicy"):
            causes += validate_immutable(ns.get(f), os_.get(f), f"spec.{f}")
        return causes


def _validate_per_index_limits(spec: Obj) -> list[Cause]:
    """Upstream's bounds on an Indexed job's failed indexes (they cap .status.failedIndexes)."""
    causes: list[Cause] = []
    completions, parallelism = as_int(spec.get("completions")), as_int(spec.get("parallelism"))
    mfi = as_int(spec.get("maxFailedIndexes"))
    if completions is not None and mfi is not None and mfi > completions:
        causes.append(invalid_cause("spec.maxFailedIndexes", mfi, "must be less than or equal to completions"))
    if mfi is not None and mfi > MAX_FAILED_INDEXES:
        causes.append(invalid_cause("spec.maxFailedIndexes", mfi, f"must be less than or equal to {MAX_FAILED_INDEXES}"))
    if completions is not None and completions > COMPLETIONS_SOFT_LIMIT and spec.get("backoffLimitPerIndex") is not None:
        high = f"when completions are above {COMPLETIONS_SOFT_LIMIT} and used with backoff limit per index"
        if spec.get("maxFailedIndexes") is None:
            causes.append(required_cause("spec.maxFailedIndexes",
                                         f"must be specified when completions is above {COMPLETIONS_SOFT_LIMIT}"))
        if parallelism is not None and parallelism > PARALLELISM_LIMIT_FOR_HIGH_COMPLETIONS:
            causes.append(invalid_cause("spec.parallelism", parallelism,
                                        f"must be less than or equal to {PARALLELISM_LIMIT_FOR_HIGH_COMPLETIONS} {high}"))
        if mfi is not None and mfi > MAX_FAILED_INDEXES_FOR_HIGH_COMPLETIONS:
            causes.append(invalid_cause("spec.maxFailedIndexes", mfi,
                                        f"must be less than or equal to {MAX_FAILED_INDEXES_FOR_HIGH_COMPLETIONS} {high}"))
    return causes


def _go_quoted_list(values: tuple[str, ...]) -> str:
    """A []string as Go's %q prints it: ["a" "b"]."""
    return "[" + " ".join(go_quote(v) for v in values) + "]"


def _validate_pod_failure_policy(spec: Obj, path: str) -> list[Cause]:
    causes: list[Cause] = []
    rules = as_list(as_dict(spec.get("podFailurePolicy")).get("rules"))
    if len(rules) > MAX_POD_FAILURE_POLICY_RULES:
        causes.append(too_many_cause(f"{path}.rules", len(rules), MAX_POD_FAILURE_POLICY_RULES))
    pod_spec = as_dict(as_dict(spec.get("template")).get("spec"))
    names = {as_dict(c).get("name") for c in as_list(pod_spec.get("containers")) + as_list(pod_spec.get("initContainers"))}
    for i, rule in enumerate(rules):
        causes += _validate_pod_failure_policy_rule(spec, as_dict(rule), f"{path}.rules[{i}]", names)
    return causes


def _validate_pod_failure_policy_rule(spec: Obj, rule: Obj, path: str, names: set[Any]) -> list[Cause]:
    causes: list[Cause] = []
    action = rule.get("action")
    if not action:
        causes.append(required_cause(f"{path}.action", f"valid values: {_go_quoted_list(POD_FAILURE_POLICY_ACTIONS)}"))
    elif action == "FailIndex":
        if spec.get("backoffLimitPerIndex") is None:
            causes.append(invalid_cause(f"{path}.action", action, "requires the backoffLimitPerIndex to be set"))
    elif action not in POD_FAILURE_POLICY_ACTIONS:
        causes.append(not_supported_cause(f"{path}.action", action, POD_FAILURE_POLICY_ACTIONS))
    on_exit_codes, on_conditions = rule.get("onExitCodes"), as_list(rule.get("onPodConditions"))
    if on_exit_codes is not None:
        causes += _validate_on_exit_codes(as_dict(on_exit_codes), f"{path}.onExitCodes", names)
    if on_conditions:
        causes += _validate_on_pod_conditions(on_conditions, f"{path}.onPodConditions")
    if on_exit_codes is not None and on_conditions:
        causes.append(invalid_cause(path, OMIT_VALUE, "specifying both OnExitCodes and OnPodConditions is not supported"))
    if on_exit_codes is None and not on_conditions:
        causes.append(invalid_cause(path, OMIT_VALUE, "specifying one of OnExitCodes and OnPodConditions is required"))
    return causes


def _validate_on_exit_codes(req: Obj, path: str, names: set[Any]) -> list[Cause]:
    causes: list[Cause] = []
    op = req.get("operator")
    if not op:
        causes.append(required_cause(f"{path}.operator", f"valid values: {_go_quoted_list(ON_EXIT_CODES_OPERATORS)}"))
    elif op not in ON_EXIT_CODES_OPERATORS:
        causes.append(not_supported_cause(f"{path}.operator", op, ON_EXIT_CODES_OPERATORS))
    name = req.get("containerName")
    if name is not None and name not in names:
        causes.append(invalid_cause(f"{path}.containerName", name,
                                    "must be one of the container or initContainer names in the pod template"))
    values = as_list(req.get("values"))
    if not values:
        causes.append(invalid_cause(f"{path}.values", values, "at least one value is required"))
    elif len(values) > MAX_ON_EXIT_CODES_VALUES:
        causes.append(too_many_cause(f"{path}.values", len(values), MAX_ON_EXIT_CODES_VALUES))
    seen: set[Any] = set()
    ordered = True
    for j, v in enumerate(values):
        if op == "In" and v == 0:
            causes.append(invalid_cause(f"{path}.values[{j}]", v, "must not be 0 for the In operator"))
        if v in seen:
            causes.append(duplicate_cause(f"{path}.values[{j}]", v))
        seen.add(v)
        if j > 0 and isinstance(v, int) and isinstance(values[j - 1], int) and values[j - 1] > v:
            ordered = False
    if not ordered:
        causes.append(invalid_cause(f"{path}.values", values, "must be ordered"))
    return causes


def _validate_on_pod_conditions(patterns: list[Any], path: str) -> list[Cause]:
    causes: list[Cause] = []
    if len(patterns) > MAX_ON_POD_CONDITIONS_PATTERNS:
        causes.append(too_many_cause(path, len(patterns), MAX_ON_POD_CONDITIONS_PATTERNS))
    for j, pattern in enumerate(patterns):
        pattern = as_dict(pattern)
        causes += validate_qualified_name(as_str(pattern.get("type")), f"{path}[{j}].type")
        status = pattern.get("status")
        if not status:
            causes.append(required_cause(f"{path}[{j}].status",
                                         f"valid values: {_go_quoted_list(ON_POD_CONDITIONS_STATUSES)}"))
        elif status not in ON_POD_CONDITIONS_STATUSES:
            causes.append(not_supported_cause(f"{path}[{j}].status", status, ON_POD_CONDITIONS_STATUSES))
    return causes


def _validate_success_policy(spec: Obj, path: str) -> list[Cause]:
    causes: list[Cause] = []
    rules = as_list(as_dict(spec.get("successPolicy")).get("rules"))
    if not rules:
        causes.append(required_cause(f"{path}.rules",
                                     "at least one rules must be specified when the successPolicy is specified"))
    if len(rules) > MAX_SUCCESS_POLICY_RULES:
        causes.append(too_many_cause(f"{path}.rules", len(rules), MAX_SUCCESS_POLICY_RULES))
    completions = as_int(spec.get("completions"))
    if completions is None:
        return causes  # already reported: an Indexed job requires completions
    for i, rule in enumerate(rules):
        rule, rule_path = as_dict(rule), f"{path}.rules[{i}]"
        indexes, count = rule.get("succeededIndexes"), rule.get("succeededCount")
        if indexes is None and count is None:
            causes.append(required_cause(rule_path, "at least one of succeededCount or succeededIndexes must be specified"))
        total = 0
        if indexes is not None:
            ipath = f"{rule_path}.succeededIndexes"
            if len(as_str(indexes)) > MAX_SUCCEEDED_INDEXES_LENGTH:
                causes.append(too_long_cause(ipath, MAX_SUCCEEDED_INDEXES_LENGTH))
            try:
                total = count_indexes(as_str(indexes), completions)
            except ValueError as e:
                causes.append(invalid_cause(ipath, indexes, f"error parsing succeededIndexes: {e}"))
        if count is not None:
            cpath = f"{rule_path}.succeededCount"
            if isinstance(count, int) and count < 0:
                causes.append(invalid_cause(cpath, count, "must be greater than or equal to 0"))
            if isinstance(count, int) and count > completions:
                causes.append(invalid_cause(
                    cpath, count, f"must be less than or equal to {completions} (the number of specified completions)"))
            if indexes is not None and isinstance(count, int) and count > total:
                causes.append(invalid_cause(
                    cpath, count,
                    f"must be less than or equal to {total} (the number of indexes in the specified succeededIndexes field)"))
    return causes


_ATOI = re.compile(r"[+-]?[0-9]+")


def _parse_index(s: str) -> int:
    """Go's strconv.Atoi: optional sign, decimal digits, within int64."""
    if _ATOI.fullmatch(s) is None or not -(2**63) <= int(s) < 2**63:
        raise ValueError(f"cannot convert string to integer for index: {go_quote(s)}")
    return int(s)


def _parse_index_interval(part: str, completions: int) -> tuple[int, int]:
    limits = part.split("-")
    if len(limits) > 2:
        raise ValueError(f"the fragment {go_quote(part)} violates the requirement that an index interval can have "
                         "at most two parts separated by '-'")
    x = _parse_index(limits[0])
    if x >= completions:
        raise ValueError(f"too large index: {go_quote(limits[0])}")
    if len(limits) == 1:
        return x, x
    y = _parse_index(limits[1])
    if y >= completions:
        raise ValueError(f"too large index: {go_quote(limits[1])}")
    if x >= y:
        raise ValueError(f"non-increasing order, previous: {x}, current: {y}")
    return x, y


def count_indexes(s: str, completions: int) -> int:
    """How many indexes an interval list (`1,3-5`) names; ValueError with upstream's message when it is
    malformed, out of [0, completions) or not strictly increasing."""
    if not s:
        return 0
    total, last = 0, None
    for part in s.split(","):
        x, y = _parse_index_interval(part, completions)
        if last is not None and last >= x:
            raise ValueError(f"non-increasing order, previous: {last}, current: {x}")
        total += y - x + 1
        last = y
    return total


def _validate_pod_replacement_policy(spec: Obj, path: str) -> list[Cause]:
    policy = spec.get("podReplacementPolicy")
    if policy is None:
        return []
    if spec.get("podFailurePolicy") is not None:
        return [] if policy == "Failed" else [not_supported_cause(path, policy, ("Failed",))]
    return [] if policy in POD_REPLACEMENT_POLICIES else [not_supported_cause(path, policy, POD_REPLACEMENT_POLICIES)]


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
