"""The DaemonSet controller: one pod per eligible node (upstream pkg/controller/daemon).

A node is eligible when the pod template's nodeName (if any), nodeSelector and required node
affinity match it and every NoSchedule/NoExecute taint is tolerated (daemon pods tolerate
not-ready/unreachable NoExecute and the node-condition NoSchedule taints by default). A pod
already running may stay while it tolerates the NoExecute taints. Pods are not bound by the
controller: each gets a required node affinity on `metadata.name` and the scheduler binds it.

Templates are versioned as ControllerRevisions `<ds>-<hash>`; pods carry the hash in
`controller-revision-hash`. RollingUpdate replaces old pods node by node within
maxUnavailable (or surges up to maxSurge new pods first); OnDelete only replaces pods that
were deleted. Status: desired/current/misscheduled/ready/updated/available/unavailable counts.
"""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import orjson

from apimachinery.meta import controller_of, key_of, split_key
from apimachinery.nodeaffinity import RequiredNodeAffinity
from apimachinery.selectors import LabelSelectorError, selector_from_label_selector
from apimachinery.taints import find_untolerated_taint
from client import WARNING, deleted_object, is_already_exists, is_not_found
from controller_manager import deployment_util as du
from controller_manager import history
from controller_manager.base import Controller, ControllerContext, add_index_once, register
from controller_manager.expectations import ControllerExpectations
from controller_manager.podcontrol import (
    CONTROLLER_INDEX,
    ControllerRefManager,
    PodControl,
    controller_ref,
    index_by_controller,
    owned_or_orphans,
    pod_from_template,
    resolve_controller_ref,
    selecting,
)
from controller_manager.podutil import creation_time, is_pod_available, is_pod_ready, labels_of, phase

Obj = dict[str, Any]

BURST_REPLICAS = 250
TEMPLATE_GENERATION = "pod-template-generation"
TEMPLATE_GENERATION_ANNOTATION = "deprecated.daemonset.template.generation"
FAILED_POD_BACKOFF = (1.0, 900.0)  # upstream: 1 s doubling to 15 min

DEFAULT_TOLERATIONS = (
    ("node.kubernetes.io/not-ready", "NoExecute"),
    ("node.kubernetes.io/unreachable", "NoExecute"),
    ("node.kubernetes.io/disk-pressure", "NoSchedule"),
    ("node.kubernetes.io/memory-pressure", "NoSchedule"),
    ("node.kubernetes.io/pid-pressure", "NoSchedule"),
    ("node.kubernetes.io/unschedulable", "NoSchedule"),
)
NETWORK_UNAVAILABLE = ("node.kubernetes.io/network-unavailable", "NoSchedule")


# -- pure helpers (unit tested directly) ---------------------------------------------------

def add_daemon_tolerations(spec: Obj) -> None:
    tols = spec.setdefault("tolerations", [])
    wanted = list(DEFAULT_TOLERATIONS)
    if spec.get("hostNetwork"):
        wanted.append(NETWORK_UNAVAILABLE)
    for key, effect in wanted:
        t = {"key": key, "operator": "Exists", "effect": effect}
        for i, existing in enumerate(tols):
            if (existing.get("key"), existing.get("operator"), existing.get("value"), existing.get("effect")) == (
                    key, "Exists", None, effect):
                tols[i] = t
                break
        else:
            tols.append(t)


def node_name_affinity(affinity: Obj | None, node: str) -> Obj:
    """The affinity with its required node selector replaced by `metadata.name In [node]`."""
    term = {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}
    aff = copy.deepcopy(affinity or {})
    na = aff.setdefault("nodeAffinity", {})
    req = na.get("requiredDuringSchedulingIgnoredDuringExecution")
    if req is None:
        na["requiredDuringSchedulingIgnoredDuringExecution"] = {"nodeSelectorTerms": [term]}
    else:
        req["nodeSelectorTerms"] = [term]
    return aff


def target_node(pod: Obj) -> str | None:
    """The node a daemon pod is for: spec.nodeName, or its `metadata.name In [x]` node affinity."""
    spec = pod.get("spec") or {}
    if spec.get("nodeName"):
        return spec["nodeName"]
    req = (((spec.get("affinity") or {}).get("nodeAffinity") or {})
           .get("requiredDuringSchedulingIgnoredDuringExecution") or {})
    terms = req.get("nodeSelectorTerms") or []
    if len(terms) != 1:
        return None
    for f in terms[0].get("matchFields") or []:
        if f.get("key") == "metadata.name" and f.get("operator") == "In" and len(f.get("values") or []) == 1:
            return f["values"][0]
    return None


