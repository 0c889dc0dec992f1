"""The client side of Kubernetes' websocket streaming protocols (exec, attach, port-forward).

Exec/attach (``v5.channel.k8s.io``, falling back to ``v4.channel.k8s.io``): every binary frame
starts with a channel byte — 0 stdin, 1 stdout, 2 stderr, 3 error (a ``Status`` JSON that
also carries the exit code: reason ``NonZeroExitCode``, cause ``ExitCode``), 4 resize
(``{"Width": w, "Height": h}``); v5 adds 255 close (``[255, <channel>]`` half-closes stdin).

Port-forward (``v4.channel.k8s.io`` on ``pods/<name>/portforward?ports=P``, one websocket per
local connection, as the kubelet's websocket port-forwarding serves it): channel 0 carries
data and 1 errors for the port; the server's first frame on each channel is the port number
(2 bytes, little endian), which is not payload.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import os
import signal
import socket
import struct
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, BinaryIO
from urllib.parse import urlencode

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from apimachinery.errors import StatusError

STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255
V5 = "v5.channel.k8s.io"
V4 = "v4.channel.k8s.io"
EXEC_PROTOCOLS = (V5, V4)
PORT_FORWARD_PROTOCOLS = (V4,)


# websockets ≥ 16 wants `legacy=True` to return the connection itself (not a context manager)
_LEGACY = {"legacy": True} if "legacy" in inspect.signature(connect).parameters else {}


def websocket_url(server: str, path: str, params: list[tuple[str, str]]) -> str:
    base = server.rstrip("/")
    if base.startswith("https://"):
        base = "wss://" + base[len("https://"):]
    elif base.startswith("http://"):
        base = "ws://" + base[len("http://"):]
    return f"{base}{path}?{urlencode(params)}" if params else f"{base}{path}"


def open_stream(api: Any, path: str, params: list[tuple[str, str]], protocols: tuple[str, ...],
                timeout: float = 30.0) -> ClientConnection:
    """A websocket to the apiserver with the kubeconfig's identity (an Api from minictl.api)."""
    url = websocket_url(api.server, path, params)
    headers = {"User-Agent": "minictl/0.1.0", **api.info.auth_headers()}
    try:
        return connect(url, ssl=api.ssl if url.startswith("wss://") else None, subprotocols=list(protocols),
                       additional_headers=headers, open_timeout=timeout, max_size=None, compression=None,
                       close_timeout=2, **_LEGACY)
    except Exception as e:
        status = _handshake_status(e)
        if status is not None:
            raise status from None
        raise


def _handshake_status(e: Exception) -> StatusError | None:
    """The apiserver's Status when it refused the upgrade (websockets keeps the HTTP response)."""
    response = getattr(e, "response", None)
    if response is None:
        return None
    from minictl.api import status_error_from_response

    return status_error_from_response(response.status_code, bytes(response.body or b""))


def frame(channel: int, data: bytes = b"") -> bytes:
    return bytes([channel]) + data


def resize_frame(width: int, height: int) -> bytes:
    return frame(RESIZE, json.dumps({"Width": width, "Height": height}).encode())


def exit_code_from_status(status: dict[str, Any] | None) -> int:
    """0 for Success; the remote exit code for NonZeroExitCode; raise StatusError otherwise."""
    if not status or status.get("status") == "Success":
        return 0
    if status.get("reason") == "NonZeroExitCode":
        for cause in (status.get("details") or {}).get("causes") or []:
            if cause.get("reason") == "ExitCode":
                try:
                    return int(cause.get("message", "1"))
                except ValueError:
                    return 1
        return 1
    raise StatusError.from_status({**status, "code": status.get("code") or 500})


@dataclass
class ExecResult:
    exit_code: int
    status: dict[str, Any] | None


