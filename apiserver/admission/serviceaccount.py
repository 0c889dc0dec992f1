"""The ServiceAccount admission plugin (upstream plugin/pkg/admission/serviceaccount).

Every pod runs as a ServiceAccount of its namespace (`default` unless it names one),
which must exist. Unless `automountServiceAccountToken` is false (on the pod, else on the
ServiceAccount), the pod gets a projected volume `kube-api-access-<random>` — a bound
token (3607 s), the cluster CA (`kube-root-ca.crt`) and the namespace — mounted read-only
at /var/run/secrets/kubernetes.io/serviceaccount in every container that has nothing
there already. The ServiceAccount's imagePullSecrets are copied to pods that have none.
Mirror pods (static pods the kubelet reports) may not reference any of this.
"""

from __future__ import annotations

import asyncio
import random
import secrets
from typing import TYPE_CHECKING, Any

from apiserver.admission import CREATE, Attributes, Plugin
from apiserver.lookup import get_object

if TYPE_CHECKING:
    from apiserver.server import APIServer

DEFAULT_SA = "default"
TOKEN_VOLUME_PREFIX = "kube-api-access-"
TOKEN_MOUNT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
TOKEN_EXPIRATION = 3607
MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def is_pod_create(a: Attributes) -> bool:
    return a.operation == CREATE and a.resource.plural == "pods" and not a.resource.group and not a.subresource


def is_mirror_pod(pod: dict[str, Any]) -> bool:
    return MIRROR_ANNOTATION in ((pod.get("metadata") or {}).get("annotations") or {})


def token_volume(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "projected": {
            "defaultMode": 0o644,
            "sources": [
                {"serviceAccountToken": {"expirationSeconds": TOKEN_EXPIRATION, "path": "token"}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace",
                                            "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
            ],
        },
    }


def mount_token(spec: dict[str, Any]) -> None:
    """Add the token volume and mount it wherever the default path is free (upstream's rules)."""
    volumes = spec.get("volumes") if isinstance(spec.get("volumes"), list) else []
    name = next((v.get("name") for v in volumes if isinstance(v, dict)
                 and str(v.get("name", "")).startswith(TOKEN_VOLUME_PREFIX)), None)
    has_volume = name is not None
    if name is None:
        name = TOKEN_VOLUME_PREFIX + "".join(secrets.choice(_NAME_ALPHABET) for _ in range(5))
    needed = False
    for key in ("initContainers", "containers"):
        for c in spec.get(key) or []:
            if not isinstance(c, dict):
                continue
            mounts = c.get("volumeMounts") if isinstance(c.get("volumeMounts"), list) else []
            if any(isinstance(m, dict) and m.get("mountPath") == TOKEN_MOUNT_PATH for m in mounts):
                continue
            c["volumeMounts"] = [*mounts, {"name": name, "readOnly": True, "mountPath": TOKEN_MOUNT_PATH}]
            needed = True
    if needed and not has_volume:
        spec["volumes"] = [*volumes, token_volume(name)]


def _references(spec: dict[str, Any]) -> tuple[bool, bool]:
    """(references secrets?, references configmaps?) anywhere in a pod spec."""
    from apiserver.authz.node import pod_references

    refs = pod_references({"metadata": {}, "spec": spec})
    return any(r[0] == "secrets" for r in refs), any(r[0] == "configmaps" for r in refs)


class ServiceAccount(Plugin):
    name = "ServiceAccount"

    def __init__(self, server: APIServer, mount_tokens: bool = True) -> None:
        self.server = server
        self.mount_tokens = mount_tokens

    async def admit(self, a: Attributes) -> None:
        if not is_pod_create(a) or not isinstance(a.obj, dict):
            return
        spec = a.obj.get("spec")
        if not isinstance(spec, dict):
            return
        if is_mirror_pod(a.obj):
            self._check_mirror(a, spec)
            return
        name = spec.get("serviceAccountName") or spec.get("serviceAccount") or DEFAULT_SA
        if not isinstance(name, str):
            return  # validation reports the type error
        spec["serviceAccountName"] = name
        spec["serviceAccount"] = name
        sa = await self._service_account(a.namespace, name)
        if sa is None:
            if await get_object(self.server, "", "namespaces", "", a.namespace) is None:
                return  # NamespaceLifecycle answers 404 for the namespace
            raise self.forbidden(a, f'error looking up service account {a.namespace}/{name}: serviceaccount "{name}" not found')
        if not spec.get("imagePullSecrets") and sa.get("imagePullSecrets"):
            spec["imagePullSecrets"] = [{"name": s.get("name")} for s in sa["imagePullSecrets"] if isinstance(s, dict)]
        automount = spec.get("automountServiceAccountToken")
        if automount is None:
            automount = sa.get("automountServiceAccountToken")
        if automount is None:
            automount = True
        if automount is True and self.mount_tokens:
            mount_token(spec)

    def _check_mirror(self, a: Attributes, spec: dict[str, Any]) -> None:
        if spec.get("serviceAccountName") or spec.get("serviceAccount"):
            raise self.forbidden(a, "a mirror pod may not reference service accounts")
        uses_secrets, uses_configmaps = _references(spec)
        if uses_secrets:
            raise self.forbidden(a, "a mirror pod may not reference secrets")
        if uses_configmaps:
            raise self.forbidden(a, "a mirror pod may not reference configmaps")
        for v in spec.get("volumes") or []:
            if isinstance(v, dict) and isinstance(v.get("projected"), dict):
                for src in v["projected"].get("sources") or []:
                    if isinstance(src, dict) and "serviceAccountToken" in src:
                        raise self.forbidden(a, "a mirror pod may not use ServiceAccountToken volume projections")

    async def _service_account(self, namespace: str, name: str) -> dict[str, Any] | None:
        # The default ServiceAccount is created right after its namespace: wait for it a
        # little, as upstream does (10 tries, 100–200 ms apart).
        tries = 10 if name == DEFAULT_SA else 1
        for i in range(tries):
            if i:
                if await get_object(self.server, "", "namespaces", "", namespace) is None:
                    return None
                await asyncio.sleep(0.1 + random.random() * 0.1)
            sa = await get_object(self.server, "", "serviceaccounts", namespace, name)
            if sa is not None:
                return sa
        return None
