"""Sandbox and container configs: DNS policies, hosts file, labels, annotations, security."""

import json

import pytest

from kubelet import naming
from kubelet.containerconfig import (
    ConfigBuilder,
    ConfigError,
    HostDNS,
    check_run_as_non_root,
    hosts_file,
    parse_resolv_conf,
    pod_dns,
)
from kubelet.cri import pb


def _pod(**spec):
    return {"metadata": {"name": "web", "namespace": "shop", "uid": "u1", "labels": {"app": "web"},
                         "annotations": {"note": "x"}},
            "spec": {"containers": [{"name": "c", "image": "busybox"}], **spec}}


HOST = HostDNS(["192.0.2.53"], ["corp.example"], ["timeout:2"])


def test_resolv_conf_parsing():
    dns = parse_resolv_conf("# c\nnameserver 1.1.1.1\nnameserver 8.8.8.8 ; x\nsearch a b\noptions ndots:2 rotate\n")
    assert dns.servers == ["1.1.1.1", "8.8.8.8"] and dns.searches == ["a", "b"] and dns.options == ["ndots:2", "rotate"]


def test_dns_policies():
    cluster = pod_dns(_pod(), ["10.96.0.10"], "cluster.local", HOST)
    assert list(cluster.servers) == ["10.96.0.10"]
    assert list(cluster.searches) == ["shop.svc.cluster.local", "svc.cluster.local", "cluster.local", "corp.example"]
    assert list(cluster.options) == ["ndots:5"]
    default = pod_dns(_pod(dnsPolicy="Default"), ["10.96.0.10"], "cluster.local", HOST)
    assert list(default.servers) == ["192.0.2.53"] and list(default.options) == ["timeout:2"]
    # host network with ClusterFirst uses the host's; ClusterFirstWithHostNet the cluster's
    assert list(pod_dns(_pod(hostNetwork=True), ["10.96.0.10"], "cluster.local", HOST).servers) == ["192.0.2.53"]
    with_host_net = _pod(hostNetwork=True, dnsPolicy="ClusterFirstWithHostNet")
    assert list(pod_dns(with_host_net, ["10.96.0.10"], "cluster.local", HOST).servers) == ["10.96.0.10"]
    # no cluster DNS configured: the host's
    assert list(pod_dns(_pod(), [], "cluster.local", HOST).servers) == ["192.0.2.53"]
    custom = _pod(dnsPolicy="None", dnsConfig={"nameservers": ["9.9.9.9"], "searches": ["x"],
                                              "options": [{"name": "ndots", "value": "1"}, {"name": "edns0"}]})
    dns = pod_dns(custom, ["10.96.0.10"], "cluster.local", HOST)
    assert (list(dns.servers), list(dns.searches), list(dns.options)) == (["9.9.9.9"], ["x"], ["ndots:1", "edns0"])
    merged = pod_dns(_pod(dnsConfig={"options": [{"name": "ndots", "value": "2"}]}), ["10.96.0.10"], "cluster.local", HOST)
    assert list(merged.options) == ["ndots:2"]


def test_hosts_file():
    text = hosts_file(_pod(hostname="h1", subdomain="sub", hostAliases=[{"ip": "1.2.3.4", "hostnames": ["a", "b"]}]),
                      ["10.244.0.7"], "node1", "cluster.local")
    assert "127.0.0.1\tlocalhost" in text
    assert "10.244.0.7\th1.sub.shop.svc.cluster.local\th1" in text
    assert text.endswith("# Entries added by HostAliases.\n1.2.3.4\ta\tb\n")
    assert "10.244.0.7\tweb\n" in hosts_file(_pod(), ["10.244.0.7"], "node1", "cluster.local")
    assert hosts_file(_pod(hostNetwork=True), [], "node1", "cluster.local", "1.1.1.1 host\n") == "1.1.1.1 host\n"


def _builder(tmp_path):
    return ConfigBuilder("node1", ["10.96.0.10"], "cluster.local", "", tmp_path, 1 << 30)


