"""Creating, deleting, adopting and releasing the objects a controller owns.

`PodControl` writes pods for an owner and records upstream's events about it
(SuccessfulCreate "Created pod: x", FailedCreate "Error creating: ...", SuccessfulDelete,
FailedDelete). `ControllerRefManager.claim` is upstream's ControllerRefManager: of the
objects a controller sees, keep those it owns whose labels still match its selector,
release (drop its controller reference from) those that no longer match, and adopt
orphans that match — after re-reading the owner from the apiserver once, so that an
owner that was just deleted (or deleted and re-created) never adopts anything.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from apimachinery.errors import StatusError
from apimachinery.meta import controller_of, owner_reference
from apimachinery.selectors import LabelSelector, LabelSelectorError, selector_from_label_selector
from client import NORMAL, WARNING, APIClient, EventRecorder, ResourceClient, is_invalid, is_not_found
from client.store import Store

log = logging.getLogger("controller_manager.podcontrol")

Obj = dict[str, Any]

#: index of a shared informer's store: the controller's uid, or "orphan/<namespace>" for orphans
CONTROLLER_INDEX = "controllerUID"


def index_by_controller(obj: Obj) -> str:
    ref = controller_of(obj)
    if ref is not None and ref.get("uid"):
        return ref["uid"]
    return f"orphan/{(obj.get('metadata') or {}).get('namespace') or ''}"


def owned_or_orphans(store: Store, owner: Obj) -> list[Obj]:
    """Objects in `store` controlled by `owner`, plus orphans in its namespace (claim candidates)."""
    m = owner["metadata"]
    return store.by_index(CONTROLLER_INDEX, m["uid"]) + store.by_index(CONTROLLER_INDEX, f"orphan/{m.get('namespace') or ''}")


def resolve_controller_ref(store: Store, obj: Obj, kind: str) -> Obj | None:
    """The `kind` object obj's controller reference names, if `store` has it with the same uid
    (upstream's resolveControllerRef: a reference to a deleted and re-created owner is stale)."""
    ref = controller_of(obj)
    if ref is None or ref.get("kind") != kind:
        return None
    owner = store.get_by_name(obj["metadata"].get("namespace"), ref.get("name", ""))
    if owner is None or owner["metadata"].get("uid") != ref.get("uid"):
        return None
    return owner


def spec_selector(owner: Obj) -> Obj | None:
    """An owner's spec.selector, a metav1.LabelSelector for every kind but ReplicationController."""
    return (owner.get("spec") or {}).get("selector")


def selecting(store: Store, obj: Obj, selector_of: Callable[[Obj], Obj | None] = spec_selector) -> list[Obj]:
    """The objects in obj's namespace whose label selector matches obj (to find orphans' would-be
    owners). As upstream's GetPod*Sets listers: an object without labels has none, and an empty
    or invalid selector selects nothing."""
    labels = (obj["metadata"].get("labels")) or {}
    if not labels:
        return []
    out = []
    for owner in store.by_index("namespace", obj["metadata"].get("namespace")):
        try:
            sel = selector_from_label_selector(selector_of(owner))
        except (LabelSelectorError, ValueError):
            continue
        if not sel.empty and sel.matches(labels):
            out.append(owner)
    return out


def error_message(e: BaseException) -> str:
    return e.message if isinstance(e, StatusError) else str(e)


def controller_ref(owner: Obj) -> dict[str, Any]:
    return owner_reference(owner, controller=True, block=True)


def pod_from_template(template: Obj, owner: Obj | None, ref: dict[str, Any] | None) -> Obj:
    """A new pod from a pod template: labels, annotations, finalizers, spec; generateName `<owner>-`."""
    tmeta = template.get("metadata") or {}
    meta: dict[str, Any] = {
        "labels": dict(tmeta.get("labels") or {}),
    }
    if tmeta.get("annotations"):
        meta["annotations"] = dict(tmeta["annotations"])
    if tmeta.get("finalizers"):
        meta["finalizers"] = list(tmeta["finalizers"])
    if owner is not None:
        meta["generateName"] = f"{owner['metadata']['name']}-"
    if ref is not None:
        meta["ownerReferences"] = [ref]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": copy.deepcopy(template.get("spec") or {})}


class PodControl:
    """Pod writes on behalf of a controller, with upstream's events on the owner."""

    def __init__(self, client: APIClient, recorder: EventRecorder) -> None:
        self.pods = client.resource("v1", "pods")
        self.recorder = recorder

    async def create_pod(self, pod: Obj, namespace: str, owner: Obj) -> Obj:
        if not (pod.get("metadata") or {}).get("labels"):
            raise ValueError("unable to create pods, no labels")
        try:
            created = await self.pods.create(pod, namespace)
        except Exception as e:
            self.recorder.event(owner, WARNING, "FailedCreate", f"Error creating: {error_message(e)}")
            raise
        self.recorder.event(owner, NORMAL, "SuccessfulCreate", f"Created pod: {created['metadata']['name']}")
        return created

    async def create_from_template(self, namespace: str, template: Obj, owner: Obj,
                                   ref: dict[str, Any] | None = None) -> Obj:
        pod = pod_from_template(template, owner, ref if ref is not None else controller_ref(owner))
        return await self.create_pod(pod, namespace, owner)

    async def delete_pod(self, namespace: str, name: str, owner: Obj) -> None:
        """Delete; a pod that is already gone raises NotFound (callers usually ignore it), without an event."""
        try:
            await self.pods.delete(name, namespace)
        except Exception as e:
            if is_not_found(e):
                raise
            self.recorder.event(owner, WARNING, "FailedDelete", f"Error deleting: {error_message(e)}")
            raise
        self.recorder.event(owner, NORMAL, "SuccessfulDelete", f"Deleted pod: {name}")

    async def patch_pod(self, namespace: str, name: str, patch: Obj) -> Obj:
        return await self.pods.patch(name, patch, namespace, "strategic")


#: creates in flight at once within a slow-start batch. client-go multiplexes a batch over one
#: HTTP/2 connection; over HTTP/1.1 every in-flight request holds a connection of its own (and
#: a new one costs a TLS handshake), and beyond a few dozen the apiserver is the bottleneck anyway.
MAX_IN_FLIGHT = 32


async def slow_start_batch(count: int, initial: int, fn: Callable[[], Awaitable[Any]],
                           max_in_flight: int = MAX_IN_FLIGHT) -> tuple[int, BaseException | None]:
    """Call `fn` `count` times in batches of 1, 2, 4, ... (concurrently within a batch); stop after a
    batch with a failure. Returns (successes, first error) — upstream slowStartBatch: a quota or
    admission problem costs one failed call, not hundreds."""
    limit = asyncio.Semaphore(max_in_flight)

    async def bounded() -> Any:
        async with limit:
            return await fn()

    remaining, successes, batch = count, 0, min(count, initial)
    while batch > 0:
        results = await asyncio.gather(*(bounded() for _ in range(batch)), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        for r in errors:
            if isinstance(r, asyncio.CancelledError):
                raise r
        successes += batch - len(errors)
        if errors:
            return successes, errors[0]
        remaining -= batch
        batch = min(2 * batch, remaining)
    return successes, None


class ControllerRefManager:
    """Claim objects (pods, replica sets, controller revisions) for one controller object."""

    def __init__(
        self,
        owner: Obj,
        selector: LabelSelector,
        resource: ResourceClient,
        fresh_owner: Callable[[], Awaitable[Obj | None]],
    ) -> None:
        self.owner = owner
        self.uid = owner["metadata"]["uid"]
        self.namespace = owner["metadata"].get("namespace") or ""
        self.selector = selector
        self.resource = resource
        self._fresh_owner = fresh_owner
        self._can_adopt: BaseException | bool | None = None

    async def _check_can_adopt(self) -> None:
        """Re-read the owner once: adopting for an owner that is gone or going is never right."""
        if self._can_adopt is None:
            try:
                fresh = await self._fresh_owner()
                m = self.owner["metadata"]
                if fresh is None:
                    raise RuntimeError(f"{m.get('namespace')}/{m['name']} is gone")
                fm = fresh["metadata"]
                if fm.get("uid") != self.uid:
                    raise RuntimeError(f"original {m.get('namespace')}/{m['name']} is gone: got uid {fm.get('uid')}, "
                                       f"wanted {self.uid}")
                if fm.get("deletionTimestamp"):
                    raise RuntimeError(f"{m.get('namespace')}/{m['name']} has just been deleted at "
                                       f"{fm['deletionTimestamp']}")
                self._can_adopt = True
            except Exception as e:
                self._can_adopt = e
        if isinstance(self._can_adopt, BaseException):
            raise RuntimeError(f"can't adopt: {self._can_adopt}") from self._can_adopt

    async def adopt(self, obj: Obj) -> None:
        await self._check_can_adopt()
        m = obj["metadata"]
        ref = controller_ref(self.owner)
        patch = {"metadata": {"ownerReferences": [ref], "uid": m["uid"]}}
        await self.resource.patch(m["name"], patch, m.get("namespace"), "strategic")

    async def release(self, obj: Obj) -> None:
        m = obj["metadata"]
        patch = {"metadata": {"ownerReferences": [{"$patch": "delete", "uid": self.uid}], "uid": m["uid"]}}
        try:
            await self.resource.patch(m["name"], patch, m.get("namespace"), "strategic")
        except Exception as e:
            if is_not_found(e) or is_invalid(e):
                return  # gone, or owned differently by now: nothing to release
            raise

    async def claim(self, objs: Iterable[Obj], match: Callable[[Obj], bool] | None = None) -> list[Obj]:
        """The objects this controller owns after adopting/releasing; raises if any adoption/release failed."""
        matches = match or (lambda o: self.selector.matches((o.get("metadata") or {}).get("labels")))
        owner_deleting = bool(self.owner["metadata"].get("deletionTimestamp"))
        claimed: list[Obj] = []
        errors: list[BaseException] = []
        for obj in objs:
            m = obj.get("metadata") or {}
            ref = controller_of(obj)
            if ref is not None:
                if ref.get("uid") != self.uid:
                    continue  # someone else's
                if matches(obj):
                    claimed.append(obj)
                    continue
                if owner_deleting:
                    continue  # the owner is going away: leave its objects to the garbage collector
                try:
                    await self.release(obj)
                except Exception as e:
                    errors.append(e)
                continue
            # an orphan
            if owner_deleting or not matches(obj) or m.get("deletionTimestamp"):
                continue
            if self.namespace and m.get("namespace") != self.namespace:
                continue
            try:
                await self.adopt(obj)
            except Exception as e:
                if not is_not_found(e):
                    errors.append(e)
                continue
            adopted = copy.copy(obj)
            adopted["metadata"] = {**m, "ownerReferences": [*(m.get("ownerReferences") or []), controller_ref(self.owner)]}
            claimed.append(adopted)
        if errors:
            raise errors[0]
        return claimed
