"""etcd storage: the apiserver's only path to etcd.

Objects are JSON values under `/registry/<plural>/<namespace>/<name>` (cluster-scoped:
`/registry/<plural>/<name>`). `metadata.resourceVersion` is never stored: it is the key's
`mod_revision`, set on every read. Writes are etcd transactions that compare
`mod_revision`, which gives create-if-absent (409 AlreadyExists) and optimistic
concurrency (409 Conflict) without locks.

We use aetcd's generated gRPC stubs directly over our own channel: aetcd's `Client`
only opens insecure channels, and etcd runs with client-certificate TLS.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
import orjson
from aetcd import rpc

from apimachinery import errors

log = logging.getLogger("apiserver.storage")

PREFIX = "/registry/"

# gRPC status codes that mean "etcd is not reachable right now".
_UNAVAILABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED}


def prefix_end(prefix: bytes) -> bytes:
    """The etcd range end that covers every key starting with `prefix`."""
    b = bytearray(prefix)
    for i in range(len(b) - 1, -1, -1):
        if b[i] < 0xFF:
            b[i] += 1
            return bytes(b[: i + 1])
    return b"\0"


@dataclass(slots=True)
class KV:
    key: bytes
    value: bytes
    mod_revision: int
    create_revision: int

    def decode(self) -> dict[str, Any]:
        obj = orjson.loads(self.value)
        obj["metadata"]["resourceVersion"] = str(self.mod_revision)
        return obj


@dataclass(slots=True)
class SideEffect:
    """An extra key written atomically with an object (e.g. an allocated ClusterIP).

    `must_not_exist` makes the transaction fail when the key is already taken.
    """

    key: bytes
    value: bytes | None  # None: delete the key
    must_not_exist: bool = False


class TxnFailed(Exception):
    """A compare in a write transaction failed; `current` is the key's state then."""

    def __init__(self, current: KV | None, side_key_taken: bytes | None = None) -> None:
        super().__init__("transaction compare failed")
        self.current = current
        self.side_key_taken = side_key_taken


@dataclass(slots=True)
class WatchEvent:
    type: str  # "PUT" | "DELETE"
    kv: KV
    prev: KV | None


class Compacted(Exception):
    def __init__(self, compact_revision: int) -> None:
        super().__init__(f"required revision has been compacted (compact revision {compact_revision})")
        self.compact_revision = compact_revision


def _unavailable(e: grpc.aio.AioRpcError) -> errors.StatusError:
    return errors.service_unavailable(f"etcd is unavailable: {e.details() or e.code().name}")


def _kv(m: Any) -> KV:
    return KV(m.key, m.value, m.mod_revision, m.create_revision)


