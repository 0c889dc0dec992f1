"""Cluster DNS for real: the addon installed through the API (admin), the DNS process with its
own identity (kube-system/coredns) serving on the test bridge's gateway and publishing itself
as the kube-dns endpoint, kube-proxy (iptables mode) DNATing 10.96.0.10:53 to it, and a "pod"
(a netns whose resolv.conf says what the kubelet writes: nameserver 10.96.0.10, the search
path, ndots:5) resolving names with the system resolver and reaching the service.

Needs root; shares the kube-proxy e2e lock and fixtures (tests/e2e/test_proxy_daemon.py).
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from dns.launch import install_addon_sync, write_dns_kubeconfig
from minictl.components import component_env, free_port
from tests.conftest import wait_for
from tests.e2e.netns_hosts import HTTP_PORT
from tests.e2e.test_proxy_daemon import REPO, exclusive_proxy_cluster

pytestmark = pytest.mark.e2e

CLUSTER_DNS = "10.96.0.10"
RESOLV_CONF = (
    "search default.svc.cluster.local svc.cluster.local cluster.local\n"
    f"nameserver {CLUSTER_DNS}\n"
    "options ndots:5\n"
)

# Runs inside the pod netns: queries through 10.96.0.10 with dnslib, prints JSON.
QUERY_CODE = r"""
import json, socket, struct, sys
from dnslib import DNSRecord
out = []
for spec in sys.argv[1:]:
    proto, name, qtype = spec.split(",")
    q = DNSRecord.question(name, qtype).pack()
    if proto == "udp":
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(3)
        s.sendto(q, ("10.96.0.10", 53))
        data = s.recv(65535)
    else:
        s = socket.create_connection(("10.96.0.10", 53), timeout=3)
        s.sendall(struct.pack("!H", len(q)) + q)
        n = struct.unpack("!H", s.recv(2))[0]
        data = b""
        while len(data) < n:
            data += s.recv(n - len(data))
    r = DNSRecord.parse(data)
    out.append({"rcode": r.header.rcode, "answers": sorted(str(rr.rdata) for rr in r.rr),
                "additional": sorted(str(rr.rdata) for rr in r.ar)})
print(json.dumps(out))
"""

# Runs inside the pod netns: the system resolver (glibc, resolv.conf) then HTTP to the name.
RESOLVE_CODE = r"""
import json, socket, sys
sys.path.insert(0, sys.argv[1])
from tests.e2e.netns_hosts import http_get
out = {}
for name in sys.argv[3:]:
    ip = socket.gethostbyname(name)
    out[name] = [ip, http_get(ip, int(sys.argv[2]))]
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def dns_cluster(control_plane):
    gen = exclusive_proxy_cluster(control_plane, "iptables", "mkn", ("h1", "h2", "c1"))
    cluster = next(gen)
    netns_dir = Path("/etc/netns") / cluster.net.hosts["c1"].netns
    created_etc_netns = not Path("/etc/netns").exists()
    dns_proc = None
    try:
        created = install_addon_sync(control_plane.kubeconfig)
        assert "Service/kube-dns" in created
        kubeconfig = write_dns_kubeconfig(control_plane.cfg)
        health = free_port()
        log = open(cluster.data / "dns.log", "ab")
        dns_proc = subprocess.Popen(
            [sys.executable, "-m", "dns", "--kubeconfig", str(kubeconfig), "--node-name", "testnode",
             "--endpoint-address", cluster.net.gateway, "--health-bind-address", f"127.0.0.1:{health}"],
            stdout=log, stderr=subprocess.STDOUT, env=component_env(), start_new_session=True, cwd=REPO,
        )
        log.close()
        netns_dir.mkdir(parents=True, exist_ok=True)
        (netns_dir / "resolv.conf").write_text(RESOLV_CONF)
        cluster.dns_proc = dns_proc
        cluster.dns_health = health
        yield cluster
    finally:
        if dns_proc is not None and dns_proc.poll() is None:
            dns_proc.send_signal(signal.SIGTERM)
            try:
                dns_proc.wait(15)
            except subprocess.TimeoutExpired:
                dns_proc.kill()
                dns_proc.wait(5)
        shutil.rmtree(netns_dir, ignore_errors=True)
        if created_etc_netns:
            shutil.rmtree("/etc/netns", ignore_errors=True)
        for name in ("web", "db"):
            cluster.api.delete(f"/api/v1/namespaces/default/services/{name}")
            cluster.api.delete(f"/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/{name}-manual")
        cluster.api.delete("/api/v1/namespaces/kube-system/services/kube-dns")
        for _ in gen:  # kube-proxy --cleanup and the leftover checks
            pass


