"""Custom resources' table rows and strategy (apiserver.crd.resource), the dynamic resource table
and the discovery documents that follow it."""

from __future__ import annotations

import datetime as dt

import orjson
import pytest

from apimachinery import errors
from apiserver import discovery
from apiserver.crd.resource import CustomResourceStrategy, rows_for
from apiserver.resources import TABLE, version_priority
from apiserver.tables import table

NOW = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.UTC)


def crd(versions: list[dict] | None = None, stored: list[str] | None = None) -> dict:
    v1 = {"name": "v1", "served": True, "storage": True,
          "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
          "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.size",
                                                   "statusReplicasPath": ".status.ready",
                                                   "labelSelectorPath": ".status.selector"}},
          "additionalPrinterColumns": [
              {"name": "Size", "type": "integer", "jsonPath": ".spec.size"},
              {"name": "Tags", "type": "string", "jsonPath": ".spec.tags", "priority": 1, "description": "the tags"},
              {"name": "On", "type": "boolean", "jsonPath": ".spec.on"},
              {"name": "Since", "type": "date", "jsonPath": ".status.since"}]}
    return {"metadata": {"name": "widgets.example.com"},
            "spec": {"group": "example.com", "scope": "Namespaced",
                     "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList",
                               "shortNames": ["wd"], "categories": ["all"]},
                     "versions": versions or [v1]},
            "status": {"acceptedNames": {"plural": "widgets", "singular": "widget", "kind": "Widget",
                                         "shortNames": ["wd"], "categories": ["all"]},
                       "storedVersions": stored or ["v1"]}}


def test_rows_one_per_served_version_sharing_one_storage_prefix() -> None:
    d = crd()
    beta = {"name": "v1beta1", "served": True, "storage": False}
    off = {"name": "v1alpha1", "served": False, "storage": False}
    d["spec"]["versions"] += [beta, off]
    rows = rows_for(d)
    assert [(r.group, r.version, r.kind, r.plural) for r in rows] == [
        ("example.com", "v1", "Widget", "widgets"), ("example.com", "v1beta1", "Widget", "widgets")]
    assert {r.storage_prefix for r in rows} == {"/registry/example.com/widgets/"}
    assert rows[0].key("ns", "a") == "/registry/example.com/widgets/ns/a"
    assert rows[0].subresources == ("status", "scale") and rows[1].subresources == ()
    assert (rows[0].short_names, rows[0].categories, rows[0].singular) == (("wd",), ("all",), "widget")


def test_accepted_names_are_served_not_requested_ones() -> None:
    d = crd()
    d["spec"]["names"]["plural"] = "gadgets"  # requested, not (yet) accepted
    assert rows_for(d)[0].plural == "widgets"


def test_generation_counts_changes_outside_metadata_and_status() -> None:
    st = CustomResourceStrategy(crd(), crd()["spec"]["versions"][0])
    old = {"metadata": {"name": "a"}, "spec": {"size": 1}, "status": {"ready": 0}}
    assert not st.spec_changed({**old, "status": {"ready": 1}, "metadata": {"name": "a", "labels": {"x": "y"}}}, old)
    assert st.spec_changed({**old, "spec": {"size": 2}}, old)
    assert st.spec_changed({**old, "other": 1}, old)  # any top-level field, not only spec
    no_status = crd()
    del no_status["spec"]["versions"][0]["subresources"]["status"]
    st = CustomResourceStrategy(no_status, no_status["spec"]["versions"][0])
    assert st.spec_changed({**old, "status": {"ready": 1}}, old)  # status is an ordinary field then


def test_scale_reads_and_writes_the_definitions_paths() -> None:
    st = CustomResourceStrategy(crd(), crd()["spec"]["versions"][0])
    obj = {"spec": {"size": 3}, "status": {"ready": 2, "selector": "app=w"}}
    assert (st.scale_spec_replicas(obj), st.scale_status_replicas(obj)) == (3, 2)
    assert st.scale_selector(obj, None) == "app=w"
    empty: dict = {}
    assert (st.scale_spec_replicas(empty), st.scale_status_replicas(empty), st.scale_selector(empty, None)) == (0, 0, "")
    st.set_scale_replicas(empty, 5)
    assert empty == {"spec": {"size": 5}}


