"""Topology Aware Routing for the EndpointSlice controller (upstream k8s.io/endpointslice/topologycache, 1.31).

A Service annotated `service.kubernetes.io/topology-mode: Auto` (or the deprecated
`service.kubernetes.io/topology-aware-hints: auto`) gets zone hints on its ready endpoints,
allocated in proportion to the allocatable CPU of each zone's nodes:

* Nodes: only Ready nodes without a control-plane/master role label count; as soon as one of
  them lacks a zone label or allocatable CPU, or fewer than two zones remain, node info is
  insufficient and every Service loses its hints.
* Allocation per zone: desired = cpu ratio × ready endpoints, minimum = ceil(desired / 1.2)
  (no zone may get more than 20% over its share, the overload threshold), maximum = minimum +
  what the minimums leave over. Fewer endpoints than zones, or minimums that do not fit,
  disable hints.
* Every ready endpoint starts hinted for its own zone; then zones with a surplus give
  endpoints to zones with a deficit (whole endpoints, biggest surplus to biggest deficit,
  while at least half an endpoint is missing) by rewriting those endpoints' hints.
* Slices the reconcile does not touch keep their hints as long as they stay valid (hinted for
  known zones, within the zone maximums); otherwise they are rewritten too.
* Each decision is an Event on the Service: TopologyAwareHintsEnabled (Normal) the first time
  hints are added, TopologyAwareHintsDisabled (Warning) with the reason when they are removed.

Everything here works on plain slice dicts; slices passed in `to_create`/`to_update` are the
controller's own copies and are changed in place, `unchanged` ones are copied before changes.
"""

from __future__ import annotations

import copy
import logging
import math
from dataclasses import dataclass, field
from typing import Any

from apimachinery.quantity import milli_value
from controller_manager.conditions import is_node_ready

log = logging.getLogger("controller_manager.topologycache")

Obj = dict[str, Any]

ANNOTATION_TOPOLOGY_MODE = "service.kubernetes.io/topology-mode"
ANNOTATION_TOPOLOGY_AWARE_HINTS = "service.kubernetes.io/topology-aware-hints"  # deprecated, takes precedence
ZONE_LABEL = "topology.kubernetes.io/zone"
EXCLUDED_NODE_LABELS = ("node-role.kubernetes.io/control-plane", "node-role.kubernetes.io/master")
OVERLOAD_THRESHOLD = 0.2

# Event reasons and messages (upstream topologycache/event.go)
REASON_ENABLED = "TopologyAwareHintsEnabled"
REASON_DISABLED = "TopologyAwareHintsDisabled"
NO_ZONE_SPECIFIED = "One or more endpoints do not have a zone specified"
NO_ALLOCATED_HINTS_FOR_ZONES = "No hints allocated for zones"
TOPOLOGY_AWARE_HINTS_ENABLED = "Topology Aware Hints has been enabled"
TOPOLOGY_AWARE_HINTS_DISABLED = "Topology Aware Hints has been disabled"
INSUFFICIENT_NODE_INFO = ("Insufficient Node information: allocatable CPU or zone not specified on one or more "
                          "nodes")
NODES_READY_IN_ONE_ZONE_ONLY = "Nodes only ready in one zone"
INSUFFICIENT_NUMBER_OF_ENDPOINTS = "Insufficient number of endpoints"
MIN_ALLOCATION_EXCEEDS_OVERLOAD_THRESHOLD = ("Unable to allocate minimum required endpoints to each zone without "
                                             "exceeding overload threshold")


@dataclass
class Event:
    type: str
    reason: str
    message: str


def with_address_type(message: str, family: str) -> str:
    return f"{message}, addressType: {family}"


def hints_enabled(annotations: dict[str, str] | None) -> bool:
    """The Service asks for topology-aware hints: the deprecated annotation if present, else
    topology-mode, set to Auto or auto."""
    annotations = annotations or {}
    if ANNOTATION_TOPOLOGY_AWARE_HINTS in annotations:
        value = annotations[ANNOTATION_TOPOLOGY_AWARE_HINTS]
    elif ANNOTATION_TOPOLOGY_MODE in annotations:
        value = annotations[ANNOTATION_TOPOLOGY_MODE]
    else:
        return False
    return value in ("Auto", "auto")


def endpoint_ready(ep: Obj) -> bool:
    return (ep.get("conditions") or {}).get("ready") is True


