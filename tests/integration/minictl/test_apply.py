"""minictl apply/create/delete against a real apiserver, checked against what kubectl does."""

from __future__ import annotations

import json
import re
import threading
import time

import pytest
import yaml

from minictl.applying import LAST_APPLIED, modified_configuration, original_configuration, three_way_patch
from tests.conftest import ControlPlane, wait_for

DEPLOY_V1 = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, labels: {app: web, team: a}, finalizers: [x.io/b, x.io/a]}
spec:
  replicas: 2
  strategy: {type: RollingUpdate, rollingUpdate: {maxSurge: 1}}
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      volumes: [{name: v, emptyDir: {}}, {name: c, configMap: {name: x}}]
      containers:
      - name: web
        image: nginx:1.26
        env: [{name: A1, value: "1"}, {name: B1, value: "2"}]
        ports: [{containerPort: 80}]
        volumeMounts: [{name: v, mountPath: /v}]
      - name: sidecar
        image: busybox:1.36
        command: [sh, -c, sleep 1]
"""
# image changed, env B1 removed, a port added, the sidecar removed, a label removed, the strategy
# switched (retainKeys), a volume replaced (retainKeys), a finalizer removed
DEPLOY_V2 = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, labels: {app: web}, finalizers: [x.io/a]}
spec:
  replicas: 2
  strategy: {type: Recreate}
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      volumes: [{name: c, secret: {secretName: s}}]
      containers:
      - name: web
        image: nginx:1.27
        env: [{name: C1, value: "3"}, {name: A1, value: "1"}]
        ports: [{containerPort: 80}, {containerPort: 443}]
"""
# whole fields dropped, a primitive list item added
DEPLOY_V3 = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, finalizers: [x.io/c, x.io/a]}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: nginx:1.27
        ports: [{containerPort: 8080, protocol: UDP}]
