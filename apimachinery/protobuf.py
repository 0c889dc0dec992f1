"""Kubernetes' protobuf wire format ↔ the JSON-shaped dicts minik8s works with.

client-go (kubectl ≥ 1.35 included) sends built-in kinds as `application/vnd.kubernetes.protobuf`:
the bytes `k8s\\x00` and a `runtime.Unknown` envelope whose `raw` is the object encoded with
go-to-protobuf's schema. That schema is ours, in proto/k8s_api.proto (upstream's names and field
numbers); this module walks its descriptors, parsing and serialising with the C (upb) runtime.

`decode` yields the dict the same client would have sent as JSON. Protobuf carries every non-pointer
Go field even when zero, JSON leaves `omitempty` zeros out: each field's `(json)` option says which Go
rule applies, and messages whose JSON is not an object (Time, Duration, Quantity, IntOrString, ...) carry a
`(shape)` option (apiextensions' JSONSchemaProps wrappers, whose MarshalJSON writes a bool, a schema or
a list, are ONE_OF; JSONSchemaProps' `$ref` and `x-kubernetes-*` keys are json_names). `encode` is the
reverse. A watch stream is a run of frames, each a 4-byte big-endian length and a bare
`meta/v1 WatchEvent` whose object is an enveloped object.
"""

from __future__ import annotations

import base64
import datetime as dt
import struct
from collections.abc import Iterator
from typing import Any

import orjson
from google.protobuf.message import DecodeError
from google.protobuf.message_factory import GetMessageClass

from apimachinery.duration import format_duration, parse_duration
from apimachinery.quantity import canonical_or_error
from proto import k8s_api_pb2 as pb

MAGIC = b"k8s\x00"
CONTENT_TYPE = "application/vnd.kubernetes.protobuf"
WATCH_CONTENT_TYPE = "application/vnd.kubernetes.protobuf;stream=watch"

#: apiVersion → the namespace message of k8s_api.proto that holds that group version's kinds.
NAMESPACES = {
    "v1": "core_v1",
    "apps/v1": "apps_v1",
    "batch/v1": "batch_v1",
    "certificates.k8s.io/v1": "certificates_v1",
    "autoscaling/v1": "autoscaling_v1",
    "autoscaling/v2": "autoscaling_v2",
    "coordination.k8s.io/v1": "coordination_v1",
    "discovery.k8s.io/v1": "discovery_v1",
    "events.k8s.io/v1": "events_v1",
    "networking.k8s.io/v1": "networking_v1",
    "policy/v1": "policy_v1",
    "node.k8s.io/v1": "node_v1",
    "scheduling.k8s.io/v1": "scheduling_v1",
    "storage.k8s.io/v1": "storage_v1",
    "rbac.authorization.k8s.io/v1": "rbac_v1",
    "authentication.k8s.io/v1": "authentication_v1",
    "authorization.k8s.io/v1": "authorization_v1",
    "apiextensions.k8s.io/v1": "apiextensions_v1",
    "admissionregistration.k8s.io/v1": "admissionregistration_v1",
    "metrics.k8s.io/v1beta1": "metrics_v1beta1",
    "apiregistration.k8s.io/v1": "apiregistration_v1",
    "flowcontrol.apiserver.k8s.io/v1": "flowcontrol_v1",
    "meta.k8s.io/v1": "meta_v1",
}

#: meta/v1 kinds every group version serves (upstream registers them in each, e.g. apps/v1 DeleteOptions).
META_KINDS = frozenset({"Status", "DeleteOptions", "WatchEvent", "List", "PartialObjectMetadata",
                        "PartialObjectMetadataList"})


class ProtobufError(ValueError):
    """Bytes that are not a Kubernetes protobuf object, or an object this schema cannot carry."""


# --- per-type plans: the facts the walkers need, computed once per message type -------------------

_OMIT_EMPTY, _POINTER, _ALWAYS, _INLINE, _OMIT_ZERO = (
    pb.OMIT_EMPTY, pb.POINTER, pb.ALWAYS, pb.INLINE, pb.OMIT_ZERO)
_SCALAR, _BYTES, _MESSAGE, _MAP, _DOUBLE = range(5)
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


