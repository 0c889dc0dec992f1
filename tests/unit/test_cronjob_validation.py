"""batch/v1 CronJob defaulting and validation: upstream's ValidateCronJobCreate/Update (the job
template is validated as a Job spec, under spec.jobTemplate.spec)."""

from __future__ import annotations

import copy
import datetime as dt

import pytest

from apimachinery import cron
from apiserver.registry.batch import CronJobStrategy

STRATEGY = CronJobStrategy()
TPL = "spec.jobTemplate.spec"


def cronjob(name: str = "tick", job_spec: dict | None = None, **spec) -> dict:
    obj = {"apiVersion": "batch/v1", "kind": "CronJob",
           "metadata": {"name": name, "namespace": "ns", "uid": "u-1", "resourceVersion": "1"},
           "spec": {"schedule": "*/5 * * * *",
                    "jobTemplate": {"spec": {"template": {"spec": {
                        "restartPolicy": "Never", "containers": [{"name": "main", "image": "x"}]}}, **(job_spec or {})}},
                    **spec}}
    STRATEGY.default(obj)
    return obj


def causes(obj: dict) -> list[tuple[str, str, str]]:
    return [(c["field"], c["reason"], c["message"]) for c in STRATEGY.validate(obj, True)]


def update_causes(new: dict, old: dict) -> list[tuple[str, str, str]]:
    return [(c["field"], c["reason"], c["message"]) for c in STRATEGY.validate_update(new, old, True)]


def test_defaults_leave_the_job_spec_to_the_job():
    spec = cronjob(concurrencyPolicy="")["spec"]
    assert (spec["concurrencyPolicy"], spec["suspend"], spec["successfulJobsHistoryLimit"],
            spec["failedJobsHistoryLimit"]) == ("Allow", False, 3, 1)
    job_spec = spec["jobTemplate"]["spec"]
    # upstream defaults only the pod template here; the Job made from it gets the Job defaults
    assert "backoffLimit" not in job_spec and "completions" not in job_spec
    assert job_spec["template"]["spec"]["dnsPolicy"] == "ClusterFirst"
    assert causes(cronjob()) == []


def test_job_template_is_validated_as_a_job_spec():
    obj = cronjob(job_spec={
        "completionMode": "Indexed", "parallelism": 100_001, "backoffLimit": -1, "maxFailedIndexes": 1,
        "successPolicy": {"rules": []},
        "podFailurePolicy": {"rules": [{"action": "FailIndex", "onPodConditions": [{"type": "DisruptionTarget"}]}]},
        "podReplacementPolicy": "TerminatingOrFailed"})
    obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]["restartPolicy"] = "OnFailure"
    assert causes(obj) == [
        (f"{TPL}.backoffLimit", "FieldValueInvalid", "Invalid value: -1: must be greater than or equal to 0"),
        (f"{TPL}.backoffLimitPerIndex", "FieldValueRequired", "Required value: when maxFailedIndexes is specified"),
        (f"{TPL}.completions", "FieldValueRequired", "Required value: when completion mode is Indexed"),
        (f"{TPL}.parallelism", "FieldValueInvalid",
         "Invalid value: 100001: must be less than or equal to 100000 when completion mode is Indexed"),
        (f"{TPL}.podFailurePolicy.rules[0].action", "FieldValueInvalid",
         'Invalid value: "FailIndex": requires the backoffLimitPerIndex to be set'),
        # not defaulted in a CronJob (as upstream): a pattern without status is refused
        (f"{TPL}.podFailurePolicy.rules[0].onPodConditions[0].status", "FieldValueRequired",
         'Required value: valid values: ["False" "True" "Unknown"]'),
        (f"{TPL}.successPolicy.rules", "FieldValueRequired",
         "Required value: at least one rules must be specified when the successPolicy is specified"),
        (f"{TPL}.podReplacementPolicy", "FieldValueNotSupported",
         'Unsupported value: "TerminatingOrFailed": supported values: "Failed"'),
        (f"{TPL}.template.spec.restartPolicy", "FieldValueInvalid",
         'Invalid value: "OnFailure": only "Never" is supported when podFailurePolicy is specified'),
    ]


