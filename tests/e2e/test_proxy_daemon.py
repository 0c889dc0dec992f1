"""The kube-proxy daemon for real: a real apiserver, kube-proxy as a root process with its own
identity (system:kube-proxy), Services and EndpointSlices written through the API, and netns
"hosts" on a private bridge as endpoints and as a pod. Runs once per proxy mode (iptables,
nftables).

Needs root, iptables, nft, conntrack, iproute2. Takes the host-global KUBE-* chains, so it
refuses to run next to another kube-proxy and serializes itself with the core e2e tests'
lock. Everything is removed at the end (kube-proxy --cleanup, then a safety net), and the
guard rule's counters must still be 0 then.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from certs import write_cluster_kubeconfigs
from kube_proxy.chains import leftover_cleanup_payload
from kube_proxy.commands import IPTABLES_BACKENDS
from minictl.components import component_env, free_port
from tests.conftest import ControlPlane, wait_for
from tests.e2e.netns_hosts import (
    HTTP_PORT,
    UDP_PORT,
    NetnsNetwork,
    exclusive_lock,
    http_get,
    leftovers,
    udp_ask,
    unique_prefix,
)

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
LOCK = (
    "/run/lock/minik8s-kube-proxy-e2e.lock"
    if os.path.isdir("/run/lock")
    else "/tmp/minik8s-kube-proxy-e2e.lock"
)
SUBNET = "10.244.251.0/24"
CLUSTER_CIDR = "10.244.0.0/16"
SERVICE_CIDR = "10.96.0.0/16"
LB_POOL = "198.18.255.0/24"
NODE = "testnode"  # the node identity the control_plane fixture's PKI has


def sh(*argv: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)


def skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "needs root (iptables, nftables, network namespaces, veth)"
    for tool in ("iptables", "iptables-save", "iptables-restore", "nft", "conntrack", "ip"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    if sh("iptables", "-w", "5", "-t", "nat", "-S", "KUBE-SERVICES").returncode == 0:
        return "nat/KUBE-SERVICES exists: another kube-proxy owns the KUBE-* chains here"
    if sh("nft", "list", "table", "ip", "kube-proxy").returncode == 0:
        return "nftables table ip kube-proxy exists: another kube-proxy runs here"
    routes = sh("ip", "route", "show").stdout
    for cidr in (SUBNET, SERVICE_CIDR, LB_POOL):
        if cidr in routes:
            return f"a route for {cidr} already exists on this host"
    return None


def guard_counters(iptables: str = "iptables") -> dict[str, int]:
    """Packets the KUBE-GUARD rules dropped, per CIDR (from iptables-save -c)."""
    found: dict[str, int] = {}
    for line in sh(f"{iptables}-save", "-c", "-t", "filter").stdout.splitlines():
        m = re.match(r"\[(\d+):\d+\] -A KUBE-GUARD -d (\S+)", line)
        if m:
            found[m.group(2)] = found.get(m.group(2), 0) + int(m.group(1))
    return found


def remove_leftovers(device: str, iptables: str = "iptables") -> None:
    """Safety net: whatever a failed --cleanup left behind."""
    for table in ("nat", "filter"):
        payload = leftover_cleanup_payload(table, sh(f"{iptables}-save", "-t", table).stdout)
        if payload:
            subprocess.run([f"{iptables}-restore", "-w", "5", "--noflush"], input=payload, text=True, timeout=30)
    sh("nft", "delete", "table", "ip", "kube-proxy")
    for cidr in (SERVICE_CIDR, LB_POOL):
        sh("ip", "route", "del", cidr)
    sh("ip", "link", "del", device)


def rfc3339_now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


class KubeProxyProcess:
    """`python -m kube_proxy` as a real process, stopped by pid."""

    def __init__(self, kubeconfig: Path, mode: str, device: str, log_path: Path, extra: list[str] | None = None):
        self.port = free_port()
        self.argv = [
            sys.executable, "-m", "kube_proxy",
            "--kubeconfig", str(kubeconfig),
            "--proxy-mode", mode,
            "--hostname-override", NODE,
            "--cluster-cidr", CLUSTER_CIDR,
            "--service-cluster-ip-range", SERVICE_CIDR,
            "--lb-pool", LB_POOL,
            "--service-cidr-device", device,
            "--min-sync-period", "0.2",
            "--healthz-bind-address", f"127.0.0.1:{self.port}",
            *(extra or []),
        ]
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT, env=component_env(),
                                     start_new_session=True, cwd=REPO)
        log.close()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(sig)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def get(self, path: str) -> httpx.Response:
        return httpx.get(f"http://127.0.0.1:{self.port}{path}", timeout=5)

    def wait_ready(self, timeout: float = 30) -> None:
        def ready() -> bool:
            if not self.alive():
                raise RuntimeError(f"kube-proxy exited: {self.log_path.read_text()[-3000:]}")
            return self.get("/readyz").status_code == 200

        wait_for(ready, timeout, 0.1, "kube-proxy /readyz")

    def metric(self, name: str) -> float:
        """Sum of a metric's samples (0 if absent)."""
        total = 0.0
        for line in self.get("/metrics").text.splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                total += float(line.rsplit(" ", 1)[1])
        return total


