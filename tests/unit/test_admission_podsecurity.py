"""PodSecurity: the baseline and restricted checks and their wording."""

from __future__ import annotations

from apiserver.admission.podsecurity import checks_for, evaluate, namespace_policy


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
    assert namespace_policy({}) is None
    assert namespace_policy({"pod-security.kubernetes.io/enforce": "privileged"}) is None
    assert namespace_policy({"pod-security.kubernetes.io/enforce": "baseline"}) == ("baseline", "latest")
    assert namespace_policy({"pod-security.kubernetes.io/enforce": "restricted",
                             "pod-security.kubernetes.io/enforce-version": "v1.30"}) == ("restricted", "v1.30")
    assert namespace_policy({"pod-security.kubernetes.io/enforce": "bogus"}) == ("restricted", "latest")
    assert namespace_policy({"pod-security.kubernetes.io/warn": "restricted"}) is None


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
    assert "capabilities_baseline" not in names and "capabilities_restricted" in names
    assert "host_path_volumes" not in names and "restricted_volumes" in names
    assert "seccomp_baseline" not in names and "seccomp_restricted" in names
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
