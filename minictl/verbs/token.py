"""`minictl token create | list | delete`: bootstrap tokens for joining nodes, as `kubeadm token` does."""

from __future__ import annotations

import datetime as dt
import sys
from typing import Any

import click
from cryptography import x509

from apimachinery.bootstraptoken import (
    CLUSTER_INFO_NAME,
    CLUSTER_INFO_NAMESPACE,
    DEFAULT_NODE_TOKEN_GROUP,
    DEFAULT_USAGES,
    KNOWN_USAGES,
    KUBECONFIG_KEY,
    NAMESPACE,
    SECRET_PREFIX,
    SECRET_TYPE,
    TOKEN_ID_RE,
    BootstrapToken,
    ca_cert_hash,
    generate_token,
    parse_token,
)
from apimachinery.duration import parse_duration, short_human_duration
from apimachinery.errors import StatusError
from minictl.printing import tabwrite
from minictl.verbs.common import VerbGroup, echo, fail, session, with_global_options

_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 110}
SECRETS = f"/api/v1/namespaces/{NAMESPACE}/secrets"


@click.group("token", cls=VerbGroup, context_settings=_SETTINGS)
def token_group() -> None:
    """Manage bootstrap tokens: the credentials `minictl node join` uses to add a node.

    \b
    Examples:
      minictl token create --print-join-command   # a new 24h token, as the whole join command
      minictl token list
      minictl token delete abcdef
    """


def _ttl(value: str) -> dt.timedelta:
    try:
        nanos = parse_duration(value)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None
    if nanos < 0:
        raise click.BadParameter("the TTL must not be negative")
    return dt.timedelta(microseconds=nanos // 1000)


def join_endpoint(api: Any) -> tuple[str, str]:
    """(apiserver URL other machines use, CA hash) from kube-public/cluster-info, else the kubeconfig."""
    from minictl.join import DiscoveryError, parse_cluster_info_kubeconfig

    server, ca_pem = api.info.server, api.info.ca_pem
    try:
        cm = api.get(f"/api/v1/namespaces/{CLUSTER_INFO_NAMESPACE}/configmaps/{CLUSTER_INFO_NAME}")
        server, ca_pem = parse_cluster_info_kubeconfig(str((cm.get("data") or {}).get(KUBECONFIG_KEY) or ""))
    except (StatusError, DiscoveryError):
        pass  # no (usable) cluster-info, e.g. a cluster from before `node join` existed: the kubeconfig's view
    if not ca_pem:
        fail("error: the kubeconfig names no cluster CA: cannot compute --discovery-token-ca-cert-hash")
    cert = x509.load_pem_x509_certificates(ca_pem)[0]
    return server, ca_cert_hash(cert)


def join_command(server: str, token: str, ca_hash: str) -> str:
    return f"minictl node join {server} --token {token} --discovery-token-ca-cert-hash {ca_hash}"


@token_group.command("create", context_settings=_SETTINGS)
@click.argument("token", required=False)
@click.option("--ttl", default="24h", show_default=True,
              help="How long the token is valid (a Go duration, e.g. 2h30m); 0 means it never expires.")
@click.option("--description", default="", help="A human-readable note on what the token is for.")
@click.option("--usages", default=",".join(DEFAULT_USAGES), show_default=True,
              help=f"What the token may be used for (comma-separated: {', '.join(KNOWN_USAGES)}).")
@click.option("--groups", default=DEFAULT_NODE_TOKEN_GROUP, show_default=True,
              help="Extra groups the token authenticates as (comma-separated, each system:bootstrappers:…).")
@click.option("--print-join-command", is_flag=True,
              help="Print the whole `minictl node join` command instead of only the token.")
@with_global_options
def token_create(token: str | None, ttl: str, description: str, usages: str, groups: str,
                 print_join_command: bool) -> None:
    """Create a bootstrap token (a Secret bootstrap-token-<id> in kube-system) and print it.

    TOKEN ([a-z0-9]{6}.[a-z0-9]{16}) is generated when not given.

    \b
    Examples:
      minictl token create
      minictl token create --ttl 2h --description "rack 3" --print-join-command
    """
    value = token or generate_token()
    try:
        token_id, token_secret = parse_token(value)
    except ValueError as e:
        fail(f"error: {e}")
    lifetime = _ttl(ttl)
    bt = BootstrapToken(
        token_id, token_secret, description,
        dt.datetime.now(dt.UTC).replace(microsecond=0) + lifetime if lifetime else None,
        tuple(u.strip() for u in usages.split(",") if u.strip()),
        tuple(g.strip() for g in groups.split(",") if g.strip()),
    )
    try:
        secret = bt.to_secret()
    except ValueError as e:
        fail(f"error: {e}")
    api = session().api
    api.send("POST", SECRETS, secret)
    if print_join_command:
        server, ca_hash = join_endpoint(api)
        echo(join_command(server, bt.token, ca_hash))
    else:
        echo(bt.token)


@token_group.command("list", context_settings=_SETTINGS)
@with_global_options
def token_list() -> None:
    """List the bootstrap tokens: TOKEN, TTL, EXPIRES, USAGES, DESCRIPTION, EXTRA GROUPS.

    \b
    Example:
      minictl token list
    """
    items = session().api.get(SECRETS, {"fieldSelector": f"type={SECRET_TYPE}"}).get("items") or []
    now = dt.datetime.now(dt.UTC)
    lines = ["TOKEN\tTTL\tEXPIRES\tUSAGES\tDESCRIPTION\tEXTRA GROUPS"]
    for secret in sorted(items, key=lambda s: s["metadata"]["name"]):
        bt = BootstrapToken.from_secret(secret)
        if bt is None:
            continue
        if bt.expires is None:
            ttl, expires = "<forever>", "<never>"
        else:
            ttl = "<invalid>" if bt.expired(now) else short_human_duration((bt.expires - now).total_seconds())
            expires = bt.expires.strftime("%Y-%m-%dT%H:%M:%SZ")
        lines.append(f"{bt.token}\t{ttl}\t{expires}\t{','.join(bt.usages) or '<none>'}\t"
                     f"{bt.description or '<none>'}\t{','.join(bt.groups) or '<none>'}")
    if len(lines) == 1:
        echo("No bootstrap tokens found.", err=True)
        return
    sys.stdout.write(tabwrite(lines))


@token_group.command("delete", context_settings=_SETTINGS)
@click.argument("tokens", nargs=-1, required=True)
@with_global_options
def token_delete(tokens: tuple[str, ...]) -> None:
    """Delete bootstrap tokens, given as TOKEN-ID or the whole TOKEN.

    \b
    Example:
      minictl token delete abcdef
    """
    api = session().api
    for value in tokens:
        token_id = value.split(".", 1)[0]
        if not TOKEN_ID_RE.match(token_id):
            fail(f"error: {value!r} is neither a token id ([a-z0-9]{{6}}) nor a token")
        try:
            api.send("DELETE", f"{SECRETS}/{SECRET_PREFIX}{token_id}")
        except StatusError as e:
            if e.code == 404:
                fail(f"error: bootstrap token {token_id!r} not found")
            raise
        echo(f"bootstrap token {token_id!r} deleted")
