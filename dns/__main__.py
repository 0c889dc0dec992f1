"""python -m dns: the cluster DNS server (see dns/__init__.py)."""

from __future__ import annotations

import click

from dns.app import DEFAULT_HEALTH_ADDRESS, DNSOptions, run_dns


def _split(values: tuple[str, ...]) -> list[str]:
    return [v.strip() for value in values for v in value.split(",") if v.strip()]


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--kubeconfig", type=click.Path(dir_okay=False),
              help="Kubeconfig of the DNS identity (system:serviceaccount:kube-system:coredns).")
@click.option("--cluster-domain", default="cluster.local", show_default=True)
@click.option("--bind-address", multiple=True,
              help="Addresses to serve on (repeatable; may not exist yet). Default: the endpoint address, "
                   "else 127.0.0.1.")
@click.option("--port", type=int, default=53, show_default=True)
@click.option("--upstream", multiple=True,
              help="ip[:port] to forward names outside the cluster domain to. Default: none (NXDOMAIN).")
@click.option("--ttl", type=int, default=5, show_default=True)
@click.option("--endpoint-address", default="",
              help="Publish this address (or 'auto': the gateway of this node's podCIDR) as the kube-dns "
                   "Service's endpoint, and serve on it.")
@click.option("--node-name", default="", help="This node's name (for --endpoint-address).")
@click.option("--health-bind-address", default=DEFAULT_HEALTH_ADDRESS, show_default=True,
              help="host:port of /healthz, /readyz, /metrics.")
@click.option("-v", "--log-level", default="info", type=click.Choice(["debug", "info", "warning", "error"]))
def main(kubeconfig: str | None, cluster_domain: str, bind_address: tuple[str, ...], port: int,
         upstream: tuple[str, ...], ttl: int, endpoint_address: str, node_name: str,
         health_bind_address: str, log_level: str) -> None:
    """Cluster DNS: <svc>.<ns>.svc.<domain>, SRV, pod and PTR records from the API."""
    opts = DNSOptions(
        kubeconfig=kubeconfig, cluster_domain=cluster_domain, bind_addresses=_split(bind_address), port=port,
        upstreams=_split(upstream), ttl=ttl, endpoint_address=endpoint_address, node_name=node_name,
        health_bind_address=health_bind_address,
    )
    if endpoint_address and not node_name:
        raise click.UsageError("--endpoint-address needs --node-name")
    from client.daemon import run_daemon

    run_daemon("dns", lambda stop: run_dns(opts, stop), log_level)


if __name__ == "__main__":
    main()
