"""v1 ComponentStatus: `kubectl get cs` probes etcd, the scheduler and the controller-manager when
asked (upstream's deprecated but served kind), read-only, with upstream's columns and warning."""

from __future__ import annotations

import contextlib
import http.server
import socket
import threading
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import ControlPlane


@contextlib.contextmanager
def healthz_on(port: int, body: bytes = b"ok", code: int = 200) -> Iterator[None]:
    """A /healthz answering on 127.0.0.1:`port` (the component's default port), if it is free."""
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(code)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    try:
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    except OSError:
        pytest.skip(f"127.0.0.1:{port} is taken on this machine (a running cluster?)")
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield
    finally:
        srv.shutdown()
        srv.server_close()


def port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # our own server's TIME_WAIT is no listener
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def conditions(obj: dict) -> dict:
    [cond] = obj["conditions"]
    return cond


def test_component_statuses(api: httpx.Client) -> None:
    with healthz_on(10259), healthz_on(10257, b"[-]leaderElection failed", 500):
        r = api.get("/api/v1/componentstatuses")
        assert r.status_code == 200, r.text
        assert r.headers["warning"] == '299 - "v1 ComponentStatus is deprecated in v1.19+"'
        listed = {o["metadata"]["name"]: o for o in r.json()["items"]}
        assert r.json()["kind"] == "ComponentStatusList" and sorted(listed) == ["controller-manager", "etcd-0", "scheduler"]
        assert conditions(listed["etcd-0"]) == {"type": "Healthy", "status": "True", "message": "ok"}
        assert conditions(listed["scheduler"]) == {"type": "Healthy", "status": "True", "message": "ok"}
        assert conditions(listed["controller-manager"]) == {
            "type": "Healthy", "status": "False", "message": "HTTP probe failed with statuscode: 500"}
        one = api.get("/api/v1/componentstatuses/scheduler").json()
        assert one["kind"] == "ComponentStatus" and one["apiVersion"] == "v1" and conditions(one)["status"] == "True"
        picked = api.get("/api/v1/componentstatuses", params={"fieldSelector": "metadata.name=etcd-0"}).json()
        assert [o["metadata"]["name"] for o in picked["items"]] == ["etcd-0"]
    assert port_free(10259)
    down = conditions(api.get("/api/v1/componentstatuses/scheduler").json())
    assert down["status"] == "False" and down["message"].startswith('Get "http://127.0.0.1:10259/healthz": ')
    assert "error" not in down


def test_componentstatus_errors(api: httpx.Client) -> None:
    r = api.get("/api/v1/componentstatuses/nope")
    assert r.status_code == 404 and r.json()["message"] == 'componentstatus "nope" not found', r.text
    r = api.delete("/api/v1/componentstatuses/etcd-0")
    assert r.status_code == 405 and r.json()["reason"] == "MethodNotAllowed"
    r = api.get("/api/v1/componentstatuses", params={"fieldSelector": "status=x"})
    assert r.status_code == 400 and "is not a known field selector" in r.json()["message"]
    assert api.get("/api/v1/componentstatuses", params={"watch": "true"}).status_code == 405


def test_kubectl_get_cs(control_plane: ControlPlane) -> None:
    r = control_plane.kubectl("get", "cs")
    assert "Warning: v1 ComponentStatus is deprecated in v1.19+" in r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["NAME", "STATUS", "MESSAGE", "ERROR"]
    etcd = next(line for line in lines if line.startswith("etcd-0"))
    assert etcd.split()[:3] == ["etcd-0", "Healthy", "ok"]