def new_daemon_pod(ds: Obj, node: str) -> Obj:
    tpl = (ds.get("spec") or {}).get("template") or {}
    spec = copy.deepcopy(tpl.get("spec") or {})
    spec["nodeName"] = node
    add_daemon_tolerations(spec)
    return {"metadata": copy.deepcopy(tpl.get("metadata") or {}), "spec": spec}


def _untolerated(taints: list[Obj], tolerations: list[Obj], effects: tuple[str, ...]) -> bool:
    return find_untolerated_taint(taints, tolerations, lambda t: t.get("effect") in effects) is not None


def node_should_run_daemon_pod(node: Obj, ds: Obj) -> tuple[bool, bool]:
    """(should run a new pod here, may an existing pod keep running) — upstream NodeShouldRunDaemonPod."""
    name = node["metadata"]["name"]
    tpl_spec = ((ds.get("spec") or {}).get("template") or {}).get("spec") or {}
    if tpl_spec.get("nodeName") and tpl_spec["nodeName"] != name:
        return False, False
    pod = new_daemon_pod(ds, name)
    if not RequiredNodeAffinity(pod["spec"]).matches((node.get("metadata") or {}).get("labels") or {}, name):
        return False, False
    taints = (node.get("spec") or {}).get("taints") or []
    tolerations = pod["spec"].get("tolerations") or []
    if _untolerated(taints, tolerations, ("NoSchedule", "NoExecute")):
        return False, not _untolerated(taints, tolerations, ("NoExecute",))
    return True, True


def template_generation(ds: Obj) -> str | None:
    return ((ds.get("metadata") or {}).get("annotations") or {}).get(TEMPLATE_GENERATION_ANNOTATION)


def is_pod_updated(pod: Obj, hash_: str, generation: str | None) -> bool:
    labels = labels_of(pod)
    return (bool(hash_) and labels.get(history.REVISION_LABEL) == hash_) or (
        generation is not None and labels.get(TEMPLATE_GENERATION) == generation)


def _scaled(v: Any, total: int) -> int:
    return du.scaled_value(v, total, True) if v is not None else 0


def rolling(ds: Obj) -> Obj | None:
    us = (ds.get("spec") or {}).get("updateStrategy") or {}
    if us.get("type", "RollingUpdate") != "RollingUpdate":
        return None
    return us.get("rollingUpdate") or {}


def surge_count(ds: Obj, n: int) -> int:
    r = rolling(ds)
    return _scaled(r.get("maxSurge"), n) if r is not None else 0


def unavailable_count(ds: Obj, n: int) -> int:
    r = rolling(ds)
    return _scaled(r.get("maxUnavailable"), n) if r is not None else 0


def _pod_order(pod: Obj) -> tuple:
    t = creation_time(pod)
    return (0 if (pod.get("spec") or {}).get("nodeName") else 1, t.timestamp() if t else 0.0, pod["metadata"]["name"])


def find_updated_pods_on_node(ds: Obj, pods: list[Obj], hash_: str) -> tuple[Obj | None, Obj | None, bool]:
    new = old = None
    gen = template_generation(ds)
    for p in pods:
        if p["metadata"].get("deletionTimestamp"):
            continue
        if is_pod_updated(p, hash_, gen):
            if new is not None:
                return None, None, False
            new = p
        else:
            if old is not None:
                return None, None, False
            old = p
    return new, old, True


class _Backoff:
    """Per-key exponential backoff (upstream flowcontrol.Backoff, for failed daemon pods)."""

    def __init__(self, initial: float, cap: float, clock) -> None:
        self.initial, self.cap, self.clock = initial, cap, clock
        self._entries: dict[str, tuple[float, float]] = {}  # key → (delay, last update)

    def in_backoff(self, key: str) -> float | None:
        e = self._entries.get(key)
        if e is None:
            return None
        delay, at = e
        left = at + delay - self.clock()
        return left if left > 0 else None

    def next(self, key: str) -> None:
        e = self._entries.get(key)
        delay = self.initial if e is None or self.clock() - e[1] > 2 * self.cap else min(e[0] * 2, self.cap)
        self._entries[key] = (delay, self.clock())


# -- the controller ----------------------------------------------------------------------

