"""core/v1 ReplicationController and PodTemplate: served as upstream, driven by kubectl (with its
default client-side validation), and the replicationcontroller manager in a real controller-manager."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.conftest import ControlPlane, wait_for
from tests.integration.controllers.conftest import ControllerManager, get, make_ready


def rc_yaml(name: str, replicas: int, app: str | None = None, selector: bool = True) -> str:
    """An RC manifest; without `selector` the server defaults it (and the RC's labels) from the template."""
    app = app or name
    sel = f"  selector:\n    app: {app}\n" if selector else ""
    return (f"apiVersion: v1\nkind: ReplicationController\nmetadata:\n  name: {name}\n"
            f"spec:\n  replicas: {replicas}\n{sel}"
            f"  template:\n    metadata:\n      labels:\n        app: {app}\n        tier: web\n"
            f"    spec:\n      containers:\n      - name: c\n        image: busybox:1.35\n")


def live_pods(admin: httpx.Client, ns: str, selector: str) -> list[dict]:
    items = get(admin, f"/api/v1/namespaces/{ns}/pods?labelSelector={selector}")["items"]
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]


def rc_path(ns: str, name: str = "") -> str:
    return f"/api/v1/namespaces/{ns}/replicationcontrollers" + (f"/{name}" if name else "")


