"""kubectl's JSONPath templates (k8s.io/client-go/util/jsonpath), for `-o jsonpath=` and
`-o custom-columns=`.

A template is text with ``{...}`` actions: a path (``{.items[*].metadata.name}``), a string
literal (``{"\\n"}``), ``{range <path>}...{end}``. Paths: ``.field``, ``..field`` (recursive),
``.*``/``[*]``, ``[n]``, ``[start:end:step]``, unions ``[0,2]`` / ``['a','b']``, filters
``[?(@.type=="Ready")]`` (``== != < <= > >=``, or bare ``@.x`` for existence), ``\\.`` escaping a
dot inside a key. Results of one action print separated by spaces; maps and lists print as
JSON; missing fields print nothing (kubectl's default ``--allow-missing-template-keys``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any


class JSONPathError(ValueError):
    pass


_MISSING = object()


# --- parsing -------------------------------------------------------------------------------------


@dataclass
class _Text:
    text: str


@dataclass
class _Path:
    steps: list[tuple[str, Any]]  # ("field", name) | ("recursive", name) | ("wild", None) | ("index", spec) | ("filter", f)
    root: bool = False  # starts at $ (the document) instead of @ (the current item)


@dataclass
class _Range:
    path: _Path
    body: list[Any] = field(default_factory=list)


@dataclass
class _Filter:
    left: _Path | Any
    op: str | None
    right: _Path | Any


def _split_actions(template: str) -> list[tuple[str, str]]:
    """[("text", s) | ("action", s)], honouring quotes inside actions."""
    out: list[tuple[str, str]] = []
    i, n = 0, len(template)
    buf = []
    while i < n:
        c = template[i]
        if c == "{":
            if buf:
                out.append(("text", "".join(buf)))
                buf = []
            j, quote = i + 1, None
            while j < n:
                ch = template[j]
                if quote:
                    if ch == "\\":
                        j += 1
                    elif ch == quote:
                        quote = None
                elif ch in "\"'":
                    quote = ch
                elif ch == "}":
                    break
                j += 1
            if j >= n:
                raise JSONPathError(f"unclosed action in template {template!r}")
            out.append(("action", template[i + 1:j].strip()))
            i = j + 1
        else:
            buf.append(c)
            i += 1
    if buf:
        out.append(("text", "".join(buf)))
    return out


def _unquote(s: str) -> str:
    body = s[1:-1]
    return body.encode("latin-1", "backslashreplace").decode("unicode_escape") if s[0] == '"' else body


_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")


def _literal(s: str) -> Any:
    s = s.strip()
    if len(s) >= 2 and s[0] == s[-1] and s[0] in "\"'":
        return _unquote(s)
    if _NUMBER.match(s):
        return float(s) if "." in s else int(s)
    if s in ("true", "false"):
        return s == "true"
    if s == "nil" or s == "null":
        return None
    raise JSONPathError(f"unrecognized literal {s!r}")


def _parse_filter(expr: str) -> _Filter:
    m = re.match(r"^(.*?)\s*(==|!=|<=|>=|<|>|=~)\s*(.*)$", expr)
    if not m:
        return _Filter(_parse_path(expr.strip()), None, None)
    left, op, right = m.group(1).strip(), m.group(2), m.group(3).strip()

    def operand(s: str) -> Any:
        return _parse_path(s) if s.startswith(("@", "$")) else _literal(s)

    return _Filter(operand(left), op, operand(right))


def _parse_bracket(body: str) -> tuple[str, Any]:
    body = body.strip()
    if body.startswith("?"):
        inner = body[1:].strip()
        if not (inner.startswith("(") and inner.endswith(")")):
            raise JSONPathError(f"invalid filter [{body}]")
        return ("filter", _parse_filter(inner[1:-1]))
    if body == "*":
        return ("wild", None)
    if body[:1] in "\"'":
        names = [_unquote(p.strip()) for p in re.findall(r"""'[^']*'|"[^"]*\"""", body)]
        return ("fields", names)
    if "," in body:
        return ("union", [int(p) for p in body.split(",")])
    if ":" in body:
        parts = [p.strip() for p in body.split(":")]
        if len(parts) > 3:
            raise JSONPathError(f"invalid slice [{body}]")
        nums = [int(p) if p else None for p in parts] + [None] * (3 - len(parts))
        return ("slice", tuple(nums))
    try:
        return ("union", [int(body)])
    except ValueError:
        raise JSONPathError(f"invalid array index [{body}]") from None


def _parse_path(expr: str) -> _Path:
    path = _Path([])
    i, n = 0, len(expr)
    if expr.startswith("$"):
        path.root, i = True, 1
    elif expr.startswith("@"):
        i = 1
    while i < n:
        c = expr[i]
        if c == ".":
            recursive = expr.startswith("..", i)
            i += 2 if recursive else 1
            name = []
            while i < n and expr[i] not in ".[":
                if expr[i] == "\\" and i + 1 < n:
                    i += 1
                name.append(expr[i])
                i += 1
            text = "".join(name)
            if recursive:
                path.steps.append(("recursive", text or None))
            elif text == "*":
                path.steps.append(("wild", None))
            elif text:
                path.steps.append(("field", text))
        elif c == "[":
            depth, j, quote = 0, i, None
            while j < n:
                ch = expr[j]
                if quote:
                    if ch == quote:
                        quote = None
                elif ch in "\"'":
                    quote = ch
                elif ch in "[(":
                    depth += 1
                elif ch in "])":
                    depth -= 1
                    if depth == 0 and ch == "]":
                        break
                j += 1
            if j >= n:
                raise JSONPathError(f"unterminated array in {expr!r}")
            path.steps.append(_parse_bracket(expr[i + 1:j]))
            i = j + 1
        elif c.isspace():
            i += 1
        else:
            # a leading bare name (custom-columns style "metadata.name")
            j = i
            while j < n and expr[j] not in ".[":
                j += 1
            path.steps.append(("field", expr[i:j]))
            i = j
    return path


