"""The built-in admission plugins, in upstream's order."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from apimachinery import errors
from apimachinery.volumebinding import PV_PROTECTION_FINALIZER, PVC_PROTECTION_FINALIZER
from apiserver.admission import CREATE, DELETE, Attributes, Plugin

if TYPE_CHECKING:
    from apiserver.server import APIServer

IMMORTAL_NAMESPACES = ("default", "kube-system", "kube-public")


class NamespaceLifecycle(Plugin):
    """No objects in missing or terminating namespaces; system namespaces can't be deleted."""

    name = "NamespaceLifecycle"
    # how long a namespace this server was asked to delete is read from etcd, not the cache (upstream's value)
    FORCE_LIVE_LOOKUP_SECONDS = 30.0

    def __init__(self, server: APIServer) -> None:
        self.server = server
        self._deleted_at: dict[str, float] = {}  # namespace -> monotonic time its DELETE was admitted

    async def validate(self, a: Attributes) -> None:
        if a.resource.plural == "namespaces" and a.resource.group == "":
            if a.operation == DELETE:
                if a.name in IMMORTAL_NAMESPACES:
                    raise self.forbidden(a, "this namespace may not be deleted")
                # the watch cache learns of the deletion a moment later: creates in that window must not slip in
                now = time.monotonic()
                if len(self._deleted_at) >= 256:
                    self._deleted_at = {n: t for n, t in self._deleted_at.items()
                                        if now - t < self.FORCE_LIVE_LOOKUP_SECONDS}
                self._deleted_at[a.name] = now
            return
        if a.operation != CREATE or not a.resource.namespaced or not a.namespace:
            return
        phase = await self._namespace_phase(a.namespace)
        if phase is None:
            raise errors.not_found("namespaces", a.namespace)
        if phase == "Terminating":
            raise errors.StatusError(
                403,
                "Forbidden",
                f'{a.resource.group_resource} "{a.name}" is forbidden: {self.name}: unable to create new content in '
                f"namespace {a.namespace} because it is being terminated",
                {"name": a.name, "group": a.resource.group, "kind": a.resource.plural,
                 "causes": [{"reason": "NamespaceTerminating", "message": f"namespace {a.namespace} is being terminated",
                             "field": "metadata.namespace"}]},
            )

    async def _namespace_phase(self, name: str) -> str | None:
        """The namespace's phase, or None if it doesn't exist (read from the watch cache's
        indexed fields: no decoding on every create)."""
        cache = self.server.cache_for("", "namespaces")
        entry = cache.get(f"/registry/namespaces/{name}") if cache.ready.is_set() else None
        if entry is not None:
            phase = entry.fields.get("status.phase") or "Active"
            if phase != "Active" or not self._recently_deleted(name):
                return phase
        # not cached yet (just created?) or maybe stale (deleted here a moment ago): ask etcd, as upstream does
        kv = await self.server.store.get(f"/registry/namespaces/{name}")
        if kv is None:
            return None
        ns = kv.decode()
        deleting = ns["metadata"].get("deletionTimestamp")
        return "Terminating" if deleting else (ns.get("status") or {}).get("phase") or "Active"

    def _recently_deleted(self, name: str) -> bool:
        at = self._deleted_at.get(name)
        return at is not None and time.monotonic() - at < self.FORCE_LIVE_LOOKUP_SECONDS


