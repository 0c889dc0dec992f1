"""API Priority and Fairness against the real apiserver: the flowcontrol.apiserver.k8s.io/v1 API, the
configuration the apiserver keeps, classification headers, the Dangling condition, and a low-limit
apiserver that really queues and answers 429."""

from __future__ import annotations

import asyncio
import json
import re

import httpx
import pytest
from kubernetes import client, config

from apimachinery import protobuf as pbuf
from tests.conftest import ControlPlane, private_control_plane, wait_for

GROUP = "flowcontrol.apiserver.k8s.io"
BASE = f"/apis/{GROUP}/v1"
FS_COUNT, PL_COUNT = 13, 8  # upstream's mandatory and suggested objects


def names(api: httpx.Client, plural: str) -> list[str]:
    r = api.get(f"{BASE}/{plural}")
    assert r.status_code == 200, r.text
    return [i["metadata"]["name"] for i in r.json()["items"]]


def shipped_config(api: httpx.Client) -> None:
    wait_for(lambda: len(names(api, "flowschemas")) >= FS_COUNT and len(names(api, "prioritylevelconfigurations"))
             >= PL_COUNT, 20, what="the APF configuration objects")


def uid(api: httpx.Client, plural: str, name: str) -> str:
    return api.get(f"{BASE}/{plural}/{name}").json()["metadata"]["uid"]


def condition(api: httpx.Client, name: str) -> dict:
    r = api.get(f"{BASE}/flowschemas/{name}")
    return next((c for c in r.json().get("status", {}).get("conditions") or [] if c["type"] == "Dangling"), {})


def test_the_apiserver_keeps_upstreams_configuration(control_plane: ControlPlane, api: httpx.Client) -> None:
    shipped_config(api)
    out = control_plane.kubectl("get", "flowschemas").stdout.splitlines()
    assert out[0].split() == ["NAME", "PRIORITYLEVEL", "MATCHINGPRECEDENCE", "DISTINGUISHERMETHOD", "AGE",
                              "MISSINGPL"]
    rows = [line.split() for line in out[1:]]
    assert [r[0] for r in rows][:3] == ["exempt", "probes", "system-leader-election"]  # in matching order
    assert rows[-1][:4] == ["catch-all", "catch-all", "10000", "ByUser"]
    wait_for(lambda: all(line.split()[-1] == "False"
                         for line in control_plane.kubectl("get", "flowschemas").stdout.splitlines()[1:]),
             15, what="every shipped FlowSchema's Dangling condition")
    out = control_plane.kubectl("get", "prioritylevelconfigurations").stdout.splitlines()
    assert out[0].split() == ["NAME", "TYPE", "NOMINALCONCURRENCYSHARES", "QUEUES", "HANDSIZE", "QUEUELENGTHLIMIT",
                              "AGE"]
    rows = {line.split()[0]: line.split()[1:6] for line in out[1:]}
    assert rows["exempt"] == ["Exempt", "<none>", "<none>", "<none>", "<none>"]
    assert rows["catch-all"] == ["Limited", "5", "<none>", "<none>", "<none>"]
    assert rows["workload-low"] == ["Limited", "100", "128", "6", "50"]
    cond = condition(api, "global-default")
    assert (cond["status"], cond["reason"], cond["message"]) == (
        "False", "Found",
        'This FlowSchema references the PriorityLevelConfiguration object named "global-default" and it exists')
    pl = api.get(f"{BASE}/prioritylevelconfigurations/global-default").json()
    assert pl["metadata"]["annotations"] == {"apf.kubernetes.io/autoupdate-spec": "true"}
    assert pl["spec"]["limited"] == {"nominalConcurrencyShares": 20, "lendablePercent": 50, "limitResponse": {
        "type": "Queue", "queuing": {"queues": 128, "handSize": 6, "queueLengthLimit": 50}}}


