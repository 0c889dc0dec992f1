"""The FastAPI application: discovery, version, health, metrics and OpenAPI routes.

Every request first passes the pipeline in `APIServer.handle` (authentication,
authorization); resource requests are served there directly and never reach the
router — see `apiserver.http` for why.
"""

from __future__ import annotations

import contextlib
import inspect
import platform
import sys
from collections.abc import Callable
from typing import Any

import orjson
from fastapi import FastAPI, Request
from starlette.responses import Response

from apimachinery import errors, health
from apiserver import discovery
from apiserver.server import APIServer, Options

VERSION = {
    "major": "1",
    "minor": "31",
    "gitVersion": "v1.31.0-minik8s",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-11-21T00:00:00Z",
    "goVersion": f"python{platform.python_version()}",
    "compiler": "cpython",
    "platform": f"{sys.platform}/{platform.machine().replace('x86_64', 'amd64')}",
}

JSON = "application/json"


def _json(obj: Any, status: int = 200, media_type: str = JSON) -> Response:
    return Response(orjson.dumps(obj), status_code=status, media_type=media_type)


class Entry:
    """The ASGI application uvicorn serves: the request pipeline, with FastAPI behind it.

    Every request passes `APIServer.handle` (authentication, authorization) first; resource
    requests are answered there and never enter the framework's middleware stack (their hot
    path), everything else — discovery, OpenAPI, version, health, and the lifespan — is the
    FastAPI app's.
    """

    def __init__(self, app: FastAPI, server: APIServer) -> None:
        self.app = app
        self.server = server

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, send)
            return
        await self.server.handle(scope, receive, send, self.app)


def create_asgi(opts: Options, server: APIServer | None = None) -> Entry:
    """The apiserver as one ASGI app (what uvicorn serves)."""
    server = server or APIServer(opts)
    return Entry(create_app(opts, server), server)


