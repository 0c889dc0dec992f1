"""validate_schema_definition: what CRD validation says about one version's openAPIV3Schema.

Upstream's pkg/apis/apiextensions/validation (per-keyword checks), pkg/apiserver/schema's
validation.go and complete.go (structural invariants) and defaulting/validation.go (defaults),
with their messages and field paths. Rules of x-kubernetes-validations are compiled in `cel`.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field, replace
from typing import Any

from apimachinery.validation import (
    child,
    forbidden_cause,
    index,
    invalid_cause,
    key,
    not_supported_cause,
    required_cause,
)
from apiserver.crd.cel import rule_compile_errors, rule_field_path, rules_of, validate_rules
from apiserver.crd.celcost import STATIC_CRD_LIMIT, TotalCost, cost_error_message, element_bound
from apiserver.crd.schema import (
    EMBEDDED,
    INT_OR_STRING,
    LIST_MAP_KEYS,
    LIST_TYPE,
    MAP_TYPE,
    META_FIELDS,
    PRESERVE,
    VALIDATIONS,
    Cause,
    Schema,
    additional_of,
    as_root,
    compile_pattern,
    default_of,
    flag,
    has_additional,
    has_default,
    has_rules,
    invalid,
    items_of,
    object_meta_error,
    openapi_causes,
    props_of,
    prune_unknown,
    regex_error,
    specified_children,
    type_of,
    walk_embedded,
)

_OPENAPI_V3_TYPES = ["array", "boolean", "integer", "number", "object", "string"]
_SUPPORTED_RULE_REASONS = ["FieldValueDuplicate", "FieldValueForbidden", "FieldValueInvalid",
                           "FieldValueRequired"]
# JSONSchemaProps' fields in Go order (JSON name, Go name) — for the status-subresource root rule.
_GO_FIELDS = [
    ("id", "ID"), ("$schema", "Schema"), ("$ref", "Ref"), ("description", "Description"), ("type", "Type"),
    ("nullable", "Nullable"), ("format", "Format"), ("title", "Title"), ("default", "Default"),
    ("maximum", "Maximum"), ("exclusiveMaximum", "ExclusiveMaximum"), ("minimum", "Minimum"),
    ("exclusiveMinimum", "ExclusiveMinimum"), ("maxLength", "MaxLength"), ("minLength", "MinLength"),
    ("pattern", "Pattern"), ("maxItems", "MaxItems"), ("minItems", "MinItems"), ("uniqueItems", "UniqueItems"),
    ("multipleOf", "MultipleOf"), ("enum", "Enum"), ("maxProperties", "MaxProperties"),
    ("minProperties", "MinProperties"), ("required", "Required"), ("items", "Items"), ("allOf", "AllOf"),
    ("oneOf", "OneOf"), ("anyOf", "AnyOf"), ("not", "Not"), ("properties", "Properties"),
    ("additionalProperties", "AdditionalProperties"), ("patternProperties", "PatternProperties"),
    ("dependencies", "Dependencies"), ("additionalItems", "AdditionalItems"), ("definitions", "Definitions"),
    ("externalDocs", "ExternalDocs"), ("example", "Example"), (PRESERVE, "XPreserveUnknownFields"),
    (EMBEDDED, "XEmbeddedResource"), (INT_OR_STRING, "XIntOrString"), (LIST_MAP_KEYS, "XListMapKeys"),
    (LIST_TYPE, "XListType"), (MAP_TYPE, "XMapType"), (VALIDATIONS, "XValidations"),
]
_ALLOWED_AT_STATUS_ROOT = ["Description", "Type", "Format", "Title", "Maximum", "ExclusiveMaximum", "Minimum",
                           "ExclusiveMinimum", "MaxLength", "MinLength", "Pattern", "MaxItems", "MinItems",
                           "UniqueItems", "MultipleOf", "Required", "Items", "Properties", "ExternalDocs",
                           "Example", "XPreserveUnknownFields", "XValidations"]
# Go value-typed fields: their zero value ("" / false) counts as unset. Pointers, slices and
# maps count as set once present.
_GO_VALUE_FIELDS = frozenset({"id", "$schema", "description", "type", "nullable", "format", "title",
                              "exclusiveMaximum", "exclusiveMinimum", "pattern", "uniqueItems", EMBEDDED,
                              INT_OR_STRING})


def _is_set(k: str, v: Any) -> bool:
    if v is None:
        return False
    if k in _GO_VALUE_FIELDS:
        return bool(v)
    return not (isinstance(v, (list, dict)) and not v)


#: JSONSchemaProps fields that hold schemas: a map of them, a list of them, one or a bool, one.
_SCHEMA_FIELDS = (("properties", dict), ("patternProperties", dict), ("definitions", dict),
                  ("dependencies", dict), ("allOf", list), ("anyOf", list), ("oneOf", list),
                  ("additionalProperties", bool), ("additionalItems", bool), ("not", None), ("items", list))


def _shape_errors(schema: Any, path: str) -> list[Cause]:
    """JSON of the wrong shape where a schema (or a collection of them) belongs: what upstream's
    typed decoding would refuse. The free-form union fields (items, additionalProperties, …) reach
    us unchecked, so the rest of this module can rely on the shapes."""
    if not isinstance(schema, dict):
        return [invalid_cause(path, schema, "must be an object")]
    causes: list[Cause] = []
    for f, holds in _SCHEMA_FIELDS:
        v = schema.get(f)
        if v is None or (holds is bool and isinstance(v, bool)):
            continue
        if holds is dict:
            if not isinstance(v, dict):
                causes.append(invalid_cause(child(path, f), v, "must be an object"))
                continue
            # a dependency may also be a list of property names
            subs = [(f"{path}.{f}[{k}]", sub) for k, sub in v.items() if not (f == "dependencies" and isinstance(sub, list))]
        elif holds is list and (isinstance(v, list) or f != "items"):  # items: one schema or a list of them
            if not isinstance(v, list):
                causes.append(invalid_cause(child(path, f), v, "must be an array"))
                continue
            subs = [(f"{path}.{f}[{i}]", sub) for i, sub in enumerate(v)]
        else:
            subs = [(child(path, f), v)]
        for sub_path, sub in subs:
            causes += _shape_errors(sub, sub_path)
    return causes


def validate_schema_definition(schema: Schema | None, path: str, *, has_status: bool = False,
                               has_scale: bool = False) -> list[Cause]:
    """CRD validation of one version's ``schema.openAPIV3Schema`` at `path`.

    `has_status`: the version has the status subresource (restricts the root's keywords).
    `has_scale` is accepted for symmetry; upstream checks the scale paths apart from the schema.
    """
    del has_scale
    if schema is None:
        return [required_cause(path)]
    shape = _shape_errors(schema, path)
    if shape:
        return shape
    causes: list[Cause] = []
    if has_status:
        causes.extend(_status_root_errors(schema, path))
    if schema.get("nullable"):
        causes.append(forbidden_cause(child(path, "nullable"), "nullable cannot be true at the root"))
    init_error = _unsupported_field_error(schema)
    structural_ok = False
    if init_error is None:
        structural = _validate_structural(schema, path)
        if structural:
            causes.extend(structural)
        else:
            defaults = _validate_defaults(schema, path)
            causes.extend(defaults)
            structural_ok = not defaults
    total = TotalCost()
    schema_errs, cel_errs = _validate_openapi(schema, path, _Ctx(total=total), is_root=True, cel=structural_ok)
    causes.extend(schema_errs + cel_errs)
    if structural_ok and total.total > STATIC_CRD_LIMIT:
        for _, rule_path in total.most_expensive:
            causes.append(forbidden_cause(rule_path, "contributed to estimated rule cost total exceeding cost limit "
                                          "for entire OpenAPIv3 schema"))
        causes.append(forbidden_cause(path, cost_error_message(
            "x-kubernetes-validations estimated rule cost total for entire OpenAPIv3 schema", total.total,
            STATIC_CRD_LIMIT)))
    if not causes and init_error is not None:
        # NewStructural's error overlaps the checks above: shown only when they found nothing.
        causes.append(invalid_cause(path, "", init_error))
    return causes


def _status_root_errors(schema: Schema, path: str) -> list[Cause]:
    for json_name, go_name in _GO_FIELDS:
        if json_name not in schema or not _is_set(json_name, schema[json_name]):
            continue
        if go_name == "Type":
            if schema["type"] != "object":
                return [invalid_cause(child(path, "type"), schema["type"], 'only "object" is allowed as the type '
                                      "at the root of the schema if the status subresource is enabled")]
            continue
        if go_name not in _ALLOWED_AT_STATUS_ROOT:
            allowed = "[" + " ".join(_ALLOWED_AT_STATUS_ROOT) + "]"
            return [invalid_cause(path, schema, f"only {allowed} fields are allowed at the root of the schema "
                                                "if the status subresource is enabled")]
    return []


def _unsupported_field_error(s: Any) -> str | None:
    """NewStructural's conversion error, if the schema uses what structural schemas cannot hold."""
    if not isinstance(s, dict):
        return None
    checks = [("id", "id"), ("$schema", "schema"), ("$ref", "$ref"), ("patternProperties", "patternProperties"),
              ("dependencies", "dependencies"), ("definitions", "definitions")]
    for k, name in checks:
        if s.get(k):
            return f"OpenAPIV3Schema '{name}' is not supported"
    if s.get("additionalItems") is not None:
        return "OpenAPIV3Schema 'additionalItems' is not supported"
    if isinstance(s.get("items"), list) and s["items"]:
        return "OpenAPIV3Schema 'items' must be a schema, but is an array"
    if s.get(PRESERVE) is False:
        return "internal error: 'x-kubernetes-preserve-unknown-fields' must be true or undefined"
    subs: list[Any] = [s.get("items"), s.get("not"), s.get("additionalProperties")]
    for kw in ("allOf", "anyOf", "oneOf"):
        subs.extend(s.get(kw) or [])
    subs.extend(props_of(s).values())
    for sub in subs:
        err = _unsupported_field_error(sub)
        if err is not None:
            return err
    return None


# --- structural invariants (schema/validation.go, schema/complete.go) ---

_ROOT, _ITEM, _FIELD = "root", "item", "field"
_INT_OR_STRING_ANY_OF = [{"type": "integer"}, {"type": "string"}]


def _validate_structural(schema: Schema, path: str) -> list[Cause]:
    causes = _structural_invariants(schema, _ROOT, path) + _structural_completeness(schema, path)
    return sorted(causes, key=lambda c: f"{c['field']}: {c['message']}")  # upstream sorts by Error()


def _prop_path(path: str, name: str) -> str:
    return key(child(path, "properties"), name)


def _structural_invariants(s: Schema | None, lvl: str, path: str) -> list[Cause]:
    if s is None:
        return []
    causes: list[Cause] = []
    t = type_of(s)
    if t == "array" and items_of(s) is None:
        causes.append(required_cause(child(path, "items"), "must be specified"))
    causes.extend(_structural_invariants(items_of(s), _ITEM, child(path, "items")))
    props = props_of(s)
    for k, v in props.items():
        causes.extend(_structural_invariants(v, _FIELD, _prop_path(path, k)))
    if has_additional(s):
        if lvl == _ROOT:
            causes.append(forbidden_cause(child(path, "additionalProperties"), "must not be used at the root"))
        causes.extend(_structural_invariants(additional_of(s), _FIELD, child(path, "additionalProperties")))
    int_or_string, embedded, preserve = flag(s, INT_OR_STRING), flag(s, EMBEDDED), flag(s, PRESERVE)
    if int_or_string and preserve:
        causes.append(invalid_cause(child(path, PRESERVE), True, "must be false if x-kubernetes-int-or-string is true"))
    if int_or_string and embedded:
        causes.append(invalid_cause(child(path, EMBEDDED), True, "must be false if x-kubernetes-int-or-string is true"))
    skip_any_of = s.get("anyOf") == _INT_OR_STRING_ANY_OF
    all_of = s.get("allOf") or []
    skip_first_all_of_any_of = bool(all_of) and isinstance(all_of[0], dict) and (
        all_of[0].get("anyOf") == _INT_OR_STRING_ANY_OF)
    causes.extend(_value_validation(s, skip_any_of, skip_first_all_of_any_of, path))
    check_metadata = lvl == _ROOT or embedded
    if embedded and t != "object":
        detail = "must be object if x-kubernetes-embedded-resource is true"
        causes.append(invalid_cause(child(path, "type"), t, detail) if t else required_cause(child(path, "type"), detail))
    elif not t and not int_or_string and not preserve:
        where = {_ROOT: "at the root", _ITEM: "for specified array items", _FIELD: "for specified object fields"}
        causes.append(required_cause(child(path, "type"), f"must not be empty {where[lvl]}"))
    if embedded and has_additional(s):
        causes.append(forbidden_cause(child(path, "additionalProperties"),
                                      "must not be used if x-kubernetes-embedded-resource is set"))
    if lvl == _ROOT and t and t != "object":
        causes.append(invalid_cause(child(path, "type"), t, "must be object at the root"))
    for f in ("kind", "apiVersion"):
        if f in props and check_metadata and type_of(props[f]) != "string":
            causes.append(invalid_cause(child(_prop_path(path, f), "type"), type_of(props[f]), "must be string"))
    if "metadata" in props:
        causes.extend(_structural_metadata(props["metadata"], check_metadata, lvl, _prop_path(path, "metadata")))
    if embedded and not preserve and not props:
        causes.append(required_cause(child(path, "properties"), "must not be empty if x-kubernetes-embedded-resource "
                                     "is true without x-kubernetes-preserve-unknown-fields"))
    return causes


def _structural_metadata(s: Schema, check_metadata: bool, lvl: str, path: str) -> list[Cause]:
    causes: list[Cause] = []
    if check_metadata and type_of(s) != "object":
        causes.append(invalid_cause(child(path, "type"), type_of(s), "must be object"))
    if lvl == _ROOT:
        # Only name and generateName may be restricted; type and default are checked elsewhere.
        names = set(props_of(s))
        rest = {k: v for k, v in s.items() if k not in ("type", "default")}
        if names and names <= {"name", "generateName"}:
            rest.pop("properties", None)
        if any(_is_set(k, v) for k, v in rest.items()):
            causes.append(forbidden_cause(path, "must not specify anything other than name and generateName, "
                                                "but metadata is implicitly specified"))
    return causes


_NESTED_FORBIDDEN = [
    ("type", "must be empty to be structural"), ("default", "must be undefined to be structural"),
    ("title", "must be empty to be structural"), ("description", "must be empty to be structural"),
    ("nullable", "must be false to be structural"), (PRESERVE, "must be false to be structural"),
    (EMBEDDED, "must be false to be structural"), (INT_OR_STRING, "must be false to be structural"),
    (LIST_MAP_KEYS, "must be empty to be structural"), (LIST_TYPE, "must be undefined to be structural"),
    (MAP_TYPE, "must be undefined to be structural"), (VALIDATIONS, "must be empty to be structural"),
]


def _value_validation(v: Schema, skip_any_of: bool, skip_first_all_of_any_of: bool, path: str) -> list[Cause]:
    causes: list[Cause] = []
    if not skip_any_of:
        for i, sub in enumerate(v.get("anyOf") or []):
            causes.extend(_nested_value_validation(sub, False, index(child(path, "anyOf"), i)))
    for i, sub in enumerate(v.get("allOf") or []):
        causes.extend(_nested_value_validation(sub, skip_first_all_of_any_of and i == 0,
                                               index(child(path, "allOf"), i)))
    for i, sub in enumerate(v.get("oneOf") or []):
        causes.extend(_nested_value_validation(sub, False, index(child(path, "oneOf"), i)))
    if isinstance(v.get("not"), dict):
        causes.extend(_nested_value_validation(v["not"], False, child(path, "not")))
    pattern = v.get("pattern")
    if pattern:
        try:
            compile_pattern(pattern)
        except re.error as e:
            causes.append(invalid_cause(child(path, "pattern"), pattern,
                                        f"must be a valid regular expression, but isn't: {regex_error(e)}"))
    return causes


def _nested_value_validation(v: Any, skip_any_of: bool, path: str) -> list[Cause]:
    if not isinstance(v, dict):
        return []
    causes = _value_validation(v, skip_any_of, False, path)
    if isinstance(v.get("items"), dict):
        causes.extend(_nested_value_validation(v["items"], False, child(path, "items")))
    for k, sub in props_of(v).items():
        causes.extend(_nested_value_validation(sub, False, _prop_path(path, k)))
    ap = v.get("additionalProperties")
    if ap is True or isinstance(ap, dict):
        causes.append(forbidden_cause(child(path, "additionalProperties"), "must be undefined to be structural"))
    for kw, detail in _NESTED_FORBIDDEN:
        val = v.get(kw)
        if val is not None and val is not False and val != "" and val != []:
            causes.append(forbidden_cause(child(path, kw), detail))
    if "metadata" in props_of(v):
        causes.append(forbidden_cause(_prop_path(path, "metadata"), "must not be specified in a nested context"))
    return causes


def _structural_completeness(s: Schema, path: str) -> list[Cause]:
    return _value_validation_completeness(s, s, path, path)


def _value_validation_completeness(v: Schema, s: Schema | None, spath: str, vpath: str) -> list[Cause]:
    causes: list[Cause] = []
    if isinstance(v.get("not"), dict):
        causes.extend(_nested_completeness(v["not"], s, spath, child(vpath, "not")))
    for kw in ("allOf", "anyOf", "oneOf"):
        for i, sub in enumerate(v.get(kw) or []):
            if isinstance(sub, dict):
                causes.extend(_nested_completeness(sub, s, spath, index(child(vpath, kw), i)))
    return causes


def _nested_completeness(v: Schema | None, s: Schema | None, spath: str, vpath: str) -> list[Cause]:
    if v is None:
        return []
    if s is None:
        return [required_cause(spath, f"because it is defined in {vpath}")]
    causes = _value_validation_completeness(v, s, spath, vpath)
    v_items = v.get("items") if isinstance(v.get("items"), dict) else None
    causes.extend(_nested_completeness(v_items, items_of(s), child(spath, "items"), child(vpath, "items")))
    s_props = props_of(s)
    for k, sub in props_of(v).items():
        if k not in s_props:
            causes.append(required_cause(_prop_path(spath, k), f"because it is defined in {_prop_path(vpath, k)}"))
        else:
            causes.extend(_nested_completeness(sub, s_props[k], _prop_path(spath, k), _prop_path(vpath, k)))
    return causes


# --- defaults (defaulting/validation.go) ---


def _validate_defaults(schema: Schema, path: str) -> list[Cause]:
    root = as_root(schema)
    return _defaults_walk(root, path, root, inside_meta=False)


def _defaults_walk(s: Schema | None, path: str, root: Schema, inside_meta: bool) -> list[Cause]:
    if s is None:
        return []
    embedded = flag(s, EMBEDDED)
    if embedded:
        inside_meta, root = False, s
    causes: list[Cause] = []
    if has_default(s):
        causes.extend(_default_errors(s, path, is_resource_root=s is root, inside_meta=inside_meta))
    # additionalProperties is not followed: defaults are not allowed there.
    causes.extend(_defaults_walk(items_of(s), child(path, "items"), root, inside_meta))
    for k, sub in props_of(s).items():
        sub_inside = inside_meta or (embedded and k in META_FIELDS)
        causes.extend(_defaults_walk(sub, _prop_path(path, k), root, sub_inside))
    return causes


def _default_errors(s: Schema, path: str, *, is_resource_root: bool, inside_meta: bool) -> list[Cause]:
    value = default_of(s)
    dpath = child(path, "default")
    if inside_meta:
        # Upstream wraps the default into a surrounding object and checks it as metadata;
        # here it is checked against its own schema only.
        return openapi_causes(s, value, dpath)
    causes: list[Cause] = []
    embedded = flag(s, EMBEDDED)
    pruned = copy.deepcopy(value)
    prune_unknown(pruned, as_root(s) if embedded else s, "", [])
    if pruned != value:
        causes.append(invalid_cause(dpath, value, "must not have unknown fields"))
    coerce = _coerce_error(value, s, dpath, embedded)
    if coerce is not None:
        causes.append(coerce)
    elif errs := walk_embedded(value, s, dpath):
        causes.extend(errs)
    elif errs := openapi_causes(s, value, dpath):
        causes.extend(errs)
    elif has_rules(s):
        causes.extend(validate_rules(s, value, value, dpath, is_resource_root=is_resource_root))
    return causes


def _coerce_error(x: Any, s: Schema | None, path: str, embedded: bool) -> Cause | None:
    """objectmeta.Coerce without dropping: the first apiVersion/kind/metadata that cannot decode."""
    if s is None:
        return None
    if isinstance(x, dict) and embedded:
        for f in ("apiVersion", "kind"):
            if f in x and not isinstance(x[f], str):
                return invalid(child(path, f), x[f], "must be a string")
        err = object_meta_error(x.get("metadata"))
        if err is not None:
            return invalid(child(path, "metadata"), x["metadata"], err)
    for v, sub, p in specified_children(x, s, path):
        err_cause = _coerce_error(v, sub, p, flag(sub, EMBEDDED))
        if err_cause is not None:
            return err_cause
    return None


# --- per-keyword checks (ValidateCustomResourceDefinitionOpenAPISchema) ---


@dataclass(frozen=True)
class _Ctx:
    """specStandardValidatorV3's state while descending the schema."""

    allow_defaults: bool = True
    defaults_reason: str = ""
    inside_meta: bool = False
    uncorrelatable_at: str | None = None  # where oldSelf stops being usable
    # how many values this node may have in one object (None: unbounded), and the rules' summed cost
    cardinality: int | None = 1
    total: TotalCost | None = field(default=None, compare=False)

    def forbid_defaults(self, reason: str) -> _Ctx:
        return replace(self, allow_defaults=False, defaults_reason=reason)

    def forbid_old_self(self, path: str) -> _Ctx:
        # keep the highest path that made oldSelf unusable
        return self if self.uncorrelatable_at is not None else replace(self, uncorrelatable_at=path)


_NEWLINES = re.compile(r"[\n\r]+")


def _standard_errors(s: Schema, path: str, ctx: _Ctx) -> list[Cause]:
    causes: list[Cause] = []
    t = type_of(s)
    if t and t not in _OPENAPI_V3_TYPES:
        causes.append(not_supported_cause(child(path, "type"), t, _OPENAPI_V3_TYPES))
    if "default" in s and s["default"] is not None and not ctx.allow_defaults:
        detail = "must not be set" + (f" {ctx.defaults_reason}" if ctx.defaults_reason else "")
        causes.append(forbidden_cause(child(path, "default"), detail))
    if s.get("id"):
        causes.append(forbidden_cause(child(path, "id"), "id is not supported"))
    if s.get("additionalItems") is not None:
        causes.append(forbidden_cause(child(path, "additionalItems"), "additionalItems is not supported"))
    if s.get("patternProperties"):
        causes.append(forbidden_cause(child(path, "patternProperties"), "patternProperties is not supported"))
    if s.get("definitions"):
        causes.append(forbidden_cause(child(path, "definitions"), "definitions is not supported"))
    if s.get("dependencies") is not None:
        causes.append(forbidden_cause(child(path, "dependencies"), "dependencies is not supported"))
    if s.get("$ref") is not None:
        causes.append(forbidden_cause(child(path, "$ref"), "$ref is not supported"))
    if t == "null":
        causes.append(forbidden_cause(child(path, "type"), "type cannot be set to null, use nullable as an alternative"))
    if isinstance(s.get("items"), list) and s["items"]:
        causes.append(forbidden_cause(child(path, "items"), "items must be a schema object and not an array"))
    if ctx.inside_meta and flag(s, EMBEDDED):
        causes.append(forbidden_cause(child(path, EMBEDDED), "must not be used inside of resource meta"))
    return causes


def _validate_openapi(s: Any, path: str, ctx: _Ctx, *, is_root: bool, cel: bool) -> tuple[list[Cause], list[Cause]]:
    """Returns (schema errors, CEL errors); rules are compiled only where the schema is clean."""
    if not isinstance(s, dict):
        return [], []
    errs = _standard_errors(s, path, ctx)
    cel_errs: list[Cause] = []

    bound = element_bound(s)
    below = None if ctx.cardinality is None or bound is None else ctx.cardinality * bound

    def sub(x: Any, p: str, c: _Ctx, with_cel: bool = False) -> None:
        e, ce = _validate_openapi(x, p, replace(c, cardinality=below), is_root=False, cel=cel and with_cel)
        errs.extend(e)
        cel_errs.extend(ce)

    if s.get("uniqueItems"):
        errs.append(forbidden_cause(child(path, "uniqueItems"),
                                    "uniqueItems cannot be set to true since the runtime complexity becomes quadratic"))
    props = props_of(s)
    ap = s.get("additionalProperties")
    if ap is not None:
        if props and (ap is False or isinstance(ap, dict)):
            errs.append(forbidden_cause(child(path, "additionalProperties"),
                                        "additionalProperties and properties are mutual exclusive"))
        sub_ctx = ctx.forbid_defaults("inside additionalProperties applying to object metadata") \
            if ctx.inside_meta else ctx
        sub(ap, child(path, "additionalProperties"), sub_ctx, with_cel=True)
    correlatable_map = s.get(MAP_TYPE) in (None, "granular", "atomic")
    for name, prop in props.items():
        sub_ctx = ctx if correlatable_map else ctx.forbid_old_self(path)
        if (is_root or flag(s, EMBEDDED)) and name in META_FIELDS:
            sub_ctx = replace(sub_ctx, inside_meta=True)
            if is_root:
                sub_ctx = sub_ctx.forbid_defaults(f"in top-level {name}")
        sub(prop, _prop_path(path, name), sub_ctx, with_cel=True)
    sub(s.get("not"), child(path, "not"), ctx)
    for kw in ("allOf", "oneOf", "anyOf"):
        for i, x in enumerate(s.get(kw) or []):
            sub(x, index(child(path, kw), i), ctx)
    for name, x in (s.get("definitions") or {}).items():
        sub(x, key(child(path, "definitions"), name), ctx)
    items = s.get("items")
    if items is not None:
        items_ctx = ctx if s.get(LIST_TYPE) == "map" else ctx.forbid_old_self(path)
        if isinstance(items, list):
            for i, x in enumerate(items):
                sub(x, index(child(path, "items"), i), items_ctx, with_cel=True)
        else:
            sub(items, child(path, "items"), items_ctx, with_cel=True)
    for name, x in (s.get("dependencies") or {}).items():
        sub(x, key(child(path, "dependencies"), name), ctx)
    errs.extend(_extension_errors(s, path))
    errs.extend(_rule_errors(s, path))
    if s.get(VALIDATIONS) and not errs and cel:
        cel_errs.extend(rule_compile_errors(s, path, ctx.uncorrelatable_at, is_root=is_root,
                                            cardinality=ctx.cardinality, total=ctx.total))
    return errs, cel_errs


def _extension_errors(s: Schema, path: str) -> list[Cause]:
    causes: list[Cause] = []
    t = type_of(s)
    if s.get(PRESERVE) is False:
        causes.append(invalid_cause(child(path, PRESERVE), False, "must be true or undefined"))
    map_type = s.get(MAP_TYPE)
    if map_type is not None and t != "object":
        detail = "must be object if x-kubernetes-map-type is specified"
        causes.append(invalid_cause(child(path, "type"), t, detail) if t else required_cause(child(path, "type"), detail))
    if map_type is not None and map_type not in ("atomic", "granular"):
        causes.append(not_supported_cause(child(path, MAP_TYPE), map_type, ["atomic", "granular"]))
    list_type = s.get(LIST_TYPE)
    items = s.get("items")
    if list_type is not None and t != "array":
        detail = "must be array if x-kubernetes-list-type is specified"
        causes.append(invalid_cause(child(path, "type"), t, detail) if t else required_cause(child(path, "type"), detail))
    elif list_type == "set" and isinstance(items, dict):
        detail = "must be atomic as item of a list with x-kubernetes-list-type=set"
        if type_of(items) == "array" and items.get(LIST_TYPE) not in (None, "atomic"):
            causes.append(invalid_cause(child(child(path, "items"), LIST_TYPE), items.get(LIST_TYPE), detail))
        elif type_of(items) == "object" and items.get(MAP_TYPE) != "atomic":
            # upstream reports the items' list type as the bad value here
            causes.append(invalid_cause(child(child(path, "items"), MAP_TYPE), items.get(LIST_TYPE), detail))
    if list_type is not None and list_type not in ("atomic", "set", "map"):
        causes.append(not_supported_cause(child(path, LIST_TYPE), list_type, ["atomic", "set", "map"]))
    map_keys = s.get(LIST_MAP_KEYS) or []
    if map_keys:
        detail = "must be map if x-kubernetes-list-map-keys is non-empty"
        if list_type is None:
            causes.append(required_cause(child(path, LIST_TYPE), detail))
        elif list_type != "map":
            causes.append(invalid_cause(child(path, LIST_TYPE), list_type, detail))
    if list_type == "map":
        causes.extend(_list_map_errors(s, path, map_keys))
    if list_type in ("set", "map") and isinstance(items, dict):
        if items.get("nullable"):
            causes.append(forbidden_cause(child(child(path, "items"), "nullable"),
                                          f"cannot be nullable when x-kubernetes-list-type is {list_type}"))
        if list_type == "map":
            required = set(items.get("required") or [])
            item_props = props_of(items)
            for k in map_keys:
                if k not in item_props:
                    continue
                kp = _prop_path(child(path, "items"), k)
                if k not in required and not has_default(item_props[k]):
                    causes.append(required_cause(child(kp, "default"), "this property is in x-kubernetes-list-map-keys, "
                                                 "so it must have a default or be a required property"))
                if item_props[k].get("nullable"):
                    causes.append(forbidden_cause(child(kp, "nullable"),
                                                  "this property is in x-kubernetes-list-map-keys, so it cannot be nullable"))
    return causes


def _list_map_errors(s: Schema, path: str, map_keys: list[str]) -> list[Cause]:
    causes: list[Cause] = []
    items = s.get("items")
    if not map_keys:
        causes.append(required_cause(child(path, LIST_MAP_KEYS), "must not be empty if x-kubernetes-list-type is map"))
    if items is None:
        causes.append(required_cause(child(path, "items"), "must have a schema if x-kubernetes-list-type is map"))
    elif not isinstance(items, dict):
        causes.append(invalid_cause(child(path, "items"), items, "must only have a single schema if "
                                    "x-kubernetes-list-type is map"))
    elif type_of(items) != "object":
        causes.append(invalid_cause(child(child(path, "items"), "type"), type_of(items),
                                    "must be object if parent array's x-kubernetes-list-type is map"))
    else:
        seen: set[str] = set()
        item_props = props_of(items)
        for k in map_keys:
            if k in item_props:
                if type_of(item_props[k]) in ("array", "object"):
                    causes.append(invalid_cause(child(_prop_path(child(path, "items"), k), "type"), type_of(items),
                                                "must be a scalar type if parent array's x-kubernetes-list-type is map"))
            else:
                causes.append(invalid_cause(child(path, LIST_MAP_KEYS), map_keys,
                                            "entries must all be names of item properties"))
            if k in seen:
                causes.append(invalid_cause(child(path, LIST_MAP_KEYS), map_keys, "must not contain duplicate entries"))
            seen.add(k)
    return causes


def _rule_errors(s: Schema, path: str) -> list[Cause]:
    causes: list[Cause] = []
    for i, rule in enumerate(rules_of(s)):
        rp = index(child(path, VALIDATIONS), i)
        text, msg = rule.get("rule") or "", rule.get("message") or ""
        msg_expr, field_path = rule.get("messageExpression") or "", rule.get("fieldPath") or ""
        if not text.strip():
            causes.append(required_cause(child(rp, "rule"), "rule is not specified"))
        elif msg and not msg.strip():
            causes.append(invalid_cause(child(rp, "message"), msg, "must be non-empty if specified"))
        elif _NEWLINES.search(msg.strip()):
            causes.append(invalid_cause(child(rp, "message"), msg, "must not contain line breaks"))
        elif _NEWLINES.search(text.strip()) and not msg.strip():
            causes.append(required_cause(child(rp, "message"), "message must be specified if rule contains line breaks"))
        if msg_expr and not msg_expr.strip():
            causes.append(required_cause(child(rp, "messageExpression"), "messageExpression must be non-empty if specified"))
        reason = rule.get("reason")
        if reason is not None and reason not in _SUPPORTED_RULE_REASONS:
            causes.append(not_supported_cause(child(rp, "reason"), reason, _SUPPORTED_RULE_REASONS))
        if field_path and not field_path.strip():
            causes.append(invalid_cause(child(rp, "fieldPath"), field_path, "must be non-empty if specified"))
        if _NEWLINES.search(field_path):
            causes.append(invalid_cause(child(rp, "fieldPath"), field_path, "must not contain line breaks"))
        if field_path and _unsupported_field_error(s) is None and rule_field_path(field_path, s) is None:
            causes.append(invalid_cause(child(rp, "fieldPath"), field_path, "must be a valid path"))
    return causes
