"""Discovery documents, legacy and aggregated, built once from the resource table."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from apiserver.resources import (
    PROXY_OPTION_KINDS,
    SUBRESOURCE_KINDS,
    SUBRESOURCE_VERBS,
    Resource,
    ResourceTable,
)

AGGREGATED_V2 = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
AGGREGATED_V2BETA1 = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"


def _hash(r: Resource) -> str:
    return hashlib.sha256(f"{r.group}/{r.version}/{r.kind}".encode()).hexdigest()[:16]


def _sub_kind(r: Resource, sub: str) -> tuple[str, str, str]:
    if sub in ("status",):
        return r.group, r.version, r.kind
    if sub == "proxy":
        return "", "v1", PROXY_OPTION_KINDS[r.plural]
    return SUBRESOURCE_KINDS.get(sub, (r.group, r.version, r.kind))


def api_resource_list(table: ResourceTable, group: str, version: str) -> dict[str, Any]:
    resources = []
    for r in table.in_group_version(group, version):
        entry: dict[str, Any] = {
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": list(r.verbs),
            "storageVersionHash": _hash(r),
        }
        if r.short_names:
            entry["shortNames"] = list(r.short_names)
        if r.categories:
            entry["categories"] = list(r.categories)
        resources.append(entry)
        for sub in r.subresources:
            g, v, k = _sub_kind(r, sub)
            s: dict[str, Any] = {
                "name": f"{r.plural}/{sub}",
                "singularName": "",
                "namespaced": r.namespaced,
                "kind": k,
                "verbs": list(SUBRESOURCE_VERBS.get(sub, ())),
            }
            if (g, v) != (r.group, r.version):
                s["group"], s["version"] = g, v
            resources.append(s)
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": resources,
    }


def api_versions(address: str) -> dict[str, Any]:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": address}],
    }


def api_group(table: ResourceTable, group: str) -> dict[str, Any]:
    versions = table.groups[group]
    gvs = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
    return {"kind": "APIGroup", "apiVersion": "v1", "name": group, "versions": gvs, "preferredVersion": gvs[0]}


#: groupPriorityMinimum of the built-in groups (kube-apiserver's apiVersionPriorities): discovery
#: lists groups by it, highest first, as the aggregator does; custom resource groups have 1000
GROUP_PRIORITIES = {
    "": 18000, "apiregistration.k8s.io": 18000, "apps": 17800, "events.k8s.io": 17750,
    "authentication.k8s.io": 17700, "authorization.k8s.io": 17600, "autoscaling": 17500, "batch": 17400,
    "certificates.k8s.io": 17300, "networking.k8s.io": 17200, "policy": 17100, "rbac.authorization.k8s.io": 17000,
    "storage.k8s.io": 16800, "admissionregistration.k8s.io": 16700, "apiextensions.k8s.io": 16700,
    "scheduling.k8s.io": 16600, "coordination.k8s.io": 16500, "node.k8s.io": 16300, "discovery.k8s.io": 16200,
    "flowcontrol.apiserver.k8s.io": 16100,
    "metrics.k8s.io": 100,  # metrics-server's
}
CUSTOM_GROUP_PRIORITY = 1000


def ordered(groups: Any, remote: dict[str, int] | None = None, tie: dict[str, str] | None = None) -> list[str]:
    """Group names by priority (`remote`: an extension group's groupPriorityMinimum), then by
    `tie` (the legacy list: its first APIService's name, `<version>.<group>`) or the name."""
    remote, tie = remote or {}, tie or {}

    def key(g: str) -> tuple[int, str]:
        return -remote.get(g, GROUP_PRIORITIES.get(g, CUSTOM_GROUP_PRIORITY)), tie.get(g, g)

    return sorted(groups, key=key)


def api_group_list(table: ResourceTable, aggregated: dict[str, dict[str, Any]] | None = None,
                   priorities: dict[str, int] | None = None) -> dict[str, Any]:
    """The groups served here and those of extension apiservers (`aggregated`: group → its
    APIGroup, which replaces a local group of the same name, as the aggregator's APIServices do;
    `priorities`: their groupPriorityMinimum), by priority as upstream lists them."""
    aggregated = aggregated or {}
    docs = {g: aggregated.get(g) or api_group(table, g) for g in {g for g in table.groups if g} | set(aggregated)}
    # upstream lists APIServices by priority, then by name (`<version>.<group>`)
    tie = {g: min(f"{v['version']}.{g}" for v in doc["versions"]) for g, doc in docs.items()}
    groups = [dict(docs[g]) for g in ordered(docs, priorities, tie)]
    for g in groups:
        g.pop("kind", None), g.pop("apiVersion", None)
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def _aggregated_group(table: ResourceTable, group: str, version_kind: str) -> dict[str, Any]:
    versions = []
    for v in table.groups[group]:
        resources = []
        for r in table.in_group_version(group, v):
            entry: dict[str, Any] = {
                "resource": r.plural,
                "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
                "scope": "Namespaced" if r.namespaced else "Cluster",
                "singularResource": r.singular,
                "verbs": list(r.verbs),
            }
            if r.short_names:
                entry["shortNames"] = list(r.short_names)
            if r.categories:
                entry["categories"] = list(r.categories)
            subs = []
            for sub in r.subresources:
                g, sv, k = _sub_kind(r, sub)
                subs.append(
                    {
                        "subresource": sub,
                        "responseKind": {"group": g, "version": sv, "kind": k},
                        "verbs": list(SUBRESOURCE_VERBS.get(sub, ())),
                    }
                )
            if subs:
                entry["subresources"] = subs
            resources.append(entry)
        versions.append({"version": v, "resources": resources, "freshness": "Current"})
    return {"metadata": {"name": group, "creationTimestamp": None}, "versions": versions}


def aggregated(table: ResourceTable, legacy: bool, version_kind: str = "v2",
               extra: list[dict[str, Any]] | None = None, priorities: dict[str, int] | None = None) -> dict[str, Any]:
    """`extra`: the items of extension apiservers' groups (they replace local groups of their name;
    `priorities`: their groupPriorityMinimum)."""
    extra = [] if legacy else (extra or [])
    remote = {item["metadata"]["name"]: item for item in extra}
    names = [""] if legacy else ordered({g for g in table.groups if g} | set(remote), priorities)
    return {
        "kind": "APIGroupDiscoveryList",
        "apiVersion": f"apidiscovery.k8s.io/{version_kind}",
        "metadata": {},
        "items": [remote[g] if g in remote else _aggregated_group(table, g, version_kind) for g in names],
    }


def encoded_aggregated(table: ResourceTable, legacy: bool, version_kind: str,
                       extra: list[dict[str, Any]] | None = None,
                       priorities: dict[str, int] | None = None) -> tuple[bytes, str]:
    """The aggregated document as JSON, and its ETag (a quoted hash of the body)."""
    body = orjson.dumps(aggregated(table, legacy, version_kind, extra, priorities))
    return body, f'"{hashlib.sha256(body).hexdigest()[:32]}"'


def negotiate_aggregated(accept: str) -> str | None:
    """The aggregated discovery version the client asks for first, or None for legacy."""
    for part in accept.split(","):
        p = part.replace(" ", "")
        if "as=APIGroupDiscoveryList" in p and "g=apidiscovery.k8s.io" in p:
            if "v=v2beta1" in p:
                return "v2beta1"
            if "v=v2" in p:
                return "v2"
        elif p.startswith(("application/json", "*/*")):
            return None
    return None


class DiscoveryDocs:
    """The discovery documents, encoded once per state of the resource table (custom resource
    definitions change it while the server runs)."""

    def __init__(self, table: ResourceTable, extra: Any = None) -> None:
        """`extra`: the aggregator (its `generation` and `aggregated_items()`), or None."""
        self.table = table
        self.extra = extra
        self._extra_generation = -1
        self._generation = -1
        self._lists: dict[tuple[str, str], bytes] = {}
        self._aggregated: dict[tuple[bool, str], tuple[bytes, str]] = {}

    def _fresh(self) -> None:
        if self.extra is not None and self.extra.generation != self._extra_generation:
            self._extra_generation = self.extra.generation
            self._aggregated = {}
        if self._generation == self.table.generation:
            return
        table = self.table
        self._lists = {(g, v): orjson.dumps(api_resource_list(table, g, v)) for g, vs in table.groups.items() for v in vs}
        self._aggregated = {}
        self._generation = table.generation

    def resource_list(self, group: str, version: str) -> bytes | None:
        """/api/v1, /apis/<group>/<version>: the APIResourceList, or None when not served."""
        self._fresh()
        return self._lists.get((group, version))

    def aggregated(self, legacy: bool, version_kind: str) -> tuple[bytes, str]:
        """The aggregated document and its ETag (built on first use after each change)."""
        self._fresh()
        doc = self._aggregated.get((legacy, version_kind))
        if doc is None:
            extra = self.extra.aggregated_items() if self.extra is not None and not legacy else None
            priorities = self.extra.group_priorities() if self.extra is not None else None
            doc = self._aggregated[(legacy, version_kind)] = encoded_aggregated(
                self.table, legacy, version_kind, extra, priorities)
        return doc
