"""Pod volumes on the node: emptyDir, hostPath, configMap, secret, downwardAPI, projected, and
persistentVolumeClaim / generic ephemeral volumes backed by hostPath or local PersistentVolumes.

Each volume is a directory under `<root>/pods/<uid>/volumes/<plugin>/<name>` that containers
bind-mount. configMap, secret, downwardAPI and projected volumes are written by an atomic
writer (upstream's AtomicWriter): the files live in a timestamped `..<ts>` directory, `..data`
points at it and each top-level entry is a symlink through `..data`, so an update (a new
directory and one rename of the `..data` link) is seen by containers all at once. Secret,
projected and Memory-medium emptyDir volumes are tmpfs mounts, so secrets never touch disk.

A claim volume (`persistentVolumeClaim`, or `ephemeral` whose claim is `<pod>-<volume>` and must
be controlled by the pod) is resolved as upstream's volume manager does: GET the claim (bound,
not being deleted), GET its PersistentVolume (its claimRef must carry the claim's uid), and
mount the PV's own path — `hostPath` (through the same checks as a pod's hostPath volume) or
`local` (must exist) — read-only if the pod's claim source says so. Nothing is created under the
pod's directory and nothing is chowned (upstream's fsGroup does not apply to these sources). The
result is kept for the pod's lifetime: later syncs do not read the claim again (upstream mounts
once); a failure is not kept, so the next sync retries.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import datetime as dt
import errno
import logging
import os
import shutil
import stat
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from apimachinery.quantity import resource_int
from apimachinery.volumebinding import ephemeral_claim_error, ephemeral_claim_name
from kubelet.cri.containerd import unmount_under
from kubelet.downward import DownwardError, field_value, resource_value
from kubelet.tokens import TokenManager

log = logging.getLogger("kubelet.volumes")

ObjectGetter = Callable[[str, str], Awaitable[dict[str, Any] | None]]
ClusterObjectGetter = Callable[[str], Awaitable[dict[str, Any] | None]]

DATA_DIR = "..data"
DEFAULT_MODE = 0o644
PLUGIN_DIRS = {
    "emptyDir": "kubernetes.io~empty-dir",
    "hostPath": "kubernetes.io~host-path",
    "configMap": "kubernetes.io~configmap",
    "secret": "kubernetes.io~secret",
    "downwardAPI": "kubernetes.io~downward-api",
    "projected": "kubernetes.io~projected",
}
# Always mounted read-only into containers, as upstream does.
READ_ONLY_KINDS = ("configMap", "secret", "downwardAPI", "projected")
# Volumes backed by a PersistentVolume the claim is bound to.
CLAIM_KINDS = ("persistentVolumeClaim", "ephemeral")


class VolumeError(Exception):
    """A volume cannot be set up yet (a missing ConfigMap, a failed hostPath check, ...)."""

    def __init__(self, volume: str, message: str) -> None:
        super().__init__(f'MountVolume.SetUp failed for volume "{volume}" : {message}')
        self.volume = volume


@dataclass(frozen=True)
class MountedVolume:
    name: str
    kind: str
    host_path: str
    read_only: bool


# ------------------------------------------------------------------------------ atomic writer


def _ts_dir_name() -> str:
    now = time.time_ns()
    stamp = dt.datetime.fromtimestamp(now / 1e9, dt.UTC).strftime("%Y_%m_%d_%H_%M_%S")
    return f"..{stamp}.{now % 1_000_000_000:09d}"


def _current_payload(target: Path) -> dict[str, tuple[bytes, int]] | None:
    data = target / DATA_DIR
    if not data.is_symlink():
        return None
    base = target / os.readlink(data)
    out: dict[str, tuple[bytes, int]] = {}
    for directory, _, files in os.walk(base):
        for name in files:
            path = Path(directory) / name
            st = path.stat()
            out[str(path.relative_to(base))] = (path.read_bytes(), stat.S_IMODE(st.st_mode))
    return out


def write_atomic(target: str | os.PathLike[str], payload: dict[str, tuple[bytes, int]], gid: int | None = None) -> bool:
    """Make `target` hold exactly `payload` (relative path → (content, mode)); True if it changed."""
    target = Path(target)
    target.mkdir(parents=True, exist_ok=True)
    for rel in payload:
        if rel.startswith("/") or ".." in Path(rel).parts or rel.startswith(".."):
            raise ValueError(f"invalid path {rel!r}")
    if _current_payload(target) == payload:
        return False
    ts_dir = target / _ts_dir_name()
    ts_dir.mkdir(mode=0o755)
    for rel, (content, mode) in payload.items():
        path = ts_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        os.chmod(path, mode)
        if gid is not None:
            os.chown(path, -1, gid)
    old = os.readlink(target / DATA_DIR) if (target / DATA_DIR).is_symlink() else None
    tmp_link = target / "..data_tmp"
    with contextlib.suppress(FileNotFoundError):
        tmp_link.unlink()
    os.symlink(ts_dir.name, tmp_link)
    os.replace(tmp_link, target / DATA_DIR)
    wanted = {Path(rel).parts[0] for rel in payload}
    for name in wanted:
        link = target / name
        if not link.is_symlink():
            if link.exists():
                shutil.rmtree(link) if link.is_dir() else link.unlink()
            os.symlink(f"{DATA_DIR}/{name}", link)
    for entry in os.listdir(target):
        if entry.startswith(".."):
            continue
        if entry not in wanted:
            path = target / entry
            if path.is_symlink() or path.is_file():
                path.unlink()
            elif path.is_dir():
                shutil.rmtree(path)
    if old and old != ts_dir.name:
        shutil.rmtree(target / old, ignore_errors=True)
    return True


# ------------------------------------------------------------------------------ tmpfs

_libc = ctypes.CDLL(None, use_errno=True)


def mount_tmpfs(path: Path, size: int | None = None) -> None:
    if os.path.ismount(path):
        return
    path.mkdir(parents=True, exist_ok=True)
    options = "mode=0755" + (f",size={size}" if size else "")
    if _libc.mount(b"tmpfs", str(path).encode(), b"tmpfs", 0, options.encode()) != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"mounting tmpfs at {path}: {os.strerror(e)}")


# ------------------------------------------------------------------------------ the manager


def _items_payload(
    data: dict[str, bytes], items: list[dict[str, Any]] | None, default_mode: int, kind: str, name: str
) -> dict[str, tuple[bytes, int]]:
    if not items:
        return {key: (value, default_mode) for key, value in data.items()}
    out = {}
    for item in items:
        key = item.get("key", "")
        if key not in data:
            raise KeyError(f"configmap references non-existent config key: {key}" if kind == "configMap"
                           else f"references non-existent secret key: {key}")
        out[item.get("path") or key] = (data[key], item.get("mode", default_mode))
    return out


def _configmap_data(cm: dict[str, Any]) -> dict[str, bytes]:
    out = {k: str(v).encode() for k, v in (cm.get("data") or {}).items()}
    for k, v in (cm.get("binaryData") or {}).items():
        out[k] = base64.b64decode(v)
    return out


def _secret_data(secret: dict[str, Any]) -> dict[str, bytes]:
    return {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}


class VolumeManager:
    def __init__(
        self,
        pods_dir: Path,
        get_configmap: ObjectGetter,
        get_secret: ObjectGetter,
        tokens: TokenManager,
        allocatable: Callable[[], dict[str, int]],
        get_pvc: ObjectGetter | None = None,
        get_pv: ClusterObjectGetter | None = None,
    ) -> None:
        self.pods_dir = pods_dir
        self.get_configmap = get_configmap
        self.get_secret = get_secret
        self.tokens = tokens
        self.allocatable = allocatable
        self.get_pvc = get_pvc
        self.get_pv = get_pv
        self._claims: dict[str, dict[str, MountedVolume]] = {}  # pod uid -> volume -> mounted claim

    def pod_dir(self, uid: str) -> Path:
        return self.pods_dir / uid

    def volume_dir(self, uid: str, kind: str, name: str) -> Path:
        return self.pod_dir(uid) / "volumes" / PLUGIN_DIRS[kind] / name

    async def setup(self, pod: dict[str, Any], host_ip: str = "", pod_ips: list[str] | None = None) -> dict[str, MountedVolume]:
        """Set up (or refresh) every volume of `pod`; raises VolumeError for the first that fails."""
        uid = pod["metadata"]["uid"]
        fs_group = ((pod.get("spec") or {}).get("securityContext") or {}).get("fsGroup")
        out: dict[str, MountedVolume] = {}
        for volume in (pod.get("spec") or {}).get("volumes") or []:
            name = volume.get("name", "")
            claim_kind = next((k for k in CLAIM_KINDS if volume.get(k) is not None), None)
            if claim_kind is not None:
                try:
                    out[name] = await self._claim_volume(pod, claim_kind, name, volume[claim_kind])
                except VolumeError:
                    raise
                except (KeyError, ValueError, OSError) as e:
                    raise VolumeError(name, str(e).strip("'\"")) from None
                continue
            kind = next((k for k in PLUGIN_DIRS if volume.get(k) is not None), None)
            if kind is None:
                log.debug("pod %s: volume %s has an unsupported source; skipped", uid, name)
                continue
            try:
                path = await self._setup_one(pod, kind, name, volume[kind], fs_group, host_ip, pod_ips)
            except VolumeError:
                raise
            except (KeyError, ValueError, OSError, DownwardError) as e:
                raise VolumeError(name, str(e).strip("'\"")) from None
            out[name] = MountedVolume(name, kind, str(path), kind in READ_ONLY_KINDS)
        return out

    async def _setup_one(
        self, pod: dict[str, Any], kind: str, name: str, src: dict[str, Any], fs_group: int | None,
        host_ip: str, pod_ips: list[str] | None,
    ) -> Path:
        uid = pod["metadata"]["uid"]
        ns = pod["metadata"].get("namespace", "default")
        if kind == "hostPath":
            return self._host_path(name, src)
        path = self.volume_dir(uid, kind, name)
        if kind == "emptyDir":
            if src.get("medium") == "Memory":
                limit = src.get("sizeLimit")
                mount_tmpfs(path, resource_int("memory", limit) if limit else self.allocatable().get("memory"))
            else:
                path.mkdir(parents=True, exist_ok=True)
            os.chmod(path, 0o777)
            if fs_group is not None:
                os.chown(path, -1, int(fs_group))
                os.chmod(path, 0o2777)
            return path
        default_mode = src.get("defaultMode", DEFAULT_MODE)
        if kind == "configMap":
            cm = await self.get_configmap(ns, src.get("name", ""))
            if cm is None:
                if src.get("optional"):
                    payload = {}
                else:
                    raise VolumeError(name, f'configmap "{src.get("name")}" not found')
            else:
                payload = _items_payload(_configmap_data(cm), src.get("items"), default_mode, kind, name)
        elif kind == "secret":
            mount_tmpfs(path)
            secret = await self.get_secret(ns, src.get("secretName", ""))
            if secret is None:
                if src.get("optional"):
                    payload = {}
                else:
                    raise VolumeError(name, f'secret "{src.get("secretName")}" not found')
            else:
                payload = _items_payload(_secret_data(secret), src.get("items"), default_mode, kind, name)
        elif kind == "downwardAPI":
            payload = self._downward_payload(pod, src.get("items") or [], default_mode, host_ip, pod_ips)
        else:  # projected
            mount_tmpfs(path)
            payload = await self._projected_payload(pod, name, src, default_mode, host_ip, pod_ips)
        write_atomic(path, payload, int(fs_group) if fs_group is not None else None)
        return path

    async def _claim_volume(self, pod: dict[str, Any], kind: str, name: str, src: dict[str, Any]) -> MountedVolume:
        """The PV behind a persistentVolumeClaim or generic ephemeral volume (cached once mounted)."""
        meta = pod["metadata"]
        uid = meta["uid"]
        cached = self._claims.get(uid, {}).get(name)
        if cached is not None:
            return cached
        ns = meta.get("namespace", "default")
        if kind == "ephemeral":
            claim = ephemeral_claim_name(pod, {"name": name})
            pvc_read_only = False
        else:
            claim = src.get("claimName") or ""
            pvc_read_only = bool(src.get("readOnly"))
        if not claim:
            raise VolumeError(name, "persistentVolumeClaim.claimName is empty")
        where = f"error processing PVC {ns}/{claim}"
        if self.get_pvc is None or self.get_pv is None:
            raise VolumeError(name, f"{where}: no API client to read PersistentVolumeClaims")
        try:
            pvc = await self.get_pvc(ns, claim)
        except Exception as e:
            raise VolumeError(name, f"{where}: failed to fetch PVC from API server: {e}") from None
        if pvc is None:
            raise VolumeError(name, f'{where}: persistentvolumeclaim "{claim}" not found')
        pvc_meta = pvc.get("metadata") or {}
        pvc_spec = pvc.get("spec") or {}
        if pvc_meta.get("deletionTimestamp"):
            # not safe to start a pod with a claim that is going away (upstream)
            raise VolumeError(name, f"{where}: PVC is being deleted")
        pv_name = pvc_spec.get("volumeName") or ""
        phase = (pvc.get("status") or {}).get("phase") or ""
        if phase != "Bound" or not pv_name:
            raise VolumeError(name, f'{where}: PVC {ns}/{claim} has non-bound phase ("{phase}") or empty '
                                    f'pvc.Spec.VolumeName ("{pv_name}")')
        if kind == "ephemeral":
            not_owner = ephemeral_claim_error(pod, pvc)
            if not_owner:
                raise VolumeError(name, not_owner)
        try:
            pv = await self.get_pv(pv_name)
        except Exception as e:
            raise VolumeError(name, f"{where}: failed to fetch PV {pv_name} from API server: {e}") from None
        if pv is None:
            raise VolumeError(name, f'{where}: failed to fetch PV {pv_name} from API server: '
                                    f'persistentvolumes "{pv_name}" not found')
        pv_spec = pv.get("spec") or {}
        claim_ref = pv_spec.get("claimRef")
        if not claim_ref:
            raise VolumeError(name, f"{where}: found PV object {pv_name} but it has a nil pv.Spec.ClaimRef "
                                    "indicating it is not yet bound to the claim")
        pvc_uid = pvc_meta.get("uid") or ""
        if claim_ref.get("uid") != pvc_uid:
            raise VolumeError(name, f"{where}: Expected PV's ClaimRef.UID {claim_ref.get('uid') or ''} to match "
                                    f"PVC's UID {pvc_uid} (PV {pv_name})")
        if "Block" in (pv_spec.get("volumeMode"), pvc_spec.get("volumeMode")):
            raise VolumeError(name, f'PersistentVolume "{pv_name}" has volumeMode Block: raw block volumes are '
                                    "not supported by this kubelet")
        if pv_spec.get("hostPath") is not None:
            path = self._host_path(name, pv_spec["hostPath"])
        elif pv_spec.get("local") is not None:
            path = self._local_path(name, pv_name, pv_spec["local"])
        else:
            raise VolumeError(name, f'unsupported volume source for PersistentVolume "{pv_name}"')
        mounted = MountedVolume(name, kind, str(path), pvc_read_only)
        self._claims.setdefault(uid, {})[name] = mounted
        log.info("pod %s/%s: volume %s: PersistentVolume %s (claim %s) at %s%s", ns, meta.get("name"), name,
                 pv_name, claim, path, " (read-only)" if pvc_read_only else "")
        return mounted

    @staticmethod
    def _local_path(name: str, pv_name: str, src: dict[str, Any]) -> Path:
        path = Path(src.get("path", ""))
        if not path.is_absolute():
            raise VolumeError(name, f'local volume path "{path}" of PersistentVolume "{pv_name}" must be absolute')
        if not path.exists():
            raise VolumeError(name, f'local volume path "{path}" of PersistentVolume "{pv_name}" does not exist')
        return path

    def _host_path(self, name: str, src: dict[str, Any]) -> Path:
        path = Path(src.get("path", ""))
        kind = src.get("type") or ""
        if not path.is_absolute():
            raise VolumeError(name, f"hostPath {path} must be absolute")
        if kind == "DirectoryOrCreate":
            path.mkdir(mode=0o755, parents=True, exist_ok=True)
        elif kind == "FileOrCreate":
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                path.touch(mode=0o644)
        checks = {
            "Directory": (stat.S_ISDIR, "a directory"),
            "DirectoryOrCreate": (stat.S_ISDIR, "a directory"),
            "File": (stat.S_ISREG, "a file"),
            "FileOrCreate": (stat.S_ISREG, "a file"),
            "Socket": (stat.S_ISSOCK, "a socket file"),
            "CharDevice": (stat.S_ISCHR, "a character device"),
            "BlockDevice": (stat.S_ISBLK, "a block device"),
        }
        if kind in checks:
            test, what = checks[kind]
            try:
                mode = path.stat().st_mode
            except FileNotFoundError:
                raise VolumeError(name, f"hostPath type check failed: {path} is not {what}") from None
            if not test(mode):
                raise VolumeError(name, f"hostPath type check failed: {path} is not {what}")
        elif kind:
            raise VolumeError(name, f"unsupported hostPath type {kind!r}")
        return path

    def _downward_payload(
        self, pod: dict[str, Any], items: list[dict[str, Any]], default_mode: int, host_ip: str,
        pod_ips: list[str] | None,
    ) -> dict[str, tuple[bytes, int]]:
        out = {}
        containers = {c["name"]: c for c in (pod.get("spec") or {}).get("containers") or []}
        for item in items:
            if item.get("fieldRef") is not None:
                value = field_value(pod, item["fieldRef"].get("fieldPath", ""), host_ip, pod_ips)
            elif item.get("resourceFieldRef") is not None:
                ref = item["resourceFieldRef"]
                container = containers.get(ref.get("containerName", "")) or next(iter(containers.values()), {})
                value = resource_value(container, ref.get("resource", ""), ref.get("divisor"), self.allocatable())
            else:
                continue
            out[item.get("path", "")] = (value.encode(), item.get("mode", default_mode))
        return out

    async def _projected_payload(
        self, pod: dict[str, Any], name: str, src: dict[str, Any], default_mode: int, host_ip: str,
        pod_ips: list[str] | None,
    ) -> dict[str, tuple[bytes, int]]:
        ns = pod["metadata"].get("namespace", "default")
        payload: dict[str, tuple[bytes, int]] = {}
        for source in src.get("sources") or []:
            if source.get("serviceAccountToken") is not None:
                spec = source["serviceAccountToken"]
                sa = (pod.get("spec") or {}).get("serviceAccountName") or "default"
                audiences = [spec["audience"]] if spec.get("audience") else []
                try:
                    token = await self.tokens.token(pod, sa, audiences, int(spec.get("expirationSeconds") or 3600))
                except Exception as e:
                    raise VolumeError(name, f"failed to fetch token: {e}") from None
                payload[spec.get("path", "token")] = (token.encode(), default_mode)
            elif source.get("configMap") is not None:
                ref = source["configMap"]
                cm = await self.get_configmap(ns, ref.get("name", ""))
                if cm is None:
                    if ref.get("optional"):
                        continue
                    raise VolumeError(name, f'configmap "{ref.get("name")}" not found')
                payload.update(_items_payload(_configmap_data(cm), ref.get("items"), default_mode, "configMap", name))
            elif source.get("secret") is not None:
                ref = source["secret"]
                secret = await self.get_secret(ns, ref.get("name", ""))
                if secret is None:
                    if ref.get("optional"):
                        continue
                    raise VolumeError(name, f'secret "{ref.get("name")}" not found')
                payload.update(_items_payload(_secret_data(secret), ref.get("items"), default_mode, "secret", name))
            elif source.get("downwardAPI") is not None:
                payload.update(self._downward_payload(pod, source["downwardAPI"].get("items") or [], default_mode,
                                                      host_ip, pod_ips))
        return payload

    def forget_pod(self, uid: str) -> None:
        """Drop what is kept of the pod's claim volumes (their data stays where the PV is)."""
        self._claims.pop(uid, None)

    def teardown(self, uid: str) -> bool:
        """Unmount and remove everything of the pod's directory; False if something stayed.
        Claim volumes live outside it (the PV's path) and are only forgotten."""
        self.forget_pod(uid)
        directory = self.pod_dir(uid)
        if not directory.exists():
            return True
        try:
            unmount_under(directory)
        except OSError as e:
            log.warning("pod %s: unmounting volumes: %s", uid, e)
            return False
        try:
            shutil.rmtree(directory)
        except OSError as e:
            if e.errno != errno.ENOENT:
                log.warning("pod %s: removing %s: %s", uid, directory, e)
                return False
        return True

    def pod_uids_on_disk(self) -> list[str]:
        try:
            return [p.name for p in self.pods_dir.iterdir() if p.is_dir()]
        except OSError:
            return []


def resolve_sub_path(volume_path: str, sub_path: str) -> str:
    """The host path of a subPath mount; created as a directory when missing (upstream)."""
    if sub_path.startswith("/") or ".." in Path(sub_path).parts:
        raise ValueError(f"invalid subPath {sub_path!r}: must be a relative path without '..'")
    path = Path(volume_path) / sub_path
    if not path.exists() and not path.is_symlink():
        path.mkdir(parents=True, exist_ok=True)
        os.chmod(path, 0o777)
    return str(path)
