"""Admission webhooks without a server: rule matching, selectors, answers, patches, reinvocation,
the configurations' defaulting and validation, and matchConditions."""

from __future__ import annotations

import asyncio
import base64
import json
from types import SimpleNamespace
from typing import Any

import pytest

from apimachinery import errors
from apiserver.admission import CREATE, DELETE, UPDATE, Attributes, Chain, Plugin, matchconditions
from apiserver.admission.webhook import (
    Answer,
    CallError,
    MutatingAdmissionWebhook,
    ValidatingAdmissionWebhook,
    begin_request,
    rejection,
    verify_answer,
)
from apiserver.admission.webhookmatch import (
    Request,
    hooks_of,
    is_exempt,
    object_selector_matches,
    parse_selector,
    rule_matches,
)
from apiserver.authn import UserInfo
from apiserver.registry.admissionregistration import (
    MutatingWebhookConfigurationStrategy,
    ValidatingWebhookConfigurationStrategy,
)
from apiserver.resources import TABLE
from apiserver.webhookclient import http_status_message

USER = UserInfo("alice", "u-1", ("devs", "system:authenticated"))


def rule(**kw: Any) -> dict[str, Any]:
    r = {"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"], "scope": "*"}
    r.update(kw)
    return r


def req(op: str = CREATE, group: str = "", version: str = "v1", resource: str = "pods", sub: str = "",
        ns: str = "default") -> Request:
    return Request(op, group, version, resource, sub, ns)


# -- rules -------------------------------------------------------------------------------------


def test_rule_operations_groups_versions() -> None:
    assert rule_matches(rule(), req())
    assert not rule_matches(rule(), req(op=UPDATE))
    assert rule_matches(rule(operations=["*"]), req(op=DELETE))
    assert not rule_matches(rule(), req(group="apps"))
    assert rule_matches(rule(apiGroups=["*"], apiVersions=["*"], resources=["deployments"]),
                        req(group="apps", resource="deployments"))
    assert not rule_matches(rule(apiVersions=["v2"]), req())


def test_rule_resources_and_subresources() -> None:
    assert not rule_matches(rule(), req(sub="status"))  # "pods" is the main resource only
    assert rule_matches(rule(resources=["pods/status"]), req(sub="status"))
    assert not rule_matches(rule(resources=["pods/status"]), req())
    assert rule_matches(rule(resources=["pods/*"]), req(sub="binding"))
    assert rule_matches(rule(resources=["pods/*"]), req())  # as upstream's matcher: "*" also matches no subresource
    assert rule_matches(rule(resources=["*/status"]), req(resource="services", sub="status"))
    assert rule_matches(rule(resources=["*"]), req(resource="configmaps"))
    assert not rule_matches(rule(resources=["*"]), req(sub="status"))
    assert rule_matches(rule(resources=["*/*"]), req(sub="status"))
    assert rule_matches(rule(resources=["*/*"]), req(resource="secrets"))


def test_rule_scope() -> None:
    assert rule_matches(rule(scope="Namespaced"), req())
    assert not rule_matches(rule(scope="Namespaced"), req(resource="nodes", ns=""))
    assert rule_matches(rule(scope="Cluster", resources=["nodes"]), req(resource="nodes", ns=""))
    assert not rule_matches(rule(scope="Cluster"), req())
    # a namespace object counts as cluster-scoped though its request names a namespace
    assert rule_matches(rule(scope="Cluster", resources=["namespaces"]), req(op=CREATE, resource="namespaces", ns="x"))
    assert not rule_matches(rule(scope="Namespaced", resources=["namespaces"]), req(resource="namespaces", ns="x"))
    assert not rule_matches(rule(scope="Elsewhere"), req())


def test_exempt_resources() -> None:
    assert is_exempt("admissionregistration.k8s.io", "validatingwebhookconfigurations")
    assert is_exempt("admissionregistration.k8s.io", "mutatingwebhookconfigurations")
    assert not is_exempt("", "configmaps")


