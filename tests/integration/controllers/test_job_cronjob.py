"""Job and CronJob controllers end to end (pods finished by the test, as a kubelet would report them)."""

from __future__ import annotations

import time

import httpx

from tests.conftest import ControlPlane, wait_for
from tests.integration.controllers.conftest import ControllerManager, Watcher, get, make_ready, set_phase


def job_body(name: str, completions: int = 1, parallelism: int = 1, backoff_limit: int = 6, **spec) -> dict:
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
            "spec": {"completions": completions, "parallelism": parallelism, "backoffLimit": backoff_limit,
                     "template": {"spec": {"restartPolicy": "Never",
                                           "containers": [{"name": "c", "image": "busybox"}]}}, **spec}}


def job_pods(admin: httpx.Client, ns: str, job: str, active: bool = False) -> list[dict]:
    items = get(admin, f"/api/v1/namespaces/{ns}/pods?labelSelector=batch.kubernetes.io/job-name={job}")["items"]
    if active:
        items = [p for p in items if p["status"].get("phase") in ("Pending", "Running")
                 and not p["metadata"].get("deletionTimestamp")]
    return items


def condition(obj: dict, type_: str) -> dict | None:
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == type_), None)


def test_job_completes(controller_manager: ControllerManager, plane: ControlPlane, admin: httpx.Client, ns: str):
    admin.post(f"/apis/batch/v1/namespaces/{ns}/jobs", json=job_body("ok", completions=3, parallelism=2)).raise_for_status()
    done: set[str] = set()

    def all_done() -> bool:
        for p in job_pods(admin, ns, "ok", active=True):
            make_ready(admin, ns, lambda q, name=p["metadata"]["name"]: q["metadata"]["name"] == name)
            set_phase(admin, ns, p["metadata"]["name"], "Succeeded")
            done.add(p["metadata"]["name"])
        return condition(get(admin, f"/apis/batch/v1/namespaces/{ns}/jobs/ok"), "Complete") is not None

    wait_for(all_done, 40, 0.3, "the job to complete")
    job = get(admin, f"/apis/batch/v1/namespaces/{ns}/jobs/ok")
    assert job["status"]["succeeded"] == 3 and len(done) == 3
    assert job["status"]["completionTime"] == condition(job, "Complete")["lastTransitionTime"]
    assert job["status"]["terminating"] == 0
    # upstream 1.31: SuccessCriteriaMet first, then Complete, both with the reason and message
    assert [c["type"] for c in job["status"]["conditions"]] == ["SuccessCriteriaMet", "Complete"]
    assert {(c["reason"], c["message"]) for c in job["status"]["conditions"]} == {
        ("CompletionsReached", "Reached expected number of succeeded pods")}
    # every finished pod lost its tracking finalizer
    assert all("batch.kubernetes.io/job-tracking" not in (p["metadata"].get("finalizers") or [])
               for p in job_pods(admin, ns, "ok"))
    row = plane.kubectl("-n", ns, "get", "job", "ok", "--no-headers").stdout.split()
    assert row[0] == "ok" and "3/3" in row
    controller_manager.assert_no_rbac_denials()


def test_job_fails_after_backoff_limit(controller_manager: ControllerManager, admin: httpx.Client, ns: str):
    admin.post(f"/apis/batch/v1/namespaces/{ns}/jobs", json=job_body("bad", backoff_limit=1)).raise_for_status()
    failed: list[float] = []

    def fail_active() -> bool:
        for p in job_pods(admin, ns, "bad", active=True):
            set_phase(admin, ns, p["metadata"]["name"], "Failed")
            failed.append(time.monotonic())
        return condition(get(admin, f"/apis/batch/v1/namespaces/{ns}/jobs/bad"), "Failed") is not None

    wait_for(fail_active, 60, 0.3, "the job to fail")
    job = get(admin, f"/apis/batch/v1/namespaces/{ns}/jobs/bad")
    cond = condition(job, "Failed")
    assert cond["reason"] == "BackoffLimitExceeded"
    assert job["status"]["failed"] == 2 and len(failed) == 2
    assert failed[1] - failed[0] >= 9  # the replacement waited for the 10 s backoff
    events = get(admin, f"/api/v1/namespaces/{ns}/events")["items"]
    assert any(e["reason"] == "BackoffLimitExceeded" and e["involvedObject"]["name"] == "bad" for e in events)


