"""Authentication against a real apiserver: TLS only, x509, ServiceAccount, bootstrap and
static tokens, anonymous only behind its flag."""

from __future__ import annotations

import base64
import os
import shutil
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import kubernetes
import orjson
import pytest

from apiserver.authn.jwt import Signer, b64url, b64url_decode, load_private_key
from apiserver.authn.serviceaccount import TokenIssuer
from certs import ensure_pki, write_kubeconfig
from tests.conftest import KUBECTL, ControlPlane, wait_for

ISSUER = "https://kubernetes.default.svc.cluster.local"


def kubectl_as(cp: ControlPlane, kubeconfig: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([KUBECTL, "--kubeconfig", str(kubeconfig), *args], capture_output=True, text=True, timeout=30)


def token_client(cp: ControlPlane, token: str) -> httpx.Client:
    ctx = ssl.create_default_context(cafile=str(cp.pki.ca_cert))
    return httpx.Client(base_url=cp.url, verify=ctx, timeout=15, headers={"Authorization": f"Bearer {token}"})


@pytest.fixture
def service_account(control_plane: ControlPlane, api: httpx.Client, namespace: str) -> tuple[str, str]:
    r = api.post(f"/api/v1/namespaces/{namespace}/serviceaccounts", json={"metadata": {"name": "bot"}})
    assert r.status_code == 201, r.text
    return namespace, "bot"


def create_token(api: httpx.Client, ns: str, sa: str, **spec) -> str:
    r = api.post(f"/api/v1/namespaces/{ns}/serviceaccounts/{sa}/token",
                 json={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec})
    assert r.status_code == 201, r.text
    return r.json()["status"]["token"]


def test_admin_kubeconfig_over_tls(control_plane: ControlPlane) -> None:
    out = control_plane.kubectl("get", "namespace", "default", "-o", "jsonpath={.metadata.name}").stdout
    assert out == "default"
    who = control_plane.kubectl("auth", "whoami", "-o", "json").stdout
    user = orjson.loads(who)["status"]["userInfo"]
    assert user["username"] == "kubernetes-admin" and "system:masters" in user["groups"]
    client = kubernetes.config.new_client_from_config(config_file=str(control_plane.kubeconfig))
    try:
        assert kubernetes.client.CoreV1Api(client).read_namespace("kube-system").metadata.name == "kube-system"
    finally:
        client.close()


def test_plain_http_and_missing_credentials_are_refused(control_plane: ControlPlane) -> None:
    with pytest.raises(httpx.HTTPError):
        httpx.get(control_plane.url.replace("https://", "http://") + "/api/v1/namespaces", timeout=5)
    ctx = ssl.create_default_context(cafile=str(control_plane.pki.ca_cert))
    r = httpx.get(control_plane.url + "/api/v1/namespaces", verify=ctx, timeout=5)
    assert r.status_code == 401
    assert r.json() == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                        "message": "Unauthorized", "reason": "Unauthorized", "code": 401}


def test_certificate_from_another_ca_fails_tls(control_plane: ControlPlane) -> None:
    with tempfile.TemporaryDirectory() as d:
        foreign = ensure_pki(Path(d) / "pki")
        ctx = ssl.create_default_context(cafile=str(control_plane.pki.ca_cert))
        ctx.load_cert_chain(*map(str, foreign.client("admin")))  # CN=kubernetes-admin, O=system:masters
        with pytest.raises((httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)):
            httpx.get(control_plane.url + "/api/v1/namespaces", verify=ctx, timeout=5)


