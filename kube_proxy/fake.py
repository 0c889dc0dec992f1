"""An in-memory stand-in for the host tools, for tests without root.

FakeRunner keeps a small model of iptables (tables, chains, rules), links, routes and
addresses, and applies iptables-restore payloads atomically with the checks that matter to
kube-proxy: rules may only be appended to existing chains, jumps must name existing chains or
known targets, and a chain can only be deleted when it is empty and unreferenced.
Every call is recorded in `calls` so tests can assert on it.
"""

from __future__ import annotations

import copy
import shlex
from collections.abc import Callable, Sequence

from kube_proxy.commands import CommandResult, quote_rule_token

BUILTIN_CHAINS = {
    "filter": ["INPUT", "FORWARD", "OUTPUT"],
    "nat": ["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"],
    "mangle": ["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"],
}
TARGETS = {"ACCEPT", "DROP", "RETURN", "REJECT", "DNAT", "SNAT", "MASQUERADE", "MARK", "LOG"}

Rule = tuple[str, ...]
Tables = dict[str, dict[str, list[Rule]]]


class FakeIptablesError(Exception):
    pass


def _jump_target(rule: Rule) -> str | None:
    for flag in ("-j", "-g"):
        if flag in rule:
            i = rule.index(flag)
            if i + 1 < len(rule):
                return rule[i + 1]
    return None


