"""kube_proxy.ipvs: availability check, ipvsadm-restore generation, iptables companion rules."""

import pytest

from kube_proxy.commands import CommandResult
from kube_proxy.fake import (
    ROUTE_TABLE_ETH0,
    FakeIpvs,
    FakeRunner,
    make_endpoint,
    make_endpointslice,
    make_service,
)
from kube_proxy.ipvs import (
    IpvsConfig,
    IpvsProxier,
    IpvsRuleBuilder,
    VirtualServer,
    check_ipvs_available,
    ipvsadm_restore_payload,
    parse_ipvsadm_list,
)
from kube_proxy.model import ProxyState

HTTP = [{"name": "http", "port": 80, "protocol": "TCP"}]
EP_HTTP = [{"name": "http", "port": 8080, "protocol": "TCP"}]
EP_DNS = [{"name": "dns", "port": 5353, "protocol": "UDP"}]


def state(*objs, node="node-a"):
    st = ProxyState(node)
    for obj in objs:
        if obj["kind"] == "Service":
            st.on_service_update(None, obj)
        else:
            st.on_endpointslice_update(None, obj)
    st.apply_changes()
    return st


def build(*objs, **cfg):
    cfg.setdefault("node_ips", ["192.0.2.2", "127.0.0.1"])
    return IpvsRuleBuilder(IpvsConfig(**cfg)).build(state(*objs))


# -- availability ------------------------------------------------------------------------------


async def test_missing_kernel_support_names_the_iptables_fallback():
    runner = FakeRunner()
    ipvs = FakeIpvs()
    ipvs.available = False
    runner.handlers += ipvs.handlers()
    result = await check_ipvs_available(runner)
    assert not result.ok
    assert "Protocol not available" in result.reason and "iptables" in result.reason


async def test_missing_proc_file_or_tool():
    runner = FakeRunner()
    runner.handlers += FakeIpvs().handlers()
    result = await check_ipvs_available(runner)  # ipvsadm answers, but no /proc/net/ip_vs
    assert not result.ok and "/proc/net/ip_vs" in result.reason
    runner.files["/proc/net/ip_vs"] = ""
    assert (await check_ipvs_available(runner)).ok
    missing = FakeRunner()
    missing.handlers.append((("ipvsadm",), lambda argv, _: CommandResult(argv, 127, "", "not found")))
    result = await check_ipvs_available(missing)
    assert not result.ok and "not installed" in result.reason


# -- ipvsadm text ------------------------------------------------------------------------------

LISTING = """IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  10.96.0.1:443 rr
  -> 192.0.2.2:6443               Masq    1      3          7
UDP  10.96.0.10:53 lc persistent 10800
  -> 10.244.0.5:53                Masq    1      0          12
  -> 10.244.0.6:53                Masq    0      0          0
"""


def test_parse_ipvsadm_list():
    services, conns = parse_ipvsadm_list(LISTING)
    assert set(services) == {("TCP", "10.96.0.1", 443), ("UDP", "10.96.0.10", 53)}
    dns = services[("UDP", "10.96.0.10", 53)]
    assert (dns.scheduler, dns.persistent) == ("lc", 10800)
    assert dns.real_servers == {("10.244.0.5", 53): 1, ("10.244.0.6", 53): 0}
    c = conns[(("TCP", "10.96.0.1", 443), ("192.0.2.2", 6443))]
    assert (c.weight, c.active, c.inactive) == (1, 3, 7)


def vs(proto, addr, port, rs, scheduler="rr", persistent=0):
    v = VirtualServer(proto, addr, port, scheduler, persistent)
    v.real_servers = dict(rs)
    return v


def test_restore_payload_from_scratch():
    desired = {
        v.key: v
        for v in (
            vs("TCP", "10.96.0.10", 80, {("10.244.1.1", 8080): 1, ("10.244.1.2", 8080): 1}, "sh", 300),
            vs("UDP", "10.96.0.53", 53, {("10.244.1.3", 5353): 1}),
        )
    }
    payload, draining = ipvsadm_restore_payload(desired, {})
    assert payload.splitlines() == [
        "-A -t 10.96.0.10:80 -s sh -p 300",
        "-a -t 10.96.0.10:80 -r 10.244.1.1:8080 -m -w 1",
        "-a -t 10.96.0.10:80 -r 10.244.1.2:8080 -m -w 1",
        "-A -u 10.96.0.53:53 -s rr",
        "-a -u 10.96.0.53:53 -r 10.244.1.3:5353 -m -w 1",
    ]
    assert draining == set()
    assert ipvsadm_restore_payload(desired, desired) == ("", set())


