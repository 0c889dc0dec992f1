"""nftables mode rule generation and sync transactions, without the kernel (nft is faked)."""

import json

from kube_proxy.commands import CommandResult
from kube_proxy.fake import FakeRunner, make_endpoint, make_endpointslice, make_service
from kube_proxy.nftables import NftablesProxier, hash_and_truncate, is_service_chain

ROUTES = "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\nuplink0\t00000000\t0102A8C0\t0003\t0\t0\t0\t00000000\n"
HTTP = [{"name": "http", "port": 8080, "protocol": "TCP"}]


class FakeNft:
    """Records `nft -f` scripts; `list chains/sets` report the chains of the last scripts."""

    def __init__(self, runner: FakeRunner):
        self.scripts: list[str] = []
        self.chains: set[str] = set()
        self.sets: set[str] = set()
        self.fail_next = False
        runner.handlers.append((("nft",), self.run))

    def run(self, argv, stdin):
        if argv[1:3] == ["-f", "-"]:
            if self.fail_next:
                self.fail_next = False
                return CommandResult(argv, 1, "", "Error: injected")
            self.scripts.append(stdin)
            for line in stdin.splitlines():
                words = line.split()
                if words[:2] == ["add", "chain"]:
                    self.chains.add(words[4])
                elif words[:2] == ["delete", "chain"]:
                    self.chains.discard(words[4])
                elif words[:2] == ["add", "set"]:
                    self.sets.add(words[4])
                elif words[:2] == ["delete", "set"]:
                    self.sets.discard(words[4])
            return CommandResult(argv, 0)
        if argv[1:4] == ["-j", "list", "chains"]:
            items = [{"chain": {"family": "ip", "table": "kube-proxy", "name": c}} for c in sorted(self.chains)]
            return CommandResult(argv, 0, json.dumps({"nftables": items}))
        if argv[1:4] == ["-j", "list", "sets"]:
            items = [{"set": {"family": "ip", "table": "kube-proxy", "name": s}} for s in sorted(self.sets)]
            return CommandResult(argv, 0, json.dumps({"nftables": items}))
        return CommandResult(argv, 0)


def proxier(**kw):
    runner = FakeRunner(ROUTES)
    nft = FakeNft(runner)
    p = NftablesProxier("node-a", ["10.0.0.5"], runner=runner, min_sync_period=0, **kw)
    return p, nft, runner


def web_slice(*ips, name="web"):
    return make_endpointslice(name, [make_endpoint(ip, node="node-a") for ip in ips], HTTP)


def web():
    return make_service("web", "10.96.0.20", [{"name": "http", "port": 80}])


def test_chain_names_follow_upstream_hash_and_truncate():
    name = hash_and_truncate("default/web/tcp/http")
    assert name.endswith("-default/web/tcp/http") and len(name.split("-")[0]) == 8
    assert len(hash_and_truncate("x" * 500)) == 200 and hash_and_truncate("x" * 500).endswith("...")
    assert is_service_chain("service-" + name)
    assert not is_service_chain("service-endpoints-check") and not is_service_chain("firewall-check")


async def test_full_sync_writes_maps_chains_and_cascade():
    p, nft, runner = proxier()
    p.set_state([web()], [web_slice("10.244.1.5", "10.244.1.6", "10.244.1.7")])
    result = await p.sync_proxy_rules()
    assert result.ok and not result.partial
    script = nft.scripts[-1]
    lines = script.splitlines()
    # Maps are declared before the rules that use them.
    assert lines.index(next(x for x in lines if x.startswith("add map ip kube-proxy service-ips"))) < \
        lines.index(next(x for x in lines if "vmap @service-ips" in x))
    svc_chain = "service-" + hash_and_truncate("default/web/tcp/http")
    assert f"add element ip kube-proxy service-ips {{ 10.96.0.20 . tcp . 80 : goto {svc_chain} }}" in script
    rules = [x.split(f"{svc_chain} ", 1)[1] for x in lines if x.startswith(f"add rule ip kube-proxy {svc_chain} ")]
    assert rules[0] == "ip daddr 10.96.0.20 tcp dport 80 ip saddr != 10.244.0.0/16 jump mark-for-masquerade"
    assert rules[1].startswith("numgen random mod 3 == 0 goto endpoint-")
    assert rules[2].startswith("numgen random mod 2 == 0 goto endpoint-")
    assert rules[3].startswith("goto endpoint-")
    assert "meta l4proto tcp dnat to 10.244.1.5:8080" in script
    assert "vmap {" not in script  # no anonymous verdict maps (slow on this kernel)
    assert runner.routes == {"10.96.0.0/16": "kube-svc0"}  # the guard and route as in iptables mode


