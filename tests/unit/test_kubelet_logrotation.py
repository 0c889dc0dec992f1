"""Container log rotation (upstream's container log manager) against a fake CRI, and following a
log across a rotation."""

import asyncio
import gzip
import os
import time

import click
import grpc
import pytest

from kubelet import logrotation
from kubelet.__main__ import config_from_flags, main
from kubelet.cri import CRIError, pb
from kubelet.logrotation import ContainerLogManager, RotationError, all_logs, clean, prepare, split_unused
from kubelet.logs import LogOptions, read_log
from tests.conftest import until

T0 = time.mktime((2026, 11, 23, 9, 30, 0, 0, 0, -1))  # local time, as upstream's timestamps


class FakeCRI:
    """Containers with log files; ReopenContainerLog creates a new empty live file (as containerd)."""

    def __init__(self, logs: dict[str, str], running: set[str] | None = None) -> None:
        self.logs = logs
        self.running = set(logs) if running is None else running
        self.reopened: list[str] = []
        self.fail_reopen = False
        self.statuses: list[str] = []

    async def list_containers(self, filter=None):
        out = [pb.Container(id=cid, state=pb.CONTAINER_RUNNING if cid in self.running else pb.CONTAINER_EXITED)
               for cid in self.logs]
        if filter is not None and filter.HasField("state"):
            out = [c for c in out if c.state == filter.state.state]
        return out

    async def container_status(self, cid, **_):
        self.statuses.append(cid)
        if cid not in self.logs:
            raise CRIError("ContainerStatus", grpc.StatusCode.NOT_FOUND, "no such container")
        return pb.ContainerStatusResponse(status=pb.ContainerStatus(id=cid, log_path=self.logs[cid]))

    async def reopen_container_log(self, cid, **_):
        self.reopened.append(cid)
        if self.fail_reopen:
            raise CRIError("ReopenContainerLog", grpc.StatusCode.FAILED_PRECONDITION, "container is not running")
        open(self.logs[cid], "ab").close()  # noqa: ASYNC230 - a local file


class Clock:
    def __init__(self) -> None:
        self.t = T0

    def __call__(self) -> float:
        return self.t


def _line(n: int) -> bytes:
    return b"2026-11-23T09:30:00.000000000Z stdout F line %04d\n" % n


def _fill(path, first: int, count: int) -> None:
    with open(path, "ab") as f:
        for n in range(first, first + count):
            f.write(_line(n))


def _manager(cri, clock=None, **kw):
    kw.setdefault("max_size", 200)
    kw.setdefault("max_files", 3)
    return ContainerLogManager(cri, now=clock or Clock(), **kw)


def _names(directory) -> list[str]:
    return sorted(os.listdir(directory))


async def test_a_small_log_is_left_alone_a_big_one_is_renamed_and_reopened(tmp_path):
    path = tmp_path / "0.log"
    _fill(path, 0, 2)  # 94 bytes
    cri = FakeCRI({"c1": str(path)})
    manager = _manager(cri)
    assert await manager.process("c1") is False
    assert cri.reopened == [] and _names(tmp_path) == ["0.log"]
    _fill(path, 2, 3)
    assert await manager.process("c1") is True
    assert cri.reopened == ["c1"] and manager.rotations == 1
    assert _names(tmp_path) == ["0.log", "0.log.20261123-093000"]
    assert path.stat().st_size == 0  # the runtime's new live file
    assert (tmp_path / "0.log.20261123-093000").read_bytes() == b"".join(_line(n) for n in range(5))


async def test_rotations_compress_all_but_the_newest_and_keep_max_files(tmp_path):
    path = tmp_path / "0.log"
    cri = FakeCRI({"c1": str(path)})
    clock = Clock()
    manager = _manager(cri, clock, max_files=3)
    written = {}
    for i in range(5):
        _fill(path, i * 10, 10)
        written[i] = path.read_bytes()
        clock.t = T0 + 60 * i
        assert await manager.process("c1") is True
    # the live file, the newest rotated one as it is, one older one compressed: 3 files
    assert _names(tmp_path) == ["0.log", "0.log.20261123-093300.gz", "0.log.20261123-093400"]
    assert gzip.decompress((tmp_path / "0.log.20261123-093300.gz").read_bytes()) == written[3]
    assert (tmp_path / "0.log.20261123-093400").read_bytes() == written[4]
    assert all_logs(str(path)) == [str(tmp_path / n) for n in ("0.log.20261123-093300.gz",
                                                               "0.log.20261123-093400", "0.log")]
    assert manager.rotations == 5


