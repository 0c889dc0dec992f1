"""Async CRI client: RuntimeService and ImageService over a unix socket (grpc.aio).

Each helper mirrors one RPC of upstream's internal CRI interface (k8s.io/cri-api
RuntimeService / ImageManagerService), takes and returns the protobuf messages from
`proto.cri_api_pb2` (re-exported as `pb`), applies a per-call deadline and turns every gRPC
failure into a `CRIError` carrying the gRPC status code.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import grpc

from proto import cri_api_pb2 as pb
from proto import cri_api_pb2_grpc as pb_grpc

# Upstream's kubelet defaults: --runtime-request-timeout=2m is generous because a cold
# CreateContainer can unpack layers; most calls answer in milliseconds.
DEFAULT_TIMEOUT = 120.0
# Pulls are bounded separately (upstream has no deadline at all for them).
DEFAULT_PULL_TIMEOUT = 600.0
# Same cap as upstream's remote runtime client (16 MiB), for big ListContainers answers.
MAX_MESSAGE_SIZE = 16 * 1024 * 1024

_IMAGE_RPCS = frozenset({"ListImages", "ImageStatus", "PullImage", "RemoveImage", "ImageFsInfo"})


class CRIError(Exception):
    """A CRI call failed; `code` is the gRPC status code the runtime (or gRPC) returned."""

    def __init__(self, method: str, code: grpc.StatusCode, message: str) -> None:
        super().__init__(f"CRI {method} failed: {code.name}: {message}")
        self.method = method
        self.code = code
        self.message = message

    @property
    def not_found(self) -> bool:
        return self.code == grpc.StatusCode.NOT_FOUND

    @property
    def unavailable(self) -> bool:
        """The runtime could not be reached (socket missing, daemon down)."""
        return self.code == grpc.StatusCode.UNAVAILABLE

    @property
    def timed_out(self) -> bool:
        return self.code == grpc.StatusCode.DEADLINE_EXCEEDED

    @classmethod
    def from_rpc_error(cls, method: str, error: grpc.RpcError) -> CRIError:
        code = error.code() if hasattr(error, "code") else None
        details = error.details() if hasattr(error, "details") else None
        return cls(method, code or grpc.StatusCode.UNKNOWN, details or str(error))


def socket_target(endpoint: str) -> str:
    """gRPC target for a runtime endpoint given as `unix:///path` or a bare socket path."""
    if endpoint.startswith("unix:"):
        return endpoint
    if endpoint.startswith("/"):
        return f"unix://{endpoint}"
    raise ValueError(f"CRI endpoint must be a unix socket (unix:///path or /path), got {endpoint!r}")


class CRIClient:
    """One gRPC channel to a CRI runtime. Use `async with CRIClient(sock) as cri:` or call close()."""

    def __init__(
        self,
        endpoint: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        pull_timeout: float = DEFAULT_PULL_TIMEOUT,
    ) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        self.pull_timeout = pull_timeout
        self._channel = grpc.aio.insecure_channel(
            socket_target(endpoint),
            options=[
                ("grpc.max_receive_message_length", MAX_MESSAGE_SIZE),
                ("grpc.max_send_message_length", MAX_MESSAGE_SIZE),
            ],
        )
        self._runtime = pb_grpc.RuntimeServiceStub(self._channel)
        self._images = pb_grpc.ImageServiceStub(self._channel)

    async def __aenter__(self) -> CRIClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._channel.close()

    async def _call(self, method: str, request: Any, timeout: float | None = None) -> Any:
        """Run one unary RPC; `timeout=None` means the client default, `<= 0` means no deadline."""
        stub = self._images if method in _IMAGE_RPCS else self._runtime
        deadline = self.timeout if timeout is None else timeout
        try:
            return await getattr(stub, method)(request, timeout=deadline if deadline > 0 else None)
        except grpc.RpcError as e:
            raise CRIError.from_rpc_error(method, e) from None

    # ------------------------------------------------------------------ runtime

    async def version(self, *, timeout: float | None = None) -> pb.VersionResponse:
        # "v1" is the CRI API version the kubelet speaks; the runtime answers with its own.
        return await self._call("Version", pb.VersionRequest(version="v1"), timeout)

    async def status(self, *, verbose: bool = False, timeout: float | None = None) -> pb.StatusResponse:
        return await self._call("Status", pb.StatusRequest(verbose=verbose), timeout)

    # ------------------------------------------------------------------ pod sandboxes

    async def run_pod_sandbox(
        self, config: pb.PodSandboxConfig, runtime_handler: str = "", *, timeout: float | None = None
    ) -> str:
        request = pb.RunPodSandboxRequest(config=config, runtime_handler=runtime_handler)
        response = await self._call("RunPodSandbox", request, timeout)
        return response.pod_sandbox_id

    async def stop_pod_sandbox(self, pod_sandbox_id: str, *, timeout: float | None = None) -> None:
        await self._call("StopPodSandbox", pb.StopPodSandboxRequest(pod_sandbox_id=pod_sandbox_id), timeout)

    async def remove_pod_sandbox(self, pod_sandbox_id: str, *, timeout: float | None = None) -> None:
        request = pb.RemovePodSandboxRequest(pod_sandbox_id=pod_sandbox_id)
        await self._call("RemovePodSandbox", request, timeout)

    async def pod_sandbox_status(
        self, pod_sandbox_id: str, *, verbose: bool = False, timeout: float | None = None
    ) -> pb.PodSandboxStatusResponse:
        request = pb.PodSandboxStatusRequest(pod_sandbox_id=pod_sandbox_id, verbose=verbose)
        return await self._call("PodSandboxStatus", request, timeout)

    async def list_pod_sandbox(
        self, filter: pb.PodSandboxFilter | None = None, *, timeout: float | None = None
    ) -> list[pb.PodSandbox]:
        response = await self._call("ListPodSandbox", pb.ListPodSandboxRequest(filter=filter), timeout)
        return list(response.items)

    # ------------------------------------------------------------------ containers

    async def create_container(
        self,
        pod_sandbox_id: str,
        config: pb.ContainerConfig,
        sandbox_config: pb.PodSandboxConfig,
        *,
        timeout: float | None = None,
    ) -> str:
        request = pb.CreateContainerRequest(
            pod_sandbox_id=pod_sandbox_id, config=config, sandbox_config=sandbox_config
        )
        response = await self._call("CreateContainer", request, timeout)
        return response.container_id

    async def start_container(self, container_id: str, *, timeout: float | None = None) -> None:
        await self._call("StartContainer", pb.StartContainerRequest(container_id=container_id), timeout)

    async def stop_container(
        self, container_id: str, grace_seconds: int = 0, *, timeout: float | None = None
    ) -> None:
        """Stop with SIGTERM, then SIGKILL after `grace_seconds` (0 = kill at once)."""
        request = pb.StopContainerRequest(container_id=container_id, timeout=grace_seconds)
        # Like upstream: the RPC may legitimately take the whole grace period.
        deadline = (self.timeout if timeout is None else timeout) + grace_seconds
        await self._call("StopContainer", request, deadline)

    async def remove_container(self, container_id: str, *, timeout: float | None = None) -> None:
        await self._call("RemoveContainer", pb.RemoveContainerRequest(container_id=container_id), timeout)

    async def list_containers(
        self, filter: pb.ContainerFilter | None = None, *, timeout: float | None = None
    ) -> list[pb.Container]:
        response = await self._call("ListContainers", pb.ListContainersRequest(filter=filter), timeout)
        return list(response.containers)

    async def container_status(
        self, container_id: str, *, verbose: bool = False, timeout: float | None = None
    ) -> pb.ContainerStatusResponse:
        request = pb.ContainerStatusRequest(container_id=container_id, verbose=verbose)
        return await self._call("ContainerStatus", request, timeout)

    async def update_container_resources(
        self,
        container_id: str,
        linux: pb.LinuxContainerResources,
        annotations: Mapping[str, str] | None = None,
        *,
        timeout: float | None = None,
    ) -> None:
        request = pb.UpdateContainerResourcesRequest(
            container_id=container_id, linux=linux, annotations=dict(annotations or {})
        )
        await self._call("UpdateContainerResources", request, timeout)

    async def reopen_container_log(self, container_id: str, *, timeout: float | None = None) -> None:
        request = pb.ReopenContainerLogRequest(container_id=container_id)
        await self._call("ReopenContainerLog", request, timeout)

    # ------------------------------------------------------------------ exec / attach / port-forward

    async def exec_sync(
        self, container_id: str, cmd: Iterable[str], timeout: int = 0
    ) -> tuple[int, bytes, bytes]:
        """Run `cmd` in the container and wait; returns (exit_code, stdout, stderr).

        `timeout` is the command's limit in whole seconds (0 = none), enforced by the runtime;
        the RPC deadline is the client default on top of it, as upstream does.
        """
        request = pb.ExecSyncRequest(container_id=container_id, cmd=list(cmd), timeout=timeout)
        deadline = self.timeout + timeout if timeout > 0 else 0
        response = await self._call("ExecSync", request, deadline)
        return response.exit_code, response.stdout, response.stderr

    async def exec(
        self,
        container_id: str,
        cmd: Iterable[str],
        *,
        tty: bool = False,
        stdin: bool = False,
        stdout: bool = True,
        stderr: bool | None = None,
        timeout: float | None = None,
    ) -> str:
        """Prepare a streaming exec; returns the runtime's streaming-server URL.

        `stderr` defaults to `not tty`: with a tty both streams are one (runtimes reject both)."""
        request = pb.ExecRequest(
            container_id=container_id,
            cmd=list(cmd),
            tty=tty,
            stdin=stdin,
            stdout=stdout,
            stderr=(not tty) if stderr is None else stderr,
        )
        response = await self._call("Exec", request, timeout)
        return response.url

    async def attach(
        self,
        container_id: str,
        *,
        tty: bool = False,
        stdin: bool = False,
        stdout: bool = True,
        stderr: bool | None = None,
        timeout: float | None = None,
    ) -> str:
        """Prepare a streaming attach; returns the URL. `stderr` defaults to `not tty`."""
        request = pb.AttachRequest(
            container_id=container_id,
            tty=tty,
            stdin=stdin,
            stdout=stdout,
            stderr=(not tty) if stderr is None else stderr,
        )
        response = await self._call("Attach", request, timeout)
        return response.url

    async def port_forward(
        self, pod_sandbox_id: str, ports: Iterable[int] = (), *, timeout: float | None = None
    ) -> str:
        request = pb.PortForwardRequest(pod_sandbox_id=pod_sandbox_id, port=list(ports))
        response = await self._call("PortForward", request, timeout)
        return response.url

    # ------------------------------------------------------------------ stats

    async def container_stats(self, container_id: str, *, timeout: float | None = None) -> pb.ContainerStats:
        request = pb.ContainerStatsRequest(container_id=container_id)
        response = await self._call("ContainerStats", request, timeout)
        return response.stats

    async def list_container_stats(
        self, filter: pb.ContainerStatsFilter | None = None, *, timeout: float | None = None
    ) -> list[pb.ContainerStats]:
        request = pb.ListContainerStatsRequest(filter=filter)
        response = await self._call("ListContainerStats", request, timeout)
        return list(response.stats)

    # ------------------------------------------------------------------ images

    async def list_images(
        self, filter: pb.ImageFilter | None = None, *, timeout: float | None = None
    ) -> list[pb.Image]:
        response = await self._call("ListImages", pb.ListImagesRequest(filter=filter), timeout)
        return list(response.images)

    async def image_status(self, ref: str, *, timeout: float | None = None) -> pb.Image | None:
        """The image as the runtime has it, or None when it is not present."""
        request = pb.ImageStatusRequest(image=pb.ImageSpec(image=ref))
        response = await self._call("ImageStatus", request, timeout)
        return response.image if response.HasField("image") else None

    async def pull_image(
        self,
        ref: str,
        auth: pb.AuthConfig | None = None,
        sandbox_config: pb.PodSandboxConfig | None = None,
        *,
        timeout: float | None = None,
    ) -> str:
        """Pull `ref` (always contacts the registry); returns the image reference (id) pulled."""
        request = pb.PullImageRequest(image=pb.ImageSpec(image=ref), auth=auth, sandbox_config=sandbox_config)
        response = await self._call("PullImage", request, self.pull_timeout if timeout is None else timeout)
        return response.image_ref

    async def remove_image(self, ref: str, *, timeout: float | None = None) -> None:
        await self._call("RemoveImage", pb.RemoveImageRequest(image=pb.ImageSpec(image=ref)), timeout)

    async def image_fs_info(self, *, timeout: float | None = None) -> pb.ImageFsInfoResponse:
        return await self._call("ImageFsInfo", pb.ImageFsInfoRequest(), timeout)
