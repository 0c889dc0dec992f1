"""Small facts about pod specs and statuses that the kubelet, the controllers and the printers share."""

from __future__ import annotations

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
