"""Object metadata helpers shared by the server, the controllers and the CLI."""

from __future__ import annotations

import datetime as dt
import random
import time
import uuid
from typing import Any

# upstream's generateName alphabet: no vowels (no words), no confusable 0/1/3
_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_SUFFIX_LEN = 5
_random = random.Random()


_now_cache: tuple[int, str] = (0, "")


def now() -> str:
    """RFC 3339 timestamp at second precision, as metav1.Time serialises (formatted once a second)."""
    global _now_cache
    second = int(time.time())
    if _now_cache[0] != second:
        _now_cache = (second, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second)))
    return _now_cache[1]


def now_micro() -> str:
    """RFC 3339 with microseconds, as metav1.MicroTime serialises."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(s: str) -> dt.datetime:
    return dt.datetime.fromisoformat(s.replace("Z", "+00:00"))


def format_time(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_uid() -> str:
    """A random (version 4) UUID; from a seeded PRNG, not the OS, as it is no secret."""
    return str(uuid.UUID(int=_random.getrandbits(128), version=4))


def generate_name(base: str) -> str:
    """`base` + 5 random characters; base truncated so the result stays ≤ 63 chars."""
    base = base[: 63 - _SUFFIX_LEN]
    # not a secret, just unlikely to collide (a collision is retried): no syscall per name
    n = _random.getrandbits(30)
    return base + "".join(_NAME_ALPHABET[(n >> (6 * i)) % 27] for i in range(_SUFFIX_LEN))


def key_of(obj: dict[str, Any]) -> str:
    """`namespace/name` (or `name` for cluster-scoped objects), the workqueue key."""
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace")
    return f"{ns}/{meta['name']}" if ns else meta["name"]


def split_key(key: str) -> tuple[str, str]:
    ns, _, name = key.rpartition("/")
    return ns, name


def newest_name(objs: list[dict[str, Any]]) -> str | None:
    """The name of the most recently created object (ties: the first name), or None: how
    upstream picks among several default classes."""
    if not objs:
        return None
    ordered = sorted(objs, key=lambda o: o["metadata"]["name"])
    return max(ordered, key=lambda o: o["metadata"].get("creationTimestamp") or "")["metadata"]["name"]


def controller_of(obj: dict[str, Any]) -> dict[str, Any] | None:
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return ref
    return None


def owner_reference(owner: dict[str, Any], controller: bool = True, block: bool = True) -> dict[str, Any]:
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": controller,
        "blockOwnerDeletion": block,
    }
