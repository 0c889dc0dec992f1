"""Refused exec/attach/port-forward streams: the kubelet answers as upstream's (plain text for
what its runtime lookups find wrong), and the apiserver passes a kubelet's refusal through as
is, on the websocket and on kubectl's SPDY fallback alike (tests/e2e/kubelet covers kubectl)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import grpc
import orjson
import pytest
from aiohttp.test_utils import TestServer

from apimachinery import errors
from apiserver.admission import Chain
from apiserver.http import Request
from apiserver.podproxy import PodProxy
from apiserver.requestinfo import RequestInfo
from apiserver.resources import TABLE
from kubelet.cri import CRIError
from kubelet.runtime import RUNNING, ContainerInfo, PodRuntimeStatus, SandboxInfo
from kubelet.server import KubeletServer

POD = {"metadata": {"name": "p", "namespace": "ns", "uid": "u1"},
       "spec": {"nodeName": "n1", "containers": [{"name": "main"}, {"name": "done"}]}}


class FakeCRI:
    def __init__(self) -> None:
        self.error: CRIError | None = None
        self.asked: list[str] = []

    async def exec(self, container_id: str, cmd: Any, **kw: Any) -> str:
        self.asked.append(f"exec {container_id}")
        if self.error is not None:
            raise self.error
        return "http://127.0.0.1:1/exec/token"

    async def attach(self, container_id: str, **kw: Any) -> str:
        return await self.exec(container_id, [])

    async def port_forward(self, sandbox_id: str, ports: Any = ()) -> str:
        self.asked.append(f"portforward {sandbox_id}")
        if self.error is not None:
            raise self.error
        return "http://127.0.0.1:1/portforward/token"


class FakeRuntime:
    def __init__(self) -> None:
        self.sandbox_ready = True

    async def pod_status(self, uid: str) -> PodRuntimeStatus:
        return PodRuntimeStatus(uid, "p", "ns", sandboxes=[SandboxInfo("s1", 0, self.sandbox_ready, 0)], containers=[
            ContainerInfo("c-main", "main", 0, RUNNING),
            ContainerInfo("c-done", "done", 0, "exited"),
        ])


class AllowAll:
    async def authenticate(self, peercert: Any, header: str) -> Any:
        return SimpleNamespace(name="kube-apiserver-kubelet-client")

    async def authorize(self, user: Any, verb: str, subresource: str) -> tuple[bool, str]:
        return True, ""


@pytest.fixture
async def kubelet() -> Any:
    fake = SimpleNamespace(known_pods=lambda: [POD], runtime=FakeRuntime(), cri=FakeCRI())
    server = TestServer(KubeletServer(fake, AllowAll()).app())  # type: ignore[arg-type]
    await server.start_server()
    yield SimpleNamespace(fake=fake, base=str(server.make_url("")).rstrip("/"))
    await server.close()


@pytest.fixture
async def proxy(kubelet: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    # no admission plugins: what CONNECT admission does is tested against a real apiserver
    # (tests/integration/test_admission_webhooks.py)
    server = SimpleNamespace(opts=SimpleNamespace(), admission=Chain([]),
                             resource=lambda group, plural: TABLE.by_plural(group, plural))
    p = PodProxy(server)  # type: ignore[arg-type]

    async def pod(ns: str, name: str) -> dict[str, Any]:
        return POD

    async def kubelet_base(pod: dict[str, Any]) -> str:
        return kubelet.base

    monkeypatch.setattr(p, "pod", pod)
    monkeypatch.setattr(p, "kubelet_base", kubelet_base)
    yield p
    await p.close()


def _info(subresource: str) -> RequestInfo:
    return RequestInfo(True, "get", f"/api/v1/namespaces/ns/pods/p/{subresource}", "api", "", "v1", "ns", "pods",
                       subresource, "p")


async def _websocket(proxy: PodProxy, subresource: str, query: str, http_response: bool = True) -> list[dict]:
    """Run one websocket request through the proxy; what it sent to the client."""
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "websocket.connect"}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "websocket", "query_string": query.encode(), "subprotocols": ["v5.channel.k8s.io"],
             "extensions": {"websocket.http.response": {}} if http_response else {}}
    await proxy.websocket(scope, receive, send, _info(subresource), "ns", None)  # type: ignore[arg-type]
    return sent


async def _spdy(proxy: PodProxy, subresource: str, query: str, upgrade: bool = True) -> tuple[int, bytes, bytes]:
    """kubectl's SPDY fallback request through the proxy: (status, content type, body)."""
    headers = [(b"connection", b"Upgrade"), (b"upgrade", b"SPDY/3.1")] if upgrade else []
    scope = {"type": "http", "method": "POST", "path": f"/api/v1/namespaces/ns/pods/p/{subresource}",
             "query_string": query.encode(), "headers": headers}
    req = Request(scope, None)  # type: ignore[arg-type]
    resp = await proxy.streaming_http(req, _info(subresource), "ns")
    return resp.status, resp.content_type, resp.body


