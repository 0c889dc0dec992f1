"""kube-proxy daemon logic without root: options, health, metrics, node addresses, proxier
construction, network-programming latency and conntrack behaviour across restarts (FakeRunner)."""

import asyncio
import datetime

import pytest

from apimachinery.metrics import Registry
from kube_proxy.app import (
    ConfigError,
    ProxierHealth,
    ProxyMetrics,
    ProxyOptions,
    build_proxier,
    cleanup,
    ensure_mode_available,
    node_addresses,
    resolve_nodeport_addresses,
)
from kube_proxy.commands import CommandResult
from kube_proxy.fake import FakeRunner, make_endpoint, make_endpointslice, make_service
from kube_proxy.iptables import IptablesProxier
from kube_proxy.ipvs import IpvsProxier
from kube_proxy.nftables import NftablesProxier
from kube_proxy.provider import SyncResult

ROUTES = "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\nuplink0\t00000000\t0102A8C0\t0003\t0\t0\t0\t00000000\n"


def stamp(seconds_ago: float) -> str:
    t = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=seconds_ago)
    return t.isoformat().replace("+00:00", "Z")


def annotated(slice_obj: dict, seconds_ago: float) -> dict:
    slice_obj.setdefault("metadata", {}).setdefault("annotations", {})[
        "endpoints.kubernetes.io/last-change-trigger-time"] = stamp(seconds_ago)
    return slice_obj


# -- options --------------------------------------------------------------------------------------


def test_default_options_are_valid_and_node_name_is_lowercase():
    opts = ProxyOptions(hostname_override="Node-A ")
    opts.validate()
    assert opts.node_name == "node-a"


@pytest.mark.parametrize(
    "change, message",
    [
        ({"proxy_mode": "userspace"}, "--proxy-mode"),
        ({"cluster_cidr": "10.244.0.0/33"}, "--cluster-cidr"),
        ({"cluster_cidr": "fd00::/64"}, "only IPv4"),
        ({"nodeport_addresses": ["nonsense"]}, "--nodeport-addresses"),
        ({"lb_pool": ["198.18.300.0/24"]}, "--lb-pool"),
        ({"healthz_bind_address": "10256"}, "--healthz-bind-address"),
        ({"ipvs_scheduler": "fastest"}, "--ipvs-scheduler"),
        ({"sync_period": 0}, "--sync-period"),
    ],
)
def test_bad_options_are_refused_with_the_flag_name(change, message):
    with pytest.raises(ConfigError, match=message):
        ProxyOptions(**change).validate()


# -- node addresses and NodePort addresses ---------------------------------------------------------


def test_node_addresses_prefer_internal_ipv4():
    node = {"status": {"addresses": [
        {"type": "Hostname", "address": "node-a"},
        {"type": "ExternalIP", "address": "203.0.113.9"},
        {"type": "InternalIP", "address": "fd00::5"},
        {"type": "InternalIP", "address": "10.0.0.5"},
    ]}}
    assert node_addresses(node) == ["10.0.0.5", "203.0.113.9"]
    assert node_addresses(None) == []


def test_nodeport_addresses_select_local_ips():
    local = ["10.0.0.5", "192.168.7.1", "127.0.0.1"]
    assert resolve_nodeport_addresses([], ["10.0.0.5"], local) is None  # all local addresses
    assert resolve_nodeport_addresses(["10.0.0.0/8"], ["10.0.0.5"], local) == ["10.0.0.5"]
    assert resolve_nodeport_addresses(["127.0.0.0/8", "primary"], ["10.0.0.5"], local) == ["127.0.0.1", "10.0.0.5"]


# -- health ---------------------------------------------------------------------------------------


def test_health_goes_stale_only_while_an_update_waits_too_long():
    now = [100.0]
    health = ProxierHealth(timeout=60, clock=lambda: now[0])
    assert health.healthy()  # starting up
    health.queued()
    now[0] += 59
    assert health.healthy()
    health.queued()  # a later change does not reset the oldest pending one
    now[0] += 2
    assert not health.healthy()
    health.updated()
    assert health.healthy()
    now[0] += 1000
    assert health.healthy()  # nothing pending: no sync needed


# -- metrics --------------------------------------------------------------------------------------


