"""minik8s-controller-manager: the built-in controllers, leader-elected (kube-controller-manager)."""

from __future__ import annotations

import asyncio
import logging
import socket
import uuid

import click

from client import APIClient, SharedInformerFactory, load_config
from client.daemon import HealthServer, new_registry, run_daemon, run_with_leader_election
from controller_manager.base import ControllerContext, ControllerManagerOptions
from controller_manager.clientbuilder import ClientBuilder, tls_without_client_cert
from controller_manager.manager import ControllerSet, enabled_controllers, load_controllers
from controller_manager.options import DURATION, bool_flag

log = logging.getLogger("controller_manager")

COMPONENT = "kube-controller-manager"
VERBOSITY = {0: "warning", 1: "info", 2: "info", 3: "info", 4: "debug"}


def _concurrency(flag: str, default: int, what: str):
    return click.option(flag, type=int, default=default, show_default=True,
                        help=f"How many {what} are synced concurrently (workers).")


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.option("--kubeconfig", type=click.Path(dir_okay=False), default=None,
              help="Kubeconfig with the controller-manager's credentials (default: in-cluster / $KUBECONFIG).")
@click.option("--kube-api-qps", type=float, default=20.0, show_default=True,
              help="Client-side QPS limit towards the apiserver (0: unlimited).")
@click.option("--kube-api-burst", type=int, default=30, show_default=True, help="Burst for --kube-api-qps.")
@click.option("--controllers", default="*", show_default=True,
              help="Controllers to run: '*' enables all on by default, 'foo' enables foo, '-foo' disables foo "
                   "(comma-separated).")
@bool_flag("--leader-elect", default=True, help="Run only while holding the Lease (one active instance).")
@click.option("--leader-elect-lease-duration", type=DURATION, default="15s", show_default=True)
@click.option("--leader-elect-renew-deadline", type=DURATION, default="10s", show_default=True)
@click.option("--leader-elect-retry-period", type=DURATION, default="2s", show_default=True)
@click.option("--leader-elect-resource-name", default=COMPONENT, show_default=True)
@click.option("--leader-elect-resource-namespace", default="kube-system", show_default=True)
@click.option("--bind-address", default="127.0.0.1", show_default=True,
              help="Address of the /healthz, /readyz and /metrics server.")
@click.option("--secure-port", "--port", "port", type=int, default=10257, show_default=True,
              help="Port of the /healthz, /readyz and /metrics server (0: none).")
# workload controllers
@_concurrency("--concurrent-replicaset-syncs", 5, "replica sets")
@_concurrency("--concurrent-rc-syncs", 5, "replication controllers")
@_concurrency("--concurrent-deployment-syncs", 5, "deployments")
@_concurrency("--concurrent-daemonset-syncs", 2, "daemon sets")
@_concurrency("--concurrent-statefulset-syncs", 5, "stateful sets")
@_concurrency("--concurrent-job-syncs", 5, "jobs")
@_concurrency("--concurrent-cron-job-syncs", 5, "cron jobs")
@_concurrency("--concurrent-ttl-after-finished-syncs", 5, "finished jobs (TTL cleanup)")
# infrastructure controllers
@_concurrency("--concurrent-endpoint-syncs", 5, "services (Endpoints)")
@_concurrency("--concurrent-service-endpoint-syncs", 5, "services (EndpointSlices)")
@_concurrency("--concurrent-namespace-syncs", 10, "namespaces")
@_concurrency("--concurrent-serviceaccount-token-syncs", 5, "service account tokens")
@_concurrency("--concurrent-gc-syncs", 20, "garbage collector objects")
@bool_flag("--enable-garbage-collector", default=True, help="Run the garbage collector.")
@click.option("--endpoint-updates-batch-period", type=DURATION, default="0s", show_default=True)
@click.option("--endpointslice-updates-batch-period", type=DURATION, default="0s", show_default=True)
@click.option("--max-endpoints-per-slice", type=int, default=100, show_default=True)
@click.option("--namespace-sync-period", type=DURATION, default="5m0s", show_default=True)
@click.option("--terminated-pod-gc-threshold", type=int, default=12500, show_default=True,
              help="Terminated pods kept before the pod GC deletes the oldest (<=0: never).")
@click.option("--node-monitor-period", type=DURATION, default="5s", show_default=True)
@click.option("--node-monitor-grace-period", type=DURATION, default="40s", show_default=True,
              help="How long a node may go without a heartbeat before it is marked NotReady/Unknown.")
@click.option("--node-startup-grace-period", type=DURATION, default="1m0s", show_default=True)
@click.option("--pod-eviction-timeout", type=DURATION, default="5m0s", show_default=True)
@click.option("--node-eviction-rate", type=float, default=0.1, show_default=True)
@click.option("--secondary-node-eviction-rate", type=float, default=0.01, show_default=True)
@click.option("--large-cluster-size-threshold", type=int, default=50, show_default=True)
@click.option("--unhealthy-zone-threshold", type=float, default=0.55, show_default=True)
@bool_flag("--allocate-node-cidrs", default=False, help="Give every node a podCIDR out of --cluster-cidr.")
@click.option("--cluster-cidr", default="", help="CIDR range of the pods.")
@click.option("--node-cidr-mask-size", type=int, default=24, show_default=True)
@click.option("--service-cluster-ip-range", default="", help="CIDR range of the services.")
@click.option("--service-account-private-key-file", default="", help="Key that signs service account tokens.")
@click.option("--root-ca-file", default="", help="CA put into service account token secrets / kube-root-ca.crt.")
@click.option("--cluster-signing-cert-file", default="",
              help="PEM CA certificate that issues cluster-scoped certificates (every kubernetes.io signer). "
                   "If specified, no more specific --cluster-signing-* flag may be specified.")
