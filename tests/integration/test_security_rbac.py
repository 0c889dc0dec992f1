"""RBAC against a real apiserver: namespaced roles, denials, `kubectl auth can-i`, reviews,
aggregation and the bootstrap policy each component runs under."""

from __future__ import annotations

import os
import ssl
import subprocess
from pathlib import Path

import httpx
import pytest

from certs import issue_client_cert, write_kubeconfig
from tests.conftest import KUBECTL, ControlPlane, wait_for

RBAC = "/apis/rbac.authorization.k8s.io/v1"


def identity(cp: ControlPlane, cn: str, orgs: tuple[str, ...] = (), cert_name: str | None = None) -> tuple[httpx.Client, Path]:
    """An HTTPS client and a kubeconfig for a certificate identity."""
    name = cert_name or f"user-{cn.replace(':', '-')}"
    if cert_name is None:
        issue_client_cert(cp.pki, name, cn, orgs)
    cert, key = cp.pki.client(name)
    kubeconfig = write_kubeconfig(cp.cfg.dir / f"{name}.kubeconfig", server=cp.url, ca_cert=cp.pki.ca_cert, user=cn,
                                  client_cert=cert, client_key=key)
    ctx = ssl.create_default_context(cafile=str(cp.pki.ca_cert))
    ctx.load_cert_chain(str(cert), str(key))
    return httpx.Client(base_url=cp.url, verify=ctx, timeout=15), kubeconfig


def can_i(kubeconfig: Path, *args: str) -> bool:
    r = subprocess.run([KUBECTL, "--kubeconfig", str(kubeconfig), "auth", "can-i", *args], capture_output=True, text=True, timeout=30)
    assert r.stdout.strip() in ("yes", "no"), r.stderr
    return r.returncode == 0 and r.stdout.strip() == "yes"


def bind(api: httpx.Client, ns: str, name: str, role: str, subjects: list[dict], kind: str = "ClusterRole") -> None:
    r = api.post(f"{RBAC}/namespaces/{ns}/rolebindings", json={
        "metadata": {"name": name}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": role},
        "subjects": subjects})
    assert r.status_code == 201, r.text


@pytest.fixture
def other_namespace(api: httpx.Client):
    name = f"t-{os.urandom(4).hex()}"
    api.post("/api/v1/namespaces", json={"metadata": {"name": name}}).raise_for_status()
    yield name
    api.delete(f"/api/v1/namespaces/{name}")


def test_namespaced_view_role(control_plane: ControlPlane, api: httpx.Client, namespace: str, other_namespace: str) -> None:
    user = f"viewer-{os.urandom(3).hex()}"
    client, kubeconfig = identity(control_plane, user)
    pod = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
    assert api.post(f"/api/v1/namespaces/{namespace}/pods", json=pod).status_code == 201
    with client:
        r = client.get(f"/api/v1/namespaces/{namespace}/pods")
        assert r.status_code == 403
        bind(api, namespace, "viewer", "view", [{"kind": "User", "name": user, "apiGroup": "rbac.authorization.k8s.io"}])
        wait_for(lambda: client.get(f"/api/v1/namespaces/{namespace}/pods").status_code == 200, what="the binding")
        assert client.get(f"/api/v1/namespaces/{namespace}/pods/p").json()["metadata"]["name"] == "p"
        r = client.post(f"/api/v1/namespaces/{namespace}/pods", json={**pod, "metadata": {"name": "q"}})
        assert r.status_code == 403
        st = r.json()
        assert st["reason"] == "Forbidden" and st["details"] == {"kind": "pods"}
        assert st["message"] == (f'pods is forbidden: User "{user}" cannot create resource "pods" in API group "" '
                                 f'in the namespace "{namespace}"')
        r = client.get(f"/api/v1/namespaces/{other_namespace}/pods")
        assert r.status_code == 403 and f'in the namespace "{other_namespace}"' in r.json()["message"]
        assert client.get(f"/api/v1/namespaces/{namespace}/secrets").status_code == 403  # view excludes secrets
        assert client.delete(f"/api/v1/namespaces/{namespace}/pods/p").status_code == 403
    assert can_i(kubeconfig, "get", "pods", "-n", namespace)
    assert can_i(kubeconfig, "list", "deployments.apps", "-n", namespace)
    assert not can_i(kubeconfig, "create", "pods", "-n", namespace)
    assert not can_i(kubeconfig, "get", "pods", "-n", other_namespace)
    assert not can_i(kubeconfig, "get", "secrets", "-n", namespace)
    listing = subprocess.run([KUBECTL, "--kubeconfig", str(kubeconfig), "auth", "can-i", "--list", "-n", namespace],
                             capture_output=True, text=True, timeout=30).stdout
    assert "pods " in listing and "selfsubjectaccessreviews.authorization.k8s.io" in listing



