"""Strategies for batch/v1 kinds."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from typing import Any

from apimachinery import cron
from apimachinery.meta import parse_time
from apimachinery.selectors import LabelSelectorError, selector_from_label_selector
from apimachinery.validation import (
    FIELD_VALUE_INVALID,
    IS_NEGATIVE_ERROR_MSG,
    OMIT_VALUE,
    duplicate_cause,
    field_cause,
    go_atoi,
    go_quote,
    invalid_cause,
    is_dns1123_label,
    key,
    not_supported_cause,
    render_value,
    required_cause,
    too_long_cause,
    too_many_cause,
    validate_immutable,
    validate_label_selector,
    validate_nonnegative,
    validate_object_meta_update,
    validate_qualified_name,
)
from apiserver.registry.base import Cause, Obj, Strategy, as_dict, as_int, as_list, as_str
from apiserver.registry.workloads import default_template, selector_immutable, validate_pod_template_spec

CONTROLLER_UID = "batch.kubernetes.io/controller-uid"
JOB_NAME = "batch.kubernetes.io/job-name"
# what Jobs labelled their pods with before the prefixed labels (still set, and still selected on)
LEGACY_CONTROLLER_UID = "controller-uid"
LEGACY_JOB_NAME = "job-name"
MAX_INT32 = 2**31 - 1

# upstream pkg/apis/batch/validation limits
MAX_PARALLELISM_FOR_INDEXED_JOB = 100_000
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
        # a Job without labels gets its pod template's (upstream SetDefaults_Job, which also runs
        # when a stored Job is read: one whose template had none shows the generated selector labels)
        template_labels = as_dict(as_dict(as_dict(spec.get("template")).get("metadata")).get("labels"))
        meta = obj.get("metadata")
        if isinstance(meta, dict) and not meta.get("labels") and template_labels:
            meta["labels"] = dict(template_labels)
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
        if spec.get("manualSelector") is None:
            spec["manualSelector"] = False

    def prepare_for_create(self, obj: Obj) -> None:
        super().prepare_for_create(obj)
        spec = obj.get("spec")
        if isinstance(spec, dict) and spec.get("manualSelector") is not True:
            _generate_selector(obj, spec)

    def validate(self, obj: Obj, namespaced: bool) -> list[Cause]:
        return self._validate(obj, namespaced, True)

    def _validate(self, obj: Obj, namespaced: bool, prefixed_labels: bool) -> list[Cause]:
        """Upstream ValidateJob (it runs on updates too)."""
        causes = super().validate(obj, namespaced)
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return [*causes, required_cause("spec")]
        causes += _validate_generated_selector(obj, spec, prefixed_labels)
        causes += validate_job_spec(spec, "spec") + _validate_job_selector(spec)
        return causes + _validate_indexed_hostname(obj)

    def validate_update(self, new: Obj, old: Obj, namespaced: bool) -> list[Cause]:
        # Jobs from before the batch.kubernetes.io/ labels are not asked for them (upstream RequirePrefixedLabels)
        old_labels = as_dict(as_dict(as_dict(as_dict(old.get("spec")).get("template")).get("metadata")).get("labels"))
        causes = self._validate(new, namespaced, JOB_NAME in old_labels and CONTROLLER_UID in old_labels)
        causes += validate_object_meta_update(new.get("metadata") or {}, old.get("metadata") or {})
        causes += selector_immutable(new, old)
        ns, os_ = new.get("spec") or {}, old.get("spec") or {}
        causes += _validate_completions_update(ns, os_)
        if _template_changed(ns.get("template"), os_.get("template"), bool(os_.get("suspend")),
                             bool((old.get("status") or {}).get("startTime"))):
            causes.append(invalid_cause("spec.template", "", "field is immutable"))
        # the controller keeps per-index state (failure counts, failed and succeeded indexes) under these
        for f in ("completionMode", "podFailurePolicy", "backoffLimitPerIndex", "successPolicy"):
            causes += validate_immutable(ns.get(f), os_.get(f), f"spec.{f}")
        return causes

    def validate_status_update(self, new: Obj, old: Obj) -> list[Cause]:
        """Upstream ValidateJobUpdateStatus with 1.31's default feature gates."""
        causes = validate_object_meta_update(new.get("metadata") or {}, old.get("metadata") or {})
        return causes + validate_job_status_update(new, old, job_status_rules(new, old))


_NONNEGATIVE_JOB_FIELDS = ("parallelism", "completions", "activeDeadlineSeconds", "backoffLimit",
                           "ttlSecondsAfterFinished", "backoffLimitPerIndex", "maxFailedIndexes")


