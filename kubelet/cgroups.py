"""Pod-level cgroups: created, limited and removed by the kubelet (cgroupfs driver).

Layout under `--cgroup-root` (upstream's cgroupfs names):

    <root>/kubepods/pod<uid>               Guaranteed pods
    <root>/kubepods/burstable/pod<uid>     Burstable pods
    <root>/kubepods/besteffort/pod<uid>    BestEffort pods

The pod cgroup is the sandbox's `cgroup_parent`; runc creates the containers' cgroups below it
in every hierarchy and removes them again, but never the pod's own directories: those are
removed here, in every hierarchy, once the pod's containers are gone. Works on cgroup v1
(hybrid or legacy) and on the unified v2 hierarchy.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from kubelet.qos import BEST_EFFORT, BURSTABLE, MAX_SHARES, MIN_SHARES, CgroupResources

log = logging.getLogger("kubelet.cgroups")

CGROUP_FS = Path("/sys/fs/cgroup")
# v1 hierarchies whose pod-level directory the kubelet creates and limits itself.
V1_MANAGED = ("cpu", "cpuacct", "memory", "pids")
V2_CONTROLLERS = ("cpu", "memory", "pids")


def _write(path: Path, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def shares_to_weight(shares: int) -> int:
    """cgroup v1 cpu.shares → v2 cpu.weight (the conversion runc uses)."""
    shares = max(MIN_SHARES, min(MAX_SHARES, shares))
    return 1 + ((shares - 2) * 9999) // 262142


class CgroupManager:
    def __init__(self, cgroup_root: str = "/", fs: Path = CGROUP_FS) -> None:
        self.fs = fs
        self.root = "/" + cgroup_root.strip("/") if cgroup_root.strip("/") else ""
        self.v2 = (fs / "cgroup.controllers").exists()

    # -- names ---------------------------------------------------------------------------------

    @property
    def kubepods(self) -> str:
        return f"{self.root}/kubepods"

    def qos_parent(self, qos: str) -> str:
        if qos == BURSTABLE:
            return f"{self.kubepods}/burstable"
        if qos == BEST_EFFORT:
            return f"{self.kubepods}/besteffort"
        return self.kubepods

    def pod_cgroup(self, uid: str, qos: str) -> str:
        """The absolute cgroup path (what CRI's cgroup_parent takes) of a pod."""
        return f"{self.qos_parent(qos)}/pod{uid}"

    # -- hierarchies ---------------------------------------------------------------------------

    def hierarchies(self) -> list[Path]:
        """Every mounted hierarchy directory (v1: cpu, memory, ..., also unified; v2: the one)."""
        if self.v2:
            return [self.fs]
        try:
            return sorted(p for p in self.fs.iterdir() if p.is_dir() and not p.is_symlink())
        except OSError:
            return []

    def _managed(self) -> list[Path]:
        if self.v2:
            return [self.fs]
        return [self.fs / name for name in V1_MANAGED if (self.fs / name).is_dir()]

    def _dir(self, hierarchy: Path, cgroup: str) -> Path:
        return hierarchy / cgroup.lstrip("/")

    # -- setup ---------------------------------------------------------------------------------

    def ensure_qos_cgroups(self) -> None:
        for qos in ("Guaranteed", BURSTABLE, BEST_EFFORT):
            self.ensure(self.qos_parent(qos), None)
        self.set_resources(self.qos_parent(BEST_EFFORT), CgroupResources(cpu_shares=MIN_SHARES))

    def ensure(self, cgroup: str, resources: CgroupResources | None) -> None:
        """Create `cgroup` in the managed hierarchies (parents too) and apply `resources`."""
        for hierarchy in self._managed():
            path = self._dir(hierarchy, cgroup)
            if not path.is_dir():
                if self.v2:
                    self._ensure_v2(path)
                else:
                    path.mkdir(parents=True, exist_ok=True)
        if resources is not None:
            self.set_resources(cgroup, resources)

    def _ensure_v2(self, path: Path) -> None:
        """Create a v2 cgroup, enabling our controllers in every ancestor's subtree_control."""
        parts = path.relative_to(self.fs).parts
        current = self.fs
        for part in parts:
            try:
                available = (current / "cgroup.controllers").read_text().split()
                wanted = [f"+{c}" for c in V2_CONTROLLERS if c in available]
                if wanted:
                    _write(current / "cgroup.subtree_control", " ".join(wanted))
            except OSError as e:
                log.debug("enabling controllers in %s: %s", current, e)
            current = current / part
            current.mkdir(exist_ok=True)

    def set_resources(self, cgroup: str, r: CgroupResources) -> None:
        if self.v2:
            self._set_v2(self._dir(self.fs, cgroup), r)
            return
        settings = []
        if r.cpu_shares is not None:
            settings.append(("cpu", "cpu.shares", str(r.cpu_shares)))
        if r.cpu_period is not None:
            settings.append(("cpu", "cpu.cfs_period_us", str(r.cpu_period)))
        settings.append(("cpu", "cpu.cfs_quota_us", str(r.cpu_quota) if r.cpu_quota else "-1"))
        settings.append(("memory", "memory.limit_in_bytes", str(r.memory_limit) if r.memory_limit else "-1"))
        if r.pids_limit is not None:
            settings.append(("pids", "pids.max", str(r.pids_limit) if r.pids_limit > 0 else "max"))
        for hierarchy, name, value in settings:
            path = self._dir(self.fs / hierarchy, cgroup) / name
            try:
                _write(path, value)
            except OSError as e:
                # e.g. a memory limit below current usage: keep going, report it
                log.warning("cgroup %s: setting %s=%s failed: %s", cgroup, name, value, e)

    def _set_v2(self, path: Path, r: CgroupResources) -> None:
        settings = []
        if r.cpu_shares is not None:
            settings.append(("cpu.weight", str(shares_to_weight(r.cpu_shares))))
        quota = f"{r.cpu_quota} {r.cpu_period or 100000}" if r.cpu_quota else f"max {r.cpu_period or 100000}"
        settings.append(("cpu.max", quota))
        settings.append(("memory.max", str(r.memory_limit) if r.memory_limit else "max"))
        if r.pids_limit is not None:
            settings.append(("pids.max", str(r.pids_limit) if r.pids_limit > 0 else "max"))
        for name, value in settings:
            try:
                _write(path / name, value)
            except OSError as e:
                log.warning("cgroup %s: setting %s=%s failed: %s", path, name, value, e)

    # -- teardown ------------------------------------------------------------------------------

    def exists(self, cgroup: str) -> bool:
        return any(self._dir(h, cgroup).is_dir() for h in self._managed())

    def remove(self, cgroup: str) -> bool:
        """rmdir the cgroup (and any leftover children) bottom-up in every hierarchy.

        False when something is still inside (a process), so the caller retries later."""
        ok = True
        for hierarchy in self.hierarchies():
            top = self._dir(hierarchy, cgroup)
            if not top.is_dir():
                continue
            for directory, _, _ in sorted(os.walk(top), key=lambda w: w[0].count("/"), reverse=True):
                try:
                    os.rmdir(directory)
                except FileNotFoundError:
                    pass
                except OSError as e:
                    log.debug("rmdir %s: %s", directory, e)
                    ok = False
        return ok

    def pod_cgroups(self) -> dict[str, str]:
        """uid → cgroup path of every pod cgroup present (to find leftovers of deleted pods)."""
        found: dict[str, str] = {}
        hierarchy = self._managed()[0] if self._managed() else None
        if hierarchy is None:
            return found
        for qos in ("Guaranteed", BURSTABLE, BEST_EFFORT):
            parent = self.qos_parent(qos)
            directory = self._dir(hierarchy, parent)
            try:
                names = os.listdir(directory)
            except OSError:
                continue
            for name in names:
                if name.startswith("pod") and (directory / name).is_dir():
                    found[name[3:]] = f"{parent}/{name}"
        return found

    # -- usage (for stats and eviction) --------------------------------------------------------

    def memory_usage(self, cgroup: str) -> tuple[int, int] | None:
        """(usage, working set) bytes of a cgroup, or None."""
        try:
            if self.v2:
                path = self._dir(self.fs, cgroup)
                usage = int((path / "memory.current").read_text())
                inactive = _stat_value(path / "memory.stat", "inactive_file")
            else:
                path = self._dir(self.fs / "memory", cgroup)
                usage = int((path / "memory.usage_in_bytes").read_text())
                inactive = _stat_value(path / "memory.stat", "total_inactive_file")
        except (OSError, ValueError):
            return None
        return usage, max(0, usage - inactive)

    def cpu_usage_ns(self, cgroup: str) -> int | None:
        try:
            if self.v2:
                return _stat_value(self._dir(self.fs, cgroup) / "cpu.stat", "usage_usec") * 1000
            return int((self._dir(self.fs / "cpuacct", cgroup) / "cpuacct.usage").read_text())
        except (OSError, ValueError):
            return None


def _stat_value(path: Path, key: str) -> int:
    for line in path.read_text().splitlines():
        name, _, value = line.partition(" ")
        if name == key:
            return int(value)
    return 0
