"""The garbage collector over a fake API whose writes reach the informers (as watches would):
background, foreground and orphan propagation, dangling references, scopes, blockOwnerDeletion."""

from __future__ import annotations

from controller_manager.garbage_collector import (
    FOREGROUND,
    GarbageCollector,
    GraphNode,
    Identity,
    alternate_identity,
    diff_owners,
    partition_dependents,
)
from tests.unit.cm_fakes import FakeAPI, make_context

NS = "ns"


def ref(owner: dict, block: bool = True, controller: bool = True) -> dict:
    return {"apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": owner["metadata"]["name"],
            "uid": owner["metadata"]["uid"], "controller": controller, "blockOwnerDeletion": block}


async def settle(gc: GarbageCollector, rounds: int = 100, tolerate: bool = False) -> list[Exception]:
    """Apply graph changes and run both work queues until nothing is left to do.

    A failing item raises, or (tolerate) is dropped as a worker would retry it later."""
    failures: list[Exception] = []
    for _ in range(rounds):
        progressed = False
        while not gc.changes.empty():
            etype, obj, old = gc.changes.get_nowait()
            gc.process_graph_change(etype, obj, old)
            gc.changes.task_done()
            progressed = True
        for queue, fn in ((gc.queue, gc.attempt_to_delete), (gc.orphan_queue, gc.attempt_to_orphan)):
            while len(queue):
                uid = await queue.get()
                try:
                    await fn(uid)
                except Exception as e:
                    if not tolerate:
                        raise
                    failures.append(e)
                finally:
                    queue.done(uid)
                progressed = True
        if not progressed:
            return failures
    raise AssertionError("the garbage collector did not settle")


async def setup():
    api = FakeAPI()
    gc = GarbageCollector(make_context(api))
    assert await gc.sync_monitors()
    assert ("v1", "events") not in gc.monitors and ("v1", "pods") in gc.monitors
    return api, gc


def replicaset(api: FakeAPI, name: str = "rs", owners: list | None = None) -> dict:
    meta = {"name": name, "namespace": NS}
    if owners:
        meta["ownerReferences"] = owners
    return api.seed("apps/v1", "replicasets", {"metadata": meta, "spec": {"replicas": 2}})


def pods_of(api: FakeAPI, owner: dict, n: int = 2, block: bool = True) -> list[dict]:
    return [api.seed("v1", "pods", {"metadata": {"name": f"{owner['metadata']['name']}-{i}", "namespace": NS,
                                                 "ownerReferences": [ref(owner, block)]}, "spec": {}})
            for i in range(n)]


def names(api: FakeAPI, av: str, plural: str) -> list[str]:
    return sorted(o["metadata"]["name"] for o in api.objects_of(av, plural))


async def test_background_deletes_dependents_after_the_owner() -> None:
    api, gc = await setup()
    rs = replicaset(api)
    pods_of(api, rs)
    await settle(gc)
    assert names(api, "v1", "pods") == ["rs-0", "rs-1"]  # owner alive: nothing happens
    await api.resource("apps/v1", "replicasets").delete("rs", NS, propagation_policy="Background")
    await settle(gc)
    assert names(api, "v1", "pods") == []
    assert all(a[4]["propagationPolicy"] == "Background" for a in api.writes("delete", "pods"))


async def test_foreground_waits_for_blocking_dependents() -> None:
    api, gc = await setup()
    rs = replicaset(api)
    pods_of(api, rs)
    await settle(gc)
    await api.resource("apps/v1", "replicasets").delete("rs", NS, propagation_policy="Foreground")
    held = api.get_obj("apps/v1", "replicasets", NS, "rs")
    assert held["metadata"]["finalizers"] == [FOREGROUND] and held["metadata"]["deletionTimestamp"]
    await settle(gc)
    assert names(api, "v1", "pods") == [] and names(api, "apps/v1", "replicasets") == []
    order = [(a[0], a[1]) for a in api.actions if a[0] in ("delete", "patch")]
    # the dependents went first, then the owner's finalizer
    assert order[-1] == ("patch", "replicasets") and order.count(("delete", "pods")) == 2


