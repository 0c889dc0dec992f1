"""Job controller against the in-memory API."""

from __future__ import annotations

import copy
import datetime as dt

import pytest

from apimachinery.meta import format_time
from controller_manager.base import ControllerContext, FakeClock
from controller_manager.fake import FakeAPI, FakeInformerFactory, run_until_idle
from controller_manager.job import (
    TRACKING_FINALIZER,
    BackoffRecord,
    JobController,
    intervals,
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

    def finish(self, pod: dict, phase: str, restarts: int = 0) -> None:
        ts = format_time(self.clock.now())
        code = 0 if phase == "Succeeded" else 1
        status = {"phase": phase, "containerStatuses": [{
            "name": "c", "restartCount": restarts,
            "state": {"terminated": {"exitCode": code, "finishedAt": ts, "startedAt": ts}}}]}
        cur = self.api.get_object("v1", "pods", NS, pod["metadata"]["name"])
        self.api.update("v1", "pods", {**cur, "status": status}, status=True)

    def condition(self, type_: str, name: str = "pi") -> dict | None:
        return next((c for c in self.job(name)["status"].get("conditions", []) if c["type"] == type_), None)


@pytest.fixture
def env() -> Env:
    return Env()


def test_intervals_round_trip():
    assert intervals({0, 1, 2, 5, 7, 8, 10}) == "0-2,5,7,8,10"  # upstream lists two neighbours, no range
    assert parse_intervals("0-2,5,7-8", 8) == {0, 1, 2, 5, 7}
    assert parse_intervals("3-999999999999,x,1", 5) == {1, 3, 4}  # bounded by completions, bad parts skipped
    assert intervals(set()) == ""


def test_backoff_doubles_to_six_minutes():
    t0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    assert [BackoffRecord(n, t0).remaining(t0) for n in (0, 1, 2, 3, 6, 10)] == [0, 10, 20, 40, 320, 360]
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
    cond = env.condition("Failed")
    assert (cond["reason"], cond["message"]) == ("DeadlineExceeded", "Job was active longer than specified deadline")
    assert env.pods() == []
    assert env.job()["status"]["failed"] == 2  # the pods it killed count as failed


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
