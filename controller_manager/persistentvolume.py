"""The PersistentVolume binder (upstream pkg/controller/volume/persistentvolume, pv_controller.go):
binds claims to volumes, asks provisioners for volumes, and releases volumes whose claim is gone.

A claim (key "claim/<ns>/<name>"):
- unbound, no `spec.volumeName`: the best Available volume (matching rules in
  apimachinery/volumebinding.py; a volume pre-bound to the claim wins) is bound to it. With a
  WaitForFirstConsumer class only pre-bound volumes are taken until the scheduler chose a node
  (annotation `volume.kubernetes.io/selected-node`); with no volume and a class whose
  provisioner is not `kubernetes.io/no-provisioner`, the claim is annotated for that
  provisioner (`volume.kubernetes.io/storage-provisioner`), which creates a volume pre-bound
  to it. Otherwise the claim stays Pending with upstream's event.
- pre-bound (`spec.volumeName` set by the user): bound to that volume when it fits.
- bound (annotation `pv.kubernetes.io/bind-completed`): kept Bound, or Lost when its volume is
  gone or bound elsewhere.
- a claim with no class at all (`storageClassName` absent) gets the default StorageClass once
  one exists (upstream's retroactive default class assignment).

A binding is written volume first (claimRef, phase Bound), then claim (volumeName and the
bind-completed / bound-by-controller annotations, then status Bound with the volume's capacity
and access modes) — each step conditional on the resourceVersion read, so a crash or a
conflict between steps is finished by the next sync.

A volume (key "volume/<name>"): Available without a claimRef; Bound while its claim points
back; Released when its claim is gone (the uid differs or it no longer exists — checked
against the apiserver, not only the cache), then its reclaim policy: Retain keeps it, Delete of
a dynamically provisioned volume is its provisioner's job, anything else fails with upstream's
event (no in-tree deleters or recyclers here). A volume the binder pre-bound for a claim that
was then satisfied by another volume is unbound again.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Coroutine, Iterable
from typing import Any

from apimachinery.meta import key_of, newest_name, split_key
from apimachinery.volumebinding import (
    ANN_BETA_STORAGE_PROVISIONER,
    ANN_BIND_COMPLETED,
    ANN_BOUND_BY_CONTROLLER,
    ANN_DYNAMICALLY_PROVISIONED,
    ANN_SELECTED_NODE,
    ANN_STORAGE_PROVISIONER,
    BETA_STORAGE_CLASS_ANNOTATION,
    NO_PROVISIONER,
    annotations,
    bind_volume_to_claim,
    find_best_match,
    is_bound_to,
    is_default_class,
    is_delay_binding,
    storage_class_name,
    volume_satisfies_claim,
)
from client import deleted_object, is_not_found
from controller_manager.base import Controller, ControllerContext, periodic, register

Obj = dict[str, Any]

CLAIM = "claim/"
VOLUME = "volume/"
#: upstream --pvclaimbinder-sync-period
RESYNC_PERIOD = 15.0


def _phase(obj: Obj) -> str:
    return (obj.get("status") or {}).get("phase") or ""


@register
class PersistentVolumeBinderController(Controller):
    name = "persistentvolume-binder-controller"
    event_source = "persistentvolume-controller"
    aliases = ("persistentvolume-binder",)
    service_account = "persistent-volume-binder"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.claims = self.informer("v1", "persistentvolumeclaims")
        self.volumes = self.informer("v1", "persistentvolumes")
        self.classes = self.informer("storage.k8s.io/v1", "storageclasses")
        self.claims.add_handler(self._claim_changed, lambda old, new: self._claim_changed(new),
                                lambda obj: self._claim_changed(deleted_object(obj)))
        self.volumes.add_handler(self._volume_changed, lambda old, new: self._volume_changed(new),
                                 self._volume_deleted)
        self.classes.add_handler(self._class_added, lambda old, new: self._class_added(new), None)
        self.claims_api = self.client.resource("v1", "persistentvolumeclaims")
        self.volumes_api = self.client.resource("v1", "persistentvolumes")

    # -- events ------------------------------------------------------------------------

    def _claim_changed(self, claim: Obj) -> None:
        self.queue.add(CLAIM + key_of(claim))
        # the volume bound to it (or pre-bound for it) may change phase with it
        name = (claim.get("spec") or {}).get("volumeName")
        if name:
            self.queue.add(VOLUME + name)

    def _volume_changed(self, volume: Obj) -> None:
        self.queue.add(VOLUME + volume["metadata"]["name"])
        ref = (volume.get("spec") or {}).get("claimRef")
        if ref and ref.get("name"):
            self.queue.add(f"{CLAIM}{ref.get('namespace') or ''}/{ref['name']}")

    def _volume_deleted(self, obj: Any) -> None:
        volume = deleted_object(obj)
        ref = (volume.get("spec") or {}).get("claimRef")
        if ref and ref.get("name"):
            self.queue.add(f"{CLAIM}{ref.get('namespace') or ''}/{ref['name']}")

    def _class_added(self, cls: Obj) -> None:
        # claims waiting for a class (or for the default one) may go on now
        for claim in self.claims.store.list():
            if not (claim.get("spec") or {}).get("volumeName"):
                self.queue.add(CLAIM + key_of(claim))

    def background(self, stop: asyncio.Event) -> Iterable[Coroutine[Any, Any, None]]:
        return [periodic(RESYNC_PERIOD, self.resync, stop)]

    def resync(self) -> None:
        for claim in self.claims.store.list():
            self.queue.add(CLAIM + key_of(claim))
        for volume in self.volumes.store.list():
            self.queue.add(VOLUME + volume["metadata"]["name"])

    async def sync(self, key: str) -> None:
        if key.startswith(CLAIM):
            claim = self.claims.store.get(key[len(CLAIM):])
            if claim is not None and not claim["metadata"].get("deletionTimestamp"):
                await self.sync_claim(claim)
        elif key.startswith(VOLUME):
            volume = self.volumes.store.get(key[len(VOLUME):])
            if volume is not None:
                await self.sync_volume(volume)

    # -- helpers -----------------------------------------------------------------------

    def storage_class(self, name: str) -> Obj | None:
        return self.classes.store.get(name) if name else None

    def delay_binding(self, claim: Obj) -> bool:
        return is_delay_binding(claim, self.storage_class)

    def default_class(self) -> str | None:
        return newest_name([c for c in self.classes.store.list() if is_default_class(c)])

    def event(self, obj: Obj, type_: str, reason: str, message: str) -> None:
        self.recorder.event(obj, type_, reason, message)

    async def set_claim_phase(self, claim: Obj, phase: str, volume: Obj | None = None) -> Obj:
        status = claim.get("status") or {}
        want = copy.deepcopy(status)
        want["phase"] = phase
        if volume is not None:
            spec = volume.get("spec") or {}
            want["accessModes"] = list(spec.get("accessModes") or [])
            want["capacity"] = dict(spec.get("capacity") or {})
        else:
            want.pop("accessModes", None)
            want.pop("capacity", None)
        if want == status:
            return claim
        return await self.claims_api.update_status({**claim, "status": want})

    async def set_volume_phase(self, volume: Obj, phase: str, message: str = "") -> Obj:
        status = volume.get("status") or {}
        if status.get("phase") == phase and (status.get("message") or "") == message:
            return volume
        want = {k: v for k, v in status.items() if k not in ("message", "reason")}
        want["phase"] = phase
        if message:
            want["message"] = message
        return await self.volumes_api.update_status({**volume, "status": want})

    # -- claims ------------------------------------------------------------------------

    async def sync_claim(self, claim: Obj) -> None:
        if annotations(claim).get(ANN_BIND_COMPLETED) is None:
            await self.sync_unbound_claim(claim)
        else:
            await self.sync_bound_claim(claim)

    async def sync_unbound_claim(self, claim: Obj) -> None:
        spec = claim.get("spec") or {}
        if "storageClassName" not in spec and BETA_STORAGE_CLASS_ANNOTATION not in annotations(claim):
            default = self.default_class()
            if default is not None:
                # retroactive default class: the claim was created before a default class existed
                updated = copy.deepcopy(claim)
                updated["spec"]["storageClassName"] = default
                await self.claims_api.update(updated)
                return  # the update brings the next sync
        name = spec.get("volumeName") or ""
        if not name:
            volume = find_best_match(claim, self.volumes.store.list(), self.delay_binding(claim))
            if volume is None:
                await self.no_volume_for(claim)
                return
            await self.bind(volume, claim)
            return
        # pre-bound by the user to a named volume
        volume = self.volumes.store.get(name)
        if volume is None:
            await self.set_claim_phase(claim, "Pending")
            return
        ref = (volume.get("spec") or {}).get("claimRef")
        if not ref:
            mismatch = volume_satisfies_claim(volume, claim)
            if mismatch:
                self.event(claim, "Warning", "VolumeMismatch", f'Cannot bind to requested volume "{name}": {mismatch}')
                await self.set_claim_phase(claim, "Pending")
                return
            await self.bind(volume, claim)
        elif is_bound_to(volume, claim):
            await self.bind(volume, claim)
        else:
            self.event(claim, "Warning", "FailedBinding", f'volume "{name}" already bound to a different claim.')
            await self.set_claim_phase(claim, "Pending")

    async def no_volume_for(self, claim: Obj) -> None:
        cls_name = storage_class_name(claim)
        cls = self.storage_class(cls_name)
        if self.delay_binding(claim) and not annotations(claim).get(ANN_SELECTED_NODE):
            self.event(claim, "Normal", "WaitForFirstConsumer", "waiting for first consumer to be created before binding")
            await self.set_claim_phase(claim, "Pending")
            return
        if cls_name:
            if cls is None:
                self.event(claim, "Warning", "ProvisioningFailed", f'storageclass.storage.k8s.io "{cls_name}" not found')
                await self.set_claim_phase(claim, "Pending")
                return
            provisioner = cls.get("provisioner") or ""
            if provisioner and provisioner != NO_PROVISIONER:
                await self.request_provisioning(claim, provisioner)
                return
            self.event(claim, "Normal", "FailedBinding",
                       "no persistent volumes available for this claim and no storage class is set"
                       if not provisioner else f'storageclass "{cls_name}" has no provisioner')
        else:
            self.event(claim, "Normal", "FailedBinding",
                       "no persistent volumes available for this claim and no storage class is set")
        await self.set_claim_phase(claim, "Pending")

    async def request_provisioning(self, claim: Obj, provisioner: str) -> None:
        ann = annotations(claim)
        if ann.get(ANN_STORAGE_PROVISIONER) != provisioner or ann.get(ANN_BETA_STORAGE_PROVISIONER) != provisioner:
            updated = copy.deepcopy(claim)
            updated["metadata"].setdefault("annotations", {}).update(
                {ANN_STORAGE_PROVISIONER: provisioner, ANN_BETA_STORAGE_PROVISIONER: provisioner})
            claim = await self.claims_api.update(updated)
        self.event(claim, "Normal", "ExternalProvisioning",
                   f"Waiting for a volume to be created either by the external provisioner '{provisioner}' or "
                   "manually by the system administrator. If volume creation is delayed, please verify that "
                   "the provisioner is running and correctly registered.")
        await self.set_claim_phase(claim, "Pending")

    async def sync_bound_claim(self, claim: Obj) -> None:
        name = (claim.get("spec") or {}).get("volumeName") or ""
        if not name:
            if _phase(claim) != "Lost":
                self.event(claim, "Warning", "ClaimLost",
                           "Bound claim has lost reference to PersistentVolume. Data on the volume is lost!")
            await self.set_claim_phase(claim, "Lost")
            return
        volume = self.volumes.store.get(name)
        if volume is None:
            if _phase(claim) != "Lost":
                self.event(claim, "Warning", "ClaimLost",
                           "Bound claim has lost its PersistentVolume. Data on the volume is lost!")
            await self.set_claim_phase(claim, "Lost")
            return
        if not (volume.get("spec") or {}).get("claimRef") or is_bound_to(volume, claim):
            await self.bind(volume, claim)
            return
        if _phase(claim) != "Lost":
            self.event(claim, "Warning", "ClaimMisbound",
                       "Two claims are bound to the same volume, this one is bound incorrectly")
        await self.set_claim_phase(claim, "Lost")

    async def bind(self, volume: Obj, claim: Obj) -> None:
        """Volume → claimRef and Bound; claim → volumeName, annotations and Bound (each idempotent)."""
        updated, changed = bind_volume_to_claim(volume, claim)
        if changed:
            volume = await self.volumes_api.update(updated)
        volume = await self.set_volume_phase(volume, "Bound")
        name = volume["metadata"]["name"]
        ann = annotations(claim)
        if (claim.get("spec") or {}).get("volumeName") != name or ann.get(ANN_BIND_COMPLETED) != "yes":
            updated = copy.deepcopy(claim)
            if updated["spec"].get("volumeName") != name:
                updated["spec"]["volumeName"] = name
                updated["metadata"].setdefault("annotations", {})[ANN_BOUND_BY_CONTROLLER] = "yes"
            updated["metadata"].setdefault("annotations", {})[ANN_BIND_COMPLETED] = "yes"
            claim = await self.claims_api.update(updated)
        was_bound = _phase(claim) == "Bound"
        await self.set_claim_phase(claim, "Bound", volume)
        if not was_bound:
            self.log.info("bound claim %s to volume %s", key_of(claim), name)

    # -- volumes -----------------------------------------------------------------------

    async def claim_of(self, volume: Obj) -> Obj | None:
        """The claim the volume's claimRef names, if it is still that claim (uid): the cache first,
        then the apiserver, so a claim the cache has not seen yet does not release its volume."""
        ref = volume["spec"]["claimRef"]
        key = f"{ref.get('namespace') or ''}/{ref['name']}"
        claim = self.claims.store.get(key)
        if claim is not None and claim["metadata"].get("uid") == ref.get("uid"):
            return claim
        if _phase(volume) in ("Released", "Failed"):
            return None  # released already: no live check (upstream's), not on every resync
        namespace, name = split_key(key)
        try:
            claim = await self.claims_api.get(name, namespace)
        except Exception as e:
            if is_not_found(e):
                return None
            raise
        return claim if claim["metadata"].get("uid") == ref.get("uid") else None

    async def sync_volume(self, volume: Obj) -> None:
        ref = (volume.get("spec") or {}).get("claimRef")
        if not ref:
            await self.set_volume_phase(volume, "Available")
            return
        if not ref.get("uid"):
            # pre-bound by name to a claim that does not exist yet
            await self.set_volume_phase(volume, "Available")
            return
        claim = await self.claim_of(volume)
        if claim is None:
            if _phase(volume) not in ("Released", "Failed"):
                volume = await self.set_volume_phase(volume, "Released")
                self.log.info("volume %s released (claim %s/%s gone); reclaim policy %s", volume["metadata"]["name"],
                              ref.get("namespace"), ref.get("name"), self.reclaim_policy(volume))
            await self.reclaim(volume)
            return
        claimed = (claim.get("spec") or {}).get("volumeName") or ""
        if not claimed:
            # binding in progress (or a user's pre-binding): the claim's sync finishes it
            self.queue.add(CLAIM + key_of(claim))
            return
        if claimed == volume["metadata"]["name"]:
            await self.set_volume_phase(volume, "Bound")
            return
        # the claim went to another volume
        if annotations(volume).get(ANN_DYNAMICALLY_PROVISIONED) and self.reclaim_policy(volume) == "Delete":
            volume = await self.set_volume_phase(volume, "Released")
            await self.reclaim(volume)
        else:
            # ours: unbound; pre-bound by the user: the uid goes, the name stays (upstream's unbindVolume)
            await self.unbind(volume)

    @staticmethod
    def reclaim_policy(volume: Obj) -> str:
        return (volume.get("spec") or {}).get("persistentVolumeReclaimPolicy") or "Retain"

    async def reclaim(self, volume: Obj) -> None:
        policy = self.reclaim_policy(volume)
        if policy == "Retain":
            return
        if policy == "Delete":
            if annotations(volume).get(ANN_DYNAMICALLY_PROVISIONED):
                return  # its provisioner deletes the volume and then the object
            if _phase(volume) != "Failed":
                message = (f'error getting deleter volume plugin for volume "{volume["metadata"]["name"]}": '
                           "no deletable volume plugin matched")
                self.event(volume, "Warning", "VolumeFailedDelete", message)
                await self.set_volume_phase(volume, "Failed", message)
            return
        if _phase(volume) != "Failed":
            message = "No recycler plugin found for the volume!"
            self.event(volume, "Warning", "VolumeFailedRecycle", message)
            await self.set_volume_phase(volume, "Failed", message)

    async def unbind(self, volume: Obj) -> None:
        updated = copy.deepcopy(volume)
        if annotations(volume).get(ANN_BOUND_BY_CONTROLLER):
            updated["spec"].pop("claimRef", None)
            updated["metadata"]["annotations"].pop(ANN_BOUND_BY_CONTROLLER, None)
        else:
            updated["spec"]["claimRef"]["uid"] = ""
        volume = await self.volumes_api.update(updated)
        await self.set_volume_phase(volume, "Available")
