"""kube-proxy data plane: Services + EndpointSlices (plain dicts) → iptables or IPVS rules.

model (proxier view + change tracking), iptables (IptablesProxier), ipvs (IpvsProxier,
check_ipvs_available), guard (service-CIDR route + uplink guard), conntrack (stale UDP flows),
bounded_runner (sync pacing), commands (host tools), fake (FakeRunner/FakeIpvs for tests).
"""
