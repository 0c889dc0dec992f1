"""The root CA publisher: a `kube-root-ca.crt` ConfigMap with the cluster CA in every namespace.

Upstream pkg/controller/certificates/rootcacertpublisher: pods' projected token volumes
mount it, so that in-cluster clients can verify the apiserver. A namespace that is added or
changes, or whose ConfigMap is deleted or edited, is synced: the ConfigMap is created, or
its data reset to exactly {"ca.crt": <CA>} with the description annotation.

The CA is `--root-ca-file`, else the CA the controller-manager itself trusts for the
apiserver (its kubeconfig's), as upstream falls back to the client config's CAData.
"""

from __future__ import annotations

import copy
import ssl
from pathlib import Path
from typing import Any

from apimachinery.meta import split_key
from client import deleted_object, is_already_exists, is_not_found
from controller_manager.base import Controller, ControllerContext, register
from controller_manager.serviceaccount import namespace_terminating_error

Obj = dict[str, Any]

CONFIGMAP_NAME = "kube-root-ca.crt"
DESCRIPTION_ANNOTATION = "kubernetes.io/description"
DESCRIPTION = (
    "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints "
    "such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across "
    "distributions of Kubernetes clusters."
)


def ca_from_ssl_context(ctx: ssl.SSLContext | None) -> str:
    """The PEM of the CA certificates an SSL context was given (empty if none)."""
    if ctx is None:
        return ""
    return "".join(ssl.DER_cert_to_PEM_cert(der) for der in ctx.get_ca_certs(binary_form=True))


@register
class RootCACertPublisher(Controller):
    name = "root-ca-certificate-publisher-controller"
    aliases = ("root-ca-cert-publisher",)
    service_account = "root-ca-cert-publisher"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.root_ca = self._load_ca()
        self.namespaces = self.informer("v1", "namespaces")
        self.namespaces.add_handler(self.enqueue, lambda old, new: self.enqueue(new), None)
        self.configmaps = self.informer("v1", "configmaps")
        self.configmaps.add_handler(None, self._configmap_updated, self._configmap_deleted)
        self.configmaps_api = self.client.resource("v1", "configmaps")

    def _load_ca(self) -> str:
        path = self.options.root_ca_file
        if path:
            return Path(path).read_text()
        pem = ca_from_ssl_context(self.ctx.client.config.ssl_context)
        if not pem:
            self.log.warning("no --root-ca-file and no CA in the kubeconfig: %s publishes nothing", CONFIGMAP_NAME)
        return pem

    def _configmap_updated(self, old: Obj, new: Obj) -> None:
        if new["metadata"].get("name") == CONFIGMAP_NAME:
            self.queue.add(new["metadata"]["namespace"])

    def _configmap_deleted(self, item: Any) -> None:
        cm = deleted_object(item)
        meta = cm.get("metadata") or {}
        if meta.get("name") == CONFIGMAP_NAME and meta.get("namespace"):
            self.queue.add(meta["namespace"])

    def wanted_data(self) -> dict[str, str]:
        return {"ca.crt": self.root_ca}

    async def sync(self, key: str) -> None:
        if not self.root_ca:
            return
        _, ns = split_key(key)
        if self.namespaces.store.get(ns) is None:
            return
        data = self.wanted_data()
        current = self.configmaps.store.get(f"{ns}/{CONFIGMAP_NAME}")
        if current is None:
            try:
                await self.configmaps_api.create({
                    "apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": CONFIGMAP_NAME, "namespace": ns,
                                 "annotations": {DESCRIPTION_ANNOTATION: DESCRIPTION}},
                    "data": data,
                }, ns)
            except Exception as e:
                # not there / terminating: nothing to publish; already there: the informer will tell
                if not (namespace_terminating_error(e) or is_already_exists(e)):
                    raise
            return
        annotations = current["metadata"].get("annotations") or {}
        if current.get("data") == data and annotations.get(DESCRIPTION_ANNOTATION) == DESCRIPTION:
            return
        cm = copy.deepcopy(current)
        cm["data"] = data
        cm.pop("binaryData", None)
        cm["metadata"].setdefault("annotations", {})[DESCRIPTION_ANNOTATION] = DESCRIPTION
        try:
            await self.configmaps_api.update(cm, ns)
        except Exception as e:
            if not is_not_found(e):
                raise  # a conflict: the informer has a newer copy and the retry uses it
