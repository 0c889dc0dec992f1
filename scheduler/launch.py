"""How `minictl cluster up` starts the scheduler (the lead wires it into minictl's plan)."""

from __future__ import annotations

import sys

from minictl.components import ClusterConfig


def scheduler_kubeconfig(cfg: ClusterConfig) -> str:
    """The scheduler's own identity (system:kube-scheduler), as certs.write_cluster_kubeconfigs names it."""
    return str(cfg.dir / "kubeconfigs" / "scheduler.kubeconfig")


def scheduler_command(cfg: ClusterConfig, port: int = 10259) -> list[str]:
    return [
        sys.executable, "-m", "scheduler",
        "--kubeconfig", scheduler_kubeconfig(cfg),
        "--leader-elect",
        "--bind-address", "127.0.0.1",
        "--port", str(port),
    ]
