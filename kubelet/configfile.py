"""The kubelet's --config file: a KubeletConfiguration (kubelet.config.k8s.io/v1beta1), as upstream's
kubelet 1.31 reads it, plus the --config-dir drop-ins.

How the pieces combine (upstream's cmd/kubelet/app/server.go):

1. the main file is read (YAML or JSON; empty is an error), its apiVersion/kind checked, its
   relative paths resolved against the file's directory;
2. every `*.conf` file under --config-dir (walked in lexical order) is a JSON merge patch
   (RFC 7386) over the result: maps merge key by key, lists and scalars are replaced;
3. the command line is applied over that: a flag given on the command line always wins.

Decoding follows upstream's v1beta1 path: the strict decoder refuses unknown and duplicate fields,
upstream then falls back to a lenient decode of v1beta1 and only logs the strict error. So they
are warnings here too, never a refusal. A wrong type (a string where a number belongs) is an error.

Fields are mapped onto our flags (FIELDS: the field, the click parameter it sets, its type).
Known fields of 1.31's KubeletConfiguration that this kubelet does not implement are accepted and
named in one warning line (when set to something other than their zero value, which upstream
treats as unset anyway).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from kubelet.config import parse_duration, parse_size

API_GROUP = "kubelet.config.k8s.io"
API_VERSION = f"{API_GROUP}/v1beta1"
KIND = "KubeletConfiguration"
DROPIN_SUFFIX = ".conf"


class ConfigFileError(ValueError):
    """The config file can not be used (read, decode, type or validation error)."""


# --- decoding -------------------------------------------------------------------------------

class _Loader(yaml.SafeLoader):
    """A YAML loader that notes duplicate keys (the last one wins, as in the lenient decode)."""

    duplicates: list[str]


def _construct_mapping(loader: _Loader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            loader.duplicates.append(str(key))
        seen.add(key)
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def decode(data: bytes | str, name: str) -> tuple[dict[str, Any], list[str]]:
    """The document as a dict and the duplicate keys found (YAML or JSON; JSON is YAML)."""
    text = data.decode("utf-8", errors="replace") if isinstance(data, bytes) else data
    if not text.strip():
        raise ConfigFileError(f"kubelet config file {name!r} was empty")
    loader = _Loader(text)
    loader.duplicates = []
    try:
        doc = loader.get_single_data()
    except yaml.YAMLError as e:
        raise ConfigFileError(f"failed to decode {name}: {_one_line(e)}") from None
    finally:
        loader.dispose()
    if not isinstance(doc, dict):
        raise ConfigFileError(f"failed to decode {name}: want a KubeletConfiguration object, not {type(doc).__name__}")
    return doc, loader.duplicates


def _one_line(e: Exception) -> str:
    return " ".join(str(e).split())


def check_type_meta(doc: dict[str, Any], name: str) -> None:
    """apiVersion and kind, as upstream's decoder checks them (only v1beta1 KubeletConfiguration)."""
    api_version, kind = doc.get("apiVersion"), doc.get("kind")
    if not kind:
        raise ConfigFileError(f"failed to decode {name}: Object 'Kind' is missing")
    if not api_version:
        raise ConfigFileError(f"failed to decode {name}: Object 'apiVersion' is missing")
    if not isinstance(api_version, str) or not isinstance(kind, str):
        raise ConfigFileError(f"failed to decode {name}: apiVersion and kind must be strings")
    if api_version != API_VERSION or kind != KIND:
        raise ConfigFileError(f"failed to decode {name}: no kind {kind!r} is registered for version "
                              f"{api_version!r} (want apiVersion {API_VERSION}, kind {KIND})")


# --- the schema: what 1.31's KubeletConfiguration knows ---------------------------------------

# Field → its nested schema (None: a leaf or an opaque value). Nested objects list their fields.
_AUTHN = {"x509": {"clientCAFile": None}, "webhook": {"enabled": None, "cacheTTL": None},
          "anonymous": {"enabled": None}}
