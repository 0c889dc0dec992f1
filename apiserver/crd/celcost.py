"""Static checks of x-kubernetes-validations rules: declared names and estimated cost.

Upstream type-checks every rule against the schema (an unknown field or identifier is a
compile error) and estimates its worst-case cost from the schema's bounds (maxItems,
maxProperties, maxLength, else what fits in a 3 MiB request), refusing a definition whose
rules could be too expensive to run. cel-python has neither a checker nor a cost model; this
module walks its parse tree with the schema to do both.

The cost model follows cel-go's estimator in shape — a comprehension costs its range's size
times its body, string functions cost a tenth of the string's length, field selection and
calls cost 1 — so that the rules upstream refuses (nested loops over unbounded lists, string
scans inside loops over unbounded lists) are refused here with the same messages, and the
bounded ones pass. Figures are not cel-go's to the unit; values whose size this walk cannot
tell (results of functions it does not model) count as small rather than refusing a rule
upstream would accept.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

from apiserver.crd.schema import (
    EMBEDDED,
    INT_OR_STRING,
    Schema,
    additional_of,
    default_of,
    flag,
    items_of,
    props_of,
    type_of,
)

MAX_REQUEST_BYTES = 3 * 1024 * 1024
# apiextensions validation: per expression (rule cost × how often it may run) and per definition
STATIC_EXPRESSION_LIMIT = 10_000_000
STATIC_CRD_LIMIT = 100_000_000

_MAX_STRING = MAX_REQUEST_BYTES - 2
_STRING_TRAVERSAL = 0.1  # cel-go's common.StringTraversalCostFactor
_REGEX_STRING = 0.25  # common.RegexStringLengthCostFactor
_LIST_CREATE, _MAP_CREATE = 10, 30
_MACROS = ("all", "exists", "exists_one", "map", "filter")
# identifiers a rule may name besides self/oldSelf and its loop variables: type names for
# `type(x) == string`, and the namespaces of Kubernetes' CEL libraries (sets.contains(…), …)
_TYPE_NAMES = frozenset({"int", "uint", "double", "bool", "string", "bytes", "list", "map", "null_type", "type",
                         "duration", "timestamp", "dyn", "google"})
_NAMESPACES = frozenset({"sets", "math", "strings", "base64", "optional", "lists"})
_STRING_SCANS = frozenset({"contains", "startsWith", "endsWith", "indexOf", "lastIndexOf", "lowerAscii",
                           "upperAscii", "trim", "replace", "split", "substring", "charAt", "reverse", "quote",
                           "format", "join"})
_REGEX_SCANS = frozenset({"matches", "find", "findAll"})
_LIST_SCANS = frozenset({"isSorted", "sum", "min", "max", "indexOf", "lastIndexOf", "distinct", "flatten",
                         "slice", "sort"})


class RuleCompileError(Exception):
    """A name the schema does not declare, worded as cel-go's checker words it."""

    def __init__(self, message: str, line: int, column: int) -> None:
        super().__init__(f"compilation failed: ERROR: <input>:{line}:{column}: {message}")


@dataclass(frozen=True, slots=True)
class _V:
    """What the walk knows of a value: its kind, its largest size, where it comes from."""

    kind: str  # "list" | "map" | "object" | "string" | "scalar" | "dyn"
    size: int = 1  # elements of a list/map, bytes of a string
    schema: Schema | None = None
    elem: _V | None = None
    root: bool = False  # resource root or embedded resource: apiVersion/kind/metadata exposed


_DYN = _V("dyn")
_SCALAR = _V("scalar")
_STRING = _V("string", _MAX_STRING)


# --- sizes from the schema (k8s.io/apiserver/pkg/cel/common.SchemaDeclType) --------------------

def _string_size(s: Schema) -> int:
    if isinstance(s.get("maxLength"), int):
        return max(s["maxLength"], 0) * 4  # runes → bytes
    fmt = s.get("format")
    if fmt in ("duration", "date-time"):
        return 32
    if fmt == "date":
        return 12
    enum = [e for e in s.get("enum") or [] if isinstance(e, str)]
    if enum:
        return max(len(e) for e in enum)
    return _MAX_STRING


