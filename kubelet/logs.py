"""Container logs as the runtime writes them (the CRI log format) and as clients want them.

Each line of a CRI log file is `<RFC3339Nano time> <stdout|stderr> <P|F> <content>`: P marks a
partial line continued by the next entry, F a full one. Reading supports upstream's options:
follow, tailLines, sinceSeconds/sinceTime, timestamps, limitBytes. Only the live file is read, as
upstream; a follow goes on in the new file when the kubelet rotates the log (logrotation.py).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import re
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

FOLLOW_POLL = 0.1
_TIME = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


@dataclass(frozen=True)
class Entry:
    timestamp: str
    stream: str
    partial: bool
    content: bytes

    def time(self) -> float:
        return parse_timestamp(self.timestamp)


def parse_timestamp(text: str) -> float:
    m = _TIME.match(text)
    if not m:
        return 0.0
    base = dt.datetime.fromisoformat(m.group(1) + (m.group(3) if m.group(3) != "Z" else "+00:00"))
    frac = float("0" + m.group(2)) if m.group(2) else 0.0
    return base.timestamp() + frac


def parse_line(line: bytes) -> Entry | None:
    """One CRI log line (without its newline)."""
    parts = line.split(b" ", 3)
    if len(parts) < 3:
        return None
    content = parts[3] if len(parts) == 4 else b""
    tag = parts[2]
    return Entry(parts[0].decode(errors="replace"), parts[1].decode(errors="replace"), tag.startswith(b"P"), content)


@dataclass
class LogOptions:
    follow: bool = False
    tail_lines: int | None = None
    since_time: float | None = None  # epoch seconds
    timestamps: bool = False
    limit_bytes: int | None = None


def _render(entry: Entry, timestamps: bool) -> bytes:
    out = entry.content if entry.partial else entry.content + b"\n"
    if timestamps:
        out = entry.timestamp.encode() + b" " + out
    return out


def _tail_offset(path: str, lines: int) -> int:
    """Byte offset where the last `lines` full log lines (with their partial heads) begin."""
    if lines <= 0:
        return os.path.getsize(path)
    starts: deque[int] = deque(maxlen=lines)
    group_start = offset = 0
    with open(path, "rb") as f:
        for line in f:
            entry = parse_line(line.rstrip(b"\n"))
            offset += len(line)
            if entry is not None and not entry.partial:
                starts.append(group_start)
                group_start = offset
    return starts[0] if len(starts) == lines else 0


async def read_log(
    path: str,
    opts: LogOptions,
    still_running: Callable[[], Awaitable[bool]] | None = None,
    stop: asyncio.Event | None = None,
) -> AsyncIterator[bytes]:
    """Yield the log's rendered bytes; with follow, keep yielding until the container stopped."""
    start = await asyncio.to_thread(_tail_offset, path, opts.tail_lines) if opts.tail_lines is not None else 0
    sent = 0
    # local files, read in small steps: blocking calls here cost microseconds
    f = open(path, "rb")  # noqa: ASYNC230
    try:
        inode = os.fstat(f.fileno()).st_ino
        f.seek(start)
        pending = b""
        idle_checks = 0
        rotated = False
        while True:
            data = f.read(256 * 1024)
            if data:
                idle_checks = 0
                pending += data
                lines = pending.split(b"\n")
                pending = lines.pop()
                out = []
                for line in lines:
                    entry = parse_line(line)
                    if entry is None:
                        continue
                    if opts.since_time is not None and entry.time() < opts.since_time:
                        continue
                    out.append(_render(entry, opts.timestamps))
                if out:
                    chunk = b"".join(out)
                    if opts.limit_bytes is not None and sent + len(chunk) >= opts.limit_bytes:
                        yield chunk[: opts.limit_bytes - sent]
                        return
                    sent += len(chunk)
                    yield chunk
                continue
            if not opts.follow:
                return
            if stop is not None and stop.is_set():
                return
            if rotated:  # the old file is read to its end: continue in the new one
                rotated = False
                try:
                    new = open(path, "rb")  # noqa: ASYNC230
                except FileNotFoundError:
                    pass  # rotated again meanwhile: wait for the next one
                else:
                    f.close()
                    f, inode = new, os.fstat(new.fileno()).st_ino
                    continue
            try:
                # rotated underneath us? Read the old file once more after a poll (the runtime may
                # write to it until it has reopened the log), then switch
                rotated = os.stat(path).st_ino != inode
            except FileNotFoundError:
                pass  # renamed, not yet reopened
            idle_checks += 1
            if still_running is not None and idle_checks % 10 == 0 and not await still_running():
                # one last read for what was written just before the exit
                idle_checks = -1_000_000
                continue
            if idle_checks < 0:
                return
            await asyncio.sleep(FOLLOW_POLL)
    finally:
        f.close()


def tail_message(path: str, lines: int, max_bytes: int) -> str:
    """The end of a container's log, for FallbackToLogsOnError termination messages."""
    try:
        start = _tail_offset(path, lines)
        with open(path, "rb") as f:
            f.seek(start)
            data = f.read()
    except OSError:
        return ""
    out = b"".join(_render(e, False) for e in map(parse_line, data.split(b"\n")) if e is not None)
    return out[-max_bytes:].decode(errors="replace")

