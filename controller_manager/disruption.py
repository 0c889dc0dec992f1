"""The disruption controller: PodDisruptionBudget status (upstream pkg/controller/disruption).

For each PDB it counts the pods its selector matches in its namespace and writes
- expectedPods: with minAvailable as a number, the number of matching pods; otherwise the
  scale of the pods' controllers (ReplicaSet — or its Deployment —, StatefulSet,
  ReplicationController, or any controller through its /scale subresource), each counted
  once; a matching pod without a controller is an error for percentages and maxUnavailable;
- desiredHealthy: minAvailable (a percentage rounded up of expectedPods), or
  expectedPods − maxUnavailable (percentage rounded up), at least 0;
- currentHealthy: Ready pods that are not being deleted nor recently evicted;
- disruptionsAllowed = currentHealthy − desiredHealthy (0 if negative or nothing expected);
- disruptedPods: the evictions the apiserver granted (pods/eviction adds them) still
  pending; an entry leaves once its pod is gone or being deleted, or after 2 minutes (the
  pod was expected to go and did not: event NotDeleted); the PDB is looked at again when
  the next entry expires;
- observedGeneration and the DisruptionAllowed condition (SufficientPods/InsufficientPods).
When the expected count cannot be computed, the PDB fails safe: disruptionsAllowed 0 and the
condition False with reason SyncFailed. Pods keeping a DisruptionTarget=True condition for
2 minutes without being deleted get it set back to False (stale disruption).
"""

from __future__ import annotations

import copy
import datetime as dt
import math
from typing import Any

from apimachinery.meta import controller_of, format_time, key_of, parse_time, split_key
from apimachinery.selectors import LabelSelectorError, selector_from_label_selector
from client import ApiError, deleted_object, is_conflict, is_not_found
from controller_manager.base import Controller, ControllerContext, register
from controller_manager.podutil import is_pod_ready, labels_of, pod_condition

Obj = dict[str, Any]

DELETION_TIMEOUT = 120.0  # upstream DeletionTimeout: an evicted pod should be gone within 2 minutes
STALE_DISRUPTION_TIMEOUT = 120.0
CONDITION = "DisruptionAllowed"


class NoControllerError(Exception):
    pass


def scaled_value(value: int | str, total: int, round_up: bool) -> int:
    """An int-or-percent against `total` (upstream GetScaledValueFromIntOrPercent)."""
    if isinstance(value, int):
        return value
    s = str(value)
    if not s.endswith("%"):
        try:
            return int(s)
        except ValueError:
            raise ValueError(f"invalid value for IntOrString: invalid value {s!r}") from None
    pct = int(s[:-1])
    exact = pct * total / 100
    return math.ceil(exact) if round_up else math.floor(exact)


def is_int(value: Any) -> bool:
    return isinstance(value, int) or (isinstance(value, str) and not value.endswith("%") and value.lstrip("-").isdigit())


def count_healthy(pods: list[Obj], disrupted: dict[str, str], now: dt.datetime) -> int:
    healthy = 0
    for pod in pods:
        meta = pod["metadata"]
        if meta.get("deletionTimestamp"):
            continue
        when = disrupted.get(meta["name"])
        if when is not None and parse_time(when) + dt.timedelta(seconds=DELETION_TIMEOUT) > now:
            continue  # evicted a moment ago: on its way out
        if is_pod_ready(pod):
            healthy += 1
    return healthy


def condition_up_to_date(pdb: Obj) -> bool:
    status = pdb.get("status") or {}
    for c in status.get("conditions") or []:
        if c.get("type") == CONDITION:
            want = "True" if (status.get("disruptionsAllowed") or 0) > 0 else "False"
            return c.get("observedGeneration") == status.get("observedGeneration") and c.get("status") == want
    return False


