"""minictl get: the server's Table columns per kind, printed as kubectl prints them; object formats."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.conftest import ROOT, ControlPlane, wait_for

OBJECTS = """
apiVersion: v1
kind: Pod
metadata: {name: p, labels: {app: web, tier: fe}}
spec: {containers: [{name: c, image: busybox}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: d}
spec: {replicas: 2, selector: {matchLabels: {a: d}}, template: {metadata: {labels: {a: d}}, spec: {containers: [{name: c, image: x}, {name: s, image: yy}]}}}
---
apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: rs}
spec: {selector: {matchLabels: {a: rs}}, template: {metadata: {labels: {a: rs}}, spec: {containers: [{name: c, image: x}]}}}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: ds}
spec: {selector: {matchLabels: {a: ds}}, template: {metadata: {labels: {a: ds}}, spec: {nodeSelector: {disk: ssd}, containers: [{name: c, image: x}]}}}
---
apiVersion: batch/v1
kind: Job
metadata: {name: j}
spec: {template: {spec: {restartPolicy: Never, containers: [{name: c, image: x}]}}}
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: cj}
spec: {schedule: "*/5 * * * *", jobTemplate: {spec: {template: {spec: {restartPolicy: OnFailure, containers: [{name: c, image: x}]}}}}}
---
apiVersion: v1
kind: Service
metadata: {name: s}
spec: {selector: {app: web}, ports: [{port: 80, targetPort: 8080, name: http}, {port: 53, protocol: UDP, name: dns}]}
---
apiVersion: v1
kind: Endpoints
metadata: {name: s}
subsets: [{addresses: [{ip: 10.244.0.5}, {ip: 10.244.0.6}], ports: [{port: 8080, name: http}]}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: cm}
data: {a: "1", b: "2"}
---
apiVersion: v1
kind: Secret
metadata: {name: sec}
type: Opaque
stringData: {password: hunter2}
---
apiVersion: v1
kind: Event
metadata: {name: p.1}
involvedObject: {kind: Pod, name: p, namespace: NS, apiVersion: v1}
reason: Scheduled
message: Successfully assigned NS/p to testnode
type: Normal
source: {component: default-scheduler}
count: 1
firstTimestamp: "2026-01-01T00:00:00Z"
lastTimestamp: "2026-01-01T00:00:00Z"
"""

KINDS = ["pods", "deployments", "replicasets", "services", "endpoints", "events", "jobs", "cronjobs", "daemonsets",
         "configmaps", "secrets", "namespaces", "nodes"]
AGE = re.compile(r"^(\d+[smhdy])+$|^<unknown>$|^\d{4}-\d\d-\d\dT[\d:]+Z$")


@pytest.fixture(scope="module")
def objects(control_plane: ControlPlane) -> Iterator[str]:
    ns = f"mg-{os.urandom(3).hex()}"
    node = f"mctl-{os.urandom(3).hex()}"
    control_plane.kubectl("create", "namespace", ns)
    control_plane.kubectl("-n", ns, "apply", "-f", "-", input=OBJECTS.replace("NS", ns))
    control_plane.kubectl("apply", "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "Node", "metadata": {"name": node, "labels": {"node-role.kubernetes.io/worker": ""}},
        "status": {"conditions": [{"type": "Ready", "status": "True"}],
                   "addresses": [{"type": "InternalIP", "address": "10.0.0.9"}],
                   "nodeInfo": {"kubeletVersion": "v1.31.0", "osImage": "Debian", "kernelVersion": "6.1",
                                "containerRuntimeVersion": "containerd://1.6"}}}))
    try:
        yield ns
    finally:
        control_plane.kubectl("delete", "node", node, "--wait=false", check=False)
        control_plane.kubectl("delete", "namespace", ns, "--wait=false", check=False)


def cells(line: str) -> list[str]:
    return [c for c in re.split(r" {2,}", line.rstrip()) if c]


def normalized(text: str) -> list[list[str]]:
    """Rows of cells with ages blanked (two printers ran a moment apart)."""
    return [["AGE" if AGE.match(c) else re.sub(r"\(\d+[smh]+ ago\)", "(ago)", c) for c in cells(line)]
            for line in text.splitlines() if line.strip()]


def server_columns(cp: ControlPlane, path: str, wide: bool) -> list[str]:
    with cp.client() as c:
        table = c.get(path, headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"}).json()
    return [col["name"].upper() for col in table["columnDefinitions"] if wide or col["priority"] == 0]


PATHS = {"pods": "/api/v1/pods", "deployments": "/apis/apps/v1/deployments", "replicasets": "/apis/apps/v1/replicasets",
         "services": "/api/v1/services", "endpoints": "/api/v1/endpoints", "events": "/api/v1/events",
         "jobs": "/apis/batch/v1/jobs", "cronjobs": "/apis/batch/v1/cronjobs", "daemonsets": "/apis/apps/v1/daemonsets",
         "configmaps": "/api/v1/configmaps", "secrets": "/api/v1/secrets", "namespaces": "/api/v1/namespaces",
         "nodes": "/api/v1/nodes"}


@pytest.mark.parametrize("kind", KINDS)
def test_get_columns_match_the_server_table_and_kubectl(kind: str, objects: str, mctl, control_plane: ControlPlane) -> None:
    for extra in ([], ["-o", "wide"]):
        mine = mctl("-n", objects, "get", kind, *extra)
        theirs = control_plane.kubectl("-n", objects, "get", kind, *extra)
        header = cells(mine.stdout.splitlines()[0])
        assert header == server_columns(control_plane, PATHS[kind], bool(extra))
        assert normalized(mine.stdout) == normalized(theirs.stdout), f"{kind} {extra}\n{mine.stdout}\n{theirs.stdout}"
        # columns line up exactly like kubectl's (same widths) when the ages have the same length
        if [len(x) for x in mine.stdout.splitlines()] == [len(x) for x in theirs.stdout.splitlines()]:
            assert [line.index(h) for line, h in [(mine.stdout.splitlines()[0], c) for c in header]] == \
                [theirs.stdout.splitlines()[0].index(h) for h in header]


def test_get_decorations_like_kubectl(objects: str, mctl, control_plane: ControlPlane) -> None:
    for args in (["pods", "--show-labels"], ["pods", "-L", "app,tier"], ["pods", "--no-headers"],
                 ["deploy,cm"], ["pod/p", "svc/s"], ["all"], ["cm", "--sort-by=.metadata.name"],
                 ["pods", "-l", "app=web"], ["pods", "-l", "app=nope"], ["cm", "--field-selector", "metadata.name=cm"]):
        mine = mctl("-n", objects, "get", *args)
        theirs = control_plane.kubectl("-n", objects, "get", *args)
        assert normalized(mine.stdout) == normalized(theirs.stdout), f"{args}\n{mine.stdout}\n{theirs.stdout}"
        assert mine.stderr.strip() == theirs.stderr.strip()
    mine = mctl("get", "cm", "-A")
    assert cells(mine.stdout.splitlines()[0]) == ["NAMESPACE", "NAME", "DATA", "AGE"]
    assert [objects, "cm", "2"] == [c for c in cells(next(x for x in mine.stdout.splitlines() if " cm " in x))][:3]


@pytest.mark.parametrize("output", ["yaml", "json", "name", "jsonpath={.items[*].metadata.name}",
                                    "jsonpath={range .items[*]}{.metadata.name}{\"\\t\"}{.spec.replicas}{\"\\n\"}{end}",
                                    "custom-columns=NAME:.metadata.name,IMAGES:.spec.template.spec.containers[*].image"])
def test_object_output_formats_match_kubectl(output: str, objects: str, mctl, control_plane: ControlPlane) -> None:
    for args in (["deploy"], ["deploy", "d"], ["cm", "cm"], ["pods"]):
        mine = mctl("-n", objects, "get", *args, "-o", output)
        theirs = control_plane.kubectl("-n", objects, "get", *args, "-o", output)
        assert mine.stdout == theirs.stdout, f"{args} -o {output}"


def test_get_errors_exit_non_zero_with_the_servers_message(objects: str, mctl, control_plane: ControlPlane) -> None:
    for args in (["pod", "nope"], ["pods", "p", "nope"], ["foos"], ["pods", "-o", "xml"], ["deploy/nope", "pod/p"]):
        mine = mctl("-n", objects, "get", *args, check=False)
        theirs = control_plane.kubectl("-n", objects, "get", *args, check=False)
        assert mine.code == 1 and theirs.returncode == 1, args
        assert normalized(mine.stdout) == normalized(theirs.stdout), args
        first_error = mine.stderr.strip().splitlines()[0]
        assert first_error.split(":")[0] == theirs.stderr.strip().splitlines()[0].split(":")[0], (mine.stderr, theirs.stderr)
    assert 'Error from server (NotFound): pods "nope" not found' in mctl("-n", objects, "get", "pod", "nope", check=False).stderr
    assert mctl("-n", objects, "get", "pod", "nope", "--ignore-not-found").stdout == ""
    assert "the server doesn't have a resource type \"foos\"" in mctl("get", "foos", check=False).stderr
    empty = mctl("-n", objects, "get", "pods", "-l", "app=none")
    assert empty.stdout == "" and empty.stderr.strip() == f"No resources found in {objects} namespace."


def test_get_watch_streams_table_rows(objects: str, control_plane: ControlPlane, cache_dir) -> None:
    env = {**os.environ, "MINIK8S_CACHE_DIR": str(cache_dir)}
    proc = subprocess.Popen([sys.executable, "-m", "minictl", "--kubeconfig", str(control_plane.kubeconfig), "-n", objects,
                             "get", "cm", "-w", "--output-watch-events", "--request-timeout", "20"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env,
                            start_new_session=True)
    try:
        first = proc.stdout.readline()  # the header, after the initial list
        assert cells(first) == ["EVENT", "NAME", "DATA", "AGE"]
        lines = [proc.stdout.readline() for _ in range(2)]  # the initial list: cm, kube-root-ca.crt
        assert {cells(x)[1] for x in lines} <= {"cm", "kube-root-ca.crt"}
        control_plane.kubectl("-n", objects, "create", "configmap", "watched", "--from-literal=x=1")
        control_plane.kubectl("-n", objects, "label", "configmap", "watched", "l=1")
        control_plane.kubectl("-n", objects, "delete", "configmap", "watched")
        events = []
        while len(events) < 3:
            line = proc.stdout.readline()
            assert line, proc.stderr.read()
            if "watched" in line:
                events.append(cells(line)[:3])
        assert events == [["ADDED", "watched", "1"], ["MODIFIED", "watched", "1"], ["DELETED", "watched", "1"]]
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)
        proc.stdout.close()
        proc.stderr.close()
    wait_for(lambda: proc.returncode is not None, 5, what="watch exit")


def test_get_by_file(objects: str, mctl, control_plane: ControlPlane, tmp_path) -> None:
    f = tmp_path / "two.yaml"
    f.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm}\n---\n"
                 "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\n")
    for extra in ([], ["-o", "name"]):
        mine = mctl("-n", objects, "get", "-f", str(f), *extra)
        theirs = control_plane.kubectl("-n", objects, "get", "-f", str(f), *extra)
        assert normalized(mine.stdout) == normalized(theirs.stdout)
