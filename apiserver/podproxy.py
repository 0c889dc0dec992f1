"""pods/<name>/log, exec, attach and portforward: proxied to the kubelet of the pod's node.

The apiserver finds the kubelet from the Node (InternalIP, else ExternalIP, else Hostname;
port from status.daemonEndpoints.kubeletEndpoint) and connects with its kubelet-client
certificate (`--kubelet-client-certificate/-key`), verifying the kubelet's serving certificate
against `--kubelet-certificate-authority` when given.

* log: a plain GET, streamed back (`kubectl logs -f` keeps it open).
* exec / attach / portforward: websockets (kubectl ≥ 1.30 speaks `v5.channel.k8s.io` for exec
  and attach, SPDY tunnelled in a websocket for port-forward). The client's websocket is
  relayed message for message to a websocket opened to the kubelet with the same offered
  subprotocols, and accepted with the one the kubelet chose; the kubelet speaks the protocols.
  A non-websocket request (the SPDY upgrade kubectl falls back to) is not relayed: this
  apiserver streams over websockets only.

exec, attach and portforward pass admission first, as upstream's CONNECT: operation CONNECT, the
object a PodExecOptions / PodAttachOptions / PodPortForwardOptions made from the query (upstream's
query conversion), so admission webhooks with CONNECT rules on pods/exec... are called and may deny.
A mutating webhook's patch of those options is not applied to the stream.

Refusals reach the client as upstream's UpgradeAwareHandler passes them: errors found here
(no such pod, a container not in the pod, no node) are a Status; a kubelet's refusal of the
upgrade (its status code and body, often plain text such as `container not found ("c")`) is
passed through as is. kubectl falls back to SPDY whenever its websocket is refused, and shows
the answer to that second request, so the SPDY request is sent on to the kubelet too (without
the upgrade) and its refusal passed through the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import re
import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, urlencode

import aiohttp
import orjson

from apimachinery import errors
from apiserver.http import Response, StreamResponse, query_bool
from apiserver.lookup import get_object

if TYPE_CHECKING:
    from apiserver.authn import UserInfo
    from apiserver.http import Request
    from apiserver.requestinfo import RequestInfo
    from apiserver.server import APIServer

log = logging.getLogger("apiserver.podproxy")

ADDRESS_TYPES = ("InternalIP", "ExternalIP", "Hostname")
STREAMING = ("exec", "attach", "portforward")
LOG_FLAGS = ("follow", "previous", "timestamps")
LOG_PARAMS = (*LOG_FLAGS, "tailLines", "sinceSeconds", "sinceTime", "limitBytes")
PORT = re.compile(r"[0-9]+")
MAX_REFUSAL = 64 * 1024  # as much of a refusal's body as is passed on (client-go reads no more)


@dataclass(frozen=True)
class Refusal:
    """A kubelet's answer other than 101 to a streaming request, passed on to the client as is."""

    status: int
    content_type: bytes
    body: bytes

    def message(self) -> str:
        """The text a client shows: a Status' message, else the body."""
        text = self.body.decode(errors="replace").strip()
        with contextlib.suppress(ValueError, AttributeError):
            return str(orjson.loads(self.body).get("message") or text)
        return text

    def response(self) -> Response:
        return Response(self.status, self.body, self.content_type)


#: Where the open websocket handshake to a kubelet (if any, in this task) keeps a refusal.
_REFUSALS: contextvars.ContextVar[list[Refusal] | None] = contextvars.ContextVar("kubelet_refusals", default=None)


async def _read_refusal(resp: aiohttp.ClientResponse) -> Refusal:
    body = b""
    while len(body) < MAX_REFUSAL:
        chunk = await resp.content.read(MAX_REFUSAL - len(body))
        if not chunk:
            break
        body += chunk
    content_type = resp.headers.get("Content-Type", "text/plain; charset=utf-8").encode("latin-1")
    return Refusal(resp.status, content_type, body)


async def _keep_refusal(session: aiohttp.ClientSession, ctx: Any, params: aiohttp.TraceRequestEndParams) -> None:
    """aiohttp's ws_connect raises on a non-101 answer without its body, and closes it: read the
    body here, while the response is still open (aiohttp awaits this hook in the caller's task)."""
    sink = _REFUSALS.get()
    if sink is not None and params.response.status != 101:
        sink.append(await _read_refusal(params.response))


