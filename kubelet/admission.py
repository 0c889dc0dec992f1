"""Whether this node may run a new pod: upstream's kubelet admit handlers, as pure checks.

The kubelet asks, in upstream's order, after the eviction manager's pressure check:
- sysctls (pkg/kubelet/sysctl): every `securityContext.sysctls` name must be on the safe list
  or in `--allowed-unsafe-sysctls` (names or `prefix*` patterns, only of namespaced sysctls);
  a net./ipc-namespaced one is refused to a pod sharing that namespace with the host.
- the pod's OS (lifecycle/predicate.go): `spec.os.name` must be linux; so must a
  `kubernetes.io/os` label *of the pod* (upstream reads the pod's labels here, not its
  nodeSelector; a nodeSelector on that label is the node affinity check's business).
- the general predicates: resources fit what the other admitted pods leave of the node's
  allocatable (pods, cpu, memory, ephemeral-storage, then hugepages and extended resources;
  an extended resource the node does not have at all is ignored, as upstream), node affinity
  and nodeSelector, spec.nodeName, host ports, then NoExecute taints the pod does not tolerate
  (not checked for static pods).

Each check returns None (admit) or (reason, message); the kubelet shows the message as
"Pod was rejected: <message>" in the pod's status, as upstream's rejectPod.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from apimachinery.nodeaffinity import RequiredNodeAffinity
from apimachinery.podutil import host_ports
from apimachinery.quantity import CPU, EPHEMERAL_STORAGE, MEMORY, PODS, pod_requests
from apimachinery.taints import NO_EXECUTE, find_untolerated_taint

Rejection = tuple[str, str]

NODE_OS = "linux"
OS_LABEL = "kubernetes.io/os"

SYSCTL_FORBIDDEN = "SysctlForbidden"

#: upstream's safe sysctls in 1.31 (pkg/kubelet/sysctl/safe_sysctls.go), always allowed
SAFE_SYSCTLS = (
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
)

IPC_NAMESPACE, NET_NAMESPACE = "ipc", "net"
_NAMESPACED = {"kernel.sem": IPC_NAMESPACE}
_NAMESPACED_PREFIXES = (("kernel.shm", IPC_NAMESPACE), ("kernel.msg", IPC_NAMESPACE), ("fs.mqueue.", IPC_NAMESPACE),
                        ("net.", NET_NAMESPACE))


def _dotted(name: str) -> str:
    """A sysctl with '/' separators in its dotted form (upstream ConvertSysctlVariableToDotsSeparator):
    the first separator decides which one the name uses; dots inside a slash name stay as '/'."""
    first = next((i for i, ch in enumerate(name) if ch in "./"), -1)
    if first < 0 or name[first] == ".":
        return name
    return "".join("." if ch == "/" else "/" if ch == "." else ch for ch in name)


def sysctl_namespace(name: str) -> str:
    """The kernel namespace a sysctl lives in ("" when it is not known to be namespaced)."""
    if name in _NAMESPACED:
        return _NAMESPACED[name]
    for prefix, ns in _NAMESPACED_PREFIXES:
        if name.startswith(prefix):
            return ns
    return ""


class SysctlAllowlist:
    """The sysctls a pod may set here: the safe ones and `--allowed-unsafe-sysctls`."""

    def __init__(self, unsafe: Iterable[str] = ()) -> None:
        self.names: dict[str, str] = {}
        self.prefixes: dict[str, str] = {}
        for pattern in (*SAFE_SYSCTLS, *unsafe):
            s = _dotted(pattern.strip())
            if not s:
                continue
            if s.endswith("*"):
                ns = sysctl_namespace(s[:-1])
                if not ns:
                    raise ValueError(f'the sysctls "{s}" are not known to be namespaced')
                self.prefixes[s[:-1]] = ns
            else:
                ns = sysctl_namespace(s)
                if not ns:
                    raise ValueError(f'the sysctl "{s}" are not known to be namespaced')
                self.names[s] = ns

    def refuse(self, name: str, host_network: bool, host_ipc: bool) -> str | None:
        """Why the pod may not set `name` ("" / None: it may)."""
        s = _dotted(name)
        ns = self.names.get(s)
        if ns is None:
            ns = next((n for p, n in self.prefixes.items() if s.startswith(p)), None)
        if ns is None:
            return f'"{s}" not allowlisted'
        if (ns == IPC_NAMESPACE and host_ipc) or (ns == NET_NAMESPACE and host_network):
            return f'"{s}" not allowed with host {ns} enabled'
        return None

    def check(self, pod: Mapping[str, Any]) -> Rejection | None:
        spec = pod.get("spec") or {}
        for sysctl in (spec.get("securityContext") or {}).get("sysctls") or ():
            why = self.refuse(str(sysctl.get("name") or ""), bool(spec.get("hostNetwork")), bool(spec.get("hostIPC")))
            if why:
                return SYSCTL_FORBIDDEN, f"forbidden sysctl: {why}"
        return None


def check_os(pod: Mapping[str, Any]) -> Rejection | None:
    """upstream's OS admission: the pod's kubernetes.io/os label, then spec.os.name."""
    label = ((pod.get("metadata") or {}).get("labels") or {}).get(OS_LABEL)
    if label is not None and label != NODE_OS:
        return ("PodOSSelectorNodeLabelDoesNotMatch",
                "Failed to admit pod as the `kubernetes.io/os` label doesn't match node label")
    os_name = ((pod.get("spec") or {}).get("os") or {}).get("name")
    if os_name is not None and os_name != NODE_OS:
        return "PodOSNotSupported", "Failed to admit pod as the OS field doesn't match node OS"
    return None


def is_extended_resource_name(name: str) -> bool:
    """Not a native resource (those have no domain or one ending in kubernetes.io) nor a quota's requests.* name."""
    return "/" in name and "kubernetes.io/" not in name and not name.startswith("requests.")


