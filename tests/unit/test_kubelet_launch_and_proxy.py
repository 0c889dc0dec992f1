"""How the kubelet is started for a cluster, and the apiserver's choice of container for pods/log|exec."""

import pytest

from apimachinery import errors
from apiserver.podproxy import container_for
from certs import ensure_pki
from client.certificate import CertificateStore
from kubelet.__main__ import config_from_flags, main
from kubelet.config import validate_config
from kubelet.launch import (
    apiserver_kubelet_client_args,
    cluster_dns_ip,
    kubelet_cert_dir,
    kubelet_command,
    seed_client_certificate,
)
from minictl.components import ClusterConfig


def test_kubelet_command_for_a_cluster(tmp_path):
    cfg = ClusterConfig(str(tmp_path), node_name="n1")
    cmd = kubelet_command(cfg, port=11250)
    flags = dict(zip(cmd[3::2], cmd[4::2], strict=False))
    assert cmd[1:3] == ["-m", "kubelet"]
    assert flags["--kubeconfig"] == str(tmp_path / "kubeconfigs" / "kubelet-n1.kubeconfig")
    assert flags["--container-runtime-endpoint"] == f"unix://{tmp_path}/containerd/containerd.sock"
    assert flags["--cni-conf-dir"] == str(tmp_path / "cni" / "net.d")
    assert flags["--tls-cert-file"].endswith("kubelet-n1.crt") and flags["--port"] == "11250"
    assert flags["--cluster-dns"] == "10.96.0.10" and flags["--cgroup-root"] == "/minik8s-n1"
    assert flags["--cert-dir"] == str(kubelet_cert_dir(cfg)) == str(tmp_path / "kubelet" / "pki")
    assert cluster_dns_ip("10.100.0.0/16") == "10.100.0.10"
    # every flag it passes is one the kubelet accepts
    ctx = main.make_context("kubelet", [*cmd[3:], "--pod-cidr", "10.244.1.0/24"])
    config = config_from_flags({**ctx.params})
    assert config.node_name == "n1" and config.cluster_dns == ["10.96.0.10"] and config.pod_cidr == "10.244.1.0/24"
    assert config.root_dir == str(tmp_path / "kubelet")
    assert validate_config(config) == []  # and they pass the kubelet's start-up validation
    args = apiserver_kubelet_client_args(cfg)
    assert args[0] == "--kubelet-client-certificate" and args[1].endswith("apiserver-kubelet-client.crt")
    # every kubelet minictl starts serves with a certificate of the cluster CA: verified
    assert args[args.index("--kubelet-certificate-authority") + 1] == str(cfg.pki.ca_cert)


def test_the_kubelet_store_is_seeded_with_the_node_pair_of_the_current_ca(tmp_path):
    cfg = ClusterConfig(str(tmp_path), node_name="n1")
    ensure_pki(cfg.dir / "pki", node_names=["n1"])
    store = CertificateStore(kubelet_cert_dir(cfg), "kubelet-client")
    assert seed_client_certificate(cfg) is True
    node_cert = (cfg.dir / "pki" / "node-n1.crt").read_bytes()
    assert store.load()[1].strip() == node_cert.strip()
    first = store.current_path.resolve()
    assert seed_client_certificate(cfg) is False  # a valid pair of this CA stays (rotation owns it)
    assert store.current_path.resolve() == first
    # a new PKI (`cluster up --reset`): the store's pair is from a CA the apiserver no longer trusts
    for f in (cfg.dir / "pki").iterdir():
        f.unlink()
    ensure_pki(cfg.dir / "pki", node_names=["n1"])
    assert seed_client_certificate(cfg) is True
    assert store.load()[1].strip() == (cfg.dir / "pki" / "node-n1.crt").read_bytes().strip() != node_cert.strip()


def _pod(containers, inits=()):
    return {"metadata": {"name": "p"}, "spec": {"containers": [{"name": c} for c in containers],
                                                "initContainers": [{"name": c} for c in inits]}}


def test_the_container_a_log_or_exec_request_is_about():
    assert container_for(_pod(["a"]), "", "logs") == "a"
    assert container_for(_pod(["a", "b"], ["i"]), "i", "logs") == "i"
    with pytest.raises(errors.StatusError) as e:
        container_for(_pod(["a", "b"], ["i"]), "", "logs")
    assert e.value.code == 400
    assert "a container name must be specified for pod p, choose one of: [a b] or one of the init containers: [i]" \
        in e.value.status()["message"]
    debugged = _pod(["a", "b"])
    debugged["spec"]["ephemeralContainers"] = [{"name": "dbg"}]
    assert container_for(debugged, "dbg", "logs") == "dbg"
    with pytest.raises(errors.StatusError) as e:
        container_for(debugged, "", "logs")
    assert e.value.status()["message"].endswith("choose one of: [a b] or one of the ephemeral containers: [dbg]")
    with pytest.raises(errors.StatusError) as e:
        container_for(_pod(["a"]), "zz", "exec")
    assert "container zz is not valid for pod p" in e.value.status()["message"]



def _after(cmd: list[str], name: str) -> str:
    return cmd[cmd.index(name) + 1]


def test_the_apiserver_gets_the_aggregators_front_proxy_pair(tmp_path) -> None:
    from minictl.components import ClusterConfig, apiserver_command

    cfg = ClusterConfig(str(tmp_path))
    cmd = apiserver_command(cfg)
    assert _after(cmd, "--proxy-client-cert-file").endswith("/pki/front-proxy-client.crt")
    assert _after(cmd, "--proxy-client-key-file").endswith("/pki/front-proxy-client.key")
    assert _after(cmd, "--requestheader-client-ca-file").endswith("/pki/front-proxy-ca.crt")
    assert _after(cmd, "--requestheader-allowed-names") == "front-proxy-client"
