"""Unknown-field pruning: what upstream's decode into typed Go structs does to a request body.

The tree comes from `apiserver.openapi_gen` (see its docstring for the JSON form). Compiled, an
object type is a plain dict ``{field: child}`` shared by every kind that uses it; a child is
``None`` (a scalar, or free-form content kept as is), another such dict, an `_Array`, a `_Map` or a `_Scalar`.
A value of the wrong JSON type raises TypeMismatch, which the caller turns into upstream's
400 ``cannot unmarshal``.
Pruning walks the object once, in document order, so the reported paths come out in the order
upstream's decoder meets them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger("apiserver.schema")

#: Upstream's strict decoder stops collecting errors at 100 (the fields are dropped regardless).
MAX_REPORTED = 100

#: How long a write may wait for the tree while the apiserver is still loading it.
LOAD_WAIT_SECONDS = 30.0


class _Array:
    __slots__ = ("item",)

    def __init__(self, item: Any) -> None:
        self.item = item


class _Map:
    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


class _Scalar:
    """A leaf accepting some JSON scalar types (what upstream's typed decode accepts)."""

    __slots__ = ("name", "types")

    def __init__(self, name: str, types: tuple[type, ...]) -> None:
        self.name = name
        self.types = types

    def accepts(self, value: Any) -> bool:
        return isinstance(value, self.types) and not (type(value) is bool and bool not in self.types)


_SCALARS = {
    "s": _Scalar("string", (str,)),
    "i": _Scalar("integer", (int,)),
    "n": _Scalar("number", (int, float)),
    "b": _Scalar("boolean", (bool,)),
    "q": _Scalar("int-or-string", (str, int, float)),
}


class TypeMismatch(Exception):
    """A value of the wrong JSON type (upstream: `json: cannot unmarshal X into Go struct field`)."""

    def __init__(self, path: str, value: Any, want: str) -> None:
        super().__init__(path)
        self.path = path
        self.got = json_type(value)
        self.want = want


def json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


_MISSING = object()


def _zero(node: Any) -> Any:
    """What a JSON null decodes to in a typed slice or map element: the type's zero value."""
    if type(node) is _Scalar:
        return _ZEROS.get(node.name)
    if type(node) is dict:
        return {}
    return None


_ZEROS = {"string": "", "integer": 0, "number": 0, "boolean": False}


def _walk_object(obj: dict[str, Any], props: dict[str, Any], prefix: str, out: list[str]) -> None:
    drop = None
    for key, value in obj.items():
        sub = props.get(key, _MISSING)
        if sub is _MISSING:
            out.append(prefix + key)  # unknown: reported, then dropped
        elif sub is None:
            continue  # free-form: anything goes
        elif value is not None:
            if type(sub) is dict:
                if type(value) is not dict:
                    raise TypeMismatch(prefix + key, value, "object")
                _walk_object(value, sub, prefix + key + ".", out)
            else:
                _walk_value(value, sub, prefix + key, out)
            continue
        # unknown, or a typed field set to null (its zero value: as if absent)
        if drop is None:
            drop = []
        drop.append(key)
    if drop is not None:
        for key in drop:
            del obj[key]


def _walk_value(value: Any, node: Any, path: str, out: list[str]) -> None:
    t = type(node)
    if t is _Scalar:
        if not node.accepts(value):
            raise TypeMismatch(path, value, node.name)
    elif t is dict:
        if type(value) is not dict:
            raise TypeMismatch(path, value, "object")
        _walk_object(value, node, path + ".", out)
    elif t is _Array:
        if type(value) is not list:
            raise TypeMismatch(path, value, "array")
        item = node.item
        if item is not None:
            for i, element in enumerate(value):
                if element is not None:
                    _walk_value(element, item, f"{path}[{i}]", out)
                else:
                    zero = _zero(item)
                    if zero is not None:
                        value[i] = zero
    elif type(value) is not dict:  # _Map
        raise TypeMismatch(path, value, "object")
    else:
        inner = node.value
        if inner is not None:
            for key, element in value.items():
                if element is not None:
                    _walk_value(element, inner, f"{path}.{key}", out)
                else:
                    zero = _zero(inner)
                    if zero is not None:
                        value[key] = zero


def compile_tree(tree: dict[str, Any]) -> dict[tuple[str, str, str], dict[str, Any]]:
    """The generator's JSON tree → {(group, version, kind): top-level field dict}."""
    types: dict[str, dict[str, Any]] = {name: {} for name in tree["types"]}

    def node(n: Any) -> Any:
        if n == 0 or n == 1:
            return None
        if isinstance(n, str):
            return _SCALARS[n] if n in _SCALARS else types[n]
        if "a" in n:
            return _Array(node(n["a"]))
        return _Map(node(n["m"]))

    for name, desc in tree["types"].items():
        types[name].update({field: node(child) for field, child in desc["p"].items()})
    kinds = {}
    for key, name in tree["kinds"].items():
        parts = key.split("/")
        group, version, kind = ("", parts[0], parts[1]) if len(parts) == 2 else (parts[0], parts[1], parts[2])
        kinds[(group, version, kind)] = types[name]
    return kinds


class PruneSchema:
    """`prune(group, version, kind, obj)`: drop unknown fields in place, return their paths."""

    def __init__(self, tree: dict[str, Any] | None = None, wait: Callable[[float], bool] | None = None) -> None:
        self._kinds: dict[tuple[str, str, str], dict[str, Any]] | None = None
        self._wait = wait
        self._warned = False
        if tree is not None:
            self.load(tree)

    @property
    def loaded(self) -> bool:
        return self._kinds is not None

    def load(self, tree: dict[str, Any]) -> None:
        self._kinds = compile_tree(tree)

    def knows(self, group: str, version: str, kind: str) -> bool:
        return self._kinds is not None and (group, version, kind) in self._kinds

    def prune(self, group: str, version: str, kind: str, obj: dict[str, Any]) -> list[str]:
        """Remove the fields `kind` does not have from `obj`; → their paths, e.g.
        ``spec.template.spec.containers[0].imagee`` (upstream's strict-decoding notation).
        Kinds without a schema (custom resources) keep everything."""
        kinds = self._kinds
        if kinds is None:
            if self._wait is not None:
                # Only while the apiserver is starting and the documents are still loading.
                self._wait(LOAD_WAIT_SECONDS)
                kinds = self._kinds
            if kinds is None:
                if not self._warned:
                    self._warned = True
                    log.warning("no schema loaded: writes are not checked for unknown fields")
                return []
        props = kinds.get((group, version, kind))
        if props is None:
            return []
        out: list[str] = []
        _walk_object(obj, props, "", out)
        return out[:MAX_REPORTED] if len(out) > MAX_REPORTED else out