def create_app(opts: Options, server: APIServer | None = None) -> FastAPI:
    server = server or APIServer(opts)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):  # type: ignore[no-untyped-def]
        await server.start()
        try:
            yield
        finally:
            await server.stop()

    app = FastAPI(
        title="minik8s apiserver", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None,
        # no OpenTelemetry instrumentation: it would look up the environment on every request
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
    )
    app.state.server = server
    table = server.table
    address = f"{opts.advertise_address}:{opts.secure_port}"
    # the documents are encoded once per state of the table, with the ETag upstream sends so that
    # clients can revalidate cheaply (If-None-Match → 304)
    docs = discovery.DiscoveryDocs(table, server.aggregator)

    def _discovery(request: Request, legacy: bool, fallback: Callable[[], dict[str, Any]]) -> Response:
        """The aggregated document where the client asks for it, else `fallback()` (legacy)."""
        want = discovery.negotiate_aggregated(request.headers.get("accept", ""))
        if want is None:
            return _json(fallback())
        body, etag = docs.aggregated(legacy, want)
        media = discovery.AGGREGATED_V2 if want == "v2" else discovery.AGGREGATED_V2BETA1
        headers = {"ETag": etag, "Vary": "Accept"}
        if etag in request.headers.get("if-none-match", ""):
            return Response(status_code=304, headers=headers)
        return Response(body, media_type=media, headers=headers)

    @app.get("/api")
    @app.get("/api/")
    async def api_root(request: Request) -> Response:
        return _discovery(request, True, lambda: discovery.api_versions(address))

    @app.get("/apis")
    @app.get("/apis/")
    async def apis_root(request: Request) -> Response:
        agg = server.aggregator
        return _discovery(request, False,
                          lambda: discovery.api_group_list(table, agg.api_groups(), agg.group_priorities()))

    @app.get("/api/{version}")
    async def api_version(version: str) -> Response:
        data = docs.resource_list("", version)
        return Response(data, media_type=JSON) if data else _not_found()

    @app.get("/apis/{group}")
    async def api_group(group: str) -> Response:
        remote = server.aggregator.api_group(group)
        if remote is not None:
            return _json(remote)
        if group not in table.groups or not group:
            return _not_found()
        return _json(discovery.api_group(table, group))

    @app.get("/apis/{group}/{version}")
    async def api_group_version(group: str, version: str) -> Response:
        data = docs.resource_list(group, version)
        return Response(data, media_type=JSON) if data else _not_found()

    @app.get("/version")
    @app.get("/version/")
    async def version() -> Response:
        return _json(VERSION)

    def _check_list(kind: str) -> dict[str, Callable[[], Any]]:
        """upstream's health checks of /livez (and /healthz) and /readyz, in its order: name → what
        answers it (a bool, or a coroutine for etcd's); only the checks asked for are run."""
        checks: dict[str, Callable[[], Any]] = {"ping": lambda: True, "log": lambda: True, "etcd": server.etcd_healthy}
        if kind == "readyz":
            checks["etcd-readiness"] = server.etcd_healthy
            checks["informer-sync"] = lambda: all(c.ready.is_set() for c in server.caches.values())
        checks["poststarthook/bootstrap-controller"] = lambda: server.bootstrapped
        checks["poststarthook/crd-informer-synced"] = lambda: server.crds.synced
        if kind == "readyz":
            checks["shutdown"] = lambda: not server.shutting_down
        return checks

    async def _run_check(check: Callable[[], Any]) -> bool:
        result = check()
        return bool(await result) if inspect.isawaitable(result) else bool(result)

    async def _checks(kind: str, skip: Any = ()) -> dict[str, bool]:
        """Every check's answer; excluded ones are not run (upstream lists them as excluded)."""
        return {name: True if name in skip else await _run_check(check) for name, check in _check_list(kind).items()}

    async def _health(request: Request, kind: str) -> Response:
        excluded = request.query_params.getlist("exclude")
        status, body = health.report(kind, await _checks(kind, set(excluded)), "verbose" in request.query_params,
                                     excluded)
        return Response(body.encode(), status_code=status, media_type="text/plain")

    async def _health_check(kind: str, name: str) -> Response:
        check = _check_list(kind).get(name)
        answer = health.single({name: await _run_check(check)} if check is not None else {}, name)
        if answer is None:
            return _not_found()
        return Response(answer[1].encode(), status_code=answer[0], media_type="text/plain")

    @app.get("/healthz")
    async def healthz(request: Request) -> Response:
        return await _health(request, "healthz")

    @app.get("/livez")
    async def livez(request: Request) -> Response:
        return await _health(request, "livez")

    @app.get("/readyz")
    async def readyz(request: Request) -> Response:
        return await _health(request, "readyz")

    @app.get("/healthz/{name:path}")
    async def healthz_check(name: str) -> Response:
        return await _health_check("healthz", name)

    @app.get("/livez/{name:path}")
    async def livez_check(name: str) -> Response:
        return await _health_check("livez", name)

    @app.get("/readyz/{name:path}")
    async def readyz_check(name: str) -> Response:
        return await _health_check("readyz", name)

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(server.metrics.render().encode(), media_type="text/plain; version=0.0.4")

    @app.get("/openapi/v2")
    async def openapi_v2(request: Request) -> Response:
        await server.openapi.ready()
        return server.openapi.v2(request.headers.get("accept", ""), request.headers.get("if-none-match", ""))

    @app.get("/openapi/v3")
    async def openapi_v3_root(request: Request) -> Response:
        await server.openapi.ready()
        return server.openapi.v3_root(request.headers.get("if-none-match", ""))

    @app.get("/openapi/v3/{path:path}")
    async def openapi_v3(path: str, request: Request) -> Response:
        await server.openapi.ready()
        return server.openapi.v3(path, request.query_params.get("hash", ""), request.headers.get("accept", ""),
                                 request.headers.get("if-none-match", ""))


    @app.exception_handler(404)
    async def not_found(request: Request, exc: Exception) -> Response:
        return _not_found()

    @app.exception_handler(405)
    async def not_allowed(request: Request, exc: Exception) -> Response:
        return _json(
            {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
             "message": "the server does not allow this method on the requested resource",
             "reason": "MethodNotAllowed", "code": 405},
            405,
        )

    return app


def _not_found() -> Response:
    return _json(errors.route_not_found().status(), 404)
