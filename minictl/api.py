"""minictl's one synchronous API client (httpx): requests, Status errors, streams, discovery.

Daemons use the async ``client/`` library; a CLI makes a handful of requests and exits, so
this is a thin synchronous layer over one ``httpx.Client`` built from a kubeconfig context.
Every non-2xx answer becomes an ``apimachinery.errors.StatusError`` carrying the server's
Status (or one built from the HTTP code, the way client-go builds it).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import orjson

from apimachinery.errors import StatusError
from certs.kubeconfig import KubeconfigInfo

TABLE_ACCEPT = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
AGGREGATED_ACCEPT = ("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,"
                     "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json")
USER_AGENT = "minictl/0.1.0 (linux) minik8s"
DISCOVERY_TTL_SECONDS = 600.0

# Reason client-go gives an error answer that carries no Status body (apimachinery NewGenericServerResponse).
_CODE_REASONS = {
    400: ("BadRequest", "the server rejected our request for an unknown reason"),
    401: ("Unauthorized", "the server has asked for the client to provide credentials"),
    403: ("Forbidden", "the server does not allow access to the requested resource"),
    404: ("NotFound", "the server could not find the requested resource"),
    405: ("MethodNotAllowed", "the server does not allow this method on the requested resource"),
    406: ("NotAcceptable", "the server was unable to respond with a content type that the client supports"),
    409: ("Conflict", "the server reported a conflict"),
    410: ("Expired", "the server could not find the requested resource"),
    415: ("UnsupportedMediaType", "the server was unable to respond with a content type that the client supports"),
    422: ("Invalid", "the server rejected our request due to an error in our request"),
    429: ("TooManyRequests", "the server has received too many requests and has asked us to try again later"),
    500: ("InternalError", "an error on the server has prevented the request from succeeding"),
    503: ("ServiceUnavailable", "the server is currently unable to handle the request"),
    504: ("Timeout", "the server was unable to return a response in the time allotted, but may still be processing the request"),
}


class ConnectionFailure(Exception):
    """The server could not be reached; the message is kubectl's wording."""


class ResourceTypeError(Exception):
    """A resource type name the server does not serve."""


def status_error_from_response(code: int, body: bytes) -> StatusError:
    try:
        doc = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        doc = None
    if isinstance(doc, dict) and doc.get("kind") == "Status":
        err = StatusError.from_status(doc)
        if not err.code:
            err.code = code
        return err
    reason, message = _CODE_REASONS.get(code, ("", f"an error on the server ({body.decode(errors='replace').strip()}) "
                                                  "has prevented the request from succeeding"))
    text = body.decode(errors="replace").strip()
    if text and code in _CODE_REASONS and not text.startswith("<"):
        message = f"{message} ({text})" if code != 404 else message
    return StatusError(code, reason, message)


# --- resource types ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ResourceType:
    """One served resource, as discovery describes it."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    singular: str = ""
    verbs: tuple[str, ...] = ()
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_resource(self) -> str:
        """`deployments.apps` (how messages and kubectl name a resource)."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def kind_name(self) -> str:
        """`deployment.apps` (the prefix of `-o name` and of "created" messages)."""
        return f"{self.kind.lower()}.{self.group}" if self.group else self.kind.lower()

    def path(self, namespace: str | None = None, name: str | None = None, subresource: str | None = None) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{quote(namespace, safe='')}"
        base += f"/{self.plural}"
        if name is not None:
            base += f"/{quote(name, safe='')}"
            if subresource:
                base += f"/{subresource}"
        return base

    def to_json(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.__dict__.items()}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ResourceType:
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


def _from_aggregated(doc: dict[str, Any]) -> list[ResourceType]:
    out: list[ResourceType] = []
    for group in doc.get("items") or []:
        name = (group.get("metadata") or {}).get("name") or ""
        for v in group.get("versions") or []:
            for r in v.get("resources") or []:
                rk = r.get("responseKind") or {}
                out.append(ResourceType(
                    group=name, version=v.get("version", ""), plural=r.get("resource", ""), kind=rk.get("kind", ""),
                    namespaced=r.get("scope") == "Namespaced", singular=r.get("singularResource", ""),
                    verbs=tuple(r.get("verbs") or ()), short_names=tuple(r.get("shortNames") or ()),
                    categories=tuple(r.get("categories") or ()),
                    subresources=tuple(s.get("subresource", "") for s in r.get("subresources") or ()),
                ))
    return out


def _from_resource_list(group: str, version: str, doc: dict[str, Any]) -> list[ResourceType]:
    subs: dict[str, list[str]] = {}
    out: list[dict[str, Any]] = []
    for r in doc.get("resources") or []:
        name = r.get("name", "")
        if "/" in name:
            parent, _, sub = name.partition("/")
            subs.setdefault(parent, []).append(sub)
            continue
        out.append({"group": group, "version": version, "plural": name, "kind": r.get("kind", ""),
                    "namespaced": bool(r.get("namespaced")), "singular": r.get("singularName") or r.get("kind", "").lower(),
                    "verbs": tuple(r.get("verbs") or ()), "short_names": tuple(r.get("shortNames") or ()),
                    "categories": tuple(r.get("categories") or ())})
    return [ResourceType(**d, subresources=tuple(subs.get(d["plural"], ()))) for d in out]


