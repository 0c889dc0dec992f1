"""The hostpath provisioner: dynamic PersistentVolumes as directories on a node, for the
cluster's default StorageClass (what kind's local-path and minikube's hostpath provisioners
are to those clusters; not an upstream controller-manager controller).

It acts as an external provisioner does (sig-storage external-provisioner): on a claim the PV
binder annotated with `volume.kubernetes.io/storage-provisioner: minik8s.io/hostpath`, it
creates a PersistentVolume `pvc-<claim uid>` pre-bound to the claim, and the binder binds
them. The volume is a `hostPath` directory `<path>/<pv>_<namespace>_<claim>` on one node —
the node the scheduler chose for the claim's first pod (WaitForFirstConsumer, annotation
`volume.kubernetes.io/selected-node`), or for an Immediate class the first Ready node — and
carries a node affinity to that node. The StorageClass parameter `path` is the base directory
on the nodes (default /var/lib/minik8s/volumes).

The directory is made (mode 0777, so containers running as any user can write, as the other
local provisioners do) and, when a released volume's reclaim policy is Delete, removed by a
short-lived helper pod on that node (busybox, the base directory mounted), like
local-path-provisioner: the controller-manager need not run on the node. Helper pods are named
`hostpath-<create|delete>-<pv>` in kube-system; their progress re-queues the claim or volume.

Volumes with reclaim policy Delete carry external-provisioner's finalizer
`external-provisioner.volume.kubernetes.io/finalizer` (upstream's HonorPVReclaimPolicy): a
volume someone deletes directly still gets its directory removed before the object goes. The
finalizer is removed once the directory is gone, or when the policy changes to Retain.
"""

from __future__ import annotations

import asyncio
import posixpath
from pathlib import Path
from typing import Any

from apimachinery.meta import key_of
from apimachinery.volumebinding import (
    ANN_BETA_STORAGE_PROVISIONER,
    ANN_DYNAMICALLY_PROVISIONED,
    ANN_SELECTED_NODE,
    ANN_STORAGE_PROVISIONER,
    WAIT_FOR_FIRST_CONSUMER,
    annotations,
    claim_ref,
    storage_class_name,
)
from client import APIClient, create_missing, is_already_exists, is_not_found, load_config
from controller_manager.base import Controller, ControllerContext, register, remove_finalizer
from controller_manager.conditions import is_node_ready

Obj = dict[str, Any]

PROVISIONER = "minik8s.io/hostpath"
DEFAULT_BASE_PATH = "/var/lib/minik8s/volumes"
DEFAULT_CLASS_NAME = "standard"
HELPER_NAMESPACE = "kube-system"
HELPER_IMAGE = "localhost/minik8s/busybox:1.35"
HELPER_LABEL = "minik8s.io/hostpath-helper"
#: on a helper pod: the workqueue key it reports to ("claim/<ns>/<name>" or "volume/<name>")
HELPER_FOR = "minik8s.io/hostpath-helper-for"
CLAIM = "claim/"
VOLUME = "volume/"
RETRY_AFTER = 10.0
FINALIZER = "external-provisioner.volume.kubernetes.io/finalizer"  # upstream's


