"""CRI configs for a pod's sandbox and containers (upstream's generatePodSandboxConfig and
generateContainerConfig): DNS, hostname, ports, cgroup parent, security contexts, resources,
mounts, labels and the annotations that let a restarted kubelet adopt what it finds.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubelet import naming
from kubelet.cri import pb
from kubelet.qos import container_requests, container_resources, oom_score_adj, qos_class

log = logging.getLogger("kubelet.containerconfig")

MAX_DNS_SEARCHES = 32
MAX_NAMESERVERS = 3
DEFAULT_MASKED_PATHS = [
    "/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
    "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap",
]
DEFAULT_READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
_PROTOCOLS = {"TCP": pb.TCP, "UDP": pb.UDP, "SCTP": pb.SCTP}
_PROPAGATION = {
    "HostToContainer": pb.PROPAGATION_HOST_TO_CONTAINER,
    "Bidirectional": pb.PROPAGATION_BIDIRECTIONAL,
}


class ConfigError(Exception):
    """The container cannot be configured (CreateContainerConfigError)."""


@dataclass
class HostDNS:
    servers: list[str] = field(default_factory=list)
    searches: list[str] = field(default_factory=list)
    options: list[str] = field(default_factory=list)


def parse_resolv_conf(text: str) -> HostDNS:
    dns = HostDNS()
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].split(";", 1)[0].strip()
        fields = line.split()
        if not fields:
            continue
        if fields[0] == "nameserver" and len(fields) > 1:
            dns.servers.append(fields[1])
        elif fields[0] in ("search", "domain"):
            dns.searches = fields[1:]
        elif fields[0] == "options":
            dns.options.extend(fields[1:])
    return dns


def _merge_options(base: list[str], extra: list[dict[str, Any]]) -> list[str]:
    merged: dict[str, str | None] = {}
    for opt in base:
        name, sep, value = opt.partition(":")
        merged[name] = value if sep else None
    for opt in extra:
        merged[opt.get("name", "")] = opt.get("value")
    return [f"{k}:{v}" if v is not None else k for k, v in merged.items() if k]


def pod_dns(pod: dict[str, Any], cluster_dns: list[str], cluster_domain: str, host: HostDNS) -> pb.DNSConfig:
    """upstream GetPodDNS: the resolv.conf a pod gets from its dnsPolicy and dnsConfig."""
    spec = pod.get("spec") or {}
    policy = spec.get("dnsPolicy") or "ClusterFirst"
    ns = pod["metadata"].get("namespace", "default")
    if policy == "ClusterFirst" and spec.get("hostNetwork"):
        policy = "Default"
    if policy in ("ClusterFirst", "ClusterFirstWithHostNet") and not cluster_dns:
        policy = "Default"  # no cluster DNS configured: upstream falls back to the host's
    servers: list[str] = []
    searches: list[str] = []
    options: list[str] = []
    if policy in ("ClusterFirst", "ClusterFirstWithHostNet"):
        servers = list(cluster_dns)
        searches = [f"{ns}.svc.{cluster_domain}", f"svc.{cluster_domain}", cluster_domain, *host.searches]
        options = ["ndots:5"]
    elif policy == "Default":
        servers, searches, options = list(host.servers), list(host.searches), list(host.options)
    cfg = spec.get("dnsConfig") or {}
    servers += [s for s in cfg.get("nameservers") or [] if s not in servers]
    searches += [s for s in cfg.get("searches") or [] if s not in searches]
    options = _merge_options(options, cfg.get("options") or [])
    seen: set[str] = set()
    searches = [s for s in searches if not (s in seen or seen.add(s))]  # type: ignore[func-returns-value]
    return pb.DNSConfig(servers=servers[:MAX_NAMESERVERS], searches=searches[:MAX_DNS_SEARCHES], options=options)


def pod_hostname(pod: dict[str, Any], node_name: str) -> tuple[str, str]:
    """(hostname, domain) of a pod: spec.hostname or its name (63 chars), and its FQDN domain."""
    spec = pod.get("spec") or {}
    if spec.get("hostNetwork"):
        return node_name, ""
    hostname = (spec.get("hostname") or pod["metadata"]["name"])[:63].rstrip("-.")
    domain = ""
    if spec.get("subdomain"):
        domain = f"{spec['subdomain']}.{pod['metadata'].get('namespace', 'default')}.svc"
    return hostname, domain


def hosts_file(pod: dict[str, Any], pod_ips: list[str], node_name: str, cluster_domain: str,
               host_hosts: str = "") -> str:
    """The /etc/hosts the kubelet mounts into every container (upstream's managed hosts file)."""
    spec = pod.get("spec") or {}
    if spec.get("hostNetwork"):
        text = host_hosts if host_hosts.endswith("\n") or not host_hosts else host_hosts + "\n"
    else:
        lines = [
            "# Kubernetes-managed hosts file.",
            "127.0.0.1\tlocalhost",
            "::1\tlocalhost ip6-localhost ip6-loopback",
            "fe00::0\tip6-localnet",
            "fe00::0\tip6-mcastprefix",
            "fe00::1\tip6-allnodes",
            "fe00::2\tip6-allrouters",
        ]
        hostname, domain = pod_hostname(pod, node_name)
        for ip in pod_ips:
            if domain:
                lines.append(f"{ip}\t{hostname}.{domain}.{cluster_domain}\t{hostname}")
            else:
                lines.append(f"{ip}\t{hostname}")
        text = "\n".join(lines) + "\n"
    aliases = spec.get("hostAliases") or []
    if aliases:
        text += "\n# Entries added by HostAliases.\n"
        for alias in aliases:
            text += f"{alias.get('ip', '')}\t" + "\t".join(alias.get("hostnames") or []) + "\n"
    return text


def _namespace_options(spec: dict[str, Any], target_id: str = "") -> pb.NamespaceOption:
    """The pod's namespaces; `target_id` puts the container in that container's pid namespace
    (an ephemeral container's targetContainerName: upstream's NamespaceMode_TARGET)."""
    if target_id:
        pid = pb.TARGET
    else:
        pid = pb.NODE if spec.get("hostPID") else (pb.POD if spec.get("shareProcessNamespace") else pb.CONTAINER)
    return pb.NamespaceOption(
        network=pb.NODE if spec.get("hostNetwork") else pb.POD,
        pid=pid,
        ipc=pb.NODE if spec.get("hostIPC") else pb.POD,
        target_id=target_id,
    )


def _seccomp(profile: dict[str, Any] | None) -> pb.SecurityProfile | None:
    if not profile:
        return None
    kind = profile.get("type")
    if kind == "RuntimeDefault":
        return pb.SecurityProfile(profile_type=pb.SecurityProfile.RuntimeDefault)
    if kind == "Localhost":
        return pb.SecurityProfile(profile_type=pb.SecurityProfile.Localhost,
                                  localhost_ref=profile.get("localhostProfile", ""))
    return pb.SecurityProfile(profile_type=pb.SecurityProfile.Unconfined)


def effective_security_context(pod: dict[str, Any], container: dict[str, Any]) -> dict[str, Any]:
    """The container's securityContext with the pod-level defaults it does not override."""
    pod_sc = (pod.get("spec") or {}).get("securityContext") or {}
    sc = dict(container.get("securityContext") or {})
    for key in ("runAsUser", "runAsGroup", "runAsNonRoot", "seLinuxOptions", "seccompProfile"):
        if sc.get(key) is None and pod_sc.get(key) is not None:
            sc[key] = pod_sc[key]
    return sc


def check_run_as_non_root(pod: dict[str, Any], container: dict[str, Any], image: pb.Image | None) -> None:
    """upstream verifyRunAsNonRoot."""
    sc = effective_security_context(pod, container)
    if not sc.get("runAsNonRoot"):
        return
    who = f'(pod: "{naming.pod_full_name(pod)}({pod["metadata"]["uid"]})", container: {container["name"]})'
    if sc.get("runAsUser") is not None:
        if int(sc["runAsUser"]) == 0:
            raise ConfigError(f"container's runAsUser breaks non-root policy {who}")
        return
    uid: int | None = None
    username = ""
    if image is not None:
        if image.HasField("uid"):
            uid = image.uid.value
        username = image.username
    if username and uid is None:
        if not username.isdigit():
            raise ConfigError(f"container has runAsNonRoot and image has non-numeric user ({username}), "
                              f"cannot verify user is non-root {who}")
        uid = int(username)
    if uid is None or uid == 0:
        raise ConfigError(f"container has runAsNonRoot and image will run as root {who}")


class ConfigBuilder:
    def __init__(
        self, node_name: str, cluster_dns: list[str], cluster_domain: str, resolv_conf: str, logs_dir: Path,
        memory_capacity: int,
    ) -> None:
        self.node_name = node_name
        self.cluster_dns = cluster_dns
        self.cluster_domain = cluster_domain
        self.logs_dir = logs_dir
        self.memory_capacity = memory_capacity
        try:
            self.host_dns = parse_resolv_conf(Path(resolv_conf).read_text()) if resolv_conf else HostDNS()
        except OSError:
            self.host_dns = HostDNS()

    def log_directory(self, pod: dict[str, Any]) -> Path:
        meta = pod["metadata"]
        return self.logs_dir / naming.pod_log_dir_name(meta.get("namespace", "default"), meta["name"], meta["uid"])

    def sandbox_config(self, pod: dict[str, Any], attempt: int, cgroup_parent: str) -> pb.PodSandboxConfig:
        meta = pod["metadata"]
        spec = pod.get("spec") or {}
        # a host-network pod shares the node's UTS namespace: it cannot be given a hostname
        hostname = "" if spec.get("hostNetwork") else pod_hostname(pod, self.node_name)[0]
        pod_sc = spec.get("securityContext") or {}
        sandbox_sc = pb.LinuxSandboxSecurityContext(
            namespace_options=_namespace_options(spec),
            privileged=any(
                ((c.get("securityContext") or {}).get("privileged") is True)
                for c in list(spec.get("containers") or []) + list(spec.get("initContainers") or [])
            ),
            supplemental_groups=[int(g) for g in pod_sc.get("supplementalGroups") or []]
            + ([int(pod_sc["fsGroup"])] if pod_sc.get("fsGroup") is not None else []),
        )
        if pod_sc.get("runAsUser") is not None:
            sandbox_sc.run_as_user.value = int(pod_sc["runAsUser"])
        if pod_sc.get("runAsGroup") is not None:
            sandbox_sc.run_as_group.value = int(pod_sc["runAsGroup"])
        seccomp = _seccomp(pod_sc.get("seccompProfile"))
        if seccomp is not None:
            sandbox_sc.seccomp.CopyFrom(seccomp)
        ports = []
        for c in spec.get("containers") or []:
            for p in c.get("ports") or []:
                if p.get("hostPort"):
                    ports.append(pb.PortMapping(
                        protocol=_PROTOCOLS.get(p.get("protocol") or "TCP", pb.TCP),
                        container_port=int(p["containerPort"]), host_port=int(p["hostPort"]),
                        host_ip=p.get("hostIP", ""),
                    ))
        annotations = dict(meta.get("annotations") or {})
        return pb.PodSandboxConfig(
            metadata=pb.PodSandboxMetadata(
                name=meta["name"], uid=meta["uid"], namespace=meta.get("namespace", "default"), attempt=attempt
            ),
            hostname=hostname,
            log_directory=str(self.log_directory(pod)),
            dns_config=pod_dns(pod, self.cluster_dns, self.cluster_domain, self.host_dns),
            port_mappings=ports,
            labels=naming.sandbox_labels(pod),
            annotations=annotations,
            linux=pb.LinuxPodSandboxConfig(
                cgroup_parent=cgroup_parent,
                security_context=sandbox_sc,
                sysctls={s["name"]: str(s.get("value", "")) for s in pod_sc.get("sysctls") or [] if s.get("name")},
            ),
        )

    def container_config(
        self,
        pod: dict[str, Any],
        container: dict[str, Any],
        *,
        init: bool,
        restart_count: int,
        image_ref: str,
        env: list[tuple[str, str]],
        command: list[str],
        args: list[str],
        mounts: list[pb.Mount],
        termination_file: str,
        target_id: str = "",
    ) -> pb.ContainerConfig:
        spec = pod.get("spec") or {}
        sc = effective_security_context(pod, container)
        privileged = sc.get("privileged") is True
        caps = sc.get("capabilities") or {}
        security = pb.LinuxContainerSecurityContext(
            capabilities=pb.Capability(
                add_capabilities=list(caps.get("add") or []), drop_capabilities=list(caps.get("drop") or [])
            ),
            privileged=privileged,
            namespace_options=_namespace_options(spec, target_id),
            readonly_rootfs=sc.get("readOnlyRootFilesystem") is True,
            supplemental_groups=[int(g) for g in ((spec.get("securityContext") or {}).get("supplementalGroups") or [])]
            + ([int(spec["securityContext"]["fsGroup"])] if (spec.get("securityContext") or {}).get("fsGroup") is not None else []),
            no_new_privs=sc.get("allowPrivilegeEscalation") is False,
        )
        if not privileged and sc.get("procMount") != "Unmasked":
            security.masked_paths.extend(DEFAULT_MASKED_PATHS)
            security.readonly_paths.extend(DEFAULT_READONLY_PATHS)
        if sc.get("runAsUser") is not None:
            security.run_as_user.value = int(sc["runAsUser"])
        if sc.get("runAsGroup") is not None:
            security.run_as_group.value = int(sc["runAsGroup"])
        seccomp = _seccomp(sc.get("seccompProfile"))
        if seccomp is not None:
            security.seccomp.CopyFrom(seccomp)
        r = container_resources(container)
        qos = qos_class(spec)
        resources = pb.LinuxContainerResources(
            cpu_shares=r.cpu_shares or 0,
            cpu_quota=r.cpu_quota or 0,
            cpu_period=r.cpu_period or 0,
            memory_limit_in_bytes=r.memory_limit or 0,
            oom_score_adj=oom_score_adj(qos, container_requests(container).get("memory", 0), self.memory_capacity),
        )
        annotations = {
            naming.CONTAINER_HASH: naming.container_hash(container),
            naming.RESTART_COUNT: str(restart_count),
            naming.TERMINATION_MESSAGE_PATH: container.get("terminationMessagePath") or "/dev/termination-log",
            naming.TERMINATION_MESSAGE_POLICY: container.get("terminationMessagePolicy") or "File",
            naming.TERMINATION_MESSAGE_FILE: termination_file,
            naming.POD_TERMINATION_GRACE: str(spec.get("terminationGracePeriodSeconds", 30)),
        }
        if pod["metadata"].get("deletionGracePeriodSeconds") is not None:
            annotations[naming.POD_DELETION_GRACE] = str(pod["metadata"]["deletionGracePeriodSeconds"])
        pre_stop = (container.get("lifecycle") or {}).get("preStop")
        if pre_stop:
            annotations[naming.PRE_STOP_HANDLER] = json.dumps(pre_stop, sort_keys=True)
        if container.get("ports"):
            annotations[naming.CONTAINER_PORTS] = json.dumps(container["ports"], sort_keys=True)
        return pb.ContainerConfig(
            metadata=pb.ContainerMetadata(name=container["name"], attempt=restart_count),
            image=pb.ImageSpec(image=image_ref, user_specified_image=container.get("image", "")),
            command=command,
            args=args,
            working_dir=container.get("workingDir", ""),
            envs=[pb.KeyValue(key=k, value=v.encode() if isinstance(v, str) else v) for k, v in env],
            mounts=mounts,
            labels=naming.container_labels(pod, container, init),
            annotations=annotations,
            log_path=naming.container_log_path(container["name"], restart_count),
            stdin=bool(container.get("stdin")),
            stdin_once=bool(container.get("stdinOnce")),
            tty=bool(container.get("tty")),
            linux=pb.LinuxContainerConfig(resources=resources, security_context=security),
        )


def mount(container_path: str, host_path: str, read_only: bool, propagation: str | None = None) -> pb.Mount:
    return pb.Mount(
        container_path=container_path,
        host_path=host_path,
        readonly=read_only,
        propagation=_PROPAGATION.get(propagation or "", pb.PROPAGATION_PRIVATE),
    )
