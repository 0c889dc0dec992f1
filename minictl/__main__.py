"""minictl: the minik8s command line (cluster lifecycle, and kubectl-like verbs)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from minictl import cluster


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(package_name="minik8s")
def cli() -> None:
    """minictl controls a minik8s cluster.

    \b
    Start a local cluster and use it:
      minictl cluster up
      export KUBECONFIG=~/.minik8s/default/admin.kubeconfig
      kubectl get namespaces
    """


@cli.group("cluster")
def cluster_group() -> None:
    """Create, start, stop and inspect the local cluster."""


DATA_DIR = click.option(
    "--data-dir", type=click.Path(file_okay=False, path_type=Path), default=cluster.DEFAULT_DATA_DIR,
    show_default=True, help="The cluster's directory (certificates, etcd data, logs).",
)


@cluster_group.command("up")
@DATA_DIR
@click.option("--reset", is_flag=True, help="Delete the existing cluster in DATA_DIR and start a fresh one.")
@click.option("--timeout", default=120.0, show_default=True, help="Seconds to wait for the cluster to be ready.")
@click.option("--apiserver-port", type=int, default=None, help="HTTPS port of the apiserver (new clusters; default 6443).")
@click.option("--etcd-client-port", type=int, default=None, help="etcd client port (new clusters; default 2379).")
@click.option("--etcd-peer-port", type=int, default=None, help="etcd peer port (new clusters; default 2380).")
@click.option("--node/--no-node", default=None,
              help="Also run a node here (containerd, kubelet, kube-proxy, DNS; needs root). Default: when root.")
@click.option("--oci-runtime", type=click.Choice(["auto", "crun", "runc"]), default=None,
              help="The node's default OCI runtime (new clusters; default auto: crun where the cgroups allow it, "
                   "else runc). Both stay usable through a RuntimeClass.")
def cluster_up(data_dir: Path, reset: bool, timeout: float, node: bool | None, **overrides: int | str | None) -> None:
    """Start (or resume) the local cluster and wait until it is ready (node Ready, the
    `kubernetes` service answering).

    \b
    Idempotent: on a running cluster it reports so; after `down` (or a reboot) it
    brings back the same cluster from the same data, unless --reset.
    \b
    Example:
      minictl cluster up --data-dir /tmp/mk8s --apiserver-port 7443
    """
    cluster.up(data_dir, reset, timeout, node, **overrides)


@cluster_group.command("down")
@DATA_DIR
@click.option("--purge", is_flag=True, help="Also delete DATA_DIR (certificates, etcd data, logs).")
def cluster_down(data_dir: Path, purge: bool) -> None:
    """Stop every process the cluster started (by pid).

    \b
    Example:
      minictl cluster down --purge
    """
    cluster.down(data_dir, purge)


@cluster_group.command("prereqs")
@click.option("--node/--no-node", default=None, help="Check what a node needs too (default: when root).")
@click.option("--install", is_flag=True, help="Install missing Debian packages (as root; the command is printed first).")
def cluster_prereqs(node: bool | None, install: bool) -> None:
    """Check what the local cluster needs from this machine; print (or run) the install command.

    \b
    Example:
      minictl cluster prereqs --install
    """
    import os

    from minictl.prereqs import check
    from minictl.prereqs import install as do_install

    report = check(os.geteuid() == 0 if node is None else node)
    for problem in report.problems:
        click.echo(problem, err=True)
    if report.missing_packages or (install and report.recommended_packages):
        if install:
            if not do_install(report):
                sys.exit(1)
        else:
            click.echo(f"missing packages; as root run:\n  {report.install_command()}")
            sys.exit(1)
    elif not report.problems:
        click.echo("all prerequisites present")


@cluster_group.command("status")
@DATA_DIR
def cluster_status(data_dir: Path) -> None:
    """Show each component's process and health; exit 1 unless all are healthy."""
    sys.exit(cluster.status(data_dir))


@cluster_group.command("logs")
@DATA_DIR
@click.argument("component")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines.")
@click.option("--tail", default=50, show_default=True, help="Lines to show first (-1 for all).")
def cluster_logs(data_dir: Path, component: str, follow: bool, tail: int) -> None:
    """Print a component's log (etcd, apiserver, supervisor, audit, ...)."""
    import time

    path = data_dir.expanduser() / "logs" / f"{component}.log"
    if not path.exists():
        available = sorted(p.stem for p in (data_dir.expanduser() / "logs").glob("*.log"))
        raise click.ClickException(f"no log for {component!r}; available: {', '.join(available) or 'none'}")
    with open(path, "rb") as f:
        lines = f.readlines()
        for line in lines if tail < 0 else lines[-tail:]:
            sys.stdout.write(line.decode(errors="replace"))
        while follow:
            line = f.readline()
            if line:
                sys.stdout.write(line.decode(errors="replace"))
                sys.stdout.flush()
            else:
                time.sleep(0.2)


from minictl.verbs import register as _register_verbs  # noqa: E402  (kubectl-like verbs)

_register_verbs(cli)


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
