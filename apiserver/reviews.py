"""Create-only virtual resources that answer a question instead of storing an object.

authorization.k8s.io/v1: SelfSubjectAccessReview (`kubectl auth can-i`),
SubjectAccessReview, LocalSubjectAccessReview, SelfSubjectRulesReview
(`kubectl auth can-i --list`); authentication.k8s.io/v1: TokenReview and
SelfSubjectReview (`kubectl auth whoami`). Each POST is answered with the request
object plus its `status`; nothing is written to etcd. And core/v1 `bindings`, which binds
the pod its Binding names (through pods/binding).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from apimachinery import errors
from apiserver.authn import UserInfo
from apiserver.authz import ALLOW, DENY, AuthzAttributes
from apiserver.http import Response, json_response
from apiserver.registry.base import Strategy

if TYPE_CHECKING:
    from apiserver.http import Request
    from apiserver.requestinfo import RequestInfo
    from apiserver.resources import Resource
    from apiserver.server import APIServer

#: what a review or TokenRequest body may come as (kubectl sends protobuf)
class VirtualStrategy(Strategy):
    """A resource served by `serve` alone: no storage, no watch cache, only `create`."""

    virtual = True

    async def serve(self, server: APIServer, req: Request, info: RequestInfo, res: Resource, ns: str,
                    user: UserInfo) -> Response:
        if info.verb != "create" or info.name or info.subresource:
            raise errors.method_not_allowed("the server does not allow this method on the requested resource")
        obj = await server.api.read_body(req, res, res.group, res.version, res.kind)
        spec = obj.get("spec")
        if spec is not None and not isinstance(spec, dict):
            raise errors.bad_request(f"{res.kind}.spec must be an object")
        meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
        if res.namespaced:
            if meta.get("namespace") and meta["namespace"] != ns:
                raise errors.bad_request("the namespace of the provided object does not match the namespace sent on the request")
            meta = {**meta, "namespace": ns}
        status = await self.answer(server, res, ns, user, spec or {})
        out = {"kind": res.kind, "apiVersion": res.api_version, "metadata": {**meta, "creationTimestamp": None},
               "spec": spec or {}, "status": status}
        return json_response(out, 201)

    async def answer(self, server: APIServer, res: Resource, ns: str, user: UserInfo, spec: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError


class BindingStrategy(Strategy):
    """core/v1 `bindings` (POST /api/v1/namespaces/<ns>/bindings, the older form of pods/<name>/binding):
    the Binding's metadata.name names the pod, which is then bound as through its subresource."""

    virtual = True

    async def serve(self, server: APIServer, req: Request, info: RequestInfo, res: Resource, ns: str,
                    user: UserInfo) -> Response:
        import dataclasses

        if not ns:
            raise errors.route_not_found()  # namespaced only, as upstream
        if info.verb != "create" or info.name or info.subresource:
            raise errors.method_not_allowed("the server does not allow this method on the requested resource")
        pods = server.resource("", "pods")
        body = await server.subresources.read_body(req, pods, "binding")  # decoded and type-checked once
        meta = body.get("metadata") if isinstance(body.get("metadata"), dict) else {}
        name = meta.get("name")
        if not name or not isinstance(name, str):
            raise errors.invalid("Binding", "", [errors.field_cause(
                "metadata.name", "Required value: name or generateName is required", "FieldValueRequired")])
        pod_info = dataclasses.replace(info, resource="pods", name=name, subresource="binding")
        # admission sees a creation of `bindings`, as upstream
        return await server.subresources.bind(req, pod_info, pods, ns, user, res, "", body)


def _invalid(res: Resource, field: str, value: Any, detail: str) -> errors.StatusError:
    from apimachinery.validation import invalid_cause

    return errors.invalid(res.kind, "", [invalid_cause(field, value, detail)], res.group)


def access_attributes(res: Resource, user: UserInfo, spec: dict[str, Any]) -> AuthzAttributes:
    ra, nra = spec.get("resourceAttributes"), spec.get("nonResourceAttributes")
    if (ra is None) == (nra is None):
        raise _invalid(res, "spec.resourceAttributes", ra, "exactly one of nonResourceAttributes or resourceAttributes must be specified")
    if ra is not None:
        if not isinstance(ra, dict):
            raise errors.bad_request("spec.resourceAttributes must be an object")
        fs = None
        fsel = ra.get("fieldSelector")
        if isinstance(fsel, dict) and isinstance(fsel.get("rawSelector"), str) and fsel["rawSelector"]:
            from apimachinery.selectors import parse_field_selector

            fs = parse_field_selector(fsel["rawSelector"])
        return AuthzAttributes(
            user, str(ra.get("verb") or ""), True, str(ra.get("group") or ""), str(ra.get("version") or ""),
            str(ra.get("namespace") or ""), str(ra.get("resource") or ""), str(ra.get("subresource") or ""),
            str(ra.get("name") or ""), "", fs,
        )
    if not isinstance(nra, dict):
        raise errors.bad_request("spec.nonResourceAttributes must be an object")
    return AuthzAttributes(user, str(nra.get("verb") or ""), False, path=str(nra.get("path") or ""))


