"""Typed API errors: a failed response (or watch ERROR event) as a StatusError subclass.

The `is_*` helpers take any exception and follow upstream's apimachinery/pkg/api/errors:
a known reason decides; a reason we do not know falls back to the HTTP code.
"""

from __future__ import annotations

from typing import Any

import orjson

from apimachinery.errors import StatusError

# Reasons upstream knows; a 409 with one of these (e.g. AlreadyExists) is not a plain Conflict.
_KNOWN_REASONS = frozenset({
    "Unauthorized", "Forbidden", "NotFound", "AlreadyExists", "Conflict", "Gone", "Invalid",
    "ServerTimeout", "StoreReadError", "Timeout", "TooManyRequests", "BadRequest", "MethodNotAllowed",
    "NotAcceptable", "RequestEntityTooLarge", "UnsupportedMediaType", "InternalError", "Expired",
    "ServiceUnavailable",
})

# upstream's reason for an error response whose body is not a Status (newUnstructuredResponseError)
_REASON_BY_CODE = {
    400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 405: "MethodNotAllowed",
    406: "NotAcceptable", 409: "Conflict", 410: "Gone", 413: "RequestEntityTooLarge",
    415: "UnsupportedMediaType", 422: "Invalid", 429: "TooManyRequests", 500: "InternalError",
    503: "ServiceUnavailable", 504: "Timeout",
}


class ApiError(StatusError):
    """A failure the apiserver reported: the Status it sent, plus the request it answered."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        details: dict[str, Any] | None = None,
        retry_after: int | None = None,
        *,
        method: str = "",
        path: str = "",
    ) -> None:
        super().__init__(code, reason, message, details, retry_after)
        self.method = method
        self.path = path

    def __str__(self) -> str:
        where = f" ({self.method} {self.path})" if self.method else ""
        return f"{self.code} {self.reason}: {self.message}{where}"

    def __repr__(self) -> str:
        return f"ApiError({self.code}, {self.reason!r}, {self.message!r})"


def error_from_status(status: dict[str, Any], method: str = "", path: str = "") -> ApiError:
    """An ApiError from a Status object (a response body or a watch ERROR event's object)."""
    code = int(status.get("code") or 500)
    details = status.get("details") if isinstance(status.get("details"), dict) else None
    retry = (details or {}).get("retryAfterSeconds")
    return ApiError(
        code,
        status.get("reason") or _REASON_BY_CODE.get(code, ""),
        status.get("message") or "",
        details,
        retry if isinstance(retry, int) else None,
        method=method,
        path=path,
    )


def error_from_response(
    code: int, body: bytes, method: str, path: str, retry_after_header: str | None = None
) -> ApiError:
    """An ApiError for a non-2xx response: its Status body when there is one, else a synthetic one."""
    status: dict[str, Any] | None = None
    if body[:1] == b"{":
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError:
            doc = None
        if isinstance(doc, dict) and doc.get("kind") == "Status":
            status = doc
    if status is None:
        text = body.decode("utf-8", "replace").strip()
        status = {"code": code, "reason": _REASON_BY_CODE.get(code, ""),
                  "message": text or f"the server responded with status {code}"}
    err = error_from_status(status, method, path)
    err.code = code  # the HTTP status decides, as upstream's client does
    if retry_after_header is not None and err.retry_after is None:
        err.retry_after = _parse_retry_after(retry_after_header)
    return err


def _parse_retry_after(value: str) -> int | None:
    try:
        return max(0, int(value.strip()))
    except ValueError:
        return None  # HTTP dates are not sent by apiservers


def _reason_and_code(err: BaseException) -> tuple[str, int]:
    if isinstance(err, StatusError):
        return err.reason, err.code
    return "", 0


def _is(err: BaseException, reason: str, code: int) -> bool:
    r, c = _reason_and_code(err)
    if r == reason:
        return True
    return r not in _KNOWN_REASONS and c == code


def is_not_found(err: BaseException) -> bool:
    return _is(err, "NotFound", 404)


def is_already_exists(err: BaseException) -> bool:
    return _reason_and_code(err)[0] == "AlreadyExists"


def is_conflict(err: BaseException) -> bool:
    """A write lost an optimistic-concurrency race (409 Conflict; not AlreadyExists)."""
    return _is(err, "Conflict", 409)


def is_gone(err: BaseException) -> bool:
    """410: the resourceVersion (or continue token) is too old — Expired or Gone."""
    r, c = _reason_and_code(err)
    return r in ("Expired", "Gone") or c == 410


def is_invalid(err: BaseException) -> bool:
    return _is(err, "Invalid", 422)


def is_forbidden(err: BaseException) -> bool:
    return _is(err, "Forbidden", 403)


def is_unauthorized(err: BaseException) -> bool:
    return _is(err, "Unauthorized", 401)


def is_bad_request(err: BaseException) -> bool:
    return _is(err, "BadRequest", 400)


def is_too_many_requests(err: BaseException) -> bool:
    return _is(err, "TooManyRequests", 429)


def is_server_timeout(err: BaseException) -> bool:
    r, c = _reason_and_code(err)
    return r in ("Timeout", "ServerTimeout") or (r not in _KNOWN_REASONS and c == 504)


class APIConnectionError(ConnectionError):
    """The apiserver could not be reached, or the connection broke before a full answer came."""

    def __init__(self, message: str, *, method: str = "", path: str = "") -> None:
        super().__init__(message)
        self.method = method
        self.path = path
