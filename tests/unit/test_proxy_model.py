"""kube_proxy.model: Service/EndpointSlice → proxier view, endpoint selection, change tracking."""

from kube_proxy.fake import make_endpoint, make_endpointslice, make_service
from kube_proxy.model import ProxyState, categorize_endpoints, service_to_ports

TCP80 = [{"name": "http", "port": 80, "protocol": "TCP"}]
EP_TCP = [{"name": "http", "port": 8080, "protocol": "TCP"}]
UDP53 = [{"name": "dns", "port": 53, "protocol": "UDP"}]
EP_UDP = [{"name": "dns", "port": 5353, "protocol": "UDP"}]


def _state(*objs, node="node-a"):
    st = ProxyState(node)
    for obj in objs:
        if obj["kind"] == "Service":
            st.on_service_update(None, obj)
        else:
            st.on_endpointslice_update(None, obj)
    st.apply_changes()
    return st


def test_service_ports_carry_every_field():
    svc = make_service(
        "web",
        "10.96.0.10",
        [{"name": "http", "port": 80, "nodePort": 30080}, {"name": "dns", "port": 53, "protocol": "UDP"}],
        svc_type="LoadBalancer",
        externalIPs=["192.0.2.50", "2001:db8::1"],
        externalTrafficPolicy="Local",
        healthCheckNodePort=31000,
        sessionAffinity="ClientIP",
        loadBalancerSourceRanges=[" 203.0.113.0/24 "],
        status={
            "loadBalancer": {"ingress": [{"ip": "198.51.100.7"}, {"ip": "198.51.100.8", "ipMode": "Proxy"}]}
        },
    )
    ports = service_to_ports(svc)
    http = ports[("default", "web", "http", "TCP")]
    assert http.name == "default/web:http"
    assert (http.cluster_ip, http.port, http.node_port) == ("10.96.0.10", 80, 30080)
    assert http.external_ips == ("192.0.2.50",)  # the IPv6 one belongs to another family
    assert http.load_balancer_ips == ("198.51.100.7",)  # ipMode Proxy needs no VIP rules
    assert http.load_balancer_source_ranges == ("203.0.113.0/24",)
    assert http.session_affinity_client_ip and http.sticky_seconds == 10800
    assert http.external_policy_local and not http.internal_policy_local
    assert http.health_check_node_port == 31000
    assert ports[("default", "web", "dns", "UDP")].protocol == "UDP"


def test_unnamed_port_name_and_defaults():
    ports = service_to_ports(make_service("api", "10.96.0.1", [{"port": 443}], namespace="kube"))
    (info,) = ports.values()
    assert info.name == "kube/api" and info.protocol == "TCP" and info.port_name == ""


def test_skipped_services():
    assert service_to_ports(make_service("h", "None", TCP80)) == {}
    assert service_to_ports(make_service("e", "", TCP80, svc_type="ExternalName")) == {}
    assert service_to_ports(make_service("v6", "fd00::1", TCP80)) == {}
    other = make_service("o", "10.96.0.3", TCP80)
    other["metadata"]["labels"] = {"service.kubernetes.io/service-proxy-name": "foo"}
    assert service_to_ports(other) == {}


def test_external_policy_local_only_for_externally_accessible_services():
    ports = service_to_ports(make_service("c", "10.96.0.4", TCP80, externalTrafficPolicy="Local"))
    assert not next(iter(ports.values())).external_policy_local


def test_affinity_timeout_from_config():
    svc = make_service(
        "s",
        "10.96.0.5",
        TCP80,
        sessionAffinity="ClientIP",
        sessionAffinityConfig={"clientIP": {"timeoutSeconds": 60}},
    )
    assert next(iter(service_to_ports(svc).values())).sticky_seconds == 60


def test_endpoints_from_slices_conditions_order_locality():
    st = _state(
        make_endpointslice(
            "web",
            [
                make_endpoint("10.244.2.9", node="node-b"),
                {"addresses": ["10.244.1.5"], "conditions": {}, "nodeName": "node-a"},  # nil = ready/serving
                make_endpoint("10.244.1.4", ready=False, serving=True, terminating=True),
            ],
            EP_TCP,
        )
    )
    eps = st.endpoints[("default", "web", "http", "TCP")]
    assert [e.addr for e in eps] == ["10.244.1.4:8080", "10.244.1.5:8080", "10.244.2.9:8080"]
    nil = eps[1]
    assert nil.ready and nil.serving and not nil.terminating and nil.is_local
    assert not eps[2].is_local
    assert (eps[0].ready, eps[0].serving, eps[0].terminating) == (False, True, True)


