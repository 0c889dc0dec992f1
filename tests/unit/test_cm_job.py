"""Job controller against the in-memory API."""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
from collections.abc import Iterator

import pytest

from apimachinery.meta import format_time
from apiserver.registry.batch import job_status_rules, validate_job_status_update
from controller_manager.base import ControllerContext, FakeClock
from controller_manager.fake import FakeAPI, FakeInformerFactory, run_until_idle
from controller_manager.job import (
    INDEX_FAILURE_COUNT,
    INDEX_IGNORED_FAILURE_COUNT,
    TRACKING_FINALIZER,
    BackoffRecord,
    JobController,
    intervals,
    match_pod_failure_policy,
    match_success_policy,
    parse_intervals,
)

NS = "default"


def job(name: str = "pi", completions: int | None = 1, parallelism: int = 1, backoff_limit: int = 6,
        restart_policy: str = "Never", **spec) -> dict:
    labels = {"job-name": name}
    s = {"parallelism": parallelism, "backoffLimit": backoff_limit, "completionMode": "NonIndexed",
         "suspend": False, "podReplacementPolicy": "TerminatingOrFailed",
         "selector": {"matchLabels": labels},
         "template": {"metadata": {"labels": labels},
                      "spec": {"restartPolicy": restart_policy, "containers": [{"name": "c", "image": "perl"}]}},
         **spec}
    if completions is not None:
        s["completions"] = completions
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "namespace": NS}, "spec": s}


class Env:
    def __init__(self) -> None:
        self.clock = FakeClock()
        self.api = FakeAPI(self.clock)
        ctx = ControllerContext(self.api, FakeInformerFactory(self.api), clock=self.clock,  # type: ignore[arg-type]
                                recorder_factory=self.api.recorder)
        self.jc = JobController(ctx)
        #: every status the controller wrote, and what upstream's strictest status validation
        #: (JobManagedBy's, off in 1.31) would have refused of them
        self.statuses: list[dict] = []
        self.refused: list[dict] = []
        write = self.jc.jobs_api.update_status

        async def validated(obj: dict, *args, **kw) -> dict:
            old = self.api.get_object("batch/v1", "jobs", NS, obj["metadata"]["name"])
            # not the startTime rule: it refuses the new startTime of a resumed Job, an upstream bug
            # (kubernetes#134521, fixed in later patch releases) that the controller does not work around either
            rules = dataclasses.replace(job_status_rules(obj, old, managed_by=True),
                                        reject_start_time_update_for_unsuspended=False)
            self.refused += validate_job_status_update(obj, old, rules)
            self.statuses.append(copy.deepcopy(obj["status"]))
            return await write(obj, *args, **kw)

        self.jc.jobs_api.update_status = validated  # type: ignore[method-assign]

    async def settle(self) -> None:
        await run_until_idle([self.jc])

    def pods(self, active_only: bool = False) -> list[dict]:
        pods = self.api.list_objects("v1", "pods", NS)
        if active_only:
            pods = [p for p in pods if p["status"].get("phase") in ("Pending", "Running")
                    and not p["metadata"].get("deletionTimestamp")]
        return sorted(pods, key=lambda p: p["metadata"]["name"])

    def job(self, name: str = "pi") -> dict:
        return self.api.get_object("batch/v1", "jobs", NS, name)

    def finish(self, pod: dict, phase: str, restarts: int = 0, exit_code: int | None = None,
               conditions: list[dict] | None = None) -> None:
        ts = format_time(self.clock.now())
        code = exit_code if exit_code is not None else 0 if phase == "Succeeded" else 1
        status = {"phase": phase, "containerStatuses": [{
            "name": "c", "restartCount": restarts,
            "state": {"terminated": {"exitCode": code, "finishedAt": ts, "startedAt": ts}}}]}
        if conditions:
            status["conditions"] = conditions
        cur = self.api.get_object("v1", "pods", NS, pod["metadata"]["name"])
        self.api.update("v1", "pods", {**cur, "status": status}, status=True)

    def condition(self, type_: str, name: str = "pi") -> dict | None:
        return next((c for c in self.job(name)["status"].get("conditions", []) if c["type"] == type_), None)

    def by_index(self, active_only: bool = True) -> dict[str, dict]:
        """The (active) pods by completion index (the newest wins)."""
        pods = sorted(self.pods(active_only), key=lambda p: int(p["metadata"]["resourceVersion"]))
        return {p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]: p for p in pods}

    async def resync(self, seconds: float = 0) -> None:
        self.clock.step(seconds)
        await self.jc.sync(f"{NS}/pi")
        await self.settle()


