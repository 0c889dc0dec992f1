"""Service updates that change `type`: what is dropped before validation (upstream's
dropTypeDependentFields / patchAllocatedValues) and what validation then refuses."""

from __future__ import annotations

import copy
from typing import Any

from apiserver.registry.core import ServiceStrategy
from apiserver.registry.services import drop_type_dependent_fields, patch_allocated_values


def svc(**spec: Any) -> dict[str, Any]:
    base = {"selector": {"app": "a"}, "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 80}],
            "clusterIP": "10.96.0.20", "clusterIPs": ["10.96.0.20"], "ipFamilies": ["IPv4"],
            "ipFamilyPolicy": "SingleStack", "internalTrafficPolicy": "Cluster", "sessionAffinity": "None"}
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "namespace": "default", "resourceVersion": "1"},
            "spec": {**base, **spec}, "status": {"loadBalancer": {}}}


def nodeport(**spec: Any) -> dict[str, Any]:
    s = svc(type="NodePort", externalTrafficPolicy="Cluster", **spec)
    s["spec"]["ports"][0]["nodePort"] = 30080
    return s


def loadbalancer(**spec: Any) -> dict[str, Any]:
    s = svc(type="LoadBalancer", externalTrafficPolicy="Local", healthCheckNodePort=31999,
            allocateLoadBalancerNodePorts=True, loadBalancerClass="example.com/lb", **spec)
    s["spec"]["ports"][0]["nodePort"] = 30080
    s["status"] = {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}
    return s


def update(old: dict[str, Any], **spec: Any) -> dict[str, Any]:
    """`old` with `spec` merged in, run through the update preparation, as the handler does."""
    new = copy.deepcopy(old)
    new["spec"].update(spec)
    st = ServiceStrategy()
    st.prepare_for_update(new, old)
    st.default(new)
    return new


def fields(obj: dict[str, Any]) -> list[str]:
    return [c["field"] for c in ServiceStrategy().validate_update(obj, obj, True)]


def test_nodeport_to_clusterip_drops_unchanged_node_ports_and_traffic_policy() -> None:
    new = update(nodeport(), type="ClusterIP")
    assert "nodePort" not in new["spec"]["ports"][0]
    assert "externalTrafficPolicy" not in new["spec"]
    assert new["spec"]["clusterIP"] == "10.96.0.20"
    assert fields(new) == []


def test_a_new_node_port_is_kept_for_validation_to_refuse() -> None:
    old = nodeport()
    new = copy.deepcopy(old)
    new["spec"]["type"] = "ClusterIP"
    new["spec"]["ports"][0]["nodePort"] = 30081
    ServiceStrategy().prepare_for_update(new, old)
    assert new["spec"]["ports"][0]["nodePort"] == 30081
    assert fields(new) == ["spec.ports[0].nodePort"]


def test_fewer_node_ports_than_before_still_count_as_unchanged() -> None:
    old = nodeport()
    old["spec"]["ports"].append({"name": "b", "port": 81, "protocol": "TCP", "nodePort": 30081})
    new = copy.deepcopy(old)
    new["spec"]["type"] = "ClusterIP"
    new["spec"]["ports"][1].pop("nodePort")
    ServiceStrategy().prepare_for_update(new, old)
    assert all("nodePort" not in p for p in new["spec"]["ports"])


def test_loadbalancer_to_clusterip_drops_every_load_balancer_field() -> None:
    new = update(loadbalancer(), type="ClusterIP")
    for f in ("allocateLoadBalancerNodePorts", "loadBalancerClass", "externalTrafficPolicy", "healthCheckNodePort"):
        assert f not in new["spec"], f
    assert "nodePort" not in new["spec"]["ports"][0]
    assert new["status"] == {"loadBalancer": {}}
    assert fields(new) == []


def test_loadbalancer_to_nodeport_keeps_node_ports() -> None:
    new = update(loadbalancer(), type="NodePort")
    assert new["spec"]["ports"][0]["nodePort"] == 30080
    assert new["spec"]["externalTrafficPolicy"] == "Local"
    for f in ("allocateLoadBalancerNodePorts", "loadBalancerClass", "healthCheckNodePort"):
        assert f not in new["spec"], f
    assert fields(new) == []


