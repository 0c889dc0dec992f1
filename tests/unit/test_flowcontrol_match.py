"""API Priority and Fairness: which FlowSchema a request belongs to (apiserver/flowcontrol/match.py)."""

from __future__ import annotations

import pytest

from apiserver.authn import UserInfo
from apiserver.flowcontrol import config
from apiserver.flowcontrol.match import Classifier, compile_schema, matching_order
from apiserver.requestinfo import parse

ADMIN = UserInfo("admin", "", ("system:masters", "system:authenticated"))
NODE = UserInfo("system:node:n1", "", ("system:nodes", "system:authenticated"))
KCM = UserInfo("system:kube-controller-manager", "", ("system:authenticated",))
SCHEDULER = UserInfo("system:kube-scheduler", "", ("system:authenticated",))
ALICE = UserInfo("alice", "", ("dev", "system:authenticated"))
ANONYMOUS = UserInfo("system:anonymous", "", ("system:unauthenticated",))


def sa(ns: str, name: str) -> UserInfo:
    return UserInfo(f"system:serviceaccount:{ns}:{name}", "",
                    ("system:serviceaccounts", f"system:serviceaccounts:{ns}", "system:authenticated"))


def request(method: str, path: str, **query: str):
    return parse(method, path, dict(query))


def default_classifier() -> Classifier:
    schemas = [compile_schema(o) for o in config.MANDATORY_FLOW_SCHEMAS + config.SUGGESTED_FLOW_SCHEMAS]
    return Classifier(sorted(schemas, key=matching_order))


