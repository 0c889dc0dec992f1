"""Images: imagePullPolicy, registry credentials from imagePullSecrets, pull back-off, image GC.

CRI's PullImage always contacts the registry (even for an image already present), so the
policy is decided here: ImageStatus first, PullImage only for `Always` or a missing image.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from kubelet.backoff import Backoff
from kubelet.cri import CRIClient, CRIError, pb
from kubelet.machine import fs_stats

log = logging.getLogger("kubelet.images")

ObjectGetter = Callable[[str, str], Awaitable[dict[str, Any] | None]]
DOCKER_HUB = "docker.io"
_HUB_ALIASES = {"docker.io", "index.docker.io", "registry-1.docker.io"}


class ImageError(Exception):
    """reason is the container's waiting reason: ErrImagePull, ImagePullBackOff, ErrImageNeverPull,
    InvalidImageName."""

    def __init__(self, reason: str, message: str, retry_after: float = 2.0) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.retry_after = retry_after  # when the pod should sync again


def registry_of(image: str) -> str:
    """The registry host of an image reference (docker.io when it names none)."""
    first, sep, _ = image.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first
    return DOCKER_HUB


def _normalize_registry(key: str) -> str:
    host = key
    for prefix in ("https://", "http://"):
        host = host.removeprefix(prefix)
    host = host.split("/", 1)[0]
    return DOCKER_HUB if host in _HUB_ALIASES else host


def credentials_from_secret(secret: dict[str, Any]) -> dict[str, dict[str, str]]:
    """registry → auth entry, from a kubernetes.io/dockerconfigjson or dockercfg Secret."""
    data = secret.get("data") or {}
    entries: dict[str, Any] = {}
    try:
        if ".dockerconfigjson" in data:
            entries = (json.loads(base64.b64decode(data[".dockerconfigjson"])) or {}).get("auths") or {}
        elif ".dockercfg" in data:
            entries = json.loads(base64.b64decode(data[".dockercfg"])) or {}
    except ValueError:
        return {}
    out = {}
    for key, entry in entries.items():
        if isinstance(entry, dict):
            out[_normalize_registry(key)] = entry
    return out


def auth_config(entry: dict[str, str]) -> pb.AuthConfig:
    username, password = entry.get("username", ""), entry.get("password", "")
    if not username and entry.get("auth"):
        try:
            username, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
        except ValueError:
            pass
    # no server_address, as upstream: containerd parses it as a URL and would drop "host:port" ones
    return pb.AuthConfig(
        username=username, password=password,
        identity_token=entry.get("identitytoken", ""), registry_token=entry.get("registrytoken", ""),
    )


@dataclass
class PullResult:
    image_ref: str
    event_reason: str  # "Pulled" with a message, for the pod's events
    event_message: str


class ImageManager:
    def __init__(
        self,
        cri: CRIClient,
        get_secret: ObjectGetter,
        *,
        serialize: bool = True,
        backoff_max: float = 300.0,
        pinned: tuple[str, ...] = (),
        on_pulling: Callable[[dict[str, Any], dict[str, Any], str], None] | None = None,
    ) -> None:
        self.cri = cri
        self.get_secret = get_secret
        self.backoff = Backoff(10.0, backoff_max)
        self._pull_lock = asyncio.Lock() if serialize else None
        self._failures: dict[str, tuple[float, str]] = {}  # backoff key -> (time, message)
        self.last_used: dict[str, float] = {}  # image id -> when a container last started from it
        self.pinned = set(pinned)
        self.on_pulling = on_pulling

    async def ensure(
        self, pod: dict[str, Any], container: dict[str, Any], pull_secrets: list[dict[str, Any]]
    ) -> PullResult:
        image = (container.get("image") or "").strip()
        if not image:
            raise ImageError("InvalidImageName", "container has no image")
        if any(c.isspace() for c in image) or image != image.strip() or image.endswith((":", "@", "/")):
            raise ImageError("InvalidImageName", f'Failed to apply default image tag "{image}": invalid reference format')
        policy = container.get("imagePullPolicy") or "IfNotPresent"
        present = None
        if policy != "Always":
            try:
                present = await self.cri.image_status(image)
            except CRIError as e:
                raise ImageError("ErrImagePull", f'Failed to inspect image "{image}": {e.message}') from None
        if present is not None:
            self.last_used[present.id] = time.time()
            return PullResult(present.id, "Pulled", f'Container image "{image}" already present on machine')
        if policy == "Never":
            raise ImageError("ErrImageNeverPull", f'Container image "{image}" is not present with pull policy of Never')
        key = f"{pod['metadata']['uid']}/{image}"
        failure = self._failures.get(key)
        remaining = self.backoff.remaining(key, failure[0]) if failure is not None else 0.0
        if failure is not None and remaining > 0:
            raise ImageError("ImagePullBackOff", f'Back-off pulling image "{image}": {failure[1]}', remaining)
        if self.on_pulling is not None:
            self.on_pulling(pod, container, image)
        started = time.monotonic()
        try:
            ref = await self._pull(image, pod, pull_secrets)
        except CRIError as e:
            message = f'Failed to pull image "{image}": {e.message}'
            self._failures[key] = (time.time(), message)
            self.backoff.next(key, time.time())
            raise ImageError("ErrImagePull", message) from None
        self._failures.pop(key, None)
        self.backoff.reset(key)
        elapsed = time.monotonic() - started
        status = await self.cri.image_status(ref or image)
        image_id = status.id if status is not None else ref
        size = status.size if status is not None else 0
        self.last_used[image_id] = time.time()
        return PullResult(image_id, "Pulled",
                          f'Successfully pulled image "{image}" in {elapsed:.3f}s. Image size: {size} bytes.')

    async def _pull(self, image: str, pod: dict[str, Any], pull_secrets: list[dict[str, Any]]) -> str:
        registry = registry_of(image)
        auths: list[pb.AuthConfig | None] = []
        for secret in pull_secrets:
            entry = credentials_from_secret(secret).get(registry)
            if entry is not None:
                auths.append(auth_config(entry))
        if not auths:
            auths = [None]
        lock = self._pull_lock or contextlib.nullcontext()
        last: CRIError | None = None
        async with lock:  # type: ignore[attr-defined]
            for auth in auths:
                try:
                    return await self.cri.pull_image(image, auth)
                except CRIError as e:
                    last = e
        assert last is not None
        raise last

    def forget_pod(self, uid: str) -> None:
        for key in [k for k in self._failures if k.startswith(uid + "/")]:
            del self._failures[key]
        self.backoff.forget_prefix(uid + "/")

    async def pull_secrets(self, pod: dict[str, Any]) -> list[dict[str, Any]]:
        ns = pod["metadata"].get("namespace", "default")
        out = []
        for ref in (pod.get("spec") or {}).get("imagePullSecrets") or []:
            name = ref.get("name")
            if not name:
                continue
            try:
                secret = await self.get_secret(ns, name)
            except Exception as e:
                log.warning("pod %s/%s: pull secret %s: %s", ns, pod["metadata"]["name"], name, e)
                continue
            if secret is not None:
                out.append(secret)
        return out

    # -- garbage collection ------------------------------------------------------------------

    async def usage(self) -> tuple[int, int] | None:
        """(used, capacity) bytes of the image filesystem."""
        info = await self.cri.image_fs_info()
        if not info.image_filesystems:
            return None
        fs = info.image_filesystems[0]
        capacity = fs_stats(fs.fs_id.mountpoint).capacity if fs.fs_id.mountpoint else 0
        stats = fs_stats(fs.fs_id.mountpoint) if fs.fs_id.mountpoint else None
        used = stats.used if stats is not None else fs.used_bytes.value
        return used, capacity

    async def garbage_collect(self, in_use: set[str], high_percent: int, low_percent: int, force: bool = False) -> int:
        """Remove unused images, least recently used first, while disk use is above `high`
        (down to `low`); `force` frees what it can regardless. Returns bytes freed."""
        usage = await self.usage()
        if usage is None or usage[1] <= 0:
            return 0
        used, capacity = usage
        if not force and used * 100 < high_percent * capacity:
            return 0
        target = capacity * low_percent // 100
        to_free = used - target if not force else used
        images = await self.cri.list_images()
        now = time.time()
        candidates = []
        for image in images:
            if image.id in in_use or image.pinned or self.pinned.intersection(image.repo_tags):
                continue
            candidates.append((self.last_used.setdefault(image.id, now), image))
        freed = 0
        for _, image in sorted(candidates, key=lambda c: c[0]):
            if freed >= to_free:
                break
            try:
                await self.cri.remove_image(image.id)
            except CRIError as e:
                log.warning("image gc: removing %s: %s", image.repo_tags or image.id, e)
                continue
            log.info("image gc: removed %s (%d bytes)", image.repo_tags or image.id, image.size)
            self.last_used.pop(image.id, None)
            freed += image.size
        return freed
