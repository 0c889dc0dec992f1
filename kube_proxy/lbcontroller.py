"""A local stand-in for cloud-controller-manager's service controller: gives every Service of
type LoadBalancer (with no spec.loadBalancerClass) an address from a configured pool and
writes it to status.loadBalancer.ingress; takes it back when the Service is deleted or stops
being a LoadBalancer.

    python -m kube_proxy.lbcontroller --kubeconfig lb-controller.kubeconfig --lb-pool 198.18.255.0/24

The default pool, 198.18.255.0/24, lies in 198.18.0.0/15 (RFC 2544, benchmarking), which is
never routed on the internet; kube-proxy routes the pool to its local device and guards it
(`--lb-pool` there too), so load-balancer addresses only ever exist on this machine.

Allocations live in Service statuses only (no extra state): after a restart the controller
re-reads them, and when two Services claim one address the older Service keeps it.
It runs as its own process with the service controller's identity
(system:serviceaccount:kube-system:service-controller, bound by the bootstrap policy to
system:controller:service-controller: read services, update services/status, events).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
from collections.abc import Sequence
from typing import Any

import click

from apimachinery.meta import key_of
from client import (
    NORMAL,
    WARNING,
    APIClient,
    EventRecorder,
    SharedInformerFactory,
    WorkQueue,
    deleted_object,
    is_conflict,
    is_not_found,
    load_config,
    run_workers,
)
from client.daemon import HealthServer, new_registry

log = logging.getLogger("lb-controller")

DEFAULT_POOL = "198.18.255.0/24"
DEFAULT_HEALTHZ_PORT = 10258  # cloud-controller-manager's port upstream


class PoolExhausted(RuntimeError):
    pass


class AddressPool:
    """Usable IPv4 addresses of some CIDRs (network and broadcast addresses excluded), with
    an owner (a "namespace/name" key) per allocated address."""

    def __init__(self, cidrs: Sequence[str]) -> None:
        self.networks = [ipaddress.IPv4Network(c, strict=False) for c in cidrs]
        if not self.networks:
            raise ValueError("an address pool needs at least one CIDR")
        self.owners: dict[str, str] = {}  # ip -> key
        self.by_key: dict[str, str] = {}  # key -> ip

    def contains(self, ip: str) -> bool:
        try:
            addr = ipaddress.IPv4Address(ip)
        except ValueError:
            return False
        for net in self.networks:
            if addr in net:
                if net.prefixlen < 31 and addr in (net.network_address, net.broadcast_address):
                    return False
                return True
        return False

    def _candidates(self):
        for net in self.networks:
            yield from (net.hosts() if net.prefixlen < 31 else iter(net))

    def claim(self, key: str, ip: str) -> bool:
        """Record that `key` holds `ip` (True), unless someone else does or it is outside the pool."""
        if not self.contains(ip) or self.owners.get(ip, key) != key:
            return False
        self.release(key)
        self.owners[ip] = key
        self.by_key[key] = ip
        return True

    def allocate(self, key: str, preferred: str | None = None) -> str:
        """`key`'s address: the one it holds, else `preferred` if free, else the lowest free one."""
        if key in self.by_key:
            return self.by_key[key]
        if preferred and self.claim(key, preferred):
            return preferred
        for addr in self._candidates():
            ip = str(addr)
            if ip not in self.owners:
                self.claim(key, ip)
                return ip
        raise PoolExhausted(f"no free address in {', '.join(map(str, self.networks))}")

    def release(self, key: str) -> str | None:
        ip = self.by_key.pop(key, None)
        if ip is not None:
            self.owners.pop(ip, None)
        return ip

    def holder(self, key: str) -> str | None:
        return self.by_key.get(key)


def wants_load_balancer(svc: dict[str, Any], load_balancer_class: str | None = None) -> bool:
    """A Service this controller serves: type LoadBalancer with our class (upstream: no class)."""
    spec = svc.get("spec") or {}
    return spec.get("type") == "LoadBalancer" and spec.get("loadBalancerClass") == load_balancer_class


def ingress_ips(svc: dict[str, Any]) -> list[str]:
    ingress = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    return [i["ip"] for i in ingress if i.get("ip")]


def desired_ingress(ip: str | None) -> dict[str, Any]:
    return {"ingress": [{"ip": ip, "ipMode": "VIP"}]} if ip else {}


