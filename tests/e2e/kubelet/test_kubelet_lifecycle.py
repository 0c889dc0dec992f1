"""Container lifecycle on a real node: restart policies and CrashLoopBackOff, OOM kills, probes,
graceful deletion with preStop, and a kubelet killed with -9 that adopts what runs."""

from __future__ import annotations

import asyncio
import signal
import tempfile
import time
from pathlib import Path

import pytest

from kubelet.cri import CRIClient, pb
from tests.conftest import wait_for
from tests.e2e.kubelet.conftest import (
    condition,
    container_status,
    create_pod,
    events_for,
    get_pod,
    pod_manifest,
    running,
    wait_pod,
)

pytestmark = pytest.mark.e2e


def _phase(phase: str):
    return lambda p: (p.get("status") or {}).get("phase") == phase


def test_crash_loop_backoff_timings_and_restart_count(api, ns, kubelet):
    create_pod(api, ns, pod_manifest("crasher", [{"name": "main", "command": ["sh", "-c", "exit 1"]}]))
    seen: dict[int, float] = {}
    reasons: set[str] = set()
    started = time.monotonic()

    def progress():
        pod = get_pod(api, ns, "crasher")
        s = container_status(pod, "main") if pod else {}
        count = s.get("restartCount", 0)
        seen.setdefault(count, time.monotonic() - started)
        waiting = (s.get("state") or {}).get("waiting") or {}
        if waiting.get("reason"):
            reasons.add(waiting["reason"])
            if waiting["reason"] == "CrashLoopBackOff":
                assert "back-off" in waiting["message"] and "restarting failed container=main" in waiting["message"]
        return count >= 3

    wait_for(progress, 60, 0.1, "three restarts")
    pod = get_pod(api, ns, "crasher")
    assert pod["status"]["phase"] == "Running"  # restartPolicy Always: the pod keeps running
    last = container_status(pod, "main")["lastState"]["terminated"]
    assert last["exitCode"] == 1 and last["reason"] == "Error"
    assert "CrashLoopBackOff" in reasons
    # first restart at once, then 10 s, then 20 s (doubling from upstream's 10 s)
    assert seen[1] < 5, seen
    assert 8 <= seen[2] - seen[1] <= 14, seen
    assert 17 <= seen[3] - seen[2] <= 25, seen
    assert any(e["reason"] == "BackOff" for e in events_for(api, ns, "crasher"))


def test_restart_policies_on_failure_and_never(api, ns, kubelet):
    create_pod(api, ns, pod_manifest("ok-once", [{"name": "main", "command": ["true"]}], restartPolicy="OnFailure"))
    create_pod(api, ns, pod_manifest("retry", [{"name": "main", "command": ["sh", "-c", "exit 2"]}],
                                     restartPolicy="OnFailure"))
    create_pod(api, ns, pod_manifest("fail-never", [{"name": "main", "command": ["sh", "-c", "exit 3"]}],
                                     restartPolicy="Never"))
    create_pod(api, ns, pod_manifest("ok-never", [{"name": "main", "command": ["true"]}], restartPolicy="Never"))

    ok = wait_pod(api, ns, "ok-once", _phase("Succeeded"))
    s = container_status(ok, "main")
    assert s["restartCount"] == 0 and s["state"]["terminated"]["reason"] == "Completed"
    assert condition(ok, "Ready") == "False"

    failed = wait_pod(api, ns, "fail-never", _phase("Failed"))
    s = container_status(failed, "main")
    assert s["restartCount"] == 0
    assert s["state"]["terminated"]["exitCode"] == 3 and s["state"]["terminated"]["reason"] == "Error"

    done = wait_pod(api, ns, "ok-never", _phase("Succeeded"))
    assert container_status(done, "main")["state"]["terminated"]["exitCode"] == 0

    retried = wait_pod(api, ns, "retry", lambda p: container_status(p, "main").get("restartCount", 0) >= 1)
    assert retried["status"]["phase"] == "Running"
    # a finished pod's sandbox is stopped but its containers (and logs) stay until it is deleted
    time.sleep(1)
    assert get_pod(api, ns, "ok-once")["status"]["phase"] == "Succeeded"


