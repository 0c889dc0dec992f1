"""The PVC protection controller (upstream pkg/controller/volume/pvcprotection): a claim being
deleted keeps its `kubernetes.io/pvc-protection` finalizer (added by the
StorageObjectInUseProtection admission plugin) while a scheduled pod uses it (whatever its phase,
as upstream; only a pod's own generic ephemeral claim is freed once the pod is shut down).

"In use" is checked against the pods informer and then, before the finalizer goes, against a
live list of the namespace's pods: a pod the cache has not seen yet must not lose its volume.
"""

from __future__ import annotations

from typing import Any

from apimachinery.volumebinding import PVC_PROTECTION_FINALIZER, ephemeral_claim_error, pod_claim_names
from client import deleted_object
from client.store import index_by_namespace
from controller_manager.base import Controller, ControllerContext, add_index_once, register, remove_finalizer

Obj = dict[str, Any]

NAMESPACE_INDEX = "namespace"


def pod_is_shut_down(pod: Obj) -> bool:
    """The kubelet is done with it (deleted with grace 0 after its volumes went) or it was
    force-deleted (upstream podIsShutDown)."""
    meta = pod["metadata"]
    return bool(meta.get("deletionTimestamp")) and meta.get("deletionGracePeriodSeconds") == 0


def pod_uses_claim(pod: Obj, claim: Obj) -> bool:
    """Upstream podUsesPVC: a scheduled pod (a kubelet sees only those, and refuses to start a pod
    whose claim is being deleted) with a `persistentVolumeClaim` volume naming the claim — in
    any phase — or, until it is shut down, the generic ephemeral volume the claim was made for."""
    if not (pod.get("spec") or {}).get("nodeName"):
        return False
    name = claim["metadata"]["name"]
    for claim_name, ephemeral in pod_claim_names(pod):
        if claim_name != name:
            continue
        if not ephemeral or (not pod_is_shut_down(pod) and ephemeral_claim_error(pod, claim) is None):
            return True
    return False


@register
class PVCProtectionController(Controller):
    name = "persistentvolumeclaim-protection-controller"
    aliases = ("pvc-protection",)
    service_account = "pvc-protection-controller"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.claims = self.watch("v1", "persistentvolumeclaims")
        self.pods = self.informer("v1", "pods")
        add_index_once(self.pods, NAMESPACE_INDEX, index_by_namespace)
        self.pods.add_handler(self._pod_changed, lambda old, new: self._pod_changed(new),
                              lambda obj: self._pod_changed(deleted_object(obj)))
        self.claims_api = self.client.resource("v1", "persistentvolumeclaims")
        self.pods_api = self.client.resource("v1", "pods")

    def _pod_changed(self, pod: Obj) -> None:
        namespace = pod["metadata"].get("namespace") or ""
        for name, _ephemeral in pod_claim_names(pod):
            claim = self.claims.store.get(f"{namespace}/{name}")
            if claim is not None and claim["metadata"].get("deletionTimestamp"):
                self.queue.add(f"{namespace}/{name}")

    async def sync(self, key: str) -> None:
        claim = self.claims.store.get(key)
        if claim is None or not claim["metadata"].get("deletionTimestamp"):
            return
        if PVC_PROTECTION_FINALIZER not in (claim["metadata"].get("finalizers") or []):
            return
        namespace = claim["metadata"].get("namespace") or ""
        if any(pod_uses_claim(p, claim) for p in self.pods.store.by_index(NAMESPACE_INDEX, namespace)):
            return  # the pod's update or deletion brings the claim back here
        live = await self.pods_api.list(namespace)
        if any(pod_uses_claim(p, claim) for p in live.get("items") or []):
            return
        await remove_finalizer(self.claims_api, claim, PVC_PROTECTION_FINALIZER)
        self.log.info("removed %s from claim %s: no pod uses it", PVC_PROTECTION_FINALIZER, key)
