"""`minictl config view|use-context|current-context|get-contexts|set-context`."""

from __future__ import annotations

import json
import sys

import click

from minictl.completion import complete_contexts
from minictl.printing import dump_yaml, tabwrite
from minictl.verbs.common import Verb, VerbGroup, echo, fail, session, with_global_options


@click.group("config", cls=VerbGroup, context_settings={"help_option_names": ["-h", "--help"]})
def config_group() -> None:
    """Read and change kubeconfig files (--kubeconfig, else every file of $KUBECONFIG, merged).

    \b
    Examples:
      minictl config view --minify
      minictl config get-contexts
      minictl config use-context admin@other
      minictl config set-context --current --namespace=staging
    """


@config_group.command("view", cls=Verb)
@click.option("--minify", is_flag=True, help="Only the current context and what it uses.")
@click.option("--raw", is_flag=True, help="Show certificates, keys and tokens instead of redacting them.")
@click.option("-o", "--output", type=click.Choice(["yaml", "json"]), default="yaml", show_default=True)
@with_global_options
def config_view(minify: bool, raw: bool, output: str) -> None:
    """Print the merged kubeconfig (secrets shown as DATA+OMITTED / REDACTED unless --raw).

    \b
    Example:
      minictl config view --minify --raw > one-cluster.kubeconfig
    """
    s = session()
    doc = s.configs.view(minify=minify, raw=raw, context=s.context)
    sys.stdout.write(dump_yaml(doc) if output == "yaml" else json.dumps(doc, indent=4) + "\n")


@config_group.command("use-context", cls=Verb)
@click.argument("name", shell_complete=complete_contexts)
@with_global_options
def config_use_context(name: str) -> None:
    """Make NAME the current context.

    \b
    Example:
      minictl config use-context kubernetes-admin@minik8s
    """
    session().configs.set_current_context(name)
    echo(f'Switched to context "{name}".')


@config_group.command("current-context", cls=Verb)
@with_global_options
def config_current_context() -> None:
    """Print the current context's name.

    \b
    Example:
      minictl config current-context
    """
    current = session().configs.current_context
    if not current:
        fail("current-context is not set")
    echo(current)


@config_group.command("get-contexts", cls=Verb)
@click.argument("name", required=False, shell_complete=complete_contexts)
@click.option("-o", "--output", type=click.Choice(["name"]), help="Only the names.")
@click.option("--no-headers", is_flag=True, help="Do not print the header line.")
@with_global_options
def config_get_contexts(name: str | None, output: str | None, no_headers: bool) -> None:
    """List the contexts (the current one marked with *).

    \b
    Example:
      minictl config get-contexts
    """
    configs = session().configs
    contexts = [c for c in configs.merged["contexts"] if not name or c.get("name") == name]
    if name and not contexts:
        fail(f'context {name} not found')
    if output == "name":
        for c in contexts:
            echo(c["name"])
        return
    lines = [] if no_headers else ["CURRENT\tNAME\tCLUSTER\tAUTHINFO\tNAMESPACE"]
    for c in contexts:
        body = c.get("context") or {}
        mark = "*" if c["name"] == configs.current_context else ""
        lines.append(f"{mark}\t{c['name']}\t{body.get('cluster', '')}\t{body.get('user', '')}\t{body.get('namespace', '')}")
    sys.stdout.write(tabwrite(lines))


@config_group.command("set-context", cls=Verb)
@click.argument("name", required=False, shell_complete=complete_contexts)
@click.option("--current", is_flag=True, help="Change the current context.")
@with_global_options
def config_set_context(name: str | None, current: bool) -> None:
    """Set the default namespace (--namespace) of a context.

    \b
    Example:
      minictl config set-context --current --namespace=staging
    """
    s = session()
    ns = s.namespace_flag
    if not ns:
        fail("nothing to set: pass --namespace=NAMESPACE")
    configs = s.configs
    if current:
        name = configs.current_context
    if not name:
        fail("you must specify a context name or --current")
    configs.set_context_namespace(name, ns)
    echo(f'Context "{name}" modified.')
