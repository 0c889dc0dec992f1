"""client.events.EventRecorder: event shape, EventCorrelator-style counting, never blocking."""

from __future__ import annotations

import asyncio
import re

from client.errors import ApiError
from client.events import (
    AGGREGATE_MAX_EVENTS,
    AGGREGATE_WINDOW,
    COMBINED_PREFIX,
    SPAM_BURST,
    EventRecorder,
    object_reference,
)


class FakeEvents:
    def __init__(self) -> None:
        self.created: list[dict] = []
        self.patches: list[tuple[str, dict, str | None, str]] = []
        self.missing: set[str] = set()

    async def create(self, body: dict, namespace: str | None = None) -> dict:
        assert namespace == body["metadata"]["namespace"]
        self.created.append(body)
        return body

    async def patch(self, name: str, patch: dict, namespace: str | None = None, patch_type: str = "merge") -> dict:
        if name in self.missing:
            raise ApiError(404, "NotFound", f'events "{name}" not found')
        self.patches.append((name, patch, namespace, patch_type))
        return patch


class FakeClient:
    def __init__(self) -> None:
        self.events = FakeEvents()

    def resource(self, api_version: str, plural: str) -> FakeEvents:
        assert (api_version, plural) == ("v1", "events")
        return self.events


POD = {"apiVersion": "v1", "kind": "Pod",
       "metadata": {"name": "web-0", "namespace": "prod", "uid": "u-1", "resourceVersion": "42"}}
NODE = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1", "uid": "u-n"}}


def recorder(now: list[float] | None = None, **kw) -> tuple[EventRecorder, FakeEvents]:
    c = FakeClient()
    clock = (lambda: now[0]) if now is not None else None
    rec = EventRecorder(c, "default-scheduler", "host-a", **({"clock": clock} if clock else {}), **kw)  # type: ignore[arg-type]
    return rec, c.events


