"""The managers with fakes in place of the API and CRI: images (pull policy, credentials,
back-off, GC), pod status writes, probes, node status."""

import asyncio
import base64
import json

import pytest

from kubelet.actions import resolve_port
from kubelet.config import KubeletConfig
from kubelet.cri import CRIError, pb
from kubelet.images import ImageError, ImageManager, auth_config, credentials_from_secret, registry_of
from kubelet.machine import MachineInfo
from kubelet.nodestatus import NodeConditions, NodeManager, allocatable, capacity
from kubelet.probes import ProbeManager
from kubelet.status import StatusManager
from tests.unit.kubelet_fakes import container, pod, runtime_status, sandbox


class FakeCRI:
    def __init__(self, present=(), fail_pulls=False):
        self.present = {ref: pb.Image(id=f"sha256:{ref}", repo_tags=[ref], size=100) for ref in present}
        self.pulls = []
        self.fail_pulls = fail_pulls
        self.removed = []

    async def image_status(self, ref):
        return self.present.get(ref) or next((i for i in self.present.values() if i.id == ref), None)

    async def pull_image(self, ref, auth=None):
        self.pulls.append((ref, auth))
        if self.fail_pulls:
            import grpc

            raise CRIError("PullImage", grpc.StatusCode.UNKNOWN, "not found")
        self.present[ref] = pb.Image(id=f"sha256:{ref}", repo_tags=[ref], size=100)
        return f"sha256:{ref}"

    async def list_images(self):
        return list(self.present.values())

    async def remove_image(self, ref):
        self.removed.append(ref)
        self.present = {k: v for k, v in self.present.items() if v.id != ref}


def _secret(auths):
    data = base64.b64encode(json.dumps({"auths": auths}).encode()).decode()
    return {"type": "kubernetes.io/dockerconfigjson", "data": {".dockerconfigjson": data}}


async def _none(ns, name):
    return None


def test_registries_and_credentials():
    assert registry_of("busybox") == "docker.io" and registry_of("library/busybox:1") == "docker.io"
    assert registry_of("127.0.0.1:5000/app:v1") == "127.0.0.1:5000" and registry_of("localhost/x") == "localhost"
    assert registry_of("ghcr.io/org/app") == "ghcr.io"
    creds = credentials_from_secret(_secret({"https://index.docker.io/v1/": {"auth": base64.b64encode(b"u:p").decode()},
                                             "127.0.0.1:5000": {"username": "a", "password": "b"}}))
    assert set(creds) == {"docker.io", "127.0.0.1:5000"}
    config = auth_config(creds["docker.io"])
    assert (config.username, config.password) == ("u", "p")
    assert credentials_from_secret({"data": {".dockerconfigjson": "!!"}}) == {}


async def test_pull_policies():
    cri = FakeCRI(present=["img:1"])
    images = ImageManager(cri, _none)
    p = pod()
    result = await images.ensure(p, {"name": "c", "image": "img:1", "imagePullPolicy": "IfNotPresent"}, [])
    assert result.image_ref == "sha256:img:1" and "already present" in result.event_message and cri.pulls == []
    await images.ensure(p, {"name": "c", "image": "img:1", "imagePullPolicy": "Always"}, [])
    assert [r for r, _ in cri.pulls] == ["img:1"]  # Always pulls even when present
    with pytest.raises(ImageError) as e:
        await images.ensure(p, {"name": "c", "image": "img:2", "imagePullPolicy": "Never"}, [])
    assert e.value.reason == "ErrImageNeverPull"
    pulled = await images.ensure(p, {"name": "c", "image": "img:2", "imagePullPolicy": "IfNotPresent"}, [])
    assert pulled.event_message.startswith('Successfully pulled image "img:2"')
    with pytest.raises(ImageError) as e:
        await images.ensure(p, {"name": "c", "image": "bad image"}, [])
    assert e.value.reason == "InvalidImageName"


async def test_pull_failures_back_off_and_use_the_pull_secret():
    cri = FakeCRI(fail_pulls=True)
    images = ImageManager(cri, _none)
    p = pod()
    c = {"name": "c", "image": "127.0.0.1:5000/app:v1", "imagePullPolicy": "IfNotPresent"}
    secret = _secret({"127.0.0.1:5000": {"username": "me", "password": "pw"}})
    with pytest.raises(ImageError) as e:
        await images.ensure(p, c, [secret])
    assert e.value.reason == "ErrImagePull" and "not found" in e.value.message
    assert cri.pulls[0][1].username == "me" and cri.pulls[0][1].password == "pw"
    with pytest.raises(ImageError) as e:
        await images.ensure(p, c, [secret])
    assert e.value.reason == "ImagePullBackOff" and 0 < e.value.retry_after <= 10
    assert len(cri.pulls) == 1  # no pull while backing off


async def test_image_garbage_collection_removes_unused_least_recently_used_first():
    cri = FakeCRI(present=["old", "new", "used", "localhost/minik8s/pause:3.9"])
    images = ImageManager(cri, _none, pinned=("localhost/minik8s/pause:3.9",))
    images.last_used = {"sha256:old": 1.0, "sha256:new": 2.0}

    async def usage():
        return 90, 100

    images.usage = usage
    freed = await images.garbage_collect({"sha256:used"}, 85, 80)
    assert cri.removed == ["sha256:old"] and freed == 100
    cri.removed.clear()

    async def low():
        return 10, 100

    images.usage = low
    assert await images.garbage_collect(set(), 85, 80) == 0 and cri.removed == []