def test_restore_payload_diff_and_graceful_termination():
    current, conns = parse_ipvsadm_list(LISTING)
    desired = {
        v.key: v
        for v in (
            vs("TCP", "10.96.0.1", 443, {("192.0.2.3", 6443): 1}),  # old backend still has connections
            vs("UDP", "10.96.0.10", 53, {("10.244.0.6", 53): 1}, "rr"),  # scheduler + persistence change
            vs("TCP", "10.96.0.20", 80, {}),
        )
    }
    payload, draining = ipvsadm_restore_payload(desired, current, conns)
    assert payload.splitlines() == [
        "-e -t 10.96.0.1:443 -r 192.0.2.2:6443 -m -w 0",  # TCP with connections: drain first
        "-d -u 10.96.0.10:53 -r 10.244.0.5:53",  # UDP: deleted at once
        "-a -t 10.96.0.1:443 -r 192.0.2.3:6443 -m -w 1",
        "-A -t 10.96.0.20:80 -s rr",
        "-E -u 10.96.0.10:53 -s rr",
        "-e -u 10.96.0.10:53 -r 10.244.0.6:53 -m -w 1",  # weight back to 1
    ]
    assert draining == {(("TCP", "10.96.0.1", 443), ("192.0.2.2", 6443))}
    # Once its connections are gone, the drained server is deleted.
    conns[(("TCP", "10.96.0.1", 443), ("192.0.2.2", 6443))].active = 0
    conns[(("TCP", "10.96.0.1", 443), ("192.0.2.2", 6443))].inactive = 0
    payload, draining = ipvsadm_restore_payload(desired, current, conns)
    assert "-d -t 10.96.0.1:443 -r 192.0.2.2:6443" in payload.splitlines() and draining == set()
    # A removed virtual server goes entirely.
    payload, _ = ipvsadm_restore_payload({}, current, conns)
    assert payload.splitlines() == ["-D -t 10.96.0.1:443", "-D -u 10.96.0.10:53"]


# -- desired state -----------------------------------------------------------------------------


@pytest.mark.parametrize("scheduler", ["rr", "lc", "dh", "sh", "sed", "nq"])
def test_virtual_servers_per_service_ip_with_scheduler(scheduler):
    svc = make_service(
        "web",
        "10.96.0.10",
        [{"name": "http", "port": 80, "nodePort": 30080}],
        svc_type="LoadBalancer",
        externalIPs=["192.0.2.50", "192.0.2.2"],
        status={"loadBalancer": {"ingress": [{"ip": "198.51.100.7"}]}},
    )
    desired = build(
        svc, make_endpointslice("web", ["10.244.1.1", "10.244.1.2"], EP_HTTP), scheduler=scheduler
    )
    keys = set(desired.virtual_servers)
    assert keys == {
        ("TCP", "10.96.0.10", 80),
        ("TCP", "192.0.2.50", 80),
        ("TCP", "192.0.2.2", 80),
        ("TCP", "198.51.100.7", 80),
        ("TCP", "192.0.2.2", 30080),  # NodePort on node IPs, never on 127.0.0.1
    }
    for v in desired.virtual_servers.values():
        assert v.scheduler == scheduler
        assert v.real_servers == {("10.244.1.1", 8080): 1, ("10.244.1.2", 8080): 1}
    # An external IP that is already a node address is not bound to kube-ipvs0.
    assert desired.bind_addresses == {"10.96.0.10", "192.0.2.50", "198.51.100.7"}


def test_unknown_scheduler_rejected():
    with pytest.raises(ValueError, match="scheduler"):
        IpvsRuleBuilder(IpvsConfig(scheduler="fastest"))


