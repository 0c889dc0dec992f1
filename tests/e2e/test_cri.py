"""The whole pod lifecycle through our CRI client against a private containerd."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import time
import uuid
from pathlib import Path

import grpc
import httpx
import pytest

from images import BUSYBOX_IMAGE, BUSYBOX_VERSIONED, PAUSE_IMAGE
from kubelet.cri import CRIClient, CRIError, pb
from kubelet.cri.containerd import running_pid, start_containerd

pytestmark = pytest.mark.e2e

MEMORY_LIMIT = 64 * 1024 * 1024
UPDATED_MEMORY_LIMIT = 96 * 1024 * 1024
MEMORY_CGROUP = Path("/sys/fs/cgroup/memory")


def _sandbox_config(cgroup_parent: str, log_dir: Path) -> pb.PodSandboxConfig:
    uid = str(uuid.uuid4())
    return pb.PodSandboxConfig(
        metadata=pb.PodSandboxMetadata(name="web", uid=uid, namespace="e2e", attempt=0),
        hostname="web",
        log_directory=str(log_dir / uid),
        labels={"io.kubernetes.pod.name": "web", "io.kubernetes.pod.uid": uid, "e2e": "cri"},
        linux=pb.LinuxPodSandboxConfig(
            cgroup_parent=cgroup_parent,
            security_context=pb.LinuxSandboxSecurityContext(
                # What the kubelet asks for a pod without shareProcessNamespace.
                namespace_options=pb.NamespaceOption(network=pb.POD, pid=pb.CONTAINER, ipc=pb.POD)
            ),
        ),
    )


def _container_config() -> pb.ContainerConfig:
    return pb.ContainerConfig(
        metadata=pb.ContainerMetadata(name="httpd", attempt=0),
        image=pb.ImageSpec(image=BUSYBOX_IMAGE),
        command=["httpd", "-f", "-p", "8080", "-h", "/tmp"],
        log_path="httpd/0.log",
        labels={"io.kubernetes.container.name": "httpd"},
        linux=pb.LinuxContainerConfig(
            resources=pb.LinuxContainerResources(memory_limit_in_bytes=MEMORY_LIMIT),
            security_context=pb.LinuxContainerSecurityContext(
                namespace_options=pb.NamespaceOption(network=pb.POD, pid=pb.CONTAINER, ipc=pb.POD)
            ),
        ),
    )


async def _http_get(url: str, timeout: float = 10.0) -> httpx.Response:
    """GET, retrying while the server is still coming up (connection refused)."""
    deadline = time.monotonic() + timeout
    # trust_env=False: never route pod traffic through a proxy from the environment.
    async with httpx.AsyncClient(trust_env=False, timeout=2.0) as client:
        while True:
            try:
                return await client.get(url)
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
            await asyncio.sleep(0.05)


def _closed_local_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def test_runtime_is_ready_and_has_our_images(containerd_node):
    async with CRIClient(containerd_node.endpoint) as cri:
        version = await cri.version()
        assert version.runtime_name == "containerd"
        assert version.runtime_api_version == "v1"
        conditions = {c.type: c.status for c in (await cri.status()).status.conditions}
        assert conditions == {"RuntimeReady": True, "NetworkReady": True}
        for ref in (PAUSE_IMAGE, BUSYBOX_IMAGE):
            image = await cri.image_status(ref)
            assert image is not None, ref
            assert image.id == containerd_node.images[ref]
            assert ref in image.repo_tags
        listed = {tag for image in await cri.list_images() for tag in image.repo_tags}
        assert {PAUSE_IMAGE, BUSYBOX_IMAGE} <= listed
        filesystems = (await cri.image_fs_info()).image_filesystems
        assert filesystems
        assert filesystems[0].fs_id.mountpoint.startswith(str(containerd_node.data_dir))


async def test_pod_lifecycle(containerd_node):
    cgroup_parent = f"/{containerd_node.cgroup_root}/pod-web"
    sandbox_config = _sandbox_config(cgroup_parent, containerd_node.data_dir / "pods")
    async with CRIClient(containerd_node.endpoint) as cri:
        started = time.monotonic()
        sandbox_id = await cri.run_pod_sandbox(sandbox_config)
        try:
            container_id = await cri.create_container(sandbox_id, _container_config(), sandbox_config)
            await cri.start_container(container_id)
            status = (await cri.container_status(container_id)).status
            latency = time.monotonic() - started
            print(f"\nRunPodSandbox -> container RUNNING: {latency * 1000:.0f} ms")
            assert status.state == pb.CONTAINER_RUNNING
            assert status.metadata.name == "httpd"
            # containerd reports one of the image's tags; busybox carries two
            assert status.image.image in (BUSYBOX_IMAGE, BUSYBOX_VERSIONED)
            assert status.image_ref == containerd_node.images[BUSYBOX_IMAGE]

            sandbox = await cri.pod_sandbox_status(sandbox_id)
            assert sandbox.status.state == pb.SANDBOX_READY
            pod_ip = ipaddress.ip_address(sandbox.status.network.ip)
            assert pod_ip in containerd_node.subnet

            pods = await cri.list_pod_sandbox(pb.PodSandboxFilter(label_selector={"e2e": "cri"}))
            assert [p.id for p in pods] == [sandbox_id]
            containers = await cri.list_containers(pb.ContainerFilter(pod_sandbox_id=sandbox_id))
            assert [(c.id, c.state) for c in containers] == [(container_id, pb.CONTAINER_RUNNING)]

            assert await cri.exec_sync(container_id, ["echo", "hi"], timeout=10) == (0, b"hi\n", b"")
            code, _, _ = await cri.exec_sync(container_id, ["sh", "-c", "exit 3"], timeout=10)
            assert code == 3
            write_page = ["sh", "-c", "echo hello from the pod > /tmp/index.html"]
            assert (await cri.exec_sync(container_id, write_page, timeout=10))[0] == 0

            response = await _http_get(f"http://{pod_ip}:8080/index.html")
            assert response.status_code == 200
            assert response.text == "hello from the pod\n"

            # The memory limit lands in the container's cgroup below the pod's cgroup_parent.
            limit_file = MEMORY_CGROUP / cgroup_parent.lstrip("/") / container_id / "memory.limit_in_bytes"
            assert int(limit_file.read_text()) == MEMORY_LIMIT
            await cri.update_container_resources(
                container_id, pb.LinuxContainerResources(memory_limit_in_bytes=UPDATED_MEMORY_LIMIT)
            )
            assert int(limit_file.read_text()) == UPDATED_MEMORY_LIMIT

            stats = await cri.container_stats(container_id)
            assert stats.attributes.id == container_id
            assert stats.memory.working_set_bytes.value > 0
            assert stats.cpu.usage_core_nano_seconds.value > 0
            listed_stats = await cri.list_container_stats(pb.ContainerStatsFilter(pod_sandbox_id=sandbox_id))
            assert [s.attributes.id for s in listed_stats] == [container_id]

            for url in (
                await cri.exec(container_id, ["sh"], stdin=True, tty=True),
                await cri.attach(container_id, stdout=True),
                await cri.port_forward(sandbox_id, [8080]),
            ):
                assert url.startswith("http://127.0.0.1:"), url
            await cri.reopen_container_log(container_id)

            await cri.stop_container(container_id, grace_seconds=2)
            stopped = (await cri.container_status(container_id)).status
            assert stopped.state == pb.CONTAINER_EXITED
            assert stopped.finished_at > 0
            await cri.remove_container(container_id)
            with pytest.raises(CRIError) as missing:
                await cri.container_status(container_id)
            assert missing.value.code == grpc.StatusCode.NOT_FOUND
            assert not limit_file.parent.exists()

            await cri.stop_pod_sandbox(sandbox_id)
            assert (await cri.pod_sandbox_status(sandbox_id)).status.state == pb.SANDBOX_NOTREADY
            await cri.remove_pod_sandbox(sandbox_id)
            with pytest.raises(CRIError) as gone:
                await cri.pod_sandbox_status(sandbox_id)
            assert gone.value.not_found
            assert await cri.list_pod_sandbox(pb.PodSandboxFilter(id=sandbox_id)) == []
        finally:
            with contextlib.suppress(CRIError):
                await cri.stop_pod_sandbox(sandbox_id)
                await cri.remove_pod_sandbox(sandbox_id)
    # containerd leaves the pod-level cgroup to its creator (the kubelet); only it remains.
    pod_cgroup = MEMORY_CGROUP / cgroup_parent.lstrip("/")
    assert [p.name for p in pod_cgroup.iterdir() if p.is_dir()] == []
    pod_cgroup.rmdir()


async def test_missing_image(containerd_node):
    async with CRIClient(containerd_node.endpoint) as cri:
        assert await cri.image_status("localhost/minik8s/does-not-exist:0") is None
        # A port nothing listens on, so the pull fails at once and never leaves this machine.
        ref = f"127.0.0.1:{_closed_local_port()}/minik8s/does-not-exist:0"
        with pytest.raises(CRIError) as failed:
            await cri.pull_image(ref, timeout=30)
        assert failed.value.method == "PullImage"
        assert ref in failed.value.message
        assert await cri.image_status(ref) is None


def test_second_containerd_on_the_same_data_dir_is_refused(containerd_node):
    assert running_pid(containerd_node.data_dir) == containerd_node.process.pid
    with pytest.raises(RuntimeError, match="already runs"):
        start_containerd(containerd_node.data_dir)
