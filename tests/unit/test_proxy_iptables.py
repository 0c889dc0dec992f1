"""kube_proxy.iptables: restore payloads, partial syncs, hooks, conntrack, cleanup (no root)."""

import re

import pytest

from kube_proxy.chains import endpoint_chain_name, leftover_cleanup_payload, service_chain_names
from kube_proxy.commands import CommandResult
from kube_proxy.fake import (
    ROUTE_TABLE_ETH0,
    FakeRunner,
    make_endpoint,
    make_endpointslice,
    make_service,
)
from kube_proxy.iptables import IptablesConfig, IptablesProxier, IptablesRuleBuilder

HTTP = [{"name": "http", "port": 80, "protocol": "TCP"}]
EP_HTTP = [{"name": "http", "port": 8080, "protocol": "TCP"}]
DNS = [{"name": "dns", "port": 53, "protocol": "UDP"}]
EP_DNS = [{"name": "dns", "port": 5353, "protocol": "UDP"}]
WEB_SVC, WEB_SVL, WEB_EXT, WEB_FW = service_chain_names("default/web:http", "tcp")


def sep(addr, name="default/web:http", proto="tcp"):
    return endpoint_chain_name(name, proto, addr)


def make_proxier(**kw):
    runner = FakeRunner(ROUTE_TABLE_ETH0)
    kw.setdefault("min_sync_period", 0.0)
    proxier = IptablesProxier("node-a", ["192.0.2.2"], runner=runner, **kw)
    return proxier, runner


async def synced(objs, **kw):
    proxier, runner = make_proxier(**kw)
    services = [o for o in objs if o["kind"] == "Service"]
    slices = [o for o in objs if o["kind"] == "EndpointSlice"]
    proxier.set_state(services, slices)
    result = await proxier.sync_proxy_rules()
    assert result.ok, result.error
    return proxier, runner


def payload_lines(runner, index=-1):
    return runner.restores()[index].splitlines()


def table_lines(lines, table):
    start = lines.index(f"*{table}")
    return lines[start : lines.index("COMMIT", start) + 1]


def check_jumps(payload):
    """Like upstream's checkIPTablesRuleJumps: every jump goes to a created chain that has
    rules, and every created chain is used (except the top-level ones)."""
    top = {
        "KUBE-SERVICES", "KUBE-EXTERNAL-SERVICES", "KUBE-NODEPORTS", "KUBE-POSTROUTING",
        "KUBE-FORWARD", "KUBE-MARK-MASQ", "KUBE-PROXY-FIREWALL", "KUBE-FIREWALL",
    }  # fmt: skip
    builtin_targets = {"ACCEPT", "REJECT", "DROP", "MARK", "RETURN", "DNAT", "SNAT", "MASQUERADE"}
    lines = payload.splitlines()
    for table in ("filter", "nat"):
        tl = table_lines(lines, table)
        created = {m.group(1) for line in tl if (m := re.match(r"^:(\S+)", line))}
        created -= {m.group(1) for line in tl if (m := re.match(r"^-X (\S+)", line))}
        filled = {m.group(1) for line in tl if (m := re.match(r"^-A (\S+)", line))}
        jumped = {m.group(1) for line in tl if (m := re.search(r" -j (\S+)", line))} - builtin_targets
        assert not (jumped - created), f"{table}: jumps to missing chains {jumped - created}"
        assert not (filled - created), f"{table}: rules in missing chains {filled - created}"
        assert not (jumped - filled - {"KUBE-NODEPORTS"}), f"{table}: empty chains jumped to"
        assert not (created - jumped - top), f"{table}: unused chains {created - jumped - top}"


# -- layout ------------------------------------------------------------------------------------


