"""Serve /openapi/v2 and /openapi/v3 (kube-openapi's handlers) and feed the unknown-field schema.

The documents are built by `apiserver.openapi_gen` in a subprocess (it imports the official
client's models, ~40 MB we don't want resident) and cached on disk, keyed by the client
version, the resource table and the generator. At start a background thread loads the cached
file (generating it first when missing) and keeps only pre-serialized bytes; requests that
arrive earlier wait for it (`ready()`), so startup is never blocked.

Behaviour copied from upstream's handlers, since clients depend on it:

* ``/openapi/v3`` answers ``{"paths": {"apis/apps/v1": {"serverRelativeURL":
  "/openapi/v3/apis/apps/v1?hash=<SHA512>"}}}``;
* ``/openapi/v3/<gv>`` with a matching ``?hash=`` is immutable (``Cache-Control: public,
  immutable``, a year's ``Expires``); a stale hash is a 301 to the current URL;
* both documents carry a quoted ``ETag`` and honour ``If-None-Match`` (304);
* content negotiation follows the ``Accept`` clauses in preference order. /openapi/v2 comes as
  JSON or as gnostic's protobuf (client-go's OpenAPISchema() accepts only the latter; kubectl
  uses it for client-side validation and `explain --output plaintext-openapiv2`). The v3
  documents are JSON only (client-go asks for JSON); a protobuf-only request gets 406.
"""

from __future__ import annotations

import asyncio
import base64
import ctypes
import hashlib
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
from email.utils import formatdate
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson
from starlette.responses import Response

from apimachinery import errors
from apiserver.openapi_gen import cache_dir, cache_file
from apiserver.resources import ResourceTable
from apiserver.schema import PruneSchema

log = logging.getLogger("apiserver.openapi")

#: How long generation may take before we give up (it takes ~2 s here).
GENERATE_TIMEOUT = 300.0
#: Cache files kept in the cache directory (older ones are from other code/client versions).
KEEP_CACHE_FILES = 4

JSON = "application/json"
V2_PROTOBUF = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
PROTOBUF_SUBTYPES = {
    "v2": ("com.github.proto-openapi.spec.v2@v1.0+protobuf", "com.github.proto-openapi.spec.v2.v1.0+protobuf"),
    "v3": ("com.github.proto-openapi.spec.v3@v1.0+protobuf", "com.github.proto-openapi.spec.v3.v1.0+protobuf"),
}


def _status(code: int, reason: str, message: str) -> Response:
    return _json_status({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                         "message": message, "reason": reason, "code": code})


def _json_status(body: dict) -> Response:
    return Response(orjson.dumps(body), status_code=body["code"], media_type=JSON)


def _accept_clauses(accept: str) -> list[tuple[str, str]]:
    """(type, subtype) in preference order: q descending, then specific before wildcard (goautoneg)."""
    clauses = []
    for i, part in enumerate((accept or "*/*").split(",")):
        fields = [f.strip() for f in part.split(";")]
        media = fields[0].lower()
        if not media:
            continue
        q = 1.0
        for f in fields[1:]:
            name, _, value = f.partition("=")
            if name.strip() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if q <= 0:
            continue
        t, _, sub = media.partition("/")
        clauses.append((-q, t == "*", sub == "*", i, t, sub or "*"))
    clauses.sort()
    return [(c[4], c[5]) for c in clauses]


def negotiate(accept: str, doc: str) -> str | None:
    """The form to answer with: "json", "protobuf" (v2 only: we have no v3 protobuf) or None → 406.

    As upstream: the first clause (in preference order) that names a form we have wins, a
    wildcard picks JSON."""
    for t, sub in _accept_clauses(accept):
        if t not in ("application", "*"):
            continue
        if sub in ("json", "*"):
            return "json"
        if sub in PROTOBUF_SUBTYPES[doc] and doc == "v2":
            return "protobuf"
    return None


