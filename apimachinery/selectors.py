"""Label and field selectors with upstream semantics (k8s.io/apimachinery/pkg/labels, pkg/fields).

Parse once, match many times: a parsed selector is immutable, parsing is memoised per string, and
``matches`` only does dict look-ups (equality requirements are checked first, with no dispatch).

Label selectors
    ``parse_label_selector("app=web,tier in (fe,be),!canary")`` — the ``?labelSelector=`` syntax:
    ``=``, ``==``, ``!=``, ``in (a,b)``, ``notin (a,b)``, ``key`` (exists), ``!key`` (does not exist),
    ``key>3`` / ``key<3`` (integer compare, as upstream), comma = AND. Errors → StatusError 400.
    ``selector_from_label_selector(d)`` converts a metav1.LabelSelector dict (spec.selector of
    controllers): None → matches nothing, {} → matches everything (upstream LabelSelectorAsSelector).
    ``selector_from_set(d)`` is upstream's SelectorFromValidatedSet (Service spec.selector).

Field selectors
    ``parse_field_selector("spec.nodeName=node1,status.phase!=Failed")`` — ``=``, ``==``, ``!=``,
    comma = AND, ``\\,`` ``\\=`` ``\\\\`` escapes in values. A field missing from the field set
    reads as "" (upstream Fields.Get). Errors → StatusError 400.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from functools import lru_cache
from typing import Any

from apimachinery.errors import bad_request
from apimachinery.validation import go_quote, is_qualified_name, is_valid_label_value

# Operators, spelled as upstream's selection.Operator values.
DOES_NOT_EXIST = "!"
EQUALS = "="
DOUBLE_EQUALS = "=="
IN = "in"
NOT_EQUALS = "!="
NOT_IN = "notin"
EXISTS = "exists"
GREATER_THAN = "gt"
LESS_THAN = "lt"

_BINARY_OPERATORS = (IN, NOT_IN, EQUALS, DOUBLE_EQUALS, NOT_EQUALS, GREATER_THAN, LESS_THAN)
_UNARY_OPERATORS = (EXISTS, DOES_NOT_EXIST)
_VALID_OPERATORS = _BINARY_OPERATORS + _UNARY_OPERATORS

_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1


class LabelSelectorError(ValueError):
    """A requirement or metav1.LabelSelector that is not valid (message as upstream's error)."""


def _parse_int64(s: str) -> int | None:
    """Go strconv.ParseInt(s, 10, 64): optional sign then ASCII digits only."""
    body = s[1:] if s[:1] in ("+", "-") else s
    if not body or not body.isascii() or not body.isdigit():
        return None
    v = int(s)
    return v if _INT64_MIN <= v <= _INT64_MAX else None


def _aggregate(errors: list[str]) -> str:
    """utilerrors.NewAggregate(...).Error(): one message as is, several deduplicated in brackets."""
    seen: list[str] = []
    for e in errors:
        if e not in seen:
            seen.append(e)
    return seen[0] if len(seen) == 1 else "[" + ", ".join(seen) + "]"


class Requirement:
    """One ``key op values`` term. Build with ``Requirement.new`` (validating) or parse."""

    __slots__ = ("_set", "int_value", "key", "operator", "values")

    def __init__(self, key: str, operator: str, values: Iterable[str] = ()) -> None:
        self.key = key
        self.operator = operator
        self.values: tuple[str, ...] = tuple(values)
        self._set = frozenset(self.values)
        self.int_value = (_parse_int64(self.values[0]) if operator in (GREATER_THAN, LESS_THAN) and self.values
                          else None)

    @classmethod
    def new(cls, key: str, operator: str, values: Iterable[str] = (), path: str | None = None) -> Requirement:
        """Upstream NewRequirement: validates key, operator arity and values; LabelSelectorError."""
        vals = list(values)
        errs: list[str] = []
        key_path = f"{path}.key" if path else "key"
        values_path = f"{path}.values" if path else "values"
        msgs = is_qualified_name(key)
        if msgs:
            errs.append(f"{key_path}: Invalid value: {go_quote(key)}: {'; '.join(msgs)}")
        # Go renders the []string bad value as JSON; an empty (nil) slice is `null`.
        rendered = "[" + ",".join(go_quote(v) for v in vals) + "]" if vals else "null"
        if operator in (IN, NOT_IN):
            if not vals:
                errs.append(f"{values_path}: Invalid value: {rendered}: "
                            "for 'in', 'notin' operators, values set can't be empty")
        elif operator in (EQUALS, DOUBLE_EQUALS, NOT_EQUALS):
            if len(vals) != 1:
                errs.append(f"{values_path}: Invalid value: {rendered}: "
                            "exact-match compatibility requires one single value")
        elif operator in _UNARY_OPERATORS:
            if vals:
                errs.append(f"{values_path}: Invalid value: {rendered}: "
                            "values set must be empty for exists and does not exist")
        elif operator in (GREATER_THAN, LESS_THAN):
            if len(vals) != 1:
                errs.append(f"{values_path}: Invalid value: {rendered}: "
                            "for 'Gt', 'Lt' operators, exactly one value is required")
            for i, v in enumerate(vals):
                if _parse_int64(v) is None:
                    errs.append(f"{values_path}[{i}]: Invalid value: {go_quote(v)}: "
                                "for 'Gt', 'Lt' operators, the value must be an integer")
        else:
            supported = ", ".join(go_quote(o) for o in _VALID_OPERATORS)
            op_path = f"{path}.operator" if path else "operator"
            errs.append(f"{op_path}: Unsupported value: {go_quote(operator)}: supported values: {supported}")
        for i, v in enumerate(vals):
            msgs = is_valid_label_value(v)
            if msgs:
                errs.append(f"{values_path}[{i}][{key}]: Invalid value: {go_quote(v)}: {'; '.join(msgs)}")
        if errs:
            raise LabelSelectorError(_aggregate(errs))
        return cls(key, operator, vals)

    def matches(self, labels: Mapping[str, str]) -> bool:
        op = self.operator
        if op in (EQUALS, DOUBLE_EQUALS, IN):
            v = labels.get(self.key)
            return v is not None and v in self._set
        if op in (NOT_EQUALS, NOT_IN):
            v = labels.get(self.key)
            return v is None or v not in self._set
        if op == EXISTS:
            return self.key in labels
        if op == DOES_NOT_EXIST:
            return self.key not in labels
        if op in (GREATER_THAN, LESS_THAN):
            v = labels.get(self.key)
            if v is None or self.int_value is None:
                return False
            have = _parse_int64(v)
            if have is None:
                return False
            return have > self.int_value if op == GREATER_THAN else have < self.int_value
        return False

    def __str__(self) -> str:
        op = self.operator
        if op == EXISTS:
            return self.key
        if op == DOES_NOT_EXIST:
            return "!" + self.key
        vals = ",".join(sorted(self.values)) if len(self.values) > 1 else "".join(self.values)
        if op in (IN, NOT_IN):
            return f"{self.key} {op} ({vals})"
        sym = {GREATER_THAN: ">", LESS_THAN: "<"}.get(op, op)
        return f"{self.key}{sym}{vals}"

    def __repr__(self) -> str:
        return f"Requirement({self.key!r}, {self.operator!r}, {list(self.values)!r})"

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Requirement) and self.key == other.key
                and self.operator == other.operator and self.values == other.values)

    def __hash__(self) -> int:
        return hash((self.key, self.operator, self.values))


