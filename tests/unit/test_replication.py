"""core/v1 ReplicationController and PodTemplate: strategies, printing, /scale, and the
replicationcontroller manager (the ReplicaSet controller with a map selector) on the fake API."""

from __future__ import annotations

import datetime as dt

import pytest

from apiserver import tables
from apiserver.resources import TABLE
from apiserver.subresources import Subresources
from controller_manager.base import ControllerContext, FakeClock
from controller_manager.fake import FakeAPI, FakeInformerFactory
from controller_manager.replication import ReplicationManager

NS = "default"
NOW = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.UTC)
RC = TABLE.lookup("", "v1", "replicationcontrollers")
PT = TABLE.lookup("", "v1", "podtemplates")


def make_rc(name: str = "web", replicas: int | None = 3, selector: dict | None = None, labels: dict | None = None) -> dict:
    labels = labels or {"app": name}
    spec: dict = {"template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "c", "image": "img:1"}]}}}
    if replicas is not None:
        spec["replicas"] = replicas
    if selector is not None:
        spec["selector"] = selector
    return {"apiVersion": "v1", "kind": "ReplicationController", "metadata": {"name": name, "namespace": NS},
            "spec": spec}


def defaulted(obj: dict) -> dict:
    assert RC is not None
    RC.strategy.default(obj)
    return obj


def fields(causes: list[dict]) -> list[str]:
    return [c["field"] for c in causes]


# -- the resource -----------------------------------------------------------------------------


def test_resource_rows() -> None:
    assert RC is not None and PT is not None
    assert (RC.kind, RC.namespaced, RC.short_names, RC.categories, RC.subresources) == (
        "ReplicationController", True, ("rc",), ("all",), ("status", "scale"))
    assert RC.strategy.has_status and RC.strategy.tracks_generation
    assert (PT.kind, PT.namespaced, PT.subresources) == ("PodTemplate", True, ())


def test_rc_defaults_selector_labels_and_replicas_from_the_template() -> None:
    rc = defaulted(make_rc(replicas=None, labels={"app": "web", "tier": "fe"}))
    assert rc["spec"]["selector"] == {"app": "web", "tier": "fe"}
    assert rc["metadata"]["labels"] == {"app": "web", "tier": "fe"}
    assert rc["spec"]["replicas"] == 1
    assert rc["spec"]["template"]["spec"]["restartPolicy"] == "Always"
    # given ones are kept
    rc = defaulted({**make_rc(selector={"app": "web"}), "metadata": {"name": "web", "labels": {"own": "x"}}})
    assert rc["spec"]["selector"] == {"app": "web"} and rc["metadata"]["labels"] == {"own": "x"}
    assert rc["spec"]["replicas"] == 3


def test_rc_validation() -> None:
    assert RC is not None
    st = RC.strategy
    assert st.validate(defaulted(make_rc()), True) == []
    causes = st.validate(defaulted(make_rc(selector={"app": "other"})), True)
    assert fields(causes) == ["spec.template.metadata.labels"]
    assert "`selector` does not match template `labels`" in causes[0]["message"]
    # a selector that is a subset of the template's labels matches
    assert st.validate(defaulted(make_rc(selector={"app": "web"}, labels={"app": "web", "v": "1"})), True) == []
    bad = defaulted(make_rc(replicas=-1))
    bad["spec"]["minReadySeconds"] = -2
    bad["spec"]["template"]["spec"].update(restartPolicy="OnFailure", activeDeadlineSeconds=5)
    assert fields(st.validate(bad, True)) == ["spec.minReadySeconds", "spec.replicas", "spec.template.spec.restartPolicy",
                                              "spec.template.spec.activeDeadlineSeconds"]
    empty = {"apiVersion": "v1", "kind": "ReplicationController", "metadata": {"name": "x", "namespace": NS},
             "spec": {}}
    st.default(empty)
    assert fields(st.validate(empty, True)) == ["spec.selector", "spec.template"]
    # the selector may change (no immutability rule upstream)
    old, new = defaulted(make_rc()), defaulted(make_rc(selector={"app": "web"}, labels={"app": "web", "v": "2"}))
    old["metadata"]["resourceVersion"] = new["metadata"]["resourceVersion"] = "1"
    assert st.validate_update(new, old, True) == []


def test_rc_status_validation_and_fields() -> None:
    assert RC is not None
    st = RC.strategy
    ok = {"status": {"replicas": 3, "fullyLabeledReplicas": 3, "readyReplicas": 2, "availableReplicas": 1}}
    assert st.validate_status_update(ok, ok) == []
    bad = {"status": {"replicas": 1, "readyReplicas": 2, "availableReplicas": 3, "observedGeneration": -1}}
    assert fields(st.validate_status_update(bad, ok)) == [
        "status.observedGeneration", "status.readyReplicas", "status.availableReplicas", "status.availableReplicas"]
    assert st.fields({"status": {"replicas": 4}}) == {"status.replicas": "4"}
    assert st.fields({}) == {"status.replicas": "0"}


def test_scale_status_selector_is_the_map_as_a_string() -> None:
    assert RC is not None
    rc = defaulted(make_rc(labels={"b": "2", "a": "1"}))
    rc["metadata"].update(uid="u", resourceVersion="5", creationTimestamp="2026-01-01T00:00:00Z")
    rc["status"] = {"replicas": 2}
    scale = Subresources.to_scale(RC, rc)
    assert scale["spec"] == {"replicas": 3}
    assert scale["status"] == {"replicas": 2, "selector": "a=1,b=2"}
    rs = TABLE.lookup("apps", "v1", "replicasets")
    assert rs is not None
    assert Subresources.to_scale(rs, {"metadata": {"name": "x"}, "spec": {"selector": {"matchLabels": {"a": "1"}}}})[
        "status"]["selector"] == "a=1"


def test_podtemplate_strategy() -> None:
    assert PT is not None
    st = PT.strategy
    pt = {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "t", "namespace": NS},
          "template": {"metadata": {"labels": {"app": "t"}}, "spec": {"containers": [{"name": "c", "image": "img"}]}}}
    st.default(pt)
    assert pt["template"]["spec"]["restartPolicy"] == "Always"
    assert pt["template"]["spec"]["containers"][0]["imagePullPolicy"] == "Always"
    assert st.validate(pt, True) == []
    assert fields(st.validate({"metadata": {"name": "t", "namespace": NS}}, True)) == ["template.spec.containers"]
    bad = {"metadata": {"name": "t", "namespace": NS}, "template": {"metadata": {"labels": {"bad key": "v"}},
                                                    "spec": {"containers": [{"name": "c", "image": "i"}],
                                                             "ephemeralContainers": [{"name": "e", "image": "i"}]}}}
    assert fields(st.validate(bad, True)) == ["template.labels", "template.spec.ephemeralContainers"]
    changed = {**pt, "template": {**pt["template"], "metadata": {"labels": {"app": "u"}}}}
    assert st.spec_changed(changed, pt) and not st.spec_changed({**pt, "metadata": {"name": "t", "labels": {"x": "y"}}}, pt)