class _Field:
    __slots__ = ("descriptor", "key", "kind", "map_value", "message", "name", "presence", "repeated", "sub", "zero")

    def __init__(self, fd: Any) -> None:
        self.descriptor = fd
        self.key: str = fd.json_name  # the proto name unless the .proto gives json_name
        self.name: str = fd.name
        self.presence: int = fd.GetOptions().Extensions[pb.json]
        self.repeated: bool = fd.is_repeated
        self.message: Any = None  # message type of a message field, of a map's values
        self.map_value = _SCALAR
        if fd.type == fd.TYPE_MESSAGE and fd.message_type.GetOptions().map_entry:
            self.kind = _MAP
            self.repeated = False
            value = fd.message_type.fields_by_name["value"]
            if value.type == value.TYPE_MESSAGE:
                self.map_value, self.message = _MESSAGE, value.message_type
            elif value.type == value.TYPE_BYTES:
                self.map_value = _BYTES
        elif fd.type == fd.TYPE_MESSAGE:
            self.kind, self.message = _MESSAGE, fd.message_type
        elif fd.type == fd.TYPE_BYTES:
            self.kind = _BYTES
        elif fd.type == fd.TYPE_DOUBLE:
            self.kind = _DOUBLE
        else:
            self.kind = _SCALAR
        self.zero: Any = _UNSET
        self.sub: _Plan | None = None  # the plan of `message`, once needed


_UNSET = object()


class _Plan:
    __slots__ = ("absent", "by_key", "by_number", "cls", "one_of", "shape", "values")

    def __init__(self, descriptor: Any) -> None:
        self.cls = GetMessageClass(descriptor)
        self.shape: int = descriptor.GetOptions().Extensions[pb.shape]
        self.by_number: dict[int, _Field] = {}
        # JSON key → (the inline fields leading to it, the field)
        self.by_key: dict[str, tuple[tuple[str, ...], _Field]] = {}
        # fields encoding/json writes even when unset; filled lazily (message types recurse)
        self.absent: list[_Field] | None = None
        # non-pointer singular fields, which go-to-protobuf writes even when zero; lazily too
        self.values: list[tuple[str, Any, _Plan | None]] | None = None
        # a ONE_OF message's (list field, schema field, bool field), each None when it has none
        self.one_of: tuple[_Field | None, _Field | None, _Field | None] | None = None
        for fd in descriptor.fields:
            f = _Field(fd)
            self.by_number[fd.number] = f
            if f.presence == _INLINE:
                for key, (path, sub) in _plan(f.message).by_key.items():
                    self.by_key[key] = ((f.name, *path), sub)
            else:
                self.by_key[f.key] = ((), f)


_plans: dict[str, _Plan] = {}


def _plan(descriptor: Any) -> _Plan:
    p = _plans.get(descriptor.full_name)
    if p is None:
        p = _plans[descriptor.full_name] = _Plan(descriptor)
    return p


def _sub(f: _Field) -> _Plan:
    if f.sub is None:
        f.sub = _plan(f.message)
    return f.sub


def _absent(plan: _Plan) -> list[_Field]:
    """No-omitempty fields, and struct/inline fields, which JSON shows even at their zero value."""
    if plan.absent is None:
        plan.absent = [
            f for f in plan.by_number.values()
            if f.presence == _ALWAYS or (f.presence in (_OMIT_EMPTY, _INLINE) and f.kind == _MESSAGE and not f.repeated)
        ]
    return plan.absent


def _zero(f: _Field) -> Any:
    """What encoding/json writes for the field at its Go zero value (a fresh copy)."""
    if f.zero is _UNSET:
        if f.repeated or f.kind in (_MAP, _BYTES):
            f.zero = None  # nil slice, map, []byte
        elif f.kind == _MESSAGE:
            plan = _plan(f.message)
            f.zero = _to_json(plan.cls(), plan)
        else:
            t = f.descriptor.type
            f.zero = "" if t == f.descriptor.TYPE_STRING else False if t == f.descriptor.TYPE_BOOL else 0
    return _copy(f.zero) if isinstance(f.zero, dict) else f.zero


def _copy(d: dict[str, Any]) -> dict[str, Any]:
    # zero values hold only scalars, None and nested structs: the caller may mutate what it gets
    return {k: _copy(v) if isinstance(v, dict) else v for k, v in d.items()}


# --- message → JSON ---------------------------------------------------------------------------------


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode("ascii")