def in_pod(cluster, code: str, *args: str) -> object:
    out = cluster.net.hosts["c1"].exec(sys.executable, "-c", code, *args, check=False)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def put_default_slice(cluster, service: str, endpoints: list[dict]) -> None:
    saved = cluster.namespace
    cluster.namespace = "default"
    try:
        cluster.put_slice(service, [], [{"name": "http", "port": HTTP_PORT, "protocol": "TCP"}])
        base = "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices"
        current = cluster.api.get(f"{base}/{service}-manual").json()
        current["endpoints"] = endpoints
        r = cluster.api.put(f"{base}/{service}-manual", json=current)
        assert r.status_code == 200, r.text
    finally:
        cluster.namespace = saved


@pytest.fixture(scope="module")
def services(dns_cluster):
    c = dns_cluster
    h = c.net.hosts
    web = c.api.post("/api/v1/namespaces/default/services", json={
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default"},
        "spec": {"ports": [{"name": "http", "port": 80, "targetPort": HTTP_PORT, "protocol": "TCP"}]},
    })
    assert web.status_code == 201, web.text
    db = c.api.post("/api/v1/namespaces/default/services", json={
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "db", "namespace": "default"},
        "spec": {"clusterIP": "None", "ports": [{"name": "http", "port": HTTP_PORT, "protocol": "TCP"}]},
    })
    assert db.status_code == 201, db.text
    put_default_slice(c, "web", [{"addresses": [h["h1"].ip], "conditions": {"ready": True}},
                                 {"addresses": [h["h2"].ip], "conditions": {"ready": True}}])
    put_default_slice(c, "db", [{"addresses": [h["h1"].ip], "hostname": "db-0", "conditions": {"ready": True}},
                                {"addresses": [h["h2"].ip], "conditions": {"ready": True}}])

    def dns_answers() -> bool:
        result = in_pod(c, QUERY_CODE, "udp,web.default.svc.cluster.local,A")
        return result[0]["answers"] == [web.json()["spec"]["clusterIP"]]

    wait_for(dns_answers, 30, 0.2, "the pod to resolve web through 10.96.0.10")

    def proxied() -> bool:  # kube-proxy syncs on its own schedule: wait for web's endpoints too
        rules = subprocess.run(["iptables-save", "-t", "nat"], capture_output=True, text=True).stdout
        # web's own DNAT rules (other modules' services may point at the same host addresses)
        web_rules = [line for line in rules.splitlines() if "default/web:http" in line]
        return all(any(f"--to-destination {h[n].ip}:{HTTP_PORT}" in line for line in web_rules) for n in ("h1", "h2"))

    wait_for(proxied, 30, 0.1, "kube-proxy to program web's endpoints")
    return {"web": web.json()["spec"]["clusterIP"]}


def test_kube_dns_service_and_published_endpoint(dns_cluster):
    c = dns_cluster
    svc = c.api.get("/api/v1/namespaces/kube-system/services/kube-dns").json()
    assert svc["spec"]["clusterIP"] == CLUSTER_DNS
    slc = wait_for(lambda: (r := c.api.get(
        "/apis/discovery.k8s.io/v1/namespaces/kube-system/endpointslices/kube-dns-testnode")).status_code == 200
        and r.json(), 20, 0.1, "the kube-dns endpoint slice")
    assert slc["endpoints"][0]["addresses"] == [c.net.gateway]
    assert {p["name"] for p in slc["ports"]} == {"dns", "dns-tcp"}


