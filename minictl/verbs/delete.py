"""`minictl delete`: by file, by name, by selector or --all; waits until the objects are gone."""

from __future__ import annotations

import sys
import time
from typing import Any

import click

from apimachinery.errors import StatusError
from minictl.api import Api, ResourceType
from minictl.manifests import read_manifests
from minictl.verbs.apply import DRY_RUN
from minictl.verbs.common import (
    echo,
    fail,
    format_status_error,
    kube_bool,
    parse_resource_args,
    selector_params,
    session,
    verb,
)
from minictl.verbs.get import _complete_types

CASCADE = {"background": "Background", "foreground": "Foreground", "orphan": "Orphan",
           "true": "Background", "false": "Orphan"}


def delete_message(rtype: ResourceType, name: str, namespace: str | None, forced: bool, dry: str | None) -> str:
    verb_text = "force deleted" if forced else "deleted"
    where = f" from {namespace} namespace" if namespace else ""
    suffix = {"client": " (dry run)", "server": " (server dry run)"}.get(dry or "", "")
    return f'{rtype.kind_name} "{name}" {verb_text}{where}{suffix}'


def wait_deleted(api: Api, rtype: ResourceType, namespace: str | None, name: str, uid: str, timeout: float) -> bool:
    """True once the object with this uid no longer exists (a watch, re-checked by GET)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            obj = api.get(rtype.path(namespace, name))
        except StatusError as e:
            if e.code == 404:
                return True
            raise
        if (obj.get("metadata") or {}).get("uid") != uid:
            return True
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        params: dict[str, Any] = {"fieldSelector": f"metadata.name={name}",
                                  "resourceVersion": (obj.get("metadata") or {}).get("resourceVersion", ""),
                                  "timeoutSeconds": max(1, int(min(remaining, 60)))}
        try:
            for event in api.watch(rtype.path(namespace), params):
                if event.get("type") == "DELETED" and ((event.get("object") or {}).get("metadata") or {}).get("uid") == uid:
                    return True
                if event.get("type") == "ERROR":
                    break
        except StatusError as e:
            if e.code != 410:
                raise


@verb(name="delete")
@click.argument("args", nargs=-1, shell_complete=_complete_types)
@click.option("-f", "--filename", multiple=True, help="Delete the objects named in these files.")
@click.option("-R", "--recursive", is_flag=True, help="Read directories given with -f recursively.")
@click.option("-l", "--selector", help="Delete the objects matching this label selector.")
@click.option("--field-selector", help="Delete the objects matching this field selector.")
@click.option("--all", "all_", is_flag=True, help="Delete every object of the type in the namespace.")
@click.option("-A", "--all-namespaces", is_flag=True, help="With -l or --all: in every namespace.")
@click.option("--cascade", default="background", show_default=True,
              type=click.Choice(["background", "foreground", "orphan", "true", "false"]),
              help="How dependents go: background (GC deletes them after), foreground (before), orphan (kept).")
@click.option("--grace-period", type=int, default=-1, show_default=True,
              help="Seconds the object gets to terminate (-1: its own default).")
@click.option("--now", is_flag=True, help="Terminate at once (grace period 1).")
@click.option("--force", is_flag=True, help="With --grace-period=0: remove without waiting for the kubelet.")
@kube_bool("--wait", True, "Wait until the objects are gone (--wait=false: do not).")
@click.option("--timeout", type=float, default=0, help="Seconds to wait (0: until gone, at most an hour).")
@click.option("--ignore-not-found", is_flag=True, help="Succeed for objects that do not exist.")
@click.option("-o", "--output", type=click.Choice(["name"]), help="Print TYPE/NAME of each deleted object.")
@click.option("--dry-run", type=DRY_RUN, default="none", show_default=True, help="server: check without deleting.")
def delete_cmd(args: tuple[str, ...], filename: tuple[str, ...], recursive: bool, selector: str | None,
               field_selector: str | None, all_: bool, all_namespaces: bool, cascade: str, grace_period: int,
               now: bool, force: bool, wait: bool, timeout: float, ignore_not_found: bool, output: str | None,
               dry_run: str) -> None:
    """Delete resources by file, by type and name, by label selector, or all of a type.

    Waits (by default) until each object is really gone, e.g. until finalizers ran or the
    kubelet stopped the pod.

    \b
    Examples:
      minictl delete pod web-1
      minictl delete -f deploy.yaml
      minictl delete pods -l app=web
      minictl delete deploy web --cascade=orphan     # keep its ReplicaSets and pods
      minictl delete pod web-1 --grace-period=0 --force
    """
    s = session()
    dry = None if dry_run == "none" else dry_run
    if now:
        grace_period = 1
    if force and grace_period < 0:
        grace_period = 0
    if grace_period == 0 and not force:
        fail("error: --grace-period=0 requires --force (it removes the object without waiting for the kubelet)")
    if force:
        echo("Warning: Immediate deletion does not wait for confirmation that the running resource has been "
             "terminated. The resource may continue to run on the cluster indefinitely.", err=True)
    # (rtype, namespace, name) in order
    work: list[tuple[ResourceType, str | None, str]] = []
    errors: list[str] = []
    if filename:
        for m in read_manifests(list(filename), recursive):
            rtype = s.api.discovery.for_kind(m.obj["apiVersion"], m.obj["kind"])
            meta = m.obj.get("metadata") or {}
            ns = (meta.get("namespace") or s.namespace) if rtype.namespaced else None
            work.append((rtype, ns, meta.get("name", "")))
    else:
        targets = parse_resource_args(s.api, args)
        for t in targets:
            ns = None if not t.rtype.namespaced else (None if all_namespaces else s.namespace)
            if t.names:
                if selector or all_:
                    fail("name cannot be provided when a selector or --all is specified")
                work += [(t.rtype, ns or (s.namespace if t.rtype.namespaced else None), n) for n in t.names]
            elif selector or field_selector or all_:
                items = s.api.list_all(t.rtype.path(ns), selector_params(selector, field_selector)).get("items") or []
                for item in items:
                    meta = item.get("metadata") or {}
                    work.append((t.rtype, meta.get("namespace") if t.rtype.namespaced else None, meta.get("name", "")))
            else:
                fail('resource(s) were provided, but no name was specified')
        if not work:
            echo("No resources found", err=True)
            return
    body: dict[str, Any] = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": CASCADE[cascade]}
    if grace_period >= 0:
        body["gracePeriodSeconds"] = grace_period
    params = {"dryRun": "All"} if dry == "server" else None
    pending: list[tuple[ResourceType, str | None, str, str]] = []
    for rtype, ns, name in work:
        try:
            if dry == "client":
                s.api.get(rtype.path(ns, name))
                result: dict[str, Any] = {}
            else:
                result = s.api.send("DELETE", rtype.path(ns, name), body, params)
        except StatusError as e:
            if not (e.code == 404 and ignore_not_found):
                errors.append(format_status_error(e))
            continue
        echo(f"{rtype.kind_name}/{name}" if output == "name" else delete_message(rtype, name, ns, force, dry))
        uid = (result.get("metadata") or {}).get("uid") or (result.get("details") or {}).get("uid") or ""
        if wait and not dry and uid and result.get("kind") != "Status":
            pending.append((rtype, ns, name, uid))
    limit = timeout if timeout > 0 else 3600.0
    started = time.monotonic()
    for rtype, ns, name, uid in pending:
        remaining = max(0.0, limit - (time.monotonic() - started))
        if not wait_deleted(s.api, rtype, ns, name, uid, remaining):
            errors.append(f'error: timed out waiting for the condition on {rtype.group_resource}/{name}')
    if errors:
        for e in errors:
            echo(e, err=True)
        sys.exit(1)