def test_object_selector_new_or_old() -> None:
    sel = parse_selector({"matchLabels": {"app": "web"}})
    assert not isinstance(sel, str)
    web, other = {"metadata": {"labels": {"app": "web"}}}, {"metadata": {"labels": {"app": "db"}}}
    assert object_selector_matches(sel, web, None)
    assert object_selector_matches(sel, other, web)  # e.g. an update that removes the label
    assert not object_selector_matches(sel, other, None)
    assert not object_selector_matches(sel, None, None)
    assert object_selector_matches(parse_selector({}), None, None)  # empty selects everything
    expr = parse_selector({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["x"]}]})
    assert not isinstance(expr, str) and object_selector_matches(expr, {"metadata": {}}, None)
    assert isinstance(parse_selector({"matchExpressions": [{"key": "a", "operator": "Near"}]}), str)


def test_hooks_are_ordered_by_configuration_name_then_position() -> None:
    cfgs = [{"metadata": {"name": "b"}, "webhooks": [{"name": "b1.x.y"}, {"name": "b2.x.y"}]},
            {"metadata": {"name": "a"}, "webhooks": [{"name": "a1.x.y"}]}]
    hooks = hooks_of(cfgs, mutating=True)
    assert [h.name for h in hooks] == ["a1.x.y", "b1.x.y", "b2.x.y"]
    assert [h.uid for h in hooks] == ["a/a1.x.y/0", "b/b1.x.y/0", "b/b2.x.y/1"]


# -- answers -----------------------------------------------------------------------------------


def review(uid: str = "u1", **response: Any) -> dict[str, Any]:
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": {"uid": uid, **response}}


def test_verify_answer_v1() -> None:
    a = verify_answer(review(allowed=True, warnings=["w"], auditAnnotations={"k": "v"}), "v1", "u1", False)
    assert a.allowed and a.warnings == ["w"] and a.audit_annotations == {"k": "v"}
    patch = base64.b64encode(b'[{"op":"add","path":"/a","value":1}]').decode()
    a = verify_answer(review(allowed=True, patch=patch, patchType="JSONPatch"), "v1", "u1", True)
    assert a.patch.startswith(b"[") and a.patch_type == "JSONPatch"
    cases = [
        (review(uid="other", allowed=True), True, 'expected response.uid="u1", got "other"'),
        ({**review(allowed=True), "apiVersion": "admission.k8s.io/v1beta1"}, True,
         "expected webhook response of admission.k8s.io/v1, Kind=AdmissionReview, got admission.k8s.io/v1beta1, "
         "Kind=AdmissionReview"),
        (review(allowed=True, patch=patch), True, "webhook returned response.patch but not response.patchType"),
        (review(allowed=True, patchType="JSONPatch"), True, "webhook returned response.patchType but not response.patch"),
        (review(allowed=True, patch=patch, patchType="JSONPatch"), False, "validating webhook may not return response.patch"),
        ({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}, False, "webhook response was absent"),
    ]
    for body, mutating, message in cases:
        with pytest.raises(ValueError) as e:
            verify_answer(body, "v1", "u1", mutating)
        assert str(e.value) == message


def test_verify_answer_v1beta1_is_lenient() -> None:
    patch = base64.b64encode(b"[]").decode()
    body = {"response": {"uid": "whatever", "allowed": True, "patch": patch}}
    a = verify_answer(body, "v1beta1", "u1", True)
    assert a.allowed and a.patch_type == "JSONPatch"


def test_rejection_status() -> None:
    e = rejection("deny.example.com", {"code": 403, "reason": "Forbidden", "message": "no way",
                                       "details": {"causes": [{"field": "data"}]}})
    assert (e.code, e.reason, e.message) == (403, "Forbidden", 'admission webhook "deny.example.com" denied the request: no way')
    assert e.details == {"causes": [{"field": "data"}]}
    e = rejection("x.example.com", {"code": 200, "reason": "NotAllowed"})
    assert (e.code, e.message) == (400, 'admission webhook "x.example.com" denied the request: NotAllowed')
    e = rejection("x.example.com", None)
    assert (e.code, e.message) == (400, 'admission webhook "x.example.com" denied the request without explanation')


