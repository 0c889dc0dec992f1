"""The one generic resource handler: every verb for every resource in the table.

Writes go admission (mutating) → strategy defaults → validation → admission
(validating) → storage, like upstream's registry Store. Per-kind behaviour lives in
strategies; nothing here names a kind except through them.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import logging
import random
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

import orjson

from apimachinery import errors
from apimachinery.meta import generate_name, new_uid, now
from apimachinery.patch import json_patch, merge_patch
from apimachinery.selectors import FieldSelector, LabelSelector, parse_field_selector, parse_label_selector
from apimachinery.strategic import schema_for, strategic_merge_patch
from apimachinery.validation import forbidden_cause, not_supported_cause
from apiserver import admission as adm
from apiserver.fieldschema import warning_header
from apiserver.http import (
    JSON,
    Request,
    Response,
    StreamResponse,
    decode_document,
    json_response,
    query_bool,
    raw_json,
)
from apiserver.negotiation import answers_json
from apiserver.requestinfo import RequestInfo
from apiserver.resources import Resource
from apiserver.storage import KV, TxnFailed
from apiserver.tables import output_form_of
from apiserver.watchcache import BOOKMARK, CacheEvent, Filter, TooOld, direct_watch
from apiserver.watchstream import DirectWatchResponse, next_bookmark_at

if TYPE_CHECKING:
    from apiserver.authn import UserInfo
    from apiserver.server import APIServer

log = logging.getLogger("apiserver.handler")

PATCH_TYPES = {
    "application/json-patch+json": "json",
    "application/merge-patch+json": "merge",
    "application/strategic-merge-patch+json": "strategic",
    "application/apply-patch+yaml": "apply",
    "application/apply-patch+cbor": "apply",
}
BODY_TYPES = {"application/json", "application/yaml", "application/vnd.kubernetes.protobuf", ""}

MAX_UPDATE_RETRIES = 20


def _bool(q: dict[str, str], name: str) -> bool:
    return query_bool(q.get(name))


INT64_MAX = 2**63 - 1


def _int(q: dict[str, str], name: str, default: int | None = None) -> int | None:
    """An integer query parameter; like upstream's int64 parameters, out of range is a bad request."""
    v = q.get(name)
    if v is None or v == "":
        return default
    try:
        n = int(v)
    except ValueError:
        raise errors.bad_request(f"invalid value for {name}: {v!r} is not an integer") from None
    if not -INT64_MAX - 1 <= n <= INT64_MAX:
        raise errors.bad_request(f"invalid value for {name}: {v!r} is out of range")
    return n


def validate_list_options(q: dict[str, str], watch: bool) -> None:
    """Upstream's ValidateListOptions: a 422 Invalid on ListOptions.meta.k8s.io, one cause per rule."""
    match, rv, cont = q.get("resourceVersionMatch", ""), q.get("resourceVersion", ""), q.get("continue", "")
    causes = []
    if watch:
        if "sendInitialEvents" in q and match != "NotOlderThan":
            causes.append(forbidden_cause("resourceVersionMatch",
                                          "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan"))
        if "sendInitialEvents" in q and not _bool(q, "allowWatchBookmarks"):
            causes.append(forbidden_cause("allowWatchBookmarks",
                                          "sendInitialEvents requires setting allowWatchBookmarks to true"))
        if match:
            if "sendInitialEvents" not in q:
                causes.append(forbidden_cause("resourceVersionMatch",
                                              "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided"))
            if match != "NotOlderThan":
                causes.append(not_supported_cause("resourceVersionMatch", match, ["NotOlderThan"]))
            if cont:
                causes.append(forbidden_cause("resourceVersionMatch", "resourceVersionMatch is forbidden when continue is provided"))
    else:
        if match:
            if not rv:
                causes.append(forbidden_cause("resourceVersionMatch",
                                              "resourceVersionMatch is forbidden unless resourceVersion is provided"))
            if cont:
                causes.append(forbidden_cause("resourceVersionMatch", "resourceVersionMatch is forbidden when continue is provided"))
            if match not in ("Exact", "NotOlderThan"):
                causes.append(not_supported_cause("resourceVersionMatch", match, ["Exact", "NotOlderThan", ""]))
            if match == "Exact" and rv == "0":
                causes.append(forbidden_cause("resourceVersionMatch",
                                              'resourceVersionMatch "exact" is forbidden for resourceVersion "0"'))
        if "sendInitialEvents" in q:
            causes.append(forbidden_cause("sendInitialEvents", "sendInitialEvents is forbidden for list"))
    if causes:
        raise errors.invalid("ListOptions", "", causes, "meta.k8s.io")


def _dry_run(q: dict[str, str]) -> bool:
    v = q.get("dryRun")
    if v is None or v == "":
        return False
    if v != "All":
        raise errors.bad_request(f'unsupported dry run value "{v}"; only "All" is supported')
    return True


def _strip_for_storage(obj: dict[str, Any]) -> bytes:
    meta = obj["metadata"]
    rv = meta.pop("resourceVersion", None)
    meta.pop("selfLink", None)
    data = orjson.dumps(obj)
    if rv is not None:
        meta["resourceVersion"] = rv
    return data


def _deep_copy(obj: Any) -> Any:
    return orjson.loads(orjson.dumps(obj))


def _selectors(q: dict[str, str]) -> tuple[LabelSelector | None, FieldSelector | None]:
    ls = parse_label_selector(q["labelSelector"]) if q.get("labelSelector") else None
    fs = parse_field_selector(q["fieldSelector"]) if q.get("fieldSelector") else None
    if ls is not None and ls.empty:
        ls = None
    if fs is not None and fs.empty:
        fs = None
    return ls, fs


def _keep_system_meta(meta: dict[str, Any], old_meta: dict[str, Any]) -> None:
    """The metadata only the server sets stays as stored on an update."""
    meta["uid"] = old_meta.get("uid")
    meta["creationTimestamp"] = old_meta.get("creationTimestamp")
    for f in ("deletionTimestamp", "deletionGracePeriodSeconds"):
        if f in old_meta:
            meta[f] = old_meta[f]
        else:
            meta.pop(f, None)


def _set_managed_fields(meta: dict[str, Any], owned: Any) -> None:
    """managedFields as the field manager made them before admission (a webhook cannot forge them)."""
    if owned is None:
        meta.pop("managedFields", None)
    else:
        meta["managedFields"] = owned


async def _validated(st: Any, check: Callable[..., list[Any]], *args: Any) -> list[Any]:
    """A strategy's validation; in apiserver.celengine's thread when it may run CEL rules."""
    if st.validates_off_loop:
        from apiserver.celengine import off_loop

        return await off_loop(check, *args)
    return check(*args)


