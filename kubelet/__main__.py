"""minik8s-kubelet: runs the pods bound to this node on containerd (the node agent)."""

from __future__ import annotations

import os

# The kubelet runs iptables and friends as subprocesses: gRPC's fork handlers only add noise.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

import asyncio
import contextlib
import logging
import socket
from pathlib import Path
from typing import Any

import click

from certs.csr import KUBELET_SERVING
from certs.kubeconfig import load_kubeconfig
from client import APIClient, load_config
from client.certificate import (
    CertificateManager,
    CertificateStore,
    kubelet_serving_usages,
    node_subject,
)
from client.daemon import HealthServer, new_registry, run_daemon
from kubelet import configfile
from kubelet.admission import SysctlAllowlist
from kubelet.auth import KubeletAuth
from kubelet.bootstrap import (
    CLIENT_PAIR,
    SERVER_PAIR,
    BootstrapError,
    client_pair,
    ensure_self_signed_serving_cert,
    load_client_cert,
    write_cert_kubeconfig,
)
from kubelet.config import (
    DEFAULT_EVICTION_HARD,
    KubeletConfig,
    check_container_log_rotation,
    parse_duration,
    parse_eviction_thresholds,
    parse_labels,
    parse_list,
    parse_resource_list,
    parse_size,
    parse_taints,
    validate_config,
)
from kubelet.cri import CRIClient
from kubelet.kubelet import Kubelet
from kubelet.nodestatus import KUBELET_VERSION
from kubelet.server import KubeletServer

log = logging.getLogger("kubelet")


class _Parsed(click.ParamType):
    def __init__(self, name: str, fn: Any) -> None:
        self.name = name
        self.fn = fn

    def convert(self, value, param, ctx):  # type: ignore[override]
        if not isinstance(value, str):
            return value
        try:
            return self.fn(value)
        except ValueError as e:
            self.fail(str(e), param, ctx)


DURATION = _Parsed("duration", parse_duration)
SIZE = _Parsed("size", parse_size)


def _bool(*names: str, default: bool, help: str):
    return click.option(*names, type=click.BOOL, default=default, is_flag=False, flag_value=True,
                        show_default=True, help=help)


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.option("--config", "config_file", type=click.Path(dir_okay=False), default=None,
              help="A KubeletConfiguration file (kubelet.config.k8s.io/v1beta1, YAML or JSON), e.g. kubeadm's "
              "/var/lib/kubelet/config.yaml. Flags given on the command line override it; relative paths in it "
              "are relative to its directory; fields this kubelet does not implement are named in a warning.")
@click.option("--config-dir", type=click.Path(file_okay=False), default=None,
              help="A drop-in directory: its *.conf files (KubeletConfigurations, in lexical order, "
              "subdirectories too) are merged over --config as JSON merge patches; flags still win.")
@click.option("--kubeconfig", type=click.Path(dir_okay=False), default=None,
              help="Kubeconfig with this node's credentials (kubelet-<node>.kubeconfig). With "
              "--bootstrap-kubeconfig it is written by the kubelet when missing or its certificate is unusable.")
@click.option("--bootstrap-kubeconfig", type=click.Path(dir_okay=False), default="",
              help="Kubeconfig with a bootstrap token: used to request this node's client certificate "
              "(a CertificateSigningRequest) when --kubeconfig is missing or its certificate is expired.")
@click.option("--cert-dir", default="", help="Where the bootstrapped/rotated client certificate "
              "(kubelet-client-current.pem) and a self-signed serving certificate go (default: ROOT_DIR/pki).")
@click.option("--rotate-certificates", type=click.BOOL, default=False, is_flag=False, flag_value=True,
              show_default=True, help="Renew the client certificate through a CertificateSigningRequest when "
              "70-90% of its lifetime has passed (upstream's rotateCertificates, off by default as there).")
@click.option("--rotate-server-certificates", type=click.BOOL, default=False, is_flag=False, flag_value=True,
              show_default=True, help="Without --tls-cert-file: request the serving certificate from the cluster "
              "(a kubernetes.io/kubelet-serving CertificateSigningRequest for the node's name and address) and "
              "renew it the same way, instead of a self-signed one (upstream's serverTLSBootstrap).")