def _validate_nonnegative_fields(spec: Obj, fields: tuple[str, ...], path: str) -> list[Cause]:
    causes: list[Cause] = []
    for f in fields:
        v = spec.get(f)
        if v is not None and (as_int(v) is None or v < 0):
            causes.append(invalid_cause(f"{path}.{f}", v, IS_NEGATIVE_ERROR_MSG))
    return causes


def validate_job_spec(spec: Obj, path: str) -> list[Cause]:
    """Upstream validateJobSpec: what a Job's spec and a CronJob's spec.jobTemplate.spec have to
    satisfy alike (the selector rules differ and are the callers')."""
    causes = _validate_nonnegative_fields(spec, _NONNEGATIVE_JOB_FIELDS, path)
    if spec.get("maxFailedIndexes") is not None and spec.get("backoffLimitPerIndex") is None:
        causes.append(required_cause(f"{path}.backoffLimitPerIndex", "when maxFailedIndexes is specified"))
    cm = spec.get("completionMode")
    if cm is not None:
        if cm not in ("NonIndexed", "Indexed"):
            causes.append(not_supported_cause(f"{path}.completionMode", cm, ("NonIndexed", "Indexed")))
        if cm == "Indexed":
            if spec.get("completions") is None:
                causes.append(required_cause(f"{path}.completions", "when completion mode is Indexed"))
            causes += _validate_indexed_limits(spec, path)
    if cm in (None, "NonIndexed"):
        for f in ("backoffLimitPerIndex", "maxFailedIndexes"):
            if spec.get(f) is not None:
                causes.append(invalid_cause(f"{path}.{f}", spec[f], "requires indexed completion mode"))
    if spec.get("podFailurePolicy") is not None:
        causes += _validate_pod_failure_policy(spec, f"{path}.podFailurePolicy")
    if spec.get("successPolicy") is not None:
        if cm != "Indexed":
            causes.append(invalid_cause(f"{path}.successPolicy", spec["successPolicy"],
                                        "requires indexed completion mode"))
        else:
            causes += _validate_success_policy(spec, f"{path}.successPolicy")
    causes += _validate_pod_replacement_policy(spec, f"{path}.podReplacementPolicy")
    causes += validate_pod_template_spec(spec.get("template"), f"{path}.template")
    rp_path = f"{path}.template.spec.restartPolicy"
    rp = as_dict(as_dict(spec.get("template")).get("spec")).get("restartPolicy")
    # the pod defaults fill in Always when restartPolicy is left out: both read as "not chosen"
    if rp in (None, "", "Always"):
        causes.append(required_cause(rp_path, f"valid values: {go_quote('OnFailure')}, {go_quote('Never')}"))
    elif rp not in ("OnFailure", "Never"):
        causes.append(not_supported_cause(rp_path, rp, ("OnFailure", "Never")))
    elif spec.get("podFailurePolicy") is not None and rp != "Never":
        causes.append(invalid_cause(rp_path, rp, 'only "Never" is supported when podFailurePolicy is specified'))
    return causes


def _generate_selector(job: Obj, spec: Obj) -> None:
    """Upstream generateSelector: the pods get the Job's name and uid as labels (those the user set
    are kept, and validation then refuses them if they differ), and the selector asks for the uid, so
    the pods of another Job never match."""
    meta = job["metadata"]
    uid, name = meta.get("uid", ""), meta.get("name", "")
    tpl = spec.get("template")
    if not isinstance(tpl, dict):
        return
    if not isinstance(tpl.get("metadata"), dict):
        tpl["metadata"] = {}
    if not isinstance(tpl["metadata"].get("labels"), dict):
        tpl["metadata"]["labels"] = {}
    labels = tpl["metadata"]["labels"]
    for label, value in ((LEGACY_JOB_NAME, name), (JOB_NAME, name), (LEGACY_CONTROLLER_UID, uid), (CONTROLLER_UID, uid)):
        labels.setdefault(label, value)
    if not isinstance(spec.get("selector"), dict):
        spec["selector"] = {}
    if not isinstance(spec["selector"].get("matchLabels"), dict):
        spec["selector"]["matchLabels"] = {}
    spec["selector"]["matchLabels"].setdefault(CONTROLLER_UID, uid)


