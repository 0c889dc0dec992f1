"""The kubelet's --config KubeletConfiguration file and --config-dir drop-ins."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import kubelet.__main__ as kubelet_main
from kubelet import configfile
from kubelet.__main__ import _from_command_line, apply_config_files, config_from_flags, main
from kubelet.config import validate_config

HEAD = "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n"
REPO = Path(__file__).resolve().parents[2]

# what kubeadm writes to /var/lib/kubelet/config.yaml (trimmed), with some of our own settings
KUBEADM = HEAD + """\
authentication:
  anonymous:
    enabled: false
  webhook:
    cacheTTL: 0s
    enabled: true
  x509:
    clientCAFile: /etc/kubernetes/pki/ca.crt
authorization:
  mode: Webhook
  webhook:
    cacheAuthorizedTTL: 0s
    cacheUnauthorizedTTL: 0s
cgroupDriver: cgroupfs
clusterDNS:
- 10.96.0.10
clusterDomain: cluster.local
containerRuntimeEndpoint: ""
cpuManagerReconcilePeriod: 0s
evictionPressureTransitionPeriod: 0s
fileCheckFrequency: 0s
healthzBindAddress: 127.0.0.1
healthzPort: 10248
httpCheckFrequency: 0s
imageMaximumGCAge: 0s
imageMinimumGCAge: 0s
logging:
  flushFrequency: 0
  options:
    json:
      infoBufferSize: "0"
  verbosity: 0
