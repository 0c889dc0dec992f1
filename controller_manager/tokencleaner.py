"""The token cleaner: deletes bootstrap tokens whose `expiration` has passed.

Upstream pkg/controller/bootstrap/tokencleaner.go: Secrets of type
`bootstrap.kubernetes.io/token` in kube-system are deleted (with a UID
precondition) once expired; a token not yet expired is looked at again when it will be. Off
unless named (`--controllers=*,tokencleaner`), as kubeadm runs it.
"""

from __future__ import annotations

from apimachinery.bootstraptoken import NAMESPACE, SECRET_TYPE, secret_expiration
from client import is_conflict, is_not_found
from controller_manager.base import Controller, ControllerContext, register


@register
class TokenCleaner(Controller):
    name = "token-cleaner-controller"
    aliases = ("tokencleaner",)
    enabled_by_default = False
    service_account = "token-cleaner"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.secrets = self.informer("v1", "secrets")
        self.secrets.add_handler(self._changed, lambda old, new: self._changed(new), None)
        self.secrets_api = self.client.resource("v1", "secrets")

    def _changed(self, secret: dict) -> None:
        if secret.get("type") == SECRET_TYPE and (secret.get("metadata") or {}).get("namespace") == NAMESPACE:
            self.enqueue(secret)

    async def sync(self, key: str) -> None:
        secret = self.secrets.store.get(key)
        if secret is None or secret.get("type") != SECRET_TYPE:
            return
        expires = secret_expiration(secret)  # as upstream: whether or not the token is well-formed
        if expires is None:
            return
        left = (expires - self.clock.now()).total_seconds()
        if left > 0:
            self.enqueue_after(key, left + 0.5)
            return
        meta = secret["metadata"]
        self.log.info("deleting expired bootstrap token %s", meta["name"])
        try:
            await self.secrets_api.delete(meta["name"], NAMESPACE, preconditions={"uid": meta.get("uid")})
        except Exception as e:
            if not (is_not_found(e) or is_conflict(e)):
                raise