def cache_root() -> Path:
    env = os.environ.get("MINIK8S_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "minik8s"


class Discovery:
    """Resource types the server serves, cached on disk for a few minutes per server (like kubectl's
    ~/.kube/cache/discovery), refreshed once when a name cannot be resolved."""

    def __init__(self, api: Api, cache_dir: Path | None = None, ttl: float = DISCOVERY_TTL_SECONDS) -> None:
        self.api = api
        host = urlsplit(api.server).netloc.replace(":", "_") or "server"
        self.cache_file = (cache_dir or cache_root()) / "discovery" / host / "resources.json"
        self.ttl = ttl
        self._types: list[ResourceType] | None = None
        self._fresh = False

    def types(self) -> list[ResourceType]:
        if self._types is None:
            self._types = self._read_cache()
            if self._types is None:
                self.refresh()
        return self._types or []

    def refresh(self) -> list[ResourceType]:
        self._types = self._fetch()
        self._fresh = True
        with contextlib.suppress(OSError):
            self.cache_file.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.cache_file.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps({"fetched": time.time(), "resources": [t.to_json() for t in self._types]}))
            os.replace(tmp, self.cache_file)
        return self._types

    def _read_cache(self) -> list[ResourceType] | None:
        try:
            doc = json.loads(self.cache_file.read_text())
            if time.time() - float(doc["fetched"]) > self.ttl:
                return None
            return [ResourceType.from_json(d) for d in doc["resources"]]
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _fetch(self) -> list[ResourceType]:
        types: list[ResourceType] = []
        for path in ("/api", "/apis"):
            r = self.api.request("GET", path, headers={"Accept": AGGREGATED_ACCEPT})
            doc = r.json()
            if doc.get("kind") == "APIGroupDiscoveryList":
                types += _from_aggregated(doc)
            elif path == "/api":
                for v in doc.get("versions") or ["v1"]:
                    types += _from_resource_list("", v, self.api.get(f"/api/{v}"))
            else:
                for g in doc.get("groups") or []:
                    for v in g.get("versions") or []:
                        types += _from_resource_list(g["name"], v["version"],
                                                     self.api.get(f"/apis/{g['name']}/{v['version']}"))
        return types

    def _match(self, name: str) -> list[ResourceType]:
        name = name.lower()
        resource, _, rest = name.partition(".")
        out: list[ResourceType] = []
        for t in self.types():
            names = {t.plural, t.singular or t.kind.lower(), t.kind.lower(), *(s.lower() for s in t.short_names)}
            if not rest:
                if name in names:
                    out.append(t)
            elif resource in names:
                # RESOURCE.GROUP or RESOURCE.VERSION.GROUP
                version, _, group = rest.partition(".")
                if rest == t.group or (group and version == t.version and group == t.group):
                    out.append(t)
        return out

    def resolve(self, name: str) -> ResourceType:
        """`po`, `pods`, `pod`, `Pod`, `deploy`, `deployments.apps`, `deployments.v1.apps` → the type
        (the legacy group first, then groups in the server's order, preferred versions first)."""
        for attempt in range(2):
            found = [t for t in self._match(name) if "/" not in t.plural]
            if found:
                return found[0]
            if attempt == 0 and not self._fresh:
                self.refresh()
        raise ResourceTypeError(f'the server doesn\'t have a resource type "{name}"')

    def category(self, name: str) -> list[ResourceType]:
        seen: set[tuple[str, str]] = set()
        out = []
        for t in self.types():
            if name in t.categories and (t.group, t.plural) not in seen:
                seen.add((t.group, t.plural))
                out.append(t)
        return out

    def for_kind(self, api_version: str, kind: str) -> ResourceType:
        group, _, version = api_version.rpartition("/")
        for attempt in range(2):
            for t in self.types():
                if t.kind == kind and t.group == group and t.version == version and "/" not in t.plural:
                    return t
            if attempt == 0 and not self._fresh:
                self.refresh()
        gv = f"{group}/{version}" if group else version
        raise ResourceTypeError(f'resource mapping not found for kind "{kind}" in version "{gv}"; '
                                "ensure CRDs are installed first")


# --- the client ----------------------------------------------------------------------------------