def test_http_status_messages() -> None:
    assert http_status_message(404, b"") == "the server could not find the requested resource"
    assert http_status_message(500, b"boom") == 'an error on the server ("boom") has prevented the request from succeeding'


# -- dispatch, with the HTTP call replaced -------------------------------------------------------


def config(name: str, *hooks: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": name}, "webhooks": list(hooks)}


def hook(name: str, **kw: Any) -> dict[str, Any]:
    h = {"name": name, "rules": [rule(resources=["configmaps"], operations=["*"])], "namespaceSelector": {},
         "objectSelector": {}, "sideEffects": "None", "admissionReviewVersions": ["v1"], "failurePolicy": "Fail",
         "matchPolicy": "Equivalent", "timeoutSeconds": 10, "clientConfig": {"url": "https://h.example.com"}}
    h.update(kw)
    return h


def attrs(op: str = CREATE, obj: dict | None = None, old: dict | None = None, dry_run: bool = False,
          group: str = "", version: str = "v1", plural: str = "configmaps", sub: str = "") -> Attributes:
    res = TABLE.lookup(group, version, plural)
    assert res is not None
    return Attributes(op, res, sub, "default", "c", obj, old, USER, dry_run, {})


class FakeServer(SimpleNamespace):
    table = TABLE


def plugin(cls: type, answers: dict[str, Any], calls: list[tuple[str, Any]]) -> Any:
    """The plugin with `call` answering from `answers` (a function of the sent object, or an exception)."""

    class Fake(cls):  # type: ignore[valid-type,misc]
        async def call(self, inv, a, obj, old):  # type: ignore[no-untyped-def]
            calls.append((inv.hook.name, obj))
            answer = answers[inv.hook.name]
            if isinstance(answer, BaseException):
                raise answer
            return answer(obj) if callable(answer) else answer

    return Fake(FakeServer())


def patch_answer(*ops: dict[str, Any]) -> Answer:
    return Answer(True, json.dumps(list(ops)).encode(), "JSONPatch")


def run_mutating(hooks_: list[dict], answers: dict[str, Any], a: Attributes,
                 in_tree: list[Plugin] | None = None) -> list[tuple[str, Any]]:
    """The webhook plugin in an admission chain after `in_tree` plugins (a DELETE reaches mutating
    webhooks in the validation phase here)."""
    calls: list[tuple[str, Any]] = []
    p = plugin(MutatingAdmissionWebhook, answers, calls)
    hooks = hooks_of([config("cfg", *hooks_)], True)
    p.configurations = SimpleNamespace(get=lambda: asyncio.sleep(0, hooks))
    chain = Chain([*(in_tree or []), p])
    asyncio.run(chain.validate(a) if a.operation == DELETE else chain.admit(a))
    return calls


def test_mutating_patches_apply_in_order_and_in_place() -> None:
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}}
    held = obj  # the handler keeps this very dict
    calls = run_mutating(
        [hook("one.x.y"), hook("two.x.y")],
        {"one.x.y": patch_answer({"op": "add", "path": "/data/b", "value": "2"}),
         "two.x.y": lambda o: patch_answer({"op": "add", "path": "/data/c", "value": str(len(o["data"]))})},
        attrs(obj=obj))
    assert held["data"] == {"a": "1", "b": "2", "c": "2"}
    assert [c[0] for c in calls] == ["one.x.y", "two.x.y"]


def test_reinvocation_only_for_if_needed_hooks_before_a_change() -> None:
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {}}
    calls = run_mutating(
        [hook("a.x.y", reinvocationPolicy="IfNeeded"), hook("b.x.y", reinvocationPolicy="Never"),
         hook("c.x.y")],
        {"a.x.y": Answer(True), "b.x.y": Answer(True),
         "c.x.y": lambda o: patch_answer({"op": "add", "path": "/data/c", "value": "1"}) if not o["data"] else Answer(True)},
        attrs(obj=obj))
    assert [c[0] for c in calls] == ["a.x.y", "b.x.y", "c.x.y", "a.x.y"]
    # nothing changed: no second round
    calls = run_mutating([hook("a.x.y", reinvocationPolicy="IfNeeded"), hook("b.x.y")],
                         {"a.x.y": Answer(True), "b.x.y": Answer(True)}, attrs(obj={"metadata": {"name": "c"}}))
    assert [c[0] for c in calls] == ["a.x.y", "b.x.y"]


