"""APIClient against a scripted local HTTP server: retries, error decoding, watch streaming, tokens."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import orjson
import pytest
from aiohttp import web

from client import APIClient, APIConnectionError, ApiError, ClientConfig, FileToken, is_gone, is_not_found
from client.rest import encode_params

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class FakeServer:
    """One route table, a request log; handlers are swapped per test."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        self.handler: Handler | None = None
        self.url = ""

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.requests.append((request.method, request.path_qs, dict(request.headers), body))
        assert self.handler is not None
        return await self.handler(request)


@pytest.fixture
async def server() -> AsyncIterator[FakeServer]:
    fake = FakeServer()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", fake._dispatch)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    fake.url = f"http://127.0.0.1:{port}"
    try:
        yield fake
    finally:
        await runner.cleanup()


def status(code: int, reason: str, message: str = "m", headers: dict | None = None) -> web.Response:
    body = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code, "reason": reason, "message": message}
    return web.Response(status=code, body=orjson.dumps(body), content_type="application/json", headers=headers)


def ok(obj: dict, code: int = 200) -> web.Response:
    return web.Response(status=code, body=orjson.dumps(obj), content_type="application/json")


def scripted(*responses: Callable[[], web.StreamResponse]) -> Handler:
    it = iter(responses)

    async def handler(_request: web.Request) -> web.StreamResponse:
        return next(it)()

    return handler


def client(server: FakeServer, **kw) -> APIClient:
    return APIClient(ClientConfig(server=server.url, qps=0, **kw))


def test_encode_params() -> None:
    assert encode_params(None) == ""
    assert encode_params({"a": None}) == ""
    assert encode_params({"watch": True, "x": False, "limit": 5, "labelSelector": "a in (b,c)"}) == (
        "?watch=true&x=false&limit=5&labelSelector=a%20in%20%28b%2Cc%29"
    )


async def test_429_is_retried_for_any_verb_after_retry_after(server: FakeServer) -> None:
    server.handler = scripted(lambda: status(429, "TooManyRequests", headers={"Retry-After": "0"}),
                              lambda: ok({"metadata": {"name": "x"}}, 201))
    async with client(server) as api:
        out = await api.request("POST", "/api/v1/namespaces/d/configmaps", body={"metadata": {"name": "x"}})
    assert out["metadata"]["name"] == "x"
    assert [r[0] for r in server.requests] == ["POST", "POST"]
    assert server.requests[0][3] == server.requests[1][3] == b'{"metadata":{"name":"x"}}'
    assert server.requests[0][2]["Content-Type"] == "application/json"


async def test_5xx_retried_only_for_idempotent_verbs(server: FakeServer) -> None:
    server.handler = scripted(lambda: status(503, "ServiceUnavailable"), lambda: status(500, "InternalError"),
                              lambda: ok({"ok": True}))
    async with client(server) as api:
        assert await api.request("GET", "/x") == {"ok": True}
        assert len(server.requests) == 3
        server.requests.clear()
        server.handler = scripted(lambda: status(500, "InternalError", "boom"), lambda: ok({}))
        with pytest.raises(ApiError) as e:
            await api.request("POST", "/x", body={})
        assert e.value.code == 500 and e.value.reason == "InternalError" and e.value.message == "boom"
        assert len(server.requests) == 1  # a POST may have been applied: not repeated


async def test_retries_are_bounded(server: FakeServer) -> None:
    server.handler = scripted(*[lambda: status(503, "ServiceUnavailable")] * 10)
    async with client(server, max_retries=2) as api:
        with pytest.raises(ApiError) as e:
            await api.request("GET", "/x")
    assert e.value.code == 503 and len(server.requests) == 3


async def test_error_without_status_body(server: FakeServer) -> None:
    server.handler = scripted(lambda: web.Response(status=404, text="404 page not found"))
    async with client(server) as api:
        with pytest.raises(ApiError) as e:
            await api.request("GET", "/nope")
    assert is_not_found(e.value) and e.value.reason == "NotFound" and "page not found" in e.value.message
    assert e.value.path == "/nope"


async def test_broken_connection_on_post_not_retried_but_get_is(server: FakeServer) -> None:
    async def drop(request: web.Request) -> web.StreamResponse:
        assert request.transport is not None
        request.transport.close()  # no answer at all
        return web.Response()

    server.handler = drop
    async with client(server, max_retries=3) as api:
        with pytest.raises(APIConnectionError):
            await api.request("POST", "/x", body={})
        assert len(server.requests) == 1
        server.requests.clear()
        calls = iter([drop, scripted(lambda: ok({"fine": 1}))])

        async def first_drop_then_ok(request: web.Request) -> web.StreamResponse:
            return await next(calls)(request)

        server.handler = first_drop_then_ok
        assert await api.request("GET", "/x") == {"fine": 1}
        assert len(server.requests) == 2