_EMPTY_LABELS: Mapping[str, str] = {}


class LabelSelector:
    """An immutable AND of label requirements (sorted by key, as upstream)."""

    __slots__ = ("_absent", "_eq", "_nothing", "_other", "_present", "_str", "requirements")

    def __init__(self, requirements: Iterable[Requirement] = (), *, nothing: bool = False) -> None:
        reqs = sorted(requirements, key=lambda r: r.key)
        self.requirements: tuple[Requirement, ...] = tuple(reqs)
        self._nothing = nothing
        eq, present, absent, other = [], [], [], []
        for r in reqs:
            if r.operator in (EQUALS, DOUBLE_EQUALS, IN) and len(r.values) == 1:
                eq.append((r.key, r.values[0]))
            elif r.operator == EXISTS:
                present.append(r.key)
            elif r.operator == DOES_NOT_EXIST:
                absent.append(r.key)
            else:
                other.append(r)
        self._eq = tuple(eq)
        self._present = tuple(present)
        self._absent = tuple(absent)
        self._other = tuple(other)
        self._str: str | None = None

    @property
    def empty(self) -> bool:
        """True when the selector does not restrict anything (matches every object)."""
        return not self._nothing and not self.requirements

    @property
    def matches_nothing(self) -> bool:
        return self._nothing

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        if self._nothing:
            return False
        if labels is None:
            labels = _EMPTY_LABELS
        for k, v in self._eq:
            if labels.get(k) != v:
                return False
        for k in self._present:
            if k not in labels:
                return False
        for k in self._absent:
            if k in labels:
                return False
        for r in self._other:
            if not r.matches(labels):
                return False
        return True

    def requires_exact_match(self, label: str) -> str | None:
        """The single value `label` must have (for index look-ups), or None."""
        for r in self.requirements:
            if r.key == label:
                if r.operator in (EQUALS, DOUBLE_EQUALS, IN) and len(r.values) == 1:
                    return r.values[0]
                return None
        return None

    def add(self, *requirements: Requirement) -> LabelSelector:
        if self._nothing:
            return self
        return LabelSelector(self.requirements + requirements)

    def __str__(self) -> str:
        if self._str is None:
            self._str = ",".join(str(r) for r in self.requirements)
        return self._str

    def __repr__(self) -> str:
        return "LabelSelector(<nothing>)" if self._nothing else f"LabelSelector({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, LabelSelector) and self._nothing == other._nothing
                and self.requirements == other.requirements)

    def __hash__(self) -> int:
        return hash((self._nothing, self.requirements))


