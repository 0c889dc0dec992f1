"""Output like kubectl's: server-side Tables through a tabwriter, and yaml/json/name/jsonpath/
custom-columns for objects.

kubectl aligns columns with Go's text/tabwriter (for `get`: minwidth 6, padding 3; for
`describe`: minwidth 0, padding 2); ``tabwrite`` follows its column-block algorithm (a column's
width is decided by the consecutive lines that have a cell there) so that our tables line up
character for character with kubectl's.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import yaml

from apimachinery.jsonpath import JSONPathError, Template, format_value, relaxed

Obj = dict[str, Any]


# --- text/tabwriter ----------------------------------------------------------------------------


def tabwrite(lines: Iterable[str], minwidth: int = 6, padding: int = 3, remember: list[int] | None = None) -> str:
    """Align tab-terminated cells like Go's tabwriter (AlignLeft, pad with spaces). Returns the
    text with a newline after every line. `remember` (kubectl's RememberWidths, used while
    watching) keeps the widest width seen per column across calls."""
    rows = [line.split("\t") for line in lines]
    out: list[str] = []

    def write_lines(line0: int, line1: int, widths: list[int]) -> None:
        for i in range(line0, line1):
            cells = rows[i]
            parts = []
            for j, cell in enumerate(cells):
                parts.append(cell)
                if j < len(widths) and j < len(cells) - 1:
                    parts.append(" " * (widths[j] - len(cell)))
            out.append("".join(parts))

    def fmt(line0: int, line1: int, widths: list[int]) -> None:
        column = len(widths)
        this = line0
        while this < line1:
            if column >= len(rows[this]) - 1:
                this += 1
                continue
            write_lines(line0, this, widths)
            line0 = this
            width = minwidth
            while this < line1 and column < len(rows[this]) - 1:
                width = max(width, len(rows[this][column]) + padding)
                this += 1
            if remember is not None:
                if len(remember) <= column:
                    remember.extend([0] * (column + 1 - len(remember)))
                width = remember[column] = max(remember[column], width)
            fmt(line0, this, [*widths, width])
            line0 = this
        write_lines(line0, line1, widths)

    fmt(0, len(rows), [])
    return "".join(line + "\n" for line in out)


# --- cells ---------------------------------------------------------------------------------------


def format_cell(v: Any) -> str:
    """fmt.Fprint of a Table cell decoded from JSON."""
    if isinstance(v, str):
        return v
    if v is None:
        return "<nil>"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e21:
        return str(int(v))
    if isinstance(v, dict):
        return "map[" + " ".join(f"{k}:{format_cell(v[k])}" for k in sorted(v)) + "]"
    if isinstance(v, list):
        return "[" + " ".join(format_cell(x) for x in v) + "]"
    return str(v)


def format_labels(labels: dict[str, str] | None) -> str:
    if not labels:
        return "<none>"
    return ",".join(f"{k}={labels[k]}" for k in sorted(labels))


# --- tables --------------------------------------------------------------------------------------


@dataclass
class TableOptions:
    wide: bool = False
    no_headers: bool = False
    show_labels: bool = False
    label_columns: list[str] = field(default_factory=list)
    with_namespace: bool = False
    kind_prefix: str | None = None  # "deployment.apps": NAME cells print as deployment.apps/<name>
    watch_event_column: bool = False


def _label_header(key: str) -> str:
    return key.rsplit("/", 1)[-1].upper()


def table_lines(table: Obj, opts: TableOptions, headers: bool = True, event_type: str | None = None) -> list[str]:
    """The rows of a server-side Table as tab-separated lines (the header first if asked)."""
    columns = table.get("columnDefinitions") or []
    shown = [i for i, c in enumerate(columns) if opts.wide or int(c.get("priority") or 0) == 0]
    name_index = next((i for i, c in enumerate(columns) if c.get("format") == "name"), 0)
    lines: list[str] = []
    if headers and not opts.no_headers and columns:
        head = [columns[i]["name"].upper() for i in shown]
        if opts.with_namespace:
            head.insert(0, "NAMESPACE")
        if opts.watch_event_column:
            head.insert(0, "EVENT")
        head += [_label_header(k) for k in opts.label_columns]
        if opts.show_labels:
            head.append("LABELS")
        lines.append("\t".join(head))
    for row in table.get("rows") or []:
        cells = row.get("cells") or []
        meta = (row.get("object") or {}).get("metadata") or {}
        out = []
        for i in shown:
            cell = format_cell(cells[i]) if i < len(cells) else ""
            if opts.kind_prefix and i == name_index:
                cell = f"{opts.kind_prefix}/{cell}"
            out.append(cell)
        if opts.with_namespace:
            out.insert(0, meta.get("namespace", ""))
        if opts.watch_event_column:
            out.insert(0, event_type or "")
        labels = meta.get("labels") or {}
        out += [labels.get(k, "") for k in opts.label_columns]
        if opts.show_labels:
            out.append(format_labels(labels))
        lines.append("\t".join(out))
    return lines


# --- objects -------------------------------------------------------------------------------------


class _Dumper(yaml.SafeDumper):
    def choose_scalar_style(self) -> str:
        # Go's YAML writer quotes with double quotes where PyYAML would use single ones
        style = super().choose_scalar_style()
        return '"' if style == "'" else style


def _str_representer(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    # multi-line strings as literal blocks, as kubectl's YAML printer writes them
    if "\n" in value and not any(c in value for c in "\t\r") and value == value.strip(" "):
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


_Dumper.add_representer(str, _str_representer)


def dump_yaml(obj: Any) -> str:
    return yaml.dump(obj, Dumper=_Dumper, sort_keys=True, default_flow_style=False, allow_unicode=True,
                     width=80)


def dump_json(obj: Any) -> str:
    return json.dumps(obj, indent=4, sort_keys=True, ensure_ascii=False) + "\n"


def as_list(items: list[Obj]) -> Obj:
    """kubectl's client-side List of mixed objects."""
    return {"apiVersion": "v1", "items": items, "kind": "List", "metadata": {"resourceVersion": ""}}