def test_service_account_token_with_kubectl_and_python_client(control_plane: ControlPlane, api: httpx.Client,
                                                               service_account: tuple[str, str]) -> None:
    ns, sa = service_account
    token = control_plane.kubectl("-n", ns, "create", "token", sa).stdout.strip()
    claims = orjson.loads(b64url_decode(token.split(".")[1]))
    assert claims["sub"] == f"system:serviceaccount:{ns}:{sa}" and claims["iss"] == ISSUER and claims["aud"] == [ISSUER]
    assert claims["exp"] - claims["iat"] == 3600
    kubeconfig = control_plane.cfg.dir / f"sa-{ns}.kubeconfig"
    write_kubeconfig(kubeconfig, server=control_plane.url, ca_cert=control_plane.pki.ca_cert, user=sa, token=token,
                     namespace=ns)
    who = orjson.loads(kubectl_as(control_plane, kubeconfig, "auth", "whoami", "-o", "json").stdout)["status"]["userInfo"]
    assert who["username"] == f"system:serviceaccount:{ns}:{sa}"
    assert who["groups"] == ["system:serviceaccounts", f"system:serviceaccounts:{ns}", "system:authenticated"]
    denied = kubectl_as(control_plane, kubeconfig, "get", "pods")
    assert denied.returncode != 0 and "Forbidden" in denied.stderr

    api.post(f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings", json={
        "metadata": {"name": "bot-view"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
        "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": ns}]}).raise_for_status()
    wait_for(lambda: kubectl_as(control_plane, kubeconfig, "get", "pods").returncode == 0, what="the binding to apply")

    conf = kubernetes.client.Configuration()
    conf.host = control_plane.url
    conf.ssl_ca_cert = str(control_plane.pki.ca_cert)
    conf.api_key = {"authorization": token}
    conf.api_key_prefix = {"authorization": "Bearer"}
    with kubernetes.client.ApiClient(conf) as client:
        core = kubernetes.client.CoreV1Api(client)
        assert core.list_namespaced_pod(ns).items == []
        with pytest.raises(kubernetes.client.ApiException) as e:
            core.list_namespaced_secret(ns)
        assert e.value.status == 403


def test_expired_tampered_and_foreign_tokens_are_401(control_plane: ControlPlane, api: httpx.Client,
                                                     service_account: tuple[str, str]) -> None:
    ns, sa = service_account
    good = create_token(api, ns, sa)
    with token_client(control_plane, good) as c:
        assert c.post("/apis/authentication.k8s.io/v1/selfsubjectreviews", json={}).status_code == 201
    obj = api.get(f"/api/v1/namespaces/{ns}/serviceaccounts/{sa}").json()
    key = load_private_key(control_plane.pki.sa_key)
    expired = TokenIssuer(Signer(key), ISSUER).issue(obj, [ISSUER], 600, now=int(time.time()) - 3600).token
    header, payload, sig = good.split(".")
    claims = orjson.loads(b64url_decode(payload))
    claims["sub"] = "system:serviceaccount:kube-system:default"
    tampered = f"{header}.{b64url(orjson.dumps(claims))}.{sig}"
    from cryptography.hazmat.primitives.asymmetric import rsa

    stranger = TokenIssuer(Signer(rsa.generate_private_key(public_exponent=65537, key_size=2048)), ISSUER)
    foreign = stranger.issue(obj, [ISSUER], 3600).token
    wrong_audience = create_token(api, ns, sa, audiences=["vault"])
    # one signature character changed (not the last: its low bits are padding a decoder may ignore)
    bad_signature = good[:-10] + ("A" if good[-10] != "A" else "B") + good[-9:]
    for bad in (expired, tampered, foreign, wrong_audience, "not-a-token", bad_signature):
        with token_client(control_plane, bad) as c:
            r = c.get("/api/v1/namespaces/default/pods")
            assert r.status_code == 401 and r.json()["reason"] == "Unauthorized", bad


def test_token_review_and_revocation(control_plane: ControlPlane, api: httpx.Client, service_account: tuple[str, str]) -> None:
    ns, sa = service_account
    token = create_token(api, ns, sa, audiences=["vault"], expirationSeconds=600)
    review = api.post("/apis/authentication.k8s.io/v1/tokenreviews",
                      json={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
                            "spec": {"token": token, "audiences": ["vault"]}})
    assert review.status_code == 201, review.text
    status = review.json()["status"]
    assert status["authenticated"] is True and status["audiences"] == ["vault"]
    assert status["user"]["username"] == f"system:serviceaccount:{ns}:{sa}"
    bad = api.post("/apis/authentication.k8s.io/v1/tokenreviews", json={"spec": {"token": token}}).json()["status"]
    assert bad["authenticated"] is False and "invalid for the target audiences" in bad["error"]
    # deleting the ServiceAccount revokes its tokens
    api_token = create_token(api, ns, sa)
    with token_client(control_plane, api_token) as c:
        assert c.post("/apis/authentication.k8s.io/v1/selfsubjectreviews", json={}).status_code == 201
        api.delete(f"/api/v1/namespaces/{ns}/serviceaccounts/{sa}").raise_for_status()
        wait_for(lambda: c.post("/apis/authentication.k8s.io/v1/selfsubjectreviews", json={}).status_code == 401,
                 what="the deleted ServiceAccount's token to be refused")


