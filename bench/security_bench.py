"""The cost of the security stages (issue #4): authentication, authorization and admission.

Same run, same machine, two clusters:

- **foundation**: `--authorization-mode AlwaysAllow` and only the foundation's admission
  plugins (NamespaceLifecycle, Priority, DefaultTolerationSeconds) — what the foundation
  benchmark measured;
- **all stages**: the defaults (`Node,RBAC`, every admission plugin), requests made by a
  ServiceAccount token bound to `edit` (JWT check, RBAC evaluation), in a namespace with a
  LimitRange, a ResourceQuota (charged with a compare-and-swap on every create) and
  `pod-security.kubernetes.io/enforce: baseline`.

Measured with the foundation benchmark's method (wrk, one connection, 20 creates/s, 1 KiB
ConfigMaps), plus pods (ServiceAccount token projection, LimitRanger, PodSecurity, quota),
throughput at 32 connections, and the in-process cost of one RBAC decision and one token
check.

    .venv/bin/python -m bench security
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import orjson

from bench.apiserver_bench import CREATE_LUA, PACED_CREATE_LUA
from bench.harness import BenchCluster, wrk

FOUNDATION_ARGS = [
    "--authorization-mode", "AlwaysAllow",
    "--disable-admission-plugins",
    "LimitRanger,ServiceAccount,NodeRestriction,TaintNodesByCondition,PodSecurity,ResourceQuota",
]
NS = "bench"
NS_NO_QUOTA = "bench-noquota"

POD_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"apiVersion":"v1","kind":"Pod","metadata":{"generateName":"bench-"},"spec":{"containers":[{"name":"c","image":"busybox","resources":{"requests":{"cpu":"10m","memory":"16Mi"}}}]}}'
function delay() return 50 end
"""


def _ensure_default_sa(c: httpx.Client, ns: str) -> None:
    """The bench runs no controller-manager, so the namespace's default ServiceAccount (which
    ServiceAccount admission requires of pods) is created here."""
    r = c.post(f"/api/v1/namespaces/{ns}/serviceaccounts", json={"metadata": {"name": "default"}})
    if r.status_code != 409:
        r.raise_for_status()


