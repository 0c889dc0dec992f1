"""The ephemeral volume controller (upstream pkg/controller/volume/ephemeral): for each generic
ephemeral volume of a pod (`volumes[].ephemeral.volumeClaimTemplate`) create the claim
`<pod name>-<volume name>` from the template, owned by the pod (so the garbage collector
deletes it with the pod). A claim of that name the pod does not own is reported, never taken."""

from __future__ import annotations

import copy
from typing import Any

from apimachinery.meta import controller_of, owner_reference, split_key
from apimachinery.volumebinding import ephemeral_claim_error, ephemeral_claim_name
from client import deleted_object, is_already_exists
from controller_manager.base import Controller, ControllerContext, register

Obj = dict[str, Any]


def has_ephemeral_volumes(pod: Obj) -> bool:
    return any(v.get("ephemeral") is not None for v in (pod.get("spec") or {}).get("volumes") or [])


@register
class EphemeralVolumeController(Controller):
    name = "ephemeral-volume-controller"
    aliases = ("ephemeral-volume",)
    service_account = "ephemeral-volume-controller"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.pods = self.informer("v1", "pods")
        self.pods.add_handler(self._maybe_enqueue, lambda old, new: self._maybe_enqueue(new), None)
        self.claims = self.informer("v1", "persistentvolumeclaims")
        self.claims.add_handler(None, None, self._claim_deleted)
        self.claims_api = self.client.resource("v1", "persistentvolumeclaims")

    def _maybe_enqueue(self, pod: Obj) -> None:
        if has_ephemeral_volumes(pod) and not pod["metadata"].get("deletionTimestamp"):
            self.enqueue(pod)

    def _claim_deleted(self, item: Any) -> None:
        """upstream's onPVCDelete: the pod owning a deleted claim gets it made again."""
        claim = deleted_object(item)
        owner = controller_of(claim)
        if owner is not None and owner.get("kind") == "Pod":
            self.queue.add(f"{claim['metadata'].get('namespace')}/{owner['name']}")

    async def sync(self, key: str) -> None:
        pod = self.pods.store.get(key)
        if pod is None or pod["metadata"].get("deletionTimestamp"):
            return
        namespace, _ = split_key(key)
        for volume in (pod.get("spec") or {}).get("volumes") or []:
            if volume.get("ephemeral") is None:
                continue
            name = ephemeral_claim_name(pod, volume)
            existing = self.claims.store.get(f"{namespace}/{name}")
            if existing is not None:
                error = ephemeral_claim_error(pod, existing)
                if error:
                    self.recorder.event(pod, "Warning", "FailedBinding", error)
                continue
            template = (volume["ephemeral"] or {}).get("volumeClaimTemplate") or {}
            meta = template.get("metadata") or {}
            claim = {
                "apiVersion": "v1", "kind": "PersistentVolumeClaim",
                "metadata": {
                    "name": name, "namespace": namespace,
                    "labels": dict(meta.get("labels") or {}), "annotations": dict(meta.get("annotations") or {}),
                    "ownerReferences": [owner_reference({"apiVersion": "v1", "kind": "Pod", **pod})],
                },
                "spec": copy.deepcopy(template.get("spec") or {}),
            }
            try:
                await self.claims_api.create(claim, namespace)
            except Exception as e:
                if not is_already_exists(e):
                    raise
            else:
                self.log.info("created claim %s/%s for pod %s", namespace, name, key)