def test_job_template_pod_template_and_selector():
    obj = cronjob(job_spec={"selector": {"matchLabels": {"a": "b"}}, "manualSelector": True})
    tpl = obj["spec"]["jobTemplate"]["spec"]["template"]
    tpl["metadata"] = {"labels": {"bad key!": "x"}}
    del tpl["spec"]["restartPolicy"]
    STRATEGY.default(obj)
    assert causes(obj) == [
        (f"{TPL}.template.labels", "FieldValueInvalid",
         'Invalid value: "bad key!": name part must consist of alphanumeric characters, \'-\', \'_\' or \'.\', and '
         "must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex "
         "used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"),
        (f"{TPL}.template.spec.restartPolicy", "FieldValueRequired",
         'Required value: valid values: "OnFailure", "Never"'),
        (f"{TPL}.selector", "FieldValueInvalid",
         'Invalid value: {"matchLabels":{"a":"b"}}: `selector` will be auto-generated'),
        (f"{TPL}.manualSelector", "FieldValueNotSupported", 'Unsupported value: true: supported values: "nil", "false"'),
    ]


def test_spec_fields():
    obj = cronjob(schedule="", concurrencyPolicy="Sometimes", startingDeadlineSeconds=-1,
                  successfulJobsHistoryLimit=-1, failedJobsHistoryLimit=-2)
    assert causes(obj) == [
        ("spec.schedule", "FieldValueRequired", "Required value"),
        ("spec.startingDeadlineSeconds", "FieldValueInvalid", "Invalid value: -1: must be greater than or equal to 0"),
        ("spec.concurrencyPolicy", "FieldValueNotSupported",
         'Unsupported value: "Sometimes": supported values: "Allow", "Forbid", "Replace"'),
        ("spec.successfulJobsHistoryLimit", "FieldValueInvalid", "Invalid value: -1: must be greater than or equal to 0"),
        ("spec.failedJobsHistoryLimit", "FieldValueInvalid", "Invalid value: -2: must be greater than or equal to 0"),
    ]
    # zero history is allowed
    assert causes(cronjob(successfulJobsHistoryLimit=0, failedJobsHistoryLimit=0)) == []


def test_name_length_only_limited_on_create():
    name = "n" * 53
    assert causes(cronjob(name=name)) == [
        ("metadata.name", "FieldValueInvalid", f'Invalid value: "{name}": must be no more than 52 characters')]
    assert causes(cronjob(name="n" * 52)) == []
    old = cronjob(name=name)
    new = copy.deepcopy(old)
    new["spec"]["suspend"] = True
    assert update_causes(new, old) == []


@pytest.mark.parametrize(("tz", "messages"), [
    ("Europe/Rome", []),
    ("UTC", []),
    ("", ['Invalid value: "": timeZone must be nil or non-empty string']),
    (" Europe/Rome", ['Invalid value: " Europe/Rome": unknown time zone  Europe/Rome']),
    ("Europe/InvalidRome", ['Invalid value: "Europe/InvalidRome": unknown time zone Europe/InvalidRome']),
    ("../etc", ['Invalid value: "../etc": unknown time zone ../etc']),
    ("Local", ['Invalid value: "Local": timeZone must be an explicit time zone as defined in '
               "https://www.iana.org/time-zones"]),
    ("LOCAL", ['Invalid value: "LOCAL": timeZone must be an explicit time zone as defined in '
               "https://www.iana.org/time-zones", 'Invalid value: "LOCAL": unknown time zone LOCAL']),
])
def test_time_zone(tz: str, messages: list[str]):
    assert [m for f, _, m in causes(cronjob(timeZone=tz)) if f == "spec.timeZone"] == messages


def test_time_zone_only_judged_when_it_changes():
    old = cronjob(timeZone="Europe/Rome")
    old["spec"]["timeZone"] = "Mars/Olympus"  # stored before the zone went away
    new = copy.deepcopy(old)
    new["spec"]["suspend"] = True
    assert update_causes(new, old) == []
    new["spec"]["timeZone"] = "Mars/Phobos"
    assert [c[0] for c in update_causes(new, old)] == ["spec.timeZone"]


def test_tz_in_schedule():
    msg = 'Invalid value: "TZ=UTC 0 * * * *": cannot use TZ or CRON_TZ in schedule, use timeZone field instead'
    assert causes(cronjob(schedule="TZ=UTC 0 * * * *")) == [("spec.schedule", "FieldValueInvalid", msg)]
    # a CronJob that already had one (from before the timeZone field) keeps it, without a timeZone
    old = cronjob(schedule="CRON_TZ=UTC 0 * * * *")
    new = copy.deepcopy(old)
    new["spec"]["schedule"] = "CRON_TZ=Europe/Rome 0 * * * *"
    assert update_causes(new, old) == []
    new["spec"]["timeZone"] = "UTC"
    assert update_causes(new, old) == [
        ("spec.schedule", "FieldValueInvalid", 'Invalid value: "CRON_TZ=Europe/Rome 0 * * * *": cannot use both '
                                               "timeZone field and TZ or CRON_TZ in schedule")]
    new = copy.deepcopy(old)
    new["spec"]["schedule"] = "TZ=Nowhere/Land 0 * * * *"
    assert update_causes(new, old) == [
        ("spec.schedule", "FieldValueInvalid",
         'Invalid value: "TZ=Nowhere/Land 0 * * * *": provided bad location Nowhere/Land: unknown time zone Nowhere/Land')]


