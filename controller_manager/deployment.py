"""The Deployment controller: roll a pod template out through ReplicaSets (upstream pkg/controller/deployment).

Each template gets its own ReplicaSet `<deployment>-<pod-template-hash>` whose selector and
pods carry the hash label. A sync of a Deployment:
- claims ReplicaSets (adopt matching orphans, release non-matching ones);
- paused, or only `spec.replicas` changed (a scaling event: an active RS's desired-replicas
  annotation differs): scale the active ReplicaSets proportionally, no rollout;
- RollingUpdate: scale the new RS up while all pods ≤ replicas + maxSurge, scale old ones
  down (unhealthy replicas first) while available pods ≥ replicas − maxUnavailable;
- Recreate: scale every old RS to 0, wait until their pods are gone, then scale the new one up;
- keeps revision annotations (kubectl rollout history/undo read them), deletes old
  zero-sized ReplicaSets beyond revisionHistoryLimit once a rollout completes, and writes
  status with the Available and Progressing conditions (ProgressDeadlineExceeded after
  progressDeadlineSeconds without progress).
"""

from __future__ import annotations

import copy
from typing import Any

from apimachinery.meta import controller_of, format_time, key_of, parse_time
from apimachinery.selectors import LabelSelectorError, selector_from_label_selector
from client import WARNING, deleted_object, is_already_exists, is_not_found
from controller_manager import deployment_util as du
from controller_manager.base import Controller, ControllerContext, add_index_once, register
from controller_manager.conditions import get_condition, remove_condition, set_condition
from controller_manager.podcontrol import (
    CONTROLLER_INDEX,
    ControllerRefManager,
    controller_ref,
    error_message,
    index_by_controller,
    owned_or_orphans,
    resolve_controller_ref,
    selecting,
)
from controller_manager.podutil import labels_of, phase

Obj = dict[str, Any]


