"""Cluster DNS records from Services and EndpointSlices, answered as CoreDNS's kubernetes
plugin does (https://github.com/kubernetes/dns/blob/master/docs/specification.md):

- `<svc>.<ns>.svc.<zone>` A: the ClusterIP; for a headless Service the addresses of its
  ready endpoints (all of them with publishNotReadyAddresses); ExternalName: a CNAME.
- `<endpoint>.<svc>.<ns>.svc.<zone>` A (headless): the endpoint whose hostname (or dashed IP)
  is `<endpoint>`.
- `_<port>._<proto>.<svc>.<ns>.svc.<zone>` SRV per named port (ClusterIP: target the service
  name; headless: one record per endpoint, A records in the additional section); SRV on
  the service name itself lists every port.
- `<a-b-c-d>.<ns>.pod.<zone>` A: a.b.c.d ("pods insecure", kubeadm's default).
- `d.c.b.a.in-addr.arpa` PTR for ClusterIPs and endpoint addresses.
- AAAA for an IPv4-only name: NOERROR without answers (NODATA); a name that does not exist:
  NXDOMAIN; both with the zone's SOA in the authority section. TTL 5 s, like CoreDNS.

Pure logic over plain dicts: the server feeds it informer events.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from dnslib import AAAA, CNAME, NS, PTR, QTYPE, RCODE, RR, SOA, SRV, A

LABEL_SERVICE_NAME = "kubernetes.io/service-name"
DEFAULT_TTL = 5
REVERSE_ZONE = "in-addr.arpa"

Key = tuple[str, str]  # (namespace, name)


@dataclass
class Answer:
    rcode: int = RCODE.NOERROR
    answers: list[RR] = field(default_factory=list)
    authority: list[RR] = field(default_factory=list)
    additional: list[RR] = field(default_factory=list)
    authoritative: bool = True
    #: Not ours: forward it if an upstream is configured, else NXDOMAIN.
    forward: bool = False


def _key(obj: dict[str, Any]) -> Key:
    meta = obj.get("metadata") or {}
    return meta.get("namespace") or "default", meta.get("name") or ""


def dashed(ip: str) -> str:
    return ip.replace(".", "-").replace(":", "-")


def _ipv4(value: str) -> bool:
    try:
        return isinstance(ipaddress.ip_address(value), ipaddress.IPv4Address)
    except ValueError:
        return False


@dataclass(frozen=True)
class EndpointRecord:
    ip: str
    hostname: str  # the DNS label: the endpoint's hostname, else the dashed IP
    ready: bool


class ClusterDNS:
    """The records of one cluster domain, kept current by on_service/on_endpointslice."""

    def __init__(self, domain: str = "cluster.local", ttl: int = DEFAULT_TTL) -> None:
        self.domain = domain.strip(".").lower()
        self.ttl = ttl
        self.services: dict[Key, dict[str, Any]] = {}
        self.slices: dict[Key, dict[str, dict[str, Any]]] = {}  # service → slice name → slice
        self._reverse: dict[str, list[str]] | None = None

    # -- feeding ----------------------------------------------------------------------------
    def on_service(self, old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
        if new is None:
            if old is not None:
                self.services.pop(_key(old), None)
        else:
            self.services[_key(new)] = new
        self._reverse = None

    def on_endpointslice(self, old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
        for obj, present in ((old, False), (new, True)):
            if obj is None:
                continue
            meta = obj.get("metadata") or {}
            service = (meta.get("labels") or {}).get(LABEL_SERVICE_NAME)
            if not service:
                continue
            key = (meta.get("namespace") or "default", service)
            if present:
                self.slices.setdefault(key, {})[meta.get("name") or ""] = obj
            elif key in self.slices:
                self.slices[key].pop(meta.get("name") or "", None)
                if not self.slices[key]:
                    del self.slices[key]
        self._reverse = None

    # -- views ------------------------------------------------------------------------------
    def endpoints(self, key: Key, include_not_ready: bool = False) -> list[EndpointRecord]:
        """IPv4 endpoints of a service, de-duplicated, in a stable order."""
        found: dict[str, EndpointRecord] = {}
        for slice_name in sorted(self.slices.get(key, {})):
            slc = self.slices[key][slice_name]
            if (slc.get("addressType") or "IPv4") != "IPv4":
                continue
            for ep in slc.get("endpoints") or []:
                ready = (ep.get("conditions") or {}).get("ready") is not False
                if not ready and not include_not_ready:
                    continue
                for ip in ep.get("addresses") or []:
                    if _ipv4(ip) and ip not in found:
                        found[ip] = EndpointRecord(ip, (ep.get("hostname") or dashed(ip)).lower(), ready)
        return sorted(found.values(), key=lambda e: ipaddress.ip_address(e.ip))

    def _ports(self, key: Key) -> list[tuple[str, str, int]]:
        """(name, protocol, port) of a service's named ports. Headless services take the
        endpoint ports (the slice's), as CoreDNS does."""
        svc = self.services[key]
        spec = svc.get("spec") or {}
        if _headless(svc):
            ports: dict[tuple[str, str], int] = {}
            for slc in self.slices.get(key, {}).values():
                for p in slc.get("ports") or []:
                    if p.get("name") and p.get("port"):
                        ports.setdefault((p["name"], (p.get("protocol") or "TCP").upper()), int(p["port"]))
            return [(n, proto, port) for (n, proto), port in sorted(ports.items())]
        return [
            (p["name"], (p.get("protocol") or "TCP").upper(), int(p.get("port") or 0))
            for p in spec.get("ports") or []
            if p.get("name")
        ]

    def reverse_index(self) -> dict[str, list[str]]:
        if self._reverse is None:
            rev: dict[str, list[str]] = {}
            for (ns, name), svc in self.services.items():
                fqdn = f"{name}.{ns}.svc.{self.domain}."
                for ip in _cluster_ips(svc):
                    rev.setdefault(ip, []).append(fqdn)
            for (ns, name), _slices in self.slices.items():
                for ep in self.endpoints((ns, name), include_not_ready=False):
                    rev.setdefault(ep.ip, []).append(f"{ep.hostname}.{name}.{ns}.svc.{self.domain}.")
            self._reverse = rev
        return self._reverse

    # -- answering --------------------------------------------------------------------------
    def in_zone(self, qname: str) -> bool:
        name = qname.strip(".").lower()
        return name == self.domain or name.endswith("." + self.domain)

    def soa(self) -> RR:
        return RR(self.domain + ".", QTYPE.SOA, ttl=self.ttl, rdata=SOA(
            f"ns.dns.{self.domain}.", f"hostmaster.{self.domain}.", (1, 7200, 1800, 86400, self.ttl)))

    def resolve(self, qname: str, qtype: int) -> Answer:
        name = qname.strip(".").lower()
        if name.endswith("." + REVERSE_ZONE):
            return self._reverse_lookup(name, qtype)
        if not self.in_zone(name):
            return Answer(RCODE.NXDOMAIN, authoritative=False, forward=True)
        rel = name[: -len(self.domain)].strip(".")
        labels = rel.split(".") if rel else []
        answer = self._lookup(labels, qname, qtype)
        if answer.rcode == RCODE.NXDOMAIN or not answer.answers:
            answer.authority.append(self.soa())
        return answer

    def _nodata(self) -> Answer:
        return Answer()

    def _nx(self) -> Answer:
        return Answer(RCODE.NXDOMAIN)

    def _lookup(self, labels: list[str], qname: str, qtype: int) -> Answer:
        owner = qname if qname.endswith(".") else qname + "."
        if not labels:  # the zone apex
            if qtype == QTYPE.SOA:
                return Answer(answers=[self.soa()])
            if qtype == QTYPE.NS:
                return Answer(answers=[RR(owner, QTYPE.NS, ttl=self.ttl, rdata=NS(f"ns.dns.{self.domain}."))])
            return self._nodata()
        kind = labels[-1]
        rest = labels[:-1]
        if kind == "svc":
            return self._service_lookup(rest, owner, qtype)
        if kind == "pod":
            return self._pod_lookup(rest, owner, qtype)
        return self._nx()

    def _pod_lookup(self, rest: list[str], owner: str, qtype: int) -> Answer:
        if len(rest) == 1:  # <ns>.pod.<zone>
            return self._nodata()
        if len(rest) != 2:
            return self._nx()
        ip = rest[0].replace("-", ".")
        if not _ipv4(ip) or rest[0].count("-") != 3:
            return self._nx()
        if qtype in (QTYPE.A, QTYPE.ANY):
            return Answer(answers=[RR(owner, QTYPE.A, ttl=self.ttl, rdata=A(ip))])
        return self._nodata()

    def _namespace_known(self, ns: str) -> bool:
        return any(k[0] == ns for k in self.services)

    def _service_lookup(self, rest: list[str], owner: str, qtype: int) -> Answer:
        # rest, from the left: [...endpoint or _port, _proto], service, namespace
        if not rest:
            return self._nodata()  # svc.<zone>
        ns = rest[-1]
        if len(rest) == 1:
            return self._nodata() if self._namespace_known(ns) else self._nx()
        key = (ns, rest[-2])
        svc = self.services.get(key)
        if svc is None:
            return self._nx()
        prefix = rest[:-2]
        if not prefix:
            return self._service_records(key, svc, owner, qtype)
        if len(prefix) == 2 and prefix[0].startswith("_") and prefix[1].startswith("_"):
            return self._srv_records(key, svc, owner, qtype, prefix[0][1:], prefix[1][1:].upper())
        if len(prefix) == 1 and _headless(svc):
            for ep in self.endpoints(key, _publish_not_ready(svc)):
                if ep.hostname == prefix[0]:
                    if qtype in (QTYPE.A, QTYPE.ANY):
                        return Answer(answers=[RR(owner, QTYPE.A, ttl=self.ttl, rdata=A(ep.ip))])
                    return self._nodata()
        return self._nx()

    def _service_records(self, key: Key, svc: dict[str, Any], owner: str, qtype: int) -> Answer:
        spec = svc.get("spec") or {}
        if spec.get("type") == "ExternalName":
            target = (spec.get("externalName") or "").strip(".")
            if not target:
                return self._nx()
            return Answer(answers=[RR(owner, QTYPE.CNAME, ttl=self.ttl, rdata=CNAME(target + "."))])
        if qtype == QTYPE.SRV:
            return self._srv_records(key, svc, owner, qtype, None, None)
        if qtype not in (QTYPE.A, QTYPE.AAAA, QTYPE.ANY):
            return self._nodata()
        if _headless(svc):
            ips = [ep.ip for ep in self.endpoints(key, _publish_not_ready(svc))]
        else:
            ips = _cluster_ips(svc)
        records = []
        if qtype in (QTYPE.A, QTYPE.ANY):
            records = [RR(owner, QTYPE.A, ttl=self.ttl, rdata=A(ip)) for ip in ips]
        if qtype in (QTYPE.AAAA, QTYPE.ANY):
            records += [RR(owner, QTYPE.AAAA, ttl=self.ttl, rdata=AAAA(ip)) for ip in _cluster_ips(svc, v6=True)]
        return Answer(answers=records)

    def _srv_records(self, key: Key, svc: dict[str, Any], owner: str, qtype: int,
                     port_name: str | None, proto: str | None) -> Answer:
        ports = [p for p in self._ports(key) if port_name is None or (p[0] == port_name and p[1] == proto)]
        if not ports:
            return self._nx() if port_name is not None else self._nodata()
        if qtype not in (QTYPE.SRV, QTYPE.ANY):
            return self._nodata()
        ns, name = key
        base = f"{name}.{ns}.svc.{self.domain}."
        targets: list[tuple[int, str, str | None]] = []  # (port, target, ip for additional A)
        if _headless(svc):
            eps = self.endpoints(key, _publish_not_ready(svc))
            for _, _, port in ports:
                targets += [(port, f"{ep.hostname}.{base}", ep.ip) for ep in eps]
        else:
            targets = [(port, base, None) for _, _, port in ports]
        # CoreDNS: weights of one priority share 100 (100 / count each, rounded down).
        weight = math.floor(100 / len(targets)) if targets else 0
        answer = Answer()
        seen_additional: set[str] = set()
        for port, target, ip in targets:
            answer.answers.append(RR(owner, QTYPE.SRV, ttl=self.ttl, rdata=SRV(0, weight, port, target)))
            if ip is not None and target not in seen_additional:
                seen_additional.add(target)
                answer.additional.append(RR(target, QTYPE.A, ttl=self.ttl, rdata=A(ip)))
        if not _headless(svc):
            answer.additional += [RR(base, QTYPE.A, ttl=self.ttl, rdata=A(ip)) for ip in _cluster_ips(svc)]
        return answer

    def _reverse_lookup(self, name: str, qtype: int) -> Answer:
        parts = name[: -len(REVERSE_ZONE) - 1].split(".")
        if len(parts) != 4:
            return Answer(RCODE.NXDOMAIN, authoritative=False, forward=True)
        ip = ".".join(reversed(parts))
        names = self.reverse_index().get(ip) if _ipv4(ip) else None
        if not names:
            # Not a cluster address: someone else's reverse zone (CoreDNS falls through).
            return Answer(RCODE.NXDOMAIN, authoritative=False, forward=True)
        if qtype not in (QTYPE.PTR, QTYPE.ANY):
            return Answer()
        return Answer(answers=[RR(name + ".", QTYPE.PTR, ttl=self.ttl, rdata=PTR(n)) for n in names])


def _headless(svc: dict[str, Any]) -> bool:
    return ((svc.get("spec") or {}).get("clusterIP") or "") == "None"


def _publish_not_ready(svc: dict[str, Any]) -> bool:
    return bool((svc.get("spec") or {}).get("publishNotReadyAddresses"))


def _cluster_ips(svc: dict[str, Any], v6: bool = False) -> list[str]:
    spec = svc.get("spec") or {}
    candidates: Iterable[str] = spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else [])
    out = []
    for ip in candidates:
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            continue
        if (addr.version == 6) == v6 and ip not in out:
            out.append(ip)
    return out
