"""`minictl create -f FILE` and the object generators (namespace, configmap, secret generic, deployment,
serviceaccount)."""

from __future__ import annotations

import base64
import sys
from pathlib import Path
from typing import Any

import click

from apimachinery.errors import StatusError
from minictl.applying import NamespaceMismatch, modified_configuration, set_namespace
from minictl.manifests import read_manifests
from minictl.printing import dump_json, dump_yaml, strip_managed_fields
from minictl.verbs.apply import DRY_RUN, dry_run_suffix
from minictl.verbs.common import (
    Verb,
    VerbGroup,
    echo,
    fail,
    format_status_error,
    session,
    with_global_options,
)

CREATE_MANAGER = "kubectl-create"


def _emit(obj: dict, kind_name: str, output: str | None, dry: str | None) -> None:
    name = (obj.get("metadata") or {}).get("name", "")
    if output == "name":
        echo(f"{kind_name}/{name}")
    elif output == "yaml":
        sys.stdout.write(dump_yaml(strip_managed_fields(obj)))
    elif output == "json":
        sys.stdout.write(dump_json(strip_managed_fields(obj)))
    else:
        echo(f"{kind_name}/{name} created{dry_run_suffix(dry)}")


def create_object(obj: dict[str, Any], output: str | None, dry_run: str, save_config: bool = False,
                  source: str = "") -> str | None:
    """POST one object; returns an error message instead of raising for per-object failures."""
    s = session()
    dry = None if dry_run == "none" else dry_run
    rtype = s.api.discovery.for_kind(obj["apiVersion"], obj["kind"])
    try:
        ns = set_namespace(obj, rtype, s.namespace, s.namespace_explicit)
    except NamespaceMismatch as e:
        return str(e)
    if save_config:
        obj, _ = modified_configuration(obj)
    if dry == "client":
        _emit(obj, rtype.kind_name, output, dry)
        return None
    params = {"fieldManager": CREATE_MANAGER, "fieldValidation": "Strict", "dryRun": "All" if dry == "server" else None}
    try:
        created = s.api.send("POST", rtype.path(ns), obj, params)
    except StatusError as e:
        return format_status_error(e, f'error when creating "{source}": ' if source else "")
    _emit(created, rtype.kind_name, output, dry)
    return None


OUTPUT = click.option("-o", "--output", type=click.Choice(["name", "yaml", "json"]), help="Print the created objects.")
DRY = click.option("--dry-run", type=DRY_RUN, default="none", show_default=True,
                   help="client: print the object without sending it; server: validate without persisting.")


