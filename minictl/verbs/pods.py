"""Verbs that reach into pods: `logs`, `exec`, `attach`, `port-forward`."""

from __future__ import annotations

import re
import socket
import sys
import threading
from typing import Any

import click

from apimachinery.errors import StatusError
from minictl.api import Api
from minictl.completion import complete_pod_names
from minictl.streams import (
    EXEC_PROTOCOLS,
    PORT_FORWARD_PROTOCOLS,
    ExecSession,
    PortForwardStream,
    exec_params,
    on_resize,
    open_stream,
    raw_terminal,
)
from minictl.verbs.common import Session, echo, fail, selector_params, session, verb

DEFAULT_CONTAINER_ANNOTATION = "kubectl.kubernetes.io/default-container"


def _label_selector_string(sel: dict[str, Any] | None) -> str:
    from minictl.describe import format_label_selector

    text = format_label_selector(sel)
    return "" if text == "<none>" else text


def _rank(pod: dict[str, Any]) -> tuple:
    """Prefer running, ready, most recently started pods (kubectl's ActivePods order, simplified)."""
    st = pod.get("status") or {}
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in st.get("conditions") or [])
    running = st.get("phase") == "Running"
    return (not running, not ready, -(_ts(pod)))


def _ts(pod: dict[str, Any]) -> float:
    from apimachinery.meta import parse_time

    ts = (pod.get("metadata") or {}).get("creationTimestamp")
    try:
        return parse_time(ts).timestamp() if ts else 0.0
    except ValueError:
        return 0.0


def resolve_pod(s: Session, target: str) -> dict[str, Any]:
    """A pod by name, or the best pod of a TYPE/NAME that selects pods (deploy/x, rs/x, svc/x, job/x...)."""
    api = s.api
    if "/" not in target:
        return api.get(f"/api/v1/namespaces/{s.namespace}/pods/{target}")
    type_name, _, name = target.partition("/")
    rtype = api.discovery.resolve(type_name)
    if rtype.kind == "Pod":
        return api.get(rtype.path(s.namespace, name))
    obj = api.get(rtype.path(s.namespace, name))
    spec = obj.get("spec") or {}
    if rtype.kind == "Service":
        selector = ",".join(f"{k}={v}" for k, v in sorted((spec.get("selector") or {}).items()))
    else:
        selector = _label_selector_string(spec.get("selector"))
    if not selector:
        fail(f"cannot attach to {rtype.kind_name}/{name}: it selects no pods")
    pods = api.list_all(f"/api/v1/namespaces/{s.namespace}/pods", {"labelSelector": selector}).get("items") or []
    pods = [p for p in pods if not (p.get("metadata") or {}).get("deletionTimestamp")]
    if not pods:
        fail(f"no pods found for {rtype.kind_name}/{name} (selector {selector})")
    return sorted(pods, key=_rank)[0]


def default_container(pod: dict[str, Any], container: str | None, quiet: bool = False) -> str:
    if container:
        return container
    names = [c.get("name", "") for c in (pod.get("spec") or {}).get("containers") or []]
    annotated = ((pod.get("metadata") or {}).get("annotations") or {}).get(DEFAULT_CONTAINER_ANNOTATION)
    if annotated in names:
        return annotated
    if len(names) > 1 and not quiet:
        echo(f'Defaulted container "{names[0]}" out of: {", ".join(names)}', err=True)
    return names[0] if names else ""


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(h|ms|m|s)")


def parse_duration(text: str) -> int:
    """Go's time.ParseDuration for whole seconds (5s, 2m, 1h30m)."""
    total = 0.0
    pos = 0
    for m in _DURATION.finditer(text):
        if m.start() != pos:
            break
        pos = m.end()
        n, unit = float(m.group(1)), m.group(2)
        total += n * {"h": 3600, "m": 60, "s": 1, "ms": 0.001}[unit]
    if pos != len(text) or not text:
        raise click.BadParameter(f'time: invalid duration "{text}"')
    return max(1, int(total))