def test_loadbalancer_local_to_cluster_drops_the_health_check_port() -> None:
    new = update(loadbalancer(), externalTrafficPolicy="Cluster")
    assert "healthCheckNodePort" not in new["spec"]
    assert new["spec"]["loadBalancerClass"] == "example.com/lb"
    assert new["status"]["loadBalancer"]["ingress"]


def test_load_balancer_fields_set_anew_on_another_type_are_refused() -> None:
    new = update(nodeport(), type="ClusterIP", allocateLoadBalancerNodePorts=False, loadBalancerClass="x.io/lb")
    assert new["spec"]["allocateLoadBalancerNodePorts"] is False
    assert fields(new) == ["spec.allocateLoadBalancerNodePorts", "spec.loadBalancerClass"]


def test_changed_traffic_policy_on_clusterip_is_refused() -> None:
    new = update(nodeport(), type="ClusterIP", externalTrafficPolicy="Local")
    assert fields(new) == ["spec.externalTrafficPolicy"]
    # ClusterIP with externalIPs is externally accessible: the policy stays and is valid
    new = update(nodeport(), type="ClusterIP", externalIPs=["192.0.2.7"])
    assert new["spec"]["externalTrafficPolicy"] == "Cluster" and fields(new) == []


def test_clusterip_to_externalname_drops_ip_fields() -> None:
    new = update(svc(type="ClusterIP"), type="ExternalName", externalName="example.com")
    for f in ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy", "internalTrafficPolicy"):
        assert f not in new["spec"], f
    assert fields(new) == []


def test_externalname_with_a_new_cluster_ip_is_refused() -> None:
    new = update(svc(type="ClusterIP"), type="ExternalName", externalName="example.com",
                 clusterIP="10.96.0.99", clusterIPs=["10.96.0.99"])
    assert new["spec"]["clusterIP"] == "10.96.0.99"
    assert fields(new) == ["spec.clusterIPs"]
    # clearing them while switching is fine
    new = update(svc(type="ClusterIP"), type="ExternalName", externalName="example.com", clusterIP="", clusterIPs=None)
    assert "clusterIP" not in new["spec"] and fields(new) == []


def test_externalname_leftovers_from_older_writes_are_dropped() -> None:
    """ExternalName services our older code stored still carry ipFamilies; updating them works."""
    old = svc(type="ExternalName", externalName="example.com")
    for f in ("clusterIP", "clusterIPs"):
        old["spec"].pop(f)
    new = update(old)
    assert "ipFamilies" not in new["spec"] and "ipFamilyPolicy" not in new["spec"]
    assert fields(new) == []


def test_create_validation_refuses_fields_of_other_types() -> None:
    ext = svc(type="ExternalName", externalName="example.com")
    assert sorted(c["field"] for c in ServiceStrategy().validate(ext, True)) == [
        "spec.clusterIPs", "spec.ipFamilies", "spec.ipFamilyPolicy"]
    hc = svc(type="NodePort", externalTrafficPolicy="Local", healthCheckNodePort=31000)
    assert [c["field"] for c in ServiceStrategy().validate(hc, True)] == ["spec.healthCheckNodePort"]


def test_nothing_is_dropped_when_the_type_keeps_its_fields() -> None:
    old = loadbalancer()
    new = copy.deepcopy(old)
    drop_type_dependent_fields(new, old)
    assert new == old


def test_patch_allocated_values_keeps_the_cluster_ip_a_put_left_out() -> None:
    old = svc()
    new = copy.deepcopy(old)
    new["spec"].pop("clusterIP")
    new["spec"].pop("clusterIPs")
    patch_allocated_values(new, old)
    assert new["spec"]["clusterIP"] == "10.96.0.20" and new["spec"]["clusterIPs"] == ["10.96.0.20"]
    # not when the service stops needing one
    new = update(old, type="ExternalName", externalName="example.com", clusterIP=None, clusterIPs=None)
    assert "clusterIP" not in new["spec"]