def test_oom_killed_is_reported(api, ns, kubelet):
    create_pod(api, ns, pod_manifest("hog", [{
        "name": "main",
        "command": ["dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"],
        "resources": {"limits": {"memory": "16Mi", "cpu": "200m"}},
    }], restartPolicy="Never"))
    pod = wait_pod(api, ns, "hog", _phase("Failed"))
    terminated = container_status(pod, "main")["state"]["terminated"]
    assert terminated["reason"] == "OOMKilled"
    assert terminated["exitCode"] == 137
    assert pod["status"]["qosClass"] == "Guaranteed"


def test_liveness_failure_restarts_the_container(api, ns, kubelet):
    create_pod(api, ns, pod_manifest("sick", [{
        "name": "main",
        "command": ["sh", "-c", "touch /tmp/healthy; sleep 3; rm /tmp/healthy; sleep 3600"],
        "livenessProbe": {"exec": {"command": ["cat", "/tmp/healthy"]}, "periodSeconds": 1, "failureThreshold": 2,
                          "terminationGracePeriodSeconds": 2},
    }]))
    pod = wait_pod(api, ns, "sick", running)
    first_id = container_status(pod, "main")["containerID"]
    pod = wait_pod(api, ns, "sick", lambda p: container_status(p, "main").get("restartCount", 0) >= 1
                   and "running" in container_status(p, "main").get("state", {}), 40)
    s = container_status(pod, "main")
    assert s["containerID"] != first_id
    assert s["lastState"]["terminated"]["containerID"] == first_id
    events = events_for(api, ns, "sick")
    assert any(e["reason"] == "Unhealthy" and "Liveness probe failed" in e["message"] for e in events)
    assert any(e["reason"] == "Killing" and "failed liveness probe, will be restarted" in e["message"] for e in events)


def test_readiness_flips_ready(api, ns, kubelet, kcluster):
    create_pod(api, ns, pod_manifest("gated", [{
        "name": "main", "command": ["sleep", "3600"],
        "readinessProbe": {"exec": {"command": ["cat", "/tmp/ready"]}, "periodSeconds": 1},
    }]))
    pod = wait_pod(api, ns, "gated", running)
    assert condition(pod, "Ready") == "False"
    assert container_status(pod, "main")["ready"] is False
    kcluster.kubectl("exec", "-n", ns, "gated", "--", "touch", "/tmp/ready")
    pod = wait_pod(api, ns, "gated", lambda p: condition(p, "Ready") == "True", 15)
    assert container_status(pod, "main")["ready"] is True
    kcluster.kubectl("exec", "-n", ns, "gated", "--", "rm", "/tmp/ready")
    pod = wait_pod(api, ns, "gated", lambda p: condition(p, "Ready") == "False", 15)
    assert container_status(pod, "main")["restartCount"] == 0  # readiness never restarts anything


def test_startup_probe_holds_the_other_probes(api, ns, kubelet, kcluster):
    create_pod(api, ns, pod_manifest("slow", [{
        "name": "main", "command": ["sh", "-c", "sleep 3; touch /tmp/started; sleep 3600"],
        "startupProbe": {"exec": {"command": ["cat", "/tmp/started"]}, "periodSeconds": 1, "failureThreshold": 30},
        "livenessProbe": {"exec": {"command": ["cat", "/tmp/started"]}, "periodSeconds": 1},
    }]))
    pod = wait_pod(api, ns, "slow", running)
    assert container_status(pod, "main")["started"] is False
    pod = wait_pod(api, ns, "slow", lambda p: container_status(p, "main").get("started") is True
                   and condition(p, "Ready") == "True", 20)
    assert container_status(pod, "main")["restartCount"] == 0


