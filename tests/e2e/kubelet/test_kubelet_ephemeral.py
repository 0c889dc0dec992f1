"""Ephemeral containers on a real node: added to a running pod through the API and by `kubectl
debug`, started once in the pod's sandbox (in the target's pid namespace with --target), reported
in status.ephemeralContainerStatuses, reachable by logs/exec/attach, adopted by a restarted
kubelet, and stopped with the pod."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
from typing import Any

import httpx
import pytest

from kubelet import naming
from kubelet.cri import CRIClient, pb
from tests.conftest import KUBECTL, wait_for
from tests.e2e.kubelet.conftest import (
    BUSYBOX,
    NODE,
    container_status,
    create_pod,
    events_for,
    get_pod,
    pod_manifest,
    read_until,
    running,
    wait_pod,
)

pytestmark = pytest.mark.e2e

SMP = {"content-type": "application/strategic-merge-patch+json"}
#: kubectl debug leaves imagePullPolicy to the server, which makes it Always for :latest
DEBUG_IMAGE = (f"--image={BUSYBOX}", "--image-pull-policy=IfNotPresent")


def _add(api: httpx.Client, ns: str, pod: str, name: str, command: list[str], **fields: Any) -> None:
    ec = {"name": name, "image": BUSYBOX, "imagePullPolicy": "IfNotPresent", "command": command, **fields}
    r = api.patch(f"/api/v1/namespaces/{ns}/pods/{pod}/ephemeralcontainers",
                  json={"spec": {"ephemeralContainers": [ec]}}, headers=SMP)
    assert r.status_code == 200, r.text


def ephemeral_status(pod: dict[str, Any], name: str) -> dict[str, Any]:
    for s in (pod.get("status") or {}).get("ephemeralContainerStatuses") or []:
        if s["name"] == name:
            return s
    return {}


def _state(name: str, state: str):
    return lambda p: state in ephemeral_status(p, name).get("state", {})


def _terminated(name: str):
    return _state(name, "terminated")


async def _runtime_containers(endpoint: str, uid: str, name: str) -> list[pb.Container]:
    selector = {naming.POD_UID: uid, naming.CONTAINER_NAME: name}
    async with CRIClient(endpoint) as cri:
        return await cri.list_containers(pb.ContainerFilter(label_selector=selector))


def _start_target(api: httpx.Client, ns: str, name: str) -> dict[str, Any]:
    create_pod(api, ns, pod_manifest(name, [{"name": "main", "command": ["sleep", "3601"]}]))
    return wait_pod(api, ns, name, running)


def test_an_ephemeral_container_runs_once_reports_status_and_goes_with_the_pod(api, ns, kubelet, kcluster,
                                                                              containerd_node):
    pod = _start_target(api, ns, "target")
    uid, main_id = pod["metadata"]["uid"], container_status(pod, "main")["containerID"]
    # it waits for a file that only an exec into it creates
    _add(api, ns, "target", "dbg", ["sh", "-c", "echo started; until [ -e /tmp/done ]; do sleep 0.1; done; echo bye"])
    pod = wait_pod(api, ns, "target", _state("dbg", "running"), what="the debugger running")
    s = ephemeral_status(pod, "dbg")
    assert s["ready"] is False and s["restartCount"] == 0 and s["containerID"].startswith("containerd://")
    kcluster.kubectl("exec", "-n", ns, "target", "-c", "dbg", "--", "touch", "/tmp/done")
    pod = wait_pod(api, ns, "target", _terminated("dbg"), what="the debugger finished")
    terminated = ephemeral_status(pod, "dbg")["state"]["terminated"]
    assert (terminated["exitCode"], terminated["reason"]) == (0, "Completed")
    # the pod itself is untouched: still running, its container not restarted
    assert pod["status"]["phase"] == "Running" and container_status(pod, "main")["containerID"] == main_id
    assert kcluster.kubectl("logs", "-n", ns, "target", "-c", "dbg").stdout.split() == ["started", "bye"]
    started = [e for e in events_for(api, ns, "target") if e["reason"] == "Started"]
    assert any(e["involvedObject"].get("fieldPath") == "spec.ephemeralContainers{dbg}" for e in started)

    # another one makes the kubelet sync the pod again: the finished one is not started again
    _add(api, ns, "target", "again", ["true"])
    pod = wait_pod(api, ns, "target", _terminated("again"), what="the second debugger finished")
    assert ephemeral_status(pod, "dbg")["containerID"] == s["containerID"]
    assert len(asyncio.run(_runtime_containers(containerd_node.endpoint, uid, "dbg"))) == 1

    # deleting the pod stops and removes them with it
    _add(api, ns, "target", "long", ["sleep", "3600"])
    wait_pod(api, ns, "target", _state("long", "running"), what="a long-running debugger")
    assert api.delete(f"/api/v1/namespaces/{ns}/pods/target").status_code == 200
    wait_for(lambda: get_pod(api, ns, "target") is None, 60, 0.2, "the pod deleted")
    wait_for(lambda: not asyncio.run(_runtime_containers(containerd_node.endpoint, uid, "long")), 30, 0.2,
             "the debugger removed from the runtime")


def test_kubectl_debug_with_and_without_a_target(api, ns, kubelet, kcluster):
    _start_target(api, ns, "web")
    out = kcluster.kubectl("debug", "-n", ns, "web", *DEBUG_IMAGE, "-c", "dbg", "--target=main", "--",
                           "sh", "-c", "echo hi; ps")
    assert 'Targeting container "main"' in out.stdout
    wait_pod(api, ns, "web", _terminated("dbg"), what="kubectl debug's container finished")
    logs = kcluster.kubectl("logs", "-n", ns, "web", "-c", "dbg").stdout
    # in the target's pid namespace: its process is there, as pid 1
    assert logs.splitlines()[0] == "hi" and "sleep 3601" in logs
    assert any(line.split()[0] == "1" and line.endswith("sleep 3601") for line in logs.splitlines()[2:]), logs
    kcluster.kubectl("debug", "-n", ns, "web", *DEBUG_IMAGE, "-c", "alone", "--", "ps")
    wait_pod(api, ns, "web", _terminated("alone"), what="the untargeted debugger finished")
    assert "sleep 3601" not in kcluster.kubectl("logs", "-n", ns, "web", "-c", "alone").stdout
    # a target that is not a container of the pod is refused by the apiserver
    r = kcluster.kubectl("debug", "-n", ns, "web", *DEBUG_IMAGE, "-c", "nope", "--target=ghost", "--", "true",
                         check=False)
    assert r.returncode != 0 and 'spec.ephemeralContainers[2].targetContainerName: Not found: "ghost"' in r.stderr


def test_kubectl_debug_attaches_to_the_debugger(api, ns, kubelet, kcluster):
    _start_target(api, ns, "app")
    # -i: kubectl waits for the container to run, then attaches to its stdin and output. The
    # session stays open as a user's would: stdin reaching its end detaches (the runtime's attach).
    proc = subprocess.Popen(
        [KUBECTL, "--kubeconfig", str(kcluster.kubeconfig), "debug", "-n", ns, "app", "-i", *DEBUG_IMAGE,
         "-c", "shell", "--target=main", "--", "sh"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(b"echo attached-$((40+2)); ps\n")
        proc.stdin.flush()
        seen = read_until(proc.stdout, b"sleep 3601", 60)
        assert b"attached-42" in seen
        proc.stdin.write(b"exit 3\n")
        proc.stdin.close()
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    pod = wait_pod(api, ns, "app", _terminated("shell"), what="the attached shell finished")
    terminated = ephemeral_status(pod, "shell")["state"]["terminated"]
    assert (terminated["exitCode"], terminated["reason"]) == (3, "Error")


def test_a_restarted_kubelet_adopts_a_running_debugger(api, ns, kubelet, containerd_node):
    pod = _start_target(api, ns, "kept")
    uid = pod["metadata"]["uid"]
    _add(api, ns, "kept", "dbg", ["sleep", "3600"], targetContainerName="main")
    before = ephemeral_status(wait_pod(api, ns, "kept", _state("dbg", "running")), "dbg")
    kubelet.stop(signal.SIGKILL)
    kubelet.start()
    kubelet.wait_ready(api)
    # a new debugger proves the restarted kubelet has synced the pod since
    _add(api, ns, "kept", "later", ["true"])
    pod = wait_pod(api, ns, "kept", _terminated("later"), what="a debugger after the restart")
    after = ephemeral_status(pod, "dbg")
    assert after["containerID"] == before["containerID"] and "running" in after["state"]
    assert after["state"]["running"]["startedAt"] == before["state"]["running"]["startedAt"]
    assert len(asyncio.run(_runtime_containers(containerd_node.endpoint, uid, "dbg"))) == 1


def test_kubectl_debug_node_runs_a_pod_in_the_hosts_namespaces(api, ns, kubelet, kcluster):
    # kubectl makes a node-debugger pod: host network, PID and IPC namespaces, the host's / at /host
    out = kcluster.kubectl("debug", "-n", ns, f"node/{NODE}", *DEBUG_IMAGE, "--profile=general", "--",
                           "sh", "-c", "cat /host/proc/sys/kernel/hostname; ls /proc 2>/dev/null | grep -c '^[0-9]'").stdout
    name = next(w for w in out.split() if w.startswith("node-debugger-"))
    pod = wait_pod(api, ns, name, lambda p: (p.get("status") or {}).get("phase") in ("Succeeded", "Failed"),
                   what="the node debugger to finish")
    assert pod["status"]["phase"] == "Succeeded", pod["status"]
    spec = pod["spec"]
    assert spec["nodeName"] == NODE and spec["hostNetwork"] and spec["hostPID"] and spec["hostIPC"]
    # (ls's complaints about processes that exit while it lists /proc go to /dev/null: the host is busy)
    hostname, processes = kcluster.kubectl("logs", "-n", ns, name).stdout.split()
    assert hostname == socket.gethostname()  # the host's, read through /host
    assert int(processes) > 20  # the host's processes, not just its own
