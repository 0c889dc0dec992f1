"""Field sets, FieldsV1 and ownership tracking (structured-merge-diff semantics)."""

from __future__ import annotations

import pytest

from apimachinery import errors
from apimachinery.strategic import schema_for
from apiserver import managedfields as mf

DEP = {
    "apiVersion": "apps/v1", "kind": "Deployment",
    "metadata": {"name": "d", "namespace": "n", "uid": "u", "labels": {"app": "web"}, "finalizers": ["x"]},
    "spec": {"replicas": 2, "template": {"spec": {"containers": [
        {"name": "web", "image": "nginx", "ports": [{"containerPort": 80}], "args": ["a", "b"]}]}}},
    "status": {"replicas": 1},
}


def test_flatten_uses_list_semantics_and_strips_system_metadata() -> None:
    flat = mf.flatten(DEP, schema_for("apps/v1", "Deployment"), "", has_status=True)
    c = ("f:spec", "f:template", "f:spec", "f:containers", 'k:{"name":"web"}')
    assert (*c, ".") in flat and flat[(*c, "f:image")] == "nginx"
    assert (*c, "f:ports", 'k:{"containerPort":80,"protocol":"TCP"}', ".") in flat  # list-map keys incl. defaults
    assert flat[(*c, "f:args")] == ["a", "b"]  # atomic list: one leaf
    assert ("f:metadata", "f:finalizers", 'v:"x"') in flat  # a set
    assert ("f:metadata", "f:labels", "f:app") in flat
    assert not any(p[:2] in {("f:metadata", "f:name"), ("f:metadata", "f:uid")} for p in flat)
    assert not any(p[0] == "f:status" for p in flat)  # status is the status subresource's


def test_fieldsv1_round_trip_and_path_strings() -> None:
    paths = set(mf.flatten(DEP, schema_for("apps/v1", "Deployment"), "", has_status=True))
    encoded = mf.encode_fields(paths)
    assert encoded["f:spec"]["f:template"]["f:spec"]["f:containers"]['k:{"name":"web"}']["."] == {}
    assert mf.decode_fields(encoded) == paths
    assert mf.path_string(("f:spec", "f:containers", 'k:{"name":"web"}', "f:image")) == '.spec.containers[name="web"].image'
    assert mf.path_string(("f:metadata", "f:finalizers", 'v:"x"')) == '.metadata.finalizers[="x"]'


def test_updates_transfer_ownership() -> None:
    tracker = mf.ManagedFields()
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1", "b": "2"}}
    tok = mf.REQUEST_MANAGER.set("alice")
    try:
        tracker.on_create(obj, None, {})
    finally:
        mf.REQUEST_MANAGER.reset(tok)
    assert [e["manager"] for e in obj["metadata"]["managedFields"]] == ["alice"]
    new = {**obj, "metadata": dict(obj["metadata"]), "data": {"a": "9", "b": "2"}}
    tok = mf.REQUEST_MANAGER.set("bob")
    try:
        tracker.on_update(new, obj, None, {}, "")
    finally:
        mf.REQUEST_MANAGER.reset(tok)
    owners = {e["manager"]: mf.decode_fields(e["fieldsV1"]) for e in new["metadata"]["managedFields"]}
    assert owners == {"alice": {("f:data", "f:b")}, "bob": {("f:data", "f:a")}}


def test_manager_names() -> None:
    assert mf.manager_for({}, "kubectl/v1.37.1 (linux/amd64)") == "kubectl"
    assert mf.manager_for({"fieldManager": "me"}, "x") == "me"
    assert mf.manager_for({"fieldManager": ""}, "curl/8.0") == "curl"  # empty = unset, as upstream
    with pytest.raises(errors.StatusError):
        mf.manager_for({"fieldManager": "x" * 200}, "")


def _as(manager: str, fn, *args) -> None:
    tok = mf.REQUEST_MANAGER.set(manager)
    try:
        fn(*args)
    finally:
        mf.REQUEST_MANAGER.reset(tok)


def _dep(replicas: int, status_replicas: int, managed: list[dict]) -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "d", "namespace": "n", "uid": "u", "managedFields": managed},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "a"}}},
            "status": {"replicas": status_replicas}}


APPLIER = {"manager": "alice", "operation": "Apply", "apiVersion": "apps/v1", "time": "2024-01-01T00:00:00Z",
           "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:replicas": {}, "f:selector": {}}}}