def _prepare(cluster: BenchCluster, secure: bool) -> str:
    """The bench namespace (with every admission input when `secure`) → the token to send."""
    with cluster.client() as c:
        c.post("/api/v1/namespaces", json={"metadata": {"name": NS, "labels": {
            "pod-security.kubernetes.io/enforce": "baseline"}}}).raise_for_status()
        _ensure_default_sa(c, NS)
        if not secure:
            return cluster.token
        c.post(f"/api/v1/namespaces/{NS}/limitranges", json={"metadata": {"name": "lr"}, "spec": {"limits": [
            {"type": "Container", "default": {"cpu": "100m", "memory": "64Mi"}, "max": {"cpu": "2"}}]}}).raise_for_status()
        c.post(f"/api/v1/namespaces/{NS}/resourcequotas", json={"metadata": {"name": "q"}, "spec": {"hard": {
            "pods": "100000", "requests.cpu": "10000", "count/configmaps": "1000000"}}}).raise_for_status()
        c.post(f"/api/v1/namespaces/{NS}/serviceaccounts", json={"metadata": {"name": "bench"}}).raise_for_status()
        c.post(f"/apis/rbac.authorization.k8s.io/v1/namespaces/{NS}/rolebindings", json={
            "metadata": {"name": "bench-edit"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
            "subjects": [{"kind": "ServiceAccount", "name": "bench", "namespace": NS}]}).raise_for_status()
        # the same identity and policy in a namespace without a quota: what the quota charge costs
        c.post("/api/v1/namespaces", json={"metadata": {"name": NS_NO_QUOTA, "labels": {
            "pod-security.kubernetes.io/enforce": "baseline"}}}).raise_for_status()
        c.post(f"/apis/rbac.authorization.k8s.io/v1/namespaces/{NS_NO_QUOTA}/rolebindings", json={
            "metadata": {"name": "bench-edit"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
            "subjects": [{"kind": "ServiceAccount", "name": "bench", "namespace": NS}]}).raise_for_status()
        _ensure_default_sa(c, NS_NO_QUOTA)
        r = c.post(f"/api/v1/namespaces/{NS}/serviceaccounts/bench/token", json={"spec": {"expirationSeconds": 7200}})
        r.raise_for_status()
        token = r.json()["status"]["token"]
        while c.get(f"/api/v1/namespaces/{NS}/resourcequotas/q").json().get("status", {}).get("used") is None:
            time.sleep(0.05)
    return token


def _measure(cluster: BenchCluster, token: str, duration: int, ns: str = NS, throughput: bool = True) -> dict[str, Any]:
    auth = {"Authorization": f"Bearer {token}"}
    base = f"{cluster.url}/api/v1/namespaces/{ns}"
    runs = {
        "configmaps": wrk(f"{base}/configmaps", PACED_CREATE_LUA, connections=1, threads=1, duration=duration, headers=auth),
        "pods": wrk(f"{base}/pods", POD_LUA, connections=1, threads=1, duration=duration, headers=auth),
    }
    if throughput:
        runs["throughput"] = wrk(f"{base}/configmaps", CREATE_LUA, connections=32, duration=duration, headers=auth,
                                 latency=False)
    for name, res in runs.items():
        if res["errors"] or not res["requests"]:
            raise RuntimeError(f"{name}: {res['errors']} errors of {res['requests']} requests:\n{res['raw']}")
    cm, pod = runs["configmaps"], runs["pods"]
    out = {"cm_p50_ms": cm.get("p50_ms"), "cm_p99_ms": cm.get("p99_ms"),
           "pod_p50_ms": pod.get("p50_ms"), "pod_p99_ms": pod.get("p99_ms")}
    if throughput:
        out["creates_per_s_c32"] = runs["throughput"]["rps"]
    return out


def in_process(iterations: int = 20_000) -> dict[str, float]:
    """Microseconds per RBAC decision (bootstrap policy loaded) and per ServiceAccount token check."""
    from cryptography.hazmat.primitives.asymmetric import rsa

    from apiserver.authn import UserInfo
    from apiserver.authn.jwt import Signer, Verifier
    from apiserver.authn.serviceaccount import ServiceAccountAuthenticator, TokenIssuer
    from apiserver.authz import AuthzAttributes
    from apiserver.authz.rbac import RBACAuthorizer, RBACIndex
    from apiserver.rbac_bootstrap import policy
    from apiserver.watchcache import Entry

    class Cache:
        def __init__(self) -> None:
            self.objects: dict[str, Entry] = {}
            self.listeners: list[Any] = []
            self.ready = asyncio.Event()
            self.ready.set()

    class Server:
        caches = {p: Cache() for p in ("roles", "rolebindings", "clusterroles", "clusterrolebindings")}

        def cache_for(self, group: str, plural: str) -> Cache:
            return self.caches[plural]

    server = Server()
    objs = [*policy(), ("rolebindings", {"metadata": {"name": "b", "namespace": NS}, "roleRef": {
        "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
        "subjects": [{"kind": "ServiceAccount", "name": "bench", "namespace": NS}]})]
    for plural, obj in objs:
        meta = obj["metadata"]
        server.caches[plural].objects[f"{meta.get('namespace', '')}/{meta['name']}"] = Entry(
            orjson.dumps(obj), 1, meta.get("namespace", ""), meta["name"], meta.get("labels") or {}, {})
    server.rbac = RBACIndex(server)  # type: ignore[attr-defined]
    authz = RBACAuthorizer(server)  # type: ignore[arg-type]
    user = UserInfo(f"system:serviceaccount:{NS}:bench", "uid", ("system:serviceaccounts",
                                                                   f"system:serviceaccounts:{NS}", "system:authenticated"))
    allowed = AuthzAttributes(user, "create", True, "", "v1", NS, "configmaps")
    denied = AuthzAttributes(user, "create", True, "", "v1", "elsewhere", "configmaps")

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    sa = {"metadata": {"name": "bench", "namespace": NS, "uid": "uid"}}
    issuer = TokenIssuer(Signer(key), "https://kubernetes.default.svc.cluster.local")

    async def getter(group: str, plural: str, ns: str, name: str) -> dict[str, Any] | None:
        return sa

    auth = ServiceAccountAuthenticator(Verifier([key.public_key()]), [issuer.issuer], [issuer.issuer], getter)
    tokens = [issuer.issue(sa, [issuer.issuer], 3600).token for _ in range(2000)]

    async def measure() -> dict[str, float]:
        assert (await authz.authorize(allowed))[0] == "allow"
        t = time.perf_counter()
        for _ in range(iterations):
            await authz.authorize(allowed)
        allow_us = (time.perf_counter() - t) / iterations * 1e6
        t = time.perf_counter()
        for _ in range(iterations):
            await authz.authorize(denied)
        deny_us = (time.perf_counter() - t) / iterations * 1e6
        server.rbac._dirty = True  # type: ignore[attr-defined]
        t = time.perf_counter()
        server.rbac.resolve(user, NS)  # type: ignore[attr-defined]
        rebuild_ms = (time.perf_counter() - t) * 1000
        t = time.perf_counter()
        for tok in tokens:
            await auth.authenticate_token(tok, None)
        first_us = (time.perf_counter() - t) / len(tokens) * 1e6
        t = time.perf_counter()
        for _ in range(5):
            for tok in tokens:
                await auth.authenticate_token(tok, None)
        cached_us = (time.perf_counter() - t) / (5 * len(tokens)) * 1e6
        return {"rbac_allow_us": allow_us, "rbac_deny_us": deny_us, "rbac_rebuild_ms": rebuild_ms,
                "sa_token_first_us": first_us, "sa_token_cached_us": cached_us}

    return asyncio.run(measure())


def run(duration: int = 15) -> dict:
    results: dict[str, Any] = {"in_process": in_process()}
    with BenchCluster(FOUNDATION_ARGS) as cluster:
        results["foundation"] = _measure(cluster, _prepare(cluster, secure=False), duration)
    with BenchCluster() as cluster:
        token = _prepare(cluster, secure=True)
        results["all_stages"] = _measure(cluster, token, duration)
        results["all_stages_no_quota"] = _measure(cluster, token, duration, NS_NO_QUOTA, throughput=False)
    return results


def report(r: dict) -> str:
    f, s, n, p = r["foundation"], r["all_stages"], r["all_stages_no_quota"], r["in_process"]

    def row(label: str, a: str, b: str) -> str:
        return (f"| {label} | {f[a]:.2f} / {f[b]:.2f} ms | {n[a]:.2f} / {n[b]:.2f} ms | {s[a]:.2f} / {s[b]:.2f} ms | "
                f"{s[a] - f[a]:+.2f} / {s[b] - f[b]:+.2f} ms |")

    return "\n".join([
        "| measure (wrk, c=1, 20/s) | foundation stages, p50 / p99 | all stages, no quota | all stages + quota | cost (all − foundation) |",
        "|---|---|---|---|---|",
        row("ConfigMap create (1 KiB)", "cm_p50_ms", "cm_p99_ms"),
        row("Pod create", "pod_p50_ms", "pod_p99_ms"),
        f"| ConfigMap creates/s, c=32 | {f['creates_per_s_c32']:.0f} | | {s['creates_per_s_c32']:.0f} | "
        f"{(s['creates_per_s_c32'] / f['creates_per_s_c32'] - 1) * 100:+.0f}% |",
        "",
        "| in-process | µs |",
        "|---|---|",
        f"| RBAC decision, allowed (bootstrap policy + 1 binding) | {p['rbac_allow_us']:.2f} |",
        f"| RBAC decision, denied | {p['rbac_deny_us']:.2f} |",
        f"| RBAC index rebuild after a policy change | {p['rbac_rebuild_ms'] * 1000:.0f} |",
        f"| ServiceAccount token, first sight (RS256 verify) | {p['sa_token_first_us']:.1f} |",
        f"| ServiceAccount token, seen before | {p['sa_token_cached_us']:.1f} |",
    ])


if __name__ == "__main__":
    res = run()
    print(orjson.dumps(res, option=orjson.OPT_INDENT_2).decode())
    print(report(res))
