"""`minictl cluster up/down` with a real node: the README's first command, end to end."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import httpx
import pytest

from minictl.components import free_port
from tests.conftest import KUBECTL, ROOT, wait_for

MINICTL = str(ROOT / ".venv" / "bin" / "minictl")
NODE_PORTS = (10248, 10250, 10256, 10257, 10259)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="a node needs root")

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
      containers:
      - name: httpd
        image: localhost/minik8s/busybox:1.35
        command: ["sh", "-c", "echo $HOSTNAME > /tmp/index.html && exec httpd -f -p 8080 -h /tmp"]
        ports: [{containerPort: 8080}]
        readinessProbe: {tcpSocket: {port: 8080}, periodSeconds: 1}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
"""

# a StatefulSet whose claim the default StorageClass provisions; it runs as nobody, so the
# volume's directory must be writable by any user
DB = """
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  serviceName: db
  replicas: 1
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      securityContext: {runAsUser: 65534, runAsGroup: 65534}
      terminationGracePeriodSeconds: 1
      containers:
      - name: db
        image: localhost/minik8s/busybox:1.35
        command: ["sh", "-c", "echo started-$HOSTNAME >> /data/log && exec sleep 3600"]
        volumeMounts: [{name: data, mountPath: /data}]
  volumeClaimTemplates:
  - metadata: {name: data}
    spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
"""


