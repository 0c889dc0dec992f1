"""Shared fixtures: a real etcd + apiserver, started the way `minictl cluster up` starts them."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from certs import ensure_pki, write_kubeconfig
from minictl.components import ClusterConfig, apiserver_command, component_env, etcd_command, free_port

ROOT = Path(__file__).resolve().parent.parent
KUBECTL = str(ROOT / ".venv" / "bin" / "kubectl") if (ROOT / ".venv" / "bin" / "kubectl").exists() else "kubectl"


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.05, what: str = "condition"):
    """Poll `predicate` until it returns something truthy; fail the test after `timeout`."""
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as e:  # keep polling; report the last error
            last_exc = e
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}" + (f" (last error: {last_exc!r})" if last_exc else ""))


async def until(cond, timeout: float = 10.0, what: str = "condition", interval: float = 0.005) -> None:
    """`wait_for` for asyncio tests: poll `cond` without blocking the loop."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(interval)


def read_audit_events(path: Path) -> list[dict]:
    """The audit.k8s.io/v1 Events an apiserver's audit log holds so far (none if there is no log)."""
    import json

    events = []
    for line in path.read_text(errors="replace").splitlines() if path.exists() else ():
        try:
            events.append(json.loads(line))
        except ValueError:  # a line cut short by a crash of the apiserver
            continue
    return events


_ANY = object()


def audited(events: list[dict], *, verb: str | None = None, resource: str | None = None,
            namespace: str | None = None, subresource: object = _ANY, code: int | None = None,
            stage: str | None = "ResponseComplete") -> list[dict]:
    """The events of requests matching what is given (objectRef's resource, namespace and
    subresource — None: none —, the responseStatus code), by default at their ResponseComplete stage."""
    out = []
    for e in events:
        ref = e.get("objectRef") or {}
        if ((stage is not None and e.get("stage") != stage) or (verb is not None and e.get("verb") != verb)
                or (resource is not None and ref.get("resource") != resource)
                or (namespace is not None and ref.get("namespace") != namespace)
                or (subresource is not _ANY and ref.get("subresource") != subresource)
                or (code is not None and (e.get("responseStatus") or {}).get("code") != code)):
            continue
        out.append(e)
    return out


