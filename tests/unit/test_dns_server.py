"""The DNS server over real sockets on 127.0.0.1: UDP, TCP, truncation, forwarding only when
configured (to a fake upstream on loopback), malformed packets, and the endpoint slice shape."""

import asyncio
import socket
import struct

import pytest
from dnslib import EDNS0, QTYPE, RCODE, RR, A, DNSRecord

from apimachinery.metrics import Registry
from dns.addon import addon_objects, endpoint_slice, gateway_of
from dns.records import ClusterDNS
from dns.server import DNSHandler, DNSMetrics, DNSServer


def free_udp_tcp_port() -> int:
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                u.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
    raise RuntimeError("no free port")


def records() -> ClusterDNS:
    d = ClusterDNS()
    d.on_service(None, {"metadata": {"name": "web", "namespace": "default"},
                        "spec": {"clusterIP": "10.96.0.20", "ports": [{"name": "http", "port": 80}]}})
    d.on_service(None, {"metadata": {"name": "big", "namespace": "default"}, "spec": {"clusterIP": "None"}})
    d.on_endpointslice(None, {
        "metadata": {"name": "big-1", "namespace": "default", "labels": {"kubernetes.io/service-name": "big"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": [f"10.244.9.{i}"]} for i in range(1, 61)],
    })
    return d


async def udp_query(port: int, name: str, qtype: str = "A", edns: int | None = None) -> DNSRecord:
    q = DNSRecord.question(name, qtype)
    if edns:
        q.add_ar(EDNS0(udp_len=edns))
    loop = asyncio.get_running_loop()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.setblocking(False)
        await loop.sock_connect(s, ("127.0.0.1", port))
        await loop.sock_sendall(s, q.pack())
        data = await asyncio.wait_for(loop.sock_recv(s, 65535), 5)
    return DNSRecord.parse(data)


async def tcp_query(port: int, name: str, qtype: str = "A") -> DNSRecord:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    packet = DNSRecord.question(name, qtype).pack()
    writer.write(struct.pack("!H", len(packet)) + packet)
    await writer.drain()
    (length,) = struct.unpack("!H", await asyncio.wait_for(reader.readexactly(2), 5))
    data = await reader.readexactly(length)
    writer.close()
    await writer.wait_closed()
    return DNSRecord.parse(data)


@pytest.fixture
async def server():
    port = free_udp_tcp_port()
    registry = Registry()
    handler = DNSHandler(records(), metrics=DNSMetrics(registry))
    srv = DNSServer(handler, ["127.0.0.1"], port)
    await srv.start()
    try:
        yield port, registry
    finally:
        await srv.stop()


async def test_udp_and_tcp_answers(server):
    port, registry = server
    reply = await udp_query(port, "web.default.svc.cluster.local")
    assert reply.header.rcode == RCODE.NOERROR and reply.header.aa == 1
    assert [str(rr.rdata) for rr in reply.rr] == ["10.96.0.20"]
    reply = await tcp_query(port, "_http._tcp.web.default.svc.cluster.local", "SRV")
    assert [str(rr.rdata) for rr in reply.rr] == ["0 100 80 web.default.svc.cluster.local."]
    assert 'coredns_dns_requests_total{proto="udp",type="A"} 1' in registry.render()


async def test_outside_names_are_nxdomain_without_upstream(server):
    port, _ = server
    reply = await udp_query(port, "example.org")
    assert reply.header.rcode == RCODE.NXDOMAIN and reply.header.aa == 0 and reply.rr == []


async def test_large_udp_answers_are_truncated_unless_edns_allows(server):
    port, _ = server
    small = await udp_query(port, "big.default.svc.cluster.local")
    assert small.header.tc == 1 and small.rr == []
    over_tcp = await tcp_query(port, "big.default.svc.cluster.local")
    assert len(over_tcp.rr) == 60
    edns = await udp_query(port, "big.default.svc.cluster.local", edns=4096)
    assert edns.header.tc == 0 and len(edns.rr) == 60


async def test_malformed_packet_gets_formerr(server):
    port, _ = server
    loop = asyncio.get_running_loop()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.setblocking(False)
        await loop.sock_connect(s, ("127.0.0.1", port))
        await loop.sock_sendall(s, b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\xff\xff")
        data = await asyncio.wait_for(loop.sock_recv(s, 512), 5)
    assert data[:2] == b"\x12\x34" and data[3] & 0x0F == RCODE.FORMERR


class FakeUpstream(asyncio.DatagramProtocol):
    """Answers every A query with 192.0.2.53 (a loopback-bound stand-in for a resolver)."""

    def __init__(self):
        self.queries = []

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        q = DNSRecord.parse(data)
        self.queries.append(str(q.q.qname))
        r = q.reply()
        r.add_answer(RR(q.q.qname, QTYPE.A, ttl=30, rdata=A("192.0.2.53")))
        self.transport.sendto(r.pack(), addr)


async def test_forwarding_only_to_configured_upstream():
    upstream_port = free_udp_tcp_port()
    loop = asyncio.get_running_loop()
    transport, upstream = await loop.create_datagram_endpoint(FakeUpstream, local_addr=("127.0.0.1", upstream_port))
    port = free_udp_tcp_port()
    srv = DNSServer(DNSHandler(records(), [("127.0.0.1", upstream_port)]), ["127.0.0.1"], port)
    await srv.start()
    try:
        reply = await udp_query(port, "example.org")
        assert [str(rr.rdata) for rr in reply.rr] == ["192.0.2.53"]
        cluster = await udp_query(port, "web.default.svc.cluster.local")
        assert [str(rr.rdata) for rr in cluster.rr] == ["10.96.0.20"]
        assert upstream.queries == ["example.org."]  # cluster names never leave
    finally:
        await srv.stop()
        transport.close()


async def test_dead_upstream_gives_servfail(monkeypatch):
    import dns.server

    monkeypatch.setattr(dns.server, "FORWARD_TIMEOUT", 0.2)
    dead = free_udp_tcp_port()  # nothing listens: ICMP port unreachable or timeout
    port = free_udp_tcp_port()
    srv = DNSServer(DNSHandler(records(), [("127.0.0.1", dead)]), ["127.0.0.1"], port)
    await srv.start()
    try:
        reply = await udp_query(port, "example.org")
        assert reply.header.rcode == RCODE.SERVFAIL
    finally:
        await srv.stop()


def test_addon_objects_and_endpoint_slice():
    objs = {o["kind"]: o for o in addon_objects()}
    svc = objs["Service"]
    assert svc["metadata"] == {"name": "kube-dns", "namespace": "kube-system", "labels": svc["metadata"]["labels"]}
    assert svc["spec"]["clusterIP"] == "10.96.0.10" and "selector" not in svc["spec"]
    assert [(p["name"], p["port"], p["protocol"]) for p in svc["spec"]["ports"]] == [
        ("dns", 53, "UDP"), ("dns-tcp", 53, "TCP")]
    assert objs["ClusterRoleBinding"]["subjects"] == [
        {"kind": "ServiceAccount", "name": "coredns", "namespace": "kube-system"}]
    slc = endpoint_slice("node-a", "10.244.0.1", 53)
    assert slc["metadata"]["labels"]["kubernetes.io/service-name"] == "kube-dns"
    assert slc["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"] == "minik8s-dns"
    # Port names match the Service's: kube-proxy pairs them by name.
    assert [p["name"] for p in slc["ports"]] == ["dns", "dns-tcp"]
    assert gateway_of("10.244.3.0/24") == "10.244.3.1"
