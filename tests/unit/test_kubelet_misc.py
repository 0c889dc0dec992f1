"""Flags, back-off, CNI config and filter rules, static pods, eviction ranking, kubelet API auth."""

import asyncio
import json

import pytest

from kubelet import naming, network
from kubelet.auth import KubeletAuth, User, subresource_for, user_from_peercert, verb_for
from kubelet.backoff import Backoff
from kubelet.config import (
    parse_duration,
    parse_eviction_thresholds,
    parse_labels,
    parse_resource_list,
    parse_taints,
)
from kubelet.eviction import Observation, crossed, rank_for_eviction
from kubelet.staticpods import StaticPodSource, is_mirror_pod, mirror_pod, static_pod_from_manifest


def test_flag_parsing():
    hard = parse_eviction_thresholds("memory.available<100Mi,nodefs.available<10%")
    assert hard[0].signal == "memory.available" and hard[0].quantity == 100 << 20
    assert hard[1].percentage == pytest.approx(0.10) and hard[1].value(1000) == 100
    with pytest.raises(ValueError):
        parse_eviction_thresholds("cpu.available<1")
    with pytest.raises(ValueError):
        parse_eviction_thresholds("memory.available>1")
    assert parse_duration("1m30s") == 90 and parse_duration("250ms") == 0.25 and parse_duration("7") == 7
    with pytest.raises(ValueError):
        parse_duration("5x")
    assert parse_resource_list("cpu=100m,memory=1Gi") == {"cpu": 100, "memory": 1 << 30}
    assert parse_labels("a=1,b=") == {"a": "1", "b": ""}
    assert parse_taints("k=v:NoSchedule,x:NoExecute") == [
        {"key": "k", "value": "v", "effect": "NoSchedule"}, {"key": "x", "effect": "NoExecute"}]
    with pytest.raises(ValueError):
        parse_taints("k=v")


def test_crash_loop_back_off_doubles_and_resets():
    now = [1000.0]
    b = Backoff(10, 300, clock=lambda: now[0])
    assert b.remaining("k", now[0]) == 0  # first failure: restart at once
    assert b.next("k", now[0]) == 10
    now[0] += 1
    assert b.remaining("k", now[0]) == pytest.approx(10)  # failed right after: wait the full 10 s
    now[0] += 10
    assert b.remaining("k", now[0] - 10) == 0
    assert b.next("k", now[0]) == 20 and b.next("k", now[0]) == 40
    for _ in range(10):
        b.next("k", now[0])
    assert b.delay("k") == 300
    # a failure long after the last one (it ran > 10 min) starts over
    now[0] += 700
    assert b.next("k", now[0]) == 10
    now[0] += 4  # counted from the failure `next` recorded
    assert b.remaining_since_last("k") == pytest.approx(6) and b.remaining_since_last("other") == 0
    b.forget_prefix("k")
    assert b.delay("k") == 0 and b.remaining_since_last("k") == 0


def test_cni_config_and_rules():
    c = network.conflist("net", "br0", "10.244.3.0/24", "/var/ipam")
    assert c["plugins"][0]["ipam"]["ranges"] == [[{"subnet": "10.244.3.0/24"}]]
    assert c["plugins"][0]["bridge"] == "br0" and c["plugins"][1]["type"] == "portmap"
    rules = network.desired_rules("10.244.3.0/24", "10.244.0.0/16", "eth0", True)
    assert ["-d", "10.244.0.0/16", "-o", "eth0"] == rules.guard[1][:4]  # [0]: the peer-route exemption
    assert ["-s", "10.244.3.0/24", "-o", "eth0"] == rules.guard[2][:4]
    assert network.desired_rules("10.244.3.0/24", "", None, True).guard == []
    table = "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\n" \
            "eth1\t0000A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\neth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\n"
    assert network.default_route_interface(table) == "eth0"
    assert network.chain_names("mk8s0") == ("KUBELET-FWD-mk8s0", "KUBELET-GRD-mk8s0")
    assert network._rule_line("X", ["--comment", "two words"]) == '-A X --comment "two words"'


def test_cni_config_is_written_only_when_it_changes(tmp_path):
    assert network.write_cni_config(tmp_path, "n", "b", "10.0.0.0/24", tmp_path / "ipam")
    assert not network.write_cni_config(tmp_path, "n", "b", "10.0.0.0/24", tmp_path / "ipam")
    assert network.write_cni_config(tmp_path, "n", "b", "10.0.1.0/24", tmp_path / "ipam")
    assert json.loads((tmp_path / network.CONFLIST_NAME).read_text())["name"] == "n"


MANIFEST = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "etcd"},
            "spec": {"containers": [{"name": "etcd", "image": "busybox:1"}]}}