_AUTHZ = {"mode": None, "webhook": {"cacheAuthorizedTTL": None, "cacheUnauthorizedTTL": None}}
SCHEMA: dict[str, Any] = {
    "apiVersion": None, "kind": None,
    "enableServer": None, "staticPodPath": None, "podLogsDir": None, "syncFrequency": None,
    "fileCheckFrequency": None, "httpCheckFrequency": None, "staticPodURL": None, "staticPodURLHeader": None,
    "address": None, "port": None, "readOnlyPort": None, "tlsCertFile": None, "tlsPrivateKeyFile": None,
    "tlsCipherSuites": None, "tlsMinVersion": None, "rotateCertificates": None, "serverTLSBootstrap": None,
    "authentication": _AUTHN, "authorization": _AUTHZ, "registryPullQPS": None, "registryBurst": None,
    "eventRecordQPS": None, "eventBurst": None, "enableDebuggingHandlers": None,
    "enableContentionProfiling": None, "healthzPort": None, "healthzBindAddress": None, "oomScoreAdj": None,
    "clusterDomain": None, "clusterDNS": None, "streamingConnectionIdleTimeout": None,
    "nodeStatusUpdateFrequency": None, "nodeStatusReportFrequency": None, "nodeLeaseDurationSeconds": None,
    "imageMinimumGCAge": None, "imageMaximumGCAge": None, "imageGCHighThresholdPercent": None,
    "imageGCLowThresholdPercent": None, "volumeStatsAggPeriod": None, "kubeletCgroups": None,
    "systemCgroups": None, "cgroupRoot": None, "cgroupsPerQOS": None, "cgroupDriver": None,
    "cpuManagerPolicy": None, "cpuManagerPolicyOptions": None, "cpuManagerReconcilePeriod": None,
    "memoryManagerPolicy": None, "topologyManagerPolicy": None, "topologyManagerScope": None,
    "topologyManagerPolicyOptions": None, "qosReserved": None, "runtimeRequestTimeout": None,
    "hairpinMode": None, "maxPods": None, "podCIDR": None, "podPidsLimit": None, "resolvConf": None,
    "runOnce": None, "cpuCFSQuota": None, "cpuCFSQuotaPeriod": None, "nodeStatusMaxImages": None,
    "maxOpenFiles": None, "contentType": None, "kubeAPIQPS": None, "kubeAPIBurst": None,
    "serializeImagePulls": None, "maxParallelImagePulls": None, "evictionHard": None, "evictionSoft": None,
    "evictionSoftGracePeriod": None, "evictionPressureTransitionPeriod": None,
    "evictionMaxPodGracePeriod": None, "evictionMinimumReclaim": None, "podsPerCore": None,
    "enableControllerAttachDetach": None, "protectKernelDefaults": None, "makeIPTablesUtilChains": None,
    "iptablesMasqueradeBit": None, "iptablesDropBit": None, "featureGates": None, "failSwapOn": None,
    "memorySwap": {"swapBehavior": None}, "containerLogMaxSize": None, "containerLogMaxFiles": None,
    "containerLogMaxWorkers": None, "containerLogMonitorInterval": None,
    "configMapAndSecretChangeDetectionStrategy": None, "systemReserved": None, "kubeReserved": None,
    "reservedSystemCPUs": None, "showHiddenMetricsForVersion": None, "systemReservedCgroup": None,
    "kubeReservedCgroup": None, "enforceNodeAllocatable": None, "allowedUnsafeSysctls": None,
    "volumePluginDir": None, "providerID": None, "kernelMemcgNotification": None, "logging": None,
    "enableSystemLogHandler": None, "enableSystemLogQuery": None, "shutdownGracePeriod": None,
    "shutdownGracePeriodCriticalPods": None, "shutdownGracePeriodByPodPriority": None, "reservedMemory": None,
    "enableProfilingHandler": None, "enableDebugFlagsHandler": None, "seccompDefault": None,
    "memoryThrottlingFactor": None, "registerWithTaints": None, "registerNode": None, "tracing": None,
    "localStorageCapacityIsolation": None, "containerRuntimeEndpoint": None, "imageServiceEndpoint": None,
    "failCgroupV1": None,
}
TAINT_FIELDS = {"key", "value", "effect", "timeAdded"}


def unknown_fields(doc: dict[str, Any], schema: dict[str, Any] = SCHEMA, prefix: str = "") -> list[str]:
    """Fields of `doc` that 1.31's KubeletConfiguration does not have (dotted paths)."""
    out = []
    for key, value in doc.items():
        path = f"{prefix}{key}"
        if key not in schema:
            out.append(path)
        elif isinstance(schema[key], dict) and isinstance(value, dict):
            out.extend(unknown_fields(value, schema[key], path + "."))
    if not prefix and isinstance(doc.get("registerWithTaints"), list):
        for i, taint in enumerate(doc["registerWithTaints"]):
            if isinstance(taint, dict):
                out.extend(f"registerWithTaints[{i}].{k}" for k in taint if k not in TAINT_FIELDS)
    return out


