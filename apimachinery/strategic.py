"""Strategic merge patch, applied server-side (k8s.io/apimachinery/pkg/util/strategicpatch).

``strategic_merge_patch(original, patch, schema)`` returns a new object; neither input is changed.
It follows upstream's StrategicMergeMapPatch (server options: parallel lists merged, unmatched
nulls ignored):

* objects merge recursively; ``null`` deletes a member;
* lists whose field has ``patchStrategy: merge`` merge — lists of objects by ``patchMergeKey``,
  lists of scalars as a set; other lists (and every list when there is no schema, as for custom
  objects) are replaced; a ``replace`` strategy on an object field replaces the object;
* directives: ``$patch: replace|delete`` on objects, ``{"$patch": "delete", <key>: v}`` and
  ``{"$patch": "replace"}`` inside merging lists, ``$retainKeys``, ``$setElementOrder/<field>``,
  ``$deleteFromPrimitiveList/<field>``. Like upstream, ``$patch: merge`` is rejected.

Field metadata comes from a ``PatchSchema`` (upstream reads Go struct tags): ``schema_for`` has
tables for the built-in kinds, ``DictPatchSchema`` builds one from a nested description.

Errors map to StatusErrors as upstream's patch handler maps them: malformed directives → 400,
lists of lists → 422, anything else the library rejects (a list element without its merge key,
an unknown ``$patch`` value...) → 400 with the library's message (upstream: a 500).

The merged map is then cleaned the way upstream's decode into a typed object cleans it: ``null``
members and leftover ``$``-keys do not survive into the result.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

from apimachinery.errors import StatusError, bad_request
from apimachinery.patch import deep_copy_json, patch_apply_error

DIRECTIVE_MARKER = "$patch"
DELETE_DIRECTIVE = "delete"
REPLACE_DIRECTIVE = "replace"
MERGE_DIRECTIVE = "merge"
RETAIN_KEYS_STRATEGY = "retainKeys"
RETAIN_KEYS_DIRECTIVE = "$retainKeys"
DELETE_FROM_PRIMITIVE_LIST_PREFIX = "$deleteFromPrimitiveList"
SET_ELEMENT_ORDER_PREFIX = "$setElementOrder"

ERR_BAD_JSON_DOC = "invalid JSON document"
ERR_NO_LIST_OF_LISTS = "lists of lists are not supported"
ERR_BAD_PATCH_FORMAT_FOR_PRIMITIVE_LIST = "invalid patch format of primitive list"
ERR_BAD_PATCH_FORMAT_FOR_RETAIN_KEYS = "invalid patch format of retainKeys"
ERR_BAD_PATCH_FORMAT_FOR_SET_ELEMENT_ORDER_LIST = "invalid patch format of setElementOrder list"
ERR_PATCH_CONTENT_NOT_MATCH_RETAIN_KEYS = "patch content doesn't match retainKeys list"
ERR_UNSUPPORTED_STRATEGIC_MERGE_PATCH_FORMAT = "strategic merge patch format is not supported"

_BAD_REQUEST_ERRORS = frozenset({
    ERR_BAD_JSON_DOC, ERR_BAD_PATCH_FORMAT_FOR_PRIMITIVE_LIST, ERR_BAD_PATCH_FORMAT_FOR_RETAIN_KEYS,
    ERR_BAD_PATCH_FORMAT_FOR_SET_ELEMENT_ORDER_LIST, ERR_UNSUPPORTED_STRATEGIC_MERGE_PATCH_FORMAT,
})
_INVALID_ERRORS = frozenset({ERR_NO_LIST_OF_LISTS, ERR_PATCH_CONTENT_NOT_MATCH_RETAIN_KEYS})


# --- schema ----------------------------------------------------------------------------------


@runtime_checkable
class PatchSchema(Protocol):
    """Patch metadata of one field; for list fields, ``field()`` looks into the list's elements."""

    def field(self, name: str) -> PatchSchema | None: ...

    @property
    def merge_key(self) -> str | None: ...

    @property
    def patch_strategy(self) -> str | None: ...

    @property
    def is_list(self) -> bool: ...


