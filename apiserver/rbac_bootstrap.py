"""The bootstrap RBAC policy: upstream's default roles and bindings, reconciled at every start.

Each component gets exactly its job (upstream's `bootstrappolicy`): the scheduler,
controller-manager (and one role per controller, bound to its kube-system
ServiceAccount), kube-proxy, kubelets (through the Node authorizer), discovery for
everyone, `cluster-admin` for `system:masters`, and the user-facing aggregated
`admin`/`edit`/`view` roles.

Reconciliation is upstream's: missing objects are created; objects annotated
`rbac.authorization.kubernetes.io/autoupdate: "true"` get missing rules and subjects
added (extra ones are kept); `"false"` leaves an object as the administrator made it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from apimachinery import errors

if TYPE_CHECKING:
    from apiserver.server import APIServer

log = logging.getLogger("apiserver.rbac_bootstrap")

API = "rbac.authorization.k8s.io"
API_VERSION = f"{API}/v1"
AUTOUPDATE = "rbac.authorization.kubernetes.io/autoupdate"
BOOTSTRAP_LABELS = {"kubernetes.io/bootstrapping": "rbac-defaults"}

READ = ["get", "list", "watch"]
WRITE = ["create", "delete", "deletecollection", "patch", "update"]
READ_WRITE = READ + WRITE

LEGACY, APPS, AUTHN, AUTHZ, AUTOSCALING, BATCH = "", "apps", "authentication.k8s.io", "authorization.k8s.io", "autoscaling", "batch"
CERTS, COORD, DISCOVERY, EXTENSIONS, NETWORKING = "certificates.k8s.io", "coordination.k8s.io", "discovery.k8s.io", "extensions", "networking.k8s.io"
POLICY, STORAGE, EVENTS = "policy", "storage.k8s.io", "events.k8s.io"
METRICS = "metrics.k8s.io"


def rule(verbs: list[str], groups: list[str] | None = None, resources: list[str] | None = None,
         names: list[str] | None = None, urls: list[str] | None = None) -> dict[str, Any]:
    """A PolicyRule with sorted lists, as upstream's rule builder emits them."""
    r: dict[str, Any] = {}
    if groups is not None:
        r["apiGroups"] = sorted(set(groups))
    if urls:
        r["nonResourceURLs"] = sorted(set(urls))
    if names:
        r["resourceNames"] = sorted(set(names))
    if resources:
        r["resources"] = sorted(set(resources))
    r["verbs"] = sorted(set(verbs))
    return r


def events_rule() -> dict[str, Any]:
    return rule(["create", "update", "patch"], [LEGACY, EVENTS], ["events"])


def _meta(name: str, labels: dict[str, str] | None = None, ns: str = "") -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": {**BOOTSTRAP_LABELS, **(labels or {})},
                            "annotations": {AUTOUPDATE: "true"}}
    if ns:
        meta["namespace"] = ns
    return meta


def cluster_role(name: str, rules: list[dict[str, Any]], labels: dict[str, str] | None = None,
                 aggregate_from: str | None = None) -> dict[str, Any]:
    obj: dict[str, Any] = {"apiVersion": API_VERSION, "kind": "ClusterRole", "metadata": _meta(name, labels)}
    if aggregate_from:
        obj["aggregationRule"] = {"clusterRoleSelectors": [{"matchLabels": {aggregate_from: "true"}}]}
        obj["rules"] = []
    else:
        obj["rules"] = rules
    return obj


def subject(kind: str, name: str, ns: str = "") -> dict[str, Any]:
    if kind == "ServiceAccount":
        return {"kind": kind, "name": name, "namespace": ns}
    return {"apiGroup": API, "kind": kind, "name": name}


def binding(kind: str, name: str, role_kind: str, role: str, subjects: list[dict[str, Any]], ns: str = "") -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": kind, "metadata": _meta(name, ns=ns),
            "roleRef": {"apiGroup": API, "kind": role_kind, "name": role}, "subjects": subjects}


AGG = "rbac.authorization.k8s.io/aggregate-to-"


