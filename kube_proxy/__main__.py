"""minik8s-kube-proxy: the network proxy of one node (flags as upstream's kube-proxy)."""

from __future__ import annotations

import asyncio
import sys

import click

from kube_proxy.app import (
    DEFAULT_HEALTHZ_PORT,
    PROXY_MODES,
    ConfigError,
    ProxyOptions,
    cleanup,
    ensure_mode_available,
    run_proxy,
)
from kube_proxy.commands import IPTABLES_BACKENDS
from kube_proxy.ipvs import SCHEDULERS


def _split_list(values: tuple[str, ...]) -> list[str]:
    """Repeated and/or comma-separated flag values, as upstream's string slices."""
    return [v.strip() for value in values for v in value.split(",") if v.strip()]


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--kubeconfig", type=click.Path(dir_okay=False), help="Path to a kubeconfig (its own identity: system:kube-proxy).")
@click.option("--proxy-mode", type=click.Choice(PROXY_MODES), default="iptables", show_default=True,
              help="iptables (default), nftables (fast full syncs for large clusters) or ipvs (needs kernel IPVS).")
@click.option("--hostname-override", default="", help="The node name to use instead of the host name.")
@click.option("--cluster-cidr", default="10.244.0.0/16", show_default=True,
              help="The pod CIDR: traffic to service IPs from outside it is masqueraded.")
@click.option("--service-cluster-ip-range", default="10.96.0.0/16", show_default=True,
              help="The service CIDR, routed to a local device and guarded so it never leaves via the uplink "
                   "('' disables route and guard).")
@click.option("--nodeport-addresses", multiple=True,
              help="CIDRs (or 'primary') of local addresses that accept NodePorts; default: all local addresses.")
@click.option("--masquerade-all", is_flag=True, help="SNAT all traffic sent via service cluster IPs.")
@click.option("--iptables-masquerade-bit", "masquerade_bit", type=int, default=14, show_default=True,
              help="The fwmark bit marking packets to SNAT.")
@click.option("--ipvs-scheduler", type=click.Choice(SCHEDULERS), default="rr", show_default=True,
              help="The IPVS scheduler (ipvs mode).")
@click.option("--iptables-backend", type=click.Choice(sorted(IPTABLES_BACKENDS)), default="system", show_default=True,
              help="Which iptables the iptables and ipvs modes (and every mode's uplink guard) drive: 'system' (the host's `iptables`), 'legacy' "
                   "(iptables-legacy: a full sync of 10k services takes seconds instead of minutes with nf_tables; "
                   "use it only where nothing else on the host writes nf_tables filter rules that drop forwarded "
                   "traffic, e.g. Docker) or 'nft'.")
@click.option("--min-sync-period", type=float, default=1.0, show_default=True,
              help="Seconds: the minimum interval between rule syncs.")
@click.option("--sync-period", type=float, default=30.0, show_default=True,
              help="Seconds: the maximum interval between checks that the rules are intact.")
@click.option("--healthz-bind-address", default=f"127.0.0.1:{DEFAULT_HEALTHZ_PORT}", show_default=True,
              help="host:port of /healthz, /readyz and /metrics.")
@click.option("--metrics-bind-address", default="", help="host:port of a second /metrics server (optional).")
@click.option("--kube-api-qps", type=float, default=5.0, show_default=True)
@click.option("--kube-api-burst", type=int, default=10, show_default=True)
@click.option("--lb-pool", multiple=True,
              help="The LoadBalancer address pool(s): routed locally and guarded like the service CIDR.")
@click.option("--service-cidr-device", default="kube-svc0", show_default=True,
              help="The local (ifb) device the service CIDR is routed to.")
@click.option("--route-pod-cidrs", is_flag=True,
              help="Route every other node's podCIDR via its InternalIP when that is on a directly connected "
                   "network (flannel's host-gw), so that pods on different nodes reach each other without NAT.")
@click.option("--cleanup", "do_cleanup", is_flag=True, help="Remove every rule any proxy mode created, then exit.")
@click.option("-v", "--log-level", default="info", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"]))
def main(kubeconfig: str | None, proxy_mode: str, hostname_override: str, cluster_cidr: str,
         service_cluster_ip_range: str, nodeport_addresses: tuple[str, ...], masquerade_all: bool,
         masquerade_bit: int, ipvs_scheduler: str, iptables_backend: str, min_sync_period: float, sync_period: float,
         healthz_bind_address: str, metrics_bind_address: str, kube_api_qps: float, kube_api_burst: int,
         lb_pool: tuple[str, ...], service_cidr_device: str, route_pod_cidrs: bool, do_cleanup: bool, log_level: str) -> None:
    """kube-proxy: programs this node's iptables (or nftables/IPVS) rules for Services."""
    opts = ProxyOptions(
        kubeconfig=kubeconfig,
        proxy_mode=proxy_mode,
        hostname_override=hostname_override,
        cluster_cidr=cluster_cidr,
        service_cluster_ip_range=service_cluster_ip_range,
        nodeport_addresses=_split_list(nodeport_addresses),
        masquerade_all=masquerade_all,
        masquerade_bit=masquerade_bit,
        ipvs_scheduler=ipvs_scheduler,
        iptables_backend=iptables_backend,
        min_sync_period=min_sync_period,
        sync_period=sync_period,
        healthz_bind_address=healthz_bind_address,
        metrics_bind_address=metrics_bind_address,
        kube_api_qps=kube_api_qps,
        kube_api_burst=kube_api_burst,
        lb_pool=_split_list(lb_pool),
        service_cidr_device=service_cidr_device,
        route_pod_cidrs=route_pod_cidrs,
    )
    try:
        opts.validate()
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    if do_cleanup:
        errors = asyncio.run(cleanup(opts))
        for error in errors:
            click.echo(f"kube-proxy --cleanup: {error}", err=True)
        sys.exit(1 if errors else 0)
    try:
        # Before anything else: a mode this kernel cannot run is a clear, immediate exit.
        asyncio.run(ensure_mode_available(opts))
    except SystemExit as exc:
        click.echo(str(exc.code), err=True)
        sys.exit(1)
    from client.daemon import run_daemon

    run_daemon("kube-proxy", lambda stop: run_proxy(opts, stop), log_level)


if __name__ == "__main__":
    main()