@click.option("--hostname-override", "node_name", default=None, help="The node's name (default: the host name).")
@click.option("--node-ip", default="", help="The node's address (InternalIP, pods' hostIP). Default: the first "
              "non-loopback IPv4 address.")
@click.option("--root-dir", default="/var/lib/kubelet", show_default=True, help="Where pod volumes and state live.")
@click.option("--pod-logs-dir", default="", help="Where container logs are written (default: ROOT_DIR/pod-logs).")
@click.option("--container-runtime-endpoint", default="unix:///run/containerd/containerd.sock", show_default=True,
              help="The CRI socket (the cluster's own containerd).")
@click.option("--runtime-request-timeout", type=DURATION, default="2m", show_default=True)
@click.option("--pod-infra-container-image", default="localhost/minik8s/pause:3.9", show_default=True,
              help="The sandbox image (kept by image garbage collection).")
@click.option("--address", default="0.0.0.0", show_default=True, help="Address of the HTTPS API.")
@click.option("--port", type=int, default=10250, show_default=True, help="Port of the HTTPS API (0: none).")
@click.option("--tls-cert-file", default="", help="Serving certificate of the HTTPS API (default: a "
              "self-signed CERT_DIR/kubelet.crt, made on first start).")
@click.option("--tls-private-key-file", default="", help="Serving key of the HTTPS API (default: CERT_DIR/kubelet.key).")
@click.option("--client-ca-file", default="", help="CA whose client certificates the HTTPS API accepts.")
@_bool("--authentication-token-webhook", default=True, help="Authenticate bearer tokens with TokenReview.")
@click.option("--authorization-mode", type=click.Choice(["Webhook", "AlwaysAllow"]), default="Webhook",
              show_default=True, help="Authorize API requests with SubjectAccessReview (Webhook) or not at all.")
@_bool("--anonymous-auth", default=False, help="Treat unauthenticated requests as system:anonymous.")
@click.option("--healthz-bind-address", default="127.0.0.1", show_default=True)
@click.option("--healthz-port", type=int, default=10248, show_default=True, help="Plain-HTTP /healthz /readyz /metrics (0: none).")
@click.option("--kube-api-qps", type=float, default=50.0, show_default=True)
@click.option("--kube-api-burst", type=int, default=100, show_default=True)
@click.option("--pod-cidr", default="", help="The pod CIDR when node.spec.podCIDR is not set (upstream's static CIDR).")
@click.option("--cluster-cidr", default="10.244.0.0/16", show_default=True,
              help="All pods' CIDR (the uplink guard drops traffic to it leaving the node).")
@click.option("--cni-conf-dir", default="", help="Where the CNI config goes (containerd's conf_dir).")
@click.option("--cni-bin-dir", default="/usr/lib/cni", show_default=True)
@click.option("--cni-bridge", default="mk8s0", show_default=True, help="The pods' bridge device.")
@click.option("--cni-network-name", default="minik8s", show_default=True)
@_bool("--manage-iptables", default=True, help="Install the pod-CIDR FORWARD accept and the uplink guard.")
@_bool("--guard-pod-egress", default=True, help="Also drop pod-sourced traffic leaving via the uplink.")
@click.option("--cluster-dns", default="", help="Cluster DNS server IPs (comma-separated), e.g. 10.96.0.10.")
@click.option("--cluster-domain", default="cluster.local", show_default=True)
@click.option("--resolv-conf", default="/etc/resolv.conf", show_default=True,
              help="The resolv.conf pods with dnsPolicy Default get.")