memorySwap: {}
nodeStatusReportFrequency: 0s
nodeStatusUpdateFrequency: 0s
rotateCertificates: true
runtimeRequestTimeout: 0s
shutdownGracePeriod: 0s
shutdownGracePeriodCriticalPods: 0s
staticPodPath: /etc/kubernetes/manifests
streamingConnectionIdleTimeout: 0s
syncFrequency: 0s
volumeStatsAggPeriod: 0s
"""


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _cfg(args: list[str]):
    """The KubeletConfig main() would run with (flags parsed, files applied, validated)."""
    ctx = main.make_context("kubelet", args)
    kw = dict(ctx.params)
    kw.pop("log_level")
    config_file, config_dir = kw.pop("config_file"), kw.pop("config_dir")
    warnings: list[str] = []
    if config_file or config_dir:
        kw, warnings = apply_config_files(kw, config_file, config_dir, _from_command_line(ctx, kw))
    cfg = config_from_flags(kw)
    assert validate_config(cfg) == []
    return cfg, warnings


def test_kubeadm_file_maps_onto_the_flags(tmp_path):
    path = _write(tmp_path / "config.yaml", KUBEADM)
    cfg, warnings = _cfg(["--config", str(path)])
    assert cfg.client_ca_file == "/etc/kubernetes/pki/ca.crt"
    assert cfg.authentication_token_webhook and not cfg.anonymous_auth and cfg.authorization_mode == "Webhook"
    assert cfg.cluster_dns == ["10.96.0.10"] and cfg.cluster_domain == "cluster.local"
    assert cfg.pod_manifest_path == "/etc/kubernetes/manifests" and cfg.rotate_certificates
    # "0s" and "" are upstream's zero values: the defaults apply
    assert cfg.sync_frequency == 60.0 and cfg.file_check_frequency == 20.0
    assert cfg.node_status_update_frequency == 10.0 and cfg.node_status_report_frequency == 300.0
    assert cfg.runtime_request_timeout == 120.0 and cfg.eviction_pressure_transition_period == 300.0
    assert cfg.container_runtime_endpoint == "unix:///run/containerd/containerd.sock"
    # every field there is either honoured or zero: nothing to warn about
    assert warnings == []


def test_every_honoured_field(tmp_path):
    doc = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration",
        "address": "127.0.0.2", "port": 11250, "tlsCertFile": "/pki/k.crt", "tlsPrivateKeyFile": "/pki/k.key",
        "serverTLSBootstrap": True, "healthzPort": 0, "healthzBindAddress": "0.0.0.0",
        "authentication": {"webhook": {"enabled": False}, "anonymous": {"enabled": True}},
        "authorization": {"mode": "AlwaysAllow"}, "kubeAPIQPS": 7, "kubeAPIBurst": 9,
        "podLogsDir": "/var/log/pods", "resolvConf": "", "cgroupRoot": "/mk8s", "cgroupsPerQOS": False,
        "maxPods": 30, "podCIDR": "10.244.9.0/24", "registerNode": False,
        "registerWithTaints": [{"key": "a", "value": "b", "effect": "NoSchedule"}, {"key": "c", "effect": "NoExecute"}],
        "kubeReserved": {"cpu": "100m", "memory": "100Mi"}, "systemReserved": {"memory": "1Gi"},
        "nodeStatusUpdateFrequency": "20s", "nodeLeaseDurationSeconds": 60,
        "containerRuntimeEndpoint": "unix:///run/mk8s/containerd.sock", "runtimeRequestTimeout": "1m30s",
        "serializeImagePulls": False, "allowedUnsafeSysctls": ["net.core.somaxconn", "kernel.msg*"],
        "evictionHard": {"memory.available": "200Mi", "nodefs.available": "5%"},
        "evictionPressureTransitionPeriod": "30s", "imageGCHighThresholdPercent": 90,
        "imageGCLowThresholdPercent": 70, "containerLogMaxSize": "4Ki", "containerLogMaxFiles": 3,
        "containerLogMaxWorkers": 2, "containerLogMonitorInterval": "5s", "syncFrequency": "250ms",
        "fileCheckFrequency": "1h0m0s",
    }
    path = _write(tmp_path / "c.json", json.dumps(doc))  # JSON works as well as YAML
    cfg, warnings = _cfg(["--config", str(path)])
    assert warnings == []
    assert (cfg.address, cfg.port, cfg.tls_cert_file, cfg.tls_private_key_file) == (
        "127.0.0.2", 11250, "/pki/k.crt", "/pki/k.key")
    assert cfg.rotate_server_certificates and (cfg.healthz_port, cfg.healthz_bind_address) == (0, "0.0.0.0")
    assert not cfg.authentication_token_webhook and cfg.anonymous_auth and cfg.authorization_mode == "AlwaysAllow"
    assert (cfg.kube_api_qps, cfg.kube_api_burst) == (7.0, 9)
    assert cfg.pod_logs_dir == "/var/log/pods" and cfg.resolv_conf == ""  # "" is kept: no DNS lookups
    assert (cfg.cgroup_root, cfg.cgroups_per_qos, cfg.max_pods) == ("/mk8s", False, 30)
    assert cfg.pod_cidr == "10.244.9.0/24" and not cfg.register_node
    assert cfg.register_with_taints == [{"key": "a", "value": "b", "effect": "NoSchedule"},
                                        {"key": "c", "effect": "NoExecute"}]
    assert cfg.kube_reserved == {"cpu": 100, "memory": 100 * 2**20} and cfg.system_reserved == {"memory": 2**30}
    # an explicit nodeStatusUpdateFrequency is also the report frequency's default (upstream)
    assert (cfg.node_status_update_frequency, cfg.node_status_report_frequency) == (20.0, 20.0)
    assert cfg.node_lease_duration_seconds == 60
    assert cfg.container_runtime_endpoint == "unix:///run/mk8s/containerd.sock"
    assert cfg.runtime_request_timeout == 90.0 and not cfg.serialize_image_pulls
    assert cfg.allowed_unsafe_sysctls == ["net.core.somaxconn", "kernel.msg*"]
    assert {(t.signal, t.quantity, t.percentage) for t in cfg.eviction_hard} == {
        ("memory.available", 200 * 2**20, None), ("nodefs.available", None, 0.05)}
    assert cfg.eviction_pressure_transition_period == 30.0
    assert (cfg.image_gc_high_threshold_percent, cfg.image_gc_low_threshold_percent) == (90, 70)
    assert (cfg.container_log_max_size, cfg.container_log_max_files) == (4096, 3)
    assert (cfg.container_log_max_workers, cfg.container_log_monitor_interval) == (2, 5.0)
    assert (cfg.sync_frequency, cfg.file_check_frequency) == (0.25, 3600.0)


def test_command_line_flags_override_the_file(tmp_path):
    path = _write(tmp_path / "c.yaml", HEAD + "port: 11250\nmaxPods: 30\nclusterDNS: [10.0.0.1]\n"
                  "evictionHard: {memory.available: 1Gi}\n")
    cfg, _ = _cfg(["--config", str(path), "--port", "12250", "--cluster-dns", "10.0.0.2,10.0.0.3"])
    assert cfg.port == 12250 and cfg.cluster_dns == ["10.0.0.2", "10.0.0.3"]
    assert cfg.max_pods == 30  # not on the command line: the file's
    assert [t.signal for t in cfg.eviction_hard] == ["memory.available"]  # the file's map replaces the default
    # a flag given with its default value still wins (it was given)
    cfg, _ = _cfg(["--config", str(path), "--max-pods", "110"])
    assert cfg.max_pods == 110 and cfg.port == 11250
    # the order on the command line does not matter
    cfg, _ = _cfg(["--max-pods", "50", "--config", str(path)])
    assert cfg.max_pods == 50


def test_relative_paths_are_relative_to_the_file(tmp_path, monkeypatch):
    _write(tmp_path / "etc" / "c.yaml", HEAD + "staticPodPath: manifests\ntlsCertFile: ../pki/k.crt\n"
           "tlsPrivateKeyFile: /abs/k.key\nauthentication: {x509: {clientCAFile: pki/ca.crt}}\n"
           "resolvConf: resolv.conf\npodLogsDir: logs\n")
    monkeypatch.chdir(tmp_path)
    cfg, _ = _cfg(["--config", "etc/c.yaml"])  # a relative --config is relative to the working directory
    assert cfg.pod_manifest_path == str(tmp_path / "etc" / "manifests")
    assert cfg.tls_cert_file == str(tmp_path / "pki" / "k.crt") and cfg.tls_private_key_file == "/abs/k.key"
    assert cfg.client_ca_file == str(tmp_path / "etc" / "pki" / "ca.crt")
    assert cfg.resolv_conf == str(tmp_path / "etc" / "resolv.conf")
    assert cfg.pod_logs_dir == str(tmp_path / "etc" / "logs")


def test_unknown_duplicate_and_unimplemented_fields_are_warnings(tmp_path):
    path = _write(tmp_path / "c.yaml", HEAD + "maxPods: 10\nmaxPods: 20\nnotAField: 1\n"
                  "authentication: {webhook: {enabled: true, cacheTTL: 2m, bogus: 1}}\n"
                  "podPidsLimit: 4096\nshutdownGracePeriod: 30s\nevictionSoft: {memory.available: 1Gi}\n"
                  "readOnlyPort: 0\ncgroupDriver: systemd\n")
    cfg, warnings = _cfg(["--config", str(path)])
    assert cfg.max_pods == 20  # the last one wins, as in upstream's lenient decoding
    strict, driver, ignored = warnings
    assert "lenient decoding" in strict and "'notAField'" in strict and "'authentication.webhook.bogus'" in strict
    assert "duplicate field 'maxPods'" in strict
    assert "cgroupfs only" in driver
    # named once, on one line; zero values (readOnlyPort: 0) are upstream's "unset" and not named
    assert ignored.endswith("ignored: authentication.webhook.cacheTTL, podPidsLimit, shutdownGracePeriod, "
                            "evictionSoft")


@pytest.mark.parametrize(("text", "message"), [
    ("", "was empty"),
    ("kind: KubeletConfiguration\n", "'apiVersion' is missing"),
    ("apiVersion: kubelet.config.k8s.io/v1beta1\n", "'Kind' is missing"),
    ("apiVersion: kubelet.config.k8s.io/v1\nkind: KubeletConfiguration\n",
     "no kind 'KubeletConfiguration' is registered for version 'kubelet.config.k8s.io/v1'"),
    ("apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeProxyConfiguration\n", "no kind 'KubeProxyConfiguration'"),
    ("- a\n- b\n", "want a KubeletConfiguration object"),
    ("{port: [\n", "failed to decode"),
    (HEAD + "port: '10250'\n", "port: want an integer"),
    (HEAD + "syncFrequency: 10\n", "syncFrequency: want a string such as \"10s\""),
    (HEAD + "syncFrequency: 10 seconds\n", "invalid duration"),
    (HEAD + "registerNode: 'yes'\n", "registerNode: want true or false"),
    (HEAD + "kubeReserved: {memory: 1}\n", "quantities are strings"),
    (HEAD + "containerLogMaxSize: ten\n", "containerLogMaxSize"),
    (HEAD + "authorization: {mode: RBAC}\n", "unknown authorization mode 'RBAC'"),
    (HEAD + "cgroupDriver: foo\n", "not a cgroup driver"),
    (HEAD + "registerWithTaints: [{key: a, effect: NoSchedule, timeAdded: '2024-01-01T00:00:00Z'}]\n",
     "taint.TimeAdded is not nil"),
])
def test_unusable_files_are_errors(tmp_path, text, message):
    path = _write(tmp_path / "c.yaml", text)
    with pytest.raises(configfile.ConfigFileError, match=re.escape(message)):
        configfile.load(str(path), None)


@pytest.mark.parametrize(("text", "message"), [
    ("port: 70000\n", "port (--port) 70000 must be between 1 and 65535"),
    ("healthzPort: -1\n", "healthzPort (--healthz-port) -1 must be between 1 and 65535"),
    ("imageGCHighThresholdPercent: 101\n", "imageGCHighThresholdPercent (--image-gc-high-threshold) 101"),
    ("imageGCLowThresholdPercent: 90\n", "must be less than imageGCHighThresholdPercent"),
    ("kubeAPIQPS: -1\n", "kubeAPIQPS (--kube-api-qps) -1 must not be a negative number"),
    ("kubeAPIBurst: -1\n", "kubeAPIBurst (--kube-api-burst) -1 must not be a negative number"),
    ("maxPods: -1\n", "maxPods (--max-pods) -1 must not be a negative number"),
    ("nodeLeaseDurationSeconds: -5\n", "nodeLeaseDurationSeconds must be greater than 0"),
    ("containerLogMaxFiles: 1\n", "containerLogMaxFiles (--container-log-max-files) must be greater than 1"),
    ("containerLogMaxWorkers: 0\n", "containerLogMaxWorkers (--container-log-max-workers) must be greater than or equal to 1"),
    ("containerLogMonitorInterval: 1s\n", "containerLogMonitorInterval (--container-log-monitor-interval) must be a positive"),
    ("podLogsDir: /var/log/../pods\n", "must be normalized"),
    ("registerWithTaints: [{key: a, effect: Sometimes}]\n", "invalid taint"),
    ("allowedUnsafeSysctls: [kernel.panic]\n", "kernel.panic"),
    ("evictionHard: {disk.available: 1Gi}\n", "unknown eviction signal"),
])
def test_invalid_settings_exit_cleanly(tmp_path, text, message):
    path = _write(tmp_path / "c.yaml", HEAD + text)
    result = CliRunner().invoke(main, ["--config", str(path)])
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)  # no traceback
    assert message in result.output and result.output.startswith("Error: ")


def test_all_problems_are_reported_at_once(tmp_path):
    path = _write(tmp_path / "c.yaml", HEAD + "port: 70000\nmaxPods: -1\n")
    result = CliRunner().invoke(main, ["--config", str(path)])
    assert result.exit_code == 1 and "port (--port)" in result.output and "maxPods (--max-pods)" in result.output


def test_flags_alone_are_validated_too():
    result = CliRunner().invoke(main, ["--image-gc-low-threshold", "90"])
    assert result.exit_code == 1 and "must be less than imageGCHighThresholdPercent" in result.output


def test_dropins_merge_in_lexical_order_over_the_file(tmp_path):
    main_file = _write(tmp_path / "config.yaml", HEAD + "port: 11250\nmaxPods: 30\nclusterDNS: [10.0.0.1, 10.0.0.2]\n"
                       "evictionHard: {memory.available: 1Gi, nodefs.available: 10%}\n"
                       "authentication: {anonymous: {enabled: true}}\n")
    d = tmp_path / "config.d"
    _write(d / "20-b.conf", HEAD + "maxPods: 50\nclusterDNS: [10.0.0.9]\n")
    _write(d / "10-a.conf", HEAD + "maxPods: 40\nport: 12250\nevictionHard: {memory.available: 2Gi}\n"
           "authentication: {webhook: {enabled: false}}\nstaticPodPath: manifests\n")
    _write(d / "sub" / "30-c.conf", HEAD + "port: 13250\n")
    _write(d / "99-ignored.yaml", HEAD + "maxPods: 99\n")  # only *.conf files
    cfg, _ = _cfg(["--config", str(main_file), "--config-dir", str(d), "--max-pods", "60"])
    assert cfg.port == 13250  # sub/30-c.conf comes after 20-b.conf in the walk
    assert cfg.max_pods == 60  # the command line still wins
    assert cfg.cluster_dns == ["10.0.0.9"]  # lists are replaced
    # maps merge key by key
    assert {t.signal: t.quantity or t.percentage for t in cfg.eviction_hard} == {
        "memory.available": 2 * 2**30, "nodefs.available": 0.1}
    assert cfg.anonymous_auth and not cfg.authentication_token_webhook
    assert cfg.pod_manifest_path == str(d / "manifests")  # relative to the drop-in's directory
    # without --config the drop-ins apply over the defaults
    cfg, _ = _cfg(["--config-dir", str(d)])
    assert (cfg.port, cfg.max_pods) == (13250, 50)


def test_dropin_without_type_meta_is_an_error(tmp_path):
    d = tmp_path / "d"
    _write(d / "10.conf", "maxPods: 40\n")
    with pytest.raises(configfile.ConfigFileError, match=re.escape("10.conf: Object 'Kind' is missing")):
        configfile.load(None, str(d))
    with pytest.raises(configfile.ConfigFileError, match="dropin directory"):
        configfile.load(None, str(tmp_path / "missing"))


def test_merge_patch_is_rfc7386():
    assert configfile.merge_patch({"a": {"b": 1, "c": 2}, "l": [1, 2]}, {"a": {"b": None, "d": 3}, "l": [3]}) == {
        "a": {"c": 2, "d": 3}, "l": [3]}


def test_help_names_the_options():
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0 and "--config FILE" in result.output and "--config-dir DIRECTORY" in result.output


def test_the_kubelet_process_refuses_a_bad_file_cleanly(tmp_path):
    bad = _write(tmp_path / "c.yaml", HEAD + "port: 70000\n")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "kubelet", "--config", str(bad)], cwd=str(REPO), env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert "failed to validate kubelet configuration" in proc.stderr and "port (--port) 70000" in proc.stderr
    wrong = _write(tmp_path / "w.yaml", "apiVersion: kubelet.config.k8s.io/v1alpha1\nkind: KubeletConfiguration\n")
    proc = subprocess.run([sys.executable, "-m", "kubelet", "--config", str(wrong)], cwd=str(REPO), env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr and "no kind" in proc.stderr


def test_main_logs_the_warnings_and_runs_with_the_merged_config(tmp_path, monkeypatch, caplog):
    seen = {}

    async def fake_run(cfg, stop):
        seen["cfg"] = cfg

    def fake_run_daemon(component, start, log_level):
        asyncio.run(start(asyncio.Event()))

    monkeypatch.setattr(kubelet_main, "run", fake_run)
    monkeypatch.setattr(kubelet_main, "run_daemon", fake_run_daemon)
    path = _write(tmp_path / "c.yaml", HEAD + "maxPods: 30\nport: 11250\npodPidsLimit: 100\nfoo: 1\n")
    with caplog.at_level(logging.WARNING, logger="kubelet"):
        result = CliRunner().invoke(main, ["--config", str(path), "--port", "12250"])
    assert result.exit_code == 0, result.output
    assert (seen["cfg"].max_pods, seen["cfg"].port) == (30, 12250)
    messages = [r.getMessage() for r in caplog.records]
    assert any("unknown field 'foo'" in m for m in messages)
    assert any(m.endswith("ignored: podPidsLimit") for m in messages)