def _http_answer(sent: list[dict]) -> tuple[int, dict[bytes, bytes], bytes]:
    assert [m["type"] for m in sent] == ["websocket.http.response.start", "websocket.http.response.body"], sent
    return sent[0]["status"], dict(sent[0]["headers"]), sent[1]["body"]


async def test_a_container_that_is_not_running_is_not_found_on_both_paths(proxy: PodProxy) -> None:
    status, headers, body = _http_answer(await _websocket(proxy, "exec", "container=done&command=true&stdout=1"))
    assert (status, body) == (500, b'container not found ("done")')
    assert headers[b"content-type"].startswith(b"text/plain")
    status, content_type, body = await _spdy(proxy, "attach", "container=done&stdout=1")
    assert (status, body) == (500, b'container not found ("done")') and content_type.startswith(b"text/plain")


async def test_the_runtimes_refusal_is_passed_through(proxy: PodProxy, kubelet: Any) -> None:
    kubelet.fake.cri.error = CRIError("Exec", grpc.StatusCode.NOT_FOUND, 'container "c-main" not found')
    status, _, body = _http_answer(await _websocket(proxy, "exec", "container=main&command=true&stdout=1"))
    assert (status, body) == (404, b'rpc error: code = NotFound desc = container "c-main" not found')
    kubelet.fake.cri.error = CRIError("Exec", grpc.StatusCode.FAILED_PRECONDITION, "container is in CONTAINER_EXITED state")
    status, _, body = await _spdy(proxy, "exec", "container=main&command=true&stdout=1")
    assert (status, body) == (500, b"rpc error: code = FailedPrecondition desc = container is in CONTAINER_EXITED state")


async def test_without_a_websocket_the_refusal_closes_the_socket_with_it(proxy: PodProxy) -> None:
    sent = await _websocket(proxy, "exec", "container=done&command=true&stdout=1", http_response=False)
    assert sent == [{"type": "websocket.close", "code": 1008, "reason": 'container not found ("done")'}]


async def test_errors_found_by_the_apiserver_are_a_status_on_both_paths(proxy: PodProxy) -> None:
    status, headers, body = _http_answer(await _websocket(proxy, "exec", "container=nope&command=true&stdout=1"))
    assert status == 400 and headers[b"content-type"] == b"application/json"
    assert orjson.loads(body)["message"] == "container nope is not valid for pod p"
    with pytest.raises(errors.StatusError) as e:
        await _spdy(proxy, "exec", "container=nope&command=true&stdout=1")
    assert e.value.status()["message"] == "container nope is not valid for pod p"
    # a plain request (no upgrade) is refused as upstream's proxy does, without asking the kubelet
    with pytest.raises(errors.StatusError) as e:
        await _spdy(proxy, "exec", "container=main&command=true&stdout=1", upgrade=False)
    assert e.value.status()["message"] == "Upgrade request required"