def test_a_change_by_a_webhook_reinvokes_the_in_tree_plugins_once() -> None:
    """Upstream's reinvoker: after a webhook changed the object every mutating plugin runs once more
    (e.g. LimitRanger defaults a container a webhook injected); without a change, once."""
    class Recorder(Plugin):
        name = "Recorder"

        def __init__(self) -> None:
            self.seen: list[dict[str, Any]] = []

        async def admit(self, a: Attributes) -> None:
            self.seen.append(json.loads(json.dumps(a.obj["data"])))

    inject = {"c.x.y": lambda o: patch_answer({"op": "add", "path": "/data/c", "value": "1"})
              if "c" not in o["data"] else Answer(True)}
    rec = Recorder()
    calls = run_mutating([hook("c.x.y")], inject, attrs(obj={"metadata": {"name": "c"}, "data": {}}), [rec])
    assert rec.seen == [{}, {"c": "1"}]  # the second run sees the webhook's change
    assert [c[0] for c in calls] == ["c.x.y"]  # reinvocationPolicy Never: not called again
    rec = Recorder()
    run_mutating([hook("c.x.y")], {"c.x.y": Answer(True)}, attrs(obj={"metadata": {"name": "c"}, "data": {}}), [rec])
    assert rec.seen == [{}]


def test_a_change_by_an_in_tree_plugin_on_reinvocation_reinvokes_if_needed_webhooks() -> None:
    """Upstream's IsOutputChangedSinceLastWebhookInvocation: an IfNeeded webhook that ran after the
    last webhook change runs again when an in-tree plugin changed the object on its second run."""
    class Marker(Plugin):
        name = "Marker"

        async def admit(self, a: Attributes) -> None:
            if "c" in a.obj["data"]:
                a.obj["data"]["marked"] = "yes"

    inject = {"c.x.y": lambda o: patch_answer({"op": "add", "path": "/data/c", "value": "1"})
              if "c" not in o["data"] else Answer(True)}
    obj = {"metadata": {"name": "c"}, "data": {}}
    calls = run_mutating([hook("c.x.y", reinvocationPolicy="IfNeeded")], inject, attrs(obj=obj), [Marker()])
    assert [c[0] for c in calls] == ["c.x.y", "c.x.y"]
    assert obj["data"] == {"c": "1", "marked": "yes"}
    # the in-tree plugin leaves the object alone: no second call
    calls = run_mutating([hook("c.x.y", reinvocationPolicy="IfNeeded")], inject,
                         attrs(obj={"metadata": {"name": "c"}, "data": {}}))
    assert [c[0] for c in calls] == ["c.x.y"]


def test_mutating_failures() -> None:
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}
    # failurePolicy Ignore: skipped, and the audit annotation says so
    notes = begin_request()
    run_mutating([hook("dead.x.y", failurePolicy="Ignore")], {"dead.x.y": CallError("failed to call webhook: x")},
                 attrs(obj=obj))
    assert notes.annotations["failed-open.mutation.webhook.admission.k8s.io/round_0_index_0"] == "dead.x.y"
    assert json.loads(notes.annotations["mutation.webhook.admission.k8s.io/round_0_index_0"]) == {
        "configuration": "cfg", "webhook": "dead.x.y", "mutated": False}
    with pytest.raises(errors.StatusError) as e:
        run_mutating([hook("dead.x.y")], {"dead.x.y": CallError("failed to call webhook: x")}, attrs(obj=obj))
    assert e.value.code == 500 and e.value.message == ('Internal error occurred: failed calling webhook "dead.x.y": '
                                                       "failed to call webhook: x")
    # a patch that does not apply is the server's error, whatever the failurePolicy
    with pytest.raises(errors.StatusError) as e:
        run_mutating([hook("bad.x.y", failurePolicy="Ignore")],
                     {"bad.x.y": patch_answer({"op": "replace", "path": "/data/missing/x", "value": 1})}, attrs(obj=obj))
    assert e.value.code == 500
    # a DELETE has nothing to patch
    with pytest.raises(errors.StatusError) as e:
        run_mutating([hook("del.x.y")], {"del.x.y": patch_answer({"op": "add", "path": "/x", "value": 1})},
                     attrs(op=DELETE, old=obj))
    assert "attempted to modify the object, which is not supported for this operation" in e.value.message
    # a denial
    with pytest.raises(errors.StatusError) as e:
        run_mutating([hook("no.x.y")], {"no.x.y": Answer(False, result={"message": "nope", "code": 422})},
                     attrs(obj=obj))
    assert (e.value.code, e.value.message) == (422, 'admission webhook "no.x.y" denied the request: nope')