@click.group("create", cls=VerbGroup, invoke_without_command=True,
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.option("-f", "--filename", multiple=True, help="File, directory or - (stdin) with the objects to create.")
@click.option("-R", "--recursive", is_flag=True, help="Read directories recursively.")
@click.option("--save-config", is_flag=True, help="Store the last-applied annotation, so a later apply merges 3-way.")
@OUTPUT
@DRY
@with_global_options
@click.pass_context
def create_cmd(ctx: click.Context, filename: tuple[str, ...], recursive: bool, save_config: bool,
               output: str | None, dry_run: str) -> None:
    """Create resources from files or stdin, or with one of the generators below.

    Unlike apply, create fails for an object that already exists.

    \b
    Examples:
      minictl create -f pod.yaml
      minictl create namespace staging
      minictl create configmap app-config --from-literal=mode=prod --from-file=app.ini
      minictl create secret generic db --from-literal=password=s3cret
      minictl create deployment web --image=localhost/minik8s/busybox:latest --replicas=2
    """
    if ctx.invoked_subcommand:
        return
    if not filename:
        click.echo(ctx.get_help())
        fail("must specify one of -f and -k")
    errors = []
    for m in read_manifests(list(filename), recursive):
        err = create_object(m.obj, output, dry_run, save_config, m.source)
        if err:
            errors.append(err)
    if errors:
        for e in errors:
            echo(e, err=True)
        sys.exit(1)


def _generator(name: str, help_text: str):  # -> decorator
    def deco(f):
        f = OUTPUT(DRY(f))
        return create_cmd.command(name, cls=Verb, help=help_text,
                                  context_settings={"help_option_names": ["-h", "--help"]})(with_global_options(f))

    return deco


def _finish_generated(obj: dict[str, Any], output: str | None, dry_run: str) -> None:
    err = create_object(obj, output, dry_run)
    if err:
        fail(err)


@_generator("namespace", """Create a namespace.

    \b
    Example:
      minictl create namespace staging
    """)
@click.argument("name")
def create_namespace(name: str, output: str | None, dry_run: str) -> None:
    _finish_generated({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}, output, dry_run)


def _from_sources(literals: tuple[str, ...], files: tuple[str, ...], binary_ok: bool) -> tuple[dict, dict]:
    data: dict[str, str] = {}
    binary: dict[str, str] = {}
    for lit in literals:
        key, sep, value = lit.partition("=")
        if not sep or not key:
            fail(f'invalid literal source {lit}, expected key=value')
        data[key] = value
    for spec in files:
        key, sep, path = spec.partition("=")
        if not sep:
            key, path = Path(spec).name, spec
        p = Path(path)
        paths = sorted(x for x in p.iterdir() if x.is_file()) if p.is_dir() else [p]
        for fp in paths:
            raw = fp.read_bytes()
            k = key if not p.is_dir() else fp.name
            try:
                data[k] = raw.decode("utf-8")
            except UnicodeDecodeError:
                if not binary_ok:
                    fail(f"{fp} is not valid UTF-8")
                binary[k] = base64.b64encode(raw).decode()
    return data, binary


@_generator("configmap", """Create a configmap from literal values and files.

    \b
    Examples:
      minictl create configmap app --from-literal=mode=prod --from-literal=level=2
      minictl create configmap app --from-file=app.ini --from-file=conf=./settings.txt
    """)
@click.argument("name")
@click.option("--from-literal", multiple=True, help="key=value (repeatable).")
@click.option("--from-file", multiple=True, help="[key=]path of a file, or a directory (repeatable).")
def create_configmap(name: str, from_literal: tuple[str, ...], from_file: tuple[str, ...], output: str | None,
                     dry_run: str) -> None:
    data, binary = _from_sources(from_literal, from_file, True)
    obj: dict[str, Any] = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}}
    if data:
        obj["data"] = data
    if binary:
        obj["binaryData"] = binary
    _finish_generated(obj, output, dry_run)


@_generator("secret", """Create a secret (only the generic type: `secret generic NAME`).

    \b
    Example:
      minictl create secret generic db --from-literal=user=app --from-literal=password=s3cret
    """)
@click.argument("secret_type", type=click.Choice(["generic"]))
@click.argument("name")
@click.option("--from-literal", multiple=True, help="key=value (repeatable).")
@click.option("--from-file", multiple=True, help="[key=]path of a file, or a directory (repeatable).")
@click.option("--type", "type_", default="", help="The secret's type (default Opaque).")
def create_secret(secret_type: str, name: str, from_literal: tuple[str, ...], from_file: tuple[str, ...],
                  type_: str, output: str | None, dry_run: str) -> None:
    data, binary = _from_sources(from_literal, from_file, True)
    encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()} | binary
    obj: dict[str, Any] = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "data": encoded}
    if type_:
        obj["type"] = type_
    _finish_generated(obj, output, dry_run)


@_generator("deployment", """Create a deployment running the given image.

    \b
    Example:
      minictl create deployment web --image=localhost/minik8s/busybox:latest --replicas=3 -- sleep 3600
    """)
@click.argument("name")
@click.argument("command", nargs=-1)
@click.option("--image", multiple=True, required=True, help="Container image (repeat for several containers).")
@click.option("--replicas", type=int, default=1, show_default=True)
@click.option("--port", type=int, default=None, help="The container port to expose.")
def create_deployment(name: str, command: tuple[str, ...], image: tuple[str, ...], replicas: int, port: int | None,
                      output: str | None, dry_run: str) -> None:
    containers = []
    for img in image:
        cname = img.rsplit("/", 1)[-1].split(":")[0].split("@")[0] or name
        c: dict[str, Any] = {"name": cname, "image": img}
        if port is not None:
            c["ports"] = [{"containerPort": port}]
        if command:
            c["command"] = list(command)
        containers.append(c)
    labels = {"app": name}
    obj = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "labels": labels},
           "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                    "template": {"metadata": {"labels": labels}, "spec": {"containers": containers}}}}
    _finish_generated(obj, output, dry_run)


@_generator("serviceaccount", """Create a service account.

    \b
    Example:
      minictl create serviceaccount builder
    """)
@click.argument("name")
def create_serviceaccount(name: str, output: str | None, dry_run: str) -> None:
    _finish_generated({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}}, output, dry_run)


create_cmd.aliases = {"ns": "namespace", "cm": "configmap", "deploy": "deployment", "sa": "serviceaccount"}
