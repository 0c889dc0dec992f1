"""The PodSecurity admission plugin: the Pod Security Standards per namespace, in three modes.

A namespace's labels `pod-security.kubernetes.io/<mode>` (`privileged`, `baseline` or
`restricted`) and `<mode>-version` (`latest` or `v1.X`) choose, over the defaults of the
admission configuration file, what is checked (apiserver/admission/podsecurity_policy.py):

- **enforce**: a pod that fails is refused
  (`pods "x" is forbidden: PodSecurity: violates PodSecurity "restricted:latest": ...`);
- **audit**: the failures go on the request's audit event as the annotation
  `pod-security.kubernetes.io/audit-violations` (`would violate PodSecurity "<lv>": ...`);
- **warn**: they go back to the client as a `Warning` header in the same words.

Pods are evaluated in all three modes; the pod templates of workload resources (Deployments,
ReplicaSets, StatefulSets, DaemonSets, Jobs, CronJobs, ReplicationControllers, PodTemplates)
in audit and warn only, as upstream: a workload is never refused, its pods are. Evaluating a
pod records the enforced policy (`pod-security.kubernetes.io/enforce-policy: <level:version>`).
Pod updates are evaluated only when they matter (a container added or its image changed, the
seccomp annotations, an ephemeral container added); status, binding, exec and the like never.

Namespaces: invalid labels are refused on create, and on update when they change; when an
update tightens the enforce level, the namespace's existing pods are evaluated against it and
the violations come back as warnings (dry runs included).

Exemptions (the configuration's usernames, namespaces and runtimeClasses) skip evaluation and
record `pod-security.kubernetes.io/exempt: user|namespace|runtimeClass`. This follows upstream's
k8s.io/pod-security-admission/admission (1.31).
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from apimachinery import errors
from apiserver.admission import CREATE, UPDATE, Attributes, Plugin
from apiserver.admission.podsecurity_policy import (
    LABEL_PREFIX,
    LATEST,
    MODES,
    PRIVILEGED,
    LevelVersion,
    ParseError,
    Policy,
    aggregate,
    check_pod,
    compare_levels,
    forbidden_detail,
    forbidden_reason,
    go_quote,
    parse_level,
    parse_version,
    policy_to_evaluate,
)
from apiserver.admission.webhook import request_notes
from apiserver.lookup import get_object
from apiserver.watchcache import Filter

if TYPE_CHECKING:
    from apiserver.server import APIServer

CONFIG_API_VERSIONS = ("pod-security.admission.config.k8s.io/v1", "pod-security.admission.config.k8s.io/v1beta1")

#: pod subresources never evaluated (any other one may change the spec)
IGNORED_POD_SUBRESOURCES = frozenset({"exec", "attach", "binding", "eviction", "log", "portforward", "proxy", "status"})

#: (group, resource) → where its pod template sits
POD_CONTROLLERS: dict[tuple[str, str], tuple[str, ...]] = {
    ("", "podtemplates"): ("template",),
    ("", "replicationcontrollers"): ("spec", "template"),
    ("apps", "replicasets"): ("spec", "template"),
    ("apps", "deployments"): ("spec", "template"),
    ("apps", "statefulsets"): ("spec", "template"),
    ("apps", "daemonsets"): ("spec", "template"),
    ("batch", "jobs"): ("spec", "template"),
    ("batch", "cronjobs"): ("spec", "jobTemplate", "spec", "template"),
}

#: how many existing pods a namespace's new enforce level is checked against, and for how long
NAMESPACE_MAX_PODS = 3000
NAMESPACE_CHECK_SECONDS = 1.0

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def _d(x: Any) -> dict[str, Any]:
    return x if isinstance(x, dict) else {}


def _l(x: Any) -> list[Any]:
    return x if isinstance(x, list) else []


# -- the configuration (PodSecurityConfiguration) ---------------------------------------------


class PodSecurityConfigError(ValueError):
    pass


@dataclass(slots=True)
class PodSecurityConfig:
    defaults: Policy = field(default_factory=Policy)
    usernames: frozenset[str] = frozenset()
    namespaces: frozenset[str] = frozenset()
    runtime_classes: frozenset[str] = frozenset()


def _strings(errs: list[str], path: str, value: Any, valid: re.Pattern[str] | None, what: str) -> list[str]:
    out: list[str] = []
    for i, v in enumerate(_l(value)):
        p = f"{path}[{i}]"
        if not isinstance(v, str) or not v:
            errs.append(f"{p}: Required value")
        elif valid is not None and (len(v) > (63 if what == "label" else 253) or not valid.match(v)):
            errs.append(f"{p}: Invalid value: {go_quote(v)}: a lowercase RFC 1123 {what} must consist of lower case "
                        "alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character")
        elif v in out:
            errs.append(f"{p}: Duplicate value: {go_quote(v)}")
        else:
            out.append(v)
    return out


def parse_config(doc: Any) -> PodSecurityConfig:
    """A PodSecurityConfiguration (defaults and exemptions), validated as upstream's."""
    if doc is None:
        return PodSecurityConfig()
    if not isinstance(doc, dict) or doc.get("kind") != "PodSecurityConfiguration" or doc.get("apiVersion") not in CONFIG_API_VERSIONS:
        raise PodSecurityConfigError(f"want kind PodSecurityConfiguration, apiVersion one of {', '.join(CONFIG_API_VERSIONS)}")
    defaults, exemptions = _d(doc.get("defaults")), _d(doc.get("exemptions"))
    errs: list[str] = []
    modes = {}
    for mode in MODES:
        level, version = str(defaults.get(mode) or PRIVILEGED), str(defaults.get(f"{mode}-version") or "latest")
        try:
            level = parse_level(level)
        except ParseError as e:
            errs.append(f"defaults.{mode}: Invalid value: {go_quote(level)}: {e}")
        try:
            parsed = parse_version(version)
        except ParseError as e:
            errs.append(f"defaults.{mode}-version: Invalid value: {go_quote(version)}: {e}")
            parsed = LATEST
        modes[mode] = LevelVersion(level, parsed)
    namespaces = _strings(errs, "exemptions.namespaces", exemptions.get("namespaces"), _DNS1123_LABEL, "label")
    classes = _strings(errs, "exemptions.runtimeClasses", exemptions.get("runtimeClasses"), _DNS1123_SUBDOMAIN, "subdomain")
    users = _strings(errs, "exemptions.usernames", exemptions.get("usernames"), None, "")
    if errs:
        raise PodSecurityConfigError(aggregate(errs))
    return PodSecurityConfig(Policy(**modes), frozenset(users), frozenset(namespaces), frozenset(classes))