class DictPatchSchema:
    """A PatchSchema from a nested description, e.g.::

        DictPatchSchema({
            "spec": {"fields": {
                "containers": {"list": True, "patchStrategy": "merge", "patchMergeKey": "name",
                               "fields": {...}},
                "tolerations": {"list": True},
            }},
        })

    Each entry may carry ``patchStrategy``, ``patchMergeKey``, ``list`` and ``fields``; a field
    missing from the description has no metadata (objects merge, lists are replaced).
    """

    __slots__ = ("_children", "_fields", "is_list", "merge_key", "patch_strategy")

    def __init__(self, fields: Mapping[str, Mapping[str, Any]] | None = None, *, merge_key: str | None = None,
                 patch_strategy: str | None = None, is_list: bool = False) -> None:
        self._fields = fields or {}
        self._children: dict[str, DictPatchSchema] = {}
        self.merge_key = merge_key
        self.patch_strategy = patch_strategy
        self.is_list = is_list

    def field(self, name: str) -> DictPatchSchema | None:
        child = self._children.get(name)
        if child is None:
            desc = self._fields.get(name)
            if desc is None:
                return None
            child = DictPatchSchema(desc.get("fields"), merge_key=desc.get("patchMergeKey"),
                                    patch_strategy=desc.get("patchStrategy"), is_list=bool(desc.get("list")))
            self._children[name] = child
        return child

    def __repr__(self) -> str:
        return (f"DictPatchSchema(fields={sorted(self._fields)}, merge_key={self.merge_key!r}, "
                f"patch_strategy={self.patch_strategy!r}, is_list={self.is_list})")


# --- errors ----------------------------------------------------------------------------------


class StrategicMergePatchError(Exception):
    """A patch the merge cannot apply; ``status_error()`` gives upstream's HTTP mapping."""

    def status_error(self) -> StatusError:
        msg = str(self)
        if msg in _BAD_REQUEST_ERRORS:
            return bad_request(msg)
        if msg in _INVALID_ERRORS:
            return patch_apply_error(msg)
        # Upstream renders these library errors as a 500 with an empty reason; they are the
        # client's mistake, and we never answer bad input with a 500: 400 BadRequest.
        return bad_request(msg)


def go_type(v: Any) -> str:
    """reflect.TypeOf(v) of a JSON value decoded by upstream (ints stay int64)."""
    if v is None:
        return "%!s(<nil>)"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int64"
    if isinstance(v, float):
        return "float64"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "[]interface {}"
    return "map[string]interface {}"


def _go_fmt(v: Any) -> str:
    """Go's %v of a decoded JSON value (maps print with sorted keys)."""
    if v is None:
        return "<nil>"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, dict):
        return "map[" + " ".join(f"{k}:{_go_fmt(v[k])}" for k in sorted(v)) + "]"
    if isinstance(v, list):
        return "[" + " ".join(_go_fmt(x) for x in v) + "]"
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e21:
        return str(int(v))
    return str(v)


def _bad_arg_type(expected: str, actual: Any) -> StrategicMergePatchError:
    return StrategicMergePatchError(f"expected a {expected}, but received a {go_type(actual)}")


def _no_merge_key(m: Any, key: str) -> StrategicMergePatchError:
    return StrategicMergePatchError(f"map: {_go_fmt(m)} does not contain declared merge key: {key}")


# --- helpers ---------------------------------------------------------------------------------

_MAP, _LIST = "map", "list"


def _kind(v: Any) -> str:
    if isinstance(v, dict):
        return _MAP
    if isinstance(v, list):
        return _LIST
    return go_type(v)


def _key(v: Any) -> Any:
    """A hashable identity with Go interface equality (1 != 1.0 != true, "1" != 1)."""
    if isinstance(v, (dict, list)):
        return ("ref", id(v))
    return (go_type(v), v)


def _go_eq(a: Any, b: Any) -> bool:
    return _key(a) == _key(b)


def _field_meta(schema: PatchSchema | None, key: str) -> tuple[PatchSchema | None, str, str]:
    """(subschema, non-retainKeys patch strategy, merge key) of a field (upstream Lookup*+extract)."""
    sub = schema.field(key) if schema is not None else None
    if sub is None:
        return None, "", ""
    strategies = [s for s in (sub.patch_strategy or "").split(",") if s]
    strategy = ""
    if len(strategies) == 1:
        strategy = "" if strategies[0] == RETAIN_KEYS_STRATEGY else strategies[0]
    elif len(strategies) == 2 and RETAIN_KEYS_STRATEGY in strategies:
        strategy = strategies[1] if strategies[0] == RETAIN_KEYS_STRATEGY else strategies[0]
    elif strategies:
        raise StrategicMergePatchError(f"unexpected patch strategy: [{' '.join(strategies)}]")
    return sub, strategy, sub.merge_key or ""


