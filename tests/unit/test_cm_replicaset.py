"""ReplicaSet controller against the in-memory API (controller_manager.fake)."""

from __future__ import annotations

import datetime as dt

import pytest

from apimachinery import errors
from apimachinery.meta import format_time
from controller_manager.base import ControllerContext, FakeClock
from controller_manager.fake import FakeAPI, FakeInformerFactory
from controller_manager.replicaset import ReplicaSetController

NS = "default"


def make_rs(name: str = "web", replicas: int = 3, labels: dict | None = None, min_ready: int = 0) -> dict:
    labels = labels or {"app": name}
    return {
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "replicas": replicas, "minReadySeconds": min_ready,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "c", "image": "a"}]}},
        },
    }


@pytest.fixture
def env():
    clock = FakeClock()
    api = FakeAPI(clock)
    ctx = ControllerContext(api, FakeInformerFactory(api), clock=clock, recorder_factory=api.recorder)  # type: ignore[arg-type]
    return api, clock, ctx


def pods_of(api: FakeAPI) -> list[dict]:
    return api.list_objects("v1", "pods", NS)


def set_ready(api: FakeAPI, pod: dict, since: dt.datetime, node: str | None = None) -> None:
    p = api.get_object("v1", "pods", NS, pod["metadata"]["name"])
    status = {"phase": "Running", "conditions": [
        {"type": "Ready", "status": "True", "lastTransitionTime": format_time(since)}]}
    api.update("v1", "pods", {**p, "status": status}, status=True)
    if node:
        p = api.get_object("v1", "pods", NS, pod["metadata"]["name"])
        api.update("v1", "pods", {**p, "spec": {**p["spec"], "nodeName": node}})


async def test_creates_missing_pods_owned_by_the_set(env):
    api, _clock, ctx = env
    rsc = ReplicaSetController(ctx)
    rs = api.create("apps/v1", "replicasets", make_rs(replicas=3))
    await rsc.sync(f"{NS}/web")
    pods = pods_of(api)
    assert len(pods) == 3
    for p in pods:
        assert p["metadata"]["name"].startswith("web-")
        ref = p["metadata"]["ownerReferences"][0]
        assert ref == {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web", "uid": rs["metadata"]["uid"],
                       "controller": True, "blockOwnerDeletion": True}
        assert p["metadata"]["labels"] == {"app": "web"}
    # status reflects the pods the sync started with (as upstream); the pod adds queue another sync
    assert api.get_object("apps/v1", "replicasets", NS, "web")["status"]["replicas"] == 0
    await rsc.sync(f"{NS}/web")
    status = api.get_object("apps/v1", "replicasets", NS, "web")["status"]
    assert status["replicas"] == 3 and status["observedGeneration"] == 1
    assert [e[2] for e in api.events].count("SuccessfulCreate") == 3


async def test_slow_watch_never_causes_double_creation(env):
    api, _clock, ctx = env
    rsc = ReplicaSetController(ctx)
    api.create("apps/v1", "replicasets", make_rs(replicas=5))
    api.hold("pods")  # the informer sees none of the creations yet
    for _ in range(4):
        await rsc.sync(f"{NS}/web")
    assert len(api.writes("create", "pods")) == 5
    api.flush("pods")
    await rsc.sync(f"{NS}/web")
    assert len(api.writes("create", "pods")) == 5
    assert len(pods_of(api)) == 5


async def test_restarted_controller_counts_existing_pods(env):
    api, _clock, ctx = env
    api.create("apps/v1", "replicasets", make_rs(replicas=4))
    await ReplicaSetController(ctx).sync(f"{NS}/web")
    # a new process: fresh informers (listing what exists), no expectations
    ctx2 = ControllerContext(api, FakeInformerFactory(api), clock=ctx.clock, recorder_factory=api.recorder)  # type: ignore[arg-type]
    await ReplicaSetController(ctx2).sync(f"{NS}/web")
    assert len(api.writes("create", "pods")) == 4


async def test_expectations_expire_after_five_minutes(env):
    api, clock, ctx = env
    rsc = ReplicaSetController(ctx)
    api.create("apps/v1", "replicasets", make_rs(replicas=2))
    api.hold("pods")
    await rsc.sync(f"{NS}/web")
    # the watch lost the events for good: after the timeout the controller acts again
    clock.step(301)
    await rsc.sync(f"{NS}/web")
    assert len(api.writes("create", "pods")) == 4


