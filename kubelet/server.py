"""The kubelet's HTTPS API (port 10250): container logs, exec, attach, port-forward, stats.

Upstream's paths:
    GET  /containerLogs/{namespace}/{pod}/{container}?follow&tailLines&sinceSeconds&sinceTime&timestamps&limitBytes&previous
    GET  /exec/{namespace}/{pod}[/{uid}]/{container}?command=...&stdin&stdout&stderr&tty    (websocket)
    GET  /attach/{namespace}/{pod}[/{uid}]/{container}?stdin&stdout&stderr&tty            (websocket)
    GET  /portForward/{namespace}/{pod}[/{uid}][?ports=...]                                 (websocket)
    GET  /stats/summary, /pods, /runningpods/, /healthz, /metrics, /metrics/resource, /metrics/cadvisor,
         /configz, /logs/
Every request is authenticated (client certificate or TokenReview) and authorized with a
SubjectAccessReview on nodes/<subresource> (see kubelet.auth).
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
import time
from typing import TYPE_CHECKING, Any

import aiohttp
import grpc
import orjson
from aiohttp import web

from apimachinery.meta import parse_time
from kubelet import logs as logfiles
from kubelet import resourcemetrics
from kubelet.auth import KubeletAuth, subresource_for, verb_for
from kubelet.cri import CRIError
from kubelet.runtime import ContainerInfo
from kubelet.stats import StatsProvider
from kubelet.streaming import (
    TUNNEL_PROTOCOL,
    StreamOptions,
    serve_exec,
    serve_portforward_tunnel,
    serve_portforward_websocket,
)

if TYPE_CHECKING:
    from apimachinery.metrics import Registry
    from kubelet.kubelet import Kubelet

log = logging.getLogger("kubelet.server")
SYSTEM_LOG_DIR = "/var/log"


def status_error(code: int, reason: str, message: str) -> web.Response:
    body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
            "reason": reason, "code": code}
    return web.Response(status=code, body=orjson.dumps(body), content_type="application/json")


def stream_error(code: int, message: str) -> web.Response:
    """Upstream's kubelet refuses exec/attach/port-forward with plain text (go-restful's
    WriteError, streaming.WriteError), not a Status: clients show it as is, kubectl as
    `unable to upgrade connection: <text>`; the apiserver passes it through untouched."""
    return web.Response(status=code, text=message, content_type="text/plain")


def cri_stream_error(e: CRIError) -> web.Response:
    """A failed CRI Exec/Attach/PortForward as streaming.WriteError answers it: 404 for
    NotFound, 429 for ResourceExhausted, else 500, with the gRPC error's text."""
    code = {grpc.StatusCode.NOT_FOUND: 404, grpc.StatusCode.RESOURCE_EXHAUSTED: 429}.get(e.code, 500)
    go_code = "".join(word.capitalize() for word in e.code.name.split("_"))  # NOT_FOUND → NotFound
    return stream_error(code, f"rpc error: code = {go_code} desc = {e.message}")


def _flag(value: str | None) -> bool:
    return (value or "").lower() in ("1", "true", "yes")


def _is_websocket(request: web.Request) -> bool:
    return request.headers.get("Upgrade", "").lower() == "websocket"