async def test_headers_user_agent_and_rotating_token(server: FakeServer, tmp_path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("first\n")
    now = [0.0]
    server.handler = scripted(*[lambda: ok({})] * 3)
    cfg = ClientConfig(server=server.url, qps=0, token_source=FileToken(token_file, refresh=60, clock=lambda: now[0]),
                       user_agent="tester/1")
    async with APIClient(cfg) as api:
        await api.request("GET", "/a")
        token_file.write_text("second\n")
        await api.request("GET", "/a")  # within the refresh period: still the cached token
        now[0] = 61.0
        await api.request("GET", "/a")
    auths = [r[2]["Authorization"] for r in server.requests]
    assert auths == ["Bearer first", "Bearer first", "Bearer second"]
    assert server.requests[0][2]["User-Agent"] == "tester/1"
    assert server.requests[0][2]["Accept"] == "application/json"


def event_line(etype: str, name: str, rv: int, pad: int = 0) -> bytes:
    obj = {"kind": "ConfigMap", "apiVersion": "v1",
           "metadata": {"name": name, "namespace": "d", "resourceVersion": str(rv)}, "data": {"x": "y" * pad}}
    return orjson.dumps({"type": etype, "object": obj}) + b"\n"


async def test_stream_watch_reassembles_lines_and_raises_error_event(server: FakeServer) -> None:
    big = event_line("MODIFIED", "big", 3, pad=300_000)  # larger than any stream reader's line limit
    payload = (
        event_line("ADDED", "a", 1)
        + orjson.dumps({"type": "BOOKMARK", "object": {"kind": "ConfigMap", "apiVersion": "v1",
                                                        "metadata": {"resourceVersion": "2"}}}) + b"\n"
        + big
        + orjson.dumps({"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                                     "code": 410, "reason": "Expired",
                                                     "message": "too old resource version: 1"}}) + b"\n"
    )
    cuts = [5, 70, 71, 200, 65_000, 300_100, len(payload)]

    async def stream(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        start = 0
        for cut in cuts:
            await resp.write(payload[start:cut])
            await asyncio.sleep(0)
            start = cut
        await resp.write_eof()
        return resp

    server.handler = stream
    got = []
    async with client(server) as api:
        with pytest.raises(ApiError) as e:
            async with contextlib.aclosing(api.stream_watch("/api/v1/configmaps", {"resourceVersion": "0"})) as events:
                async for ev in events:
                    got.append((ev["type"], ev["object"]["metadata"].get("name"), ev["object"]["metadata"]["resourceVersion"]))
    assert got == [("ADDED", "a", "1"), ("BOOKMARK", None, "2"), ("MODIFIED", "big", "3")]
    assert is_gone(e.value) and e.value.reason == "Expired"
    assert server.requests[0][1] == "/api/v1/configmaps?resourceVersion=0&watch=true"


async def test_stream_watch_http_error_and_normal_end(server: FakeServer) -> None:
    server.handler = scripted(lambda: status(410, "Expired"))
    async with client(server) as api:
        with pytest.raises(ApiError) as e:
            async for _ in api.stream_watch("/api/v1/pods"):
                pass
        assert is_gone(e.value)

        server.handler = scripted(lambda: web.Response(body=event_line("ADDED", "a", 5), content_type="application/json"))
        events = [ev async for ev in api.stream_watch("/api/v1/pods")]
        assert [ev["object"]["metadata"]["name"] for ev in events] == ["a"]


async def test_stream_cut_mid_event_is_a_connection_error(server: FakeServer) -> None:
    async def cut(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        await resp.write(event_line("ADDED", "a", 1) + b'{"type":"ADDED","obj')
        assert request.transport is not None
        request.transport.close()
        return resp

    server.handler = cut
    got = []
    async with client(server) as api:
        with pytest.raises(APIConnectionError):
            async for ev in api.stream_watch("/api/v1/pods"):
                got.append(ev["object"]["metadata"]["name"])
    assert got == ["a"]


async def test_client_side_rate_limit(server: FakeServer) -> None:
    server.handler = scripted(*[lambda: ok({})] * 6)
    loop = asyncio.get_running_loop()
    async with APIClient(ClientConfig(server=server.url, qps=20, burst=2)) as api:
        start = loop.time()
        await asyncio.gather(*(api.request("GET", "/x") for _ in range(6)))
        elapsed = loop.time() - start
    # 2 from the burst, then 4 more at 20/s: at least 0.2 s
    assert elapsed >= 0.19


async def test_timeout_is_not_repeated(server: FakeServer) -> None:
    release = asyncio.Event()

    async def slow(_request: web.Request) -> web.StreamResponse:
        await release.wait()
        return ok({})

    server.handler = slow
    try:
        async with client(server, timeout=0.2) as api:
            with pytest.raises(APIConnectionError, match="timed out"):
                await api.request("GET", "/slow")
    finally:
        release.set()
    assert len(server.requests) == 1


async def test_idle_connections_are_kept_for_the_configured_time(server: FakeServer) -> None:
    peers: list[tuple[str, int]] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        peers.append(request.transport.get_extra_info("peername"))  # type: ignore[union-attr]
        return ok({"kind": "Status"})

    server.handler = handler
    async with client(server) as kept, client(server, idle_connection_timeout=0.1) as dropped:
        for api in (kept, dropped):
            await api.request("GET", "/version")
        await asyncio.sleep(0.4)  # idle: past the short timeout, well inside the default 90 s
        for api in (kept, dropped):
            await api.request("GET", "/version")
    assert kept.config.idle_connection_timeout == 90.0
    assert peers[0] == peers[2]  # the default keeps the connection across the pause
    assert peers[1] != peers[3]  # a 0.1 s idle timeout closed it: a new connection (new port)
