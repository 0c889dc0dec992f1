"""The runtime's view of pods: sandboxes and containers read back from CRI, grouped by pod uid.

Statuses are cached by (id, state): a container's details only change when its state does,
so an idle node costs two List calls per relist and nothing else.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

from kubelet import naming
from kubelet.cri import CRIClient, CRIError, pb

log = logging.getLogger("kubelet.runtime")

CREATED, RUNNING, EXITED, UNKNOWN = "created", "running", "exited", "unknown"
CONTAINER_STATES: dict[int, str] = {
    pb.CONTAINER_CREATED: CREATED,
    pb.CONTAINER_RUNNING: RUNNING,
    pb.CONTAINER_EXITED: EXITED,
    pb.CONTAINER_UNKNOWN: UNKNOWN,
}


@dataclass
class ContainerInfo:
    id: str
    name: str
    attempt: int
    state: str
    created_at: int = 0  # ns since the epoch
    started_at: int = 0
    finished_at: int = 0
    exit_code: int = 0
    reason: str = ""
    message: str = ""
    image: str = ""
    image_ref: str = ""
    sandbox_id: str = ""
    log_path: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)

    @property
    def running(self) -> bool:
        return self.state == RUNNING

    @property
    def exited(self) -> bool:
        return self.state == EXITED

    @property
    def hash(self) -> str:
        return self.annotations.get(naming.CONTAINER_HASH, "")

    @property
    def restart_count(self) -> int:
        try:
            return int(self.annotations.get(naming.RESTART_COUNT, self.attempt))
        except ValueError:
            return self.attempt

    @property
    def init(self) -> bool:
        return self.labels.get(naming.CONTAINER_TYPE) == "init"


@dataclass
class SandboxInfo:
    id: str
    attempt: int
    ready: bool
    created_at: int
    ip: str = ""
    ips: list[str] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)


@dataclass
class PodRuntimeStatus:
    uid: str
    name: str = ""
    namespace: str = ""
    sandboxes: list[SandboxInfo] = field(default_factory=list)  # newest first
    containers: list[ContainerInfo] = field(default_factory=list)  # newest first

    def instances(self, name: str) -> list[ContainerInfo]:
        return [c for c in self.containers if c.name == name]

    def latest(self, name: str) -> ContainerInfo | None:
        for c in self.containers:
            if c.name == name:
                return c
        return None

    @property
    def sandbox(self) -> SandboxInfo | None:
        return self.sandboxes[0] if self.sandboxes else None

    def running_containers(self) -> list[ContainerInfo]:
        return [c for c in self.containers if c.running]


def _uid(labels: dict[str, str]) -> str:
    return labels.get(naming.POD_UID, "")


@dataclass
class RuntimePod:
    """What one relist sees of a pod: the raw list entries."""

    uid: str
    name: str
    namespace: str
    sandboxes: list[pb.PodSandbox] = field(default_factory=list)
    containers: list[pb.Container] = field(default_factory=list)


class Runtime:
    def __init__(self, cri: CRIClient) -> None:
        self.cri = cri
        self._container_cache: dict[str, tuple[int, ContainerInfo]] = {}  # id -> (list state, info)
        self._sandbox_ips: dict[str, tuple[str, list[str]]] = {}

    async def version(self) -> pb.VersionResponse:
        return await self.cri.version()

    async def list_pods(self) -> dict[str, RuntimePod]:
        """Every pod a kubelet created in the runtime, by uid. Sandboxes and containers without the
        kubelet's labels (someone else's, on a shared runtime) are never adopted nor removed."""
        managed = pb.PodSandboxFilter(label_selector={naming.KUBELET_MANAGED: "true"})
        sandboxes, containers = await asyncio.gather(
            self.cri.list_pod_sandbox(managed),
            self.cri.list_containers(pb.ContainerFilter(label_selector={naming.KUBELET_MANAGED: "true"})),
        )
        pods: dict[str, RuntimePod] = {}
        for s in sandboxes:
            uid = _uid(dict(s.labels))
            if not uid:
                continue
            pod = pods.setdefault(uid, RuntimePod(uid, s.metadata.name, s.metadata.namespace))
            pod.sandboxes.append(s)
        for c in containers:
            labels = dict(c.labels)
            uid = _uid(labels)
            if not uid:
                continue
            pod = pods.setdefault(
                uid, RuntimePod(uid, labels.get(naming.POD_NAME, ""), labels.get(naming.POD_NAMESPACE, ""))
            )
            pod.containers.append(c)
        live = {c.id for c in containers}
        for cid in [k for k in self._container_cache if k not in live]:
            del self._container_cache[cid]
        live_sandboxes = {s.id for s in sandboxes}
        for sid in [k for k in self._sandbox_ips if k not in live_sandboxes]:
            del self._sandbox_ips[sid]
        return pods

    async def pod_status(self, uid: str, listed: RuntimePod | None = None) -> PodRuntimeStatus:
        """The detailed status of one pod; `listed` saves the two List calls when known."""
        if listed is None:
            selector = {naming.POD_UID: uid, naming.KUBELET_MANAGED: "true"}
            sandboxes, containers = await asyncio.gather(
                self.cri.list_pod_sandbox(pb.PodSandboxFilter(label_selector=selector)),
                self.cri.list_containers(pb.ContainerFilter(label_selector=selector)),
            )
        else:
            sandboxes, containers = listed.sandboxes, listed.containers
        status = PodRuntimeStatus(uid)
        infos = await asyncio.gather(*(self._container(c) for c in containers))
        status.containers = sorted((i for i in infos if i is not None), key=lambda c: c.created_at, reverse=True)
        for s in sorted(sandboxes, key=lambda s: s.created_at, reverse=True):
            info = SandboxInfo(
                s.id, s.metadata.attempt, s.state == pb.SANDBOX_READY, s.created_at,
                labels=dict(s.labels), annotations=dict(s.annotations),
            )
            status.sandboxes.append(info)
            status.name = status.name or s.metadata.name
            status.namespace = status.namespace or s.metadata.namespace
        if status.sandboxes and status.sandboxes[0].ready:
            newest = status.sandboxes[0]
            newest.ip, newest.ips = await self.sandbox_ips(newest.id)
        for c in status.containers:
            status.name = status.name or c.labels.get(naming.POD_NAME, "")
            status.namespace = status.namespace or c.labels.get(naming.POD_NAMESPACE, "")
        return status

    async def sandbox_ips(self, sandbox_id: str) -> tuple[str, list[str]]:
        cached = self._sandbox_ips.get(sandbox_id)
        if cached is not None:
            return cached
        try:
            resp = await self.cri.pod_sandbox_status(sandbox_id)
        except CRIError as e:
            log.debug("sandbox %s status: %s", sandbox_id, e)
            return "", []
        ip = resp.status.network.ip
        ips = [ip] + [a.ip for a in resp.status.network.additional_ips] if ip else []
        if ip:
            self._sandbox_ips[sandbox_id] = (ip, ips)
        return ip, ips

    async def _container(self, c: pb.Container) -> ContainerInfo | None:
        cached = self._container_cache.get(c.id)
        if cached is not None and cached[0] == c.state:
            return cached[1]
        try:
            resp = await self.cri.container_status(c.id)
        except CRIError as e:
            if e.not_found:
                return None
            raise
        s = resp.status
        info = ContainerInfo(
            id=s.id,
            name=s.metadata.name,
            attempt=s.metadata.attempt,
            state=CONTAINER_STATES.get(s.state, UNKNOWN),
            created_at=s.created_at,
            started_at=s.started_at,
            finished_at=s.finished_at,
            exit_code=s.exit_code,
            reason=s.reason,
            message=s.message,
            image=s.image.image,
            image_ref=s.image_ref,
            sandbox_id=c.pod_sandbox_id,
            log_path=s.log_path,
            labels=dict(s.labels),
            annotations=dict(s.annotations),
        )
        if info.state == CONTAINER_STATES.get(c.state):
            self._container_cache[c.id] = (c.state, info)
        return info

    def forget(self, container_id: str) -> None:
        self._container_cache.pop(container_id, None)

    # -- lifecycle calls ---------------------------------------------------------------------

    async def stop_container(self, container_id: str, grace: int) -> None:
        try:
            await self.cri.stop_container(container_id, max(grace, 0))
        except CRIError as e:
            if not e.not_found:
                raise
        self.forget(container_id)

    async def remove_container(self, container_id: str) -> None:
        with contextlib.suppress(CRIError):
            await self.cri.remove_container(container_id)
        self.forget(container_id)

    async def stop_sandbox(self, sandbox_id: str) -> None:
        try:
            await self.cri.stop_pod_sandbox(sandbox_id)
        except CRIError as e:
            if not e.not_found:
                raise

    async def remove_sandbox(self, sandbox_id: str) -> None:
        try:
            await self.cri.remove_pod_sandbox(sandbox_id)
        except CRIError as e:
            if not e.not_found:
                raise
        self._sandbox_ips.pop(sandbox_id, None)
