"""API Priority and Fairness: the filter's configuration and its gate (apiserver/flowcontrol/controller.py),
against fake watch caches."""

from __future__ import annotations

import asyncio
import copy
import uuid

import orjson
import pytest

from apimachinery.metrics import Registry
from apiserver.authn import UserInfo
from apiserver.flowcontrol import config
from apiserver.flowcontrol.controller import FlowControl, TooManyRequests, nominal_seats
from apiserver.flowcontrol.maxinflight import MaxInFlight
from apiserver.requestinfo import parse
from apiserver.watchcache import Entry

ADMIN = UserInfo("admin", "", ("system:masters", "system:authenticated"))
ALICE = UserInfo("alice", "", ("dev", "system:authenticated"))
BOB = UserInfo("bob", "", ("dev", "system:authenticated"))


class FakeCache:
    def __init__(self) -> None:
        self.objects: dict[str, Entry] = {}
        self.listeners: list = []

    def put(self, *objs: dict) -> None:
        for obj in objs:
            obj = copy.deepcopy(obj)
            obj["metadata"].setdefault("uid", str(uuid.uuid4()))
            name = obj["metadata"]["name"]
            self.objects[f"/registry/x/{name}"] = Entry(orjson.dumps(obj), 1, "", name, {}, {})
        for fn in self.listeners:
            fn(None)

    def delete(self, name: str) -> None:
        del self.objects[f"/registry/x/{name}"]
        for fn in self.listeners:
            fn(None)

    def uid(self, name: str) -> str:
        return orjson.loads(self.objects[f"/registry/x/{name}"].data)["metadata"]["uid"]


class FakeServer:
    def __init__(self) -> None:
        self.metrics = Registry()
        self.inflight = {"readOnly": 0, "mutating": 0}
        self.caches = {"flowschemas": FakeCache(), "prioritylevelconfigurations": FakeCache()}

    def cache_for(self, group: str, plural: str) -> FakeCache:
        return self.caches[plural]


def shipped(server: FakeServer) -> None:
    server.caches["prioritylevelconfigurations"].put(*config.MANDATORY_PRIORITY_LEVELS,
                                                     *config.SUGGESTED_PRIORITY_LEVELS)
    server.caches["flowschemas"].put(*config.MANDATORY_FLOW_SCHEMAS, *config.SUGGESTED_FLOW_SCHEMAS)


def req(method: str = "GET", path: str = "/api/v1/namespaces/default/pods", **query: str):
    return parse(method, path, dict(query))


def small_level(server: FakeServer, queuing: dict | None, shares: int = 1) -> None:
    """A level `tiny` for the `dev` group (one seat of three: catch-all keeps the rest)."""
    limited = {"nominalConcurrencyShares": shares, "lendablePercent": 0,
               "limitResponse": {"type": "Queue", "queuing": queuing} if queuing else {"type": "Reject"}}
    server.caches["prioritylevelconfigurations"].put(
        {"metadata": {"name": "tiny"}, "spec": {"type": "Limited", "limited": limited}})
    server.caches["flowschemas"].put(
        {"metadata": {"name": "tiny"},
         "spec": {"priorityLevelConfiguration": {"name": "tiny"}, "matchingPrecedence": 100,
                  "distinguisherMethod": {"type": "ByUser"},
                  "rules": [{"subjects": [{"kind": "Group", "group": {"name": "dev"}}],
                             "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"],
                                                "clusterScope": True, "namespaces": ["*"]}]}]}})


def metric(server: FakeServer, line_start: str) -> str:
    return next((line for line in server.metrics.render().splitlines() if line.startswith(line_start)), "")


def test_seats_split_by_shares() -> None:
    # upstream's NominalCL with the shipped levels and the default 600 seats (exempt: 0 shares)
    shares = {o["metadata"]["name"]: (o["spec"].get("limited") or o["spec"].get("exempt"))["nominalConcurrencyShares"]
              for o in config.MANDATORY_PRIORITY_LEVELS + config.SUGGESTED_PRIORITY_LEVELS}
    assert nominal_seats(600, shares) == {"catch-all": 13, "exempt": 0, "system": 74, "node-high": 98,
                                          "leader-election": 25, "workload-high": 98, "workload-low": 245,
                                          "global-default": 49}
    assert nominal_seats(3, {"a": 1, "b": 100}) == {"a": 1, "b": 3}  # ceil: never below one for a share


