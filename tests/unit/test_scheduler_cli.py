"""The scheduler's command line and how minictl launches it."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from minictl.components import ClusterConfig
from scheduler.__main__ import main, parse_duration, parse_weights
from scheduler.launch import scheduler_command


def test_durations_and_weights() -> None:
    assert parse_duration("15") == 15 and parse_duration("15s") == 15 and parse_duration("500ms") == 0.5
    assert parse_duration("1m30s") == 90 and parse_duration("2h") == 7200
    with pytest.raises(click.BadParameter):
        parse_duration("soon")
    assert parse_weights(("TaintToleration=5", "ImageLocality=0")) == {"TaintToleration": 5, "ImageLocality": 0}
    with pytest.raises(click.BadParameter):
        parse_weights(("TaintToleration",))


def test_help_lists_upstream_flags() -> None:
    out = CliRunner().invoke(main, ["--help"]).output
    for flag in ("--kubeconfig", "--kube-api-qps", "--leader-elect", "--leader-elect-lease-duration",
                 "--bind-address", "--scheduler-name", "--percentage-of-nodes-to-score"):
        assert flag in out


def test_launch_command_uses_the_scheduler_identity(tmp_path) -> None:
    cfg = ClusterConfig(str(tmp_path))
    cmd = scheduler_command(cfg)
    assert cmd[1:3] == ["-m", "scheduler"]
    assert cmd[cmd.index("--kubeconfig") + 1] == str(tmp_path / "kubeconfigs" / "scheduler.kubeconfig")
    assert "--leader-elect" in cmd and cmd[cmd.index("--port") + 1] == "10259"
