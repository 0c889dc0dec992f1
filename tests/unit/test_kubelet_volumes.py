"""Volumes: the atomic writer, configMap/secret/downward/projected payloads, hostPath checks."""

import base64
import os
import stat

import pytest

from kubelet.volumes import DATA_DIR, VolumeError, VolumeManager, resolve_sub_path, write_atomic


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _read(path, *parts) -> bytes:
    with open(os.path.join(path, *parts), "rb") as f:
        return f.read()


def test_atomic_writer_publishes_updates_through_one_symlink(tmp_path):
    target = tmp_path / "vol"
    assert write_atomic(target, {"a": (b"1", 0o644), "dir/b": (b"2", 0o400)})
    assert (target / "a").read_text() == "1" and (target / "dir" / "b").read_text() == "2"
    assert os.readlink(target / "a") == f"{DATA_DIR}/a"
    assert _mode(target / "dir" / "b") == 0o400
    first = os.readlink(target / DATA_DIR)
    assert not write_atomic(target, {"a": (b"1", 0o644), "dir/b": (b"2", 0o400)})  # unchanged: nothing written
    assert write_atomic(target, {"a": (b"3", 0o644)})
    assert (target / "a").read_text() == "3"
    assert not (target / "dir").exists()
    assert os.readlink(target / DATA_DIR) != first and not (target / first).exists()
    with pytest.raises(ValueError):
        write_atomic(target, {"../escape": (b"x", 0o644)})


class _Tokens:
    async def token(self, pod, sa, audiences, expiration):
        return f"token-for-{sa}-{expiration}"


def _manager(tmp_path, objects=None):
    objects = objects or {}

    async def cm(ns, name):
        return objects.get(("cm", name))

    async def secret(ns, name):
        return objects.get(("secret", name))

    return VolumeManager(tmp_path / "pods", cm, secret, _Tokens(), lambda: {"memory": 1 << 30, "cpu": 2000})


def _pod(volumes, **spec):
    return {"metadata": {"name": "p", "namespace": "ns", "uid": "u1", "labels": {"app": "x"}},
            "spec": {"containers": [{"name": "c", "resources": {"limits": {"memory": "32Mi"}}}],
                     "volumes": volumes, **spec}}


async def test_configmap_secret_downward_and_projected_volumes(tmp_path):
    objects = {
        ("cm", "cfg"): {"data": {"a.conf": "A", "b": "B"}, "binaryData": {"bin": base64.b64encode(b"\x00\x01").decode()}},
        ("secret", "sec"): {"data": {"key": base64.b64encode(b"k3y").decode()}},
    }
    m = _manager(tmp_path, objects)
    volumes = [
        {"name": "cfg", "configMap": {"name": "cfg", "items": [{"key": "a.conf", "path": "conf/a.conf", "mode": 0o600}]}},
        {"name": "all", "configMap": {"name": "cfg", "defaultMode": 0o644}},
        {"name": "info", "downwardAPI": {"defaultMode": 0o644, "items": [
            {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
            {"path": "mem", "resourceFieldRef": {"containerName": "c", "resource": "limits.memory", "divisor": "1Mi"}}]}},
        {"name": "proj", "projected": {"defaultMode": 0o644, "sources": [
            {"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}},
            {"configMap": {"name": "cfg", "items": [{"key": "b", "path": "b.txt"}]}},
            {"secret": {"name": "sec"}},
        ]}},
        {"name": "optional", "configMap": {"name": "absent", "optional": True}},
    ]
    # secrets and projected volumes want tmpfs: without privileges here, mount only that part
    m_secret_free = [v for v in volumes if "projected" not in v]
    mounted = await m.setup(_pod(m_secret_free))
    assert mounted["cfg"].read_only and mounted["cfg"].kind == "configMap"
    cfg = mounted["cfg"].host_path
    assert _read(cfg, "conf/a.conf") == b"A"
    assert _mode(os.path.join(cfg, "conf/a.conf")) == 0o600
    assert {e for e in os.listdir(mounted["all"].host_path) if not e.startswith("..")} == {"a.conf", "b", "bin"}
    assert _read(mounted["all"].host_path, "bin") == b"\x00\x01"
    assert _read(mounted["info"].host_path, "labels") == b'app="x"'
    assert _read(mounted["info"].host_path, "mem") == b"32"
    assert [e for e in os.listdir(mounted["optional"].host_path) if not e.startswith("..")] == []
    payload = await m._projected_payload(_pod(volumes), "proj", volumes[3]["projected"], 0o644, "", [])
    assert payload == {"token": (b"token-for-default-3607", 0o644), "b.txt": (b"B", 0o644), "key": (b"k3y", 0o644)}


async def test_missing_objects_and_bad_items_are_volume_errors(tmp_path):
    m = _manager(tmp_path, {("cm", "cfg"): {"data": {"a": "1"}}})
    with pytest.raises(VolumeError, match='volume "v" : configmap "nope" not found'):
        await m.setup(_pod([{"name": "v", "configMap": {"name": "nope"}}]))
    with pytest.raises(VolumeError, match="non-existent config key: zzz"):
        await m.setup(_pod([{"name": "v", "configMap": {"name": "cfg", "items": [{"key": "zzz", "path": "z"}]}}]))


async def test_host_path_types(tmp_path):
    m = _manager(tmp_path)
    made = tmp_path / "made" / "here"
    mounted = await m.setup(_pod([{"name": "h", "hostPath": {"path": str(made), "type": "DirectoryOrCreate"}}]))
    assert made.is_dir() and mounted["h"].host_path == str(made) and not mounted["h"].read_only
    f = tmp_path / "file"
    await m.setup(_pod([{"name": "h", "hostPath": {"path": str(f), "type": "FileOrCreate"}}]))
    assert f.is_file()
    with pytest.raises(VolumeError, match="is not a directory"):
        await m.setup(_pod([{"name": "h", "hostPath": {"path": str(f), "type": "Directory"}}]))
    with pytest.raises(VolumeError, match="is not a socket file"):
        await m.setup(_pod([{"name": "h", "hostPath": {"path": str(tmp_path / "nope"), "type": "Socket"}}]))


async def test_empty_dir_and_teardown(tmp_path):
    m = _manager(tmp_path)
    mounted = await m.setup(_pod([{"name": "scratch", "emptyDir": {}}]))
    path = mounted["scratch"].host_path
    assert path.endswith("kubernetes.io~empty-dir/scratch") and _mode(path) == 0o777
    assert m.pod_uids_on_disk() == ["u1"]
    assert m.teardown("u1") and m.pod_uids_on_disk() == []
    assert not (tmp_path / "pods" / "u1").exists()


def test_sub_paths(tmp_path):
    assert resolve_sub_path(str(tmp_path), "a/b") == str(tmp_path / "a" / "b")
    assert (tmp_path / "a" / "b").is_dir()
    for bad in ("../x", "/etc"):
        with pytest.raises(ValueError):
            resolve_sub_path(str(tmp_path), bad)
