"""Client-side strategic merge patch creation (apimachinery.strategic_diff): the patches kubectl sends.

The expected patches below were captured from kubectl 1.37 (`kubectl apply -v=9`) applying the
same file sequences against our apiserver; `current` is the live object trimmed to what matters.
"""

from __future__ import annotations

import copy

from apimachinery.strategic import schema_for, strategic_merge_patch
from apimachinery.strategic_diff import (
    create_three_way_json_merge_patch,
    create_three_way_patch,
    create_two_way_patch,
)

DEPLOY = schema_for("apps/v1", "Deployment")


def _deploy(containers, **spec):
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "ns"},
            "spec": {"selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": containers}},
                     **spec}}


def _defaulted(obj):
    """What the server stores: container defaults, port protocols, status."""
    obj = copy.deepcopy(obj)
    for c in obj["spec"]["template"]["spec"]["containers"]:
        c.setdefault("imagePullPolicy", "IfNotPresent")
        c.setdefault("terminationMessagePath", "/dev/termination-log")
        for p in c.get("ports") or []:
            p.setdefault("protocol", "TCP")
    obj["spec"].setdefault("replicas", 1)
    obj["spec"].setdefault("revisionHistoryLimit", 10)
    obj["status"] = {"observedGeneration": 1}
    return obj


V1 = _deploy([
    {"name": "web", "image": "nginx:1.26", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
     "ports": [{"containerPort": 80}]},
    {"name": "sidecar", "image": "busybox:1.36"},
], replicas=2)
V2 = _deploy([
    {"name": "web", "image": "nginx:1.27", "env": [{"name": "A", "value": "1"}],
     "ports": [{"containerPort": 80}, {"containerPort": 443}]},
], replicas=2)


def test_three_way_removes_container_env_and_adds_port_like_kubectl() -> None:
    patch = create_three_way_patch(V1, V2, _defaulted(V1), DEPLOY)
    assert patch == {"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "web"}],
        "containers": [
            {"$setElementOrder/env": [{"name": "A"}],
             "$setElementOrder/ports": [{"containerPort": 80}, {"containerPort": 443}],
             "env": [{"$patch": "delete", "name": "B"}], "image": "nginx:1.27", "name": "web",
             "ports": [{"containerPort": 443}]},
            {"$patch": "delete", "name": "sidecar"},
        ]}}}}
    # and back again: the sidecar and B come back, 443 goes
    back = create_three_way_patch(V2, V1, _defaulted(V2), DEPLOY)
    assert back["spec"]["template"]["spec"]["$setElementOrder/containers"] == [{"name": "web"}, {"name": "sidecar"}]
    web, sidecar = back["spec"]["template"]["spec"]["containers"]
    assert sidecar == {"image": "busybox:1.36", "name": "sidecar"}
    assert web["ports"] == [{"$patch": "delete", "containerPort": 443}]
    assert web["env"] == [{"name": "B", "value": "2"}]


A1 = {"apiVersion": "apps/v1", "kind": "Deployment",
      "metadata": {"name": "w2", "namespace": "t", "labels": {"a": "1", "b": "2"}, "finalizers": ["x.io/b", "x.io/a"]},
      "spec": {"replicas": 1, "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}},
               "selector": {"matchLabels": {"app": "w2"}},
               "template": {"metadata": {"labels": {"app": "w2"}}, "spec": {
                   "volumes": [{"name": "v", "emptyDir": {}}, {"name": "c", "configMap": {"name": "x"}}],
                   "containers": [
                       {"name": "a", "image": "x", "env": [{"name": "XX", "value": "1"}, {"name": "YY", "value": "2"}],
                        "volumeMounts": [{"name": "v", "mountPath": "/v"}]},
                       {"name": "b", "image": "yy", "command": ["sh", "-c", "sleep 1"]}]}}}}
A2 = {"apiVersion": "apps/v1", "kind": "Deployment",
      "metadata": {"name": "w2", "namespace": "t", "labels": {"a": "1"}, "finalizers": ["x.io/a"]},
      "spec": {"replicas": 1, "strategy": {"type": "Recreate"}, "selector": {"matchLabels": {"app": "w2"}},
               "template": {"metadata": {"labels": {"app": "w2"}}, "spec": {
                   "volumes": [{"name": "c", "secret": {"secretName": "s"}}],
                   "containers": [
                       {"name": "b", "image": "yy2"},
                       {"name": "a", "image": "x", "env": [{"name": "YY", "value": "2"}, {"name": "XX", "value": "1"},
                                                           {"name": "ZZ", "value": "3"}]}]}}}}
A3 = {"apiVersion": "apps/v1", "kind": "Deployment",
      "metadata": {"name": "w2", "namespace": "t", "finalizers": ["x.io/c", "x.io/a"]},
      "spec": {"selector": {"matchLabels": {"app": "w2"}},
               "template": {"metadata": {"labels": {"app": "w2"}}, "spec": {"containers": [
                   {"name": "a", "image": "x",
                    "ports": [{"containerPort": 80}, {"containerPort": 8080, "protocol": "UDP"}]}]}}}}


