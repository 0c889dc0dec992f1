"""Structural schemas of custom resources, as upstream's apiextensions-apiserver applies them.

Schemas are a CRD version's ``schema.openAPIV3Schema`` as JSON dicts; objects are custom resources
as JSON dicts. The public functions mirror upstream packages:

* ``prune``        — pkg/apiserver/schema/pruning (+ objectmeta coercion of embedded resources)
* ``apply_defaults`` — pkg/apiserver/schema/defaulting (PruneNonNullableNullsWithoutDefaults + Default)
* ``validate``     — kube-openapi's validate package as pkg/apiserver/validation converts its results,
  then embedded-resource (objectmeta) and list-type checks, then ``x-kubernetes-validations``

String formats live in `formats`, CEL rules in `cel`, the checks of a CRD's schema itself in
`definition`. Messages and field paths are upstream's; causes are ``apimachinery.validation`` causes.
"""

from __future__ import annotations

import copy
import json
import math
import re
from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal
from typing import Any

from apimachinery.errors import field_cause
from apimachinery.validation import (
    FIELD_VALUE_INVALID,
    FIELD_VALUE_TYPE_INVALID,
    child,
    duplicate_cause,
    go_quote,
    index,
    invalid_cause,
    is_dns1035_label,
    key,
    not_supported_cause,
    render_value,
    required_cause,
    too_long_cause,
    too_many_cause,
    validate_object_meta,
    validate_path_segment_name,
)
from apiserver.crd.formats import format_check

Schema = dict[str, Any]
Cause = dict[str, str]

# ---------------------------------------------------------------------------------------------
# Schema accessors. A missing sub-schema is None, as upstream's nil *Structural.

PRESERVE = "x-kubernetes-preserve-unknown-fields"
EMBEDDED = "x-kubernetes-embedded-resource"
INT_OR_STRING = "x-kubernetes-int-or-string"
LIST_TYPE = "x-kubernetes-list-type"
LIST_MAP_KEYS = "x-kubernetes-list-map-keys"
MAP_TYPE = "x-kubernetes-map-type"
VALIDATIONS = "x-kubernetes-validations"

META_FIELDS = ("apiVersion", "kind", "metadata")


def type_of(schema: Schema | None) -> str:
    """The schema's ``type`` ("" when unset)."""
    t = (schema or {}).get("type")
    return t if isinstance(t, str) else ""


def props_of(s: Schema | None) -> dict[str, Schema]:
    p = (s or {}).get("properties")
    return p if isinstance(p, dict) else {}


def items_of(s: Schema | None) -> Schema | None:
    it = (s or {}).get("items")
    return it if isinstance(it, dict) else None


def has_additional(s: Schema | None) -> bool:
    return s is not None and s.get("additionalProperties") is not None


def additional_of(s: Schema | None) -> Schema | None:
    ap = (s or {}).get("additionalProperties")
    return ap if isinstance(ap, dict) else None


def flag(s: Schema | None, name: str) -> bool:
    return bool((s or {}).get(name))


def default_of(s: Schema | None) -> Any:
    return (s or {}).get("default")


def has_default(s: Schema | None) -> bool:
    return default_of(s) is not None


def as_root(s: Schema | None) -> Schema:
    """Upstream treats the resource root like an embedded resource (TypeMeta/ObjectMeta kept)."""
    s = dict(s or {})
    s[EMBEDDED] = True
    return s


# ---------------------------------------------------------------------------------------------
# Pruning

# ObjectMeta's JSON fields: what strict decoding of an embedded resource's metadata keeps.
_OBJECT_META_FIELDS = frozenset({
    "name", "generateName", "namespace", "selfLink", "uid", "resourceVersion", "generation",
    "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "labels", "annotations",
    "ownerReferences", "finalizers", "managedFields",
})


def prune(schema: Schema | None, obj: Any, *, is_resource_root: bool = True) -> list[str]:
    """Drop, in place, every field ``schema`` does not specify; return their paths, sorted.

    At a resource root (and in every ``x-kubernetes-embedded-resource``) apiVersion, kind and
    metadata are kept; an embedded resource's metadata is then cut down to ObjectMeta's fields,
    as upstream's objectmeta coercion does after pruning. The root's metadata is left alone.
    """
    s = as_root(schema) if is_resource_root else schema
    pruned: list[str] = []
    prune_unknown(obj, s, "", pruned)
    _coerce_embedded_meta(obj, s, "", "", pruned, is_root=is_resource_root)
    return sorted(pruned)


def _join(parent: str, name: str) -> str:
    # UnknownFieldPathOptions.AppendKey: keys (also map keys) joined by ".".
    return f"{parent}.{name}" if parent else name


