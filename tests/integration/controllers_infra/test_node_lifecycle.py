"""A node whose heartbeat stops: NotReady/Unknown, taints, pods evicted and recreated elsewhere.

No kubelet runs here: `FakeKubelet` registers a node, posts its status once and renews its
Lease in kube-node-lease every second (what a kubelet does between status changes); the
test plays the scheduler by binding the new pods.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import threading

import httpx

from tests.conftest import ControlPlane, wait_for
from tests.integration.controllers_infra.conftest import ControllerManager

MERGE = {"content-type": "application/merge-patch+json"}


def now_micro() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class FakeKubelet:
    def __init__(self, cp: ControlPlane, name: str) -> None:
        self.cp = cp
        self.name = name
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def register(self) -> None:
        with self.cp.client() as c:
            c.post("/api/v1/nodes", json={
                "metadata": {"name": self.name, "labels": {"kubernetes.io/hostname": self.name}},
                "status": {"conditions": self.conditions("True")}}).raise_for_status()
            c.post("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases", json={
                "metadata": {"name": self.name},
                "spec": {"holderIdentity": self.name, "leaseDurationSeconds": 40, "renewTime": now_micro()}}
            ).raise_for_status()
        self.start_heartbeat()

    @staticmethod
    def conditions(ready: str) -> list[dict]:
        ts = now()
        return [{"type": "Ready", "status": ready, "reason": "KubeletReady", "message": "kubelet is posting ready status",
                 "lastHeartbeatTime": ts, "lastTransitionTime": ts}]

    def post_ready(self) -> None:
        with self.cp.client() as c:
            node = c.get(f"/api/v1/nodes/{self.name}").json()
            node["status"]["conditions"] = self.conditions("True")
            c.put(f"/api/v1/nodes/{self.name}/status", json=node).raise_for_status()

    def start_heartbeat(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._beat, daemon=True, name=f"heartbeat {self.name}")
        self._thread.start()

    def _beat(self) -> None:
        with self.cp.client() as c:
            while not self._stop.wait(1.0):
                c.patch(f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{self.name}",
                        json={"spec": {"renewTime": now_micro()}}, headers=MERGE)

    def stop_heartbeat(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def remove(self) -> None:
        self.stop_heartbeat()
        with self.cp.client() as c:
            c.delete(f"/api/v1/nodes/{self.name}")
            c.delete(f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{self.name}")


def node(admin: httpx.Client, name: str) -> dict:
    return admin.get(f"/api/v1/nodes/{name}").json()


def ready_status(n: dict) -> str | None:
    return next((c["status"] for c in n.get("status", {}).get("conditions") or [] if c["type"] == "Ready"), None)


def taint_keys(n: dict) -> set[tuple[str, str]]:
    return {(t["key"], t["effect"]) for t in n.get("spec", {}).get("taints") or []}


def rs_pods(admin: httpx.Client, ns: str) -> list[dict]:
    return admin.get(f"/api/v1/namespaces/{ns}/pods", params={"labelSelector": "app=evictee"}).json()["items"]


def bind_and_run(admin: httpx.Client, ns: str, pod: dict, node_name: str, ip: str) -> None:
    """The scheduler's binding and the kubelet's status, faked."""
    name = pod["metadata"]["name"]
    admin.post(f"/api/v1/namespaces/{ns}/pods/{name}/binding",
               json={"metadata": {"name": name}, "target": {"kind": "Node", "name": node_name}}).raise_for_status()
    p = admin.get(f"/api/v1/namespaces/{ns}/pods/{name}").json()
    p["status"].update(phase="Running", podIP=ip, podIPs=[{"ip": ip}])
    p["status"]["conditions"] = [c for c in p["status"].get("conditions") or [] if c["type"] != "Ready"] + [
        {"type": "Ready", "status": "True", "lastTransitionTime": now()}]
    admin.put(f"/api/v1/namespaces/{ns}/pods/{name}/status", json=p).raise_for_status()


def test_node_failure_evicts_and_pods_come_back_elsewhere(infra_plane: ControlPlane, admin: httpx.Client, ns: str,
                                                          controller_manager: ControllerManager) -> None:
    suffix = os.urandom(2).hex()
    a, b = FakeKubelet(infra_plane, f"node-a-{suffix}"), FakeKubelet(infra_plane, f"node-b-{suffix}")
    try:
        a.register()
        b.register()
        # node IPAM: each node gets its own /24 of the cluster CIDR
        cidrs = wait_for(lambda: [node(admin, k.name)["spec"].get("podCIDR") for k in (a, b)]
                         if all(node(admin, k.name)["spec"].get("podCIDR") for k in (a, b)) else None,
                         15, 0.1, "pod CIDRs")
        nets = [ipaddress.ip_network(c) for c in cidrs]
        assert nets[0] != nets[1] and all(n.prefixlen == 24 and n.subnet_of(ipaddress.ip_network("10.244.0.0/16"))
                                          for n in nets)
        assert node(admin, a.name)["spec"]["podCIDRs"] == [cidrs[0]]

        tolerations = [{"key": k, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 2}
                       for k in ("node.kubernetes.io/unreachable", "node.kubernetes.io/not-ready")]
        admin.post(f"/apis/apps/v1/namespaces/{ns}/replicasets", json={
            "metadata": {"name": "evictee"},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "evictee"}},
                     "template": {"metadata": {"labels": {"app": "evictee"}},
                                  "spec": {"tolerations": tolerations,
                                           "containers": [{"name": "c", "image": "x"}]}}}}).raise_for_status()
        first = wait_for(lambda: (lambda ps: ps if len(ps) == 2 else None)(rs_pods(admin, ns)), 20, 0.1, "2 pods")
        for i, p in enumerate(first):
            bind_and_run(admin, ns, p, a.name, f"{cidrs[0][:-4]}{10 + i}")
        first_names = {p["metadata"]["name"] for p in first}

        # the heartbeat of node A stops
        a.stop_heartbeat()
        na = wait_for(lambda: (lambda n: n if ready_status(n) == "Unknown" else None)(node(admin, a.name)),
                      20, 0.2, "node A Unknown")
        cond = next(c for c in na["status"]["conditions"] if c["type"] == "Ready")
        assert cond["reason"] == "NodeStatusUnknown" and cond["message"] == "Kubelet stopped posting node status."
        na = wait_for(lambda: (lambda n: n if {("node.kubernetes.io/unreachable", "NoExecute"),
                                               ("node.kubernetes.io/unreachable", "NoSchedule")} <= taint_keys(n)
                               else None)(node(admin, a.name)), 20, 0.2, "node A tainted")
        assert ready_status(node(admin, b.name)) == "True" and not taint_keys(node(admin, b.name))

        # its pods are marked not ready, then evicted once their 2 s of toleration are over
        def evicted() -> list[dict] | None:
            pods = [p for p in rs_pods(admin, ns) if p["metadata"]["name"] in first_names]
            gone = [p for p in pods if p["metadata"].get("deletionTimestamp")]
            return pods if len(gone) == 2 else None

        pods = wait_for(evicted, 20, 0.2, "the pods on node A to be evicted")
        for p in pods:
            conds = {c["type"]: c for c in p["status"]["conditions"]}
            assert conds["Ready"]["status"] == "False"
            assert conds["DisruptionTarget"]["reason"] == "DeletionByTaintManager"

        # the replica set makes new pods; the "scheduler" puts them on node B
        def replacements() -> list[dict] | None:
            new = [p for p in rs_pods(admin, ns) if p["metadata"]["name"] not in first_names]
            return new if len(new) == 2 else None

        for i, p in enumerate(wait_for(replacements, 20, 0.2, "2 replacement pods")):
            bind_and_run(admin, ns, p, b.name, f"{cidrs[1][:-4]}{10 + i}")
        placed = [p for p in rs_pods(admin, ns) if not p["metadata"].get("deletionTimestamp")]
        assert sorted(p["spec"]["nodeName"] for p in placed) == [b.name, b.name]

        # node A comes back: Ready again, untainted
        a.post_ready()
        a.start_heartbeat()
        wait_for(lambda: not taint_keys(node(admin, a.name)), 20, 0.2, "node A's taints to go")
        controller_manager.assert_no_rbac_denials()
    finally:
        for p in rs_pods(admin, ns):
            admin.delete(f"/api/v1/namespaces/{ns}/pods/{p['metadata']['name']}", params={"gracePeriodSeconds": 0})
        admin.delete(f"/apis/apps/v1/namespaces/{ns}/replicasets/evictee")
        a.remove()
        b.remove()
