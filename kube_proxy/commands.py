"""Thin wrappers around the host tools kube-proxy drives: iptables, iptables-save,
iptables-restore --noflush, conntrack, ip and sysctls.

Everything goes through a CommandRunner so tests can swap in kube_proxy.fake.FakeRunner and
assert on the generated payloads without root.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

IPTABLES_WAIT = ("-w", "5")  # wait for the xtables lock instead of failing
NO_CONNECTION_TO_DELETE = "0 flow entries have been deleted"


@dataclass
class CommandResult:
    argv: list[str]
    returncode: int
    stdout: str = ""
    stderr: str = ""

    @property
    def ok(self) -> bool:
        return self.returncode == 0


class CommandError(RuntimeError):
    def __init__(self, result: CommandResult) -> None:
        self.result = result
        msg = (result.stderr or result.stdout).strip()
        super().__init__(f"{' '.join(result.argv[:4])}... exited {result.returncode}: {msg}")


class CommandRunner(Protocol):
    async def run(self, argv: Sequence[str], stdin: str | None = None) -> CommandResult: ...

    def read_sysctl(self, name: str) -> str | None: ...

    def write_sysctl(self, name: str, value: str) -> None: ...

    def read_file(self, path: str) -> str | None: ...


def _sysctl_path(name: str) -> str:
    return "/proc/sys/" + name.replace(".", "/")


class SystemRunner:
    """Runs the real tools as subprocesses (needs root for anything that changes state)."""

    async def run(self, argv: Sequence[str], stdin: str | None = None) -> CommandResult:
        env = dict(os.environ, LC_ALL="C")
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=env,
            )
        except FileNotFoundError as exc:
            return CommandResult(list(argv), 127, "", str(exc))
        out, err = await proc.communicate(stdin.encode() if stdin is not None else None)
        return CommandResult(
            list(argv), proc.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace")
        )

    def read_sysctl(self, name: str) -> str | None:
        return self.read_file(_sysctl_path(name))

    def write_sysctl(self, name: str, value: str) -> None:
        with open(_sysctl_path(name), "w") as f:
            f.write(value)

    def read_file(self, path: str) -> str | None:
        try:
            with open(path) as f:
                return f.read().strip() if path.startswith("/proc/sys/") else f.read()
        except OSError:
            return None


def quote_rule_token(token: str) -> str:
    """Quote a token the way iptables-save does, so restore files round-trip."""
    if token == "" or any(c in token for c in ' "\t'):
        return '"' + token.replace('"', '\\"') + '"'
    return token


def chains_in_save(text: str) -> set[str]:
    """Chain names declared in iptables-save output for one table."""
    return {line[1:].split(" ", 1)[0] for line in text.splitlines() if line.startswith(":")}


# --iptables-backend → the iptables binary (its -save / -restore siblings follow the name).
# "system" is whatever the host's `iptables` alternative is (nf_tables on Debian 12). Upstream's
# kube-proxy image picks between legacy and nft the same way (iptables-wrapper); the nft
# backend's restore is quadratic in the rules already present (NODE-NOTES, bench/RESULTS.md),
# the legacy one replaces a table blob in one call.
IPTABLES_BACKENDS = {"system": "iptables", "legacy": "iptables-legacy", "nft": "iptables-nft"}


async def other_iptables_backend(runner: CommandRunner, binary: str) -> str:
    """The iptables binary of the other kernel backend than `binary`'s (`iptables --version`
    says "(legacy)" or "(nf_tables)"): where a run with another --iptables-backend left rules."""
    result = await runner.run([binary, "--version"])
    return "iptables-nft" if "legacy" in result.stdout else "iptables-legacy"


class Iptables:
    """The iptables operations kube-proxy needs, over a runner."""

    def __init__(self, runner: CommandRunner, binary: str = "iptables") -> None:
        self.runner = runner
        self.binary = binary

    async def _ipt(self, table: str, *args: str) -> CommandResult:
        return await self.runner.run([self.binary, *IPTABLES_WAIT, "-t", table, *args])

    async def restore(self, payload: str) -> None:
        """iptables-restore --noflush: atomic; a bad payload changes nothing."""
        result = await self.runner.run([f"{self.binary}-restore", *IPTABLES_WAIT, "--noflush"], stdin=payload)
        if not result.ok:
            raise CommandError(result)

    async def save(self, table: str, counters: bool = False) -> str:
        argv = [f"{self.binary}-save", "-t", table]
        if counters:
            argv.append("-c")
        result = await self.runner.run(argv)
        if not result.ok:
            raise CommandError(result)
        return result.stdout

    async def ensure_chain(self, table: str, chain: str) -> None:
        result = await self._ipt(table, "-N", chain)
        if not result.ok and "exists" not in (result.stderr + result.stdout):
            raise CommandError(result)

    async def rule_exists(self, table: str, chain: str, args: Sequence[str]) -> bool:
        return (await self._ipt(table, "-C", chain, *args)).ok

    async def ensure_rule(self, table: str, chain: str, args: Sequence[str], prepend: bool = True) -> bool:
        """Add the rule unless an identical one exists; True if it was added."""
        if await self.rule_exists(table, chain, args):
            return False
        op = ("-I", chain, "1") if prepend else ("-A", chain)
        result = await self._ipt(table, *op, *args)
        if not result.ok:
            raise CommandError(result)
        return True

    async def delete_rule(self, table: str, chain: str, args: Sequence[str]) -> int:
        """Delete every copy of the rule (bounded); returns how many were removed."""
        removed = 0
        for _ in range(16):
            if not (await self._ipt(table, "-D", chain, *args)).ok:
                break
            removed += 1
        return removed

    async def list_rules(self, table: str, chain: str) -> list[str] | None:
        """`iptables -S chain` lines, or None when the chain does not exist."""
        result = await self._ipt(table, "-S", chain)
        if not result.ok:
            return None
        return [line for line in result.stdout.splitlines() if line]


class Conntrack:
    """conntrack -D calls as upstream's pkg/proxy/conntrack exec implementation."""

    def __init__(self, runner: CommandRunner, binary: str = "conntrack") -> None:
        self.runner = runner
        self.binary = binary
        self.errors = 0

    async def _delete(self, *args: str) -> bool:
        result = await self.runner.run([self.binary, "-D", *args])
        if result.ok or NO_CONNECTION_TO_DELETE in (result.stderr + result.stdout):
            return True
        self.errors += 1
        return False

    async def clear_entries_for_ip(self, ip: str, protocol: str = "udp") -> bool:
        return await self._delete("--orig-dst", ip, "-p", protocol.lower())

    async def clear_entries_for_port(self, port: int, protocol: str = "udp") -> bool:
        return await self._delete("-p", protocol.lower(), "--dport", str(port))

    async def clear_entries_for_nat(self, origin: str, dest: str, protocol: str = "udp") -> bool:
        return await self._delete("--orig-dst", origin, "--dst-nat", dest, "-p", protocol.lower())

    async def clear_entries_for_port_nat(self, dest: str, port: int, protocol: str = "udp") -> bool:
        return await self._delete("-p", protocol.lower(), "--dport", str(port), "--dst-nat", dest)


