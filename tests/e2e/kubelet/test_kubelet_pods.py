"""Pods on a real node: init containers, networking, logs/exec/port-forward through kubectl,
env and volumes (configMap, secret, emptyDir, downward API, the ServiceAccount token)."""

from __future__ import annotations

import base64
import ipaddress
import json
import re
import subprocess
import time

import httpx
import pytest

from kubelet import network
from tests.conftest import KUBECTL, wait_for
from tests.e2e.kubelet.conftest import (
    condition,
    container_status,
    create_pod,
    events_for,
    pod_manifest,
    running,
    wait_pod,
)

pytestmark = pytest.mark.e2e


def _logs(kcluster, ns: str, *args: str) -> str:
    return kcluster.kubectl("logs", "-n", ns, *args).stdout


def test_init_container_and_two_containers_reach_running_with_an_ip_from_the_pod_cidr(api, ns, kubelet,
                                                                                       containerd_node):
    pod = pod_manifest("web", [
        {"name": "server", "command": ["sh", "-c", "cp /work/index.html /tmp/ && exec httpd -f -p 8080 -h /tmp"],
         "volumeMounts": [{"name": "work", "mountPath": "/work"}], "ports": [{"containerPort": 8080}]},
        {"name": "sidecar", "command": ["sh", "-c", "while true; do sleep 1; done"],
         "volumeMounts": [{"name": "work", "mountPath": "/work"}]},
    ], initContainers=[
        {"name": "prepare", "image": "localhost/minik8s/busybox:latest", "imagePullPolicy": "IfNotPresent",
         "command": ["sh", "-c", "echo initialized > /work/index.html"],
         "volumeMounts": [{"name": "work", "mountPath": "/work"}]},
    ], volumes=[{"name": "work", "emptyDir": {}}])
    create_pod(api, ns, pod)
    p = wait_pod(api, ns, "web", lambda p: running(p) and condition(p, "Ready") == "True", 60)
    status = p["status"]
    ip = ipaddress.ip_address(status["podIP"])
    assert ip in containerd_node.subnet
    assert status["podIPs"] == [{"ip": str(ip)}]
    assert status["hostIP"] == "127.0.0.1"
    assert status["qosClass"] == "BestEffort"
    assert status["startTime"]
    assert {c["type"]: c["status"] for c in status["conditions"]} == {
        "PodReadyToStartContainers": "True", "Initialized": "True", "ContainersReady": "True", "Ready": "True",
        "PodScheduled": "True",
    }
    init = container_status(p, "prepare", init=True)
    assert init["state"]["terminated"]["exitCode"] == 0
    assert init["state"]["terminated"]["reason"] == "Completed"
    for name in ("server", "sidecar"):
        s = container_status(p, name)
        assert "running" in s["state"], s
        assert s["ready"] is True and s["started"] is True and s["restartCount"] == 0
        assert s["containerID"].startswith("containerd://")
        assert s["imageID"].startswith("sha256:")
    # the init container ran before the server: the page it wrote is served, from the pod IP
    r = httpx.get(f"http://{ip}:8080/index.html", trust_env=False, timeout=10)
    assert r.text == "initialized\n"
    reasons = [e["reason"] for e in events_for(api, ns, "web")]
    for reason in ("Pulled", "Created", "Started"):
        assert reason in reasons


