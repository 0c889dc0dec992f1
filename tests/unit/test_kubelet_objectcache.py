"""kubelet.objectcache.ObjectCache: one informer per referenced object, kept while some pod uses it;
a change resyncs exactly the pods that use the object."""

from __future__ import annotations

import asyncio

import pytest

from kubelet import objectcache
from kubelet.objectcache import ObjectCache


class FakeInformer:
    made: list[FakeInformer] = []

    def __init__(self, api, version, plural, namespace, field_selector) -> None:
        self.key = (namespace, field_selector.removeprefix("metadata.name="))
        self.handlers: list = []
        self.has_synced = True
        self.started = self.stopped = False
        FakeInformer.made.append(self)

    def add_handler(self, added, updated, deleted) -> None:
        self.handlers = [added, updated, deleted]

    def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.stopped = True


@pytest.fixture
def cache(monkeypatch) -> tuple[ObjectCache, list[set[str]]]:
    FakeInformer.made = []
    monkeypatch.setattr(objectcache, "Informer", FakeInformer)
    changes: list[set[str]] = []
    return ObjectCache(None, "configmaps", changes.append), changes  # type: ignore[arg-type]


async def test_references_share_one_informer_and_drop_it_with_the_last_user(cache) -> None:
    oc, changes = cache
    x, y = ("ns", "x"), ("ns", "y")
    oc.set_references("pod-a", {x})
    oc.set_references("pod-b", {x, y})
    oc.set_references("pod-b", {x, y})  # a resync with the same references changes nothing
    assert [i.key for i in FakeInformer.made] == [x, y] and all(i.started for i in FakeInformer.made)
    assert oc.users(*x) == {"pod-a", "pod-b"} and oc.users(*y) == {"pod-b"}

    informer_x = FakeInformer.made[0]
    informer_x.handlers[1]({}, {})  # x changed: exactly its users resync
    assert changes == [{"pod-a", "pod-b"}]

    oc.set_references("pod-a", set())
    oc.set_references("pod-b", {y})
    await asyncio.sleep(0)  # the dropped informer's stop task runs
    assert informer_x.stopped and oc.users(*x) == set() and len(oc) == 1
    oc.forget_pod("pod-b")
    await asyncio.sleep(0)
    assert FakeInformer.made[1].stopped and len(oc) == 0


async def test_no_change_callback_before_the_first_sync(cache) -> None:
    oc, changes = cache
    oc.set_references("pod-a", {("ns", "x")})
    informer = FakeInformer.made[0]
    informer.has_synced = False
    informer.handlers[0]({})
    assert changes == []


def test_pod_references_include_every_kind_of_container() -> None:
    env = [{"name": "A", "valueFrom": {"configMapKeyRef": {"name": "cm-env", "key": "k"}}},
           {"name": "B", "valueFrom": {"secretKeyRef": {"name": "s-env", "key": "k"}}}]
    pod = {"metadata": {"namespace": "n", "name": "p"}, "spec": {
        "volumes": [{"name": "v", "configMap": {"name": "cm-vol"}}],
        "initContainers": [{"name": "i", "envFrom": [{"secretRef": {"name": "s-init"}}]}],
        "containers": [{"name": "c", "env": env}],
        "ephemeralContainers": [{"name": "debug", "envFrom": [{"configMapRef": {"name": "cm-debug"}}]}],
        "imagePullSecrets": [{"name": "pull"}]}}
    cms, secrets = objectcache.pod_object_references(pod)
    assert cms == {("n", "cm-vol"), ("n", "cm-env"), ("n", "cm-debug")}
    assert secrets == {("n", "s-init"), ("n", "s-env")}  # pull secrets are read when pulling