class ResourceAPI:
    def __init__(self, server: APIServer) -> None:
        self.server = server
        self.store = server.store
        self.table = server.table

    # ==================================================================================
    # dispatch
    # ==================================================================================

    async def serve(self, req: Request, info: RequestInfo, user: UserInfo) -> Response | StreamResponse:
        res = self.table.lookup(info.group, info.version, info.resource)
        if res is None:
            raise errors.route_not_found()
        ns = info.namespace if res.namespaced else ""
        if res.namespaced and info.resource == "namespaces":
            ns = ""
        if not res.namespaced and info.namespace and info.resource != "namespaces":
            raise errors.route_not_found()
        deprecated = res.strategy.deprecation_warning
        if deprecated:  # a deprecated custom resource version: every answer says so (upstream)
            resp = await self._serve(req, info, res, ns, user)
            resp.extra_headers.append(warning_header(deprecated))
            return resp
        return await self._serve(req, info, res, ns, user)

    async def _serve(self, req: Request, info: RequestInfo, res: Resource, ns: str,
                     user: UserInfo) -> Response | StreamResponse:
        serve_virtual = getattr(res.strategy, "serve", None)
        if serve_virtual is not None:  # create-only reviews (apiserver.reviews): nothing stored
            return await serve_virtual(self.server, req, info, res, ns, user)
        if info.subresource:
            if info.subresource not in res.subresources:
                raise errors.route_not_found()
            return await self.server.subresources.serve(req, info, res, ns, user)
        verb = info.verb
        if verb == "get":
            return await self.get(req, res, ns, info.name)
        if verb == "list":
            return await self.list(req, res, ns)
        if verb == "watch":
            return await self.watch(req, res, ns, info.name)
        if verb == "create":
            if info.name:
                raise errors.method_not_allowed("the server does not allow this method on the requested resource")
            return await self.create(req, res, ns, user)
        if verb == "update":
            if not info.name:
                raise errors.method_not_allowed("the server does not allow this method on the requested resource")
            return await self.update(req, res, ns, info.name, user)
        if verb == "patch":
            if not info.name:
                raise errors.method_not_allowed("the server does not allow this method on the requested resource")
            return await self.patch(req, res, ns, info.name, user)
        if verb == "delete":
            return await self.delete(req, res, ns, info.name, user)
        if verb == "deletecollection":
            return await self.delete_collection(req, res, ns, user)
        raise errors.method_not_allowed("the server does not allow this method on the requested resource")

    # ==================================================================================
    # reads
    # ==================================================================================

    def cache(self, res: Resource):  # -> WatchCache
        return self.server.caches[res.storage_prefix]

    def to_output(self, res: Resource, data: bytes) -> bytes:
        """Stored form → the served version's JSON (a conversion only where a kind has one)."""
        conv = res.strategy.output_converter(res)
        if conv is None:
            return data
        return orjson.dumps(conv(orjson.loads(data)))

    def obj_to_output(self, res: Resource, obj: dict[str, Any]) -> dict[str, Any]:
        conv = res.strategy.output_converter(res)
        return conv(obj) if conv is not None else obj

    # A CRD with a conversion webhook: objects are converted between the stored and the served
    # version by calling it — asynchronously, so here rather than in the strategy's converters.

    def _conversion_caller(self):  # -> WebhookCaller
        caller = self.server.conversion_caller
        if caller is None:
            from apiserver.webhookclient import WebhookCaller

            caller = self.server.conversion_caller = WebhookCaller(self.server, "kube-apiserver-conversion")
        return caller

    async def converted(self, res: Resource, objs: list[dict[str, Any]], api_version: str = "",
                        write: bool = False, is_list: bool = False) -> list[dict[str, Any]]:
        """`objs` at `api_version` (the served version by default) through the conversion webhook."""
        hook = res.strategy.conversion_webhook
        if hook is None:
            return objs
        return await hook.convert(self._conversion_caller(), objs, api_version or res.api_version, write, is_list)

    async def output(self, res: Resource, data: bytes) -> bytes:
        """to_output, converting through the conversion webhook where the kind has one."""
        if res.strategy.conversion_webhook is not None:
            data = orjson.dumps((await self.converted(res, [orjson.loads(data)]))[0])
        return self.to_output(res, data)

    async def outputs(self, res: Resource, items: list[bytes]) -> list[bytes]:
        """Served-version JSON of many stored objects (one ConversionReview for all of them)."""
        if res.strategy.conversion_webhook is None:
            return [self.to_output(res, d) for d in items]
        objs = await self.converted(res, [orjson.loads(d) for d in items], is_list=True)
        return [orjson.dumps(o) for o in objs]

    async def for_storage(self, res: Resource, obj: dict[str, Any]) -> dict[str, Any]:
        """What is written to etcd: the object at the storage version."""
        if res.strategy.conversion_webhook is not None:
            obj = (await self.converted(res, [obj], res.strategy.storage_api_version, write=True))[0]
        return _strip_for_storage(obj)

    async def read(self, res: Resource, ns: str, name: str) -> KV:
        kv = await self.store.get(res.key(ns, name))
        if kv is None:
            raise errors.not_found(res.plural, name, res.group)
        return kv

    async def get(self, req: Request, res: Resource, ns: str, name: str) -> Response:
        rv = req.query.get("resourceVersion", "")
        if rv == "0":
            entry = self.cache(res).get(res.key(ns, name))
            if entry is None:
                raise errors.not_found(res.plural, name, res.group)
            data = entry.data
        else:
            kv = await self.read(res, ns, name)
            data = orjson.dumps(kv.decode())
        return await self.server.render(req, res, await self.output(res, data), single=True)

    async def list(self, req: Request, res: Resource, ns: str) -> Response:
        q = req.query
        ls, fs = _selectors(q)
        if fs is not None:
            self._check_fields(res, fs)
        validate_list_options(q, watch=False)
        limit = _int(q, "limit", 0) or 0
        cont = q.get("continue", "")
        rv = q.get("resourceVersion", "")
        match = q.get("resourceVersionMatch", "")
        if cont and rv:
            raise errors.bad_request("specifying resource version is not allowed when using continue")
        flt = Filter(ns or None, fs.exact_value("metadata.name") if fs else None, ls, fs)
        if cont or match == "Exact" or (limit and rv == ""):
            return await self._list_from_etcd(req, res, ns, flt, limit, cont, rv, match)
        cache = self.cache(res)
        if rv and rv != "0":
            await cache.wait_fresh(self._parse_rv(rv))
        elif rv == "":
            await cache.sync_with_store()
        else:
            await cache._wait_ready(3.0)
        items = await self.outputs(res, [e.data for e in cache.list(flt)])
        return await self.server.render_list(req, res, items, str(cache.safe_revision), "")

    async def _list_from_etcd(
        self, req: Request, res: Resource, ns: str, flt: Filter, limit: int, cont: str, rv: str, match: str
    ) -> Response:
        prefix = res.prefix(ns or None)
        st = res.strategy
        start_key: bytes | None = None
        revision = 0
        if cont:
            revision, start = _decode_continue(cont)
            start_key = (prefix + start).encode()
        elif match == "Exact":
            revision = self._parse_rv(rv)
        items: list[bytes] = []
        next_key: bytes | None = None
        while True:
            batch = max(limit - len(items), 1) if limit else 0
            if limit and (flt.labels is not None or flt.fields is not None):
                batch = max(batch, 100)
            try:
                kvs, store_rev, more, count = await self.store.list(
                    prefix, start_key=start_key, limit=batch, revision=revision)
            except Exception as e:
                from apiserver.storage import Compacted

                if isinstance(e, Compacted):
                    raise errors.gone(
                        "The provided continue parameter is too old to display a consistent list result. "
                        "You can start a new list without the continue parameter."
                        if cont else "The resourceVersion for the provided list is too old."
                    ) from None
                raise
            revision = revision or store_rev
            for i, kv in enumerate(kvs):
                entry_obj = kv.decode()
                meta = entry_obj["metadata"]
                if flt.namespace is not None and meta.get("namespace") != flt.namespace:
                    continue
                if flt.name is not None and meta.get("name") != flt.name:
                    continue
                if flt.labels is not None and not flt.labels.matches(meta.get("labels") or {}):
                    continue
                if flt.fields is not None and not flt.fields.matches(self.field_set(res, entry_obj)):
                    continue
                items.append(orjson.dumps(entry_obj if st.conversion_webhook is not None
                                          else self.obj_to_output(res, entry_obj)))
                if limit and len(items) >= limit:
                    if i + 1 < len(kvs) or more:
                        next_key = kv.key + b"\0"
                    break
            if (limit and len(items) >= limit) or not more:
                break
            start_key = kvs[-1].key + b"\0"
        token = ""
        remaining = None
        if next_key is not None:
            token = _encode_continue(revision, next_key.decode()[len(prefix):])
            if flt.labels is None and flt.fields is None:
                # one range of `limit` keys answered this page: the rest of its count is what is left
                # (upstream leaves it out when a selector makes the count inexact)
                remaining = count - len(items)
        if st.conversion_webhook is not None:
            items = await self.outputs(res, items)
        return await self.server.render_list(req, res, items, str(revision), token, remaining)

    def field_set(self, res: Resource, obj: dict[str, Any]) -> dict[str, str]:
        f = res.strategy.fields(obj)
        meta = obj["metadata"]
        f["metadata.name"] = meta.get("name", "")
        if res.namespaced:
            f["metadata.namespace"] = meta.get("namespace", "")
        return f

    def _check_fields(self, res: Resource, fs: FieldSelector) -> None:
        allowed = {"metadata.name", "metadata.namespace", *res.strategy.selectable_fields}
        for field, _op, _value in fs.requirements:
            if field not in allowed:
                raise errors.bad_request(f'field label not supported: {field}')

    @staticmethod
    def _parse_rv(rv: str) -> int:
        try:
            n = int(rv)
            if n < 0:
                raise ValueError
            return n
        except ValueError:
            raise errors.bad_request(f"invalid resource version: {rv!r}") from None

    # ==================================================================================
    # watch
    # ==================================================================================

    async def watch(self, req: Request, res: Resource, ns: str, name: str) -> StreamResponse | DirectWatchResponse:
        q = req.query
        ls, fs = _selectors(q)
        if fs is not None:
            self._check_fields(res, fs)
        if name:
            flt_name: str | None = name
        else:
            flt_name = fs.exact_value("metadata.name") if fs else None
        flt = Filter(ns or None, flt_name, ls, fs)
        rv_s = q.get("resourceVersion", "")
        rv = self._parse_rv(rv_s) if rv_s else 0
        bookmarks = _bool(q, "allowWatchBookmarks")
        validate_list_options(q, watch=True)
        send_initial: bool | None = None
        if "sendInitialEvents" in q:
            send_initial = _bool(q, "sendInitialEvents")
        timeout = _int(q, "timeoutSeconds")
        if timeout is None:
            timeout = random.randint(1800, 3600)
        form = output_form_of(req)
        if form is not None and form.as_kind == "PartialObjectMetadataList":
            raise errors.not_acceptable("you requested PartialObjectMetadataList, but the requested object is not a list")
        line = self._event_line if form is None else self._transformed_event_line(res, form)
        cache = self.cache(res)
        try:
            watcher = await cache.watch(flt, rv, bookmarks, send_initial)
        except TooOld:
            return StreamResponse(self._direct_stream(res, rv, flt, timeout, line), req.receive)
        except errors.StatusError as e:
            if e.code == 410:
                return StreamResponse(_one_error(e), req.receive)
            raise
        transport = req.scope.get("minik8s.transport")
        if transport is not None and answers_json(req.header(b"accept")) and res.strategy.conversion_webhook is None:
            return DirectWatchResponse(
                transport, req.receive, cache, watcher, lambda ev: line(res, ev),
                lambda rev, ann: self._bookmark(res, rev, ann), timeout, bool(send_initial),
                form.content_type if form is not None else JSON,
            )
        stream = StreamResponse(self._cache_stream(res, cache, watcher, timeout, bool(send_initial), line), req.receive)
        if form is not None:
            stream.content_type = form.content_type
        return stream

    def _transformed_event_line(self, res: Resource, form):  # -> Callable[[Resource, CacheEvent], bytes]
        """Each event's object as a one-row Table (headers on the first only) or as metadata."""
        first = [True]

        def line(res: Resource, ev: CacheEvent) -> bytes:
            obj = self.obj_to_output(res, orjson.loads(ev.entry.data))
            out = form.one(res, obj, obj["metadata"].get("resourceVersion", ""), headers=first[0])
            first[0] = False
            return orjson.dumps({"type": ev.type, "object": out}) + b"\n"

        return line

    def _event_line(self, res: Resource, ev: CacheEvent) -> bytes:
        if res.strategy.output_converter(res) is None:
            return ev.line()
        obj = self.obj_to_output(res, orjson.loads(ev.entry.data))
        return orjson.dumps({"type": ev.type, "object": obj}) + b"\n"

    async def _converted_events(self, res: Resource, events: list[CacheEvent]) -> list[CacheEvent]:
        objs = await self.converted(res, [orjson.loads(ev.entry.data) for ev in events])
        return [CacheEvent(ev.type, ev.revision, dataclasses.replace(ev.entry, data=orjson.dumps(o)), ev.prev)
                for ev, o in zip(events, objs, strict=True)]

    def _bookmark(self, res: Resource, revision: int, annotations: dict[str, str] | None = None) -> bytes:
        meta: dict[str, Any] = {"resourceVersion": str(revision)}
        if annotations:
            meta["annotations"] = annotations
        return orjson.dumps(
            {"type": BOOKMARK, "object": {"kind": res.kind, "apiVersion": res.api_version, "metadata": meta}}
        ) + b"\n"

    async def _cache_stream(
        self, res: Resource, cache, watcher, timeout: int, initial_end: bool, line
    ) -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        next_bookmark = next_bookmark_at(loop.time(), deadline)
        initial_pending = initial_end
        try:
            while True:
                if initial_pending and watcher.queue.empty():
                    # the initial state has been sent (sendInitialEvents)
                    initial_pending = False
                    yield self._bookmark(res, watcher.last_revision, {"k8s.io/initial-events-end": "true"})
                now_t = loop.time()
                left = deadline - now_t
                if left <= 0:
                    return
                wait = min(left, next_bookmark - now_t) if watcher.bookmarks else left
                try:
                    if watcher.queue.empty():
                        # a timer, not wait_for's extra task per event: this runs per watcher per event
                        async with asyncio.timeout(max(wait, 0.01)):
                            ev = await watcher.queue.get()
                    else:
                        ev = watcher.queue.get_nowait()
                except TimeoutError:
                    if watcher.bookmarks and loop.time() >= next_bookmark:
                        next_bookmark = next_bookmark_at(loop.time(), deadline)
                        rev = max(cache.safe_revision, watcher.last_revision)
                        watcher.last_revision = rev
                        yield self._bookmark(res, rev)
                        cache.request_progress()
                    continue
                if ev is None:
                    return
                watcher.last_revision = max(watcher.last_revision, ev.revision)
                events = [ev]
                ended = False
                # drain what is already queued into one write
                while not watcher.queue.empty() and len(events) < 256:
                    nxt = watcher.queue.get_nowait()
                    if nxt is None:
                        ended = True
                        break
                    watcher.last_revision = max(watcher.last_revision, nxt.revision)
                    events.append(nxt)
                if res.strategy.conversion_webhook is not None:
                    try:
                        events = await self._converted_events(res, events)
                    except errors.StatusError as e:
                        yield orjson.dumps({"type": "ERROR", "object": e.status()}) + b"\n"
                        return
                yield b"".join([line(res, e) for e in events])
                if ended:
                    return
        finally:
            cache.unwatch(watcher)

    async def _direct_stream(self, res: Resource, rv: int, flt: Filter, timeout: int, line) -> AsyncIterator[bytes]:
        gen = direct_watch(self.store, res.prefix(flt.namespace), rv, flt, lambda o: self.field_set(res, o))
        try:
            async with asyncio.timeout(timeout):
                async for ev in gen:
                    if res.strategy.conversion_webhook is not None:
                        ev = (await self._converted_events(res, [ev]))[0]
                    yield line(res, ev)
        except TimeoutError:
            return
        except errors.StatusError as e:
            yield orjson.dumps({"type": "ERROR", "object": e.status()}) + b"\n"
        finally:
            await gen.aclose()

    # ==================================================================================
    # writes
    # ==================================================================================

    async def read_object(self, req: Request, res: Resource) -> dict[str, Any]:
        await self.server.openapi.ready()  # the field schema (only waits during the first start)
        ct = req.content_type
        if ct not in BODY_TYPES:
            raise errors.unsupported_media_type(ct)
        obj = decode_document(await req.body(), ct)
        if not isinstance(obj, dict):
            raise errors.bad_request("the request body must be a JSON object")
        return obj

    async def read_body(self, req: Request, res: Resource, group: str, version: str, kind: str) -> dict[str, Any]:
        """The body of a request whose kind is not a stored object's (TokenRequest, the reviews):
        decoded, of that kind, and type-checked against its schema as object bodies are."""
        obj = await self.read_object(req, res)
        api_version = f"{group}/{version}" if group else version
        if obj.get("kind") not in (None, kind) or obj.get("apiVersion") not in (None, api_version):
            raise errors.bad_request(f"expected {kind} in {api_version}")
        self.server.fields.check(group, version, kind, obj, req.query.get("fieldValidation", "") or "Ignore")
        return obj

    def check_type(self, res: Resource, obj: dict[str, Any]) -> None:
        """The body's apiVersion/kind must be the endpoint's (defaulted when absent)."""
        av = obj.get("apiVersion")
        kind = obj.get("kind")
        if av is None and kind is None:
            obj["apiVersion"], obj["kind"] = res.api_version, res.kind
        elif kind != res.kind or av != res.api_version:
            raise errors.bad_request(
                f"the API version in the data ({av}) does not match the expected API version ({res.api_version})"
                if av != res.api_version
                else f"the kind in the data ({kind}) does not match the expected kind ({res.kind})"
            )
        check_meta_types(res, obj.get("metadata", {}))

    def check_namespace(self, res: Resource, obj: dict[str, Any], ns: str) -> None:
        meta = obj.setdefault("metadata", {})
        if res.namespaced:
            got = meta.get("namespace")
            if got and got != ns:
                raise errors.bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
            meta["namespace"] = ns
        else:
            meta.pop("namespace", None)

    async def create(self, req: Request, res: Resource, ns: str, user: UserInfo) -> Response:
        obj = await self.read_object(req, res)
        self.check_type(res, obj)
        self.check_namespace(res, obj, ns)
        warnings = self.server.fields.prune(res, obj, req.query.get("fieldValidation", ""))
        obj = res.strategy.to_storage(res, obj)
        created = await self.create_object(res, ns, obj, user, _dry_run(req.query), req.query)
        return raw_json(self.to_output(res, orjson.dumps(created)), 201, warnings)

    async def create_object(
        self, res: Resource, ns: str, obj: dict[str, Any], user: UserInfo, dry_run: bool, query: dict[str, str]
    ) -> dict[str, Any]:
        """The create path shared by POST, PUT-creates and internal callers."""
        meta = obj["metadata"]
        if meta.get("resourceVersion"):
            raise errors.bad_request("resourceVersion should not be set on objects to be created")
        generated = not meta.get("name") and meta.get("generateName")
        # a name taken by someone else: the create starts over from the request with another name
        # (the admitted object carries the old name's uid, selector labels, admission's additions)
        request = orjson.dumps(obj) if generated else None
        restart = False
        for attempt in range(8):
            if restart and request is not None:
                obj = orjson.loads(request)
                meta = obj["metadata"]
            restart = False
            if generated:
                meta["name"] = generate_name(meta["generateName"])
            name = meta.get("name", "")
            attrs = adm.Attributes(adm.CREATE, res, "", ns, name, obj, None, user, dry_run, query)
            meta["uid"] = new_uid()
            meta["creationTimestamp"] = now()
            for f in ("deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"):
                meta.pop(f, None)
            st = res.strategy
            # upstream defaults while decoding and records the writer's fields before admission:
            # what mutating admission adds then is no manager's
            st.default(obj)
            self.server.managed_fields.on_create(obj, user, query, st.has_status)
            owned = meta.get("managedFields")
            await self.server.admission.admit(attrs)
            if not isinstance(obj.get("metadata"), dict):  # a webhook's patch dropped it
                obj["metadata"] = meta
            meta = obj["metadata"]  # a webhook's patch replaces the object's parts
            st.prepare_for_create(obj)
            st.prepare_for_create_by(obj, user)
            st.default(obj)
            if st.tracks_generation:
                meta["generation"] = 1
            else:
                meta.pop("generation", None)
            _set_managed_fields(meta, owned)
            causes = await _validated(st, st.validate, obj, res.namespaced)
            if causes:
                raise errors.invalid(res.kind, name, causes, res.group)
            await self.server.admission.validate(attrs)
            side = await st.allocate(self.server, res, obj, None, dry_run)
            if dry_run:
                await st.release(self.server, side, False)
                if st.conversion_webhook is not None:
                    await self.for_storage(res, obj)  # a failing conversion fails the dry run too
                return obj
            try:
                rev = await self.store.create(res.key(ns, name), await self.for_storage(res, obj), side)
            except TxnFailed as e:
                await st.release(self.server, side, False)
                if e.side_key_taken is not None:
                    await st.on_side_key_taken(self.server, e.side_key_taken, obj)
                    continue
                if generated and attempt < 7:
                    restart = True
                    continue
                raise errors.already_exists(res.plural, name, res.group) from None
            except BaseException:
                await st.release(self.server, side, False)
                raise
            await st.release(self.server, side, True)
            meta["resourceVersion"] = str(rev)
            return obj
        raise errors.already_exists(res.plural, meta.get("name", ""), res.group)

    async def update(self, req: Request, res: Resource, ns: str, name: str, user: UserInfo) -> Response:
        return await self.replace(req, res, ns, name, user, "")

    async def replace(self, req: Request, res: Resource, ns: str, name: str, user: UserInfo, subresource: str) -> Response:
        """PUT of the object ("") or of its status ("status"): the body replaces what is stored."""
        new = await self.read_object(req, res)
        self.check_type(res, new)
        self.check_namespace(res, new, ns)
        warnings = self.server.fields.prune(res, new, req.query.get("fieldValidation", ""))
        new = res.strategy.to_storage(res, new)
        meta = new["metadata"]
        if meta.get("name", name) != name:
            raise errors.bad_request(
                f"the name of the object ({meta.get('name')}) does not match the name on the URL ({name})"
            )
        meta["name"] = name
        dry_run = _dry_run(req.query)
        precondition = meta.get("resourceVersion") or ""

        async def mutate(old: dict[str, Any]) -> dict[str, Any]:
            return _deep_copy(new)

        out, status = await self.update_object(
            res, ns, name, mutate, precondition, user, dry_run, req.query, subresource,
            create_new=None if subresource else new,  # only the object itself may be created by a PUT
        )
        return raw_json(self.to_output(res, orjson.dumps(out)), status, warnings)

    async def patch(self, req: Request, res: Resource, ns: str, name: str, user: UserInfo) -> Response:
        out, warnings, code = await self.patch_object(req, res, ns, name, user, "")
        return raw_json(self.to_output(res, orjson.dumps(out)), code, warnings)

    async def patch_object(
        self, req: Request, res: Resource, ns: str, name: str, user: UserInfo, subresource: str
    ) -> tuple[dict[str, Any], list, int]:
        """→ (object, warnings, 201 if an apply created it else 200)."""
        ct = req.content_type
        kind = PATCH_TYPES.get(ct)
        if kind is None:
            raise errors.unsupported_media_type(ct)
        if kind == "strategic" and not res.strategy.strategic_merge:
            raise errors.StatusError(415, "UnsupportedMediaType", (
                "the body of the request was in an unknown format - accepted media types include: "
                "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"))
        body = await req.body()
        dry_run = _dry_run(req.query)
        await self.server.openapi.ready()
        if kind == "apply":
            return await self.server.managed_fields.apply(self, req, res, ns, name, user, subresource, body, dry_run)
        patch_doc = decode_document(body, "application/json")
        if kind == "json":
            if not isinstance(patch_doc, list):
                raise errors.bad_request("json patch must be a JSON array of operations")
        elif not isinstance(patch_doc, dict):
            raise errors.bad_request("patch body must be a JSON object")
        precondition = ""
        if isinstance(patch_doc, dict):
            precondition = str((patch_doc.get("metadata") or {}).get("resourceVersion") or "") if isinstance(patch_doc.get("metadata"), dict) else ""
        warnings_holder: list = []

        async def mutate(old: dict[str, Any]) -> dict[str, Any]:
            current = self.obj_to_output(res, _deep_copy(old))
            if kind == "json":
                patched = json_patch(current, patch_doc)
            elif kind == "merge":
                patched = merge_patch(current, patch_doc)
            else:
                patched = strategic_merge_patch(current, patch_doc, schema_for(res.api_version, res.kind))
            if not isinstance(patched, dict):
                raise errors.bad_request("the patch must result in an object")
            self.check_type(res, patched)
            pmeta = patched.setdefault("metadata", {})
            if not isinstance(pmeta, dict):
                raise errors.bad_request("metadata must be an object")
            if pmeta.get("name") != name:
                raise errors.bad_request("the name of the object may not be changed by a patch")
            if res.namespaced and pmeta.get("namespace") != ns:
                raise errors.bad_request("the namespace of the object may not be changed by a patch")
            warnings_holder[:] = self.server.fields.prune(
                res, patched, req.query.get("fieldValidation", ""), patched=True
            )
            return res.strategy.to_storage(res, patched)

        out, _ = await self.update_object(res, ns, name, mutate, precondition, user, dry_run, req.query, subresource)
        return out, warnings_holder, 200

    async def update_object(
        self,
        res: Resource,
        ns: str,
        name: str,
        mutate,
        precondition: str,
        user: UserInfo,
        dry_run: bool,
        query: dict[str, str],
        subresource: str,
        create_new: dict[str, Any] | None = None,
        admit: bool = True,
    ) -> tuple[dict[str, Any], int]:
        """Read–mutate–write with optimistic concurrency (upstream's GuaranteedUpdate).

        With a `precondition` resourceVersion a concurrent write is a 409; without one,
        the mutation is retried on the fresh object. `admit=False`: the caller's request went
        through admission as another kind (pods/binding: the Binding), not as this update.
        """
        st = res.strategy
        key = res.key(ns, name)
        # Start from the watch cache's copy, as upstream's GuaranteedUpdate does: one etcd round
        # trip when it is current. Whenever it might be stale (a precondition or an answer that
        # depends on it), read etcd before answering; a failed transaction returns the current
        # value, which the next attempt starts from.
        hint = self._cached_kv(res, key, precondition)
        for _ in range(MAX_UPDATE_RETRIES):
            if hint is not None:
                kv, from_cache, hint = hint, True, None
            else:
                kv, from_cache = await self.store.get(key), False
            if kv is None:
                if create_new is not None and st.allow_create_on_update and not subresource:
                    obj = _deep_copy(create_new)
                    obj["metadata"].pop("resourceVersion", None)
                    return await self.create_object(res, ns, obj, user, dry_run, query), 201
                raise errors.not_found(res.plural, name, res.group)
            old = kv.decode()
            if precondition and precondition != str(kv.mod_revision):
                if from_cache:
                    continue
                raise errors.conflict(res.plural, name, errors.STALE_OBJECT, res.group)
            # an object stored at an older version is rewritten by any update, even one that changes
            # nothing at the served version (what storage version migration relies on)
            stale_version = False
            if st.conversion_webhook is not None:
                stale_version = old.get("apiVersion") != st.storage_api_version
                old = (await self.converted(res, [old], write=True))[0]
            try:
                obj = await mutate(old)
            except errors.StatusError:
                if from_cache:
                    continue  # the refusal may come from a stale copy: decide on etcd's
                raise
            meta = obj.setdefault("metadata", {})
            if not precondition and not meta.get("resourceVersion") and not st.allow_unconditional_update and create_new is not None:
                raise errors.invalid(
                    res.kind, name,
                    [errors.field_cause("metadata.resourceVersion", "must be specified for an update", "FieldValueInvalid")],
                    res.group,
                )
            if meta.get("resourceVersion") and meta["resourceVersion"] != str(kv.mod_revision):
                if from_cache:
                    continue
                raise errors.conflict(res.plural, name, errors.STALE_OBJECT, res.group)
            old_meta = old["metadata"]
            if not meta.get("uid"):
                meta["uid"] = old_meta.get("uid")
            elif meta["uid"] != old_meta.get("uid"):
                raise errors.conflict(
                    res.plural, name,
                    f"Precondition failed: UID in precondition: {meta['uid']}, UID in object meta: {old_meta.get('uid')}",
                    res.group,
                )
            _keep_system_meta(meta, old_meta)
            # the writer's fields are recorded on the object as sent (defaulted, as upstream
            # decodes it), then mutating admission sees it — what it adds is no manager's — and
            # the strategy resets what this endpoint may not change (upstream: UpdatedObject's
            # transformers, field manager first, then BeforeUpdate)
            st.default(obj)
            self.server.managed_fields.on_update(obj, old, user, query, subresource, st.has_status)
            owned = meta.get("managedFields")
            op_attrs = adm.Attributes(adm.UPDATE, res, subresource, ns, name, obj, old, user, dry_run, query)
            if admit:
                await self.server.admission.admit(op_attrs)
            obj = op_attrs.obj
            if not isinstance(obj.get("metadata"), dict):
                obj["metadata"] = meta
            _keep_system_meta(obj["metadata"], old_meta)  # whatever a webhook did to them
            # defaults before anything compares (upstream defaults while decoding, and after webhooks)
            st.default(obj)
            if subresource == "status":
                obj = st.prepare_for_status_update(obj, old)
            elif subresource in st.spec_subresources:  # e.g. pods/ephemeralcontainers: one part of the spec
                obj = st.prepare_for_subresource_update(subresource, obj, old)
            elif not subresource:
                st.prepare_for_update(obj, old)
            # binding/finalize/scale mutations are the server's own and kept as they are
            op_attrs.obj = obj
            meta = obj.setdefault("metadata", {})
            if st.tracks_generation:
                gen = old_meta.get("generation", 1)
                spec_write = subresource in ("", "scale") or subresource in st.spec_subresources
                meta["generation"] = gen + 1 if spec_write and st.spec_changed(obj, old) else gen
            else:
                meta.pop("generation", None)
            _set_managed_fields(meta, owned)
            meta["resourceVersion"] = str(kv.mod_revision)
            if subresource == "status":
                causes = await _validated(st, st.validate_status_update, obj, old)
            elif subresource in ("", "scale"):
                causes = await _validated(st, st.validate_update, obj, old, res.namespaced)
            elif subresource in st.spec_subresources:
                causes = await _validated(st, st.validate_subresource_update, subresource, obj, old, res.namespaced)
            else:
                causes = []  # binding/finalize: the server's own, already checked, mutation
            if causes:
                raise errors.invalid(res.kind, name, causes, res.group)
            if admit:
                await self.server.admission.validate(op_attrs)
            if obj == old and not stale_version:
                if from_cache:
                    continue  # "unchanged" is an answer about the current object: confirm it
                return old, 200  # nothing changed: no write, same resourceVersion (as upstream)
            if meta.get("deletionTimestamp") and not held(st, obj):
                # The last finalizer went away on a deleted object: finish the deletion.
                if dry_run:
                    return obj, 200
                try:
                    rev = await self.store.delete(key, kv.mod_revision, await st.release_side_effects(self.server, res, old))
                except TxnFailed as e:
                    if precondition:
                        raise errors.conflict(res.plural, name, errors.STALE_OBJECT, res.group) from None
                    hint = e.current
                    continue
                meta["resourceVersion"] = str(rev)
                return obj, 200
            side = await st.allocate(self.server, res, obj, old, dry_run)
            if dry_run:
                await st.release(self.server, side, False)
                if st.conversion_webhook is not None:
                    await self.for_storage(res, obj)  # a failing conversion fails the dry run too
                return obj, 200
            try:
                rev = await self.store.update(key, await self.for_storage(res, obj), kv.mod_revision, side)
            except TxnFailed as e:
                await st.release(self.server, side, False)
                if e.side_key_taken is not None:
                    await st.on_side_key_taken(self.server, e.side_key_taken, obj)
                    continue
                if precondition:
                    raise errors.conflict(res.plural, name, errors.STALE_OBJECT, res.group) from None
                hint = e.current
                continue
            except BaseException:
                await st.release(self.server, side, False)
                raise
            await st.release(self.server, side, True)
            meta["resourceVersion"] = str(rev)
            return obj, 200
        raise errors.conflict(res.plural, name, "too many concurrent updates, please retry", res.group)

    def _cached_kv(self, res: Resource, key: str, precondition: str) -> KV | None:
        """The watch cache's copy of `key` as a KV, when it can serve as a starting point."""
        cache = self.server.caches.get(res.storage_prefix)
        if cache is None or not cache.ready.is_set():
            return None
        entry = cache.get(key)
        if entry is None or (precondition and precondition != str(entry.revision)):
            return None
        return KV(key.encode(), entry.data, entry.revision, 0)

    # ==================================================================================
    # delete
    # ==================================================================================

    async def delete_options(self, req: Request) -> dict[str, Any]:
        opts: dict[str, Any] = {}
        body = await req.body()
        if body.strip():
            ct = req.content_type or "application/json"
            if ct not in BODY_TYPES:
                raise errors.unsupported_media_type(ct)
            doc = decode_document(body, ct)
            if not isinstance(doc, dict):
                raise errors.bad_request("DeleteOptions must be a JSON object")
            kind = doc.get("kind")
            if kind not in (None, "DeleteOptions"):
                raise errors.bad_request(f"expected DeleteOptions, got {kind}")
            await self.server.openapi.ready()
            # apiVersion may be any group's (meta.k8s.io/v1, apps/v1, …): the fields are the same
            body_opts = {k: v for k, v in doc.items() if k != "apiVersion"}
            self.server.fields.check("", "v1", "DeleteOptions", body_opts)
            opts.update(body_opts)
        q = req.query
        if "gracePeriodSeconds" in q:
            opts["gracePeriodSeconds"] = _int(q, "gracePeriodSeconds")
        if "propagationPolicy" in q:
            opts["propagationPolicy"] = q["propagationPolicy"]
        if "orphanDependents" in q:
            opts["orphanDependents"] = _bool(q, "orphanDependents")
        if q.get("dryRun"):
            opts["dryRun"] = ["All"] if _dry_run(q) else []
        pp = opts.get("propagationPolicy")
        if pp not in (None, "Orphan", "Background", "Foreground"):
            raise errors.invalid(
                "DeleteOptions", "",
                [errors.field_cause("propagationPolicy", f'Unsupported value: "{pp}": supported values: "Foreground", "Background", "Orphan"', "FieldValueNotSupported")],
            )
        if pp is not None and opts.get("orphanDependents") is not None:
            raise errors.invalid(
                "DeleteOptions", "",
                [errors.field_cause("propagationPolicy", "orphanDependents and deletionPropagation cannot be both set")],
            )
        gps = opts.get("gracePeriodSeconds")
        if gps is not None and (not isinstance(gps, int) or gps < 0):
            raise errors.invalid(
                "DeleteOptions", "", [errors.field_cause("gracePeriodSeconds", "must be greater than or equal to 0")]
            )
        dr = opts.get("dryRun") or []
        if any(v != "All" for v in dr):
            raise errors.bad_request(f"unsupported dry run value {dr}; only \"All\" is supported")
        return opts

    async def delete(self, req: Request, res: Resource, ns: str, name: str, user: UserInfo) -> Response:
        opts = await self.delete_options(req)
        out, deleted = await self.delete_object(res, ns, name, opts, user, req.query)
        warnings = _propagation_warnings(res, opts)
        if deleted and not res.strategy.return_deleted_object:
            status = {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Success",
                "details": {
                    "name": name,
                    "group": res.group,
                    "kind": res.plural,
                    "uid": out["metadata"].get("uid", ""),
                },
            }
            if not res.group:
                del status["details"]["group"]
            return json_response(status, 200, warnings)
        code = 202 if (not deleted and opts.get("orphanDependents") is False) else 200
        return raw_json(await self.output(res, orjson.dumps(out)), code, warnings)

    async def delete_object(
        self, res: Resource, ns: str, name: str, opts: dict[str, Any], user: UserInfo, query: dict[str, str],
        admit: bool = True,
    ) -> tuple[dict[str, Any], bool]:
        """Delete or mark for deletion → (object, deleted now?). `admit=False`: the server's own
        deletion that upstream does below admission (a custom resource definition's finalizer)."""
        st = res.strategy
        key = res.key(ns, name)
        dry_run = bool(opts.get("dryRun"))
        pre = opts.get("preconditions") or {}
        for _ in range(MAX_UPDATE_RETRIES):
            kv = await self.store.get(key)
            if kv is None:
                raise errors.not_found(res.plural, name, res.group)
            obj = kv.decode()
            meta = obj["metadata"]
            if pre.get("uid") and pre["uid"] != meta.get("uid"):
                raise errors.conflict(
                    res.plural, name,
                    f"Precondition failed: UID in precondition: {pre['uid']}, UID in object meta: {meta.get('uid')}",
                    res.group,
                )
            if pre.get("resourceVersion") and pre["resourceVersion"] != meta["resourceVersion"]:
                raise errors.conflict(
                    res.plural, name,
                    f"Precondition failed: ResourceVersion in precondition: {pre['resourceVersion']}, "
                    f"ResourceVersion in object meta: {meta['resourceVersion']}",
                    res.group,
                )
            if admit:
                seen = obj if st.conversion_webhook is None else (await self.converted(res, [obj], write=True))[0]
                attrs = adm.Attributes(adm.DELETE, res, "", ns, name, None, seen, user, dry_run, opts)
                await self.server.admission.validate(attrs)

            changed = _apply_propagation(meta, list(meta.get("finalizers") or []), opts, st.default_propagation)
            grace = st.grace_period(obj, opts.get("gracePeriodSeconds"))
            if meta.get("deletionTimestamp"):
                # A repeated delete may only shorten a pending graceful deletion.
                current = meta.get("deletionGracePeriodSeconds") or 0
                if grace < current:
                    meta["deletionGracePeriodSeconds"] = grace
                    meta["deletionTimestamp"] = _in_seconds(grace)
                    changed = True
            elif grace > 0 or meta.get("finalizers") or st.holds_deletion(obj):
                meta["deletionTimestamp"] = _in_seconds(grace)
                meta["deletionGracePeriodSeconds"] = grace
                if meta.get("generation"):
                    meta["generation"] += 1
                st.mark_deleting(obj)
                changed = True
            if held(st, obj):
                if not changed or dry_run:
                    return obj, False
                try:
                    rev = await self.store.update(key, _strip_for_storage(obj), kv.mod_revision)
                except TxnFailed:
                    continue
                meta["resourceVersion"] = str(rev)
                return obj, False
            if dry_run:
                return obj, True
            try:
                await self.store.delete(key, kv.mod_revision, await st.release_side_effects(self.server, res, obj))
            except TxnFailed:
                if pre.get("resourceVersion"):
                    raise errors.conflict(res.plural, name, errors.STALE_OBJECT, res.group) from None
                continue
            return obj, True
        raise errors.conflict(res.plural, name, "too many concurrent updates, please retry", res.group)

    async def delete_collection(self, req: Request, res: Resource, ns: str, user: UserInfo) -> Response:
        opts = await self.delete_options(req)
        ls, fs = _selectors(req.query)
        if fs is not None:
            self._check_fields(res, fs)
        cache = self.cache(res)
        await cache.sync_with_store()
        entries = cache.list(Filter(ns or None, None, ls, fs))
        items: list[bytes] = []
        sem = asyncio.Semaphore(16)

        async def one(e) -> None:
            async with sem:
                try:
                    out, _ = await self.delete_object(res, e.namespace, e.name, opts, user, req.query)
                except errors.StatusError as err:
                    if err.code == 404:
                        return
                    raise
                items.append(orjson.dumps(out if res.strategy.conversion_webhook is not None
                                          else self.obj_to_output(res, out)))

        await asyncio.gather(*(one(e) for e in entries))
        if res.strategy.conversion_webhook is not None:
            items = await self.outputs(res, items)
        out = await self.server.render_list(req, res, items, str(cache.safe_revision), "")
        out.extra_headers += _propagation_warnings(res, opts)
        return out


