"""The Node authorizer: a kubelet may read what its own pods need and little else.

Requests from `system:node:<name>` in `system:nodes` are judged against a graph of
node ← pod ← {secret, configmap, pvc ← pv, serviceaccount} relations built from the
pods watch cache (upstream's node authorizer graph, kept incrementally):

- secrets, configmaps: get/list/watch of a single named object related to the node;
- persistentvolumeclaims, persistentvolumes: get (claims also `status` updates);
- serviceaccounts/token: create for a service account one of its pods runs as;
- leases: its own Lease in kube-node-lease;
- csinodes: its own CSINode (create is narrowed to it by NodeRestriction);
- nodes: read its own Node (create/update/status are allowed here and narrowed to its
  own object by the NodeRestriction admission plugin);
- pods: get a related pod, list/watch only with `fieldSelector=spec.nodeName=<self>`,
  create/delete (mirror pods) and status/eviction (NodeRestriction narrows them);
- everything else: the static rules of the `system:node` ClusterRole.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import TYPE_CHECKING, Any

import orjson

from apiserver.authn import UserInfo
from apiserver.authz import ALLOW, NO_OPINION, AuthzAttributes
from apiserver.authz.rbac import Rule, compile_rule

if TYPE_CHECKING:
    from apiserver.server import APIServer

log = logging.getLogger("apiserver.authz.node")

NODES_GROUP = "system:nodes"
NODE_USER_PREFIX = "system:node:"
NODE_LEASE_NAMESPACE = "kube-node-lease"

Ref = tuple[str, str, str]  # (plural, namespace, name)


def node_identity(user: UserInfo) -> tuple[bool, str]:
    """(is a node?, its name) — upstream's nodeidentifier: the name prefix and the group."""
    if not user.name.startswith(NODE_USER_PREFIX) or NODES_GROUP not in user.groups:
        return False, ""
    return True, user.name[len(NODE_USER_PREFIX):]


def _containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for key in ("initContainers", "containers", "ephemeralContainers"):
        out += [c for c in _l(spec.get(key)) if isinstance(c, dict)]
    return out


def _d(x: Any) -> dict[str, Any]:
    return x if isinstance(x, dict) else {}


def _l(x: Any) -> list[Any]:
    return x if isinstance(x, list) else []


def pod_references(pod: dict[str, Any]) -> set[Ref]:
    """The objects a pod needs from the API: what its node may read because of it."""
    meta = pod.get("metadata") or {}
    ns = meta.get("namespace", "")
    spec = pod.get("spec") if isinstance(pod.get("spec"), dict) else {}
    refs: set[Ref] = {("pods", ns, meta.get("name", ""))}

    def add(plural: str, name: Any) -> None:
        if isinstance(name, str) and name:
            refs.add((plural, ns, name))

    add("serviceaccounts", spec.get("serviceAccountName"))
    for s in _l(spec.get("imagePullSecrets")):
        add("secrets", _d(s).get("name"))
    for v in map(_d, _l(spec.get("volumes"))):
        add("secrets", _d(v.get("secret")).get("secretName"))
        add("configmaps", _d(v.get("configMap")).get("name"))
        add("persistentvolumeclaims", _d(v.get("persistentVolumeClaim")).get("claimName"))
        if v.get("ephemeral") is not None:
            add("persistentvolumeclaims", f"{meta.get('name', '')}-{v.get('name', '')}")
        for key in ("csi", "flexVolume", "cephfs", "rbd", "iscsi", "scaleIO", "storageos", "azureFile"):
            src = _d(v.get(key))
            for ref_key in ("nodePublishSecretRef", "secretRef"):
                add("secrets", _d(src.get(ref_key)).get("name"))
            add("secrets", src.get("secretName"))
        for src in map(_d, _l(_d(v.get("projected")).get("sources"))):
            add("secrets", _d(src.get("secret")).get("name"))
            add("configmaps", _d(src.get("configMap")).get("name"))
    for c in _containers(spec):
        for e in map(_d, _l(c.get("env"))):
            vf = _d(e.get("valueFrom"))
            add("secrets", _d(vf.get("secretKeyRef")).get("name"))
            add("configmaps", _d(vf.get("configMapKeyRef")).get("name"))
        for ef in map(_d, _l(c.get("envFrom"))):
            add("secrets", _d(ef.get("secretRef")).get("name"))
            add("configmaps", _d(ef.get("configMapRef")).get("name"))
    return refs


