"""JSON patch (RFC 6902) and merge patch (RFC 7386), with upstream's error mapping."""

from __future__ import annotations

import copy

import pytest

from apimachinery.errors import StatusError
from apimachinery.patch import (
    PATCH_REJECTED_MESSAGE,
    create_merge_patch,
    decode_pointer_token,
    deep_copy_json,
    escape_pointer_token,
    json_equal,
    json_patch,
    merge_patch,
)


def apply_unchanged(doc, ops):
    """Apply and check neither input was touched."""
    doc_before, ops_before = copy.deepcopy(doc), copy.deepcopy(ops)
    out = json_patch(doc, ops)
    assert doc == doc_before and ops == ops_before
    return out


# --- RFC 6902 appendix A ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("doc", "ops", "want"),
    [
        ({"foo": "bar"}, [{"op": "add", "path": "/baz", "value": "qux"}], {"baz": "qux", "foo": "bar"}),
        ({"foo": ["bar", "baz"]}, [{"op": "add", "path": "/foo/1", "value": "qux"}], {"foo": ["bar", "qux", "baz"]}),
        ({"baz": "qux", "foo": "bar"}, [{"op": "remove", "path": "/baz"}], {"foo": "bar"}),
        ({"foo": ["bar", "qux", "baz"]}, [{"op": "remove", "path": "/foo/1"}], {"foo": ["bar", "baz"]}),
        ({"baz": "qux", "foo": "bar"}, [{"op": "replace", "path": "/baz", "value": "boo"}],
         {"baz": "boo", "foo": "bar"}),
        ({"foo": {"bar": "baz", "waldo": "fred"}, "qux": {"corge": "grault"}},
         [{"op": "move", "from": "/foo/waldo", "path": "/qux/thud"}],
         {"foo": {"bar": "baz"}, "qux": {"corge": "grault", "thud": "fred"}}),
        ({"foo": ["all", "grass", "cows", "eat"]}, [{"op": "move", "from": "/foo/1", "path": "/foo/3"}],
         {"foo": ["all", "cows", "eat", "grass"]}),
        ({"baz": "qux", "foo": ["a", 2, "c"]},
         [{"op": "test", "path": "/baz", "value": "qux"}, {"op": "test", "path": "/foo/1", "value": 2}],
         {"baz": "qux", "foo": ["a", 2, "c"]}),
        ({"foo": "bar"}, [{"op": "add", "path": "/child", "value": {"grandchild": {}}}],
         {"foo": "bar", "child": {"grandchild": {}}}),
        ({"foo": ["bar"]}, [{"op": "add", "path": "/foo/-", "value": ["abc", "def"]}],
         {"foo": ["bar", ["abc", "def"]]}),
        ({"/": 9, "~1": 10}, [{"op": "test", "path": "/~01", "value": 10}], {"/": 9, "~1": 10}),
        ({"a/b": 1, "m~n": 2}, [{"op": "replace", "path": "/a~1b", "value": 3},
                                {"op": "remove", "path": "/m~0n"}], {"a/b": 3}),
        ({"a": {"b": 1}}, [{"op": "copy", "from": "/a", "path": "/c"}], {"a": {"b": 1}, "c": {"b": 1}}),
        ({"foo": ["a", "b"]}, [{"op": "add", "path": "/foo/2", "value": "c"}], {"foo": ["a", "b", "c"]}),
    ],
)
def test_rfc6902_examples(doc, ops, want):
    assert apply_unchanged(doc, ops) == want


def test_copied_value_is_independent():
    out = json_patch({"a": {"b": [1]}}, [{"op": "copy", "from": "/a", "path": "/c"}])
    out["c"]["b"].append(2)
    assert out["a"]["b"] == [1]


def test_result_shares_nothing_with_inputs():
    doc = {"metadata": {"labels": {"a": "b"}}, "spec": {"x": [1]}}
    value = {"k": ["v"]}
    out = json_patch(doc, [{"op": "add", "path": "/spec/y", "value": value}])
    out["metadata"]["labels"]["c"] = "d"
    out["spec"]["x"].append(2)
    out["spec"]["y"]["k"].append("w")
    assert doc == {"metadata": {"labels": {"a": "b"}}, "spec": {"x": [1]}}
    assert value == {"k": ["v"]}


