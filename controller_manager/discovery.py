"""What the apiserver serves, read from discovery (upstream's ServerPreferredResources).

The namespace controller deletes every namespaced resource it finds here, and the garbage
collector watches every resource it finds here: neither has a hard-coded list of kinds.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from client import APIClient, ResourceInfo
from client.discovery import api_prefix, parse_resource_list

#: kinds that are never owners nor dependents (upstream's GC ignores them too)
GC_IGNORED = frozenset({("v1", "events"), ("events.k8s.io/v1", "events")})


@dataclass
class Discovered:
    """Resources of each group's preferred version, and the group versions that failed."""

    resources: list[ResourceInfo] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)

    def namespaced_deletable(self) -> list[ResourceInfo]:
        """What the namespace controller empties: namespaced resources that can be deleted."""
        return [r for r in self.resources if r.namespaced and "delete" in r.verbs]

    def gc_monitorable(self) -> list[ResourceInfo]:
        """What the garbage collector watches: resources it can list, watch and delete (upstream
        GetDeletableResources), events excepted."""
        need = {"list", "watch", "delete"}
        return [r for r in self.resources if need <= set(r.verbs) and (r.api_version, r.plural) not in GC_IGNORED]


async def preferred_group_versions(client: APIClient) -> list[str]:
    """"v1" and each API group's preferred version, as the server announces them."""
    core = await client.request("GET", "/api")
    versions = list(core.get("versions") or ["v1"])[:1]
    groups = await client.request("GET", "/apis")
    for g in groups.get("groups") or []:
        preferred = (g.get("preferredVersion") or {}).get("groupVersion")
        if not preferred and g.get("versions"):
            preferred = g["versions"][0].get("groupVersion")
        if preferred:
            versions.append(preferred)
    return versions


async def discover(client: APIClient) -> Discovered:
    """Every top-level resource of every preferred group version (fresh, not cached).

    The group list itself must be readable (else this raises); a group version whose own
    document fails is recorded in `failed` and the others are still returned, as upstream
    treats partial discovery failures.
    """
    versions = await preferred_group_versions(client)
    docs = await asyncio.gather(*(client.request("GET", api_prefix(gv)) for gv in versions), return_exceptions=True)
    out = Discovered()
    for gv, doc in zip(versions, docs, strict=True):
        if isinstance(doc, BaseException):
            if isinstance(doc, asyncio.CancelledError):
                raise doc
            out.failed[gv] = str(doc)
            continue
        out.resources.extend(parse_resource_list(gv, doc).values())
    return out