class FakeRunner:
    def __init__(self, route_table: str | None = None) -> None:
        self.calls: list[tuple[list[str], str | None]] = []
        self.tables: Tables = {t: {c: [] for c in chains} for t, chains in BUILTIN_CHAINS.items()}
        self.links: dict[str, str] = {}
        self.routes: dict[str, str] = {}
        self.addresses: dict[str, set[str]] = {}
        self.sysctls: dict[str, str] = {
            "net.ipv4.conf.all.route_localnet": "0",
            "net.netfilter.nf_conntrack_tcp_be_liberal": "0",
        }
        self.files: dict[str, str] = {}
        if route_table is not None:
            self.files["/proc/net/route"] = route_table
        # Extra handlers: argv prefix -> result factory (checked before the built-in models).
        self.handlers: list[tuple[tuple[str, ...], Callable[[list[str], str | None], CommandResult]]] = []
        self.fail_next_restore = False

    # -- CommandRunner ----------------------------------------------------------------------
    async def run(self, argv: Sequence[str], stdin: str | None = None) -> CommandResult:
        argv = list(argv)
        self.calls.append((argv, stdin))
        for prefix, handler in self.handlers:
            if tuple(argv[: len(prefix)]) == prefix:
                return handler(argv, stdin)
        tool = argv[0]
        try:
            if tool == "iptables-restore":
                if self.fail_next_restore:
                    self.fail_next_restore = False
                    raise FakeIptablesError("injected failure")
                self.apply_restore(stdin or "")
                return CommandResult(argv, 0)
            if tool == "iptables-save":
                return CommandResult(argv, 0, self.save(argv))
            if tool == "iptables":
                return self._iptables(argv)
            if tool == "ip":
                return self._ip(argv)
        except FakeIptablesError as exc:
            return CommandResult(argv, 1 if tool == "iptables" else 2, "", str(exc))
        return CommandResult(argv, 0)

    def read_sysctl(self, name: str) -> str | None:
        return self.sysctls.get(name)

    def write_sysctl(self, name: str, value: str) -> None:
        self.calls.append((["sysctl", f"{name}={value}"], None))
        self.sysctls[name] = value

    def read_file(self, path: str) -> str | None:
        return self.files.get(path)

    # -- inspection helpers -------------------------------------------------------------------
    def commands(self, tool: str) -> list[list[str]]:
        return [argv for argv, _ in self.calls if argv and argv[0] == tool]

    def restores(self) -> list[str]:
        return [stdin or "" for argv, stdin in self.calls if argv and argv[0] == "iptables-restore"]

    def chains(self, table: str) -> set[str]:
        return set(self.tables[table])

    def rules(self, table: str, chain: str) -> list[str]:
        return [" ".join(quote_rule_token(t) for t in rule) for rule in self.tables[table][chain]]

    # -- iptables-restore ---------------------------------------------------------------------
    def apply_restore(self, payload: str) -> None:
        tables = copy.deepcopy(self.tables)
        table: str | None = None
        for lineno, raw in enumerate(payload.splitlines(), 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith("*"):
                table = line[1:]
                tables.setdefault(table, {})
                continue
            if table is None:
                raise FakeIptablesError(f"line {lineno}: no table")
            chains = tables[table]
            if line == "COMMIT":
                self._check_targets(table, chains, lineno)
                table = None
                continue
            if line.startswith(":"):
                name = line[1:].split()[0]
                chains[name] = []  # --noflush: a chain line creates or flushes that chain
                continue
            tokens = tuple(shlex.split(line))
            self._apply_op(chains, tokens, lineno)
        if table is not None:
            raise FakeIptablesError("missing COMMIT")
        self.tables = tables

    def _check_targets(self, table: str, chains: dict[str, list[Rule]], lineno: int) -> None:
        for chain, rules in chains.items():
            for rule in rules:
                target = _jump_target(rule)
                if target and target not in TARGETS and target not in chains:
                    raise FakeIptablesError(f"line {lineno}: {table}/{chain}: unknown target {target}")

    def _apply_op(self, chains: dict[str, list[Rule]], tokens: Rule, lineno: int) -> None:
        op, chain, rest = tokens[0], tokens[1] if len(tokens) > 1 else "", tokens[2:]
        if op == "-N":
            if chain in chains:
                raise FakeIptablesError(f"line {lineno}: chain {chain} exists")
            chains[chain] = []
            return
        if chain not in chains:
            raise FakeIptablesError(f"line {lineno}: no chain {chain}")
        if op == "-A":
            chains[chain].append(rest)
        elif op == "-I":
            pos = 1
            if rest and rest[0].isdigit():
                pos, rest = int(rest[0]), rest[1:]
            chains[chain].insert(pos - 1, rest)
        elif op == "-D":
            if rest not in chains[chain]:
                raise FakeIptablesError(f"line {lineno}: no such rule in {chain}")
            chains[chain].remove(rest)
        elif op == "-F":
            chains[chain] = []
        elif op == "-X":
            if chains[chain]:
                raise FakeIptablesError(f"line {lineno}: chain {chain} not empty")
            for other, rules in chains.items():
                if other != chain and any(_jump_target(r) == chain for r in rules):
                    raise FakeIptablesError(f"line {lineno}: chain {chain} is referenced from {other}")
            del chains[chain]
        else:
            raise FakeIptablesError(f"line {lineno}: unsupported op {op}")

    def save(self, argv: list[str]) -> str:
        wanted = [argv[argv.index("-t") + 1]] if "-t" in argv else list(self.tables)
        counters = "-c" in argv
        out: list[str] = []
        for table in wanted:
            chains = self.tables.get(table, {})
            out.append(f"*{table}")
            builtins = BUILTIN_CHAINS.get(table, [])
            for chain in chains:
                policy = "ACCEPT" if chain in builtins else "-"
                out.append(f":{chain} {policy} [0:0]")
            for chain, rules in chains.items():
                for rule in rules:
                    text = " ".join(quote_rule_token(t) for t in rule)
                    out.append(f"{'[0:0] ' if counters else ''}-A {chain} {text}")
            out.append("COMMIT")
        return "\n".join(out) + "\n"

    # -- iptables -------------------------------------------------------------------------------
    def _iptables(self, argv: list[str]) -> CommandResult:
        args = argv[1:]
        table = "filter"
        clean: list[str] = []
        i = 0
        while i < len(args):
            if args[i] == "-w":
                i += 2 if i + 1 < len(args) and args[i + 1].isdigit() else 1
                continue
            if args[i] == "-t":
                table = args[i + 1]
                i += 2
                continue
            clean.append(args[i])
            i += 1
        chains = self.tables.setdefault(table, {})
        op, chain, rest = clean[0], clean[1] if len(clean) > 1 else "", tuple(clean[2:])
        if op == "-C":
            if chain not in chains or rest not in chains[chain]:
                return CommandResult(argv, 1, "", "Bad rule (does a matching rule exist in that chain?).")
            return CommandResult(argv, 0)
        if op == "-N" and chain in chains:
            return CommandResult(argv, 1, "", "iptables: Chain already exists.")
        if op == "-S":
            if chain not in chains:
                return CommandResult(argv, 1, "", f"iptables: No chain/target/match by that name ({chain}).")
            builtin = chain in BUILTIN_CHAINS.get(table, [])
            lines = [f"-P {chain} ACCEPT" if builtin else f"-N {chain}"]
            lines += [f"-A {chain} " + " ".join(quote_rule_token(t) for t in r) for r in chains[chain]]
            return CommandResult(argv, 0, "\n".join(lines) + "\n")
        self._apply_op(chains, (op, chain, *rest), 0)
        return CommandResult(argv, 0)

    # -- ip ----------------------------------------------------------------------------------
    def _ip(self, argv: list[str]) -> CommandResult:
        args = [a for a in argv[1:] if a not in ("-o", "-4")]
        obj, verb = args[0], args[1]
        if obj == "link":
            if verb == "show":
                name = args[-1]
                if name not in self.links:
                    return CommandResult(argv, 1, "", f'Device "{name}" does not exist.')
                return CommandResult(argv, 0, f"1: {name}: <BROADCAST,NOARP,UP> type {self.links[name]}\n")
            if verb == "add":
                self.links[args[2]] = args[args.index("type") + 1]
            elif verb == "del":
                name = args[2]
                self.links.pop(name, None)
                self.addresses.pop(name, None)
                self.routes = {c: d for c, d in self.routes.items() if d != name}
            return CommandResult(argv, 0)
        if obj == "route":
            cidr, dev = args[2], args[args.index("dev") + 1]
            if verb == "replace":
                if dev not in self.links:
                    return CommandResult(argv, 2, "", "Cannot find device")
                self.routes[cidr] = dev
            elif verb == "del":
                if self.routes.get(cidr) != dev:
                    return CommandResult(argv, 2, "", "No such process")
                del self.routes[cidr]
            return CommandResult(argv, 0)
        if obj == "addr":
            dev = args[args.index("dev") + 1]
            if verb == "show":
                lines = [
                    f"9: {dev}    inet {ip}/32 scope global {dev}"
                    for ip in sorted(self.addresses.get(dev, ()))
                ]
                return CommandResult(argv, 0, "\n".join(lines) + ("\n" if lines else ""))
            ip = args[2].split("/")[0]
            if verb == "add":
                if ip in self.addresses.get(dev, set()):
                    return CommandResult(argv, 2, "", "RTNETLINK answers: File exists")
                self.addresses.setdefault(dev, set()).add(ip)
            elif verb == "del":
                self.addresses.get(dev, set()).discard(ip)
            return CommandResult(argv, 0)
        return CommandResult(argv, 0)


# ---------------------------------------------------------------------------------------------
# Object builders for tests (plain Kubernetes dicts)


def make_service(
    name: str,
    cluster_ip: str,
    ports: list[dict],
    namespace: str = "default",
    svc_type: str = "ClusterIP",
    status: dict | None = None,
    **spec: object,
) -> dict:
    """A core/v1 Service; `ports` entries are ServicePort dicts (name, port, protocol, nodePort)."""
    obj = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"namespace": namespace, "name": name},
        "spec": {
            "type": svc_type,
            "clusterIP": cluster_ip,
            "clusterIPs": [cluster_ip],
            "ports": ports,
            **spec,
        },
    }
    if status is not None:
        obj["status"] = status
    return obj


