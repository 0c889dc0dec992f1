"""The containerd config we write: our own paths only, and the settings this node needs."""

from __future__ import annotations

import os
import tomllib

import pytest

from kubelet.cri.containerd import (
    containerd_paths,
    mount_state_tmpfs,
    render_config,
    unmount_under,
    write_config,
)

CRI = "io.containerd.grpc.v1.cri"


def test_config_keeps_everything_under_the_data_dir(tmp_path):
    paths = write_config(tmp_path / "cluster", oci_runtime="runc")
    config = tomllib.loads(paths.config.read_text())
    base = str(tmp_path / "cluster" / "containerd")
    assert config["version"] == 2
    assert config["root"] == f"{base}/root"
    assert config["state"] == f"{base}/state"
    assert config["grpc"]["address"] == f"{base}/containerd.sock"
    assert config["plugins"]["io.containerd.internal.v1.opt"]["path"] == f"{base}/opt"
    runc = config["plugins"][CRI]["containerd"]["runtimes"]["runc"]
    assert runc["runtime_type"] == "io.containerd.runc.v2"
    assert runc["options"]["Root"] == f"{base}/state/runc"
    assert runc["options"]["SystemdCgroup"] is False
    assert paths.cni_conf_dir.is_dir() and paths.root.is_dir() and paths.state.is_dir()


def test_cri_plugin_settings(tmp_path):
    paths = containerd_paths(tmp_path)
    cri = tomllib.loads(render_config(paths))["plugins"][CRI]
    assert cri["sandbox_image"] == "localhost/minik8s/pause:3.9"
    assert cri["restrict_oom_score_adj"] is True  # no CAP_SYS_RESOURCE on these nodes
    assert cri["netns_mounts_under_state_dir"] is True
    assert cri["stream_server_address"] == "127.0.0.1"
    assert cri["cni"] == {
        "bin_dir": "/usr/lib/cni",
        "conf_dir": str(tmp_path / "cni" / "net.d"),
        "max_conf_num": 1,
    }
    assert cri["containerd"]["snapshotter"] == "overlayfs"
    assert cri["registry"]["mirrors"] == {"127.0.0.1:5000": {"endpoint": ["http://127.0.0.1:5000"]}}


def test_options_override_defaults(tmp_path):
    text = render_config(
        containerd_paths(tmp_path),
        sandbox_image="127.0.0.1:5000/pause:1",
        cni_bin_dir="/opt/cni/bin",
        registry_mirrors={},
    )
    cri = tomllib.loads(text)["plugins"][CRI]
    assert cri["sandbox_image"] == "127.0.0.1:5000/pause:1"
    assert cri["cni"]["bin_dir"] == "/opt/cni/bin"
    assert "registry" not in cri


def test_paths_with_quotes_stay_valid_toml(tmp_path):
    odd = tmp_path / 'a "quoted" dir'
    config = tomllib.loads(render_config(containerd_paths(odd)))
    assert config["root"] == f"{odd}/containerd/root"


def test_socket_path_too_long_is_refused(tmp_path):
    with pytest.raises(ValueError, match="too long"):
        write_config(tmp_path / ("x" * 120), oci_runtime="runc")


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting needs root")
def test_state_dir_is_a_tmpfs_and_mounting_it_again_keeps_it(tmp_path):
    paths = write_config(tmp_path / "cluster", oci_runtime="runc")
    try:
        assert mount_state_tmpfs(paths)
        (paths.runtime_root("runc") / "marker").write_text("kept")
        assert mount_state_tmpfs(paths)  # a restart: the same mount, its content still there
        types = [line.split()[2] for line in open("/proc/self/mounts") if line.split()[1] == str(paths.state)]
        assert types == ["tmpfs"]
        assert (paths.runtime_root("runc") / "marker").read_text() == "kept"
    finally:
        assert unmount_under(tmp_path) == [str(paths.state)]
    assert not os.path.ismount(paths.state)


def _program_starts(binary: str) -> int:
    """How many times the dynamic loader starts a program for one `binary --version` (a self re-exec: 2)."""
    import subprocess

    r = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10,
                       env={**os.environ, "LD_DEBUG": "files"})
    assert r.returncode == 0, r.stderr
    return r.stderr.count("initialize program:")


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting needs root")
@pytest.mark.skipif(not os.path.exists("/usr/bin/crun"), reason="crun is not installed")
def test_crun_runs_from_a_read_only_mount_without_copying_itself(tmp_path):
    from kubelet.cri.containerd import mounts_under, read_only_binary

    target = tmp_path / "bin" / "crun"
    try:
        # a stale mount first: another binary (as after a package upgrade) is replaced
        assert read_only_binary("/usr/sbin/runc", target) == str(target)
        assert read_only_binary("/usr/bin/crun", target) == str(target)
        assert read_only_binary("/usr/bin/crun", target) == str(target)  # kept: still one mount
        assert mounts_under(tmp_path) == [str(target)]
        assert os.stat(target).st_ino == os.stat("/usr/bin/crun").st_ino
        with pytest.raises(OSError) as refused:
            open(target, "ab")
        assert refused.value.errno == 30  # EROFS: what a container reaching it via /proc/self/exe gets
        # crun copies itself and re-execs (CVE-2019-5736) unless its binary is read-only already
        assert _program_starts("/usr/bin/crun") == 2
        assert _program_starts(str(target)) == 1
    finally:
        unmount_under(tmp_path)
    assert mounts_under(tmp_path) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting needs root")
@pytest.mark.skipif(not os.path.exists("/usr/bin/crun"), reason="crun is not installed")
def test_the_config_runs_crun_from_its_read_only_mount(tmp_path):
    from kubelet.cri.ociruntime import crun_usable_cgroups

    if not crun_usable_cgroups()[0]:
        pytest.skip("crun cannot manage this host's cgroups")
    try:
        paths = write_config(tmp_path / "cluster")
        runtimes = tomllib.loads(paths.config.read_text())["plugins"][CRI]["containerd"]["runtimes"]
        assert runtimes["crun"]["options"]["BinaryName"] == str(paths.bin_dir / "crun")
        assert runtimes["runc"]["options"].get("BinaryName", "runc").endswith("runc")
    finally:
        unmount_under(tmp_path)
