"""The NodeRestriction admission plugin (upstream plugin/pkg/admission/noderestriction).

What the Node authorizer allows a kubelet in general, this narrows to its own objects:
its own Node (no taint changes, no restricted labels), its own Lease, status of pods
bound to it, mirror pods bound to it that reference nothing else, evictions and deletions
of its pods, and tokens only for pods running on it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from apiserver.admission import CREATE, DELETE, UPDATE, Attributes, Plugin
from apiserver.admission.serviceaccount import MIRROR_ANNOTATION, _references
from apiserver.authz.node import NODE_LEASE_NAMESPACE, node_identity
from apiserver.lookup import get_object

if TYPE_CHECKING:
    from apiserver.server import APIServer

RESTRICTED_LABEL_PREFIX = "node-restriction.kubernetes.io/"
#: kubernetes.io labels a kubelet may set on its own Node (upstream's allowed set)
ALLOWED_KUBELET_LABELS = {
    "kubernetes.io/hostname", "kubernetes.io/arch", "kubernetes.io/os",
    "beta.kubernetes.io/arch", "beta.kubernetes.io/os", "beta.kubernetes.io/instance-type",
    "failure-domain.beta.kubernetes.io/zone", "failure-domain.beta.kubernetes.io/region",
    "topology.kubernetes.io/zone", "topology.kubernetes.io/region", "node.kubernetes.io/instance-type",
}
ALLOWED_KUBELET_PREFIXES = ("kubelet.kubernetes.io/", "node.kubernetes.io/")


def forbidden_labels(labels: dict[str, str]) -> list[str]:
    """Labels a node may not set on itself: node-restriction.kubernetes.io/* and unknown
    kubernetes.io / k8s.io labels."""
    out = []
    for key in labels:
        ns = key.split("/", 1)[0] if "/" in key else ""
        if key.startswith(RESTRICTED_LABEL_PREFIX):
            out.append(key)
            continue
        if ns in ("kubernetes.io", "k8s.io") or ns.endswith((".kubernetes.io", ".k8s.io")):
            if key in ALLOWED_KUBELET_LABELS or key.startswith(ALLOWED_KUBELET_PREFIXES):
                continue
            out.append(key)
    return sorted(out)


class NodeRestriction(Plugin):
    name = "NodeRestriction"

    def __init__(self, server: APIServer) -> None:
        self.server = server

    async def validate(self, a: Attributes) -> None:
        is_node, node = node_identity(a.user)
        if not is_node:
            return
        if not node:
            raise self.forbidden(a, f'could not determine node from user "{a.user.name}"')
        group, plural = a.resource.group, a.resource.plural
        if group == "" and plural == "pods":
            await self._pod(a, node)
        elif group == "" and plural == "nodes":
            self._node(a, node)
        elif group == "" and plural == "serviceaccounts" and a.subresource == "token":
            await self._token(a, node)
        elif group == "coordination.k8s.io" and plural == "leases":
            self._lease(a, node)
        elif group == "storage.k8s.io" and plural == "csinodes":
            self._csinode(a, node)

    # -- pods ------------------------------------------------------------------------------

    async def _pod(self, a: Attributes, node: str) -> None:
        if a.subresource == "status":
            bound = ((a.old or {}).get("spec") or {}).get("nodeName")
            if bound != node:
                raise self.forbidden(a, f'node "{node}" can only update pod status for pods with spec.nodeName set to itself')
            return
        if a.subresource == "eviction":
            pod = await get_object(self.server, "", "pods", a.namespace, a.name)
            if pod is not None and (pod.get("spec") or {}).get("nodeName") != node:
                raise self.forbidden(a, f'node "{node}" can only evict pods with spec.nodeName set to itself')
            return
        if a.subresource:
            raise self.forbidden(a, f'unexpected pod subresource "{a.subresource}", only \'status\' and '
                                    "'eviction' are allowed")
        if a.operation == CREATE:
            self._mirror_pod(a, node)
        elif a.operation == DELETE:
            if ((a.old or {}).get("spec") or {}).get("nodeName") != node:
                raise self.forbidden(a, f'node "{node}" can only delete pods with spec.nodeName set to itself')
        else:
            raise self.forbidden(a, f'unexpected operation "{a.operation}", node "{node}" can only create and delete mirror pods')

    def _mirror_pod(self, a: Attributes, node: str) -> None:
        pod = a.obj if isinstance(a.obj, dict) else {}
        meta = pod.get("metadata") or {}
        spec = pod.get("spec") if isinstance(pod.get("spec"), dict) else {}
        if MIRROR_ANNOTATION not in (meta.get("annotations") or {}):
            raise self.forbidden(a, f'pod does not have "{MIRROR_ANNOTATION}" annotation, node "{node}" can only create mirror pods')
        if spec.get("nodeName") != node:
            raise self.forbidden(a, f'node "{node}" can only create pods with spec.nodeName set to itself')
        owners = meta.get("ownerReferences") or []
        if len(owners) > 1:
            raise self.forbidden(a, f'node "{node}" can only create pods with a single owner reference set to itself')
        if owners:
            o = owners[0] if isinstance(owners[0], dict) else {}
            if o.get("apiVersion") != "v1" or o.get("kind") != "Node" or o.get("name") != node:
                raise self.forbidden(a, f'node "{node}" can only create pods with an owner reference set to itself')
            if o.get("controller") is not True:
                raise self.forbidden(a, f'node "{node}" can only create pods with a controller owner reference set to itself')
        if spec.get("serviceAccountName"):
            raise self.forbidden(a, f'node "{node}" can not create pods that reference a service account')
        uses_secrets, uses_configmaps = _references(spec)
        if uses_secrets:
            raise self.forbidden(a, f'node "{node}" can not create pods that reference secrets')
        if uses_configmaps:
            raise self.forbidden(a, f'node "{node}" can not create pods that reference configmaps')
        for v in spec.get("volumes") or []:
            if isinstance(v, dict) and isinstance(v.get("persistentVolumeClaim"), dict):
                raise self.forbidden(a, f'node "{node}" can not create pods that reference persistentvolumeclaims')

    # -- nodes -----------------------------------------------------------------------------

    def _node(self, a: Attributes, node: str) -> None:
        name = a.name or ((a.obj or {}).get("metadata") or {}).get("name", "")
        if name != node:
            raise self.forbidden(a, f'node "{node}" is not allowed to modify node "{name}"')
        new = a.obj if isinstance(a.obj, dict) else {}
        labels = (new.get("metadata") or {}).get("labels") or {}
        if a.operation == CREATE:
            if (new.get("spec") or {}).get("configSource") is not None:
                raise self.forbidden(a, f'node "{node}" is not allowed to create pods with a non-nil configSource')
            bad = forbidden_labels(labels)
            if bad:
                raise self.forbidden(a, f'node "{node}" is not allowed to set the following labels: {", ".join(bad)}')
        elif a.operation == UPDATE and isinstance(a.old, dict):
            old_spec, new_spec = a.old.get("spec") or {}, new.get("spec") or {}
            if (old_spec.get("taints") or []) != (new_spec.get("taints") or []) and a.subresource != "status":
                raise self.forbidden(a, f'node "{node}" is not allowed to modify taints')
            if new_spec.get("configSource") != old_spec.get("configSource") and new_spec.get("configSource") is not None:
                raise self.forbidden(a, f'node "{node}" is not allowed to create pods with a non-nil configSource')
            old_labels = (a.old.get("metadata") or {}).get("labels") or {}
            changed = {k: v for k, v in labels.items() if old_labels.get(k) != v}
            changed.update({k: "" for k in old_labels if k not in labels})
            bad = forbidden_labels(changed)
            if bad:
                raise self.forbidden(a, f'node "{node}" is not allowed to modify labels: {", ".join(bad)}')

    # -- leases and tokens -----------------------------------------------------------------

    def _lease(self, a: Attributes, node: str) -> None:
        if a.namespace != NODE_LEASE_NAMESPACE:
            return
        name = a.name or ((a.obj or {}).get("metadata") or {}).get("name", "")
        if a.operation in (CREATE, UPDATE) and name != node:
            raise self.forbidden(a, "can only access node lease with the same name as the requesting node")

    def _csinode(self, a: Attributes, node: str) -> None:
        name = a.name or ((a.obj or {}).get("metadata") or {}).get("name", "")
        if name != node:
            raise self.forbidden(a, "can only access CSINode with the same name as the requesting node")

    async def _token(self, a: Attributes, node: str) -> None:
        spec = ((a.obj or {}).get("spec") or {}) if isinstance(a.obj, dict) else {}
        ref: Any = spec.get("boundObjectRef")
        if not isinstance(ref, dict):
            raise self.forbidden(a, "node requested token not bound to a pod")
        if ref.get("kind") != "Pod":
            raise self.forbidden(a, f"node requested token bound to a {ref.get('kind')}, only pods are allowed")
        if not ref.get("uid"):
            raise self.forbidden(a, "node requested token with a pod binding without a uid")
        pod = await get_object(self.server, "", "pods", a.namespace, ref.get("name") or "")
        if pod is None or pod["metadata"].get("uid") != ref["uid"]:
            raise self.forbidden(a, "node requested token bound to a pod that does not exist")
        if (pod.get("spec") or {}).get("nodeName") != node:
            raise self.forbidden(a, "node requested token bound to a pod scheduled on a different node")
