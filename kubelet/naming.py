"""How the kubelet names and labels what it creates in the runtime (upstream's kuberuntime labels).

Everything the kubelet needs to adopt running containers after a restart is carried on the
sandboxes and containers themselves: the pod's uid, name and namespace, the container's name,
the hash of its spec, its restart count and its termination settings.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

POD_NAME = "io.kubernetes.pod.name"
POD_NAMESPACE = "io.kubernetes.pod.namespace"
POD_UID = "io.kubernetes.pod.uid"
CONTAINER_NAME = "io.kubernetes.container.name"
CONTAINER_TYPE = "io.kubernetes.container.type"  # "init" | "ephemeral" | "" (regular)
KUBELET_MANAGED = "minik8s.io/kubelet-managed"  # ours: what a kubelet created (the rest is left alone)

CONTAINER_HASH = "io.kubernetes.container.hash"
RESTART_COUNT = "io.kubernetes.container.restartCount"
TERMINATION_MESSAGE_PATH = "io.kubernetes.container.terminationMessagePath"
TERMINATION_MESSAGE_POLICY = "io.kubernetes.container.terminationMessagePolicy"
TERMINATION_MESSAGE_FILE = "minik8s.io/termination-message-file"  # host side of the message file
POD_DELETION_GRACE = "io.kubernetes.pod.deletionGracePeriod"
POD_TERMINATION_GRACE = "io.kubernetes.pod.terminationGracePeriod"
PRE_STOP_HANDLER = "io.kubernetes.container.preStopHandler"
CONTAINER_PORTS = "io.kubernetes.container.ports"

SANDBOX_CONTAINER_NAME = "POD"
CONTAINERD_PREFIX = "containerd://"

# Upstream's static-pod / mirror-pod annotations.
CONFIG_SOURCE = "kubernetes.io/config.source"
CONFIG_HASH = "kubernetes.io/config.hash"
CONFIG_SEEN = "kubernetes.io/config.seen"
CONFIG_MIRROR = "kubernetes.io/config.mirror"


def pod_labels(pod: dict[str, Any]) -> dict[str, str]:
    meta = pod["metadata"]
    return {
        POD_NAME: meta["name"],
        POD_NAMESPACE: meta.get("namespace", "default"),
        POD_UID: meta["uid"],
        KUBELET_MANAGED: "true",
    }


def sandbox_labels(pod: dict[str, Any]) -> dict[str, str]:
    """The pod's own labels plus the kubelet's (which win)."""
    labels = dict(pod["metadata"].get("labels") or {})
    labels.update(pod_labels(pod))
    return labels


def container_labels(pod: dict[str, Any], container: dict[str, Any], init: bool) -> dict[str, str]:
    labels = pod_labels(pod)
    labels[CONTAINER_NAME] = container["name"]
    if init:
        labels[CONTAINER_TYPE] = "init"
    elif is_ephemeral(pod, container["name"]):
        labels[CONTAINER_TYPE] = "ephemeral"
    return labels


def is_ephemeral(pod: dict[str, Any], name: str) -> bool:
    """Is `name` one of the pod's ephemeral containers (kubectl debug's)?"""
    return any(c.get("name") == name for c in (pod.get("spec") or {}).get("ephemeralContainers") or [])


def container_hash(container: dict[str, Any]) -> str:
    """A stable hash of the container's spec: a change means the container must be recreated."""
    return hashlib.sha256(orjson.dumps(container, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


def container_id(raw_id: str) -> str:
    """The API's containerID for a runtime id."""
    return CONTAINERD_PREFIX + raw_id if raw_id else ""


def raw_container_id(api_id: str) -> str:
    return api_id.split("://", 1)[1] if "://" in api_id else api_id


def pod_full_name(pod: dict[str, Any]) -> str:
    meta = pod["metadata"]
    return f"{meta['name']}_{meta.get('namespace', 'default')}"


def pod_log_dir_name(namespace: str, name: str, uid: str) -> str:
    """`<namespace>_<name>_<uid>`, upstream's /var/log/pods directory name."""
    return f"{namespace}_{name}_{uid}"


def container_log_path(container_name: str, restart_count: int) -> str:
    """Relative to the sandbox's log directory: `<container>/<restartCount>.log`."""
    return f"{container_name}/{restart_count}.log"
