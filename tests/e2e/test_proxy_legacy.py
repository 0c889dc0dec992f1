"""kube-proxy with `--iptables-backend legacy` as a real process: the rules live in the legacy
tables (none in nf_tables), traffic flows from the host and from a pod, `--cleanup` (run without
the flag) leaves nothing behind. Its own module: the other proxy modules' module-scoped clusters
are gone by then (one kube-proxy at a time)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from tests.e2e.test_proxy_daemon import (
    HTTP_PORTS,
    ProxyCluster,
    exclusive_proxy_cluster,
    gets,
    pod_gets,
    sh,
    web_ports,
)

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def legacy_cluster(control_plane) -> Iterator[ProxyCluster]:
    if not shutil.which("iptables-legacy-restore"):
        pytest.skip("iptables-legacy is not installed")
    probe = sh("iptables-legacy", "-w", "5", "-t", "nat", "-S")
    if probe.returncode != 0:
        pytest.skip(f"this kernel has no legacy iptables: {probe.stderr.strip()}")
    yield from exclusive_proxy_cluster(control_plane, "iptables", "mkl", ("h1", "h2", "c1"), backend="legacy")


def test_legacy_iptables_backend_serves_services_and_cleans_up(legacy_cluster):
    """--iptables-backend legacy: the rules live in the legacy tables (none in nf_tables), traffic
    flows from the host and from a pod; the fixture checks --cleanup leaves nothing there."""
    c = legacy_cluster
    h = c.net.hosts
    vip = c.create_service("legacy", web_ports())["spec"]["clusterIP"]
    before = c.programmed()
    c.put_slice("legacy", [h["h1"], h["h2"]], HTTP_PORTS)
    c.wait_programmed(before)
    assert set(gets(vip, 80, 40)) == {"h1", "h2"}
    assert set(pod_gets(h["c1"], vip, 80, 20)) == {"h1", "h2"}
    legacy_nat = sh("iptables-legacy-save", "-t", "nat").stdout
    assert f"-A KUBE-SERVICES -d {vip}/32" in legacy_nat
    assert ":KUBE-SERVICES" not in sh("iptables-nft-save", "-t", "nat").stdout