async def test_two_files_keep_only_the_newest_rotated_one(tmp_path):
    path = tmp_path / "0.log"
    cri = FakeCRI({"c1": str(path)})
    clock = Clock()
    manager = _manager(cri, clock, max_files=2)
    for i in range(3):
        _fill(path, i * 10, 10)
        clock.t = T0 + i
        await manager.process("c1")
    assert _names(tmp_path) == ["0.log", "0.log.20261123-093002"]


async def test_a_failed_reopen_renames_the_log_back(tmp_path):
    path = tmp_path / "0.log"
    _fill(path, 0, 10)
    before = path.read_bytes()
    cri = FakeCRI({"c1": str(path)})
    cri.fail_reopen = True
    manager = _manager(cri)
    assert await manager.process("c1") is False
    assert cri.reopened == ["c1"] and manager.rotations == 0
    assert _names(tmp_path) == ["0.log"] and path.read_bytes() == before
    cri.fail_reopen = False  # the next round rotates it
    assert await manager.process("c1") is True
    assert _names(tmp_path) == ["0.log", "0.log.20261123-093000"]


async def test_a_second_rotation_within_the_same_second_waits(tmp_path):
    path = tmp_path / "0.log"
    cri = FakeCRI({"c1": str(path)})
    manager = _manager(cri)
    _fill(path, 0, 10)
    assert await manager.process("c1") is True
    first = (tmp_path / "0.log.20261123-093000").read_bytes()
    _fill(path, 10, 10)
    assert await manager.process("c1") is False  # same timestamp: nothing overwritten
    assert _names(tmp_path) == ["0.log", "0.log.20261123-093000.gz"]
    assert gzip.decompress((tmp_path / "0.log.20261123-093000.gz").read_bytes()) == first
    assert path.stat().st_size > 200 and cri.reopened == ["c1"]
    with pytest.raises(RotationError):
        await manager.rotate_latest("c1", str(path))


async def test_leftovers_of_an_interrupted_rotation_are_removed(tmp_path):
    path = tmp_path / "0.log"
    _fill(path, 0, 10)
    (tmp_path / "0.log.20261123-080000").write_bytes(b"x")  # compressed, then the kubelet died
    (tmp_path / "0.log.20261123-080000.gz").write_bytes(gzip.compress(b"x"))
    (tmp_path / "0.log.20261123-090000.tmp").write_bytes(b"half")
    (tmp_path / "1.log").write_bytes(b"another instance: not ours")
    inuse, unused = split_unused(sorted(str(p) for p in tmp_path.glob("0.log.*")))
    assert [os.path.basename(n) for n in inuse] == ["0.log.20261123-080000.gz"]
    assert sorted(os.path.basename(n) for n in unused) == ["0.log.20261123-080000", "0.log.20261123-090000.tmp"]
    assert await _manager(FakeCRI({"c1": str(path)}), max_files=5).process("c1") is True
    assert _names(tmp_path) == ["0.log", "0.log.20261123-080000.gz", "0.log.20261123-093000", "1.log"]


def test_prepare_compresses_what_it_keeps_and_keeps_the_file_mode(tmp_path):
    path = tmp_path / "0.log"
    path.write_bytes(b"live")
    old = tmp_path / "0.log.20261123-090000"
    old.write_bytes(b"rotated\n" * 100)
    old.chmod(0o640)
    kept = prepare(str(path), 5)
    assert kept == [str(old) + ".gz"] and not old.exists()
    assert oct((tmp_path / "0.log.20261123-090000.gz").stat().st_mode & 0o777) == oct(0o640)
    assert gzip.decompress((tmp_path / "0.log.20261123-090000.gz").read_bytes()) == b"rotated\n" * 100
    assert _names(tmp_path) == ["0.log", "0.log.20261123-090000.gz"]


async def test_a_missing_live_file_is_reopened_first(tmp_path):
    path = tmp_path / "0.log"
    cri = FakeCRI({"c1": str(path)})
    assert await _manager(cri).process("c1") is False
    assert cri.reopened == ["c1"] and path.exists()


async def test_a_vanished_container_is_skipped(tmp_path):
    cri = FakeCRI({})
    assert await _manager(cri).process("gone") is False


