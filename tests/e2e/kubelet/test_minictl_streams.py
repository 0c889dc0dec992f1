"""minictl logs / exec (incl. -it on a real pseudo-terminal) / port-forward / top against a real node
(the kubelet e2e fixtures: root, containerd, CNI)."""

from __future__ import annotations

import contextlib
import os
import pty
import signal
import socket
import subprocess
import sys
from typing import Any

import pytest

from tests.conftest import ROOT, ControlPlane, wait_for
from tests.e2e.kubelet.conftest import create_pod, pod_manifest, read_until, running, wait_pod

pytestmark = pytest.mark.e2e


def _minictl(cp: ControlPlane, *args: str, input: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "minictl", "--kubeconfig", str(cp.kubeconfig), *args], input=input,
                          capture_output=True, text=True, timeout=timeout, cwd=ROOT)


@pytest.fixture
def node_ns(kcluster: ControlPlane, kubelet: Any):
    name = f"mn-{os.urandom(3).hex()}"
    with kcluster.client(timeout=30) as api:
        assert api.post("/api/v1/namespaces", json={"apiVersion": "v1", "kind": "Namespace",
                                                    "metadata": {"name": name}}).status_code == 201
        api.post(f"/api/v1/namespaces/{name}/serviceaccounts",
                 json={"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}})
        yield api, name
        with contextlib.suppress(Exception):
            api.delete(f"/api/v1/namespaces/{name}/pods")
            wait_for(lambda: not api.get(f"/api/v1/namespaces/{name}/pods").json()["items"], 60, 0.2, "pods gone")
        api.delete(f"/api/v1/namespaces/{name}")


def test_logs_and_exec(kcluster: ControlPlane, node_ns) -> None:
    api, ns = node_ns
    script = "for i in 1 2 3; do echo out-$i; done; sleep 3600"
    create_pod(api, ns, pod_manifest("talker", [
        {"name": "main", "command": ["sh", "-c", script]},
        {"name": "other", "command": ["sh", "-c", "echo from-other; sleep 3600"]},
    ]))
    wait_pod(api, ns, "talker", running)
    wait_for(lambda: "out-3" in _minictl(kcluster, "-n", ns, "logs", "talker", "-c", "main").stdout, 10, 0.2, "logs")
    assert _minictl(kcluster, "-n", ns, "logs", "talker", "-c", "main", "--tail=1").stdout == "out-3\n"
    defaulted = _minictl(kcluster, "-n", ns, "logs", "talker")
    assert defaulted.stdout.startswith("out-1") and 'Defaulted container "main" out of: main, other' in defaulted.stderr
    prefixed = _minictl(kcluster, "-n", ns, "logs", "talker", "--all-containers", "--prefix").stdout
    assert "[pod/talker/other] from-other" in prefixed

    assert _minictl(kcluster, "-n", ns, "exec", "talker", "-c", "main", "--", "echo", "hi").stdout == "hi\n"
    piped = _minictl(kcluster, "-n", ns, "exec", "-i", "talker", "-c", "main", "--", "sh", "-c", "cat | wc -c",
                     input="x" * 100000)
    assert piped.stdout.strip() == "100000", (piped.returncode, piped.stderr)
    failed = _minictl(kcluster, "-n", ns, "exec", "talker", "-c", "main", "--", "sh", "-c", "exit 7")
    assert failed.returncode == 7 and "command terminated with exit code 7" in failed.stderr

    # logs -f follows new output
    proc = subprocess.Popen([sys.executable, "-m", "minictl", "--kubeconfig", str(kcluster.kubeconfig), "-n", ns, "logs",
                             "-f", "talker", "-c", "other"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=ROOT)
    try:
        assert proc.stdout.readline() == "from-other\n"
        _minictl(kcluster, "-n", ns, "exec", "talker", "-c", "other", "--", "sh", "-c", "echo later > /proc/1/fd/1")
        assert proc.stdout.readline() == "later\n"
    finally:
        proc.terminate()
        proc.wait(10)


def test_exec_it_on_a_real_terminal(kcluster: ControlPlane, node_ns) -> None:
    api, ns = node_ns
    create_pod(api, ns, pod_manifest("shell", [{"name": "sh", "command": ["sleep", "3600"]}]))
    wait_pod(api, ns, "shell", running)
    # "armed" once the trap is set: the ^C must not come before it (it would end the shell); then
    # each line is answered with the terminal's size, until "done"
    script = ('tty; read line; stty size; trap "echo got-int" INT; echo armed; '
              'while :; do read line; stty size; [ "$line" = done ] && exit 3; done')
    pid, fd = pty.fork()
    if pid == 0:  # the child: minictl on the pty's slave side, as in a user's terminal
        os.chdir(ROOT)
        # SIGUSR1 dumps every thread's stack (to the terminal): what a hang looked like, if one comes
        boot = ("import faulthandler, runpy, signal, sys; faulthandler.register(signal.SIGUSR1, all_threads=True); "
                "sys.argv = ['minictl'] + sys.argv[1:]; runpy.run_module('minictl', run_name='__main__')")
        os.execv(sys.executable, [sys.executable, "-c", boot, "--kubeconfig", str(kcluster.kubeconfig), "-n", ns,
                                  "exec", "-it", "shell", "--", "sh", "-c", script])
    try:
        import fcntl
        import struct
        import termios

        def stacks_on_failure(marker: bytes) -> bytes:
            try:
                return read_until(fd, marker)
            except AssertionError as e:
                # what minictl's threads were doing: py-spy where installed, else faulthandler's dump
                spy = ROOT / ".venv" / "bin" / "py-spy"
                if spy.exists():
                    dump = subprocess.run([str(spy), "dump", "--pid", str(pid)], capture_output=True, text=True,
                                          timeout=30).stdout
                else:
                    os.kill(pid, signal.SIGUSR1)
                    raw = b""
                    with contextlib.suppress(AssertionError):
                        raw = read_until(fd, b"\x00", timeout=3)  # all there is within 3 s
                    dump = raw.decode(errors="replace")
                raise AssertionError(f"{e}\nminictl's threads:\n{dump}") from None

        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 111, 0, 0))
        read_until(fd, b"/dev/pts/", 30)
        os.write(fd, b"go\r")
        assert b"33 111" in stacks_on_failure(b"armed")  # the local window size reached the remote terminal
        # a new size: SIGWINCH → the resize channel
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 20, 70, 0, 0))
        os.kill(pid, signal.SIGWINCH)
        # raw mode locally: ^C is a byte for the remote terminal, whose shell traps it (minictl lives on)
        os.write(fd, b"\x03")
        stacks_on_failure(b"got-int")
        # the resize travels apart from stdin (its own channel, then the runtime's): ask until it shows
        for _ in range(30):
            os.write(fd, b"x\r")
            with contextlib.suppress(AssertionError):
                read_until(fd, b"20 70", timeout=1)
                break
        else:
            raise AssertionError("the new size never reached the remote terminal")
        os.write(fd, b"done\r")
        stacks_on_failure(b"command terminated with exit code 3")  # the remote side ends
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 3  # the remote exit code
        pid = 0
    finally:
        if pid:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(fd)