async def test_scale_down_prefers_unscheduled_then_not_ready_then_newest(env):
    api, clock, ctx = env
    rsc = ReplicaSetController(ctx)
    api.create("apps/v1", "replicasets", make_rs(replicas=4))
    await rsc.sync(f"{NS}/web")
    pods = sorted(pods_of(api), key=lambda p: p["metadata"]["name"])
    t0 = clock.now()
    set_ready(api, pods[0], t0 - dt.timedelta(hours=2), node="n1")  # old, ready, scheduled: keep
    set_ready(api, pods[1], t0 - dt.timedelta(hours=2), node="n2")  # keep
    p2 = api.get_object("v1", "pods", NS, pods[2]["metadata"]["name"])
    api.update("v1", "pods", {**p2, "spec": {**p2["spec"], "nodeName": "n3"}})  # scheduled, not ready
    # pods[3]: unscheduled
    spec = api.get_object("apps/v1", "replicasets", NS, "web")
    api.update("apps/v1", "replicasets", {**spec, "spec": {**spec["spec"], "replicas": 2}})
    await rsc.sync(f"{NS}/web")
    left = {p["metadata"]["name"] for p in pods_of(api)}
    assert left == {pods[0]["metadata"]["name"], pods[1]["metadata"]["name"]}
    assert [e[2] for e in api.events].count("SuccessfulDelete") == 2


async def test_scale_down_prefers_recently_ready(env):
    api, clock, ctx = env
    rsc = ReplicaSetController(ctx)
    api.create("apps/v1", "replicasets", make_rs(replicas=2))
    await rsc.sync(f"{NS}/web")
    a, b = sorted(pods_of(api), key=lambda p: p["metadata"]["name"])
    set_ready(api, a, clock.now() - dt.timedelta(hours=10), node="n1")
    set_ready(api, b, clock.now() - dt.timedelta(seconds=10), node="n2")
    rs = api.get_object("apps/v1", "replicasets", NS, "web")
    api.update("apps/v1", "replicasets", {**rs, "spec": {**rs["spec"], "replicas": 1}})
    await rsc.sync(f"{NS}/web")
    assert [p["metadata"]["name"] for p in pods_of(api)] == [a["metadata"]["name"]]


async def test_adopts_matching_orphans_and_releases_non_matching(env):
    api, _clock, ctx = env
    rsc = ReplicaSetController(ctx)
    rs = api.create("apps/v1", "replicasets", make_rs(replicas=2))
    orphan = api.create("v1", "pods", {"metadata": {"name": "orphan", "namespace": NS, "labels": {"app": "web"}},
                                       "spec": {"containers": [{"name": "c", "image": "a"}]}})
    stranger = api.create("v1", "pods", {"metadata": {"name": "other", "namespace": NS, "labels": {"app": "db"}},
                                         "spec": {"containers": [{"name": "c", "image": "a"}]}})
    await rsc.sync(f"{NS}/web")
    adopted = api.get_object("v1", "pods", NS, "orphan")
    assert adopted["metadata"]["uid"] == orphan["metadata"]["uid"]
    assert adopted["metadata"]["ownerReferences"][0]["uid"] == rs["metadata"]["uid"]
    assert not api.get_object("v1", "pods", NS, "other")["metadata"].get("ownerReferences")
    assert stranger["metadata"]["uid"]
    assert len(pods_of(api)) == 3  # orphan + 1 created + stranger
    # relabel one owned pod: it is released, and a replacement is created
    p = api.get_object("v1", "pods", NS, "orphan")
    api.update("v1", "pods", {**p, "metadata": {**p["metadata"], "labels": {"app": "debug"}}})
    await rsc.sync(f"{NS}/web")
    released = api.get_object("v1", "pods", NS, "orphan")
    assert not released["metadata"].get("ownerReferences")
    owned = [q for q in pods_of(api) if q["metadata"].get("ownerReferences")]
    assert len(owned) == 2


