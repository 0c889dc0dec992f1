"""What the apiserver creates itself at start: system namespaces, the `kubernetes` service, the system
PriorityClasses and the RBAC policy."""

from __future__ import annotations

import ipaddress
import logging
from typing import TYPE_CHECKING, Any

import orjson

from apimachinery import errors
from apiserver.authn import MASTERS, UserInfo

if TYPE_CHECKING:
    from apiserver.server import APIServer

log = logging.getLogger("apiserver.bootstrap")

SYSTEM_USER = UserInfo("system:apiserver", "", (MASTERS,))


async def ensure(server: APIServer, group: str, plural: str, ns: str, obj: dict[str, Any]) -> None:
    res = server.resource(group, plural)
    if await server.store.get(res.key(ns, obj["metadata"]["name"])) is not None:
        return
    try:
        await server.api.create_object(res, ns, obj, SYSTEM_USER, False, {})
    except errors.StatusError as e:
        if e.code != 409:
            raise


async def reconcile(server: APIServer, group: str, plural: str, ns: str, obj: dict[str, Any], fields: tuple[str, ...]) -> None:
    """Create `obj`, or make the named top-level fields equal to it (the apiserver owns them)."""
    res = server.resource(group, plural)
    kv = await server.store.get(res.key(ns, obj["metadata"]["name"]))
    if kv is None:
        await ensure(server, group, plural, ns, obj)
        return
    current = kv.decode()
    if all(current.get(f) == obj.get(f) for f in fields):
        return

    async def mutate(old: dict[str, Any]) -> dict[str, Any]:
        new = dict(old)
        for f in fields:
            new[f] = obj[f]
        new["metadata"] = dict(old["metadata"])
        new["metadata"].pop("resourceVersion", None)
        return new

    await server.api.update_object(res, ns, obj["metadata"]["name"], mutate, "", SYSTEM_USER, False, {}, "")


SYSTEM_PRIORITY_CLASSES = (
    ("system-node-critical", 2_000_001_000, "Used for system critical pods that must not be moved from their current node."),
    ("system-cluster-critical", 2_000_000_000,
     "Used for system critical pods that must run in the cluster, but can be moved to another node if necessary."),
)


def _pem(path: str | None) -> str:
    if not path:
        return ""
    with open(path, encoding="utf-8") as f:
        return f.read()


async def publish_authentication_info(server: APIServer) -> None:
    """kube-system/extension-apiserver-authentication: what an extension apiserver needs to trust
    our client certificates and the aggregator's request headers (upstream's
    cluster-authentication-info controller; readable through the
    extension-apiserver-authentication-reader Role)."""
    opts = server.opts
    data = {}
    if opts.client_ca_file:
        data["client-ca-file"] = _pem(opts.client_ca_file)
    if opts.requestheader_client_ca_file:
        data.update({
            "requestheader-client-ca-file": _pem(opts.requestheader_client_ca_file),
            "requestheader-allowed-names": orjson.dumps(opts.requestheader_allowed_names).decode(),
            "requestheader-username-headers": orjson.dumps(opts.requestheader_username_headers).decode(),
            "requestheader-group-headers": orjson.dumps(opts.requestheader_group_headers).decode(),
            "requestheader-extra-headers-prefix": orjson.dumps(opts.requestheader_extra_headers_prefix).decode(),
            "requestheader-uid-headers": orjson.dumps(opts.requestheader_uid_headers).decode(),
        })
    await reconcile(server, "", "configmaps", "kube-system", {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "extension-apiserver-authentication", "namespace": "kube-system"},
        "data": data,
    }, ("data",))


async def bootstrap(server: APIServer) -> None:
    for ns in ("default", "kube-system", "kube-public", "kube-node-lease"):
        await ensure(server, "", "namespaces", "", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    opts = server.opts
    first_ip = str(next(ipaddress.ip_network(opts.service_cluster_ip_range).hosts()))
    await ensure(server, "", "services", "default", {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "kubernetes", "namespace": "default",
                     "labels": {"component": "apiserver", "provider": "kubernetes"}},
        "spec": {"clusterIP": first_ip, "type": "ClusterIP", "sessionAffinity": "None",
                 "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": opts.secure_port}]},
    })
    # The apiserver maintains the endpoints of its own service (upstream's endpoint reconciler).
    await reconcile(server, "", "endpoints", "default", {
        "apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": "kubernetes", "namespace": "default",
                     "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
        "subsets": [{"addresses": [{"ip": opts.advertise_address}],
                     "ports": [{"name": "https", "port": opts.secure_port, "protocol": "TCP"}]}],
    }, ("subsets",))
    await reconcile(server, "discovery.k8s.io", "endpointslices", "default", {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "kubernetes", "namespace": "default",
                     "labels": {"kubernetes.io/service-name": "kubernetes"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": [opts.advertise_address], "conditions": {"ready": True}}],
        "ports": [{"name": "https", "port": opts.secure_port, "protocol": "TCP"}],
    }, ("endpoints", "ports"))
    # the two classes upstream's scheduling storage adds for critical system pods
    for name, value, description in SYSTEM_PRIORITY_CLASSES:
        await ensure(server, "scheduling.k8s.io", "priorityclasses", "", {
            "apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": name},
            "value": value, "description": description})
    await server.aggregator.register_local()
    # security: upstream's RBAC policy (each namespace's default ServiceAccount and kube-root-ca.crt
    # come from the controller-manager, as upstream)
    from apiserver.rbac_bootstrap import ensure_policy

    await ensure_policy(server)
    try:
        await publish_authentication_info(server)
    except OSError as e:  # an unreadable CA file: extensions cannot trust us, but the rest works
        log.error("publishing kube-system/extension-apiserver-authentication: %s", e)
    log.info("bootstrap done")
