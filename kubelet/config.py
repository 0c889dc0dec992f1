"""The kubelet's configuration (its flags), with upstream's defaults where they apply.

Durations are seconds (floats); quantities are ints (millicores for cpu, bytes otherwise).
"""

from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass, field
from pathlib import Path

from apimachinery.quantity import resource_int

DEFAULT_EVICTION_HARD = "memory.available<100Mi,nodefs.available<10%,nodefs.inodesFree<5%,imagefs.available<15%"
EVICTION_SIGNALS = (
    "memory.available", "nodefs.available", "nodefs.inodesFree", "imagefs.available", "imagefs.inodesFree",
    "pid.available",
)


@dataclass(frozen=True)
class Threshold:
    """An eviction threshold: `signal < quantity` (bytes/count) or `signal < percentage` of capacity."""

    signal: str
    quantity: int | None = None
    percentage: float | None = None

    def value(self, capacity: int) -> int:
        """The threshold as an absolute amount for a resource of `capacity`."""
        if self.quantity is not None:
            return self.quantity
        return int(capacity * (self.percentage or 0.0))

    def describe(self) -> str:
        if self.quantity is not None:
            return str(self.quantity)
        return f"{(self.percentage or 0.0) * 100:g}%"


def parse_eviction_thresholds(text: str) -> list[Threshold]:
    """`memory.available<100Mi,nodefs.available<10%` → thresholds (upstream's --eviction-hard syntax)."""
    out = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        m = re.fullmatch(r"([a-zA-Z.]+)\s*<\s*(\S+)", part)
        if not m:
            raise ValueError(f"invalid eviction threshold {part!r} (want signal<quantity)")
        signal, amount = m.group(1), m.group(2)
        if signal not in EVICTION_SIGNALS:
            raise ValueError(f"unknown eviction signal {signal!r}; one of {', '.join(EVICTION_SIGNALS)}")
        if amount.endswith("%"):
            pct = float(amount[:-1])
            if not 0 <= pct <= 100:
                raise ValueError(f"eviction threshold percentage out of range: {part!r}")
            out.append(Threshold(signal, percentage=pct / 100.0))
        else:
            out.append(Threshold(signal, quantity=resource_int("memory", amount)))
    return out


def parse_resource_list(text: str) -> dict[str, int]:
    """`cpu=100m,memory=256Mi` → {"cpu": 100, "memory": 268435456} (--kube-reserved syntax)."""
    out: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, amount = part.partition("=")
        if not sep or not name or not amount:
            raise ValueError(f"invalid resource {part!r} (want name=quantity)")
        out[name.strip()] = resource_int(name.strip(), amount.strip())
    return out


