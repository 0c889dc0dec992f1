"""`minictl apply -f`: create or update objects from files (client-side 3-way merge, or server-side apply)."""

from __future__ import annotations

import sys

import click

from apimachinery.errors import StatusError
from minictl.applying import (
    CLIENT_SIDE_MANAGER,
    CONFLICT_HINT,
    SERVER_SIDE_MANAGER,
    NamespaceMismatch,
    client_side_apply,
    server_side_apply,
    set_namespace,
)
from minictl.manifests import read_manifests
from minictl.printing import dump_json, dump_yaml, strip_managed_fields
from minictl.verbs.common import echo, fail, format_status_error, session, verb

DRY_RUN = click.Choice(["none", "client", "server"])


def dry_run_suffix(dry_run: str | None) -> str:
    return {"client": " (dry run)", "server": " (server dry run)"}.get(dry_run or "", "")


@verb(name="apply")
@click.option("-f", "--filename", multiple=True, required=True,
              help="File, directory or - (stdin) with the objects (YAML, several documents, or JSON).")
@click.option("-R", "--recursive", is_flag=True, help="Read directories recursively.")
@click.option("--server-side", is_flag=True, help="Server-side apply (the apiserver merges and tracks field owners).")
@click.option("--force-conflicts", is_flag=True, help="With --server-side: take over fields other managers own.")
@click.option("--field-manager", default=None, help="Name of the manager (default: kubectl-client-side-apply, or "
                                                     "kubectl with --server-side, as kubectl).")
@click.option("--dry-run", type=DRY_RUN, default="none", show_default=True,
              help="client: only print what would be sent; server: let the server check without persisting.")
@click.option("-o", "--output", type=click.Choice(["name", "yaml", "json"]), help="Print the resulting objects.")
def apply_cmd(filename: tuple[str, ...], recursive: bool, server_side: bool, force_conflicts: bool,
              field_manager: str | None, dry_run: str, output: str | None) -> None:
    """Apply a configuration to resources from files or stdin.

    Objects that do not exist are created; existing ones are patched with a three-way
    strategic merge (the last applied configuration, the file, the live object), so that
    fields removed from the file are removed from the object while changes made by others
    survive. kubectl and minictl store the same last-applied annotation and can take turns.
    With --server-side the apiserver merges and records field ownership.

    \b
    Examples:
      minictl apply -f deploy.yaml
      minictl apply -f ./manifests/ -R
      cat all.yaml | minictl apply -f -
      minictl apply --server-side --force-conflicts -f deploy.yaml
    """
    s = session()
    dry = None if dry_run == "none" else dry_run
    if force_conflicts and not server_side:
        fail("--force-conflicts only works with --server-side")
    manifests = read_manifests(list(filename), recursive)
    errors: list[str] = []
    outputs: list[dict] = []
    for m in manifests:
        obj = m.obj
        try:
            rtype = s.api.discovery.for_kind(obj["apiVersion"], obj["kind"])
        except Exception as e:
            errors.append(f'error: unable to recognize "{m.source}": {e}')
            continue
        try:
            ns = set_namespace(obj, rtype, s.namespace, s.namespace_explicit)
        except NamespaceMismatch as e:
            errors.append(str(e))
            continue
        try:
            if server_side:
                result = server_side_apply(s.api, rtype, obj, ns, field_manager or SERVER_SIDE_MANAGER,
                                           force_conflicts, dry)
            else:
                result = client_side_apply(s.api, rtype, obj, ns, dry, field_manager or CLIENT_SIDE_MANAGER)
        except StatusError as e:
            if server_side and e.code == 409:
                errors.append(f"error: Apply failed with conflicts: {e.message}{CONFLICT_HINT}")
            else:
                verb_text = getattr(e, "operation", "retrieving current configuration of")
                errors.append(format_status_error(e, f'error when {verb_text} "{m.source}": '))
            continue
        if result.warning:
            echo(result.warning, err=True)
        name = (obj.get("metadata") or {}).get("name", "")
        if output == "name":
            echo(f"{rtype.kind_name}/{name}")
        elif output:
            outputs.append(strip_managed_fields(result.obj))
        else:
            echo(f"{rtype.kind_name}/{name} {result.action}{dry_run_suffix(dry)}")
    if outputs:
        if len(outputs) == 1:
            doc = outputs[0]
        else:
            doc = {"apiVersion": "v1", "items": outputs, "kind": "List", "metadata": {"resourceVersion": ""}}
        sys.stdout.write(dump_yaml(doc) if output == "yaml" else dump_json(doc))
    if errors:
        for e in errors:
            echo(e, err=True)
        sys.exit(1)
