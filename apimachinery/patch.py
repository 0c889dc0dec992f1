"""JSON patch (RFC 6902) and JSON merge patch (RFC 7386) as the apiserver applies them.

Semantics follow gopkg.in/evanphx/json-patch.v4, the library upstream's patch handler uses, quirks
included: negative array indices count from the end, ``replace`` of a missing *object member*
adds it, ``test`` of a missing member passes against ``null``, a path with no leading "/" ignores
its first segment. Neither function mutates its inputs, and the result shares no containers with
them (callers may modify it freely, e.g. a cached object and a patch body).

Errors are StatusErrors as upstream's handler (staging/.../endpoints/handlers/patch.go) maps them:
a malformed patch document → 400 BadRequest; more than 10000 operations → 413; an operation that
cannot be applied (missing path, failed test, bad index) → 422 Invalid with upstream's generic
message "the server rejected our request due to an error in our request". Upstream drops the
library's explanation there; we keep it as the single ``details.causes[0].message`` so clients
can see what failed.
"""

from __future__ import annotations

import re
from typing import Any

from apimachinery.errors import StatusError, bad_request, too_large

MAX_JSON_PATCH_OPERATIONS = 10000
PATCH_REJECTED_MESSAGE = "the server rejected our request due to an error in our request"


class _ApplyError(Exception):
    """An operation that cannot apply; message as json-patch's error text."""


def patch_apply_error(explanation: str) -> StatusError:
    """The 422 upstream returns when a patch does not apply (NewGenericServerResponse(422, ...))."""
    return StatusError(422, "Invalid", PATCH_REJECTED_MESSAGE, {"causes": [{"message": explanation}]})


def deep_copy_json(v: Any) -> Any:
    """A deep copy of a JSON value (dicts, lists, scalars); much faster than copy.deepcopy."""
    t = type(v)
    if t is dict:
        return {k: deep_copy_json(x) if type(x) in (dict, list) else x for k, x in v.items()}
    if t is list:
        return [deep_copy_json(x) if type(x) in (dict, list) else x for x in v]
    return v


def json_equal(a: Any, b: Any) -> bool:
    """Structural JSON equality (unlike ==, true is not 1 and 1 is not "1")."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(json_equal(v, b[k]) for k, v in a.items())
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, (int, float)):
        return isinstance(b, (int, float)) and a == b
    return type(a) is type(b) and a == b


def _go_json_kind(v: Any) -> str:
    """How Go's encoding/json names a JSON value kind in unmarshal errors."""
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    return "object"


# --- JSON pointers ---------------------------------------------------------------------------

_POINTER_ESCAPE = re.compile("~[01]")
_INT_RE = re.compile(r"[+-]?[0-9]+")


def decode_pointer_token(token: str) -> str:
    """RFC 6901 unescaping in one pass: "~1" → "/", "~0" → "~" (so "~01" → "~1")."""
    if "~" not in token:
        return token
    return _POINTER_ESCAPE.sub(lambda m: "/" if m.group() == "~1" else "~", token)


