"""CronJob and TTL-after-finished controllers against the in-memory API, on a fake clock."""

from __future__ import annotations

import copy
import datetime as dt

import pytest

from apimachinery import cron
from apimachinery.meta import format_time
from controller_manager.base import ControllerContext, FakeClock
from controller_manager.cronjob import CronJobController, most_recent_schedule_time
from controller_manager.fake import FakeAPI, FakeInformerFactory
from controller_manager.ttl_after_finished import TTLAfterFinishedController

NS = "default"
T0 = dt.datetime(2024, 1, 1, 0, 0, 30, tzinfo=dt.UTC)


def cronjob(name: str = "tick", schedule: str = "*/5 * * * *", policy: str = "Allow", **spec) -> dict:
    return {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": name, "namespace": NS},
            "spec": {"schedule": schedule, "concurrencyPolicy": policy, "suspend": False,
                     "successfulJobsHistoryLimit": 3, "failedJobsHistoryLimit": 1,
                     "jobTemplate": {"metadata": {"labels": {"cron": name}},
                                     "spec": {"template": {"spec": {"restartPolicy": "Never",
                                                                    "containers": [{"name": "c", "image": "x"}]}}}},
                     **spec}}


class Env:
    def __init__(self, start: dt.datetime = T0) -> None:
        self.clock = FakeClock(start)
        self.api = FakeAPI(self.clock)
        self.ctx = ControllerContext(self.api, FakeInformerFactory(self.api), clock=self.clock,  # type: ignore[arg-type]
                                     recorder_factory=self.api.recorder)
        self.cc = CronJobController(self.ctx)

    async def at(self, t: dt.datetime, name: str = "tick") -> None:
        self.clock.set(t)
        await self.cc.sync(f"{NS}/{name}")

    def jobs(self) -> list[dict]:
        return sorted(self.api.list_objects("batch/v1", "jobs", NS), key=lambda j: j["metadata"]["name"])

    def cj(self, name: str = "tick") -> dict:
        return self.api.get_object("batch/v1", "cronjobs", NS, name)

    def finish(self, job: dict, type_: str = "Complete") -> None:
        cur = self.api.get_object("batch/v1", "jobs", NS, job["metadata"]["name"])
        ts = format_time(self.clock.now())
        status = {"startTime": cur["metadata"]["creationTimestamp"],
                  "conditions": [{"type": type_, "status": "True", "lastTransitionTime": ts}]}
        if type_ == "Complete":
            status["completionTime"] = ts
        self.api.update("batch/v1", "jobs", {**cur, "status": status}, status=True)

    def reasons(self) -> list[str]:
        return [e[2] for e in self.api.events]


def minute(m: int, s: int = 0) -> dt.datetime:
    return dt.datetime(2024, 1, 1, 0, m, s, tzinfo=dt.UTC)


def test_most_recent_schedule_time():
    sched = cron.parse("*/5 * * * *")
    assert most_recent_schedule_time(minute(0), minute(4), sched, dt.UTC) == (None, 0)
    assert most_recent_schedule_time(minute(0), minute(5), sched, dt.UTC) == (minute(5), 1)
    assert most_recent_schedule_time(minute(0), minute(17), sched, dt.UTC) == (minute(15), 3)
    # years of missed minutes are computed without walking them all
    t, missed = most_recent_schedule_time(minute(0), dt.datetime(2030, 1, 1, 0, 2, tzinfo=dt.UTC),
                                          cron.parse("* * * * *"), dt.UTC)
    assert t == dt.datetime(2030, 1, 1, 0, 2, tzinfo=dt.UTC) and missed > 3_000_000