# --- logs ------------------------------------------------------------------------------------------


def _stream_log(api: Api, pod: dict[str, Any], container: str, params: dict[str, Any], prefix: str) -> None:
    meta = pod.get("metadata") or {}
    path = f"/api/v1/namespaces/{meta.get('namespace')}/pods/{meta.get('name')}/log"
    with api.stream("GET", path, {**params, "container": container}, {"Accept": "*/*"}) as r:
        if not prefix:
            for chunk in r.iter_bytes():
                sys.stdout.buffer.write(chunk)
                sys.stdout.buffer.flush()
        else:
            for line in r.iter_lines():
                sys.stdout.write(f"{prefix} {line}\n")
                sys.stdout.flush()


@verb(name="logs")
@click.argument("target", shell_complete=complete_pod_names, required=False)
@click.argument("container_arg", required=False, metavar="[CONTAINER]")
@click.option("-c", "--container", help="The container (default: the only one, or the default-container annotation).")
@click.option("-f", "--follow", is_flag=True, help="Keep streaming new output.")
@click.option("-p", "--previous", is_flag=True, help="The previous (terminated) instance of the container.")
@click.option("--tail", type=int, default=-1, show_default=True, help="Lines from the end (-1: all; 10 with -l).")
@click.option("--since", help="Only newer than this duration, e.g. 5s, 2m, 3h.")
@click.option("--since-time", help="Only after this RFC3339 time.")
@click.option("--timestamps", is_flag=True, help="Prefix each line with its timestamp.")
@click.option("--limit-bytes", type=int, help="At most this many bytes.")
@click.option("--all-containers", is_flag=True, help="Every container of the pod(s).")
@click.option("-l", "--selector", help="The pods matching this label selector.")
@click.option("--prefix", is_flag=True, help="Prefix each line with [pod/<name>/<container>].")
def logs_cmd(target: str | None, container_arg: str | None, container: str | None, follow: bool, previous: bool,
             tail: int, since: str | None, since_time: str | None, timestamps: bool, limit_bytes: int | None,
             all_containers: bool, selector: str | None, prefix: bool) -> None:
    """Print the logs of a container in a pod (or of a pod chosen by TYPE/NAME).

    \b
    Examples:
      minictl logs web-1
      minictl logs -f web-1 -c sidecar
      minictl logs deploy/web --tail=20
      minictl logs web-1 --previous
      minictl logs -l app=web --all-containers --prefix
    """
    s = session()
    container = container or container_arg
    params: dict[str, Any] = {}
    if follow:
        params["follow"] = "true"
    if previous:
        params["previous"] = "true"
    if timestamps:
        params["timestamps"] = "true"
    if since:
        params["sinceSeconds"] = parse_duration(since)
    if since_time:
        params["sinceTime"] = since_time
    if limit_bytes:
        params["limitBytes"] = limit_bytes
    if selector:
        if target:
            fail("only one of a pod and a selector (-l) can be given")
        if tail < 0:
            tail = 10
        pods = s.api.list_all(f"/api/v1/namespaces/{s.namespace}/pods", selector_params(selector, None)).get("items") or []
        if not pods:
            echo(f"No resources found in {s.namespace} namespace.", err=True)
            return
        prefix = prefix or len(pods) > 1 or all_containers
    elif target:
        pods = [resolve_pod(s, target)]
    else:
        fail("expected POD or TYPE/NAME (or -l)")
    if tail >= 0:
        params["tailLines"] = tail
    work: list[tuple[dict, str]] = []
    for pod in pods:
        spec = pod.get("spec") or {}
        if all_containers:
            names = [c["name"] for c in (spec.get("initContainers") or []) + (spec.get("containers") or [])]
        else:
            names = [default_container(pod, container, quiet=bool(selector))]
        work += [(pod, n) for n in names]
    if follow and len(work) > 1:
        threads = []
        for pod, name in work:
            p = f"[pod/{pod['metadata']['name']}/{name}]" if prefix else ""
            t = threading.Thread(target=_stream_log, args=(s.api, pod, name, params, p), daemon=True)
            t.start()
            threads.append(t)
        for t in threads:
            t.join()
        return
    for pod, name in work:
        p = f"[pod/{pod['metadata']['name']}/{name}]" if prefix else ""
        _stream_log(s.api, pod, name, params, p)