async def test_before_any_object_the_mandatory_ones_are_imagined() -> None:
    server = FakeServer()
    fc = FlowControl(server, 600)
    assert set(fc.levels) == {"exempt", "catch-all"} and fc.levels["catch-all"].nominal == 600
    seat = await fc.admit(ADMIN, req())
    assert seat.labels == ("exempt", "exempt")
    assert seat.headers == [(b"X-Kubernetes-Pf-Flowschema-Uid", b""), (b"X-Kubernetes-Pf-Prioritylevel-Uid", b"")]
    seat.release()
    seat = await fc.admit(ALICE, req())
    assert seat.labels == ("catch-all", "catch-all")
    seat.release()


async def test_the_shipped_configuration() -> None:
    server = FakeServer()
    shipped(server)
    fc = FlowControl(server, 600)
    assert fc.levels["global-default"].nominal == 49
    seat = await fc.admit(ALICE, req())
    fs_uid = server.caches["flowschemas"].uid("global-default")
    pl_uid = server.caches["prioritylevelconfigurations"].uid("global-default")
    assert seat.labels == ("global-default", "global-default")
    assert seat.headers == [(b"X-Kubernetes-Pf-Flowschema-Uid", fs_uid.encode()),
                            (b"X-Kubernetes-Pf-Prioritylevel-Uid", pl_uid.encode())]
    assert server.inflight == {"readOnly": 1, "mutating": 0}
    assert metric(server, 'apiserver_flowcontrol_current_executing_requests{priority_level="global-default",'
                          'flow_schema="global-default"}').endswith(" 1")
    seat.release()
    seat.release()  # once only
    assert server.inflight == {"readOnly": 0, "mutating": 0}
    assert metric(server, 'apiserver_flowcontrol_dispatched_requests_total{priority_level="global-default",'
                          'flow_schema="global-default"}').endswith(" 1")
    # every FlowSchema is to get its Dangling condition
    assert fc._statuses["global-default"]["reason"] == "Found"
    assert fc._statuses["global-default"]["message"] == (
        'This FlowSchema references the PriorityLevelConfiguration object named "global-default" and it exists')


async def test_dangling_schemas_are_skipped_and_told() -> None:
    server = FakeServer()
    shipped(server)
    fc = FlowControl(server, 600)
    server.caches["prioritylevelconfigurations"].delete("global-default")
    await asyncio.sleep(0)  # the listener's rebuild
    seat = await fc.admit(ALICE, req())
    assert seat.labels == ("catch-all", "catch-all")
    seat.release()
    assert {k: fc._statuses["global-default"][k] for k in ("status", "reason")} == {"status": "True",
                                                                                    "reason": "NotFound"}


async def test_a_broken_mandatory_level_is_imagined() -> None:
    server = FakeServer()
    server.caches["prioritylevelconfigurations"].put({"metadata": {"name": "catch-all"},
                                                      "spec": {"type": "Limited"}})  # (validation forbids it)
    fc = FlowControl(server, 600)
    assert fc.levels["catch-all"].uid == "" and fc.levels["catch-all"].queues.seats == 600
    seat = await fc.admit(ALICE, req())
    assert seat.labels == ("catch-all", "catch-all")
    seat.release()


async def test_long_running_requests_take_no_seat_but_watches_do() -> None:
    fc = FlowControl(FakeServer(), 600)
    assert await fc.admit(ALICE, req("GET", "/api/v1/namespaces/default/pods/p/log")) is None
    assert await fc.admit(ALICE, req("POST", "/api/v1/namespaces/default/pods/p/exec")) is None
    watch = await fc.admit(ALICE, req(watch="true"))
    assert watch is not None and watch.kind == "readOnly"
    write = await fc.admit(ALICE, req("POST"))
    assert write.kind == "mutating" and fc.server.inflight == {"readOnly": 1, "mutating": 1}
    watch.release()
    write.release()


async def test_a_reject_level_answers_429_when_its_seats_are_taken() -> None:
    server = FakeServer()
    small_level(server, None)
    fc = FlowControl(server, 3)  # shares: catch-all 5, tiny 1 → tiny gets ceil(3/6) = 1 seat
    assert fc.levels["tiny"].queues.seats == 1
    first = await fc.admit(ALICE, req())
    with pytest.raises(TooManyRequests) as e:
        await fc.admit(BOB, req())
    assert e.value.headers[0] == (b"retry-after", b"1")
    assert [h for h, _ in e.value.headers[1:]] == [b"X-Kubernetes-Pf-Flowschema-Uid",
                                                   b"X-Kubernetes-Pf-Prioritylevel-Uid"]
    assert metric(server, 'apiserver_flowcontrol_rejected_requests_total{priority_level="tiny",flow_schema="tiny",'
                          'reason="concurrency-limit"}').endswith(" 1")
    assert (await fc.admit(ADMIN, req())) is not None  # exempt: never limited
    first.release()
    (await fc.admit(BOB, req())).release()


