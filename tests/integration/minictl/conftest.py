"""minictl against a real apiserver: run the CLI in-process (click's CliRunner) or as a process."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from minictl.__main__ import cli
from tests.conftest import ROOT, ControlPlane


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("minictl-cache")


@pytest.fixture
def mctl(control_plane: ControlPlane, cache_dir: Path) -> Callable[..., Result]:
    """mctl(*args, input=None, check=True): minictl in-process with the admin kubeconfig."""

    def run(*args: str, input: str | None = None, check: bool = True, kubeconfig: Path | None = None) -> Result:
        runner = CliRunner()
        r = runner.invoke(cli, ["--kubeconfig", str(kubeconfig or control_plane.kubeconfig), *args], input=input,
                          env={"MINIK8S_CACHE_DIR": str(cache_dir)}, catch_exceptions=False)
        result = Result(r.exit_code, r.stdout, r.stderr)
        if check and r.exit_code != 0:
            raise AssertionError(f"minictl {' '.join(args)} failed ({r.exit_code}):\n{r.stdout}\n{r.stderr}")
        return result

    return run


@pytest.fixture
def mctl_process(control_plane: ControlPlane, cache_dir: Path) -> Callable[..., subprocess.CompletedProcess]:
    """minictl as a real process (python -m minictl), for what needs real file descriptors."""

    def run(*args: str, input: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
        env = {**os.environ, "MINIK8S_CACHE_DIR": str(cache_dir)}
        return subprocess.run([sys.executable, "-m", "minictl", "--kubeconfig", str(control_plane.kubeconfig), *args],
                              input=input, capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)

    return run


@pytest.fixture
def ns(mctl: Callable[..., Result], namespace: str) -> Iterator[str]:
    yield namespace