# --- exec / attach --------------------------------------------------------------------------------


def _run_stream(s: Session, pod: dict[str, Any], subresource: str, params: list[tuple[str, str]],
                stdin: bool, tty: bool) -> int:
    meta = pod.get("metadata") or {}
    path = f"/api/v1/namespaces/{meta.get('namespace')}/pods/{meta.get('name')}/{subresource}"
    ws = open_stream(s.api, path, params, EXEC_PROTOCOLS)
    session_ = ExecSession(ws)
    fd = sys.stdin.fileno()
    try:
        if tty:
            undo = on_resize(session_, fd)
            try:
                with raw_terminal(fd):
                    session_.pump_stdin(sys.stdin.buffer)
                    result = session_.run(sys.stdout.buffer, sys.stderr.buffer)
            finally:
                undo()
        else:
            if stdin:
                session_.pump_stdin(sys.stdin.buffer)
            result = session_.run(sys.stdout.buffer, sys.stderr.buffer)
    finally:
        ws.close()
    return result.exit_code


def _check_tty(stdin: bool, tty: bool) -> bool:
    if tty and not sys.stdin.isatty():
        echo("Unable to use a TTY - input is not a terminal or the right kind of file", err=True)
        return False
    if tty and not stdin:
        echo("Unable to use a TTY if stdin is not requested (use -i)", err=True)
        return False
    return tty


@verb(name="exec")
@click.argument("target", shell_complete=complete_pod_names)
@click.argument("command", nargs=-1, required=True)
@click.option("-c", "--container", help="The container (default: the only one, or the default-container annotation).")
@click.option("-i", "--stdin", is_flag=True, help="Pass stdin to the command.")
@click.option("-t", "--tty", is_flag=True, help="Allocate a TTY (raw mode locally, window size forwarded).")
@click.option("-q", "--quiet", is_flag=True, help="Only print what the command prints.")
def exec_cmd(target: str, command: tuple[str, ...], container: str | None, stdin: bool, tty: bool, quiet: bool) -> None:
    """Run a command in a container.

    Flags go before the pod; the command follows `--`. The exit code is the command's.

    \b
    Examples:
      minictl exec web-1 -- ls /
      minictl exec -it web-1 -- sh
      echo hi | minictl exec -i web-1 -c app -- cat
      minictl exec deploy/web -- env
    """
    s = session()
    pod = resolve_pod(s, target)
    name = default_container(pod, container, quiet)
    tty = _check_tty(stdin, tty)
    code = _run_stream(s, pod, "exec", exec_params(list(command), name, stdin, tty), stdin, tty)
    if code:
        if not quiet:
            echo(f"command terminated with exit code {code}", err=True)
        sys.exit(code)


@verb(name="attach")
@click.argument("target", shell_complete=complete_pod_names)
@click.option("-c", "--container", help="The container.")
@click.option("-i", "--stdin", is_flag=True, help="Pass stdin to the container.")
@click.option("-t", "--tty", is_flag=True, help="The container has a TTY (raw mode locally).")
@click.option("-q", "--quiet", is_flag=True, help="Only print the container's output.")
def attach_cmd(target: str, container: str | None, stdin: bool, tty: bool, quiet: bool) -> None:
    """Attach to the main process of a running container.

    \b
    Example:
      minictl attach -it web-1
    """
    s = session()
    pod = resolve_pod(s, target)
    name = default_container(pod, container, quiet)
    tty = _check_tty(stdin, tty)
    if not quiet:
        echo("If you don't see a command prompt, try pressing enter.", err=True)
    params = [p for p in exec_params([], name, stdin, tty) if p[0] != "command"]
    sys.exit(_run_stream(s, pod, "attach", params, stdin, tty))


