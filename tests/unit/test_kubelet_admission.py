"""The kubelet's admission checks (upstream's admit handlers) and the active deadline, without a runtime."""

import datetime as dt
import time

import pytest
from click.testing import CliRunner

from kubelet import activedeadline
from kubelet.__main__ import main, unsafe_sysctls
from kubelet.admission import SysctlAllowlist, admit, check_os, check_predicates, check_resources
from kubelet.config import KubeletConfig
from kubelet.kubelet import Kubelet
from kubelet.runtime import EXITED
from tests.unit.kubelet_fakes import NoAPI, container, pod, runtime_status, sandbox

GI = 1 << 30
ALLOC = {"cpu": 2000, "memory": 4 * GI, "ephemeral-storage": 10 * GI, "pods": 110}


def node(labels=None, taints=None, **allocatable):
    return {"metadata": {"name": "n1", "labels": {"kubernetes.io/os": "linux", **(labels or {})}},
            "spec": {"taints": taints or []}, "status": {"allocatable": allocatable}}


def requesting(name, **requests):
    return pod(name, containers=[{"name": "c", "image": "x", "resources": {"requests": requests}}])


def with_ports(name, *ports):
    return pod(name, containers=[{"name": "c", "image": "x", "ports": list(ports)}])


# ------------------------------------------------------------------ sysctls


def sysctl_pod(*names, **spec):
    return pod(securityContext={"sysctls": [{"name": n, "value": "1"} for n in names]}, **spec)


def test_safe_sysctls_are_allowed_and_unsafe_ones_forbidden():
    allow = SysctlAllowlist()
    assert allow.check(sysctl_pod("kernel.shm_rmid_forced", "net.ipv4.tcp_keepalive_probes")) is None
    assert allow.check(sysctl_pod("net/ipv4/ip_local_port_range")) is None  # the slash form is the same sysctl
    assert allow.check(sysctl_pod("net.ipv4.ip_local_port_range", "kernel.msgmax")) == (
        "SysctlForbidden", 'forbidden sysctl: "kernel.msgmax" not allowlisted')
    assert allow.check(sysctl_pod("net.core.somaxconn"))[0] == "SysctlForbidden"


def test_allowed_unsafe_sysctls_by_name_and_pattern():
    allow = SysctlAllowlist(["kernel.msg*", "net.core.somaxconn"])
    assert allow.check(sysctl_pod("kernel.msgmax", "kernel.msgmnb", "net.core.somaxconn")) is None
    assert allow.check(sysctl_pod("kernel.sem")) == ("SysctlForbidden", 'forbidden sysctl: "kernel.sem" not allowlisted')
    assert allow.check(sysctl_pod("net.core.rmem_max"))[0] == "SysctlForbidden"


def test_namespaced_sysctls_conflict_with_the_host_namespaces():
    allow = SysctlAllowlist(["kernel.shm*"])
    assert allow.check(sysctl_pod("net.ipv4.ip_local_port_range", hostNetwork=True)) == (
        "SysctlForbidden", 'forbidden sysctl: "net.ipv4.ip_local_port_range" not allowed with host net enabled')
    assert allow.check(sysctl_pod("kernel.shmmax", hostIPC=True)) == (
        "SysctlForbidden", 'forbidden sysctl: "kernel.shmmax" not allowed with host ipc enabled')
    assert allow.check(sysctl_pod("kernel.shmmax", hostNetwork=True)) is None  # ipc, not net
    assert allow.check(sysctl_pod("net.ipv4.tcp_syncookies", hostIPC=True)) is None


@pytest.mark.parametrize("pattern", ["vm.swappiness", "kernel.*", "kernel.panic", "*"])
def test_only_namespaced_sysctls_can_be_allowed(pattern):
    with pytest.raises(ValueError, match="not known to be namespaced"):
        SysctlAllowlist([pattern])


def test_the_allowed_unsafe_sysctls_flag():
    assert unsafe_sysctls(" kernel.msg*, net.core.somaxconn,") == ["kernel.msg*", "net.core.somaxconn"]
    assert KubeletConfig().allowed_unsafe_sysctls == []
    result = CliRunner().invoke(main, ["--allowed-unsafe-sysctls", "vm.swappiness"])
    assert result.exit_code == 2 and 'the sysctl "vm.swappiness" are not known to be namespaced' in result.output


# ------------------------------------------------------------------ OS


