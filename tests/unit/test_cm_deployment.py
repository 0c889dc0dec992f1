"""Deployment controller (with the ReplicaSet controller) against the in-memory API."""

from __future__ import annotations

import copy

import pytest

from controller_manager import deployment_util as du
from controller_manager.base import ControllerContext, FakeClock
from controller_manager.deployment import DeploymentController
from controller_manager.fake import FakeAPI, FakeInformerFactory, make_pods_ready, run_until_idle
from controller_manager.replicaset import ReplicaSetController

NS = "default"


def make_deployment(name: str = "web", replicas: int = 3, image: str = "img:a", strategy: dict | None = None,
                    **spec) -> dict:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                         "spec": {"containers": [{"name": "c", "image": image}]}},
            "strategy": strategy or {"type": "RollingUpdate",
                                     "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600,
            **spec,
        },
    }


class Env:
    def __init__(self) -> None:
        self.clock = FakeClock()
        self.api = FakeAPI(self.clock)
        ctx = ControllerContext(self.api, FakeInformerFactory(self.api), clock=self.clock,  # type: ignore[arg-type]
                                recorder_factory=self.api.recorder)
        self.dc = DeploymentController(ctx)
        self.rsc = ReplicaSetController(ctx)
        self.kubelet = True

    async def settle(self) -> None:
        await run_until_idle([self.dc, self.rsc],
                             settle=(lambda: make_pods_ready(self.api)) if self.kubelet else None)

    def deployment(self, name: str = "web") -> dict:
        return self.api.get_object("apps/v1", "deployments", NS, name)

    def replica_sets(self) -> list[dict]:
        return du.by_creation(self.api.list_objects("apps/v1", "replicasets", NS))

    def pods(self) -> list[dict]:
        return self.api.list_objects("v1", "pods", NS)

    def update_spec(self, name: str = "web", **changes) -> None:
        d = copy.deepcopy(self.deployment(name))
        for k, v in changes.items():
            d["spec"][k] = v
        self.api.update("apps/v1", "deployments", d)

    def set_image(self, image: str, name: str = "web") -> None:
        d = copy.deepcopy(self.deployment(name))
        d["spec"]["template"]["spec"]["containers"][0]["image"] = image
        self.api.update("apps/v1", "deployments", d)


@pytest.fixture
def env() -> Env:
    return Env()


def condition(obj: dict, type_: str) -> dict | None:
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == type_), None)


def test_hash_is_fnv32a_safe_encoded_and_depends_on_collision_count():
    t = {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "a"}]}}
    h = du.compute_hash(t, None)
    assert h == du.compute_hash(copy.deepcopy(t), None)
    assert set(h) <= set("bcdfghjklmnpqrstvwxz2456789") and 1 <= len(h) <= 10
    assert du.compute_hash(t, 1) != h
    assert du.fnv32a(b"") == 0x811C9DC5 and du.fnv32a(b"a") == 0xE40C292C  # FNV-1a test vectors
    assert du.safe_encode_string("0123456789") == "456789bcdf"
    # semantic equality: empty maps and nulls do not matter, the hash label does not matter
    t2 = copy.deepcopy(t)
    t2["metadata"]["creationTimestamp"] = None
    t2["metadata"]["labels"]["pod-template-hash"] = "xyz"
    t2["spec"]["containers"][0]["resources"] = {}
    assert du.equal_ignore_hash(t, t2)


@pytest.mark.parametrize(("surge", "unavailable", "desired", "expected"), [
    ("25%", "25%", 10, (3, 2)),
    ("25%", "25%", 1, (1, 0)),
    (0, "10%", 5, (0, 1)),   # both round to zero: one unavailable pod is allowed
    (2, 0, 3, (2, 0)),
    ("50%", 1, 3, (2, 1)),
])
def test_fenceposts(surge, unavailable, desired, expected):
    assert du.resolve_fenceposts(surge, unavailable, desired) == expected