def _port_busy(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def minictl(*args: str, check: bool = True, timeout: float = 180) -> subprocess.CompletedProcess:
    r = subprocess.run([MINICTL, *args], capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError(f"minictl {' '.join(args)} failed:\n{r.stdout}\n{r.stderr}")
    return r


def command_lines() -> list[str]:
    """Every process's full command line (ps truncates them when piped)."""
    out = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                out.append((p / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
            except OSError:
                continue
    return out


def leftovers(data_dir: Path) -> dict[str, object]:
    """What a stopped cluster must not leave behind."""
    procs = [line for line in command_lines() if str(data_dir) in line]
    nat = subprocess.run(["iptables", "-t", "nat", "-S"], capture_output=True, text=True).stdout
    flt = subprocess.run(["iptables", "-S"], capture_output=True, text=True).stdout
    routes = subprocess.run(["ip", "route"], capture_output=True, text=True).stdout
    bridge = subprocess.run(["ip", "link", "show", "mk8s0"], capture_output=True, text=True).returncode == 0
    cgroups = [p for p in Path("/sys/fs/cgroup").glob("*/minik8s-*")] + list(Path("/sys/fs/cgroup").glob("minik8s-*"))
    mounts = [line for line in Path("/proc/mounts").read_text().splitlines() if str(data_dir) in line]
    return {
        "processes": procs, "kube_nat_rules": [x for x in nat.splitlines() if "KUBE" in x],
        # the e2e session's own containerd node (bridge mk8st0) keeps its kubelet chains meanwhile
        "kube_filter_rules": [x for x in flt.splitlines() if ("KUBE" in x or "MK8S" in x) and "mk8st0" not in x],
        "service_route": [x for x in routes.splitlines() if x.startswith("10.96.")], "bridge": bridge,
        "cgroups": [str(p) for p in cgroups], "mounts": mounts,
    }


@pytest.fixture(scope="module")
def cluster_dir():
    if any(_port_busy(p) for p in NODE_PORTS):
        pytest.skip(f"another node runs here (one of ports {NODE_PORTS} is taken)")
    d = Path(tempfile.mkdtemp(prefix="mk8s-up-"))
    ports = ["--apiserver-port", str(free_port()), "--etcd-client-port", str(free_port()),
             "--etcd-peer-port", str(free_port())]
    try:
        yield d, ports
    finally:
        minictl("cluster", "down", "--data-dir", str(d), "--purge", check=False)
        shutil.rmtree(d, ignore_errors=True)


def kubectl(d: Path, *args: str, input: str | None = None) -> str:
    r = subprocess.run([KUBECTL, "--kubeconfig", str(d / "admin.kubeconfig"), *args], input=input,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"kubectl {' '.join(args)}:\n{r.stdout}\n{r.stderr}"
    return r.stdout


def test_up_serves_a_deployment_and_down_leaves_nothing(cluster_dir) -> None:
    d, ports = cluster_dir
    out = minictl("cluster", "up", "--data-dir", str(d), *ports).stdout
    assert "cluster up in" in out and "Ready" in out and "export KUBECONFIG=" in out
    # idempotent: a second `up` reports the running cluster and starts nothing twice
    again = minictl("cluster", "up", "--data-dir", str(d)).stdout
    assert "already running" in again
    supervisor_pids = [line for line in command_lines() if "minictl.supervisor" in line and str(d) in line]
    assert len(supervisor_pids) == 1
    assert minictl("cluster", "status", "--data-dir", str(d)).returncode == 0

    kubectl(d, "apply", "-f", "-", input=WEB)
    kubectl(d, "rollout", "status", "deploy/web", "--timeout=120s")
    ip = json.loads(kubectl(d, "get", "svc", "web", "-o", "json"))["spec"]["clusterIP"]

    def answers() -> set[str]:
        seen = set()
        for _ in range(30):
            r = httpx.get(f"http://{ip}/", timeout=2)
            if r.status_code == 200:
                seen.add(r.text.strip())
        return seen

    hosts = wait_for(lambda: (lambda s: s if len(s) == 3 else None)(answers()), timeout=60,
                     what="the service spreading over the 3 pods")
    assert all(h.startswith("web-") for h in hosts)
    # the kubelet started from the store `up` seeded with the node's pair: no certificate request
    assert json.loads(kubectl(d, "get", "csr", "-o", "json"))["items"] == []
    assert (d / "kubelet" / "pki" / "kubelet-client-current.pem").is_symlink()
    kubectl(d, "create", "configmap", "survivor", "--from-literal=a=b")
    volume_dir = check_default_storage(d)

    minictl("cluster", "down", "--data-dir", str(d))
    assert leftovers(d) == {"processes": [], "kube_nat_rules": [], "kube_filter_rules": [], "service_route": [],
                            "bridge": False, "cgroups": [], "mounts": []}
    # down twice is fine
    assert "not running" in minictl("cluster", "down", "--data-dir", str(d)).stdout

    # up after down brings back the same cluster, objects included
    minictl("cluster", "up", "--data-dir", str(d))
    assert json.loads(kubectl(d, "get", "cm", "survivor", "-o", "json"))["data"] == {"a": "b"}
    kubectl(d, "rollout", "status", "deploy/web", "--timeout=120s")
    # the StatefulSet's pod comes back on its volume; deleting the claim deletes the volume
    kubectl(d, "rollout", "status", "sts/db", "--timeout=120s")
    wait_for(lambda: (volume_dir / "log").read_text().count("started-db-0") == 3, timeout=60,
             what="db-0 started a third time on the same volume")
    kubectl(d, "delete", "sts", "db", "--wait=true", "--timeout=60s")
    wait_for(lambda: not json.loads(kubectl(d, "get", "pods", "-l", "app=db", "-o", "json"))["items"], timeout=60,
             what="the StatefulSet's pod gone")
    kubectl(d, "delete", "pvc", "data-db-0", "--wait=true", "--timeout=60s")
    wait_for(lambda: not json.loads(kubectl(d, "get", "pv", "-o", "json"))["items"], timeout=60,
             what="the released volume deleted by its provisioner")
    assert not volume_dir.exists()
    assert json.loads(kubectl(d, "get", "pods", "-n", "kube-system", "-l", "minik8s.io/hostpath-helper",
                              "-o", "json"))["items"] == []
    minictl("cluster", "down", "--data-dir", str(d))
    assert leftovers(d)["processes"] == []


def check_default_storage(d: Path) -> Path:
    """A StatefulSet's claim gets a volume from the default StorageClass, on this node, under the
    data dir; the pod writes to it as a non-root user, and a replacement pod sees what it wrote."""
    classes = json.loads(kubectl(d, "get", "storageclass", "-o", "json"))["items"]
    assert [(c["metadata"]["name"], c["provisioner"], c["volumeBindingMode"]) for c in classes] == [
        ("standard", "minik8s.io/hostpath", "WaitForFirstConsumer")]
    kubectl(d, "apply", "-f", "-", input=DB)
    kubectl(d, "rollout", "status", "sts/db", "--timeout=120s")
    claim = json.loads(kubectl(d, "get", "pvc", "data-db-0", "-o", "json"))
    assert claim["status"]["phase"] == "Bound" and claim["spec"]["storageClassName"] == "standard"
    node = json.loads(kubectl(d, "get", "nodes", "-o", "json"))["items"][0]["metadata"]["name"]
    assert claim["metadata"]["annotations"]["volume.kubernetes.io/selected-node"] == node
    assert "kubernetes.io/pvc-protection" in claim["metadata"]["finalizers"]
    volume = json.loads(kubectl(d, "get", "pv", claim["spec"]["volumeName"], "-o", "json"))
    assert volume["status"]["phase"] == "Bound"
    # its directory goes before the object, however the volume is deleted
    assert "external-provisioner.volume.kubernetes.io/finalizer" in volume["metadata"]["finalizers"]
    volume_dir = Path(volume["spec"]["hostPath"]["path"])
    assert volume_dir.parent == d / "volumes"
    wait_for(lambda: (volume_dir / "log").read_text() == "started-db-0\n", timeout=30, what="db-0 writing its log")
    kubectl(d, "delete", "pod", "db-0", "--wait=true", "--timeout=60s")
    kubectl(d, "rollout", "status", "sts/db", "--timeout=120s")
    wait_for(lambda: (volume_dir / "log").read_text() == "started-db-0\n" * 2, timeout=60,
             what="the new db-0 appending to the same volume")
    table = kubectl(d, "get", "pvc")
    assert "data-db-0" in table and "Bound" in table and "standard" in table
    return volume_dir
