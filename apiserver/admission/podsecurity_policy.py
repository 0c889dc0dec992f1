"""The Pod Security Standards as upstream's k8s.io/pod-security-admission api/ and policy/ packages
define them: levels, versions (`latest` or `v1.X`), the namespace labels, and every check with
its versioned variants and wording.

A check has variants by minimum version (the safe sysctls grew at v1.27, v1.29 and v1.32,
`container_engine_t` became an allowed SELinux type at v1.31, ...). A policy's version picks,
for each check, the newest variant not newer than it; `latest` and any version newer than this
server's (v1.31, apiserver.app.VERSION) mean this server's version — so a v1.32 variant is
recorded here but never applies, as a 1.31 upstream server does not know it. Evaluation runs the
baseline checks, then (for restricted) the restricted ones, each group ordered by check id; a
restricted variant may override baseline checks (upstream's OverrideCheckIDs). A failed check
reads `reason (detail)`, and the failures join with ", " (AggregateCheckResult.ForbiddenDetail).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

LABEL_PREFIX = "pod-security.kubernetes.io/"
PRIVILEGED, BASELINE, RESTRICTED = "privileged", "baseline", "restricted"
LEVELS = (PRIVILEGED, BASELINE, RESTRICTED)
MODES = ("enforce", "audit", "warn")

Result = tuple[str, str] | None  # (forbidden reason, detail)
Check = Callable[[dict[str, Any], dict[str, Any]], Result]


# -- levels and versions (upstream's api package) ------------------------------------------


@functools.cache
def server_minor() -> int:
    """This server's minor version (1.x): what `latest` means."""
    from apiserver.app import VERSION

    return int(re.match(r"\d+", VERSION["minor"]).group())  # type: ignore[union-attr]


@dataclass(frozen=True, slots=True)
class Version:
    """`latest` (minor None) or v1.<minor>."""

    minor: int | None = None

    def __str__(self) -> str:
        return "latest" if self.minor is None else f"v1.{self.minor}"

    def effective(self) -> int:
        """The minor version whose checks apply: latest and future versions are this server's."""
        return server_minor() if self.minor is None else min(self.minor, server_minor())


LATEST = Version()


@dataclass(frozen=True, slots=True)
class LevelVersion:
    level: str
    version: Version = LATEST

    def __str__(self) -> str:
        return f"{self.level}:{self.version}"


@dataclass(frozen=True, slots=True)
class Policy:
    enforce: LevelVersion = LevelVersion(PRIVILEGED)
    audit: LevelVersion = LevelVersion(PRIVILEGED)
    warn: LevelVersion = LevelVersion(PRIVILEGED)

    def get(self, mode: str) -> LevelVersion:
        return getattr(self, mode)


class ParseError(ValueError):
    pass


def parse_level(value: str) -> str:
    if value in LEVELS:
        return value
    raise ParseError(f"must be one of {', '.join(LEVELS)}")


_VERSION = re.compile(r"^v1\.(0|[1-9][0-9]*)$")


def parse_version(value: str) -> Version:
    if value == "latest":
        return LATEST
    m = _VERSION.match(value)
    if m is None:
        raise ParseError('must be "latest" or "v1.x"')
    return Version(int(m.group(1)))


def go_quote(value: str) -> str:
    """Go's %q for the strings labels hold (json's escaping is the same for them)."""
    return json.dumps(value, ensure_ascii=False)


@dataclass(slots=True)
class LabelError:
    """One invalid label, as upstream's field.Invalid(metadata.labels[<key>], value, why)."""

    label: str
    value: str
    message: str

    @property
    def field(self) -> str:
        return f"metadata.labels[{self.label}]"

    def __str__(self) -> str:
        return f"{self.field}: Invalid value: {go_quote(self.value)}: {self.message}"


def aggregate(errs: list[Any]) -> str:
    """field.ErrorList.ToAggregate().Error(): one error as is, several in brackets."""
    texts = [str(e) for e in errs]
    return texts[0] if len(texts) == 1 else "[" + ", ".join(texts) + "]"


def policy_to_evaluate(labels: dict[str, str] | None, defaults: Policy = Policy()) -> tuple[Policy, list[LabelError]]:
    """A namespace's policy from its labels over the defaults, and the invalid labels. An invalid
    enforce level means restricted (fail closed), an invalid audit or warn level privileged
    (fail open), an invalid version latest — upstream's PolicyToEvaluate."""
    if not labels:
        return defaults, []
    errs: list[LabelError] = []
    def parsed(key: str, parse: Callable[[str], Any], current: Any, fallback: Any) -> Any:
        if key not in labels:
            return current
        raw = str(labels[key])
        try:
            return parse(raw)
        except ParseError as e:
            errs.append(LabelError(key, raw, str(e)))
            return fallback

    modes = {}
    for mode in MODES:
        default = defaults.get(mode)
        level = parsed(LABEL_PREFIX + mode, parse_level, default.level, RESTRICTED if mode == "enforce" else PRIVILEGED)
        version = parsed(f"{LABEL_PREFIX}{mode}-version", parse_version, default.version, LATEST)
        modes[mode] = LevelVersion(level, version)
    return Policy(**modes), errs


