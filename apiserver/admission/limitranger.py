"""The LimitRanger admission plugin (upstream plugin/pkg/admission/limitranger).

LimitRanges of a namespace default and bound the resources of its pods and claims:

- mutating: containers without a request/limit get the `defaultRequest`/`default` of each
  `Container` item (recorded in the `kubernetes.io/limit-ranger` annotation); LimitRange
  items themselves get upstream's defaults (default ← max, defaultRequest ← default ← min);
- validating: `min`, `max` and `maxLimitRequestRatio` per Container, per Pod (the sum of
  its containers, init containers counted as upstream does) and per PersistentVolumeClaim.

Messages are upstream's, e.g. `maximum cpu usage per Container is 500m, but limit is 1`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from apimachinery.quantity import (
    DECIMAL_SI,
    Quantity,
    QuantityError,
    format_quantity,
    milli_value,
    parse_quantity,
)
from apiserver.admission import CREATE, UPDATE, Attributes, Plugin

if TYPE_CHECKING:
    from apiserver.server import APIServer

ANNOTATION = "kubernetes.io/limit-ranger"
MAX_MILLI = (1 << 63) // 1000

ResourceList = dict[str, Any]


def _rl(x: Any) -> ResourceList:
    if not isinstance(x, dict):
        return {}
    out = {}
    for k, v in x.items():
        try:
            out[k] = parse_quantity(v)
        except QuantityError:
            continue  # validation rejects it
    return out


def default_limit_range_item(item: dict[str, Any]) -> None:
    """Upstream's SetDefaults_LimitRangeItem for Container items."""
    if item.get("type") != "Container":
        return
    default = dict(item.get("default") or {})
    request = dict(item.get("defaultRequest") or {})
    for k, v in (item.get("max") or {}).items():
        default.setdefault(k, v)
    for k, v in default.items():
        request.setdefault(k, v)
    for k, v in (item.get("min") or {}).items():
        request.setdefault(k, v)
    if default:
        item["default"] = default
    if request:
        item["defaultRequest"] = request


