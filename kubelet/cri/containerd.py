"""The cluster's own containerd: config file, process start/readiness/stop, leftover cleanup.

Everything lives under `<data_dir>/containerd/` (root, state, socket, runc root, log, pid file),
so this instance never shares state with a system containerd (the one Docker uses, under
/var/lib/containerd and /run/containerd).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from .client import CRIClient, CRIError, pb
from .ociruntime import HANDLERS, SYSTEM_PATH, RuntimeChoice, choose

log = logging.getLogger("kubelet.cri.containerd")

SANDBOX_IMAGE = "localhost/minik8s/pause:3.9"
CNI_BIN_DIR = "/usr/lib/cni"
# The local registry of the architecture (Debian docker-registry) speaks plain http.
DEFAULT_REGISTRY_MIRRORS = {"127.0.0.1:5000": "http://127.0.0.1:5000"}
# sun_path holds 108 bytes; containerd also listens on "<address>.ttrpc".
_MAX_SOCKET_PATH = 107 - len(".ttrpc")


@dataclass(frozen=True)
class ContainerdPaths:
    """Where one cluster's containerd keeps everything, derived from the cluster data dir."""

    data_dir: Path

    @property
    def base(self) -> Path:
        return self.data_dir / "containerd"

    @property
    def config(self) -> Path:
        return self.base / "config.toml"

    @property
    def root(self) -> Path:
        return self.base / "root"

    @property
    def state(self) -> Path:
        return self.base / "state"

    @property
    def socket(self) -> Path:
        return self.base / "containerd.sock"

    @property
    def runtime_roots(self) -> list[Path]:
        return [self.runtime_root(handler) for handler in HANDLERS]

    def runtime_root(self, handler: str) -> Path:
        # under state: the OCI runtime's per-container state is runtime state, on the tmpfs
        return self.state / handler

    @property
    def bin_dir(self) -> Path:
        """Read-only bind mounts of the OCI runtimes that need one (read_only_binary)."""
        return self.base / "bin"

    @property
    def opt(self) -> Path:
        return self.base / "opt"

    @property
    def log(self) -> Path:
        return self.base / "containerd.log"

    @property
    def pid_file(self) -> Path:
        return self.base / "containerd.pid"

    @property
    def cni_conf_dir(self) -> Path:
        return self.data_dir / "cni" / "net.d"

    @property
    def endpoint(self) -> str:
        return f"unix://{self.socket}"


def containerd_paths(data_dir: str | os.PathLike[str]) -> ContainerdPaths:
    return ContainerdPaths(Path(data_dir).absolute())


def _toml_str(value: str | os.PathLike[str]) -> str:
    # A JSON string is a valid TOML basic string for everything we put in here.
    return json.dumps(str(value))