def test_clean_removes_the_log_and_its_rotated_files_only(tmp_path):
    for name in ("0.log", "0.log.20261123-093000", "0.log.20261123-092000.gz", "0.log.x.tmp", "1.log",
                 "1.log.20261123-093000"):
        (tmp_path / name).write_bytes(b"x")
    clean(str(tmp_path / "0.log"))
    assert _names(tmp_path) == ["1.log", "1.log.20261123-093000"]
    clean("")


async def test_run_queues_running_containers_once_and_rotates_them(tmp_path):
    logs = {cid: str(tmp_path / f"{cid}.log") for cid in ("a", "b", "exited")}
    for p in logs.values():
        _fill(p, 0, 10)
    cri = FakeCRI(logs, running={"a", "b"})
    manager = _manager(cri, max_workers=2, monitor_interval=0.05)
    await manager.enqueue_running()
    await manager.enqueue_running()  # already queued: not twice
    assert manager.queue.qsize() == 2
    stop = asyncio.Event()
    task = asyncio.create_task(manager.run(stop))
    try:
        await until(lambda: manager.rotations >= 2, 5, "both logs rotated")
    finally:
        stop.set()
    await asyncio.wait_for(task, 5)
    assert manager.rotations == 2 and sorted(set(cri.reopened)) == ["a", "b"]
    assert "exited" not in cri.statuses
    assert sorted(p.name for p in tmp_path.glob("*.log.*")) == ["a.log.20261123-093000", "b.log.20261123-093000"]


async def test_a_negative_max_size_turns_rotation_off(tmp_path):
    path = tmp_path / "0.log"
    _fill(path, 0, 10)
    cri = FakeCRI({"c1": str(path)})
    manager = _manager(cri, max_size=-1)
    assert not manager.enabled
    await asyncio.wait_for(manager.run(asyncio.Event()), 1)  # returns at once
    assert cri.statuses == []


def test_invalid_settings_are_refused():
    with pytest.raises(ValueError):
        ContainerLogManager(FakeCRI({}), 10, 1)
    with pytest.raises(ValueError):
        ContainerLogManager(FakeCRI({}), 10, 2, max_workers=0)
    cfg = config_from_flags(main.make_context("kubelet", []).params)
    assert (cfg.container_log_max_size, cfg.container_log_max_files) == (10 * 1024 * 1024, 5)
    assert (cfg.container_log_max_workers, cfg.container_log_monitor_interval) == (1, 10.0)
    ok = ["--container-log-max-size", "4Ki", "--container-log-max-files", "2",
          "--container-log-max-workers", "3", "--container-log-monitor-interval", "3s"]
    cfg = config_from_flags(main.make_context("kubelet", ok).params)
    assert (cfg.container_log_max_size, cfg.container_log_max_files) == (4096, 2)
    assert (cfg.container_log_max_workers, cfg.container_log_monitor_interval) == (3, 3.0)
    for bad in (["--container-log-max-files", "1"], ["--container-log-max-workers", "0"],
                ["--container-log-monitor-interval", "2s"]):
        with pytest.raises(ValueError, match=bad[0]):
            config_from_flags(main.make_context("kubelet", bad).params)
    with pytest.raises(click.BadParameter):
        main.make_context("kubelet", ["--container-log-max-size", "ten"])


async def test_follow_reads_the_rest_of_the_old_file_then_the_new_one(tmp_path):
    path = tmp_path / "0.log"
    _fill(path, 0, 1)
    got = []

    async def still_running():
        return True

    async def follow():
        async for chunk in read_log(str(path), LogOptions(follow=True), still_running):
            got.append(chunk)

    task = asyncio.create_task(follow())

    async def seen(text: bytes):
        await until(lambda: text in b"".join(got), 5, f"{text!r} followed")

    try:
        await seen(b"line 0000\n")
        rotated = tmp_path / "0.log.20261123-093000"
        os.rename(path, rotated)
        _fill(rotated, 1, 1)
        path.touch()  # ReopenContainerLog made the new file ...
        await seen(b"line 0001\n")  # (the reader has seen it by now)
        _fill(rotated, 2, 1)  # ... but the runtime wrote to the old one until it switched
        _fill(path, 3, 2)
        await seen(b"line 0004\n")
        assert b"".join(got) == b"".join(b"line %04d\n" % n for n in range(5))
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


def test_the_module_names_rotated_files_as_upstream():
    assert logrotation.TIMESTAMP_FORMAT == "%Y%m%d-%H%M%S"
    assert time.strftime(logrotation.TIMESTAMP_FORMAT, time.localtime(T0)) == "20261123-093000"
