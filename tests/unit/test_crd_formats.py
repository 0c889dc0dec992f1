"""apiserver.crd.formats: the string formats CRD schemas support, as validate() checks them."""

from __future__ import annotations

import pytest

from apiserver.crd.schema import validate
from tests.unit.test_crd_schema import cause, spec_schema


@pytest.mark.parametrize(("fmt", "good", "bad"), [
    ("date-time", "2024-01-02T03:04:05Z", "2024-01-02 03:04:05"),
    ("date", "2024-02-29", "2023-02-29"),
    ("uuid", "123e4567-e89b-12d3-a456-426614174000", "123e4567"),
    ("ipv4", "010.1.2.3", "1.2.3"),
    ("ipv6", "fe80::1", "1.2.3.4"),
    ("cidr", "10.0.0.0/8", "10.0.0.0/33"),
    ("byte", "aGVsbG8=", "hello!"),
    ("hostname", "example.com", "-bad"),
    ("email", "Jane <jane@example.com>", "jane.example.com"),
    ("uri", "https://example.com/a?b=c", "example.com"),
    ("duration", "1h30m", "soon"),
    ("mac", "01:23:45:67:89:ab", "01:23:45:67:89"),
    ("k8s-short-name", "my-name", "My-Name"),
])
def test_string_formats(fmt: str, good: str, bad: str) -> None:
    schema = spec_schema({"f": {"type": "string", "format": fmt}})
    assert validate(schema, {"spec": {"f": good}}) == []
    assert validate(schema, {"spec": {"f": bad}}) == [cause(
        "spec.f", f'Invalid value: "{bad}": spec.f in body must be of type {fmt}: "{bad}"', "FieldValueTypeInvalid")]


def test_unknown_and_mismatched_formats_are_ignored() -> None:
    schema = spec_schema({"a": {"type": "string", "format": "int32"}, "b": {"type": "string", "format": "nope"}})
    assert validate(schema, {"spec": {"a": "x", "b": "y"}}) == []

