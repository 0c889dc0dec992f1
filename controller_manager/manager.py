"""The controller-manager: which controllers run, and running them on shared informers.

Adding a controller: write `controller_manager/<module>.py` with a `@register`ed
`Controller` subclass (see base.py), and add the module's name to `CONTROLLER_MODULES`.
`--controllers` then accepts its `name` and `aliases`.

`--controllers` (upstream semantics): a list of names; `*` enables every controller that
is on by default, `foo` enables foo, `-foo` disables foo (default: `*`).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
from collections.abc import Iterable, Sequence
from typing import Any

from controller_manager.base import CONTROLLERS, Controller, ControllerContext

log = logging.getLogger("controller_manager")

#: modules that register controllers, imported by load_controllers() (append yours)
CONTROLLER_MODULES: list[str] = [
    # workload controllers
    "controller_manager.replicaset",
    "controller_manager.replication",
    "controller_manager.deployment",
    "controller_manager.daemonset",
    "controller_manager.statefulset",
    "controller_manager.job",
    "controller_manager.cronjob",
    "controller_manager.ttl_after_finished",
    "controller_manager.podautoscaler",
    # infrastructure controllers
    "controller_manager.endpoints",
    "controller_manager.endpointslice",
    "controller_manager.namespace",
    "controller_manager.serviceaccount",
    "controller_manager.node_lifecycle",
    "controller_manager.garbage_collector",
    "controller_manager.podgc",
    "controller_manager.disruption",
    "controller_manager.root_ca_publisher",
    "controller_manager.certificates_signing",
    "controller_manager.certificates_approving",
    "controller_manager.certificates_cleaner",
    "controller_manager.kubelet_serving_approver",
    "controller_manager.bootstrapsigner",
    "controller_manager.tokencleaner",
    "controller_manager.nodeipam",
    "controller_manager.taint_eviction",
    # storage controllers
    "controller_manager.persistentvolume",
    "controller_manager.pvc_protection",
    "controller_manager.pv_protection",
    "controller_manager.ephemeral_volume",
    "controller_manager.hostpath_provisioner",
]

__all__ = ["CONTROLLERS", "CONTROLLER_MODULES", "ControllerSet", "enabled_controllers", "load_controllers"]


def load_controllers() -> dict[str, type[Controller]]:
    """Import every controller module (a module not written yet is skipped with a warning)."""
    for module in CONTROLLER_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name != module:
                raise  # the module exists but something it imports is missing: a real error
            log.warning("controller module %s not found; its controllers are unavailable", module)
    return CONTROLLERS


def _by_alias(controllers: dict[str, type[Controller]]) -> dict[str, str]:
    names = {}
    for name, cls in controllers.items():
        names[name] = name
        for alias in cls.aliases:
            names[alias] = name
    return names


def enabled_controllers(spec: Sequence[str], controllers: dict[str, type[Controller]]) -> list[str]:
    """The names of the controllers `--controllers` selects, in registry order.

    Raises ValueError for names that are not known (as upstream refuses to start).
    """
    names = _by_alias(controllers)
    enabled: set[str] = set()
    disabled: set[str] = set()
    star = False
    for raw in spec:
        item = raw.strip()
        if not item:
            continue
        if item == "*":
            star = True
            continue
        negate = item.startswith("-")
        name = names.get(item.removeprefix("-"))
        if name is None:
            raise ValueError(f"{item!r} is not in the list of known controllers: {sorted(names)}")
        (disabled if negate else enabled).add(name)
    result = []
    for name, cls in controllers.items():
        if name in disabled:
            continue
        if name in enabled or (star and cls.enabled_by_default):
            result.append(name)
    return result


class ControllerSet:
    """Build the selected controllers on one context and run them until stopped."""

    def __init__(self, ctx: ControllerContext, names: Iterable[str],
                 controllers: dict[str, type[Controller]] | None = None) -> None:
        self.ctx = ctx
        self.registry = controllers if controllers is not None else CONTROLLERS
        self.names = list(names)
        self.controllers: list[Controller] = []

    def workers(self, c: Controller) -> int:
        if c.workers_option is None:
            return 1
        return max(1, int(getattr(self.ctx.options, c.workers_option)))

    @property
    def synced(self) -> bool:
        return bool(self.controllers) and all(c.informers_synced for c in self.controllers)

    async def build(self) -> None:
        """Get every controller its identity, then construct them (they ask for informers)."""
        classes = [self.registry[name] for name in self.names]
        if self.ctx.clients is not None:
            await self.ctx.clients.prepare([cls.service_account for cls in classes])
        self.controllers = [cls(self.ctx) for cls in classes]

    async def run(self, stop: asyncio.Event) -> None:
        """Build, start the shared informers and every controller; once `stop` is set, stop them all."""
        tasks: list[asyncio.Task[None]] = []
        try:
            await self.build()
            self.ctx.informers.start()
            tasks = [asyncio.create_task(c.run(self.workers(c), stop), name=c.name) for c in self.controllers]
            log.info("started controllers: %s", ", ".join(c.name for c in self.controllers))
            stopper = asyncio.create_task(stop.wait())
            pending: set[asyncio.Task[Any]] = {*tasks, stopper}
            while not stopper.done():
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for t in done:
                    if t is not stopper and not t.cancelled() and t.exception() is not None:
                        stopper.cancel()
                        raise RuntimeError(f"controller {t.get_name()} failed") from t.exception()
        finally:
            stop.set()
            for t in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await asyncio.wait_for(t, 5)
            await self.ctx.informers.stop()
            await self.ctx.close()