async def access_status(server: APIServer, attrs: AuthzAttributes) -> dict[str, Any]:
    decision, reason = await server.authz.decide(attrs)
    status: dict[str, Any] = {"allowed": decision == ALLOW}
    if decision == DENY:
        status["denied"] = True
    if reason:
        status["reason"] = reason
    return status


def _user_from_spec(spec: dict[str, Any]) -> UserInfo:
    extra = spec.get("extra") if isinstance(spec.get("extra"), dict) else {}
    groups = [g for g in spec.get("groups") or [] if isinstance(g, str)]
    return UserInfo(str(spec.get("user") or ""), str(spec.get("uid") or ""), tuple(groups),
                    {k: tuple(v) for k, v in extra.items() if isinstance(v, list)})


class SelfSubjectAccessReviewStrategy(VirtualStrategy):
    async def answer(self, server: APIServer, res: Resource, ns: str, user: UserInfo, spec: dict[str, Any]) -> dict[str, Any]:
        return await access_status(server, access_attributes(res, user, spec))


class SubjectAccessReviewStrategy(VirtualStrategy):
    async def answer(self, server: APIServer, res: Resource, ns: str, user: UserInfo, spec: dict[str, Any]) -> dict[str, Any]:
        if not spec.get("user") and not spec.get("groups"):
            raise _invalid(res, "spec.user", spec.get("user", ""), "at least one of user or group must be specified")
        return await access_status(server, access_attributes(res, _user_from_spec(spec), spec))


class LocalSubjectAccessReviewStrategy(VirtualStrategy):
    async def answer(self, server: APIServer, res: Resource, ns: str, user: UserInfo, spec: dict[str, Any]) -> dict[str, Any]:
        if not spec.get("user") and not spec.get("groups"):
            raise _invalid(res, "spec.user", spec.get("user", ""), "at least one of user or group must be specified")
        if spec.get("nonResourceAttributes") is not None:
            raise _invalid(res, "spec.nonResourceAttributes", spec["nonResourceAttributes"], "disallowed on this kind of request")
        ra = spec.get("resourceAttributes")
        if isinstance(ra, dict) and ra.get("namespace", ns) != ns:
            raise _invalid(res, "spec.resourceAttributes.namespace", ra.get("namespace"), "must match metadata.namespace")
        if isinstance(ra, dict):
            spec = {**spec, "resourceAttributes": {**ra, "namespace": ns}}
        return await access_status(server, access_attributes(res, _user_from_spec(spec), spec))


class SelfSubjectRulesReviewStrategy(VirtualStrategy):
    async def answer(self, server: APIServer, res: Resource, ns: str, user: UserInfo, spec: dict[str, Any]) -> dict[str, Any]:
        namespace = spec.get("namespace") or ""
        if not isinstance(namespace, str) or not namespace:
            raise _invalid(res, "spec.namespace", namespace, "must be specified")
        resource, non_resource, incomplete = server.authz.rules_for(user, namespace)
        return {"resourceRules": resource, "nonResourceRules": non_resource, "incomplete": incomplete}


class TokenReviewStrategy(VirtualStrategy):
    async def answer(self, server: APIServer, res: Resource, ns: str, user: UserInfo, spec: dict[str, Any]) -> dict[str, Any]:
        token = spec.get("token")
        if not isinstance(token, str) or not token:
            raise _invalid(res, "spec.token", "", "token must not be empty")
        audiences = [a for a in spec.get("audiences") or [] if isinstance(a, str)] or None
        try:
            reviewed, auds = await server.authn.review_token(token, audiences)
        except ValueError as e:
            return {"authenticated": False, "user": {}, "error": str(e)}
        return {"authenticated": True, "user": reviewed.as_dict(), "audiences": auds}


class SelfSubjectReviewStrategy(VirtualStrategy):
    async def answer(self, server: APIServer, res: Resource, ns: str, user: UserInfo, spec: dict[str, Any]) -> dict[str, Any]:
        return {"userInfo": user.as_dict()}
