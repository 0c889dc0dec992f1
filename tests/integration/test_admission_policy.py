"""ValidatingAdmissionPolicy and ValidatingAdmissionPolicyBinding (admissionregistration.k8s.io/v1):
served and validated as upstream, and enforced by the ValidatingAdmissionPolicy admission plugin —
validations and their messages, reasons and actions (Deny, Warn, Audit), parameters, match
conditions, variables, namespaceObject, oldObject, failurePolicy, audit annotations; through the
REST API, kubectl and the official Python client.

Every policy here matches only its test's namespace (namespaceSelector on the namespace's
`kubernetes.io/metadata.name` label) and is removed afterwards: the control plane is shared."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import ControlPlane, audited, wait_for

AR = "/apis/admissionregistration.k8s.io/v1"
POLICIES, BINDINGS = f"{AR}/validatingadmissionpolicies", f"{AR}/validatingadmissionpolicybindings"


class Policies:
    """Creates policies and bindings for one test's namespace; deletes them at the end."""

    def __init__(self, api: httpx.Client, namespace: str) -> None:
        self.api, self.ns = api, namespace
        self.prefix = f"p-{os.urandom(3).hex()}"
        self.created: list[str] = []

    def policy(self, suffix: str, validations: list[dict] | None = None, *, resources: tuple[str, ...] = ("configmaps",),
               **spec: object) -> str:
        name = f"{self.prefix}-{suffix}"
        body = {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
                "metadata": {"name": name},
                "spec": {"matchConstraints": {
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": self.ns}},
                    "resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"],
                                       "resources": list(resources)}]},
                         **({"validations": validations} if validations is not None else {}), **spec}}
        r = self.api.post(POLICIES, json=body)
        assert r.status_code == 201, r.text
        self.created.append(f"{POLICIES}/{name}")
        return name

    def bind(self, policy: str, actions: tuple[str, ...] = ("Deny",), **spec: object) -> str:
        name = f"{policy}-binding"
        r = self.api.post(BINDINGS, json={"metadata": {"name": name}, "spec": {
            "policyName": policy, "validationActions": list(actions), **spec}})
        assert r.status_code == 201, r.text
        self.created.append(f"{BINDINGS}/{name}")
        return name

    def cleanup(self) -> None:
        for url in reversed(self.created):
            self.api.delete(url)


@pytest.fixture
def policies(api: httpx.Client, namespace: str) -> Iterator[Policies]:
    p = Policies(api, namespace)
    yield p
    p.cleanup()


def configmap(name: str, data: dict[str, str] | None = None, labels: dict[str, str] | None = None) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": labels or {}},
            "data": data or {}}


def denial(api: httpx.Client, url: str, body: dict, method: str = "POST") -> httpx.Response:
    """The answer once the policy is in force (the plugin reads policies from the watch cache)."""
    return wait_for(lambda: (r := api.request(method, url, json=body)).status_code >= 400 and r, 10, 0.05,
                    f"{url} to be refused")


def test_policy_and_binding_validation(api: httpx.Client) -> None:
    def causes(r: httpx.Response) -> list[tuple[str, str]]:
        assert r.status_code == 422, r.text
        return [(c["field"], c["message"]) for c in r.json()["details"]["causes"]]

    assert causes(api.post(POLICIES, json={"metadata": {"name": "bad-empty"}, "spec": {}})) == [
        ("spec.matchConstraints", "Required value"),
        ("spec.validations", "Required value: validations or auditAnnotations must contain at least one item"),
        ("spec.auditAnnotations", "Required value: validations or auditAnnotations must contain at least one item"),
    ]
    found = causes(api.post(POLICIES, json={"metadata": {"name": "bad-rules"}, "spec": {
        "failurePolicy": "Sometimes", "paramKind": {"apiVersion": "a/b/c", "kind": "Config Map"},
        "matchConstraints": {"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["PATCH"],
                                                "resources": ["pods"], "resourceNames": ["a", "a"]}]},
        "variables": [{"name": "not-an-identifier", "expression": "1"}],
        "validations": [{"expression": "object.metadata.name ==", "message": "two\nlines", "reason": "Teapot"}],
        "auditAnnotations": [{"key": "k", "valueExpression": ""}]}}))
    fields = [f for f, _ in found]
    assert fields == ["spec.failurePolicy", "spec.paramKind.apiVersion", "spec.paramKind.kind",
                      "spec.matchConstraints.resourceRules[0].operations[0]",
                      "spec.matchConstraints.resourceRules[0].resourceNames[1]", "spec.variables[0].name",
                      "spec.validations[0].expression", "spec.validations[0].message", "spec.validations[0].reason",
                      "spec.auditAnnotations[0].valueExpression"], found
    assert dict(found)["spec.validations[0].expression"].startswith("Invalid value: \"object.metadata.name ==\": "
                                                                   "compilation failed: ERROR: <input>")
    assert dict(found)["spec.variables[0].name"] == 'Invalid value: "not-an-identifier": name is not a valid CEL identifier'
    assert causes(api.post(BINDINGS, json={"metadata": {"name": "bad-binding"}, "spec": {
        "validationActions": ["Deny", "Warn", "Warn"], "paramRef": {"namespace": "x"}}})) == [
        ("spec.policyName", "Required value"),
        ("spec.paramRef", "Required value: one of name or selector must be specified"),
        ("spec.validationActions[2]", 'Duplicate value: "Warn"'),
        ("spec.validationActions", 'Invalid value: ["Deny","Warn","Warn"]: must not contain both Deny and Warn '
                                   "(repeating the same validation failure information in the API response and headers "
                                   "serves no purpose)"),
    ]


