"""The cluster DNS addon's API objects, and the EndpointSlice that makes the DNS process the
kube-dns Service's backend.

Installed once with admin credentials (as kubeadm applies CoreDNS's manifests):

    python -m dns.addon --kubeconfig admin.kubeconfig        # or: await install_addon(api)

- Service kube-system/kube-dns: ClusterIP 10.96.0.10, ports dns/53/UDP and dns-tcp/53/TCP,
  no selector (its endpoints are maintained by the DNS process, not by a controller);
- ClusterRole system:coredns (read services, endpointslices, endpoints, pods, namespaces,
  nodes) bound to ServiceAccount kube-system/coredns — the DNS process's identity;
- Role/RoleBinding kube-system/coredns-endpoints: write EndpointSlices in kube-system (its
  own slice).

The DNS process runs on the node, not in a pod; its slice `kube-dns-<node>` points at the
address it serves on, by default the node's CNI bridge gateway (the first address of the
node's podCIDR, where the bridge plugin with isGateway puts it): every pod reaches that
address, and kube-proxy DNATs 10.96.0.10:53 there.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import sys
from typing import Any

import click

from client import APIClient, create_missing, is_already_exists, is_conflict, is_not_found, load_config

log = logging.getLogger("dns.addon")

NAMESPACE = "kube-system"
SERVICE_NAME = "kube-dns"
CLUSTER_DNS_IP = "10.96.0.10"
SERVICE_ACCOUNT = "coredns"
DNS_USER = f"system:serviceaccount:{NAMESPACE}:{SERVICE_ACCOUNT}"
DNS_GROUPS = ("system:serviceaccounts", f"system:serviceaccounts:{NAMESPACE}")
MANAGED_BY = "minik8s-dns"
RBAC = "rbac.authorization.k8s.io/v1"
LABELS = {"k8s-app": "kube-dns", "kubernetes.io/cluster-service": "true", "kubernetes.io/name": "CoreDNS"}


def addon_objects(cluster_ip: str = CLUSTER_DNS_IP, namespace: str = NAMESPACE) -> list[dict[str, Any]]:
    sa_subject = [{"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": namespace}]
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": SERVICE_ACCOUNT, "namespace": namespace}},
        {
            "apiVersion": RBAC, "kind": "ClusterRole",
            "metadata": {"name": "system:coredns", "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"}},
            "rules": [
                {"apiGroups": [""], "resources": ["endpoints", "services", "pods", "namespaces"],
                 "verbs": ["list", "watch"]},
                {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list", "watch"]},
                {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get"]},
            ],
        },
        {
            "apiVersion": RBAC, "kind": "ClusterRoleBinding",
            "metadata": {"name": "system:coredns", "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"}},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:coredns"},
            "subjects": sa_subject,
        },
        {
            "apiVersion": RBAC, "kind": "Role",
            "metadata": {"name": "coredns-endpoints", "namespace": namespace},
            "rules": [{"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"],
                       "verbs": ["get", "create", "update", "patch", "delete"]}],
        },
        {
            "apiVersion": RBAC, "kind": "RoleBinding",
            "metadata": {"name": "coredns-endpoints", "namespace": namespace},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "coredns-endpoints"},
            "subjects": sa_subject,
        },
        {
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": SERVICE_NAME, "namespace": namespace, "labels": dict(LABELS)},
            "spec": {
                "clusterIP": cluster_ip,
                "ports": [
                    {"name": "dns", "port": 53, "targetPort": 53, "protocol": "UDP"},
                    {"name": "dns-tcp", "port": 53, "targetPort": 53, "protocol": "TCP"},
                ],
            },
        },
    ]


async def install_addon(api: APIClient, cluster_ip: str = CLUSTER_DNS_IP, namespace: str = NAMESPACE) -> list[str]:
    """Create what is missing (existing objects are left as they are). Returns the names created."""
    return await create_missing(api, addon_objects(cluster_ip, namespace))


def gateway_of(pod_cidr: str) -> str:
    """The first address of a pod CIDR: where the CNI bridge (isGateway) puts the gateway."""
    net = ipaddress.ip_network(pod_cidr, strict=False)
    return str(net.network_address + 1)


def endpoint_slice(node: str, address: str, port: int, namespace: str = NAMESPACE, ready: bool = True) -> dict[str, Any]:
    return {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {
            "name": f"{SERVICE_NAME}-{node}", "namespace": namespace,
            "labels": {"kubernetes.io/service-name": SERVICE_NAME,
                       "endpointslice.kubernetes.io/managed-by": MANAGED_BY, **LABELS},
        },
        "addressType": "IPv4",
        "endpoints": [{"addresses": [address], "conditions": {"ready": ready, "serving": ready, "terminating": False},
                       "nodeName": node}],
        "ports": [{"name": "dns", "port": port, "protocol": "UDP"},
                  {"name": "dns-tcp", "port": port, "protocol": "TCP"}],
    }


class EndpointPublisher:
    """Keeps `kube-dns-<node>` pointing at this DNS process; deletes it on shutdown so that
    kube-proxy rejects queries at once instead of sending them to a dead port."""

    def __init__(self, api: APIClient, node: str, address: str, port: int, namespace: str = NAMESPACE) -> None:
        self.slices = api.resource("discovery.k8s.io/v1", "endpointslices")
        self.node, self.address, self.port, self.namespace = node, address, port, namespace

    @property
    def name(self) -> str:
        return f"{SERVICE_NAME}-{self.node}"

    async def publish(self, ready: bool = True) -> None:
        desired = endpoint_slice(self.node, self.address, self.port, self.namespace, ready)
        for _ in range(5):
            try:
                current = await self.slices.get(self.name, self.namespace)
            except Exception as exc:
                if not is_not_found(exc):
                    raise
                try:
                    await self.slices.create(desired, self.namespace)
                    return
                except Exception as create_exc:
                    if is_already_exists(create_exc):
                        continue
                    raise
            if all(current.get(k) == desired[k] for k in ("endpoints", "ports", "addressType")):
                return
            desired["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
            try:
                await self.slices.update(desired, self.namespace)
                return
            except Exception as exc:
                if not is_conflict(exc):
                    raise
        raise RuntimeError(f"could not publish {self.namespace}/{self.name}")

    async def withdraw(self) -> None:
        try:
            await self.slices.delete(self.name, self.namespace)
        except Exception as exc:
            if not is_not_found(exc):
                log.warning("could not delete %s/%s: %s", self.namespace, self.name, exc)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--kubeconfig", required=True, type=click.Path(dir_okay=False), help="An admin kubeconfig.")
@click.option("--cluster-dns-ip", default=CLUSTER_DNS_IP, show_default=True)
def main(kubeconfig: str, cluster_dns_ip: str) -> None:
    """Install the cluster DNS addon's objects (Service kube-dns, RBAC for the DNS process)."""

    async def run() -> list[str]:
        async with APIClient(load_config(kubeconfig)) as api:
            return await install_addon(api, cluster_dns_ip)

    created = asyncio.run(run())
    click.echo("created: " + (", ".join(created) if created else "nothing (all present)"))
    sys.exit(0)


if __name__ == "__main__":
    main()