async def test_clusterip_payload_matches_upstream_layout():
    _, runner = await synced(
        [
            make_service("web", "10.96.0.10", HTTP),
            make_endpointslice("web", ["10.244.1.2"], EP_HTTP),
        ],
        localhost_nodeports=False,
    )
    nat = table_lines(payload_lines(runner), "nat")
    assert nat == [
        "*nat",
        ":KUBE-SERVICES - [0:0]",
        ":KUBE-NODEPORTS - [0:0]",
        ":KUBE-POSTROUTING - [0:0]",
        ":KUBE-MARK-MASQ - [0:0]",
        f":{WEB_SVC} - [0:0]",
        f":{sep('10.244.1.2:8080')} - [0:0]",
        "-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN",
        "-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000",
        '-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully',
        "-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000",
        f'-A KUBE-SERVICES -m comment --comment "default/web:http cluster IP" -m tcp -p tcp -d 10.96.0.10 --dport 80 -j {WEB_SVC}',
        f'-A {WEB_SVC} -m comment --comment "default/web:http cluster IP" -m tcp -p tcp -d 10.96.0.10 --dport 80 '
        "! -s 10.244.0.0/16 -j KUBE-MARK-MASQ",
        f'-A {WEB_SVC} -m comment --comment "default/web:http -> 10.244.1.2:8080" -j {sep("10.244.1.2:8080")}',
        f"-A {sep('10.244.1.2:8080')} -m comment --comment default/web:http -s 10.244.1.2 -j KUBE-MARK-MASQ",
        f"-A {sep('10.244.1.2:8080')} -m comment --comment default/web:http -m tcp -p tcp -j DNAT "
        "--to-destination 10.244.1.2:8080",
        '-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" '
        "-m addrtype --dst-type LOCAL ! -d 127.0.0.0/8 -j KUBE-NODEPORTS",
        "COMMIT",
    ]
    filt = table_lines(payload_lines(runner), "filter")
    assert filt[-6:] == [
        "-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP",
        '-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x4000/0x4000 -j ACCEPT',
        '-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT',
        '-A KUBE-FORWARD -m comment --comment "kubernetes forwarding pod source rule" -s 10.244.0.0/16 -j ACCEPT',
        '-A KUBE-FORWARD -m comment --comment "kubernetes forwarding pod destination rule" -d 10.244.0.0/16 -j ACCEPT',
        "COMMIT",
    ]
    check_jumps(runner.restores()[-1])


def test_chain_names_are_upstream_hashes():
    # Vectors from upstream's proxier_test.go.
    assert service_chain_names("ns1/svc1:p80", "tcp")[0] == "KUBE-SVC-XPGD46QRK7WJZT7O"
    assert service_chain_names("ns1/svc1:p80", "tcp")[2] == "KUBE-EXT-XPGD46QRK7WJZT7O"
    assert endpoint_chain_name("ns1/svc1:p80", "tcp", "10.180.0.1:80") == "KUBE-SEP-SXIVWICOYRO3J4NJ"
    assert service_chain_names("ns1/svc1:p80", "udp")[0] != "KUBE-SVC-XPGD46QRK7WJZT7O"


def test_probabilities_formatted_like_upstream():
    builder = IptablesRuleBuilder(IptablesConfig())
    assert [builder.probability(n) for n in (1, 2, 3, 4, 7)] == [
        "1.0000000000", "0.5000000000", "0.3333333333", "0.2500000000", "0.1428571429",
    ]  # fmt: skip


async def test_probability_per_endpoint_rule():
    ips = ["10.244.1.1", "10.244.1.2", "10.244.1.3", "10.244.1.4"]
    _, runner = await synced(
        [make_service("web", "10.96.0.10", HTTP), make_endpointslice("web", ips, EP_HTTP)]
    )
    jumps = [
        line for line in payload_lines(runner) if line.startswith(f"-A {WEB_SVC} ") and "KUBE-SEP-" in line
    ]
    assert [re.search(r"--probability (\S+)", j).group(1) if "--probability" in j else None for j in jumps] == [
        "0.2500000000", "0.3333333333", "0.5000000000", None,
    ]  # fmt: skip
    assert [j.split(" -j ")[1] for j in jumps] == [sep(f"{ip}:8080") for ip in ips]