def set_finalizers(admin: httpx.Client, ns: str, pod: str, finalizers: list[str]) -> None:
    admin.patch(f"/api/v1/namespaces/{ns}/pods/{pod}", json={"metadata": {"finalizers": finalizers}},
                headers={"Content-Type": "application/merge-patch+json"}).raise_for_status()


def test_job_fails_once_its_pods_are_gone(controller_manager: ControllerManager, plane: ControlPlane,
                                          admin: httpx.Client, ns: str):
    """Upstream 1.31 delays the terminal condition: FailureTarget while a pod it stopped is still
    terminating (here held by another finalizer), Failed with the same reason once it is gone."""
    admin.post(f"/apis/batch/v1/namespaces/{ns}/jobs",
               json=job_body("doomed", completions=2, parallelism=2, backoff_limit=0)).raise_for_status()
    wait_for(lambda: len(job_pods(admin, ns, "doomed", active=True)) == 2, 30, 0.2, "two pods")
    bad, other = job_pods(admin, ns, "doomed", active=True)
    # bound to a node that exists: pod GC force-fails a terminating pod that is not on a node (every
    # 20 s, as upstream's), which would end its "terminating" at a moment the test does not choose
    node = f"{ns}-node"
    admin.post("/api/v1/nodes", json={"apiVersion": "v1", "kind": "Node", "metadata": {"name": node},
                                      "status": {"conditions": [{"type": "Ready", "status": "True"}]}}
               ).raise_for_status()
    try:
        admin.post(f"/api/v1/namespaces/{ns}/pods/{other['metadata']['name']}/binding",
                   json={"apiVersion": "v1", "kind": "Binding", "metadata": {"name": other["metadata"]["name"]},
                         "target": {"apiVersion": "v1", "kind": "Node", "name": node}}).raise_for_status()
        _fail_while_one_pod_is_held(plane, admin, ns, bad, other)
    finally:
        admin.delete(f"/api/v1/nodes/{node}")


def _fail_while_one_pod_is_held(plane: ControlPlane, admin: httpx.Client, ns: str, bad: dict, other: dict) -> None:
    set_finalizers(admin, ns, other["metadata"]["name"], ["batch.kubernetes.io/job-tracking", "example.com/hold"])
    set_phase(admin, ns, bad["metadata"]["name"], "Failed")
    job = wait_for(lambda: job_with_condition(admin, ns, "doomed", "FailureTarget"), 30, 0.2, "FailureTarget")
    job = wait_for(lambda: (j := get(admin, f"/apis/batch/v1/namespaces/{ns}/jobs/doomed"))["status"].get("failed") == 2
                   and j, 30, 0.2, "both pods counted")
    st = job["status"]
    assert condition(job, "Failed") is None and st["terminating"] == 1 and not st.get("active")
    assert (condition(job, "FailureTarget")["reason"], condition(job, "FailureTarget")["message"]) == (
        "BackoffLimitExceeded", "Job has reached the specified backoff limit")
    row = plane.kubectl("-n", ns, "get", "job", "doomed", "--no-headers").stdout.split()
    assert row[:2] == ["doomed", "FailureTarget"]
    set_finalizers(admin, ns, other["metadata"]["name"], [])
    # as its node's kubelet would once the containers stopped
    admin.delete(f"/api/v1/namespaces/{ns}/pods/{other['metadata']['name']}?gracePeriodSeconds=0").raise_for_status()
    job = wait_for(lambda: job_with_condition(admin, ns, "doomed", "Failed"), 30, 0.2, "the job to fail")
    st = job["status"]
    assert [c["type"] for c in st["conditions"]] == ["FailureTarget", "Failed"]
    assert {(c["reason"], c["message"]) for c in st["conditions"]} == {
        ("BackoffLimitExceeded", "Job has reached the specified backoff limit")}
    assert st["terminating"] == 0 and st["failed"] == 2 and "completionTime" not in st


