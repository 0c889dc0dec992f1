"""Test "hosts": network namespaces on a private bridge, each serving its own name.

    net = NetnsNetwork.create(prefix="mkp1a2b", subnet="10.244.250.0/24")
    h1 = net.add_host("h1")           # 10.244.250.11, HTTP :8080 and UDP echo :5353 answer "h1"
    http_get(h1.ip, 8080) == "h1"
    net.close()                        # servers (by pid), netns, veths, bridge

Everything is named from `prefix` so parallel runs never collide, and close() removes all of
it even after a partial create(). Needs root. Traffic stays on the bridge created here.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import select
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field

HTTP_PORT = 8080
UDP_PORT = 5353

# Runs inside each netns: an HTTP server and a UDP echo server that both answer the host name.
SERVER_CODE = r"""
import http.server, socket, sys, threading
name = sys.argv[1]
http_port, udp_port = int(sys.argv[2]), int(sys.argv[3])

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = name.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass

http.server.ThreadingHTTPServer.daemon_threads = True
httpd = http.server.ThreadingHTTPServer(("0.0.0.0", http_port), Handler)
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
udp.bind(("0.0.0.0", udp_port))

def echo():
    while True:
        _, peer = udp.recvfrom(2048)
        udp.sendto(name.encode(), peer)

threading.Thread(target=echo, daemon=True).start()
print("ready", flush=True)
httpd.serve_forever()
"""


def run(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {result.stderr.strip()}")
    return result


@dataclass
class Host:
    name: str
    ip: str
    netns: str
    veth: str
    server: subprocess.Popen | None = None

    def exec(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess:
        return run("ip", "netns", "exec", self.netns, *argv, check=check)


@dataclass
class NetnsNetwork:
    prefix: str
    subnet: ipaddress.IPv4Network
    bridge: str
    gateway: str
    hosts: dict[str, Host] = field(default_factory=dict)
    _closed: bool = False

    @classmethod
    def create(cls, prefix: str, subnet: str = "10.244.250.0/24", forwarding: bool = True) -> NetnsNetwork:
        """A bridge `<prefix>br` with the subnet's first address. With `forwarding`, IPv4
        forwarding is enabled on this bridge only (not globally), so a netns can reach a
        service IP that is DNATed back onto the bridge."""
        if len(prefix) > 10:
            raise ValueError("prefix must be <= 10 chars (interface names are <= 15)")
        net = ipaddress.ip_network(subnet)
        gateway = str(net.network_address + 1)
        self = cls(prefix, net, f"{prefix}br", gateway)
        try:
            run("ip", "link", "add", self.bridge, "type", "bridge")
            run("ip", "addr", "add", f"{gateway}/{net.prefixlen}", "dev", self.bridge)
            run("ip", "link", "set", self.bridge, "up")
            if forwarding:
                with open(f"/proc/sys/net/ipv4/conf/{self.bridge}/forwarding", "w") as f:
                    f.write("1")
        except Exception:
            self.close()
            raise
        return self

    def add_host(self, name: str, serve: bool = True) -> Host:
        index = len(self.hosts) + 1
        host = Host(
            name=name,
            ip=str(self.subnet.network_address + 10 + index),
            netns=f"{self.prefix}-{name}",
            veth=f"{self.prefix}v{index}",
        )
        self.hosts[name] = host  # registered first so close() cleans a half-built host
        peer = f"{self.prefix}p{index}"
        run("ip", "netns", "add", host.netns)
        run("ip", "link", "add", host.veth, "type", "veth", "peer", "name", peer)
        run("ip", "link", "set", peer, "netns", host.netns)
        run("ip", "link", "set", host.veth, "master", self.bridge)
        run("ip", "link", "set", host.veth, "type", "bridge_slave", "hairpin", "on")
        run("ip", "link", "set", host.veth, "up")
        n = ("ip", "-n", host.netns)
        run(*n, "link", "set", peer, "name", "eth0")
        run(*n, "addr", "add", f"{host.ip}/{self.subnet.prefixlen}", "dev", "eth0")
        run(*n, "link", "set", "eth0", "up")
        run(*n, "link", "set", "lo", "up")
        run(*n, "route", "add", "default", "via", self.gateway)
        if serve:
            self._start_server(host)
        return host

    def _start_server(self, host: Host) -> None:
        proc = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                host.netns,
                sys.executable,
                "-u",
                "-c",
                SERVER_CODE,
                host.name,
                str(HTTP_PORT),
                str(UDP_PORT),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        host.server = proc  # `ip netns exec` execs python: this pid is the server's
        ready, _, _ = select.select([proc.stdout], [], [], 15)
        line = proc.stdout.readline() if ready else ""
        if line.strip() != "ready":
            raise RuntimeError(f"server in {host.netns} did not start: {line!r} {proc.poll()}")

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for host in self.hosts.values():
            if host.server is not None and host.server.poll() is None:
                host.server.send_signal(signal.SIGTERM)
                try:
                    host.server.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    host.server.kill()
                    host.server.wait(timeout=5)
            if host.server is not None:
                for stream in (host.server.stdout, host.server.stderr):
                    if stream:
                        stream.close()
            run("ip", "link", "del", host.veth, check=False)  # removes the peer too
            run("ip", "netns", "del", host.netns, check=False)
        run("ip", "link", "del", self.bridge, check=False)


def leftovers(prefix: str) -> list[str]:
    """Anything named with `prefix` still present (links or netns); [] once close() ran."""
    found = [line for line in run("ip", "-o", "link", "show").stdout.splitlines() if f" {prefix}" in line]
    found += [line for line in run("ip", "netns", "list").stdout.splitlines() if line.startswith(prefix)]
    return found


def http_get(ip: str, port: int, timeout: float = 3.0) -> str:
    """One HTTP/1.0 GET on a fresh connection; returns the body (the answering host's name)."""
    with socket.create_connection((ip, port), timeout=timeout) as conn:
        conn.sendall(b"GET / HTTP/1.0\r\nHost: test\r\n\r\n")
        data = b""
        while chunk := conn.recv(4096):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.0 200") and not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"bad response from {ip}:{port}: {head[:60]!r}")
    return body.decode()


def udp_ask(sock: socket.socket, ip: str, port: int, timeout: float = 2.0) -> str:
    """Send one datagram from `sock` (keep the socket to keep the flow) and return the answer."""
    sock.settimeout(timeout)
    sock.sendto(b"who", (ip, port))
    data, _ = sock.recvfrom(2048)
    return data.decode()


def unique_prefix(tag: str = "mkp") -> str:
    return f"{tag}{os.getpid() % 0xFFFF:04x}{int(time.time() * 1000) % 0xFF:02x}"


@contextlib.contextmanager
def exclusive_lock(path: str):
    """Serialize runs that touch host-global state (the real KUBE-* chains)."""
    import fcntl

    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