async def test_a_queuing_level_queues_then_rejects() -> None:
    server = FakeServer()
    small_level(server, {"queues": 1, "handSize": 1, "queueLengthLimit": 1})
    fc = FlowControl(server, 3)
    first = await fc.admit(ALICE, req())
    waiting = asyncio.create_task(fc.admit(BOB, req()))
    await asyncio.sleep(0)
    assert not waiting.done()
    assert metric(server, 'apiserver_flowcontrol_current_inqueue_requests{priority_level="tiny"').endswith(" 1")
    with pytest.raises(TooManyRequests):
        await fc.admit(ALICE, req())
    assert metric(server, 'apiserver_flowcontrol_rejected_requests_total{priority_level="tiny",flow_schema="tiny",'
                          'reason="queue-full"}').endswith(" 1")
    first.release()
    second = await asyncio.wait_for(waiting, 1)
    assert second.labels == ("tiny", "tiny")
    second.release()
    fc.wait_limit = 0.01
    third = await fc.admit(ALICE, req())
    with pytest.raises(TooManyRequests):
        await fc.admit(BOB, req())
    assert metric(server, 'apiserver_flowcontrol_rejected_requests_total{priority_level="tiny",flow_schema="tiny",'
                          'reason="time-out"}').endswith(" 1")
    third.release()


async def test_a_queued_request_is_dropped_when_its_client_goes_away() -> None:
    server = FakeServer()
    small_level(server, {"queues": 1, "handSize": 1, "queueLengthLimit": 5})
    fc = FlowControl(server, 3)
    first = await fc.admit(ALICE, req())
    client_left = asyncio.Event()
    watched = []

    async def gone() -> None:
        watched.append(True)
        await client_left.wait()

    waiting = asyncio.create_task(fc.admit(BOB, req(), gone))
    await asyncio.sleep(0)
    assert not waiting.done()
    client_left.set()
    with pytest.raises(TooManyRequests):
        await asyncio.wait_for(waiting, 1)
    assert metric(server, 'apiserver_flowcontrol_rejected_requests_total{priority_level="tiny",flow_schema="tiny",'
                          'reason="cancelled"}').endswith(" 1")
    assert watched and fc.levels["tiny"].queues.waiting == 0
    # a request let in before its client left is served, and the watch on its client is stopped
    stopped = []

    async def stays() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            stopped.append(True)

    second = asyncio.create_task(fc.admit(BOB, req(), stays))
    for _ in range(3):  # queued, and its watch started
        await asyncio.sleep(0)
    first.release()
    (await asyncio.wait_for(second, 1)).release()
    assert stopped == [True]


async def test_more_shares_more_seats_at_once() -> None:
    server = FakeServer()
    small_level(server, {"queues": 4, "handSize": 2, "queueLengthLimit": 10})
    fc = FlowControl(server, 6)
    held = [await fc.admit(ALICE, req())]
    waiters = [asyncio.create_task(fc.admit(BOB, req())) for _ in range(2)]
    await asyncio.sleep(0)
    small_level(server, {"queues": 4, "handSize": 2, "queueLengthLimit": 10}, shares=5)  # 3 of 6 seats now
    await asyncio.sleep(0)
    held += await asyncio.wait_for(asyncio.gather(*waiters), 1)
    assert fc.levels["tiny"].queues.executing == 3
    for seat in held:
        seat.release()


async def test_max_in_flight_without_apf() -> None:
    server = FakeServer()
    gate = MaxInFlight(server, 1, 1)
    read = await gate.admit(ALICE, req())
    with pytest.raises(TooManyRequests) as e:
        await gate.admit(BOB, req())
    assert e.value.headers == [(b"retry-after", b"1")]
    assert await gate.admit(ADMIN, req()) is None  # system:masters is never refused
    write = await gate.admit(BOB, req("POST"))
    assert await gate.admit(ALICE, req(watch="1")) is None  # long-running: not counted
    read.release()
    write.release()
    assert server.inflight == {"readOnly": 0, "mutating": 0}
