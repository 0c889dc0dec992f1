"""The namespace controller over a fake API: emptying by discovery, finalizers, conditions, finalize."""

from __future__ import annotations

import pytest

from client import ApiError, ResourceInfo
from controller_manager.namespace import ContentRemaining, NamespaceController
from tests.unit.cm_fakes import ALL_VERBS, FakeAPI, default_served, make_context

NS = "doomed"


def conditions(api: FakeAPI) -> dict[str, dict]:
    ns = api.get_obj("v1", "namespaces", None, NS)
    return {c["type"]: c for c in (ns.get("status") or {}).get("conditions") or []}


async def setup(served: list[ResourceInfo] | None = None):
    api = FakeAPI(served=served)
    c = NamespaceController(make_context(api))
    api.seed("v1", "namespaces", {"metadata": {"name": NS}, "spec": {"finalizers": ["kubernetes"]},
                                  "status": {"phase": "Active"}})
    api.seed("v1", "namespaces", {"metadata": {"name": "other"}, "spec": {"finalizers": ["kubernetes"]}})
    return api, c


async def test_deletes_every_served_namespaced_resource_then_finalizes() -> None:
    widget = ResourceInfo("example.io/v1", "widgets", "Widget", True, ALL_VERBS)
    api, c = await setup([*default_served(), widget])
    api.seed("v1", "configmaps", {"metadata": {"name": "cm", "namespace": NS}})
    api.seed("v1", "pods", {"metadata": {"name": "p", "namespace": NS}, "spec": {}})
    api.seed("apps/v1", "deployments", {"metadata": {"name": "d", "namespace": NS}})
    api.seed("example.io/v1", "widgets", {"metadata": {"name": "w", "namespace": NS}})  # found only via discovery
    api.seed("v1", "configmaps", {"metadata": {"name": "keep", "namespace": "other"}})
    await api.resource("v1", "namespaces").delete(NS)
    await c.sync(NS)
    assert api.get_obj("v1", "namespaces", None, NS) is None  # finalized, then removed
    for av, plural in (("v1", "configmaps"), ("v1", "pods"), ("apps/v1", "deployments"), ("example.io/v1", "widgets")):
        assert [o for o in api.objects_of(av, plural) if o["metadata"]["namespace"] == NS] == []
    assert api.get_obj("v1", "configmaps", "other", "keep") is not None
    deletes = {a[1] for a in api.writes("deletecollection")}
    assert {"configmaps", "pods", "deployments", "widgets", "secrets"} <= deletes
    assert all(a[4]["propagationPolicy"] == "Background" for a in api.writes("deletecollection"))
    (finalize,) = api.writes("update_subresource", "namespaces")
    assert finalize[4] == "finalize" and finalize[5]["spec"]["finalizers"] == []


async def test_objects_held_by_finalizers_keep_the_namespace_terminating() -> None:
    api, c = await setup()
    api.seed("v1", "configmaps", {"metadata": {"name": "held", "namespace": NS, "finalizers": ["example.io/hold"]}})
    await api.resource("v1", "namespaces").delete(NS)
    with pytest.raises(ContentRemaining) as e:
        await c.delete_namespace(NS)
    assert e.value.estimate == 15
    ns = api.get_obj("v1", "namespaces", None, NS)
    assert ns["status"]["phase"] == "Terminating" and ns["spec"]["finalizers"] == ["kubernetes"]
    conds = conditions(api)
    assert conds["NamespaceContentRemaining"]["status"] == "True"
    assert conds["NamespaceContentRemaining"]["message"] == "Some resources are remaining: configmaps. has 1 resource instances"
    assert conds["NamespaceFinalizersRemaining"]["message"] == "Some finalizers are remaining: example.io/hold in 1 resource instances"
    assert conds["NamespaceDeletionDiscoveryFailure"] == {
        "type": "NamespaceDeletionDiscoveryFailure", "status": "False", "reason": "ResourcesDiscovered",
        "message": "All resources successfully discovered",
        "lastTransitionTime": conds["NamespaceDeletionDiscoveryFailure"]["lastTransitionTime"]}
    # the finalizer goes: the next pass finishes the job, conditions turn to "all removed"
    held = api.get_obj("v1", "configmaps", NS, "held")
    await api.resource("v1", "configmaps").patch("held", {"metadata": {"finalizers": None}}, NS)
    assert held is not None and api.get_obj("v1", "configmaps", NS, "held") is None
    await c.delete_namespace(NS)
    assert api.get_obj("v1", "namespaces", None, NS) is None