def config_from_file(path: str | None) -> PodSecurityConfig:
    if not path:
        return PodSecurityConfig()
    from apiserver.admission.config import load_admission_config

    try:
        return parse_config(load_admission_config(path).get("PodSecurity"))
    except PodSecurityConfigError as e:
        raise PodSecurityConfigError(f"PodSecurity: {path}: {e}") from None


# -- what an evaluation answers -----------------------------------------------------------------


@dataclass(slots=True)
class Response:
    """Upstream's AdmissionResponse, reduced: refusal, warnings and audit annotations (their
    keys without the `pod-security.kubernetes.io/` prefix the plugin adds)."""

    forbidden: str | None = None
    invalid: list[Any] | None = None
    warnings: list[str] = field(default_factory=list)
    annotations: dict[str, str] = field(default_factory=dict)


def exempt(reason: str) -> Response:
    return Response(annotations={"exempt": reason})


def is_significant_pod_update(pod: dict[str, Any], old: dict[str, Any]) -> bool:
    """Whether a pod update can change the verdict: the mutable fields that matter are
    containers' images, the seccomp annotations, and ephemeral containers being added."""
    annotations, old_annotations = _d(_d(pod.get("metadata")).get("annotations")), _d(_d(old.get("metadata")).get("annotations"))
    pod_key = "seccomp.security.alpha.kubernetes.io/pod"
    if annotations.get(pod_key) != old_annotations.get(pod_key):
        return True
    spec, old_spec = _d(pod.get("spec")), _d(old.get("spec"))

    def changed(c: dict[str, Any], oc: dict[str, Any]) -> bool:
        key = f"container.seccomp.security.alpha.kubernetes.io/{c.get('name', '')}"
        return c.get("image") != oc.get("image") or annotations.get(key) != old_annotations.get(key)

    for kind in ("containers", "initContainers"):
        new, prev = [_d(c) for c in _l(spec.get(kind))], [_d(c) for c in _l(old_spec.get(kind))]
        if len(new) != len(prev) or any(changed(c, oc) for c, oc in zip(new, prev, strict=True)):
            return True
    previous = {c.get("name"): c for c in map(_d, _l(old_spec.get("ephemeralContainers")))}
    for c in map(_d, _l(spec.get("ephemeralContainers"))):
        oc = previous.get(c.get("name"))
        if oc is None or changed(c, oc):
            return True
    return False


def pod_template(obj: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any] | None:
    node: Any = obj
    for key in path:
        node = node.get(key) if isinstance(node, dict) else None
    return node if isinstance(node, dict) else None


