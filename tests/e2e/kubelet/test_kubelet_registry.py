"""Pulling from a registry with credentials from imagePullSecrets: the Debian docker-registry on
127.0.0.1:5000 (the http mirror in our containerd config), with htpasswd authentication."""

from __future__ import annotations

import base64
import json
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import wait_for
from tests.e2e.kubelet.conftest import container_status, create_pod, pod_manifest, running, wait_pod

pytestmark = pytest.mark.e2e

REGISTRY = "127.0.0.1:5000"
USER, PASSWORD = "puller", "s3cret-pw"


def _port_busy(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def registry(containerd_node) -> Iterator[str]:
    for tool in ("docker-registry", "skopeo", "htpasswd"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not installed (apt-get install docker-registry skopeo apache2-utils)")
    if _port_busy(5000):
        pytest.skip("127.0.0.1:5000 is in use (another registry runs here)")
    d = Path(tempfile.mkdtemp(prefix="mk8s-registry-"))
    htpasswd = subprocess.run(["htpasswd", "-Bbn", USER, PASSWORD], capture_output=True, text=True, check=True).stdout
    (d / "htpasswd").write_text(htpasswd)
    (d / "config.yml").write_text(json.dumps({
        "version": 0.1,
        "storage": {"filesystem": {"rootdirectory": str(d / "data")}},
        "http": {"addr": REGISTRY},
        "auth": {"htpasswd": {"realm": "minik8s-test", "path": str(d / "htpasswd")}},
    }))
    log = open(d / "registry.log", "wb")
    proc = subprocess.Popen(["docker-registry", "serve", str(d / "config.yml")], stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        wait_for(lambda: _port_busy(5000), 20, 0.1, "the registry")
        archive = next((containerd_node.data_dir / "images").glob("busybox*.tar"))
        subprocess.run(["skopeo", "copy", "--dest-tls-verify=false", "--dest-creds", f"{USER}:{PASSWORD}",
                        f"docker-archive:{archive}", f"docker://{REGISTRY}/minik8s/busybox:private"],
                       check=True, capture_output=True, timeout=120)
        ref = f"{REGISTRY}/minik8s/busybox:private"
        yield ref
        # drop only the references the pull added (tag and digest): CRI's RemoveImage would remove
        # every reference of this image, which is shared with localhost/minik8s/busybox
        ctr = ["ctr", "--address", str(containerd_node.paths.socket), "--namespace", "k8s.io", "images"]
        names = subprocess.run([*ctr, "ls", "-q"], capture_output=True, text=True, timeout=30).stdout.split()
        ours = [n for n in names if n.startswith(f"{REGISTRY}/")]
        if ours:
            subprocess.run([*ctr, "rm", *ours], capture_output=True, timeout=30, check=False)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        shutil.rmtree(d, ignore_errors=True)


def _pull_secret(api, ns: str) -> None:
    auth = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    config = json.dumps({"auths": {REGISTRY: {"username": USER, "password": PASSWORD, "auth": auth}}})
    r = api.post(f"/api/v1/namespaces/{ns}/secrets", json={
        "metadata": {"name": "regcred"}, "type": "kubernetes.io/dockerconfigjson",
        "data": {".dockerconfigjson": base64.b64encode(config.encode()).decode()}})
    assert r.status_code == 201, r.text


def test_pull_with_and_without_the_pull_secret(api, ns, kubelet, registry):
    _pull_secret(api, ns)
    create_pod(api, ns, pod_manifest("private", [{"name": "main", "image": registry, "imagePullPolicy": "Always",
                                                  "command": ["sleep", "3600"]}],
                                     imagePullSecrets=[{"name": "regcred"}]))
    pod = wait_pod(api, ns, "private", running, 90)
    assert container_status(pod, "main")["image"] == registry
    create_pod(api, ns, pod_manifest("anonymous", [{"name": "main", "image": registry, "imagePullPolicy": "Always",
                                                    "command": ["sleep", "3600"]}]))
    pod = wait_pod(api, ns, "anonymous", lambda p: (container_status(p, "main").get("state", {}).get("waiting") or {})
                   .get("reason") in ("ErrImagePull", "ImagePullBackOff"), 60)
    message = container_status(pod, "main")["state"]["waiting"]["message"]
    assert "401" in message or "unauthorized" in message.lower(), message