def prune_unknown(x: Any, s: Schema | None, path: str, pruned: list[str], *, preserving: bool = False) -> None:
    """Upstream's prune: drop unknown fields of `x`, in place, appending their paths to `pruned`.

    Under x-kubernetes-preserve-unknown-fields (`preserving`, upstream's skipPrune) unknown fields
    stay, specified ones are still pruned.
    """
    preserving = preserving or (s is not None and flag(s, PRESERVE))
    if isinstance(x, dict):
        if s is None:
            if not preserving:
                for k in list(x):
                    pruned.append(_join(path, k))
                    del x[k]
            return
        embedded = flag(s, EMBEDDED)
        props = props_of(s)
        for k in list(x):
            if embedded and k in META_FIELDS:
                continue
            if k in props:
                prune_unknown(x[k], props[k], _join(path, k), pruned)
            elif has_additional(s):
                prune_unknown(x[k], additional_of(s), _join(path, k), pruned)
            elif not preserving:
                # apiVersion/kind/metadata are never reported at the top level.
                if k not in META_FIELDS or path:
                    pruned.append(_join(path, k))
                del x[k]
    elif isinstance(x, list):
        items = items_of(s)
        for i, v in enumerate(x):
            prune_unknown(v, items, f"{path}[{i}]", pruned, preserving=preserving)


def _is_empty_json(v: Any) -> bool:
    return v is None or v == "" or v == 0 or v == {} or v == [] or v is False


def _coerce_embedded_meta(x: Any, s: Schema | None, fpath: str, upath: str, pruned: list[str],
                          is_root: bool = False) -> None:
    """objectmeta.Coerce: an embedded resource's metadata round-trips through ObjectMeta.

    Unknown fields are dropped (and reported as ``<field path>.metadata.<name>``), empty ones
    omitted as Go's omitempty does. `fpath` is a field.Path (``[key]`` for map keys), `upath` the
    pruning notation — upstream's coercer tracks both.
    """
    if s is None:
        return
    if isinstance(x, dict):
        if flag(s, EMBEDDED) and not is_root and isinstance(x.get("metadata"), dict):
            meta = x["metadata"]
            for k in list(meta):
                if k not in _OBJECT_META_FIELDS:
                    pruned.append(f"{child(fpath, 'metadata')}.{k}")
                    del meta[k]
                elif _is_empty_json(meta[k]):
                    del meta[k]
        props = props_of(s)
        for k, v in x.items():
            if k in props:
                _coerce_embedded_meta(v, props[k], child(fpath, k), _join(upath, k), pruned)
            elif has_additional(s):
                _coerce_embedded_meta(v, additional_of(s), key(fpath, k), _join(upath, k), pruned)
    elif isinstance(x, list):
        items = items_of(s)
        for i, v in enumerate(x):
            _coerce_embedded_meta(v, items, index(fpath, i), f"{upath}[{i}]", pruned)


# ---------------------------------------------------------------------------------------------
# Defaulting


def apply_defaults(schema: Schema | None, obj: Any) -> None:
    """Upstream's structural defaulting, in place, on the whole object.

    First nulls of non-nullable fields without a default are dropped
    (PruneNonNullableNullsWithoutDefaults); then absent fields — and nulls of non-nullable
    fields — get a deep copy of their ``default``, recursively (also inside defaults just set).
    """
    _prune_nulls(obj, schema)
    _default_value(obj, schema)


def _non_nullable_null(x: Any, s: Schema | None) -> bool:
    return x is None and s is not None and not flag(s, "nullable")


class FieldPathError(ValueError):
    """A JSON path that names no field of the schema (upstream's texts)."""


_FIELD_PATH_TOKEN = re.compile(r"'(?:[^'\\]|\\.)*'|[.\[\]]|[^.\[\]']+|'.*")
_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "'": "'", "\\": "\\"}


def valid_field_path(json_path: str, schema: Any, *,
                     allow_array: bool = True) -> tuple[list[tuple[str, bool]], Schema | None]:
    """Upstream cel.ValidFieldPath: `.a.b['c.d']` through properties and additionalProperties →
    the segments (name, whether it is a map key) and the schema they lead to; FieldPathError
    otherwise. Selectable fields allow no array notation."""
    tokens = _FIELD_PATH_TOKEN.findall(json_path)
    segments: list[tuple[str, bool]] = []
    cur: Schema | None = schema if isinstance(schema, dict) else None
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok == "[":
            if not allow_array:
                raise FieldPathError("array notation is not allowed")
            lit = tokens[i + 1] if i + 2 < len(tokens) and tokens[i + 2] == "]" else ""
            if len(lit) < 2 or lit[0] != "'" or lit[-1] != "'":
                raise FieldPathError("unexpected end of JSON path")
            try:
                name = re.sub(r"\\(.)", lambda m: _ESCAPES[m.group(1)], lit[1:-1])
            except KeyError:
                raise FieldPathError(f"invalid escape in {lit}") from None
            i += 3
        elif tok == ".":
            if i + 1 >= len(tokens):
                raise FieldPathError("unexpected end of JSON path")
            name = tokens[i + 1]
            i += 2
        else:
            raise FieldPathError(f"expected [ or . but got: {tok}")
        props = props_of(cur)
        additional = (cur or {}).get("additionalProperties")
        if props:
            if name not in props:
                raise FieldPathError("does not refer to a valid field")
            cur = props[name]
            segments.append((name, False))
        elif additional is not None and additional is not False:
            cur = additional if isinstance(additional, dict) else None
            segments.append((name, True))
        else:
            raise FieldPathError("does not refer to a valid field")
    return segments, cur


