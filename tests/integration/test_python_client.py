"""The official Python client (`kubernetes` from PyPI) against our apiserver."""

from __future__ import annotations

import threading

import pytest
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

from tests.conftest import ControlPlane, wait_for


@pytest.fixture(scope="module")
def k8s(control_plane: ControlPlane) -> client.ApiClient:
    return config.new_client_from_config(config_file=str(control_plane.kubeconfig))


def test_namespaces_configmaps_crud(k8s: client.ApiClient) -> None:
    core = client.CoreV1Api(k8s)
    ns = core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="pyclient")))
    assert ns.status.phase == "Active"
    assert "pyclient" in [n.metadata.name for n in core.list_namespace().items]

    cm = core.create_namespaced_config_map("pyclient", client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name="cfg", labels={"app": "x"}), data={"a": "1"}))
    assert cm.metadata.uid and cm.data == {"a": "1"}
    got = core.read_namespaced_config_map("cfg", "pyclient")
    assert got.metadata.resource_version == cm.metadata.resource_version

    listed = core.list_namespaced_config_map("pyclient", label_selector="app=x")
    assert [c.metadata.name for c in listed.items] == ["cfg"]

    patched = core.patch_namespaced_config_map("cfg", "pyclient", {"data": {"b": "2"}})
    assert patched.data == {"a": "1", "b": "2"}

    got.data = {"c": "3"}
    # `got` is stale now (the patch moved the resourceVersion on): 409
    with pytest.raises(ApiException) as e:
        core.replace_namespaced_config_map("cfg", "pyclient", got)
    assert e.value.status == 409
    patched.data = {"c": "3"}
    replaced = core.replace_namespaced_config_map("cfg", "pyclient", patched)
    assert replaced.data == {"c": "3"}

    status = core.delete_namespaced_config_map("cfg", "pyclient")  # client 37 returns deletes as dicts
    assert status["kind"] == "Status" and status["status"] == "Success"
    with pytest.raises(ApiException) as e:
        core.read_namespaced_config_map("cfg", "pyclient")
    assert e.value.status == 404

    deleted = core.delete_namespace("pyclient")
    assert deleted["status"]["phase"] == "Terminating"


def test_pods(k8s: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(k8s)
    pod = client.V1Pod(
        metadata=client.V1ObjectMeta(name="p1", labels={"run": "p1"}),
        spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="busybox:1.36",
                                                             command=["sleep", "3600"])]),
    )
    created = core.create_namespaced_pod(namespace, pod)
    assert created.status.phase == "Pending" and created.spec.service_account_name == "default"
    assert created.spec.containers[0].image_pull_policy == "IfNotPresent"
    pods = core.list_namespaced_pod(namespace, field_selector="status.phase=Pending")
    assert [p.metadata.name for p in pods.items] == ["p1"]
    patched = core.patch_namespaced_pod("p1", namespace, {"metadata": {"annotations": {"k": "v"}}})
    assert patched.metadata.annotations == {"k": "v"}
    gone = core.delete_namespaced_pod("p1", namespace)
    assert gone.metadata.name == "p1"  # pods answer DELETE with the pod (a V1Pod here)


def test_deployments(k8s: client.ApiClient, namespace: str) -> None:
    apps = client.AppsV1Api(k8s)
    dep = client.V1Deployment(
        metadata=client.V1ObjectMeta(name="web"),
        spec=client.V1DeploymentSpec(
            replicas=2,
            selector=client.V1LabelSelector(match_labels={"app": "web"}),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels={"app": "web"}),
                spec=client.V1PodSpec(containers=[client.V1Container(name="web", image="nginx:1.27")]),
            ),
        ),
    )
    created = apps.create_namespaced_deployment(namespace, dep)
    assert created.metadata.generation == 1 and created.spec.strategy.type == "RollingUpdate"
    scaled = apps.patch_namespaced_deployment_scale(namespace=namespace, name="web", body={"spec": {"replicas": 4}})
    assert scaled.spec.replicas == 4
    got = apps.read_namespaced_deployment("web", namespace)
    assert got.spec.replicas == 4 and got.metadata.generation == 2
    got.spec.template.spec.containers[0].image = "nginx:1.28"
    replaced = apps.replace_namespaced_deployment("web", namespace, got)
    assert replaced.metadata.generation == 3
    assert [d.metadata.name for d in apps.list_namespaced_deployment(namespace).items] == ["web"]
    apps.delete_namespaced_deployment("web", namespace)
    with pytest.raises(ApiException) as e:
        apps.read_namespaced_deployment("web", namespace)
    assert e.value.status == 404


def test_watch_sees_changes(k8s: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(k8s)
    rv = core.list_namespaced_config_map(namespace).metadata.resource_version
    seen: list[tuple[str, str]] = []
    mine = "w=1"  # the cluster publishes its own configmap (kube-root-ca.crt) in each namespace
    w = watch.Watch()

    def consume() -> None:
        for ev in w.stream(core.list_namespaced_config_map, namespace, resource_version=rv, timeout_seconds=30,
                           label_selector=mine):
            seen.append((ev["type"], ev["object"].metadata.name))
            if len(seen) == 3:
                w.stop()

    t = threading.Thread(target=consume)
    t.start()
    core.create_namespaced_config_map(namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="w1", labels={"w": "1"})))
    core.patch_namespaced_config_map("w1", namespace, {"data": {"x": "y"}})
    core.delete_namespaced_config_map("w1", namespace)
    t.join(30)
    assert seen == [("ADDED", "w1"), ("MODIFIED", "w1"), ("DELETED", "w1")]


def test_watch_compacted_revision_is_410(k8s: client.ApiClient, control_plane: ControlPlane, namespace: str) -> None:
    core = client.CoreV1Api(k8s)
    old = core.create_namespaced_config_map(namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="c0")))
    for name in ("c1", "c2"):  # compaction must pass old+1, the first revision the watch needs
        core.create_namespaced_config_map(namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name)))
    control_plane.compact()
    # a fresh apiserver's watch cache starts after the compaction: the old revision is gone everywhere
    control_plane.stop("apiserver")
    control_plane.start_apiserver()
    control_plane.wait_ready()
    w = watch.Watch()
    with pytest.raises(ApiException) as e:
        for _ in w.stream(core.list_namespaced_config_map, namespace,
                          resource_version=old.metadata.resource_version, timeout_seconds=10):
            pass
    assert e.value.status == 410, (e.value.status, e.value.reason, e.value.body)
    wait_for(lambda: core.list_namespaced_config_map(namespace).items, what="apiserver serving again")