def test_kubectl_create_scale_get_and_delete(controller_manager: ControllerManager, plane: ControlPlane,
                                             admin: httpx.Client, ns: str):
    kubectl = plane.kubectl
    kubectl("-n", ns, "create", "-f", "-", input=rc_yaml("web", 3, selector=False))
    rc = get(admin, rc_path(ns, "web"))
    # upstream's defaults: selector and labels from the template, generation 1
    assert rc["spec"]["selector"] == {"app": "web", "tier": "web"}
    assert rc["metadata"]["labels"] == {"app": "web", "tier": "web"}
    assert rc["metadata"]["generation"] == 1
    assert rc["spec"]["template"]["spec"]["restartPolicy"] == "Always"
    wait_for(lambda: len(live_pods(admin, ns, "app=web")) == 3, 20, what="3 pods")
    for p in live_pods(admin, ns, "app=web"):
        ref = p["metadata"]["ownerReferences"][0]
        assert p["metadata"]["generateName"] == "web-"
        assert ref == {"apiVersion": "v1", "kind": "ReplicationController", "name": "web",
                       "uid": rc["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}
    make_ready(admin, ns)
    wait_for(lambda: get(admin, rc_path(ns, "web")).get("status", {}).get("readyReplicas") == 3, 20,
             what="status.readyReplicas 3")

    # the /scale subresource (kubectl scale) with the selector as a string, as upstream
    scale = get(admin, rc_path(ns, "web") + "/scale")
    assert (scale["kind"], scale["apiVersion"]) == ("Scale", "autoscaling/v1")
    assert scale["status"] == {"replicas": 3, "selector": "app=web,tier=web"}
    kubectl("-n", ns, "scale", "rc", "web", "--replicas=5")
    wait_for(lambda: len(live_pods(admin, ns, "app=web")) == 5, 20, what="5 pods")
    kubectl("-n", ns, "scale", "replicationcontroller/web", "--replicas=2")
    wait_for(lambda: len(live_pods(admin, ns, "app=web")) == 2, 20, what="2 pods")
    make_ready(admin, ns)

    def caught_up() -> bool:
        cur = get(admin, rc_path(ns, "web"))
        st = cur.get("status") or {}
        return (st.get("replicas"), st.get("readyReplicas"), st.get("observedGeneration")) == (
            2, 2, cur["metadata"]["generation"])

    wait_for(caught_up, 20, what="status caught up")
    assert get(admin, rc_path(ns, "web"))["metadata"]["generation"] == 3

    # kubectl get: upstream's columns, the short name, the "all" category
    out = kubectl("-n", ns, "get", "rc").stdout.splitlines()
    assert out[0].split() == ["NAME", "DESIRED", "CURRENT", "READY", "AGE"]
    assert out[1].split()[:4] == ["web", "2", "2", "2"]
    wide = kubectl("-n", ns, "get", "replicationcontrollers", "-o", "wide").stdout.splitlines()
    assert wide[0].split() == ["NAME", "DESIRED", "CURRENT", "READY", "AGE", "CONTAINERS", "IMAGES", "SELECTOR"]
    assert wide[1].split()[5:] == ["c", "busybox:1.35", "app=web,tier=web"]
    assert "replicationcontroller/web" in kubectl("-n", ns, "get", "all", "-o", "name").stdout
    desc = kubectl("-n", ns, "describe", "rc", "web").stdout
    assert "Selector:     app=web,tier=web" in desc and "2 Running / 0 Waiting / 0 Succeeded / 0 Failed" in desc, desc
    assert "FIELD: selector <map[string]string>" in kubectl("explain", "rc.spec.selector").stdout

    # events come from upstream's component name
    events = get(admin, f"/api/v1/namespaces/{ns}/events")["items"]
    assert any(e["reason"] == "SuccessfulCreate" and e["source"]["component"] == "replication-controller"
               and e["involvedObject"]["kind"] == "ReplicationController" for e in events)

    # deleting the RC deletes its pods (garbage collector, background propagation)
    kubectl("-n", ns, "delete", "rc", "web")
    wait_for(lambda: not get(admin, f"/api/v1/namespaces/{ns}/pods?labelSelector=app=web")["items"], 30,
             what="the pods garbage-collected")
    controller_manager.assert_no_rbac_denials()


def test_kubectl_apply_and_update(controller_manager: ControllerManager, plane: ControlPlane,
                                  admin: httpx.Client, ns: str):
    kubectl = plane.kubectl
    kubectl("-n", ns, "apply", "-f", "-", input=rc_yaml("api", 2))
    wait_for(lambda: len(live_pods(admin, ns, "app=api")) == 2, 20, what="2 pods")
    kubectl("-n", ns, "apply", "-f", "-", input=rc_yaml("api", 4))
    wait_for(lambda: len(live_pods(admin, ns, "app=api")) == 4, 20, what="4 pods")
    # server-side dry run and diff work too
    kubectl("-n", ns, "apply", "--dry-run=server", "-f", "-", input=rc_yaml("api", 1))
    assert get(admin, rc_path(ns, "api"))["spec"]["replicas"] == 4
    # an orphan matching the selector is adopted, not duplicated
    orphan = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "stray", "labels": {"app": "api", "tier": "web"}},
              "spec": {"containers": [{"name": "c", "image": "busybox:1.35"}]}}
    admin.post(f"/api/v1/namespaces/{ns}/pods", json=orphan).raise_for_status()
    uid = get(admin, rc_path(ns, "api"))["metadata"]["uid"]

    def owned_stray() -> bool:
        r = admin.get(f"/api/v1/namespaces/{ns}/pods/stray")
        if r.status_code == 404:
            return True  # adopted, then deleted as the surplus pod (the controller deletes only its own)
        r.raise_for_status()
        return any(ref["uid"] == uid for ref in r.json()["metadata"].get("ownerReferences") or [])

    wait_for(owned_stray, 20, what="the stray pod adopted (or removed as surplus)")
    wait_for(lambda: len(live_pods(admin, ns, "app=api")) == 4, 20, what="4 pods again")
    controller_manager.assert_no_rbac_denials()


