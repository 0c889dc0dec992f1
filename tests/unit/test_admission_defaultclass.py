"""The default class pick of DefaultIngressClass / DefaultStorageClass: the newest default, ties by name."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import orjson

from apiserver.admission.defaultclass import DefaultIngressClass, newest_default


def server_with(classes: list[dict]) -> SimpleNamespace:
    async def all_objects() -> list[dict]:
        return [orjson.loads(orjson.dumps(c)) for c in classes]

    return SimpleNamespace(cache_for=lambda group, plural: SimpleNamespace(all_objects=all_objects))


def ingress_class(name: str, created: str, default: bool = True) -> dict:
    annotations = {"ingressclass.kubernetes.io/is-default-class": "true"} if default else {}
    return {"metadata": {"name": name, "creationTimestamp": created, "annotations": annotations}}


def pick(classes: list[dict]) -> str | None:
    return asyncio.run(newest_default(server_with(classes), "networking.k8s.io", "ingressclasses",
                                      DefaultIngressClass.is_default))


def test_newest_default_wins_and_ties_go_to_the_first_name() -> None:
    assert pick([]) is None
    assert pick([ingress_class("a", "2026-01-01T00:00:00Z", default=False)]) is None
    assert pick([ingress_class("old", "2026-01-01T00:00:00Z"), ingress_class("new", "2026-01-02T00:00:00Z"),
                 ingress_class("newest-not-default", "2026-01-03T00:00:00Z", default=False)]) == "new"
    assert pick([ingress_class("b", "2026-01-01T00:00:00Z"), ingress_class("a", "2026-01-01T00:00:00Z")]) == "a"