def test_graceful_deletion_honours_the_grace_period_and_pre_stop(api, ns, kubelet):
    marker_dir = Path(tempfile.mkdtemp(prefix="mk8s-prestop-"))
    try:
        create_pod(api, ns, pod_manifest("slowstop", [{
            "name": "main",
            # PID 1 ignores SIGTERM: the kubelet must wait out the grace period, then SIGKILL
            "command": ["sleep", "3600"],
            "lifecycle": {"preStop": {"exec": {"command": ["sh", "-c", "date +%s > /marker/prestop"]}}},
            "volumeMounts": [{"name": "marker", "mountPath": "/marker"}],
        }], terminationGracePeriodSeconds=4,
            volumes=[{"name": "marker", "hostPath": {"path": str(marker_dir), "type": "Directory"}}]))
        wait_pod(api, ns, "slowstop", running)
        started = time.monotonic()
        r = api.delete(f"/api/v1/namespaces/{ns}/pods/slowstop")
        assert r.status_code == 200, r.text
        assert r.json()["metadata"]["deletionGracePeriodSeconds"] == 4
        # the API object stays (with its deletionTimestamp) until the kubelet has stopped everything
        assert get_pod(api, ns, "slowstop")["metadata"]["deletionTimestamp"]
        wait_for(lambda: get_pod(api, ns, "slowstop") is None, 30, 0.1, "the pod object to go")
        elapsed = time.monotonic() - started
        assert 3.5 <= elapsed <= 12, elapsed
        assert (marker_dir / "prestop").read_text().strip().isdigit()
        assert any(e["reason"] == "Killing" for e in events_for(api, ns, "slowstop"))
    finally:
        for f in marker_dir.iterdir():
            f.unlink()
        marker_dir.rmdir()


def test_kubelet_killed_with_sigkill_adopts_running_containers(api, ns, kubelet, containerd_node):
    create_pod(api, ns, pod_manifest("steady", [{"name": "main", "command": ["sleep", "3600"],
                                                 "readinessProbe": {"exec": {"command": ["true"]},
                                                                    "periodSeconds": 1}}]))
    create_pod(api, ns, pod_manifest("doomed", [{"name": "main", "command": ["sleep", "3600"]}]))
    steady = wait_pod(api, ns, "steady", lambda p: running(p) and condition(p, "Ready") == "True")
    doomed = wait_pod(api, ns, "doomed", running)
    before = container_status(steady, "main")
    resource_version = steady["metadata"]["resourceVersion"]

    kubelet.stop(signal.SIGKILL)
    # while the kubelet is down, one pod is removed from the API for good
    r = api.delete(f"/api/v1/namespaces/{ns}/pods/doomed", params={"gracePeriodSeconds": "0"})
    assert r.status_code == 200, r.text
    kubelet.start()
    kubelet.wait_ready(api)

    # nothing was restarted and nothing changed in the status of the surviving pod
    time.sleep(3)
    after_pod = get_pod(api, ns, "steady")
    after = container_status(after_pod, "main")
    assert after["containerID"] == before["containerID"]
    assert after["restartCount"] == 0
    assert after["state"]["running"]["startedAt"] == before["state"]["running"]["startedAt"]
    assert condition(after_pod, "Ready") == "True"
    assert after_pod["metadata"]["resourceVersion"] == resource_version, "the status was rewritten needlessly"
    # the deleted pod's sandbox, containers and volumes are cleaned up
    doomed_uid = doomed["metadata"]["uid"]
    wait_for(lambda: not asyncio.run(_runtime_pod(containerd_node.endpoint, doomed_uid)), 30, 0.2,
             "the orphaned pod's sandbox and containers to go")
    wait_for(lambda: not (kubelet.root / "kubelet" / "pods" / doomed_uid).exists(), 30, 0.2,
             "the orphaned pod's volumes to go")
    assert asyncio.run(_runtime_pod(containerd_node.endpoint, steady["metadata"]["uid"]))


async def _runtime_pod(endpoint: str, uid: str) -> list:
    """The sandboxes and containers CRI has for a pod uid."""
    selector = {"io.kubernetes.pod.uid": uid}
    async with CRIClient(endpoint) as cri:
        return (await cri.list_pod_sandbox(pb.PodSandboxFilter(label_selector=selector))
                + await cri.list_containers(pb.ContainerFilter(label_selector=selector)))
