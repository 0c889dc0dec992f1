"""What a local cluster needs from the machine, and the exact command that installs it.

`minictl cluster up` checks and stops with that command; `minictl cluster prereqs --install`
(what `make up` runs) runs it when it can, saying so first — nothing that needs root is
installed silently.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

#: what the node part of a cluster runs, and the Debian package providing it
NODE_NEEDS: dict[str, str] = {
    "containerd": "containerd",
    "ctr": "containerd",
    "runc": "runc",
    "iptables": "iptables",
    "iptables-restore": "iptables",
    "conntrack": "conntrack",
    "ip": "iproute2",
    "gcc": "gcc",  # builds the pause binary
}
#: what a node uses when present; `--install` installs it, its absence is no error
NODE_RECOMMENDS: dict[str, str] = {
    "crun": "crun",  # the default OCI runtime where the cgroups allow it (kubelet.cri.ociruntime)
}
NODE_FILES: dict[str, str] = {
    "/usr/lib/cni/bridge": "containernetworking-plugins",
    "/usr/lib/cni/host-local": "containernetworking-plugins",
    "/usr/lib/cni/loopback": "containernetworking-plugins",
    "/usr/lib/x86_64-linux-gnu/libc.a": "libc6-dev",  # static linking of pause
    "/bin/busybox": "busybox-static",
}
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass
class Report:
    missing_packages: list[str]
    problems: list[str]
    recommended_packages: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.missing_packages and not self.problems

    def install_command(self) -> str:
        return "apt-get install -y " + " ".join(self.missing_packages) if self.missing_packages else ""


def _which(binary: str) -> bool:
    return shutil.which(binary, path=os.environ.get("PATH", "") + ":" + SYSTEM_PATH) is not None


def check(node: bool) -> Report:
    missing: set[str] = set()
    problems: list[str] = []
    if node:
        for binary, package in NODE_NEEDS.items():
            if not _which(binary):
                missing.add(package)
        for path, package in NODE_FILES.items():
            if not Path(path).exists():
                missing.add(package)
        recommended = {package for binary, package in NODE_RECOMMENDS.items() if not _which(binary)}
        if os.geteuid() != 0:
            problems.append("the node (containerd, kubelet, kube-proxy) needs root: run as root, or use --no-node")
    return Report(sorted(missing), problems, sorted(recommended - missing) if node else [])


def install(report: Report, echo=print) -> bool:
    """Install the missing Debian packages (as root), printing the command first."""
    packages = [*report.missing_packages, *report.recommended_packages]
    if not packages:
        return True
    if os.geteuid() != 0:
        echo(f"missing packages; as root run:\n  apt-get install -y {' '.join(packages)}")
        return not report.missing_packages
    cmd = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages]
    echo("installing: " + " ".join(cmd))
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if subprocess.run(cmd, env=env).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, check=False)
        return subprocess.run(cmd, env=env).returncode == 0
    return True