def test_pod_os():
    assert check_os(pod(os={"name": "linux"})) is None
    assert check_os(pod(os={"name": "windows"})) == (
        "PodOSNotSupported", "Failed to admit pod as the OS field doesn't match node OS")
    labelled = pod()
    labelled["metadata"]["labels"] = {"kubernetes.io/os": "windows"}
    assert check_os(labelled) == ("PodOSSelectorNodeLabelDoesNotMatch",
                                  "Failed to admit pod as the `kubernetes.io/os` label doesn't match node label")
    labelled["metadata"]["labels"] = {"kubernetes.io/os": "linux"}
    assert check_os(labelled) is None


# ------------------------------------------------------------------ resources


def test_the_pod_count_comes_first():
    others = [pod(f"p{i}") for i in range(3)]
    assert check_resources(requesting("big", cpu="100"), {**ALLOC, "pods": 3}, others) == (
        "OutOfpods", "Node didn't have enough resource: pods, requested: 1, used: 3, capacity: 3")


def test_cpu_memory_and_ephemeral_storage():
    others = [requesting("a", cpu="1500m", memory="1Gi")]
    assert check_resources(requesting("b", cpu="500m"), ALLOC, others) is None
    assert check_resources(requesting("b", cpu="600m", memory="5Gi"), ALLOC, others) == (
        "OutOfcpu", "Node didn't have enough resource: cpu, requested: 600, used: 1500, capacity: 2000")
    assert check_resources(requesting("b", memory="3584Mi"), ALLOC, others)[0] == "OutOfmemory"
    assert check_resources(requesting("b", **{"ephemeral-storage": "11Gi"}), ALLOC, others) == (
        "OutOfephemeral-storage",
        f"Node didn't have enough resource: ephemeral-storage, requested: {11 * GI}, used: 0, capacity: {10 * GI}")


def test_extended_resources():
    gpu = {"example.com/gpu": "2"}
    # a resource the node does not have at all is left to the cluster (upstream's removeMissingExtendedResources)
    assert check_resources(requesting("b", **gpu), ALLOC, []) is None
    have = {**ALLOC, "example.com/gpu": 3}
    assert check_resources(requesting("b", **gpu), have, []) is None
    assert check_resources(requesting("b", **gpu), have, [requesting("a", **gpu)]) == (
        "OutOfexample.com/gpu", "Node didn't have enough resource: example.com/gpu, requested: 2, used: 2, capacity: 3")
    # hugepages are native: a node without them cannot take the pod
    assert check_resources(requesting("b", **{"hugepages-2Mi": "2Mi"}), ALLOC, [])[0] == "OutOfhugepages-2Mi"


# ------------------------------------------------------------------ predicates


def test_node_selector_and_required_node_affinity():
    n = node({"disk": "ssd"})
    assert check_predicates(pod(nodeSelector={"disk": "ssd"}), n, ALLOC, []) is None
    assert check_predicates(pod(nodeSelector={"disk": "hdd"}), n, ALLOC, []) == (
        "NodeAffinity", "Predicate NodeAffinity failed: node(s) didn't match Pod's node affinity/selector")
    assert check_predicates(pod(nodeSelector={"kubernetes.io/os": "windows"}), n, ALLOC, [])[0] == "NodeAffinity"
    affinity = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n2"]}]},
        {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["nvme"]}]},
    ]}}}
    assert check_predicates(pod(affinity=affinity), n, ALLOC, [])[0] == "NodeAffinity"
    affinity["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0][
        "matchFields"][0]["values"] = ["n1"]
    assert check_predicates(pod(affinity=affinity), n, ALLOC, []) is None


def test_node_name():
    assert check_predicates(pod(nodeName="n1"), node(), ALLOC, []) is None
    assert check_predicates(pod(nodeName="n2"), node(), ALLOC, []) == (
        "NodeName", "Predicate NodeName failed: node(s) didn't match the requested node name")