class Api:
    """Requests against one apiserver with one identity (a kubeconfig context)."""

    def __init__(self, info: KubeconfigInfo, *, timeout: float | None = None, verbosity: int = 0,
                 cache_dir: Path | None = None) -> None:
        self.info = info
        self.server = info.server
        self.verbosity = verbosity
        self.timeout = timeout
        self.ssl = info.ssl_context()
        headers = {"User-Agent": USER_AGENT, **info.auth_headers()}
        self.http = httpx.Client(base_url=info.server, verify=self.ssl, headers=headers,
                                 timeout=httpx.Timeout(timeout or 30.0))
        self.discovery = Discovery(self, cache_dir)

    def close(self) -> None:
        self.http.close()

    def _log(self, method: str, url: str, code: int | str, started: float) -> None:
        if self.verbosity >= 6:
            ms = int((time.monotonic() - started) * 1000)
            print(f"{method} {url} {code} in {ms} milliseconds", file=sys.stderr)

    def _connection_failure(self, e: Exception) -> ConnectionFailure:
        host = urlsplit(self.server).netloc
        if isinstance(e, httpx.ConnectError) and "refused" in str(e).lower():
            return ConnectionFailure(f"The connection to the server {host} was refused - "
                                     "did you specify the right host or port?")
        return ConnectionFailure(f"Unable to connect to the server: {e or type(e).__name__}")

    def request(self, method: str, path: str, *, params: dict[str, Any] | None = None, body: Any = None,
                content: bytes | None = None, content_type: str | None = None, headers: dict[str, str] | None = None,
                timeout: float | None = None) -> httpx.Response:
        """One request; a non-2xx answer raises StatusError."""
        hdrs = dict(headers or {})
        if body is not None:
            content = orjson.dumps(body)
            content_type = content_type or "application/json"
        if content_type:
            hdrs["Content-Type"] = content_type
        hdrs.setdefault("Accept", "application/json")
        params = {k: v for k, v in (params or {}).items() if v is not None and v != ""}
        started = time.monotonic()
        try:
            r = self.http.request(method, path, params=params, content=content, headers=hdrs,
                                  timeout=httpx.USE_CLIENT_DEFAULT if timeout is None else timeout)
        except httpx.TimeoutException as e:
            raise ConnectionFailure(f"Unable to connect to the server: {type(e).__name__}") from e
        except httpx.HTTPError as e:
            raise self._connection_failure(e) from e
        self._log(method, str(r.url), f"{r.status_code} {r.reason_phrase}", started)
        if self.verbosity >= 8 and content:
            print(f"Request Body: {content.decode(errors='replace')}", file=sys.stderr)
        if r.status_code >= 400:
            raise status_error_from_response(r.status_code, r.content)
        return r

    def get(self, path: str, params: dict[str, Any] | None = None, accept: str | None = None) -> dict[str, Any]:
        r = self.request("GET", path, params=params, headers={"Accept": accept} if accept else None)
        return orjson.loads(r.content)

    def send(self, method: str, path: str, body: Any = None, params: dict[str, Any] | None = None,
             content_type: str | None = None, content: bytes | None = None) -> dict[str, Any]:
        r = self.request(method, path, params=params, body=body, content=content, content_type=content_type)
        return orjson.loads(r.content) if r.content else {}

    def list_all(self, path: str, params: dict[str, Any] | None = None, accept: str | None = None,
                 page_size: int = 500) -> dict[str, Any]:
        """A list (or Table) followed through `continue` pages, merged into one document."""
        params = dict(params or {})
        params["limit"] = page_size
        merged: dict[str, Any] | None = None
        while True:
            doc = self.get(path, params, accept)
            if merged is None:
                merged = doc
            else:
                key = "rows" if doc.get("kind") == "Table" else "items"
                merged.setdefault(key, []).extend(doc.get(key) or [])
                merged["metadata"] = doc.get("metadata") or {}
            cont = (doc.get("metadata") or {}).get("continue")
            if not cont:
                break
            params["continue"] = cont
        assert merged is not None
        (merged.get("metadata") or {}).pop("continue", None)
        return merged

    @contextlib.contextmanager
    def stream(self, method: str, path: str, params: dict[str, Any] | None = None,
               headers: dict[str, str] | None = None) -> Iterator[httpx.Response]:
        """A response read as it arrives (logs, watches): no read timeout."""
        hdrs = {"Accept": "application/json", **(headers or {})}
        params = {k: v for k, v in (params or {}).items() if v is not None and v != ""}
        timeout = httpx.Timeout(self.timeout or 30.0, read=None)
        started = time.monotonic()
        try:
            with self.http.stream(method, path, params=params, headers=hdrs, timeout=timeout) as r:
                self._log(method, str(r.url), f"{r.status_code} {r.reason_phrase}", started)
                if r.status_code >= 400:
                    raise status_error_from_response(r.status_code, r.read())
                yield r
        except httpx.HTTPError as e:
            raise self._connection_failure(e) from e

    def watch(self, path: str, params: dict[str, Any] | None = None,
              accept: str | None = None) -> Iterator[dict[str, Any]]:
        """Watch events (`{"type", "object"}`) until the server ends the stream."""
        params = {**(params or {}), "watch": "true"}
        with self.stream("GET", path, params, {"Accept": accept} if accept else None) as r:
            for line in r.iter_lines():
                if line.strip():
                    yield orjson.loads(line)
