"""Unknown-field handling (`fieldValidation=Strict|Warn|Ignore`), driven by the kinds' schema.

Upstream decodes into typed structs, which silently drops unknown fields; `Warn` (the
default) reports each dropped field in a `Warning` header, `Strict` rejects the request.
"""

from __future__ import annotations

from typing import Any

from apimachinery import errors

MODES = ("Strict", "Warn", "Ignore")


class FieldValidator:
    def __init__(self, schema: Any = None) -> None:
        self.schema = schema

    def prune(self, res: Any, obj: dict[str, Any], mode: str) -> list[tuple[bytes, bytes]]:
        """Drop fields the kind doesn't have; → Warning headers (or a 400 when Strict)."""
        if mode and mode not in MODES:
            raise errors.bad_request(f'fieldValidation "{mode}" is invalid: must be one of Strict, Warn, Ignore')
        if self.schema is None:
            return []
        unknown = self.schema.prune(res.group, res.version, res.kind, obj)
        if not unknown:
            return []
        if mode == "Strict":
            detail = ", ".join(f'unknown field "{p}"' for p in unknown)
            raise errors.bad_request(f"strict decoding error: {detail}")
        if mode == "Ignore":
            return []
        return [(b"warning", f'299 - "unknown field \\"{p}\\""'.encode()) for p in unknown]
