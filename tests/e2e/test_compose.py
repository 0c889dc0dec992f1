"""`docker-compose --profile multinode up` (docker-compose.yml): build the image as `make images`
does, start the cluster in containers with two nodes, run a Deployment spread over both behind a
Service with kubectl, reach pods across nodes by pod IP without NAT, pull an image through the
compose registry, tear it all down.

The test runs its own dockerd (private data root, exec root and socket; `--iptables=false`, no
default bridge, so the host's firewall is left alone) and stops it by pid. While it runs, a guard
rule drops anything the compose network would forward off this machine.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from minictl.components import free_port
from tests.conftest import KUBECTL, ROOT, wait_for

BRIDGE = "mk8s-compose0"  # docker-compose.yml names its network's bridge
GUARD = ["FORWARD", "-i", BRIDGE, "!", "-o", BRIDGE, "-m", "comment", "--comment",
         "minik8s e2e: the compose network stays on this machine", "-j", "DROP"]
PROJECT = "mk8s-e2e"


def _skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "docker needs root"
    for tool in ("dockerd", "docker", "docker-compose", "mmdebstrap", "iptables"):
        if shutil.which(tool) is None:
            return f"{tool} not found (apt-get install docker.io docker-compose mmdebstrap)"
    if subprocess.run(["ip", "link", "show", BRIDGE], capture_output=True).returncode == 0:
        return f"another compose cluster runs here ({BRIDGE} exists)"
    return None


pytestmark = pytest.mark.skipif(_skip_reason() is not None, reason=str(_skip_reason()))


def run(*cmd: str, env: dict[str, str] | None = None, timeout: float = 600, check: bool = True,
        input: str | None = None) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout, cwd=ROOT, input=input)
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    return r


@contextlib.contextmanager
def private_dockerd() -> Iterator[dict[str, str]]:
    d = Path(tempfile.mkdtemp(prefix="mk8s-dockerd-"))
    sock = d / "docker.sock"
    # dockerd also writes here whatever its data root is; removed again if it was not there before
    host_paths = [p for p in (Path("/run/docker"), Path("/etc/docker/key.json")) if not p.exists()]
    log = open(d / "dockerd.log", "ab")
    proc = subprocess.Popen(
        ["dockerd", "--data-root", str(d / "root"), "--exec-root", str(d / "exec"), "--pidfile", str(d / "pid"),
         "-H", f"unix://{sock}", "--iptables=false", "--ip-masq=false", "--bridge=none"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    env = {**os.environ, "DOCKER_HOST": f"unix://{sock}"}
    try:
        wait_for(lambda: proc.poll() is None and run("docker", "info", env=env, check=False).returncode == 0,
                 60, 0.2, "dockerd to answer")
        yield env
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        # anything dockerd left mounted under its data root goes before the directory does
        mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()
                  if line.split()[1].startswith(str(d))]
        for m in sorted(mounts, key=len, reverse=True):
            subprocess.run(["umount", "-l", m], capture_output=True)
        shutil.rmtree(d, ignore_errors=True)
        for p in host_paths:
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)


@pytest.fixture(scope="module")
def compose() -> Iterator[dict]:
    out = Path(tempfile.mkdtemp(prefix="mk8s-compose-out-"))
    port, registry_port = free_port(), free_port()
    subprocess.run(["iptables", "-I", *GUARD], check=True)
    try:
        with private_dockerd() as env:
            env = {**env, "MINIK8S_OUT_DIR": str(out), "MINIK8S_HOST_PORT": str(port),
                   "MINIK8S_REGISTRY_PORT": str(registry_port), "PY": sys.executable}
            started = time.monotonic()
            run("deploy/build-images.sh", env=env, timeout=900)
            print(f"\nimages built in {time.monotonic() - started:.0f}s")
            dc = ["docker-compose", "-p", PROJECT, "--profile", "multinode"]
            try:
                started = time.monotonic()
                run(*dc, "up", "-d", env=env, timeout=300)
                print(f"docker-compose up -d: {time.monotonic() - started:.1f}s")
                yield {"env": env, "kubeconfig": out / "admin.kubeconfig", "port": port,
                       "registry_port": registry_port, "dc": dc}
            finally:
                if os.environ.get("MINIK8S_KEEP_TEST_DATA"):
                    print(run(*dc, "logs", "--tail", "50", env=env, check=False).stdout)
                run(*dc, "down", "-v", "--timeout", "60", env=env, check=False, timeout=300)
                left = run("docker", "ps", "-aq", env=env, check=False).stdout.split()
                volumes = run("docker", "volume", "ls", "-q", env=env, check=False).stdout.split()
                assert left == [] and volumes == [], (left, volumes)
    finally:
        subprocess.run(["iptables", "-D", *GUARD], capture_output=True)
        shutil.rmtree(out, ignore_errors=True)
    assert subprocess.run(["ip", "link", "show", BRIDGE], capture_output=True).returncode != 0


def kubectl(c: dict, *args: str, input: str | None = None, timeout: float = 120) -> str:
    return run(KUBECTL, "--kubeconfig", str(c["kubeconfig"]), *args, input=input, timeout=timeout).stdout


WEB = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      topologySpreadConstraints:
      - {maxSkew: 1, topologyKey: kubernetes.io/hostname, whenUnsatisfiable: DoNotSchedule,
         labelSelector: {matchLabels: {app: web}}}
      containers:
      - name: httpd
        image: localhost/minik8s/busybox:1.35
        # -v: each request's client address goes to the log (is the source a pod IP?)
        command: ["sh", "-c", "echo $HOSTNAME > /tmp/index.html && exec httpd -f -v -p 8080 -h /tmp"]
        readinessProbe: {tcpSocket: {port: 8080}, periodSeconds: 1}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
"""