def default_storage_class(base_path: str = DEFAULT_BASE_PATH) -> Obj:
    """The cluster's default StorageClass, as kind's "standard" (installed by `cluster up`)."""
    return {
        "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
        "metadata": {"name": DEFAULT_CLASS_NAME,
                     "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
        "provisioner": PROVISIONER,
        "parameters": {"path": base_path},
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "WaitForFirstConsumer",
    }


def install_default_class_sync(admin_kubeconfig: str | Path, base_path: str = DEFAULT_BASE_PATH) -> list[str]:
    """Create the default StorageClass unless it exists (`cluster up`, the compose node)."""
    async def run() -> list[str]:
        async with APIClient(load_config(admin_kubeconfig)) as api:
            return await create_missing(api, [default_storage_class(base_path)])

    return asyncio.run(run())


def base_path_of(cls: Obj) -> str:
    """The class's base directory; ValueError with the reason when it is not a usable one."""
    path = (cls.get("parameters") or {}).get("path") or DEFAULT_BASE_PATH
    if not posixpath.isabs(path) or posixpath.normpath(path) != path.rstrip("/") or path.rstrip("/") == "":
        raise ValueError(f'StorageClass parameter "path" must be a normalized absolute directory other than "/", '
                         f"not {path!r}")
    return path.rstrip("/")


def volume_node(volume: Obj) -> str | None:
    """The node a hostpath volume lives on, from its node affinity."""
    affinity = ((volume.get("spec") or {}).get("nodeAffinity") or {}).get("required") or {}
    for term in affinity.get("nodeSelectorTerms") or []:
        for expr in term.get("matchExpressions") or []:
            if expr.get("key") == "kubernetes.io/hostname" and expr.get("operator") == "In" and expr.get("values"):
                return expr["values"][0]
    return None


def helper_pod(op: str, volume_name: str, node: str, base: str, directory: str, reports_to: str) -> Obj:
    script = {
        "create": 'mkdir -m 0777 -p "/data/$DIR" && chmod 0777 "/data/$DIR"',
        "delete": 'rm -rf "/data/$DIR"',
    }[op]
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": f"hostpath-{op}-{volume_name}", "namespace": HELPER_NAMESPACE,
                     "labels": {HELPER_LABEL: op}, "annotations": {HELPER_FOR: reports_to}},
        "spec": {
            "nodeName": node,
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "tolerations": [{"operator": "Exists"}],
            "containers": [{
                "name": "helper", "image": HELPER_IMAGE, "imagePullPolicy": "IfNotPresent",
                "command": ["sh", "-c", script], "env": [{"name": "DIR", "value": directory}],
                "volumeMounts": [{"name": "data", "mountPath": "/data"}],
            }],
            "volumes": [{"name": "data", "hostPath": {"path": base, "type": "DirectoryOrCreate"}}],
        },
    }


def helper_failure(pod: Obj) -> str:
    for s in (pod.get("status") or {}).get("containerStatuses") or []:
        term = (s.get("state") or {}).get("terminated") or {}
        if term:
            return f"helper pod {pod['metadata']['name']} exited with {term.get('exitCode')}: " \
                   f"{(term.get('message') or term.get('reason') or '').strip()}"
    return f"helper pod {pod['metadata']['name']} failed: {(pod.get('status') or {}).get('message') or ''}"