async def test_no_adoption_by_a_set_that_is_being_deleted(env):
    api, _clock, ctx = env
    rsc = ReplicaSetController(ctx)
    api.create("apps/v1", "replicasets", {**make_rs(replicas=1),
                                         "metadata": {"name": "web", "namespace": NS, "finalizers": ["x"]}})
    api.delete("apps/v1", "replicasets", "web", NS)
    api.create("v1", "pods", {"metadata": {"name": "orphan", "namespace": NS, "labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "c", "image": "a"}]}})
    await rsc.sync(f"{NS}/web")
    assert not api.get_object("v1", "pods", NS, "orphan")["metadata"].get("ownerReferences")
    assert len(api.writes("create", "pods")) == 1  # only the test's own pod


async def test_no_adoption_when_the_set_was_recreated(env):
    api, _clock, ctx = env
    rsc = ReplicaSetController(ctx)
    api.create("apps/v1", "replicasets", make_rs(replicas=1))
    api.hold("replicasets")  # the informer keeps the old set
    api.delete("apps/v1", "replicasets", "web", NS)
    api.create("apps/v1", "replicasets", make_rs(replicas=1))
    api.create("v1", "pods", {"metadata": {"name": "orphan", "namespace": NS, "labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "c", "image": "a"}]}})
    with pytest.raises(RuntimeError, match="is gone"):
        await rsc.sync(f"{NS}/web")
    assert not api.get_object("v1", "pods", NS, "orphan")["metadata"].get("ownerReferences")


async def test_status_counts_ready_and_available_with_min_ready_seconds(env):
    api, clock, ctx = env
    rsc = ReplicaSetController(ctx)
    api.create("apps/v1", "replicasets", make_rs(replicas=3, min_ready=30))
    await rsc.sync(f"{NS}/web")
    pods = sorted(pods_of(api), key=lambda p: p["metadata"]["name"])
    set_ready(api, pods[0], clock.now() - dt.timedelta(seconds=60))
    set_ready(api, pods[1], clock.now() - dt.timedelta(seconds=5))
    await rsc.sync(f"{NS}/web")
    st = api.get_object("apps/v1", "replicasets", NS, "web")["status"]
    assert (st["replicas"], st["readyReplicas"], st["availableReplicas"], st["fullyLabeledReplicas"]) == (3, 2, 1, 3)
    clock.step(30)
    await rsc.sync(f"{NS}/web")
    assert api.get_object("apps/v1", "replicasets", NS, "web")["status"]["availableReplicas"] == 2


async def test_create_failure_sets_replica_failure_and_retries(env):
    api, _clock, ctx = env
    rsc = ReplicaSetController(ctx)
    api.create("apps/v1", "replicasets", make_rs(replicas=3))
    api.fail_next("create", "pods", errors.forbidden('pods "web-x" is forbidden: exceeded quota'))
    with pytest.raises(errors.StatusError):
        await rsc.sync(f"{NS}/web")
    assert pods_of(api) == []  # slow start: the first batch (1 pod) failed, nothing more was tried
    st = api.get_object("apps/v1", "replicasets", NS, "web")["status"]
    cond = st["conditions"][0]
    assert (cond["type"], cond["status"], cond["reason"]) == ("ReplicaFailure", "True", "FailedCreate")
    assert "exceeded quota" in cond["message"]
    assert any(e[1:3] == ("Warning", "FailedCreate") for e in api.events)
    await rsc.sync(f"{NS}/web")  # expectations were lowered for the failed creation: it retries
    assert len(pods_of(api)) == 3
    assert "conditions" not in api.get_object("apps/v1", "replicasets", NS, "web")["status"]


async def test_pod_deleted_elsewhere_is_replaced(env):
    api, _clock, ctx = env
    rsc = ReplicaSetController(ctx)
    api.create("apps/v1", "replicasets", make_rs(replicas=2))
    await rsc.sync(f"{NS}/web")
    victim = pods_of(api)[0]
    api.delete("v1", "pods", victim["metadata"]["name"], NS)
    assert f"{NS}/web" in rsc.queue._dirty  # the informer event enqueued the owner
    await rsc.sync(f"{NS}/web")
    assert len(pods_of(api)) == 2


async def test_slow_start_batches_grow_and_stop_at_a_failing_batch(env):
    api, _clock, ctx = env
    rsc = ReplicaSetController(ctx)
    api.create("apps/v1", "replicasets", make_rs(replicas=20))
    calls = []
    real = api.create

    def counting(api_version, plural, obj, namespace=None):
        if plural == "pods":
            calls.append(1)
            if len(calls) == 4:  # in the third batch (sizes 1, 2, 4)
                raise errors.internal("boom")
        return real(api_version, plural, obj, namespace)

    api.create = counting  # type: ignore[method-assign]
    with pytest.raises(errors.StatusError):
        await rsc.sync(f"{NS}/web")
    assert len(calls) == 7 and len(pods_of(api)) == 6
    await rsc.sync(f"{NS}/web")
    assert len(pods_of(api)) == 20
