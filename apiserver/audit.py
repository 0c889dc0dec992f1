"""Auditing as upstream's kube-apiserver does it: audit.k8s.io/v1 `Event`s, one JSON per line.

A request's events follow its stages: `RequestReceived` (once it is authenticated),
`ResponseStarted` (long-running requests — watches, logs, exec, proxies — when the response
head goes out), then `ResponseComplete`, or `Panic` when serving it failed unexpectedly (our
500 internal errors). The audit policy (apiserver/auditpolicy.py) picks each request's level and
the stages left out; with no policy nothing is audited, as upstream. Levels: `Metadata` (who,
what, when, the answer's code), `Request` (+ the request body), `RequestResponse` (+ the
response body); bodies are decoded only at the levels that log them (and a create's body at
Metadata level, whose `objectRef.name` comes from it).

The log backend (`--audit-log-*`) keeps writing off the request's latency: lines go to a buffered
file flushed one second after the first unflushed one (mode `blocking`: serialised at once;
`batch`: serialised at the flush), rotated by size with timestamped backups as upstream's
(lumberjack's) `name-2006-01-02T15-04-05.000.ext`, optionally gzipped, pruned by count and age.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import gzip
import logging
import os
import random
import shutil
import sys
import threading
import time
from pathlib import Path
from typing import Any

import orjson

from apiserver.auditpolicy import RANK, Attributes, Policy, RequestAuditConfig

log = logging.getLogger("apiserver.audit")

API_VERSION = "audit.k8s.io/v1"
DECISION = "authorization.k8s.io/decision"
REASON = "authorization.k8s.io/reason"
#: verbs whose request body is an object (or a patch, or DeleteOptions) to log
_BODY_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})
_REQUEST = RANK["Request"]
_REQUEST_RESPONSE = RANK["RequestResponse"]


_second: list[Any] = [None, ""]  # the last second formatted (most timestamps share it)


def micro_time(ts: float) -> str:
    """metav1.MicroTime: RFC 3339 in UTC with microseconds."""
    micros = round(ts * 1_000_000)
    sec, frac = divmod(micros, 1_000_000)
    if _second[0] != sec:
        _second[0], _second[1] = sec, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
    return f"{_second[1]}.{frac:06d}Z"


def new_audit_id(req: Any) -> str:
    """The request's audit ID: the client's `Audit-ID` header if it sent one (as upstream), else a UUID."""
    given = (req.headers.get(b"audit-id") or b"").decode("latin-1").strip()
    if given:
        return given
    # a random (version 4) UUID; unique, not secret: the process's PRNG spares a syscall per request
    h = f"{(random.getrandbits(128) & _V4_MASK) | _V4_BITS:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


_V4_MASK = ~((0xF << 76) | (0xC << 60)) & ((1 << 128) - 1)
_V4_BITS = (0x4 << 76) | (0x8 << 60)


def source_ips(req: Any) -> list[str]:
    """upstream's utilnet.SourceIPs: X-Forwarded-For, X-Real-Ip, then the peer's address."""
    ips: list[str] = []
    fwd = req.headers.get(b"x-forwarded-for")
    if fwd:
        ips += [p.strip() for p in fwd.decode("latin-1").split(",") if p.strip()]
    real = req.headers.get(b"x-real-ip")
    if real:
        ip = real.decode("latin-1").strip()
        if ip and ip not in ips:
            ips.append(ip)
    client = req.scope.get("client")
    if client and client[0] not in ips:
        ips.append(client[0])
    return ips


def response_status(code: int, status: dict[str, Any] | None = None) -> dict[str, Any]:
    """The event's responseStatus: the code, plus a Status answer's status, message, reason and details."""
    out: dict[str, Any] = {"metadata": {}}
    if status:
        for k in ("status", "message", "reason", "details"):
            if status.get(k):
                out[k] = status[k]
        code = status.get("code") or code
    out["code"] = code
    return out


def _without_managed_fields(obj: Any) -> Any:
    if isinstance(obj, dict):
        meta = obj.get("metadata")
        if isinstance(meta, dict):
            meta.pop("managedFields", None)
        items = obj.get("items")
        if isinstance(items, list):
            for item in items:
                _without_managed_fields(item)
    return obj


class RequestAudit:
    """One audited request: its event, emitted at each stage its policy keeps."""

    __slots__ = ("annotations", "auditor", "cfg", "impersonated", "object_ref", "received", "req",
                 "request_object", "response_object", "status", "user", "verb")

    def __init__(self, auditor: Auditor, cfg: RequestAuditConfig, req: Any, info: Any, received: float) -> None:
        self.auditor = auditor
        self.cfg = cfg
        self.req = req
        self.received = received
        impersonator = req.scope.get("minik8s.impersonator")
        # as upstream: `user` is who authenticated, `impersonatedUser` whom they acted as
        self.user = (impersonator or req.user).as_dict() if (impersonator or req.user) else {}
        self.impersonated = req.user.as_dict() if impersonator is not None else None
        self.object_ref: dict[str, Any] | None = None
        if info is not None and info.is_resource:
            ref: dict[str, Any] = {"resource": info.resource}
            if info.namespace:
                ref["namespace"] = info.namespace
            if info.name:
                ref["name"] = info.name
            if info.group:
                ref["apiGroup"] = info.group
            ref["apiVersion"] = info.version
            if info.subresource:
                ref["subresource"] = info.subresource
            self.object_ref = ref
            self.verb = info.verb
        else:
            self.verb = info.verb if info is not None else req.method.lower()
        self.status: dict[str, Any] | None = None
        self.request_object: Any = None
        self.response_object: Any = None
        self.annotations: dict[str, str] | None = None

    def emit(self, stage: str, now: float | None = None) -> None:
        if stage in self.cfg.omit_stages:
            return
        req = self.req
        ev: dict[str, Any] = {
            "kind": "Event", "apiVersion": API_VERSION, "level": self.cfg.level,
            "auditID": req.scope["minik8s.audit_id"], "stage": stage,
            "requestURI": req.path + ("?" + req.scope["query_string"].decode("latin-1") if req.scope["query_string"] else ""),
            "verb": self.verb, "user": self.user,
        }
        if self.impersonated is not None:
            ev["impersonatedUser"] = self.impersonated
        ev["sourceIPs"] = source_ips(req)
        ua = req.headers.get(b"user-agent")
        if ua:
            ev["userAgent"] = ua.decode("latin-1")
        if self.object_ref is not None:
            ev["objectRef"] = self.object_ref
        if self.status is not None:
            ev["responseStatus"] = self.status
        if self.request_object is not None:
            ev["requestObject"] = self.request_object
        if self.response_object is not None:
            ev["responseObject"] = self.response_object
        ev["requestReceivedTimestamp"] = micro_time(self.received)
        ev["stageTimestamp"] = micro_time(self.received if stage == "RequestReceived" else (now or time.time()))
        if self.annotations:
            ev["annotations"] = dict(sorted(self.annotations.items()))
        self.auditor.backend.process(ev)

    def started(self, code: int) -> None:
        """A long-running request's response head went out."""
        self.status = response_status(code)
        self.emit("ResponseStarted")

    def complete(self, code: int, status: dict[str, Any] | None, body: bytes | None,
                 annotations: dict[str, str] | None, panic: str | None = None) -> None:
        """The request is over: its answer (`status`: a Status answer, `body`: the response's JSON
        where the level logs it) and the annotations collected on the way."""
        self.annotations = annotations
        level = RANK[self.cfg.level]
        if self.verb in _BODY_VERBS and self.req._body:
            self._request_object(level)
        if panic is not None:
            self.status = {"metadata": {}, "status": "Failure", "message": f"APIServer panic'd: {panic}",
                           "reason": "InternalError", "code": 500}
            self.emit("Panic")
            return
        if status is None and code >= 400 and body and body[:1] == b"{":
            with contextlib.suppress(ValueError):
                answer = orjson.loads(body)
                if isinstance(answer, dict) and answer.get("kind") == "Status":
                    status = answer
        self.status = response_status(code or 200, status)
        if level >= _REQUEST_RESPONSE and body and self.verb not in ("watch",) and body[:1] in (b"{", b"["):
            if self.cfg.omit_managed_fields or b"\n" in body:
                # (a body with a raw newline is not ours — compact orjson never has one — e.g. a
                # kubelet's answer passed on: decoded, so that it cannot split the event's line)
                with contextlib.suppress(ValueError):
                    obj = orjson.loads(body)
                    self.response_object = _without_managed_fields(obj) if self.cfg.omit_managed_fields else obj
            else:
                self.response_object = orjson.Fragment(body)  # as it was answered, not decoded again
        self.emit("ResponseComplete")

    def _request_object(self, level: int) -> None:
        from apiserver.http import decode_document

        create = self.verb == "create"
        if level < _REQUEST and not (create and self.object_ref is not None and "name" not in self.object_ref):
            return
        try:
            obj = decode_document(self.req._body, self.req.content_type)
        except Exception:  # the handler answered the 400; nothing to log
            return
        ref = self.object_ref
        if ref is not None and self.verb in ("create", "update") and isinstance(obj, dict):
            meta = obj.get("metadata")
            if isinstance(meta, dict):  # upstream's LogRequestObject completes the objectRef
                for key in ("namespace", "name", "uid", "resourceVersion"):
                    if not ref.get(key) and isinstance(meta.get(key), str) and meta.get(key):
                        ref[key] = meta[key]
                self.object_ref = {k: ref[k] for k in _REF_ORDER if k in ref}
        if level >= _REQUEST:
            self.request_object = _without_managed_fields(obj) if self.cfg.omit_managed_fields else obj