@register
class HostPathProvisioner(Controller):
    name = "hostpath-provisioner"
    service_account = "hostpath-provisioner"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.claims = self.informer("v1", "persistentvolumeclaims")
        self.volumes = self.informer("v1", "persistentvolumes")
        self.classes = self.informer("storage.k8s.io/v1", "storageclasses")
        self.nodes = self.informer("v1", "nodes")
        self.helpers = self.informer("v1", "pods", namespace=HELPER_NAMESPACE, label_selector=HELPER_LABEL)
        self.claims.add_handler(self._claim_changed, lambda old, new: self._claim_changed(new), None)
        self.volumes.add_handler(self._volume_changed, lambda old, new: self._volume_changed(new), None)
        self.helpers.add_handler(self._helper_changed, lambda old, new: self._helper_changed(new), None)
        self.claims_api = self.client.resource("v1", "persistentvolumeclaims")
        self.volumes_api = self.client.resource("v1", "persistentvolumes")
        self.pods_api = self.client.resource("v1", "pods")
        self.nodes_api = self.client.resource("v1", "nodes")

    def _claim_changed(self, claim: Obj) -> None:
        ann = annotations(claim)
        if PROVISIONER in (ann.get(ANN_STORAGE_PROVISIONER), ann.get(ANN_BETA_STORAGE_PROVISIONER)):
            self.queue.add(CLAIM + key_of(claim))

    def _volume_changed(self, volume: Obj) -> None:
        if annotations(volume).get(ANN_DYNAMICALLY_PROVISIONED) == PROVISIONER:
            self.queue.add(VOLUME + volume["metadata"]["name"])

    def _helper_changed(self, pod: Obj) -> None:
        reports_to = annotations(pod).get(HELPER_FOR)
        if reports_to:
            self.queue.add(reports_to)

    async def sync(self, key: str) -> None:
        busy = False
        if key.startswith(CLAIM):
            claim = self.claims.store.get(key[len(CLAIM):])
            if claim is not None:
                busy = await self.provision(claim, key)
        elif key.startswith(VOLUME):
            volume = self.volumes.store.get(key[len(VOLUME):])
            if volume is not None:
                busy = await self.delete(volume, key)
        if not busy:
            await self.remove_finished_helpers(key)

    # -- provisioning ------------------------------------------------------------------

    def wants_volume(self, claim: Obj) -> Obj | None:
        """The claim's StorageClass if the claim should get a volume from us now."""
        if claim["metadata"].get("deletionTimestamp") or (claim.get("spec") or {}).get("volumeName"):
            return None
        ann = annotations(claim)
        if PROVISIONER not in (ann.get(ANN_STORAGE_PROVISIONER), ann.get(ANN_BETA_STORAGE_PROVISIONER)):
            return None
        cls = self.classes.store.get(storage_class_name(claim))
        if cls is None or cls.get("provisioner") != PROVISIONER:
            return None
        if cls.get("volumeBindingMode") == WAIT_FOR_FIRST_CONSUMER and not ann.get(ANN_SELECTED_NODE):
            return None
        return cls

    def pick_node(self, claim: Obj) -> str | None:
        selected = annotations(claim).get(ANN_SELECTED_NODE)
        if selected:
            return selected
        ready = sorted(n["metadata"]["name"] for n in self.nodes.store.list() if is_node_ready(n) and not (n.get("spec") or {}).get("unschedulable"))
        return ready[0] if ready else None

    async def provision(self, claim: Obj, key: str) -> bool:
        """Provision for the claim if it wants a volume; True while a helper pod works for it."""
        cls = self.wants_volume(claim)
        if cls is None:
            return False
        volume_name = f"pvc-{claim['metadata']['uid']}"
        if self.volumes.store.get(volume_name) is not None:
            return False
        if ((claim.get("spec") or {}).get("volumeMode") or "Filesystem") != "Filesystem":
            self.failed(claim, "hostpath volumes support only volumeMode Filesystem")
            return False
        try:
            base = base_path_of(cls)
        except ValueError as e:
            self.failed(claim, str(e))
            return False
        node = self.pick_node(claim)
        if node is not None and node == annotations(claim).get(ANN_SELECTED_NODE) and await self._node_gone(node):
            # upstream's ProvisioningReschedule: the scheduler must pick another node
            self.failed(claim, f'node "{node}" not found: the scheduler will choose another')
            await self.reschedule(claim)
            return False
        if node is None:
            self.failed(claim, "no Ready node to put the volume on")
            self.enqueue_after(key, RETRY_AFTER)
            return False
        directory = f"{volume_name}_{claim['metadata'].get('namespace')}_{claim['metadata']['name']}"
        helper = self.helpers.store.get(f"{HELPER_NAMESPACE}/hostpath-create-{volume_name}")
        if helper is None:
            self.recorder.event(claim, "Normal", "Provisioning",
                                f'External provisioner is provisioning volume for claim "{key_of(claim)}"')
            await self.start_helper(helper_pod("create", volume_name, node, base, directory, key))
            return True
        phase = (helper.get("status") or {}).get("phase")
        if phase == "Failed":
            self.failed(claim, helper_failure(helper))
            await self.remove_helper(helper)
            self.enqueue_after(key, RETRY_AFTER)
            return True
        if phase != "Succeeded":
            return True  # the helper's next status brings us back
        volume = self.new_volume(claim, cls, volume_name, node, posixpath.join(base, directory))
        try:
            await self.volumes_api.create(volume)
        except Exception as e:
            if not is_already_exists(e):
                raise
        await self.remove_helper(helper)
        self.recorder.event(claim, "Normal", "ProvisioningSucceeded", f"Successfully provisioned volume {volume_name}")
        self.log.info("provisioned %s for claim %s on node %s", volume_name, key_of(claim), node)
        return True

    def new_volume(self, claim: Obj, cls: Obj, name: str, node: str, path: str) -> Obj:
        spec = claim.get("spec") or {}
        storage = ((spec.get("resources") or {}).get("requests") or {}).get("storage") or "0"
        volume: Obj = {
            "apiVersion": "v1", "kind": "PersistentVolume",
            "metadata": {"name": name, "annotations": {ANN_DYNAMICALLY_PROVISIONED: PROVISIONER}},
            "spec": {
                "capacity": {"storage": storage},
                "accessModes": list(spec.get("accessModes") or ["ReadWriteOnce"]),
                "persistentVolumeReclaimPolicy": cls.get("reclaimPolicy") or "Delete",
                "storageClassName": storage_class_name(claim),
                "volumeMode": "Filesystem",
                "claimRef": claim_ref(claim),
                "hostPath": {"path": path, "type": "Directory"},
                "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                    {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}]}]}},
            },
        }
        if cls.get("mountOptions"):
            volume["spec"]["mountOptions"] = list(cls["mountOptions"])
        if volume["spec"]["persistentVolumeReclaimPolicy"] == "Delete":
            volume["metadata"]["finalizers"] = [FINALIZER]
        return volume

    async def _node_gone(self, name: str) -> bool:
        if self.nodes.store.get(name) is not None:
            return False
        try:  # the cache may not have a new node yet: ask
            await self.nodes_api.get(name)
            return False
        except Exception as e:
            if is_not_found(e):
                return True
            raise

    async def reschedule(self, claim: Obj) -> None:
        """Drop the claim's selected-node annotation (upstream's rescheduleProvisioning)."""
        meta = claim["metadata"]
        ann = {k: v for k, v in (meta.get("annotations") or {}).items() if k != ANN_SELECTED_NODE}
        try:
            await self.claims_api.update({**claim, "metadata": {**meta, "annotations": ann}})
        except Exception as e:
            if not is_not_found(e):
                raise

    def failed(self, claim: Obj, message: str) -> None:
        self.recorder.event(claim, "Warning", "ProvisioningFailed", message)
        self.log.warning("provisioning for claim %s failed: %s", key_of(claim), message)

    # -- deletion ----------------------------------------------------------------------

    async def delete(self, volume: Obj, key: str) -> bool:
        """Remove the directory of a released volume (or of one deleted while not bound), then the
        volume's finalizer and the volume; True while a helper pod works for it."""
        spec = volume.get("spec") or {}
        meta = volume["metadata"]
        if annotations(volume).get(ANN_DYNAMICALLY_PROVISIONED) != PROVISIONER:
            return False
        ours = FINALIZER in (meta.get("finalizers") or [])
        if spec.get("persistentVolumeReclaimPolicy") != "Delete":
            if ours:  # Retain now: the directory stays, so nothing to wait for (as upstream)
                await remove_finalizer(self.volumes_api, volume, FINALIZER)
            return False
        phase = (volume.get("status") or {}).get("phase")
        deleting = bool(meta.get("deletionTimestamp"))
        if phase != "Released" and not (deleting and phase != "Bound"):
            return False
        if deleting and not ours:
            return False  # its directory is gone already (the finalizer went after it)
        name = meta["name"]
        path = (spec.get("hostPath") or {}).get("path") or ""
        node = volume_node(volume)
        helper = None
        if path and node is not None and self.nodes.store.get(node) is not None:
            helper = self.helpers.store.get(f"{HELPER_NAMESPACE}/hostpath-delete-{name}")
            if helper is None:
                base, directory = posixpath.split(path)
                await self.start_helper(helper_pod("delete", name, node, base, directory, key))
                return True
            phase = (helper.get("status") or {}).get("phase")
            if phase == "Failed":
                message = helper_failure(helper)
                self.recorder.event(volume, "Warning", "VolumeFailedDelete", message)
                await self.remove_helper(helper)
                self.enqueue_after(key, RETRY_AFTER)
                return True
            if phase != "Succeeded":
                return True
        else:
            self.log.warning("volume %s: node %s is gone; deleting the object, its directory %s stays", name, node, path)
        # finalizer and volume first, then the helper: while the helper is there, a later sync of
        # this volume (still listed until pv-protection lets it go) knows its directory is gone
        if ours:
            await remove_finalizer(self.volumes_api, volume, FINALIZER)
        if not deleting:
            try:
                await self.volumes_api.delete(name, preconditions={"uid": meta["uid"]})
            except Exception as e:
                if not is_not_found(e):
                    raise
        if helper is not None:
            await self.remove_helper(helper)
        self.log.info("deleted released volume %s (%s on %s)", name, path, node)
        return True

    # -- helper pods -------------------------------------------------------------------

    async def start_helper(self, pod: Obj) -> None:
        try:
            await self.pods_api.create(pod, HELPER_NAMESPACE)
        except Exception as e:
            if not is_already_exists(e):
                raise

    async def remove_finished_helpers(self, key: str) -> None:
        """Helper pods that report to `key` and are done, once nothing waits for them (their
        claim or volume is gone, or was served by another helper): a running one is left to
        finish; its last status brings the key back here."""
        for pod in self.helpers.store.list():
            if annotations(pod).get(HELPER_FOR) == key and \
                    (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                await self.remove_helper(pod)

    async def remove_helper(self, pod: Obj) -> None:
        try:
            await self.pods_api.delete(pod["metadata"]["name"], HELPER_NAMESPACE, grace_period_seconds=0,
                                       preconditions={"uid": pod["metadata"]["uid"]})
        except Exception as e:
            if not is_not_found(e):
                raise
