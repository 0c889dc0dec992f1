"""Auditing: the audit.k8s.io/v1 Policy (parsing, validation, rule matching) and the Events
built for a request, as upstream's kube-apiserver 1.31 does them; the log backend's rotation."""

from __future__ import annotations

import gzip
import json
import os
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from apiserver.audit import Auditor, LogBackend, micro_time, response_status
from apiserver.auditpolicy import DEFAULT_POLICY, Attributes, PolicyError, load_policy, load_policy_file
from apiserver.authn import UserInfo
from apiserver.http import Request
from apiserver.requestinfo import parse as parse_info

HEAD = "apiVersion: audit.k8s.io/v1\nkind: Policy\n"
ALICE = UserInfo("alice", "u-1", ("devs", "system:authenticated"))
BOB = UserInfo("bob", "", ("system:authenticated",))


def policy(rules: str, extra: str = ""):
    return load_policy(HEAD + extra + "rules:\n" + rules)


def attrs(method: str, path: str, query: str = "") -> Attributes:
    info = parse_info(method, path, {"watch": "1"} if "watch" in query else {})
    return Attributes(info.verb, info.is_resource, path, info.group, info.namespace, info.resource,
                      info.subresource, info.name)


# -- the policy: parsing and validation ------------------------------------------------------------


def test_the_default_policy_is_metadata_for_everything_without_request_received() -> None:
    p = load_policy(DEFAULT_POLICY)
    cfg = p.evaluate(BOB, attrs("GET", "/api/v1/namespaces/default/pods"))
    assert cfg.level == "Metadata" and cfg.omit_stages == {"RequestReceived"}
    assert p.evaluate(None, attrs("GET", "/healthz")).level == "Metadata"


@pytest.mark.parametrize(("text", "message"), [
    ("rules: [", "failed decoding"),
    ("apiVersion: audit.k8s.io/v1beta1\nkind: Policy\nrules: [{level: None}]", "unknown group version"),
    ("apiVersion: audit.k8s.io/v1\nkind: Event\nrules: [{level: None}]", "unknown group version"),
    (HEAD + "rules: []", "loaded illegal policy with 0 rules"),
    (HEAD, "loaded illegal policy with 0 rules"),
    (HEAD + "rules: [{}]", "rules[0].level: Required value"),
    (HEAD + "rules: [{level: Everything}]",
     'rules[0].level: Unsupported value: "Everything": supported values: "None", "Metadata", "Request", "RequestResponse"'),
    (HEAD + "rules: [{level: Metadata, omitStages: [ResponseDone]}]", 'rules[0].omitStages[0]: Unsupported value: "ResponseDone"'),
    (HEAD + "omitStages: [Received]\nrules: [{level: Metadata}]", 'omitStages[0]: Unsupported value: "Received"'),
    (HEAD + "rules: [{level: Metadata, nonResourceURLs: [healthz]}]", "non-resource URL rules must begin with a '/' character"),
    (HEAD + "rules: [{level: Metadata, nonResourceURLs: ['/api/*/x']}]", "wildcards '*' must be the final character"),
    (HEAD + "rules: [{level: Metadata, nonResourceURLs: ['/x'], namespaces: [a]}]",
     "rules cannot apply to both regular resources and non-resource URLs"),
    (HEAD + "rules: [{level: Metadata, resources: [{group: 'apps/v1', resources: [x]}]}]",
     'rules[0].resources.group: Invalid value: "apps/v1"'),
    (HEAD + "rules: [{level: Metadata, resources: [{resourceNames: [a]}]}]", "using resourceNames requires at least one resource"),
    (HEAD + "rules: [{level: Metadata, users: admin}]", "rules[0].users: expected a list, got a string"),
    (HEAD + "rules: [{level: Metadata, omitManagedFields: 'yes'}]", "omitManagedFields: expected a boolean"),
])
def test_a_bad_policy_is_refused_with_a_message(text: str, message: str) -> None:
    with pytest.raises(PolicyError) as e:
        load_policy(text)
    assert message in str(e.value)


