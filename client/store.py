"""The informer's local cache: objects by `namespace/name`, plus secondary indexes.

An index function maps an object to the index values it is filed under (client-go's
IndexFunc): "namespace" is always there; add e.g. pods by node with
`store.add_index("nodeName", index_by_node_name)`. Objects are the informer's own
dicts: treat them as read-only (copy before changing one).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from apimachinery.meta import key_of

Obj = dict[str, Any]
IndexFunc = Callable[[Obj], "Iterable[str] | str | None"]

NAMESPACE_INDEX = "namespace"


@dataclass(frozen=True, slots=True)
class DeletedFinalStateUnknown:
    """A delete the informer inferred on a re-list: it missed the DELETED event; `obj` is the last state seen."""

    key: str
    obj: Obj


def deleted_object(item: Obj | DeletedFinalStateUnknown) -> Obj:
    """The object of an on_delete argument, whether a real final state or a tombstone."""
    return item.obj if isinstance(item, DeletedFinalStateUnknown) else item


def index_by_namespace(obj: Obj) -> str | None:
    return (obj.get("metadata") or {}).get("namespace") or None


def index_by_node_name(obj: Obj) -> str | None:
    """Pods by `spec.nodeName` (unscheduled pods are filed under no value)."""
    return (obj.get("spec") or {}).get("nodeName") or None


def index_by_owner_uid(obj: Obj) -> list[str]:
    return [ref["uid"] for ref in (obj.get("metadata") or {}).get("ownerReferences") or [] if ref.get("uid")]


def _values(fn: IndexFunc, obj: Obj) -> tuple[str, ...]:
    v = fn(obj)
    if v is None:
        return ()
    if isinstance(v, str):
        return (v,)
    return tuple(v)


class Store:
    """Key → object, with indexes kept up to date on every change."""

    def __init__(self) -> None:
        self._items: dict[str, Obj] = {}
        self._indexers: dict[str, IndexFunc] = {}
        self._indices: dict[str, dict[str, set[str]]] = {}
        self.add_index(NAMESPACE_INDEX, index_by_namespace)

    # -- indexes -----------------------------------------------------------------------

    def add_index(self, name: str, fn: IndexFunc) -> None:
        """Register an index (also over the objects already stored)."""
        if name in self._indexers:
            raise ValueError(f"index {name!r} already exists")
        self._indexers[name] = fn
        index: dict[str, set[str]] = {}
        for key, obj in self._items.items():
            for v in _values(fn, obj):
                index.setdefault(v, set()).add(key)
        self._indices[name] = index

    def by_index(self, name: str, value: str) -> list[Obj]:
        """Objects filed under `value` in index `name` (sorted by key)."""
        keys = self._index(name).get(value)
        if not keys:
            return []
        items = self._items
        return [items[k] for k in sorted(keys)]

    def index_keys(self, name: str, value: str) -> list[str]:
        return sorted(self._index(name).get(value) or ())

    def index_values(self, name: str) -> list[str]:
        return sorted(self._index(name))

    def _index(self, name: str) -> dict[str, set[str]]:
        try:
            return self._indices[name]
        except KeyError:
            raise KeyError(f"no index named {name!r}") from None

    # -- reads -------------------------------------------------------------------------

    def get(self, key: str) -> Obj | None:
        return self._items.get(key)

    def get_by_name(self, namespace: str | None, name: str) -> Obj | None:
        return self._items.get(f"{namespace}/{name}" if namespace else name)

    def list(self) -> list[Obj]:
        return list(self._items.values())

    def keys(self) -> list[str]:
        return list(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    # -- writes (the informer's) -------------------------------------------------------

    def put(self, obj: Obj) -> Obj | None:
        """Insert or replace by key; returns the previous object."""
        key = key_of(obj)
        old = self._items.get(key)
        self._items[key] = obj
        for name, fn in self._indexers.items():
            index = self._indices[name]
            new_values = _values(fn, obj)
            if old is not None:
                old_values = _values(fn, old)
                if old_values == new_values:
                    continue
                for v in old_values:
                    self._drop(index, v, key)
            for v in new_values:
                index.setdefault(v, set()).add(key)
        return old

    def delete(self, key: str) -> Obj | None:
        old = self._items.pop(key, None)
        if old is not None:
            for name, fn in self._indexers.items():
                for v in _values(fn, old):
                    self._drop(self._indices[name], v, key)
        return old

    def replace(self, objs: Iterable[Obj]) -> None:
        self._items = {key_of(o): o for o in objs}
        for name, fn in self._indexers.items():
            index: dict[str, set[str]] = {}
            for key, obj in self._items.items():
                for v in _values(fn, obj):
                    index.setdefault(v, set()).add(key)
            self._indices[name] = index

    @staticmethod
    def _drop(index: dict[str, set[str]], value: str, key: str) -> None:
        keys = index.get(value)
        if keys is not None:
            keys.discard(key)
            if not keys:
                del index[value]
