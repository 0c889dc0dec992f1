"""The resource table: every served resource, described once.

The generic handler, discovery, the watch caches and authorization are all driven by
this table; adding a kind means adding a row (and a strategy when it needs one).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from apiserver import componentstatus, metricsapi, reviews
from apiserver.registry import (
    admissionpolicy,
    admissionregistration,
    apiextensions,
    apiregistration,
    apps,
    autoscaling,
    batch,
    certificates,
    core,
    flowcontrol,
    misc,
    networking,
    node,
    persistentvolume,
    rbac,
    replication,
    storage,
)
from apiserver.registry.base import Strategy

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")

#: Verbs each subresource serves (as discovery reports them).
SUBRESOURCE_VERBS = {
    "status": ("get", "patch", "update"),
    "scale": ("get", "patch", "update"),
    "binding": ("create",),
    "eviction": ("create",),
    "finalize": ("update",),
    "token": ("create",),
    "log": ("get",),
    "exec": ("create", "get"),
    "attach": ("create", "get"),
    "portforward": ("create", "get"),
    "proxy": ("create", "delete", "get", "patch", "update"),
    "ephemeralcontainers": ("get", "patch", "update"),
    "approval": ("get", "patch", "update"),
}

#: The kind each subresource's objects have (when not the parent's own kind).
SUBRESOURCE_KINDS = {
    "scale": ("autoscaling", "v1", "Scale"),
    "binding": ("", "v1", "Binding"),
    "eviction": ("policy", "v1", "Eviction"),
    "token": ("authentication.k8s.io", "v1", "TokenRequest"),
    "log": ("", "v1", "Pod"),
    "exec": ("", "v1", "PodExecOptions"),
    "attach": ("", "v1", "PodAttachOptions"),
    "portforward": ("", "v1", "PodPortForwardOptions"),
    "proxy": ("", "v1", "NodeProxyOptions"),
}
#: The options kind of each resource's `proxy` subresource.
PROXY_OPTION_KINDS = {"nodes": "NodeProxyOptions", "pods": "PodProxyOptions", "services": "ServiceProxyOptions"}


@dataclass(frozen=True, slots=True)
class Resource:
    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool
    strategy: Strategy = field(default_factory=Strategy, hash=False, compare=False)
    short_names: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS
    #: Storage shared with another resource (events.k8s.io events live with core events).
    storage_plural: str = ""
    #: A custom resource's own singular name (built-in ones are the kind in lower case).
    singular_name: str = ""

    @property
    def singular(self) -> str:
        return self.singular_name or self.kind.lower()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def list_kind(self) -> str:
        return self.kind + "List"

    @property
    def group_resource(self) -> str:
        """`plural.group` as upstream's messages name a resource."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def storage_prefix(self) -> str:
        return f"/registry/{self.storage_plural or self.plural}/"

    def key(self, namespace: str | None, name: str) -> str:
        if self.namespaced:
            return f"{self.storage_prefix}{namespace}/{name}"
        return f"{self.storage_prefix}{name}"

    def prefix(self, namespace: str | None = None) -> str:
        if self.namespaced and namespace:
            return f"{self.storage_prefix}{namespace}/"
        return self.storage_prefix


def _r(group: str, version: str, kind: str, plural: str, namespaced: bool, strategy: Strategy | None = None, **kw) -> Resource:
    return Resource(group, version, kind, plural, namespaced, strategy or Strategy(), **kw)