def test_discovery_explain_and_the_python_client(control_plane: ControlPlane, api: httpx.Client) -> None:
    shipped_config(api)
    resources = {r["name"]: r for r in api.get(BASE).json()["resources"]}
    assert set(resources) == {"flowschemas", "flowschemas/status", "prioritylevelconfigurations",
                              "prioritylevelconfigurations/status"}
    assert resources["flowschemas"]["namespaced"] is False
    assert "flowschemas" in control_plane.kubectl("api-resources", "--api-group", GROUP).stdout
    explain = control_plane.kubectl("explain", "flowschema.spec").stdout
    assert "matchingPrecedence" in explain and "distinguisherMethod" in explain
    k8s = config.new_client_from_config(config_file=str(control_plane.kubeconfig))
    fc = client.FlowcontrolApiserverV1Api(k8s)
    assert "global-default" in [f.metadata.name for f in fc.list_flow_schema().items]
    pl = fc.read_priority_level_configuration("workload-high")
    assert pl.spec.limited.nominal_concurrency_shares == 40 and pl.spec.limited.limit_response.queuing.queues == 128
    # protobuf, as client-go's typed clients ask for it
    r = api.get(f"{BASE}/flowschemas/exempt", headers={"Accept": pbuf.CONTENT_TYPE})
    assert r.headers["content-type"] == pbuf.CONTENT_TYPE
    assert pbuf.decode(r.content)["spec"]["matchingPrecedence"] == 1


def test_responses_name_the_flow_schema_and_priority_level(api: httpx.Client) -> None:
    shipped_config(api)
    fs, pl = uid(api, "flowschemas", "exempt"), uid(api, "prioritylevelconfigurations", "exempt")
    wait_for(lambda: api.get("/api/v1/namespaces").headers.get("X-Kubernetes-PF-FlowSchema-UID") == fs, 10,
             what="the exempt FlowSchema's UID on responses")
    for path in ("/api/v1/namespaces", "/version", "/apis", "/api/v1/namespaces/default/pods/missing"):
        r = api.get(path)
        assert (r.headers["X-Kubernetes-PF-FlowSchema-UID"], r.headers["X-Kubernetes-PF-PriorityLevel-UID"]) == \
            (fs, pl), path
    # impersonation happens first: the request is classified as the user it acts as
    fs = uid(api, "flowschemas", "global-default")
    r = api.get("/api/v1/namespaces", headers={"Impersonate-User": "someone"})
    assert r.status_code == 403
    assert r.headers["X-Kubernetes-PF-FlowSchema-UID"] == fs
    text = api.get("/metrics").text
    assert re.search(r'apiserver_flowcontrol_dispatched_requests_total\{priority_level="global-default",'
                     r'flow_schema="global-default"\} [1-9]', text)
    assert 'apiserver_flowcontrol_nominal_limit_seats{priority_level="global-default"} 49' in text


def test_validation(control_plane: ControlPlane, api: httpx.Client) -> None:
    bad = {"apiVersion": f"{GROUP}/v1", "kind": "FlowSchema", "metadata": {"name": "bad"},
           "spec": {"priorityLevelConfiguration": {"name": ""}, "matchingPrecedence": 20000,
                    "rules": [{"subjects": [{"kind": "User"}],
                               "nonResourceRules": [{"verbs": ["get"], "nonResourceURLs": ["/a*"]}]}]}}
    r = api.post(f"{BASE}/flowschemas", json=bad)
    assert r.status_code == 422, r.text
    assert r.json()["reason"] == "Invalid"
    assert [(c["field"], c["message"]) for c in r.json()["details"]["causes"]] == [
        ("spec.matchingPrecedence", "Invalid value: 20000: must not be greater than 10000"),
        ("spec.priorityLevelConfiguration.name", "Required value: must reference a priority level"),
        ("spec.rules[0].subjects[0].user", "Required value: user is required when subject kind is 'User'"),
        ("spec.rules[0].nonResourceRules[0].nonResourceURLs[0]",
         'Invalid value: "/a*": wildcard can only do suffix matching')]
    shipped_config(api)
    r = api.patch(f"{BASE}/prioritylevelconfigurations/catch-all",
                  json={"spec": {"limited": {"nominalConcurrencyShares": 50}}},
                  headers={"Content-Type": "application/merge-patch+json"})
    assert r.status_code == 422 and "spec of 'catch-all' must equal the fixed value" in r.text
    out = control_plane.kubectl("apply", "-f", "-", check=False, input=json.dumps(
        {"apiVersion": f"{GROUP}/v1", "kind": "PriorityLevelConfiguration", "metadata": {"name": "bad"},
         "spec": {"type": "Limited", "limited": {"limitResponse": {"type": "Queue", "queuing": {
             "queues": 4, "handSize": 5}}}}}))
    assert out.returncode != 0
    assert "spec.limited.limitResponse.queuing.handSize: Invalid value: 5: should not be greater than queues (4)" \
        in out.stderr


