"""v1 ComponentStatus (`kubectl get componentstatuses`, `kubectl get cs`): the health of the
scheduler, the controller-manager and etcd, probed when asked, as upstream's
pkg/registry/core/componentstatus (deprecated there since v1.19, still served, with a warning).

A read-only virtual resource: get and list, nothing stored. As upstream, the scheduler and the
controller-manager are looked for on this host's loopback at their default ports (a cluster
that runs them elsewhere sees them Unhealthy: the reason the kind is deprecated); etcd is the
apiserver's own storage backend. Every probe is bounded by a timeout, all run at once.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import TYPE_CHECKING, Any

import orjson

from apimachinery import errors
from apiserver.registry.base import Strategy

if TYPE_CHECKING:
    from apiserver.authn import UserInfo
    from apiserver.http import Request, Response
    from apiserver.requestinfo import RequestInfo
    from apiserver.resources import Resource
    from apiserver.server import APIServer

#: what upstream's GetServersToValidate probes besides etcd (our components serve plain HTTP there)
COMPONENTS = {"controller-manager": "http://127.0.0.1:10257/healthz", "scheduler": "http://127.0.0.1:10259/healthz"}
PROBE_TIMEOUT = 5.0
COLUMNS = [("Name", "string", "name", 0, "Name must be unique within a namespace."),
           ("Status", "string", "", 0, "Status of the component conditions"),
           ("Message", "string", "", 0, "Message of the component conditions"),
           ("Error", "string", "", 0, "Error of the component conditions")]


def _status(name: str, healthy: bool, message: str = "", error: str = "") -> dict[str, Any]:
    cond: dict[str, Any] = {"type": "Healthy", "status": "True" if healthy else "False"}
    if message:
        cond["message"] = message
    if error:
        cond["error"] = error
    return {"kind": "ComponentStatus", "apiVersion": "v1", "metadata": {"name": name}, "conditions": [cond]}


async def _probe_http(name: str, url: str) -> dict[str, Any]:
    """upstream's HTTP prober: a connection error or a status outside 2xx/3xx is a failed probe
    whose text is the message (the error column stays empty); a success's message is the body."""
    import httpx

    try:
        async with httpx.AsyncClient(timeout=PROBE_TIMEOUT, trust_env=False) as client:
            r = await client.get(url)
    except httpx.HTTPError as e:
        return _status(name, False, f'Get "{url}": {str(e) or type(e).__name__}')
    if not 200 <= r.status_code < 400:
        return _status(name, False, f"HTTP probe failed with statuscode: {r.status_code}")
    return _status(name, True, r.text[:1024])


async def _probe_etcd(server: APIServer) -> dict[str, Any]:
    """upstream's EtcdServer check: "ok", or the storage's error in the error column."""
    try:
        healthy = await asyncio.wait_for(server.store.healthy(), PROBE_TIMEOUT)
    except Exception as e:  # a storage error is the answer here, never a 500
        return _status("etcd-0", False, error=str(e) or type(e).__name__)
    return _status("etcd-0", True, "ok") if healthy else _status("etcd-0", False, error="etcd is not healthy")


def _cells(obj: dict[str, Any], now: dt.datetime) -> list[Any]:
    """upstream's printer: Healthy/Unhealthy/Unknown from the Healthy condition."""
    status, message, error = "Unknown", "", ""
    for c in obj.get("conditions") or []:
        if c.get("type") == "Healthy":
            status = "Healthy" if c.get("status") == "True" else "Unhealthy"
            message, error = c.get("message", ""), c.get("error", "")
    return [obj["metadata"]["name"], status, message, error]


class ComponentStatusStrategy(Strategy):
    virtual = True
    deprecation_warning = "v1 ComponentStatus is deprecated in v1.19+"

    def table_printer(self) -> tuple[list[tuple], Any]:
        return COLUMNS, _cells

    async def serve(self, server: APIServer, req: Request, info: RequestInfo, res: Resource, ns: str,
                    user: UserInfo) -> Response:
        if info.subresource or info.verb not in ("get", "list"):
            raise errors.method_not_allowed("the server does not allow this method on the requested resource")
        names = sorted([*COMPONENTS, "etcd-0"])
        if info.verb == "get":
            if info.name not in names:
                raise errors.not_found("componentstatus", info.name)
            names = [info.name]
        else:
            from apiserver.handler import _selectors, validate_list_options  # (handler imports the table)

            validate_list_options(req.query, watch=False)
            ls, fs = _selectors(req.query)
            for f in fs.fields() if fs is not None else ():
                if f != "metadata.name":
                    raise errors.bad_request(f'"{f}" is not a known field selector: only "metadata.name"')
            if fs is not None:
                names = [n for n in names if fs.matches({"metadata.name": n})]
            if ls is not None:
                names = [n for n in names if ls.matches({})]  # component statuses carry no labels

        async def probe(name: str) -> dict[str, Any]:
            return await _probe_etcd(server) if name == "etcd-0" else await _probe_http(name, COMPONENTS[name])

        found = await asyncio.gather(*(probe(n) for n in names))
        if info.verb == "get":
            return await server.render(req, res, orjson.dumps(found[0]), single=True)
        return await server.render_list(req, res, [orjson.dumps(o) for o in found], "", "")