@click.option("--cgroup-root", default="/", show_default=True, help="The cgroup the kubepods hierarchy goes under.")
@_bool("--cgroups-per-qos", default=True, help="Create QoS and pod-level cgroups.")
@click.option("--max-pods", type=int, default=110, show_default=True)
@click.option("--node-labels", default="", help="Labels to register the node with (k=v,...).")
@click.option("--register-with-taints", default="", help="Taints to register the node with (k=v:Effect,...).")
@_bool("--register-node", default=True, help="Register the node with the apiserver.")
@click.option("--kube-reserved", default="", help="Resources reserved for Kubernetes daemons (cpu=100m,memory=100Mi).")
@click.option("--system-reserved", default="", help="Resources reserved for the system.")
@click.option("--node-status-update-frequency", type=DURATION, default="10s", show_default=True)
@click.option("--node-status-report-frequency", type=DURATION, default="5m", show_default=True)
@click.option("--node-lease-duration-seconds", type=int, default=40, show_default=True)
@click.option("--sync-frequency", type=DURATION, default="1m", show_default=True,
              help="Max time between syncs of a pod (config/secret volume refresh).")
@click.option("--pod-manifest-path", default="", help="Directory of static pod manifests.")
@click.option("--file-check-frequency", type=DURATION, default="20s", show_default=True)
@_bool("--serialize-image-pulls", default=True, help="Pull one image at a time.")
@click.option("--max-parallel-pod-starts", type=int, default=0, show_default=True,
              help="New pods whose sandbox and containers are being started at once (0: twice the CPUs).")
@click.option("--allowed-unsafe-sysctls", default="",
              help="Unsafe sysctls (or patterns ending in *, e.g. 'kernel.msg*,net.core.somaxconn') pods may set "
                   "besides the safe ones; only namespaced sysctls (kernel.shm*, kernel.msg*, kernel.sem, "
                   "fs.mqueue.*, net.*). Pods asking for others are rejected with SysctlForbidden.")
@click.option("--eviction-hard", default=DEFAULT_EVICTION_HARD, show_default=True,
              help="Hard eviction thresholds (signal<quantity|percent, comma-separated).")
@click.option("--eviction-pressure-transition-period", type=DURATION, default="5m", show_default=True)
@click.option("--image-gc-high-threshold", type=int, default=85, show_default=True)
@click.option("--image-gc-low-threshold", type=int, default=80, show_default=True)
@click.option("--container-log-max-size", type=SIZE, default="10Mi", show_default=True,
              help="Rotate a running container's log file once it is this big (a quantity; negative: never).")
@click.option("--container-log-max-files", type=int, default=5, show_default=True,
              help="Log files kept per container, the live one included (at least 2); older rotated ones "
              "are gzip-compressed, the oldest removed.")
@click.option("--container-log-max-workers", type=int, default=1, show_default=True,
              help="Containers whose logs are checked and rotated at once (at least 1).")
@click.option("--container-log-monitor-interval", type=DURATION, default="10s", show_default=True,
              help="How often the container logs are checked for rotation (at least 3s).")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="info",
              show_default=True)
def main(log_level: str, config_file: str | None, config_dir: str | None, **kw: Any) -> None:
    """The node agent: registers the Node, runs the pods bound to it on containerd (CRI), reports their
    status, probes them, and serves logs, exec, attach and port-forward over HTTPS."""
    warnings: list[str] = []
    if config_file or config_dir:
        ctx = click.get_current_context()
        kw, warnings = apply_config_files(kw, config_file, config_dir, _from_command_line(ctx, kw))
    try:
        cfg = config_from_flags(kw)
    except ValueError as e:
        if config_file or config_dir:  # the value may come from the file: not a usage error
            raise click.ClickException(f"failed to validate kubelet configuration: {e}") from None
        raise click.UsageError(str(e)) from None
    if cfg.bootstrap_kubeconfig and not cfg.kubeconfig:
        raise click.UsageError("--bootstrap-kubeconfig needs --kubeconfig (where the bootstrapped credentials go)")
    errors = validate_config(cfg)
    if errors:
        raise click.ClickException("failed to validate kubelet configuration: " + "; ".join(errors))

    async def start(stop: asyncio.Event) -> None:
        for warning in warnings:
            log.warning("%s", warning)
        await run(cfg, stop)

    run_daemon("kubelet", start, log_level)


def _from_command_line(ctx: click.Context, kw: dict[str, Any]) -> set[str]:
    """The parameters given on the command line (they override the config file, as upstream)."""
    return {name for name in kw if ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE}


