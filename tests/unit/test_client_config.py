"""client.config: kubeconfig and in-cluster configuration; client.errors helpers."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from apimachinery.errors import StatusError, conflict, not_found
from certs import KubeconfigError, ensure_pki, write_kubeconfig
from client.config import FileToken, from_kubeconfig, in_cluster_available, in_cluster_config, load_config
from client.errors import (
    ApiError,
    error_from_response,
    error_from_status,
    is_already_exists,
    is_conflict,
    is_gone,
    is_not_found,
    is_too_many_requests,
)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return ensure_pki(tmp_path_factory.mktemp("pki"), node_names=["n1"])


def test_from_kubeconfig_with_cert_and_token(pki, tmp_path: Path) -> None:
    cert, key = pki.client("admin")
    path = write_kubeconfig(tmp_path / "kc", server="https://127.0.0.1:6443", ca_cert=pki.ca_cert, user="admin",
                            client_cert=cert, client_key=key, token="tok", namespace="team")
    cfg = from_kubeconfig(path, qps=50, burst=100)
    assert cfg.server == "https://127.0.0.1:6443" and cfg.namespace == "team"
    assert isinstance(cfg.ssl_context, ssl.SSLContext)
    assert cfg.auth_headers() == {"Authorization": "Bearer tok"}
    assert (cfg.qps, cfg.burst) == (50, 100)
    assert load_config(path).server == cfg.server
    faster = cfg.replace(qps=5000)
    assert faster.qps == 5000 and cfg.qps == 50 and faster.ssl_context is cfg.ssl_context


def test_load_config_prefers_kubeconfig_env(pki, tmp_path: Path, monkeypatch) -> None:
    path = write_kubeconfig(tmp_path / "kc", server="https://10.0.0.1:6443", ca_cert=pki.ca_cert, user="u")
    monkeypatch.setenv("KUBECONFIG", str(path))
    assert load_config().server == "https://10.0.0.1:6443"
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    with pytest.raises(KubeconfigError):
        load_config()


def test_in_cluster(pki, tmp_path: Path) -> None:
    sa = tmp_path / "sa"
    sa.mkdir()
    (sa / "token").write_text("t1\n")
    (sa / "ca.crt").write_bytes(pki.ca_cert.read_bytes())
    (sa / "namespace").write_text("kube-system")
    env = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    assert in_cluster_available(env, sa) and not in_cluster_available({}, sa)
    cfg = in_cluster_config(env, sa, qps=20)
    assert cfg.server == "https://10.96.0.1:443" and cfg.namespace == "kube-system" and cfg.qps == 20
    assert cfg.auth_headers() == {"Authorization": "Bearer t1"}
    v6 = in_cluster_config({"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "443"}, sa)
    assert v6.server == "https://[fd00::1]:443"
    with pytest.raises(KubeconfigError):
        in_cluster_config({}, sa)


def test_file_token_rotation_keeps_last_good(tmp_path: Path) -> None:
    now = [0.0]
    f = tmp_path / "token"
    f.write_text("a")
    tok = FileToken(f, refresh=10, clock=lambda: now[0])
    first = tok.headers()
    assert first == {"Authorization": "Bearer a"}
    f.write_text("b")
    now[0] = 5
    assert tok.headers() is first  # cached within the period
    now[0] = 10
    assert tok.headers() == {"Authorization": "Bearer b"}
    f.unlink()
    now[0] = 20
    assert tok.headers() == {"Authorization": "Bearer b"}  # briefly missing while rotating
    with pytest.raises(OSError):
        FileToken(tmp_path / "never")


def test_error_helpers_follow_upstream() -> None:
    already = error_from_status({"code": 409, "reason": "AlreadyExists", "message": "x"})
    assert is_already_exists(already) and not is_conflict(already)
    assert is_conflict(error_from_status({"code": 409, "reason": "Conflict"}))
    assert is_conflict(error_from_status({"code": 409, "reason": "SomethingNew"}))  # unknown reason: code decides
    assert is_not_found(not_found("pods", "x")) and is_conflict(conflict("pods", "x", "why"))  # plain StatusError too
    assert is_gone(error_from_status({"code": 410, "reason": "Expired"}))
    assert not is_not_found(ValueError("x")) and not is_gone(RuntimeError())
    e = error_from_response(429, b"slow down", "GET", "/x", "7")
    assert isinstance(e, ApiError) and isinstance(e, StatusError)
    assert is_too_many_requests(e) and e.retry_after == 7 and e.message == "slow down"
    body = b'{"kind":"Status","code":404,"reason":"NotFound","message":"pods \\"x\\" not found","details":{"name":"x","kind":"pods"}}'
    e = error_from_response(404, body, "GET", "/api/v1/namespaces/d/pods/x")
    assert e.details == {"name": "x", "kind": "pods"} and e.message == 'pods "x" not found'
    assert "404 NotFound" in str(e) and "/api/v1/namespaces/d/pods/x" in str(e)
