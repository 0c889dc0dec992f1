"""The bootstrap signer: signs `kube-public/cluster-info` with every signing bootstrap token.

Upstream pkg/controller/bootstrap/bootstrapsigner.go. For each Secret of type
`bootstrap.kubernetes.io/token` in kube-system with `usage-bootstrap-signing: "true"` that has
not expired, the ConfigMap gets `jws-kubeconfig-<token-id>`: a detached HS256 JWS of its
`kubeconfig` entry made with the token secret. Signatures of tokens that are gone, expired or
no longer for signing are removed. A joining node (`minictl node join`, `kubeadm join`) reads
cluster-info anonymously and trusts its kubeconfig only if the signature of its token matches.

Like upstream it is off unless named (`--controllers=*,bootstrapsigner`), as kubeadm runs it.
"""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

from apimachinery.bootstraptoken import (
    CLUSTER_INFO_NAME,
    CLUSTER_INFO_NAMESPACE,
    JWS_PREFIX,
    KUBECONFIG_KEY,
    NAMESPACE,
    SECRET_TYPE,
    BootstrapToken,
    detached_signature,
)
from client import deleted_object, is_not_found
from controller_manager.base import Controller, ControllerContext, register

Obj = dict[str, Any]

CLUSTER_INFO_KEY = f"{CLUSTER_INFO_NAMESPACE}/{CLUSTER_INFO_NAME}"


def signing_tokens(secrets: list[Obj], now: dt.datetime) -> tuple[dict[str, str], dt.datetime | None]:
    """{token id: secret} of the tokens that sign now, and the earliest expiry among them."""
    out: dict[str, str] = {}
    next_expiry: dt.datetime | None = None
    for secret in secrets:
        meta = secret.get("metadata") or {}
        if meta.get("namespace") != NAMESPACE or meta.get("deletionTimestamp"):
            continue
        token = BootstrapToken.from_secret(secret)
        if token is None or "signing" not in token.usages or not token.token_secret or token.expired(now):
            continue
        out[token.token_id] = token.token_secret
        if token.expires is not None and (next_expiry is None or token.expires < next_expiry):
            next_expiry = token.expires
    return out, next_expiry


def signed_data(data: dict[str, str], tokens: dict[str, str]) -> dict[str, str]:
    """The ConfigMap data with exactly one signature per signing token."""
    content = data.get(KUBECONFIG_KEY, "")
    out = {k: v for k, v in data.items() if not k.startswith(JWS_PREFIX)}
    for token_id, token_secret in sorted(tokens.items()):
        out[JWS_PREFIX + token_id] = detached_signature(content, token_id, token_secret)
    return out


@register
class BootstrapSigner(Controller):
    name = "bootstrap-signer-controller"
    aliases = ("bootstrapsigner",)
    enabled_by_default = False
    service_account = "bootstrap-signer"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.configmaps = self.informer("v1", "configmaps")
        self.configmaps.add_handler(self._configmap_changed, lambda old, new: self._configmap_changed(new),
                                    self._configmap_deleted)
        self.secrets = self.informer("v1", "secrets")
        self.secrets.add_handler(self._secret_changed, lambda old, new: self._secret_changed(new),
                                 lambda item: self._secret_changed(deleted_object(item)))
        self.configmaps_api = self.client.resource("v1", "configmaps")
        self.queue.add(CLUSTER_INFO_KEY)

    def _configmap_changed(self, cm: Obj) -> None:
        meta = cm.get("metadata") or {}
        if meta.get("namespace") == CLUSTER_INFO_NAMESPACE and meta.get("name") == CLUSTER_INFO_NAME:
            self.queue.add(CLUSTER_INFO_KEY)

    def _configmap_deleted(self, item: Any) -> None:
        self._configmap_changed(deleted_object(item))

    def _secret_changed(self, secret: Obj) -> None:
        if secret.get("type") == SECRET_TYPE and (secret.get("metadata") or {}).get("namespace") == NAMESPACE:
            self.queue.add(CLUSTER_INFO_KEY)

    async def sync(self, key: str) -> None:
        current = self.configmaps.store.get(CLUSTER_INFO_KEY)
        if current is None:
            return  # nothing to sign until `minictl cluster up` (kubeadm init) publishes it
        now = self.clock.now()
        tokens, next_expiry = signing_tokens(list(self.secrets.store.list()), now)
        if next_expiry is not None:  # drop its signature when it expires
            self.queue.add_after(CLUSTER_INFO_KEY, max(0.0, (next_expiry - now).total_seconds()) + 1.0)
        data = dict(current.get("data") or {})
        if KUBECONFIG_KEY not in data:
            return  # upstream: nothing to sign without a kubeconfig entry
        want = signed_data(data, tokens)
        if want == data:
            return
        cm = copy.deepcopy(current)
        cm["data"] = want
        try:
            await self.configmaps_api.update(cm, CLUSTER_INFO_NAMESPACE)
        except Exception as e:
            if not is_not_found(e):
                raise  # a conflict: retried with the informer's newer copy
            return
        self.log.info("cluster-info signed by %d token(s): %s", len(tokens), ", ".join(sorted(tokens)) or "none")
