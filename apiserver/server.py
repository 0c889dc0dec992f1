"""The apiserver: storage, watch caches and the request pipeline, wired together.

    authentication → authorization → admission → validation → storage

`APIServer.__call__` is the ASGI entry for `/api` and `/apis`; the FastAPI app in
`apiserver.app` mounts it next to discovery, health and OpenAPI.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from apimachinery import errors
from apimachinery.metrics import Registry, process_metrics
from apiserver import admission as adm
from apiserver.audit import AuditLog
from apiserver.authn import AuthenticatorChain, ClientCertAuthenticator, TokenFileAuthenticator
from apiserver.authz import AlwaysAllow, AuthorizerChain, AuthzAttributes
from apiserver.fieldschema import FieldValidator
from apiserver.handler import ResourceAPI
from apiserver.http import Request, Response, StreamResponse, raw_json, status_response
from apiserver.managedfields import ManagedFields
from apiserver.negotiation import negotiate
from apiserver.openapi import OpenAPI
from apiserver.registry.services import ServiceAllocators
from apiserver.requestinfo import parse as parse_request_info
from apiserver.resources import TABLE, Resource, ResourceTable
from apiserver.storage import EtcdStore
from apiserver.subresources import Subresources
from apiserver.watchcache import WatchCache

log = logging.getLogger("apiserver")

SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


@dataclass
class Options:
    etcd_servers: str = "http://127.0.0.1:2379"
    etcd_cafile: str | None = None
    etcd_certfile: str | None = None
    etcd_keyfile: str | None = None
    bind_address: str = "127.0.0.1"
    advertise_address: str = "127.0.0.1"
    secure_port: int = 6443
    tls_cert_file: str | None = None
    tls_private_key_file: str | None = None
    client_ca_file: str | None = None
    token_auth_file: str | None = None
    service_account_key_file: str | None = None
    service_account_signing_key_file: str | None = None
    service_account_issuer: str = "https://kubernetes.default.svc.cluster.local"
    anonymous_auth: bool = False
    authorization_mode: str = "AlwaysAllow"
    service_cluster_ip_range: str = "10.96.0.0/16"
    service_node_port_range: str = "30000-32767"
    compaction_interval: float = 300.0
    admission_plugins: list[str] = field(default_factory=list)
    audit_log_path: str | None = None


class APIServer:
    def __init__(self, opts: Options, table: ResourceTable = TABLE) -> None:
        self.opts = opts
        self.table = table
        self.store = EtcdStore(
            opts.etcd_servers.split(",")[0],
            ca_file=opts.etcd_cafile,
            cert_file=opts.etcd_certfile,
            key_file=opts.etcd_keyfile,
        )
        self.caches: dict[str, WatchCache] = {}
        for res in table.resources:
            if res.storage_prefix not in self.caches:
                self.caches[res.storage_prefix] = WatchCache(
                    self.store, res.storage_prefix, res.namespaced, self._fields_fn(res)
                )
        self.service_allocators = ServiceAllocators(opts.service_cluster_ip_range, opts.service_node_port_range)
        self.metrics = Registry()
        process_metrics(self.metrics)
        self.request_total = self.metrics.counter(
            "apiserver_request_total", "Counter of apiserver requests by verb, resource and HTTP code.",
            ("verb", "group", "resource", "subresource", "code"),
        )
        self.request_seconds = self.metrics.histogram(
            "apiserver_request_duration_seconds", "Response latency distribution by verb and resource.",
            ("verb", "group", "resource"),
        )
        self.openapi = OpenAPI(table, start=True)
        self.api = ResourceAPI(self)
        self.subresources = Subresources(self)
        self.fields = FieldValidator(self.openapi.schema)
        self.managed_fields = ManagedFields()
        self.audit = AuditLog(opts.audit_log_path)
        authenticators: list[Any] = [ClientCertAuthenticator()]
        if opts.token_auth_file:
            authenticators.append(TokenFileAuthenticator(opts.token_auth_file))
        self.authn = AuthenticatorChain(authenticators, anonymous=opts.anonymous_auth)
        self.authz = AuthorizerChain([AlwaysAllow()])
        self.admission = adm.Chain(self._admission_plugins())
        self._tasks: list[asyncio.Task[Any]] = []
        self._etcd_ok = False
        self._etcd_checked = 0.0

    def _fields_fn(self, res: Resource):
        return lambda obj: self.api.field_set(res, obj)

    def _admission_plugins(self) -> list[adm.Plugin]:
        from apiserver.admission.plugins import default_plugins

        return default_plugins(self)

    def resource(self, group: str, plural: str) -> Resource:
        for r in self.table.resources:
            if r.group == group and r.plural == plural:
                return r
        raise KeyError(f"{plural}.{group}")

    def cache_for(self, group: str, plural: str) -> WatchCache:
        return self.caches[self.resource(group, plural).storage_prefix]

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        self.store.connect()
        for c in self.caches.values():
            c.start()
        self._tasks.append(asyncio.create_task(self._bootstrap(), name="bootstrap"))
        self._tasks.append(asyncio.create_task(self._compactor(), name="compactor"))

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        for c in self.caches.values():
            await c.stop()
        await self.store.close()

    def close_watches(self) -> None:
        """End every open watch (clients resume from their last resourceVersion)."""
        for c in self.caches.values():
            for w in list(c.watchers):
                c.unwatch(w)

    async def _bootstrap(self) -> None:
        """Create the system namespaces and the `kubernetes` service, retrying while etcd is down."""
        from apiserver.bootstrap import bootstrap

        delay = 0.2
        while True:
            try:
                await bootstrap(self)
                self.bootstrapped = True
                return
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.warning("bootstrap: %s; retrying", e)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5)

    bootstrapped = False

    async def _compactor(self) -> None:
        """Compact etcd history older than one interval, as upstream's apiserver does."""
        last = 0
        while True:
            await asyncio.sleep(self.opts.compaction_interval)
            try:
                rev = await self.store.current_revision()
                if last:
                    await self.store.compact(last)
                last = rev
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.warning("compaction failed: %s", e)

    async def etcd_healthy(self) -> bool:
        now = time.monotonic()
        if now - self._etcd_checked > 1.0:
            self._etcd_ok = await self.store.healthy()
            self._etcd_checked = now
        return self._etcd_ok

    # -- responses ----------------------------------------------------------------------

    async def render(self, req: Request, res: Resource, data: bytes, single: bool) -> Response:
        return raw_json(data)

    async def render_list(self, req: Request, res: Resource, items: list[bytes], rv: str, cont: str) -> Response:
        meta: dict[str, Any] = {"resourceVersion": rv}
        if cont:
            meta["continue"] = cont
        head = orjson.dumps({"kind": res.list_kind, "apiVersion": res.api_version, "metadata": meta})
        return raw_json(head[:-1] + b',"items":[' + b",".join(items) + b"]}")

    # -- the pipeline -------------------------------------------------------------------

    async def handle(self, scope: dict[str, Any], receive: Any, send: Any, inner: Any) -> None:
        """Authenticate and authorize every request; serve resources, pass the rest to `inner`."""
        if scope["type"] != "http" or scope["path"] in UNAUTHENTICATED_PATHS:
            await inner(scope, receive, send)
            return
        started = time.perf_counter()
        req = Request(scope, receive)
        info = None
        resp: Response | StreamResponse | None = None
        status = 200
        try:
            req.user = user = await self.authn.authenticate(req)
            info = parse_request_info(req.method, req.path, req.query)
            await self.authz.authorize(
                AuthzAttributes(
                    user, info.verb, info.is_resource, info.group, info.version, info.namespace,
                    info.resource, info.subresource, info.name, req.path,
                )
            )
            if info.is_resource:
                resp = await self.api.serve(req, info, user)
        except errors.StatusError as e:
            resp = status_response(e)
        except Exception as e:  # never a traceback to the client
            log.exception("internal error serving %s %s", req.method, req.path)
            resp = status_response(errors.internal(f"{type(e).__name__}: {e}"))
        if resp is None:
            scope["minik8s.user"] = req.user
            codes: list[int] = []

            async def spy(message: dict[str, Any]) -> None:
                if message["type"] == "http.response.start":
                    codes.append(message["status"])
                await send(message)

            await inner(scope, receive, spy)
            status = codes[0] if codes else 0
        else:
            resp = negotiate(req, resp)  # protobuf for clients accepting only protobuf
            await resp(send)
            status = resp.status
        elapsed = time.perf_counter() - started
        self.audit.record(req, info, status, elapsed)
        if info is not None and info.is_resource:
            self.request_total.inc(info.verb, info.group, info.resource, info.subresource, str(status))
            if info.verb != "watch":
                self.request_seconds.observe(elapsed, info.verb, info.group, info.resource)


#: Health endpoints answer without credentials so that probes work (upstream's
#: anonymous-auth for health endpoints); everything else needs authentication.
UNAUTHENTICATED_PATHS = frozenset({"/healthz", "/livez", "/readyz"})
