"""exec, attach and port-forward: websocket clients bridged to the runtime's streaming server.

* exec / attach: the client speaks the channel protocol (`v5|v4|v3|v2.channel.k8s.io`,
  `channel.k8s.io`, or their base64 variants): one byte of channel (0 stdin, 1 stdout,
  2 stderr, 3 error/status, 4 resize; v5 adds 255 = close a channel) then the data. The runtime
  is reached over SPDY (remotecommand v4), one stream per channel, so that a v5 client closing
  stdin really closes the process' stdin (containerd's websocket endpoint has no half-close).
* port-forward, `SPDY/3.1+portforward.k8s.io` (kubectl ≥ 1.30): the websocket carries a SPDY
  connection as raw bytes; it is relayed byte for byte onto an upgraded connection to the
  runtime's port-forward endpoint, which serves the streams itself.
* port-forward, `v4.channel.k8s.io` (the Python client): relayed message for message to the
  runtime's websocket port-forward endpoint (`?port=` per forwarded port).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
from dataclasses import dataclass

import aiohttp
from aiohttp import web

from kubelet.spdy import Session, Stream, raw_upgrade

log = logging.getLogger("kubelet.streaming")

EXEC_PROTOCOLS = (
    "v5.channel.k8s.io", "v4.channel.k8s.io", "v4.base64.channel.k8s.io", "v3.channel.k8s.io",
    "v2.channel.k8s.io", "channel.k8s.io", "base64.channel.k8s.io",
)
TUNNEL_PROTOCOL = "SPDY/3.1+portforward.k8s.io"
PORTFORWARD_WS_PROTOCOLS = ("v4.channel.k8s.io", "v4.base64.channel.k8s.io", "portforward.k8s.io")
RUNTIME_EXEC_PROTOCOLS = ["v4.channel.k8s.io", "v3.channel.k8s.io", "v2.channel.k8s.io", "channel.k8s.io"]
STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255


@dataclass
class StreamOptions:
    stdin: bool = False
    stdout: bool = True
    stderr: bool = True
    tty: bool = False


class _Channels:
    """Encoding of one websocket client's channel frames (raw or base64, by subprotocol)."""

    def __init__(self, ws: web.WebSocketResponse, protocol: str) -> None:
        self.ws = ws
        self.base64 = "base64" in protocol
        self.v5 = protocol.startswith("v5.")
        self.status_json = protocol.startswith(("v4.", "v5."))
        self._lock = asyncio.Lock()

    async def send(self, channel: int, data: bytes) -> None:
        async with self._lock:
            if self.base64:
                await self.ws.send_str(str(channel) + base64.b64encode(data).decode())
            else:
                await self.ws.send_bytes(bytes([channel]) + data)

    def decode(self, msg: aiohttp.WSMessage) -> tuple[int, bytes] | None:
        """(channel, data) of a client frame, or None to drop it.

        As upstream (wsstream), the negotiated subprotocol decides the encoding, not the frame
        type: on a raw protocol a TEXT frame (the Python client's `write_stdin(str)`) is the
        channel byte then the data, as UTF-8; on a base64 protocol the channel is an ASCII digit.
        """
        if msg.type == aiohttp.WSMsgType.BINARY:
            payload = msg.data
        elif msg.type == aiohttp.WSMsgType.TEXT:
            payload = msg.data.encode()
        else:
            return None
        if not payload:
            return None
        if not self.base64:
            return payload[0], payload[1:]
        try:
            return int(payload[:1].decode("ascii")), base64.b64decode(payload[1:])
        except ValueError:  # a bad channel digit or bad base64 (binascii.Error)
            return None


async def _pump_out(stream: Stream | None, channels: _Channels, channel: int) -> None:
    if stream is None:
        return
    while True:
        data = await stream.read()
        if not data:
            return
        await channels.send(channel, data)


