"""DefaultIngressClass and DefaultStorageClass: a new Ingress or PersistentVolumeClaim that names
no class gets the cluster's default one (the class annotated as default; the newest when
several are), as upstream's admission plugins of those names do."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from apimachinery.meta import newest_name
from apimachinery.volumebinding import BETA_STORAGE_CLASS_ANNOTATION
from apiserver.admission import CREATE, Attributes, Plugin
from apiserver.registry.networking import INGRESS_CLASS_ANNOTATION
from apiserver.registry.storage import is_default_class as is_default_storage_class

if TYPE_CHECKING:
    from apiserver.server import APIServer

DEFAULT_INGRESS_CLASS_ANNOTATION = "ingressclass.kubernetes.io/is-default-class"


async def newest_default(server: APIServer, group: str, plural: str, is_default: Any) -> str | None:
    """The name of the newest default class (ties: the first name), or None."""
    return newest_name([o for o in await server.cache_for(group, plural).all_objects() if is_default(o)])


class _DefaultClass(Plugin):
    """Fill `spec.<field>` of a new <target> that names no class with the default class."""

    target: tuple[str, str]  # (group, plural) of the objects defaulted
    classes: tuple[str, str]  # (group, plural) of the class objects
    field: str

    def __init__(self, server: APIServer) -> None:
        self.server = server

    @staticmethod
    def is_default(cls: dict[str, Any]) -> bool:
        raise NotImplementedError

    def names_a_class(self, spec: dict[str, Any], annotations: dict[str, Any]) -> bool:
        raise NotImplementedError

    async def admit(self, a: Attributes) -> None:
        if a.operation != CREATE or a.subresource or (a.resource.group, a.resource.plural) != self.target:
            return
        if not isinstance(a.obj, dict):
            return
        spec = a.obj.setdefault("spec", {})
        annotations = (a.obj.get("metadata") or {}).get("annotations") or {}
        if not isinstance(spec, dict) or self.names_a_class(spec, annotations):
            return
        name = await newest_default(self.server, *self.classes, self.is_default)
        if name is not None:
            spec[self.field] = name


class DefaultIngressClass(_DefaultClass):
    name = "DefaultIngressClass"
    target = ("networking.k8s.io", "ingresses")
    classes = ("networking.k8s.io", "ingressclasses")
    field = "ingressClassName"

    @staticmethod
    def is_default(cls: dict[str, Any]) -> bool:
        return ((cls.get("metadata") or {}).get("annotations") or {}).get(DEFAULT_INGRESS_CLASS_ANNOTATION) == "true"

    def names_a_class(self, spec: dict[str, Any], annotations: dict[str, Any]) -> bool:
        return spec.get("ingressClassName") is not None or INGRESS_CLASS_ANNOTATION in annotations


class DefaultStorageClass(_DefaultClass):
    name = "DefaultStorageClass"
    target = ("", "persistentvolumeclaims")
    classes = ("storage.k8s.io", "storageclasses")
    field = "storageClassName"
    is_default = staticmethod(is_default_storage_class)

    def names_a_class(self, spec: dict[str, Any], annotations: dict[str, Any]) -> bool:
        # "" asks for no class at all; only an absent class is defaulted
        return spec.get("storageClassName") is not None or BETA_STORAGE_CLASS_ANNOTATION in annotations
