"""Keeps upstream's APF configuration objects in the cluster (the apiserver's
priority-and-fairness-config-producer, pkg/registry/flowcontrol/ensurer).

Each round, in upstream's order: the suggested objects are created when missing and their spec
put back while their `apf.kubernetes.io/autoupdate-spec` annotation is "true" (no annotation: while
they are unchanged since creation, generation 1); then the mandatory ones, whose spec is always
put back (but for the `exempt` level's `spec.exempt`) and whose annotation is set to "true"; then
objects the apiserver made once but no longer ships (annotation "true", name not among them) are
deleted. A round runs at start, every minute, and soon after any change of those objects (upstream
waits for the minute; a deleted mandatory object is back at once here).
"""

from __future__ import annotations

import asyncio
import copy
import logging
from typing import TYPE_CHECKING, Any

import orjson

from apimachinery import errors
from apiserver.flowcontrol import config
from apiserver.managedfields import REQUEST_MANAGER

if TYPE_CHECKING:
    from apiserver.server import APIServer

log = logging.getLogger("apiserver.flowcontrol")

Obj = dict[str, Any]
FIELD_MANAGER = "api-priority-and-fairness-config-producer-v1"
PERIOD = 60.0
#: changes arriving together make one round
SETTLE = 0.1

_BOOLS = {"1": True, "t": True, "T": True, "TRUE": True, "true": True, "True": True,
          "0": False, "f": False, "F": False, "FALSE": False, "false": False, "False": False}


def parse_bool(value: Any) -> bool | None:
    """Go's strconv.ParseBool; None for what it refuses."""
    return _BOOLS.get(value) if isinstance(value, str) else None


def _auto_update(obj: Obj) -> bool:
    meta = obj.get("metadata") or {}
    value = parse_bool((meta.get("annotations") or {}).get(config.AUTO_UPDATE_ANNOTATION))
    if value is not None:
        return value
    return meta.get("generation") == 1  # untouched since it was made: safe to update


def specs_equalish(plural: str, wanted: Obj, current: Obj) -> bool:
    """The ensurer's comparison: the exempt level's `spec.exempt` is the administrator's."""
    want, have = wanted.get("spec") or {}, current.get("spec") or {}
    if plural == "prioritylevelconfigurations" and wanted["metadata"]["name"] == config.EXEMPT:
        if not isinstance(have.get("exempt"), dict):
            return False
        want = {**want, "exempt": have["exempt"]}
    return config.specs_equal(want, have)


def revise(plural: str, current: Obj, wanted: Obj, mandatory: bool) -> Obj | None:
    """The object to write back for `current` (None: nothing to do)."""
    update_spec = mandatory or _auto_update(current)
    annotations = (current.get("metadata") or {}).get("annotations") or {}
    fix_annotation = parse_bool(annotations.get(config.AUTO_UPDATE_ANNOTATION)) != update_spec
    fix_spec = update_spec and not specs_equalish(plural, wanted, current)
    if not (fix_annotation or fix_spec):
        return None
    new = copy.deepcopy(current)
    new["metadata"].pop("resourceVersion", None)
    if fix_annotation:
        new["metadata"]["annotations"] = {**annotations, config.AUTO_UPDATE_ANNOTATION: str(update_spec).lower()}
    if fix_spec:
        new["spec"] = copy.deepcopy(wanted["spec"])
    return new


ROUNDS = (
    ("prioritylevelconfigurations", config.SUGGESTED_PRIORITY_LEVELS, False),
    ("flowschemas", config.SUGGESTED_FLOW_SCHEMAS, False),
    ("prioritylevelconfigurations", config.MANDATORY_PRIORITY_LEVELS, True),
    ("flowschemas", config.MANDATORY_FLOW_SCHEMAS, True),
)
#: the names the apiserver ships, per resource
WANTED = {
    "prioritylevelconfigurations": {o["metadata"]["name"] for o in
                                    config.SUGGESTED_PRIORITY_LEVELS + config.MANDATORY_PRIORITY_LEVELS},
    "flowschemas": {o["metadata"]["name"] for o in config.SUGGESTED_FLOW_SCHEMAS + config.MANDATORY_FLOW_SCHEMAS},
}


class Ensurer:
    def __init__(self, server: APIServer) -> None:
        self.server = server
        self.caches = {p: server.cache_for(config.GROUP, p) for p in WANTED}
        self._wake = asyncio.Event()
        for cache in self.caches.values():
            cache.listeners.append(lambda ev: self._wake.set())

    def _current(self, plural: str) -> dict[str, Obj]:
        return {e.name: orjson.loads(e.data) for e in self.caches[plural].objects.values()}

    async def run(self) -> None:
        REQUEST_MANAGER.set(FIELD_MANAGER)
        for cache in self.caches.values():
            await cache.ready.wait()
        delay = 1.0
        while True:
            self._wake.clear()
            try:
                await self.ensure()
            except asyncio.CancelledError:
                raise
            except Exception as e:  # etcd away, say: the next round tries again
                log.warning("APF configuration: %s; trying again in %.0f s", e, delay)
                await asyncio.sleep(delay)
                delay = min(2 * delay, PERIOD / 2)
                continue
            delay = 1.0
            try:
                await asyncio.wait_for(self._wake.wait(), PERIOD)
                await asyncio.sleep(SETTLE)
            except TimeoutError:
                pass

    async def ensure(self) -> None:
        from apiserver.bootstrap import SYSTEM_USER

        api = self.server.api
        for plural, objects, mandatory in ROUNDS:
            res = self.server.resource(config.GROUP, plural)
            current = self._current(plural)
            for wanted in objects:
                name = wanted["metadata"]["name"]
                have = current.get(name)
                if have is None:
                    try:
                        await api.create_object(res, "", copy.deepcopy(wanted), SYSTEM_USER, False, {})
                    except errors.StatusError as e:
                        if e.code != 409:
                            raise
                    continue
                new = revise(plural, have, wanted, mandatory)
                if new is None:
                    continue
                log.info("APF configuration: updating %s %s", plural, name)

                async def mutate(old: Obj, new: Obj = new) -> Obj:
                    return new

                try:
                    await api.update_object(res, "", name, mutate, have["metadata"]["resourceVersion"], SYSTEM_USER,
                                            False, {}, "")
                except errors.StatusError as e:
                    if e.code not in (404, 409):  # changed meanwhile: its event brings another round
                        raise
        for plural, wanted_names in WANTED.items():
            res = self.server.resource(config.GROUP, plural)
            for name, obj in self._current(plural).items():
                annotations = (obj.get("metadata") or {}).get("annotations") or {}
                if name in wanted_names or parse_bool(annotations.get(config.AUTO_UPDATE_ANNOTATION)) is not True:
                    continue
                log.info("APF configuration: deleting %s %s, which the apiserver no longer ships", plural, name)
                try:
                    await api.delete_object(res, "", name, {}, SYSTEM_USER, {})
                except errors.StatusError as e:
                    if e.code != 404:
                        raise
