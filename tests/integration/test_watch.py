"""Watch: exact delivery through the watch cache, resume, bookmarks and 410 Expired."""

from __future__ import annotations

import asyncio
import json

import httpx

from tests.conftest import ControlPlane

#: Every object these tests write carries this label and every watch selects on it, so objects
#: the cluster publishes by itself (e.g. kube-root-ca.crt in each namespace) stay out of the way.
MINE = "labelSelector=w%3D1"


def cm(name: str, v: str = "0") -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": {"w": "1"}}, "data": {"v": v}}


async def _collect(client: httpx.AsyncClient, url: str, want: int, out: list, started: asyncio.Event | None = None,
                   seen: tuple[int, asyncio.Event] | None = None) -> None:
    async with client.stream("GET", url, timeout=httpx.Timeout(60, read=60)) as r:
        assert r.status_code == 200
        if started:
            started.set()
        async for line in r.aiter_lines():
            if not line:
                continue
            ev = json.loads(line)
            out.append(ev)
            if seen is not None and len(out) >= seen[0]:
                seen[1].set()
            if len([e for e in out if e["type"] != "BOOKMARK"]) >= want:
                return


def test_no_event_lost_or_duplicated(control_plane: ControlPlane, namespace: str) -> None:
    base = f"/api/v1/namespaces/{namespace}/configmaps"
    n_create, n_update, n_delete = 600, 300, 100
    total = n_create + n_update + n_delete

    async def run() -> tuple[list[list], dict]:
        async with control_plane.async_client(limits=httpx.Limits(max_connections=100)) as c:
            start_rv = (await c.get(base)).json()["metadata"]["resourceVersion"]
            results: list[list] = [[] for _ in range(20)]
            watchers = [
                asyncio.create_task(_collect(c, f"{base}?watch=true&resourceVersion={start_rv}&{MINE}", total, results[i]))
                for i in range(20)
            ]
            sem = asyncio.Semaphore(16)
            expected: dict[str, tuple[str, str]] = {}

            async def write(method: str, url: str, body: dict | None, kind: str) -> None:
                async with sem:
                    r = await c.request(method, url, json=body)
                    assert r.status_code in (200, 201), r.text
                    if kind != "DELETED":
                        obj = r.json()
                        expected[obj["metadata"]["resourceVersion"]] = (kind, obj["metadata"]["name"])

            await asyncio.gather(*(write("POST", base, cm(f"w{i}"), "ADDED") for i in range(n_create)))
            await asyncio.gather(*(write("PUT", f"{base}/w{i}", cm(f"w{i}", "1"), "MODIFIED") for i in range(n_update)))
            await asyncio.gather(*(write("DELETE", f"{base}/w{i}", None, "DELETED") for i in range(n_create - n_delete, n_create)))
            await asyncio.wait_for(asyncio.gather(*watchers), 60)
            return results, expected

    results, expected = asyncio.run(run())
    for events in results:
        real = [e for e in events if e["type"] != "BOOKMARK"]
        assert len(real) == total
        rvs = [int(e["object"]["metadata"]["resourceVersion"]) for e in real]
        assert rvs == sorted(rvs) and len(set(rvs)) == total  # in order, no duplicates
        got = {e["object"]["metadata"]["resourceVersion"]: (e["type"], e["object"]["metadata"]["name"]) for e in real}
        for rv, kind_name in expected.items():
            assert got.get(rv) == kind_name
        deleted = sorted(e["object"]["metadata"]["name"] for e in real if e["type"] == "DELETED")
        assert deleted == sorted(f"w{i}" for i in range(n_create - n_delete, n_create))


def test_resume_gives_exactly_later_events(api: httpx.Client, control_plane: ControlPlane, namespace: str) -> None:
    base = f"/api/v1/namespaces/{namespace}/configmaps"
    rvs = [api.post(base, json=cm(f"r{i}")).json()["metadata"]["resourceVersion"] for i in range(5)]
    events: list = []

    async def run() -> None:
        async with control_plane.async_client() as c:
            await asyncio.wait_for(_collect(c, f"{base}?watch=true&resourceVersion={rvs[1]}&{MINE}", 3, events), 20)

    asyncio.run(run())
    assert [(e["type"], e["object"]["metadata"]["resourceVersion"]) for e in events] == [("ADDED", rv) for rv in rvs[2:]]


def test_watch_without_rv_starts_with_current_state(api: httpx.Client, control_plane: ControlPlane, namespace: str) -> None:
    base = f"/api/v1/namespaces/{namespace}/configmaps"
    api.post(base, json=cm("s1"))
    api.post(base, json=cm("s2"))
    events: list = []

    async def run() -> None:
        async with control_plane.async_client() as c:
            two = asyncio.Event()
            t = asyncio.create_task(_collect(c, f"{base}?watch=1&{MINE}", 3, events, seen=(2, two)))
            await asyncio.wait_for(two.wait(), 20)  # the initial state has arrived
            r = await c.post(base, json=cm("s3"))
            assert r.status_code == 201
            await asyncio.wait_for(t, 20)

    asyncio.run(run())
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("ADDED", "s1"), ("ADDED", "s2"), ("ADDED", "s3")]


