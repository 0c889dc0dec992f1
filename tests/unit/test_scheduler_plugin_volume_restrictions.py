"""VolumeRestrictions: ReadWriteOncePod claims used by one pod at a time (preemption can free
them), in-tree disks two pods on a node may not share, the missing-claim rejection."""

from __future__ import annotations

import pytest

from scheduler.framework import ADD, ASSIGNED_POD_DELETE, PERSISTENT_VOLUME_CLAIM, PV_ADD, CycleState
from scheduler.plugins.volume_restrictions import (
    ERR_REASON_DISK_CONFLICT,
    ERR_REASON_RWOP_CONFLICT,
    VolumeRestrictions,
)
from scheduler.podinfo import PodInfo
from scheduler.status import SKIP, UNSCHEDULABLE, UNSCHEDULABLE_AND_UNRESOLVABLE, FitError, Status
from tests.unit.scheduler_fakes import (
    Cluster,
    FakeStore,
    make_node,
    make_pod,
    preempt,
    prepare,
    pvc,
    with_claims,
)

NAME = "VolumeRestrictions"
RWOP = ("ReadWriteOncePod",)
RWOP_CONFLICT = Status(UNSCHEDULABLE, ERR_REASON_RWOP_CONFLICT, plugin=NAME)
DISK_CONFLICT = Status(UNSCHEDULABLE, ERR_REASON_DISK_CONFLICT, plugin=NAME)


def cluster(pods: list[dict] = (), claims: tuple[dict, ...] = (pvc("solo", modes=RWOP), pvc("shared")),
            nodes: tuple[str, ...] = ("a", "b")) -> Cluster:
    # (the claims are not bound: VolumeBinding and VolumeZone would keep every pod out)
    c = Cluster([make_node(n) for n in nodes], list(pods), disabled=("VolumeBinding", "VolumeZone"))
    c.handle.stores["pvcs"] = FakeStore(list(claims))
    return c


def plugin(c: Cluster) -> VolumeRestrictions:
    return c.fw.plugin(NAME)  # type: ignore[return-value]


def verdicts(c: Cluster, pod: dict) -> dict[str, Status | None]:
    state, pi = c.prefiltered(pod)
    return {ni.name: c.fw.run_filter(state, pi, ni) for ni in c.cache.node_list()}


def test_a_pod_without_claims_or_disks_skips_the_plugin() -> None:
    c = cluster()
    pod = make_pod("p")
    pod["spec"]["volumes"] = [{"name": "tmp", "emptyDir": {}}]
    assert plugin(c).pre_filter(CycleState(), PodInfo(pod)) == Status(SKIP)
    # a claim nobody else uses: nothing to check either
    assert plugin(c).pre_filter(CycleState(), PodInfo(with_claims(make_pod("q"), "solo"))) == Status(SKIP)


def test_a_missing_claim_is_unresolvable_in_prefilter() -> None:
    c = cluster()
    st = plugin(c).pre_filter(CycleState(), PodInfo(with_claims(make_pod("p"), "gone")))
    assert st == Status(UNSCHEDULABLE_AND_UNRESOLVABLE, 'persistentvolumeclaim "gone" not found')
    with pytest.raises(FitError) as e:
        c.schedule(with_claims(make_pod("p"), "gone"))
    assert str(e.value) == '0/2 nodes are available: persistentvolumeclaim "gone" not found.'
    assert e.value.diagnosis.unschedulable_plugins == {NAME}


def test_a_read_write_once_pod_claim_in_use_rejects_every_node() -> None:
    holder = with_claims(make_pod("holder", node="a"), "solo")
    c = cluster([holder])
    pod = with_claims(make_pod("p"), "solo")
    assert verdicts(c, pod) == {"a": RWOP_CONFLICT, "b": RWOP_CONFLICT}
    with pytest.raises(FitError) as e:
        c.schedule(pod)
    assert str(e.value) == ("0/2 nodes are available: 2 node has pod using PersistentVolumeClaim with the same "
                            "name and ReadWriteOncePod access mode.")
    assert e.value.diagnosis.unschedulable_plugins == {NAME}
    # the holder gone (deleted, or terminated: the informer drops it), the claim is free again
    c.cache.remove_pod(holder)
    assert verdicts(c, pod) == {"a": None, "b": None}


def test_other_access_modes_and_other_namespaces_do_not_conflict() -> None:
    holder = with_claims(make_pod("holder", node="a"), "shared", "solo")
    other_ns = with_claims(make_pod("elsewhere", "other", node="b"), "solo")
    c = cluster([holder], claims=(pvc("solo", modes=RWOP), pvc("shared"), pvc("solo", ns="other", modes=RWOP)))
    assert verdicts(c, with_claims(make_pod("p"), "shared")) == {"a": None, "b": None}  # ReadWriteOnce
    assert verdicts(c, with_claims(make_pod("q", "other"), "solo")) == {"a": None, "b": None}
    c.cache.add_pod(other_ns)
    assert verdicts(c, with_claims(make_pod("q", "other"), "solo")) == {"a": RWOP_CONFLICT, "b": RWOP_CONFLICT}


def test_an_assumed_pod_holds_the_claim_for_the_next_cycle() -> None:
    c = cluster()
    assert c.place(with_claims(make_pod("first"), "solo"))
    with pytest.raises(FitError):
        c.schedule(with_claims(make_pod("second"), "solo"))