def render_config(
    paths: ContainerdPaths,
    *,
    sandbox_image: str = SANDBOX_IMAGE,
    cni_bin_dir: str = CNI_BIN_DIR,
    registry_mirrors: dict[str, str] | None = None,
    runtimes: RuntimeChoice | None = None,
) -> str:
    """containerd 1.6 config (version 2) for this cluster's instance.

    `registry_mirrors` maps a registry host to its endpoint URL (default: 127.0.0.1:5000 over
    http). `runtimes`: the CRI runtime handlers (RuntimeClass handlers) and the default one
    (default: runc only). restrict_oom_score_adj is required on nodes without CAP_SYS_RESOURCE.
    """
    if runtimes is None:
        runtimes = RuntimeChoice({"runc": "runc"}, "runc")
    mirrors = DEFAULT_REGISTRY_MIRRORS if registry_mirrors is None else registry_mirrors
    cri = '[plugins."io.containerd.grpc.v1.cri"'
    lines = [
        "# Written by minik8s (kubelet.cri.containerd); regenerated on every start.",
        "version = 2",
        f"root = {_toml_str(paths.root)}",
        f"state = {_toml_str(paths.state)}",
        "",
        "[grpc]",
        f"  address = {_toml_str(paths.socket)}",
        "",
        '[plugins."io.containerd.internal.v1.opt"]',
        f"  path = {_toml_str(paths.opt)}",
        "",
        f"{cri}]",
        f"  sandbox_image = {_toml_str(sandbox_image)}",
        '  stream_server_address = "127.0.0.1"',
        '  stream_server_port = "0"',
        "  netns_mounts_under_state_dir = true",
        "  restrict_oom_score_adj = true",
        "",
        f"{cri}.cni]",
        f"  bin_dir = {_toml_str(cni_bin_dir)}",
        f"  conf_dir = {_toml_str(paths.cni_conf_dir)}",
        "  max_conf_num = 1",
        "",
        f"{cri}.containerd]",
        '  snapshotter = "overlayfs"',
        f"  default_runtime_name = {_toml_str(runtimes.default)}",
    ]
    for name, binary in sorted(runtimes.handlers.items()):
        # every handler is the runc shim; BinaryName says which OCI runtime it execs
        options = [f"  Root = {_toml_str(paths.runtime_root(name))}", "  SystemdCgroup = false"]
        if binary != name:
            options.insert(0, f"  BinaryName = {_toml_str(binary)}")
        lines += ["", f"{cri}.containerd.runtimes.{name}]", '  runtime_type = "io.containerd.runc.v2"',
                  "", f"{cri}.containerd.runtimes.{name}.options]", *options]
    for host, endpoint in sorted(mirrors.items()):
        lines += ["", f"{cri}.registry.mirrors.{_toml_str(host)}]", f"  endpoint = [{_toml_str(endpoint)}]"]
    return "\n".join(lines) + "\n"


def write_config(data_dir: str | os.PathLike[str], oci_runtime: str = "auto",
                 **config_options: object) -> ContainerdPaths:
    """Create the directories and write `<data_dir>/containerd/config.toml`; returns the paths.
    `oci_runtime` picks the default runtime handler (ociruntime.choose) unless `runtimes` is given."""
    paths = containerd_paths(data_dir)
    if config_options.get("runtimes") is None:
        choice = choose(oci_runtime)
        if "crun" in choice.handlers:
            handlers = {**choice.handlers, "crun": read_only_binary(choice.handlers["crun"], paths.bin_dir / "crun")}
            choice = RuntimeChoice(handlers, choice.default, choice.why)
        config_options["runtimes"] = choice
    if len(str(paths.socket)) > _MAX_SOCKET_PATH:
        raise ValueError(f"containerd socket path too long for a unix socket: {paths.socket}")
    for directory in (paths.base, paths.root, paths.state, *paths.runtime_roots, paths.opt, paths.cni_conf_dir):
        directory.mkdir(parents=True, exist_ok=True)
    paths.base.chmod(0o711)
    paths.config.write_text(render_config(paths, **config_options))  # type: ignore[arg-type]
    return paths


def _runtimes_section(paths: ContainerdPaths) -> dict:
    import tomllib

    try:
        return tomllib.loads(paths.config.read_text())["plugins"]["io.containerd.grpc.v1.cri"]["containerd"]
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return {}


def runtime_handlers(paths: ContainerdPaths) -> list[str]:
    """The CRI runtime handlers of the written config."""
    return sorted(_runtimes_section(paths).get("runtimes") or {})


def default_oci_runtime(paths: ContainerdPaths) -> str:
    """The OCI runtime binary (its name) of the written config's default handler; "" if unreadable."""
    section = _runtimes_section(paths)
    name = section.get("default_runtime_name", "")
    options = ((section.get("runtimes") or {}).get(name) or {}).get("options") or {}
    return Path(options.get("BinaryName", name)).name if name else ""


def mount_state_tmpfs(paths: ContainerdPaths) -> bool:
    """Put containerd's state dir (shim bundles, runc state, netns and shm mounts) on a tmpfs,
    as upstream's /run/containerd is: per-pod runtime state is created and deleted on every
    sandbox and container start, and on a disk filesystem each start pays for inode
    allocation and journal writes (measured: ~15 % of the runtime's CPU per pod in a burst).

    Idempotent; a mount that already exists is kept (containerd restarts find their shims).
    Returns False, leaving the directory on disk, where mounting is not permitted."""
    paths.state.mkdir(parents=True, exist_ok=True)
    if os.path.ismount(paths.state):
        return True
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.mount(b"tmpfs", str(paths.state).encode(), b"tmpfs", 0, b"mode=0711") != 0:
        return False
    for root in paths.runtime_roots:
        root.mkdir(parents=True, exist_ok=True)
    return True


