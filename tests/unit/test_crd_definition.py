"""apiserver.crd.definition: what CRD validation reports about a version's openAPIV3Schema."""

from __future__ import annotations

from apiserver.crd.definition import validate_schema_definition
from tests.unit.test_crd_schema import cause, fields, obj_schema, spec_schema

P = "spec.versions[0].schema.openAPIV3Schema"


def test_schema_is_required() -> None:
    assert validate_schema_definition(None, P) == [cause(P, "Required value", "FieldValueRequired")]


def test_well_formed_schema_has_no_errors() -> None:
    schema = obj_schema({
        "metadata": obj_schema({"name": {"type": "string", "maxLength": 20}}),
        "spec": obj_schema({
            "replicas": {"type": "integer", "default": 1, "minimum": 0},
            "port": {"x-kubernetes-int-or-string": True, "anyOf": [{"type": "integer"}, {"type": "string"}]},
            "ports": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                      "items": obj_schema({"name": {"type": "string"}, "port": {"type": "integer"}}, required=["name"])},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}, "x-kubernetes-map-type": "atomic"},
            "template": {"type": "object", "x-kubernetes-embedded-resource": True,
                         "x-kubernetes-preserve-unknown-fields": True},
            "mode": {"type": "string", "enum": ["a", "b"], "default": "a"},
        }, oneOf=[{"required": ["replicas"]}, {"required": ["port"]}]),
        "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
    })
    assert validate_schema_definition(schema, P, has_status=True) == []


def test_types_must_be_specified() -> None:
    schema = obj_schema({"spec": {"properties": {"a": {"type": "string"}}},
                         "list": {"type": "array", "items": {}}, "any": {"x-kubernetes-preserve-unknown-fields": True}})
    assert validate_schema_definition(schema, P) == [
        cause(f"{P}.properties[list].items.type", "Required value: must not be empty for specified array items",
              "FieldValueRequired"),
        cause(f"{P}.properties[spec].type", "Required value: must not be empty for specified object fields",
              "FieldValueRequired"),
    ]


def test_root_must_be_an_object_without_additional_properties() -> None:
    assert validate_schema_definition({"type": "string"}, P) == [
        cause(f"{P}.type", 'Invalid value: "string": must be object at the root', "FieldValueInvalid")]
    assert validate_schema_definition({"type": "object", "additionalProperties": {"type": "string"}}, P) == [
        cause(f"{P}.additionalProperties", "Forbidden: must not be used at the root", "FieldValueForbidden")]
    assert validate_schema_definition({"type": "object", "nullable": True}, P) == [
        cause(f"{P}.nullable", "Forbidden: nullable cannot be true at the root", "FieldValueForbidden")]


def test_properties_and_additional_properties_are_mutually_exclusive() -> None:
    schema = spec_schema({"a": {"type": "string"}}, additionalProperties={"type": "string"})
    assert validate_schema_definition(schema, P) == [cause(
        f"{P}.properties[spec].additionalProperties",
        "Forbidden: additionalProperties and properties are mutual exclusive", "FieldValueForbidden")]


def test_arrays_need_items_and_unique_items_is_forbidden() -> None:
    schema = spec_schema({"a": {"type": "array", "uniqueItems": True}})
    assert validate_schema_definition(schema, P) == [
        cause(f"{P}.properties[spec].properties[a].items", "Required value: must be specified", "FieldValueRequired"),
        cause(f"{P}.properties[spec].properties[a].uniqueItems",
              "Forbidden: uniqueItems cannot be set to true since the runtime complexity becomes quadratic",
              "FieldValueForbidden"),
    ]


def test_unsupported_keywords_are_forbidden() -> None:
    schema = spec_schema({"a": {"type": "string", "$ref": "#/x"}, "b": {"type": "object", "patternProperties": {
        "^x": {"type": "string"}}}}, definitions={"d": {"type": "string"}})
    assert validate_schema_definition(schema, P) == [
        cause(f"{P}.properties[spec].definitions", "Forbidden: definitions is not supported", "FieldValueForbidden"),
        cause(f"{P}.properties[spec].properties[a].$ref", "Forbidden: $ref is not supported", "FieldValueForbidden"),
        cause(f"{P}.properties[spec].properties[b].patternProperties", "Forbidden: patternProperties is not supported",
              "FieldValueForbidden"),
    ]


def test_unsupported_keyword_without_other_error_reports_structural_conversion() -> None:
    assert validate_schema_definition({"type": "object", "$schema": "x"}, P) == [
        cause(P, "Invalid value: \"\": OpenAPIV3Schema 'schema' is not supported", "FieldValueInvalid")]


