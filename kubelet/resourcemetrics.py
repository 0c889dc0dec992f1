"""/metrics/resource: the kubelet's resource metrics in Prometheus text (upstream's
pkg/kubelet/metrics/collectors/resource_metrics.go) — what metrics-server scrapes: cumulative CPU
and working-set memory of the node, every pod and every running container, and their start times,
each sample stamped with the time it was measured. Made from the same numbers as /stats/summary.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from apimachinery.metrics import format_labels

#: (name, type, help) in upstream's order and words
FAMILIES = [
    ("container_cpu_usage_seconds_total", "counter",
     "[STABLE] Cumulative cpu time consumed by the container in core-seconds"),
    ("container_memory_working_set_bytes", "gauge", "[STABLE] Current working set of the container in bytes"),
    ("container_start_time_seconds", "gauge", "[STABLE] Start time of the container since unix epoch in seconds"),
    ("node_cpu_usage_seconds_total", "counter", "[STABLE] Cumulative cpu time consumed by the node in core-seconds"),
    ("node_memory_working_set_bytes", "gauge", "[STABLE] Current working set of the node in bytes"),
    ("pod_cpu_usage_seconds_total", "counter", "[STABLE] Cumulative cpu time consumed by the pod in core-seconds"),
    ("pod_memory_working_set_bytes", "gauge", "[STABLE] Current working set of the pod in bytes"),
    ("resource_scrape_error", "gauge", "[STABLE] 1 if there was an error while getting container metrics, 0 otherwise"),
]


def _ms(timestamp: str) -> int:
    return int(dt.datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC).timestamp() * 1000)


def _seconds(timestamp: str) -> float:
    return _ms(timestamp) / 1000


def _labels(**labels: str) -> str:
    return format_labels(list(labels), list(labels.values()))


def _num(v: float) -> str:
    return repr(float(v)) if isinstance(v, float) and not v.is_integer() else str(int(v))


def render(summary: dict[str, Any] | None) -> str:
    """The exposition text for a /stats/summary document (None: the summary failed)."""
    samples: dict[str, list[str]] = {name: [] for name, _, _ in FAMILIES}

    def add(name: str, labels: str, value: float, measured: str | None) -> None:
        samples[name].append(f"{name}{labels} {_num(value)}" + (f" {_ms(measured)}" if measured else ""))

    if summary is not None:
        node = summary.get("node") or {}
        cpu, mem = node.get("cpu") or {}, node.get("memory") or {}
        if cpu.get("time"):
            add("node_cpu_usage_seconds_total", "", cpu.get("usageCoreNanoSeconds", 0) / 1e9, cpu["time"])
        if mem.get("time"):
            add("node_memory_working_set_bytes", "", mem.get("workingSetBytes", 0), mem["time"])
        for pod in summary.get("pods") or []:
            ref = pod.get("podRef") or {}
            pod_labels = {"namespace": ref.get("namespace", ""), "pod": ref.get("name", "")}
            cpu, mem = pod.get("cpu") or {}, pod.get("memory") or {}
            if cpu.get("time"):
                add("pod_cpu_usage_seconds_total", _labels(**pod_labels), cpu.get("usageCoreNanoSeconds", 0) / 1e9,
                    cpu["time"])
            if mem.get("time"):
                add("pod_memory_working_set_bytes", _labels(**pod_labels), mem.get("workingSetBytes", 0), mem["time"])
            for c in pod.get("containers") or []:
                labels = _labels(container=c.get("name", ""), **pod_labels)
                cpu, mem = c.get("cpu") or {}, c.get("memory") or {}
                if cpu.get("time"):
                    add("container_cpu_usage_seconds_total", labels, cpu.get("usageCoreNanoSeconds", 0) / 1e9,
                        cpu["time"])
                if mem.get("time"):
                    add("container_memory_working_set_bytes", labels, mem.get("workingSetBytes", 0), mem["time"])
                if c.get("startTime"):  # no sample time, as upstream
                    add("container_start_time_seconds", labels, _seconds(c["startTime"]), None)
    add("resource_scrape_error", "", 0 if summary is not None else 1, None)
    lines: list[str] = []
    for name, kind, help_text in FAMILIES:
        if samples[name]:
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", *samples[name]]
    return "\n".join(lines) + "\n"


def configz(cfg: Any) -> dict[str, Any]:
    """/configz: the running configuration as upstream's KubeletConfiguration (the fields this
    kubelet has), under "kubeletconfig" as upstream serves it."""
    from apimachinery.duration import format_duration

    def duration(seconds: float) -> str:
        return format_duration(int(seconds * 1e9))

    def threshold(t: Any) -> str:
        return f"{t.percentage * 100:g}%" if t.quantity is None else str(t.quantity)

    config: dict[str, Any] = {
        "kind": "KubeletConfiguration", "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "enableServer": bool(cfg.port), "staticPodPath": cfg.pod_manifest_path,
        "syncFrequency": duration(cfg.sync_frequency), "fileCheckFrequency": duration(cfg.file_check_frequency),
        "address": cfg.address, "port": cfg.port, "tlsCertFile": cfg.tls_cert_file,
        "tlsPrivateKeyFile": cfg.tls_private_key_file, "rotateCertificates": cfg.rotate_certificates,
        "serverTLSBootstrap": cfg.rotate_server_certificates,
        "authentication": {"x509": {"clientCAFile": cfg.client_ca_file},
                           "webhook": {"enabled": cfg.authentication_token_webhook},
                           "anonymous": {"enabled": cfg.anonymous_auth}},
        "authorization": {"mode": cfg.authorization_mode},
        "healthzPort": cfg.healthz_port, "healthzBindAddress": cfg.healthz_bind_address,
        "clusterDomain": cfg.cluster_domain, "clusterDNS": list(cfg.cluster_dns),
        "nodeStatusUpdateFrequency": duration(cfg.node_status_update_frequency),
        "nodeStatusReportFrequency": duration(cfg.node_status_report_frequency),
        "nodeLeaseDurationSeconds": cfg.node_lease_duration_seconds,
        "cgroupRoot": cfg.cgroup_root, "cgroupsPerQOS": cfg.cgroups_per_qos, "cgroupDriver": "cgroupfs",
        "runtimeRequestTimeout": duration(cfg.runtime_request_timeout), "maxPods": cfg.max_pods,
        "podCIDR": cfg.pod_cidr, "resolvConf": cfg.resolv_conf, "serializeImagePulls": cfg.serialize_image_pulls,
        "evictionHard": {t.signal: threshold(t) for t in cfg.eviction_hard},
        "kubeAPIQPS": cfg.kube_api_qps, "kubeAPIBurst": cfg.kube_api_burst,
        "kubeReserved": {k: str(v) for k, v in cfg.kube_reserved.items()},
        "systemReserved": {k: str(v) for k, v in cfg.system_reserved.items()},
        "registerNode": cfg.register_node, "registerWithTaints": list(cfg.register_with_taints),
        "containerRuntimeEndpoint": cfg.container_runtime_endpoint,
    }
    return {"kubeletconfig": config}


#: cAdvisor's families the kubelet's /metrics/cadvisor carries here: (name, type, help, row key)
CADVISOR_FAMILIES = [
    ("container_cpu_usage_seconds_total", "counter", "Cumulative cpu time consumed in seconds.", "cpu_seconds"),
    ("container_last_seen", "gauge", "Last time a container was seen by the exporter", "last_seen"),
    ("container_memory_rss", "gauge", "Size of RSS in bytes.", "rss_bytes"),
    ("container_memory_usage_bytes", "gauge",
     "Current memory usage in bytes, including all memory regardless of when it was accessed", "usage_bytes"),
    ("container_memory_working_set_bytes", "gauge", "Current working set in bytes.", "working_set_bytes"),
    ("container_start_time_seconds", "gauge", "Start time of the container since unix epoch in seconds.",
     "start_time"),
]


def render_cadvisor(rows: list[dict[str, Any]]) -> str:
    """/metrics/cadvisor for running containers: cAdvisor's names and labels (container, id = the
    cgroup, image, name = the runtime's container id, namespace, pod), each sample stamped with the
    runtime's measurement time (ms). A row: those labels, the values by CADVISOR_FAMILIES' keys, "ms"."""
    lines: list[str] = []
    for name, kind, help_text, key in CADVISOR_FAMILIES:
        samples = []
        for row in sorted(rows, key=lambda r: (r["namespace"], r["pod"], r["container"])):
            labels = _labels(container=row["container"], id=row["id"], image=row["image"], name=row["name"],
                             namespace=row["namespace"], pod=row["pod"])
            samples.append(f"{name}{labels} {_num(row[key])} {row['ms']}")
        if samples:
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", *samples]
    return "\n".join(lines) + "\n" if lines else ""
