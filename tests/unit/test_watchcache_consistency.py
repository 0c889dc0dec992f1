"""The watch cache against etcd 3.5.1's progress notifications, which may overtake events still
queued for the stream (etcd issue 15220): the cache's own writes are waited for, and a watch from
resourceVersion N never replays the event at N. A scripted store stands in for etcd so that the
overtaking happens every time."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from apiserver.storage import KV, WatchEvent
from apiserver.watchcache import Filter, WatchCache
from tests.conftest import until

PREFIX = "/registry/configmaps/"


def kv(name: str, rev: int, created: int | None = None) -> KV:
    value = orjson.dumps({"metadata": {"name": name, "namespace": "ns"}})
    return KV(f"{PREFIX}ns/{name}".encode(), value, rev, created or rev)


class ScriptedWatch:
    def __init__(self, feed: asyncio.Queue) -> None:
        self.feed = feed
        self.progress_requests = 0

    def request_progress(self) -> None:
        self.progress_requests += 1

    async def __aiter__(self):
        while True:
            item = await self.feed.get()
            if item is None:
                return
            yield item


class ScriptedStore:
    """List answers at revision 10 with no objects; the watch yields what the test feeds it."""

    def __init__(self) -> None:
        self.feed: asyncio.Queue = asyncio.Queue()
        self.watches: list[ScriptedWatch] = []
        self.revision = 10

    async def list(self, prefix, start_key=None, limit=0, revision=0):
        return [], 10, False, 0

    def watch(self, prefix: str, start: int) -> ScriptedWatch:
        w = ScriptedWatch(self.feed)
        self.watches.append(w)
        return w

    async def current_revision(self) -> int:
        return self.revision


@pytest.fixture
async def cache():
    store = ScriptedStore()
    c = WatchCache(store, PREFIX, True, lambda obj: {})  # type: ignore[arg-type]
    c.start()
    await asyncio.wait_for(c.ready.wait(), 2)
    yield c, store
    await store.feed.put(None)
    await c.stop()


async def test_a_consistent_read_waits_for_its_own_write_despite_early_progress(cache) -> None:
    c, store = cache
    c.expect(11)  # the apiserver wrote configmap "a" at revision 11
    store.revision = 11
    await store.feed.put(12)  # progress for revision 12 overtakes the event at 11
    await until(lambda: c.revision == 12)
    reader = asyncio.create_task(c.sync_with_store())
    await asyncio.sleep(0.05)  # what must not happen: give it the time to
    assert c.revision == 12 and not reader.done()  # the revision alone would have let it answer
    assert c.list(Filter()) == []
    await store.feed.put([WatchEvent("PUT", kv("a", 11), None)])
    await asyncio.wait_for(reader, 1)
    assert [e.name for e in c.list(Filter())] == ["a"]


async def test_a_watch_from_an_own_writes_revision_does_not_replay_it(cache) -> None:
    c, store = cache
    c.expect(11)  # created at 11; the client watches from the create's resourceVersion
    await store.feed.put(12)  # early progress: the event at 11 is still to come
    await until(lambda: c.revision == 12)
    registering = asyncio.create_task(c.watch(Filter(), 11, False))
    await store.feed.put([WatchEvent("PUT", kv("a", 11), None)])
    w = await asyncio.wait_for(registering, 1)
    await store.feed.put([WatchEvent("PUT", kv("a", 13, created=11), kv("a", 11))])
    ev = await asyncio.wait_for(w.queue.get(), 1)
    assert (ev.type, ev.revision) == ("MODIFIED", 13)
    assert w.queue.empty()


async def test_no_resource_version_handed_out_passes_an_own_write_still_due(cache) -> None:
    """A list answered while an own write's event is due says a revision before that write, so
    that a watch from it gets the write (a revision from early progress would skip it forever)."""
    c, store = cache
    c.expect(11)
    await store.feed.put(12)
    await until(lambda: c.revision == 12)
    await c.wait_fresh(10)  # a consistent read of an older revision: nothing to wait for
    assert c.safe_revision == 10
    w = await c.watch(Filter(), c.safe_revision, False)
    await store.feed.put([WatchEvent("PUT", kv("a", 11), None)])
    ev = await asyncio.wait_for(w.queue.get(), 1)
    assert (ev.type, ev.revision, ev.entry.name) == ("ADDED", 11, "a")
    assert c.safe_revision == 12  # nothing due any more


async def test_expected_revisions_already_applied_do_not_block(cache) -> None:
    c, store = cache
    await store.feed.put([WatchEvent("PUT", kv("a", 11), None)])
    await until(lambda: c.revision == 11)
    c.expect(11)  # the write's answer came after its event: nothing is due
    store.revision = 11
    await asyncio.wait_for(c.sync_with_store(), 0.2)
