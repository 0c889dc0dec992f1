"""PodSecurity: the baseline and restricted checks and their wording, versions, the namespace
labels, the three modes (enforce, audit, warn) for pods and pod templates, namespace label
changes against existing pods, and the admission configuration file."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from apimachinery import errors
from apiserver.admission import CREATE, UPDATE, Attributes
from apiserver.admission.podsecurity import (
    PodSecurity,
    PodSecurityConfig,
    PodSecurityConfigError,
    config_from_file,
    parse_config,
)
from apiserver.admission.podsecurity_policy import (
    LATEST,
    LevelVersion,
    Policy,
    Version,
    checks_for,
    evaluate,
    policy_to_evaluate,
)
from apiserver.admission.webhook import RequestNotes, begin_request
from apiserver.authn import UserInfo
from apiserver.resources import TABLE


def pod(spec: dict, annotations: dict | None = None) -> dict:
    return {"metadata": {"name": "p", "annotations": annotations or {}}, "spec": spec}


def c(name: str = "c", **sc) -> dict:
    out = {"name": name, "image": "x"}
    if sc:
        out["securityContext"] = sc
    return out


RESTRICTED_OK = {"name": "c", "image": "x", "securityContext": {
    "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]},
    "runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}}


def test_namespace_labels() -> None:
    def policy(**labels: str) -> tuple[Policy, list[str]]:
        p, errs = policy_to_evaluate({f"pod-security.kubernetes.io/{k.replace('_', '-')}": v for k, v in labels.items()})
        return p, [str(e) for e in errs]

    assert policy() == (Policy(), [])
    assert policy(enforce="baseline") == (Policy(enforce=LevelVersion("baseline")), [])
    assert policy(enforce="restricted", enforce_version="v1.30", warn="baseline", audit_version="v1.2") == (
        Policy(LevelVersion("restricted", Version(30)), LevelVersion("privileged", Version(2)), LevelVersion("baseline")), [])
    # an invalid enforce level fails closed, audit and warn fail open, a bad version is latest
    assert policy(enforce="bogus", warn="nope", audit="x", enforce_version="1.30") == (
        Policy(LevelVersion("restricted"), LevelVersion("privileged"), LevelVersion("privileged")), [
            'metadata.labels[pod-security.kubernetes.io/enforce]: Invalid value: "bogus": '
            "must be one of privileged, baseline, restricted",
            'metadata.labels[pod-security.kubernetes.io/enforce-version]: Invalid value: "1.30": must be "latest" or "v1.x"',
            'metadata.labels[pod-security.kubernetes.io/audit]: Invalid value: "x": must be one of privileged, baseline, restricted',
            'metadata.labels[pod-security.kubernetes.io/warn]: Invalid value: "nope": must be one of privileged, baseline, restricted',
        ])
    for bad in ("v1.01", "v2.0", "latest ", "v1"):
        assert policy(warn="baseline", warn_version=bad)[0].warn == LevelVersion("baseline", LATEST)
    # the defaults stand where no label says otherwise
    defaults = Policy(warn=LevelVersion("restricted", Version(25)))
    assert policy_to_evaluate({"pod-security.kubernetes.io/enforce": "baseline"}, defaults)[0] == Policy(
        LevelVersion("baseline"), LevelVersion("privileged"), LevelVersion("restricted", Version(25)))
    assert str(LevelVersion("baseline", Version(26))) == "baseline:v1.26"


def test_a_plain_pod_passes_baseline_but_not_restricted() -> None:
    p = pod({"containers": [c()]})
    assert evaluate("baseline", p) == []
    assert evaluate("privileged", p) == []
    assert evaluate("restricted", p) == [
        'allowPrivilegeEscalation != false (container "c" must set securityContext.allowPrivilegeEscalation=false)',
        'unrestricted capabilities (container "c" must set securityContext.capabilities.drop=["ALL"])',
        'runAsNonRoot != true (pod or container "c" must set securityContext.runAsNonRoot=true)',
        'seccompProfile (pod or container "c" must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")',
    ]
    assert evaluate("restricted", pod({"containers": [RESTRICTED_OK]})) == []


def test_baseline_violations() -> None:
    p = pod({
        "hostNetwork": True, "hostPID": True,
        "containers": [c("a", privileged=True, capabilities={"add": ["NET_ADMIN", "CHOWN"]}),
                       {**c("b", procMount="Unmasked"), "ports": [{"containerPort": 80, "hostPort": 8080}]}],
        "volumes": [{"name": "root", "hostPath": {"path": "/"}}],
        "securityContext": {"sysctls": [{"name": "kernel.msgmax", "value": "1"}, {"name": "net.ipv4.tcp_syncookies", "value": "1"}],
                            "seccompProfile": {"type": "Unconfined"}},
    })
    assert evaluate("baseline", p) == [
        'non-default capabilities (container "a" must not include "NET_ADMIN" in securityContext.capabilities.add)',
        "host namespaces (hostNetwork=true, hostPID=true)",
        'hostPath volumes (volume "root")',
        'hostPort (container "b" uses hostPort 8080)',
        'privileged (container "a" must not set securityContext.privileged=true)',
        'procMount (container "b" must not set securityContext.procMount to "Unmasked")',
        'seccompProfile (pod must not set securityContext.seccompProfile.type to "Unconfined")',
        "forbidden sysctls (kernel.msgmax)",
    ]


def test_restricted_replaces_overlapping_baseline_checks() -> None:
    names = [f.__name__ for f in checks_for("restricted")]
    assert "capabilities_baseline" not in names and "capabilities_restricted_1_25" in names
    assert "host_path_volumes" not in names and "restricted_volumes" in names
    assert "seccomp_baseline" not in names and "seccomp_restricted_1_25" in names
    p = pod({"containers": [RESTRICTED_OK], "volumes": [{"name": "h", "hostPath": {"path": "/x"}}, {"name": "e", "emptyDir": {}}]})
    assert evaluate("restricted", p) == ['restricted volume types (volume "h" uses restricted volume type "hostPath")']


def test_pod_level_settings_cover_containers() -> None:
    spec = {"securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "Localhost", "localhostProfile": "p"}},
            "containers": [c("a", allowPrivilegeEscalation=False, capabilities={"drop": ["ALL"]})]}
    assert evaluate("restricted", pod(spec)) == []
    spec["containers"].append(c("b", allowPrivilegeEscalation=False, capabilities={"drop": ["ALL"]}, runAsNonRoot=False, runAsUser=0))
    assert evaluate("restricted", pod(spec)) == [
        'runAsNonRoot != true (container "b" must not set securityContext.runAsNonRoot=false)',
        'runAsUser=0 (container "b" must not set runAsUser=0)',
    ]


def test_check_versions() -> None:
    def names(level: str, minor: int | None) -> list[str]:
        return [f.__name__ for f in checks_for(level, minor)]

    # upstream's order: baseline checks by id, then the restricted ones by id
    assert names("restricted", None) == [
        "app_armor", "host_namespaces", "host_ports", "privileged", "proc_mount", "selinux_options_1_31", "sysctls_1_29",
        "host_process", "allow_privilege_escalation_1_25", "capabilities_restricted_1_25", "restricted_volumes",
        "run_as_non_root", "run_as_user", "seccomp_restricted_1_25"]
    # before v1.22 restricted still runs the baseline capabilities check; no runAsUser before v1.23,
    # no allowPrivilegeEscalation before v1.8, seccomp by annotation before v1.19
    old = names("restricted", 18)
    assert "capabilities_baseline" in old and "run_as_user" not in old and "seccomp_baseline_annotations" in old
    assert "allow_privilege_escalation" not in names("restricted", 7)
    assert names("baseline", 0) == names("baseline", 18) != names("baseline", 19)
    # a version newer than the server's (v1.31) is latest: the v1.32 sysctls never apply here
    assert names("baseline", 40) == names("baseline", None) == names("baseline", 31)
    assert names("privileged", None) == []


def test_sysctls_by_version() -> None:
    def forbidden(version: Version, *names: str) -> list[str]:
        p = pod({"containers": [c()], "securityContext": {"sysctls": [{"name": n, "value": "1"} for n in names]}})
        return evaluate("baseline", p, version)

    assert forbidden(Version(26), "net.ipv4.ip_local_reserved_ports") == [
        "forbidden sysctls (net.ipv4.ip_local_reserved_ports)"]
    assert forbidden(Version(27), "net.ipv4.ip_local_reserved_ports") == []
    assert forbidden(Version(28), "net.ipv4.tcp_keepalive_time", "kernel.shm_rmid_forced", "net.ipv4.tcp_fin_timeout") == [
        "forbidden sysctls (net.ipv4.tcp_keepalive_time, net.ipv4.tcp_fin_timeout)"]
    assert forbidden(Version(29), "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_keepalive_probes") == []
    # tcp_rmem/tcp_wmem came with v1.32: a v1.31 server forbids them even for v1.32 and latest
    for v in (LATEST, Version(32)):
        assert forbidden(v, "net.ipv4.tcp_rmem") == ["forbidden sysctls (net.ipv4.tcp_rmem)"]


def test_other_versioned_variants() -> None:
    engine = pod({"containers": [c(seLinuxOptions={"type": "container_engine_t"})]})
    assert evaluate("baseline", engine, Version(30)) == [
        'seLinuxOptions (container "c" set forbidden securityContext.seLinuxOptions: type "container_engine_t")']
    assert evaluate("baseline", engine, Version(31)) == evaluate("baseline", engine) == []
    # seccomp: the alpha annotations until v1.18, the fields from v1.19
    annotated = pod({"containers": [c(), c("d")]}, {"seccomp.security.alpha.kubernetes.io/pod": "unconfined",
                                                     "container.seccomp.security.alpha.kubernetes.io/d": "docker/default"})
    assert evaluate("baseline", annotated, Version(18)) == [
        'seccompProfile (forbidden annotation seccomp.security.alpha.kubernetes.io/pod="unconfined")']
    assert evaluate("baseline", annotated, Version(19)) == []
    # windows pods are exempt from three restricted checks from v1.25
    windows = pod({"os": {"name": "windows"}, "securityContext": {"runAsNonRoot": True}, "containers": [c()]})
    assert evaluate("restricted", windows) == []
    assert [f.split(" (")[0] for f in evaluate("restricted", windows, Version(24))] == [
        "allowPrivilegeEscalation != false", "unrestricted capabilities", "seccompProfile"]
    # runAsUser=0 is restricted from v1.23 on
    root = pod({"containers": [{**RESTRICTED_OK, "securityContext": {**RESTRICTED_OK["securityContext"], "runAsUser": 0}}]})
    assert evaluate("restricted", root, Version(22)) == []
    assert evaluate("restricted", root, Version(23)) == ['runAsUser=0 (container "c" must not set runAsUser=0)']


# -- the plugin: modes, templates, updates, namespaces, exemptions ------------------------------

PODS = TABLE.lookup("", "v1", "pods")
NAMESPACES = TABLE.lookup("", "v1", "namespaces")
DEPLOYMENTS = TABLE.lookup("apps", "v1", "deployments")
CRONJOBS = TABLE.lookup("batch", "v1", "cronjobs")
RCS = TABLE.lookup("", "v1", "replicationcontrollers")
ALICE = UserInfo("alice", "", ("system:authenticated",))
PSA = "pod-security.kubernetes.io/"
PLAIN_WARNING = ('would violate PodSecurity "restricted:latest": allowPrivilegeEscalation != false '
                 '(container "c" must set securityContext.allowPrivilegeEscalation=false), unrestricted capabilities '
                 '(container "c" must set securityContext.capabilities.drop=["ALL"]), runAsNonRoot != true (pod or '
                 'container "c" must set securityContext.runAsNonRoot=true), seccompProfile (pod or container "c" must '
                 'set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")')


class FakePodSecurity(PodSecurity):
    def __init__(self, labels: dict[str, dict[str, str]], config: PodSecurityConfig | None = None,
                 pods: list[dict] | None = None) -> None:
        super().__init__(None, config or PodSecurityConfig())
        self.labels, self.pods = labels, pods or []

    async def namespace_labels(self, namespace: str) -> dict[str, str] | None:
        return self.labels.get(namespace)

    async def namespace_pods(self, namespace: str) -> list[dict[str, Any]]:
        return self.pods


def labels(**kw: str) -> dict[str, str]:
    return {PSA + k.replace("_", "-"): v for k, v in kw.items()}


def run(plugin: PodSecurity, attrs: Attributes) -> tuple[RequestNotes, errors.StatusError | None]:
    async def go() -> tuple[RequestNotes, errors.StatusError | None]:
        notes = begin_request()
        try:
            await plugin.validate(attrs)
        except errors.StatusError as e:
            return notes, e
        return notes, None

    return asyncio.run(go())


def pod_attrs(obj: dict, op: str = CREATE, old: dict | None = None, ns: str = "ns", sub: str = "",
              user: UserInfo = ALICE) -> Attributes:
    return Attributes(op, PODS, sub, ns, obj["metadata"]["name"], obj, old, user)


def test_warn_and_audit_on_pods_beside_enforce() -> None:
    plugin = FakePodSecurity({"ns": labels(enforce="baseline", enforce_version="v1.26", warn="restricted", audit="restricted")})
    notes, err = run(plugin, pod_attrs(pod({"containers": [c()]})))
    assert err is None
    assert notes.warnings == [PLAIN_WARNING]
    assert notes.annotations == {PSA + "enforce-policy": "baseline:v1.26", PSA + "audit-violations": PLAIN_WARNING}
    # a refused pod: the refusal, its audit annotations, no warning
    notes, err = run(plugin, pod_attrs(pod({"hostNetwork": True, "containers": [c()]})))
    assert err is not None and err.code == 403
    assert err.message == ('pods "p" is forbidden: PodSecurity: violates PodSecurity "baseline:v1.26": '
                           "host namespaces (hostNetwork=true)")
    assert notes.warnings == []
    assert notes.annotations[PSA + "enforce-policy"] == "baseline:v1.26"
    assert notes.annotations[PSA + "audit-violations"].startswith(
        'would violate PodSecurity "restricted:latest": host namespaces (hostNetwork=true), allowPrivilegeEscalation')


def test_privileged_namespace_and_label_errors() -> None:
    notes, err = run(FakePodSecurity({"ns": {}}), pod_attrs(pod({"hostPID": True, "containers": [c()]})))
    assert err is None and notes.annotations == {PSA + "enforce-policy": "privileged:latest"} and not notes.warnings
    # an invalid enforce level enforces restricted and says why on the audit event
    notes, err = run(FakePodSecurity({"ns": labels(enforce="strict")}), pod_attrs(pod({"containers": [c()]})))
    assert err is not None and 'violates PodSecurity "restricted:latest": allowPrivilegeEscalation' in err.message
    assert notes.annotations[PSA + "error"] == (
        'Failed to parse policy: metadata.labels[pod-security.kubernetes.io/enforce]: Invalid value: "strict": '
        "must be one of privileged, baseline, restricted")


def test_sysctl_allowed_from_a_later_version_only() -> None:
    p = pod({"containers": [c()], "securityContext": {"sysctls": [{"name": "net.ipv4.tcp_keepalive_time", "value": "60"}]}})
    _, err = run(FakePodSecurity({"ns": labels(enforce="baseline", enforce_version="v1.28")}), pod_attrs(p))
    assert err is not None and err.message.endswith(
        'violates PodSecurity "baseline:v1.28": forbidden sysctls (net.ipv4.tcp_keepalive_time)')
    notes, err = run(FakePodSecurity({"ns": labels(enforce="baseline")}), pod_attrs(p))
    assert err is None and notes.annotations == {PSA + "enforce-policy": "baseline:latest"}


def test_pod_updates_and_subresources() -> None:
    plugin = FakePodSecurity({"ns": labels(enforce="restricted")})
    old = pod({"containers": [c()]})
    # a label or status change of a (non-conforming) pod is let through unevaluated
    relabelled = pod({"containers": [c()]})
    relabelled["metadata"]["labels"] = {"a": "b"}
    notes, err = run(plugin, pod_attrs(relabelled, UPDATE, old))
    assert err is None and notes.annotations == {}
    assert run(plugin, pod_attrs(old, UPDATE, old, sub="status"))[1] is None
    assert run(plugin, pod_attrs(old, CREATE, sub="binding"))[1] is None
    # an image change is evaluated
    new_image = pod({"containers": [{**c(), "image": "y"}]})
    assert run(plugin, pod_attrs(new_image, UPDATE, old))[1] is not None
    # so is an ephemeral container added through its subresource
    debug = pod({"containers": [c()], "ephemeralContainers": [{"name": "dbg", "image": "busybox"}]})
    _, err = run(plugin, pod_attrs(debug, UPDATE, old, sub="ephemeralcontainers"))
    assert err is not None and 'containers "c", "dbg" must set securityContext.allowPrivilegeEscalation=false' in err.message


def test_templates_are_warned_and_audited_never_enforced() -> None:
    plugin = FakePodSecurity({"ns": labels(enforce="restricted", warn="restricted", audit="baseline")})
    deployment = {"metadata": {"name": "d"}, "spec": {"template": {"metadata": {}, "spec": {
        "hostIPC": True, "containers": [c()]}}}}
    notes, err = run(plugin, Attributes(CREATE, DEPLOYMENTS, "", "ns", "d", deployment, None, ALICE))
    assert err is None
    assert notes.warnings == [
        'would violate PodSecurity "restricted:latest": host namespaces (hostIPC=true), allowPrivilegeEscalation != false '
        '(container "c" must set securityContext.allowPrivilegeEscalation=false), unrestricted capabilities (container "c" '
        'must set securityContext.capabilities.drop=["ALL"]), runAsNonRoot != true (pod or container "c" must set '
        'securityContext.runAsNonRoot=true), seccompProfile (pod or container "c" must set '
        'securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")']
    assert notes.annotations == {PSA + "audit-violations": 'would violate PodSecurity "baseline:latest": host namespaces (hostIPC=true)'}
    # a CronJob's template sits deeper; its scale or status subresources are never evaluated
    cronjob = {"metadata": {"name": "cj"}, "spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": [c()]}}}}}}
    notes, _ = run(plugin, Attributes(CREATE, CRONJOBS, "", "ns", "cj", cronjob, None, ALICE))
    assert notes.warnings == [PLAIN_WARNING]
    notes, _ = run(plugin, Attributes(UPDATE, DEPLOYMENTS, "scale", "ns", "d", deployment, deployment, ALICE))
    assert notes.warnings == [] and notes.annotations == {}
    # a ReplicationController without a template; a namespace that only enforces: nothing to say
    notes, _ = run(plugin, Attributes(CREATE, RCS, "", "ns", "rc", {"metadata": {"name": "rc"}, "spec": {}}, None, ALICE))
    assert notes.warnings == []
    notes, _ = run(FakePodSecurity({"ns": labels(enforce="restricted")}),
                   Attributes(CREATE, DEPLOYMENTS, "", "ns", "d", deployment, None, ALICE))
    assert notes.warnings == [] and notes.annotations == {}


def ns_attrs(op: str, new: dict[str, str], old: dict[str, str] | None = None, name: str = "ns") -> Attributes:
    def obj(lbls: dict[str, str]) -> dict:
        return {"metadata": {"name": name, "labels": lbls}}

    return Attributes(op, NAMESPACES, "", "", name, obj(new), None if old is None else obj(old), ALICE)


def test_namespace_labels_are_validated() -> None:
    plugin = FakePodSecurity({})
    _, err = run(plugin, ns_attrs(CREATE, labels(enforce="bogus", warn_version="1")))
    assert err is not None and err.code == 422
    assert err.message == (
        'Namespace "ns" is invalid: [metadata.labels[pod-security.kubernetes.io/enforce]: Invalid value: "bogus": '
        'must be one of privileged, baseline, restricted, metadata.labels[pod-security.kubernetes.io/warn-version]: '
        'Invalid value: "1": must be "latest" or "v1.x"]')
    assert run(plugin, ns_attrs(CREATE, labels(enforce="baseline")))[1] is None
    # an update keeping the same invalid labels passes; changing them to other invalid ones does not
    assert run(plugin, ns_attrs(UPDATE, {**labels(enforce="bogus"), "x": "y"}, labels(enforce="bogus")))[1] is None
    assert run(plugin, ns_attrs(UPDATE, labels(enforce="worse"), labels(enforce="bogus")))[1].code == 422


def running(name: str, owner: str | None = None, **spec: Any) -> dict:
    meta: dict[str, Any] = {"name": name}
    if owner:
        meta["ownerReferences"] = [{"kind": "ReplicaSet", "name": owner, "uid": owner, "controller": True}]
    return {"metadata": meta, "spec": {"containers": [c()], **spec}}


def test_tightening_enforce_warns_about_existing_pods() -> None:
    pods = [running("web-2", "rs1"), running("web-1", "rs1"), running("priv", privileged=None, hostNetwork=True),
            running("b"), running("a"), running("c")]
    plugin = FakePodSecurity({}, pods=pods)
    notes, err = run(plugin, ns_attrs(UPDATE, labels(enforce="restricted"), {}))
    assert err is None
    assert notes.warnings == [
        'existing pods in namespace "ns" violate the new PodSecurity enforce level "restricted:latest"',
        "a (and 4 other pods): allowPrivilegeEscalation != false, unrestricted capabilities, runAsNonRoot != true, "
        "seccompProfile",
        "priv: host namespaces, allowPrivilegeEscalation != false, unrestricted capabilities, runAsNonRoot != true, "
        "seccompProfile",
    ]
    # unchanged, relaxed or privileged enforce levels check nothing; a version change does
    for new, old in ((labels(enforce="restricted"), labels(enforce="restricted")),
                     (labels(enforce="baseline"), labels(enforce="restricted")),
                     (labels(enforce="privileged"), labels(enforce="restricted"))):
        assert run(plugin, ns_attrs(UPDATE, new, old))[0].warnings == []
    notes, _ = run(plugin, ns_attrs(UPDATE, labels(enforce="baseline", enforce_version="v1.30"), labels(enforce="restricted")))
    assert notes.warnings == ['existing pods in namespace "ns" violate the new PodSecurity enforce level "baseline:v1.30"',
                              "priv: host namespaces"]
    # creating a namespace checks no pods
    assert run(plugin, ns_attrs(CREATE, labels(enforce="restricted")))[0].warnings == []


def test_namespace_check_limits(monkeypatch) -> None:
    from apiserver.admission import podsecurity

    monkeypatch.setattr(podsecurity, "NAMESPACE_MAX_PODS", 2)
    plugin = FakePodSecurity({}, pods=[running("a"), running("b", hostPID=True), running("c", hostIPC=True)])
    notes, _ = run(plugin, ns_attrs(UPDATE, labels(enforce="baseline"), {}))
    assert notes.warnings == ["new PodSecurity enforce level only checked against the first 2 of 3 existing pods",
                              'existing pods in namespace "ns" violate the new PodSecurity enforce level "baseline:latest"',
                              "b: host namespaces"]


def test_exemptions_and_defaults() -> None:
    config = parse_config({
        "apiVersion": "pod-security.admission.config.k8s.io/v1", "kind": "PodSecurityConfiguration",
        "defaults": {"enforce": "baseline", "warn": "restricted", "warn-version": "v1.30"},
        "exemptions": {"usernames": ["ci-bot"], "namespaces": ["kube-system"], "runtimeClasses": ["kata"]}})
    plugin = FakePodSecurity({"ns": {}, "kube-system": {}}, config)
    bad = pod({"hostNetwork": True, "containers": [c()]})
    _, err = run(plugin, pod_attrs(bad))  # unlabelled namespaces get the defaults
    assert err is not None and 'violates PodSecurity "baseline:latest"' in err.message
    notes, err = run(plugin, pod_attrs(pod({"containers": [c()]})))
    assert err is None and notes.warnings == [PLAIN_WARNING.replace("restricted:latest", "restricted:v1.30")]
    for attrs, reason in ((pod_attrs(bad, user=UserInfo("ci-bot")), "user"), (pod_attrs(bad, ns="kube-system"), "namespace"),
                          (pod_attrs(pod({"runtimeClassName": "kata", "hostNetwork": True, "containers": [c()]})), "runtimeClass")):
        notes, err = run(plugin, attrs)
        assert err is None and notes.annotations == {PSA + "exempt": reason} and notes.warnings == []
    # labels override the defaults
    notes, err = run(FakePodSecurity({"ns": labels(enforce="privileged", warn="privileged")}, config), pod_attrs(bad))
    assert err is None and notes.warnings == [] and notes.annotations == {PSA + "enforce-policy": "privileged:latest"}


def test_configuration_file(tmp_path) -> None:
    (tmp_path / "psa.yaml").write_text(
        "apiVersion: pod-security.admission.config.k8s.io/v1\nkind: PodSecurityConfiguration\n"
        "defaults: {audit: restricted}\nexemptions: {usernames: [admin]}\n")
    f = tmp_path / "admission.yaml"
    f.write_text("apiVersion: apiserver.config.k8s.io/v1\nkind: AdmissionConfiguration\nplugins:\n"
                 "- name: PodSecurity\n  path: psa.yaml\n- name: EventRateLimit\n  configuration: {a: 1}\n")
    config = config_from_file(str(f))
    assert config.defaults == Policy(audit=LevelVersion("restricted")) and config.usernames == {"admin"}
    f.write_text("apiVersion: apiserver.config.k8s.io/v1\nkind: AdmissionConfiguration\nplugins:\n- name: PodSecurity\n"
                 "  configuration:\n    apiVersion: pod-security.admission.config.k8s.io/v1\n"
                 "    kind: PodSecurityConfiguration\n    defaults: {enforce: tight, audit-version: v2}\n"
                 "    exemptions: {namespaces: [Bad_NS, ok, ok], usernames: ['']}\n")
    with pytest.raises(PodSecurityConfigError) as e:
        config_from_file(str(f))
    assert str(e.value) == (
        f'PodSecurity: {f}: [defaults.enforce: Invalid value: "tight": must be one of privileged, baseline, restricted, '
        'defaults.audit-version: Invalid value: "v2": must be "latest" or "v1.x", exemptions.namespaces[0]: Invalid value: '
        '"Bad_NS": a lowercase RFC 1123 label must consist of lower case alphanumeric characters, \'-\' or \'.\', and must '
        'start and end with an alphanumeric character, exemptions.namespaces[2]: Duplicate value: "ok", '
        "exemptions.usernames[0]: Required value]")
    assert config_from_file(None) == PodSecurityConfig()
