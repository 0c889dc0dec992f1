"""flowcontrol.apiserver.k8s.io/v1 defaulting and validation (apiserver/registry/flowcontrol.py) and the
shipped configuration (apiserver/flowcontrol/config.py)."""

from __future__ import annotations

import copy

import pytest

from apiserver.flowcontrol import config
from apiserver.registry.flowcontrol import FlowSchemaStrategy, PriorityLevelConfigurationStrategy

FS, PL = FlowSchemaStrategy(), PriorityLevelConfigurationStrategy()


def causes(strategy, obj: dict) -> list[str]:
    return [f"{c['field']}: {c['message']}" for c in strategy.validate(obj, False)]


def flow_schema(**spec) -> dict:
    base = {"priorityLevelConfiguration": {"name": "global-default"}, "matchingPrecedence": 500,
            "rules": [{"subjects": [{"kind": "Group", "group": {"name": "dev"}}],
                       "resourceRules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"],
                                          "namespaces": ["*"]}]}]}
    return {"apiVersion": config.API_VERSION, "kind": "FlowSchema", "metadata": {"name": "fs"}, "spec": {**base, **spec}}


def level(name: str = "pl", **spec) -> dict:
    base = {"type": "Limited", "limited": {"nominalConcurrencyShares": 10, "lendablePercent": 0,
                                           "limitResponse": {"type": "Queue", "queuing": {
                                               "queues": 64, "handSize": 8, "queueLengthLimit": 50}}}}
    return {"apiVersion": config.API_VERSION, "kind": "PriorityLevelConfiguration", "metadata": {"name": name},
            "spec": {**base, **spec}}


def test_shipped_objects_are_defaulted_and_valid() -> None:
    for strategy, objects in ((FS, config.MANDATORY_FLOW_SCHEMAS + config.SUGGESTED_FLOW_SCHEMAS),
                              (PL, config.MANDATORY_PRIORITY_LEVELS + config.SUGGESTED_PRIORITY_LEVELS)):
        for obj in objects:
            defaulted = copy.deepcopy(obj)
            strategy.default(defaulted)
            assert defaulted == obj
            assert causes(strategy, obj) == [], obj["metadata"]["name"]


def test_defaults() -> None:
    fs = flow_schema(matchingPrecedence=None)
    FS.default(fs)
    assert fs["spec"]["matchingPrecedence"] == 1000
    pl = level(limited={"limitResponse": {"type": "Queue", "queuing": {}}})
    PL.default(pl)
    assert pl["spec"]["limited"] == {"nominalConcurrencyShares": 30, "lendablePercent": 0, "limitResponse": {
        "type": "Queue", "queuing": {"handSize": 8, "queues": 64, "queueLengthLimit": 50}}}
    zero = level(limited={"nominalConcurrencyShares": 0, "limitResponse": {"type": "Reject"}})
    PL.default(zero)
    assert zero["spec"]["limited"] == {"nominalConcurrencyShares": 0, "lendablePercent": 0,
                                       "limitResponse": {"type": "Reject"}}  # zero is kept at v1
    exempt = level("exempt", type="Exempt", limited=None, exempt={})
    del exempt["spec"]["limited"]
    PL.default(exempt)
    assert exempt["spec"]["exempt"] == {"nominalConcurrencyShares": 0, "lendablePercent": 0}