def field_schema(s: Schema | None, k: str) -> Schema | None:
    props = props_of(s)
    if k in props:
        return props[k]
    return additional_of(s)


def _prune_nulls(x: Any, s: Schema | None) -> None:
    if isinstance(x, dict):
        for k in list(x):
            sub = field_schema(s, k)
            if _non_nullable_null(x[k], sub) and not has_default(sub):
                del x[k]
            else:
                _prune_nulls(x[k], sub)
    elif isinstance(x, list):
        items = items_of(s)
        for v in x:
            _prune_nulls(v, items)


def _default_value(x: Any, s: Schema | None) -> None:
    if s is None:
        return
    if isinstance(x, dict):
        props = props_of(s)
        for k, prop in props.items():
            if not has_default(prop):
                continue
            if k not in x or _non_nullable_null(x[k], prop):
                x[k] = copy.deepcopy(default_of(prop))
        ap = additional_of(s)
        for k in list(x):
            if k in props:
                _default_value(x[k], props[k])
            elif has_additional(s):
                if _non_nullable_null(x[k], ap) and has_default(ap):
                    x[k] = copy.deepcopy(default_of(ap))
                _default_value(x[k], ap)
    elif isinstance(x, list):
        items = items_of(s)
        for i in range(len(x)):
            if _non_nullable_null(x[i], items) and has_default(items):
                x[i] = copy.deepcopy(default_of(items))
            _default_value(x[i], items)


# ---------------------------------------------------------------------------------------------
# Go value rendering: kube-openapi formats numbers with %v.


def go_float(f: float) -> str:
    """A float64 as Go's ``%v`` prints it: shortest digits, %e form for exponents < -4 or >= 6."""
    if math.isnan(f):
        return "NaN"
    if math.isinf(f):
        return "+Inf" if f > 0 else "-Inf"
    if f == 0:
        return "0"
    sign, digit_tuple, exp = Decimal(repr(f)).as_tuple()
    assert isinstance(exp, int)
    raw = "".join(map(str, digit_tuple))
    ds = raw.rstrip("0")
    exp += len(raw) - len(ds)
    dp = len(ds) + exp  # position of the decimal point within ds
    x = dp - 1
    neg = "-" if sign else ""
    if x < -4 or x >= 6:
        mant = ds[0] + ("." + ds[1:] if len(ds) > 1 else "")
        return f"{neg}{mant}e{'-' if x < 0 else '+'}{abs(x):02d}"
    if dp <= 0:
        return f"{neg}0.{'0' * -dp}{ds}"
    if dp >= len(ds):
        return f"{neg}{ds}{'0' * (dp - len(ds))}"
    return f"{neg}{ds[:dp]}.{ds[dp:]}"