def min_serialized_size(s: Schema | None) -> int:
    """The fewest JSON bytes a value of this schema takes."""
    if s is None:
        return 1
    if flag(s, INT_OR_STRING):
        return 1
    t = type_of(s)
    if t in ("array",):
        return 2
    if t == "object":
        if additional_of(s) is not None:
            return 2
        size = 2
        required = set(s.get("required") or []) if isinstance(s.get("required"), list) else set()
        for name, prop in props_of(s).items():
            if name in required and default_of(prop) is None and value_of(prop) is not None:
                size += len(name) + min_serialized_size(prop) + 4
        return size
    if t == "string":
        return {"date": 12, "date-time": 21, "duration": 3}.get(s.get("format") or "", 2)
    if t == "boolean":
        return 4
    return 1


def value_of(s: Schema | None, root: bool = False) -> _V | None:
    """The value a schema declares, or None where CEL cannot see it (no type)."""
    if not isinstance(s, dict):
        return None
    if flag(s, INT_OR_STRING):
        return _V("dyn", _string_size(s) if isinstance(s.get("maxLength"), int) else _MAX_STRING, s)
    t = type_of(s)
    if t == "array":
        items = items_of(s)
        elem = value_of(items, flag(items, EMBEDDED))
        if elem is None:
            return None
        n = s.get("maxItems")
        size = max(n, 0) if isinstance(n, int) else _MAX_STRING // (min_serialized_size(items) + 1)
        return _V("list", size, s, elem)
    if t == "object":
        ap = additional_of(s)
        if ap is not None:
            elem = value_of(ap, flag(ap, EMBEDDED))
            if elem is None:
                return None
            n = s.get("maxProperties")
            size = max(n, 0) if isinstance(n, int) else _MAX_STRING // (min_serialized_size(ap) + 6)
            return _V("map", size, s, elem)
        return _V("object", 1, s, root=root or flag(s, EMBEDDED))
    if t == "string":
        return _V("string", _string_size(s), s)
    if t in ("boolean", "number", "integer"):
        return _V("scalar", 1, s)
    return None


def max_cardinality(s: Schema | None) -> int:
    """How many values of this schema fit in one request (compilation.go maxCardinality)."""
    return MAX_REQUEST_BYTES // (min_serialized_size(s) + 1)


def element_bound(s: Schema | None) -> int | None:
    """How many children a node may have (extractMaxElements): None when unbounded."""
    t = type_of(s)
    if t == "object" and additional_of(s) is not None:
        n = (s or {}).get("maxProperties")
        return max(n, 0) if isinstance(n, int) else None
    if t == "array":
        n = (s or {}).get("maxItems")
        return max(n, 0) if isinstance(n, int) else None
    return 1


def _field(v: _V, name: str, token: Any) -> _V:
    if v.kind == "map":
        return v.elem or _DYN
    if v.kind != "object":
        return _DYN  # dyn, or a runtime error cel-python reports
    if v.root and name in ("apiVersion", "kind"):
        return _STRING
    if v.root and name == "metadata":
        # only name and generateName are visible to rules (WithTypeAndObjectMeta)
        meta = {"type": "object", "properties": {"name": {"type": "string"}, "generateName": {"type": "string"}}}
        return _V("object", 1, meta)
    sub = value_of(props_of(v.schema).get(name), flag(props_of(v.schema).get(name), EMBEDDED))
    if sub is None:
        raise RuleCompileError(f"undefined field '{name}'", token.line, max(token.column - 1, 1))
    return sub


# --- cost of an expression ---------------------------------------------------------------------

