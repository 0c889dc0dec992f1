"""Informer against a real apiserver: events, surviving an apiserver restart, re-list after 410."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import orjson
import pytest

from apimachinery.meta import new_uid, now
from client import (
    APIClient,
    DeletedFinalStateUnknown,
    Informer,
    SharedInformerFactory,
    deleted_object,
    from_kubeconfig,
)
from tests.conftest import ControlPlane, until

# Informers here watch only objects with this label: other objects (kube-root-ca.crt, ...)
# may appear in the namespace at any time.
OURS = {"test": "client-informer"}


def cm(name: str, v: str = "0", labels: dict | None = None) -> dict:
    meta: dict = {"name": name, "labels": labels if labels is not None else dict(OURS)}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"v": v}}


class Calls:
    """Handler calls as (kind, name, data.v), tombstones marked."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []

    def add(self, o: dict) -> None:
        self.calls.append(("add", o["metadata"]["name"], o["data"]["v"]))

    def update(self, old: dict, new: dict) -> None:
        self.calls.append(("update", new["metadata"]["name"], f"{old['data']['v']}->{new['data']['v']}"))

    def delete(self, o: dict | DeletedFinalStateUnknown) -> None:
        kind = "tombstone" if isinstance(o, DeletedFinalStateUnknown) else "delete"
        self.calls.append((kind, deleted_object(o)["metadata"]["name"], deleted_object(o)["data"]["v"]))


@pytest.fixture
async def kube(control_plane: ControlPlane) -> AsyncIterator[APIClient]:
    async with APIClient(from_kubeconfig(control_plane.kubeconfig, qps=0)) as api:
        yield api


async def test_informer_sees_adds_updates_deletes(kube: APIClient, namespace: str) -> None:
    cms = kube.resource("v1", "configmaps")
    await cms.create(cm("pre", "1"), namespace)
    factory = SharedInformerFactory(kube, namespace=namespace)
    inf = factory.informer("v1", "configmaps", label_selector=OURS)
    calls = Calls()
    inf.add_handler(calls.add, calls.update, calls.delete)
    factory.start()
    try:
        assert await factory.wait_for_cache_sync(10)
        await cms.create(cm("a", "1"), namespace)
        await cms.patch("a", {"data": {"v": "2"}}, namespace)
        await cms.create(cm("b", "1"), namespace)
        await cms.delete("pre", namespace)
        await until(lambda: len(calls.calls) >= 5, 10, "5 handler calls")
        await asyncio.sleep(0)
        assert calls.calls == [("add", "pre", "1"), ("add", "a", "1"), ("update", "a", "1->2"), ("add", "b", "1"),
                               ("delete", "pre", "1")]
        assert sorted(inf.store.keys()) == [f"{namespace}/a", f"{namespace}/b"]
        assert [o["metadata"]["name"] for o in inf.store.by_index("namespace", namespace)] == ["a", "b"]
    finally:
        await factory.stop()


async def test_label_selector_informer(kube: APIClient, namespace: str) -> None:
    cms = kube.resource("v1", "configmaps")
    inf = Informer(kube, "v1", "configmaps", namespace, label_selector={"pick": "yes"})
    calls = Calls()
    inf.add_handler(calls.add, calls.update, calls.delete)
    inf.start()
    try:
        assert await inf.wait_synced(10)
        await cms.create(cm("x", "1", {"pick": "no"}), namespace)
        await cms.create(cm("y", "1", {"pick": "yes"}), namespace)
        await cms.patch("x", {"metadata": {"labels": {"pick": "yes"}}}, namespace)  # enters the selector
        await cms.patch("y", {"metadata": {"labels": {"pick": "no"}}}, namespace)  # leaves it
        await until(lambda: len(calls.calls) >= 3, 10, "3 handler calls")
        assert calls.calls == [("add", "y", "1"), ("add", "x", "1"), ("delete", "y", "1")]
    finally:
        await inf.stop()


def _stored(obj: dict) -> str:
    """An object as the apiserver stores it in etcd (no resourceVersion)."""
    obj = orjson.loads(orjson.dumps(obj))
    obj["metadata"].pop("resourceVersion", None)
    return orjson.dumps(obj).decode()