async def test_nodeport_external_chain_and_localhost():
    _, runner = await synced(
        [
            make_service(
                "web", "10.96.0.10", [{"name": "http", "port": 80, "nodePort": 30080}], svc_type="NodePort"
            ),
            make_endpointslice("web", ["10.244.1.2"], EP_HTTP),
        ]
    )
    lines = payload_lines(runner)
    assert (
        f"-A KUBE-NODEPORTS -m comment --comment default/web:http -m tcp -p tcp --dport 30080 -j {WEB_EXT}"
        in lines
    )
    assert (
        f'-A {WEB_EXT} -m comment --comment "masquerade traffic for default/web:http external destinations" '
        "-j KUBE-MARK-MASQ"
    ) in lines
    assert f"-A {WEB_EXT} -j {WEB_SVC}" in lines
    # localhost NodePorts on: no "! -d 127.0.0.0/8" on the dispatch, and the localnet guard is there.
    assert lines[-2].endswith("-m addrtype --dst-type LOCAL -j KUBE-NODEPORTS")
    assert any(
        line.startswith("-A KUBE-FIREWALL ") and "-d 127.0.0.0/8 ! -s 127.0.0.0/8" in line for line in lines
    )
    assert runner.sysctls["net.ipv4.conf.all.route_localnet"] == "1"
    check_jumps(runner.restores()[-1])


async def test_nodeport_addresses_restrict_dispatch():
    _, runner = await synced(
        [make_service("web", "10.96.0.10", HTTP), make_endpointslice("web", ["10.244.1.2"], EP_HTTP)],
        nodeport_addresses=["192.0.2.2", "127.0.0.1"],
        localhost_nodeports=False,
    )
    dispatch = [line for line in payload_lines(runner) if line.endswith("-j KUBE-NODEPORTS")]
    assert len(dispatch) == 1 and "-d 192.0.2.2 " in dispatch[0]
    assert runner.sysctls["net.ipv4.conf.all.route_localnet"] == "0"


async def test_external_and_loadbalancer_ips_with_source_ranges():
    svc = make_service(
        "web",
        "10.96.0.10",
        [{"name": "http", "port": 80, "nodePort": 30080}],
        svc_type="LoadBalancer",
        externalIPs=["192.0.2.50"],
        loadBalancerSourceRanges=["203.0.113.0/24", "192.0.2.0/24"],
        status={"loadBalancer": {"ingress": [{"ip": "198.51.100.7"}]}},
    )
    _, runner = await synced([svc, make_endpointslice("web", ["10.244.1.2"], EP_HTTP)])
    lines = payload_lines(runner)
    assert (
        f'-A KUBE-SERVICES -m comment --comment "default/web:http external IP" -m tcp -p tcp -d 192.0.2.50 --dport 80 -j {WEB_EXT}'
    ) in lines
    assert (
        f'-A KUBE-SERVICES -m comment --comment "default/web:http loadbalancer IP" -m tcp -p tcp -d 198.51.100.7 --dport 80 -j {WEB_FW}'
    ) in lines
    fw = [line for line in lines if line.startswith(f"-A {WEB_FW} ")]
    assert fw == [
        f'-A {WEB_FW} -m comment --comment "default/web:http loadbalancer IP" -s 203.0.113.0/24 -j {WEB_EXT}',
        f'-A {WEB_FW} -m comment --comment "default/web:http loadbalancer IP" -s 192.0.2.0/24 -j {WEB_EXT}',
        # the node (192.0.2.2) is in a source range, so it may use the LB IP as its source
        f'-A {WEB_FW} -m comment --comment "default/web:http loadbalancer IP" -s 198.51.100.7 -j {WEB_EXT}',
        f'-A {WEB_FW} -m comment --comment "other traffic to default/web:http will be dropped by KUBE-PROXY-FIREWALL"',
    ]
    assert (
        f'-A KUBE-PROXY-FIREWALL -m comment --comment "default/web:http traffic not accepted by {WEB_FW}" '
        "-m tcp -p tcp -d 198.51.100.7 --dport 80 -j DROP"
    ) in lines
    check_jumps(runner.restores()[-1])


