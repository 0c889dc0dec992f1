"""minictl.compose: the certs role issues every compose node's credentials; the roles table."""

from __future__ import annotations

from minictl import compose


def test_certs_role_issues_the_worker_nodes_credentials(tmp_path, monkeypatch):
    monkeypatch.setattr(compose, "CLUSTER_DIR", tmp_path / "cluster")
    monkeypatch.setattr(compose, "OUT_DIR", tmp_path / "out")
    monkeypatch.setenv("APISERVER_IP", "10.250.250.11")
    monkeypatch.setenv("ETCD_IP", "10.250.250.10")
    monkeypatch.setenv("NODE_NAME", "node")
    monkeypatch.setenv("WORKER_NODES", "node2, node3")
    compose.certs()
    pki = tmp_path / "cluster" / "pki"
    assert {p.name for p in pki.glob("node-*.crt")} == {"node-node.crt", "node-node2.crt", "node-node3.crt"}
    kubeconfigs = {p.name for p in (tmp_path / "cluster" / "kubeconfigs").glob("kubelet-*.kubeconfig")}
    assert kubeconfigs == {"kubelet-node.kubeconfig", "kubelet-node2.kubeconfig", "kubelet-node3.kubeconfig"}
    assert (tmp_path / "out" / "admin.kubeconfig").exists()


def test_worker_role_runs_only_the_node_agents():
    assert compose.ROLES["worker"] is compose.worker
    assert compose.WORKER_COMPONENTS == ["containerd", "kubelet", "kube-proxy"]
    assert set(compose.WORKER_COMPONENTS) < set(compose.NODE_COMPONENTS)
    assert compose.main(["bogus"]) == 2