def test_dry_run_needs_side_effect_free_webhooks() -> None:
    p = MutatingAdmissionWebhook(FakeServer())
    a = attrs(obj={"metadata": {"name": "c"}}, dry_run=True)
    h = hooks_of([config("cfg", hook("some.x.y", sideEffects="Some"))], True)[0]
    inv = asyncio.run(p.should_call(h, a))
    assert inv is not None
    with pytest.raises(errors.StatusError) as e:
        asyncio.run(p.call(inv, a, a.obj, None))
    assert (e.value.code, e.value.message) == (400, 'admission webhook "some.x.y" does not support dry run')


def test_validating_runs_all_and_returns_the_first_denial() -> None:
    calls: list[tuple[str, Any]] = []
    p = plugin(ValidatingAdmissionWebhook, {
        "ok.x.y": Answer(True), "no1.x.y": Answer(False, result={"message": "first", "code": 403}),
        "no2.x.y": Answer(False, result={"message": "second", "code": 403}),
    }, calls)
    hooks = hooks_of([config("cfg", hook("ok.x.y"), hook("no1.x.y"), hook("no2.x.y"))], False)
    p.configurations = SimpleNamespace(get=lambda: asyncio.sleep(0, hooks))
    with pytest.raises(errors.StatusError) as e:
        asyncio.run(p.validate(attrs(obj={"metadata": {"name": "c"}})))
    assert e.value.message == 'admission webhook "no1.x.y" denied the request: first'
    assert sorted(c[0] for c in calls) == ["no1.x.y", "no2.x.y", "ok.x.y"]


def test_equivalent_match_converts_to_the_rule_version() -> None:
    p = ValidatingAdmissionWebhook(FakeServer())
    h = hooks_of([config("cfg", hook("hpa.x.y", rules=[rule(apiGroups=["autoscaling"], apiVersions=["v1"],
                                                           resources=["horizontalpodautoscalers"])]))], False)[0]
    stored = {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "c"},
              "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "d", "apiVersion": "apps/v1"},
                       "maxReplicas": 2}}
    a = attrs(obj=stored, group="autoscaling", version="v2", plural="horizontalpodautoscalers")
    inv = asyncio.run(p.should_call(h, a))
    assert inv is not None and inv.res.version == "v1" and inv.kind == ("autoscaling", "v1", "HorizontalPodAutoscaler")
    assert asyncio.run(p.versioned(inv, a, a.obj))["apiVersion"] == "autoscaling/v1"
    exact = hooks_of([config("cfg", hook("hpa.x.y", matchPolicy="Exact", rules=h.spec["rules"]))], False)[0]
    assert asyncio.run(p.should_call(exact, a)) is None