# -- printing ---------------------------------------------------------------------------------


def test_rc_and_podtemplate_columns() -> None:
    rc = defaulted(make_rc(labels={"app": "web", "tier": "fe"}))
    rc["metadata"]["creationTimestamp"] = (NOW - dt.timedelta(seconds=90)).strftime("%Y-%m-%dT%H:%M:%SZ")
    rc["status"] = {"replicas": 2, "readyReplicas": 1}
    t = tables.table("replicationcontrollers", [rc], now=NOW)
    assert [(c["name"], c["priority"]) for c in t["columnDefinitions"]] == [
        ("Name", 0), ("Desired", 0), ("Current", 0), ("Ready", 0), ("Age", 0),
        ("Containers", 1), ("Images", 1), ("Selector", 1)]
    assert t["rows"][0]["cells"] == ["web", 3, 2, 1, "90s", "c", "img:1", "app=web,tier=fe"]
    pt = {"metadata": {"name": "t"}, "template": {"metadata": {"labels": {"b": "2", "a": "1"}},
                                                   "spec": {"containers": [{"name": "x", "image": "i:1"},
                                                                           {"name": "y", "image": "j:2"}]}}}
    t = tables.table("podtemplates", [pt, {"metadata": {"name": "empty"}}], now=NOW)
    assert [c["name"] for c in t["columnDefinitions"]] == ["Name", "Containers", "Images", "Pod Labels"]
    assert [r["cells"] for r in t["rows"]] == [["t", "x,y", "i:1,j:2", "a=1,b=2"], ["empty", "", "", "<none>"]]


