"""A real kubelet started with only a bootstrap kubeconfig (a bootstrap token): it requests its client
certificate (CSR auto-approved by csrapproving, signed by csrsigning), writes its kubeconfig and
certificate store, registers its Node, serves with a self-signed certificate, and rotates its
one-minute certificate without restarting, its heartbeats going on with the new one."""

from __future__ import annotations

import asyncio
import datetime as dt
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from cryptography import x509

from kubelet import naming, network
from kubelet.cri import CRIClient, pb
from kubelet.cri.containerd import unmount_under
from minictl.__main__ import cli
from minictl.join import write_join_files
from tests.conftest import ControlPlane, wait_for
from tests.e2e.kubelet.conftest import NODE, KubeletProcess
from tests.joinutil import joinable_control_plane

CSRS = "/apis/certificates.k8s.io/v1/certificatesigningrequests"


class BootstrapKubelet(KubeletProcess):
    """The e2e kubelet, but with --bootstrap-kubeconfig instead of a minted identity, no serving
    certificate given, and its own cgroup subtree."""

    def __init__(self, cp: ControlPlane, containerd: Any, root: Path, bootstrap: Path) -> None:
        super().__init__(cp, containerd, root)
        self.bootstrap = bootstrap
        self.kubeconfig = root / "kubeconfigs" / "kubelet.kubeconfig"
        self.cert_dir = root / "kubelet" / "pki"

    def command(self) -> list[str]:
        cmd, out = super().command(), []
        skip = {"--kubeconfig", "--tls-cert-file", "--tls-private-key-file", "--cgroup-root"}
        i = 0
        while i < len(cmd):
            if cmd[i] in skip:
                i += 2
                continue
            out.append(cmd[i])
            i += 1
        return [*out, "--bootstrap-kubeconfig", str(self.bootstrap), "--kubeconfig", str(self.kubeconfig),
                "--cert-dir", str(self.cert_dir), "--rotate-certificates", "true",
                "--cgroup-root", f"/{self.containerd.cgroup_root}/kubelet-bootstrap"]


@pytest.fixture(scope="module")
def jcp() -> Iterator[ControlPlane]:
    # certificates of one minute: the kubelet rotates within the test
    with joinable_control_plane("mk8s-kubelet-boot-", signing_duration="1m") as cp:
        yield cp


async def _managed_sandboxes(endpoint: str) -> int:
    async with CRIClient(endpoint, timeout=30) as cri:
        return len(await cri.list_pod_sandbox(pb.PodSandboxFilter(label_selector={naming.KUBELET_MANAGED: "true"})))


def _lease_renewed(api: Any) -> str:
    return api.get(f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{NODE}").json()["spec"]["renewTime"]


def test_kubelet_tls_bootstrap_and_rotation(jcp: ControlPlane, containerd_node: Any) -> None:
    # a second kubelet on this containerd would remove another kubelet's pods as orphans: none now
    wait_for(lambda: asyncio.run(_managed_sandboxes(containerd_node.endpoint)) == 0, 60, 0.5,
             "no kubelet-managed pods on the test containerd")
    r = CliRunner().invoke(cli, ["--kubeconfig", str(jcp.kubeconfig), "token", "create", "--ttl", "10m"])
    assert r.exit_code == 0, r.output
    token = r.output.strip()
    root = Path(tempfile.mkdtemp(prefix="mk8s-kubelet-boot-root-"))
    boot = write_join_files(root, jcp.url, token, jcp.pki.ca_cert.read_bytes(),
                            root / "kubeconfigs" / "bootstrap-kubelet.kubeconfig")
    k = BootstrapKubelet(jcp, containerd_node, root, boot)
    try:
        k.start()
        with jcp.client(timeout=30) as api:
            node = k.wait_ready(api, timeout=90)
            assert node["metadata"]["name"] == NODE
            # the kubelet's own files: kubeconfig → certificate store; a self-signed serving certificate
            current = k.cert_dir / "kubelet-client-current.pem"
            assert current.is_symlink() and str(current) in k.kubeconfig.read_text()
            assert (k.cert_dir / "kubelet.crt").exists()
            first = x509.load_pem_x509_certificate(current.read_bytes())
            assert first.subject.rfc4514_string() == f"CN=system:node:{NODE},O=system:nodes"
            csrs = api.get(CSRS).json()["items"]
            assert any(c["spec"]["username"] == f"system:bootstrap:{token[:6]}" for c in csrs)
            pid = k.proc.pid

            # rotation after 70-90 % of the minute, authenticated as the node, without a restart
            def rotated() -> bool:
                assert k.alive(), k.log_tail()
                return x509.load_pem_x509_certificate(current.read_bytes()).serial_number != first.serial_number

            wait_for(rotated, 90, 0.5, "the kubelet to rotate its client certificate")
            csrs = api.get(CSRS).json()["items"]
            assert any(c["spec"]["username"] == f"system:node:{NODE}" and
                       c["spec"]["signerName"] == "kubernetes.io/kube-apiserver-client-kubelet" for c in csrs)
            # once the first certificate has expired, only the new one works: heartbeats go on
            wait_for(lambda: dt.datetime.now(dt.UTC) > first.not_valid_after_utc + dt.timedelta(seconds=2), 70, 0.5,
                     "the first certificate to expire")
            before = _lease_renewed(api)
            wait_for(lambda: _lease_renewed(api) != before, 30, 0.5, "a Lease renewal with the rotated certificate")
            assert k.alive() and k.proc.pid == pid
            assert "client certificate rotated" in root.joinpath("kubelet.log").read_text()
    finally:
        k.stop()
        asyncio.run(network.cleanup_filter_rules(containerd_node.bridge))
        try:
            unmount_under(root)
        finally:
            shutil.rmtree(root, ignore_errors=True)
