"""Sidecar containers (init containers with restartPolicy Always) on a real node: they start in
the init sequence and keep running beside the regular containers, are restarted whatever the
pod's restart policy, do not keep a finished pod alive, and stop after the regular containers."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import wait_for
from tests.e2e.kubelet.conftest import (
    BUSYBOX,
    condition,
    container_status,
    create_pod,
    events_for,
    get_pod,
    pod_manifest,
    wait_pod,
)

pytestmark = pytest.mark.e2e

TABLE = {"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"}


def _sidecar(name: str, script: str, **extra) -> dict:
    return {"name": name, "image": BUSYBOX, "imagePullPolicy": "IfNotPresent", "restartPolicy": "Always",
            "command": ["sh", "-c", script], "volumeMounts": [{"name": "shared", "mountPath": "/shared"}], **extra}


def _volumes(path: Path) -> list[dict]:
    return [{"name": "shared", "hostPath": {"path": str(path), "type": "Directory"}}]


def _phase(pod: dict) -> str:
    return (pod.get("status") or {}).get("phase", "")


def test_a_sidecar_runs_beside_a_job_like_pod_and_stops_when_it_is_done(api, ns, kubelet, host_dir):
    # the sidecar must be up (its startup probe) before the next init container runs; that one
    # checks it is, and the main container finishes on its own while the sidecar would run forever
    create_pod(api, ns, pod_manifest("job", [{
        "name": "main", "command": ["sh", "-c", "test -f /shared/up && until test -f /shared/go; do sleep 0.1; done"],
        "volumeMounts": [{"name": "shared", "mountPath": "/shared"}],
    }], restartPolicy="Never", initContainers=[
        _sidecar("logger", "trap 'echo stopped > /shared/logger-stopped; exit 0' TERM; "
                           "sleep 1; touch /shared/up; while true; do sleep 0.1; done",
                 startupProbe={"exec": {"command": ["test", "-f", "/shared/up"]}, "periodSeconds": 1},
                 readinessProbe={"exec": {"command": ["true"]}, "periodSeconds": 1}),
        {"name": "check", "image": BUSYBOX, "imagePullPolicy": "IfNotPresent", "command": ["test", "-f", "/shared/up"],
         "volumeMounts": [{"name": "shared", "mountPath": "/shared"}]},
    ], volumes=_volumes(host_dir)))

    pod = wait_pod(api, ns, "job", lambda p: _phase(p) == "Running" and condition(p, "Ready") == "True", 60)
    logger = container_status(pod, "logger", init=True)
    assert "running" in logger["state"] and logger["started"] is True and logger["ready"] is True
    assert container_status(pod, "check", init=True)["state"]["terminated"]["exitCode"] == 0
    assert condition(pod, "Initialized") == "True"
    row = api.get(f"/api/v1/namespaces/{ns}/pods/job", headers=TABLE).json()["rows"][0]["cells"]
    assert row[1:3] == ["2/2", "Running"]  # the sidecar counts as one of the pod's containers

    (host_dir / "go").touch()
    pod = wait_pod(api, ns, "job", lambda p: _phase(p) == "Succeeded", 30)
    # the sidecar was stopped (SIGTERM, its trap ran) and does not count against the pod
    assert (host_dir / "logger-stopped").read_text() == "stopped\n"
    logger = container_status(pod, "logger", init=True)
    assert logger["state"]["terminated"]["exitCode"] == 0 and logger["restartCount"] == 0
    assert container_status(pod, "main")["state"]["terminated"]["reason"] == "Completed"
    initialized = next(c for c in pod["status"]["conditions"] if c["type"] == "Initialized")
    assert initialized["status"] == "True" and initialized["reason"] == "PodCompleted"
    killing = [e for e in events_for(api, ns, "job") if e["reason"] == "Killing"]
    assert [e["involvedObject"]["fieldPath"] for e in killing] == ["spec.initContainers{logger}"]
    # and it stays stopped: nothing brings it back in a finished pod
    again = get_pod(api, ns, "job")
    assert container_status(again, "logger", init=True)["restartCount"] == 0


def test_a_crashing_sidecar_is_restarted_while_the_pod_keeps_running(api, ns, kubelet):
    create_pod(api, ns, pod_manifest("crashy", [{"name": "main", "command": ["sleep", "3600"]}],
                                     restartPolicy="Never", initContainers=[
        {"name": "flaky", "image": BUSYBOX, "imagePullPolicy": "IfNotPresent", "restartPolicy": "Always",
         "command": ["sh", "-c", "sleep 1; exit 3"]},
    ]))
    pod = wait_pod(api, ns, "crashy", lambda p: container_status(p, "flaky", init=True).get("restartCount", 0) >= 1
                   and "running" in container_status(p, "main").get("state", {}), 60)
    flaky = container_status(pod, "flaky", init=True)
    assert flaky["lastState"]["terminated"]["exitCode"] == 3
    # restartPolicy Never is the regular containers' policy; the pod is initialized and running
    assert _phase(pod) == "Running" and condition(pod, "Initialized") == "True"
    assert container_status(pod, "main")["restartCount"] == 0


def test_sidecars_stop_after_the_regular_containers_in_reverse_order(api, ns, kubelet, host_dir):
    def trapped(name: str, delay: str = "") -> str:
        # each writes its name when SIGTERM comes; the main container takes a second to go
        return f"trap '{delay}echo {name} >> /shared/order; exit 0' TERM; while true; do sleep 0.1; done"

    create_pod(api, ns, pod_manifest("ordered", [{
        "name": "main", "command": ["sh", "-c", trapped("main", "sleep 1; ")],
        "volumeMounts": [{"name": "shared", "mountPath": "/shared"}],
    }], terminationGracePeriodSeconds=15, initContainers=[
        _sidecar("first", trapped("first")),
        _sidecar("second", trapped("second")),
    ], volumes=_volumes(host_dir)))
    wait_pod(api, ns, "ordered", lambda p: _phase(p) == "Running" and condition(p, "Ready") == "True", 60)
    r = api.delete(f"/api/v1/namespaces/{ns}/pods/ordered")
    assert r.status_code == 200, r.text
    wait_for(lambda: get_pod(api, ns, "ordered") is None, 40, 0.2, "the pod object to go")
    assert (host_dir / "order").read_text().split() == ["main", "second", "first"]


def test_a_sidecar_that_exits_with_the_main_container_is_not_restarted(api, ns, kubelet, host_dir):
    # both stop on their own when told; the kubelet must see a finished pod, not a sidecar to restart
    until_go = "until test -f /shared/go; do sleep 0.1; done"
    create_pod(api, ns, pod_manifest("together", [{
        "name": "main", "command": ["sh", "-c", until_go],
        "volumeMounts": [{"name": "shared", "mountPath": "/shared"}],
    }], restartPolicy="Never", initContainers=[_sidecar("shipper", until_go)], volumes=_volumes(host_dir)))
    wait_pod(api, ns, "together", lambda p: _phase(p) == "Running", 60)
    (host_dir / "go").touch()
    pod = wait_pod(api, ns, "together", lambda p: _phase(p) == "Succeeded", 30)
    assert container_status(pod, "shipper", init=True)["restartCount"] == 0
    assert not [e for e in events_for(api, ns, "together") if e["reason"] == "Started"
                and e["involvedObject"].get("fieldPath") == "spec.initContainers{shipper}"][1:]
