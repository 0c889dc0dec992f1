"""The StatefulSet controller: pods with stable identities `<set>-<ordinal>` (upstream pkg/controller/statefulset).

Per sync: compute the update revision (a ControllerRevision of the template; an equal older
revision is reused with a new number — a rollback), then walk the ordinals:
- OrderedReady: create `<set>-0`, wait until it is Running and Ready (and available for
  minReadySeconds), then `<set>-1`, ...; scale down from the highest ordinal, one at a time,
  each only when all others are healthy; a failed or succeeded pod is deleted and recreated;
- Parallel: create and delete all at once, without waiting;
- RollingUpdate deletes the highest-ordinal pod not on the update revision (down to
  `partition`), waiting for each replacement to be healthy; OnDelete never deletes.
Pods get hostname/subdomain (`spec.serviceName`), the labels `statefulset.kubernetes.io/pod-name`,
`apps.kubernetes.io/pod-index`, `controller-revision-hash`, and a PersistentVolumeClaim
`<template>-<set>-<ordinal>` per volumeClaimTemplate (created before the pod, kept after it).
"""

from __future__ import annotations

import asyncio
import copy
import re
from typing import Any

from apimachinery.meta import controller_of
from apimachinery.selectors import LabelSelectorError, selector_from_label_selector
from client import NORMAL, WARNING, deleted_object, is_already_exists, is_conflict, is_not_found
from controller_manager import history
from controller_manager.base import Controller, ControllerContext, add_index_once, register
from controller_manager.podcontrol import (
    CONTROLLER_INDEX,
    ControllerRefManager,
    controller_ref,
    error_message,
    index_by_controller,
    owned_or_orphans,
    pod_from_template,
    resolve_controller_ref,
    selecting,
)
from controller_manager.podutil import is_pod_available, is_pod_ready, is_terminating, labels_of, phase

Obj = dict[str, Any]

POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"
_ORDINAL = re.compile(r"^(.*)-([0-9]+)$")


# -- identity ----------------------------------------------------------------------------

def parent_and_ordinal(pod: Obj) -> tuple[str, int]:
    m = _ORDINAL.match(pod["metadata"]["name"])
    if not m:
        return "", -1
    return m.group(1), int(m.group(2))


def ordinal_of(pod: Obj) -> int:
    return parent_and_ordinal(pod)[1]


def start_ordinal(sts: Obj) -> int:
    return int((((sts.get("spec") or {}).get("ordinals") or {}).get("start")) or 0)


def end_ordinal(sts: Obj) -> int:
    return start_ordinal(sts) + int((sts.get("spec") or {}).get("replicas", 1)) - 1


def pod_name(sts: Obj, ordinal: int) -> str:
    return f"{sts['metadata']['name']}-{ordinal}"


def claim_name(sts: Obj, template_name: str, ordinal: int) -> str:
    return f"{template_name}-{sts['metadata']['name']}-{ordinal}"


def pod_revision(pod: Obj) -> str:
    return labels_of(pod).get(history.REVISION_LABEL, "")


def is_created(pod: Obj) -> bool:
    return bool(phase(pod))


def is_running_and_ready(pod: Obj) -> bool:
    return phase(pod) == "Running" and is_pod_ready(pod)


def is_healthy(pod: Obj) -> bool:
    return is_running_and_ready(pod) and not is_terminating(pod)


def identity_matches(sts: Obj, pod: Obj) -> bool:
    parent, ordinal = parent_and_ordinal(pod)
    labels = labels_of(pod)
    return (ordinal >= 0 and parent == sts["metadata"]["name"] and pod["metadata"]["name"] == pod_name(sts, ordinal)
            and pod["metadata"].get("namespace") == sts["metadata"].get("namespace")
            and labels.get(POD_NAME_LABEL) == pod["metadata"]["name"] and labels.get(POD_INDEX_LABEL) == str(ordinal))