def _remove_directives(v: Any) -> tuple[Any, bool]:
    """Upstream removeDirectives: drop every object carrying ``$patch``. Returns (value, keep)."""
    if isinstance(v, dict):
        if DIRECTIVE_MARKER in v:
            return None, False
        out = {}
        for k, x in v.items():
            nv, keep = _remove_directives(x)
            if keep:
                out[k] = nv
        return out, True
    if isinstance(v, list):
        out_list = []
        for x in v:
            nv, keep = _remove_directives(x)
            if keep:
                out_list.append(nv)
        return out_list, True
    return v, True


def _discard_nulls(v: Any) -> Any:
    """Upstream discardNullValuesFromPatch (in place): drop null object members, recursively."""
    if isinstance(v, dict):
        for k in [k for k, x in v.items() if x is None]:
            del v[k]
        for x in v.values():
            _discard_nulls(x)
    elif isinstance(v, list):
        for x in v:
            _discard_nulls(x)
    return v


def _typed_clean(v: Any) -> Any:
    """Drop (in place) what upstream's decode of the merged map into a typed object drops: null
    members and unknown ``$``-prefixed keys left over from directives."""
    if type(v) is dict:
        drop = [k for k, x in v.items() if x is None or k[:1] == "$"]
        for k in drop:
            del v[k]
        for x in v.values():
            if type(x) in (dict, list):
                _typed_clean(x)
    elif type(v) is list:
        for x in v:
            if type(x) in (dict, list):
                _typed_clean(x)
    return v


def _extract_key(s: str, prefix: str) -> str:
    parts = s.split("/", 1)
    if len(parts) <= 1 or parts[0] != prefix:
        if prefix == DELETE_FROM_PRIMITIVE_LIST_PREFIX:
            raise StrategicMergePatchError(ERR_BAD_PATCH_FORMAT_FOR_PRIMITIVE_LIST)
        raise StrategicMergePatchError(ERR_BAD_PATCH_FORMAT_FOR_SET_ELEMENT_ORDER_LIST)
    return parts[1]


def _slice_element_kind(*lists: list) -> str:
    prev = None
    for lst in lists:
        for v in lst:
            cur = _kind(v)
            if prev is None:
                prev = cur
                if cur == _LIST:
                    raise StrategicMergePatchError(ERR_NO_LIST_OF_LISTS)
            elif prev != cur:
                rendered = "[" + " ".join(_go_fmt(x) for x in lists) + "]"
                raise StrategicMergePatchError(f"list element types are not identical: {rendered}")
    if prev is None:
        raise StrategicMergePatchError("no elements in any of the given slices")
    return prev


def _item_key(item: Any, merge_key: str, kind: str) -> Any:
    if kind == _MAP:
        return _key(item.get(merge_key)) if isinstance(item, dict) else _key(None)
    return _key(item)


def _positions(order: list, merge_key: str, kind: str) -> dict[Any, int]:
    pos: dict[Any, int] = {}
    for i, v in enumerate(order):
        pos.setdefault(_item_key(v, merge_key, kind), i)
    return pos


def _validate_merge_key_in_lists(merge_key: str, *lists: list) -> None:
    for lst in lists:
        for item in lst:
            if not isinstance(item, dict):
                raise _bad_arg_type("map[string]interface {}", item)
            if merge_key not in item:
                raise _no_merge_key(item, merge_key)


def _normalize_slice_order(to_sort: list, order: list, merge_key: str, kind: str) -> list:
    to_delete: list = []
    if kind == _MAP:
        _validate_merge_key_in_lists(merge_key, to_sort, order)
        keep = []
        for v in to_sort:
            (to_delete if v.get(DIRECTIVE_MARKER) == DELETE_DIRECTIVE else keep).append(v)
        to_sort = keep
    pos = _positions(order, merge_key, kind)
    idx = [pos.get(_item_key(v, merge_key, kind)) for v in to_sort]
    if None not in idx:
        to_sort = [v for _, v in sorted(zip(idx, to_sort, strict=True), key=lambda p: p[0])]
    else:
        # Upstream's comparator calls an item missing from `order` "less" than anything, which
        # is not a strict order; the outcome is whatever Go's stable sort makes of it.
        def less(a: int | None, b: int | None) -> bool:
            return a is None or b is None or a < b

        perm = _go_slice_stable(idx, less)
        to_sort = [to_sort[i] for i in perm]
    return to_sort + to_delete