_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_REMOUNT, _MS_BIND = 1, 2, 4, 32, 4096


def read_only_binary(binary: str, target: Path) -> str:
    """Bind-mount the OCI runtime `binary` read-only at `target`; returns the path containerd is to
    run: `target`, or `binary` where mounting is not possible (no privilege, a read-only data dir).

    crun copies itself into a sealed memfd (or a temporary read-only mount) and re-execs on every
    call, so that a container cannot overwrite the host's binary through /proc/self/exe
    (CVE-2019-5736) — unless its binary is read-only already (crun >= 1.8). A pod start calls crun
    four times; the copies cost ~7 % of a burst's CPU (bench/RESULTS.md). A mount of that very
    file is kept; one of an older file (the package was upgraded since) is replaced."""
    point = str(target)
    mounted = point in mounts_under(target)
    with contextlib.suppress(OSError):
        if mounted and os.path.samefile(target, binary) and not os.access(target, os.W_OK):
            return point
    libc = ctypes.CDLL(None, use_errno=True)
    while point in mounts_under(target):  # stale (or stacked): let go of it
        if libc.umount2(point.encode(), _MNT_DETACH) != 0:
            break
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.touch(exist_ok=True)
    except OSError as e:
        log.info("running %s from where it is: %s", binary, e)
        return binary
    if libc.mount(binary.encode(), point.encode(), None, _MS_BIND, None) != 0:
        log.info("running %s from where it is: bind-mounting it: %s", binary, os.strerror(ctypes.get_errno()))
        return binary
    if libc.mount(b"", point.encode(), None, _MS_REMOUNT | _MS_BIND | _MS_RDONLY | _MS_NOSUID | _MS_NODEV, None) != 0:
        log.info("running %s from where it is: remounting it read-only: %s", binary, os.strerror(ctypes.get_errno()))
        libc.umount2(point.encode(), _MNT_DETACH)
        return binary
    return point


class ContainerdProcess:
    """A containerd we started; `pid` is containerd's own pid."""

    def __init__(self, popen: subprocess.Popen[bytes], paths: ContainerdPaths) -> None:
        self.popen = popen
        self.paths = paths

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def socket(self) -> Path:
        return self.paths.socket

    def poll(self) -> int | None:
        return self.popen.poll()

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM, then SIGKILL after `timeout`; returns the exit status. Pods keep running
        (their shims outlive containerd), exactly as with a containerd restart."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout)
        self.paths.pid_file.unlink(missing_ok=True)
        return self.popen.returncode


def start_containerd(
    data_dir: str | os.PathLike[str],
    *,
    binary: str = "containerd",
    log_level: str = "info",
    **config_options: object,
) -> ContainerdProcess:
    """Write the config and start containerd in its own session, logging to its log file.

    Returns at once; call `wait_ready(process.socket)` before using it.
    """
    running = running_pid(data_dir)
    if running is not None:
        raise RuntimeError(f"containerd for {data_dir} already runs as pid {running}")
    paths = write_config(data_dir, **config_options)
    mount_state_tmpfs(paths)
    env = dict(os.environ)
    # started from a venv, PATH may lack the sbin dirs the OCI runtimes live in
    env["PATH"] = f"{env['PATH']}:{SYSTEM_PATH}" if env.get("PATH") else SYSTEM_PATH
    executable = shutil.which(binary, path=env["PATH"])
    if executable is None:
        raise FileNotFoundError(f"{binary} not found (install the containerd package)")
    # A stale socket from a crashed run would make containerd refuse to listen.
    paths.socket.unlink(missing_ok=True)
    with paths.log.open("ab") as log:
        popen = subprocess.Popen(
            [executable, "--config", str(paths.config), "--log-level", log_level],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            env=env,
            start_new_session=True,
        )
    paths.pid_file.write_text(f"{popen.pid}\n")
    return ContainerdProcess(popen, paths)


