"""Label and field selectors: upstream parse/match/format semantics (labels/selector_test.go, fields)."""

from __future__ import annotations

import pytest

from apimachinery.errors import StatusError
from apimachinery.selectors import (
    DOES_NOT_EXIST,
    EQUALS,
    EXISTS,
    IN,
    NOT_EQUALS,
    LabelSelectorError,
    Requirement,
    escape_field_value,
    everything,
    field_selector_from_set,
    nothing,
    parse_field_selector,
    parse_label_selector,
    selector_from_label_selector,
    selector_from_set,
)

# --- label selector parsing ------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["x=a,y=b,z=c", "", "x!=a,y=b", "x=", "x= ", "x=,z= ", "x= ,z= ", "!x", "x>1", "x>1,z<5"],
)
def test_good_selectors_restring_without_spaces(text):
    assert str(parse_label_selector(text)) == text.replace(" ", "")


@pytest.mark.parametrize("text", ["x=a||y=b", "x==a==b", "!x=a", "x<a", "x in", "x in (a", "x=(a)", ",x", "x,",
                                  "x,,y", "a$b", "x=a b", "x notin", "in (a)", "=a"])
def test_bad_selectors_are_400(text):
    with pytest.raises(StatusError) as ei:
        parse_label_selector(text)
    assert ei.value.code == 400
    assert ei.value.reason == "BadRequest"


def test_canonical_form_sorts_keys_and_values():
    s = parse_label_selector("  tier  in (fe , be),app==web,  !canary , env notin (prod,dev),exists")
    assert str(s) == "app==web,!canary,env notin (dev,prod),exists,tier in (be,fe)"
    assert str(parse_label_selector("x=a,a=x")) == str(parse_label_selector("a=x,x=a"))


def test_whitespace_variants_parse_the_same():
    assert parse_label_selector("a=b,c in (d,e)") == parse_label_selector(" a = b ,\tc in(d, e)\n")


@pytest.mark.parametrize(
    ("selector", "labels", "want"),
    [
        ("", {"x": "y"}, True),
        ("x=y", {"x": "y"}, True),
        ("x==y", {"x": "y"}, True),
        ("x=y,z=w", {"x": "y", "z": "w"}, True),
        ("x!=y,z!=w", {"x": "z", "z": "a"}, True),
        ("notin=in", {"notin": "in"}, True),
        ("in in (in)", {"in": "in"}, True),
        ("x", {"x": "z"}, True),
        ("!x", {"y": "z"}, True),
        ("x>1", {"x": "2"}, True),
        ("x<1", {"x": "0"}, True),
        ("x in (a,b)", {"x": "b"}, True),
        ("x notin (a,b)", {"x": "c"}, True),
        ("x notin (a,b)", {}, True),
        ("x!=a", {}, True),
        ("x=", {"x": ""}, True),
        ("x in (,a)", {"x": ""}, True),
        ("x in ()", {"x": ""}, True),
        ("x=z", {}, False),
        ("x=", {}, False),
        ("x=y", {"x": "z"}, False),
        ("x=y,z=w", {"x": "w", "z": "w"}, False),
        ("x!=y,z!=w", {"x": "z", "z": "w"}, False),
        ("x", {"y": "z"}, False),
        ("!x", {"x": "z"}, False),
        ("x>1", {"x": "0"}, False),
        ("x<1", {"x": "2"}, False),
        ("x>1", {"x": "abc"}, False),
        ("x>1", {}, False),
        ("x in (a,b)", {"x": "c"}, False),
        ("x in (a,b)", {}, False),
        ("x notin (a,b)", {"x": "a"}, False),
        ("foo=bar,foobar=bar,baz=blah", {"foo": "bar", "baz": "blah"}, False),
    ],
)
def test_label_matching(selector, labels, want):
    assert parse_label_selector(selector).matches(labels) is want


def test_none_labels_match_like_empty_set():
    assert parse_label_selector("!x").matches(None)
    assert not parse_label_selector("x").matches(None)
    assert everything().matches(None)


def test_everything_and_nothing():
    assert everything().empty and everything().matches({"a": "b"})
    assert parse_label_selector("").empty
    assert not nothing().empty
    assert not nothing().matches({})
    assert str(nothing()) == ""
    assert nothing().matches_nothing and not everything().matches_nothing
    assert not parse_label_selector("a").empty


