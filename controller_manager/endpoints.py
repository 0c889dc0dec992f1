"""The Endpoints controller: one Endpoints object per Service with a selector.

Upstream pkg/controller/endpoint. A Service is synced when it changes, when a pod it selects
(before or after the change) changes in a way endpoints show (IP, readiness, deletion, node,
hostname, ports, labels), and when its Endpoints object is deleted. The sync lists the
selected pods with an IP that are not finished nor being deleted; each becomes an address
(ready, or notReady unless the service publishes not-ready addresses) for every service port
the pod has (numeric targetPorts as they are, named ones looked up in the pod's container
ports; a pod without the named port is left out of that port). Addresses are then packed
into subsets of identical port sets (upstream RepackSubsets). Endpoints of deleted services
are deleted; services without a selector are left alone (their Endpoints are hand-made,
like the apiserver's own `kubernetes`).
"""

from __future__ import annotations

import copy
from typing import Any

from apimachinery.meta import split_key
from client import deleted_object, is_already_exists, is_not_found
from controller_manager.base import Controller, ControllerContext, register
from controller_manager.endpointutil import (
    HEADLESS_LABEL,
    PodEventsToServices,
    StaleInformer,
    addresses_sorted,
    find_port,
    is_headless,
    manages_endpoints,
    pod_ip,
    pods_for_service,
    publish_not_ready,
    resource_version,
    should_pod_be_in_endpoints,
    should_set_hostname,
    target_ref,
)
from controller_manager.podutil import is_pod_ready
from controller_manager.serviceaccount import namespace_terminating_error

Obj = dict[str, Any]

MAX_CAPACITY = 1000  # addresses per Endpoints object (upstream maxCapacity)
OVER_CAPACITY_ANNOTATION = "endpoints.kubernetes.io/over-capacity"
#: Endpoints kept up to date by leader election, never to be deleted as leftovers
LEADER_ANNOTATION = "control-plane.alpha.kubernetes.io/leader"


def endpoint_port(service_port: Obj, port: int) -> Obj:
    out: Obj = {"port": port, "protocol": service_port.get("protocol") or "TCP"}
    if service_port.get("name"):
        out["name"] = service_port["name"]
    if service_port.get("appProtocol"):
        out["appProtocol"] = service_port["appProtocol"]
    return out


def pod_address(pod: Obj, svc: Obj) -> Obj:
    addr: Obj = {"ip": pod_ip(pod)}
    node = (pod.get("spec") or {}).get("nodeName")
    if node:
        addr["nodeName"] = node
    if should_set_hostname(pod, svc):
        addr["hostname"] = pod["spec"]["hostname"]
    addr["targetRef"] = target_ref(pod)
    return addr


def _port_key(p: Obj) -> tuple:
    return (p.get("name", ""), p.get("port", 0), p.get("protocol", "TCP"), p.get("appProtocol", ""))


def repack_subsets(entries: list[tuple[Obj, bool, list[Obj]]]) -> list[Obj]:
    """(address, ready, ports) entries → subsets grouping the addresses that offer the same ports.

    An address appears once per subset; a port set with no ports (headless, portless) is kept.
    """
    by_address: dict[tuple, tuple[Obj, bool, dict[tuple, Obj]]] = {}
    for addr, ready, ports in entries:
        k = (addr["ip"], (addr.get("targetRef") or {}).get("uid", ""))
        _, was_ready, seen = by_address.setdefault(k, (addr, ready, {}))
        if was_ready != ready:  # ready on one port means ready (a pod is ready or not as a whole)
            by_address[k] = (addr, was_ready or ready, seen)
        for p in ports:
            seen[_port_key(p)] = p
    groups: dict[tuple, tuple[list[Obj], list[Obj], list[Obj]]] = {}
    for addr, ready, ports in by_address.values():
        keys = tuple(sorted(ports))
        ready_list, not_ready, port_list = groups.setdefault(keys, ([], [], [ports[k] for k in keys]))
        (ready_list if ready else not_ready).append(addr)
    subsets = []
    for ready_list, not_ready, port_list in groups.values():
        subset: Obj = {}
        if ready_list:
            subset["addresses"] = addresses_sorted(ready_list)
        if not_ready:
            subset["notReadyAddresses"] = addresses_sorted(not_ready)
        if port_list:
            subset["ports"] = port_list
        subsets.append(subset)
    subsets.sort(key=lambda s: [a["ip"] for a in (s.get("addresses") or s.get("notReadyAddresses") or [])])
    return subsets


def desired_subsets(svc: Obj, pods: list[Obj]) -> tuple[list[Obj], int]:
    """The subsets the service's pods make, and how many addresses they hold in total."""
    tolerate_unready = publish_not_ready(svc)
    ports = (svc.get("spec") or {}).get("ports") or []
    entries: list[tuple[Obj, bool, list[Obj]]] = []
    for pod in pods:
        if not should_pod_be_in_endpoints(pod, include_terminating=tolerate_unready):
            continue
        ready = tolerate_unready or is_pod_ready(pod)
        addr = pod_address(pod, svc)
        if not ports:
            if is_headless(svc):  # a headless service may have no ports: addresses only
                entries.append((addr, ready, []))
            continue
        pod_ports = []
        for sp in ports:
            port = find_port(pod, sp)
            if port is None:
                continue
            pod_ports.append(endpoint_port(sp, port))
        if pod_ports:
            entries.append((addr, ready, pod_ports))
    subsets = repack_subsets(entries)
    total = sum(len(s.get("addresses") or []) + len(s.get("notReadyAddresses") or []) for s in subsets)
    return subsets, total