async def test_a_valid_spdy_request_still_asks_the_runtime_then_needs_a_websocket(proxy: PodProxy, kubelet: Any) -> None:
    status, _, body = await _spdy(proxy, "exec", "container=main&command=true&stdout=1")
    assert status == 400 and orjson.loads(body)["message"].startswith("Upgrade request required")
    assert kubelet.fake.cri.asked == ["exec c-main"]


async def test_port_forward_without_a_running_sandbox(proxy: PodProxy, kubelet: Any) -> None:
    kubelet.fake.runtime.sandbox_ready = False
    status, _, body = _http_answer(await _websocket(proxy, "portforward", "ports=80"))
    assert (status, body) == (500, b'pod not found ("p_ns")')
    assert kubelet.fake.cri.asked == []


async def test_a_pod_the_kubelet_does_not_know(proxy: PodProxy, kubelet: Any) -> None:
    kubelet.fake.known_pods = lambda: []
    status, _, body = _http_answer(await _websocket(proxy, "attach", "container=main&stdout=1"))
    assert (status, body) == (404, b"pod does not exist")
    status, _, body = await _spdy(proxy, "portforward", "ports=80")
    assert (status, body) == (404, b"pod does not exist")


def test_connect_options_follow_upstreams_query_conversion() -> None:
    from apiserver.podproxy import connect_options

    q = [("command", "sh"), ("command", "-c"), ("stdin", ""), ("stdout", "0"), ("stderr", "False"), ("tty", "yes"),
         ("tty", "false"), ("container", "c")]
    assert connect_options("exec", q) == {"kind": "PodExecOptions", "apiVersion": "v1", "stdin": True, "tty": True,
                                          "container": "c", "command": ["sh", "-c"]}
    assert connect_options("attach", [("stdout", "true")]) == {"kind": "PodAttachOptions", "apiVersion": "v1",
                                                              "stdout": True}
    assert connect_options("portforward", [("ports", "80"), ("ports", "443")])["ports"] == [80, 443]
    assert connect_options("portforward", [("ports", "80,8080"), ("ports", "9")])["ports"] == [80, 8080, 9]
    assert "ports" not in connect_options("portforward", [])
    for bad, why in (("http", "invalid syntax"), ("-1", "invalid syntax"), ("+80", "invalid syntax"),
                     ("80,", "invalid syntax"), ("65536", "value out of range")):
        with pytest.raises(errors.StatusError) as e:
            connect_options("portforward", [("ports", bad)])
        assert e.value.code == 400 and e.value.message.endswith(why), bad


def test_query_bool_is_upstreams_parameter_conversion() -> None:
    from apiserver.http import query_bool
    from apiserver.requestinfo import parse

    assert [query_bool(v) for v in (None, "0", "false", "FALSE", "False")] == [False] * 5
    assert [query_bool(v) for v in ("", "1", "true", "yes", "t")] == [True] * 5
    assert parse("GET", "/api/v1/pods", {"watch": ""}).verb == "watch"
    assert parse("GET", "/api/v1/pods", {"watch": "False"}).verb == "list"


async def test_log_flags_reach_the_kubelet_as_upstream_reads_them(proxy: PodProxy, monkeypatch) -> None:
    """`follow=` (empty) is true and `previous=False` false, as upstream's parameter codec reads
    them; the kubelet gets an explicit true/false."""
    asked: list[str] = []

    class Session:
        async def get(self, url: str) -> Any:
            asked.append(url)
            raise errors.StatusError(418, "Teapot", "stop here")

    monkeypatch.setattr(proxy, "session", lambda: Session())
    scope = {"type": "http", "method": "GET", "path": "/api/v1/namespaces/ns/pods/p/log",
             "query_string": b"follow=&previous=False&timestamps=yes&tailLines=&container=main", "headers": []}
    with pytest.raises(errors.StatusError):
        await proxy.logs(Request(scope, None), _info("log"), "ns")  # type: ignore[arg-type]
    assert asked[0].endswith("/containerLogs/ns/p/main?follow=true&previous=false&timestamps=true"), asked
