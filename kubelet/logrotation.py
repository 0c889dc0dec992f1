"""Container log rotation: upstream's container log manager (pkg/kubelet/logs).

The runtime (containerd) writes each container's output to one CRI log file and never limits it.
Every --container-log-monitor-interval the running containers are queued and
--container-log-max-workers workers look at each one's log file (ContainerStatus.log_path). A file
of --container-log-max-size or more is rotated:

1. leftovers of an interrupted rotation go: `*.tmp` files, and a rotated file whose `.gz` exists;
2. the oldest rotated files go, leaving max_files - 2 (with the file being rotated and the new
   live one that makes --container-log-max-files);
3. the rotated files left are gzip-compressed (`<log>.<stamp>.gz`);
4. the live file is renamed to `<log>.<YYYYmmdd-HHMMSS>` (local time, upstream's format) and the
   runtime is asked to open a new one (ReopenContainerLog). If that fails the rename is undone, so
   the next round tries again with nothing lost.

The newest rotated file stays uncompressed: a reader that had it open (`kubectl logs -f`) finishes
it before going on in the new file. Logs are served from the live file only, as upstream.
A negative max size turns rotation off. Removing a container removes its rotated files (clean).
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import gzip
import logging
import os
import shutil
import time
from collections.abc import Callable

from kubelet.cri import CRIClient, CRIError, pb

log = logging.getLogger("kubelet.logrotation")

TIMESTAMP_FORMAT = "%Y%m%d-%H%M%S"  # Go's "20060102-150405"
COMPRESS_SUFFIX = ".gz"
TMP_SUFFIX = ".tmp"


class RotationError(Exception):
    pass


def _rotated(path: str) -> list[str]:
    """Every `<path>.*` file (rotated, compressed, temporary), oldest first."""
    return sorted(glob.glob(glob.escape(path) + ".*"))


def split_unused(logs: list[str]) -> tuple[list[str], list[str]]:
    """(in use, leftovers): temporary files and rotated files already compressed are leftovers."""
    names = set(logs)
    inuse, unused = [], []
    for name in logs:
        leftover = name.endswith(TMP_SUFFIX) or (
            not name.endswith(COMPRESS_SUFFIX) and name + COMPRESS_SUFFIX in names)
        (unused if leftover else inuse).append(name)
    return inuse, unused


def all_logs(path: str) -> list[str]:
    """A container's log files in use, oldest first, the live one last (upstream's GetAllLogs)."""
    return split_unused(_rotated(path))[0] + [path]


def clean(path: str) -> None:
    """Remove a container's log file and everything rotated from it (upstream's Clean)."""
    if not path:
        return
    for name in glob.glob(glob.escape(path) + "*"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)


def compress(path: str) -> str:
    """gzip `path` to `path.gz` through a temporary file, then remove `path`."""
    tmp = path + TMP_SUFFIX
    try:
        with open(path, "rb") as src, open(tmp, "wb") as raw:
            os.fchmod(raw.fileno(), os.fstat(src.fileno()).st_mode & 0o777)
            with gzip.GzipFile(filename=os.path.basename(path), mode="wb", fileobj=raw) as out:
                shutil.copyfileobj(src, out, 256 * 1024)
        os.rename(tmp, path + COMPRESS_SUFFIX)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    os.unlink(path)
    return path + COMPRESS_SUFFIX


def prepare(path: str, max_files: int) -> list[str]:
    """Steps 1-3 of a rotation of `path`: what stays of its rotated files, all compressed."""
    inuse, unused = split_unused(_rotated(path))
    for name in unused:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)
    keep = max(0, max_files - 2)
    excess = len(inuse) - keep
    for name in inuse[:excess]:  # oldest first, not to break a reader of the newer ones
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)
    kept = inuse[max(0, excess):]
    return [name if name.endswith(COMPRESS_SUFFIX) else compress(name) for name in kept]


class ContainerLogManager:
    """Rotates the logs of running containers, periodically, with a few workers."""

    def __init__(self, cri: CRIClient, max_size: int, max_files: int, max_workers: int = 1,
                 monitor_interval: float = 10.0, now: Callable[[], float] = time.time) -> None:
        if max_files < 2:
            raise ValueError(f"invalid container log max files {max_files}, must be > 1")
        if max_workers < 1:
            raise ValueError(f"invalid container log max workers {max_workers}, must be >= 1")
        self.cri = cri
        self.max_size = max_size
        self.max_files = max_files
        self.max_workers = max_workers
        self.monitor_interval = monitor_interval
        self.now = now
        self.queue: asyncio.Queue[str] = asyncio.Queue()
        self._pending: set[str] = set()  # queued or being worked on: queued once (a workqueue)
        self.rotations = 0

    @property
    def enabled(self) -> bool:
        return self.max_size >= 0

    async def run(self, stop: asyncio.Event) -> None:
        if not self.enabled:
            log.info("container log rotation is off (negative max size)")
            return
        log.info("container log rotation: max size %d, max files %d, %d worker(s), every %gs",
                 self.max_size, self.max_files, self.max_workers, self.monitor_interval)
        workers = [asyncio.create_task(self._worker()) for _ in range(self.max_workers)]
        try:
            while not stop.is_set():
                try:
                    await self.enqueue_running()
                except CRIError as e:
                    log.warning("listing containers for log rotation: %s", e)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.monitor_interval)
        finally:
            for w in workers:
                w.cancel()
            await asyncio.gather(*workers, return_exceptions=True)

    async def enqueue_running(self) -> None:
        """Queue every running container (the others write nothing more)."""
        running = pb.ContainerFilter(state=pb.ContainerStateValue(state=pb.CONTAINER_RUNNING))
        for c in await self.cri.list_containers(running):
            if c.state == pb.CONTAINER_RUNNING and c.id not in self._pending:
                self._pending.add(c.id)
                self.queue.put_nowait(c.id)

    async def _worker(self) -> None:
        while True:
            container_id = await self.queue.get()
            try:
                await self.process(container_id)
            except Exception:
                log.exception("rotating the log of container %s", container_id[:12])
            finally:
                self._pending.discard(container_id)

    async def process(self, container_id: str) -> bool:
        """Rotate one container's log if it is too big; True if it was rotated."""
        try:
            path = (await self.cri.container_status(container_id)).status.log_path
        except CRIError as e:
            log.warning("container %s status for log rotation: %s", container_id[:12], e)
            return False
        if not path:
            return False
        try:
            size = os.stat(path).st_size
        except FileNotFoundError:
            # lost (a rotation interrupted between rename and reopen): have the runtime make it again
            try:
                await self.cri.reopen_container_log(container_id)
                size = os.stat(path).st_size
            except (CRIError, OSError) as e:
                log.warning("container %s has no log file %s and reopening failed: %s", container_id[:12], path, e)
                return False
        if size < self.max_size:
            return False
        try:
            await asyncio.to_thread(prepare, path, self.max_files)
            await self.rotate_latest(container_id, path)
        except (OSError, RotationError) as e:
            log.warning("rotating the log of container %s (%s, %d bytes): %s", container_id[:12], path, size, e)
            return False
        self.rotations += 1
        return True

    async def rotate_latest(self, container_id: str, path: str) -> None:
        """Rename the live file aside and have the runtime reopen it; undo the rename if it cannot."""
        rotated = f"{path}.{time.strftime(TIMESTAMP_FORMAT, time.localtime(self.now()))}"
        if os.path.lexists(rotated) or os.path.lexists(rotated + COMPRESS_SUFFIX):  # noqa: ASYNC240
            # rotated once already within this second: renaming over it would lose that file
            raise RotationError(f"{rotated} exists; rotating next round")
        os.rename(path, rotated)
        try:
            await self.cri.reopen_container_log(container_id)
        except CRIError as e:
            try:
                os.rename(rotated, path)
            except OSError as back:
                log.error("renaming %s back to %s: %s (the live log is lost)", rotated, path, back)
            raise RotationError(f"reopening the log of container {container_id[:12]}: {e}") from e