def test_defaults_columns_and_status_subresource(api: httpx.Client, policies: Policies) -> None:
    name = policies.policy("cols", [{"expression": "true"}], paramKind={"apiVersion": "v1", "kind": "ConfigMap"})
    binding = policies.bind(name, paramRef={"name": "limits", "namespace": "ns1"})
    stored = api.get(f"{POLICIES}/{name}").json()
    assert stored["spec"]["failurePolicy"] == "Fail" and stored["metadata"]["generation"] == 1
    mc = stored["spec"]["matchConstraints"]
    assert mc["matchPolicy"] == "Equivalent" and mc["objectSelector"] == {} and mc["resourceRules"][0]["scope"] == "*"
    assert api.get(f"{BINDINGS}/{binding}").json()["spec"]["paramRef"]["parameterNotFoundAction"] == "Deny"
    table = api.get(f"{POLICIES}/{name}", headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"}).json()
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Validations", "ParamKind", "Age"]
    assert table["rows"][0]["cells"][:3] == [name, 1, "v1/ConfigMap"]
    table = api.get(f"{BINDINGS}/{binding}", headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"}).json()
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "PolicyName", "ParamRef", "Age"]
    assert table["rows"][0]["cells"][:3] == [binding, name, "ns1/limits"]
    # status is its own subresource: a spec write keeps it, a status write changes nothing else
    stored["status"] = {"observedGeneration": 1, "conditions": []}
    r = api.put(f"{POLICIES}/{name}/status", json=stored)
    assert r.status_code == 200 and r.json()["status"]["observedGeneration"] == 1, r.text


def test_deny_with_messages_and_reasons(api: httpx.Client, namespace: str, policies: Policies) -> None:
    url = f"/api/v1/namespaces/{namespace}/configmaps"
    name = policies.policy("few-keys", [
        {"expression": "size(object.data) <= 2", "messageExpression": "'too many keys: ' + string(size(object.data))"},
        {"expression": "!object.metadata.name.startsWith('x')", "message": "no x names", "reason": "Forbidden"},
        {"expression": "object.metadata.name != 'plain'"},
    ])
    binding = policies.bind(name)
    r = denial(api, url, configmap("many", {"a": "1", "b": "2", "c": "3"}))
    assert r.status_code == 422 and r.json()["reason"] == "Invalid", r.text
    message = f"ValidatingAdmissionPolicy '{name}' with binding '{binding}' denied request: too many keys: 3"
    assert r.json()["message"] == f'configmaps "many" is forbidden: {message}'
    assert r.json()["details"] == {"name": "many", "kind": "configmaps", "causes": [{"message": message}]}
    r = api.post(url, json=configmap("xname"))
    assert r.status_code == 403 and r.json()["reason"] == "Forbidden" and r.json()["message"].endswith(
        "denied request: no x names"), r.text
    r = api.post(url, json=configmap("plain"))
    assert r.status_code == 422 and r.json()["message"].endswith(
        "denied request: failed expression: object.metadata.name != 'plain'"), r.text
    assert api.post(url, json=configmap("fine", {"a": "1"})).status_code == 201
    # updates are checked too, and the other namespaces are not
    r = api.put(f"{url}/fine", json=configmap("fine", {"a": "1", "b": "2", "c": "3"}))
    assert r.status_code == 422 and "too many keys: 3" in r.text
    assert api.post("/api/v1/namespaces/default/configmaps", json=configmap(f"x{namespace}")).status_code == 201
    api.delete(f"/api/v1/namespaces/default/configmaps/x{namespace}")


def test_warn_audit_and_audit_annotations(control_plane: ControlPlane, api: httpx.Client, namespace: str,
                                          policies: Policies) -> None:
    url = f"/api/v1/namespaces/{namespace}/configmaps"
    name = policies.policy("observe", [{"expression": "'owner' in object.metadata.labels", "message": "needs an owner"}],
                           auditAnnotations=[{"key": "size", "valueExpression": "string(size(object.data))"},
                                             {"key": "skipped", "valueExpression": "null"}])
    binding = policies.bind(name, ("Warn", "Audit"))
    r = wait_for(lambda: (r := api.post(url, json=configmap(f"w{os.urandom(2).hex()}", {"a": "1"})))
                 .headers.get("warning") and r, 10, 0.05, "the Warn action")
    assert r.status_code == 201
    assert r.headers["warning"] == (f"299 - \"Validation failed for ValidatingAdmissionPolicy '{name}' with binding "
                                    f"'{binding}': needs an owner\"")
    record = audited(control_plane.audit_records(), verb="create", code=201, resource="configmaps",
                     namespace=namespace)[-1]
    assert record["annotations"][f"{name}/size"] == "1" and f"{name}/skipped" not in record["annotations"]
    assert json.loads(record["annotations"]["validation.policy.admission.k8s.io/validation_failure"]) == [{
        "message": "needs an owner", "policy": name, "binding": binding, "expressionIndex": 0,
        "validationActions": ["Warn", "Audit"]}]
    r = api.post(url, json=configmap("owned", labels={"owner": "me"}))
    assert r.status_code == 201 and "warning" not in r.headers


def test_params_by_name_and_selector(api: httpx.Client, namespace: str, policies: Policies) -> None:
    url = f"/api/v1/namespaces/{namespace}/configmaps"
    name = policies.policy("limit", [{"expression": "size(object.data) <= int(params.data.max)",
                                      "messageExpression": "'at most ' + params.data.max + ' keys'"}],
                           paramKind={"apiVersion": "v1", "kind": "ConfigMap"}, resources=("secrets",))
    policies.bind(name, paramRef={"name": "limits", "namespace": namespace, "parameterNotFoundAction": "Deny"})
    secrets = f"/api/v1/namespaces/{namespace}/secrets"
    secret = {"metadata": {"name": "s"}, "stringData": {"a": "1", "b": "2"}}
    r = denial(api, secrets, secret)
    assert r.status_code == 422 and r.json()["message"].endswith(
        "denied request: failed to configure binding: no params found for policy binding with `Deny` "
        "parameterNotFoundAction"), r.text
    assert api.post(url, json=configmap("limits", {"max": "1"})).status_code == 201
    r = wait_for(lambda: (r := api.post(secrets, json=secret)).json().get("message", "").endswith("at most 1 keys")
                 and r, 10, 0.05, "the parameter to be used")
    assert r.status_code == 422
    api.put(f"{url}/limits", json=configmap("limits", {"max": "2"})).raise_for_status()
    wait_for(lambda: api.post(secrets, json=secret).status_code == 201, 10, 0.05, "the new limit")

    # a selector: every matching parameter object applies; none found and Allow: allowed
    name = policies.policy("sel", [{"expression": "!(params.data.banned in object.data)",
                                    "messageExpression": "params.data.banned + ' is banned'"}],
                           paramKind={"apiVersion": "v1", "kind": "ConfigMap"})
    policies.bind(name, paramRef={"selector": {"matchLabels": {"ban": "yes"}}, "parameterNotFoundAction": "Allow"})
    for word in ("x", "y"):
        api.post(url, json=configmap(f"ban-{word}", {"banned": word}, {"ban": "yes"})).raise_for_status()
    r = denial(api, url, configmap("has-y", {"y": "1"}))
    assert r.json()["message"].endswith("denied request: y is banned"), r.text
    assert api.post(url, json=configmap("has-z", {"z": "1"})).status_code == 201


def test_conditions_variables_namespace_object_and_old_object(api: httpx.Client, namespace: str,
                                                              policies: Policies) -> None:
    url = f"/api/v1/namespaces/{namespace}/configmaps"
    api.patch(f"/api/v1/namespaces/{namespace}", json={"metadata": {"labels": {"tier": "gold"}}},
              headers={"Content-Type": "application/merge-patch+json"}).raise_for_status()
    name = policies.policy("vars", [
        {"expression": "variables.env == namespaceObject.metadata.labels.tier",
         "messageExpression": "'env must be ' + namespaceObject.metadata.labels.tier"},
        {"expression": "request.operation != 'UPDATE' || oldObject.data.env == object.data.env",
         "message": "env is immutable"},
    ], variables=[{"name": "env", "expression": "object.data.env"}],
        matchConditions=[{"name": "not-exempt", "expression": "!('exempt' in object.metadata.labels)"}])
    policies.bind(name)
    r = denial(api, url, configmap("silver", {"env": "silver"}))
    assert r.json()["message"].endswith("denied request: env must be gold"), r.text
    assert api.post(url, json=configmap("exempt", {"env": "silver"}, {"exempt": "1"})).status_code == 201
    assert api.post(url, json=configmap("gold", {"env": "gold"})).status_code == 201
    r = api.patch(f"{url}/gold", json={"data": {"env": "platinum"}},
                  headers={"Content-Type": "application/merge-patch+json"})
    assert r.status_code == 422 and "env must be gold" in r.text
    # a variable that fails fails the validations that use it: failurePolicy Fail denies
    r = api.post(url, json=configmap("no-env", {"other": "1"}))
    assert r.status_code == 422 and "denied request: expression 'variables.env == namespaceObject" in r.text, r.text


def test_failure_policy_exclusions_and_binding_match_resources(api: httpx.Client, namespace: str,
                                                               policies: Policies) -> None:
    url = f"/api/v1/namespaces/{namespace}/configmaps"
    ignore = policies.policy("ignore", [{"expression": "object.data.missing == 'x'"}], failurePolicy="Ignore")
    policies.bind(ignore)
    strict = policies.policy("strict", [{"expression": "object.metadata.name.size() < 10"}],
                             matchConstraints={
                                 "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
                                 "resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"],
                                                    "resources": ["configmaps"]}],
                                 "excludeResourceRules": [{"apiGroups": [""], "apiVersions": ["v1"],
                                                           "operations": ["CREATE"], "resources": ["configmaps"],
                                                           "resourceNames": ["long-but-excluded"]}]})
    policies.bind(strict, matchResources={"objectSelector": {"matchExpressions": [
        {"key": "checked", "operator": "Exists"}]}})
    r = denial(api, url, configmap("a-long-name", labels={"checked": "1"}))
    assert r.json()["message"].endswith("failed expression: object.metadata.name.size() < 10"), r.text
    # the binding's objectSelector, the exclusion by name, and the Ignore policy's error all let these in
    assert api.post(url, json=configmap("another-long-name")).status_code == 201
    assert api.post(url, json=configmap("long-but-excluded", labels={"checked": "1"})).status_code == 201