def apply_config_files(kw: dict[str, Any], config_file: str | None, config_dir: str | None,
                       command_line: set[str]) -> tuple[dict[str, Any], list[str]]:
    """The flag values with the config file and drop-ins applied under the command line's flags:
    defaults < --config < --config-dir drop-ins < flags on the command line. ClickException (exit 1,
    one line) when the files are unusable."""
    try:
        loaded = configfile.load(config_file, config_dir)
    except configfile.ConfigFileError as e:
        given = ", ".join(f"{flag} {value}" for flag, value in (("--config", config_file),
                                                                ("--config-dir", config_dir)) if value)
        raise click.ClickException(f"failed to load the kubelet configuration ({given}): {e}") from None
    out = dict(kw)
    for name, value in loaded.values.items():
        if name not in command_line:
            out[name] = value
    return out, loaded.warnings


def _quiet_libraries() -> None:
    for name in ("grpc", "grpc._cython.cygrpc", "aiohttp.access"):
        logging.getLogger(name).setLevel(logging.WARNING)


def config_from_flags(kw: dict[str, Any]) -> KubeletConfig:
    cfg = KubeletConfig(
        kubeconfig=kw["kubeconfig"] or "",
        bootstrap_kubeconfig=kw["bootstrap_kubeconfig"] or "",
        cert_dir=kw["cert_dir"] or "",
        rotate_certificates=kw["rotate_certificates"],
        rotate_server_certificates=kw["rotate_server_certificates"],
        node_name=(kw["node_name"] or socket.gethostname()).lower(),
        node_ip=kw["node_ip"],
        root_dir=kw["root_dir"],
        pod_logs_dir=kw["pod_logs_dir"],
        container_runtime_endpoint=kw["container_runtime_endpoint"],
        runtime_request_timeout=kw["runtime_request_timeout"],
        pod_sandbox_image=kw["pod_infra_container_image"],
        address=kw["address"],
        port=kw["port"],
        tls_cert_file=kw["tls_cert_file"],
        tls_private_key_file=kw["tls_private_key_file"],
        client_ca_file=kw["client_ca_file"],
        authentication_token_webhook=kw["authentication_token_webhook"],
        authorization_mode=kw["authorization_mode"],
        anonymous_auth=kw["anonymous_auth"],
        healthz_bind_address=kw["healthz_bind_address"],
        healthz_port=kw["healthz_port"],
        kube_api_qps=kw["kube_api_qps"],
        kube_api_burst=kw["kube_api_burst"],
        pod_cidr=kw["pod_cidr"],
        cluster_cidr=kw["cluster_cidr"],
        cni_conf_dir=kw["cni_conf_dir"],
        cni_bin_dir=kw["cni_bin_dir"],
        cni_bridge=kw["cni_bridge"],
        cni_network_name=kw["cni_network_name"],
        manage_iptables=kw["manage_iptables"],
        guard_pod_egress=kw["guard_pod_egress"],
        cluster_dns=parse_list(kw["cluster_dns"]),
        cluster_domain=kw["cluster_domain"],
        resolv_conf=kw["resolv_conf"],
        cgroup_root=kw["cgroup_root"],
        cgroups_per_qos=kw["cgroups_per_qos"],
        max_pods=kw["max_pods"],
        node_labels=parse_labels(kw["node_labels"]),
        register_with_taints=parse_taints(kw["register_with_taints"]),
        register_node=kw["register_node"],
        kube_reserved=parse_resource_list(kw["kube_reserved"]),
        system_reserved=parse_resource_list(kw["system_reserved"]),
        node_status_update_frequency=kw["node_status_update_frequency"],
        node_status_report_frequency=kw["node_status_report_frequency"],
        node_lease_duration_seconds=kw["node_lease_duration_seconds"],
        sync_frequency=kw["sync_frequency"],
        pod_manifest_path=kw["pod_manifest_path"],
        file_check_frequency=kw["file_check_frequency"],
        serialize_image_pulls=kw["serialize_image_pulls"],
        max_parallel_pod_starts=kw["max_parallel_pod_starts"],
        allowed_unsafe_sysctls=unsafe_sysctls(kw["allowed_unsafe_sysctls"]),
        eviction_hard=parse_eviction_thresholds(kw["eviction_hard"]),
        eviction_pressure_transition_period=kw["eviction_pressure_transition_period"],
        image_gc_high_threshold_percent=kw["image_gc_high_threshold"],
        image_gc_low_threshold_percent=kw["image_gc_low_threshold"],
        container_log_max_size=kw["container_log_max_size"],
        container_log_max_files=kw["container_log_max_files"],
        container_log_max_workers=kw["container_log_max_workers"],
        container_log_monitor_interval=kw["container_log_monitor_interval"],
    )
    check_container_log_rotation(cfg)
    return cfg


