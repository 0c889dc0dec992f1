"""`python -m images build|load --data-dir DIR`.

build: write the image archives to DIR/images/ (only what changed).
load:  build, then import into the cluster containerd at DIR/containerd/containerd.sock
       (or --socket), skipping images containerd already has with the same id.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from kubelet.cri.containerd import containerd_paths

from .build import build_images
from .load import load_image


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m images", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["build", "load"])
    parser.add_argument("--data-dir", required=True, type=Path, help="the cluster's data directory")
    parser.add_argument("--socket", help="containerd socket (default: DATA_DIR/containerd/containerd.sock)")
    parser.add_argument("--force", action="store_true", help="rebuild / re-import even if up to date")
    return parser


async def _load(archives: list[Path], socket: str, force: bool) -> None:
    for archive in archives:
        image = await load_image(archive, socket, force=force)
        print(f"loaded {', '.join(image.repo_tags)} {image.id}")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    data_dir = args.data_dir.absolute()
    built = build_images(data_dir / "images", force=args.force)
    for image in built:
        print(f"image {image.ref} {image.image_id} {image.archive}")
    if args.command == "load":
        socket = args.socket or str(containerd_paths(data_dir).socket)
        asyncio.run(_load([image.archive for image in built], socket, args.force))
    return 0


if __name__ == "__main__":
    sys.exit(main())
