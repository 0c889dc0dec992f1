"""VolumeBinding: the pod's PersistentVolumeClaims must be bound, or bindable, on the node.

Upstream's plugins/volumebinding (volume_binding.go + binder.go), without CSI storage
capacity and without the StorageCapacityScoring score:

- PreFilter looks the pod's claims up (`persistentVolumeClaim.claimName`, and generic
  `ephemeral` volumes: claim `<pod>-<volume>`, which the pod must own). A missing claim,
  one being deleted, a Lost one, or an unbound claim that is not WaitForFirstConsumer
  (Immediate, no class, or its class missing: the PV binder binds those) rejects the pod
  as UnschedulableAndUnresolvable. A pod with no claims skips the plugin.
- Filter, per node: a bound claim's PV must exist and its nodeAffinity fit the node; each
  unbound WaitForFirstConsumer claim needs an available matching PV that fits the node
  (the PV binder's rules, `apimachinery/volumebinding.py`, through
  `scheduler.volumehelpers.find_matching_volume`; smallest claims first, one PV each), or
  a class with a real provisioner whose allowedTopologies the node satisfies; a claim
  already annotated `volume.kubernetes.io/selected-node` fits only that node.
- Reserve (right after the pod is assumed) assumes the decisions in memory — the chosen
  PVs pre-bound to their claims, the claims to provision annotated with the node — so the
  next pods' Filters see them taken; Unreserve forgets them.
- PreBind (in the binding task) writes them: PUT the PV with spec.claimRef and
  `pv.kubernetes.io/bound-by-controller`, or patch the claim's selected-node annotation;
  then waits — woken by the informers, no polling — until every such claim is bound
  (spec.volumeName + `pv.kubernetes.io/bind-completed`) by the PV binder, for at most
  `bind_timeout_seconds` (600). It fails when a claim got bound to a PV whose
  nodeAffinity does not fit the node, a PV's claimRef was reset, the provisioner removed
  the selected-node annotation (provisioning failed), or the pod was deleted: the
  scheduler then unreserves, forgets the pod and retries it.

Without a Reserve in the cycle (no cycle state for the node), PreBind decides from the
current informer state itself.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Callable, Mapping
from typing import Any

from apimachinery.meta import key_of
from apimachinery.volumebinding import ephemeral_claim_error, is_delay_binding, requested_bytes
from client import ApiError
from scheduler.framework import (
    ADD,
    NODE,
    PERSISTENT_VOLUME,
    PERSISTENT_VOLUME_CLAIM,
    STORAGE_CLASS,
    UPDATE,
    UPDATE_NODE_LABEL,
    UPDATE_NODE_TAINT,
    CycleState,
    Handle,
    Plugin,
)
from scheduler.nodeinfo import NodeInfo
from scheduler.podinfo import PodInfo
from scheduler.status import ERROR, SKIP, UNSCHEDULABLE_AND_UNRESOLVABLE, Status
from scheduler.volumehelpers import (
    ANN_SELECTED_NODE,
    CLAIM_LOST,
    CLASS_STORE,
    PV_STORE,
    PVC_STORE,
    bind_volume_to_claim,
    check_node_affinity,
    class_provisions,
    find_matching_volume,
    is_claim_bound,
    pod_claim_names,
    storage_class_name,
    topology_matches,
)

log = logging.getLogger("scheduler.volumebinding")

Obj = dict[str, Any]

NAME = "VolumeBinding"
ERR_REASON_BIND_CONFLICT = "node(s) didn't find available persistent volumes to bind"
ERR_REASON_NODE_CONFLICT = "node(s) had volume node affinity conflict"
ERR_REASON_PV_NOT_EXIST = "node(s) unavailable due to one or more pvc(s) bound to non-existent pv(s)"
REASON_UNBOUND_IMMEDIATE = "pod has unbound immediate PersistentVolumeClaims"
DEFAULT_BIND_TIMEOUT_SECONDS = 600.0
TIMEOUT_MESSAGE = "context deadline exceeded"  # what upstream's wait reports on its timeout


def _rv(obj: Mapping[str, Any] | None) -> int:
    try:
        return int(((obj or {}).get("metadata") or {}).get("resourceVersion") or 0)
    except ValueError:
        return 0


class AssumeCache:
    """One informer store seen through in-memory "assumed" versions (upstream's assume cache).

    An assumed object hides the stored one until the informer brings a newer version of it
    (resourceVersion greater than the one it was assumed from) or it is restored."""

    def __init__(self, handle: Handle, store_name: str) -> None:
        self.handle = handle
        self.store_name = store_name
        self.assumed: dict[str, Obj] = {}

    def _store(self) -> Any:
        return self.handle.stores.get(self.store_name)

    def api_object(self, key: str) -> Obj | None:
        """The informer's object, ignoring assumptions."""
        return self.handle.lookup(self.store_name, key)

    def _resolve(self, key: str, stored: Obj | None) -> Obj | None:
        a = self.assumed.get(key)
        if a is None:
            return stored
        if stored is None or _rv(stored) > _rv(a):
            del self.assumed[key]  # deleted, or the informer caught up: the API's version wins
            return stored
        return a

    def get(self, key: str) -> Obj | None:
        return self._resolve(key, self.api_object(key))

    def list(self) -> list[Obj]:
        store = self._store()
        objs = store.list() if store is not None else []
        if not self.assumed:
            return objs
        out = []
        for o in objs:
            r = self._resolve(key_of(o), o)
            if r is not None:
                out.append(r)
        return out

    def assume(self, obj: Obj) -> None:
        key = key_of(obj)
        stored = self.get(key)
        if stored is None:
            raise ValueError(f"{self.store_name} {key!r} not found")
        if _rv(stored) > _rv(obj):
            raise ValueError(f"{self.store_name} {key!r}: assuming an older version")
        self.assumed[key] = obj

    def restore(self, key: str) -> None:
        self.assumed.pop(key, None)


class PodVolumeClaims:
    """The pod's claims by kind, and the PVs of the classes of its unbound delayed claims."""

    __slots__ = ("bound", "delay", "immediate", "pvs_by_class")

    def __init__(self, bound: list[Obj], delay: list[Obj], immediate: list[Obj]) -> None:
        self.bound = bound
        self.delay = delay  # unbound, WaitForFirstConsumer: the scheduler's to bind
        self.immediate = immediate
        self.pvs_by_class: dict[str, list[Obj]] = {}


class PodVolumes:
    """One node's decisions: PVs to pre-bind to claims, claims to provision there."""

    __slots__ = ("dynamic_provisions", "static_bindings")

    def __init__(self, static_bindings: list[tuple[Obj, Obj]] | None = None,
                 dynamic_provisions: list[Obj] | None = None) -> None:
        self.static_bindings = static_bindings or []  # (pv, pvc)
        self.dynamic_provisions = dynamic_provisions or []

    def __repr__(self) -> str:
        static = [(b[0]["metadata"]["name"], key_of(b[1])) for b in self.static_bindings]
        return f"PodVolumes(static={static}, provision={[key_of(c) for c in self.dynamic_provisions]})"


class VolumeState:
    """The plugin's cycle state: shared, not copied, by CycleState.clone (as upstream's)."""

    __slots__ = ("all_bound", "by_node", "claims")

    def __init__(self, claims: PodVolumeClaims | None) -> None:
        self.claims = claims  # None: the pod has no claims
        self.by_node: dict[str, PodVolumes] = {}
        self.all_bound = claims is None

    def clone(self) -> VolumeState:
        return self


class BindingError(Exception):
    """PreBind must give up: scheduling is retried."""


def pvc_event_filter(pvc: Mapping[str, Any]) -> Callable[[PodInfo], bool]:
    """Pods a change of `pvc` may help: same namespace, a volume naming it (upstream's queueing hint)."""
    meta = pvc.get("metadata") or {}
    ns, name = meta.get("namespace") or "", meta.get("name") or ""

    def check(pod: PodInfo) -> bool:
        return pod.namespace == ns and any(n == name for n, _eph in pod_claim_names(pod.pod))
    return check


class VolumeBinding(Plugin):
    name = NAME
    events = ((STORAGE_CLASS, ADD | UPDATE), (PERSISTENT_VOLUME_CLAIM, ADD | UPDATE),
              (PERSISTENT_VOLUME, ADD | UPDATE), (NODE, ADD | UPDATE_NODE_LABEL | UPDATE_NODE_TAINT))

    def __init__(self, handle: Handle) -> None:
        super().__init__(handle)
        args = handle.plugin_args.get(NAME) or {}
        self.bind_timeout = float(args.get("bind_timeout_seconds", DEFAULT_BIND_TIMEOUT_SECONDS))
        self.pv_cache = AssumeCache(handle, PV_STORE)
        self.pvc_cache = AssumeCache(handle, PVC_STORE)

    # -- lookups -----------------------------------------------------------------------

    def storage_class(self, name: str) -> Obj | None:
        return self.handle.lookup(CLASS_STORE, name)

    def pod_volume_claims(self, pod: PodInfo) -> PodVolumeClaims | Status | None:
        """The pod's claims sorted out, a rejection, or None when it has none (podHasPVCs + GetPodVolumeClaims)."""
        names = pod_claim_names(pod.pod)
        if not names:
            return None
        bound: list[Obj] = []
        delay: list[Obj] = []
        immediate: list[Obj] = []
        seen: set[str] = set()
        for claim_name, ephemeral in names:
            pvc = self.pvc_cache.get(f"{pod.namespace}/{claim_name}")
            if pvc is None:
                if ephemeral:
                    msg = f'waiting for ephemeral volume controller to create the persistentvolumeclaim "{claim_name}"'
                else:
                    msg = f'persistentvolumeclaim "{claim_name}" not found'
                return Status(UNSCHEDULABLE_AND_UNRESOLVABLE, msg)
            spec = pvc.get("spec") or {}
            if ((pvc.get("status") or {}).get("phase")) == CLAIM_LOST:
                return Status(UNSCHEDULABLE_AND_UNRESOLVABLE, f'persistentvolumeclaim "{claim_name}" bound to '
                              f'non-existent persistentvolume "{spec.get("volumeName") or ""}"')
            if (pvc.get("metadata") or {}).get("deletionTimestamp"):
                return Status(UNSCHEDULABLE_AND_UNRESOLVABLE, f'persistentvolumeclaim "{claim_name}" is being deleted')
            if ephemeral:
                err = ephemeral_claim_error(pod.pod, pvc)
                if err is not None:
                    return Status(UNSCHEDULABLE_AND_UNRESOLVABLE, err)
            if claim_name in seen:
                continue
            seen.add(claim_name)
            if is_claim_bound(pvc):
                bound.append(pvc)
            elif not spec.get("volumeName") and is_delay_binding(pvc, self.storage_class):
                delay.append(pvc)
            else:
                immediate.append(pvc)  # the binder's to bind (a claim naming its volume too)
        claims = PodVolumeClaims(bound, delay, immediate)
        if delay:
            classes = {storage_class_name(c) for c in delay}
            for pv in self.pv_cache.list():
                cls = storage_class_name(pv)
                if cls in classes:
                    claims.pvs_by_class.setdefault(cls, []).append(pv)
        return claims

    # -- PreFilter / Filter ------------------------------------------------------------

    def pre_filter(self, state: CycleState, pod: PodInfo) -> Status | set[str] | None:
        claims = self.pod_volume_claims(pod)
        if claims is None:
            state.data[NAME] = VolumeState(None)
            return Status(SKIP)
        if isinstance(claims, Status):
            return claims
        if claims.immediate:
            return Status(UNSCHEDULABLE_AND_UNRESOLVABLE, REASON_UNBOUND_IMMEDIATE)
        state.data[NAME] = VolumeState(claims)
        return None

    def _state(self, state: CycleState, pod: PodInfo) -> VolumeState | Status:
        s = state.data.get(NAME)
        if s is not None:
            return s
        st = self.pre_filter(state, pod)
        if st is not None and st.code != SKIP:
            return st
        return state.data[NAME]

    def filter(self, state: CycleState, pod: PodInfo, ni: NodeInfo) -> Status | None:
        s = self._state(state, pod)
        if isinstance(s, Status):
            return s.with_plugin(NAME)
        if s.claims is None:
            return None
        try:
            volumes, reasons = self.find_pod_volumes(s.claims, ni.labels, ni.name)
        except ValueError as e:
            return Status(ERROR, str(e), plugin=NAME)
        if reasons:
            return Status(UNSCHEDULABLE_AND_UNRESOLVABLE, *reasons, plugin=NAME)
        s.by_node[ni.name] = volumes
        return None

    def find_pod_volumes(self, claims: PodVolumeClaims, labels: Mapping[str, str],
                         node_name: str) -> tuple[PodVolumes, list[str]]:
        """(this node's decisions, the reasons it does not fit) — upstream FindPodVolumes.
        Raises ValueError for what upstream treats as an error (bad selector, missing class)."""
        out = PodVolumes()
        bound_ok = unbound_ok = pvs_found = True
        for pvc in claims.bound:  # checkBoundClaims
            pv = self.pv_cache.get((pvc.get("spec") or {}).get("volumeName") or "")
            if pv is None:
                pvs_found = False
                break
            if not check_node_affinity(pv, labels, node_name):
                bound_ok = False
                break
        if claims.delay:
            to_match: list[Obj] = []
            to_provision: list[Obj] = []
            other_node = False
            for pvc in claims.delay:
                annotations = (pvc.get("metadata") or {}).get("annotations") or {}
                if ANN_SELECTED_NODE in annotations:
                    if annotations[ANN_SELECTED_NODE] != node_name:
                        other_node = True  # being provisioned for another node
                        break
                    to_provision.append(pvc)
                else:
                    to_match.append(pvc)
            if other_node:
                unbound_ok = False
            else:
                if to_match:
                    unbound_ok, out.static_bindings, unmatched = self._find_matching(claims, to_match, labels,
                                                                                      node_name)
                    to_provision += unmatched
                if to_provision:
                    unbound_ok, out.dynamic_provisions = self._check_provisions(to_provision, labels)
        reasons = []
        if not bound_ok:
            reasons.append(ERR_REASON_NODE_CONFLICT)
        if not unbound_ok:
            reasons.append(ERR_REASON_BIND_CONFLICT)
        if not pvs_found:
            reasons.append(ERR_REASON_PV_NOT_EXIST)
        return out, reasons

    def _find_matching(self, claims: PodVolumeClaims, to_match: list[Obj], labels: Mapping[str, str],
                       node_name: str) -> tuple[bool, list[tuple[Obj, Obj]], list[Obj]]:
        """Smallest claims first, each its smallest fitting PV, no PV twice (upstream findMatchingVolumes)."""
        found = True
        chosen: set[str] = set()
        bindings: list[tuple[Obj, Obj]] = []
        unmatched: list[Obj] = []
        for pvc in sorted(to_match, key=requested_bytes):
            pvs = claims.pvs_by_class.get(storage_class_name(pvc), [])
            pv = find_matching_volume(pvc, pvs, node_labels=labels, node_name=node_name, excluded=chosen)
            if pv is None:
                unmatched.append(pvc)
                found = False
                continue
            chosen.add(pv["metadata"]["name"])
            bindings.append((pv, pvc))
        return found, bindings, unmatched

    def _check_provisions(self, to_provision: list[Obj], labels: Mapping[str, str]) -> tuple[bool, list[Obj]]:
        """Every claim can be provisioned on the node (upstream checkVolumeProvisions, no capacity check)."""
        out = []
        for pvc in to_provision:
            cls = storage_class_name(pvc)
            if not cls:
                raise ValueError(f'no class for claim "{key_of(pvc)}"')
            sc = self.storage_class(cls)
            if sc is None:
                raise ValueError(f'failed to find storage class "{cls}"')
            if not class_provisions(sc) or not topology_matches(sc, labels):
                return False, []
            out.append(pvc)
        return True, out

    # -- Reserve / Unreserve -----------------------------------------------------------

    def all_bound(self, pod: PodInfo) -> bool:
        for claim_name, _eph in pod_claim_names(pod.pod):
            pvc = self.pvc_cache.get(f"{pod.namespace}/{claim_name}")
            if pvc is None or not is_claim_bound(pvc):
                return False
        return True

    def reserve(self, state: CycleState, pod: PodInfo, node_name: str) -> Status | None:
        """Assume this node's decisions (upstream AssumePodVolumes)."""
        s = state.data.get(NAME)
        if s is None or s.claims is None:
            return None
        volumes = s.by_node.get(node_name)
        if volumes is None:  # not filtered in this cycle (cannot happen in a normal cycle)
            ni = self.handle.cache.get(node_name)
            if ni is None or ni.node is None:
                return Status(ERROR, f'node "{node_name}" not found')
            st = self.filter(state, pod, ni)
            if st is not None:
                return st
            volumes = s.by_node[node_name]
        if self.all_bound(pod):
            s.all_bound = True
            return None
        s.all_bound = False
        assumed = PodVolumes()
        try:
            for pv, pvc in volumes.static_bindings:
                new_pv, dirty = bind_volume_to_claim(pv, pvc)
                if dirty:
                    self.pv_cache.assume(new_pv)
                assumed.static_bindings.append((new_pv, pvc))
            for pvc in volumes.dynamic_provisions:
                clone = copy.deepcopy(pvc)
                clone.setdefault("metadata", {}).setdefault("annotations", {})[ANN_SELECTED_NODE] = node_name
                self.pvc_cache.assume(clone)
                assumed.dynamic_provisions.append(clone)
        except ValueError as e:
            self._revert(assumed)
            return Status(ERROR, str(e))
        s.by_node[node_name] = assumed
        return None

    def _revert(self, volumes: PodVolumes) -> None:
        for pv, _pvc in volumes.static_bindings:
            self.pv_cache.restore(pv["metadata"]["name"])
        for pvc in volumes.dynamic_provisions:
            self.pvc_cache.restore(key_of(pvc))

    def unreserve(self, state: CycleState, pod: PodInfo, node_name: str) -> None:
        s = state.data.get(NAME)
        volumes = s.by_node.get(node_name) if s is not None else None
        if volumes is not None:
            self._revert(volumes)

    # -- PreBind -----------------------------------------------------------------------

    async def pre_bind(self, state: CycleState, pod: PodInfo, node_name: str) -> Status | None:
        s = state.data.get(NAME)
        if s is None:  # no cycle state: decide from the informers now
            st = self.pre_filter(state, pod)
            if st is not None:
                return None if st.code == SKIP else st
            st = self.reserve(state, pod, node_name)
            if st is not None:
                return st
            s = state.data[NAME]
        if s.claims is None or s.all_bound:
            return None
        volumes = s.by_node.get(node_name)
        if volumes is None:
            return Status(ERROR, f'no pod volumes found for node "{node_name}"')
        return await self.bind_pod_volumes(pod, node_name, volumes)

    async def bind_pod_volumes(self, pod: PodInfo, node_name: str, volumes: PodVolumes) -> Status | None:
        """The API updates, then wait until the binder has bound every claim (upstream BindPodVolumes)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.bind_timeout
        try:
            written = await self._bind_api_update(pod, node_name, volumes)
        except ApiError as e:
            return Status(ERROR, e.message)
        except Exception as e:  # connection errors and such: retried like a failed binding
            return Status(ERROR, str(e) or type(e).__name__)
        log.info("pod %s: waiting for %d claim(s) to be bound for node %s", pod.key,
                 len(volumes.static_bindings) + len(volumes.dynamic_provisions), node_name)
        while True:
            try:
                if self.check_bindings(pod, node_name, volumes, written):
                    return None
            except BindingError as e:
                return Status(ERROR, f"binding volumes: {e}")
            remaining = deadline - loop.time()
            if remaining <= 0:
                return Status(ERROR, f"binding volumes: {TIMEOUT_MESSAGE}")
            await self.handle.changes.wait(remaining)

    async def _bind_api_update(self, pod: PodInfo, node_name: str, volumes: PodVolumes) -> dict[str, int]:
        """PUT the pre-bound PVs, patch the selected node onto the claims to provision; returns the
        resourceVersions written, by "pv:<name>" / "pvc:<ns>/<name>" (upstream bindAPIUpdate)."""
        api = self.handle.api
        written: dict[str, int] = {}
        if volumes.static_bindings:
            pvs_api = api.resource("v1", "persistentvolumes")
            for pv, pvc in volumes.static_bindings:
                name = pv["metadata"]["name"]
                current = self.pv_cache.api_object(name)
                if current is not None and _rv(current) >= _rv(pv) and not bind_volume_to_claim(current, pvc)[1]:
                    written[f"pv:{name}"] = _rv(current)  # already pre-bound to the claim
                    continue
                body = {**pv, "apiVersion": "v1", "kind": "PersistentVolume"}
                log.info("pod %s: pre-binding PV %s to claim %s", pod.key, name, key_of(pvc))
                new = await pvs_api.update(body)
                written[f"pv:{name}"] = _rv(new)
        if volumes.dynamic_provisions:
            pvcs_api = api.resource("v1", "persistentvolumeclaims")
            for pvc in volumes.dynamic_provisions:
                key = key_of(pvc)
                current = self.pvc_cache.api_object(key)
                if current is not None and ((current.get("metadata") or {}).get("annotations") or {}).get(
                        ANN_SELECTED_NODE) == node_name:
                    written[f"pvc:{key}"] = _rv(current)
                    continue
                meta = pvc["metadata"]
                log.info("pod %s: claim %s to be provisioned on node %s", pod.key, key, node_name)
                new = await pvcs_api.patch(meta["name"], {"metadata": {"annotations": {ANN_SELECTED_NODE: node_name}}},
                                           meta.get("namespace"))
                written[f"pvc:{key}"] = _rv(new)
        return written

    def check_bindings(self, pod: PodInfo, node_name: str, volumes: PodVolumes, written: Mapping[str, int]) -> bool:
        """Every claim we acted on is bound (True), not yet (False), or BindingError (upstream checkBindings).
        Reads the informers' objects, not the assumed ones."""
        ni = self.handle.cache.get(node_name)
        if ni is None or ni.node is None:
            raise BindingError(f'failed to get node "{node_name}": node "{node_name}" not found')
        pods = self.handle.stores.get("pods")
        if pods is not None:
            current = pods.get(pod.key)
            if current is None or ((current.get("metadata") or {}).get("uid") or pod.uid) != pod.uid:
                raise BindingError(f'pod does not exist any more: pods "{pod.name}" not found')
        labels = ni.labels
        for pv0, pvc0 in volumes.static_bindings:
            name = pv0["metadata"]["name"]
            pv = self.pv_cache.api_object(name)
            if pv is None:
                raise BindingError(f'failed to check binding: persistentvolume "{name}" not found')
            pvc = self.pvc_cache.api_object(key_of(pvc0))
            if pvc is None:
                raise BindingError(f'failed to check binding: persistentvolumeclaim "{key_of(pvc0)}" not found')
            if _rv(pv) < written.get(f"pv:{name}", 0):
                return False  # our update has not reached the informer yet
            if not check_node_affinity(pv, labels, node_name):
                raise BindingError(f'pv "{name}" node affinity doesn\'t match node "{node_name}": '
                                   "no matching NodeSelectorTerms")
            ref = (pv.get("spec") or {}).get("claimRef") or {}
            if not ref.get("uid"):
                raise BindingError(f'ClaimRef got reset for pv "{name}"')
            if not is_claim_bound(pvc):
                return False
        for pvc0 in volumes.dynamic_provisions:
            key = key_of(pvc0)
            pvc = self.pvc_cache.api_object(key)
            if pvc is None:
                raise BindingError(f'failed to check provisioning pvc: persistentvolumeclaim "{key}" not found')
            if _rv(pvc) < written.get(f"pvc:{key}", 0):
                return False
            if ((pvc.get("metadata") or {}).get("annotations") or {}).get(ANN_SELECTED_NODE) != node_name:
                # the provisioner removes the annotation when provisioning failed: retry scheduling
                raise BindingError(f'provisioning failed for PVC "{pvc["metadata"]["name"]}"')
            volume_name = (pvc.get("spec") or {}).get("volumeName")
            if volume_name:
                pv = self.pv_cache.api_object(volume_name)
                if pv is None:
                    return False  # not seen yet (or deleted: the claim will be unbound)
                if not check_node_affinity(pv, labels, node_name):
                    raise BindingError(f'pv "{volume_name}" node affinity doesn\'t match node "{node_name}": '
                                       "no matching NodeSelectorTerms")
            if not is_claim_bound(pvc):
                return False
        return True
