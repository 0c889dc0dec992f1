"""Per-controller API identities (upstream's SAControllerClientBuilder).

With `--use-service-account-credentials` (kubeadm's default), every controller talks to the
apiserver as its own ServiceAccount `kube-system/<name>` (e.g. `replicaset-controller`), so it
gets exactly its `system:controller:<name>` role. The controller-manager's own identity only
needs to create those ServiceAccounts and ask for their tokens (TokenRequest, one hour, renewed
at 80% of the lifetime); informers keep using the controller-manager's own client, which may
list and watch everything. Without the flag every controller shares the root client.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import ssl
from dataclasses import replace as dc_replace
from pathlib import Path

from apimachinery.meta import parse_time
from certs.kubeconfig import default_kubeconfig_path, load_kubeconfig
from client import APIClient, ClientConfig, is_already_exists, is_not_found
from client.config import SERVICE_ACCOUNT_DIR, in_cluster_available

log = logging.getLogger("controller_manager.clients")

NAMESPACE = "kube-system"
TOKEN_SECONDS = 3600
REFRESH_FRACTION = 0.8


class RenewableToken:
    """A bearer token the builder replaces before it expires (ClientConfig.token_source)."""

    def __init__(self, token: str) -> None:
        self.set(token)

    def set(self, token: str) -> None:
        self._headers = {"Authorization": f"Bearer {token}"}

    def headers(self) -> dict[str, str]:
        return self._headers


def tls_without_client_cert(kubeconfig: str | Path | None) -> ssl.SSLContext | None:
    """The kubeconfig's server trust (its CA) without presenting its client certificate."""
    path = Path(kubeconfig) if kubeconfig else None
    if path is None and not default_kubeconfig_path().is_file() and in_cluster_available():
        return ssl.create_default_context(cafile=str(SERVICE_ACCOUNT_DIR / "ca.crt"))
    info = load_kubeconfig(path or default_kubeconfig_path())
    if not info.server.startswith("https:"):
        return None
    return dc_replace(info, client_cert_pem=None, client_key_pem=None, token=None).ssl_context()


class ClientBuilder:
    """Hands out one APIClient per controller identity (the root one unless SA credentials are on)."""

    def __init__(self, root: APIClient, use_service_account_credentials: bool = False,
                 tls: ssl.SSLContext | None = None) -> None:
        self.root = root
        self.enabled = use_service_account_credentials
        self.tls = tls
        self._clients: dict[str, APIClient] = {}
        self._tokens: dict[str, tuple[RenewableToken, float]] = {}  # name → (token, renew at, loop time)
        self._renewer: asyncio.Task[None] | None = None

    def get(self, name: str | None) -> APIClient:
        """The client prepared for `name` (root for None or when SA credentials are off)."""
        if not self.enabled or not name:
            return self.root
        try:
            return self._clients[name]
        except KeyError:
            raise RuntimeError(f"no client prepared for service account {name!r}") from None

    async def prepare(self, names: list[str | None]) -> None:
        if not self.enabled:
            return
        for name in dict.fromkeys(n for n in names if n):
            if name not in self._clients:
                await self._prepare(name)
        if self._renewer is None and self._clients:
            self._renewer = asyncio.create_task(self._renew_loop(), name="controller token renewal")

    async def _ensure_service_account(self, name: str) -> None:
        sas = self.root.resource("v1", "serviceaccounts")
        try:
            await sas.get(name, NAMESPACE)
            return
        except Exception as e:
            if not is_not_found(e):
                raise
        try:
            await sas.create({"apiVersion": "v1", "kind": "ServiceAccount",
                              "metadata": {"name": name, "namespace": NAMESPACE}}, NAMESPACE)
        except Exception as e:
            if not is_already_exists(e):
                raise

    async def _request_token(self, name: str) -> tuple[str, float]:
        """A fresh token for kube-system/<name> and the loop time at which to renew it."""
        await self._ensure_service_account(name)
        sas = self.root.resource("v1", "serviceaccounts")
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                "spec": {"expirationSeconds": TOKEN_SECONDS}}
        tr = await sas.create_subresource(name, "token", body, NAMESPACE)
        status = tr.get("status") or {}
        lifetime = float(TOKEN_SECONDS)
        if status.get("expirationTimestamp"):
            left = (parse_time(status["expirationTimestamp"]) - dt.datetime.now(dt.UTC)).total_seconds()
            lifetime = max(60.0, left)
        return status["token"], asyncio.get_running_loop().time() + lifetime * REFRESH_FRACTION

    async def _prepare(self, name: str) -> None:
        token, renew_at = await self._request_token(name)
        source = RenewableToken(token)
        base: ClientConfig = self.root.config
        config = dc_replace(base, ssl_context=self.tls, token_source=source,
                            user_agent=f"{base.user_agent}/{name}")
        client = APIClient(config)
        await client.__aenter__()
        self._clients[name] = client
        self._tokens[name] = (source, renew_at)

    async def _renew_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            now = loop.time()
            due = min((at for _, at in self._tokens.values()), default=now + 60.0)
            await asyncio.sleep(max(1.0, due - now))
            for name, (source, at) in list(self._tokens.items()):
                if at > loop.time():
                    continue
                try:
                    token, renew_at = await self._request_token(name)
                except Exception as e:  # keep the old token (still valid a while) and retry soon
                    log.warning("renewing the token of %s failed: %s", name, e)
                    self._tokens[name] = (source, loop.time() + 10.0)
                    continue
                source.set(token)
                self._tokens[name] = (source, renew_at)

    async def close(self) -> None:
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewer
            self._renewer = None
        for client in self._clients.values():
            await client.close()
        self._clients.clear()
        self._tokens.clear()
