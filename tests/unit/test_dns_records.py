"""ClusterDNS: the names CoreDNS's kubernetes plugin answers, from plain Service/EndpointSlice dicts."""

import pytest
from dnslib import QTYPE, RCODE

from dns.records import ClusterDNS


def service(name, cluster_ip, ports=(), ns="default", **spec):
    return {
        "metadata": {"name": name, "namespace": ns},
        "spec": {"clusterIP": cluster_ip, "clusterIPs": [cluster_ip] if cluster_ip != "None" else ["None"],
                 "ports": list(ports), **spec},
    }


def eps(service_name, endpoints, ports=(), ns="default", name=None):
    return {
        "metadata": {"name": name or f"{service_name}-abc", "namespace": ns,
                     "labels": {"kubernetes.io/service-name": service_name}},
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": list(ports),
    }


def ep(ip, ready=True, hostname=None):
    out = {"addresses": [ip], "conditions": {"ready": ready}}
    if hostname:
        out["hostname"] = hostname
    return out


@pytest.fixture
def dns():
    d = ClusterDNS("cluster.local")
    d.on_service(None, service("web", "10.96.0.20", [{"name": "http", "port": 80, "protocol": "TCP"},
                                                     {"name": "dns", "port": 53, "protocol": "UDP"}]))
    d.on_endpointslice(None, eps("web", [ep("10.244.1.5"), ep("10.244.1.6")],
                                 [{"name": "http", "port": 8080, "protocol": "TCP"}]))
    d.on_service(None, service("db", "None", [{"name": "pg", "port": 5432}]))
    d.on_endpointslice(None, eps("db", [ep("10.244.2.7", hostname="db-0"), ep("10.244.2.8"),
                                        ep("10.244.2.9", ready=False)],
                                 [{"name": "pg", "port": 5432, "protocol": "TCP"}]))
    d.on_service(None, service("ext", "", type="ExternalName", externalName="example.org"))
    return d


def values(answer, rtype=None):
    return sorted(str(rr.rdata) for rr in answer.answers if rtype is None or rr.rtype == rtype)


def test_cluster_ip_service_a_record(dns):
    a = dns.resolve("web.default.svc.cluster.local.", QTYPE.A)
    assert a.rcode == RCODE.NOERROR and a.authoritative
    assert values(a) == ["10.96.0.20"]
    assert a.answers[0].ttl == 5
    assert values(dns.resolve("WEB.Default.svc.cluster.local", QTYPE.A)) == ["10.96.0.20"]  # case-insensitive


def test_ipv4_only_service_has_no_aaaa_but_exists(dns):
    a = dns.resolve("web.default.svc.cluster.local.", QTYPE.AAAA)
    assert a.rcode == RCODE.NOERROR and a.answers == []
    assert [rr.rtype for rr in a.authority] == [QTYPE.SOA]


def test_headless_service_returns_ready_endpoints(dns):
    assert values(dns.resolve("db.default.svc.cluster.local.", QTYPE.A)) == ["10.244.2.7", "10.244.2.8"]


def test_headless_publish_not_ready_addresses(dns):
    dns.on_service(None, service("db", "None", [{"name": "pg", "port": 5432}], publishNotReadyAddresses=True))
    assert values(dns.resolve("db.default.svc.cluster.local.", QTYPE.A)) == ["10.244.2.7", "10.244.2.8", "10.244.2.9"]


def test_headless_endpoint_names(dns):
    assert values(dns.resolve("db-0.db.default.svc.cluster.local.", QTYPE.A)) == ["10.244.2.7"]
    assert values(dns.resolve("10-244-2-8.db.default.svc.cluster.local.", QTYPE.A)) == ["10.244.2.8"]
    assert dns.resolve("db-1.db.default.svc.cluster.local.", QTYPE.A).rcode == RCODE.NXDOMAIN


def test_srv_for_named_port_of_cluster_ip_service(dns):
    a = dns.resolve("_http._tcp.web.default.svc.cluster.local.", QTYPE.SRV)
    assert values(a) == ["0 100 80 web.default.svc.cluster.local."]
    assert values(dns.resolve("_dns._udp.web.default.svc.cluster.local.", QTYPE.SRV)) == [
        "0 100 53 web.default.svc.cluster.local."
    ]
    assert [str(rr.rdata) for rr in a.additional] == ["10.96.0.20"]
    # The port exists only for TCP: no such name for UDP.
    assert dns.resolve("_http._udp.web.default.svc.cluster.local.", QTYPE.SRV).rcode == RCODE.NXDOMAIN