def zone_hint(zone: str) -> Obj:
    return {"forZones": [{"name": zone}]}


def node_cpu_milli(node: Obj) -> int:
    cpu = ((node.get("status") or {}).get("allocatable") or {}).get("cpu")
    if cpu in (None, ""):
        return 0
    try:
        return milli_value(cpu)
    except (ValueError, ArithmeticError):
        return 0


def node_excluded(node: Obj) -> bool:
    labels = (node.get("metadata") or {}).get("labels") or {}
    return any(k in labels for k in EXCLUDED_NODE_LABELS)


def node_topology_key(node: Obj) -> tuple:
    """What of a node upstream's controller watches for (updateNode: readiness and the zone label;
    a zone label may come late, from a cloud provider). Other changes count at the next recompute."""
    labels = (node.get("metadata") or {}).get("labels") or {}
    return (is_node_ready(node), labels.get(ZONE_LABEL))


@dataclass
class Allocation:
    minimum: int
    maximum: int
    desired: float


@dataclass
class SliceInfo:
    """One Service's slices of one address type, as the reconcile left them."""

    service_key: str
    family: str
    to_create: list[Obj] = field(default_factory=list)
    to_update: list[Obj] = field(default_factory=list)
    unchanged: list[Obj] = field(default_factory=list)

    def total_ready(self) -> int:
        return sum(1 for s in self.to_create + self.to_update + self.unchanged
                   for ep in s.get("endpoints") or [] if endpoint_ready(ep))

    def allocated_hints_by_zone(self, allocations: dict[str, Allocation]) -> dict[str, int]:
        """Hints the unchanged slices already hold per zone; slices whose hints no longer fit
        move to to_update (as copies)."""
        allocated: dict[str, int] = {}
        keep = []
        for s in self.unchanged:
            by_zone = hints_by_zone(s, allocated, allocations)
            if by_zone is None:
                self.to_update.append(copy.deepcopy(s))
                continue
            keep.append(s)
            for zone, n in by_zone.items():
                allocated[zone] = allocated.get(zone, 0) + n
        self.unchanged = keep
        return allocated


def hints_by_zone(s: Obj, allocated: dict[str, int], allocations: dict[str, Allocation]) -> dict[str, int] | None:
    """Hints per zone in one slice, or None when they are no longer valid: a ready endpoint
    without hints, a hint for a zone without an allocation, or more than a zone's maximum."""
    counts: dict[str, int] = {}
    for ep in s.get("endpoints") or []:
        if not endpoint_ready(ep):
            continue
        zones = [z.get("name", "") for z in (ep.get("hints") or {}).get("forZones") or []]
        if not zones:
            return None
        for zone in zones:
            if zone not in allocations:
                return None
            counts[zone] = counts.get(zone, 0) + 1
    for zone, n in counts.items():
        if n + allocated.get(zone, 0) > allocations[zone].maximum:
            return None
    return counts


def remove_hints_from_slices(si: SliceInfo) -> None:
    """No hints anywhere: cleared on slices being written, unchanged slices that hold hints are
    copied, cleared and written too."""
    for s in si.to_create + si.to_update:
        for ep in s.get("endpoints") or []:
            ep.pop("hints", None)
    keep = []
    for s in si.unchanged:
        if any("hints" in ep for ep in s.get("endpoints") or []):
            s = copy.deepcopy(s)
            for ep in s["endpoints"]:
                ep.pop("hints", None)
            si.to_update.append(s)
        else:
            keep.append(s)
    si.unchanged = keep


def most(values: dict[str, float]) -> tuple[str, float]:
    """The zone with the greatest positive value (the first by name on ties), or ("", 0)."""
    best, num = "", 0.0
    for zone in sorted(values):
        if values[zone] > num:
            best, num = zone, values[zone]
    return best, num


def giving_and_receiving(allocations: dict[str, Allocation],
                         allocated: dict[str, int]) -> tuple[dict[str, int], dict[str, int]]:
    """How many whole endpoints each zone gives away / receives to approach its desired share."""
    giving_f: dict[str, float] = {}
    receiving_f: dict[str, float] = {}
    for zone, alloc in allocations.items():
        have = float(allocated.get(zone, 0))
        if have > alloc.desired:
            giving_f[zone] = have - alloc.desired
        elif have < alloc.desired:
            receiving_f[zone] = alloc.desired - have
    giving: dict[str, int] = {}
    receiving: dict[str, int] = {}
    while True:
        gz, give = most(giving_f)
        rz, receive = most(receiving_f)
        if not gz or not rz or (give < 1.0 and receive < 1.0) or give < 0.5 or receive < 0.5:
            break
        giving[gz] = giving.get(gz, 0) + 1
        giving_f[gz] -= 1
        receiving[rz] = receiving.get(rz, 0) + 1
        receiving_f[rz] -= 1
    return giving, receiving


