"""The kubelet: turns the pods bound to this node into running containers and reports on them.

Sources (the API's pods with spec.nodeName=<node>, static pod manifests) feed per-pod workers;
each sync reads the pod's runtime status from CRI, decides what to do (podactions), does it
(sandbox, init containers in order, containers, kills), and writes the resulting API status
(podstatus → status manager). The PLEG relists CRI every second and wakes the workers of pods
whose containers changed; housekeeping adopts or cleans up what the runtime has that no
source knows. All the state needed after a restart lives in the runtime's labels and
annotations and in the API.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import time
from pathlib import Path
from typing import Any

from apimachinery.podutil import is_restartable_init_container
from apimachinery.quantity import resource_list_ints
from certs import host_ipv4_addresses
from client import (
    NORMAL,
    WARNING,
    APIClient,
    EventRecorder,
    Informer,
    is_conflict,
    is_not_found,
)
from kubelet import activedeadline, logrotation, logs, naming, network
from kubelet.actions import ActionRunner
from kubelet.admission import SysctlAllowlist, admit
from kubelet.backoff import Backoff
from kubelet.cgroups import CgroupManager
from kubelet.config import KubeletConfig
from kubelet.containerconfig import (
    ConfigBuilder,
    ConfigError,
    check_run_as_non_root,
    hosts_file,
    mount,
)
from kubelet.cri import CRIClient, CRIError, pb
from kubelet.envvars import EnvBuilder, EnvError, expand, service_env
from kubelet.eviction import EvictionManager, dir_usage
from kubelet.images import ImageError, ImageManager
from kubelet.machine import machine_info
from kubelet.nodestatus import NodeConditions, NodeManager
from kubelet.objectcache import ObjectCache, pod_object_references
from kubelet.pleg import PLEG
from kubelet.podactions import compute_pod_actions
from kubelet.podstatus import TERMINAL_PHASES, StatusInputs, generate_status
from kubelet.podworkers import FINISHED, PodWorkers
from kubelet.probes import ProbeManager
from kubelet.qos import pod_cgroup_resources, qos_class
from kubelet.runtime import PodRuntimeStatus, Runtime, SandboxInfo
from kubelet.staticpods import StaticPodSource, is_mirror_pod, mirror_pod
from kubelet.status import StatusManager
from kubelet.termination import TerminationOrder, termination_order
from kubelet.tokens import TokenManager
from kubelet.volumes import MountedVolume, VolumeError, VolumeManager, resolve_sub_path

log = logging.getLogger("kubelet")

MIN_GRACE = 2  # upstream minimumGracePeriodInSeconds
TERMINATION_MESSAGE_MAX = 4096
FALLBACK_LOG_LINES = 80
POST_START_TIMEOUT = 120.0
CONTAINER_GC_PERIOD = 60.0
EVENT_DEFER_MAX = 2.0  # seconds an Event may wait for the new pods in flight to start


class RuntimeClassError(Exception):
    """The pod's RuntimeClass could not be resolved (the sandbox is not created; retried with back-off)."""

    @property
    def message(self) -> str:
        return str(self.args[0])


def _grace_of(pod: dict[str, Any]) -> int:
    meta = pod["metadata"]
    if meta.get("deletionGracePeriodSeconds") is not None:
        return int(meta["deletionGracePeriodSeconds"])
    return int((pod.get("spec") or {}).get("terminationGracePeriodSeconds", 30) or 0)


def _regular_container_runs(spec: dict[str, Any], rs: PodRuntimeStatus) -> bool:
    names = {c.get("name") for c in spec.get("containers") or []}
    return any(c.name in names for c in rs.running_containers())


