"""A container's environment: service links, envFrom, env (valueFrom) and $(VAR) expansion.

Upstream's makeEnvironmentVariables: service variables come first (the `kubernetes` service
always, the pod's namespace's services when enableServiceLinks), then envFrom sources, then
env entries; later definitions win. `$(VAR)` in values, commands and args expands to variables
defined before it; `$$(VAR)` is a literal `$(VAR)`.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Awaitable, Callable
from typing import Any

from kubelet.downward import DownwardError, field_value, resource_value

ObjectGetter = Callable[[str, str], Awaitable[dict[str, Any] | None]]

_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")


class EnvError(Exception):
    """The environment cannot be built (a missing ConfigMap, key, ...): CreateContainerConfigError."""


def expand(text: str, lookup: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion (k8s.io/kubernetes/third_party/forked/golang/expansion)."""
    out: list[str] = []
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == "$" and i + 1 < n:
            nxt = text[i + 1]
            if nxt == "$":  # escaped: $$ → $
                out.append("$")
                i += 2
                continue
            if nxt == "(":
                end = text.find(")", i + 2)
                if end == -1:
                    out.append(text[i:])
                    break
                name = text[i + 2 : end]
                if name in lookup:
                    out.append(lookup[name])
                else:
                    out.append(text[i : end + 1])
                i = end + 1
                continue
            out.append(ch)
            i += 1
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def _env_prefix(name: str) -> str:
    return name.upper().replace("-", "_")


def service_env(services: list[dict[str, Any]]) -> dict[str, str]:
    """Docker-link style variables for services (upstream's envvars.FromServices)."""
    out: dict[str, str] = {}
    for svc in sorted(services, key=lambda s: s["metadata"]["name"]):
        spec = svc.get("spec") or {}
        ip = spec.get("clusterIP")
        if not ip or ip == "None":
            continue
        ports = spec.get("ports") or []
        prefix = _env_prefix(svc["metadata"]["name"])
        out[f"{prefix}_SERVICE_HOST"] = ip
        if not ports:
            continue
        out[f"{prefix}_SERVICE_PORT"] = str(ports[0].get("port"))
        for p in ports:
            if p.get("name"):
                out[f"{prefix}_SERVICE_PORT_{_env_prefix(p['name'])}"] = str(p.get("port"))
        first = ports[0]
        proto = (first.get("protocol") or "TCP").lower()
        host = f"[{ip}]" if ":" in ip else ip
        out[f"{prefix}_PORT"] = f"{proto}://{host}:{first.get('port')}"
        for p in ports:
            proto = (p.get("protocol") or "TCP")
            port = p.get("port")
            base = f"{prefix}_PORT_{port}_{proto.upper()}"
            out[base] = f"{proto.lower()}://{host}:{port}"
            out[f"{base}_PROTO"] = proto.lower()
            out[f"{base}_PORT"] = str(port)
            out[f"{base}_ADDR"] = ip
    return out


def _data(obj: dict[str, Any], secret: bool) -> dict[str, str]:
    if not secret:
        return dict(obj.get("data") or {})
    out = {}
    for k, v in (obj.get("data") or {}).items():
        try:
            out[k] = base64.b64decode(v).decode(errors="replace")
        except ValueError:
            out[k] = ""
    for k, v in (obj.get("stringData") or {}).items():
        out.setdefault(k, v)
    return out


class EnvBuilder:
    def __init__(self, get_configmap: ObjectGetter, get_secret: ObjectGetter) -> None:
        self.get_configmap = get_configmap
        self.get_secret = get_secret

    async def _object(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        getter = self.get_secret if kind == "secret" else self.get_configmap
        return await getter(namespace, name)

    async def build(
        self,
        pod: dict[str, Any],
        container: dict[str, Any],
        services: dict[str, str],
        host_ip: str,
        pod_ips: list[str],
        allocatable: dict[str, int],
    ) -> tuple[list[tuple[str, str]], list[str]]:
        """(ordered name/value pairs, warnings about skipped envFrom keys)."""
        ns = pod["metadata"].get("namespace", "default")
        env: dict[str, str] = {}
        warnings: list[str] = []
        for src in container.get("envFrom") or []:
            prefix = src.get("prefix") or ""
            if src.get("configMapRef") is not None:
                kind, ref = "configmap", src["configMapRef"]
            elif src.get("secretRef") is not None:
                kind, ref = "secret", src["secretRef"]
            else:
                continue
            obj = await self._object(kind, ns, ref.get("name", ""))
            if obj is None:
                if ref.get("optional"):
                    continue
                raise EnvError(f'{kind} "{ref.get("name")}" not found')
            invalid = []
            for key, value in _data(obj, kind == "secret").items():
                name = prefix + key
                if not _ENV_NAME.match(name):
                    invalid.append(name)
                    continue
                env[name] = value
            if invalid:
                warnings.append(f"Keys [{', '.join(sorted(invalid))}] from the EnvFrom {kind} {ns}/{ref.get('name')} "
                                "were skipped since they are considered invalid environment variable names.")
        for item in container.get("env") or []:
            name = item.get("name", "")
            if "value" in item and item.get("valueFrom") is None:
                env[name] = expand(str(item.get("value") or ""), {**services, **env})
                continue
            vf = item.get("valueFrom")
            if vf is None:
                env[name] = ""
                continue
            value = await self._value_from(pod, container, vf, ns, host_ip, pod_ips, allocatable)
            if value is None:
                continue  # optional reference to something missing
            env[name] = value
        ordered = list(env.items())
        ordered += [(k, v) for k, v in services.items() if k not in env]
        return ordered, warnings

    async def _value_from(
        self, pod: dict[str, Any], container: dict[str, Any], vf: dict[str, Any], ns: str,
        host_ip: str, pod_ips: list[str], allocatable: dict[str, int],
    ) -> str | None:
        try:
            if vf.get("fieldRef") is not None:
                return field_value(pod, vf["fieldRef"].get("fieldPath", ""), host_ip, pod_ips)
            if vf.get("resourceFieldRef") is not None:
                ref = vf["resourceFieldRef"]
                return resource_value(container, ref.get("resource", ""), ref.get("divisor"), allocatable)
        except DownwardError as e:
            raise EnvError(str(e)) from None
        for kind, key in (("configmap", "configMapKeyRef"), ("secret", "secretKeyRef")):
            ref = vf.get(key)
            if ref is None:
                continue
            obj = await self._object(kind, ns, ref.get("name", ""))
            label = "ConfigMap" if kind == "configmap" else "Secret"
            if obj is None:
                if ref.get("optional"):
                    return None
                raise EnvError(f'{kind} "{ref.get("name")}" not found')
            data = _data(obj, kind == "secret")
            if ref.get("key") not in data:
                if ref.get("optional"):
                    return None
                raise EnvError(f"couldn't find key {ref.get('key')} in {label} {ns}/{ref.get('name')}")
            return data[ref["key"]]
        raise EnvError("valueFrom names no source")
