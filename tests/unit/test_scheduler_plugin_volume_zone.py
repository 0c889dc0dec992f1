"""VolumeZone: the zone / region labels of a pod's bound volumes against the node's labels."""

from __future__ import annotations

import pytest

from scheduler.framework import CycleState
from scheduler.plugins.volume_zone import ERR_REASON_CONFLICT, VolumeZone, label_zones_to_set
from scheduler.podinfo import PodInfo
from scheduler.status import SKIP, UNSCHEDULABLE_AND_UNRESOLVABLE, FitError, Status
from tests.unit.scheduler_fakes import (
    Cluster,
    FakeStore,
    make_node,
    make_pod,
    pv,
    pvc,
    storage_class,
    with_claims,
)

NAME = "VolumeZone"
ZONE, REGION = "topology.kubernetes.io/zone", "topology.kubernetes.io/region"
BETA_ZONE, BETA_REGION = "failure-domain.beta.kubernetes.io/zone", "failure-domain.beta.kubernetes.io/region"
CONFLICT = Status(UNSCHEDULABLE_AND_UNRESOLVABLE, ERR_REASON_CONFLICT, plugin=NAME)


def cluster(nodes: dict[str, dict], pv_labels: dict, *, claims: tuple = (), pvs: tuple = ()) -> Cluster:
    """Nodes by name → labels; the claim "data" bound to the volume "vol" carrying `pv_labels`."""
    c = Cluster([make_node(n, labels=labels) for n, labels in nodes.items()])
    claim = pvc("data", volume="vol", bound=True)
    c.handle.stores.update({
        "pvcs": FakeStore([claim, *claims]),
        "pvs": FakeStore([pv("vol", labels=pv_labels, claim=claim, phase="Bound"), *pvs]),
        "storageclasses": FakeStore([storage_class("local"), storage_class("now", mode="Immediate")]),
    })
    return c


def verdicts(c: Cluster, pod: dict) -> dict[str, Status | None]:
    state, pi = c.prefiltered(pod)
    return {ni.name: c.fw.run_filter(state, pi, ni) for ni in c.cache.node_list()}


def plugin(c: Cluster) -> VolumeZone:
    return c.fw.plugin(NAME)  # type: ignore[return-value]


def test_the_volumes_zone_must_be_the_nodes() -> None:
    c = cluster({"a": {ZONE: "z1", REGION: "r"}, "b": {ZONE: "z2", REGION: "r"}, "plain": {}}, {ZONE: "z1"})
    pod = with_claims(make_pod("p"), "data")
    # a node without zone labels fits anything (a single-zone cluster)
    assert verdicts(c, pod) == {"a": None, "b": CONFLICT, "plain": None}
    with pytest.raises(FitError) as e:
        c.schedule(with_claims(make_pod("q", node_selector={"kubernetes.io/hostname": "b"}), "data"))
    assert str(e.value) == ("0/3 nodes are available: 1 node(s) had no available volume zone, "
                            "2 node(s) didn't match Pod's node affinity/selector.")


@pytest.mark.parametrize(("pv_labels", "node_labels", "fits"), [
    ({ZONE: "z1__z2"}, {ZONE: "z2"}, True),  # a volume in several zones
    ({ZONE: "z1__z2"}, {ZONE: "z3"}, False),
    ({ZONE: " z1 __z2"}, {ZONE: "z1"}, True),  # parts are trimmed
    ({ZONE: "z1__"}, {ZONE: "z9"}, True),  # an empty part: the label is ignored
    ({BETA_ZONE: "z1"}, {ZONE: "z1"}, True),  # a beta volume label matches the node's GA label
    ({BETA_ZONE: "z1"}, {BETA_ZONE: "z1"}, True),
    ({ZONE: "z1"}, {BETA_ZONE: "z1"}, False),  # not the other way round
    ({REGION: "r1"}, {ZONE: "z1", REGION: "r2"}, False),
    ({BETA_REGION: "r1", ZONE: "z1"}, {ZONE: "z1", REGION: "r1"}, True),
    ({ZONE: "z1"}, {REGION: "r1"}, False),  # the node has a topology label, not the zone
    ({"example.com/rack": "r1"}, {ZONE: "z1"}, True),  # other labels do not count
])
def test_label_matching(pv_labels: dict, node_labels: dict, fits: bool) -> None:
    c = cluster({"n": node_labels}, pv_labels)
    assert verdicts(c, with_claims(make_pod("p"), "data")) == {"n": None if fits else CONFLICT}


