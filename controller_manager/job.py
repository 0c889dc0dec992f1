"""The Job controller: run pods to completion (upstream pkg/controller/job, finalizer-based tracking).

Per sync of an unfinished Job:
- claim pods; count finished ones exactly once: every pod carries the finalizer
  `batch.kubernetes.io/job-tracking`; a finished pod's uid first goes into
  `status.uncountedTerminatedPods`, then its finalizer is removed, then it moves into the
  `succeeded`/`failed` counters — so a pod deleted early (pod GC, eviction) is never lost or
  counted twice. With restartPolicy Never a failed (or deleted unfinished) pod counts as a
  failure; with OnFailure the containers' restarts count toward backoffLimit;
- fail the Job past backoffLimit (BackoffLimitExceeded) or activeDeadlineSeconds
  (DeadlineExceeded), deleting its active pods; succeed once `completions` pods succeeded (or,
  without completions, once one succeeded and none is active), reason CompletionsReached;
- terminal conditions are delayed (upstream delayTerminalCondition, on since 1.31): a failure is
  first recorded as FailureTarget, a success as SuccessCriteriaMet, with the reason and message
  the terminal Failed / Complete (and completionTime) get once every pod is counted and none is
  terminating any more; `status.terminating` counts the pods being deleted that have not finished;
- otherwise keep min(parallelism, remaining completions) pods active, creating replacements
  after an exponential backoff (10 s doubling to 10 min per failure since the last success);
- suspend deletes the active pods (condition Suspended); resuming resets startTime.
Indexed jobs give each pod a completion index (annotation, label, hostname `<job>-<index>`)
and count succeeded pods by `completedIndexes` (their uids never go into uncountedTerminatedPods);
they scale (ElasticIndexedJob) by changing completions with parallelism: the pods of indexes
past the new completions are deleted and those indexes drop out of `completedIndexes` /
`failedIndexes`.
A Job being deleted (foreground) lets go of all its pods: their tracking finalizers are removed
whatever their phase. Finished Jobs are deleted after ttlSecondsAfterFinished by
the ttl-after-finished controller (ttl_after_finished.py).

Policies (upstream pod_failure_policy.go, success_policy.go, the per-index parts of
indexed_job_utils.go and backoff_utils.go):
- spec.podFailurePolicy: the first rule matching a failed pod (exit codes, pod conditions) decides:
  FailJob (reason PodFailurePolicy), FailIndex, Ignore (the failure does not count toward the
  backoff limits) or Count;
- spec.successPolicy (Indexed): once a rule's succeededIndexes / succeededCount hold, the Job
  succeeds (reason SuccessPolicy) and its remaining pods are deleted;
- spec.backoffLimitPerIndex (Indexed): an index fails after more than that many counted failures
  (or a FailIndex rule); its failure count rides from pod to pod in an annotation, so a failed pod
  keeps its finalizer until its replacement exists; each index backs off on its own. Failed
  indexes go into status.failedIndexes; the Job fails past maxFailedIndexes
  (MaxFailedIndexesExceeded) or once every index succeeded or failed (FailedIndexes).
The pods of a finished-to-be Job are deleted with their finalizers (upstream deleteActivePods):
they are counted first, then released; those suspend or a scale-down delete are released first.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import datetime as dt
from typing import Any

from apimachinery.meta import controller_of, format_time, key_of, parse_time
from apimachinery.selectors import LabelSelectorError, selector_from_label_selector
from client import NORMAL, WARNING, WorkQueue, deleted_object, is_not_found, run_workers
from controller_manager.base import Controller, ControllerContext, add_index_once, register
from controller_manager.conditions import get_condition
from controller_manager.expectations import ControllerExpectations
from controller_manager.podcontrol import (
    CONTROLLER_INDEX,
    ControllerRefManager,
    PodControl,
    controller_ref,
    index_by_controller,
    owned_or_orphans,
    pod_from_template,
    resolve_controller_ref,
    selecting,
)
from controller_manager.podutil import is_pod_active, is_pod_ready, labels_of, phase

Obj = dict[str, Any]

TRACKING_FINALIZER = "batch.kubernetes.io/job-tracking"
COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"
INDEX_FAILURE_COUNT = "batch.kubernetes.io/job-index-failure-count"
INDEX_IGNORED_FAILURE_COUNT = "batch.kubernetes.io/job-index-ignored-failure-count"
MAX_POD_CREATE_DELETE_PER_SYNC = 500
MAX_UNCOUNTED_PODS = 500
# upstream DefaultJobPodFailureBackOff / MaxJobPodFailureBackOff
DEFAULT_BACKOFF = 10.0
MAX_BACKOFF = 600.0


# -- pure helpers ----------------------------------------------------------------------------

def has_finalizer(pod: Obj) -> bool:
    return TRACKING_FINALIZER in (pod["metadata"].get("finalizers") or [])


def is_finished(job: Obj) -> bool:
    for c in (job.get("status") or {}).get("conditions") or []:
        if c.get("type") in ("Complete", "Failed") and c.get("status") == "True":
            return True
    return False


def is_indexed(job: Obj) -> bool:
    return (job.get("spec") or {}).get("completionMode") == "Indexed"


def suspended(job: Obj) -> bool:
    return bool((job.get("spec") or {}).get("suspend"))


def only_replace_failed(job: Obj) -> bool:
    spec = job.get("spec") or {}
    return spec.get("podReplacementPolicy") == "Failed" or bool(spec.get("podFailurePolicy"))


def is_pod_failed(pod: Obj, job: Obj) -> bool:
    """Failed; or deleted before finishing (its failure would otherwise never be seen)."""
    if phase(pod) == "Failed":
        return True
    if only_replace_failed(job):
        return False
    return bool(pod["metadata"].get("deletionTimestamp")) and phase(pod) != "Succeeded"


def completion_index(pod: Obj) -> int:
    v = (pod["metadata"].get("annotations") or {}).get(COMPLETION_INDEX)
    try:
        return int(v) if v is not None else -1
    except ValueError:
        return -1


def finish_time(pod: Obj, fallback: dt.datetime) -> dt.datetime:
    """When a pod finished: its containers' last finishedAt, else when it became not ready / was deleted."""
    latest: dt.datetime | None = None
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        t = ((cs.get("state") or {}).get("terminated") or {}).get("finishedAt")
        if t:
            try:
                pt = parse_time(t)
            except ValueError:
                continue
            latest = pt if latest is None or pt > latest else latest
    if latest is not None:
        return latest
    for c in (pod.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready" and c.get("status") == "False" and c.get("lastTransitionTime"):
            return parse_time(c["lastTransitionTime"])
    if pod["metadata"].get("deletionTimestamp"):
        return parse_time(pod["metadata"]["deletionTimestamp"])
    return fallback


def restarts(pod: Obj) -> int:
    st = pod.get("status") or {}
    return sum((cs.get("restartCount") or 0)
               for cs in (st.get("containerStatuses") or []) + (st.get("initContainerStatuses") or []))


def past_backoff_limit_on_failure(job: Obj, pods: list[Obj]) -> bool:
    """restartPolicy OnFailure: container restarts of the active pods count against backoffLimit."""
    spec = job.get("spec") or {}
    if ((spec.get("template") or {}).get("spec") or {}).get("restartPolicy") != "OnFailure":
        return False
    total = sum(restarts(p) for p in pods if phase(p) in ("Running", "Pending"))
    limit = spec.get("backoffLimit", 6)
    return total > 0 if limit == 0 else total >= limit


def intervals(indexes: set[int]) -> str:
    """`1,3-5,7,8`: upstream's completedIndexes / failedIndexes format (two neighbours are no range)."""
    out: list[list[int]] = []
    for i in sorted(indexes):
        if out and out[-1][1] == i - 1:
            out[-1][1] = i
        else:
            out.append([i, i])
    return ",".join(f"{a}" if a == b else f"{a},{b}" if b == a + 1 else f"{a}-{b}" for a, b in out)


def parse_intervals(s: str | None, limit: int) -> set[int]:
    """The indexes below `limit` an interval list names; malformed parts are skipped (as upstream)."""
    out: set[int] = set()
    for part in (s or "").split(","):
        if not part:
            continue
        a, _, b = part.partition("-")
        try:
            lo, hi = int(a), int(b or a)
        except ValueError:
            continue
        out.update(range(max(lo, 0), min(hi, limit - 1) + 1))
    return out


class BackoffRecord:
    """Failures since the last success and when the last one happened (upstream backoffRecord)."""

    def __init__(self, failures: int = 0, last_failure: dt.datetime | None = None) -> None:
        self.failures = failures
        self.last_failure = last_failure

    def remaining(self, now: dt.datetime) -> float:
        if self.failures == 0 or self.last_failure is None:
            return 0.0
        delay = DEFAULT_BACKOFF
        for _ in range(1, self.failures):
            delay *= 2
            if delay >= MAX_BACKOFF:
                delay = MAX_BACKOFF
                break
        elapsed = (now - self.last_failure).total_seconds()
        return 0.0 if delay < elapsed else delay - elapsed


def new_backoff_record(old: BackoffRecord, succeeded: list[Obj], failed: list[Obj], now: dt.datetime) -> BackoffRecord:
    failed = sorted(failed, key=lambda p: finish_time(p, now))
    succeeded = sorted(succeeded, key=lambda p: finish_time(p, now))
    if not succeeded:
        if not failed:
            return old
        return BackoffRecord(old.failures + len(failed), finish_time(failed[-1], now))
    rec = BackoffRecord()
    last_success = finish_time(succeeded[-1], now)
    for p in reversed(failed):
        t = finish_time(p, now)
        if t <= last_success:
            break
        if rec.last_failure is None:
            rec.last_failure = t
        rec.failures += 1
    return rec


# -- pod failure policy, success policy, backoff limit per index ------------------------------

def _matching_exit_code(pod: Obj, req: Obj) -> Obj | None:
    """The first terminated (non-zero) container status, regular containers first, that `req` matches."""
    st = pod.get("status") or {}
    values = req.get("values") or []
    for cs in (st.get("containerStatuses") or []) + (st.get("initContainerStatuses") or []):
        code = ((cs.get("state") or {}).get("terminated") or {}).get("exitCode")
        if code is None or code == 0:
            continue  # still running, or succeeded: nothing to match
        if req.get("containerName") not in (None, cs.get("name")):
            continue
        op = req.get("operator")
        if (op == "In" and code in values) or (op == "NotIn" and code not in values):
            return cs
    return None


def _matching_condition(pod: Obj, patterns: list[Obj]) -> Obj | None:
    for cond in (pod.get("status") or {}).get("conditions") or []:
        for pattern in patterns:
            if cond.get("type") == pattern.get("type") and cond.get("status") == pattern.get("status", "True"):
                return cond
    return None


def match_pod_failure_policy(policy: Obj | None, pod: Obj) -> tuple[str | None, bool, str | None]:
    """A failed pod against spec.podFailurePolicy (upstream matchPodFailurePolicy): the Job's failure
    message (FailJob), whether the failure counts toward the backoff limits (not for Ignore), the action."""
    if not policy:
        return None, True, None
    ns, name = pod["metadata"].get("namespace", ""), pod["metadata"].get("name", "")
    for i, rule in enumerate(policy.get("rules") or []):
        action = rule.get("action")
        if rule.get("onExitCodes") is not None:
            cs = _matching_exit_code(pod, rule["onExitCodes"])
            if cs is None:
                continue
            code = cs["state"]["terminated"]["exitCode"]
            message = (f"Container {cs.get('name')} for pod {ns}/{name} failed with exit code {code} "
                       f"matching {action} rule at index {i}")
        elif rule.get("onPodConditions") is not None:
            cond = _matching_condition(pod, rule["onPodConditions"])
            if cond is None:
                continue
            message = f"Pod {ns}/{name} has condition {cond.get('type')} matching {action} rule at index {i}"
        else:
            continue
        if action == "Ignore":
            return None, False, action
        if action in ("FailIndex", "Count"):
            return None, True, action
        if action == "FailJob":
            return message, True, action
    return None, True, None


def fail_job_message(job: Obj, pods: list[Obj]) -> str | None:
    """The message of the first failed pod matching a FailJob rule."""
    policy = (job.get("spec") or {}).get("podFailurePolicy")
    if not policy:
        return None
    for p in pods:
        if is_pod_failed(p, job):
            message = match_pod_failure_policy(policy, p)[0]
            if message is not None:
                return message
    return None


def counts_as_failure(job: Obj, pod: Obj) -> bool:
    """A failed pod counts toward backoffLimit(PerIndex) unless an Ignore rule matches it."""
    return match_pod_failure_policy((job.get("spec") or {}).get("podFailurePolicy"), pod)[1]


def match_success_policy(job: Obj, succeeded: set[int]) -> str | None:
    """The SuccessCriteriaMet message once a rule of spec.successPolicy holds (upstream matchSuccessPolicy)."""
    spec = job.get("spec") or {}
    policy = spec.get("successPolicy")
    if not policy or not succeeded:
        return None
    completions = spec.get("completions") or 0
    for i, rule in enumerate(policy.get("rules") or []):
        count = rule.get("succeededCount")
        if rule.get("succeededIndexes") is not None:
            required = parse_intervals(rule["succeededIndexes"], completions)
            if not required:
                continue
            hit = len(required & succeeded)
            if hit == len(required) or (count is not None and hit >= count):
                return f"Matched rules at index {i}"
        elif count is not None and len(succeeded) >= count:
            return f"Matched rules at index {i}"
    return None


def has_backoff_limit_per_index(job: Obj) -> bool:
    return (job.get("spec") or {}).get("backoffLimitPerIndex") is not None


def _count_annotation(pod: Obj, key: str) -> int:
    """A failure-count annotation; 0 when missing or not an int32 ≥ 0 (it may have been tampered with)."""
    try:
        v = int((pod["metadata"].get("annotations") or {}).get(key, "0"))
    except ValueError:
        return 0
    return v if 0 <= v <= 2**31 - 1 else 0


def index_failure_count(pod: Obj) -> int:
    return _count_annotation(pod, INDEX_FAILURE_COUNT)


def index_absolute_failure_count(pod: Obj) -> int:
    """Failures of the index before this pod, ignored ones included (they still back off)."""
    return _count_annotation(pod, INDEX_FAILURE_COUNT) + _count_annotation(pod, INDEX_IGNORED_FAILURE_COUNT)


def is_index_failed(job: Obj, pod: Obj) -> bool:
    """Does this pod's failure fail its index: a FailIndex rule, or backoffLimitPerIndex used up."""
    if not is_pod_failed(pod, job):
        return False
    _, counted, action = match_pod_failure_policy((job.get("spec") or {}).get("podFailurePolicy"), pod)
    if action == "FailIndex":
        return True
    return counted and index_failure_count(pod) >= job["spec"]["backoffLimitPerIndex"]


def failed_indexes(job: Obj, pods: list[Obj]) -> set[int]:
    """status.failedIndexes plus the indexes failed by pods not counted yet (still with the finalizer)."""
    completions = (job.get("spec") or {}).get("completions") or 0
    out = parse_intervals((job.get("status") or {}).get("failedIndexes"), completions)
    for p in pods:
        ix = completion_index(p)
        if 0 <= ix < completions and has_finalizer(p) and is_index_failed(job, p):
            out.add(ix)
    return out


def new_index_failure_counts(job: Obj, replaced: Obj | None) -> tuple[int, int]:
    """(failures, ignored failures) of an index for the pod replacing `replaced`."""
    if replaced is None:
        return 0, 0
    failures, ignored = index_failure_count(replaced), _count_annotation(replaced, INDEX_IGNORED_FAILURE_COUNT)
    if counts_as_failure(job, replaced):
        return failures + 1, ignored
    return failures, ignored + 1


def index_backoff_remaining(replaced: Obj | None, now: dt.datetime) -> float:
    """Seconds before an index may get a new pod: the exponential backoff over the index's own failures."""
    if replaced is None:
        return 0.0
    return BackoffRecord(index_absolute_failure_count(replaced) + 1, finish_time(replaced, now)).remaining(now)


def is_terminating_pod(pod: Obj) -> bool:
    """Being deleted and not finished yet (upstream FilterTerminatingPods)."""
    return bool(pod["metadata"].get("deletionTimestamp")) and phase(pod) not in ("Succeeded", "Failed")


def _true_condition(status: Obj, type_: str) -> Obj | None:
    cond = get_condition(status, type_)
    return cond if cond is not None and cond.get("status") == "True" else None


#: interim Job condition → the terminal one it turns into once the pods are accounted for
_FINAL_OF_INTERIM = {"FailureTarget": "Failed", "SuccessCriteriaMet": "Complete"}


@dataclasses.dataclass
class SyncContext:
    """What one sync of a Job works out about it and its pods (upstream syncJobCtx)."""

    job: Obj
    key: str
    pods: list[Obj]
    active_pods: list[Obj]
    ready: int
    backoff: BackoffRecord
    #: pods being deleted and not finished yet, those this sync deleted included (status.terminating)
    terminating: int = 0
    succeeded: int = 0
    #: Indexed jobs: the succeeded indexes (before this sync, and now); with backoffLimitPerIndex
    #: the failed ones (else None)
    prev_completed: set[int] = dataclasses.field(default_factory=set)
    completed: set[int] = dataclasses.field(default_factory=set)
    failed_indexes: set[int] | None = None
    #: backoffLimitPerIndex: per index, the failed pod whose finalizer stays until its replacement exists
    delayed: dict[int, Obj] = dataclasses.field(default_factory=dict)


def pods_with_delayed_deletion(job: Obj, ctx: SyncContext, expected_rm: set[str], now: dt.datetime) -> dict[int, Obj]:
    """Per pending index, its latest failed pod: it keeps its finalizer (so it is not deleted) until the
    replacement is created with the index's failure count taken from it (upstream
    getPodsWithDelayedDeletionPerIndex)."""
    completions = (job.get("spec") or {}).get("completions") or 0
    settled = ctx.completed | (ctx.failed_indexes or set()) | {completion_index(p) for p in ctx.active_pods}
    out: dict[int, Obj] = {}
    for p in ctx.pods:
        ix = completion_index(p)
        if (not has_finalizer(p) or p["metadata"]["uid"] in expected_rm or not is_pod_failed(p, job)
                or not 0 <= ix < completions or ix in settled):
            continue
        last = out.get(ix)
        if last is None or (index_absolute_failure_count(last) <= index_absolute_failure_count(p)
                            and finish_time(p, now) >= finish_time(last, now)):
            out[ix] = p
    return out


# -- the controller ------------------------------------------------------------------------

@register
class JobController(Controller):
    name = "job-controller"
    aliases = ("job",)
    workers_option = "concurrent_job_syncs"
    service_account = "job-controller"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.expectations = ControllerExpectations(self.clock.monotonic)
        self.finalizer_expectations: dict[str, set[str]] = {}  # job key → pod uids whose finalizer we removed
        self.backoff: dict[str, BackoffRecord] = {}
        self.jobs = self.informer("batch/v1", "jobs")
        self.jobs.add_handler(self.enqueue, self._job_updated, self._job_deleted)
        self.pods = self.informer("v1", "pods")
        add_index_once(self.pods, CONTROLLER_INDEX, index_by_controller)
        self.pods.add_handler(self._pod_added, self._pod_updated, self._pod_deleted)
        self.jobs_api = self.client.resource("batch/v1", "jobs")
        self.pods_api = self.client.resource("v1", "pods")
        self.pod_control = PodControl(self.client, self.recorder)
        #: pods whose tracking finalizer must go because their Job is gone or finished
        self.orphans: WorkQueue[str] = WorkQueue(name=f"{self.name}-orphan-pods")

    # -- events ---------------------------------------------------------------------------

    def _job_updated(self, old: Obj, cur: Obj) -> None:
        if old["metadata"].get("uid") != cur["metadata"].get("uid"):
            self._job_deleted(old)
        self.enqueue(cur)
        # a new activeDeadlineSeconds: check it when it would pass
        ads = (cur.get("spec") or {}).get("activeDeadlineSeconds")
        start = (cur.get("status") or {}).get("startTime")
        if ads is not None and start and ads != (old.get("spec") or {}).get("activeDeadlineSeconds"):
            left = ads - (self.clock.now() - parse_time(start)).total_seconds()
            self.enqueue_after(cur, max(0.0, left))

    def _job_deleted(self, item: Any) -> None:
        job = deleted_object(item)
        key = key_of(job)
        self.expectations.delete(key)
        self.finalizer_expectations.pop(key, None)
        self.backoff.pop(key, None)
        self.queue.add(key)
        # its pods keep their tracking finalizer otherwise: nothing would ever remove it
        for pod in self.pods.store.by_index(CONTROLLER_INDEX, job["metadata"].get("uid", "")):
            if has_finalizer(pod):
                self.orphans.add(key_of(pod))

    def _owner(self, pod: Obj) -> Obj | None:
        return resolve_controller_ref(self.jobs.store, pod, "Job")

    def _jobs_selecting(self, pod: Obj) -> list[Obj]:
        return selecting(self.jobs.store, pod)

    def _check_orphan(self, pod: Obj) -> None:
        if not has_finalizer(pod):
            return
        job = self._owner(pod)
        if job is None or is_finished(job):
            self.orphans.add(key_of(pod))

    def _pod_added(self, pod: Obj) -> None:
        if pod["metadata"].get("deletionTimestamp"):
            self._pod_deleted(pod, final=False)
            return
        job = self._owner(pod)
        if job is not None:
            self.expectations.creation_observed(key_of(job))
            self.enqueue(job)
        elif controller_of(pod) is None:
            for job in self._jobs_selecting(pod):
                self.enqueue(job)
        self._check_orphan(pod)

    def _pod_updated(self, old: Obj, cur: Obj) -> None:
        if old["metadata"].get("resourceVersion") == cur["metadata"].get("resourceVersion"):
            return
        if cur["metadata"].get("deletionTimestamp") and not old["metadata"].get("deletionTimestamp"):
            self._pod_deleted(cur, final=False)
        old_ref, cur_ref = controller_of(old), controller_of(cur)
        if old_ref is not None and (old_ref or {}).get("uid") != (cur_ref or {}).get("uid"):
            job = self._owner(old)
            if job is not None:
                self.enqueue(job)
        job = self._owner(cur)
        if job is not None:
            if has_finalizer(old) and not has_finalizer(cur):
                self.finalizer_expectations.get(key_of(job), set()).discard(cur["metadata"]["uid"])
            self.enqueue(job)
        elif cur_ref is None and labels_of(old) != labels_of(cur):
            for j in self._jobs_selecting(cur):
                self.enqueue(j)
        self._check_orphan(cur)

    def _pod_deleted(self, item: Any, final: bool = True) -> None:
        """A pod is gone (final) or being deleted (its deletionTimestamp was set)."""
        pod = deleted_object(item)
        job = self._owner(pod)
        if job is None or is_finished(job):
            if has_finalizer(pod):
                self.orphans.add(key_of(pod))
            return
        key = key_of(job)
        self.expectations.deletion_observed(key)
        if final or not has_finalizer(pod):
            self.finalizer_expectations.get(key, set()).discard(pod["metadata"].get("uid", ""))
        self.enqueue(job)

    # -- orphan pods ---------------------------------------------------------------------

    def background(self, stop: asyncio.Event):
        async def orphan_worker() -> None:
            await run_workers(self.orphans, self.sync_orphan_pod, 1, f"{self.name}-orphans")

        async def shutdown_orphans() -> None:
            await stop.wait()
            self.orphans.shutdown()

        return [orphan_worker(), shutdown_orphans()]

    async def sync_orphan_pod(self, key: str) -> None:
        """Remove the tracking finalizer of a pod whose Job is gone or finished."""
        pod = self.pods.store.get(key)
        if pod is None or not has_finalizer(pod):
            return
        ref = controller_of(pod)
        if ref is not None:
            if ref.get("kind") != "Job" or ref.get("apiVersion") != "batch/v1":
                return
            job = self._owner(pod)
            if job is not None and not is_finished(job):
                return  # adopted meanwhile
        await self._remove_finalizer(pod)

    async def _remove_finalizer(self, pod: Obj) -> None:
        patch = {"metadata": {"$deleteFromPrimitiveList/finalizers": [TRACKING_FINALIZER]}}
        try:
            await self.pods_api.patch(pod["metadata"]["name"], patch, pod["metadata"].get("namespace"), "strategic")
        except Exception as e:
            if not is_not_found(e):
                raise

    # -- sync ------------------------------------------------------------------------------

    async def _fresh(self, job: Obj) -> Obj | None:
        try:
            return await self.jobs_api.get(job["metadata"]["name"], job["metadata"].get("namespace"))
        except Exception as e:
            if is_not_found(e):
                return None
            raise

    def _condition(self, type_: str, status: str, reason: str, message: str) -> Obj:
        now = format_time(self.clock.now())
        return {"type": type_, "status": status, "lastProbeTime": now, "lastTransitionTime": now,
                "reason": reason, "message": message}

    async def sync(self, key: str) -> None:
        cached = self.jobs.store.get(key)
        if cached is None:
            self.expectations.delete(key)
            self.finalizer_expectations.pop(key, None)
            return
        if is_finished(cached):
            return
        job = copy.deepcopy(cached)
        spec = job.get("spec") or {}
        status = job.setdefault("status", {})
        try:
            selector = selector_from_label_selector(spec.get("selector"))
        except (LabelSelectorError, ValueError) as e:
            self.log.error("%s: invalid selector: %s", key, e)
            return
        satisfied = self.expectations.satisfied(key)
        manager = ControllerRefManager(job, selector, self.pods_api, lambda: self._fresh(job))
        pods = await manager.claim(owned_or_orphans(self.pods.store, job))
        active_pods = [p for p in pods if is_pod_active(p)]
        uncounted = status.setdefault("uncountedTerminatedPods", {})
        unc_succeeded = set(uncounted.get("succeeded") or [])
        unc_failed = set(uncounted.get("failed") or [])
        expected_rm = self.finalizer_expectations.get(key, set())
        new_succeeded, new_failed = [], []
        for p in pods:
            if not has_finalizer(p) or p["metadata"]["uid"] in expected_rm:
                continue
            if phase(p) == "Succeeded" and p["metadata"]["uid"] not in unc_succeeded:
                new_succeeded.append(p)
            elif is_pod_failed(p, job) and p["metadata"]["uid"] not in unc_failed:
                new_failed.append(p)
        succeeded = (status.get("succeeded") or 0) + len(new_succeeded) + len(unc_succeeded)
        # failures an Ignore rule of the pod failure policy matches do not count
        failed = ((status.get("failed") or 0) + sum(counts_as_failure(job, p) for p in new_failed)
                  + len(unc_failed))
        now = self.clock.now()
        if not status.get("startTime") and not suspended(job):
            status["startTime"] = format_time(now)
        ctx = SyncContext(job, key, pods, active_pods, sum(1 for p in active_pods if is_pod_ready(p)),
                          new_backoff_record(self.backoff.get(key, BackoffRecord()), new_succeeded, new_failed, now),
                          sum(1 for p in pods if is_terminating_pod(p)))

        # once the success criteria were met, the Job only finishes: no failure is looked for any more
        finished = _true_condition(status, "SuccessCriteriaMet")
        if finished is None:
            target = _true_condition(status, "FailureTarget")
            if target is not None:
                finished = self._condition("Failed", "True", target.get("reason", ""), target.get("message", ""))
            elif (message := fail_job_message(job, pods)) is not None:
                finished = self._failure_target("PodFailurePolicy", message)
        if finished is None:
            if failed > spec.get("backoffLimit", 6) or past_backoff_limit_on_failure(job, pods):
                finished = self._failure_target("BackoffLimitExceeded", "Job has reached the specified backoff limit")
            elif self._past_active_deadline(job):
                finished = self._failure_target("DeadlineExceeded", "Job was active longer than specified deadline")
            elif spec.get("activeDeadlineSeconds") is not None and not suspended(job) and status.get("startTime"):
                left = spec["activeDeadlineSeconds"] - (now - parse_time(status["startTime"])).total_seconds()
                self.enqueue_after(key, max(0.0, left))

        if is_indexed(job):
            completions = spec.get("completions") or 0
            ctx.prev_completed = parse_intervals(status.get("completedIndexes"), completions)
            ctx.completed = set(ctx.prev_completed)
            for p in pods:
                ix = completion_index(p)
                # a pod without the finalizer is in completedIndexes already, or its index was
                # dropped by a scale-down and must run again
                if phase(p) == "Succeeded" and 0 <= ix < completions and has_finalizer(p):
                    ctx.completed.add(ix)
            succeeded = len(ctx.completed)
            if has_backoff_limit_per_index(job):
                ctx.failed_indexes = failed_indexes(job, pods)
                if finished is None:
                    max_failed = spec.get("maxFailedIndexes")
                    if max_failed is not None and len(ctx.failed_indexes) > max_failed:
                        finished = self._failure_target("MaxFailedIndexesExceeded",
                                                        "Job has exceeded the specified maximal number of failed indexes")
                    elif ctx.failed_indexes and len(ctx.failed_indexes) + len(ctx.completed) >= completions:
                        finished = self._failure_target("FailedIndexes", "Job has failed indexes")
                ctx.delayed = pods_with_delayed_deletion(job, ctx, expected_rm, now)
            if finished is None and (message := match_success_policy(job, ctx.completed)) is not None:
                finished = self._condition("SuccessCriteriaMet", "True", "SuccessPolicy", message)
        ctx.succeeded = succeeded

        active = len(active_pods)
        manage_error: BaseException | None = None
        suspend_changed = False
        if finished is not None:
            # their finalizers stay until they are counted (as failed, unless the Job succeeded)
            deleted_ready, deleted, manage_error = await self._delete_pods(job, active_pods, release=False)
            if deleted != active or not satisfied:
                finished = None  # pods or finalizers may remain: finish on a later sync
            active -= deleted
            ctx.ready -= deleted_ready
            ctx.terminating += deleted
        else:
            manage_called = False
            if satisfied and not job["metadata"].get("deletionTimestamp"):
                try:
                    active, ctx.ready = await self._manage(ctx)
                except Exception as e:
                    manage_error = e
                    active = len(active_pods)
                manage_called = True
            completions = spec.get("completions")
            if completions is None:
                complete = succeeded > 0 and active == 0
            else:
                complete = succeeded >= completions and active == 0
            if complete:
                finished = self._condition("SuccessCriteriaMet", "True", "CompletionsReached",
                                           "Reached expected number of succeeded pods")
            elif manage_called:
                suspend_changed = self._ensure_suspend_condition(job)

        needs_flush = (suspend_changed or active != (status.get("active") or 0) or ctx.ready != status.get("ready")
                       or ctx.terminating != status.get("terminating"))
        status["active"] = active
        status["ready"] = ctx.ready
        status["terminating"] = ctx.terminating
        if is_indexed(job):
            ci = intervals(ctx.completed)
            # the count goes with the indexes: a scale-down drops succeeded indexes
            if ci != (status.get("completedIndexes") or "") or len(ctx.completed) != (status.get("succeeded") or 0):
                needs_flush = True
            status["completedIndexes"] = ci
            status["succeeded"] = len(ctx.completed)
        if ctx.failed_indexes is not None:
            fi = intervals(ctx.failed_indexes)
            if fi != status.get("failedIndexes"):
                needs_flush = True
            status["failedIndexes"] = fi
        await self._track_and_remove_finalizers(ctx, finished, needs_flush)
        if manage_error is not None:
            raise manage_error

    def _record_interim_condition(self, status: Obj, finished: Obj | None) -> tuple[Obj | None, bool]:
        """An interim condition (FailureTarget, SuccessCriteriaMet) goes into the status before the
        finalizers of the pods do; the Job then finishes with the final condition of the same reason
        and message. Returns that final condition and whether the status gained the interim one."""
        final = _FINAL_OF_INTERIM.get((finished or {}).get("type", ""))
        if finished is None or final is None:
            return finished, False
        added = _true_condition(status, finished["type"]) is None
        if added:
            status["conditions"] = [*(status.get("conditions") or []), finished]
        return self._condition(final, "True", finished.get("reason", ""), finished.get("message", "")), added

    def _failure_target(self, reason: str, message: str) -> Obj:
        """A failure is first recorded as FailureTarget; Failed (same reason and message) follows once
        no pod of the Job is terminating (upstream delayTerminalCondition, on since 1.31)."""
        return self._condition("FailureTarget", "True", reason, message)

    def _past_active_deadline(self, job: Obj) -> bool:
        spec, status = job.get("spec") or {}, job.get("status") or {}
        ads = spec.get("activeDeadlineSeconds")
        if ads is None or not status.get("startTime") or suspended(job):
            return False
        return (self.clock.now() - parse_time(status["startTime"])).total_seconds() >= ads

    def _ensure_suspend_condition(self, job: Obj) -> bool:
        status = job["status"]
        cond = get_condition(status, "Suspended")
        if suspended(job):
            if cond is not None and cond.get("status") == "True":
                return False
            new = self._condition("Suspended", "True", "JobSuspended", "Job suspended")
            self.recorder.event(job, NORMAL, "Suspended", "Job suspended")
        else:
            if cond is None or cond.get("status") == "False":
                return False
            new = self._condition("Suspended", "False", "JobResumed", "Job resumed")
            self.recorder.event(job, NORMAL, "Resumed", "Job resumed")
            # activeDeadlineSeconds counts time while continuously active
            status["startTime"] = format_time(self.clock.now())
        status["conditions"] = [c for c in status.get("conditions") or [] if c.get("type") != "Suspended"] + [new]
        return True

    async def _delete_pods(self, job: Obj, pods: list[Obj], release: bool = True) -> tuple[int, int, BaseException | None]:
        """Delete pods, with `release` their tracking finalizer first (upstream deleteJobPods; without it
        deleteActivePods); returns (ready deleted, deleted, first error)."""
        ns = job["metadata"].get("namespace") or ""
        errors: list[BaseException] = []
        deleted_ready = deleted = 0

        async def delete(p: Obj) -> bool:
            try:
                if release and has_finalizer(p):
                    await self._remove_finalizer(p)
                await self.pod_control.delete_pod(ns, p["metadata"]["name"], job)
                return True
            except Exception as e:
                if is_not_found(e):
                    return True
                errors.append(e)
                return False

        results = await asyncio.gather(*(delete(p) for p in pods))
        for p, ok in zip(pods, results, strict=True):
            if ok:
                deleted += 1
                deleted_ready += is_pod_ready(p)
        return deleted_ready, deleted, (errors[0] if errors else None)

    async def _manage(self, ctx: SyncContext) -> tuple[int, int]:
        job, key, active_pods, succeeded, completed, ready = (ctx.job, ctx.key, ctx.active_pods, ctx.succeeded,
                                                              ctx.completed, ctx.ready)
        spec = job.get("spec") or {}
        active = len(active_pods)
        parallelism = spec.get("parallelism", 1)
        if suspended(job):
            self.expectations.set(key, 0, active)
            deleted_ready, deleted, err = await self._delete_pods(job, active_pods)
            ctx.terminating += deleted
            if err is not None:
                raise err
            return active - deleted, ready - deleted_ready
        completions = spec.get("completions")
        if completions is None:
            want = active if succeeded > 0 else parallelism
        else:
            want = max(0, min(completions - succeeded, parallelism))
        to_remove = self._pods_for_removal(job, active_pods, max(0, active - want), completed)
        to_remove = to_remove[:MAX_POD_CREATE_DELETE_PER_SYNC]
        if to_remove:
            self.expectations.set(key, 0, len(to_remove))
            deleted_ready, deleted, err = await self._delete_pods(job, to_remove)
            ctx.terminating += deleted
            for _ in range(len(to_remove) - deleted):
                self.expectations.deletion_observed(key)
            if err is not None:
                raise err
            return active - deleted, ready - deleted_ready
        # podReplacementPolicy Failed: a pod being deleted is replaced only once it has failed
        terminating = [p for p in ctx.pods if is_terminating_pod(p)] if only_replace_failed(job) else []
        diff = want - len(terminating) - active
        if diff <= 0:
            return active, ready
        now = self.clock.now()
        per_index = has_backoff_limit_per_index(job)
        left = 0.0 if per_index else ctx.backoff.remaining(now)  # per index, each index backs off on its own
        if left > 0:
            self.enqueue_after(key, left)
            return active, ready
        diff = min(diff, MAX_POD_CREATE_DELETE_PER_SYNC)
        indexes: list[int] = []
        if is_indexed(job):
            busy = {completion_index(p) for p in active_pods + terminating} | completed | (ctx.failed_indexes or set())
            indexes = [i for i in range(completions or 0) if i not in busy][:diff]
            if per_index:
                waits = {i: index_backoff_remaining(ctx.delayed.get(i), now) for i in indexes}
                indexes = [i for i in indexes if waits[i] == 0]
                if not indexes and waits:
                    self.enqueue_after(key, min(waits.values()))
                    return active, ready
            diff = len(indexes)
            if diff == 0:
                return active, ready
        self.expectations.expect_creations(key, diff)
        template = copy.deepcopy(spec.get("template") or {})
        tmeta = template.setdefault("metadata", {})
        if TRACKING_FINALIZER not in (tmeta.get("finalizers") or []):
            tmeta["finalizers"] = [*(tmeta.get("finalizers") or []), TRACKING_FINALIZER]
        ns = job["metadata"].get("namespace") or ""
        ref = controller_ref(job)
        errors: list[BaseException] = []

        async def create(ix: int | None) -> None:
            tpl = template
            if ix is not None:
                tpl = copy.deepcopy(template)
                tpl["metadata"].setdefault("annotations", {})[COMPLETION_INDEX] = str(ix)
                tpl["metadata"].setdefault("labels", {})[COMPLETION_INDEX] = str(ix)
                tpl.setdefault("spec", {})["hostname"] = f"{job['metadata']['name']}-{ix}"
                if per_index:
                    # the index's failure count travels from the failed pod to its replacement
                    failures, ignored = new_index_failure_counts(job, ctx.delayed.get(ix))
                    tpl["metadata"]["annotations"][INDEX_FAILURE_COUNT] = str(failures)
                    if ignored:
                        tpl["metadata"]["annotations"][INDEX_IGNORED_FAILURE_COUNT] = str(ignored)
                for c in tpl["spec"].get("containers") or []:
                    env = c.setdefault("env", [])
                    if not any(e.get("name") == "JOB_COMPLETION_INDEX" for e in env):
                        env.append({"name": "JOB_COMPLETION_INDEX", "valueFrom": {"fieldRef": {
                            "fieldPath": f"metadata.annotations['{COMPLETION_INDEX}']"}}})
            pod = pod_from_template(tpl, job, ref)
            if ix is not None:
                pod["metadata"]["generateName"] = f"{job['metadata']['name']}-{ix}-"
            try:
                await self.pod_control.create_pod(pod, ns, job)
            except Exception as e:
                details = getattr(e, "details", None) or {}
                if any(c.get("reason") == "NamespaceTerminating" for c in details.get("causes") or []):
                    return
                self.expectations.creation_observed(key)
                errors.append(e)

        created = 0
        batch = min(diff, 1)
        pos = 0
        while pos < diff:
            before = len(errors)
            await asyncio.gather(*(create(indexes[i] if indexes else None) for i in range(pos, pos + batch)))
            created += batch - (len(errors) - before)
            skipped = diff - (pos + batch)
            if len(errors) > before and skipped > 0:
                self.expectations.lower(key, add=skipped)
                break
            pos += batch
            batch = min(2 * batch, diff - pos)
        if errors:
            raise errors[0]
        return active + created, ready

    @staticmethod
    def _pods_for_removal(job: Obj, pods: list[Obj], n: int, completed: set[int]) -> list[Obj]:
        """At least `n` active pods to delete, not-ready before ready, newest first. An Indexed job also
        loses every pod without a valid index, past completions (it was scaled down) or duplicating
        another one's, and prefers to stop those of indexes that succeeded meanwhile (upstream
        activePodsForRemoval)."""
        def created(p: Obj) -> float:
            ts = p["metadata"].get("creationTimestamp")
            return parse_time(ts).timestamp() if ts else 0.0

        order = sorted(pods, key=lambda p: (is_pod_ready(p), -created(p)))
        if not is_indexed(job):
            return order[:max(n, 0)]
        completions = (job.get("spec") or {}).get("completions") or 0
        kept: set[int] = set()
        invalid, valid = [], []
        for p in reversed(order):  # the pod most worth keeping holds on to its index
            ix = completion_index(p)
            if ix < 0 or ix >= completions or ix in kept:
                invalid.append(p)
            else:
                kept.add(ix)
                valid.append(p)
        valid.reverse()
        valid.sort(key=lambda p: completion_index(p) not in completed)  # stable: keeps the order within
        return invalid + valid[:max(0, n - len(invalid))]

    async def _track_and_remove_finalizers(self, ctx: SyncContext, finished: Obj | None, needs_flush: bool) -> None:
        job, key, pods = ctx.job, ctx.key, ctx.pods
        status = job["status"]
        uncounted = status.setdefault("uncountedTerminatedPods", {})
        unc_s = list(uncounted.get("succeeded") or [])
        unc_f = list(uncounted.get("failed") or [])
        expected_rm = self.finalizer_expectations.setdefault(key, set())
        to_remove: list[Obj] = []
        with_finalizer: set[str] = set()
        reached_max = False
        new_indexes = 0  # Indexed: succeeded pods are counted by completedIndexes, not by uid
        completions = (job.get("spec") or {}).get("completions")
        # a Job being deleted lets go of every pod (upstream canRemoveFinalizer)
        deleting = bool(job["metadata"].get("deletionTimestamp"))
        for p in pods:
            uid = p["metadata"]["uid"]
            if not has_finalizer(p) or uid in expected_rm:
                continue
            with_finalizer.add(uid)
            failed = is_pod_failed(p, job)
            if not (phase(p) == "Succeeded" or failed or finished is not None or deleting):
                continue
            if finished is None and failed and ctx.delayed.get(completion_index(p)) is p and not deleting:
                continue  # kept until its replacement carries the index's failure count
            to_remove.append(p)
            ix = completion_index(p)
            if phase(p) == "Succeeded" and uid not in unc_f:
                if is_indexed(job):
                    if 0 <= ix < (completions or 0) and ix not in ctx.prev_completed:
                        new_indexes += 1
                elif uid not in unc_s:
                    unc_s.append(uid)
                    needs_flush = True
            elif failed or (finished is not None and finished["type"] != "SuccessCriteriaMet"):
                # a failing Job's unfinished pods count as failed; those a succeeded Job stops do not
                if (uid not in unc_f and (not is_indexed(job) or 0 <= ix < (completions or 0))
                        and counts_as_failure(job, p)):
                    unc_f.append(uid)
                    needs_flush = True
            if new_indexes + len(unc_s) + len(unc_f) >= MAX_UNCOUNTED_PODS:
                reached_max = True
                break
        uncounted["succeeded"], uncounted["failed"] = unc_s, unc_f
        finished, interim = self._record_interim_condition(status, finished)
        needs_flush = needs_flush or interim
        if needs_flush:
            await self._update_status(job)
            self.backoff[key] = ctx.backoff
            needs_flush = False
        rm_error: BaseException | None = None
        if to_remove:
            expected_rm.update(p["metadata"]["uid"] for p in to_remove)
            results = await asyncio.gather(*(self._remove_finalizer(p) for p in to_remove), return_exceptions=True)
            for p, r in zip(to_remove, results, strict=True):
                if isinstance(r, BaseException):
                    expected_rm.discard(p["metadata"]["uid"])
                    rm_error = rm_error or r
                else:
                    with_finalizer.discard(p["metadata"]["uid"])
        # uids whose finalizer is gone move into the counters
        moved_s = [u for u in unc_s if u not in with_finalizer]
        moved_f = [u for u in unc_f if u not in with_finalizer]
        if moved_s or moved_f:
            if not is_indexed(job):
                status["succeeded"] = (status.get("succeeded") or 0) + len(moved_s)
            status["failed"] = (status.get("failed") or 0) + len(moved_f)
            uncounted["succeeded"] = [u for u in unc_s if u in with_finalizer]
            uncounted["failed"] = [u for u in unc_f if u in with_finalizer]
            needs_flush = True
        if is_indexed(job):
            status["succeeded"] = len(parse_intervals(status.get("completedIndexes"), completions or 0))
        if rm_error is not None:
            if needs_flush:
                await self._update_status(job)
            raise rm_error
        job_finished = False
        # Failed / Complete wait until every pod is counted and none is still terminating
        if (finished is not None and not reached_max and not uncounted["succeeded"] and not uncounted["failed"]
                and ctx.terminating == 0):
            conds = [c for c in status.get("conditions") or [] if c.get("type") != finished["type"]]
            status["conditions"] = [*conds, finished]
            if finished["type"] == "Complete":
                status["completionTime"] = finished["lastTransitionTime"]
            job_finished = True
            needs_flush = True
        if needs_flush:
            await self._update_status(job)
            if job_finished and finished is not None:
                self._record_finished(job, finished)

    def _record_finished(self, job: Obj, finished: Obj) -> None:
        """The events of a Job that just finished (upstream recordJobFinished)."""
        if finished["type"] != "Complete":
            self.recorder.event(job, WARNING, finished["reason"], finished["message"])
            return
        completions = (job.get("spec") or {}).get("completions")
        if completions is not None and (job["status"].get("succeeded") or 0) > completions:
            self.recorder.event(job, WARNING, "TooManySucceededPods",
                                "Too many succeeded pods running after completion count reached")
        self.recorder.event(job, NORMAL, "Completed", "Job completed")

    async def _update_status(self, job: Obj) -> None:
        status = {k: v for k, v in job["status"].items()
                  if not (k in ("active", "succeeded", "failed") and not v)}
        updated = await self.jobs_api.update_status({**job, "status": status})
        job["metadata"]["resourceVersion"] = updated["metadata"].get("resourceVersion")

