"""client.APIClient / ResourceClient against a real apiserver: CRUD, typed errors, lists, watch."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from client import (
    APIClient,
    APIConnectionError,
    ApiError,
    from_kubeconfig,
    is_already_exists,
    is_conflict,
    is_invalid,
    is_not_found,
)
from tests.conftest import ControlPlane


def cm(name: str, v: str = "0", labels: dict | None = None) -> dict:
    meta: dict = {"name": name}
    if labels:
        meta["labels"] = labels
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"v": v}}


@pytest.fixture
async def kube(control_plane: ControlPlane) -> AsyncIterator[APIClient]:
    async with APIClient(from_kubeconfig(control_plane.kubeconfig, qps=0)) as api:
        yield api


async def test_version_and_discovery(kube: APIClient) -> None:
    v = await kube.version()
    assert v["major"] == "1"
    deploy = await kube.resource("apps/v1", "deployments").info()
    assert deploy.kind == "Deployment" and deploy.namespaced and "scale" in deploy.subresources
    assert (await kube.resource("v1", "nodes").info()).namespaced is False
    assert (await kube.resource_for_kind("v1", "Pod")).plural == "pods"
    with pytest.raises(ApiError) as e:
        await kube.resource("v1", "nosuchthings").get("x")
    assert is_not_found(e.value)


async def test_crud_roundtrip(kube: APIClient, namespace: str) -> None:
    cms = kube.resource("v1", "configmaps")
    created = await cms.create(cm("a", "1", {"app": "x"}), namespace)
    assert created["metadata"]["namespace"] == namespace and created["metadata"]["uid"]
    got = await cms.get("a", namespace)
    assert got["data"] == {"v": "1"} and got["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]

    got["data"]["v"] = "2"
    updated = await cms.update(got)
    assert updated["data"]["v"] == "2"
    assert int(updated["metadata"]["resourceVersion"]) > int(got["metadata"]["resourceVersion"])

    merged = await cms.patch("a", {"data": {"w": "3"}}, namespace)
    assert merged["data"] == {"v": "2", "w": "3"}
    strategic = await cms.patch("a", {"metadata": {"labels": {"tier": "fe"}}}, namespace, patch_type="strategic")
    assert strategic["metadata"]["labels"] == {"app": "x", "tier": "fe"}
    jp = await cms.patch("a", [{"op": "remove", "path": "/data/w"}], namespace, patch_type="json")
    assert jp["data"] == {"v": "2"}
    try:
        applied = await cms.patch(
            "a", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"v": "9"}}, namespace,
            patch_type="apply", field_manager="test-client", force=True,
        )
        assert applied["data"]["v"] == "9"
    except ApiError as e:  # server-side apply is not served yet: the request still has to be well-formed
        assert e.code == 415 and "apply-patch+yaml" in e.message

    st = await cms.delete("a", namespace)
    assert st.get("status") == "Success" or st.get("metadata", {}).get("name") == "a"
    with pytest.raises(ApiError) as e:
        await cms.get("a", namespace)
    assert is_not_found(e.value) and e.value.code == 404


async def test_cluster_scoped_and_status_subresource(kube: APIClient, namespace: str) -> None:
    nss = kube.resource("v1", "namespaces")
    ns = await nss.get(namespace)
    assert ns["metadata"]["name"] == namespace and "namespace" not in ns["metadata"]
    deployments = kube.resource("apps/v1", "deployments")
    d = await deployments.create({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "c", "image": "busybox"}]}}},
    }, namespace)
    d["status"] = {"observedGeneration": 1, "replicas": 0}
    d2 = await deployments.update_status(d)
    assert d2["status"]["observedGeneration"] == 1
    scale = await deployments.get_subresource("web", "scale", namespace)
    assert isinstance(scale, dict) and scale["kind"] == "Scale" and scale["spec"]["replicas"] == 2
    scale["spec"]["replicas"] = 3
    await deployments.update_subresource("web", "scale", scale, namespace)
    assert (await deployments.get("web", namespace))["spec"]["replicas"] == 3


async def test_binding_subresource(kube: APIClient, namespace: str) -> None:
    pods = kube.resource("v1", "pods")
    await pods.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                       "spec": {"containers": [{"name": "c", "image": "busybox"}]}}, namespace)
    await pods.create_subresource("p", "binding", {
        "apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"}, "target": {"kind": "Node", "name": "n1"},
    }, namespace)
    assert (await pods.get("p", namespace))["spec"]["nodeName"] == "n1"
    with pytest.raises(ApiError) as e:  # already bound
        await pods.create_subresource("p", "binding", {
            "apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"}, "target": {"name": "n2"},
        }, namespace)
    assert is_conflict(e.value)


async def test_typed_errors(kube: APIClient, namespace: str) -> None:
    cms = kube.resource("v1", "configmaps")
    first = await cms.create(cm("dup"), namespace)
    with pytest.raises(ApiError) as e:
        await cms.create(cm("dup"), namespace)
    assert e.value.code == 409 and is_already_exists(e.value) and not is_conflict(e.value)
    assert e.value.reason == "AlreadyExists" and "dup" in e.value.message

    await cms.update({**first, "data": {"v": "new"}})
    with pytest.raises(ApiError) as e:  # stale resourceVersion
        await cms.update({**first, "data": {"v": "stale"}})
    assert is_conflict(e.value) and not is_already_exists(e.value)

    with pytest.raises(ApiError) as e:
        await cms.delete("dup", namespace, preconditions={"resourceVersion": first["metadata"]["resourceVersion"]})
    assert is_conflict(e.value)

    with pytest.raises(ApiError) as e:
        await cms.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "Bad_Name"}}, namespace)
    assert is_invalid(e.value) and e.value.code == 422

    with pytest.raises(ApiError) as e:
        await cms.list(namespace, label_selector="a in (b")
    assert e.value.code == 400


async def test_list_paging_and_selectors(kube: APIClient, namespace: str) -> None:
    cms = kube.resource("v1", "configmaps")
    ours = {"set": "paging"}  # other objects (e.g. kube-root-ca.crt) may live in the namespace too
    await asyncio.gather(*(cms.create(cm(f"p{i:02d}", labels={**ours, "odd": str(i % 2)}), namespace)
                           for i in range(25)))
    page = await cms.list(namespace, label_selector=ours, limit=10)
    assert len(page["items"]) == 10 and page["metadata"]["continue"]
    everything = await cms.list_all(namespace, label_selector=ours, page_size=7)
    names = [o["metadata"]["name"] for o in everything["items"]]
    assert names == sorted(f"p{i:02d}" for i in range(25))
    assert not everything["metadata"].get("continue")
    odd = await cms.list_all(namespace, label_selector={"odd": "1"}, page_size=5)
    assert len(odd["items"]) == 12
    by_name = await cms.list(namespace, field_selector="metadata.name=p03")
    assert [o["metadata"]["name"] for o in by_name["items"]] == ["p03"]
    await cms.delete_collection(namespace, label_selector="odd=1")
    assert len((await cms.list(namespace, label_selector=ours))["items"]) == 13


async def test_watch_events_in_order(kube: APIClient, namespace: str) -> None:
    cms = kube.resource("v1", "configmaps")
    rv = (await cms.list(namespace))["metadata"]["resourceVersion"]
    seen: list[tuple[str, str]] = []

    async def consume() -> None:
        # by name: other objects (kube-root-ca.crt) may appear in a fresh namespace at any time
        watch = cms.watch(namespace, resource_version=rv, timeout_seconds=30, name="w")
        async with contextlib.aclosing(watch) as events:
            async for ev in events:
                if ev["type"] == "BOOKMARK":
                    continue
                seen.append((ev["type"], ev["object"]["metadata"]["name"]))
                if len(seen) == 3:
                    return

    task = asyncio.create_task(consume())
    await cms.create(cm("w"), namespace)
    await cms.patch("w", {"data": {"v": "1"}}, namespace)
    await cms.delete("w", namespace)
    await asyncio.wait_for(task, 20)
    assert seen == [("ADDED", "w"), ("MODIFIED", "w"), ("DELETED", "w")]


async def test_connection_refused_is_retried_then_raised(control_plane: ControlPlane) -> None:
    from minictl.components import free_port

    cfg = from_kubeconfig(control_plane.kubeconfig, qps=0, max_retries=2)
    cfg = cfg.replace(server=f"https://127.0.0.1:{free_port()}")
    async with APIClient(cfg) as api:
        with pytest.raises(APIConnectionError):
            await api.request("POST", "/api/v1/namespaces/default/configmaps", body=cm("never"))
