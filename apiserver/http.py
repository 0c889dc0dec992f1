"""Raw ASGI plumbing for the resource API: requests, bodies, responses, streams.

The resource endpoints are on every component's hot path, so they bypass framework
routing and dependency injection (FastAPI still serves discovery and health); this
module is the small amount of HTTP the generic handler needs.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

import orjson
import yaml

from apimachinery import errors

MAX_BODY = 3 * 1024 * 1024  # upstream's limit for a request body


def query_bool(value: str | None) -> bool:
    """A query parameter read as a bool the way upstream's parameter codec does
    (Convert_Slice_string_To_bool): absent, "0" or "false" (any case) is false; anything else,
    even an empty value, is true."""
    return value is not None and value != "0" and value.lower() != "false"

JSON = b"application/json"
Send = Callable[[dict[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[dict[str, Any]]]


class Request:
    __slots__ = ("_body", "_chunks", "_size", "client_cert", "headers", "method", "path", "query", "receive", "scope",
                 "user")

    def __init__(self, scope: dict[str, Any], receive: Receive) -> None:
        self.scope = scope
        self.receive = receive
        self.method: str = scope["method"]
        self.path: str = scope["path"]
        self.query: dict[str, str] = dict(parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True))
        self.headers: dict[bytes, bytes] = dict(scope["headers"])
        self._body: bytes | None = None
        self._chunks: list[bytes] = []  # read so far: a cancelled read goes on where it stopped
        self._size = 0
        self.user: Any = None

    def header(self, name: bytes, default: str = "") -> str:
        v = self.headers.get(name)
        return v.decode("latin-1") if v is not None else default

    @property
    def content_type(self) -> str:
        return self.header(b"content-type").split(";", 1)[0].strip().lower()

    async def body(self) -> bytes:
        if self._body is not None:
            return self._body
        length = self.headers.get(b"content-length")
        if (length is not None and length.isdigit() and int(length) > MAX_BODY) or self._size > MAX_BODY:
            raise errors.too_large()  # (the second: found too large by an earlier read)
        while True:
            msg = await self.receive()
            if msg["type"] == "http.disconnect":
                raise errors.bad_request("client disconnected while sending the body")
            chunk = msg.get("body", b"")
            self._size += len(chunk)
            if self._size > MAX_BODY:
                raise errors.too_large()
            self._chunks.append(chunk)
            if not msg.get("more_body"):
                break
        self._body = b"".join(self._chunks)
        self._chunks = []
        return self._body

    async def disconnected(self) -> None:
        """Return once the client has gone away. The body is read first (and kept for whoever
        serves the request: see `replay`); a body too large to read is left alone."""
        try:
            await self.body()
        except errors.StatusError as e:
            if e.code == 400:  # it went away while sending the body
                return
            await asyncio.Event().wait()  # the handler answers 413; only a cancel ends this
        while (await self.receive())["type"] != "http.disconnect":
            pass

    def replay(self) -> Receive:
        """The receive for another ASGI app serving this request: the body again first if it was
        read here already."""
        if self._body is None:
            return self.receive
        pending = [{"type": "http.request", "body": self._body, "more_body": False}]

        async def receive() -> dict[str, Any]:
            return pending.pop() if pending else await self.receive()

        return receive


def decode_document(body: bytes, content_type: str) -> Any:
    """Decode a JSON or YAML body; malformed input is a 400 naming the problem."""
    if not body.strip():
        raise errors.bad_request("the request body is empty")
    if content_type == "application/vnd.kubernetes.protobuf":  # client-go's typed clients (kubectl >= 1.35)
        from apimachinery import protobuf

        try:
            return protobuf.decode(body)
        except protobuf.ProtobufError as e:
            raise errors.bad_request(f"error decoding the request body as protobuf: {e}") from None
    if content_type in ("application/yaml", "application/apply-patch+yaml", "text/yaml", "application/x-yaml"):
        try:
            docs = list(yaml.safe_load_all(body))
        except yaml.YAMLError as e:
            raise errors.bad_request(f"error converting YAML to JSON: {e}") from None
        except RecursionError:
            raise errors.bad_request("error converting YAML to JSON: the document is nested too deeply") from None
        if len(docs) != 1:
            raise errors.bad_request("the request body must contain exactly one YAML document")
        # aliases let a few bytes of YAML stand for an exponential tree ("billion laughs"): a
        # document may expand to a few nodes per byte of input, as go-yaml limits aliasing
        budget = [2 * len(body) + 10_000]
        return _yaml_to_json_compatible(docs[0], budget, 0)
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise errors.bad_request(f"error decoding the request body as JSON: {e}") from None


MAX_YAML_DEPTH = 500


def _yaml_to_json_compatible(doc: Any, budget: list[int], depth: int) -> Any:
    """YAML allows non-string keys and timestamps; JSON does not: normalise as upstream's yaml.ToJSON.

    `budget` is how many more nodes the document may expand to (aliases are copied)."""
    budget[0] -= 1
    if budget[0] < 0:
        raise errors.bad_request("error converting YAML to JSON: the document contains excessive aliasing")
    if depth > MAX_YAML_DEPTH:
        raise errors.bad_request("error converting YAML to JSON: the document is nested too deeply")
    if isinstance(doc, dict):
        return {str(k) if not isinstance(k, bool) else str(k).lower(): _yaml_to_json_compatible(v, budget, depth + 1)
                for k, v in doc.items()}
    if isinstance(doc, list):
        return [_yaml_to_json_compatible(v, budget, depth + 1) for v in doc]
    if isinstance(doc, (str, int, float, bool)) or doc is None:
        return doc
    return str(doc)


class Response:
    __slots__ = ("body", "content_type", "extra_headers", "status")

    def __init__(self, status: int, body: bytes, content_type: bytes = JSON, headers: list | None = None) -> None:
        self.status = status
        self.body = body
        self.content_type = content_type
        self.extra_headers = headers or []

    async def __call__(self, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": self.status,
                "headers": [
                    (b"content-type", self.content_type),
                    (b"content-length", str(len(self.body)).encode()),
                    (b"cache-control", b"no-cache, private"),
                    *self.extra_headers,
                ],
            }
        )
        await send({"type": "http.response.body", "body": self.body})


def json_response(obj: Any, status: int = 200, headers: list | None = None) -> Response:
    return Response(status, orjson.dumps(obj), JSON, headers)


def raw_json(data: bytes, status: int = 200, headers: list | None = None) -> Response:
    return Response(status, data, JSON, headers)


def status_response(e: errors.StatusError) -> Response:
    headers = []
    if e.retry_after is not None:
        headers.append((b"retry-after", str(e.retry_after).encode()))
    return Response(e.code, orjson.dumps(e.status()), JSON, headers)


class StreamResponse:
    """A chunked response fed by an async iterator; stops when the client goes away."""

    def __init__(self, chunks: AsyncIterator[bytes], receive: Receive, content_type: bytes = JSON) -> None:
        self.chunks = chunks
        self.receive = receive
        self.content_type = content_type
        self.status = 200
        self.extra_headers: list[tuple[bytes, bytes]] = []

    async def __call__(self, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": self.status,
                "headers": [
                    (b"content-type", self.content_type),
                    (b"cache-control", b"no-cache, private"),
                    (b"transfer-encoding", b"chunked"),
                    *self.extra_headers,
                ],
            }
        )
        disconnected = asyncio.Event()

        async def wait_disconnect() -> None:
            while True:
                msg = await self.receive()
                if msg["type"] == "http.disconnect":
                    disconnected.set()
                    return

        watcher = asyncio.create_task(wait_disconnect())
        pump = asyncio.create_task(self._pump(send))
        try:
            await asyncio.wait({watcher, pump}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in (watcher, pump):
                t.cancel()
            for t in (watcher, pump):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t
            aclose = getattr(self.chunks, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()
        if not disconnected.is_set():
            with contextlib.suppress(Exception):
                await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _pump(self, send: Send) -> None:
        async for chunk in self.chunks:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
