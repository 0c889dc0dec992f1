"""The LoadBalancer controller: address pool, allocation, release and status writes (fake API)."""

import pytest

from kube_proxy.lbcontroller import AddressPool, LoadBalancerController, PoolExhausted, wants_load_balancer


def test_pool_skips_network_and_broadcast_and_allocates_lowest_free():
    pool = AddressPool(["198.18.255.0/30"])
    assert not pool.contains("198.18.255.0") and not pool.contains("198.18.255.3")
    assert pool.contains("198.18.255.2") and not pool.contains("10.0.0.1") and not pool.contains("junk")
    assert pool.allocate("ns/a") == "198.18.255.1"
    assert pool.allocate("ns/a") == "198.18.255.1"  # stable
    assert pool.allocate("ns/b") == "198.18.255.2"
    with pytest.raises(PoolExhausted):
        pool.allocate("ns/c")
    assert pool.release("ns/a") == "198.18.255.1"
    assert pool.allocate("ns/c") == "198.18.255.1"


def test_pool_honours_requested_address_when_free():
    pool = AddressPool(["198.18.255.0/24"])
    assert pool.allocate("ns/a", preferred="198.18.255.77") == "198.18.255.77"
    assert pool.allocate("ns/b", preferred="198.18.255.77") == "198.18.255.1"  # taken: next free
    assert pool.allocate("ns/c", preferred="10.1.2.3") == "198.18.255.2"  # outside: ignored
    assert not pool.claim("ns/d", "198.18.255.77")


def svc(name, svc_type="LoadBalancer", ingress=None, created="2026-01-01T00:00:00Z", **spec):
    obj = {"apiVersion": "v1", "kind": "Service",
           "metadata": {"name": name, "namespace": "default", "resourceVersion": "1", "creationTimestamp": created},
           "spec": {"type": svc_type, "ports": [{"port": 80}], **spec}, "status": {"loadBalancer": {}}}
    if ingress:
        obj["status"]["loadBalancer"] = {"ingress": [{"ip": ingress, "ipMode": "VIP"}]}
    return obj


def test_only_classless_load_balancers_are_ours():
    assert wants_load_balancer(svc("a"))
    assert not wants_load_balancer(svc("a", "NodePort"))
    assert not wants_load_balancer(svc("a", loadBalancerClass="example.com/lb"))
    assert wants_load_balancer(svc("a", loadBalancerClass="example.com/lb"), "example.com/lb")


class FakeStore:
    def __init__(self):
        self.objects = {}

    def get(self, key):
        return self.objects.get(key)

    def list(self):
        return list(self.objects.values())


class FakeServices:
    def __init__(self, store):
        self.store = store
        self.writes = []

    async def update_status(self, obj):
        self.writes.append((obj["metadata"]["name"], obj["status"]["loadBalancer"]))
        self.store.objects[f"default/{obj['metadata']['name']}"] = obj
        return obj


class FakeRecorder:
    def __init__(self):
        self.events = []

    def event(self, obj, type, reason, message):
        self.events.append(reason)


def controller(pool="198.18.255.0/29"):
    c = LoadBalancerController.__new__(LoadBalancerController)
    c.pool = AddressPool([pool])
    c.load_balancer_class = None
    store = FakeStore()
    c.informer = type("Informer", (), {"store": store})()
    c.services = FakeServices(store)
    c.recorder = FakeRecorder()
    return c, store


async def test_assigns_and_writes_status_then_is_idempotent():
    c, store = controller()
    store.objects["default/a"] = svc("a")
    await c.sync("default/a")
    assert c.services.writes == [("a", {"ingress": [{"ip": "198.18.255.1", "ipMode": "VIP"}]})]
    await c.sync("default/a")
    assert len(c.services.writes) == 1  # nothing to change
    assert "EnsuredLoadBalancer" in c.recorder.events


async def test_type_change_clears_status_and_releases():
    c, store = controller()
    store.objects["default/a"] = svc("a")
    await c.sync("default/a")
    store.objects["default/a"] = svc("a", "ClusterIP", ingress="198.18.255.1")
    await c.sync("default/a")
    assert c.services.writes[-1] == ("a", {})
    assert c.pool.holder("default/a") is None


async def test_deleted_service_releases_its_address():
    c, store = controller()
    store.objects["default/a"] = svc("a")
    await c.sync("default/a")
    del store.objects["default/a"]
    await c.sync("default/a")
    store.objects["default/b"] = svc("b")
    await c.sync("default/b")
    assert c.services.writes[-1] == ("b", {"ingress": [{"ip": "198.18.255.1", "ipMode": "VIP"}]})


async def test_restart_keeps_addresses_and_older_service_wins_a_conflict():
    c, store = controller()
    store.objects["default/new"] = svc("new", ingress="198.18.255.3", created="2026-02-01T00:00:00Z")
    store.objects["default/old"] = svc("old", ingress="198.18.255.3", created="2026-01-01T00:00:00Z")
    store.objects["default/other"] = svc("other", ingress="198.18.255.5")
    c._rebuild()
    assert c.pool.holder("default/old") == "198.18.255.3"
    assert c.pool.holder("default/other") == "198.18.255.5"
    await c.sync("default/new")
    assert c.services.writes == [("new", {"ingress": [{"ip": "198.18.255.1", "ipMode": "VIP"}]})]


async def test_foreign_status_of_a_non_lb_service_is_left_alone():
    c, store = controller()
    store.objects["default/x"] = svc("x", "ClusterIP", ingress="203.0.113.7")
    await c.sync("default/x")
    assert c.services.writes == []


async def test_exhausted_pool_records_a_warning_and_retries():
    c, store = controller("198.18.255.0/30")
    for name in ("a", "b", "c"):
        store.objects[f"default/{name}"] = svc(name)
    await c.sync("default/a")
    await c.sync("default/b")
    with pytest.raises(PoolExhausted):
        await c.sync("default/c")  # run_workers requeues it with backoff
    assert "SyncLoadBalancerFailed" in c.recorder.events
