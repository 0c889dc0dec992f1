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