def test_schedule_location():
    assert cron.location_of("CRON_TZ=Asia/Tokyo 0 9 * * *") == "Asia/Tokyo"
    assert cron.location_of("0 9 * * *") is None
    assert cron.parse("TZ=Asia/Tokyo 0 9 * * *") == cron.parse("0 9 * * *")


@pytest.mark.parametrize(("schedule", "error"), [
    ("", None),  # Required, reported on its own
    ("0 0 * * 7", "end of range (7) above maximum (6): 7"),  # robfig has no 7 for Sunday
    ("0 0 0 * *", "beginning of range (0) below minimum (1): 0"),
    ("5-1 * * * *", "beginning of range (5) beyond end of range (1): 5-1"),
    ("*/0 * * * *", "step of range should be a positive number: */0"),
    ("1-2-3 * * * *", "too many hyphens: 1-2-3"),
    ("1/2/3 * * * *", "too many slashes: 1/2/3"),
    ("x * * * *", 'failed to parse int from x: strconv.Atoi: parsing "x": invalid syntax'),
    ("-1 * * * *", 'failed to parse int from : strconv.Atoi: parsing "": invalid syntax'),
    ("* * * * * *", "expected exactly 5 fields, found 6: [* * * * * *]"),
    ("@Daily", "unrecognized descriptor: @Daily"),  # descriptors are matched as written
    ("@every", "unrecognized descriptor: @every"),
    ("@every 1d", 'failed to parse duration @every 1d: time: unknown unit "d" in duration "1d"'),
    ("@every 90", 'failed to parse duration @every 90: time: missing unit in duration "90"'),
    ("@every soon", 'failed to parse duration @every soon: time: invalid duration "soon"'),
])
def test_schedule_errors_are_robfigs(schedule: str, error: str | None):
    found = [c for c in causes(cronjob(schedule=schedule)) if c[0] == "spec.schedule"]
    if error is None:
        assert found == [("spec.schedule", "FieldValueRequired", "Required value")]
    else:
        assert found == [("spec.schedule", "FieldValueInvalid", f'Invalid value: "{schedule}": {error}')]


@pytest.mark.parametrize("schedule", ["@every 1h30m", "@every 1.5h", "@every 45s", "@hourly", "0 9 * jan-mar mon-fri",
                                      "5/15 * * * ?", "1,,2 * * * *"])
def test_schedules_robfig_takes(schedule: str):
    assert causes(cronjob(schedule=schedule)) == []


def test_every_schedule():
    t = dt.datetime(2024, 1, 1, 10, 0, 5, 250_000, tzinfo=dt.UTC)
    assert cron.parse("@every 1h30m").next_after(t) == dt.datetime(2024, 1, 1, 11, 30, 5, tzinfo=dt.UTC)
    # whole seconds, one at the least
    assert cron.parse("@every 2500ms").next_after(t) == dt.datetime(2024, 1, 1, 10, 0, 7, tzinfo=dt.UTC)
    assert cron.parse("@every -5m").next_after(t) == dt.datetime(2024, 1, 1, 10, 0, 6, tzinfo=dt.UTC)


def test_star_days_combine_with_and():
    """Day of month and day of week: OR when both are restricted, AND when one is a star (`*/1` too)."""
    def days(schedule: str) -> list[int]:
        sched = cron.parse(schedule)
        t, out = dt.datetime(2023, 12, 31, tzinfo=dt.UTC), []
        while (t := sched.next_after(t)) < dt.datetime(2024, 2, 1, tzinfo=dt.UTC):
            out.append(t.day)
        return out

    assert days("0 0 2 * mon") == [1, 2, 8, 15, 22, 29]  # 2024-01-01 is a Monday: the 2nd and the Mondays
    assert len(days("0 0 1-31 * wed")) == 31  # every day of the month, or Wednesdays
    assert days("0 0 */1 * wed") == [3, 10, 17, 24, 31]  # a star: Wednesdays only
    assert days("0 0 */2 * wed") == sorted({*range(1, 32, 2), 3, 10, 17, 24, 31})
