"""The PV protection controller (upstream pkg/controller/volume/pvprotection): a volume being
deleted keeps its `kubernetes.io/pv-protection` finalizer (added by the
StorageObjectInUseProtection admission plugin) while it is Bound to a claim."""

from __future__ import annotations

from typing import Any

from apimachinery.volumebinding import PV_PROTECTION_FINALIZER
from controller_manager.base import Controller, ControllerContext, register, remove_finalizer

Obj = dict[str, Any]



@register
class PVProtectionController(Controller):
    name = "persistentvolume-protection-controller"
    aliases = ("pv-protection",)
    service_account = "pv-protection-controller"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.volumes = self.watch("v1", "persistentvolumes")
        self.volumes_api = self.client.resource("v1", "persistentvolumes")

    async def sync(self, key: str) -> None:
        volume = self.volumes.store.get(key)
        if volume is None or not volume["metadata"].get("deletionTimestamp"):
            return
        if PV_PROTECTION_FINALIZER not in (volume["metadata"].get("finalizers") or []):
            return
        if (volume.get("status") or {}).get("phase") == "Bound":
            return  # its claim's deletion releases it, and the phase change brings it back here
        await remove_finalizer(self.volumes_api, volume, PV_PROTECTION_FINALIZER)
        self.log.info("removed %s from volume %s: not bound", PV_PROTECTION_FINALIZER, key)
