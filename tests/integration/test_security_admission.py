"""Admission against a real apiserver: ResourceQuota under concurrency, LimitRanger,
PodSecurity, the ServiceAccount plugin and what every namespace gets."""

from __future__ import annotations

import asyncio

import httpx
import orjson

from apiserver.authn.jwt import b64url_decode
from tests.conftest import ControlPlane, wait_for


def pod(name: str, **spec) -> dict:
    return {"metadata": {"name": name}, "spec": {"containers": [{"name": "c", "image": "busybox"}], **spec}}


def test_quota_holds_under_50_concurrent_creates(control_plane: ControlPlane, api: httpx.Client, namespace: str) -> None:
    base = f"/api/v1/namespaces/{namespace}"
    hard = {"pods": "7", "requests.cpu": "1", "count/configmaps": "20"}
    api.post(f"{base}/resourcequotas", json={"metadata": {"name": "q"}, "spec": {"hard": hard}}).raise_for_status()
    # the apiserver measures the quota's usage first (the kube-root-ca.crt ConfigMap already counts)
    q = wait_for(lambda: (lambda q: q if q.get("status", {}).get("used") else None)(api.get(f"{base}/resourcequotas/q").json()),
                 what="the quota's status")
    assert q["status"] == {"hard": hard, "used": {"count/configmaps": "1", "pods": "0", "requests.cpu": "0"}}

    async def storm() -> list[httpx.Response]:
        async with control_plane.async_client() as c:
            def body(i: int) -> dict:
                p = pod(f"p{i}")
                p["spec"]["containers"][0]["resources"] = {"requests": {"cpu": "100m"}}
                return p

            return await asyncio.gather(*(c.post(f"{base}/pods", json=body(i)) for i in range(50)))

    responses = asyncio.run(storm())
    created = [r for r in responses if r.status_code == 201]
    refused = [r for r in responses if r.status_code != 201]
    assert len(created) == 7
    assert all(r.status_code == 403 for r in refused)
    msg = refused[0].json()["message"]
    assert msg.startswith('pods "p') and "is forbidden: ResourceQuota: exceeded quota: q, requested: pods=1, " \
                                          "used: pods=7, limited: pods=7" in msg
    assert len(api.get(f"{base}/pods").json()["items"]) == 7
    used = api.get(f"{base}/resourcequotas/q").json()["status"]["used"]
    assert used == {"count/configmaps": "1", "pods": "7", "requests.cpu": "700m"}
    # usage comes down again when pods go away
    for r in created[:2]:
        api.delete(f"{base}/pods/{r.json()['metadata']['name']}").raise_for_status()
    wait_for(lambda: api.get(f"{base}/resourcequotas/q").json()["status"]["used"]["pods"] == "5", what="usage to drop")
    assert api.post(f"{base}/pods", json={**pod("again"), "spec": {"containers": [
        {"name": "c", "image": "busybox", "resources": {"requests": {"cpu": "100m"}}}]}}).status_code == 201
    r = api.post(f"{base}/pods", json=pod("no-requests"))
    assert r.status_code == 403
    assert r.json()["message"] == ('pods "no-requests" is forbidden: ResourceQuota: failed quota: q: '
                                   "must specify requests.cpu for: c")
    # dry runs are checked but never charged
    assert api.post(f"{base}/configmaps", params={"dryRun": "All"}, json={"metadata": {"name": "dry"}}).status_code == 201
    assert api.get(f"{base}/resourcequotas/q").json()["status"]["used"]["count/configmaps"] == "1"
    # kubectl's columns, as upstream's printer: used/hard per resource, limits.* apart
    api.post(f"{base}/resourcequotas", json={"metadata": {"name": "lim"}, "spec": {"hard": {
        "limits.memory": "1Gi", "requests.memory": "512Mi"}}}).raise_for_status()
    wait_for(lambda: "used" in api.get(f"{base}/resourcequotas/lim").json().get("status", {}), what="its status")
    out = control_plane.kubectl("get", "quota", "-n", namespace).stdout.splitlines()
    assert out[0].split() == ["NAME", "AGE", "REQUEST", "LIMIT"]
    rows = {line.split()[0]: line for line in out[1:]}
    assert "count/configmaps: 1/20, pods: 6/7, requests.cpu: 600m/1" in rows["q"]
    assert rows["lim"].split(None, 2)[2].split() == ["requests.memory:", "0/512Mi", "limits.memory:", "0/1Gi"]


def test_limit_ranger_defaults_and_bounds(api: httpx.Client, namespace: str) -> None:
    base = f"/api/v1/namespaces/{namespace}"
    api.post(f"{base}/limitranges", json={"metadata": {"name": "lr"}, "spec": {"limits": [
        {"type": "Container", "max": {"cpu": "1"}, "default": {"cpu": "500m", "memory": "256Mi"},
         "defaultRequest": {"cpu": "100m"}}]}}).raise_for_status()
    lr = api.get(f"{base}/limitranges/lr").json()  # a consistent read: the apiserver's cache has it now
    assert lr["spec"]["limits"][0]["defaultRequest"] == {"cpu": "100m", "memory": "256Mi"}  # upstream's defaulting
    created = api.post(f"{base}/pods", json=pod("defaulted"))
    assert created.status_code == 201, created.text
    p = created.json()
    assert p["spec"]["containers"][0]["resources"] == {"limits": {"cpu": "500m", "memory": "256Mi"},
                                                       "requests": {"cpu": "100m", "memory": "256Mi"}}
    assert p["metadata"]["annotations"]["kubernetes.io/limit-ranger"] == (
        "LimitRanger plugin set: cpu, memory request for container c; cpu, memory limit for container c")
    big = pod("big")
    big["spec"]["containers"][0]["resources"] = {"limits": {"cpu": "2"}}
    r = api.post(f"{base}/pods", json=big)
    assert r.status_code == 403
    assert r.json()["message"] == ('pods "big" is forbidden: LimitRanger: maximum cpu usage per Container is 1, '
                                   "but limit is 2")