class IpCommand:
    """The few iproute2 operations kube-proxy needs (links, routes, addresses)."""

    def __init__(self, runner: CommandRunner, binary: str = "ip") -> None:
        self.runner = runner
        self.binary = binary

    async def _ip(self, *args: str, check: bool = True) -> CommandResult:
        result = await self.runner.run([self.binary, *args])
        if check and not result.ok:
            raise CommandError(result)
        return result

    async def link_exists(self, name: str) -> bool:
        return (await self._ip("link", "show", "dev", name, check=False)).ok

    async def ensure_link(self, name: str, kind: str) -> bool:
        """Create the link (e.g. kind "ifb" or "dummy") if missing and bring it up."""
        created = False
        if not await self.link_exists(name):
            await self._ip("link", "add", name, "type", kind)
            created = True
        await self._ip("link", "set", name, "up")
        return created

    async def delete_link(self, name: str) -> bool:
        if not await self.link_exists(name):
            return False
        await self._ip("link", "del", name)
        return True

    async def replace_route(self, cidr: str, device: str) -> None:
        await self._ip("route", "replace", cidr, "dev", device)

    async def delete_route(self, cidr: str, device: str) -> bool:
        return (await self._ip("route", "del", cidr, "dev", device, check=False)).ok

    async def addresses(self, device: str) -> set[str]:
        """IPv4 addresses (without prefix length) on a device."""
        result = await self._ip("-o", "-4", "addr", "show", "dev", device, check=False)
        found = set()
        for line in result.stdout.splitlines():
            parts = line.split()
            if "inet" in parts:
                found.add(parts[parts.index("inet") + 1].split("/")[0])
        return found

    async def add_address(self, ip: str, device: str) -> None:
        result = await self._ip("addr", "add", f"{ip}/32", "dev", device, check=False)
        if not result.ok and "exists" not in result.stderr:
            raise CommandError(result)

    async def delete_address(self, ip: str, device: str) -> None:
        await self._ip("addr", "del", f"{ip}/32", "dev", device, check=False)


def default_route_interface(route_table: str | None) -> str | None:
    """The interface of the IPv4 default route, from /proc/net/route text."""
    if not route_table:
        return None
    best: tuple[int, str] | None = None
    for line in route_table.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 8:
            continue
        iface, dest, flags, metric, mask = fields[0], fields[1], int(fields[3], 16), int(fields[6]), fields[7]
        if dest == "00000000" and mask == "00000000" and flags & 0x1:  # RTF_UP
            if best is None or metric < best[0]:
                best = (metric, iface)
    return best[1] if best else None