async def test_creates_replica_set_with_hash_and_revision(env: Env):
    d = env.api.create("apps/v1", "deployments", make_deployment(replicas=3))
    await env.settle()
    (rs,) = env.replica_sets()
    h = rs["metadata"]["labels"]["pod-template-hash"]
    assert rs["metadata"]["name"] == f"web-{h}"
    assert h == du.compute_hash(d["spec"]["template"], None)
    assert rs["spec"]["selector"]["matchLabels"] == {"app": "web", "pod-template-hash": h}
    assert rs["spec"]["template"]["metadata"]["labels"] == {"app": "web", "pod-template-hash": h}
    ann = rs["metadata"]["annotations"]
    assert ann[du.REVISION] == "1" and ann[du.DESIRED_REPLICAS] == "3" and ann[du.MAX_REPLICAS] == "4"
    assert rs["metadata"]["ownerReferences"][0]["uid"] == d["metadata"]["uid"]
    assert len(env.pods()) == 3
    st = env.deployment()["status"]
    assert (st["replicas"], st["updatedReplicas"], st["readyReplicas"], st["availableReplicas"]) == (3, 3, 3, 3)
    assert "unavailableReplicas" not in st  # zero: omitted, as upstream's JSON
    assert condition(env.deployment(), "Available")["reason"] == "MinimumReplicasAvailable"
    prog = condition(env.deployment(), "Progressing")
    assert (prog["status"], prog["reason"]) == ("True", "NewReplicaSetAvailable")
    assert prog["message"] == f'ReplicaSet "web-{h}" has successfully progressed.'
    assert env.deployment()["metadata"]["annotations"][du.REVISION] == "1"
    assert any(e[2] == "ScalingReplicaSet" and e[3] == f"Scaled up replica set web-{h} from 0 to 3"
               for e in env.api.events)


