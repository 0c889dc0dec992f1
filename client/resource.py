"""The verbs of one resource (`api.resource("apps/v1", "deployments")`), with upstream's URLs.

Namespaced-ness comes from discovery on first use (built-in table as fallback) and is
then kept. For single objects, the namespace is the argument, else the object's own,
else the client's default namespace; for list/watch/deletecollection, None means all.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import aclosing
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote

import orjson

from client.discovery import ResourceInfo, api_prefix
from client.errors import is_already_exists, is_gone, is_not_found

if TYPE_CHECKING:
    from client.rest import APIClient

PatchType = Literal["merge", "strategic", "json", "apply"]
PATCH_CONTENT_TYPES: dict[str, str] = {
    "merge": "application/merge-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    "json": "application/json-patch+json",
    "apply": "application/apply-patch+yaml",  # JSON is YAML: the body stays JSON
}

Selector = str | Mapping[str, str] | None


def format_selector(sel: Selector) -> str | None:
    """A selector string; a {key: value} mapping becomes `k1=v1,k2=v2`."""
    if sel is None or isinstance(sel, str):
        return sel or None
    return ",".join(f"{k}={v}" for k, v in sel.items()) or None


def _q(segment: str) -> str:
    return quote(segment, safe="")


class ResourceClient:
    """Async CRUD + watch for one resource. Every method returns the server's JSON as a dict."""

    def __init__(self, api: APIClient, api_version: str, plural: str) -> None:
        self.api = api
        self.api_version = api_version
        self.plural = plural
        self._prefix = api_prefix(api_version)
        self._info: ResourceInfo | None = None

    def __repr__(self) -> str:
        return f"ResourceClient({self.api_version!r}, {self.plural!r})"

    # -- paths -------------------------------------------------------------------------

    async def info(self) -> ResourceInfo:
        """Kind and scope of this resource (discovery, cached)."""
        if self._info is None:
            self._info = await self.api.discovery.resolve(self.api_version, self.plural)
        return self._info

    async def namespaced(self) -> bool:
        return (self._info or await self.info()).namespaced

    async def collection_path(self, namespace: str | None = None) -> str:
        info = self._info or await self.info()
        if info.namespaced and namespace:
            return f"{self._prefix}/namespaces/{_q(namespace)}/{self.plural}"
        return f"{self._prefix}/{self.plural}"

    async def item_path(self, name: str, namespace: str | None = None, subresource: str | None = None) -> str:
        info = self._info or await self.info()
        if not name:
            raise ValueError(f"{self.plural}: a name is required")
        if info.namespaced:
            ns = namespace or self.api.config.namespace
            path = f"{self._prefix}/namespaces/{_q(ns)}/{self.plural}/{_q(name)}"
        else:
            path = f"{self._prefix}/{self.plural}/{_q(name)}"
        return f"{path}/{subresource}" if subresource else path

    @staticmethod
    def _obj_ns(obj: Mapping[str, Any], namespace: str | None) -> str | None:
        return namespace or (obj.get("metadata") or {}).get("namespace")

    # -- reads -------------------------------------------------------------------------

    async def get(self, name: str, namespace: str | None = None, resource_version: str | None = None) -> dict[str, Any]:
        params = {"resourceVersion": resource_version} if resource_version is not None else None
        return await self.api.request("GET", await self.item_path(name, namespace), params)

    async def list(
        self,
        namespace: str | None = None,
        label_selector: Selector = None,
        field_selector: Selector = None,
        limit: int | None = None,
        resource_version: str | None = None,
        continue_token: str | None = None,
        resource_version_match: str | None = None,
    ) -> dict[str, Any]:
        """One list call (one page when `limit` is set; follow `metadata.continue`, or use list_all)."""
        params = {
            "labelSelector": format_selector(label_selector),
            "fieldSelector": format_selector(field_selector),
            "limit": limit,
            "resourceVersion": resource_version,
            "resourceVersionMatch": resource_version_match,
            "continue": continue_token,
        }
        return await self.api.request("GET", await self.collection_path(namespace), params)

    async def list_all(
        self,
        namespace: str | None = None,
        label_selector: Selector = None,
        field_selector: Selector = None,
        page_size: int = 500,
        resource_version: str | None = None,
    ) -> dict[str, Any]:
        """Every item, following `continue` pages; one list object (the first page's resourceVersion).

        A continue token that expires mid-way (410) restarts as one unpaged list, as
        client-go's pager does. `resource_version="0"` serves from the watch cache (unpaged).
        """
        first = await self.list(namespace, label_selector, field_selector, page_size, resource_version)
        items = list(first.get("items") or [])
        token = (first.get("metadata") or {}).get("continue")
        while token:
            try:
                page = await self.list(namespace, label_selector, field_selector, page_size, None, token)
            except Exception as e:
                if not is_gone(e):
                    raise
                return await self.list(namespace, label_selector, field_selector, None, resource_version)
            items.extend(page.get("items") or [])
            token = (page.get("metadata") or {}).get("continue")
        first["items"] = items
        meta = first.setdefault("metadata", {})
        meta.pop("continue", None)
        meta.pop("remainingItemCount", None)
        return first

    async def watch(
        self,
        namespace: str | None = None,
        resource_version: str | None = None,
        label_selector: Selector = None,
        field_selector: Selector = None,
        allow_bookmarks: bool = True,
        timeout_seconds: int | None = None,
        name: str | None = None,
        send_initial_events: bool | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        """Watch events ({"type", "object"}); ERROR events are raised as ApiError (see stream_watch)."""
        if name:
            sel = format_selector(field_selector)
            field_selector = f"metadata.name={name}" + (f",{sel}" if sel else "")
        params: dict[str, Any] = {
            "resourceVersion": resource_version,
            "labelSelector": format_selector(label_selector),
            "fieldSelector": format_selector(field_selector),
            "allowWatchBookmarks": True if allow_bookmarks else None,
            "timeoutSeconds": timeout_seconds,
        }
        if send_initial_events is not None:
            params["sendInitialEvents"] = send_initial_events
            params["resourceVersionMatch"] = "NotOlderThan"
            params["allowWatchBookmarks"] = True  # the end of the initial events is a bookmark
        # the server ends the stream at timeoutSeconds; allow some slack before calling it dead
        read_timeout = timeout_seconds + 30.0 if timeout_seconds else None
        path = await self.collection_path(namespace)
        async with aclosing(self.api.stream_watch(path, params, read_timeout=read_timeout)) as events:
            async for ev in events:
                yield ev

    # -- writes ------------------------------------------------------------------------

    async def create(
        self, obj: Mapping[str, Any], namespace: str | None = None, *, field_manager: str | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        ns = self._obj_ns(obj, namespace)
        info = self._info or await self.info()
        if info.namespaced and not ns:
            ns = self.api.config.namespace
        params = _write_params(field_manager, dry_run)
        return await self.api.request("POST", await self.collection_path(ns), params, obj)

    async def update(
        self, obj: Mapping[str, Any], namespace: str | None = None, *, field_manager: str | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """PUT the whole object; its metadata.resourceVersion makes it conditional (409 if stale)."""
        path = await self.item_path(obj["metadata"]["name"], self._obj_ns(obj, namespace))
        return await self.api.request("PUT", path, _write_params(field_manager, dry_run), obj)

    async def update_status(
        self, obj: Mapping[str, Any], namespace: str | None = None, *, field_manager: str | None = None,
    ) -> dict[str, Any]:
        path = await self.item_path(obj["metadata"]["name"], self._obj_ns(obj, namespace), "status")
        return await self.api.request("PUT", path, _write_params(field_manager, False), obj)

    async def patch(
        self,
        name: str,
        patch: Any,
        namespace: str | None = None,
        patch_type: PatchType = "merge",
        subresource: str | None = None,
        field_manager: str | None = None,
        force: bool | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """PATCH with a merge, strategic-merge, JSON (list of ops) or server-side apply body.

        `apply` needs a `field_manager`; `force=True` takes over conflicting fields.
        """
        ctype = PATCH_CONTENT_TYPES.get(patch_type)
        if ctype is None:
            raise ValueError(f"unknown patch type {patch_type!r}; one of {sorted(PATCH_CONTENT_TYPES)}")
        if patch_type == "apply" and not field_manager:
            raise ValueError("server-side apply needs a field_manager")
        params = _write_params(field_manager, dry_run)
        if force is not None:
            params["force"] = force
        path = await self.item_path(name, namespace, subresource)
        return await self.api.request("PATCH", path, params, patch, ctype)

    async def delete(
        self,
        name: str,
        namespace: str | None = None,
        propagation_policy: str | None = None,
        grace_period_seconds: int | None = None,
        preconditions: Mapping[str, str] | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """DELETE with DeleteOptions; returns the Status or the object (still there with finalizers)."""
        body = _delete_options(propagation_policy, grace_period_seconds, preconditions, dry_run)
        return await self.api.request("DELETE", await self.item_path(name, namespace), None, body)

    async def delete_collection(
        self,
        namespace: str | None = None,
        label_selector: Selector = None,
        field_selector: Selector = None,
        propagation_policy: str | None = None,
        grace_period_seconds: int | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        params = {"labelSelector": format_selector(label_selector), "fieldSelector": format_selector(field_selector)}
        body = _delete_options(propagation_policy, grace_period_seconds, None, dry_run)
        return await self.api.request("DELETE", await self.collection_path(namespace), params, body)

    # -- subresources ------------------------------------------------------------------

    async def create_subresource(
        self, name: str, subresource: str, body: Mapping[str, Any], namespace: str | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """POST to a subresource: pods/<n>/binding, pods/<n>/eviction, serviceaccounts/<n>/token."""
        path = await self.item_path(name, namespace, subresource)
        return await self.api.request("POST", path, params, body)

    async def get_subresource(
        self, name: str, subresource: str, namespace: str | None = None, params: Mapping[str, Any] | None = None,
    ) -> dict[str, Any] | str:
        """GET a subresource: a dict for JSON (scale, status), text otherwise (pods/<n>/log)."""
        path = await self.item_path(name, namespace, subresource)
        data, ctype = await self.api.request_raw("GET", path, params, accept="application/json, */*")
        if ctype.startswith("application/json"):
            return orjson.loads(data) if data else {}
        return data.decode("utf-8", "replace")

    async def update_subresource(
        self, name: str, subresource: str, body: Mapping[str, Any], namespace: str | None = None,
    ) -> dict[str, Any]:
        """PUT a subresource (deployments/<n>/scale, namespaces/<n>/finalize)."""
        path = await self.item_path(name, namespace, subresource)
        return await self.api.request("PUT", path, None, body)


def _write_params(field_manager: str | None, dry_run: bool) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if field_manager:
        params["fieldManager"] = field_manager
    if dry_run:
        params["dryRun"] = "All"
    return params


def _delete_options(
    propagation_policy: str | None, grace_period_seconds: int | None, preconditions: Mapping[str, str] | None,
    dry_run: bool,
) -> dict[str, Any] | None:
    opts: dict[str, Any] = {}
    if propagation_policy is not None:
        opts["propagationPolicy"] = propagation_policy
    if grace_period_seconds is not None:
        opts["gracePeriodSeconds"] = grace_period_seconds
    if preconditions:
        opts["preconditions"] = dict(preconditions)
    if dry_run:
        opts["dryRun"] = ["All"]
    if not opts:
        return None
    return {"kind": "DeleteOptions", "apiVersion": "v1", **opts}


async def create_missing(api: APIClient, objs: Iterable[Mapping[str, Any]]) -> list[str]:
    """Create each object that does not exist yet (existing ones are left as they are), as an
    addon manager's EnsureExists mode does. Returns "Kind/name" of those created."""
    created = []
    for obj in objs:
        resource = await api.resource_for_kind(obj["apiVersion"], obj["kind"])
        meta = obj["metadata"]
        try:
            # look first: creating an existing Service fails on its IP before "already exists"
            await resource.get(meta["name"], meta.get("namespace"))
            continue
        except Exception as exc:
            if not is_not_found(exc):
                raise
        try:
            await resource.create(obj, meta.get("namespace"))
            created.append(f"{obj['kind']}/{meta['name']}")
        except Exception as exc:
            if not is_already_exists(exc):
                raise
    return created
