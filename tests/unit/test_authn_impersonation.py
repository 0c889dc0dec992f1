"""Impersonation headers → the user a request acts as, and what is authorized on the way."""

from __future__ import annotations

import asyncio

import pytest

from apimachinery import errors
from apiserver.authn import UserInfo
from apiserver.authn.impersonation import impersonate, requests_from_headers
from apiserver.authz import AuthzAttributes, forbidden

REAL = UserInfo("alice", "u-1", ("devs", "system:authenticated"))


def run(headers: list[tuple[bytes, bytes]], deny: set[tuple[str, str]] = frozenset()) -> tuple[UserInfo, list[AuthzAttributes]]:
    asked: list[AuthzAttributes] = []

    async def authorize(a: AuthzAttributes) -> None:
        asked.append(a)
        if (a.resource, a.name) in deny:
            raise forbidden(a)

    return asyncio.run(impersonate(REAL, headers, authorize)), asked


def test_no_headers_is_the_real_user_and_asks_nothing() -> None:
    user, asked = run([(b"user-agent", b"kubectl")])
    assert user is REAL and asked == []


def test_user_with_groups_extras_and_uid() -> None:
    user, asked = run([
        (b"Impersonate-User", b"bob"), (b"Impersonate-Group", b"ops"), (b"Impersonate-Group", b"dev"),
        (b"Impersonate-Extra-Scopes", b"view"), (b"Impersonate-Extra-Scopes", b"edit"),
        (b"Impersonate-Extra-acme.com%2Fproject", b"x"), (b"Impersonate-Uid", b"u-2"),
    ])
    assert user == UserInfo("bob", "u-2", ("ops", "dev", "system:authenticated"))
    assert user.extra == {"scopes": ("view", "edit"), "acme.com/project": ("x",)}
    assert [(a.verb, a.api_group, a.resource, a.subresource, a.name) for a in asked] == [
        ("impersonate", "", "users", "", "bob"),
        ("impersonate", "", "groups", "", "ops"),
        ("impersonate", "", "groups", "", "dev"),
        ("impersonate", "authentication.k8s.io", "userextras", "scopes", "view"),
        ("impersonate", "authentication.k8s.io", "userextras", "scopes", "edit"),
        ("impersonate", "authentication.k8s.io", "userextras", "acme.com/project", "x"),
        ("impersonate", "authentication.k8s.io", "uids", "", "u-2"),
    ]
    assert all(a.user is REAL for a in asked)


def test_service_account_gets_its_groups_unless_groups_are_given() -> None:
    user, asked = run([(b"impersonate-user", b"system:serviceaccount:ns1:robot")])
    assert user.groups == ("system:serviceaccounts", "system:serviceaccounts:ns1", "system:authenticated")
    assert (asked[0].resource, asked[0].namespace, asked[0].name) == ("serviceaccounts", "ns1", "robot")
    user, _ = run([(b"impersonate-user", b"system:serviceaccount:ns1:robot"), (b"impersonate-group", b"g")])
    assert user.groups == ("g", "system:authenticated")


def test_anonymous_and_explicit_unauthenticated_are_not_authenticated() -> None:
    user, _ = run([(b"impersonate-user", b"system:anonymous")])
    assert user.groups == ("system:unauthenticated",)
    user, _ = run([(b"impersonate-user", b"bob"), (b"impersonate-group", b"system:unauthenticated")])
    assert user.groups == ("system:unauthenticated",)


def test_the_first_denied_thing_is_a_403_naming_it() -> None:
    with pytest.raises(errors.StatusError) as e:
        run([(b"impersonate-user", b"bob"), (b"impersonate-group", b"system:masters")], deny={("groups", "system:masters")})
    st = e.value.status()
    assert st["code"] == 403 and st["reason"] == "Forbidden"
    assert st["message"] == ('groups "system:masters" is forbidden: User "alice" cannot impersonate resource "groups" '
                             'in API group "" at the cluster scope')


def test_groups_without_a_user_are_a_bad_request() -> None:
    with pytest.raises(errors.StatusError) as e:
        requests_from_headers([(b"impersonate-group", b"ops")])
    st = e.value.status()
    assert st["code"] == 400 and "without impersonating a user" in st["message"]