_EVERYTHING = LabelSelector()
_NOTHING = LabelSelector(nothing=True)


def everything() -> LabelSelector:
    """A selector that matches every label set."""
    return _EVERYTHING


def nothing() -> LabelSelector:
    """A selector that matches no label set (upstream labels.Nothing(); renders as "")."""
    return _NOTHING


def selector_from_set(labels: Mapping[str, str] | None) -> LabelSelector:
    """Equality selector for exactly these labels, unvalidated; None or {} → everything."""
    if not labels:
        return _EVERYTHING
    return LabelSelector(Requirement(k, EQUALS, (v,)) for k, v in labels.items())


_LABEL_SELECTOR_OPS = {"In": IN, "NotIn": NOT_IN, "Exists": EXISTS, "DoesNotExist": DOES_NOT_EXIST}


def label_selector_from_map(labels: Mapping[str, str] | None) -> dict[str, Any] | None:
    """A plain label map (a ReplicationController's selector) as a metav1.LabelSelector; an empty
    one is no selector (upstream's conversion gives nil, which selects nothing)."""
    return {"matchLabels": dict(labels)} if labels else None


def selector_from_label_selector(d: Mapping[str, Any] | None) -> LabelSelector:
    """A metav1.LabelSelector dict as a selector (upstream metav1.LabelSelectorAsSelector).

    None → ``nothing()`` (a nil selector selects nothing); a selector with no matchLabels and no
    matchExpressions → ``everything()``. Invalid keys/values/operators raise LabelSelectorError
    (a ValueError) with upstream's message; controllers treat that as "select nothing" and the
    apiserver rejects such objects earlier with ``validation.validate_label_selector`` (422).
    """
    if d is None:
        return _NOTHING
    match_labels = d.get("matchLabels") or {}
    match_expressions = d.get("matchExpressions") or []
    if not match_labels and not match_expressions:
        return _EVERYTHING
    reqs = [Requirement.new(k, EQUALS, (v,)) for k, v in match_labels.items()]
    for expr in match_expressions:
        op = _LABEL_SELECTOR_OPS.get(expr.get("operator"))
        if op is None:
            raise LabelSelectorError(f"{go_quote(str(expr.get('operator') or ''))} is not a valid label selector operator")
        reqs.append(Requirement.new(expr.get("key") or "", op, expr.get("values") or ()))
    return LabelSelector(reqs)


# --- label selector string parser (upstream labels.Parse: lexer + recursive descent) ---------