def node_rules() -> list[dict[str, Any]]:
    """What every kubelet may do beyond the Node authorizer's graph checks (`system:node`)."""
    return [
        rule(["create"], [AUTHN], ["tokenreviews"]),
        rule(["create"], [AUTHZ], ["subjectaccessreviews", "localsubjectaccessreviews"]),
        rule(READ, [LEGACY], ["services"]),
        rule(["create", "get", "list", "watch"], [LEGACY], ["nodes"]),
        rule(["update", "patch"], [LEGACY], ["nodes/status"]),
        rule(["update", "patch"], [LEGACY], ["nodes"]),
        rule(["create", "update", "patch"], [LEGACY], ["events"]),
        rule(READ, [LEGACY], ["pods"]),
        rule(["create", "delete"], [LEGACY], ["pods"]),
        rule(["update", "patch"], [LEGACY], ["pods/status"]),
        rule(["create"], [LEGACY], ["pods/eviction"]),
        rule(READ, [LEGACY], ["secrets", "configmaps"]),
        rule(["get"], [LEGACY], ["persistentvolumeclaims", "persistentvolumes"]),
        rule(["get"], [LEGACY], ["endpoints"]),
        rule(["create", "get", "list", "watch"], [CERTS], ["certificatesigningrequests"]),
        rule(["get", "create", "update", "patch", "delete"], [COORD], ["leases"]),
        rule(["get"], [STORAGE], ["volumeattachments"]),
        rule(["create"], [LEGACY], ["serviceaccounts/token"]),
        rule(["get", "update", "patch"], [LEGACY], ["persistentvolumeclaims/status"]),
        rule(READ, [STORAGE], ["csidrivers"]),
        rule(["get", "create", "update", "patch", "delete"], [STORAGE], ["csinodes"]),
        rule(READ, ["node.k8s.io"], ["runtimeclasses"]),
    ]


