"""The kubelet refusing pods (upstream's admit handlers) and ending pods at spec.activeDeadlineSeconds,
on a real node."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from kubelet.cri import CRIClient, pb
from tests.conftest import wait_for
from tests.e2e.kubelet.conftest import (
    container_status,
    create_pod,
    events_for,
    pod_manifest,
    running,
    wait_pod,
)

pytestmark = pytest.mark.e2e

DEADLINE_MESSAGE = "Pod was active on the node longer than the specified deadline"


def _failed(pod: dict) -> bool:
    return (pod.get("status") or {}).get("phase") == "Failed"


def _seconds(ts: str) -> float:
    return dt.datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


async def _running_containers(endpoint: str, uid: str) -> list:
    async with CRIClient(endpoint) as cri:
        return await cri.list_containers(pb.ContainerFilter(
            label_selector={"io.kubernetes.pod.uid": uid}, state=pb.ContainerStateValue(state=pb.CONTAINER_RUNNING)))


def _assert_deadline_exceeded(api, ns: str, name: str, pod: dict) -> None:
    status = pod["status"]
    assert status["reason"] == "DeadlineExceeded" and status["message"] == DEADLINE_MESSAGE
    for s in status["containerStatuses"]:
        assert "terminated" in s["state"], s
        assert not s["ready"]
    events = events_for(api, ns, name)
    assert any(e["reason"] == "DeadlineExceeded" and e["message"] == DEADLINE_MESSAGE for e in events), events


def test_a_pod_is_failed_and_stopped_at_its_active_deadline(api, ns, kubelet, containerd_node):
    created = create_pod(api, ns, pod_manifest("short", [
        {"name": "main", "command": ["sleep", "3600"]},
        {"name": "side", "command": ["sleep", "3600"]},
    ], activeDeadlineSeconds=3))
    uid = created["metadata"]["uid"]
    # the sync-frequency of the test kubelet is 10 s: a failure well before it comes from the deadline's own wake-up
    pod = wait_pod(api, ns, "short", _failed, 30, "the pod to fail at its deadline")
    _assert_deadline_exceeded(api, ns, "short", pod)
    started = _seconds(pod["status"]["startTime"])
    for name in ("main", "side"):
        finished = _seconds(container_status(pod, name)["state"]["terminated"]["finishedAt"])
        # not before the deadline; within it, the grace period (2 s) and some slack
        assert 3 <= finished - started <= 9, (name, pod["status"])
    assert container_status(pod, "main")["restartCount"] == 0
    assert not asyncio.run(_running_containers(containerd_node.endpoint, uid))


def test_a_lowered_deadline_ends_a_running_pod(api, ns, kubelet, containerd_node):
    created = create_pod(api, ns, pod_manifest("lowered", [{"name": "main", "command": ["sleep", "3600"]}],
                                                activeDeadlineSeconds=3600))
    uid = created["metadata"]["uid"]
    wait_pod(api, ns, "lowered", running, 60, "the pod to run")
    r = api.patch(f"/api/v1/namespaces/{ns}/pods/lowered", json={"spec": {"activeDeadlineSeconds": 1}},
                  headers={"Content-Type": "application/merge-patch+json"})
    assert r.status_code == 200, r.text
    pod = wait_pod(api, ns, "lowered", _failed, 30, "the pod to fail at its lowered deadline")
    _assert_deadline_exceeded(api, ns, "lowered", pod)
    assert not asyncio.run(_running_containers(containerd_node.endpoint, uid))


def _assert_rejected(api, ns: str, name: str, reason: str, message: str) -> None:
    pod = wait_pod(api, ns, name, _failed, 30, f"the kubelet to reject {name}")
    status = pod["status"]
    assert status["reason"] == reason, status
    assert status["message"] == f"Pod was rejected: {message}", status
    # the pod never ran
    assert not any("running" in s.get("state", {}) or "terminated" in s.get("state", {})
                   for s in status.get("containerStatuses") or []), status
    wait_for(lambda: any(e["reason"] == reason and e["type"] == "Warning" and e["message"] == message
                         for e in events_for(api, ns, name)), 15, 0.2, f"the {reason} event")


def test_a_pod_bound_to_a_node_its_node_selector_does_not_match_is_rejected(api, ns, kubelet):
    create_pod(api, ns, pod_manifest("elsewhere", [{"name": "main", "command": ["sleep", "3600"]}],
                                     nodeSelector={"disktype": "does-not-exist"}))
    _assert_rejected(api, ns, "elsewhere", "NodeAffinity",
                     "Predicate NodeAffinity failed: node(s) didn't match Pod's node affinity/selector")


def test_an_unsafe_sysctl_is_rejected_and_a_safe_one_is_set(api, ns, kubelet):
    create_pod(api, ns, pod_manifest("unsafe", [{"name": "main", "command": ["sleep", "3600"]}],
                                     securityContext={"sysctls": [{"name": "kernel.msgmax", "value": "65536"}]}))
    _assert_rejected(api, ns, "unsafe", "SysctlForbidden", 'forbidden sysctl: "kernel.msgmax" not allowlisted')

    create_pod(api, ns, pod_manifest("safe", [{"name": "main", "command": [
        "sh", "-c", 'test "$(cat /proc/sys/net/ipv4/ip_unprivileged_port_start)" = 81']}],
        restartPolicy="Never", securityContext={"sysctls": [{"name": "net.ipv4.ip_unprivileged_port_start",
                                                              "value": "81"}]}))
    pod = wait_pod(api, ns, "safe", lambda p: (p.get("status") or {}).get("phase") in ("Succeeded", "Failed"), 60,
                   "the safe-sysctl pod to finish")
    assert pod["status"]["phase"] == "Succeeded", pod["status"]


def test_a_pod_asking_for_another_os_is_rejected(api, ns, kubelet):
    create_pod(api, ns, pod_manifest("windows", [{"name": "main", "command": ["sleep", "3600"]}],
                                     os={"name": "windows"}))
    _assert_rejected(api, ns, "windows", "PodOSNotSupported", "Failed to admit pod as the OS field doesn't match node OS")
