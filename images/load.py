"""Import docker-archive images into the cluster's containerd, where CRI (namespace k8s.io) sees them.

CRI has no import RPC and containerd's own content/images API would need several more protos,
so the import itself runs `ctr images import` (shipped with the containerd package) against our
socket; before and after, the image is checked through CRI ImageStatus.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

from kubelet.cri import CRIClient, pb

CRI_NAMESPACE = "k8s.io"
_SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class ArchiveInfo:
    repo_tags: list[str]
    image_id: str  # "sha256:<config digest>"


def read_archive(archive: str | os.PathLike[str]) -> ArchiveInfo:
    """Tags and image id of a single-image docker archive (from its manifest.json)."""
    with tarfile.open(archive) as tar:
        manifest_member = tar.extractfile("manifest.json")
        if manifest_member is None:
            raise ValueError(f"{archive}: manifest.json is not a file")
        manifest = json.loads(manifest_member.read())
        if len(manifest) != 1:
            raise ValueError(f"{archive}: expected one image, found {len(manifest)}")
        config_member = tar.extractfile(manifest[0]["Config"])
        if config_member is None:
            raise ValueError(f"{archive}: image config is not a file")
        digest = hashlib.sha256(config_member.read()).hexdigest()
    tags = list(manifest[0].get("RepoTags") or [])
    if not tags:
        raise ValueError(f"{archive}: the image has no RepoTags")
    return ArchiveInfo(tags, f"sha256:{digest}")


def _endpoint(socket: str | os.PathLike[str]) -> tuple[str, str]:
    """(grpc endpoint, plain socket path) for a socket given either way."""
    text = str(socket)
    path = text.removeprefix("unix://")
    return f"unix://{path}", path


async def _present(cri: CRIClient, info: ArchiveInfo) -> pb.Image | None:
    image = await cri.image_status(info.repo_tags[0])
    return image if image is not None and image.id == info.image_id else None


async def load_image(
    archive: str | os.PathLike[str],
    containerd_socket: str | os.PathLike[str],
    *,
    namespace: str = CRI_NAMESPACE,
    timeout: float = 120.0,
    force: bool = False,
) -> pb.Image:
    """Import `archive` unless CRI already has the same image id under its tag; return the image
    as CRI ImageStatus reports it. Raises RuntimeError if the import fails or CRI never sees it."""
    info = read_archive(archive)
    endpoint, socket_path = _endpoint(containerd_socket)
    async with CRIClient(endpoint, timeout=30.0) as cri:
        if not force:
            image = await _present(cri, info)
            if image is not None:
                return image
        ctr = shutil.which("ctr", path=f"{os.environ.get('PATH', '')}:{_SYSTEM_PATH}")
        if ctr is None:
            raise FileNotFoundError("ctr not found (it comes with the containerd package)")
        process = await asyncio.create_subprocess_exec(
            ctr, "--address", socket_path, "--namespace", namespace,
            "images", "import", str(archive),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        try:
            output, _ = await asyncio.wait_for(process.communicate(), timeout)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise RuntimeError(f"ctr images import {archive} took longer than {timeout}s") from None
        if process.returncode != 0:
            raise RuntimeError(
                f"ctr images import {archive} failed ({process.returncode}): {output.decode(errors='replace')}"
            )
        # CRI learns about new images from containerd's event stream, a moment later.
        deadline = time.monotonic() + 10.0
        while True:
            image = await _present(cri, info)
            if image is not None:
                return image
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{info.repo_tags[0]} ({info.image_id}) imported but CRI does not report it"
                )
            await asyncio.sleep(0.05)


async def load_images(
    archives: list[str | os.PathLike[str]] | list[Path], containerd_socket: str | os.PathLike[str]
) -> list[pb.Image]:
    return [await load_image(archive, containerd_socket) for archive in archives]