def compare_levels(a: str, b: str) -> int:
    """-1, 0 or 1 as level a is less, as or more strict than b."""
    return (LEVELS.index(a) > LEVELS.index(b)) - (LEVELS.index(a) < LEVELS.index(b))


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


SELINUX_TYPES_1_0 = frozenset({"", "container_t", "container_init_t", "container_kvm_t"})
SELINUX_TYPES_1_31 = SELINUX_TYPES_1_0 | {"container_engine_t"}


def _selinux_options(allowed_types: frozenset[str], meta: dict[str, Any], spec: dict[str, Any]) -> Result:
    bad_types: set[str] = set()
    bad_user = bad_role = False

    def check(opts: Any) -> bool:
        nonlocal bad_user, bad_role
        o = _d(opts)
        bad = False
        if o.get("type", "") not in allowed_types:
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


def selinux_options(meta: dict[str, Any], spec: dict[str, Any]) -> Result:
    return _selinux_options(SELINUX_TYPES_1_0, meta, spec)


def selinux_options_1_31(meta: dict[str, Any], spec: dict[str, Any]) -> Result:
    return _selinux_options(SELINUX_TYPES_1_31, meta, spec)


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


SECCOMP_POD_ANNOTATION = "seccomp.security.alpha.kubernetes.io/pod"
SECCOMP_CONTAINER_ANNOTATION = "container.seccomp.security.alpha.kubernetes.io/"


def seccomp_baseline_annotations(meta: dict[str, Any], spec: dict[str, Any]) -> Result:
    """v1.0-v1.18: the alpha annotations (runtime/default, docker/default or localhost/*)."""
    annotations = _d(meta.get("annotations"))

    def valid(v: Any) -> bool:
        return v in ("runtime/default", "docker/default") or str(v).startswith("localhost/")

    keys = [SECCOMP_POD_ANNOTATION] + [SECCOMP_CONTAINER_ANNOTATION + str(c.get("name", "")) for c in containers(spec)]
    bad = sorted({f"{k}={go_quote(str(annotations[k]))}" for k in keys if k in annotations and not valid(annotations[k])})
    if bad:
        return "seccompProfile", f"forbidden {pluralize('annotation', 'annotations', len(bad))} {', '.join(bad)}"
    return None


def seccomp_baseline(meta: dict[str, Any], spec: dict[str, Any]) -> Result:
    pod_bad = _d(_d(spec.get("securityContext")).get("seccompProfile")).get("type") == "Unconfined"
    bad = [c.get("name", "") for c in containers(spec) if _d(_sc(c).get("seccompProfile")).get("type") == "Unconfined"]
    if pod_bad or bad:
        return "seccompProfile", f'{_setters(pod_bad, bad)} must not set securityContext.seccompProfile.type to "Unconfined"'
    return None


SYSCTLS_1_0 = frozenset({"kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.tcp_syncookies",
                         "net.ipv4.ping_group_range", "net.ipv4.ip_unprivileged_port_start"})
SYSCTLS_1_27 = SYSCTLS_1_0 | {"net.ipv4.ip_local_reserved_ports"}
SYSCTLS_1_29 = SYSCTLS_1_27 | {"net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
                               "net.ipv4.tcp_keepalive_probes"}
SYSCTLS_1_32 = SYSCTLS_1_29 | {"net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem"}


def _sysctls(allowed: frozenset[str], spec: dict[str, Any]) -> Result:
    # in the pod's order, as upstream lists them
    bad = [str(s.get("name")) for s in map(_d, _l(_d(spec.get("securityContext")).get("sysctls"))) if s.get("name") not in allowed]
    return ("forbidden sysctls", ", ".join(bad)) if bad else None


def sysctls(meta: dict[str, Any], spec: dict[str, Any]) -> Result:
    return _sysctls(SYSCTLS_1_0, spec)


def sysctls_1_27(meta: dict[str, Any], spec: dict[str, Any]) -> Result:
    return _sysctls(SYSCTLS_1_27, spec)


def sysctls_1_29(meta: dict[str, Any], spec: dict[str, Any]) -> Result:
    return _sysctls(SYSCTLS_1_29, spec)


def sysctls_1_32(meta: dict[str, Any], spec: dict[str, Any]) -> Result:
    return _sysctls(SYSCTLS_1_32, spec)


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


def not_on_windows(check: Check) -> Check:
    """The v1.25 variant of a restricted check: pods with spec.os.name=windows are exempt."""
    def variant(meta: dict[str, Any], spec: dict[str, Any]) -> Result:
        return None if _d(spec.get("os")).get("name") == "windows" else check(meta, spec)

    variant.__name__ = f"{check.__name__}_1_25"
    return variant


