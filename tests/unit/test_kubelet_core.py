"""The Kubelet object with fakes around it: which pod events wake a worker, where the pod CIDR
comes from, what the status inputs are, admission."""

import asyncio

from kubelet.config import KubeletConfig
from kubelet.kubelet import Kubelet, _pod_fingerprint, _uses_pod_ip
from tests.unit.kubelet_fakes import NoAPI, container, pod, runtime_status, sandbox


class _CRI:
    pass


def _kubelet(tmp_path, **cfg) -> Kubelet:
    config = KubeletConfig(node_name="n1", node_ip="192.0.2.5", root_dir=str(tmp_path), **cfg)
    return Kubelet(config, NoAPI(), _CRI())


async def test_pod_events_that_wake_a_worker(tmp_path):
    k = _kubelet(tmp_path)
    woken = []
    k.pod_workers.update = woken.append
    p = pod()
    p["metadata"]["resourceVersion"] = "1"
    status_only = {**p, "metadata": {**p["metadata"], "resourceVersion": "2"}, "status": {"phase": "Running"}}
    k._on_pod_update(p, status_only)
    assert woken == []  # our own status writes come back like this
    deleted = {**p, "metadata": {**p["metadata"], "deletionTimestamp": "2024-01-01T00:00:00Z"}}
    k._on_pod_update(p, deleted)
    assert woken == ["uid-web"]
    terminal = {**p, "status": {"phase": "Failed"}}
    k._on_pod_update(p, terminal)
    assert woken == ["uid-web", "uid-web"]
    assert _pod_fingerprint(p) == _pod_fingerprint(status_only)


async def test_the_node_spec_pod_cidr_wins_over_the_flag(tmp_path):
    k = _kubelet(tmp_path, pod_cidr="10.244.9.0/24")
    configured = []

    async def configure():
        configured.append(k.pod_cidr)

    k.configure_network = configure
    k._on_node({"metadata": {"name": "n1"}, "spec": {}})
    await asyncio.sleep(0)
    assert configured == ["10.244.9.0/24"]
    k.network_ready = True
    k._on_node({"metadata": {"name": "n1"}, "spec": {"podCIDR": "10.244.3.0/24"}})
    await asyncio.sleep(0)
    assert configured == ["10.244.9.0/24", "10.244.3.0/24"] and k.pod_cidr == "10.244.3.0/24"
    k._on_node({"metadata": {"name": "n1"}, "spec": {"podCIDR": "10.244.3.0/24"}})  # unchanged: nothing to do
    await asyncio.sleep(0)
    assert len(configured) == 2


async def test_status_inputs(tmp_path):
    k = _kubelet(tmp_path)
    p = pod(containers=[{"name": "main", "image": "x", "readinessProbe": {"exec": {"command": ["true"]}}},
                        {"name": "side", "image": "x"}])
    rs = runtime_status(sandboxes=[sandbox()], containers=[container("main", "c1"), container("side", "c2")])
    k.probes.sync_pod(p, rs, "10.0.0.1")
    inputs = k.status_inputs(p, rs)
    assert inputs.host_ip == "192.0.2.5"
    assert inputs.ready == {"c1": False, "c2": True}  # probe not passed yet / no probe
    k.waiting["uid-web"] = {"side": ("CrashLoopBackOff", "back-off")}
    assert k.status_inputs(p, rs).waiting == {"side": ("CrashLoopBackOff", "back-off")}
    await k.probes.stop()


async def test_admission_checks_resources(tmp_path):
    k = _kubelet(tmp_path)
    k.node.allocatable = {"cpu": 1000, "memory": 1 << 30, "pods": 110}
    big = pod("big", containers=[{"name": "c", "image": "x", "resources": {"requests": {"cpu": "2"}}}])
    assert not await k._admit(big, runtime_status("uid-big"))
    reason, message = k.rejected["uid-big"]
    assert reason == "OutOfcpu" and "requested: 2000" in message
    small = pod("small", containers=[{"name": "c", "image": "x", "resources": {"requests": {"cpu": "100m"}}}])
    assert await k._admit(small, runtime_status("uid-small"))
    # a pod that already runs (the kubelet restarted) is admitted as it is
    running = runtime_status("uid-big", sandboxes=[sandbox()], containers=[container("c", "x1")])
    k.rejected.clear()
    assert await k._admit(big, running)


async def test_new_pods_prepare_a_bounded_number_ahead_and_hold_events_meanwhile(tmp_path):
    k = _kubelet(tmp_path, max_parallel_pod_starts=1)  # one start slot: two new pods prepare at a time
    release = asyncio.Event()
    inside: list[str] = []

    async def sync_containers(p, rs):
        inside.append(p["metadata"]["name"])
        await release.wait()
        return None

    async def settle():
        for _ in range(20):
            await asyncio.sleep(0)

    k._sync_pod_containers = sync_containers
    assert k.recorder._idle is k._no_new_pods and k._no_new_pods.is_set()
    new = [asyncio.ensure_future(k._sync_running(pod(f"p{i}"), runtime_status(f"uid-p{i}"))) for i in range(3)]
    await settle()
    assert inside == ["p0", "p1"] and not k._no_new_pods.is_set()  # Events wait; p2 waits for a slot
    # a pod that has its sandbox already (a periodic sync, a restart) does not wait
    old = asyncio.ensure_future(k._sync_running(pod("old"), runtime_status("uid-old", sandboxes=[sandbox()])))
    await settle()
    assert inside == ["p0", "p1", "old"]
    release.set()
    await asyncio.gather(*new, old)
    assert inside == ["p0", "p1", "old", "p2"] and k._no_new_pods.is_set()


def test_pod_ip_in_downward_volumes():
    assert _uses_pod_ip(pod(volumes=[{"name": "v", "downwardAPI": {"items": [
        {"path": "ip", "fieldRef": {"fieldPath": "status.podIP"}}]}}]))
    assert not _uses_pod_ip(pod(volumes=[{"name": "v", "emptyDir": {}}]))
