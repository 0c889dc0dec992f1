"""QoS classes, cgroup values from requests/limits, and the pod cgroup hierarchy on a fake cgroupfs."""

from pathlib import Path

from kubelet.cgroups import CgroupManager, shares_to_weight
from kubelet.qos import (
    BEST_EFFORT,
    BURSTABLE,
    GUARANTEED,
    CgroupResources,
    container_resources,
    milli_cpu_to_quota,
    milli_cpu_to_shares,
    oom_score_adj,
    pod_cgroup_resources,
    pod_requests,
    qos_class,
)


def _c(requests=None, limits=None):
    return {"name": "c", "resources": {"requests": requests or {}, "limits": limits or {}}}


def test_qos_classes():
    assert qos_class({"containers": [_c()]}) == BEST_EFFORT
    assert qos_class({"containers": [_c({"cpu": "1", "memory": "1Gi"}, {"cpu": "1", "memory": "1Gi"})]}) == GUARANTEED
    assert qos_class({"containers": [_c({"cpu": "100m"})]}) == BURSTABLE
    assert qos_class({"containers": [_c({"cpu": "1"}, {"cpu": "2", "memory": "1Gi"})]}) == BURSTABLE
    # one container without limits makes the pod Burstable
    g = _c({"cpu": "1", "memory": "1Gi"}, {"cpu": "1", "memory": "1Gi"})
    assert qos_class({"containers": [g, _c({"memory": "1Mi"})]}) == BURSTABLE


def test_cpu_and_memory_conversions():
    assert milli_cpu_to_shares(0) == 2 and milli_cpu_to_shares(1) == 2
    assert milli_cpu_to_shares(1000) == 1024 and milli_cpu_to_shares(250) == 256
    assert milli_cpu_to_quota(0) == 0 and milli_cpu_to_quota(1) == 1000 and milli_cpu_to_quota(500) == 50000
    r = container_resources(_c({"cpu": "250m"}, {"cpu": "500m", "memory": "64Mi"}))
    assert (r.cpu_shares, r.cpu_quota, r.cpu_period, r.memory_limit) == (256, 50000, 100000, 64 * 2**20)
    # only a limit: shares follow the limit
    assert container_resources(_c(limits={"cpu": "1"})).cpu_shares == 1024
    assert oom_score_adj(GUARANTEED, 0, 0) == -997 and oom_score_adj(BEST_EFFORT, 0, 0) == 1000
    assert oom_score_adj(BURSTABLE, 512, 1024) == 500
    assert oom_score_adj(BURSTABLE, 1024, 1024) == 3
    assert oom_score_adj(BURSTABLE, 0, 1024) == 999


def test_pod_level_resources():
    spec = {"containers": [_c({"cpu": "100m", "memory": "10Mi"}, {"cpu": "200m", "memory": "20Mi"}),
                           _c({"cpu": "300m", "memory": "10Mi"}, {"cpu": "400m", "memory": "30Mi"})],
            "initContainers": [_c({"cpu": "2"}, {"cpu": "2", "memory": "1Mi"})]}
    assert pod_requests(spec) == {"cpu": 2000, "memory": 20 * 2**20}
    r = pod_cgroup_resources(spec)
    assert r.cpu_shares == 2048 and r.cpu_quota == 200000 and r.memory_limit == 50 * 2**20
    assert pod_cgroup_resources({"containers": [_c()]}) == CgroupResources(cpu_shares=2)
    unlimited = pod_cgroup_resources({"containers": [_c({"cpu": "1"}), _c(limits={"cpu": "1"})]})
    assert unlimited.cpu_quota is None and unlimited.memory_limit is None


def test_pod_overhead_counts_as_upstream():
    """A RuntimeClass's overhead adds to the pod's requests, and to its limits where it has them."""
    spec = {"containers": [_c({"cpu": "100m", "memory": "10Mi"}, {"cpu": "200m", "memory": "20Mi"})],
            "overhead": {"cpu": "250m", "memory": "64Mi"}}
    assert pod_requests(spec) == {"cpu": 350, "memory": 74 * 2**20}
    r = pod_cgroup_resources(spec)
    assert (r.cpu_shares, r.cpu_quota, r.memory_limit) == (
        milli_cpu_to_shares(350), milli_cpu_to_quota(450), 84 * 2**20)
    unlimited = pod_cgroup_resources({"containers": [_c({"cpu": "100m"})], "overhead": {"cpu": "250m"}})
    assert unlimited.cpu_quota is None and unlimited.cpu_shares == milli_cpu_to_shares(350)


def _fake_v1(tmp_path: Path) -> Path:
    for h in ("cpu", "cpuacct", "memory", "pids", "blkio"):
        (tmp_path / h).mkdir()
    return tmp_path


def test_cgroup_manager_creates_limits_and_removes_pod_cgroups(tmp_path):
    fs = _fake_v1(tmp_path)
    m = CgroupManager("/node1", fs)
    assert not m.v2
    assert m.pod_cgroup("u1", GUARANTEED) == "/node1/kubepods/podu1"
    assert m.pod_cgroup("u2", BURSTABLE) == "/node1/kubepods/burstable/podu2"
    assert m.pod_cgroup("u3", BEST_EFFORT) == "/node1/kubepods/besteffort/podu3"
    cgroup = m.pod_cgroup("u2", BURSTABLE)
    m.ensure(cgroup, CgroupResources(cpu_shares=512, cpu_quota=50000, cpu_period=100000, memory_limit=1 << 20))
    base = "node1/kubepods/burstable/podu2"
    assert (fs / "cpu" / base / "cpu.shares").read_text() == "512"
    assert (fs / "cpu" / base / "cpu.cfs_quota_us").read_text() == "50000"
    assert (fs / "memory" / base / "memory.limit_in_bytes").read_text() == str(1 << 20)
    assert (fs / "pids" / base).is_dir() and not (fs / "blkio" / base).exists()
    # runc makes container cgroups below, also in hierarchies the kubelet did not touch
    (fs / "blkio" / base / "container1").mkdir(parents=True)
    assert m.pod_cgroups() == {"u2": cgroup}
    # fake cgroupfs dirs hold files, so rmdir would fail; empty them as the kernel would
    for h in fs.iterdir():
        for f in sorted((h / "node1").rglob("*"), reverse=True) if (h / "node1").exists() else []:
            if f.is_file():
                f.unlink()
    assert m.remove(cgroup)
    assert not any((h / base).exists() for h in fs.iterdir())
    assert m.pod_cgroups() == {}


def test_cgroup_v2_weights():
    assert shares_to_weight(2) == 1 and shares_to_weight(262144) == 10000 and shares_to_weight(1024) == 39