def test_job_status_is_validated(admin: httpx.Client, ns: str):
    admin.post(f"/apis/batch/v1/namespaces/{ns}/jobs", json=job_body("checked")).raise_for_status()
    path = f"/apis/batch/v1/namespaces/{ns}/jobs/checked/status"
    job = get(admin, path)
    del job["metadata"]["resourceVersion"]  # unconditional: the controller may be writing the status too
    cond = {"status": "True", "reason": "R", "message": "m", "lastTransitionTime": "2024-01-01T00:00:00Z"}
    bad = {**job, "status": {"terminating": -1, "uncountedTerminatedPods": {"succeeded": ["u"], "failed": ["u"]},
                             "conditions": [{**cond, "type": "SuccessCriteriaMet"}, {**cond, "type": "Failed"}]}}
    assert causes_of(admin.put(path, json=bad)) == {
        ("status.terminating", "FieldValueInvalid", "Invalid value: -1: must be greater than or equal to 0"),
        ("status.uncountedTerminatedPods.failed[0]", "FieldValueDuplicate", 'Duplicate value: "u"'),
        ("status.conditions", "FieldValueInvalid",
         "Invalid value: cannot set SuccessCriteriaMet=True and Failed=true conditions"),
    }
    # what only JobManagedBy (alpha in 1.31) would refuse is taken
    loose = {**job, "status": {"conditions": [{**cond, "type": "Complete"}], "completionTime": "2024-01-01T00:00:00Z"}}
    assert admin.put(path, json=loose).status_code == 200


