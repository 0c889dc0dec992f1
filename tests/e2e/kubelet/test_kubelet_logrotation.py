"""Container log rotation on a real node: the kubelet (restarted here with a small
--container-log-max-size and the shortest monitor interval) rotates a chatty container's log through
containerd's ReopenContainerLog, compresses older files, keeps --container-log-max-files, and
`kubectl logs` (also -f across a rotation) and the kubelet's /containerLogs keep working."""

from __future__ import annotations

import contextlib
import gzip
import itertools
import os
import re
import select
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from kubelet import naming
from tests.conftest import KUBECTL, wait_for
from tests.e2e.kubelet.conftest import KubeletProcess, create_pod, get_pod, pod_manifest, running, wait_pod

pytestmark = pytest.mark.e2e

MAX_SIZE = 4096
MAX_FILES = 3
ROTATION_ARGS = ["--container-log-max-size", "4Ki", "--container-log-max-files", str(MAX_FILES),
                 "--container-log-monitor-interval", "3s"]
# ~100 numbered lines of ~130 bytes (with the CRI prefix) a second: past 4 KiB at every check
CHATTY = ('i=0; while true; do echo "n=$i padding-padding-padding-padding-padding-padding-padding-padding-padding"; '
          'i=$((i+1)); sleep 0.01; done')
NUMBER = re.compile(rb"n=(\d+) padding")


@pytest.fixture(scope="module")
def rotating_kubelet(kubelet: KubeletProcess, kcluster) -> Iterator[KubeletProcess]:
    """The session's kubelet, restarted with log rotation at a few KiB; restarted as it was after."""
    try:
        with kcluster.client() as api:
            kubelet.restart(api, list(ROTATION_ARGS))
        yield kubelet
    finally:
        with kcluster.client() as api:
            kubelet.restart(api)


def _log_file(kubelet: KubeletProcess, pod: dict, container: str = "main") -> Path:
    meta = pod["metadata"]
    directory = naming.pod_log_dir_name(meta["namespace"], meta["name"], meta["uid"])
    return kubelet.root / "kubelet" / "pod-logs" / directory / naming.container_log_path(container, 0)


def _rotated(live: Path) -> list[str]:
    """The rotated files of `live`, oldest first (as the kubelet names them)."""
    return sorted(p.name for p in live.parent.glob(live.name + ".*"))


def _numbers(data: bytes) -> list[int]:
    return [int(m.group(1)) for m in NUMBER.finditer(data)]


def _consecutive(numbers: list[int]) -> bool:
    return bool(numbers) and numbers == list(range(numbers[0], numbers[0] + len(numbers)))


def _snapshot(live: Path) -> list[tuple[str, bytes]] | None:
    """Every log file of the container with its content, oldest first — None when a rotation
    happened while reading (read newest first, and the listing must not have changed)."""
    names = _rotated(live)
    out = []
    try:
        out.append((live.name, live.read_bytes()))
        for name in reversed(names):
            raw = (live.parent / name).read_bytes()
            out.append((name, gzip.decompress(raw) if name.endswith(".gz") else raw))
    except FileNotFoundError:
        return None
    if _rotated(live) != names:
        return None
    return out[::-1]


def _kubelet_client(kcluster) -> httpx.Client:
    ctx = ssl.create_default_context(cafile=str(kcluster.pki.ca_cert))
    cert, key = kcluster.pki.client("apiserver-kubelet-client")
    ctx.load_cert_chain(str(cert), str(key))
    return httpx.Client(verify=ctx, timeout=15, trust_env=False)


def _chatty_pod(api, ns: str, name: str) -> dict:
    create_pod(api, ns, pod_manifest(name, [{"name": "main", "command": ["sh", "-c", CHATTY]}]))
    return wait_pod(api, ns, name, running)