def test_duplicate_ip_across_slices_prefers_non_terminating():
    a = make_endpointslice(
        "web", [make_endpoint("10.244.1.4", ready=False, terminating=True)], EP_TCP, name="web-a"
    )
    b = make_endpointslice("web", ["10.244.1.4"], EP_TCP, name="web-b")
    for order in ((a, b), (b, a)):
        st = _state(*order)
        (ep,) = st.endpoints[("default", "web", "http", "TCP")]
        assert ep.ready and not ep.terminating


def test_ignored_slices():
    headless = make_endpointslice("h", ["10.244.1.1"], EP_TCP)
    headless["metadata"]["labels"]["service.kubernetes.io/headless"] = ""
    v6 = make_endpointslice("v6", ["fd00::5"], EP_TCP)
    v6["addressType"] = "IPv6"
    unlabelled = make_endpointslice("u", ["10.244.1.1"], EP_TCP)
    unlabelled["metadata"]["labels"] = {}
    zero_port = make_endpointslice("z", ["10.244.1.1"], [{"name": "x", "port": 0}])
    st = _state(headless, v6, unlabelled, zero_port)
    assert st.endpoints == {}


def test_multiple_slices_merge_and_slice_deletion():
    a = make_endpointslice("web", ["10.244.1.1"], EP_TCP, name="web-a")
    b = make_endpointslice("web", ["10.244.1.2"], EP_TCP, name="web-b")
    st = _state(a, b)
    assert len(st.endpoints[("default", "web", "http", "TCP")]) == 2
    st.on_endpointslice_update(b, None)
    result = st.apply_changes()
    assert result.updated_services == {("default", "web")}
    assert [e.ip for e in st.endpoints[("default", "web", "http", "TCP")]] == ["10.244.1.1"]
    st.on_endpointslice_update(a, None)
    st.apply_changes()
    assert st.endpoints == {}


# -- endpoint selection --------------------------------------------------------------------


def _svc(**spec):
    return next(
        iter(
            service_to_ports(
                make_service("web", "10.96.0.10", [{"name": "http", "port": 80, "nodePort": 30080}], **spec)
            ).values()
        )
    )


def _eps(*specs, node="node-a"):
    st = _state(make_endpointslice("web", list(specs), EP_TCP), node=node)
    return st.endpoints[("default", "web", "http", "TCP")]


def test_categorize_uses_only_ready_endpoints():
    eps = _eps(
        make_endpoint("10.244.1.1"),
        make_endpoint("10.244.1.2", ready=False),
        make_endpoint("10.244.1.3", ready=False, terminating=True),
    )
    cat = categorize_endpoints(eps, _svc())
    assert [e.ip for e in cat.cluster] == ["10.244.1.1"] and cat.reachable == cat.cluster and cat.has_any


def test_categorize_falls_back_to_serving_terminating():
    eps = _eps(
        make_endpoint("10.244.1.1", ready=False, serving=True, terminating=True),
        make_endpoint("10.244.1.2", ready=False, serving=False, terminating=True),
        make_endpoint("10.244.1.3", ready=False),  # not ready, not terminating: never used
    )
    cat = categorize_endpoints(eps, _svc())
    assert [e.ip for e in cat.cluster] == ["10.244.1.1"] and cat.has_any


def test_categorize_no_usable_endpoints():
    eps = _eps(make_endpoint("10.244.1.2", ready=False, serving=False, terminating=True))
    cat = categorize_endpoints(eps, _svc())
    assert cat.cluster == [] and cat.reachable == [] and not cat.has_any


def test_categorize_internal_local_keeps_this_node_only():
    eps = _eps(make_endpoint("10.244.1.1", node="node-a"), make_endpoint("10.244.2.1", node="node-b"))
    svc = next(
        iter(
            service_to_ports(
                make_service(
                    "web", "10.96.0.10", [{"name": "http", "port": 80}], internalTrafficPolicy="Local"
                )
            ).values()
        )
    )
    cat = categorize_endpoints(eps, svc)
    assert cat.cluster == [] and [e.ip for e in cat.local] == ["10.244.1.1"] and cat.reachable == cat.local


def test_categorize_external_local():
    eps = _eps(make_endpoint("10.244.1.1", node="node-a"), make_endpoint("10.244.2.1", node="node-b"))
    cat = categorize_endpoints(eps, _svc(type="NodePort", externalTrafficPolicy="Local"))
    assert len(cat.cluster) == 2 and [e.ip for e in cat.local] == ["10.244.1.1"]
    remote_only = _eps(make_endpoint("10.244.2.1", node="node-b"))
    cat = categorize_endpoints(remote_only, _svc(type="NodePort", externalTrafficPolicy="Local"))
    assert cat.local == [] and cat.has_any  # endpoints elsewhere: short-circuit still needed


