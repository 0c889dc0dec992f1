"""Impersonation against a real apiserver: `kubectl --as/--as-group`, `auth can-i --as`,
`auth whoami --as`, the `impersonate` verb in RBAC, and the audit log naming both users."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import httpx

from tests.conftest import KUBECTL, ControlPlane, audited, read_audit_events, wait_for
from tests.integration.test_security_rbac import bind, identity

RBAC = "/apis/rbac.authorization.k8s.io/v1"


def kubectl(kubeconfig: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([KUBECTL, "--kubeconfig", str(kubeconfig), *args], capture_output=True, text=True, timeout=30)


def test_admin_acts_as_another_user_with_that_users_rights(control_plane: ControlPlane, api: httpx.Client,
                                                           namespace: str) -> None:
    user = f"imp-viewer-{os.urandom(3).hex()}"
    bind(api, namespace, "viewer", "view", [{"kind": "User", "name": user, "apiGroup": "rbac.authorization.k8s.io"}])
    admin = control_plane.kubeconfig
    wait_for(lambda: kubectl(admin, "auth", "can-i", "list", "pods", "-n", namespace, "--as", user).stdout.strip() == "yes",
             what="the binding")
    assert kubectl(admin, "auth", "can-i", "create", "pods", "-n", namespace, "--as", user).stdout.strip() == "no"
    assert kubectl(admin, "auth", "can-i", "create", "pods", "-n", namespace).stdout.strip() == "yes"

    r = kubectl(admin, "get", "pods", "-n", namespace, "--as", user)
    assert r.returncode == 0, r.stderr
    r = kubectl(admin, "create", "configmap", "c", "-n", namespace, "--as", user)
    assert r.returncode == 1
    assert (f'configmaps is forbidden: User "{user}" cannot create resource "configmaps" in API group "" '
            f'in the namespace "{namespace}"') in r.stderr
    # --as-group adds a group: system:masters makes the impersonated user all-powerful
    r = kubectl(admin, "create", "configmap", "c", "-n", namespace, "--as", user, "--as-group", "system:masters")
    assert r.returncode == 0, r.stderr

    who = json.loads(kubectl(admin, "auth", "whoami", "-o", "json", "--as", user, "--as-group", "ops",
                             "--as-group", "devs", "--as-uid", "1234").stdout)
    assert who["status"]["userInfo"] == {"username": user, "uid": "1234",
                                         "groups": ["ops", "devs", "system:authenticated"]}
    who = json.loads(kubectl(admin, "auth", "whoami", "-o", "json", "--as", f"system:serviceaccount:{namespace}:default").stdout)
    assert who["status"]["userInfo"]["groups"] == [
        "system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated"]

    # the audit log (flushed within a second) says who acted as whom
    def created_configmap() -> list[dict]:
        return [e for e in audited(read_audit_events(control_plane.cfg.log("audit")), verb="create",
                                   resource="configmaps", code=201) if user in json.dumps(e)]

    created = wait_for(created_configmap, what="the audit line of the impersonated create")
    assert created[-1]["user"]["username"] == "kubernetes-admin"
    assert created[-1]["impersonatedUser"] == {"username": user, "groups": [
        "system:masters", "system:authenticated"]}


def test_impersonation_needs_the_impersonate_verb(control_plane: ControlPlane, api: httpx.Client, namespace: str) -> None:
    suffix = os.urandom(3).hex()
    me, target = f"imp-me-{suffix}", f"imp-target-{suffix}"
    client, _ = identity(control_plane, me)
    with client:
        r = client.get(f"/api/v1/namespaces/{namespace}/pods", headers={"Impersonate-User": target})
        assert r.status_code == 403
        assert r.json()["message"] == (f'users "{target}" is forbidden: User "{me}" cannot impersonate resource '
                                       f'"users" in API group "" at the cluster scope')
        # allowed to impersonate that one user (not groups): the user's own rights apply, not mine
        role = f"imp-{suffix}"
        r = api.post(f"{RBAC}/clusterroles", json={"metadata": {"name": role}, "rules": [
            {"apiGroups": [""], "resources": ["users"], "verbs": ["impersonate"], "resourceNames": [target]}]})
        assert r.status_code == 201, r.text
        r = api.post(f"{RBAC}/clusterrolebindings", json={
            "metadata": {"name": role}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": [{"kind": "User", "name": me, "apiGroup": "rbac.authorization.k8s.io"}]})
        assert r.status_code == 201, r.text
        try:
            bind(api, namespace, "target-view", "view",
                 [{"kind": "User", "name": target, "apiGroup": "rbac.authorization.k8s.io"}])
            wait_for(lambda: client.get(f"/api/v1/namespaces/{namespace}/pods",
                                        headers={"Impersonate-User": target}).status_code == 200, what="the bindings")
            assert client.get(f"/api/v1/namespaces/{namespace}/pods").status_code == 403  # not as myself
            r = client.get(f"/api/v1/namespaces/{namespace}/pods",
                           headers={"Impersonate-User": target, "Impersonate-Group": "system:masters"})
            assert r.status_code == 403 and 'cannot impersonate resource "groups"' in r.json()["message"]
            r = client.get(f"/api/v1/namespaces/{namespace}/pods", headers={"Impersonate-User": "someone-else"})
            assert r.status_code == 403
            r = client.get(f"/api/v1/namespaces/{namespace}/pods", headers={"Impersonate-Group": "system:masters"})
            assert r.status_code == 400 and "without impersonating a user" in r.json()["message"]
            # the impersonated user's writes are its own: view cannot create
            r = client.post(f"/api/v1/namespaces/{namespace}/configmaps", json={"metadata": {"name": "x"}},
                            headers={"Impersonate-User": target})
            assert r.status_code == 403 and f'User "{target}" cannot create' in r.json()["message"]
        finally:
            api.delete(f"{RBAC}/clusterrolebindings/{role}")
            api.delete(f"{RBAC}/clusterroles/{role}")


def test_edit_role_may_impersonate_service_accounts_of_its_namespace(control_plane: ControlPlane, api: httpx.Client,
                                                                      namespace: str) -> None:
    me = f"imp-editor-{os.urandom(3).hex()}"
    client, _ = identity(control_plane, me)
    bind(api, namespace, "me-edit", "edit", [{"kind": "User", "name": me, "apiGroup": "rbac.authorization.k8s.io"}])
    sa = f"system:serviceaccount:{namespace}:default"
    with client:
        wait_for(lambda: client.get(f"/api/v1/namespaces/{namespace}/configmaps").status_code == 200, what="the binding")
        # the default ServiceAccount has no rights of its own
        r = client.get(f"/api/v1/namespaces/{namespace}/configmaps", headers={"Impersonate-User": sa})
        assert r.status_code == 403
        assert r.json()["message"].startswith(f'configmaps is forbidden: User "{sa}" cannot list')
        other = "system:serviceaccount:kube-system:default"
        r = client.get(f"/api/v1/namespaces/{namespace}/configmaps", headers={"Impersonate-User": other})
        assert r.status_code == 403 and 'cannot impersonate resource "serviceaccounts"' in r.json()["message"]