async def test_foreground_chain_deployment_replicaset_pods() -> None:
    api, gc = await setup()
    d = api.seed("apps/v1", "deployments", {"metadata": {"name": "d", "namespace": NS}})
    rs = replicaset(api, "d-rs", [ref(d)])
    pods_of(api, rs)
    await settle(gc)
    await api.resource("apps/v1", "deployments").delete("d", NS, propagation_policy="Foreground")
    await settle(gc)
    assert names(api, "apps/v1", "deployments") == [] and names(api, "apps/v1", "replicasets") == []
    assert names(api, "v1", "pods") == []
    # the replica set itself was deleted in the foreground (it had dependents and its owner waited)
    (rs_delete,) = api.writes("delete", "replicasets")
    assert rs_delete[4]["propagationPolicy"] == "Foreground"


async def test_non_blocking_dependents_do_not_hold_the_owner() -> None:
    api, gc = await setup()
    rs = replicaset(api)
    pods_of(api, rs, block=False)
    api.sticky_errors[("delete", "pods")] = RuntimeError("pods cannot be deleted now")
    await settle(gc)
    await api.resource("apps/v1", "replicasets").delete("rs", NS, propagation_policy="Foreground")
    failures = await settle(gc, tolerate=True)  # the pods' deletion fails; the owner must not wait for them
    assert failures and all("cannot be deleted" in str(f) for f in failures)
    assert names(api, "apps/v1", "replicasets") == []


async def test_orphan_keeps_dependents_without_the_reference() -> None:
    api, gc = await setup()
    rs = replicaset(api)
    other = replicaset(api, "other")
    pod = api.seed("v1", "pods", {"metadata": {"name": "p", "namespace": NS,
                                               "ownerReferences": [ref(rs), ref(other, controller=False)]}})
    await settle(gc)
    await api.resource("apps/v1", "replicasets").delete("rs", NS, propagation_policy="Orphan")
    await settle(gc)
    assert names(api, "apps/v1", "replicasets") == ["other"]
    kept = api.get_obj("v1", "pods", NS, "p")
    assert kept["metadata"]["uid"] == pod["metadata"]["uid"]
    assert [r["uid"] for r in kept["metadata"]["ownerReferences"]] == [other["metadata"]["uid"]]


async def test_dangling_references_from_the_start() -> None:
    api, gc = await setup()
    rs = replicaset(api)
    ghost = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "ghost", "uid": "never-existed"}}
    api.seed("v1", "pods", {"metadata": {"name": "orphan", "namespace": NS, "ownerReferences": [ref(ghost)]}})
    api.seed("v1", "pods", {"metadata": {"name": "half", "namespace": NS,
                                         "ownerReferences": [ref(ghost), ref(rs, controller=False)]}})
    await settle(gc)
    assert names(api, "v1", "pods") == ["half"]
    assert [r["uid"] for r in api.get_obj("v1", "pods", NS, "half")["metadata"]["ownerReferences"]] == [
        rs["metadata"]["uid"]]
    assert "never-existed" not in gc.uid_to_node  # the virtual node is gone again


async def test_same_name_other_uid_is_dangling() -> None:
    api, gc = await setup()
    rs = replicaset(api)
    stale = {**rs, "metadata": {**rs["metadata"], "uid": "old-uid"}}
    api.seed("v1", "pods", {"metadata": {"name": "p", "namespace": NS, "ownerReferences": [ref(stale)]}})
    await settle(gc)
    assert names(api, "v1", "pods") == []
    assert names(api, "apps/v1", "replicasets") == ["rs"]


