"""SPDY/3.1 framing and sessions: the header dictionary, compression contexts, a client and a
server over a socket pair (streams, data, half-close, reset, ping)."""

import asyncio
import hashlib
import socket
import struct
import zlib

import pytest

from kubelet.spdy import (
    DICTIONARY,
    FLAG_FIN,
    PING,
    Framer,
    Session,
    decode_headers,
    encode_headers,
    read_frame,
)


def test_the_spec_dictionary():
    # draft-mbelshe-httpbis-spdy-00 2.6.10.1: 1423 bytes, words first, then the value block
    assert len(DICTIONARY) == 1423
    assert DICTIONARY.startswith(b"\x00\x00\x00\x07options\x00\x00\x00\x04head")
    assert DICTIONARY.endswith(b"charset=iso-8859-1,utf-,*,enq=0.")
    assert hashlib.sha256(DICTIONARY).hexdigest().startswith("51d27341")


def test_header_blocks_and_compression_contexts():
    block = encode_headers({"streamType": "data", "Port": ["80", "81"]})
    assert decode_headers(block) == {"streamtype": ["data"], "port": ["80", "81"]}
    sender, receiver = Framer(), Framer()
    for i in range(3):  # one zlib stream per direction, flushed per block
        data = sender.compress({"requestid": str(i)})
        assert receiver.decompress(data) == {"requestid": [str(i)]}
    # a peer with another dictionary could not read our blocks
    with pytest.raises(zlib.error):
        zlib.decompressobj(zdict=b"wrong").decompress(Framer().compress({"a": "b"}))


def test_frame_layout():
    frame = Framer.data(5, FLAG_FIN, b"abc")
    assert frame == struct.pack(">II", 5, (1 << 24) | 3) + b"abc"
    ping = Framer.control(PING, 0, struct.pack(">I", 7))
    assert ping[:4] == b"\x80\x03\x00\x06"


async def _pair():
    a, b = socket.socketpair()
    ra, wa = await asyncio.open_connection(sock=a)
    rb, wb = await asyncio.open_connection(sock=b)
    return (ra, wa), (rb, wb)


async def test_client_and_server_sessions():
    (ra, wa), (rb, wb) = await _pair()
    accepted: asyncio.Queue = asyncio.Queue()

    async def on_stream(stream):
        await accepted.put(stream)

    server = Session(rb, wb, server=True, on_stream=on_stream)
    client = Session(ra, wa, server=False)
    server.start()
    client.start()
    stream = await client.open_stream({"streamType": "stdin", "port": "8080"})
    assert stream.id == 1
    peer = await asyncio.wait_for(accepted.get(), 5)
    assert peer.header("streamType") == "stdin" and peer.header("PORT") == "8080"
    await stream.write(b"hello " * 20000)  # more than one DATA frame
    await stream.close()
    received = b""
    while chunk := await peer.read():
        received += chunk
    assert received == b"hello " * 20000
    await peer.write(b"back")
    await peer.close()
    assert await stream.read() == b"back" and await stream.read() == b""
    second = await client.open_stream({"streamType": "error"})
    assert second.id == 3
    other = await asyncio.wait_for(accepted.get(), 5)
    await other.cancel()
    assert await second.read() == b"" and second.reset
    await client.close()
    await asyncio.wait_for(server.closed.wait(), 5)
    await server.close()


async def test_pings_from_the_peer_are_answered():
    (ra, wa), (rb, wb) = await _pair()
    session = Session(rb, wb, server=True)
    session.start()
    wa.write(Framer.control(PING, 0, struct.pack(">I", 1)))  # a client's (odd) ping
    await wa.drain()
    control, kind, _, payload = await asyncio.wait_for(read_frame(ra), 5)
    assert control and kind == PING and struct.unpack(">I", payload)[0] == 1
    await session.close()
    wa.close()
