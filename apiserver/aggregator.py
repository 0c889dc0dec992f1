"""The aggregator: APIServices (apiregistration.k8s.io/v1) put group/versions served by extension
apiservers (metrics-server, KEDA, custom apiservers) under this apiserver, as kube-aggregator does
inside kube-apiserver.

* Requests under `/apis/<group>/<version>` of an APIService with a `service` are proxied to that
  service — after this server's authentication and authorization, like every request — with the
  front-proxy client certificate (--proxy-client-cert-file) and the user in `X-Remote-User`,
  `X-Remote-Group`, `X-Remote-Extra-*` (the extension verifies the certificate against the
  requestheader CA published in kube-system/extension-apiserver-authentication). The backend is
  verified as `<service>.<namespace>.svc` against the APIService's caBundle (or not at all with
  insecureSkipTLSVerify). An APIService that is not Available answers 503 "service unavailable".
* Availability (status condition Available): Local APIServices always; service-backed ones when the
  service exists, has an endpoint on its port, and answers a discovery GET of its group/version
  (ServiceNotFound, ServicePortError, EndpointsNotFound, MissingEndpoints, FailedDiscoveryCheck,
  Passed) — checked when APIServices, services or endpoints change, and every 30 s.
* Discovery: `/apis` lists the aggregated groups (by groupPriorityMinimum), `/apis/<group>` is
  answered from the APIServices (versions by versionPriority), aggregated discovery includes the
  resources each available extension reported at its last check.
* At start, a Local APIService for each built-in group/version this server serves (upstream's
  autoregistration, with its priorities), labelled `kube-aggregator.kubernetes.io/automanaged: onstart`;
  and one for each group/version custom resources serve (automanaged "true"), while they do.

* OpenAPI: each available extension's v3 document of its group/version (fetched at a check that
  found its discovery changed) is served in /openapi/v3, so `kubectl explain` knows its kinds.

Not done: OpenAPI v2 aggregation, websocket upgrades through the proxy; a group with both local and extension versions is shown with the extension's only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import orjson

from apimachinery import errors
from apimachinery.meta import now
from apiserver.discovery import CUSTOM_GROUP_PRIORITY, GROUP_PRIORITIES
from apiserver.http import Response, StreamResponse
from apiserver.lookup import get_object
from apiserver.registry.apiregistration import AUTOMANAGED, api_service_name, available_condition
from apiserver.resources import version_priority
from apiserver.webhookclient import CallError, WebhookCaller, describe_failure, tls_context

if TYPE_CHECKING:
    import aiohttp

    from apiserver.authn import UserInfo
    from apiserver.http import Request
    from apiserver.requestinfo import RequestInfo
    from apiserver.server import APIServer

log = logging.getLogger("apiserver.aggregator")

GROUP = "apiregistration.k8s.io"
RECHECK_EVERY = 30.0
DISCOVERY_TIMEOUT = 5.0
PROBE_ATTEMPTS = 5

#: versionPriority of the built-in group/versions (kube-apiserver's apiVersionPriorities; their
#: groupPriorityMinimum is discovery.GROUP_PRIORITIES); one not listed gets no Local APIService, as
#: upstream — metrics.k8s.io, served here too, gets none: metrics-server's chart creates its own
LOCAL_VERSION_PRIORITIES: dict[tuple[str, str], int] = {
    ("", "v1"): 1, ("apiregistration.k8s.io", "v1"): 15, ("apps", "v1"): 15, ("events.k8s.io", "v1"): 15,
    ("authentication.k8s.io", "v1"): 15, ("authorization.k8s.io", "v1"): 15, ("autoscaling", "v2"): 30,
    ("autoscaling", "v1"): 15, ("batch", "v1"): 15, ("certificates.k8s.io", "v1"): 15, ("networking.k8s.io", "v1"): 15,
    ("policy", "v1"): 15, ("rbac.authorization.k8s.io", "v1"): 15, ("storage.k8s.io", "v1"): 15,
    ("apiextensions.k8s.io", "v1"): 15, ("admissionregistration.k8s.io", "v1"): 15, ("scheduling.k8s.io", "v1"): 15,
    ("coordination.k8s.io", "v1"): 15, ("node.k8s.io", "v1"): 15, ("discovery.k8s.io", "v1"): 15,
    ("flowcontrol.apiserver.k8s.io", "v1"): 21,
}

#: request headers never passed to a backend (hop-by-hop, credentials, identities it must not trust)
DROPPED_HEADERS = frozenset({"host", "authorization", "connection", "keep-alive", "proxy-connection",
                             "transfer-encoding", "upgrade", "te", "trailer", "content-length"})
DROPPED_PREFIXES = ("impersonate-", "x-remote-")
RESPONSE_HEADERS_DROPPED = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length",
                                      "content-type", "cache-control"})


def _text(code: int, message: str) -> Response:
    return Response(code, message.encode("utf-8", "replace") + b"\n", b"text/plain; charset=utf-8")


def _condition(status: str, reason: str, message: str) -> dict[str, Any]:
    return {"type": "Available", "status": status, "reason": reason, "message": message}


def local_api_service(group: str, version: str) -> dict[str, Any] | None:
    version_priority = LOCAL_VERSION_PRIORITIES.get((group, version))
    if version_priority is None:
        return None
    priority = (GROUP_PRIORITIES[group], version_priority)
    return {
        "apiVersion": f"{GROUP}/v1", "kind": "APIService",
        "metadata": {"name": api_service_name(group, version), "labels": {AUTOMANAGED: "onstart"}},
        "spec": {"group": group, "version": version, "groupPriorityMinimum": priority[0],
                 "versionPriority": priority[1]},
    }


class Aggregator:
    def __init__(self, server: APIServer) -> None:
        self.server = server
        self.opts = server.opts
        self.resolver = WebhookCaller(server, "kube-aggregator")
        self._session: aiohttp.ClientSession | None = None
        self._contexts: dict[tuple[str, bool], ssl.SSLContext] = {}
        self._remote: dict[tuple[str, str], dict[str, Any]] = {}  # (group, version) → service-backed APIService
        self._all: list[dict[str, Any]] = []
        self._seen: Any = None
        self._dirty = True
        #: what each available extension reported at its last check: (group, version) → APIResourceList
        self.discovered: dict[tuple[str, str], dict[str, Any]] = {}
        #: bumped whenever what discovery shows of the aggregated groups changes
        self.generation = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._apiservices: Any = None  # the watch cache (looked up once)
        self._openapi: set[tuple[str, str]] = set()  # group/versions whose OpenAPI document is served here

    # -- the APIServices, from the watch cache ----------------------------------------------

    def _cache(self):  # -> WatchCache
        if self._apiservices is None:
            self._apiservices = self.server.cache_for(GROUP, "apiservices")
        return self._apiservices

    def _fresh(self) -> None:
        cache = self._cache()
        if not self._dirty and self._seen is cache.objects:
            return
        self._seen = cache.objects
        self._dirty = False
        services = [orjson.loads(e.data) for e in cache.objects.values()]
        remote = {}
        for s in services:
            spec = s.get("spec") or {}
            if spec.get("service"):
                remote[(spec.get("group") or "", spec.get("version") or "")] = s
        if remote.keys() != self._remote.keys() or [self._signature(s) for s in remote.values()] != \
                [self._signature(s) for s in self._remote.values()]:
            self.generation += 1
        self._remote, self._all = remote, services

    @staticmethod
    def _signature(s: dict[str, Any]) -> Any:
        spec = s.get("spec") or {}
        return (spec.get("groupPriorityMinimum"), spec.get("versionPriority"), spec.get("service"),
                (available_condition(s) or {}).get("status"))

    def _on_api_service(self, ev: Any) -> None:
        self._dirty = True
        # its own status writes must not start another round: only a new, gone or changed spec
        if ev.prev is None or ev.type == "DELETED" or \
                orjson.loads(ev.entry.data).get("spec") != orjson.loads(ev.prev.data).get("spec"):
            self._wake.set()

    def _on_backend_change(self, ev: Any) -> None:
        # a service or its endpoints: only those an APIService names
        if any((s["spec"]["service"].get("namespace"), s["spec"]["service"].get("name")) ==
               (ev.entry.namespace, ev.entry.name) for s in self._remote.values()):
            self._wake.set()

    def route(self, info: RequestInfo) -> dict[str, Any] | None:
        """The service-backed APIService a request goes to, if any (cheap when there is none)."""
        if info.api_prefix != "apis" or not info.version:
            return None
        cache = self._cache()
        if not cache.objects and not self._remote:
            return None
        self._fresh()
        return self._remote.get((info.group, info.version))

    # -- the proxy ------------------------------------------------------------------------------

    def _ssl(self, ca_bundle: str, insecure: bool) -> ssl.SSLContext:
        ctx = self._contexts.get((ca_bundle, insecure))
        if ctx is None:
            if insecure:
                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            else:
                ctx = tls_context(ca_bundle)
            if self.opts.proxy_client_cert_file and self.opts.proxy_client_key_file:
                try:
                    ctx.load_cert_chain(self.opts.proxy_client_cert_file, self.opts.proxy_client_key_file)
                except (OSError, ssl.SSLError) as e:
                    raise CallError(f"loading the proxy client certificate: {e}") from None
            if len(self._contexts) >= 64:  # configurations churned: start over
                self._contexts.clear()
            self._contexts[(ca_bundle, insecure)] = ctx
        return ctx

    def session(self) -> aiohttp.ClientSession:
        import aiohttp

        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0), trust_env=False, auto_decompress=False,
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=10))
        return self._session

    async def _backend(self, api_service: dict[str, Any], verify: bool = True) -> tuple[str, str, ssl.SSLContext]:
        """→ (https://host:port of a ready endpoint, the server name to verify, TLS context).
        `verify=False`: the backend's certificate is not checked (the availability probe, as upstream's)."""
        spec = api_service.get("spec") or {}
        svc = spec.get("service") or {}
        ns, name, port = str(svc.get("namespace") or ""), str(svc.get("name") or ""), int(svc.get("port") or 443)
        host, target_port = await self.resolver.resolve(ns, name, port)
        try:
            ctx = self._ssl(str(spec.get("caBundle") or "") if verify else "",
                            spec.get("insecureSkipTLSVerify") is True or not verify)
        except CallError as e:
            raise errors.service_unavailable(str(e)) from None
        from apiserver.podproxy import join_host_port

        return f"https://{join_host_port(host, str(target_port))}", f"{name}.{ns}.svc", ctx

    def _headers(self, req: Request, user: UserInfo) -> list[tuple[str, str]]:
        opts = self.opts
        # whatever header names carry identities to extensions: a client's own never pass
        names = {h.lower() for h in (*opts.requestheader_username_headers, *opts.requestheader_group_headers,
                                     *opts.requestheader_uid_headers)}
        prefixes = (*DROPPED_PREFIXES, *(p.lower() for p in opts.requestheader_extra_headers_prefix))
        headers = []
        for k, v in req.scope["headers"]:
            key = k.decode("latin-1").lower()
            if key in DROPPED_HEADERS or key in names or key.startswith(prefixes):
                continue
            headers.append((key, v.decode("latin-1")))
        headers.append((opts.requestheader_username_headers[0] if opts.requestheader_username_headers
                        else "X-Remote-User", user.name))
        if user.uid and opts.requestheader_uid_headers:
            headers.append((opts.requestheader_uid_headers[0], user.uid))
        group_header = opts.requestheader_group_headers[0] if opts.requestheader_group_headers else "X-Remote-Group"
        headers += [(group_header, g) for g in user.groups]
        prefix = (opts.requestheader_extra_headers_prefix or ["X-Remote-Extra-"])[0]
        for key, values in (user.extra or {}).items():
            for value in values:
                headers.append((prefix + quote(key, safe=""), value))
        return headers

    async def proxy(self, req: Request, api_service: dict[str, Any], user: UserInfo) -> Response | StreamResponse:
        import aiohttp

        from apiserver.podproxy import relay

        if (available_condition(api_service) or {}).get("status") != "True":
            return _text(503, "service unavailable")
        try:
            base, server_name, ctx = await self._backend(api_service)
        except errors.StatusError as e:
            log.info("aggregator: no backend for %s: %s", api_service["metadata"]["name"], e.message)
            return _text(503, "service unavailable")
        query = req.scope.get("query_string", b"").decode("latin-1")
        url = base + req.scope.get("raw_path", req.path.encode()).decode("latin-1").split("?", 1)[0] + \
            (f"?{query}" if query else "")
        body = await req.body() if req.method in ("POST", "PUT", "PATCH", "DELETE") else None
        # long-running requests (watch, follow) may wait for data; the rest get upstream's minute
        streaming = any(f"{k}=" in query for k in ("watch", "follow")) or "/watch/" in req.path
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=None if streaming else 60)
        try:
            resp = await self.session().request(
                req.method, url, data=body, headers=self._headers(req, user), allow_redirects=False,
                ssl=ctx, server_hostname=server_name, timeout=timeout)
        except (aiohttp.ClientError, OSError, TimeoutError) as e:
            log.info("aggregator: proxying to %s: %s", url, e)
            self._wake.set()  # the backend may be gone: check its availability now, not in 30 s
            return _text(503, f"Error trying to reach service: '{e}'")
        try:
            if 300 <= resp.status < 400 and resp.headers.get("Location"):
                # a redirect would send the client's credentials elsewhere (upstream's fix of CVE-2022-3172)
                resp.close()
                return _text(502, "the backend attempted to redirect this request, which is not permitted")
            out = relay(resp, req, resp.headers.get("Content-Type", "application/octet-stream").encode("latin-1"))
            out.status = resp.status
            out.extra_headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in resp.headers.items()
                                 if k.lower() not in RESPONSE_HEADERS_DROPPED]
        except (UnicodeError, ValueError):
            resp.close()
            return _text(502, "the backend answered with headers that cannot be passed on")
        out.proxied = True  # type: ignore[attr-defined]  # the backend chose its encoding: no negotiation
        return out

    # -- availability ---------------------------------------------------------------------------

    def start(self) -> None:
        self._cache().listeners.append(self._on_api_service)
        for plural in ("services", "endpoints"):
            self.server.cache_for("", plural).listeners.append(self._on_backend_change)
        self._task = asyncio.create_task(self._run(), name="aggregator")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._session is not None:
            await self._session.close()
        await self.resolver.close()

    async def register_local(self) -> None:
        """Upstream's autoregistration: a Local APIService per built-in group/version (at start)."""
        from apiserver.bootstrap import ensure

        for group, versions in self.server.table.groups.items():
            for version in versions:
                obj = local_api_service(group, version)
                if obj is not None:
                    await ensure(self.server, GROUP, "apiservices", "", obj)

    async def sync_custom_groups(self, group_versions: set[tuple[str, str]]) -> None:
        """Upstream's crdregistration controller: a Local APIService (automanaged "true", priority
        1000/100) for each group/version custom resources serve, removed when none serves it any
        more; an APIService someone else made for it is left alone."""
        from apiserver.bootstrap import SYSTEM_USER, ensure

        await self._cache().ready.wait()
        served = {(r.group, r.version) for rows in self.server.table.dynamic.values() for r in rows}
        res = self.server.resource(GROUP, "apiservices")
        for group, version in sorted(group_versions):
            name = api_service_name(group, version)
            entry = self._cache().get(res.key("", name))
            current = orjson.loads(entry.data) if entry is not None else None
            automanaged = ((current or {}).get("metadata", {}).get("labels") or {}).get(AUTOMANAGED) == "true"
            if (group, version) in served and (group, version) not in LOCAL_VERSION_PRIORITIES:
                if current is None:
                    await ensure(self.server, GROUP, "apiservices", "", {
                        "apiVersion": f"{GROUP}/v1", "kind": "APIService",
                        "metadata": {"name": name, "labels": {AUTOMANAGED: "true"}},
                        "spec": {"group": group, "version": version, "groupPriorityMinimum": CUSTOM_GROUP_PRIORITY,
                                 "versionPriority": 100}})
            elif current is not None and automanaged:
                with contextlib.suppress(errors.StatusError):
                    await self.server.api.delete_object(res, "", name, {}, SYSTEM_USER, {}, admit=False)

    async def _run(self) -> None:
        await self._cache().ready.wait()
        while True:
            self._wake.clear()
            try:
                await self.check_all()
            except asyncio.CancelledError:
                raise
            except Exception as e:  # a failed round is retried at the next change or tick
                log.warning("aggregator: checking APIServices: %s", e)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(RECHECK_EVERY):
                    await self._wake.wait()
            await asyncio.sleep(0.05)  # let a burst of changes settle into one round

    async def check_all(self) -> None:
        self._fresh()
        for gv in [gv for gv in self.discovered if gv not in self._remote]:
            self._forget(gv)  # deleted, or Local now
        services = list(self._all)
        results = await asyncio.gather(*(self.check(s) for s in services), return_exceptions=True)
        for s, result in zip(services, results, strict=True):
            if isinstance(result, BaseException):
                log.warning("aggregator: checking %s: %s", s["metadata"]["name"], result)
                continue
            await self._set_condition(s, result)

    async def check(self, api_service: dict[str, Any]) -> dict[str, Any]:
        """The Available condition this APIService has now (upstream's availability controller)."""
        spec = api_service.get("spec") or {}
        svc_ref = spec.get("service")
        gv = (spec.get("group") or "", spec.get("version") or "")
        if not svc_ref:
            return _condition("True", "Local", "Local APIServices are always available")
        ns, name, port = svc_ref.get("namespace") or "", svc_ref.get("name") or "", svc_ref.get("port") or 443
        svc = await get_object(self.server, "", "services", ns, name)
        if svc is None:
            self._forget(gv)
            return _condition("False", "ServiceNotFound", f'service/{name} in "{ns}" is not present')
        svc_spec = svc.get("spec") or {}
        if svc_spec.get("type", "ClusterIP") == "ClusterIP":  # as upstream: endpoints are checked for these only
            svc_port = next((p for p in svc_spec.get("ports") or [] if p.get("port") == port), None)
            if svc_port is None:
                self._forget(gv)
                return _condition("False", "ServicePortError", f'service/{name} in "{ns}" is not listening on port {port}')
            eps = await get_object(self.server, "", "endpoints", ns, name)
            if eps is None:
                self._forget(gv)
                return _condition("False", "EndpointsNotFound", f'cannot find endpoints for service/{name} in "{ns}"')
            port_name = svc_port.get("name") or ""
            if not any(s.get("addresses") and any((p.get("name") or "") == port_name for p in s.get("ports") or [])
                       for s in eps.get("subsets") or []):
                self._forget(gv)
                return _condition("False", "MissingEndpoints", f'endpoints for service/{name} in "{ns}" have no '
                                                               f'addresses with port name "{port_name}"')
        path = f"/apis/{gv[0]}/{gv[1]}" if gv[0] else f"/api/{gv[1]}"
        # named by the service, not the endpoint tried: the message stays the same between rounds
        shown = f"https://{name}.{ns}.svc:{port}{path}"
        # as upstream: a few attempts at once (random endpoints), any answer will do; the backend's
        # certificate is not checked here (a caBundle injected later must not fail the probe)
        results = await asyncio.gather(*(self._probe(api_service, path) for _ in range(PROBE_ATTEMPTS)))
        good = next((r for r in results if isinstance(r, bytes)), None)
        if good is None:
            self._forget(gv)
            return _condition("False", "FailedDiscoveryCheck", f"failing or missing response from {shown}: {results[0]}")
        if self._remember(gv, good) or gv not in self._openapi:
            await self._fetch_openapi(api_service, gv)
        return _condition("True", "Passed", "all checks passed")

    async def _fetch_openapi(self, api_service: dict[str, Any], gv: tuple[str, str]) -> None:
        """The extension's OpenAPI v3 document of its group/version, served here as upstream's
        aggregator merges it (so that `kubectl explain` knows the extension's kinds)."""
        path = f"/openapi/v3/apis/{gv[0]}/{gv[1]}" if gv[0] else f"/openapi/v3/api/{gv[1]}"
        body = await self._probe(api_service, path)
        if not isinstance(body, bytes):  # no document is no failure: discovery works without it
            log.info("aggregator: OpenAPI of %s/%s: %s", gv[0], gv[1], body)
            return
        try:
            orjson.loads(body)
        except orjson.JSONDecodeError:
            return
        self._openapi.add(gv)
        self.server.openapi.set_custom(path.removeprefix("/openapi/v3/"), body.decode("utf-8", "replace"))

    async def _probe(self, api_service: dict[str, Any], path: str) -> bytes | str:
        """One GET of the extension (discovery, OpenAPI): its body on a 2xx answer, else what went wrong."""
        base = ""
        try:
            base, server_name, ctx = await self._backend(api_service, verify=False)
            async with asyncio.timeout(DISCOVERY_TIMEOUT):
                # as upstream: system:masters, so that the extension's authorization always lets it through
                resp = await self.session().get(base + path, ssl=ctx, server_hostname=server_name, headers={
                    "Accept": "application/json", "X-Remote-User": "system:kube-aggregator",
                    "X-Remote-Group": "system:masters"})
                async with resp:
                    body = await resp.read()
        except errors.StatusError as e:
            return e.message
        except Exception as e:
            return describe_failure(e, base.removeprefix("https://"))
        if not 200 <= resp.status < 300:
            return f"bad status from {base}{path}: {resp.status}"
        return body

    def _remember(self, gv: tuple[str, str], body: bytes) -> bool:
        """Keep what the extension reported; → whether it changed."""
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError:
            return False
        if isinstance(doc, dict) and isinstance(doc.get("resources"), list) and self.discovered.get(gv) != doc:
            self.discovered[gv] = doc
            self.generation += 1
            return True
        return False

    def _forget(self, gv: tuple[str, str]) -> None:
        if self.discovered.pop(gv, None) is not None:
            self.generation += 1
        if gv in self._openapi:
            self._openapi.discard(gv)
            self.server.openapi.set_custom(f"apis/{gv[0]}/{gv[1]}" if gv[0] else f"api/{gv[1]}", None)

    async def _set_condition(self, api_service: dict[str, Any], cond: dict[str, Any]) -> None:
        current = available_condition(api_service) or {}
        if all(current.get(k) == cond[k] for k in ("status", "reason", "message")):
            return
        from apiserver.bootstrap import SYSTEM_USER

        cond = {**cond, "lastTransitionTime": current.get("lastTransitionTime") if
                current.get("status") == cond["status"] else now()}
        res = self.server.resource(GROUP, "apiservices")

        async def mutate(old: dict[str, Any]) -> dict[str, Any]:
            new = dict(old)
            new["metadata"] = {k: v for k, v in old["metadata"].items() if k != "resourceVersion"}
            conds = [c for c in (old.get("status") or {}).get("conditions") or [] if c.get("type") != "Available"]
            new["status"] = {**(old.get("status") or {}), "conditions": [*conds, cond]}
            return new

        try:
            await self.server.api.update_object(res, "", api_service["metadata"]["name"], mutate, "", SYSTEM_USER,
                                                False, {}, "status")
        except errors.StatusError as e:
            if e.code != 404:
                raise

    # -- discovery ------------------------------------------------------------------------------

    def remote_groups(self) -> dict[str, list[dict[str, Any]]]:
        """Groups with a service-backed APIService: group → its APIServices, best version first."""
        cache = self._cache()
        if not cache.objects and not self._remote:
            return {}
        self._fresh()
        groups: dict[str, list[dict[str, Any]]] = {}
        for (group, _version), s in self._remote.items():
            if group:
                groups.setdefault(group, []).append(s)
        for services in groups.values():
            services.sort(key=lambda s: (-(s["spec"].get("versionPriority") or 0),
                                         version_priority(s["spec"].get("version") or "")))
        return groups

    def group_priorities(self) -> dict[str, int]:
        """Each extension group's groupPriorityMinimum (the highest of its APIServices)."""
        return {group: max(s["spec"].get("groupPriorityMinimum") or 0 for s in services)
                for group, services in self.remote_groups().items()}

    def api_groups(self) -> dict[str, dict[str, Any]]:
        """Each extension group's APIGroup (its versions best first)."""
        return {group: _api_group(group, services) for group, services in self.remote_groups().items()}

    def api_group(self, group: str) -> dict[str, Any] | None:
        services = self.remote_groups().get(group)
        return _api_group(group, services) if services else None

    def aggregated_items(self) -> list[dict[str, Any]]:
        """apidiscovery v2 items for the aggregated groups, from what each extension reported."""
        items = []
        for group, services in self.remote_groups().items():
            versions = []
            for s in services:
                version = s["spec"]["version"]
                doc = self.discovered.get((group, version))
                if doc is None:  # not (yet) answering: listed as Stale, as upstream
                    versions.append({"version": version, "freshness": "Stale", "resources": []})
                    continue
                versions.append({"version": version, "freshness": "Current",
                                 "resources": _aggregated_resources(group, version, doc)})
            items.append({"metadata": {"name": group, "creationTimestamp": None}, "versions": versions})
        return items