def redistribute(slices: list[Obj], giving: dict[str, int], receiving: dict[str, int]) -> dict[str, int]:
    """Re-hint endpoints of giving zones for receiving zones; the change per zone."""
    changes: dict[str, int] = {}
    for s in slices:
        for ep in s.get("endpoints") or []:
            if not endpoint_ready(ep):
                ep.pop("hints", None)
                continue
            if not giving or not receiving:
                return changes
            zone = ep.get("zone") or ""
            if not zone or giving.get(zone, 0) <= 0:
                continue
            to = next((z for z in sorted(receiving) if receiving[z] > 0), None)
            if to is None:
                continue
            ep["hints"] = zone_hint(to)
            giving[zone] -= 1
            if giving[zone] == 0:
                del giving[zone]
            receiving[to] -= 1
            if receiving[to] == 0:
                del receiving[to]
            changes[to] = changes.get(to, 0) + 1
            changes[zone] = changes.get(zone, 0) - 1
    return changes


def service_overloaded(by_zone: dict[str, int], ratios: dict[str, float] | None) -> bool:
    """Some zone has fewer hinted endpoints than its minimum under the current CPU ratios."""
    if not by_zone:
        return False
    if not ratios:
        return True
    total = float(sum(by_zone.values()))
    for zone, ratio in ratios.items():
        if zone not in by_zone:
            return True
        if by_zone[zone] < math.ceil(total * ratio * (1 / (1 + OVERLOAD_THRESHOLD))):
            return True
    return False