@pytest.fixture
def env() -> Iterator[Env]:
    e = Env()
    yield e
    assert e.refused == []  # the controller follows the status transitions upstream holds controllers to


def test_intervals_round_trip():
    assert intervals({0, 1, 2, 5, 7, 8, 10}) == "0-2,5,7,8,10"  # upstream lists two neighbours, no range
    assert parse_intervals("0-2,5,7-8", 8) == {0, 1, 2, 5, 7}
    assert parse_intervals("3-999999999999,x,1", 5) == {1, 3, 4}  # bounded by completions, bad parts skipped
    assert intervals(set()) == ""


def test_backoff_doubles_to_ten_minutes():
    """upstream DefaultJobPodFailureBackOff 10 s, MaxJobPodFailureBackOff 10 min"""
    t0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    assert [BackoffRecord(n, t0).remaining(t0) for n in (0, 1, 2, 3, 6, 7, 10)] == [0, 10, 20, 40, 320, 600, 600]
    assert BackoffRecord(2, t0).remaining(t0 + dt.timedelta(seconds=15)) == 5


async def test_runs_to_completion_with_tracking_finalizers(env: Env):
    env.api.create("batch/v1", "jobs", job(completions=3, parallelism=2))
    await env.settle()
    pods = env.pods()
    assert len(pods) == 2
    assert all(TRACKING_FINALIZER in p["metadata"]["finalizers"] for p in pods)
    assert pods[0]["metadata"]["ownerReferences"][0]["kind"] == "Job"
    st = env.job()["status"]
    assert st["active"] == 2 and st["startTime"] and st["uncountedTerminatedPods"] == {"succeeded": [], "failed": []}
    assert st["terminating"] == 0 and st["ready"] == 0  # reported even when 0
    for p in pods:
        env.finish(p, "Succeeded")
    await env.settle()
    finished = [env.api.get_object("v1", "pods", NS, p["metadata"]["name"]) for p in pods]
    assert all(TRACKING_FINALIZER not in (p["metadata"].get("finalizers") or []) for p in finished)
    assert env.job()["status"]["succeeded"] == 2
    (third,) = env.pods(active_only=True)  # only one more is needed
    env.finish(third, "Succeeded")
    await env.settle()
    st = env.job()["status"]
    assert st["succeeded"] == 3 and "active" not in st
    # SuccessCriteriaMet first (upstream's delayed terminal condition), then Complete with its reason
    assert [c["type"] for c in st["conditions"]] == ["SuccessCriteriaMet", "Complete"]
    assert {(c["reason"], c["message"]) for c in st["conditions"]} == {
        ("CompletionsReached", "Reached expected number of succeeded pods")}
    cond = env.condition("Complete")
    assert cond["status"] == "True" and st["completionTime"] == cond["lastTransitionTime"]
    assert ("pi", "Normal", "Completed", "Job completed") in env.api.events
    n = len(env.api.actions)
    await env.jc.sync(f"{NS}/pi")
    assert len(env.api.actions) == n  # a finished job is left alone


async def test_backoff_limit_with_exponential_delays(env: Env):
    env.api.create("batch/v1", "jobs", job(backoff_limit=2))
    await env.settle()
    delays = []
    for _ in range(3):
        (pod,) = env.pods(active_only=True)
        env.finish(pod, "Failed")
        await env.settle()
        if env.condition("Failed"):
            break
        assert env.pods(active_only=True) == []  # the replacement waits for the backoff
        waited = 0
        while not env.pods(active_only=True):
            env.clock.step(5)
            waited += 5
            await env.jc.sync(f"{NS}/pi")
            await env.settle()
        delays.append(waited)
    assert delays == [10, 20]
    cond = env.condition("Failed")
    assert (cond["reason"], cond["message"]) == ("BackoffLimitExceeded", "Job has reached the specified backoff limit")
    assert env.job()["status"]["failed"] == 3
    assert ("pi", "Warning", "BackoffLimitExceeded", "Job has reached the specified backoff limit") in env.api.events