def test_root_metadata_may_only_restrict_name_and_generate_name() -> None:
    ok = obj_schema({"metadata": obj_schema({"name": {"type": "string", "pattern": "^a"},
                                             "generateName": {"type": "string"}})})
    assert validate_schema_definition(ok, P) == []
    bad = obj_schema({"metadata": obj_schema({"labels": {"type": "object"}})})
    assert validate_schema_definition(bad, P) == [cause(
        f"{P}.properties[metadata]",
        "Forbidden: must not specify anything other than name and generateName, but metadata is implicitly specified",
        "FieldValueForbidden")]
    assert validate_schema_definition(obj_schema({"metadata": {"type": "string"}}), P) == [
        cause(f"{P}.properties[metadata].type", 'Invalid value: "string": must be object', "FieldValueInvalid")]


def test_value_validations_must_be_structural() -> None:
    schema = spec_schema({"a": {"type": "string"}}, anyOf=[
        {"type": "object", "description": "d", "properties": {"a": {"nullable": True}, "b": {"minLength": 1}}}])
    assert validate_schema_definition(schema, P) == [
        cause(f"{P}.properties[spec].anyOf[0].description", "Forbidden: must be empty to be structural",
              "FieldValueForbidden"),
        cause(f"{P}.properties[spec].anyOf[0].properties[a].nullable", "Forbidden: must be false to be structural",
              "FieldValueForbidden"),
        cause(f"{P}.properties[spec].anyOf[0].type", "Forbidden: must be empty to be structural",
              "FieldValueForbidden"),
    ]


def test_root_value_validations_must_be_complete() -> None:
    # upstream checks completeness of the root's junctors (allOf/anyOf/oneOf/not) only
    schema = obj_schema({"spec": obj_schema({"a": {"type": "string"}})}, oneOf=[
        {"properties": {"spec": {"properties": {"a": {"minLength": 1}, "b": {"minLength": 1}}}}},
        {"properties": {"spec": {"required": ["a"]}, "status": {"required": ["x"]}}},
    ])
    assert validate_schema_definition(schema, P) == [
        cause(f"{P}.properties[spec].properties[b]",
              f"Required value: because it is defined in {P}.oneOf[0].properties[spec].properties[b]",
              "FieldValueRequired"),
        cause(f"{P}.properties[status]", f"Required value: because it is defined in {P}.oneOf[1].properties[status]",
              "FieldValueRequired"),
    ]


def test_defaults_must_validate_and_be_pruned() -> None:
    schema = spec_schema({
        "r": {"type": "integer", "default": "one"},
        "o": {"type": "object", "properties": {"a": {"type": "string"}}, "default": {"a": "x", "extra": 1}},
        "s": {"type": "string", "enum": ["a"], "default": "b"},
    })
    assert validate_schema_definition(schema, P) == [
        cause(f"{P}.properties[spec].properties[r].default",
              'Invalid value: "string":  in body must be of type integer: "string"', "FieldValueTypeInvalid"),
        cause(f"{P}.properties[spec].properties[o].default",
              'Invalid value: {"a":"x","extra":1}: must not have unknown fields', "FieldValueInvalid"),
        cause(f"{P}.properties[spec].properties[s].default", 'Unsupported value: "b": supported values: "a"',
              "FieldValueNotSupported"),
    ]


def test_defaults_are_forbidden_in_top_level_metadata() -> None:
    schema = obj_schema({"metadata": {"type": "object", "default": {"name": "x"}}})
    assert validate_schema_definition(schema, P) == [cause(
        f"{P}.properties[metadata].default", "Forbidden: must not be set in top-level metadata", "FieldValueForbidden")]


def test_embedded_resource_and_int_or_string_rules() -> None:
    schema = spec_schema({
        "e": {"type": "string", "x-kubernetes-embedded-resource": True},
        "f": {"type": "object", "x-kubernetes-embedded-resource": True},
        "i": {"x-kubernetes-int-or-string": True, "x-kubernetes-preserve-unknown-fields": True},
    })
    assert validate_schema_definition(schema, P) == [
        cause(f"{P}.properties[spec].properties[e].properties",
              "Required value: must not be empty if x-kubernetes-embedded-resource is true without "
              "x-kubernetes-preserve-unknown-fields", "FieldValueRequired"),
        cause(f"{P}.properties[spec].properties[e].type",
              'Invalid value: "string": must be object if x-kubernetes-embedded-resource is true', "FieldValueInvalid"),
        cause(f"{P}.properties[spec].properties[f].properties",
              "Required value: must not be empty if x-kubernetes-embedded-resource is true without "
              "x-kubernetes-preserve-unknown-fields", "FieldValueRequired"),
        cause(f"{P}.properties[spec].properties[i].x-kubernetes-preserve-unknown-fields",
              "Invalid value: true: must be false if x-kubernetes-int-or-string is true", "FieldValueInvalid"),
    ]


