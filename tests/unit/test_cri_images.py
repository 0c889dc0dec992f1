"""Image archives: deterministic layers, a docker-archive layout containerd can import."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tarfile

import pytest

from images import build as image_build
from images.build import Entry, Recipe, build_images, docker_archive, image_config, layer_tar, write_image
from images.load import read_archive


def _members(data: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name.rstrip("/"): m for m in tar.getmembers()}


def test_layer_is_deterministic_sorted_and_has_parents():
    entries = [
        Entry.file("usr/bin/tool", b"x", 0o755),
        Entry.symlink("bin/sh", "/bin/busybox"),
        Entry.dir("tmp", 0o1777),
    ]
    first = layer_tar(entries)
    assert first == layer_tar(list(reversed(entries)))
    with tarfile.open(fileobj=io.BytesIO(first)) as tar:
        members = tar.getmembers()
    names = [m.name.rstrip("/") for m in members]
    assert names == ["bin", "bin/sh", "tmp", "usr", "usr/bin", "usr/bin/tool"]
    by_name = {m.name.rstrip("/"): m for m in members}
    assert by_name["tmp"].mode == 0o1777 and by_name["tmp"].isdir()
    assert by_name["bin/sh"].issym() and by_name["bin/sh"].linkname == "/bin/busybox"
    assert all(m.mtime == 0 and m.uid == 0 and m.gid == 0 for m in members)


def test_docker_archive_layout():
    layer = layer_tar([Entry.file("hello", b"hi\n")])
    recipe = Recipe("localhost/minik8s/test:1", [], {"Cmd": ["/hello"]})
    config = image_config(recipe, [f"sha256:{hashlib.sha256(layer).hexdigest()}"])
    archive = docker_archive(recipe.ref, [layer], config)
    members = _members(archive)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))
        stored_config = tar.extractfile(manifest[0]["Config"]).read()
        stored_layer = tar.extractfile(manifest[0]["Layers"][0]).read()
    assert manifest[0]["RepoTags"] == ["localhost/minik8s/test:1"]
    assert manifest[0]["Config"] == f"{hashlib.sha256(stored_config).hexdigest()}.json"
    assert stored_layer == layer
    parsed = json.loads(stored_config)
    assert parsed["rootfs"] == {"type": "layers", "diff_ids": [f"sha256:{hashlib.sha256(layer).hexdigest()}"]}
    assert parsed["os"] == "linux" and parsed["config"] == {"Cmd": ["/hello"]}
    assert all(m.mtime == 0 for m in members.values())


def test_write_image_reports_the_config_digest_as_id(tmp_path):
    built = write_image(Recipe("localhost/x:1", [Entry.file("f", b"1")], {}), tmp_path / "x.tar")
    info = read_archive(built.archive)
    assert info.repo_tags == ["localhost/x:1"]
    assert info.image_id == built.image_id


@pytest.mark.skipif(not os.access(image_build.BUSYBOX_BINARY, os.X_OK), reason="busybox-static not installed")
def test_busybox_rootfs():
    recipe = image_build.busybox_recipe()
    members = _members(layer_tar(recipe.entries))
    assert members["bin/sh"].issym() and members["bin/sh"].linkname == "/bin/busybox"
    assert members["usr/bin/env"].linkname == "/bin/busybox"
    assert "bin/busybox" in members and not members["bin/busybox"].issym()
    assert members["tmp"].mode == 0o1777
    files = {e.path: e.data for e in recipe.entries if e.data is not None and e.path.startswith("etc/")}
    assert b"root:x:0:0:" in files["etc/passwd"] and b"nobody:x:65534:65534:" in files["etc/passwd"]
    assert b"nobody:x:65534:" in files["etc/group"]
    assert b"localhost" in files["etc/hosts"]


@pytest.mark.skipif(
    shutil.which("gcc") is None or not os.access(image_build.BUSYBOX_BINARY, os.X_OK),
    reason="needs gcc (static libc) and busybox-static",
)
def test_build_images_reuses_unchanged_archives(tmp_path):
    first = build_images(tmp_path)
    assert [b.ref for b in first] == ["localhost/minik8s/pause:3.9", "localhost/minik8s/busybox:latest"]
    mtimes = [b.archive.stat().st_mtime_ns for b in first]
    again = build_images(tmp_path)
    assert again == first
    assert [b.archive.stat().st_mtime_ns for b in again] == mtimes
    forced = build_images(tmp_path, force=True)
    # Rebuilt from the same inputs: byte-identical archives, same ids.
    assert [b.image_id for b in forced] == [b.image_id for b in first]
    pause = _members(first[0].archive.read_bytes())
    assert any(name.endswith("/layer.tar") for name in pause)
