"""RuntimeClass on a real node: the node's containerd has a handler per OCI runtime (crun, the
default where the cgroups allow it, and runc); a pod's RuntimeClass picks the handler its sandbox
and containers run with, and a class the kubelet cannot resolve keeps the pod from starting with
upstream's FailedCreatePodSandBox event."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from kubelet.cri import CRIClient, pb
from kubelet.cri.containerd import default_oci_runtime, runtime_handlers
from tests.conftest import wait_for
from tests.e2e.kubelet.conftest import create_pod, events_for, pod_manifest, running, wait_pod

pytestmark = pytest.mark.e2e

NODE_API = "/apis/node.k8s.io/v1"


async def _sandbox_info(endpoint: str, uid: str) -> dict[str, Any]:
    async with CRIClient(endpoint, timeout=30) as cri:
        sandboxes = await cri.list_pod_sandbox(pb.PodSandboxFilter(label_selector={"io.kubernetes.pod.uid": uid}))
        assert len(sandboxes) == 1, sandboxes
        status = await cri.pod_sandbox_status(sandboxes[0].id, verbose=True)
        return json.loads(status.info["info"])


@pytest.fixture
def classes(api: httpx.Client) -> Iterator[list[str]]:
    names: list[str] = []
    yield names
    for name in names:
        api.delete(f"{NODE_API}/runtimeclasses/{name}")


def make_class(api: httpx.Client, classes: list[str], handler: str) -> str:
    name = f"{handler}-{os.urandom(3).hex()}"
    r = api.post(f"{NODE_API}/runtimeclasses", json={"metadata": {"name": name}, "handler": handler})
    assert r.status_code == 201, r.text
    classes.append(name)
    return name


def test_runtime_class_picks_the_oci_runtime(api: httpx.Client, ns: str, containerd_node: Any,
                                             classes: list[str]) -> None:
    if "crun" not in runtime_handlers(containerd_node.paths):
        pytest.skip("crun cannot run containers on this host: the node has runc only")
    assert default_oci_runtime(containerd_node.paths) == "crun"
    runc_class = make_class(api, classes, "runc")
    plain = create_pod(api, ns, pod_manifest("plain", [{"name": "c", "command": ["sleep", "3600"]}]))
    with_runc = create_pod(api, ns, pod_manifest("with-runc", [{"name": "c", "command": ["sleep", "3600"]}],
                                                 runtimeClassName=runc_class))
    for pod in (plain, with_runc):
        wait_pod(api, ns, pod["metadata"]["name"], running, 60, "Running")
    default_info = asyncio.run(_sandbox_info(containerd_node.endpoint, plain["metadata"]["uid"]))
    runc_info = asyncio.run(_sandbox_info(containerd_node.endpoint, with_runc["metadata"]["uid"]))
    assert default_info["runtimeHandler"] in ("", "crun")
    assert default_info["runtimeOptions"]["binary_name"].endswith("/crun")
    assert runc_info["runtimeHandler"] == "runc"
    assert runc_info["runtimeOptions"]["binary_name"].endswith("/runc")


def test_unresolvable_runtime_class_keeps_the_pod_from_starting(api: httpx.Client, ns: str,
                                                               classes: list[str]) -> None:
    unknown_handler = make_class(api, classes, "nosuchruntime")
    create_pod(api, ns, pod_manifest("unknown-handler", [{"name": "c", "command": ["sleep", "3600"]}],
                                     runtimeClassName=unknown_handler))
    # a class deleted after the pod was admitted: the kubelet cannot find it
    gone = make_class(api, classes, "runc")
    create_pod(api, ns, pod_manifest("class-gone", [{"name": "c", "command": ["sleep", "3600"]}],
                                     runtimeClassName=gone))
    assert api.delete(f"{NODE_API}/runtimeclasses/{gone}").status_code == 200

    def failed(name: str) -> list[str]:
        return [e["message"] for e in events_for(api, ns, name) if e["reason"] == "FailedCreatePodSandBox"]

    wait_for(lambda: failed("unknown-handler"), 60, 0.2, "FailedCreatePodSandBox for the unknown handler")
    assert "nosuchruntime" in failed("unknown-handler")[0]
    wait_for(lambda: failed("class-gone"), 60, 0.2, "FailedCreatePodSandBox for the deleted class")
    assert failed("class-gone")[0] == f'Failed to create pod sandbox: runtimeclass.node.k8s.io "{gone}" not found'
    for name in ("unknown-handler", "class-gone"):
        pod = api.get(f"/api/v1/namespaces/{ns}/pods/{name}").json()
        assert pod["status"]["phase"] == "Pending"
        waiting = pod["status"]["containerStatuses"][0]["state"]["waiting"]
        assert waiting["reason"] == "ContainerCreating"