class NodeGraph:
    """Which node each API object is related to, kept in step with the pods watch cache."""

    def __init__(self, server: APIServer) -> None:
        self.server = server
        self.pods_cache = server.cache_for("", "pods")
        self.pvc_cache = server.cache_for("", "persistentvolumeclaims")
        self._pods: dict[str, tuple[str, frozenset[Ref]]] = {}
        self._ref_nodes: dict[Ref, Counter[str]] = {}
        self._node_refs: dict[str, Counter[Ref]] = {}
        self._seen: Any = None
        self.pods_cache.listeners.append(self._on_pod_event)

    def _fresh(self) -> None:
        if self._seen is not self.pods_cache.objects:
            self._rebuild()

    def _rebuild(self) -> None:
        self._seen = self.pods_cache.objects
        self._pods.clear()
        self._ref_nodes.clear()
        self._node_refs.clear()
        for key, e in self.pods_cache.objects.items():
            self._set(key, orjson.loads(e.data))

    def _on_pod_event(self, ev: Any) -> None:
        if self._seen is not self.pods_cache.objects:
            return  # a relist: rebuilt on the next question
        key = f"{self.pods_cache.prefix}{ev.entry.namespace}/{ev.entry.name}"
        if ev.type == "DELETED":
            self._unset(key)
        else:
            self._set(key, orjson.loads(ev.entry.data))

    def _set(self, key: str, pod: dict[str, Any]) -> None:
        node = (pod.get("spec") or {}).get("nodeName") if isinstance(pod.get("spec"), dict) else None
        if not node or not isinstance(node, str):
            self._unset(key)
            return
        refs = frozenset(pod_references(pod))
        old = self._pods.get(key)
        if old == (node, refs):
            return
        self._unset(key)
        self._pods[key] = (node, refs)
        node_refs = self._node_refs.setdefault(node, Counter())
        for r in refs:
            self._ref_nodes.setdefault(r, Counter())[node] += 1
            node_refs[r] += 1

    def _unset(self, key: str) -> None:
        old = self._pods.pop(key, None)
        if old is None:
            return
        node, refs = old
        node_refs = self._node_refs.get(node)
        for r in refs:
            c = self._ref_nodes.get(r)
            if c is not None:
                c[node] -= 1
                if c[node] <= 0:
                    del c[node]
                if not c:
                    del self._ref_nodes[r]
            if node_refs is not None:
                node_refs[r] -= 1
                if node_refs[r] <= 0:
                    del node_refs[r]
        if node_refs is not None and not node_refs:
            del self._node_refs[node]

    def related(self, node: str, plural: str, namespace: str, name: str) -> bool:
        """Is there a path from this object to the node?"""
        self._fresh()
        if plural == "persistentvolumes":
            return self._pv_related(node, name)
        c = self._ref_nodes.get((plural, namespace, name))
        return bool(c) and c.get(node, 0) > 0

    def _pv_related(self, node: str, pv: str) -> bool:
        for plural, ns, claim in self._node_refs.get(node, ()):
            if plural != "persistentvolumeclaims":
                continue
            entry = self.pvc_cache.get(f"{self.pvc_cache.prefix}{ns}/{claim}")
            if entry is not None and (orjson.loads(entry.data).get("spec") or {}).get("volumeName") == pv:
                return True
        return False


