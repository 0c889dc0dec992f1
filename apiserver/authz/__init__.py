"""Authorization: may this user do this verb on this resource? Stage two of the pipeline.

Authorizers answer allow, deny or no-opinion; the first decision wins, no opinion from
all of them is a denial (403 naming user, verb and resource, as upstream words it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from apimachinery import errors
from apiserver.authn import UserInfo

ALLOW, DENY, NO_OPINION = "allow", "deny", "no-opinion"


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


class Authorizer(Protocol):
    async def authorize(self, a: AuthzAttributes) -> tuple[str, str]: ...


class AlwaysAllow:
    async def authorize(self, a: AuthzAttributes) -> tuple[str, str]:
        return ALLOW, ""


class AuthorizerChain:
    def __init__(self, authorizers: list[Authorizer]) -> None:
        self.authorizers = authorizers

    async def authorize(self, a: AuthzAttributes) -> None:
        reason = ""
        for authz in self.authorizers:
            decision, why = await authz.authorize(a)
            if decision == ALLOW:
                return
            if why:
                reason = why
            if decision == DENY:
                break
        raise forbidden(a, reason)


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
