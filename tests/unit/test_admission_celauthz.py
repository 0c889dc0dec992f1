"""The `authorizer` variable of webhook matchConditions (apiserver.admission.celauthz): checks as
the requesting user through the authorizer chain, from the CEL worker thread."""

from __future__ import annotations

import asyncio
import functools

from apiserver.admission import matchconditions
from apiserver.admission.celauthz import variable
from apiserver.authn import UserInfo
from apiserver.authz import ALLOW, NO_OPINION, AuthzAttributes
from apiserver.celengine import off_loop

ALICE = UserInfo("alice", "", ("devs",))


def decider(asked: list[AuthzAttributes]):
    async def decide(a: AuthzAttributes) -> tuple[str, str]:
        asked.append(a)
        if a.is_resource and (a.api_group, a.resource, a.verb) == ("apps", "deployments", "delete"):
            return ALLOW, "RBAC: allowed by RoleBinding x"
        if not a.is_resource and a.path == "/healthz":
            return ALLOW, ""
        return NO_OPINION, "no rule"
    return decide


async def _run(expressions: list[str], decide, requested: dict | None = None) -> matchconditions.MatchResult:
    loop = asyncio.get_running_loop()
    authz = functools.partial(variable, user=ALICE, decide=decide, loop=loop,
                              request_resource=requested or {"group": "", "resource": "pods", "subresource": "",
                                                             "namespace": "ns", "name": "p"})
    conditions = [{"name": f"c{i}", "expression": e} for i, e in enumerate(expressions)]
    return await off_loop(matchconditions.evaluate, conditions, {"kind": "Pod"}, None, {"operation": "CREATE"},
                          "Fail", authz)


async def test_resource_checks_ask_the_chain_as_the_requesting_user():
    asked: list[AuthzAttributes] = []
    result = await _run([
        "authorizer.group('apps').resource('deployments').namespace('ns').name('web').check('delete').allowed()",
        "authorizer.group('apps').resource('deployments').check('delete').reason() == 'RBAC: allowed by RoleBinding x'",
        "!authorizer.group('').resource('secrets').check('get').allowed()",
        "authorizer.path('/healthz').check('get').allowed()",
        "!authorizer.group('').resource('pods').check('get').errored()",
    ], decider(asked))
    assert result.matches and not result.error
    first = asked[0]
    assert (first.user, first.verb, first.api_group, first.resource, first.namespace, first.name) == (
        ALICE, "delete", "apps", "deployments", "ns", "web")
    assert asked[3].is_resource is False and asked[3].path == "/healthz"


async def test_request_resource_and_service_account_checks():
    asked: list[AuthzAttributes] = []
    result = await _run(["authorizer.requestResource.subresource('status').check('update').allowed()"],
                        decider(asked))
    assert not result.matches and result.failed_condition == "c0"  # no rule: false, the webhook is skipped
    assert (asked[0].resource, asked[0].subresource, asked[0].namespace, asked[0].name) == ("pods", "status", "ns", "p")
    await _run(["authorizer.serviceAccount('kube-system', 'builder').check('impersonate').allowed()"], decider(asked))
    assert (asked[-1].resource, asked[-1].namespace, asked[-1].name, asked[-1].verb) == (
        "serviceaccounts", "kube-system", "builder", "impersonate")


async def test_a_failing_authorizer_is_an_errored_decision_and_misuse_an_error():
    async def broken(a: AuthzAttributes) -> tuple[str, str]:
        raise RuntimeError("webhook authorizer down")

    result = await _run(["authorizer.group('').resource('pods').check('get').errored()",
                         "authorizer.group('').resource('pods').check('get').error().contains('down')"], broken)
    assert result.matches
    result = await _run(["authorizer.resource('pods').check('get').allowed()"], decider([]))
    assert not result.matches and "no such overload" in result.error  # resource() wants a group first
