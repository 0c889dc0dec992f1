"""Containers as configured: security contexts, pod cgroups per QoS class, httpGet/tcpSocket
probes, postStart and httpGet preStop hooks."""

from __future__ import annotations

import http.server
import threading
from pathlib import Path

import pytest

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

CGROUP_FS = Path("/sys/fs/cgroup")


def test_security_context(api, ns, kubelet, kcluster):
    create_pod(api, ns, pod_manifest("locked", [{
        "name": "main", "command": ["sleep", "3600"],
        "securityContext": {"runAsUser": 1000, "runAsGroup": 3000, "readOnlyRootFilesystem": True,
                            "allowPrivilegeEscalation": False,
                            "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}},
        "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}],
    }], securityContext={"supplementalGroups": [4000], "fsGroup": 5000},
        volumes=[{"name": "scratch", "emptyDir": {}}]))
    wait_pod(api, ns, "locked", running)

    def sh(cmd: str, check: bool = True):
        return kcluster.kubectl("exec", "-n", ns, "locked", "--", "sh", "-c", cmd, check=check)

    assert sh("id -u").stdout.strip() == "1000"
    assert sh("id -g").stdout.strip() == "3000"
    groups = sh("id -G").stdout.split()
    assert "4000" in groups and "5000" in groups
    assert "Read-only file system" in sh("touch /newfile", check=False).stderr
    sh("touch /scratch/ok")  # the emptyDir is group-writable for the fsGroup
    status = sh("cat /proc/self/status").stdout
    caps = {line.split(":")[0]: line.split(":")[1].strip() for line in status.splitlines() if line.startswith("Cap")}
    assert int(caps["CapBnd"], 16) == 1 << 10  # CAP_NET_BIND_SERVICE only
    assert "NoNewPrivs:\t1" in status


def test_pod_cgroups_follow_qos_and_go_away_with_the_pod(api, ns, kubelet):
    root = CGROUP_FS / "memory" / kubelet.containerd.cgroup_root / "kubelet" / "kubepods"
    create_pod(api, ns, pod_manifest("guaranteed", [{"name": "main", "command": ["sleep", "3600"], "resources": {
        "limits": {"cpu": "250m", "memory": "48Mi"}}}]))
    create_pod(api, ns, pod_manifest("burstable", [{"name": "main", "command": ["sleep", "3600"], "resources": {
        "requests": {"cpu": "100m", "memory": "16Mi"}}}]))
    create_pod(api, ns, pod_manifest("besteffort", [{"name": "main", "command": ["sleep", "3600"]}]))
    uids = {name: wait_pod(api, ns, name, running)["metadata"]["uid"]
            for name in ("guaranteed", "burstable", "besteffort")}
    guaranteed = root / f"pod{uids['guaranteed']}"
    assert int((guaranteed / "memory.limit_in_bytes").read_text()) == 48 << 20
    cpu = CGROUP_FS / "cpu" / kubelet.containerd.cgroup_root / "kubelet" / "kubepods" / f"pod{uids['guaranteed']}"
    assert int((cpu / "cpu.cfs_quota_us").read_text()) == 25000
    assert int((cpu / "cpu.shares").read_text()) == 256
    assert (root / "burstable" / f"pod{uids['burstable']}").is_dir()
    besteffort_cpu = CGROUP_FS / "cpu" / kubelet.containerd.cgroup_root / "kubelet" / "kubepods" / "besteffort"
    assert int((besteffort_cpu / f"pod{uids['besteffort']}" / "cpu.shares").read_text()) == 2
    # the container's own cgroup lies inside the pod's
    assert any(p.is_dir() for p in guaranteed.iterdir())
    for name in uids:
        api.delete(f"/api/v1/namespaces/{ns}/pods/{name}")
    wait_for(lambda: not guaranteed.exists() and not (root / "burstable" / f"pod{uids['burstable']}").exists(),
             60, 0.3, "the pod cgroups to be removed")


def test_http_and_tcp_probes(api, ns, kubelet, kcluster):
    create_pod(api, ns, pod_manifest("web", [{
        "name": "main",
        "command": ["sh", "-c", "mkdir -p /www && exec httpd -f -p 8080 -h /www"],
        "ports": [{"name": "http", "containerPort": 8080}],
        "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 1},
        "livenessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1},
    }]))
    pod = wait_pod(api, ns, "web", running)
    assert condition(pod, "Ready") == "False"  # /healthz is a 404 for now
    wait_for(lambda: any("Readiness probe failed: HTTP probe failed with statuscode: 404" in e["message"]
                         for e in events_for(api, ns, "web")), 15, 0.3, "the Unhealthy event")
    kcluster.kubectl("exec", "-n", ns, "web", "--", "sh", "-c", "echo ok > /www/healthz")
    wait_pod(api, ns, "web", lambda p: condition(p, "Ready") == "True", 15)
    assert container_status(get_pod(api, ns, "web"), "main")["restartCount"] == 0


class _Recorder(http.server.BaseHTTPRequestHandler):
    seen: list[str] = []

    def do_GET(self) -> None:
        _Recorder.seen.append(self.path)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def test_post_start_and_http_pre_stop_hooks(api, ns, kubelet, kcluster):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_address[1]
        create_pod(api, ns, pod_manifest("hooked", [{
            "name": "main", "command": ["sleep", "3600"],
            "lifecycle": {
                "postStart": {"exec": {"command": ["sh", "-c", "echo started > /tmp/poststart"]}},
                # the kubelet runs httpGet hooks itself: here against a server on the node's loopback
                "preStop": {"httpGet": {"host": "127.0.0.1", "port": port, "path": "/prestop"}},
            },
        }], terminationGracePeriodSeconds=3))
        wait_pod(api, ns, "hooked", running)
        out = kcluster.kubectl("exec", "-n", ns, "hooked", "--", "cat", "/tmp/poststart").stdout
        assert out == "started\n"
        api.delete(f"/api/v1/namespaces/{ns}/pods/hooked")
        wait_for(lambda: get_pod(api, ns, "hooked") is None, 30, 0.2, "the pod to go")
        assert "/prestop" in _Recorder.seen
    finally:
        server.shutdown()
        server.server_close()


def test_failing_post_start_hook_kills_the_container(api, ns, kubelet):
    create_pod(api, ns, pod_manifest("badhook", [{
        "name": "main", "command": ["sleep", "3600"],
        "lifecycle": {"postStart": {"exec": {"command": ["sh", "-c", "exit 9"]}}},
    }]))
    wait_pod(api, ns, "badhook", lambda p: container_status(p, "main").get("restartCount", 0) >= 1, 40)
    assert any(e["reason"] == "FailedPostStartHook" for e in events_for(api, ns, "badhook"))
