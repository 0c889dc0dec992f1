"""Decoding a watch response: newline-delimited JSON events arriving in arbitrary chunks."""

from __future__ import annotations

from typing import Any

import orjson

EVENT_TYPES = frozenset({"ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR"})


class WatchDecodeError(ValueError):
    """A line of the watch stream is not a watch event."""


class WatchDecoder:
    """Feed raw bytes, get whole events back; a partial line waits for the next chunk.

    Lines are split here rather than with a stream reader's readline so that one large
    object (a ConfigMap of a megabyte) is not limited by a reader's line buffer.
    """

    __slots__ = ("_partial",)

    def __init__(self) -> None:
        self._partial = b""

    def feed(self, chunk: bytes) -> list[dict[str, Any]]:
        if self._partial:
            chunk = self._partial + chunk
        cut = chunk.rfind(b"\n")
        if cut < 0:
            self._partial = chunk
            return []
        self._partial = chunk[cut + 1 :]
        return [decode_event(line) for line in chunk[:cut].split(b"\n") if line.strip()]

    @property
    def pending(self) -> bool:
        """Bytes of an unfinished line are buffered (the stream was cut mid-event)."""
        return bool(self._partial.strip())


def decode_event(line: bytes) -> dict[str, Any]:
    try:
        ev = orjson.loads(line)
    except orjson.JSONDecodeError as e:
        raise WatchDecodeError(f"watch stream: invalid JSON: {e}") from None
    if not isinstance(ev, dict) or ev.get("type") not in EVENT_TYPES or not isinstance(ev.get("object"), dict):
        raise WatchDecodeError(f"watch stream: not a watch event: {line[:200]!r}")
    return ev