@pytest.mark.parametrize("spec,expected", [
    ({"matchingPrecedence": 0}, ["spec.matchingPrecedence: Invalid value: 0: must be a positive value"]),
    ({"matchingPrecedence": 10001}, ["spec.matchingPrecedence: Invalid value: 10001: must not be greater than 10000"]),
    ({"matchingPrecedence": 1},
     ["spec.matchingPrecedence: Invalid value: 1: only the schema named 'exempt' may have matchingPrecedence 1"]),
    ({"distinguisherMethod": {"type": "ByGroup"}},
     ['spec.distinguisherMethod.type: Unsupported value: {"type":"ByGroup"}: supported values: "ByNamespace", '
      '"ByUser"']),
    ({"priorityLevelConfiguration": {"name": ""}},
     ["spec.priorityLevelConfiguration.name: Required value: must reference a priority level"]),
    ({"priorityLevelConfiguration": {"name": "Bad_Name"}},
     ['spec.priorityLevelConfiguration.name: Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain must consist '
      "of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character "
      "(e.g. 'example.com', regex used for validation is "
      "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"]),
    ({"rules": [{"subjects": []}]},
     ["spec.rules[0].subjects: Required value: subjects must contain at least one value",
      "spec.rules[0]: Required value: at least one of resourceRules and nonResourceRules has to be non-empty"]),
    ({"rules": [{"subjects": [{"kind": "Robot"}, {"kind": "User"}, {"kind": "Group", "group": {"name": ""},
                                                                      "user": {"name": "x"}},
                              {"kind": "ServiceAccount", "serviceAccount": {"name": "", "namespace": ""}}],
                 "nonResourceRules": [{"verbs": ["get"], "nonResourceURLs": ["/x"]}]}]},
     ['spec.rules[0].subjects[0].kind: Unsupported value: "Robot": supported values: "Group", "ServiceAccount", '
      '"User"',
      "spec.rules[0].subjects[1].user: Required value: user is required when subject kind is 'User'",
      "spec.rules[0].subjects[2].group.name: Required value",
      "spec.rules[0].subjects[2].user: Forbidden: user is forbidden when subject kind is not 'User'",
      "spec.rules[0].subjects[3].serviceAccount.name: Required value",
      "spec.rules[0].subjects[3].serviceAccount.namespace: Required value: must specify namespace for service "
      "account"]),
    ({"rules": [{"subjects": [{"kind": "Group", "group": {"name": "g"}}],
                 "resourceRules": [{"verbs": [], "apiGroups": [], "resources": [], "namespaces": []},
                                   {"verbs": ["*", "get"], "apiGroups": ["*", "apps"], "resources": ["*", "pods"],
                                    "namespaces": ["*", "a"]},
                                   {"verbs": ["fly"], "apiGroups": [""], "resources": ["pods"],
                                    "namespaces": ["Bad"]}]}]},
     ["spec.rules[0].resourceRules[0].verbs: Required value: verbs must contain at least one value",
      "spec.rules[0].resourceRules[0].apiGroups: Required value: resource rules must supply at least one api group",
      "spec.rules[0].resourceRules[0].resources: Required value: resource rules must supply at least one resource",
      "spec.rules[0].resourceRules[0].namespaces: Required value: resource rules that are not cluster scoped must "
      "supply at least one namespace",
      'spec.rules[0].resourceRules[1].verbs: Invalid value: []string{"*", "get"}: if \'*\' is present, must not '
      "specify other verbs",
      'spec.rules[0].resourceRules[1].apiGroups: Invalid value: []string{"*", "apps"}: if \'*\' is present, must '
      "not specify other api groups",
      'spec.rules[0].resourceRules[1].resources: Invalid value: []string{"*", "pods"}: if \'*\' is present, must '
      "not specify other resources",
      'spec.rules[0].resourceRules[1].namespaces: Invalid value: []string{"*", "a"}: if \'*\' is present, must not '
      "specify other namespaces",
      'spec.rules[0].resourceRules[2].verbs: Unsupported value: []string{"fly"}: supported values: "create", '
      '"delete", "deletecollection", "get", "list", "patch", "proxy", "update", "watch"',
      'spec.rules[0].resourceRules[2].namespaces[0]: Invalid value: "Bad": each member of this list must be \'*\' or '
      "a DNS-1123 label; a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and "
      "must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation "
      "is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"]),
    ({"rules": [{"subjects": [{"kind": "Group", "group": {"name": "g"}}],
                 "nonResourceRules": [{"verbs": ["get"], "nonResourceURLs": ["", "x", "/a b", "//a", "/a*", "/a/*",
                                                                             "/"]},
                                      {"verbs": ["get"], "nonResourceURLs": ["*", "/x"]}]}]},
     ['spec.rules[0].nonResourceRules[0].nonResourceURLs[0]: Invalid value: "": must not be empty',
      'spec.rules[0].nonResourceRules[0].nonResourceURLs[1]: Invalid value: "x": must start with slash',
      'spec.rules[0].nonResourceRules[0].nonResourceURLs[2]: Invalid value: "/a b": must not contain white-space',
      'spec.rules[0].nonResourceRules[0].nonResourceURLs[3]: Invalid value: "//a": must not contain double slash',
      'spec.rules[0].nonResourceRules[0].nonResourceURLs[4]: Invalid value: "/a*": wildcard can only do suffix '
      "matching",
      'spec.rules[0].nonResourceRules[1].nonResourceURLs: Invalid value: []string{"*", "/x"}: if \'*\' is present, '
      "must not specify other non-resource URLs"]),
])
def test_flow_schema_validation(spec: dict, expected: list[str]) -> None:
    assert causes(FS, flow_schema(**spec)) == expected


