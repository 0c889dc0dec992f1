"""Admission: named plugins that may mutate (admit) and then check (validate) a write.

The chain runs mutating plugins first, then the kind's defaulting and validation, then
validating plugins — upstream's order. Each rejection names the plugin.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from apimachinery import errors

if TYPE_CHECKING:
    from apiserver.authn import UserInfo
    from apiserver.resources import Resource

CREATE, UPDATE, DELETE, CONNECT = "CREATE", "UPDATE", "DELETE", "CONNECT"


@dataclass(slots=True)
class Reinvocation:
    """Upstream's ReinvocationContext: once a mutating webhook changed the object, every mutating
    plugin runs once more (in-tree ones too), and of the webhooks only those with
    reinvocationPolicy IfNeeded that ran before the change."""

    should_reinvoke: bool = False
    is_reinvoke: bool = False
    #: IfNeeded webhooks (uids) called since the object last changed / to call again
    previously: set[str] = field(default_factory=set)
    webhooks: set[str] = field(default_factory=set)
    #: the object as the webhooks left it in the first round (upstream's lastWebhookOutput)
    last_output: Any = None


@dataclass(slots=True)
class Attributes:
    operation: str
    resource: Resource
    subresource: str
    namespace: str
    name: str
    obj: dict[str, Any] | None
    old: dict[str, Any] | None
    user: UserInfo
    dry_run: bool = False
    options: dict[str, Any] = field(default_factory=dict)
    reinvocation: Reinvocation = field(default_factory=Reinvocation)


class Plugin:
    name = "Plugin"

    async def admit(self, a: Attributes) -> None:
        """Mutate `a.obj` if needed."""

    async def validate(self, a: Attributes) -> None:
        """Reject with `raise self.forbidden(a, why)`."""

    async def close(self) -> None:
        """Release what the plugin holds (the webhook plugins' HTTPS clients) at shutdown."""

    def forbidden(self, a: Attributes, message: str) -> errors.StatusError:
        """403 as upstream's admission.NewForbidden words it, with this plugin's name in front
        (the issue asks every rejection to name its plugin; upstream's messages do not):
        `pods "x" is forbidden: LimitRanger: <why>`."""
        res = a.resource
        plural = f"{res.plural}/{a.subresource}" if a.subresource else res.plural
        qualified = f"{plural}.{res.group}" if res.group else plural
        name = a.name
        if not name and isinstance(a.obj, dict) and isinstance(a.obj.get("metadata"), dict):
            name = a.obj["metadata"].get("name", "")
        return errors.StatusError(
            403, "Forbidden", f'{qualified} "{name}" is forbidden: {self.name}: {message}',
            {"name": name, "group": res.group, "kind": res.plural} if res.group else {"name": name, "kind": res.plural},
        )


class Chain:
    def __init__(self, plugins: list[Plugin]) -> None:
        self.plugins = plugins
        self._mutating = [p for p in plugins if type(p).admit is not Plugin.admit]
        self._validating = [p for p in plugins if type(p).validate is not Plugin.validate]

    async def admit(self, a: Attributes) -> None:
        for p in self._mutating:
            await p.admit(a)
        if a.reinvocation.should_reinvoke:  # a webhook changed the object: all of them once more
            a.reinvocation.is_reinvoke = True
            for p in self._mutating:
                await p.admit(a)

    async def validate(self, a: Attributes) -> None:
        for p in self._validating:
            await p.validate(a)
