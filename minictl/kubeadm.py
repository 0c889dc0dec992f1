"""What `kubeadm init`'s bootstrap-token phase sets up, for `minictl cluster up`: nodes can join.

- `kube-public/cluster-info`: a kubeconfig with the apiserver's address and the cluster CA,
  readable anonymously (Role + RoleBinding `kubeadm:bootstrap-signer-clusterinfo`); the
  controller-manager's bootstrap signer adds a `jws-kubeconfig-<token-id>` signature per token;
- ClusterRoleBindings for the kubelet TLS bootstrap (kubeadm's names):
  `kubeadm:kubelet-bootstrap` (node tokens may create CSRs: system:node-bootstrapper),
  `kubeadm:node-autoapprove-bootstrap` (their CSRs are auto-approved: …:nodeclient),
  `kubeadm:node-autoapprove-certificate-rotation` (nodes renewing: …:selfnodeclient);
- `minik8s:node-proxier`: a joined node's kube-proxy authenticates with the node's own
  certificate (kubeadm runs kube-proxy as a DaemonSet with a ServiceAccount instead), so
  system:nodes get upstream's system:node-proxier role.

These are kubeadm's objects, not upstream's bootstrap policy: they are applied by minictl, not
by the apiserver (apiserver/rbac_bootstrap.py stays upstream's policy only).
"""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

import yaml

from apimachinery.bootstraptoken import (
    CLUSTER_INFO_NAME,
    CLUSTER_INFO_NAMESPACE,
    DEFAULT_NODE_TOKEN_GROUP,
    KUBECONFIG_KEY,
)
from client import APIClient, ApiError, is_already_exists, load_config

RBAC = "rbac.authorization.k8s.io"
RBAC_V1 = f"{RBAC}/v1"
NODES_GROUP = "system:nodes"
ANONYMOUS = "system:anonymous"
NODE_BOOTSTRAPPER = "system:node-bootstrapper"
NODE_CLIENT = "system:certificates.k8s.io:certificatesigningrequests:nodeclient"
SELF_NODE_CLIENT = "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient"
CLUSTER_INFO_ROLE = "kubeadm:bootstrap-signer-clusterinfo"


