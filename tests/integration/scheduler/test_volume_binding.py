"""VolumeBinding against a real apiserver: the scheduler process with its own identity
(system:kube-scheduler + system:volume-scheduler), Node objects only, and the test itself
playing the PV binder / provisioner (no controller-manager volume controllers run here)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ControlPlane
from tests.integration.scheduler.conftest import (
    HOSTNAME,
    Env,
    SchedulerProcess,
    Storage,
    condition,
    pod_with_claim,
    wait_until,
)

SELECTED_NODE = "volume.kubernetes.io/selected-node"
BIND_TIMEOUT = 4  # seconds a pod waits in PreBind for its claims here (upstream: 600)


@pytest.fixture(scope="module")
def scheduler(control_plane: ControlPlane, kubeconfigs: dict[str, Path],
              scheduler_name: str) -> Iterator[SchedulerProcess]:
    """This module's scheduler: a short bind timeout, so a claim never bound fails the pod quickly."""
    p = SchedulerProcess(kubeconfigs["scheduler"], control_plane.cfg.dir / "logs", scheduler_name,
                         "--leader-elect=false", "--pod-max-backoff-seconds", "2",
                         "--bind-timeout-seconds", str(BIND_TIMEOUT))
    try:
        p.wait_ready()
        yield p
    finally:
        p.stop()


def test_an_unbound_immediate_claim_keeps_the_pod_pending_until_the_binder_binds_it(
        scheduler: SchedulerProcess, env: Env, storage: Storage) -> None:
    env.node("a")
    b = env.node("b")
    cls = storage.storage_class("now", "Immediate")
    claim = storage.claim("data", cls)
    pod_with_claim(env, "p", "data")
    ev = env.wait_event("p", "FailedScheduling")
    assert ev["message"].startswith("0/2 nodes are available: pod has unbound immediate PersistentVolumeClaims."), \
        ev["message"]
    cond = wait_until(lambda: condition(env, "p"), what="PodScheduled condition")
    assert (cond["status"], cond["reason"]) == ("False", "Unschedulable")
    assert env.node_of("p") is None
    # the binder binds it to a volume on b: the claim's update requeues the pod at once
    pv = storage.pv("vol", cls, b, claim=claim)
    storage.bind_claim("data", pv)
    assert env.wait_bound("p", timeout=15)["p"] == b


def test_a_bound_claims_volume_pins_the_pod_to_its_node(scheduler: SchedulerProcess, env: Env,
                                                        storage: Storage) -> None:
    a = env.node("a")
    b = env.node("b")
    cls = storage.storage_class("local", "WaitForFirstConsumer")
    claim = storage.claim("data", cls)
    pv = storage.pv("on-a", cls, a, claim=claim)
    storage.bind_claim("data", pv)
    pod_with_claim(env, "p", "data")
    assert env.wait_bound("p")["p"] == a
    pod_with_claim(env, "wants-b", "data", nodeSelector={HOSTNAME: b})
    ev = env.wait_event("wants-b", "FailedScheduling")
    assert ev["message"].startswith("0/2 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, "
                                    "1 node(s) had volume node affinity conflict."), ev["message"]


def test_a_static_volume_is_pre_bound_for_a_wait_for_first_consumer_claim(scheduler: SchedulerProcess, env: Env,
                                                                          storage: Storage) -> None:
    env.node("a")
    b = env.node("b")
    cls = storage.storage_class("static", "WaitForFirstConsumer")
    claim = storage.claim("data", cls)
    pv = storage.pv("on-b", cls, b, size="2Gi")
    pod_with_claim(env, "p", "data")
    ref = wait_until(lambda: storage.get_pv(pv)["spec"].get("claimRef"), what="the PV pre-bound by the scheduler")
    assert (ref["namespace"], ref["name"], ref["uid"], ref["kind"]) == (env.ns, "data", claim["metadata"]["uid"],
                                                                        "PersistentVolumeClaim")
    assert storage.get_pv(pv)["metadata"]["annotations"]["pv.kubernetes.io/bound-by-controller"] == "yes"
    assert env.node_of("p") is None  # waiting for the binder
    storage.bind_claim("data", pv)
    assert env.wait_bound("p")["p"] == b


def test_dynamic_provisioning_waits_for_the_binder_and_times_out_without_it(scheduler: SchedulerProcess, env: Env,
                                                                           storage: Storage) -> None:
    env.node("a")
    env.node("b")
    cls = storage.storage_class("fast", "WaitForFirstConsumer", provisioner="example.com/hostpath")
    claim = storage.claim("data", cls)
    pod_with_claim(env, "p", "data")
    node = wait_until(lambda: (storage.get_claim("data")["metadata"].get("annotations") or {}).get(SELECTED_NODE),
                      what="the selected-node annotation")
    assert node in env.nodes and env.node_of("p") is None
    # play the provisioner (a PV on that node, pre-bound to the claim), then the binder
    pv = storage.pv("provisioned", cls, node, claim=claim)
    assert env.node_of("p") is None
    storage.bind_claim("data", pv)
    assert env.wait_bound("p")["p"] == node
    assert env.wait_event("p", "Scheduled")["message"] == f"Successfully assigned {env.ns}/p to {node}"

    # nobody binds this one: PreBind gives up after the bind timeout and the pod is retried
    late = storage.claim("late", cls)
    pod_with_claim(env, "q", "late")
    ev = env.wait_event("q", "FailedScheduling", timeout=BIND_TIMEOUT + 15)
    assert ev["message"] == 'running PreBind plugin "VolumeBinding": binding volumes: context deadline exceeded'
    cond = wait_until(lambda: condition(env, "q"), what="PodScheduled condition")
    assert (cond["status"], cond["reason"], cond["message"]) == ("False", "SchedulerError", ev["message"])
    assert env.node_of("q") is None
    # the retry keeps to the node already selected for the claim; once bound, the pod follows
    chosen = storage.get_claim("late")["metadata"]["annotations"][SELECTED_NODE]
    pv = storage.pv("late", cls, chosen, claim=late)
    storage.bind_claim("late", pv)
    assert env.wait_bound("q", timeout=BIND_TIMEOUT + 15)["q"] == chosen
