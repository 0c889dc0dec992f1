"""Deployment arithmetic and bookkeeping (upstream pkg/controller/deployment/util).

Revisions live in the `deployment.kubernetes.io/revision` annotation of each ReplicaSet;
`desired-replicas`/`max-replicas` annotations remember the deployment size an RS was last
scaled for (proportional scaling uses them). A pod template is identified by its hash
(`pod-template-hash`, FNV-32a + SafeEncodeString like upstream's ComputeHash; the hashed
bytes are the template's canonical JSON, where upstream hashes Go's `%#v` dump of its struct).
"""

from __future__ import annotations

import copy
import math
import struct
from collections.abc import Iterable
from typing import Any

import orjson

from apimachinery.meta import controller_of
from controller_manager.podutil import creation_time

Obj = dict[str, Any]

POD_TEMPLATE_HASH = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
ROLLBACK_TO = "deprecated.deployment.rollback.to"
CHANGE_CAUSE = "kubernetes.io/change-cause"
#: annotations of a Deployment never copied onto its ReplicaSets
ANNOTATIONS_TO_SKIP = frozenset({LAST_APPLIED, REVISION, REVISION_HISTORY, DESIRED_REPLICAS, MAX_REPLICAS, ROLLBACK_TO})
MAX_REV_HISTORY_LENGTH_IN_CHARS = 2000
MAX_INT32 = 2**31 - 1

# condition reasons
FOUND_NEW_RS = "FoundNewReplicaSet"
NEW_RS_CREATED = "NewReplicaSetCreated"
NEW_RS_AVAILABLE = "NewReplicaSetAvailable"
RS_UPDATED = "ReplicaSetUpdated"
TIMED_OUT = "ProgressDeadlineExceeded"
FAILED_RS_CREATE = "ReplicaSetCreateError"
PAUSED = "DeploymentPaused"
RESUMED = "DeploymentResumed"
MIN_AVAILABLE = "MinimumReplicasAvailable"
MIN_UNAVAILABLE = "MinimumReplicasUnavailable"

_SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


# -- hashing -----------------------------------------------------------------------------

def fnv32a(data: bytes, h: int = 0x811C9DC5) -> int:
    for b in data:
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return h


def safe_encode_string(s: str) -> str:
    """Upstream rand.SafeEncodeString: every character mapped into a vowel-free alphabet."""
    return "".join(_SAFE_ALPHABET[ord(c) % len(_SAFE_ALPHABET)] for c in s)


def canonical_json(obj: Any) -> bytes:
    return orjson.dumps(_prune(obj), option=orjson.OPT_SORT_KEYS)


def compute_hash(template: Obj, collision_count: int | None) -> str:
    """The pod-template-hash of a template (plus the deployment's collisionCount, if any)."""
    data = canonical_json(template)
    h = fnv32a(data)
    if collision_count is not None:
        # upstream writes the count as little-endian uint32 into an 8-byte buffer
        h = fnv32a(struct.pack("<I", collision_count & 0xFFFFFFFF) + b"\x00" * 4, h)
    return safe_encode_string(str(h))


def _prune(v: Any) -> Any:
    """Drop nulls and empty maps/lists (Go's semantic equality treats nil and empty alike)."""
    if isinstance(v, dict):
        out = {}
        for k, x in v.items():
            x = _prune(x)
            if x is None or x == {} or x == []:
                continue
            out[k] = x
        return out
    if isinstance(v, list):
        return [_prune(x) for x in v]
    return v


def template_without_hash(template: Obj) -> Obj:
    t = copy.deepcopy(template or {})
    labels = (t.get("metadata") or {}).get("labels")
    if labels and POD_TEMPLATE_HASH in labels:
        del labels[POD_TEMPLATE_HASH]
    return _prune(t)


def equal_ignore_hash(t1: Obj, t2: Obj) -> bool:
    """Same pod template, ignoring the pod-template-hash label (upstream EqualIgnoreHash)."""
    return template_without_hash(t1) == template_without_hash(t2)


