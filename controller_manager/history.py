"""ControllerRevisions: the template history of DaemonSets and StatefulSets (upstream pkg/controller/history).

A revision's `data` is the patch that restores the owner's pod template,
`{"spec":{"template":{..., "$patch":"replace"}}}` as compact JSON with sorted keys (what
`kubectl rollout undo` applies, and compares byte for byte to find the current revision).
Names are `<owner>-<hash>`; the hash also goes into the `controller.kubernetes.io/hash` label.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

import orjson

from apimachinery.meta import controller_of
from client import ResourceClient, is_already_exists
from controller_manager.deployment_util import safe_encode_string
from controller_manager.podcontrol import controller_ref
from controller_manager.podutil import creation_time

Obj = dict[str, Any]

HASH_LABEL = "controller.kubernetes.io/hash"
REVISION_LABEL = "controller-revision-hash"  # on pods (StatefulSet: the revision name; DaemonSet: the hash)
MAX_PREFIX = 223


def fnv32(data: bytes, h: int = 0x811C9DC5) -> int:
    """FNV-1 (multiply, then xor), as Go's fnv.New32 that HashControllerRevision uses."""
    for b in data:
        h = ((h * 0x01000193) & 0xFFFFFFFF) ^ b
    return h


def template_patch(owner: Obj) -> bytes:
    """The revision data of an owner: its pod template as a replace patch (sorted, compact JSON)."""
    template = copy.deepcopy((owner.get("spec") or {}).get("template") or {})
    template["$patch"] = "replace"
    return orjson.dumps({"spec": {"template": template}}, option=orjson.OPT_SORT_KEYS)


def revision_data_bytes(rev: Obj) -> bytes:
    data = rev.get("data")
    if data is None:
        return b""
    return orjson.dumps(data, option=orjson.OPT_SORT_KEYS)


def hash_revision(data: bytes, probe: int | None) -> str:
    h = fnv32(data) if data else 0x811C9DC5
    if probe is not None:
        h = fnv32(str(probe).encode(), h)
    return safe_encode_string(str(h))


def revision_name(prefix: str, hash_: str) -> str:
    return f"{prefix[:MAX_PREFIX]}-{hash_}"


def new_revision(owner: Obj, template_labels: dict[str, str] | None, data: bytes, number: int,
                 collision_count: int | None) -> Obj:
    """An unsaved ControllerRevision of `owner` (upstream NewControllerRevision)."""
    labels = dict(template_labels or {})
    h = hash_revision(data, collision_count)
    labels[HASH_LABEL] = h
    return {
        "apiVersion": "apps/v1", "kind": "ControllerRevision",
        "metadata": {"name": revision_name(owner["metadata"]["name"], h),
                     "namespace": owner["metadata"].get("namespace"),
                     "labels": labels, "ownerReferences": [controller_ref(owner)]},
        "data": orjson.loads(data),
        "revision": number,
    }


def equal_revision(a: Obj | None, b: Obj | None) -> bool:
    if a is None or b is None:
        return a is b
    ha = ((a.get("metadata") or {}).get("labels") or {}).get(HASH_LABEL)
    hb = ((b.get("metadata") or {}).get("labels") or {}).get(HASH_LABEL)
    if ha and hb and ha != hb:
        return False
    return revision_data_bytes(a) == revision_data_bytes(b)


def sort_revisions(revs: Iterable[Obj]) -> list[Obj]:
    """By revision number, then creation time, then name (upstream SortControllerRevisions)."""
    def key(r: Obj) -> tuple:
        t = creation_time(r)
        return (r.get("revision") or 0, t.timestamp() if t else 0.0, r["metadata"]["name"])
    return sorted(revs, key=key)


def max_revision(revs: Iterable[Obj]) -> int:
    return max((r.get("revision") or 0 for r in revs), default=0)


def owned_by(rev: Obj, owner: Obj) -> bool:
    ref = controller_of(rev)
    return ref is not None and ref.get("uid") == owner["metadata"]["uid"]


async def create_revision(api: ResourceClient, owner: Obj, rev: Obj, collision_count: int) -> tuple[Obj, int]:
    """Create, bumping the collision count while a different revision holds the name; returns
    (the stored revision, the collision count used)."""
    data = revision_data_bytes(rev)
    while True:
        clone = copy.deepcopy(rev)
        h = hash_revision(data, collision_count)
        clone["metadata"]["name"] = revision_name(owner["metadata"]["name"], h)
        clone["metadata"].setdefault("labels", {})[HASH_LABEL] = h
        ns = owner["metadata"].get("namespace")
        try:
            return await api.create(clone, ns), collision_count
        except Exception as e:
            if not is_already_exists(e):
                raise
        existing = await api.get(clone["metadata"]["name"], ns)
        if revision_data_bytes(existing) == data:
            return existing, collision_count
        collision_count += 1


async def update_revision_number(api: ResourceClient, rev: Obj, number: int) -> Obj:
    if rev.get("revision") == number:
        return rev
    return await api.update({**rev, "revision": number})
