"""The DNS wire side: UDP and TCP listeners (dnslib for the packets), answers from
ClusterDNS, and optional forwarding of everything else to configured upstream servers.

Without upstreams nothing leaves this process: names outside the cluster domain get
NXDOMAIN. Listening sockets use IP_FREEBIND, so the server can bind an address that appears
later (the CNI bridge gets its gateway address with the first pod).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
import time
from collections.abc import Sequence

from dnslib import OPCODE, QTYPE, RCODE, DNSError, DNSRecord

from apimachinery.metrics import Registry
from dns.records import Answer, ClusterDNS

log = logging.getLogger("dns.server")

IP_FREEBIND = getattr(socket, "IP_FREEBIND", 15)
UDP_PAYLOAD = 512  # without EDNS0
MAX_EDNS_PAYLOAD = 4096
FORWARD_TIMEOUT = 2.0
TCP_IDLE_TIMEOUT = 10.0


def parse_hostport(value: str, default_port: int = 53) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep:
        return value, default_port
    return host, int(port)


class DNSMetrics:
    """CoreDNS's main metrics (names as its prometheus plugin exports them)."""

    def __init__(self, registry: Registry) -> None:
        self.requests = registry.counter("coredns_dns_requests_total", "Counter of DNS requests made per zone, "
                                         "protocol and family.", ("proto", "type"))
        self.responses = registry.counter("coredns_dns_responses_total", "Counter of response status codes.",
                                          ("rcode",))
        self.duration = registry.histogram("coredns_dns_request_duration_seconds",
                                           "Histogram of the time (in seconds) each request took.",
                                           buckets=(0.00025, 0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032,
                                                    0.064, 0.128, 0.256, 0.512, 1.024, 2.048, 4.096, 8.192))
        self.forwards = registry.counter("coredns_forward_requests_total", "Counter of requests made per upstream.",
                                         ("to",))


class DNSHandler:
    """Turns one query packet into one response packet."""

    def __init__(self, records: ClusterDNS, upstreams: Sequence[tuple[str, int]] = (),
                 metrics: DNSMetrics | None = None) -> None:
        self.records = records
        self.upstreams = list(upstreams)
        self.metrics = metrics

    async def handle(self, data: bytes, proto: str) -> bytes | None:
        start = time.perf_counter()
        try:
            request = DNSRecord.parse(data)
        except (DNSError, Exception):
            return _formerr(data)
        if request.header.qr:  # a response, not a query: ignore
            return None
        qtype = request.q.qtype if request.questions else 0
        if self.metrics is not None:
            self.metrics.requests.inc(proto, QTYPE.get(qtype, str(qtype)))
        reply = request.reply()
        reply.header.ra = 1 if self.upstreams else 0
        if request.header.opcode != OPCODE.QUERY or len(request.questions) != 1:
            reply.header.rcode = RCODE.NOTIMP if request.header.opcode != OPCODE.QUERY else RCODE.FORMERR
            return self._finish(reply, request, proto, start)
        qname = str(request.q.qname)
        answer = self.records.resolve(qname, qtype)
        if answer.forward and self.upstreams:
            forwarded = await self.forward(data)
            if forwarded is not None:
                if self.metrics is not None:
                    self.metrics.duration.observe(time.perf_counter() - start)
                    with contextlib.suppress(Exception):
                        self.metrics.responses.inc(RCODE.get(DNSRecord.parse(forwarded).header.rcode, "?"))
                return forwarded
            reply.header.rcode = RCODE.SERVFAIL
            reply.header.aa = 0
            return self._finish(reply, request, proto, start)
        _fill(reply, answer)
        return self._finish(reply, request, proto, start)

    def _finish(self, reply: DNSRecord, request: DNSRecord, proto: str, start: float) -> bytes:
        packed = reply.pack()
        if proto == "udp":
            limit = UDP_PAYLOAD
            for rr in request.ar:  # EDNS0 OPT: its class is the client's UDP payload size
                if rr.rtype == QTYPE.OPT:
                    limit = max(UDP_PAYLOAD, min(int(rr.rclass), MAX_EDNS_PAYLOAD))
            if len(packed) > limit:
                # Too big for UDP: the client retries over TCP.
                truncated = request.reply()
                truncated.header.rcode = reply.header.rcode
                truncated.header.aa = reply.header.aa
                truncated.header.tc = 1
                packed = truncated.pack()
        if self.metrics is not None:
            self.metrics.responses.inc(RCODE.get(reply.header.rcode, "?"))
            self.metrics.duration.observe(time.perf_counter() - start)
        return packed

    async def forward(self, data: bytes) -> bytes | None:
        """Ask each upstream in turn over UDP; None when none answers."""
        loop = asyncio.get_running_loop()
        for host, port in self.upstreams:
            if self.metrics is not None:
                self.metrics.forwards.inc(f"{host}:{port}")
            done: asyncio.Future[bytes] = loop.create_future()
            transport = None
            try:
                transport, _ = await loop.create_datagram_endpoint(
                    lambda fut=done: _ForwardClient(fut, data[:2]), remote_addr=(host, port)
                )
                transport.sendto(data)
                return await asyncio.wait_for(done, FORWARD_TIMEOUT)
            except (TimeoutError, OSError) as exc:
                log.warning("upstream %s:%d failed: %s", host, port, exc)
            finally:
                if transport is not None:
                    transport.close()
        return None


