"""The ReplicaSet controller: keep `spec.replicas` pods matching the selector, owned by the set.

Per sync of a ReplicaSet (upstream pkg/controller/replicaset):
- claim pods: keep owned pods that still match, release owned ones that no longer match,
  adopt matching orphans (ownerReferences with controller=true);
- unless expectations are outstanding (creations/deletions this controller made and its
  informer has not seen yet), create the missing pods (in slow-start batches 1, 2, 4, ...,
  at most 500 per sync) or delete the surplus, best candidates first: unscheduled, then
  pending, not ready, lower deletion cost, doubled up on a node, ready for less time,
  restarted more, newer;
- write status: replicas, fullyLabeledReplicas, readyReplicas, availableReplicas (ready for
  minReadySeconds), observedGeneration, and the ReplicaFailure condition when pods could
  not be created/deleted.

controller_manager.replication runs this same controller over core/v1 ReplicationControllers,
overriding only `label_selector` (an RC's selector is a label map).
"""

from __future__ import annotations

import asyncio
import copy
from typing import Any

from apimachinery.meta import controller_of, key_of, split_key
from apimachinery.selectors import LabelSelectorError, selector_from_label_selector, selector_from_set
from client import deleted_object, is_not_found
from controller_manager.base import Controller, ControllerContext, add_index_once, register
from controller_manager.conditions import new_condition, remove_condition, set_condition
from controller_manager.expectations import ControllerExpectations
from controller_manager.podcontrol import (
    CONTROLLER_INDEX,
    ControllerRefManager,
    PodControl,
    controller_ref,
    error_message,
    index_by_controller,
    owned_or_orphans,
    resolve_controller_ref,
    selecting,
    slow_start_batch,
    spec_selector,
)
from controller_manager.podutil import (
    filter_active_pods,
    is_pod_available,
    is_pod_ready,
    labels_of,
    pod_key,
    rank_pods_for_deletion,
)

Obj = dict[str, Any]

BURST_REPLICAS = 500  # upstream: at most this many creations/deletions per sync
SLOW_START_INITIAL_BATCH = 1
STATUS_UPDATE_RETRIES = 1


