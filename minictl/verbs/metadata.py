"""`minictl label` and `minictl annotate`: change labels/annotations with a merge patch."""

from __future__ import annotations

import sys
from typing import Any

import click

from apimachinery.errors import StatusError
from apimachinery.patch import create_merge_patch
from minictl.printing import dump_json, dump_yaml, strip_managed_fields
from minictl.verbs.common import (
    echo,
    fail,
    format_status_error,
    parse_resource_args,
    selector_params,
    session,
    verb,
)
from minictl.verbs.get import _complete_types

MERGE = "application/merge-patch+json"


def split_changes(args: tuple[str, ...]) -> tuple[list[str], dict[str, str], list[str]]:
    """(resource args, key=value to set, keys to remove) — kubectl's split of the arguments."""
    resources: list[str] = []
    add: dict[str, str] = {}
    remove: list[str] = []
    for a in args:
        if "=" in a:
            k, _, v = a.partition("=")
            if not k:
                fail(f"invalid label spec: {a}")
            add[k] = v
        elif a.endswith("-") and len(a) > 1:
            remove.append(a[:-1])
        else:
            resources.append(a)
    for k in remove:
        if k in add:
            fail("can not both modify and remove a label in the same command")
    return resources, add, remove


def change_metadata(field: str, past: str, args: tuple[str, ...], overwrite: bool, selector: str | None,
                    all_: bool, all_namespaces: bool, list_: bool, resource_version: str | None,
                    output: str | None, dry_run: str) -> None:
    s = session()
    resource_args, add, remove = split_changes(args)
    if not add and not remove and not list_:
        fail(f"at least one {field[:-1]} update is required")
    objects: list[tuple[Any, dict]] = []
    for t in parse_resource_args(s.api, resource_args):
        ns = None if not t.rtype.namespaced or (all_namespaces and not t.names) else s.namespace
        if t.names:
            for n in t.names:
                objects.append((t.rtype, s.api.get(t.rtype.path(ns, n))))
        elif selector or all_:
            items = s.api.list_all(t.rtype.path(ns), selector_params(selector, None)).get("items") or []
            objects += [(t.rtype, i) for i in items]
        else:
            fail("resource(s) were provided, but no name was specified")
    errors: list[str] = []
    for rtype, obj in objects:
        meta = obj.get("metadata") or {}
        current = dict(meta.get(field) or {})
        label = f"{rtype.kind_name}/{meta.get('name', '')}"
        if list_:
            for k in sorted(current):
                echo(f"{k}={current[k]}")
            continue
        for k, v in add.items():
            if not overwrite and k in current and current[k] != v:
                fail(f"'{k}' already has a value ({current[k]}), and --overwrite is false")
        updated = {**current, **add}
        for k in remove:
            if k not in updated:
                echo(f'{field[:-1]} "{k}" not found.')
            updated.pop(k, None)
        old_meta = {field: current} if current else {}
        new_meta = {field: updated} if updated else {}
        patch = create_merge_patch({"metadata": old_meta}, {"metadata": new_meta})
        if resource_version:
            patch.setdefault("metadata", {})["resourceVersion"] = resource_version
        if not patch or patch == {"metadata": {}}:
            echo(f"{label} not {past}")
            continue
        params = {"fieldManager": f"kubectl-{'label' if field == 'labels' else 'annotate'}",
                  "dryRun": "All" if dry_run == "server" else None}
        result = obj
        if dry_run != "client":
            try:
                result = s.api.send("PATCH", rtype.path(meta.get("namespace") if rtype.namespaced else None,
                                                        meta.get("name", "")), patch, params, content_type=MERGE)
            except StatusError as e:
                errors.append(format_status_error(e))
                continue
        if output == "name":
            echo(label)
        elif output:
            sys.stdout.write(dump_yaml(strip_managed_fields(result)) if output == "yaml"
                             else dump_json(strip_managed_fields(result)))
        else:
            echo(f"{label} {past}")
    if errors:
        for e in errors:
            echo(e, err=True)
        sys.exit(1)


def _options(f):  # shared flags of label and annotate
    for deco in reversed([
        click.argument("args", nargs=-1, required=True, shell_complete=_complete_types),
        click.option("--overwrite", is_flag=True, help="Allow replacing existing values."),
        click.option("-l", "--selector", help="Change the objects matching this label selector."),
        click.option("--all", "all_", is_flag=True, help="Change every object of the type in the namespace."),
        click.option("-A", "--all-namespaces", is_flag=True, help="With -l or --all: in every namespace."),
        click.option("--list", "list_", is_flag=True, help="Only print the current values."),
        click.option("--resource-version", help="Only change the object if it is still at this resourceVersion."),
        click.option("-o", "--output", type=click.Choice(["name", "yaml", "json"]), help="Print the changed objects."),
        click.option("--dry-run", type=click.Choice(["none", "client", "server"]), default="none", show_default=True),
    ]):
        f = deco(f)
    return f


@verb(name="label")
@_options
def label_cmd(args: tuple[str, ...], overwrite: bool, selector: str | None, all_: bool, all_namespaces: bool,
              list_: bool, resource_version: str | None, output: str | None, dry_run: str) -> None:
    """Update the labels of resources: KEY=VALUE sets, KEY- removes.

    \b
    Examples:
      minictl label pods web-1 tier=frontend
      minictl label --overwrite pods web-1 tier=backend
      minictl label pods --all audited=true
      minictl label deploy/web tier-
    """
    change_metadata("labels", "labeled", args, overwrite, selector, all_, all_namespaces, list_, resource_version,
                    output, dry_run)


@verb(name="annotate")
@_options
def annotate_cmd(args: tuple[str, ...], overwrite: bool, selector: str | None, all_: bool, all_namespaces: bool,
                 list_: bool, resource_version: str | None, output: str | None, dry_run: str) -> None:
    """Update the annotations of resources: KEY=VALUE sets, KEY- removes.

    \b
    Examples:
      minictl annotate pods web-1 description='my frontend'
      minictl annotate --overwrite deploy/web kubernetes.io/change-cause='image 1.27'
      minictl annotate pods web-1 description-
    """
    change_metadata("annotations", "annotated", args, overwrite, selector, all_, all_namespaces, list_,
                    resource_version, output, dry_run)


__all__ = ["annotate_cmd", "label_cmd"]