def _containers(spec: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for key, prefix in (("initContainers", "init container"), ("containers", "container")):
        for c in spec.get(key) or []:
            if isinstance(c, dict):
                out.append((prefix, c))
    return out


def apply_defaults(spec: dict[str, Any], items: list[dict[str, Any]]) -> list[str]:
    """Fill containers' missing requests/limits from Container items → annotation parts."""
    defaults_req: dict[str, Any] = {}
    defaults_lim: dict[str, Any] = {}
    for item in items:
        if item.get("type") == "Container":
            defaults_req.update(item.get("defaultRequest") or {})
            defaults_lim.update(item.get("default") or {})
    if not defaults_req and not defaults_lim:
        return []
    notes = []
    for prefix, c in _containers(spec):
        res = c.get("resources")
        if res is None:
            res = c["resources"] = {}
        if not isinstance(res, dict):
            continue
        limits = res.get("limits") if isinstance(res.get("limits"), dict) else {}
        requests = res.get("requests") if isinstance(res.get("requests"), dict) else {}
        set_lim = sorted(k for k in defaults_lim if k not in limits)
        set_req = sorted(k for k in defaults_req if k not in requests)
        for k in set_lim:
            limits[k] = defaults_lim[k]
        for k in set_req:
            requests[k] = defaults_req[k]
        if limits:
            res["limits"] = limits
        if requests:
            res["requests"] = requests
        if set_req:
            notes.append(f"{', '.join(set_req)} request for {prefix} {c.get('name', '')}")
        if set_lim:
            notes.append(f"{', '.join(set_lim)} limit for {prefix} {c.get('name', '')}")
    return notes


def _values(request: Any, limit: Any, enforced: Any) -> tuple[int, int, int]:
    return milli_value(request or 0), milli_value(limit or 0), milli_value(enforced)


def min_constraint(limit_type: str, name: str, enforced: Any, requests: ResourceList, limits: ResourceList) -> str | None:
    req, lim = requests.get(name), limits.get(name)
    r, li, e = _values(req, lim, enforced)
    if req is None:
        return f"minimum {name} usage per {limit_type} is {format_quantity(enforced)}.  No request is specified"
    if r < e:
        return f"minimum {name} usage per {limit_type} is {format_quantity(enforced)}, but request is {format_quantity(req)}"
    if lim is not None and li < e:
        return f"minimum {name} usage per {limit_type} is {format_quantity(enforced)}, but limit is {format_quantity(lim)}"
    return None


def max_constraint(limit_type: str, name: str, enforced: Any, requests: ResourceList, limits: ResourceList) -> str | None:
    req, lim = requests.get(name), limits.get(name)
    r, li, e = _values(req, lim, enforced)
    if lim is None:
        return f"maximum {name} usage per {limit_type} is {format_quantity(enforced)}.  No limit is specified"
    if li > e:
        return f"maximum {name} usage per {limit_type} is {format_quantity(enforced)}, but limit is {format_quantity(lim)}"
    if req is not None and r > e:
        return f"maximum {name} usage per {limit_type} is {format_quantity(enforced)}, but request is {format_quantity(req)}"
    return None


def max_request_constraint(limit_type: str, name: str, enforced: Any, requests: ResourceList) -> str | None:
    req = requests.get(name)
    r, _, e = _values(req, None, enforced)
    if req is None:
        return f"maximum {name} usage per {limit_type} is {format_quantity(enforced)}.  No request is specified"
    if r > e:
        return f"maximum {name} usage per {limit_type} is {format_quantity(enforced)}, but request is {format_quantity(req)}"
    return None


def ratio_constraint(limit_type: str, name: str, enforced: Any, requests: ResourceList, limits: ResourceList) -> str | None:
    req, lim = requests.get(name), limits.get(name)
    r, li, _ = _values(req, lim, 0)
    if req is None or r == 0:
        return (f"{name} max limit to request ratio per {limit_type} is {format_quantity(enforced)}, "
                "but no request is specified or request is 0")
    if lim is None or li == 0:
        return (f"{name} max limit to request ratio per {limit_type} is {format_quantity(enforced)}, "
                "but no limit is specified or limit is 0")
    observed = li / r
    display = observed
    if milli_value(enforced) <= MAX_MILLI:
        observed *= 1000
        allowed = float(milli_value(enforced))
    else:
        allowed = float(parse_quantity(enforced))
    if observed > allowed:
        return (f"{name} max limit to request ratio per {limit_type} is {format_quantity(enforced)}, "
                f"but provided ratio is {display:f}")
    return None


def _add(total: ResourceList, k: str, v: Any) -> None:
    """Sum keeping the first addend's format, as upstream's Quantity.Add ("600Mi" + "600Mi" = "1200Mi")."""
    cur = total.get(k)
    total[k] = v if cur is None else Quantity(cur + v, getattr(cur, "format", DECIMAL_SI))


def pod_totals(spec: dict[str, Any]) -> tuple[ResourceList, ResourceList]:
    """Pod-level requests and limits as upstream's limitranger sums them."""
    req: ResourceList = {}
    lim: ResourceList = {}
    for c in spec.get("containers") or []:
        if isinstance(c, dict):
            res = c.get("resources") if isinstance(c.get("resources"), dict) else {}
            for k, v in _rl(res.get("requests")).items():
                _add(req, k, v)
            for k, v in _rl(res.get("limits")).items():
                _add(lim, k, v)
    for c in spec.get("initContainers") or []:
        if isinstance(c, dict):
            res = c.get("resources") if isinstance(c.get("resources"), dict) else {}
            for k, v in _rl(res.get("requests")).items():
                if k not in req or v > req[k]:
                    req[k] = v
            for k, v in _rl(res.get("limits")).items():
                if k not in lim or v > lim[k]:
                    lim[k] = v
    for k, v in _rl(spec.get("overhead")).items():
        _add(req, k, v)
        _add(lim, k, v)
    return req, lim


def check_pod(spec: dict[str, Any], items: list[dict[str, Any]]) -> list[str]:
    errs: list[str] = []
    for item in items:
        t = item.get("type")
        mins, maxs, ratios = _rl(item.get("min")), _rl(item.get("max")), _rl(item.get("maxLimitRequestRatio"))
        if t == "Container":
            for _, c in _containers(spec):
                res = c.get("resources") if isinstance(c.get("resources"), dict) else {}
                requests, limits = _rl(res.get("requests")), _rl(res.get("limits"))
                errs += _check(t, mins, maxs, ratios, requests, limits)
        elif t == "Pod":
            requests, limits = pod_totals(spec)
            errs += _check(t, mins, maxs, ratios, requests, limits)
    return errs


def _check(t: str, mins: ResourceList, maxs: ResourceList, ratios: ResourceList, requests: ResourceList,
           limits: ResourceList) -> list[str]:
    out = []
    for k, v in mins.items():
        out.append(min_constraint(t, k, v, requests, limits))
    for k, v in maxs.items():
        out.append(max_constraint(t, k, v, requests, limits))
    for k, v in ratios.items():
        out.append(ratio_constraint(t, k, v, requests, limits))
    return [e for e in out if e]


def check_claim(spec: dict[str, Any], items: list[dict[str, Any]]) -> list[str]:
    requests = _rl(((spec.get("resources") or {}) if isinstance(spec.get("resources"), dict) else {}).get("requests"))
    errs: list[str | None] = []
    for item in items:
        if item.get("type") != "PersistentVolumeClaim":
            continue
        for k, v in _rl(item.get("min")).items():
            errs.append(min_constraint("PersistentVolumeClaim", k, v, requests, {}))
        for k, v in _rl(item.get("max")).items():
            errs.append(max_request_constraint("PersistentVolumeClaim", k, v, requests))
    return [e for e in errs if e]


def aggregate(errs: list[str]) -> str:
    return errs[0] if len(errs) == 1 else "[" + ", ".join(errs) + "]"


class LimitRanger(Plugin):
    name = "LimitRanger"

    def __init__(self, server: APIServer) -> None:
        self.server = server
        self.cache = server.cache_for("", "limitranges")

    def _items(self, namespace: str) -> list[dict[str, Any]]:
        prefix = f"{self.cache.prefix}{namespace}/"
        items: list[dict[str, Any]] = []
        for key in sorted(k for k in self.cache.objects if k.startswith(prefix)):
            lr = orjson.loads(self.cache.objects[key].data)
            for item in (lr.get("spec") or {}).get("limits") or []:
                if isinstance(item, dict):
                    default_limit_range_item(item)
                    items.append(item)
        return items

    @staticmethod
    def _kind(a: Attributes) -> str:
        if a.resource.group or a.subresource:
            return ""
        return a.resource.plural

    async def admit(self, a: Attributes) -> None:
        kind = self._kind(a)
        if kind == "limitranges" and a.operation in (CREATE, UPDATE) and isinstance(a.obj, dict):
            for item in (a.obj.get("spec") or {}).get("limits") or []:
                if isinstance(item, dict):
                    default_limit_range_item(item)
            return
        if kind != "pods" or a.operation != CREATE or not isinstance(a.obj, dict):
            return
        spec = a.obj.get("spec")
        if not isinstance(spec, dict):
            return
        await self._ready()
        notes = apply_defaults(spec, self._items(a.namespace))
        if notes:
            meta = a.obj.setdefault("metadata", {})
            annotations = meta.get("annotations") if isinstance(meta.get("annotations"), dict) else {}
            annotations[ANNOTATION] = "LimitRanger plugin set: " + "; ".join(notes)
            meta["annotations"] = annotations

    async def validate(self, a: Attributes) -> None:
        kind = self._kind(a)
        if a.operation != CREATE or kind not in ("pods", "persistentvolumeclaims") or not isinstance(a.obj, dict):
            return
        spec = a.obj.get("spec")
        if not isinstance(spec, dict):
            return
        await self._ready()
        items = self._items(a.namespace)
        if not items:
            return
        errs = check_pod(spec, items) if kind == "pods" else check_claim(spec, items)
        if errs:
            raise self.forbidden(a, aggregate(errs))

    async def _ready(self) -> None:
        if not self.cache.ready.is_set():
            await self.cache.sync_with_store()