@dataclass
class ProxyCluster:
    """What the tests get: the control plane, the netns network and a running kube-proxy."""

    cp: ControlPlane
    net: NetnsNetwork
    proxy: KubeProxyProcess
    mode: str
    namespace: str
    api: httpx.Client
    data: Path
    extra_processes: list[subprocess.Popen] = field(default_factory=list)

    # -- API helpers -------------------------------------------------------------------------
    def create_service(self, name: str, ports: list[dict], svc_type: str = "ClusterIP", **spec) -> dict:
        body = {
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": self.namespace},
            "spec": {"type": svc_type, "ports": ports, **spec},
        }
        r = self.api.post(f"/api/v1/namespaces/{self.namespace}/services", json=body)
        assert r.status_code == 201, r.text
        return r.json()

    def service(self, name: str) -> dict:
        r = self.api.get(f"/api/v1/namespaces/{self.namespace}/services/{name}")
        assert r.status_code == 200, r.text
        return r.json()

    def delete_service(self, name: str) -> None:
        self.api.delete(f"/api/v1/namespaces/{self.namespace}/services/{name}")

    def put_slice(self, service: str, hosts: list, ports: list[dict], name: str | None = None,
                  ready: bool = True) -> dict:
        """Create or replace the service's EndpointSlice, stamped with a trigger time."""
        name = name or f"{service}-manual"
        body = {
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {
                "name": name, "namespace": self.namespace,
                "labels": {"kubernetes.io/service-name": service,
                           "endpointslice.kubernetes.io/managed-by": "e2e.minik8s.io"},
                "annotations": {"endpoints.kubernetes.io/last-change-trigger-time": rfc3339_now()},
            },
            "addressType": "IPv4",
            "endpoints": [{"addresses": [h.ip], "conditions": {"ready": ready}, "nodeName": NODE} for h in hosts],
            "ports": ports,
        }
        base = f"/apis/discovery.k8s.io/v1/namespaces/{self.namespace}/endpointslices"
        current = self.api.get(f"{base}/{name}")
        if current.status_code == 200:
            body["metadata"]["resourceVersion"] = current.json()["metadata"]["resourceVersion"]
            r = self.api.put(f"{base}/{name}", json=body)
            assert r.status_code == 200, r.text
        else:
            r = self.api.post(base, json=body)
            assert r.status_code == 201, r.text
        return r.json()

    def programmed(self) -> float:
        return self.proxy.metric("kubeproxy_network_programming_duration_seconds_count")

    def wait_programmed(self, before: float, timeout: float = 15) -> None:
        """Until a sync made a slice change (stamped after `before` was read) live."""
        wait_for(lambda: self.programmed() > before, timeout, 0.05, "the endpoint change to be programmed")


HTTP_PORTS = [{"name": "http", "port": HTTP_PORT, "protocol": "TCP"}]
UDP_PORTS = [{"name": "echo", "port": UDP_PORT, "protocol": "UDP"}]


def web_ports(port: int = 80, **extra) -> list[dict]:
    return [{"name": "http", "port": port, "targetPort": HTTP_PORT, "protocol": "TCP", **extra}]