@dataclass
class _Walk:
    scope: dict[str, _V] = field(default_factory=dict)

    def cost(self, node: Any) -> tuple[int, _V]:
        data = getattr(node, "data", None)
        kids = getattr(node, "children", [])
        method = getattr(self, f"_{data}", None)
        if method is not None:
            return method(kids)
        if len(kids) == 1 and hasattr(kids[0], "data"):
            return self.cost(kids[0])  # pass-through levels of the grammar
        total = 0
        for k in kids:
            if hasattr(k, "data"):
                total += self.cost(k)[0]
        return total + 1, _DYN

    def _expr(self, kids: list[Any]) -> tuple[int, _V]:
        if len(kids) == 1:
            return self.cost(kids[0])
        c, _ = self.cost(kids[0])
        (ct, vt), (cf, vf) = self.cost(kids[1]), self.cost(kids[2])
        return c + max(ct, cf), vt if vt.size >= vf.size else vf

    def _logical(self, kids: list[Any]) -> tuple[int, _V]:
        if len(kids) == 1:
            return self.cost(kids[0])
        return self.cost(kids[0])[0] + self.cost(kids[1])[0], _SCALAR

    _conditionalor = _conditionaland = _logical

    def _relation(self, kids: list[Any]) -> tuple[int, _V]:
        if len(kids) == 1:
            return self.cost(kids[0])
        op = kids[0]
        cl, vl = self.cost(op.children[0])
        cr, vr = self.cost(kids[1])
        if op.data == "relation_in":
            step = vr.size if vr.kind == "list" else 1
        elif op.data in ("relation_eq", "relation_ne") and vl.kind in ("string", "list") and vr.kind == vl.kind:
            step = 1 + math.ceil(_STRING_TRAVERSAL * min(vl.size, vr.size))
        else:
            step = 1
        return cl + cr + step, _SCALAR

    def _addition(self, kids: list[Any]) -> tuple[int, _V]:
        if len(kids) == 1:
            return self.cost(kids[0])
        cl, vl = self.cost(kids[0].children[0])
        cr, vr = self.cost(kids[1])
        if kids[0].data == "addition_add" and vl.kind == vr.kind and vl.kind in ("string", "list"):
            size = vl.size + vr.size
            step = 1 + math.ceil(_STRING_TRAVERSAL * size) if vl.kind == "string" else 1
            return cl + cr + step, replace(vl, size=size, schema=None)
        return cl + cr + 1, vl if vl.kind != "dyn" else vr

    def _multiplication(self, kids: list[Any]) -> tuple[int, _V]:
        if len(kids) == 1:
            return self.cost(kids[0])
        return self.cost(kids[0].children[0])[0] + self.cost(kids[1])[0] + 1, _SCALAR

    def _unary(self, kids: list[Any]) -> tuple[int, _V]:
        if len(kids) == 1:
            return self.cost(kids[0])
        return self.cost(kids[1])[0] + 1, _SCALAR

    def _literal(self, kids: list[Any]) -> tuple[int, _V]:
        tok = kids[0]
        if tok.type in ("STRING_LIT", "MLSTRING_LIT", "BYTES_LIT"):
            return 0, _V("string", max(len(str(tok)) - 2, 0))
        return 0, _SCALAR

    def _ident(self, kids: list[Any]) -> tuple[int, _V]:
        tok = kids[0]
        name = str(tok)
        if name in self.scope:
            return 1, self.scope[name]
        if name in _TYPE_NAMES or name in _NAMESPACES:
            return 1, _DYN
        raise RuleCompileError(f"undeclared reference to '{name}' (in container '')", tok.line, tok.column)

    def _member_dot(self, kids: list[Any]) -> tuple[int, _V]:
        c, v = self.cost(kids[0])
        return c + 1, _field(v, str(kids[1]), kids[1])

    def _member_index(self, kids: list[Any]) -> tuple[int, _V]:
        c, v = self.cost(kids[0])
        ci, _ = self.cost(kids[1])
        elem = v.elem if v.kind in ("list", "map") and v.elem else _DYN
        return c + ci + 1, elem

    def _list_lit(self, kids: list[Any]) -> tuple[int, _V]:
        args = self._args(kids[0] if kids else None)
        costs = [self.cost(a) for a in args]
        elem = max((v for _, v in costs), key=lambda v: v.size, default=_DYN)
        return sum(c for c, _ in costs) + _LIST_CREATE, _V("list", len(args), None, elem)

    def _map_lit(self, kids: list[Any]) -> tuple[int, _V]:
        parts = [k for k in (kids[0].children if kids and kids[0] is not None else []) if hasattr(k, "data")]
        return sum(self.cost(p)[0] for p in parts) + _MAP_CREATE, _V("map", len(parts) // 2, None, _DYN)

    def _ident_arg(self, kids: list[Any]) -> tuple[int, _V]:
        name = str(kids[0])
        args = self._args(kids[1] if len(kids) > 1 else None)
        if name == "has" and args:
            return self._has(args[0])
        costs = [self.cost(a) for a in args]
        total = sum(c for c, _ in costs) + 1
        if name == "dyn" and costs:
            return total, _V("dyn", costs[0][1].size)  # type checks deferred to evaluation
        if name in ("string", "bytes") and costs:
            return total, _V("string", costs[0][1].size if costs[0][1].kind == "string" else 20)
        return total, _SCALAR

    def _has(self, arg: Any) -> tuple[int, _V]:
        # has(x.f): the receiver's cost and one select; the field must be declared
        return self.cost(arg)[0], _SCALAR

    def _member_dot_arg(self, kids: list[Any]) -> tuple[int, _V]:
        name = str(kids[1])
        args = self._args(kids[2] if len(kids) > 2 else None)
        if name in _MACROS and len(args) in (2, 3):
            var = self._macro_var(args[0])
            if var is not None:
                return self._comprehension(kids[0], name, var, args[1:])
        c, recv = self.cost(kids[0])
        costs = [self.cost(a) for a in args]
        total = c + sum(x for x, _ in costs)
        if name in _REGEX_SCANS and recv.kind in ("string", "dyn"):
            pattern = costs[0][1].size if costs else 1
            step = 1 + math.ceil(_REGEX_STRING * recv.size) * max(1, math.ceil(_REGEX_STRING * pattern))
            result = _V("list", recv.size, None, _V("string", recv.size)) if name == "findAll" else \
                _V("string", recv.size) if name == "find" else _SCALAR
            return total + step, result
        if name in _LIST_SCANS and recv.kind == "list":
            return total + 1 + recv.size, recv.elem or _DYN if name in ("min", "max", "sum") else recv
        if name in _STRING_SCANS and recv.kind in ("string", "dyn", "list"):
            size = recv.size if recv.kind != "list" else recv.size * ((recv.elem or _STRING).size)
            step = 1 + math.ceil(_STRING_TRAVERSAL * size)
            if name == "split":
                return total + step, _V("list", recv.size, None, _V("string", recv.size))
            if name in ("lowerAscii", "upperAscii", "trim", "replace", "substring", "reverse", "quote", "format",
                        "join"):
                return total + step, _V("string", size)
            return total + step, _SCALAR
        return total + 1, _SCALAR

    def _macro_var(self, arg: Any) -> str | None:
        idents = list(arg.find_data("ident")) if hasattr(arg, "find_data") else []
        if len(idents) != 1:
            return None
        return str(idents[0].children[0])

    def _comprehension(self, range_node: Any, name: str, var: str, body: list[Any]) -> tuple[int, _V]:
        c, rng = self.cost(range_node)
        if rng.kind == "map":
            elem = _V("string", _MAX_STRING)  # ranges over the keys
        else:
            elem = rng.elem or _DYN
        saved = self.scope.get(var)
        self.scope[var] = elem
        try:
            step = sum(self.cost(b)[0] for b in body)
        finally:
            if saved is None:
                self.scope.pop(var, None)
            else:
                self.scope[var] = saved
        n = rng.size if rng.kind in ("list", "map") else 1
        result: _V = _SCALAR
        if name == "map":
            step += 1  # accu + [f(x)]
            result = _V("list", n, None, _DYN)
        elif name == "filter":
            step += 1
            result = _V("list", n, None, elem)
        return c + 1 + n * (step + 2), result

    @staticmethod
    def _args(exprlist: Any) -> list[Any]:
        if exprlist is None or getattr(exprlist, "data", None) != "exprlist":
            return [] if exprlist is None else [exprlist]
        return [k for k in exprlist.children if hasattr(k, "data")]


def estimate(tree: Any, s: Schema, *, is_root: bool, old_self: bool) -> int:
    """A rule's worst-case cost on one value of `s`; raises RuleCompileError for undeclared names."""
    self_value = value_of(s, root=is_root) or _DYN
    scope = {"self": self_value}
    if old_self:
        scope["oldSelf"] = self_value
    return _Walk(scope).cost(tree)[0]


def expression_cost(rule_cost: int, cardinality: int | None, s: Schema) -> int:
    """getExpressionCost: the rule's cost times how often it may run in one object."""
    return rule_cost * (cardinality if cardinality is not None else max_cardinality(s))


def cost_error_message(name: str, cost: int, limit: int) -> str:
    """getCostErrorMessage."""
    factor = cost / limit
    if factor > 100:
        text = "more than 100x"
    elif factor < 1.5:
        text = f"{factor:f}x"
    else:
        text = f"{factor:.1f}x"
    return (f"{name} exceeds budget by factor of {text} (try simplifying the rule, or adding maxItems, "
            "maxProperties, and maxLength where arrays, maps, and strings are declared)")


@dataclass
class TotalCost:
    """The definition's summed rule costs and the (up to four) rules that weigh most."""

    total: int = 0
    most_expensive: list[tuple[int, str]] = field(default_factory=list)

    def observe(self, path: str, cost: int) -> None:
        self.total += cost
        if cost < STATIC_CRD_LIMIT // 100:
            return  # rules under 1 % of the limit are not named
        self.most_expensive.append((cost, path))
        self.most_expensive.sort(key=lambda x: -x[0])
        del self.most_expensive[4:]