async def test_partial_sync_touches_only_what_changed():
    p, nft, _ = proxier()
    other = make_service("other", "10.96.0.30", [{"name": "http", "port": 80}])
    p.set_state([web(), other], [web_slice("10.244.1.5", "10.244.1.6"), web_slice("10.244.2.5", name="other")])
    await p.sync_proxy_rules()
    p.on_endpointslice_update(web_slice("10.244.1.5", "10.244.1.6"), web_slice("10.244.1.5"))
    result = await p.sync_proxy_rules()
    assert result.ok and result.partial
    script = nft.scripts[-1]
    assert "other" not in script  # the unchanged service is not rewritten
    assert "add map" not in script and "flush map" not in script
    gone = "endpoint-" + hash_and_truncate("default/web/tcp/http__10.244.1.6/8080")
    assert f"delete chain ip kube-proxy {gone}" in script
    assert script.index(f"flush chain ip kube-proxy {gone}") < script.index(f"delete chain ip kube-proxy {gone}")


async def test_service_without_endpoints_rejects_via_map():
    p, nft, _ = proxier()
    p.set_state([web()], [])
    await p.sync_proxy_rules()
    assert "add element ip kube-proxy no-endpoint-services { 10.96.0.20 . tcp . 80 : goto reject-chain }" in \
        nft.scripts[-1]


async def test_nodeport_affinity_and_element_updates():
    p, nft, _ = proxier()
    svc = make_service("web", "10.96.0.20", [{"name": "http", "port": 80, "nodePort": 30080}],
                       svc_type="NodePort", sessionAffinity="ClientIP")
    p.set_state([svc], [web_slice("10.244.1.5")])
    await p.sync_proxy_rules()
    script = nft.scripts[-1]
    ext = "external-" + hash_and_truncate("default/web/tcp/http")
    ep = hash_and_truncate("default/web/tcp/http__10.244.1.5/8080")
    assert f"add element ip kube-proxy service-nodeports {{ tcp . 30080 : goto {ext} }}" in script
    assert f"add set ip kube-proxy affinity-{ep} {{ type ipv4_addr ; flags dynamic,timeout ; timeout 10800s ; }}" in script
    assert f"update @affinity-{ep} {{ ip saddr }}" in script
    assert "fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @service-nodeports" in script
    # Losing every endpoint: the map entries move from service-* to no-endpoint-* maps.
    p.on_endpointslice_update(web_slice("10.244.1.5"), web_slice())
    await p.sync_proxy_rules()
    script = nft.scripts[-1]
    assert "delete element ip kube-proxy service-nodeports { tcp . 30080 }" in script
    assert "add element ip kube-proxy no-endpoint-nodeports { tcp . 30080 : goto reject-chain }" in script
    assert f"delete set ip kube-proxy affinity-{ep}" in script


async def test_failed_sync_forces_a_full_one_and_restart_deletes_stale_chains():
    p, nft, _ = proxier()
    p.set_state([web()], [web_slice("10.244.1.5")])
    await p.sync_proxy_rules()
    nft.fail_next = True
    p.on_endpointslice_update(web_slice("10.244.1.5"), web_slice("10.244.1.6"))
    assert not (await p.sync_proxy_rules()).ok
    result = await p.sync_proxy_rules()
    assert result.ok and not result.partial
    # A new process (restart) with fewer services deletes the stale chains it finds.
    p2, _, _ = proxier()
    p2.runner.handlers = p.runner.handlers
    p2.nft.runner = p.runner
    p2.set_state([], [])
    await p2.sync_proxy_rules()
    script = nft.scripts[-1]
    assert "delete chain ip kube-proxy service-" + hash_and_truncate("default/web/tcp/http") in script
    assert "delete chain ip kube-proxy service-endpoints-check" not in script