# --- port-forward ---------------------------------------------------------------------------------


def _parse_ports(specs: tuple[str, ...]) -> list[tuple[int, int]]:
    out = []
    for spec in specs:
        local, sep, remote = spec.partition(":")
        if not sep:
            local, remote = spec, spec
        try:
            lp = int(local) if local else 0
            rp = int(remote)
        except ValueError:
            fail(f'invalid port specification "{spec}"')
        if not (0 <= lp <= 65535 and 0 < rp <= 65535):
            fail(f'invalid port specification "{spec}"')
        out.append((lp, rp))
    return out


def _service_target_port(svc: dict[str, Any], port: int, pod: dict[str, Any]) -> int:
    for p in (svc.get("spec") or {}).get("ports") or []:
        if p.get("port") == port:
            target = p.get("targetPort", port)
            if isinstance(target, int):
                return target
            for c in (pod.get("spec") or {}).get("containers") or []:
                for cp in c.get("ports") or []:
                    if cp.get("name") == target:
                        return cp["containerPort"]
    return port


@verb(name="port-forward")
@click.argument("target", shell_complete=complete_pod_names)
@click.argument("ports", nargs=-1, required=True)
@click.option("--address", multiple=True, default=("localhost",), show_default=True,
              help="Local addresses to listen on (localhost means 127.0.0.1).")
def port_forward_cmd(target: str, ports: tuple[str, ...], address: tuple[str, ...]) -> None:
    """Forward local ports to a pod (or to a pod of a service/deployment...).

    PORT forwards the same port; LOCAL:REMOTE a local port to a remote one; :REMOTE picks a
    free local port. Runs until interrupted.

    \b
    Examples:
      minictl port-forward web-1 8080:80
      minictl port-forward svc/web :80
      minictl port-forward deploy/web 5000 6000
    """
    s = session()
    pod = resolve_pod(s, target)
    pairs = _parse_ports(ports)
    if target.partition("/")[0] in ("svc", "service", "services"):
        svc = s.api.get(f"/api/v1/namespaces/{s.namespace}/services/{target.partition('/')[2]}")
        pairs = [(lp, _service_target_port(svc, rp, pod)) for lp, rp in pairs]
    meta = pod.get("metadata") or {}
    path = f"/api/v1/namespaces/{meta.get('namespace')}/pods/{meta.get('name')}/portforward"
    listeners: list[tuple[socket.socket, int]] = []
    for addr in address:
        host = "127.0.0.1" if addr == "localhost" else addr
        for lp, rp in pairs:
            srv = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
            srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                srv.bind((host, lp))
            except OSError as e:
                fail(f"unable to listen on {host}:{lp}: {e.strerror}")
            srv.listen(16)
            echo(f"Forwarding from {host}:{srv.getsockname()[1]} -> {rp}")
            listeners.append((srv, rp))

    def serve(srv: socket.socket, remote: int) -> None:
        local = srv.getsockname()[1]
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            echo(f"Handling connection for {local}")

            def handle(c: socket.socket = conn) -> None:
                try:
                    ws = open_stream(s.api, path, [("ports", str(remote))], PORT_FORWARD_PROTOCOLS)
                except (StatusError, OSError, Exception) as e:  # report and keep serving
                    echo(f"E{local}: error creating forwarding stream for port {local} -> {remote}: {e}", err=True)
                    c.close()
                    return
                PortForwardStream(ws, remote).pump(c)

            threading.Thread(target=handle, daemon=True).start()

    threads = [threading.Thread(target=serve, args=(srv, rp), daemon=True) for srv, rp in listeners]
    for t in threads:
        t.start()
    try:
        for t in threads:
            t.join()
    finally:
        for srv, _ in listeners:
            srv.close()
