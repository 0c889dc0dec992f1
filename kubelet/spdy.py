"""SPDY/3.1 framing and sessions, as far as Kubernetes' streaming protocols use it.

Kubernetes multiplexes exec/attach/port-forward streams over SPDY (moby/spdystream): a
stream per stdin/stdout/stderr/error/resize (or per forwarded connection), opened with a
SYN_STREAM whose headers say what it is, answered by SYN_REPLY, carried in DATA frames and
half-closed with FIN. Header blocks are zlib-compressed with the dictionary from the SPDY/3
spec, one compression context per direction. Like spdystream there is no flow control
(WINDOW_UPDATE and SETTINGS are read and ignored).

`upgrade()` opens an HTTP connection and upgrades it to SPDY (how the kubelet reaches the
runtime's streaming server); `Session` runs either end of a connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
import zlib
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

log = logging.getLogger("kubelet.spdy")

VERSION = 3
SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE = 1, 2, 3, 4, 6, 7, 8, 9
FLAG_FIN = 0x01
RST_PROTOCOL_ERROR, RST_REFUSED, RST_CANCEL = 1, 3, 5
MAX_DATA = 64 * 1024


def _dictionary() -> bytes:
    """The SPDY/3 header compression dictionary (draft-mbelshe-httpbis-spdy-00, 2.6.10.1):
    length-prefixed words, then a block of common values."""
    words = (
        "options head post put delete trace accept accept-charset accept-encoding accept-language "
        "accept-ranges age allow authorization cache-control connection content-base content-encoding "
        "content-language content-length content-location content-md5 content-range content-type date etag "
        "expect expires from host if-match if-modified-since if-none-match if-range if-unmodified-since "
        "last-modified location max-forwards pragma proxy-authenticate proxy-authorization range referer "
        "retry-after server te trailer transfer-encoding upgrade user-agent vary via warning www-authenticate "
        "method get status"
    ).split()
    words += ["200 OK", "version", "HTTP/1.1", "url", "public", "set-cookie", "keep-alive", "origin"]
    head = b"".join(struct.pack(">I", len(w)) + w.encode() for w in words)
    tail = (
        "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505"
        "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request401 Unauthorized"
        "403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented503 Service Unavailable"
        "Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT"
        "chunked,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,"
        "text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0."
    )
    return head + tail.encode()


DICTIONARY = _dictionary()


class SpdyError(Exception):
    pass


def encode_headers(headers: dict[str, str | list[str]]) -> bytes:
    """An uncompressed header block: names lowercased, several values joined by NUL."""
    out = [struct.pack(">I", len(headers))]
    for name, value in headers.items():
        values = value if isinstance(value, list) else [value]
        n, v = name.lower().encode(), "\x00".join(values).encode()
        out += [struct.pack(">I", len(n)), n, struct.pack(">I", len(v)), v]
    return b"".join(out)


def decode_headers(block: bytes) -> dict[str, list[str]]:
    (count,) = struct.unpack_from(">I", block, 0)
    pos = 4
    out: dict[str, list[str]] = {}
    for _ in range(count):
        (n,) = struct.unpack_from(">I", block, pos)
        name = block[pos + 4 : pos + 4 + n].decode()
        pos += 4 + n
        (v,) = struct.unpack_from(">I", block, pos)
        value = block[pos + 4 : pos + 4 + v].decode()
        pos += 4 + v
        out.setdefault(name.lower(), []).extend(value.split("\x00"))
    return out


class Framer:
    """Frame (de)serialisation with the two header compression contexts of one connection."""

    def __init__(self) -> None:
        self._compress = zlib.compressobj(9, zlib.DEFLATED, 15, 9, zlib.Z_DEFAULT_STRATEGY, DICTIONARY)
        self._decompress = zlib.decompressobj(zdict=DICTIONARY)

    def compress(self, headers: dict[str, str | list[str]]) -> bytes:
        return self._compress.compress(encode_headers(headers)) + self._compress.flush(zlib.Z_SYNC_FLUSH)

    def decompress(self, data: bytes) -> dict[str, list[str]]:
        return decode_headers(self._decompress.decompress(data))

    @staticmethod
    def control(ftype: int, flags: int, payload: bytes) -> bytes:
        return struct.pack(">HHI", 0x8000 | VERSION, ftype, (flags << 24) | len(payload)) + payload

    @staticmethod
    def data(stream_id: int, flags: int, payload: bytes) -> bytes:
        return struct.pack(">II", stream_id & 0x7FFFFFFF, (flags << 24) | len(payload)) + payload

    def syn_stream(self, stream_id: int, headers: dict[str, str | list[str]], flags: int = 0) -> bytes:
        return self.control(SYN_STREAM, flags, struct.pack(">IIBB", stream_id, 0, 0, 0) + self.compress(headers))

    def syn_reply(self, stream_id: int, headers: dict[str, str | list[str]], flags: int = 0) -> bytes:
        return self.control(SYN_REPLY, flags, struct.pack(">I", stream_id) + self.compress(headers))

    def rst_stream(self, stream_id: int, status: int) -> bytes:
        return self.control(RST_STREAM, 0, struct.pack(">II", stream_id, status))

    def ping(self, ping_id: int) -> bytes:
        return self.control(PING, 0, struct.pack(">I", ping_id))

    def goaway(self, last_stream: int, status: int = 0) -> bytes:
        return self.control(GOAWAY, 0, struct.pack(">II", last_stream, status))


async def read_frame(reader: asyncio.StreamReader) -> tuple[bool, int, int, bytes]:
    """(is control, type or stream id, flags, payload); IncompleteReadError at EOF."""
    head = await reader.readexactly(8)
    first, second = struct.unpack(">II", head)
    flags, length = second >> 24, second & 0xFFFFFF
    payload = await reader.readexactly(length) if length else b""
    if first & 0x80000000:
        version = (first >> 16) & 0x7FFF
        if version != VERSION:
            raise SpdyError(f"unsupported SPDY version {version}")
        return True, first & 0xFFFF, flags, payload
    return False, first & 0x7FFFFFFF, flags, payload


class Stream:
    def __init__(self, session: Session, stream_id: int, headers: dict[str, list[str]]) -> None:
        self.session = session
        self.id = stream_id
        self.headers = headers
        self.replied = asyncio.get_running_loop().create_future()
        self._data: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.remote_closed = False
        self.local_closed = False
        self.reset = False

    def header(self, name: str) -> str:
        values = self.headers.get(name.lower()) or [""]
        return values[0]

    async def read(self) -> bytes:
        """The next chunk of data; b"" when the peer finished (FIN or reset)."""
        if self.remote_closed and self._data.empty():
            return b""
        chunk = await self._data.get()
        if chunk is None:
            self.remote_closed = True
            return b""
        return chunk

    async def write(self, data: bytes) -> None:
        if self.local_closed or self.reset:
            raise SpdyError(f"stream {self.id} is closed for writing")
        for i in range(0, len(data), MAX_DATA):
            await self.session._send(Framer.data(self.id, 0, data[i : i + MAX_DATA]))

    async def close(self) -> None:
        """Half-close: nothing more from us (an empty DATA frame with FIN)."""
        if not self.local_closed and not self.reset:
            self.local_closed = True
            with contextlib.suppress(ConnectionError, SpdyError):
                await self.session._send(Framer.data(self.id, FLAG_FIN, b""))

    async def cancel(self) -> None:
        if not self.reset:
            self.reset = True
            self._finish()
            with contextlib.suppress(ConnectionError, SpdyError):
                await self.session._send(self.session.framer.rst_stream(self.id, RST_CANCEL))

    def _feed(self, data: bytes) -> None:
        if data:
            self._data.put_nowait(data)

    def _finish(self) -> None:
        self._data.put_nowait(None)


class Session:
    """One SPDY connection. `server=True` for the side that accepts streams (even ids)."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        server: bool,
        on_stream: Callable[[Stream], Awaitable[None] | None] | None = None,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.server = server
        self.on_stream = on_stream
        self.framer = Framer()
        self.streams: dict[int, Stream] = {}
        self._next_id = 2 if server else 1
        self._last_received = 0
        self._write_lock = asyncio.Lock()
        self.closed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._handlers: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._read_loop(), name="spdy reader")

    async def _send(self, frame: bytes) -> None:
        if self.closed.is_set():
            raise ConnectionError("the SPDY connection is closed")
        async with self._write_lock:
            self.writer.write(frame)
            await self.writer.drain()

    async def open_stream(self, headers: dict[str, str | list[str]], fin: bool = False, timeout: float = 30.0) -> Stream:
        """SYN_STREAM, then wait for the peer's SYN_REPLY (as client-go does)."""
        stream_id = self._next_id
        self._next_id += 2
        stream = Stream(self, stream_id, {k.lower(): (v if isinstance(v, list) else [v]) for k, v in headers.items()})
        self.streams[stream_id] = stream
        async with self._write_lock:
            self.writer.write(self.framer.syn_stream(stream_id, headers, FLAG_FIN if fin else 0))
            await self.writer.drain()
        if fin:
            stream.local_closed = True
        await asyncio.wait_for(stream.replied, timeout)
        return stream

    async def _read_loop(self) -> None:
        try:
            while True:
                control, kind, flags, payload = await read_frame(self.reader)
                if control:
                    await self._control(kind, flags, payload)
                    continue
                stream = self.streams.get(kind)
                if stream is None:
                    continue
                stream._feed(payload)
                if flags & FLAG_FIN:
                    stream._finish()
        except (asyncio.IncompleteReadError, ConnectionError, SpdyError, zlib.error) as e:
            if not isinstance(e, asyncio.IncompleteReadError):
                log.debug("SPDY connection ended: %s", e)
        finally:
            self.closed.set()
            for stream in self.streams.values():
                if not stream.replied.done():
                    stream.replied.set_exception(ConnectionError("the SPDY connection closed"))
                stream._finish()

    async def _control(self, kind: int, flags: int, payload: bytes) -> None:
        if kind == SYN_STREAM:
            stream_id = struct.unpack_from(">I", payload, 0)[0] & 0x7FFFFFFF
            headers = self.framer.decompress(payload[10:])
            stream = Stream(self, stream_id, headers)
            self.streams[stream_id] = stream
            self._last_received = stream_id
            if flags & FLAG_FIN:
                stream._finish()
            stream.replied.set_result(None)
            async with self._write_lock:
                self.writer.write(self.framer.syn_reply(stream_id, {}))
                await self.writer.drain()
            if self.on_stream is not None:
                result = self.on_stream(stream)
                if asyncio.iscoroutine(result):
                    task = asyncio.get_running_loop().create_task(result)
                    self._handlers.add(task)
                    task.add_done_callback(self._handlers.discard)
        elif kind == SYN_REPLY:
            stream_id = struct.unpack_from(">I", payload, 0)[0] & 0x7FFFFFFF
            self.framer.decompress(payload[4:])  # keeps the decompression context in step
            stream = self.streams.get(stream_id)
            if stream is not None:
                if not stream.replied.done():
                    stream.replied.set_result(None)
                if flags & FLAG_FIN:
                    stream._finish()
        elif kind == HEADERS:
            stream_id = struct.unpack_from(">I", payload, 0)[0] & 0x7FFFFFFF
            self.framer.decompress(payload[4:])
            if flags & FLAG_FIN and stream_id in self.streams:
                self.streams[stream_id]._finish()
        elif kind == RST_STREAM:
            stream_id, _status = struct.unpack_from(">II", payload, 0)
            stream = self.streams.get(stream_id & 0x7FFFFFFF)
            if stream is not None:
                stream.reset = True
                if not stream.replied.done():
                    stream.replied.set_exception(SpdyError(f"stream {stream.id} was reset"))
                stream._finish()
        elif kind == PING:
            (ping_id,) = struct.unpack_from(">I", payload, 0)
            if (ping_id & 1) != (0 if self.server else 1):  # the peer's ping: answer it
                await self._send(self.framer.ping(ping_id))
        elif kind == GOAWAY:
            self.closed.set()
        # SETTINGS, WINDOW_UPDATE: no flow control here (spdystream has none either)

    async def close(self) -> None:
        if not self.closed.is_set():
            with contextlib.suppress(ConnectionError, OSError):
                await self._send(self.framer.goaway(self._last_received))
        self.closed.set()
        with contextlib.suppress(Exception):
            self.writer.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        for task in list(self._handlers):
            task.cancel()