def test_affinity_udp_and_terminating_fallback():
    svc = make_service(
        "dns", "10.96.0.53", [{"name": "dns", "port": 53, "protocol": "UDP"}], sessionAffinity="ClientIP",
        sessionAffinityConfig={"clientIP": {"timeoutSeconds": 600}},
    )  # fmt: skip
    eps = make_endpointslice(
        "dns",
        [
            make_endpoint("10.244.1.1", ready=False, serving=True, terminating=True),
            make_endpoint("10.244.1.2", ready=False),
        ],
        EP_DNS,
    )
    (v,) = build(svc, eps).virtual_servers.values()
    assert (v.protocol, v.persistent) == ("UDP", 600)
    assert v.real_servers == {("10.244.1.1", 5353): 1}


def test_local_policies_choose_local_real_servers():
    svc = make_service(
        "web",
        "10.96.0.10",
        [{"name": "http", "port": 80, "nodePort": 30080}],
        svc_type="NodePort",
        externalTrafficPolicy="Local",
    )
    eps = make_endpointslice(
        "web",
        [make_endpoint("10.244.1.1", node="node-a"), make_endpoint("10.244.2.1", node="node-b")],
        EP_HTTP,
    )
    desired = build(svc, eps)
    assert desired.virtual_servers[("TCP", "10.96.0.10", 80)].real_servers == {
        ("10.244.1.1", 8080): 1,
        ("10.244.2.1", 8080): 1,
    }
    assert desired.virtual_servers[("TCP", "192.0.2.2", 30080)].real_servers == {("10.244.1.1", 8080): 1}
    lines = desired.iptables_payload.splitlines()
    ret = lines.index("-A KUBE-NODE-PORT -p tcp -m tcp --dport 30080 -j RETURN")
    masq = lines.index("-A KUBE-NODE-PORT -p tcp -m tcp --dport 30080 -j KUBE-MARK-MASQ")
    assert ret < masq  # Local NodePorts keep the client address
    # Hairpin masquerade only for this node's endpoints.
    assert "-A KUBE-POSTROUTING -s 10.244.1.1 -d 10.244.1.1 -p tcp -m tcp --dport 8080 -j MASQUERADE" in lines
    assert not any("-s 10.244.2.1 -d 10.244.2.1" in line for line in lines)


def test_iptables_companion_rules():
    svc = make_service(
        "web",
        "10.96.0.10",
        HTTP,
        svc_type="LoadBalancer",
        loadBalancerSourceRanges=["203.0.113.0/24"],
        status={"loadBalancer": {"ingress": [{"ip": "198.51.100.7"}]}},
    )
    lines = build(svc, make_endpointslice("web", ["10.244.1.1"], EP_HTTP)).iptables_payload.splitlines()
    nat = lines[: lines.index("*filter")]
    services = [line for line in nat if line.startswith("-A KUBE-SERVICES")]
    assert services[0] == "-A KUBE-SERVICES -s 127.0.0.0/8 -j RETURN"  # node-local clients skip IPVS rules
    assert (
        '-A KUBE-SERVICES -m comment --comment "default/web:http cluster IP" -d 10.96.0.10 -p tcp -m tcp --dport 80 '
        "! -s 10.244.0.0/16 -j KUBE-MARK-MASQ"
    ) in lines
    assert (
        '-A KUBE-SERVICES -m comment --comment "default/web:http loadbalancer IP" -d 198.51.100.7 -p tcp -m tcp --dport 80 '
        "-j KUBE-LOAD-BALANCER"
    ) in lines
    assert services[-3] == "-A KUBE-SERVICES -m addrtype --dst-type LOCAL -j KUBE-NODE-PORT"
    assert services[-2:] == [  # accept IPVS traffic last
        "-A KUBE-SERVICES -d 10.96.0.10 -p tcp -m tcp --dport 80 -j ACCEPT",
        "-A KUBE-SERVICES -d 198.51.100.7 -p tcp -m tcp --dport 80 -j ACCEPT",
    ]
    assert (
        "-A KUBE-PROXY-FIREWALL -d 198.51.100.7 -p tcp -m tcp --dport 80 -j KUBE-SOURCE-RANGES-FIREWALL"
        in lines
    )
    assert (
        "-A KUBE-SOURCE-RANGES-FIREWALL -d 198.51.100.7 -p tcp -m tcp --dport 80 -s 203.0.113.0/24 -j RETURN"
        in lines
    )
    assert lines[lines.index("-A KUBE-SOURCE-RANGES-FIREWALL -j DROP") - 1].endswith(
        "-s 203.0.113.0/24 -j RETURN"
    )
    # The node is outside the source ranges: node → LB IP is blocked.
    assert (
        "-A KUBE-IPVS-OUT-FILTER -s 198.51.100.7 -m ipvs --vaddr 198.51.100.7 --vproto tcp --vport 80 -j DROP"
        in lines
    )
    assert lines[-2:] == [
        "-A KUBE-IPVS-FILTER -m conntrack --ctstate NEW -d 198.51.100.7 -j REJECT",
        "COMMIT",
    ]


