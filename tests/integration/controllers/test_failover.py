"""Disruptions: leader failover between two controller-managers, restarted watches and a restarted
controller-manager in the middle of a scale-up. Each must end with exactly the pods asked for,
and never create one too many (counted in the apiserver's audit log). A control plane of its own:
these tests stop and start processes."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import ControlPlane, private_control_plane, wait_for
from tests.conftest import audited as audited_events
from tests.integration.controllers.conftest import ControllerManager, Watcher, get

# the serviceaccount controller makes the namespaces' default ServiceAccount (admission wants it for pods)
CONTROLLERS = "replicaset-controller,deployment-controller,serviceaccount-controller"


@pytest.fixture(scope="module")
def own_plane() -> Iterator[ControlPlane]:
    with private_control_plane("mk8s-cm-failover-", controller_manager=False) as cp:
        yield cp


@pytest.fixture
def admin(own_plane: ControlPlane) -> Iterator[httpx.Client]:
    with own_plane.client() as c:
        yield c


@pytest.fixture
def ns(admin: httpx.Client) -> str:
    name = f"t-{os.urandom(4).hex()}"
    admin.post("/api/v1/namespaces", json={"metadata": {"name": name}}).raise_for_status()
    return name


def rs_body(replicas: int) -> dict:
    labels = {"app": "web"}
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "web"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}


def pod_count(admin: httpx.Client, ns: str) -> int:
    return len([p for p in get(admin, f"/api/v1/namespaces/{ns}/pods")["items"]
                if not p["metadata"].get("deletionTimestamp")])


def audited(cp: ControlPlane, ns: str, verb: str, code: int) -> int:
    """Successful `verb`s of pods in the namespace, per the (complete) audit log."""
    return len(audited_events(cp.audit_records(), verb=verb, resource="pods", namespace=ns, subresource=None, code=code))


def scale(admin: httpx.Client, ns: str, replicas: int) -> None:
    admin.patch(f"/apis/apps/v1/namespaces/{ns}/replicasets/web/scale", json={"spec": {"replicas": replicas}},
                headers={"Content-Type": "application/merge-patch+json"}).raise_for_status()


def never_more_than(limit: list[int]):
    def check(pods: dict[str, dict]) -> None:
        alive = [n for n, p in pods.items() if not p["metadata"].get("deletionTimestamp")]
        assert len(alive) <= limit[0], f"{len(alive)} pods > {limit[0]}"
    return check


def test_leader_failover_without_duplicates(own_plane: ControlPlane, admin: httpx.Client, ns: str):
    a = ControllerManager(own_plane, "cm-a", leader_elect=True, controllers=CONTROLLERS).start()
    b = ControllerManager(own_plane, "cm-b", leader_elect=True, controllers=CONTROLLERS).start()
    try:
        def leader() -> ControllerManager | None:
            for cm in (a, b):
                if "became leader" in cm.log_text():
                    return cm
            return None

        first = wait_for(leader, 20, 0.2, "a leader")
        standby = b if first is a else a
        lease0 = get(admin, "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/kube-controller-manager")
        limit = [20]
        with Watcher(own_plane, f"/api/v1/namespaces/{ns}/pods", never_more_than(limit)) as watch:
            admin.post(f"/apis/apps/v1/namespaces/{ns}/replicasets", json=rs_body(20)).raise_for_status()
            wait_for(lambda: pod_count(admin, ns) == 20, 30, what="20 pods")
            first.stop(signal.SIGKILL)  # no release: the standby waits out the lease
            limit[0] = 40
            scale(admin, ns, 40)
            wait_for(lambda: "became leader" in standby.log_text(), 30, 0.2, "the standby to take over")
            wait_for(lambda: pod_count(admin, ns) == 40, 30, what="40 pods from the new leader")
        lease = get(admin, "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/kube-controller-manager")
        assert lease["spec"]["holderIdentity"] != lease0["spec"]["holderIdentity"]
        assert lease["spec"]["leaseTransitions"] == (lease0["spec"].get("leaseTransitions") or 0) + 1
        assert watch.errors == []
        assert audited(own_plane, ns, "create", 201) == 40
        assert pod_count(admin, ns) == 40
    finally:
        a.stop()
        b.stop()


def test_restarted_watches_and_controller_manager_create_no_extra_pods(own_plane: ControlPlane, admin: httpx.Client,
                                                                        ns: str):
    cm = ControllerManager(own_plane, "cm-restart", controllers=CONTROLLERS, extra=["--kube-api-qps", "20"]).start()
    try:
        admin.post(f"/apis/apps/v1/namespaces/{ns}/replicasets", json=rs_body(150)).raise_for_status()
        # the apiserver goes away mid-creation: every watch breaks, informers re-list or resume
        wait_for(lambda: pod_count(admin, ns) >= 20, 30, 0.05, "creation under way")
        own_plane.stop("apiserver")
        own_plane.start_apiserver()
        own_plane.wait_ready()
        # and then the controller-manager dies mid-creation: a fresh one starts from a list
        wait_for(lambda: pod_count(admin, ns) >= 70, 60, 0.05, "creation under way again")
        cm.stop(signal.SIGKILL)
        cm.start()
        wait_for(lambda: pod_count(admin, ns) == 150, 60, what="150 pods")
        wait_for(lambda: get(admin, f"/apis/apps/v1/namespaces/{ns}/replicasets/web")["status"].get("replicas") == 150,
                 30, what="status caught up")
        # one pod too many would have been deleted again: no pod was ever deleted. (The creations
        # themselves cannot all be counted: a stopped apiserver loses its last second of audit lines.)
        assert audited(own_plane, ns, "delete", 200) == 0
        assert audited(own_plane, ns, "create", 201) <= 150
        assert pod_count(admin, ns) == 150
    finally:
        cm.stop()