@register
class DaemonSetController(Controller):
    name = "daemonset-controller"
    aliases = ("daemonset",)
    workers_option = "concurrent_daemonset_syncs"
    service_account = "daemon-set-controller"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.expectations = ControllerExpectations(self.clock.monotonic)
        self.failed_backoff = _Backoff(*FAILED_POD_BACKOFF, clock=self.clock.monotonic)
        self.sets = self.informer("apps/v1", "daemonsets")
        self.sets.add_handler(self.enqueue, lambda old, new: self.enqueue(new), self._ds_deleted)
        self.pods = self.informer("v1", "pods")
        add_index_once(self.pods, CONTROLLER_INDEX, index_by_controller)
        self.pods.add_handler(self._pod_added, self._pod_updated, self._pod_deleted)
        self.nodes = self.informer("v1", "nodes")
        # a deleted node leaves unscheduled daemon pods that never get scheduled: sync to delete them
        self.nodes.add_handler(self._node_added, self._node_updated, self._node_deleted)
        self.revisions = self.informer("apps/v1", "controllerrevisions")
        add_index_once(self.revisions, CONTROLLER_INDEX, index_by_controller)
        self.revisions.add_handler(self._rev_changed, lambda old, new: self._rev_changed(new), self._rev_changed)
        self.sets_api = self.client.resource("apps/v1", "daemonsets")
        self.revisions_api = self.client.resource("apps/v1", "controllerrevisions")
        self.pods_api = self.client.resource("v1", "pods")
        self.pod_control = PodControl(self.client, self.recorder)

    # -- events ---------------------------------------------------------------------------

    def _ds_deleted(self, item: Any) -> None:
        key = key_of(deleted_object(item))
        self.expectations.delete(key)
        self.queue.add(key)

    def _owner(self, obj: Obj) -> Obj | None:
        return resolve_controller_ref(self.sets.store, obj, "DaemonSet")

    def _sets_selecting(self, pod: Obj) -> list[Obj]:
        return selecting(self.sets.store, pod)

    def _pod_added(self, pod: Obj) -> None:
        if pod["metadata"].get("deletionTimestamp"):
            self._pod_deleted(pod)
            return
        ds = self._owner(pod)
        if ds is not None:
            self.expectations.creation_observed(key_of(ds))
            self.enqueue(ds)
        elif controller_of(pod) is None:
            for ds in self._sets_selecting(pod):
                self.enqueue(ds)

    def _pod_updated(self, old: Obj, cur: Obj) -> None:
        if old["metadata"].get("resourceVersion") == cur["metadata"].get("resourceVersion"):
            return
        old_ref, cur_ref = controller_of(old), controller_of(cur)
        if (old_ref or {}).get("uid") != (cur_ref or {}).get("uid") and old_ref is not None:
            ds = self._owner(old)
            if ds is not None:
                self.enqueue(ds)
        if cur_ref is not None:
            ds = self._owner(cur)
            if ds is None:
                return
            self.enqueue(ds)
            mrs = (ds.get("spec") or {}).get("minReadySeconds") or 0
            if mrs > 0 and not is_pod_ready(old) and is_pod_ready(cur):
                self.enqueue_after(ds, mrs + 1)
            return
        if labels_of(old) != labels_of(cur) or old_ref is not None:
            for ds in self._sets_selecting(cur):
                self.enqueue(ds)

    def _pod_deleted(self, item: Any) -> None:
        pod = deleted_object(item)
        ds = self._owner(pod)
        if ds is not None:
            self.expectations.deletion_observed(key_of(ds))
            self.enqueue(ds)

    def _node_added(self, node: Obj) -> None:
        for ds in self.sets.store.list():
            if node_should_run_daemon_pod(node, ds)[0]:
                self.enqueue(ds)

    def _node_updated(self, old: Obj, cur: Obj) -> None:
        if _ignore_node_update(old, cur):
            return
        for ds in self.sets.store.list():
            if node_should_run_daemon_pod(old, ds) != node_should_run_daemon_pod(cur, ds):
                self.enqueue(ds)

    def _node_deleted(self, item: Any) -> None:
        for ds in self.sets.store.list():
            self.enqueue(ds)

    def _rev_changed(self, item: Any) -> None:
        ds = self._owner(deleted_object(item))
        if ds is not None:
            self.enqueue(ds)

    # -- pods per node -------------------------------------------------------------------

    async def _fresh(self, ds: Obj) -> Obj | None:
        try:
            return await self.sets_api.get(ds["metadata"]["name"], ds["metadata"].get("namespace"))
        except Exception as e:
            if is_not_found(e):
                return None
            raise

    async def nodes_to_daemon_pods(self, ds: Obj, selector: Any) -> dict[str, list[Obj]]:
        manager = ControllerRefManager(ds, selector, self.pods_api, lambda: self._fresh(ds))
        pods = await manager.claim(owned_or_orphans(self.pods.store, ds))
        out: dict[str, list[Obj]] = {}
        for p in pods:
            node = target_node(p)
            if node:
                out.setdefault(node, []).append(p)
        return out

    # -- history -------------------------------------------------------------------------

    async def construct_history(self, ds: Obj, selector: Any) -> tuple[Obj, list[Obj]]:
        manager = ControllerRefManager(ds, selector, self.revisions_api, lambda: self._fresh(ds))
        revs = await manager.claim(owned_or_orphans(self.revisions.store, ds))
        patch = history.template_patch(ds)
        current: list[Obj] = []
        old: list[Obj] = []
        for rev in revs:
            if history.REVISION_LABEL not in (rev["metadata"].get("labels") or {}):
                rev = copy.deepcopy(rev)
                rev["metadata"].setdefault("labels", {})[history.REVISION_LABEL] = rev["metadata"]["name"]
                rev = await self.revisions_api.update(rev)
            (current if history.revision_data_bytes(rev) == patch else old).append(rev)
        number = history.max_revision(old) + 1
        if not current:
            cur = await self._snapshot(ds, number, patch)
        else:
            cur = await self._dedup(ds, current)
            if (cur.get("revision") or 0) < number:
                cur = await history.update_revision_number(self.revisions_api, cur, number)
        return cur, old

    async def _snapshot(self, ds: Obj, number: int, patch: bytes) -> Obj:
        template = (ds.get("spec") or {}).get("template") or {}
        collision = (ds.get("status") or {}).get("collisionCount")
        h = du.compute_hash(template, collision)
        name = f"{ds['metadata']['name']}-{h}"
        ns = ds["metadata"].get("namespace")
        rev = {
            "apiVersion": "apps/v1", "kind": "ControllerRevision",
            "metadata": {"name": name, "namespace": ns,
                         "labels": {**((template.get("metadata") or {}).get("labels") or {}), history.REVISION_LABEL: h},
                         "annotations": dict(ds["metadata"].get("annotations") or {}),
                         "ownerReferences": [controller_ref(ds)]},
            "data": orjson.loads(patch),
            "revision": number,
        }
        if not rev["metadata"]["annotations"]:
            del rev["metadata"]["annotations"]
        try:
            return await self.revisions_api.create(rev, ns)
        except Exception as e:
            if not is_already_exists(e):
                raise
            existing = await self.revisions_api.get(name, ns)
            if history.revision_data_bytes(existing) == patch:
                return existing
            current = await self.sets_api.get(ds["metadata"]["name"], ns)
            if (current.get("status") or {}).get("collisionCount") != collision:
                raise RuntimeError(f"found a stale collision count of DaemonSet {name}; will retry") from e
            current.setdefault("status", {})["collisionCount"] = (collision or 0) + 1
            await self.sets_api.update_status(current)
            raise

    async def _dedup(self, ds: Obj, current: list[Obj]) -> Obj:
        if len(current) == 1:
            return current[0]
        keep = max(current, key=lambda r: r.get("revision") or 0)
        keep_hash = (keep["metadata"].get("labels") or {}).get(history.REVISION_LABEL)
        for rev in current:
            if rev is keep:
                continue
            dup_hash = (rev["metadata"].get("labels") or {}).get(history.REVISION_LABEL)
            for pod in self.pods.store.by_index(CONTROLLER_INDEX, ds["metadata"]["uid"]):
                if labels_of(pod).get(history.REVISION_LABEL) == dup_hash:
                    await self.pods_api.patch(pod["metadata"]["name"],
                                              {"metadata": {"labels": {history.REVISION_LABEL: keep_hash}}},
                                              pod["metadata"].get("namespace"), "strategic")
            try:
                await self.revisions_api.delete(rev["metadata"]["name"], rev["metadata"].get("namespace"))
            except Exception as e:
                if not is_not_found(e):
                    raise
        return keep

    async def cleanup_history(self, ds: Obj, old: list[Obj], node_pods: dict[str, list[Obj]]) -> None:
        limit = (ds.get("spec") or {}).get("revisionHistoryLimit", 10)
        to_kill = len(old) - int(limit)
        if to_kill <= 0:
            return
        live = {labels_of(p).get(history.REVISION_LABEL) for pods in node_pods.values() for p in pods}
        for rev in history.sort_revisions(old):
            if to_kill <= 0:
                break
            if (rev["metadata"].get("labels") or {}).get(history.REVISION_LABEL) in live:
                continue
            try:
                await self.revisions_api.delete(rev["metadata"]["name"], rev["metadata"].get("namespace"))
            except Exception as e:
                if not is_not_found(e):
                    raise
            to_kill -= 1

    # -- sync ------------------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        ds = self.sets.store.get(key)
        if ds is None:
            self.expectations.delete(key)
            return
        sel = (ds.get("spec") or {}).get("selector")
        if sel == {}:
            self.recorder.event(ds, WARNING, "SelectingAll",
                                "This daemon set is selecting all pods. A non-empty selector is required.")
            return
        try:
            selector = selector_from_label_selector(sel)
        except (LabelSelectorError, ValueError) as e:
            self.log.error("%s: invalid selector: %s", key, e)
            return
        if ds["metadata"].get("deletionTimestamp"):
            return
        nodes = self.nodes.store.list()
        cur, old = await self.construct_history(ds, selector)
        hash_ = (cur["metadata"].get("labels") or {}).get(history.REVISION_LABEL, "")
        if not self.expectations.satisfied(key):
            # creations/deletions are in flight: status only, without a new observedGeneration
            await self.update_status(ds, selector, nodes, hash_, False)
            return
        error: BaseException | None = None
        try:
            await self.manage(ds, selector, nodes, hash_)
            if self.expectations.satisfied(key) and rolling(ds) is not None:
                await self.rolling_update(ds, selector, nodes, hash_)
            await self.cleanup_history(ds, old, await self.nodes_to_daemon_pods(ds, selector))
        except Exception as e:
            error = e
        try:
            await self.update_status(ds, selector, nodes, hash_, True)
        except Exception:
            if error is None:
                raise
        if error is not None:
            raise error

    def pods_should_be_on_node(self, node: Obj, node_pods: dict[str, list[Obj]], ds: Obj,
                               hash_: str) -> tuple[list[str], list[str]]:
        name = node["metadata"]["name"]
        should_run, should_continue = node_should_run_daemon_pod(node, ds)
        pods = node_pods.get(name)
        need: list[str] = []
        delete: list[str] = []
        if should_run and not pods:
            need.append(name)
        elif should_continue:
            running = []
            for p in pods or []:
                if p["metadata"].get("deletionTimestamp"):
                    continue
                if phase(p) == "Failed":
                    bkey = f"{ds['metadata']['uid']}/{ds['metadata'].get('generation')}/{name}"
                    left = self.failed_backoff.in_backoff(bkey)
                    if left is not None:
                        self.enqueue_after(ds, left)
                        continue
                    self.failed_backoff.next(bkey)
                    self.recorder.event(ds, WARNING, "FailedDaemonPod",
                                        f"Found failed daemon pod {p['metadata'].get('namespace')}/{p['metadata']['name']} "
                                        f"on node {name}, will try to kill it")
                    delete.append(p["metadata"]["name"])
                elif phase(p) == "Succeeded":
                    delete.append(p["metadata"]["name"])
                else:
                    running.append(p)
            running.sort(key=_pod_order)
            if surge_count(ds, 1) == 0:
                delete += [p["metadata"]["name"] for p in running[1:]]
            elif len(running) <= 1:
                if not running and should_run:
                    need.append(name)
            else:
                oldest_new = oldest_old = None
                gen = template_generation(ds)
                for p in running:
                    if is_pod_updated(p, hash_, gen):
                        if oldest_new is None:
                            oldest_new = p
                            continue
                    elif oldest_old is None:
                        oldest_old = p
                        continue
                    delete.append(p["metadata"]["name"])
                if oldest_new is not None and oldest_old is not None:
                    mrs = (ds.get("spec") or {}).get("minReadySeconds") or 0
                    if not is_pod_ready(oldest_old) or is_pod_available(oldest_new, mrs, self.clock.now()):
                        delete.append(oldest_old["metadata"]["name"])
        elif pods:
            delete += [p["metadata"]["name"] for p in pods if not p["metadata"].get("deletionTimestamp")]
        return need, delete

    async def manage(self, ds: Obj, selector: Any, nodes: list[Obj], hash_: str) -> None:
        node_pods = await self.nodes_to_daemon_pods(ds, selector)
        need: list[str] = []
        delete: list[str] = []
        for node in nodes:
            n, d = self.pods_should_be_on_node(node, node_pods, ds, hash_)
            need += n
            delete += d
        # unscheduled daemon pods for nodes that no longer exist never get scheduled: delete them
        names = {n["metadata"]["name"] for n in nodes}
        for node_name, pods in node_pods.items():
            if node_name not in names:
                delete += [p["metadata"]["name"] for p in pods
                           if not (p.get("spec") or {}).get("nodeName") and not p["metadata"].get("deletionTimestamp")]
        await self.sync_nodes(ds, delete, need, hash_)

    async def sync_nodes(self, ds: Obj, delete: list[str], create_on: list[str], hash_: str) -> None:
        key = key_of(ds)
        create_n = min(len(create_on), BURST_REPLICAS)
        delete_n = min(len(delete), BURST_REPLICAS)
        self.expectations.set(key, create_n, delete_n)
        ns = ds["metadata"].get("namespace") or ""
        template = copy.deepcopy((ds.get("spec") or {}).get("template") or {})
        add_daemon_tolerations(template.setdefault("spec", {}))
        labels = template.setdefault("metadata", {}).setdefault("labels", {})
        gen = template_generation(ds)
        if gen is not None:
            labels[TEMPLATE_GENERATION] = gen
        if hash_:
            labels[history.REVISION_LABEL] = hash_
        ref = controller_ref(ds)
        errors: list[BaseException] = []

        async def create(node: str) -> None:
            pod_template = copy.deepcopy(template)
            pod_template["spec"]["affinity"] = node_name_affinity(pod_template["spec"].get("affinity"), node)
            try:
                await self.pod_control.create_pod(pod_from_template(pod_template, ds, ref), ns, ds)
            except Exception as e:
                details = getattr(e, "details", None) or {}
                if any(c.get("reason") == "NamespaceTerminating" for c in details.get("causes") or []):
                    return
                self.expectations.creation_observed(key)
                errors.append(e)

        pos, batch = 0, min(create_n, 1)
        while pos < create_n:
            before = len(errors)
            await asyncio.gather(*(create(create_on[i]) for i in range(pos, pos + batch)))
            skipped = create_n - (pos + batch)
            if len(errors) > before and skipped > 0:
                self.expectations.lower(key, add=skipped)
                break
            pos += batch
            batch = min(2 * batch, create_n - pos)

        async def remove(name: str) -> None:
            try:
                await self.pod_control.delete_pod(ns, name, ds)
            except Exception as e:
                self.expectations.deletion_observed(key)
                if not is_not_found(e):
                    errors.append(e)

        await asyncio.gather(*(remove(n) for n in delete[:delete_n]))
        if errors:
            raise errors[0]

    async def rolling_update(self, ds: Obj, selector: Any, nodes: list[Obj], hash_: str) -> None:
        node_pods = await self.nodes_to_daemon_pods(ds, selector)
        desired = 0
        for node in nodes:
            if node_should_run_daemon_pod(node, ds)[0]:
                desired += 1
                node_pods.setdefault(node["metadata"]["name"], [])
        max_surge, max_unavailable = surge_count(ds, desired), unavailable_count(ds, desired)
        if desired > 0 and max_surge == 0 and max_unavailable == 0:
            max_unavailable = 1
        now = self.clock.now()
        mrs = (ds.get("spec") or {}).get("minReadySeconds") or 0
        nodes_by_name = {n["metadata"]["name"]: n for n in nodes}
        if max_surge == 0:
            unavailable = 0
            allowed: list[str] = []
            candidates: list[str] = []
            for _node, pods in sorted(node_pods.items()):
                new, old, ok = find_updated_pods_on_node(ds, pods, hash_)
                if not ok:
                    unavailable += 1
                    continue
                if (old is None) == (new is None):
                    unavailable += 1
                elif new is not None:
                    if not is_pod_available(new, mrs, now):
                        unavailable += 1
                elif not is_pod_available(old, mrs, now):
                    allowed.append(old["metadata"]["name"])
                    unavailable += 1
                elif unavailable < max_unavailable:
                    candidates.append(old["metadata"]["name"])
            remaining = min(max(0, max_unavailable - unavailable), len(candidates))
            await self.sync_nodes(ds, allowed + candidates[:remaining], [], hash_)
            return
        to_delete: list[str] = []
        should_not_run: list[str] = []
        candidate_nodes: list[str] = []
        allowed_nodes: list[str] = []
        surge = available = 0
        for node_name, pods in sorted(node_pods.items()):
            new, old, ok = find_updated_pods_on_node(ds, pods, hash_)
            if not ok:
                surge += 1
                continue
            if old is not None:
                available += is_pod_available(old, mrs, now)
            elif new is not None:
                available += is_pod_available(new, mrs, now)
            if old is None:
                continue
            node = nodes_by_name.get(node_name)
            if new is None:
                should_run = node is not None and node_should_run_daemon_pod(node, ds)[0]
                if not is_pod_available(old, mrs, now):
                    if not should_run:
                        to_delete.append(old["metadata"]["name"])
                        continue
                    allowed_nodes.append(node_name)
                elif not should_run:
                    should_not_run.append(old["metadata"]["name"])
                elif surge < max_surge:
                    candidate_nodes.append(node_name)
            elif not is_pod_available(new, mrs, now):
                surge += 1
            else:
                to_delete.append(old["metadata"]["name"])
        deletable = min(available - desired, len(should_not_run))
        if deletable > 0:
            to_delete += should_not_run[:deletable]
        remaining = min(max(0, max_surge - surge), len(candidate_nodes))
        await self.sync_nodes(ds, to_delete, allowed_nodes + candidate_nodes[:remaining], hash_)

    async def update_status(self, ds: Obj, selector: Any, nodes: list[Obj], hash_: str, observe: bool) -> None:
        node_pods = await self.nodes_to_daemon_pods(ds, selector)
        desired = current = misscheduled = ready = updated = available = 0
        now = self.clock.now()
        mrs = (ds.get("spec") or {}).get("minReadySeconds") or 0
        gen = template_generation(ds)
        for node in nodes:
            should_run, _ = node_should_run_daemon_pod(node, ds)
            pods = node_pods.get(node["metadata"]["name"]) or []
            if should_run:
                desired += 1
                if not pods:
                    continue
                current += 1
                pod = sorted(pods, key=_pod_order)[0]
                if is_pod_ready(pod):
                    ready += 1
                    if is_pod_available(pod, mrs, now):
                        available += 1
                if is_pod_updated(pod, hash_, gen):
                    updated += 1
            elif pods:
                misscheduled += 1
        new = {
            "currentNumberScheduled": current, "numberMisscheduled": misscheduled,
            "desiredNumberScheduled": desired, "numberReady": ready, "updatedNumberScheduled": updated,
            "numberAvailable": available, "numberUnavailable": desired - available,
        }
        await self._store_status(ds, new, observe)
        if mrs > 0 and ready != available:
            self.enqueue_after(ds, mrs)

    async def _store_status(self, ds: Obj, counts: Obj, observe: bool) -> None:
        old = ds.get("status") or {}
        generation = ds["metadata"].get("generation") or 0
        if all((old.get(k) or 0) == v for k, v in counts.items()) and (old.get("observedGeneration") or 0) >= generation:
            return
        current = ds
        for attempt in range(2):
            status = dict(current.get("status") or {})
            status.update(counts)
            if observe:
                status["observedGeneration"] = current["metadata"].get("generation")
            for k in ("updatedNumberScheduled", "numberAvailable", "numberUnavailable", "observedGeneration"):
                if not status.get(k):
                    status.pop(k, None)
            try:
                await self.sets_api.update_status({**current, "status": status})
                return
            except Exception:
                if attempt:
                    raise
            ns, name = split_key(key_of(ds))
            current = await self.sets_api.get(name, ns)


def _ignore_node_update(old: Obj, cur: Obj) -> bool:
    """Only heartbeats changed (conditions' times, resourceVersion): no scheduling decision changes."""
    def strip(n: Obj) -> Obj:
        n = copy.deepcopy(n)
        n["metadata"].pop("resourceVersion", None)
        n["metadata"].pop("managedFields", None)
        for c in (n.get("status") or {}).get("conditions") or []:
            c.pop("lastHeartbeatTime", None)
        return n
    return strip(old) == strip(cur)