async def test_on_failure_restarts_count_toward_the_backoff_limit(env: Env):
    env.api.create("batch/v1", "jobs", job(backoff_limit=3, restart_policy="OnFailure"))
    await env.settle()
    (pod,) = env.pods()
    cur = env.api.get_object("v1", "pods", NS, pod["metadata"]["name"])
    env.api.update("v1", "pods", {**cur, "status": {"phase": "Running", "containerStatuses": [
        {"name": "c", "restartCount": 3, "state": {"running": {}}}]}}, status=True)
    await env.settle()
    assert env.condition("Failed")["reason"] == "BackoffLimitExceeded"
    assert env.pods() == []  # the active pod was deleted (its finalizer removed first)


async def test_active_deadline(env: Env):
    env.api.create("batch/v1", "jobs", job(completions=2, parallelism=2, activeDeadlineSeconds=30))
    await env.settle()
    assert len(env.pods(active_only=True)) == 2
    env.clock.step(31)
    await env.jc.sync(f"{NS}/pi")
    await env.settle()
    st = env.job()["status"]
    assert [c["type"] for c in st["conditions"]] == ["FailureTarget", "Failed"]
    assert {(c["reason"], c["message"]) for c in st["conditions"]} == {
        ("DeadlineExceeded", "Job was active longer than specified deadline")}
    assert env.pods() == []
    assert env.job()["status"]["failed"] == 2  # the pods it killed count as failed


def hold(env: Env, pod: dict) -> None:
    """Another finalizer keeps the pod once deleted, as a kubelet stopping it would."""
    cur = env.api.get_object("v1", "pods", NS, pod["metadata"]["name"])
    env.api.update("v1", "pods", {**cur, "metadata": {**cur["metadata"],
                                                      "finalizers": [*cur["metadata"]["finalizers"], "example.com/hold"]}})


def release(env: Env, pod: dict) -> None:
    cur = env.api.get_object("v1", "pods", NS, pod["metadata"]["name"])
    env.api.update("v1", "pods", {**cur, "metadata": {**cur["metadata"], "finalizers": [
        f for f in cur["metadata"]["finalizers"] if f != "example.com/hold"]}})


async def test_failed_waits_for_the_pods_it_stops(env: Env):
    env.api.create("batch/v1", "jobs", job(completions=2, parallelism=2, backoff_limit=0))
    await env.settle()
    bad, other = env.pods()
    hold(env, other)
    env.finish(bad, "Failed")
    await env.settle()
    # the other pod was deleted (and counted), but is still stopping: FailureTarget only
    st = env.job()["status"]
    target = env.condition("FailureTarget")
    assert (target["reason"], target["message"]) == ("BackoffLimitExceeded", "Job has reached the specified backoff limit")
    assert env.condition("Failed") is None and st["terminating"] == 1 and st["failed"] == 2 and "active" not in st
    stopping = env.api.get_object("v1", "pods", NS, other["metadata"]["name"])
    assert stopping["metadata"]["deletionTimestamp"] and stopping["metadata"]["finalizers"] == ["example.com/hold"]
    assert not any(e[2] == "BackoffLimitExceeded" for e in env.api.events)
    release(env, other)
    await env.settle()
    st = env.job()["status"]
    assert [c["type"] for c in st["conditions"]] == ["FailureTarget", "Failed"]
    failed = env.condition("Failed")
    assert (failed["reason"], failed["message"]) == (target["reason"], target["message"])
    assert st["terminating"] == 0 and st["failed"] == 2 and "completionTime" not in st
    assert [e for e in env.api.events if e[2] == "BackoffLimitExceeded"] == [
        ("pi", "Warning", "BackoffLimitExceeded", "Job has reached the specified backoff limit")]


