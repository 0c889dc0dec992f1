"""e2e fixtures: a private containerd (our config, temp data dir, own CNI bridge) with our images.

Needs root, containerd, runc, the CNI plugins in /usr/lib/cni, gcc (for the pause image) and
busybox-static; otherwise the tests are skipped with the reason. Everything created is removed
at the end: sandboxes, the containerd process and its shims (by pid), mounts under the data
dir, the bridge, the cgroup directories under the session's cgroup root and the data dir.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from images import build_images, load_image
from kubelet.cri import CRIClient, CRIError
from kubelet.cri.containerd import (
    ContainerdPaths,
    ContainerdProcess,
    containerd_paths,
    shim_pids,
    start_containerd,
    unmount_under,
    wait_ready,
)

BRIDGE = "mk8st0"
# A /24 of the cluster pod CIDR that nothing else here uses (the dev cluster takes the low ones).
SUBNET = ipaddress.ip_network("10.244.253.0/24")
CGROUP_FS = Path("/sys/fs/cgroup")
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Host directories our containerd may create outside its data dir: containerd 1.6 puts shim
# sockets in /run/containerd/s (hard-coded), libcni its result cache in /var/lib/cni/results.
# Removed at the end when this session created them and they are empty again.
HOST_DIRS = ("/run/containerd/s", "/run/containerd", "/var/lib/cni/results", "/var/lib/cni")


@dataclass
class ContainerdNode:
    """What the e2e tests get: a running private containerd with our images loaded."""

    data_dir: Path
    paths: ContainerdPaths
    process: ContainerdProcess
    bridge: str
    subnet: ipaddress.IPv4Network
    # Pods of the tests put their cgroup_parent under /<cgroup_root>/; removed at teardown.
    cgroup_root: str
    images: dict[str, str] = field(default_factory=dict)  # ref -> image id

    @property
    def endpoint(self) -> str:
        return self.paths.endpoint


def _missing_requirements() -> str | None:
    if os.geteuid() != 0:
        return "e2e CRI tests need root (containerd, runc, CNI)"
    for tool in ("containerd", "ctr", "runc", "containerd-shim-runc-v2", "ip", "gcc"):
        if shutil.which(tool, path=f"{os.environ.get('PATH', '')}:{SYSTEM_PATH}") is None:
            return f"{tool} not found (apt-get install containerd runc iproute2 gcc libc6-dev)"
    for plugin in ("bridge", "host-local", "loopback"):
        if not os.access(f"/usr/lib/cni/{plugin}", os.X_OK):
            return f"/usr/lib/cni/{plugin} missing (apt-get install containernetworking-plugins)"
    if not os.access("/bin/busybox", os.X_OK):
        return "/bin/busybox missing (apt-get install busybox-static)"
    return None


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=check)


def _link_exists(name: str) -> bool:
    return _ip("link", "show", "dev", name, check=False).returncode == 0


def _write_cni_config(paths: ContainerdPaths, network: str) -> None:
    conflist = {
        "cniVersion": "1.0.0",
        "name": network,
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": True,
                "hairpinMode": True,
                "ipMasq": False,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": str(SUBNET)}]],
                    "dataDir": str(paths.data_dir / "cni" / "ipam"),
                },
            }
        ],
    }
    paths.cni_conf_dir.mkdir(parents=True, exist_ok=True)
    (paths.cni_conf_dir / "10-mk8st.conflist").write_text(json.dumps(conflist, indent=2))


async def _wait_network_ready(cri: CRIClient, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        status = await cri.status()
        conditions = {c.type: c for c in status.status.conditions}
        if conditions.get("NetworkReady") is not None and conditions["NetworkReady"].status:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"containerd network never became ready: {status.status}")
        await asyncio.sleep(0.05)


async def _remove_all_pods(endpoint: str) -> None:
    async with CRIClient(endpoint, timeout=30.0) as cri:
        for container in await cri.list_containers():
            with contextlib.suppress(CRIError):
                await cri.stop_container(container.id, 0)
            await cri.remove_container(container.id)
        for sandbox in await cri.list_pod_sandbox():
            await cri.stop_pod_sandbox(sandbox.id)
            await cri.remove_pod_sandbox(sandbox.id)


def _kill_pids(pids: list[int], timeout: float = 5.0) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while any(Path(f"/proc/{pid}").exists() for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)


def _remove_cgroup_tree(cgroup_root: str) -> list[str]:
    """rmdir /sys/fs/cgroup/<hierarchy>/<cgroup_root> bottom-up in every hierarchy; returns leftovers."""
    left = []
    for hierarchy in sorted(CGROUP_FS.iterdir()):
        top = hierarchy / cgroup_root
        if not top.is_dir():
            continue
        for directory, _, _ in sorted(os.walk(top), key=lambda walked: walked[0].count("/"), reverse=True):
            try:
                os.rmdir(directory)
            except OSError:
                left.append(directory)
    return left


def _missing_host_dirs() -> list[str]:
    return [directory for directory in HOST_DIRS if not os.path.exists(directory)]


def _remove_cni_cache(network: str) -> None:
    # libcni (inside containerd) caches results in /var/lib/cni/results/<network>-<id>-<ifname>.
    results = Path("/var/lib/cni/results")
    if results.is_dir():
        for cached in results.glob(f"{network}-*"):
            cached.unlink(missing_ok=True)


@pytest.fixture(scope="session")
async def containerd_node() -> AsyncIterator[ContainerdNode]:
    reason = _missing_requirements()
    if reason is not None:
        pytest.skip(reason)
    if _link_exists(BRIDGE):
        pytest.fail(
            f"bridge {BRIDGE} already exists (another e2e run, or a crashed one: ip link del {BRIDGE})"
        )
    if json.loads(_ip("-j", "route", "show", str(SUBNET)).stdout or "[]"):
        pytest.fail(f"{SUBNET} is already routed on this machine; the e2e test subnet would clash")

    host_dirs_created = _missing_host_dirs()
    token = secrets.token_hex(4)
    network = f"mk8st-{token}"
    data_dir = Path(tempfile.mkdtemp(prefix="mk8s-cri-e2e-"))
    paths = containerd_paths(data_dir)
    process: ContainerdProcess | None = None
    errors: list[str] = []
    try:
        _write_cni_config(paths, network)
        process = start_containerd(data_dir)
        await wait_ready(paths.socket, 30.0, process=process)
        node = ContainerdNode(data_dir, paths, process, BRIDGE, SUBNET, f"mk8st-{token}")
        for built in build_images(data_dir / "images"):
            image = await load_image(built.archive, paths.socket)
            node.images[built.ref] = image.id
        async with CRIClient(paths.endpoint) as cri:
            await _wait_network_ready(cri)
        yield node
    finally:
        if process is not None and process.poll() is None:
            try:
                await _remove_all_pods(paths.endpoint)
            except Exception as e:
                errors.append(f"removing pods: {e}")
        leftover_shims = shim_pids(paths)
        if process is not None:
            process.stop()
        if leftover_shims:
            errors.append(f"shims still running after pod removal (killed): {leftover_shims}")
            _kill_pids(leftover_shims)
        try:
            unmount_under(data_dir)
        except OSError as e:
            errors.append(str(e))
        if _link_exists(BRIDGE):
            _ip("link", "del", "dev", BRIDGE, check=False)
        left_cgroups = _remove_cgroup_tree(f"mk8st-{token}")
        if left_cgroups:
            errors.append(f"cgroup dirs could not be removed: {left_cgroups}")
        _remove_cni_cache(network)
        for directory in host_dirs_created:
            with contextlib.suppress(OSError):
                os.rmdir(directory)
        shutil.rmtree(data_dir, ignore_errors=True)
        if errors:
            pytest.fail("e2e containerd teardown: " + "; ".join(errors))
