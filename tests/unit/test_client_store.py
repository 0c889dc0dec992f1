"""client.store: keys, the namespace index, custom indexes kept current on every change."""

from __future__ import annotations

import pytest

from client.store import (
    DeletedFinalStateUnknown,
    Store,
    deleted_object,
    index_by_node_name,
    index_by_owner_uid,
)


def pod(name: str, ns: str = "default", node: str | None = None, owners: tuple[str, ...] = (), rv: str = "1") -> dict:
    meta: dict = {"name": name, "namespace": ns, "resourceVersion": rv}
    if owners:
        meta["ownerReferences"] = [{"uid": u, "kind": "ReplicaSet", "name": u} for u in owners]
    spec = {"nodeName": node} if node else {}
    return {"kind": "Pod", "apiVersion": "v1", "metadata": meta, "spec": spec}


def names(objs: list[dict]) -> list[str]:
    return [o["metadata"]["name"] for o in objs]


def test_keys_and_namespace_index() -> None:
    s = Store()
    s.put(pod("a", "ns1"))
    s.put(pod("b", "ns1"))
    s.put(pod("c", "ns2"))
    s.put({"kind": "Node", "metadata": {"name": "n1"}})
    assert sorted(s.keys()) == ["n1", "ns1/a", "ns1/b", "ns2/c"]
    assert s.get("ns1/a")["metadata"]["name"] == "a" and s.get_by_name("ns2", "c") is not None
    assert s.get_by_name(None, "n1") is not None and "n1" in s and len(s) == 4
    assert names(s.by_index("namespace", "ns1")) == ["a", "b"]
    assert s.index_values("namespace") == ["ns1", "ns2"]


def test_custom_index_follows_updates_and_deletes() -> None:
    s = Store()
    s.put(pod("a", node="n1"))
    s.put(pod("b", node="n1"))
    s.put(pod("pending"))
    s.add_index("nodeName", index_by_node_name)  # built over what is already stored
    assert names(s.by_index("nodeName", "n1")) == ["a", "b"]
    old = s.put(pod("a", node="n2", rv="2"))
    assert old is not None and old["spec"]["nodeName"] == "n1"
    assert names(s.by_index("nodeName", "n1")) == ["b"]
    assert names(s.by_index("nodeName", "n2")) == ["a"]
    s.delete("default/b")
    assert s.by_index("nodeName", "n1") == [] and s.index_values("nodeName") == ["n2"]
    assert s.delete("default/nope") is None
    with pytest.raises(KeyError):
        s.by_index("nosuch", "x")
    with pytest.raises(ValueError):
        s.add_index("nodeName", index_by_node_name)


def test_multi_valued_index_and_replace() -> None:
    s = Store()
    s.add_index("owner", index_by_owner_uid)
    s.put(pod("a", owners=("u1", "u2")))
    s.put(pod("b", owners=("u2",)))
    assert names(s.by_index("owner", "u2")) == ["a", "b"]
    assert s.index_keys("owner", "u1") == ["default/a"]
    s.replace([pod("c", owners=("u1",))])
    assert s.keys() == ["default/c"]
    assert names(s.by_index("owner", "u1")) == ["c"] and s.by_index("owner", "u2") == []
    assert names(s.by_index("namespace", "default")) == ["c"]


def test_tombstone_unwrapping() -> None:
    p = pod("a")
    assert deleted_object(p) is p
    assert deleted_object(DeletedFinalStateUnknown("default/a", p)) is p
