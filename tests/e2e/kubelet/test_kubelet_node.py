"""The node side: registration, lease heartbeat, CNI config and filter rules, the kubelet's HTTPS
API (authn/authz, /stats/summary), static pods with mirror pods, and node-pressure eviction."""

from __future__ import annotations

import json
import ssl
import subprocess

import httpx
import pytest
import yaml

from apimachinery.meta import parse_time
from certs import issue_client_cert
from kubelet import network
from tests.conftest import KUBECTL, wait_for
from tests.e2e.kubelet.conftest import (
    BUSYBOX,
    NODE,
    condition,
    create_pod,
    get_pod,
    pod_manifest,
    running,
    wait_pod,
)

pytestmark = pytest.mark.e2e


def test_node_is_registered_with_capacity_info_and_conditions(api, kubelet):
    node = api.get(f"/api/v1/nodes/{NODE}").json()
    status = node["status"]
    for resource in ("cpu", "memory", "pods", "ephemeral-storage"):
        assert resource in status["capacity"] and resource in status["allocatable"]
    assert status["capacity"]["pods"] == "110"
    assert {"type": "InternalIP", "address": "127.0.0.1"} in status["addresses"]
    assert {"type": "Hostname", "address": NODE} in status["addresses"]
    info = status["nodeInfo"]
    assert info["containerRuntimeVersion"].startswith("containerd://")
    assert info["kubeletVersion"].startswith("v1.")
    assert info["operatingSystem"] == "linux" and info["bootID"] and info["kernelVersion"]
    assert status["daemonEndpoints"]["kubeletEndpoint"]["Port"] == kubelet.port
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Ready"]["status"] == "True" and conditions["Ready"]["reason"] == "KubeletReady"
    for ctype in ("MemoryPressure", "DiskPressure", "PIDPressure"):
        assert conditions[ctype]["status"] == "False"
    assert node["metadata"]["labels"]["kubernetes.io/hostname"] == NODE
    names = {name for image in status["images"] for name in image["names"]}
    assert {"localhost/minik8s/pause:3.9", BUSYBOX} <= names


def test_lease_is_renewed(api, kubelet):
    def renew_time() -> float:
        lease = api.get(f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{NODE}").json()
        assert lease["spec"]["holderIdentity"] == NODE
        assert lease["spec"]["leaseDurationSeconds"] == 40
        assert lease["metadata"]["ownerReferences"][0]["kind"] == "Node"
        return parse_time(lease["spec"]["renewTime"]).timestamp()

    first = wait_for(lambda: renew_time(), 20, 0.5, "the node lease")
    wait_for(lambda: renew_time() > first, 15, 0.5, "a lease renewal")


def test_csinode_is_published(api, kubelet):
    node = api.get(f"/api/v1/nodes/{NODE}").json()
    path = f"/apis/storage.k8s.io/v1/csinodes/{NODE}"

    def published() -> dict | None:
        r = api.get(path)
        return r.json() if r.status_code == 200 else None

    csinode = wait_for(published, 20, 0.2, "the node's CSINode")
    owner = {"apiVersion": "v1", "kind": "Node", "name": NODE, "uid": node["metadata"]["uid"]}
    assert csinode["metadata"]["ownerReferences"] == [owner]
    assert csinode["metadata"]["annotations"]["storage.alpha.kubernetes.io/migrated-plugins"] == (
        "kubernetes.io/aws-ebs,kubernetes.io/azure-disk,kubernetes.io/azure-file,kubernetes.io/cinder,"
        "kubernetes.io/gce-pd,kubernetes.io/portworx-volume,kubernetes.io/vsphere-volume")
    assert csinode["spec"] == {"drivers": []}
    # as the node itself (only its own CSINode is readable)
    out = subprocess.run([KUBECTL, "--kubeconfig", str(kubelet.kubeconfig), "get", "csinode", NODE],
                         capture_output=True, text=True, check=True).stdout
    assert out.split("\n")[1].split()[:2] == [NODE, "0"]


def test_cni_config_and_filter_rules(kubelet, containerd_node):
    # This containerd already had the CRI tests' CNI config, so the node may be Ready before the
    # kubelet's own network setup (rules, then its config) has finished: wait for that.
    path = containerd_node.paths.cni_conf_dir / network.CONFLIST_NAME
    wait_for(path.exists, 30, 0.1, "the kubelet's CNI config")
    conflist = json.loads(path.read_text())
    bridge = conflist["plugins"][0]
    assert bridge["type"] == "bridge" and bridge["bridge"] == containerd_node.bridge
    assert bridge["ipam"]["ranges"] == [[{"subnet": str(containerd_node.subnet)}]]
    fwd, guard = network.chain_names(containerd_node.bridge)
    rules = subprocess.run(["iptables", "-w", "-S"], capture_output=True, text=True, check=True).stdout
    assert f"-A FORWARD -j {guard}" in rules and f"-A FORWARD -j {fwd}" in rules
    assert f"-A {fwd} -s {containerd_node.subnet}" in rules
    uplink = network.uplink_interface()
    if uplink:
        assert f"-A {guard} -d 10.244.0.0/16 -o {uplink}" in rules


def _kubelet_client(kcluster, cert_name: str | None) -> httpx.Client:
    ctx = ssl.create_default_context(cafile=str(kcluster.pki.ca_cert))
    if cert_name:
        cert, key = kcluster.pki.client(cert_name)
        ctx.load_cert_chain(str(cert), str(key))
    return httpx.Client(verify=ctx, timeout=15, trust_env=False)


def test_kubelet_api_authenticates_authorizes_and_serves_stats(api, ns, kubelet, kcluster):
    create_pod(api, ns, pod_manifest("busy", [{"name": "main", "command": ["sleep", "3600"]}]))
    pod = wait_pod(api, ns, "busy", running)
    base = f"https://127.0.0.1:{kubelet.port}"
    with _kubelet_client(kcluster, None) as anonymous:
        assert anonymous.get(f"{base}/stats/summary").status_code == 401
    issue_client_cert(kcluster.pki, "eve", "eve")
    with _kubelet_client(kcluster, "eve") as eve:
        r = eve.get(f"{base}/stats/summary")
        assert r.status_code == 403
        assert "user=eve" in r.json()["message"] and "subresource=stats" in r.json()["message"]
    with _kubelet_client(kcluster, "apiserver-kubelet-client") as admin:
        def pod_stats():
            summary = admin.get(f"{base}/stats/summary").json()
            for p in summary["pods"]:
                if p["podRef"]["uid"] == pod["metadata"]["uid"]:
                    return summary, p
            return None

        summary, stats = wait_for(pod_stats, 15, 0.5, "the pod in /stats/summary")
        assert summary["node"]["nodeName"] == NODE
        assert summary["node"]["memory"]["workingSetBytes"] > 0
        assert summary["node"]["fs"]["capacityBytes"] > 0
        assert stats["containers"][0]["name"] == "main"
        assert stats["containers"][0]["memory"]["workingSetBytes"] > 0
        assert stats["containers"][0]["cpu"]["usageCoreNanoSeconds"] > 0
        pods = admin.get(f"{base}/pods").json()
        assert any(p["metadata"]["uid"] == pod["metadata"]["uid"] for p in pods["items"])
        assert admin.get(f"{base}/healthz").text == "ok"
    # a ServiceAccount token is authenticated with TokenReview (and this one may do nothing here)
    token = api.post(f"/api/v1/namespaces/{ns}/serviceaccounts/default/token",
                     json={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}}).json()
    with _kubelet_client(kcluster, None) as sa:
        r = sa.get(f"{base}/pods", headers={"Authorization": f"Bearer {token['status']['token']}"})
        assert r.status_code == 403
        assert f"system:serviceaccount:{ns}:default" in r.json()["message"]