def test_kubectl_and_python_client(control_plane: ControlPlane, namespace: str, policies: Policies) -> None:
    from kubernetes import client, config

    name = f"{policies.prefix}-kubectl"
    policies.created += [f"{POLICIES}/{name}", f"{BINDINGS}/{name}"]
    manifest = f"""
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata:
  name: {name}
spec:
  failurePolicy: Fail
  matchConstraints:
    namespaceSelector:
      matchLabels:
        kubernetes.io/metadata.name: {namespace}
    resourceRules:
    - apiGroups: [""]
      apiVersions: ["v1"]
      operations: ["CREATE"]
      resources: ["configmaps"]
  validations:
  - expression: "object.metadata.name.endsWith('-ok')"
    message: "names end in -ok"
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata:
  name: {name}
spec:
  policyName: {name}
  validationActions: [Deny]
"""
    out = control_plane.kubectl("apply", "-f", "-", input=manifest).stdout
    assert f"validatingadmissionpolicy.admissionregistration.k8s.io/{name} created" in out
    assert f"validatingadmissionpolicybinding.admissionregistration.k8s.io/{name} created" in out
    listed = control_plane.kubectl("get", "validatingadmissionpolicies", name).stdout.split("\n")
    assert listed[0].split() == ["NAME", "VALIDATIONS", "PARAMKIND", "AGE"] and listed[1].split()[:3] == [
        name, "1", "<unset>"]

    def refused() -> str:
        r = control_plane.kubectl("create", "configmap", "bad", "-n", namespace, check=False)
        return r.returncode != 0 and r.stderr
    stderr = wait_for(refused, 10, 0.1, "kubectl create to be refused")
    assert (f'configmaps "bad" is forbidden: ValidatingAdmissionPolicy \'{name}\' with binding \'{name}\' denied '
            "request: names end in -ok") in stderr
    control_plane.kubectl("create", "configmap", "good-ok", "-n", namespace)

    api = client.AdmissionregistrationV1Api(config.new_client_from_config(str(control_plane.kubeconfig)))
    policy = api.read_validating_admission_policy(name)
    assert policy.spec.validations[0].message == "names end in -ok"
    assert api.read_validating_admission_policy_binding(name).spec.policy_name == name
    assert name in [p.metadata.name for p in api.list_validating_admission_policy().items]