async def test_session_affinity_uses_recent_lists():
    svc = make_service(
        "web",
        "10.96.0.10",
        HTTP,
        sessionAffinity="ClientIP",
        sessionAffinityConfig={"clientIP": {"timeoutSeconds": 300}},
    )
    _, runner = await synced([svc, make_endpointslice("web", ["10.244.1.1", "10.244.1.2"], EP_HTTP)])
    lines = [line for line in payload_lines(runner) if line.startswith(f"-A {WEB_SVC} ")]
    s1, s2 = sep("10.244.1.1:8080"), sep("10.244.1.2:8080")
    assert lines[1:] == [
        f'-A {WEB_SVC} -m comment --comment "default/web:http -> 10.244.1.1:8080" -m recent --name {s1} --rcheck --seconds 300 --reap -j {s1}',
        f'-A {WEB_SVC} -m comment --comment "default/web:http -> 10.244.1.2:8080" -m recent --name {s2} --rcheck --seconds 300 --reap -j {s2}',
        f'-A {WEB_SVC} -m comment --comment "default/web:http -> 10.244.1.1:8080" -m statistic --mode random --probability 0.5000000000 -j {s1}',
        f'-A {WEB_SVC} -m comment --comment "default/web:http -> 10.244.1.2:8080" -j {s2}',
    ]
    assert (
        f"-A {s1} -m comment --comment default/web:http -m recent --name {s1} --set -m tcp -p tcp -j DNAT --to-destination 10.244.1.1:8080"
    ) in payload_lines(runner)


async def test_external_traffic_policy_local():
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
    _, runner = await synced([svc, eps])
    lines = payload_lines(runner)
    ext = [line for line in lines if line.startswith(f"-A {WEB_EXT} ")]
    assert ext == [
        f'-A {WEB_EXT} -m comment --comment "pod traffic for default/web:http external destinations" -s 10.244.0.0/16 -j {WEB_SVC}',
        f'-A {WEB_EXT} -m comment --comment "masquerade LOCAL traffic for default/web:http external destinations" '
        "-m addrtype --src-type LOCAL -j KUBE-MARK-MASQ",
        f'-A {WEB_EXT} -m comment --comment "route LOCAL traffic for default/web:http external destinations" '
        f"-m addrtype --src-type LOCAL -j {WEB_SVC}",
        f"-A {WEB_EXT} -j {WEB_SVL}",
    ]
    svl = [line for line in lines if line.startswith(f"-A {WEB_SVL} ")]
    assert len(svl) == 1 and svl[0].endswith(sep("10.244.1.1:8080"))  # local endpoint only
    svc_jumps = [line for line in lines if line.startswith(f"-A {WEB_SVC} ") and "KUBE-SEP" in line]
    assert len(svc_jumps) == 2  # cluster policy (short-circuit) still sees both
    check_jumps(runner.restores()[-1])


async def test_external_local_without_local_endpoints_drops_external_traffic():
    svc = make_service(
        "web",
        "10.96.0.10",
        [{"name": "http", "port": 80, "nodePort": 30080}],
        svc_type="NodePort",
        externalTrafficPolicy="Local",
    )
    eps = make_endpointslice("web", [make_endpoint("10.244.2.1", node="node-b")], EP_HTTP)
    _, runner = await synced([svc, eps])
    lines = payload_lines(runner)
    assert (
        '-A KUBE-EXTERNAL-SERVICES -m comment --comment "default/web:http has no local endpoints" '
        "-m addrtype --dst-type LOCAL -m tcp -p tcp --dport 30080 -j DROP"
    ) in lines
    assert not any(line.startswith(f"-A {WEB_EXT} -j ") for line in lines)  # no fall-through
    assert f":{WEB_SVL} - [0:0]" not in lines
    check_jumps(runner.restores()[-1])


async def test_internal_traffic_policy_local():
    svc = make_service("web", "10.96.0.10", HTTP, internalTrafficPolicy="Local")
    eps = make_endpointslice(
        "web",
        [make_endpoint("10.244.1.1", node="node-a"), make_endpoint("10.244.2.1", node="node-b")],
        EP_HTTP,
    )
    _, runner = await synced([svc, eps])
    lines = payload_lines(runner)
    assert any(line.startswith("-A KUBE-SERVICES ") and line.endswith(f"-j {WEB_SVL}") for line in lines)
    assert f":{WEB_SVC} - [0:0]" not in lines
    assert f":{sep('10.244.2.1:8080')} - [0:0]" not in lines

    _, runner = await synced(
        [svc, make_endpointslice("web", [make_endpoint("10.244.2.1", node="node-b")], EP_HTTP)]
    )
    assert (
        '-A KUBE-SERVICES -m comment --comment "default/web:http has no local endpoints" -m tcp -p tcp '
        "-d 10.96.0.10 --dport 80 -j DROP"
    ) in payload_lines(runner)


