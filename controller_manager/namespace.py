"""The namespace controller: a deleted namespace is emptied, then released.

Upstream pkg/controller/namespace (+ deletion/namespaced_resources_deleter.go). Deleting a
namespace only marks it (deletionTimestamp, phase Terminating): its `kubernetes` finalizer
(spec.finalizers) holds it. This controller then, for every namespaced resource type the
apiserver serves (found through discovery, never a fixed list):
- deletes the whole collection (background propagation), or each item where the resource
  has no deletecollection;
- lists what remains: items held by finalizers, pods still in their grace period.
It reports the outcome in the namespace's status conditions, as upstream:
NamespaceDeletionDiscoveryFailure, NamespaceDeletionGroupVersionParsingFailure,
NamespaceDeletionContentFailure, NamespaceContentRemaining, NamespaceFinalizersRemaining.
While anything remains it tries again after an estimate (the longest pod grace period
left, 15 s when objects wait for finalizers); once nothing remains it PUTs
namespaces/<name>/finalize without `kubernetes`, and the apiserver removes the namespace
when no finalizer is left.

New deletions are processed after a short delay (upstream: 5 s, so that writes racing the
deletion land first); every --namespace-sync-period the terminating namespaces are retried.
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from apimachinery.meta import format_time, parse_time, split_key
from client import ResourceInfo, is_conflict, is_not_found
from client.errors import ApiError
from controller_manager.base import Controller, ControllerContext, periodic, register
from controller_manager.discovery import discover

Obj = dict[str, Any]

FINALIZER = "kubernetes"
DELETION_GRACE_PERIOD = 5.0  # upstream namespaceDeletionGracePeriod
FINALIZER_ESTIMATE_SECONDS = 15  # upstream: objects waiting for finalizers are given this long

CONDITION_TYPES = (
    "NamespaceDeletionDiscoveryFailure",
    "NamespaceDeletionGroupVersionParsingFailure",
    "NamespaceDeletionContentFailure",
    "NamespaceContentRemaining",
    "NamespaceFinalizersRemaining",
)
OK_REASONS = {
    "NamespaceDeletionDiscoveryFailure": "ResourcesDiscovered",
    "NamespaceDeletionGroupVersionParsingFailure": "ParsedGroupVersions",
    "NamespaceDeletionContentFailure": "ContentDeleted",
    "NamespaceContentRemaining": "ContentRemoved",
    "NamespaceFinalizersRemaining": "ContentRemoved",
}
OK_MESSAGES = {
    "NamespaceDeletionDiscoveryFailure": "All resources successfully discovered",
    "NamespaceDeletionGroupVersionParsingFailure": "All legacy kube types successfully parsed",
    "NamespaceDeletionContentFailure": "All content successfully deleted, may be waiting on finalization",
    "NamespaceContentRemaining": "All content successfully removed",
    "NamespaceFinalizersRemaining": "All content successfully removed",
}


class ContentRemaining(Exception):
    """Some content is still being removed; look again after `estimate` seconds."""

    def __init__(self, estimate: int) -> None:
        super().__init__(f"some content remains in the namespace, estimate {estimate} seconds before it is removed")
        self.estimate = estimate


@dataclass
class ResourceOutcome:
    estimate: int = 0
    remaining: int = 0
    finalizers: dict[str, int] = field(default_factory=dict)


def group_resource(info: ResourceInfo) -> str:
    return f"{info.plural}.{info.group}"


def failure_conditions(now: dt.datetime, discovery_failed: dict[str, str], content_errors: list[str],
                       remaining: dict[str, int], finalizers: dict[str, int]) -> list[Obj]:
    """The failing conditions of one deletion pass (the others are reported as fine)."""
    ts = format_time(now)
    out = []
    if discovery_failed:
        out.append({"type": "NamespaceDeletionDiscoveryFailure", "status": "True", "lastTransitionTime": ts,
                    "reason": "DiscoveryFailed",
                    "message": f"Discovery failed for some groups, {len(discovery_failed)} failing: "
                               + ", ".join(f"{gv}: {e}" for gv, e in sorted(discovery_failed.items()))})
    if content_errors:
        out.append({"type": "NamespaceDeletionContentFailure", "status": "True", "lastTransitionTime": ts,
                    "reason": "ContentDeletionFailed",
                    "message": f"Failed to delete all resource types, {len(content_errors)} remaining: "
                               + ", ".join(sorted(content_errors))})
    left = sorted(f"{gr} has {n} resource instances" for gr, n in remaining.items() if n)
    if left:
        out.append({"type": "NamespaceContentRemaining", "status": "True", "lastTransitionTime": ts,
                    "reason": "SomeResourcesRemain", "message": "Some resources are remaining: " + ", ".join(left)})
    held = sorted(f"{f} in {n} resource instances" for f, n in finalizers.items() if n)
    if held:
        out.append({"type": "NamespaceFinalizersRemaining", "status": "True", "lastTransitionTime": ts,
                    "reason": "SomeFinalizerRemain", "message": "Some finalizers are remaining: " + ", ".join(held)})
    return out


def update_conditions(status: Obj, failing: list[Obj], now: dt.datetime) -> bool:
    """Set every deletion condition type (failing ones True, others False/OK); True if changed."""
    by_type = {c["type"]: c for c in failing}
    conds = [dict(c) for c in status.get("conditions") or []]
    changed = False
    for t in CONDITION_TYPES:
        new = by_type.get(t) or {"type": t, "status": "False", "lastTransitionTime": format_time(now),
                                 "reason": OK_REASONS[t], "message": OK_MESSAGES[t]}
        old = next((c for c in conds if c.get("type") == t), None)
        if old is None:
            conds.append(new)
            changed = True
        elif (old.get("status"), old.get("reason"), old.get("message")) != (new["status"], new["reason"], new["message"]):
            if old.get("status") != new["status"]:
                old["lastTransitionTime"] = format_time(now)
            old.update(status=new["status"], reason=new["reason"], message=new["message"])
            changed = True
    if changed:
        status["conditions"] = conds
    return changed


@register
class NamespaceController(Controller):
    name = "namespace-controller"
    aliases = ("namespace",)
    workers_option = "concurrent_namespace_syncs"
    service_account = "namespace-controller"

    deletion_grace_period = DELETION_GRACE_PERIOD

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.namespaces = self.informer("v1", "namespaces")
        self.namespaces.add_handler(self._namespace_changed, lambda old, new: self._namespace_changed(new), None)
        self.namespaces_api = self.client.resource("v1", "namespaces")
        self.pods_api = self.client.resource("v1", "pods")
        #: resources whose list / deletecollection the server turned out not to support
        self._unsupported: set[tuple[str, str, str]] = set()

    def _namespace_changed(self, ns: Obj) -> None:
        if ns["metadata"].get("deletionTimestamp"):
            self.queue.add_after(ns["metadata"]["name"], self.deletion_grace_period)

    def background(self, stop: asyncio.Event):
        return [periodic(self.options.namespace_sync_period, self._resync, stop)]

    def _resync(self) -> None:
        for ns in self.namespaces.store.list():
            if ns["metadata"].get("deletionTimestamp"):
                self.queue.add(ns["metadata"]["name"])

    # -- the sync ------------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        _, name = split_key(key)
        try:
            await self.delete_namespace(name)
        except ContentRemaining as e:
            self.log.info("namespace %s: %s", name, e)
            self.queue.add_after(key, max(1, e.estimate))

    async def delete_namespace(self, name: str) -> None:
        try:
            ns = await self.namespaces_api.get(name)
        except ApiError as e:
            if is_not_found(e):
                return
            raise
        if not ns["metadata"].get("deletionTimestamp"):
            return
        ns = await self._retry_on_conflict(ns, self._mark_terminating)
        if ns is None or not ns["metadata"].get("deletionTimestamp"):
            return
        if FINALIZER not in ((ns.get("spec") or {}).get("finalizers") or []):
            return  # already released by us; other finalizers are someone else's
        estimate = await self.delete_all_content(ns)
        if estimate > 0:
            raise ContentRemaining(estimate)
        await self._retry_on_conflict(ns, self._finalize)

    async def _retry_on_conflict(self, ns: Obj, fn) -> Obj | None:
        for _ in range(10):
            try:
                return await fn(ns)
            except ApiError as e:
                if is_not_found(e):
                    return None
                if not is_conflict(e):
                    raise
            latest = await self.namespaces_api.get(ns["metadata"]["name"])
            if latest["metadata"].get("uid") != ns["metadata"].get("uid"):
                raise RuntimeError("namespace uid has changed across retries")
            ns = latest
        raise RuntimeError(f"namespace {ns['metadata']['name']}: too many conflicts")

    async def _mark_terminating(self, ns: Obj) -> Obj:
        if (ns.get("status") or {}).get("phase") == "Terminating":
            return ns
        new = copy.deepcopy(ns)
        new.setdefault("status", {})["phase"] = "Terminating"
        return await self.namespaces_api.update_status(new)

    async def _finalize(self, ns: Obj) -> Obj:
        new = copy.deepcopy(ns)
        rest = sorted({f for f in (ns.get("spec") or {}).get("finalizers") or [] if f != FINALIZER})
        new.setdefault("spec", {})["finalizers"] = rest
        return await self.namespaces_api.update_subresource(ns["metadata"]["name"], "finalize", new)

    async def delete_all_content(self, ns: Obj) -> int:
        """Delete everything in the namespace once; the seconds to wait before looking again (0: empty)."""
        name = ns["metadata"]["name"]
        deleted_at = parse_time(ns["metadata"]["deletionTimestamp"])
        errors: list[str] = []
        content_errors: list[str] = []
        discovered = await discover(self.ctx.client)  # discovery: readable by everyone, so the root client
        if discovered.failed:
            errors.append(f"discovery failed for {sorted(discovered.failed)}")
        resources = discovered.namespaced_deletable()
        outcomes = await asyncio.gather(*(self._delete_resource(r, name, deleted_at) for r in resources),
                                        return_exceptions=True)
        estimate = 0
        remaining: dict[str, int] = {}
        finalizers: dict[str, int] = {}
        for info, outcome in zip(resources, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                if isinstance(outcome, asyncio.CancelledError):
                    raise outcome
                errors.append(f"{group_resource(info)}: {outcome}")
                content_errors.append(str(outcome))
                continue
            estimate = max(estimate, outcome.estimate)
            if outcome.remaining:
                remaining[group_resource(info)] = outcome.remaining
                for f, n in outcome.finalizers.items():
                    finalizers[f] = finalizers.get(f, 0) + n
        now = self.clock.now()
        failing = failure_conditions(now, discovered.failed, content_errors, remaining, finalizers)
        latest = copy.deepcopy(ns)
        if update_conditions(latest.setdefault("status", {}), failing, now):
            try:
                await self.namespaces_api.update_status(latest)
            except ApiError as e:
                self.log.warning("namespace %s: updating its conditions failed: %s", name, e)
        if errors:
            raise RuntimeError(f"deleting the content of namespace {name}: " + "; ".join(errors))
        return estimate

    async def _delete_resource(self, info: ResourceInfo, ns: str, deleted_at: dt.datetime) -> ResourceOutcome:
        api = self.client.resource(info.api_version, info.plural)
        estimate = await self._estimate(info, ns, deleted_at)
        key = (info.api_version, info.plural)
        collection_ok = "deletecollection" in info.verbs and ("deletecollection", *key) not in self._unsupported
        if collection_ok:
            try:
                await api.delete_collection(ns, propagation_policy="Background")
            except ApiError as e:
                if not (is_not_found(e) or e.code == 405):
                    raise
                self._unsupported.add(("deletecollection", *key))
                collection_ok = False
        if not collection_ok:
            items = await self._list(info, api, ns)
            for item in items or []:
                try:
                    await api.delete(item["metadata"]["name"], ns, propagation_policy="Background")
                except ApiError as e:
                    if not (is_not_found(e) or e.code == 405):
                        raise
        items = await self._list(info, api, ns)
        if not items:
            return ResourceOutcome()
        finalizers: dict[str, int] = {}
        for item in items:
            for f in item["metadata"].get("finalizers") or []:
                finalizers[f] = finalizers.get(f, 0) + 1
        if estimate:
            return ResourceOutcome(estimate, len(items), finalizers)
        if finalizers:
            return ResourceOutcome(FINALIZER_ESTIMATE_SECONDS, len(items), finalizers)
        raise RuntimeError(f"unexpected items still remain in namespace: {ns} for gvr: {group_resource(info)}")

    async def _list(self, info: ResourceInfo, api, ns: str) -> list[Obj] | None:
        key = ("list", info.api_version, info.plural)
        if "list" not in info.verbs or key in self._unsupported:
            return None
        try:
            return (await api.list(ns)).get("items") or []
        except ApiError as e:
            if is_not_found(e) or e.code == 405:
                self._unsupported.add(key)
                return None
            raise

    async def _estimate(self, info: ResourceInfo, ns: str, deleted_at: dt.datetime) -> int:
        """Seconds pods may still take to stop gracefully (0 for other resources, or once that long passed)."""
        if (info.group, info.plural) != ("", "pods"):
            return 0
        estimate = 0
        for pod in (await self.pods_api.list(ns)).get("items") or []:
            if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                continue
            grace = (pod.get("spec") or {}).get("terminationGracePeriodSeconds")
            if grace is not None and grace > estimate:
                estimate = int(grace)
        if (self.clock.now() - deleted_at).total_seconds() >= estimate:
            return 0
        return estimate