def test_dangling_condition_follows_the_priority_level(control_plane: ControlPlane, api: httpx.Client) -> None:
    fs = {"apiVersion": f"{GROUP}/v1", "kind": "FlowSchema", "metadata": {"name": "orphan"},
          "spec": {"priorityLevelConfiguration": {"name": "not-yet"},
                   "rules": [{"subjects": [{"kind": "User", "user": {"name": "nobody"}}],
                              "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}]}]}}
    r = api.post(f"{BASE}/flowschemas", json=fs)
    assert r.status_code == 201, r.text
    assert r.json()["spec"]["matchingPrecedence"] == 1000
    try:
        cond = wait_for(lambda: condition(api, "orphan").get("status") == "True" and condition(api, "orphan"), 10,
                        what="Dangling True")
        assert (cond["reason"], cond["message"]) == (
            "NotFound",
            'This FlowSchema references the PriorityLevelConfiguration object named "not-yet" but there is no such '
            "object")
        row = control_plane.kubectl("get", "flowschema", "orphan", "--no-headers").stdout.split()
        assert row[:4] == ["orphan", "not-yet", "1000", "<none>"] and row[-1] == "True"
        r = api.post(f"{BASE}/prioritylevelconfigurations", json={
            "apiVersion": f"{GROUP}/v1", "kind": "PriorityLevelConfiguration", "metadata": {"name": "not-yet"},
            "spec": {"type": "Limited", "limited": {"limitResponse": {"type": "Reject"}}}})
        assert r.status_code == 201, r.text
        assert r.json()["spec"]["limited"] == {"nominalConcurrencyShares": 30, "lendablePercent": 0,
                                               "limitResponse": {"type": "Reject"}}
        wait_for(lambda: condition(api, "orphan").get("reason") == "Found", 10, what="Dangling False")
    finally:
        api.delete(f"{BASE}/flowschemas/orphan")
        api.delete(f"{BASE}/prioritylevelconfigurations/not-yet")


def test_mandatory_and_suggested_objects_come_back(api: httpx.Client) -> None:
    shipped_config(api)
    old = uid(api, "prioritylevelconfigurations", "catch-all")
    assert api.delete(f"{BASE}/prioritylevelconfigurations/catch-all").status_code == 200
    wait_for(lambda: api.get(f"{BASE}/prioritylevelconfigurations/catch-all").status_code == 200 and
             uid(api, "prioritylevelconfigurations", "catch-all") != old, 15, what="catch-all made again")
    assert api.delete(f"{BASE}/flowschemas/probes").status_code == 200
    wait_for(lambda: api.get(f"{BASE}/flowschemas/probes").status_code == 200, 15, what="probes made again")
    # a suggested object is put back while its annotation says so...
    merge = {"Content-Type": "application/merge-patch+json"}
    r = api.patch(f"{BASE}/prioritylevelconfigurations/workload-low",
                  json={"spec": {"limited": {"nominalConcurrencyShares": 7}}}, headers=merge)
    assert r.status_code == 200
    wait_for(lambda: api.get(f"{BASE}/prioritylevelconfigurations/workload-low").json()["spec"]["limited"]
             ["nominalConcurrencyShares"] == 100, 15, what="workload-low put back")
    # ...and left alone once it says "false"
    r = api.patch(f"{BASE}/prioritylevelconfigurations/global-default", headers=merge, json={
        "metadata": {"annotations": {"apf.kubernetes.io/autoupdate-spec": "false"}},
        "spec": {"limited": {"nominalConcurrencyShares": 21}}})
    assert r.status_code == 200
    # an object the apiserver once shipped (annotation "true") but no longer does is deleted
    r = api.post(f"{BASE}/prioritylevelconfigurations", json={
        "apiVersion": f"{GROUP}/v1", "kind": "PriorityLevelConfiguration",
        "metadata": {"name": "retired", "annotations": {"apf.kubernetes.io/autoupdate-spec": "true"}},
        "spec": {"type": "Limited", "limited": {"limitResponse": {"type": "Reject"}}}})
    assert r.status_code == 201
    wait_for(lambda: api.get(f"{BASE}/prioritylevelconfigurations/retired").status_code == 404, 15,
             what="the retired object deleted")
    assert api.get(f"{BASE}/prioritylevelconfigurations/global-default").json()["spec"]["limited"][
        "nominalConcurrencyShares"] == 21
    api.patch(f"{BASE}/prioritylevelconfigurations/global-default", headers=merge,
              json={"metadata": {"annotations": {"apf.kubernetes.io/autoupdate-spec": "true"}}})
    wait_for(lambda: api.get(f"{BASE}/prioritylevelconfigurations/global-default").json()["spec"]["limited"]
             ["nominalConcurrencyShares"] == 20, 15, what="global-default put back")


# -- a low-limit apiserver ------------------------------------------------------------------------

TINY_FS = {"apiVersion": f"{GROUP}/v1", "kind": "FlowSchema", "metadata": {"name": "tiny"},
           "spec": {"priorityLevelConfiguration": {"name": "tiny"}, "matchingPrecedence": 100,
                    "distinguisherMethod": {"type": "ByUser"},
                    "rules": [{"subjects": [{"kind": "Group", "group": {"name": "dev"}}],
                               "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"],
                                                  "clusterScope": True, "namespaces": ["*"]}]}]}}


def as_dev(user: str) -> dict[str, str]:
    return {"Impersonate-User": user, "Impersonate-Group": "dev"}


def tiny_level(queuing: dict | None) -> dict:
    response = {"type": "Queue", "queuing": queuing} if queuing else {"type": "Reject"}
    return {"apiVersion": f"{GROUP}/v1", "kind": "PriorityLevelConfiguration", "metadata": {"name": "tiny"},
            "spec": {"type": "Limited", "limited": {"nominalConcurrencyShares": 1, "limitResponse": response}}}


def level_metric(text: str, name: str, level: str = "tiny", extra: str = "") -> float:
    """The sum of a metric's series of one priority level (and `extra` labels)."""
    start = f'{name}{{priority_level="{level}"'
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(start) and extra in line)