async def test_resources_without_deletecollection_are_deleted_one_by_one() -> None:
    served = [r if r.plural != "configmaps" else ResourceInfo("v1", "configmaps", "ConfigMap", True,
                                                              ("get", "list", "delete", "create"))
              for r in default_served()]
    api, c = await setup(served)
    for i in range(3):
        api.seed("v1", "configmaps", {"metadata": {"name": f"cm{i}", "namespace": NS}})
    await api.resource("v1", "namespaces").delete(NS)
    await c.sync(NS)
    assert [a[3] for a in api.writes("delete", "configmaps")] == ["cm0", "cm1", "cm2"]
    assert not api.writes("deletecollection", "configmaps")
    assert api.get_obj("v1", "namespaces", None, NS) is None


async def test_delete_failure_is_reported_in_conditions_and_retried() -> None:
    api, c = await setup()
    api.seed("v1", "secrets", {"metadata": {"name": "s", "namespace": NS}})
    api.errors[("deletecollection", "secrets")] = ApiError(500, "InternalError", "etcd is sad")
    await api.resource("v1", "namespaces").delete(NS)
    with pytest.raises(RuntimeError, match="etcd is sad"):
        await c.delete_namespace(NS)
    cond = conditions(api)["NamespaceDeletionContentFailure"]
    assert cond["status"] == "True" and cond["reason"] == "ContentDeletionFailed"
    assert cond["message"].startswith("Failed to delete all resource types, 1 remaining: ")
    assert api.get_obj("v1", "namespaces", None, NS) is not None
    await c.delete_namespace(NS)  # the error is gone: done
    assert api.get_obj("v1", "namespaces", None, NS) is None


async def test_pods_in_their_grace_period_give_an_estimate() -> None:
    api, c = await setup()
    api.seed("v1", "pods", {"metadata": {"name": "p", "namespace": NS, "finalizers": ["x"]},
                            "spec": {"terminationGracePeriodSeconds": 30}, "status": {"phase": "Running"}})
    await api.resource("v1", "namespaces").delete(NS)
    with pytest.raises(ContentRemaining) as e:
        await c.delete_namespace(NS)
    assert e.value.estimate == 30
    c.clock.step(31)  # the namespace was deleted longer ago than any grace period: finalizer estimate
    with pytest.raises(ContentRemaining) as e:
        await c.delete_namespace(NS)
    assert e.value.estimate == 15


async def test_namespaces_not_being_deleted_are_untouched() -> None:
    api, c = await setup()
    api.seed("v1", "configmaps", {"metadata": {"name": "cm", "namespace": NS}})
    await c.sync(NS)
    await c.sync("missing")
    assert api.writes() == []


async def test_discovery_failure_sets_its_condition() -> None:
    api, c = await setup()
    real = api.request

    async def broken(method, path, params=None, body=None):
        if path == "/apis/apps/v1":
            raise ApiError(503, "ServiceUnavailable", "apps is down")
        return await real(method, path, params, body)

    api.request = broken  # type: ignore[method-assign]
    await api.resource("v1", "namespaces").delete(NS)
    with pytest.raises(RuntimeError, match="discovery failed"):
        await c.delete_namespace(NS)
    cond = conditions(api)["NamespaceDeletionDiscoveryFailure"]
    assert cond["status"] == "True" and cond["reason"] == "DiscoveryFailed" and "apps/v1" in cond["message"]