class PodSecurity(Plugin):
    name = "PodSecurity"

    def __init__(self, server: APIServer | None, config: PodSecurityConfig | None = None) -> None:
        self.server = server
        if config is None:
            config = config_from_file(getattr(getattr(server, "opts", None), "admission_control_config_file", None))
        self.config = config

    # -- the plumbing: the request's notes, the namespace, the pods -------------------------------

    async def validate(self, a: Attributes) -> None:
        if a.operation not in (CREATE, UPDATE) or not isinstance(a.obj, dict):
            return
        gr = (a.resource.group, a.resource.plural)
        if gr == ("", "namespaces"):
            r = await self.validate_namespace(a)
        elif gr == ("", "pods"):
            r = await self.validate_pod(a)
        elif gr in POD_CONTROLLERS:
            r = await self.validate_pod_controller(a)
        else:
            return
        notes = request_notes()
        for w in r.warnings:
            notes.warn(w)
        for k, v in r.annotations.items():
            notes.annotate(LABEL_PREFIX + k, v)
        if r.invalid:
            raise errors.invalid("Namespace", a.name or _d(a.obj.get("metadata")).get("name", ""),
                                 [errors.field_cause(e.field, f"Invalid value: {go_quote(e.value)}: {e.message}")
                                  for e in r.invalid])
        if r.forbidden is not None:
            raise self.forbidden(a, r.forbidden)

    async def namespace_labels(self, namespace: str) -> dict[str, str] | None:
        """The namespace's labels; None when it does not exist."""
        assert self.server is not None
        ns = await get_object(self.server, "", "namespaces", "", namespace)
        return None if ns is None else _d(_d(ns.get("metadata")).get("labels"))

    async def namespace_pods(self, namespace: str) -> list[dict[str, Any]]:
        assert self.server is not None
        cache = self.server.cache_for("", "pods")
        if not cache.ready.is_set():
            await cache.sync_with_store()
        return [orjson.loads(e.data) for e in cache.list(Filter(namespace=namespace))]

    # -- upstream's Admission ------------------------------------------------------------------

    def exempt_namespace(self, namespace: str) -> bool:
        return bool(namespace) and namespace in self.config.namespaces

    def exempt_user(self, username: str) -> bool:
        return bool(username) and username in self.config.usernames

    def exemption(self, a: Attributes) -> Response | None:
        """The answer for a request from an exempt namespace or user (None: not exempt)."""
        if self.exempt_namespace(a.namespace):
            return exempt("namespace")
        if self.exempt_user(a.user.name):
            return exempt("user")
        return None

    def policy(self, labels: dict[str, str] | None) -> tuple[Policy, list[Any]]:
        return policy_to_evaluate(labels, self.config.defaults)

    async def validate_namespace(self, a: Attributes) -> Response:
        if a.subresource:
            return Response()
        meta = _d(a.obj.get("metadata")) if a.obj else {}
        new_policy, new_errs = self.policy(_d(meta.get("labels")))
        if a.operation == CREATE:
            return Response(invalid=new_errs) if new_errs else Response()
        old_policy, old_errs = self.policy(_d(_d(_d(a.old).get("metadata")).get("labels")))
        if new_errs and (not old_errs or [str(e) for e in new_errs] != [str(e) for e in old_errs]):
            return Response(invalid=new_errs)
        new, old = new_policy.enforce, old_policy.enforce
        # no pods to check: the enforce policy is unchanged, privileged, or relaxed at the same version
        if new == old or new.level == PRIVILEGED or (new.version == old.version and compare_levels(new.level, old.level) < 1):
            return Response()
        name = meta.get("name") or a.name
        if self.exempt_namespace(name):
            return exempt("namespace")
        return Response(warnings=await self.evaluate_pods_in_namespace(name, new))

    async def validate_pod(self, a: Attributes) -> Response:
        if a.subresource in IGNORED_POD_SUBRESOURCES:
            return Response()
        if (r := self.exemption(a)) is not None:
            return r
        labels = await self.namespace_labels(a.namespace)
        if labels is None:
            return Response()  # NamespaceLifecycle answers for a namespace that does not exist
        policy, errs = self.policy(labels)
        if not errs and all(policy.get(m).level == PRIVILEGED for m in MODES):
            return Response(annotations={"enforce-policy": str(LevelVersion(PRIVILEGED))})
        assert a.obj is not None
        if a.operation == UPDATE and isinstance(a.old, dict) and not is_significant_pod_update(a.obj, a.old):
            return Response()
        return self.evaluate_pod(policy, errs, _d(a.obj.get("metadata")), _d(a.obj.get("spec")), enforce=True)

    async def validate_pod_controller(self, a: Attributes) -> Response:
        if a.subresource:
            return Response()
        if (r := self.exemption(a)) is not None:
            return r
        labels = await self.namespace_labels(a.namespace)
        if labels is None:
            return Response(annotations={"error": f"failed to lookup namespace {a.namespace}: "
                                                  f'namespaces "{a.namespace}" not found'})
        policy, errs = self.policy(labels)
        if not errs and policy.warn.level == PRIVILEGED and policy.audit.level == PRIVILEGED:
            return Response()
        assert a.obj is not None
        template = pod_template(a.obj, POD_CONTROLLERS[(a.resource.group, a.resource.plural)])
        if template is None:
            return Response()  # e.g. a ReplicationController without a template
        return self.evaluate_pod(policy, errs, _d(template.get("metadata")), _d(template.get("spec")), enforce=False)

    def evaluate_pod(self, policy: Policy, errs: list[Any], meta: dict[str, Any], spec: dict[str, Any],
                     enforce: bool) -> Response:
        """Enforce (pods only), audit and warn, each level:version evaluated once."""
        if spec.get("runtimeClassName") and spec["runtimeClassName"] in self.config.runtime_classes:
            return exempt("runtimeClass")
        r = Response()
        if errs:
            r.annotations["error"] = f"Failed to parse policy: {aggregate(errs)}"
        results: dict[LevelVersion, list[tuple[str, str]]] = {}

        def failures(lv: LevelVersion) -> list[tuple[str, str]]:
            if lv not in results:
                results[lv] = check_pod(lv, meta, spec)
            return results[lv]

        if enforce:
            r.annotations["enforce-policy"] = str(policy.enforce)
            if found := failures(policy.enforce):
                r.forbidden = f'violates PodSecurity "{policy.enforce}": {forbidden_detail(found)}'
        if found := failures(policy.audit):
            r.annotations["audit-violations"] = f'would violate PodSecurity "{policy.audit}": {forbidden_detail(found)}'
        if r.forbidden is None and (found := failures(policy.warn)):  # no warnings on a refusal
            r.warnings.append(f'would violate PodSecurity "{policy.warn}": {forbidden_detail(found)}')
        return r

    async def evaluate_pods_in_namespace(self, namespace: str, enforce: LevelVersion) -> list[str]:
        """Warnings for the existing pods a namespace's new enforce level would refuse: one line per
        distinct set of failed checks, naming the (lexically first) pod and how many share it."""
        deadline = time.monotonic() + NAMESPACE_CHECK_SECONDS
        try:
            pods = self.prioritize(await self.namespace_pods(namespace))
        except Exception:  # upstream answers any listing failure with this warning
            return ["failed to list pods while checking new PodSecurity enforce level"]
        total = len(pods)
        pods = pods[:NAMESPACE_MAX_PODS]
        checked = len(pods)
        order: list[str] = []
        seen: dict[str, tuple[str, int]] = {}  # warning → (first pod name, count)
        for i, pod in enumerate(pods):
            found = check_pod(enforce, _d(pod.get("metadata")), _d(pod.get("spec")))
            if found:
                warning = forbidden_reason(found)
                name = str(_d(pod.get("metadata")).get("name", ""))
                if warning not in seen:
                    order.append(warning)
                    seen[warning] = (name, 1)
                else:
                    first, count = seen[warning]
                    seen[warning] = (min(first, name), count + 1)
            if time.monotonic() > deadline:
                checked = i + 1
                break
            if i % 100 == 99:
                await asyncio.sleep(0)  # (up to a second of checks: other requests go on meanwhile)
        out = []
        if checked < total:
            out.append(f"new PodSecurity enforce level only checked against the first {checked} of {total} existing pods")
        if order:
            out.append(f'existing pods in namespace "{namespace}" violate the new PodSecurity enforce level "{enforce}"')
        lines = []
        for warning in order:
            name, count = seen[warning]
            if count == 1:
                lines.append(f"{name}: {warning}")
            elif count == 2:
                lines.append(f"{name} (and 1 other pod): {warning}")
            else:
                lines.append(f"{name} (and {count - 1} other pods): {warning}")
        return out + sorted(lines)

    def prioritize(self, pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Pods of exempt runtime classes left out; of the pods one controller owns, the first
        comes in order and the others at the end."""
        first: list[dict[str, Any]] = []
        later: list[dict[str, Any]] = []
        controllers: set[str] = set()
        for pod in pods:
            rc = _d(pod.get("spec")).get("runtimeClassName")
            if rc and rc in self.config.runtime_classes:
                continue
            owner = next((o for o in map(_d, _l(_d(pod.get("metadata")).get("ownerReferences"))) if o.get("controller") is True), None)
            if owner is None:
                first.append(pod)
            elif owner.get("uid") in controllers:
                later.append(pod)
            else:
                controllers.add(str(owner.get("uid")))
                first.append(pod)
        return first + later
