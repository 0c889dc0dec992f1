"""Components import this checkout's packages, whatever directory they are started from."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from minictl.components import component_env


def test_a_package_in_the_working_directory_does_not_shadow_ours(tmp_path: Path) -> None:
    decoy = tmp_path / "client"
    decoy.mkdir()
    (decoy / "__init__.py").write_text("raise SystemExit('the working directory was imported')\n")
    r = subprocess.run([sys.executable, "-m", "kubelet", "--help"], cwd=tmp_path, env=component_env(),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "Usage" in r.stdout