def test_a_growing_log_is_rotated_compressed_and_kept_to_max_files(api, rotating_kubelet, ns, kcluster):
    kubelet = rotating_kubelet
    pod = _chatty_pod(api, ns, "chatty")
    live = _log_file(kubelet, pod)
    wait_for(live.exists, 15, 0.1, f"the log file {live}")
    most = 0

    def rotated_and_compressed() -> list[tuple[str, bytes]] | None:
        nonlocal most
        names = _rotated(live)
        most = max(most, len(names) + 1)
        if not any(n.endswith(".gz") for n in names):
            return None
        return _snapshot(live)

    snapshot = wait_for(rotated_and_compressed, 60, 0.1, "a rotated and a compressed log file")
    names = [name for name, _ in snapshot]
    # upstream's names: <log>.<YYYYmmdd-HHMMSS>, older ones gzip-compressed, the newest one not
    assert all(re.fullmatch(r"0\.log\.\d{8}-\d{6}(\.gz)?", n) for n in names[:-1]), names
    assert names[-1] == "0.log" and not names[-2].endswith(".gz"), names
    assert all(n.endswith(".gz") for n in names[:-2]), names
    assert len(names) <= MAX_FILES and most <= MAX_FILES, (names, most)
    # nothing lost or doubled at the rotations: the files hold consecutive lines
    for name, data in snapshot[:-1]:
        assert len(data) >= MAX_SIZE, (name, len(data))
    numbers = [n for _, data in snapshot for n in _numbers(data)]
    assert _consecutive(numbers), numbers

    # the runtime writes on into the new live file
    last = numbers[-1]
    wait_for(lambda: (_numbers(live.read_bytes()) or [-1])[-1] > last + 5, 15, 0.1, "more output in the live file")
    # a few more rounds: the count stays within max files
    rounds = {names[-2]}
    wait_for(lambda: rounds.update(n for n in _rotated(live) if not n.endswith(".gz")) or len(rounds) >= 3,
             30, 0.1, "two more rotations")
    assert len(_rotated(live)) + 1 <= MAX_FILES
    with httpx.Client(trust_env=False, timeout=10) as plain:
        metrics = plain.get(f"http://127.0.0.1:{kubelet.healthz_port}/metrics").text
    m = re.search(r"^kubelet_container_log_rotations_total (\S+)$", metrics, re.M)
    assert m and float(m.group(1)) >= 3, metrics[-2000:]

    # kubectl logs and the kubelet's /containerLogs read the live file: the latest lines (retried: just
    # after a rotation the new live file may hold fewer lines than asked for)
    latest = _numbers(live.read_bytes())[-1]

    def kubectl_tail() -> list[int] | None:
        tail = _numbers(kcluster.kubectl("logs", "-n", ns, "chatty", "--tail", "5").stdout.encode())
        return tail if len(tail) == 5 else None

    tail = wait_for(kubectl_tail, 15, 0.2, "5 lines from kubectl logs --tail 5")
    assert _consecutive(tail) and tail[-1] >= latest, (tail, latest)
    whole = wait_for(lambda: _numbers(kcluster.kubectl("logs", "-n", ns, "chatty").stdout.encode()), 15, 0.2,
                     "kubectl logs")
    assert _consecutive(whole) and whole[-1] >= latest and whole[0] > 0, (whole[:3], len(whole))  # live file only
    with _kubelet_client(kcluster) as client:
        def served_tail() -> list[int] | None:
            r = client.get(f"https://127.0.0.1:{kubelet.port}/containerLogs/{ns}/chatty/main",
                           params={"tailLines": "3"})
            assert r.status_code == 200, r.text
            served = _numbers(r.content)
            return served if len(served) == 3 else None

        served = wait_for(served_tail, 15, 0.2, "3 lines from /containerLogs")
        assert _consecutive(served) and served[-1] >= latest, served

    # deleting the pod removes its logs, rotated ones included
    pod_dir = live.parent.parent
    assert api.delete(f"/api/v1/namespaces/{ns}/pods/chatty").status_code == 200
    wait_for(lambda: get_pod(api, ns, "chatty") is None, 60, 0.2, "the pod gone")
    wait_for(lambda: not pod_dir.exists(), 30, 0.2, f"{pod_dir} removed")
    assert "Traceback" not in kubelet.log_tail(2000)


def test_logs_follow_goes_on_across_rotations(api, rotating_kubelet, ns, kcluster):
    pod = _chatty_pod(api, ns, "followed")
    live = _log_file(rotating_kubelet, pod)
    wait_for(live.exists, 15, 0.1, f"the log file {live}")
    proc = subprocess.Popen([KUBECTL, "--kubeconfig", str(kcluster.kubeconfig), "logs", "-f", "--tail", "1",
                             "-n", ns, "followed"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    seen = bytearray()
    known: set[str] = set()

    def read_some() -> None:
        fd = proc.stdout.fileno()
        while select.select([fd], [], [], 0.05)[0]:
            chunk = os.read(fd, 65536)
            if not chunk:
                raise AssertionError(f"kubectl logs -f ended: {proc.stderr.read().decode(errors='replace')}")
            seen.extend(chunk)

    try:
        wait_for(lambda: read_some() or _numbers(bytes(seen)), 15, 0.05, "the first followed line")
        known.update(n.removesuffix(".gz") for n in _rotated(live))
        rotations_after: list[int] = []

        def followed_past_two_rotations() -> bool:
            read_some()
            for name in _rotated(live):
                name = name.removesuffix(".gz")
                if name not in known:  # a rotation since the follow began
                    known.add(name)
                    rotations_after.append(len(_numbers(bytes(seen))))
            # two rotations since the follow began, and lines read well after the second one
            return len(rotations_after) >= 2 and len(_numbers(bytes(seen))) > rotations_after[1] + 100

        try:
            wait_for(followed_past_two_rotations, 60, 0.05, "the follow to go on across two rotations")
        except AssertionError as e:
            got = _numbers(bytes(seen))
            raise AssertionError(f"{e}: {len(got)} lines followed, the last {got[-3:]}, rotations after "
                                 f"{rotations_after} of them; now {_rotated(live)}, live file up to "
                                 f"{_numbers(live.read_bytes())[-1:]}") from None
    finally:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(10)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    numbers = _numbers(bytes(seen))
    # everything the container wrote since the follow began, in order, nothing lost at the rotations
    assert _consecutive(numbers), [(a, b) for a, b in itertools.pairwise(numbers) if b - a != 1]