async def test_cluster_scoped_owner_of_namespaced_and_cluster_scoped_dependents() -> None:
    api, gc = await setup()
    node = api.seed("v1", "nodes", {"metadata": {"name": "n1"}})
    api.seed("v1", "configmaps", {"metadata": {"name": "cm", "namespace": NS, "ownerReferences": [ref(node)]}})
    api.seed("v1", "persistentvolumes", {"metadata": {"name": "pv", "ownerReferences": [ref(node)]}})
    await settle(gc)
    assert names(api, "v1", "configmaps") == ["cm"]
    await api.resource("v1", "nodes").delete("n1")
    await settle(gc)
    assert names(api, "v1", "configmaps") == [] and names(api, "v1", "persistentvolumes") == []


async def test_namespaced_owner_of_a_cluster_scoped_object_is_reported_not_followed() -> None:
    api, gc = await setup()
    rs = replicaset(api)
    api.seed("v1", "persistentvolumes", {"metadata": {"name": "pv", "ownerReferences": [ref(rs)]}})
    await settle(gc)
    await api.resource("apps/v1", "replicasets").delete("rs", NS)
    await settle(gc)
    assert names(api, "v1", "persistentvolumes") == ["pv"]
    assert any(e[3] == "OwnerRefInvalidNamespace" for e in gc.ctx.events)  # type: ignore[attr-defined]


async def test_owner_in_another_namespace_does_not_count() -> None:
    api, gc = await setup()
    rs = replicaset(api)
    api.seed("v1", "configmaps", {"metadata": {"name": "cm", "namespace": "elsewhere", "ownerReferences": [ref(rs)]}})
    await settle(gc)
    assert names(api, "v1", "configmaps") == []
    assert names(api, "apps/v1", "replicasets") == ["rs"]


async def test_removing_a_blocking_reference_releases_a_foreground_owner() -> None:
    api, gc = await setup()
    rs = replicaset(api)
    (pod,) = pods_of(api, rs, 1)
    api.sticky_errors[("delete", "pods")] = RuntimeError("no")
    await settle(gc)
    await api.resource("apps/v1", "replicasets").delete("rs", NS, propagation_policy="Foreground")
    assert await settle(gc, tolerate=True)
    assert names(api, "apps/v1", "replicasets") == ["rs"]  # held by its blocking pod
    api.sticky_errors.clear()
    # the pod drops its owner reference itself: the owner is released
    api.seed("v1", "pods", {**pod, "metadata": {**pod["metadata"], "ownerReferences": []}})
    await settle(gc)
    assert names(api, "apps/v1", "replicasets") == []
    assert names(api, "v1", "pods") == ["rs-0"]


def test_helpers() -> None:
    a = {"uid": "1", "blockOwnerDeletion": True}
    b = {"uid": "2"}
    assert diff_owners([a, b], [b, {"uid": "3"}]) == ([{"uid": "3"}], [a], [])
    assert diff_owners([a], [{"uid": "1", "blockOwnerDeletion": False}])[2] == [(a, {"uid": "1", "blockOwnerDeletion": False})]
    owner = Identity("apps/v1", "ReplicaSet", "ns", "rs", "u1")
    good = GraphNode(Identity("v1", "Pod", "ns", "p", "p1"),
                     [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "u1"}])
    other_ns = GraphNode(Identity("v1", "Pod", "other", "q", "p2"),
                         [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "u1"}])
    wrong_kind = GraphNode(Identity("v1", "Pod", "ns", "r", "p3"),
                           [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "rs", "uid": "u1"}])
    matching, mismatching = partition_dependents([good, other_ns, wrong_kind], owner)
    assert matching == [good] and mismatching == [other_ns, wrong_kind]
    # the next other coordinates in sort order after the ones found absent (wrapping around)
    assert alternate_identity(mismatching, owner) == Identity("apps/v1", "ReplicaSet", "other", "rs", "u1")
    assert alternate_identity(mismatching, Identity("apps/v1", "ReplicaSet", "other", "rs", "u1")) == Identity(
        "apps/v1", "Deployment", "ns", "rs", "u1")