def _go_v(v: Any) -> str:
    """Go's %v of a JSON number (or anything else printed in kube-openapi messages)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return go_float(v)
    return str(v)


def _render(v: Any) -> str:
    return go_float(v) if isinstance(v, float) else render_value(v)


def invalid(path: str, value: Any, detail: str) -> Cause:
    # invalid_cause, but floats printed as Go prints a float64.
    if isinstance(value, float):
        return field_cause(path, f"Invalid value: {_render(value)}: {detail}", FIELD_VALUE_INVALID)
    return invalid_cause(path, value, detail)


def _type_invalid(path: str, value: Any, detail: str) -> Cause:
    return field_cause(path, f"Invalid value: {_render(value)}: {detail}", FIELD_VALUE_TYPE_INVALID)


# ---------------------------------------------------------------------------------------------
# Value validation: a port of kube-openapi's SchemaValidator over JSON values, with its error
# kinds, messages and "match counts" (which pick the reported branch of a failed anyOf/oneOf).

_IN = "body"


def _openapi_types(s: Schema) -> list[str]:
    if flag(s, INT_OR_STRING):
        return ["integer", "string"]
    t = type_of(s)
    return [t] if t else []


def _effective_format(s: Schema, types: list[str]) -> str:
    """The format left after StripUnsupportedFormatsPostProcessor."""
    fmt = s.get("format") or ""
    if not fmt:
        return ""
    t = types[0] if len(types) == 1 else ""
    if t in ("", "string"):
        return fmt if format_check(fmt) is not None else ""
    if t == "integer":
        return fmt if fmt in ("int32", "int64") else ""
    if t == "number":
        return fmt if fmt in ("float", "double") else ""
    return ""


class _Err:
    """A kube-openapi error: `code` selects how apiextensions converts it to a field error."""

    __slots__ = ("code", "message", "name", "valid", "value", "values")

    def __init__(self, code: str, name: str, message: str, value: Any = None, valid: Any = None,
                 values: list[Any] | None = None) -> None:
        self.code, self.name, self.message = code, name, message
        self.value, self.valid, self.values = value, valid, values


class _Result:
    __slots__ = ("errors", "matches")

    def __init__(self) -> None:
        self.errors: list[_Err] = []
        self.matches = 0

    def add(self, *errs: _Err) -> None:
        for e in errs:  # Result.AddErrors drops an error whose text was already reported
            if all(e.message != seen.message for seen in self.errors):
                self.errors.append(e)

    def merge(self, *others: _Result | None) -> _Result:
        for o in others:
            if o is not None:
                self.add(*o.errors)
                self.matches += o.matches
        return self

    @property
    def valid(self) -> bool:
        return not self.errors


def _only(err: _Err) -> _Result:
    r = _Result()
    r.errors.append(err)
    return r


def _named(name: str, in_: str, tail: str) -> str:
    # kube-openapi's "<name> in body <tail>" messages.
    return f"{name} in {in_} {tail}"


def _type_err(path: str, type_name: str, value: Any) -> _Err:
    tail = f"must be of type {type_name}"
    if isinstance(value, str):
        tail += ": " + go_quote(value)
    return _Err("type", path, _named(path, _IN, tail), value=value)


def _json_kind(data: Any) -> tuple[str, str]:
    """(JSON type, Go format) as kube-openapi infers them from a decoded value."""
    if isinstance(data, bool):
        return "boolean", ""
    if isinstance(data, str):
        return "string", ""
    if isinstance(data, int):
        return "integer", "int64"
    if isinstance(data, float):
        return "number", "float64"
    if isinstance(data, list):
        return "array", ""
    return "object", ""


def _is_number(data: Any) -> bool:
    return isinstance(data, (int, float)) and not isinstance(data, bool)


def _is_json_integer(f: float) -> bool:
    # swag.IsFloat64AJSONInteger
    if math.isnan(f) or math.isinf(f) or abs(f) > 2**53:
        return False
    return f == round(f) or abs(f - round(f)) < 1e-9 * max(1.0, abs(f))


def _validate_type(s: Schema, types: list[str], fmt: str, data: Any, path: str) -> _Result:
    res = _Result()
    res.matches += 1
    if data is None:
        if types and "null" not in types and not flag(s, "nullable"):
            return _only(_type_err(path, ",".join(types), "null"))
        return res
    sch_type, go_fmt = _json_kind(data)
    is_float_int = sch_type == "number" and _is_json_integer(data) and "integer" in types
    is_int_float = sch_type == "integer" and "number" in types
    stringish = isinstance(data, (str, list))
    if not stringish and fmt and not (sch_type in types or go_fmt == fmt or is_float_int or is_int_float):
        return _only(_type_err(path, fmt, go_fmt))
    if "number" not in types and "integer" not in types and fmt and stringish:
        return res
    if not (sch_type in types or is_float_int or is_int_float):
        return _only(_type_err(path, ",".join(types), sch_type))
    return res


def _validate_enum(s: Schema, data: Any, path: str) -> _Result | None:
    enum = s.get("enum")
    if not enum:
        return None
    for e in enum:
        if _enum_equal(data, e):
            return None
    return _only(_Err("enum", path, _named(path, _IN, f"should be one of {_go_list(enum)}"),
                      value=data, values=list(enum)))


def _enum_equal(data: Any, e: Any) -> bool:
    # reflect.DeepEqual after converting the value to the enum value's Go type.
    if data is None or e is None:
        return False
    if isinstance(e, bool) or isinstance(data, bool):
        return isinstance(e, bool) and isinstance(data, bool) and e == data
    if _is_number(e) and _is_number(data):
        return (int(data) == e) if isinstance(e, int) else float(data) == e
    if type(e) is not type(data):
        return False
    return typed_key(data) == typed_key(e)


def _go_list(values: Iterable[Any]) -> str:
    """Go's %v of a []interface{} of JSON values (enum lists in messages)."""
    def one(v: Any) -> str:
        if isinstance(v, dict):
            return "map[" + " ".join(f"{k}:{one(v[k])}" for k in sorted(v)) + "]"
        if isinstance(v, list):
            return _go_list(v)
        if v is None:
            return "<nil>"
        return _go_v(v)
    return "[" + " ".join(one(v) for v in values) + "]"


def _go_float_plain(f: float) -> str:
    """strconv.FormatFloat(f, 'f', -1, 64)."""
    d = format(Decimal(repr(f)), "f")
    return d.rstrip("0").rstrip(".") if "." in d else d


def _range_error(val: Any, type_name: str, fmt: str, prefix: str, path: str) -> _Err | None:
    """IsValueValidAgainstRange: can the number be held by the type and format without loss?"""
    rep = str(val) if isinstance(val, int) else _go_float_plain(val)
    ok = True
    if type_name == "integer":
        bits = 32 if fmt == "int32" else 64
        ok = re.fullmatch(r"[+-]?[0-9]+", rep) is not None and -(2 ** (bits - 1)) <= int(rep) < 2 ** (bits - 1)
    elif fmt == "float":
        ok = abs(float(rep)) <= 3.4028234663852886e38
    if ok:
        return None
    if fmt:
        msg = f"{prefix} value must be of type {type_name} with format {fmt} in {path}"
    else:
        msg = f"{prefix} value must be of type {type_name} (default format) in {path}"
    return _Err("plain", path, msg)


