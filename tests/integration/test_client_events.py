"""EventRecorder against a real apiserver: Events written, identical ones counted on one object."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from client import APIClient, EventRecorder, from_kubeconfig
from tests.conftest import ControlPlane


@pytest.fixture
async def kube(control_plane: ControlPlane) -> AsyncIterator[APIClient]:
    async with APIClient(from_kubeconfig(control_plane.kubeconfig, qps=0)) as api:
        yield api


async def test_identical_events_aggregate_into_count_2(kube: APIClient, namespace: str) -> None:
    pod = await kube.resource("v1", "pods").create(
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"},
         "spec": {"containers": [{"name": "c", "image": "busybox"}]}}, namespace)
    rec = EventRecorder(kube, "test-scheduler", "host-1")
    try:
        rec.event(pod, "Warning", "FailedScheduling", "0/3 nodes are available")
        rec.event(pod, "Warning", "FailedScheduling", "0/3 nodes are available")
        rec.event(pod, "Normal", "Scheduled", "Successfully assigned to n1", action="Binding")
        await rec.flush()
    finally:
        await rec.close()
    events = kube.resource("v1", "events")
    found = await events.list(namespace, field_selector={"involvedObject.name": "web"})
    by_reason = {e["reason"]: e for e in found["items"]}
    assert sorted(by_reason) == ["FailedScheduling", "Scheduled"] and len(found["items"]) == 2
    failed = by_reason["FailedScheduling"]
    assert failed["count"] == 2 and failed["type"] == "Warning"
    assert failed["lastTimestamp"] >= failed["firstTimestamp"]
    assert failed["involvedObject"]["uid"] == pod["metadata"]["uid"]
    assert failed["involvedObject"]["kind"] == "Pod"
    assert failed["source"] == {"component": "test-scheduler", "host": "host-1"}
    assert failed["metadata"]["name"].startswith("web.")
    assert by_reason["Scheduled"]["count"] == 1 and by_reason["Scheduled"]["action"] == "Binding"
    assert rec.dropped == 0
    # the same events through events.k8s.io/v1
    v1 = await kube.resource("events.k8s.io/v1", "events").get(failed["metadata"]["name"], namespace)
    assert v1["reportingController"] == "test-scheduler" and v1["deprecatedCount"] == 2
