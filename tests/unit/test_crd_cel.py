"""apiserver.crd.cel: x-kubernetes-validations (CEL) rules, when cel-python is installed."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from apiserver.crd.definition import validate_schema_definition
from apiserver.crd.schema import validate
from tests.unit.test_crd_definition import P
from tests.unit.test_crd_schema import cause, fields, obj_schema, spec_schema


def _rules(*rules: dict[str, Any], **props: Any) -> dict[str, Any]:
    return spec_schema(props or {"min": {"type": "integer"}, "max": {"type": "integer"}, "name": {"type": "string"}},
                       **{"x-kubernetes-validations": list(rules)})


def test_cel_rule_failures_use_message_or_rule() -> None:
    pytest.importorskip("celpy")
    schema = _rules({"rule": "self.min <= self.max", "message": "min must not exceed max"},
                    {"rule": "self.name.startsWith('a')"},
                    {"rule": "self.all(k, k.size() < 4)", "messageExpression": "'bad key in ' + self.name"})
    obj = {"spec": {"min": 5, "max": 3, "name": "bob"}}
    # object values are omitted from the message, as upstream's field.OmitValueType
    assert validate(schema, obj) == [
        cause("spec", "Invalid value: min must not exceed max", "FieldValueInvalid"),
        cause("spec", "Invalid value: failed rule: self.name.startsWith('a')", "FieldValueInvalid"),
        cause("spec", "Invalid value: bad key in bob", "FieldValueInvalid"),
    ]
    assert validate(schema, {"spec": {"min": 1, "max": 3, "name": "al"}}) == [
        cause("spec", "Invalid value: bad key in al", "FieldValueInvalid")]  # "name" has 4 characters
    assert validate(schema, {"spec": {"min": 1, "max": 3}}) == [cause(
        "spec", "Invalid value: \"object\": no such key: name evaluating rule: self.name.startsWith('a')",
        "FieldValueInvalid")]


def test_cel_rules_on_scalars_with_field_path_and_reason() -> None:
    pytest.importorskip("celpy")
    schema = spec_schema({
        "name": {"type": "string", "x-kubernetes-validations": [{"rule": "self.size() < 3"}]},
        "sub": obj_schema({"x": {"type": "integer"}}, **{"x-kubernetes-validations": [
            {"rule": "self.x > 0", "fieldPath": ".x", "reason": "FieldValueForbidden", "message": "x must be positive"}]}),
    })
    assert validate(schema, {"spec": {"name": "long", "sub": {"x": 0}}}) == [
        cause("spec.name", 'Invalid value: "long": failed rule: self.size() < 3', "FieldValueInvalid"),
        cause("spec.sub.x", "Forbidden: x must be positive", "FieldValueForbidden"),
    ]


def test_cel_transition_rules_need_an_old_object() -> None:
    pytest.importorskip("celpy")
    schema = _rules({"rule": "self.name == oldSelf.name", "message": "name is immutable"})
    new = {"spec": {"name": "b"}}
    assert validate(schema, new) == []
    assert validate(schema, new, old={"spec": {"name": "a"}}) == [
        cause("spec", "Invalid value: name is immutable", "FieldValueInvalid")]
    assert validate(schema, new, old={"spec": {"name": "b"}}) == []


def test_cel_evaluation_errors_and_blocking_errors() -> None:
    pytest.importorskip("celpy")
    schema = _rules({"rule": "self.missing == 1"})
    assert validate(schema, {"spec": {"min": 1}}) == [cause(
        "spec", 'Invalid value: "object": no such key: missing evaluating rule: self.missing == 1', "FieldValueInvalid")]
    assert validate(schema, {"spec": {"min": "x"}}) == [
        cause("spec.min", 'Invalid value: "string": spec.min in body must be of type integer: "string"',
              "FieldValueTypeInvalid"),
        cause("<nil>", "Invalid value: null: some validation rules were not checked because the object was invalid; "
              "correct the existing errors to complete validation", "FieldValueInvalid"),
    ]


def test_cel_rules_in_list_items_and_maps() -> None:
    pytest.importorskip("celpy")
    schema = spec_schema({
        "items": {"type": "array", "items": {"type": "integer", "x-kubernetes-validations": [{"rule": "self % 2 == 0"}]}},
        "m": {"type": "object", "additionalProperties": {"type": "string",
                                                          "x-kubernetes-validations": [{"rule": "self != ''"}]}},
    })
    assert validate(schema, {"spec": {"items": [2, 3], "m": {"k": ""}}}) == [
        cause("spec.items[1]", "Invalid value: 3: failed rule: self % 2 == 0", "FieldValueInvalid"),
        cause("spec.m[k]", "Invalid value: \"\": failed rule: self != ''", "FieldValueInvalid"),
    ]


def test_cel_rules_are_compiled_in_the_definition() -> None:
    pytest.importorskip("celpy")
    schema = spec_schema({
        "l": {"type": "array", "items": obj_schema({"a": {"type": "string"}}, **{
            "x-kubernetes-validations": [{"rule": "self.a == oldSelf.a"}]})},
        "m": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["a"],
              "items": obj_schema({"a": {"type": "string"}}, required=["a"], **{
                  "x-kubernetes-validations": [{"rule": "self.a == oldSelf.a"}]})},
    }, **{"x-kubernetes-validations": [{"rule": "self.a <"}]})
    causes = validate_schema_definition(schema, P)
    assert fields(causes) == [
        f"{P}.properties[spec].properties[l].items.x-kubernetes-validations[0].rule",
        f"{P}.properties[spec].x-kubernetes-validations[0].rule",
    ]
    assert causes[0]["message"] == ('Invalid value: "self.a == oldSelf.a": oldSelf cannot be used on the '
                                    f"uncorrelatable portion of the schema within {P}.properties[spec].properties[l]")
    assert causes[1]["message"].startswith('Invalid value: {"rule":"self.a <"}: compilation failed: ')


def test_defaults_must_pass_cel_rules() -> None:
    pytest.importorskip("celpy")
    schema = spec_schema({"d": {"type": "integer", "default": 5, "x-kubernetes-validations": [{"rule": "self < 3"}]}})
    assert validate_schema_definition(schema, P) == [
        cause(f"{P}.properties[spec].properties[d].default", "Invalid value: 5: failed rule: self < 3",
              "FieldValueInvalid")]


def test_validate_does_not_mutate_its_inputs() -> None:
    schema = _rules({"rule": "self.min <= self.max"})
    obj = {"spec": {"min": 1, "max": 2, "name": "x"}}
    before = (copy.deepcopy(schema), copy.deepcopy(obj))
    validate(schema, obj)
    validate_schema_definition(schema, P)
    assert (schema, obj) == before


def test_cel_rules_beyond_cel_python_are_not_enforced() -> None:
    pytest.importorskip("celpy")
    schema = _rules({"rule": "self.?name.orValue('') != 'x'"}, {"rule": "quantity('1Gi').isGreaterThan(quantity('2Gi'))"},
                    {"rule": "self.name.lowerAscii() == 'abc'"})
    assert validate(schema, {"spec": {"name": "ABC"}}) == []
    assert validate(schema, {"spec": {"name": "x"}}) == [
        cause("spec", "Invalid value: failed rule: self.name.lowerAscii() == 'abc'", "FieldValueInvalid")]
    assert validate_schema_definition(schema, P) == []


def test_a_rule_the_evaluator_trips_over_is_an_evaluation_error() -> None:
    pytest.importorskip("celpy")
    schema = {"type": "object", "properties": {"spec": {
        "type": "object", "properties": {"n": {"type": "integer"}},
        "x-kubernetes-validations": [{"rule": "self.n.all(x, x > 1)"}]}}}
    causes = validate(schema, {"spec": {"n": 5}})
    assert [(c["field"], c["reason"]) for c in causes] == [("spec", "FieldValueInvalid")]
    assert causes[0]["message"].endswith("evaluating rule: self.n.all(x, x > 1)")
