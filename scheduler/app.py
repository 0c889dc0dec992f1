"""The scheduler daemon: client, informers, health/metrics server, leader election, the loop.

As upstream's kube-scheduler: informers start and sync before the leader election, so a
standby replica keeps a warm cache and schedules at once when it takes over.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import uuid
from dataclasses import dataclass, field
from typing import Any

from client import APIClient, APIConnectionError, ApiError, SharedInformerFactory, is_not_found, load_config
from client.daemon import HealthServer, collect_periodically, new_registry, run_with_leader_election, tune_gc
from scheduler.eventhandlers import EventHandlers
from scheduler.metrics import SchedulerMetrics
from scheduler.scheduler import Scheduler, SchedulerConfig, ShardedEvents

log = logging.getLogger("scheduler.app")

USER_AGENT = "minik8s-scheduler/0.1"
POD_FIELD_SELECTOR = "status.phase!=Succeeded,status.phase!=Failed"

# informer name → (apiVersion, plural, required)
INFORMERS: dict[str, tuple[str, str, bool]] = {
    "pods": ("v1", "pods", True),
    "nodes": ("v1", "nodes", True),
    "namespaces": ("v1", "namespaces", True),
    "services": ("v1", "services", False),
    "replicationcontrollers": ("v1", "replicationcontrollers", False),
    "replicasets": ("apps/v1", "replicasets", False),
    "statefulsets": ("apps/v1", "statefulsets", False),
    "pdbs": ("policy/v1", "poddisruptionbudgets", False),
    "pvcs": ("v1", "persistentvolumeclaims", False),
    "pvs": ("v1", "persistentvolumes", False),
    "storageclasses": ("storage.k8s.io/v1", "storageclasses", False),
}


@dataclass
class Options:
    kubeconfig: str | None = None
    kube_api_qps: float = 50.0
    kube_api_burst: int = 100
    leader_elect: bool = True
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0
    lease_name: str = "kube-scheduler"
    lease_namespace: str = "kube-system"
    bind_address: str = "127.0.0.1"
    port: int = 10259
    identity: str = ""
    config: SchedulerConfig = field(default_factory=SchedulerConfig)


def default_identity() -> str:
    """hostname_uuid, as upstream's leader-election identity."""
    return f"{socket.gethostname()}_{uuid.uuid4()}"


async def served(api: APIClient, api_version: str, plural: str) -> bool:
    """Whether the apiserver serves the resource: only a 404 from discovery says no. Any other
    answer (a 403 before the RBAC bootstrap policy is in place, a 5xx, no connection) counts as
    served: its informer retries the list until it is allowed, rather than the scheduler running
    for good without, say, the PersistentVolumeClaims its VolumeBinding plugin needs."""
    try:
        return plural in await api.discovery.resources(api_version)
    except ApiError as e:
        return not is_not_found(e)
    except APIConnectionError:
        return True


async def run(opts: Options, stop: asyncio.Event) -> None:
    identity = opts.identity or default_identity()
    registry = new_registry()
    metrics = SchedulerMetrics(registry)
    sched = Scheduler(opts.config, metrics)
    cfg = load_config(opts.kubeconfig, qps=opts.kube_api_qps, burst=opts.kube_api_burst, user_agent=USER_AGENT,
                      max_connections=64)
    health = HealthServer(opts.port, registry, bind=opts.bind_address) if opts.port > 0 else None
    leading = {"now": False}
    registry.gauge("leader_election_master_status", "Gauge of if the reporting system is master of the relevant "
                   "lease, 0 indicates backup, 1 indicates master.", fn=lambda: 1.0 if leading["now"] else 0.0)
    async with APIClient(cfg) as api:
        factory = SharedInformerFactory(api)
        informers: dict[str, Any] = {}
        for name, (version, plural, required) in INFORMERS.items():
            if required or await served(api, version, plural):
                selector = POD_FIELD_SELECTOR if name == "pods" else None
                informers[name] = factory.informer(version, plural, field_selector=selector)
        EventHandlers(sched).register(informers)
        events = {n: ShardedEvents(api, n, identity, opts.config.event_writers, opts.config.event_queue_size)
                  for n in sched.profiles}
        sched.attach(api, {n: inf.store for n, inf in informers.items()}, events)
        if health is not None:
            health.add_readiness("informers-synced", lambda: all(i.has_synced for i in informers.values()))
            await health.start()
        factory.start()
        try:
            synced = asyncio.create_task(factory.wait_for_cache_sync())
            stopper = asyncio.create_task(stop.wait())
            await asyncio.wait({synced, stopper}, return_when=asyncio.FIRST_COMPLETED)
            stopper.cancel()
            if stop.is_set():
                synced.cancel()
                return
            log.info("caches synced: %d nodes, %d pods; identity %s", sched.cache.num_nodes, sched.cache.num_pods,
                     identity)
            tune_gc()
            collector = asyncio.create_task(collect_periodically(stop))

            async def work(leading_stop: asyncio.Event) -> None:
                leading["now"] = True
                try:
                    await sched.run(leading_stop)
                finally:
                    leading["now"] = False
                    await sched.drain(5.0)

            try:
                if opts.leader_elect:
                    await run_with_leader_election(api, opts.lease_name, identity, work, stop, opts.lease_namespace,
                                                   opts.lease_duration, opts.renew_deadline, opts.retry_period)
                else:
                    await work(stop)
            finally:
                collector.cancel()
        finally:
            for sink in events.values():
                with contextlib.suppress(Exception):
                    await sink.close(2.0)
            await factory.stop()
            if health is not None:
                await health.stop()