class ExecSession:
    """One exec/attach stream: pumps stdin in, stdout/stderr out, returns the exit code."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.protocol = ws.subprotocol or ""
        self._send_lock = threading.Lock()

    def send(self, data: bytes) -> None:
        with self._send_lock:
            self.ws.send(data)

    def send_stdin(self, data: bytes) -> None:
        self.send(frame(STDIN, data))

    def close_stdin(self) -> None:
        if self.protocol == V5:
            self.send(frame(CLOSE, bytes([STDIN])))

    def resize(self, width: int, height: int) -> None:
        self.send(resize_frame(width, height))

    def pump_stdin(self, stdin: BinaryIO) -> threading.Thread:
        fd = stdin.fileno()

        def run() -> None:
            try:
                while True:
                    data = os.read(fd, 32 * 1024)
                    if not data:
                        self.close_stdin()
                        return
                    self.send_stdin(data)
            except (ConnectionClosed, OSError):
                return

        t = threading.Thread(target=run, name="stdin", daemon=True)
        t.start()
        return t

    def run(self, stdout: BinaryIO, stderr: BinaryIO) -> ExecResult:
        status_text = b""
        try:
            while True:
                msg = self.ws.recv()
                if isinstance(msg, str):
                    msg = msg.encode()
                if not msg:
                    continue
                channel, data = msg[0], msg[1:]
                if channel == STDOUT and data:
                    stdout.write(data)
                    stdout.flush()
                elif channel == STDERR and data:
                    stderr.write(data)
                    stderr.flush()
                elif channel == ERROR:
                    status_text += data
        except ConnectionClosed:
            pass
        status = None
        if status_text.strip():
            try:
                status = json.loads(status_text)
            except json.JSONDecodeError:
                status = {"status": "Failure", "message": status_text.decode(errors="replace"), "code": 500}
        return ExecResult(exit_code_from_status(status), status)


@contextlib.contextmanager
def raw_terminal(fd: int):  # -> Iterator[None]
    """Put a terminal in raw mode for the duration (and always restore it)."""
    import termios
    import tty

    saved = termios.tcgetattr(fd)
    try:
        tty.setraw(fd)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def terminal_size(fd: int) -> tuple[int, int]:
    size = os.get_terminal_size(fd)
    return size.columns, size.lines


def on_resize(session: ExecSession, fd: int) -> Callable[[], None]:
    """Send the terminal's size now and on every SIGWINCH; returns a function undoing the handler.

    The handler only writes a byte to a pipe that a sending thread reads: a signal handler runs in
    the main thread between two of its bytecodes, possibly while that thread holds a lock sending
    needs (the websocket's) — and possibly inside the handler itself, when two SIGWINCHs come at
    once (a terminal resized by ioctl signals too). Anything taking a lock there (sending, or even
    threading.Event.set) can deadlock the session; an unblocking os.write cannot."""

    def send() -> None:
        with contextlib.suppress(OSError, ConnectionClosed):
            session.resize(*terminal_size(fd))

    readable, writable = os.pipe()
    os.set_blocking(writable, False)

    def handler(*_: Any) -> None:
        with contextlib.suppress(OSError):  # a full pipe already says "resized"
            os.write(writable, b"\0")

    def sender() -> None:
        try:
            while os.read(readable, 512):  # b"": undone
                send()
        finally:
            os.close(readable)

    send()
    threading.Thread(target=sender, name="resize", daemon=True).start()
    previous = signal.signal(signal.SIGWINCH, handler)

    def undo() -> None:
        signal.signal(signal.SIGWINCH, previous)
        os.close(writable)  # the sender reads the end of the pipe and stops

    return undo


def exec_params(command: list[str], container: str | None, stdin: bool, tty: bool,
                stdout: bool = True, stderr: bool = True) -> list[tuple[str, str]]:
    params: list[tuple[str, str]] = []
    if container:
        params.append(("container", container))
    params += [("command", c) for c in command]
    params += [("stdin", "true" if stdin else "false"), ("stdout", "true" if stdout else "false"),
               ("stderr", "true" if stderr and not tty else "false"), ("tty", "true" if tty else "false")]
    return params


# --- port-forward --------------------------------------------------------------------------------


class PortForwardStream:
    """One forwarded TCP connection over its own websocket."""

    def __init__(self, ws: ClientConnection, port: int) -> None:
        self.ws = ws
        self.port = port
        self._seen_header = {0: False, 1: False}
        self.error = b""

    def _strip_header(self, channel: int, data: bytes) -> bytes:
        if not self._seen_header.get(channel, True):
            self._seen_header[channel] = True
            if len(data) >= 2:
                port = struct.unpack("<H", data[:2])[0]
                if port != self.port:
                    raise ValueError(f"port-forward: stream for port {port}, expected {self.port}")
                return data[2:]
        return data

    def pump(self, conn: socket.socket) -> None:
        """Copy bytes both ways until either side closes."""
        done = threading.Event()

        def upstream() -> None:
            try:
                while not done.is_set():
                    data = conn.recv(32 * 1024)
                    if not data:
                        break
                    self.ws.send(frame(0, data))
            except (OSError, ConnectionClosed):
                pass
            finally:
                done.set()
                with contextlib.suppress(Exception):
                    self.ws.close()

        t = threading.Thread(target=upstream, name=f"pf-{self.port}", daemon=True)
        t.start()
        try:
            while True:
                msg = self.ws.recv()
                if isinstance(msg, str):
                    msg = msg.encode()
                if not msg:
                    continue
                channel, data = msg[0], self._strip_header(msg[0], msg[1:])
                if channel == 0 and data:
                    conn.sendall(data)
                elif channel == 1 and data:
                    self.error += data
        except (ConnectionClosed, OSError):
            pass
        finally:
            done.set()
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()
        if self.error:
            sys.stderr.write(f"error: an error occurred forwarding {self.port}: {self.error.decode(errors='replace')}\n")