def test_metrics_split_full_partial_and_latency():
    registry = Registry()
    metrics = ProxyMetrics(registry)
    metrics.observe(SyncResult(ok=True, skipped=True))
    metrics.observe(SyncResult(ok=True, partial=False, seconds=0.5, restore_seconds=0.4, payload_bytes=900))
    metrics.observe(SyncResult(ok=True, partial=True, seconds=0.01, payload_bytes=120,
                               network_programming_seconds=[0.3, 1.5]))
    metrics.observe(SyncResult(ok=False, error="boom"))
    assert metrics.sync_duration.count() == 2
    assert metrics.full_sync_duration.count() == 1 and metrics.partial_sync_duration.count() == 1
    assert metrics.network_programming.count() == 2
    assert metrics.restore_failures.get() == 1
    text = registry.render()
    assert 'kubeproxy_network_programming_duration_seconds_bucket{le="0.5"} 1' in text
    assert 'kubeproxy_network_programming_duration_seconds_bucket{le="2"} 2' in text
    assert "kubeproxy_sync_proxy_rules_payload_bytes 120" in text  # the last sync's


# -- proxier construction -------------------------------------------------------------------------


def test_build_proxier_per_mode():
    runner = FakeRunner(ROUTES)
    assert isinstance(build_proxier(ProxyOptions(), ["10.0.0.5"], runner=runner), IptablesProxier)
    assert isinstance(build_proxier(ProxyOptions(proxy_mode="nftables"), [], runner=runner), NftablesProxier)
    ipvs = build_proxier(ProxyOptions(proxy_mode="ipvs", ipvs_scheduler="lc"), [], runner=runner)
    assert isinstance(ipvs, IpvsProxier) and ipvs.builder.config.scheduler == "lc"


async def test_lb_pool_is_routed_locally_and_guarded():
    runner = FakeRunner(ROUTES)
    proxier = build_proxier(ProxyOptions(lb_pool=["198.18.255.0/24"], min_sync_period=0), ["10.0.0.5"],
                            runner=runner)
    proxier.set_state([], [])
    assert (await proxier.sync_proxy_rules()).ok
    assert runner.routes == {"10.96.0.0/16": "kube-svc0", "198.18.255.0/24": "kube-svc0"}
    guard = runner.rules("filter", "KUBE-GUARD")
    assert any("198.18.255.0/24" in rule and "uplink0" in rule for rule in guard), guard
    assert await cleanup(ProxyOptions(lb_pool=["198.18.255.0/24"]), runner) == []
    assert runner.routes == {} and "KUBE-GUARD" not in runner.tables["filter"]


async def test_ipvs_unavailable_exits_naming_iptables():
    runner = FakeRunner(ROUTES)
    runner.handlers.append((("ipvsadm",), lambda argv, _: CommandResult(argv, 2, "", "Protocol not available")))
    with pytest.raises(SystemExit, match="--proxy-mode=iptables"):
        await ensure_mode_available(ProxyOptions(proxy_mode="ipvs"), runner)
    await ensure_mode_available(ProxyOptions(proxy_mode="iptables"), runner)  # no check needed


# -- network programming latency and restarts ----------------------------------------------------


def web():
    return make_service("web", "10.96.0.20", [{"name": "dns", "port": 53, "protocol": "UDP"}])


def web_slice(*ips):
    return make_endpointslice("web", [make_endpoint(ip) for ip in ips], [{"name": "dns", "port": 5353,
                                                                          "protocol": "UDP"}])


async def test_network_programming_latency_from_trigger_time():
    proxier = IptablesProxier("node-a", ["10.0.0.5"], runner=FakeRunner(ROUTES), min_sync_period=0)
    seen: list[SyncResult] = []
    proxier.on_sync = seen.append
    proxier.set_state([web()], [])
    await proxier.sync_proxy_rules()
    await asyncio.sleep(0.02)
    old = annotated(web_slice("10.244.1.5"), 0.0)
    proxier.on_endpointslice_add(old)
    await asyncio.sleep(0.05)  # the rules go live 50 ms after the change
    result = await proxier.sync_proxy_rules()
    assert len(result.network_programming_seconds) == 1
    assert 0.05 <= result.network_programming_seconds[0] < 5
    # A slice stamped before kube-proxy started measures nothing (upstream's trackerStartTime).
    proxier.on_endpointslice_update(old, annotated(web_slice("10.244.1.6"), 3600))
    assert (await proxier.sync_proxy_rules()).network_programming_seconds == []
    # Deletions carry no latency.
    current = web_slice("10.244.1.6")
    proxier.on_endpointslice_delete(annotated(current, 0.1))
    assert (await proxier.sync_proxy_rules()).network_programming_seconds == []
    assert [r.ok for r in seen] == [True] * 4


