"""A control plane of its own plus a real controller-manager process, running as its own
identity (controller-manager.kubeconfig) with per-controller ServiceAccounts, as upstream
(kubeadm) runs it — so a permission the bootstrap policy lacks shows up as a failure here.

Timings are shortened (node heartbeat grace 4 s, monitor period 1 s) so that node failures
play out within a test.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

from certs import write_cluster_kubeconfigs
from minictl.components import component_env, free_port
from tests.conftest import ControlPlane, audited, private_control_plane, read_audit_events, wait_for

NODE_MONITOR_GRACE = 4.0
TERMINATED_POD_THRESHOLD = 3


class ControllerManager:
    """`python -m controller_manager` against a ControlPlane, stopped by pid."""

    def __init__(self, cp: ControlPlane, extra: list[str] | None = None) -> None:
        self.cp = cp
        kubeconfigs = write_cluster_kubeconfigs(cp.pki, cp.cfg.dir / "kubeconfigs", cp.url)
        self.port = free_port()
        self.cmd = [
            sys.executable, "-m", "controller_manager",
            "--kubeconfig", str(kubeconfigs["controller-manager"]),
            "--use-service-account-credentials",
            "--leader-elect=false",
            "--secure-port", str(self.port),
            "--controllers", "*",
            "--root-ca-file", str(cp.pki.ca_cert),
            "--allocate-node-cidrs", "--cluster-cidr", "10.244.0.0/16",
            "--service-cluster-ip-range", "10.96.0.0/16",
            "--node-monitor-period", "1s",
            "--node-monitor-grace-period", f"{NODE_MONITOR_GRACE}s",
            "--node-startup-grace-period", f"{NODE_MONITOR_GRACE}s",
            "--node-eviction-rate", "10",
            "--terminated-pod-gc-threshold", str(TERMINATED_POD_THRESHOLD),
            "--kube-api-qps", "200", "--kube-api-burst", "400",
            "--log-level", "info",
            *(extra or []),
        ]
        self.log_path = cp.cfg.log("controller-manager")
        self.proc: subprocess.Popen | None = None

    def start(self) -> ControllerManager:
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.cmd, stdout=log, stderr=subprocess.STDOUT, env=component_env(),
                                     start_new_session=True)
        log.close()

        def ready() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"controller-manager exited with {self.proc.returncode}; log: {self.log_path}")
            return httpx.get(f"http://127.0.0.1:{self.port}/readyz", timeout=2).status_code == 200

        wait_for(ready, 30, 0.2, "controller-manager /readyz")
        return self

    def stop(self) -> None:
        p, self.proc = self.proc, None
        if p is None or p.poll() is not None:
            return
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def assert_no_rbac_denials(self) -> None:
        """No request of any controller was refused by authorization (a gap in the bootstrap policy)."""
        denials = [line for line in self.log_text().splitlines() if "is forbidden: User" in line]
        assert not denials, "RBAC denials in the controller-manager log:\n" + "\n".join(denials[:10])


def audit_users(cp: ControlPlane, verb: str, resource: str, namespace: str | None = None,
                subresource: str | None = None) -> set[str]:
    """Who did `verb` on `resource` successfully, per the apiserver's audit log (flushed a second after each line)."""
    return {e["user"]["username"]
            for e in audited(read_audit_events(cp.cfg.log("audit")), verb=verb, resource=resource,
                             namespace=namespace, subresource=subresource)
            if e["responseStatus"]["code"] < 300}


def wait_for_audit(cp: ControlPlane, *args, **kw) -> set[str]:
    """audit_users, once something is there (the log is flushed a second after a line)."""
    return wait_for(lambda: audit_users(cp, *args, **kw), 15, 0.3, f"audit records of {args}")


@pytest.fixture(scope="package")
def infra_plane() -> Iterator[ControlPlane]:
    # no controller-manager of the fixture's: the one here is the full one below
    with private_control_plane("mk8s-cm-infra-", controller_manager=False) as cp:
        yield cp


@pytest.fixture(scope="package")
def controller_manager(infra_plane: ControlPlane) -> Iterator[ControllerManager]:
    cm = ControllerManager(infra_plane).start()
    try:
        yield cm
    finally:
        cm.stop()


@pytest.fixture
def admin(infra_plane: ControlPlane, controller_manager: ControllerManager) -> Iterator[httpx.Client]:
    with infra_plane.client() as c:
        yield c


@pytest.fixture
def ns(admin: httpx.Client) -> Iterator[str]:
    """A fresh namespace (the namespace controller removes it afterwards)."""
    name = f"t-{os.urandom(4).hex()}"
    admin.post("/api/v1/namespaces", json={"metadata": {"name": name}}).raise_for_status()
    wait_for(lambda: admin.get(f"/api/v1/namespaces/{name}/serviceaccounts/default").status_code == 200,
             15, what="the default ServiceAccount")
    yield name
    admin.delete(f"/api/v1/namespaces/{name}")
