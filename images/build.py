"""Build the cluster's own container images without a registry, as docker-archive tarballs.

A docker archive (the `docker save` layout) holds one layer.tar per layer, the image config
JSON (named after its sha256, with `rootfs.diff_ids` = sha256 of each layer.tar) and a
`manifest.json` listing config, layers and RepoTags. Everything is written deterministically
(sorted entries, fixed mtimes, root ownership), so identical inputs give identical bytes and
an identical image id.

Images:
- localhost/minik8s/pause:3.9   — images/pause.c compiled with `gcc -static -Os`
- localhost/minik8s/busybox:latest — the Debian busybox-static binary, a symlink per applet,
  /etc/passwd (root, nobody=65534), /etc/group, /etc/hosts, /tmp (1777)
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import platform
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

PAUSE_IMAGE = "localhost/minik8s/pause:3.9"
BUSYBOX_IMAGE = "localhost/minik8s/busybox:latest"
#: The same image under a versioned tag (Debian's busybox-static version): pods using it
#: default to imagePullPolicy IfNotPresent, so nothing tries to pull it from a registry.
BUSYBOX_VERSIONED = "localhost/minik8s/busybox:1.35"

PAUSE_SOURCE = Path(__file__).with_name("pause.c")
BUSYBOX_BINARY = "/bin/busybox"  # from the busybox-static package
# All timestamps in layers and configs; fixed so rebuilds are byte-identical.
EPOCH = 0
CREATED = "1970-01-01T00:00:00Z"
DEFAULT_PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

_GOARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le", "s390x": "s390x"}


@dataclass(frozen=True)
class Entry:
    """One path in a layer: a directory, a regular file or a symlink."""

    path: str  # relative to the image root, no leading "/"
    mode: int
    data: bytes | None = None  # regular file contents
    link: str | None = None  # symlink target
    uid: int = 0
    gid: int = 0

    @classmethod
    def dir(cls, path: str, mode: int = 0o755) -> Entry:
        return cls(path, mode)

    @classmethod
    def file(cls, path: str, data: bytes, mode: int = 0o644) -> Entry:
        return cls(path, mode, data=data)

    @classmethod
    def symlink(cls, path: str, target: str) -> Entry:
        return cls(path, 0o777, link=target)


@dataclass
class Recipe:
    """What to put in an image: its reference, one layer's entries and the runtime config."""

    ref: str
    entries: list[Entry]
    config: dict[str, object]
    labels: dict[str, str] = field(default_factory=dict)
    extra_tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class BuiltImage:
    ref: str
    archive: Path
    image_id: str  # "sha256:<config digest>", what CRI reports as Image.id


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _tarinfo(name: str, mode: int, kind: bytes, size: int = 0, link: str = "", uid: int = 0, gid: int = 0):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.size = size
    info.linkname = link
    info.mtime = EPOCH
    info.uid, info.gid = uid, gid
    info.uname = info.gname = ""
    return info


def layer_tar(entries: Iterable[Entry]) -> bytes:
    """An uncompressed layer tarball; parent directories are added and everything is sorted."""
    by_path: dict[str, Entry] = {}
    for entry in entries:
        by_path[entry.path.strip("/")] = entry
    for path in list(by_path):
        parent = os.path.dirname(path)
        while parent and parent not in by_path:
            by_path[parent] = Entry.dir(parent)
            parent = os.path.dirname(parent)
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for path in sorted(by_path):
            entry = by_path[path]
            if entry.link is not None:
                tar.addfile(
                    _tarinfo(path, entry.mode, tarfile.SYMTYPE, link=entry.link, uid=entry.uid, gid=entry.gid)
                )
            elif entry.data is not None:
                info = _tarinfo(
                    path, entry.mode, tarfile.REGTYPE, len(entry.data), uid=entry.uid, gid=entry.gid
                )
                tar.addfile(info, io.BytesIO(entry.data))
            else:
                tar.addfile(_tarinfo(path, entry.mode, tarfile.DIRTYPE, uid=entry.uid, gid=entry.gid))
    return out.getvalue()


def _canonical_json(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def image_config(recipe: Recipe, diff_ids: list[str]) -> bytes:
    """The OCI/docker image config JSON for one image."""
    config = dict(recipe.config)
    if recipe.labels:
        config["Labels"] = dict(recipe.labels)
    return _canonical_json(
        {
            "architecture": _GOARCH.get(platform.machine(), platform.machine()),
            "os": "linux",
            "created": CREATED,
            "config": config,
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": [{"created": CREATED, "created_by": "minik8s images/build.py"}],
        }
    )


def docker_archive(ref: str, layers: list[bytes], config: bytes, extra_tags: tuple[str, ...] = ()) -> bytes:
    """A `docker save`-style tarball holding one image tagged `ref` (and `extra_tags`)."""
    config_name = f"{_sha256(config)}.json"
    members: list[tuple[str, bytes | None]] = [(config_name, config)]
    layer_names = []
    for layer in layers:
        layer_dir = _sha256(layer)
        layer_names.append(f"{layer_dir}/layer.tar")
        members += [(layer_dir, None), (f"{layer_dir}/layer.tar", layer)]
    manifest = [{"Config": config_name, "RepoTags": [ref, *extra_tags], "Layers": layer_names}]
    members.append(("manifest.json", json.dumps(manifest, separators=(",", ":")).encode()))
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, data in sorted(members, key=lambda m: m[0]):
            if data is None:
                tar.addfile(_tarinfo(name, 0o755, tarfile.DIRTYPE))
            else:
                tar.addfile(_tarinfo(name, 0o644, tarfile.REGTYPE, len(data)), io.BytesIO(data))
    return out.getvalue()


def write_image(recipe: Recipe, archive: Path) -> BuiltImage:
    """Build `recipe` into the docker archive `archive` (written atomically)."""
    layer = layer_tar(recipe.entries)
    config = image_config(recipe, [f"sha256:{_sha256(layer)}"])
    data = docker_archive(recipe.ref, [layer], config, recipe.extra_tags)
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=archive.parent, prefix=f".{archive.name}.", delete=False) as tmp:
        tmp.write(data)
    os.chmod(tmp.name, 0o644)
    os.replace(tmp.name, archive)
    return BuiltImage(recipe.ref, archive, f"sha256:{_sha256(config)}")


