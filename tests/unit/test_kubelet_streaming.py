"""kubelet.streaming: decoding the exec/attach channel frames of each subprotocol, and the official
Python client's stdin (`write_stdin(str)`, a TEXT frame) reaching the runtime through serve_exec."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import aiohttp
import pytest
from aiohttp import web

from kubelet.spdy import Session, Stream
from kubelet.streaming import CLOSE, RESIZE, STDIN, StreamOptions, _Channels, serve_exec

RAW = ("v5.channel.k8s.io", "v4.channel.k8s.io", "v3.channel.k8s.io", "v2.channel.k8s.io", "channel.k8s.io")
BASE64 = ("v4.base64.channel.k8s.io", "base64.channel.k8s.io")


def _decode(protocol: str, kind: aiohttp.WSMsgType, data: str | bytes):
    return _Channels(None, protocol).decode(aiohttp.WSMessage(kind, data, None))  # type: ignore[arg-type]


@pytest.mark.parametrize("protocol", RAW)
def test_text_frames_on_raw_protocols_carry_the_channel_byte(protocol):
    # kubernetes.stream's write_stdin("abc"): chr(0) + "abc" sent as a TEXT frame
    assert _decode(protocol, aiohttp.WSMsgType.TEXT, "\x00abc") == (STDIN, b"abc")
    assert _decode(protocol, aiohttp.WSMsgType.TEXT, "\x00h\u00e9") == (STDIN, "h\u00e9".encode())
    assert _decode(protocol, aiohttp.WSMsgType.TEXT, '\x04{"Width":80,"Height":24}') == (
        RESIZE, b'{"Width":80,"Height":24}')
    assert _decode(protocol, aiohttp.WSMsgType.BINARY, b"\x00abc") == (STDIN, b"abc")
    assert _decode(protocol, aiohttp.WSMsgType.TEXT, "") is None


def test_v5_close_as_a_binary_frame():
    assert _decode("v5.channel.k8s.io", aiohttp.WSMsgType.BINARY, bytes([CLOSE, STDIN])) == (CLOSE, bytes([STDIN]))


@pytest.mark.parametrize("protocol", BASE64)
def test_base64_protocols_still_decode_base64(protocol):
    assert _decode(protocol, aiohttp.WSMsgType.TEXT, "0YWJj") == (STDIN, b"abc")
    assert _decode(protocol, aiohttp.WSMsgType.TEXT, "4eyJXaWR0aCI6ODB9") == (RESIZE, b'{"Width":80}')
    # a bad channel digit, or bad base64, is dropped as before
    assert _decode(protocol, aiohttp.WSMsgType.TEXT, "xYWJj") is None
    assert _decode(protocol, aiohttp.WSMsgType.TEXT, "\x00abc") is None
    assert _decode(protocol, aiohttp.WSMsgType.TEXT, "0YWJjZ") is None
    assert _decode(protocol, aiohttp.WSMsgType.TEXT, "") is None


def test_other_message_types_are_ignored():
    assert _decode("v5.channel.k8s.io", aiohttp.WSMsgType.PING, b"") is None


# -- end to end: the official Python client -> serve_exec -> a fake SPDY runtime -------------------

SUCCESS = json.dumps({"metadata": {}, "status": "Success"}).encode()


async def _fake_runtime(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, want: int,
                        stdin_log: list[bytes]) -> None:
    """The runtime's streaming server for `head -c <want>`: echo stdin to stdout, then Success."""
    await reader.readuntil(b"\r\n\r\n")
    writer.write(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n"
                 b"X-Stream-Protocol-Version: v4.channel.k8s.io\r\n\r\n")
    await writer.drain()
    streams: dict[str, Stream] = {}
    ready = asyncio.Event()

    def on_stream(stream: Stream) -> None:
        streams[stream.header("streamType")] = stream
        if {"error", "stdin", "stdout", "stderr"} <= streams.keys():
            ready.set()

    session = Session(reader, writer, server=True, on_stream=on_stream)
    session.start()
    try:
        await asyncio.wait_for(ready.wait(), 10)
        got = b""
        while len(got) < want:
            chunk = await streams["stdin"].read()
            if not chunk:
                break
            stdin_log.append(chunk)
            got += chunk
        await streams["stdout"].write(got[:want])
        for name in ("stdout", "stderr"):
            await streams[name].close()
        await streams["error"].write(SUCCESS)
        await streams["error"].close()
        await session.closed.wait()  # the kubelet hangs up once it has the status
    finally:
        await session.close()


@contextmanager
def _kubelet(want: int) -> Iterator[tuple[int, list[bytes]]]:
    """serve_exec on /api/v1/namespaces/{ns}/pods/{pod}/exec, in a thread of its own."""
    stdin_log: list[bytes] = []
    handlers: set[asyncio.Task] = set()
    started: dict = {}
    ready = threading.Event()
    loop = asyncio.new_event_loop()

    async def main() -> None:
        def on_connection(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            handlers.add(asyncio.ensure_future(_fake_runtime(r, w, want, stdin_log)))

        runtime = await asyncio.start_server(on_connection, "127.0.0.1", 0)
        runtime_url = f"http://127.0.0.1:{runtime.sockets[0].getsockname()[1]}/exec/token"

        async def handler(request: web.Request) -> web.StreamResponse:
            return await serve_exec(request, runtime_url, StreamOptions(stdin=True))

        app = web.Application()
        app.router.add_get("/api/v1/namespaces/{ns}/pods/{pod}/exec", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        started.update(port=runner.addresses[0][1], runner=runner, runtime=runtime)
        ready.set()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(main())
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        yield started["port"], stdin_log
    finally:
        async def stop() -> None:
            await started["runner"].cleanup()
            started["runtime"].close()
            for task in handlers:
                task.cancel()
            await asyncio.gather(*handlers, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


@pytest.mark.parametrize("protocol", ["v5.channel.k8s.io", "v4.channel.k8s.io"])
def test_python_client_write_stdin_str_reaches_the_runtime(protocol):
    kubernetes = pytest.importorskip("kubernetes")
    from kubernetes.stream import stream

    with _kubelet(want=16) as (port, stdin_log):
        conf = kubernetes.client.Configuration()
        conf.host = f"http://127.0.0.1:{port}"
        api = kubernetes.client.CoreV1Api(kubernetes.client.ApiClient(conf))
        resp = stream(api.connect_get_namespaced_pod_exec, "p", "default", command=["head", "-c", "16"],
                      stdin=True, stdout=True, stderr=True, tty=False, _preload_content=False,
                      _headers={"sec-websocket-protocol": protocol})
        try:
            assert resp.subprotocol == protocol
            resp.write_stdin("abcdefgh")  # a str: a TEXT frame "\x00abcdefgh"
            resp.write_stdin(b"ijklmnop")  # bytes: a BINARY frame
            out = ""
            deadline = time.monotonic() + 10
            while resp.is_open() and time.monotonic() < deadline:
                resp.update(timeout=1)
                out += resp.read_stdout(timeout=0) if resp.peek_stdout() else ""
            out += resp.read_stdout(timeout=0) if resp.peek_stdout() else ""
        finally:
            resp.close()
        assert b"".join(stdin_log) == b"abcdefghijklmnop"
        assert out == "abcdefghijklmnop"