def test_the_admins_rules_are_listed_once(control_plane: ControlPlane) -> None:
    """system:masters may do anything by itself, but its listed rules are RBAC's (cluster-admin), once."""
    rows = [line.split() for line in control_plane.kubectl("auth", "can-i", "--list").stdout.splitlines()[1:]]
    assert rows.count(["*.*", "[]", "[]", "[*]"]) == 1
    assert rows.count(["[*]", "[]", "[*]"]) == 1


def test_subject_access_reviews(api: httpx.Client, namespace: str) -> None:
    bind(api, namespace, "devs-edit", "edit", [{"kind": "Group", "name": "devs", "apiGroup": "rbac.authorization.k8s.io"}])

    def review(path: str, user: str, groups: list[str], verb: str, resource: str, ns: str = namespace) -> dict:
        spec = {"user": user, "groups": groups, "resourceAttributes": {"namespace": ns, "verb": verb, "resource": resource}}
        kind = "LocalSubjectAccessReview" if "/namespaces/" in path else "SubjectAccessReview"
        r = api.post(path, json={"apiVersion": "authorization.k8s.io/v1", "kind": kind, "spec": spec})
        assert r.status_code == 201, r.text
        return r.json()["status"]

    sar = "/apis/authorization.k8s.io/v1/subjectaccessreviews"
    wait_for(lambda: review(sar, "dave", ["devs"], "create", "pods")["allowed"], what="the binding")
    assert review(sar, "dave", ["devs"], "create", "secrets")["allowed"] is True
    assert review(sar, "dave", [], "create", "secrets")["allowed"] is False
    assert review(sar, "dave", ["devs"], "create", "rolebindings")["allowed"] is False  # edit cannot grant
    local = f"/apis/authorization.k8s.io/v1/namespaces/{namespace}/localsubjectaccessreviews"
    assert review(local, "dave", ["devs"], "get", "pods")["allowed"] is True
    r = api.post(local, json={"spec": {"user": "dave", "resourceAttributes": {"namespace": "elsewhere", "verb": "get",
                                                                             "resource": "pods"}}})
    assert r.status_code == 422
    r = api.post(sar, json={"spec": {"resourceAttributes": {"verb": "get", "resource": "pods"}}})
    assert r.status_code == 422 and "at least one of user or group must be specified" in r.json()["message"]


def test_aggregated_roles_follow_new_cluster_roles(control_plane: ControlPlane, api: httpx.Client) -> None:
    name = f"view-widgets-{os.urandom(3).hex()}"
    rule = {"apiGroups": ["example.com"], "resources": ["widgets"], "verbs": ["get", "list", "watch"]}
    r = api.post(f"{RBAC}/clusterroles", json={
        "metadata": {"name": name, "labels": {"rbac.authorization.k8s.io/aggregate-to-view": "true"}}, "rules": [rule]})
    assert r.status_code == 201, r.text
    try:
        for role in ("view", "edit", "admin"):  # edit aggregates view, admin aggregates edit
            wait_for(lambda role=role: rule in (api.get(f"{RBAC}/clusterroles/{role}").json().get("rules") or []),
                     what=f"{role} to aggregate the new rule")
        yaml_out = control_plane.kubectl("get", "clusterrole", "admin", "-o", "yaml").stdout
        assert "widgets" in yaml_out and "aggregationRule" in yaml_out
    finally:
        api.delete(f"{RBAC}/clusterroles/{name}")
    wait_for(lambda: rule not in (api.get(f"{RBAC}/clusterroles/view").json().get("rules") or []),
             what="view to drop the deleted role's rule")


