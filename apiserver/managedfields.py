"""metadata.managedFields and server-side apply.

Placeholder until server-side apply lands (kubectl parity issue): writes keep whatever
managedFields the stored object has, and apply patches are refused with 415.
"""

from __future__ import annotations

from typing import Any

from apimachinery import errors


class ManagedFields:
    def on_create(self, obj: dict[str, Any], user: Any, query: dict[str, str]) -> None:
        obj["metadata"].pop("managedFields", None)

    def on_update(self, obj: dict[str, Any], old: dict[str, Any], user: Any, query: dict[str, str], sub: str) -> None:
        if "managedFields" in old["metadata"]:
            obj["metadata"]["managedFields"] = old["metadata"]["managedFields"]
        else:
            obj["metadata"].pop("managedFields", None)

    async def apply(self, api, req, res, ns, name, user, subresource, body, dry_run):
        raise errors.StatusError(
            415, "UnsupportedMediaType", "server-side apply (application/apply-patch+yaml) is not supported yet"
        )
