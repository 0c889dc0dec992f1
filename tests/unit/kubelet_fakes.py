"""Builders shared by the kubelet unit tests: runtime statuses and pods without a runtime."""

from __future__ import annotations

from typing import Any

from kubelet import naming
from kubelet.runtime import EXITED, RUNNING, ContainerInfo, PodRuntimeStatus, SandboxInfo

S = 1_000_000_000


def pod(name: str = "web", containers: list[dict[str, Any]] | None = None, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}"},
        "spec": {"containers": containers or [{"name": "main", "image": "busybox"}], **spec},
        "status": {"phase": "Pending"},
    }


def sandbox(sid: str = "sb1", ready: bool = True, ip: str = "10.244.0.5", attempt: int = 0) -> SandboxInfo:
    return SandboxInfo(sid, attempt, ready, created_at=attempt + 1, ip=ip if ready else "", ips=[ip] if ready else [])


def container(name: str, cid: str, state: str = RUNNING, *, exit_code: int = 0, restart: int = 0,
              created: int = 1, started: int = 10, finished: int = 0, spec: dict[str, Any] | None = None,
              reason: str = "", init: bool = False) -> ContainerInfo:
    annotations = {naming.RESTART_COUNT: str(restart)}
    if spec is not None:
        annotations[naming.CONTAINER_HASH] = naming.container_hash(spec)
    labels = {naming.CONTAINER_NAME: name}
    if init:
        labels[naming.CONTAINER_TYPE] = "init"
    return ContainerInfo(
        id=cid, name=name, attempt=restart, state=state, created_at=created * S, started_at=started * S,
        finished_at=finished * S if state == EXITED else 0, exit_code=exit_code, reason=reason,
        image="busybox", image_ref="sha256:abc", labels=labels, annotations=annotations,
    )


def runtime_status(uid: str = "uid-web", sandboxes=(), containers=()) -> PodRuntimeStatus:
    return PodRuntimeStatus(uid, sandboxes=list(sandboxes),
                            containers=sorted(containers, key=lambda c: c.created_at, reverse=True))


class _NoReads:
    async def get(self, *a, **kw):
        raise RuntimeError("not in this test")


class NoAPI:
    """An API client for a Kubelet built in a test that reads nothing from the API."""

    def resource(self, version, plural):
        return _NoReads()