# -- int-or-percent ----------------------------------------------------------------------

def scaled_value(v: int | str | None, total: int, round_up: bool) -> int:
    """An IntOrString (5 or "25%") against `total` (upstream GetScaledValueFromIntOrPercent)."""
    if v is None:
        return 0
    if isinstance(v, int) and not isinstance(v, bool):
        return v
    if isinstance(v, str) and v.endswith("%"):
        try:
            pct = int(v[:-1])
        except ValueError:
            raise ValueError(f"invalid value for IntOrString: invalid value {v!r}") from None
        x = pct * total / 100
        return math.ceil(x) if round_up else math.floor(x)
    raise ValueError(f"invalid value for IntOrString: invalid type: string is not a percentage: {v!r}")


def replicas(obj: Obj | None) -> int:
    if obj is None:
        return 0
    r = (obj.get("spec") or {}).get("replicas")
    return 1 if r is None else int(r)


def is_rolling_update(d: Obj) -> bool:
    return ((d.get("spec") or {}).get("strategy") or {}).get("type", "RollingUpdate") == "RollingUpdate"


def resolve_fenceposts(max_surge: Any, max_unavailable: Any, desired: int) -> tuple[int, int]:
    surge = scaled_value(max_surge if max_surge is not None else 0, desired, True)
    unavailable = scaled_value(max_unavailable if max_unavailable is not None else 0, desired, False)
    if surge == 0 and unavailable == 0:
        # both rounded to zero: allow one unavailable pod (surge may be blocked by quota)
        unavailable = 1
    return surge, unavailable


def _rolling(d: Obj) -> Obj:
    return ((d.get("spec") or {}).get("strategy") or {}).get("rollingUpdate") or {}


def max_unavailable(d: Obj) -> int:
    want = replicas(d)
    if not is_rolling_update(d) or want == 0:
        return 0
    ru = _rolling(d)
    _, unavailable = resolve_fenceposts(ru.get("maxSurge", "25%"), ru.get("maxUnavailable", "25%"), want)
    return min(unavailable, want)


def max_surge(d: Obj) -> int:
    if not is_rolling_update(d):
        return 0
    ru = _rolling(d)
    surge, _ = resolve_fenceposts(ru.get("maxSurge", "25%"), ru.get("maxUnavailable", "25%"), replicas(d))
    return surge


# -- replica set collections -------------------------------------------------------------

def _ts_key(rs: Obj) -> tuple:
    t = creation_time(rs)
    return (t.timestamp() if t else 0.0, rs["metadata"]["name"])


def by_creation(rss: Iterable[Obj]) -> list[Obj]:
    """Oldest first; equal times by name (upstream ReplicaSetsByCreationTimestamp)."""
    return sorted(rss, key=_ts_key)


def by_size_older(rss: Iterable[Obj]) -> list[Obj]:
    """Largest first; equal sizes oldest first."""
    return sorted(by_creation(rss), key=lambda rs: -replicas(rs))


def by_size_newer(rss: Iterable[Obj]) -> list[Obj]:
    """Largest first; equal sizes newest first."""
    return sorted(list(reversed(by_creation(rss))), key=lambda rs: -replicas(rs))


def revision(obj: Obj | None) -> int:
    try:
        return int(((obj or {}).get("metadata") or {}).get("annotations", {}).get(REVISION, "0") or 0)
    except (TypeError, ValueError):
        return 0


def by_revision(rss: Iterable[Obj]) -> list[Obj]:
    """Lowest revision first; equal revisions by creation."""
    return sorted(by_creation(rss), key=revision)


def max_revision(rss: Iterable[Obj | None]) -> int:
    return max((revision(rs) for rs in rss if rs is not None), default=0)


def filter_active(rss: Iterable[Obj | None]) -> list[Obj]:
    return [rs for rs in rss if rs is not None and replicas(rs) > 0]