def test_list_and_map_type_rules() -> None:
    schema = spec_schema({
        "m": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name", "sub", "nope"],
              "items": obj_schema({"name": {"type": "string"}, "sub": {"type": "object"}}, nullable=True)},
        "s": {"type": "object", "x-kubernetes-list-type": "set"},
        "t": {"type": "object", "x-kubernetes-map-type": "sometimes"},
    })
    ms = f"{P}.properties[spec].properties[m]"
    assert validate_schema_definition(schema, P) == [
        cause(f"{ms}.items.properties[sub].type",
              "Invalid value: \"object\": must be a scalar type if parent array's x-kubernetes-list-type is map",
              "FieldValueInvalid"),
        cause(f"{ms}.x-kubernetes-list-map-keys",
              'Invalid value: ["name","sub","nope"]: entries must all be names of item properties', "FieldValueInvalid"),
        cause(f"{ms}.items.nullable", "Forbidden: cannot be nullable when x-kubernetes-list-type is map",
              "FieldValueForbidden"),
        cause(f"{ms}.items.properties[name].default", "Required value: this property is in x-kubernetes-list-map-keys, "
              "so it must have a default or be a required property", "FieldValueRequired"),
        cause(f"{ms}.items.properties[sub].default", "Required value: this property is in x-kubernetes-list-map-keys, "
              "so it must have a default or be a required property", "FieldValueRequired"),
        cause(f"{P}.properties[spec].properties[s].type",
              'Invalid value: "object": must be array if x-kubernetes-list-type is specified', "FieldValueInvalid"),
        cause(f"{P}.properties[spec].properties[t].x-kubernetes-map-type",
              'Unsupported value: "sometimes": supported values: "atomic", "granular"', "FieldValueNotSupported"),
    ]


def test_list_map_keys_need_list_type_map() -> None:
    schema = spec_schema({"l": {"type": "array", "x-kubernetes-list-map-keys": ["a"],
                                "items": obj_schema({"a": {"type": "string"}})}})
    assert validate_schema_definition(schema, P) == [cause(
        f"{P}.properties[spec].properties[l].x-kubernetes-list-type",
        "Required value: must be map if x-kubernetes-list-map-keys is non-empty", "FieldValueRequired")]


def test_status_subresource_restricts_root_keywords() -> None:
    schema = obj_schema({"spec": {"type": "object"}}, anyOf=[{"required": ["spec"]}])
    causes = validate_schema_definition(schema, P, has_status=True)
    assert fields(causes) == [P]
    assert causes[0]["message"].endswith(
        "only [Description Type Format Title Maximum ExclusiveMaximum Minimum ExclusiveMinimum MaxLength MinLength "
        "Pattern MaxItems MinItems UniqueItems MultipleOf Required Items Properties ExternalDocs Example "
        "XPreserveUnknownFields XValidations] fields are allowed at the root of the schema if the status "
        "subresource is enabled")
    assert validate_schema_definition(schema, P) == []


def test_validation_rule_fields_are_checked() -> None:
    schema = spec_schema({"a": {"type": "integer"}}, **{"x-kubernetes-validations": [
        {"rule": " "},
        {"rule": "self.a > 0", "message": "a\nb"},
        {"rule": "self.a > 0", "reason": "Bogus", "fieldPath": ".b"},
        {"rule": "self.a > 0", "fieldPath": ".a"},
    ]})
    rp = f"{P}.properties[spec].x-kubernetes-validations"
    assert validate_schema_definition(schema, P) == [
        cause(f"{rp}[0].rule", "Required value: rule is not specified", "FieldValueRequired"),
        cause(f"{rp}[1].message", 'Invalid value: "a\\nb": must not contain line breaks', "FieldValueInvalid"),
        cause(f"{rp}[2].reason", 'Unsupported value: "Bogus": supported values: "FieldValueDuplicate", '
              '"FieldValueForbidden", "FieldValueInvalid", "FieldValueRequired"', "FieldValueNotSupported"),
        cause(f"{rp}[2].fieldPath", 'Invalid value: ".b": must be a valid path', "FieldValueInvalid"),
    ]


def test_invalid_pattern_is_reported() -> None:
    causes = validate_schema_definition(spec_schema({"a": {"type": "string", "pattern": "(a"}}), P)
    assert fields(causes) == [f"{P}.properties[spec].properties[a].pattern"]
    assert causes[0]["message"].startswith('Invalid value: "(a": must be a valid regular expression, but isn\'t: ')



def test_schemas_of_the_wrong_shape_are_invalid_not_a_crash() -> None:
    from apiserver.crd.definition import validate_schema_definition

    def causes(schema: dict) -> list[tuple[str, str]]:
        return [(c["field"], c["message"]) for c in validate_schema_definition(schema, "s")]

    assert causes({"type": "object", "definitions": True}) == [("s.definitions", "Invalid value: true: must be an object")]
    assert causes({"type": "object", "allOf": 3}) == [("s.allOf", "Invalid value: 3: must be an array")]
    nested = {"type": "object", "properties": {"a": {"type": "array", "items": {"type": "object", "properties": {"b": 3}}}}}
    assert causes(nested) == [("s.properties[a].items.properties[b]", "Invalid value: 3: must be an object")]
    assert causes({"type": "object", "additionalProperties": 4}) == [
        ("s.additionalProperties", "Invalid value: 4: must be an object")]
