"""Which OCI runtime the node's containerd runs containers with (crun where the cgroups allow it)."""

from __future__ import annotations

import tomllib

import pytest

from kubelet.cri.containerd import containerd_paths, default_oci_runtime, render_config, write_config
from kubelet.cri.ociruntime import RuntimeChoice, choose, crun_usable_cgroups

CRI = "io.containerd.grpc.v1.cri"
BINARIES = {"runc": "/usr/sbin/runc", "crun": "/usr/bin/crun"}


def hybrid(tmp_path, held: str):
    """A fake /sys/fs/cgroup of the hybrid layout whose cgroup2 hierarchy holds `held`."""
    fs = tmp_path / "cgroup"
    for controller in ("cpu", "memory", "pids"):
        (fs / controller).mkdir(parents=True)
    (fs / "unified").mkdir()
    (fs / "unified" / "cgroup.controllers").write_text(held + "\n" if held else "")
    return fs


def moving_mount(fs, controller):
    """What mounting a controller as a v1 hierarchy does: it leaves the cgroup2 hierarchy."""
    (fs / controller).mkdir()
    held = (fs / "unified" / "cgroup.controllers").read_text().split()
    (fs / "unified" / "cgroup.controllers").write_text(" ".join(c for c in held if c != controller))
    return True


def failing_mount(fs, controller):
    return False


def test_unified_and_v1_only_layouts_suit_crun(tmp_path):
    unified = tmp_path / "v2"
    unified.mkdir()
    (unified / "cgroup.controllers").write_text("cpu memory pids\n")
    assert crun_usable_cgroups(unified, failing_mount) == (True, "")
    v1 = tmp_path / "v1"
    (v1 / "memory").mkdir(parents=True)
    assert crun_usable_cgroups(v1, failing_mount) == (True, "")


def test_hybrid_with_an_empty_cgroup2_suits_crun_without_mounting(tmp_path):
    fs = hybrid(tmp_path, "")
    mounted = []
    assert crun_usable_cgroups(fs, lambda f, c: mounted.append(c) or True) == (True, "")
    assert mounted == []


def test_hybrid_controllers_are_moved_to_v1_hierarchies(tmp_path):
    fs = hybrid(tmp_path, "hugetlb")
    assert crun_usable_cgroups(fs, moving_mount) == (True, "")
    assert (fs / "hugetlb").is_dir()
    assert (fs / "unified" / "cgroup.controllers").read_text() == ""


def test_a_partial_fix_is_undone(tmp_path):
    fs = hybrid(tmp_path, "hugetlb misc")
    unmounted = []

    def mount_only_hugetlb(f, controller):
        return controller == "hugetlb" and moving_mount(f, controller)

    usable, why = crun_usable_cgroups(fs, mount_only_hugetlb, lambda f, c: unmounted.append(c))
    assert not usable and "misc" in why
    assert unmounted == ["hugetlb"]


def test_hybrid_that_cannot_be_fixed_keeps_runc_and_says_why(tmp_path):
    fs = hybrid(tmp_path, "hugetlb misc")
    usable, why = crun_usable_cgroups(fs, failing_mount)
    assert not usable
    assert "hugetlb misc" in why
    choice = choose("auto", fs, BINARIES.get, failing_mount)
    assert choice == RuntimeChoice({"runc": "/usr/sbin/runc"}, "runc", why)


def test_auto_prefers_crun_and_keeps_runc_as_a_handler(tmp_path):
    fs = hybrid(tmp_path, "hugetlb")
    choice = choose("auto", fs, BINARIES.get, moving_mount)
    assert choice.default == "crun"
    assert choice.handlers == {"crun": "/usr/bin/crun", "runc": "/usr/sbin/runc"}


def test_without_crun_installed_runc_is_used(tmp_path):
    choice = choose("auto", hybrid(tmp_path, ""), {"runc": "/usr/sbin/runc"}.get, failing_mount)
    assert (choice.default, choice.why) == ("runc", "crun is not installed")


def test_asking_for_runc_touches_no_cgroups(tmp_path):
    fs = hybrid(tmp_path, "hugetlb")
    choice = choose("runc", fs, BINARIES.get, moving_mount)
    assert choice.handlers == {"runc": "/usr/sbin/runc"}
    assert not (fs / "hugetlb").exists()


def test_asking_for_crun_where_it_cannot_run_is_an_error(tmp_path):
    with pytest.raises(RuntimeError, match="hugetlb"):
        choose("crun", hybrid(tmp_path / "a", "hugetlb"), BINARIES.get, failing_mount)
    with pytest.raises(RuntimeError, match="not installed"):
        choose("crun", hybrid(tmp_path / "b", ""), {"runc": "/usr/sbin/runc"}.get, failing_mount)
    with pytest.raises(ValueError, match="unknown OCI runtime"):
        choose("kata", tmp_path)


def test_config_has_one_runc_shim_handler_per_runtime(tmp_path):
    paths = containerd_paths(tmp_path)
    choice = RuntimeChoice({"crun": "/usr/bin/crun", "runc": "/usr/sbin/runc"}, "crun")
    containerd = tomllib.loads(render_config(paths, runtimes=choice))["plugins"][CRI]["containerd"]
    assert containerd["default_runtime_name"] == "crun"
    for name, binary in choice.handlers.items():
        runtime = containerd["runtimes"][name]
        assert runtime["runtime_type"] == "io.containerd.runc.v2"
        assert runtime["options"] == {"BinaryName": binary, "Root": str(paths.runtime_root(name)),
                                      "SystemdCgroup": False}


def test_config_without_a_choice_is_runc_from_the_path(tmp_path):
    containerd = tomllib.loads(render_config(containerd_paths(tmp_path)))["plugins"][CRI]["containerd"]
    assert containerd["default_runtime_name"] == "runc"
    assert list(containerd["runtimes"]) == ["runc"]
    assert "BinaryName" not in containerd["runtimes"]["runc"]["options"]


def test_default_oci_runtime_reads_the_written_config(tmp_path):
    choice = RuntimeChoice({"crun": "/usr/bin/crun", "runc": "/usr/sbin/runc"}, "crun")
    paths = write_config(tmp_path / "a", runtimes=choice)
    assert default_oci_runtime(paths) == "crun"
    assert default_oci_runtime(write_config(tmp_path / "b", runtimes=RuntimeChoice({"runc": "runc"}, "runc"))) == "runc"
    assert default_oci_runtime(containerd_paths(tmp_path / "none")) == ""