def join_host_port(host: str, port: str) -> str:
    """host:port, IPv6 hosts in brackets (no port: the host alone)."""
    host = f"[{host}]" if ":" in host else host
    return f"{host}:{port}" if port else host


def relay(resp: aiohttp.ClientResponse, req: Request, content_type: bytes) -> StreamResponse:
    """Stream a backend's answer body to the client (closed when done or when the client goes)."""
    async def chunks():
        try:
            async for chunk in resp.content.iter_any():
                yield chunk
        finally:
            resp.close()

    return StreamResponse(chunks(), req.receive, content_type)


def _bad(message: str) -> errors.StatusError:
    return errors.bad_request(message)


def container_for(pod: dict[str, Any], requested: str, what: str) -> str:
    """The container a request is about: the named one, or the pod's only container."""
    spec = pod.get("spec") or {}
    name = pod["metadata"]["name"]
    containers = [c["name"] for c in spec.get("containers") or []]
    inits = [c["name"] for c in spec.get("initContainers") or []]
    ephemeral = [c["name"] for c in spec.get("ephemeralContainers") or []]
    if not requested:
        if len(containers) == 1:
            return containers[0]
        message = f"a container name must be specified for pod {name}, choose one of: [{' '.join(containers)}]"
        if inits:
            message += f" or one of the init containers: [{' '.join(inits)}]"
        if ephemeral:
            message += f" or one of the ephemeral containers: [{' '.join(ephemeral)}]"
        raise _bad(message)
    if requested not in containers + inits + ephemeral:
        raise _bad(f"container {requested} is not valid for pod {name}")
    return requested


