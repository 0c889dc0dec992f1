"""`minictl completion bash|zsh|fish`, and dynamic completion of resource types and names.

The scripts are click's own (they call back into minictl with _MINICTL_COMPLETE set); resource
types come from discovery (cached on disk, so completion costs no request while the cache is
fresh) and names from a list of the chosen type in the current namespace, bounded and best effort.
"""

from __future__ import annotations

from typing import Any

import click
from click.shell_completion import CompletionItem, get_completion_class

_LIST_LIMIT = 200


def _session_for(ctx: click.Context):  # -> Session | None
    from minictl.verbs.common import Session

    g: dict[str, Any] = {}
    c: click.Context | None = ctx
    while c is not None:
        g = {**c.meta.get("minictl.globals", {}), **g}
        c = c.parent
    return Session(kubeconfig=g.get("kubeconfig"), context=g.get("context"), namespace_flag=g.get("namespace"),
                   request_timeout=3.0)


def complete_resource_args(ctx: click.Context, _param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """First argument: resource types (or TYPE/NAME); later ones: names of that type."""
    try:
        s = _session_for(ctx)
        api = s.api
        args = [a for a in (ctx.params.get("args") or ctx.params.get("resource") or ()) if a]
        if not args:
            if "/" in incomplete:
                type_name, _, prefix = incomplete.partition("/")
                rtype = api.discovery.resolve(type_name)
                return [CompletionItem(f"{type_name}/{n}") for n in _names(s, rtype) if n.startswith(prefix)]
            names = sorted({t.plural for t in api.discovery.types() if "/" not in t.plural and "list" in t.verbs})
            return [CompletionItem(n) for n in names if n.startswith(incomplete)]
        rtype = api.discovery.resolve(args[0].split(",")[0])
        return [CompletionItem(n) for n in _names(s, rtype) if n.startswith(incomplete)]
    except Exception:  # completion must never print a traceback into the user's shell
        return []


def _names(s, rtype) -> list[str]:  # (Session, ResourceType)
    ns = s.namespace if rtype.namespaced else None
    doc = s.api.get(rtype.path(ns), {"limit": _LIST_LIMIT},
                    accept="application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io,application/json")
    return sorted((i.get("metadata") or {}).get("name", "") for i in doc.get("items") or [])


def complete_pod_names(ctx: click.Context, _param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    try:
        s = _session_for(ctx)
        return [CompletionItem(n) for n in _names(s, s.api.discovery.resolve("pods")) if n.startswith(incomplete)]
    except Exception:
        return []


def complete_contexts(ctx: click.Context, _param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    try:
        s = _session_for(ctx)
        return [CompletionItem(n) for n in s.configs.context_names() if n.startswith(incomplete)]
    except Exception:
        return []


@click.command("completion", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion_cmd(shell: str) -> None:
    """Print the shell completion script for bash, zsh or fish.

    \b
    Examples:
      source <(minictl completion bash)                    # bash, this shell
      minictl completion zsh > "${fpath[1]}/_minictl"      # zsh
      minictl completion fish > ~/.config/fish/completions/minictl.fish
    """
    root = click.get_current_context().find_root().command
    prog = "minictl"  # the console script the shell will call back
    cls = get_completion_class(shell)
    if cls is None:
        raise click.UsageError(f"unsupported shell {shell}")
    complete_var = "_" + prog.replace("-", "_").upper() + "_COMPLETE"
    click.echo(cls(root, {}, prog, complete_var).source())
