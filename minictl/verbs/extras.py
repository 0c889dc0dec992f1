"""minik8s-only verbs: `image load|build`, `certs show|rotate`, `node join` (placeholder)."""

from __future__ import annotations

import asyncio
import datetime as dt
import shutil
import sys
from pathlib import Path

import click
from cryptography import x509
from cryptography.x509.oid import NameOID

from minictl.printing import tabwrite
from minictl.verbs.common import VerbGroup, echo, fail

_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 110}


def _data_dir_option():  # a fresh option per command
    from minictl.cluster import DEFAULT_DATA_DIR

    return click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_DATA_DIR,
                        show_default=True, help="The cluster's directory.")


# --- image ------------------------------------------------------------------------------------------


@click.group("image", cls=VerbGroup, context_settings=_SETTINGS)
def image_group() -> None:
    """Put container images into the node's containerd without a registry (like `kind load`).

    \b
    Examples:
      minictl image build                       # the cluster's own images (pause, busybox)
      minictl image load ./myapp.tar            # a docker-archive, e.g. from `docker save`
    """


@image_group.command("load", context_settings=_SETTINGS)
@click.argument("archives", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@_data_dir_option()
@click.option("--socket", help="containerd socket (default: DATA_DIR/containerd/containerd.sock).")
@click.option("--force", is_flag=True, help="Import even if containerd already has the same image id.")
def image_load(archives: tuple[Path, ...], data_dir: Path, socket: str | None, force: bool) -> None:
    """Import docker-archive tarballs into the node's containerd (namespace k8s.io, where CRI sees them).

    \b
    Example:
      docker save myapp:1.0 -o myapp.tar && minictl image load myapp.tar
    """
    from images.load import load_image
    from kubelet.cri.containerd import containerd_paths

    sock = socket or str(containerd_paths(data_dir.expanduser()).socket)
    if not socket and not Path(sock).exists():
        fail(f"no containerd socket at {sock}: is the cluster in {data_dir} up? (or pass --socket)")

    async def run() -> None:
        for archive in archives:
            image = await load_image(archive, sock, force=force)
            echo(f"Image: \"{', '.join(image.repo_tags)}\" with ID \"{image.id}\" loaded from {archive}")

    try:
        asyncio.run(run())
    except (RuntimeError, ValueError, FileNotFoundError, OSError) as e:
        fail(str(e))


@image_group.command("build", context_settings=_SETTINGS)
@_data_dir_option()
@click.option("--output-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Where to write the archives (default: DATA_DIR/images).")
@click.option("--force", is_flag=True, help="Rebuild even if the inputs did not change.")
@click.option("--load", is_flag=True, help="Also import the images into the node's containerd.")
def image_build(data_dir: Path, output_dir: Path | None, force: bool, load: bool) -> None:
    """Build the cluster's own images (pause, busybox) as docker archives, reproducibly.

    \b
    Example:
      minictl image build --load
    """
    from images.build import build_images

    out = output_dir or data_dir.expanduser() / "images"
    try:
        built = build_images(out, force=force)
    except (OSError, RuntimeError) as e:
        fail(f"building images failed: {e}")
    for image in built:
        echo(f"{image.ref}\t{image.image_id}\t{image.archive}")
    if load:
        ctx = click.get_current_context()
        ctx.invoke(image_load, archives=tuple(i.archive for i in built), data_dir=data_dir, socket=None, force=force)


# --- certs ------------------------------------------------------------------------------------------


def _pki(data_dir: Path):  # -> PKI
    from certs import PKI

    pki = PKI(data_dir.expanduser() / "pki")
    if not pki.ca_cert.exists():
        fail(f"no cluster PKI in {pki.dir} (run `minictl cluster up --data-dir {data_dir}` first)")
    return pki


@click.group("certs", cls=VerbGroup, context_settings=_SETTINGS)
def certs_group() -> None:
    """Inspect and renew the cluster's certificates.

    \b
    Examples:
      minictl certs show
      minictl certs rotate                       # every leaf certificate, keys kept
      minictl certs rotate apiserver --new-keys
    """


@certs_group.command("show", context_settings=_SETTINGS)
@_data_dir_option()
def certs_show(data_dir: Path) -> None:
    """List each certificate: identity (CN / O), expiry, days left, and SANs.

    \b
    Example:
      minictl certs show --data-dir ~/.minik8s/default
    """
    pki = _pki(data_dir)
    now = dt.datetime.now(dt.UTC)
    lines = ["CERTIFICATE\tSUBJECT\tGROUPS\tEXPIRES\tRESIDUAL\tSANS"]
    for path in [pki.ca_cert, *sorted(p for p in pki.dir.glob("*.crt") if p != pki.ca_cert)]:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
        cn = ",".join(str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME))
        orgs = ",".join(str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME))
        end = cert.not_valid_after_utc
        left = end - now
        residual = "expired" if left.total_seconds() <= 0 else f"{left.days}d"
        try:
            sans = ",".join(str(n.value) for n in cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
        except x509.ExtensionNotFound:
            sans = ""
        lines.append(f"{path.stem}\t{cn}\t{orgs or '<none>'}\t{end:%Y-%m-%d %H:%M UTC}\t{residual}\t{sans or '<none>'}")
    sys.stdout.write(tabwrite(lines))
    from certs import check_expiry

    for msg in check_expiry(pki):
        echo(f"warning: {msg}", err=True)


@certs_group.command("rotate", context_settings=_SETTINGS)
@click.argument("names", nargs=-1)
@_data_dir_option()
@click.option("--new-keys", is_flag=True, help="Also generate new private keys.")
@click.option("--validity-days", type=int, default=365, show_default=True)
def certs_rotate(names: tuple[str, ...], data_dir: Path, new_keys: bool, validity_days: int) -> None:
    """Re-issue leaf certificates (all, or NAMES such as apiserver, admin) and rewrite the kubeconfigs.

    The CA is kept, so clients keep trusting the cluster. Running components pick up new
    serving certificates when restarted (`minictl cluster down && minictl cluster up`).

    \b
    Examples:
      minictl certs rotate
      minictl certs rotate apiserver admin --new-keys
    """
    from certs import PKIError, rotate, write_cluster_kubeconfigs
    from minictl.components import ClusterConfig

    pki = _pki(data_dir)
    try:
        done = rotate(pki, list(names) or None, validity_days=validity_days, new_keys=new_keys)
    except PKIError as e:
        fail(str(e))
    for path in done:
        echo(f"{path.stem} certificate renewed")
    cfg = ClusterConfig.load(data_dir.expanduser())
    if cfg is not None:
        out = write_cluster_kubeconfigs(pki, cfg.dir / "kubeconfigs", cfg.server_url)
        shutil.copyfile(out["admin"], cfg.admin_kubeconfig)
        cfg.admin_kubeconfig.chmod(0o600)
        echo(f"kubeconfigs rewritten in {cfg.dir / 'kubeconfigs'} and {cfg.admin_kubeconfig}")
    echo("Restart the cluster (minictl cluster down && minictl cluster up) so every component uses the new "
         "certificates.")


# --- node -------------------------------------------------------------------------------------------


@click.group("node", cls=VerbGroup, context_settings=_SETTINGS)
def node_group() -> None:
    """Nodes beyond the local one."""


@node_group.command("join", context_settings=_SETTINGS)
@click.argument("server", required=False)
@click.option("--token", help="A bootstrap token (from the control plane).")
@click.option("--node-name", help="This node's name (default: the hostname).")
@_data_dir_option()
def node_join(server: str | None, token: str | None, node_name: str | None, data_dir: Path) -> None:
    """Join this machine to a cluster as a worker node (not implemented yet).

    It will: fetch the cluster CA from SERVER (checked against a hash), authenticate with the
    bootstrap TOKEN, request a kubelet client certificate through a CertificateSigningRequest,
    write DATA_DIR/kubeconfigs/kubelet.kubeconfig, then start containerd, the kubelet and
    kube-proxy here as `minictl cluster up` does for the local node.

    \b
    Example:
      minictl node join https://10.0.0.1:6443 --token abcdef.0123456789abcdef
    """
    import socket as _socket

    name = node_name or _socket.gethostname().lower()
    echo(f"node join would: fetch the CA from {server or '<server>'}, use bootstrap token "
         f"{'<given>' if token else '<missing>'} to obtain a kubelet certificate for node {name!r}, write "
         f"{data_dir}/kubeconfigs/kubelet.kubeconfig, and start containerd, the kubelet and kube-proxy.")
    fail("node join is not implemented yet (multi-node support comes with the multi-node issue)")