# -- the proxier -------------------------------------------------------------------------------


def make_proxier(**kw):
    runner = FakeRunner(ROUTE_TABLE_ETH0)
    ipvs = FakeIpvs()
    runner.handlers += ipvs.handlers()
    proxier = IpvsProxier(
        "node-a", ["192.0.2.2"], runner=runner, interface_type="ifb", min_sync_period=0.0, **kw
    )
    return proxier, runner, ipvs


async def test_proxier_sync_binds_addresses_and_applies_diffs():
    proxier, runner, ipvs = make_proxier(scheduler="lc")
    web = make_service("web", "10.96.0.10", HTTP)
    three = make_endpointslice("web", ["10.244.1.1", "10.244.1.2", "10.244.1.3"], EP_HTTP)
    proxier.set_state([web], [three])
    result = await proxier.sync_proxy_rules()
    assert result.ok, result.error
    assert ipvs.services[("TCP", "10.96.0.10", 80)]["scheduler"] == "lc"
    assert len(ipvs.services[("TCP", "10.96.0.10", 80)]["rs"]) == 3
    assert runner.addresses == {"kube-ipvs0": {"10.96.0.10"}} and runner.links == {"kube-ipvs0": "ifb"}
    assert runner.sysctls["net.ipv4.vs.conntrack"] == "1"
    assert runner.rules("nat", "OUTPUT") == [
        '-m comment --comment "kubernetes service portals" -j KUBE-SERVICES'
    ]

    # Scale down while 10.244.1.2 still has a connection: it drains at weight 0.
    ipvs.conns[(("TCP", "10.96.0.10", 80), ("10.244.1.2", 8080))] = (1, 0)
    proxier.on_endpointslice_update(three, make_endpointslice("web", ["10.244.1.1"], EP_HTTP))
    assert (await proxier.sync_proxy_rules()).ok
    assert proxier.last_ipvs_payload.splitlines() == [
        "-e -t 10.96.0.10:80 -r 10.244.1.2:8080 -m -w 0",
        "-d -t 10.96.0.10:80 -r 10.244.1.3:8080",
    ]
    assert ipvs.services[("TCP", "10.96.0.10", 80)]["rs"] == {
        ("10.244.1.1", 8080): 1,
        ("10.244.1.2", 8080): 0,
    }
    del ipvs.conns[(("TCP", "10.96.0.10", 80), ("10.244.1.2", 8080))]
    assert (await proxier.sync_proxy_rules()).ok
    assert ipvs.services[("TCP", "10.96.0.10", 80)]["rs"] == {("10.244.1.1", 8080): 1}

    # Service deleted: virtual server and bound address go.
    proxier.on_service_delete(web)
    assert (await proxier.sync_proxy_rules()).ok
    assert ipvs.services == {} and runner.addresses["kube-ipvs0"] == set()


async def test_proxier_cleanup():
    proxier, runner, ipvs = make_proxier()
    proxier.set_state(
        [
            make_service(
                "web", "10.96.0.10", [{"name": "http", "port": 80, "nodePort": 30080}], svc_type="NodePort"
            )
        ],
        [make_endpointslice("web", ["10.244.1.1"], EP_HTTP)],
    )
    assert (await proxier.sync_proxy_rules()).ok
    assert ipvs.services
    assert await proxier.cleanup() == []
    assert ipvs.services == {} and runner.links == {}
    for table in ("nat", "filter"):
        assert not any(c.startswith("KUBE-") for c in runner.chains(table))
    assert runner.rules("filter", "INPUT") == [] and runner.rules("nat", "POSTROUTING") == []


async def test_proxier_reports_missing_ipvs_as_failed_sync():
    proxier, _, ipvs = make_proxier()
    ipvs.available = False
    proxier.set_state([make_service("web", "10.96.0.10", HTTP)], [])
    result = await proxier.sync_proxy_rules()
    assert not result.ok and "Protocol not available" in result.error