def start_proxy_cluster(cp: ControlPlane, mode: str, prefix: str, hosts: tuple[str, ...],
                        backend: str = "system") -> Iterator[ProxyCluster]:
    """Generator behind the fixtures (this module's and the DNS tests'): network, namespace,
    kube-proxy (with --iptables-backend `backend`); on exit --cleanup, leftovers check, guard
    counters check — in that backend's tables."""
    iptables = IPTABLES_BACKENDS[backend]
    route_localnet = Path("/proc/sys/net/ipv4/conf/all/route_localnet").read_text().strip()
    data = cp.cfg.dir / f"kube-proxy-{prefix}"
    data.mkdir(parents=True, exist_ok=True)
    kubeconfigs = write_cluster_kubeconfigs(cp.pki, data, cp.url)
    device = f"{prefix}s"
    net = NetnsNetwork.create(prefix, SUBNET)
    api = cp.client()
    namespace = f"kp-{os.urandom(3).hex()}"
    proxy = KubeProxyProcess(kubeconfigs["kube-proxy"], mode, device, data / "kube-proxy.log",
                             ["--iptables-backend", backend])
    cluster = ProxyCluster(cp, net, proxy, mode, namespace, api, data)
    errors: list[str] = []
    try:
        for name in hosts:
            net.add_host(name)
        r = api.post("/api/v1/namespaces", json={"apiVersion": "v1", "kind": "Namespace",
                                                 "metadata": {"name": namespace}})
        assert r.status_code == 201, r.text
        proxy.start()
        proxy.wait_ready()
        yield cluster
    finally:
        for p in cluster.extra_processes:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(5)
        proxy.stop()
        counters = guard_counters(iptables)
        if not counters or any(counters.values()):
            errors.append(f"guard counters must exist and be 0: {counters}")
        cleanup = sh(sys.executable, "-m", "kube_proxy", "--cleanup", "--service-cidr-device", device,
                     "--lb-pool", LB_POOL, "--service-cluster-ip-range", SERVICE_CIDR, timeout=120)
        if cleanup.returncode != 0:
            errors.append(f"kube-proxy --cleanup failed: {cleanup.stderr}")
        for table in ("nat", "filter"):
            left = [line for line in sh(f"{iptables}-save", "-t", table).stdout.splitlines() if "KUBE-" in line]
            if left:
                errors.append(f"--cleanup left {table} rules: {left[:5]}")
        if sh("nft", "list", "table", "ip", "kube-proxy").returncode == 0:
            errors.append("--cleanup left the nftables table")
        routes = sh("ip", "route", "show").stdout
        if SERVICE_CIDR in routes or LB_POOL in routes:
            errors.append(f"--cleanup left routes: {routes}")
        remove_leftovers(device, iptables)
        net.close()
        Path("/proc/sys/net/ipv4/conf/all/route_localnet").write_text(route_localnet)
        if leftovers(prefix):
            errors.append(f"netns leftovers: {leftovers(prefix)}")
        api.delete(f"/api/v1/namespaces/{namespace}")
        api.close()
    assert not errors, errors


def exclusive_proxy_cluster(cp: ControlPlane, mode: str, prefix: str, hosts: tuple[str, ...],
                            backend: str = "system") -> Iterator[ProxyCluster]:
    """start_proxy_cluster under the host-wide lock (one kube-proxy owns the KUBE-* rules at a
    time); skips, saying why, when another kube-proxy runs here."""
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    with exclusive_lock(LOCK):
        reason = skip_reason()
        if reason:
            pytest.skip(reason)
        yield from start_proxy_cluster(cp, mode, unique_prefix(prefix), hosts, backend)


@pytest.fixture(scope="module", params=["iptables", "nftables"])
def cluster(request, control_plane) -> Iterator[ProxyCluster]:
    yield from exclusive_proxy_cluster(control_plane, request.param, "mkd", ("h1", "h2", "h3", "c1"))


def gets(ip: str, port: int, n: int) -> list[str]:
    return [http_get(ip, port) for _ in range(n)]


def pod_gets(host, ip: str, port: int, n: int) -> list[str]:
    """n HTTP GETs from inside a netns host (a "pod")."""
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); from tests.e2e.netns_hosts import http_get; "
        f"print(' '.join(http_get('{ip}', {port}) for _ in range({n})))"
    )
    return host.exec(sys.executable, "-c", code, str(REPO)).stdout.split()