class FakePods:
    def __init__(self):
        self.patches = []

    async def patch(self, name, body, namespace=None, patch_type="merge", subresource=None, **kw):
        self.patches.append((name, namespace, body, subresource))
        return {}


class FakeAPI:
    def __init__(self):
        self.pods = FakePods()

    def resource(self, version, plural):
        return self.pods


async def test_status_manager_writes_only_changes_and_nulls_dropped_fields():
    api = FakeAPI()
    current = {"metadata": {"uid": "u1", "name": "web", "namespace": "default"},
               "status": {"phase": "Pending", "nominatedNodeName": "x"}}
    manager = StatusManager(api, lambda ns, name: current)
    manager.start()
    try:
        assert not manager.set_status("default", "web", "u1", {"phase": "Pending", "nominatedNodeName": "x"})
        assert manager.set_status("default", "web", "u1", {"phase": "Running"})
        await manager.flush("u1")
        await asyncio.sleep(0.05)
        name, ns, body, sub = api.pods.patches[-1]
        assert (name, ns, sub) == ("web", "default", "status")
        assert body == {"metadata": {"uid": "u1"}, "status": {"phase": "Running", "nominatedNodeName": None}}
        assert not manager.set_status("default", "web", "u1", {"phase": "Running"})  # already written
        assert manager.writes == 1
    finally:
        await manager.stop()


class FakeActions:
    def __init__(self):
        self.results = []

    async def run(self, handler, container, cid, ip, timeout):
        return self.results.pop(0) if self.results else (True, "")


async def test_probe_thresholds_and_liveness_failures():
    actions = FakeActions()
    changed, events = [], []
    probes = ProbeManager(actions, changed.append, lambda *a: events.append(a))
    spec = {"name": "main", "image": "x",
            "readinessProbe": {"exec": {"command": ["true"]}, "periodSeconds": 0.05, "successThreshold": 2},
            "livenessProbe": {"exec": {"command": ["true"]}, "periodSeconds": 0.05, "failureThreshold": 2}}
    p = pod(containers=[spec])
    rs = runtime_status("uid-web", sandboxes=[sandbox()], containers=[container("main", "c1", started=0)])
    actions.results = [(True, ""), (True, ""), (True, ""), (True, "")]
    probes.sync_pod(p, rs, "10.0.0.1")
    try:
        for _ in range(100):
            if probes.readiness("c1"):
                break
            await asyncio.sleep(0.02)
        assert probes.readiness("c1") is True and "uid-web" in changed
        actions.results = [(False, "boom")] * 20
        for _ in range(200):
            if probes.failure("c1"):
                break
            await asyncio.sleep(0.02)
        assert probes.failure("c1") == ("liveness", "boom")
        assert any(e[2] == "Unhealthy" and "Liveness probe failed: boom" in e[3] for e in events)
        assert probes.has_probe("uid-web", "main", "readiness") and not probes.has_probe("uid-web", "main", "startup")
    finally:
        probes.remove_pod("uid-web")
        await probes.stop()


def test_named_ports():
    c = {"name": "c", "ports": [{"name": "http", "containerPort": 8080}]}
    assert resolve_port("http", c) == 8080 and resolve_port(80, c) == 80 and resolve_port("81", c) == 81
    with pytest.raises(ValueError):
        resolve_port("nope", c)


def test_node_status(tmp_path):
    machine = MachineInfo(2, 4 << 30, "mid", "uuid", "boot", "6.1", "Debian", "amd64", "host")
    cfg = KubeletConfig(node_name="n1", root_dir=str(tmp_path), kube_reserved={"cpu": 100, "memory": 1 << 30})
    cap = capacity(machine, cfg)
    assert cap["cpu"] == 2000 and cap["memory"] == 4 << 30 and cap["pods"] == 110
    alloc = allocatable(cap, cfg)
    assert alloc["cpu"] == 1900 and alloc["memory"] == (3 << 30) - (100 << 20)
    conditions = NodeConditions()
    node = NodeManager(FakeAPI(), cfg, machine, "192.0.2.7", lambda: "containerd://1.6", lambda: [], conditions)
    status = node.status()
    assert status["capacity"]["cpu"] == "2" and status["allocatable"]["cpu"] == "1900m"
    assert status["capacity"]["memory"] == "4Gi"
    ready = {c["type"]: c for c in status["conditions"]}["Ready"]
    assert ready["status"] == "False" and "runtime" in ready["message"]
    conditions.runtime.runtime_ready = conditions.runtime.network_ready = True
    ready = {c["type"]: c for c in node.status()["conditions"]}["Ready"]
    assert ready["status"] == "True" and ready["reason"] == "KubeletReady"
    assert status["nodeInfo"]["containerRuntimeVersion"] == "containerd://1.6"
    assert status["addresses"][0] == {"type": "InternalIP", "address": "192.0.2.7"}
    labels = node.labels()
    assert labels["kubernetes.io/hostname"] == "n1" and labels["kubernetes.io/arch"] == "amd64"
