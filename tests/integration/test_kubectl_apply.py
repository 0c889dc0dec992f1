"""kubectl apply: client-side 3-way merge (strategic merge patch) and server-side apply."""

from __future__ import annotations

import json
import re

from tests.conftest import ControlPlane

V1 = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: nginx:1.26
        env: [{name: A, value: "1"}, {name: B, value: "2"}]
        ports: [{containerPort: 80}]
      - name: sidecar
        image: busybox:1.36
"""

# image changed, env B removed, a port added, the sidecar removed
V2 = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: nginx:1.27
        env: [{name: A, value: "1"}]
        ports: [{containerPort: 80}, {containerPort: 443}]
"""


def get(cp: ControlPlane, ns: str, *what: str) -> dict:
    return json.loads(cp.kubectl("-n", ns, "get", *what, "-o", "json", "--show-managed-fields").stdout)


def test_client_side_apply_three_way_merge(control_plane: ControlPlane, namespace: str) -> None:
    k = control_plane.kubectl
    assert "created" in k("-n", namespace, "apply", "-f", "-", input=V1).stdout
    # a change made by someone else (not in the file) must survive the next apply
    k("-n", namespace, "annotate", "deploy", "web", "team=blue")
    assert "configured" in k("-n", namespace, "apply", "-f", "-", input=V2).stdout
    d = get(control_plane, namespace, "deploy", "web")
    containers = d["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["web"]
    web = containers[0]
    assert web["image"] == "nginx:1.27"
    assert web["env"] == [{"name": "A", "value": "1"}]
    assert sorted(p["containerPort"] for p in web["ports"]) == [80, 443]
    assert d["metadata"]["annotations"]["team"] == "blue"
    assert d["metadata"]["generation"] == 2
    # applying the same file again changes nothing
    rv = d["metadata"]["resourceVersion"]
    assert "unchanged" in k("-n", namespace, "apply", "-f", "-", input=V2).stdout
    assert get(control_plane, namespace, "deploy", "web")["metadata"]["resourceVersion"] == rv


def test_diff_and_dry_run_server(control_plane: ControlPlane, namespace: str) -> None:
    k = control_plane.kubectl
    k("-n", namespace, "apply", "-f", "-", input=V1)
    r = k("-n", namespace, "diff", "-f", "-", input=V2, check=False)
    assert r.returncode == 1 and "nginx:1.27" in r.stdout  # kubectl diff exits 1 when there are differences
    out = k("-n", namespace, "apply", "--dry-run=server", "-f", "-", input=V2).stdout
    assert "server dry run" in out
    d = get(control_plane, namespace, "deploy", "web")
    assert d["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.26"


def test_server_side_apply_conflicts_and_force(control_plane: ControlPlane, namespace: str) -> None:
    k = control_plane.kubectl
    assert "serverside-applied" in k("-n", namespace, "apply", "--server-side", "-f", "-", input=V1).stdout
    d = get(control_plane, namespace, "deploy", "web")
    managers = {(m["manager"], m["operation"]) for m in d["metadata"]["managedFields"]}
    assert ("kubectl", "Apply") in managers
    apply_entry = next(m for m in d["metadata"]["managedFields"] if m["operation"] == "Apply")
    assert "f:replicas" in apply_entry["fieldsV1"]["f:spec"]
    assert 'k:{"name":"web"}' in apply_entry["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"]

    # another manager takes spec.replicas
    k("-n", namespace, "scale", "deploy", "web", "--replicas=5")
    # re-applying the file (replicas: 2) conflicts with that manager
    r = k("-n", namespace, "apply", "--server-side", "-f", "-", input=V2, check=False)
    assert r.returncode != 0 and "conflict" in r.stderr.lower() and ".spec.replicas" in r.stderr
    d = get(control_plane, namespace, "deploy", "web")
    assert d["spec"]["replicas"] == 5
    assert d["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.26"  # nothing applied
    # --force-conflicts wins and takes ownership
    k("-n", namespace, "apply", "--server-side", "--force-conflicts", "-f", "-", input=V2)
    d = get(control_plane, namespace, "deploy", "web")
    assert d["spec"]["replicas"] == 2
    containers = d["spec"]["template"]["spec"]["containers"]
    # fields the applier owned and no longer applies are removed: the sidecar and env B
    assert [c["name"] for c in containers] == ["web"]
    assert containers[0]["env"] == [{"name": "A", "value": "1"}]
    assert sorted(p["containerPort"] for p in containers[0]["ports"]) == [80, 443]
    apply_entry = next(m for m in d["metadata"]["managedFields"] if m["operation"] == "Apply")
    assert "f:replicas" in apply_entry["fieldsV1"]["f:spec"]


def test_server_side_apply_creates_and_field_managers(control_plane: ControlPlane, namespace: str) -> None:
    k = control_plane.kubectl
    cm = f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: ssa, namespace: {namespace}}}\ndata: {{a: '1', b: '2'}}\n"
    k("apply", "--server-side", "--field-manager=alice", "-f", "-", input=cm)
    cm_bob = f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: ssa, namespace: {namespace}}}\ndata: {{c: '3'}}\n"
    k("apply", "--server-side", "--field-manager=bob", "-f", "-", input=cm_bob)
    got = get(control_plane, namespace, "cm", "ssa")
    assert got["data"] == {"a": "1", "b": "2", "c": "3"}  # bob's apply leaves alice's fields alone
    # alice drops b: it goes; bob's c stays
    cm2 = f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: ssa, namespace: {namespace}}}\ndata: {{a: '1'}}\n"
    k("apply", "--server-side", "--field-manager=alice", "-f", "-", input=cm2)
    assert get(control_plane, namespace, "cm", "ssa")["data"] == {"a": "1", "c": "3"}
    # bob changing alice's value conflicts
    cm3 = f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: ssa, namespace: {namespace}}}\ndata: {{a: 'x', c: '3'}}\n"
    r = k("apply", "--server-side", "--field-manager=bob", "-f", "-", input=cm3, check=False)
    assert r.returncode != 0 and 'conflict with "alice"' in r.stderr


