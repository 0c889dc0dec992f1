"""What both proxier modes share: event handlers feeding ProxyState, the initialized gate,
and the BoundedFrequencyRunner that paces syncs (upstream proxy.Provider)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from kube_proxy.bounded_runner import BoundedFrequencyRunner
from kube_proxy.model import ProxyState

log = logging.getLogger(__name__)


@dataclass
class SyncResult:
    ok: bool
    skipped: bool = False  # not initialized yet: nothing written
    partial: bool = False
    seconds: float = 0.0
    payload_bytes: int = 0
    error: str = ""


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
        self.last_sync: SyncResult | None = None
        self.sync_count = 0
        self._services_synced = False
        self._slices_synced = False
        self._last_health_check = time.monotonic()
        self._loop_running = False
        self._runner = BoundedFrequencyRunner(
            self._run_once, min_sync_period, max(sync_period, min_sync_period), burst_runs=2
        )

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

    def _record(self, result: SyncResult) -> SyncResult:
        self.last_sync = result
        if result.ok and not result.skipped:
            self.sync_count += 1
        return result