async def test_no_endpoints_rejects_every_entry_point():
    svc = make_service(
        "web",
        "10.96.0.10",
        [{"name": "http", "port": 80, "nodePort": 30080}],
        svc_type="LoadBalancer",
        externalIPs=["192.0.2.50"],
        status={"loadBalancer": {"ingress": [{"ip": "198.51.100.7"}]}},
    )
    not_ready = make_endpointslice("web", [make_endpoint("10.244.1.1", ready=False)], EP_HTTP)
    _, runner = await synced([svc, not_ready])
    lines = payload_lines(runner)
    comment = '-m comment --comment "default/web:http has no endpoints"'
    assert f"-A KUBE-SERVICES {comment} -m tcp -p tcp -d 10.96.0.10 --dport 80 -j REJECT" in lines
    assert f"-A KUBE-EXTERNAL-SERVICES {comment} -m tcp -p tcp -d 192.0.2.50 --dport 80 -j REJECT" in lines
    assert f"-A KUBE-EXTERNAL-SERVICES {comment} -m tcp -p tcp -d 198.51.100.7 --dport 80 -j REJECT" in lines
    assert (
        f"-A KUBE-EXTERNAL-SERVICES {comment} -m addrtype --dst-type LOCAL -m tcp -p tcp --dport 30080 -j REJECT"
        in lines
    )
    nat = table_lines(lines, "nat")
    assert not any(WEB_SVC in line or WEB_EXT in line for line in nat)


async def test_terminating_fallback_in_payload():
    eps = make_endpointslice(
        "web",
        [
            make_endpoint("10.244.1.1", ready=False, serving=True, terminating=True),
            make_endpoint("10.244.1.2", ready=False, serving=False, terminating=True),
        ],
        EP_HTTP,
    )
    _, runner = await synced([make_service("web", "10.96.0.10", HTTP), eps])
    lines = payload_lines(runner)
    assert f":{sep('10.244.1.1:8080')} - [0:0]" in lines
    assert f":{sep('10.244.1.2:8080')} - [0:0]" not in lines
    assert not any("REJECT" in line for line in lines)


async def test_masquerade_all():
    _, runner = await synced(
        [make_service("web", "10.96.0.10", HTTP), make_endpointslice("web", ["10.244.1.2"], EP_HTTP)],
        masquerade_all=True,
    )
    assert (
        f'-A {WEB_SVC} -m comment --comment "default/web:http cluster IP" -m tcp -p tcp -d 10.96.0.10 --dport 80 -j KUBE-MARK-MASQ'
    ) in payload_lines(runner)


async def test_large_cluster_mode_drops_endpoint_comments():
    services, slices = [], []
    for i in range(260):  # 260 services x 4 endpoints > 1000
        services.append(make_service(f"s{i}", f"10.96.{i // 200}.{i % 200 + 1}", HTTP))
        slices.append(
            make_endpointslice(
                f"s{i}", [f"10.244.{i // 60}.{(i % 60) * 4 + k}" for k in range(1, 5)], EP_HTTP
            )
        )
    _, runner = await synced(services + slices)
    lines = payload_lines(runner)
    assert not any(line.startswith(("-A KUBE-SEP-", "-A KUBE-SVC-")) and "-> " in line for line in lines)
    assert any(line.startswith("-A KUBE-SERVICES") and "cluster IP" in line for line in lines)
    check_jumps(runner.restores()[-1])


# -- syncs: hooks, stale chains, partial syncs, failures ------------------------------------------