async def test_complete_waits_for_terminating_pods(env: Env):
    env.api.create("batch/v1", "jobs", job())
    await env.settle()
    (first,) = env.pods()
    hold(env, first)
    env.api.delete("v1", "pods", first["metadata"]["name"], NS)  # TerminatingOrFailed: replaced at once
    await env.resync(11)  # after the failure's backoff
    st = env.job()["status"]
    assert st["terminating"] == 1 and st["failed"] == 1
    (second,) = env.pods(active_only=True)
    env.finish(second, "Succeeded")
    await env.settle()
    st = env.job()["status"]
    assert env.condition("SuccessCriteriaMet")["reason"] == "CompletionsReached"
    assert env.condition("Complete") is None and "completionTime" not in st and st["succeeded"] == 1
    release(env, first)
    await env.settle()
    st = env.job()["status"]
    complete = env.condition("Complete")
    assert (complete["reason"], complete["message"]) == ("CompletionsReached", "Reached expected number of succeeded pods")
    assert st["completionTime"] == complete["lastTransitionTime"] and st["terminating"] == 0


async def test_indexed_succeeded_pods_are_tracked_by_index(env: Env):
    """upstream: an Indexed Job's succeeded pods never go into uncountedTerminatedPods.succeeded"""
    env.api.create("batch/v1", "jobs", job(completions=3, parallelism=3, completionMode="Indexed"))
    await env.settle()
    pods = env.by_index()
    env.finish(pods["0"], "Failed")
    env.finish(pods["1"], "Succeeded")
    env.finish(pods["2"], "Succeeded")
    await env.settle()
    assert any(st["uncountedTerminatedPods"]["failed"] for st in env.statuses)  # failures still go by uid
    assert all(not st["uncountedTerminatedPods"].get("succeeded") for st in env.statuses)
    st = env.job()["status"]
    assert st["completedIndexes"] == "1,2" and st["succeeded"] == 2 and st["failed"] == 1
    finished = [env.api.get_object("v1", "pods", NS, p["metadata"]["name"]) for p in pods.values()]
    assert all(TRACKING_FINALIZER not in (p["metadata"].get("finalizers") or []) for p in finished)


async def test_deleted_running_pod_counts_as_failed(env: Env):
    env.api.create("batch/v1", "jobs", job(backoff_limit=5))
    await env.settle()
    (pod,) = env.pods()
    env.api.delete("v1", "pods", pod["metadata"]["name"], NS)  # stays (finalizer), with a deletionTimestamp
    await env.settle()
    assert env.api.get_object("v1", "pods", NS, pod["metadata"]["name"]) is None  # finalizer removed: gone
    assert env.job()["status"]["failed"] == 1


async def test_work_queue_job_without_completions(env: Env):
    env.api.create("batch/v1", "jobs", job(completions=None, parallelism=3))
    await env.settle()
    pods = env.pods()
    assert len(pods) == 3
    env.finish(pods[0], "Succeeded")
    await env.settle()
    assert len(env.pods(active_only=True)) == 2 and env.condition("Complete") is None  # the others keep running
    for p in pods[1:]:
        env.finish(p, "Succeeded")
    await env.settle()
    assert env.condition("Complete") is not None and env.job()["status"]["succeeded"] == 3


async def test_suspend_and_resume(env: Env):
    env.api.create("batch/v1", "jobs", job(completions=2, parallelism=2))
    await env.settle()
    j = copy.deepcopy(env.job())
    j["spec"]["suspend"] = True
    env.api.update("batch/v1", "jobs", j)
    await env.settle()
    assert env.pods() == []
    cond = env.condition("Suspended")
    assert (cond["status"], cond["reason"]) == ("True", "JobSuspended")
    env.clock.step(60)
    j = copy.deepcopy(env.job())
    j["spec"]["suspend"] = False
    env.api.update("batch/v1", "jobs", j)
    await env.settle()
    assert len(env.pods()) == 2
    assert env.condition("Suspended")["reason"] == "JobResumed"
    assert env.job()["status"]["startTime"] == format_time(env.clock.now())