def test_host_ports_conflict_with_admitted_pods():
    taken = [with_ports("a", {"containerPort": 80, "hostPort": 8080}),
             with_ports("b", {"containerPort": 53, "hostPort": 5353, "hostIP": "10.0.0.1", "protocol": "UDP"})]
    conflict = ("NodePorts", "Predicate NodePorts failed: node(s) didn't have free ports for the requested pod ports")
    assert check_predicates(with_ports("c", {"containerPort": 80, "hostPort": 8080}), node(), ALLOC, taken) == conflict
    assert check_predicates(with_ports("c", {"containerPort": 80, "hostPort": 8080, "hostIP": "127.0.0.1"}),
                            node(), ALLOC, taken) == conflict  # 0.0.0.0 takes every address
    assert check_predicates(with_ports("c", {"containerPort": 80, "hostPort": 8080, "protocol": "UDP"}),
                            node(), ALLOC, taken) is None
    assert check_predicates(with_ports("c", {"containerPort": 53, "hostPort": 5353, "hostIP": "10.0.0.2",
                                             "protocol": "UDP"}), node(), ALLOC, taken) is None
    assert check_predicates(with_ports("c", {"containerPort": 53, "hostPort": 5353, "protocol": "UDP"}),
                            node(), ALLOC, taken) == conflict
    assert check_predicates(with_ports("c", {"containerPort": 80}), node(), ALLOC, taken) is None


def test_no_execute_taints_the_pod_does_not_tolerate():
    taints = [{"key": "soft", "effect": "NoSchedule"}, {"key": "gone", "value": "yes", "effect": "NoExecute"}]
    untolerated = ("TaintToleration", "Predicate TaintToleration failed: node(s) had taints that the pod didn't tolerate")
    assert check_predicates(pod(), node(taints=taints), ALLOC, []) == untolerated
    tolerant = pod(tolerations=[{"key": "gone", "operator": "Exists", "effect": "NoExecute"}])
    assert check_predicates(tolerant, node(taints=taints), ALLOC, []) is None  # NoSchedule is the scheduler's
    assert check_predicates(pod(), node(taints=taints), ALLOC, [], static=True) is None  # not for static pods


def test_the_order_of_the_checks():
    bad = requesting("b", cpu="3")
    bad["spec"]["nodeSelector"] = {"disk": "hdd"}
    bad["spec"]["os"] = {"name": "windows"}
    bad["spec"]["securityContext"] = {"sysctls": [{"name": "kernel.msgmax", "value": "1"}]}
    allow = SysctlAllowlist()
    assert admit(bad, node(), ALLOC, [], allow)[0] == "SysctlForbidden"
    del bad["spec"]["securityContext"]
    assert admit(bad, node(), ALLOC, [], allow)[0] == "PodOSNotSupported"
    del bad["spec"]["os"]
    assert admit(bad, node(), ALLOC, [], allow)[0] == "OutOfcpu"
    bad["spec"]["containers"][0]["resources"] = {}
    assert admit(bad, node(), ALLOC, [], allow)[0] == "NodeAffinity"


# ------------------------------------------------------------------ the kubelet


def _kubelet(tmp_path, **cfg) -> Kubelet:
    config = KubeletConfig(node_name="n1", node_ip="192.0.2.5", root_dir=str(tmp_path), **cfg)
    k = Kubelet(config, NoAPI(), object())
    k.node.allocatable = dict(ALLOC)
    k.events = []
    k.event = lambda p, etype, reason, message, *a, **kw: k.events.append((etype, reason, message))
    return k


async def test_the_kubelet_rejects_with_upstream_status_and_event(tmp_path):
    k = _kubelet(tmp_path, allowed_unsafe_sysctls=["kernel.msg*"])
    k._on_node(node({"disk": "ssd"}))
    ok = sysctl_pod("kernel.msgmax")
    ok["spec"]["nodeSelector"] = {"disk": "ssd"}
    assert await k._admit(ok, runtime_status("uid-web"))
    refused = sysctl_pod("kernel.sem")
    refused["metadata"]["uid"] = "uid-2"
    assert not await k._admit(refused, runtime_status("uid-2"))
    assert k.rejected["uid-2"] == ("SysctlForbidden", 'Pod was rejected: forbidden sysctl: "kernel.sem" not allowlisted')
    assert k.events == [("Warning", "SysctlForbidden", 'forbidden sysctl: "kernel.sem" not allowlisted')]


async def test_node_affinity_is_checked_again_against_the_node_the_api_has(tmp_path):
    k = _kubelet(tmp_path)
    k._on_node(node())  # the labels seen so far
    fetched = []

    async def get(plural, name, namespace=None):
        fetched.append((plural, name))
        return node({"disk": "ssd"}) if name == "n1" else None

    k._get_or_none = get
    assert await k._admit(pod(nodeSelector={"disk": "ssd"}), runtime_status("uid-web"))
    assert fetched == [("nodes", "n1")]
    other = pod("other", nodeSelector={"disk": "hdd"})
    assert not await k._admit(other, runtime_status("uid-other"))
    assert k.rejected["uid-other"] == (
        "NodeAffinity", "Pod was rejected: Predicate NodeAffinity failed: node(s) didn't match Pod's node affinity/selector")


