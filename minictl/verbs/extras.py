"""minik8s-only verbs: `image load|build`, `certs show|rotate`, `node join`."""

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
    """Nodes beyond the local one: `node join` makes this machine a worker of a cluster."""


@node_group.command("join", context_settings=_SETTINGS)
@click.argument("server")
@click.option("--token", required=True, help="A bootstrap token ([a-z0-9]{6}.[a-z0-9]{16}) from "
              "`minictl token create` on the control plane.")
@click.option("--discovery-token-ca-cert-hash", "ca_hashes", multiple=True, metavar="sha256:HEX",
              help="Pin the cluster CA: the SHA-256 of its SubjectPublicKeyInfo (repeatable).")
@click.option("--discovery-token-unsafe-skip-ca-verification", "unsafe_skip", is_flag=True,
              help="Trust whatever CA cluster-info names (only its token signature is checked).")
@click.option("--node-name", help="This node's name (default: the host name).")
@click.option("--node-ip", help="This node's address: the apiserver reaches the kubelet there, and it is the pods' "
              "hostIP (default: the first non-loopback IPv4 address).")
@_data_dir_option()
@click.option("--discovery-timeout", default=300.0, show_default=True,
              help="Seconds to keep trying to reach the apiserver and a signed cluster-info.")
@click.option("--timeout", default=300.0, show_default=True,
              help="Seconds to wait for the node to be Ready once its components run.")
def node_join(server: str, token: str, ca_hashes: tuple[str, ...], unsafe_skip: bool, node_name: str | None,
              node_ip: str | None, data_dir: Path, discovery_timeout: float, timeout: float) -> None:
    """Join this machine to the cluster at SERVER as a worker node (as `kubeadm join`; run as root).

    It reads the cluster CA from SERVER's kube-public/cluster-info, trusted through the token's
    signature on it and pinned by --discovery-token-ca-cert-hash; writes DATA_DIR/pki/ca.crt and
    the kubelet's bootstrap kubeconfig; then starts containerd, the kubelet and kube-proxy here as
    `minictl cluster up` does for its node. The kubelet requests its own client certificate with
    the token (a CertificateSigningRequest the control plane approves and signs), registers the
    Node, and renews the certificate before it expires. Stop the node with
    `minictl cluster down --data-dir DATA_DIR`.

    \b
    Example (the command comes from `minictl token create --print-join-command`):
      minictl node join https://10.0.0.1:6443 --token abcdef.0123456789abcdef \\
          --discovery-token-ca-cert-hash sha256:1234...cdef
    """
    import os
    import socket as _socket

    from minictl import cluster
    from minictl.components import ClusterConfig
    from minictl.join import DiscoveryError, discover, write_join_files

    data_dir = data_dir.expanduser().resolve()
    name = (node_name or _socket.gethostname()).lower()
    existing = ClusterConfig.load(data_dir)
    if existing is not None and not existing.is_worker:
        fail(f"{data_dir} holds a control plane (cluster.json): join with another --data-dir")
    if existing is not None and existing.node_name != name:
        fail(f"{data_dir} is already node {existing.node_name!r} (remove it with "
             f"`minictl cluster down --data-dir {data_dir} --purge` first)")
    if os.geteuid() != 0:  # before discovery, which may wait for minutes (kubeadm's preflight)
        fail("error: node join starts containerd, the kubelet and kube-proxy, which need root")
    try:
        info = discover(server, token, ca_hashes, unsafe_skip_ca_verification=unsafe_skip, timeout=discovery_timeout)
    except (DiscoveryError, ValueError) as e:
        fail(f"error: discovery failed: {e}")
    echo(f"[discovery] cluster-info from {server} is signed by the token; cluster CA {info.ca_hash}")
    from kubelet.launch import bootstrap_kubeconfig_path

    # the apiserver cluster-info names, as kubeadm's bootstrap kubeconfig has it
    join_server = info.server
    address = node_ip or cluster._primary_address()
    cfg = existing or ClusterConfig(str(data_dir), with_node=True, join_server=join_server, node_name=name,
                                    bind_address=address, advertise_address=address)
    if cfg.join_server != join_server:  # joined again, to a moved apiserver: cluster.up resumes the saved config
        cfg.join_server = join_server
        cfg.save()
    write_join_files(data_dir, join_server, token, info.ca_pem, bootstrap_kubeconfig_path(cfg))
    echo(f"[kubelet-start] bootstrap kubeconfig written to {bootstrap_kubeconfig_path(cfg)}")
    cluster.up(data_dir, reset=False, timeout=timeout, config=cfg)
