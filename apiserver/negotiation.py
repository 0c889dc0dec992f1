"""Response content negotiation for the resource API.

The server works in JSON. Clients that list JSON among the types they accept (kubectl's typed
clients send `application/vnd.kubernetes.protobuf,application/json`) get JSON; a client that
accepts only protobuf gets the same response re-encoded as protobuf: objects, lists, Status
errors, and watch streams as `application/vnd.kubernetes.protobuf;stream=watch` frames.

A client that names protobuf first gets protobuf too, as upstream answers (kinds without a
message fall back to JSON); MINIK8S_PREFER_PROTOBUF=0 in the apiserver's environment turns
that off (JSON whenever JSON is acceptable).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import orjson

from apimachinery import errors
from apimachinery import protobuf as pbuf
from apiserver.http import JSON, Request, Response, StreamResponse

PROTOBUF = pbuf.CONTENT_TYPE.encode()
PROTOBUF_WATCH = pbuf.WATCH_CONTENT_TYPE.encode()

#: Answer protobuf whenever the client lists it first (upstream's choice), not only when it must.
PREFER_PROTOBUF = os.environ.get("MINIK8S_PREFER_PROTOBUF", "1") != "0"

#: Media ranges that let us answer in JSON (YAML clients have always been answered in JSON).
_JSON_RANGES = frozenset({"application/json", "application/*", "*/*", "application/yaml"})

_NO, _ONLY, _FIRST = range(3)


def protobuf_wanted(accept: str) -> int:
    """_ONLY: protobuf and nothing JSON satisfies; _FIRST: protobuf before any JSON range; else _NO."""
    protobuf = json = False
    first = _NO
    for part in accept.split(","):
        media = part.split(";", 1)[0].strip().lower()
        if media == pbuf.CONTENT_TYPE:
            if not json:
                first = _FIRST
            protobuf = True
        elif media in _JSON_RANGES:
            json = True
    if protobuf and not json:
        return _ONLY
    return first


def accepts_only_protobuf(accept: str) -> bool:
    return protobuf_wanted(accept) == _ONLY


def _json_wins(wanted: int) -> bool:
    return wanted == _NO or (wanted == _FIRST and not PREFER_PROTOBUF)


def answers_json(accept: str) -> bool:
    """Whether a client sending this Accept gets JSON (not protobuf) from us."""
    return _json_wins(protobuf_wanted(accept))


def negotiate(req: Request, resp: Response | StreamResponse) -> Response | StreamResponse:
    """Re-encode a JSON response (or watch stream) as protobuf when the client is to get protobuf."""
    wanted = protobuf_wanted(req.header(b"accept"))
    if _json_wins(wanted):
        return resp
    if isinstance(resp, StreamResponse):
        if resp.content_type == JSON:
            resp.chunks = _watch_frames(resp.chunks)
            resp.content_type = PROTOBUF_WATCH
        return resp
    if resp.content_type != JSON or not resp.body:
        return resp
    try:
        resp.body = pbuf.encode(orjson.loads(resp.body))
    except pbuf.ProtobufError as e:
        if wanted == _FIRST:
            return resp  # JSON is acceptable too
        err = errors.not_acceptable(f"the response cannot be encoded as {pbuf.CONTENT_TYPE}: {e}")
        resp.status = err.code
        resp.body = pbuf.encode(err.status())
    resp.content_type = PROTOBUF
    return resp


async def _watch_frames(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """Newline-delimited JSON watch events → length-prefixed protobuf WatchEvent frames."""
    try:
        async for chunk in chunks:
            frames = []
            for line in chunk.splitlines():
                if not line.strip():
                    continue
                event = orjson.loads(line)
                try:
                    frames.append(pbuf.encode_watch_event(event["type"], event["object"]))
                except pbuf.ProtobufError as e:
                    frames.append(pbuf.encode_watch_event("ERROR", errors.internal(str(e)).status()))
            if frames:
                yield b"".join(frames)
    finally:
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()