def test_upstream_library_quirks():
    # Negative indices count from the end.
    assert json_patch({"a": [1, 2, 3]}, [{"op": "remove", "path": "/a/-1"}]) == {"a": [1, 2]}
    assert json_patch({"a": [1, 2, 3]}, [{"op": "replace", "path": "/a/-3", "value": 0}]) == {"a": [0, 2, 3]}
    # replace of a missing object member adds it (evanphx/json-patch v4).
    assert json_patch({"a": {}}, [{"op": "replace", "path": "/a/b", "value": 1}]) == {"a": {"b": 1}}
    # test against null passes for a missing member.
    assert json_patch({"a": 1}, [{"op": "test", "path": "/b", "value": None}]) == {"a": 1}
    # add without a value adds null.
    assert json_patch({}, [{"op": "add", "path": "/x"}]) == {"x": None}
    # replace of the whole document.
    assert json_patch({"a": 1}, [{"op": "replace", "path": "", "value": {"b": 2}}]) == {"b": 2}
    assert json_patch({"a": 1}, [{"op": "test", "path": "", "value": {"a": 1}}]) == {"a": 1}
    assert json_patch({"a": 1}, None) == {"a": 1}


def _apply_error(doc, ops) -> StatusError:
    with pytest.raises(StatusError) as ei:
        json_patch(doc, ops)
    return ei.value


@pytest.mark.parametrize(
    ("doc", "ops", "explanation"),
    [
        ({"foo": "bar"}, [{"op": "remove", "path": "/baz"}],
         "error in remove for path: '/baz': Unable to remove nonexistent key: baz: missing value"),
        ({"foo": "bar"}, [{"op": "add", "path": "/a/b", "value": 1}],
         'add operation does not apply: doc is missing path: "/a/b": missing value'),
        ({"foo": ["bar"]}, [{"op": "replace", "path": "/foo/5", "value": 1}],
         "replace operation does not apply: doc is missing key: /foo/5: missing value"),
        ({"baz": "qux"}, [{"op": "test", "path": "/baz", "value": "bar"}], "testing value /baz failed: test failed"),
        ({"a": 1}, [{"op": "test", "path": "/a", "value": True}], "testing value /a failed: test failed"),
        ({"foo": ["bar"]}, [{"op": "add", "path": "/foo/3", "value": 1}],
         "error in add for path: '/foo/3': Unable to access invalid index: 3: invalid index referenced"),
        ({"foo": ["bar"]}, [{"op": "add", "path": "/foo/x", "value": 1}],
         "error in add for path: '/foo/x': value was not a proper array index: 'x': "
         'strconv.Atoi: parsing "x": invalid syntax'),
        ({"foo": 1}, [{"op": "bogus", "path": "/foo"}], "Unexpected kind: bogus"),
        ({"foo": 1}, [{"path": "/foo"}], "Unexpected kind: unknown"),
        ({"foo": 1}, [None], "Unexpected kind: unknown"),
        ({"foo": 1}, [{"op": "add", "value": 1}], "add operation failed to decode path: missing value"),
        ({"foo": 1}, [{"op": "move", "path": "/x"}],
         "move operation failed to decode from: operation, missing from field: missing value"),
        ({"foo": 1}, [{"op": "move", "from": "/nope/x", "path": "/x"}],
         "move operation does not apply: doc is missing from path: /nope/x: missing value"),
        ({"foo": 1}, [{"op": "add", "path": "", "value": 1}],
         'add operation does not apply: doc is missing path: "": missing value'),
        ({"foo": "scalar"}, [{"op": "add", "path": "/foo/bar", "value": 1}],
         'add operation does not apply: doc is missing path: "/foo/bar": missing value'),
    ],
)
def test_ops_that_cannot_apply_are_422(doc, ops, explanation):
    before = copy.deepcopy(doc)
    err = _apply_error(doc, ops)
    assert (err.code, err.reason, err.message) == (422, "Invalid", PATCH_REJECTED_MESSAGE)
    assert err.status()["details"]["causes"] == [{"message": explanation}]
    assert doc == before


def test_failing_op_after_successful_ones_leaves_input_alone():
    doc = {"a": [1]}
    _apply_error(doc, [{"op": "add", "path": "/a/-", "value": 2}, {"op": "remove", "path": "/zzz"}])
    assert doc == {"a": [1]}


