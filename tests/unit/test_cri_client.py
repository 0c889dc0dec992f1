"""CRIClient against an in-process fake runtime on a unix socket: requests, results, errors."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path

import grpc
import pytest

from kubelet.cri import CRIClient, CRIError, pb
from kubelet.cri.client import socket_target
from proto import cri_api_pb2_grpc as pb_grpc

PRESENT_IMAGE = "localhost/minik8s/busybox:latest"


class FakeRuntime(pb_grpc.RuntimeServiceServicer):
    def __init__(self) -> None:
        self.requests: list[object] = []

    async def RunPodSandbox(self, request, context):
        self.requests.append(request)
        return pb.RunPodSandboxResponse(pod_sandbox_id=f"sb-{request.config.metadata.name}")

    async def ContainerStatus(self, request, context):
        await context.abort(
            grpc.StatusCode.NOT_FOUND,
            f'an error occurred when try to find container "{request.container_id}"',
        )

    async def StopContainer(self, request, context):
        self.requests.append(request)
        return pb.StopContainerResponse()

    async def ExecSync(self, request, context):
        self.requests.append(request)
        return pb.ExecSyncResponse(stdout=" ".join(request.cmd[1:]).encode() + b"\n", stderr=b"", exit_code=7)

    async def ListContainers(self, request, context):
        self.requests.append(request)
        return pb.ListContainersResponse(
            containers=[pb.Container(id="c1", pod_sandbox_id=request.filter.pod_sandbox_id)]
        )

    async def Version(self, request, context):
        await asyncio.sleep(2)  # slower than any deadline the tests give
        return pb.VersionResponse(runtime_name="slow")

    async def Exec(self, request, context):
        self.requests.append(request)
        return pb.ExecResponse(url="http://127.0.0.1:1/exec/x")


class FakeImages(pb_grpc.ImageServiceServicer):
    async def ImageStatus(self, request, context):
        if request.image.image == PRESENT_IMAGE:
            return pb.ImageStatusResponse(image=pb.Image(id="sha256:abc", repo_tags=[PRESENT_IMAGE]))
        return pb.ImageStatusResponse()

    async def PullImage(self, request, context):
        await context.abort(
            grpc.StatusCode.UNKNOWN,
            f'failed to pull and unpack image "{request.image.image}": connection refused',
        )


@pytest.fixture
async def fake_runtime():
    directory = tempfile.mkdtemp(prefix="mk8s-cri-")  # short: unix socket paths are limited
    socket = Path(directory) / "cri.sock"
    runtime = FakeRuntime()
    server = grpc.aio.server()
    pb_grpc.add_RuntimeServiceServicer_to_server(runtime, server)
    pb_grpc.add_ImageServiceServicer_to_server(FakeImages(), server)
    server.add_insecure_port(f"unix://{socket}")
    await server.start()
    try:
        async with CRIClient(str(socket), timeout=5.0) as client:
            yield client, runtime
    finally:
        await server.stop(None)
        shutil.rmtree(directory, ignore_errors=True)


async def test_run_pod_sandbox_sends_config_and_handler(fake_runtime):
    client, runtime = fake_runtime
    config = pb.PodSandboxConfig(metadata=pb.PodSandboxMetadata(name="web", uid="u1", namespace="default"))
    assert await client.run_pod_sandbox(config, runtime_handler="runc") == "sb-web"
    sent = runtime.requests[-1]
    assert sent.runtime_handler == "runc"
    assert sent.config.metadata.uid == "u1"


async def test_not_found_becomes_cri_error(fake_runtime):
    client, _ = fake_runtime
    with pytest.raises(CRIError) as caught:
        await client.container_status("abc")
    error = caught.value
    assert error.method == "ContainerStatus"
    assert error.code == grpc.StatusCode.NOT_FOUND
    assert error.not_found and not error.unavailable
    assert error.message == 'an error occurred when try to find container "abc"'
    assert "ContainerStatus" in str(error) and "NOT_FOUND" in str(error)


async def test_deadline_becomes_timed_out_error(fake_runtime):
    client, _ = fake_runtime
    with pytest.raises(CRIError) as caught:
        await client.version(timeout=0.2)
    assert caught.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert caught.value.timed_out


async def test_unreachable_runtime_is_unavailable(tmp_path):
    async with CRIClient(str(tmp_path / "missing.sock"), timeout=2.0) as client:
        with pytest.raises(CRIError) as caught:
            await client.version()
    assert caught.value.unavailable


async def test_exec_sync_returns_code_and_output(fake_runtime):
    client, runtime = fake_runtime
    assert await client.exec_sync("c1", ["echo", "hi"], timeout=3) == (7, b"hi\n", b"")
    sent = runtime.requests[-1]
    assert list(sent.cmd) == ["echo", "hi"] and sent.timeout == 3


async def test_stop_container_passes_grace_period(fake_runtime):
    client, runtime = fake_runtime
    await client.stop_container("c1", grace_seconds=30)
    assert runtime.requests[-1].timeout == 30


async def test_list_containers_with_filter(fake_runtime):
    client, _ = fake_runtime
    containers = await client.list_containers(pb.ContainerFilter(pod_sandbox_id="sb-1"))
    assert [(c.id, c.pod_sandbox_id) for c in containers] == [("c1", "sb-1")]


async def test_exec_with_tty_merges_stderr(fake_runtime):
    client, runtime = fake_runtime
    assert await client.exec("c1", ["sh"], tty=True, stdin=True) == "http://127.0.0.1:1/exec/x"
    sent = runtime.requests[-1]
    assert sent.tty and sent.stdin and sent.stdout and not sent.stderr


async def test_image_status_absent_is_none(fake_runtime):
    client, _ = fake_runtime
    assert await client.image_status("localhost/nope:1") is None
    image = await client.image_status(PRESENT_IMAGE)
    assert image is not None and image.id == "sha256:abc"


async def test_pull_failure_keeps_runtime_message(fake_runtime):
    client, _ = fake_runtime
    with pytest.raises(CRIError) as caught:
        await client.pull_image("127.0.0.1:9/x:1")
    assert caught.value.method == "PullImage"
    assert caught.value.code == grpc.StatusCode.UNKNOWN
    assert '"127.0.0.1:9/x:1"' in caught.value.message


def test_socket_target():
    assert socket_target("/run/x.sock") == "unix:///run/x.sock"
    assert socket_target("unix:///run/x.sock") == "unix:///run/x.sock"
    with pytest.raises(ValueError):
        socket_target("tcp://127.0.0.1:1")