def test_label_selector_watch_translates_transitions(api: httpx.Client, control_plane: ControlPlane, namespace: str) -> None:
    base = f"/api/v1/namespaces/{namespace}/configmaps"
    rv = api.get(base).json()["metadata"]["resourceVersion"]
    events: list = []

    async def run() -> None:
        async with control_plane.async_client() as c:
            t = asyncio.create_task(_collect(c, f"{base}?watch=1&resourceVersion={rv}&labelSelector=sel%3Dyes", 3, events))
            await c.post(base, json={**cm("t"), "metadata": {"name": "t", "labels": {"sel": "no", "w": "1"}}})
            await c.patch(f"{base}/t", content=b'{"metadata":{"labels":{"sel":"yes"}}}', headers={"content-type": "application/merge-patch+json"})
            await c.patch(f"{base}/t", content=b'{"data":{"v":"2"}}', headers={"content-type": "application/merge-patch+json"})
            await c.patch(f"{base}/t", content=b'{"metadata":{"labels":{"sel":"no"}}}', headers={"content-type": "application/merge-patch+json"})
            await asyncio.wait_for(t, 20)

    asyncio.run(run())
    # entering the selector looks like ADDED, leaving it like DELETED
    assert [e["type"] for e in events] == ["ADDED", "MODIFIED", "DELETED"]


def test_bookmarks_and_timeout(api: httpx.Client, control_plane: ControlPlane, namespace: str) -> None:
    base = f"/api/v1/namespaces/{namespace}/configmaps"
    api.post(base, json=cm("b"))
    rv = api.get(base).json()["metadata"]["resourceVersion"]
    with api.stream("GET", f"{base}?watch=1&resourceVersion={rv}&timeoutSeconds=1&allowWatchBookmarks=true&{MINE}") as r:
        lines = [json.loads(line) for line in r.iter_lines() if line]
    # the stream ends by itself after timeoutSeconds, having sent nothing but bookmarks
    assert all(e["type"] == "BOOKMARK" for e in lines)
    # a watch that ends in a few seconds gets one bookmark 2 s before its end (upstream's watch
    # cache), so a client with a short timeout still learns the latest resourceVersion
    later = api.post(base, json=cm("b2")).json()["metadata"]["resourceVersion"]
    with api.stream("GET", f"{base}?watch=1&resourceVersion={later}&timeoutSeconds=3&allowWatchBookmarks=true&{MINE}") as r:
        lines = [json.loads(line) for line in r.iter_lines() if line]
    assert [e["type"] for e in lines] == ["BOOKMARK"], lines
    assert int(lines[0]["object"]["metadata"]["resourceVersion"]) >= int(later)
    with api.stream("GET", f"{base}?watch=1&resourceVersion={later}&timeoutSeconds=3&{MINE}") as r:
        assert [line for line in r.iter_lines() if line] == []  # not asked for: none


def test_send_initial_events_ends_with_marked_bookmark(api: httpx.Client, control_plane: ControlPlane, namespace: str) -> None:
    base = f"/api/v1/namespaces/{namespace}/configmaps"
    api.post(base, json=cm("i1"))
    url = f"{base}?watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=2&{MINE}"
    with api.stream("GET", url) as r:
        events = [json.loads(line) for line in r.iter_lines() if line]
    assert events[0]["type"] == "ADDED" and events[0]["object"]["metadata"]["name"] == "i1"
    marks = [e for e in events if e["type"] == "BOOKMARK" and (e["object"]["metadata"].get("annotations") or {}).get("k8s.io/initial-events-end") == "true"]
    assert len(marks) == 1


def test_compacted_revision_is_gone(api: httpx.Client, control_plane: ControlPlane, namespace: str) -> None:
    base = f"/api/v1/namespaces/{namespace}/configmaps"
    old_rv = api.post(base, json=cm("c0")).json()["metadata"]["resourceVersion"]
    for i in range(1, 3):
        api.post(base, json=cm(f"c{i}"))
    first = api.get(f"{base}?limit=1").json()
    api.post(base, json=cm("c3"))  # so that compaction passes the token's revision
    control_plane.compact()
    # The watch cache still holds that history and replays it exactly...
    with api.stream("GET", f"{base}?watch=1&resourceVersion={old_rv}&timeoutSeconds=5&{MINE}") as r:
        ev = json.loads(next(line for line in r.iter_lines() if line))
    assert ev["type"] == "ADDED"
    # ...but a restarted apiserver's cache starts now, and etcd has compacted the rest.
    control_plane.stop("apiserver")
    control_plane.start_apiserver()
    control_plane.wait_ready()
    with api.stream("GET", f"{base}?watch=1&resourceVersion={old_rv}") as r:
        assert r.status_code == 200
        ev = json.loads(next(line for line in r.iter_lines() if line))
    assert ev["type"] == "ERROR"
    assert ev["object"]["code"] == 410 and ev["object"]["reason"] == "Expired"
    # a continue token from before the compaction is expired too
    r = api.get(f"{base}?limit=1&continue={first['metadata']['continue']}")
    assert r.status_code == 410 and r.json()["reason"] == "Expired"
    assert r.json()["message"].startswith("The provided continue parameter is too old")
    # so is an exact list at a compacted revision, with upstream's message for it
    r = api.get(f"{base}?resourceVersion={old_rv}&resourceVersionMatch=Exact")
    assert r.status_code == 410 and r.json()["reason"] == "Expired"
    assert r.json()["message"] == "The resourceVersion for the provided list is too old."


def test_a_named_get_with_watch_returns_the_object(api: httpx.Client, namespace: str) -> None:
    """Only lists become watches (upstream); kubectl get NAME --watch lists with a name selector."""
    base = f"/api/v1/namespaces/{namespace}/configmaps"
    assert api.post(base, json={"metadata": {"name": "one"}, "data": {"a": "b"}}).status_code == 201
    r = api.get(f"{base}/one", params={"watch": "true"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    assert r.json()["kind"] == "ConfigMap" and r.json()["data"] == {"a": "b"}
