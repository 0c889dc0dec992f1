"""apiserver.crd.schema: pruning, defaulting and validation of values against CRD schemas."""

from __future__ import annotations

from typing import Any

from apiserver.crd.schema import apply_defaults, go_float, prune, type_of, validate


def obj_schema(props: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"type": "object", "properties": props, **extra}


def spec_schema(props: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A root schema whose spec has `props`."""
    return obj_schema({"spec": obj_schema(props, **extra)})


def cause(field: str, message: str, reason: str) -> dict[str, str]:
    return {"field": field, "message": message, "reason": reason}


def fields(causes: list[dict[str, str]]) -> list[str]:
    return [c["field"] for c in causes]



# ---------------------------------------------------------------------------------------------
# prune


def test_prune_keeps_type_and_object_meta_at_root_and_reports_sorted_paths() -> None:
    schema = spec_schema({"a": {"type": "string"}})
    obj = {"apiVersion": "x.io/v1", "kind": "K", "metadata": {"name": "n", "anything": 1},
           "zeta": 1, "spec": {"a": "x", "b": 2}, "alpha": {}}
    assert prune(schema, obj) == ["alpha", "spec.b", "zeta"]
    assert obj == {"apiVersion": "x.io/v1", "kind": "K", "metadata": {"name": "n", "anything": 1},
                   "spec": {"a": "x"}}


def test_prune_arrays_and_additional_properties_paths() -> None:
    schema = spec_schema({
        "list": {"type": "array", "items": obj_schema({"x": {"type": "integer"}})},
        "map": {"type": "object", "additionalProperties": obj_schema({"k": {"type": "string"}})},
    })
    obj = {"spec": {"list": [{"x": 1, "y": 2}, {"y": 3}], "map": {"one": {"k": "v", "q": 1}}}}
    assert prune(schema, obj) == ["spec.list[0].y", "spec.list[1].y", "spec.map.one.q"]
    assert obj == {"spec": {"list": [{"x": 1}, {}], "map": {"one": {"k": "v"}}}}


def test_prune_preserve_unknown_fields_keeps_unknown_but_prunes_specified_children() -> None:
    schema = spec_schema({"free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True,
                                   "properties": {"inner": obj_schema({"z": {"type": "string"}})}}})
    obj = {"spec": {"free": {"anything": {"deep": 1}, "inner": {"z": "a", "drop": 1}}}}
    assert prune(schema, obj) == ["spec.free.inner.drop"]
    assert obj["spec"]["free"] == {"anything": {"deep": 1}, "inner": {"z": "a"}}


def test_prune_embedded_resource_keeps_type_meta_and_cuts_metadata_to_object_meta() -> None:
    schema = spec_schema({
        "emb": {"type": "object", "x-kubernetes-embedded-resource": True,
                "x-kubernetes-preserve-unknown-fields": True},
        "embs": {"type": "object", "additionalProperties": {
            "type": "object", "x-kubernetes-embedded-resource": True, "properties": {"spec": {"type": "object"}}}},
    })
    obj = {"spec": {
        "emb": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "bogus": 1, "labels": {}},
                "spec": {"x": 1}},
        "embs": {"e1": {"apiVersion": "v1", "kind": "X", "metadata": {"weird": 1}, "status": {}}},
    }}
    # Pruning uses "." for map keys, the metadata coercion a field path with "[key]", as upstream.
    assert prune(schema, obj) == ["spec.emb.metadata.bogus", "spec.embs.e1.status", "spec.embs[e1].metadata.weird"]
    assert obj["spec"]["emb"] == {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"x": 1}}
    assert obj["spec"]["embs"]["e1"] == {"apiVersion": "v1", "kind": "X", "metadata": {}}


def test_prune_does_not_touch_scalars_of_the_wrong_type() -> None:
    schema = spec_schema({"o": obj_schema({"a": {"type": "string"}}), "l": {"type": "array", "items": {"type": "string"}}})
    obj = {"spec": {"o": 5, "l": "not-a-list"}}
    assert prune(schema, obj) == []
    assert obj == {"spec": {"o": 5, "l": "not-a-list"}}


def test_prune_not_at_resource_root_drops_type_meta_too() -> None:
    obj = {"apiVersion": "v1", "kind": "K", "metadata": {}, "a": 1, "b": 2}
    # dropped, but (as upstream) never reported at the top level
    assert prune(obj_schema({"a": {"type": "integer"}}), obj, is_resource_root=False) == ["b"]
    assert obj == {"a": 1}


def test_prune_without_schema_keeps_only_type_and_object_meta() -> None:
    obj = {"apiVersion": "v1", "kind": "K", "metadata": {"name": "n"}, "spec": {"a": 1}}
    assert prune(None, obj) == ["spec"]
    assert obj == {"apiVersion": "v1", "kind": "K", "metadata": {"name": "n"}}


# ---------------------------------------------------------------------------------------------
# apply_defaults


def test_defaults_fill_absent_fields_with_deep_copies_recursively() -> None:
    schema = obj_schema({"spec": {
        "type": "object", "default": {},
        "properties": {
            "replicas": {"type": "integer", "default": 1},
            "template": {"type": "object", "default": {"a": {}},
                         "properties": {"a": obj_schema({"b": {"type": "string", "default": "B"}})}},
            "tags": {"type": "array", "items": {"type": "string"}, "default": ["x"]},
        }}})
    obj: dict[str, Any] = {}
    apply_defaults(schema, obj)
    assert obj == {"spec": {"replicas": 1, "template": {"a": {"b": "B"}}, "tags": ["x"]}}
    obj["spec"]["tags"].append("y")
    assert schema["properties"]["spec"]["properties"]["tags"]["default"] == ["x"]


def test_defaults_and_nulls() -> None:
    schema = spec_schema({
        "replicas": {"type": "integer", "default": 1},
        "nullableWithDefault": {"type": "string", "nullable": True, "default": "d"},
        "plain": {"type": "string"},
        "nullable": {"type": "string", "nullable": True},
    })
    obj = {"spec": {"replicas": None, "nullableWithDefault": None, "plain": None, "nullable": None}}
    apply_defaults(schema, obj)
    # non-nullable null: defaulted if it has a default, else dropped; nullable nulls stay.
    assert obj == {"spec": {"replicas": 1, "nullableWithDefault": None, "nullable": None}}


def test_defaults_in_array_items_and_map_values() -> None:
    schema = spec_schema({
        "ports": {"type": "array", "items": obj_schema({"port": {"type": "integer", "default": 80}})},
        "env": {"type": "object", "additionalProperties": {"type": "string", "default": "unset"}},
        "names": {"type": "array", "items": {"type": "string", "default": "n"}},
    })
    obj = {"spec": {"ports": [{}, {"port": 8080}], "env": {"A": None, "B": "b"}, "names": [None, "x"]}}
    apply_defaults(schema, obj)
    assert obj == {"spec": {"ports": [{"port": 80}, {"port": 8080}], "env": {"A": "unset", "B": "b"},
                            "names": ["n", "x"]}}


# ---------------------------------------------------------------------------------------------
# validate: kube-openapi messages as apiextensions converts them


def test_type_error_is_type_invalid_with_upstream_message() -> None:
    schema = spec_schema({"replicas": {"type": "integer"}})
    assert validate(schema, {"spec": {"replicas": "3"}}) == [cause(
        "spec.replicas", 'Invalid value: "string": spec.replicas in body must be of type integer: "string"',
        "FieldValueTypeInvalid")]
    assert validate(schema, {"spec": {"replicas": 3.0}}) == []  # an integral float is an integer
    assert validate(schema, {"spec": {"replicas": True}})[0]["message"] == (
        'Invalid value: "boolean": spec.replicas in body must be of type integer: "boolean"')


def test_null_needs_nullable() -> None:
    schema = spec_schema({"a": {"type": "string"}, "b": {"type": "string", "nullable": True}})
    assert validate(schema, {"spec": {"a": None, "b": None}}) == [cause(
        "spec.a", 'Invalid value: "null": spec.a in body must be of type string: "null"', "FieldValueTypeInvalid")]


def test_required_fields_at_root_and_nested() -> None:
    schema = obj_schema({"spec": obj_schema({"size": {"type": "string"}}, required=["size"])}, required=["spec"])
    assert validate(schema, {}) == [cause("spec", "Required value", "FieldValueRequired")]
    assert validate(schema, {"spec": {}}) == [cause("spec.size", "Required value", "FieldValueRequired")]
    assert validate(schema, {"spec": {"size": None}}) == [cause(
        "spec.size", 'Invalid value: "null": spec.size in body must be of type string: "null"',
        "FieldValueTypeInvalid")]


def test_enum_is_not_supported_with_json_rendered_choices() -> None:
    schema = spec_schema({"size": {"type": "string", "enum": ["small", "large"]},
                          "n": {"type": "integer", "enum": [1, 2]}})
    assert validate(schema, {"spec": {"size": "medium", "n": 3}}) == [
        cause("spec.size", 'Unsupported value: "medium": supported values: "small", "large"', "FieldValueNotSupported"),
        cause("spec.n", 'Unsupported value: 3: supported values: "1", "2"', "FieldValueNotSupported"),
    ]
    assert validate(schema, {"spec": {"size": "small", "n": 2.0}}) == []


def test_string_length_and_pattern() -> None:
    schema = spec_schema({"name": {"type": "string", "maxLength": 3, "minLength": 2, "pattern": "^a"}})
    assert validate(schema, {"spec": {"name": "abcd"}}) == [
        cause("spec.name", "Too long: may not be more than 3 bytes", "FieldValueTooLong")]
    assert validate(schema, {"spec": {"name": "a"}}) == [cause(
        "spec.name", 'Invalid value: "a": spec.name in body should be at least 2 chars long', "FieldValueInvalid")]
    assert validate(schema, {"spec": {"name": "bc"}}) == [cause(
        "spec.name", "Invalid value: \"bc\": spec.name in body should match '^a'", "FieldValueInvalid")]
    assert validate(schema, {"spec": {"name": "äb"}}) == [cause(
        "spec.name", "Invalid value: \"äb\": spec.name in body should match '^a'", "FieldValueInvalid")]


def test_pattern_dollar_is_end_of_text() -> None:
    schema = spec_schema({"v": {"type": "string", "pattern": "^[a-z]+$"}})
    assert validate(schema, {"spec": {"v": "abc"}}) == []
    assert fields(validate(schema, {"spec": {"v": "abc\n"}})) == ["spec.v"]


def test_numeric_bounds_and_multiple_of() -> None:
    schema = spec_schema({
        "r": {"type": "integer", "minimum": 1, "maximum": 10},
        "x": {"type": "number", "maximum": 1.5, "exclusiveMaximum": True},
        "m": {"type": "integer", "multipleOf": 3},
        "f": {"type": "number", "multipleOf": 0.5},
    })
    assert validate(schema, {"spec": {"r": 11, "x": 1.5, "m": 4, "f": 0.3}}) == [
        cause("spec.r", "Invalid value: 11: spec.r in body should be less than or equal to 10", "FieldValueInvalid"),
        cause("spec.x", "Invalid value: 1.5: spec.x in body should be less than 1.5", "FieldValueInvalid"),
        cause("spec.m", "Invalid value: 4: spec.m in body should be a multiple of 3", "FieldValueInvalid"),
        cause("spec.f", "Invalid value: 0.3: spec.f in body should be a multiple of 0.5", "FieldValueInvalid"),
    ]
    assert validate(schema, {"spec": {"r": 0}}) == [
        cause("spec.r", "Invalid value: 0: spec.r in body should be greater than or equal to 1", "FieldValueInvalid")]
    assert validate(schema, {"spec": {"r": 10, "x": 1.0, "m": 9, "f": 2.5}}) == []


def test_int32_format_range_is_checked_like_kube_openapi() -> None:
    schema = spec_schema({"n": {"type": "integer", "format": "int32"}})
    assert validate(schema, {"spec": {"n": 2**31}}) == [cause(
        "<nil>", 'Invalid value: "": Checked value must be of type integer with format int32 in spec.n',
        "FieldValueInvalid")]
    assert validate(schema, {"spec": {"n": 2**31 - 1}}) == []


def test_array_item_counts() -> None:
    schema = spec_schema({"tags": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 2}})
    assert validate(schema, {"spec": {"tags": ["a", "b", "c"]}}) == [
        cause("spec.tags", "Too many: 3: must have at most 2 items", "FieldValueTooMany")]
    assert validate(schema, {"spec": {"tags": []}}) == [
        cause("spec.tags", "Invalid value: 0: spec.tags in body should have at least 1 items", "FieldValueInvalid")]
    assert validate(schema, {"spec": {"tags": ["a", 1]}}) == [cause(
        "spec.tags[1]", 'Invalid value: "integer": spec.tags[1] in body must be of type string: "integer"',
        "FieldValueTypeInvalid")]


def test_object_property_counts_and_additional_properties() -> None:
    schema = spec_schema({"labels": {"type": "object", "maxProperties": 1, "minProperties": 1,
                                     "additionalProperties": {"type": "string"}}})
    assert validate(schema, {"spec": {"labels": {"a": "x", "b": 2}}}) == [
        cause("spec.labels", "Too many: 2: must have at most 1 item", "FieldValueTooMany"),
        cause("spec.labels.b", 'Invalid value: "integer": spec.labels.b in body must be of type string: "integer"',
              "FieldValueTypeInvalid"),
    ]
    assert validate(schema, {"spec": {"labels": {}}}) == [cause(
        "spec.labels", "Invalid value: 0: spec.labels in body should have at least 1 properties", "FieldValueInvalid")]


def test_int_or_string() -> None:
    schema = spec_schema({"port": {"x-kubernetes-int-or-string": True, "anyOf": [{"type": "integer"},
                                                                                 {"type": "string"}]}})
    assert validate(schema, {"spec": {"port": 80}}) == []
    assert validate(schema, {"spec": {"port": "http"}}) == []
    assert validate(schema, {"spec": {"port": 1.5}}) == [
        cause("spec.port", 'Invalid value: "number": spec.port in body must be of type integer,string: "number"',
              "FieldValueTypeInvalid"),
        cause("<nil>", 'Invalid value: "": "spec.port" must validate at least one schema (anyOf)', "FieldValueInvalid"),
        # the errors of the anyOf branch that matched best (more validators applied)
        cause("spec.port", 'Invalid value: "number": spec.port in body must be of type integer: "number"',
              "FieldValueTypeInvalid"),
        cause("<nil>", 'Invalid value: "": Checked value must be of type integer (default format) in spec.port',
              "FieldValueInvalid"),
    ]


def test_one_of_and_not() -> None:
    schema = spec_schema({"v": {"type": "integer", "oneOf": [{"minimum": 0}, {"maximum": 10}],
                                "not": {"enum": [13]}}})
    assert validate(schema, {"spec": {"v": 20}}) == []
    assert validate(schema, {"spec": {"v": 5}}) == [cause(
        "<nil>", 'Invalid value: "": "spec.v" must validate one and only one schema (oneOf). Found 2 valid alternatives',
        "FieldValueInvalid")]
    assert validate(schema, {"spec": {"v": 13}}) == [cause(
        "<nil>", 'Invalid value: "": "spec.v" must not validate the schema (not)', "FieldValueInvalid")]


def test_list_type_set_reports_second_appearances_only() -> None:
    schema = spec_schema({"s": {"type": "array", "x-kubernetes-list-type": "set", "items": {"x-kubernetes-int-or-string": True}}})
    # 1 and "1" differ; the third "a" is not reported again
    assert validate(schema, {"spec": {"s": ["a", 1, "1", "a", "a", 1]}}) == [
        cause("spec.s[3]", 'Duplicate value: "a"', "FieldValueDuplicate"),
        cause("spec.s[5]", "Duplicate value: 1", "FieldValueDuplicate"),
    ]


def test_list_type_map_duplicates_by_keys() -> None:
    item = obj_schema({"name": {"type": "string"}, "proto": {"type": "string"}})
    schema = spec_schema({
        "one": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"], "items": item},
        "two": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["proto", "name"],
                "items": item},
    })
    obj = {"spec": {
        "one": [{"name": "a"}, {"name": "a", "proto": "x"}, {"proto": "y"}, {}],
        "two": [{"name": "a", "proto": "TCP"}, {"name": "a", "proto": "UDP"}, {"proto": "TCP", "name": "a"}],
    }}
    assert validate(schema, obj) == [
        cause("spec.one[1]", 'Duplicate value: {"name":"a"}', "FieldValueDuplicate"),
        cause("spec.one[3]", "Duplicate value: {}", "FieldValueDuplicate"),
        cause("spec.two[2]", 'Duplicate value: {"name":"a","proto":"TCP"}', "FieldValueDuplicate"),
    ]


def test_list_type_map_items_must_be_objects() -> None:
    schema = spec_schema({"l": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["k"],
                                "items": {"x-kubernetes-preserve-unknown-fields": True}}})
    assert validate(schema, {"spec": {"l": [{"k": 1}, "x"]}}) == [
        cause("spec.l[1]", 'Invalid value: "x": must be an object for an array of list-type map', "FieldValueInvalid")]


def test_embedded_resources_need_type_meta() -> None:
    emb = {"type": "object", "x-kubernetes-embedded-resource": True, "x-kubernetes-preserve-unknown-fields": True}
    schema = spec_schema({"a": emb, "b": emb, "c": emb})
    obj = {"spec": {"a": {}, "b": {"apiVersion": "a/b/c", "kind": "My_Kind"},
                    "c": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a/b"}}}}
    assert validate(schema, obj) == [
        cause("spec.a.apiVersion", "Required value", "FieldValueRequired"),
        cause("spec.a.kind", "Required value", "FieldValueRequired"),
        cause("spec.b.apiVersion", 'Invalid value: "a/b/c": unexpected GroupVersion string: a/b/c', "FieldValueInvalid"),
        cause("spec.b.kind", 'Invalid value: "My_Kind": may have mixed case, but should otherwise match: a DNS-1035 '
              "label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, "
              "and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is "
              "'[a-z]([-a-z0-9]*[a-z0-9])?')", "FieldValueInvalid"),
        cause("spec.c.metadata.name", "Invalid value: \"a/b\": may not contain '/'", "FieldValueInvalid"),
    ]


def test_validate_with_path_prefix_and_root_type_meta() -> None:
    status = obj_schema({"phase": {"type": "string"}}, required=["ready"])
    assert validate(status, {"phase": 1}, "status") == [
        cause("status.phase", 'Invalid value: "integer": phase in body must be of type string: "integer"',
              "FieldValueTypeInvalid"),
        cause("status.ready", "Required value", "FieldValueRequired"),
    ]
    # root metadata is not the schema's business unless the schema restricts it
    assert validate(obj_schema({}), {"apiVersion": 1, "kind": "K", "metadata": {"name": 5}}) == [
        cause("apiVersion", "Invalid value: 1: must be a string", "FieldValueInvalid")]


def test_metadata_name_restricted_by_schema() -> None:
    schema = obj_schema({"metadata": obj_schema({"name": {"type": "string", "maxLength": 5}})})
    assert validate(schema, {"metadata": {"name": "toolong"}}) == [
        cause("metadata.name", "Too long: may not be more than 5 bytes", "FieldValueTooLong")]


def test_go_float_and_type_of() -> None:
    assert [go_float(f) for f in (1.0, 1.5, 1e6, 123456.0, 1234567.0, 0.0001, 1e-05)] == [
        "1", "1.5", "1e+06", "123456", "1.234567e+06", "0.0001", "1e-05"]
    assert type_of({"type": "string"}) == "string"
    assert type_of({}) == ""
    assert type_of(None) == ""