class TopologyCache:
    """Nodes' CPU per zone and the hints each Service currently has per zone."""

    def __init__(self) -> None:
        self.sufficient_node_info = False
        self.cpu_by_zone: dict[str, int] | None = {}
        #: zone → share of the cluster's allocatable CPU; None once node info is insufficient
        self.cpu_ratios_by_zone: dict[str, float] | None = {}
        #: service key → address type → hints per zone
        self.endpoints_by_service: dict[str, dict[str, dict[str, int]]] = {}
        self.hints_populated: set[str] = set()

    # -- nodes -------------------------------------------------------------------------

    def set_nodes(self, nodes: list[Obj]) -> None:
        cpu_by_zone: dict[str, int] = {}
        sufficient = True
        total = 0
        for node in nodes:
            name = (node.get("metadata") or {}).get("name")
            if node_excluded(node) or not is_node_ready(node):
                continue
            cpu = node_cpu_milli(node)
            zone = ((node.get("metadata") or {}).get("labels") or {}).get(ZONE_LABEL) or ""
            if not zone or cpu <= 0:
                log.info("can't get CPU or zone information for node %s", name)
                cpu_by_zone, sufficient = {}, False
                break
            total += cpu
            cpu_by_zone[zone] = cpu_by_zone.get(zone, 0) + cpu
        if total == 0 or not sufficient or len(cpu_by_zone) < 2:
            self.sufficient_node_info = False
            self.cpu_by_zone = None
            self.cpu_ratios_by_zone = None
        else:
            self.sufficient_node_info = True
            self.cpu_by_zone = cpu_by_zone
            self.cpu_ratios_by_zone = {zone: cpu / total for zone, cpu in cpu_by_zone.items()}

    def overloaded_services(self) -> list[str]:
        return sorted(key for key, by_family in self.endpoints_by_service.items()
                      if any(service_overloaded(ezi, self.cpu_ratios_by_zone) for ezi in by_family.values()))

    # -- per service -------------------------------------------------------------------

    def has_populated_hints(self, service_key: str) -> bool:
        return service_key in self.hints_populated

    def set_hints(self, service_key: str, family: str, by_zone: dict[str, int]) -> None:
        self.endpoints_by_service.setdefault(service_key, {})[family] = by_zone
        self.hints_populated.add(service_key)

    def remove_hints(self, service_key: str, family: str) -> None:
        by_family = self.endpoints_by_service.get(service_key)
        if by_family is not None:
            by_family.pop(family, None)
            if not by_family:
                del self.endpoints_by_service[service_key]
        self.hints_populated.discard(service_key)

    def allocations(self, n: int) -> tuple[dict[str, Allocation] | None, Event | None]:
        ratios = self.cpu_ratios_by_zone
        if ratios is None:
            return None, Event("Warning", REASON_DISABLED, INSUFFICIENT_NODE_INFO)
        if len(ratios) < 2:
            return None, Event("Warning", REASON_DISABLED, NODES_READY_IN_ONE_ZONE_ONLY)
        if len(ratios) > n:
            return None, Event("Warning", REASON_DISABLED,
                               f"{INSUFFICIENT_NUMBER_OF_ENDPOINTS} ({n} endpoints, {len(ratios)} zones)")
        out: dict[str, Allocation] = {}
        remaining = n
        min_total = 0
        for zone in sorted(ratios):
            desired = ratios[zone] * n
            minimum = math.ceil(desired * (1 / (1 + OVERLOAD_THRESHOLD)))
            out[zone] = Allocation(minimum=minimum, maximum=0, desired=max(desired, float(minimum)))
            min_total += minimum
            remaining -= minimum
            if remaining < 0:
                return None, Event("Warning", REASON_DISABLED,
                                   f"{MIN_ALLOCATION_EXCEEDS_OVERLOAD_THRESHOLD} ({n} endpoints, {len(ratios)} zones)")
        for alloc in out.values():
            alloc.maximum = alloc.minimum + n - min_total
        return out, None

    def _disable(self, si: SliceInfo, message: str) -> list[Event]:
        log.info("%s, removing hints for %s (%s)", message, si.service_key, si.family)
        self.remove_hints(si.service_key, si.family)
        remove_hints_from_slices(si)
        return [Event("Warning", REASON_DISABLED, with_address_type(message, si.family))]

    def add_hints(self, si: SliceInfo) -> list[Event]:
        """Hint the ready endpoints of `si` (changing to_create/to_update/unchanged in place);
        the Events to record on the Service."""
        allocations, problem = self.allocations(si.total_ready())
        if problem is not None or allocations is None:
            return self._disable(si, problem.message if problem else INSUFFICIENT_NODE_INFO)
        allocated = si.allocated_hints_by_zone(allocations)
        writable = si.to_create + si.to_update
        # 1. every ready endpoint hinted for its own zone
        for s in writable:
            for ep in s.get("endpoints") or []:
                if not endpoint_ready(ep):
                    ep.pop("hints", None)
                    continue
                zone = ep.get("zone") or ""
                if not zone:
                    return self._disable(si, NO_ZONE_SPECIFIED)
                allocated[zone] = allocated.get(zone, 0) + 1
                ep["hints"] = zone_hint(zone)
        # 2./3. move endpoints from zones over their share to zones under it
        giving, receiving = giving_and_receiving(allocations, allocated)
        for zone, diff in redistribute(writable, giving, receiving).items():
            allocated[zone] = allocated.get(zone, 0) + diff
        if not allocated:
            return self._disable(si, NO_ALLOCATED_HINTS_FOR_ZONES)
        events = []
        if not self.has_populated_hints(si.service_key):
            log.info("topology aware hints enabled for %s (%s)", si.service_key, si.family)
            events.append(Event("Normal", REASON_ENABLED, with_address_type(TOPOLOGY_AWARE_HINTS_ENABLED, si.family)))
        self.set_hints(si.service_key, si.family, allocated)
        return events


# -- spec.trafficDistribution: PreferClose (upstream k8s.io/endpointslice/trafficdist) ---------

def prefer_close_needs_update(s: Obj) -> bool:
    for ep in s.get("endpoints") or []:
        zone = ep.get("zone")
        want = zone_hint(zone) if zone else None
        if ep.get("hints") != want:
            return True
    return False


def prefer_close(s: Obj) -> None:
    """Each endpoint hinted for its own zone (none without a zone)."""
    for ep in s.get("endpoints") or []:
        if ep.get("zone"):
            ep["hints"] = zone_hint(ep["zone"])
        else:
            ep.pop("hints", None)


def reconcile_prefer_close(si: SliceInfo) -> None:
    keep = []
    for s in si.unchanged:
        if prefer_close_needs_update(s):
            si.to_update.append(copy.deepcopy(s))
        else:
            keep.append(s)
    si.unchanged = keep
    for s in si.to_create + si.to_update:
        prefer_close(s)