@register
class ReplicaSetController(Controller):
    name = "replicaset-controller"
    aliases = ("replicaset",)
    workers_option = "concurrent_replicaset_syncs"
    service_account = "replicaset-controller"

    api_version = "apps/v1"
    kind = "ReplicaSet"
    plural = "replicasets"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.expectations = ControllerExpectations(self.clock.monotonic)
        self.burst_replicas = BURST_REPLICAS
        self.sets = self.informer(self.api_version, self.plural)
        add_index_once(self.sets, CONTROLLER_INDEX, index_by_controller)
        self.sets.add_handler(self.enqueue, self._set_updated, self._set_deleted)
        self.pods = self.informer("v1", "pods")
        add_index_once(self.pods, CONTROLLER_INDEX, index_by_controller)
        self.pods.add_handler(self._pod_added, self._pod_updated, self._pod_deleted)
        self.sets_api = self.client.resource(self.api_version, self.plural)
        self.pod_control = PodControl(self.client, self.recorder)

    # -- informer events -----------------------------------------------------------------

    def _set_updated(self, old: Obj, new: Obj) -> None:
        if old["metadata"].get("uid") != new["metadata"].get("uid"):
            self._set_deleted(old)  # deleted and re-created under the same name
        self.enqueue(new)

    def _set_deleted(self, item: Any) -> None:
        rs = deleted_object(item)
        key = key_of(rs)
        self.expectations.delete(key)
        self.queue.add(key)

    def _owner_of(self, pod: Obj) -> Obj | None:
        """The set a pod's controller reference names, if it is one of ours (uid must match)."""
        return resolve_controller_ref(self.sets.store, pod, self.kind)

    def label_selector(self, rs: Obj) -> Obj | None:
        """The set's selector as a metav1.LabelSelector (the ReplicationController manager converts
        its label map here: the only place where the two kinds differ for this controller)."""
        return spec_selector(rs)

    def _sets_selecting(self, pod: Obj) -> list[Obj]:
        """Sets in the pod's namespace whose selector matches it (for orphans)."""
        return selecting(self.sets.store, pod, self.label_selector)

    def _pod_added(self, pod: Obj) -> None:
        if pod["metadata"].get("deletionTimestamp"):
            # a restarted controller can see a pod that is already being deleted: a delete to us
            self._pod_deleted(pod)
            return
        if controller_of(pod) is not None:
            rs = self._owner_of(pod)
            if rs is None:
                return
            key = key_of(rs)
            self.expectations.creation_observed(key)
            self.queue.add(key)
            return
        for rs in self._sets_selecting(pod):
            self.enqueue(rs)

    def _pod_updated(self, old: Obj, cur: Obj) -> None:
        if old["metadata"].get("resourceVersion") == cur["metadata"].get("resourceVersion"):
            return  # a resync: nothing changed
        label_changed = labels_of(old) != labels_of(cur)
        if cur["metadata"].get("deletionTimestamp"):
            # graceful deletion started: count it as the delete now (expectations track it by key)
            self._pod_deleted(cur)
            if label_changed:
                self._pod_deleted(old)
            return
        cur_ref, old_ref = controller_of(cur), controller_of(old)
        ref_changed = (cur_ref or {}).get("uid") != (old_ref or {}).get("uid")
        if ref_changed and old_ref is not None:
            rs = self._owner_of(old)
            if rs is not None:
                self.enqueue(rs)
        if cur_ref is not None:
            rs = self._owner_of(cur)
            if rs is None:
                return
            self.enqueue(rs)
            mrs = (rs.get("spec") or {}).get("minReadySeconds") or 0
            if mrs > 0 and not is_pod_ready(old) and is_pod_ready(cur):
                # check availability again once minReadySeconds have passed
                self.enqueue_after(rs, mrs + 1)
            return
        if label_changed or ref_changed:
            for rs in self._sets_selecting(cur):
                self.enqueue(rs)

    def _pod_deleted(self, item: Any) -> None:
        pod = deleted_object(item)
        if controller_of(pod) is None:
            return
        rs = self._owner_of(pod)
        if rs is None:
            return
        key = key_of(rs)
        self.expectations.deletion_observed(key, pod_key(pod))
        self.queue.add(key)

    # -- sync ------------------------------------------------------------------------------

    async def _fresh(self, namespace: str, name: str) -> Obj | None:
        try:
            return await self.sets_api.get(name, namespace)
        except Exception as e:
            if is_not_found(e):
                return None
            raise

    def related_pods(self, rs: Obj) -> list[Obj]:
        """Pods of every set with the same controller as `rs` (siblings of a Deployment), for ranking."""
        ref = controller_of(rs)
        sets = [rs]
        if ref is not None:
            sets = self.sets.store.by_index(CONTROLLER_INDEX, ref["uid"]) or [rs]
        out: list[Obj] = []
        for s in sets:
            out += self.pods.store.by_index(CONTROLLER_INDEX, s["metadata"]["uid"])
        return out

    async def sync(self, key: str) -> None:
        namespace, name = split_key(key)
        rs = self.sets.store.get(key)
        if rs is None:
            self.expectations.delete(key)
            return
        needs_sync = self.expectations.satisfied(key)
        try:
            selector = selector_from_label_selector(self.label_selector(rs))
        except (LabelSelectorError, ValueError) as e:
            self.log.error("%s: invalid selector: %s", key, e)
            return
        candidates = filter_active_pods(owned_or_orphans(self.pods.store, rs))
        manager = ControllerRefManager(rs, selector, self.client.resource("v1", "pods"),
                                       lambda: self._fresh(namespace, name))
        pods = await manager.claim(candidates)
        manage_error: BaseException | None = None
        if needs_sync and not rs["metadata"].get("deletionTimestamp"):
            try:
                await self.manage_replicas(pods, rs)
            except Exception as e:
                manage_error = e
        status = self.calculate_status(rs, pods, manage_error)
        updated = await self.update_status(rs, status)
        spec = updated.get("spec") or {}
        replicas = spec.get("replicas", 1)
        st = updated.get("status") or {}
        mrs = spec.get("minReadySeconds") or 0
        if (manage_error is None and mrs > 0 and st.get("readyReplicas", 0) == replicas
                and st.get("availableReplicas", 0) != replicas):
            self.enqueue_after(key, mrs)
        if manage_error is not None:
            raise manage_error

    async def manage_replicas(self, pods: list[Obj], rs: Obj) -> None:
        key = key_of(rs)
        namespace = rs["metadata"].get("namespace") or ""
        diff = len(pods) - (rs.get("spec") or {}).get("replicas", 1)
        if diff < 0:
            want = min(-diff, self.burst_replicas)
            # expectations first: the informer may deliver the new pods before create() returns
            self.expectations.expect_creations(key, want)
            template = (rs.get("spec") or {}).get("template") or {}
            ref = controller_ref(rs)

            async def create() -> None:
                try:
                    await self.pod_control.create_from_template(namespace, template, rs, ref)
                except Exception as e:
                    if _namespace_terminating(e):
                        return  # every create would fail: nothing to do until the namespace is gone
                    raise

            created, err = await slow_start_batch(want, SLOW_START_INITIAL_BATCH, create)
            skipped = want - created
            if skipped > 0:
                # never attempted (or failed): the informer will not see them
                self.expectations.lower(key, add=skipped)
            if err is not None:
                raise err
        elif diff > 0:
            count = min(diff, self.burst_replicas)
            ranked = rank_pods_for_deletion(pods, self.related_pods(rs), self.clock.now())
            victims = ranked[:count]
            self.expectations.expect_deletions(key, [pod_key(p) for p in victims])

            async def delete(pod: Obj) -> BaseException | None:
                try:
                    await self.pod_control.delete_pod(namespace, pod["metadata"]["name"], rs)
                except Exception as e:
                    # the informer will not see this deletion
                    self.expectations.deletion_observed(key, pod_key(pod))
                    if not is_not_found(e):
                        return e
                return None

            errors = [e for e in await asyncio.gather(*(delete(p) for p in victims)) if e is not None]
            if errors:
                raise errors[0]

    def calculate_status(self, rs: Obj, pods: list[Obj], manage_error: BaseException | None) -> Obj:
        spec = rs.get("spec") or {}
        status = copy.deepcopy(rs.get("status") or {})
        template_selector = selector_from_set(((spec.get("template") or {}).get("metadata") or {}).get("labels"))
        now = self.clock.now()
        mrs = spec.get("minReadySeconds") or 0
        fully_labeled = ready = available = 0
        for pod in pods:
            if template_selector.matches(labels_of(pod)):
                fully_labeled += 1
            if is_pod_ready(pod):
                ready += 1
                if is_pod_available(pod, mrs, now):
                    available += 1
        conds = status.get("conditions") or []
        failure = next((c for c in conds if c.get("type") == "ReplicaFailure"), None)
        if manage_error is not None and failure is None:
            diff = len(pods) - spec.get("replicas", 1)
            reason = "FailedCreate" if diff < 0 else "FailedDelete" if diff > 0 else ""
            set_condition(status, new_condition("ReplicaFailure", "True", reason, error_message(manage_error), now))
        elif manage_error is None and failure is not None:
            remove_condition(status, "ReplicaFailure")
        status["replicas"] = len(pods)
        status["fullyLabeledReplicas"] = fully_labeled
        status["readyReplicas"] = ready
        status["availableReplicas"] = available
        return status

    async def update_status(self, rs: Obj, status: Obj) -> Obj:
        """PUT the status if it changed (or the generation is new); one retry on a fresh copy."""
        generation = rs["metadata"].get("generation")
        old = rs.get("status") or {}
        if _status_equal(old, status) and old.get("observedGeneration") == generation:
            return rs
        attempt = 0
        current = rs
        while True:
            status["observedGeneration"] = current["metadata"].get("generation")
            body = {**current, "status": _omit_zero(status)}
            try:
                return await self.sets_api.update_status(body)
            except Exception:
                if attempt >= STATUS_UPDATE_RETRIES:
                    raise
            attempt += 1
            current = await self.sets_api.get(current["metadata"]["name"], current["metadata"].get("namespace"))


def _namespace_terminating(e: BaseException) -> bool:
    details = getattr(e, "details", None) or {}
    return any(c.get("reason") == "NamespaceTerminating" for c in details.get("causes") or [])


_OMITEMPTY = ("fullyLabeledReplicas", "readyReplicas", "availableReplicas", "observedGeneration")


def _omit_zero(status: Obj) -> Obj:
    """Drop zero-valued omitempty fields, as upstream's JSON has them."""
    out = {k: v for k, v in status.items() if not (k in _OMITEMPTY and not v)}
    if not out.get("conditions"):
        out.pop("conditions", None)
    return out


def _status_equal(a: Obj, b: Obj) -> bool:
    fields = ("replicas", "fullyLabeledReplicas", "readyReplicas", "availableReplicas")
    return all((a.get(f) or 0) == (b.get(f) or 0) for f in fields) and (a.get("conditions") or []) == (
        b.get("conditions") or [])