class _ForwardClient(asyncio.DatagramProtocol):
    """Waits for the upstream's reply carrying the query's id."""

    def __init__(self, done: asyncio.Future[bytes], query_id: bytes) -> None:
        self.done = done
        self.query_id = query_id

    def datagram_received(self, reply: bytes, addr) -> None:
        if not self.done.done() and reply[:2] == self.query_id:
            self.done.set_result(reply)

    def error_received(self, exc: Exception) -> None:
        if not self.done.done():
            self.done.set_exception(exc)


def _fill(reply: DNSRecord, answer: Answer) -> None:
    reply.header.rcode = answer.rcode
    reply.header.aa = 1 if answer.authoritative else 0
    for rr in answer.answers:
        reply.add_answer(rr)
    for rr in answer.authority:
        reply.add_auth(rr)
    for rr in answer.additional:
        reply.add_ar(rr)


def _formerr(data: bytes) -> bytes | None:
    if len(data) < 12:
        return None
    ident, flags = struct.unpack("!HH", data[:4])
    if flags & 0x8000:
        return None
    # Header only: id, QR + opcode of the request, RCODE FORMERR.
    return struct.pack("!HHHHHH", ident, 0x8000 | (flags & 0x7800) | RCODE.FORMERR, 0, 0, 0, 0)


class _UDPProtocol(asyncio.DatagramProtocol):
    def __init__(self, handler: DNSHandler) -> None:
        self.handler = handler
        self.transport: asyncio.DatagramTransport | None = None
        self.tasks: set[asyncio.Task] = set()

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        task = asyncio.get_running_loop().create_task(self._answer(data, addr))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _answer(self, data: bytes, addr) -> None:
        try:
            reply = await self.handler.handle(data, "udp")
        except Exception:
            log.exception("DNS query from %s failed", addr)
            return
        if reply is not None and self.transport is not None:
            self.transport.sendto(reply, addr)


def _socket(kind: int, host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, kind)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_IP, IP_FREEBIND, 1)
    sock.bind((host, port))
    sock.setblocking(False)
    return sock


class DNSServer:
    """UDP + TCP listeners on each address."""

    def __init__(self, handler: DNSHandler, addresses: Sequence[str], port: int = 53) -> None:
        self.handler = handler
        self.addresses = list(addresses)
        self.port = port
        self._udp: list[asyncio.DatagramTransport] = []
        self._tcp: list[asyncio.base_events.Server] = []
        self._protocols: list[_UDPProtocol] = []

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        for host in self.addresses:
            protocol = _UDPProtocol(self.handler)
            transport, _ = await loop.create_datagram_endpoint(lambda p=protocol: p,
                                                               sock=_socket(socket.SOCK_DGRAM, host, self.port))
            self._udp.append(transport)
            self._protocols.append(protocol)
            tcp_sock = _socket(socket.SOCK_STREAM, host, self.port)
            self._tcp.append(await asyncio.start_server(self._tcp_client, sock=tcp_sock))
            log.info("serving DNS on %s:%d (udp, tcp)", host, self.port)

    async def _tcp_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                header = await asyncio.wait_for(reader.readexactly(2), TCP_IDLE_TIMEOUT)
                (length,) = struct.unpack("!H", header)
                data = await asyncio.wait_for(reader.readexactly(length), TCP_IDLE_TIMEOUT)
                reply = await self.handler.handle(data, "tcp")
                if reply is None:
                    break
                writer.write(struct.pack("!H", len(reply)) + reply)
                await writer.drain()
        except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def stop(self) -> None:
        for transport in self._udp:
            transport.close()
        for server in self._tcp:
            server.close()
            await server.wait_closed()
        for protocol in self._protocols:
            for task in list(protocol.tasks):
                task.cancel()
        self._udp, self._tcp, self._protocols = [], [], []