def test_delete_and_equivalent_versions(api: httpx.Client, namespace: str, policies: Policies) -> None:
    # DELETE: `object` is null, `oldObject` the stored one
    url = f"/api/v1/namespaces/{namespace}/configmaps"
    keep = policies.policy("keep", [{"expression": "request.operation != 'DELETE' || object == null && "
                                                   "!('keep' in oldObject.metadata.labels)",
                                     "message": "this one stays"}],
                           matchConstraints={
                               "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
                               "resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["DELETE"],
                                                  "resources": ["configmaps"]}]})
    policies.bind(keep)
    for name, labels in (("kept", {"keep": "1"}), ("gone", {})):
        api.post(url, json=configmap(name, labels=labels)).raise_for_status()
    r = denial(api, f"{url}/kept", {}, "DELETE")
    assert r.status_code == 422 and r.json()["message"].endswith("denied request: this one stays"), r.text
    assert api.delete(f"{url}/gone").status_code == 200

    # matchPolicy Equivalent: a rule for autoscaling/v2 also sees autoscaling/v1 requests, as v2 objects
    hpa = policies.policy("hpa", [{"expression": "object.apiVersion == 'autoscaling/v2' && "
                                                 "object.spec.maxReplicas <= 5",
                                   "messageExpression": "object.apiVersion + ' maxReplicas ' + "
                                                        "string(object.spec.maxReplicas)"}],
                          matchConstraints={
                              "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
                              "resourceRules": [{"apiGroups": ["autoscaling"], "apiVersions": ["v2"],
                                                 "operations": ["CREATE"], "resources": ["horizontalpodautoscalers"]}]})
    policies.bind(hpa)
    v1 = {"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "web"},
          "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                   "maxReplicas": 10, "targetCPUUtilizationPercentage": 50}}
    r = denial(api, f"/apis/autoscaling/v1/namespaces/{namespace}/horizontalpodautoscalers", v1)
    assert r.json()["message"].endswith("denied request: autoscaling/v2 maxReplicas 10"), r.text
    v1["spec"]["maxReplicas"] = 5
    assert api.post(f"/apis/autoscaling/v1/namespaces/{namespace}/horizontalpodautoscalers", json=v1).status_code == 201


def test_configuration_errors_and_odd_values(api: httpx.Client, namespace: str, policies: Policies) -> None:
    url = f"/api/v1/namespaces/{namespace}/configmaps"
    # a paramKind no stored resource has (unknown, or a review kind that is never stored): the policy's error
    for suffix, kind in (("nope", {"apiVersion": "v1", "kind": "Nope"}),
                         ("review", {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview"})):
        name = policies.policy(suffix, [{"expression": "true"}], paramKind=kind)
        policies.bind(name, paramRef={"name": "x", "parameterNotFoundAction": "Allow"})
        r = denial(api, url, configmap(f"cm-{suffix}"))
        group = kind["apiVersion"].rpartition("/")[0]
        assert r.status_code == 422 and r.json()["message"] == (
            f"configmaps \"cm-{suffix}\" is forbidden: ValidatingAdmissionPolicy '{name}' denied request: failed to "
            f"configure policy: failed to find resource referenced by paramKind: '{group}/v1, Kind={kind['kind']}'"), r.text
        policies.cleanup()
        policies.created.clear()
        wait_for(lambda n=f"cm-{suffix}": api.post(url, json=configmap(n)).status_code == 201, 10, 0.05,
                 "the policy to be gone")
    # namespaceObject is upstream's subset (no type meta, no managedFields); an unused variable that fails
    # is never evaluated; a warning made of an object's data keeps to one header line
    name = policies.policy("odd", [
        {"expression": "!has(namespaceObject.kind) && !has(namespaceObject.metadata.managedFields) && "
                       "namespaceObject.metadata.name == object.metadata.namespace", "message": "namespaceObject"},
        {"expression": "object.data.ok == 'yes'", "messageExpression": "'bad: ' + object.data.ok"},
    ], variables=[{"name": "broken", "expression": "object.data.missing.size() > 0"}])
    policies.bind(name, ("Warn",))
    r = wait_for(lambda: (r := api.post(url, json=configmap(f"o{os.urandom(2).hex()}", {"ok": "x\ry"})))
                 .headers.get("warning") and r, 10, 0.05, "the Warn action")
    assert r.status_code == 201
    assert r.headers["warning"] == (f"299 - \"Validation failed for ValidatingAdmissionPolicy '{name}' with binding "
                                    f"'{name}-binding': bad: x y\"")