async def test_hooks_installed_once_and_guard_first():
    proxier, runner = await synced(
        [make_service("web", "10.96.0.10", HTTP), make_endpointslice("web", ["10.244.1.2"], EP_HTTP)]
    )
    assert runner.rules("nat", "PREROUTING") == [
        '-m comment --comment "kubernetes service portals" -j KUBE-SERVICES'
    ]
    assert runner.rules("nat", "POSTROUTING") == [
        '-m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING'
    ]
    for chain in ("OUTPUT", "FORWARD"):
        assert runner.rules("filter", chain)[0] == '-m comment --comment "minik8s uplink guard" -j KUBE-GUARD'
    assert runner.rules("filter", "KUBE-GUARD") == [
        '-d 10.244.0.0/16 -o eth0 -m comment --comment "minik8s: cluster traffic must not leave via the uplink" -j DROP',
        '-d 10.96.0.0/16 -o eth0 -m comment --comment "minik8s: cluster traffic must not leave via the uplink" -j DROP',
    ]
    assert runner.routes == {"10.96.0.0/16": "kube-svc0"} and runner.links == {"kube-svc0": "ifb"}
    before = len(runner.commands("iptables"))
    proxier.on_endpointslice_update(None, make_endpointslice("web", ["10.244.1.3"], EP_HTTP))
    result = await proxier.sync_proxy_rules()
    assert result.ok and result.partial
    assert len(runner.commands("iptables")) == before  # partial syncs touch no hooks
    # A forced full sync re-checks hooks but adds no duplicates.
    proxier.need_full_sync = True
    assert (await proxier.sync_proxy_rules()).ok
    assert len(runner.rules("nat", "OUTPUT")) == 1 and len(runner.rules("filter", "FORWARD")) == 5


async def test_guard_hook_moved_back_to_first_position():
    proxier, runner = await synced([make_service("web", "10.96.0.10", HTTP)])
    await proxier.iptables.ensure_rule(
        "filter", "FORWARD", ["-j", "ACCEPT"], prepend=True
    )  # someone inserts above
    proxier.need_full_sync = True
    await proxier.sync_proxy_rules()
    forward = runner.rules("filter", "FORWARD")
    assert forward[0].endswith("-j KUBE-GUARD") and sum(r.endswith("KUBE-GUARD") for r in forward) == 1


async def test_stale_chains_deleted_in_same_transaction():
    svc = make_service("web", "10.96.0.10", HTTP)
    three = make_endpointslice("web", ["10.244.1.1", "10.244.1.2", "10.244.1.3"], EP_HTTP)
    proxier, runner = await synced([svc, three])
    one = make_endpointslice("web", ["10.244.1.1"], EP_HTTP)
    proxier.on_endpointslice_update(three, one)
    await proxier.sync_proxy_rules()
    lines = payload_lines(runner)
    for gone in ("10.244.1.2:8080", "10.244.1.3:8080"):
        assert f":{sep(gone)} - [0:0]" in lines and f"-X {sep(gone)}" in lines
        assert sep(gone) not in runner.chains("nat")
    proxier.on_service_delete(svc)
    await proxier.sync_proxy_rules()
    assert not any(c.startswith(("KUBE-SVC-", "KUBE-SEP-")) for c in runner.chains("nat"))


async def test_full_sync_deletes_leftover_chains_from_a_previous_run():
    runner = FakeRunner(ROUTE_TABLE_ETH0)
    runner.apply_restore("*nat\n:KUBE-SEP-OLDOLDOLDOLDOLD1 - [0:0]\n:KUBE-SVC-OLDOLDOLDOLDOLD1 - [0:0]\n"
                         "-A KUBE-SVC-OLDOLDOLDOLDOLD1 -j KUBE-SEP-OLDOLDOLDOLDOLD1\n:OTHER-CHAIN - [0:0]\nCOMMIT\n")  # fmt: skip
    proxier = IptablesProxier("node-a", [], runner=runner)
    proxier.set_state([make_service("web", "10.96.0.10", HTTP)], [])
    assert (await proxier.sync_proxy_rules()).ok
    assert "-X KUBE-SVC-OLDOLDOLDOLDOLD1" in payload_lines(runner)
    assert {"KUBE-SVC-OLDOLDOLDOLDOLD1", "KUBE-SEP-OLDOLDOLDOLDOLD1"}.isdisjoint(runner.chains("nat"))
    assert "OTHER-CHAIN" in runner.chains("nat")  # not ours: untouched