class PodProxy:
    def __init__(self, server: APIServer) -> None:
        self.server = server
        opts = server.opts
        self.cert = getattr(opts, "kubelet_client_certificate", None)
        self.key = getattr(opts, "kubelet_client_key", None)
        self.ca = getattr(opts, "kubelet_certificate_authority", None)
        self._session: aiohttp.ClientSession | None = None
        self._ssl: ssl.SSLContext | None = None

    def ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            ctx = ssl.create_default_context(cafile=self.ca) if self.ca else ssl.create_default_context()
            if not self.ca:
                # upstream's default: without --kubelet-certificate-authority the kubelet is not verified
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            # with it, the kubelet's certificate must name the address we dial (its Node's preferred
            # address), as upstream's TLS verification does: ssl.create_default_context checks that
            if self.cert and self.key:
                ctx.load_cert_chain(self.cert, self.key)
            self._ssl = ctx
        return self._ssl

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            refusals = aiohttp.TraceConfig()
            refusals.on_request_end.append(_keep_refusal)
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=self.ssl_context(), limit=0),
                trust_env=False,
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
                trace_configs=[refusals],
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    # -- locating the kubelet ------------------------------------------------------------------

    async def pod(self, ns: str, name: str) -> dict[str, Any]:
        pod = await get_object(self.server, "", "pods", ns, name)
        if pod is None:
            raise errors.not_found("pods", name)
        return pod

    async def kubelet_base(self, pod: dict[str, Any]) -> str:
        node_name = (pod.get("spec") or {}).get("nodeName")
        if not node_name:
            raise _bad(f"pod {pod['metadata']['name']} does not have a host assigned")
        return await self.node_base(node_name)

    async def node_base(self, node_name: str, port: str = "") -> str:
        """https://<the node's preferred address>:<its kubelet port, or `port`>."""
        node = await get_object(self.server, "", "nodes", "", node_name)
        if node is None:
            raise errors.not_found("nodes", node_name)
        status = node.get("status") or {}
        addresses = {a.get("type"): a.get("address") for a in status.get("addresses") or []}
        host = next((addresses[t] for t in ADDRESS_TYPES if addresses.get(t)), None)
        if not host:
            raise errors.StatusError(503, "ServiceUnavailable", f"node {node_name} has no address")
        port = port or str(((status.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}).get("Port") or 10250)
        return f"https://{join_host_port(host, port)}"

    # -- logs ----------------------------------------------------------------------------------

    async def logs(self, req: Request, info: RequestInfo, ns: str) -> Response | StreamResponse:
        if info.verb != "get":
            raise errors.method_not_allowed("the server does not allow this method on the requested resource")
        pod = await self.pod(ns, info.name)
        container = container_for(pod, req.query.get("container", ""), "logs")
        if not (pod.get("spec") or {}).get("nodeName"):
            # not scheduled yet: no logs, and no error (upstream: no location, so 204 No Content)
            return Response(204, b"", b"text/plain")
        base = await self.kubelet_base(pod)
        params = {k: v for k, v in req.query.items() if k in LOG_PARAMS and (v != "" or k in LOG_FLAGS)}
        for flag in LOG_FLAGS:
            if flag in params:
                params[flag] = "true" if query_bool(params[flag]) else "false"
        url = f"{base}/containerLogs/{quote(ns)}/{quote(info.name)}/{quote(container)}"
        if params:
            url += "?" + urlencode(params)
        try:
            resp = await self.session().get(url)
        except aiohttp.ClientError as e:
            raise errors.StatusError(500, "InternalError", f"error connecting to the kubelet: {e}") from None
        if resp.status != 200:
            body = await resp.read()
            resp.release()
            try:
                status = orjson.loads(body)
                message = status.get("message") or body.decode(errors="replace")
                reason = status.get("reason") or "InternalError"
            except ValueError:
                message, reason = body.decode(errors="replace"), "InternalError"
            raise errors.StatusError(resp.status, reason, message)
        return relay(resp, req, b"text/plain")

    # -- streaming (non-websocket) ---------------------------------------------------------

    async def streaming_http(self, req: Request, info: RequestInfo, ns: str) -> Response:
        """exec/attach/portforward without a websocket: kubectl's SPDY fallback, which it takes
        whenever its websocket was refused and whose answer is the error it shows. Validated as
        the websocket, then asked of the kubelet without the upgrade: its refusal (the container
        is not running, the runtime failed...) is passed through as is."""
        url = await self.kubelet_stream_url(info, ns, req.scope.get("query_string", b""), req.user)
        if "upgrade" not in req.header(b"connection").lower():
            raise _bad("Upgrade request required")  # upstream's answer to a plain request
        try:
            async with self.session().request(req.method, url) as resp:
                refusal = await _read_refusal(resp)
        except aiohttp.ClientError as e:
            raise errors.StatusError(500, "InternalError", f"error dialing backend: {e}") from None
        if refusal.status < 400:  # not a refusal: but SPDY is not relayed here
            raise _bad("Upgrade request required: this apiserver streams exec, attach and port-forward over "
                       "websockets (v5.channel.k8s.io, SPDY/3.1+portforward.k8s.io)")
        return refusal.response()

    # -- websockets --------------------------------------------------------------------------

    async def kubelet_stream_url(self, info: RequestInfo, ns: str, query_string: bytes, user: UserInfo) -> str:
        """The kubelet URL of a stream, after admission (CONNECT), checked in the order of
        upstream's streamLocation: the pod, the container (a valid one, or the only one), the node."""
        query = parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)
        await self._admit_connect(info, ns, query, user)
        pod = await self.pod(ns, info.name)
        container = ""
        if info.subresource != "portforward":
            requested = next((v for k, v in query if k == "container"), "")
            container = container_for(pod, requested, info.subresource)
        base = await self.kubelet_base(pod)
        if info.subresource == "portforward":
            ports = [v for k, v in query if k == "ports"]
            path = f"/portForward/{quote(ns)}/{quote(info.name)}"
            return base + path + (("?" + urlencode([("ports", p) for p in ports])) if ports else "")
        params = [(k, v) for k, v in query if k in ("command", "stdin", "stdout", "stderr", "tty")]
        if info.subresource == "exec" and not any(k == "command" for k, _ in params):
            raise _bad("you must specify at least 1 command")
        verb = "exec" if info.subresource == "exec" else "attach"
        return f"{base}/{verb}/{quote(ns)}/{quote(info.name)}/{quote(container)}?" + urlencode(params)

    async def _admit_connect(self, info: RequestInfo, ns: str, query: list[tuple[str, str]], user: UserInfo) -> None:
        from apiserver.admission import CONNECT, Attributes

        options = connect_options(info.subresource, query)
        attrs = Attributes(CONNECT, self.server.resource("", "pods"), info.subresource, ns, info.name, options, None, user)
        await self.server.admission.admit(attrs)
        await self.server.admission.validate(attrs)

    async def websocket(self, scope: dict[str, Any], receive: Any, send: Any, info: RequestInfo, ns: str,
                        user: UserInfo) -> int:
        """Relay one websocket to the kubelet; returns the HTTP status given (101 when accepted)."""
        first = await receive()
        if first.get("type") != "websocket.connect":
            return 400
        try:
            url = await self.kubelet_stream_url(info, ns, scope.get("query_string", b""), user)
        except errors.StatusError as e:
            await reject(scope, send, e)
            return e.code
        protocols = [p for p in scope.get("subprotocols") or []]
        refusals: list[Refusal] = []
        token = _REFUSALS.set(refusals)
        try:
            upstream = await self.session().ws_connect(url, protocols=protocols, max_msg_size=0, autoping=True)
        except aiohttp.WSServerHandshakeError as e:
            refusal = refusals[0] if refusals and refusals[0].status >= 400 else None
            if refusal is None:  # upgraded wrongly, or an odd status: upstream's generic error
                message = f"invalid upgrade response: status code {e.status}: {e.message}"
                await reject(scope, send, errors.StatusError(500, "InternalError", message))
                return 500
            await respond(scope, send, refusal)
            return refusal.status
        except aiohttp.ClientError as e:
            await reject(scope, send, errors.StatusError(500, "InternalError", f"error dialing backend: {e}"))
            return 500
        finally:
            _REFUSALS.reset(token)
        accept: dict[str, Any] = {"type": "websocket.accept"}
        if upstream.protocol:
            accept["subprotocol"] = upstream.protocol
        await send(accept)

        async def from_client() -> None:
            while True:
                msg = await receive()
                kind = msg.get("type")
                if kind == "websocket.receive":
                    if msg.get("bytes") is not None:
                        await upstream.send_bytes(msg["bytes"])
                    elif msg.get("text") is not None:
                        await upstream.send_str(msg["text"])
                elif kind == "websocket.disconnect":
                    return

        async def from_kubelet() -> None:
            async for msg in upstream:
                if msg.type == aiohttp.WSMsgType.BINARY:
                    await send({"type": "websocket.send", "bytes": msg.data})
                elif msg.type == aiohttp.WSMsgType.TEXT:
                    await send({"type": "websocket.send", "text": msg.data})

        tasks = [asyncio.create_task(from_client()), asyncio.create_task(from_kubelet())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await upstream.close()
            with contextlib.suppress(Exception):
                await send({"type": "websocket.close", "code": 1000})
        return 101


def connect_options(subresource: str, query: list[tuple[str, str]]) -> dict[str, Any]:
    """The options object a CONNECT to pods/<subresource> carries (what admission is given),
    built from the request's query as upstream builds PodExecOptions and its siblings."""
    from apiserver.resources import SUBRESOURCE_KINDS

    options: dict[str, Any] = {"kind": SUBRESOURCE_KINDS[subresource][2], "apiVersion": "v1"}
    if subresource == "portforward":
        # upstream's Convert_Slice_string_To_Slice_int32: every value, each split at commas
        ports = [p for k, v in query if k == "ports" for p in v.split(",")]
        for p in ports:
            if not PORT.fullmatch(p) or int(p) > 65535:
                why = "value out of range" if PORT.fullmatch(p) else "invalid syntax"
                raise _bad(f'cannot convert to []int32: strconv.ParseUint: parsing "{p}": {why}')
        if ports:
            options["ports"] = [int(p) for p in ports]
        return options
    for flag in ("stdin", "stdout", "stderr", "tty"):
        if query_bool(next((v for k, v in query if k == flag), None)):
            options[flag] = True
    container = next((v for k, v in query if k == "container"), "")
    if container:
        options["container"] = container
    if subresource == "exec":
        options["command"] = [v for k, v in query if k == "command"]
    return options


async def reject(scope: dict[str, Any], send: Any, e: errors.StatusError) -> None:
    """Refuse a websocket with a Status body (an HTTP answer, so clients can show the message)."""
    await respond(scope, send, Refusal(e.code, b"application/json", orjson.dumps(e.status())))


async def respond(scope: dict[str, Any], send: Any, refusal: Refusal) -> None:
    """Refuse a websocket with an HTTP answer (status, type, body) where the server can send one;
    else (no websocket.http.response extension) close it with the message as the reason."""
    if "websocket.http.response" in (scope.get("extensions") or {}):
        await send({"type": "websocket.http.response.start", "status": refusal.status,
                    "headers": [(b"content-type", refusal.content_type),
                                (b"content-length", str(len(refusal.body)).encode())]})
        await send({"type": "websocket.http.response.body", "body": refusal.body})
    else:
        await send({"type": "websocket.close", "code": 1008, "reason": refusal.message()[:120]})


def not_a_pod_stream(info: RequestInfo) -> bool:
    return not (info.is_resource and info.resource == "pods" and info.group == "" and info.subresource in STREAMING)