def _bound_error(path: str, data: Any, bound: float, exclusive: bool, is_max: bool) -> _Err | None:
    # MaximumNativeType / MinimumNativeType: integers compare against the bound cut to int64.
    b: int | float = int(bound) if isinstance(data, int) else float(bound)
    if is_max:
        failed = data >= b if exclusive else data > b
        tail = f"should be less than {_go_v(b)}" if exclusive else f"should be less than or equal to {_go_v(b)}"
    else:
        failed = data <= b if exclusive else data < b
        tail = (f"should be greater than {_go_v(b)}" if exclusive
                else f"should be greater than or equal to {_go_v(b)}")
    return _Err("invalid", path, _named(path, _IN, tail), value=data) if failed else None


def _multiple_error(path: str, data: Any, factor: float, native: bool) -> _Err | None:
    if native and isinstance(data, int):
        f_int = int(factor)
        if f_int <= 0:
            return _Err("invalid", path, f"factor MultipleOf declared for {path} must be positive: {f_int}",
                        value=f_int)
        if data % f_int != 0:
            return _Err("invalid", path, _named(path, _IN, f"should be a multiple of {f_int}"), value=data)
        return None
    f = float(factor)
    d = float(data)
    if f <= 0:
        return _Err("invalid", path, f"factor MultipleOf declared for {path} must be positive: {go_float(f)}",
                    value=f)
    mult = (1 / f * d) if f < 1 else d / f
    if not _is_json_integer(mult):
        return _Err("invalid", path, _named(path, _IN, f"should be a multiple of {go_float(f)}"), value=data)
    return None


def _validate_number(s: Schema, types: list[str], fmt: str, data: Any, path: str) -> _Result:
    res = _Result()
    type_name, num_fmt = "", ""
    if len(types) == 1 and types[0] in ("integer", "number"):
        type_name = types[0]
        if (type_name == "integer" and fmt in ("int32", "int64")) or (
                type_name == "number" and fmt in ("float", "double")):
            num_fmt = fmt
    err = _range_error(data, type_name, num_fmt, "Checked", path)
    if err:
        res.add(err)
    parts: list[_Result] = []
    checks = [("multipleOf", "MultipleOf"), ("minimum", "Minimum boundary"), ("maximum", "Maximum boundary")]
    for kw, prefix in checks:
        bound = s.get(kw)
        if not _is_number(bound):
            continue
        part = _Result()
        bound_err = _range_error(bound, type_name, num_fmt, prefix, path)
        if bound_err:
            part.add(bound_err)
        native = bound_err is None  # otherwise compared as plain float64 numbers
        value = data if native else float(data)
        if kw == "multipleOf":
            e = _multiple_error(path, value, bound, native)
        else:
            excl = flag(s, "exclusiveMaximum" if kw == "maximum" else "exclusiveMinimum")
            e = _bound_error(path, value, bound, excl, kw == "maximum")
        if e:
            part.add(e)
        parts.append(part)
    res.merge(*parts)
    res.matches += 1
    return res


def _validate_string(s: Schema, data: str, path: str) -> _Result | None:
    runes = len(data)
    max_len, min_len, pattern = s.get("maxLength"), s.get("minLength"), s.get("pattern")
    if _is_number(max_len) and runes > max_len:
        return _only(_Err("too_long", path, _named(path, _IN, f"should be at most {max_len} chars long"),
                          value=data, valid=max_len))
    if _is_number(min_len) and runes < min_len:
        return _only(_Err("invalid", path, _named(path, _IN, f"should be at least {min_len} chars long"),
                          value=data))
    if pattern:
        try:
            rx = compile_pattern(pattern)
        except re.error as e:
            shown = f"{pattern}, but pattern is invalid: {regex_error(e)}"
            return _only(_Err("invalid", path, _named(path, _IN, f"should match '{shown}'"), value=data))
        if rx.search(data) is None:
            return _only(_Err("invalid", path, _named(path, _IN, f"should match '{pattern}'"), value=data))
    return None


_PATTERN_CACHE: dict[str, re.Pattern[str]] = {}


def compile_pattern(pattern: str) -> re.Pattern[str]:
    # Patterns are RE2 (Go regexp); Python's re agrees on the common subset. `$` is Go's
    # end-of-text, not "before a final newline".
    rx = _PATTERN_CACHE.get(pattern)
    if rx is None:
        rx = re.compile(re.sub(r"(?<!\\)\$(?=\)*(\||$))", r"\\Z", pattern))
        _PATTERN_CACHE[pattern] = rx
    return rx


def regex_error(e: re.error) -> str:
    return f"error parsing regexp: {e.msg}: `{e.pattern if isinstance(e.pattern, str) else ''}`"


def _validate_format(fmt: str, data: str, path: str) -> _Result | None:
    check = format_check(fmt)
    if check is None or check(data):
        return None
    return _only(_type_err(path, fmt, data))


