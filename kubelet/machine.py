"""What the kubelet reads about its machine: capacity, identity, and current usage.

Everything comes from /proc, /sys, /etc and statvfs — no commands are run.
"""

from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path

GOARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le", "s390x": "s390x"}


def _read(path: str, default: str = "") -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return default


def meminfo() -> dict[str, int]:
    """/proc/meminfo in bytes."""
    out = {}
    for line in _read("/proc/meminfo").splitlines():
        name, _, rest = line.partition(":")
        parts = rest.split()
        if parts:
            value = int(parts[0])
            out[name] = value * 1024 if len(parts) > 1 and parts[1] == "kB" else value
    return out


def os_image() -> str:
    for line in _read("/etc/os-release").splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip().strip('"')
    return "Linux"


@dataclass(frozen=True)
class MachineInfo:
    cpus: int
    memory_bytes: int
    machine_id: str
    system_uuid: str
    boot_id: str
    kernel_version: str
    os_image: str
    architecture: str
    hostname: str


def machine_info() -> MachineInfo:
    return MachineInfo(
        cpus=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1),
        memory_bytes=meminfo().get("MemTotal", 0),
        machine_id=_read("/etc/machine-id") or _read("/var/lib/dbus/machine-id"),
        system_uuid=_read("/sys/class/dmi/id/product_uuid"),
        boot_id=_read("/proc/sys/kernel/random/boot_id"),
        kernel_version=platform.release(),
        os_image=os_image(),
        architecture=GOARCH.get(platform.machine(), platform.machine()),
        hostname=platform.node().lower(),
    )


@dataclass(frozen=True)
class FsStats:
    capacity: int
    available: int
    inodes: int
    inodes_free: int

    @property
    def used(self) -> int:
        return self.capacity - self.available


def fs_stats(path: str | os.PathLike[str]) -> FsStats:
    """Capacity/availability of the filesystem holding `path` (the nearest existing parent)."""
    p = Path(path)
    while not p.exists() and p != p.parent:
        p = p.parent
    st = os.statvfs(p)
    return FsStats(st.f_blocks * st.f_frsize, st.f_bavail * st.f_frsize, st.f_files, st.f_favail)


def pid_stats() -> tuple[int, int]:
    """(max pids, pids in use) on the node."""
    try:
        pid_max = int(_read("/proc/sys/kernel/pid_max", "32768"))
    except ValueError:
        pid_max = 32768
    threads_max = _read("/proc/sys/kernel/threads-max")
    if threads_max.isdigit():
        pid_max = min(pid_max, int(threads_max))
    running = sum(1 for name in os.listdir("/proc") if name.isdigit())
    return pid_max, running


class CpuUsage:
    """Node CPU usage from /proc/stat: cumulative core-nanoseconds and a rate between samples."""

    def __init__(self) -> None:
        self._last: tuple[float, int] | None = None
        self.nano_cores = 0

    @staticmethod
    def total_ns() -> int:
        first = _read("/proc/stat").splitlines()[0].split()
        ticks = os.sysconf("SC_CLK_TCK")
        # user nice system irq softirq steal (idle and iowait are not usage)
        used = sum(int(first[i]) for i in (1, 2, 3, 6, 7, 8) if i < len(first))
        return used * 1_000_000_000 // ticks

    def sample(self) -> int:
        now, total = time.monotonic(), self.total_ns()
        if self._last is not None and now > self._last[0]:
            self.nano_cores = int((total - self._last[1]) / (now - self._last[0]))
        self._last = (now, total)
        return total