class EtcdStore:
    """Thin async wrapper over etcd's KV and Watch services."""

    def __init__(
        self,
        endpoint: str,
        *,
        ca_file: str | None = None,
        cert_file: str | None = None,
        key_file: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        self._tls = (ca_file, cert_file, key_file)
        self.channel: Any = None
        #: told of every object this store wrote: (key, revision) — the watch caches wait for
        #: those events before answering consistent reads (see WatchCache.expect)
        self.on_write: Callable[[bytes, int], None] | None = None

    def connect(self) -> None:
        """Open the gRPC channel; must run inside the event loop that will use it."""
        scheme, _, hostport = self.endpoint.partition("://")
        if not hostport:
            scheme, hostport = "http", self.endpoint
        options = [
            ("grpc.max_receive_message_length", 256 * 1024 * 1024),
            ("grpc.keepalive_time_ms", 30_000),
        ]
        if scheme == "https":
            ca_file, cert_file, key_file = self._tls
            creds = grpc.ssl_channel_credentials(
                root_certificates=_read(ca_file),
                private_key=_read(key_file),
                certificate_chain=_read(cert_file),
            )
            self.channel = grpc.aio.secure_channel(hostport, creds, options=options)
        elif scheme == "unix":
            # etcd on this host, through a socket only root can reach: no TLS to pay per request
            self.channel = grpc.aio.insecure_channel(f"unix:{hostport}", options=options)
        else:
            self.channel = grpc.aio.insecure_channel(hostport, options=options)
        self.kv = rpc.KVStub(self.channel)
        self.watch_stub = rpc.WatchStub(self.channel)
        self.maintenance = rpc.MaintenanceStub(self.channel)

    async def close(self) -> None:
        if self.channel is not None:
            await self.channel.close()

    # -- reads ---------------------------------------------------------------------------

    async def get(self, key: str) -> KV | None:
        try:
            r = await self.kv.Range(rpc.RangeRequest(key=key.encode()), timeout=self.timeout)
        except grpc.aio.AioRpcError as e:
            raise self._translate(e) from None
        return _kv(r.kvs[0]) if r.kvs else None

    async def list(
        self,
        prefix: str,
        *,
        start_key: bytes | None = None,
        limit: int = 0,
        revision: int = 0,
    ) -> tuple[list[KV], int, bool, int]:
        """Range over `prefix` (from `start_key` if given) → (kvs, revision, more, count); `count`
        is how many keys the range holds from `start_key` on, including those beyond `limit`."""
        p = prefix.encode()
        req = rpc.RangeRequest(
            key=start_key or p,
            range_end=prefix_end(p),
            limit=limit,
            revision=revision,
        )
        try:
            r = await self.kv.Range(req, timeout=self.timeout)
        except grpc.aio.AioRpcError as e:
            if e.code() == grpc.StatusCode.OUT_OF_RANGE:
                raise Compacted(0) from None
            raise self._translate(e) from None
        return [_kv(m) for m in r.kvs], r.header.revision, r.more, r.count

    async def current_revision(self) -> int:
        try:
            r = await self.kv.Range(
                rpc.RangeRequest(key=b"/registry/\0", count_only=True), timeout=self.timeout
            )
        except grpc.aio.AioRpcError as e:
            raise self._translate(e) from None
        return r.header.revision

    # -- writes --------------------------------------------------------------------------

    async def create(self, key: str, value: bytes, side: Sequence[SideEffect] = ()) -> int:
        """Put `key` only if absent; returns the new revision. TxnFailed if it exists."""
        k = key.encode()
        return await self._write(k, value, 0, side)

    async def update(self, key: str, value: bytes, mod_revision: int, side: Sequence[SideEffect] = ()) -> int:
        """Put `key` only if its mod_revision is still `mod_revision`."""
        return await self._write(key.encode(), value, mod_revision, side)

    async def delete(self, key: str, mod_revision: int, side: Sequence[SideEffect] = ()) -> int:
        """Delete `key` only if its mod_revision is still `mod_revision`."""
        return await self._write(key.encode(), None, mod_revision, side)

    async def _write(self, k: bytes, value: bytes | None, mod_revision: int, side: Sequence[SideEffect]) -> int:
        compare = [rpc.Compare(result=rpc.Compare.EQUAL, target=rpc.Compare.MOD, key=k, mod_revision=mod_revision)]
        ops = [
            rpc.RequestOp(request_put=rpc.PutRequest(key=k, value=value))
            if value is not None
            else rpc.RequestOp(request_delete_range=rpc.DeleteRangeRequest(key=k))
        ]
        failure = [rpc.RequestOp(request_range=rpc.RangeRequest(key=k))]
        for s in side:
            if s.must_not_exist:
                compare.append(
                    rpc.Compare(result=rpc.Compare.EQUAL, target=rpc.Compare.CREATE, key=s.key, create_revision=0)
                )
                failure.append(rpc.RequestOp(request_range=rpc.RangeRequest(key=s.key, count_only=True)))
            if s.value is None:
                ops.append(rpc.RequestOp(request_delete_range=rpc.DeleteRangeRequest(key=s.key)))
            else:
                ops.append(rpc.RequestOp(request_put=rpc.PutRequest(key=s.key, value=s.value)))
        try:
            r = await self.kv.Txn(rpc.TxnRequest(compare=compare, success=ops, failure=failure), timeout=self.timeout)
        except grpc.aio.AioRpcError as e:
            raise self._translate(e) from None
        if r.succeeded:
            if self.on_write is not None:
                self.on_write(k, r.header.revision)
            return r.header.revision
        kvs = r.responses[0].response_range.kvs
        current = _kv(kvs[0]) if kvs else None
        cur_rev = current.mod_revision if current else 0
        if cur_rev == mod_revision:
            # The object itself was as expected: a side key is taken.
            taken = [s.key for s, resp in zip([s for s in side if s.must_not_exist], r.responses[1:], strict=True)
                     if resp.response_range.count]
            raise TxnFailed(current, taken[0] if taken else None)
        raise TxnFailed(current)

    async def put_raw(self, key: str, value: bytes) -> int:
        try:
            r = await self.kv.Put(rpc.PutRequest(key=key.encode(), value=value), timeout=self.timeout)
        except grpc.aio.AioRpcError as e:
            raise self._translate(e) from None
        return r.header.revision

    async def compact(self, revision: int) -> None:
        try:
            await self.kv.Compact(rpc.CompactionRequest(revision=revision, physical=False), timeout=60)
        except grpc.aio.AioRpcError as e:
            if "compacted" in (e.details() or ""):
                return
            raise self._translate(e) from None

    async def healthy(self) -> bool:
        try:
            await self.maintenance.Status(rpc.StatusRequest(), timeout=2)
            return True
        except grpc.aio.AioRpcError:
            return False

    # -- watch ---------------------------------------------------------------------------

    def watch(self, prefix: str, start_revision: int) -> EtcdWatch:
        """A watch on `prefix` from `start_revision` (inclusive); iterate it for batches."""
        return EtcdWatch(self, prefix, start_revision)

    @staticmethod
    def _translate(e: grpc.aio.AioRpcError) -> errors.StatusError:
        if e.code() in _UNAVAILABLE:
            return _unavailable(e)
        if e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
            return errors.StatusError(507, "InsufficientStorage", f"etcd: {e.details()}")
        return errors.internal(f"etcd: {e.code().name}: {e.details()}")


class EtcdWatch:
    """One etcd watch stream; yields batches of events, or revisions on progress.

    Iterating yields `list[WatchEvent]` for changes and an `int` (the store's revision)
    for progress notifications, which say every event up to that revision was sent.
    Raises Compacted when the start revision is older than etcd's compaction.
    """

    def __init__(self, store: EtcdStore, prefix: str, start_revision: int) -> None:
        p = prefix.encode()
        self._store = store
        self._requests: asyncio.Queue[Any] = asyncio.Queue()
        self._requests.put_nowait(
            rpc.WatchRequest(
                create_request=rpc.WatchCreateRequest(
                    key=p, range_end=prefix_end(p), start_revision=start_revision, prev_kv=True
                )
            )
        )
        self._call: Any = None

    def request_progress(self) -> None:
        """Ask etcd for a progress notification (answered after all pending events)."""
        self._requests.put_nowait(rpc.WatchRequest(progress_request=rpc.WatchProgressRequest()))

    def close(self) -> None:
        self._requests.put_nowait(None)
        if self._call is not None:
            self._call.cancel()

    async def _request_iter(self) -> AsyncIterator[Any]:
        while True:
            item = await self._requests.get()
            if item is None:
                return
            yield item

    async def __aiter__(self) -> AsyncIterator[list[WatchEvent] | int]:
        self._call = self._store.watch_stub.Watch(self._request_iter())
        try:
            async for resp in self._call:
                if resp.canceled or resp.compact_revision:
                    if resp.compact_revision:
                        raise Compacted(resp.compact_revision)
                    raise errors.service_unavailable(f"etcd watch canceled: {resp.cancel_reason}")
                if not resp.events:
                    if not resp.created:
                        yield resp.header.revision
                    continue
                yield [
                    WatchEvent(
                        "DELETE" if ev.type == ev.DELETE else "PUT",
                        _kv(ev.kv),
                        _kv(ev.prev_kv) if ev.HasField("prev_kv") else None,
                    )
                    for ev in resp.events
                ]
        except grpc.aio.AioRpcError as e:
            if e.code() == grpc.StatusCode.CANCELLED and self._requests.empty():
                return
            raise EtcdStore._translate(e) from None
        finally:
            self.close()


def _read(path: str | None) -> bytes | None:
    if not path:
        return None
    with open(path, "rb") as f:
        return f.read()


async def close_quietly(store: EtcdStore) -> None:
    with contextlib.suppress(Exception):
        await store.close()