def test_pod_to_pod_traffic_on_the_bridge(api, ns, kubelet, kcluster):
    create_pod(api, ns, pod_manifest("server", [
        {"name": "httpd", "command": ["sh", "-c", "echo from-server > /tmp/index.html; exec httpd -f -p 8080 -h /tmp"]},
    ]))
    create_pod(api, ns, pod_manifest("client", [{"name": "c", "command": ["sleep", "3600"]}]))
    server = wait_pod(api, ns, "server", running)
    wait_pod(api, ns, "client", running)
    ip = server["status"]["podIP"]
    request = f"printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n' | nc -w 5 {ip} 8080"
    out = kcluster.kubectl("exec", "-n", ns, "client", "--", "sh", "-c", request).stdout
    assert "200 OK" in out and "from-server" in out
    # the pod's resolv.conf points at the cluster DNS, its hostname is the pod name
    resolv = kcluster.kubectl("exec", "-n", ns, "client", "--", "cat", "/etc/resolv.conf").stdout
    assert "nameserver 10.96.0.10" in resolv
    assert f"search {ns}.svc.cluster.local svc.cluster.local cluster.local" in resolv
    assert kcluster.kubectl("exec", "-n", ns, "client", "--", "hostname").stdout.strip() == "client"
    hosts = kcluster.kubectl("exec", "-n", ns, "client", "--", "cat", "/etc/hosts").stdout
    assert "client" in hosts and "Kubernetes-managed hosts file" in hosts