class _Document:
    """One pre-serialized document and its validators."""

    __slots__ = ("body", "etag", "last_modified", "media_type")

    def __init__(self, body: bytes, etag: str, last_modified: str, media_type: str = JSON) -> None:
        self.body = body
        self.etag = f'"{etag}"'
        self.last_modified = last_modified
        self.media_type = media_type

    def response(self, if_none_match: str, extra: dict[str, str] | None = None) -> Response:
        headers = {"ETag": self.etag, "Last-Modified": self.last_modified, "Vary": "Accept"}
        if extra:
            headers.update(extra)
        if if_none_match and self.etag in [t.strip() for t in if_none_match.split(",")]:
            return Response(status_code=304, headers=headers)
        return Response(self.body, media_type=self.media_type, headers=headers)


class OpenAPI:
    def __init__(self, table: ResourceTable, *, start: bool = False, directory: Path | None = None) -> None:
        self.table = table
        self.directory = directory
        self.schema = PruneSchema(wait=self.wait)
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._error = ""
        self._v2: _Document | None = None
        self._v2_protobuf: _Document | None = None
        self._v3: dict[str, _Document] = {}
        self._v3_root: _Document | None = None
        self._custom_v3: dict[str, _Document] = {}  # custom resources' group versions
        self._last_modified = formatdate(time.time(), usegmt=True)
        self.stats: dict[str, Any] = {}
        if start:
            self.start()

    # -- loading --------------------------------------------------------------------------

    def start(self) -> None:
        """Load (or first generate) the documents in a background thread; idempotent."""
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._load, name="openapi-load", daemon=True)
                self._thread.start()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until loading finished (successfully or not); False on timeout."""
        self.start()
        return self._done.wait(timeout)

    async def ready(self) -> None:
        """Await the end of loading without blocking the event loop."""
        if not self._done.is_set():
            self.start()
            await asyncio.to_thread(self._done.wait, GENERATE_TIMEOUT + 30)

    def _load(self) -> None:
        started = time.perf_counter()
        try:
            directory = self.directory or cache_dir()
            path = cache_file(self.table, directory)
            if not path.exists():
                try:
                    self._generate(path)
                except OSError as e:  # e.g. a read-only home in a container: use the temp dir
                    fallback = Path(tempfile.gettempdir()) / f"minik8s-cache-{os.getuid()}"
                    log.warning("cannot write the OpenAPI cache in %s (%s); using %s", directory, e, fallback)
                    path = cache_file(self.table, fallback)
                    if not path.exists():
                        self._generate(path)
                self.stats["generated_seconds"] = round(time.perf_counter() - started, 3)
            try:
                data = orjson.loads(path.read_bytes())
            except orjson.JSONDecodeError:  # damaged (written by hand?): build it again, once
                log.warning("OpenAPI cache %s is not valid JSON; generating it again", path)
                path.unlink(missing_ok=True)
                self._generate(path)
                data = orjson.loads(path.read_bytes())
            self.stats["file_bytes"] = path.stat().st_size
            self._install(data, path.stat().st_mtime)
            del data
            _release_freed_heap()
            self.stats["load_seconds"] = round(time.perf_counter() - started, 3)
            log.info("OpenAPI documents loaded from %s in %.2fs", path, time.perf_counter() - started)
        except Exception as e:  # the apiserver keeps serving; /openapi answers 503
            self._error = f"{type(e).__name__}: {e}"
            log.error("OpenAPI documents unavailable: %s", self._error)
        finally:
            self._done.set()

    def _generate(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        if not os.access(path.parent, os.W_OK):
            raise PermissionError(f"{path.parent} is not writable")
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parent.parent)
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        log.info("generating OpenAPI documents into %s", path)
        proc = subprocess.run(
            [sys.executable, "-m", "apiserver.openapi_gen", "--out", str(path)],
            env=env, capture_output=True, text=True, timeout=GENERATE_TIMEOUT, check=False,
        )
        for line in proc.stderr.splitlines():
            log.info("%s", line)
        if proc.returncode != 0 or not path.exists():
            raise RuntimeError(f"openapi_gen exited with {proc.returncode}: {proc.stderr.strip()[-2000:]}")
        self._prune_old_cache_files(path)

    @staticmethod
    def _prune_old_cache_files(current: Path) -> None:
        others = sorted((p for p in current.parent.glob("openapi-*.json") if p != current),
                        key=lambda p: p.stat().st_mtime, reverse=True)
        for p in others[KEEP_CACHE_FILES - 1:]:
            try:
                p.unlink()
            except OSError:
                pass

    def _install(self, data: dict[str, Any], mtime: float) -> None:
        last_modified = formatdate(mtime, usegmt=True)
        self.schema.load(data["prune"])
        self._v3 = {gv: _Document(entry["doc"].encode(), entry["hash"], last_modified)
                    for gv, entry in data["v3"].items()}
        self._last_modified = last_modified
        self._build_root()
        # Upstream tags both forms with the JSON document's ETag.
        self._v2_protobuf = _Document(base64.b64decode(data["v2_pb"]), data["v2_etag"], last_modified, V2_PROTOBUF)
        self._v2 = _Document(data["v2"].encode(), data["v2_etag"], last_modified)

    def _build_root(self) -> None:
        docs = {**self._v3, **self._custom_v3}
        root = {"paths": {gv: {"serverRelativeURL": _server_relative_url(gv, d.etag.strip('"'))}
                          for gv, d in sorted(docs.items())}}
        root_body = orjson.dumps(root)
        self._v3_root = _Document(root_body, hashlib.sha512(root_body).hexdigest().upper(), self._last_modified)

    def builtin_v3(self) -> dict[str, bytes]:
        """The built-in group versions' documents (custom resources borrow meta definitions)."""
        return {gv: d.body for gv, d in self._v3.items()}

    def set_custom(self, gv: str, doc: str | None) -> None:
        """Serve (or, with None, stop serving) a custom resource group version's document."""
        if doc is None:
            if self._custom_v3.pop(gv, None) is None:
                return
        else:
            etag = hashlib.sha512(doc.encode()).hexdigest().upper()
            current = self._custom_v3.get(gv)
            if current is not None and current.etag.strip('"') == etag:
                return
            self._custom_v3[gv] = _Document(doc.encode(), etag, formatdate(time.time(), usegmt=True))
        if self._v3_root is not None:
            self._build_root()

    # -- serving --------------------------------------------------------------------------

    def _unavailable(self) -> Response:
        reason = self._error or "the OpenAPI documents are still loading"
        return _status(503, "ServiceUnavailable", f"OpenAPI documents are unavailable: {reason}")

    def v2(self, accept: str, if_none_match: str = "") -> Response:
        if self._v2 is None or self._v2_protobuf is None:
            return self._unavailable()
        form = negotiate(accept, "v2")
        if form is None:
            return Response(status_code=406, headers={"Vary": "Accept"})
        return (self._v2 if form == "json" else self._v2_protobuf).response(if_none_match)

    def v3_root(self, if_none_match: str = "") -> Response:
        if self._v3_root is None:
            return self._unavailable()
        return self._v3_root.response(if_none_match)

    def v3(self, path: str, hash_: str = "", accept: str = "", if_none_match: str = "") -> Response:
        if self._v3_root is None:
            return self._unavailable()
        gv = path.strip("/")
        doc = self._v3.get(gv) or self._custom_v3.get(gv)
        if doc is None:
            return _json_status(errors.route_not_found().status())
        if negotiate(accept, "v3") is None:
            return Response(status_code=406, headers={"Vary": "Accept"})
        extra = None
        if hash_:
            current = doc.etag.strip('"')
            if hash_ != current:
                return Response(status_code=301, headers={"Location": _server_relative_url(gv, current)})
            extra = {"Cache-Control": "public, immutable",
                     "Expires": formatdate(time.time() + 365 * 86400, usegmt=True)}
        return doc.response(if_none_match, extra)


def _release_freed_heap() -> None:
    """Give the ~10 MB the parse left free back to the OS: glibc keeps freed large blocks in the
    heap once its mmap threshold has grown, so RSS would stay at the loading peak."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def _server_relative_url(gv: str, etag: str) -> str:
    return f"/openapi/v3/{gv}?hash={quote(etag)}"