def _size_errors(s: Schema, bounds: tuple[str, str], size: int, noun: str, max_code: str, path: str) -> list[_Err]:
    """minItems/maxItems or minProperties/maxProperties: `bounds` names the two keywords."""
    lo, hi = s.get(bounds[0]), s.get(bounds[1])
    errs = []
    if _is_number(lo) and size < lo:
        errs.append(_Err("invalid", path, _named(path, _IN, f"should have at least {lo} {noun}"), value=size))
    if _is_number(hi) and size > hi:
        errs.append(_Err(max_code, path, _named(path, _IN, f"should have at most {hi} {noun}"), value=size, valid=hi))
    return errs


def _validate_slice(s: Schema, data: list[Any], path: str) -> _Result:
    res = _Result()
    items = items_of(s)
    if items is not None:
        for i, v in enumerate(data):
            res.merge(_schema_validate(items, v, f"{path}[{i}]"))
    res.add(*_size_errors(s, ("minItems", "maxItems"), len(data), "items", "max_items", path))
    if s.get("uniqueItems"):
        seen: list[Any] = []
        for v in data:
            k = typed_key(v)
            if k in seen:
                res.add(_Err("invalid", path, _named(path, _IN, "shouldn't contain duplicates")))
                break
            seen.append(k)
    res.matches += 1
    return res


def _validate_object(s: Schema, data: dict[str, Any], path: str) -> _Result:
    res = _Result()
    res.add(*_size_errors(s, ("minProperties", "maxProperties"), len(data), "properties", "max_props", path))
    props = props_of(s)
    ap = s.get("additionalProperties")
    if ap is False:
        for k in data:
            if k not in props:
                res.add(_Err("invalid", path, f"{path}.{k} in {_IN} is a forbidden property", value=k))
    elif isinstance(ap, dict):
        for k, v in data.items():
            if k not in props:
                res.merge(_schema_validate(ap, v, f"{path}.{k}"))
    for name, sub in props.items():
        if name in data:
            res.merge(_schema_validate(sub, data[name], f"{path}.{name}" if path else name))
    for name in s.get("required") or []:
        if name not in data:
            res.add(_Err("required", f"{path}.{name}", _named(f"{path}.{name}", _IN, "is required")))
    return res


def _validate_schema_props(s: Schema, data: Any, path: str) -> _Result:
    main = _Result()
    any_of = s.get("anyOf") or []
    if any_of:
        best: _Result | None = None
        first_ok: _Result | None = None
        for sub in any_of:
            r = _schema_validate(sub, data, path)
            if r.valid:
                best, first_ok = None, r
                break
            if best is None or r.matches > best.matches:
                best = r
        if first_ok is None:
            main.add(_Err("plain", path, f"{go_quote(path)} must validate at least one schema (anyOf)"))
        main.merge(best if best is not None else first_ok)
    one_of = s.get("oneOf") or []
    if one_of:
        best, first_ok, ok = None, None, 0
        for sub in one_of:
            r = _schema_validate(sub, data, path)
            if r.valid:
                ok += 1
                best = None
                first_ok = first_ok or r
                continue
            if ok == 0 and (best is None or r.matches > best.matches):
                best = r
        if ok != 1:
            extra = "Found none valid" if ok == 0 else f"Found {ok} valid alternatives"
            main.add(_Err("plain", path,
                          f"{go_quote(path)} must validate one and only one schema (oneOf). {extra}"))
            main.merge(best)
        else:
            main.merge(first_ok)
    all_of = s.get("allOf") or []
    if all_of:
        ok = 0
        for sub in all_of:
            r = _schema_validate(sub, data, path)
            ok += r.valid
            main.merge(r)
        if ok != len(all_of):
            extra = ". None validated" if ok == 0 else ""
            main.add(_Err("plain", path, f"{go_quote(path)} must validate all the schemas (allOf){extra}"))
    not_ = s.get("not")
    if isinstance(not_, dict) and _schema_validate(not_, data, path).valid:
        main.add(_Err("plain", path, f"{go_quote(path)} must not validate the schema (not)"))
    main.matches += 1
    return main


def _schema_validate(s: Schema | None, data: Any, path: str) -> _Result:
    """SchemaValidator.Validate: every applicable validator runs; none short-circuits."""
    res = _Result()
    if s is None:
        return res
    types = _openapi_types(s)
    fmt = _effective_format(s, types)
    if data is None:
        res.merge(_validate_type(s, types, fmt, data, path))
        res.merge(_validate_enum(s, data, path))
        return res
    steps: list[Callable[[], _Result | None]] = []
    if types or fmt:
        steps.append(lambda: _validate_type(s, types, fmt, data, path))
    steps.append(lambda: _validate_schema_props(s, data, path))
    if isinstance(data, str):
        steps.append(lambda: _validate_string(s, data, path))
        if format_check(fmt) is not None:
            steps.append(lambda: _validate_format(fmt, data, path))
    if _is_number(data):
        steps.append(lambda: _validate_number(s, types, fmt, data, path))
    if isinstance(data, list):
        steps.append(lambda: _validate_slice(s, data, path))
    steps.append(lambda: _validate_enum(s, data, path))
    if isinstance(data, dict):
        steps.append(lambda: _validate_object(s, data, path))
    for step in steps:
        res.merge(step())
        res.matches += 1
    res.matches += 1
    return res