def test_apply_patch_without_field_manager_is_invalid(control_plane: ControlPlane, namespace: str) -> None:
    """As upstream's ValidatePatchOptions: 422, the cause on fieldManager; nothing is created."""
    with control_plane.client() as c:
        for query in ("", "?fieldManager="):
            r = c.patch(f"/api/v1/namespaces/{namespace}/configmaps/no-manager{query}",
                        content=b'{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"no-manager"}}',
                        headers={"Content-Type": "application/apply-patch+yaml"})
            assert r.status_code == 422, r.text
            assert r.json()["reason"] == "Invalid"
            assert r.json()["details"]["causes"][0]["field"] == "fieldManager"
        assert c.get(f"/api/v1/namespaces/{namespace}/configmaps/no-manager").status_code == 404
        # an empty fieldManager on other writes means "unset": the user agent's product manages
        r = c.post(f"/api/v1/namespaces/{namespace}/configmaps?fieldManager=",
                   json={"metadata": {"name": "empty-manager"}, "data": {"a": "1"}}, headers={"User-Agent": "tool/1.0"})
        assert r.status_code == 201, r.text
        assert r.json()["metadata"]["managedFields"][0]["manager"] == "tool"


APPLY = {"Content-Type": "application/apply-patch+yaml"}
DEPLOY = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: nginx:1.26}]}
"""
ALICE_FIELDS = {"f:spec": {
    "f:replicas": {}, "f:selector": {"f:matchLabels": {"f:app": {}}},
    "f:template": {"f:metadata": {"f:labels": {"f:app": {}}},
                   "f:spec": {"f:containers": {'k:{"name":"web"}': {".": {}, "f:image": {}, "f:name": {}}}}}}}
STATUS = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
          "status": {"observedGeneration": 1, "replicas": 2,
                     "conditions": [{"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}]}}
STATUS_FIELDS = {"f:status": {
    "f:conditions": {'k:{"type":"Progressing"}': {".": {}, "f:reason": {}, "f:status": {}, "f:type": {}}},
    "f:observedGeneration": {}, "f:replicas": {}}}


def entries(obj: dict) -> list[dict]:
    """The managedFields with each time checked (RFC 3339, seconds) and replaced by "T"."""
    out = []
    for e in obj["metadata"]["managedFields"]:
        if "time" in e:
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", e["time"]), e
            e = {**e, "time": "T"}
        out.append(e)
    return out


def apply_entry(manager: str, fields: dict, subresource: str = "", time: bool = True) -> dict:
    e = {"manager": manager, "operation": "Apply", "apiVersion": "apps/v1", **({"time": "T"} if time else {}),
         "fieldsType": "FieldsV1", "fieldsV1": fields}
    return {**e, "subresource": subresource} if subresource else e


def update_entry(manager: str, fields: dict, subresource: str = "", time: bool = True) -> dict:
    return {**apply_entry(manager, fields, subresource, time), "operation": "Update"}


def test_server_side_apply_to_status_records_a_status_entry(control_plane: ControlPlane, namespace: str) -> None:
    """As upstream: an Apply through /status owns the applied status fields in an entry with
    subresource "status"; Updates through /status do likewise, and neither touches spec owners."""
    base = f"/apis/apps/v1/namespaces/{namespace}/deployments/web"
    with control_plane.client() as c:
        assert c.patch(f"{base}?fieldManager=alice", content=DEPLOY.encode(), headers=APPLY).status_code == 201
        r = c.patch(f"{base}/status?fieldManager=st", content=json.dumps(STATUS).encode(), headers=APPLY)
        assert r.status_code == 200, r.text
        assert r.json()["status"]["conditions"][0]["reason"] == "NewReplicaSetAvailable"
        assert entries(r.json()) == [apply_entry("alice", ALICE_FIELDS), apply_entry("st", STATUS_FIELDS, "status")]
        assert entries(c.get(base).json()) == entries(r.json())

        # a merge patch through /status takes status.replicas: an Update entry with subresource status
        r = c.patch(f"{base}/status?fieldManager=ctrl", json={"status": {"replicas": 3}},
                    headers={"Content-Type": "application/merge-patch+json"})
        assert r.status_code == 200, r.text
        st_fields = {"f:status": {k: v for k, v in STATUS_FIELDS["f:status"].items() if k != "f:replicas"}}
        assert entries(r.json()) == [
            apply_entry("alice", ALICE_FIELDS), apply_entry("st", st_fields, "status"),
            update_entry("ctrl", {"f:status": {"f:replicas": {}}}, "status")]
        # a /status write cannot set managedFields
        body = {**r.json(), "status": {**r.json()["status"], "replicas": 4}}
        body["metadata"] = {**body["metadata"], "managedFields": [{}]}
        r = c.put(f"{base}/status?fieldManager=ctrl", json=body)
        assert r.status_code == 200, r.text
        assert [e["manager"] for e in r.json()["metadata"]["managedFields"]] == ["alice", "st", "ctrl"]

        # the status applier changing ctrl's field conflicts, naming the subresource
        r = c.patch(f"{base}/status?fieldManager=st", content=json.dumps(STATUS).encode(), headers=APPLY)
        assert r.status_code == 409, r.text
        assert r.json()["message"] == (
            'Apply failed with 1 conflict: conflict with "ctrl" with subresource "status" using apps/v1: .status.replicas')

        # applying the object itself leaves the status owners alone (and is a no-op when nothing changed)
        rv = c.get(base).json()["metadata"]["resourceVersion"]
        r = c.patch(f"{base}?fieldManager=alice", content=DEPLOY.encode(), headers=APPLY)
        assert r.status_code == 200, r.text
        assert r.json()["metadata"]["resourceVersion"] == rv
        assert [(e["manager"], e.get("subresource")) for e in r.json()["metadata"]["managedFields"]] == [
            ("alice", None), ("st", "status"), ("ctrl", "status")]

        # /status of something missing is a 404, not a create
        r = c.patch(f"/apis/apps/v1/namespaces/{namespace}/deployments/nope/status?fieldManager=st",
                    content=json.dumps({**STATUS, "metadata": {"name": "nope"}}).encode(), headers=APPLY)
        assert r.status_code == 404, r.text


def test_apply_carrying_managed_fields_is_a_bad_request(control_plane: ControlPlane, namespace: str) -> None:
    """Upstream's structured merge manager: any metadata.managedFields list in an apply (even []) is a
    400 "metadata.managedFields must be nil"; null is fine."""
    base = f"/api/v1/namespaces/{namespace}/configmaps/mf"
    with control_plane.client() as c:
        for managed in ("[]", "[{manager: x, operation: Apply, apiVersion: v1, fieldsType: FieldsV1, fieldsV1: {}}]"):
            cm = f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: mf, managedFields: {managed}}}\ndata: {{a: '1'}}\n"
            r = c.patch(f"{base}?fieldManager=me", content=cm.encode(), headers=APPLY)
            assert r.status_code == 400, r.text
            assert r.json() == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                                "message": "metadata.managedFields must be nil", "reason": "BadRequest", "code": 400}
        assert c.get(base).status_code == 404  # nothing was created
        cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: mf, managedFields: null}\ndata: {a: '1'}\n"
        r = c.patch(f"{base}?fieldManager=me", content=cm.encode(), headers=APPLY)
        assert r.status_code == 201, r.text
        # the same for an existing object and through /status
        r = c.patch(f"{base}?fieldManager=me", content=cm.replace("null", "[]").encode(), headers=APPLY)
        assert r.status_code == 400 and r.json()["message"] == "metadata.managedFields must be nil", r.text
        dep = {**STATUS, "metadata": {"name": "web", "managedFields": []}}
        r = c.patch(f"/apis/apps/v1/namespaces/{namespace}/deployments/web/status?fieldManager=me",
                    content=json.dumps(dep).encode(), headers=APPLY)
        assert r.status_code == 400 and r.json()["message"] == "metadata.managedFields must be nil", r.text


def test_kubectl_scale_records_a_scale_entry(control_plane: ControlPlane, namespace: str) -> None:
    """Upstream's ScaleHandler: a write through /scale owns the parent's spec.replicas in an entry with
    subresource "scale" (parent's apiVersion, no time), taken from whoever owned it before."""
    k = control_plane.kubectl
    base = f"/apis/apps/v1/namespaces/{namespace}/deployments/web"
    with control_plane.client() as c:
        assert c.patch(f"{base}?fieldManager=alice", content=DEPLOY.encode(), headers=APPLY).status_code == 201
        r = c.patch(f"{base}/status?fieldManager=ctrl", json={"status": {"replicas": 2}},
                    headers={"Content-Type": "application/merge-patch+json"})
        assert r.status_code == 200, r.text
        k("-n", namespace, "scale", "deploy", "web", "--replicas=5")
        d = c.get(base).json()
        assert d["spec"]["replicas"] == 5
        alice_rest = {"f:spec": {f: v for f, v in ALICE_FIELDS["f:spec"].items() if f != "f:replicas"}}
        scaled = [apply_entry("alice", alice_rest),
                  update_entry("kubectl", {"f:spec": {"f:replicas": {}}}, "scale", time=False),
                  update_entry("ctrl", {"f:status": {"f:replicas": {}}}, "status")]
        assert entries(d) == scaled
        # the scale's own answer carries no managedFields, as upstream's Scale
        assert "managedFields" not in c.get(f"{base}/scale").json()["metadata"]

        # re-applying replicas: 2 conflicts with the scaler
        r = k("-n", namespace, "apply", "--server-side", "--field-manager=alice", "-f", "-", input=DEPLOY, check=False)
        assert r.returncode != 0
        assert 'conflict with "kubectl" with subresource "scale" using apps/v1: .spec.replicas' in r.stderr

        # a PUT of the Scale by another manager moves the ownership again; a no-op scale changes nothing
        scale = c.get(f"{base}/scale").json()
        scale["spec"]["replicas"] = 3
        r = c.put(f"{base}/scale?fieldManager=hpa", json=scale)
        assert r.status_code == 200, r.text
        d = c.get(base).json()
        assert entries(d) == [scaled[0], update_entry("hpa", {"f:spec": {"f:replicas": {}}}, "scale", time=False),
                              scaled[2]]
        rv = d["metadata"]["resourceVersion"]
        k("-n", namespace, "scale", "deploy", "web", "--replicas=3")
        assert c.get(base).json()["metadata"]["resourceVersion"] == rv

        # forcing the apply takes it back into the applier's entry
        k("-n", namespace, "apply", "--server-side", "--force-conflicts", "--field-manager=alice", "-f", "-", input=DEPLOY)
        d = c.get(base).json()
        assert d["spec"]["replicas"] == 2
        assert entries(d) == [apply_entry("alice", ALICE_FIELDS), scaled[2]]


def test_fields_mutating_admission_adds_belong_to_no_manager(control_plane: ControlPlane, namespace: str) -> None:
    """As upstream, the writer's fields are recorded on the object as it sent it (defaulted):
    the token volume and tolerations the ServiceAccount and DefaultTolerationSeconds plugins add
    are no one's, the defaults are the writer's."""
    with control_plane.client() as api:
        r = api.post(f"/api/v1/namespaces/{namespace}/pods", params={"fieldManager": "tester"}, json={
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "owned"},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}})
        assert r.status_code == 201, r.text
        pod = r.json()
        assert pod["spec"]["volumes"][0]["name"].startswith("kube-api-access-") and pod["spec"]["tolerations"]
        entries = pod["metadata"]["managedFields"]
        assert [(e["manager"], e["operation"]) for e in entries] == [("tester", "Update")]
        spec_fields = entries[0]["fieldsV1"]["f:spec"]
        assert "f:containers" in spec_fields and "f:restartPolicy" in spec_fields and "f:dnsPolicy" in spec_fields
        for added in ("f:volumes", "f:tolerations", "f:serviceAccountName"):
            assert added not in spec_fields, added
        # an update by another writer that changes a label: the admission-added fields stay no one's
        pod["metadata"]["labels"] = {"a": "b"}
        r = api.put(f"/api/v1/namespaces/{namespace}/pods/owned", params={"fieldManager": "relabeller"}, json=pod)
        assert r.status_code == 200, r.text
        managers = {e["manager"]: e["fieldsV1"] for e in r.json()["metadata"]["managedFields"]}
        assert list(managers["relabeller"]) == ["f:metadata"] and "f:a" in managers["relabeller"]["f:metadata"]["f:labels"]
        assert "f:volumes" not in managers["tester"]["f:spec"]