async def wait_ready(
    socket: str | os.PathLike[str],
    timeout: float = 30.0,
    *,
    process: ContainerdProcess | None = None,
) -> pb.VersionResponse:
    """Poll the CRI Version RPC until it answers; raise TimeoutError (or RuntimeError when
    `process` exited) with the reason."""
    endpoint = str(socket)
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    async with CRIClient(endpoint if endpoint.startswith("unix:") else f"unix://{endpoint}") as cri:
        while time.monotonic() < deadline:
            if process is not None and process.poll() is not None:
                raise RuntimeError(
                    f"containerd exited with {process.poll()} before it was ready; "
                    f"see {process.paths.log}:\n{_tail(process.paths.log)}"
                )
            try:
                return await cri.version(timeout=1.0)
            except CRIError as e:
                last_error = e
            await asyncio.sleep(0.05)
    raise TimeoutError(f"containerd at {socket} not ready after {timeout}s: {last_error}")


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _pid_runs_config(pid: int, config: Path) -> bool:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return str(config).encode() in argv


def running_pid(data_dir: str | os.PathLike[str]) -> int | None:
    """Pid of the containerd recorded in `<data_dir>/containerd/containerd.pid` if it is still
    alive and running this data dir's config (so a recycled pid is never mistaken for it)."""
    paths = containerd_paths(data_dir)
    try:
        pid = int(paths.pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    if not _pid_runs_config(pid, paths.config) or _is_zombie(pid):
        return None
    return pid


def stop_containerd(data_dir: str | os.PathLike[str], timeout: float = 10.0) -> bool:
    """Stop the containerd of `data_dir` by its recorded pid (e.g. from another process than
    the one that started it). Returns True when a process was stopped."""
    pid = running_pid(data_dir)
    stopped = pid is not None and _signal_and_wait(pid, timeout)
    containerd_paths(data_dir).pid_file.unlink(missing_ok=True)
    return stopped


def _signal_and_wait(pid: int, timeout: float) -> bool:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not Path(f"/proc/{pid}").exists() or _is_zombie(pid):
            return True
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return True
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline and Path(f"/proc/{pid}").exists() and not _is_zombie(pid):
        time.sleep(0.05)
    return True


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


# ---------------------------------------------------------------------- leftovers


def shim_pids(paths: ContainerdPaths) -> list[int]:
    """Pids of runc shims this instance started that are still alive (they outlive containerd).

    Read from the shim.pid files containerd keeps under its own state dir, so only our shims."""
    pids = []
    for pid_file in sorted(paths.state.glob("io.containerd.runtime.v2.task/*/*/shim.pid")):
        try:
            pid = int(pid_file.read_text().strip())
        except (OSError, ValueError):
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"containerd-shim" in cmdline:
            pids.append(pid)
    return pids


def mounts_under(path: str | os.PathLike[str]) -> list[str]:
    """Mount points at or below `path`, deepest first (the order to unmount them in)."""
    base = os.path.realpath(path)
    found = []
    with open("/proc/self/mountinfo") as mountinfo:
        for line in mountinfo:
            # Field 5 is the mount point; the kernel octal-escapes space, tab, newline and "\\".
            point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), line.split()[4])
            if point == base or point.startswith(base + "/"):
                found.append(point)
    return sorted(set(found), key=lambda p: p.count("/"), reverse=True)


_MNT_DETACH = 2


def unmount_under(path: str | os.PathLike[str], *, passes: int = 5) -> list[str]:
    """Lazily unmount everything mounted at or below `path` (netns, shm, rootfs leftovers).

    Several passes because mounts can be stacked on one mount point."""
    libc = ctypes.CDLL(None, use_errno=True)
    done: list[str] = []
    for _ in range(passes):
        points = mounts_under(path)
        if not points:
            return done
        for point in points:
            if libc.umount2(point.encode(), _MNT_DETACH) == 0:
                done.append(point)
    left = mounts_under(path)
    if left:
        raise OSError(f"could not unmount {left}")
    return done