def _to_causes(res: _Result, prefix: str) -> list[Cause]:
    """apiextensions' kubeOpenAPIResultToFieldErrors."""
    causes: list[Cause] = []
    root = prefix or "<nil>"  # a nil *field.Path prints as "<nil>"
    for e in res.errors:
        if e.code == "plain":
            causes.append(invalid_cause(root, "", e.message))
            continue
        p = child(prefix, e.name.removeprefix(".")) if e.name and e.name != "." else root
        if e.code == "required":
            causes.append(required_cause(p))
        elif e.code == "enum":
            allowed = [v if isinstance(v, str) else json.dumps(v, separators=(",", ":")) for v in e.values or []]
            causes.append(not_supported_cause(p, e.value, allowed))
        elif e.code == "too_long":
            causes.append(too_long_cause(p, int(e.valid)))
        elif e.code in ("max_items", "max_props"):
            causes.append(too_many_cause(p, int(e.value), int(e.valid)))
        elif e.code == "type":
            causes.append(_type_invalid(p, "" if e.value is None else e.value, e.message))
        else:
            causes.append(invalid(p, "" if e.value is None else e.value, e.message))
    return causes


def openapi_causes(s: Schema | None, data: Any, prefix: str) -> list[Cause]:
    """kube-openapi validation of `data` against `s`, as field causes under `prefix`."""
    return _to_causes(_schema_validate(s, data, ""), prefix)


def typed_key(v: Any) -> Any:
    """A hashable identity of a JSON value in which 1, 1.0 and true differ, as in Go."""
    if isinstance(v, (dict, list)):
        return ("json", json.dumps(v, sort_keys=True, separators=(",", ":")))
    return (type(v).__name__, v)


# ---------------------------------------------------------------------------------------------
# Embedded resources (objectmeta.Validate) and list types (listtype.ValidateListSetsAndMaps)

_GO_JSON_TYPE = {bool: "bool", str: "string", int: "number", float: "number", list: "array", dict: "object"}
_META_STRING_FIELDS = ("name", "generateName", "namespace", "selfLink", "uid", "resourceVersion")


def _go_json_type(v: Any) -> str:
    return _GO_JSON_TYPE.get(type(v), "object")


def object_meta_error(meta: Any) -> str | None:
    """The json.Unmarshal error decoding `meta` into an ObjectMeta, if any (common cases)."""
    if meta is None:
        return None
    if not isinstance(meta, dict):
        return f"json: cannot unmarshal {_go_json_type(meta)} into Go value of type v1.ObjectMeta"
    for f in _META_STRING_FIELDS:
        v = meta.get(f)
        if v is not None and not isinstance(v, str):
            return f"json: cannot unmarshal {_go_json_type(v)} into Go struct field ObjectMeta.{f} of type string"
    for f in ("labels", "annotations"):
        v = meta.get(f)
        if v is None:
            continue
        if not isinstance(v, dict):
            return (f"json: cannot unmarshal {_go_json_type(v)} into Go struct field ObjectMeta.{f} "
                    "of type map[string]string")
        for item in v.values():
            if item is not None and not isinstance(item, str):
                return (f"json: cannot unmarshal {_go_json_type(item)} into Go struct field ObjectMeta.{f} "
                        "of type string")
    v = meta.get("generation")
    if v is not None and (not _is_number(v) or v != int(v)):
        return f"json: cannot unmarshal {_go_json_type(v)} into Go struct field ObjectMeta.generation of type int64"
    return None


def _parse_group_version_error(gv: str) -> str | None:
    if gv in ("", "/") or gv.count("/") <= 1:
        return None
    return f"unexpected GroupVersion string: {gv}"


def _kind_error(kind: str) -> str | None:
    errs = is_dns1035_label(kind.lower())
    return "may have mixed case, but should otherwise match: " + ",".join(errs) if errs else None


def _validate_embedded(x: dict[str, Any], path: str) -> list[Cause]:
    causes = [required_cause(child(path, f)) for f in ("apiVersion", "kind") if f not in x]
    for f, check in (("apiVersion", _parse_group_version_error), ("kind", _kind_error)):
        if f not in x:
            continue
        p, v = child(path, f), x[f]
        if not isinstance(v, str):
            causes.append(invalid(p, v, "must be a string"))
        elif not v:
            causes.append(invalid_cause(p, v, "must not be empty"))
        elif (err := check(v)) is not None:
            causes.append(invalid_cause(p, v, err))
    if "metadata" in x:
        p, meta = child(path, "metadata"), x["metadata"]
        err = object_meta_error(meta)
        if err is not None:
            causes.append(invalid(p, meta, err))
        else:
            meta = dict(meta or {})
            meta["name"] = meta.get("name") or "fakename"  # upstream sets one to avoid an error
            causes.extend(validate_object_meta(meta, bool(meta.get("namespace")), p, validate_path_segment_name))
    return causes


