"""Taking the local node apart on `cluster down`: what the node components leave behind.

The supervisor calls `remove_pods` while containerd still runs (after the kubelet stopped, so
nothing recreates them) and `clean_host` once everything has stopped: kube-proxy's rules and
routes, the kubelet's bridge and filter rules, the node's cgroup subtree and any mount left
under the data dir.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from minictl.components import ClusterConfig

log = logging.getLogger("minictl.node")

CGROUP_FS = Path("/sys/fs/cgroup")
BRIDGE = "mk8s0"


def cgroup_root(cfg: ClusterConfig) -> str:
    """The node's cgroup subtree (kubelet --cgroup-root), so clusters never share one."""
    return f"/minik8s-{cfg.node_name}"


async def remove_pods(cfg: ClusterConfig) -> int:
    """Stop and remove every pod sandbox the kubelet created (their containers go with them)."""
    from kubelet.cri import CRIClient
    from kubelet.cri.containerd import containerd_paths
    from kubelet.naming import KUBELET_MANAGED

    paths = containerd_paths(cfg.dir)
    if not paths.socket.exists():
        return 0
    removed = 0
    async with CRIClient(paths.endpoint, timeout=30) as cri:
        for sandbox in await cri.list_pod_sandbox():
            if KUBELET_MANAGED not in sandbox.labels:
                continue
            try:
                # CRI: stopping a sandbox stops its containers, removing it removes them
                await cri.stop_pod_sandbox(sandbox.id)
                await cri.remove_pod_sandbox(sandbox.id)
                removed += 1
            except Exception as e:  # keep going: the rest must still be removed
                log.warning("removing sandbox %s: %s", sandbox.id[:12], e)
    return removed


def _remove_cgroup_tree(path: Path) -> None:
    if not path.is_dir():
        return
    for child in sorted((p for p in path.iterdir() if p.is_dir()), reverse=True):
        _remove_cgroup_tree(child)
    try:
        path.rmdir()
    except OSError as e:
        log.warning("cgroup %s not removed: %s", path, e)


def remove_cgroups(cfg: ClusterConfig) -> None:
    name = cgroup_root(cfg).strip("/")
    if not CGROUP_FS.is_dir():
        return
    for hierarchy in [CGROUP_FS, *CGROUP_FS.iterdir()]:
        _remove_cgroup_tree(hierarchy / name)


async def clean_host(cfg: ClusterConfig) -> list[str]:
    """Remove host state the node components created; → problems left (empty when clean)."""
    problems: list[str] = []
    if os.geteuid() != 0:
        return problems
    from kube_proxy.app import ProxyOptions, cleanup
    from kubelet.cri.containerd import unmount_under
    from kubelet.network import cleanup_filter_rules, delete_bridge

    try:
        problems += await cleanup(ProxyOptions(
            hostname_override=cfg.node_name, cluster_cidr=cfg.cluster_cidr,
            service_cluster_ip_range=cfg.service_cidr,
        ))
    except Exception as e:
        problems.append(f"kube-proxy cleanup: {e}")
    for step in (cleanup_filter_rules(BRIDGE), delete_bridge(BRIDGE)):
        try:
            await step
        except Exception as e:
            problems.append(f"network cleanup: {e}")
    remove_cgroups(cfg)
    left = unmount_under(cfg.dir)
    problems += [f"still mounted: {m}" for m in left]
    return problems