class NodeAuthorizer:
    def __init__(self, server: APIServer) -> None:
        from apiserver.rbac_bootstrap import node_rules

        self.graph = NodeGraph(server)
        self.node_rules: list[Rule] = [r for r in map(compile_rule, node_rules()) if r]

    async def authorize(self, a: AuthzAttributes) -> tuple[str, str]:
        is_node, node = node_identity(a.user)
        if not is_node:
            return NO_OPINION, ""
        if not node:
            return NO_OPINION, f'unknown node for user "{a.user.name}"'
        if a.is_resource and a.api_group == "":
            r = a.resource
            if r in ("secrets", "configmaps"):
                return self._read_namespaced(node, a)
            if r == "persistentvolumeclaims":
                if a.subresource == "status":
                    if a.verb not in ("update", "patch"):
                        return NO_OPINION, "can only get/update/patch this type"
                    return self._related(node, a)
                return self._get(node, a)
            if r == "persistentvolumes":
                return self._get(node, a)
            if r == "serviceaccounts":
                return self._create_token(node, a)
            if r == "nodes":
                return self._node(node, a)
            if r == "pods":
                return self._pod(node, a)
        if a.is_resource and a.api_group == "coordination.k8s.io" and a.resource == "leases":
            return self._lease(node, a)
        if a.is_resource and a.api_group == "storage.k8s.io" and a.resource == "csinodes":
            return self._csinode(node, a)
        if any(rule.allows(a) for rule in self.node_rules):
            return ALLOW, ""
        return NO_OPINION, ""

    def rules_for(self, user: UserInfo, namespace: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]], bool]:
        # nodes' permissions depend on the graph: not enumerable (upstream says the same)
        return [], [], node_identity(user)[0]

    def _related(self, node: str, a: AuthzAttributes) -> tuple[str, str]:
        if not a.name:
            return NO_OPINION, "No Object name found"
        if self.graph.related(node, a.resource, a.namespace, a.name):
            return ALLOW, ""
        return NO_OPINION, f"no relationship found between node '{node}' and this object"

    def _get(self, node: str, a: AuthzAttributes) -> tuple[str, str]:
        if a.verb != "get":
            return NO_OPINION, "can only get individual resources of this type"
        if a.subresource:
            return NO_OPINION, "cannot get subresource"
        return self._related(node, a)

    def _read_namespaced(self, node: str, a: AuthzAttributes) -> tuple[str, str]:
        if a.verb not in ("get", "list", "watch"):
            return NO_OPINION, "can only read resources of this type"
        if a.subresource:
            return NO_OPINION, "cannot read subresource"
        if not a.namespace:
            return NO_OPINION, "can only read namespaced object of this type"
        return self._related(node, a)

    def _create_token(self, node: str, a: AuthzAttributes) -> tuple[str, str]:
        if a.verb != "create" or not a.name:
            return NO_OPINION, "can only create tokens for individual service accounts"
        if a.subresource != "token":
            return NO_OPINION, "can only create token subresource of serviceaccount"
        return self._related(node, a)

    def _lease(self, node: str, a: AuthzAttributes) -> tuple[str, str]:
        if a.verb not in ("get", "create", "update", "patch", "delete"):
            return NO_OPINION, "can only get, create, update, patch, or delete a node lease"
        if a.namespace != NODE_LEASE_NAMESPACE:
            return NO_OPINION, f'can only access leases in the "{NODE_LEASE_NAMESPACE}" system namespace'
        # on create the name is in the body: NodeRestriction checks it
        if a.verb != "create" and a.name != node:
            return NO_OPINION, "can only access node lease with the same name as the requesting node"
        return ALLOW, ""

    def _csinode(self, node: str, a: AuthzAttributes) -> tuple[str, str]:
        if a.verb not in ("get", "create", "update", "patch", "delete"):
            return NO_OPINION, "can only get, create, update, patch, or delete a CSINode"
        if a.subresource:
            return NO_OPINION, "cannot authorize CSINode subresources"
        if a.verb != "create" and a.name != node:
            return NO_OPINION, "can only access CSINode with the same name as the requesting node"
        return ALLOW, ""

    def _node(self, node: str, a: AuthzAttributes) -> tuple[str, str]:
        if a.subresource == "":
            if a.verb in ("create", "update", "patch"):
                return ALLOW, ""  # NodeRestriction: only its own Node
            if a.verb in ("get", "list", "watch"):
                if a.name == node:
                    return ALLOW, ""
                if not a.name:
                    return NO_OPINION, f"node '{node}' cannot read all nodes, only its own Node object"
                return NO_OPINION, f"node '{node}' cannot read '{a.name}', only its own Node object"
        elif a.subresource == "status" and a.verb in ("update", "patch"):
            return ALLOW, ""
        return NO_OPINION, ""

    def _pod(self, node: str, a: AuthzAttributes) -> tuple[str, str]:
        if a.subresource == "":
            if a.verb == "get":
                return self._get(node, a)
            if a.verb in ("list", "watch"):
                fs = a.field_selector
                if fs is not None and fs.exact_value("spec.nodeName") == node:
                    return ALLOW, ""
                if a.name:
                    return self._related(node, a)
                return NO_OPINION, "can only list/watch pods with spec.nodeName field selector"
            if a.verb in ("create", "delete"):
                return ALLOW, ""  # mirror pods; NodeRestriction narrows them to this node
        elif a.subresource == "status" and a.verb in ("update", "patch"):
            return ALLOW, ""
        elif a.subresource == "eviction" and a.verb == "create":
            return ALLOW, ""
        return NO_OPINION, ""