def cluster_roles() -> list[dict[str, Any]]:
    auth_checks = [rule(["create"], [AUTHN], ["tokenreviews"]), rule(["create"], [AUTHZ], ["subjectaccessreviews"])]
    roles = [
        cluster_role("cluster-admin", [rule(["*"], ["*"], ["*"]), rule(["*"], urls=["*"])]),
        cluster_role("system:discovery", [rule(["get"], urls=[
            "/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/openapi", "/openapi/*",
            "/readyz", "/version", "/version/"])]),
        cluster_role("system:monitoring", [rule(["get"], urls=[
            "/healthz", "/healthz/*", "/livez", "/livez/*", "/metrics", "/metrics/slis", "/readyz", "/readyz/*"])]),
        cluster_role("system:basic-user", [
            rule(["create"], [AUTHZ], ["selfsubjectaccessreviews", "selfsubjectrulesreviews"]),
            rule(["create"], [AUTHN], ["selfsubjectreviews"]),
        ]),
        cluster_role("system:public-info-viewer", [rule(["get"], urls=["/healthz", "/livez", "/readyz", "/version", "/version/"])]),
        cluster_role("admin", [], aggregate_from=AGG + "admin"),
        cluster_role("edit", [], {AGG + "admin": "true"}, aggregate_from=AGG + "edit"),
        cluster_role("view", [], {AGG + "edit": "true"}, aggregate_from=AGG + "view"),
        cluster_role("system:aggregate-to-admin", [
            rule(["create"], [AUTHZ], ["localsubjectaccessreviews"]),
            rule(READ_WRITE, [API], ["roles", "rolebindings"]),
        ], {AGG + "admin": "true"}),
        cluster_role("system:aggregate-to-edit", [
            rule(READ, [LEGACY], ["pods/attach", "pods/proxy", "pods/exec", "pods/portforward", "secrets", "services/proxy"]),
            rule(["impersonate"], [LEGACY], ["serviceaccounts"]),
            rule(WRITE, [LEGACY], ["pods", "pods/attach", "pods/proxy", "pods/exec", "pods/portforward"]),
            rule(["create"], [LEGACY], ["pods/eviction"]),
            rule(WRITE, [LEGACY], ["replicationcontrollers", "replicationcontrollers/scale", "serviceaccounts", "services",
                                   "services/proxy", "persistentvolumeclaims", "configmaps", "secrets", "events"]),
            rule(["create"], [LEGACY], ["serviceaccounts/token"]),
            rule(WRITE, [APPS], ["statefulsets", "statefulsets/scale", "daemonsets", "deployments", "deployments/scale",
                                 "deployments/rollback", "replicasets", "replicasets/scale"]),
            rule(WRITE, [AUTOSCALING], ["horizontalpodautoscalers"]),
            rule(WRITE, [BATCH], ["jobs", "cronjobs"]),
            rule(WRITE, [EXTENSIONS], ["daemonsets", "deployments", "deployments/scale", "deployments/rollback", "ingresses",
                                       "replicasets", "replicasets/scale", "replicationcontrollers/scale", "networkpolicies"]),
            rule(WRITE, [POLICY], ["poddisruptionbudgets"]),
            rule(WRITE, [NETWORKING], ["ingresses", "networkpolicies"]),
            rule(READ_WRITE, [COORD], ["leases"]),
        ], {AGG + "edit": "true"}),
        cluster_role("system:aggregate-to-view", [
            rule(READ, [LEGACY], ["pods", "replicationcontrollers", "replicationcontrollers/scale", "serviceaccounts",
                                  "services", "services/status", "endpoints", "persistentvolumeclaims",
                                  "persistentvolumeclaims/status", "configmaps"]),
            rule(READ, [LEGACY], ["limitranges", "resourcequotas", "bindings", "events", "pods/status",
                                  "resourcequotas/status", "namespaces/status", "replicationcontrollers/status", "pods/log"]),
            rule(READ, [LEGACY], ["namespaces"]),
            rule(READ, [DISCOVERY], ["endpointslices"]),
            rule(READ, [APPS], ["controllerrevisions", "statefulsets", "statefulsets/status", "statefulsets/scale",
                                "daemonsets", "daemonsets/status", "deployments", "deployments/status", "deployments/scale",
                                "replicasets", "replicasets/status", "replicasets/scale"]),
            rule(READ, [AUTOSCALING], ["horizontalpodautoscalers", "horizontalpodautoscalers/status"]),
            rule(READ, [BATCH], ["jobs", "cronjobs", "cronjobs/status", "jobs/status"]),
            rule(READ, [EXTENSIONS], ["daemonsets", "daemonsets/status", "deployments", "deployments/scale",
                                      "deployments/status", "ingresses", "ingresses/status", "replicasets",
                                      "replicasets/scale", "replicasets/status", "replicationcontrollers/scale",
                                      "networkpolicies"]),
            rule(READ, [POLICY], ["poddisruptionbudgets", "poddisruptionbudgets/status"]),
            rule(READ, [NETWORKING], ["ingresses", "ingresses/status", "networkpolicies"]),
        ], {AGG + "view": "true"}),
        # what metrics-server's manifests install, for the metrics.k8s.io API this apiserver serves
        cluster_role("system:aggregated-metrics-reader", [rule(READ, [METRICS], ["pods", "nodes"])],
                     {AGG + "view": "true", AGG + "edit": "true", AGG + "admin": "true"}),
        cluster_role("system:heapster", [rule(READ, [LEGACY], ["events", "pods", "nodes", "namespaces"]),
                                         rule(READ, [EXTENSIONS], ["deployments"])]),
        cluster_role("system:node", node_rules()),
        cluster_role("system:node-problem-detector", [rule(["get"], [LEGACY], ["nodes"]),
                                                      rule(["patch"], [LEGACY], ["nodes/status"]), events_rule()]),
        cluster_role("system:kubelet-api-admin", [
            rule(READ, [LEGACY], ["nodes"]), rule(["proxy"], [LEGACY], ["nodes"]),
            rule(["*"], [LEGACY], ["nodes/proxy", "nodes/metrics", "nodes/stats", "nodes/log"]),
        ]),
        cluster_role("system:node-bootstrapper", [rule(["create", "get", "list", "watch"], [CERTS], ["certificatesigningrequests"])]),
        cluster_role("system:auth-delegator", auth_checks),
        cluster_role("system:kube-aggregator", [rule(READ, [LEGACY], ["services", "endpoints"])]),
        cluster_role("system:kube-controller-manager", [
            events_rule(),
            rule(["create"], [COORD], ["leases"]),
            rule(["get", "update"], [COORD], ["leases"], names=["kube-controller-manager"]),
            rule(["create"], [LEGACY], ["secrets", "serviceaccounts"]),
            rule(["delete"], [LEGACY], ["secrets"]),
            rule(["get"], [LEGACY], ["namespaces", "secrets", "serviceaccounts", "configmaps"]),
            rule(["update"], [LEGACY], ["secrets", "serviceaccounts"]),
            *auth_checks,
            rule(["list", "watch"], ["*"], ["*"]),
            rule(["create"], [LEGACY], ["serviceaccounts/token"]),
        ]),
        cluster_role("system:kube-dns", [rule(["list", "watch"], [LEGACY], ["endpoints", "services"])]),
        cluster_role("system:persistent-volume-provisioner", [
            rule(["get", "list", "watch", "create", "delete"], [LEGACY], ["persistentvolumes"]),
            rule(["get", "list", "watch", "update"], [LEGACY], ["persistentvolumeclaims"]),
            rule(READ, [STORAGE], ["storageclasses"]),
            rule(["watch"], [LEGACY], ["events"]),
            events_rule(),
        ]),
        cluster_role("system:certificates.k8s.io:certificatesigningrequests:nodeclient",
                     [rule(["create"], [CERTS], ["certificatesigningrequests/nodeclient"])]),
        cluster_role("system:certificates.k8s.io:certificatesigningrequests:selfnodeclient",
                     [rule(["create"], [CERTS], ["certificatesigningrequests/selfnodeclient"])]),
        *(cluster_role(f"system:certificates.k8s.io:{role}",
                       [rule(["approve"], [CERTS], ["signers"], names=[f"kubernetes.io/{signer}"])])
          for role, signer in (("kube-apiserver-client-approver", "kube-apiserver-client"),
                               ("kube-apiserver-client-kubelet-approver", "kube-apiserver-client-kubelet"),
                               ("kubelet-serving-approver", "kubelet-serving"),
                               ("legacy-unknown-approver", "legacy-unknown"))),
        cluster_role("system:service-account-issuer-discovery",
                     [rule(["get"], urls=["/.well-known/openid-configuration", "/openid/v1/jwks"])]),
        cluster_role("system:node-proxier", [
            rule(["list", "watch"], [LEGACY], ["services", "endpoints"]),
            rule(READ, [LEGACY], ["nodes"]),
            events_rule(),
            rule(["list", "watch"], [DISCOVERY], ["endpointslices"]),
        ]),
        cluster_role("system:kube-scheduler", [
            events_rule(),
            rule(["create"], [COORD], ["leases"]),
            rule(["get", "update"], [COORD], ["leases"], names=["kube-scheduler"]),
            rule(READ, [LEGACY], ["nodes"]),
            rule(["get", "list", "watch", "delete"], [LEGACY], ["pods"]),
            rule(["create"], [LEGACY], ["pods/binding", "bindings"]),
            rule(["patch", "update"], [LEGACY], ["pods/status"]),
            rule(READ, [LEGACY], ["replicationcontrollers", "services"]),
            rule(READ, [APPS, EXTENSIONS], ["replicasets"]),
            rule(READ, [APPS], ["statefulsets"]),
            rule(READ, [POLICY], ["poddisruptionbudgets"]),
            rule(READ, [LEGACY], ["persistentvolumeclaims", "persistentvolumes"]),
            *auth_checks,
            rule(READ, [STORAGE], ["csinodes"]),
            rule(READ, [LEGACY], ["namespaces"]),
            rule(READ, [STORAGE], ["csidrivers"]),
            rule(READ, [STORAGE], ["csistoragecapacities"]),
        ]),
        cluster_role("system:volume-scheduler", [
            rule(["get", "list", "watch", "patch", "update"], [LEGACY], ["persistentvolumes"]),
            rule(READ, [STORAGE], ["storageclasses"]),
            rule(["get", "list", "watch", "patch", "update"], [LEGACY], ["persistentvolumeclaims"]),
        ]),
    ]
    roles += [cluster_role(f"system:controller:{name}", rules) for name, rules in controller_rules().items()]
    return roles


