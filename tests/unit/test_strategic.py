"""Strategic merge patch: directives, list merging, kubectl-apply-like patches, upstream error mapping."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from apimachinery.errors import StatusError
from apimachinery.strategic import (
    BUILTIN_PATCH_META,
    DictPatchSchema,
    PatchSchema,
    schema_for,
    strategic_merge_patch,
)

POD = schema_for("v1", "Pod")

# A schema shaped like upstream's test struct (MergeItem), recursive through its lists.
ITEM: dict = {}
RETAIN: dict = {}
ITEM.update({
    "mergingList": {"list": True, "patchStrategy": "merge", "patchMergeKey": "name", "fields": ITEM},
    "nonMergingList": {"list": True, "fields": ITEM},
    "mergingIntList": {"list": True, "patchStrategy": "merge"},
    "nonMergingIntList": {"list": True},
    "replacingItem": {"patchStrategy": "replace"},
    "retainKeysMap": {"patchStrategy": "retainKeys", "fields": RETAIN},
    "retainKeysMergingList": {"list": True, "patchStrategy": "merge,retainKeys", "patchMergeKey": "name",
                              "fields": ITEM},
})
RETAIN.update({"mergingList": ITEM["mergingList"], "mergingIntList": ITEM["mergingIntList"]})
SCHEMA = DictPatchSchema(ITEM)


def smp(original, patch, schema=SCHEMA):
    before = (copy.deepcopy(original), copy.deepcopy(patch))
    out = strategic_merge_patch(original, patch, schema)
    assert (original, patch) == before, "inputs must not be mutated"
    return out


def pod(containers, **meta):
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", **meta}, "spec": {"containers": containers}}


# --- basic merging ---------------------------------------------------------------------------


def test_docs_example_adds_container_by_merge_key():
    original = pod([{"name": "nginx", "image": "nginx-1.0"}])
    out = smp(original, {"spec": {"containers": [{"name": "log-tailer", "image": "log-tailer-1.0"}]}}, POD)
    # Upstream places items only the patch has ahead of the server-only ones (no $setElementOrder).
    assert out["spec"]["containers"] == [{"name": "log-tailer", "image": "log-tailer-1.0"},
                                         {"name": "nginx", "image": "nginx-1.0"}]


def test_maps_merge_and_null_deletes():
    original = {"name": "a", "value": "1", "other": "x"}
    assert smp(original, {"value": "2", "other": None, "new": {"k": "v"}}) == {"name": "a", "value": "2",
                                                                                "new": {"k": "v"}}


def test_unmatched_nulls_are_dropped():
    assert smp({"a": 1}, {"b": None, "c": {"d": None, "e": 1}}) == {"a": 1, "c": {"e": 1}}


def test_merging_list_merges_items_by_key_and_keeps_server_only_items():
    original = {"mergingList": [{"name": "1", "value": "a"}, {"name": "2", "value": "b"}]}
    out = smp(original, {"mergingList": [{"name": "2", "other": "c"}, {"name": "3"}]})
    assert out == {"mergingList": [{"name": "1", "value": "a"}, {"name": "2", "value": "b", "other": "c"},
                                   {"name": "3"}]}


def test_non_merging_lists_are_replaced():
    original = {"nonMergingList": [{"name": "1"}, {"name": "2"}], "nonMergingIntList": [1, 2]}
    out = smp(original, {"nonMergingList": [{"name": "3"}], "nonMergingIntList": [3]})
    assert out == {"nonMergingList": [{"name": "3"}], "nonMergingIntList": [3]}


def test_primitive_merge_list_is_a_set_union():
    assert smp({"mergingIntList": [1, 2]}, {"mergingIntList": [2, 3]}) == {"mergingIntList": [1, 2, 3]}


def test_replace_strategy_replaces_map():
    original = {"replacingItem": {"a": 1, "b": 2}}
    assert smp(original, {"replacingItem": {"c": 3}}) == {"replacingItem": {"c": 3}}


def test_no_schema_replaces_every_list():
    original = {"spec": {"containers": [{"name": "a"}], "m": {"x": 1}}}
    out = smp(original, {"spec": {"containers": [{"name": "b"}], "m": {"y": 2}}}, None)
    assert out == {"spec": {"containers": [{"name": "b"}], "m": {"x": 1, "y": 2}}}


def test_type_change_takes_the_patch_value():
    assert smp({"a": {"b": 1}}, {"a": [1, None]}) == {"a": [1, None]}
    assert smp({"a": 1}, {"a": {"b": None, "c": 2}}) == {"a": {"c": 2}}


# --- directives ------------------------------------------------------------------------------


def test_patch_replace_on_map():
    assert smp({"name": "1", "value": "1"}, {"$patch": "replace", "other": "a"}) == {"other": "a"}
    original = {"mergingList": [{"name": "1", "value": "a", "other": "b"}]}
    # Inside a list, a `$patch: replace` element only marks the list as replaced; it is dropped.
    out = smp(original, {"mergingList": [{"name": "1", "$patch": "replace", "value": "z"}]})
    assert out == {"mergingList": []}


def test_patch_delete_on_map_leaves_it_empty_like_upstream():
    assert smp({"simpleMap": {"k": "v"}}, {"simpleMap": {"$patch": "delete"}}) == {"simpleMap": {}}
    # Not in the original: nothing is added.
    assert smp({}, {"simpleMap": {"$patch": "delete"}}) == {}


def test_patch_delete_inside_list_deletes_all_matches():
    original = {"mergingList": [{"name": "1"}, {"name": "1"}, {"name": "2", "value": "a"}, {"name": "3"}]}
    out = smp(original, {"mergingList": [{"name": "1", "$patch": "delete"}, {"name": "3", "$patch": "delete"}]})
    assert out == {"mergingList": [{"name": "2", "value": "a"}]}


def test_patch_replace_inside_list():
    original = {"mergingList": [{"name": "1"}, {"name": "2"}]}
    assert smp(original, {"mergingList": [{"$patch": "replace"}]}) == {"mergingList": []}
    out = smp(original, {"mergingList": [{"name": "9", "value": "x"}, {"$patch": "replace"}]})
    assert out == {"mergingList": [{"name": "9", "value": "x"}]}


def test_delete_from_primitive_list():
    out = smp({"mergingIntList": [1, 2, 3]}, {"$deleteFromPrimitiveList/mergingIntList": [2, 3]})
    assert out == {"mergingIntList": [1]}
    # Absent list: nothing is created.
    assert smp({"foo": ["bar"]}, {"$deleteFromPrimitiveList/mergingIntList": [3]}) == {"foo": ["bar"]}


def test_set_element_order_primitives_and_maps():
    out = smp({"mergingIntList": [1, 2, 3]}, {"$setElementOrder/mergingIntList": [3, 1, 2]})
    assert out == {"mergingIntList": [3, 1, 2]}
    original = {"mergingList": [{"name": "a", "value": "1"}, {"name": "b"}, {"name": "c"}]}
    out = smp(original, {"$setElementOrder/mergingList": [{"name": "b"}, {"name": "c"}, {"name": "a"}]})
    assert out == {"mergingList": [{"name": "b"}, {"name": "c"}, {"name": "a", "value": "1"}]}


def test_set_element_order_with_additions_and_deletions_follows_upstream_order():
    # Upstream test case "add map and delete map from merging list" (three-way).
    current = {"mergingList": [{"name": 1}, {"name": 2, "other": "b"}, {"name": 4, "other": "c"}]}
    patch = {"$setElementOrder/mergingList": [{"name": 2}, {"name": 3}],
             "mergingList": [{"name": 3}, {"name": 1, "$patch": "delete"}]}
    assert smp(current, patch) == {"mergingList": [{"name": 2, "other": "b"}, {"name": 4, "other": "c"},
                                                   {"name": 3}]}


def test_retain_keys():
    original = {"retainKeysMap": {"name": "foo", "value": "bar", "other": "x"}}
    out = smp(original, {"retainKeysMap": {"$retainKeys": ["name", "other"], "other": "y"}})
    assert out == {"retainKeysMap": {"name": "foo", "other": "y"}}
    # Docs example: fields not listed are cleared.
    out = smp({"union": {"foo": "a", "other": "b"}}, {"union": {"$retainKeys": ["another", "bar"],
                                                                "another": "d", "bar": "c"}})
    assert out == {"union": {"another": "d", "bar": "c"}}


def test_retain_keys_on_volume_switches_source():
    original = pod([{"name": "a", "image": "x"}])
    original["spec"]["volumes"] = [{"name": "data", "emptyDir": {}}]
    patch = {"spec": {"volumes": [{"name": "data", "$retainKeys": ["hostPath", "name"], "hostPath": {"path": "/d"}}]}}
    assert smp(original, patch, POD)["spec"]["volumes"] == [{"name": "data", "hostPath": {"path": "/d"}}]


def test_directives_do_not_leak_into_the_result():
    original = {"mergingList": [{"name": "1"}]}
    out = smp(original, {"mergingList": [{"name": "2", "$setElementOrder/mergingList": [{"name": "x"}],
                                          "value": None}]})
    assert out == {"mergingList": [{"name": "2"}, {"name": "1"}]}
    out = smp({}, {"retainKeysMap": {"$retainKeys": ["name"], "name": "n"}})
    assert out == {"retainKeysMap": {"name": "n"}}


# --- kubectl apply-like patches against built-in kinds ---------------------------------------


def web_pod():
    return pod(
        [
            {"name": "web", "image": "nginx:1",
             "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
             "ports": [{"containerPort": 80, "protocol": "TCP"}, {"containerPort": 443, "protocol": "TCP"}],
             "volumeMounts": [{"name": "data", "mountPath": "/data"}]},
            {"name": "sidecar", "image": "busybox"},
        ],
        finalizers=["example.com/a", "example.com/b"],
        labels={"app": "web", "tier": "fe"},
    )


def test_apply_removes_container():
    patch = {"spec": {"$setElementOrder/containers": [{"name": "web"}],
                      "containers": [{"$patch": "delete", "name": "sidecar"}]}}
    out = smp(web_pod(), patch, POD)
    assert [c["name"] for c in out["spec"]["containers"]] == ["web"]


def test_apply_removes_env_var_and_port():
    patch = {"spec": {
        "$setElementOrder/containers": [{"name": "web"}, {"name": "sidecar"}],
        "containers": [{
            "name": "web",
            "$setElementOrder/env": [{"name": "A"}],
            "env": [{"$patch": "delete", "name": "B"}],
            "$setElementOrder/ports": [{"containerPort": 80}],
            "ports": [{"$patch": "delete", "containerPort": 443}],
        }],
    }}
    out = smp(web_pod(), patch, POD)
    web = out["spec"]["containers"][0]
    assert web["env"] == [{"name": "A", "value": "1"}]
    assert web["ports"] == [{"containerPort": 80, "protocol": "TCP"}]
    assert web["volumeMounts"] == [{"name": "data", "mountPath": "/data"}]
    assert out["spec"]["containers"][1] == {"name": "sidecar", "image": "busybox"}


def test_apply_changes_image_adds_env_and_reorders():
    patch = {"spec": {
        "$setElementOrder/containers": [{"name": "sidecar"}, {"name": "web"}],
        "containers": [{"name": "web", "image": "nginx:2",
                        "$setElementOrder/env": [{"name": "C"}, {"name": "A"}, {"name": "B"}],
                        "env": [{"name": "C", "value": "3"}]}],
    }}
    out = smp(web_pod(), patch, POD)
    assert [c["name"] for c in out["spec"]["containers"]] == ["sidecar", "web"]
    web = out["spec"]["containers"][1]
    assert web["image"] == "nginx:2"
    assert [e["name"] for e in web["env"]] == ["C", "A", "B"]


def test_apply_removes_label_and_finalizer():
    patch = {"metadata": {"labels": {"tier": None},
                          "$setElementOrder/finalizers": ["example.com/a"],
                          "$deleteFromPrimitiveList/finalizers": ["example.com/b"]}}
    out = smp(web_pod(), patch, POD)
    assert out["metadata"]["labels"] == {"app": "web"}
    assert out["metadata"]["finalizers"] == ["example.com/a"]


def test_tolerations_and_env_from_are_replaced():
    original = web_pod()
    original["spec"]["tolerations"] = [{"key": "a", "operator": "Exists"}]
    original["spec"]["containers"][0]["envFrom"] = [{"configMapRef": {"name": "x"}}]
    patch = {"spec": {"tolerations": [{"key": "b", "operator": "Exists"}],
                      "containers": [{"name": "web", "envFrom": [{"secretRef": {"name": "s"}}]}]}}
    out = smp(original, patch, POD)
    assert out["spec"]["tolerations"] == [{"key": "b", "operator": "Exists"}]
    assert out["spec"]["containers"][0]["envFrom"] == [{"secretRef": {"name": "s"}}]


def test_deployment_template_reaches_pod_spec_and_strategy_retain_keys():
    deploy = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
              "spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}},
                       "template": {"metadata": {"labels": {"app": "d"}},
                                    "spec": {"containers": [{"name": "a", "image": "x"}]}}}}
    patch = {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"},
                      "template": {"spec": {"containers": [{"name": "b", "image": "y"}]}}}}
    out = smp(deploy, patch, schema_for("apps/v1", "Deployment"))
    assert out["spec"]["strategy"] == {"type": "Recreate"}
    assert [c["name"] for c in out["spec"]["template"]["spec"]["containers"]] == ["b", "a"]


def test_status_conditions_merge_by_type():
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n"},
            "status": {"conditions": [{"type": "Ready", "status": "False"}, {"type": "DiskPressure",
                                                                             "status": "False"}],
                       "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}]}}
    patch = {"status": {"conditions": [{"type": "Ready", "status": "True"}],
                        "addresses": [{"type": "Hostname", "address": "n"}]}}
    out = smp(node, patch, schema_for("v1", "Node"))
    assert out["status"]["conditions"] == [{"type": "Ready", "status": "True"},
                                           {"type": "DiskPressure", "status": "False"}]
    assert out["status"]["addresses"] == [{"type": "Hostname", "address": "n"},
                                          {"type": "InternalIP", "address": "10.0.0.1"}]


def test_service_ports_merge_by_port():
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
           "spec": {"ports": [{"port": 80, "targetPort": 8080}]}}
    out = smp(svc, {"spec": {"ports": [{"port": 80, "name": "http"}, {"port": 443}]}}, schema_for("v1", "Service"))
    assert out["spec"]["ports"] == [{"port": 80, "targetPort": 8080, "name": "http"}, {"port": 443}]


def test_owner_references_merge_by_uid():
    original = {"metadata": {"ownerReferences": [{"uid": "1", "name": "a"}]}}
    out = smp(original, {"metadata": {"ownerReferences": [{"uid": "2", "name": "b"}]}}, schema_for("v1", "ConfigMap"))
    assert [o["uid"] for o in out["metadata"]["ownerReferences"]] == ["2", "1"]


def test_schema_for():
    assert schema_for("v1", "Pod") is schema_for("v1", "Pod")
    assert schema_for("stable.example.com/v1", "CronTab") is None
    cm = schema_for("v1", "ConfigMap")
    assert cm is not None and cm.field("metadata").field("finalizers").patch_strategy == "merge"
    assert isinstance(POD, PatchSchema)
    containers = POD.field("spec").field("containers")
    assert (containers.merge_key, containers.patch_strategy, containers.is_list) == ("name", "merge", True)
    assert containers.field("env").merge_key == "name"
    assert POD.field("spec").field("tolerations") is None
    assert POD.field("spec").field("volumes").patch_strategy == "merge,retainKeys"
    for api_version, kind in [("apps/v1", "StatefulSet"), ("apps/v1", "DaemonSet"), ("apps/v1", "ReplicaSet"),
                              ("batch/v1", "Job")]:
        spec = schema_for(api_version, kind).field("spec")
        assert spec.field("template").field("spec").field("containers").merge_key == "name"
    cron = schema_for("batch/v1", "CronJob").field("spec").field("jobTemplate").field("spec")
    assert cron.field("template").field("spec").field("initContainers").merge_key == "name"
    assert ("v1", "Pod") in BUILTIN_PATCH_META


# --- errors ----------------------------------------------------------------------------------


def _error(original, patch, schema=SCHEMA) -> StatusError:
    with pytest.raises(StatusError) as ei:
        strategic_merge_patch(original, patch, schema)
    return ei.value


@pytest.mark.parametrize(
    ("original", "patch", "code", "message"),
    [
        ({"mergingIntList": [1]}, {"$deleteFromPrimitiveListX/mergingIntList": [1]}, 400,
         "invalid patch format of primitive list"),
        ({}, {"$setElementOrder": [1]}, 400, "invalid patch format of setElementOrder list"),
        ({"retainKeysMap": {"name": "a"}}, {"retainKeysMap": {"$retainKeys": "name"}}, 400,
         "invalid patch format of retainKeys"),
        ({"retainKeysMap": {"name": "a"}}, {"retainKeysMap": {"$retainKeys": ["name"], "value": "v"}}, 400,
         "invalid patch format of retainKeys"),
        ({"mergingList": [[1]]}, {"mergingList": [[2]]}, 422,
         "the server rejected our request due to an error in our request"),
        ({"mergingList": [{"name": "a"}]}, {"mergingList": [{"value": "b"}]}, 400,
         "map: map[value:b] does not contain declared merge key: name"),
        ({"mergingList": [{"name": "a"}]}, {"mergingList": [{"name": "a", "$patch": "merge"}]}, 400,
         "merging lists cannot yet be specified in the patch"),
        ({"simpleMap": {"a": "b"}}, {"simpleMap": {"$patch": "merge"}}, 400,
         "unknown patch type: merge in map: map[$patch:merge]"),
        ({"mergingList": [{"name": "a"}]}, {"mergingList": [1]}, 400,
         "list element types are not identical: [[map[name:a]] [1]]"),
        ({"mergingList": [{"name": 3}]},
         {"$setElementOrder/mergingList": [{"name": 1}], "mergingList": [{"name": 3, "value": "x"}]}, 400,
         "The order in patch list:\n[map[name:3 value:x]]\n doesn't match $setElementOrder list:\n"
         "[map[name:1]]\n"),
        ({}, ["not", "a", "map"], 400, "json: cannot unmarshal array into Go value of type map[string]interface {}"),
    ],
)
def test_errors_map_like_upstream(original, patch, code, message):
    err = _error(original, patch)
    assert (err.code, err.message) == (code, message)
    if code == 422:
        assert err.reason == "Invalid"
        assert err.status()["details"]["causes"][0]["message"] == "lists of lists are not supported"


def test_null_patch_is_a_no_op():
    assert strategic_merge_patch({"a": 1}, None, SCHEMA) == {"a": 1}


# --- differential check against upstream's own implementation (kubectl patch --local) ---------


def _kubectl() -> str | None:
    beside = Path(sys.executable).parent / "kubectl"
    return str(beside) if beside.exists() else shutil.which("kubectl")


def _typed(v):
    """What a typed decode keeps (kubectl --local prints the raw merged map)."""
    if isinstance(v, dict):
        return {k: _typed(x) for k, x in v.items() if x is not None and not k.startswith("$")}
    if isinstance(v, list):
        return [_typed(x) for x in v]
    return v


KUBECTL_CASES = [
    {"spec": {"$setElementOrder/containers": [{"name": "web"}], "containers": [{"$patch": "delete",
                                                                                "name": "sidecar"}]}},
    {"spec": {"containers": [{"name": "web", "$setElementOrder/env": [{"name": "B"}, {"name": "C"}],
                              "env": [{"name": "A", "$patch": "delete"}, {"name": "C", "value": "3"}]}]}},
    {"spec": {"containers": [{"name": "new", "image": "i"}, {"name": "web", "ports": [{"containerPort": 8080}]}],
              "$setElementOrder/containers": [{"name": "new"}, {"name": "web"}, {"name": "sidecar"}]}},
    {"metadata": {"$deleteFromPrimitiveList/finalizers": ["example.com/a"], "finalizers": ["example.com/c"],
                  "labels": {"app": None, "x": "y"}}},
    {"spec": {"containers": [{"name": "x", "$patch": "delete"}, {"name": "zz", "image": "z"}],
              "$setElementOrder/containers": []}},
    {"spec": {"containers": [{"$patch": "replace"}, {"name": "only", "image": "o"}]}},
    {"spec": {"containers": [{"name": "web", "volumeMounts": [{"mountPath": "/data", "$patch": "delete"},
                                                              {"mountPath": "/x", "name": "x"}]}]}},
    {"metadata": {"$setElementOrder/finalizers": ["example.com/b", "example.com/a"]}},
]


@pytest.mark.skipif(_kubectl() is None, reason="kubectl not installed")
@pytest.mark.parametrize("patch", KUBECTL_CASES)
def test_same_result_as_kubectl_patch_local(patch, tmp_path):
    original = web_pod()
    src = tmp_path / "pod.json"
    src.write_text(json.dumps(original))
    run = subprocess.run(
        [_kubectl(), "patch", "--local", "-f", str(src), "--type", "strategic", "-p", json.dumps(patch),
         "-o", "json", "--kubeconfig=/dev/null"],
        capture_output=True, text=True, timeout=60, check=True,
    )
    assert smp(original, patch, POD) == _typed(json.loads(run.stdout))