def make_endpoint(
    ip: str,
    node: str = "node-a",
    ready: bool | None = True,
    serving: bool | None = None,
    terminating: bool | None = None,
    zone_hints: list[str] | None = None,
) -> dict:
    """A discovery.k8s.io/v1 Endpoint; serving defaults to ready, as the API server does."""
    conditions: dict = {}
    if ready is not None:
        conditions["ready"] = ready
    if serving is None and ready is not None:
        serving = ready
    if serving is not None:
        conditions["serving"] = serving
    if terminating is not None:
        conditions["terminating"] = terminating
    ep: dict = {"addresses": [ip], "conditions": conditions, "nodeName": node}
    if zone_hints:
        ep["hints"] = {"forZones": [{"name": z} for z in zone_hints]}
    return ep


def make_endpointslice(
    service: str,
    endpoints: list[dict | str],
    ports: list[dict],
    namespace: str = "default",
    name: str | None = None,
) -> dict:
    """A discovery.k8s.io/v1 EndpointSlice for `service`; plain strings become ready endpoints."""
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "namespace": namespace,
            "name": name or f"{service}-abcde",
            "labels": {"kubernetes.io/service-name": service},
        },
        "addressType": "IPv4",
        "ports": ports,
        "endpoints": [make_endpoint(e) if isinstance(e, str) else e for e in endpoints],
    }


