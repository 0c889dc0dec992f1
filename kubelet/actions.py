"""The handlers probes and lifecycle hooks run: exec (CRI ExecSync), httpGet, tcpSocket, grpc, sleep.

Each returns (success, message). Network handlers talk to the pod's own IP (or the host the
spec names): the pods' bridge, never anything beyond it unless the spec says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import aiohttp
import grpc

from kubelet.cri import CRIClient, CRIError

log = logging.getLogger("kubelet.actions")

MAX_OUTPUT = 10 * 1024  # upstream keeps at most 10 KiB of probe output


def resolve_port(port: Any, container: dict[str, Any]) -> int:
    """An int port, or a named port looked up in the container's ports."""
    if isinstance(port, int):
        return port
    if isinstance(port, str) and port.isdigit():
        return int(port)
    for p in container.get("ports") or []:
        if p.get("name") == port:
            return int(p["containerPort"])
    raise ValueError(f"port {port!r} is not a number and not a named port of container {container.get('name')}")


class ActionRunner:
    def __init__(self, cri: CRIClient) -> None:
        self.cri = cri
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=False, force_close=True, limit=0),
                cookie_jar=aiohttp.DummyCookieJar(),
                trust_env=False,  # never through a proxy from the environment
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def run(
        self, handler: dict[str, Any], container: dict[str, Any], container_id: str, pod_ip: str, timeout: float
    ) -> tuple[bool, str]:
        try:
            if "exec" in handler and handler["exec"] is not None:
                return await self.exec(container_id, (handler["exec"] or {}).get("command") or [], timeout)
            if handler.get("httpGet") is not None:
                return await self.http_get(handler["httpGet"], container, pod_ip, timeout)
            if handler.get("tcpSocket") is not None:
                return await self.tcp(handler["tcpSocket"], container, pod_ip, timeout)
            if handler.get("grpc") is not None:
                return await self.grpc_check(handler["grpc"], pod_ip, timeout)
            if handler.get("sleep") is not None:
                await asyncio.sleep(float((handler["sleep"] or {}).get("seconds", 0)))
                return True, ""
        except ValueError as e:
            return False, str(e)
        return False, "the handler has no action (exec, httpGet, tcpSocket, grpc or sleep)"

    async def exec(self, container_id: str, command: list[str], timeout: float) -> tuple[bool, str]:
        if not command:
            return False, "exec: no command"
        try:
            code, out, err = await self.cri.exec_sync(container_id, command, max(1, int(timeout)))
        except CRIError as e:
            if e.timed_out:
                return False, f"command {command!r} timed out"
            return False, f"exec failed: {e.message}"
        text = (out + err)[:MAX_OUTPUT].decode(errors="replace")
        if code != 0:
            return False, f"command {command!r} exited with {code}: {text}"
        return True, text

    async def http_get(
        self, spec: dict[str, Any], container: dict[str, Any], pod_ip: str, timeout: float
    ) -> tuple[bool, str]:
        host = spec.get("host") or pod_ip
        if not host:
            return False, "httpGet: the pod has no IP yet"
        port = resolve_port(spec.get("port"), container)
        scheme = (spec.get("scheme") or "HTTP").lower()
        path = spec.get("path") or "/"
        if not path.startswith("/"):
            path = "/" + path
        hostport = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        url = f"{scheme}://{hostport}{path}"
        headers = {"User-Agent": "kube-probe/1.31", "Accept": "*/*"}
        for h in spec.get("httpHeaders") or []:
            headers[h.get("name", "")] = h.get("value", "")
        try:
            async with self._http().get(
                url, headers=headers, timeout=aiohttp.ClientTimeout(total=timeout), allow_redirects=True
            ) as resp:
                body = await resp.content.read(MAX_OUTPUT)
                if 200 <= resp.status < 400:
                    return True, body.decode(errors="replace")
                return False, f"HTTP probe failed with statuscode: {resp.status}"
        except TimeoutError:
            return False, f'Get "{url}": context deadline exceeded (Client.Timeout exceeded while awaiting headers)'
        except aiohttp.ClientError as e:
            return False, f'Get "{url}": {e}'

    async def tcp(
        self, spec: dict[str, Any], container: dict[str, Any], pod_ip: str, timeout: float
    ) -> tuple[bool, str]:
        host = spec.get("host") or pod_ip
        port = resolve_port(spec.get("port"), container)
        try:
            async with asyncio.timeout(timeout):
                _, writer = await asyncio.open_connection(host, port)
        except (OSError, TimeoutError) as e:
            return False, f"dial tcp {host}:{port}: {e or 'i/o timeout'}"
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
        return True, ""

    async def grpc_check(self, spec: dict[str, Any], pod_ip: str, timeout: float) -> tuple[bool, str]:
        """grpc.health.v1.Health/Check; the request and answer are encoded by hand (one field each)."""
        port = int(spec.get("port") or 0)
        service = (spec.get("service") or "").encode()
        request = (b"\x0a" + bytes([len(service)]) + service) if service else b""
        async with grpc.aio.insecure_channel(f"{pod_ip}:{port}") as channel:
            call = channel.unary_unary(
                "/grpc.health.v1.Health/Check",
                request_serializer=lambda b: b,
                response_deserializer=lambda b: b,
            )
            try:
                answer = await call(request, timeout=timeout)
            except grpc.RpcError as e:
                return False, f"rpc error: code = {e.code().name} desc = {e.details()}"
        status = answer[1] if len(answer) >= 2 and answer[0] == 0x08 else 0
        if status == 1:
            return True, ""
        return False, f"service unhealthy (responded with {['UNKNOWN', 'SERVING', 'NOT_SERVING', 'SERVICE_UNKNOWN'][status] if status < 4 else status})"
