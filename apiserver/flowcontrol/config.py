"""Upstream's APF configuration objects (k8s.io/apiserver pkg/apis/flowcontrol/bootstrap, 1.31).

The mandatory objects (`exempt` and `catch-all`, a FlowSchema and a PriorityLevelConfiguration
each) always exist: the ensurer recreates them and validation keeps their specs fixed; the
filter imagines them while they are missing. The suggested ones are created when missing and
kept up to date while their `apf.kubernetes.io/autoupdate-spec` annotation is "true".
Objects are v1 JSON dicts in their defaulted form.
"""

from __future__ import annotations

from typing import Any

GROUP = "flowcontrol.apiserver.k8s.io"
API_VERSION = f"{GROUP}/v1"
AUTO_UPDATE_ANNOTATION = "apf.kubernetes.io/autoupdate-spec"
#: response headers naming the matched objects by UID (not by name, as upstream: names may tell a
#: rejected client that it is classified low)
FLOW_SCHEMA_UID_HEADER = "X-Kubernetes-PF-FlowSchema-UID"
PRIORITY_LEVEL_UID_HEADER = "X-Kubernetes-PF-PriorityLevel-UID"

EXEMPT = "exempt"
CATCH_ALL = "catch-all"
MAX_MATCHING_PRECEDENCE = 10000

Obj = dict[str, Any]

_ALL_RESOURCES = {"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"], "clusterScope": True, "namespaces": ["*"]}
_ALL_URLS = {"verbs": ["*"], "nonResourceURLs": ["*"]}


def _meta(name: str) -> Obj:
    return {"name": name, "annotations": {AUTO_UPDATE_ANNOTATION: "true"}}


def _limited(name: str, shares: int, lendable: int, queues: int = 0, hand_size: int = 0) -> Obj:
    response: Obj = {"type": "Reject"}
    if queues:
        response = {"type": "Queue", "queuing": {"queues": queues, "handSize": hand_size, "queueLengthLimit": 50}}
    return {"apiVersion": API_VERSION, "kind": "PriorityLevelConfiguration", "metadata": _meta(name),
            "spec": {"type": "Limited", "limited": {"nominalConcurrencyShares": shares, "lendablePercent": lendable,
                                                    "limitResponse": response}}}


def _schema(name: str, level: str, precedence: int, distinguisher: str, subjects: list[Obj],
            resource_rules: list[Obj] | None = None, non_resource_rules: list[Obj] | None = None) -> Obj:
    rule: Obj = {"subjects": subjects}
    if resource_rules:
        rule["resourceRules"] = resource_rules
    if non_resource_rules:
        rule["nonResourceRules"] = non_resource_rules
    spec: Obj = {"priorityLevelConfiguration": {"name": level}, "matchingPrecedence": precedence}
    if distinguisher:
        spec["distinguisherMethod"] = {"type": distinguisher}
    spec["rules"] = [rule]
    return {"apiVersion": API_VERSION, "kind": "FlowSchema", "metadata": _meta(name), "spec": spec}


def _groups(*names: str) -> list[Obj]:
    return [{"kind": "Group", "group": {"name": n}} for n in names]


def _users(*names: str) -> list[Obj]:
    return [{"kind": "User", "user": {"name": n}} for n in names]


def _kube_system_service_accounts(*names: str) -> list[Obj]:
    return [{"kind": "ServiceAccount", "serviceAccount": {"namespace": "kube-system", "name": n}} for n in names]


def _rule(verbs: list[str], groups: list[str], resources: list[str], cluster_scope: bool) -> Obj:
    rule: Obj = {"verbs": verbs, "apiGroups": groups, "resources": resources}
    if cluster_scope:
        rule["clusterScope"] = True
    rule["namespaces"] = ["*"]
    return rule


_EVERYONE = ("system:unauthenticated", "system:authenticated")
_CONTROLLER_MANAGER, _SCHEDULER = "system:kube-controller-manager", "system:kube-scheduler"
_LEASES = _rule(["get", "create", "update"], ["coordination.k8s.io"], ["leases"], False)

