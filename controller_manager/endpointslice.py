"""The EndpointSlice controller: a Service's pods as EndpointSlices (discovery.k8s.io/v1).

Upstream pkg/controller/endpointslice, reduced to what a small cluster needs. For every
Service with a selector, each selected pod with an IP that is not finished becomes one
endpoint (terminating pods included, marked `terminating`), with conditions
ready = serving and not terminating (or always, with publishNotReadyAddresses),
serving = pod Ready (or publishNotReadyAddresses), its node, zone and target pod.
Pods that map the service ports to different numbers (named targetPorts) go to different
slices: one set of slices per distinct port list, at most --max-endpoints-per-slice
endpoints each. The reconciler keeps existing slices where it can (updating only those whose
content changed, filling free room before creating new slices) and deletes slices whose
ports no longer occur; a service without endpoints keeps one empty placeholder slice.

Slices are owned by their Service (so the garbage collector deletes them with it), labelled
`kubernetes.io/service-name` and `endpointslice.kubernetes.io/managed-by`. Because names
are generated, the controller remembers what it wrote and waits for its informer to catch
up before syncing a service again (upstream's EndpointSliceTracker), so it never creates a
slice twice.
"""

from __future__ import annotations

import copy
import ipaddress
from typing import Any

from apimachinery.meta import split_key
from client import deleted_object, is_not_found
from controller_manager import topologycache
from controller_manager.base import Controller, ControllerContext, add_index_once, register
from controller_manager.endpointutil import (
    HEADLESS_LABEL,
    PodEventsToServices,
    StaleInformer,
    find_port,
    is_headless,
    manages_endpoints,
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

API_VERSION = "discovery.k8s.io/v1"
LABEL_SERVICE_NAME = "kubernetes.io/service-name"
LABEL_MANAGED_BY = "endpointslice.kubernetes.io/managed-by"
CONTROLLER_NAME = "endpointslice-controller.k8s.io"
ZONE_LABEL = "topology.kubernetes.io/zone"
PREFER_CLOSE = "PreferClose"  # spec.trafficDistribution (ServiceTrafficDistribution, beta and on in 1.31)
RESERVED_LABELS = (LABEL_SERVICE_NAME, LABEL_MANAGED_BY)
SERVICE_INDEX = "endpointslice-controller/service"


def address_types(svc: Obj) -> list[str]:
    families = (svc.get("spec") or {}).get("ipFamilies") or ["IPv4"]
    return [f for f in families if f in ("IPv4", "IPv6")] or ["IPv4"]


def pod_address(pod: Obj, family: str) -> str | None:
    status = pod.get("status") or {}
    candidates = [i.get("ip", "") for i in status.get("podIPs") or []] or [status.get("podIP", "")]
    want = 4 if family == "IPv4" else 6
    for ip in candidates:
        try:
            if ip and ipaddress.ip_address(ip).version == want:
                return ip
        except ValueError:
            continue
    return None


def slice_port(service_port: Obj, port: int) -> Obj:
    out: Obj = {"name": service_port.get("name") or "", "port": port, "protocol": service_port.get("protocol") or "TCP"}
    if service_port.get("appProtocol"):
        out["appProtocol"] = service_port["appProtocol"]
    return out


def ports_key(ports: list[Obj]) -> tuple:
    return tuple(sorted((p.get("name") or "", p.get("port"), p.get("protocol") or "TCP", p.get("appProtocol") or "")
                        for p in ports))


def endpoint_key(ep: Obj) -> tuple:
    return (tuple(ep.get("addresses") or ()), (ep.get("targetRef") or {}).get("uid", ""))


def pod_endpoint(pod: Obj, svc: Obj, address: str, node_zone: str | None) -> Obj:
    terminating = bool((pod.get("metadata") or {}).get("deletionTimestamp"))
    serving = publish_not_ready(svc) or is_pod_ready(pod)
    ready = publish_not_ready(svc) or (serving and not terminating)
    ep: Obj = {"addresses": [address], "conditions": {"ready": ready, "serving": serving, "terminating": terminating}}
    if should_set_hostname(pod, svc):
        ep["hostname"] = pod["spec"]["hostname"]
    ep["targetRef"] = target_ref(pod)
    node = (pod.get("spec") or {}).get("nodeName")
    if node:
        ep["nodeName"] = node
    if node_zone:
        ep["zone"] = node_zone
    return ep  # hints are added after the reconcile (topologycache)


def without_hints(ep: Obj) -> Obj:
    if "hints" not in ep:
        return ep
    return {k: v for k, v in ep.items() if k != "hints"}


def slice_labels(svc: Obj) -> dict[str, str]:
    labels = {k: v for k, v in (svc["metadata"].get("labels") or {}).items() if k not in RESERVED_LABELS}
    if is_headless(svc):
        labels[HEADLESS_LABEL] = ""
    else:
        labels.pop(HEADLESS_LABEL, None)
    labels[LABEL_SERVICE_NAME] = svc["metadata"]["name"]
    labels[LABEL_MANAGED_BY] = CONTROLLER_NAME
    return labels


def owner_ref(svc: Obj) -> Obj:
    return {"apiVersion": "v1", "kind": "Service", "name": svc["metadata"]["name"], "uid": svc["metadata"]["uid"],
            "controller": True, "blockOwnerDeletion": True}


def desired_groups(svc: Obj, pods: list[Obj], family: str, zone_of) -> dict[tuple, tuple[list[Obj], list[Obj]]]:
    """port key → (ports, endpoints) of the pods that offer exactly those ports."""
    groups: dict[tuple, tuple[list[Obj], list[Obj]]] = {}
    service_ports = (svc.get("spec") or {}).get("ports") or []
    for pod in sorted(pods, key=lambda p: p["metadata"]["name"]):
        if not should_pod_be_in_endpoints(pod, include_terminating=True):
            continue
        address = pod_address(pod, family)
        if address is None:
            continue
        ports = []
        for sp in service_ports:
            port = find_port(pod, sp)
            if port is not None:
                ports.append(slice_port(sp, port))
        key = ports_key(ports)
        node = (pod.get("spec") or {}).get("nodeName")
        entry = groups.setdefault(key, (ports, []))
        entry[1].append(pod_endpoint(pod, svc, address, zone_of(node) if node else None))
    return groups


class Plan:
    """What one reconcile writes."""

    def __init__(self) -> None:
        self.create: list[Obj] = []
        self.update: list[Obj] = []
        self.delete: list[Obj] = []


def is_placeholder(s: Obj) -> bool:
    return not s.get("endpoints") and not s.get("ports")


def reconcile(svc: Obj, family: str, existing: list[Obj], groups: dict[tuple, tuple[list[Obj], list[Obj]]],
              max_per_slice: int) -> Plan:
    """Existing slices of one address type + the desired endpoints → creations, updates, deletions."""
    plan = Plan()
    labels = slice_labels(svc)
    wanted: dict[tuple, dict[tuple, Obj]] = {
        k: {endpoint_key(ep): ep for ep in eps} for k, (_, eps) in groups.items() if eps}
    placed: set[tuple] = set()
    # 1. keep what existing slices still hold (refreshed), drop what is gone
    kept: list[tuple[Obj, list[Obj], bool]] = []  # (slice, endpoints, changed)
    for s in existing:
        pk = ports_key(s.get("ports") or [])
        if pk not in wanted:
            plan.delete.append(s)
            continue
        endpoints, changed = [], False
        for ep in s.get("endpoints") or []:
            k = endpoint_key(ep)
            if k in wanted[pk] and k not in placed:
                new = wanted[pk][k]
                placed.add(k)
                endpoints.append(new)
                changed = changed or new != without_hints(ep)  # hints are the topology step's business
            else:
                changed = True
        if (s["metadata"].get("labels") or {}) != labels:
            changed = True
        kept.append((s, endpoints, changed))
    # 2. place the remaining endpoints: slices being updated anyway first, then others with room, then new ones
    for pk, eps_by_key in wanted.items():
        rest = [ep for k, ep in eps_by_key.items() if k not in placed]
        if not rest:
            continue
        same_ports = [i for i, (s, _, _) in enumerate(kept) if ports_key(s.get("ports") or []) == pk]
        same_ports.sort(key=lambda i: (not kept[i][2], -len(kept[i][1])))
        for i in same_ports:
            s, endpoints, changed = kept[i]
            room = max_per_slice - len(endpoints)
            if room <= 0 or not rest:
                continue
            endpoints = endpoints + rest[:room]
            rest = rest[room:]
            kept[i] = (s, endpoints, True)
        ports = groups[pk][0]
        while rest:
            chunk, rest = rest[:max_per_slice], rest[max_per_slice:]
            plan.create.append(new_slice(svc, family, labels, ports, chunk))
    for s, endpoints, changed in kept:
        if not endpoints:
            plan.delete.append(s)
        elif changed:
            s = copy.deepcopy(s)
            s["endpoints"] = endpoints
            s["metadata"]["labels"] = labels
            plan.update.append(s)
    # 3. no endpoints at all: keep (or make) one empty placeholder slice
    if not plan.create and len(plan.delete) == len(existing):
        keep = next((s for s in plan.delete if is_placeholder(s)), None)
        if keep is not None:
            plan.delete.remove(keep)
            if (keep["metadata"].get("labels") or {}) != labels:
                keep = copy.deepcopy(keep)
                keep["metadata"]["labels"] = labels
                plan.update.append(keep)
        else:
            plan.create.append(new_slice(svc, family, labels, [], []))
    return plan


def new_slice(svc: Obj, family: str, labels: dict[str, str], ports: list[Obj], endpoints: list[Obj]) -> Obj:
    return {
        "apiVersion": API_VERSION, "kind": "EndpointSlice",
        "metadata": {"generateName": f"{svc['metadata']['name']}-", "namespace": svc["metadata"]["namespace"],
                     "labels": dict(labels), "ownerReferences": [owner_ref(svc)]},
        "addressType": family,
        "endpoints": list(endpoints),
        "ports": list(ports),
    }


@register
class EndpointSliceController(PodEventsToServices, Controller):
    name = "endpointslice-controller"
    aliases = ("endpointslice",)
    workers_option = "concurrent_service_endpoint_syncs"
    service_account = "endpointslice-controller"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.services = self.watch("v1", "services")
        self.pods = self.informer("v1", "pods")
        self.pods.add_handler(self._pod_added, self._pod_updated, self._pod_deleted)
        self.nodes = self.informer("v1", "nodes")
        self.nodes.add_handler(self._node_added, self._node_updated, self._node_deleted)
        self.topology = topologycache.TopologyCache()
        self.slices = self.informer(API_VERSION, "endpointslices")
        add_index_once(self.slices, SERVICE_INDEX, self._index_by_service)
        self.slices.add_handler(self._slice_changed, lambda old, new: self._slice_changed(new), self._slice_deleted)
        self.slices_api = self.client.resource(API_VERSION, "endpointslices")
        self.max_per_slice = max(1, self.options.max_endpoints_per_slice)
        self.batch_period = self.options.endpointslice_updates_batch_period
        #: service key → {slice name: resourceVersion we wrote, or None once we deleted it}
        self._expected: dict[str, dict[str, int | None]] = {}

    @staticmethod
    def _index_by_service(s: Obj) -> str | None:
        labels = s["metadata"].get("labels") or {}
        if labels.get(LABEL_MANAGED_BY) != CONTROLLER_NAME or not labels.get(LABEL_SERVICE_NAME):
            return None
        return f"{s['metadata'].get('namespace')}/{labels[LABEL_SERVICE_NAME]}"

    # -- informer events -----------------------------------------------------------------

    def _slice_changed(self, s: Obj) -> None:
        svc_key = self._index_by_service(s)
        if svc_key is None:
            return
        expected = self._expected.get(svc_key, {}).get(s["metadata"]["name"], -1)
        if expected is None or expected == -1 or resource_version(s) > expected:
            self.queue.add(svc_key)  # not our own write: someone else changed it

    def _slice_deleted(self, item: Any) -> None:
        s = deleted_object(item)
        svc_key = self._index_by_service(s)
        if svc_key is None:
            return
        if self._expected.get(svc_key, {}).get(s["metadata"]["name"], -1) is not None:
            self.queue.add(svc_key)

    def _node_added(self, node: Obj) -> None:
        self._check_node_topology()

    def _node_updated(self, old: Obj, new: Obj) -> None:
        if topologycache.node_topology_key(old) != topologycache.node_topology_key(new):
            self._check_node_topology()

    def _node_deleted(self, item: Any) -> None:
        self._check_node_topology()

    def _check_node_topology(self) -> None:
        """Upstream checkNodeTopologyDistribution: recompute the zones' CPU and resync the
        Services whose hints now overload a zone (or that must lose them)."""
        self.topology.set_nodes(self.nodes.store.list())
        for key in self.topology.overloaded_services():
            self.queue.add(key)

    # -- the sync ------------------------------------------------------------------------

    def _check_fresh(self, svc_key: str) -> None:
        expected = self._expected.get(svc_key)
        if not expected:
            return
        for name, rv in list(expected.items()):
            ns, _ = split_key(svc_key)
            seen = self.slices.store.get(f"{ns}/{name}")
            if rv is None:
                if seen is not None:
                    raise StaleInformer(f"slice {ns}/{name} deleted but still in the informer")
            elif seen is None or resource_version(seen) < rv:
                raise StaleInformer(f"slice {ns}/{name} written at {rv} but the informer has not seen it")
            del expected[name]
        if not expected:
            self._expected.pop(svc_key, None)

    def _zone_of(self, node_name: str) -> str | None:
        node = self.nodes.store.get(node_name)
        return ((node or {}).get("metadata", {}).get("labels") or {}).get(ZONE_LABEL) if node else None

    async def sync(self, key: str) -> None:
        svc = self.services.store.get(key)
        if svc is None:
            # the garbage collector deletes the slices with their owner
            self._expected.pop(key, None)
            for family in ("IPv4", "IPv6"):
                self.topology.remove_hints(key, family)
            return
        if not manages_endpoints(svc) or svc["metadata"].get("deletionTimestamp"):
            return
        self._check_fresh(key)
        pods = pods_for_service(self.pods.store, svc)
        existing = [s for s in self.slices.store.by_index(SERVICE_INDEX, key)
                    if not s["metadata"].get("deletionTimestamp")]
        # slices owned by an earlier incarnation of the service (same name, other uid) go
        existing_mine = []
        plan = Plan()
        for s in existing:
            owners = s["metadata"].get("ownerReferences") or []
            if owners and not any(o.get("uid") == svc["metadata"]["uid"] for o in owners):
                plan.delete.append(s)
            else:
                existing_mine.append(s)
        families = address_types(svc)
        for s in existing_mine:
            if s.get("addressType") not in families:
                plan.delete.append(s)
                self.topology.remove_hints(key, s.get("addressType") or "")
        events: list[topologycache.Event] = []
        for family in families:
            groups = desired_groups(svc, pods, family, self._zone_of)
            mine = [s for s in existing_mine if s.get("addressType") == family]
            part = reconcile(svc, family, mine, groups, self.max_per_slice)
            events += self._hint(key, svc, family, mine, part)
            plan.create += part.create
            plan.update += part.update
            plan.delete += part.delete
        try:
            await self._apply(key, svc, plan)
        finally:
            for ev in events:
                self.recorder.event(svc, ev.type, ev.reason, ev.message)

    def _hint(self, key: str, svc: Obj, family: str, existing: list[Obj], part: Plan) -> list[topologycache.Event]:
        """Upstream's hint step after the reconcile of one address type: the topology-mode
        annotation (Auto) wins over spec.trafficDistribution; without either, no hints."""
        touched = {s["metadata"]["name"] for s in part.update + part.delete}
        si = topologycache.SliceInfo(key, family, part.create, part.update,
                                     [s for s in existing if s["metadata"]["name"] not in touched])
        annotated = topologycache.hints_enabled(svc["metadata"].get("annotations"))
        prefer_close = not annotated and (svc.get("spec") or {}).get("trafficDistribution") == PREFER_CLOSE
        events: list[topologycache.Event] = []
        if annotated:
            events = self.topology.add_hints(si)
        else:
            if self.topology.has_populated_hints(key):
                events.append(topologycache.Event("Warning", topologycache.REASON_DISABLED, topologycache.with_address_type(
                    topologycache.TOPOLOGY_AWARE_HINTS_DISABLED, family)))
            self.topology.remove_hints(key, family)
            if not prefer_close:
                topologycache.remove_hints_from_slices(si)
        if prefer_close:
            topologycache.reconcile_prefer_close(si)
        part.create, part.update = si.to_create, si.to_update
        return events

    async def _apply(self, key: str, svc: Obj, plan: Plan) -> None:
        ns = svc["metadata"]["namespace"]
        expected = self._expected.setdefault(key, {})
        try:
            for s in plan.create:
                created = await self.slices_api.create(s, ns)
                expected[created["metadata"]["name"]] = resource_version(created)
            for s in plan.update:
                updated = await self.slices_api.update(s, ns)
                expected[updated["metadata"]["name"]] = resource_version(updated)
            for s in plan.delete:
                try:
                    await self.slices_api.delete(s["metadata"]["name"], ns)
                except Exception as e:
                    if not is_not_found(e):
                        raise
                expected[s["metadata"]["name"]] = None
        except Exception as e:
            if namespace_terminating_error(e) and not is_not_found(e):
                return  # the namespace is going away
            self.recorder.event(svc, "Warning", "FailedToUpdateEndpointSlices",
                                f"Error updating Endpoint Slices for Service {key}: {e}")
            raise
        finally:
            if not expected:
                self._expected.pop(key, None)