async def test_first_sync_after_start_does_not_clear_live_udp_flows():
    runner = FakeRunner(ROUTES)
    proxier = IptablesProxier("node-a", ["10.0.0.5"], runner=runner, min_sync_period=0)
    proxier.set_state([web()], [web_slice("10.244.1.5")])  # a restart: endpoints already exist
    assert (await proxier.sync_proxy_rules()).ok
    assert runner.commands("conntrack") == []
    # A real 1 -> 0 -> 1 transition later does clear the blackholed flows.
    proxier.on_endpointslice_update(web_slice("10.244.1.5"), web_slice())
    await proxier.sync_proxy_rules()
    runner.calls.clear()
    proxier.on_endpointslice_update(web_slice(), web_slice("10.244.1.7"))
    await proxier.sync_proxy_rules()
    assert ["conntrack", "-D", "--orig-dst", "10.96.0.20", "-p", "udp"] in runner.commands("conntrack")


async def test_trigger_time_of_a_reverted_change_is_dropped():
    proxier = IptablesProxier("node-a", ["10.0.0.5"], runner=FakeRunner(ROUTES), min_sync_period=0)
    proxier.set_state([web()], [web_slice("10.244.1.5")])
    await proxier.sync_proxy_rules()
    await asyncio.sleep(0.02)
    changed = annotated(web_slice("10.244.1.6"), 0.0)
    proxier.on_endpointslice_update(web_slice("10.244.1.5"), changed)
    proxier.on_endpointslice_update(changed, web_slice("10.244.1.5"))  # back to what is applied
    await asyncio.sleep(0.01)
    proxier.on_endpointslice_update(web_slice("10.244.1.5"), annotated(web_slice("10.244.1.8"), 0.0))
    result = await proxier.sync_proxy_rules()
    assert len(result.network_programming_seconds) == 1 and result.network_programming_seconds[0] < 0.1


async def test_pod_traffic_to_a_service_without_endpoints_meets_the_reject_first():
    # KUBE-FORWARD (hooked before KUBE-SERVICES in FORWARD) accepts pod traffic; the REJECT
    # for a service without endpoints must be consulted before that ACCEPT.
    runner = FakeRunner(ROUTES)
    proxier = IptablesProxier("node-a", ["10.0.0.5"], runner=runner, min_sync_period=0)
    proxier.set_state([web()], [])
    await proxier.sync_proxy_rules()
    forward = runner.rules("filter", "KUBE-FORWARD")
    to_services = next(i for i, r in enumerate(forward) if r.endswith("-j KUBE-SERVICES"))
    pod_accept = next(i for i, r in enumerate(forward) if "-s 10.244.0.0/16" in r and r.endswith("-j ACCEPT"))
    assert to_services < pod_accept
    assert "REJECT" in " ".join(runner.rules("filter", "KUBE-SERVICES"))


def test_launch_commands_and_identities(tmp_path):
    from certs import certificate_identity, ensure_pki
    from dns.launch import dns_command, write_dns_kubeconfig
    from kube_proxy.launch import kube_proxy_command, lb_controller_command, write_lb_controller_kubeconfig
    from minictl.components import ClusterConfig

    cfg = ClusterConfig(str(tmp_path), node_name="node-a")
    ensure_pki(cfg.dir / "pki", node_names=["node-a"])
    cmd = kube_proxy_command(cfg)
    assert cmd[1:3] == ["-m", "kube_proxy"]
    assert cmd[cmd.index("--kubeconfig") + 1] == str(tmp_path / "kubeconfigs" / "kube-proxy.kubeconfig")
    assert cmd[cmd.index("--hostname-override") + 1] == "node-a"
    assert cmd[cmd.index("--lb-pool") + 1] == "198.18.255.0/24"
    assert "--route-pod-cidrs" in cmd  # joined and compose nodes reach each other's pods
    lb = write_lb_controller_kubeconfig(cfg)
    assert lb_controller_command(cfg)[lb_controller_command(cfg).index("--kubeconfig") + 1] == str(lb)
    assert certificate_identity(cfg.pki.cert("lb-controller")) == (
        "system:serviceaccount:kube-system:service-controller",
        ["system:serviceaccounts", "system:serviceaccounts:kube-system"],
    )
    dns_kc = write_dns_kubeconfig(cfg)
    dcmd = dns_command(cfg)
    assert dcmd[1:3] == ["-m", "dns"] and dcmd[dcmd.index("--kubeconfig") + 1] == str(dns_kc)
    assert dcmd[dcmd.index("--endpoint-address") + 1] == "auto"
    assert certificate_identity(cfg.pki.cert("coredns"))[0] == "system:serviceaccount:kube-system:coredns"


