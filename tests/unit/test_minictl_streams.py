"""The exec/attach/port-forward websocket client (minictl.streams) against a fake server on 127.0.0.1
that speaks the kubelet's side of the channel protocols."""

from __future__ import annotations

import contextlib
import io
import json
import os
import socket
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import parse_qs, urlsplit

import pytest
from websockets.sync.server import ServerConnection, serve

from apimachinery.errors import StatusError
from minictl.streams import (
    CLOSE,
    ERROR,
    EXEC_PROTOCOLS,
    PORT_FORWARD_PROTOCOLS,
    RESIZE,
    STDERR,
    STDIN,
    STDOUT,
    ExecSession,
    PortForwardStream,
    exec_params,
    exit_code_from_status,
    open_stream,
    resize_frame,
    websocket_url,
)


class _Info:
    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": "Bearer t0ken"}


class _Api:
    def __init__(self, port: int) -> None:
        self.server = f"http://127.0.0.1:{port}"
        self.info = _Info()
        self.ssl = None


@contextmanager
def _server(handler, protocols: list[str]) -> Iterator[tuple[int, list[dict]]]:
    seen: list[dict] = []

    def wrapped(ws: ServerConnection) -> None:
        seen.append({"path": ws.request.path, "protocol": ws.subprotocol,
                     "auth": ws.request.headers.get("Authorization")})
        handler(ws)

    with serve(wrapped, "127.0.0.1", 0, subprotocols=protocols, max_size=None) as srv:
        t = threading.Thread(target=srv.serve_forever, daemon=True)
        t.start()
        try:
            yield srv.socket.getsockname()[1], seen
        finally:
            srv.shutdown()
            t.join(5)


def _exec_handler(ws: ServerConnection) -> None:
    query = parse_qs(urlsplit(ws.request.path).query)
    ws.send(bytes([STDOUT]) + f"cmd={' '.join(query['command'])}\n".encode())
    ws.send(bytes([STDERR]) + b"warn\n")
    got = b""
    resized = None
    while True:
        msg = ws.recv()
        if msg[0] == STDIN:
            got += msg[1:]
        elif msg[0] == RESIZE:
            resized = json.loads(msg[1:])
        elif msg[0] == CLOSE and msg[1:] == bytes([STDIN]):
            break
    ws.send(bytes([STDOUT]) + got.upper())
    if resized:
        ws.send(bytes([STDOUT]) + f"size={resized['Width']}x{resized['Height']}".encode())
    status = {"metadata": {}, "status": "Failure", "reason": "NonZeroExitCode", "message": "exit 3",
              "details": {"causes": [{"reason": "ExitCode", "message": "3"}]}}
    ws.send(bytes([ERROR]) + json.dumps(status).encode())
    ws.close()


def test_exec_v5_streams_stdin_and_half_close_and_exit_code() -> None:
    with _server(_exec_handler, ["v5.channel.k8s.io", "v4.channel.k8s.io"]) as (port, seen):
        params = exec_params(["sh", "-c", "cat"], "app", stdin=True, tty=False)
        ws = open_stream(_Api(port), "/api/v1/namespaces/ns/pods/p/exec", params, EXEC_PROTOCOLS)
        session = ExecSession(ws)
        assert session.protocol == "v5.channel.k8s.io"
        r, w = os.pipe()
        os.write(w, b"hello ")
        os.write(w, b"world")
        os.close(w)
        session.resize(80, 24)
        with os.fdopen(r, "rb") as stdin:
            session.pump_stdin(stdin)
            out, err = io.BytesIO(), io.BytesIO()
            result = session.run(out, err)
    assert result.exit_code == 3
    assert out.getvalue() == b"cmd=sh -c cat\nHELLO WORLDsize=80x24"
    assert err.getvalue() == b"warn\n"
    assert seen[0]["auth"] == "Bearer t0ken"
    q = parse_qs(urlsplit(seen[0]["path"]).query)
    assert q == {"container": ["app"], "command": ["sh", "-c", "cat"], "stdin": ["true"], "stdout": ["true"],
                 "stderr": ["true"], "tty": ["false"]}


