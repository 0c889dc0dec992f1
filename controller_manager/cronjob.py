"""The CronJob controller: Jobs on a cron schedule (upstream pkg/controller/cronjob, the v2 controller).

Per sync of a CronJob: drop finished and vanished Jobs from `status.active`, delete the
oldest finished Jobs beyond successfulJobsHistoryLimit / failedJobsHistoryLimit, then — unless
suspended — find the most recent unmet schedule time (in `spec.timeZone`, else the process's
local zone) since lastScheduleTime (or creation), give up on it past startingDeadlineSeconds
(MissSchedule), skip it under Forbid while a Job is active (JobAlreadyActive), delete the
active Jobs under Replace, and create the Job `<cronjob>-<minutes since epoch>` (the name is
the lock: a restarted controller can never start one time slot twice). The key is requeued
for the next schedule time.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import zoneinfo
from pathlib import Path
from typing import Any

from apimachinery import cron
from apimachinery.meta import controller_of, format_time, parse_time
from client import NORMAL, WARNING, deleted_object, is_already_exists, is_not_found
from controller_manager.base import Controller, ControllerContext, add_index_once, register
from controller_manager.podcontrol import CONTROLLER_INDEX, controller_ref, error_message, index_by_controller

Obj = dict[str, Any]

SCHEDULED_TIMESTAMP = "batch.kubernetes.io/cronjob-scheduled-timestamp"
NEXT_SCHEDULE_DELTA = 0.1  # upstream requeues 100 ms after the next schedule time
MAX_MISSED = 100


def local_zone() -> dt.tzinfo:
    """The process's time zone (upstream uses time.Local when spec.timeZone is unset)."""
    name = os.environ.get("TZ", "").lstrip(":")
    if not name:
        try:
            name = Path("/etc/timezone").read_text().strip()
        except OSError:
            name = ""
    if name:
        try:
            return zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            pass
    return dt.datetime.now().astimezone().tzinfo or dt.UTC


def zone_of(cj: Obj) -> dt.tzinfo:
    spec = cj.get("spec") or {}
    # a TZ= prefix in the schedule survives on CronJobs older than the timeZone field
    tz = spec.get("timeZone") or cron.location_of(spec.get("schedule") or "")
    return zoneinfo.ZoneInfo(tz) if tz else local_zone()


def next_after(sched: cron.Schedule, t: dt.datetime, tz: dt.tzinfo) -> dt.datetime | None:
    """The first activation after `t`, evaluated on the wall clock of `tz`; returned in UTC."""
    n = sched.next_after(t.astimezone(tz))
    return n.astimezone(dt.UTC) if n is not None else None


def most_recent_schedule_time(earliest: dt.datetime, now: dt.datetime, sched: cron.Schedule,
                              tz: dt.tzinfo) -> tuple[dt.datetime | None, int]:
    """(the latest activation in (earliest, now], how many were missed) — upstream getMostRecentScheduleTime."""
    t1 = next_after(sched, earliest, tz)
    if t1 is None or now < t1:
        return None, 0
    t2 = next_after(sched, t1, tz)
    if t2 is None or now < t2:
        return t1, 1
    between = round((t2 - t1).total_seconds())
    if between < 1:
        raise ValueError("time difference between two schedules is less than 1 second")
    missed = int((now - t1).total_seconds()) // between + 1
    # start near the end (a wedged controller or a skewed clock must not walk through years of
    # minutes), then walk the schedule up to now
    t: dt.datetime | None = next_after(sched, t1 + dt.timedelta(seconds=(missed - 2) * between), tz)
    latest = None
    while t is not None and t <= now:
        latest = t
        t = next_after(sched, t, tz)
    return latest or t1, missed


def job_name(cj: Obj, scheduled: dt.datetime) -> str:
    return f"{cj['metadata']['name']}-{math.floor(scheduled.timestamp() / 60)}"


def finished_status(job: Obj) -> str | None:
    for c in (job.get("status") or {}).get("conditions") or []:
        if c.get("type") in ("Complete", "Failed") and c.get("status") == "True":
            return c["type"]
    return None


def job_reference(job: Obj) -> Obj:
    m = job["metadata"]
    return {"kind": "Job", "namespace": m.get("namespace"), "name": m["name"], "uid": m["uid"],
            "apiVersion": "batch/v1", "resourceVersion": m.get("resourceVersion")}


