"""The DNS daemon: informers on Services and EndpointSlices feed ClusterDNS; the server
answers on the configured addresses; the kube-dns EndpointSlice is published once the
informers are synced and withdrawn on shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

from client import APIClient, SharedInformerFactory, deleted_object, is_not_found, load_config
from client.daemon import HealthServer, new_registry
from dns.addon import NAMESPACE, EndpointPublisher, gateway_of
from dns.records import ClusterDNS
from dns.server import DNSHandler, DNSMetrics, DNSServer, parse_hostport

log = logging.getLogger("dns")

DEFAULT_HEALTH_ADDRESS = "127.0.0.1:9153"  # CoreDNS's metrics port


@dataclass
class DNSOptions:
    kubeconfig: str | None = None
    cluster_domain: str = "cluster.local"
    bind_addresses: list[str] = field(default_factory=list)
    port: int = 53
    upstreams: list[str] = field(default_factory=list)
    ttl: int = 5
    # "" = do not publish; "auto" = the gateway of this node's podCIDR; else an IPv4 address.
    endpoint_address: str = ""
    node_name: str = ""
    namespace: str = NAMESPACE
    health_bind_address: str = DEFAULT_HEALTH_ADDRESS


async def node_gateway(api: APIClient, node_name: str, stop: asyncio.Event, poll: float = 2.0) -> str | None:
    """Wait for the node's podCIDR and return its gateway address (None if stopped first)."""
    nodes = api.resource("v1", "nodes")
    while not stop.is_set():
        try:
            node = await nodes.get(node_name)
            cidr = (node.get("spec") or {}).get("podCIDR")
            if cidr:
                return gateway_of(cidr)
            log.info("node %s has no podCIDR yet", node_name)
        except Exception as exc:
            if not is_not_found(exc):
                raise
            log.info("node %s not registered yet", node_name)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), poll)
    return None


async def run_dns(opts: DNSOptions, stop: asyncio.Event) -> None:
    if opts.endpoint_address and opts.endpoint_address != "auto" and not opts.node_name:
        raise SystemExit("dns: --endpoint-address needs --node-name")
    config = load_config(opts.kubeconfig, qps=20, burst=40, user_agent="minik8s-dns")
    registry = new_registry()
    records = ClusterDNS(opts.cluster_domain, opts.ttl)
    handler = DNSHandler(records, [parse_hostport(u) for u in opts.upstreams], DNSMetrics(registry))
    async with APIClient(config) as api:
        factory = SharedInformerFactory(api)
        services = factory.informer("v1", "services")
        slices = factory.informer("discovery.k8s.io/v1", "endpointslices")
        services.add_handler(lambda o: records.on_service(None, o), records.on_service,
                             lambda o: records.on_service(deleted_object(o), None))
        slices.add_handler(lambda o: records.on_endpointslice(None, o), records.on_endpointslice,
                           lambda o: records.on_endpointslice(deleted_object(o), None))
        factory.start()
        host, _, port = opts.health_bind_address.rpartition(":")
        health = HealthServer(int(port), registry, bind=host or "127.0.0.1")
        synced = False
        health.add_readiness("informers-synced", lambda: synced)
        await health.start()
        server: DNSServer | None = None
        publisher: EndpointPublisher | None = None
        try:
            address = opts.endpoint_address
            if address == "auto":
                address = await node_gateway(api, opts.node_name, stop) or ""
                if stop.is_set():
                    return
            listen = list(opts.bind_addresses)
            if address and address not in listen and "0.0.0.0" not in listen:
                listen.append(address)
            server = DNSServer(handler, listen or ["127.0.0.1"], opts.port)
            await server.start()
            await factory.wait_for_cache_sync()
            synced = True
            if address:
                publisher = EndpointPublisher(api, opts.node_name, address, opts.port, opts.namespace)
                await publisher.publish()
                log.info("published %s:%d as the %s endpoint", address, opts.port, publisher.name)
            await stop.wait()
        finally:
            if publisher is not None:
                await publisher.withdraw()
            if server is not None:
                await server.stop()
            await factory.stop()
            await health.stop()