def test_logs_and_exec_through_kubectl(api, ns, kubelet, kcluster):
    script = "echo err-1 >&2; sleep 0.3; for i in 1 2 3; do echo out-$i; done; sleep 3600"
    create_pod(api, ns, pod_manifest("talker", [
        {"name": "main", "command": ["sh", "-c", script]},
        {"name": "other", "command": ["sh", "-c", "echo from-other; sleep 3600"]},
    ]))
    wait_pod(api, ns, "talker", running)
    wait_for(lambda: "out-3" in _logs(kcluster, ns, "talker", "-c", "main"), 10, 0.2, "logs")
    # stdout and stderr both land in the log
    assert _logs(kcluster, ns, "talker", "-c", "main").splitlines() == ["err-1", "out-1", "out-2", "out-3"]
    assert _logs(kcluster, ns, "talker", "-c", "main", "--tail", "2").splitlines() == ["out-2", "out-3"]
    stamped = _logs(kcluster, ns, "talker", "-c", "other", "--timestamps").strip()
    assert re.match(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d+Z from-other$", stamped), stamped
    # no container named: the apiserver asks which one
    r = kcluster.kubectl("logs", "-n", ns, "talker", "-c", "nope", check=False)
    assert r.returncode != 0 and "container nope is not valid for pod talker" in r.stderr

    assert kcluster.kubectl("exec", "-n", ns, "talker", "-c", "main", "--", "echo", "hi").stdout == "hi\n"
    piped = kcluster.kubectl("exec", "-i", "-n", ns, "talker", "-c", "main", "--", "sh", "-c", "cat | wc -c",
                             input="x" * 100000)
    assert piped.stdout.strip() == "100000"
    failed = kcluster.kubectl("exec", "-n", ns, "talker", "-c", "main", "--", "sh", "-c", "exit 7", check=False)
    assert failed.returncode == 7
    assert "command terminated with exit code 7" in failed.stderr
    missing = kcluster.kubectl("exec", "-n", ns, "talker", "-c", "main", "--", "/nope", check=False)
    assert missing.returncode != 0

    # logs -f streams new lines as they come, until stopped
    proc = subprocess.Popen([KUBECTL, "--kubeconfig", str(kcluster.kubeconfig), "logs", "-f", "-n", ns, "talker",
                             "-c", "other"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "from-other\n"
        kcluster.kubectl("exec", "-n", ns, "talker", "-c", "other", "--", "sh", "-c", "echo later > /proc/1/fd/1")
        assert proc.stdout.readline() == "later\n"
    finally:
        proc.terminate()
        proc.wait(10)


def test_port_forward_through_kubectl(api, ns, kubelet, kcluster):
    create_pod(api, ns, pod_manifest("web", [
        {"name": "httpd", "command": ["sh", "-c", "echo forwarded > /tmp/index.html; exec httpd -f -p 8080 -h /tmp"]},
    ]))
    wait_pod(api, ns, "web", running)
    proc = subprocess.Popen([KUBECTL, "--kubeconfig", str(kcluster.kubeconfig), "port-forward", "-n", ns, "pod/web",
                             "--address", "127.0.0.1", ":8080"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        line = proc.stdout.readline()
        m = re.search(r"127\.0\.0\.1:(\d+) -> 8080", line)
        assert m, line + proc.stderr.read() if proc.poll() is not None else line
        port = int(m.group(1))
        with httpx.Client(trust_env=False, timeout=10) as client:
            for _ in range(3):  # several connections over one forwarding session
                assert client.get(f"http://127.0.0.1:{port}/index.html", headers={"Connection": "close"}).text == \
                    "forwarded\n"
    finally:
        proc.terminate()
        proc.wait(10)


def _secret_data(values: dict[str, str]) -> dict[str, str]:
    return {k: base64.b64encode(v.encode()).decode() for k, v in values.items()}


def test_env_from_configmaps_secrets_and_the_downward_api(api, ns, kubelet, kcluster):
    api.post(f"/api/v1/namespaces/{ns}/configmaps", json={
        "metadata": {"name": "settings"}, "data": {"color": "blue", "size": "L", "bad-key": "x"}})
    api.post(f"/api/v1/namespaces/{ns}/secrets", json={
        "metadata": {"name": "creds"}, "data": _secret_data({"password": "s3cret"})})
    create_pod(api, ns, pod_manifest("envy", [{
        "name": "main",
        # the shell would drop names it cannot use (bad-key): print the environment it was started with
        "command": ["sh", "-c", "tr '\\0' '\\n' < /proc/1/environ; sleep 3600"],
        "resources": {"limits": {"memory": "64Mi", "cpu": "500m"}},
        "env": [
            {"name": "COLOR", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "color"}}},
            {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}},
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
            {"name": "MEM_MI", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}},
            {"name": "GREETING", "value": "hello-$(COLOR)-$$(COLOR)"},
            {"name": "MISSING", "valueFrom": {"configMapKeyRef": {"name": "nope", "key": "x", "optional": True}}},
        ],
        "envFrom": [{"configMapRef": {"name": "settings"}, "prefix": "CFG_"}],
    }]))
    pod = wait_pod(api, ns, "envy", running)
    wait_for(lambda: "GREETING=" in _logs(kcluster, ns, "envy"), 10, 0.2, "env printed")
    env = dict(line.split("=", 1) for line in _logs(kcluster, ns, "envy").splitlines() if "=" in line)
    assert env["COLOR"] == "blue"
    assert env["PASSWORD"] == "s3cret"
    assert env["POD_NAME"] == "envy" and env["POD_NAMESPACE"] == ns and env["NODE"] == "testnode"
    assert env["POD_IP"] == pod["status"]["podIP"]
    assert env["MEM_MI"] == "64"
    assert env["GREETING"] == "hello-blue-$(COLOR)"
    assert env["CFG_color"] == "blue" and env["CFG_size"] == "L" and env["CFG_bad-key"] == "x"
    assert "MISSING" not in env
    assert env["KUBERNETES_SERVICE_HOST"] == "10.96.0.1" and env["KUBERNETES_SERVICE_PORT"] == "443"


def test_configmap_and_secret_volumes_with_modes_items_and_updates(api, ns, kubelet, kcluster):
    api.post(f"/api/v1/namespaces/{ns}/configmaps", json={
        "metadata": {"name": "app"}, "data": {"app.conf": "v1", "other": "o"}})
    api.post(f"/api/v1/namespaces/{ns}/secrets", json={
        "metadata": {"name": "tls"}, "data": _secret_data({"key": "private", "cert": "public"})})
    create_pod(api, ns, pod_manifest("vols", [{
        "name": "main", "command": ["sleep", "3600"],
        "volumeMounts": [
            {"name": "config", "mountPath": "/etc/app"},
            {"name": "secret", "mountPath": "/etc/tls"},
            {"name": "picked", "mountPath": "/etc/picked"},
            {"name": "info", "mountPath": "/etc/info"},
        ],
    }], volumes=[
        {"name": "config", "configMap": {"name": "app"}},
        {"name": "secret", "secret": {"secretName": "tls", "defaultMode": 0o400}},
        {"name": "picked", "secret": {"secretName": "tls", "items": [{"key": "cert", "path": "certs/tls.crt",
                                                                          "mode": 0o444}]}},
        {"name": "info", "downwardAPI": {"items": [
            {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
            {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
        ]}},
    ]))
    wait_pod(api, ns, "vols", running)

    def sh(cmd: str) -> str:
        return kcluster.kubectl("exec", "-n", ns, "vols", "--", "sh", "-c", cmd).stdout

    assert sh("cat /etc/app/app.conf") == "v1"
    assert sh("cat /etc/tls/key") == "private"
    assert sh("stat -L -c %a /etc/tls/key").strip() == "400"
    assert sh("stat -L -c %a /etc/app/other").strip() == "644"
    assert sh("cat /etc/picked/certs/tls.crt") == "public"
    assert sh("stat -L -c %a /etc/picked/certs/tls.crt").strip() == "444"
    assert sh("ls /etc/picked").split() == ["certs"]
    assert sh("cat /etc/info/name") == "vols"
    # secrets are on tmpfs, never on disk
    assert "tmpfs" in sh("grep ' /etc/tls ' /proc/mounts")
    # the volume is read-only for the container
    assert "Read-only file system" in kcluster.kubectl("exec", "-n", ns, "vols", "--", "sh", "-c",
                                                       "echo x > /etc/app/new", check=False).stderr
    # an update reaches the running container (watch-based, atomically through ..data)
    r = api.patch(f"/api/v1/namespaces/{ns}/configmaps/app", json={"data": {"app.conf": "v2", "other": None}},
                  headers={"Content-Type": "application/merge-patch+json"})
    assert r.status_code == 200, r.text
    wait_for(lambda: sh("cat /etc/app/app.conf") == "v2", 30, 0.5, "the configMap update in the volume")
    assert "other" not in sh("ls /etc/app")


def test_emptydir_shared_between_containers_and_memory_medium(api, ns, kubelet, kcluster):
    create_pod(api, ns, pod_manifest("shared", [
        {"name": "writer", "command": ["sh", "-c", "while true; do date +%s > /data/now; sleep 1; done"],
         "volumeMounts": [{"name": "data", "mountPath": "/data"}, {"name": "mem", "mountPath": "/mem"}]},
        {"name": "reader", "command": ["sleep", "3600"], "volumeMounts": [{"name": "data", "mountPath": "/in"}]},
    ], volumes=[{"name": "data", "emptyDir": {}}, {"name": "mem", "emptyDir": {"medium": "Memory", "sizeLimit": "8Mi"}}]))
    wait_pod(api, ns, "shared", running)
    wait_for(lambda: kcluster.kubectl("exec", "-n", ns, "shared", "-c", "reader", "--", "cat", "/in/now",
                                      check=False).stdout.strip().isdigit(), 20, 0.5, "the writer's file")
    mounts = kcluster.kubectl("exec", "-n", ns, "shared", "-c", "writer", "--", "grep", " /mem ", "/proc/mounts").stdout
    assert "tmpfs" in mounts and "size=8192k" in mounts


def test_service_account_token_is_projected(api, ns, kubelet, kcluster):
    create_pod(api, ns, pod_manifest("sa", [{"name": "main", "command": ["sleep", "3600"]}]))
    wait_pod(api, ns, "sa", running)
    base = "/var/run/secrets/kubernetes.io/serviceaccount"
    out = kcluster.kubectl("exec", "-n", ns, "sa", "--", "sh", "-c", f"ls {base}; cat {base}/namespace").stdout
    assert out.split() == ["ca.crt", "namespace", "token", ns]
    token = kcluster.kubectl("exec", "-n", ns, "sa", "--", "cat", f"{base}/token").stdout.strip()
    # the token authenticates as the pod's ServiceAccount
    review = api.post("/apis/authentication.k8s.io/v1/tokenreviews",
                      json={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}})
    assert review.status_code == 201, review.text
    user = review.json()["status"]["user"]
    assert user["username"] == f"system:serviceaccount:{ns}:default"
    assert user["extra"]["authentication.kubernetes.io/pod-name"] == ["sa"]


def test_host_network_pod(api, ns, kubelet, kcluster):
    create_pod(api, ns, pod_manifest("hostnet", [{"name": "main", "command": ["sleep", "3600"]}], hostNetwork=True))
    pod = wait_pod(api, ns, "hostnet", running)
    assert pod["status"]["podIP"] == "127.0.0.1"  # the node's IP
    # the pod sees the node's interfaces, its uplink among them
    links = kcluster.kubectl("exec", "-n", ns, "hostnet", "--", "cat", "/proc/net/dev").stdout
    uplink = network.uplink_interface()
    assert uplink and f"{uplink}:" in links, links


def _run_in_pty(argv: list[str], send: bytes, timeout: float = 20) -> bytes:
    """Run argv with a pseudo-terminal as stdin/stdout (what `kubectl exec -it` needs); type `send`."""
    import os
    import pty
    import select

    pid, fd = pty.fork()
    if pid == 0:  # the child: becomes kubectl
        os.execv(argv[0], argv)
    out = b""
    deadline = time.monotonic() + timeout
    sent = False
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.2)
            if ready:
                try:
                    data = os.read(fd, 4096)
                except OSError:
                    break
                if not data:
                    break
                out += data
            if not sent and b"#" in out:  # the shell's prompt: type
                os.write(fd, send)
                sent = True
        return out
    finally:
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
        os.waitpid(pid, 0)
        os.close(fd)


def test_interactive_exec_with_a_terminal_and_attach(api, ns, kubelet, kcluster):
    create_pod(api, ns, pod_manifest("tty", [
        {"name": "main", "command": ["sh", "-c", "while true; do echo tick; sleep 0.5; done"]},
    ]))
    wait_pod(api, ns, "tty", running)
    out = _run_in_pty([KUBECTL, "--kubeconfig", str(kcluster.kubeconfig), "exec", "-it", "-n", ns, "tty", "--",
                       "sh"], b"tty; echo $((6*7)); exit\n")
    assert b"/dev/pts/" in out and b"42" in out, out
    # attach: the main process' output, live
    proc = subprocess.Popen([KUBECTL, "--kubeconfig", str(kcluster.kubeconfig), "attach", "-n", ns, "tty"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = [proc.stdout.readline() for _ in range(2)]
        assert lines == ["tick\n", "tick\n"], lines
    finally:
        proc.terminate()
        proc.wait(10)


def test_logs_of_the_previous_container(api, ns, kubelet, kcluster):
    create_pod(api, ns, pod_manifest("again", [
        {"name": "main", "command": ["sh", "-c", "echo run-$(cat /data/n 2>/dev/null || echo 0); "
                                                 "echo 1 > /data/n; sleep 1; exit 1"],
         "volumeMounts": [{"name": "data", "mountPath": "/data"}]},
    ], volumes=[{"name": "data", "emptyDir": {}}]))
    wait_pod(api, ns, "again", lambda p: container_status(p, "main").get("restartCount", 0) >= 1)
    previous = kcluster.kubectl("logs", "-n", ns, "again", "--previous").stdout
    assert previous == "run-0\n"
    wait_for(lambda: kcluster.kubectl("logs", "-n", ns, "again", check=False).stdout == "run-1\n", 20, 0.3,
             "the new container's log")


def test_kubectl_cp_both_ways(api, ns, kubelet, kcluster, tmp_path):
    """`kubectl cp` is tar over exec: stdin must reach the container and be closed (v5 close signal)."""
    create_pod(api, ns, pod_manifest("box", [{"name": "main", "command": ["sleep", "3600"]}]))
    wait_pod(api, ns, "box", running)
    source = tmp_path / "in.txt"
    source.write_text("payload\n" * 1000)
    kcluster.kubectl("cp", str(source), f"{ns}/box:/tmp/in.txt")
    assert kcluster.kubectl("exec", "-n", ns, "box", "--", "wc", "-c", "/tmp/in.txt").stdout.split()[0] == "8000"
    kcluster.kubectl("cp", f"{ns}/box:/tmp/in.txt", str(tmp_path / "out.txt"))
    assert (tmp_path / "out.txt").read_text() == source.read_text()


def test_refused_exec_and_attach_show_the_real_error(api, ns, kubelet, kcluster):
    """A refused stream shows upstream's messages. kubectl falls back to SPDY whenever its
    websocket is refused and prints the answer to that request: the apiserver's Status for what
    it checks (no such pod), the kubelet's refusal passed through for the rest (a container that
    is not running is `container not found`). The Python client (websockets only) gets the same
    status and body in its ApiException."""
    from kubernetes import client, config
    from kubernetes.client.rest import ApiException
    from kubernetes.stream import stream

    create_pod(api, ns, pod_manifest("half", [
        {"name": "main", "command": ["sleep", "3600"]},
        {"name": "done", "command": ["true"]},
    ], restartPolicy="Never"))
    wait_pod(api, ns, "half", lambda p: running(p) and "terminated" in (container_status(p, "done").get("state") or {}))

    def kubectl_error(*args: str) -> str:
        r = kcluster.kubectl(*args, check=False)
        assert r.returncode == 1, (r.stdout, r.stderr)
        return r.stderr.strip().splitlines()[-1]

    # unknown container name: kubectl itself checks it against the pod it fetched first
    assert kubectl_error("exec", "-n", ns, "half", "-c", "nope", "--", "true") == \
        "error: container nope is not valid for pod half out of: main, done"
    assert kubectl_error("attach", "-n", ns, "half", "-c", "nope") == \
        "error: cannot attach to the container: container nope is not valid for pod half out of: main, done"
    # a container that has exited: the kubelet's refusal, through the apiserver
    assert kubectl_error("exec", "-n", ns, "half", "-c", "done", "--", "true") == \
        'error: unable to upgrade connection: container not found ("done")'
    assert kubectl_error("attach", "-n", ns, "half", "-c", "done") == \
        'error: unable to upgrade connection: container not found ("done")'
    # no such pod
    assert kubectl_error("exec", "-n", ns, "ghost", "--", "true") == 'Error from server (NotFound): pods "ghost" not found'
    assert kubectl_error("attach", "-n", ns, "ghost") == 'Error from server (NotFound): pods "ghost" not found'
    # a command that cannot be started: the runtime's error (runc and crun word it differently), on
    # the stream's error channel
    missing = kubectl_error("exec", "-n", ns, "half", "-c", "main", "--", "/nope")
    assert missing.startswith("error: Internal error occurred: error executing command in container: ") and \
        "/nope" in missing and ("not found" in missing or "no such file or directory" in missing), missing

    core = client.CoreV1Api(config.new_client_from_config(config_file=str(kcluster.kubeconfig)))

    def refused(name: str, container: str) -> tuple[str, str]:
        """The refused handshake's status line and body (the client reports it as status 0)."""
        with pytest.raises(ApiException) as e:
            stream(core.connect_get_namespaced_pod_exec, name, ns, container=container, command=["true"],
                   stdout=True, stderr=True, stdin=False, tty=False)
        assert e.value.status == 0, e.value
        status_line, _headers, body = e.value.reason.split(" -+-+- ", 2)
        return status_line, body

    status_line, body = refused("half", "nope")
    assert status_line == "Handshake status 400 Bad Request"
    assert json.loads(body)["message"] == "container nope is not valid for pod half"
    assert refused("half", "done") == ("Handshake status 500 Internal Server Error", 'container not found ("done")')
    status_line, body = refused("ghost", "main")
    assert status_line == "Handshake status 404 Not Found"
    assert json.loads(body)["message"] == 'pods "ghost" not found'
