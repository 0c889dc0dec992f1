"""`minictl edit`: open objects in $KUBE_EDITOR / $EDITOR and patch what changed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from typing import Any

import click

from apimachinery.errors import StatusError
from apimachinery.patch import create_merge_patch
from apimachinery.strategic import schema_for
from apimachinery.strategic_diff import create_two_way_patch
from minictl.manifests import ManifestError, parse_documents
from minictl.printing import dump_json, dump_yaml, strip_managed_fields
from minictl.verbs.common import (
    echo,
    editor_command,
    fail,
    format_status_error,
    parse_resource_args,
    session,
    verb,
)
from minictl.verbs.get import _complete_types

HEADER = """# Please edit the object below. Lines beginning with a '#' will be ignored,
# and an empty file will abort the edit. If an error occurs while saving this file will be
# reopened with the relevant failures.
#
"""
EDIT_MANAGER = "kubectl-edit"


def _strip_comments(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))


def edit_patch(original: dict[str, Any], edited: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """(patch, content type) turning the shown object into the edited one."""
    schema = schema_for(original.get("apiVersion", ""), original.get("kind", ""))
    if schema is None:
        return create_merge_patch(original, edited), "application/merge-patch+json"
    return create_two_way_patch(original, edited, schema), "application/strategic-merge-patch+json"


@verb(name="edit")
@click.argument("args", nargs=-1, required=True, shell_complete=_complete_types)
@click.option("-o", "--output", type=click.Choice(["yaml", "json"]), default="yaml", show_default=True,
              help="The format to edit in.")
@click.option("--show-managed-fields", is_flag=True, help="Include metadata.managedFields.")
def edit_cmd(args: tuple[str, ...], output: str, show_managed_fields: bool) -> None:
    """Edit resources in your editor ($KUBE_EDITOR, else $EDITOR, else vi).

    The objects are fetched, written to a temporary file and opened; after you save and quit,
    the differences are sent as a patch. An unchanged or emptied file cancels.

    \b
    Examples:
      minictl edit deploy/web
      KUBE_EDITOR=nano minictl edit svc web -o json
    """
    s = session()
    objects: list[tuple[Any, dict]] = []
    for t in parse_resource_args(s.api, args, allow_all=False):
        if not t.names:
            fail("edit needs TYPE NAME or TYPE/NAME")
        ns = s.namespace if t.rtype.namespaced else None
        for n in t.names:
            obj = s.api.get(t.rtype.path(ns, n))
            objects.append((t.rtype, obj if show_managed_fields else strip_managed_fields(obj)))
    originals = [o for _, o in objects]
    doc = originals[0] if len(originals) == 1 else {"apiVersion": "v1", "kind": "List", "items": originals,
                                                     "metadata": {"resourceVersion": ""}}
    text = HEADER + (dump_yaml(doc) if output == "yaml" else dump_json(doc))
    fd, path = tempfile.mkstemp(prefix="minictl-edit-", suffix=f".{output}")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        r = subprocess.run([*editor_command(), path], check=False)
        if r.returncode != 0:
            fail(f"there was a problem with the editor {' '.join(editor_command())!r}")
        with open(path) as f:
            edited_text = f.read()
    except FileNotFoundError as e:
        os.unlink(path)
        fail(f"unable to launch the editor: {e}")
    body = _strip_comments(edited_text).strip()
    if not body or edited_text == text:
        os.unlink(path)
        echo("Edit cancelled, no changes made.")
        return
    try:
        edited = parse_documents(body, path)
    except ManifestError as e:
        fail(f"{e}\nA copy of your changes has been stored to \"{path}\"")
    by_key = {(o.get("kind"), (o.get("metadata") or {}).get("namespace"), (o.get("metadata") or {}).get("name")): o
              for o in edited}
    errors: list[str] = []
    changed = False
    for rtype, original in objects:
        meta = original.get("metadata") or {}
        new = by_key.get((original.get("kind"), meta.get("namespace"), meta.get("name")))
        label = f"{rtype.kind_name}/{meta.get('name', '')}"
        if new is None:
            errors.append(f"error: {label}: the object was removed from the edited file")
            continue
        if json.dumps(new, sort_keys=True) == json.dumps(original, sort_keys=True):
            continue
        patch, ctype = edit_patch(original, new)
        if not patch:
            continue
        try:
            s.api.send("PATCH", rtype.path(meta.get("namespace") if rtype.namespaced else None, meta.get("name", "")),
                       patch, {"fieldManager": EDIT_MANAGER}, content_type=ctype)
        except StatusError as e:
            errors.append(format_status_error(e))
            continue
        changed = True
        echo(f"{label} edited")
    if errors:
        for e in errors:
            echo(e, err=True)
        echo(f'error: A copy of your changes has been stored to "{path}"', err=True)
        sys.exit(1)
    os.unlink(path)
    if not changed:
        echo("Edit cancelled, no changes made.")