def parse(template: str) -> list[Any]:
    """The template as a node tree."""
    root: list[Any] = []
    stack: list[list[Any]] = [root]
    for kind, text in _split_actions(template):
        if kind == "text":
            stack[-1].append(_Text(text))
        elif text.startswith("range "):
            node = _Range(_parse_path(text[6:].strip()))
            stack[-1].append(node)
            stack.append(node.body)
        elif text == "end":
            if len(stack) == 1:
                raise JSONPathError("not in range, nothing to end")
            stack.pop()
        elif text[:1] in "\"'":
            stack[-1].append(_Text(_unquote(text)))
        elif text == "":
            continue
        else:
            stack[-1].append(_parse_path(text))
    if len(stack) != 1:
        raise JSONPathError("unclosed range")
    return root


# --- evaluation ------------------------------------------------------------------------------------


def _children(v: Any) -> list[Any]:
    if isinstance(v, dict):
        return [v[k] for k in sorted(v)]
    if isinstance(v, list):
        return list(v)
    return []


def _recursive(v: Any, name: str | None) -> list[Any]:
    out: list[Any] = []
    stack = [v]
    while stack:
        cur = stack.pop(0)
        if isinstance(cur, dict):
            if name is None:
                out.append(cur)
            elif name in cur:
                out.append(cur[name])
        for c in _children(cur):
            if isinstance(c, (dict, list)):
                stack.append(c)
    return out


def _compare(a: Any, op: str, b: Any) -> bool:
    if op == "==":
        if isinstance(a, bool) or isinstance(b, bool):
            return a is b
        return a == b
    if op == "!=":
        return not _compare(a, "==", b)
    if op == "=~":
        return isinstance(a, str) and isinstance(b, str) and re.search(b, a) is not None
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]
    if isinstance(a, str) and isinstance(b, str):
        return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]
    return False


def _operand(x: Any, item: Any, root: Any) -> list[Any]:
    if isinstance(x, _Path):
        return evaluate_path(x, item, root)
    return [x]


def _step(values: list[Any], step: tuple[str, Any], root: Any) -> list[Any]:
    kind, arg = step
    out: list[Any] = []
    for v in values:
        if kind == "field":
            if isinstance(v, dict) and arg in v:
                out.append(v[arg])
        elif kind == "fields":
            if isinstance(v, dict):
                out.extend(v[a] for a in arg if a in v)
        elif kind == "wild":
            out.extend(_children(v))
        elif kind == "recursive":
            out.extend(_recursive(v, arg))
        elif kind == "union":
            if isinstance(v, list):
                for i in arg:
                    if -len(v) <= i < len(v):
                        out.append(v[i])
        elif kind == "slice":
            if isinstance(v, list):
                start, end, stepn = arg
                out.extend(v[slice(start, end, stepn)])
        elif kind == "filter":
            items = v if isinstance(v, list) else _children(v) if isinstance(v, dict) else []
            for item in items:
                left = _operand(arg.left, item, root)
                if arg.op is None:
                    if left:
                        out.append(item)
                    continue
                right = _operand(arg.right, item, root)
                if left and right and _compare(left[0], arg.op, right[0]):
                    out.append(item)
    return out


def evaluate_path(path: _Path, current: Any, root: Any) -> list[Any]:
    values = [root if path.root else current]
    for step in path.steps:
        values = _step(values, step, root)
    return values


def _text(v: Any) -> str:
    if isinstance(v, (dict, list)):
        return json.dumps(v, separators=(",", ":"), ensure_ascii=False, sort_keys=True)
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e21:
        return str(int(v))
    return str(v)


def _render(nodes: list[Any], current: Any, root: Any, out: list[str]) -> None:
    for node in nodes:
        if isinstance(node, _Text):
            out.append(node.text)
        elif isinstance(node, _Range):
            for item in evaluate_path(node.path, current, root):
                _render(node.body, item, root, out)
        else:
            out.append(" ".join(_text(v) for v in evaluate_path(node, current, root)))


class Template:
    """A parsed JSONPath template; `render(obj)` → text."""

    def __init__(self, template: str) -> None:
        self.source = template
        self.nodes = parse(template)

    def render(self, obj: Any) -> str:
        out: list[str] = []
        _render(self.nodes, obj, obj, out)
        return "".join(out)

    def values(self, obj: Any) -> list[Any]:
        """The values of a template that is a single path (custom-columns cells)."""
        paths = [n for n in self.nodes if isinstance(n, _Path)]
        if len(paths) != 1 or len(self.nodes) != 1:
            raise JSONPathError(f"unexpected path string, expected a single path: {self.source!r}")
        return evaluate_path(paths[0], obj, obj)


def relaxed(expr: str) -> str:
    """kubectl's RelaxedJSONPathExpression: `.a.b`, `a.b`, `{.a.b}` all mean `{.a.b}`."""
    expr = expr.strip()
    if expr.startswith("{") and expr.endswith("}"):
        expr = expr[1:-1].strip()
    if not expr.startswith((".", "$", "@", "[")):
        expr = "." + expr
    return "{" + expr + "}"


def format_value(v: Any) -> str:
    return _text(v)