def _to_json(msg: Any, plan: _Plan) -> Any:
    if plan.shape:
        return _SHAPE_TO_JSON[plan.shape](msg)
    out: dict[str, Any] = {}
    by_number = plan.by_number
    for fd, value in msg.ListFields():
        f = by_number[fd.number]
        kind = f.kind
        if kind == _SCALAR:
            if f.repeated:
                out[f.key] = list(value)
            elif value or f.presence:  # a zero only for *T and no-omitempty fields
                out[f.key] = value
        elif kind == _MESSAGE:
            sub = f.sub or _sub(f)
            if f.repeated:
                out[f.key] = [_to_json(v, sub) for v in value]
                continue
            j = _to_json(value, sub)
            p = f.presence
            if p == _INLINE:
                out.update(j)
            elif p != _OMIT_ZERO or (j is not None and j != {}):
                out[f.key] = j
        elif kind == _DOUBLE:
            if f.repeated:
                out[f.key] = [_float_to_json(v) for v in value]
            elif value or f.presence:
                out[f.key] = _float_to_json(value)
        elif kind == _MAP:
            if f.map_value == _SCALAR:
                out[f.key] = dict(value)
            elif f.map_value == _BYTES:
                out[f.key] = {k: _b64(v) for k, v in value.items()}
            else:
                sub = f.sub or _sub(f)
                out[f.key] = {k: _to_json(v, sub) for k, v in value.items()}
        elif f.repeated:
            out[f.key] = [_b64(v) for v in value]
        elif value or f.presence:
            out[f.key] = _b64(value)
    for f in _absent(plan):
        if f.presence == _INLINE:
            for k, v in _zero(f).items():
                out.setdefault(k, v)
        elif f.key not in out:
            out[f.key] = _zero(f)
    return out


def _float_to_json(v: float) -> float | int:
    # encoding/json writes a whole float64 without a fraction (`maximum: 10`, not 10.0)
    return int(v) if v.is_integer() and -1e21 < v < 1e21 else v


def _format_time(seconds: int, micros: int | None) -> str:
    t = _EPOCH + dt.timedelta(seconds=seconds, microseconds=micros or 0)
    if micros is None:
        return t.strftime("%Y-%m-%dT%H:%M:%SZ")
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _time_to_json(msg: Any) -> str | None:
    # a zero metav1.Time marshals as an empty message; the protobuf decoder drops the nanos
    return _format_time(msg.seconds, None) if msg.HasField("seconds") else None