def test_add_pod_and_remove_pod_count_the_uses() -> None:
    holder = with_claims(make_pod("holder", node="a"), "solo")
    c = cluster([holder])
    pl, pod = plugin(c), PodInfo(with_claims(make_pod("p"), "solo"))
    state = CycleState()
    assert pl.pre_filter(state, pod) is None
    ni = c.node("a")
    pl.remove_pod(state, pod, PodInfo(holder), ni)
    assert pl.filter(state, pod, ni) is None
    clone = state.clone()
    pl.add_pod(clone, pod, PodInfo(with_claims(make_pod("nominated"), "solo")), ni)
    assert pl.filter(clone, pod, ni) == RWOP_CONFLICT
    assert pl.filter(state, pod, ni) is None  # the clone counts apart
    pl.add_pod(state, pod, PodInfo(with_claims(make_pod("x", "other"), "solo")), ni)  # another namespace
    assert pl.filter(state, pod, ni) is None


async def test_preemption_evicts_the_lower_priority_holder_only() -> None:
    holder = with_claims(make_pod("holder", cpu="1", node="b", priority=0), "solo")
    bystander = make_pod("bystander", cpu="1", node="b", priority=0)
    other = make_pod("other", cpu="1", node="a", priority=0)
    c = cluster([holder, bystander, other])
    pod = with_claims(make_pod("p", cpu="1", priority=100), "solo")
    api, _ = prepare(c, [holder, bystander, other, pod])
    node, st = await preempt(c, pod)
    assert (node, st) == ("b", None)
    assert api.pods.deletes == [("default", "holder")]


async def test_a_holder_of_equal_priority_cannot_be_preempted() -> None:
    holder = with_claims(make_pod("holder", node="a", priority=100), "solo")
    c = cluster([holder])
    pod = with_claims(make_pod("p", priority=100), "solo")
    prepare(c, [holder, pod])
    node, st = await preempt(c, pod)
    assert node == "" and st.message == (
        "preemption: 0/2 nodes are available: 2 No preemption victims found for incoming pod.")


def disk_pod(name: str, source: str, spec: dict, node: str | None = None) -> dict:
    pod = make_pod(name, node=node)
    pod["spec"]["volumes"] = [{"name": "disk", source: spec}]
    return pod


@pytest.mark.parametrize(("source", "existing", "new", "conflict"), [
    ("gcePersistentDisk", {"pdName": "d"}, {"pdName": "d"}, True),
    ("gcePersistentDisk", {"pdName": "d", "readOnly": True}, {"pdName": "d"}, True),
    ("gcePersistentDisk", {"pdName": "d", "readOnly": True}, {"pdName": "d", "readOnly": True}, False),
    ("gcePersistentDisk", {"pdName": "d"}, {"pdName": "e"}, False),
    ("awsElasticBlockStore", {"volumeID": "v", "readOnly": True}, {"volumeID": "v", "readOnly": True}, True),
    ("awsElasticBlockStore", {"volumeID": "v"}, {"volumeID": "w"}, False),
    ("iscsi", {"iqn": "q", "targetPortal": "t", "lun": 0}, {"iqn": "q", "targetPortal": "u", "lun": 1}, True),
    ("iscsi", {"iqn": "q", "readOnly": True}, {"iqn": "q", "readOnly": True}, False),
    ("iscsi", {"iqn": "q"}, {"iqn": "r"}, False),
    ("rbd", {"monitors": ["m1", "m2"], "image": "i"}, {"monitors": ["m2"], "pool": "rbd", "image": "i"}, True),
    ("rbd", {"monitors": ["m1"], "image": "i"}, {"monitors": ["m2"], "image": "i"}, False),
    ("rbd", {"monitors": ["m1"], "image": "i"}, {"monitors": ["m1"], "pool": "p", "image": "i"}, False),
    ("rbd", {"monitors": ["m1"], "image": "i", "readOnly": True}, {"monitors": ["m1"], "image": "i",
                                                                    "readOnly": True}, False),
])
def test_in_tree_disks_conflict_with_the_pods_on_the_node(source: str, existing: dict, new: dict,
                                                          conflict: bool) -> None:
    c = cluster([disk_pod("old", source, existing, node="a")])
    assert verdicts(c, disk_pod("new", source, new)) == {"a": DISK_CONFLICT if conflict else None, "b": None}


def test_disks_of_another_kind_never_conflict() -> None:
    c = cluster([disk_pod("old", "gcePersistentDisk", {"pdName": "d"}, node="a")])
    assert verdicts(c, disk_pod("new", "awsElasticBlockStore", {"volumeID": "d"})) == {"a": None, "b": None}


def test_a_deleted_pod_or_a_new_claim_requeues_the_pods_it_rejected() -> None:
    c = cluster()
    c.queue.add(with_claims(make_pod("p"), "solo"))
    qpi = c.queue.pop_nowait()
    qpi.unschedulable_plugins = {NAME}
    assert c.queue.add_unschedulable_if_not_present(qpi, c.queue.scheduling_cycle)
    assert c.queue.move_all_to_active_or_backoff(PV_ADD) == 0  # no concern of this plugin
    assert c.queue.move_all_to_active_or_backoff(ASSIGNED_POD_DELETE) == 1
    assert (PERSISTENT_VOLUME_CLAIM, ADD) in VolumeRestrictions.events
