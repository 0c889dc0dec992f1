"""What a local cluster needs from the machine, and the exact command that installs it.

`minictl cluster up` checks and stops with that command; `minictl cluster prereqs --install`
(what `make up` runs) runs it when it can, saying so first — nothing that needs root is
installed silently.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

#: what the node part of a cluster runs, and the Debian package providing it
NODE_NEEDS: dict[str, str] = {
    "containerd": "containerd",
    "ctr": "containerd",
    "runc": "runc",
    "crun": "crun",  # the default OCI runtime where the cgroups allow it (kubelet.cri.ociruntime)
    "iptables": "iptables",
    "iptables-restore": "iptables",
    "conntrack": "conntrack",
    "ip": "iproute2",
    "gcc": "gcc",  # builds the pause binary
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
        if os.geteuid() != 0:
            problems.append("the node (containerd, kubelet, kube-proxy) needs root: run as root, or use --no-node")
    return Report(sorted(missing), problems)


def install(report: Report, echo=print) -> bool:
    """Install the missing Debian packages (as root), printing the command first."""
    if not report.missing_packages:
        return True
    if os.geteuid() != 0:
        echo(f"missing packages; as root run:\n  {report.install_command()}")
        return False
    cmd = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *report.missing_packages]
    echo("installing: " + " ".join(cmd))
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if subprocess.run(cmd, env=env).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, check=False)
        return subprocess.run(cmd, env=env).returncode == 0
    return True