def controller_rules() -> dict[str, list[dict[str, Any]]]:
    """One role per controller, bound to `kube-system/<controller>` (upstream's controller policy)."""
    ev = events_rule()
    return {
        "attachdetach-controller": [
            rule(["list", "watch"], [LEGACY], ["persistentvolumes", "persistentvolumeclaims"]),
            rule(READ, [LEGACY], ["nodes"]), rule(["patch", "update"], [LEGACY], ["nodes/status"]),
            rule(["list", "watch"], [LEGACY], ["pods"]), ev,
            rule(["get", "create", "delete", "list", "watch"], [STORAGE], ["volumeattachments"]),
            rule(READ, [STORAGE], ["csidrivers"]), rule(READ, [STORAGE], ["csinodes"]),
        ],
        "certificate-controller": [
            rule(["get", "list", "watch", "delete"], [CERTS], ["certificatesigningrequests"]),
            rule(["update"], [CERTS], ["certificatesigningrequests/status", "certificatesigningrequests/approval"]),
            rule(["approve"], [CERTS], ["signers"], names=["kubernetes.io/kube-apiserver-client-kubelet"]),
            rule(["sign"], [CERTS], ["signers"], names=["kubernetes.io/kube-apiserver-client", "kubernetes.io/kube-apiserver-client-kubelet",
                                                        "kubernetes.io/kubelet-serving", "kubernetes.io/legacy-unknown"]),
            rule(["create"], [AUTHZ], ["subjectaccessreviews"]), ev,
        ],
        # minik8s's own (controller_manager/kubelet_serving_approver.py)
        "kubelet-serving-approver": [
            rule(["get", "list", "watch"], [CERTS], ["certificatesigningrequests"]),
            rule(["update"], [CERTS], ["certificatesigningrequests/approval"]),
            rule(["approve"], [CERTS], ["signers"], names=["kubernetes.io/kubelet-serving"]),
            rule(["get"], [LEGACY], ["nodes"]), ev,
        ],
        "clusterrole-aggregation-controller": [rule(["escalate", "get", "list", "watch", "update", "patch"], [API], ["clusterroles"])],
        "cronjob-controller": [
            rule(["get", "list", "watch", "update"], [BATCH], ["cronjobs"]),
            rule(["get", "list", "watch", "create", "update", "delete", "patch"], [BATCH], ["jobs"]),
            rule(["update"], [BATCH], ["cronjobs/status"]), rule(["update"], [BATCH], ["cronjobs/finalizers"]),
            rule(["list", "watch", "delete"], [LEGACY], ["pods"]), ev,
        ],
        "daemon-set-controller": [
            rule(READ, [EXTENSIONS, APPS], ["daemonsets"]),
            rule(["update"], [EXTENSIONS, APPS], ["daemonsets/status"]),
            rule(["update"], [EXTENSIONS, APPS], ["daemonsets/finalizers"]),
            rule(["list", "watch"], [LEGACY], ["nodes"]),
            rule(["list", "watch", "create", "delete", "patch"], [LEGACY], ["pods"]),
            rule(["create"], [LEGACY], ["pods/binding"]),
            rule(["get", "list", "watch", "create", "delete", "update", "patch"], [APPS], ["controllerrevisions"]), ev,
        ],
        "deployment-controller": [
            rule(["get", "list", "watch", "update"], [EXTENSIONS, APPS], ["deployments"]),
            rule(["update"], [EXTENSIONS, APPS], ["deployments/status"]),
            rule(["update"], [EXTENSIONS, APPS], ["deployments/finalizers"]),
            rule(["get", "list", "watch", "create", "update", "patch", "delete"], [EXTENSIONS, APPS], ["replicasets"]),
            rule(["get", "list", "watch", "update"], [LEGACY], ["pods"]), ev,
        ],
        "disruption-controller": [
            rule(READ, [EXTENSIONS, APPS], ["deployments"]), rule(READ, [EXTENSIONS, APPS], ["replicasets"]),
            rule(READ, [LEGACY], ["replicationcontrollers"]), rule(READ, [POLICY], ["poddisruptionbudgets"]),
            rule(READ, [APPS], ["statefulsets"]), rule(["update"], [POLICY], ["poddisruptionbudgets/status"]),
            rule(["patch", "update"], [LEGACY], ["pods/status"]), rule(["get"], ["*"], ["*/scale"]), ev,
        ],
        "endpoint-controller": [
            rule(READ, [LEGACY], ["services", "pods"]),
            rule(["get", "list", "watch", "create", "update", "delete"], [LEGACY], ["endpoints"]),
            rule(["create"], [LEGACY], ["endpoints/restricted"]), ev,
        ],
        "endpointslice-controller": [
            rule(READ, [LEGACY], ["services", "pods", "nodes"]), rule(["update"], [LEGACY], ["services/finalizers"]),
            rule(["get", "list", "watch", "create", "update", "delete"], [DISCOVERY], ["endpointslices"]), ev,
        ],
        "endpointslicemirroring-controller": [
            rule(READ, [LEGACY], ["services", "endpoints"]), rule(["update"], [LEGACY], ["services/finalizers"]),
            rule(["update"], [LEGACY], ["endpoints/finalizers"]),
            rule(["get", "list", "watch", "create", "update", "delete"], [DISCOVERY], ["endpointslices"]), ev,
        ],
        "ephemeral-volume-controller": [
            rule(READ, [LEGACY], ["pods"]), rule(["update"], [LEGACY], ["pods/finalizers"]),
            rule(["get", "list", "watch", "create"], [LEGACY], ["persistentvolumeclaims"]), ev,
        ],
        "expand-controller": [
            rule(["get", "list", "watch", "update", "patch"], [LEGACY], ["persistentvolumes"]),
            rule(["update", "patch"], [LEGACY], ["persistentvolumeclaims/status"]),
            rule(READ, [LEGACY], ["persistentvolumeclaims"]), ev,
        ],
        "generic-garbage-collector": [rule(["get", "list", "watch", "patch", "update", "delete"], ["*"], ["*"]), ev],
        "horizontal-pod-autoscaler": [
            rule(READ, [AUTOSCALING], ["horizontalpodautoscalers"]),
            rule(["update"], [AUTOSCALING], ["horizontalpodautoscalers/status"]),
            rule(["get", "update"], ["*"], ["*/scale"]), rule(["list", "watch"], [LEGACY], ["pods"]),
            rule(["list", "watch"], ["metrics.k8s.io"], ["pods"]),
            rule(READ, ["custom.metrics.k8s.io"], ["*"]), rule(READ, ["external.metrics.k8s.io"], ["*"]), ev,
        ],
        "job-controller": [
            rule(["get", "list", "watch", "update", "patch"], [BATCH], ["jobs"]),
            rule(["update"], [BATCH], ["jobs/status"]), rule(["update"], [BATCH], ["jobs/finalizers"]),
            rule(["list", "watch", "create", "delete", "patch"], [LEGACY], ["pods"]), ev,
        ],
        "legacy-service-account-token-cleaner": [
            rule(["get"], [LEGACY], ["configmaps"], names=["kube-apiserver-legacy-service-account-token-tracking"]),
            rule(["delete", "patch"], [LEGACY], ["secrets"]),
        ],
        "namespace-controller": [
            rule(["get", "list", "watch", "delete"], [LEGACY], ["namespaces"]),
            rule(["update"], [LEGACY], ["namespaces/finalize", "namespaces/status"]),
            rule(["get", "list", "delete", "deletecollection", "watch"], ["*"], ["*"]),
        ],
        # not upstream's: minik8s's provisioner of the default StorageClass (controller_manager/hostpath_provisioner.py)
        "hostpath-provisioner": [
            rule(["get", "list", "watch", "create", "update", "patch", "delete"], [LEGACY], ["persistentvolumes"]),
            rule(READ, [LEGACY], ["persistentvolumeclaims", "nodes"]), rule(READ, [STORAGE], ["storageclasses"]),
            rule(["update", "patch"], [LEGACY], ["persistentvolumeclaims"]),  # drop a gone selected node
            rule(["get", "list", "watch", "create", "delete"], [LEGACY], ["pods"]), ev,
        ],
        "node-controller": [
            rule(["get", "list", "watch", "update", "delete", "patch"], [LEGACY], ["nodes"]),
            rule(["patch", "update"], [LEGACY], ["nodes/status"]),
            rule(["patch", "update"], [LEGACY], ["pods/status"]),
            rule(["list", "watch", "delete", "get"], [LEGACY], ["pods"]), ev,
        ],
        "persistent-volume-binder": [
            rule(["get", "list", "watch", "update", "create", "delete"], [LEGACY], ["persistentvolumes"]),
            rule(["update"], [LEGACY], ["persistentvolumes/status"]),
            rule(["get", "list", "watch", "update"], [LEGACY], ["persistentvolumeclaims"]),
            rule(["update"], [LEGACY], ["persistentvolumeclaims/status"]),
            rule(["list", "watch", "get", "create", "delete"], [LEGACY], ["pods"]),
            rule(READ, [STORAGE], ["storageclasses"]), rule(["list", "watch"], [LEGACY], ["nodes"]), ev,
            rule(["watch"], [LEGACY], ["events"]),
        ],
        "pod-garbage-collector": [
            rule(["list", "watch", "delete"], [LEGACY], ["pods"]), rule(READ, [LEGACY], ["nodes"]),
            rule(["patch"], [LEGACY], ["pods/status"]),
        ],
        "pv-protection-controller": [rule(["get", "list", "watch", "update"], [LEGACY], ["persistentvolumes"]), ev],
        "pvc-protection-controller": [
            rule(["get", "list", "watch", "update"], [LEGACY], ["persistentvolumeclaims"]),
            rule(["update"], [LEGACY], ["persistentvolumeclaims/status"]),
            rule(READ, [LEGACY], ["pods"]), ev,
        ],
        "replicaset-controller": [
            rule(["get", "list", "watch", "update"], [APPS, EXTENSIONS], ["replicasets"]),
            rule(["update"], [APPS, EXTENSIONS], ["replicasets/status"]),
            rule(["update"], [APPS, EXTENSIONS], ["replicasets/finalizers"]),
            rule(["list", "watch", "patch", "create", "delete"], [LEGACY], ["pods"]), ev,
        ],
        "replication-controller": [
            rule(["get", "list", "watch", "update"], [LEGACY], ["replicationcontrollers"]),
            rule(["update"], [LEGACY], ["replicationcontrollers/status"]),
            rule(["update"], [LEGACY], ["replicationcontrollers/finalizers"]),
            rule(["list", "watch", "patch", "create", "delete"], [LEGACY], ["pods"]), ev,
        ],
        "resourcequota-controller": [
            rule(["list", "watch"], ["*"], ["*"]), rule(["update"], [LEGACY], ["resourcequotas/status"]), ev,
        ],
        "root-ca-cert-publisher": [rule(["create", "update"], [LEGACY], ["configmaps"]), ev],
        "route-controller": [rule(["list", "watch"], [LEGACY], ["nodes"]), rule(["patch"], [LEGACY], ["nodes/status"]), ev],
        "service-account-controller": [rule(["create"], [LEGACY], ["serviceaccounts"]), ev],
        "service-controller": [
            rule(READ, [LEGACY], ["services"]), rule(["patch", "update"], [LEGACY], ["services/status"]),
            rule(["list", "watch"], [LEGACY], ["nodes"]), ev,
        ],
        "statefulset-controller": [
            rule(["list", "watch"], [LEGACY], ["pods"]), rule(READ, [APPS], ["statefulsets"]),
            rule(["update"], [APPS], ["statefulsets/status"]), rule(["update"], [APPS], ["statefulsets/finalizers"]),
            rule(["get", "create", "delete", "update", "patch"], [LEGACY], ["pods"]),
            rule(["get", "create", "delete", "update", "patch", "list", "watch"], [APPS], ["controllerrevisions"]),
            rule(["get", "create", "list", "watch"], [LEGACY], ["persistentvolumeclaims"]),
            rule(["update", "delete"], [LEGACY], ["persistentvolumeclaims"]),
            rule(["update"], [LEGACY], ["pods/finalizers"]), ev,
        ],
        "ttl-after-finished-controller": [rule(["get", "list", "watch", "delete"], [BATCH], ["jobs"]), ev],
        "ttl-controller": [rule(["update", "patch", "list", "watch"], [LEGACY], ["nodes"]), ev],
    }