# ---------------------------------------------------------------------- the images


def compile_pause(output: Path, source: Path = PAUSE_SOURCE, cc: str = "gcc") -> bytes:
    """Compile the pause program statically and return the binary."""
    compiler = shutil.which(cc)
    if compiler is None:
        raise FileNotFoundError(f"{cc} not found: install gcc and libc6-dev to build the pause image")
    result = subprocess.run(
        [compiler, "-static", "-Os", "-s", "-Wall", "-o", str(output), str(source)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"compiling {source} failed:\n{result.stderr}")
    return output.read_bytes()


def pause_recipe() -> Recipe:
    with tempfile.TemporaryDirectory(prefix="minik8s-pause-") as tmp:
        binary = compile_pause(Path(tmp) / "pause")
    return Recipe(
        ref=PAUSE_IMAGE,
        entries=[Entry.file("pause", binary, 0o755)],
        # Like upstream's pause image: an unprivileged user, nothing else.
        config={
            "Entrypoint": ["/pause"],
            "User": "65535:65535",
            "WorkingDir": "/",
            "Env": [DEFAULT_PATH_ENV],
        },
    )


def busybox_applets(busybox: str = BUSYBOX_BINARY) -> list[str]:
    """Install paths of every applet (bin/sh, usr/bin/env, ...) as the binary lists them."""
    result = subprocess.run([busybox, "--list-full"], capture_output=True, text=True, timeout=30, check=True)
    # Entries without a directory (linuxrc) are only meant for initramfs use.
    return sorted({line.strip() for line in result.stdout.splitlines() if "/" in line.strip()})


PASSWD = b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n"
GROUP = b"root:x:0:\nnobody:x:65534:\n"
HOSTS = b"127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"


def busybox_recipe(busybox: str = BUSYBOX_BINARY) -> Recipe:
    binary = Path(busybox).read_bytes()
    entries = [
        Entry.file("bin/busybox", binary, 0o755),
        Entry.file("etc/passwd", PASSWD),
        Entry.file("etc/group", GROUP),
        Entry.file("etc/hosts", HOSTS),
        Entry.dir("tmp", 0o1777),
        Entry.dir("root", 0o700),
        Entry.dir("home"),
        Entry.dir("var/log"),
        Entry.dir("dev"),
        Entry.dir("proc"),
        Entry.dir("sys"),
    ]
    entries += [
        Entry.symlink(path, "/bin/busybox") for path in busybox_applets(busybox) if path != "bin/busybox"
    ]
    return Recipe(ref=BUSYBOX_IMAGE, entries=entries, config={"Cmd": ["sh"], "Env": [DEFAULT_PATH_ENV]},
                  extra_tags=(BUSYBOX_VERSIONED,))


# ---------------------------------------------------------------------- cache


def _file_digest(path: str | Path) -> str:
    return _sha256(Path(path).read_bytes())


def _tool_version(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        return "missing"
    result = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30, check=False)
    return result.stdout.splitlines()[0] if result.stdout else "unknown"


@dataclass(frozen=True)
class ImageSource:
    """An image we can build: its archive file name, what it is built from, how to build it."""

    ref: str
    archive_name: str
    inputs: Callable[[], dict[str, str]]
    recipe: Callable[[], Recipe]


def _builder_digest() -> str:
    # A change to this module (layout, config fields) must invalidate cached archives.
    return _file_digest(__file__)


IMAGES = (
    ImageSource(
        PAUSE_IMAGE,
        "pause-3.9.tar",
        lambda: {"pause.c": _file_digest(PAUSE_SOURCE), "gcc": _tool_version("gcc")},
        pause_recipe,
    ),
    ImageSource(
        BUSYBOX_IMAGE,
        "busybox-latest.tar",
        lambda: {"busybox": _file_digest(BUSYBOX_BINARY)},
        busybox_recipe,
    ),
)


def build_image(source: ImageSource, cache_dir: Path, *, force: bool = False) -> tuple[BuiltImage, bool]:
    """Build one image into `cache_dir` unless an archive from the same inputs is there.

    Returns the image and whether it was (re)built."""
    archive = cache_dir / source.archive_name
    stamp = archive.with_suffix(".inputs.json")
    inputs = {"ref": source.ref, "builder": _builder_digest(), "arch": platform.machine(), **source.inputs()}
    if not force and archive.is_file() and stamp.is_file():
        try:
            recorded = json.loads(stamp.read_text())
        except ValueError:
            recorded = {}
        if recorded.get("inputs") == inputs and recorded.get("image_id"):
            return BuiltImage(source.ref, archive, recorded["image_id"]), False
    built = write_image(source.recipe(), archive)
    stamp.write_text(
        json.dumps({"inputs": inputs, "image_id": built.image_id}, indent=1, sort_keys=True) + "\n"
    )
    return built, True


def build_images(cache_dir: str | os.PathLike[str], *, force: bool = False) -> list[BuiltImage]:
    """Build (or reuse) every cluster image as `<cache_dir>/<name>.tar`."""
    directory = Path(cache_dir)
    directory.mkdir(parents=True, exist_ok=True)
    return [build_image(source, directory, force=force)[0] for source in IMAGES]