@register
class CronJobController(Controller):
    name = "cronjob-controller"
    aliases = ("cronjob",)
    workers_option = "concurrent_cron_job_syncs"
    service_account = "cronjob-controller"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.cronjobs = self.informer("batch/v1", "cronjobs")
        self.cronjobs.add_handler(self.enqueue, self._cronjob_updated, self.enqueue_deleted)
        self.jobs = self.informer("batch/v1", "jobs")
        add_index_once(self.jobs, CONTROLLER_INDEX, index_by_controller)
        self.jobs.add_handler(self._job_changed, lambda old, new: self._job_changed(new), self._job_changed)
        self.cronjobs_api = self.client.resource("batch/v1", "cronjobs")
        self.jobs_api = self.client.resource("batch/v1", "jobs")

    # -- events ---------------------------------------------------------------------------

    def _cronjob_updated(self, old: Obj, new: Obj) -> None:
        os_, ns_ = old.get("spec") or {}, new.get("spec") or {}
        if os_.get("schedule") != ns_.get("schedule") or os_.get("timeZone") != ns_.get("timeZone"):
            try:
                sched = cron.parse(ns_.get("schedule") or "")
                delay = self.next_schedule_delay(new, self.clock.now(), sched)
            except (cron.CronError, ValueError, zoneinfo.ZoneInfoNotFoundError):
                self.enqueue(new)
                return
            self.enqueue_after(new, delay)
            return
        self.enqueue(new)

    def _job_changed(self, item: Any) -> None:
        job = deleted_object(item)
        ref = controller_of(job)
        if ref is None or ref.get("kind") != "CronJob":
            return
        cj = self.cronjobs.store.get_by_name(job["metadata"].get("namespace"), ref.get("name", ""))
        if cj is not None and cj["metadata"].get("uid") == ref.get("uid"):
            self.enqueue(cj)

    # -- scheduling ----------------------------------------------------------------------

    def next_schedule_delay(self, cj: Obj, now: dt.datetime, sched: cron.Schedule) -> float:
        """Seconds until just after the next activation (upstream nextScheduleTimeDuration)."""
        st = cj.get("status") or {}
        earliest = parse_time(st.get("lastScheduleTime") or cj["metadata"]["creationTimestamp"])
        tz = zone_of(cj)
        try:
            recent, _ = most_recent_schedule_time(earliest, now, sched, tz)
            base = recent or earliest
        except ValueError:
            base = now
        nxt = next_after(sched, base, tz)
        if nxt is None:
            return 3600.0
        return max(0.0, (nxt - now).total_seconds() + NEXT_SCHEDULE_DELTA)

    def next_schedule_time(self, cj: Obj, now: dt.datetime, sched: cron.Schedule) -> dt.datetime | None:
        spec, st = cj.get("spec") or {}, cj.get("status") or {}
        earliest = parse_time(st.get("lastScheduleTime") or cj["metadata"]["creationTimestamp"])
        if spec.get("startingDeadlineSeconds") is not None:
            deadline = now - dt.timedelta(seconds=spec["startingDeadlineSeconds"])
            earliest = max(earliest, deadline)
        t, missed = most_recent_schedule_time(earliest, now, sched, zone_of(cj))
        if missed > MAX_MISSED:
            self.recorder.event(cj, WARNING, "TooManyMissedTimes",
                                f"too many missed start times: {missed}. Set or decrease .spec.startingDeadlineSeconds "
                                f"or check clock skew")
        return t

    # -- sync ------------------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        cached = self.cronjobs.store.get(key)
        if cached is None:
            return
        cj = {**cached, "metadata": dict(cached["metadata"]), "status": dict(cached.get("status") or {})}
        cj["status"]["active"] = list(cj["status"].get("active") or [])
        jobs = [j for j in self.jobs.store.by_index("namespace", cj["metadata"].get("namespace"))
                if (controller_of(j) or {}).get("name") == cj["metadata"]["name"]
                and (controller_of(j) or {}).get("kind") == "CronJob"]
        changed = await self.cleanup_finished_jobs(cj, jobs)
        delay, synced_changed, error = None, False, None
        try:
            delay, synced_changed = await self.sync_cronjob(cj, jobs)
        except Exception as e:
            error = e
        if changed or synced_changed:
            await self._update_status(cj)
        if delay is not None:
            self.enqueue_after(key, delay)
            return
        if error is not None:
            raise error

    async def _update_status(self, cj: Obj) -> None:
        status = {k: v for k, v in cj["status"].items() if not (k == "active" and not v)}
        try:
            updated = await self.cronjobs_api.update_status({**cj, "status": status})
        except Exception:
            fresh = await self.cronjobs_api.get(cj["metadata"]["name"], cj["metadata"].get("namespace"))
            updated = await self.cronjobs_api.update_status({**fresh, "status": status})
        cj["metadata"]["resourceVersion"] = updated["metadata"].get("resourceVersion")

    async def cleanup_finished_jobs(self, cj: Obj, jobs: list[Obj]) -> bool:
        spec = cj.get("spec") or {}
        if spec.get("successfulJobsHistoryLimit") is None and spec.get("failedJobsHistoryLimit") is None:
            return False
        succeeded = [j for j in jobs if finished_status(j) == "Complete"]
        failed = [j for j in jobs if finished_status(j) == "Failed"]
        changed = False
        for group, limit in ((succeeded, spec.get("successfulJobsHistoryLimit")), (failed, spec.get("failedJobsHistoryLimit"))):
            if limit is None or len(group) <= limit:
                continue
            for j in sorted(group, key=_start_order)[: len(group) - limit]:
                if await self._delete_job(cj, j):
                    changed = True
        return changed

    async def _delete_job(self, cj: Obj, job: Obj) -> bool:
        try:
            await self.jobs_api.delete(job["metadata"]["name"], job["metadata"].get("namespace"),
                                       propagation_policy="Background")
        except Exception as e:
            if not is_not_found(e):
                self.recorder.event(cj, WARNING, "FailedDelete", f"Deleted job: {error_message(e)}")
                return False
        uid = job["metadata"].get("uid")
        cj["status"]["active"] = [a for a in cj["status"].get("active") or [] if a.get("uid") != uid]
        self.recorder.event(cj, NORMAL, "SuccessfulDelete", f"Deleted job {job['metadata']['name']}")
        return True

    async def sync_cronjob(self, cj: Obj, jobs: list[Obj]) -> tuple[float | None, bool]:
        now = self.clock.now()
        st = cj["status"]
        changed = False
        children = set()
        for j in jobs:
            uid = j["metadata"]["uid"]
            children.add(uid)
            in_active = any(a.get("uid") == uid for a in st["active"])
            status = finished_status(j)
            if not in_active and status is None:
                fresh = await self.cronjobs_api.get(cj["metadata"]["name"], cj["metadata"].get("namespace"))
                if any(a.get("uid") == uid for a in (fresh.get("status") or {}).get("active") or []):
                    st["active"] = list((fresh.get("status") or {}).get("active") or [])
                    cj["metadata"]["resourceVersion"] = fresh["metadata"].get("resourceVersion")
                    continue
                self.recorder.event(cj, WARNING, "UnexpectedJob",
                                    f"Saw a job that the controller did not create or forgot: {j['metadata']['name']}")
            elif in_active and status is not None:
                st["active"] = [a for a in st["active"] if a.get("uid") != uid]
                self.recorder.event(cj, NORMAL, "SawCompletedJob",
                                    f"Saw completed job: {j['metadata']['name']}, condition: {status}")
                changed = True
            if status == "Complete":
                done = (j.get("status") or {}).get("completionTime")
                if done and (not st.get("lastSuccessfulTime") or parse_time(done) > parse_time(st["lastSuccessfulTime"])):
                    st["lastSuccessfulTime"] = done
                    changed = True
        for a in list(st["active"]):
            if a.get("uid") in children:
                continue
            try:
                await self.jobs_api.get(a["name"], a.get("namespace"))
            except Exception as e:
                if not is_not_found(e):
                    raise
                self.recorder.event(cj, NORMAL, "MissingJob", f"Active job went missing: {a['name']}")
                st["active"] = [x for x in st["active"] if x.get("uid") != a.get("uid")]
                changed = True

        spec = cj.get("spec") or {}
        if cj["metadata"].get("deletionTimestamp"):
            return None, changed
        if spec.get("timeZone"):
            try:
                zoneinfo.ZoneInfo(spec["timeZone"])
            except (zoneinfo.ZoneInfoNotFoundError, ValueError) as e:
                self.recorder.event(cj, WARNING, "UnknownTimeZone", f'invalid timeZone: "{spec["timeZone"]}": {e}')
                return None, changed
        if spec.get("suspend"):
            return None, changed
        try:
            sched = cron.parse(spec.get("schedule") or "")
        except cron.CronError as e:
            self.recorder.event(cj, WARNING, "UnparseableSchedule", f'unparseable schedule: "{spec.get("schedule")}" : {e}')
            return None, changed
        try:
            scheduled = self.next_schedule_time(cj, now, sched)
        except ValueError as e:
            self.recorder.event(cj, WARNING, "InvalidSchedule", f"invalid schedule: {spec.get('schedule')} : {e}")
            return None, changed
        if scheduled is None:
            return self.next_schedule_delay(cj, now, sched), changed
        deadline = spec.get("startingDeadlineSeconds")
        if deadline is not None and scheduled + dt.timedelta(seconds=deadline) < now:
            self.recorder.event(cj, WARNING, "MissSchedule",
                                f"Missed scheduled time to start a job: {scheduled.strftime('%a, %d %b %Y %H:%M:%S %z')}")
            return self.next_schedule_delay(cj, now, sched), changed
        name = job_name(cj, scheduled)
        if any(a.get("name") == name for a in st["active"]) or (
                st.get("lastScheduleTime") and parse_time(st["lastScheduleTime"]) == scheduled):
            return self.next_schedule_delay(cj, now, sched), changed
        policy = spec.get("concurrencyPolicy", "Allow")
        if policy == "Forbid" and st["active"]:
            self.recorder.event(cj, NORMAL, "JobAlreadyActive",
                                "Not starting job because prior execution is running and concurrency policy is Forbid")
            return self.next_schedule_delay(cj, now, sched), changed
        if policy == "Replace":
            for a in list(st["active"]):
                try:
                    job = await self.jobs_api.get(a["name"], a.get("namespace"))
                except Exception as e:
                    self.recorder.event(cj, WARNING, "FailedGet", f"Get job: {error_message(e)}")
                    raise
                if not await self._delete_job(cj, job):
                    raise RuntimeError(f"could not replace job {a.get('namespace')}/{a['name']}")
                changed = True

        job = self._job_from_template(cj, scheduled, name)
        ns = cj["metadata"].get("namespace")
        try:
            created = await self.jobs_api.create(job, ns)
        except Exception as e:
            details = getattr(e, "details", None) or {}
            if any(c.get("reason") == "NamespaceTerminating" for c in details.get("causes") or []):
                raise
            if not is_already_exists(e):
                self.recorder.event(cj, WARNING, "FailedCreate", f"Error creating job: {error_message(e)}")
                raise
            existing = await self.jobs_api.get(name, ns)
            if (controller_of(existing) or {}).get("uid") != cj["metadata"]["uid"]:
                return None, changed
            if any(a.get("uid") == existing["metadata"]["uid"] for a in st["active"]):
                return None, changed
            created = existing
        else:
            self.recorder.event(cj, NORMAL, "SuccessfulCreate", f"Created job {created['metadata']['name']}")
        st["active"].append(job_reference(created))
        st["lastScheduleTime"] = format_time(scheduled)
        return self.next_schedule_delay(cj, now, sched), True

    def _job_from_template(self, cj: Obj, scheduled: dt.datetime, name: str) -> Obj:
        tpl = (cj.get("spec") or {}).get("jobTemplate") or {}
        tmeta = tpl.get("metadata") or {}
        annotations = dict(tmeta.get("annotations") or {})
        annotations[SCHEDULED_TIMESTAMP] = scheduled.astimezone(zone_of(cj)).isoformat(timespec="seconds")
        return {
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name, "namespace": cj["metadata"].get("namespace"),
                         "labels": dict(tmeta.get("labels") or {}), "annotations": annotations,
                         "ownerReferences": [controller_ref(cj)]},
            "spec": dict(tpl.get("spec") or {}),
        }


def _start_order(job: Obj) -> tuple:
    st = (job.get("status") or {}).get("startTime")
    return (0 if st else 1, parse_time(st).timestamp() if st else 0.0, job["metadata"]["name"])