@click.option("--cluster-signing-key-file", default="", help="PEM private key of --cluster-signing-cert-file.")
@click.option("--cluster-signing-duration", type=DURATION, default="8760h0m0s", show_default=True,
              help="The max length of duration signed certificates will be given. Individual CSRs may request "
                   "shorter certs by setting spec.expirationSeconds.")
@click.option("--cluster-signing-kubelet-serving-cert-file", default="",
              help="CA certificate for the kubernetes.io/kubelet-serving signer.")
@click.option("--cluster-signing-kubelet-serving-key-file", default="", help="Its private key.")
@click.option("--cluster-signing-kubelet-client-cert-file", default="",
              help="CA certificate for the kubernetes.io/kube-apiserver-client-kubelet signer.")
@click.option("--cluster-signing-kubelet-client-key-file", default="", help="Its private key.")
@click.option("--cluster-signing-kube-apiserver-client-cert-file", default="",
              help="CA certificate for the kubernetes.io/kube-apiserver-client signer.")
@click.option("--cluster-signing-kube-apiserver-client-key-file", default="", help="Its private key.")
@click.option("--cluster-signing-legacy-unknown-cert-file", default="",
              help="CA certificate for the kubernetes.io/legacy-unknown signer.")
@click.option("--cluster-signing-legacy-unknown-key-file", default="", help="Its private key.")
@_concurrency("--concurrent-horizontal-pod-autoscaler-syncs", 5, "horizontal pod autoscalers")
@click.option("--horizontal-pod-autoscaler-sync-period", type=DURATION, default="15s", show_default=True,
              help="How often every horizontal pod autoscaler is reconciled.")
@click.option("--horizontal-pod-autoscaler-tolerance", type=float, default=0.1, show_default=True,
              help="The minimum change (from 1.0) of the desired-to-actual metrics ratio that makes the "
                   "autoscaler act.")
@click.option("--horizontal-pod-autoscaler-downscale-stabilization", type=DURATION, default="5m0s",
              show_default=True, help="The window of past recommendations whose highest a scale-down may not go below.")
@click.option("--horizontal-pod-autoscaler-cpu-initialization-period", type=DURATION, default="5m0s",
              show_default=True, help="After a pod starts, how long its CPU samples may be skipped (until one full "
                                      "metric window follows its readiness).")
@click.option("--horizontal-pod-autoscaler-initial-readiness-delay", type=DURATION, default="30s", show_default=True,
              help="After a pod starts, how long readiness changes count as its initial readiness.")
@bool_flag("--use-service-account-credentials", default=False,
           help="Each controller acts as its own kube-system ServiceAccount (tokens via TokenRequest).")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default=None)
@click.option("-v", "--v", "verbosity", type=int, default=2, show_default=True, help="klog-style verbosity.")
def main(kubeconfig, kube_api_qps, kube_api_burst, controllers, leader_elect, leader_elect_lease_duration,
         leader_elect_renew_deadline, leader_elect_retry_period, leader_elect_resource_name,
         leader_elect_resource_namespace, bind_address, port, log_level, verbosity, **flags) -> None:
    """Run the built-in controllers (replicaset, deployment, daemonset, statefulset, job, cronjob,
    endpoints, endpointslice, namespace, serviceaccount, node lifecycle, garbage collector, ...)."""
    registry_of_controllers = load_controllers()
    try:
        names = enabled_controllers([c for c in controllers.split(",")], registry_of_controllers)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--controllers") from None
    options = ControllerManagerOptions(**flags)
    from controller_manager.certificates_signing import signers_from_options

    try:  # refused at start, not when the leader builds the controller (upstream's Validate)
        signers_from_options(options)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--cluster-signing-*") from None
    level = log_level or VERBOSITY.get(min(verbosity, 4), "info")
    identity = f"{socket.gethostname()}_{uuid.uuid4()}"

    async def run(stop: asyncio.Event) -> None:
        config = load_config(kubeconfig, qps=kube_api_qps, burst=kube_api_burst,
                             user_agent=f"{COMPONENT}/minik8s")
        registry = new_registry()
        health = HealthServer(port, registry, bind_address) if port else None
        leading: list[ControllerSet] = []
        async with APIClient(config) as client:

            async def work(leading_stop: asyncio.Event) -> None:
                clients = ClientBuilder(client, options.use_service_account_credentials,
                                        tls_without_client_cert(kubeconfig))
                ctx = ControllerContext(client, SharedInformerFactory(client), options, registry, clients=clients)
                cs = ControllerSet(ctx, names)
                leading.append(cs)
                await cs.run(leading_stop)

            if health is not None:
                health.add_liveness("ping", lambda: True)
                # a standby is ready; a leader once its controllers' caches have synced
                health.add_readiness("informers-synced", lambda: not leading or leading[-1].synced)
                await health.start()
            try:
                if leader_elect:
                    await run_with_leader_election(
                        client, leader_elect_resource_name, identity, work, stop,
                        namespace=leader_elect_resource_namespace,
                        lease_duration=leader_elect_lease_duration,
                        renew_deadline=leader_elect_renew_deadline,
                        retry_period=leader_elect_retry_period,
                    )
                else:
                    await work(stop)
            finally:
                if health is not None:
                    await health.stop()

    run_daemon("controller-manager", run, level)


if __name__ == "__main__":
    main()
