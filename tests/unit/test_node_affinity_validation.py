"""Node affinity in a pod spec and a PersistentVolume's nodeAffinity: upstream's
ValidateNodeSelector / ValidateNodeSelectorTerm / ValidatePreferredSchedulingTerms (1.31)."""

from __future__ import annotations

from typing import Any

import pytest

from apiserver.registry.core import PodStrategy
from apiserver.registry.persistentvolume import validate_pv_spec

ST = PodStrategy()
NA = "spec.affinity.nodeAffinity"
REQ = f"{NA}.requiredDuringSchedulingIgnoredDuringExecution"
PREF = f"{NA}.preferredDuringSchedulingIgnoredDuringExecution"


def causes(node_affinity: dict[str, Any]) -> dict[str, str]:
    obj = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "ns"},
           "spec": {"containers": [{"name": "c", "image": "busybox"}],
                    "affinity": {"nodeAffinity": node_affinity}}}
    ST.prepare_for_create(obj)
    ST.default(obj)
    return {c["field"]: c["message"] for c in ST.validate(obj, True)}


def required(*terms: dict[str, Any]) -> dict[str, Any]:
    return {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": list(terms)}}


def test_valid_node_affinity_passes() -> None:
    assert causes({
        **required({"matchExpressions": [{"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]},
                                         {"key": "gpu", "operator": "Exists"},
                                         {"key": "cores", "operator": "Gt", "values": ["4"]}]},
                   {"matchFields": [{"key": "metadata.name", "operator": "NotIn", "values": ["node-1"]}]},
                   {}),  # an empty term is valid (it matches nothing)
        "preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 100, "preference": {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}}],
    }) == {}


@pytest.mark.parametrize("node_affinity, field, message", [
    ({"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": []}},
     f"{REQ}.nodeSelectorTerms", "Required value: must have at least one node selector term"),
    ({"requiredDuringSchedulingIgnoredDuringExecution": {}},
     f"{REQ}.nodeSelectorTerms", "Required value: must have at least one node selector term"),
    (required({"matchExpressions": [{"key": "k", "operator": "In"}]}),
     f"{REQ}.nodeSelectorTerms[0].matchExpressions[0].values",
     "Required value: must be specified when `operator` is 'In' or 'NotIn'"),
    (required({"matchExpressions": [{"key": "k", "operator": "DoesNotExist", "values": ["v"]}]}),
     f"{REQ}.nodeSelectorTerms[0].matchExpressions[0].values",
     "Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'"),
    (required({"matchExpressions": [{"key": "k", "operator": "Lt", "values": ["1", "2"]}]}),
     f"{REQ}.nodeSelectorTerms[0].matchExpressions[0].values",
     "Required value: must be specified single value when `operator` is 'Lt' or 'Gt'"),
    (required({"matchExpressions": [{"key": "k", "operator": "Equals", "values": ["v"]}]}),
     f"{REQ}.nodeSelectorTerms[0].matchExpressions[0].operator",
     'Invalid value: "Equals": not a valid selector operator'),
    (required({}, {"matchExpressions": [{"key": "bad key", "operator": "Exists"}]}),
     f"{REQ}.nodeSelectorTerms[1].matchExpressions[0].key",
     "Invalid value: \"bad key\": name part must consist of alphanumeric characters, '-', '_' or '.', and must "
     "start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for "
     "validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"),
    (required({"matchFields": [{"key": "spec.nodeName", "operator": "In", "values": ["n1"]}]}),
     f"{REQ}.nodeSelectorTerms[0].matchFields[0].key",
     'Invalid value: "spec.nodeName": not a valid field selector key'),
    (required({"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["a", "b"]}]}),
     f"{REQ}.nodeSelectorTerms[0].matchFields[0].values",
     "Required value: must be only one value when `operator` is 'In' or 'NotIn' for node field selector"),
    (required({"matchFields": [{"key": "metadata.name", "operator": "Exists"}]}),
     f"{REQ}.nodeSelectorTerms[0].matchFields[0].operator",
     'Invalid value: "Exists": not a valid selector operator'),
    (required({"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["Node_1"]}]}),
     f"{REQ}.nodeSelectorTerms[0].matchFields[0].values[0]",
     "Invalid value: \"Node_1\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
     "characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex "
     "used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"),
    ({"preferredDuringSchedulingIgnoredDuringExecution": [{"preference": {}}]},
     f"{PREF}[0].weight", "Invalid value: 0: must be in the range 1-100"),
    ({"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 101, "preference": {"matchExpressions": [{"key": "k", "operator": "Exists"}]}}]},
     f"{PREF}[0].weight", "Invalid value: 101: must be in the range 1-100"),
    ({"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 1, "preference": {"matchExpressions": [{"key": "k", "operator": "Gt"}]}}]},
     f"{PREF}[0].preference.matchExpressions[0].values",
     "Required value: must be specified single value when `operator` is 'Lt' or 'Gt'"),
])
def test_invalid_node_affinity_is_refused_with_upstreams_words(node_affinity: dict[str, Any], field: str,
                                                               message: str) -> None:
    assert causes(node_affinity) == {field: message}


def pv_causes(spec: dict[str, Any]) -> dict[str, str]:
    return {c["field"]: c["message"] for c in validate_pv_spec(
        {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], **spec}, "spec")}


def test_persistent_volume_node_affinity_is_validated() -> None:
    ok = {"required": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": ["n1"]}]}]}}
    assert pv_causes({"local": {"path": "/mnt/disk"}, "nodeAffinity": ok}) == {}
    assert pv_causes({"local": {"path": "/mnt/disk"}}) == {
        "spec.nodeAffinity": "Required value: Local volume requires node affinity"}
    # nodeAffinity without `required`: that, not the local volume's rule, is what upstream reports
    assert pv_causes({"local": {"path": "/mnt/disk"}, "nodeAffinity": {}}) == {
        "spec.nodeAffinity.required": "Required value: must specify required node constraints"}
    assert pv_causes({"hostPath": {"path": "/tmp/x"}, "nodeAffinity": {"required": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "k", "operator": "In"}]}]}}}) == {
        "spec.nodeAffinity.required.nodeSelectorTerms[0].matchExpressions[0].values":
            "Required value: must be specified when `operator` is 'In' or 'NotIn'"}