def escape_pointer_token(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def _atoi(key: str) -> int:
    if _INT_RE.fullmatch(key) is None:
        raise _ApplyError(f'strconv.Atoi: parsing "{key}": invalid syntax')
    return int(key)


def _invalid_index(idx: int) -> _ApplyError:
    return _ApplyError(f"Unable to access invalid index: {idx}: invalid index referenced")


def _find_container(doc: Any, path: str) -> tuple[Any, str] | None:
    """The object/array holding the pointer's last token, and that token (None if unreachable)."""
    split = path.split("/")
    if len(split) < 2:
        return None
    node = doc
    for part in split[1:-1]:
        try:
            nxt = _get(node, decode_pointer_token(part))
        except _ApplyError:
            return None
        if not isinstance(nxt, (dict, list)):
            return None
        node = nxt
    return node, decode_pointer_token(split[-1])


def _get(con: Any, key: str) -> Any:
    """Member or element; None for a missing member (json-patch does not tell missing from null)."""
    if isinstance(con, dict):
        return con.get(key)
    idx = _atoi(key)
    n = len(con)
    if idx < 0:
        if idx < -n:
            raise _invalid_index(idx)
        idx += n
    if idx >= n:
        raise _invalid_index(idx)
    return con[idx]


def _add(con: Any, key: str, val: Any) -> None:
    if isinstance(con, dict):
        con[key] = val
        return
    if key == "-":
        con.append(val)
        return
    try:
        idx = _atoi(key)
    except _ApplyError as e:
        raise _ApplyError(f"value was not a proper array index: '{key}': {e}") from None
    size = len(con) + 1
    if idx >= size:
        raise _invalid_index(idx)
    if idx < 0:
        if idx < -size:
            raise _invalid_index(idx)
        idx += size
    con.insert(idx, val)


def _set(con: Any, key: str, val: Any) -> None:
    if isinstance(con, dict):
        con[key] = val
        return
    idx = _atoi(key)
    if idx < 0:
        if idx < -len(con):
            raise _invalid_index(idx)
        idx += len(con)
    con[idx] = val


def _remove(con: Any, key: str) -> None:
    if isinstance(con, dict):
        if key not in con:
            raise _ApplyError(f"Unable to remove nonexistent key: {key}: missing value")
        del con[key]
        return
    idx = _atoi(key)
    n = len(con)
    if idx >= n:
        raise _invalid_index(idx)
    if idx < 0:
        if idx < -n:
            raise _invalid_index(idx)
        idx += n
    del con[idx]


# --- RFC 6902 --------------------------------------------------------------------------------

def _op_string(op: dict, name: str, missing_msg: str) -> str:
    v = op.get(name)
    if v is None:
        raise _ApplyError(missing_msg)
    if not isinstance(v, str):
        raise _ApplyError(f"json: cannot unmarshal {_go_json_kind(v)} into Go value of type string")
    return v


def _op_path(op: dict, what: str, wrap_reason: bool) -> str:
    try:
        return _op_string(op, "path", "operation missing path field: missing value")
    except _ApplyError as e:
        # add/remove/copy report a bare "missing value"; the others wrap the underlying reason.
        raise _ApplyError(f"{what} operation failed to decode path: {e if wrap_reason else 'missing value'}") from None


def _op_from(op: dict, what: str) -> str:
    try:
        return _op_string(op, "from", "operation, missing from field: missing value")
    except _ApplyError as e:
        raise _ApplyError(f"{what} operation failed to decode from: {e}") from None


def _apply_op(doc: Any, op: dict) -> Any:
    kind = op.get("op")
    if not isinstance(kind, str):
        kind = "unknown"
    if kind == "add":
        path = _op_path(op, "add", False)
        found = _find_container(doc, path)
        if found is None:
            raise _ApplyError(f'add operation does not apply: doc is missing path: "{path}": missing value')
        try:
            _add(found[0], found[1], deep_copy_json(op.get("value")))
        except _ApplyError as e:
            raise _ApplyError(f"error in add for path: '{path}': {e}") from None
    elif kind == "remove":
        path = _op_path(op, "remove", False)
        found = _find_container(doc, path)
        if found is None:
            raise _ApplyError(f'remove operation does not apply: doc is missing path: "{path}": missing value')
        try:
            _remove(*found)
        except _ApplyError as e:
            raise _ApplyError(f"error in remove for path: '{path}': {e}") from None
    elif kind == "replace":
        path = _op_path(op, "replace", True)
        if path == "":
            val = op.get("value")
            if not isinstance(val, (dict, list)):
                raise _ApplyError("replace operation value must be object or array: <nil>")
            return deep_copy_json(val)
        found = _find_container(doc, path)
        if found is None:
            raise _ApplyError(f"replace operation does not apply: doc is missing path: {path}: missing value")
        con, key = found
        try:
            _get(con, key)
        except _ApplyError:
            raise _ApplyError(f"replace operation does not apply: doc is missing key: {path}: missing value") from None
        try:
            _set(con, key, deep_copy_json(op.get("value")))
        except _ApplyError as e:
            raise _ApplyError(f"error in remove for path: '{path}': {e}") from None
    elif kind in ("move", "copy"):
        src = _op_from(op, kind)
        found = _find_container(doc, src)
        if found is None:
            raise _ApplyError(f"{kind} operation does not apply: doc is missing from path: {src}: missing value")
        con, key = found
        try:
            val = _get(con, key)
            if kind == "move":
                _remove(con, key)
            else:
                val = deep_copy_json(val)
        except _ApplyError as e:
            where = f"move for path: '{key}'" if kind == "move" else f"copy for from: '{src}'"
            raise _ApplyError(f"error in {where}: {e}") from None
        path = _op_path(op, kind, kind == "move")
        found = _find_container(doc, path)
        if found is None:
            raise _ApplyError(f"{kind} operation does not apply: doc is missing destination path: {path}: "
                              "missing value")
        try:
            _add(found[0], found[1], val)
        except _ApplyError as e:
            if kind == "move":
                raise _ApplyError(f"error in move for path: '{path}': {e}") from None
            raise _ApplyError(f"error while adding value during copy: {e}") from None
    elif kind == "test":
        path = _op_path(op, "test", True)
        want = op.get("value")
        if path == "":
            if json_equal(doc, want):
                return doc
            raise _ApplyError(f"testing value {path} failed: test failed")
        found = _find_container(doc, path)
        if found is None:
            raise _ApplyError(f"test operation does not apply: is missing path: {path}: missing value")
        try:
            have = _get(*found)
        except _ApplyError as e:
            raise _ApplyError(f"error in test for path: '{path}': {e}") from None
        if have is None:
            if want is None:
                return doc
        elif want is not None and json_equal(have, want):
            return doc
        raise _ApplyError(f"testing value {path} failed: test failed")
    else:
        raise _ApplyError(f"Unexpected kind: {kind}")
    return doc


def json_patch(doc: Any, ops: Any) -> Any:
    """Apply an RFC 6902 patch (the parsed request body) to a copy of `doc`; return the copy."""
    if ops is None:
        ops = []  # Go decodes `null` into an empty patch
    if not isinstance(ops, list):
        raise bad_request(f"json: cannot unmarshal {_go_json_kind(ops)} into Go value of type jsonpatch.Patch")
    for op in ops:
        if op is not None and not isinstance(op, dict):
            raise bad_request(f"json: cannot unmarshal {_go_json_kind(op)} into Go value of type jsonpatch.Operation")
    if len(ops) > MAX_JSON_PATCH_OPERATIONS:
        raise too_large(f"The allowed maximum operations in a JSON patch is {MAX_JSON_PATCH_OPERATIONS}, "
                        f"got {len(ops)}")
    result = deep_copy_json(doc)
    try:
        for op in ops:
            result = _apply_op(result, op or {})
    except _ApplyError as e:
        raise patch_apply_error(str(e)) from None
    return result


# --- RFC 7386 --------------------------------------------------------------------------------


def _prune_nulls(v: Any) -> Any:
    """A copy of a patch value with null members removed from objects (arrays keep their nulls)."""
    if type(v) is dict:
        return {k: _prune_nulls(x) for k, x in v.items() if x is not None}
    if type(v) is list:
        return [_prune_nulls(x) for x in v]
    return v


def _merge(target: Any, patch: Any) -> Any:
    if not isinstance(target, dict):
        return _prune_nulls(patch)
    if not isinstance(patch, dict):
        return deep_copy_json(patch)
    out: dict[str, Any] = {}
    for k, cur in target.items():  # original member order, new members at the end
        if k not in patch:
            out[k] = deep_copy_json(cur)
        elif patch[k] is not None:
            out[k] = _prune_nulls(patch[k]) if cur is None else _merge(cur, patch[k])
    for k, v in patch.items():
        if v is not None and k not in target:
            out[k] = _prune_nulls(v)
    return out


def merge_patch(doc: Any, patch: Any) -> Any:
    """Apply an RFC 7386 merge patch: null deletes, objects merge recursively, anything else replaces.

    A patch that is not an object or array (including null) → 400 "Invalid JSON Patch", as upstream.
    An array patch replaces the document (the caller's decode of the result then fails, as upstream).
    """
    if isinstance(patch, list):
        return _prune_nulls(patch)
    if not isinstance(patch, dict):
        raise bad_request("Invalid JSON Patch")
    if not isinstance(doc, dict):
        return _prune_nulls(patch)
    return _merge(doc, patch)


def create_merge_patch(original: Any, modified: Any) -> Any:
    """The merge patch that turns `original` into `modified` (for clients/controllers computing patches)."""
    if not isinstance(original, dict) or not isinstance(modified, dict):
        return deep_copy_json(modified)
    patch: dict[str, Any] = {}
    for k in original:
        if k not in modified:
            patch[k] = None
    for k, v in modified.items():
        if k not in original:
            patch[k] = deep_copy_json(v)
            continue
        ov = original[k]
        if isinstance(ov, dict) and isinstance(v, dict):
            sub = create_merge_patch(ov, v)
            if sub:
                patch[k] = sub
        elif not json_equal(ov, v):
            patch[k] = deep_copy_json(v)
    return patch
