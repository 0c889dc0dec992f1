"""`minik8s-scheduler` / `python -m scheduler`: assign pending pods to nodes."""

from __future__ import annotations

import asyncio
import re
import sys

import click

from client.daemon import run_daemon
from scheduler.app import Options, run
from scheduler.scheduler import DEFAULT_SCHEDULER_NAME, SchedulerConfig


def parse_duration(value: str) -> float:
    """`15`, `15s`, `500ms`, `2m`, `1h30m` → seconds (Go-style, as upstream's flags take)."""
    v = value.strip()
    try:
        return float(v)
    except ValueError:
        pass
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", v)
    if not parts or "".join(n + u for n, u in parts) != v:
        raise click.BadParameter(f"invalid duration {value!r}")
    scale = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    return sum(float(n) * scale[u] for n, u in parts)


class Duration(click.ParamType):
    name = "duration"

    def convert(self, value, param, ctx):  # type: ignore[no-untyped-def]
        return value if isinstance(value, float) else parse_duration(str(value))


def parse_weights(values: tuple[str, ...]) -> dict[str, int]:
    out = {}
    for v in values:
        name, _, weight = v.partition("=")
        if not name or not weight.lstrip("-").isdigit():
            raise click.BadParameter(f"expected Plugin=weight, got {v!r}")
        out[name] = int(weight)
    return out


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.option("--kubeconfig", type=click.Path(dir_okay=False), default=None,
              help="Kubeconfig with the scheduler's identity (default: $KUBECONFIG, ~/.kube/config, in-cluster).")
@click.option("--kube-api-qps", type=float, default=50.0, show_default=True,
              help="Client-side QPS limit towards the apiserver (0 or less: no limit).")
@click.option("--kube-api-burst", type=int, default=100, show_default=True, help="Burst of the client-side limit.")
@click.option("--leader-elect", type=click.BOOL, default=True, is_flag=False, flag_value=True, show_default=True,
              help="Run only while holding the leader Lease (replicated schedulers); --leader-elect=false to not.")
@click.option("--leader-elect-lease-duration", type=Duration(), default="15s", show_default=True,
              help="How long a standby waits after the last renewal before taking over.")
@click.option("--leader-elect-renew-deadline", type=Duration(), default="10s", show_default=True,
              help="How long the leader keeps trying to renew before stepping down.")
@click.option("--leader-elect-retry-period", type=Duration(), default="2s", show_default=True,
              help="Interval between renewals and acquisition attempts.")
@click.option("--leader-elect-resource-name", default="kube-scheduler", show_default=True,
              help="Name of the Lease object.")
@click.option("--leader-elect-resource-namespace", default="kube-system", show_default=True,
              help="Namespace of the Lease object.")
@click.option("--bind-address", default="127.0.0.1", show_default=True,
              help="Address of the /healthz, /readyz and /metrics endpoints.")
@click.option("--port", "--secure-port", "port", type=int, default=10259, show_default=True,
              help="Port of the health and metrics endpoints (plain HTTP; 0 disables them).")
@click.option("--scheduler-name", "scheduler_names", multiple=True, default=(DEFAULT_SCHEDULER_NAME,),
              show_default=True, help="Profile name(s): pods whose spec.schedulerName is one of these (repeatable).")
@click.option("--percentage-of-nodes-to-score", type=click.IntRange(0, 100), default=0, show_default=True,
              help="Share of nodes to find feasible before scoring (0: adaptive, 50 - nodes/125, at least 5).")
@click.option("--pod-initial-backoff-seconds", type=float, default=1.0, show_default=True,
              help="Backoff of a pod's first retry; it doubles with each attempt.")
@click.option("--pod-max-backoff-seconds", type=float, default=10.0, show_default=True,
              help="Longest backoff between a pod's attempts.")
@click.option("--bind-timeout-seconds", type=float, default=600.0, show_default=True,
              help="VolumeBinding: how long a pod waits in PreBind for its claims to be bound (upstream "
                   "VolumeBindingArgs.bindTimeoutSeconds) before it is retried.")
@click.option("--disable-plugin", "disabled_plugins", multiple=True,
              help="A default plugin to leave out (repeatable), e.g. ImageLocality.")
@click.option("--score-weight", "score_weights", multiple=True,
              help="Override a score plugin's weight, Plugin=weight (repeatable).")
@click.option("--identity", default="", help="Leader-election identity (default: hostname_uuid).")
@click.option("--v", "--log-level", "log_level", default="info", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False), help="Log level.")
@click.option("--cpu-profile", type=click.Path(dir_okay=False), default=None, hidden=True,
              help="Write a cProfile of the whole run to this file at exit (benchmarks).")
def main(kubeconfig: str | None, kube_api_qps: float, kube_api_burst: int, leader_elect: bool,
         leader_elect_lease_duration: float, leader_elect_renew_deadline: float, leader_elect_retry_period: float,
         leader_elect_resource_name: str, leader_elect_resource_namespace: str, bind_address: str, port: int,
         scheduler_names: tuple[str, ...], percentage_of_nodes_to_score: int, pod_initial_backoff_seconds: float,
         pod_max_backoff_seconds: float, bind_timeout_seconds: float, disabled_plugins: tuple[str, ...],
         score_weights: tuple[str, ...], identity: str, log_level: str, cpu_profile: str | None) -> None:
    """The minik8s scheduler: watches pending pods whose schedulerName is one of ours and binds
    each to the best node (filters, weighted scores, preemption), as kube-scheduler does."""
    config = SchedulerConfig(
        scheduler_names=list(dict.fromkeys(scheduler_names)),
        percentage_of_nodes_to_score=percentage_of_nodes_to_score,
        pod_initial_backoff_seconds=pod_initial_backoff_seconds,
        pod_max_backoff_seconds=pod_max_backoff_seconds,
        bind_timeout_seconds=bind_timeout_seconds,
        disabled_plugins=list(disabled_plugins),
        score_weights=parse_weights(score_weights),
    )
    opts = Options(
        kubeconfig=kubeconfig, kube_api_qps=kube_api_qps, kube_api_burst=kube_api_burst, leader_elect=leader_elect,
        lease_duration=leader_elect_lease_duration, renew_deadline=leader_elect_renew_deadline,
        retry_period=leader_elect_retry_period, lease_name=leader_elect_resource_name,
        lease_namespace=leader_elect_resource_namespace, bind_address=bind_address, port=port, identity=identity,
        config=config,
    )

    async def daemon(stop: asyncio.Event) -> None:
        await run(opts, stop)

    if cpu_profile is None:
        run_daemon("scheduler", daemon, log_level.lower())
        return
    import cProfile

    profiler = cProfile.Profile()
    profiler.enable()
    try:
        run_daemon("scheduler", daemon, log_level.lower())
    finally:
        profiler.disable()
        profiler.dump_stats(cpu_profile)


if __name__ == "__main__":
    sys.exit(main())