def _go_slice_stable(keys: list, less: Any) -> list[int]:
    """The permutation Go's sort.SliceStable produces (insertion-sorted blocks of 20, then
    SymMerge), needed only for comparators that are not a strict weak order."""
    data = list(range(len(keys)))

    def lt(i: int, j: int) -> bool:
        return less(keys[data[i]], keys[data[j]])

    def swap(i: int, j: int) -> None:
        data[i], data[j] = data[j], data[i]

    def insertion_sort(a: int, b: int) -> None:
        for i in range(a + 1, b):
            j = i
            while j > a and lt(j, j - 1):
                swap(j, j - 1)
                j -= 1

    def swap_range(a: int, b: int, n: int) -> None:
        for i in range(n):
            swap(a + i, b + i)

    def rotate(a: int, m: int, b: int) -> None:
        i, j = m - a, b - m
        while i != j:
            if i > j:
                swap_range(m - i, m, j)
                i -= j
            else:
                swap_range(m - i, m + j - i, i)
                j -= i
        swap_range(m - i, m, i)

    def sym_merge(a: int, m: int, b: int) -> None:
        if m - a == 1:
            i, j = m, b
            while i < j:
                h = (i + j) // 2
                if lt(h, a):
                    i = h + 1
                else:
                    j = h
            for k in range(a, i - 1):
                swap(k, k + 1)
            return
        if b - m == 1:
            i, j = a, m
            while i < j:
                h = (i + j) // 2
                if not lt(m, h):
                    i = h + 1
                else:
                    j = h
            for k in range(m, i, -1):
                swap(k, k - 1)
            return
        mid = (a + b) // 2
        n = mid + m
        if m > mid:
            start, r = n - b, mid
        else:
            start, r = a, m
        p = n - 1
        while start < r:
            c = (start + r) // 2
            if not lt(p - c, c):
                start = c + 1
            else:
                r = c
        end = n - start
        if start < m < end:
            rotate(start, m, end)
        if a < start < mid:
            sym_merge(a, start, mid)
        if mid < end < b:
            sym_merge(mid, end, b)

    n = len(data)
    block = 20
    a, b = 0, block
    while b <= n:
        insertion_sort(a, b)
        a, b = b, b + block
    insertion_sort(a, n)
    while block < n:
        a, b = 0, 2 * block
        while b <= n:
            sym_merge(a, a + block, b)
            a, b = b, b + 2 * block
        if a + block < n:
            sym_merge(a, a + block, n)
        block *= 2
    return data


def _merge_sorted(left: list, right: list, server_order: list, merge_key: str, kind: str) -> list:
    """Interleave server-only items (left) into patch items (right), keeping both relative orders."""
    pos = _positions(server_order, merge_key, kind)
    out = []
    i = j = 0
    while i < len(left) or j < len(right):
        if i >= len(left):
            out.append(right[j])
            j += 1
        elif j >= len(right):
            out.append(left[i])
            i += 1
        else:
            li = pos.get(_item_key(left[i], merge_key, kind))
            ri = pos.get(_item_key(right[j], merge_key, kind))
            if li is not None and ri is not None and li < ri:
                out.append(left[i])
                i += 1
            else:
                out.append(right[j])
                j += 1
    return out


def _normalize_element_order(patch_items: list, server_only: list, patch_order: list, server_order: list,
                             merge_key: str, kind: str) -> list:
    patch_items = _normalize_slice_order(patch_items, patch_order, merge_key, kind)
    server_only = _normalize_slice_order(server_only, server_order, merge_key, kind)
    return _merge_sorted(server_only, patch_items, server_order, merge_key, kind)


def _find_by_merge_key(lst: list, merge_key: str, value: Any) -> int:
    want = _key(value)
    for i, v in enumerate(lst):
        if not isinstance(v, dict):
            raise StrategicMergePatchError(f"value for key {i} is not a map")
        if merge_key in v and _key(v[merge_key]) == want:
            return i
    return -1


def _partition_primitives(items: list, partition_by: list) -> tuple[list, list]:
    in_patch = {_key(v) for v in partition_by}
    present, absent = [], []
    for v in items:
        (present if _key(v) in in_patch else absent).append(v)
    return present, absent


def _partition_maps(items: list, partition_by: list, merge_key: str) -> tuple[list, list]:
    present, absent = [], []
    for v in items:
        if not isinstance(v, dict):
            raise _bad_arg_type("map[string]interface {}", v)
        if merge_key not in v:
            raise _no_merge_key(v, merge_key)
        (present if _find_by_merge_key(partition_by, merge_key, v[merge_key]) >= 0 else absent).append(v)
    return present, absent


def _partition(items: list, partition_by: list, merge_key: str) -> tuple[list, list]:
    if not merge_key:
        return _partition_primitives(items, partition_by)
    return _partition_maps(items, partition_by, merge_key)


# --- the merge -------------------------------------------------------------------------------