class Kubelet:
    def __init__(self, cfg: KubeletConfig, api: APIClient, cri: CRIClient) -> None:
        self.cfg = cfg
        self.api = api
        self.cri = cri
        self.node_name = cfg.node_name
        self.node_ip = cfg.node_ip or next(iter(host_ipv4_addresses()), "127.0.0.1")
        self.machine = machine_info()
        self.runtime = Runtime(cri)
        self.runtime_version = ""
        self.cgroups = CgroupManager(cfg.cgroup_root)
        self.recorder = EventRecorder(api, "kubelet", self.node_name)
        self.crash_backoff = Backoff(cfg.crash_loop_backoff_initial, cfg.crash_loop_backoff_max)
        self.sandbox_backoff = Backoff(1.0, 60.0)
        self.configmaps = ObjectCache(api, "configmaps", self._object_changed)
        self.secrets = ObjectCache(api, "secrets", self._object_changed)
        self.tokens = TokenManager(api)
        self.conditions = NodeConditions()
        self.node = NodeManager(
            api, cfg, self.machine, self.node_ip, lambda: self.runtime_version, self._node_images, self.conditions
        )
        self.volumes = VolumeManager(cfg.pods_dir, self.configmaps.get, self.secrets.get, self.tokens,
                                     lambda: self.node.allocatable, self._get_pvc, self._get_pv)
        self.images = ImageManager(
            cri, self._get_secret_direct, serialize=cfg.serialize_image_pulls, backoff_max=cfg.image_pull_backoff_max,
            pinned=(cfg.pod_sandbox_image,), on_pulling=self._on_pulling,
        )
        self.actions = ActionRunner(cri)
        self.probes = ProbeManager(self.actions, self._probe_changed, self._probe_event)
        self.env = EnvBuilder(self.configmaps.get, self.secrets.get)
        self.configs = ConfigBuilder(self.node_name, cfg.cluster_dns, cfg.cluster_domain, cfg.resolv_conf,
                                     cfg.logs_dir, self.machine.memory_bytes)
        self.pods_informer = Informer(api, "v1", "pods", field_selector=f"spec.nodeName={self.node_name}")
        self.pods_informer.add_index("uid", lambda p: (p.get("metadata") or {}).get("uid"))
        self.services_informer = Informer(api, "v1", "services")
        self.status = StatusManager(api, self._api_pod)
        self.pod_workers = PodWorkers(self.sync_pod, cfg.sync_frequency)
        self.pleg = PLEG(self.runtime, cfg.pleg_relist_period, self._pleg_changed)
        self.static = (StaticPodSource(cfg.pod_manifest_path, self.node_name, cfg.file_check_frequency,
                                       self._static_changed) if cfg.pod_manifest_path else None)
        self.eviction = EvictionManager(
            cfg, self.conditions, cfg.root_dir, self.active_pods, self._pod_memory_usage, self._pod_disk_usage,
            self._reclaim_images, self._evict, self._conditions_changed,
        )
        self.log_rotation = logrotation.ContainerLogManager(
            cri, cfg.container_log_max_size, cfg.container_log_max_files, cfg.container_log_max_workers,
            cfg.container_log_monitor_interval)
        # per-pod state of the last syncs
        self.waiting: dict[str, dict[str, tuple[str, str]]] = {}  # uid -> container -> (reason, message)
        self.rejected: dict[str, tuple[str, str]] = {}  # uid -> (reason, message) from admission
        self.admitted: set[str] = set()
        self.evicted: dict[str, tuple[str, str]] = {}  # uid -> (message, resource)
        self.deadline_exceeded: set[str] = set()  # pods past spec.activeDeadlineSeconds
        self.sysctls = SysctlAllowlist(cfg.allowed_unsafe_sysctls)
        self._node_object: dict[str, Any] | None = None  # the Node as the informer last saw it
        self.pod_cidr = cfg.pod_cidr
        self.network_ready = False
        self._last_gc = 0.0
        self._started = time.monotonic()
        self._image_list: list[dict[str, Any]] = []
        self._mirror_lock: asyncio.Lock | None = None
        self._network_lock = asyncio.Lock()
        self._peer_exemption = True  # False once this kernel refused the realm match
        start_slots = cfg.max_parallel_pod_starts or 2 * self.machine.cpus
        self._start_slots = asyncio.Semaphore(start_slots)
        # new pods that prepare (volumes, tokens) ahead of a start slot; more would only take
        # CPU from the pods being started
        self._prepare_slots = asyncio.Semaphore(2 * start_slots)
        self._new_pods_in_flight = 0
        self._no_new_pods = asyncio.Event()
        self._no_new_pods.set()
        self.recorder.defer_while_busy(self._no_new_pods, EVENT_DEFER_MAX)
        self._tasks: list[asyncio.Task[Any]] = []
        self._stop = asyncio.Event()

    # ================================================================== sources

    def _api_pod(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.pods_informer.store.get(f"{namespace}/{name}")

    def pod(self, uid: str) -> dict[str, Any] | None:
        """The pod this kubelet should run for `uid` (API or static), or None."""
        if self.static is not None and uid in self.static.pods:
            return self.static.pods[uid]
        found = self.pods_informer.store.by_index("uid", uid)
        if found and not is_mirror_pod(found[0]):
            return found[0]
        return None

    def known_pods(self) -> list[dict[str, Any]]:
        pods = [p for p in self.pods_informer.store.list() if not is_mirror_pod(p)]
        if self.static is not None:
            pods += list(self.static.pods.values())
        return pods

    def active_pods(self) -> list[dict[str, Any]]:
        """Pods admitted here that are neither terminal nor being deleted."""
        out = []
        for p in self.known_pods():
            uid = p["metadata"]["uid"]
            if uid in self.rejected or uid in self.evicted or uid in self.deadline_exceeded:
                continue
            if p["metadata"].get("deletionTimestamp"):
                continue
            if (p.get("status") or {}).get("phase") in TERMINAL_PHASES:
                continue
            out.append(p)
        return out

    def sources_ready(self) -> bool:
        return self.pods_informer.has_synced and (self.static is None or self.static.synced.is_set())

    def _on_pod_event(self, *objs: Any) -> None:
        for obj in objs:
            pod = getattr(obj, "obj", obj)
            if not isinstance(pod, dict):
                continue
            if is_mirror_pod(pod):
                self._sync_mirror_pods()
                if self.static is not None:  # its static pod reports its status through it
                    meta = pod["metadata"]
                    for static in self.static.pods.values():
                        if (static["metadata"]["name"], static["metadata"]["namespace"]) == (meta["name"], meta.get("namespace")):
                            self.pod_workers.update(static["metadata"]["uid"])
                continue
            self.pod_workers.update(pod["metadata"]["uid"])

    def _on_pod_update(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        """Only changes the kubelet must act on (upstream ignores status-only updates, which
        include its own status writes)."""
        if is_mirror_pod(new) or _pod_fingerprint(old) != _pod_fingerprint(new):
            self._on_pod_event(new)
            return
        # a status-only change: readiness gates and phases set by others still matter
        old_status, new_status = old.get("status") or {}, new.get("status") or {}
        if old_status.get("phase") != new_status.get("phase") and new_status.get("phase") in TERMINAL_PHASES:
            self._on_pod_event(new)
        elif (new.get("spec") or {}).get("readinessGates") and old_status.get("conditions") != new_status.get("conditions"):
            self._on_pod_event(new)

    def _static_changed(self) -> None:
        for uid in list(self.static.pods if self.static else []):
            self.pod_workers.update(uid)
        self.pod_workers.update_all()
        self._sync_mirror_pods()

    def _pleg_changed(self, uids: set[str]) -> None:
        for uid in uids:
            if self.pod(uid) is not None or self.sources_ready():
                self.pod_workers.update(uid)

    def _probe_changed(self, uid: str) -> None:
        self.pod_workers.update(uid)

    def _object_changed(self, users: set[str]) -> None:
        for uid in users:
            self.pod_workers.update(uid)

    def _conditions_changed(self) -> None:
        task = asyncio.get_running_loop().create_task(self._update_node_status())
        self._tasks.append(task)

    async def _update_node_status(self) -> None:
        with contextlib.suppress(Exception):
            await self.node.update_status()

    # ================================================================== events

    def _ref(self, pod: dict[str, Any], container: str | None = None, init: bool = False) -> dict[str, Any]:
        meta = pod["metadata"]
        target = pod
        if is_static(pod):
            mirror = self._api_pod(meta.get("namespace", "default"), meta["name"])
            if mirror is not None:
                target = mirror
        ref = {
            "kind": "Pod", "apiVersion": "v1", "namespace": meta.get("namespace", "default"), "name": meta["name"],
            "uid": target["metadata"].get("uid", meta["uid"]),
        }
        if container:
            kind = "initContainers" if init else "ephemeralContainers" if naming.is_ephemeral(pod, container) else "containers"
            ref["fieldPath"] = f"spec.{kind}{{{container}}}"
        return ref

    def event(self, pod: dict[str, Any], etype: str, reason: str, message: str, container: str | None = None,
              init: bool = False) -> None:
        self.recorder.event(self._ref(pod, container, init), etype, reason, message)

    def _probe_event(self, uid: str, container: str, reason: str, message: str) -> None:
        pod = self.pod(uid)
        if pod is not None:
            self.event(pod, WARNING, reason, message, container, self._is_init(pod, {"name": container}))

    def _on_pulling(self, pod: dict[str, Any], container: dict[str, Any], image: str) -> None:
        self.event(pod, NORMAL, "Pulling", f'Pulling image "{image}"', container["name"], self._is_init(pod, container))

    @staticmethod
    def _is_init(pod: dict[str, Any], container: dict[str, Any]) -> bool:
        return any(c.get("name") == container.get("name") for c in (pod.get("spec") or {}).get("initContainers") or [])

    # ================================================================== helpers

    async def _get_or_none(self, plural: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        """A plain GET of one object (what the Node authorizer allows for what the node's pods
        reference), None when it does not exist."""
        try:
            return await self.api.resource("v1", plural).get(name, namespace)
        except Exception as e:
            if is_not_found(e):
                return None
            raise

    async def _get_secret_direct(self, namespace: str, name: str) -> dict[str, Any] | None:
        return await self._get_or_none("secrets", name, namespace)

    async def _get_pvc(self, namespace: str, name: str) -> dict[str, Any] | None:
        """A claim of a pod's volume: read when the volume is set up, not on every sync."""
        return await self._get_or_none("persistentvolumeclaims", name, namespace)

    async def _get_pv(self, name: str) -> dict[str, Any] | None:
        return await self._get_or_none("persistentvolumes", name)

    def _node_images(self) -> list[dict[str, Any]]:
        return self._image_list

    async def _refresh_image_list(self) -> None:
        images = await self.cri.list_images()
        images.sort(key=lambda i: i.size, reverse=True)
        self._image_list = [
            {"names": list(i.repo_digests) + list(i.repo_tags), "sizeBytes": i.size} for i in images
        ]

    def _service_env(self, pod: dict[str, Any]) -> dict[str, str]:
        ns = pod["metadata"].get("namespace", "default")
        links = (pod.get("spec") or {}).get("enableServiceLinks", True) is not False
        services = []
        for svc in self.services_informer.store.list():
            sns = svc["metadata"].get("namespace")
            if sns == "default" and svc["metadata"]["name"] == "kubernetes":
                services.append(svc)
            elif links and sns == ns:
                services.append(svc)
        # the master service wins over a same-named service of the pod's namespace (upstream)
        return service_env(services)

    def pod_ips(self, pod: dict[str, Any], rs: PodRuntimeStatus) -> list[str]:
        if (pod.get("spec") or {}).get("hostNetwork"):
            return [self.node_ip]
        sandbox = rs.sandbox
        return list(sandbox.ips) if sandbox is not None and sandbox.ready and sandbox.ips else []

    def status_inputs(self, pod: dict[str, Any], rs: PodRuntimeStatus, terminating: bool = False) -> StatusInputs:
        uid = pod["metadata"]["uid"]
        ready: dict[str, bool] = {}
        started: dict[str, bool] = {}
        messages: dict[str, str] = {}
        specs = {c["name"]: c for c in (pod.get("spec") or {}).get("containers") or []}
        for c in rs.containers:
            if c.running:
                probe = self.probes.readiness(c.id)
                has_readiness = self.probes.has_probe(uid, c.name, "readiness")
                ready[c.id] = bool(probe) if has_readiness else True
                if self.probes.has_probe(uid, c.name, "startup"):
                    started[c.id] = bool(self.probes.started(c.id))
            elif c.exited:
                messages[c.id] = self.termination_message(c, specs.get(c.name))
        override = None
        evicted = self.evicted.get(uid)
        if evicted is not None:
            override = {
                "type": "DisruptionTarget", "status": "True", "lastProbeTime": None,
                "lastTransitionTime": ((pod.get("status") or {}).get("conditions") and next(
                    (c.get("lastTransitionTime") for c in pod["status"]["conditions"]
                     if c.get("type") == "DisruptionTarget"), None)) or _now(),
                "reason": "TerminationByKubelet", "message": f"{evicted[1]} pressure",
            }
        return StatusInputs(
            host_ip=self.node_ip, ready=ready, started=started, waiting=dict(self.waiting.get(uid, {})),
            terminating=terminating, termination_messages=messages, pod_condition_override=override,
        )

    def termination_message(self, c: Any, spec: dict[str, Any] | None) -> str:
        path = c.annotations.get(naming.TERMINATION_MESSAGE_FILE)
        message = ""
        if path:
            try:
                with open(path, "rb") as f:
                    message = f.read(TERMINATION_MESSAGE_MAX).decode(errors="replace")
            except OSError:
                message = ""
        policy = c.annotations.get(naming.TERMINATION_MESSAGE_POLICY, "File")
        if not message and policy == "FallbackToLogsOnError" and c.exit_code != 0 and c.log_path:
            message = logs.tail_message(c.log_path, FALLBACK_LOG_LINES, 2048)
        return message

    def publish_status(self, pod: dict[str, Any], rs: PodRuntimeStatus, terminating: bool = False) -> dict[str, Any]:
        meta = pod["metadata"]
        target = pod
        if is_static(pod):
            mirror = self._api_pod(meta.get("namespace", "default"), meta["name"])
            if mirror is None:
                return generate_status(pod, rs, self.status_inputs(pod, rs, terminating))
            target = {**pod, "status": mirror.get("status") or {}}
            api_uid = mirror["metadata"]["uid"]
        else:
            target = self._api_pod(meta.get("namespace", "default"), meta["name"]) or pod
            api_uid = meta["uid"]
            if target["metadata"].get("uid") != meta["uid"]:
                target = pod
        status = generate_status({**pod, "status": target.get("status") or {}}, rs,
                                 self.status_inputs(pod, rs, terminating))
        uid = meta["uid"]
        if uid in self.deadline_exceeded:
            status["phase"] = "Failed"
            status["reason"], status["message"] = activedeadline.REASON, activedeadline.MESSAGE
        evicted = self.evicted.get(uid)
        if evicted is not None:
            status["phase"] = "Failed"
            status["reason"] = "Evicted"
            status["message"] = evicted[0]
        rejected = self.rejected.get(uid)
        if rejected is not None:
            status["phase"] = "Failed"
            status["reason"], status["message"] = rejected
        self.status.set_status(meta.get("namespace", "default"), meta["name"], api_uid, status)
        return status

    # ================================================================== the sync

    async def sync_pod(self, uid: str) -> float | None:
        started = time.monotonic()
        try:
            return await self._sync_pod(uid)
        finally:
            log.debug("synced pod %s in %.3fs", uid, time.monotonic() - started)

    async def _sync_pod(self, uid: str) -> float | None:
        pod = self.pod(uid)
        rs = await self.runtime.pod_status(uid)
        if pod is None:
            return await self._sync_gone(uid, rs)
        meta = pod["metadata"]
        if uid not in self.admitted and uid not in self.rejected:
            if not await self._admit(pod, rs):
                self.publish_status(pod, rs)
                return None
        if uid in self.rejected:
            self.publish_status(pod, rs)
            return None
        terminating = bool(meta.get("deletionTimestamp")) or uid in self.evicted
        if terminating:
            return await self._sync_terminating(pod, rs)
        api_phase = ((self._api_pod(meta.get("namespace", "default"), meta["name"]) or pod).get("status") or {}).get("phase")
        # the phase this kubelet decided counts before the API has it: a finished pod's sidecars,
        # stopped when its regular containers were done, must not be restarted meanwhile
        own_phase = (self.status.desired(uid) or {}).get("phase")
        spec = pod.get("spec") or {}
        if (own_phase not in TERMINAL_PHASES and rs.containers and spec.get("restartPolicy", "Always") != "Always"
                and not _regular_container_runs(spec, rs)):
            # as upstream's SyncPod, the status of what the runtime has now comes first: a pod whose
            # containers are done is finished, even if a sidecar exited since (it is not restarted).
            # While a regular container runs the pod cannot be: no status is worked out twice then.
            own_phase = self.publish_status(pod, rs).get("phase")
        if uid not in self.deadline_exceeded and api_phase not in TERMINAL_PHASES and own_phase not in TERMINAL_PHASES:
            left = self._deadline_left(pod)
            if left is not None and left <= 0:
                self.deadline_exceeded.add(uid)
                # upstream's active deadline handler records it as a Normal event
                self.event(pod, NORMAL, activedeadline.REASON, activedeadline.MESSAGE)
                log.info("pod %s: %s", naming.pod_full_name(pod), activedeadline.MESSAGE)
        if uid in self.deadline_exceeded:
            # killed with the pod's grace period; static pods too (upstream's handler is for every pod)
            await self._stop_pod(pod, rs, _grace_of(pod))
            rs = await self.runtime.pod_status(uid)
            self.publish_status(pod, rs, terminating=True)
            self.probes.remove_pod(uid)
            return None
        if (api_phase in TERMINAL_PHASES or own_phase in TERMINAL_PHASES) and not is_static(pod):
            await self._stop_pod(pod, rs, _grace_of(pod))
            rs = await self.runtime.pod_status(uid)
            self.publish_status(pod, rs)
            self.probes.remove_pod(uid)
            return None
        return self._until_deadline(pod, await self._sync_running(pod, rs))

    def _deadline_left(self, pod: dict[str, Any]) -> float | None:
        """Seconds until the pod's active deadline, from the start time this kubelet reported."""
        spec = pod.get("spec") or {}
        if spec.get("activeDeadlineSeconds") is None:
            return None
        meta = pod["metadata"]
        desired = self.status.desired(self._api_uid(pod) or meta["uid"]) or {}
        api = self._api_pod(meta.get("namespace", "default"), meta["name"]) or pod
        start = desired.get("startTime") or (api.get("status") or {}).get("startTime")
        return activedeadline.seconds_left(spec, start, time.time())

    def _until_deadline(self, pod: dict[str, Any], delay: float | None) -> float | None:
        """The next sync comes no later than the pod's active deadline (upstream resyncs a pod that
        is past it on the next housekeeping; here the worker wakes at the deadline itself)."""
        left = self._deadline_left(pod)
        if left is None:
            return delay
        left = max(left, 0.0)
        if delay is None:
            return left if left < self.cfg.sync_frequency else None
        return min(delay, left)

    async def _admit(self, pod: dict[str, Any], rs: PodRuntimeStatus) -> bool:
        """Upstream's kubelet admission: no node pressure, then kubelet.admission's checks (sysctls,
        OS, resources, node affinity, host ports, NoExecute taints). Pods that already run (after a
        kubelet restart) are admitted as they are."""
        uid = pod["metadata"]["uid"]
        if rs.containers or rs.sandboxes or (pod.get("status") or {}).get("phase") == "Running":
            self.admitted.add(uid)
            return True
        ok, reason, message = self.eviction.admit(pod)
        rejection = None if ok else (reason, message)
        if rejection is None:
            rejection = self._admission(pod, self._admission_node())
            if rejection is not None and rejection[0] == "NodeAffinity":
                # as upstream: only node labels failed; they may be newer in the API than here
                with contextlib.suppress(Exception):
                    fresh = await self._get_or_none("nodes", self.node_name)
                    if fresh is not None:
                        self._node_object = fresh
                        rejection = self._admission(pod, fresh)
        if rejection is None:
            self.admitted.add(uid)
            return True
        reason, message = rejection
        self.rejected[uid] = (reason, f"Pod was rejected: {message}")
        self.event(pod, WARNING, reason, message)
        log.info("pod %s rejected: %s", naming.pod_full_name(pod), message)
        return False

    def _admission_node(self) -> dict[str, Any]:
        node = self._node_object or self.node.node
        if node is None:  # not registered yet: what it will be registered as (upstream's initialNode)
            return {"metadata": {"name": self.node_name, "labels": self.node.labels()},
                    "spec": {"taints": list(self.cfg.register_with_taints)}}
        return node

    def _admission(self, pod: dict[str, Any], node: dict[str, Any]) -> tuple[str, str] | None:
        # the node's own resources as this kubelet counts them, extended ones as the Node reports them
        allocatable = {**resource_list_ints((node.get("status") or {}).get("allocatable")), **self.node.allocatable}
        others = [p for p in self.active_pods() if p["metadata"]["uid"] in self.admitted]
        return admit(pod, node, allocatable, others, self.sysctls, is_static(pod))

    async def _sync_gone(self, uid: str, rs: PodRuntimeStatus) -> float | None:
        """No source has the pod: stop and remove whatever the runtime still has of it."""
        if not self.sources_ready():
            return 2.0
        if rs.running_containers() or any(s.ready for s in rs.sandboxes):
            await self._stop_pod(None, rs, None)
            rs = await self.runtime.pod_status(uid)
        clean = await self._remove_pod_resources(uid, rs)
        if not clean:
            return 5.0
        self._forget(uid)
        return FINISHED

    async def _sync_terminating(self, pod: dict[str, Any], rs: PodRuntimeStatus) -> float | None:
        uid = pod["metadata"]["uid"]
        grace = _grace_of(pod)
        if uid in self.evicted:
            grace = 0
        await self._stop_pod(pod, rs, grace)
        rs = await self.runtime.pod_status(uid)
        if rs.running_containers():
            return 1.0
        self.probes.remove_pod(uid)
        self.publish_status(pod, rs, terminating=True)
        api_uid = self._api_uid(pod)
        if api_uid:
            await self.status.flush(api_uid)
        if pod["metadata"].get("deletionTimestamp") and not is_static(pod):
            if not self.volumes.teardown(uid):
                return 2.0
            try:
                await self.api.resource("v1", "pods").delete(
                    pod["metadata"]["name"], pod["metadata"].get("namespace"), grace_period_seconds=0,
                    preconditions={"uid": uid},
                )
            except Exception as e:
                if not (is_not_found(e) or is_conflict(e)):
                    log.warning("deleting pod %s: %s", naming.pod_full_name(pod), e)
                    return 2.0
            return None  # the informer's delete event brings the final sync
        return None  # evicted: stays Failed in the API until someone deletes it

    def _api_uid(self, pod: dict[str, Any]) -> str:
        meta = pod["metadata"]
        api = self._api_pod(meta.get("namespace", "default"), meta["name"])
        if api is None:
            return ""
        return api["metadata"]["uid"]

    async def _sync_running(self, pod: dict[str, Any], rs: PodRuntimeStatus) -> float | None:
        if rs.sandboxes:
            return await self._sync_pod_containers(pod, rs)
        # a new pod: on a busy node the CPU goes first to bringing pods up; what does not (the
        # Events, later pods' volumes) waits for it
        async with self._prepare_slots:
            self._new_pods_in_flight += 1
            self._no_new_pods.clear()
            try:
                return await self._sync_pod_containers(pod, rs)
            finally:
                self._new_pods_in_flight -= 1
                if not self._new_pods_in_flight:
                    self._no_new_pods.set()

    async def _sync_pod_containers(self, pod: dict[str, Any], rs: PodRuntimeStatus) -> float | None:
        uid = pod["metadata"]["uid"]
        spec = pod.get("spec") or {}
        if not self.network_ready and not spec.get("hostNetwork"):
            self.waiting.setdefault(uid, {})
            self.publish_status(pod, rs)
            self.event(pod, WARNING, "NetworkNotReady",
                       "network is not ready: container runtime network not ready: NetworkReady=false "
                       "reason:NetworkPluginNotReady message:Network plugin returns error: cni plugin not initialized")
            return 2.0
        qos = qos_class(spec)
        cgroup = self.cgroups.pod_cgroup(uid, qos) if self.cfg.cgroups_per_qos else ""
        if cgroup:
            try:
                self.cgroups.ensure(cgroup, pod_cgroup_resources(spec))
            except OSError as e:
                log.warning("pod %s: cgroup %s: %s", naming.pod_full_name(pod), cgroup, e)
        cms, secs = pod_object_references(pod)
        self.configmaps.set_references(uid, cms)
        self.secrets.set_references(uid, secs)
        ips = self.pod_ips(pod, rs)
        try:
            volumes = await self.volumes.setup(pod, self.node_ip, ips)
        except VolumeError as e:
            self.event(pod, WARNING, "FailedMount", str(e))
            self.publish_status(pod, rs)
            return 2.0
        probe_failures = {}
        startup_passed = set()
        for c in rs.running_containers():
            failure = self.probes.failure(c.id)
            if failure is not None:
                probe_failures[c.id] = failure
            if self.probes.started(c.id):
                startup_passed.add(c.id)
        actions = compute_pod_actions(pod, rs, probe_failures, startup_passed)
        retry: list[float] = []
        if actions.kill_pod:
            await self._stop_pod(pod, rs, int(spec.get("terminationGracePeriodSeconds", 30) or 0),
                                 keep_sandbox=False)
        for cid, why in ({} if actions.kill_pod else actions.kill).items():  # the pod's stop killed them all
            c = next((x for x in rs.containers if x.id == cid), None)
            if c is not None and c.running:
                await self.kill_container(pod, c, None, why)
        sandbox_id = actions.sandbox_id
        if not actions.create_sandbox and (actions.kill_pod or not sandbox_id):
            rs = await self.runtime.pod_status(uid)
            self.publish_status(pod, rs)
            return None
        sandbox_key, handler = f"{uid}/sandbox", ""
        if actions.create_sandbox:
            remaining = self.sandbox_backoff.remaining_since_last(sandbox_key)
            if remaining > 0:
                self.publish_status(pod, rs)
                return remaining
            try:  # before a start slot is taken: a slow apiserver must not hold one
                handler = await self.runtime_handler(pod)
            except RuntimeClassError as e:
                return self._sandbox_failed(pod, rs, sandbox_key, e.message)
        # a new pod's start waits for one of a few slots: on a busy node, starting everything at
        # once makes every pod as slow as the last one (the runtime's throughput is the same)
        slot = self._start_slots if actions.create_sandbox else contextlib.nullcontext()
        async with slot:
            if actions.create_sandbox:
                try:
                    sandbox_id = await self.create_sandbox(pod, actions.attempt, cgroup, handler)
                except CRIError as e:
                    return self._sandbox_failed(pod, rs, sandbox_key, e.message)
                self.sandbox_backoff.reset(sandbox_key)
                ip, all_ips = await self.runtime.sandbox_ips(sandbox_id)
                rs.sandboxes.insert(0, SandboxInfo(sandbox_id, actions.attempt, True, time.time_ns(), ip, all_ips))
                ips = self.pod_ips(pod, rs)
                if _uses_pod_ip(pod):
                    with contextlib.suppress(VolumeError):
                        volumes = await self.volumes.setup(pod, self.node_ip, ips)  # podIP for downward API
            # ephemeral containers first, as upstream: a debugger starts even when an init container cannot
            to_start = [(self._container_spec(pod, name, "ephemeralContainers"), False) for name in actions.ephemeral]
            to_start += [(self._container_spec(pod, name, "initContainers"), True) for name in actions.start_init]
            to_start += [(self._container_spec(pod, name, "containers"), False) for name in actions.start]
            if to_start or actions.create_sandbox:
                # only what a container start needs: a running pod's periodic sync does nothing here
                self._write_hosts_file(pod, ips)
            if to_start:
                sandbox_config = self.configs.sandbox_config(pod, actions.attempt, cgroup)
            for container, init in to_start:
                delay = await self.start_container(pod, container, init, rs, sandbox_id, sandbox_config, volumes, ips)
                if delay is not None:
                    retry.append(delay)
                    if init and not is_restartable_init_container(container):
                        break  # the init sequence stops at a container that did not start (upstream)
                elif (init and not actions.initialized and is_restartable_init_container(container)
                      and not container.get("startupProbe")):
                    # a sidecar without a startup probe counts as started once it runs: the
                    # sequence goes on at once (a startup probe's success wakes the pod itself)
                    retry.append(0.0)
        if (actions.kill or actions.start or actions.ephemeral or actions.start_init or actions.create_sandbox
                or actions.kill_pod):
            rs = await self.runtime.pod_status(uid)
            self.pleg.observed(rs)
        self.probes.sync_pod(pod, rs, ips[0] if ips else "")
        self.publish_status(pod, rs)
        return min(retry) if retry else None

    def _container_spec(self, pod: dict[str, Any], name: str, key: str) -> dict[str, Any]:
        return next(c for c in (pod.get("spec") or {}).get(key) or [] if c["name"] == name)

    def _write_hosts_file(self, pod: dict[str, Any], ips: list[str]) -> Path:
        path = self.volumes.pod_dir(pod["metadata"]["uid"]) / "etc-hosts"
        host_hosts = ""
        if (pod.get("spec") or {}).get("hostNetwork"):
            with contextlib.suppress(OSError):
                host_hosts = Path("/etc/hosts").read_text()
        text = hosts_file(pod, ips, self.node_name, self.cfg.cluster_domain, host_hosts)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            if path.read_text() == text:
                return path
        except OSError:
            pass
        tmp = path.with_name(".etc-hosts.tmp")
        tmp.write_text(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
        return path

    async def runtime_handler(self, pod: dict[str, Any]) -> str:
        """The CRI runtime handler of the pod's RuntimeClass ("": the runtime's default)."""
        name = (pod.get("spec") or {}).get("runtimeClassName")
        if not name:
            return ""
        try:
            rc = await self.api.resource("node.k8s.io/v1", "runtimeclasses").get(name)
        except Exception as e:
            if is_not_found(e):
                raise RuntimeClassError(f'runtimeclass.node.k8s.io "{name}" not found') from None
            raise RuntimeClassError(f"failed to lookup RuntimeClass {name}: {e}") from None
        return str(rc.get("handler") or "")

    def _sandbox_failed(self, pod: dict[str, Any], rs: PodRuntimeStatus, key: str, message: str) -> float:
        """The pod's sandbox could not be made: upstream's event, the status, the back-off's delay."""
        self.sandbox_backoff.next(key, time.time())
        self.event(pod, WARNING, "FailedCreatePodSandBox", f"Failed to create pod sandbox: {message}")
        self.publish_status(pod, rs)
        return self.sandbox_backoff.delay(key)

    async def create_sandbox(self, pod: dict[str, Any], attempt: int, cgroup: str, handler: str = "") -> str:
        config = self.configs.sandbox_config(pod, attempt, cgroup)
        Path(config.log_directory).mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - a local mkdir
        log.debug("pod %s: creating sandbox (attempt %d)", naming.pod_full_name(pod), attempt)
        sandbox_id = await self.cri.run_pod_sandbox(config, runtime_handler=handler)
        log.info("pod %s: sandbox %s (attempt %d) running", naming.pod_full_name(pod), sandbox_id[:12], attempt)
        return sandbox_id

    async def start_container(
        self,
        pod: dict[str, Any],
        c: dict[str, Any],
        init: bool,
        rs: PodRuntimeStatus,
        sandbox_id: str,
        sandbox_config: pb.PodSandboxConfig,
        volumes: dict[str, MountedVolume],
        ips: list[str],
    ) -> float | None:
        """Start one container; returns when the pod wants its next sync (a back-off), or None."""
        uid = pod["metadata"]["uid"]
        name = c["name"]
        waiting = self.waiting.setdefault(uid, {})
        latest = rs.latest(name)
        restart_count = latest.restart_count + 1 if latest is not None else 0
        if latest is not None and not latest.running:
            key = f"{uid}/{name}/{naming.container_hash(c)}"
            finished = latest.finished_at / 1e9 if latest.finished_at else time.time()
            remaining = self.crash_backoff.remaining(key, finished)
            if remaining > 0:
                delay = self.crash_backoff.delay(key)
                waiting[name] = ("CrashLoopBackOff", f"back-off {int(delay)}s restarting failed container={name} "
                                 f"pod={pod['metadata']['name']}_{pod['metadata'].get('namespace')}({uid})")
                self.event(pod, WARNING, "BackOff",
                           f"Back-off restarting failed container {name} in pod {naming.pod_full_name(pod)}({uid})",
                           name, init)
                return remaining
            self.crash_backoff.next(key, finished)
        try:
            pull_secrets = await self.images.pull_secrets(pod)
            pulled = await self.images.ensure(pod, c, pull_secrets)
        except ImageError as e:
            waiting[name] = (e.reason, e.message)
            if e.reason == "ImagePullBackOff":
                self.event(pod, NORMAL, "BackOff", f'Back-off pulling image "{c.get("image")}"', name, init)
                return e.retry_after
            self.event(pod, WARNING, "Failed", e.message, name, init)
            self.event(pod, WARNING, "Failed", f"Error: {e.reason}", name, init)
            return e.retry_after
        self.event(pod, NORMAL, pulled.event_reason, pulled.event_message, name, init)
        try:
            target_id = _target_id(c, rs)
            config = await self._container_config(pod, c, init, restart_count, pulled.image_ref, volumes, ips,
                                                  target_id)
        except (EnvError, ConfigError, ValueError) as e:
            waiting[name] = ("CreateContainerConfigError", str(e))
            self.event(pod, WARNING, "Failed", f"Error: {e}", name, init)
            return 2.0
        try:
            cid = await self.cri.create_container(sandbox_id, config, sandbox_config)
        except CRIError as e:
            waiting[name] = ("CreateContainerError", e.message)
            self.event(pod, WARNING, "Failed", f"Error: {e.message}", name, init)
            return 2.0
        self.event(pod, NORMAL, "Created", f"Created container: {name}", name, init)
        try:
            await self.cri.start_container(cid)
        except CRIError as e:
            waiting[name] = ("RunContainerError", e.message)
            self.event(pod, WARNING, "Failed", f"Error: {e.message}", name, init)
            return None
        waiting.pop(name, None)
        self.event(pod, NORMAL, "Started", f"Started container {name}", name, init)
        hook = (c.get("lifecycle") or {}).get("postStart")
        if hook:
            ok, message = await asyncio.wait_for(
                self.actions.run(hook, c, cid, ips[0] if ips else "", POST_START_TIMEOUT), POST_START_TIMEOUT + 5
            )
            if not ok:
                self.event(pod, WARNING, "FailedPostStartHook", f"PostStartHook failed: {message}", name, init)
                info = await self._container_info(cid)
                if info is not None:
                    await self.kill_container(pod, info, None, "FailedPostStartHook")
                waiting[name] = ("PostStartHookError", message)
        return None

    async def _container_info(self, cid: str):
        rs_containers = await self.cri.list_containers(pb.ContainerFilter(id=cid))
        if not rs_containers:
            return None
        return await self.runtime._container(rs_containers[0])

    async def _container_config(
        self, pod: dict[str, Any], c: dict[str, Any], init: bool, restart_count: int, image_ref: str,
        volumes: dict[str, MountedVolume], ips: list[str], target_id: str = "",
    ) -> pb.ContainerConfig:
        uid = pod["metadata"]["uid"]
        env, warnings = await self.env.build(pod, c, self._service_env(pod), self.node_ip, ips, self.node.allocatable)
        for w in warnings:
            self.event(pod, WARNING, "InvalidEnvironmentVariableNames", w, c["name"], init)
        lookup = dict(env)
        command = [expand(x, lookup) for x in c.get("command") or []]
        args = [expand(x, lookup) for x in c.get("args") or []]
        sc = (c.get("securityContext") or {})
        pod_sc = ((pod.get("spec") or {}).get("securityContext") or {})
        if sc.get("runAsNonRoot") or pod_sc.get("runAsNonRoot"):
            check_run_as_non_root(pod, c, await self.cri.image_status(image_ref))
        mounts = []
        mounted_paths = set()
        for vm in c.get("volumeMounts") or []:
            vol = volumes.get(vm.get("name", ""))
            if vol is None:
                raise ConfigError(f"cannot find volume \"{vm.get('name')}\" to mount into container \"{c['name']}\"")
            host_path = vol.host_path
            sub_path = vm.get("subPath") or ""
            if vm.get("subPathExpr"):
                sub_path = expand(vm["subPathExpr"], lookup)
            if sub_path:
                host_path = resolve_sub_path(host_path, sub_path)
            read_only = bool(vm.get("readOnly")) or vol.read_only
            mounts.append(mount(vm["mountPath"], host_path, read_only, vm.get("mountPropagation")))
            mounted_paths.add(vm["mountPath"].rstrip("/"))
        hosts = self.volumes.pod_dir(uid) / "etc-hosts"
        if "/etc/hosts" not in mounted_paths and hosts.exists():
            mounts.append(mount("/etc/hosts", str(hosts), False))
        termination_file = ""
        path = c.get("terminationMessagePath") or "/dev/termination-log"
        if path.rstrip("/") not in mounted_paths:
            directory = self.volumes.pod_dir(uid) / "containers" / c["name"]
            directory.mkdir(parents=True, exist_ok=True)
            tf = directory / secrets.token_hex(4)
            tf.touch()
            os.chmod(tf, 0o666)
            termination_file = str(tf)
            mounts.append(mount(path, termination_file, False))
        return self.configs.container_config(
            pod, c, init=init, restart_count=restart_count, image_ref=image_ref, env=env, command=command,
            args=args, mounts=mounts, termination_file=termination_file, target_id=target_id,
        )

    # ================================================================== killing

    async def kill_container(self, pod: dict[str, Any] | None, c: Any, grace: int | None, reason: str,
                             order: TerminationOrder | None = None) -> None:
        """preStop (if any), then — a sidecar once the containers it outlives stopped (`order`) —
        StopContainer with what is left of the grace period."""
        try:
            await self._kill_container(pod, c, grace, reason, order)
        finally:
            if order is not None:
                order.stopped(c.name)

    async def _kill_container(self, pod: dict[str, Any] | None, c: Any, grace: int | None, reason: str,
                              order: TerminationOrder | None) -> None:
        spec = None
        if pod is not None:
            pod_spec = pod.get("spec") or {}
            spec = next((x for key in ("containers", "initContainers") for x in pod_spec.get(key) or []
                         if x["name"] == c.name), None)
        if grace is None:
            if pod is not None:
                grace = _grace_of(pod)
                if spec is not None and "probe" in reason:
                    kind = "livenessProbe" if "liveness" in reason else "startupProbe"
                    override = (spec.get(kind) or {}).get("terminationGracePeriodSeconds")
                    if override is not None:
                        grace = int(override)
            else:
                try:
                    grace = int(c.annotations.get(naming.POD_DELETION_GRACE)
                                or c.annotations.get(naming.POD_TERMINATION_GRACE) or 30)
                except ValueError:
                    grace = 30
        grace = max(grace, MIN_GRACE)
        if pod is not None:
            # as upstream's killContainer: the reason the sync gave, else a plain stop
            self.event(pod, NORMAL, "Killing", reason or f"Stopping container {c.name}", c.name,
                       self._is_init(pod, {"name": c.name}))
        started = time.monotonic()
        pre_stop = (spec or {}).get("lifecycle", {}).get("preStop") if spec else None
        if pre_stop is None and c.annotations.get(naming.PRE_STOP_HANDLER):
            with contextlib.suppress(ValueError):
                pre_stop = json.loads(c.annotations[naming.PRE_STOP_HANDLER])
        if pre_stop and c.running:
            ip = ""
            if pod is not None:
                ip = ((self._api_pod(pod["metadata"].get("namespace", "default"), pod["metadata"]["name"]) or pod)
                      .get("status") or {}).get("podIP", "")
            try:
                ok, msg = await asyncio.wait_for(self.actions.run(pre_stop, spec or {}, c.id, ip, grace), grace)
            except TimeoutError:
                ok, msg = False, f"PreStopHook did not finish within the grace period ({grace}s)"
            if not ok and pod is not None:
                self.event(pod, WARNING, "FailedPreStopHook", f"PreStopHook failed: {msg}", c.name,
                           self._is_init(pod, {"name": c.name}))
        # upstream subtracts the whole seconds the hook took, and those waited for its turn
        remaining = grace - int(time.monotonic() - started)
        if order is not None and remaining > 0:
            remaining -= await order.wait_for_turn(c.name, remaining)
        remaining = max(remaining, MIN_GRACE)
        try:
            await self.runtime.stop_container(c.id, remaining)
        except CRIError as e:
            log.warning("stopping container %s: %s", c.id[:12], e)

    async def _stop_pod(self, pod: dict[str, Any] | None, rs: PodRuntimeStatus, grace: int | None,
                        keep_sandbox: bool = False) -> None:
        live = [c for c in rs.containers if c.running or c.state == "created"]
        running = [c for c in live if c.running]
        order = termination_order(pod, {c.name for c in running})
        await asyncio.gather(*(self.kill_container(pod, c, grace, "", order) for c in running))
        for c in live:
            if c.state == "created":
                await self.runtime.remove_container(c.id)
        if not keep_sandbox:
            for s in rs.sandboxes:
                if s.ready:
                    try:
                        await self.runtime.stop_sandbox(s.id)
                    except CRIError as e:
                        log.warning("stopping sandbox %s: %s", s.id[:12], e)

    async def _remove_pod_resources(self, uid: str, rs: PodRuntimeStatus) -> bool:
        for c in rs.containers:
            await self.runtime.remove_container(c.id)
        for s in rs.sandboxes:
            try:
                await self.runtime.stop_sandbox(s.id)
                await self.runtime.remove_sandbox(s.id)
            except CRIError as e:
                log.warning("removing sandbox %s: %s", s.id[:12], e)
                return False
        clean = self.volumes.teardown(uid)
        if not clean:
            log.info("pod %s: volumes not torn down yet", uid)
        for cgroup_uid, cgroup in self.cgroups.pod_cgroups().items():
            if cgroup_uid == uid and not self.cgroups.remove(cgroup):
                log.info("pod %s: cgroup %s not removed yet", uid, cgroup)
                clean = False
        for directory in self.cfg.logs_dir.glob(f"*_{uid}") if self.cfg.logs_dir.exists() else []:
            import shutil

            shutil.rmtree(directory, ignore_errors=True)
        return clean

    def _forget(self, uid: str) -> None:
        self.waiting.pop(uid, None)
        self.rejected.pop(uid, None)
        self.admitted.discard(uid)
        self.evicted.pop(uid, None)
        self.deadline_exceeded.discard(uid)
        self.sandbox_backoff.forget_prefix(f"{uid}/")
        self.probes.remove_pod(uid)
        self.configmaps.forget_pod(uid)
        self.secrets.forget_pod(uid)
        self.tokens.forget_pod(uid)
        self.volumes.forget_pod(uid)
        self.images.forget_pod(uid)
        self.crash_backoff.forget_prefix(uid + "/")
        self.status.forget(uid)

    # ================================================================== eviction hooks

    def _pod_memory_usage(self, pod: dict[str, Any]) -> int:
        spec = pod.get("spec") or {}
        usage = self.cgroups.memory_usage(self.cgroups.pod_cgroup(pod["metadata"]["uid"], qos_class(spec)))
        return usage[1] if usage else 0

    async def _pod_disk_usage(self, pod: dict[str, Any]) -> int:
        uid = pod["metadata"]["uid"]
        total = await asyncio.to_thread(dir_usage, self.volumes.pod_dir(uid))
        total += await asyncio.to_thread(dir_usage, self.configs.log_directory(pod))
        with contextlib.suppress(CRIError):
            for s in await self.cri.list_container_stats(pb.ContainerStatsFilter(label_selector={naming.POD_UID: uid})):
                total += s.writable_layer.used_bytes.value
        return total

    async def _reclaim_images(self) -> int:
        in_use = {c.image_ref for p in self.pleg.pods.values() for c in p.containers}
        in_use |= {c.image.image for p in self.pleg.pods.values() for c in p.containers}
        return await self.images.garbage_collect(in_use, 0, 0, force=True)

    async def _evict(self, pod: dict[str, Any], message: str, resource: str) -> bool:
        uid = pod["metadata"]["uid"]
        if uid in self.evicted:
            return False
        self.evicted[uid] = (message, resource)
        self.event(pod, WARNING, "Evicted", message)
        log.warning("evicting pod %s: %s", naming.pod_full_name(pod), message)
        self.pod_workers.update(uid)
        return True

    # ================================================================== mirror pods

    def _sync_mirror_pods(self) -> None:
        if self.static is None:
            return
        self._tasks.append(asyncio.get_running_loop().create_task(self._reconcile_mirror_pods()))

    async def _reconcile_mirror_pods(self) -> None:
        if self.static is None or not self.pods_informer.has_synced or not self.node.registered.is_set():
            return
        if self._mirror_lock is None:
            self._mirror_lock = asyncio.Lock()
        async with self._mirror_lock:
            pods = self.api.resource("v1", "pods")
            wanted = {(p["metadata"]["namespace"], p["metadata"]["name"]): p for p in self.static.pods.values()}
            for mirror in [p for p in self.pods_informer.store.list() if is_mirror_pod(p)]:
                key = (mirror["metadata"].get("namespace"), mirror["metadata"]["name"])
                static = wanted.get(key)
                stale = static is None or mirror["metadata"]["annotations"].get(naming.CONFIG_MIRROR) != static["metadata"]["uid"]
                if stale and not mirror["metadata"].get("deletionTimestamp"):
                    with contextlib.suppress(Exception):
                        await pods.delete(key[1], key[0], grace_period_seconds=0,
                                          preconditions={"uid": mirror["metadata"]["uid"]})
            for key, static in wanted.items():
                existing = self._api_pod(*key)
                if existing is not None:
                    if existing["metadata"].get("deletionTimestamp") and is_mirror_pod(existing):
                        # someone deleted the mirror pod: it goes at once, and is recreated
                        with contextlib.suppress(Exception):
                            await pods.delete(key[1], key[0], grace_period_seconds=0)
                    continue
                try:
                    await pods.create(mirror_pod(static, self.node.node), key[0])
                    log.info("created mirror pod %s/%s", *key)
                except Exception as e:
                    log.warning("creating mirror pod %s/%s: %s", key[0], key[1], e)

    # ================================================================== network

    def _on_node(self, node: dict[str, Any]) -> None:
        self._node_object = node
        cidr = (node.get("spec") or {}).get("podCIDR") or self.cfg.pod_cidr
        if (cidr and cidr != self.pod_cidr) or (cidr and not self.network_ready):
            self.pod_cidr = cidr
            self._tasks.append(asyncio.get_running_loop().create_task(self.configure_network()))

    async def configure_network(self) -> None:
        async with self._network_lock:  # node events and housekeeping may ask at the same time
            await self._configure_network()

    async def _configure_network(self) -> None:
        cidr = self.pod_cidr
        if not cidr:
            return
        # The host rules first: the CNI config makes the runtime report NetworkReady (and so the
        # node Ready), and pods must not start before their traffic is accepted and guarded.
        if self.cfg.manage_iptables:
            try:
                await self._ensure_filter_rules(cidr)
            except (RuntimeError, OSError, TimeoutError) as e:
                log.warning("iptables rules: %s", e)
        network.write_cni_config(self.cfg.cni_dir, self.cfg.cni_network_name, self.cfg.cni_bridge, cidr,
                                 self.cfg.root / "cni" / "ipam")
        if not self.network_ready:
            log.info("pod network configured: %s on bridge %s", cidr, self.cfg.cni_bridge)

    async def _ensure_filter_rules(self, cidr: str) -> None:
        uplink = network.uplink_interface()
        failed: RuntimeError | None = None
        if self._peer_exemption:
            rules = network.desired_rules(cidr, self.cfg.cluster_cidr, uplink, self.cfg.guard_pod_egress)
            try:
                await network.ensure_filter_rules(self.cfg.cni_bridge, rules)
                return
            except RuntimeError as e:
                failed = e
        rules = network.desired_rules(cidr, self.cfg.cluster_cidr, uplink, self.cfg.guard_pod_egress, False)
        await network.ensure_filter_rules(self.cfg.cni_bridge, rules)
        if self._peer_exemption:
            # only the exemption failed: a kernel without the realm match. The guard stays whole.
            log.warning("the uplink guard cannot let through routes to other nodes' pods (%s): pods reach "
                        "only this node's pods", failed)
            self._peer_exemption = False

    async def _runtime_status_loop(self, stop: asyncio.Event) -> None:
        was_ready = None
        while not stop.is_set():
            try:
                status = await self.cri.status()
                conds = {c.type: c for c in status.status.conditions}
                rt = conds.get("RuntimeReady")
                net = conds.get("NetworkReady")
                self.conditions.runtime.runtime_ready = bool(rt and rt.status)
                self.conditions.runtime.network_ready = bool(net and net.status)
                self.conditions.runtime.message = "" if rt and rt.status else (rt.message if rt else "")
                ready = self.conditions.runtime.network_ready and bool(self.pod_cidr)
                self.network_ready = ready
                if ready and not was_ready:
                    self.pod_workers.update_all()
                    for pod in self.known_pods():
                        self.pod_workers.update(pod["metadata"]["uid"])
                if ready != was_ready:
                    await self._update_node_status()
                was_ready = ready
            except CRIError as e:
                self.conditions.runtime.runtime_ready = False
                self.conditions.runtime.message = e.message
                self.network_ready = False
            self.conditions.pleg_healthy = self.pleg.healthy() or time.monotonic() - self._started < 60
            try:
                await asyncio.wait_for(stop.wait(), 1.0 if not self.network_ready else 5.0)
            except TimeoutError:
                pass

    # ================================================================== housekeeping

    async def housekeeping(self) -> None:
        if not self.sources_ready():
            return
        known = {p["metadata"]["uid"] for p in self.known_pods()}
        for uid in known:
            if uid not in self.pod_workers.workers:
                self.pod_workers.update(uid)
        for uid in self.pleg.pods:
            if uid not in known and uid not in self.pod_workers.workers:
                self.pod_workers.update(uid)  # orphaned runtime pod: its worker removes it
        runtime_uids = set(self.pleg.pods)
        for uid in self.volumes.pod_uids_on_disk():
            if uid not in known and uid not in runtime_uids and uid not in self.pod_workers.workers:
                self.volumes.teardown(uid)
        for uid, cgroup in self.cgroups.pod_cgroups().items():
            if uid not in known and uid not in runtime_uids and uid not in self.pod_workers.workers:
                self.cgroups.remove(cgroup)
        live = {c.id for p in self.pleg.pods.values() for c in p.containers}
        self.probes.forget_containers(live)
        if time.monotonic() - self._last_gc > CONTAINER_GC_PERIOD:
            self._last_gc = time.monotonic()
            await self.container_gc(known)
            self.crash_backoff.gc()
            if self.pod_cidr:
                await self.configure_network()  # put back rules someone else flushed
            with contextlib.suppress(CRIError):
                await self._refresh_image_list()

    async def container_gc(self, known: set[str]) -> None:
        """Keep, per container of a live pod, the newest instance and one exited one before it."""
        for uid, rp in self.pleg.pods.items():
            if uid not in known:
                continue
            rs = await self.runtime.pod_status(uid, rp)
            by_name: dict[str, list[Any]] = {}
            for c in rs.containers:
                by_name.setdefault(c.name, []).append(c)
            for instances in by_name.values():
                keep_exited = 1 if instances[0].running else 2
                exited = [c for c in instances if c.exited]
                for c in exited[keep_exited:]:
                    await self.runtime.remove_container(c.id)
                    logrotation.clean(c.log_path)  # with its rotated files
            in_use = {c.sandbox_id for c in rs.containers}
            for s in rs.sandboxes[1:]:
                if not s.ready and s.id not in in_use:
                    with contextlib.suppress(CRIError):
                        await self.runtime.remove_sandbox(s.id)

    async def _housekeeping_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.housekeeping()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("housekeeping failed")
            try:
                await asyncio.wait_for(stop.wait(), self.cfg.housekeeping_interval)
            except TimeoutError:
                pass

    async def _image_gc_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), self.cfg.image_gc_period)
                return
            except TimeoutError:
                pass
            try:
                in_use = {c.image_ref for p in self.pleg.pods.values() for c in p.containers}
                await self.images.garbage_collect(in_use, self.cfg.image_gc_high_threshold_percent,
                                                  self.cfg.image_gc_low_threshold_percent)
            except Exception as e:
                log.warning("image gc: %s", e)

    async def _token_refresh_loop(self, stop: asyncio.Event) -> None:
        """Resync pods whose projected tokens are due for a refresh (volumes rewrite them)."""
        while not stop.is_set():
            wait = self.tokens.next_refresh()
            try:
                await asyncio.wait_for(stop.wait(), min(wait if wait is not None else 60.0, 60.0) + 1.0)
                return
            except TimeoutError:
                pass
            self.pod_workers.update_all()

    # ================================================================== lifecycle

    def ready(self) -> bool:
        return self.sources_ready() and self.node.registered.is_set()

    async def run(self, stop: asyncio.Event) -> None:
        self._stop = stop
        version = await self.cri.version()
        self.runtime_version = f"{version.runtime_name}://{version.runtime_version}"
        log.info("kubelet %s on %s (%s), runtime %s", self.node_name, self.node_ip, self.machine.os_image,
                 self.runtime_version)
        for d in (self.cfg.root, self.cfg.pods_dir, self.cfg.logs_dir):
            d.mkdir(parents=True, exist_ok=True)
        if self.cfg.cgroups_per_qos:
            try:
                self.cgroups.ensure_qos_cgroups()
            except OSError as e:
                log.warning("creating QoS cgroups: %s", e)
        with contextlib.suppress(CRIError):
            await self._refresh_image_list()
        self.node.on_node = self._on_node
        await self.node.register(stop)
        if stop.is_set():
            await self.node.close()
            return
        if self.node.node is not None:
            self._on_node(self.node.node)
        node_informer = Informer(self.api, "v1", "nodes", field_selector=f"metadata.name={self.node_name}")
        node_informer.add_handler(self._on_node, lambda old, new: self._on_node(new))
        self.pods_informer.add_handler(self._on_pod_event, self._on_pod_update, self._on_pod_event)
        for informer in (node_informer, self.pods_informer, self.services_informer):
            informer.start()
        self.status.start()
        runners = [
            self.pleg.run(stop), self.node.status_loop(stop), self.node.lease_loop(stop),
            self._runtime_status_loop(stop), self._housekeeping_loop(stop), self.eviction.run(stop),
            self._image_gc_loop(stop), self._token_refresh_loop(stop), self.log_rotation.run(stop),
        ]
        if self.static is not None:
            runners.append(self.static.run(stop))
        tasks = [asyncio.create_task(r) for r in runners]
        await self.pods_informer.wait_synced()
        self._sync_mirror_pods()
        try:
            await stop.wait()
        finally:
            for t in tasks + self._tasks:
                t.cancel()
            await asyncio.gather(*tasks, *self._tasks, return_exceptions=True)
            await self.node.close()
            await self.pod_workers.stop()
            await self.probes.stop()
            await self.status.stop()
            for informer in (node_informer, self.pods_informer, self.services_informer):
                await informer.stop()
            await self.configmaps.stop()
            await self.secrets.stop()
            await self.actions.close()
            await self.recorder.close(timeout=2.0)


def _target_id(c: dict[str, Any], rs: PodRuntimeStatus) -> str:
    """The runtime id of the running container an ephemeral container targets (it joins its pid
    namespace), "" without a target; upstream's getTargetID refuses a target that is not running."""
    target = c.get("targetContainerName")
    if not target:
        return ""
    running = next((x for x in rs.instances(target) if x.running), None)
    if running is None:
        raise ConfigError(f"unable to find target container {target}")
    return running.id


def _uses_pod_ip(pod: dict[str, Any]) -> bool:
    """Does a downward-API volume of the pod show its IP (known only once the sandbox runs)?"""
    return "status.podIP" in str((pod.get("spec") or {}).get("volumes") or "")


def _pod_fingerprint(pod: dict[str, Any]) -> tuple[Any, ...]:
    meta = pod.get("metadata") or {}
    return (
        meta.get("uid"), meta.get("labels"), meta.get("annotations"), meta.get("deletionTimestamp"),
        meta.get("deletionGracePeriodSeconds"), pod.get("spec"),
    )


def is_static(pod: dict[str, Any]) -> bool:
    return ((pod.get("metadata") or {}).get("annotations") or {}).get(naming.CONFIG_SOURCE) == "file"


def _now() -> str:
    from apimachinery.meta import now

    return now()