def test_pod_resolves_full_name_and_search_path_and_reaches_it(dns_cluster, services):
    result = in_pod(dns_cluster, RESOLVE_CODE, str(REPO), "80", "web.default.svc.cluster.local", "web")
    for name in ("web.default.svc.cluster.local", "web"):
        ip, answer = result[name]
        assert ip == services["web"], result
        assert answer in {"h1", "h2"}, result


def test_record_types_through_the_service_ip(dns_cluster, services):
    h = dns_cluster.net.hosts
    vip = services["web"]
    reverse = ".".join(reversed(vip.split("."))) + ".in-addr.arpa"
    results = in_pod(
        dns_cluster, QUERY_CODE,
        "udp,_http._tcp.web.default.svc.cluster.local,SRV",
        "tcp,db.default.svc.cluster.local,A",
        "udp,db-0.db.default.svc.cluster.local,A",
        "udp,_http._tcp.db.default.svc.cluster.local,SRV",
        f"udp,{h['c1'].ip.replace('.', '-')}.default.pod.cluster.local,A",
        f"udp,{reverse},PTR",
        "udp,web.default.svc.cluster.local,AAAA",
        "udp,nope.default.svc.cluster.local,A",
        "udp,example.com,A",
    )
    srv, headless, db0, db_srv, pod, ptr, aaaa, missing, outside = results
    assert srv["answers"] == ["0 100 80 web.default.svc.cluster.local."]
    assert headless["answers"] == sorted([h["h1"].ip, h["h2"].ip])  # over TCP (dns-tcp port)
    assert db0["answers"] == [h["h1"].ip]
    assert db_srv["answers"] == sorted([
        f"0 50 {HTTP_PORT} db-0.db.default.svc.cluster.local.",
        f"0 50 {HTTP_PORT} {h['h2'].ip.replace('.', '-')}.db.default.svc.cluster.local.",
    ])
    assert sorted(db_srv["additional"]) == sorted([h["h1"].ip, h["h2"].ip])
    assert pod["answers"] == [h["c1"].ip]
    assert ptr["answers"] == ["web.default.svc.cluster.local."]
    assert aaaa["rcode"] == 0 and aaaa["answers"] == []
    assert missing["rcode"] == 3  # NXDOMAIN
    assert outside["rcode"] == 3 and outside["answers"] == []  # no upstream configured: nothing forwarded


def test_dns_metrics_and_readiness(dns_cluster, services):
    import httpx

    base = f"http://127.0.0.1:{dns_cluster.dns_health}"
    assert httpx.get(f"{base}/readyz", timeout=5).status_code == 200
    metrics = httpx.get(f"{base}/metrics", timeout=5).text
    assert 'coredns_dns_requests_total{proto="udp",type="A"}' in metrics
    assert 'coredns_dns_requests_total{proto="tcp",type="A"}' in metrics


def test_stopping_dns_withdraws_its_endpoint(dns_cluster, services):
    c = dns_cluster
    c.dns_proc.send_signal(signal.SIGTERM)
    assert c.dns_proc.wait(15) == 0
    slices = "/apis/discovery.k8s.io/v1/namespaces/kube-system/endpointslices/kube-dns-testnode"
    wait_for(lambda: c.api.get(slices).status_code == 404, 10, 0.1, "the kube-dns slice to be deleted")
    # kube-proxy now rejects DNS at once (no endpoints) instead of blackholing it.
    errors: list[str] = []

    def refused() -> bool:
        out = c.net.hosts["c1"].exec(sys.executable, "-c", QUERY_CODE, "tcp,web.default.svc.cluster.local,A",
                                     check=False)
        errors.append(out.stderr[-300:] or out.stdout)
        return "ConnectionRefusedError" in out.stderr

    try:
        wait_for(refused, 10, 0.2, "a refused DNS connection")
    except AssertionError:
        raise AssertionError(f"DNS was not refused: {errors[-3:]}") from None
