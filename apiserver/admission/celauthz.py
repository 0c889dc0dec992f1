"""The `authorizer` variable of admission CEL expressions (upstream's k8s.io/apiserver
pkg/cel/library/authz.go): authorization checks of the requesting user from inside a
matchCondition.

    authorizer.group('apps').resource('deployments').namespace('ns').check('delete').allowed()
    authorizer.requestResource.subresource('status').check('update').reason()
    authorizer.path('/healthz').check('get').allowed()
    authorizer.serviceAccount('ns', 'sa').check('impersonate').allowed()

Checks are values (cel-python maps with a hidden kind) that the library's functions extend;
`check(verb)` asks the apiserver's authorizer chain — from the CEL worker thread, on the event
loop, as a SubjectAccessReview would — and returns a Decision with `allowed()`, `reason()`,
`errored()` and `error()`. Field and label selectors on checks are not supported.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any

from apiserver.authn import UserInfo
from apiserver.authz import ALLOW, AuthzAttributes

#: a check waits at most this long for the authorizer (a stuck one must not hold the CEL thread)
CHECK_TIMEOUT = 5.0

Decide = Callable[[AuthzAttributes], Awaitable[tuple[str, str]]]


class _Value:
    """One step of the chain: what is known so far, and how to decide."""

    def __init__(self, kind: str, fields: dict[str, str], ctx: _Context) -> None:
        self.kind, self.fields, self.ctx = kind, fields, ctx

    def extend(self, kind: str, **fields: str) -> _Value:
        return _Value(kind, {**self.fields, **fields}, self.ctx)


@dataclasses.dataclass
class _Context:
    user: UserInfo
    decide: Decide
    loop: asyncio.AbstractEventLoop


def _decision_map(types: Any, decision: str, reason: str, error: str) -> Any:
    return types.MapType({types.StringType("__decision__"): types.StringType(decision),
                          types.StringType("__reason__"): types.StringType(reason),
                          types.StringType("__error__"): types.StringType(error)})


def variable(types: Any, user: UserInfo, decide: Decide, loop: asyncio.AbstractEventLoop,
             request_resource: dict[str, str]) -> Any:
    """The `authorizer` value for one request: checks run as `user`; `requestResource` is the
    request's own group/resource/subresource/namespace/name."""
    ctx = _Context(user, decide, loop)
    root = _wrap(types, _Value("authorizer", {}, ctx))
    root[types.StringType("requestResource")] = _wrap(types, _Value("resource", dict(request_resource), ctx))
    return root


def _wrap(types: Any, value: _Value) -> Any:
    m = types.MapType({types.StringType("__check__"): types.StringType(value.kind)})
    m.value = value  # cel-python keeps the map; the library reads the step back from it
    return m


def _step(arg: Any, *kinds: str) -> _Value:
    value = getattr(arg, "value", None)
    if not isinstance(value, _Value) or value.kind not in kinds:
        raise TypeError(f"no such overload: expected {' or '.join(kinds)}")
    return value


def library(types: Any) -> dict[str, Callable[..., Any]]:
    """The functions (member calls) of upstream's authz library, for Engine.compile."""
    def s(v: Any) -> str:
        return str(v)

    def path(a: Any, p: Any) -> Any:
        return _wrap(types, _step(a, "authorizer").extend("path", path=s(p)))

    def group(a: Any, g: Any) -> Any:
        return _wrap(types, _step(a, "authorizer").extend("group", group=s(g)))

    def service_account(a: Any, namespace: Any, name: Any) -> Any:
        return _wrap(types, _step(a, "authorizer").extend("resource", group="", resource="serviceaccounts",
                                                          namespace=s(namespace), name=s(name)))

    def resource(g: Any, r: Any) -> Any:
        return _wrap(types, _step(g, "group").extend("resource", resource=s(r)))

    def setter(field: str) -> Callable[[Any, Any], Any]:
        def set_field(r: Any, v: Any) -> Any:
            return _wrap(types, _step(r, "resource").extend("resource", **{field: s(v)}))
        return set_field

    def check(c: Any, verb: Any) -> Any:
        value = _step(c, "path", "resource")
        f = value.fields
        if value.kind == "path":
            attrs = AuthzAttributes(value.ctx.user, s(verb), False, path=f.get("path", ""))
        else:
            attrs = AuthzAttributes(value.ctx.user, s(verb), True, api_group=f.get("group", ""),
                                    namespace=f.get("namespace", ""), resource=f.get("resource", ""),
                                    subresource=f.get("subresource", ""), name=f.get("name", ""))
        try:
            future = asyncio.run_coroutine_threadsafe(value.ctx.decide(attrs), value.ctx.loop)
            decision, reason = future.result(CHECK_TIMEOUT)
        except Exception as e:  # the authorizer failed: an errored decision, as upstream's
            return _decision_map(types, "NoOpinion", "", f"{type(e).__name__}: {e}")
        return _decision_map(types, "Allow" if decision == ALLOW else "Deny", reason, "")

    def field_of(d: Any, key: str) -> str:
        if not isinstance(d, types.MapType) or types.StringType("__decision__") not in d:
            raise TypeError("no such overload: expected a Decision")
        return str(d[types.StringType(key)])

    return {
        "path": path, "group": group, "serviceAccount": service_account, "resource": resource,
        "subresource": setter("subresource"), "namespace": setter("namespace"), "name": setter("name"),
        "check": check,
        "allowed": lambda d: types.BoolType(field_of(d, "__decision__") == "Allow"),
        "reason": lambda d: types.StringType(field_of(d, "__reason__")),
        "errored": lambda d: types.BoolType(field_of(d, "__error__") != ""),
        "error": lambda d: types.StringType(field_of(d, "__error__")),
    }