def _out_of(name: str, requested: int, used: int, capacity: int) -> Rejection:
    return (f"OutOf{name}",
            f"Node didn't have enough resource: {name}, requested: {requested}, used: {used}, capacity: {capacity}")


def _predicate(name: str, description: str) -> Rejection:
    return name, f"Predicate {name} failed: {description}"


def check_resources(pod: Mapping[str, Any], allocatable: Mapping[str, int],
                    others: Sequence[Mapping[str, Any]]) -> Rejection | None:
    """upstream noderesources.Fits, first failure: the pod count, then cpu, memory,
    ephemeral-storage, then the other (scalar) resources."""
    allowed = allocatable.get(PODS, 0)
    if len(others) + 1 > allowed:
        return _out_of(PODS, 1, len(others), allowed)
    want = {n: v for n, v in pod_requests(pod.get("spec") or {}).items()
            if v > 0 and not (is_extended_resource_name(n) and n not in allocatable)}
    if not want:
        return None
    used: dict[str, int] = {}
    for p in others:
        for n, v in pod_requests(p.get("spec") or {}).items():
            used[n] = used.get(n, 0) + v
    order = [n for n in (CPU, MEMORY, EPHEMERAL_STORAGE) if n in want]
    order += sorted(n for n in want if n not in (CPU, MEMORY, EPHEMERAL_STORAGE))
    for n in order:
        if want[n] > allocatable.get(n, 0) - used.get(n, 0):
            return _out_of(n, want[n], used.get(n, 0), allocatable.get(n, 0))
    return None


def _port_conflict(want: tuple[str, str, int], used: Iterable[tuple[str, str, int]]) -> bool:
    """upstream HostPortInfo.CheckConflict: 0.0.0.0 conflicts with every address of the same protocol and port."""
    ip, proto, port = want
    for uip, uproto, uport in used:
        if uproto == proto and uport == port and (ip == "0.0.0.0" or uip in (ip, "0.0.0.0")):
            return True
    return False


def check_predicates(pod: Mapping[str, Any], node: Mapping[str, Any], allocatable: Mapping[str, int],
                     others: Sequence[Mapping[str, Any]], static: bool = False) -> Rejection | None:
    """upstream's general predicates (scheduler.AdmissionCheck) and the NoExecute taint check, first failure."""
    rejection = check_resources(pod, allocatable, others)
    if rejection is not None:
        return rejection
    spec = pod.get("spec") or {}
    meta = node.get("metadata") or {}
    node_name = meta.get("name") or ""
    if not RequiredNodeAffinity(spec).matches(meta.get("labels") or {}, node_name):
        return _predicate("NodeAffinity", "node(s) didn't match Pod's node affinity/selector")
    if spec.get("nodeName") and spec["nodeName"] != node_name:
        return _predicate("NodeName", "node(s) didn't match the requested node name")
    wanted = host_ports(spec)
    if wanted:
        used = [hp for p in others for hp in host_ports(p.get("spec") or {})]
        if any(_port_conflict(w, used) for w in wanted):
            return _predicate("NodePorts", "node(s) didn't have free ports for the requested pod ports")
    if not static:
        taints = (node.get("spec") or {}).get("taints") or []
        if find_untolerated_taint(taints, spec.get("tolerations") or [], lambda t: t.get("effect") == NO_EXECUTE):
            return _predicate("TaintToleration", "node(s) had taints that the pod didn't tolerate")
    return None


def admit(pod: Mapping[str, Any], node: Mapping[str, Any], allocatable: Mapping[str, int],
          others: Sequence[Mapping[str, Any]], sysctls: SysctlAllowlist, static: bool = False) -> Rejection | None:
    """All the checks after the eviction manager's, in upstream's order; the first failure."""
    return sysctls.check(pod) or check_os(pod) or check_predicates(pod, node, allocatable, others, static)
