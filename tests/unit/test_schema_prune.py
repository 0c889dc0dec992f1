"""Unknown-field pruning (apiserver.schema) and the fieldValidation modes (apiserver.fieldschema)."""

from __future__ import annotations

import copy
from types import SimpleNamespace
from typing import Any

import pytest

from apimachinery.errors import StatusError
from apiserver import openapi_gen
from apiserver.fieldschema import FieldValidator, go_quote
from apiserver.resources import TABLE
from apiserver.schema import MAX_REPORTED, PruneSchema, TypeMismatch


@pytest.fixture(scope="module")
def schema() -> PruneSchema:
    return PruneSchema(openapi_gen.generate(TABLE)["prune"])


def deployment() -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web", "any/key": "v"},
                     "annotations": {"note": "x"}, "finalizers": ["a/b"],
                     "managedFields": [{"manager": "kubectl", "operation": "Update",
                                        "fieldsV1": {"f:spec": {"f:replicas": {}, ".": {}}}}]},
        "spec": {
            "replicas": 2, "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {"name": "a", "image": "nginx", "ports": [{"containerPort": 80}],
                         "resources": {"limits": {"cpu": "1", "memory": "1Gi"}},
                         "env": [{"name": "X", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]},
                        {"name": "b", "image": "busybox", "command": ["sleep", "1"]},
                    ],
                    "volumes": [{"name": "v", "emptyDir": {"sizeLimit": "1Gi"}}],
                },
            },
        },
    }


def test_a_valid_object_is_untouched(schema: PruneSchema) -> None:
    obj = deployment()
    assert schema.prune("apps", "v1", "Deployment", obj) == []
    assert obj == deployment()


def test_unknown_fields_at_every_depth_are_removed_and_reported(schema: PruneSchema) -> None:
    obj = deployment()
    obj["foo"] = 1
    obj["metadata"]["colour"] = "red"
    obj["spec"]["bar"] = {"deep": True}
    obj["spec"]["template"]["spec"]["containers"][1]["imagee"] = "typo"
    obj["spec"]["template"]["spec"]["containers"][0]["ports"][0]["hostPortt"] = 1
    obj["spec"]["template"]["spec"]["containers"][0]["env"][0]["valueFrom"]["fieldRef"]["x"] = None
    obj["spec"]["template"]["spec"]["volumes"][0]["emptyDir"]["medium2"] = "Memory"
    obj["spec"]["strategy"]["rollingUpdate"]["maxSurgee"] = 1
    unknown = schema.prune("apps", "v1", "Deployment", obj)
    # Document order, as upstream's decoder meets them.
    assert unknown == [
        "metadata.colour",
        "spec.strategy.rollingUpdate.maxSurgee",
        "spec.template.spec.containers[0].ports[0].hostPortt",
        "spec.template.spec.containers[0].env[0].valueFrom.fieldRef.x",
        "spec.template.spec.containers[1].imagee",
        "spec.template.spec.volumes[0].emptyDir.medium2",
        "spec.bar",
        "foo",
    ]
    assert obj == deployment()  # all removed in place, nothing else touched


def test_free_form_content_and_maps_are_kept(schema: PruneSchema) -> None:
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
          "data": {"anything": "goes", "x.y": "z"}, "binaryData": {"b": "AAAA"}, "immutable": False}
    assert schema.prune("", "v1", "ConfigMap", cm) == []
    rev = {"apiVersion": "apps/v1", "kind": "ControllerRevision", "metadata": {"name": "r"}, "revision": 1,
           "data": {"spec": {"template": {"whatever": {"nested": [1, {"a": 2}]}}}}}
    before = copy.deepcopy(rev)
    assert schema.prune("apps", "v1", "ControllerRevision", rev) == []
    assert rev == before
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n"},
            "status": {"capacity": {"cpu": "2", "example.com/gpu": "1"}, "nodeInfo": {"kernelVersion": "6"}}}
    assert schema.prune("", "v1", "Node", node) == []


def test_other_kinds(schema: PruneSchema) -> None:
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
           "spec": {"selector": {"app": "x"}, "ports": [{"port": 80, "targetPort": "http", "nodeport": 30000}]}}
    assert schema.prune("", "v1", "Service", svc) == ["spec.ports[0].nodeport"]
    ev = {"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e"}, "note": "hi",
          "regarding": {"kind": "Pod", "name": "p"}, "message": "core-only field"}
    assert schema.prune("events.k8s.io", "v1", "Event", ev) == ["message"]
    binding = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"},
               "target": {"kind": "Node", "name": "n", "nodeName": "n"}}
    assert schema.prune("", "v1", "Binding", binding) == ["target.nodeName"]
    scale = {"apiVersion": "autoscaling/v1", "kind": "Scale", "spec": {"replicas": 3, "paused": True}}
    assert schema.prune("autoscaling", "v1", "Scale", scale) == ["spec.paused"]