def cluster_role_bindings() -> list[dict[str, Any]]:
    def crb(role: str, subjects: list[dict[str, Any]], name: str | None = None) -> dict[str, Any]:
        return binding("ClusterRoleBinding", name or role, "ClusterRole", role, subjects)

    authenticated, unauthenticated = subject("Group", "system:authenticated"), subject("Group", "system:unauthenticated")
    out = [
        crb("cluster-admin", [subject("Group", "system:masters")]),
        crb("system:monitoring", [subject("Group", "system:monitoring")]),
        crb("system:discovery", [authenticated]),
        crb("system:basic-user", [authenticated]),
        crb("system:public-info-viewer", [authenticated, unauthenticated]),
        crb("system:node-proxier", [subject("User", "system:kube-proxy")]),
        crb("system:kube-controller-manager", [subject("User", "system:kube-controller-manager")]),
        crb("system:kube-dns", [subject("ServiceAccount", "kube-dns", "kube-system")]),
        crb("system:kube-scheduler", [subject("User", "system:kube-scheduler")]),
        crb("system:volume-scheduler", [subject("User", "system:kube-scheduler")]),
        # kubelets are authorized by the Node authorizer; this binding stays empty, as upstream's
        crb("system:node", []),
        crb("system:service-account-issuer-discovery", [subject("Group", "system:serviceaccounts")]),
    ]
    out += [crb(f"system:controller:{name}", [subject("ServiceAccount", name, "kube-system")]) for name in controller_rules()]
    return out