def _directive_in_map(directive: Any, patch: dict) -> dict:
    if directive == REPLACE_DIRECTIVE:
        del patch[DIRECTIVE_MARKER]
        return patch
    if directive == DELETE_DIRECTIVE:
        return {}
    raise StrategicMergePatchError(f"unknown patch type: {_go_fmt(directive)} in map: {_go_fmt(patch)}")


def _apply_retain_keys(original: dict, patch: dict) -> None:
    if RETAIN_KEYS_DIRECTIVE not in patch:
        return
    retain = patch.pop(RETAIN_KEYS_DIRECTIVE)
    if not isinstance(retain, list):
        raise StrategicMergePatchError(ERR_BAD_PATCH_FORMAT_FOR_RETAIN_KEYS)
    keep = {_key(v) for v in retain}
    for k, v in patch.items():
        if v is None or k.startswith(DELETE_FROM_PRIMITIVE_LIST_PREFIX) or k.startswith(SET_ELEMENT_ORDER_PREFIX):
            continue
        if _key(k) not in keep:
            raise StrategicMergePatchError(ERR_BAD_PATCH_FORMAT_FOR_RETAIN_KEYS)
    for k in list(original):
        if _key(k) not in keep:
            del original[k]


def _validate_patch_with_set_order_list(patch_list: list, order_list: list, merge_key: str) -> None:
    if not order_list or not patch_list:
        return
    if merge_key:
        non_delete = []
        for v in patch_list:
            if not isinstance(v, dict):
                raise _bad_arg_type("map[string]interface {}", v)
            if v.get(DIRECTIVE_MARKER) != DELETE_DIRECTIVE:
                non_delete.append(v)
    else:
        non_delete = patch_list
    pi = oi = 0
    while pi < len(non_delete) and oi < len(order_list):
        item = non_delete[pi]
        if isinstance(item, dict) and DIRECTIVE_MARKER in item:
            pi += 1
            continue
        if merge_key:
            other = order_list[oi]
            if not isinstance(item, dict):
                raise _bad_arg_type("map[string]interface {}", item)
            if not isinstance(other, dict):
                raise _bad_arg_type("map[string]interface {}", other)
            if merge_key not in item:
                raise _no_merge_key(item, merge_key)
            if merge_key not in other:
                raise _no_merge_key(other, merge_key)
            equal = _go_eq(item[merge_key], other[merge_key])
        else:
            equal = _go_eq(item, order_list[oi])
        if equal:
            pi += 1
        oi += 1
    if pi < len(non_delete) and oi >= len(order_list):
        raise StrategicMergePatchError(
            f"The order in patch list:\n{_go_fmt(patch_list)}\n doesn't match {SET_ELEMENT_ORDER_PREFIX} list:\n"
            f"{_go_fmt(order_list)}\n")


def _merge_set_element_order(original: dict, patch: dict, schema: PatchSchema | None) -> None:
    for key in [k for k in patch if k.startswith(SET_ELEMENT_ORDER_PREFIX)]:
        order_list = patch.pop(key)
        if not isinstance(order_list, list):
            raise _bad_arg_type("[]interface {}", order_list)
        field = _extract_key(key, SET_ELEMENT_ORDER_PREFIX)
        found_original = field in original
        found_patch = field in patch
        original_value: list = []
        patch_value: list = []
        if found_original:
            original_value = original[field]
            if not isinstance(original_value, list):
                raise _bad_arg_type("[]interface {}", original_value)
        if found_patch:
            patch_value = patch[field]
            if not isinstance(patch_value, list):
                raise _bad_arg_type("[]interface {}", patch_value)
        sub, strategy, merge_key = _field_meta(schema, field)
        _validate_patch_with_set_order_list(patch_value, order_list, merge_key)
        if found_original and not found_patch:
            merged = original_value
        elif found_patch and not found_original:
            merged = _remove_directives(patch_value)[0]
        elif found_original and found_patch:
            alias = _GoSliceAlias(original_value)
            merged = _merge_slice_handler(original_value, patch_value, sub, strategy, merge_key, False, alias)
            # Upstream orders by the original list *as its Go backing array was left by the
            # merge* (deletions shift it, appends overwrite its tail); reproduce that.
            original_value = alias.window
        else:
            continue
        patch_items, server_only = _partition(merged, order_list, merge_key)
        kind = _slice_element_kind(original_value, patch_value)
        original[field] = _normalize_element_order(patch_items, server_only, order_list, original_value,
                                                   merge_key, kind)
        patch.pop(field, None)