def unsafe_sysctls(text: str) -> list[str]:
    """--allowed-unsafe-sysctls, checked as the kubelet will use it (ValueError: not namespaced)."""
    names = parse_list(text)
    SysctlAllowlist(names)
    return names


def register_metrics(registry: Any, kubelet: Kubelet) -> None:
    registry.gauge("kubelet_running_pods", "Pods with a running sandbox.",
                   fn=lambda: sum(1 for p in kubelet.pleg.pods.values() if any(s.state == 0 for s in p.sandboxes)))
    registry.gauge("kubelet_running_containers", "Running containers.",
                   fn=lambda: sum(1 for p in kubelet.pleg.pods.values() for c in p.containers if c.state == 1))
    registry.gauge("kubelet_pod_workers", "Pod workers.", fn=lambda: len(kubelet.pod_workers.workers))
    registry.gauge("kubelet_pod_syncs_total", "Pod syncs done.", fn=lambda: kubelet.pod_workers.syncs)
    registry.gauge("kubelet_pleg_relists_total", "PLEG relists.", fn=lambda: kubelet.pleg.relists)
    registry.gauge("kubelet_pod_status_writes_total", "Pod status writes.", fn=lambda: kubelet.status.writes)
    registry.gauge("kubelet_node_status_updates_total", "Node status updates.", fn=lambda: kubelet.node.status_updates)
    registry.gauge("kubelet_probes_total", "Probes run.", fn=lambda: kubelet.probes.probes_run)
    registry.gauge("kubelet_evictions_total", "Pods evicted.", fn=lambda: kubelet.eviction.evictions)
    registry.gauge("kubelet_container_log_rotations_total", "Container log files rotated.",
                   fn=lambda: kubelet.log_rotation.rotations)


def client_certificate_manager(cfg: KubeletConfig, api: APIClient) -> CertificateManager | None:
    """The rotation of the kubelet's client certificate (None: rotation off, or no certificate).

    A certificate given in the kubeconfig itself (not from the store) is rotated into the store
    and the kubeconfig rewritten to point there, as upstream treats it."""
    if not cfg.rotate_certificates or not cfg.kubeconfig:
        return None
    pair = client_pair(Path(cfg.kubeconfig))
    if pair is None:
        return None
    store = CertificateStore(cfg.certs_dir, CLIENT_PAIR)
    kubeconfig = Path(cfg.kubeconfig)
    cn, orgs = node_subject(cfg.node_name)

    async def rotated(cert_pem: bytes, key_pem: bytes) -> None:
        info = load_kubeconfig(kubeconfig)
        if info.client_cert_pem != store.current_path.read_bytes():
            write_cert_kubeconfig(kubeconfig, info.server, info.ca_pem, store.current_path,
                                  info.insecure_skip_tls_verify, info.tls_server_name)
        api.use_client_certificate(cert_pem, key_pem)

    try:
        manager = CertificateManager(api, store, cn, orgs, on_rotated=rotated, initial=pair)
    except (ValueError, OSError) as e:
        log.warning("client certificate rotation is off: %s", e)
        return None
    if manager.cert_pem != pair[0]:  # the store's newer pair, not the kubeconfig's: present it
        api.use_client_certificate(manager.cert_pem, manager.key_pem)
    return manager


async def _after_registration(kubelet: Kubelet, work: Any) -> None:
    """Run `work` once the Node is registered: the approver checks the request against it."""
    try:
        await kubelet.node.registered.wait()
    except asyncio.CancelledError:
        work.close()
        raise
    await work