def test_review_request_contents() -> None:
    p = ValidatingAdmissionWebhook(FakeServer())
    old = {"metadata": {"name": "c"}, "data": {"a": "1"}}
    a = Attributes(UPDATE, TABLE.lookup("", "v1", "configmaps"), "", "default", "c", {"metadata": {"name": "c"}},
                   old, USER, True, {"fieldManager": "me", "dryRun": "All"})
    h = hooks_of([config("cfg", hook("r.x.y"))], False)[0]
    inv = asyncio.run(p.should_call(h, a))
    req_ = p.review_request(inv, a, "uid-1", a.obj, a.old)
    assert req_["operation"] == "UPDATE" and req_["dryRun"] is True and req_["oldObject"] == old
    assert req_["userInfo"] == {"username": "alice", "uid": "u-1", "groups": ["devs", "system:authenticated"]}
    assert req_["options"] == {"kind": "UpdateOptions", "apiVersion": "meta.k8s.io/v1", "dryRun": ["All"],
                               "fieldManager": "me"}
    assert "subResource" not in req_ and req_["name"] == "c" and req_["namespace"] == "default"


# -- matchConditions ----------------------------------------------------------------------------


def test_match_conditions() -> None:
    obj = {"metadata": {"name": "x", "labels": {"a": "b"}}}
    request = {"operation": "CREATE", "userInfo": {"username": "alice"}}
    ok = [{"name": "a", "expression": "object.metadata.name == 'x'"},
          {"name": "b", "expression": "request.userInfo.username == 'alice'"}]
    assert matchconditions.evaluate(ok, obj, None, request, "Fail").matches
    false = [{"name": "err", "expression": "object.nope.deeper == 1"}, {"name": "no", "expression": "false"}]
    r = matchconditions.evaluate(false, obj, None, request, "Fail")
    assert not r.matches and not r.error and r.failed_condition == "no"  # false wins over errors
    errs = [{"name": "err", "expression": "object.nope.deeper == 1"}]
    assert matchconditions.evaluate(errs, obj, None, request, "Fail").error
    r = matchconditions.evaluate(errs, obj, None, request, "Ignore")
    assert not r.matches and not r.error
    assert matchconditions.compile_error("object.(").startswith("compilation failed")
    assert matchconditions.compile_error("oldObject == null") == ""


def test_match_conditions_stop_when_their_step_budget_runs_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(matchconditions, "MATCH_CONDITION_STEPS", 2_000)
    obj = {"items": list(range(100))}
    heavy = [{"name": "loop", "expression": "object.items.all(x, object.items.all(y, x + y >= 0))"},
             {"name": "never", "expression": "false"}]
    r = matchconditions.evaluate(heavy, obj, None, {}, "Fail")
    assert not r.matches and r.error == ("validation failed due to running out of cost budget, no further "
                                         "validation rules will be run")
    assert matchconditions.evaluate(heavy, obj, None, {}, "Ignore") == matchconditions.MatchResult(False)
    # Kubernetes' string library is there too (one engine with the CRD rules)
    assert matchconditions.evaluate([{"name": "s", "expression": "'a,b'.split(',').size() == 2"}],
                                    obj, None, {}, "Fail").matches


# -- the configurations ------------------------------------------------------------------------


def valid_config() -> dict[str, Any]:
    return {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": "cfg"},
            "webhooks": [{"name": "a.example.com", "clientConfig": {"url": "https://example.com/validate"},
                          "rules": [rule(resources=["pods", "pods/status"])], "sideEffects": "None",
                          "admissionReviewVersions": ["v1"]}]}


def causes_of(obj: dict[str, Any], mutating: bool = False) -> dict[str, str]:
    st = MutatingWebhookConfigurationStrategy() if mutating else ValidatingWebhookConfigurationStrategy()
    st.default(obj)
    return {c["field"]: c["message"] for c in st.validate(obj, False)}


def test_defaults() -> None:
    obj = valid_config()
    obj["webhooks"][0]["clientConfig"] = {"service": {"namespace": "n", "name": "s"}}
    obj["webhooks"][0]["rules"][0].pop("scope")
    MutatingWebhookConfigurationStrategy().default(obj)
    h = obj["webhooks"][0]
    assert (h["failurePolicy"], h["matchPolicy"], h["timeoutSeconds"], h["reinvocationPolicy"]) == (
        "Fail", "Equivalent", 10, "Never")
    assert h["namespaceSelector"] == {} and h["objectSelector"] == {}
    assert h["rules"][0]["scope"] == "*" and h["clientConfig"]["service"]["port"] == 443
    v = valid_config()
    ValidatingWebhookConfigurationStrategy().default(v)
    assert "reinvocationPolicy" not in v["webhooks"][0]