def test_validation_errors(plane: ControlPlane, admin: httpx.Client, ns: str):
    body = {"apiVersion": "v1", "kind": "ReplicationController", "metadata": {"name": "bad"},
            "spec": {"replicas": 1, "selector": {"app": "other"},
                     "template": {"metadata": {"labels": {"app": "bad"}},
                                  "spec": {"containers": [{"name": "c", "image": "busybox:1.35"}]}}}}
    r = admin.post(rc_path(ns), json=body)
    assert r.status_code == 422, r.text
    st = r.json()
    assert st["reason"] == "Invalid" and st["details"]["kind"] == "ReplicationController"
    assert [c["field"] for c in st["details"]["causes"]] == ["spec.template.metadata.labels"]
    assert "`selector` does not match template `labels`" in st["message"]

    # restartPolicy must be Always; replicas non-negative; the template is required
    body["spec"]["selector"] = {"app": "bad"}
    body["spec"]["replicas"] = -1
    body["spec"]["template"]["spec"]["restartPolicy"] = "Never"
    fields = {c["field"] for c in admin.post(rc_path(ns), json=body).json()["details"]["causes"]}
    assert fields == {"spec.replicas", "spec.template.spec.restartPolicy"}
    r = admin.post(rc_path(ns), json={"apiVersion": "v1", "kind": "ReplicationController", "metadata": {"name": "x"},
                                      "spec": {}})
    assert r.status_code == 422
    assert {c["field"] for c in r.json()["details"]["causes"]} == {"spec.selector", "spec.template"}

    # kubectl reports the same 422 (and client-side validation knows the kind)
    bad = rc_yaml("mismatch", 1).replace("    app: mismatch\n  template", "    app: nope\n  template")
    res = plane.kubectl("-n", ns, "create", "-f", "-", input=bad, check=False)
    assert res.returncode != 0 and "spec.template.metadata.labels" in res.stderr, res.stderr
    res = plane.kubectl("-n", ns, "create", "-f", "-", input=rc_yaml("typo", 1).replace("replicas:", "replicaz:"),
                        check=False)
    assert res.returncode != 0 and "replicaz" in res.stderr, res.stderr

    # status only through /status, and validated there
    good = {"apiVersion": "v1", "kind": "ReplicationController", "metadata": {"name": "st"},
            "spec": {"replicas": 0, "template": {"metadata": {"labels": {"app": "st"}},
                                                 "spec": {"containers": [{"name": "c", "image": "busybox:1.35"}]}}},
            "status": {"replicas": 7}}
    created = admin.post(rc_path(ns), json=good).json()
    assert not created.get("status", {}).get("replicas")
    merge = {"Content-Type": "application/merge-patch+json"}
    r = admin.patch(rc_path(ns, "st") + "/status", json={"status": {"replicas": 1, "readyReplicas": 2}}, headers=merge)
    assert r.status_code == 422 and r.json()["details"]["causes"][0]["field"] == "status.readyReplicas", r.text
    r = admin.patch(rc_path(ns, "st") + "/status", json={"spec": {"replicas": 3}, "status": {"replicas": 0}}, headers=merge)
    assert r.status_code == 200 and r.json()["spec"]["replicas"] == 0
    # field selector on status.replicas (an int: "0" when unset), as upstream
    names = [i["metadata"]["name"] for i in get(admin, rc_path(ns) + "?fieldSelector=status.replicas=0")["items"]]
    assert names == ["st"]
    assert not get(admin, rc_path(ns) + "?fieldSelector=status.replicas!=0")["items"]

