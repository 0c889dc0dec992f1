"""client.informer against a scripted fake resource: resume, dedup, re-list diffing, late handlers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from client.errors import APIConnectionError, ApiError
from client.informer import Informer, SharedInformerFactory
from client.store import DeletedFinalStateUnknown, deleted_object, index_by_node_name
from tests.conftest import until

END = object()


def obj(name: str, rv: int, node: str = "") -> dict:
    return {"kind": "Pod", "apiVersion": "v1", "metadata": {"name": name, "namespace": "d", "resourceVersion": str(rv)},
            "spec": {"nodeName": node} if node else {}}


def ev(t: str, o: dict) -> dict:
    return {"type": t, "object": o}


def bookmark(rv: int) -> dict:
    return {"type": "BOOKMARK", "object": {"kind": "Pod", "apiVersion": "v1", "metadata": {"resourceVersion": str(rv)}}}


class FakeResource:
    """list_all returns scripted lists; each watch() call takes the next scripted stream."""

    def __init__(self) -> None:
        self.lists: list[Any] = []
        self.list_calls: list[str | None] = []
        self.watch_calls: list[str | None] = []
        self.streams: asyncio.Queue[asyncio.Queue[Any]] = asyncio.Queue()

    async def list_all(self, namespace, label_selector, field_selector, page_size, resource_version) -> dict:
        self.list_calls.append(resource_version)
        result = self.lists.pop(0)
        if isinstance(result, Exception):
            raise result
        items, rv = result
        return {"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": str(rv)},
                "items": [dict(i) for i in items]}

    async def watch(self, namespace, resource_version, label_selector, field_selector, allow_bookmarks=True,
                    timeout_seconds=None) -> AsyncIterator[dict]:
        self.watch_calls.append(resource_version)
        stream = await self.streams.get()
        while True:
            item = await stream.get()
            if item is END:
                return
            if isinstance(item, Exception):
                raise item
            yield item

    def stream(self, *items: Any) -> asyncio.Queue[Any]:
        q: asyncio.Queue[Any] = asyncio.Queue()
        for i in items:
            q.put_nowait(i)
        self.streams.put_nowait(q)
        return q


class FakeClient:
    def __init__(self) -> None:
        self.fake = FakeResource()

    def resource(self, api_version: str, plural: str) -> FakeResource:
        return self.fake


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def add(self, o: dict) -> None:
        self.calls.append(("add", o["metadata"]["name"], o["metadata"]["resourceVersion"]))

    def update(self, old: dict, new: dict) -> None:
        self.calls.append(("update", new["metadata"]["name"], old["metadata"]["resourceVersion"],
                           new["metadata"]["resourceVersion"]))

    def delete(self, o: dict | DeletedFinalStateUnknown) -> None:
        tomb = isinstance(o, DeletedFinalStateUnknown)
        self.calls.append(("delete" + ("-tombstone" if tomb else ""), deleted_object(o)["metadata"]["name"]))


def informer(client: FakeClient) -> Informer:
    return Informer(client, "v1", "pods", backoff_initial=0.001, backoff_max=0.01)  # type: ignore[arg-type]


async def test_list_watch_resume_dedup_and_relist_diff() -> None:
    client = FakeClient()
    fake = client.fake
    fake.lists.append(([obj("a", 5), obj("stale", 6)], 10))
    inf = informer(client)
    rec = Recorder()
    inf.add_handler(rec.add, rec.update, rec.delete)
    fake.stream(ev("MODIFIED", obj("a", 11)), ev("MODIFIED", obj("a", 11)), ev("ADDED", obj("b", 12)),
                     bookmark(15), END)
    inf.start()
    try:
        assert await inf.wait_synced(2)
        assert fake.list_calls == ["0"]  # the first list comes from the watch cache
        await until(lambda: len(fake.watch_calls) == 2)
        assert fake.watch_calls == ["10", "15"]  # resumed from the bookmark after a normal end
        # a broken connection resumes the watch from the last event, without a list...
        fake.stream(ev("DELETED", obj("a", 16)), APIConnectionError("cut"))
        # ...and 410 Expired re-lists (consistently), then watches from the new list
        s3 = fake.stream(ev("MODIFIED", obj("b", 17)), ApiError(410, "Expired", "too old resource version: 17"))
        fake.lists.append(([obj("b", 17), obj("c", 20)], 21))
        fake.stream()
        await until(lambda: len(fake.watch_calls) == 4)
        assert fake.watch_calls == ["10", "15", "16", "21"]
        assert fake.list_calls == ["0", ""]  # after 410: a consistent re-list
        assert s3.empty()
        await until(lambda: len(rec.calls) == 8)
        assert rec.calls == [
            ("add", "a", "5"),
            ("add", "stale", "6"),
            ("update", "a", "5", "11"),  # the duplicate of rv 11 is not delivered
            ("add", "b", "12"),
            ("delete", "a"),
            ("update", "b", "12", "17"),
            ("add", "c", "20"),  # b unchanged in the re-list: no call
            ("delete-tombstone", "stale"),  # missing from the re-list: a tombstone
        ]
        assert sorted(inf.store.keys()) == ["d/b", "d/c"]
        assert inf.last_resource_version == "21" and inf.list_count == 2
    finally:
        await inf.stop()


async def test_late_handler_gets_existing_objects_first() -> None:
    client = FakeClient()
    client.fake.lists.append(([obj("a", 1), obj("b", 2)], 2))
    live = client.fake.stream()
    inf = informer(client)
    inf.start()
    try:
        await inf.wait_synced(2)
        rec = Recorder()
        reg = inf.add_handler(rec.add, rec.update, rec.delete)
        await asyncio.wait_for(reg.wait_synced(), 2)
        live.put_nowait(ev("ADDED", obj("c", 3)))
        await until(lambda: len(rec.calls) == 3)
        assert sorted(rec.calls[:2]) == [("add", "a", "1"), ("add", "b", "2")] and rec.calls[2] == ("add", "c", "3")
    finally:
        await inf.stop()


async def test_failing_and_async_handlers_do_not_stop_delivery() -> None:
    client = FakeClient()
    client.fake.lists.append(([], 1))
    live = client.fake.stream()
    inf = informer(client)
    seen: list[str] = []

    def broken(o: dict) -> None:
        raise RuntimeError("handler bug")

    async def slow(o: dict) -> None:
        await asyncio.sleep(0.001)
        seen.append(o["metadata"]["name"])

    inf.add_handler(on_add=broken)
    inf.add_handler(on_add=slow)
    inf.start()
    try:
        await inf.wait_synced(2)
        for i in range(5):
            live.put_nowait(ev("ADDED", obj(f"p{i}", 2 + i)))
        await until(lambda: len(seen) == 5)
        assert seen == [f"p{i}" for i in range(5)]  # in order
    finally:
        await inf.stop()


async def test_list_errors_are_retried_and_indexes_kept() -> None:
    client = FakeClient()
    client.fake.lists += [APIConnectionError("down"), ApiError(503, "ServiceUnavailable", "x"),
                          ([obj("a", 1, "n1"), obj("b", 2, "n2")], 2)]
    live = client.fake.stream()
    inf = informer(client)
    inf.add_index("node", index_by_node_name)
    inf.start()
    try:
        assert await inf.wait_synced(2)
        assert len(client.fake.list_calls) == 3
        live.put_nowait(ev("MODIFIED", obj("a", 3, "n2")))
        await until(lambda: inf.last_resource_version == "3")
        assert [o["metadata"]["name"] for o in inf.store.by_index("node", "n2")] == ["a", "b"]
    finally:
        await inf.stop()


async def test_factory_shares_informers() -> None:
    client = FakeClient()
    f = SharedInformerFactory(client)  # type: ignore[arg-type]
    a = f.informer("v1", "pods", label_selector={"app": "x"})
    assert f.informer("v1", "pods", label_selector="app=x") is a
    assert f.informer("v1", "pods") is not a
    assert f.informer("v1", "pods", namespace="ns") is not f.informer("v1", "pods")
    assert len(f.informers) == 3
    assert await f.wait_for_cache_sync(0.01)  # nothing started yet: nothing to wait for


@pytest.mark.parametrize("period", [0.01])
async def test_resync_redelivers_as_updates(period: float) -> None:
    client = FakeClient()
    client.fake.lists.append(([obj("a", 1)], 1))
    client.fake.stream()
    inf = Informer(client, "v1", "pods", resync_period=period)  # type: ignore[arg-type]
    rec = Recorder()
    inf.add_handler(rec.add, rec.update)
    inf.start()
    try:
        await until(lambda: ("update", "a", "1", "1") in rec.calls)
        assert rec.calls[0] == ("add", "a", "1")
    finally:
        await inf.stop()