def truncate(subsets: list[Obj], limit: int = MAX_CAPACITY) -> list[Obj]:
    """Keep at most `limit` addresses, ready ones first, spread over the subsets proportionally."""
    total_ready = sum(len(s.get("addresses") or []) for s in subsets)
    out = []
    left = limit
    for s in subsets:
        s = copy.deepcopy(s)
        ready = s.get("addresses") or []
        keep = min(len(ready), left if total_ready <= limit else max(0, round(limit * len(ready) / total_ready)))
        keep = min(keep, left)
        if ready:
            s["addresses"] = ready[:keep]
        left -= keep
        out.append(s)
    for s in out:
        nr = s.get("notReadyAddresses") or []
        if nr:
            keep = min(len(nr), left)
            s["notReadyAddresses"] = nr[:keep]
            left -= keep
    for s in out:
        for f in ("addresses", "notReadyAddresses"):
            if f in s and not s[f]:
                del s[f]
    return [s for s in out if s.get("addresses") or s.get("notReadyAddresses")]


@register
class EndpointsController(PodEventsToServices, Controller):
    name = "endpoints-controller"
    aliases = ("endpoint",)
    workers_option = "concurrent_endpoint_syncs"
    service_account = "endpoint-controller"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.services = self.watch("v1", "services")
        self.pods = self.informer("v1", "pods")
        self.pods.add_handler(self._pod_added, self._pod_updated, self._pod_deleted)
        self.endpoints = self.informer("v1", "endpoints")
        self.endpoints.add_handler(None, None, self._endpoints_deleted)
        self.endpoints_api = self.client.resource("v1", "endpoints")
        self.batch_period = self.options.endpoint_updates_batch_period
        self._leftovers_checked = False
        #: Endpoints key → resourceVersion of this controller's last write of it: an informer copy
        #: older than that is stale, and comparing against it could skip a needed write (upstream's
        #: staleEndpointsTracker)
        self._written: dict[str, int] = {}

    # -- informer events -----------------------------------------------------------------

    def _endpoints_deleted(self, item: Any) -> None:
        ep = deleted_object(item)
        key = f"{ep['metadata'].get('namespace')}/{ep['metadata']['name']}"
        self._written.pop(key, None)
        self.queue.add(key)

    def background(self, stop):
        return [self._check_leftover_endpoints()]

    async def _check_leftover_endpoints(self) -> None:
        """Once synced: queue Endpoints whose service is gone, so the sync deletes them."""
        for ep in self.endpoints.store.list():
            meta = ep["metadata"]
            if LEADER_ANNOTATION in (meta.get("annotations") or {}):
                continue
            key = f"{meta.get('namespace')}/{meta['name']}"
            if self.services.store.get(key) is None:
                self.queue.add(key)

    # -- the sync ------------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        ns, name = split_key(key)
        svc = self.services.store.get(key)
        if svc is None:
            self._written.pop(key, None)
            current = self.endpoints.store.get(key)
            if current is not None and LEADER_ANNOTATION in (current["metadata"].get("annotations") or {}):
                return
            try:
                await self.endpoints_api.delete(name, ns)
            except Exception as e:
                if not is_not_found(e):
                    raise
            return
        if not manages_endpoints(svc):
            return
        subsets, total = desired_subsets(svc, pods_for_service(self.pods.store, svc))
        over = total > MAX_CAPACITY
        if over:
            subsets = truncate(subsets)
        labels = dict(svc["metadata"].get("labels") or {})
        if is_headless(svc):
            labels[HEADLESS_LABEL] = ""
        current = self.endpoints.store.get(key)
        written = self._written.get(key)
        if written is not None and (current is None or resource_version(current) < written):
            raise StaleInformer(f"endpoints {key} written at {written} but the informer has not seen it")
        if current is not None:
            cur_labels = current["metadata"].get("labels") or {}
            cur_over = (current["metadata"].get("annotations") or {}).get(OVER_CAPACITY_ANNOTATION)
            if (current.get("subsets") or []) == subsets and cur_labels == labels \
                    and (cur_over == "truncated") == over:
                return
            ep = copy.deepcopy(current)
        else:
            ep = {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": name, "namespace": ns}}
        ep["metadata"]["labels"] = labels
        annotations = ep["metadata"].setdefault("annotations", {})
        if over:
            annotations[OVER_CAPACITY_ANNOTATION] = "truncated"
        else:
            annotations.pop(OVER_CAPACITY_ANNOTATION, None)
        if not annotations:
            del ep["metadata"]["annotations"]
        ep["subsets"] = subsets
        if not subsets:
            ep.pop("subsets")
        try:
            if current is None:
                stored = await self.endpoints_api.create(ep, ns)
            else:
                stored = await self.endpoints_api.update(ep, ns)
            self._written[key] = resource_version(stored)
        except Exception as e:
            if namespace_terminating_error(e) and not is_not_found(e):
                return  # the namespace is going away: nothing to publish
            if is_already_exists(e):
                raise RuntimeError(f"endpoints {key} exist but the informer has not seen them yet") from e
            self.recorder.event(svc, "Warning", "FailedToUpdateEndpoint", f"Failed to update endpoint {key}: {e}")
            raise