def test_three_way_directives_retain_keys_primitive_lists_reorder_like_kubectl() -> None:
    patch = create_three_way_patch(A1, A2, _defaulted(A1), DEPLOY)
    assert patch == {
        "metadata": {"$deleteFromPrimitiveList/finalizers": ["x.io/b"], "$setElementOrder/finalizers": ["x.io/a"],
                     "labels": {"b": None}},
        "spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": None, "type": "Recreate"},
                 "template": {"spec": {
                     "$setElementOrder/containers": [{"name": "b"}, {"name": "a"}],
                     "$setElementOrder/volumes": [{"name": "c"}],
                     "containers": [
                         {"command": None, "image": "yy2", "name": "b"},
                         {"$setElementOrder/env": [{"name": "YY"}, {"name": "XX"}, {"name": "ZZ"}],
                          "env": [{"name": "ZZ", "value": "3"}], "name": "a", "volumeMounts": None}],
                     "volumes": [{"$retainKeys": ["name", "secret"], "configMap": None, "name": "c",
                                  "secret": {"secretName": "s"}},
                                 {"$patch": "delete", "name": "v"}]}}}}


def test_three_way_whole_fields_removed_and_primitive_items_added_like_kubectl() -> None:
    current = _defaulted(strategic_merge_patch(_defaulted(A1), create_three_way_patch(A1, A2, _defaulted(A1), DEPLOY),
                                               DEPLOY))
    patch = create_three_way_patch(A2, A3, current, DEPLOY)
    assert patch == {
        "metadata": {"$setElementOrder/finalizers": ["x.io/c", "x.io/a"], "finalizers": ["x.io/c"], "labels": None},
        "spec": {"replicas": None, "strategy": None, "template": {"spec": {
            "$setElementOrder/containers": [{"name": "a"}],
            "containers": [{"env": None, "name": "a",
                            "ports": [{"containerPort": 80}, {"containerPort": 8080, "protocol": "UDP"}]},
                           {"$patch": "delete", "name": "b"}],
            "volumes": None}}}}


def test_three_way_keeps_what_others_changed_and_restores_what_the_file_says() -> None:
    original = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": {"mine": "1"}},
                "data": {"k": "v"}}
    current = copy.deepcopy(original)
    current["metadata"]["labels"]["theirs"] = "x"  # added by someone else: survives
    current["data"]["k"] = "changed by hand"        # a field the file sets: put back
    current["metadata"]["uid"] = "u-1"
    patch = create_three_way_patch(original, copy.deepcopy(original), current, schema_for("v1", "ConfigMap"))
    assert patch == {"data": {"k": "v"}}
    merged = strategic_merge_patch(current, patch, schema_for("v1", "ConfigMap"))
    assert merged["metadata"]["labels"] == {"mine": "1", "theirs": "x"}


def test_three_way_nothing_to_do_is_an_empty_patch() -> None:
    assert create_three_way_patch(V1, V1, _defaulted(V1), DEPLOY) == {}
    assert create_three_way_patch(None, V1, _defaulted(V1), DEPLOY) == {}


def test_patch_applied_by_the_server_gives_the_new_configuration() -> None:
    current = _defaulted(V1)
    merged = strategic_merge_patch(current, create_three_way_patch(V1, V2, current, DEPLOY), DEPLOY)
    (web,) = merged["spec"]["template"]["spec"]["containers"]
    assert web["image"] == "nginx:1.27"
    assert web["env"] == [{"name": "A", "value": "1"}]
    assert [p["containerPort"] for p in web["ports"]] == [80, 443]
    assert web["imagePullPolicy"] == "IfNotPresent"  # defaults the file never set are kept


def test_unsorted_primitive_merge_list_gets_an_order_directive_like_upstream() -> None:
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "finalizers": ["b", "a"]}}
    # upstream sorts the live list in place before comparing: an unchanged unsorted list still
    # produces $setElementOrder (harmless: the same order)
    assert create_three_way_patch(cm, cm, copy.deepcopy(cm), schema_for("v1", "ConfigMap")) == {
        "metadata": {"$setElementOrder/finalizers": ["b", "a"]}}


def test_type_change_and_int_float_are_changes() -> None:
    schema = schema_for("v1", "ConfigMap")
    a = {"kind": "ConfigMap", "x": 1, "y": True, "z": {"a": 1}}
    assert create_two_way_patch(a, {**a, "x": 1.0}, schema) == {"x": 1.0}
    assert create_two_way_patch(a, {**a, "y": 1}, schema) == {"y": 1}
    assert create_two_way_patch(a, {**a, "z": [1]}, schema) == {"z": [1]}


def test_two_way_patch_is_what_edit_sends() -> None:
    edited = copy.deepcopy(V1)
    edited["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:1.28"
    del edited["spec"]["replicas"]
    assert create_two_way_patch(V1, edited, DEPLOY) == {"spec": {
        "replicas": None,
        "template": {"spec": {"$setElementOrder/containers": [{"name": "web"}, {"name": "sidecar"}],
                              "containers": [{"image": "nginx:1.28", "name": "web"}]}}}}


def test_three_way_json_merge_patch_for_kinds_without_metadata() -> None:
    original = {"apiVersion": "x.io/v1", "kind": "Widget", "metadata": {"name": "w"},
                "spec": {"a": 1, "b": [1, 2], "c": {"d": 1, "e": 2}}}
    modified = {"apiVersion": "x.io/v1", "kind": "Widget", "metadata": {"name": "w"},
                "spec": {"a": 2, "b": [1], "c": {"d": 1}}}
    current = copy.deepcopy(original)
    current["spec"]["theirs"] = True
    current["spec"]["c"]["f"] = 3
    patch = create_three_way_json_merge_patch(original, modified, current)
    assert patch == {"spec": {"a": 2, "b": [1], "c": {"e": None}}}
