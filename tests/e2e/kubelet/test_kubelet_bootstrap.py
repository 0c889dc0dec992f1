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
                "--rotate-server-certificates", "true",
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
            # the kubelet's own files: kubeconfig → certificate store; no self-signed serving certificate
            current = k.cert_dir / "kubelet-client-current.pem"
            assert current.is_symlink() and str(current) in k.kubeconfig.read_text()
            assert not (k.cert_dir / "kubelet.crt").exists()
            first = x509.load_pem_x509_certificate(current.read_bytes())
            assert first.subject.rfc4514_string() == f"CN=system:node:{NODE},O=system:nodes"
            csrs = api.get(CSRS).json()["items"]
            assert any(c["spec"]["username"] == f"system:bootstrap:{token[:6]}" for c in csrs)
            pid = k.proc.pid

            # the serving certificate: requested by the node, approved by the controller-manager's
            # kubelet-serving-approver (its own name and address), signed by the cluster CA
            serving = k.cert_dir / "kubelet-server-current.pem"
            try:
                wait_for(serving.exists, 60, 0.2, "the kubelet's serving certificate")
            except AssertionError as e:
                pending = [(c["metadata"]["name"], c["spec"]["signerName"], c.get("status"))
                           for c in api.get(CSRS).json()["items"]]
                raise AssertionError(f"{e}\nCSRs: {pending}\nkubelet log:\n{k.log_tail()}") from None
            cert = x509.load_pem_x509_certificate(serving.read_bytes())
            cert.verify_directly_issued_by(x509.load_pem_x509_certificate(jcp.pki.ca_cert.read_bytes()))
            sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            assert sans.get_values_for_type(x509.DNSName) == [NODE]
            assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
            serving_csr = next(c for c in api.get(CSRS).json()["items"]
                               if c["spec"]["signerName"] == "kubernetes.io/kubelet-serving")
            assert serving_csr["spec"]["username"] == f"system:node:{NODE}"
            assert [c["reason"] for c in serving_csr["status"]["conditions"]] == ["AutoApproved"]
            # the apiserver verifies kubelets with the CA now: it reaches this one (metrics scrape)
            def node_metrics() -> dict | None:
                r = api.get(f"/apis/metrics.k8s.io/v1beta1/nodes/{NODE}")
                return r.json() if r.status_code == 200 else None

            assert wait_for(node_metrics, 60, 1, "node metrics through the verified kubelet connection")["usage"]

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
            log_text = root.joinpath("kubelet.log").read_text()
            assert "client certificate rotated" in log_text
            # the serving certificate (one minute too) was renewed the same way, without a restart
            wait_for(lambda: x509.load_pem_x509_certificate(serving.read_bytes()).serial_number != cert.serial_number,
                     90, 0.5, "the serving certificate's rotation")
            wait_for(lambda: "kubelet API serving with the renewed certificate" in
                     root.joinpath("kubelet.log").read_text(), 10, 0.2, "the server to take the renewed certificate")
    finally:
        k.stop()
        asyncio.run(network.cleanup_filter_rules(containerd_node.bridge))
        try:
            unmount_under(root)
        finally:
            shutil.rmtree(root, ignore_errors=True)