def test_parse_error_messages_match_upstream():
    with pytest.raises(StatusError) as ei:
        parse_label_selector("a$=b")
    assert ei.value.message == (
        "unable to parse requirement: <nil>: Invalid value: \"a$\": name part must consist of alphanumeric "
        "characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  "
        "or 'my.name',  or '123-abc', regex used for validation is "
        "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
    )
    with pytest.raises(StatusError) as ei:
        parse_label_selector("a=b$")
    assert ei.value.message.startswith('unable to parse requirement: values[0][a]: Invalid value: "b$": '
                                       "a valid label must be an empty string")
    with pytest.raises(StatusError) as ei:
        parse_label_selector("x=a b")
    assert ei.value.message == "found 'b', expected: ',' or 'end of string'"
    with pytest.raises(StatusError) as ei:
        parse_label_selector("x,")
    assert ei.value.message == "found '', expected: identifier after ','"
    with pytest.raises(StatusError) as ei:
        parse_label_selector("x (")
    assert ei.value.message == "unable to parse requirement: found '(', expected: in, notin, =, ==, !=, gt, lt"
    with pytest.raises(StatusError) as ei:
        parse_label_selector("x<a")
    assert ei.value.message == ('unable to parse requirement: values[0]: Invalid value: "a": '
                                "for 'Gt', 'Lt' operators, the value must be an integer")


def test_long_key_and_prefix_validation():
    parse_label_selector("example.com/" + "a" * 63)
    with pytest.raises(StatusError, match="name part must be no more than 63 bytes"):
        parse_label_selector("a" * 64)
    with pytest.raises(StatusError, match="prefix part a lowercase RFC 1123 subdomain"):
        parse_label_selector("Example.com/a")
    with pytest.raises(StatusError, match="must be no more than 63 bytes"):
        parse_label_selector("a=" + "b" * 64)


def test_requires_exact_match():
    s = parse_label_selector("app=web,tier in (fe),env in (a,b),x!=y")
    assert s.requires_exact_match("app") == "web"
    assert s.requires_exact_match("tier") == "fe"
    assert s.requires_exact_match("env") is None
    assert s.requires_exact_match("x") is None
    assert s.requires_exact_match("missing") is None


def test_parse_is_memoised_and_immutable():
    assert parse_label_selector("a=b,c") is parse_label_selector("a=b,c")
    s = parse_label_selector("a=b")
    s2 = s.add(Requirement.new("c", EXISTS))
    assert str(s) == "a=b" and str(s2) == "a=b,c"


# --- Requirement.new -------------------------------------------------------------------------


def test_requirement_constructor_errors():
    with pytest.raises(LabelSelectorError, match="values: Invalid value: null: for 'in', 'notin' operators"):
        Requirement.new("x1", IN, [])
    with pytest.raises(LabelSelectorError, match="exact-match compatibility requires one single value"):
        Requirement.new("x5", EQUALS, ["foo", "bar"])
    with pytest.raises(LabelSelectorError, match="values set must be empty for exists and does not exist"):
        Requirement.new("x8", EXISTS, ["foo"])
    with pytest.raises(LabelSelectorError, match='operator: Unsupported value: "bogus"'):
        Requirement.new("x", "bogus", ["a"])
    with pytest.raises(LabelSelectorError) as ei:
        Requirement.new("a$", IN, ["b$"])
    assert str(ei.value).startswith('[key: Invalid value: "a$"')
    assert Requirement.new("x", DOES_NOT_EXIST).matches({"y": "1"})


# --- metav1.LabelSelector --------------------------------------------------------------------


def test_label_selector_dict_nil_and_empty():
    assert selector_from_label_selector(None).matches_nothing
    assert not selector_from_label_selector(None).matches({"a": "b"})
    assert selector_from_label_selector({}).empty
    assert selector_from_label_selector({"matchLabels": {}, "matchExpressions": []}).matches({"a": "b"})


def test_label_selector_dict_conversion():
    s = selector_from_label_selector({
        "matchLabels": {"app": "web"},
        "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["fe", "be"]},
            {"key": "env", "operator": "NotIn", "values": ["prod"]},
            {"key": "team", "operator": "Exists"},
            {"key": "canary", "operator": "DoesNotExist"},
        ],
    })
    assert str(s) == "app=web,!canary,env notin (prod),team,tier in (be,fe)"
    assert s.matches({"app": "web", "tier": "be", "team": "x"})
    assert not s.matches({"app": "web", "tier": "be", "team": "x", "canary": "1"})
    assert not s.matches({"app": "web", "tier": "be", "team": "x", "env": "prod"})
    assert not s.matches({"app": "web", "tier": "xx", "team": "x"})


