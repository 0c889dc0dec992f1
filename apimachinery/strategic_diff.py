"""Creating strategic merge patches on the client side (k8s.io/apimachinery/pkg/util/strategicpatch).

``create_three_way_patch(original, modified, current, schema)`` is what ``kubectl apply`` sends:
the changes from ``current`` (the live object) to ``modified`` (the file, with its new
last-applied annotation) without deletions, plus the deletions from ``original`` (the previous
last-applied configuration) to ``modified``. ``create_two_way_patch`` is the plain diff
(``kubectl edit``). Both generate upstream's directives — ``$setElementOrder/<list>``,
``$patch: delete`` list elements, ``$deleteFromPrimitiveList/<list>``, ``$retainKeys`` — from the
same field metadata (``schema_for()``) the server merges with, and follow upstream's diffMaps /
diffLists / client-side mergeMap step by step so the patches are the ones kubectl computes.

``create_three_way_json_merge_patch`` is kubectl's fallback for kinds without patch metadata
(custom resources): an RFC 7386 merge patch built the same three-way way.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from apimachinery.patch import create_merge_patch, deep_copy_json, merge_patch
from apimachinery.strategic import (
    DELETE_DIRECTIVE,
    DELETE_FROM_PRIMITIVE_LIST_PREFIX,
    DIRECTIVE_MARKER,
    ERR_BAD_PATCH_FORMAT_FOR_SET_ELEMENT_ORDER_LIST,
    ERR_NO_LIST_OF_LISTS,
    MERGE_DIRECTIVE,
    REPLACE_DIRECTIVE,
    RETAIN_KEYS_DIRECTIVE,
    RETAIN_KEYS_STRATEGY,
    SET_ELEMENT_ORDER_PREFIX,
    PatchSchema,
    StrategicMergePatchError,
    _directive_in_map,
    _find_by_merge_key,
    _go_fmt,
    _key,
    _normalize_element_order,
    _normalize_slice_order,
    _partition,
    _slice_element_kind,
    _validate_patch_with_set_order_list,
    go_type,
)

__all__ = [
    "StrategicMergePatchError",
    "create_three_way_json_merge_patch",
    "create_three_way_patch",
    "create_two_way_patch",
]

_MAP = "map"


@dataclass(frozen=True)
class _DiffOptions:
    set_element_order: bool = False
    ignore_changes_and_additions: bool = False
    ignore_deletions: bool = False
    build_retain_keys: bool = False


def _deep_equal(a: Any, b: Any) -> bool:
    """reflect.DeepEqual on decoded JSON: types matter (1 != 1.0 != true)."""
    if go_type(a) != go_type(b):
        return False
    if isinstance(a, dict):
        return len(a) == len(b) and all(k in b and _deep_equal(v, b[k]) for k, v in a.items())
    if isinstance(a, list):
        return len(a) == len(b) and all(_deep_equal(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def _lookup(schema: PatchSchema | None, key: str) -> tuple[PatchSchema | None, bool, str, str]:
    """(subschema, retainKeys?, other strategy, merge key) of a field (upstream
    LookupPatchMetadata + extractRetainKeysPatchStrategy)."""
    sub = schema.field(key) if schema is not None else None
    if sub is None:
        return None, False, "", ""
    strategies = [s for s in (sub.patch_strategy or "").split(",") if s]
    if not strategies:
        return sub, False, "", sub.merge_key or ""
    if len(strategies) == 1:
        if strategies[0] == RETAIN_KEYS_STRATEGY:
            return sub, True, "", sub.merge_key or ""
        return sub, False, strategies[0], sub.merge_key or ""
    if len(strategies) == 2 and RETAIN_KEYS_STRATEGY in strategies:
        other = strategies[1] if strategies[0] == RETAIN_KEYS_STRATEGY else strategies[0]
        return sub, True, other, sub.merge_key or ""
    raise StrategicMergePatchError(f"unexpected patch strategy: [{' '.join(strategies)}]")


def _sort_scalars(values: list) -> list:
    """Upstream sortScalars: by the %v rendering of each value."""
    return sorted(values, key=_go_fmt)


def _dedup_scalars(values: list) -> list:
    """Upstream deduplicateScalars (it moves the last element into each duplicate's place)."""
    s = list(values)
    length = len(s) - 1
    i = 0
    while i < length:
        j = i + 1
        while j <= length:
            if _key(s[i]) == _key(s[j]):
                s[j] = s[length]
                s = s[:length]
                length -= 1
                j -= 1
            j += 1
        i += 1
    return s


# --- diff ------------------------------------------------------------------------------------


def _diff_maps(original: dict, modified: dict, schema: PatchSchema | None, opts: _DiffOptions) -> dict:
    patch: dict[str, Any] = {}
    retain_keys: list[str] = []
    for key, modified_value in modified.items():
        if opts.build_retain_keys and modified_value is not None:
            retain_keys.append(key)
        if key not in original:
            if not opts.ignore_changes_and_additions:
                patch[key] = modified_value
            continue
        original_value = original[key]
        if key == DIRECTIVE_MARKER:
            if not isinstance(original_value, str) or not isinstance(modified_value, str):
                raise StrategicMergePatchError(f"invalid value for special key: {DIRECTIVE_MARKER}")
            if original_value != modified_value:
                patch[key] = modified_value
            continue
        if go_type(original_value) != go_type(modified_value):
            if not opts.ignore_changes_and_additions:
                patch[key] = modified_value
            continue
        if isinstance(original_value, dict):
            _map_diff(key, original_value, modified_value, patch, schema, opts)
        elif isinstance(original_value, list):
            _slice_diff(key, original_value, modified_value, patch, schema, opts)
        else:
            _replace_if_not_equal(key, original_value, modified_value, patch, opts)
    if not opts.ignore_deletions:
        for key in original:
            if key not in modified:
                patch[key] = None
    if retain_keys and (patch or _has_additional_new_field(original, modified)):
        patch[RETAIN_KEYS_DIRECTIVE] = _sort_scalars(retain_keys)
    return patch


def _has_additional_new_field(original: dict, modified: dict) -> bool:
    return any(v is not None and k not in modified for k, v in original.items())


def _replace_if_not_equal(key: str, original: Any, modified: Any, patch: dict, opts: _DiffOptions) -> None:
    if not opts.ignore_changes_and_additions and not _deep_equal(original, modified):
        patch[key] = modified


def _map_diff(key: str, original: dict, modified: dict, patch: dict, schema: PatchSchema | None,
              opts: _DiffOptions) -> None:
    sub, retain_keys, strategy, _ = _lookup(schema, key)
    if strategy == REPLACE_DIRECTIVE:
        if not opts.ignore_changes_and_additions:
            patch[key] = modified
        return
    value = _diff_maps(original, modified, sub, replace(opts, build_retain_keys=retain_keys))
    if value:
        patch[key] = value


def _slice_diff(key: str, original: list, modified: list, patch: dict, schema: PatchSchema | None,
                opts: _DiffOptions) -> None:
    sub, retain_keys, strategy, merge_key = _lookup(schema, key)
    if strategy != MERGE_DIRECTIVE:
        _replace_if_not_equal(key, original, modified, patch, opts)
        return
    added, deleted, order = _diff_lists(original, modified, sub, merge_key,
                                        replace(opts, build_retain_keys=retain_keys))
    if added:
        patch[key] = added
    if deleted:
        patch[f"{DELETE_FROM_PRIMITIVE_LIST_PREFIX}/{key}"] = deleted
    if order:
        patch[f"{SET_ELEMENT_ORDER_PREFIX}/{key}"] = order


def _diff_lists(original: list, modified: list, schema: PatchSchema | None, merge_key: str,
                opts: _DiffOptions) -> tuple[list, list, list]:
    if not original:
        if not modified or opts.ignore_changes_and_additions:
            return [], [], []
        return modified, [], []
    kind = _slice_element_kind(original, modified)
    order: list = []
    if kind == _MAP:
        patch_list, deletions = _diff_lists_of_maps(original, modified, schema, merge_key, opts)
        patch_list = _normalize_slice_order(patch_list, modified, merge_key, kind)
        order_same = _is_order_same(original, modified, merge_key)
        patch_list = patch_list + deletions
        if opts.set_element_order and (
            (not opts.ignore_changes_and_additions and (patch_list or not order_same))
            or (not opts.ignore_deletions and patch_list)
        ):
            order = [{merge_key: v[merge_key]} for v in modified]
        return patch_list, [], order
    if kind == "list":
        raise StrategicMergePatchError(ERR_NO_LIST_OF_LISTS)
    patch_list, deletions = _diff_lists_of_scalars(original, modified, opts)
    patch_list = _normalize_slice_order(patch_list, modified, merge_key, kind)
    # Upstream sorts `original` in place before this comparison, so a list that is merely not
    # sorted counts as changed (and gets a $setElementOrder list).
    if opts.set_element_order and ((not opts.ignore_deletions and deletions) or (
            not opts.ignore_changes_and_additions and not _deep_equal(_sort_scalars(original), modified))):
        order = list(modified)
    return patch_list, deletions, order


def _is_order_same(original: list, modified: list, merge_key: str) -> bool:
    if len(original) != len(modified):
        return False
    for a, b in zip(original, modified, strict=True):
        if not _merge_key_value_equal(a, b, merge_key):
            return False
    return True


def _merge_key_value_equal(a: Any, b: Any, merge_key: str) -> bool:
    if not merge_key:
        return _key(a) == _key(b)
    for item in (a, b):
        if not isinstance(item, dict):
            raise StrategicMergePatchError(f"expected a map[string]interface {{}}, but received a {go_type(item)}")
        if merge_key not in item:
            raise StrategicMergePatchError(f"map: {_go_fmt(item)} does not contain declared merge key: {merge_key}")
    return _key(a[merge_key]) == _key(b[merge_key])


def _diff_lists_of_scalars(original: list, modified: list, opts: _DiffOptions) -> tuple[list, list]:
    orig, mod = _sort_scalars(original), _sort_scalars(modified)
    added: list = []
    deleted: list = []
    i = j = 0
    while i < len(orig) or j < len(mod):
        o_in, m_in = i < len(orig), j < len(mod)
        o_str = _go_fmt(orig[i]) if o_in else ""
        m_str = _go_fmt(mod[j]) if m_in else ""
        if o_in and m_in and o_str == m_str:
            i += 1
            j += 1
        elif not o_in or (o_in and m_in and o_str > m_str):
            if not opts.ignore_changes_and_additions:
                added.append(mod[j])
            j += 1
        else:
            if not opts.ignore_deletions:
                deleted.append(orig[i])
            i += 1
    return added, _dedup_scalars(deleted)


def _merge_key_string(item: Any, merge_key: str) -> tuple[dict, Any, str]:
    if not isinstance(item, dict):
        raise StrategicMergePatchError(f"expected a map[string]interface {{}}, but received a {go_type(item)}")
    if merge_key not in item:
        raise StrategicMergePatchError(f"map: {_go_fmt(item)} does not contain declared merge key: {merge_key}")
    return item, item[merge_key], _go_fmt(item[merge_key])


def _sorted_by_merge_key(items: list, merge_key: str) -> list:
    if not items:
        return items
    _slice_element_kind(items)
    return sorted(items, key=lambda m: _go_fmt(m.get(merge_key)) if isinstance(m, dict) else "")


def _diff_lists_of_maps(original: list, modified: list, schema: PatchSchema | None, merge_key: str,
                        opts: _DiffOptions) -> tuple[list, list]:
    patch: list = []
    deletions: list = []
    orig = _sorted_by_merge_key(original, merge_key)
    mod = _sorted_by_merge_key(modified, merge_key)
    i = j = 0
    while i < len(orig) or j < len(mod):
        o_in, m_in = i < len(orig), j < len(mod)
        if o_in:
            o_elem, o_value, o_str = _merge_key_string(orig[i], merge_key)
        if m_in:
            m_elem, m_value, m_str = _merge_key_string(mod[j], merge_key)
        if o_in and m_in and o_str == m_str:
            value = _diff_maps(o_elem, m_elem, schema, opts)
            if value:
                value[merge_key] = m_value
                patch.append(value)
            i += 1
            j += 1
        elif not o_in or (o_in and m_in and o_str > m_str):
            if not opts.ignore_changes_and_additions:
                patch.append(m_elem)
            j += 1
        else:
            if not opts.ignore_deletions:
                deletions.append({merge_key: o_value, DIRECTIVE_MARKER: DELETE_DIRECTIVE})
            i += 1
    return patch, deletions


# --- merging the deletions patch with the delta patch (client-side mergeMap) ------------------


def _merge_patches(original: dict, patch: dict, schema: PatchSchema | None) -> dict:
    """Upstream mergeMap with MergeOptions{} (parallel lists kept, nulls kept): `original` is
    itself a patch here (the deletions), `patch` the additions and changes."""
    if DIRECTIVE_MARKER in patch:
        return _directive_in_map(patch[DIRECTIVE_MARKER], patch)
    if RETAIN_KEYS_DIRECTIVE in patch:
        retain = patch.pop(RETAIN_KEYS_DIRECTIVE)
        if RETAIN_KEYS_DIRECTIVE in original:
            if not _deep_equal(original[RETAIN_KEYS_DIRECTIVE], retain):
                raise StrategicMergePatchError(
                    f"{_go_fmt(original[RETAIN_KEYS_DIRECTIVE])} and {_go_fmt(retain)} are not deep equal: "
                    "this may happen when calculating the 3-way diff patch")
        else:
            original[RETAIN_KEYS_DIRECTIVE] = retain
    _merge_set_element_order(original, patch, schema)
    for key, patch_value in list(patch.items()):
        if key.startswith(DELETE_FROM_PRIMITIVE_LIST_PREFIX):
            original[key] = patch_value
            continue
        if patch_value is None:
            original.pop(key, None)
        if key not in original:
            original[key] = patch_value
            continue
        original_value = original[key]
        if go_type(original_value) != go_type(patch_value):
            original[key] = patch_value
            continue
        sub, _, strategy, merge_key = _lookup(schema, key)
        if isinstance(original_value, dict):
            original[key] = patch_value if strategy == REPLACE_DIRECTIVE else _merge_patches(
                original_value, patch_value, sub)
        elif isinstance(original_value, list):
            original[key] = _merge_slice_handler(original_value, patch_value, sub, strategy, merge_key)
        else:
            original[key] = patch_value
    return original


def _merge_set_element_order(original: dict, patch: dict, schema: PatchSchema | None) -> None:
    for key in [k for k in patch if k.startswith(SET_ELEMENT_ORDER_PREFIX)]:
        order = patch.pop(key)
        if key in original:
            if not _deep_equal(original[key], order):
                raise StrategicMergePatchError(ERR_BAD_PATCH_FORMAT_FOR_SET_ELEMENT_ORDER_LIST)
        else:
            original[key] = order
        if not isinstance(order, list):
            raise StrategicMergePatchError(f"expected a []interface {{}}, but received a {go_type(order)}")
        parts = key.split("/", 1)
        if len(parts) < 2:
            raise StrategicMergePatchError(ERR_BAD_PATCH_FORMAT_FOR_SET_ELEMENT_ORDER_LIST)
        field = parts[1]
        found_original, found_patch = field in original, field in patch
        original_list = original.get(field) if found_original else []
        patch_list = patch.get(field) if found_patch else []
        for v in (original_list, patch_list):
            if not isinstance(v, list):
                raise StrategicMergePatchError(f"expected a []interface {{}}, but received a {go_type(v)}")
        sub, _, strategy, merge_key = _lookup(schema, field)
        _validate_patch_with_set_order_list(patch_list, order, merge_key)
        if found_original and not found_patch:
            merged = original_list
        elif found_patch and not found_original:
            merged = patch_list
        elif found_original and found_patch:
            merged = _merge_slice_handler(original_list, patch_list, sub, strategy, merge_key)
        else:
            continue
        patch_items, server_only = _partition(merged, order, merge_key)
        kind = _slice_element_kind(original_list, patch_list)
        original[field] = _normalize_element_order(patch_items, server_only, order, original_list, merge_key, kind)
        patch.pop(field, None)


def _merge_slice_handler(original: list, patch: list, schema: PatchSchema | None, strategy: str,
                         merge_key: str) -> list:
    if strategy != MERGE_DIRECTIVE:
        return patch
    if not original and not patch:
        return original
    kind = _slice_element_kind(original, patch)
    if kind != _MAP:
        merged = _dedup_scalars(original + patch)
    else:
        if not merge_key:
            raise StrategicMergePatchError("cannot merge lists without merge key for struct")
        plain: list = []
        replace_all = False
        for v in patch:
            if DIRECTIVE_MARKER not in v:
                plain.append(v)
            elif v[DIRECTIVE_MARKER] == DELETE_DIRECTIVE:
                if merge_key not in v:
                    raise StrategicMergePatchError(
                        f"map: {_go_fmt(v)} does not contain declared merge key: {merge_key}")
                while (i := _find_by_merge_key(original, merge_key, v[merge_key])) >= 0:
                    original = original[:i] + original[i + 1:]
            elif v[DIRECTIVE_MARKER] == REPLACE_DIRECTIVE:
                replace_all = True
            elif v[DIRECTIVE_MARKER] == MERGE_DIRECTIVE:
                raise StrategicMergePatchError("merging lists cannot yet be specified in the patch")
            else:
                raise StrategicMergePatchError(
                    f"unknown patch type: {_go_fmt(v[DIRECTIVE_MARKER])} in map: {_go_fmt(v)}")
        if replace_all:
            original, patch = plain, []
        else:
            patch = plain
        merged = list(original)
        for v in patch:
            if merge_key not in v:
                raise StrategicMergePatchError(f"map: {_go_fmt(v)} does not contain declared merge key: {merge_key}")
            i = _find_by_merge_key(merged, merge_key, v[merge_key])
            if i >= 0:
                merged[i] = _merge_patches(merged[i], v, schema)
            else:
                merged.append(v)
    patch_items, server_only = _partition(merged, patch, merge_key)
    return _normalize_element_order(patch_items, server_only, patch, original, merge_key, kind)


# --- public API --------------------------------------------------------------------------------


def create_two_way_patch(original: dict | None, modified: dict | None, schema: PatchSchema | None) -> dict:
    """The strategic merge patch that turns `original` into `modified` (CreateTwoWayMergePatch)."""
    return _diff_maps(deep_copy_json(original or {}), deep_copy_json(modified or {}), schema,
                      _DiffOptions(set_element_order=True))


def create_three_way_patch(original: dict | None, modified: dict | None, current: dict | None,
                           schema: PatchSchema | None) -> dict:
    """kubectl apply's patch (CreateThreeWayMergePatch with overwrite): `original` is the last
    applied configuration (None/{} if there is none), `modified` the new configuration (with its
    last-applied annotation), `current` the live object. Raises StrategicMergePatchError when a
    document is malformed for its patch metadata (a merge list element without its merge key...).
    """
    original = deep_copy_json(original or {})
    modified = deep_copy_json(modified or {})
    current = deep_copy_json(current or {})
    delta = _diff_maps(current, modified, schema, _DiffOptions(ignore_deletions=True, set_element_order=True))
    deletions = _diff_maps(original, modified, schema,
                           _DiffOptions(set_element_order=True, ignore_changes_and_additions=True))
    return _merge_patches(deletions, delta, schema)


def _keep_or_delete_nulls(patch: Any, keep_nulls: bool) -> Any:
    """Upstream keepOrDeleteNullInObj: only the null leaves (deletions), or everything else."""
    out: dict[str, Any] = {}
    for k, v in patch.items():
        if v is None:
            if keep_nulls:
                out[k] = None
        elif isinstance(v, dict):
            sub = _keep_or_delete_nulls(v, keep_nulls)
            if sub:
                out[k] = sub
            elif not keep_nulls and not v:
                out[k] = v
        elif not keep_nulls:
            out[k] = v
    return out


def create_three_way_json_merge_patch(original: dict | None, modified: dict | None,
                                      current: dict | None) -> dict:
    """kubectl apply's patch for kinds without strategic merge metadata (jsonmergepatch
    CreateThreeWayJSONMergePatch): additions and changes from current, deletions from original."""
    add_and_change = _keep_or_delete_nulls(create_merge_patch(current or {}, modified or {}), False)
    deletions = _keep_or_delete_nulls(create_merge_patch(original or {}, modified or {}), True)
    return merge_patch(deletions, add_and_change) if add_and_change else deletions