def parse_labels(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, _, value = part.partition("=")
        out[key.strip()] = value.strip()
    return out


def parse_list(text: str) -> list[str]:
    """`a,b, c` → ["a", "b", "c"] (a comma-separated flag)."""
    return [p.strip() for p in text.split(",") if p.strip()]


def parse_taints(text: str) -> list[dict[str, str]]:
    """`key=value:NoSchedule,key2:NoExecute` → taints (--register-with-taints syntax)."""
    out = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        kv, sep, effect = part.rpartition(":")
        if not sep or effect not in ("NoSchedule", "PreferNoSchedule", "NoExecute"):
            raise ValueError(f"invalid taint {part!r} (want key[=value]:Effect)")
        key, _, value = kv.partition("=")
        taint = {"key": key, "effect": effect}
        if value:
            taint["value"] = value
        out.append(taint)
    return out


@dataclass
class KubeletConfig:
    """Everything the kubelet is told at start; one field per flag."""

    kubeconfig: str = ""
    bootstrap_kubeconfig: str = ""
    cert_dir: str = ""  # default: <root_dir>/pki
    rotate_certificates: bool = False  # upstream's default; minictl's kubelets turn it on, as kubeadm
    # upstream's serverTLSBootstrap: the serving certificate from a kubelet-serving CSR, renewed
    rotate_server_certificates: bool = False
    node_name: str = field(default_factory=lambda: socket.gethostname().lower())
    node_ip: str = ""
    root_dir: str = "/var/lib/kubelet"
    pod_logs_dir: str = ""  # default: <root_dir>/pod-logs
    container_runtime_endpoint: str = "unix:///run/containerd/containerd.sock"
    runtime_request_timeout: float = 120.0
    # the HTTPS server (logs, exec, port-forward, stats)
    address: str = "0.0.0.0"
    port: int = 10250
    tls_cert_file: str = ""
    tls_private_key_file: str = ""
    client_ca_file: str = ""
    authentication_token_webhook: bool = True
    authorization_mode: str = "Webhook"  # or AlwaysAllow
    anonymous_auth: bool = False
    # health
    healthz_bind_address: str = "127.0.0.1"
    healthz_port: int = 10248
    # API client
    kube_api_qps: float = 50.0
    kube_api_burst: int = 100
    # networking
    pod_cidr: str = ""
    cluster_cidr: str = "10.244.0.0/16"
    service_cidr: str = "10.96.0.0/16"
    cni_conf_dir: str = ""
    cni_bin_dir: str = "/usr/lib/cni"
    cni_bridge: str = "mk8s0"
    cni_network_name: str = "minik8s"
    manage_iptables: bool = True
    guard_pod_egress: bool = True
    cluster_dns: list[str] = field(default_factory=list)
    cluster_domain: str = "cluster.local"
    resolv_conf: str = "/etc/resolv.conf"
    # cgroups
    cgroup_root: str = "/"
    cgroups_per_qos: bool = True
    # node
    max_pods: int = 110
    node_labels: dict[str, str] = field(default_factory=dict)
    register_with_taints: list[dict[str, str]] = field(default_factory=list)
    register_node: bool = True
    kube_reserved: dict[str, int] = field(default_factory=dict)
    system_reserved: dict[str, int] = field(default_factory=dict)
    node_status_update_frequency: float = 10.0
    node_status_report_frequency: float = 300.0
    node_lease_duration_seconds: int = 40
    # pods
    sync_frequency: float = 60.0
    pleg_relist_period: float = 1.0
    housekeeping_interval: float = 2.0
    pod_manifest_path: str = ""
    file_check_frequency: float = 20.0
    serialize_image_pulls: bool = True
    max_parallel_pod_starts: int = 0  # 0: twice the CPUs
    image_pull_backoff_max: float = 300.0
    crash_loop_backoff_initial: float = 10.0
    crash_loop_backoff_max: float = 300.0
    # unsafe sysctls pods may set besides the safe ones (names or `prefix*`, namespaced only)
    allowed_unsafe_sysctls: list[str] = field(default_factory=list)
    # eviction and garbage collection
    eviction_hard: list[Threshold] = field(default_factory=lambda: parse_eviction_thresholds(DEFAULT_EVICTION_HARD))
    eviction_pressure_transition_period: float = 300.0
    eviction_monitoring_interval: float = 10.0
    image_gc_high_threshold_percent: int = 85
    image_gc_low_threshold_percent: int = 80
    image_gc_period: float = 300.0
    # container log rotation (logrotation.py); a negative max size turns it off
    container_log_max_size: int = 10 * 1024 * 1024
    container_log_max_files: int = 5
    container_log_max_workers: int = 1
    container_log_monitor_interval: float = 10.0
    # restart safety: orphaned runtime pods are removed only after the API view synced
    pod_sandbox_image: str = "localhost/minik8s/pause:3.9"

    @property
    def root(self) -> Path:
        return Path(self.root_dir)

    @property
    def certs_dir(self) -> Path:
        return Path(self.cert_dir) if self.cert_dir else self.root / "pki"

    @property
    def logs_dir(self) -> Path:
        return Path(self.pod_logs_dir) if self.pod_logs_dir else self.root / "pod-logs"

    @property
    def pods_dir(self) -> Path:
        return self.root / "pods"

    @property
    def cni_dir(self) -> Path:
        return Path(self.cni_conf_dir) if self.cni_conf_dir else self.root / "cni" / "net.d"


_DURATION_UNITS = {"ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str | float | int) -> float:
    """Seconds from a Go duration ("10s", "5m0s", "1h30m", "250ms") or a plain number."""
    if isinstance(text, (int, float)):
        return float(text)
    s = text.strip()
    try:
        return float(s)
    except ValueError:
        pass
    total, pos = 0.0, 0
    for m in re.finditer(r"(\d+(?:\.\d+)?)(ms|s|m|h)", s):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        pos = m.end()
    if pos != len(s) or not s:
        raise ValueError(f"invalid duration {text!r}")
    return total


MIN_CONTAINER_LOG_MONITOR_INTERVAL = 3.0


def container_log_rotation_errors(cfg: KubeletConfig) -> list[str]:
    """Upstream's validation of the container log rotation settings (field, flag and rule)."""
    errs = []
    if cfg.container_log_max_files < 2:
        errs.append(f"containerLogMaxFiles (--container-log-max-files) must be greater than 1, "
                    f"not {cfg.container_log_max_files}")
    if cfg.container_log_max_workers < 1:
        errs.append(f"containerLogMaxWorkers (--container-log-max-workers) must be greater than or equal to 1, "
                    f"not {cfg.container_log_max_workers}")
    if cfg.container_log_monitor_interval < MIN_CONTAINER_LOG_MONITOR_INTERVAL:
        errs.append("containerLogMonitorInterval (--container-log-monitor-interval) must be a positive time "
                    "duration greater than or equal to 3s")
    return errs


def check_container_log_rotation(cfg: KubeletConfig) -> None:
    """ValueError when the container log rotation settings are invalid."""
    errs = container_log_rotation_errors(cfg)
    if errs:
        raise ValueError(f"invalid configuration: {errs[0]}")


def parse_size(text: str) -> int:
    """`10Mi`, `10M`, `1048576` → bytes."""
    return resource_int("memory", text.strip())


def _port_error(value: int) -> bool:
    return not 1 <= value <= 65535


def validate_config(cfg: KubeletConfig) -> list[str]:
    """Upstream's ValidateKubeletConfiguration, for the settings this kubelet honours: every problem,
    in upstream's words. (`--port 0` stays allowed: here it means no HTTPS server.)"""
    errs = []
    if cfg.node_lease_duration_seconds <= 0:
        errs.append("nodeLeaseDurationSeconds must be greater than 0")
    if cfg.healthz_port != 0 and _port_error(cfg.healthz_port):
        errs.append(f"healthzPort (--healthz-port) {cfg.healthz_port} must be between 1 and 65535, inclusive")
    if cfg.port != 0 and _port_error(cfg.port):
        errs.append(f"port (--port) {cfg.port} must be between 1 and 65535, inclusive")
    high, low = cfg.image_gc_high_threshold_percent, cfg.image_gc_low_threshold_percent
    if not 0 <= high <= 100:
        errs.append(f"imageGCHighThresholdPercent (--image-gc-high-threshold) {high} must be between 0 and 100, "
                    "inclusive")
    if not 0 <= low <= 100:
        errs.append(f"imageGCLowThresholdPercent (--image-gc-low-threshold) {low} must be between 0 and 100, "
                    "inclusive")
    if low >= high:
        errs.append(f"imageGCLowThresholdPercent (--image-gc-low-threshold) {low} must be less than "
                    f"imageGCHighThresholdPercent (--image-gc-high-threshold) {high}")
    if cfg.kube_api_burst < 0:
        errs.append(f"kubeAPIBurst (--kube-api-burst) {cfg.kube_api_burst} must not be a negative number")
    if cfg.kube_api_qps < 0:
        errs.append(f"kubeAPIQPS (--kube-api-qps) {cfg.kube_api_qps:g} must not be a negative number")
    if cfg.max_pods < 0:
        errs.append(f"maxPods (--max-pods) {cfg.max_pods} must not be a negative number")
    if not cfg.container_runtime_endpoint:
        errs.append("the containerRuntimeEndpoint was not specified or empty")
    errs += container_log_rotation_errors(cfg)
    if cfg.pod_logs_dir:
        if not cfg.pod_logs_dir.startswith("/"):
            errs.append(f"pod logs path {cfg.pod_logs_dir!r} must be absolute path")
        elif os.path.normpath(cfg.pod_logs_dir) != cfg.pod_logs_dir.rstrip("/") or "//" in cfg.pod_logs_dir:
            errs.append(f"pod logs path {cfg.pod_logs_dir!r} must be normalized")
        if not cfg.pod_logs_dir.isascii():
            errs.append(f"pod logs path {cfg.pod_logs_dir!r} must contain ASCII characters only")
    for name, value in (("syncFrequency", cfg.sync_frequency), ("fileCheckFrequency", cfg.file_check_frequency),
                        ("nodeStatusUpdateFrequency", cfg.node_status_update_frequency),
                        ("nodeStatusReportFrequency", cfg.node_status_report_frequency),
                        ("runtimeRequestTimeout", cfg.runtime_request_timeout)):
        if value < 0:
            errs.append(f"{name} {value:g}s must not be negative")
    return [f"invalid configuration: {e}" for e in errs]