def test_exec_falls_back_to_v4_and_success_status() -> None:
    def handler(ws: ServerConnection) -> None:
        ws.send(bytes([STDOUT]) + b"ok")
        ws.send(bytes([ERROR]) + json.dumps({"metadata": {}, "status": "Success"}).encode())
        ws.close()

    with _server(handler, ["v4.channel.k8s.io"]) as (port, _):
        ws = open_stream(_Api(port), "/x", exec_params(["true"], None, stdin=False, tty=True), EXEC_PROTOCOLS)
        session = ExecSession(ws)
        assert session.protocol == "v4.channel.k8s.io"
        session.close_stdin()  # no close channel in v4: nothing is sent
        out = io.BytesIO()
        assert session.run(out, io.BytesIO()).exit_code == 0
        assert out.getvalue() == b"ok"


def test_refused_upgrade_raises_the_servers_status() -> None:
    def handler(ws: ServerConnection) -> None:  # never reached
        ws.close()

    from websockets.datastructures import Headers
    from websockets.http11 import Response

    body = json.dumps({"kind": "Status", "status": "Failure", "reason": "Forbidden", "code": 403,
                       "message": 'pods "p" is forbidden: User "u" cannot create resource "pods/exec"'}).encode()

    def refuse(connection, request):
        return Response(403, "Forbidden", Headers({"Content-Type": "application/json"}), body)

    with serve(handler, "127.0.0.1", 0, process_request=refuse) as srv:
        t = threading.Thread(target=srv.serve_forever, daemon=True)
        t.start()
        try:
            with pytest.raises(StatusError) as e:
                open_stream(_Api(srv.socket.getsockname()[1]), "/x", [], EXEC_PROTOCOLS)
        finally:
            srv.shutdown()
            t.join(5)
    assert e.value.code == 403 and e.value.reason == "Forbidden" and "cannot create" in e.value.message


def test_exit_codes_and_frames() -> None:
    assert exit_code_from_status(None) == 0
    assert exit_code_from_status({"status": "Success"}) == 0
    assert exit_code_from_status({"status": "Failure", "reason": "NonZeroExitCode",
                                  "details": {"causes": [{"reason": "ExitCode", "message": "137"}]}}) == 137
    with pytest.raises(StatusError, match="container not found"):
        exit_code_from_status({"status": "Failure", "reason": "InternalError", "message": "container not found"})
    assert resize_frame(100, 40) == b'\x04{"Width": 100, "Height": 40}'
    assert websocket_url("https://h:6443/", "/p", [("a", "1"), ("a", "2")]) == "wss://h:6443/p?a=1&a=2"
    assert exec_params(["ls"], None, stdin=False, tty=True)[-2:] == [("stderr", "false"), ("tty", "true")]


def test_port_forward_strips_port_headers_and_relays_both_ways() -> None:
    def handler(ws: ServerConnection) -> None:
        assert parse_qs(urlsplit(ws.request.path).query) == {"ports": ["8080"]}
        header = struct.pack("<H", 8080)
        ws.send(bytes([0]) + header)
        ws.send(bytes([1]) + header)
        while True:
            try:
                msg = ws.recv()
            except Exception:
                return
            if msg[0] == 0:
                ws.send(bytes([0]) + msg[1:].upper())
                if msg[1:].endswith(b"bye"):
                    ws.close()
                    return

    with _server(handler, list(PORT_FORWARD_PROTOCOLS)) as (port, _):
        ws = open_stream(_Api(port), "/api/v1/namespaces/ns/pods/p/portforward", [("ports", "8080")],
                         PORT_FORWARD_PROTOCOLS)
        local, remote = socket.socketpair()
        stream = PortForwardStream(ws, 8080)
        t = threading.Thread(target=stream.pump, args=(remote,), daemon=True)
        t.start()
        local.sendall(b"hello ")
        local.sendall(b"bye")
        received = b""
        local.settimeout(5)
        while not received.endswith(b"BYE"):
            chunk = local.recv(100)
            assert chunk, "stream closed early"
            received += chunk
        t.join(5)
        local.close()
    assert received == b"HELLO BYE"
    assert stream.error == b""