def test_static_pods_and_their_mirrors():
    pod = static_pod_from_manifest(MANIFEST, "n1", "etcd.yaml")
    meta = pod["metadata"]
    assert meta["name"] == "etcd-n1" and meta["namespace"] == "default" and pod["spec"]["nodeName"] == "n1"
    assert meta["annotations"][naming.CONFIG_SOURCE] == "file" and meta["annotations"][naming.CONFIG_HASH] == meta["uid"]
    assert pod["spec"]["restartPolicy"] == "Always"  # defaulted like the API would
    assert static_pod_from_manifest(MANIFEST, "n1", "x")["metadata"]["uid"] == meta["uid"]  # stable
    assert static_pod_from_manifest(MANIFEST, "n2", "x")["metadata"]["uid"] != meta["uid"]
    node = {"metadata": {"name": "n1", "uid": "node-uid"}}
    mirror = mirror_pod(pod, node)
    assert is_mirror_pod(mirror) and "uid" not in mirror["metadata"] and "status" not in mirror
    assert mirror["metadata"]["ownerReferences"] == [
        {"apiVersion": "v1", "kind": "Node", "name": "n1", "uid": "node-uid", "controller": True}]
    with pytest.raises(ValueError):
        static_pod_from_manifest({"kind": "Service"}, "n1", "x")


def test_static_pod_source_scans_the_directory(tmp_path):
    changes = []
    source = StaticPodSource(str(tmp_path), "n1", 1.0, lambda: changes.append(1))
    assert not source.scan() and source.pods == {}
    (tmp_path / "etcd.json").write_text(json.dumps(MANIFEST))
    (tmp_path / "broken.yaml").write_text("kind: [")
    (tmp_path / ".hidden.yaml").write_text(json.dumps(MANIFEST))
    assert source.scan()
    assert [p["metadata"]["name"] for p in source.pods.values()] == ["etcd-n1"]
    assert not source.scan()  # unchanged files are not re-read
    (tmp_path / "etcd.json").unlink()
    assert source.scan() and source.pods == {}


def _pod(name, qos_resources=None, priority=0):
    res = qos_resources or {}
    return {"metadata": {"name": name, "uid": name},
            "spec": {"priority": priority, "containers": [{"name": "c", "resources": res}]}}


def test_eviction_ranking_and_thresholds():
    guaranteed = _pod("g", {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "1", "memory": "1Gi"}})
    burstable_small = _pod("b1", {"requests": {"memory": "100Mi"}})
    burstable_big = _pod("b2", {"requests": {"memory": "100Mi"}})
    best = _pod("be")
    usage = {"g": 900 << 20, "b1": 150 << 20, "b2": 500 << 20, "be": 10 << 20}
    order = [p["metadata"]["name"] for p in rank_for_eviction([guaranteed, burstable_small, burstable_big, best],
                                                               usage, "memory")]
    assert order == ["be", "b2", "b1", "g"]
    hard = parse_eviction_thresholds("memory.available<100Mi,nodefs.available<10%")
    obs = {"memory.available": Observation(50 << 20, 1 << 30), "nodefs.available": Observation(50, 100)}
    assert [t.signal for t, _ in crossed(hard, obs)] == ["memory.available"]


def test_kubelet_api_auth_helpers():
    assert subresource_for("/stats/summary") == "stats" and subresource_for("/metrics") == "metrics"
    assert subresource_for("/exec/ns/p/c") == "proxy" and subresource_for("/containerLogs/ns/p/c") == "proxy"
    assert verb_for("GET", "/exec/ns/p/c", websocket=True) == "create"
    assert verb_for("GET", "/containerLogs/ns/p/c", websocket=False) == "get"
    assert verb_for("POST", "/portForward/ns/p", websocket=False) == "create"
    cert = {"subject": ((("organizationName", "system:masters"),), (("commonName", "kube-apiserver-kubelet-client"),))}
    user = user_from_peercert(cert)
    assert user.name == "kube-apiserver-kubelet-client" and "system:masters" in user.groups
    assert user_from_peercert(None) is None


class _FakeAPI:
    def __init__(self):
        self.calls = []

    async def request(self, method, path, body=None, **kw):
        self.calls.append((path, body))
        if path.endswith("tokenreviews"):
            ok = body["spec"]["token"] == "good"
            return {"status": {"authenticated": ok, "user": {"username": "alice", "groups": ["dev"]} if ok else {}}}
        allowed = body["spec"]["user"] == "alice" and body["spec"]["resourceAttributes"]["subresource"] == "stats"
        return {"status": {"allowed": allowed, "reason": "" if allowed else "no"}}


def test_kubelet_auth_reviews_are_cached():
    api = _FakeAPI()
    auth = KubeletAuth(api, "n1")

    async def go():
        user = await auth.authenticate(None, "Bearer good")
        assert user == User("alice", ("dev",))
        assert await auth.authenticate(None, "Bearer bad") is None
        assert await auth.authenticate(None, "") is None
        await auth.authenticate(None, "Bearer good")
        assert (await auth.authorize(user, "get", "stats"))[0]
        assert not (await auth.authorize(user, "create", "proxy"))[0]
        await auth.authorize(user, "get", "stats")
        sar = [b for p, b in api.calls if p.endswith("subjectaccessreviews")]
        assert len(sar) == 2 and sar[0]["spec"]["resourceAttributes"]["name"] == "n1"
        assert len([p for p, _ in api.calls if p.endswith("tokenreviews")]) == 2
        anonymous = KubeletAuth(None, "n1", anonymous=True)
        assert (await anonymous.authenticate(None, "")).name == "system:anonymous"

    asyncio.run(go())