def test_compose_cluster_runs_a_deployment_behind_a_service(compose) -> None:
    c = compose
    kubeconfig = c["kubeconfig"]
    assert kubeconfig.exists(), "the certs service writes the admin kubeconfig to the mounted directory"
    assert f"https://127.0.0.1:{c['port']}" in kubeconfig.read_text()
    # `up -d` returns once the containers run; the nodes register themselves soon after
    nodes = wait_for(lambda: len(items := json.loads(kubectl(c, "get", "nodes", "-o", "json"))["items"]) == 2
                     and items, 60, 0.5, "both node containers to register")
    assert sorted(n["metadata"]["name"] for n in nodes) == ["node", "node2"]
    kubectl(c, "wait", "--for=condition=Ready", "node/node", "node/node2", "--timeout=60s")
    # the nodes run pods with crun, as the local cluster does (containerd execs it from a read-only bind mount)
    mounts = run(*c["dc"], "exec", "-T", "node", "cat", "/proc/mounts", env=c["env"]).stdout
    assert "/containerd/bin/crun " in mounts, mounts
    kubectl(c, "apply", "-f", "-", input=WEB)
    kubectl(c, "rollout", "status", "deploy/web", "--timeout=120s", timeout=150)
    pods = json.loads(kubectl(c, "get", "pods", "-l", "app=web", "-o", "json"))["items"]
    names = {p["metadata"]["name"] for p in pods}
    assert len(names) == 3
    assert {p["spec"]["nodeName"] for p in pods} == {"node", "node2"}, "the spread constraint uses both nodes"

    # from inside a pod: cluster DNS, the ClusterIP (kube-proxy), the pods behind it
    # each request bounded by busybox's `timeout` (its wget -T segfaults in Debian's 1.35)
    fetch = "timeout 3 wget -q -O- http://web.default.svc.cluster.local/"
    script = f"for i in $(seq 30); do {fetch}; done"
    first = sorted(names)[0]
    # DNS and the Service's rules come up on their own schedule after the rollout: first one
    # answer (an unanswered lookup would otherwise stall each of the 30 requests)
    wait_for(lambda: kubectl(c, "exec", first, "--", "sh", "-c", fetch, timeout=30).strip(),
             90, 1, "the service to answer by name")

    def spread() -> set[str] | None:
        seen = set(kubectl(c, "exec", first, "--", "sh", "-c", script).split())
        return seen if seen == names else None

    wait_for(spread, 60, 1, "the service to spread over the 3 pods")  # on both nodes

    # pod to pod across the nodes, by pod IP: the server sees the client's own pod IP (no NAT)
    by_node = {p["spec"]["nodeName"]: p for p in pods}
    client, server = by_node["node"], by_node["node2"]
    got = kubectl(c, "exec", client["metadata"]["name"], "--", "sh", "-c",
                  f"timeout 3 wget -q -O- http://{server['status']['podIP']}:8080/", timeout=30)
    assert got.strip() == server["metadata"]["name"]
    # busybox httpd -v logs "[::ffff:10.244.0.5]:41308: response:200"
    seen = re.findall(r"(\d+\.\d+\.\d+\.\d+)\]?:\d+: response", kubectl(c, "logs", server["metadata"]["name"]))
    assert client["status"]["podIP"] in seen, seen
    back = kubectl(c, "exec", server["metadata"]["name"], "--", "sh", "-c",
                   f"timeout 3 wget -q -O- http://{client['status']['podIP']}:8080/", timeout=30)
    assert back.strip() == client["metadata"]["name"]
    # logs through apiserver → kubelet in the node container
    kubectl(c, "logs", first)
    # the compose registry: push our busybox there, run a pod from it (the node pulls over http)
    if shutil.which("skopeo"):
        archive = ROOT / "build" / "images" / "busybox-latest.tar"
        run("skopeo", "copy", "--dest-tls-verify=false", f"docker-archive:{archive}",
            f"docker://127.0.0.1:{c['registry_port']}/e2e/busybox:pushed", timeout=120)
        kubectl(c, "run", "pulled", "--image=registry:5000/e2e/busybox:pushed", "--restart=Never",
                "--", "sh", "-c", "echo pulled-ok")
        wait_for(lambda: "pulled-ok" in run(KUBECTL, "--kubeconfig", str(kubeconfig), "logs", "pulled",
                                             check=False).stdout, 90, 1, "the pod from the registry image")
    # the API is served on the published port only on loopback
    r = httpx.get(f"https://127.0.0.1:{c['port']}/readyz", verify=False, timeout=5)
    assert r.status_code == 200