@pytest.mark.parametrize("user,method,path,expected", [
    (ADMIN, "GET", "/api/v1/pods", "exempt"),
    (ADMIN, "GET", "/version", "exempt"),
    (ANONYMOUS, "GET", "/healthz", "probes"),
    (ALICE, "GET", "/readyz/etcd", "probes"),  # a listed URL covers the paths below it
    (ALICE, "POST", "/healthz", "global-default"),  # probes are GETs
    (NODE, "PUT", "/api/v1/nodes/n1/status", "system-node-high"),
    (NODE, "GET", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n1", "system-node-high"),
    (NODE, "GET", "/api/v1/namespaces/default/pods", "system-nodes"),
    (NODE, "GET", "/version", "system-nodes"),
    (KCM, "PUT", "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/kube-controller-manager",
     "system-leader-election"),
    (KCM, "PUT", "/api/v1/namespaces/default/endpoints/web", "endpoint-controller"),
    (KCM, "GET", "/api/v1/pods", "kube-controller-manager"),
    (SCHEDULER, "POST", "/api/v1/namespaces/default/pods/p/binding", "kube-scheduler"),
    (sa("kube-system", "endpoint-controller"), "PUT", "/api/v1/namespaces/default/endpoints/web",
     "endpoint-controller"),
    (sa("kube-system", "deployment-controller"), "GET",
     "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/x", "system-leader-election"),
    (sa("kube-system", "deployment-controller"), "PUT",
     "/api/v1/namespaces/kube-system/configmaps/lock", "workload-leader-election"),
    (sa("kube-system", "deployment-controller"), "GET", "/apis/apps/v1/deployments", "kube-system-service-accounts"),
    (sa("default", "builder"), "GET", "/api/v1/namespaces/default/pods", "service-accounts"),
    (ALICE, "DELETE", "/api/v1/namespaces/default/pods/p", "global-default"),
    (ANONYMOUS, "GET", "/version", "global-default"),
])
def test_the_shipped_schemas_classify_as_upstream(user, method, path, expected) -> None:
    assert default_classifier().classify(user, request(method, path)).name == expected


def fs(name: str, precedence: int, subjects: list, resource_rules=None, url_rules=None) -> dict:
    rule: dict = {"subjects": subjects}
    if resource_rules is not None:
        rule["resourceRules"] = resource_rules
    if url_rules is not None:
        rule["nonResourceRules"] = url_rules
    return {"metadata": {"name": name, "uid": f"uid-{name}"},
            "spec": {"priorityLevelConfiguration": {"name": "pl"}, "matchingPrecedence": precedence,
                     "rules": [rule]}}


EVERYTHING = [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"], "clusterScope": True, "namespaces": ["*"]}]


def one(schema: dict, user: UserInfo, method: str, path: str) -> bool:
    return Classifier([compile_schema(schema)]).classify(user, request(method, path)) is not None


def test_subjects() -> None:
    users = fs("u", 10, [{"kind": "User", "user": {"name": "alice"}}], EVERYTHING)
    assert one(users, ALICE, "GET", "/api/v1/pods")
    assert not one(users, KCM, "GET", "/api/v1/pods")
    anyone = fs("any", 10, [{"kind": "Group", "group": {"name": "*"}}], EVERYTHING)
    assert one(anyone, ANONYMOUS, "GET", "/api/v1/pods")
    accounts = fs("sa", 10, [{"kind": "ServiceAccount", "serviceAccount": {"namespace": "ci", "name": "*"}},
                             {"kind": "ServiceAccount", "serviceAccount": {"namespace": "prod", "name": "deployer"}}],
                  EVERYTHING)
    assert one(accounts, sa("ci", "x"), "GET", "/api/v1/pods")
    assert one(accounts, sa("prod", "deployer"), "GET", "/api/v1/pods")
    assert not one(accounts, sa("prod", "other"), "GET", "/api/v1/pods")
    assert not one(accounts, sa("cix", "x"), "GET", "/api/v1/pods")  # the namespace in full
    assert not one(accounts, UserInfo("ci:x"), "GET", "/api/v1/pods")


def test_resource_rules() -> None:
    rules = [{"verbs": ["get", "list"], "apiGroups": ["", "apps"], "resources": ["pods", "deployments/scale"],
              "namespaces": ["team-a"]}]
    schema = fs("r", 10, [{"kind": "Group", "group": {"name": "*"}}], rules)
    assert one(schema, ALICE, "GET", "/api/v1/namespaces/team-a/pods/p")
    assert one(schema, ALICE, "GET", "/apis/apps/v1/namespaces/team-a/deployments/d/scale")
    assert not one(schema, ALICE, "GET", "/apis/apps/v1/namespaces/team-a/deployments/d")
    assert not one(schema, ALICE, "GET", "/api/v1/namespaces/team-a/pods/p/log")
    assert not one(schema, ALICE, "DELETE", "/api/v1/namespaces/team-a/pods/p")
    assert not one(schema, ALICE, "GET", "/api/v1/namespaces/team-b/pods/p")
    assert not one(schema, ALICE, "GET", "/api/v1/pods")  # cluster-wide: not clusterScope
    assert not one(schema, ALICE, "GET", "/version")  # resource rules only
    cluster = fs("c", 10, [{"kind": "Group", "group": {"name": "*"}}],
                 [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["nodes"], "clusterScope": True,
                   "namespaces": []}])
    assert one(cluster, ALICE, "GET", "/api/v1/nodes")
    assert not one(cluster, ALICE, "GET", "/api/v1/namespaces/x/nodes")


def test_non_resource_rules() -> None:
    schema = fs("n", 10, [{"kind": "Group", "group": {"name": "*"}}],
                url_rules=[{"verbs": ["get"], "nonResourceURLs": ["/version", "/apis/*"]}])
    assert one(schema, ALICE, "GET", "/version")
    assert one(schema, ALICE, "GET", "/apis/apps")
    assert not one(schema, ALICE, "GET", "/apis")  # `/apis/*` is what is below /apis
    assert not one(schema, ALICE, "GET", "/api")
    assert not one(schema, ALICE, "POST", "/version")
    assert not one(schema, ALICE, "GET", "/api/v1/pods")  # non-resource rules only


def test_precedence_then_name() -> None:
    everyone = [{"kind": "Group", "group": {"name": "system:authenticated"}}]
    schemas = sorted((compile_schema(fs(n, p, everyone, EVERYTHING)) for n, p in (("b", 5), ("a", 5), ("c", 1))),
                     key=matching_order)
    assert [s.name for s in schemas] == ["c", "a", "b"]
    assert Classifier(schemas).classify(ALICE, request("GET", "/api/v1/pods")).name == "c"
    assert Classifier(schemas).classify(ANONYMOUS, request("GET", "/api/v1/pods")) is None


def test_a_users_candidates_are_worked_out_once() -> None:
    c = default_classifier()
    c.classify(ALICE, request("GET", "/api/v1/pods"))
    c.classify(ALICE, request("GET", "/version"))
    c.classify(NODE, request("GET", "/version"))
    assert len(c._by_user) == 2
    names = [s.name for s, _ in c._by_user[(ALICE.name, ALICE.groups)]]
    assert names == ["probes", "global-default", "catch-all"]


def test_distinguishers() -> None:
    schema = compile_schema(config.SUGGESTED_FLOW_SCHEMAS[-1])  # global-default: ByUser
    info = request("GET", "/api/v1/namespaces/ns/pods")
    assert schema.distinguish(ALICE, info) == "alice"
    kcm = next(o for o in config.SUGGESTED_FLOW_SCHEMAS if o["metadata"]["name"] == "kube-controller-manager")
    assert compile_schema(kcm).distinguish(KCM, info) == "ns"
    assert compile_schema(config.MANDATORY_FLOW_SCHEMAS[0]).distinguish(ADMIN, info) == ""
