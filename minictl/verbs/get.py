"""`minictl get`: server-side Tables printed like kubectl's, or the objects in yaml/json/name/jsonpath."""

from __future__ import annotations

import sys
from typing import Any

import click

from apimachinery.errors import StatusError
from apimachinery.jsonpath import Template, relaxed
from minictl.api import TABLE_ACCEPT, ResourceType
from minictl.manifests import read_manifests
from minictl.printing import (
    TableOptions,
    dump_json,
    dump_yaml,
    name_of,
    render_objects,
    strip_managed_fields,
    table_lines,
    tabwrite,
    validate_output,
)
from minictl.verbs.common import (
    Session,
    Target,
    echo,
    fail,
    format_status_error,
    no_resources_message,
    parse_resource_args,
    selector_params,
    session,
    verb,
)


def _complete_types(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[Any]:
    from minictl.completion import complete_resource_args

    return complete_resource_args(ctx, param, incomplete)


@verb(name="get")
@click.argument("args", nargs=-1, shell_complete=_complete_types)
@click.option("-o", "--output", help="Output format: wide, yaml, json, name, jsonpath=TEMPLATE, "
                                     "jsonpath-as-json=TEMPLATE, custom-columns=SPEC.")
@click.option("-l", "--selector", help="Label selector, e.g. -l 'app=web,tier!=db'.")
@click.option("--field-selector", help="Field selector, e.g. --field-selector status.phase=Running.")
@click.option("-A", "--all-namespaces", is_flag=True, help="List across all namespaces (adds a NAMESPACE column).")
@click.option("-w", "--watch", is_flag=True, help="After listing, watch for changes.")
@click.option("--watch-only", is_flag=True, help="Watch for changes without listing first.")
@click.option("--output-watch-events", is_flag=True, help="With --watch: add an EVENT column (ADDED, MODIFIED...).")
@click.option("--show-labels", is_flag=True, help="Add a LABELS column.")
@click.option("-L", "--label-columns", multiple=True, help="Labels to print as columns (comma-separated or repeated).")
@click.option("--no-headers", is_flag=True, help="Do not print the header line.")
@click.option("--show-kind", is_flag=True, help="Print the resource type in the NAME column.")
@click.option("--sort-by", help="Sort rows by a JSONPath expression, e.g. --sort-by=.metadata.name.")
@click.option("--show-managed-fields", is_flag=True, help="Keep metadata.managedFields in yaml/json output.")
@click.option("-f", "--filename", multiple=True, help="Files or directories naming the objects to get.")
@click.option("-R", "--recursive", is_flag=True, help="Read directories given with -f recursively.")
@click.option("--ignore-not-found", is_flag=True, help="Print nothing (and succeed) for objects that do not exist.")
@click.option("--chunk-size", type=int, default=500, show_default=True, help="List in pages of this many objects.")
@click.option("--raw", help="Print the raw answer of GET on this URI path (e.g. --raw /version).")
def get_cmd(args: tuple[str, ...], output: str | None, selector: str | None, field_selector: str | None,
            all_namespaces: bool, watch: bool, watch_only: bool, output_watch_events: bool, show_labels: bool,
            label_columns: tuple[str, ...], no_headers: bool, show_kind: bool, sort_by: str | None,
            show_managed_fields: bool, filename: tuple[str, ...], recursive: bool, ignore_not_found: bool,
            chunk_size: int, raw: str | None) -> None:
    """Display one or many resources.

    Prints a table of the most important information about the resources (the columns the
    server chooses, as kubectl prints them). -o wide adds more columns; -o yaml|json the
    objects; -o name TYPE/NAME lines; -o jsonpath=... and -o custom-columns=... pick fields.

    \b
    Examples:
      minictl get pods                          # pods in the current namespace
      minictl get pods -A -o wide               # everywhere, with IP and node
      minictl get deploy,rs -l app=web          # two kinds, by label
      minictl get pod web-1 -o yaml             # one object as YAML
      minictl get nodes -o jsonpath='{.items[*].metadata.name}'
      minictl get pods -o custom-columns=NAME:.metadata.name,NODE:.spec.nodeName
      minictl get pods -w                       # keep printing changes
      minictl get --raw /version
    """
    s = session()
    if raw:
        r = s.api.request("GET", raw, headers={"Accept": "application/json, */*"})
        sys.stdout.write(r.text if r.text.endswith("\n") else r.text + "\n")
        return
    validate_output(output)
    label_cols = [c for spec in label_columns for c in spec.split(",") if c]
    if filename:
        targets = _targets_from_files(s, filename, recursive)
    else:
        targets = parse_resource_args(s.api, args)
    opts = TableOptions(wide=output == "wide", no_headers=no_headers, show_labels=show_labels,
                        label_columns=label_cols, with_namespace=all_namespaces,
                        watch_event_column=output_watch_events)
    if watch or watch_only:
        if len(targets) != 1:
            fail("you may only specify a single resource type")
        _watch(s, targets[0], output, opts, selector, field_selector, all_namespaces, watch_only)
        return
    if filename:
        single = sum(len(t.names) for t in targets) == 1
    else:
        single = len(targets) == 1 and len(targets[0].names) == 1
    errors: list[str] = []
    if output and output != "wide":
        objects = []
        for t in targets:
            objects += _fetch_objects(s, t, selector, field_selector, all_namespaces, ignore_not_found, errors,
                                      chunk_size)
        if sort_by:
            objects = _sort(objects, sort_by)
        if output == "name":
            sys.stdout.write("".join(name_of(kind, o) + "\n" for kind, o in objects))
        elif objects or not single:
            sys.stdout.write(render_objects([o for _, o in objects], output, single, show_managed_fields))
        _finish(errors)
        return
    fetched = []
    for t in targets:
        table = _fetch_table(s, t, selector, field_selector, all_namespaces, ignore_not_found, errors, chunk_size,
                             sort_by)
        if table is not None:
            fetched.append((t, table))
    # kubectl prefixes names with their kind when what it fetched spans several kinds
    multi = show_kind or len({t.rtype for t, _ in fetched}) > 1
    blocks: list[list[str]] = []
    for t, table in fetched:
        if not table.get("rows"):
            continue
        opts.kind_prefix = t.rtype.kind_name if multi else None
        blocks.append(table_lines(table, opts))
    if blocks:
        lines: list[str] = []
        for i, block in enumerate(blocks):
            if i:
                lines.append("")
            lines += block
        sys.stdout.write(tabwrite(lines))
    elif not errors and not any(t.names for t in targets):
        echo(no_resources_message(s, targets[0].rtype if len(targets) == 1 else None, all_namespaces), err=True)
    _finish(errors)


def _finish(errors: list[str]) -> None:
    if errors:
        for e in errors:
            echo(e, err=True)
        sys.exit(1)


def _targets_from_files(s: Session, filenames: tuple[str, ...], recursive: bool) -> list[Target]:
    targets: list[Target] = []
    for m in read_manifests(list(filenames), recursive):
        rtype = s.api.discovery.for_kind(m.obj["apiVersion"], m.obj["kind"])
        name = (m.obj.get("metadata") or {}).get("name", "")
        ns = (m.obj.get("metadata") or {}).get("namespace")
        targets.append(Target(rtype, [name], ns))
    return targets


def _namespace(s: Session, t: Target, all_namespaces: bool) -> str | None:
    if not t.rtype.namespaced or (all_namespaces and not t.names):
        return None
    return t.namespace or s.namespace


def _fetch_table(s: Session, t: Target, selector: str | None, field_selector: str | None, all_namespaces: bool,
                 ignore_not_found: bool, errors: list[str], chunk_size: int, sort_by: str | None) -> dict | None:
    ns = _namespace(s, t, all_namespaces)
    params: dict[str, Any] = {"includeObject": "Object"} if sort_by else {}
    if not t.names:
        params.update(selector_params(selector, field_selector))
        table = s.api.list_all(t.rtype.path(ns), params, accept=TABLE_ACCEPT, page_size=chunk_size)
        if sort_by:
            table["rows"] = _sort_rows(table.get("rows") or [], sort_by)
        return table
    merged: dict | None = None
    for name in t.names:
        try:
            table = s.api.get(t.rtype.path(ns, name), params, accept=TABLE_ACCEPT)
        except StatusError as e:
            if not (ignore_not_found and e.code == 404):
                errors.append(format_status_error(e))
            continue
        if merged is None:
            merged = table
        else:
            merged["rows"] = (merged.get("rows") or []) + (table.get("rows") or [])
    return merged


def _fetch_objects(s: Session, t: Target, selector: str | None, field_selector: str | None, all_namespaces: bool,
                   ignore_not_found: bool, errors: list[str], chunk_size: int) -> list[tuple[str, dict]]:
    ns = _namespace(s, t, all_namespaces)
    out: list[tuple[str, dict]] = []
    if not t.names:
        doc = s.api.list_all(t.rtype.path(ns), selector_params(selector, field_selector), page_size=chunk_size)
        for item in doc.get("items") or []:
            out.append((t.rtype.kind_name, _typed(item, t.rtype)))
        return out
    for name in t.names:
        try:
            out.append((t.rtype.kind_name, _typed(s.api.get(t.rtype.path(ns, name)), t.rtype)))
        except StatusError as e:
            if not (ignore_not_found and e.code == 404):
                errors.append(format_status_error(e))
    return out


def _typed(obj: dict, rtype: ResourceType) -> dict:
    if "kind" not in obj or "apiVersion" not in obj:
        obj = {"apiVersion": rtype.api_version, "kind": rtype.kind, **obj}
    return obj


def _sort_key(v: list[Any]) -> tuple:
    if not v:
        return (0, "")
    x = v[0]
    if isinstance(x, bool):
        return (1, int(x))
    if isinstance(x, (int, float)):
        return (1, x)
    return (2, str(x))


def _sort(objects: list[tuple[str, dict]], sort_by: str) -> list[tuple[str, dict]]:
    tpl = Template(relaxed(sort_by))
    return sorted(objects, key=lambda ko: _sort_key(tpl.values(ko[1])))


def _sort_rows(rows: list[dict], sort_by: str) -> list[dict]:
    tpl = Template(relaxed(sort_by))
    return sorted(rows, key=lambda r: _sort_key(tpl.values(r.get("object") or {})))


def _watch(s: Session, t: Target, output: str | None, opts: TableOptions, selector: str | None,
           field_selector: str | None, all_namespaces: bool, watch_only: bool) -> None:
    ns = _namespace(s, t, all_namespaces)
    params = selector_params(selector, field_selector)
    if t.names:
        if len(t.names) > 1:
            fail("watch is only supported on individual resources and resource collections, but 2 resources were found")
        params["fieldSelector"] = ",".join(filter(None, [f"metadata.name={t.names[0]}", params.get("fieldSelector")]))
    table_mode = not output or output == "wide"
    accept = TABLE_ACCEPT if table_mode else None
    first_headers = True
    widths: list[int] = []
    rv = ""
    if not watch_only:
        listing = s.api.list_all(t.rtype.path(ns), params, accept=accept)
        rv = (listing.get("metadata") or {}).get("resourceVersion", "")
        if table_mode:
            if listing.get("rows"):
                sys.stdout.write(tabwrite(table_lines(listing, opts, event_type="ADDED"), remember=widths))
                first_headers = False
            else:
                echo(no_resources_message(s, t.rtype, all_namespaces), err=True)
        else:
            for item in listing.get("items") or []:
                _print_watched(_typed(item, t.rtype), output or "yaml", t.rtype)
        sys.stdout.flush()
    wparams: dict[str, Any] = {**params, "allowWatchBookmarks": "false"}
    if rv:
        wparams["resourceVersion"] = rv
    if s.request_timeout:
        wparams["timeoutSeconds"] = int(s.request_timeout)
    columns: list = []
    for event in s.api.watch(t.rtype.path(ns), wparams, accept=accept):
        kind, obj = event.get("type"), event.get("object") or {}
        if kind == "ERROR":
            fail(format_status_error(StatusError.from_status(obj)))
        if kind == "BOOKMARK":
            continue
        if table_mode:
            if obj.get("columnDefinitions"):
                columns = obj["columnDefinitions"]
            table = {**obj, "columnDefinitions": columns}
            sys.stdout.write(tabwrite(table_lines(table, opts, headers=first_headers, event_type=kind),
                                      remember=widths))
            first_headers = False
        else:
            _print_watched(_typed(obj, t.rtype), output or "yaml", t.rtype)
        sys.stdout.flush()


def _print_watched(obj: dict, output: str, rtype: ResourceType) -> None:
    obj = strip_managed_fields(obj)
    if output == "name":
        sys.stdout.write(name_of(rtype.kind_name, obj) + "\n")
    elif output == "json":
        sys.stdout.write(dump_json(obj))
    elif output == "yaml":
        sys.stdout.write("---\n" + dump_yaml(obj))
    else:
        sys.stdout.write(render_objects([obj], output, True))