async def test_indexed_job(env: Env):
    env.api.create("batch/v1", "jobs", job(completions=3, parallelism=3, completionMode="Indexed"))
    await env.settle()
    pods = env.pods()
    indexes = sorted(p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"] for p in pods)
    assert indexes == ["0", "1", "2"]
    p1 = next(p for p in pods if p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"] == "1")
    assert p1["spec"]["hostname"] == "pi-1" and p1["metadata"]["name"].startswith("pi-1-")
    env.finish(p1, "Succeeded")
    p0 = next(p for p in pods if p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"] == "0")
    env.finish(p0, "Failed")
    await env.settle()
    st = env.job()["status"]
    assert st["completedIndexes"] == "1" and st["succeeded"] == 1 and st["failed"] == 1
    env.clock.step(11)
    await env.jc.sync(f"{NS}/pi")
    await env.settle()
    active = env.pods(active_only=True)
    assert sorted(p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"] for p in active) == ["0", "2"]
    for p in active:
        env.finish(p, "Succeeded")
    await env.settle()
    assert env.job()["status"]["completedIndexes"] == "0-2" and env.condition("Complete")


async def test_finalizers_of_a_deleted_jobs_pods_are_removed(env: Env):
    env.api.create("batch/v1", "jobs", job(completions=2, parallelism=2))
    await env.settle()
    env.api.delete("batch/v1", "jobs", "pi", NS)
    while len(env.jc.orphans):
        key = await env.jc.orphans.get()
        await env.jc.sync_orphan_pod(key)
        env.jc.orphans.done(key)
    assert all(not p["metadata"].get("finalizers") for p in env.pods())


# -- success policy ---------------------------------------------------------------------------

def test_match_success_policy():
    def matched(rules: list[dict], succeeded: set[int], completions: int = 5) -> str | None:
        return match_success_policy({"spec": {"completions": completions, "successPolicy": {"rules": rules}}},
                                    succeeded)

    assert matched([{"succeededIndexes": "0,2-3"}], {0, 2}) is None
    assert matched([{"succeededIndexes": "0,2-3"}], {0, 1, 2, 3}) == "Matched rules at index 0"
    assert matched([{"succeededIndexes": "1-4", "succeededCount": 2}], {0, 3}) is None
    assert matched([{"succeededIndexes": "1-4", "succeededCount": 2}], {0, 3, 4}) == "Matched rules at index 0"
    assert matched([{"succeededIndexes": "7-9"}, {"succeededCount": 2}], {0, 4}) == "Matched rules at index 1"
    assert matched([{"succeededCount": 1}], set()) is None


async def test_success_policy_completes_and_stops_the_remaining_pods(env: Env):
    env.api.create("batch/v1", "jobs", job(completions=3, parallelism=3, completionMode="Indexed",
                                           successPolicy={"rules": [{"succeededIndexes": "0", "succeededCount": 1}]}))
    await env.settle()
    pods = env.by_index()
    env.finish(pods["1"], "Failed")  # a failure before success: counted as usual
    env.finish(pods["0"], "Succeeded")
    await env.settle()
    st = env.job()["status"]
    assert [c["type"] for c in st["conditions"]] == ["SuccessCriteriaMet", "Complete"]
    met, complete = st["conditions"]
    assert (met["reason"], met["message"]) == ("SuccessPolicy", "Matched rules at index 0")
    assert (complete["reason"], complete["message"]) == ("SuccessPolicy", "Matched rules at index 0")
    assert st["completionTime"] == complete["lastTransitionTime"]
    # index 2 was still running: deleted, and not counted as a failure
    assert env.pods(active_only=True) == [] and env.api.get_object("v1", "pods", NS, pods["2"]["metadata"]["name"]) is None
    assert st["completedIndexes"] == "0" and st["succeeded"] == 1 and st["failed"] == 1
    assert ("pi", "Normal", "Completed", "Job completed") in env.api.events


async def test_success_criteria_met_is_recorded_before_the_pods_are_released(env: Env):
    """SuccessCriteriaMet is written before the pods' finalizers go; if that fails, a later sync
    finishes the Job from the recorded condition."""
    env.api.create("batch/v1", "jobs", job(completions=3, parallelism=2, completionMode="Indexed",
                                           successPolicy={"rules": [{"succeededCount": 1}]}))
    await env.settle()
    pods = env.by_index()
    env.api.fail_next("patch", "pods", RuntimeError("apiserver away"), times=2)
    env.finish(pods["0"], "Failed")
    env.finish(pods["1"], "Succeeded")
    with pytest.raises(RuntimeError):
        await env.jc.sync(f"{NS}/pi")
    met = env.condition("SuccessCriteriaMet")
    assert met["message"] == "Matched rules at index 0" and env.condition("Complete") is None
    env.clock.step(3)
    await env.settle()
    assert env.condition("SuccessCriteriaMet") == met
    complete = env.condition("Complete")
    assert (complete["reason"], complete["message"]) == ("SuccessPolicy", "Matched rules at index 0")
    st = env.job()["status"]
    assert st["failed"] == 1 and st["succeeded"] == 1 and st["completedIndexes"] == "1"
    assert env.pods(active_only=True) == []  # index 2 was never started


# -- backoff limit per index --------------------------------------------------------------------

async def test_backoff_limit_per_index_fails_only_that_index(env: Env):
    env.api.create("batch/v1", "jobs", job(completions=3, parallelism=3, completionMode="Indexed",
                                           backoff_limit=2**31 - 1, backoffLimitPerIndex=1))
    await env.settle()
    first = env.by_index()
    assert first["0"]["metadata"]["annotations"][INDEX_FAILURE_COUNT] == "0"
    env.finish(first["0"], "Failed")
    await env.settle()
    # the failed pod keeps its finalizer (the index's failure count lives on it) until it is replaced
    kept = env.api.get_object("v1", "pods", NS, first["0"]["metadata"]["name"])
    assert TRACKING_FINALIZER in kept["metadata"]["finalizers"]
    assert sorted(env.by_index()) == ["1", "2"] and env.job()["status"]["failedIndexes"] == ""
    await env.resync(5)
    assert sorted(env.by_index()) == ["1", "2"]  # index 0 backs off for 10 s
    await env.resync(6)
    second = env.by_index()["0"]
    assert second["metadata"]["annotations"][INDEX_FAILURE_COUNT] == "1"
    kept = env.api.get_object("v1", "pods", NS, first["0"]["metadata"]["name"])
    assert not kept["metadata"].get("finalizers")  # replaced: now counted
    assert env.job()["status"]["failed"] == 1
    env.finish(second, "Failed")  # the second failure of index 0 exceeds backoffLimitPerIndex=1
    await env.settle()
    st = env.job()["status"]
    assert st["failedIndexes"] == "0" and st["failed"] == 2 and env.condition("Failed") is None
    await env.resync(60)
    assert sorted(env.by_index()) == ["1", "2"]  # a failed index gets no more pods
    env.finish(first["1"], "Succeeded")
    env.finish(first["2"], "Succeeded")
    await env.settle()
    cond = env.condition("Failed")
    assert (cond["reason"], cond["message"]) == ("FailedIndexes", "Job has failed indexes")
    st = env.job()["status"]
    assert st["completedIndexes"] == "1,2" and st["failedIndexes"] == "0" and "completionTime" not in st
    assert ("pi", "Warning", "FailedIndexes", "Job has failed indexes") in env.api.events


async def test_max_failed_indexes_fails_the_job(env: Env):
    env.api.create("batch/v1", "jobs", job(completions=4, parallelism=2, completionMode="Indexed",
                                           backoffLimitPerIndex=0, maxFailedIndexes=1))
    await env.settle()
    pods = env.by_index()
    env.finish(pods["0"], "Failed")
    await env.settle()
    assert env.job()["status"]["failedIndexes"] == "0" and env.condition("Failed") is None
    pods = env.by_index()
    assert sorted(pods) == ["1", "2"]  # index 0 is failed: the next pending index started at once
    env.finish(pods["2"], "Failed")
    await env.settle()
    cond = env.condition("Failed")
    assert (cond["reason"], cond["message"]) == (
        "MaxFailedIndexesExceeded", "Job has exceeded the specified maximal number of failed indexes")
    st = env.job()["status"]
    assert st["failedIndexes"] == "0,2" and st["failed"] == 3  # the running pod of index 1 counts too
    assert env.pods(active_only=True) == []


async def test_fail_index_and_ignore_rules(env: Env):
    pfp = {"rules": [{"action": "FailIndex", "onExitCodes": {"operator": "In", "values": [42]}},
                     {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}]}
    env.api.create("batch/v1", "jobs", job(completions=2, parallelism=2, completionMode="Indexed",
                                           podReplacementPolicy="Failed", backoffLimitPerIndex=5,
                                           podFailurePolicy=pfp))
    await env.settle()
    pods = env.by_index()
    env.finish(pods["0"], "Failed", exit_code=42)  # FailIndex: no retry despite backoffLimitPerIndex=5
    env.finish(pods["1"], "Failed", exit_code=137,
               conditions=[{"type": "DisruptionTarget", "status": "True", "reason": "PreemptionByScheduler"}])
    await env.settle()
    st = env.job()["status"]
    assert st["failedIndexes"] == "0" and st["failed"] == 1  # the ignored failure is not counted
    await env.resync(11)  # an ignored failure still backs off
    (retry,) = env.pods(active_only=True)
    annotations = retry["metadata"]["annotations"]
    assert annotations["batch.kubernetes.io/job-completion-index"] == "1"
    assert (annotations[INDEX_FAILURE_COUNT], annotations[INDEX_IGNORED_FAILURE_COUNT]) == ("0", "1")
    env.finish(retry, "Succeeded")
    await env.settle()
    assert env.condition("Failed")["reason"] == "FailedIndexes"
    assert env.job()["status"]["failed"] == 1


# -- pod failure policy ---------------------------------------------------------------------------

def test_match_pod_failure_policy():
    pod = {"metadata": {"name": "p", "namespace": "ns"}, "status": {
        "phase": "Failed",
        "conditions": [{"type": "DisruptionTarget", "status": "True"}],
        "initContainerStatuses": [{"name": "init", "state": {"terminated": {"exitCode": 3}}}],
        "containerStatuses": [{"name": "main", "state": {"terminated": {"exitCode": 0}}},
                              {"name": "side", "state": {"running": {}}}]}}

    def match(*rules: dict) -> tuple:
        return match_pod_failure_policy({"rules": list(rules)}, pod)

    assert match() == (None, True, None)
    assert match({"action": "Ignore", "onExitCodes": {"operator": "NotIn", "values": [3]}}) == (None, True, None)
    assert match({"action": "Count", "onExitCodes": {"operator": "NotIn", "values": [1]}}) == (None, True, "Count")
    assert match({"action": "FailJob", "onExitCodes": {"containerName": "main", "operator": "NotIn", "values": [1]}},
                 {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}
                 ) == (None, False, "Ignore")
    assert match({"action": "FailJob", "onExitCodes": {"operator": "In", "values": [3]}}) == (
        "Container init for pod ns/p failed with exit code 3 matching FailJob rule at index 0", True, "FailJob")
    assert match({"action": "Count", "onPodConditions": [{"type": "Other", "status": "True"}]},
                 {"action": "FailJob", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}) == (
        "Pod ns/p has condition DisruptionTarget matching FailJob rule at index 1", True, "FailJob")


async def test_fail_job_rule_records_failure_target_first(env: Env):
    pfp = {"rules": [{"action": "FailJob", "onExitCodes": {"operator": "In", "values": [5]}}]}
    env.api.create("batch/v1", "jobs", job(completions=2, parallelism=2, podReplacementPolicy="Failed",
                                           podFailurePolicy=pfp))
    await env.settle()
    bad, _ = env.pods()
    env.finish(bad, "Failed", exit_code=5)
    await env.settle()
    st = env.job()["status"]
    assert [c["type"] for c in st["conditions"]] == ["FailureTarget", "Failed"]
    message = f"Container c for pod {NS}/{bad['metadata']['name']} failed with exit code 5 matching FailJob rule at index 0"
    assert all((c["reason"], c["message"]) == ("PodFailurePolicy", message) for c in st["conditions"])
    assert st["failed"] == 2 and env.pods(active_only=True) == []  # the other pod was stopped and counted


async def test_replacement_policy_failed_waits_for_terminating_pods(env: Env):
    env.api.create("batch/v1", "jobs", job(completions=1, podReplacementPolicy="Failed"))
    await env.settle()
    (pod,) = env.pods()
    env.api.delete("v1", "pods", pod["metadata"]["name"], NS)  # terminating: still holds the finalizer
    await env.resync(30)
    assert len(env.pods()) == 1 and "failed" not in env.job()["status"]  # not replaced, not failed yet
    env.finish(pod, "Failed")
    await env.settle()
    assert env.job()["status"]["failed"] == 1
    await env.resync(11)
    assert len(env.pods(active_only=True)) == 1


# -- elastic indexed jobs, deletion ----------------------------------------------------------

def indexed_pod(ix: int, ready: bool = False, created: str = "2024-01-01T00:00:00Z") -> dict:
    return {"metadata": {"name": f"pi-{ix}", "creationTimestamp": created,
                         "annotations": {"batch.kubernetes.io/job-completion-index": str(ix)}},
            "status": {"phase": "Running",
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def test_pods_for_removal_of_an_indexed_job():
    spec = job(completions=3, completionMode="Indexed")
    older = indexed_pod(1, ready=True)
    newer = indexed_pod(1, created="2024-01-01T00:01:00Z")
    pods = [indexed_pod(0), older, newer, indexed_pod(3), indexed_pod(-1)]
    # past completions, without an index and the duplicate go even when no pod is too many
    assert [p["metadata"]["name"] for p in JobController._pods_for_removal(spec, pods, 0, set())] == [
        "pi--1", "pi-3", "pi-1"]
    removed = JobController._pods_for_removal(spec, pods, 0, set())
    assert newer in removed and older not in removed  # the ready one keeps the index
    # when more must go, pods of indexes that succeeded meanwhile go first
    assert JobController._pods_for_removal(spec, pods, 4, {1})[3] is older
    assert JobController._pods_for_removal(job(completions=3), pods, 0, set()) == []


async def test_indexed_job_scales_down_and_up(env: Env):
    env.api.create("batch/v1", "jobs", job(completions=5, parallelism=5, completionMode="Indexed"))
    await env.settle()
    env.finish(env.by_index()["4"], "Succeeded")
    await env.settle()
    assert env.job()["status"]["completedIndexes"] == "4" and sorted(env.by_index()) == ["0", "1", "2", "3"]
    # ElasticIndexedJob: completions and parallelism go down together
    cur = env.job()
    env.api.update("batch/v1", "jobs", {**cur, "spec": {**cur["spec"], "completions": 3, "parallelism": 3}})
    await env.settle()
    st = env.job()["status"]
    assert sorted(env.by_index()) == ["0", "1", "2"]  # index 3's pod was deleted
    assert st["completedIndexes"] == "" and "succeeded" not in st and st["active"] == 3
    # back up: index 4 runs again, its earlier success was dropped with it
    cur = env.job()
    env.api.update("batch/v1", "jobs", {**cur, "spec": {**cur["spec"], "completions": 5, "parallelism": 5}})
    await env.settle()
    assert sorted(env.by_index()) == ["0", "1", "2", "3", "4"]
    for p in env.by_index().values():
        env.finish(p, "Succeeded")
    await env.settle()
    st = env.job()["status"]
    assert st["completedIndexes"] == "0-4" and st["succeeded"] == 5 and env.condition("Complete")


async def test_scale_down_trims_failed_indexes(env: Env):
    env.api.create("batch/v1", "jobs", job(completions=4, parallelism=4, completionMode="Indexed",
                                           backoffLimitPerIndex=0))
    await env.settle()
    env.finish(env.by_index()["3"], "Failed")
    await env.settle()
    assert env.job()["status"]["failedIndexes"] == "3"
    cur = env.job()
    env.api.update("batch/v1", "jobs", {**cur, "spec": {**cur["spec"], "completions": 2, "parallelism": 2}})
    await env.settle()
    st = env.job()["status"]
    assert st["failedIndexes"] == "" and sorted(env.by_index()) == ["0", "1"]
    assert not env.condition("Failed")


async def test_deleted_job_releases_its_pods_at_once(env: Env):
    """podReplacementPolicy Failed: a terminating pod is no failure, yet a Job being deleted
    (foreground) removes the tracking finalizers of all its pods right away (upstream canRemoveFinalizer)."""
    env.api.create("batch/v1", "jobs", job(completions=2, parallelism=2, podReplacementPolicy="Failed"))
    await env.settle()
    assert all(TRACKING_FINALIZER in p["metadata"]["finalizers"] for p in env.pods())
    env.api.delete("batch/v1", "jobs", "pi", NS, propagation_policy="Foreground")
    assert env.job()["metadata"]["deletionTimestamp"]
    await env.settle()
    assert len(env.pods()) == 2 and all(not p["metadata"].get("finalizers") for p in env.pods())
    st = env.job()["status"]
    assert "failed" not in st and st["uncountedTerminatedPods"] == {"succeeded": [], "failed": []}
