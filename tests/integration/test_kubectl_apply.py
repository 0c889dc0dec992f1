"""kubectl apply: client-side 3-way merge (strategic merge patch) and server-side apply."""

from __future__ import annotations

import json

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