def _merge_map(original: dict | None, patch: dict, schema: PatchSchema | None) -> dict:
    if DIRECTIVE_MARKER in patch:
        return _directive_in_map(patch[DIRECTIVE_MARKER], patch)
    if original is None:
        original = {}
    _apply_retain_keys(original, patch)
    _merge_set_element_order(original, patch, schema)
    for k, patch_v in list(patch.items()):
        is_delete_list = False
        if k.startswith(DELETE_FROM_PRIMITIVE_LIST_PREFIX):
            k = _extract_key(k, DELETE_FROM_PRIMITIVE_LIST_PREFIX)
            is_delete_list = True
        if patch_v is None:
            original.pop(k, None)
            continue
        if k not in original or type(original[k]) is not type(patch_v):
            if not is_delete_list:
                value, keep = _remove_directives(_discard_nulls(patch_v))
                if keep:
                    original[k] = value
                else:
                    original.pop(k, None)
            continue
        orig_v = original[k]
        if isinstance(orig_v, dict):
            sub, strategy, _ = _field_meta(schema, k)
            original[k] = patch_v if strategy == REPLACE_DIRECTIVE else _merge_map(orig_v, patch_v, sub)
        elif isinstance(orig_v, list):
            sub, strategy, merge_key = _field_meta(schema, k)
            original[k] = _merge_slice_handler(orig_v, patch_v, sub, strategy, merge_key, is_delete_list)
        else:
            original[k] = patch_v
    return original


class _GoSliceAlias:
    """The first len(original) slots of the Go backing array behind a list being merged."""

    __slots__ = ("length", "window")

    def __init__(self, original: list) -> None:
        self.window = list(original)
        self.length = len(original)  # length of the Go slice still sharing the array

    def deleted(self, i: int) -> None:
        w, n = self.window, self.length
        if n <= len(w):
            w[i:n - 1] = w[i + 1:n]
            self.length = n - 1

    def appended(self, item: Any) -> None:
        if self.length < len(self.window):
            self.window[self.length] = item
            self.length += 1
        else:
            self.length = len(self.window) + 1  # grew past capacity: Go copied to a new array


def _merge_slice_handler(original: list, patch: list, schema: PatchSchema | None, strategy: str, merge_key: str,
                         is_delete_list: bool, alias: _GoSliceAlias | None = None) -> list:
    if strategy == MERGE_DIRECTIVE or is_delete_list:
        return _merge_slice(original, patch, schema, merge_key, is_delete_list, alias)
    return patch


def _merge_slice(original: list, patch: list, schema: PatchSchema | None, merge_key: str,
                 is_delete_list: bool, alias: _GoSliceAlias | None = None) -> list:
    if not original and not patch:
        return original
    kind = _slice_element_kind(original, patch)
    if kind != _MAP:
        if is_delete_list:
            drop = {_key(v) for v in patch}
            return [v for v in original if _key(v) not in drop]
        merged, seen = [], set()
        for v in original + patch:
            kv = _key(v)
            if kv not in seen:
                seen.add(kv)
                merged.append(v)
        server_order = original
    else:
        if not merge_key:
            raise StrategicMergePatchError("cannot merge lists without merge key for struct")
        original, patch, replaced = _merge_slice_with_special_elements(original, patch, merge_key, alias)
        server_order = list(original)
        merged = _merge_slice_without_special_elements(original, patch, merge_key, schema,
                                                       None if replaced else alias)
    patch_items, server_only = _partition(merged, patch, merge_key)
    return _normalize_element_order(patch_items, server_only, patch, server_order, merge_key, kind)


def _merge_slice_with_special_elements(original: list, patch: list, merge_key: str,
                                       alias: _GoSliceAlias | None) -> tuple[list, list, bool]:
    plain = []
    replace = False
    for v in patch:
        if DIRECTIVE_MARKER not in v:
            plain.append(v)
            continue
        directive = v[DIRECTIVE_MARKER]
        if directive == DELETE_DIRECTIVE:
            if merge_key not in v:
                raise _no_merge_key(v, merge_key)
            want = v[merge_key]
            while (i := _find_by_merge_key(original, merge_key, want)) >= 0:
                original = original[:i] + original[i + 1:]
                if alias is not None:
                    alias.deleted(i)
        elif directive == REPLACE_DIRECTIVE:
            replace = True  # keep scanning so the other directives are dropped too
        elif directive == MERGE_DIRECTIVE:
            raise StrategicMergePatchError("merging lists cannot yet be specified in the patch")
        else:
            raise StrategicMergePatchError(f"unknown patch type: {_go_fmt(directive)} in map: {_go_fmt(v)}")
    if replace:
        return plain, [], True
    return original, plain, False


