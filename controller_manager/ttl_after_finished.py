"""The TTL-after-finished controller: delete finished Jobs `ttlSecondsAfterFinished` after they
finished (upstream pkg/controller/ttlafterfinished).

A Job is finished when its Complete or Failed condition is True; it expires at that
condition's lastTransitionTime + ttl. Before deleting, the Job is read again from the
apiserver (its TTL may have changed) and deleted with foreground propagation and a uid
precondition, so its pods go first and a re-created Job of the same name is never hit.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from apimachinery.meta import key_of, parse_time, split_key
from client import is_not_found
from controller_manager.base import Controller, ControllerContext, register

Obj = dict[str, Any]


def finish_time(job: Obj) -> dt.datetime | None:
    for c in (job.get("status") or {}).get("conditions") or []:
        if c.get("type") in ("Complete", "Failed") and c.get("status") == "True" and c.get("lastTransitionTime"):
            return parse_time(c["lastTransitionTime"])
    return None


def needs_cleanup(job: Obj) -> bool:
    return (job.get("spec") or {}).get("ttlSecondsAfterFinished") is not None and finish_time(job) is not None


@register
class TTLAfterFinishedController(Controller):
    name = "ttl-after-finished-controller"
    aliases = ("ttl-after-finished",)
    workers_option = "concurrent_ttl_after_finished_syncs"
    service_account = "ttl-after-finished-controller"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.jobs = self.informer("batch/v1", "jobs")
        self.jobs.add_handler(self._maybe_enqueue, lambda old, new: self._maybe_enqueue(new), None)
        self.jobs_api = self.client.resource("batch/v1", "jobs")

    def _maybe_enqueue(self, job: Obj) -> None:
        if not job["metadata"].get("deletionTimestamp") and needs_cleanup(job):
            self.enqueue(job)

    def expired(self, job: Obj) -> bool:
        """True if the TTL has passed; otherwise (if it will) check again when it does."""
        if job["metadata"].get("deletionTimestamp") or not needs_cleanup(job):
            return False
        finished = finish_time(job)
        assert finished is not None
        expire_at = finished + dt.timedelta(seconds=job["spec"]["ttlSecondsAfterFinished"])
        left = (expire_at - self.clock.now()).total_seconds()
        if left <= 0:
            return True
        self.enqueue_after(key_of(job), left)
        return False

    async def sync(self, key: str) -> None:
        job = self.jobs.store.get(key)
        if job is None or not self.expired(job):
            return
        namespace, name = split_key(key)
        try:
            fresh = await self.jobs_api.get(name, namespace)
        except Exception as e:
            if is_not_found(e):
                return
            raise
        if not self.expired(fresh):
            return
        try:
            await self.jobs_api.delete(name, namespace, propagation_policy="Foreground",
                                       preconditions={"uid": fresh["metadata"]["uid"]})
        except Exception as e:
            if not is_not_found(e):
                raise
        self.log.info("deleted finished job %s (ttlSecondsAfterFinished)", key)