@pytest.mark.parametrize("name,spec,expected", [
    ("pl", {"type": "Exempt"}, ["spec.type: Invalid value: \"Exempt\": type must be 'Exempt' if and only if name is "
                                "'exempt'", "spec.limited: Forbidden: must be nil if the type is not Limited"]),
    ("pl", {"type": "Sometimes"}, ['spec.type: Unsupported value: "Sometimes": supported values: "Exempt", '
                                   '"Limited"']),
    ("pl", {"limited": None}, ["spec.limited: Required value: must not be empty when type is Limited"]),
    ("pl", {"exempt": {}}, ["spec.exempt: Forbidden: must be nil if the type is Limited"]),
    ("pl", {"limited": {"nominalConcurrencyShares": -1, "lendablePercent": 101, "borrowingLimitPercent": -1,
                        "limitResponse": {"type": "Reject", "queuing": {}}}},
     ["spec.limited.nominalConcurrencyShares: Invalid value: -1: must be a non-negative integer",
      "spec.limited.limitResponse.queuing: Forbidden: must be nil if limited.limitResponse.type is not Limited",
      "spec.limited.lendablePercent: Invalid value: 101: must be between 0 and 100, inclusive",
      "spec.limited.borrowingLimitPercent: Invalid value: -1: if specified, must be a non-negative integer"]),
    ("pl", {"limited": {"nominalConcurrencyShares": 0, "limitResponse": {"type": "Queue"}}},
     ["spec.limited.limitResponse.queuing: Required value: must not be empty if limited.limitResponse.type is "
      "Limited"]),
    ("pl", {"limited": {"limitResponse": {"type": "Drop"}}},
     ['spec.limited.limitResponse.type: Unsupported value: "Drop": supported values: "Queue", "Reject"']),
    ("pl", {"limited": {"limitResponse": {"type": "Queue", "queuing": {"queues": 0, "handSize": 0,
                                                                        "queueLengthLimit": 0}}}},
     ["spec.limited.limitResponse.queuing.queueLengthLimit: Invalid value: 0: must be positive",
      "spec.limited.limitResponse.queuing.queues: Invalid value: 0: must be positive",
      "spec.limited.limitResponse.queuing.handSize: Invalid value: 0: must be positive"]),
    ("pl", {"limited": {"limitResponse": {"type": "Queue", "queuing": {"queues": 10_000_001, "handSize": 1,
                                                                        "queueLengthLimit": 1}}}},
     ["spec.limited.limitResponse.queuing.queues: Invalid value: 10000001: must not be greater than 10000000"]),
    ("pl", {"limited": {"limitResponse": {"type": "Queue", "queuing": {"queues": 8, "handSize": 9,
                                                                        "queueLengthLimit": 1}}}},
     ["spec.limited.limitResponse.queuing.handSize: Invalid value: 9: should not be greater than queues (8)"]),
    ("pl", {"limited": {"limitResponse": {"type": "Queue", "queuing": {"queues": 128, "handSize": 9,
                                                                        "queueLengthLimit": 1}}}},
     ["spec.limited.limitResponse.queuing.handSize: Invalid value: 9: required entropy bits of deckSize 128 and "
      "handSize 9 should not be greater than 60"]),
    ("exempt", {"type": "Exempt", "limited": None, "exempt": {"nominalConcurrencyShares": -2,
                                                             "lendablePercent": -1}},
     ["spec.exempt.nominalConcurrencyShares: Invalid value: -2: must be a non-negative number",
      "spec.exempt.lendablePercent: Invalid value: -1: must be between 0 and 100, inclusive"]),
])
def test_priority_level_validation(name: str, spec: dict, expected: list[str]) -> None:
    obj = level(name, **spec)
    obj["spec"] = {k: v for k, v in obj["spec"].items() if v is not None}
    got = causes(PL, obj)
    if name == "exempt":  # the mandatory object's own check follows
        got = [c for c in got if "fixed value" not in c]
    assert got == expected


def test_the_v1beta3_round_trip_annotation_is_forbidden() -> None:
    obj = level()
    obj["metadata"]["annotations"] = {"flowcontrol.k8s.io/v1beta3-preserve-zero-concurrency-shares": ""}
    assert causes(PL, obj) == ["metadata.annotations: Forbidden: annotation "
                               "'flowcontrol.k8s.io/v1beta3-preserve-zero-concurrency-shares' is forbidden"]


def test_mandatory_specs_are_fixed() -> None:
    catch_all = copy.deepcopy(config.MANDATORY_PRIORITY_LEVELS[0])
    catch_all["spec"]["limited"]["nominalConcurrencyShares"] = 50
    assert [c.split(": ")[-1] for c in causes(PL, catch_all)] == ["spec of 'catch-all' must equal the fixed value"]
    exempt = copy.deepcopy(config.MANDATORY_PRIORITY_LEVELS[1])
    exempt["spec"]["exempt"] = {"nominalConcurrencyShares": 10, "lendablePercent": 20}  # the admin's to tune
    assert causes(PL, exempt) == []
    exempt["spec"]["limited"] = {"nominalConcurrencyShares": 1, "limitResponse": {"type": "Reject"}}
    assert causes(PL, exempt)[-1].endswith("spec of 'exempt' except the 'spec.exempt' field must equal the fixed "
                                           "value")
    fs = copy.deepcopy(config.MANDATORY_FLOW_SCHEMAS[1])
    fs["spec"]["rules"][0]["resourceRules"][0]["clusterScope"] = True  # as it is
    fs["spec"]["rules"][0]["nonResourceRules"][0]["verbs"] = ["*"]
    assert causes(FS, fs) == []
    fs["spec"]["distinguisherMethod"] = {"type": "ByNamespace"}
    assert causes(FS, fs)[-1].endswith("spec of 'catch-all' must equal the fixed value")


def test_status_conditions() -> None:
    new = flow_schema()
    new["status"] = {"conditions": [{"type": "Dangling", "status": "True"}, {"type": "Dangling"}, {"status": "x"}]}
    assert [f"{c['field']}: {c['message']}" for c in FS.validate_status_update(new, flow_schema())] == [
        'status.conditions[1].type: Duplicate value: "Dangling"',
        "status.conditions[2].type: Required value: must not be empty"]
