"""Unknown-field handling (`fieldValidation=Strict|Warn|Ignore`), driven by the kinds' schema.

Upstream decodes into typed structs, which silently drops unknown fields; `Warn` (the
default) reports each dropped field in a `Warning` header, `Strict` rejects the request:

* create / update: 400 ``Deployment in version "v1" cannot be handled as a Deployment: strict
  decoding error: unknown field "spec.foo", unknown field "spec.bar"``;
* patch: 422 ``"" is invalid: patch: Invalid value: "<patched object>": strict decoding
  error: unknown field "spec.foo"`` (an Invalid error with an empty kind and name).

Warnings read ``299 - "unknown field \\"spec.foo\\""``; kubectl prints them as
``Warning: unknown field "spec.foo"``.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from apimachinery import errors
from apiserver.schema import TypeMismatch

MODES = ("Strict", "Warn", "Ignore")


class _BodyKind:
    """What `prune` reads of a resource, for a body kind that is not a resource."""

    __slots__ = ("group", "kind", "version")

    def __init__(self, group: str, version: str, kind: str) -> None:
        self.group, self.version, self.kind = group, version, kind


def go_quote(s: str) -> str:
    """Go's strconv.Quote (how upstream quotes a field path in its messages)."""
    out = ['"']
    for ch in s:
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        elif not ch.isprintable():
            out.append(f"\\u{ord(ch):04x}" if ord(ch) <= 0xFFFF else f"\\U{ord(ch):08x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def unknown_field_messages(paths: list[str]) -> list[str]:
    return [f"unknown field {go_quote(p)}" for p in paths]


_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def warning_header(message: str) -> tuple[bytes, bytes]:
    """An RFC 7234 warning with upstream's code and agent: ``299 - "<escaped text>"``. Control
    characters become spaces (Go's header writer does that to CR and LF; a header value may carry
    none): a warning's text can come from an object's data (a policy's messageExpression)."""
    text = _CONTROL.sub(" ", message).replace("\\", "\\\\").replace('"', '\\"')
    return b"warning", f'299 - "{text}"'.encode()


class FieldValidator:
    def __init__(self, schema: Any = None) -> None:
        self.schema = schema

    def check(self, group: str, version: str, kind: str, obj: dict[str, Any], mode: str = "Ignore") -> list[tuple[bytes, bytes]]:
        """`prune` for a body that is no stored object (DeleteOptions, TokenRequest, the reviews):
        wrong JSON types are a 400, typed nulls become absent, unknown fields are dropped."""
        return self.prune(_BodyKind(group, version, kind), obj, mode)

    def prune(self, res: Any, obj: dict[str, Any], mode: str, *, patched: bool = False) -> list[tuple[bytes, bytes]]:
        """Drop fields the kind doesn't have; → Warning headers (or an error when Strict).

        `patched` says `obj` is the result of a patch (upstream answers 422 then, not 400).
        The schema is chosen by the object's own apiVersion/kind when it has them: the handler
        may have converted it to its stored form already (events.k8s.io → core Event).
        """
        if mode and mode not in MODES:
            raise errors.bad_request(f'fieldValidation "{mode}" is invalid: must be one of Strict, Warn, Ignore')
        if self.schema is None and not hasattr(getattr(res, "strategy", None), "prune_unknown"):
            return []
        group, version, kind = res.group, res.version, res.kind
        api_version, obj_kind = obj.get("apiVersion"), obj.get("kind")
        if isinstance(api_version, str) and isinstance(obj_kind, str) and api_version and obj_kind:
            group, _, version = api_version.rpartition("/")
            kind = obj_kind
        own = getattr(getattr(res, "strategy", None), "prune_unknown", None)
        try:
            # custom resources prune by their definition's schema
            unknown = own(obj) if own is not None else self.schema.prune(group, version, kind, obj)
        except TypeMismatch as e:
            raise errors.bad_request(
                f'{res.kind} in version "{res.version}" cannot be handled as a {res.kind}: json: cannot unmarshal '
                f"{e.got} into Go struct field {kind}.{e.path} of type {e.want}"
            ) from None
        if not unknown or mode == "Ignore":
            return []
        messages = unknown_field_messages(unknown)
        if mode == "Strict":
            detail = "strict decoding error: " + ", ".join(messages)
            if patched:
                value = f"Invalid value: {go_quote(orjson.dumps(obj).decode())}: {detail}"
                raise errors.StatusError(422, "Invalid", f'"" is invalid: patch: {value}',
                                         {"causes": [errors.field_cause("patch", value)]})
            raise errors.bad_request(f'{res.kind} in version "{res.version}" cannot be handled as a {res.kind}: '
                                     f"{detail}")
        return [warning_header(m) for m in messages]
