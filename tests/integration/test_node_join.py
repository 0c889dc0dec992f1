"""Joining nodes against a real apiserver + controller-manager: `minictl token`, node join's discovery
(cluster-info signed by the bootstrap signer, CA pinning), and the kubelet's TLS bootstrap and rotation
(CSRs approved by csrapproving, signed by csrsigning)."""

from __future__ import annotations

import asyncio
import base64
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.x509.oid import NameOID

from apimachinery.bootstraptoken import ca_cert_hash
from client import APIClient, from_kubeconfig
from client.certificate import (
    CertificateManager,
    CertificateRequestError,
    CertificateStore,
    make_csr,
    new_private_key,
    request_certificate,
    wait_for_certificate,
)
from kubelet.bootstrap import load_client_cert
from minictl.__main__ import cli
from minictl.join import discover, write_join_files
from tests.conftest import ControlPlane, wait_for
from tests.joinutil import joinable_control_plane

CLUSTER_INFO = "/api/v1/namespaces/kube-public/configmaps/cluster-info"


@pytest.fixture(scope="module")
def cp() -> Iterator[ControlPlane]:
    with joinable_control_plane("mk8s-join-") as cp:
        yield cp


def minictl(cp: ControlPlane, *args: str) -> tuple[int, str]:
    r = CliRunner().invoke(cli, ["--kubeconfig", str(cp.kubeconfig), *args], catch_exceptions=False)
    return r.exit_code, r.output


def _ca_hash(cp: ControlPlane) -> str:
    return ca_cert_hash(x509.load_pem_x509_certificate(cp.pki.ca_cert.read_bytes()))


def _signed(cp: ControlPlane, token_id: str) -> bool:
    r = httpx.get(cp.url + CLUSTER_INFO, verify=False, timeout=5)  # anonymous, as a joining node
    return r.status_code == 200 and f"jws-kubeconfig-{token_id}" in (r.json().get("data") or {})


def test_token_create_list_delete_and_the_signed_cluster_info(cp: ControlPlane) -> None:
    code, out = minictl(cp, "token", "create", "--ttl", "2h", "--description", "test node",
                        "--print-join-command")
    assert code == 0, out
    m = re.fullmatch(r"minictl node join (\S+) --token ([a-z0-9]{6})\.([a-z0-9]{16}) "
                     r"--discovery-token-ca-cert-hash (sha256:[0-9a-f]{64})\n", out)
    assert m, out
    assert m.group(1) == cp.url and m.group(4) == _ca_hash(cp)
    token_id = m.group(2)
    code, out = minictl(cp, "token", "list")
    assert code == 0, out
    line = next(x for x in out.splitlines() if x.startswith(f"{token_id}."))
    assert "signing,authentication" in line and "test node" in line
    assert "system:bootstrappers:kubeadm:default-node-token" in line
    assert re.search(r"\s(1h|2h|1[0-9]{2}m)\s", line), line
    wait_for(lambda: _signed(cp, token_id), 20, 0.1, "the bootstrap signer to sign cluster-info")
    # anonymous users may read cluster-info, and nothing else
    assert httpx.get(cp.url + "/api/v1/namespaces/kube-public/configmaps", verify=False).status_code == 403
    code, out = minictl(cp, "token", "delete", token_id)
    assert code == 0 and "deleted" in out
    wait_for(lambda: not _signed(cp, token_id), 20, 0.1, "the signature of the deleted token to go")
    code, out = minictl(cp, "token", "delete", token_id)
    assert code == 1 and "not found" in out
    code, out = minictl(cp, "token", "create", "not-a-token")
    assert code == 1 and "not of the form" in out


def test_discovery_pins_the_ca_and_refuses_a_wrong_hash(cp: ControlPlane, tmp_path: Path) -> None:
    code, token = minictl(cp, "token", "create")
    token = token.strip()
    wait_for(lambda: _signed(cp, token[:6]), 20, 0.1, "cluster-info signed")
    info = discover(cp.url, token, [_ca_hash(cp)], timeout=10)
    assert info.ca_pem == cp.pki.ca_cert.read_bytes() and info.server == cp.url
    wrong = "sha256:" + "0" * 64
    code, out = minictl(cp, "node", "join", cp.url, "--token", token, "--discovery-token-ca-cert-hash", wrong,
                        "--data-dir", str(tmp_path / "node"), "--discovery-timeout", "5")
    assert code == 1
    assert "discovery failed" in out and "matches none of the pinned public keys" in out and wrong in out
    code, out = minictl(cp, "node", "join", cp.url, "--token", token, "--data-dir", str(tmp_path / "node"))
    assert code == 1 and "without --discovery-token-ca-cert-hash is unsafe" in out
    code, out = minictl(cp, "node", "join", cp.url, "--token", token[:7] + "x" * 16, "--discovery-token-ca-cert-hash",
                        _ca_hash(cp), "--data-dir", str(tmp_path / "node"), "--discovery-timeout", "5")
    assert code == 1 and "does not match the token" in out
    assert not (tmp_path / "node").exists()  # nothing written before discovery succeeded