class ControlPlane:
    """etcd + apiserver as real processes in a private data dir, stopped by pid."""

    def __init__(self, data_dir: Path, extra_apiserver_args: list[str] | None = None) -> None:
        self.cfg = ClusterConfig(
            str(data_dir),
            apiserver_port=free_port(),
            etcd_client_port=free_port(),
            etcd_peer_port=free_port(),
            node_name="testnode",
            extra_apiserver_args=extra_apiserver_args or [],
        )
        self.cfg.save()
        (self.cfg.dir / "logs").mkdir(parents=True, exist_ok=True)
        self.pki = ensure_pki(self.cfg.dir / "pki", node_names=["testnode"])
        cert, key = self.pki.client("admin")
        self.kubeconfig = write_kubeconfig(
            self.cfg.admin_kubeconfig, server=self.cfg.server_url, ca_cert=self.pki.ca_cert,
            user="kubernetes-admin", client_cert=cert, client_key=key,
        )
        self.procs: dict[str, subprocess.Popen] = {}

    @property
    def url(self) -> str:
        return self.cfg.server_url

    def _start(self, name: str, cmd: list[str]) -> subprocess.Popen:
        log = open(self.cfg.log(name), "ab")
        p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=component_env(), start_new_session=True)
        p._log = log  # type: ignore[attr-defined]
        self.procs[name] = p
        return p

    def start_etcd(self) -> None:
        self._start("etcd", etcd_command(self.cfg))

    #: New Nodes start tainted not-ready (the TaintNodesByCondition admission plugin): off by default
    #: here, as in upstream's integration framework, since most tests create Nodes by hand and run
    #: no node lifecycle controller to lift the taint; the clusters minictl starts have it on.
    taint_new_nodes = False

    def start_apiserver(self) -> None:
        cmd = apiserver_command(self.cfg)
        if not self.taint_new_nodes:
            cmd += ["--disable-admission-plugins", "TaintNodesByCondition"]
        self._start("apiserver", cmd)

    def start_controller_manager(
        self, controllers: str = "serviceaccount-controller,root-ca-certificate-publisher-controller",
        extra: list[str] | None = None,
    ) -> None:
        """The controller-manager as its own identity (each controller as its ServiceAccount).

        By default only what every namespace needs before pods can be created in it — the
        `default` ServiceAccount and `kube-root-ca.crt` — which the apiserver does not do itself.
        """
        import sys

        from certs import write_cluster_kubeconfigs

        kubeconfigs = write_cluster_kubeconfigs(self.pki, self.cfg.dir / "kubeconfigs", self.url)
        self._start("controller-manager", [
            sys.executable, "-m", "controller_manager", "--kubeconfig", str(kubeconfigs["controller-manager"]),
            "--use-service-account-credentials", "--leader-elect=false", "--secure-port", "0",
            "--controllers", controllers, "--root-ca-file", str(self.pki.ca_cert), *(extra or []),
        ])

    def wait_namespace_ready(self, namespace: str, timeout: float = 20) -> None:
        """Wait until pods can be created in `namespace` (its default ServiceAccount exists)."""
        with self.client() as c:
            wait_for(lambda: c.get(f"/api/v1/namespaces/{namespace}/serviceaccounts/default").status_code == 200,
                     timeout, 0.05, f"the default ServiceAccount of namespace {namespace}")

    def start(self) -> ControlPlane:
        self.start_etcd()
        self.start_apiserver()
        self.wait_ready()
        self.start_controller_manager()
        self.wait_namespace_ready("default")
        return self

    def ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.pki.ca_cert))
        cert, key = self.pki.client("admin")
        ctx.load_cert_chain(str(cert), str(key))
        return ctx

    def client(self, **kw) -> httpx.Client:
        return httpx.Client(base_url=self.url, verify=self.ssl_context(), timeout=kw.pop("timeout", 15), **kw)

    def async_client(self, **kw) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, verify=self.ssl_context(), timeout=kw.pop("timeout", 15), **kw)

    def wait_ready(self, timeout: float = 20) -> None:
        ctx = ssl.create_default_context(cafile=str(self.pki.ca_cert))

        def ready() -> bool:
            for name, p in self.procs.items():
                if p.poll() is not None:
                    raise RuntimeError(f"{name} exited with {p.returncode}; log: {self.cfg.log(name)}")
            r = httpx.get(f"{self.url}/readyz", verify=ctx, timeout=2)
            return r.status_code == 200

        wait_for(ready, timeout, 0.1, "apiserver /readyz")

    def audit_records(self) -> list[dict]:
        """Every audit event (audit.k8s.io/v1 Event) so far. The apiserver flushes its audit log on a
        timer, in order: once a marked request of ours shows in the file, every request made before
        it has too — counts taken from this list are complete, not a snapshot of a half-flushed buffer."""
        marker = f"audit-marker-{os.urandom(4).hex()}"
        path = self.cfg.log("audit")
        with self.client() as c:
            c.get("/version", headers={"User-Agent": marker}).raise_for_status()
        wait_for(lambda: path.exists() and marker in path.read_text(errors="replace"), 10, 0.1,
                 "the audit log to be flushed")
        return read_audit_events(path)

    def stop(self, name: str, sig: int = signal.SIGTERM, timeout: float = 10) -> None:
        p = self.procs.pop(name, None)
        if p is None:
            return
        if p.poll() is None:
            p.send_signal(sig)
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        p._log.close()  # type: ignore[attr-defined]

    def stop_all(self) -> None:
        for name in ("controller-manager", "apiserver", "etcd", *list(self.procs)):
            self.stop(name)

    def etcdctl(self, *args: str) -> str:
        """Run etcdctl against this cluster's etcd (as the apiserver's etcd client)."""
        from minictl.components import etcd_binary

        pki = self.pki
        r = subprocess.run(
            [str(Path(etcd_binary()).with_name("etcdctl")), "--endpoints", self.cfg.etcd_url,
             "--cacert", str(pki.ca_cert), "--cert", str(pki.apiserver_etcd_client_cert),
             "--key", str(pki.apiserver_etcd_client_key), *args],
            capture_output=True, text=True, timeout=30, env={**os.environ, "ETCDCTL_API": "3"},
        )
        if r.returncode != 0:
            raise AssertionError(f"etcdctl {' '.join(args)} failed: {r.stderr}")
        return r.stdout

    def compact(self) -> int:
        """Compact etcd up to its current revision; returns that revision."""
        import json

        rev = json.loads(self.etcdctl("get", "/registry/", "--prefix", "--keys-only", "--limit=1", "-w", "json"))["header"]["revision"]
        self.etcdctl("compact", str(rev))
        return rev

    def kubectl(self, *args: str, input: str | None = None, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess:
        r = subprocess.run(
            [KUBECTL, "--kubeconfig", str(self.kubeconfig), *args],
            input=input, capture_output=True, text=True, timeout=timeout,
        )
        if check and r.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
        return r


@contextlib.contextmanager
def private_control_plane(prefix: str, *, controller_manager: bool = True,
                          anonymous_auth: bool = False, taint_new_nodes: bool = False,
                          extra_apiserver_args: list[str] | None = None) -> Iterator[ControlPlane]:
    """etcd + apiserver (+ the ServiceAccount/root-CA controller-manager unless the caller runs
    its own) in a new temp dir; stopped by pid and the dir removed afterwards (kept with
    MINIK8S_KEEP_TEST_DATA=1)."""
    d = Path(tempfile.mkdtemp(prefix=prefix))
    cp = ControlPlane(d, extra_apiserver_args)
    cp.cfg.anonymous_auth = anonymous_auth
    cp.taint_new_nodes = taint_new_nodes
    try:
        if controller_manager:
            cp.start()
        else:
            cp.start_etcd()
            cp.start_apiserver()
            cp.wait_ready()
        yield cp
    finally:
        cp.stop_all()
        if os.environ.get("MINIK8S_KEEP_TEST_DATA"):
            print(f"test data kept in {d}")
        else:
            shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def control_plane() -> Iterator[ControlPlane]:
    with private_control_plane("mk8s-test-") as cp:
        yield cp


@pytest.fixture
def api(control_plane: ControlPlane) -> Iterator[httpx.Client]:
    with control_plane.client() as c:
        yield c


@pytest.fixture
def namespace(api: httpx.Client) -> Iterator[str]:
    """A fresh namespace per test (deleted afterwards; it stays Terminating without a namespace controller)."""
    name = f"t-{os.urandom(4).hex()}"
    r = api.post("/api/v1/namespaces", json={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    assert r.status_code == 201, r.text
    wait_for(lambda: api.get(f"/api/v1/namespaces/{name}/serviceaccounts/default").status_code == 200,
             20, 0.05, f"the default ServiceAccount of namespace {name}")
    yield name
    with contextlib.suppress(Exception):
        api.delete(f"/api/v1/namespaces/{name}")