async def test_nftables_mode_start_removes_iptables_rules_but_keeps_the_guard():
    from kube_proxy.app import cleanup_other_modes

    runner = FakeRunner(ROUTES)
    legacy = IptablesProxier("node-a", ["10.0.0.5"], runner=runner, min_sync_period=0)
    legacy.set_state([web()], [web_slice("10.244.1.5")])
    await legacy.sync_proxy_rules()
    assert "KUBE-SERVICES" in runner.tables["nat"]
    await cleanup_other_modes(ProxyOptions(proxy_mode="nftables"), runner)
    assert not [c for t in ("nat", "filter") for c in runner.tables[t] if c.startswith("KUBE-") and c != "KUBE-GUARD"]
    assert runner.rules("filter", "KUBE-GUARD")
    assert any("KUBE-GUARD" in r for r in runner.rules("filter", "FORWARD"))


# -- --iptables-backend ----------------------------------------------------------------------------


class LegacyTools(FakeRunner):
    """Two fake kernels: iptables-legacy* commands go to `self.legacy` (its own tables), the
    rest to this one; `legacy_calls` / `system_calls` record which tool ran."""

    def __init__(self) -> None:
        super().__init__(ROUTES)
        self.legacy = FakeRunner(ROUTES)
        self.legacy_calls: list[str] = []
        self.system_calls: list[str] = []

    async def run(self, argv, stdin=None):
        argv = list(argv)
        if argv and argv[0].startswith("iptables-legacy"):
            self.legacy_calls.append(argv[0])
            return await self.legacy.run([argv[0].replace("iptables-legacy", "iptables"), *argv[1:]], stdin)
        if argv and argv[0].startswith("iptables"):
            self.system_calls.append(argv[0])
        return await super().run(argv, stdin)


async def test_legacy_backend_drives_iptables_legacy_only():
    runner = LegacyTools()
    opts = ProxyOptions(iptables_backend="legacy", min_sync_period=0)
    proxier = build_proxier(opts, ["10.0.0.5"], runner=runner)
    assert proxier.iptables.binary == "iptables-legacy" and proxier.guard.iptables is proxier.iptables
    proxier.set_state([make_service("web", "10.96.0.10", [{"name": "http", "port": 80, "protocol": "TCP"}])],
                      [make_endpointslice("web", [make_endpoint("10.244.1.2")],
                                          [{"name": "http", "port": 8080, "protocol": "TCP"}])])
    assert (await proxier.sync_proxy_rules()).ok
    assert "iptables-legacy-restore" in runner.legacy_calls and runner.system_calls == []
    assert any("10.96.0.10" in rule for rule in runner.legacy.rules("nat", "KUBE-SERVICES"))
    assert "KUBE-SERVICES" not in runner.tables["nat"]
    ipvs = build_proxier(ProxyOptions(proxy_mode="ipvs", iptables_backend="legacy"), [], runner=runner)
    assert ipvs.iptables.binary == "iptables-legacy"
    # nftables mode's uplink guard is iptables rules too: in the same backend, which start-up keeps
    nft = build_proxier(ProxyOptions(proxy_mode="nftables", iptables_backend="legacy"), [], runner=runner)
    assert nft.iptables.binary == "iptables-legacy" and nft.guard.iptables is nft.iptables


async def test_cleanup_also_removes_another_backends_rules():
    runner = LegacyTools()
    legacy = build_proxier(ProxyOptions(iptables_backend="legacy", min_sync_period=0), ["10.0.0.5"], runner=runner)
    legacy.set_state([], [])
    assert (await legacy.sync_proxy_rules()).ok
    assert "KUBE-SERVICES" in runner.legacy.tables["nat"] and "KUBE-SERVICES" not in runner.tables["nat"]
    # `--cleanup` with the default backend finds the legacy tables' chains and removes them too
    assert await cleanup(ProxyOptions(), runner) == []
    assert "KUBE-SERVICES" not in runner.legacy.tables["nat"]
    assert "KUBE-GUARD" not in runner.legacy.tables["filter"]


def test_unknown_backend_is_a_config_error():
    with pytest.raises(ConfigError, match="--iptables-backend"):
        ProxyOptions(iptables_backend="xtables").validate()


async def test_start_removes_the_other_backends_leftovers_and_keeps_ours():
    from kube_proxy.app import cleanup_other_modes

    runner = LegacyTools()
    for backend in ("legacy", "system"):
        p = build_proxier(ProxyOptions(iptables_backend=backend, min_sync_period=0), ["10.0.0.5"], runner=runner)
        p.set_state([], [])
        assert (await p.sync_proxy_rules()).ok
    ours = {table: dict(runner.tables[table]) for table in ("nat", "filter")}
    await cleanup_other_modes(ProxyOptions(), runner)
    assert not any(c.startswith("KUBE-") for t in ("nat", "filter") for c in runner.legacy.tables[t])
    assert {table: dict(runner.tables[table]) for table in ("nat", "filter")} == ours