@dataclass(frozen=True, slots=True)
class Variant:
    minimum: int  # the minor version (1.x) from which it applies
    check: Check
    overrides: tuple[str, ...] = ()  # baseline check ids it replaces at the restricted level


@dataclass(frozen=True, slots=True)
class CheckDef:
    id: str
    level: str
    variants: tuple[Variant, ...] = field(default_factory=tuple)

    def at(self, minor: int) -> Variant | None:
        """The newest variant not newer than v1.<minor>, None before the first."""
        found = None
        for v in self.variants:
            if v.minimum <= minor:
                found = v
        return found


CHECKS: tuple[CheckDef, ...] = (
    CheckDef("allowPrivilegeEscalation", RESTRICTED, (Variant(8, allow_privilege_escalation),
                                                       Variant(25, not_on_windows(allow_privilege_escalation)))),
    CheckDef("appArmorProfile", BASELINE, (Variant(0, app_armor),)),
    CheckDef("capabilities_baseline", BASELINE, (Variant(0, capabilities_baseline),)),
    CheckDef("capabilities_restricted", RESTRICTED, (
        Variant(22, capabilities_restricted, ("capabilities_baseline",)),
        Variant(25, not_on_windows(capabilities_restricted), ("capabilities_baseline",)))),
    CheckDef("hostNamespaces", BASELINE, (Variant(0, host_namespaces),)),
    CheckDef("hostPathVolumes", BASELINE, (Variant(0, host_path_volumes),)),
    CheckDef("hostPorts", BASELINE, (Variant(0, host_ports),)),
    CheckDef("privileged", BASELINE, (Variant(0, privileged),)),
    CheckDef("procMount", BASELINE, (Variant(0, proc_mount),)),
    CheckDef("restrictedVolumes", RESTRICTED, (Variant(0, restricted_volumes, ("hostPathVolumes",)),)),
    CheckDef("runAsNonRoot", RESTRICTED, (Variant(0, run_as_non_root),)),
    CheckDef("runAsUser", RESTRICTED, (Variant(23, run_as_user),)),
    CheckDef("seLinuxOptions", BASELINE, (Variant(0, selinux_options), Variant(31, selinux_options_1_31))),
    CheckDef("seccompProfile_baseline", BASELINE, (Variant(0, seccomp_baseline_annotations), Variant(19, seccomp_baseline))),
    CheckDef("seccompProfile_restricted", RESTRICTED, (
        Variant(19, seccomp_restricted, ("seccompProfile_baseline",)),
        Variant(25, not_on_windows(seccomp_restricted), ("seccompProfile_baseline",)))),
    CheckDef("sysctls", BASELINE, (Variant(0, sysctls), Variant(27, sysctls_1_27), Variant(29, sysctls_1_29),
                                   Variant(32, sysctls_1_32))),
    CheckDef("windowsHostProcess", BASELINE, (Variant(0, host_process),)),
)


@functools.cache
def checks_for(level: str, minor: int | None = None) -> tuple[Check, ...]:
    """The checks a level runs at v1.<minor> (None: latest): the baseline ones by id, then for
    restricted the restricted ones by id, less the baseline checks a restricted variant overrides."""
    if level == PRIVILEGED:
        return ()
    minor = Version(minor).effective()
    chosen = {c.id: (c, v) for c in CHECKS if (v := c.at(minor)) is not None}
    baseline = sorted(i for i, (c, _) in chosen.items() if c.level == BASELINE)
    if level != RESTRICTED:
        return tuple(chosen[i][1].check for i in baseline)
    restricted = sorted(i for i, (c, _) in chosen.items() if c.level == RESTRICTED)
    overridden = {o for i in restricted for o in chosen[i][1].overrides}
    return tuple(chosen[i][1].check for i in [*baseline, *restricted] if i not in overridden)


def check_pod(lv: LevelVersion, meta: dict[str, Any], spec: dict[str, Any]) -> list[tuple[str, str]]:
    """The failed checks of a level:version for a pod (or a template's metadata and spec), as
    (reason, detail) pairs in evaluation order."""
    out = []
    for check in checks_for(lv.level, lv.version.minor):
        r = check(_d(meta), _d(spec))
        if r is not None:
            out.append(r)
    return out


def forbidden_detail(failures: list[tuple[str, str]]) -> str:
    return ", ".join(f"{reason} ({detail})" if detail else reason for reason, detail in failures)


def forbidden_reason(failures: list[tuple[str, str]]) -> str:
    return ", ".join(reason for reason, _ in failures)


def evaluate(level: str, pod: dict[str, Any], version: Version = LATEST) -> list[str]:
    """The failed checks of `level` for a pod, as `reason (detail)` strings."""
    failures = check_pod(LevelVersion(level, version), _d(pod.get("metadata")), _d(pod.get("spec")))
    return [forbidden_detail([f]) for f in failures]