def replica_count(rss: Iterable[Obj | None]) -> int:
    """Sum of spec.replicas."""
    return sum(replicas(rs) for rs in rss if rs is not None)


def _status_sum(rss: Iterable[Obj | None], field: str) -> int:
    return sum(((rs.get("status") or {}).get(field) or 0) for rs in rss if rs is not None)


def actual_replica_count(rss: Iterable[Obj | None]) -> int:
    return _status_sum(rss, "replicas")


def ready_replica_count(rss: Iterable[Obj | None]) -> int:
    return _status_sum(rss, "readyReplicas")


def available_replica_count(rss: Iterable[Obj | None]) -> int:
    return _status_sum(rss, "availableReplicas")


def find_new_replica_set(d: Obj, rss: list[Obj]) -> Obj | None:
    """The oldest RS whose template equals the deployment's (ignoring the hash label)."""
    template = (d.get("spec") or {}).get("template") or {}
    for rs in by_creation(rss):
        if equal_ignore_hash((rs.get("spec") or {}).get("template") or {}, template):
            return rs
    return None


def find_old_replica_sets(d: Obj, rss: list[Obj], new_rs: Obj | None) -> list[Obj]:
    uid = new_rs["metadata"]["uid"] if new_rs is not None else None
    return [rs for rs in rss if rs["metadata"]["uid"] != uid]


def find_active_or_latest(new_rs: Obj | None, old_rss: list[Obj]) -> Obj | None:
    if new_rs is None and not old_rss:
        return None
    olds = list(reversed(by_creation(old_rss)))
    active = filter_active([*olds, new_rs])
    if not active:
        return new_rs if new_rs is not None else olds[0]
    if len(active) == 1:
        return active[0]
    return None


def _annotation_int(rs: Obj, key: str) -> int | None:
    v = ((rs.get("metadata") or {}).get("annotations") or {}).get(key)
    try:
        return int(v) if v is not None else None
    except ValueError:
        return None


def is_saturated(d: Obj, rs: Obj | None) -> bool:
    if rs is None:
        return False
    desired = _annotation_int(rs, DESIRED_REPLICAS)
    if desired is None:
        return False
    want = replicas(d)
    return replicas(rs) == want and desired == want and ((rs.get("status") or {}).get("availableReplicas") or 0) == want


def replica_set_fraction(rs: Obj, d: Obj) -> int:
    if replicas(d) == 0:
        return -replicas(rs)
    deployment_replicas = replicas(d) + max_surge(d)
    annotated = _annotation_int(rs, MAX_REPLICAS)
    if annotated is None:
        annotated = (d.get("status") or {}).get("replicas") or 0
    if not annotated:
        return 0
    size = replicas(rs) * deployment_replicas / annotated
    # Go's math.Round: half away from zero
    rounded = math.floor(size + 0.5) if size >= 0 else -math.floor(-size + 0.5)
    return int(rounded) - replicas(rs)


def replica_set_proportion(rs: Obj | None, d: Obj, to_add: int, added: int) -> int:
    if rs is None or replicas(rs) == 0 or to_add == 0 or to_add == added:
        return 0
    fraction = replica_set_fraction(rs, d)
    allowed = to_add - added
    return min(fraction, allowed) if to_add > 0 else max(fraction, allowed)


def new_rs_new_replicas(d: Obj, all_rss: list[Obj | None], new_rs: Obj) -> int:
    if is_rolling_update(d):
        surge = scaled_value(_rolling(d).get("maxSurge", "25%"), replicas(d), True)
        current = replica_count(all_rss)
        max_total = replicas(d) + surge
        if current >= max_total:
            return replicas(new_rs)
        scale_up = min(max_total - current, replicas(d) - replicas(new_rs))
        return replicas(new_rs) + scale_up
    return replicas(d)


# -- annotations -------------------------------------------------------------------------

def set_replicas_annotations(rs: Obj, desired: int, max_replicas: int) -> bool:
    ann = rs["metadata"].setdefault("annotations", {})
    changed = False
    for key, value in ((DESIRED_REPLICAS, str(desired)), (MAX_REPLICAS, str(max_replicas))):
        if ann.get(key) != value:
            ann[key] = value
            changed = True
    return changed