def wait_answers(ip: str, port: int, wanted: set[str], timeout: float = 15) -> None:
    wait_for(lambda: http_get(ip, port, 2.0) in wanted, timeout, 0.05, f"{ip}:{port} to answer from {wanted}")


# -----------------------------------------------------------------------------------------------


def test_health_and_readiness(cluster):
    r = cluster.proxy.get("/healthz")
    assert r.status_code == 200, r.text
    assert cluster.proxy.metric("kubeproxy_sync_full_proxy_rules_duration_seconds_count") >= 1
    assert cluster.proxy.metric("kubeproxy_sync_proxy_rules_last_timestamp_seconds") > 0


def test_three_endpoints_spread_from_host_and_pod(cluster):
    h = cluster.net.hosts
    svc = cluster.create_service("web", web_ports())
    vip = svc["spec"]["clusterIP"]
    before = cluster.programmed()
    cluster.put_slice("web", [h["h1"], h["h2"], h["h3"]], HTTP_PORTS)
    cluster.wait_programmed(before)

    answers = gets(vip, 80, 90)
    assert set(answers) == {"h1", "h2", "h3"}
    # P(an endpoint gets <= 10 of 90 at p=1/3) is ~1e-6: catches broken probabilities.
    assert min(answers.count(n) for n in ("h1", "h2", "h3")) > 10, answers
    from_pod = pod_gets(h["c1"], vip, 80, 45)
    assert len(from_pod) == 45 and set(from_pod) == {"h1", "h2", "h3"}
    assert cluster.programmed() > before  # the latency metric saw the change


def test_scaling_3_1_3_under_load_loses_no_request(cluster):
    h = cluster.net.hosts
    vip = cluster.create_service("scale", web_ports())["spec"]["clusterIP"]
    three = [h["h1"], h["h2"], h["h3"]]
    before = cluster.programmed()
    cluster.put_slice("scale", three, HTTP_PORTS)
    cluster.wait_programmed(before)

    answers: list[str] = []
    failures: list[str] = []
    stop = threading.Event()

    def load(limit: int = 3000) -> None:  # bounded: at most `limit` requests
        for i in range(limit):
            if stop.is_set():
                return
            try:
                answers.append(http_get(vip, 80))
            except Exception as exc:  # every failure is a lost request
                failures.append(f"#{i}: {exc!r}")

    loader = threading.Thread(target=load)
    loader.start()
    try:
        wait_for(lambda: len(answers) >= 50, 30, 0.02, "50 answers")
        before = cluster.programmed()
        cluster.put_slice("scale", [h["h1"]], HTTP_PORTS)
        cluster.wait_programmed(before)
        down_at = len(answers)
        wait_for(lambda: len(answers) >= down_at + 60, 30, 0.02, "60 more answers")
        up_from = len(answers)
        before = cluster.programmed()
        cluster.put_slice("scale", three, HTTP_PORTS)
        cluster.wait_programmed(before)
        back_at = len(answers)
        wait_for(lambda: len(answers) >= back_at + 60, 30, 0.02, "60 more answers")
    finally:
        stop.set()
        loader.join(60)
    assert failures == []
    # With one endpoint (after the request in flight at the sync), only h1 answers.
    assert set(answers[down_at + 1 : up_from]) == {"h1"}
    assert {"h2", "h3"} <= set(answers[back_at + 1 :])


def test_nodeport_on_node_address(cluster):
    h = cluster.net.hosts
    svc = cluster.create_service("np", web_ports(), svc_type="NodePort")
    node_port = svc["spec"]["ports"][0]["nodePort"]
    assert 30000 <= node_port <= 32767
    before = cluster.programmed()
    cluster.put_slice("np", [h["h2"]], HTTP_PORTS)
    cluster.wait_programmed(before)
    # The bridge gateway is an address of this node (created by the test).
    assert http_get(cluster.net.gateway, node_port) == "h2"
    if cluster.mode == "iptables":  # upstream's nftables mode has no localhost NodePorts
        assert http_get("127.0.0.1", node_port) == "h2"
    assert pod_gets(h["c1"], cluster.net.gateway, node_port, 3) == ["h2"] * 3