def test_podtemplate_crud(plane: ControlPlane, admin: httpx.Client, ns: str):
    kubectl = plane.kubectl
    manifest = ("apiVersion: v1\nkind: PodTemplate\nmetadata:\n  name: tpl\ntemplate:\n  metadata:\n"
                "    labels:\n      app: tpl\n  spec:\n    containers:\n    - name: a\n      image: busybox:1.35\n"
                "    - name: b\n      image: pause:3.9\n")
    kubectl("-n", ns, "create", "-f", "-", input=manifest)
    pt = get(admin, f"/api/v1/namespaces/{ns}/podtemplates/tpl")
    assert pt["metadata"]["generation"] == 1
    spec = pt["template"]["spec"]
    assert spec["restartPolicy"] == "Always" and spec["containers"][0]["imagePullPolicy"] == "IfNotPresent"
    out = kubectl("-n", ns, "get", "podtemplates").stdout.splitlines()
    assert out[0].split() == ["NAME", "CONTAINERS", "IMAGES", "POD", "LABELS"]
    assert out[1].split() == ["tpl", "a,b", "busybox:1.35,pause:3.9", "app=tpl"]
    # a change of the template bumps the generation; a label change does not
    kubectl("-n", ns, "apply", "-f", "-", input=manifest.replace("pause:3.9", "pause:3.10"))
    assert get(admin, f"/api/v1/namespaces/{ns}/podtemplates/tpl")["metadata"]["generation"] == 2
    kubectl("-n", ns, "label", "podtemplate", "tpl", "x=y")
    assert get(admin, f"/api/v1/namespaces/{ns}/podtemplates/tpl")["metadata"]["generation"] == 2
    # the template is validated like a pod's
    bad = {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "bad"},
           "template": {"metadata": {"labels": {"bad key!": "v"}}, "spec": {"containers": []}}}
    r = admin.post(f"/api/v1/namespaces/{ns}/podtemplates", json=bad)
    assert r.status_code == 422
    assert {c["field"] for c in r.json()["details"]["causes"]} == {"template.labels", "template.spec.containers"}
    kubectl("-n", ns, "delete", "podtemplate", "tpl")
    assert admin.get(f"/api/v1/namespaces/{ns}/podtemplates/tpl").status_code == 404


def test_discovery_and_api_resources(plane: ControlPlane, admin: httpx.Client):
    core = {r["name"]: r for r in get(admin, "/api/v1")["resources"]}
    rc = core["replicationcontrollers"]
    assert (rc["kind"], rc["namespaced"], rc["shortNames"], rc["categories"]) == (
        "ReplicationController", True, ["rc"], ["all"])
    scale = core["replicationcontrollers/scale"]
    assert (scale["group"], scale["version"], scale["kind"]) == ("autoscaling", "v1", "Scale")
    assert "replicationcontrollers/status" in core and core["podtemplates"]["kind"] == "PodTemplate"
    rows = {line.split()[0]: line.split() for line in plane.kubectl("api-resources", "--api-group=").stdout.splitlines()[1:]}
    assert rows["replicationcontrollers"][1] == "rc"
    assert "podtemplates" in rows


def _served(admin: httpx.Client, path: str) -> bool:
    return admin.get(path).status_code == 200


def test_apply_prune_with_the_default_allowlist(controller_manager: ControllerManager, plane: ControlPlane,
                                                admin: httpx.Client, ns: str, tmp_path: Path):
    """kubectl's default prune list names ReplicationController and networking.k8s.io Ingress."""
    if not _served(admin, "/apis/networking.k8s.io/v1"):
        pytest.skip("networking.k8s.io/v1 is not served: kubectl's default prune allowlist needs Ingress")
    cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  labels:\n    app: pr\ndata:\n  k: v\n"
    (tmp_path / "a.yaml").write_text(cm.format(name="one"))
    rc = rc_yaml("pr-rc", 1, app="pr").replace("  name: pr-rc\n", "  name: pr-rc\n  labels:\n    app: pr\n")
    (tmp_path / "b.yaml").write_text(cm.format(name="two") + "---\n" + rc)
    plane.kubectl("-n", ns, "apply", "--prune", "-l", "app=pr", "-f", str(tmp_path))
    assert _served(admin, f"/api/v1/namespaces/{ns}/configmaps/two")
    assert _served(admin, rc_path(ns, "pr-rc"))
    (tmp_path / "b.yaml").unlink()
    out = plane.kubectl("-n", ns, "apply", "--prune", "-l", "app=pr", "-f", str(tmp_path)).stdout
    assert "configmap/two pruned" in out and "replicationcontroller/pr-rc pruned" in out, out
    assert admin.get(f"/api/v1/namespaces/{ns}/configmaps/two").status_code == 404
    wait_for(lambda: admin.get(rc_path(ns, "pr-rc")).status_code == 404, 20, what="the RC pruned")
    assert _served(admin, f"/api/v1/namespaces/{ns}/configmaps/one")