async def raw_upgrade(
    url: str, protocols: list[str], timeout: float = 10.0, method: str = "POST"
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, str]:
    """Connect to an http:// URL and upgrade to SPDY/3.1; returns the raw streams and the
    negotiated X-Stream-Protocol-Version. Used against the runtime's streaming server."""
    parts = urlsplit(url)
    if parts.scheme != "http":
        raise SpdyError(f"only http:// streaming URLs are supported, got {url}")
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    lines = [
        f"{method} {path} HTTP/1.1",
        f"Host: {host}:{port}",
        "Connection: Upgrade",
        "Upgrade: SPDY/3.1",
        "Content-Length: 0",
        *[f"X-Stream-Protocol-Version: {p}" for p in protocols],
        "",
        "",
    ]
    writer.write("\r\n".join(lines).encode())
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
    status_line, *header_lines = head.decode(errors="replace").split("\r\n")
    fields = status_line.split(" ", 2)
    if len(fields) < 2 or fields[1] != "101":
        writer.close()
        raise SpdyError(f"upgrade to SPDY refused: {status_line}")
    negotiated = ""
    for line in header_lines:
        name, _, value = line.partition(":")
        if name.strip().lower() == "x-stream-protocol-version":
            negotiated = value.strip()
    return reader, writer, negotiated