def test_tls_bootstrap_and_rotation_of_a_node_client_certificate(cp: ControlPlane, tmp_path: Path) -> None:
    _, token = minictl(cp, "token", "create")
    token = token.strip()
    boot = write_join_files(tmp_path, cp.url, token, cp.pki.ca_cert.read_bytes(),
                            tmp_path / "kubeconfigs" / "bootstrap-kubelet.kubeconfig")
    kubeconfig, cert_dir = tmp_path / "kubeconfigs" / "kubelet.kubeconfig", tmp_path / "pki-kubelet"

    async def run() -> None:
        assert await asyncio.wait_for(load_client_cert(kubeconfig, boot, cert_dir, "joiner"), 60)
        assert not await load_client_cert(kubeconfig, boot, cert_dir, "joiner")  # valid: kept
        store = CertificateStore(cert_dir)
        cert = store.load()[0]
        assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "system:node:joiner"
        assert [a.value for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)] == ["system:nodes"]
        assert not (cert_dir / "kubelet-client.key.tmp").exists()
        cfg = from_kubeconfig(kubeconfig)
        async with APIClient(cfg) as api:
            node = await api.resource("v1", "nodes").create(
                {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "joiner"}})
            assert node["metadata"]["name"] == "joiner"
            # rotation: authenticated as the node itself (selfnodeclient), new key, new certificate
            rotated: list[bytes] = []

            async def on_rotated(cert_pem: bytes, key_pem: bytes) -> None:
                cfg.ssl_context.load_cert_chain(str(store.current_path))
                api.reset_connections(grace=0.1)
                rotated.append(cert_pem)

            m = CertificateManager(api, store, "system:node:joiner", ["system:nodes"], on_rotated=on_rotated)
            await asyncio.wait_for(m.rotate(), 60)
            new = store.load()[0]
            assert rotated and new.serial_number != cert.serial_number
            assert new.public_key().public_numbers() != cert.public_key().public_numbers()
            assert (await api.resource("v1", "nodes").get("joiner"))["metadata"]["name"] == "joiner"

    asyncio.run(run())
    with cp.client() as admin:
        assert admin.delete("/api/v1/nodes/joiner").status_code == 200
        csrs = admin.get("/apis/certificates.k8s.io/v1/certificatesigningrequests").json()["items"]
    mine = [c for c in csrs if base64.b64decode(c["spec"]["request"]) and c["spec"]["username"] in
            (f"system:bootstrap:{token[:6]}", "system:node:joiner")]
    assert {c["spec"]["username"] for c in mine} == {f"system:bootstrap:{token[:6]}", "system:node:joiner"}
    boot_csr = next(c for c in mine if c["spec"]["username"].startswith("system:bootstrap:"))
    assert boot_csr["metadata"]["name"].startswith("node-csr-")
    assert boot_csr["spec"]["signerName"] == "kubernetes.io/kube-apiserver-client-kubelet"
    assert boot_csr["spec"]["usages"] == ["digital signature", "client auth"]
    assert any(c["type"] == "Approved" for c in boot_csr["status"]["conditions"])


def test_a_denied_request_is_a_clear_error(cp: ControlPlane) -> None:
    async def run() -> None:
        async with APIClient(from_kubeconfig(cp.kubeconfig)) as api:
            key = new_private_key()
            name, uid = await request_certificate(api, make_csr(key, "someone"), key, "example.com/unknown",
                                                  ["digital signature", "client auth"])
            csr = await api.resource("certificates.k8s.io/v1", "certificatesigningrequests").get(name)
            csr["status"] = {"conditions": [{"type": "Denied", "status": "True", "reason": "ByTest",
                                             "message": "no thanks"}]}
            await api.request("PUT", f"/apis/certificates.k8s.io/v1/certificatesigningrequests/{name}/approval",
                              body=csr)
            with pytest.raises(CertificateRequestError, match="was denied: reason ByTest, message no thanks"):
                await wait_for_certificate(api, name, uid, 20)

    asyncio.run(run())