def test_pod_security_restricted_namespace(api: httpx.Client, namespace: str) -> None:
    api.patch(f"/api/v1/namespaces/{namespace}", json={"metadata": {"labels": {
        "pod-security.kubernetes.io/enforce": "restricted"}}}, headers={"content-type": "application/merge-patch+json"}
    ).raise_for_status()
    base = f"/api/v1/namespaces/{namespace}"

    def rejected() -> dict | None:
        r = api.post(f"{base}/pods", json=pod("plain"))
        if r.status_code == 201:  # admitted before the label reached the apiserver's cache: try again
            api.delete(f"{base}/pods/plain", params={"gracePeriodSeconds": "0"}).raise_for_status()
        return r.json() if r.status_code == 403 else None

    st = wait_for(rejected, what="the namespace label to apply")
    assert st["message"].startswith('pods "plain" is forbidden: PodSecurity: violates PodSecurity "restricted:latest": '
                                    "allowPrivilegeEscalation != false")
    good = pod("good", securityContext={"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}})
    good["spec"]["containers"][0]["securityContext"] = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
    assert api.post(f"{base}/pods", json=good).status_code == 201
    api.patch(f"/api/v1/namespaces/{namespace}", json={"metadata": {"labels": {
        "pod-security.kubernetes.io/enforce": "baseline"}}}, headers={"content-type": "application/merge-patch+json"}
    ).raise_for_status()
    wait_for(lambda: api.post(f"{base}/pods", json=pod("plain-baseline")).status_code == 201, what="baseline to apply")
    r = api.post(f"{base}/pods", json=pod("host", hostNetwork=True))
    assert r.status_code == 403 and "host namespaces (hostNetwork=true)" in r.json()["message"]


def test_service_accounts_and_namespace_defaults(control_plane: ControlPlane, api: httpx.Client, namespace: str) -> None:
    base = f"/api/v1/namespaces/{namespace}"
    wait_for(lambda: api.get(f"{base}/serviceaccounts/default").status_code == 200, what="the default ServiceAccount")
    ca = wait_for(lambda: api.get(f"{base}/configmaps/kube-root-ca.crt").json().get("data"), what="kube-root-ca.crt")
    assert ca["ca.crt"] == control_plane.pki.ca_cert.read_text()
    p = api.post(f"{base}/pods", json=pod("p")).json()
    assert p["spec"]["serviceAccountName"] == "default"
    (vol,) = [v for v in p["spec"]["volumes"] if v["name"].startswith("kube-api-access-")]
    assert [next(iter(s)) for s in vol["projected"]["sources"]] == ["serviceAccountToken", "configMap", "downwardAPI"]
    assert p["spec"]["containers"][0]["volumeMounts"] == [
        {"name": vol["name"], "readOnly": True, "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}]
    r = api.post(f"{base}/pods", json=pod("q", serviceAccountName="ghost"))
    assert r.status_code == 403 and r.json()["message"] == (
        f'pods "q" is forbidden: ServiceAccount: error looking up service account {namespace}/ghost: '
        'serviceaccount "ghost" not found')
    assert "volumes" not in api.post(f"{base}/pods", json=pod("r", automountServiceAccountToken=False)).json()["spec"]
    # a token bound to the pod dies with it
    tr = api.post(f"{base}/serviceaccounts/default/token", json={"spec": {"boundObjectRef": {
        "kind": "Pod", "apiVersion": "v1", "name": "p", "uid": p["metadata"]["uid"]}}}).json()
    claims = orjson.loads(b64url_decode(tr["status"]["token"].split(".")[1]))
    assert claims["kubernetes.io"]["pod"] == {"name": "p", "uid": p["metadata"]["uid"]}
    # what a kubelet asks for its projected volume (3607 s) is valid a year, flagged stale after 3607 s
    kubelet_tr = api.post(f"{base}/serviceaccounts/default/token", json={"spec": {"expirationSeconds": 3607,
        "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "p"}}}).json()
    c = orjson.loads(b64url_decode(kubelet_tr["status"]["token"].split(".")[1]))
    assert c["exp"] - c["iat"] == 365 * 24 * 3600 and c["kubernetes.io"]["warnafter"] == c["iat"] + 3607
    assert kubelet_tr["spec"]["boundObjectRef"]["uid"] == p["metadata"]["uid"]
    review = {"spec": {"token": tr["status"]["token"]}}
    assert api.post("/apis/authentication.k8s.io/v1/tokenreviews", json=review).json()["status"]["authenticated"] is True
    api.delete(f"{base}/pods/p").raise_for_status()
    wait_for(lambda: api.post("/apis/authentication.k8s.io/v1/tokenreviews", json=review).json()["status"]["authenticated"]
             is False, what="the pod-bound token to be invalidated")