def test_label_zones_to_set() -> None:
    assert label_zones_to_set("a") == {"a"}
    assert label_zones_to_set("a__b__a") == {"a", "b"}
    assert label_zones_to_set("a____b") is None
    assert label_zones_to_set("") is None


def test_pods_without_labelled_volumes_skip_the_plugin() -> None:
    c = cluster({"n": {ZONE: "z"}}, {})
    assert plugin(c).pre_filter(CycleState(), PodInfo(with_claims(make_pod("p"), "data"))) == Status(SKIP)
    assert plugin(c).pre_filter(CycleState(), PodInfo(make_pod("q"))) == Status(SKIP)


def test_unbound_claims_of_a_wait_for_first_consumer_class_are_skipped() -> None:
    c = cluster({"n": {ZONE: "z"}}, {ZONE: "z"}, claims=(pvc("later"),))
    pl = plugin(c)
    assert pl.pre_filter(CycleState(), PodInfo(with_claims(make_pod("p"), "later"))) == Status(SKIP)
    state = CycleState()
    assert pl.pre_filter(state, PodInfo(with_claims(make_pod("p"), "later", "data"))) is None
    assert state.data[NAME] == [(ZONE, frozenset({"z"}))]


@pytest.mark.parametrize(("claims", "pvs", "claim", "message"), [
    ((), (), "gone", 'persistentvolumeclaim "gone" not found'),
    ((pvc("x", volume="nowhere", bound=True),), (), "x", 'persistentvolume "nowhere" not found'),
    ((pvc("x", cls=None),), (), "x", "PersistentVolumeClaim had no pv name and storageClass name"),
    ((pvc("x", cls="missing"),), (), "x", 'storageclass.storage.k8s.io "missing" not found'),
    ((pvc("x", cls="now"),), (), "x", "PersistentVolume had no name"),
    ((), (), "", "PersistentVolumeClaim had no name"),
])
def test_what_prefilter_rejects(claims: tuple, pvs: tuple, claim: str, message: str) -> None:
    c = cluster({"n": {ZONE: "z"}}, {ZONE: "z"}, claims=claims, pvs=pvs)
    st = plugin(c).pre_filter(CycleState(), PodInfo(with_claims(make_pod("p"), claim)))
    assert st == Status(UNSCHEDULABLE_AND_UNRESOLVABLE, message)


def test_a_class_without_binding_mode_is_rejected() -> None:
    c = cluster({"n": {}}, {}, claims=(pvc("x", cls="odd"),))
    odd = storage_class("odd")
    del odd["volumeBindingMode"]
    c.handle.stores["storageclasses"].put(odd)
    st = plugin(c).pre_filter(CycleState(), PodInfo(with_claims(make_pod("p"), "x")))
    assert st == Status(UNSCHEDULABLE_AND_UNRESOLVABLE, 'VolumeBindingMode not set for StorageClass "odd"')


def test_filter_without_prefilter_looks_the_volumes_up() -> None:
    c = cluster({"a": {ZONE: "z1"}, "b": {ZONE: "z2"}}, {ZONE: "z1"})
    pl, pod = plugin(c), PodInfo(with_claims(make_pod("p"), "data"))
    assert pl.filter(CycleState(), pod, c.node("a")) is None
    assert pl.filter(CycleState(), pod, c.node("b")) == CONFLICT
    gone = PodInfo(with_claims(make_pod("q"), "gone"))
    assert pl.filter(CycleState(), gone, c.node("a")) == Status(
        UNSCHEDULABLE_AND_UNRESOLVABLE, 'persistentvolumeclaim "gone" not found', plugin=NAME)