def test_categorize_local_terminating_fallback_is_merged_into_reachable():
    eps = _eps(
        make_endpoint("10.244.1.1", node="node-a", ready=False, serving=True, terminating=True),
        make_endpoint("10.244.2.1", node="node-b"),
    )
    cat = categorize_endpoints(eps, _svc(type="NodePort", externalTrafficPolicy="Local"))
    assert [e.ip for e in cat.cluster] == ["10.244.2.1"]
    assert [e.ip for e in cat.local] == ["10.244.1.1"]
    assert [e.ip for e in cat.reachable] == ["10.244.1.1", "10.244.2.1"]


def test_categorize_zone_hints():
    eps = _eps(make_endpoint("10.244.1.1", zone_hints=["z1"]), make_endpoint("10.244.2.1", zone_hints=["z2"]))
    assert [e.ip for e in categorize_endpoints(eps, _svc(), zone="z1").cluster] == ["10.244.1.1"]
    assert len(categorize_endpoints(eps, _svc(), zone="z3").cluster) == 2  # no hint for our zone
    assert len(categorize_endpoints(eps, _svc(), zone="").cluster) == 2


# -- change tracking -------------------------------------------------------------------------


def test_update_then_revert_leaves_nothing_pending():
    st = ProxyState("node-a")
    svc = make_service("web", "10.96.0.10", TCP80)
    st.on_service_update(None, svc)
    st.apply_changes()
    changed = make_service("web", "10.96.0.10", [{"name": "http", "port": 81}])
    assert st.on_service_update(svc, changed)
    assert not st.on_service_update(changed, svc)
    assert st.apply_changes().updated_services == set()


def test_identical_slice_update_is_not_a_change():
    st = ProxyState("node-a")
    slc = make_endpointslice("web", ["10.244.1.1"], EP_TCP)
    st.on_endpointslice_update(None, slc)
    st.apply_changes()
    assert not st.on_endpointslice_update(slc, make_endpointslice("web", ["10.244.1.1"], EP_TCP))


def test_apply_reports_updated_services_and_deleted_udp_cluster_ips():
    dns = make_service("dns", "10.96.0.53", UDP53)
    web = make_service("web", "10.96.0.10", TCP80)
    st = _state(dns, web)
    st.on_service_update(dns, None)
    st.on_service_update(web, None)
    result = st.apply_changes()
    assert result.updated_services == {("default", "dns"), ("default", "web")}
    assert result.deleted_udp_cluster_ips == {"10.96.0.53"}  # TCP needs no conntrack flush
    assert st.services == {}


def test_stale_udp_endpoints_and_newly_active_services():
    st = _state(make_service("dns", "10.96.0.53", UDP53))
    first = make_endpointslice("dns", ["10.244.1.1"], EP_UDP)
    st.on_endpointslice_update(None, first)
    result = st.apply_changes()
    assert result.newly_active_udp_services == [("default", "dns", "dns", "UDP")]
    assert result.deleted_udp_endpoints == []

    switched = make_endpointslice("dns", ["10.244.1.2"], EP_UDP)
    st.on_endpointslice_update(first, switched)
    result = st.apply_changes()
    assert result.deleted_udp_endpoints == [(("default", "dns", "dns", "UDP"), "10.244.1.1:5353")]
    assert result.newly_active_udp_services == []

    # serving → not serving counts as gone; an endpoint that never served has no flows.
    not_serving = make_endpointslice("dns", [make_endpoint("10.244.1.2", ready=False, serving=False)], EP_UDP)
    st.on_endpointslice_update(switched, not_serving)
    assert st.apply_changes().deleted_udp_endpoints == [(("default", "dns", "dns", "UDP"), "10.244.1.2:5353")]
    st.on_endpointslice_update(not_serving, None)
    assert st.apply_changes().deleted_udp_endpoints == []


def test_replace_lists_delete_missing_objects():
    a, b = make_service("a", "10.96.0.1", TCP80), make_service("b", "10.96.0.2", TCP80)
    sa, sb = make_endpointslice("a", ["10.244.1.1"], EP_TCP), make_endpointslice("b", ["10.244.1.2"], EP_TCP)
    st = ProxyState("node-a")
    st.replace_services([a, b])
    st.replace_endpointslices([sa, sb])
    st.apply_changes()
    st.replace_services([a])
    st.replace_endpointslices([sa])
    result = st.apply_changes()
    assert result.updated_services == {("default", "b")}
    assert {k[1] for k in st.services} == {"a"} and {k[1] for k in st.endpoints} == {"a"}