async def test_partial_sync_rewrites_only_changed_services_and_converges():
    objs = [make_service("a", "10.96.0.1", HTTP), make_service("b", "10.96.0.2", HTTP)]
    slice_a = make_endpointslice("a", ["10.244.1.1"], EP_HTTP)
    slice_b = make_endpointslice("b", ["10.244.1.2", "10.244.1.3"], EP_HTTP)
    proxier, runner = await synced([*objs, slice_a, slice_b])
    a_svc = service_chain_names("default/a:http", "tcp")[0]
    b_svc = service_chain_names("default/b:http", "tcp")[0]

    new_b = make_endpointslice("b", ["10.244.1.2", "10.244.1.4"], EP_HTTP)
    proxier.on_endpointslice_update(slice_b, new_b)
    result = await proxier.sync_proxy_rules()
    assert result.partial
    lines = payload_lines(runner)
    assert f":{b_svc} - [0:0]" in lines and f":{a_svc} - [0:0]" not in lines
    assert not any(line.startswith(f"-A {a_svc} ") for line in lines)
    # KUBE-SERVICES is rewritten every time, including the unchanged service's rule.
    assert any(line.startswith("-A KUBE-SERVICES") and line.endswith(f"-j {a_svc}") for line in lines)
    assert f"-X {sep('10.244.1.3:8080', 'default/b:http')}" in lines
    partial_state = {t: dict(c) for t, c in runner.tables.items()}

    proxier.need_full_sync = True
    assert not (await proxier.sync_proxy_rules()).partial
    assert runner.tables == partial_state  # partial == full


async def test_failed_restore_forces_full_sync_next_time():
    proxier, runner = await synced(
        [make_service("web", "10.96.0.10", HTTP), make_endpointslice("web", ["10.244.1.2"], EP_HTTP)]
    )
    runner.fail_next_restore = True
    proxier.on_endpointslice_update(None, make_endpointslice("web", ["10.244.1.3"], EP_HTTP))
    result = await proxier.sync_proxy_rules()
    assert not result.ok and proxier.need_full_sync
    saves = len(runner.commands("iptables-save"))
    result = await proxier.sync_proxy_rules()
    assert result.ok and not result.partial
    assert len(runner.commands("iptables-save")) == saves + 1  # full sync lists existing chains
    assert sep("10.244.1.3:8080") in runner.chains("nat") and sep("10.244.1.2:8080") not in runner.chains(
        "nat"
    )


async def test_no_sync_before_services_and_slices_are_synced():
    proxier, runner = make_proxier()
    proxier.on_service_add(make_service("web", "10.96.0.10", HTTP))
    proxier.on_services_synced()
    result = await proxier.sync_proxy_rules()
    assert result.skipped and runner.calls == []
    proxier.on_endpointslices_synced()
    assert (await proxier.sync_proxy_rules()).ok and runner.restores()


# -- conntrack -----------------------------------------------------------------------------------


async def test_udp_endpoint_change_clears_conntrack():
    svc = make_service(
        "dns",
        "10.96.0.53",
        [{"name": "dns", "port": 53, "protocol": "UDP", "nodePort": 30053}],
        svc_type="NodePort",
    )
    proxier, runner = make_proxier()
    proxier.set_state([svc], [])
    await proxier.sync_proxy_rules()
    first = make_endpointslice("dns", ["10.244.1.1"], EP_DNS)
    proxier.on_endpointslice_update(None, first)
    await proxier.sync_proxy_rules()
    # First endpoint: flows created while the service rejected traffic must go.
    assert runner.commands("conntrack") == [
        ["conntrack", "-D", "--orig-dst", "10.96.0.53", "-p", "udp"],
        ["conntrack", "-D", "-p", "udp", "--dport", "30053"],
    ]
    runner.calls.clear()
    proxier.on_endpointslice_update(first, make_endpointslice("dns", ["10.244.1.2"], EP_DNS))
    await proxier.sync_proxy_rules()
    assert runner.commands("conntrack") == [
        ["conntrack", "-D", "-p", "udp", "--dport", "30053", "--dst-nat", "10.244.1.1"],
        ["conntrack", "-D", "--orig-dst", "10.96.0.53", "--dst-nat", "10.244.1.1", "-p", "udp"],
    ]