_META_STRINGS = ("name", "generateName", "namespace", "uid", "resourceVersion", "creationTimestamp", "deletionTimestamp")


def check_meta_types(res: Resource, meta: Any) -> None:
    """Reject metadata of the wrong JSON types with 400, as upstream's typed decoder does."""
    kind, version = res.kind, res.version

    def bad(field: str, want: str) -> errors.StatusError:
        return errors.bad_request(
            f"{kind} in version \"{version}\" cannot be handled as a {kind}: "
            f"json: cannot unmarshal into Go struct field ObjectMeta.metadata.{field} of type {want}"
        )

    if not isinstance(meta, dict):
        raise errors.bad_request(
            f"{kind} in version \"{version}\" cannot be handled as a {kind}: "
            "json: cannot unmarshal into Go struct field of type v1.ObjectMeta"
        )
    for f in _META_STRINGS:
        v = meta.get(f)
        if v is not None and not isinstance(v, str):
            raise bad(f, "string")
    for f in ("labels", "annotations"):
        v = meta.get(f)
        # null values are allowed: the schema walk makes them "" as upstream's typed decode does
        if v is not None and (not isinstance(v, dict) or not all(isinstance(x, str) or x is None for x in v.values())):
            raise bad(f, "map[string]string")
    for f in ("finalizers",):
        v = meta.get(f)
        if v is not None and (not isinstance(v, list) or not all(isinstance(x, str) or x is None for x in v)):
            raise bad(f, "[]string")
    for f in ("ownerReferences", "managedFields"):
        v = meta.get(f)
        if v is not None and (not isinstance(v, list) or not all(isinstance(x, dict) for x in v)):
            raise bad(f, "[]v1.OwnerReference" if f == "ownerReferences" else "[]v1.ManagedFieldsEntry")
    for f in ("generation", "deletionGracePeriodSeconds"):
        v = meta.get(f)
        if v is not None and (not isinstance(v, int) or isinstance(v, bool)):
            raise bad(f, "int64")