def _validate_generated_selector(job: Obj, spec: Obj, prefixed_labels: bool) -> list[Cause]:
    """Upstream validateGeneratedSelector: unless the selector is manual, the pod template carries the
    generated labels and the selector matches exactly those."""
    if spec.get("manualSelector") is True or spec.get("selector") is None:
        return []
    meta = as_dict(job.get("metadata"))
    uid, name = as_str(meta.get("uid")), as_str(meta.get("name"))
    causes = [] if uid else [required_cause("metadata.uid")]
    expected = {LEGACY_CONTROLLER_UID: uid, LEGACY_JOB_NAME: name}
    if prefixed_labels:
        expected |= {CONTROLLER_UID: uid, JOB_NAME: name}
    labels = as_dict(as_dict(as_dict(spec.get("template")).get("metadata")).get("labels"))
    # upstream's order: the legacy pair, then the prefixed one
    for label in (LEGACY_CONTROLLER_UID, LEGACY_JOB_NAME, CONTROLLER_UID, JOB_NAME):
        if label not in expected:
            continue
        path = key("spec.template.metadata.labels", label)
        if label not in labels:
            causes.append(required_cause(path, f"must be '{expected[label]}'"))
        elif labels[label] != expected[label]:
            causes.append(invalid_cause(path, dict(sorted(labels.items())), f"must be '{expected[label]}'"))
    try:
        selector = selector_from_label_selector(spec["selector"])
    except (LabelSelectorError, ValueError, TypeError, AttributeError):
        return causes  # reported by the selector's own validation
    if not selector.matches(expected):
        causes.append(invalid_cause("spec.selector", spec["selector"], "`selector` not auto-generated"))
    return causes


def _validate_job_selector(spec: Obj) -> list[Cause]:
    """Upstream ValidateJobSpec's part beyond validateJobSpec: a selector matching the template."""
    sel = spec.get("selector")
    if sel is None:
        return [required_cause("spec.selector")]
    causes = validate_label_selector(sel, "spec.selector")
    try:
        selector = selector_from_label_selector(sel)
    except (LabelSelectorError, ValueError) as e:
        return causes or [invalid_cause("spec.selector", sel, str(e))]
    labels = as_dict(as_dict(as_dict(spec.get("template")).get("metadata")).get("labels"))
    if not selector.matches(labels):
        causes.append(invalid_cause("spec.template.metadata.labels", labels, "`selector` does not match template `labels`"))
    return causes


def _validate_indexed_hostname(job: Obj) -> list[Cause]:
    """An Indexed Job's pods are named and hostnamed `<job>-<index>`: the largest must be a DNS label."""
    spec, name = as_dict(job.get("spec")), as_str(as_dict(job.get("metadata")).get("name"))
    completions = as_int(spec.get("completions"))
    if spec.get("completionMode") != "Indexed" or completions is None or completions <= 0:
        return []
    hostname = f"{name}-{completions - 1}"
    if is_dns1123_label(hostname) == []:
        return []
    return [invalid_cause("metadata.name", name, f"will not able to create pod with invalid DNS label: {hostname}")]


def _validate_completions_update(new: Obj, old: Obj) -> list[Cause]:
    """Upstream validateCompletions (ElasticIndexedJob, GA in 1.31): an Indexed Job scales by
    changing completions and parallelism to the same value; otherwise completions is immutable."""
    path = "spec.completions"
    completions = new.get("completions")
    if new.get("completionMode") != "Indexed":
        return validate_immutable(completions, old.get("completions"), path)
    if completions == old.get("completions") or completions is None:
        return []  # a missing one is already reported: Indexed requires completions
    if completions != new.get("parallelism"):
        return [invalid_cause(path, completions, "can only be modified in tandem with spec.parallelism")]
    return []


