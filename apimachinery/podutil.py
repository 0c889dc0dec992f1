"""Small facts about pod specs and statuses that the kubelet, the controllers and the printers share."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def is_restartable_init_container(container: dict[str, Any] | None) -> bool:
    """A "sidecar": an init container with restartPolicy Always. It starts in the init sequence,
    then keeps running (and is restarted) beside the regular containers."""
    return bool(container) and container.get("restartPolicy") == "Always"  # type: ignore[union-attr]


def sidecars(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for c in spec.get("initContainers") or [] if is_restartable_init_container(c)]


def has_any_regular_container_started(spec: dict[str, Any], statuses: list[dict[str, Any]]) -> bool:
    """Whether a regular container of the pod is running or has run (upstream's
    HasAnyRegularContainerStarted): the pod was initialized once, even if a sidecar restarts now."""
    names = {c.get("name") for c in spec.get("containers") or []}
    return any(
        s.get("name") in names and ("running" in (s.get("state") or {}) or "terminated" in (s.get("state") or {}))
        for s in statuses
    )


def host_ports(spec: Mapping[str, Any]) -> tuple[tuple[str, str, int], ...]:
    """(hostIP, protocol, hostPort) of the pod's containers, defaulted as upstream (0.0.0.0, TCP)."""
    out = []
    for c in spec.get("containers") or ():
        for p in c.get("ports") or ():
            hp = p.get("hostPort") or 0
            if hp > 0:
                out.append((p.get("hostIP") or "0.0.0.0", p.get("protocol") or "TCP", int(hp)))
    return tuple(out)