def test_valid_configuration_passes() -> None:
    assert causes_of(valid_config()) == {}
    obj = valid_config()
    obj["webhooks"][0]["rules"] = [rule(resources=["*/*"], operations=["*"], apiGroups=["*"], apiVersions=["*"])]
    obj["webhooks"][0]["matchConditions"] = [{"name": "c", "expression": "object != null"}]
    assert causes_of(obj) == {}


@pytest.mark.parametrize(("change", "field", "message"), [
    ({"name": "two.parts"}, "webhooks[0].name",
     'Invalid value: "two.parts": should be a domain with at least three segments separated by dots'),
    ({"name": ""}, "webhooks[0].name", "Required value"),
    ({"clientConfig": {}}, "webhooks[0].clientConfig", "Required value: exactly one of url or service is required"),
    ({"clientConfig": {"url": "http://example.com"}}, "webhooks[0].clientConfig.url",
     'Invalid value: "http": \'https\' is the only allowed URL scheme; desired format: https://host[/path]'),
    ({"clientConfig": {"url": "https://example.com?a=b"}}, "webhooks[0].clientConfig.url",
     'Invalid value: "a=b": query parameters are not permitted in the URL'),
    ({"clientConfig": {"url": "https://u:p@example.com"}}, "webhooks[0].clientConfig.url",
     'Invalid value: "u:p": user information is not permitted in the URL'),
    ({"clientConfig": {"service": {"namespace": "n", "name": "s", "path": "/a//b"}}},
     "webhooks[0].clientConfig.service.path", 'Invalid value: "/a//b": segment[1] may not be empty'),
    ({"clientConfig": {"service": {"name": "s", "port": 70000}}}, "webhooks[0].clientConfig.service.namespace",
     "Required value: service namespace is required"),
    ({"timeoutSeconds": 0}, "webhooks[0].timeoutSeconds",
     "Invalid value: 0: the timeout value must be between 1 and 30 seconds"),
    ({"sideEffects": None}, "webhooks[0].sideEffects", "Required value: must specify one of None, NoneOnDryRun"),
    ({"sideEffects": "Unknown"}, "webhooks[0].sideEffects",
     'Unsupported value: "Unknown": supported values: "None", "NoneOnDryRun"'),
    ({"admissionReviewVersions": []}, "webhooks[0].admissionReviewVersions",
     "Required value: must specify one of v1, v1beta1"),
    ({"admissionReviewVersions": ["v2"]}, "webhooks[0].admissionReviewVersions",
     'Invalid value: ["v2"]: must include at least one of v1, v1beta1'),
    ({"matchPolicy": "Close"}, "webhooks[0].matchPolicy",
     'Unsupported value: "Close": supported values: "Equivalent", "Exact"'),
    ({"failurePolicy": "Maybe"}, "webhooks[0].failurePolicy",
     'Unsupported value: "Maybe": supported values: "Fail", "Ignore"'),
    ({"rules": [rule(operations=["CREATE", "*"])]}, "webhooks[0].rules[0].operations",
     "Invalid value: [\"CREATE\",\"*\"]: if '*' is present, must not specify other operations"),
    ({"rules": [rule(resources=["*/*", "pods"])]}, "webhooks[0].rules[0].resources",
     "Invalid value: [\"*/*\",\"pods\"]: if '*/*' is present, must not specify other resources"),
    ({"rules": [rule(resources=["*", "pods"])]}, "webhooks[0].rules[0].resources",
     "Invalid value: [\"*\",\"pods\"]: if '*' is present, must not specify other resources without subresources"),
    ({"rules": [rule(resources=["pods/*", "pods/status"])]}, "webhooks[0].rules[0].resources[1]",
     "Invalid value: \"pods/status\": if 'pods/*' is present, must not specify pods/status"),
    ({"rules": [rule(apiVersions=[])]}, "webhooks[0].rules[0].apiVersions", "Required value"),
    ({"objectSelector": {"matchExpressions": [{"key": "a", "operator": "In"}]}},
     "webhooks[0].objectSelector.matchExpressions[0].values",
     "Required value: must be specified when `operator` is 'In' or 'NotIn'"),
    ({"matchConditions": [{"name": "c", "expression": "  "}]}, "webhooks[0].matchConditions[0].expression",
     "Required value"),
    ({"matchConditions": [{"name": "c", "expression": "true"}, {"name": "c", "expression": "true"}]},
     "webhooks[0].matchConditions[1].name", 'Duplicate value: "c"'),
])
def test_invalid(change: dict[str, Any], field: str, message: str) -> None:
    obj = valid_config()
    obj["webhooks"][0].update(change)
    if change.get("sideEffects", "x") is None:
        del obj["webhooks"][0]["sideEffects"]
    causes = causes_of(obj)
    assert causes.get(field) == message, causes


