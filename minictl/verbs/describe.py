"""`minictl describe`: a readable report of objects and their events."""

from __future__ import annotations

import sys

import click

from apimachinery.errors import StatusError
from minictl.describe import describe
from minictl.verbs.common import (
    format_status_error,
    kube_bool,
    parse_resource_args,
    selector_params,
    session,
    verb,
)
from minictl.verbs.get import _complete_types


@verb(name="describe")
@click.argument("args", nargs=-1, shell_complete=_complete_types)
@click.option("-l", "--selector", help="Describe the objects matching this label selector.")
@click.option("-A", "--all-namespaces", is_flag=True, help="Look in every namespace.")
@kube_bool("--show-events", True, "Include the object's events.")
def describe_cmd(args: tuple[str, ...], selector: str | None, all_namespaces: bool, show_events: bool) -> None:
    """Show details of a resource or group of resources, with their events.

    TYPE NAME describes one object; TYPE NAME_PREFIX every object whose name starts with
    NAME_PREFIX; TYPE alone (or with -l) every object of that type.

    \b
    Examples:
      minictl describe pod web-1
      minictl describe deploy/web
      minictl describe nodes
      minictl describe pods -l app=web
    """
    s = session()
    targets = parse_resource_args(s.api, args, allow_all=False)
    errors: list[str] = []
    texts: list[str] = []
    for t in targets:
        ns = None if (not t.rtype.namespaced or all_namespaces) else s.namespace
        if t.names:
            for name in t.names:
                try:
                    objs = [s.api.get(t.rtype.path(ns or (s.namespace if t.rtype.namespaced else None), name))]
                except StatusError as e:
                    if e.code != 404:
                        raise
                    # kubectl falls back to a name prefix match
                    items = s.api.list_all(t.rtype.path(ns)).get("items") or []
                    objs = [i for i in items if (i.get("metadata") or {}).get("name", "").startswith(name)]
                    if not objs:
                        errors.append(format_status_error(e))
                        continue
                    texts += [describe(s.api, t.rtype, o, show_events, listed=True) for o in objs]
                    continue
                texts += [describe(s.api, t.rtype, o, show_events) for o in objs]
        else:
            items = s.api.list_all(t.rtype.path(ns), selector_params(selector, None)).get("items") or []
            texts += [describe(s.api, t.rtype, o, show_events, listed=True) for o in items]
    if texts:
        sys.stdout.write(texts[0] + "".join("\n\n" + t for t in texts[1:]))
    elif not errors:
        click.echo("No resources found" if all_namespaces else f"No resources found in {s.namespace} namespace.",
                   err=True)
    if errors:
        for e in errors:
            click.echo(e, err=True)
        sys.exit(1)