def _claim_volumes(sts: Obj, ordinal: int) -> dict[str, Obj]:
    out = {}
    for t in (sts.get("spec") or {}).get("volumeClaimTemplates") or []:
        name = (t.get("metadata") or {}).get("name")
        if name:
            out[name] = {"name": name, "persistentVolumeClaim": {"claimName": claim_name(sts, name, ordinal)}}
    return out


def storage_matches(sts: Obj, pod: Obj) -> bool:
    ordinal = ordinal_of(pod)
    if ordinal < 0:
        return False
    volumes = {v.get("name"): v for v in (pod.get("spec") or {}).get("volumes") or []}
    for name, want in _claim_volumes(sts, ordinal).items():
        have = volumes.get(name)
        if have is None or (have.get("persistentVolumeClaim") or {}).get("claimName") != want["persistentVolumeClaim"]["claimName"]:
            return False
    return True


def set_identity(sts: Obj, pod: Obj, ordinal: int) -> None:
    pod["metadata"]["name"] = pod_name(sts, ordinal)
    pod["metadata"]["namespace"] = sts["metadata"].get("namespace")
    labels = pod["metadata"].setdefault("labels", {})
    labels[POD_NAME_LABEL] = pod["metadata"]["name"]
    labels[POD_INDEX_LABEL] = str(ordinal)


def set_storage(sts: Obj, pod: Obj, ordinal: int) -> None:
    claims = _claim_volumes(sts, ordinal)
    if not claims:
        return
    spec = pod.setdefault("spec", {})
    volumes = [v for v in spec.get("volumes") or [] if v.get("name") not in claims]
    spec["volumes"] = volumes + list(claims.values())


def new_pod(sts: Obj, ordinal: int, revision_name: str) -> Obj:
    pod = pod_from_template((sts.get("spec") or {}).get("template") or {}, sts, controller_ref(sts))
    pod["metadata"].pop("generateName", None)
    set_identity(sts, pod, ordinal)
    pod["spec"]["hostname"] = pod["metadata"]["name"]
    if (sts.get("spec") or {}).get("serviceName"):
        pod["spec"]["subdomain"] = sts["spec"]["serviceName"]
    set_storage(sts, pod, ordinal)
    pod["metadata"]["labels"][history.REVISION_LABEL] = revision_name
    return pod


def apply_revision(sts: Obj, rev: Obj) -> Obj:
    """The set with the revision's template (what its ControllerRevision patch restores)."""
    out = copy.deepcopy(sts)
    tpl = copy.deepcopy(((rev.get("data") or {}).get("spec") or {}).get("template") or {})
    tpl.pop("$patch", None)
    out.setdefault("spec", {})["template"] = tpl
    return out


def new_versioned_pod(current_set: Obj, update_set: Obj, current_rev: str, update_rev: str, ordinal: int) -> Obj:
    us = (current_set.get("spec") or {}).get("updateStrategy") or {}
    if us.get("type", "RollingUpdate") == "RollingUpdate":
        ru = us.get("rollingUpdate")
        if ru is None:
            keep_current = ordinal < start_ordinal(current_set) + ((current_set.get("status") or {}).get("currentReplicas") or 0)
        else:
            keep_current = ordinal < start_ordinal(current_set) + int(ru.get("partition") or 0)
        if keep_current:
            return new_pod(current_set, ordinal, current_rev)
    return new_pod(update_set, ordinal, update_rev)


def replica_status(pods: list[Obj | None], min_ready: int, now: Any, current: str, update: str) -> Obj:
    st = {"replicas": 0, "readyReplicas": 0, "availableReplicas": 0, "currentReplicas": 0, "updatedReplicas": 0}
    for pod in pods:
        if pod is None:
            continue
        if is_created(pod):
            st["replicas"] += 1
        if is_running_and_ready(pod):
            st["readyReplicas"] += 1
            if is_pod_available(pod, min_ready, now):
                st["availableReplicas"] += 1
        if is_created(pod) and not is_terminating(pod):
            rev = pod_revision(pod)
            if rev == current:
                st["currentReplicas"] += 1
            if rev == update:
                st["updatedReplicas"] += 1
    return st


# -- the controller ----------------------------------------------------------------------