def test_port_forward(kcluster: ControlPlane, node_ns) -> None:
    api, ns = node_ns
    create_pod(api, ns, pod_manifest("web", [
        {"name": "httpd", "command": ["sh", "-c", "echo forwarded > /tmp/index.html; exec httpd -f -p 8080 -h /tmp"]},
    ]))
    wait_pod(api, ns, "web", running)
    proc = subprocess.Popen([sys.executable, "-m", "minictl", "--kubeconfig", str(kcluster.kubeconfig), "-n", ns,
                             "port-forward", "web", ":8080"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=ROOT)
    try:
        line = proc.stdout.readline()
        assert line.startswith("Forwarding from 127.0.0.1:") and line.strip().endswith("-> 8080"), line
        port = int(line.split(":")[1].split()[0])
        for _ in range(2):  # two connections, one websocket each
            with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                s.sendall(b"GET /index.html HTTP/1.0\r\n\r\n")
                data = b""
                while chunk := s.recv(4096):
                    data += chunk
            assert data.startswith(b"HTTP/1.") and data.endswith(b"forwarded\n"), data
    finally:
        proc.terminate()
        proc.wait(10)


def test_top_reads_the_metrics_api(kcluster: ControlPlane, node_ns) -> None:
    api, ns = node_ns
    create_pod(api, ns, pod_manifest("busy", [{"name": "c", "command": ["sleep", "3600"]}]))
    wait_pod(api, ns, "busy", running)

    def top_pod() -> str | None:
        r = _minictl(kcluster, "-n", ns, "top", "pod")
        return r.stdout if r.returncode == 0 and "busy" in r.stdout else None

    out = wait_for(top_pod, 60, 1, "pod metrics")
    assert out.splitlines()[0].split() == ["NAME", "CPU(cores)", "MEMORY(bytes)"]
    name, cpu, mem = out.splitlines()[1].split()
    assert name == "busy" and cpu.endswith("m") and mem.endswith("Mi")
    nodes = _minictl(kcluster, "top", "node")
    assert nodes.returncode == 0, nodes.stderr
    assert nodes.stdout.splitlines()[0].split() == ["NAME", "CPU(cores)", "CPU(%)", "MEMORY(bytes)", "MEMORY(%)"]
    assert nodes.stdout.splitlines()[1].split()[0] == "testnode"