def test_several_errors_are_reported_together_and_the_file_is_named(tmp_path: Path) -> None:
    f = tmp_path / "policy.yaml"
    f.write_text(HEAD + "rules: [{}, {level: Bad}]")
    with pytest.raises(PolicyError) as e:
        load_policy_file(f)
    assert "rules[0].level: Required value" in str(e.value) and 'rules[1].level: Unsupported value: "Bad"' in str(e.value)
    assert str(e.value).endswith(f"from file {f}")
    with pytest.raises(PolicyError, match="failed to read file path"):
        load_policy_file(tmp_path / "missing.yaml")


def test_json_policies_are_read_too() -> None:
    p = load_policy(json.dumps({"apiVersion": "audit.k8s.io/v1", "kind": "Policy", "rules": [{"level": "Request"}]}))
    assert p.evaluate(BOB, attrs("GET", "/version")).level == "Request"


# -- the policy: matching ----------------------------------------------------------------------


def test_rules_match_in_order_and_nothing_matched_is_not_audited() -> None:
    p = policy("""
  - level: None
    users: [alice]
  - level: RequestResponse
    userGroups: [system:masters]
  - level: Request
    verbs: [create, update]
""")
    assert p.evaluate(ALICE, attrs("POST", "/api/v1/namespaces/a/pods")).level == "None"
    admin = UserInfo("root", "", ("system:masters",))
    assert p.evaluate(admin, attrs("GET", "/api/v1/pods")).level == "RequestResponse"
    assert p.evaluate(BOB, attrs("POST", "/api/v1/namespaces/a/pods")).level == "Request"
    assert p.evaluate(BOB, attrs("GET", "/api/v1/namespaces/a/pods")).level == "None"  # no rule: none
    assert p.evaluate(None, attrs("POST", "/api/v1/namespaces/a/pods")).level == "Request"  # no user: users rules skip


def test_resources_subresources_wildcards_and_names() -> None:
    p = policy("""
  - level: RequestResponse
    resources: [{group: "", resources: ["pods/log"]}]
  - level: Request
    resources: [{group: "apps", resources: ["deployments/*"]}]
  - level: Metadata
    resources: [{group: "", resources: ["*/status"]}]
  - level: Request
    resources: [{group: "", resources: ["configmaps"], resourceNames: ["special"]}]
  - level: None
    resources: [{group: "", resources: ["*"]}]
  - level: Metadata
    resources: [{group: "rbac.authorization.k8s.io"}]
""")
    ev = p.evaluate
    assert ev(BOB, attrs("GET", "/api/v1/namespaces/a/pods/p/log")).level == "RequestResponse"
    assert ev(BOB, attrs("GET", "/api/v1/namespaces/a/pods/p")).level == "None"  # pods is not pods/log
    assert ev(BOB, attrs("GET", "/apis/apps/v1/namespaces/a/deployments/d")).level == "Request"
    assert ev(BOB, attrs("PUT", "/apis/apps/v1/namespaces/a/deployments/d/scale")).level == "Request"
    assert ev(BOB, attrs("GET", "/apis/apps/v1/namespaces/a/replicasets")).level == "None"  # no rule of apps
    assert ev(BOB, attrs("PUT", "/api/v1/namespaces/a/pods/p/status")).level == "Metadata"
    assert ev(BOB, attrs("GET", "/api/v1/namespaces/a/configmaps/special")).level == "Request"
    assert ev(BOB, attrs("GET", "/api/v1/namespaces/a/configmaps/other")).level == "None"
    assert ev(BOB, attrs("GET", "/apis/rbac.authorization.k8s.io/v1/clusterroles")).level == "Metadata"
    assert ev(BOB, attrs("GET", "/version")).level == "None"  # resource rules never match non-resource requests