def test_srv_on_service_name_lists_every_port_with_shared_weight(dns):
    a = dns.resolve("web.default.svc.cluster.local.", QTYPE.SRV)
    assert values(a) == ["0 50 53 web.default.svc.cluster.local.", "0 50 80 web.default.svc.cluster.local."]


def test_srv_of_headless_service_targets_endpoints(dns):
    a = dns.resolve("_pg._tcp.db.default.svc.cluster.local.", QTYPE.SRV)
    assert values(a) == [
        "0 50 5432 10-244-2-8.db.default.svc.cluster.local.",
        "0 50 5432 db-0.db.default.svc.cluster.local.",
    ]
    assert sorted((str(rr.rname), str(rr.rdata)) for rr in a.additional) == [
        ("10-244-2-8.db.default.svc.cluster.local.", "10.244.2.8"),
        ("db-0.db.default.svc.cluster.local.", "10.244.2.7"),
    ]


def test_external_name_is_a_cname(dns):
    a = dns.resolve("ext.default.svc.cluster.local.", QTYPE.A)
    assert [(rr.rtype, str(rr.rdata)) for rr in a.answers] == [(QTYPE.CNAME, "example.org.")]


def test_pod_records_insecure_mode(dns):
    assert values(dns.resolve("10-244-3-4.anything.pod.cluster.local.", QTYPE.A)) == ["10.244.3.4"]
    assert dns.resolve("10-244-3.default.pod.cluster.local.", QTYPE.A).rcode == RCODE.NXDOMAIN
    assert dns.resolve("not-an-ip-x.default.pod.cluster.local.", QTYPE.A).rcode == RCODE.NXDOMAIN


def test_ptr_for_cluster_ips_and_endpoints(dns):
    a = dns.resolve("20.0.96.10.in-addr.arpa.", QTYPE.PTR)
    assert values(a) == ["web.default.svc.cluster.local."]
    assert values(dns.resolve("7.2.244.10.in-addr.arpa.", QTYPE.PTR)) == ["db-0.db.default.svc.cluster.local."]
    unknown = dns.resolve("1.1.168.192.in-addr.arpa.", QTYPE.PTR)
    assert unknown.rcode == RCODE.NXDOMAIN and unknown.forward


def test_missing_names_are_nxdomain_with_soa(dns):
    for name in ("nope.default.svc.cluster.local.", "web.other.svc.cluster.local.", "x.y.cluster.local.",
                 "other.svc.cluster.local."):
        a = dns.resolve(name, QTYPE.A)
        assert a.rcode == RCODE.NXDOMAIN, name
        assert [rr.rtype for rr in a.authority] == [QTYPE.SOA]


def test_intermediate_names_exist_without_data(dns):
    for name in ("cluster.local.", "svc.cluster.local.", "default.svc.cluster.local."):
        a = dns.resolve(name, QTYPE.A)
        assert a.rcode == RCODE.NOERROR and a.answers == [], name
    assert values(dns.resolve("cluster.local.", QTYPE.SOA))[0].startswith("ns.dns.cluster.local.")


def test_names_outside_the_domain_are_not_ours(dns):
    a = dns.resolve("example.org.", QTYPE.A)
    assert a.rcode == RCODE.NXDOMAIN and a.forward and not a.authoritative


def test_updates_and_deletes_are_followed(dns):
    old = service("web", "10.96.0.20")
    dns.on_service(old, service("web", "10.96.0.21"))
    assert values(dns.resolve("web.default.svc.cluster.local.", QTYPE.A)) == ["10.96.0.21"]
    assert values(dns.resolve("21.0.96.10.in-addr.arpa.", QTYPE.PTR)) == ["web.default.svc.cluster.local."]
    dns.on_service(service("web", "10.96.0.21"), None)
    assert dns.resolve("web.default.svc.cluster.local.", QTYPE.A).rcode == RCODE.NXDOMAIN
    slice_obj = eps("db", [ep("10.244.2.7", hostname="db-0")])
    dns.on_endpointslice(None, slice_obj)  # replaces db-abc
    assert values(dns.resolve("db.default.svc.cluster.local.", QTYPE.A)) == ["10.244.2.7"]
    dns.on_endpointslice(slice_obj, None)
    assert dns.resolve("db.default.svc.cluster.local.", QTYPE.A).answers == []


def test_other_cluster_domain():
    d = ClusterDNS("corp.example")
    d.on_service(None, service("web", "10.96.0.20"))
    assert values(d.resolve("web.default.svc.corp.example.", QTYPE.A)) == ["10.96.0.20"]
    assert d.resolve("web.default.svc.cluster.local.", QTYPE.A).forward
