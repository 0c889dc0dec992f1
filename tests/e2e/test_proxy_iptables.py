"""kube-proxy iptables mode for real: the proxier's rules on this host, netns "hosts" as endpoints.

Needs root, iptables, conntrack and iproute2. Uses the real KUBE-* chains (that is what is
under test), so it refuses to run next to another kube-proxy and serializes itself with a lock;
everything it creates is removed in finalizers, even on failure.
"""

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import threading

import pytest

from kube_proxy.chains import leftover_cleanup_payload
from kube_proxy.fake import make_endpoint, make_endpointslice, make_service
from kube_proxy.iptables import IptablesProxier
from tests.conftest import until
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

SUBNET = "10.244.250.0/24"
SERVICE_CIDR = "10.96.0.0/16"
NODE = "e2e-node"
LOCK = (
    "/run/lock/minik8s-kube-proxy-e2e.lock"
    if os.path.isdir("/run/lock")
    else "/tmp/minik8s-kube-proxy-e2e.lock"
)
WEB_VIP, DNS_VIP, EMPTY_VIP, STICKY_VIP = "10.96.250.10", "10.96.250.53", "10.96.250.99", "10.96.250.20"
EP_HTTP = [{"name": "http", "port": HTTP_PORT, "protocol": "TCP"}]
EP_DNS = [{"name": "dns", "port": UDP_PORT, "protocol": "UDP"}]


def _sh(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=30)


def _route_localnet() -> str:
    with open("/proc/sys/net/ipv4/conf/all/route_localnet") as f:
        return f.read().strip()


def _bridge_nf_call_iptables() -> bool:
    try:
        with open("/proc/sys/net/bridge/bridge-nf-call-iptables") as f:
            return f.read().strip() == "1"
    except OSError:
        return False


