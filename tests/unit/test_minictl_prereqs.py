"""What `minictl cluster prereqs` requires, recommends and installs."""

from __future__ import annotations

import subprocess

import pytest

from minictl import prereqs


@pytest.fixture
def machine(monkeypatch):
    """A machine where only the binaries in the returned set exist, and apt-get is recorded."""
    present: set[str] = set()
    commands: list[list[str]] = []
    monkeypatch.setattr(prereqs, "_which", lambda binary: binary in present)
    monkeypatch.setattr(prereqs, "NODE_NEEDS", {"runc": "runc"})
    monkeypatch.setattr(prereqs, "NODE_RECOMMENDS", {"crun": "crun"})
    monkeypatch.setattr(prereqs, "NODE_FILES", {})
    monkeypatch.setattr(prereqs.os, "geteuid", lambda: 0)
    monkeypatch.setattr(prereqs.subprocess, "run",
                        lambda cmd, **kw: commands.append(cmd) or subprocess.CompletedProcess(cmd, 0))
    return present, commands


def test_a_missing_recommended_package_is_no_error_but_is_installed(machine):
    present, commands = machine
    present.add("runc")
    report = prereqs.check(node=True)
    assert report.ok and report.missing_packages == [] and report.recommended_packages == ["crun"]
    assert prereqs.install(report, echo=lambda _: None)
    assert commands == [["apt-get", "install", "-y", "-q", "--no-install-recommends", "crun"]]


def test_required_and_recommended_go_in_one_install(machine):
    _, commands = machine
    report = prereqs.check(node=True)
    assert not report.ok and report.missing_packages == ["runc"] and report.recommended_packages == ["crun"]
    assert prereqs.install(report, echo=lambda _: None)
    assert commands[0][-2:] == ["runc", "crun"]


def test_without_a_node_nothing_of_the_node_is_asked_for(machine):
    report = prereqs.check(node=False)
    assert report.ok and report.recommended_packages == []