STATUS_WRITER = {"manager": "ctrl", "operation": "Update", "apiVersion": "apps/v1", "time": "2024-01-01T00:00:01Z",
                 "fieldsType": "FieldsV1", "fieldsV1": {"f:status": {"f:replicas": {}}}, "subresource": "status"}


def test_scale_writes_own_the_parents_replicas_with_subresource_scale() -> None:
    """Upstream's ScaleHandler: the writer takes spec.replicas from everyone and owns it in an entry of
    its own (parent's apiVersion, subresource scale, no time); other fields and entries stay."""
    old = _dep(2, 1, [APPLIER, STATUS_WRITER])
    new = _dep(5, 1, [APPLIER, STATUS_WRITER])
    _as("kubectl", mf.ManagedFields().on_update, new, old, None, {}, "scale", True)
    assert new["metadata"]["managedFields"] == [
        {**APPLIER, "fieldsV1": {"f:spec": {"f:selector": {}}}},
        # entries sort as upstream's: appliers first, then updates oldest first (no time = oldest)
        {"manager": "kubectl", "operation": "Update", "apiVersion": "apps/v1", "fieldsType": "FieldsV1",
         "fieldsV1": {"f:spec": {"f:replicas": {}}}, "subresource": "scale"},
        STATUS_WRITER,
    ]
    # the previous scaler loses it to the next one; an entry left empty goes
    newer = _dep(7, 1, new["metadata"]["managedFields"])
    _as("hpa", mf.ManagedFields().on_update, newer, new, None, {}, "scale", True)
    assert [(e["manager"], e.get("subresource")) for e in newer["metadata"]["managedFields"]] == [
        ("alice", None), ("hpa", "scale"), ("ctrl", "status")]


def test_scale_writes_that_track_nothing() -> None:
    # the same replicas: nothing changes hands
    old = _dep(2, 1, [APPLIER])
    same = _dep(2, 1, [APPLIER])
    _as("kubectl", mf.ManagedFields().on_update, same, old, None, {}, "scale", True)
    assert same["metadata"]["managedFields"] == [APPLIER]
    # nobody owns spec.replicas (say it was defaulted under an apply): upstream's Scale then has no
    # managedFields and is not tracked, so nothing is recorded
    unowned = {**APPLIER, "fieldsV1": {"f:spec": {"f:selector": {}}}}
    old = _dep(1, 1, [unowned])
    new = _dep(4, 1, [unowned])
    _as("kubectl", mf.ManagedFields().on_update, new, old, None, {}, "scale", True)
    assert new["metadata"]["managedFields"] == [unowned]


def test_status_updates_keep_other_entries_and_ignore_body_managed_fields() -> None:
    old = _dep(2, 1, [APPLIER, STATUS_WRITER])
    # a /status write's body cannot set managedFields (upstream's decodeLiveOrNew for subresources)
    new = _dep(2, 3, [{}])
    _as("kubelet", mf.ManagedFields().on_update, new, old, None, {}, "status", True)
    got = new["metadata"]["managedFields"]
    assert got[0] == APPLIER  # spec owners are untouched by a status write
    assert [(e["manager"], e["operation"], e.get("subresource"), e["fieldsV1"]) for e in got[1:]] == [
        ("kubelet", "Update", "status", {"f:status": {"f:replicas": {}}})]  # ctrl lost its only field


def test_entries_sort_as_upstream() -> None:
    e = [mf.Entry("b", "Update", "v1", "", {("f:a",)}, "2024-01-01T00:00:02Z"),
         mf.Entry("z", "Apply", "v1", "", {("f:a",)}, "2024-01-01T00:00:09Z"),
         mf.Entry("a", "Update", "v1", "status", {("f:a",)}, "2024-01-01T00:00:02Z"),
         mf.Entry("c", "Update", "v1", "scale", {("f:a",)}, None),
         mf.Entry("a", "Update", "v1", "", {("f:a",)}, "2024-01-01T00:00:02Z")]
    meta: dict = {}
    mf._store(meta, e)
    assert [(m["manager"], m.get("subresource", "")) for m in meta["managedFields"]] == [
        ("z", ""), ("c", "scale"), ("a", ""), ("a", "status"), ("b", "")]
