"""Calling a webhook over HTTPS: admission webhooks and CRD conversion webhooks alike.

A webhook's clientConfig names a URL or a Service (namespace, name, port, path): a service is
resolved to one of its ready endpoints (upstream's ResolveEndpoint) and the connection verifies the
server as `<name>.<namespace>.svc` against the configuration's caBundle. Failures are worded as
Go's client words them, since users search for those messages.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import ipaddress
import ssl
from typing import TYPE_CHECKING, Any

import orjson

from apimachinery import errors
from apiserver.lookup import get_object

if TYPE_CHECKING:
    import httpx

    from apiserver.server import APIServer


class CallError(Exception):
    """Calling the webhook failed (upstream's ErrCallingWebhook)."""


class Clients:
    """One HTTPS client per CA bundle (upstream's ClientManager caches them the same way)."""

    MAX = 64

    RETIRE_AFTER = 60.0  # seconds: past any call still using an evicted client (timeouts are ≤ 30 s)

    def __init__(self) -> None:
        self._clients: dict[str, httpx.AsyncClient] = {}
        self._retiring: dict[asyncio.Task[None], httpx.AsyncClient] = {}

    def get(self, ca_bundle: str) -> httpx.AsyncClient:
        client = self._clients.get(ca_bundle)
        if client is None:
            import httpx

            if len(self._clients) >= self.MAX:  # configurations churned: retire the oldest client
                self._retire(self._clients.pop(next(iter(self._clients))))
            client = httpx.AsyncClient(verify=tls_context(ca_bundle), trust_env=False, timeout=None)
            self._clients[ca_bundle] = client
        return client

    def _retire(self, client: httpx.AsyncClient) -> None:
        async def close_later() -> None:
            await asyncio.sleep(self.RETIRE_AFTER)
            await client.aclose()

        task = asyncio.get_running_loop().create_task(close_later())
        self._retiring[task] = client
        task.add_done_callback(lambda t: self._retiring.pop(t, None))

    async def close(self) -> None:
        for task, client in list(self._retiring.items()):
            task.cancel()
            await client.aclose()
        for c in self._clients.values():
            await c.aclose()
        self._clients.clear()


def tls_context(ca_bundle: str) -> ssl.SSLContext:
    """Verify against the configuration's caBundle only, or the system roots without one."""
    if not ca_bundle:
        return ssl.create_default_context()
    try:
        pem = base64.b64decode(ca_bundle, validate=True).decode("ascii")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(cadata=pem)
    except (binascii.Error, ValueError, UnicodeDecodeError, ssl.SSLError) as e:
        raise CallError(f"could not get REST client: unable to load root certificates: {e}") from None
    return ctx


def _host_port(host: str, port: int) -> str:
    try:
        if isinstance(ipaddress.ip_address(host), ipaddress.IPv6Address):
            return f"[{host}]:{port}"
    except ValueError:
        pass
    return f"{host}:{port}"


def describe_failure(e: BaseException, host_port: str, server_name: str = "") -> str:
    """An exception of the HTTP call in the words Go's client would use."""
    import httpx

    if isinstance(e, (httpx.TimeoutException, TimeoutError)):
        return "context deadline exceeded"
    chain: list[BaseException] = []
    cur: BaseException | None = e
    while cur is not None and len(chain) < 8:
        chain.append(cur)
        cur = cur.__cause__ or cur.__context__
    for c in chain:
        if isinstance(c, ssl.SSLCertVerificationError):
            if c.verify_code in (18, 19, 20, 21):  # self-signed / unknown issuer
                return "tls: failed to verify certificate: x509: certificate signed by unknown authority"
            if c.verify_code == 62:
                return f"tls: failed to verify certificate: x509: certificate is not valid for {server_name or host_port}"
            return f"tls: failed to verify certificate: {c.verify_message}"
        if isinstance(c, ConnectionRefusedError) or "Connection refused" in str(c):
            return f"dial tcp {host_port}: connect: connection refused"
        if isinstance(c, ssl.SSLError):
            return f"remote error: tls: {c.reason or c}"
    return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__


def http_status_message(code: int, body: bytes) -> str:
    """client-go's words for an error answer that is no Status (NewGenericServerResponse)."""
    known = {
        400: "the server rejected our request for an unknown reason",
        401: "the server has asked for the client to provide credentials",
        403: "the server does not allow access to the requested resource",
        404: "the server could not find the requested resource",
        405: "the server does not allow this method on the requested resource",
        409: "the server reported a conflict",
        422: "the server rejected our request due to an error in our request",
        429: "the server has received too many requests and has asked us to try again later",
        503: "the server is currently unable to handle the request",
        504: "the server was unable to return a response in the time allotted, but may still be processing the request",
    }
    if code in known:
        return known[code]
    text = body[:1024].decode("utf-8", "replace").strip()
    if code >= 500:
        return f'an error on the server ("{text}") has prevented the request from succeeding'
    return f"the server responded with the status code {code} but did not return more information"


class WebhookCaller:
    """Posts a JSON document to a webhook and returns its decoded JSON answer (CallError if that fails)."""

    def __init__(self, server: APIServer, user_agent: str) -> None:
        self.server = server
        self.user_agent = user_agent
        self.clients = Clients()

    async def target(self, cc: dict[str, Any], timeout: int) -> tuple[str, str, dict[str, str], dict[str, Any]]:
        """→ (URL as the error messages show it, URL to connect to, extra headers, extensions)."""
        query = f"?timeout={timeout}s"
        url = cc.get("url")
        if isinstance(url, str) and url:
            return url + query, url + query, {}, {}
        svc = cc.get("service") or {}
        ns, name = str(svc.get("namespace") or ""), str(svc.get("name") or "")
        port = svc.get("port") or 443
        path = str(svc.get("path") or "")
        server_name = f"{name}.{ns}.svc"
        shown = f"https://{server_name}:{port}{path}{query}"
        try:
            ip, target_port = await self.resolve(ns, name, port)
        except errors.StatusError as e:
            raise CallError(f'Post "{shown}": {e.message}') from None
        connect = f"https://{_host_port(ip, target_port)}{path or '/'}{query}"
        # connect to the endpoint, but verify (and name) the server as the service
        return shown, connect, {"Host": f"{server_name}:{port}"}, {"sni_hostname": server_name}

    async def resolve(self, ns: str, name: str, port: int) -> tuple[str, int]:
        """A ready endpoint of the service's port (upstream's ResolveEndpoint); an ExternalName
        service is its external name (as upstream's default, cluster-IP, resolver answers it)."""
        import random

        svc = await get_object(self.server, "", "services", ns, name)
        if svc is None:
            raise errors.not_found("service", name)
        spec = svc.get("spec") or {}
        if spec.get("type") == "ExternalName" and spec.get("externalName"):
            return str(spec["externalName"]), port
        if spec.get("type", "ClusterIP") not in ("ClusterIP", "LoadBalancer", "NodePort"):
            raise errors.bad_request(f'unsupported service type "{spec.get("type")}"')
        svc_port = next((p for p in spec.get("ports") or [] if p.get("port") == port), None)
        if svc_port is None:
            raise errors.service_unavailable(f'no service port {port} found for service "{name}"')
        eps = await get_object(self.server, "", "endpoints", ns, name)
        if eps is None:
            raise errors.not_found("endpoints", name)
        subsets = [s for s in eps.get("subsets") or [] if s.get("addresses")]
        random.shuffle(subsets)
        for ss in subsets:
            for p in ss.get("ports") or []:
                if (p.get("name") or "") == (svc_port.get("name") or "") and isinstance(p.get("port"), int):
                    addr = random.choice(ss["addresses"])
                    return str(addr.get("ip")), int(p.get("port"))
        raise errors.service_unavailable(f'no endpoints available for service "{name}"')

    async def post(self, cc: dict[str, Any], document: Any, timeout: int) -> Any:
        shown, connect, headers, extensions = await self.target(cc, timeout)
        client = self.clients.get(str(cc.get("caBundle") or ""))
        import httpx

        target = httpx.URL(connect)
        host_port = target.netloc.decode()
        server_name = extensions.get("sni_hostname") or target.host
        try:
            async with asyncio.timeout(timeout):
                resp = await client.post(
                    connect, content=orjson.dumps(document), extensions=extensions, timeout=timeout,
                    headers={"Content-Type": "application/json", "Accept": "application/json",
                             "User-Agent": self.user_agent, **headers},
                )
        except (httpx.HTTPError, OSError, ssl.SSLError, TimeoutError) as e:
            raise CallError(f'Post "{shown}": {describe_failure(e, host_port, server_name)}') from None
        if not 200 <= resp.status_code < 300:
            raise CallError(http_status_message(resp.status_code, resp.content))
        try:
            return orjson.loads(resp.content)
        except orjson.JSONDecodeError as e:
            raise CallError(str(e)) from None

    async def close(self) -> None:
        await self.clients.close()