def set_condition(status: Obj, cond: Obj, now: dt.datetime) -> None:
    """metav1 SetStatusCondition: lastTransitionTime moves only when the status changes."""
    conds = [dict(c) for c in status.get("conditions") or []]
    for c in conds:
        if c.get("type") == cond["type"]:
            if c.get("status") != cond["status"]:
                c["lastTransitionTime"] = format_time(now)
            c.update({k: v for k, v in cond.items() if k != "lastTransitionTime"})
            status["conditions"] = conds
            return
    conds.append({**cond, "lastTransitionTime": format_time(now)})
    status["conditions"] = conds


@register
class DisruptionController(Controller):
    name = "disruption-controller"
    aliases = ("disruption",)
    service_account = "disruption-controller"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.pdbs = self.watch("policy/v1", "poddisruptionbudgets")
        self.pods = self.informer("v1", "pods")
        self.pods.add_handler(self._pod_added, self._pod_updated, self._pod_deleted)
        self.replicasets = self.informer("apps/v1", "replicasets")
        self.deployments = self.informer("apps/v1", "deployments")
        self.statefulsets = self.informer("apps/v1", "statefulsets")
        self.pdbs_api = self.client.resource("policy/v1", "poddisruptionbudgets")
        self.pods_api = self.client.resource("v1", "pods")

    # -- informer events -----------------------------------------------------------------

    def _pdbs_for_pod(self, pod: Obj) -> list[Obj]:
        ns = pod["metadata"].get("namespace")
        labels = labels_of(pod)
        out = []
        for pdb in self.pdbs.store.by_index("namespace", ns) if ns else ():
            try:
                sel = selector_from_label_selector((pdb.get("spec") or {}).get("selector"))
            except (LabelSelectorError, ValueError):
                continue
            if sel.matches(labels):
                out.append(pdb)
        return out

    def _pod_added(self, pod: Obj) -> None:
        for pdb in self._pdbs_for_pod(pod):
            self.enqueue(pdb)
        self._check_stale_disruption(pod)

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        if old["metadata"].get("resourceVersion") == new["metadata"].get("resourceVersion"):
            return
        keys = {key_of(p) for p in self._pdbs_for_pod(old)} | {key_of(p) for p in self._pdbs_for_pod(new)}
        for k in keys:
            self.queue.add(k)
        self._check_stale_disruption(new)

    def _pod_deleted(self, item: Any) -> None:
        for pdb in self._pdbs_for_pod(deleted_object(item)):
            self.enqueue(pdb)

    # -- stale DisruptionTarget conditions ----------------------------------------------

    def _stale_since(self, pod: Obj) -> dt.datetime | None:
        c = pod_condition(pod, "DisruptionTarget")
        if c is None or c.get("status") != "True" or pod["metadata"].get("deletionTimestamp"):
            return None
        try:
            return parse_time(c["lastTransitionTime"]) if c.get("lastTransitionTime") else self.clock.now()
        except ValueError:
            return self.clock.now()

    def _check_stale_disruption(self, pod: Obj) -> None:
        since = self._stale_since(pod)
        if since is None:
            return
        left = (since - self.clock.now()).total_seconds() + STALE_DISRUPTION_TIMEOUT
        self.queue.add_after(f"pod:{key_of(pod)}", max(0.0, left))

    async def _sync_stale_disruption(self, pod_key: str) -> None:
        pod = self.pods.store.get(pod_key)
        if pod is None:
            return
        since = self._stale_since(pod)
        if since is None:
            return
        left = (since - self.clock.now()).total_seconds() + STALE_DISRUPTION_TIMEOUT
        if left > 0:
            self.queue.add_after(f"pod:{pod_key}", left)
            return
        ns, name = split_key(pod_key)
        patch = {"status": {"conditions": [{"type": "DisruptionTarget", "status": "False",
                                            "lastTransitionTime": format_time(self.clock.now())}]}}
        try:
            await self.pods_api.patch(name, patch, ns, "strategic", subresource="status")
        except ApiError as e:
            if not is_not_found(e):
                raise

    # -- the sync ------------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        if key.startswith("pod:"):
            await self._sync_stale_disruption(key[4:])
            return
        pdb = self.pdbs.store.get(key)
        if pdb is None:
            return
        try:
            await self.try_sync(pdb)
        except Exception as e:
            if is_conflict(e):
                raise  # a newer PDB exists: retry with it, no fail-safe needed
            self.log.warning("syncing PDB %s failed: %s", key, e)
            await self.fail_safe(pdb, e)

    async def try_sync(self, pdb: Obj) -> None:
        now = self.clock.now()
        pods = self.pods_for(pdb)
        if not pods:
            self.recorder.event(pdb, "Normal", "NoPods", "No matching pods found")
        try:
            expected, desired = await self.expected_pod_count(pdb, pods)
        except Exception as e:
            self.recorder.event(pdb, "Warning", "CalculateExpectedPodCountFailed",
                                f"Failed to calculate the number of expected pods: {e}")
            raise
        disrupted, recheck = self.build_disrupted_pods(pods, pdb, now)
        healthy = count_healthy(pods, disrupted, now)
        await self.update_status(pdb, healthy, desired, expected, disrupted, now)
        if recheck is not None:
            self.queue.add_after(key_of(pdb), max(0.0, (recheck - now).total_seconds()))

    def pods_for(self, pdb: Obj) -> list[Obj]:
        sel = selector_from_label_selector((pdb.get("spec") or {}).get("selector"))
        return [p for p in self.pods.store.by_index("namespace", pdb["metadata"]["namespace"]) if sel.matches(labels_of(p))]

    async def expected_pod_count(self, pdb: Obj, pods: list[Obj]) -> tuple[int, int]:
        """(expectedPods, desiredHealthy)."""
        spec = pdb.get("spec") or {}
        if spec.get("maxUnavailable") is not None:
            expected = await self.expected_scale(pdb, pods)
            max_unavailable = scaled_value(spec["maxUnavailable"], expected, True)
            return expected, max(0, expected - max_unavailable)
        min_available = spec.get("minAvailable")
        if min_available is None:
            return len(pods), 0
        if is_int(min_available):
            return len(pods), int(min_available)
        expected = await self.expected_scale(pdb, pods)
        return expected, scaled_value(min_available, expected, True)

    async def expected_scale(self, pdb: Obj, pods: list[Obj]) -> int:
        """The replicas of the controllers of `pods`, each controller counted once."""
        scales: dict[str, int] = {}
        for pod in pods:
            ref = controller_of(pod)
            if ref is None:
                raise NoControllerError(f"found no controller ref for pod {pod['metadata']['name']!r}")
            if ref.get("uid") in scales:
                continue
            found = await self.controller_scale(pod, ref)
            if found is None:
                raise NoControllerError(f"found no controllers for pod {pod['metadata']['name']!r}")
            uid, replicas = found
            scales[uid] = replicas
        return sum(scales.values())

    async def controller_scale(self, pod: Obj, ref: Obj) -> tuple[str, int] | None:
        """(uid, replicas) of the workload a pod's controller reference leads to."""
        ns = pod["metadata"]["namespace"]
        group = ref.get("apiVersion", "").rpartition("/")[0]
        kind = ref.get("kind")
        if group == "apps" and kind == "ReplicaSet":
            rs = self.replicasets.store.get_by_name(ns, ref.get("name", ""))
            if rs is None or rs["metadata"].get("uid") != ref.get("uid"):
                return None
            owner = controller_of(rs)
            if owner is not None and owner.get("kind") == "Deployment" and owner.get("apiVersion", "").startswith("apps/"):
                d = self.deployments.store.get_by_name(ns, owner.get("name", ""))
                if d is None or d["metadata"].get("uid") != owner.get("uid"):
                    return None
                return d["metadata"]["uid"], int((d.get("spec") or {}).get("replicas", 1))
            return rs["metadata"]["uid"], int((rs.get("spec") or {}).get("replicas", 1))
        if group == "apps" and kind == "StatefulSet":
            obj = self.statefulsets.store.get_by_name(ns, ref.get("name", ""))
            if obj is None or obj["metadata"].get("uid") != ref.get("uid"):
                return None
            return obj["metadata"]["uid"], int((obj.get("spec") or {}).get("replicas", 1))
        # anything else with a /scale subresource (ReplicationControllers too: upstream getScaleController)
        try:
            info = await self.client.discovery.resolve_kind(ref.get("apiVersion", ""), kind or "")
            scale = await self.client.resource(info.api_version, info.plural).get_subresource(
                ref.get("name", ""), "scale", ns)
        except ApiError as e:
            if is_not_found(e):
                return None
            raise
        if not isinstance(scale, dict) or (scale.get("metadata") or {}).get("uid") not in (None, ref.get("uid")):
            return None
        return ref.get("uid", ""), int((scale.get("spec") or {}).get("replicas") or 0)

    def build_disrupted_pods(self, pods: list[Obj], pdb: Obj, now: dt.datetime) -> tuple[dict[str, str], dt.datetime | None]:
        disrupted = (pdb.get("status") or {}).get("disruptedPods") or {}
        result: dict[str, str] = {}
        recheck: dt.datetime | None = None
        for pod in pods:
            meta = pod["metadata"]
            if meta.get("deletionTimestamp"):
                continue
            when = disrupted.get(meta["name"])
            if when is None:
                continue
            expected_deletion = parse_time(when) + dt.timedelta(seconds=DELETION_TIMEOUT)
            if expected_deletion < now:
                self.recorder.event(pod, "Warning", "NotDeleted",
                                    f"Pod was expected by PDB {pdb['metadata']['namespace']}/{pdb['metadata']['name']} "
                                    "to be deleted but it wasn't")
            else:
                if recheck is None or expected_deletion < recheck:
                    recheck = expected_deletion
                result[meta["name"]] = when
        return result, recheck

    async def update_status(self, pdb: Obj, healthy: int, desired: int, expected: int, disrupted: dict[str, str],
                            now: dt.datetime) -> None:
        allowed = healthy - desired
        if expected <= 0 or allowed <= 0:
            allowed = 0
        status = pdb.get("status") or {}
        generation = pdb["metadata"].get("generation", 0)
        if (status.get("currentHealthy") == healthy and status.get("desiredHealthy") == desired
                and status.get("expectedPods") == expected and status.get("disruptionsAllowed") == allowed
                and (status.get("disruptedPods") or {}) == disrupted
                and status.get("observedGeneration") == generation and condition_up_to_date(pdb)):
            return
        new = copy.deepcopy(pdb)
        new_status: Obj = {"currentHealthy": healthy, "desiredHealthy": desired, "expectedPods": expected,
                           "disruptionsAllowed": allowed, "observedGeneration": generation,
                           "conditions": list(status.get("conditions") or [])}
        if disrupted:
            new_status["disruptedPods"] = disrupted
        ok = allowed > 0
        set_condition(new_status, {"type": CONDITION, "status": "True" if ok else "False",
                                   "reason": "SufficientPods" if ok else "InsufficientPods", "message": "",
                                   "observedGeneration": generation}, now)
        new["status"] = new_status
        await self.pdbs_api.update_status(new)

    async def fail_safe(self, pdb: Obj, err: Exception) -> None:
        """Allow no disruption while the budget cannot be computed."""
        new = copy.deepcopy(pdb)
        status = new.setdefault("status", {})
        status["disruptionsAllowed"] = 0
        set_condition(status, {"type": CONDITION, "status": "False", "reason": "SyncFailed", "message": str(err),
                               "observedGeneration": status.get("observedGeneration", 0)}, self.clock.now())
        try:
            await self.pdbs_api.update_status(new)
        except ApiError as e:
            if not (is_conflict(e) or is_not_found(e)):
                raise
