"""CRI log files: parsing, tail/since/timestamps/limit, following a growing file, rotation names."""

import asyncio

from kubelet.logs import LogOptions, parse_line, parse_timestamp, read_log, tail_message

LINES = [
    b"2024-01-01T00:00:01.000000001Z stdout F one",
    b"2024-01-01T00:00:02.5Z stderr F two",
    b"2024-01-01T00:00:03Z stdout P thr",
    b"2024-01-01T00:00:03.1Z stdout F ee",
    b"2024-01-01T00:00:04Z stdout F four",
]


def _write(path, lines):
    path.write_bytes(b"".join(line + b"\n" for line in lines))


async def _read(path, opts, **kw):
    return b"".join([c async for c in read_log(str(path), opts, **kw)])


def test_parse():
    e = parse_line(LINES[2])
    assert (e.stream, e.partial, e.content) == ("stdout", True, b"thr")
    assert parse_line(b"garbage") is None
    assert parse_timestamp("2024-01-01T00:00:02.5Z") == 1704067202.5
    assert parse_line(b"2024-01-01T00:00:01Z stdout F ").content == b""


async def test_read_options(tmp_path):
    path = tmp_path / "0.log"
    _write(path, LINES)
    assert await _read(path, LogOptions()) == b"one\ntwo\nthree\nfour\n"
    assert await _read(path, LogOptions(tail_lines=2)) == b"three\nfour\n"
    assert await _read(path, LogOptions(tail_lines=0)) == b""
    assert await _read(path, LogOptions(tail_lines=99)) == b"one\ntwo\nthree\nfour\n"
    assert await _read(path, LogOptions(since_time=1704067202.6)) == b"three\nfour\n"
    assert await _read(path, LogOptions(limit_bytes=6)) == b"one\ntw"
    stamped = await _read(path, LogOptions(tail_lines=1, timestamps=True))
    assert stamped == b"2024-01-01T00:00:04Z four\n"


async def test_follow_stops_when_the_container_stops(tmp_path):
    path = tmp_path / "0.log"
    _write(path, LINES[:1])
    running = [True]

    async def still_running():
        return running[0]

    got = []

    async def follow():
        async for chunk in read_log(str(path), LogOptions(follow=True), still_running):
            got.append(chunk)

    task = asyncio.create_task(follow())
    await asyncio.sleep(0.3)
    with path.open("ab") as f:
        f.write(LINES[1] + b"\n")
    await asyncio.sleep(0.3)
    assert b"".join(got) == b"one\ntwo\n"
    running[0] = False
    await asyncio.wait_for(task, 5)


def test_tail_message(tmp_path):
    path = tmp_path / "0.log"
    _write(path, LINES)
    assert tail_message(str(path), 2, 1000) == "three\nfour\n"
    assert tail_message(str(path), 80, 5) == "four\n"
    assert tail_message(str(tmp_path / "missing"), 5, 5) == ""
