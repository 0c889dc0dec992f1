"""The async REST client every daemon uses: one aiohttp session, JSON via orjson.

`request()` is the hot path (scheduler bindings, controller writes, kubelet status): one
connection pool, headers merged once, the URL built as an already-encoded string, no
logging. Failures come back as `ApiError` (the server's Status) or `APIConnectionError`.

Retries (client-go's spirit, stated precisely):
- the connection could not be made (nothing was sent): any verb;
- 429 TooManyRequests (the server refused before doing anything): any verb, after
  Retry-After when the server sent one;
- 5xx or a broken connection after the request went out: only idempotent verbs
  (GET, HEAD, PUT, DELETE, OPTIONS) — a POST or PATCH may have been applied.
A request that times out (`ClientConfig.timeout`) is not repeated.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson
from yarl import URL

from client.backoff import Backoff
from client.config import ClientConfig, load_config
from client.discovery import Discovery
from client.errors import APIConnectionError, error_from_response, error_from_status
from client.ratelimit import TokenBucket
from client.resource import ResourceClient
from client.watchstream import WatchDecoder

log = logging.getLogger("client.rest")

IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
JSON_CT = "application/json"

Params = Mapping[str, Any] | None


def encode_params(params: Params) -> str:
    """`?a=b&c=true` (None values dropped, bools as true/false), or "" for no parameters."""
    if not params:
        return ""
    parts = []
    for k, v in params.items():
        if v is None:
            continue
        if v is True:
            v = "true"
        elif v is False:
            v = "false"
        parts.append(f"{k}={quote(str(v), safe='')}")
    return "?" + "&".join(parts) if parts else ""


class APIClient:
    """Async Kubernetes REST client. Use as `async with APIClient(cfg) as api: ...`."""

    def __init__(self, config: ClientConfig | None = None) -> None:
        self.config = config if config is not None else load_config()
        self._base = self.config.server.rstrip("/")
        self._limiter = TokenBucket(self.config.qps, self.config.burst) if self.config.qps > 0 else None
        self._session: aiohttp.ClientSession | None = None
        self._retired: list[aiohttp.ClientSession] = []  # replaced by reset_connections, closing soon
        self._retiring: set[asyncio.Task] = set()
        self._certificate_follower: asyncio.Task | None = None
        self._client_cert_pem: bytes | None = None
        self._static_headers = {
            "User-Agent": self.config.user_agent,
            "Accept": JSON_CT,
            **self.config.extra_headers,
        }
        self._auth_seen: dict[str, str] | None = None
        self._headers = dict(self._static_headers)
        self._timeout = aiohttp.ClientTimeout(total=self.config.timeout)
        self._server_hostname = self.config.tls_server_name
        self._resources: dict[tuple[str, str], ResourceClient] = {}
        self.discovery = Discovery(self)

    # -- lifecycle ---------------------------------------------------------------------

    async def __aenter__(self) -> APIClient:
        self._ensure_session()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _ensure_session(self) -> aiohttp.ClientSession:
        if self._certificate_follower is None and self.config.kubeconfig_path and self.config.ssl_context:
            self._certificate_follower = asyncio.get_running_loop().create_task(self._follow_client_certificate())
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                ssl=self.config.ssl_context if self.config.ssl_context is not None else False,
                limit=self.config.max_connections,
                limit_per_host=self.config.max_connections,
                keepalive_timeout=self.config.idle_connection_timeout,
                ttl_dns_cache=300,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                cookie_jar=aiohttp.DummyCookieJar(),  # the API sets no cookies: skip the jar
                trust_env=False,
                auto_decompress=False,
            )
        return self._session

    async def close(self) -> None:
        if self._certificate_follower is not None:
            self._certificate_follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._certificate_follower
            self._certificate_follower = None
        if self._session is not None:
            await self._session.close()
            self._session = None
        for task in list(self._retiring):
            task.cancel()
        retired, self._retired = self._retired, []
        for old in retired:
            await old.close()

    def reset_connections(self, grace: float = 30.0) -> None:
        """Open new connections for new requests (e.g. to present a renewed client certificate,
        as client-go closes the kubelet's connections after a rotation); the old pool is closed
        after `grace` seconds, when the requests in flight on it are done (a watch still open
        then breaks and its owner reopens it)."""
        old = self._session
        self._session = None
        self._ensure_session()
        if old is None or old.closed:
            return
        self._retired.append(old)

        async def close_later() -> None:
            try:
                await asyncio.sleep(grace)
            finally:
                if old in self._retired:
                    self._retired.remove(old)
                    await old.close()

        task = asyncio.get_running_loop().create_task(close_later())
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    def use_client_certificate(self, cert_pem: bytes, key_pem: bytes) -> None:
        """Present this client certificate from now on (new connections; the old ones close
        after reset_connections' grace period). ValueError/ssl.SSLError for a bad pair."""
        from certs.kubeconfig import load_cert_chain

        if self.config.ssl_context is None:
            return
        load_cert_chain(self.config.ssl_context, cert_pem, key_pem)
        self._client_cert_pem = cert_pem
        self.reset_connections()

    async def _follow_client_certificate(self) -> None:
        from certs.kubeconfig import load_kubeconfig
        from client.certificate import split_pem

        path = self.config.kubeconfig_path
        assert path is not None

        def pair() -> tuple[bytes, bytes]:
            # certificate and key apart, as use_client_certificate gets them: a kubeconfig naming
            # one combined file (the kubelet's store) for both must not look like a new certificate
            info = load_kubeconfig(path)
            return split_pem(info.client_cert_pem or b"")[0], split_pem(info.client_key_pem or b"")[1]

        with contextlib.suppress(OSError, ValueError):
            self._client_cert_pem = self._client_cert_pem or pair()[0]
        while True:
            await asyncio.sleep(self.config.certificate_reload_interval)
            try:
                cert_pem, key_pem = pair()
                if cert_pem and key_pem and cert_pem != self._client_cert_pem:
                    self.use_client_certificate(cert_pem, key_pem)
                    log.info("client certificate from %s reloaded", path)
            except (OSError, ValueError) as e:  # ssl.SSLError is an OSError: e.g. a half-written pair
                log.warning("client certificate from %s not reloaded: %s", path, e)

    @property
    def closed(self) -> bool:
        return self._session is None or self._session.closed

    # -- plumbing ----------------------------------------------------------------------

    def _request_headers(self) -> dict[str, str]:
        ts = self.config.token_source
        if ts is None:
            return self._headers
        auth = ts.headers()
        if auth is not self._auth_seen:  # the token was (re-)read: merge once
            self._auth_seen = auth
            self._headers = {**self._static_headers, **auth}
        return self._headers

    async def _throttle(self) -> None:
        if self._limiter is not None:
            delay = self._limiter.reserve()
            if delay > 0:
                await asyncio.sleep(delay)

    # -- requests ----------------------------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        params: Params = None,
        body: Any = None,
        content_type: str | None = None,
        *,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Send one request and return the decoded JSON answer ({} for an empty body).

        `body` is a dict/list (encoded as JSON), or str/bytes sent as they are.
        Raises ApiError for a non-2xx answer, APIConnectionError when no answer came.
        """
        data, _ctype = await self.request_raw(method, path, params, body, content_type, timeout=timeout)
        return orjson.loads(data) if data else {}

    async def request_raw(
        self,
        method: str,
        path: str,
        params: Params = None,
        body: Any = None,
        content_type: str | None = None,
        *,
        timeout: float | None = None,
        accept: str | None = None,
    ) -> tuple[bytes, str]:
        """Like `request` but returns the raw body and its content type (e.g. pod logs)."""
        session = self._session if self._session is not None else self._ensure_session()
        url = URL(self._base + path + encode_params(params), encoded=True)
        headers = self._request_headers()
        data: bytes | None = None
        if body is not None:
            data = body if isinstance(body, bytes) else body.encode() if isinstance(body, str) else orjson.dumps(body)
            headers = {**headers, "Content-Type": content_type or JSON_CT}
        if accept is not None:
            headers = {**headers, "Accept": accept}
        tmo = self._timeout if timeout is None else aiohttp.ClientTimeout(total=timeout)
        idempotent = method in IDEMPOTENT
        max_retries = self.config.max_retries
        attempt = 0
        backoff: Backoff | None = None
        while True:
            if self._limiter is not None:
                delay = self._limiter.reserve()
                if delay > 0:
                    await asyncio.sleep(delay)
            retry_after: int | None = None
            try:
                async with session.request(
                    method, url, data=data, headers=headers, timeout=tmo, server_hostname=self._server_hostname
                ) as resp:
                    raw = await resp.read()
                    status = resp.status
                    if status < 300:
                        return raw, resp.headers.get("Content-Type", "")
                    api_err = error_from_response(status, raw, method, path, resp.headers.get("Retry-After"))
            except aiohttp.ClientConnectorCertificateError as e:
                raise APIConnectionError(f"{method} {path}: {e}", method=method, path=path) from e
            except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as e:
                err: Exception = APIConnectionError(f"{method} {path}: {e}", method=method, path=path)
                err.__cause__ = e
                retriable = True  # never reached the server
            except (aiohttp.ServerTimeoutError, TimeoutError) as e:
                # the server is there but slow: asking again would only add load
                raise APIConnectionError(f"{method} {path}: timed out", method=method, path=path) from e
            except aiohttp.ClientError as e:
                err = APIConnectionError(f"{method} {path}: {type(e).__name__}: {e}", method=method, path=path)
                err.__cause__ = e
                retriable = idempotent
            else:
                if status != 429 and not (status >= 500 and idempotent):
                    raise api_err
                err, retriable, retry_after = api_err, True, api_err.retry_after
            if not retriable or attempt >= max_retries:
                raise err
            attempt += 1
            if backoff is None:
                backoff = Backoff(initial=0.1, cap=5.0, jitter=1.0)
            wait = backoff.next()
            await asyncio.sleep(max(wait, float(retry_after)) if retry_after is not None else wait)

    async def stream_watch(
        self, path: str, params: Params = None, *, read_timeout: float | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """Open a watch on `path` and yield its events ({"type", "object"}) as they arrive.

        Ends when the server ends the stream (timeoutSeconds passed: normal). An ERROR
        event is raised as ApiError (410 Expired → `is_gone`); a broken stream as
        APIConnectionError. `read_timeout` bounds the silence between two chunks.
        Close it early with `contextlib.aclosing(...)` or `aclose()`.
        """
        session = self._session if self._session is not None else self._ensure_session()
        query = dict(params or {})
        query["watch"] = "true"
        url = URL(self._base + path + encode_params(query), encoded=True)
        tmo = aiohttp.ClientTimeout(total=None, sock_connect=self.config.timeout, sock_read=read_timeout)
        await self._throttle()
        try:
            resp = await session.request(
                "GET", url, headers=self._request_headers(), timeout=tmo, server_hostname=self._server_hostname
            )
        except (aiohttp.ClientError, TimeoutError) as e:
            raise APIConnectionError(f"WATCH {path}: {type(e).__name__}: {e}", method="GET", path=path) from e
        finished = False
        try:
            if resp.status != 200:
                finished = True
                raw = await resp.read()
                raise error_from_response(resp.status, raw, "GET", path, resp.headers.get("Retry-After"))
            decoder = WatchDecoder()
            content = resp.content
            while True:
                try:
                    chunk = await content.readany()
                except (aiohttp.ClientError, TimeoutError) as e:
                    raise APIConnectionError(
                        f"WATCH {path}: stream broken: {type(e).__name__}: {e}", method="GET", path=path
                    ) from e
                if not chunk:
                    finished = True
                    if decoder.pending:
                        raise APIConnectionError(f"WATCH {path}: stream cut mid-event", method="GET", path=path)
                    return
                for ev in decoder.feed(chunk):
                    if ev["type"] == "ERROR":
                        raise error_from_status(ev["object"], "WATCH", path)
                    yield ev
        finally:
            if finished:
                resp.release()
            else:
                resp.close()  # left mid-stream: this connection cannot be reused

    # -- resources ---------------------------------------------------------------------

    def resource(self, api_version: str, plural: str) -> ResourceClient:
        """The verbs of one resource, e.g. `api.resource("apps/v1", "deployments")` (cached)."""
        key = (api_version, plural)
        rc = self._resources.get(key)
        if rc is None:
            rc = self._resources[key] = ResourceClient(self, api_version, plural)
        return rc

    async def resource_for_kind(self, api_version: str, kind: str) -> ResourceClient:
        """The resource serving `kind` in `api_version` (from discovery), e.g. ("v1", "Pod")."""
        info = await self.discovery.resolve_kind(api_version, kind)
        return self.resource(api_version, info.plural)

    async def version(self) -> dict[str, Any]:
        return await self.request("GET", "/version")
