"""The node's CSINode object (storage.k8s.io/v1), as upstream's kubelet publishes it at start.

CSI node plugins and the scheduler's volume-limit logic read it: one CSINode per node, named
after it, owned by the Node (so it goes away with it), no drivers until a CSI node plugin
registers — this kubelet has no plugin registration, so the list stays empty — and the
`storage.alpha.kubernetes.io/migrated-plugins` annotation naming the in-tree volume plugins
whose volumes are handed to CSI drivers (all of them, as in upstream's current releases).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from client import APIClient, is_already_exists, is_conflict, is_not_found

log = logging.getLogger("kubelet.csinode")

MIGRATED_PLUGINS_ANNOTATION = "storage.alpha.kubernetes.io/migrated-plugins"
MIGRATED_PLUGINS = ",".join(sorted((
    "kubernetes.io/aws-ebs", "kubernetes.io/azure-disk", "kubernetes.io/azure-file", "kubernetes.io/cinder",
    "kubernetes.io/gce-pd", "kubernetes.io/portworx-volume", "kubernetes.io/vsphere-volume",
)))


def owner_reference(node: dict[str, Any]) -> dict[str, Any]:
    meta = node["metadata"]
    return {"apiVersion": "v1", "kind": "Node", "name": meta["name"], "uid": meta["uid"]}


def new_csinode(node: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "CSINode",
        "metadata": {
            "name": node["metadata"]["name"],
            "ownerReferences": [owner_reference(node)],
            "annotations": {MIGRATED_PLUGINS_ANNOTATION: MIGRATED_PLUGINS},
        },
        "spec": {"drivers": []},
    }


def mended(existing: dict[str, Any], node: dict[str, Any]) -> dict[str, Any] | None:
    """The existing CSINode with its annotation and owner set right, or None when both are.

    The owner is mended too (upstream leaves it): a Node deleted and registered again has a new
    uid, and a CSINode still owned by the old one would be collected as an orphan."""
    meta = existing.setdefault("metadata", {})
    changed = False
    annotations = meta.get("annotations") or {}
    if annotations.get(MIGRATED_PLUGINS_ANNOTATION) != MIGRATED_PLUGINS:
        meta["annotations"] = {**annotations, MIGRATED_PLUGINS_ANNOTATION: MIGRATED_PLUGINS}
        changed = True
    owners = [o for o in meta.get("ownerReferences") or [] if isinstance(o, dict)]
    ours = owner_reference(node)
    if ours not in owners:
        meta["ownerReferences"] = [o for o in owners if o.get("kind") != "Node"] + [ours]
        changed = True
    return existing if changed else None


async def publish_once(api: APIClient, node: dict[str, Any]) -> None:
    csinodes = api.resource("storage.k8s.io/v1", "csinodes")
    name = node["metadata"]["name"]
    try:
        existing = await csinodes.get(name)
    except Exception as e:
        if not is_not_found(e):
            raise
        try:
            await csinodes.create(new_csinode(node))
            log.info("created CSINode %s", name)
            return
        except Exception as e2:
            if not is_already_exists(e2):
                raise
        existing = await csinodes.get(name)  # made meanwhile (a restarted kubelet): mend that one
    update = mended(existing, node)
    if update is not None:
        await csinodes.update(update)
        log.info("updated CSINode %s", name)


async def publish(api: APIClient, node: dict[str, Any], stop: asyncio.Event) -> None:
    """Create or mend the CSINode, retrying with backoff (as upstream) until it is right or we stop."""
    delay = 0.5
    while not stop.is_set():
        try:
            await publish_once(api, node)
            return
        except asyncio.CancelledError:
            raise
        except Exception as e:
            level = logging.DEBUG if is_conflict(e) else logging.WARNING
            log.log(level, "publishing CSINode %s: %s; retrying in %.1fs", node["metadata"]["name"], e, delay)
        try:
            await asyncio.wait_for(stop.wait(), delay)
        except TimeoutError:
            pass
        delay = min(delay * 2, 30.0)