# --- the fields we honour ------------------------------------------------------------------

def _int(path: str, v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise ConfigFileError(f"{path}: want an integer, not {v!r}")
    return v


def _bool(path: str, v: Any) -> bool:
    if not isinstance(v, bool):
        raise ConfigFileError(f"{path}: want true or false, not {v!r}")
    return v


def _str(path: str, v: Any) -> str:
    if not isinstance(v, str):
        raise ConfigFileError(f"{path}: want a string, not {v!r}")
    return v


def _number(path: str, v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ConfigFileError(f"{path}: want a number, not {v!r}")
    return float(v)


def _parsed_string(path: str, v: Any, parse: Callable[[str], Any], example: str) -> Any:
    if not isinstance(v, str):
        raise ConfigFileError(f"{path}: want a string such as {example}, not {v!r}")
    try:
        return parse(v)
    except ValueError as e:
        raise ConfigFileError(f"{path}: {e}") from None


def _duration(path: str, v: Any) -> float:
    """A metav1.Duration: a string in Go syntax ("10s", "1m30s"); a bare number is refused as there."""
    return _parsed_string(path, v, parse_duration, '"10s" or "1m30s" (a duration)')


def _quantity(path: str, v: Any) -> int:
    return _parsed_string(path, v, parse_size, '"10Mi" (a quantity)')


def _str_list(path: str, v: Any) -> str:
    """A []string, as the comma-separated text the flag takes."""
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise ConfigFileError(f"{path}: want a list of strings, not {v!r}")
    for x in v:
        if "," in x:
            raise ConfigFileError(f"{path}: invalid entry {x!r}")
    return ",".join(v)


def _str_map(path: str, v: Any) -> dict[str, str]:
    if not isinstance(v, dict) or not all(isinstance(k, str) and isinstance(x, str) for k, x in v.items()):
        raise ConfigFileError(f"{path}: want a map of strings to strings (quantities are strings), not {v!r}")
    return v


def _resources(path: str, v: Any) -> str:
    """kubeReserved/systemReserved: {"cpu": "100m"} as the flag's `cpu=100m`."""
    return ",".join(f"{k}={x}" for k, x in _str_map(path, v).items())


def _eviction(path: str, v: Any) -> str:
    """evictionHard: {"memory.available": "100Mi"} as the flag's `memory.available<100Mi`."""
    return ",".join(f"{k}<{x}" for k, x in _str_map(path, v).items())


def _taints(path: str, v: Any) -> str:
    """registerWithTaints: a list of v1.Taint as the flag's `key=value:Effect`."""
    if not isinstance(v, list):
        raise ConfigFileError(f"{path}: want a list of taints, not {v!r}")
    out = []
    for i, t in enumerate(v):
        where = f"{path}[{i}]"
        if not isinstance(t, dict):
            raise ConfigFileError(f"{where}: want a taint object, not {t!r}")
        if t.get("timeAdded") is not None:
            raise ConfigFileError("invalid configuration: taint.TimeAdded is not nil")
        key, value, effect = (_str(f"{where}.{k}", t.get(k, "")) for k in ("key", "value", "effect"))
        if not key or "," in key + value or ":" in key + value or "=" in key:
            raise ConfigFileError(f"invalid taint: {t}")
        out.append(f"{key}={value}:{effect}" if value else f"{key}:{effect}")
    return ",".join(out)


@dataclass(frozen=True)
class Field:
    path: str  # dotted, as in the file
    param: str  # the click parameter (the flag) it sets
    convert: Callable[[str, Any], Any]
    zero_is_unset: bool = False  # upstream's defaulting replaces the zero value by the default
    is_path: bool = False  # resolved against the config file's directory


FIELDS = (
    Field("address", "address", _str, zero_is_unset=True),
    Field("port", "port", _int, zero_is_unset=True),
    Field("tlsCertFile", "tls_cert_file", _str, is_path=True),
    Field("tlsPrivateKeyFile", "tls_private_key_file", _str, is_path=True),
    Field("rotateCertificates", "rotate_certificates", _bool),
    Field("serverTLSBootstrap", "rotate_server_certificates", _bool),
    Field("authentication.x509.clientCAFile", "client_ca_file", _str, is_path=True),
    Field("authentication.webhook.enabled", "authentication_token_webhook", _bool),
    Field("authentication.anonymous.enabled", "anonymous_auth", _bool),
    Field("authorization.mode", "authorization_mode", _str, zero_is_unset=True),
    Field("healthzPort", "healthz_port", _int),
    Field("healthzBindAddress", "healthz_bind_address", _str, zero_is_unset=True),
    Field("kubeAPIQPS", "kube_api_qps", _number),
    Field("kubeAPIBurst", "kube_api_burst", _int, zero_is_unset=True),
    Field("staticPodPath", "pod_manifest_path", _str, is_path=True),
    Field("podLogsDir", "pod_logs_dir", _str, zero_is_unset=True, is_path=True),
    Field("syncFrequency", "sync_frequency", _duration, zero_is_unset=True),
    Field("fileCheckFrequency", "file_check_frequency", _duration, zero_is_unset=True),
    Field("clusterDomain", "cluster_domain", _str),
    Field("clusterDNS", "cluster_dns", _str_list),
    Field("resolvConf", "resolv_conf", _str, is_path=True),
    Field("cgroupRoot", "cgroup_root", _str, zero_is_unset=True),
    Field("cgroupsPerQOS", "cgroups_per_qos", _bool),
    Field("maxPods", "max_pods", _int, zero_is_unset=True),
    Field("podCIDR", "pod_cidr", _str),
    Field("registerNode", "register_node", _bool),
    Field("registerWithTaints", "register_with_taints", _taints),
    Field("kubeReserved", "kube_reserved", _resources),
    Field("systemReserved", "system_reserved", _resources),
    Field("nodeStatusUpdateFrequency", "node_status_update_frequency", _duration, zero_is_unset=True),
    Field("nodeStatusReportFrequency", "node_status_report_frequency", _duration, zero_is_unset=True),
    Field("nodeLeaseDurationSeconds", "node_lease_duration_seconds", _int, zero_is_unset=True),
    Field("containerRuntimeEndpoint", "container_runtime_endpoint", _str, zero_is_unset=True),
    Field("runtimeRequestTimeout", "runtime_request_timeout", _duration, zero_is_unset=True),
    Field("serializeImagePulls", "serialize_image_pulls", _bool),
    Field("allowedUnsafeSysctls", "allowed_unsafe_sysctls", _str_list),
    Field("evictionHard", "eviction_hard", _eviction),
    Field("evictionPressureTransitionPeriod", "eviction_pressure_transition_period", _duration,
          zero_is_unset=True),
    Field("imageGCHighThresholdPercent", "image_gc_high_threshold", _int),
    Field("imageGCLowThresholdPercent", "image_gc_low_threshold", _int),
    Field("containerLogMaxSize", "container_log_max_size", _quantity, zero_is_unset=True),
    Field("containerLogMaxFiles", "container_log_max_files", _int),
    Field("containerLogMaxWorkers", "container_log_max_workers", _int),
    Field("containerLogMonitorInterval", "container_log_monitor_interval", _duration),
)
FIELD_PATHS = {f.path for f in FIELDS}
# Known fields we read but do not map to a flag: checked here, no warning.
_CHECKED = {"apiVersion", "kind", "cgroupDriver"}


def _get(doc: dict[str, Any], path: str) -> tuple[bool, Any]:
    node: Any = doc
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return False, None
        node = node[part]
    return True, node


def _leaves(doc: dict[str, Any], schema: dict[str, Any] = SCHEMA, prefix: str = "") -> list[tuple[str, Any]]:
    """The known fields set in `doc`, as (dotted path, value), descending into known objects."""
    out = []
    for key, value in doc.items():
        if key not in schema:
            continue
        if isinstance(schema[key], dict) and isinstance(value, dict):
            out.extend(_leaves(value, schema[key], f"{prefix}{key}."))
        else:
            out.append((f"{prefix}{key}", value))
    return out


def _is_zero(value: Any) -> bool:
    """Upstream's zero value (omitempty: the same as not setting the field)."""
    if value is None or value is False or value == 0 or value in ("", "0s", "0"):
        return True
    if isinstance(value, (list, dict)):
        return all(_is_zero(v) for v in (value.values() if isinstance(value, dict) else value))
    return False


def resolve_relative_paths(doc: dict[str, Any], base: Path) -> None:
    """Make the path fields' relative values absolute against `base` (upstream's resolveRelativePaths;
    empty stays empty: "no path" is a valid value)."""
    for f in FIELDS:
        if not f.is_path:
            continue
        found, value = _get(doc, f.path)
        if found and isinstance(value, str) and value and not os.path.isabs(value):
            parent = doc
            *parents, last = f.path.split(".")
            for part in parents:
                parent = parent[part]
            parent[last] = os.path.normpath(str(base / value))


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: objects merge recursively, null removes, the rest replaces."""
    if not isinstance(patch, dict):
        return patch
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


@dataclass
class LoadedConfig:
    """The merged file(s): flag values by click parameter, and what to tell the operator."""

    values: dict[str, Any]
    warnings: list[str]
    document: dict[str, Any]


def _read(path: Path, what: str) -> tuple[dict[str, Any], list[str]]:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ConfigFileError(f"failed to read {what} {path}: {e.strerror or e}") from None
    doc, duplicates = decode(data, str(path))
    check_type_meta(doc, str(path))
    resolve_relative_paths(doc, path.parent)
    warnings = []
    problems = [f"unknown field {name!r}" for name in unknown_fields(doc)]
    problems += [f"duplicate field {name!r}" for name in duplicates]
    if problems:
        warnings.append(f"{path}: using lenient decoding as strict decoding failed: {'; '.join(problems)}")
    return doc, warnings


def dropin_files(directory: Path) -> list[Path]:
    """The `*.conf` files under `directory`, in upstream's order (a lexical walk, subdirectories too)."""
    out: list[Path] = []
    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except OSError as e:
        raise ConfigFileError(f"failed to walk through kubelet dropin directory {str(directory)!r}: "
                              f"{e.strerror or e}") from None
    for entry in entries:
        if entry.is_dir():
            out.extend(dropin_files(Path(entry.path)))
        elif entry.name.endswith(DROPIN_SUFFIX) and len(entry.name) > len(DROPIN_SUFFIX):
            out.append(Path(entry.path))
    return out


def load(config: str | None, config_dir: str | None) -> LoadedConfig:
    """The main file and the drop-ins, merged, mapped onto flag values (ConfigFileError: unusable)."""
    doc: dict[str, Any] = {}
    warnings: list[str] = []
    if config:
        doc, warnings = _read(Path(config).absolute(), "kubelet config file")
    if config_dir:
        for path in dropin_files(Path(config_dir).absolute()):
            patch, more = _read(path, "drop-in kubelet config file")
            warnings += more
            doc = merge_patch(doc, patch)
    values, more = to_flag_values(doc)
    return LoadedConfig(values, warnings + more, doc)


def to_flag_values(doc: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The honoured fields as click parameter values, and warnings for what is ignored."""
    values: dict[str, Any] = {}
    for f in FIELDS:
        found, value = _get(doc, f.path)
        if not found or value is None or (f.zero_is_unset and _is_zero(value)):
            continue
        values[f.param] = f.convert(f.path, value)
    # upstream: an explicit nodeStatusUpdateFrequency is also the default report frequency
    if "node_status_update_frequency" in values and "node_status_report_frequency" not in values:
        values["node_status_report_frequency"] = values["node_status_update_frequency"]
    if "authorization_mode" in values and values["authorization_mode"] not in ("Webhook", "AlwaysAllow"):
        raise ConfigFileError(f"authorization.mode: unknown authorization mode {values['authorization_mode']!r} "
                              "(Webhook or AlwaysAllow)")
    warnings = []
    driver = doc.get("cgroupDriver")
    if driver not in (None, "", "cgroupfs"):
        if driver != "systemd":
            raise ConfigFileError(f"cgroupDriver: {driver!r} is not a cgroup driver (cgroupfs or systemd)")
        warnings.append("cgroupDriver: systemd is not supported by this kubelet, which manages cgroups "
                        "through cgroupfs only; using cgroupfs")
    ignored = [path for path, value in _leaves(doc)
               if path not in FIELD_PATHS and path not in _CHECKED and not _is_zero(value)]
    if ignored:
        warnings.append("KubeletConfiguration fields not implemented by this kubelet, ignored: "
                        + ", ".join(ignored))
    return values, warnings