def test_a_resize_is_never_sent_from_inside_the_signal_handler() -> None:
    """SIGWINCH can interrupt the main thread while it holds a lock that sending needs (the
    websocket's): the handler must leave the sending to another thread, or the session hangs."""
    import fcntl
    import pty
    import signal
    import termios

    from minictl.streams import on_resize
    from tests.conftest import wait_for

    held = threading.Lock()
    sizes: list[tuple[int, int]] = []

    class Session:
        def resize(self, width: int, height: int) -> None:
            # the old handler ran here in the main thread, which holds `held`: this times out and raises
            if not held.acquire(timeout=2):
                raise AssertionError("resize called while the interrupted thread holds the lock")
            sizes.append((width, height))
            held.release()

    master, slave = pty.openpty()
    try:
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
        undo = on_resize(Session(), slave)  # type: ignore[arg-type]
        try:
            assert sizes == [(80, 24)]
            fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
            with held:
                signal.raise_signal(signal.SIGWINCH)  # the handler runs now, while `held` is taken
                assert sizes == [(80, 24)]
            wait_for(lambda: sizes == [(80, 24), (100, 30)], 5, 0.01, "the new size to be sent")
        finally:
            undo()
    finally:
        os.close(master)
        os.close(slave)


@contextlib.contextmanager
def a_terminal():  # -> Iterator[int]: the slave side of a new pty, 80x24
    import fcntl
    import pty
    import termios

    master, slave = pty.openpty()
    try:
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
        yield slave
    finally:
        os.close(master)
        os.close(slave)


def test_signals_that_come_together_never_block_the_handler() -> None:
    """Two SIGWINCHs at once (a resize by ioctl signals the terminal's process group too) ran the
    old handler inside itself, where threading.Event.set waited for its own lock: a hung session
    (tests/e2e/kubelet/test_minictl_streams.py caught it with py-spy). The handler now only writes
    to a pipe: a flood of calls returns at once, and the last size is sent."""
    import fcntl
    import signal
    import termios

    from minictl.streams import on_resize
    from tests.conftest import wait_for

    sizes: list[tuple[int, int]] = []

    class Session:
        def resize(self, width: int, height: int) -> None:
            sizes.append((width, height))

    with a_terminal() as slave:
        undo = on_resize(Session(), slave)  # type: ignore[arg-type]
        try:
            handler = signal.getsignal(signal.SIGWINCH)
            assert callable(handler)
            fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
            started = time.monotonic()
            for _ in range(200_000):  # more than a pipe holds: the rest are dropped, never waited for
                handler(signal.SIGWINCH, None)
            signal.raise_signal(signal.SIGWINCH)
            signal.raise_signal(signal.SIGWINCH)
            assert time.monotonic() - started < 30
            wait_for(lambda: sizes and sizes[-1] == (100, 30), 5, 0.01, "the new size to be sent")
        finally:
            undo()
        assert signal.getsignal(signal.SIGWINCH) is not handler


def test_a_signal_arriving_inside_the_handler_does_not_deadlock() -> None:
    """The second SIGWINCH of a pair runs the handler again in the middle of the first (signal
    handlers run between bytecodes): simulated by a profile hook calling it at the first C call the
    outer handler returns from. The old handler (Event.set) waited for its own lock there."""
    import signal
    import sys

    from minictl.streams import on_resize

    class Session:
        def resize(self, width: int, height: int) -> None:
            pass

    with a_terminal() as slave:
        undo = on_resize(Session(), slave)  # type: ignore[arg-type]
        try:
            handler = signal.getsignal(signal.SIGWINCH)
            assert callable(handler)
            state = {"inside": False, "nested": False}

            def hook(frame, event, arg) -> None:
                if state["inside"] and not state["nested"] and event == "c_return":
                    state["nested"] = True
                    handler(signal.SIGWINCH, None)  # the second signal, mid-handler

            def outer() -> None:
                sys.setprofile(hook)  # this thread only
                try:
                    state["inside"] = True
                    handler(signal.SIGWINCH, None)
                finally:
                    sys.setprofile(None)

            t = threading.Thread(target=outer, daemon=True)
            t.start()
            t.join(5)
            if t.is_alive():  # deadlocked: undoing could block on the same lock; just fail
                undo = lambda: signal.signal(signal.SIGWINCH, signal.SIG_DFL)  # noqa: E731
                raise AssertionError("the handler deadlocked when a signal came inside it")
            assert state["nested"]
        finally:
            undo()