def replicas_annotations_need_update(rs: Obj, desired: int, max_replicas: int) -> bool:
    ann = (rs.get("metadata") or {}).get("annotations") or {}
    return ann.get(DESIRED_REPLICAS) != str(desired) or ann.get(MAX_REPLICAS) != str(max_replicas)


def copy_deployment_annotations(d: Obj, rs: Obj) -> bool:
    ann = rs["metadata"].setdefault("annotations", {})
    changed = False
    for k, v in ((d.get("metadata") or {}).get("annotations") or {}).items():
        if k in ANNOTATIONS_TO_SKIP or ann.get(k) == v:
            continue
        ann[k] = v
        changed = True
    return changed


def set_new_replica_set_annotations(d: Obj, rs: Obj, new_revision: str, exists: bool,
                                    limit: int = MAX_REV_HISTORY_LENGTH_IN_CHARS) -> bool:
    """Copy the deployment's annotations, bump the revision (keeping revision-history when an
    old RS becomes new again: a rollback), and on creation set the replicas annotations."""
    changed = copy_deployment_annotations(d, rs)
    ann = rs["metadata"].setdefault("annotations", {})
    had_revision = REVISION in ann
    old_revision = ann.get(REVISION, "")
    try:
        old_int = int(old_revision) if old_revision else 0
    except ValueError:
        return False
    new_int = int(new_revision)
    if old_int < new_int:
        ann[REVISION] = new_revision
        changed = True
    if had_revision and old_int < new_int:
        history = ann.get(REVISION_HISTORY, "")
        olds = history.split(",")
        if not olds[0]:
            ann[REVISION_HISTORY] = old_revision
        else:
            total = len(history) + len(old_revision) + 1
            start = 0
            while total > limit and start < len(olds):
                total -= len(olds[start]) + 1
                start += 1
            if total <= limit:
                ann[REVISION_HISTORY] = ",".join([*olds[start:], old_revision])
    if not exists and set_replicas_annotations(rs, replicas(d), replicas(d) + max_surge(d)):
        changed = True
    return changed


def set_deployment_revision(d: Obj, rev: str) -> bool:
    ann = d["metadata"].setdefault("annotations", {})
    if ann.get(REVISION) != rev:
        ann[REVISION] = rev
        return True
    return False


# -- progress ----------------------------------------------------------------------------

def has_progress_deadline(d: Obj) -> bool:
    pds = (d.get("spec") or {}).get("progressDeadlineSeconds")
    return pds is not None and pds != MAX_INT32


def has_revision_history_limit(d: Obj) -> bool:
    lim = (d.get("spec") or {}).get("revisionHistoryLimit")
    return lim is not None and lim != MAX_INT32


def deployment_complete(d: Obj, status: Obj) -> bool:
    want = replicas(d)
    return ((status.get("updatedReplicas") or 0) == want and (status.get("replicas") or 0) == want
            and (status.get("availableReplicas") or 0) == want
            and (status.get("observedGeneration") or 0) >= (d["metadata"].get("generation") or 0))


def deployment_progressing(d: Obj, status: Obj) -> bool:
    old = d.get("status") or {}
    old_old = (old.get("replicas") or 0) - (old.get("updatedReplicas") or 0)
    new_old = (status.get("replicas") or 0) - (status.get("updatedReplicas") or 0)
    return ((status.get("updatedReplicas") or 0) > (old.get("updatedReplicas") or 0) or new_old < old_old
            or (status.get("readyReplicas") or 0) > (old.get("readyReplicas") or 0)
            or (status.get("availableReplicas") or 0) > (old.get("availableReplicas") or 0))


def owned_by(obj: Obj, owner: Obj) -> bool:
    ref = controller_of(obj)
    return ref is not None and ref.get("uid") == owner["metadata"]["uid"]