def _validate_indexed_limits(spec: Obj, path: str) -> list[Cause]:
    """Upstream's bounds on an Indexed job (they cap .status.completedIndexes and .status.failedIndexes)."""
    causes: list[Cause] = []
    completions, parallelism = as_int(spec.get("completions")), as_int(spec.get("parallelism"))
    if parallelism is not None and parallelism > MAX_PARALLELISM_FOR_INDEXED_JOB:
        causes.append(invalid_cause(f"{path}.parallelism", parallelism,
                                    f"must be less than or equal to {MAX_PARALLELISM_FOR_INDEXED_JOB} "
                                    "when completion mode is Indexed"))
    mfi = as_int(spec.get("maxFailedIndexes"))
    if completions is not None and mfi is not None and mfi > completions:
        causes.append(invalid_cause(f"{path}.maxFailedIndexes", mfi, "must be less than or equal to completions"))
    if mfi is not None and mfi > MAX_FAILED_INDEXES:
        causes.append(invalid_cause(f"{path}.maxFailedIndexes", mfi,
                                    f"must be less than or equal to {MAX_FAILED_INDEXES}"))
    if completions is not None and completions > COMPLETIONS_SOFT_LIMIT and spec.get("backoffLimitPerIndex") is not None:
        high = f"when completions are above {COMPLETIONS_SOFT_LIMIT} and used with backoff limit per index"
        if spec.get("maxFailedIndexes") is None:
            causes.append(required_cause(f"{path}.maxFailedIndexes",
                                         f"must be specified when completions is above {COMPLETIONS_SOFT_LIMIT}"))
        if parallelism is not None and parallelism > PARALLELISM_LIMIT_FOR_HIGH_COMPLETIONS:
            causes.append(invalid_cause(f"{path}.parallelism", parallelism,
                                        f"must be less than or equal to {PARALLELISM_LIMIT_FOR_HIGH_COMPLETIONS} {high}"))
        if mfi is not None and mfi > MAX_FAILED_INDEXES_FOR_HIGH_COMPLETIONS:
            causes.append(invalid_cause(f"{path}.maxFailedIndexes", mfi,
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


def _parse_index(s: str) -> int:
    try:
        return go_atoi(s)
    except ValueError:
        raise ValueError(f"cannot convert string to integer for index: {go_quote(s)}") from None


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


# -- Job status (upstream ValidateJobUpdateStatus) ------------------------------------------------

#: JobManagedBy is alpha, off by default, in 1.31: the stricter status rules below (the transitions a
#: Job controller, ours or an external one, has to follow) apply only when it is on. Tests turn it on
#: to hold our Job controller to them.
JOB_MANAGED_BY = False


@dataclasses.dataclass(frozen=True)
class JobStatusRules:
    """Which of upstream's conditional status rules apply (JobStatusValidationOptions)."""

    reject_decreasing_succeeded: bool = False
    reject_decreasing_failed: bool = False
    reject_disabling_terminal_condition: bool = False
    reject_invalid_completed_indexes: bool = False
    reject_invalid_failed_indexes: bool = False
    reject_failed_indexes_overlapping_completed: bool = False
    reject_completed_indexes_for_non_indexed: bool = False
    reject_failed_indexes_without_backoff_limit_per_index: bool = False
    reject_failed_without_failure_target: bool = False
    reject_complete_without_success_criteria_met: bool = False
    reject_finished_with_active_pods: bool = False
    reject_finished_without_start_time: bool = False
    reject_finished_with_uncounted_pods: bool = False
    reject_start_time_update_for_unsuspended: bool = False
    reject_completion_time_before_start_time: bool = False
    reject_mutating_completion_time: bool = False
    reject_complete_without_completion_time: bool = False
    reject_completion_time_without_complete: bool = False
    reject_complete_with_failed: bool = False
    reject_complete_with_failure_target: bool = False
    #: SuccessCriteriaMet on any Job (not only an Indexed one with a success policy): the Job
    #: controller records it before Complete since JobPodReplacementPolicy (beta, on in 1.31)
    allow_success_criteria_met_in_extended_scope: bool = False
    reject_more_ready_than_active: bool = False
    reject_finished_with_terminating_pods: bool = False


def _is_true(status: Obj, type_: str) -> bool:
    return any(isinstance(c, dict) and c.get("type") == type_ and c.get("status") == "True"
               for c in as_list(status.get("conditions")))


def _is_finished(status: Obj) -> bool:
    return _is_true(status, "Complete") or _is_true(status, "Failed")


def job_status_rules(new: Obj, old: Obj, managed_by: bool | None = None) -> JobStatusRules:
    """Upstream getStatusValidationOptions. With JobManagedBy most rules only judge what a write
    changes, so a status that already broke one stays writable (and one the controller has yet
    to catch up with after a spec change, e.g. completedIndexes past a lowered completions)."""
    if not (JOB_MANAGED_BY if managed_by is None else managed_by):
        # JobPodReplacementPolicy (on in 1.31) alone only widens where SuccessCriteriaMet may be
        return JobStatusRules(allow_success_criteria_met_in_extended_scope=True)
    ns, os_ = as_dict(new.get("status")), as_dict(old.get("status"))
    spec = as_dict(new.get("spec"))

    def changed(*fields: str) -> bool:
        return any(ns.get(f) != os_.get(f) for f in fields)

    def flipped(type_: str) -> bool:
        return _is_true(ns, type_) != _is_true(os_, type_)

    finished = _is_finished(ns) != _is_finished(os_)
    complete, failed = flipped("Complete"), flipped("Failed")
    indexes = changed("completedIndexes", "failedIndexes")
    return JobStatusRules(
        # an Indexed Job scaled down (completions with parallelism) loses succeeded indexes
        reject_decreasing_succeeded=spec.get("completionMode") != "Indexed"
        or spec.get("completions") != spec.get("parallelism"),
        reject_decreasing_failed=True,
        reject_disabling_terminal_condition=True,
        reject_invalid_completed_indexes=changed("completedIndexes"),
        reject_invalid_failed_indexes=changed("failedIndexes"),
        reject_failed_indexes_overlapping_completed=indexes,
        reject_completed_indexes_for_non_indexed=changed("completedIndexes"),
        reject_failed_indexes_without_backoff_limit_per_index=changed("failedIndexes"),
        reject_failed_without_failure_target=failed or changed("failedIndexes"),
        reject_complete_without_success_criteria_met=complete or flipped("SuccessCriteriaMet"),
        reject_finished_with_active_pods=finished or changed("active"),
        reject_finished_without_start_time=finished or changed("startTime"),
        reject_finished_with_uncounted_pods=finished or changed("uncountedTerminatedPods"),
        reject_start_time_update_for_unsuspended=changed("startTime"),
        reject_completion_time_before_start_time=changed("startTime", "completionTime"),
        reject_mutating_completion_time=True,
        reject_complete_without_completion_time=complete or changed("completionTime"),
        reject_completion_time_without_complete=complete or changed("completionTime"),
        reject_complete_with_failed=complete or failed,
        reject_complete_with_failure_target=complete or flipped("FailureTarget"),
        allow_success_criteria_met_in_extended_scope=True,
        reject_more_ready_than_active=changed("ready", "active"),
        reject_finished_with_terminating_pods=finished or changed("terminating"),
    )


def _go_time(value: Any) -> str:
    """A metav1.Time as a field error prints it (Go's time.Time String)."""
    try:
        return parse_time(as_str(value)).astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S +0000 UTC")
    except ValueError:
        return render_value(value)


def _time_cause(path: str, value: Any, detail: str) -> Cause:
    return field_cause(path, f"Invalid value: {_go_time(value)}: {detail}", FIELD_VALUE_INVALID)


def _before(a: Any, b: Any) -> bool:
    try:
        return parse_time(as_str(a)) < parse_time(as_str(b))
    except ValueError:
        return False


def _uncounted_causes(uncounted: Obj, path: str) -> list[Cause]:
    causes: list[Cause] = []
    seen: set[Any] = set()
    for part in ("succeeded", "failed"):
        for i, uid in enumerate(as_list(uncounted.get(part))):
            p = f"{path}.{part}[{i}]"
            if uid == "":
                causes.append(invalid_cause(p, uid, "must not be empty"))
            elif uid in seen:
                causes.append(duplicate_cause(p, uid))
            else:
                seen.add(uid)
    return causes


def _first_overlap(completed: str, failed: str, completions: int) -> int | None:
    """Upstream validateFailedIndexesNotOverlapCompleted: both lists walked in step (intervals that do
    not parse are skipped, their format is judged on its own); the first index in both, if any."""
    if not completed or not failed:
        return None
    cs, fs = completed.split(","), failed.split(",")

    def parse(parts: list[str], i: int) -> tuple[int, int] | None:
        try:
            return _parse_index_interval(parts[i], completions) if i < len(parts) else None
        except ValueError:
            return None

    ci = fi = 0
    c, f = parse(cs, 0), parse(fs, 0)
    while ci < len(cs) and fi < len(fs):
        if c is None:
            ci += 1
            c = parse(cs, ci)
        elif f is None:
            fi += 1
            f = parse(fs, fi)
        elif c[0] <= f[1] and f[0] <= c[1]:
            return max(c[0], f[0])
        elif c[0] <= f[0]:
            ci += 1
            c = parse(cs, ci)
        else:
            fi += 1
            f = parse(fs, fi)
    return None


def validate_job_status(job: Obj, rules: JobStatusRules) -> list[Cause]:
    """Upstream validateJobStatus."""
    spec, status = as_dict(job.get("spec")), as_dict(job.get("status"))
    causes: list[Cause] = []
    for f in ("active", "succeeded", "failed", "ready", "terminating"):
        causes += validate_nonnegative(status.get(f), f"status.{f}")
    if isinstance(status.get("uncountedTerminatedPods"), dict):
        causes += _uncounted_causes(status["uncountedTerminatedPods"], "status.uncountedTerminatedPods")
    conditions = "status.conditions"
    complete, failed = _is_true(status, "Complete"), _is_true(status, "Failed")
    target, met = _is_true(status, "FailureTarget"), _is_true(status, "SuccessCriteriaMet")
    finished = complete or failed
    completion_time, start_time = status.get("completionTime"), status.get("startTime")
    if rules.reject_complete_with_failed and complete and failed:
        causes.append(invalid_cause(conditions, OMIT_VALUE, "cannot set Complete=True and Failed=true conditions"))
    if rules.reject_complete_with_failure_target and complete and target:
        causes.append(invalid_cause(conditions, OMIT_VALUE, "cannot set Complete=True and FailureTarget=true conditions"))
    if rules.reject_completion_time_without_complete and completion_time is not None and not complete:
        causes.append(_time_cause("status.completionTime", completion_time,
                                  "cannot set completionTime when there is no Complete=True condition"))
    if rules.reject_complete_without_completion_time and completion_time is None and complete:
        causes.append(required_cause("status.completionTime", "completionTime is required for Complete jobs"))
    if (rules.reject_completion_time_before_start_time and start_time is not None and completion_time is not None
            and _before(completion_time, start_time)):
        causes.append(_time_cause("status.completionTime", completion_time, "completionTime cannot be set before startTime"))
    if rules.reject_failed_without_failure_target and failed and not target:
        causes.append(invalid_cause(conditions, OMIT_VALUE,
                                    "cannot set Failed=True condition without the FailureTarget=true condition"))
    if rules.reject_complete_without_success_criteria_met and complete and not met:
        causes.append(invalid_cause(conditions, OMIT_VALUE,
                                    "cannot set Complete=True condition without the SuccessCriteriaMet=true condition"))
    active = as_int(status.get("active")) or 0
    if rules.reject_finished_with_active_pods and active > 0 and finished:
        causes.append(invalid_cause("status.active", active, "active>0 is invalid for finished job"))
    if rules.reject_finished_without_start_time and start_time is None and finished:
        causes.append(required_cause("status.startTime", "startTime is required for finished job"))
    uncounted = as_dict(status.get("uncountedTerminatedPods"))
    if (rules.reject_finished_with_uncounted_pods and finished
            and (as_list(uncounted.get("failed")) or as_list(uncounted.get("succeeded")))):
        causes.append(invalid_cause("status.uncountedTerminatedPods", uncounted,
                                    "uncountedTerminatedPods needs to be empty for finished job"))
    completions = as_int(spec.get("completions"))
    completed_indexes, failed_indexes = as_str(status.get("completedIndexes")), status.get("failedIndexes")
    if rules.reject_invalid_completed_indexes and completions is not None:
        try:
            count_indexes(completed_indexes, completions)
        except ValueError as e:
            causes.append(invalid_cause("status.completedIndexes", completed_indexes,
                                        f"error parsing completedIndexes: {e}"))
    if (rules.reject_invalid_failed_indexes and completions is not None
            and spec.get("backoffLimitPerIndex") is not None and failed_indexes is not None):
        try:
            count_indexes(as_str(failed_indexes), completions)
        except ValueError as e:
            causes.append(invalid_cause("status.failedIndexes", failed_indexes, f"error parsing failedIndexes: {e}"))
    if rules.reject_completed_indexes_for_non_indexed and completed_indexes and spec.get("completionMode") != "Indexed":
        causes.append(invalid_cause("status.completedIndexes", completed_indexes,
                                    "cannot set non-empty completedIndexes when non-indexed completion mode"))
    # a NonIndexed Job has no backoffLimitPerIndex either: this also keeps failedIndexes off it
    if (rules.reject_failed_indexes_without_backoff_limit_per_index and spec.get("backoffLimitPerIndex") is None
            and failed_indexes is not None):
        causes.append(invalid_cause("status.failedIndexes", failed_indexes,
                                    "cannot set non-null failedIndexes when backoffLimitPerIndex is null"))
    if rules.reject_failed_indexes_overlapping_completed and completions is not None and failed_indexes is not None:
        overlap = _first_overlap(completed_indexes, as_str(failed_indexes), completions)
        if overlap is not None:
            causes.append(invalid_cause("status.failedIndexes", failed_indexes,
                                        f"failedIndexes and completedIndexes overlap at index: {overlap}"))
    terminating, ready = as_int(status.get("terminating")), as_int(status.get("ready"))
    if rules.reject_finished_with_terminating_pods and terminating and terminating > 0 and finished:
        causes.append(invalid_cause("status.terminating", terminating, "terminating>0 is invalid for finished job"))
    if rules.reject_more_ready_than_active and ready is not None and ready > active:
        causes.append(invalid_cause("status.ready", ready, "cannot set more ready pods than active"))
    if not rules.allow_success_criteria_met_in_extended_scope and spec.get("completionMode") != "Indexed" and met:
        causes.append(invalid_cause(conditions, OMIT_VALUE, "cannot set SuccessCriteriaMet to NonIndexed Job"))
    if met and failed:
        causes.append(invalid_cause(conditions, OMIT_VALUE, "cannot set SuccessCriteriaMet=True and Failed=true conditions"))
    if met and target:
        causes.append(invalid_cause(conditions, OMIT_VALUE,
                                    "cannot set SuccessCriteriaMet=True and FailureTarget=true conditions"))
    if not rules.allow_success_criteria_met_in_extended_scope and spec.get("successPolicy") is None and met:
        causes.append(invalid_cause(conditions, OMIT_VALUE, "cannot set SuccessCriteriaMet=True for Job without SuccessPolicy"))
    if spec.get("successPolicy") is not None and not met and complete:
        causes.append(invalid_cause(conditions, OMIT_VALUE,
                                    "cannot set Complete=True for Job with SuccessPolicy unless SuccessCriteriaMet=True"))
    return causes


def validate_job_status_update(new: Obj, old: Obj, rules: JobStatusRules) -> list[Cause]:
    """Upstream ValidateJobStatusUpdate: the status itself, then what it may not undo."""
    causes = validate_job_status(new, rules)
    ns, os_ = as_dict(new.get("status")), as_dict(old.get("status"))
    conditions = "status.conditions"
    if rules.reject_disabling_terminal_condition:
        for type_ in ("Failed", "Complete", "FailureTarget"):
            if _is_true(os_, type_) and not _is_true(ns, type_):
                causes.append(invalid_cause(conditions, OMIT_VALUE, f"cannot disable the terminal {type_}=True condition"))
    for f, rule in (("failed", rules.reject_decreasing_failed), ("succeeded", rules.reject_decreasing_succeeded)):
        value = as_int(ns.get(f)) or 0
        if rule and value < (as_int(os_.get(f)) or 0):
            causes.append(invalid_cause(f"status.{f}", value, f"cannot decrease the {f} counter"))
    completion_time = ns.get("completionTime")
    if (rules.reject_mutating_completion_time and completion_time is not None and os_.get("completionTime") is not None
            and completion_time != os_["completionTime"]):
        causes.append(_time_cause("status.completionTime", completion_time, "completionTime cannot be mutated"))
    # from no startTime to one is how a Job starts; changing it is for resuming a suspended one
    if (rules.reject_start_time_update_for_unsuspended and os_.get("startTime") is not None
            and os_.get("startTime") != ns.get("startTime") and not as_dict(new.get("spec")).get("suspend")):
        causes.append(required_cause("status.startTime", "startTime cannot be removed for unsuspended job"))
    if _is_true(os_, "SuccessCriteriaMet") and not _is_true(ns, "SuccessCriteriaMet"):
        causes.append(invalid_cause(conditions, OMIT_VALUE, "cannot disable the SuccessCriteriaMet=True condition"))
    if _is_true(os_, "Complete") and not _is_true(os_, "SuccessCriteriaMet") and _is_true(ns, "SuccessCriteriaMet"):
        causes.append(invalid_cause(conditions, OMIT_VALUE,
                                    "cannot set SuccessCriteriaMet=True for Job already has Complete=true conditions"))
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


#: the cronjob controller names its Jobs `<cronjob>-<minutes since epoch>` (11 more characters),
#: and a Job's name goes into its pods' labels (63 characters at most)
MAX_CRONJOB_NAME_LENGTH = 63 - 11
CONCURRENCY_POLICIES = ("Allow", "Forbid", "Replace")
# a time zone name's parts as https://data.iana.org/time-zones/theory.html#naming has them (digits
# and '+' tolerated for legacy names), as upstream checks before loading the zone
_TIME_ZONE_PART = re.compile(r"[A-Za-z.\-_0-9+]{1,14}")


class CronJobStrategy(Strategy):
    has_status = True
    tracks_generation = True

    def default(self, obj: Obj) -> None:
        """Upstream SetDefaults_CronJob; the job template gets the pod defaults only (the Job the
        controller makes from it is defaulted when it is created)."""
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return
        if not spec.get("concurrencyPolicy"):
            spec["concurrencyPolicy"] = "Allow"
        for f, v in (("suspend", False), ("successfulJobsHistoryLimit", 3), ("failedJobsHistoryLimit", 1)):
            if spec.get(f) is None:
                spec[f] = v
        default_template(as_dict(spec.get("jobTemplate")))

    def validate(self, obj: Obj, namespaced: bool) -> list[Cause]:
        """Upstream ValidateCronJobCreate."""
        causes = super().validate(obj, namespaced) + _validate_cron_job_spec(obj.get("spec"), None)
        name = as_str(as_dict(obj.get("metadata")).get("name"))
        if len(name) > MAX_CRONJOB_NAME_LENGTH:
            causes.append(invalid_cause("metadata.name", name, f"must be no more than {MAX_CRONJOB_NAME_LENGTH} characters"))
        return causes

    def validate_update(self, new: Obj, old: Obj, namespaced: bool) -> list[Cause]:
        """Upstream ValidateCronJobUpdate: no name length limit (older CronJobs must stay editable),
        and a TZ in the schedule or a time zone is only judged when it changes."""
        causes = super().validate(new, namespaced)
        causes += validate_object_meta_update(new.get("metadata") or {}, old.get("metadata") or {})
        return causes + _validate_cron_job_spec(new.get("spec"), as_dict(old.get("spec")))


def _validate_cron_job_spec(spec: Any, old: Obj | None) -> list[Cause]:
    if not isinstance(spec, dict):
        return [required_cause("spec")]
    causes: list[Cause] = []
    schedule = spec.get("schedule")
    if not schedule:
        causes.append(required_cause("spec.schedule"))
    else:
        causes += _validate_schedule(str(schedule), spec.get("timeZone"), old)
    causes += _validate_nonnegative_fields(spec, ("startingDeadlineSeconds",), "spec")
    if old is None or old.get("timeZone") != spec.get("timeZone"):
        causes += _validate_time_zone(spec.get("timeZone"), "spec.timeZone")
    cp = spec.get("concurrencyPolicy")
    if not cp:
        causes.append(required_cause("spec.concurrencyPolicy"))
    elif cp not in CONCURRENCY_POLICIES:
        causes.append(not_supported_cause("spec.concurrencyPolicy", cp, CONCURRENCY_POLICIES))
    causes += _validate_job_template(spec.get("jobTemplate"), "spec.jobTemplate")
    return causes + _validate_nonnegative_fields(spec, ("successfulJobsHistoryLimit", "failedJobsHistoryLimit"), "spec")


def _validate_schedule(schedule: str, time_zone: Any, old: Obj | None) -> list[Cause]:
    causes: list[Cause] = []
    try:
        cron.parse(schedule)
    except cron.CronError as e:
        causes.append(invalid_cause("spec.schedule", schedule, str(e)))
    # a TZ in the schedule only stays on CronJobs that had it before the timeZone field existed
    tz_allowed = old is not None and "TZ" in as_str(old.get("schedule"))
    if tz_allowed and "TZ" in schedule and time_zone is not None:
        causes.append(invalid_cause("spec.schedule", schedule, "cannot use both timeZone field and TZ or CRON_TZ in schedule"))
    elif not tz_allowed and "TZ" in schedule:
        causes.append(invalid_cause("spec.schedule", schedule, "cannot use TZ or CRON_TZ in schedule, use timeZone field instead"))
    return causes


def _validate_time_zone(tz: Any, path: str) -> list[Cause]:
    if tz is None:
        return []
    if tz == "":
        return [invalid_cause(path, tz, "timeZone must be nil or non-empty string")]
    name = as_str(tz)
    for part in name.split("/"):
        if part in (".", "..") or part.startswith("-") or _TIME_ZONE_PART.fullmatch(part) is None:
            return [invalid_cause(path, tz, f"unknown time zone {tz}")]
    causes: list[Cause] = []
    if name.lower() == "local":
        causes.append(invalid_cause(path, tz, "timeZone must be an explicit time zone as defined in "
                                              "https://www.iana.org/time-zones"))
        if name == "Local":
            return causes  # Go loads its own local zone under this very name
    if cron.load_zone(name) is None:
        causes.append(invalid_cause(path, tz, f"unknown time zone {tz}"))
    return causes


def _validate_job_template(template: Any, path: str) -> list[Cause]:
    """Upstream ValidateJobTemplateSpec: a Job spec whose selector the Job's creation generates."""
    spec = as_dict(as_dict(template).get("spec"))
    causes = validate_job_spec(spec, f"{path}.spec")
    if spec.get("selector") is not None:
        causes.append(invalid_cause(f"{path}.spec.selector", spec["selector"], "`selector` will be auto-generated"))
    if spec.get("manualSelector") is True:
        causes.append(not_supported_cause(f"{path}.spec.manualSelector", True, ("nil", "false")))
    return causes