async def serve_exec(request: web.Request, runtime_url: str, opts: StreamOptions) -> web.WebSocketResponse:
    """Bridge a websocket exec/attach client to the runtime's SPDY streaming endpoint."""
    ws = web.WebSocketResponse(protocols=EXEC_PROTOCOLS, max_msg_size=0)
    await ws.prepare(request)
    channels = _Channels(ws, ws.ws_protocol or "")
    try:
        reader, writer, _ = await raw_upgrade(runtime_url, RUNTIME_EXEC_PROTOCOLS)
    except Exception as e:
        await _fail(channels, f"error connecting to the container runtime: {e}")
        await ws.close()
        return ws
    session = Session(reader, writer, server=False)
    session.start()
    try:
        error = await session.open_stream({"streamType": "error"})
        stdin = await session.open_stream({"streamType": "stdin"}) if opts.stdin else None
        stdout = await session.open_stream({"streamType": "stdout"}) if opts.stdout else None
        stderr = await session.open_stream({"streamType": "stderr"}) if opts.stderr and not opts.tty else None
        resize = await session.open_stream({"streamType": "resize"}) if opts.tty else None
    except Exception as e:
        await _fail(channels, f"error opening streams to the container runtime: {e}")
        await session.close()
        await ws.close()
        return ws

    async def from_client() -> None:
        async for msg in ws:
            decoded = channels.decode(msg)
            if decoded is None:
                continue
            channel, data = decoded
            if channel == STDIN and stdin is not None and data:
                await stdin.write(data)
            elif channel == RESIZE and resize is not None and data:
                await resize.write(data)
            elif channel == CLOSE and channels.v5 and data[:1] == bytes([STDIN]) and stdin is not None:
                await stdin.close()

    async def status() -> bytes:
        chunks = []
        while True:
            data = await error.read()
            if not data:
                return b"".join(chunks)
            chunks.append(data)

    client = asyncio.create_task(from_client())
    outputs = asyncio.gather(_pump_out(stdout, channels, STDOUT), _pump_out(stderr, channels, STDERR), status())
    try:
        done, _ = await asyncio.wait({client, outputs}, return_when=asyncio.FIRST_COMPLETED)
        if outputs in done:
            result = outputs.result()[2]
            if result:
                await _send_status(channels, result)
    except (ConnectionError, aiohttp.ClientError) as e:
        log.debug("exec stream ended: %s", e)
    finally:
        client.cancel()
        outputs.cancel()
        with contextlib.suppress(BaseException):
            await client
        with contextlib.suppress(BaseException):
            await outputs
        await session.close()
        await ws.close()
    return ws


async def _send_status(channels: _Channels, raw: bytes) -> None:
    """The runtime's v4 Status; older clients get only a failure's message, as text."""
    if channels.status_json:
        await channels.send(ERROR, raw)
        return
    try:
        status = json.loads(raw)
    except ValueError:
        await channels.send(ERROR, raw)
        return
    if status.get("status") != "Success":
        await channels.send(ERROR, (status.get("message") or "error").encode())


async def _fail(channels: _Channels, message: str) -> None:
    with contextlib.suppress(Exception):
        if channels.status_json:
            status = {"metadata": {}, "status": "Failure", "message": message, "reason": "InternalError",
                      "code": 500}
            await channels.send(ERROR, json.dumps(status).encode())
        else:
            await channels.send(ERROR, message.encode())


async def serve_portforward_tunnel(request: web.Request, runtime_url: str) -> web.WebSocketResponse:
    """SPDY-over-websocket (kubectl): relay the raw SPDY bytes to the runtime."""
    ws = web.WebSocketResponse(protocols=(TUNNEL_PROTOCOL,), max_msg_size=0)
    await ws.prepare(request)
    try:
        reader, writer, _ = await raw_upgrade(runtime_url, ["portforward.k8s.io"])
    except Exception as e:
        log.warning("port-forward: connecting to the runtime: %s", e)
        await ws.close(code=aiohttp.WSCloseCode.INTERNAL_ERROR, message=str(e)[:120].encode())
        return ws

    async def to_runtime() -> None:
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.BINARY:
                writer.write(msg.data)
                await writer.drain()

    async def to_client() -> None:
        while True:
            data = await reader.read(64 * 1024)
            if not data:
                return
            await ws.send_bytes(data)

    tasks = [asyncio.create_task(to_runtime()), asyncio.create_task(to_client())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            writer.close()
        await ws.close()
    return ws


async def serve_portforward_websocket(
    request: web.Request, runtime_url: str, ports: list[int], session: aiohttp.ClientSession
) -> web.WebSocketResponse:
    """The channel-protocol port-forward: message for message to the runtime's websocket."""
    ws = web.WebSocketResponse(protocols=PORTFORWARD_WS_PROTOCOLS, max_msg_size=0)
    await ws.prepare(request)
    protocol = ws.ws_protocol or "v4.channel.k8s.io"
    url = runtime_url + ("&" if "?" in runtime_url else "?") + "&".join(f"port={p}" for p in ports)
    url = url.replace("http://", "ws://", 1)
    try:
        upstream = await session.ws_connect(url, protocols=[protocol], max_msg_size=0)
    except aiohttp.ClientError as e:
        await ws.close(code=aiohttp.WSCloseCode.INTERNAL_ERROR, message=str(e)[:120].encode())
        return ws

    async def relay(src, dst) -> None:
        async for msg in src:
            if msg.type == aiohttp.WSMsgType.BINARY:
                await dst.send_bytes(msg.data)
            elif msg.type == aiohttp.WSMsgType.TEXT:
                await dst.send_str(msg.data)

    tasks = [asyncio.create_task(relay(ws, upstream)), asyncio.create_task(relay(upstream, ws))]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await upstream.close()
        await ws.close()
    return ws