async def test_event_shape() -> None:
    rec, fake = recorder()
    rec.event(POD, "Normal", "Scheduled", "Successfully assigned prod/web-0 to n1", action="Binding")
    await rec.flush()
    (e,) = fake.created
    assert re.fullmatch(r"web-0\.[0-9a-f]+", e["metadata"]["name"])
    assert e["metadata"]["namespace"] == "prod"
    assert e["involvedObject"] == {"kind": "Pod", "namespace": "prod", "name": "web-0", "uid": "u-1",
                                   "apiVersion": "v1", "resourceVersion": "42"}
    assert e["source"] == {"component": "default-scheduler", "host": "host-a"}
    assert (e["reportingComponent"], e["reportingInstance"]) == ("default-scheduler", "host-a")
    assert (e["type"], e["reason"], e["count"], e["action"]) == ("Normal", "Scheduled", 1, "Binding")
    assert e["firstTimestamp"] == e["lastTimestamp"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", e["firstTimestamp"])
    await rec.close()


async def test_identical_events_are_counted_by_patch() -> None:
    now = [1000.0]
    rec, fake = recorder(now)
    rec.event(POD, "Warning", "FailedScheduling", "0/1 nodes are available")
    rec.event(POD, "Warning", "FailedScheduling", "0/1 nodes are available")
    rec.event(POD, "Warning", "FailedScheduling", "0/1 nodes are available")
    await rec.flush()
    assert len(fake.created) == 1
    name = fake.created[0]["metadata"]["name"]
    assert [(n, p["count"], ns, t) for n, p, ns, t in fake.patches] == [
        (name, 2, "prod", "strategic"), (name, 3, "prod", "strategic")]
    assert set(fake.patches[0][1]) == {"count", "lastTimestamp", "message"}

    rec.event(POD, "Warning", "FailedScheduling", "another message")  # different message: a new event
    rec.event(NODE, "Warning", "FailedScheduling", "0/1 nodes are available")  # different object
    await rec.flush()
    assert len(fake.created) == 3
    assert fake.created[2]["metadata"]["namespace"] == "default"  # cluster-scoped objects' events

    now[0] += AGGREGATE_WINDOW + 1  # past the 10-minute window: a new event again
    rec.event(POD, "Warning", "FailedScheduling", "0/1 nodes are available")
    await rec.flush()
    assert len(fake.created) == 4 and fake.created[3]["count"] == 1
    await rec.close()


async def test_deleted_event_is_recreated_with_its_count() -> None:
    rec, fake = recorder([0.0])
    rec.event(POD, "Normal", "Pulled", "image pulled")
    await rec.flush()
    fake.missing.add(fake.created[0]["metadata"]["name"])
    rec.event(POD, "Normal", "Pulled", "image pulled")
    await rec.flush()
    assert len(fake.created) == 2 and fake.created[1]["count"] == 2
    assert fake.created[1]["firstTimestamp"] == fake.created[0]["firstTimestamp"]
    await rec.close()


async def test_similar_events_are_combined_after_ten_messages() -> None:
    now = [0.0]
    rec, fake = recorder(now)
    for i in range(AGGREGATE_MAX_EVENTS + 2):
        rec.event(POD, "Warning", "BackOff", f"restarting failed container, attempt {i}")
    rec.event(POD, "Normal", "Pulled", "image pulled")  # another reason: not part of the group
    await rec.flush()
    messages = [e["message"] for e in fake.created]
    assert messages[:AGGREGATE_MAX_EVENTS - 1] == [
        f"restarting failed container, attempt {i}" for i in range(AGGREGATE_MAX_EVENTS - 1)]
    # the 10th distinct message starts one combined Event; the 11th and 12th only count on it
    combined = fake.created[AGGREGATE_MAX_EVENTS - 1]
    assert combined["message"] == COMBINED_PREFIX + f"restarting failed container, attempt {AGGREGATE_MAX_EVENTS - 1}"
    assert messages[AGGREGATE_MAX_EVENTS:] == ["image pulled"]
    assert [(n, p["count"], p["message"]) for n, p, _, _ in fake.patches] == [
        (combined["metadata"]["name"], 2, COMBINED_PREFIX + f"restarting failed container, attempt {AGGREGATE_MAX_EVENTS}"),
        (combined["metadata"]["name"], 3, COMBINED_PREFIX + f"restarting failed container, attempt {AGGREGATE_MAX_EVENTS + 1}"),
    ]
    now[0] += AGGREGATE_WINDOW + 1  # a quiet 10 minutes: messages stand alone again
    rec.event(POD, "Warning", "BackOff", "restarting failed container, attempt 99")
    await rec.flush()
    assert fake.created[-1]["message"] == "restarting failed container, attempt 99"
    await rec.close()


async def test_spam_filter_limits_events_per_object_and_refills_slowly() -> None:
    now = [0.0]
    rec, fake = recorder(now)
    for i in range(SPAM_BURST + 5):
        rec.event(POD, "Normal", f"Reason{i}", "m")  # all different: each would be a new Event
    rec.event(NODE, "Normal", "Other", "m")  # another object has its own budget
    await rec.flush()
    assert [e["reason"] for e in fake.created] == [f"Reason{i}" for i in range(SPAM_BURST)] + ["Other"]
    assert rec.filtered == 5 and rec.dropped == 0
    # an identical event held back still counts: the next one written carries the total
    rec.event(POD, "Normal", "Reason0", "m")
    await rec.flush()
    assert fake.patches == [] and rec.filtered == 6
    now[0] += 300  # one token per 5 minutes
    rec.event(POD, "Normal", "Reason0", "m")
    rec.event(POD, "Normal", "Reason1", "m")
    await rec.flush()
    assert [(n, p["count"]) for n, p, _, _ in fake.patches] == [(fake.created[0]["metadata"]["name"], 3)]
    assert rec.filtered == 7
    await rec.close()


async def test_never_blocks_drops_when_full_and_rejects_bad_input() -> None:
    rec, fake = recorder(queue_size=2)
    for i in range(5):
        rec.event(POD, "Normal", "R", f"m{i}")  # no await: the writer cannot run in between
    assert rec.dropped == 3
    await rec.flush()
    assert [e["message"] for e in fake.created] == ["m0", "m1"]
    rec.event(POD, "Bogus", "R", "m")
    rec.event({"kind": "Pod", "metadata": {}}, "Normal", "R", "m")
    await rec.flush()
    assert len(fake.created) == 2 and rec.dropped == 4
    await rec.close()


async def test_deferred_while_busy_until_idle() -> None:
    rec, fake = recorder()
    idle = asyncio.Event()
    rec.defer_while_busy(idle, 60.0)
    rec.event(POD, "Normal", "Started", "m")
    writer = asyncio.ensure_future(rec.flush())
    for _ in range(20):  # the writer gets every chance to run: nothing is written while busy
        await asyncio.sleep(0)
    assert fake.created == [] and not writer.done()
    idle.set()
    await asyncio.wait_for(writer, 5)
    assert [e["reason"] for e in fake.created] == ["Started"]
    await rec.close()


async def test_deferred_at_most_max_delay_after_it_was_recorded() -> None:
    now = [1000.0]
    rec, fake = recorder(now)
    rec.defer_while_busy(asyncio.Event(), 0.05)  # never idle
    rec.event(POD, "Normal", "Started", "recorded long ago")
    now[0] += 1.0  # its deadline passed before the writer saw it: written at once
    await asyncio.wait_for(rec.flush(), 1)
    rec.event(POD, "Normal", "Pulled", "recorded now")
    await asyncio.wait_for(rec.flush(), 5)  # waits its 0.05 s, then is written though still busy
    assert [e["reason"] for e in fake.created] == ["Started", "Pulled"]
    await rec.close()


def test_event_outside_a_loop_is_dropped_not_raised() -> None:
    rec, fake = recorder()
    rec.event(POD, "Normal", "R", "m")
    assert rec.dropped == 1 and fake.created == []


def test_object_reference_from_a_reference() -> None:
    ref = {"kind": "Node", "name": "n1", "uid": "", "apiVersion": "v1"}
    assert object_reference(ref) == {"kind": "Node", "name": "n1", "apiVersion": "v1"}