RESOURCES: list[Resource] = [
    # core/v1
    _r("", "v1", "Namespace", "namespaces", False, core.NamespaceStrategy(), short_names=("ns",),
       subresources=("status", "finalize")),
    _r("", "v1", "Pod", "pods", True, core.PodStrategy(), short_names=("po",), categories=("all",),
       subresources=("status", "binding", "eviction", "ephemeralcontainers", "log", "exec", "attach", "portforward",
                     "proxy")),
    _r("", "v1", "Node", "nodes", False, core.NodeStrategy(), short_names=("no",), subresources=("status", "proxy")),
    _r("", "v1", "Service", "services", True, core.ServiceStrategy(), short_names=("svc",), categories=("all",),
       subresources=("status", "proxy")),
    _r("", "v1", "Endpoints", "endpoints", True, core.EndpointsStrategy(), short_names=("ep",)),
    _r("", "v1", "ConfigMap", "configmaps", True, core.ConfigMapStrategy(), short_names=("cm",)),
    _r("", "v1", "Secret", "secrets", True, core.SecretStrategy()),
    _r("", "v1", "ServiceAccount", "serviceaccounts", True, core.ServiceAccountStrategy(), short_names=("sa",),
       subresources=("token",)),
    _r("", "v1", "Event", "events", True, core.EventStrategy(), short_names=("ev",)),
    _r("", "v1", "LimitRange", "limitranges", True, core.LimitRangeStrategy(), short_names=("limits",)),
    _r("", "v1", "ResourceQuota", "resourcequotas", True, core.ResourceQuotaStrategy(), short_names=("quota",),
       subresources=("status",)),
    _r("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", True, persistentvolume.PVCStrategy(), short_names=("pvc",),
       subresources=("status",)),
    _r("", "v1", "PersistentVolume", "persistentvolumes", False, persistentvolume.PVStrategy(), short_names=("pv",),
       subresources=("status",)),
    _r("", "v1", "ReplicationController", "replicationcontrollers", True, replication.ReplicationControllerStrategy(),
       short_names=("rc",), categories=("all",), subresources=("status", "scale")),
    _r("", "v1", "PodTemplate", "podtemplates", True, replication.PodTemplateStrategy()),
    # events.k8s.io/v1: the same stored events, another shape
    _r("events.k8s.io", "v1", "Event", "events", True, core.EventStrategy(), short_names=("ev",),
       storage_plural="events"),
    # apps/v1
    _r("apps", "v1", "Deployment", "deployments", True, apps.DeploymentStrategy(), short_names=("deploy",),
       categories=("all",), subresources=("status", "scale")),
    _r("apps", "v1", "ReplicaSet", "replicasets", True, apps.ReplicaSetStrategy(), short_names=("rs",),
       categories=("all",), subresources=("status", "scale")),
    _r("apps", "v1", "DaemonSet", "daemonsets", True, apps.DaemonSetStrategy(), short_names=("ds",),
       categories=("all",), subresources=("status",)),
    _r("apps", "v1", "StatefulSet", "statefulsets", True, apps.StatefulSetStrategy(), short_names=("sts",),
       categories=("all",), subresources=("status", "scale")),
    _r("apps", "v1", "ControllerRevision", "controllerrevisions", True, apps.ControllerRevisionStrategy()),
    # autoscaling: v2 (preferred, and the stored form); v1 is the same stored objects, converted
    # (only the second row names the shared storage, so that quota counts the objects once)
    _r("autoscaling", "v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers", True,
       autoscaling.HorizontalPodAutoscalerStrategy(), short_names=("hpa",), categories=("all",),
       subresources=("status",)),
    _r("autoscaling", "v1", "HorizontalPodAutoscaler", "horizontalpodautoscalers", True,
       autoscaling.HorizontalPodAutoscalerStrategy(), short_names=("hpa",), categories=("all",),
       subresources=("status",), storage_plural="horizontalpodautoscalers"),
    # batch/v1
    _r("batch", "v1", "Job", "jobs", True, batch.JobStrategy(), categories=("all",), subresources=("status",)),
    _r("batch", "v1", "CronJob", "cronjobs", True, batch.CronJobStrategy(), short_names=("cj",),
       categories=("all",), subresources=("status",)),
    # certificates.k8s.io/v1
    _r("certificates.k8s.io", "v1", "CertificateSigningRequest", "certificatesigningrequests", False,
       certificates.CertificateSigningRequestStrategy(), short_names=("csr",), subresources=("status", "approval")),
    # networking.k8s.io/v1: stored for ingress controllers and network plugins, as upstream
    _r("networking.k8s.io", "v1", "Ingress", "ingresses", True, networking.IngressStrategy(), short_names=("ing",),
       subresources=("status",)),
    _r("networking.k8s.io", "v1", "IngressClass", "ingressclasses", False, networking.IngressClassStrategy()),
    _r("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies", True, networking.NetworkPolicyStrategy(),
       short_names=("netpol",)),
    # others
    _r("coordination.k8s.io", "v1", "Lease", "leases", True, misc.LeaseStrategy()),
    _r("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices", True, misc.EndpointSliceStrategy()),
    _r("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets", True, misc.PDBStrategy(), short_names=("pdb",),
       subresources=("status",)),
    _r("node.k8s.io", "v1", "RuntimeClass", "runtimeclasses", False, node.RuntimeClassStrategy()),
    _r("scheduling.k8s.io", "v1", "PriorityClass", "priorityclasses", False, misc.PriorityClassStrategy(),
       short_names=("pc",)),
    _r("rbac.authorization.k8s.io", "v1", "Role", "roles", True, rbac.RoleStrategy()),
    _r("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", True, rbac.RoleBindingStrategy()),
    _r("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", False, rbac.RoleStrategy()),
    _r("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", False,
       rbac.RoleBindingStrategy()),
    _r("storage.k8s.io", "v1", "StorageClass", "storageclasses", False, storage.StorageClassStrategy(),
       short_names=("sc",)),
    _r("storage.k8s.io", "v1", "VolumeAttributesClass", "volumeattributesclasses", False,
       storage.VolumeAttributesClassStrategy(), short_names=("vac",)),
    _r("storage.k8s.io", "v1", "CSIDriver", "csidrivers", False, storage.CSIDriverStrategy()),
    _r("storage.k8s.io", "v1", "CSINode", "csinodes", False, storage.CSINodeStrategy()),
    _r("storage.k8s.io", "v1", "VolumeAttachment", "volumeattachments", False, storage.VolumeAttachmentStrategy(),
       subresources=("status",)),
    _r("storage.k8s.io", "v1", "CSIStorageCapacity", "csistoragecapacities", True,
       storage.CSIStorageCapacityStrategy()),
    # admissionregistration.k8s.io/v1: read by the webhook admission plugins (apiserver/admission/webhook.py)
    _r("admissionregistration.k8s.io", "v1", "MutatingWebhookConfiguration", "mutatingwebhookconfigurations", False,
       admissionregistration.MutatingWebhookConfigurationStrategy(), categories=("api-extensions",)),
    _r("admissionregistration.k8s.io", "v1", "ValidatingWebhookConfiguration", "validatingwebhookconfigurations",
       False, admissionregistration.ValidatingWebhookConfigurationStrategy(), categories=("api-extensions",)),
    # read by the ValidatingAdmissionPolicy admission plugin (apiserver/admission/policy.py)
    _r("admissionregistration.k8s.io", "v1", "ValidatingAdmissionPolicy", "validatingadmissionpolicies", False,
       admissionpolicy.ValidatingAdmissionPolicyStrategy(), categories=("api-extensions",), subresources=("status",)),
    _r("admissionregistration.k8s.io", "v1", "ValidatingAdmissionPolicyBinding", "validatingadmissionpolicybindings",
       False, admissionpolicy.ValidatingAdmissionPolicyBindingStrategy(), categories=("api-extensions",)),
    # flowcontrol.apiserver.k8s.io/v1: API Priority and Fairness, enforced by apiserver/flowcontrol
    _r("flowcontrol.apiserver.k8s.io", "v1", "FlowSchema", "flowschemas", False, flowcontrol.FlowSchemaStrategy(),
       subresources=("status",)),
    _r("flowcontrol.apiserver.k8s.io", "v1", "PriorityLevelConfiguration", "prioritylevelconfigurations", False,
       flowcontrol.PriorityLevelConfigurationStrategy(), subresources=("status",)),
    # apiregistration.k8s.io/v1: group/versions served here (Local) or by extension apiservers (apiserver.aggregator)
    _r("apiregistration.k8s.io", "v1", "APIService", "apiservices", False, apiregistration.APIServiceStrategy(),
       categories=("api-extensions",), subresources=("status",)),
    # apiextensions.k8s.io/v1: each established definition adds its own rows (apiserver.crd)
    _r("apiextensions.k8s.io", "v1", "CustomResourceDefinition", "customresourcedefinitions", False,
       apiextensions.CustomResourceDefinitionStrategy(), short_names=("crd", "crds"), categories=("api-extensions",),
       subresources=("status",)),
    # the older form of pods/binding (apiserver.reviews): binds the pod the Binding names
    _r("", "v1", "Binding", "bindings", True, reviews.BindingStrategy(), verbs=("create",)),
    # probed when asked by apiserver.componentstatus (kubectl get cs), never stored
    _r("", "v1", "ComponentStatus", "componentstatuses", False, componentstatus.ComponentStatusStrategy(),
       short_names=("cs",), verbs=("get", "list")),
    # metrics.k8s.io: read from the kubelets by apiserver.metricsapi (kubectl top), never stored
    _r("metrics.k8s.io", "v1beta1", "NodeMetrics", "nodes", False, metricsapi.NodeMetricsStrategy(),
       verbs=("get", "list")),
    _r("metrics.k8s.io", "v1beta1", "PodMetrics", "pods", True, metricsapi.PodMetricsStrategy(),
       verbs=("get", "list")),
    # create-only reviews: answered by apiserver.reviews, never stored
    _r("authentication.k8s.io", "v1", "TokenReview", "tokenreviews", False, reviews.TokenReviewStrategy(),
       verbs=("create",)),
    _r("authentication.k8s.io", "v1", "SelfSubjectReview", "selfsubjectreviews", False,
       reviews.SelfSubjectReviewStrategy(), verbs=("create",)),
    _r("authorization.k8s.io", "v1", "SelfSubjectAccessReview", "selfsubjectaccessreviews", False,
       reviews.SelfSubjectAccessReviewStrategy(), verbs=("create",)),
    _r("authorization.k8s.io", "v1", "SubjectAccessReview", "subjectaccessreviews", False,
       reviews.SubjectAccessReviewStrategy(), verbs=("create",)),
    _r("authorization.k8s.io", "v1", "LocalSubjectAccessReview", "localsubjectaccessreviews", True,
       reviews.LocalSubjectAccessReviewStrategy(), verbs=("create",)),
    _r("authorization.k8s.io", "v1", "SelfSubjectRulesReview", "selfsubjectrulesreviews", False,
       reviews.SelfSubjectRulesReviewStrategy(), verbs=("create",)),
]