def test_mutating_reinvocation_policy_and_unique_names() -> None:
    obj = valid_config()
    obj["webhooks"][0]["reinvocationPolicy"] = "Always"
    assert causes_of(obj, mutating=True)["webhooks[0].reinvocationPolicy"] == (
        'Unsupported value: "Always": supported values: "IfNeeded", "Never"')
    obj = valid_config()
    obj["webhooks"].append(dict(obj["webhooks"][0]))
    assert causes_of(obj)["webhooks[1].name"] == 'Duplicate value: "a.example.com"'


def test_update_keeps_what_the_stored_object_already_broke() -> None:
    st = ValidatingWebhookConfigurationStrategy()
    old = valid_config()
    old["webhooks"][0]["sideEffects"] = "Some"  # stored before v1 refused it
    old["metadata"].update(resourceVersion="5", uid="u", creationTimestamp="2024-01-01T00:00:00Z")
    new = json.loads(json.dumps(old))
    new["metadata"]["labels"] = {"x": "y"}
    assert st.validate_update(new, old, False) == []
    fresh = json.loads(json.dumps(new))
    fresh["webhooks"][0]["sideEffects"] = "None"
    strict_old = json.loads(json.dumps(fresh))
    new2 = json.loads(json.dumps(strict_old))
    new2["webhooks"][0]["sideEffects"] = "Some"
    assert {c["field"] for c in st.validate_update(new2, strict_old, False)} == {"webhooks[0].sideEffects"}


def test_table_printer() -> None:
    import datetime as dt

    columns, row = ValidatingWebhookConfigurationStrategy().table_printer()
    assert [c[0] for c in columns] == ["Name", "Webhooks", "Age"]
    now = dt.datetime(2024, 1, 1, 0, 5, tzinfo=dt.UTC)
    obj = {**valid_config(), "metadata": {"name": "cfg", "creationTimestamp": "2024-01-01T00:00:00Z"}}
    assert row(obj, now) == ["cfg", 1, "5m"]


def test_evicted_clients_are_closed_after_their_calls_could_have_ended(monkeypatch: pytest.MonkeyPatch) -> None:
    from apiserver.webhookclient import Clients

    monkeypatch.setattr(Clients, "MAX", 1)
    monkeypatch.setattr(Clients, "RETIRE_AFTER", 0)
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "webhook-ca")])
    start = dt.datetime.now(dt.UTC)
    ca = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
          .serial_number(1).not_valid_before(start).not_valid_after(start + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True).sign(key, hashes.SHA256()))
    pem = ca.public_bytes(serialization.Encoding.PEM)

    async def scenario() -> None:
        clients = Clients()
        first = clients.get("")
        assert clients.get("") is first  # cached per CA bundle
        second = clients.get(base64.b64encode(pem).decode())
        assert second is not first and not second.is_closed
        retiring = list(clients._retiring)
        assert len(retiring) == 1
        await asyncio.wait(retiring)
        assert first.is_closed and not clients._retiring
        await clients.close()
        assert second.is_closed

    asyncio.run(scenario())
