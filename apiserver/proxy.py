"""The `proxy` subresources (upstream's ProxyREST of nodes, pods and services): the request —
method, path after `/proxy`, query, body, a few headers — passed on, the answer passed back as it
is (status, body, content type).

* `nodes/<name>[:<port>]/proxy/<path>` → the node's kubelet (https, its preferred address and
  kubelet port), over the apiserver's kubelet-client connection (verified with
  --kubelet-certificate-authority): `kubectl get --raw /api/v1/nodes/<n>/proxy/stats/summary`.
* `pods/[<scheme>:]<name>[:<port>]/proxy/<path>` → `<scheme>://<podIP>:<port>` (http by default;
  no port: the first declared container port, else the scheme's).
* `services/[<scheme>:]<name>[:<port name or number>]/proxy/<path>` → one ready endpoint of that
  service port, picked at random from the Endpoints; an address counts only when its targetRef is a
  pod that has that IP (upstream's check against proxying to arbitrary addresses).

As upstream, loopback, link-local and unspecified addresses are refused, and https backends of
pods and services are not verified. Not done: upgrades (websockets) through the proxy, and
upstream's rewriting of links in HTML answers.
"""

from __future__ import annotations

import ipaddress
import random
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import aiohttp

from apimachinery import errors
from apiserver.http import StreamResponse
from apiserver.lookup import get_object
from apiserver.podproxy import join_host_port, relay

if TYPE_CHECKING:
    from apiserver.http import Request
    from apiserver.requestinfo import RequestInfo
    from apiserver.server import APIServer

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
REQUEST_HEADERS = ("accept", "content-type", "accept-encoding", "range")
RESPONSE_HEADERS = ("content-encoding", "content-range", "accept-ranges", "location", "allow")
SCHEMES = ("http", "https")


def split_scheme_name_port(spec: str) -> tuple[str, str, str]:
    """upstream's net.SplitSchemeNamePort: "name", "name:port" or "scheme:name:port"."""
    parts = spec.split(":")
    if len(parts) == 1:
        scheme, name, port = "", parts[0], ""
    elif len(parts) == 2:
        scheme, name, port = "", parts[0], parts[1]
    elif len(parts) == 3:
        scheme, name, port = parts
    else:
        raise errors.bad_request(f"invalid service request {spec!r}")
    if not name or (scheme and scheme not in SCHEMES):
        raise errors.bad_request(f"invalid service request {spec!r}")
    return scheme, name, port


def check_proxyable(ip: str) -> None:
    """upstream's IsProxyableIP: never the apiserver's own loopback or a link-local address."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        raise errors.bad_request(f"invalid address {ip!r}") from None
    if addr.is_loopback or addr.is_link_local or addr.is_unspecified or addr.is_multicast:
        raise errors.bad_request(f"address not allowed: {ip}")


class ProxySubresource:
    def __init__(self, server: APIServer) -> None:
        self.server = server
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        """For pods and services: their https is not verified (upstream's proxy transport neither)."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=False, limit=0), trust_env=False,
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=10))
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def serve(self, req: Request, info: RequestInfo, plural: str, ns: str) -> StreamResponse:
        if req.method not in METHODS:
            raise errors.method_not_allowed(f"the server does not allow this method on the requested resource ({req.method})")
        if plural == "nodes":
            name, _, port = info.name.partition(":")
            if port and not port.isdigit():
                raise errors.bad_request(f"invalid port in {info.name!r}")
            base = await self.server.podproxy.node_base(name, port)
            return await self.forward(req, info, base, self.server.podproxy.session())
        if plural == "pods":
            return await self.forward(req, info, await self.pod_location(ns, info.name), self.session())
        if plural == "services":
            return await self.forward(req, info, await self.service_location(ns, info.name), self.session())
        raise errors.route_not_found("proxy")

    async def pod_location(self, ns: str, spec: str) -> str:
        scheme, name, port = split_scheme_name_port(spec)
        pod = await get_object(self.server, "", "pods", ns, name)
        if pod is None:
            raise errors.not_found("pods", name)
        if not port:
            declared = [p for c in (pod.get("spec") or {}).get("containers") or [] for p in c.get("ports") or []]
            port = str(declared[0]["containerPort"]) if declared else ""
        ip = (pod.get("status") or {}).get("podIP") or ""
        if not ip:
            raise errors.StatusError(503, "ServiceUnavailable", f'pod "{name}" has no IP address yet')
        check_proxyable(ip)
        return f"{scheme or 'http'}://{join_host_port(ip, port)}"

    async def service_location(self, ns: str, spec: str) -> str:
        scheme, name, port = split_scheme_name_port(spec)
        svc = await get_object(self.server, "", "services", ns, name)
        if svc is None:
            raise errors.not_found("services", name)
        port_name = port
        if port.isdigit():  # a port number names its service port
            found = [p for p in (svc.get("spec") or {}).get("ports") or [] if str(p.get("port")) == port]
            if not found:
                raise errors.StatusError(503, "ServiceUnavailable", f'no service port {port} found for service "{name}"')
            port_name = found[0].get("name") or ""
        eps = await get_object(self.server, "", "endpoints", ns, name)
        subsets = list((eps or {}).get("subsets") or [])
        random.shuffle(subsets)
        for subset in subsets:
            addresses = list(subset.get("addresses") or [])
            random.shuffle(addresses)
            for ep_port in subset.get("ports") or []:
                if (ep_port.get("name") or "") != port_name:
                    continue
                for addr in addresses:
                    if await self._is_pod_address(ns, addr):
                        check_proxyable(addr["ip"])
                        return f"{scheme or 'http'}://{join_host_port(addr['ip'], str(ep_port['port']))}"
        raise errors.StatusError(503, "ServiceUnavailable", f'no endpoints available for service "{spec}"')

    async def _is_pod_address(self, ns: str, addr: dict[str, Any]) -> bool:
        """upstream's isValidAddress: the address is the IP of the pod its targetRef names."""
        ref = addr.get("targetRef") or {}
        if ref.get("kind") != "Pod" or not ref.get("name"):
            return False
        pod = await get_object(self.server, "", "pods", ref.get("namespace") or ns, ref["name"])
        if pod is None:
            return False
        status = pod.get("status") or {}
        return addr.get("ip") in {status.get("podIP"), *(p.get("ip") for p in status.get("podIPs") or [])}

    async def forward(self, req: Request, info: RequestInfo, base: str,
                      session: aiohttp.ClientSession) -> StreamResponse:
        path = "/" + "/".join(quote(p, safe="") for p in info.parts)
        if req.path.endswith("/") and not path.endswith("/"):
            path += "/"
        query = req.scope.get("query_string", b"").decode("latin-1")
        url = base + path + (f"?{query}" if query else "")
        headers = {k: req.header(k.encode()) for k in REQUEST_HEADERS if req.header(k.encode())}
        body = await req.body() if req.method in ("POST", "PUT", "PATCH") else None
        try:
            resp = await session.request(req.method, url, data=body, headers=headers, allow_redirects=False,
                                         auto_decompress=False)
        except aiohttp.ClientError as e:
            raise errors.StatusError(503, "ServiceUnavailable", f"error trying to reach service: {e}") from None
        out = relay(resp, req, resp.headers.get("Content-Type", "text/plain").encode("latin-1"))
        out.status = resp.status
        out.extra_headers = [(k.lower().encode(), v.encode("latin-1")) for k, v in resp.headers.items()
                             if k.lower() in RESPONSE_HEADERS]
        return out
