"""Authorization: may this user do this verb on this resource? Stage two of the pipeline.

Authorizers answer allow, deny or no-opinion; the first decision wins, no opinion from
all of them is a denial (403 naming user, verb and resource, as upstream words it).
`--authorization-mode` picks them, in order (e.g. `Node,RBAC`); members of
`system:masters` are allowed everything before any of them is asked, as upstream's
privileged-group authorizer does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from apimachinery import errors
from apimachinery.selectors import FieldSelector, parse_field_selector
from apiserver.authn import MASTERS, UserInfo

if TYPE_CHECKING:
    from apiserver.requestinfo import RequestInfo
    from apiserver.server import APIServer

ALLOW, DENY, NO_OPINION = "allow", "deny", "no-opinion"

MODES = ("AlwaysAllow", "AlwaysDeny", "Node", "RBAC")


@dataclass(frozen=True, slots=True)
class AuthzAttributes:
    user: UserInfo
    verb: str
    is_resource: bool
    api_group: str = ""
    api_version: str = ""
    namespace: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""
    path: str = ""
    #: The request's field selector (list/watch), for authorizers that scope by it (Node).
    field_selector: FieldSelector | None = field(default=None, compare=False)


def attributes_for(user: UserInfo, info: RequestInfo, query: dict[str, str]) -> AuthzAttributes:
    """The attributes of an API request, as upstream's RequestInfoFactory derives them.

    A list or watch narrowed to one object by `fieldSelector=metadata.name=x` is
    authorized as a request for that name (so a kubelet may watch one secret).
    """
    name = info.name
    fs = None
    if info.is_resource and info.verb in ("list", "watch") and query.get("fieldSelector"):
        try:
            fs = parse_field_selector(query["fieldSelector"])
        except errors.StatusError:
            fs = None  # the handler answers the 400
        if fs is not None and not name:
            exact = fs.exact_value("metadata.name")
            if exact and exact not in (".", "..") and "/" not in exact and "%" not in exact:
                name = exact
    return AuthzAttributes(
        user, info.verb, info.is_resource, info.group, info.version, info.namespace,
        info.resource, info.subresource, name, info.path, fs,
    )


class Authorizer(Protocol):
    async def authorize(self, a: AuthzAttributes) -> tuple[str, str]: ...


class AlwaysAllow:
    async def authorize(self, a: AuthzAttributes) -> tuple[str, str]:
        return ALLOW, ""

    def rules_for(self, user: UserInfo, namespace: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]], bool]:
        return [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}], [{"verbs": ["*"], "nonResourceURLs": ["*"]}], False


class AlwaysDeny:
    async def authorize(self, a: AuthzAttributes) -> tuple[str, str]:
        return NO_OPINION, "Everything is forbidden."

    def rules_for(self, user: UserInfo, namespace: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]], bool]:
        return [], [], False


class PrivilegedGroups:
    """`system:masters` may do anything, whatever the policy objects say (upstream's short cut)."""

    def __init__(self, groups: tuple[str, ...] = (MASTERS,)) -> None:
        self.groups = frozenset(groups)

    async def authorize(self, a: AuthzAttributes) -> tuple[str, str]:
        if not self.groups.isdisjoint(a.user.groups):
            return ALLOW, ""
        return NO_OPINION, ""

    def rules_for(self, user: UserInfo, namespace: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]], bool]:
        # none, as upstream's privileged-group authorizer: system:masters' rules are listed from
        # the cluster-admin binding RBAC has for it (else `auth can-i --list` shows them twice)
        return [], [], False


class AuthorizerChain:
    def __init__(self, authorizers: list[Authorizer]) -> None:
        self.authorizers = authorizers

    async def decide(self, a: AuthzAttributes) -> tuple[str, str]:
        """(ALLOW or DENY, reason) — what a SubjectAccessReview reports."""
        reason = ""
        for authz in self.authorizers:
            decision, why = await authz.authorize(a)
            if decision == ALLOW:
                return ALLOW, why
            if why:
                reason = why
            if decision == DENY:
                return DENY, reason
        return NO_OPINION, reason

    async def authorize(self, a: AuthzAttributes) -> None:
        decision, reason = await self.decide(a)
        if decision != ALLOW:
            raise forbidden(a, reason)

    def rules_for(self, user: UserInfo, namespace: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]], bool]:
        """(resource rules, non-resource rules, incomplete) — a SelfSubjectRulesReview."""
        resource: list[dict[str, Any]] = []
        non_resource: list[dict[str, Any]] = []
        incomplete = False
        for authz in self.authorizers:
            fn = getattr(authz, "rules_for", None)
            if fn is None:
                incomplete = True
                continue
            r, n, inc = fn(user, namespace)
            resource += r
            non_resource += n
            incomplete = incomplete or inc
        return resource, non_resource, incomplete


def build_authorizers(server: APIServer, modes: str) -> list[Authorizer]:
    """The authorizers `--authorization-mode` names, in order (unknown names are an error)."""
    names = [m.strip() for m in modes.split(",") if m.strip()]
    unknown = [m for m in names if m not in MODES]
    if unknown:
        raise ValueError(f"unknown authorization mode(s) {unknown}; supported: {', '.join(MODES)}")
    if len(set(names)) != len(names):
        raise ValueError(f"authorization modes may not repeat: {modes}")
    out: list[Authorizer] = []
    if "RBAC" in names or "Node" in names:
        out.append(PrivilegedGroups())
    for m in names:
        if m == "AlwaysAllow":
            out.append(AlwaysAllow())
        elif m == "AlwaysDeny":
            out.append(AlwaysDeny())
        elif m == "Node":
            from apiserver.authz.node import NodeAuthorizer

            out.append(NodeAuthorizer(server))
        elif m == "RBAC":
            from apiserver.authz.rbac import RBACAuthorizer

            out.append(RBACAuthorizer(server))
    return out


def forbidden(a: AuthzAttributes, reason: str = "") -> errors.StatusError:
    """403 worded as upstream: `User "x" cannot list resource "pods" in API group "" in the namespace "y"`."""
    if a.is_resource:
        res = a.resource + (f"/{a.subresource}" if a.subresource else "")
        msg = f'User "{a.user.name}" cannot {a.verb} resource "{res}" in API group "{a.api_group}"'
        msg += f' in the namespace "{a.namespace}"' if a.namespace else " at the cluster scope"
        if reason:
            msg += f": {reason}"
        return errors.forbidden(
            (f'{a.resource}.{a.api_group} "{a.name}"' if a.api_group else f'{a.resource} "{a.name}"') + f" is forbidden: {msg}"
            if a.name
            else (f"{a.resource}.{a.api_group}" if a.api_group else a.resource) + f" is forbidden: {msg}",
            a.resource,
            a.name,
            a.api_group,
        )
    msg = f'forbidden: User "{a.user.name}" cannot {a.verb} path "{a.path}"'
    if reason:
        msg += f": {reason}"
    return errors.forbidden(msg)