def test_static_pod_is_run_and_mirrored(api, kubelet):
    manifest = kubelet.manifests / "static-web.yaml"
    manifest.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "static-web", "namespace": "default", "labels": {"app": "static"}},
        "spec": {"containers": [{"name": "main", "image": BUSYBOX, "imagePullPolicy": "IfNotPresent",
                                 "command": ["sleep", "3600"]}], "terminationGracePeriodSeconds": 1},
    }))
    name = f"static-web-{NODE}"
    try:
        mirror = wait_pod(api, "default", name, running, 60)
        annotations = mirror["metadata"]["annotations"]
        assert annotations["kubernetes.io/config.source"] == "file"
        assert annotations["kubernetes.io/config.mirror"] == annotations["kubernetes.io/config.hash"]
        assert mirror["metadata"]["ownerReferences"][0]["kind"] == "Node"
        assert mirror["spec"]["nodeName"] == NODE
        # deleting the mirror pod does not stop the static pod: the mirror comes back
        first_uid = mirror["metadata"]["uid"]
        api.delete(f"/api/v1/namespaces/default/pods/{name}")
        again = wait_pod(api, "default", name, lambda p: p["metadata"]["uid"] != first_uid and running(p), 30)
        assert again["status"]["containerStatuses"][0]["restartCount"] == 0
        started = mirror["status"]["containerStatuses"][0]["containerID"]
        assert again["status"]["containerStatuses"][0]["containerID"] == started
    finally:
        manifest.unlink()
    # removing the manifest stops the pod and deletes its mirror
    wait_for(lambda: get_pod(api, "default", name) is None, 30, 0.2, "the mirror pod to go")


def test_eviction_under_memory_pressure_goes_by_qos(api, ns, kubelet):
    create_pod(api, ns, pod_manifest("besteffort", [{"name": "main", "command": ["sleep", "3600"]}]))
    create_pod(api, ns, pod_manifest("guaranteed", [{"name": "main", "command": ["sleep", "3600"],
                                                     "resources": {"limits": {"cpu": "100m", "memory": "32Mi"}}}]))
    wait_pod(api, ns, "besteffort", running)
    wait_pod(api, ns, "guaranteed", running)
    try:
        # a threshold no machine meets: the node is under memory pressure from the first round on
        kubelet.restart(api, ["--eviction-hard", "memory.available<100000Gi"])
        best = wait_pod(api, ns, "besteffort", lambda p: p["status"]["phase"] == "Failed", 60)
        assert best["status"]["reason"] == "Evicted"
        assert "The node was low on resource: memory" in best["status"]["message"]
        assert condition(best, "DisruptionTarget") == "True"
        # the Guaranteed pod was still running when the BestEffort one went
        assert get_pod(api, ns, "guaranteed")["status"]["phase"] == "Running"

        def memory_pressure() -> bool:
            node = api.get(f"/api/v1/nodes/{NODE}").json()
            return {c["type"]: c["status"] for c in node["status"]["conditions"]}["MemoryPressure"] == "True"

        wait_for(memory_pressure, 30, 0.5, "MemoryPressure on the node")
        # new BestEffort pods are refused while the pressure lasts
        create_pod(api, ns, pod_manifest("late", [{"name": "main", "command": ["sleep", "3600"]}]))
        late = wait_pod(api, ns, "late", lambda p: p["status"]["phase"] == "Failed", 30)
        assert late["status"]["reason"] == "Evicted"
        assert "MemoryPressure" in late["status"]["message"]
    finally:
        kubelet.restart(api)