_T_EOS, _T_CLOSE, _T_COMMA, _T_NOT, _T_DEQ, _T_EQ, _T_GT, _T_IDENT, _T_IN, _T_LT, _T_NEQ, _T_NOTIN, _T_OPEN = range(13)
_TOKEN_OF = {")": _T_CLOSE, ",": _T_COMMA, "!": _T_NOT, "==": _T_DEQ, "=": _T_EQ, ">": _T_GT, "in": _T_IN,
             "<": _T_LT, "!=": _T_NEQ, "notin": _T_NOTIN, "(": _T_OPEN}
_SPECIAL = frozenset("=!(),><")
_WHITESPACE = frozenset(" \t\r\n")
_STOP = _SPECIAL | _WHITESPACE
_OPERATOR_OF_TOKEN = {_T_IN: IN, _T_EQ: EQUALS, _T_DEQ: DOUBLE_EQUALS, _T_GT: GREATER_THAN, _T_LT: LESS_THAN,
                      _T_NOTIN: NOT_IN, _T_NEQ: NOT_EQUALS}


class _SyntaxError(Exception):
    pass


def _lex(s: str) -> list[tuple[int, str]]:
    items: list[tuple[int, str]] = []
    i, n = 0, len(s)
    while True:
        while i < n and s[i] in _WHITESPACE:
            i += 1
        if i >= n:
            items.append((_T_EOS, ""))
            return items
        ch = s[i]
        if ch in _SPECIAL:
            # Longest run of special characters that still names a token ("!=", "==").
            j = i + 1
            tok = _TOKEN_OF[ch]
            if j < n and s[i:j + 1] in _TOKEN_OF:
                j += 1
                tok = _TOKEN_OF[s[i:j]]
            items.append((tok, s[i:j]))
            i = j
        else:
            j = i + 1
            while j < n and s[j] not in _STOP:
                j += 1
            word = s[i:j]
            items.append((_T_IN if word == "in" else _T_NOTIN if word == "notin" else _T_IDENT, word))
            i = j


class _Parser:
    def __init__(self, s: str) -> None:
        self.items = _lex(s)
        self.pos = 0

    # In value context the keywords `in` / `notin` are plain identifiers.
    def lookahead(self, values: bool = True) -> tuple[int, str]:
        tok, lit = self.items[self.pos]
        if values and tok in (_T_IN, _T_NOTIN):
            tok = _T_IDENT
        return tok, lit

    def consume(self, values: bool = True) -> tuple[int, str]:
        tok, lit = self.lookahead(values)
        self.pos += 1
        return tok, lit

    def parse(self) -> list[Requirement]:
        reqs: list[Requirement] = []
        while True:
            tok, lit = self.lookahead()
            if tok in (_T_IDENT, _T_NOT):
                try:
                    reqs.append(self.parse_requirement())
                except (_SyntaxError, LabelSelectorError) as e:
                    raise _SyntaxError(f"unable to parse requirement: {e}") from None
                t, lit = self.consume()
                if t == _T_EOS:
                    return reqs
                if t == _T_COMMA:
                    t2, lit2 = self.lookahead()
                    if t2 not in (_T_IDENT, _T_NOT):
                        raise _SyntaxError(f"found '{lit2}', expected: identifier after ','")
                else:
                    raise _SyntaxError(f"found '{lit}', expected: ',' or 'end of string'")
            elif tok == _T_EOS:
                return reqs
            else:
                raise _SyntaxError(f"found '{lit}', expected: !, identifier, or 'end of string'")

    def parse_requirement(self) -> Requirement:
        key, op = self.parse_key_and_infer_operator()
        if op is not None:
            return Requirement.new(key, op, ())
        op = self.parse_operator()
        values = self.parse_values() if op in (IN, NOT_IN) else self.parse_exact_value()
        return Requirement.new(key, op, sorted(values))

    def parse_key_and_infer_operator(self) -> tuple[str, str | None]:
        op = None
        tok, lit = self.consume()
        if tok == _T_NOT:
            op = DOES_NOT_EXIST
            tok, lit = self.consume()
        if tok != _T_IDENT:
            raise _SyntaxError(f"found '{lit}', expected: identifier")
        msgs = is_qualified_name(lit)
        if msgs:
            raise _SyntaxError(f"<nil>: Invalid value: {go_quote(lit)}: {'; '.join(msgs)}")
        if self.lookahead()[0] in (_T_EOS, _T_COMMA) and op is None:
            op = EXISTS
        return lit, op

    def parse_operator(self) -> str:
        tok, lit = self.consume(values=False)
        op = _OPERATOR_OF_TOKEN.get(tok)
        if op is None:
            raise _SyntaxError(f"found '{lit}', expected: {', '.join(_BINARY_OPERATORS)}")
        return op

    def parse_values(self) -> set[str]:
        tok, lit = self.consume()
        if tok != _T_OPEN:
            raise _SyntaxError(f"found '{lit}' expected: '('")
        tok, lit = self.lookahead()
        if tok in (_T_IDENT, _T_COMMA):
            values = self.parse_identifiers_list()
            if self.consume()[0] != _T_CLOSE:
                raise _SyntaxError(f"found '{lit}', expected: ')'")
            return values
        if tok == _T_CLOSE:
            self.consume()
            return {""}
        raise _SyntaxError(f"found '{lit}', expected: ',', ')' or identifier")

    def parse_identifiers_list(self) -> set[str]:
        values: set[str] = set()
        while True:
            tok, lit = self.consume()
            if tok == _T_IDENT:
                values.add(lit)
                tok2, lit2 = self.lookahead()
                if tok2 == _T_COMMA:
                    continue
                if tok2 == _T_CLOSE:
                    return values
                raise _SyntaxError(f"found '{lit2}', expected: ',' or ')'")
            if tok == _T_COMMA:  # empty values: "(,a)", "(a,)", "(a,,b)"
                if not values:
                    values.add("")
                tok2, _ = self.lookahead()
                if tok2 in (_T_CLOSE, _T_COMMA):
                    values.add("")
                if tok2 == _T_CLOSE:
                    return values
                continue
            raise _SyntaxError(f"found '{lit}', expected: ',', or identifier")

    def parse_exact_value(self) -> set[str]:
        if self.lookahead()[0] in (_T_EOS, _T_COMMA):
            return {""}
        tok, lit = self.consume()
        if tok == _T_IDENT:
            return {lit}
        raise _SyntaxError(f"found '{lit}', expected: identifier")


