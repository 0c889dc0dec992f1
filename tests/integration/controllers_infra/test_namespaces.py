"""Namespaces with a real controller-manager: what every namespace gets, and how one goes away."""

from __future__ import annotations

import os

import httpx

from tests.conftest import ControlPlane, wait_for
from tests.integration.controllers_infra.conftest import ControllerManager, wait_for_audit
from tests.integration.test_crd import crontab_crd, make_crd


def test_every_namespace_gets_its_service_account_and_ca(infra_plane: ControlPlane, admin: httpx.Client, ns: str,
                                                         controller_manager: ControllerManager) -> None:
    base = f"/api/v1/namespaces/{ns}"
    sa = admin.get(f"{base}/serviceaccounts/default").json()
    assert sa["metadata"]["name"] == "default"
    cm = wait_for(lambda: (lambda r: r.json() if r.status_code == 200 else None)(admin.get(f"{base}/configmaps/kube-root-ca.crt")),
                  15, what="kube-root-ca.crt")
    assert cm["data"] == {"ca.crt": infra_plane.pki.ca_cert.read_text()}
    # deleted or tampered with: put back
    admin.delete(f"{base}/serviceaccounts/default").raise_for_status()
    cm["data"]["ca.crt"] = "tampered"
    admin.put(f"{base}/configmaps/kube-root-ca.crt", json=cm).raise_for_status()
    wait_for(lambda: admin.get(f"{base}/serviceaccounts/default").status_code == 200, 15, what="the account back")
    wait_for(lambda: admin.get(f"{base}/configmaps/kube-root-ca.crt").json()["data"]["ca.crt"]
             == infra_plane.pki.ca_cert.read_text(), 15, what="the CA back")
    # the controllers acted as their own ServiceAccounts, not as the controller-manager
    assert wait_for_audit(infra_plane, "create", "serviceaccounts", ns) == {
        "system:serviceaccount:kube-system:service-account-controller"}
    assert wait_for_audit(infra_plane, "create", "configmaps", ns) == {
        "system:serviceaccount:kube-system:root-ca-cert-publisher"}
    assert wait_for_audit(infra_plane, "update", "configmaps", ns) == {
        "kubernetes-admin", "system:serviceaccount:kube-system:root-ca-cert-publisher"}  # tampered, repaired
    accounts = {i["metadata"]["name"] for i in admin.get("/api/v1/namespaces/kube-system/serviceaccounts").json()["items"]}
    assert {"service-account-controller", "root-ca-cert-publisher", "namespace-controller",
            "generic-garbage-collector"} <= accounts
    controller_manager.assert_no_rbac_denials()


def test_namespace_deletion_removes_everything_inside(infra_plane: ControlPlane, admin: httpx.Client,
                                                      controller_manager: ControllerManager) -> None:
    name = f"gone-{os.urandom(3).hex()}"
    base = f"/api/v1/namespaces/{name}"
    admin.post("/api/v1/namespaces", json={"metadata": {"name": name}}).raise_for_status()
    wait_for(lambda: admin.get(f"{base}/serviceaccounts/default").status_code == 200, 15, what="the default account")
    admin.post(f"{base}/configmaps", json={"metadata": {"name": "cm"}, "data": {"a": "b"}}).raise_for_status()
    admin.post(f"{base}/secrets", json={"metadata": {"name": "s"}, "stringData": {"a": "b"}}).raise_for_status()
    admin.post(f"{base}/pods", json={"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "x"}]}}
               ).raise_for_status()
    admin.post(f"{base}/services", json={"metadata": {"name": "svc"}, "spec": {"ports": [{"port": 80}]}}).raise_for_status()
    admin.post(f"/apis/apps/v1/namespaces/{name}/deployments", json={
        "metadata": {"name": "d"}, "spec": {"replicas": 0, "selector": {"matchLabels": {"a": "b"}},
                                            "template": {"metadata": {"labels": {"a": "b"}},
                                                         "spec": {"containers": [{"name": "c", "image": "x"}]}}}}
    ).raise_for_status()
    admin.post(f"/apis/coordination.k8s.io/v1/namespaces/{name}/leases", json={"metadata": {"name": "l"}}).raise_for_status()
    # custom resources too: the controller finds them through discovery like the built-in kinds
    group = f"{name}.example.com"
    crd = crontab_crd(group)
    make_crd(admin, crd)
    admin.post(f"/apis/{group}/v1/namespaces/{name}/crontabs", json={
        "apiVersion": f"{group}/v1", "kind": "CronTab", "metadata": {"name": "ct"}, "spec": {"cronSpec": "* * * * *"}}
    ).raise_for_status()
    # an object held by a finalizer keeps the namespace Terminating, with conditions saying why
    admin.post(f"{base}/configmaps", json={"metadata": {"name": "held", "finalizers": ["example.com/hold"]}}
               ).raise_for_status()
    admin.delete(base).raise_for_status()
    assert admin.get(base).json()["status"]["phase"] == "Terminating"

    def waiting_for_finalizer() -> dict | None:
        conds = {c["type"]: c for c in admin.get(base).json()["status"].get("conditions") or []}
        c = conds.get("NamespaceFinalizersRemaining")
        return conds if c and c["status"] == "True" else None

    conds = wait_for(waiting_for_finalizer, 30, 0.2, "NamespaceFinalizersRemaining")
    assert conds["NamespaceFinalizersRemaining"]["message"] == (
        "Some finalizers are remaining: example.com/hold in 1 resource instances")
    assert conds["NamespaceContentRemaining"]["message"] == "Some resources are remaining: configmaps. has 1 resource instances"
    assert conds["NamespaceDeletionDiscoveryFailure"]["status"] == "False"
    assert conds["NamespaceDeletionContentFailure"]["status"] == "False"
    for path in (f"{base}/secrets/s", f"{base}/pods/p", f"{base}/services/svc", f"{base}/configmaps/cm",
                 f"/apis/apps/v1/namespaces/{name}/deployments/d",
                 f"/apis/coordination.k8s.io/v1/namespaces/{name}/leases/l",
                 f"/apis/{group}/v1/namespaces/{name}/crontabs/ct"):
        assert admin.get(path).status_code == 404, path
    ns = admin.get(base).json()
    assert ns["spec"]["finalizers"] == ["kubernetes"]  # not released while content remains
    # the finalizer goes: the namespace follows
    admin.patch(f"{base}/configmaps/held", json={"metadata": {"finalizers": None}},
                headers={"content-type": "application/merge-patch+json"}).raise_for_status()
    wait_for(lambda: admin.get(base).status_code == 404, 40, 0.2, "the namespace to be gone")
    admin.delete(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{crd['metadata']['name']}")
    controller_manager.assert_no_rbac_denials()
