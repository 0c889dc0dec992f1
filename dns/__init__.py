"""Cluster DNS addon: answers <svc>.<ns>.svc.cluster.local & co. from Services and
EndpointSlices, served at the kube-dns Service (10.96.0.10).

records (ClusterDNS: the names, as CoreDNS's kubernetes plugin), server (UDP/TCP listeners,
optional upstream forwarding), addon (API objects, the kube-dns EndpointSlice publisher),
app (the daemon), launch (how minictl starts it).

Note: the package is named `dns`, so the DNS library used is dnslib (dnspython's import
name is also `dns` and would be shadowed by this package).
"""