@lru_cache(maxsize=2048)
def _parse_label_selector_cached(s: str) -> LabelSelector | str:
    try:
        reqs = _Parser(s).parse()
    except _SyntaxError as e:
        return str(e)
    return LabelSelector(reqs) if reqs else _EVERYTHING


def parse_label_selector(s: str | None) -> LabelSelector:
    """Parse a ``labelSelector`` query string; "" or None → everything. Bad syntax → 400 BadRequest."""
    if not s:
        return _EVERYTHING
    result = _parse_label_selector_cached(s)
    if isinstance(result, str):
        raise bad_request(result)
    return result


# --- field selectors -------------------------------------------------------------------------

FieldRequirement = tuple[str, str, str]  # (field, "=" | "!=", value)


def escape_field_value(s: str) -> str:
    """Escape a literal for use as a field selector value (upstream fields.EscapeValue)."""
    return s.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")


def _unescape_field_value(s: str) -> str:
    if "\\" not in s and "," not in s and "=" not in s:
        return s
    out = []
    in_slash = False
    for c in s:
        if in_slash:
            if c not in "\\,=":
                raise _SyntaxError(f"invalid field selector: invalid escape sequence: \\{c}")
            out.append(c)
            in_slash = False
        elif c == "\\":
            in_slash = True
        elif c in ",=":
            # Go prints the rune with %v, i.e. as its code point.
            raise _SyntaxError(f"invalid field selector: unescaped character in value: {ord(c)}")
        else:
            out.append(c)
    if in_slash:
        raise _SyntaxError("invalid field selector: invalid escape sequence: \\")
    return "".join(out)


def _split_terms(s: str) -> list[str]:
    """Split on commas not escaped by a backslash (the backslash stays in the term)."""
    if "\\" not in s:
        return s.split(",")
    terms, start, in_slash = [], 0, False
    for i, c in enumerate(s):
        if in_slash:
            in_slash = False
        elif c == "\\":
            in_slash = True
        elif c == ",":
            terms.append(s[start:i])
            start = i + 1
    terms.append(s[start:])
    return terms


