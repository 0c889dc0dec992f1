"""The PodSecurity admission plugin: the Pod Security Standards, enforced per namespace.

A namespace's `pod-security.kubernetes.io/enforce` label (`privileged`, `baseline` or
`restricted`, with `enforce-version`, default `latest`) decides which pods may be created
or changed in it; an invalid level is enforced as `restricted`, as upstream does. Each
check is upstream's (k8s.io/pod-security-admission/policy) with its wording, and a
rejection lists every failed check:
`violates PodSecurity "restricted:latest": allowPrivilegeEscalation != false (...), ...`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from apiserver.admission import CREATE, UPDATE, Attributes, Plugin
from apiserver.lookup import get_object

if TYPE_CHECKING:
    from apiserver.server import APIServer

LABEL_PREFIX = "pod-security.kubernetes.io/"
LEVELS = ("privileged", "baseline", "restricted")

Result = tuple[str, str] | None  # (forbidden reason, detail)
Check = Callable[[dict[str, Any], dict[str, Any]], Result]


def _d(x: Any) -> dict[str, Any]:
    return x if isinstance(x, dict) else {}


def _l(x: Any) -> list[Any]:
    return x if isinstance(x, list) else []


def containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for key in ("initContainers", "containers", "ephemeralContainers") for c in _l(spec.get(key)) if isinstance(c, dict)]


def pluralize(singular: str, plural: str, n: int) -> str:
    return singular if n == 1 else plural


def join_quote(items: list[Any]) -> str:
    return ", ".join(f'"{i}"' for i in items)


def _named(kind: str, names: list[str]) -> str:
    return f"{pluralize(kind, kind + 's', len(names))} {join_quote(names)}"


def _setters(pod_bad: bool, bad_containers: list[str]) -> str:
    parts = (["pod"] if pod_bad else []) + ([_named("container", bad_containers)] if bad_containers else [])
    return " and ".join(parts)


def _sc(c: dict[str, Any]) -> dict[str, Any]:
    return _d(c.get("securityContext"))


# -- baseline ------------------------------------------------------------------------------


def host_process(meta: dict[str, Any], spec: dict[str, Any]) -> Result:
    pod_bad = _d(_d(spec.get("securityContext")).get("windowsOptions")).get("hostProcess") is True
    bad = [c.get("name", "") for c in containers(spec) if _d(_sc(c).get("windowsOptions")).get("hostProcess") is True]
    if pod_bad or bad:
        return "hostProcess", f"{_setters(pod_bad, bad)} must not set securityContext.windowsOptions.hostProcess=true"
    return None


def host_namespaces(meta: dict[str, Any], spec: dict[str, Any]) -> Result:
    used = sorted(f"{k}=true" for k in ("hostIPC", "hostNetwork", "hostPID") if spec.get(k) is True)
    return ("host namespaces", ", ".join(used)) if used else None


def privileged(meta: dict[str, Any], spec: dict[str, Any]) -> Result:
    bad = [c.get("name", "") for c in containers(spec) if _sc(c).get("privileged") is True]
    return ("privileged", f"{_named('container', bad)} must not set securityContext.privileged=true") if bad else None


BASELINE_CAPABILITIES = {"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE",
                         "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"}


def capabilities_baseline(meta: dict[str, Any], spec: dict[str, Any]) -> Result:
    bad, caps = [], set()
    for c in containers(spec):
        added = [x for x in _l(_d(_sc(c).get("capabilities")).get("add")) if x not in BASELINE_CAPABILITIES]
        if added:
            bad.append(c.get("name", ""))
            caps.update(map(str, added))
    if bad:
        return "non-default capabilities", (f"{_named('container', bad)} must not include {join_quote(sorted(caps))} "
                                            "in securityContext.capabilities.add")
    return None


def host_path_volumes(meta: dict[str, Any], spec: dict[str, Any]) -> Result:
    bad = [v.get("name", "") for v in map(_d, _l(spec.get("volumes"))) if v.get("hostPath") is not None]
    return ("hostPath volumes", _named("volume", bad)) if bad else None


def host_ports(meta: dict[str, Any], spec: dict[str, Any]) -> Result:
    bad, ports = [], []
    for c in containers(spec):
        found = [p.get("hostPort") for p in map(_d, _l(c.get("ports"))) if p.get("hostPort")]
        if found:
            bad.append(c.get("name", ""))
            ports += [str(p) for p in found]
    if bad:
        verb = "uses" if len(bad) == 1 else "use"
        return "hostPort", f"{_named('container', bad)} {verb} {pluralize('hostPort', 'hostPorts', len(ports))} {', '.join(ports)}"
    return None


APPARMOR_ANNOTATION = "container.apparmor.security.beta.kubernetes.io/"


def app_armor(meta: dict[str, Any], spec: dict[str, Any]) -> Result:
    bad = set()
    for k, v in _d(meta.get("annotations")).items():
        if k.startswith(APPARMOR_ANNOTATION) and v != "runtime/default" and not str(v).startswith("localhost/"):
            bad.add(f'{k}="{v}"')
    profiles = [("pod", _d(spec.get("securityContext")).get("appArmorProfile"))]
    profiles += [(f'container "{c.get("name", "")}"', _sc(c).get("appArmorProfile")) for c in containers(spec)]
    for _, p in profiles:
        if isinstance(p, dict) and p.get("type") not in (None, "RuntimeDefault", "Localhost"):
            bad.add(f'appArmorProfile.type="{p.get("type")}"')
    if bad:
        return pluralize("forbidden AppArmor profile", "forbidden AppArmor profiles", len(bad)), ", ".join(sorted(bad))
    return None


SELINUX_TYPES = {"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}


def selinux_options(meta: dict[str, Any], spec: dict[str, Any]) -> Result:
    bad_types: set[str] = set()
    bad_user = bad_role = False

    def check(opts: Any) -> bool:
        nonlocal bad_user, bad_role
        o = _d(opts)
        bad = False
        if o.get("type", "") not in SELINUX_TYPES:
            bad_types.add(str(o.get("type")))
            bad = True
        if o.get("user"):
            bad_user = bad = True
        if o.get("role"):
            bad_role = bad = True
        return bad

    pod_bad = check(_d(spec.get("securityContext")).get("seLinuxOptions"))
    bad = [c.get("name", "") for c in containers(spec) if check(_sc(c).get("seLinuxOptions"))]
    if not pod_bad and not bad:
        return None
    what = []
    if bad_types:
        what.append(f"{pluralize('type', 'types', len(bad_types))} {join_quote(sorted(bad_types))}")
    if bad_user:
        what.append("user may not be set")
    if bad_role:
        what.append("role may not be set")
    return "seLinuxOptions", f"{_setters(pod_bad, bad)} set forbidden securityContext.seLinuxOptions: {'; '.join(what)}"


def proc_mount(meta: dict[str, Any], spec: dict[str, Any]) -> Result:
    bad, values = [], set()
    for c in containers(spec):
        pm = _sc(c).get("procMount")
        if pm not in (None, "Default"):
            bad.append(c.get("name", ""))
            values.add(str(pm))
    if bad:
        return "procMount", f"{_named('container', bad)} must not set securityContext.procMount to {join_quote(sorted(values))}"
    return None


def seccomp_baseline(meta: dict[str, Any], spec: dict[str, Any]) -> Result:
    pod_bad = _d(_d(spec.get("securityContext")).get("seccompProfile")).get("type") == "Unconfined"
    bad = [c.get("name", "") for c in containers(spec) if _d(_sc(c).get("seccompProfile")).get("type") == "Unconfined"]
    if pod_bad or bad:
        return "seccompProfile", f'{_setters(pod_bad, bad)} must not set securityContext.seccompProfile.type to "Unconfined"'
    return None


SAFE_SYSCTLS = {"kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
                "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
                "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
                "net.ipv4.tcp_keepalive_probes", "net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem"}


def sysctls(meta: dict[str, Any], spec: dict[str, Any]) -> Result:
    bad = sorted({str(s.get("name")) for s in map(_d, _l(_d(spec.get("securityContext")).get("sysctls")))
                  if s.get("name") not in SAFE_SYSCTLS})
    return ("forbidden sysctls", ", ".join(bad)) if bad else None


# -- restricted ----------------------------------------------------------------------------

ALLOWED_VOLUME_SOURCES = ("configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret")


def restricted_volumes(meta: dict[str, Any], spec: dict[str, Any]) -> Result:
    bad, kinds = [], set()
    for v in map(_d, _l(spec.get("volumes"))):
        if any(v.get(k) is not None for k in ALLOWED_VOLUME_SOURCES):
            continue
        bad.append(v.get("name", ""))
        kinds.update(k for k in v if k != "name")
    if bad:
        verb = "uses" if len(bad) == 1 else "use"
        return "restricted volume types", (f"{_named('volume', bad)} {verb} restricted volume "
                                           f"{pluralize('type', 'types', len(kinds))} {join_quote(sorted(kinds))}")
    return None


def allow_privilege_escalation(meta: dict[str, Any], spec: dict[str, Any]) -> Result:
    bad = [c.get("name", "") for c in containers(spec) if _sc(c).get("allowPrivilegeEscalation") is not False]
    if bad:
        return "allowPrivilegeEscalation != false", f"{_named('container', bad)} must set securityContext.allowPrivilegeEscalation=false"
    return None


def capabilities_restricted(meta: dict[str, Any], spec: dict[str, Any]) -> Result:
    missing_drop, adding, caps = [], [], set()
    for c in containers(spec):
        capabilities = _d(_sc(c).get("capabilities"))
        if "ALL" not in _l(capabilities.get("drop")):
            missing_drop.append(c.get("name", ""))
        added = [x for x in _l(capabilities.get("add")) if x != "NET_BIND_SERVICE"]
        if added:
            adding.append(c.get("name", ""))
            caps.update(map(str, added))
    details = []
    if missing_drop:
        details.append(f'{_named("container", missing_drop)} must set securityContext.capabilities.drop=["ALL"]')
    if adding:
        details.append(f"{_named('container', adding)} must not include {join_quote(sorted(caps))} in securityContext.capabilities.add")
    return ("unrestricted capabilities", "; ".join(details)) if details else None


def run_as_non_root(meta: dict[str, Any], spec: dict[str, Any]) -> Result:
    pod_value = _d(spec.get("securityContext")).get("runAsNonRoot")
    pod_bad = pod_value is False
    explicit, implicit = [], []
    for c in containers(spec):
        v = _sc(c).get("runAsNonRoot")
        if v is False:
            explicit.append(c.get("name", ""))
        elif v is None and pod_value is not True:
            implicit.append(c.get("name", ""))
    if pod_bad or explicit:
        return "runAsNonRoot != true", f"{_setters(pod_bad, explicit)} must not set securityContext.runAsNonRoot=false"
    if implicit:
        return "runAsNonRoot != true", f"pod or {_named('container', implicit)} must set securityContext.runAsNonRoot=true"
    return None


def run_as_user(meta: dict[str, Any], spec: dict[str, Any]) -> Result:
    pod_bad = _d(spec.get("securityContext")).get("runAsUser") == 0
    bad = [c.get("name", "") for c in containers(spec) if _sc(c).get("runAsUser") == 0]
    if pod_bad or bad:
        return "runAsUser=0", f"{_setters(pod_bad, bad)} must not set runAsUser=0"
    return None


def seccomp_restricted(meta: dict[str, Any], spec: dict[str, Any]) -> Result:
    def valid(t: Any) -> bool:
        return t in ("RuntimeDefault", "Localhost")

    pod_profile = _d(spec.get("securityContext")).get("seccompProfile")
    pod_bad, pod_set, bad_values = False, False, set()
    if isinstance(pod_profile, dict):
        if valid(pod_profile.get("type")):
            pod_set = True
        else:
            pod_bad = True
            bad_values.add(str(pod_profile.get("type")))
    explicit, implicit = [], []
    for c in containers(spec):
        profile = _sc(c).get("seccompProfile")
        if isinstance(profile, dict):
            if not valid(profile.get("type")):
                explicit.append(c.get("name", ""))
                bad_values.add(str(profile.get("type")))
        elif not pod_set:
            implicit.append(c.get("name", ""))
    if pod_bad or explicit:
        return "seccompProfile", (f"{_setters(pod_bad, explicit)} must not set securityContext.seccompProfile.type to "
                                  f"{join_quote(sorted(bad_values))}")
    if implicit:
        return "seccompProfile", (f"pod or {_named('container', implicit)} must set securityContext.seccompProfile.type "
                                  'to "RuntimeDefault" or "Localhost"')
    return None


#: check id → (level, function, ids it replaces at its level)
CHECKS: dict[str, tuple[str, Check, tuple[str, ...]]] = {
    "allowPrivilegeEscalation": ("restricted", allow_privilege_escalation, ()),
    "appArmorProfile": ("baseline", app_armor, ()),
    "capabilities_baseline": ("baseline", capabilities_baseline, ()),
    "capabilities_restricted": ("restricted", capabilities_restricted, ("capabilities_baseline",)),
    "hostNamespaces": ("baseline", host_namespaces, ()),
    "hostPathVolumes": ("baseline", host_path_volumes, ()),
    "hostPorts": ("baseline", host_ports, ()),
    "privileged": ("baseline", privileged, ()),
    "procMount": ("baseline", proc_mount, ()),
    "restrictedVolumes": ("restricted", restricted_volumes, ("hostPathVolumes",)),
    "runAsNonRoot": ("restricted", run_as_non_root, ()),
    "runAsUser": ("restricted", run_as_user, ()),
    "seLinuxOptions": ("baseline", selinux_options, ()),
    "seccompProfile_baseline": ("baseline", seccomp_baseline, ()),
    "seccompProfile_restricted": ("restricted", seccomp_restricted, ("seccompProfile_baseline",)),
    "sysctls": ("baseline", sysctls, ()),
    "windowsHostProcess": ("baseline", host_process, ()),
}


def checks_for(level: str) -> list[Check]:
    if level == "privileged":
        return []
    ids = [i for i, (lvl, _, _) in CHECKS.items() if lvl == "baseline" or level == "restricted"]
    replaced = {r for i in ids for r in CHECKS[i][2]}
    return [CHECKS[i][1] for i in sorted(ids) if i not in replaced]


def evaluate(level: str, pod: dict[str, Any]) -> list[str]:
    """The failed checks of `level` for a pod, as `reason (detail)` strings."""
    meta, spec = _d(pod.get("metadata")), _d(pod.get("spec"))
    out = []
    for check in checks_for(level):
        r = check(meta, spec)
        if r is not None:
            out.append(f"{r[0]} ({r[1]})" if r[1] else r[0])
    return out


def namespace_policy(labels: dict[str, str]) -> tuple[str, str] | None:
    """(level, version) the namespace enforces, or None for privileged/unlabelled."""
    level = labels.get(LABEL_PREFIX + "enforce")
    if level is None:
        return None
    version = labels.get(LABEL_PREFIX + "enforce-version") or "latest"
    if level not in LEVELS:
        level = "restricted"  # an invalid level must not loosen anything
    if level == "privileged":
        return None
    return level, version


class PodSecurity(Plugin):
    name = "PodSecurity"

    def __init__(self, server: APIServer) -> None:
        self.server = server

    async def validate(self, a: Attributes) -> None:
        if a.resource.group or a.resource.plural != "pods" or not isinstance(a.obj, dict):
            return
        if a.operation == UPDATE:
            # only spec changes are evaluated (status/metadata updates never are)
            if a.subresource not in ("", "ephemeralcontainers") or not isinstance(a.old, dict) or a.obj.get("spec") == a.old.get("spec"):
                return
        elif a.operation != CREATE or a.subresource:
            return
        ns = await get_object(self.server, "", "namespaces", "", a.namespace)
        if ns is None:
            return
        policy = namespace_policy(_d(ns["metadata"].get("labels")))
        if policy is None:
            return
        level, version = policy
        failures = evaluate(level, a.obj)
        if failures:
            raise self.forbidden(a, f'violates PodSecurity "{level}:{version}": {", ".join(failures)}')
