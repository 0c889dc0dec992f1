"""The apiserver: storage, watch caches and the request pipeline, wired together.

    authentication → priority and fairness → authorization → admission → validation → storage

`APIServer.__call__` is the ASGI entry for `/api` and `/apis`; the FastAPI app in
`apiserver.app` mounts it next to discovery, health and OpenAPI.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from apimachinery import errors
from apimachinery.metrics import Registry, process_metrics
from apiserver import admission as adm
from apiserver.admission.webhook import begin_request
from apiserver.aggregator import Aggregator
from apiserver.audit import DECISION, REASON, Auditor, LogBackend, new_audit_id
from apiserver.authn import AuthenticatorChain, ClientCertAuthenticator, TokenFileAuthenticator, UserInfo
from apiserver.authn.impersonation import impersonate
from apiserver.authz import ALLOW, AuthorizerChain, attributes_for, build_authorizers, forbidden
from apiserver.fieldschema import FieldValidator
from apiserver.flowcontrol.controller import TOO_MANY_REQUESTS, FlowControl, Seat, TooManyRequests
from apiserver.flowcontrol.maxinflight import MaxInFlight
from apiserver.handler import ResourceAPI
from apiserver.http import Request, Response, StreamResponse, raw_json, status_response
from apiserver.managedfields import REQUEST_MANAGER, ManagedFields, manager_for
from apiserver.metricsapi import Scraper
from apiserver.negotiation import negotiate
from apiserver.openapi import OpenAPI
from apiserver.registry.services import ServiceAllocators
from apiserver.requestinfo import is_long_running
from apiserver.requestinfo import parse as parse_request_info
from apiserver.resources import TABLE, Resource, ResourceTable
from apiserver.storage import EtcdStore
from apiserver.subresources import Subresources
from apiserver.tables import output_form_of
from apiserver.watchcache import WatchCache
from client.daemon import collect_periodically, tune_gc

if TYPE_CHECKING:
    from apiserver.identity import IdentityLease

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
    #: audiences API tokens must carry (default: the ServiceAccount issuer)
    api_audiences: list[str] = field(default_factory=list)
    enable_bootstrap_token_auth: bool = False
    #: longest ServiceAccount token lifetime handed out, seconds (0: no limit)
    service_account_max_token_expiration: int = 0
    service_account_extend_token_expiration: bool = True
    authorization_mode: str = "AlwaysAllow"
    service_cluster_ip_range: str = "10.96.0.0/16"
    service_node_port_range: str = "30000-32767"
    compaction_interval: float = 300.0
    admission_plugins: list[str] = field(default_factory=list)
    disable_admission_plugins: list[str] = field(default_factory=list)
    #: upstream's AdmissionConfiguration file (apiserver/admission/config.py): PodSecurity's section
    admission_control_config_file: str | None = None
    #: auditing (apiserver/audit.py): the policy, and the log backend's file ("-": stdout) and rotation
    audit_policy_file: str | None = None
    audit_log_path: str | None = None
    audit_log_maxage: int = 0
    audit_log_maxbackup: int = 0
    audit_log_maxsize: int = 0
    audit_log_compress: bool = False
    audit_log_mode: str = "blocking"
    #: how to reach kubelets for pods/log, exec, attach, portforward (apiserver/podproxy.py)
    kubelet_client_certificate: str | None = None
    kubelet_client_key: str | None = None
    kubelet_certificate_authority: str | None = None
    #: seconds between scrapes of the kubelets' /stats/summary for metrics.k8s.io (apiserver/metricsapi.py)
    metric_resolution: float = 15.0
    #: the aggregator (apiserver/aggregator.py): its client certificate towards extension apiservers,
    #: and what they are told to trust (the kube-system/extension-apiserver-authentication ConfigMap)
    proxy_client_cert_file: str | None = None
    proxy_client_key_file: str | None = None
    requestheader_client_ca_file: str | None = None
    requestheader_allowed_names: list[str] = field(default_factory=list)
    requestheader_username_headers: list[str] = field(default_factory=lambda: ["X-Remote-User"])
    requestheader_group_headers: list[str] = field(default_factory=lambda: ["X-Remote-Group"])
    requestheader_extra_headers_prefix: list[str] = field(default_factory=lambda: ["X-Remote-Extra-"])
    requestheader_uid_headers: list[str] = field(default_factory=lambda: ["X-Remote-Uid"])
    #: the server's concurrency limits, as upstream's flags: API Priority and Fairness divides their
    #: sum among the priority levels; without it each limits its kind of request (0: no limit)
    max_requests_inflight: int = 400
    max_mutating_requests_inflight: int = 200
    enable_priority_and_fairness: bool = True


class APIServer:
    def __init__(self, opts: Options, table: ResourceTable = TABLE) -> None:
        self.opts = opts
        self.table = table.copy()  # custom resources add rows to this server's own copy
        self.store = EtcdStore(
            opts.etcd_servers.split(",")[0],
            ca_file=opts.etcd_cafile,
            cert_file=opts.etcd_certfile,
            key_file=opts.etcd_keyfile,
        )
        self.caches: dict[str, WatchCache] = {}
        for res in table.resources:
            if getattr(res.strategy, "virtual", False):
                continue  # reviews: answered, never stored
            if res.storage_prefix not in self.caches:
                self.caches[res.storage_prefix] = WatchCache(
                    self.store, res.storage_prefix, res.namespaced, self._fields_fn(res)
                )
        self.store.on_write = self._expect_event
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
        # requests being served, counted by the seats of apiserver.flowcontrol (long-running ones not,
        # a watch while it is set up)
        self.inflight = {"readOnly": 0, "mutating": 0}
        self.metrics.gauge(
            "apiserver_current_inflight_requests",
            "Requests being served per request kind (readOnly, mutating); long-running ones not counted.",
            ("request_kind",),
            fn=lambda: {(kind,): n for kind, n in self.inflight.items()},
        )
        self.flowcontrol: FlowControl | MaxInFlight = (
            FlowControl(self, opts.max_requests_inflight + opts.max_mutating_requests_inflight)
            if opts.enable_priority_and_fairness
            else MaxInFlight(self, opts.max_requests_inflight, opts.max_mutating_requests_inflight))
        self.metrics.gauge(
            "apiserver_registered_watchers", "Number of currently registered watchers for a given resource",
            ("group", "version", "kind"), fn=self._watcher_counts,
        )
        self.openapi = OpenAPI(table, start=True)
        self.api = ResourceAPI(self)
        self.subresources = Subresources(self)
        from apiserver.podproxy import PodProxy

        self.podproxy = PodProxy(self)
        from apiserver.proxy import ProxySubresource

        self.proxy = ProxySubresource(self)  # nodes/pods/services .../proxy/<path>
        self.conversion_caller: Any = None  # CRD conversion webhooks' client (made on first use)
        self.aggregator = Aggregator(self)  # APIServices backed by extension apiservers
        self.metrics_scraper = Scraper(self)  # started by the first metrics.k8s.io request
        self.fields = FieldValidator(self.openapi.schema)
        self.managed_fields = ManagedFields()
        self.audit = make_auditor(opts)
        from apiserver.crd.controller import CRDController

        self.crds = CRDController(self)
        self._security()
        self._tasks: list[asyncio.Task[Any]] = []
        self._etcd_ok = False
        self._etcd_checked = 0.0

    def _expect_event(self, key: bytes, revision: int) -> None:
        """Tell the cache of `key`'s resource that an event at `revision` is due (our own write)."""
        parts = key.split(b"/", 4)  # b"", b"registry", <plural or group>, <namespace, name or plural>, …
        if len(parts) < 4:
            return
        cache = self.caches.get(f"/registry/{parts[2].decode()}/")
        if cache is None:  # custom resources: /registry/<group>/<plural>/
            cache = self.caches.get(f"/registry/{parts[2].decode()}/{parts[3].decode()}/")
        if cache is not None:
            cache.expect(revision)

    def _watcher_counts(self) -> dict[tuple[str, ...], float]:
        """Open watches per stored resource (a shared storage counts under its first kind)."""
        counts: dict[tuple[str, ...], float] = {}
        seen: set[str] = set()
        for res in self.table.resources:
            cache = self.caches.get(res.storage_prefix)
            if cache is None or res.storage_prefix in seen:
                continue
            seen.add(res.storage_prefix)
            counts[(res.group, res.version, res.kind)] = len(cache.watchers)
        return counts

    def _security(self) -> None:
        """Build the authentication, authorization and admission chains and what feeds them."""
        from apiserver.admission.resourcequota import QuotaAccounting
        from apiserver.authn.bootstrap import BootstrapTokenAuthenticator
        from apiserver.authn.jwt import Signer, Verifier, load_private_key, load_public_keys
        from apiserver.authn.serviceaccount import ServiceAccountAuthenticator, TokenIssuer
        from apiserver.authz.rbac import ClusterRoleAggregator, RBACIndex
        from apiserver.lookup import get_object

        opts = self.opts
        audiences = list(opts.api_audiences) or [opts.service_account_issuer]

        async def getter(group: str, plural: str, ns: str, name: str) -> dict[str, Any] | None:
            return await get_object(self, group, plural, ns, name)

        authenticators: list[Any] = [ClientCertAuthenticator()]
        if opts.token_auth_file:
            authenticators.append(TokenFileAuthenticator(opts.token_auth_file))
        verifying_keys = opts.service_account_key_file or opts.service_account_signing_key_file
        if verifying_keys:
            authenticators.append(ServiceAccountAuthenticator(
                Verifier(load_public_keys(verifying_keys)), [opts.service_account_issuer], audiences, getter))
        if opts.enable_bootstrap_token_auth:
            authenticators.append(BootstrapTokenAuthenticator(getter))
        self.authn = AuthenticatorChain(authenticators, anonymous=opts.anonymous_auth, api_audiences=audiences)
        self.token_issuer = (TokenIssuer(Signer(load_private_key(opts.service_account_signing_key_file)),
                                         opts.service_account_issuer)
                             if opts.service_account_signing_key_file else None)
        self.rbac = RBACIndex(self)
        self.rbac_aggregator = ClusterRoleAggregator(self, self.rbac)
        self.quota = QuotaAccounting(self)
        self.authz = AuthorizerChain(build_authorizers(self, opts.authorization_mode))
        self.admission = adm.Chain(self._admission_plugins())

    def _fields_fn(self, res: Resource):
        return lambda obj: self.api.field_set(res, obj)

    def _admission_plugins(self) -> list[adm.Plugin]:
        from apiserver.admission.plugins import default_plugins

        return default_plugins(self)

    def resource(self, group: str, plural: str) -> Resource:
        r = self.table.by_plural(group, plural)
        if r is None:
            raise KeyError(f"{plural}.{group}")
        return r

    def cache_for(self, group: str, plural: str) -> WatchCache:
        return self.caches[self.resource(group, plural).storage_prefix]

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        self.store.connect()
        for c in self.caches.values():
            c.start()
        self.crds.start()
        self.aggregator.start()
        self.flowcontrol.start()
        self._tasks.append(asyncio.create_task(self._bootstrap(), name="bootstrap"))
        self._tasks.append(asyncio.create_task(self._compactor(), name="compactor"))

    async def stop(self) -> None:
        if self.identity is not None:  # a graceful stop: this apiserver serves no more
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.identity.delete(), 2.0)
        for background in (self.rbac_aggregator, self.quota, self.crds, self.flowcontrol):
            await background.stop()
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        await self.podproxy.close()  # after the tasks: the metrics scraper uses its kubelet connections
        await self.proxy.close()
        await self.aggregator.close()
        if self.conversion_caller is not None:
            await self.conversion_caller.close()
        for plugin in self.admission.plugins:
            await plugin.close()
        for c in self.caches.values():
            await c.stop()
        await self.store.close()
        self.audit.close()

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
                break
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.warning("bootstrap: %s; retrying", e)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5)
        # The watch caches and indexes are loaded: keep them out of the cyclic collector.
        for c in self.caches.values():
            await c.ready.wait()
        tune_gc()
        self._gc_stop = asyncio.Event()
        self._tasks.append(asyncio.create_task(collect_periodically(self._gc_stop), name="gc"))
        from apiserver import identity

        self.identity = identity.IdentityLease(self)
        self._tasks.append(asyncio.create_task(self.identity.run(), name="identity lease"))
        self._tasks.append(asyncio.create_task(identity.collect_periodically(self), name="identity lease gc"))
        from apiserver.flowcontrol.ensurer import Ensurer

        self._tasks.append(asyncio.create_task(Ensurer(self).run(), name="apf configuration"))

    bootstrapped = False
    shutting_down = False
    identity: IdentityLease | None = None

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
        form = output_form_of(req)
        if form is None:
            return raw_json(data)
        if form.as_kind == "PartialObjectMetadataList":
            raise errors.not_acceptable("you requested PartialObjectMetadataList, but the requested object is not a list")
        obj = orjson.loads(data)
        return Response(200, orjson.dumps(form.one(res, obj, obj["metadata"].get("resourceVersion", ""))),
                        form.content_type)

    async def render_list(self, req: Request, res: Resource, items: list[bytes], rv: str, cont: str,
                          remaining: int | None = None) -> Response:
        form = output_form_of(req)
        if form is not None:
            if form.as_kind == "PartialObjectMetadata":
                raise errors.not_acceptable("you requested PartialObjectMetadata, but the requested object is a list")
            many = form.many(res, [orjson.loads(i) for i in items], rv, cont)
            if remaining is not None:
                many["metadata"]["remainingItemCount"] = remaining
            return Response(200, orjson.dumps(many), form.content_type)
        meta: dict[str, Any] = {"resourceVersion": rv}
        if cont:
            meta["continue"] = cont
        if remaining is not None:
            meta["remainingItemCount"] = remaining
        head = orjson.dumps({"kind": res.list_kind, "apiVersion": res.api_version, "metadata": meta})
        return raw_json(head[:-1] + b',"items":[' + b",".join(items) + b"]}")

    # -- the pipeline -------------------------------------------------------------------

    async def authenticate(self, req: Request) -> UserInfo:
        """Who the request acts as: the authenticated user, or whom it may impersonate."""
        real = await self.authn.authenticate(req)
        try:
            user = await impersonate(real, req.scope["headers"], self.authz.authorize)
        except errors.StatusError:
            req.user = real  # the audit event names who was refused
            raise
        if user is not real:
            req.scope["minik8s.impersonator"] = real  # the audit log names both
        return user

    async def handle(self, scope: dict[str, Any], receive: Any, send: Any, inner: Any) -> None:
        """Authenticate, classify (API Priority and Fairness) and authorize every request; serve
        resources, pass the rest to `inner`."""
        if scope["type"] == "websocket":
            await self.handle_websocket(scope, receive, send)
            return
        if scope["type"] != "http" or scope["path"] in UNAUTHENTICATED_PATHS:
            await inner(scope, receive, send)
            return
        started = time.perf_counter()
        received = time.time()
        req = Request(scope, receive)
        audit_id = scope["minik8s.audit_id"] = new_audit_id(req)
        audit_header = (b"audit-id", audit_id.encode("latin-1"))  # upstream's Audit-Id, on every answer
        info = None
        resp: Response | StreamResponse | None = None
        status = 200
        notes = begin_request()  # admission webhooks' warnings and audit annotations
        seat: Seat | None = None
        audit = None  # this request's audit (None: not audited)
        began = not self.audit.enabled
        answer_status: dict[str, Any] | None = None  # a Status answer, for the audit event
        answer_body: bytes | None = None
        panic: str | None = None
        try:
            try:
                req.user = user = await self.authenticate(req)
                REQUEST_MANAGER.set(manager_for(req.query, req.header(b"user-agent")))
                info = parse_request_info(req.method, req.path, req.query)
                if not began:
                    began = True
                    audit = self.audit.begin(req, info, received)
                seat = await self.flowcontrol.admit(user, info, req.disconnected)  # held while served
                attrs = attributes_for(user, info, req.query)
                decision, reason = await self.authz.decide(attrs)
                if audit is not None:  # as upstream's authorization filter annotates the event
                    notes.annotate(DECISION, "allow" if decision == ALLOW else "forbid")
                    notes.annotate(REASON, reason)
                if decision != ALLOW:
                    raise forbidden(attrs, reason)
                backend = self.aggregator.route(info)
                if backend is not None:
                    resp = await self.aggregator.proxy(req, backend, user)
                elif info.is_resource:
                    resp = await self.api.serve(req, info, user)
            except TooManyRequests as e:  # upstream's answer: plain text, not a Status
                resp = Response(429, TOO_MANY_REQUESTS, b"text/plain; charset=utf-8",
                                [(b"x-content-type-options", b"nosniff"), *e.headers])
            except errors.StatusError as e:
                resp = status_response(e)
                answer_status = e.status()
            except asyncio.CancelledError:
                # uvicorn cancels what still runs when its graceful shutdown times out (etcd hung): a
                # Status rather than its bare 500 and a traceback. A write may have reached etcd.
                resp = status_response(errors.service_unavailable(
                    "the apiserver is shutting down: the request did not complete and may or may not have taken effect"))
            except RecursionError:
                # only input nested deeper than any object (about 900 levels, under the JSON decoder's
                # 1024) gets our recursive walkers (patch, prune, validation) here
                resp = status_response(errors.bad_request("the request body is nested too deeply"))
            except Exception as e:  # never a traceback to the client
                log.exception("internal error serving %s %s", req.method, req.path)
                resp = status_response(errors.internal(f"{type(e).__name__}: {e}"))
                panic = f"{type(e).__name__}: {e}"
            if not began:  # refused before it was known who asks or what (authentication): audited now
                began = True
                audit = self.audit.begin(req, info, received)
            pf_headers = seat.headers if seat is not None else []
            if resp is None:
                codes: list[int] = []

                async def spy(message: dict[str, Any]) -> None:
                    if message["type"] == "http.response.start":
                        codes.append(message["status"])
                        message = {**message, "headers": [*message.get("headers", ()), audit_header, *pf_headers]}
                    await send(message)

                await inner(scope, req.replay(), spy)
                status = codes[0] if codes else 0
            else:
                if seat is not None:  # served: a stream (a watch) goes on without the seat
                    seat.release()
                answer_body = getattr(resp, "body", None)  # (JSON: before content negotiation)
                if not getattr(resp, "proxied", False):  # an extension apiserver's answer is encoded as it chose
                    resp = negotiate(req, resp)  # protobuf where the client asks for it (apiserver/negotiation.py)
                resp.extra_headers = [*resp.extra_headers, audit_header, *notes.headers(), *pf_headers]
                if audit is not None and info is not None and is_long_running(info):
                    await resp(_started_then(send, audit))
                else:
                    await resp(send)
                status = resp.status
        finally:
            if seat is not None:
                seat.release()
        elapsed = time.perf_counter() - started
        if audit is not None:
            audit.complete(status, answer_status, answer_body, notes.annotations, panic)
        if info is not None and info.is_resource:
            self.request_total.inc(info.verb, info.group, info.resource, info.subresource, str(status))
            if info.verb != "watch":
                self.request_seconds.observe(elapsed, info.verb, info.group, info.resource)

    async def handle_websocket(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Websockets: pods/<name>/exec|attach|portforward only (kubectl's streaming), relayed to
        the kubelet after authentication and authorization (get, and create as upstream ≥ 1.35)."""
        from apiserver.podproxy import not_a_pod_stream, reject

        received = time.time()
        req = Request({**scope, "method": "GET"}, receive)
        scope["minik8s.audit_id"] = req.scope["minik8s.audit_id"] = new_audit_id(req)
        info = None
        status = 101
        audit = None
        answer_status: dict[str, Any] | None = None
        panic: str | None = None
        notes = begin_request()
        try:
            req.user = user = await self.authenticate(req)
            info = parse_request_info("GET", req.path, req.query)
            audit = self.audit.begin(req, info, received)
            if not_a_pod_stream(info):
                raise errors.route_not_found()
            for method in ("GET", "POST"):
                attrs = attributes_for(user, parse_request_info(method, req.path, req.query), req.query)
                decision, reason = await self.authz.decide(attrs)
                if audit is not None:
                    notes.annotate(DECISION, "allow" if decision == ALLOW else "forbid")
                    notes.annotate(REASON, reason)
                if decision != ALLOW:
                    raise forbidden(attrs, reason)
            # ResponseStarted when the answer's head really goes out: a 101 on the protocol switch,
            # or whatever the kubelet's refusal or a missing pod makes it
            status = await self.podproxy.websocket(scope, receive, _started_then(send, audit) if audit else send,
                                                   info, info.namespace, user)
        except errors.StatusError as e:
            await receive()  # the websocket.connect event
            await reject(scope, send, e)
            status = e.code
            answer_status = e.status()
        except Exception as e:
            log.exception("internal error serving websocket %s", req.path)
            with contextlib.suppress(Exception):
                await reject(scope, send, errors.internal(f"{type(e).__name__}: {e}"))
            status = 500
            panic = f"{type(e).__name__}: {e}"
        if audit is None and info is None:  # refused before it was known who asks
            audit = self.audit.begin(req, info, received)
        if audit is not None:
            audit.complete(status, answer_status, None, notes.annotations, panic)
        if info is not None and info.is_resource:
            self.request_total.inc(info.verb, info.group, info.resource, info.subresource, str(status))


def _started_then(send: Any, audit: Any) -> Any:
    """`send`, telling the audit of a long-running request when its response head goes out (an
    HTTP answer, a websocket's accept — the 101 — or its refusal)."""
    async def send_audited(message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind in ("http.response.start", "websocket.http.response.start"):
            audit.started(message["status"])
        elif kind == "websocket.accept":
            audit.started(101)
        await send(message)

    return send_audited


def make_auditor(opts: Options) -> Auditor:
    """The policy and log backend the options name (no policy or no log: nothing is audited, as
    upstream). A policy that cannot be loaded raises `PolicyError`."""
    from apiserver.auditpolicy import load_policy_file

    policy = load_policy_file(opts.audit_policy_file) if opts.audit_policy_file else None
    backend = None
    if policy is not None and opts.audit_log_path:
        backend = LogBackend(opts.audit_log_path, max_age=opts.audit_log_maxage, max_backups=opts.audit_log_maxbackup,
                             max_size=opts.audit_log_maxsize, compress=opts.audit_log_compress, mode=opts.audit_log_mode)
    return Auditor(policy, backend)


#: Health endpoints answer without credentials so that probes work (upstream's
#: anonymous-auth for health endpoints); everything else needs authentication.
UNAUTHENTICATED_PATHS = frozenset({"/healthz", "/livez", "/readyz"})