def test_printer_columns_as_upstreams_table_convertor() -> None:
    st = CustomResourceStrategy(crd(), crd()["spec"]["versions"][0])
    obj = {"metadata": {"name": "w1"},
           "spec": {"size": 2.0, "tags": ["a", "b"], "on": "yes"},
           "status": {"since": "2026-01-01T11:00:00Z"}}
    t = table("widgets", [obj, {"metadata": {"name": "w2"}}], now=NOW, printer=st.table_printer())
    assert [(c["name"], c["type"], c["format"], c["priority"]) for c in t["columnDefinitions"]] == [
        ("Name", "string", "name", 0), ("Size", "integer", "", 0), ("Tags", "string", "", 1),
        ("On", "boolean", "", 0), ("Since", "date", "", 0)]
    assert t["columnDefinitions"][2]["description"] == "the tags"
    assert t["rows"][0]["cells"] == ["w1", 2, '["a","b"]', None, "60m"]
    assert t["rows"][1]["cells"] == ["w2", None, None, None, None]


def test_a_version_without_columns_shows_age() -> None:
    d = crd()
    del d["spec"]["versions"][0]["additionalPrinterColumns"]
    st = CustomResourceStrategy(d, d["spec"]["versions"][0])
    t = table("widgets", [{"metadata": {"name": "w", "creationTimestamp": "2026-01-01T11:59:00Z"}}], now=NOW,
              printer=st.table_printer())
    assert [c["name"] for c in t["columnDefinitions"]] == ["Name", "Age"]
    assert t["rows"][0]["cells"] == ["w", "60s"]


def test_versions_differ_in_api_version_only() -> None:
    d = crd()
    d["spec"]["versions"][0]["storage"] = True
    d["spec"]["versions"].append({"name": "v2", "served": True, "storage": False})
    rows = rows_for(d)
    _v1, v2 = rows
    stored = v2.strategy.to_storage(v2, {"apiVersion": "example.com/v2", "kind": "Widget"})
    assert stored["apiVersion"] == "example.com/v1"
    assert v2.strategy.output_converter(v2)(stored)["apiVersion"] == "example.com/v2"
    assert stored["apiVersion"] == "example.com/v1"  # the stored copy is left alone
    single = rows_for(crd())[0]
    assert single.strategy.output_converter(single) is None  # nothing to rewrite: raw bytes are served
    # a version that was stored before still needs rewriting after it left the spec
    assert rows_for(crd(stored=["v0", "v1"]))[0].strategy.output_converter(single) is not None


def test_no_new_objects_while_the_definition_terminates() -> None:
    row = rows_for(crd(), terminating=True)[0]
    with pytest.raises(errors.StatusError) as e:
        row.strategy.prepare_for_create({"metadata": {"name": "a"}})
    assert (e.value.code, e.value.message) == (405, "create not allowed while custom resource definition is terminating")


def test_version_priority_orders_as_upstream() -> None:
    versions = ["v1alpha1", "foo", "v2", "v1beta1", "v1", "v10", "v11beta2", "v11alpha2", "bar", "v12alpha1"]
    assert sorted(versions, key=version_priority) == [
        "v10", "v2", "v1", "v11beta2", "v1beta1", "v12alpha1", "v11alpha2", "v1alpha1", "bar", "foo"]


def test_dynamic_rows_change_the_table_and_its_discovery_documents() -> None:
    t = TABLE.copy()
    docs = discovery.DiscoveryDocs(t)
    assert docs.resource_list("example.com", "v1") is None
    _body, etag = docs.aggregated(False, "v2")
    t.set_dynamic("widgets.example.com", rows_for(crd()))
    assert TABLE.lookup("example.com", "v1", "widgets") is None  # the shared table is untouched
    assert t.lookup("example.com", "v1", "widgets").kind == "Widget"
    assert t.by_plural("example.com", "widgets").version == "v1" and t.groups["example.com"] == ["v1"]
    listed = orjson.loads(docs.resource_list("example.com", "v1"))
    assert [r["name"] for r in listed["resources"]] == ["widgets", "widgets/status", "widgets/scale"]
    body2, etag2 = docs.aggregated(False, "v2")
    assert etag2 != etag and b'"example.com"' in body2
    generation = t.generation
    t.set_dynamic("widgets.example.com", [])
    t.set_dynamic("widgets.example.com", [])  # nothing to remove: no new generation
    assert t.generation == generation + 1
    assert docs.resource_list("example.com", "v1") is None and "example.com" not in t.groups