MANDATORY_PRIORITY_LEVELS: list[Obj] = [
    _limited(CATCH_ALL, 5, 0),
    {"apiVersion": API_VERSION, "kind": "PriorityLevelConfiguration", "metadata": _meta(EXEMPT),
     "spec": {"type": "Exempt", "exempt": {"nominalConcurrencyShares": 0, "lendablePercent": 0}}},
]
MANDATORY_FLOW_SCHEMAS: list[Obj] = [
    _schema(EXEMPT, EXEMPT, 1, "", _groups("system:masters"), [_ALL_RESOURCES], [_ALL_URLS]),
    _schema(CATCH_ALL, CATCH_ALL, 10000, "ByUser", _groups(*_EVERYONE), [_ALL_RESOURCES], [_ALL_URLS]),
]

SUGGESTED_PRIORITY_LEVELS: list[Obj] = [
    _limited("system", 30, 33, 64, 6),
    _limited("node-high", 40, 25, 64, 6),
    _limited("leader-election", 10, 0, 16, 4),
    _limited("workload-high", 40, 50, 128, 6),
    _limited("workload-low", 100, 90, 128, 6),
    _limited("global-default", 20, 50, 128, 6),
]
SUGGESTED_FLOW_SCHEMAS: list[Obj] = [
    _schema("system-nodes", "system", 500, "ByUser", _groups("system:nodes"), [_ALL_RESOURCES], [_ALL_URLS]),
    _schema("system-node-high", "node-high", 400, "ByUser", _groups("system:nodes"), [
        _rule(["*"], [""], ["nodes", "nodes/status"], True),
        _rule(["*"], ["coordination.k8s.io"], ["leases"], False)]),
    _schema("probes", EXEMPT, 2, "", _groups(*_EVERYONE),
            non_resource_rules=[{"verbs": ["get"], "nonResourceURLs": ["/healthz", "/readyz", "/livez"]}]),
    _schema("system-leader-election", "leader-election", 100, "ByUser",
            _users(_CONTROLLER_MANAGER, _SCHEDULER) + _kube_system_service_accounts("*"), [_LEASES]),
    _schema("workload-leader-election", "leader-election", 200, "ByUser", _kube_system_service_accounts("*"), [
        _rule(["get", "create", "update"], [""], ["endpoints", "configmaps"], False), _LEASES]),
    _schema("endpoint-controller", "workload-high", 150, "ByUser",
            _users(_CONTROLLER_MANAGER)
            + _kube_system_service_accounts("endpoint-controller", "endpointslicemirroring-controller"),
            [_rule(["get", "create", "update"], [""], ["endpoints"], False)]),
    _schema("kube-controller-manager", "workload-high", 800, "ByNamespace", _users(_CONTROLLER_MANAGER),
            [_ALL_RESOURCES], [_ALL_URLS]),
    _schema("kube-scheduler", "workload-high", 800, "ByNamespace", _users(_SCHEDULER), [_ALL_RESOURCES], [_ALL_URLS]),
    _schema("kube-system-service-accounts", "workload-high", 900, "ByNamespace", _kube_system_service_accounts("*"),
            [_ALL_RESOURCES], [_ALL_URLS]),
    _schema("service-accounts", "workload-low", 9000, "ByUser", _groups("system:serviceaccounts"), [_ALL_RESOURCES],
            [_ALL_URLS]),
    _schema("global-default", "global-default", 9900, "ByUser", _groups(*_EVERYONE), [_ALL_RESOURCES], [_ALL_URLS]),
]

MANDATORY_SPECS: dict[str, dict[str, Obj]] = {
    "flowschemas": {o["metadata"]["name"]: o["spec"] for o in MANDATORY_FLOW_SCHEMAS},
    "prioritylevelconfigurations": {o["metadata"]["name"]: o["spec"] for o in MANDATORY_PRIORITY_LEVELS},
}


def semantic(value: Any) -> Any:
    """`value` with what Go's semantic equality ignores dropped: unset (null), false, "", and
    empty lists and objects; numbers are kept (a pointer to 0 is not an unset pointer)."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            v = semantic(v)
            if v is None or v is False or v == "" or v == [] or v == {}:
                continue
            out[k] = v
        return out
    if isinstance(value, list):
        return [semantic(v) for v in value]
    return value


def specs_equal(a: Any, b: Any) -> bool:
    """Whether two specs are equal as upstream's apiequality.Semantic.DeepEqual compares them."""
    return semantic(a) == semantic(b)
