"""VolumeBinding: the PV ↔ claim matching rules, PreFilter / Filter verdicts against fake stores,
Reserve's assumptions, PreBind's writes and its wait for the binder, and the scheduler's
handling of a failed PreBind."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest

from scheduler.eventhandlers import EventHandlers
from scheduler.framework import CycleState
from scheduler.plugins.volume_binding import (
    ERR_REASON_BIND_CONFLICT,
    ERR_REASON_NODE_CONFLICT,
    ERR_REASON_PV_NOT_EXIST,
    REASON_UNBOUND_IMMEDIATE,
    VolumeBinding,
)
from scheduler.podinfo import PodInfo
from scheduler.scheduler import Scheduler, SchedulerConfig
from scheduler.status import ERROR, SKIP, UNSCHEDULABLE_AND_UNRESOLVABLE, FitError, Status
from scheduler.volumehelpers import (
    ANN_BIND_COMPLETED,
    ANN_BOUND_BY_CONTROLLER,
    ANN_SELECTED_NODE,
    bind_volume_to_claim,
    find_matching_volume,
    is_claim_bound,
)
from tests.conftest import until
from tests.unit.scheduler_fakes import (
    Cluster,
    FakeEvents,
    FakePodsAPI,
    FakeStore,
    make_node,
    make_pod,
    pv,
    pvc,
    storage_class,
    with_claims,
)

Obj = dict[str, Any]
HOSTNAME = "kubernetes.io/hostname"
NAME = "VolumeBinding"


class Storage:
    """A Cluster with the three storage stores the plugin reads."""

    def __init__(self, nodes: tuple[str, ...] = ("a", "b"), pvs: tuple = (), pvcs: tuple = (),
                 classes: tuple = (storage_class("local"), storage_class("fast", provisioner="example.com/hostpath"),
                                   storage_class("now", mode="Immediate"))) -> None:
        self.c = Cluster(nodes=[make_node(n) for n in nodes])
        self.stores = {"pvs": FakeStore(list(pvs)), "pvcs": FakeStore(list(pvcs)),
                       "storageclasses": FakeStore(list(classes))}
        self.c.handle.stores.update(self.stores)
        self.plugin: VolumeBinding = self.c.fw.plugin(NAME)  # type: ignore[assignment]

    def pre_filter(self, pod: Obj) -> tuple[CycleState, Status | None]:
        state = CycleState()
        st = self.plugin.pre_filter(state, PodInfo(pod))
        return state, st

    def verdicts(self, pod: Obj) -> dict[str, Status | None]:
        state, st = self.pre_filter(pod)
        assert st is None, st
        pi = PodInfo(pod)
        return {ni.name: self.plugin.filter(state, pi, ni) for ni in self.c.cache.node_list()}


def rejected(*reasons: str, plugin: str = "") -> Status:
    return Status(UNSCHEDULABLE_AND_UNRESOLVABLE, *reasons, plugin=plugin)


def conflict(*reasons: str) -> Status:
    """A Filter verdict (it names the plugin, as the batch filter needs)."""
    return rejected(*reasons, plugin=NAME)


# -- the matching rules ------------------------------------------------------------------------


def test_the_smallest_sufficient_volume_of_the_claims_class_wins() -> None:
    claim = pvc("c", "5Gi")
    vols = [pv("big", "100Gi"), pv("small", "1Gi"), pv("fit", "5Gi"), pv("mid", "10Gi"), pv("other-class", "5Gi", "x")]
    assert find_matching_volume(claim, vols)["metadata"]["name"] == "fit"
    assert find_matching_volume(claim, vols, excluded=["fit"])["metadata"]["name"] == "mid"
    assert find_matching_volume(pvc("c", "200Gi"), vols) is None
    # 5368709120 bytes == 5Gi: the quantity parser compares values, not strings
    assert find_matching_volume(pvc("c", "5368709120"), [pv("fit", "5Gi")]) is not None
    assert find_matching_volume(pvc("c", "5368709121"), [pv("fit", "5Gi")]) is None


@pytest.mark.parametrize(("volume", "claim", "ok"), [
    (pv("v", cls=""), pvc("c", cls=""), True),
    (pv("v", cls=""), pvc("c", cls=None), True),  # no class on the claim counts as ""
    (pv("v", cls="local"), pvc("c", cls=""), False),
    (pv("v", modes=("ReadWriteOnce", "ReadOnlyMany")), pvc("c", modes=("ReadOnlyMany",)), True),
    (pv("v", modes=("ReadWriteOnce",)), pvc("c", modes=("ReadWriteOnce", "ReadWriteMany")), False),
    (pv("v", mode="Filesystem"), pvc("c"), True),  # volumeMode defaults to Filesystem on both sides
    (pv("v", mode="Block"), pvc("c"), False),
    (pv("v", mode="Block"), pvc("c", mode="Block"), True),
    (pv("v", labels={"tier": "gold"}), pvc("c", selector={"matchLabels": {"tier": "gold"}}), True),
    (pv("v", labels={"tier": "gold"}), pvc("c", selector={"matchExpressions": [
        {"key": "tier", "operator": "NotIn", "values": ["gold"]}]}), False),
    (pv("v"), pvc("c", selector={"matchLabels": {"tier": "gold"}}), False),
    (pv("v", phase="Released"), pvc("c"), False),
    (pv("v", phase="Failed"), pvc("c"), False),
    (pv("v", phase="Pending"), pvc("c"), False),  # the binder has not made it Available yet
    (pv("v", phase="Bound"), pvc("c"), False),
    (pv("v", deleting=True), pvc("c"), False),
    (pv("v", claim=pvc("someone-else")), pvc("c"), False),
    (pv("v"), pvc("c", volume="v"), True),
    (pv("v"), pvc("c", volume="w"), False),
])
def test_volume_matches_claim(volume: Obj, claim: Obj, ok: bool) -> None:
    assert (find_matching_volume(claim, [volume]) is not None) is ok
    assert (find_matching_volume(claim, [volume], node_labels={HOSTNAME: "a"}, node_name="a") is not None) is ok


def test_a_volume_pre_bound_to_the_claim_wins_and_node_affinity_counts_on_the_schedulers_path() -> None:
    claim = pvc("c", "1Gi")
    mine = pv("mine", "50Gi", cls="other", claim=claim, phase="Released")
    vols = [pv("small", "1Gi"), mine]
    assert find_matching_volume(claim, vols)["metadata"]["name"] == "mine"
    assert find_matching_volume(claim, [pv("x", claim={**claim, "metadata": {**claim["metadata"], "uid": "old"}})]) is None
    on_a = pv("on-a", node="a")
    assert find_matching_volume(claim, [on_a], node_labels={HOSTNAME: "a"}, node_name="a") is on_a
    assert find_matching_volume(claim, [on_a], node_labels={HOSTNAME: "b"}, node_name="b") is None
    # pre-bound to the claim but on another node: no match on this node at all
    pinned = pv("pinned", node="a", claim=claim)
    assert find_matching_volume(claim, [pinned, pv("free")], node_labels={HOSTNAME: "b"}, node_name="b") is None
    # the binder's path for a WaitForFirstConsumer claim: only a pre-bound volume
    assert find_matching_volume(claim, [pv("free")], delay_binding=True) is None
    assert find_matching_volume(claim, [pv("free"), mine], delay_binding=True) is mine


def test_bind_volume_to_claim_and_bound_claims() -> None:
    claim = pvc("c")
    new, dirty = bind_volume_to_claim(pv("v"), claim)
    assert dirty and new["spec"]["claimRef"] == {"kind": "PersistentVolumeClaim", "apiVersion": "v1",
                                                 "namespace": "default", "name": "c", "uid": "pvc-uid-c",
                                                 "resourceVersion": "5"}
    assert new["metadata"]["annotations"][ANN_BOUND_BY_CONTROLLER] == "yes"
    assert bind_volume_to_claim(new, claim)[1] is False
    user_prebound = pv("u", claim=claim)
    again, dirty = bind_volume_to_claim(user_prebound, claim)
    assert not dirty and ANN_BOUND_BY_CONTROLLER not in again["metadata"].get("annotations", {})
    assert not is_claim_bound(pvc("c", volume="v")) and is_claim_bound(pvc("c", volume="v", bound=True))
    assert not is_claim_bound(pvc("c", annotations={ANN_BIND_COMPLETED: "yes"}))


# -- PreFilter ---------------------------------------------------------------------------------


def test_pre_filter_skips_pods_without_claims() -> None:
    s = Storage()
    _state, st = s.pre_filter(make_pod("p"))
    assert st == Status(SKIP)
    s.c.schedule(make_pod("p"))  # and the whole framework still places it


@pytest.mark.parametrize(("claims", "message"), [
    ((), 'persistentvolumeclaim "data" not found'),
    ((pvc("data", cls="now"),), REASON_UNBOUND_IMMEDIATE),
    ((pvc("data", cls="gone"),), REASON_UNBOUND_IMMEDIATE),  # the class does not exist
    ((pvc("data", cls=""),), REASON_UNBOUND_IMMEDIATE),
    ((pvc("data", cls=None),), REASON_UNBOUND_IMMEDIATE),
    ((pvc("data", volume="v"),), REASON_UNBOUND_IMMEDIATE),  # names its volume: the binder's job
    ((pvc("data") | {"metadata": pvc("data")["metadata"] | {"deletionTimestamp": "2026-01-01T00:00:00Z"}},),
     'persistentvolumeclaim "data" is being deleted'),
    ((pvc("data", volume="v") | {"status": {"phase": "Lost"}},),
     'persistentvolumeclaim "data" bound to non-existent persistentvolume "v"'),
])
def test_pre_filter_rejections(claims: tuple, message: str) -> None:
    s = Storage(pvcs=claims)
    _state, st = s.pre_filter(with_claims(make_pod("p"), "data"))
    assert st == rejected(message)


def test_pre_filter_of_generic_ephemeral_volumes() -> None:
    pod = with_claims(make_pod("p", uid="pod-uid"), ephemeral=("scratch",))
    s = Storage()
    assert s.pre_filter(pod)[1] == rejected(
        'waiting for ephemeral volume controller to create the persistentvolumeclaim "p-scratch"')
    s.stores["pvcs"].put(pvc("p-scratch", cls="fast"))
    assert s.pre_filter(pod)[1] == rejected("PVC default/p-scratch was not created for pod default/p (pod is not owner)")
    s.stores["pvcs"].put(pvc("p-scratch", cls="fast", owner=pod))
    assert s.pre_filter(pod)[1] is None


def test_an_unschedulable_pod_says_why_in_the_fit_error() -> None:
    s = Storage(pvcs=(pvc("data", cls="now"),))
    with pytest.raises(FitError) as e:
        s.c.schedule(with_claims(make_pod("p"), "data"))
    assert str(e.value) == "0/2 nodes are available: pod has unbound immediate PersistentVolumeClaims."
    assert e.value.diagnosis.unschedulable_plugins == {NAME}


# -- Filter ------------------------------------------------------------------------------------


def test_bound_claims_need_their_volume_and_its_node_affinity() -> None:
    claim = pvc("data", volume="v", bound=True)
    s = Storage(pvcs=(claim,), pvs=(pv("v", node="a", claim=claim, phase="Bound"),))
    pod = with_claims(make_pod("p"), "data")
    assert s.verdicts(pod) == {"a": None, "b": conflict(ERR_REASON_NODE_CONFLICT)}
    assert s.c.schedule(pod).host == "a"
    s.stores["pvs"].items.clear()
    assert s.verdicts(pod) == {"a": conflict(ERR_REASON_PV_NOT_EXIST), "b": conflict(ERR_REASON_PV_NOT_EXIST)}
    with pytest.raises(FitError) as e:
        s.c.schedule(pod)
    # in the default profile VolumeZone's PreFilter (it reads the bound volume) says so first, as upstream
    assert str(e.value) == '0/2 nodes are available: persistentvolume "v" not found.'
    assert e.value.diagnosis.unschedulable_plugins == {"VolumeZone"}


def test_unbound_wait_for_first_consumer_claims_need_a_static_volume_on_the_node() -> None:
    s = Storage(nodes=("a", "b", "c"), pvcs=(pvc("data"),), pvs=(pv("on-a", node="a"), pv("on-b", "10Gi", node="b")))
    pod = with_claims(make_pod("p"), "data")
    assert s.verdicts(pod) == {"a": None, "b": None, "c": conflict(ERR_REASON_BIND_CONFLICT)}
    state, _ = s.pre_filter(pod)
    pi = PodInfo(pod)
    for name in ("a", "b"):
        s.plugin.filter(state, pi, s.c.node(name))
    vb = state.data[NAME].by_node
    assert [b[0]["metadata"]["name"] for b in vb["a"].static_bindings] == ["on-a"]
    assert [b[0]["metadata"]["name"] for b in vb["b"].static_bindings] == ["on-b"]
    with pytest.raises(FitError) as e:
        s.c.schedule(with_claims(make_pod("q", node_selector={HOSTNAME: "c"}), "data"))
    assert str(e.value) == ("0/3 nodes are available: 1 node(s) didn't find available persistent volumes to bind, "
                            "2 node(s) didn't match Pod's node affinity/selector.")


def test_each_claim_of_a_pod_gets_its_own_volume() -> None:
    s = Storage(pvcs=(pvc("one", "1Gi"), pvc("two", "2Gi")), pvs=(pv("v2", "2Gi", node="a"), pv("v5", "5Gi", node="a"),
                                                                   pv("b2", "2Gi", node="b")))
    pod = with_claims(make_pod("p"), "one", "two")
    assert s.verdicts(pod) == {"a": None, "b": conflict(ERR_REASON_BIND_CONFLICT)}
    state, _ = s.pre_filter(pod)
    assert s.plugin.filter(state, PodInfo(pod), s.c.node("a")) is None
    got = {pvc_["metadata"]["name"]: v["metadata"]["name"] for v, pvc_ in state.data[NAME].by_node["a"].static_bindings}
    assert got == {"one": "v2", "two": "v5"}  # smallest claim first, each the smallest that fits


def test_dynamic_provisioning_topologies_and_the_selected_node() -> None:
    zone = {"matchLabelExpressions": [{"key": HOSTNAME, "values": ["b"]}]}
    classes = (storage_class("fast", provisioner="example.com/hostpath"),
               storage_class("zonal", provisioner="example.com/hostpath", topologies=[zone]),
               storage_class("local"))
    s = Storage(classes=classes, pvcs=(pvc("f", cls="fast"), pvc("z", cls="zonal"), pvc("l", cls="local"),
                                       pvc("picked", cls="fast", annotations={ANN_SELECTED_NODE: "b"})))
    assert s.verdicts(with_claims(make_pod("p"), "f")) == {"a": None, "b": None}
    assert s.verdicts(with_claims(make_pod("p"), "z")) == {"a": conflict(ERR_REASON_BIND_CONFLICT), "b": None}
    assert s.verdicts(with_claims(make_pod("p"), "l")) == {"a": conflict(ERR_REASON_BIND_CONFLICT),
                                                          "b": conflict(ERR_REASON_BIND_CONFLICT)}
    assert s.verdicts(with_claims(make_pod("p"), "picked")) == {"a": conflict(ERR_REASON_BIND_CONFLICT), "b": None}
    # a static volume is preferred; without one the claim is provisioned
    s.stores["pvs"].put(pv("static-f", cls="fast", node="a"))
    state, _ = s.pre_filter(with_claims(make_pod("p"), "f"))
    pi = PodInfo(with_claims(make_pod("p"), "f"))
    for n in ("a", "b"):
        assert s.plugin.filter(state, pi, s.c.node(n)) is None
    by_node = state.data[NAME].by_node
    assert [v["metadata"]["name"] for v, _ in by_node["a"].static_bindings] == ["static-f"]
    assert by_node["a"].dynamic_provisions == []
    assert [c["metadata"]["name"] for c in by_node["b"].dynamic_provisions] == ["f"]


def test_both_reasons_when_bound_and_unbound_claims_fail() -> None:
    bound = pvc("bound", volume="v", bound=True)
    s = Storage(pvcs=(bound, pvc("free")), pvs=(pv("v", node="a", claim=bound),))
    assert s.verdicts(with_claims(make_pod("p"), "bound", "free"))["b"] == conflict(
        ERR_REASON_NODE_CONFLICT, ERR_REASON_BIND_CONFLICT)


# -- Reserve: what one pod chose, the next does not get --------------------------------------------


def test_reserve_assumes_the_chosen_volume_until_unreserve() -> None:
    s = Storage(pvcs=(pvc("one"), pvc("two")), pvs=(pv("only", node="a"),))
    first = PodInfo(with_claims(make_pod("p1"), "one"))
    state = CycleState()
    host = s.c.algorithm.schedule_pod(s.c.fw, state, first).host
    assert host == "a" and s.c.fw.run_reserve(state, first, host) is None
    assumed = s.plugin.pv_cache.get("only")
    assert assumed["spec"]["claimRef"]["name"] == "one" and s.stores["pvs"].get("only").get("spec").get("claimRef") is None
    second = with_claims(make_pod("p2"), "two")
    assert s.verdicts(second) == {"a": conflict(ERR_REASON_BIND_CONFLICT), "b": conflict(ERR_REASON_BIND_CONFLICT)}
    s.c.fw.run_unreserve(state, first, host)
    assert s.verdicts(second)["a"] is None
    # an assumed version gives way when the informer brings a newer one
    s.c.fw.run_reserve(state, first, host)
    newer = copy.deepcopy(s.stores["pvs"].get("only"))
    newer["metadata"]["resourceVersion"] = "11"
    s.stores["pvs"].put(newer)
    assert s.plugin.pv_cache.get("only") is newer and not s.plugin.pv_cache.assumed


def test_a_claim_assumed_for_provisioning_pins_other_pods_sharing_it() -> None:
    s = Storage(pvcs=(pvc("shared", cls="fast"),))
    p1 = PodInfo(with_claims(make_pod("p1"), "shared"))
    state = CycleState()
    host = s.c.algorithm.schedule_pod(s.c.fw, state, p1).host
    s.c.fw.run_reserve(state, p1, host)
    other = "b" if host == "a" else "a"
    assert s.verdicts(with_claims(make_pod("p2"), "shared")) == {host: None, other: conflict(ERR_REASON_BIND_CONFLICT)}


# -- PreBind -------------------------------------------------------------------------------------


class FakeStorageAPI:
    """PUT persistentvolumes / PATCH persistentvolumeclaims (echoing a new resourceVersion) and pods."""

    def __init__(self) -> None:
        self.pods = FakePodsAPI()
        self.calls: list[tuple[str, str, Any]] = []
        self.rv = 100
        self.fail: Exception | None = None

    def resource(self, api_version: str, plural: str) -> Any:
        if plural == "pods":
            return self.pods
        return _Resource(self, plural)


class _Resource:
    def __init__(self, api: FakeStorageAPI, plural: str) -> None:
        self.api, self.plural = api, plural

    def _next(self, obj: Obj) -> Obj:
        if self.api.fail is not None:
            raise self.api.fail
        self.api.rv += 1
        out = copy.deepcopy(obj)
        out["metadata"]["resourceVersion"] = str(self.api.rv)
        return out

    async def update(self, obj: Obj, namespace: str | None = None, **kw: Any) -> Obj:
        assert self.plural == "persistentvolumes"
        self.api.calls.append(("update", obj["metadata"]["name"], obj))
        return self._next(obj)

    async def patch(self, name: str, patch: Any, namespace: str | None = None, patch_type: str = "merge",
                    **kw: Any) -> Obj:
        assert self.plural == "persistentvolumeclaims" and patch_type == "merge"
        self.api.calls.append(("patch", f"{namespace}/{name}", patch))
        return self._next({"metadata": {"name": name, "namespace": namespace}})


def bind(store: FakeStore, claim_name: str, volume: str, rv: str, ns: str = "default") -> Obj:
    """Play the binder: the claim bound to `volume`."""
    c = copy.deepcopy(store.get(f"{ns}/{claim_name}"))
    c["spec"]["volumeName"] = volume
    c["metadata"]["annotations"][ANN_BIND_COMPLETED] = "yes"
    c["metadata"]["resourceVersion"] = rv
    c["status"] = {"phase": "Bound"}
    store.put(c)
    return c


def new_scheduler(timeout: float = 30.0, **storage: Any) -> tuple[Scheduler, FakeStorageAPI, FakeEvents, EventHandlers,
                                                                  dict[str, FakeStore]]:
    sched = Scheduler(SchedulerConfig(bind_timeout_seconds=timeout))
    api = FakeStorageAPI()
    events = FakeEvents()
    stores = {"pods": FakeStore(), "nodes": FakeStore(), "namespaces": FakeStore(), "pdbs": FakeStore(),
              "pvs": FakeStore(list(storage.get("pvs", ()))), "pvcs": FakeStore(list(storage.get("pvcs", ()))),
              "storageclasses": FakeStore([storage_class("local"), storage_class("fast", provisioner="x.io/p")])}
    sched.attach(api, stores, {"default-scheduler": events})
    h = EventHandlers(sched)
    for n in storage.get("nodes", ("a", "b")):
        h.on_node_add(make_node(n))
    return sched, api, events, h, stores


async def schedule(sched: Scheduler, h: EventHandlers, stores: dict, pod: Obj) -> None:
    stores["pods"].put(pod)
    h.on_pod_add(pod)
    qpi = sched.queue.pop_nowait()
    assert qpi is not None
    await sched.schedule_one(qpi)


async def stop(sched: Scheduler) -> None:
    """Cancel the binding tasks still waiting."""
    tasks = list(sched._tasks)
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def settle(sched: Scheduler) -> None:
    """Until the binding task waits for the next informer change (after its checks)."""
    await until(lambda: sched.changes.waiting == 1, 5, "PreBind waiting for a change")


async def test_prebind_pre_binds_the_static_volume_and_waits_for_the_binder() -> None:
    sched, api, events, h, stores = new_scheduler(pvcs=[pvc("data")], pvs=[pv("v", node="b")])
    pod = with_claims(make_pod("p"), "data")
    await schedule(sched, h, stores, pod)
    await settle(sched)
    ((verb, name, body),) = api.calls
    assert (verb, name) == ("update", "v") and body["kind"] == "PersistentVolume"
    assert body["spec"]["claimRef"]["uid"] == "pvc-uid-data" and body["metadata"]["resourceVersion"] == "10"
    assert body["metadata"]["annotations"][ANN_BOUND_BY_CONTROLLER] == "yes"
    assert api.pods.bindings == [] and sched.changes.waiting == 1  # waiting, not polling
    # the informer delivers our update, then the binder binds the claim
    old = stores["pvs"].get("v")
    stores["pvs"].put(body | {"metadata": body["metadata"] | {"resourceVersion": "101"}})
    h.on_pv_update(old, stores["pvs"].get("v"))
    await settle(sched)
    assert api.pods.bindings == []
    old = stores["pvcs"].get("default/data")
    h.on_pvc_update(old, bind(stores["pvcs"], "data", "v", "102"))
    await sched.drain()
    assert api.pods.bindings == [("default", "p", "b")]
    assert events.events[-1] == ("p", "Normal", "Scheduled", "Successfully assigned default/p to b")


async def test_prebind_asks_for_provisioning_and_fails_when_the_provisioner_gives_up() -> None:
    sched, api, events, h, stores = new_scheduler(pvcs=[pvc("data", cls="fast")], nodes=("a",))
    pod = with_claims(make_pod("p"), "data")
    await schedule(sched, h, stores, pod)
    await settle(sched)
    assert api.calls == [("patch", "default/data", {"metadata": {"annotations": {ANN_SELECTED_NODE: "a"}}})]
    # the PVC with the annotation arrives, then the provisioner removes it (it failed)
    old = stores["pvcs"].get("default/data")
    annotated = copy.deepcopy(old)
    annotated["metadata"]["annotations"][ANN_SELECTED_NODE] = "a"
    annotated["metadata"]["resourceVersion"] = "101"
    stores["pvcs"].put(annotated)
    h.on_pvc_update(old, annotated)
    await settle(sched)
    assert api.pods.bindings == []
    failed = copy.deepcopy(annotated)
    del failed["metadata"]["annotations"][ANN_SELECTED_NODE]
    failed["metadata"]["resourceVersion"] = "102"
    stores["pvcs"].put(failed)
    h.on_pvc_update(annotated, failed)
    await sched.drain()
    msg = 'running PreBind plugin "VolumeBinding": binding volumes: provisioning failed for PVC "data"'
    assert events.events == [("p", "Warning", "FailedScheduling", msg)]
    assert api.pods.bindings == [] and sched.cache.num_pods == 0 and sched.queue.sizes()["backoff"] == 1
    assert not sched.profiles["default-scheduler"].plugin(NAME).pvc_cache.assumed  # unreserved
    cond = api.pods.patches[-1][2]["status"]["conditions"][0]
    assert (cond["reason"], cond["message"]) == ("SchedulerError", msg)


async def test_prebind_times_out_and_the_pod_is_retried() -> None:
    sched, _api, events, h, stores = new_scheduler(timeout=0.2, pvcs=[pvc("data", cls="fast")], nodes=("a",))
    await schedule(sched, h, stores, with_claims(make_pod("p"), "data"))
    await asyncio.wait_for(sched.drain(), 5)
    assert events.events == [("p", "Warning", "FailedScheduling",
                              'running PreBind plugin "VolumeBinding": binding volumes: context deadline exceeded')]
    assert sched.queue.sizes()["backoff"] == 1 and sched.cache.num_assumed == 0


async def test_prebind_fails_when_the_claim_is_bound_to_a_volume_on_another_node() -> None:
    sched, _api, events, h, stores = new_scheduler(pvcs=[pvc("data", cls="fast")], nodes=("a",))
    await schedule(sched, h, stores, with_claims(make_pod("p"), "data"))
    await settle(sched)
    old = stores["pvcs"].get("default/data")
    claim = copy.deepcopy(old)
    claim["metadata"]["annotations"][ANN_SELECTED_NODE] = "a"
    claim["metadata"]["resourceVersion"] = "101"
    stores["pvcs"].put(claim)
    stores["pvs"].put(pv("elsewhere", cls="fast", node="z", claim=claim, phase="Bound"))
    h.on_pvc_update(old, bind(stores["pvcs"], "data", "elsewhere", "102"))
    await sched.drain()
    assert events.events[-1][3] == ('running PreBind plugin "VolumeBinding": binding volumes: pv "elsewhere" node '
                                    'affinity doesn\'t match node "a": no matching NodeSelectorTerms')


async def test_prebind_gives_up_when_the_pod_is_deleted_and_api_errors_fail_it() -> None:
    sched, api, events, h, stores = new_scheduler(pvcs=[pvc("data", cls="fast")], nodes=("a",))
    pod = with_claims(make_pod("p"), "data")
    await schedule(sched, h, stores, pod)
    await settle(sched)
    del stores["pods"].items["default/p"]
    h.on_pod_delete(pod)
    await sched.drain()
    assert events.events[-1][3] == ('running PreBind plugin "VolumeBinding": binding volumes: pod does not exist '
                                    'any more: pods "p" not found')
    from client import ApiError
    sched, api, events, h, stores = new_scheduler(pvcs=[pvc("data")], pvs=[pv("v")], nodes=("a",))
    api.fail = ApiError(409, "Conflict", 'Operation cannot be fulfilled on persistentvolumes "v": the object has '
                        "been modified; please apply your changes to the latest version and try again")
    await schedule(sched, h, stores, with_claims(make_pod("p"), "data"))
    await sched.drain()
    assert events.events[-1][3].startswith('running PreBind plugin "VolumeBinding": Operation cannot be fulfilled')
    assert sched.queue.sizes()["backoff"] == 1


async def test_bound_claims_need_no_prebind_and_pods_without_claims_are_untouched() -> None:
    claim = pvc("data", volume="v", bound=True)
    sched, api, _events, h, stores = new_scheduler(pvcs=[claim], pvs=[pv("v", node="b", claim=claim, phase="Bound")])
    await schedule(sched, h, stores, with_claims(make_pod("p"), "data"))
    await schedule(sched, h, stores, make_pod("plain"))
    await sched.drain()
    assert api.calls == [] and ("default", "p", "b") in api.pods.bindings and len(api.pods.bindings) == 2


async def test_prebind_without_cycle_state_decides_from_the_informers() -> None:
    sched, api, _events, _h, stores = new_scheduler(pvcs=[pvc("data", cls="fast")], nodes=("a",))
    plugin: VolumeBinding = sched.profiles["default-scheduler"].plugin(NAME)  # type: ignore[assignment]
    plugin.bind_timeout = 0.05
    pod = with_claims(make_pod("p"), "data")
    stores["pods"].put(pod)
    st = await plugin.pre_bind(CycleState(), PodInfo(pod), "a")
    assert st == Status(ERROR, "binding volumes: context deadline exceeded")
    assert api.calls == [("patch", "default/data", {"metadata": {"annotations": {ANN_SELECTED_NODE: "a"}}})]
    state = CycleState()
    st = await plugin.pre_bind(state, PodInfo(make_pod("nothing")), "a")
    assert st is None and state.data[NAME].claims is None


# -- cluster events --------------------------------------------------------------------------------


async def test_claim_events_requeue_only_the_pods_using_the_claim() -> None:
    sched, api, events, h, stores = new_scheduler(pvcs=[pvc("data", cls="local"), pvc("other", cls="local")])
    await schedule(sched, h, stores, with_claims(make_pod("p"), "data"))
    sched.queue.clock = lambda: 10**9  # backoff long over
    assert events.events[-1][3] == ("0/2 nodes are available: 2 node(s) didn't find available persistent volumes "
                                    "to bind. preemption: 0/2 nodes are available: 2 Preemption is not helpful for "
                                    "scheduling.")
    assert sched.queue.sizes()["unschedulable"] == 1
    h.on_pvc_add(pvc("other", ns="default"))
    h.on_pvc_update(pvc("data", ns="elsewhere"), pvc("data", ns="elsewhere", rv="6"))
    assert sched.queue.sizes()["unschedulable"] == 1
    h.on_pvc_update(pvc("data"), pvc("data", rv="6"))
    assert sched.queue.sizes()["active"] == 1
    await sched.schedule_one(sched.queue.pop_nowait())
    assert sched.queue.sizes()["unschedulable"] == 1 and len(events.events) == 2
    sched.queue.clock = lambda: 2 * 10**9
    new = pv("new", node="a")
    stores["pvs"].put(new)
    h.on_pv_add(new)
    assert sched.queue.sizes()["active"] == 1
    await sched.schedule_one(sched.queue.pop_nowait())  # now it fits on a, with that volume
    await settle(sched)
    assert api.calls[0][:2] == ("update", "new")
    await stop(sched)


def test_allowed_topologies_match_as_upstreams_match_topology_selector_terms():
    from scheduler.volumehelpers import topology_matches

    zone_a = {"allowedTopologies": [{"matchLabelExpressions": [{"key": "zone", "values": ["a"]}]}]}
    assert topology_matches(zone_a, {"zone": "a"}) and not topology_matches(zone_a, {"zone": "b"})
    assert topology_matches({}, {"zone": "b"})  # no allowedTopologies: every node
    # an empty term matches no node (it is not "everything")
    assert not topology_matches({"allowedTopologies": [{"matchLabelExpressions": []}]}, {"zone": "b"})
    assert topology_matches({"allowedTopologies": [{}, zone_a["allowedTopologies"][0]]}, {"zone": "a"})
