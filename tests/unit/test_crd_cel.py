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
    short = {"type": "string", "maxLength": 16}  # unbounded strings would exceed the cost budget
    schema = spec_schema({
        "l": {"type": "array", "maxItems": 100, "items": obj_schema({"a": short}, **{
            "x-kubernetes-validations": [{"rule": "self.a == oldSelf.a"}]})},
        "m": {"type": "array", "maxItems": 100, "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["a"],
              "items": obj_schema({"a": short}, required=["a"], **{
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


def test_rules_may_name_only_what_the_schema_declares() -> None:
    pytest.importorskip("celpy")
    schema = spec_schema({"n": {"type": "integer"}, "labels": {"type": "object", "additionalProperties": {
        "type": "string", "maxLength": 63}, "maxProperties": 16}}, **{"x-kubernetes-validations": [
            {"rule": "self.nosuch > 0"}, {"rule": "n > 0"}, {"rule": "self.labels.anykey == 'x' && self.n > 0"},
            {"rule": "self.labels.all(k, k.size() < 9)", "messageExpression": "'bad ' + typo"}]})
    causes = validate_schema_definition(schema, P)
    rules = f"{P}.properties[spec].x-kubernetes-validations"
    assert [(c["field"], c["message"].split("}: ", 1)[1]) for c in causes] == [
        (f"{rules}[0].rule", "compilation failed: ERROR: <input>:1:5: undefined field 'nosuch'"),
        (f"{rules}[1].rule", "compilation failed: ERROR: <input>:1:1: undeclared reference to 'n' (in container '')"),
        (f"{rules}[3].messageExpression",
         "messageExpression compilation failed: ERROR: <input>:1:10: undeclared reference to 'typo' (in container '')"),
    ]
    # the resource root shows apiVersion, kind and metadata.name/generateName only, as upstream
    root = {"type": "object", "properties": {"spec": {"type": "object"}}, "x-kubernetes-validations": [
        {"rule": "self.metadata.name.size() < 20 && self.kind == 'X'"}, {"rule": "has(self.metadata.labels)"}]}
    causes = validate_schema_definition(root, P)
    assert [(c["field"], c["message"].split("}: ", 1)[1]) for c in causes] == [
        (f"{P}.x-kubernetes-validations[1].rule", "compilation failed: ERROR: <input>:1:18: undefined field 'labels'")]


def test_rules_over_unbounded_lists_exceed_the_estimated_cost_budget() -> None:
    pytest.importorskip("celpy")
    nested = "self.l.all(x, self.l.all(y, x == y))"
    unbounded = spec_schema({"l": {"type": "array", "items": {"type": "string"}}},
                            **{"x-kubernetes-validations": [{"rule": nested}]})
    causes = validate_schema_definition(unbounded, P)
    rule = f"{P}.properties[spec].x-kubernetes-validations[0].rule"
    hint = ("(try simplifying the rule, or adding maxItems, maxProperties, and maxLength where arrays, maps, and "
            "strings are declared)")
    assert [(c["field"], c["reason"], c["message"]) for c in causes] == [
        (rule, "FieldValueForbidden", f"Forbidden: estimated rule cost exceeds budget by factor of more than 100x {hint}"),
        (rule, "FieldValueForbidden",
         "Forbidden: contributed to estimated rule cost total exceeding cost limit for entire OpenAPIv3 schema"),
        (P, "FieldValueForbidden", "Forbidden: x-kubernetes-validations estimated rule cost total for entire "
         f"OpenAPIv3 schema exceeds budget by factor of more than 100x {hint}"),
    ]
    # bounds make the same rule affordable
    bounded = copy.deepcopy(unbounded)
    bounded["properties"]["spec"]["properties"]["l"].update(maxItems=100, items={"type": "string", "maxLength": 64})
    assert validate_schema_definition(bounded, P) == []
    # a cheap rule on every item of an unbounded list is fine; a string scan on each is not
    per_item = spec_schema({"l": {"type": "array", "items": {"type": "string", "x-kubernetes-validations": [
        {"rule": "self.size() < 10"}, {"rule": "self.contains('gpu')"}]}}})
    item_rules = f"{P}.properties[spec].properties[l].items.x-kubernetes-validations"
    # the scan over its limit; both named as contributing to the total (each over 1 % of it)
    assert fields(validate_schema_definition(per_item, P)) == [
        f"{item_rules}[1].rule", f"{item_rules}[1].rule", f"{item_rules}[0].rule", P]


def test_evaluation_stops_when_the_objects_step_budget_runs_out(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("celpy")
    from apiserver.crd import cel

    monkeypatch.setattr(cel, "RUNTIME_STEP_BUDGET", 5_000)
    schema = spec_schema({"l": {"type": "array", "maxItems": 200, "items": {"type": "integer"}}},
                         **{"x-kubernetes-validations": [{"rule": "self.l.all(x, self.l.all(y, x + y >= 0))"},
                                                         {"rule": "false"}]})
    assert validate_schema_definition(schema, P) == []  # 200 × 200 steps: within upstream's estimate
    assert validate(schema, {"spec": {"l": list(range(5))}}) == [
        cause("spec", "Invalid value: failed rule: false", "FieldValueInvalid")]
    # 40,000 iterations do not fit in 5,000 steps: one error, and no further rule runs
    assert validate(schema, {"spec": {"l": list(range(200))}}) == [cause(
        "spec", 'Invalid value: "object": validation failed due to running out of cost budget, no further '
        "validation rules will be run", "FieldValueInvalid")]


def test_regex_functions_use_re2() -> None:
    """Linear-time matching as upstream: with a backtracking engine this pattern on this input
    would not finish (2^40 steps), and RE2's syntax refuses backreferences."""
    pytest.importorskip("celpy")
    schema = _rules({"rule": "self.name.find('^(a+)+$') == ''"}, {"rule": "self.name.findAll('a').size() == 40"},
                    {"rule": "self.name.find('(a)\\\\1') == ''"}, name={"type": "string"})
    causes = validate(schema, {"spec": {"name": "a" * 40 + "b"}})
    assert len(causes) == 1 and causes[0]["field"] == "spec" and "invalid regex" in causes[0]["message"]