def _api_group(group: str, services: list[dict[str, Any]]) -> dict[str, Any]:
    gvs = [{"groupVersion": f"{group}/{s['spec']['version']}", "version": s["spec"]["version"]} for s in services]
    return {"kind": "APIGroup", "apiVersion": "v1", "name": group, "versions": gvs, "preferredVersion": gvs[0]}


def _aggregated_resources(group: str, version: str, doc: dict[str, Any]) -> list[dict[str, Any]]:
    """A legacy APIResourceList as apidiscovery v2 resources (subresources under their parent)."""
    out: dict[str, dict[str, Any]] = {}
    subs: list[dict[str, Any]] = []
    for r in doc.get("resources") or []:
        if not isinstance(r, dict) or not r.get("name"):
            continue
        name = str(r["name"])
        kind = {"group": r.get("group", group), "version": r.get("version", version), "kind": r.get("kind", "")}
        if "/" in name:
            subs.append({"parent": name.split("/", 1)[0], "subresource": name.split("/", 1)[1],
                         "responseKind": kind, "verbs": list(r.get("verbs") or [])})
            continue
        entry: dict[str, Any] = {"resource": name, "responseKind": kind,
                                 "scope": "Namespaced" if r.get("namespaced") else "Cluster",
                                 "singularResource": r.get("singularName") or "", "verbs": list(r.get("verbs") or [])}
        for key in ("shortNames", "categories"):
            if r.get(key):
                entry[key] = list(r[key])
        out[name] = entry
    for s in subs:
        parent = out.get(s.pop("parent"))
        if parent is not None:
            parent.setdefault("subresources", []).append(s)
    return list(out.values())
