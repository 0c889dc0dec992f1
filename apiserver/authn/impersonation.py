"""Impersonation: `Impersonate-*` headers make a request act as another user.

Runs right after authentication (upstream's WithImpersonation filter). Each thing asked for
is authorized for the *real* user with verb `impersonate`: users and groups and service
accounts in the core group, `userextras/<key>` and `uids` in authentication.k8s.io. When all
are allowed, the rest of the pipeline (authorization, admission, field managers, audit) sees
the impersonated user only.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import unquote

from apimachinery import errors
from apiserver.authn import ANONYMOUS, AUTHENTICATED, UNAUTHENTICATED, UserInfo
from apiserver.authn.serviceaccount import sa_groups, sa_username, split_sa_username
from apiserver.authz import AuthzAttributes

USER_HEADER = b"impersonate-user"
GROUP_HEADER = b"impersonate-group"
UID_HEADER = b"impersonate-uid"
EXTRA_PREFIX = b"impersonate-extra-"
AUTHENTICATION_GROUP = "authentication.k8s.io"


@dataclass(frozen=True, slots=True)
class ImpersonationRequest:
    """One thing the caller wants to act as, and how it is authorized."""

    resource: str  # users, groups, serviceaccounts, userextras, uids
    name: str
    namespace: str = ""
    extra_key: str = ""  # for userextras: authorized as the subresource

    def attributes(self, real: UserInfo) -> AuthzAttributes:
        core = self.resource in ("users", "groups", "serviceaccounts")
        return AuthzAttributes(
            real, "impersonate", True, "" if core else AUTHENTICATION_GROUP, "v1", self.namespace,
            self.resource, self.extra_key, self.name,
        )


def requests_from_headers(headers: list[tuple[bytes, bytes]]) -> list[ImpersonationRequest]:
    """The impersonation asked for, in upstream's order: user, groups, extras, uid.

    Headers may repeat (one Impersonate-Group per group), so this reads the raw list.
    Groups, extras or a uid without a user is a 400 (upstream answers it with a 500).
    """
    user = ""
    uid = ""
    groups: list[str] = []
    extras: list[tuple[str, str]] = []
    for raw_key, raw_value in headers:
        key = raw_key.lower()
        if not key.startswith(b"impersonate-"):  # every request passes here: most headers stop now
            continue
        value = raw_value.decode("latin-1").strip()
        if key == USER_HEADER:
            user = user or value
        elif key == GROUP_HEADER:
            groups.append(value)
        elif key == UID_HEADER:
            uid = uid or value
        elif key.startswith(EXTRA_PREFIX):
            # keys are percent-encoded so that they can carry characters headers cannot
            extras.append((unquote(key[len(EXTRA_PREFIX):].decode("latin-1")), value))
    out: list[ImpersonationRequest] = []
    if user:
        sa = split_sa_username(user)
        if sa is not None:
            out.append(ImpersonationRequest("serviceaccounts", sa[1], sa[0]))
        else:
            out.append(ImpersonationRequest("users", user))
    out += [ImpersonationRequest("groups", g) for g in groups]
    out += [ImpersonationRequest("userextras", v, extra_key=k) for k, v in extras]
    if uid:
        out.append(ImpersonationRequest("uids", uid))
    if out and not user:
        asked = ", ".join(f"{r.resource} {r.name!r}" for r in out)
        raise errors.bad_request(f"requested impersonation of {asked} without impersonating a user")
    return out


Authorize = Callable[[AuthzAttributes], Awaitable[None]]


async def impersonate(real: UserInfo, headers: list[tuple[bytes, bytes]], authorize: Authorize) -> UserInfo:
    """The user the request acts as: `real` itself without Impersonate-* headers.

    `authorize` raises the 403 (worded as any other) for the first thing not allowed.
    """
    asked = requests_from_headers(headers)
    if not asked:
        return real
    groups_given = any(r.resource == "groups" for r in asked)
    name = uid = ""
    groups: list[str] = []
    extra: dict[str, list[str]] = {}
    for r in asked:
        await authorize(r.attributes(real))
        if r.resource == "serviceaccounts":
            name = sa_username(r.namespace, r.name)
            if not groups_given:  # a service account's groups are known
                groups += sa_groups(r.namespace)
        elif r.resource == "users":
            name = r.name
        elif r.resource == "groups":
            groups.append(r.name)
        elif r.resource == "userextras":
            extra.setdefault(r.extra_key, []).append(r.name)
        else:
            uid = r.name
    # the impersonated user is authenticated unless it is anonymous or says otherwise
    if name == ANONYMOUS:
        if UNAUTHENTICATED not in groups:
            groups.append(UNAUTHENTICATED)
    elif AUTHENTICATED not in groups and UNAUTHENTICATED not in groups:
        groups.append(AUTHENTICATED)
    return UserInfo(name, uid, tuple(groups), {k: tuple(v) for k, v in extra.items()})

