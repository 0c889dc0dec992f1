"""The apiserver identity Lease: its name, and which identity leases the GC deletes."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import orjson

from apiserver import identity

NOW = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)


def test_the_name_is_a_stable_hash_of_the_hostname():
    name = identity.apiserver_id("node-a")
    assert name.startswith("apiserver-") and len(name) == len("apiserver-") + 26
    assert set(name.removeprefix("apiserver-")) <= set("abcdefghijklmnopqrstuvwxyz234567")
    assert name == identity.apiserver_id("node-a") != identity.apiserver_id("node-b")


def _lease(name: str, renewed_ago: float | None, duration: int | None = 3600, label: str = "kube-apiserver",
           namespace: str = "kube-system") -> dict[str, Any]:
    spec: dict[str, Any] = {}
    if renewed_ago is not None:
        spec["renewTime"] = (NOW - dt.timedelta(seconds=renewed_ago)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if duration is not None:
        spec["leaseDurationSeconds"] = duration
    return {"metadata": {"name": name, "namespace": namespace, "labels": {identity.IDENTITY_LABEL: label}},
            "spec": spec}


def test_expiry():
    assert not identity.is_expired(_lease("a", 60), NOW)
    assert identity.is_expired(_lease("a", 7200), NOW)
    assert identity.is_expired(_lease("a", None), NOW) and identity.is_expired(_lease("a", 60, None), NOW)


@dataclass
class _Entry:
    name: str
    namespace: str
    labels: dict[str, str]


class _KV:
    def __init__(self, obj: dict[str, Any]) -> None:
        self.obj = obj

    def decode(self) -> dict[str, Any]:
        return orjson.loads(orjson.dumps(self.obj))


class _FakeServer:
    """What the GC touches: the leases' watch cache, etcd and the delete path."""

    def __init__(self, leases: list[dict[str, Any]]) -> None:
        self.leases = {(lz["metadata"]["namespace"], lz["metadata"]["name"]): lz for lz in leases}
        self.api = self
        self.store = self
        self.deleted: list[str] = []

    def resource(self, group: str, plural: str) -> Any:
        return self

    def key(self, ns: str, name: str) -> tuple[str, str]:
        return ns, name

    def cache_for(self, group: str, plural: str) -> Any:
        return self

    def list(self, flt: Any) -> list[_Entry]:
        entries = [_Entry(n, ns, lz["metadata"]["labels"]) for (ns, n), lz in self.leases.items()]
        return [e for e in entries if flt.matches(e)]  # type: ignore[arg-type]

    async def get(self, key: tuple[str, str]) -> _KV | None:
        lease = self.leases.get(key)
        return _KV(lease) if lease is not None else None

    async def delete_object(self, res: Any, ns: str, name: str, *args: Any) -> None:
        self.deleted.append(name)
        del self.leases[(ns, name)]


async def test_only_expired_kube_apiserver_identity_leases_of_kube_system_are_collected():
    server = _FakeServer([
        _lease("gone", 7200), _lease("alive", 60), _lease("no-renew", None),
        _lease("other-component", 7200, label="kube-controller-manager"),
        _lease("elsewhere", 7200, namespace="default"),
    ])
    assert await identity.collect_expired(server, NOW) == ["gone", "no-renew"]  # type: ignore[arg-type]
    assert sorted(n for _, n in server.leases) == ["alive", "elsewhere", "other-component"]
