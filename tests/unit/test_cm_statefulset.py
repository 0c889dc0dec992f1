"""StatefulSet controller against the in-memory API."""

from __future__ import annotations

import copy

import pytest

from controller_manager import history
from controller_manager.base import ControllerContext, FakeClock
from controller_manager.fake import FakeAPI, FakeInformerFactory, make_pods_ready, run_until_idle
from controller_manager.statefulset import StatefulSetController

NS = "default"


def statefulset(name: str = "web", replicas: int = 3, policy: str = "OrderedReady", image: str = "img:1",
                claims: bool = False, partition: int = 0) -> dict:
    spec: dict = {
        "replicas": replicas, "serviceName": name, "podManagementPolicy": policy,
        "selector": {"matchLabels": {"app": name}},
        "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "c", "image": image}]}},
        "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": partition}},
        "revisionHistoryLimit": 10,
    }
    if claims:
        spec["volumeClaimTemplates"] = [{"metadata": {"name": "data"},
                                         "spec": {"accessModes": ["ReadWriteOnce"],
                                                  "resources": {"requests": {"storage": "1Gi"}}}}]
    return {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": name, "namespace": NS}, "spec": spec}


class Env:
    def __init__(self) -> None:
        self.clock = FakeClock()
        self.api = FakeAPI(self.clock)
        ctx = ControllerContext(self.api, FakeInformerFactory(self.api), clock=self.clock,  # type: ignore[arg-type]
                                recorder_factory=self.api.recorder)
        self.ssc = StatefulSetController(ctx)

    async def settle(self, kubelet: bool = True) -> None:
        await run_until_idle([self.ssc], settle=(lambda: make_pods_ready(self.api, NS)) if kubelet else None)

    async def step(self) -> None:
        """One pass of the controller (no fake kubelet)."""
        await run_until_idle([self.ssc])

    def names(self) -> list[str]:
        return sorted(p["metadata"]["name"] for p in self.api.list_objects("v1", "pods", NS))

    def pod(self, name: str) -> dict:
        return self.api.get_object("v1", "pods", NS, name)

    def sts(self) -> dict:
        return self.api.get_object("apps/v1", "statefulsets", NS, "web")

    def update_sts(self, **spec) -> None:
        s = copy.deepcopy(self.sts())
        s["spec"].update(spec)
        self.api.update("apps/v1", "statefulsets", s)

    def set_image(self, image: str) -> None:
        s = copy.deepcopy(self.sts())
        s["spec"]["template"]["spec"]["containers"][0]["image"] = image
        self.api.update("apps/v1", "statefulsets", s)


@pytest.fixture
def env() -> Env:
    return Env()


async def test_ordered_ready_creates_one_at_a_time(env: Env):
    env.api.create("apps/v1", "statefulsets", statefulset(replicas=3, claims=True))
    await env.step()
    assert env.names() == ["web-0"]  # web-1 waits for web-0 to be Running and Ready
    await env.step()
    assert env.names() == ["web-0"]
    for n in (2, 3):
        make_pods_ready(env.api, NS)
        await env.step()
        assert len(env.names()) == n
    assert env.names() == ["web-0", "web-1", "web-2"]
    p = env.pod("web-1")
    assert p["spec"]["hostname"] == "web-1" and p["spec"]["subdomain"] == "web"
    assert p["metadata"]["labels"]["statefulset.kubernetes.io/pod-name"] == "web-1"
    assert p["metadata"]["labels"]["apps.kubernetes.io/pod-index"] == "1"
    assert p["metadata"]["ownerReferences"][0]["kind"] == "StatefulSet"
    assert {"name": "data", "persistentVolumeClaim": {"claimName": "data-web-1"}} in p["spec"]["volumes"]
    claims = sorted(c["metadata"]["name"] for c in env.api.list_objects("v1", "persistentvolumeclaims", NS))
    assert claims == ["data-web-0", "data-web-1", "data-web-2"]
    make_pods_ready(env.api, NS)
    await env.step()
    st = env.sts()["status"]
    assert (st["replicas"], st["readyReplicas"], st["availableReplicas"], st["currentReplicas"],
            st["updatedReplicas"]) == (3, 3, 3, 3, 3)
    assert st["currentRevision"] == st["updateRevision"] == p["metadata"]["labels"][history.REVISION_LABEL]
    assert any(e[2] == "SuccessfulCreate" and e[3] == "create Pod web-0 in StatefulSet web successful"
               for e in env.api.events)


async def test_parallel_creates_all_at_once(env: Env):
    env.api.create("apps/v1", "statefulsets", statefulset(replicas=4, policy="Parallel"))
    await env.step()
    assert env.names() == ["web-0", "web-1", "web-2", "web-3"]
    env.update_sts(replicas=1)
    await env.step()
    assert env.names() == ["web-0"]


async def test_ordered_scale_down_from_the_highest_ordinal(env: Env):
    env.api.create("apps/v1", "statefulsets", statefulset(replicas=3))
    await env.settle()
    env.update_sts(replicas=1)
    await env.ssc.sync(f"{NS}/web")
    assert env.names() == ["web-0", "web-1"]  # one at a time
    await env.step()
    deletes = [a[2] for a in env.api.writes("delete", "pods")]
    assert deletes == [f"{NS}/web-2", f"{NS}/web-1"] and env.names() == ["web-0"]


async def test_scale_down_waits_for_unhealthy_pods(env: Env):
    env.api.create("apps/v1", "statefulsets", statefulset(replicas=3))
    await env.settle()
    p0 = env.pod("web-0")
    env.api.update("v1", "pods", {**p0, "status": {**p0["status"], "conditions": [
        {"type": "Ready", "status": "False"}]}}, status=True)
    env.update_sts(replicas=2)
    await env.step()
    assert env.names() == ["web-0", "web-1", "web-2"]  # web-0 is not ready: nothing is deleted


async def test_rolling_update_from_the_highest_ordinal_and_partition(env: Env):
    env.api.create("apps/v1", "statefulsets", statefulset(replicas=3, partition=1))
    await env.settle()
    old_rev = env.sts()["status"]["currentRevision"]
    env.set_image("img:2")
    await env.settle()
    images = {n: env.pod(n)["spec"]["containers"][0]["image"] for n in env.names()}
    assert images == {"web-0": "img:1", "web-1": "img:2", "web-2": "img:2"}  # ordinals below the partition stay
    st = env.sts()["status"]
    assert st["currentRevision"] == old_rev and st["updateRevision"] != old_rev and st["updatedReplicas"] == 2
    env.update_sts(updateStrategy={"type": "RollingUpdate", "rollingUpdate": {"partition": 0}})
    await env.settle()
    assert {env.pod(n)["spec"]["containers"][0]["image"] for n in env.names()} == {"img:2"}
    st = env.sts()["status"]
    assert st["currentRevision"] == st["updateRevision"] and st["currentReplicas"] == 3
    # roll back: the old revision is reused, with a new number
    env.set_image("img:1")
    await env.settle()
    revs = {r["metadata"]["name"]: r["revision"] for r in env.api.list_objects("apps/v1", "controllerrevisions", NS)}
    assert len(revs) == 2 and revs[old_rev] == 3
    assert env.sts()["status"]["updateRevision"] == old_rev


async def test_failed_pod_is_recreated(env: Env):
    env.api.create("apps/v1", "statefulsets", statefulset(replicas=2))
    await env.settle()
    p1 = env.pod("web-1")
    env.api.update("v1", "pods", {**p1, "status": {"phase": "Failed"}}, status=True)
    await env.settle()
    new = env.pod("web-1")
    assert new["metadata"]["uid"] != p1["metadata"]["uid"] and new["status"]["phase"] == "Running"
    assert any(e[2] == "RecreatingFailedPod" for e in env.api.events)


async def test_on_delete_does_not_replace_running_pods(env: Env):
    s = statefulset(replicas=2)
    s["spec"]["updateStrategy"] = {"type": "OnDelete"}
    env.api.create("apps/v1", "statefulsets", s)
    await env.settle()
    env.set_image("img:2")
    await env.settle()
    assert {env.pod(n)["spec"]["containers"][0]["image"] for n in env.names()} == {"img:1"}
    env.api.delete("v1", "pods", "web-1", NS)
    await env.settle()
    assert env.pod("web-1")["spec"]["containers"][0]["image"] == "img:2"