@pytest.mark.parametrize(
    ("ops", "message"),
    [
        ({"op": "add"}, "json: cannot unmarshal object into Go value of type jsonpatch.Patch"),
        ("x", "json: cannot unmarshal string into Go value of type jsonpatch.Patch"),
        (["x"], "json: cannot unmarshal string into Go value of type jsonpatch.Operation"),
        ([1], "json: cannot unmarshal number into Go value of type jsonpatch.Operation"),
    ],
)
def test_malformed_patch_is_400(ops, message):
    err = _apply_error({}, ops)
    assert (err.code, err.reason, err.message) == (400, "BadRequest", message)


def test_too_many_operations_is_413():
    err = _apply_error({}, [{"op": "test", "path": "", "value": {}}] * 10001)
    assert err.code == 413
    assert err.message == "The allowed maximum operations in a JSON patch is 10000, got 10001"


def test_pointer_tokens():
    assert decode_pointer_token("a~1b~0c") == "a/b~c"
    assert decode_pointer_token("~01") == "~1"
    assert escape_pointer_token("a/b~c") == "a~1b~0c"


def test_json_equal_is_strict_about_types():
    assert json_equal({"a": [1, {"b": None}]}, {"a": [1.0, {"b": None}]})
    assert not json_equal(True, 1)
    assert not json_equal(1, "1")
    assert not json_equal({"a": 1}, {"a": 1, "b": 2})
    assert not json_equal([1], [1, 2])


# --- RFC 7386 --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("doc", "patch", "want"),
    [
        ({"a": "b"}, {"a": "c"}, {"a": "c"}),
        ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
        ({"a": "b"}, {"a": None}, {}),
        ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
        ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
        ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
        ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
        ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
        ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
        ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
        ({"a": "foo"}, {"a": {"b": None, "c": 1}}, {"a": {"c": 1}}),
        ({"a": {"b": 1}}, {"a": {"b": None}}, {"a": {}}),
        ({"a": 1}, {"a": [None, {"x": None}]}, {"a": [None, {}]}),  # arrays keep nulls, nested objects don't
        ({"a": 1}, {}, {"a": 1}),
    ],
)
def test_rfc7386_examples(doc, patch, want):
    doc_before, patch_before = copy.deepcopy(doc), copy.deepcopy(patch)
    assert merge_patch(doc, patch) == want
    assert doc == doc_before and patch == patch_before


def test_merge_patch_result_is_independent():
    doc = {"metadata": {"labels": {"a": "b"}}, "spec": {"c": [1]}}
    patch = {"spec": {"d": {"e": [2]}}}
    out = merge_patch(doc, patch)
    out["metadata"]["labels"]["x"] = "y"
    out["spec"]["c"].append(3)
    out["spec"]["d"]["e"].append(3)
    assert doc == {"metadata": {"labels": {"a": "b"}}, "spec": {"c": [1]}}
    assert patch == {"spec": {"d": {"e": [2]}}}


def test_merge_patch_bad_patch_and_array_patch():
    for bad in (None, 5, "x", True):
        with pytest.raises(StatusError) as ei:
            merge_patch({"a": 1}, bad)
        assert (ei.value.code, ei.value.message) == (400, "Invalid JSON Patch")
    assert merge_patch({"a": 1}, [1, {"b": None}]) == [1, {}]


def test_merge_patch_keeps_member_order():
    out = merge_patch({"apiVersion": "v1", "kind": "Pod", "metadata": {}}, {"kind": "Pod", "zzz": 1})
    assert list(out) == ["apiVersion", "kind", "metadata", "zzz"]


def test_create_merge_patch_round_trips():
    original = {"a": 1, "b": {"c": 2, "d": 3}, "e": [1, 2], "f": "x"}
    modified = {"a": 1, "b": {"c": 5}, "e": [1], "g": True}
    patch = create_merge_patch(original, modified)
    assert patch == {"b": {"c": 5, "d": None}, "e": [1], "f": None, "g": True}
    assert merge_patch(original, patch) == modified
    assert create_merge_patch(original, original) == {}


def test_deep_copy_json():
    v = {"a": [{"b": 1}], "c": "d"}
    c = deep_copy_json(v)
    assert c == v and c["a"] is not v["a"] and c["a"][0] is not v["a"][0]
