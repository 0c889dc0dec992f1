"""What the server serves: plural ↔ kind and namespaced-ness per group/version.

Learned once per group/version from discovery (`/api/v1`, `/apis/<g>/<v>`) and cached;
a built-in table of the standard kinds stands in when discovery cannot be reached.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from client.errors import APIConnectionError, ApiError, is_not_found

if TYPE_CHECKING:
    from client.rest import APIClient


@dataclass(frozen=True, slots=True)
class ResourceInfo:
    api_version: str
    plural: str
    kind: str
    namespaced: bool
    verbs: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()

    @property
    def group(self) -> str:
        return split_api_version(self.api_version)[0]

    @property
    def version(self) -> str:
        return split_api_version(self.api_version)[1]


def split_api_version(api_version: str) -> tuple[str, str]:
    """`apps/v1` → ("apps", "v1"); `v1` → ("", "v1")."""
    group, _, version = api_version.rpartition("/")
    return group, version


def api_prefix(api_version: str) -> str:
    """The URL prefix of a group/version: `/api/v1` for core, `/apis/<group>/<version>` otherwise."""
    group, version = split_api_version(api_version)
    return f"/apis/{group}/{version}" if group else f"/api/{version}"


# (api_version, plural, kind, namespaced) of the standard kinds.
_BUILTIN: tuple[tuple[str, str, str, bool], ...] = (
    ("v1", "namespaces", "Namespace", False),
    ("v1", "nodes", "Node", False),
    ("v1", "persistentvolumes", "PersistentVolume", False),
    ("v1", "pods", "Pod", True),
    ("v1", "services", "Service", True),
    ("v1", "endpoints", "Endpoints", True),
    ("v1", "configmaps", "ConfigMap", True),
    ("v1", "secrets", "Secret", True),
    ("v1", "serviceaccounts", "ServiceAccount", True),
    ("v1", "events", "Event", True),
    ("v1", "limitranges", "LimitRange", True),
    ("v1", "resourcequotas", "ResourceQuota", True),
    ("v1", "persistentvolumeclaims", "PersistentVolumeClaim", True),
    ("v1", "replicationcontrollers", "ReplicationController", True),
    ("v1", "podtemplates", "PodTemplate", True),
    ("events.k8s.io/v1", "events", "Event", True),
    ("apps/v1", "deployments", "Deployment", True),
    ("apps/v1", "replicasets", "ReplicaSet", True),
    ("apps/v1", "daemonsets", "DaemonSet", True),
    ("apps/v1", "statefulsets", "StatefulSet", True),
    ("apps/v1", "controllerrevisions", "ControllerRevision", True),
    ("batch/v1", "jobs", "Job", True),
    ("batch/v1", "cronjobs", "CronJob", True),
    ("autoscaling/v1", "horizontalpodautoscalers", "HorizontalPodAutoscaler", True),
    ("autoscaling/v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler", True),
    ("coordination.k8s.io/v1", "leases", "Lease", True),
    ("discovery.k8s.io/v1", "endpointslices", "EndpointSlice", True),
    ("policy/v1", "poddisruptionbudgets", "PodDisruptionBudget", True),
    ("policy/v1", "evictions", "Eviction", True),
    ("scheduling.k8s.io/v1", "priorityclasses", "PriorityClass", False),
    ("rbac.authorization.k8s.io/v1", "roles", "Role", True),
    ("rbac.authorization.k8s.io/v1", "rolebindings", "RoleBinding", True),
    ("rbac.authorization.k8s.io/v1", "clusterroles", "ClusterRole", False),
    ("rbac.authorization.k8s.io/v1", "clusterrolebindings", "ClusterRoleBinding", False),
    ("networking.k8s.io/v1", "networkpolicies", "NetworkPolicy", True),
    ("networking.k8s.io/v1", "ingresses", "Ingress", True),
    ("networking.k8s.io/v1", "ingressclasses", "IngressClass", False),
    ("storage.k8s.io/v1", "storageclasses", "StorageClass", False),
    ("storage.k8s.io/v1", "csinodes", "CSINode", False),
    ("certificates.k8s.io/v1", "certificatesigningrequests", "CertificateSigningRequest", False),
    ("authentication.k8s.io/v1", "tokenreviews", "TokenReview", False),
    ("authorization.k8s.io/v1", "subjectaccessreviews", "SubjectAccessReview", False),
    ("authorization.k8s.io/v1", "selfsubjectaccessreviews", "SelfSubjectAccessReview", False),
    ("apiextensions.k8s.io/v1", "customresourcedefinitions", "CustomResourceDefinition", False),
    ("admissionregistration.k8s.io/v1", "mutatingwebhookconfigurations", "MutatingWebhookConfiguration", False),
    ("admissionregistration.k8s.io/v1", "validatingwebhookconfigurations", "ValidatingWebhookConfiguration", False),
)

BUILTIN_RESOURCES: dict[tuple[str, str], ResourceInfo] = {
    (av, plural): ResourceInfo(av, plural, kind, namespaced) for av, plural, kind, namespaced in _BUILTIN
}


def builtin_resource(api_version: str, plural: str) -> ResourceInfo | None:
    return BUILTIN_RESOURCES.get((api_version, plural))


def builtin_resource_for_kind(api_version: str, kind: str) -> ResourceInfo | None:
    for info in BUILTIN_RESOURCES.values():
        if info.api_version == api_version and info.kind == kind:
            return info
    return None


def parse_resource_list(api_version: str, doc: dict[str, Any]) -> dict[str, ResourceInfo]:
    """An APIResourceList → {plural: ResourceInfo}, subresources folded into their parent."""
    out: dict[str, ResourceInfo] = {}
    subs: dict[str, list[str]] = {}
    for r in doc.get("resources") or []:
        name = r.get("name") or ""
        if "/" in name:
            parent, _, sub = name.partition("/")
            subs.setdefault(parent, []).append(sub)
            continue
        out[name] = ResourceInfo(
            api_version, name, r.get("kind") or "", bool(r.get("namespaced")), tuple(r.get("verbs") or ())
        )
    for parent, names in subs.items():
        if parent in out:
            i = out[parent]
            out[parent] = ResourceInfo(i.api_version, i.plural, i.kind, i.namespaced, i.verbs, tuple(names))
    return out


class Discovery:
    """Per-client cache of discovery documents, one fetch per group/version."""

    def __init__(self, client: APIClient) -> None:
        self._client = client
        self._cache: dict[str, dict[str, ResourceInfo]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def resources(self, api_version: str) -> dict[str, ResourceInfo]:
        """{plural: ResourceInfo} served for `api_version` (404 → ApiError)."""
        cached = self._cache.get(api_version)
        if cached is not None:
            return cached
        lock = self._locks.setdefault(api_version, asyncio.Lock())
        async with lock:
            cached = self._cache.get(api_version)
            if cached is None:
                doc = await self._client.request("GET", api_prefix(api_version))
                cached = self._cache[api_version] = parse_resource_list(api_version, doc)
        return cached

    async def resolve(self, api_version: str, plural: str) -> ResourceInfo:
        """Discovery's answer for a resource; the built-in table when the server cannot be asked."""
        try:
            found = (await self.resources(api_version)).get(plural)
        except (APIConnectionError, ApiError) as e:
            builtin = builtin_resource(api_version, plural)
            if builtin is not None:
                return builtin
            if isinstance(e, ApiError) and is_not_found(e):
                raise _unknown(api_version, plural) from None
            raise
        if found is None:
            raise _unknown(api_version, plural)
        return found

    async def resolve_kind(self, api_version: str, kind: str) -> ResourceInfo:
        try:
            for info in (await self.resources(api_version)).values():
                if info.kind == kind:
                    return info
        except (APIConnectionError, ApiError) as e:
            builtin = builtin_resource_for_kind(api_version, kind)
            if builtin is not None:
                return builtin
            if not (isinstance(e, ApiError) and is_not_found(e)):
                raise
        raise _unknown(api_version, kind)

    def invalidate(self) -> None:
        self._cache.clear()


def _unknown(api_version: str, what: str) -> ApiError:
    return ApiError(404, "NotFound", f"the server doesn't have a resource type {what!r} in {api_version}")