def test_sandbox_config(tmp_path):
    pod = _pod(containers=[{"name": "c", "image": "x", "ports": [{"containerPort": 80, "hostPort": 8080}]}],
               securityContext={"runAsUser": 1000, "fsGroup": 2000, "sysctls": [{"name": "net.core.somaxconn", "value": "1024"}]})
    config = _builder(tmp_path).sandbox_config(pod, 2, "/kubepods/podu1")
    assert config.metadata.attempt == 2 and config.metadata.uid == "u1" and config.hostname == "web"
    assert config.labels[naming.POD_UID] == "u1" and config.labels["app"] == "web"
    assert config.annotations["note"] == "x"
    assert config.log_directory.endswith("shop_web_u1")
    assert config.linux.cgroup_parent == "/kubepods/podu1"
    assert config.linux.security_context.run_as_user.value == 1000
    assert list(config.linux.security_context.supplemental_groups) == [2000]
    assert config.linux.security_context.namespace_options.network == pb.POD
    assert config.linux.sysctls == {"net.core.somaxconn": "1024"}
    assert [(p.container_port, p.host_port) for p in config.port_mappings] == [(80, 8080)]
    host = _builder(tmp_path).sandbox_config(_pod(hostNetwork=True, hostPID=True), 0, "")
    assert host.hostname == "" and host.linux.security_context.namespace_options.network == pb.NODE
    assert host.linux.security_context.namespace_options.pid == pb.NODE


def test_container_config(tmp_path):
    container = {
        "name": "c", "image": "busybox", "workingDir": "/w", "tty": True, "stdin": True,
        "resources": {"limits": {"cpu": "500m", "memory": "64Mi"}, "requests": {"cpu": "500m", "memory": "64Mi"}},
        "securityContext": {"capabilities": {"add": ["NET_ADMIN"], "drop": ["ALL"]}, "readOnlyRootFilesystem": True,
                            "allowPrivilegeEscalation": False, "runAsGroup": 5},
        "lifecycle": {"preStop": {"exec": {"command": ["sleep", "1"]}}},
        "ports": [{"containerPort": 80, "protocol": "TCP"}],
    }
    pod = _pod(containers=[container], securityContext={"runAsUser": 7, "seccompProfile": {"type": "RuntimeDefault"}},
               terminationGracePeriodSeconds=12)
    config = _builder(tmp_path).container_config(
        pod, container, init=False, restart_count=3, image_ref="sha256:img", env=[("A", "1")], command=["sh"],
        args=["-c", "x"], mounts=[], termination_file="/tmp/t")
    assert config.metadata.name == "c" and config.metadata.attempt == 3
    assert config.image.image == "sha256:img" and config.image.user_specified_image == "busybox"
    assert config.log_path == "c/3.log" and config.working_dir == "/w" and config.tty and config.stdin
    assert [(e.key, e.value) for e in config.envs] == [("A", b"1")]
    a = config.annotations
    assert a[naming.RESTART_COUNT] == "3" and a[naming.CONTAINER_HASH] == naming.container_hash(container)
    assert a[naming.POD_TERMINATION_GRACE] == "12"
    assert json.loads(a[naming.PRE_STOP_HANDLER]) == {"exec": {"command": ["sleep", "1"]}}
    assert config.labels[naming.CONTAINER_NAME] == "c" and naming.CONTAINER_TYPE not in config.labels
    r = config.linux.resources
    assert (r.cpu_shares, r.cpu_quota, r.cpu_period, r.memory_limit_in_bytes, r.oom_score_adj) == (
        512, 50000, 100000, 64 << 20, -997)
    sc = config.linux.security_context
    assert list(sc.capabilities.add_capabilities) == ["NET_ADMIN"] and list(sc.capabilities.drop_capabilities) == ["ALL"]
    assert sc.readonly_rootfs and sc.no_new_privs and not sc.privileged
    assert sc.run_as_user.value == 7 and sc.run_as_group.value == 5
    assert sc.seccomp.profile_type == pb.SecurityProfile.RuntimeDefault
    assert "/proc/kcore" in sc.masked_paths and "/proc/sys" in sc.readonly_paths


def test_run_as_non_root():
    pod = _pod(securityContext={"runAsNonRoot": True})
    c = {"name": "c"}
    with pytest.raises(ConfigError, match="image will run as root"):
        check_run_as_non_root(pod, c, pb.Image(id="x"))
    with pytest.raises(ConfigError, match="non-numeric user"):
        check_run_as_non_root(pod, c, pb.Image(id="x", username="app"))
    check_run_as_non_root(pod, c, pb.Image(id="x", uid=pb.Int64Value(value=1000)))
    check_run_as_non_root(pod, {"name": "c", "securityContext": {"runAsUser": 10}}, None)
    with pytest.raises(ConfigError, match="runAsUser breaks non-root policy"):
        check_run_as_non_root(pod, {"name": "c", "securityContext": {"runAsUser": 0}}, None)
    check_run_as_non_root(_pod(), c, None)  # no policy, no check
