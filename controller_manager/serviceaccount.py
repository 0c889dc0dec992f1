"""The ServiceAccount controller: a `default` ServiceAccount in every active namespace.

Upstream pkg/controller/serviceaccount (ServiceAccountsController): a namespace that is
added or changes, or whose `default` ServiceAccount is deleted, is synced; the sync creates
the account when the namespace is Active and the account is missing. Pods need it: the
ServiceAccount admission plugin refuses pods whose account does not exist.
"""

from __future__ import annotations

from typing import Any

from apimachinery.meta import split_key
from client import deleted_object, is_already_exists, is_not_found
from controller_manager.base import Controller, ControllerContext, register

Obj = dict[str, Any]

#: the accounts every namespace gets (upstream's ServiceAccountsControllerOptions default)
MANAGED_ACCOUNTS = ("default",)


def namespace_terminating_error(err: BaseException) -> bool:
    """The apiserver refused a create because the namespace is being deleted (or is gone)."""
    if is_not_found(err):
        return True
    details = getattr(err, "details", None) or {}
    return any(c.get("reason") == "NamespaceTerminating" for c in details.get("causes") or [])


@register
class ServiceAccountsController(Controller):
    name = "serviceaccount-controller"
    aliases = ("serviceaccount",)
    service_account = "service-account-controller"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.namespaces = self.informer("v1", "namespaces")
        self.namespaces.add_handler(self.enqueue, lambda old, new: self.enqueue(new), None)
        self.accounts = self.informer("v1", "serviceaccounts")
        self.accounts.add_handler(None, None, self._account_deleted)
        self.accounts_api = self.client.resource("v1", "serviceaccounts")

    def _account_deleted(self, item: Any) -> None:
        sa = deleted_object(item)
        meta = sa.get("metadata") or {}
        if meta.get("name") in MANAGED_ACCOUNTS and meta.get("namespace"):
            self.queue.add(meta["namespace"])

    async def sync(self, key: str) -> None:
        _, name = split_key(key)
        ns = self.namespaces.store.get(name)
        if ns is None or (ns.get("status") or {}).get("phase", "Active") != "Active":
            return  # gone or terminating: nothing may be created in it
        for account in MANAGED_ACCOUNTS:
            if self.accounts.store.get(f"{name}/{account}") is not None:
                continue
            try:
                await self.accounts_api.create(
                    {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": account, "namespace": name}},
                    name)
            except Exception as e:
                if is_already_exists(e) or namespace_terminating_error(e):
                    continue
                raise