async def until_metric(api: httpx.AsyncClient, name: str, value: float) -> None:
    for _ in range(400):  # 10 s at most
        if level_metric((await api.get("/metrics")).text, name) == value:
            return
        await asyncio.sleep(0.025)
    raise AssertionError(f"{name} of level tiny never reached {value}")


@pytest.fixture(scope="module")
def low_limit() -> ControlPlane:
    with private_control_plane("mk8s-apf-", extra_apiserver_args=[
            "--max-requests-inflight", "2", "--max-mutating-requests-inflight", "1"]) as cp:
        with cp.client() as api:
            shipped_config(api)
            r = api.post("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", json={
                "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                "metadata": {"name": "dev-admin"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
                "subjects": [{"kind": "Group", "name": "dev", "apiGroup": "rbac.authorization.k8s.io"}]})
            assert r.status_code == 201, r.text
            assert api.post(f"{BASE}/flowschemas", json=TINY_FS).status_code == 201
        yield cp


def use_tiny(api: httpx.Client, queuing: dict | None) -> None:
    r = api.get(f"{BASE}/prioritylevelconfigurations/tiny")
    if r.status_code == 200:
        body = {**tiny_level(queuing), "metadata": r.json()["metadata"]}
        assert api.put(f"{BASE}/prioritylevelconfigurations/tiny", json=body).status_code == 200
    else:
        assert api.post(f"{BASE}/prioritylevelconfigurations", json=tiny_level(queuing)).status_code == 201
    fs, pl = uid(api, "flowschemas", "tiny"), uid(api, "prioritylevelconfigurations", "tiny")
    wait_for(lambda: api.get("/api/v1/namespaces/default", headers=as_dev("probe")).headers.get(
        "X-Kubernetes-PF-PriorityLevel-UID") == pl, 10, what="requests of group dev at level tiny")
    assert api.get("/api/v1/namespaces/default", headers=as_dev("probe")).headers[
        "X-Kubernetes-PF-FlowSchema-UID"] == fs
    # its share of the 3 seats: ceil(3 × 1 / (245 + 1)) = 1
    assert level_metric(api.get("/metrics").text, "apiserver_flowcontrol_nominal_limit_seats") == 1


class SlowBody:
    """A create whose body arrives when we say so: it holds its seat until then."""

    def __init__(self, cp: ControlPlane, user: str, name: str) -> None:
        self.release = asyncio.Event()
        body = json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}}).encode()

        async def content():
            await self.release.wait()
            yield body

        self.client = cp.async_client(timeout=30)
        self.task = asyncio.create_task(self.client.post(
            "/api/v1/namespaces/default/configmaps", content=content(),
            headers={**as_dev(user), "Content-Type": "application/json"}))

    async def done(self) -> httpx.Response:
        self.release.set()
        try:
            return await asyncio.wait_for(self.task, 20)
        finally:
            await self.client.aclose()