class ResourceTable:
    """The served resources: the built-in rows, plus rows that custom resource definitions add
    and remove while the server runs (`set_dynamic`); `generation` counts the changes so that
    what is derived from the table (discovery documents) can tell when to rebuild."""

    def __init__(self, resources: list[Resource]) -> None:
        self.static = list(resources)
        self.dynamic: dict[str, list[Resource]] = {}
        self.generation = 0
        self._index()

    def copy(self) -> ResourceTable:
        """A table of the same built-in rows (each server owns its dynamic rows)."""
        return ResourceTable(self.static)

    def set_dynamic(self, owner: str, rows: list[Resource]) -> None:
        """Replace the rows `owner` (a CustomResourceDefinition's name) serves; [] removes them."""
        if rows:
            self.dynamic[owner] = list(rows)
        elif self.dynamic.pop(owner, None) is None:
            return
        self.generation += 1
        self._index()

    def _index(self) -> None:
        dynamic = sorted((r for rows in self.dynamic.values() for r in rows),
                         key=lambda r: (r.group, version_priority(r.version), r.plural))
        resources = self.resources = self.static + dynamic
        self._by_path = {(r.group, r.version, r.plural): r for r in resources}
        self._by_kind: dict[tuple[str, str], Resource] = {}
        self._by_plural: dict[tuple[str, str], Resource] = {}
        for r in resources:  # the first (preferred) version of each
            self._by_plural.setdefault((r.group, r.plural), r)
            self._by_kind.setdefault((r.group, r.kind), r)
        # Preferred order of groups for discovery (core first, as upstream).
        self.groups: dict[str, list[str]] = {}
        for r in resources:
            versions = self.groups.setdefault(r.group, [])
            if r.version not in versions:
                versions.append(r.version)

    def lookup(self, group: str, version: str, plural: str) -> Resource | None:
        return self._by_path.get((group, version, plural))

    def by_plural(self, group: str, plural: str) -> Resource | None:
        return self._by_plural.get((group, plural))

    def by_kind(self, group: str, kind: str) -> Resource | None:
        return self._by_kind.get((group, kind))

    def in_group_version(self, group: str, version: str) -> list[Resource]:
        return [r for r in self.resources if r.group == group and r.version == version]

    def namespaced(self) -> list[Resource]:
        return [r for r in self.resources if r.namespaced]


_VERSION = re.compile(r"^v(\d+)(?:(alpha|beta)(\d+))?$")


def version_priority(version: str) -> tuple[int, int, int, str]:
    """Sort key of upstream's version priority: GA before beta before alpha, higher numbers
    first, then versions that don't look like Kubernetes versions, alphabetically."""
    m = _VERSION.match(version)
    if not m:
        return (3, 0, 0, version)
    major, stage, minor = int(m.group(1)), m.group(2), int(m.group(3) or 0)
    return ({None: 0, "beta": 1, "alpha": 2}[stage], -major, -minor, "")


TABLE = ResourceTable(RESOURCES)
