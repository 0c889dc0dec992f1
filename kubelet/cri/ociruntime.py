"""Which OCI runtime containerd's CRI plugin runs containers with: crun where the host allows it,
runc otherwise.

crun (C) does what runc (Go) does per container at a fraction of the CPU — each container start
execs the runtime several times (create, start, and `init` inside the new namespaces), and a Go
binary pays its runtime's start-up every time. On a node starting many pods at once that CPU is
the pods' start latency (bench/RESULTS.md, issue 7).

crun refuses a hybrid cgroup layout (v1 hierarchies plus a cgroup2 at /sys/fs/cgroup/unified)
while the cgroup2 one has controllers, which happens when the init system left a controller
unmounted in v1 (on these machines: hugetlb). Mounting that controller as its own v1 hierarchy —
the layout systemd's hybrid mode makes — empties the cgroup2 one; nothing running changes, since
every process starts in the new hierarchy's root. Where that is not possible, runc it is.
"""

from __future__ import annotations

import ctypes
import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("kubelet.cri.ociruntime")

CGROUP_FS = Path("/sys/fs/cgroup")
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#: the CRI runtime handlers we configure: handler name → the binary the runc shim runs
HANDLERS = ("crun", "runc")


@dataclass(frozen=True)
class RuntimeChoice:
    """The handlers containerd gets (name → binary path) and the one used without a RuntimeClass."""

    handlers: dict[str, str]
    default: str
    why: str = ""


# the flags systemd mounts cgroup hierarchies with
_MS_NOSUID, _MS_NODEV, _MS_NOEXEC = 2, 4, 8


def _mount_v1_controller(fs: Path, controller: str) -> bool:
    target = fs / controller
    try:
        target.mkdir()
    except OSError:
        return False  # exists already, or /sys/fs/cgroup is read-only (a systemd host, a container)
    libc = ctypes.CDLL(None, use_errno=True)
    flags = _MS_NOSUID | _MS_NODEV | _MS_NOEXEC
    if libc.mount(b"cgroup", str(target).encode(), b"cgroup", flags, controller.encode()) == 0:
        log.warning("mounted the %s cgroup controller as a v1 hierarchy at %s (crun needs an empty cgroup2 "
                    "hierarchy in a hybrid layout)", controller, target)
        return True
    log.info("mounting the %s cgroup controller at %s: %s", controller, target, os.strerror(ctypes.get_errno()))
    _remove_dir(target)
    return False


def _unmount_v1_controller(fs: Path, controller: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.umount(str(fs / controller).encode()) == 0:
        _remove_dir(fs / controller)


def _remove_dir(path: Path) -> None:
    try:
        path.rmdir()
    except OSError:
        pass


def crun_usable_cgroups(fs: Path = CGROUP_FS,
                        mount_v1: Callable[[Path, str], bool] = _mount_v1_controller,
                        unmount_v1: Callable[[Path, str], None] = _unmount_v1_controller) -> tuple[bool, str]:
    """Whether crun can manage cgroups here, moving controllers the cgroup2 hierarchy of a hybrid
    layout holds into v1 hierarchies of their own if it must (all or none: what was mounted is
    unmounted again when some controller stays). Returns (usable, why not)."""
    if (fs / "cgroup.controllers").exists():
        return True, ""  # unified: cgroup2 only
    unified = fs / "unified" / "cgroup.controllers"
    try:
        held = unified.read_text().split()
    except FileNotFoundError:
        return True, ""  # v1 only
    except OSError as e:
        return False, f"reading {unified}: {e}"
    mounted = []
    for controller in held:
        # a controller's name is also its v1 mount option; anything else is left alone
        if controller.isidentifier() and not (fs / controller).exists() and mount_v1(fs, controller):
            mounted.append(controller)
    try:
        left = unified.read_text().split()
    except OSError as e:
        left, why = ["?"], f"reading {unified}: {e}"
    else:
        why = f"the cgroup2 hierarchy of this hybrid layout holds {' '.join(left)} (crun refuses that)"
    if left:
        for controller in mounted:
            unmount_v1(fs, controller)
        return False, why
    return True, ""


def choose(prefer: str = "auto", fs: Path = CGROUP_FS,
           which: Callable[[str], str | None] | None = None,
           mount_v1: Callable[[Path, str], bool] = _mount_v1_controller,
           unmount_v1: Callable[[Path, str], None] = _unmount_v1_controller) -> RuntimeChoice:
    """`prefer`: "auto" (crun when installed and the cgroups allow it), "crun" or "runc"."""
    if prefer not in ("auto", *HANDLERS):
        raise ValueError(f"unknown OCI runtime {prefer!r}: auto, crun or runc")
    find = which or (lambda name: shutil.which(name, path=SYSTEM_PATH))
    # containerd's runc shim finds runc on its PATH (or says it cannot) when we do not
    runc = {"runc": find("runc") or "runc"}
    if prefer == "runc":
        return RuntimeChoice(runc, "runc", "asked for")
    crun = find("crun")
    if crun is None:
        why = "crun is not installed"
    else:
        usable, why = crun_usable_cgroups(fs, mount_v1, unmount_v1)
        if usable:
            return RuntimeChoice({"crun": crun, **runc}, "crun")
    if prefer == "crun":
        raise RuntimeError(f"crun cannot run containers here: {why}")
    log.info("OCI runtime: runc (%s)", why)
    return RuntimeChoice(runc, "runc", why)
