"""Auditing end to end: a real apiserver (and etcd) with an audit policy of ours writes
audit.k8s.io/v1 Events to --audit-log-path, as upstream's kube-apiserver 1.31 does: levels and
bodies, omitStages, a rule of level None, authorization decisions, watches' stages, the Audit-Id
header; and a policy that does not load stops the apiserver at start."""

from __future__ import annotations

import os
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from apiserver.auditpolicy import Attributes, load_policy_file
from minictl.components import apiserver_command, component_env
from tests.conftest import ControlPlane, audited, private_control_plane

POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitManagedFields: true
rules:
  - level: None
    users: ["silent"]
  - level: RequestResponse
    resources: [{group: "", resources: ["configmaps"]}]
    omitStages: ["RequestReceived"]
  - level: Metadata
"""


@pytest.fixture(scope="module")
def cp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    d = tmp_path_factory.mktemp("audit")
    (d / "policy.yaml").write_text(POLICY)
    (d / "tokens.csv").write_text('silent-token,silent,u-silent\nnobody-token,nobody,u-nobody\n')
    with private_control_plane("mk8s-audit-", controller_manager=False, extra_apiserver_args=[
            "--audit-policy-file", str(d / "policy.yaml"), "--token-auth-file", str(d / "tokens.csv")]) as plane:
        yield plane


def as_user(cp: ControlPlane, token: str) -> httpx.Client:
    return httpx.Client(base_url=cp.url, verify=ssl.create_default_context(cafile=str(cp.pki.ca_cert)), timeout=15,
                        headers={"Authorization": f"Bearer {token}"})


def events_of(cp: ControlPlane, audit_id: str) -> list[dict]:
    return [e for e in cp.audit_records() if e["auditID"] == audit_id]


def test_a_create_at_request_response_level_with_the_audit_id_header(cp: ControlPlane) -> None:
    name = f"cm-{os.urandom(3).hex()}"
    with cp.client() as c:
        r = c.post("/api/v1/namespaces/default/configmaps?fieldManager=tester",
                   json={"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": "v"}})
    assert r.status_code == 201, r.text
    audit_id = r.headers["Audit-Id"]
    (ev,) = events_of(cp, audit_id)  # RequestReceived left out by the rule's omitStages
    assert ev["stage"] == "ResponseComplete" and ev["level"] == "RequestResponse" and ev["verb"] == "create"
    assert ev["user"]["username"] == "kubernetes-admin" and "system:masters" in ev["user"]["groups"]
    assert ev["objectRef"] == {"resource": "configmaps", "namespace": "default", "name": name, "apiVersion": "v1"}
    assert ev["requestURI"] == "/api/v1/namespaces/default/configmaps?fieldManager=tester"
    assert ev["responseStatus"] == {"metadata": {}, "code": 201}
    assert ev["requestObject"]["data"] == {"k": "v"}
    created = r.json()
    assert created["metadata"]["managedFields"]  # answered with them, logged without (omitManagedFields)
    assert ev["responseObject"]["metadata"] == {k: v for k, v in created["metadata"].items() if k != "managedFields"}
    assert ev["annotations"] == {"authorization.k8s.io/decision": "allow", "authorization.k8s.io/reason": ""}
    assert ev["requestReceivedTimestamp"] <= ev["stageTimestamp"]
    assert ev["requestReceivedTimestamp"].endswith("Z") and len(ev["requestReceivedTimestamp"]) == 27  # microseconds
    # a client's own Audit-ID is kept (upstream trusts it) and answered
    with cp.client() as c:
        r = c.get(f"/api/v1/namespaces/default/configmaps/{name}", headers={"Audit-ID": "my-own-id"})
    assert r.headers["Audit-Id"] == "my-own-id"
    assert [e["verb"] for e in events_of(cp, "my-own-id")] == ["get"]


def test_a_forbidden_request(cp: ControlPlane) -> None:
    with as_user(cp, "nobody-token") as c:
        r = c.get("/api/v1/namespaces/kube-system/secrets")
    assert r.status_code == 403
    received, complete = events_of(cp, r.headers["Audit-Id"])  # Metadata level: every stage
    assert received["stage"] == "RequestReceived" and "responseStatus" not in received
    assert complete["stage"] == "ResponseComplete" and complete["level"] == "Metadata"
    assert complete["user"] == {"username": "nobody", "uid": "u-nobody", "groups": ["system:authenticated"]}
    assert complete["verb"] == "list" and "requestObject" not in complete and "responseObject" not in complete
    status = complete["responseStatus"]
    assert status["code"] == 403 and status["status"] == "Failure" and status["reason"] == "Forbidden"
    assert status["message"] == r.json()["message"]
    assert complete["annotations"]["authorization.k8s.io/decision"] == "forbid"


def test_a_watch_has_response_started_and_complete(cp: ControlPlane) -> None:
    with cp.client() as c, c.stream("GET", "/api/v1/namespaces/default/pods?watch=true&timeoutSeconds=1") as w:
        assert w.status_code == 200
        audit_id = w.headers["Audit-Id"]
        for _ in w.iter_lines():
            pass
    evs = events_of(cp, audit_id)
    assert [e["stage"] for e in evs] == ["RequestReceived", "ResponseStarted", "ResponseComplete"]
    assert {e["verb"] for e in evs} == {"watch"}
    assert evs[1]["responseStatus"] == evs[2]["responseStatus"] == {"metadata": {}, "code": 200}
    assert evs[1]["stageTimestamp"] < evs[2]["stageTimestamp"]  # the watch lasted its second


def test_a_rule_of_level_none_silences_a_user(cp: ControlPlane) -> None:
    marker = f"silence-{os.urandom(3).hex()}"
    with as_user(cp, "silent-token") as c:
        silent = c.get("/api/v1/namespaces/default/configmaps", headers={"User-Agent": marker})
    with as_user(cp, "nobody-token") as c:
        heard = c.get("/api/v1/namespaces/default/configmaps", headers={"User-Agent": marker})
    assert silent.status_code == heard.status_code == 403
    assert silent.headers["Audit-Id"]  # answered all the same
    records = cp.audit_records()  # complete up to now: both requests came before its marker
    assert {e["user"]["username"] for e in records if e.get("userAgent") == marker} == {"nobody"}
    assert audited(records, verb="list", resource="configmaps", namespace="default", code=403)


def test_a_policy_that_does_not_load_stops_the_apiserver(cp: ControlPlane, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n  - level: Loud\n")
    cmd = [*apiserver_command(cp.cfg), "--audit-policy-file", str(bad), "--secure-port", "1"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=component_env())
    assert r.returncode != 0
    assert '--audit-policy-file: rules[0].level: Unsupported value: "Loud"' in r.stderr
    assert f"from file {bad}" in r.stderr
    r = subprocess.run([*apiserver_command(cp.cfg), "--audit-log-format", "legacy", "--secure-port", "1"],
                       capture_output=True, text=True, timeout=60, env=component_env())
    assert r.returncode != 0 and "only json is supported" in r.stderr


def test_our_clusters_audit_with_the_default_policy(cp: ControlPlane) -> None:
    cmd = apiserver_command(cp.cfg)
    default = cp.cfg.dir / "audit-policy.yaml"
    assert cmd[cmd.index("--audit-policy-file") + 1] == str(default)
    assert cmd[cmd.index("--audit-log-path") + 1] == str(cp.cfg.log("audit"))
    cfg = load_policy_file(default).evaluate(None, Attributes("get", False, "/version"))
    assert cfg.level == "Metadata" and cfg.omit_stages == {"RequestReceived"}