def _merge_slice_without_special_elements(original: list, patch: list, merge_key: str,
                                          schema: PatchSchema | None, alias: _GoSliceAlias | None) -> list:
    original = list(original)
    for v in patch:
        if merge_key not in v:
            raise _no_merge_key(v, merge_key)
        i = _find_by_merge_key(original, merge_key, v[merge_key])
        if i >= 0:
            original[i] = _merge_map(original[i], v, schema)
        else:
            original.append(v)
            if alias is not None:
                alias.appended(v)
    return original


def strategic_merge_patch(original: Mapping[str, Any] | None, patch: Any,
                          schema: PatchSchema | None) -> dict[str, Any]:
    """Apply a strategic merge patch (the parsed request body) to a copy of `original`.

    `schema` None means no field metadata (every list is replaced, objects merge). Raises
    StatusError (400 / 422 / 500, as upstream's handler) when the patch cannot apply.
    """
    if patch is None:
        patch = {}
    if not isinstance(patch, dict):
        kind = {"list": "array", "str": "string", "bool": "bool", "int": "number", "float": "number"}.get(
            type(patch).__name__, "object")
        raise bad_request(f"json: cannot unmarshal {kind} into Go value of type map[string]interface {{}}")
    try:
        merged = _merge_map(deep_copy_json(dict(original or {})), deep_copy_json(patch), schema)
    except StrategicMergePatchError as e:
        raise e.status_error() from None
    return _typed_clean(merged)


# --- built-in patch metadata (from the patchStrategy / patchMergeKey tags of k8s.io/api) ------


def _merge_list(key: str | None = None, fields: dict | None = None, strategy: str = "merge") -> dict:
    d: dict[str, Any] = {"list": True, "patchStrategy": strategy}
    if key:
        d["patchMergeKey"] = key
    if fields:
        d["fields"] = fields
    return d


def _obj(fields: dict) -> dict:
    return {"fields": fields}


# Go: ObjectMeta.
OBJECT_META_FIELDS: dict[str, Any] = {
    "finalizers": _merge_list(),
    "ownerReferences": _merge_list("uid"),
}

# Go: Container (and EphemeralContainerCommon, which has the same tags). envFrom, resizePolicy,
# command/args have no tags: replaced as a whole.
CONTAINER_FIELDS: dict[str, Any] = {
    "ports": _merge_list("containerPort"),
    "env": _merge_list("name"),
    "volumeMounts": _merge_list("mountPath"),
    "volumeDevices": _merge_list("devicePath"),
}

# Go: PodSpec. tolerations, readinessGates, overhead have no tags.
POD_SPEC_FIELDS: dict[str, Any] = {
    "volumes": _merge_list("name", strategy="merge,retainKeys"),
    "initContainers": _merge_list("name", CONTAINER_FIELDS),
    "containers": _merge_list("name", CONTAINER_FIELDS),
    "ephemeralContainers": _merge_list("name", CONTAINER_FIELDS),
    "imagePullSecrets": _merge_list("name"),
    "hostAliases": _merge_list("ip"),
    "topologySpreadConstraints": _merge_list("topologyKey"),
    "schedulingGates": _merge_list("name"),
    "resourceClaims": _merge_list("name", strategy="merge,retainKeys"),
    "evictionResponders": _merge_list("name"),
}

# Go: PodStatus. containerStatuses have no tags.
POD_STATUS_FIELDS: dict[str, Any] = {
    "conditions": _merge_list("type"),
    "hostIPs": _merge_list("ip"),
    "podIPs": _merge_list("ip"),
    "resourceClaimStatuses": _merge_list("name", strategy="merge,retainKeys"),
    "nodeAllocatableResourceClaimStatuses": _merge_list("resourceClaimName"),
}

POD_TEMPLATE_SPEC_FIELDS: dict[str, Any] = {
    "metadata": _obj(OBJECT_META_FIELDS),
    "spec": _obj(POD_SPEC_FIELDS),
}

_CONDITIONS_STATUS: dict[str, Any] = {"conditions": _merge_list("type")}


