"""Stale UDP conntrack cleanup after a sync (upstream pkg/proxy/conntrack/cleanup.go).

UDP has no connection end, so a flow keeps its DNAT target until its conntrack entry expires:
when an endpoint goes away its flows must be deleted, and when a service gets its first
endpoint any entry created while it had none (which blackholes traffic) must go too.
"""

from __future__ import annotations

from kube_proxy.commands import Conntrack
from kube_proxy.model import ServicePortInfo, SvcPortKey, UpdateResult


async def clean_stale_entries(
    ct: Conntrack, services: dict[SvcPortKey, ServicePortInfo], result: UpdateResult
) -> None:
    # Service side: deleted UDP services, and UDP services that just became active.
    service_ips = set(result.deleted_udp_cluster_ips)
    node_ports: set[int] = set()
    for key in result.newly_active_udp_services:
        svc = services.get(key)
        if svc is None:
            continue
        service_ips.add(svc.cluster_ip)
        service_ips.update(svc.external_ips)
        service_ips.update(svc.load_balancer_ips)
        if svc.protocol == "UDP" and svc.node_port:
            node_ports.add(svc.node_port)
    for ip in sorted(service_ips):
        await ct.clear_entries_for_ip(ip, "udp")
    for port in sorted(node_ports):
        await ct.clear_entries_for_port(port, "udp")

    # Endpoint side: flows still DNATed to an endpoint that no longer gets traffic.
    for key, addr in result.deleted_udp_endpoints:
        svc = services.get(key)
        if svc is None:
            continue
        endpoint_ip = addr.rsplit(":", 1)[0]
        if svc.node_port:
            await ct.clear_entries_for_port_nat(endpoint_ip, svc.node_port, "udp")
        await ct.clear_entries_for_nat(svc.cluster_ip, endpoint_ip, "udp")
        for ip in (*svc.external_ips, *svc.load_balancer_ips):
            await ct.clear_entries_for_nat(ip, endpoint_ip, "udp")