async def test_rolling_update_respects_surge_and_unavailability(env: Env):
    env.api.create("apps/v1", "deployments", make_deployment(
        replicas=10, strategy={"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 3, "maxUnavailable": "20%"}}))
    await env.settle()
    seen_max_total = 0
    seen_min_available = 10

    def check() -> None:
        # upstream's rolling-update invariants (its e2e "CheckRolling"): pods asked for (the sum
        # of the sets' spec.replicas) ≤ replicas + maxSurge; pods available ≥ replicas − maxUnavailable
        nonlocal seen_max_total, seen_min_available
        seen_max_total = max(seen_max_total, du.replica_count(env.replica_sets()))
        ready = [p for p in env.pods() if (p.get("status") or {}).get("phase") == "Running"]
        seen_min_available = min(seen_min_available, len(ready))

    # the fake kubelet readies pods only between rounds: every intermediate state is checked
    env.set_image("img:b")
    for _ in range(100):
        busy = False
        for c in (env.dc, env.rsc):
            while len(c.queue):
                key = await c.queue.get()
                busy = True
                try:
                    await c.sync(key)
                except Exception:
                    c.queue.add(key)
                finally:
                    c.queue.done(key)
                check()
        make_pods_ready(env.api)
        check()
        if not busy:
            break
    assert seen_max_total <= 13
    assert seen_min_available >= 8
    images = {p["spec"]["containers"][0]["image"] for p in env.pods()}
    assert images == {"img:b"} and len(env.pods()) == 10
    rss = env.replica_sets()
    assert [du.replicas(rs) for rs in rss] == [0, 10]
    assert [rs["metadata"]["annotations"][du.REVISION] for rs in rss] == ["1", "2"]
    st = env.deployment()["status"]
    assert (st["replicas"], st["updatedReplicas"], st["availableReplicas"]) == (10, 10, 10)


async def test_rollback_reuses_the_old_replica_set_with_revision_history(env: Env):
    env.api.create("apps/v1", "deployments", make_deployment(replicas=2))
    await env.settle()
    env.set_image("img:b")
    await env.settle()
    first, second = env.replica_sets()
    env.set_image("img:a")  # what `kubectl rollout undo` does: the old template comes back
    await env.settle()
    rss = {rs["metadata"]["name"]: rs for rs in env.replica_sets()}
    assert len(rss) == 2
    back = rss[first["metadata"]["name"]]
    assert du.replicas(back) == 2 and du.replicas(rss[second["metadata"]["name"]]) == 0
    assert back["metadata"]["annotations"][du.REVISION] == "3"
    assert back["metadata"]["annotations"][du.REVISION_HISTORY] == "1"
    assert {p["spec"]["containers"][0]["image"] for p in env.pods()} == {"img:a"}


async def test_revision_history_limit_deletes_oldest_empty_sets(env: Env):
    env.api.create("apps/v1", "deployments", make_deployment(replicas=1, revisionHistoryLimit=1))
    for image in ("img:b", "img:c", "img:d"):
        await env.settle()
        env.set_image(image)
    await env.settle()
    rss = du.by_revision(env.replica_sets())
    assert [rs["spec"]["template"]["spec"]["containers"][0]["image"] for rs in rss] == ["img:c", "img:d"]


async def test_recreate_scales_old_to_zero_before_creating_new(env: Env):
    env.api.create("apps/v1", "deployments", make_deployment(replicas=3, strategy={"type": "Recreate"}))
    await env.settle()
    env.api.actions.clear()
    env.set_image("img:b")
    await env.dc.sync(f"{NS}/web")
    old = env.replica_sets()
    assert len(old) == 1 and du.replicas(old[0]) == 0  # scaled down, no new set yet
    await env.dc.sync(f"{NS}/web")
    assert len(env.replica_sets()) == 1  # old pods still exist: wait
    await env.settle()
    rss = env.replica_sets()
    assert [du.replicas(rs) for rs in rss] == [0, 3]
    creates = [i for i, a in enumerate(env.api.actions) if a[:2] == ("create", "pods")]
    deletes = [i for i, a in enumerate(env.api.actions) if a[:2] == ("delete", "pods")]
    assert len(deletes) == 3 and max(deletes) < min(creates)


async def test_scaling_mid_rollout_is_proportional(env: Env):
    env.kubelet = False  # nothing becomes ready: the rollout stays half-way
    env.api.create("apps/v1", "deployments", make_deployment(
        replicas=10, strategy={"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 3, "maxUnavailable": 2}}))
    await env.settle()
    make_pods_ready(env.api)
    await env.settle()
    env.set_image("img:b")
    await env.settle()
    old, new = env.replica_sets()
    assert (du.replicas(old), du.replicas(new)) == (8, 5)  # 13 pods: surge 3, 2 old ones gone
    env.update_spec(replicas=20)  # allowed 20 + 3 = 23: 10 more, split 8:5
    await env.settle()
    old, new = env.replica_sets()
    assert du.replicas(old) + du.replicas(new) == 23
    assert (du.replicas(old), du.replicas(new)) == (14, 9)
    assert old["metadata"]["annotations"][du.DESIRED_REPLICAS] == "20"


async def test_scale_up_and_down_without_rollout(env: Env):
    env.api.create("apps/v1", "deployments", make_deployment(replicas=3))
    await env.settle()
    for n in (10, 2):
        env.update_spec(replicas=n)
        await env.settle()
        (rs,) = env.replica_sets()
        assert du.replicas(rs) == n and len(env.pods()) == n
        assert env.deployment()["status"]["availableReplicas"] == n


async def test_paused_deployment_does_not_roll_out(env: Env):
    env.api.create("apps/v1", "deployments", make_deployment(replicas=2))
    await env.settle()
    env.update_spec(paused=True)
    await env.settle()
    prog = condition(env.deployment(), "Progressing")
    assert (prog["status"], prog["reason"]) == ("Unknown", "DeploymentPaused")
    env.set_image("img:b")
    await env.settle()
    assert len(env.replica_sets()) == 1
    env.update_spec(paused=False)
    await env.settle()
    assert len(env.replica_sets()) == 2
    assert condition(env.deployment(), "Progressing")["reason"] == "NewReplicaSetAvailable"


async def test_progress_deadline_exceeded(env: Env):
    env.kubelet = False
    env.api.create("apps/v1", "deployments", make_deployment(replicas=2, progressDeadlineSeconds=30))
    await env.settle()
    prog = condition(env.deployment(), "Progressing")
    assert prog["reason"] == "ReplicaSetUpdated"  # pods were created: progress, though none is ready
    assert condition(env.deployment(), "Available")["status"] == "False"
    env.clock.step(31)
    await env.dc.sync(f"{NS}/web")
    prog = condition(env.deployment(), "Progressing")
    assert (prog["status"], prog["reason"]) == ("False", "ProgressDeadlineExceeded")
    assert prog["message"].endswith("has timed out progressing.")


async def test_hash_collision_bumps_collision_count(env: Env):
    d = make_deployment(replicas=1)
    h = du.compute_hash(d["spec"]["template"], None)
    squatter = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
                "metadata": {"name": f"web-{h}", "namespace": NS, "labels": {"app": "other"}},
                "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "other"}},
                         "template": {"metadata": {"labels": {"app": "other"}},
                                      "spec": {"containers": [{"name": "c", "image": "x"}]}}}}
    env.api.create("apps/v1", "replicasets", squatter)
    env.api.create("apps/v1", "deployments", d)
    await env.settle()
    assert env.deployment()["status"]["collisionCount"] == 1
    mine = [rs for rs in env.replica_sets() if rs["metadata"]["name"] != f"web-{h}"]
    assert len(mine) == 1 and mine[0]["metadata"]["name"] == f"web-{du.compute_hash(d['spec']['template'], 1)}"
    assert len(env.pods()) == 1


async def test_adopts_orphan_replica_set_with_matching_template(env: Env):
    d = make_deployment(replicas=2)
    h = du.compute_hash(d["spec"]["template"], None)
    tpl = copy.deepcopy(d["spec"]["template"])
    tpl["metadata"]["labels"]["pod-template-hash"] = h
    env.api.create("apps/v1", "replicasets", {
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": f"web-{h}", "namespace": NS, "labels": tpl["metadata"]["labels"]},
        "spec": {"replicas": 2, "selector": {"matchLabels": tpl["metadata"]["labels"]}, "template": tpl}})
    created = env.api.create("apps/v1", "deployments", d)
    await env.settle()
    (rs,) = env.replica_sets()
    assert rs["metadata"]["ownerReferences"][0]["uid"] == created["metadata"]["uid"]
    assert len(env.pods()) == 2


async def test_stale_old_set_status_never_scales_an_old_set_up(env: Env):
    env.api.create("apps/v1", "deployments", make_deployment(
        replicas=4, strategy={"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 1}}))
    await env.settle()
    env.set_image("img:b")
    await env.dc.sync(f"{NS}/web")  # the new set is created with 1 replica

    def by_image(image: str) -> dict:
        return next(rs for rs in env.replica_sets() if rs["spec"]["template"]["spec"]["containers"][0]["image"] == image)

    new = by_image("img:b")
    env.api.update("apps/v1", "replicasets", {**new, "spec": {**new["spec"], "replicas": 2}})
    env.api.update("apps/v1", "replicasets", {**by_image("img:b"), "status": {"replicas": 2, "availableReplicas": 2}},
                   status=True)
    old = by_image("img:a")  # scaled down to 3 while its status still says 4 available
    env.api.update("apps/v1", "replicasets", {**old, "spec": {**old["spec"], "replicas": 3}})
    with pytest.raises(RuntimeError, match="invalid request to scale down"):
        await env.dc.sync(f"{NS}/web")
    assert du.replicas(by_image("img:a")) == 3
