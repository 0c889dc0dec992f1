"""TaintNodesByCondition against a real apiserver: a new Node starts not-ready:NoSchedule (on in the
clusters minictl starts; the test harness turns it off elsewhere, as upstream's integration framework)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import ControlPlane, private_control_plane

NOT_READY = {"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}


@pytest.fixture(scope="module")
def tainting() -> Iterator[ControlPlane]:
    with private_control_plane("mk8s-taints-", controller_manager=False, taint_new_nodes=True) as cp:
        yield cp


def test_new_nodes_start_not_ready(tainting: ControlPlane) -> None:
    with tainting.client() as api:
        name = f"n-{os.urandom(3).hex()}"
        r = api.post("/api/v1/nodes", json={"metadata": {"name": name}})
        assert r.status_code == 201, r.text
        assert r.json()["spec"]["taints"] == [NOT_READY]
        # a node registered with its own taints keeps them, and gets the taint once
        other = f"{name}-b"
        r = api.post("/api/v1/nodes", json={"metadata": {"name": other}, "spec": {"taints": [
            {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}, NOT_READY]}})
        assert r.json()["spec"]["taints"] == [{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}, NOT_READY]
        # only at creation: the node lifecycle controller lifts it, and updates do not put it back
        r = api.patch(f"/api/v1/nodes/{name}", json={"spec": {"taints": None}},
                      headers={"content-type": "application/merge-patch+json"})
        assert r.status_code == 200 and "taints" not in r.json()["spec"]
        for n in (name, other):
            api.delete(f"/api/v1/nodes/{n}")


def test_the_harness_default_leaves_nodes_alone(api: httpx.Client) -> None:
    name = f"n-{os.urandom(3).hex()}"
    r = api.post("/api/v1/nodes", json={"metadata": {"name": name}})
    assert r.status_code == 201 and r.json()["spec"] == {}  # no taints; the empty spec written as upstream
    api.delete(f"/api/v1/nodes/{name}")