def strip_managed_fields(obj: Obj) -> Obj:
    meta = obj.get("metadata")
    if isinstance(meta, dict) and "managedFields" in meta:
        obj = {**obj, "metadata": {k: v for k, v in meta.items() if k != "managedFields"}}
    if obj.get("kind") == "List" or (isinstance(obj.get("items"), list) and "metadata" in obj):
        obj = {**obj, "items": [strip_managed_fields(i) for i in obj.get("items") or []]}
    return obj


OUTPUT_FORMATS = ("wide", "yaml", "json", "name", "jsonpath=", "jsonpath-as-json=", "custom-columns=", "go-template=")


class OutputError(ValueError):
    pass


def validate_output(output: str | None) -> None:
    if not output or output in ("wide", "yaml", "json", "name"):
        return
    if output.startswith(("jsonpath=", "jsonpath-as-json=", "custom-columns=")):
        try:
            _object_printer(output)
        except JSONPathError as e:
            raise OutputError(f"error parsing {output}: {e}") from e
        return
    raise OutputError(f'unable to match a printer suitable for the output format "{output}", allowed formats are: '
                      "custom-columns,json,jsonpath,jsonpath-as-json,name,wide,yaml")


def _object_printer(output: str):  # -> Callable[[Obj], str]
    if output == "yaml":
        return dump_yaml
    if output == "json":
        return dump_json
    if output.startswith("jsonpath="):
        tpl = Template(output[len("jsonpath="):])
        return tpl.render
    if output.startswith("jsonpath-as-json="):
        tpl = Template(output[len("jsonpath-as-json="):])

        def as_json(obj: Obj) -> str:
            values = [v for n in tpl.nodes for v in _node_values(n, obj)]
            return json.dumps(values, indent=4, ensure_ascii=False) + "\n"

        return as_json
    if output.startswith("custom-columns="):
        return CustomColumns(output[len("custom-columns="):]).render
    raise OutputError(f"unknown output format {output!r}")


def _node_values(node: Any, obj: Obj) -> list[Any]:
    from apimachinery.jsonpath import _Path, evaluate_path

    return evaluate_path(node, obj, obj) if isinstance(node, _Path) else []


def render_objects(objects: list[Obj], output: str, single: bool, show_managed_fields: bool = False) -> str:
    """`objects` in an object format: one object as itself when `single`, else a List."""
    if not show_managed_fields:
        objects = [strip_managed_fields(o) for o in objects]
    if output.startswith("custom-columns="):
        return CustomColumns(output[len("custom-columns="):]).render_many(objects)
    doc = objects[0] if single and len(objects) == 1 else as_list(objects)
    return _object_printer(output)(doc)


class CustomColumns:
    """`-o custom-columns=HEADER:path,...`."""

    def __init__(self, spec: str) -> None:
        self.columns: list[tuple[str, Template]] = []
        for part in spec.split(","):
            if not part:
                continue
            header, sep, path = part.partition(":")
            if not sep:
                raise JSONPathError(f'unexpected custom-columns spec: {part}, expected <header>:<json-path-expr>')
            self.columns.append((header, Template(relaxed(path))))

    def cells(self, obj: Obj) -> list[str]:
        out = []
        for _, tpl in self.columns:
            values = tpl.values(obj)
            out.append(",".join(format_value(v) for v in values) if values else "<none>")
        return out

    def render_many(self, objects: list[Obj], headers: bool = True) -> str:
        lines = ["\t".join(h for h, _ in self.columns)] if headers else []
        lines += ["\t".join(self.cells(o)) for o in objects]
        return tabwrite(lines)

    def render(self, obj: Obj) -> str:
        items = obj.get("items") if obj.get("kind") == "List" else [obj]
        return self.render_many(items or [])


def name_of(kind_name: str, obj: Obj) -> str:
    return f"{kind_name}/{(obj.get('metadata') or {}).get('name', '')}"