@register
class DeploymentController(Controller):
    name = "deployment-controller"
    aliases = ("deployment",)
    workers_option = "concurrent_deployment_syncs"
    service_account = "deployment-controller"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.deployments = self.watch("apps/v1", "deployments")
        self.sets = self.informer("apps/v1", "replicasets")
        add_index_once(self.sets, CONTROLLER_INDEX, index_by_controller)
        self.sets.add_handler(self._rs_added, self._rs_updated, self._rs_deleted)
        self.pods = self.informer("v1", "pods")
        add_index_once(self.pods, CONTROLLER_INDEX, index_by_controller)
        self.pods.add_handler(None, None, self._pod_deleted)
        self.deployments_api = self.client.resource("apps/v1", "deployments")
        self.sets_api = self.client.resource("apps/v1", "replicasets")

    # -- informer events -----------------------------------------------------------------

    def _deployment_of(self, obj: Obj) -> Obj | None:
        return resolve_controller_ref(self.deployments.store, obj, "Deployment")

    def _deployments_selecting(self, rs: Obj) -> list[Obj]:
        return selecting(self.deployments.store, rs)

    def _rs_added(self, rs: Obj) -> None:
        if rs["metadata"].get("deletionTimestamp"):
            self._rs_deleted(rs)
            return
        if controller_of(rs) is not None:
            d = self._deployment_of(rs)
            if d is not None:
                self.enqueue(d)
            return
        for d in self._deployments_selecting(rs):
            self.enqueue(d)

    def _rs_updated(self, old: Obj, cur: Obj) -> None:
        if old["metadata"].get("resourceVersion") == cur["metadata"].get("resourceVersion"):
            return
        cur_ref, old_ref = controller_of(cur), controller_of(old)
        ref_changed = (cur_ref or {}).get("uid") != (old_ref or {}).get("uid")
        if ref_changed and old_ref is not None:
            d = self._deployment_of(old)
            if d is not None:
                self.enqueue(d)
        if cur_ref is not None:
            d = self._deployment_of(cur)
            if d is not None:
                self.enqueue(d)
            return
        if labels_of(old) != labels_of(cur) or ref_changed:
            for d in self._deployments_selecting(cur):
                self.enqueue(d)

    def _rs_deleted(self, item: Any) -> None:
        d = self._deployment_of(deleted_object(item))
        if d is not None:
            self.enqueue(d)

    def _pod_deleted(self, item: Any) -> None:
        """Recreate waits for the old pods to be gone: sync once a deployment has no pods left."""
        pod = deleted_object(item)
        rs_ref = controller_of(pod)
        if rs_ref is None or rs_ref.get("kind") != "ReplicaSet":
            return
        rs = self.sets.store.get_by_name(pod["metadata"].get("namespace"), rs_ref.get("name", ""))
        if rs is None or rs["metadata"].get("uid") != rs_ref.get("uid"):
            return
        d = self._deployment_of(rs)
        if d is None or du.is_rolling_update(d):
            return
        sets = self.sets.store.by_index(CONTROLLER_INDEX, d["metadata"]["uid"])
        if not any(self.pods.store.by_index(CONTROLLER_INDEX, s["metadata"]["uid"]) for s in sets):
            self.enqueue(d)

    # -- sync ------------------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        cached = self.deployments.store.get(key)
        if cached is None:
            return
        d = copy.deepcopy(cached)
        spec = d.get("spec") or {}
        sel = spec.get("selector")
        if sel == {}:
            self.recorder.event(d, WARNING, "SelectingAll",
                                "This deployment is selecting all pods. A non-empty selector is required.")
            if (d.get("status") or {}).get("observedGeneration", 0) < d["metadata"].get("generation", 0):
                d.setdefault("status", {})["observedGeneration"] = d["metadata"].get("generation")
                await self._update_status(d)
            return
        try:
            selector = selector_from_label_selector(sel)
        except (LabelSelectorError, ValueError) as e:
            self.log.error("%s: invalid selector: %s", key, e)
            return
        rs_list = await self._claim_replica_sets(d, selector)
        pod_map = self._pod_map(rs_list)
        if d["metadata"].get("deletionTimestamp"):
            await self._sync_status_only(d, rs_list)
            return
        await self._check_paused_conditions(d)
        if spec.get("paused"):
            await self._sync(d, rs_list)
            return
        if await self._is_scaling_event(d, rs_list):
            await self._sync(d, rs_list)
            return
        if du.is_rolling_update(d):
            await self._rollout_rolling(d, rs_list)
        else:
            await self._rollout_recreate(d, rs_list, pod_map)

    async def _claim_replica_sets(self, d: Obj, selector: Any) -> list[Obj]:
        namespace, name = d["metadata"].get("namespace") or "", d["metadata"]["name"]

        async def fresh() -> Obj | None:
            try:
                return await self.deployments_api.get(name, namespace)
            except Exception as e:
                if is_not_found(e):
                    return None
                raise

        manager = ControllerRefManager(d, selector, self.sets_api, fresh)
        return await manager.claim(owned_or_orphans(self.sets.store, d))

    def _pod_map(self, rs_list: list[Obj]) -> dict[str, list[Obj]]:
        return {rs["metadata"]["uid"]: self.pods.store.by_index(CONTROLLER_INDEX, rs["metadata"]["uid"]) for rs in rs_list}

    async def _update_status(self, d: Obj) -> Obj:
        """PUT the status (annotations ride along, as upstream's status strategy keeps them); keep the new RV."""
        updated = await self.deployments_api.update_status({**d, "status": _omit_zero(d.get("status") or {})})
        d["metadata"]["resourceVersion"] = updated["metadata"].get("resourceVersion")
        return updated

    async def _update_annotations(self, d: Obj) -> None:
        """Write the deployment's revision annotation. Upstream's deployment status strategy lets
        annotations through /status; a server that keeps /status writes to status only would
        drop it, and the controller would write it forever: so it goes through a plain update
        (metadata only changes: no new generation)."""
        updated = await self.deployments_api.update({k: v for k, v in d.items() if k != "status"})
        d["metadata"]["resourceVersion"] = updated["metadata"].get("resourceVersion")

    async def _check_paused_conditions(self, d: Obj) -> None:
        if not du.has_progress_deadline(d):
            return
        status = d.setdefault("status", {})
        cond = get_condition(status, "Progressing")
        if cond is not None and cond.get("reason") == du.TIMED_OUT:
            return
        paused_cond = cond is not None and cond.get("reason") == du.PAUSED
        paused = bool((d.get("spec") or {}).get("paused"))
        if paused and not paused_cond:
            set_condition(status, self._condition("Progressing", "Unknown", du.PAUSED, "Deployment is paused"))
        elif not paused and paused_cond:
            set_condition(status, self._condition("Progressing", "Unknown", du.RESUMED, "Deployment is resumed"))
        else:
            return
        await self._update_status(d)

    def _condition(self, type_: str, status: str, reason: str, message: str) -> Obj:
        now = format_time(self.clock.now())
        return {"type": type_, "status": status, "lastUpdateTime": now, "lastTransitionTime": now,
                "reason": reason, "message": message}

    async def _is_scaling_event(self, d: Obj, rs_list: list[Obj]) -> bool:
        new_rs, old_rss = await self._get_all_replica_sets_and_sync_revision(d, rs_list, False)
        for rs in du.filter_active([*old_rss, new_rs]):
            desired = du._annotation_int(rs, du.DESIRED_REPLICAS)
            if desired is None:
                continue
            if desired != du.replicas(d):
                return True
        return False

    # -- the new replica set -------------------------------------------------------------

    async def _get_all_replica_sets_and_sync_revision(self, d: Obj, rs_list: list[Obj],
                                                      create: bool) -> tuple[Obj | None, list[Obj]]:
        existing_new = du.find_new_replica_set(d, rs_list)
        old_rss = du.find_old_replica_sets(d, rs_list, existing_new)
        new_rs = await self._get_new_replica_set(d, rs_list, old_rss, create)
        return new_rs, old_rss

    async def _get_new_replica_set(self, d: Obj, rs_list: list[Obj], old_rss: list[Obj], create: bool) -> Obj | None:
        existing = du.find_new_replica_set(d, rs_list)
        new_revision = str(du.max_revision(old_rss) + 1)
        status = d.setdefault("status", {})
        spec = d.get("spec") or {}
        if existing is not None:
            rs_copy = copy.deepcopy(existing)
            annotations_updated = du.set_new_replica_set_annotations(d, rs_copy, new_revision, True)
            min_ready_changed = (rs_copy.get("spec") or {}).get("minReadySeconds", 0) != spec.get("minReadySeconds", 0)
            if annotations_updated or min_ready_changed:
                rs_copy["spec"]["minReadySeconds"] = spec.get("minReadySeconds", 0)
                return await self.sets_api.update(rs_copy)
            if du.set_deployment_revision(d, ((rs_copy["metadata"].get("annotations") or {}).get(du.REVISION)) or ""):
                await self._update_annotations(d)
            needs_update = False
            if du.has_progress_deadline(d) and get_condition(status, "Progressing") is None:
                set_condition(status, self._condition(
                    "Progressing", "True", du.FOUND_NEW_RS, f'Found new replica set "{rs_copy["metadata"]["name"]}"'))
                needs_update = True
            if needs_update:
                await self._update_status(d)
            return rs_copy
        if not create:
            return None

        template = copy.deepcopy(spec.get("template") or {})
        pod_hash = du.compute_hash(template, status.get("collisionCount"))
        tmeta = template.setdefault("metadata", {})
        tmeta["labels"] = {**(tmeta.get("labels") or {}), du.POD_TEMPLATE_HASH: pod_hash}
        selector = copy.deepcopy(spec.get("selector") or {})
        selector["matchLabels"] = {**(selector.get("matchLabels") or {}), du.POD_TEMPLATE_HASH: pod_hash}
        namespace = d["metadata"].get("namespace") or ""
        new_rs: Obj = {
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {
                "name": f"{d['metadata']['name']}-{pod_hash}",
                "namespace": namespace,
                "ownerReferences": [controller_ref(d)],
                "labels": dict(tmeta["labels"]),
            },
            "spec": {"replicas": 0, "minReadySeconds": spec.get("minReadySeconds", 0),
                     "selector": selector, "template": template},
        }
        new_count = du.new_rs_new_replicas(d, [*old_rss, new_rs], new_rs)
        new_rs["spec"]["replicas"] = new_count
        du.set_new_replica_set_annotations(d, new_rs, new_revision, False)
        already_exists = False
        try:
            created = await self.sets_api.create(new_rs, namespace)
        except Exception as e:
            if is_already_exists(e):
                already_exists = True
                found = self.sets.store.get_by_name(namespace, new_rs["metadata"]["name"])
                if found is None:
                    raise
                ref = controller_of(found)
                if (ref is not None and ref.get("uid") == d["metadata"]["uid"]
                        and du.equal_ignore_hash(spec.get("template") or {}, (found.get("spec") or {}).get("template") or {})):
                    created = found
                else:
                    # a hash collision: bump collisionCount so the next sync hashes differently
                    status["collisionCount"] = (status.get("collisionCount") or 0) + 1
                    try:
                        await self._update_status(d)
                    except Exception:
                        pass
                    raise
            elif _namespace_terminating(e):
                raise
            else:
                msg = f'Failed to create new replica set "{new_rs["metadata"]["name"]}": {error_message(e)}'
                if du.has_progress_deadline(d):
                    set_condition(status, self._condition("Progressing", "False", du.FAILED_RS_CREATE, msg))
                    try:
                        await self._update_status(d)
                    except Exception:
                        pass
                self.recorder.event(d, WARNING, du.FAILED_RS_CREATE, msg)
                raise
        if not already_exists and new_count > 0:
            self.recorder.event(d, "Normal", "ScalingReplicaSet",
                                f"Scaled up replica set {created['metadata']['name']} from 0 to {new_count}")
        if du.set_deployment_revision(d, new_revision):
            await self._update_annotations(d)
        needs_update = False
        if not already_exists and du.has_progress_deadline(d):
            set_condition(status, self._condition(
                "Progressing", "True", du.NEW_RS_CREATED, f'Created new replica set "{created["metadata"]["name"]}"'))
            needs_update = True
        if needs_update:
            await self._update_status(d)
        return created

    # -- scaling ---------------------------------------------------------------------------

    async def _scale_replica_set_and_record_event(self, rs: Obj, new_scale: int, d: Obj) -> tuple[bool, Obj]:
        if du.replicas(rs) == new_scale:
            return False, rs
        op = "up" if du.replicas(rs) < new_scale else "down"
        return await self._scale_replica_set(rs, new_scale, d, op)

    async def _scale_replica_set(self, rs: Obj, new_scale: int, d: Obj, op: str) -> tuple[bool, Obj]:
        size_changed = du.replicas(rs) != new_scale
        desired, max_replicas = du.replicas(d), du.replicas(d) + du.max_surge(d)
        annotations_changed = du.replicas_annotations_need_update(rs, desired, max_replicas)
        if not (size_changed or annotations_changed):
            return False, rs
        old_scale = du.replicas(rs)
        rs_copy = copy.deepcopy(rs)
        rs_copy.setdefault("spec", {})["replicas"] = new_scale
        du.set_replicas_annotations(rs_copy, desired, max_replicas)
        updated = await self.sets_api.update(rs_copy)
        if size_changed:
            self.recorder.event(d, "Normal", "ScalingReplicaSet",
                                f"Scaled {op} replica set {updated['metadata']['name']} from {old_scale} to {new_scale}")
        return size_changed, updated

    async def _scale(self, d: Obj, new_rs: Obj | None, old_rss: list[Obj]) -> None:
        """Proportional scaling of the active replica sets when spec.replicas changed mid-rollout."""
        want = du.replicas(d)
        target = du.find_active_or_latest(new_rs, old_rss)
        if target is not None:
            if du.replicas(target) != want:
                await self._scale_replica_set_and_record_event(target, want, d)
            return
        if du.is_saturated(d, new_rs):
            for old in du.filter_active(old_rss):
                await self._scale_replica_set_and_record_event(old, 0, d)
            return
        if not du.is_rolling_update(d):
            return
        all_rss = du.filter_active([*old_rss, new_rs])
        current = du.replica_count(all_rss)
        allowed = want + du.max_surge(d) if want > 0 else 0
        to_add = allowed - current
        op = ""
        if to_add > 0:
            all_rss = du.by_size_newer(all_rss)
            op = "up"
        elif to_add < 0:
            all_rss = du.by_size_older(all_rss)
            op = "down"
        added = 0
        sizes: dict[str, int] = {}
        for rs in all_rss:
            if to_add != 0:
                proportion = du.replica_set_proportion(rs, d, to_add, added)
                sizes[rs["metadata"]["name"]] = du.replicas(rs) + proportion
                added += proportion
            else:
                sizes[rs["metadata"]["name"]] = du.replicas(rs)
        for i, rs in enumerate(all_rss):
            n = rs["metadata"]["name"]
            if i == 0 and to_add != 0:
                sizes[n] = max(0, sizes[n] + to_add - added)
            await self._scale_replica_set(rs, sizes[n], d, op)

    async def _sync(self, d: Obj, rs_list: list[Obj]) -> None:
        """Scaling events and paused deployments: scale, clean up (paused), write status."""
        new_rs, old_rss = await self._get_all_replica_sets_and_sync_revision(d, rs_list, False)
        await self._scale(d, new_rs, old_rss)
        if (d.get("spec") or {}).get("paused"):
            await self._cleanup(old_rss, d)
        await self._sync_deployment_status([*old_rss, new_rs], new_rs, d)

    async def _sync_status_only(self, d: Obj, rs_list: list[Obj]) -> None:
        new_rs, old_rss = await self._get_all_replica_sets_and_sync_revision(d, rs_list, False)
        await self._sync_deployment_status([*old_rss, new_rs], new_rs, d)

    # -- rolling update --------------------------------------------------------------------

    async def _rollout_rolling(self, d: Obj, rs_list: list[Obj]) -> None:
        new_rs, old_rss = await self._get_all_replica_sets_and_sync_revision(d, rs_list, True)
        assert new_rs is not None
        all_rss = [*old_rss, new_rs]
        if await self._reconcile_new_replica_set(all_rss, new_rs, d):
            await self._sync_rollout_status(all_rss, new_rs, d)
            return
        if await self._reconcile_old_replica_sets(all_rss, du.filter_active(old_rss), new_rs, d):
            await self._sync_rollout_status(all_rss, new_rs, d)
            return
        if du.deployment_complete(d, d.get("status") or {}):
            await self._cleanup(old_rss, d)
        await self._sync_rollout_status(all_rss, new_rs, d)

    async def _reconcile_new_replica_set(self, all_rss: list[Obj], new_rs: Obj, d: Obj) -> bool:
        want = du.replicas(d)
        if du.replicas(new_rs) == want:
            return False
        if du.replicas(new_rs) > want:
            scaled, _ = await self._scale_replica_set_and_record_event(new_rs, want, d)
            return scaled
        count = du.new_rs_new_replicas(d, all_rss, new_rs)
        scaled, _ = await self._scale_replica_set_and_record_event(new_rs, count, d)
        return scaled

    async def _reconcile_old_replica_sets(self, all_rss: list[Obj], old_rss: list[Obj], new_rs: Obj, d: Obj) -> bool:
        old_count = du.replica_count(old_rss)
        if old_count == 0:
            return False
        all_count = du.replica_count(all_rss)
        min_available = du.replicas(d) - du.max_unavailable(d)
        new_unavailable = du.replicas(new_rs) - ((new_rs.get("status") or {}).get("availableReplicas") or 0)
        max_scaled_down = all_count - min_available - new_unavailable
        if max_scaled_down <= 0:
            return False
        old_rss, cleaned = await self._cleanup_unhealthy_replicas(old_rss, d, max_scaled_down)
        scaled_down = await self._scale_down_old_for_rolling_update([*old_rss, new_rs], old_rss, d)
        return cleaned + scaled_down > 0

    async def _cleanup_unhealthy_replicas(self, old_rss: list[Obj], d: Obj, max_cleanup: int) -> tuple[list[Obj], int]:
        old_rss = du.by_creation(old_rss)
        total = 0
        for i, rs in enumerate(old_rss):
            if total >= max_cleanup:
                break
            size = du.replicas(rs)
            available = (rs.get("status") or {}).get("availableReplicas") or 0
            if size == 0 or size == available:
                continue
            count = min(max_cleanup - total, size - available)
            if count < 0:
                # the set's status is behind its spec (more available than asked for): not now
                m = rs["metadata"]
                raise RuntimeError(f"when cleaning up unhealthy replicas, got invalid request to scale down "
                                   f"{m.get('namespace')}/{m['name']} {size} -> {size - count}")
            _, updated = await self._scale_replica_set_and_record_event(rs, size - count, d)
            total += count
            old_rss[i] = updated
        return old_rss, total

    async def _scale_down_old_for_rolling_update(self, all_rss: list[Obj], old_rss: list[Obj], d: Obj) -> int:
        min_available = du.replicas(d) - du.max_unavailable(d)
        available = du.available_replica_count(all_rss)
        if available <= min_available:
            return 0
        total, budget = 0, available - min_available
        for rs in du.by_creation(old_rss):
            if total >= budget:
                break
            size = du.replicas(rs)
            if size == 0:
                continue
            count = min(size, budget - total)
            await self._scale_replica_set_and_record_event(rs, size - count, d)
            total += count
        return total

    # -- recreate ------------------------------------------------------------------------

    async def _rollout_recreate(self, d: Obj, rs_list: list[Obj], pod_map: dict[str, list[Obj]]) -> None:
        new_rs, old_rss = await self._get_all_replica_sets_and_sync_revision(d, rs_list, False)
        all_rss = [*old_rss, new_rs]
        scaled_down = False
        for rs in du.filter_active(old_rss):
            scaled, _ = await self._scale_replica_set_and_record_event(rs, 0, d)
            scaled_down = scaled_down or scaled
        if scaled_down:
            await self._sync_rollout_status(all_rss, new_rs, d)
            return
        if self._old_pods_running(new_rs, old_rss, pod_map):
            await self._sync_rollout_status(all_rss, new_rs, d)
            return
        if new_rs is None:
            new_rs, old_rss = await self._get_all_replica_sets_and_sync_revision(d, rs_list, True)
            all_rss = [*old_rss, new_rs]
        assert new_rs is not None
        await self._scale_replica_set_and_record_event(new_rs, du.replicas(d), d)
        if du.deployment_complete(d, d.get("status") or {}):
            await self._cleanup(old_rss, d)
        await self._sync_rollout_status(all_rss, new_rs, d)

    @staticmethod
    def _old_pods_running(new_rs: Obj | None, old_rss: list[Obj], pod_map: dict[str, list[Obj]]) -> bool:
        if du.actual_replica_count(old_rss) > 0:
            return True
        new_uid = new_rs["metadata"]["uid"] if new_rs is not None else None
        for uid, pods in pod_map.items():
            if uid == new_uid:
                continue
            if any(phase(p) not in ("Failed", "Succeeded") for p in pods):
                return True
        return False

    # -- history -----------------------------------------------------------------------

    async def _cleanup(self, old_rss: list[Obj], d: Obj) -> None:
        """Delete the oldest zero-sized ReplicaSets beyond revisionHistoryLimit."""
        if not du.has_revision_history_limit(d):
            return
        alive = [rs for rs in old_rss if rs is not None and not rs["metadata"].get("deletionTimestamp")]
        diff = len(alive) - int((d.get("spec") or {}).get("revisionHistoryLimit"))
        if diff <= 0:
            return
        for rs in du.by_revision(alive)[:diff]:
            st = rs.get("status") or {}
            if ((st.get("replicas") or 0) != 0 or du.replicas(rs) != 0
                    or (rs["metadata"].get("generation") or 0) > (st.get("observedGeneration") or 0)):
                continue
            try:
                await self.sets_api.delete(rs["metadata"]["name"], rs["metadata"].get("namespace"))
            except Exception as e:
                if not is_not_found(e):
                    raise

    # -- status ----------------------------------------------------------------------------

    def _calculate_status(self, all_rss: list[Obj | None], new_rs: Obj | None, d: Obj) -> Obj:
        available = du.available_replica_count(all_rss)
        total = du.replica_count(all_rss)
        old = d.get("status") or {}
        status: Obj = {
            "observedGeneration": d["metadata"].get("generation"),
            "replicas": du.actual_replica_count(all_rss),
            "updatedReplicas": du.actual_replica_count([new_rs]),
            "readyReplicas": du.ready_replica_count(all_rss),
            "availableReplicas": available,
            "unavailableReplicas": max(0, total - available),
        }
        if old.get("collisionCount") is not None:
            status["collisionCount"] = old["collisionCount"]
        status["conditions"] = [dict(c) for c in old.get("conditions") or []]
        if available >= du.replicas(d) - du.max_unavailable(d):
            set_condition(status, self._condition("Available", "True", du.MIN_AVAILABLE,
                                                  "Deployment has minimum availability."))
        else:
            set_condition(status, self._condition("Available", "False", du.MIN_UNAVAILABLE,
                                                  "Deployment does not have minimum availability."))
        return status

    async def _sync_deployment_status(self, all_rss: list[Obj | None], new_rs: Obj | None, d: Obj) -> None:
        status = self._calculate_status(all_rss, new_rs, d)
        if _status_equal(d.get("status") or {}, status):
            return
        d["status"] = status
        await self._update_status(d)

    async def _sync_rollout_status(self, all_rss: list[Obj | None], new_rs: Obj | None, d: Obj) -> None:
        status = self._calculate_status(all_rss, new_rs, d)
        if not du.has_progress_deadline(d):
            remove_condition(status, "Progressing")
        current = get_condition(d.get("status") or {}, "Progressing")
        complete_already = (status.get("replicas") == status.get("updatedReplicas") and current is not None
                            and current.get("reason") == du.NEW_RS_AVAILABLE)
        if du.has_progress_deadline(d) and not complete_already:
            name = d["metadata"]["name"]
            what = f'ReplicaSet "{new_rs["metadata"]["name"]}"' if new_rs is not None else f'Deployment "{name}"'
            if du.deployment_complete(d, status):
                set_condition(status, self._condition("Progressing", "True", du.NEW_RS_AVAILABLE,
                                                      f"{what} has successfully progressed."))
            elif du.deployment_progressing(d, status):
                cond = self._condition("Progressing", "True", du.RS_UPDATED, f"{what} is progressing.")
                if current is not None:
                    if current.get("status") == "True":
                        cond["lastTransitionTime"] = current.get("lastTransitionTime", cond["lastTransitionTime"])
                    remove_condition(status, "Progressing")
                set_condition(status, cond)
            elif self._timed_out(d, status):
                set_condition(status, self._condition("Progressing", "False", du.TIMED_OUT,
                                                      f"{what} has timed out progressing."))
        failures = _replica_failures(all_rss, new_rs)
        if failures:
            set_condition(status, failures[0])
        else:
            remove_condition(status, "ReplicaFailure")
        if _status_equal(d.get("status") or {}, status):
            self._requeue_stuck(d, status)
            return
        d["status"] = status
        await self._update_status(d)

    def _timed_out(self, d: Obj, status: Obj) -> bool:
        if not du.has_progress_deadline(d):
            return False
        cond = get_condition(status, "Progressing")
        if cond is None or cond.get("reason") == du.NEW_RS_AVAILABLE:
            return False
        if cond.get("reason") == du.TIMED_OUT:
            return True
        try:
            since = parse_time(cond.get("lastUpdateTime") or "")
        except ValueError:
            return False
        return (self.clock.now() - since).total_seconds() > (d.get("spec") or {}).get("progressDeadlineSeconds", 600)

    def _requeue_stuck(self, d: Obj, status: Obj) -> None:
        """No progress seen: check again when the progress deadline would pass."""
        current = get_condition(d.get("status") or {}, "Progressing")
        if not du.has_progress_deadline(d) or current is None:
            return
        if du.deployment_complete(d, status) or current.get("reason") == du.TIMED_OUT:
            return
        try:
            since = parse_time(current.get("lastUpdateTime") or "")
        except ValueError:
            return
        deadline = (d.get("spec") or {}).get("progressDeadlineSeconds", 600)
        after = (since - self.clock.now()).total_seconds() + deadline
        key = key_of(d)
        if after < 1:
            self.queue.add_rate_limited(key)
        else:
            self.queue.add_after(key, after + 1)


