"""client.watchstream.WatchDecoder: events split anywhere across chunks."""

from __future__ import annotations

import orjson
import pytest

from client.watchstream import WatchDecodeError, WatchDecoder, decode_event


def line(t: str, name: str) -> bytes:
    return orjson.dumps({"type": t, "object": {"metadata": {"name": name}}}) + b"\n"


def test_whole_lines_in_one_chunk() -> None:
    d = WatchDecoder()
    evs = d.feed(line("ADDED", "a") + line("MODIFIED", "a") + line("DELETED", "a"))
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in evs] == [("ADDED", "a"), ("MODIFIED", "a"), ("DELETED", "a")]
    assert not d.pending


def test_every_split_point_gives_the_same_events() -> None:
    data = line("ADDED", "a") + b"\n" + line("BOOKMARK", "") + line("MODIFIED", "b" * 1000)
    for cut in range(len(data) + 1):
        d = WatchDecoder()
        evs = d.feed(data[:cut]) + d.feed(data[cut:])
        assert [e["type"] for e in evs] == ["ADDED", "BOOKMARK", "MODIFIED"], cut
        assert not d.pending


def test_byte_by_byte() -> None:
    data = line("ADDED", "x") * 3
    d = WatchDecoder()
    evs = []
    for i in range(len(data)):
        evs += d.feed(data[i : i + 1])
    assert len(evs) == 3


def test_partial_line_is_pending() -> None:
    d = WatchDecoder()
    assert d.feed(b'{"type":"ADDED",') == []
    assert d.pending


@pytest.mark.parametrize("bad", [b"not json\n", b'{"type":"WHAT","object":{}}\n', b'{"type":"ADDED"}\n', b"[1]\n"])
def test_garbage_is_an_error(bad: bytes) -> None:
    with pytest.raises(WatchDecodeError):
        WatchDecoder().feed(bad)


def test_decode_event_crlf_tolerated() -> None:
    assert decode_event(b'{"type":"ADDED","object":{}}\r')["type"] == "ADDED"