def namespaced_roles() -> list[dict[str, Any]]:
    def role(ns: str, name: str, rules: list[dict[str, Any]]) -> dict[str, Any]:
        return {"apiVersion": API_VERSION, "kind": "Role", "metadata": _meta(name, ns=ns), "rules": rules}

    leader_locking = [rule(["watch", "get", "list", "create", "update"], [COORD], ["leases"]),
                      rule(["watch", "get", "list", "create", "update"], [COORD], ["leasecandidates"])]
    return [
        role("kube-system", "extension-apiserver-authentication-reader",
             [rule(READ, [LEGACY], ["configmaps"], names=["extension-apiserver-authentication"])]),
        role("kube-system", "system::leader-locking-kube-controller-manager", leader_locking),
        role("kube-system", "system::leader-locking-kube-scheduler", leader_locking),
        role("kube-system", "system:controller:bootstrap-signer", [rule(READ, [LEGACY], ["secrets"])]),
        role("kube-system", "system:controller:cloud-provider", [rule(["create", "get", "list", "watch"], [LEGACY], ["configmaps"])]),
        role("kube-system", "system:controller:token-cleaner",
             [rule(["delete", "get", "list", "watch"], [LEGACY], ["secrets"]), events_rule()]),
        role("kube-public", "system:controller:bootstrap-signer", [
            rule(READ, [LEGACY], ["configmaps"]), rule(["update"], [LEGACY], ["configmaps"], names=["cluster-info"]),
            events_rule(),
        ]),
    ]