def test_nulls_pass_and_wrong_types_are_rejected(schema: PruneSchema) -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": None,
           "spec": {"containers": None, "volumes": [None, {"name": "v", "hostPath": None}],
                    "nodeSelector": None, "bogus": None}}
    assert schema.prune("", "v1", "Pod", pod) == ["spec.bogus"]  # an unknown field is unknown even when null
    # a value of the wrong JSON type is what upstream's typed decode refuses ("cannot unmarshal")
    cases = [
        ({"containers": "not-a-list"}, "spec.containers", "string", "array"),
        ({"volumes": ["x"]}, "spec.volumes[0]", "string", "object"),
        ({"containers": [{"name": "c", "image": 5}]}, "spec.containers[0].image", "number", "string"),
        ({"containers": [{"name": "c", "ports": [{"containerPort": "80"}]}]}, "spec.containers[0].ports[0].containerPort",
         "string", "integer"),
        ({"hostNetwork": "yes"}, "spec.hostNetwork", "string", "boolean"),
        ({"nodeSelector": {"a": 1}}, "spec.nodeSelector.a", "number", "string"),
    ]
    for spec, path, got, want in cases:
        with pytest.raises(TypeMismatch) as e:
            schema.prune("", "v1", "Pod", {"apiVersion": "v1", "kind": "Pod", "spec": spec})
        assert (e.value.path, e.value.got, e.value.want) == (path, got, want)
    # int-or-string and quantities take either
    ok = {"apiVersion": "v1", "kind": "Pod", "spec": {"containers": [{"name": "c", "resources": {"limits": {"cpu": 1, "memory": "1Gi"}},
                                                                       "livenessProbe": {"httpGet": {"port": "http"}}}]}}
    assert schema.prune("", "v1", "Pod", ok) == []


def test_unknown_kinds_keep_everything(schema: PruneSchema) -> None:
    obj = {"apiVersion": "example.com/v1", "kind": "Widget", "spec": {"anything": 1}}
    assert schema.prune("example.com", "v1", "Widget", obj) == []
    assert obj["spec"] == {"anything": 1}


def test_reports_at_most_a_hundred(schema: PruneSchema) -> None:
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}
    cm.update({f"extra{i}": i for i in range(150)})
    unknown = schema.prune("", "v1", "ConfigMap", cm)
    assert len(unknown) == MAX_REPORTED and unknown[0] == "extra0"
    assert set(cm) == {"apiVersion", "kind", "metadata"}  # all 150 dropped


def test_maps_and_nested_arrays_of_objects() -> None:
    """A hand-made tree: map and array-of-array paths use upstream's notation (`.key`, `[i]`)."""
    tree = {
        "types": {
            "T": {"p": {"items": {"m": "Item"}, "grid": {"a": {"a": "Item"}}, "raw": 1, "n": 0}},
            "Item": {"p": {"name": 0, "child": "Item"}},
        },
        "kinds": {"example.com/v1/T": "T"},
    }
    schema = PruneSchema(tree)
    obj = {"items": {"one": {"name": "a", "x": 1, "child": {"name": "b", "y": 2}}},
           "grid": [[{"name": "c"}, {"z": 3}]], "raw": {"free": "form"}, "n": 1}
    assert schema.prune("example.com", "v1", "T", obj) == [
        "items.one.x", "items.one.child.y", "grid[0][1].z"]
    assert obj == {"items": {"one": {"name": "a", "child": {"name": "b"}}}, "grid": [[{"name": "c"}, {}]],
                   "raw": {"free": "form"}, "n": 1}


def test_waits_for_a_loading_schema() -> None:
    calls = []
    schema = PruneSchema(wait=lambda timeout: calls.append(timeout) or False)
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "junk": 1}
    assert schema.prune("", "v1", "ConfigMap", obj) == []  # not loaded: nothing checked
    assert calls and obj["junk"] == 1


# --- fieldValidation -----------------------------------------------------------------------------

DEPLOYMENTS = SimpleNamespace(group="apps", version="v1", kind="Deployment")


def bad_deployment() -> dict[str, Any]:
    obj = deployment()
    obj["spec"]["foo"] = 1
    obj["spec"]["template"]["spec"]["containers"][0]["imagee"] = "x"
    return obj


def test_strict_rejects_with_upstreams_message(schema: PruneSchema) -> None:
    with pytest.raises(StatusError) as e:
        FieldValidator(schema).prune(DEPLOYMENTS, bad_deployment(), "Strict")
    assert e.value.code == 400 and e.value.reason == "BadRequest"
    assert e.value.message == (
        'Deployment in version "v1" cannot be handled as a Deployment: strict decoding error: '
        'unknown field "spec.template.spec.containers[0].imagee", unknown field "spec.foo"')