async def test_tcp_changes_do_not_touch_conntrack_and_missing_flows_are_fine():
    proxier, runner = await synced(
        [make_service("web", "10.96.0.10", HTTP), make_endpointslice("web", ["10.244.1.2"], EP_HTTP)]
    )
    proxier.on_endpointslice_update(None, make_endpointslice("web", ["10.244.1.3"], EP_HTTP))
    await proxier.sync_proxy_rules()
    assert runner.commands("conntrack") == []

    runner.handlers.append(
        (
            ("conntrack",),
            lambda argv, _: CommandResult(argv, 1, "", "conntrack v1.4.7: 0 flow entries have been deleted."),
        )
    )
    proxier.on_service_add(make_service("dns", "10.96.0.53", DNS))
    await proxier.sync_proxy_rules()
    proxier.on_service_delete(make_service("dns", "10.96.0.53", DNS))
    await proxier.sync_proxy_rules()
    assert runner.commands("conntrack")[-1] == ["conntrack", "-D", "--orig-dst", "10.96.0.53", "-p", "udp"]
    assert proxier.conntrack.errors == 0


# -- cleanup -------------------------------------------------------------------------------------


async def test_cleanup_removes_everything():
    proxier, runner = await synced(
        [
            make_service(
                "web", "10.96.0.10", [{"name": "http", "port": 80, "nodePort": 30080}], svc_type="NodePort"
            ),
            make_endpointslice("web", ["10.244.1.2"], EP_HTTP),
        ]
    )
    runner.apply_restore("*filter\n:DOCKER-USER - [0:0]\n-A FORWARD -j DOCKER-USER\nCOMMIT\n")  # not ours
    assert await proxier.cleanup() == []
    for table in ("nat", "filter"):
        assert not any(c.startswith("KUBE-") for c in runner.chains(table)), runner.chains(table)
    assert runner.rules("nat", "PREROUTING") == [] and runner.rules("filter", "OUTPUT") == []
    assert runner.rules("filter", "FORWARD") == ["-j DOCKER-USER"]
    assert runner.routes == {} and runner.links == {}
    assert runner.sysctls["net.ipv4.conf.all.route_localnet"] == "0"


def test_leftover_payload_handles_counters_and_foreign_hooks():
    saved = (
        "*nat\n:PREROUTING ACCEPT [0:0]\n:KUBE-SERVICES - [0:0]\n:KUBE-SEP-AAAAAAAAAAAAAAAA - [0:0]\n:MINE - [0:0]\n"
        '[5:300] -A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES\n'
        "[0:0] -A KUBE-SERVICES -j KUBE-SEP-AAAAAAAAAAAAAAAA\n[0:0] -A MINE -j RETURN\nCOMMIT\n"
    )
    assert leftover_cleanup_payload("nat", saved).splitlines() == [
        "*nat",
        ":KUBE-SEP-AAAAAAAAAAAAAAAA - [0:0]",
        ":KUBE-SERVICES - [0:0]",
        '-D PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
        "-X KUBE-SEP-AAAAAAAAAAAAAAAA",
        "-X KUBE-SERVICES",
        "COMMIT",
    ]
    assert leftover_cleanup_payload("nat", "*nat\n:MINE - [0:0]\nCOMMIT\n") is None


async def test_guard_counters_parse_saved_counters():
    proxier, runner = await synced([make_service("web", "10.96.0.10", HTTP)])
    runner.handlers.append(
        (
            ("iptables-save", "-t", "filter", "-c"),
            lambda argv, _: CommandResult(
                argv,
                0,
                "*filter\n:KUBE-GUARD - [0:0]\n"
                '[3:180] -A KUBE-GUARD -d 10.244.0.0/16 -o eth0 -m comment --comment "x y" -j DROP\n'
                '[0:0] -A KUBE-GUARD -d 10.96.0.0/16 -o eth0 -m comment --comment "x y" -j DROP\nCOMMIT\n',
            ),
        )
    )
    assert await proxier.guard_counters() == {"10.244.0.0/16": 3, "10.96.0.0/16": 0}


async def test_guard_without_default_route_has_no_rules():
    runner = FakeRunner(route_table="Iface\tDestination\n")
    proxier = IptablesProxier("node-a", [], runner=runner)
    proxier.set_state([], [])
    assert (await proxier.sync_proxy_rules()).ok
    assert runner.rules("filter", "KUBE-GUARD") == []


@pytest.mark.parametrize("device", [None, "svc-blackhole"])
async def test_service_cidr_device_configurable(device):
    _, runner = await synced([], service_cidr_device=device)
    assert runner.links == ({} if device is None else {device: "ifb"})