async def _change_etcd_while_apiserver_down(cp: ControlPlane, namespace: str, a: dict) -> None:
    """With the apiserver stopped, add `d`, modify `a` and delete `b` directly in etcd."""
    prefix = f"/registry/configmaps/{namespace}/"
    new = {**cm("d", "1"), "metadata": {"name": "d", "namespace": namespace, "uid": new_uid(),
                                        "creationTimestamp": now(), "labels": dict(OURS)}}
    changed = {**a, "data": {"v": "2"}}
    await asyncio.to_thread(cp.stop, "apiserver")
    await asyncio.to_thread(cp.etcdctl, "put", prefix + "d", _stored(new))
    await asyncio.to_thread(cp.etcdctl, "put", prefix + "a", _stored(changed))
    await asyncio.to_thread(cp.etcdctl, "del", prefix + "b")


async def _restart_apiserver(cp: ControlPlane) -> None:
    cp.start_apiserver()
    await asyncio.to_thread(cp.wait_ready, 30)


async def test_informer_survives_apiserver_restart(control_plane: ControlPlane, kube: APIClient, namespace: str) -> None:
    cms = kube.resource("v1", "configmaps")
    a = await cms.create(cm("a", "1"), namespace)
    await cms.create(cm("b", "1"), namespace)
    await cms.create(cm("c", "1"), namespace)
    inf = Informer(kube, "v1", "configmaps", namespace, OURS, backoff_initial=0.2, backoff_max=1.0)
    calls = Calls()
    inf.add_handler(calls.add, calls.update, calls.delete)
    inf.start()
    try:
        assert await inf.wait_synced(10)
        await until(lambda: len(calls.calls) == 3, 10, "the initial adds")
        try:
            await _change_etcd_while_apiserver_down(control_plane, namespace, a)
        finally:
            await _restart_apiserver(control_plane)
        await until(lambda: len(calls.calls) >= 6, 30, "the changes made while the apiserver was down")
        await cms.create(cm("e", "1"), namespace)  # and the watch is live again
        await until(lambda: len(calls.calls) >= 7, 30, "a change after the restart")
        await asyncio.sleep(0.2)  # room for a (wrong) duplicate to show up
        assert calls.calls[:3] == [("add", "a", "1"), ("add", "b", "1"), ("add", "c", "1")]
        assert calls.calls[-1] == ("add", "e", "1")
        if inf.list_count == 1:
            # resumed from its resourceVersion (the apiserver replays history from etcd): the real events
            assert calls.calls[3:6] == [("add", "d", "1"), ("update", "a", "1->2"), ("delete", "b", "1")]
        else:
            # a server that answers 410 instead (upstream's watch cache does) makes it re-list and diff
            assert inf.list_count == 2
            assert calls.calls[3:6] == [("update", "a", "1->2"), ("add", "d", "1"), ("tombstone", "b", "1")]
        assert len(calls.calls) == 7  # each change exactly once
        assert sorted(o["metadata"]["name"] for o in inf.store.list()) == ["a", "c", "d", "e"]
    finally:
        await inf.stop()


async def test_informer_relists_after_410(control_plane: ControlPlane, kube: APIClient, namespace: str) -> None:
    cms = kube.resource("v1", "configmaps")
    a = await cms.create(cm("a", "1"), namespace)
    await cms.create(cm("b", "1"), namespace)
    await cms.create(cm("c", "1"), namespace)
    inf = Informer(kube, "v1", "configmaps", namespace, OURS, backoff_initial=0.2, backoff_max=1.0)
    calls = Calls()
    inf.add_handler(calls.add, calls.update, calls.delete)
    inf.start()
    try:
        assert await inf.wait_synced(10)
        await until(lambda: len(calls.calls) == 3, 10, "the initial adds")
        try:
            await _change_etcd_while_apiserver_down(control_plane, namespace, a)
            # the informer's resourceVersion is now older than anything etcd or a fresh cache can replay
            await asyncio.to_thread(control_plane.compact)
        finally:
            await _restart_apiserver(control_plane)
        await until(lambda: inf.list_count == 2 and len(calls.calls) >= 6, 30, "a re-list after 410")
        await cms.create(cm("e", "1"), namespace)
        await until(lambda: len(calls.calls) >= 7, 30, "a change after the re-list")
        await asyncio.sleep(0.2)
        assert calls.calls[:3] == [("add", "a", "1"), ("add", "b", "1"), ("add", "c", "1")]
        # the re-list's diff: order within it follows the list (by name), then tombstones
        assert calls.calls[3:] == [
            ("update", "a", "1->2"), ("add", "d", "1"), ("tombstone", "b", "1"), ("add", "e", "1"),
        ]
        assert sorted(o["metadata"]["name"] for o in inf.store.list()) == ["a", "c", "d", "e"]
    finally:
        await inf.stop()