def namespaced_role_bindings() -> list[dict[str, Any]]:
    def rb(ns: str, name: str, role: str, subjects: list[dict[str, Any]]) -> dict[str, Any]:
        return binding("RoleBinding", name, "Role", role, subjects, ns)

    kcm, sched = subject("User", "system:kube-controller-manager"), subject("User", "system:kube-scheduler")
    return [
        rb("kube-system", "system::extension-apiserver-authentication-reader", "extension-apiserver-authentication-reader",
           [kcm, sched]),
        rb("kube-system", "system::leader-locking-kube-controller-manager", "system::leader-locking-kube-controller-manager",
           [kcm, subject("ServiceAccount", "kube-controller-manager", "kube-system"),
            subject("ServiceAccount", "leader-election-controller", "kube-system")]),
        rb("kube-system", "system::leader-locking-kube-scheduler", "system::leader-locking-kube-scheduler",
           [sched, subject("ServiceAccount", "kube-scheduler", "kube-system")]),
        rb("kube-system", "system:controller:bootstrap-signer", "system:controller:bootstrap-signer",
           [subject("ServiceAccount", "bootstrap-signer", "kube-system")]),
        rb("kube-system", "system:controller:cloud-provider", "system:controller:cloud-provider",
           [subject("ServiceAccount", "cloud-provider", "kube-system")]),
        rb("kube-system", "system:controller:token-cleaner", "system:controller:token-cleaner",
           [subject("ServiceAccount", "token-cleaner", "kube-system")]),
        rb("kube-public", "system:controller:bootstrap-signer", "system:controller:bootstrap-signer",
           [subject("ServiceAccount", "bootstrap-signer", "kube-system")]),
    ]