def _skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "needs root (iptables, network namespaces, veth)"
    for tool in ("iptables", "iptables-save", "iptables-restore", "conntrack", "ip"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    if _sh("iptables", "-w", "5", "-t", "nat", "-S", "KUBE-SERVICES").returncode == 0:
        return "nat/KUBE-SERVICES exists: another kube-proxy owns the KUBE-* chains here"
    routes = _sh("ip", "route", "show").stdout
    if SUBNET in routes or SERVICE_CIDR in routes:
        return f"a route for {SUBNET} or {SERVICE_CIDR} already exists on this host"
    return None


def _remove_kube_chains() -> None:
    """Safety net after the tests: drop any KUBE-* chain a failed cleanup left behind."""
    for table in ("nat", "filter"):
        payload = leftover_cleanup_payload(table, _sh("iptables-save", "-t", table).stdout)
        if payload:
            subprocess.run(["iptables-restore", "-w", "5", "--noflush"], input=payload, text=True, timeout=30)


@pytest.fixture(scope="module")
def network():
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    with exclusive_lock(LOCK):
        reason = _skip_reason()  # re-check: another run may have finished or started meanwhile
        if reason:
            pytest.skip(reason)
        route_localnet = _route_localnet()
        prefix = unique_prefix()
        net = NetnsNetwork.create(prefix, SUBNET)
        try:
            for name in ("h1", "h2", "h3"):
                net.add_host(name)
            yield net
        finally:
            net.close()
            _remove_kube_chains()
            _sh("ip", "route", "del", SERVICE_CIDR)
            _sh("ip", "link", "del", f"{prefix}s")
            with open("/proc/sys/net/ipv4/conf/all/route_localnet", "w") as f:
                f.write(route_localnet)
            assert leftovers(prefix) == []


@pytest.fixture
async def proxier(network):
    p = IptablesProxier(
        NODE,
        [network.gateway],
        cluster_cidr="10.244.0.0/16",
        service_cidr=SERVICE_CIDR,
        min_sync_period=0.0,
        sync_period=60.0,
        service_cidr_device=f"{network.prefix}s",
    )
    try:
        yield p
    finally:
        counters = await p.guard_counters()
        errors = await p.cleanup()
        assert errors == []
        assert counters and all(v == 0 for v in counters.values()), f"guard dropped packets: {counters}"


def web_slice(*hosts, name="web"):
    return make_endpointslice(name, [make_endpoint(h.ip, node=NODE) for h in hosts], EP_HTTP)


async def start(proxier, services, slices):
    proxier.set_state(services, slices)
    result = await proxier.sync_proxy_rules()
    assert result.ok, result.error


async def resync(proxier):
    result = await proxier.sync_proxy_rules()
    assert result.ok, result.error
    return result


def gets(ip, port, n):
    return [http_get(ip, port) for _ in range(n)]


# -----------------------------------------------------------------------------------------------


async def test_clusterip_spreads_over_all_endpoints(network, proxier):
    h = network.hosts
    await start(
        proxier,
        [make_service("web", WEB_VIP, [{"name": "http", "port": 80}])],
        [web_slice(h["h1"], h["h2"], h["h3"])],
    )
    answers = await asyncio.to_thread(gets, WEB_VIP, 80, 90)
    assert set(answers) == {"h1", "h2", "h3"}
    # P(one endpoint gets <= 10 of 90 at p=1/3) is ~1e-6: catches broken probabilities.
    assert min(answers.count(n) for n in ("h1", "h2", "h3")) > 10, answers


async def test_scaling_3_1_3_under_load_loses_no_tcp_request(network, proxier):
    h = network.hosts
    three = web_slice(h["h1"], h["h2"], h["h3"])
    one = web_slice(h["h1"])
    await start(proxier, [make_service("web", WEB_VIP, [{"name": "http", "port": 80}])], [three])

    answers: list[str] = []
    failures: list[str] = []
    stop_load = threading.Event()

    def load(limit: int = 3000) -> int:
        """Requests one after the other until told to stop (bounded); returns how many were sent."""
        sent = 0
        while not stop_load.is_set() and sent < limit:
            try:
                answers.append(http_get(WEB_VIP, 80))
            except Exception as exc:  # every failure is a lost request
                failures.append(f"#{sent}: {exc!r}")
            sent += 1
        return sent

    async def answered(n: int, what: str) -> None:
        # counted from each sync, not as fixed request numbers: a slow sync must not leave the
        # window between the two syncs empty
        await until(lambda: len(answers) + len(failures) >= n, 60, what)

    loader = asyncio.create_task(asyncio.to_thread(load))
    await answered(80, "80 requests through 3 endpoints")
    proxier.on_endpointslice_update(three, one)
    assert (await resync(proxier)).partial
    scaled_down_at = len(answers)
    await answered(scaled_down_at + 120, "120 requests through 1 endpoint")
    scaled_up_at = len(answers)
    proxier.on_endpointslice_update(one, three)
    await resync(proxier)
    await answered(len(answers) + 100, "100 requests through 3 endpoints again")
    stop_load.set()
    sent = await loader

    assert failures == []
    assert len(answers) == sent
    # Between the two syncs (minus the one request in flight at each) only h1 may answer.
    assert set(answers[scaled_down_at + 1 : scaled_up_at]) == {"h1"}
    assert {"h2", "h3"} <= set(answers[scaled_up_at + 1 :]) or {"h2", "h3"} <= set(answers[:scaled_down_at])


async def test_nodeport_on_localhost_and_node_address(network, proxier):
    h = network.hosts
    svc = make_service("web", WEB_VIP, [{"name": "http", "port": 80, "nodePort": 30080}], svc_type="NodePort")
    await start(proxier, [svc], [web_slice(h["h2"])])
    assert _route_localnet() == "1"
    assert await asyncio.to_thread(http_get, "127.0.0.1", 30080) == "h2"
    assert await asyncio.to_thread(http_get, network.gateway, 30080) == "h2"  # an address of this node


async def test_client_ip_affinity_sticks(network, proxier):
    h = network.hosts
    svc = make_service("sticky", STICKY_VIP, [{"name": "http", "port": 80}], sessionAffinity="ClientIP")
    await start(proxier, [svc], [web_slice(h["h1"], h["h2"], h["h3"], name="sticky")])
    answers = await asyncio.to_thread(gets, STICKY_VIP, 80, 30)
    assert len(set(answers)) == 1, answers  # without affinity: 3 names, P(one) ~ 1e-13


async def test_service_without_endpoints_is_refused_at_once(network, proxier):
    await start(proxier, [make_service("empty", EMPTY_VIP, [{"name": "http", "port": 80}])], [])
    with pytest.raises(ConnectionRefusedError):
        await asyncio.to_thread(http_get, EMPTY_VIP, 80, 5.0)  # a DROP would time out instead


async def test_udp_endpoint_switch_takes_effect_at_once(network, proxier):
    h = network.hosts
    svc = make_service("dns", DNS_VIP, [{"name": "dns", "port": 53, "protocol": "UDP"}])
    first = make_endpointslice("dns", [make_endpoint(h["h1"].ip, node=NODE)], EP_DNS)
    await start(proxier, [svc], [first])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("0.0.0.0", 0))
        assert udp_ask(sock, DNS_VIP, 53) == "h1"
        flows = _sh("conntrack", "-L", "-p", "udp", "--orig-dst", DNS_VIP).stdout
        assert f"src={h['h1'].ip}" in flows  # the flow is pinned to h1 until conntrack forgets it
        second = make_endpointslice("dns", [make_endpoint(h["h2"].ip, node=NODE)], EP_DNS)
        proxier.on_endpointslice_update(first, second)
        await resync(proxier)
        assert udp_ask(sock, DNS_VIP, 53) == "h2"  # same socket, same flow tuple


REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.skipif(
    not _bridge_nf_call_iptables(),
    reason="pod -> service on one bridge needs br_netfilter with bridge-nf-call-iptables=1",
)
async def test_pod_to_service_including_hairpin(network, proxier):
    h = network.hosts
    await start(
        proxier,
        [make_service("web", WEB_VIP, [{"name": "http", "port": 80}])],
        [web_slice(h["h1"], h["h2"], h["h3"])],
    )
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); from tests.e2e.netns_hosts import http_get; "
        f"print(' '.join(http_get('{WEB_VIP}', 80) for _ in range(45)))"
    )
    out = await asyncio.to_thread(h["h1"].exec, sys.executable, "-c", code, REPO)
    answers = out.stdout.split()
    assert len(answers) == 45
    assert set(answers) == {"h1", "h2", "h3"}  # "h1" answering h1 is the hairpin path


async def test_cleanup_leaves_nothing_behind(network):
    route_localnet_before = _route_localnet()
    device = f"{network.prefix}s"
    p = IptablesProxier(
        NODE, [network.gateway], service_cidr=SERVICE_CIDR, min_sync_period=0.0, service_cidr_device=device
    )
    try:
        svc = make_service(
            "web",
            WEB_VIP,
            [{"name": "http", "port": 80, "nodePort": 30081}],
            svc_type="NodePort",
            sessionAffinity="ClientIP",
        )
        await start(
            p,
            [svc, make_service("empty", EMPTY_VIP, [{"name": "http", "port": 80}])],
            [web_slice(network.hosts["h1"])],
        )
        assert await asyncio.to_thread(http_get, WEB_VIP, 80) == "h1"
        assert _sh("ip", "link", "show", "dev", device).returncode == 0
        counters = await p.guard_counters()
        assert set(counters) == {"10.244.0.0/16", SERVICE_CIDR} and sum(counters.values()) == 0
    finally:
        assert await p.cleanup() == []
    for table in ("nat", "filter"):
        saved = _sh("iptables-save", "-t", table).stdout
        assert [line for line in saved.splitlines() if "KUBE-" in line] == []
    assert SERVICE_CIDR not in _sh("ip", "route", "show").stdout
    assert _sh("ip", "link", "show", "dev", device).returncode != 0
    assert _route_localnet() == route_localnet_before