def test_namespaces_with_empty_for_cluster_scoped_and_non_resource_urls() -> None:
    p = policy("""
  - level: Request
    namespaces: ["kube-system", ""]
  - level: Metadata
    nonResourceURLs: ["/healthz*", "/version"]
""")
    ev = p.evaluate
    assert ev(BOB, attrs("GET", "/api/v1/namespaces/kube-system/secrets")).level == "Request"
    assert ev(BOB, attrs("GET", "/api/v1/nodes")).level == "Request"  # cluster-scoped: ""
    assert ev(BOB, attrs("GET", "/api/v1/namespaces/default/secrets")).level == "None"
    assert ev(BOB, attrs("GET", "/healthz/etcd")).level == "Metadata"
    assert ev(BOB, attrs("GET", "/version")).level == "Metadata"
    assert ev(BOB, attrs("GET", "/version/x")).level == "None"
    assert ev(BOB, attrs("GET", "/openapi/v2")).level == "None"


def test_omit_stages_add_up_and_omit_managed_fields_is_the_rules_when_set() -> None:
    p = policy("""
  - level: Metadata
    users: [alice]
    omitStages: [ResponseStarted]
    omitManagedFields: false
  - level: Request
""", "omitStages: [RequestReceived]\nomitManagedFields: true\n")
    a = p.evaluate(ALICE, attrs("GET", "/version"))
    assert a.omit_stages == {"RequestReceived", "ResponseStarted"} and a.omit_managed_fields is False
    b = p.evaluate(BOB, attrs("GET", "/version"))
    assert b.omit_stages == {"RequestReceived"} and b.omit_managed_fields is True


# -- events --------------------------------------------------------------------------------------


