"""batch/v1 Job defaulting and validation of the pod failure policy, success policy and backoff limit
per index: upstream's field paths, cause types and messages (pkg/apis/batch/validation)."""

from __future__ import annotations

import copy

import pytest

from apiserver.registry.batch import JobStrategy, count_indexes

STRATEGY = JobStrategy()


def job(name: str = "j", **spec) -> dict:
    """A Job as the create path makes it: defaulted, its selector generated."""
    obj = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "namespace": "ns", "uid": "u-1", "resourceVersion": "1"},
           "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "main", "image": "x"}],
                                          "initContainers": [{"name": "init", "image": "x"}]}}, **spec}}
    STRATEGY.default(obj)
    STRATEGY.prepare_for_create(obj)
    STRATEGY.default(obj)
    return obj


def indexed(**spec) -> dict:
    return job(completionMode="Indexed", completions=spec.pop("completions", 4), **spec)


def causes(obj: dict) -> list[tuple[str, str, str]]:
    return [(c["field"], c["reason"], c["message"]) for c in STRATEGY.validate(obj, True)]


def exit_codes(action: str = "Count", **req) -> dict:
    return {"rules": [{"action": action, "onExitCodes": {"operator": "In", "values": [1], **req}}]}


def test_defaults():
    spec = job()["spec"]
    assert (spec["backoffLimit"], spec["podReplacementPolicy"]) == (6, "TerminatingOrFailed")
    spec = indexed(backoffLimitPerIndex=1)["spec"]
    assert spec["backoffLimit"] == 2**31 - 1  # only the per-index limit applies unless one is given
    assert indexed(backoffLimitPerIndex=1, backoffLimit=3)["spec"]["backoffLimit"] == 3
    spec = job(podFailurePolicy={"rules": [{"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}]})["spec"]
    assert spec["podReplacementPolicy"] == "Failed"
    assert spec["podFailurePolicy"]["rules"][0]["onPodConditions"][0]["status"] == "True"


def test_valid_policies_pass():
    obj = indexed(backoffLimitPerIndex=1, maxFailedIndexes=2,
                  podFailurePolicy={"rules": [
                      {"action": "FailIndex", "onExitCodes": {"containerName": "init", "operator": "In", "values": [1, 2]}},
                      {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}]},
                  successPolicy={"rules": [{"succeededIndexes": "0,2-3", "succeededCount": 2}, {"succeededCount": 4}]})
    assert causes(obj) == []


def test_backoff_limit_per_index_and_max_failed_indexes():
    assert causes(job(backoffLimitPerIndex=1, maxFailedIndexes=0)) == [
        ("spec.backoffLimitPerIndex", "FieldValueInvalid", "Invalid value: 1: requires indexed completion mode"),
        ("spec.maxFailedIndexes", "FieldValueInvalid", "Invalid value: 0: requires indexed completion mode"),
    ]
    assert causes(indexed(backoffLimitPerIndex=-1, maxFailedIndexes=5)) == [
        ("spec.backoffLimitPerIndex", "FieldValueInvalid", "Invalid value: -1: must be greater than or equal to 0"),
        ("spec.maxFailedIndexes", "FieldValueInvalid", "Invalid value: 5: must be less than or equal to completions"),
    ]
    assert causes(indexed(maxFailedIndexes=1)) == [
        ("spec.backoffLimitPerIndex", "FieldValueRequired", "Required value: when maxFailedIndexes is specified")]
    high = indexed(completions=200_000, parallelism=20_000, backoffLimitPerIndex=1)
    suffix = "when completions are above 100000 and used with backoff limit per index"
    assert causes(high) == [
        ("spec.maxFailedIndexes", "FieldValueRequired", "Required value: must be specified when completions is above 100000"),
        ("spec.parallelism", "FieldValueInvalid", f"Invalid value: 20000: must be less than or equal to 10000 {suffix}"),
    ]
    high["spec"]["maxFailedIndexes"] = 150_000
    assert ("spec.maxFailedIndexes", "FieldValueInvalid",
            "Invalid value: 150000: must be less than or equal to 100000") in causes(high)


def test_pod_failure_policy_rules():
    pfp = {"rules": [
        {"action": "FailIndex", "onExitCodes": {"operator": "In", "values": [1]}},
        {"action": "Retry", "onPodConditions": [{"type": "bad type!", "status": "Maybe"}]},
        {"onExitCodes": {"operator": "In", "values": [1]}, "onPodConditions": [{"type": "A", "status": "True"}]},
        {"action": "Count"},
        {"action": "Ignore", "onExitCodes": {"containerName": "nope", "operator": "Within", "values": [3, 0, 3, 2]}},
        {"action": "Count", "onExitCodes": {"operator": "NotIn", "values": []}},
        {"action": "FailJob", "onPodConditions": [{"type": "A", "status": ""}]},
    ]}
    rules = "spec.podFailurePolicy.rules"
    assert causes(job(podFailurePolicy=pfp)) == [
        (f"{rules}[0].action", "FieldValueInvalid", 'Invalid value: "FailIndex": requires the backoffLimitPerIndex to be set'),
        (f"{rules}[1].action", "FieldValueNotSupported",
         'Unsupported value: "Retry": supported values: "Count", "FailIndex", "FailJob", "Ignore"'),
        (f"{rules}[1].onPodConditions[0].type", "FieldValueInvalid",
         "Invalid value: \"bad type!\": name part must consist of alphanumeric characters, '-', '_' or '.', and must "
         "start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for "
         "validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"),
        (f"{rules}[1].onPodConditions[0].status", "FieldValueNotSupported",
         'Unsupported value: "Maybe": supported values: "False", "True", "Unknown"'),
        (f"{rules}[2].action", "FieldValueRequired",
         'Required value: valid values: ["Count" "FailIndex" "FailJob" "Ignore"]'),
        (f"{rules}[2]", "FieldValueInvalid", "Invalid value: specifying both OnExitCodes and OnPodConditions is not supported"),
        (f"{rules}[3]", "FieldValueInvalid", "Invalid value: specifying one of OnExitCodes and OnPodConditions is required"),
        (f"{rules}[4].onExitCodes.operator", "FieldValueNotSupported",
         'Unsupported value: "Within": supported values: "In", "NotIn"'),
        (f"{rules}[4].onExitCodes.containerName", "FieldValueInvalid",
         'Invalid value: "nope": must be one of the container or initContainer names in the pod template'),
        (f"{rules}[4].onExitCodes.values[2]", "FieldValueDuplicate", "Duplicate value: 3"),
        (f"{rules}[4].onExitCodes.values", "FieldValueInvalid", "Invalid value: [3,0,3,2]: must be ordered"),
        (f"{rules}[5].onExitCodes.values", "FieldValueInvalid", "Invalid value: []: at least one value is required"),
        (f"{rules}[6].onPodConditions[0].status", "FieldValueRequired",
         'Required value: valid values: ["False" "True" "Unknown"]'),
    ]
    assert causes(job(podFailurePolicy=exit_codes(values=[0]))) == [
        (f"{rules}[0].onExitCodes.values[0]", "FieldValueInvalid", "Invalid value: 0: must not be 0 for the In operator")]
    too_many = {"rules": exit_codes()["rules"] * 21}
    assert causes(job(podFailurePolicy=too_many)) == [
        ("spec.podFailurePolicy.rules", "FieldValueTooMany", "Too many: 21: must have at most 20 items")]


def test_pod_failure_policy_requires_restart_policy_never_and_replacement_policy_failed():
    obj = job(podFailurePolicy=exit_codes(), podReplacementPolicy="TerminatingOrFailed")
    obj["spec"]["template"]["spec"]["restartPolicy"] = "OnFailure"
    # upstream checks the restart policy last, after the pod template
    assert causes(obj) == [
        ("spec.podReplacementPolicy", "FieldValueNotSupported",
         'Unsupported value: "TerminatingOrFailed": supported values: "Failed"'),
        ("spec.template.spec.restartPolicy", "FieldValueInvalid",
         'Invalid value: "OnFailure": only "Never" is supported when podFailurePolicy is specified'),
    ]
    assert causes(job(podReplacementPolicy="Sometimes")) == [
        ("spec.podReplacementPolicy", "FieldValueNotSupported",
         'Unsupported value: "Sometimes": supported values: "Failed", "TerminatingOrFailed"')]


def test_success_policy():
    assert causes(job(successPolicy={"rules": [{"succeededCount": 1}]})) == [
        ("spec.successPolicy", "FieldValueInvalid", 'Invalid value: {"rules":[{"succeededCount":1}]}: '
                                                    "requires indexed completion mode")]
    assert causes(indexed(successPolicy={"rules": []})) == [
        ("spec.successPolicy.rules", "FieldValueRequired",
         "Required value: at least one rules must be specified when the successPolicy is specified")]
    path = "spec.successPolicy.rules"
    assert causes(indexed(successPolicy={"rules": [
        {},
        {"succeededIndexes": "1-3", "succeededCount": 4},
        {"succeededIndexes": "0,4", "succeededCount": -1},
        {"succeededCount": 5},
    ]})) == [
        (f"{path}[0]", "FieldValueRequired",
         "Required value: at least one of succeededCount or succeededIndexes must be specified"),
        (f"{path}[1].succeededCount", "FieldValueInvalid", "Invalid value: 4: must be less than or equal to 3 "
                                                           "(the number of indexes in the specified succeededIndexes field)"),
        (f"{path}[2].succeededIndexes", "FieldValueInvalid",
         'Invalid value: "0,4": error parsing succeededIndexes: too large index: "4"'),
        (f"{path}[2].succeededCount", "FieldValueInvalid", "Invalid value: -1: must be greater than or equal to 0"),
        (f"{path}[3].succeededCount", "FieldValueInvalid",
         "Invalid value: 5: must be less than or equal to 4 (the number of specified completions)"),
    ]
    assert causes(indexed(successPolicy={"rules": [{"succeededCount": 1}] * 21})) == [
        (path, "FieldValueTooMany", "Too many: 21: must have at most 20 items")]


@pytest.mark.parametrize(("indexes", "error"), [
    ("1-2-3", "the fragment \"1-2-3\" violates the requirement that an index interval can have at most two parts "
              "separated by '-'"),
    ("a", 'cannot convert string to integer for index: "a"'),
    ("1,", 'cannot convert string to integer for index: ""'),
    ("2-1", "non-increasing order, previous: 2, current: 1"),
    ("3,1", "non-increasing order, previous: 3, current: 1"),
    ("1-2,2", "non-increasing order, previous: 2, current: 2"),
    ("9", 'too large index: "9"'),
])
def test_index_list_errors(indexes: str, error: str):
    with pytest.raises(ValueError) as e:
        count_indexes(indexes, 5)
    assert str(e.value) == error


def test_index_list_counts():
    assert [count_indexes(s, 10) for s in ("", "0", "0-4", "+1,3-5,9")] == [0, 1, 5, 5]


def test_policies_are_immutable():
    old = indexed(backoffLimitPerIndex=1, podFailurePolicy=exit_codes("FailIndex"),
                  successPolicy={"rules": [{"succeededCount": 1}]})
    new = copy.deepcopy(old)
    assert [c["field"] for c in STRATEGY.validate_update(new, old, True)] == []
    new["spec"].update(backoffLimitPerIndex=2, successPolicy={"rules": [{"succeededCount": 2}]},
                       podFailurePolicy=exit_codes("Ignore"))
    assert [(c["field"], c["message"]) for c in STRATEGY.validate_update(new, old, True)] == [
        ("spec.podFailurePolicy", 'Invalid value: {"rules":[{"action":"Ignore","onExitCodes":{"operator":"In",'
                                  '"values":[1]}}]}: field is immutable'),
        ("spec.backoffLimitPerIndex", "Invalid value: 2: field is immutable"),
        ("spec.successPolicy", 'Invalid value: {"rules":[{"succeededCount":2}]}: field is immutable'),
    ]
    # maxFailedIndexes may change (upstream lets it)
    new = copy.deepcopy(old)
    new["spec"]["maxFailedIndexes"] = 1
    assert STRATEGY.validate_update(new, old, True) == []


def test_indexed_parallelism_limit():
    assert causes(indexed(parallelism=100_000)) == []
    assert causes(indexed(parallelism=100_001)) == [
        ("spec.parallelism", "FieldValueInvalid",
         "Invalid value: 100001: must be less than or equal to 100000 when completion mode is Indexed")]
    # a NonIndexed job has no such bound
    assert causes(job(parallelism=100_001, completions=None)) == []


def test_indexed_pod_hostnames_must_be_dns_labels():
    obj = indexed(completions=1000, name="j" * 60)  # the last pod would be <name>-999: 64 characters
    assert causes(obj) == [("metadata.name", "FieldValueInvalid",
                            f'Invalid value: "{"j" * 60}": will not able to create pod with invalid DNS label: '
                            f'{"j" * 60}-999')]
    obj["spec"]["completions"] = 100
    assert causes(obj) == []
    dotted = indexed(name="a.b")  # a valid Job name, but no DNS label
    assert causes(dotted) == [("metadata.name", "FieldValueInvalid",
                               'Invalid value: "a.b": will not able to create pod with invalid DNS label: a.b-3')]
    dotted["spec"]["completionMode"] = "NonIndexed"
    assert causes(dotted) == []


@pytest.mark.parametrize("policy", [None, "Always"])
def test_restart_policy_left_to_the_pod_default_is_required(policy):
    obj = job()
    tpl = obj["spec"]["template"]["spec"]
    tpl.pop("restartPolicy")
    if policy is not None:
        tpl["restartPolicy"] = policy
    STRATEGY.default(obj)  # fills in Always, as upstream's pod defaults do
    assert causes(obj) == [("spec.template.spec.restartPolicy", "FieldValueRequired",
                            'Required value: valid values: "OnFailure", "Never"')]


def test_restart_policy_not_supported():
    obj = job()
    obj["spec"]["template"]["spec"]["restartPolicy"] = "Sometimes"
    assert ("spec.template.spec.restartPolicy", "FieldValueNotSupported",
            'Unsupported value: "Sometimes": supported values: "OnFailure", "Never"') in causes(obj)


def test_template_labels_and_selector():
    obj = job()
    obj["spec"]["template"]["metadata"]["labels"]["bad key!"] = "x"
    assert [c[0] for c in causes(obj)] == ["spec.template.labels"]
    obj = job(manualSelector=True, selector={"matchLabels": {"app": "other"}})
    assert ("spec.template.metadata.labels", "FieldValueInvalid") in [c[:2] for c in causes(obj)]
    obj = job()
    obj["spec"].pop("selector")
    assert causes(obj) == [("spec.selector", "FieldValueRequired", "Required value")]


def test_completions_scale_with_parallelism_for_indexed_jobs():
    """ElasticIndexedJob (GA in 1.31): completions may change only together with parallelism."""
    old = indexed(completions=4, parallelism=4)
    new = copy.deepcopy(old)
    new["spec"].update(completions=6, parallelism=6)
    assert STRATEGY.validate_update(new, old, True) == []
    new["spec"].update(completions=2, parallelism=2)
    assert STRATEGY.validate_update(new, old, True) == []
    new["spec"].update(completions=3, parallelism=2)
    assert [(c["field"], c["message"]) for c in STRATEGY.validate_update(new, old, True)] == [
        ("spec.completions", "Invalid value: 3: can only be modified in tandem with spec.parallelism")]
    # parallelism alone may change
    new["spec"].update(completions=4, parallelism=1)
    assert STRATEGY.validate_update(new, old, True) == []
    # a NonIndexed job's completions stay as they are
    old, new = job(completions=4, parallelism=4), job(completions=6, parallelism=6)
    assert [(c["field"], c["message"]) for c in STRATEGY.validate_update(new, old, True)] == [
        ("spec.completions", "Invalid value: 6: field is immutable")]


def test_scaling_rechecks_what_depends_on_completions():
    old = indexed(completions=4, parallelism=4, successPolicy={"rules": [{"succeededIndexes": "3"}]})
    new = copy.deepcopy(old)
    new["spec"].update(completions=2, parallelism=2)
    assert [(c["field"], c["message"]) for c in STRATEGY.validate_update(new, old, True)] == [
        ("spec.successPolicy.rules[0].succeededIndexes",
         'Invalid value: "3": error parsing succeededIndexes: too large index: "3"')]


# -- the generated selector ------------------------------------------------------------------------

def test_selector_generated_on_create():
    spec = job()["spec"]
    assert spec["manualSelector"] is False
    assert spec["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": "u-1"}}
    assert spec["template"]["metadata"]["labels"] == {
        "job-name": "j", "batch.kubernetes.io/job-name": "j", "controller-uid": "u-1",
        "batch.kubernetes.io/controller-uid": "u-1"}
    assert causes(job()) == []


def test_generated_labels_the_user_set_otherwise_are_refused():
    obj = job(template={"metadata": {"labels": {"controller-uid": "other", "app": "a"}},
                        "spec": {"restartPolicy": "Never", "containers": [{"name": "main", "image": "x"}]}})
    labels = ('{"app":"a","batch.kubernetes.io/controller-uid":"u-1","batch.kubernetes.io/job-name":"j",'
              '"controller-uid":"other","job-name":"j"}')
    assert causes(obj) == [("spec.template.metadata.labels[controller-uid]", "FieldValueInvalid",
                            f"Invalid value: {labels}: must be 'u-1'")]


def test_a_selector_of_ones_own_needs_manual_selector():
    tpl = {"metadata": {"labels": {"app": "a"}}, "spec": {"restartPolicy": "Never", "containers": [{"name": "main", "image": "x"}]}}
    obj = job(selector={"matchLabels": {"app": "a"}}, template=tpl)
    # the uid is added to the selector, which then asks for more than the generated labels
    assert obj["spec"]["selector"] == {"matchLabels": {"app": "a", "batch.kubernetes.io/controller-uid": "u-1"}}
    assert causes(obj) == [("spec.selector", "FieldValueInvalid",
                            'Invalid value: {"matchLabels":{"app":"a","batch.kubernetes.io/controller-uid":"u-1"}}: '
                            "`selector` not auto-generated")]
    manual = job(selector={"matchLabels": {"app": "a"}}, template=copy.deepcopy(tpl), manualSelector=True)
    assert manual["spec"]["selector"] == {"matchLabels": {"app": "a"}} and causes(manual) == []


def test_generated_labels_required():
    obj = job()
    obj["metadata"].pop("uid")
    labels = obj["spec"]["template"]["metadata"]["labels"]
    del labels["job-name"], labels["batch.kubernetes.io/job-name"]
    assert causes(obj)[:3] == [
        ("metadata.uid", "FieldValueRequired", "Required value"),
        ("spec.template.metadata.labels[controller-uid]", "FieldValueInvalid",
         'Invalid value: {"batch.kubernetes.io/controller-uid":"u-1","controller-uid":"u-1"}: must be \'\''),
        ("spec.template.metadata.labels[job-name]", "FieldValueRequired", "Required value: must be 'j'"),
    ]


def test_jobs_from_before_the_prefixed_labels_stay_valid():
    old = job()
    for label in ("batch.kubernetes.io/job-name", "batch.kubernetes.io/controller-uid"):
        del old["spec"]["template"]["metadata"]["labels"][label]
    old["spec"]["selector"] = {"matchLabels": {"controller-uid": "u-1"}}
    new = copy.deepcopy(old)
    new["spec"]["parallelism"] = 2
    assert STRATEGY.validate_update(new, old, True) == []
    assert ("spec.template.metadata.labels[batch.kubernetes.io/job-name]", "FieldValueRequired",
            "Required value: must be 'j'") in causes(new)  # a new Job must have them


# -- jobs/status ---------------------------------------------------------------------------------------

T0, T1 = "2024-05-01T10:00:00Z", "2024-05-01T10:05:00Z"


def with_status(obj: dict, **status) -> dict:
    return {**copy.deepcopy(obj), "status": status}


def cond(type_: str, status: str = "True") -> dict:
    return {"type": type_, "status": status, "reason": "R", "message": "m"}


def status_causes(new: dict, old: dict, managed_by: bool | None = None) -> list[tuple[str, str, str]]:
    from apiserver.registry.batch import job_status_rules, validate_job_status_update

    if managed_by is None:
        found = STRATEGY.validate_status_update(new, old)
    else:
        found = validate_job_status_update(new, old, job_status_rules(new, old, managed_by))
    return [(c["field"], c["reason"], c["message"]) for c in found]


def test_status_rules_always_enforced():
    old = with_status(job(), startTime=T0)
    new = with_status(job(), startTime=T0, active=-1, ready=-2, terminating=-3,
                      uncountedTerminatedPods={"succeeded": ["a", ""], "failed": ["a"]},
                      conditions=[cond("SuccessCriteriaMet"), cond("Failed"), cond("FailureTarget")])
    assert status_causes(new, old) == [
        ("status.active", "FieldValueInvalid", "Invalid value: -1: must be greater than or equal to 0"),
        ("status.ready", "FieldValueInvalid", "Invalid value: -2: must be greater than or equal to 0"),
        ("status.terminating", "FieldValueInvalid", "Invalid value: -3: must be greater than or equal to 0"),
        ("status.uncountedTerminatedPods.succeeded[1]", "FieldValueInvalid", 'Invalid value: "": must not be empty'),
        ("status.uncountedTerminatedPods.failed[0]", "FieldValueDuplicate", 'Duplicate value: "a"'),
        ("status.conditions", "FieldValueInvalid", "Invalid value: cannot set SuccessCriteriaMet=True and Failed=true conditions"),
        ("status.conditions", "FieldValueInvalid",
         "Invalid value: cannot set SuccessCriteriaMet=True and FailureTarget=true conditions"),
    ]


def test_success_criteria_met_transitions():
    old = with_status(job(), conditions=[cond("SuccessCriteriaMet")])
    assert status_causes(with_status(job(), conditions=[cond("SuccessCriteriaMet", "False")]), old) == [
        ("status.conditions", "FieldValueInvalid", "Invalid value: cannot disable the SuccessCriteriaMet=True condition")]
    done = with_status(job(), conditions=[cond("Complete")])
    assert status_causes(with_status(job(), conditions=[cond("Complete"), cond("SuccessCriteriaMet")]), done) == [
        ("status.conditions", "FieldValueInvalid",
         "Invalid value: cannot set SuccessCriteriaMet=True for Job already has Complete=true conditions")]
    policy = indexed(successPolicy={"rules": [{"succeededCount": 1}]})
    assert status_causes(with_status(policy, conditions=[cond("Complete")]), with_status(policy)) == [
        ("status.conditions", "FieldValueInvalid",
         "Invalid value: cannot set Complete=True for Job with SuccessPolicy unless SuccessCriteriaMet=True")]


def test_what_1_31_leaves_to_job_managed_by():
    """Without JobManagedBy (alpha in 1.31) a NonIndexed Job may carry SuccessCriteriaMet (the
    controller records it), and the terminal transitions are not judged."""
    old = with_status(job(), startTime=T0)
    loose = with_status(job(), startTime=T0, active=2, ready=3, terminating=1, completionTime=T0,
                        conditions=[cond("Complete"), cond("Failed")])
    assert status_causes(loose, old) == []
    assert status_causes(with_status(job(), startTime=T0, conditions=[cond("SuccessCriteriaMet")]), old) == []


def test_job_managed_by_rules():
    old = with_status(indexed(), startTime=T1, active=1, ready=1)
    new = with_status(indexed(), startTime=T1, active=1, ready=2, terminating=1, completionTime=T0,
                      completedIndexes="1,0", uncountedTerminatedPods={"failed": ["x"]},
                      conditions=[cond("Complete"), cond("Failed")])
    t0 = "2024-05-01 10:00:00 +0000 UTC"
    assert status_causes(new, old, managed_by=True) == [
        ("status.conditions", "FieldValueInvalid", "Invalid value: cannot set Complete=True and Failed=true conditions"),
        ("status.completionTime", "FieldValueInvalid", f"Invalid value: {t0}: completionTime cannot be set before startTime"),
        ("status.conditions", "FieldValueInvalid",
         "Invalid value: cannot set Failed=True condition without the FailureTarget=true condition"),
        ("status.conditions", "FieldValueInvalid",
         "Invalid value: cannot set Complete=True condition without the SuccessCriteriaMet=true condition"),
        ("status.active", "FieldValueInvalid", "Invalid value: 1: active>0 is invalid for finished job"),
        ("status.uncountedTerminatedPods", "FieldValueInvalid",
         'Invalid value: {"failed":["x"]}: uncountedTerminatedPods needs to be empty for finished job'),
        ("status.completedIndexes", "FieldValueInvalid",
         'Invalid value: "1,0": error parsing completedIndexes: non-increasing order, previous: 1, current: 0'),
        ("status.terminating", "FieldValueInvalid", "Invalid value: 1: terminating>0 is invalid for finished job"),
        ("status.ready", "FieldValueInvalid", "Invalid value: 2: cannot set more ready pods than active"),
    ]


def test_job_managed_by_indexes_and_transitions():
    per_index = indexed(backoffLimitPerIndex=1)
    old = with_status(per_index, startTime=T0, failed=2, succeeded=1, completionTime=T1, conditions=[cond("Complete")])
    new = with_status(per_index, startTime=T1, failed=1, completedIndexes="0-2", failedIndexes="2,7",
                      completionTime=T0)
    assert status_causes(new, old, managed_by=True) == [
        ("status.completionTime", "FieldValueInvalid",
         "Invalid value: 2024-05-01 10:00:00 +0000 UTC: cannot set completionTime when there is no Complete=True condition"),
        ("status.completionTime", "FieldValueInvalid",
         "Invalid value: 2024-05-01 10:00:00 +0000 UTC: completionTime cannot be set before startTime"),
        ("status.failedIndexes", "FieldValueInvalid",
         'Invalid value: "2,7": error parsing failedIndexes: too large index: "7"'),
        ("status.failedIndexes", "FieldValueInvalid",
         'Invalid value: "2,7": failedIndexes and completedIndexes overlap at index: 2'),
        ("status.conditions", "FieldValueInvalid", "Invalid value: cannot disable the terminal Complete=True condition"),
        ("status.failed", "FieldValueInvalid", "Invalid value: 1: cannot decrease the failed counter"),
        # completions (4) differ from parallelism (1): no scale-down explains fewer succeeded pods
        ("status.succeeded", "FieldValueInvalid", "Invalid value: 0: cannot decrease the succeeded counter"),
        ("status.completionTime", "FieldValueInvalid",
         "Invalid value: 2024-05-01 10:00:00 +0000 UTC: completionTime cannot be mutated"),
        ("status.startTime", "FieldValueRequired", "Required value: startTime cannot be removed for unsuspended job"),
    ]
    plain = job()
    assert status_causes(with_status(plain, completedIndexes="0", failedIndexes=""), with_status(plain),
                         managed_by=True) == [
        ("status.completedIndexes", "FieldValueInvalid",
         'Invalid value: "0": cannot set non-empty completedIndexes when non-indexed completion mode'),
        ("status.failedIndexes", "FieldValueInvalid",
         'Invalid value: "": cannot set non-null failedIndexes when backoffLimitPerIndex is null'),
    ]


def test_job_managed_by_rules_ratchet():
    """A status that already broke a rule may still be written, as long as the write leaves the
    fields that rule judges alone (completedIndexes past completions after a scale-down)."""
    bad = with_status(indexed(completions=2, parallelism=2), completedIndexes="3", active=1)
    assert status_causes(with_status(bad, completedIndexes="3", active=2), bad, managed_by=True) == []
    assert [c[0] for c in status_causes(with_status(bad, completedIndexes="3,4"), bad, managed_by=True)] == [
        "status.completedIndexes"]


def test_a_job_without_labels_gets_its_templates_own_labels():
    """upstream SetDefaults_Job: the user's template labels; with none, the generated ones."""
    from apiserver.registry.batch import JobStrategy

    def create(template_labels):
        job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j", "uid": "u-1"},
               "spec": {"template": {"metadata": {"labels": template_labels} if template_labels else {},
                                     "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "x"}]}}}}
        st = JobStrategy()
        st.default(job)  # the create path: defaults, admission, prepare_for_create, defaults again
        st.prepare_for_create(job)
        st.default(job)
        return job

    assert create({"app": "web"})["metadata"]["labels"] == {"app": "web"}
    # a template without labels: the Job shows the generated ones, as upstream's Jobs do
    unlabelled = create(None)
    assert unlabelled["metadata"]["labels"]["batch.kubernetes.io/controller-uid"] == "u-1"
    assert unlabelled["metadata"]["labels"] == unlabelled["spec"]["template"]["metadata"]["labels"]