# -- the controller ---------------------------------------------------------------------------


@pytest.fixture
def env():
    clock = FakeClock()
    api = FakeAPI(clock)
    ctx = ControllerContext(api, FakeInformerFactory(api), clock=clock, recorder_factory=api.recorder)  # type: ignore[arg-type]
    return api, ctx


def rc_pods(api: FakeAPI) -> list[dict]:
    return api.list_objects("v1", "pods", NS)


async def test_manager_creates_owned_pods_and_writes_status(env) -> None:
    api, ctx = env
    assert ReplicationManager.name == "replicationcontroller-controller"
    assert "replicationcontroller" in ReplicationManager.aliases
    rm = ReplicationManager(ctx)
    rc = api.create("v1", "replicationcontrollers", defaulted(make_rc(replicas=3, labels={"app": "web", "v": "1"})))
    await rm.sync(f"{NS}/web")
    pods = rc_pods(api)
    assert len(pods) == 3
    for p in pods:
        assert p["metadata"]["labels"] == {"app": "web", "v": "1"}
        assert p["metadata"]["ownerReferences"] == [{"apiVersion": "v1", "kind": "ReplicationController", "name": "web",
                                                     "uid": rc["metadata"]["uid"], "controller": True,
                                                     "blockOwnerDeletion": True}]
    await rm.sync(f"{NS}/web")
    status = api.get_object("v1", "replicationcontrollers", NS, "web")["status"]
    assert (status["replicas"], status["fullyLabeledReplicas"]) == (3, 3)
    # scale down: the surplus is deleted
    cur = api.get_object("v1", "replicationcontrollers", NS, "web")
    api.update("v1", "replicationcontrollers", {**cur, "spec": {**cur["spec"], "replicas": 1}})
    await rm.sync(f"{NS}/web")
    assert len(rc_pods(api)) == 1


async def test_manager_adopts_orphans_through_the_map_selector(env) -> None:
    api, ctx = env
    rm = ReplicationManager(ctx)
    api.create("v1", "pods", {"apiVersion": "v1", "kind": "Pod",
                              "metadata": {"name": "stray", "namespace": NS, "labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "c", "image": "i"}]}})
    api.create("v1", "pods", {"apiVersion": "v1", "kind": "Pod",
                              "metadata": {"name": "other", "namespace": NS, "labels": {"app": "db"}},
                              "spec": {"containers": [{"name": "c", "image": "i"}]}})
    rc = api.create("v1", "replicationcontrollers", defaulted(make_rc(replicas=2)))
    # the orphan's informer event finds its would-be owner through the map selector
    assert [o["metadata"]["name"] for o in rm._sets_selecting(api.get_object("v1", "pods", NS, "stray"))] == ["web"]
    assert rm._sets_selecting(api.get_object("v1", "pods", NS, "other")) == []
    await rm.sync(f"{NS}/web")
    stray = api.get_object("v1", "pods", NS, "stray")
    assert stray["metadata"]["ownerReferences"][0]["uid"] == rc["metadata"]["uid"]
    owned = [p for p in rc_pods(api) if p["metadata"].get("ownerReferences")]
    assert len(owned) == 2  # the orphan counts: one more pod created, not two
    assert api.get_object("v1", "pods", NS, "other")["metadata"].get("ownerReferences") is None