"""
SERVICE_V1 = """
apiVersion: v1
kind: Service
metadata: {name: svc, annotations: {note: "a & <b>"}}
spec: {selector: {app: web}, ports: [{name: http, port: 80, targetPort: 8080}, {name: dns, port: 53, protocol: UDP}]}
"""
SERVICE_V2 = """
apiVersion: v1
kind: Service
metadata: {name: svc}
spec: {selector: {app: web, tier: fe}, ports: [{name: http, port: 80, targetPort: 9090}]}
"""
SEQUENCES = {
    "deployment": [DEPLOY_V1, DEPLOY_V2, DEPLOY_V3, DEPLOY_V1, DEPLOY_V2],
    "service": [SERVICE_V1, SERVICE_V2, SERVICE_V1],
}
VOLATILE = {"resourceVersion", "uid", "creationTimestamp", "managedFields", "generation", "deletionTimestamp",
            "deletionGracePeriodSeconds", "namespace"}


def _kind_and_name(text: str) -> tuple[str, str]:
    doc = yaml.safe_load(text)
    return doc["kind"].lower(), doc["metadata"]["name"]


def _get(cp: ControlPlane, ns: str, kind: str, name: str) -> dict:
    return json.loads(cp.kubectl("-n", ns, "get", kind, name, "-o", "json").stdout)


def _stable(obj: dict) -> dict:
    meta = {k: v for k, v in obj["metadata"].items() if k not in VOLATILE}
    ann = dict(meta.get("annotations") or {})
    if LAST_APPLIED in ann:
        last = json.loads(ann[LAST_APPLIED])
        last["metadata"].pop("namespace", None)
        ann[LAST_APPLIED] = last
    meta["annotations"] = ann
    spec = {k: v for k, v in (obj.get("spec") or {}).items() if k not in ("clusterIP", "clusterIPs")}
    return {"metadata": meta, "spec": spec}


def _kubectl_patch(stderr: str) -> dict:
    bodies = re.findall(r'"Request Body" body="((?:[^"\\]|\\.)*)"', stderr)
    return [json.loads(json.loads(f'"{b}"')) for b in bodies if b][-1]


@pytest.mark.parametrize("sequence", sorted(SEQUENCES))
def test_client_side_apply_sends_kubectls_patch_and_ends_in_the_same_object(
        sequence: str, control_plane: ControlPlane, mctl, namespace: str) -> None:
    docs = SEQUENCES[sequence]
    kind, name = _kind_and_name(docs[0])
    k = control_plane.kubectl
    other = f"{namespace}-m"
    k("create", "namespace", other)
    try:
        assert "created" in k("-n", namespace, "apply", "-f", "-", input=docs[0]).stdout
        assert mctl("-n", other, "apply", "-f", "-", input=docs[0]).stdout.strip().endswith("created")
        for text in docs[1:]:
            # the patch minictl would compute now is the one kubectl sends
            current = _get(control_plane, namespace, kind, name)
            obj = yaml.safe_load(text)
            obj["metadata"]["namespace"] = namespace
            mine, content_type = three_way_patch(original_configuration(current), modified_configuration(obj)[0], current)
            theirs = _kubectl_patch(k("-n", namespace, "apply", "-f", "-", "-v=9", input=text).stderr)
            assert content_type == "application/strategic-merge-patch+json"
            assert mine == theirs
            assert mctl("-n", other, "apply", "-f", "-", input=text).stdout.strip().endswith("configured")
            # both namespaces hold the same object (last-applied included)
            assert _stable(_get(control_plane, other, kind, name)) == _stable(_get(control_plane, namespace, kind, name))
        assert mctl("-n", other, "apply", "-f", "-", input=docs[-1]).stdout.strip().endswith("unchanged")
    finally:
        for n in (namespace, other):
            k("-n", n, "patch", kind, name, "--type=merge", "-p", '{"metadata":{"finalizers":null}}', check=False)
        k("delete", "namespace", other, "--wait=false", check=False)


def test_kubectl_and_minictl_take_turns(control_plane: ControlPlane, mctl, namespace: str) -> None:
    k = control_plane.kubectl
    k("-n", namespace, "apply", "-f", "-", input=SERVICE_V1)
    k("-n", namespace, "label", "svc", "svc", "added-by=hand")  # not in any file: must survive
    assert mctl("-n", namespace, "apply", "-f", "-", input=SERVICE_V2).stdout == "service/svc configured\n"
    svc = _get(control_plane, namespace, "svc", "svc")
    assert [p["name"] for p in svc["spec"]["ports"]] == ["http"]
    assert svc["metadata"]["labels"] == {"added-by": "hand"}
    assert "note" not in svc["metadata"].get("annotations", {})
    assert "configured" in k("-n", namespace, "apply", "-f", "-", input=SERVICE_V1).stdout
    svc = _get(control_plane, namespace, "svc", "svc")
    assert [p["name"] for p in svc["spec"]["ports"]] == ["http", "dns"]
    assert svc["spec"]["selector"] == {"app": "web"}
    assert "unchanged" in mctl("-n", namespace, "apply", "-f", "-", input=SERVICE_V1).stdout
    assert "unchanged" in k("-n", namespace, "apply", "-f", "-", input=SERVICE_V1).stdout


def test_json_output_round_trips_through_apply(control_plane: ControlPlane, mctl, namespace: str) -> None:
    mctl("-n", namespace, "create", "configmap", "rt", "--from-literal=a=1")
    mctl("-n", namespace, "create", "configmap", "rt2", "--from-literal=b=2")
    one = mctl("-n", namespace, "get", "cm", "rt", "-o", "json").stdout
    # created without apply: the first apply warns and adds the annotation, the second changes nothing
    first = mctl("-n", namespace, "apply", "-f", "-", input=one)
    assert first.stdout == "configmap/rt configured\n"
    assert "missing the kubectl.kubernetes.io/last-applied-configuration annotation" in first.stderr
    again = mctl("-n", namespace, "get", "cm", "rt", "-o", "json").stdout
    # the output carries the object's new resourceVersion, so the annotation changes once more (as with kubectl)
    assert mctl("-n", namespace, "apply", "-f", "-", input=again).stdout == "configmap/rt configured\n"
    control_plane.kubectl("-n", namespace, "create", "configmap", "k-rt", "--from-literal=a=1")
    for _ in range(2):
        mine = mctl("-n", namespace, "apply", "-f", "-",
                    input=mctl("-n", namespace, "get", "cm", "rt", "-o", "json").stdout).stdout
        theirs = control_plane.kubectl("-n", namespace, "apply", "-f", "-", input=control_plane.kubectl(
            "-n", namespace, "get", "cm", "k-rt", "-o", "json").stdout).stdout
        assert mine.replace("rt", "X") == theirs.replace("k-rt", "X")
    edited = json.loads(mctl("-n", namespace, "get", "cm", "rt", "-o", "json").stdout)
    edited["data"]["a"] = "changed"
    assert mctl("-n", namespace, "apply", "-f", "-", input=json.dumps(edited)).stdout == "configmap/rt configured\n"
    assert _get(control_plane, namespace, "cm", "rt")["data"] == {"a": "changed"}
    # a List (get without a name) round-trips too, item by item
    listing = json.loads(mctl("-n", namespace, "get", "cm", "rt", "rt2", "-o", "json").stdout)
    assert listing["kind"] == "List"
    listing["items"][1]["data"]["b"] = "3"
    out = mctl("-n", namespace, "apply", "-f", "-", input=json.dumps(listing)).stdout.splitlines()
    assert out == ["configmap/rt configured", "configmap/rt2 configured"]
    assert _get(control_plane, namespace, "cm", "rt2")["data"] == {"b": "3"}
    # a file without server fields applied twice: unchanged the second time
    yml = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: rt3}\ndata: {c: '1'}\n"
    assert mctl("-n", namespace, "apply", "-f", "-", input=yml).stdout == "configmap/rt3 created\n"
    assert mctl("-n", namespace, "apply", "-f", "-", input=yml).stdout == "configmap/rt3 unchanged\n"


def test_server_side_apply_conflicts_and_force(control_plane: ControlPlane, mctl, namespace: str) -> None:
    cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ssa}\ndata: {k: one}\n"
    assert mctl("-n", namespace, "apply", "--server-side", "-f", "-", input=cm).stdout == \
        "configmap/ssa serverside-applied\n"
    other = cm.replace("one", "two")
    r = mctl("-n", namespace, "apply", "--server-side", "--field-manager", "other", "-f", "-", input=other, check=False)
    assert r.code == 1
    assert "Apply failed with" in r.stderr and "conflict" in r.stderr and "--force-conflicts" in r.stderr
    mctl("-n", namespace, "apply", "--server-side", "--field-manager", "other", "--force-conflicts", "-f", "-",
         input=other)
    obj = json.loads(control_plane.kubectl("-n", namespace, "get", "cm", "ssa", "-o", "json",
                                           "--show-managed-fields").stdout)
    assert obj["data"] == {"k": "two"}
    assert {m["manager"] for m in obj["metadata"]["managedFields"]} >= {"other"}


def test_apply_and_create_errors_carry_the_servers_message(control_plane: ControlPlane, mctl, namespace: str) -> None:
    bad = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: bad}\nspec: {replicas: -1, selector: {matchLabels: {a: b}}, " \
          "template: {metadata: {labels: {a: b}}, spec: {containers: [{name: c, image: x}]}}}\n"
    for verb in ("apply", "create"):
        mine = mctl("-n", namespace, verb, "-f", "-", input=bad, check=False)
        theirs = control_plane.kubectl("-n", namespace, verb, "-f", "-", input=bad, check=False)
        assert mine.code == theirs.returncode == 1
        assert mine.stderr.strip() == theirs.stderr.strip()
        assert 'The Deployment "bad" is invalid: spec.replicas' in mine.stderr
    mctl("-n", namespace, "create", "configmap", "dup")
    mine = mctl("-n", namespace, "create", "configmap", "dup", check=False)
    assert mine.code == 1 and mine.stderr.strip() == 'Error from server (AlreadyExists): configmaps "dup" already exists'
    wrong_ns = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, namespace: elsewhere}\n"
    mine = mctl("-n", namespace, "apply", "-f", "-", input=wrong_ns, check=False)
    theirs = control_plane.kubectl("-n", namespace, "apply", "-f", "-", input=wrong_ns, check=False)
    assert mine.code == 1 and mine.stderr.strip() == theirs.stderr.strip()
    missing_ns = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, namespace: no-such-ns}\n"
    mine = mctl("apply", "-f", "-", input=missing_ns, check=False)
    theirs = control_plane.kubectl("apply", "-f", "-", input=missing_ns, check=False)
    assert mine.code == 1 and mine.stderr.strip() == theirs.stderr.strip()


def test_create_generators_match_kubectl(control_plane: ControlPlane, mctl, namespace: str) -> None:
    cases = [
        ["configmap", "g1", "--from-literal=a=1", "--from-literal=b=two"],
        ["secret", "generic", "g2", "--from-literal=password=s3cret"],
        ["deployment", "g3", "--image=localhost/minik8s/busybox:latest", "--replicas=2", "--port=80"],
        ["serviceaccount", "g4"],
    ]
    for args in cases:
        mine = json.loads(mctl("-n", namespace, "create", *args, "--dry-run=client", "-o", "json").stdout)
        theirs = json.loads(control_plane.kubectl("-n", namespace, "create", *args, "--dry-run=client", "-o", "json").stdout)
        for o in (mine, theirs):
            o["metadata"].pop("creationTimestamp", None)
            o.pop("status", None)
            (o.get("spec") or {}).pop("strategy", None)
            for c in (((o.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers") or []:
                c.pop("resources", None)
            ((o.get("spec") or {}).get("template") or {}).get("metadata", {}).pop("creationTimestamp", None)
        mine["metadata"].pop("namespace", None)
        theirs["metadata"].pop("namespace", None)
        assert mine == theirs, args
        assert mctl("-n", namespace, "create", *args).stdout.strip().endswith(" created")


def test_delete_waits_for_the_object_to_go(control_plane: ControlPlane, mctl, namespace: str) -> None:
    k = control_plane.kubectl
    k("-n", namespace, "apply", "-f", "-", input="apiVersion: v1\nkind: ConfigMap\nmetadata: {name: held, "
                                                  "labels: {grp: x}, finalizers: [example.com/hold]}\n")
    k("-n", namespace, "create", "configmap", "free", "--from-literal=a=1")
    k("-n", namespace, "label", "configmap", "free", "grp=x")
    result: dict = {}

    def run() -> None:
        result["r"] = mctl("-n", namespace, "delete", "cm", "-l", "grp=x", "--timeout", "30")

    t = threading.Thread(target=run)
    t.start()
    # the finalizer holds the object: delete has to keep waiting
    wait_for(lambda: _get(control_plane, namespace, "cm", "held")["metadata"].get("deletionTimestamp"), 10,
             what="deletion started")
    time.sleep(0.5)
    assert t.is_alive(), result
    k("-n", namespace, "patch", "cm", "held", "--type=merge", "-p", '{"metadata":{"finalizers":null}}')
    t.join(30)
    assert not t.is_alive()
    r = result["r"]
    assert r.code == 0
    assert sorted(r.stdout.splitlines()) == [f'configmap "free" deleted from {namespace} namespace',
                                             f'configmap "held" deleted from {namespace} namespace']
    assert k("-n", namespace, "get", "cm", "-l", "grp=x", "-o", "name").stdout == ""
    # nothing left: kubectl's wording, exit 0; by name: the server's NotFound, exit 1
    assert mctl("-n", namespace, "delete", "cm", "-l", "grp=x").stderr.strip() == "No resources found"
    gone = mctl("-n", namespace, "delete", "cm", "held", check=False)
    assert gone.code == 1 and gone.stderr.strip() == 'Error from server (NotFound): configmaps "held" not found'
    assert mctl("-n", namespace, "delete", "cm", "held", "--ignore-not-found").code == 0


def test_delete_by_file_and_cascade(control_plane: ControlPlane, mctl, namespace: str, tmp_path) -> None:
    f = tmp_path / "objs.yaml"
    f.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: f1}\n---\n"
                 "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: f2, finalizers: [example.com/hold]}\n")
    mctl("-n", namespace, "apply", "-f", str(f))
    r = mctl("-n", namespace, "delete", "-f", str(f), "--cascade=foreground", "--wait=false")
    assert r.stdout.splitlines() == [f'configmap "f1" deleted from {namespace} namespace',
                                     f'configmap "f2" deleted from {namespace} namespace']
    held = _get(control_plane, namespace, "cm", "f2")
    # foreground deletion: the apiserver marks the object and adds the foregroundDeletion finalizer
    assert held["metadata"]["deletionTimestamp"]
    assert "foregroundDeletion" in held["metadata"]["finalizers"]
    control_plane.kubectl("-n", namespace, "patch", "cm", "f2", "--type=merge", "-p", '{"metadata":{"finalizers":null}}')