class TaintNodesByCondition(Plugin):
    """A new Node starts tainted `node.kubernetes.io/not-ready:NoSchedule`, so that nothing is
    scheduled to it before it is Ready; the node lifecycle controller removes the taint then."""

    name = "TaintNodesByCondition"
    TAINT = {"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}

    async def admit(self, a: Attributes) -> None:
        if a.operation != CREATE or a.resource.plural != "nodes" or a.resource.group or a.subresource:
            return
        obj = a.obj if isinstance(a.obj, dict) else None
        if obj is None:
            return
        spec = obj.setdefault("spec", {})
        if not isinstance(spec, dict):
            return
        taints = spec.get("taints")
        if taints is None:
            taints = spec["taints"] = []
        if not isinstance(taints, list):
            return
        if not any(isinstance(t, dict) and t.get("key") == self.TAINT["key"] and t.get("effect") == self.TAINT["effect"]
                   for t in taints):
            taints.append(dict(self.TAINT))


class DefaultTolerationSeconds(Plugin):
    """Pods tolerate not-ready/unreachable nodes for 300 s before eviction."""

    name = "DefaultTolerationSeconds"
    KEYS = ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable")

    def __init__(self, seconds: int = 300) -> None:
        self.seconds = seconds

    async def admit(self, a: Attributes) -> None:
        if a.operation != CREATE or a.resource.plural != "pods" or a.resource.group or a.subresource:
            return
        spec = (a.obj or {}).get("spec")
        if not isinstance(spec, dict):
            return
        tols = spec.get("tolerations") or []
        if not isinstance(tols, list):
            return
        for key in self.KEYS:
            covered = any(
                isinstance(t, dict)
                and (t.get("key") == key or (not t.get("key") and t.get("operator") == "Exists"))
                and t.get("effect") in (None, "", "NoExecute")
                for t in tols
            )
            if not covered:
                tols.append({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": self.seconds})
        spec["tolerations"] = tols


class Priority(Plugin):
    """spec.priority from the pod's PriorityClass (or the global default, else 0)."""

    name = "Priority"

    def __init__(self, server: APIServer) -> None:
        self.server = server

    async def admit(self, a: Attributes) -> None:
        if a.operation != CREATE or a.resource.plural != "pods" or a.resource.group or a.subresource:
            return
        spec = (a.obj or {}).get("spec")
        if not isinstance(spec, dict):
            return
        name = spec.get("priorityClassName")
        classes = await self.server.cache_for("scheduling.k8s.io", "priorityclasses").all_objects()
        if name:
            pc = next((c for c in classes if c["metadata"]["name"] == name), None)
            if pc is None:
                raise self.forbidden(a, f"no PriorityClass with name {name} was found")
        else:
            pc = next((c for c in classes if c.get("globalDefault")), None)
            if pc is not None:
                spec["priorityClassName"] = pc["metadata"]["name"]
        value = pc.get("value", 0) if pc else 0
        if spec.get("priority") is not None and spec["priority"] != value:
            raise self.forbidden(a, "the integer value of priority must not be provided in pod spec; priority "
                                    "admission controller computed the priority from the given PriorityClass name")
        spec["priority"] = value
        spec.setdefault("preemptionPolicy", (pc or {}).get("preemptionPolicy", "PreemptLowerPriority"))


class StorageObjectInUseProtection(Plugin):
    """New PersistentVolumeClaims and PersistentVolumes get the finalizer that keeps them while in
    use (`kubernetes.io/pvc-protection`, `kubernetes.io/pv-protection`); the controller-manager's
    protection controllers remove it once nothing uses them."""

    name = "StorageObjectInUseProtection"
    FINALIZERS = {"persistentvolumeclaims": PVC_PROTECTION_FINALIZER, "persistentvolumes": PV_PROTECTION_FINALIZER}

    async def admit(self, a: Attributes) -> None:
        if a.operation != CREATE or a.resource.group or a.subresource or not isinstance(a.obj, dict):
            return
        finalizer = self.FINALIZERS.get(a.resource.plural)
        meta = a.obj.get("metadata")
        if finalizer is None or not isinstance(meta, dict):
            return
        finalizers = meta.get("finalizers")
        if finalizers is None:
            meta["finalizers"] = [finalizer]
        elif isinstance(finalizers, list) and finalizer not in finalizers:
            finalizers.append(finalizer)


#: Every plugin by name, in upstream's recommended order: mutating ones run in this
#: order, then validating ones in this order (ResourceQuota last, so a rejected write is
#: never charged).
ORDER = (
    "NamespaceLifecycle", "LimitRanger", "ServiceAccount", "NodeRestriction", "TaintNodesByCondition", "Priority",
    "DefaultTolerationSeconds", "DefaultStorageClass", "StorageObjectInUseProtection", "RuntimeClass", "CertificateApproval", "CertificateSigning",
    "CertificateSubjectRestriction", "DefaultIngressClass", "PodSecurity",
    # dynamic webhooks after the built-in plugins, before ResourceQuota (upstream's AllOrderedPlugins)
    "MutatingAdmissionWebhook", "ValidatingAdmissionPolicy", "ValidatingAdmissionWebhook", "ResourceQuota",
)


def _build(name: str, server: APIServer) -> Plugin:
    from apiserver.admission.certificates import (
        CertificateApproval,
        CertificateSigning,
        CertificateSubjectRestriction,
    )
    from apiserver.admission.defaultclass import DefaultIngressClass, DefaultStorageClass
    from apiserver.admission.limitranger import LimitRanger
    from apiserver.admission.noderestriction import NodeRestriction
    from apiserver.admission.podsecurity import PodSecurity
    from apiserver.admission.policy import ValidatingAdmissionPolicy
    from apiserver.admission.resourcequota import ResourceQuota
    from apiserver.admission.runtimeclass import RuntimeClass
    from apiserver.admission.serviceaccount import ServiceAccount
    from apiserver.admission.webhook import MutatingAdmissionWebhook, ValidatingAdmissionWebhook

    factories = {
        "NamespaceLifecycle": lambda: NamespaceLifecycle(server),
        "LimitRanger": lambda: LimitRanger(server),
        "ServiceAccount": lambda: ServiceAccount(server),
        "NodeRestriction": lambda: NodeRestriction(server),
        "TaintNodesByCondition": TaintNodesByCondition,
        "Priority": lambda: Priority(server),
        "DefaultTolerationSeconds": DefaultTolerationSeconds,
        "DefaultStorageClass": lambda: DefaultStorageClass(server),
        "StorageObjectInUseProtection": StorageObjectInUseProtection,
        "RuntimeClass": lambda: RuntimeClass(server),
        "CertificateApproval": lambda: CertificateApproval(server),
        "CertificateSigning": lambda: CertificateSigning(server),
        "CertificateSubjectRestriction": CertificateSubjectRestriction,
        "DefaultIngressClass": lambda: DefaultIngressClass(server),
        "PodSecurity": lambda: PodSecurity(server),
        "MutatingAdmissionWebhook": lambda: MutatingAdmissionWebhook(server),
        "ValidatingAdmissionPolicy": lambda: ValidatingAdmissionPolicy(server),
        "ValidatingAdmissionWebhook": lambda: ValidatingAdmissionWebhook(server),
        "ResourceQuota": lambda: ResourceQuota(server),
    }
    return factories[name]()


def default_plugins(server: APIServer) -> list[Plugin]:
    """All plugins but those `--disable-admission-plugins` names (unknown names are an error)."""
    disabled = set(getattr(server.opts, "disable_admission_plugins", None) or [])
    enabled = set(server.opts.admission_plugins or [])
    unknown = (disabled | enabled) - set(ORDER)
    if unknown:
        raise ValueError(f"unknown admission plugin(s): {', '.join(sorted(unknown))}; known: {', '.join(ORDER)}")
    return [_build(name, server) for name in ORDER if name not in disabled]