_REF_ORDER = ("resource", "namespace", "name", "uid", "apiGroup", "apiVersion", "resourceVersion", "subresource")


class Auditor:
    """The policy and the backend; `begin` starts a request's audit (None: not audited)."""

    def __init__(self, policy: Policy | None, backend: LogBackend | None) -> None:
        self.policy = policy
        self.backend = backend
        self.enabled = policy is not None and backend is not None

    def begin(self, req: Any, info: Any, received: float) -> RequestAudit | None:
        if not self.enabled:
            return None
        assert self.policy is not None
        user = req.scope.get("minik8s.impersonator") or req.user
        if info is not None and info.is_resource:
            attrs = Attributes(info.verb, True, info.path, info.group, info.namespace, info.resource,
                               info.subresource, info.name)
        else:
            attrs = Attributes(info.verb if info is not None else req.method.lower(), False, req.path)
        cfg = self.policy.evaluate(user, attrs)
        if cfg.level == "None":
            return None
        ra = RequestAudit(self, cfg, req, info, received)
        ra.emit("RequestReceived")
        return ra

    def close(self) -> None:
        if self.backend is not None:
            self.backend.close()


# -- the log backend ------------------------------------------------------------------------------

MODES = ("blocking", "blocking-strict", "batch")
FLUSH_AFTER = 1.0