def test_job_selector_is_generated(admin: httpx.Client, ns: str):
    body = job_body("picky")
    body["spec"]["template"]["metadata"] = {"labels": {"controller-uid": "mine"}}
    causes = causes_of(admin.post(f"/apis/batch/v1/namespaces/{ns}/jobs", json=body))
    assert [(field, reason) for field, reason, _ in causes] == [
        ("spec.template.metadata.labels[controller-uid]", "FieldValueInvalid")]
    body = job_body("picky", selector={"matchLabels": {"app": "a"}})
    body["spec"]["template"]["metadata"] = {"labels": {"app": "a"}}
    ((field, reason, message),) = causes_of(admin.post(f"/apis/batch/v1/namespaces/{ns}/jobs", json=body))
    assert (field, reason) == ("spec.selector", "FieldValueInvalid") and message.endswith("`selector` not auto-generated")
    body["spec"]["manualSelector"] = True
    created = admin.post(f"/apis/batch/v1/namespaces/{ns}/jobs", json=body)
    created.raise_for_status()
    assert created.json()["spec"]["selector"] == {"matchLabels": {"app": "a"}}
    plain = admin.post(f"/apis/batch/v1/namespaces/{ns}/jobs", json=job_body("plain")).json()
    uid = plain["metadata"]["uid"]
    assert plain["spec"]["manualSelector"] is False
    assert plain["spec"]["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
    assert plain["spec"]["template"]["metadata"]["labels"] == {
        "controller-uid": uid, "batch.kubernetes.io/controller-uid": uid,
        "job-name": "plain", "batch.kubernetes.io/job-name": "plain"}


def test_cronjob_forbid_never_runs_two_at_once(controller_manager: ControllerManager, plane: ControlPlane,
                                               admin: httpx.Client, ns: str):
    body = {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "tick"},
            "spec": {"schedule": "* * * * *", "concurrencyPolicy": "Forbid",
                     "jobTemplate": {"spec": {"template": {"spec": {
                         "restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}}}}}

    def at_most_one_running(jobs: dict[str, dict]) -> None:
        running = [n for n, j in jobs.items() if not condition(j, "Complete") and not condition(j, "Failed")]
        assert len(running) <= 1, f"running at once: {running}"

    with Watcher(plane, f"/apis/batch/v1/namespaces/{ns}/jobs", at_most_one_running) as watch:
        admin.post(f"/apis/batch/v1/namespaces/{ns}/cronjobs", json=body).raise_for_status()
        first = wait_for(lambda: get(admin, f"/apis/batch/v1/namespaces/{ns}/jobs")["items"], 75, 0.5,
                         "the first scheduled job")[0]["metadata"]["name"]
        # the next minute passes while the first job still runs: Forbid skips it
        wait_for(lambda: any(e["reason"] == "JobAlreadyActive"
                             for e in get(admin, f"/api/v1/namespaces/{ns}/events")["items"]), 75, 0.5,
                 "the JobAlreadyActive event")
        assert [j["metadata"]["name"] for j in get(admin, f"/apis/batch/v1/namespaces/{ns}/jobs")["items"]] == [first]
        for p in job_pods(admin, ns, first):
            set_phase(admin, ns, p["metadata"]["name"], "Succeeded")
        wait_for(lambda: len(get(admin, f"/apis/batch/v1/namespaces/{ns}/jobs")["items"]) == 2, 75, 0.5,
                 "the next job once the first finished")
    assert watch.errors == [] and watch.events >= 3
    cj = get(admin, f"/apis/batch/v1/namespaces/{ns}/cronjobs/tick")
    assert cj["status"]["lastSuccessfulTime"] and len(cj["status"]["active"]) == 1
    row = plane.kubectl("-n", ns, "get", "cronjob", "tick", "--no-headers").stdout.split()
    assert row[:2] == ["tick", "*"]


def index_of(pod: dict) -> str:
    return pod["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]


def active_by_index(admin: httpx.Client, ns: str, job: str, count: int) -> dict[str, dict] | None:
    """The job's active pods by completion index, once there are `count` of them."""
    pods = job_pods(admin, ns, job, active=True)
    return {index_of(p): p for p in pods} if len(pods) == count else None


def job_with_condition(admin: httpx.Client, ns: str, job: str, type_: str) -> dict | None:
    obj = get(admin, f"/apis/batch/v1/namespaces/{ns}/jobs/{job}")
    return obj if condition(obj, type_) else None


def test_job_policies_are_validated(controller_manager: ControllerManager, admin: httpx.Client, ns: str):
    body = job_body("invalid", completions=2, successPolicy={"rules": [{"succeededCount": 1}]},
                    podFailurePolicy={"rules": [{"action": "FailIndex",
                                                 "onExitCodes": {"operator": "In", "values": [42]}}]})
    r = admin.post(f"/apis/batch/v1/namespaces/{ns}/jobs", json=body)
    assert r.status_code == 422, r.text
    status = r.json()
    assert (status["kind"], status["reason"]) == ("Status", "Invalid")
    assert {(c["field"], c["reason"], c["message"]) for c in status["details"]["causes"]} == {
        ("spec.podFailurePolicy.rules[0].action", "FieldValueInvalid",
         'Invalid value: "FailIndex": requires the backoffLimitPerIndex to be set'),
        ("spec.successPolicy", "FieldValueInvalid",
         'Invalid value: {"rules":[{"succeededCount":1}]}: requires indexed completion mode'),
    }


def test_job_success_policy(controller_manager: ControllerManager, admin: httpx.Client, ns: str):
    body = job_body("leader", completions=3, parallelism=3, completionMode="Indexed",
                    successPolicy={"rules": [{"succeededIndexes": "0"}]})
    admin.post(f"/apis/batch/v1/namespaces/{ns}/jobs", json=body).raise_for_status()
    pods = wait_for(lambda: active_by_index(admin, ns, "leader", 3), 30, 0.2, "three pods")
    set_phase(admin, ns, pods["0"]["metadata"]["name"], "Succeeded")
    job = wait_for(lambda: job_with_condition(admin, ns, "leader", "Complete"), 30, 0.2, "the job to complete")
    st = job["status"]
    assert [c["type"] for c in st["conditions"]] == ["SuccessCriteriaMet", "Complete"]
    assert {(c["reason"], c["message"]) for c in st["conditions"]} == {("SuccessPolicy", "Matched rules at index 0")}
    assert st["completedIndexes"] == "0" and st["succeeded"] == 1 and not st.get("failed") and st["completionTime"]
    # the pods of indexes 1 and 2 were stopped
    assert [index_of(p) for p in job_pods(admin, ns, "leader") if not p["metadata"].get("deletionTimestamp")] == ["0"]


def test_job_backoff_limit_per_index(controller_manager: ControllerManager, admin: httpx.Client, ns: str):
    body = job_body("per-index", completions=2, parallelism=2, completionMode="Indexed", backoffLimitPerIndex=1,
                    podFailurePolicy={"rules": [{"action": "FailIndex",
                                                 "onExitCodes": {"operator": "In", "values": [42]}}]})
    del body["spec"]["backoffLimit"]
    created = admin.post(f"/apis/batch/v1/namespaces/{ns}/jobs", json=body)
    created.raise_for_status()
    spec = created.json()["spec"]
    assert (spec["backoffLimit"], spec["podReplacementPolicy"]) == (2**31 - 1, "Failed")
    pods = wait_for(lambda: active_by_index(admin, ns, "per-index", 2), 30, 0.2, "two pods")
    assert pods["0"]["metadata"]["annotations"]["batch.kubernetes.io/job-index-failure-count"] == "0"
    set_phase(admin, ns, pods["0"]["metadata"]["name"], "Failed", exit_code=42)  # FailIndex: no retry
    wait_for(lambda: get(admin, f"/apis/batch/v1/namespaces/{ns}/jobs/per-index")["status"].get("failedIndexes") == "0",
             30, 0.2, "index 0 to fail")
    assert [index_of(p) for p in job_pods(admin, ns, "per-index", active=True)] == ["1"]
    set_phase(admin, ns, pods["1"]["metadata"]["name"], "Succeeded")
    job = wait_for(lambda: job_with_condition(admin, ns, "per-index", "Failed"), 30, 0.2, "the job to fail")
    cond = condition(job, "Failed")
    assert (cond["reason"], cond["message"]) == ("FailedIndexes", "Job has failed indexes")
    st = job["status"]
    assert st["failedIndexes"] == "0" and st["completedIndexes"] == "1" and st["failed"] == 1
    assert len(job_pods(admin, ns, "per-index")) == 2  # no pod was made again for the failed index


def causes_of(r: httpx.Response) -> set[tuple[str, str, str]]:
    assert r.status_code == 422, r.text
    status = r.json()
    assert (status["kind"], status["reason"]) == ("Status", "Invalid")
    return {(c["field"], c["reason"], c["message"]) for c in status["details"]["causes"]}


def test_cronjob_job_template_is_validated_as_a_job(admin: httpx.Client, ns: str):
    name = "c" * 53
    body = {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": name},
            "spec": {"schedule": "TZ=UTC */5 * * * *", "startingDeadlineSeconds": -1,
                     "jobTemplate": {"spec": {
                         "completionMode": "Indexed", "completions": 2, "parallelism": 100_001,
                         "selector": {"matchLabels": {"a": "b"}},
                         "successPolicy": {"rules": [{"succeededCount": 3}]},
                         "podFailurePolicy": {"rules": [{"action": "FailIndex",
                                                         "onExitCodes": {"operator": "In", "values": [42]}}]},
                         "template": {"spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}}}
    tpl = "spec.jobTemplate.spec"
    assert causes_of(admin.post(f"/apis/batch/v1/namespaces/{ns}/cronjobs", json=body)) == {
        ("spec.schedule", "FieldValueInvalid",
         'Invalid value: "TZ=UTC */5 * * * *": cannot use TZ or CRON_TZ in schedule, use timeZone field instead'),
        ("spec.startingDeadlineSeconds", "FieldValueInvalid", "Invalid value: -1: must be greater than or equal to 0"),
        (f"{tpl}.parallelism", "FieldValueInvalid",
         "Invalid value: 100001: must be less than or equal to 100000 when completion mode is Indexed"),
        (f"{tpl}.podFailurePolicy.rules[0].action", "FieldValueInvalid",
         'Invalid value: "FailIndex": requires the backoffLimitPerIndex to be set'),
        (f"{tpl}.successPolicy.rules[0].succeededCount", "FieldValueInvalid",
         "Invalid value: 3: must be less than or equal to 2 (the number of specified completions)"),
        (f"{tpl}.template.spec.restartPolicy", "FieldValueRequired", 'Required value: valid values: "OnFailure", "Never"'),
        (f"{tpl}.selector", "FieldValueInvalid", 'Invalid value: {"matchLabels":{"a":"b"}}: `selector` will be auto-generated'),
        ("metadata.name", "FieldValueInvalid", f'Invalid value: "{name}": must be no more than 52 characters'),
    }


def test_indexed_job_limits_are_validated(admin: httpx.Client, ns: str):
    name = "j" * 60
    body = job_body(name, completions=1000, parallelism=100_001, completionMode="Indexed")
    del body["spec"]["template"]["spec"]["restartPolicy"]
    assert causes_of(admin.post(f"/apis/batch/v1/namespaces/{ns}/jobs", json=body)) == {
        ("spec.parallelism", "FieldValueInvalid",
         "Invalid value: 100001: must be less than or equal to 100000 when completion mode is Indexed"),
        ("spec.template.spec.restartPolicy", "FieldValueRequired", 'Required value: valid values: "OnFailure", "Never"'),
        ("metadata.name", "FieldValueInvalid",
         f'Invalid value: "{name}": will not able to create pod with invalid DNS label: {name}-999'),
    }


def test_indexed_job_scales_with_completions(controller_manager: ControllerManager, plane: ControlPlane,
                                             admin: httpx.Client, ns: str):
    """ElasticIndexedJob: completions change together with parallelism; the pods of dropped indexes go."""
    admin.post(f"/apis/batch/v1/namespaces/{ns}/jobs",
               json=job_body("elastic", completions=3, parallelism=3, completionMode="Indexed")).raise_for_status()
    wait_for(lambda: active_by_index(admin, ns, "elastic", 3), 30, 0.2, "three pods")
    path = f"/apis/batch/v1/namespaces/{ns}/jobs/elastic"
    merge = {"Content-Type": "application/merge-patch+json"}
    r = admin.patch(path, json={"spec": {"completions": 2}}, headers=merge)
    assert causes_of(r) == {("spec.completions", "FieldValueInvalid",
                             "Invalid value: 2: can only be modified in tandem with spec.parallelism")}
    admin.patch(path, json={"spec": {"completions": 1, "parallelism": 1}}, headers=merge).raise_for_status()
    pods = wait_for(lambda: active_by_index(admin, ns, "elastic", 1), 30, 0.2, "the pods of indexes 1 and 2 to go")
    assert list(pods) == ["0"]
    set_phase(admin, ns, pods["0"]["metadata"]["name"], "Succeeded")
    job = wait_for(lambda: job_with_condition(admin, ns, "elastic", "Complete"), 30, 0.2, "the job to complete")
    assert (job["status"]["completedIndexes"], job["status"]["succeeded"]) == ("0", 1)
    row = plane.kubectl("-n", ns, "get", "job", "elastic", "--no-headers").stdout.split()
    assert row[:3] == ["elastic", "Complete", "1/1"]


def test_deleted_job_releases_its_pods(controller_manager: ControllerManager, plane: ControlPlane,
                                       admin: httpx.Client, ns: str):
    """podReplacementPolicy Failed: a pod being deleted is no failure yet, but a Job being deleted removes
    the tracking finalizers of all its pods at once, so a foreground deletion gets rid of them."""
    body = job_body("leaving", completions=2, parallelism=2, podReplacementPolicy="Failed")
    body["metadata"]["finalizers"] = ["example.com/hold"]  # keeps the Job (Terminating) to look at
    admin.post(f"/apis/batch/v1/namespaces/{ns}/jobs", json=body).raise_for_status()
    wait_for(lambda: len(job_pods(admin, ns, "leaving", active=True)) == 2, 30, 0.2, "two pods")
    path = f"/apis/batch/v1/namespaces/{ns}/jobs/leaving"
    admin.request("DELETE", path, json={"propagationPolicy": "Foreground"}).raise_for_status()
    row = plane.kubectl("-n", ns, "get", "job", "leaving", "--no-headers").stdout.split()
    assert row[:3] == ["leaving", "Terminating", "0/2"]
    # the pods (never scheduled: no grace period) only wait for their tracking finalizer
    wait_for(lambda: job_pods(admin, ns, "leaving") == [], 30, 0.2, "its pods to be gone")
    job = wait_for(lambda: (j := get(admin, path))["metadata"]["finalizers"] == ["example.com/hold"] and j,
                   30, 0.2, "the foreground deletion to finish")
    assert not job["status"].get("failed")  # released, not counted as failures
    admin.patch(path, json={"metadata": {"finalizers": None}},
                headers={"Content-Type": "application/merge-patch+json"}).raise_for_status()
    wait_for(lambda: admin.get(path).status_code == 404, 30, 0.2, "the job to be gone")