async def test_a_reject_level_answers_429_to_a_burst(low_limit: ControlPlane) -> None:
    with low_limit.client() as api:
        use_tiny(api, None)
    async with low_limit.async_client() as api:
        holder = SlowBody(low_limit, "alice", "held-1")
        await until_metric(api, "apiserver_flowcontrol_current_executing_requests", 1)  # its one seat is taken
        burst = await asyncio.gather(*(api.get("/api/v1/namespaces/default/configmaps",
                                               headers=as_dev(f"user-{i % 4}")) for i in range(20)))
        assert [r.status_code for r in burst] == [429] * 20
        r = burst[0]
        assert r.text == "Too many requests, please try again later.\n"
        assert r.headers["content-type"] == "text/plain; charset=utf-8"
        assert int(r.headers["retry-after"]) >= 1
        assert r.headers["X-Kubernetes-PF-PriorityLevel-UID"]
        admin = await api.get("/api/v1/namespaces/default/configmaps")  # exempt: never limited
        assert admin.status_code == 200
        created = await holder.done()
        assert created.status_code == 201, created.text
        assert (await api.get("/api/v1/namespaces/default/configmaps", headers=as_dev("bob"))).status_code == 200
        text = (await api.get("/metrics")).text
        assert level_metric(text, "apiserver_flowcontrol_rejected_requests_total", extra="concurrency-limit") >= 20


async def test_a_queuing_level_queues_then_rejects(low_limit: ControlPlane) -> None:
    with low_limit.client() as api:
        use_tiny(api, {"queues": 1, "handSize": 1, "queueLengthLimit": 2})
    async with low_limit.async_client() as api:
        holder = SlowBody(low_limit, "alice", "held-2")
        await until_metric(api, "apiserver_flowcontrol_current_executing_requests", 1)
        queued = [asyncio.create_task(api.get("/api/v1/namespaces/default", headers=as_dev(u)))
                  for u in ("bob", "carol")]
        await until_metric(api, "apiserver_flowcontrol_current_inqueue_requests", 2)
        r = await api.get("/api/v1/namespaces/default", headers=as_dev("dave"))
        assert r.status_code == 429  # the queue is full
        assert not any(t.done() for t in queued)
        assert (await holder.done()).status_code == 201
        assert [r.status_code for r in await asyncio.wait_for(asyncio.gather(*queued), 10)] == [200, 200]
        text = (await api.get("/metrics")).text
        assert level_metric(text, "apiserver_flowcontrol_rejected_requests_total", extra="queue-full") == 1


async def test_a_queued_request_is_dropped_when_its_client_goes_away(low_limit: ControlPlane) -> None:
    with low_limit.client() as api:
        use_tiny(api, {"queues": 1, "handSize": 1, "queueLengthLimit": 5})
    async with low_limit.async_client() as api:
        before = level_metric((await api.get("/metrics")).text, "apiserver_flowcontrol_rejected_requests_total",
                              extra='reason="cancelled"')
        holder = SlowBody(low_limit, "alice", "held-3")
        await until_metric(api, "apiserver_flowcontrol_current_executing_requests", 1)
        leaver = low_limit.async_client(timeout=30)
        create = asyncio.create_task(leaver.post("/api/v1/namespaces/default/configmaps", headers=as_dev("bob"), json={
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "never-made"}}))
        await until_metric(api, "apiserver_flowcontrol_current_inqueue_requests", 1)
        create.cancel()  # the client gives up: its connection closes
        with pytest.raises(asyncio.CancelledError):
            await create
        await leaver.aclose()
        await until_metric(api, "apiserver_flowcontrol_current_inqueue_requests", 0)  # left the queue at once
        text = (await api.get("/metrics")).text
        assert level_metric(text, "apiserver_flowcontrol_rejected_requests_total",
                            extra='reason="cancelled"') == before + 1
        assert (await holder.done()).status_code == 201
        # nothing of the dropped request ran once the seat was free again
        assert (await api.get("/api/v1/namespaces/default/configmaps/never-made")).status_code == 404
        # a queued create whose client stays: its body, read while it waited, is the one stored
        holder = SlowBody(low_limit, "alice", "held-4")
        await until_metric(api, "apiserver_flowcontrol_current_executing_requests", 1)
        stays = asyncio.create_task(api.post("/api/v1/namespaces/default/configmaps", headers=as_dev("carol"), json={
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "made-after"}, "data": {"k": "v"}}))
        await until_metric(api, "apiserver_flowcontrol_current_inqueue_requests", 1)
        assert (await holder.done()).status_code == 201
        created = await asyncio.wait_for(stays, 10)
        assert created.status_code == 201, created.text
        assert created.json()["data"] == {"k": "v"}