def test_client_ip_affinity_keeps_one_endpoint(cluster):
    h = cluster.net.hosts
    vip = cluster.create_service("sticky", web_ports(), sessionAffinity="ClientIP")["spec"]["clusterIP"]
    before = cluster.programmed()
    cluster.put_slice("sticky", [h["h1"], h["h2"], h["h3"]], HTTP_PORTS)
    cluster.wait_programmed(before)
    answers = gets(vip, 80, 30)
    assert len(set(answers)) == 1, answers  # without affinity: P(one name) ~ 1e-13
    from_pod = pod_gets(h["c1"], vip, 80, 20)
    assert len(set(from_pod)) == 1, from_pod


def test_service_without_endpoints_rejects_at_once(cluster):
    vip = cluster.create_service("empty", web_ports())["spec"]["clusterIP"]

    def refused() -> bool:
        try:
            http_get(vip, 80, 5.0)
        except ConnectionRefusedError:
            return True
        return False

    wait_for(refused, 15, 0.1, "a REJECT for the service without endpoints")
    started = time.monotonic()
    with pytest.raises(ConnectionRefusedError):
        http_get(vip, 80, 5.0)
    assert time.monotonic() - started < 1.0  # a DROP would time out instead
    # From a pod too (the forwarded path).
    code = (
        "import socket, time\nt = time.monotonic()\n"
        f"try:\n    socket.create_connection(('{vip}', 80), timeout=5)\n"
        "except ConnectionRefusedError:\n    print('refused', time.monotonic() - t)\n"
    )
    out = cluster.net.hosts["c1"].exec(sys.executable, "-c", code).stdout.split()
    assert out and out[0] == "refused" and float(out[1]) < 1.0, out


def test_udp_endpoint_switch_takes_effect_at_once(cluster):
    h = cluster.net.hosts
    vip = cluster.create_service("echo", [{"name": "echo", "port": 53, "targetPort": UDP_PORT,
                                            "protocol": "UDP"}])["spec"]["clusterIP"]
    before = cluster.programmed()
    cluster.put_slice("echo", [h["h1"]], UDP_PORTS)
    cluster.wait_programmed(before)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("0.0.0.0", 0))
        assert udp_ask(sock, vip, 53) == "h1"
        flows = sh("conntrack", "-L", "-p", "udp", "--orig-dst", vip).stdout
        assert f"src={h['h1'].ip}" in flows  # the flow is pinned to h1 until conntrack forgets it
        before = cluster.programmed()
        cluster.put_slice("echo", [h["h2"]], UDP_PORTS)
        cluster.wait_programmed(before)
        assert udp_ask(sock, vip, 53) == "h2"  # same socket, same flow tuple: conntrack was cleared


def test_load_balancer_gets_pool_address_and_is_reachable(cluster):
    from kube_proxy.launch import write_lb_controller_kubeconfig

    h = cluster.net.hosts
    kubeconfig = write_lb_controller_kubeconfig(cluster.cp.cfg)
    log = open(cluster.data / "lb-controller.log", "ab")
    controller = subprocess.Popen(
        [sys.executable, "-m", "kube_proxy.lbcontroller", "--kubeconfig", str(kubeconfig),
         "--lb-pool", LB_POOL, "--healthz-bind-address", f"127.0.0.1:{free_port()}"],
        stdout=log, stderr=subprocess.STDOUT, env=component_env(), start_new_session=True, cwd=REPO,
    )
    log.close()
    cluster.extra_processes.append(controller)
    cluster.create_service("lb", web_ports(8080), svc_type="LoadBalancer")
    before = cluster.programmed()
    cluster.put_slice("lb", [h["h3"]], HTTP_PORTS)

    def ingress() -> str | None:
        items = (cluster.service("lb").get("status") or {}).get("loadBalancer", {}).get("ingress") or []
        return items[0].get("ip") if items else None

    ip = wait_for(ingress, 20, 0.1, "status.loadBalancer.ingress")
    assert ipaddress.ip_address(ip) in ipaddress.ip_network(LB_POOL)
    cluster.wait_programmed(before)
    wait_answers(ip, 8080, {"h3"})
    assert gets(ip, 8080, 5) == ["h3"] * 5
    assert pod_gets(h["c1"], ip, 8080, 3) == ["h3"] * 3
    # Deleting the Service releases the address: the next LoadBalancer gets it again.
    cluster.delete_service("lb")
    cluster.create_service("lb2", web_ports(8080), svc_type="LoadBalancer")
    wait_for(lambda: (cluster.service("lb2").get("status") or {}).get("loadBalancer", {}).get("ingress"),
             20, 0.1, "lb2 ingress")
    # (the lowest free address: the one just released)
    assert cluster.service("lb2")["status"]["loadBalancer"]["ingress"][0]["ip"] == ip
    assert controller.poll() is None