def test_strict_on_a_patch_is_invalid(schema: PruneSchema) -> None:
    with pytest.raises(StatusError) as e:
        FieldValidator(schema).prune(DEPLOYMENTS, bad_deployment(), "Strict", patched=True)
    assert e.value.code == 422 and e.value.reason == "Invalid"
    assert e.value.message.startswith('"" is invalid: patch: Invalid value: "{')
    assert e.value.message.endswith('strict decoding error: unknown field "spec.template.spec.containers[0].imagee", '
                                    'unknown field "spec.foo"')
    assert e.value.details["causes"][0]["field"] == "patch"


def test_warn_is_the_default_and_ignore_is_silent(schema: PruneSchema) -> None:
    validator = FieldValidator(schema)
    for mode in ("Warn", ""):
        obj = bad_deployment()
        assert validator.prune(DEPLOYMENTS, obj, mode) == [
            (b"warning", b'299 - "unknown field \\"spec.template.spec.containers[0].imagee\\""'),
            (b"warning", b'299 - "unknown field \\"spec.foo\\""'),
        ]
        assert obj == deployment()
    obj = bad_deployment()
    assert validator.prune(DEPLOYMENTS, obj, "Ignore") == []
    assert obj == deployment()  # dropped all the same, as upstream's typed decode does
    assert validator.prune(DEPLOYMENTS, deployment(), "Strict") == []


def test_invalid_mode_and_no_schema() -> None:
    with pytest.raises(StatusError) as e:
        FieldValidator().prune(DEPLOYMENTS, {}, "strict")
    assert e.value.message == 'fieldValidation "strict" is invalid: must be one of Strict, Warn, Ignore'
    obj = bad_deployment()
    assert FieldValidator().prune(DEPLOYMENTS, obj, "Strict") == []
    assert obj["spec"]["foo"] == 1


def test_schema_follows_the_objects_own_kind(schema: PruneSchema) -> None:
    """The handler converts events.k8s.io Events to the stored core shape before validating."""
    core_shaped = {"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e"}, "message": "m",
                   "involvedObject": {"kind": "Pod"}, "reportingComponent": "x"}
    res = SimpleNamespace(group="events.k8s.io", version="v1", kind="Event")
    assert FieldValidator(schema).prune(res, core_shaped, "Strict") == []


def test_paths_are_quoted_like_go() -> None:
    assert go_quote('a"b\\c') == '"a\\"b\\\\c"'
    assert go_quote("tab\there\n") == '"tab\\there\\n"'
    assert go_quote("\x01ü") == '"\\x01ü"'
    validator = FieldValidator(PruneSchema({"types": {"T": {"p": {}}}, "kinds": {"v1/T": "T"}}))
    headers = validator.prune(SimpleNamespace(group="", version="v1", kind="T"), {'we"ird': 1}, "Warn")
    assert headers == [(b"warning", b'299 - "unknown field \\"we\\\\\\"ird\\""')]


def test_typed_nulls_become_zero_values(schema: PruneSchema) -> None:
    obj = deployment()
    obj["spec"]["strategy"] = None  # a struct field: absent
    obj["spec"]["selector"]["matchLabels"]["tier"] = None  # a string map value: ""
    obj["spec"]["template"]["spec"]["containers"][1]["command"] = ["sleep", None]  # a string list element: ""
    obj["spec"]["template"]["spec"]["volumes"].append(None)  # an object list element: {}
    obj["metadata"]["annotations"]["free"] = None
    assert schema.prune("apps", "v1", "Deployment", obj) == []
    spec = obj["spec"]
    assert "strategy" not in spec
    assert spec["selector"]["matchLabels"] == {"app": "web", "tier": ""}
    assert spec["template"]["spec"]["containers"][1]["command"] == ["sleep", ""]
    assert spec["template"]["spec"]["volumes"][-1] == {}
    assert obj["metadata"]["annotations"]["free"] == ""


def test_request_bodies_that_are_no_objects_are_checked(schema: PruneSchema) -> None:
    fields = FieldValidator(schema)
    opts = {"kind": "DeleteOptions", "gracePeriodSeconds": 0, "dryRun": ["All"], "unknown": 1, "preconditions": None}
    assert fields.check("", "v1", "DeleteOptions", opts) == []
    assert opts == {"kind": "DeleteOptions", "gracePeriodSeconds": 0, "dryRun": ["All"]}
    with pytest.raises(StatusError) as e:
        fields.check("", "v1", "DeleteOptions", {"dryRun": 5})
    assert e.value.code == 400 and "DeleteOptions.dryRun of type array" in str(e.value)
    with pytest.raises(StatusError):
        fields.check("authentication.k8s.io", "v1", "TokenRequest", {"spec": {"audiences": "one"}})