def test_bootstrap_policy_gives_components_their_jobs(control_plane: ControlPlane, api: httpx.Client, namespace: str) -> None:
    for role in ("cluster-admin", "admin", "edit", "view", "system:node", "system:kube-scheduler",
                 "system:kube-controller-manager", "system:node-proxier", "system:discovery",
                 "system:controller:deployment-controller"):
        assert api.get(f"{RBAC}/clusterroles/{role}").status_code == 200, role
    binding = api.get(f"{RBAC}/clusterrolebindings/cluster-admin").json()
    assert binding["subjects"] == [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "system:masters"}]
    pod = {"metadata": {"name": "unbound"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
    assert api.post(f"/api/v1/namespaces/{namespace}/pods", json=pod).status_code == 201

    scheduler, _ = identity(control_plane, "system:kube-scheduler", cert_name="kube-scheduler")
    with scheduler:
        assert scheduler.get("/api/v1/nodes").status_code == 200
        assert scheduler.get("/api/v1/pods").status_code == 200
        r = scheduler.post(f"/api/v1/namespaces/{namespace}/pods/unbound/binding",
                           json={"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "unbound"},
                                 "target": {"kind": "Node", "name": "somenode"}})
        assert r.status_code == 201, r.text
        assert scheduler.get(f"/api/v1/namespaces/{namespace}/secrets").status_code == 403
        assert scheduler.post(f"/api/v1/namespaces/{namespace}/pods", json=pod).status_code == 403
        lease = {"metadata": {"name": "kube-scheduler"}, "spec": {"holderIdentity": "me"}}
        r = scheduler.post("/apis/coordination.k8s.io/v1/namespaces/kube-system/leases", json=lease)
        assert r.status_code in (201, 409), r.text
    controller_manager, _ = identity(control_plane, "system:kube-controller-manager", cert_name="kube-controller-manager")
    with controller_manager:
        assert controller_manager.get("/apis/apps/v1/deployments").status_code == 200  # informers: list/watch all
        assert controller_manager.delete(f"/api/v1/namespaces/{namespace}/pods/unbound").status_code == 403
    proxy, _ = identity(control_plane, "system:kube-proxy", cert_name="kube-proxy")
    with proxy:
        assert proxy.get("/api/v1/services").status_code == 200
        assert proxy.get("/apis/discovery.k8s.io/v1/endpointslices").status_code == 200
        assert proxy.get("/api/v1/secrets").status_code == 403
    nobody, _ = identity(control_plane, f"nobody-{os.urandom(3).hex()}")
    with nobody:
        assert nobody.get("/api").status_code == 200  # system:discovery
        assert nobody.get("/version").status_code == 200
        assert nobody.get("/metrics").status_code == 403
        r = nobody.post("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", json={
            "spec": {"resourceAttributes": {"verb": "list", "resource": "nodes"}}})
        assert r.status_code == 201 and r.json()["status"]["allowed"] is False


def test_removing_a_binding_takes_access_away(control_plane: ControlPlane, api: httpx.Client, namespace: str) -> None:
    user = f"temp-{os.urandom(3).hex()}"
    client, _ = identity(control_plane, user)
    bind(api, namespace, "temp", "view", [{"kind": "User", "name": user, "apiGroup": "rbac.authorization.k8s.io"}])
    with client:
        wait_for(lambda: client.get(f"/api/v1/namespaces/{namespace}/configmaps").status_code == 200, what="access")
        api.delete(f"{RBAC}/namespaces/{namespace}/rolebindings/temp").raise_for_status()
        wait_for(lambda: client.get(f"/api/v1/namespaces/{namespace}/configmaps").status_code == 403, what="revocation")