async def test_creates_a_job_per_schedule_time_with_a_deterministic_name():
    env = Env()
    env.api.create("batch/v1", "cronjobs", cronjob())
    await env.at(minute(4))
    assert env.jobs() == []
    await env.at(minute(5, 1))
    (job,) = env.jobs()
    assert job["metadata"]["name"] == f"tick-{int(minute(5).timestamp()) // 60}"
    assert job["metadata"]["ownerReferences"][0]["kind"] == "CronJob"
    assert job["metadata"]["labels"] == {"cron": "tick"}
    assert job["metadata"]["annotations"]["batch.kubernetes.io/cronjob-scheduled-timestamp"]
    st = env.cj()["status"]
    assert st["lastScheduleTime"] == "2024-01-01T00:05:00Z"
    assert [a["name"] for a in st["active"]] == [job["metadata"]["name"]]
    assert "SuccessfulCreate" in env.reasons()
    await env.at(minute(6))  # the same slot is never run twice
    assert len(env.jobs()) == 1


async def test_every_schedule():
    """`@every 2m` (robfig's ConstantDelaySchedule): every two minutes from the creation on."""
    env = Env()
    env.api.create("batch/v1", "cronjobs", cronjob(schedule="@every 2m"))  # created at 00:00:30
    await env.at(minute(2))
    assert env.jobs() == []
    await env.at(minute(2, 31))
    assert len(env.jobs()) == 1 and env.cj()["status"]["lastScheduleTime"] == "2024-01-01T00:02:30Z"
    assert env.cc.next_schedule_delay(env.cj(), env.clock.now(), cron.parse("@every 2m")) == pytest.approx(119.1)
    await env.at(minute(4, 31))
    assert len(env.jobs()) == 2 and env.cj()["status"]["lastScheduleTime"] == "2024-01-01T00:04:30Z"


async def test_forbid_never_runs_two_at_once():
    env = Env()
    env.api.create("batch/v1", "cronjobs", cronjob(policy="Forbid"))
    await env.at(minute(5))
    await env.at(minute(10))
    assert len(env.jobs()) == 1 and "JobAlreadyActive" in env.reasons()
    env.finish(env.jobs()[0])
    await env.at(minute(10, 30))  # the finished job leaves the active list; the 00:10 slot still runs
    assert len(env.jobs()) == 2
    st = env.cj()["status"]
    assert len(st["active"]) == 1 and st["lastSuccessfulTime"] == "2024-01-01T00:10:00Z"
    assert "SawCompletedJob" in env.reasons()


async def test_allow_and_replace():
    env = Env()
    env.api.create("batch/v1", "cronjobs", cronjob(name="allow"))
    env.api.create("batch/v1", "cronjobs", cronjob(name="replace", policy="Replace"))
    for m in (5, 10):
        await env.at(minute(m), "allow")
        await env.at(minute(m), "replace")
    names = [j["metadata"]["name"] for j in env.jobs()]
    assert sum(n.startswith("allow-") for n in names) == 2
    replace_jobs = [n for n in names if n.startswith("replace-")]
    assert replace_jobs == [f"replace-{int(minute(10).timestamp()) // 60}"]  # the 00:05 one was deleted
    assert len(env.cj("replace")["status"]["active"]) == 1


async def test_starting_deadline_and_suspend():
    env = Env()
    env.api.create("batch/v1", "cronjobs", cronjob(startingDeadlineSeconds=30))
    await env.at(minute(6))  # 60 s late for 00:05: that slot is skipped
    assert env.jobs() == []
    await env.at(minute(10, 20))
    assert len(env.jobs()) == 1
    cj = copy.deepcopy(env.cj())
    cj["spec"]["suspend"] = True
    env.api.update("batch/v1", "cronjobs", cj)
    await env.at(minute(15, 5))
    assert len(env.jobs()) == 1