def _kind_fields(spec: dict | None = None, status: dict | None = None, **extra: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {"metadata": _obj(OBJECT_META_FIELDS)}
    if spec is not None:
        fields["spec"] = _obj(spec)
    if status is not None:
        fields["status"] = _obj(status)
    fields.update(extra)
    return fields


_TEMPLATE_SPEC = {"template": _obj(POD_TEMPLATE_SPEC_FIELDS)}
_JOB_SPEC = {"template": _obj(POD_TEMPLATE_SPEC_FIELDS)}

BUILTIN_PATCH_META: dict[tuple[str, str], dict[str, Any]] = {
    ("v1", "Pod"): _kind_fields(POD_SPEC_FIELDS, POD_STATUS_FIELDS),
    ("v1", "PodTemplate"): _kind_fields(template=_obj(POD_TEMPLATE_SPEC_FIELDS)),
    ("v1", "ReplicationController"): _kind_fields(_TEMPLATE_SPEC, _CONDITIONS_STATUS),
    ("v1", "Service"): _kind_fields({"ports": _merge_list("port")}, _CONDITIONS_STATUS),
    ("v1", "Node"): _kind_fields({"podCIDRs": _merge_list()},
                                 {"conditions": _merge_list("type"), "addresses": _merge_list("type")}),
    ("v1", "Namespace"): _kind_fields({}, _CONDITIONS_STATUS),
    ("v1", "ServiceAccount"): _kind_fields(secrets=_merge_list("name")),
    ("v1", "PersistentVolumeClaim"): _kind_fields({}, _CONDITIONS_STATUS),
    ("v1", "ComponentStatus"): _kind_fields(conditions=_merge_list("type")),
    ("apps/v1", "Deployment"): _kind_fields({**_TEMPLATE_SPEC, "strategy": {"patchStrategy": "retainKeys"}},
                                            _CONDITIONS_STATUS),
    ("apps/v1", "ReplicaSet"): _kind_fields(_TEMPLATE_SPEC, _CONDITIONS_STATUS),
    ("apps/v1", "StatefulSet"): _kind_fields(_TEMPLATE_SPEC, _CONDITIONS_STATUS),
    ("apps/v1", "DaemonSet"): _kind_fields(_TEMPLATE_SPEC, _CONDITIONS_STATUS),
    ("batch/v1", "Job"): _kind_fields(_JOB_SPEC, _CONDITIONS_STATUS),
    ("batch/v1", "CronJob"): _kind_fields({"jobTemplate": _obj({"metadata": _obj(OBJECT_META_FIELDS),
                                                                "spec": _obj(_JOB_SPEC)})}),
    ("policy/v1", "PodDisruptionBudget"): _kind_fields({"selector": {"patchStrategy": "replace"}},
                                                       _CONDITIONS_STATUS),
    ("autoscaling/v2", "HorizontalPodAutoscaler"): _kind_fields({}, _CONDITIONS_STATUS),
    ("networking.k8s.io/v1", "ServiceCIDR"): _kind_fields({}, _CONDITIONS_STATUS),
    ("certificates.k8s.io/v1", "CertificateSigningRequest"): _kind_fields({}, _CONDITIONS_STATUS),
    ("storage.k8s.io/v1", "CSINode"): _kind_fields({"drivers": _merge_list("name")}),
    ("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration"): _kind_fields(
        webhooks=_merge_list("name", {"matchConditions": _merge_list("name")})),
    ("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration"): _kind_fields(
        webhooks=_merge_list("name", {"matchConditions": _merge_list("name")})),
}

# Built-in group/versions: kinds without entries above still get ObjectMeta's metadata.
BUILTIN_GROUP_VERSIONS = frozenset({
    "v1", "apps/v1", "batch/v1", "policy/v1", "autoscaling/v1", "autoscaling/v2", "networking.k8s.io/v1",
    "rbac.authorization.k8s.io/v1", "coordination.k8s.io/v1", "discovery.k8s.io/v1", "storage.k8s.io/v1",
    "scheduling.k8s.io/v1", "admissionregistration.k8s.io/v1", "certificates.k8s.io/v1", "events.k8s.io/v1",
    "node.k8s.io/v1", "flowcontrol.apiserver.k8s.io/v1", "apiextensions.k8s.io/v1", "apiregistration.k8s.io/v1",
})

_SCHEMAS: dict[tuple[str, str], DictPatchSchema] = {}
_METADATA_ONLY = DictPatchSchema(_kind_fields())


def schema_for(api_version: str, kind: str) -> PatchSchema | None:
    """Patch metadata of a built-in kind; None for kinds we have no Go tags for (custom objects)."""
    key = (api_version, kind)
    schema = _SCHEMAS.get(key)
    if schema is None:
        desc = BUILTIN_PATCH_META.get(key)
        if desc is None:
            return _METADATA_ONLY if api_version in BUILTIN_GROUP_VERSIONS else None
        schema = _SCHEMAS[key] = DictPatchSchema(desc)
    return schema