def serving_certificate_manager(cfg: KubeletConfig, api: APIClient, node_ip: str,
                                server: KubeletServer) -> CertificateManager:
    """The serving certificate from the cluster (upstream's serverTLSBootstrap): requested at once
    when the store has none (the server starts with it), renewed like the client certificate (the
    server takes each new one for new connections)."""
    store = CertificateStore(cfg.certs_dir, SERVER_PAIR)
    cn, orgs = node_subject(cfg.node_name)

    async def rotated(_cert_pem: bytes, _key_pem: bytes) -> None:
        if server.started:
            server.reload_certificate(str(store.current_path))
        else:
            await server.start(cfg.address, cfg.port, str(store.current_path), None, cfg.client_ca_file)

    return CertificateManager(
        api, store, cn, orgs, signer_name=KUBELET_SERVING, usages=kubelet_serving_usages, on_rotated=rotated,
        # the names the Node reports (its Hostname and InternalIP addresses), as upstream
        dns_names=[cfg.node_name], ip_addresses=[node_ip], request_at_once=True)


async def run(cfg: KubeletConfig, stop: asyncio.Event) -> None:
    _quiet_libraries()
    user_agent = f"kubelet/{KUBELET_VERSION} ({cfg.node_name})"
    if cfg.bootstrap_kubeconfig:
        try:
            await load_client_cert(Path(cfg.kubeconfig), Path(cfg.bootstrap_kubeconfig), cfg.certs_dir,
                                   cfg.node_name, user_agent=user_agent)
        except BootstrapError as e:
            log.error("%s", e)
            raise SystemExit(1) from None
    bootstrap_serving = cfg.rotate_server_certificates and not (cfg.tls_cert_file and cfg.tls_private_key_file)
    if cfg.port and not (cfg.tls_cert_file and cfg.tls_private_key_file) and not bootstrap_serving:
        addresses = [a for a in (cfg.node_ip, "127.0.0.1") if a]
        crt, key = ensure_self_signed_serving_cert(cfg.certs_dir, cfg.node_name, addresses)
        cfg.tls_cert_file, cfg.tls_private_key_file = str(crt), str(key)
    client_cfg = load_config(cfg.kubeconfig or None, qps=cfg.kube_api_qps, burst=cfg.kube_api_burst,
                             user_agent=user_agent)
    async with APIClient(client_cfg) as api, CRIClient(cfg.container_runtime_endpoint,
                                                        timeout=cfg.runtime_request_timeout) as cri:
        kubelet = Kubelet(cfg, api, cri)
        certificates = client_certificate_manager(cfg, api)
        rotation = asyncio.create_task(certificates.run(stop)) if certificates is not None else None
        registry = new_registry()
        register_metrics(registry, kubelet)
        health = None
        if cfg.healthz_port:
            health = HealthServer(cfg.healthz_port, registry, cfg.healthz_bind_address)
            health.add_liveness("pleg", lambda: kubelet.pleg.healthy() or not kubelet.pleg.last_relist)
            health.add_readiness("sources", kubelet.ready)
            await health.start()
        server = None
        serving_rotation = None
        if cfg.port:
            auth = KubeletAuth(api, cfg.node_name, anonymous=cfg.anonymous_auth,
                               webhook_authn=cfg.authentication_token_webhook,
                               authorization_mode=cfg.authorization_mode)
            server = KubeletServer(kubelet, auth, registry)
            if bootstrap_serving:
                serving = serving_certificate_manager(cfg, api, kubelet.node_ip, server)
                if serving.cert is not None:  # from an earlier run; else it starts with the first one
                    await server.start(cfg.address, cfg.port, str(serving.store.current_path), None,
                                       cfg.client_ca_file)
                serving_rotation = asyncio.create_task(_after_registration(kubelet, serving.run(stop)))
            else:
                await server.start(cfg.address, cfg.port, cfg.tls_cert_file, cfg.tls_private_key_file,
                                   cfg.client_ca_file)
        try:
            await kubelet.run(stop)
        finally:
            for task in (rotation, serving_rotation):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            if server is not None:
                await server.stop()
            if health is not None:
                await health.stop()


if __name__ == "__main__":
    main()