async def test_host_ports_of_admitted_pods_count(tmp_path):
    k = _kubelet(tmp_path)
    k._on_node(node())
    first = with_ports("first", {"containerPort": 80, "hostPort": 8080})
    second = with_ports("second", {"containerPort": 81, "hostPort": 8080})
    k.known_pods = lambda: [first, second]
    assert await k._admit(first, runtime_status("uid-first"))
    assert not await k._admit(second, runtime_status("uid-second"))
    assert k.rejected["uid-second"][0] == "NodePorts"


# ------------------------------------------------------------------ the active deadline


def _rfc3339(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_seconds_left():
    start = _rfc3339(1000)
    assert activedeadline.seconds_left({"activeDeadlineSeconds": 30}, start, 1010) == 20
    assert activedeadline.seconds_left({"activeDeadlineSeconds": 30}, start, 1030) == 0
    assert activedeadline.seconds_left({"activeDeadlineSeconds": 5}, start, 1010) == -5
    assert activedeadline.seconds_left({}, start, 1010) is None
    assert activedeadline.seconds_left({"activeDeadlineSeconds": 5}, None, 1010) is None


async def test_a_pod_is_killed_and_failed_at_its_active_deadline(tmp_path):
    k = _kubelet(tmp_path)
    p = pod(activeDeadlineSeconds=30)
    p["status"] = {"phase": "Running", "startTime": _rfc3339(time.time() - 10)}
    uid = p["metadata"]["uid"]
    k.admitted.add(uid)
    k.pod = lambda u: p if u == uid else None
    k._api_pod = lambda ns, name: p
    running = runtime_status(uid, sandboxes=[sandbox()], containers=[container("main", "c1")])
    stopped = runtime_status(uid, sandboxes=[sandbox(ready=False)],
                             containers=[container("main", "c1", EXITED, exit_code=137, finished=20)])
    now = {"rs": running}
    stops = []

    async def pod_status(u, *a):
        return now["rs"]

    async def stop_pod(pod_, rs, grace, keep_sandbox=False):
        stops.append(grace)
        now["rs"] = stopped

    async def sync_running(pod_, rs):
        return None

    k.runtime.pod_status = pod_status
    k._stop_pod = stop_pod
    k._sync_running = sync_running
    delay = await k._sync_pod(uid)
    assert 18 <= delay <= 20  # the worker wakes at the deadline, not at the next periodic sync
    assert stops == [] and uid not in k.deadline_exceeded
    k.known_pods = lambda: [p]
    assert p in k.active_pods()

    p["spec"]["activeDeadlineSeconds"] = 5  # lowered while the pod runs
    assert await k._sync_pod(uid) is None
    assert stops == [30]  # the pod's grace period
    assert k.events == [("Normal", "DeadlineExceeded", "Pod was active on the node longer than the specified deadline")]
    status = k.status.desired(uid)
    assert status["phase"] == "Failed" and status["reason"] == "DeadlineExceeded"
    assert status["message"] == "Pod was active on the node longer than the specified deadline"
    assert status["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 137
    assert p not in k.active_pods()

    # later syncs keep it stopped and Failed, with one event
    now["rs"] = stopped
    assert await k._sync_pod(uid) is None
    assert len(k.events) == 1 and k.status.desired(uid)["phase"] == "Failed"
    k._forget(uid)
    assert uid not in k.deadline_exceeded


async def test_no_deadline_no_change_to_the_resync(tmp_path):
    k = _kubelet(tmp_path)
    p = pod()
    p["status"] = {"phase": "Running", "startTime": _rfc3339(time.time() - 10)}
    assert k._until_deadline(p, None) is None and k._until_deadline(p, 3.0) == 3.0
    p["spec"]["activeDeadlineSeconds"] = 3600  # far off: the periodic sync comes first
    assert k._until_deadline(p, None) is None and k._until_deadline(p, 3.0) == 3.0


async def test_before_registration_a_pod_is_admitted_against_the_node_to_be_registered(tmp_path):
    # a static pod starts before the Node exists: its default labels (hostname, os, arch) count
    k = _kubelet(tmp_path)
    assert k.node.node is None and k._node_object is None
    static = pod("static", nodeSelector={"kubernetes.io/hostname": k.node_name, "kubernetes.io/os": "linux"})
    assert await k._admit(static, runtime_status("uid-static"))
