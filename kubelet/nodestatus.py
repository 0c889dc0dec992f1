"""The node: registration (and its CSINode), status (capacity, allocatable, addresses, nodeInfo,
conditions, images) and the Lease heartbeat in kube-node-lease.

Status is computed every 10 s and PATCHed when it changed or when 5 minutes passed since the
last report (upstream's nodeStatusUpdateFrequency / nodeStatusReportFrequency); the Lease is
renewed every 10 s with a 40 s duration.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from apimachinery.meta import now, now_micro
from apimachinery.quantity import format_quantity
from client import APIClient, is_already_exists, is_conflict, is_not_found
from kubelet import csinode
from kubelet.config import KubeletConfig
from kubelet.machine import MachineInfo, fs_stats

log = logging.getLogger("kubelet.node")

KUBELET_VERSION = "v1.31.0-minik8s"
LEASE_NAMESPACE = "kube-node-lease"
MAX_IMAGES_IN_STATUS = 50

CONDITION_MESSAGES = {
    "MemoryPressure": (("KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
                       ("KubeletHasInsufficientMemory", "kubelet has insufficient memory available")),
    "DiskPressure": (("KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                     ("KubeletHasDiskPressure", "kubelet has disk pressure")),
    "PIDPressure": (("KubeletHasSufficientPID", "kubelet has sufficient PID available"),
                    ("KubeletHasInsufficientPID", "kubelet has insufficient PID available")),
}


def _q(name: str, value: int) -> str:
    if name == "cpu":
        return format_quantity(f"{value}m") if value % 1000 else str(value // 1000)
    return format_quantity(value, "BinarySI" if name in ("memory", "ephemeral-storage") else "DecimalSI")


def capacity(machine: MachineInfo, cfg: KubeletConfig) -> dict[str, int]:
    disk = fs_stats(cfg.root).capacity
    return {
        "cpu": machine.cpus * 1000,
        "memory": machine.memory_bytes,
        "pods": cfg.max_pods,
        "ephemeral-storage": disk,
        "hugepages-1Gi": 0,
        "hugepages-2Mi": 0,
    }


def allocatable(cap: dict[str, int], cfg: KubeletConfig) -> dict[str, int]:
    out = dict(cap)
    for reserved in (cfg.kube_reserved, cfg.system_reserved):
        for name, amount in reserved.items():
            if name in out:
                out[name] = max(0, out[name] - amount)
    for t in cfg.eviction_hard:
        if t.signal == "memory.available":
            out["memory"] = max(0, out["memory"] - t.value(cap["memory"]))
        elif t.signal == "nodefs.available":
            out["ephemeral-storage"] = max(0, out["ephemeral-storage"] - t.value(cap["ephemeral-storage"]))
    return out


def format_resources(values: dict[str, int]) -> dict[str, str]:
    return {k: _q(k, v) for k, v in values.items()}


@dataclass
class RuntimeHealth:
    runtime_ready: bool = False
    network_ready: bool = False
    message: str = ""


@dataclass
class NodeConditions:
    """What the kubelet currently believes; the eviction manager sets the pressures."""

    memory_pressure: bool = False
    disk_pressure: bool = False
    pid_pressure: bool = False
    runtime: RuntimeHealth = field(default_factory=RuntimeHealth)
    pleg_healthy: bool = True


class _AlreadyThere(Exception):
    pass


class NodeManager:
    def __init__(
        self,
        api: APIClient,
        cfg: KubeletConfig,
        machine: MachineInfo,
        node_ip: str,
        runtime_version: Callable[[], str],
        images: Callable[[], list[dict[str, Any]]],
        conditions: NodeConditions,
    ) -> None:
        self.api = api
        self.cfg = cfg
        self.machine = machine
        self.node_ip = node_ip
        self.runtime_version = runtime_version
        self.images = images
        self.conditions = conditions
        self.nodes = api.resource("v1", "nodes")
        self.leases = api.resource("coordination.k8s.io/v1", "leases")
        self.node: dict[str, Any] | None = None
        self.capacity = capacity(machine, cfg)
        self.allocatable = allocatable(self.capacity, cfg)
        self._last_report = 0.0
        self._last_reported: dict[str, Any] | None = None
        self._transitions: dict[str, tuple[str, str]] = {}  # type -> (status, lastTransitionTime)
        self.registered = asyncio.Event()
        self.on_node: Callable[[dict[str, Any]], None] | None = None
        self.status_updates = 0
        self.lease_renewals = 0
        self.csinode_task: asyncio.Task[None] | None = None

    @property
    def name(self) -> str:
        return self.cfg.node_name

    def labels(self) -> dict[str, str]:
        labels = {
            "kubernetes.io/hostname": self.name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": self.machine.architecture,
            "beta.kubernetes.io/os": "linux",
            "beta.kubernetes.io/arch": self.machine.architecture,
        }
        labels.update(self.cfg.node_labels)
        return labels

    # -- status ---------------------------------------------------------------------------------

    def _condition(self, ctype: str, value: bool, reason: str, message: str, heartbeat: str) -> dict[str, Any]:
        status = "True" if value else "False"
        previous = self._transitions.get(ctype)
        if previous is None or previous[0] != status:
            previous = (status, heartbeat)
            self._transitions[ctype] = previous
        return {
            "type": ctype,
            "status": status,
            "lastHeartbeatTime": heartbeat,
            "lastTransitionTime": previous[1],
            "reason": reason,
            "message": message,
        }

    def status(self) -> dict[str, Any]:
        heartbeat = now()
        c = self.conditions
        conditions = []
        for ctype, value in (("MemoryPressure", c.memory_pressure), ("DiskPressure", c.disk_pressure),
                             ("PIDPressure", c.pid_pressure)):
            reason, message = CONDITION_MESSAGES[ctype][1 if value else 0]
            conditions.append(self._condition(ctype, value, reason, message, heartbeat))
        problems = []
        if not c.runtime.runtime_ready:
            problems.append(f"container runtime is down: {c.runtime.message}".strip(": "))
        if not c.runtime.network_ready:
            problems.append("container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady "
                            "message:Network plugin returns error: cni plugin not initialized")
        if not c.pleg_healthy:
            problems.append("PLEG is not healthy: pleg was last seen active too long ago")
        if problems:
            ready = self._condition("Ready", False, "KubeletNotReady", "; ".join(problems), heartbeat)
        else:
            ready = self._condition("Ready", True, "KubeletReady", "kubelet is posting ready status", heartbeat)
        conditions.append(ready)
        m = self.machine
        addresses = [{"type": "InternalIP", "address": self.node_ip}] if self.node_ip else []
        addresses.append({"type": "Hostname", "address": self.name})
        return {
            "capacity": format_resources(self.capacity),
            "allocatable": format_resources(self.allocatable),
            "conditions": conditions,
            "addresses": addresses,
            "daemonEndpoints": {"kubeletEndpoint": {"Port": self.cfg.port}},
            "nodeInfo": {
                "machineID": m.machine_id,
                "systemUUID": m.system_uuid,
                "bootID": m.boot_id,
                "kernelVersion": m.kernel_version,
                "osImage": m.os_image,
                "containerRuntimeVersion": self.runtime_version(),
                "kubeletVersion": KUBELET_VERSION,
                "kubeProxyVersion": "",
                "operatingSystem": "linux",
                "architecture": m.architecture,
            },
            "images": self.images()[:MAX_IMAGES_IN_STATUS],
        }

    def initial_node(self) -> dict[str, Any]:
        spec: dict[str, Any] = {}
        if self.cfg.register_with_taints:
            spec["taints"] = self.cfg.register_with_taints
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.name,
                "labels": self.labels(),
                "annotations": {"volumes.kubernetes.io/controller-managed-attach-detach": "true"},
            },
            "spec": spec,
            "status": self.status(),
        }

    async def register(self, stop: asyncio.Event) -> None:
        """Create the Node (or adopt the existing one), retrying until it works."""
        delay = 0.2
        while not stop.is_set():
            try:
                try:
                    if not self.cfg.register_node:  # --register-node=false: someone else creates it
                        raise _AlreadyThere()
                    self.node = await self.nodes.create(self.initial_node())
                    log.info("registered node %s", self.name)
                except Exception as e:
                    if not isinstance(e, _AlreadyThere) and not is_already_exists(e):
                        raise
                    existing = await self.nodes.get(self.name)
                    labels = existing["metadata"].get("labels") or {}
                    missing = {k: v for k, v in self.labels().items() if labels.get(k) != v}
                    if missing:
                        existing = await self.nodes.patch(self.name, {"metadata": {"labels": missing}})
                    self.node = existing
                    log.info("node %s already registered; adopted it", self.name)
                await self.update_status(force=True)
                self.registered.set()
                self._publish_csinode(stop)
                return
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.warning("registering node %s: %s; retrying in %.1fs", self.name, e, delay)
                try:
                    await asyncio.wait_for(stop.wait(), delay)
                except TimeoutError:
                    pass
                delay = min(delay * 2, 7.0)

    def _publish_csinode(self, stop: asyncio.Event) -> None:
        # in the background, as upstream: a CSINode that cannot be written yet must not hold up the pods
        if self.csinode_task is not None:
            self.csinode_task.cancel()
        if self.node is not None:
            self.csinode_task = asyncio.create_task(csinode.publish(self.api, self.node, stop))

    async def close(self) -> None:
        if self.csinode_task is not None:
            self.csinode_task.cancel()
            await asyncio.gather(self.csinode_task, return_exceptions=True)

    async def update_status(self, force: bool = False) -> bool:
        status = self.status()
        comparable = {k: v for k, v in status.items() if k != "conditions"}
        comparable["conditions"] = [
            {k: v for k, v in c.items() if k != "lastHeartbeatTime"} for c in status["conditions"]
        ]
        due = time.monotonic() - self._last_report >= self.cfg.node_status_report_frequency
        if not force and not due and comparable == self._last_reported:
            return False
        self.node = await self.nodes.patch(self.name, {"status": status}, subresource="status")
        self._last_reported = comparable
        self._last_report = time.monotonic()
        self.status_updates += 1
        if self.on_node is not None and self.node is not None:
            self.on_node(self.node)
        return True

    async def status_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), self.cfg.node_status_update_frequency)
                return
            except TimeoutError:
                pass
            try:
                await self.update_status()
            except asyncio.CancelledError:
                raise
            except Exception as e:
                if is_not_found(e):
                    log.warning("node %s was deleted; registering it again", self.name)
                    self.registered.clear()
                    await self.register(stop)
                else:
                    log.warning("updating node status: %s", e)

    # -- lease ----------------------------------------------------------------------------------

    def _lease_body(self, existing: dict[str, Any] | None) -> dict[str, Any]:
        lease = existing or {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.name, "namespace": LEASE_NAMESPACE},
        }
        if self.node is not None and not lease["metadata"].get("ownerReferences"):
            lease["metadata"]["ownerReferences"] = [{
                "apiVersion": "v1", "kind": "Node", "name": self.name, "uid": self.node["metadata"]["uid"],
            }]
        lease["spec"] = {
            **(lease.get("spec") or {}),
            "holderIdentity": self.name,
            "leaseDurationSeconds": self.cfg.node_lease_duration_seconds,
            "renewTime": now_micro(),
        }
        return lease

    async def renew_lease(self) -> None:
        try:
            existing = await self.leases.get(self.name, LEASE_NAMESPACE)
        except Exception as e:
            if not is_not_found(e):
                raise
            try:
                await self.leases.create(self._lease_body(None), LEASE_NAMESPACE)
            except Exception as e2:
                if not is_already_exists(e2):
                    raise
                return
            self.lease_renewals += 1
            return
        try:
            await self.leases.update(self._lease_body(existing), LEASE_NAMESPACE)
        except Exception as e:
            if not is_conflict(e):
                raise
            return  # someone else wrote it meanwhile; the next renewal wins
        self.lease_renewals += 1

    async def lease_loop(self, stop: asyncio.Event) -> None:
        interval = self.cfg.node_lease_duration_seconds / 4  # upstream renews every 10 s of 40
        while not stop.is_set():
            try:
                await self.renew_lease()
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.warning("renewing the node lease: %s", e)
            try:
                await asyncio.wait_for(stop.wait(), interval)
            except TimeoutError:
                pass
