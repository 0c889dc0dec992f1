"""`minik8s-apiserver` / `python -m apiserver`: serve the Kubernetes API over HTTPS."""

from __future__ import annotations

import asyncio
import logging
import ssl
from typing import Any

import click
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from apimachinery.logs import setup_logging
from apiserver.admission.config import AdmissionConfigError
from apiserver.admission.podsecurity import PodSecurityConfigError
from apiserver.app import create_asgi
from apiserver.auditpolicy import PolicyError
from apiserver.authn import user_from_peercert
from apiserver.server import APIServer, Options

log = logging.getLogger("apiserver")


class CoalescingTransport:
    """Sends a response's head together with what follows it, in one `write`.

    uvicorn writes a response's head and body separately; over TLS that is two records and two
    syscalls per response. A head ("HTTP/1.1 ...") is held until the next write (the body,
    which follows in the same step) or the end of the loop turn; everything else — e.g. a
    watch stream's chunks — goes out at once.
    """

    def __init__(self, transport: Any) -> None:
        self._transport = transport
        self._head: bytes | None = None
        self._loop = asyncio.get_running_loop()

    def write(self, data: bytes) -> None:
        if self._head is not None:
            data, self._head = self._head + data, None
        elif data.startswith(b"HTTP/1.1 "):
            self._head = data
            self._loop.call_soon(self._flush)
            return
        self._transport.write(data)

    def _flush(self) -> None:
        if self._head is not None:
            data, self._head = self._head, None
            if not self._transport.is_closing():
                self._transport.write(data)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class CertAwareProtocol(HttpToolsProtocol):
    """uvicorn's HTTP protocol, plus the verified client certificate's user in each request scope.

    The certificate is read once per connection (TLS verified the chain against the
    client CA during the handshake), so x509 authentication costs nothing per request.
    """

    peer_user: Any = None

    def connection_made(self, transport: Any) -> None:  # type: ignore[override]
        super().connection_made(CoalescingTransport(transport))
        ssl_object = transport.get_extra_info("ssl_object")
        self.peer_user = user_from_peercert(ssl_object.getpeercert()) if ssl_object is not None else None

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.scope["minik8s.peer_user"] = self.peer_user  # type: ignore[typeddict-unknown-key]
        # watch responses write straight to the connection (apiserver.watchstream)
        self.scope["minik8s.transport"] = self.transport  # type: ignore[typeddict-unknown-key]


class CertAwareWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's websocket protocol, plus the client certificate's user (exec/attach/port-forward)."""

    def connection_made(self, transport: Any) -> None:  # type: ignore[override]
        super().connection_made(CoalescingTransport(transport))
        ssl_object = transport.get_extra_info("ssl_object")
        peer_user = user_from_peercert(ssl_object.getpeercert()) if ssl_object is not None else None
        app = self.app

        async def with_peer_user(scope: Any, receive: Any, send: Any) -> None:
            scope["minik8s.peer_user"] = peer_user
            await app(scope, receive, send)

        self.app = with_peer_user

    def handle_connect(self, event: Any) -> None:  # type: ignore[override]
        # kubectl's port-forward asks for "SPDY/3.1+portforward.k8s.io", which is no RFC 6455 token
        # ("/"): the websockets library would refuse the handshake. Hide the "/" from its parser and
        # restore it in the ASGI scope.
        offered = event.headers.get_all("Sec-WebSocket-Protocol")
        if any("/" in value for value in offered):
            del event.headers["Sec-WebSocket-Protocol"]
            for value in offered:
                event.headers["Sec-WebSocket-Protocol"] = value.replace("/", "%2F")
        super().handle_connect(event)
        scope = getattr(self, "scope", None)
        if scope is not None and scope.get("subprotocols"):
            scope["subprotocols"] = [p.replace("%2F", "/") for p in scope["subprotocols"]]


class Server(uvicorn.Server):
    """uvicorn's server, ending our watch streams first so shutdown doesn't wait on them."""

    def __init__(self, config: uvicorn.Config, api: APIServer) -> None:
        super().__init__(config)
        self.api = api

    async def shutdown(self, sockets: Any = None) -> None:
        self.api.shutting_down = True  # /readyz's `shutdown` check fails for what is still connected
        self.api.close_watches()
        await super().shutdown(sockets)


def parse_duration(v: str) -> int:
    """`90`, `90s`, `15m`, `48h` → seconds (Go-style durations, as upstream's flags take)."""
    v = v.strip()
    total, num = 0.0, ""
    units = {"h": 3600, "m": 60, "s": 1}
    for ch in v:
        if ch.isdigit() or ch == ".":
            num += ch
        elif ch in units and num:
            total += float(num) * units[ch]
            num = ""
        else:
            raise click.BadParameter(f"invalid duration {v!r}")
    if num:
        total += float(num)
    return int(total)


def _metric_resolution(v: str) -> float:
    seconds = parse_duration(v)
    if seconds < 1:
        raise click.BadParameter(f"must be at least 1s, got {v!r}")
    return float(seconds)


def ssl_context(opts: Options) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(opts.tls_cert_file, opts.tls_private_key_file)  # type: ignore[arg-type]
    if opts.client_ca_file:
        ctx.load_verify_locations(opts.client_ca_file)
        # Optional: clients may authenticate with a bearer token instead of a certificate.
        ctx.verify_mode = ssl.CERT_OPTIONAL
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def _csv(_ctx: Any, _param: Any, value: str) -> list[str]:
    return [v for v in value.split(",") if v]


@click.command(context_settings={"show_default": True, "max_content_width": 110})
@click.option("--etcd-servers", default="https://127.0.0.1:2379", help="etcd endpoint (the first of a comma-separated list is used): https://HOST:PORT, or unix:///PATH for an etcd socket on this host (no TLS).")
@click.option("--etcd-cafile", default=None, help="CA that signed etcd's serving certificate.")
@click.option("--etcd-certfile", default=None, help="Client certificate for etcd.")
@click.option("--etcd-keyfile", default=None, help="Client key for etcd.")
@click.option("--bind-address", default="127.0.0.1", help="Address to listen on (0.0.0.0 for all).")
@click.option("--advertise-address", default="127.0.0.1", help="Address published in the `kubernetes` service endpoints.")
@click.option("--secure-port", default=6443, type=int, help="HTTPS port.")
@click.option("--tls-cert-file", required=True, help="Serving certificate.")
@click.option("--tls-private-key-file", required=True, help="Serving key.")
@click.option("--client-ca-file", default=None, help="CA for x509 client-certificate authentication.")
@click.option("--token-auth-file", default=None, help="Static bearer tokens: CSV token,user,uid[,\"groups\"].")
@click.option("--service-account-key-file", default=None, help="Public key verifying ServiceAccount tokens.")
@click.option("--service-account-signing-key-file", default=None, help="Private key signing ServiceAccount tokens.")
@click.option("--service-account-issuer", default="https://kubernetes.default.svc.cluster.local")
@click.option("--service-account-max-token-expiration", default="0", callback=lambda _c, _p, v: parse_duration(v),
              help="Longest ServiceAccount token lifetime issued (e.g. 48h; 0: no limit).")
@click.option("--service-account-extend-token-expiration/--no-service-account-extend-token-expiration", default=True,
              help="Issue year-long tokens (flagged stale after 3607 s) for projected volumes, as upstream.")
@click.option("--api-audiences", default="", callback=lambda _c, _p, v: [a for a in v.split(",") if a],
              help="Audiences API tokens must carry (comma-separated; default: the issuer).")
@click.option("--enable-bootstrap-token-auth", is_flag=True, default=False,
              help="Accept bootstrap tokens (kube-system secrets of type bootstrap.kubernetes.io/token).")
@click.option("--anonymous-auth/--no-anonymous-auth", default=False, help="Treat requests without credentials as system:anonymous.")
@click.option("--authorization-mode", default="AlwaysAllow", help="Comma-separated authorizers: AlwaysAllow, AlwaysDeny, Node, RBAC.")
@click.option("--enable-admission-plugins", "admission_plugins", default="", callback=lambda _c, _p, v: [a for a in v.split(",") if a],
              help="Admission plugins to enable in addition to the defaults (all are on by default).")
@click.option("--disable-admission-plugins", default="", callback=lambda _c, _p, v: [a for a in v.split(",") if a],
              help="Admission plugins to turn off (comma-separated names).")
@click.option("--admission-control-config-file", default=None,
              help="AdmissionConfiguration (apiserver.config.k8s.io/v1) with the plugins' configuration; "
                   "PodSecurity reads its PodSecurityConfiguration (defaults, exemptions), other plugins' entries "
                   "are ignored with a warning.")
@click.option("--service-cluster-ip-range", default="10.96.0.0/16")
@click.option("--service-node-port-range", default="30000-32767")
@click.option("--etcd-compaction-interval", "compaction_interval", default=300.0, type=float, help="Seconds between etcd compactions.")
@click.option("--audit-policy-file", default=None,
              help="audit.k8s.io/v1 Policy (YAML) choosing what is audited at which level; without it nothing is.")
@click.option("--audit-log-path", default=None,
              help="Write the audit events (audit.k8s.io/v1 Event, one JSON per line) here; \"-\": stdout.")
@click.option("--audit-log-maxage", default=0, type=click.IntRange(min=0),
              help="Days to keep rotated audit logs (0: no limit by age).")
@click.option("--audit-log-maxbackup", default=0, type=click.IntRange(min=0),
              help="Rotated audit logs to keep (0: all).")
@click.option("--audit-log-maxsize", default=0, type=click.IntRange(min=0),
              help="Megabytes of audit log before it is rotated (0: 100, as upstream's).")
@click.option("--audit-log-compress", is_flag=True, default=False, help="Gzip rotated audit logs.")
@click.option("--audit-log-format", default="json", help="json (legacy is not supported).")
@click.option("--audit-log-mode", default="blocking", type=click.Choice(["blocking", "blocking-strict", "batch"]),
              help="blocking/blocking-strict: each event serialised as it happens; batch: at the flush. "
                   "Either way buffered and flushed a second after the first unflushed event.")
@click.option("--audit-webhook-config-file", default=None, help="Not supported (refused).")
@click.option("--kubelet-client-certificate", default=None, help="Client certificate for connecting to kubelets.")
@click.option("--kubelet-client-key", default=None, help="Client key for connecting to kubelets.")
@click.option("--kubelet-certificate-authority", default=None, help="CA that signed the kubelets' serving certificates.")
@click.option("--metric-resolution", default="15s", callback=lambda _c, _p, v: _metric_resolution(v),
              help="How often the kubelets are scraped for metrics.k8s.io (kubectl top), e.g. 15s (at least 1s).")
@click.option("--proxy-client-cert-file", default=None,
              help="Client certificate the aggregator presents to extension apiservers (APIServices with a service).")
@click.option("--proxy-client-key-file", default=None, help="Its key.")
@click.option("--requestheader-client-ca-file", default=None,
              help="CA of --proxy-client-cert-file, published to extension apiservers in "
                   "kube-system/extension-apiserver-authentication.")
@click.option("--requestheader-allowed-names", default="", callback=_csv,
              help="Common names extension apiservers accept on the request-header client certificate (comma-separated).")
@click.option("--requestheader-username-headers", default="X-Remote-User", callback=_csv,
              help="Headers carrying the user name to extension apiservers.")
@click.option("--requestheader-group-headers", default="X-Remote-Group", callback=_csv,
              help="Headers carrying the groups.")
@click.option("--requestheader-extra-headers-prefix", default="X-Remote-Extra-", callback=_csv,
              help="Header prefixes carrying the extra attributes.")
@click.option("--requestheader-uid-headers", default="X-Remote-Uid", callback=_csv, help="Headers carrying the UID.")
@click.option("--max-requests-inflight", default=400, type=click.IntRange(min=0),
              help="Requests in flight at most: with API Priority and Fairness, this plus "
                   "--max-mutating-requests-inflight is shared among the priority levels; without it, the limit "
                   "of read-only requests (0: none).")
@click.option("--max-mutating-requests-inflight", default=200, type=click.IntRange(min=0),
              help="Mutating requests in flight at most (see --max-requests-inflight; 0: none).")
@click.option("--enable-priority-and-fairness", type=click.BOOL, default=True, is_flag=False, flag_value=True,
              help="Limit and queue requests by API Priority and Fairness (FlowSchemas, PriorityLevelConfigurations); "
                   "false: by the max-in-flight limits alone.")
@click.option("--log-level", default="info", type=click.Choice(["debug", "info", "warning", "error"]))
def main(log_level: str, audit_log_format: str, audit_webhook_config_file: str | None, **kw: Any) -> None:
    """Serve the Kubernetes API (HTTPS only) backed by etcd."""
    setup_logging("apiserver", log_level)
    if audit_log_format != "json":
        raise click.BadParameter(f"{audit_log_format!r}: only json is supported (the legacy format is not)",
                                 param_hint="--audit-log-format")
    if audit_webhook_config_file:
        raise click.BadParameter("the audit webhook backend is not supported; use --audit-log-path",
                                 param_hint="--audit-webhook-config-file")
    opts = Options(**kw)
    if opts.enable_priority_and_fairness and opts.max_requests_inflight + opts.max_mutating_requests_inflight <= 0:
        raise click.UsageError("--max-requests-inflight + --max-mutating-requests-inflight must be positive when "
                               "priority-and-fairness is enabled")
    try:
        api = APIServer(opts)
    except PolicyError as e:
        raise click.ClickException(f"--audit-policy-file: {e}") from None
    except (AdmissionConfigError, PodSecurityConfigError) as e:
        raise click.ClickException(f"--admission-control-config-file: {e}") from None
    app = create_asgi(opts, api)
    config = uvicorn.Config(
        app,
        host=opts.bind_address,
        port=opts.secure_port,
        http=CertAwareProtocol,
        ws=CertAwareWebSocketProtocol,
        loop="uvloop",
        lifespan="on",
        log_level="warning",
        access_log=False,
        proxy_headers=False,  # we are no proxy's backend; this middleware would run per request
        timeout_keep_alive=120,
        # open watches would otherwise hold shutdown; clients resume them elsewhere
        timeout_graceful_shutdown=2,
        ssl_certfile=opts.tls_cert_file,
        ssl_keyfile=opts.tls_private_key_file,
        ssl_context_factory=lambda _cfg, _default: ssl_context(opts),
    )
    Server(config, api).run()


if __name__ == "__main__":
    main()