@register
class StatefulSetController(Controller):
    name = "statefulset-controller"
    aliases = ("statefulset",)
    workers_option = "concurrent_statefulset_syncs"
    service_account = "statefulset-controller"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.sets = self.watch("apps/v1", "statefulsets")
        self.pods = self.informer("v1", "pods")
        add_index_once(self.pods, CONTROLLER_INDEX, index_by_controller)
        self.pods.add_handler(self._pod_added, self._pod_updated, self._pod_deleted)
        self.revisions = self.informer("apps/v1", "controllerrevisions")
        add_index_once(self.revisions, CONTROLLER_INDEX, index_by_controller)
        self.sets_api = self.client.resource("apps/v1", "statefulsets")
        self.pods_api = self.client.resource("v1", "pods")
        self.claims_api = self.client.resource("v1", "persistentvolumeclaims")
        self.revisions_api = self.client.resource("apps/v1", "controllerrevisions")

    # -- events ---------------------------------------------------------------------------

    def _owner(self, pod: Obj) -> Obj | None:
        return resolve_controller_ref(self.sets.store, pod, "StatefulSet")

    def _sets_selecting(self, pod: Obj) -> list[Obj]:
        return selecting(self.sets.store, pod)

    def _pod_added(self, pod: Obj) -> None:
        if pod["metadata"].get("deletionTimestamp"):
            self._pod_deleted(pod)
            return
        sts = self._owner(pod)
        if sts is not None:
            self.enqueue(sts)
        elif controller_of(pod) is None:
            for sts in self._sets_selecting(pod):
                self.enqueue(sts)

    def _pod_updated(self, old: Obj, cur: Obj) -> None:
        if old["metadata"].get("resourceVersion") == cur["metadata"].get("resourceVersion"):
            return
        old_ref, cur_ref = controller_of(old), controller_of(cur)
        if old_ref is not None and (old_ref or {}).get("uid") != (cur_ref or {}).get("uid"):
            sts = self._owner(old)
            if sts is not None:
                self.enqueue(sts)
        if cur_ref is not None:
            sts = self._owner(cur)
            if sts is not None:
                self.enqueue(sts)
                mrs = (sts.get("spec") or {}).get("minReadySeconds") or 0
                if mrs > 0 and not is_pod_ready(old) and is_pod_ready(cur):
                    self.enqueue_after(sts, mrs + 1)
            return
        if labels_of(old) != labels_of(cur) or old_ref is not None:
            for sts in self._sets_selecting(cur):
                self.enqueue(sts)

    def _pod_deleted(self, item: Any) -> None:
        sts = self._owner(deleted_object(item))
        if sts is not None:
            self.enqueue(sts)

    # -- sync ------------------------------------------------------------------------------

    async def _fresh(self, sts: Obj) -> Obj | None:
        try:
            return await self.sets_api.get(sts["metadata"]["name"], sts["metadata"].get("namespace"))
        except Exception as e:
            if is_not_found(e):
                return None
            raise

    async def sync(self, key: str) -> None:
        cached = self.sets.store.get(key)
        if cached is None:
            return
        sts = copy.deepcopy(cached)
        try:
            selector = selector_from_label_selector((sts.get("spec") or {}).get("selector"))
        except (LabelSelectorError, ValueError) as e:
            self.log.error("%s: invalid selector: %s", key, e)
            return
        revs = await ControllerRefManager(sts, selector, self.revisions_api, lambda: self._fresh(sts)).claim(
            owned_or_orphans(self.revisions.store, sts))
        pods = await ControllerRefManager(sts, selector, self.pods_api, lambda: self._fresh(sts)).claim(
            owned_or_orphans(self.pods.store, sts))
        status = await self.update_stateful_set(sts, pods, history.sort_revisions(revs))
        mrs = (sts.get("spec") or {}).get("minReadySeconds") or 0
        if mrs > 0 and status is not None and status.get("availableReplicas") != (sts.get("spec") or {}).get("replicas", 1):
            self.enqueue_after(sts, mrs)

    async def revisions_for(self, sts: Obj, revs: list[Obj]) -> tuple[Obj, Obj, int]:
        """(current revision, update revision, collision count)."""
        collision = (sts.get("status") or {}).get("collisionCount") or 0
        number = (revs[-1].get("revision") or 0) + 1 if revs else 1
        patch = history.template_patch(sts)
        candidate = history.new_revision(sts, ((sts["spec"].get("template") or {}).get("metadata") or {}).get("labels"),
                                         patch, number, collision)
        if sts["metadata"].get("annotations"):
            candidate["metadata"]["annotations"] = dict(sts["metadata"]["annotations"])
        equal = [r for r in revs if history.equal_revision(r, candidate)]
        if equal and history.equal_revision(revs[-1], equal[-1]):
            update = revs[-1]
        elif equal:
            update = await history.update_revision_number(self.revisions_api, equal[-1], number)
        else:
            update, collision = await history.create_revision(self.revisions_api, sts, candidate, collision)
        current_name = (sts.get("status") or {}).get("currentRevision")
        current = next((r for r in revs if r["metadata"]["name"] == current_name), None) or update
        return current, update, collision

    async def update_stateful_set(self, sts: Obj, pods: list[Obj], revs: list[Obj]) -> Obj | None:
        current_rev, update_rev, collision = await self.revisions_for(sts, revs)
        error: BaseException | None = None
        status: Obj | None = None
        try:
            status = await self._reconcile(sts, current_rev, update_rev, collision, pods)
        except Exception as e:
            error = e
        if status is not None:
            await self._update_status(sts, status)
        await self._truncate_history(sts, pods, revs, current_rev, update_rev)
        if error is not None:
            raise error
        return status

    async def _reconcile(self, sts: Obj, current_rev: Obj, update_rev: Obj, collision: int,
                         pods: list[Obj]) -> Obj:
        current_set = apply_revision(sts, current_rev)
        update_set = apply_revision(sts, update_rev)
        cur_name, upd_name = current_rev["metadata"]["name"], update_rev["metadata"]["name"]
        spec = sts.get("spec") or {}
        mrs = spec.get("minReadySeconds") or 0
        now = self.clock.now()
        status: Obj = {"observedGeneration": sts["metadata"].get("generation"), "currentRevision": cur_name,
                       "updateRevision": upd_name, "collisionCount": collision}

        def refresh(*lists: list[Obj | None]) -> None:
            for k in ("replicas", "readyReplicas", "availableReplicas", "currentReplicas", "updatedReplicas"):
                status[k] = 0
            for lst in lists:
                for k, v in replica_status(lst, mrs, now, cur_name, upd_name).items():
                    status[k] += v

        refresh(pods)
        start, count = start_ordinal(sts), int(spec.get("replicas", 1))
        replicas: list[Obj | None] = [None] * count
        condemned: list[Obj] = []
        for pod in pods:
            o = ordinal_of(pod)
            if start <= o <= start + count - 1:
                replicas[o - start] = pod
            elif o >= 0:
                condemned.append(pod)
        for i in range(count):
            if replicas[i] is None:
                replicas[i] = new_versioned_pod(current_set, update_set, cur_name, upd_name, start + i)
        condemned.sort(key=ordinal_of, reverse=True)
        first_unhealthy = next((p for p in replicas if p is not None and not is_healthy(p)), None)
        if first_unhealthy is None:
            first_unhealthy = next((p for p in reversed(condemned) if not is_healthy(p)), None)
        if sts["metadata"].get("deletionTimestamp"):
            return status
        monotonic = spec.get("podManagementPolicy", "OrderedReady") != "Parallel"

        async def process_replica(i: int) -> bool:
            pod = replicas[i]
            assert pod is not None
            if phase(pod) in ("Failed", "Succeeded"):
                if phase(pod) == "Failed":
                    self.recorder.event(sts, WARNING, "RecreatingFailedPod",
                                        f"StatefulSet {sts['metadata'].get('namespace')}/{sts['metadata']['name']} "
                                        f"is recreating failed Pod {pod['metadata']['name']}")
                else:
                    self.recorder.event(sts, NORMAL, "RecreatingTerminatedPod",
                                        f"StatefulSet {sts['metadata'].get('namespace')}/{sts['metadata']['name']} "
                                        f"is recreating terminated Pod {pod['metadata']['name']}")
                await self._delete_pod(sts, pod)
                pod = replicas[i] = new_versioned_pod(current_set, update_set, cur_name, upd_name, start + i)
            if not is_created(pod):
                await self._create_pod(sts, pod)
                return monotonic  # OrderedReady: one pod at a time
            if is_terminating(pod) and monotonic:
                return True
            if not is_running_and_ready(pod) and monotonic:
                return True
            if not is_pod_available(pod, mrs, now) and monotonic:
                return True
            if identity_matches(sts, pod) and storage_matches(sts, pod):
                return False
            await self._fix_pod(update_set, pod)
            return False

        async def process_condemned(i: int) -> bool:
            pod = condemned[i]
            if is_terminating(pod):
                return monotonic
            if monotonic and pod is not first_unhealthy and (
                    not is_running_and_ready(pod) or not is_pod_available(pod, mrs, now)):
                return True
            await self._delete_pod(sts, pod)
            return True

        for fn, items in ((process_replica, replicas), (process_condemned, condemned)):
            if await self._run_for_all(len(items), fn, monotonic):
                refresh(replicas, condemned)
                return status
        refresh(replicas, condemned)
        us = spec.get("updateStrategy") or {}
        if us.get("type", "RollingUpdate") == "OnDelete":
            return status
        update_min = int((us.get("rollingUpdate") or {}).get("partition") or 0)
        for target in range(len(replicas) - 1, update_min - 1, -1):
            pod = replicas[target]
            assert pod is not None
            if pod_revision(pod) != upd_name and not is_terminating(pod):
                await self._delete_pod(sts, pod)
                status["currentReplicas"] -= 1
                return status
            if not is_healthy(pod):
                return status
        return status

    @staticmethod
    async def _run_for_all(n: int, fn: Any, monotonic: bool) -> bool:
        """Monotonic: in order, stopping at the first that blocks. Parallel: all at once (slow start)."""
        if monotonic:
            for i in range(n):
                if await fn(i):
                    return True
            return False
        pos, batch = 0, min(n, 1)
        while pos < n:
            results = await asyncio.gather(*(fn(i) for i in range(pos, pos + batch)), return_exceptions=True)
            errors = [r for r in results if isinstance(r, BaseException)]
            if errors:
                raise errors[0]
            pos += batch
            batch = min(2 * batch, n - pos)
        return False

    # -- writes ----------------------------------------------------------------------------

    def _pod_event(self, verb: str, sts: Obj, pod: Obj, err: BaseException | None) -> None:
        name, set_name = pod["metadata"]["name"], sts["metadata"]["name"]
        if err is None:
            self.recorder.event(sts, NORMAL, f"Successful{verb.title()}",
                                f"{verb} Pod {name} in StatefulSet {set_name} successful")
        else:
            self.recorder.event(sts, WARNING, f"Failed{verb.title()}",
                                f"{verb} Pod {name} in StatefulSet {set_name} failed error: {error_message(err)}")

    async def _create_claims(self, sts: Obj, pod: Obj) -> None:
        ordinal = ordinal_of(pod)
        ns = sts["metadata"].get("namespace")
        match_labels = ((sts.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        for t in (sts.get("spec") or {}).get("volumeClaimTemplates") or []:
            tname = (t.get("metadata") or {}).get("name")
            if not tname:
                continue
            name = claim_name(sts, tname, ordinal)
            claim = copy.deepcopy(t)
            claim["apiVersion"], claim["kind"] = "v1", "PersistentVolumeClaim"
            meta = claim.setdefault("metadata", {})
            meta["name"], meta["namespace"] = name, ns
            meta["labels"] = {**(meta.get("labels") or {}), **match_labels}
            claim.pop("status", None)
            try:
                await self.claims_api.get(name, ns)
                continue
            except Exception as e:
                if not is_not_found(e):
                    raise
            try:
                await self.claims_api.create(claim, ns)
            except Exception as e:
                if is_already_exists(e):
                    continue
                self.recorder.event(sts, WARNING, "FailedCreate",
                                    f"create Claim {name} Pod {pod['metadata']['name']} in StatefulSet "
                                    f"{sts['metadata']['name']} failed error: {error_message(e)}")
                raise
            self.recorder.event(sts, NORMAL, "SuccessfulCreate",
                                f"create Claim {name} Pod {pod['metadata']['name']} in StatefulSet "
                                f"{sts['metadata']['name']} success")

    async def _create_pod(self, sts: Obj, pod: Obj) -> None:
        await self._create_claims(sts, pod)
        try:
            await self.pods_api.create(pod, sts["metadata"].get("namespace"))
        except Exception as e:
            if is_already_exists(e):
                raise  # our cache is behind: retry once it has caught up
            self._pod_event("create", sts, pod, e)
            raise
        self._pod_event("create", sts, pod, None)

    async def _delete_pod(self, sts: Obj, pod: Obj) -> None:
        try:
            await self.pods_api.delete(pod["metadata"]["name"], pod["metadata"].get("namespace"))
        except Exception as e:
            if is_not_found(e):
                return
            self._pod_event("delete", sts, pod, e)
            raise
        self._pod_event("delete", sts, pod, None)

    async def _fix_pod(self, sts: Obj, pod: Obj) -> None:
        """Restore a pod's identity labels and claims (someone changed them)."""
        fixed = copy.deepcopy(pod)
        o = ordinal_of(pod)
        set_identity(sts, fixed, o)
        if not storage_matches(sts, fixed):
            await self._create_claims(sts, fixed)
        try:
            await self.pods_api.update(fixed)
        except Exception as e:
            self._pod_event("update", sts, pod, e)
            raise
        self._pod_event("update", sts, pod, None)

    async def _update_status(self, sts: Obj, status: Obj) -> None:
        us = (sts.get("spec") or {}).get("updateStrategy") or {}
        if (us.get("type", "RollingUpdate") == "RollingUpdate" and status.get("updatedReplicas") == status.get("replicas")
                and status.get("readyReplicas") == status.get("replicas")):
            status["currentReplicas"] = status["updatedReplicas"]
            status["currentRevision"] = status["updateRevision"]
        old = sts.get("status") or {}
        fields = ("replicas", "currentReplicas", "readyReplicas", "updatedReplicas", "currentRevision",
                  "availableReplicas", "updateRevision", "collisionCount")
        if (status.get("observedGeneration") or 0) <= (old.get("observedGeneration") or 0) and all(
                (old.get(f) or 0) == (status.get(f) or 0) for f in fields):
            return
        body_status = dict(status)
        if old.get("conditions"):
            body_status["conditions"] = old["conditions"]
        for k in ("readyReplicas", "currentReplicas", "updatedReplicas", "currentRevision", "updateRevision",
                  "collisionCount", "observedGeneration"):
            if not body_status.get(k):
                body_status.pop(k, None)
        current = sts
        for attempt in range(5):
            try:
                await self.sets_api.update_status({**current, "status": body_status})
                return
            except Exception as e:
                if not is_conflict(e) or attempt == 4:
                    raise
            current = await self.sets_api.get(sts["metadata"]["name"], sts["metadata"].get("namespace"))

    async def _truncate_history(self, sts: Obj, pods: list[Obj], revs: list[Obj], current: Obj, update: Obj) -> None:
        live = {current["metadata"]["name"], update["metadata"]["name"]} | {pod_revision(p) for p in pods}
        old = [r for r in revs if r["metadata"]["name"] not in live]
        limit = int((sts.get("spec") or {}).get("revisionHistoryLimit", 10))
        for rev in old[: max(0, len(old) - limit)]:
            try:
                await self.revisions_api.delete(rev["metadata"]["name"], rev["metadata"].get("namespace"))
            except Exception as e:
                if not is_not_found(e):
                    raise