def test_killed_proxy_leaves_rules_working_and_restart_converges(cluster):
    h = cluster.net.hosts
    vip = cluster.create_service("live", web_ports())["spec"]["clusterIP"]
    udp_vip = cluster.create_service("live-udp", [{"name": "echo", "port": 53, "targetPort": UDP_PORT,
                                                    "protocol": "UDP"}])["spec"]["clusterIP"]
    before = cluster.programmed()
    cluster.put_slice("live", [h["h1"], h["h2"], h["h3"]], HTTP_PORTS)
    cluster.put_slice("live-udp", [h["h1"], h["h2"], h["h3"]], UDP_PORTS)
    wait_for(lambda: cluster.programmed() >= before + 2, 15, 0.05, "both changes programmed")

    answers: list[str] = []
    failures: list[str] = []
    stop = threading.Event()

    def load(limit: int = 5000) -> None:
        for i in range(limit):
            if stop.is_set():
                return
            try:
                answers.append(http_get(vip, 80))
            except Exception as exc:
                failures.append(f"#{i}: {exc!r}")

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("0.0.0.0", 0))
    loader = threading.Thread(target=load)
    loader.start()
    try:
        pinned = udp_ask(sock, udp_vip, 53)
        wait_for(lambda: len(answers) >= 30, 30, 0.02, "30 answers")
        cluster.proxy.stop(signal.SIGKILL)
        killed_at = len(answers)
        wait_for(lambda: len(answers) >= killed_at + 50, 30, 0.02, "50 answers with kube-proxy dead")
        # A change while kube-proxy is down, applied by the next one.
        cluster.put_slice("live", [h["h1"], h["h2"]], HTTP_PORTS)
        cluster.proxy.start()
        cluster.proxy.wait_ready()
        # Ready means the first sync (with the new endpoints) is done.
        restarted_at = len(answers)
        try:
            wait_for(lambda: len(answers) >= restarted_at + 60, 30, 0.02, "60 answers after the restart")
        except AssertionError:
            raise AssertionError(f"{len(answers) - restarted_at} answers after the restart; "
                                 f"failures: {failures[-3:]}") from None
        # The full resync did not flush live flows: the UDP flow still goes where it went.
        assert udp_ask(sock, udp_vip, 53) == pinned
    finally:
        stop.set()
        loader.join(60)
        sock.close()
    assert failures == []
    assert set(answers[killed_at: killed_at + 50]) == {"h1", "h2", "h3"}  # rules kept working
    after = answers[restarted_at + 1:]
    assert set(after) == {"h1", "h2"}, after  # converged on the new endpoints


def test_ipvs_mode_exits_with_a_clear_message(cluster):
    if os.path.exists("/proc/net/ip_vs"):
        pytest.skip("this kernel has IPVS")
    r = sh(sys.executable, "-m", "kube_proxy", "--proxy-mode", "ipvs", "--kubeconfig", "/nonexistent")
    assert r.returncode == 1
    assert "IPVS" in r.stderr and "--proxy-mode=iptables" in r.stderr, r.stderr
    assert cluster.proxy.alive()  # and nothing of the running kube-proxy was touched
    assert cluster.proxy.get("/healthz").status_code == 200


def test_guard_counters_still_zero(cluster):
    counters = guard_counters()
    assert set(counters) >= {CLUSTER_CIDR, SERVICE_CIDR, LB_POOL}
    assert sum(counters.values()) == 0, counters