def test_label_selector_dict_invalid():
    with pytest.raises(LabelSelectorError, match='"Gt" is not a valid label selector operator'):
        selector_from_label_selector({"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]})
    with pytest.raises(LabelSelectorError, match="for 'in', 'notin' operators, values set can't be empty"):
        selector_from_label_selector({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]})
    with pytest.raises(LabelSelectorError, match="key: Invalid value"):
        selector_from_label_selector({"matchLabels": {"bad key": "x"}})
    with pytest.raises(ValueError):  # LabelSelectorError is a ValueError for callers that don't import it
        selector_from_label_selector({"matchLabels": {"a": "bad value"}})


def test_selector_from_set():
    assert selector_from_set(None).empty and selector_from_set({}).empty
    s = selector_from_set({"b": "2", "a": "1"})
    assert str(s) == "a=1,b=2"
    assert s.matches({"a": "1", "b": "2", "c": "3"})
    assert not s.matches({"a": "1"})


# --- field selectors -------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["x=a,y=b,z=c", "", "x!=a,y=b"])
def test_field_selector_restring(text):
    assert str(parse_field_selector(text)) == text


def test_field_selector_double_equals_renders_single():
    assert str(parse_field_selector("a==b")) == "a=b"
    assert str(parse_field_selector("b=x,a=y")) == "a=y,b=x"


def test_field_selector_matching():
    s = parse_field_selector("spec.nodeName=node1,status.phase!=Failed")
    assert s.matches({"spec.nodeName": "node1", "status.phase": "Running"})
    assert not s.matches({"spec.nodeName": "node1", "status.phase": "Failed"})
    assert not s.matches({"spec.nodeName": "node2"})
    # A missing field reads as "": "spec.nodeName=" selects unscheduled pods.
    unscheduled = parse_field_selector("spec.nodeName=")
    assert unscheduled.matches({"metadata.name": "p"})
    assert not unscheduled.matches({"spec.nodeName": "n"})
    assert parse_field_selector("spec.nodeName!=").matches({"spec.nodeName": "n"})
    assert parse_field_selector("").matches({})


def test_field_selector_accessors():
    s = parse_field_selector("spec.nodeName=node1,metadata.name!=x")
    assert s.requirements == (("metadata.name", NOT_EQUALS, "x"), ("spec.nodeName", EQUALS, "node1"))
    assert s.exact_value("spec.nodeName") == "node1"
    assert s.exact_value("metadata.name") is None
    assert s.fields() == {"spec.nodeName", "metadata.name"}
    assert not s.empty and parse_field_selector("").empty and parse_field_selector(",,").empty


def test_field_selector_escaping():
    s = parse_field_selector(r"k=\,,k2=v2")
    assert s.exact_value("k") == ","
    assert parse_field_selector(r"k=\\,k2=v2").exact_value("k") == "\\"
    assert parse_field_selector(r"k=\\\,,k2=v2").exact_value("k") == "\\,"
    assert parse_field_selector(r"k=a\=b").exact_value("k") == "a=b"
    assert escape_field_value("a,b=c\\") == r"a\,b\=c\\"
    assert str(parse_field_selector(r"k=a\=b")) == r"k=a\=b"
    assert parse_field_selector("함=수,목=록").exact_value("함") == "수"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("x", "invalid selector: 'x'; can't understand 'x'"),
        ("a=b,c", "invalid selector: 'a=b,c'; can't understand 'c'"),
        ("k=\\", "invalid field selector: invalid escape sequence: \\"),
        ("k=\\a", "invalid field selector: invalid escape sequence: \\a"),
        ("x==a==b", "invalid field selector: unescaped character in value: 61"),
    ],
)
def test_field_selector_errors(text, message):
    with pytest.raises(StatusError) as ei:
        parse_field_selector(text)
    assert ei.value.code == 400
    assert ei.value.message == message


def test_field_selector_operator_split_points():
    # The first operator wins; "!=" and "==" are taken whole.
    assert parse_field_selector("a!=b").requirements == (("a", NOT_EQUALS, "b"),)
    assert parse_field_selector("a=!b").requirements == (("a", EQUALS, "!b"),)
    assert parse_field_selector("a!b=c").requirements == (("a!b", EQUALS, "c"),)


def test_field_selector_transform_and_from_set():
    s = parse_field_selector("metadata.name=a,spec.host=n1")
    t = s.transform(lambda f, v: ("spec.nodeName", v) if f == "spec.host" else (f, v))
    assert t.exact_value("spec.nodeName") == "n1"
    dropped = s.transform(lambda f, v: ("", "") if f == "metadata.name" else (f, v))
    assert dropped.requirements == (("spec.host", EQUALS, "n1"),)
    fs = field_selector_from_set({"metadata.namespace": "ns", "metadata.name": "x"})
    assert str(fs) == "metadata.name=x,metadata.namespace=ns"
    assert field_selector_from_set(None).empty