class LogBackend:
    """Events as JSON lines to a file (or stdout for `-`), buffered and flushed on a timer."""

    def __init__(self, path: str, *, max_age: int = 0, max_backups: int = 0, max_size: int = 0,
                 compress: bool = False, mode: str = "blocking") -> None:
        if mode not in MODES:
            raise ValueError(f"--audit-log-mode {mode!r}: must be one of {', '.join(MODES)}")
        self.path = path
        self.max_age_days = max_age
        self.max_backups = max_backups
        # lumberjack's default: 100 MB when the flag is 0, as upstream's audit log does
        self.max_bytes = (max_size or 100) * 1024 * 1024
        self.compress = compress
        self.batch = mode == "batch"
        self._pending: list[dict[str, Any]] = []
        self._flush_pending = False
        self._last_error = -1e9  # (monotonic) when a failed write was last logged
        self._f: Any = None
        self._size = 0
        self._stdout = path == "-"
        self._cleanup_lock = threading.Lock()
        self._open()

    def _open(self) -> None:
        if self._stdout:
            self._f = sys.stdout.buffer
            return
        p = Path(self.path)
        p.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._f = os.fdopen(fd, "ab", buffering=1 << 16)
        self._size = os.fstat(fd).st_size

    def process(self, event: dict[str, Any]) -> None:
        if self._f is None:
            return
        if self.batch:
            self._pending.append(event)
        else:
            self._write(orjson.dumps(event) + b"\n")
        if not self._flush_pending:  # a timer, not the next request: an idle server's lines land too
            self._flush_pending = True
            try:
                asyncio.get_running_loop().call_later(FLUSH_AFTER, self.flush)
            except RuntimeError:  # no loop (tests, shutdown): now
                self.flush()

    def _write(self, line: bytes) -> None:
        # as upstream's backend (audit.HandlePluginError): a failing log never fails the request;
        # the line is dropped and the failure logged (at most once a minute)
        try:
            if not self._stdout and self._size + len(line) > self.max_bytes and self._size > 0:
                self._rotate()
            self._f.write(line)
            self._size += len(line)
        except (OSError, ValueError) as e:
            now = time.monotonic()
            if now - self._last_error >= 60:
                self._last_error = now
                log.error("writing the audit log %s: %s (events are dropped)", self.path, e)

    def flush(self) -> None:
        self._flush_pending = False
        if self._f is None:
            return
        if self._pending:
            pending, self._pending = self._pending, []
            for ev in pending:
                self._write(orjson.dumps(ev) + b"\n")
        try:
            self._f.flush()
        except (OSError, ValueError) as e:
            log.error("writing the audit log %s: %s", self.path, e)

    # -- rotation (lumberjack's naming and cleanup) -------------------------------------------

    def backup_name(self, when: float) -> Path:
        p = Path(self.path)
        stamp = dt.datetime.fromtimestamp(when, dt.UTC)
        text = stamp.strftime("%Y-%m-%dT%H-%M-%S.") + f"{stamp.microsecond // 1000:03d}"
        return p.with_name(f"{p.stem}-{text}{p.suffix}")

    def _rotate(self) -> None:
        self._f.flush()
        self._f.close()
        when = time.time()
        backup = self.backup_name(when)
        while backup.exists() or backup.with_name(backup.name + ".gz").exists():  # two rotations in one ms
            when += 0.001
            backup = self.backup_name(when)
        try:
            os.rename(self.path, backup)
        except OSError as e:
            log.error("rotating the audit log %s: %s", self.path, e)
        self._open()
        threading.Thread(target=self._cleanup, name="audit-log-rotation", daemon=True).start()

    def backups(self) -> list[Path]:
        """The backups of this log, newest first (a backup being compressed counts once)."""
        p = Path(self.path)
        prefix = f"{p.stem}-"
        found = {b.name.removesuffix(".gz"): b for b in sorted(p.parent.iterdir())
                 if b.name.startswith(prefix) and b.name.removesuffix(".gz").endswith(p.suffix) and b != p}
        return [found[k] for k in sorted(found, reverse=True)]

    def _cleanup(self) -> None:
        with self._cleanup_lock:  # one at a time: rotations may come faster than compression
            try:
                if self.compress:
                    for b in self.backups():
                        if b.suffix != ".gz":
                            gz = b.with_name(b.name + ".gz")
                            with open(b, "rb") as src, gzip.open(gz, "wb") as dst:
                                shutil.copyfileobj(src, dst)
                            os.chmod(gz, 0o600)
                            b.unlink()
                backups = self.backups()
                doomed = set(backups[self.max_backups:]) if self.max_backups > 0 else set()
                if self.max_age_days > 0:
                    cutoff = time.time() - self.max_age_days * 86400
                    doomed |= {b for b in backups if b.stat().st_mtime < cutoff}
                for b in doomed:
                    b.unlink(missing_ok=True)
            except OSError as e:
                log.error("cleaning up audit log backups of %s: %s", self.path, e)

    def close(self) -> None:
        self.flush()
        if self._f is not None and not self._stdout:
            self._f.close()
        self._f = None