class LoadBalancerController:
    def __init__(self, api: APIClient, pool: AddressPool, load_balancer_class: str | None = None,
                 workers: int = 2) -> None:
        self.api = api
        self.pool = pool
        self.load_balancer_class = load_balancer_class
        self.workers = workers
        self.services = api.resource("v1", "services")
        self.factory = SharedInformerFactory(api)
        self.informer = self.factory.informer("v1", "services")
        self.queue: WorkQueue[str] = WorkQueue(name="lb-controller")
        self.recorder = EventRecorder(api, "service-controller")
        self.synced = False

    def _enqueue(self, obj: dict[str, Any]) -> None:
        self.queue.add(key_of(deleted_object(obj)))

    def _rebuild(self) -> None:
        """Claim the addresses Services already show, oldest Service first."""
        lbs = [s for s in self.informer.store.list() if wants_load_balancer(s, self.load_balancer_class)]
        lbs.sort(key=lambda s: ((s.get("metadata") or {}).get("creationTimestamp") or "", key_of(s)))
        for svc in lbs:
            for ip in ingress_ips(svc):
                if self.pool.claim(key_of(svc), ip):
                    break

    async def sync(self, key: str) -> None:
        svc = self.informer.store.get(key)
        if svc is None or not wants_load_balancer(svc, self.load_balancer_class):
            released = self.pool.release(key)
            if svc is not None and ingress_ips(svc) and self._ours(svc):
                # No longer a LoadBalancer (of ours): its address must not stay advertised.
                await self._write_status(svc, None)
                self.recorder.event(svc, NORMAL, "DeletedLoadBalancer", "Deleted load balancer")
            if released is not None:
                log.info("released %s from %s", released, key)
            return
        current = ingress_ips(svc)
        preferred = (svc.get("spec") or {}).get("loadBalancerIP") or (current[0] if current else None)
        try:
            ip = self.pool.allocate(key, preferred)
        except PoolExhausted as exc:
            self.recorder.event(svc, WARNING, "SyncLoadBalancerFailed", f"Error syncing load balancer: {exc}")
            raise
        if (svc.get("status") or {}).get("loadBalancer") != desired_ingress(ip):
            self.recorder.event(svc, NORMAL, "EnsuringLoadBalancer", "Ensuring load balancer")
            await self._write_status(svc, ip)
            self.recorder.event(svc, NORMAL, "EnsuredLoadBalancer", f"Ensured load balancer with IP {ip}")

    def _ours(self, svc: dict[str, Any]) -> bool:
        # Only clear statuses this controller could have written (addresses from its pool).
        return all(self.pool.contains(ip) for ip in ingress_ips(svc))

    async def _write_status(self, svc: dict[str, Any], ip: str | None) -> None:
        updated = {**svc, "status": {**(svc.get("status") or {}), "loadBalancer": desired_ingress(ip)}}
        try:
            await self.services.update_status(updated)
        except Exception as exc:
            if is_not_found(exc):
                return  # gone meanwhile: its delete event releases the address
            if is_conflict(exc):
                log.info("conflict writing %s status; retrying with the newer version", key_of(svc))
            raise
        log.info("%s: load balancer ingress %s", key_of(svc), ip or "cleared")

    async def run(self, stop: asyncio.Event) -> None:
        self.informer.add_handler(self._enqueue, lambda _old, new: self._enqueue(new), self._enqueue)
        self.factory.start()
        await self.informer.wait_synced()
        self._rebuild()
        self.synced = True
        workers = asyncio.create_task(run_workers(self.queue, self.sync, self.workers, "lb-controller"))
        try:
            await stop.wait()
        finally:
            self.queue.shutdown()
            workers.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await workers
            await self.factory.stop()
            await self.recorder.close()


async def run_controller(kubeconfig: str | None, pools: Sequence[str], stop: asyncio.Event,
                         healthz_bind_address: str = f"127.0.0.1:{DEFAULT_HEALTHZ_PORT}",
                         load_balancer_class: str | None = None) -> None:
    pool = AddressPool(pools)
    config = load_config(kubeconfig, qps=20, burst=40, user_agent="lb-controller/minik8s")
    async with APIClient(config) as api:
        controller = LoadBalancerController(api, pool, load_balancer_class)
        host, _, port = healthz_bind_address.rpartition(":")
        health = HealthServer(int(port), new_registry(), bind=host or "127.0.0.1")
        health.add_readiness("informer-synced", lambda: controller.synced)
        await health.start()
        try:
            await controller.run(stop)
        finally:
            await health.stop()


def _split_list(values: tuple[str, ...]) -> list[str]:
    return [v.strip() for value in values for v in value.split(",") if v.strip()]


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--kubeconfig", type=click.Path(dir_okay=False),
              help="Kubeconfig of the service controller's identity (see kube_proxy.launch).")
@click.option("--lb-pool", multiple=True, default=[DEFAULT_POOL], show_default=True,
              help="CIDR(s) LoadBalancer addresses are taken from (repeat or comma-separate).")
@click.option("--load-balancer-class", default=None,
              help="Serve Services with this spec.loadBalancerClass instead of those with none.")
@click.option("--healthz-bind-address", default=f"127.0.0.1:{DEFAULT_HEALTHZ_PORT}", show_default=True)
@click.option("-v", "--log-level", default="info", type=click.Choice(["debug", "info", "warning", "error"]))
def main(kubeconfig: str | None, lb_pool: tuple[str, ...], load_balancer_class: str | None,
         healthz_bind_address: str, log_level: str) -> None:
    """LoadBalancer address controller (a local cloud-controller-manager service controller)."""
    pools = _split_list(lb_pool)
    try:
        AddressPool(pools)
    except ValueError as exc:
        raise click.UsageError(f"--lb-pool: {exc}") from None
    from client.daemon import run_daemon

    run_daemon(
        "lb-controller",
        lambda stop: run_controller(kubeconfig, pools, stop, healthz_bind_address, load_balancer_class),
        log_level,
    )


if __name__ == "__main__":
    main()


__all__ = ["AddressPool", "LoadBalancerController", "PoolExhausted", "run_controller"]
