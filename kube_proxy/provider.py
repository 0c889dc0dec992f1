"""What both proxier modes share: event handlers feeding ProxyState, the initialized gate,
and the BoundedFrequencyRunner that paces syncs (upstream proxy.Provider)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kube_proxy.bounded_runner import BoundedFrequencyRunner
from kube_proxy.model import ProxyState, UpdateResult

log = logging.getLogger(__name__)


@dataclass
class SyncResult:
    ok: bool
    skipped: bool = False  # not initialized yet: nothing written
    partial: bool = False
    seconds: float = 0.0
    payload_bytes: int = 0
    error: str = ""
    # Seconds spent in the rule-loading tool (iptables-restore, nft, ipvsadm-restore); the
    # rest of `seconds` is Python (state, payload generation, conntrack cleanup).
    restore_seconds: float = 0.0
    # now - last-change-trigger-time for every EndpointSlice change this sync made live.
    network_programming_seconds: list[float] = field(default_factory=list)


class ProxierBase:
    def __init__(
        self,
        node_name: str,
        min_sync_period: float,
        sync_period: float,
        node_labels: dict[str, str] | None = None,
    ) -> None:
        self.node_name = node_name
        self.state = ProxyState(node_name, node_labels)
        self.min_sync_period = min_sync_period
        self.sync_period = sync_period
        self.need_full_sync = True
        self._synced_once = False
        self.last_sync: SyncResult | None = None
        self.sync_count = 0
        self._services_synced = False
        self._slices_synced = False
        self._last_health_check = time.monotonic()
        self._loop_running = False
        self._runner = BoundedFrequencyRunner(
            self._run_once, min_sync_period, max(sync_period, min_sync_period), burst_runs=2
        )
        #: Called with every SyncResult (metrics and health in the daemon).
        self.on_sync: Callable[[SyncResult], None] | None = None

    # -- informer-style handlers --------------------------------------------------------------
    @property
    def initialized(self) -> bool:
        """Upstream does not sync until both Services and EndpointSlices were listed once."""
        return self._services_synced and self._slices_synced

    def on_service_add(self, service: dict[str, Any]) -> None:
        self.on_service_update(None, service)

    def on_service_update(self, old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
        if self.state.on_service_update(old, new) and self.initialized:
            self.request_sync()

    def on_service_delete(self, service: dict[str, Any]) -> None:
        self.on_service_update(service, None)

    def on_services_synced(self) -> None:
        self._services_synced = True
        if self.initialized:
            self.request_sync()

    def on_endpointslice_add(self, endpoint_slice: dict[str, Any]) -> None:
        self.on_endpointslice_update(None, endpoint_slice)

    def on_endpointslice_update(self, old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
        if self.state.on_endpointslice_update(old, new) and self.initialized:
            self.request_sync()

    def on_endpointslice_delete(self, endpoint_slice: dict[str, Any]) -> None:
        self.on_endpointslice_update(endpoint_slice, None)

    def on_endpointslices_synced(self) -> None:
        self._slices_synced = True
        if self.initialized:
            self.request_sync()

    def set_state(self, services: list[dict[str, Any]], endpoint_slices: list[dict[str, Any]]) -> None:
        """Replace everything (initial list or relist) and mark both kinds synced."""
        self.state.replace_services(services)
        self.state.replace_endpointslices(endpoint_slices)
        self._services_synced = self._slices_synced = True
        self.request_sync()

    def on_node_labels(self, labels: dict[str, str]) -> None:
        """This node's labels changed (zone affects topology hints): resync everything."""
        if self.state.relabel_node(labels):
            self.need_full_sync = True
            self.request_sync()

    # -- pacing -----------------------------------------------------------------------------------
    def request_sync(self) -> None:
        """Ask for a sync as soon as min_sync_period allows (no-op cost when already asked)."""
        self._runner.run()

    async def sync(self) -> SyncResult | None:
        """Rate-limited sync: with run() active, wait for the next paced sync to finish;
        otherwise sync right away."""
        if self._loop_running:
            await self._runner.run_and_wait()
            return self.last_sync
        return await self.sync_proxy_rules()

    async def run(self) -> None:
        """The sync loop (upstream SyncLoop): runs until stop()."""
        self._loop_running = True
        try:
            await self._runner.loop()
        finally:
            self._loop_running = False

    def stop(self) -> None:
        self._runner.stop()

    async def _run_once(self) -> None:
        # At most once per sync_period, check that nobody flushed our rules (upstream's
        # iptables Monitor); only then is a full resync forced. Other runs may be partial.
        now = time.monotonic()
        if now - self._last_health_check >= self.sync_period:
            self._last_health_check = now
            if not self.need_full_sync and not await self.rules_intact():
                log.warning("proxy rules were flushed by someone else: full resync")
                self.need_full_sync = True
        result = await self.sync_proxy_rules()
        if not result.ok and not result.skipped:
            self._runner.retry_after(self.sync_period)

    async def rules_intact(self) -> bool:
        """False when the host lost our rules (e.g. an iptables flush)."""
        return True

    async def sync_proxy_rules(self) -> SyncResult:
        raise NotImplementedError

    def _stale_flows(self, pending: UpdateResult) -> UpdateResult:
        """What conntrack cleanup must do after a successful sync. On the first sync after a
        start every UDP service looks newly active (there is no history); clearing their
        flows then would cut live traffic on every kube-proxy restart, so that part waits
        for real changes."""
        if not self._synced_once:
            self._synced_once = True
            pending.newly_active_udp_services = []
        return pending

    def _record(self, result: SyncResult) -> SyncResult:
        self.last_sync = result
        if result.ok and not result.skipped:
            self.sync_count += 1
        if self.on_sync is not None:
            try:
                self.on_sync(result)
            except Exception:  # an observer must never break the sync loop
                log.exception("on_sync callback failed")
        return result


def programming_latencies(trigger_times: dict[Any, list[float]]) -> list[float]:
    """Seconds from each applied change's trigger time until now (the rules are live)."""
    now = time.time()
    return [max(0.0, now - t) for times in trigger_times.values() for t in times]