def held(st, obj: dict[str, Any]) -> bool:
    """Something keeps this object from being removed: finalizers or a grace period left."""
    meta = obj["metadata"]
    return bool(meta.get("finalizers")) or (meta.get("deletionGracePeriodSeconds") or 0) > 0 or st.holds_deletion(obj)


def _in_seconds(seconds: int) -> str:
    import datetime as dt

    from apimachinery.meta import format_time

    return format_time(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds))


def _apply_propagation(meta: dict[str, Any], finalizers: list[str], opts: dict[str, Any], default: str) -> bool:
    """Add/remove the orphan/foregroundDeletion finalizers as the policy asks; True if changed.

    Without a policy in the request, a finalizer already on the object decides, then the
    resource's default (upstream's shouldOrphanDependents/shouldDeleteDependents)."""
    policy = opts.get("propagationPolicy")
    if policy is None and opts.get("orphanDependents") is not None:
        policy = "Orphan" if opts["orphanDependents"] else "Background"
    if policy is None:
        if "orphan" in finalizers or "foregroundDeletion" in finalizers:
            return False
        policy = default
    want = {"Orphan": "orphan", "Foreground": "foregroundDeletion"}.get(policy)
    new = [f for f in finalizers if f not in ("orphan", "foregroundDeletion")]
    if want:
        new.append(want)
    if new != finalizers:
        meta["finalizers"] = new
        return True
    return False


def _propagation_warnings(res: Resource, opts: dict[str, Any]) -> list[tuple[bytes, bytes]]:
    """Upstream's warning when a DELETE without a policy falls back to a surprising default."""
    text = res.strategy.default_propagation_warning
    if text and opts.get("propagationPolicy") is None and opts.get("orphanDependents") is None:
        return [warning_header(text)]
    return []


def _encode_continue(revision: int, start: str) -> str:
    raw = orjson.dumps({"v": "meta.k8s.io/v1", "rv": revision, "start": start})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_continue(token: str) -> tuple[int, str]:
    try:
        pad = "=" * (-len(token) % 4)
        d = orjson.loads(base64.urlsafe_b64decode(token + pad))
        if d.get("v") != "meta.k8s.io/v1" or not isinstance(d.get("rv"), int) or not isinstance(d.get("start"), str):
            raise ValueError
        if ".." in d["start"] or d["start"].startswith("/"):
            raise ValueError
        return d["rv"], d["start"]
    except Exception:
        raise errors.bad_request("continue key is not valid: invalid continue token") from None


async def _one_error(e: errors.StatusError) -> AsyncIterator[bytes]:
    yield orjson.dumps({"type": "ERROR", "object": e.status()}) + b"\n"