async def test_time_zone_and_macros():
    env = Env(dt.datetime(2024, 1, 1, 0, 30, tzinfo=dt.UTC))
    env.api.create("batch/v1", "cronjobs", cronjob(name="tokyo", schedule="0 9 * * *", timeZone="Asia/Tokyo"))
    env.api.create("batch/v1", "cronjobs", cronjob(name="hourly", schedule="@hourly"))
    await env.at(dt.datetime(2024, 1, 1, 1, 0, 5, tzinfo=dt.UTC), "hourly")
    await env.at(dt.datetime(2024, 1, 1, 1, 0, 5, tzinfo=dt.UTC), "tokyo")
    assert [j["metadata"]["name"].split("-")[0] for j in env.jobs()] == ["hourly"]
    await env.at(dt.datetime(2024, 1, 2, 0, 0, 5, tzinfo=dt.UTC), "tokyo")  # 09:00 in Tokyo
    tokyo = [j for j in env.jobs() if j["metadata"]["name"].startswith("tokyo-")]
    assert len(tokyo) == 1
    assert tokyo[0]["metadata"]["annotations"]["batch.kubernetes.io/cronjob-scheduled-timestamp"] == "2024-01-02T09:00:00+09:00"
    assert env.cc.next_schedule_delay(env.cj("tokyo"), env.clock.now(), cron.parse("0 9 * * *")) == pytest.approx(
        86400 - 5 + 0.1)


async def test_legacy_tz_in_schedule():
    """A CronJob from before the timeZone field keeps its CRON_TZ= prefix: the schedule runs in that zone."""
    env = Env(dt.datetime(2024, 1, 1, 23, 59, 0, tzinfo=dt.UTC))
    env.api.create("batch/v1", "cronjobs", cronjob(name="legacy", schedule="CRON_TZ=Asia/Tokyo 0 9 * * *"))
    await env.at(dt.datetime(2024, 1, 2, 0, 0, 5, tzinfo=dt.UTC), "legacy")  # 09:00 in Tokyo
    (made,) = env.jobs()
    assert made["metadata"]["annotations"]["batch.kubernetes.io/cronjob-scheduled-timestamp"] == "2024-01-02T09:00:00+09:00"


async def test_history_limits():
    env = Env()
    env.api.create("batch/v1", "cronjobs", cronjob(successfulJobsHistoryLimit=1, failedJobsHistoryLimit=0))
    for m in (5, 10, 15):
        await env.at(minute(m))
        env.finish(env.jobs()[-1], "Complete" if m != 15 else "Failed")
    await env.at(minute(16))
    names = [j["metadata"]["name"] for j in env.jobs()]
    assert names == [f"tick-{int(minute(10).timestamp()) // 60}"]
    assert env.reasons().count("SuccessfulDelete") == 2


async def test_lost_status_does_not_start_a_slot_twice():
    env = Env()
    env.api.create("batch/v1", "cronjobs", cronjob())
    await env.at(minute(5))
    cj = env.cj()
    env.api.update("batch/v1", "cronjobs", {**cj, "status": {}}, status=True)  # e.g. a write that was lost
    await env.at(minute(6))
    assert len(env.jobs()) == 1
    assert len(env.cj()["status"]["active"]) == 1


async def test_ttl_after_finished_deletes_in_the_foreground():
    env = Env()
    ttl = TTLAfterFinishedController(env.ctx)
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "done", "namespace": NS},
           "spec": {"ttlSecondsAfterFinished": 100, "template": {}}}
    env.api.create("batch/v1", "jobs", job)
    env.finish(env.api.get_object("batch/v1", "jobs", NS, "done"))
    env.clock.step(50)
    await ttl.sync(f"{NS}/done")
    assert env.api.get_object("batch/v1", "jobs", NS, "done") is not None
    assert env.api.writes("delete", "jobs") == []
    env.clock.step(51)
    await ttl.sync(f"{NS}/done")
    gone = env.api.get_object("batch/v1", "jobs", NS, "done")
    assert gone is not None and gone["metadata"]["deletionTimestamp"]  # foreground: waits for its pods
    assert "foregroundDeletion" in gone["metadata"]["finalizers"]