def test_token_request_validation(api: httpx.Client, service_account: tuple[str, str]) -> None:
    ns, sa = service_account
    base = f"/api/v1/namespaces/{ns}/serviceaccounts"
    r = api.post(f"{base}/{sa}/token", json={"spec": {"expirationSeconds": 60}})
    assert r.status_code == 422 and "may not specify a duration less than 10 minutes" in r.json()["message"]
    assert api.post(f"{base}/nobody/token", json={"spec": {}}).status_code == 404
    r = api.post(f"{base}/{sa}/token", json={"spec": {"boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "nope"}}})
    assert r.status_code == 404


def test_bootstrap_token(control_plane: ControlPlane, api: httpx.Client) -> None:
    token_id, secret = os.urandom(3).hex(), os.urandom(8).hex()

    def b64(s: str) -> str:
        return base64.b64encode(s.encode()).decode()

    r = api.post("/api/v1/namespaces/kube-system/secrets", json={
        "metadata": {"name": f"bootstrap-token-{token_id}"}, "type": "bootstrap.kubernetes.io/token",
        "data": {"token-id": b64(token_id), "token-secret": b64(secret), "usage-bootstrap-authentication": b64("true"),
                 "auth-extra-groups": b64("system:bootstrappers:kubeadm:default-node-token")}})
    assert r.status_code == 201, r.text
    try:
        with token_client(control_plane, f"{token_id}.{secret}") as c:
            def whoami() -> dict | None:
                r = c.post("/apis/authentication.k8s.io/v1/selfsubjectreviews", json={})
                return r.json()["status"]["userInfo"] if r.status_code == 201 else None

            user = wait_for(whoami, what="the bootstrap token to authenticate")
            assert user["username"] == f"system:bootstrap:{token_id}"
            assert user["groups"] == ["system:bootstrappers", "system:bootstrappers:kubeadm:default-node-token",
                                      "system:authenticated"]
        with token_client(control_plane, f"{token_id}.{'0' * 16}") as c:
            assert c.get("/api/v1/namespaces").status_code == 401
    finally:
        api.delete(f"/api/v1/namespaces/kube-system/secrets/bootstrap-token-{token_id}")


@pytest.fixture(scope="module")
def open_plane() -> Iterator[ControlPlane]:
    """A second control plane with anonymous access and a static token file."""
    d = Path(tempfile.mkdtemp(prefix="mk8s-authn-"))
    tokens = d / "tokens.csv"
    tokens.parent.mkdir(parents=True, exist_ok=True)
    tokens.write_text('s3cr3t-token,carol,uid-carol,"devs,ops"\n')
    cp = ControlPlane(d, ["--anonymous-auth", "--token-auth-file", str(tokens)])
    try:
        cp.start()
        yield cp
    finally:
        cp.stop_all()
        shutil.rmtree(d, ignore_errors=True)


def test_anonymous_only_behind_the_flag(open_plane: ControlPlane) -> None:
    ctx = ssl.create_default_context(cafile=str(open_plane.pki.ca_cert))
    with httpx.Client(base_url=open_plane.url, verify=ctx, timeout=10) as anon:
        assert anon.get("/version").status_code == 200  # system:public-info-viewer
        r = anon.get("/api/v1/namespaces")
        assert r.status_code == 403
        assert r.json()["message"] == ('namespaces is forbidden: User "system:anonymous" cannot list resource '
                                       '"namespaces" in API group "" at the cluster scope')
        # a token nobody accepts is never treated as anonymous
        assert anon.get("/version", headers={"Authorization": "Bearer nope"}).status_code == 401


def test_static_token_file(open_plane: ControlPlane) -> None:
    with token_client(open_plane, "s3cr3t-token") as c:
        user = c.post("/apis/authentication.k8s.io/v1/selfsubjectreviews", json={}).json()["status"]["userInfo"]
        assert user == {"username": "carol", "uid": "uid-carol", "groups": ["devs", "ops", "system:authenticated"]}
        assert c.get("/api/v1/namespaces").status_code == 403