# A /proc/net/route with a default route via eth0.
ROUTE_TABLE_ETH0 = (
    "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
    "eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"
    "eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"
)


class FakeIpvs:
    """Emulates `ipvsadm -Ln` and `ipvsadm-restore` on top of a FakeRunner:
    runner.handlers += FakeIpvs().handlers(). Connection counts can be set in `conns`."""

    def __init__(self) -> None:
        # (proto, addr, port) -> {"scheduler", "persistent", "rs": {(ip, port): weight}}
        self.services: dict[tuple[str, str, int], dict] = {}
        self.conns: dict[tuple[tuple[str, str, int], tuple[str, int]], tuple[int, int]] = {}
        self.available = True

    def handlers(self) -> list:
        return [(("ipvsadm", "-Ln"), self._list), (("ipvsadm-restore",), self._restore)]

    @staticmethod
    def _vs(tokens: list[str]) -> tuple[str, str, int]:
        flags = {"-t": "TCP", "-u": "UDP", "--sctp-service": "SCTP"}
        for flag, proto in flags.items():
            if flag in tokens:
                addr, _, port = tokens[tokens.index(flag) + 1].rpartition(":")
                return proto, addr, int(port)
        raise ValueError(f"no service in {tokens}")

    def _list(self, argv: list[str], _stdin: str | None) -> CommandResult:
        if not self.available:
            return CommandResult(argv, 2, "", "Can't initialize ipvs: Protocol not available\n")
        out = [
            "IP Virtual Server version 1.2.1 (size=4096)",
            "Prot LocalAddress:Port Scheduler Flags",
            "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn",
        ]
        for key, vs in sorted(self.services.items()):
            flags = f" persistent {vs['persistent']}" if vs["persistent"] else ""
            out.append(f"{key[0]:<4} {key[1]}:{key[2]} {vs['scheduler']}{flags}")
            for rs, weight in sorted(vs["rs"].items()):
                active, inactive = self.conns.get((key, rs), (0, 0))
                out.append(f"  -> {rs[0]}:{rs[1]:<18} Masq    {weight:<6} {active:<10} {inactive}")
        return CommandResult(argv, 0, "\n".join(out) + "\n")

    def _restore(self, argv: list[str], stdin: str | None) -> CommandResult:
        services = copy.deepcopy(self.services)
        for line in (stdin or "").splitlines():
            tokens = line.split()
            if not tokens:
                continue
            op, key = tokens[0], self._vs(tokens)

            def opt(flag: str, default: str = "", tokens: list[str] = tokens) -> str:
                return tokens[tokens.index(flag) + 1] if flag in tokens else default

            if op in ("-A", "-E"):
                if (op == "-A") == (key in services):
                    return CommandResult(
                        argv, 1, "", f"{line}: {'exists' if op == '-A' else 'no such service'}"
                    )
                rs = services.get(key, {}).get("rs", {})
                services[key] = {"scheduler": opt("-s", "wlc"), "persistent": int(opt("-p", "0")), "rs": rs}
            elif op == "-D":
                if services.pop(key, None) is None:
                    return CommandResult(argv, 1, "", f"{line}: no such service")
            else:
                if key not in services:
                    return CommandResult(argv, 1, "", f"{line}: no such service")
                addr, _, port = opt("-r").rpartition(":")
                rs_key = (addr, int(port))
                table = services[key]["rs"]
                if (op == "-a" and rs_key in table) or (op in ("-e", "-d") and rs_key not in table):
                    return CommandResult(argv, 1, "", f"{line}: bad destination")
                if op == "-d":
                    del table[rs_key]
                else:
                    table[rs_key] = int(opt("-w", "1"))
        self.services = services
        return CommandResult(argv, 0)
