"""Static pods: pod manifests in a directory, run by this kubelet alone and mirrored to the API.

Each file (`*.yaml`, `*.yml`, `*.json`) holds one Pod. Its name gets `-<node>` appended, its
namespace defaults to `default`, and its uid is a hash of the manifest and the node — so an
unchanged file keeps its pod across kubelet restarts, and an edited one replaces it. The API
sees a *mirror pod* (annotation `kubernetes.io/config.mirror`, owned by the Node) whose status
the kubelet keeps current; deleting the mirror pod only makes the kubelet recreate it.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from apimachinery.meta import now
from apiserver.registry.podspec import default_pod_spec
from kubelet import naming

log = logging.getLogger("kubelet.staticpods")

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")


def static_pod_from_manifest(doc: dict[str, Any], node_name: str, source: str) -> dict[str, Any]:
    if not isinstance(doc, dict) or doc.get("kind") != "Pod":
        raise ValueError(f"{source}: not a Pod (kind {doc.get('kind') if isinstance(doc, dict) else type(doc).__name__})")
    pod = copy.deepcopy(doc)
    meta = pod.setdefault("metadata", {})
    if not meta.get("name"):
        raise ValueError(f"{source}: the pod has no name")
    meta["namespace"] = meta.get("namespace") or "default"
    meta["name"] = f"{meta['name']}-{node_name}"
    spec = pod.setdefault("spec", {})
    if not isinstance(spec, dict) or not spec.get("containers"):
        raise ValueError(f"{source}: the pod has no containers")
    spec["nodeName"] = node_name
    default_pod_spec(spec)
    digest = hashlib.md5(
        json.dumps(pod, sort_keys=True).encode() + f"host:{node_name}".encode(), usedforsecurity=False
    ).hexdigest()
    meta["uid"] = digest
    annotations = meta.setdefault("annotations", {})
    annotations[naming.CONFIG_HASH] = digest
    annotations[naming.CONFIG_SOURCE] = "file"
    annotations[naming.CONFIG_SEEN] = now()
    pod["apiVersion"] = "v1"
    pod["kind"] = "Pod"
    pod["status"] = {"phase": "Pending"}
    return pod


def mirror_pod(static: dict[str, Any], node: dict[str, Any] | None) -> dict[str, Any]:
    """The API object representing a static pod."""
    pod = copy.deepcopy(static)
    meta = pod["metadata"]
    meta.pop("uid", None)
    meta.pop("resourceVersion", None)
    meta["annotations"][naming.CONFIG_MIRROR] = static["metadata"]["uid"]
    if node is not None:
        meta["ownerReferences"] = [{
            "apiVersion": "v1", "kind": "Node", "name": node["metadata"]["name"],
            "uid": node["metadata"]["uid"], "controller": True,
        }]
    pod.pop("status", None)
    return pod


def is_mirror_pod(pod: dict[str, Any]) -> bool:
    return naming.CONFIG_MIRROR in ((pod.get("metadata") or {}).get("annotations") or {})


class StaticPodSource:
    def __init__(self, manifest_dir: str, node_name: str, period: float, on_change: Callable[[], None]) -> None:
        self.dir = Path(manifest_dir)
        self.node_name = node_name
        self.period = period
        self.on_change = on_change
        self.pods: dict[str, dict[str, Any]] = {}  # uid -> pod
        self.synced = asyncio.Event()
        self._stamps: dict[Path, tuple[float, int]] = {}
        self._by_file: dict[Path, dict[str, Any]] = {}

    def scan(self) -> bool:
        """Re-read changed files; True if the set of pods changed."""
        try:
            files = sorted(p for p in self.dir.iterdir()
                           if p.suffix in MANIFEST_SUFFIXES and not p.name.startswith(".") and p.is_file())
        except OSError:
            files = []
        changed = False
        for path in set(self._by_file) - set(files):
            del self._by_file[path]
            self._stamps.pop(path, None)
            changed = True
        for path in files:
            try:
                st = path.stat()
            except OSError:
                continue
            stamp = (st.st_mtime, st.st_size)
            if self._stamps.get(path) == stamp:
                continue
            self._stamps[path] = stamp
            try:
                docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
                if len(docs) != 1:
                    raise ValueError(f"{path}: expected one document, found {len(docs)}")
                pod = static_pod_from_manifest(docs[0], self.node_name, str(path))
            except (OSError, ValueError, yaml.YAMLError) as e:
                log.warning("static pod manifest %s ignored: %s", path, e)
                if path in self._by_file:
                    del self._by_file[path]
                    changed = True
                continue
            old = self._by_file.get(path)
            if old is None or old["metadata"]["uid"] != pod["metadata"]["uid"]:
                self._by_file[path] = pod
                changed = True
        if changed:
            self.pods = {p["metadata"]["uid"]: p for p in self._by_file.values()}
        return changed

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            if await asyncio.to_thread(self.scan):
                self.on_change()
            self.synced.set()
            try:
                await asyncio.wait_for(stop.wait(), self.period)
            except TimeoutError:
                pass