def _replica_failures(all_rss: list[Obj | None], new_rs: Obj | None) -> list[Obj]:
    def failures(rs: Obj) -> list[Obj]:
        out = []
        for c in (rs.get("status") or {}).get("conditions") or []:
            if c.get("type") == "ReplicaFailure":
                out.append({"type": "ReplicaFailure", "status": c.get("status"),
                            "lastUpdateTime": c.get("lastTransitionTime"),
                            "lastTransitionTime": c.get("lastTransitionTime"),
                            "reason": c.get("reason", ""), "message": c.get("message", "")})
        return out

    if new_rs is not None:
        found = failures(new_rs)
        if found:
            return found
    out: list[Obj] = []
    for rs in all_rss:
        if rs is not None:
            out += failures(rs)
    return out


def _namespace_terminating(e: BaseException) -> bool:
    details = getattr(e, "details", None) or {}
    return any(c.get("reason") == "NamespaceTerminating" for c in details.get("causes") or [])


_STATUS_INTS = ("observedGeneration", "replicas", "updatedReplicas", "readyReplicas", "availableReplicas",
                "unavailableReplicas")


def _omit_zero(status: Obj) -> Obj:
    """Upstream's JSON omits zero counts and empty conditions (omitempty)."""
    return {k: v for k, v in status.items() if not ((k in _STATUS_INTS and not v) or (k == "conditions" and not v))}


def _status_equal(a: Obj, b: Obj) -> bool:
    return (all((a.get(f) or 0) == (b.get(f) or 0) for f in _STATUS_INTS)
            and a.get("collisionCount") == b.get("collisionCount")
            and (a.get("conditions") or []) == (b.get("conditions") or []))