def cluster_info_kubeconfig(server: str, ca_pem: bytes) -> str:
    """cluster-info's `kubeconfig`: one unnamed cluster, no users (as kubeadm writes it)."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "", "cluster": {
            "certificate-authority-data": base64.b64encode(ca_pem).decode("ascii"), "server": server}}],
        "contexts": None,
        "current-context": "",
        "preferences": {},
        "users": None,
    }
    return yaml.safe_dump(config, sort_keys=False)


def _group(name: str) -> dict[str, str]:
    return {"apiGroup": RBAC, "kind": "Group", "name": name}


def _crb(name: str, role: str, subjects: list[dict[str, str]]) -> dict[str, Any]:
    return {"apiVersion": RBAC_V1, "kind": "ClusterRoleBinding", "metadata": {"name": name},
            "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": role}, "subjects": subjects}


def join_rbac(node_token_group: str = DEFAULT_NODE_TOKEN_GROUP) -> list[tuple[str, str, dict[str, Any]]]:
    """(plural, namespace, object) of every RBAC object joining nodes rely on, roles first."""
    ns = CLUSTER_INFO_NAMESPACE
    return [
        ("clusterrolebindings", "", _crb("kubeadm:kubelet-bootstrap", NODE_BOOTSTRAPPER, [_group(node_token_group)])),
        ("clusterrolebindings", "", _crb("kubeadm:node-autoapprove-bootstrap", NODE_CLIENT, [_group(node_token_group)])),
        ("clusterrolebindings", "", _crb("kubeadm:node-autoapprove-certificate-rotation", SELF_NODE_CLIENT,
                                         [_group(NODES_GROUP)])),
        ("clusterrolebindings", "", _crb("minik8s:node-proxier", "system:node-proxier", [_group(NODES_GROUP)])),
        ("roles", ns, {"apiVersion": RBAC_V1, "kind": "Role", "metadata": {"name": CLUSTER_INFO_ROLE, "namespace": ns},
                       "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"],
                                  "resourceNames": [CLUSTER_INFO_NAME]}]}),
        ("rolebindings", ns, {"apiVersion": RBAC_V1, "kind": "RoleBinding",
                              "metadata": {"name": CLUSTER_INFO_ROLE, "namespace": ns},
                              "roleRef": {"apiGroup": RBAC, "kind": "Role", "name": CLUSTER_INFO_ROLE},
                              "subjects": [{"apiGroup": RBAC, "kind": "User", "name": ANONYMOUS}]}),
    ]


async def _ensure(api: APIClient, api_version: str, plural: str, namespace: str, obj: dict[str, Any],
                  fields: tuple[str, ...]) -> str:
    """Create `obj`, or bring `fields` of an existing one in line → "created"/"updated"/"unchanged"."""
    rc = api.resource(api_version, plural)
    try:
        await rc.create(obj, namespace or None)
        return "created"
    except ApiError as e:
        if not is_already_exists(e):
            raise
    current = await rc.get(obj["metadata"]["name"], namespace or None)
    if all(current.get(f) == obj.get(f) for f in fields):
        return "unchanged"
    if current.get("roleRef") not in (None, obj.get("roleRef")):  # roleRef is immutable: replace
        await rc.delete(obj["metadata"]["name"], namespace or None)
        await rc.create(obj, namespace or None)
        return "updated"
    current.update({f: obj[f] for f in fields if f in obj})
    await rc.update(current, namespace or None)
    return "updated"


async def publish_cluster_info(api: APIClient, server: str, ca_pem: bytes) -> str:
    """Create kube-public/cluster-info, or update its kubeconfig (signatures are the signer's job)."""
    cm_api = api.resource("v1", "configmaps")
    kubeconfig = cluster_info_kubeconfig(server, ca_pem)
    try:
        await cm_api.create({"apiVersion": "v1", "kind": "ConfigMap",
                             "metadata": {"name": CLUSTER_INFO_NAME, "namespace": CLUSTER_INFO_NAMESPACE},
                             "data": {KUBECONFIG_KEY: kubeconfig}}, CLUSTER_INFO_NAMESPACE)
        return "created"
    except ApiError as e:
        if not is_already_exists(e):
            raise
    current = await cm_api.get(CLUSTER_INFO_NAME, CLUSTER_INFO_NAMESPACE)
    data = dict(current.get("data") or {})
    if data.get(KUBECONFIG_KEY) == kubeconfig:
        return "unchanged"
    data[KUBECONFIG_KEY] = kubeconfig
    current["data"] = data
    await cm_api.update(current, CLUSTER_INFO_NAMESPACE)
    return "updated"


async def setup_node_joining(api: APIClient, server: str, ca_pem: bytes) -> dict[str, str]:
    """cluster-info and the RBAC objects of the node TLS bootstrap (idempotent) → {object: what happened}."""
    done = {f"configmap/{CLUSTER_INFO_NAME}": await publish_cluster_info(api, server, ca_pem)}
    for plural, ns, obj in join_rbac():
        fields = ("rules",) if plural == "roles" else ("roleRef", "subjects")
        done[f"{plural}/{obj['metadata']['name']}"] = await _ensure(api, RBAC_V1, plural, ns, obj, fields)
    return done


def setup_node_joining_sync(admin_kubeconfig: str | Path, server: str, ca_cert: Path) -> dict[str, str]:
    ca_pem = Path(ca_cert).read_bytes()

    async def run() -> dict[str, str]:
        async with APIClient(load_config(admin_kubeconfig)) as api:
            return await setup_node_joining(api, server, ca_pem)

    return asyncio.run(run())