def specified_children(x: Any, s: Schema | None, path: str) -> Iterator[tuple[Any, Schema | None, str]]:
    """The values in `x` that `s` specifies, each with its schema and field path.

    Fields by properties, else additionalProperties (``a.b``, ``a[key]``); array items (``a[0]``).
    """
    if isinstance(x, dict):
        props = props_of(s)
        for k, v in x.items():
            if k in props:
                yield v, props[k], child(path, k)
            elif has_additional(s):
                yield v, additional_of(s), key(path, k)
    elif isinstance(x, list):
        items = items_of(s)
        for i, v in enumerate(x):
            yield v, items, index(path, i)


def walk_embedded(x: Any, s: Schema | None, path: str) -> list[Cause]:
    if s is None:
        return []
    causes: list[Cause] = []
    if isinstance(x, dict) and flag(s, EMBEDDED):
        causes.extend(_validate_embedded(x, path))
    for v, sub, p in specified_children(x, s, path):
        causes.extend(walk_embedded(v, sub, p))
    return causes


def _walk_list_types(x: Any, s: Schema | None, path: str) -> list[Cause]:
    if s is None:
        return []
    causes: list[Cause] = []
    if isinstance(x, list):
        list_type = s.get(LIST_TYPE)
        if list_type == "set":
            causes.extend(duplicate_cause(index(path, i), x[i]) for i in _non_unique(x))
        elif list_type == "map":
            causes.extend(_validate_list_map(x, s.get(LIST_MAP_KEYS) or [], path))
    for v, sub, p in specified_children(x, s, path):
        causes.extend(_walk_list_types(v, sub, p))
    return causes


def _non_unique(values: list[Any]) -> list[int]:
    return _second_appearances([typed_key(v) for v in values])


def _second_appearances(keys: list[Any]) -> list[int]:
    """Indices where a key shows up for the second time (later repeats are not reported)."""
    seen: dict[Any, int] = {}
    out = []
    for i, k in enumerate(keys):
        seen[k] = seen.get(k, 0) + 1
        if seen[k] == 2:
            out.append(i)
    return out


_UNSPECIFIED = object()  # a missing map key, distinct from any value (also from null)


def _validate_list_map(x: list[Any], map_keys: list[str], path: str) -> list[Cause]:
    for i, item in enumerate(x):
        if item is not None and not isinstance(item, dict):
            return [invalid(index(path, i), item, "must be an object for an array of list-type map")]
    if len(x) <= 1:
        return []
    if len(map_keys) == 1:
        k = map_keys[0]
        keys = [item[k] if isinstance(item, dict) and k in item else _UNSPECIFIED for item in x]
        dup = _second_appearances([kv if kv is _UNSPECIFIED else typed_key(kv) for kv in keys])
        return [duplicate_cause(index(path, i), {} if keys[i] is _UNSPECIFIED else {k: keys[i]}) for i in dup]
    composite = [{k: item[k] for k in sorted(map_keys) if k in item} if isinstance(item, dict) else {}
                 for item in x]
    return [duplicate_cause(index(path, i), composite[i]) for i in _non_unique(composite)]


# ---------------------------------------------------------------------------------------------
# validate(): a custom resource (or any value) against its version's schema.

_BLOCKING_REASONS = frozenset({"FieldValueNotSupported", "FieldValueRequired", "FieldValueTooLong",
                               "FieldValueTooMany", "FieldValueTypeInvalid"})


def validate(schema: Schema | None, obj: Any, path: str = "", *, old: Any = None,
             rules: bool | None = None) -> list[Cause]:
    """Validate `obj` as upstream's custom resource strategy does, returning causes.

    kube-openapi schema validation (messages like ``spec.replicas in body must be of type
    integer: "string"``), embedded resources' apiVersion/kind/metadata, list-type set/map
    uniqueness, then — only if none of those errors blocks them — ``x-kubernetes-validations``
    rules (with ``oldSelf`` bound from `old` for transition rules). `path` prefixes every field
    path (e.g. "status" when validating only the status). At the root (`path` ""), apiVersion
    and kind must be strings; the root's metadata is the caller's to validate as ObjectMeta.
    """
    causes: list[Cause] = []
    if not path and isinstance(obj, dict):
        for f in ("apiVersion", "kind"):
            if f in obj and not isinstance(obj[f], str):
                causes.append(invalid(f, obj[f], "must be a string"))
    if schema is None:
        return causes
    causes.extend(openapi_causes(schema, obj, path))
    causes.extend(walk_embedded(obj, schema, path))
    causes.extend(_walk_list_types(obj, schema, path))
    if has_rules(schema) if rules is None else rules:  # `rules`: the caller knows (a schema walk per write)
        if any(c["reason"] in _BLOCKING_REASONS for c in causes):
            causes.append(invalid_cause("<nil>", None, "some validation rules were not checked because the "
                                        "object was invalid; correct the existing errors to complete validation"))
        else:
            from apiserver.crd.cel import validate_rules  # cel.py imports this module

            causes.extend(validate_rules(schema, obj, old, path, is_resource_root=not path))
    return causes


def has_rules(s: Any) -> bool:
    if not isinstance(s, dict):
        return False
    if s.get(VALIDATIONS):
        return True
    subs: list[Any] = [s.get("items"), s.get("additionalProperties"), *(s.get("allOf") or [])]
    subs.extend(props_of(s).values())
    return any(has_rules(x) for x in subs)
