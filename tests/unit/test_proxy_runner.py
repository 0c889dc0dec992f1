"""kube_proxy.bounded_runner and the proxier's sync pacing."""

import asyncio
import time

from kube_proxy.bounded_runner import BoundedFrequencyRunner
from kube_proxy.fake import ROUTE_TABLE_ETH0, FakeRunner, make_endpointslice, make_service
from kube_proxy.iptables import IptablesProxier
from tests.conftest import until


class Recorder:
    def __init__(self, fail_first: int = 0):
        self.times: list[float] = []
        self.fail_first = fail_first

    async def __call__(self):
        self.times.append(time.monotonic())
        if len(self.times) <= self.fail_first:
            raise RuntimeError("boom")


async def test_requests_are_coalesced():
    rec = Recorder()
    runner = BoundedFrequencyRunner(rec, min_interval=0.0, max_interval=60)
    for _ in range(5):
        runner.run()
    task = asyncio.create_task(runner.loop())
    await until(lambda: runner.completed == 1)
    await asyncio.sleep(0.05)  # give a wrongly queued second run the chance to show up
    runner.stop()
    await task
    assert len(rec.times) == 1


async def test_burst_then_min_interval():
    rec = Recorder()
    runner = BoundedFrequencyRunner(rec, min_interval=0.3, max_interval=60, burst_runs=2)
    task = asyncio.create_task(runner.loop())
    for _ in range(3):
        await runner.run_and_wait()
    runner.stop()
    await task
    assert len(rec.times) == 3
    assert rec.times[1] - rec.times[0] < 0.2  # the burst allows two runs back to back
    assert rec.times[2] - rec.times[0] >= 0.25  # the third waits for a token


async def test_periodic_runs_without_requests():
    rec = Recorder()
    runner = BoundedFrequencyRunner(rec, min_interval=0.0, max_interval=0.05)
    task = asyncio.create_task(runner.loop())
    await until(lambda: len(rec.times) >= 3)
    runner.stop()
    await task


async def test_failures_do_not_stop_the_loop_and_retry_after_runs_early():
    rec = Recorder(fail_first=1)
    runner = BoundedFrequencyRunner(rec, min_interval=0.0, max_interval=60)
    task = asyncio.create_task(runner.loop())
    await runner.run_and_wait()
    runner.retry_after(0.05)
    await until(lambda: runner.completed == 2)
    runner.stop()
    await task
    assert len(rec.times) == 2


async def test_run_and_wait_waits_for_a_run_started_after_the_call():
    started = asyncio.Event()
    release = asyncio.Event()
    runs = []

    async def slow():
        runs.append(len(runs))
        started.set()
        await release.wait()

    runner = BoundedFrequencyRunner(slow, min_interval=0.0, max_interval=60)
    task = asyncio.create_task(runner.loop())
    runner.run()
    await started.wait()
    waiter = asyncio.create_task(runner.run_and_wait())  # asked while run #1 is in progress
    release.set()
    await waiter
    assert runs == [0, 1]
    runner.stop()
    await task


async def test_proxier_loop_syncs_on_events_partially_and_sync_waits():
    runner = FakeRunner(ROUTE_TABLE_ETH0)
    proxier = IptablesProxier("node-a", [], runner=runner, min_sync_period=0.0, sync_period=3600)
    loop = asyncio.create_task(proxier.run())
    proxier.on_service_add(make_service("web", "10.96.0.10", [{"name": "http", "port": 80}]))
    proxier.on_services_synced()
    proxier.on_endpointslices_synced()
    await until(lambda: proxier.sync_count == 1)
    assert not proxier.last_sync.partial
    proxier.on_endpointslice_add(make_endpointslice("web", ["10.244.1.1"], [{"name": "http", "port": 8080}]))
    await until(lambda: proxier.sync_count == 2)
    assert proxier.last_sync.partial
    result = await proxier.sync()
    assert result.ok and proxier.sync_count == 3
    proxier.stop()
    await loop


async def test_flushed_rules_force_a_full_resync_on_the_next_periodic_run():
    runner = FakeRunner(ROUTE_TABLE_ETH0)
    proxier = IptablesProxier("node-a", [], runner=runner, min_sync_period=0.0, sync_period=0.05)
    proxier.set_state([make_service("web", "10.96.0.10", [{"name": "http", "port": 80}])], [])
    loop = asyncio.create_task(proxier.run())
    await until(lambda: proxier.sync_count >= 2)
    assert proxier.last_sync.partial  # periodic runs are partial while the rules are intact
    runner.apply_restore("*nat\n-X KUBE-PROXY-CANARY\nCOMMIT\n")  # someone flushes
    assert "KUBE-PROXY-CANARY" not in runner.chains("nat")
    count = proxier.sync_count
    await until(lambda: proxier.sync_count > count and not proxier.last_sync.partial)
    assert "KUBE-PROXY-CANARY" in runner.chains("nat")
    proxier.stop()
    await loop