def policy() -> list[tuple[str, dict[str, Any]]]:
    """Every bootstrap object with its plural, in creation order (roles before their bindings)."""
    return ([("clusterroles", o) for o in cluster_roles()] + [("clusterrolebindings", o) for o in cluster_role_bindings()]
            + [("roles", o) for o in namespaced_roles()] + [("rolebindings", o) for o in namespaced_role_bindings()])


def reconciled(current: dict[str, Any], want: dict[str, Any]) -> dict[str, Any] | None:
    """`current` with what `want` adds (upstream's additive reconcile), or None if nothing to add."""
    meta = current.get("metadata") or {}
    if (meta.get("annotations") or {}).get(AUTOUPDATE) == "false":
        return None
    new = dict(current)
    changed = False
    new_meta = dict(meta)
    for field in ("labels", "annotations"):
        merged = {**(want["metadata"].get(field) or {}), **(meta.get(field) or {})}
        if merged != (meta.get(field) or {}):
            new_meta[field] = merged
            changed = True
    new["metadata"] = new_meta
    if want.get("aggregationRule") is not None:
        have = current.get("aggregationRule") or {}
        selectors = list(have.get("clusterRoleSelectors") or [])
        for sel in want["aggregationRule"]["clusterRoleSelectors"]:
            if sel not in selectors:
                selectors.append(sel)
                changed = True
        if changed:
            new["aggregationRule"] = {**have, "clusterRoleSelectors": selectors}
    elif "rules" in want:
        rules = list(current.get("rules") or [])
        for r in want["rules"]:
            if r not in rules:
                rules.append(r)
                changed = True
        new["rules"] = rules
    if "subjects" in want:
        subjects = list(current.get("subjects") or [])
        for s in want["subjects"]:
            if s not in subjects:
                subjects.append(s)
                changed = True
        new["subjects"] = subjects
    if not changed:
        return None
    new_meta.pop("resourceVersion", None)
    return new


async def ensure_policy(server: APIServer) -> None:
    """Create or reconcile every bootstrap RBAC object; then let aggregation fill admin/edit/view."""
    from apiserver.bootstrap import SYSTEM_USER

    sem = asyncio.Semaphore(16)

    async def one(plural: str, obj: dict[str, Any]) -> None:
        res = server.resource(API, plural)
        ns = obj["metadata"].get("namespace", "")
        name = obj["metadata"]["name"]
        async with sem:
            kv = await server.store.get(res.key(ns, name))
            if kv is None:
                try:
                    await server.api.create_object(res, ns, _copy(obj), SYSTEM_USER, False, {})
                except errors.StatusError as e:
                    if e.code != 409:
                        raise
                return
            if reconciled(kv.decode(), obj) is None:
                return

            async def mutate(old: dict[str, Any]) -> dict[str, Any]:
                return reconciled(old, obj) or old

            await server.api.update_object(res, ns, name, mutate, "", SYSTEM_USER, False, {}, "")

    items = policy()
    # roles first, so no binding ever points at a role that is not there yet
    await asyncio.gather(*(one(p, o) for p, o in items if p in ("clusterroles", "roles")))
    await asyncio.gather(*(one(p, o) for p, o in items if p in ("clusterrolebindings", "rolebindings")))
    aggregator = getattr(server, "rbac_aggregator", None)
    if aggregator is not None:
        await aggregator.sync()
        aggregator.kick()
    log.info("bootstrap RBAC policy reconciled (%d objects)", len(items))


def _copy(obj: dict[str, Any]) -> dict[str, Any]:
    import orjson

    return orjson.loads(orjson.dumps(obj))
