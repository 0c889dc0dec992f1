"""kube-proxy: Services + EndpointSlices (plain dicts) → iptables, nftables or IPVS rules.

Data plane: model (proxier view + change tracking), iptables (IptablesProxier, the default),
nftables (NftablesProxier), ipvs (IpvsProxier, check_ipvs_available), guard (service-CIDR
route + uplink guard), conntrack (stale UDP flows), bounded_runner (sync pacing), commands
(host tools), fake (FakeRunner/FakeIpvs for tests).
Daemon: app (informers → proxier, health, metrics, --cleanup), __main__ (flags), launch
(commands for minictl), lbcontroller (LoadBalancer addresses from a local pool).
"""
