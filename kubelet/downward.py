"""The downward API: pod fields and container resources as values (env vars and volume files)."""

from __future__ import annotations

import math
import re
from typing import Any

from apimachinery.quantity import resource_int
from kubelet.qos import container_limits, container_requests


class DownwardError(ValueError):
    pass


_SUBSCRIPT = re.compile(r"^metadata\.(labels|annotations)\['(.+)'\]$")


def format_map(values: dict[str, str]) -> str:
    """Labels/annotations as a downward-API file: `key="value"` lines, sorted."""
    lines = []
    for k in sorted(values):
        v = values[k].replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
        lines.append(f'{k}="{v}"')
    return "\n".join(lines)


def field_value(pod: dict[str, Any], path: str, host_ip: str = "", pod_ips: list[str] | None = None) -> str:
    """The value of a fieldRef.fieldPath for `pod` (upstream's podFieldSelectorRuntimeValue)."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    m = _SUBSCRIPT.match(path)
    if m:
        return str((meta.get(m.group(1)) or {}).get(m.group(2), ""))
    ips = pod_ips if pod_ips is not None else [p.get("ip", "") for p in status.get("podIPs") or []]
    simple = {
        "metadata.name": meta.get("name", ""),
        "metadata.namespace": meta.get("namespace", ""),
        "metadata.uid": meta.get("uid", ""),
        "metadata.labels": format_map(meta.get("labels") or {}),
        "metadata.annotations": format_map(meta.get("annotations") or {}),
        "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", ""),
        "status.hostIP": host_ip or status.get("hostIP", ""),
        "status.hostIPs": ",".join(filter(None, [host_ip or status.get("hostIP", "")])),
        "status.podIP": ips[0] if ips else status.get("podIP", ""),
        "status.podIPs": ",".join(ips),
    }
    if path not in simple:
        raise DownwardError(f"unsupported fieldPath {path!r}")
    return simple[path]


def resource_value(
    container: dict[str, Any], resource: str, divisor: Any, allocatable: dict[str, int]
) -> str:
    """resourceFieldRef: the container's request/limit (limits default to node allocatable),
    divided by `divisor` and rounded up."""
    kind, _, name = resource.partition(".")
    if kind not in ("limits", "requests") or not name:
        raise DownwardError(f"unsupported resource {resource!r}")
    if kind == "limits":
        amounts = {**container_limits(container), **_other((container.get("resources") or {}).get("limits"))}
        value = amounts.get(name) or allocatable.get(name, 0)
    else:
        amounts = {**container_requests(container), **_other((container.get("resources") or {}).get("requests"))}
        value = amounts.get(name, 0)
    div = resource_int(name, divisor if divisor not in (None, "", 0) else "1")
    if div <= 0:
        raise DownwardError(f"invalid divisor {divisor!r}")
    return str(math.ceil(value / div))


def _other(rl: dict[str, Any] | None) -> dict[str, int]:
    return {k: resource_int(k, v) for k, v in (rl or {}).items() if k not in ("cpu", "memory")}