def _split_term(term: str) -> tuple[str, str, str] | None:
    """lhs, operator, raw rhs at the first operator; '!=' and '==' win over '='."""
    for i, c in enumerate(term):
        if c == "!" and term.startswith("!=", i):
            return term[:i], NOT_EQUALS, term[i + 2:]
        if c == "=":
            if term.startswith("==", i):
                return term[:i], EQUALS, term[i + 2:]
            return term[:i], EQUALS, term[i + 1:]
    return None


class FieldSelector:
    """An immutable AND of ``field = value`` / ``field != value`` terms."""

    __slots__ = ("_eq", "_ne", "requirements")

    def __init__(self, requirements: Iterable[FieldRequirement] = ()) -> None:
        self.requirements: tuple[FieldRequirement, ...] = tuple(requirements)
        self._eq = tuple((f, v) for f, op, v in self.requirements if op == EQUALS)
        self._ne = tuple((f, v) for f, op, v in self.requirements if op != EQUALS)

    @property
    def empty(self) -> bool:
        return not self.requirements

    def matches(self, fields: Mapping[str, str]) -> bool:
        for f, v in self._eq:
            if fields.get(f, "") != v:
                return False
        for f, v in self._ne:
            if fields.get(f, "") == v:
                return False
        return True

    def exact_value(self, field: str) -> str | None:
        """The value `field` must equal (for index look-ups such as spec.nodeName), or None."""
        for f, v in self._eq:
            if f == field:
                return v
        return None

    def fields(self) -> set[str]:
        """The field names this selector mentions (to check them against a kind's supported set)."""
        return {f for f, _, _ in self.requirements}

    def transform(self, fn: Callable[[str, str], tuple[str, str]]) -> FieldSelector:
        """Rewrite each (field, value); a term mapped to ("", "") is dropped (upstream Transform)."""
        out = []
        for f, op, v in self.requirements:
            nf, nv = fn(f, v)
            if nf or nv:
                out.append((nf, op, nv))
        return FieldSelector(out)

    def __str__(self) -> str:
        return ",".join(f"{f}{op}{escape_field_value(v)}" for f, op, v in self.requirements)

    def __repr__(self) -> str:
        return f"FieldSelector({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FieldSelector) and self.requirements == other.requirements

    def __hash__(self) -> int:
        return hash(self.requirements)


_EVERYTHING_FIELDS = FieldSelector()


def everything_fields() -> FieldSelector:
    return _EVERYTHING_FIELDS


def field_selector_from_set(fields: Mapping[str, str] | None) -> FieldSelector:
    """Equality selector for exactly these fields; None or {} → everything."""
    if not fields:
        return _EVERYTHING_FIELDS
    return FieldSelector(sorted((f, EQUALS, v) for f, v in fields.items()))


@lru_cache(maxsize=2048)
def _parse_field_selector_cached(s: str) -> FieldSelector | str:
    reqs: list[FieldRequirement] = []
    for part in sorted(_split_terms(s)):
        if not part:
            continue
        split = _split_term(part)
        if split is None:
            return f"invalid selector: '{s}'; can't understand '{part}'"
        lhs, op, rhs = split
        try:
            reqs.append((lhs, op, _unescape_field_value(rhs)))
        except _SyntaxError as e:
            return str(e)
    return FieldSelector(reqs) if reqs else _EVERYTHING_FIELDS


def parse_field_selector(s: str | None) -> FieldSelector:
    """Parse a ``fieldSelector`` query string; "" or None → everything. Bad syntax → 400 BadRequest."""
    if not s:
        return _EVERYTHING_FIELDS
    result = _parse_field_selector_cached(s)
    if isinstance(result, str):
        raise bad_request(result)
    return result


__all__ = [
    "DOES_NOT_EXIST", "DOUBLE_EQUALS", "EQUALS", "EXISTS", "GREATER_THAN", "IN", "LESS_THAN", "NOT_EQUALS",
    "NOT_IN", "FieldSelector", "LabelSelector", "LabelSelectorError", "Requirement",
    "escape_field_value", "everything", "everything_fields", "field_selector_from_set", "nothing",
    "parse_field_selector", "parse_label_selector", "selector_from_label_selector", "selector_from_set",
]
