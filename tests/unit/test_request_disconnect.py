"""apiserver.http.Request: noticing that a client went away (a queued request is dropped then)
without losing its body, which is replayed to whoever serves the request."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from apimachinery import errors
from apiserver.http import MAX_BODY, Request


def request(messages: list[dict[str, Any]], headers: list[tuple[bytes, bytes]] | None = None) -> Request:
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    for m in messages:
        inbox.put_nowait(m)
    scope = {"type": "http", "method": "POST", "path": "/api/v1/namespaces/ns/configmaps", "query_string": b"",
             "headers": headers or []}
    req = Request(scope, inbox.get)
    req.scope["inbox"] = inbox
    return req


def body(chunk: bytes, more: bool) -> dict[str, Any]:
    return {"type": "http.request", "body": chunk, "more_body": more}


async def test_disconnected_reads_the_body_first_and_keeps_it() -> None:
    req = request([body(b'{"a":', True), body(b" 1}", False)])
    watch = asyncio.create_task(req.disconnected())
    await asyncio.sleep(0.01)
    assert not watch.done()  # body read, the client is still there
    req.scope["inbox"].put_nowait({"type": "http.disconnect"})
    await asyncio.wait_for(watch, 1)
    assert await req.body() == b'{"a": 1}'


async def test_a_cancelled_watch_loses_no_part_of_the_body() -> None:
    req = request([body(b"first,", True)])
    watch = asyncio.create_task(req.disconnected())
    await asyncio.sleep(0.01)  # the first chunk is read, the watch waits for the next one
    watch.cancel()
    with pytest.raises(asyncio.CancelledError):
        await watch
    req.scope["inbox"].put_nowait(body(b"second", False))
    assert await req.body() == b"first,second"


async def test_replay_gives_another_app_the_body_that_was_read_here() -> None:
    req = request([body(b"payload", False)])
    assert req.replay() == req.receive  # nothing read yet: the app reads the client itself
    await req.body()
    receive = req.replay()
    assert await receive() == body(b"payload", False)
    req.scope["inbox"].put_nowait({"type": "http.disconnect"})
    assert await receive() == {"type": "http.disconnect"}


async def test_a_client_gone_while_sending_the_body_counts_as_gone() -> None:
    req = request([body(b"part", True), {"type": "http.disconnect"}])
    await asyncio.wait_for(req.disconnected(), 1)


async def test_a_body_too_large_is_left_to_the_handler() -> None:
    req = request([], headers=[(b"content-length", str(MAX_BODY + 1).encode())])
    watch = asyncio.create_task(req.disconnected())
    await asyncio.sleep(0.01)
    assert not watch.done()  # no reading: only a cancel ends the watch
    watch.cancel()
    with pytest.raises(asyncio.CancelledError):
        await watch
    with pytest.raises(errors.StatusError) as e:
        await req.body()
    assert e.value.code == 413


async def test_a_chunked_body_found_too_large_while_queued_is_a_413_for_the_handler() -> None:
    half = b"x" * (MAX_BODY // 2 + 1)
    req = request([body(half, True), body(half, False)])
    watch = asyncio.create_task(req.disconnected())
    await asyncio.sleep(0.01)
    watch.cancel()
    with pytest.raises(asyncio.CancelledError):
        await watch
    with pytest.raises(errors.StatusError) as e:
        await asyncio.wait_for(req.body(), 1)
    assert e.value.code == 413
