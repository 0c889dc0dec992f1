"""Bad input never crashes the kubelet: missing images, bad commands, missing config objects."""

from __future__ import annotations

import pytest

from tests.conftest import wait_for
from tests.e2e.kubelet.conftest import (
    container_status,
    create_pod,
    events_for,
    pod_manifest,
    wait_pod,
)

pytestmark = pytest.mark.e2e


def _waiting(name: str, *reasons: str):
    def check(pod):
        waiting = container_status(pod, name).get("state", {}).get("waiting") or {}
        return waiting.get("reason") in reasons
    return check


def test_missing_image_goes_to_err_image_pull_then_image_pull_back_off(api, ns, kubelet):
    image = "localhost/minik8s/does-not-exist:v1"
    create_pod(api, ns, pod_manifest("ghost", [{"name": "main", "image": image, "imagePullPolicy": "IfNotPresent"}]))
    pod = wait_pod(api, ns, "ghost", _waiting("main", "ErrImagePull"), 30)
    message = container_status(pod, "main")["state"]["waiting"]["message"]
    assert f'Failed to pull image "{image}"' in message
    pod = wait_pod(api, ns, "ghost", _waiting("main", "ImagePullBackOff"), 30)
    assert f'Back-off pulling image "{image}"' in container_status(pod, "main")["state"]["waiting"]["message"]
    assert pod["status"]["phase"] == "Pending"
    # the events go out on their own queue: the status may be written before the BackOff event is
    wait_for(lambda: {"Pulling", "Failed", "BackOff"} <= {e["reason"] for e in events_for(api, ns, "ghost")},
             10, 0.1, "Pulling, Failed and BackOff events")
    assert kubelet.alive()


def test_never_pull_policy_without_the_image(api, ns, kubelet):
    create_pod(api, ns, pod_manifest("never", [{"name": "main", "image": "localhost/minik8s/absent:v9",
                                                "imagePullPolicy": "Never"}]))
    pod = wait_pod(api, ns, "never", _waiting("main", "ErrImageNeverPull"), 30)
    assert "is not present with pull policy of Never" in container_status(pod, "main")["state"]["waiting"]["message"]


def test_invalid_command_is_reported_and_backs_off(api, ns, kubelet):
    create_pod(api, ns, pod_manifest("badcmd", [{"name": "main", "command": ["/no/such/binary"]}]))
    reasons: set[str] = set()

    def observed(pod):
        s = container_status(pod, "main")
        waiting = s.get("state", {}).get("waiting") or {}
        if waiting.get("reason"):
            reasons.add(waiting["reason"])
        last = (s.get("lastState") or {}).get("terminated") or (s.get("state") or {}).get("terminated") or {}
        return last.get("reason") == "StartError" and s.get("restartCount", 0) >= 1

    pod = wait_pod(api, ns, "badcmd", observed, 40)
    terminated = (container_status(pod, "main").get("lastState") or {}).get("terminated") or \
        container_status(pod, "main")["state"]["terminated"]
    assert "no/such/binary" in terminated["message"]
    assert reasons & {"RunContainerError", "CrashLoopBackOff", "CreateContainerError"}
    assert kubelet.alive()


def test_missing_config_map_is_a_create_container_config_error(api, ns, kubelet):
    create_pod(api, ns, pod_manifest("noconf", [{"name": "main", "command": ["sleep", "3600"], "env": [
        {"name": "X", "valueFrom": {"configMapKeyRef": {"name": "absent", "key": "k"}}}]}]))
    pod = wait_pod(api, ns, "noconf", _waiting("main", "CreateContainerConfigError"), 30)
    assert container_status(pod, "main")["state"]["waiting"]["message"] == 'configmap "absent" not found'
    # creating it lets the pod start
    api.post(f"/api/v1/namespaces/{ns}/configmaps", json={"metadata": {"name": "absent"}, "data": {"k": "v"}})
    wait_pod(api, ns, "noconf", lambda p: p["status"]["phase"] == "Running", 30)


def test_missing_secret_volume_keeps_the_pod_creating(api, ns, kubelet):
    create_pod(api, ns, pod_manifest("nosecret", [{"name": "main", "command": ["sleep", "3600"],
                                                   "volumeMounts": [{"name": "s", "mountPath": "/s"}]}],
                                     volumes=[{"name": "s", "secret": {"secretName": "absent"}}]))
    # the FailedMount event may come before the first status write: wait for both
    pod = wait_pod(api, ns, "nosecret", lambda p: "state" in container_status(p, "main") and any(
        e["reason"] == "FailedMount" for e in events_for(api, ns, "nosecret")), 30)
    assert pod["status"]["phase"] == "Pending"
    assert container_status(pod, "main")["state"]["waiting"]["reason"] == "ContainerCreating"
    event = next(e for e in events_for(api, ns, "nosecret") if e["reason"] == "FailedMount")
    assert 'MountVolume.SetUp failed for volume "s" : secret "absent" not found' in event["message"]


def test_run_as_non_root_with_a_root_image(api, ns, kubelet):
    create_pod(api, ns, pod_manifest("rootless", [{"name": "main", "command": ["sleep", "3600"],
                                                   "securityContext": {"runAsNonRoot": True}}]))
    pod = wait_pod(api, ns, "rootless", _waiting("main", "CreateContainerConfigError"), 30)
    assert "runAsNonRoot and image will run as root" in container_status(pod, "main")["state"]["waiting"]["message"]