def _micro_time_to_json(msg: Any) -> str | None:
    return _format_time(msg.seconds, msg.nanos // 1000) if msg.HasField("seconds") else None


def _raw_to_json(raw: bytes) -> Any:
    if not raw:
        return None
    if raw.startswith(MAGIC):
        return decode(raw)
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise ProtobufError(f"embedded object is neither protobuf nor JSON: {e}") from None


def _one_of_fields(plan: _Plan) -> tuple[_Field | None, _Field | None, _Field | None]:
    """A ONE_OF message's fields by role: (the list, the schema, the bool); a wrapper lacks one or two."""
    if plan.one_of is None:
        lst = sch = flag = None
        for f in plan.by_number.values():
            if f.repeated:
                lst = f
            elif f.kind == _MESSAGE:
                sch = f
            else:
                flag = f
        plan.one_of = (lst, sch, flag)
    return plan.one_of


def _one_of_to_json(msg: Any) -> Any:
    """JSONSchemaPropsOr{Array,Bool,StringArray} as their MarshalJSON writes them."""
    lst, sch, flag = _one_of_fields(_plan(msg.DESCRIPTOR))
    if lst is not None and (items := getattr(msg, lst.name)):
        return [_to_json(v, _sub(lst)) for v in items] if lst.kind == _MESSAGE else list(items)
    if sch is not None and msg.HasField(sch.name):
        return _to_json(getattr(msg, sch.name), _sub(sch))
    return getattr(msg, flag.name) if flag is not None else None  # an empty OrArray is `null`


_SHAPE_TO_JSON = {
    pb.TIME: _time_to_json,
    pb.MICRO_TIME: _micro_time_to_json,
    pb.QUANTITY: lambda m: m.string or "0",
    pb.INT_OR_STRING: lambda m: m.strVal if m.type == 1 else m.intVal,
    pb.RAW_EXTENSION: lambda m: _raw_to_json(m.raw),
    pb.FIELDS_V1: lambda m: _raw_to_json(m.Raw),
    pb.ITEMS: lambda m: list(m.items) or None,  # a named slice: nil after decoding when empty
    pb.ONE_OF: _one_of_to_json,
    pb.DURATION: lambda m: format_duration(m.duration),
}


# --- JSON → message ---------------------------------------------------------------------------------


def _value_fields(plan: _Plan) -> list[tuple[str, Any, _Plan | None]]:
    """(name, zero scalar, None) or (name, None, plan of the struct) for each non-pointer singular field."""
    if plan.values is None:
        values: list[tuple[str, Any, _Plan | None]] = []
        for f in plan.by_number.values():
            if f.repeated or f.kind in (_MAP, _BYTES) or f.presence == _POINTER:
                continue  # go-to-protobuf skips empty lists, maps, nil []byte and nil pointers
            if f.kind == _MESSAGE:
                values.append((f.name, None, _plan(f.message)))
            else:
                t = f.descriptor.type
                values.append((f.name, "" if t == f.descriptor.TYPE_STRING else False if t == f.descriptor.TYPE_BOOL else 0, None))
        plan.values = values
    return plan.values


def _write_zeros(msg: Any, plan: _Plan) -> None:
    """Set what go-to-protobuf writes for unset non-pointer fields: zeros, and zero structs in full.

    Receivers read an absent field as zero anyway; writing them makes our bytes Go's bytes.
    """
    if plan.shape and plan.shape != pb.ONE_OF:  # ONE_OF messages are plain structs on the wire
        if plan.shape == pb.QUANTITY and not msg.HasField("string"):
            msg.string = "0"
        elif plan.shape == pb.DURATION and not msg.HasField("duration"):
            msg.duration = 0
        elif plan.shape == pb.INT_OR_STRING:
            for name, zero in (("type", 0), ("intVal", 0), ("strVal", "")):
                if not msg.HasField(name):
                    setattr(msg, name, zero)
        return
    for name, zero, sub in _value_fields(plan):
        if msg.HasField(name):
            continue
        if sub is None:
            setattr(msg, name, zero)
        else:
            m = getattr(msg, name)
            m.SetInParent()
            _write_zeros(m, sub)


def _from_json(msg: Any, plan: _Plan, obj: Any) -> None:
    if plan.shape:
        _SHAPE_FROM_JSON[plan.shape](msg, obj)
        _write_zeros(msg, plan)
        return
    if not isinstance(obj, dict):
        raise ProtobufError(f"expected a JSON object for {msg.DESCRIPTOR.name}, got {type(obj).__name__}")
    by_key = plan.by_key
    for key, value in obj.items():
        route = by_key.get(key)
        if route is None or value is None:
            continue  # apiVersion/kind (the envelope's), fields this schema lacks, nulls (Go zero values)
        path, f = route
        target = msg
        for name in path:
            target = getattr(target, name)
        try:
            _set(target, f, value)
        except (TypeError, ValueError, AttributeError) as e:
            if isinstance(e, ProtobufError):
                raise
            raise ProtobufError(f"{key}: {e}") from None
    _write_zeros(msg, plan)


def _fill(msg: Any, plan: _Plan, value: Any) -> None:
    """A list item or map value: null is the Go zero value."""
    if value is None:
        _write_zeros(msg, plan)
    else:
        _from_json(msg, plan, value)


def _set(target: Any, f: _Field, value: Any) -> None:
    kind = f.kind
    if f.repeated and not isinstance(value, list):
        raise ProtobufError(f"expected a JSON array, got {type(value).__name__}")
    if kind == _SCALAR or kind == _DOUBLE:
        if f.repeated:
            getattr(target, f.name).extend(value)
        else:
            setattr(target, f.name, value)
    elif kind == _MESSAGE:
        sub = f.sub or _sub(f)
        if f.repeated:
            rep = getattr(target, f.name)
            for item in value:
                _fill(rep.add(), sub, item)
        else:
            m = getattr(target, f.name)
            m.SetInParent()
            _from_json(m, sub, value)
    elif kind == _MAP:
        m = getattr(target, f.name)
        if f.map_value == _SCALAR:
            m.update({k: v for k, v in value.items() if v is not None})
        elif f.map_value == _BYTES:
            for k, v in value.items():
                m[k] = base64.b64decode(v or "", validate=True)
        else:
            sub = f.sub or _sub(f)
            for k, v in value.items():
                _fill(m[k], sub, v)
    elif f.repeated:
        getattr(target, f.name).extend(base64.b64decode(v, validate=True) for v in value)
    else:
        setattr(target, f.name, base64.b64decode(value, validate=True))


def _parse_time(s: Any) -> tuple[int, int]:
    if not isinstance(s, str):
        raise ProtobufError(f"expected an RFC 3339 time, got {s!r}")
    try:
        t = dt.datetime.fromisoformat(s)
    except ValueError:
        raise ProtobufError(f"invalid RFC 3339 time {s!r}") from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    d = t - _EPOCH
    return d.days * 86400 + d.seconds, d.microseconds * 1000


def _time_from_json(msg: Any, value: Any) -> None:
    msg.seconds, _ = _parse_time(value)
    msg.nanos = 0  # JSON Time has whole seconds


def _micro_time_from_json(msg: Any, value: Any) -> None:
    msg.seconds, msg.nanos = _parse_time(value)


def _quantity_from_json(msg: Any, value: Any) -> None:
    msg.string = value if isinstance(value, str) else canonical_or_error(value)


def _duration_from_json(msg: Any, value: Any) -> None:
    try:
        msg.duration = parse_duration(value)
    except ValueError as e:
        raise ProtobufError(str(e)) from None


def _int_or_string_from_json(msg: Any, value: Any) -> None:
    if isinstance(value, str):
        msg.type, msg.strVal = 1, value
    elif isinstance(value, int) and not isinstance(value, bool):
        msg.type, msg.intVal = 0, value
    else:
        raise ProtobufError(f"expected an int or a string, got {value!r}")


def _items_from_json(msg: Any, value: Any) -> None:
    if not isinstance(value, list):
        raise ProtobufError(f"expected a JSON array, got {value!r}")
    msg.items.extend(value)


def _one_of_from_json(msg: Any, value: Any) -> None:
    """The reverse of _one_of_to_json, as the types' UnmarshalJSON reads them."""
    plan = _plan(msg.DESCRIPTOR)
    lst, sch, flag = _one_of_fields(plan)
    if isinstance(value, dict) and sch is not None:
        m = getattr(msg, sch.name)
        m.SetInParent()
        _from_json(m, _sub(sch), value)
        if flag is not None:
            setattr(msg, flag.name, True)  # JSONSchemaPropsOrBool: a schema allows
    elif isinstance(value, list) and lst is not None:
        _set(msg, lst, value)
    elif isinstance(value, bool) and flag is not None:
        setattr(msg, flag.name, value)
    else:
        raise ProtobufError(f"unexpected {type(value).__name__} for {msg.DESCRIPTOR.name}")


_SHAPE_FROM_JSON = {
    pb.TIME: _time_from_json,
    pb.MICRO_TIME: _micro_time_from_json,
    pb.QUANTITY: _quantity_from_json,
    pb.INT_OR_STRING: _int_or_string_from_json,
    pb.RAW_EXTENSION: lambda m, v: setattr(m, "raw", orjson.dumps(v)),
    pb.FIELDS_V1: lambda m, v: setattr(m, "Raw", orjson.dumps(v)),
    pb.ITEMS: _items_from_json,
    pb.ONE_OF: _one_of_from_json,
    pb.DURATION: _duration_from_json,
}


# --- public API -------------------------------------------------------------------------------------


def message_type(api_version: str, kind: str) -> Any | None:
    """The message descriptor for a kind, or None when this schema does not carry it."""
    space = NAMESPACES.get(api_version)
    if space is not None:
        d = pb.DESCRIPTOR.message_types_by_name[space].nested_types_by_name.get(kind)
        if d is not None:
            return d
    if kind in META_KINDS:
        return pb.meta_v1.DESCRIPTOR.nested_types_by_name[kind]
    return None


def supports(api_version: str, kind: str) -> bool:
    return message_type(api_version, kind) is not None


def _plan_for(api_version: str, kind: str) -> _Plan:
    d = message_type(api_version, kind)
    if d is None:
        raise ProtobufError(f"no protobuf serialization for {kind} in version {api_version!r}")
    return _plan(d)


def decode(body: bytes, expected_api_version: str | None = None, expected_kind: str | None = None) -> dict[str, Any]:
    """An enveloped protobuf object → the JSON-shaped dict of the same object.

    apiVersion and kind come from the envelope; the expected ones stand in where it leaves them out.
    """
    if not body.startswith(MAGIC) or len(body) == len(MAGIC):
        raise ProtobufError("the body does not appear to be a protobuf message, expected prefix [107 56 115 0]")
    unknown = pb.runtime.Unknown()
    try:
        unknown.ParseFromString(body[len(MAGIC):])
    except DecodeError as e:
        raise ProtobufError(f"malformed protobuf envelope: {e}") from None
    api_version = unknown.typeMeta.apiVersion or expected_api_version or ""
    kind = unknown.typeMeta.kind or expected_kind or ""
    if not kind:
        raise ProtobufError("Object 'Kind' is missing in the protobuf envelope")
    if unknown.contentEncoding:
        raise ProtobufError(f"unsupported content encoding {unknown.contentEncoding!r}")
    if unknown.contentType and not unknown.contentType.startswith(CONTENT_TYPE):
        if not unknown.contentType.startswith("application/json"):
            raise ProtobufError(f"unsupported embedded content type {unknown.contentType!r}")
        obj = _raw_to_json(unknown.raw)
        if not isinstance(obj, dict):
            raise ProtobufError("the embedded JSON is not an object")
        return {**obj, "kind": kind, "apiVersion": api_version}
    plan = _plan_for(api_version, kind)
    msg = plan.cls()
    try:
        msg.ParseFromString(unknown.raw)
    except DecodeError as e:
        raise ProtobufError(f"malformed {kind}: {e}") from None
    out = {"kind": kind, "apiVersion": api_version, **_to_json(msg, plan)}
    try:
        orjson.dumps(out)  # proto2 strings are not checked for UTF-8: such a string comes back as bytes
    except TypeError:
        out = _text(out)
    return out


def _text(v: Any) -> Any:
    """Invalid UTF-8 as encoding/json writes it: with U+FFFD."""
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, dict):
        return {_text(k): _text(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_text(x) for x in v]
    return v


def encode(obj: dict[str, Any]) -> bytes:
    """A JSON-shaped object with apiVersion and kind → enveloped protobuf bytes."""
    api_version, kind = obj.get("apiVersion") or "", obj.get("kind") or ""
    plan = _plan_for(api_version, kind)
    msg = plan.cls()
    _from_json(msg, plan, obj)
    return _envelope(api_version, kind, msg.SerializeToString(deterministic=True))


def _envelope(api_version: str, kind: str, raw: bytes) -> bytes:
    unknown = pb.runtime.Unknown(raw=raw, contentEncoding="", contentType="")
    unknown.typeMeta.apiVersion = api_version
    unknown.typeMeta.kind = kind
    return MAGIC + unknown.SerializeToString()


def encode_list(api_version: str, list_kind: str, metadata: dict[str, Any], items: list[dict[str, Any]]) -> bytes:
    """A collection (PodList, ...) → enveloped protobuf bytes."""
    return encode({"apiVersion": api_version, "kind": list_kind, "metadata": metadata, "items": items})


def encode_watch_event(event_type: str, obj: dict[str, Any]) -> bytes:
    """One watch event as a frame of a `application/vnd.kubernetes.protobuf;stream=watch` stream."""
    event = pb.meta_v1.WatchEvent(type=event_type)
    event.object.raw = encode(obj)
    data = event.SerializeToString()
    return struct.pack(">I", len(data)) + data


def decode_watch_event(frame: bytes) -> tuple[str, dict[str, Any]]:
    """One frame's message (without its length prefix) → (event type, object)."""
    event = pb.meta_v1.WatchEvent()
    try:
        event.ParseFromString(frame)
    except DecodeError as e:
        raise ProtobufError(f"malformed watch event: {e}") from None
    return event.type, decode(event.object.raw)


def split_frames(data: bytes) -> tuple[list[bytes], bytes]:
    """Length-prefixed frames → (complete frame messages, the incomplete rest)."""
    frames = []
    view = memoryview(data)
    pos = 0
    while len(data) - pos >= 4:
        (n,) = struct.unpack_from(">I", data, pos)
        if len(data) - pos - 4 < n:
            break
        frames.append(bytes(view[pos + 4:pos + 4 + n]))
        pos += 4 + n
    return frames, data[pos:]


def decode_watch_stream(data: bytes) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every event of a complete protobuf watch stream body."""
    frames, rest = split_frames(data)
    if rest:
        raise ProtobufError(f"watch stream ends inside a frame ({len(rest)} bytes left)")
    for frame in frames:
        yield decode_watch_event(frame)