class Sink:
    """A backend keeping the events."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def process(self, ev: dict[str, Any]) -> None:
        self.events.append(json.loads(orjson.dumps(ev)))  # as they would be written

    def close(self) -> None:
        pass


def request(method: str, path: str, query: str = "", body: bytes = b"", user: UserInfo | None = ALICE,
            headers: list[tuple[bytes, bytes]] | None = None) -> Request:
    scope = {"type": "http", "method": method, "path": path, "query_string": query.encode(),
             "headers": [(b"user-agent", b"kubectl/v1.31.0"), (b"content-type", b"application/json"), *(headers or [])],
             "client": ("10.0.0.7", 51234), "minik8s.audit_id": "id-1"}
    req = Request(scope, None)  # type: ignore[arg-type]
    req.user = user
    req._body = body
    return req


def auditor(rules: str, extra: str = "") -> tuple[Auditor, Sink]:
    sink = Sink()
    return Auditor(policy(rules, extra), sink), sink  # type: ignore[arg-type]


def test_a_create_at_request_response_level() -> None:
    a, sink = auditor("  - level: RequestResponse\n")
    body = orjson.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm", "managedFields": []}})
    req = request("POST", "/api/v1/namespaces/ns/configmaps", "fieldManager=me", body)
    received = time.time()
    ra = a.begin(req, parse_info("POST", req.path, req.query), received)
    assert ra is not None
    answer = orjson.dumps({"apiVersion": "v1", "kind": "ConfigMap",
                           "metadata": {"name": "cm", "namespace": "ns", "uid": "u-9", "resourceVersion": "5"}})
    ra.complete(201, None, answer, {"authorization.k8s.io/reason": "", "authorization.k8s.io/decision": "allow"})
    received_ev, complete = sink.events
    assert received_ev["stage"] == "RequestReceived" and "responseStatus" not in received_ev
    assert received_ev["stageTimestamp"] == received_ev["requestReceivedTimestamp"] == micro_time(received)
    assert complete == {
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "RequestResponse", "auditID": "id-1",
        "stage": "ResponseComplete", "requestURI": "/api/v1/namespaces/ns/configmaps?fieldManager=me", "verb": "create",
        "user": {"username": "alice", "uid": "u-1", "groups": ["devs", "system:authenticated"]},
        "sourceIPs": ["10.0.0.7"], "userAgent": "kubectl/v1.31.0",
        "objectRef": {"resource": "configmaps", "namespace": "ns", "name": "cm", "apiVersion": "v1"},
        "responseStatus": {"metadata": {}, "code": 201},
        "requestObject": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm", "managedFields": []}},
        "responseObject": orjson.loads(answer),
        "requestReceivedTimestamp": micro_time(received), "stageTimestamp": complete["stageTimestamp"],
        "annotations": {"authorization.k8s.io/decision": "allow", "authorization.k8s.io/reason": ""},
    }
    assert list(complete["annotations"]) == sorted(complete["annotations"])  # as Go's map encoding


def test_metadata_level_logs_no_bodies_but_a_creates_name_and_omits_managed_fields_when_asked() -> None:
    a, sink = auditor("  - level: Metadata\n    verbs: [create]\n  - level: Request\n",
                      "omitStages: [RequestReceived]\nomitManagedFields: true\n")
    body = orjson.dumps({"kind": "Pod", "metadata": {"name": "p", "managedFields": [{"manager": "x"}]}})
    req = request("POST", "/api/v1/namespaces/ns/pods", body=body)
    a.begin(req, parse_info("POST", req.path, {}), time.time()).complete(201, None, b'{"kind":"Pod"}', None)
    (ev,) = sink.events
    assert ev["objectRef"]["name"] == "p" and "requestObject" not in ev and "responseObject" not in ev
    req = request("PUT", "/api/v1/namespaces/ns/pods/p", body=body)
    a.begin(req, parse_info("PUT", req.path, {}), time.time()).complete(200, None, b'{"kind":"Pod"}', None)
    assert sink.events[1]["level"] == "Request" and sink.events[1]["requestObject"] == {"kind": "Pod", "metadata": {"name": "p"}}
    assert "responseObject" not in sink.events[1]


def test_a_forbidden_request_carries_the_status_and_a_non_resource_one_the_http_verb() -> None:
    a, sink = auditor("  - level: Metadata\n")
    req = request("GET", "/api/v1/namespaces/ns/secrets/s", user=BOB)
    ra = a.begin(req, parse_info("GET", req.path, {}), time.time())
    status = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "reason": "Forbidden",
              "message": 'secrets "s" is forbidden: User "bob" cannot get resource', "code": 403,
              "details": {"name": "s", "kind": "secrets"}}
    ra.complete(403, status, orjson.dumps(status), {"authorization.k8s.io/decision": "forbid"})
    ev = sink.events[-1]
    assert ev["responseStatus"] == {"metadata": {}, "status": "Failure", "message": status["message"],
                                    "reason": "Forbidden", "details": {"name": "s", "kind": "secrets"}, "code": 403}
    assert ev["annotations"] == {"authorization.k8s.io/decision": "forbid"}
    req = request("POST", "/logs/x", user=BOB)
    a.begin(req, parse_info("POST", req.path, {}), time.time()).complete(404, None, None, None)
    ev = sink.events[-1]
    assert ev["verb"] == "post" and "objectRef" not in ev and ev["responseStatus"] == {"metadata": {}, "code": 404}


def test_a_watch_has_its_response_started_stage_and_impersonation_names_both_users() -> None:
    a, sink = auditor("  - level: Request\n", "omitStages: [RequestReceived]\n")
    req = request("GET", "/api/v1/namespaces/ns/pods", "watch=1", user=BOB,
                  headers=[(b"x-forwarded-for", b"1.2.3.4, 5.6.7.8")])
    req.scope["minik8s.impersonator"] = ALICE
    ra = a.begin(req, parse_info("GET", req.path, req.query), time.time())
    ra.started(200)
    ra.complete(200, None, b"", None)
    started, complete = sink.events
    assert [started["stage"], complete["stage"]] == ["ResponseStarted", "ResponseComplete"]
    assert started["verb"] == "watch" and started["responseStatus"] == {"metadata": {}, "code": 200}
    assert started["user"]["username"] == "alice" and started["impersonatedUser"]["username"] == "bob"
    assert started["sourceIPs"] == ["1.2.3.4", "5.6.7.8", "10.0.0.7"]


def test_level_none_and_no_policy_audit_nothing_and_a_panic_is_its_own_stage() -> None:
    a, sink = auditor("  - level: None\n    users: [alice]\n  - level: Metadata\n")
    req = request("GET", "/api/v1/pods")
    assert a.begin(req, parse_info("GET", req.path, {}), time.time()) is None
    assert Auditor(None, None).begin(req, None, time.time()) is None
    req = request("GET", "/api/v1/pods", user=BOB)
    a.begin(req, parse_info("GET", req.path, {}), time.time()).complete(500, None, None, None, panic="KeyError: 'x'")
    assert [e["stage"] for e in sink.events] == ["RequestReceived", "Panic"]
    assert sink.events[-1]["responseStatus"] == {"metadata": {}, "status": "Failure", "reason": "InternalError",
                                                 "message": "APIServer panic'd: KeyError: 'x'", "code": 500}


def test_response_status_and_micro_time() -> None:
    assert response_status(200) == {"metadata": {}, "code": 200}
    assert response_status(200, {"kind": "Status", "status": "Success", "code": 200}) == {
        "metadata": {}, "status": "Success", "code": 200}
    assert micro_time(0.5) == "1970-01-01T00:00:00.500000Z"


# -- the log backend -----------------------------------------------------------------------------


def test_the_log_rotates_by_size_keeps_backups_and_gzips_them(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    backend = LogBackend(str(path), max_size=1, max_backups=2, compress=True, mode="batch")
    big = {"kind": "Event", "pad": "x" * 400_000}
    for i in range(7):  # ~2.8 MB: rotated a few times at 1 MB
        backend.process({**big, "n": i})
        backend.flush()
    backend.close()
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    from tests.conftest import wait_for

    def rotated() -> list[Path]:  # compressed and pruned in the background
        found = sorted(p.name for p in tmp_path.iterdir() if p.name != "audit.log")
        return found if len(found) == 2 and all(n.endswith(".log.gz") for n in found) else []

    names = wait_for(rotated, what="two gzipped backups")
    assert all(n.startswith("audit-") for n in names)
    last = [json.loads(line)["n"] for line in path.read_text().splitlines()]
    newest = json.loads(gzip.open(tmp_path / names[-1]).read().splitlines()[-1])
    assert last == [6] and newest["n"] == 5


def test_modes_and_stdout(capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    with pytest.raises(ValueError, match="blocking, blocking-strict, batch"):
        LogBackend("-", mode="async")
    backend = LogBackend("-")
    backend.process({"kind": "Event"})
    backend.close()
    assert capsysbinary.readouterr().out == b'{"kind":"Event"}\n'


def test_a_failing_audit_log_drops_events_instead_of_failing_requests(caplog: pytest.LogCaptureFixture) -> None:
    # as upstream's log backend: the error is logged (once a minute), the request goes on
    backend = LogBackend("/dev/full")
    for i in range(2000):  # well past the 64 KiB buffer
        backend.process({"kind": "Event", "auditID": f"id-{i}", "pad": "x" * 100})
    backend.flush()
    assert sum("events are dropped" in r.getMessage() for r in caplog.records) == 1


def test_a_passed_on_body_with_newlines_cannot_split_the_events_line() -> None:
    a, _ = auditor("  - level: RequestResponse\n")
    lines: list[bytes] = []
    a.backend = type("Lines", (), {"process": lambda self, ev: lines.append(orjson.dumps(ev))})()
    req = request("GET", "/api/v1/namespaces/ns/pods/p/log")
    ra = a.begin(req, parse_info("GET", req.path, req.query), time.time())
    assert ra is not None
    ra.complete(400, None, b'{"kind": "Status",\n "code": 400}\n', None)
    assert all(b"\n" not in line for line in lines)
    assert orjson.loads(lines[-1])["responseObject"] == {"kind": "Status", "code": 400}


def test_an_empty_audit_id_header_gets_a_new_id() -> None:
    from apiserver.audit import new_audit_id

    assert new_audit_id(request("GET", "/api", headers=[(b"audit-id", b"given")])) == "given"
    generated = new_audit_id(request("GET", "/api", headers=[(b"audit-id", b"  ")]))
    assert len(generated) == 36 and generated.count("-") == 4
