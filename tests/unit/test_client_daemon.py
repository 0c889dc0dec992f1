"""The shared daemon plumbing: health and metrics endpoints."""

from __future__ import annotations

import aiohttp

from client.daemon import HealthServer, new_registry
from minictl.components import free_port


async def test_health_endpoints_report_checks() -> None:
    registry = new_registry()
    registry.counter("demo_total", "A demo counter.").inc()
    srv = HealthServer(free_port(), registry)
    state = {"synced": False}
    srv.add_liveness("ping", lambda: True)
    srv.add_readiness("informers-synced", lambda: state["synced"])
    await srv.start()
    base = f"http://127.0.0.1:{srv.port}"
    try:
        async with aiohttp.ClientSession() as s:
            async with s.get(f"{base}/healthz") as r:
                assert r.status == 200 and await r.text() == "ok"
            async with s.get(f"{base}/readyz") as r:  # upstream's healthz handler: a 500 listing the checks
                assert r.status == 500
                assert await r.text() == ("[+]ping ok\n[-]informers-synced failed: reason withheld\n"
                                          "readyz check failed\n")
            async with s.get(f"{base}/readyz/informers-synced") as r:
                assert r.status == 500 and await r.text() == "internal server error: informers-synced check failed\n"
            async with s.get(f"{base}/readyz?exclude=informers-synced") as r:  # left out: ok
                assert r.status == 200 and await r.text() == "ok"
            async with s.get(f"{base}/readyz?exclude=informers-synced&verbose") as r:
                assert r.status == 200 and "[+]informers-synced excluded: ok" in await r.text()
            state["synced"] = True
            async with s.get(f"{base}/readyz?verbose") as r:
                assert r.status == 200 and await r.text() == "[+]ping ok\n[+]informers-synced ok\nreadyz check passed\n"
            async with s.get(f"{base}/livez/ping") as r:
                assert r.status == 200 and await r.text() == "ok"
            async with s.get(f"{base}/livez/nothing") as r:
                assert r.status == 404
            async with s.get(f"{base}/metrics") as r:
                text = await r.text()
                assert "demo_total 1" in text and "process_resident_memory_bytes" in text
    finally:
        await srv.stop()


def test_a_broken_kubeconfig_ends_the_daemon_with_one_line(capfd) -> None:
    import pytest

    from certs.kubeconfig import KubeconfigError
    from client.daemon import run_daemon

    async def main(stop) -> None:
        raise KubeconfigError("kubeconfig /nowhere cannot be read")

    with pytest.raises(SystemExit) as e:
        run_daemon("testd", main)
    assert e.value.code == 1
    err = capfd.readouterr().err
    assert "testd: kubeconfig /nowhere cannot be read" in err and "Traceback" not in err