class KubeletServer:
    def __init__(self, kubelet: Kubelet, auth: KubeletAuth, registry: Registry | None = None) -> None:
        self.kubelet = kubelet
        self.auth = auth
        self.registry = registry
        self.stats = StatsProvider(kubelet)
        self._runner: web.AppRunner | None = None
        self._ssl: ssl.SSLContext | None = None
        self._session: aiohttp.ClientSession | None = None

    # -- the app -------------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._authn_authz])
        r = app.router
        r.add_get("/healthz", self.healthz)
        r.add_get("/pods", self.pods)
        r.add_get("/runningpods/", self.running_pods)
        r.add_get("/stats/summary", self.summary)
        r.add_get("/metrics", self.metrics)
        r.add_get("/metrics/resource", self.resource_metrics)
        r.add_get("/metrics/cadvisor", self.cadvisor_metrics)
        r.add_get("/configz", self.configz)
        if os.path.isdir(SYSTEM_LOG_DIR):
            # upstream's system log handler: the node's /var/log, listings and files (nodes/log)
            r.add_static("/logs/", SYSTEM_LOG_DIR, show_index=True, follow_symlinks=False)
        r.add_get("/containerLogs/{namespace}/{pod}/{container}", self.container_logs)
        for verb in ("exec", "attach"):
            for path in (f"/{verb}/{{namespace}}/{{pod}}/{{container}}", f"/{verb}/{{namespace}}/{{pod}}/{{uid}}/{{container}}"):
                r.add_route("GET", path, self.exec_attach)
                r.add_route("POST", path, self.exec_attach)
        for path in ("/portForward/{namespace}/{pod}", "/portForward/{namespace}/{pod}/{uid}"):
            r.add_route("GET", path, self.port_forward)
            r.add_route("POST", path, self.port_forward)
        return app

    @web.middleware
    async def _authn_authz(self, request: web.Request, handler: Any) -> web.StreamResponse:
        peercert = request.transport.get_extra_info("peercert") if request.transport else None
        user = await self.auth.authenticate(peercert, request.headers.get("Authorization", ""))
        if user is None:
            return status_error(401, "Unauthorized", "Unauthorized")
        verb = verb_for(request.method, request.path, _is_websocket(request))
        subresource = subresource_for(request.path)
        allowed, reason = await self.auth.authorize(user, verb, subresource)
        if not allowed:
            message = (f'Forbidden (user={user.name}, verb={verb}, resource=nodes, subresource={subresource})'
                       + (f": {reason}" if reason else ""))
            return status_error(403, "Forbidden", message)
        return await handler(request)

    @property
    def started(self) -> bool:
        return self._ssl is not None

    def reload_certificate(self, cert: str, key: str | None = None) -> None:
        """A renewed serving certificate: new connections get it, open ones keep theirs."""
        assert self._ssl is not None
        self._ssl.load_cert_chain(cert, key)
        log.info("kubelet API serving with the renewed certificate %s", cert)

    async def start(self, address: str, port: int, cert: str, key: str | None, client_ca: str) -> None:
        """Serve HTTPS (`key` None: the key is in the `cert` file too)."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(cert, key)
        self._ssl = ctx
        if client_ca:
            ctx.load_verify_locations(client_ca)
            ctx.verify_mode = ssl.CERT_OPTIONAL
        self._runner = web.AppRunner(self.app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        await web.TCPSite(self._runner, address, port, ssl_context=ctx, shutdown_timeout=1.0).start()
        log.info("kubelet API serving on https://%s:%d", address, port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(trust_env=False)
        return self._session

    # -- simple endpoints ----------------------------------------------------------------------

    async def healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def metrics(self, request: web.Request) -> web.Response:
        text = self.registry.render() if self.registry is not None else ""
        return web.Response(text=text, content_type="text/plain")

    async def resource_metrics(self, request: web.Request) -> web.Response:
        try:
            summary = await self.stats.summary()
        except Exception as e:  # the runtime did not answer: upstream reports resource_scrape_error 1
            log.warning("resource metrics: %s", e)
            summary = None
        return web.Response(text=resourcemetrics.render(summary), content_type="text/plain")

    async def cadvisor_metrics(self, request: web.Request) -> web.Response:
        try:
            rows = await self.stats.container_rows()
        except CRIError as e:
            return status_error(503, "ServiceUnavailable", f"container stats: {e}")
        return web.Response(text=resourcemetrics.render_cadvisor(rows), content_type="text/plain")

    async def configz(self, request: web.Request) -> web.Response:
        return web.Response(body=orjson.dumps(resourcemetrics.configz(self.kubelet.cfg)), content_type="application/json")

    async def pods(self, request: web.Request) -> web.Response:
        items = []
        for pod in self.kubelet.known_pods():
            item = dict(pod)
            desired = self.kubelet.status.desired(pod["metadata"]["uid"])
            if desired is not None:
                item["status"] = desired
            items.append(item)
        body = {"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": items}
        return web.Response(body=orjson.dumps(body), content_type="application/json")

    async def running_pods(self, request: web.Request) -> web.Response:
        items = []
        for uid, rp in self.kubelet.pleg.pods.items():
            running = [c for c in rp.containers if c.state == 1]
            if not running:
                continue
            items.append({
                "metadata": {"name": rp.name, "namespace": rp.namespace, "uid": uid},
                "spec": {"containers": [{"name": c.metadata.name, "image": c.image.image} for c in running]},
            })
        body = {"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": items}
        return web.Response(body=orjson.dumps(body), content_type="application/json")

    async def summary(self, request: web.Request) -> web.Response:
        return web.Response(body=orjson.dumps(await self.stats.summary()), content_type="application/json")

    # -- pods and containers -------------------------------------------------------------------

    def _find_pod(self, namespace: str, name: str, uid: str = "") -> dict[str, Any] | None:
        for pod in self.kubelet.known_pods():
            meta = pod["metadata"]
            if meta.get("namespace", "default") == namespace and meta["name"] == name:
                if uid and meta["uid"] != uid:
                    return None
                return pod
        return None

    async def _container(self, pod: dict[str, Any], name: str, previous: bool = False) -> ContainerInfo | web.Response:
        spec = pod.get("spec") or {}
        names = [c["name"] for key in ("initContainers", "containers", "ephemeralContainers") for c in spec.get(key) or []]
        pod_name = pod["metadata"]["name"]
        if name not in names:
            return status_error(400, "BadRequest", f"container {name} is not valid for pod {pod_name}")
        rs = await self.kubelet.runtime.pod_status(pod["metadata"]["uid"])
        instances = rs.instances(name)
        if previous:
            if len(instances) < 2:
                return status_error(400, "BadRequest",
                                    f'previous terminated container "{name}" in pod "{pod_name}" not found')
            return instances[1]
        if not instances:
            waiting = self.kubelet.waiting.get(pod["metadata"]["uid"], {}).get(name)
            reason = waiting[0] if waiting else "ContainerCreating"
            return status_error(400, "BadRequest", f'container "{name}" in pod "{pod_name}" is waiting to start: {reason}')
        return instances[0]

    async def container_logs(self, request: web.Request) -> web.StreamResponse:
        m = request.match_info
        pod = self._find_pod(m["namespace"], m["pod"])
        if pod is None:
            return status_error(404, "NotFound", f'pod "{m["pod"]}" not found')
        q = request.query
        found = await self._container(pod, m["container"], _flag(q.get("previous")))
        if isinstance(found, web.Response):
            return found
        container = found
        opts = logfiles.LogOptions(follow=_flag(q.get("follow")), timestamps=_flag(q.get("timestamps")))
        try:
            if q.get("tailLines"):
                opts.tail_lines = max(0, int(q["tailLines"]))
            if q.get("limitBytes"):
                opts.limit_bytes = max(1, int(q["limitBytes"]))
            if q.get("sinceSeconds"):
                opts.since_time = time.time() - int(q["sinceSeconds"])
            elif q.get("sinceTime"):
                opts.since_time = parse_time(q["sinceTime"]).timestamp()
        except ValueError as e:
            return status_error(400, "BadRequest", f"invalid log options: {e}")
        if not container.log_path:
            return status_error(400, "BadRequest", f'container "{container.name}" has no log file')
        if opts.follow and not container.running:
            opts.follow = False

        async def still_running() -> bool:
            try:
                resp = await self.kubelet.cri.container_status(container.id)
            except CRIError:
                return False
            return resp.status.state == 1

        resp = web.StreamResponse(headers={"Content-Type": "text/plain", "Cache-Control": "no-cache"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        try:
            try:
                async for chunk in logfiles.read_log(container.log_path, opts, still_running):
                    await resp.write(chunk)
            except FileNotFoundError:
                pass
            await resp.write_eof()
        except (ConnectionResetError, asyncio.CancelledError):
            pass  # the client went away (kubectl logs -f stopped)
        return resp

    async def _running_container(self, pod: dict[str, Any], name: str) -> ContainerInfo | None:
        """The running container of that name (upstream's findContainer looks only at running
        containers: a waiting, exited or unknown one is simply not found)."""
        rs = await self.kubelet.runtime.pod_status(pod["metadata"]["uid"])
        return next((c for c in rs.instances(name) if c.running), None)

    async def exec_attach(self, request: web.Request) -> web.StreamResponse:
        m = request.match_info
        attach = request.path.startswith("/attach/")
        pod = self._find_pod(m["namespace"], m["pod"], m.get("uid", ""))
        if pod is None:
            return stream_error(404, "pod does not exist")
        found = await self._running_container(pod, m["container"])
        if found is None:
            return stream_error(500, f'container not found ("{m["container"]}")')
        q = request.query
        opts = StreamOptions(stdin=_flag(q.get("stdin")), stdout=_flag(q.get("stdout", "1")),
                             stderr=_flag(q.get("stderr", "1")), tty=_flag(q.get("tty")))
        command = q.getall("command", [])
        if not attach and not command:
            return status_error(400, "BadRequest", "you must specify at least 1 command")
        # The runtime is asked before the upgrade is checked (as upstream's GetExec/GetAttach
        # come before proxyStream) so that a refusal, on kubectl's SPDY fallback too, is the
        # runtime's real error; an unused streaming URL just expires in the runtime.
        try:
            if attach:
                url = await self.kubelet.cri.attach(found.id, tty=opts.tty, stdin=opts.stdin, stdout=opts.stdout,
                                                    stderr=opts.stderr and not opts.tty)
            else:
                url = await self.kubelet.cri.exec(found.id, command, tty=opts.tty, stdin=opts.stdin,
                                                  stdout=opts.stdout, stderr=opts.stderr and not opts.tty)
        except CRIError as e:
            return cri_stream_error(e)
        if not _is_websocket(request):
            return status_error(400, "BadRequest",
                                "Upgrade request required: this kubelet streams over websockets (channel.k8s.io)")
        return await serve_exec(request, url, opts)

    async def port_forward(self, request: web.Request) -> web.StreamResponse:
        m = request.match_info
        pod = self._find_pod(m["namespace"], m["pod"])
        if pod is None:
            return stream_error(404, "pod does not exist")
        if m.get("uid") and pod["metadata"]["uid"] != m["uid"]:
            return stream_error(404, "pod not found")
        rs = await self.kubelet.runtime.pod_status(pod["metadata"]["uid"])
        sandbox = rs.sandbox
        if sandbox is None or not sandbox.ready:
            # upstream's GetPortForward finds the pod among the running ones, by its full name
            return stream_error(500, f'pod not found ("{m["pod"]}_{m["namespace"]}")')
        ports: list[int] = []
        for value in request.query.getall("ports", []) + request.query.getall("port", []):
            for p in value.split(","):
                if p.strip():
                    try:
                        ports.append(int(p))
                    except ValueError:
                        return status_error(400, "BadRequest", f'unable to parse "{p}" as a port')
        try:
            url = await self.kubelet.cri.port_forward(sandbox.id, ports)
        except CRIError as e:
            return cri_stream_error(e)
        if not _is_websocket(request):
            return status_error(400, "BadRequest",
                                "Upgrade request required: this kubelet forwards ports over websockets")
        protocols = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",")]
        if TUNNEL_PROTOCOL in protocols:
            return await serve_portforward_tunnel(request, url)
        if not ports:
            return status_error(400, "BadRequest", 'query parameter "ports" is required')
        return await serve_portforward_websocket(request, url, ports, self._http())
