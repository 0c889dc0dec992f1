"""PodSpec defaulting and validation, shared by pods and every workload's template.

Follows upstream's core/v1 defaults (SetDefaults_PodSpec, _Container, _Probe, volumes)
and the parts of ValidatePodSpec a user meets in practice.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from apimachinery import quantity
from apimachinery.validation import (
    child,
    duplicate_cause,
    forbidden_cause,
    index,
    invalid_cause,
    is_config_map_key,
    is_dns1123_label,
    is_dns1123_subdomain,
    is_env_var_name,
    is_valid_label_value,
    is_valid_port_name,
    is_valid_port_num,
    name_is_dns_label,
    not_found_cause,
    not_supported_cause,
    render_value,
    required_cause,
    validate_label_selector,
    validate_node_selector,
    validate_preferred_scheduling_terms,
    validate_qualified_name,
)
from apiserver.registry.base import as_dict, as_list, default_field

Obj = dict[str, Any]
Cause = dict[str, str]

RESTART_POLICIES = ("Always", "OnFailure", "Never")
DNS_POLICIES = ("ClusterFirstWithHostNet", "ClusterFirst", "Default", "None")
PULL_POLICIES = ("Always", "IfNotPresent", "Never")
PROTOCOLS = ("TCP", "UDP", "SCTP")
DEFAULT_FILE_MODE = 0o644
MIRROR_ANNOTATION = "kubernetes.io/config.mirror"  # a static pod's mirror in the API


def default_pull_policy(image: str) -> str:
    """Always for `:latest` or untagged images, IfNotPresent otherwise (digests too)."""
    if "@" in image:
        return "IfNotPresent"
    last = image.rsplit("/", 1)[-1]
    if ":" not in last:
        return "Always"
    return "Always" if last.rsplit(":", 1)[1] == "latest" else "IfNotPresent"


def _default_probe(p: Obj | None) -> None:
    if not isinstance(p, dict):
        return
    default_field(p, "timeoutSeconds", 1)
    default_field(p, "periodSeconds", 10)
    default_field(p, "successThreshold", 1)
    default_field(p, "failureThreshold", 3)
    hg = p.get("httpGet")
    if isinstance(hg, dict):
        default_field(hg, "path", "/")
        default_field(hg, "scheme", "HTTP")


def _default_container(c: Obj) -> None:
    if not isinstance(c, dict):
        return
    image = c.get("image")
    if isinstance(image, str) and image:
        default_field(c, "imagePullPolicy", default_pull_policy(image))
    default_field(c, "terminationMessagePath", "/dev/termination-log")
    default_field(c, "terminationMessagePolicy", "File")
    res = c.setdefault("resources", {})
    if isinstance(res, dict) and isinstance(res.get("limits"), dict):
        # requests default to limits (upstream SetDefaults_Container)
        req = res.setdefault("requests", {})
        if isinstance(req, dict):
            for k, v in res["limits"].items():
                req.setdefault(k, v)
    for port in c.get("ports") or []:
        if isinstance(port, dict):
            default_field(port, "protocol", "TCP")
    for env in c.get("env") or []:
        vf = env.get("valueFrom") if isinstance(env, dict) else None
        if isinstance(vf, dict) and isinstance(vf.get("fieldRef"), dict):
            default_field(vf["fieldRef"], "apiVersion", "v1")
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        _default_probe(c.get(probe))


def _default_volume(v: Obj) -> None:
    if not isinstance(v, dict):
        return
    for src in ("configMap", "secret", "downwardAPI", "projected"):
        if isinstance(v.get(src), dict):
            v[src].setdefault("defaultMode", DEFAULT_FILE_MODE)
    if isinstance(v.get("hostPath"), dict):
        v["hostPath"].setdefault("type", "")
    # a volume with no source is an emptyDir, as upstream defaults it
    sources = set(v) - {"name"}
    if not sources:
        v["emptyDir"] = {}


def default_pod_spec(spec: Obj) -> None:
    if not isinstance(spec, dict):
        return
    default_field(spec, "restartPolicy", "Always")
    default_field(spec, "dnsPolicy", "ClusterFirst")
    default_field(spec, "schedulerName", "default-scheduler")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("securityContext", {})
    if spec.get("hostNetwork"):
        for c in spec.get("containers") or []:
            for port in (c.get("ports") or []) if isinstance(c, dict) else []:
                if isinstance(port, dict) and "containerPort" in port:
                    port.setdefault("hostPort", port["containerPort"])
    for field in ("containers", "initContainers", "ephemeralContainers"):
        for c in spec.get(field) or []:
            _default_container(c)
    for v in spec.get("volumes") or []:
        _default_volume(v)


# -- validation -------------------------------------------------------------------------------


def _validate_resources(res: Any, path: str) -> list[Cause]:
    causes: list[Cause] = []
    if res is None:
        return causes
    if not isinstance(res, dict):
        return [invalid_cause(path, res, "must be an object")]
    parsed: dict[str, dict[str, Any]] = {}
    for kind in ("limits", "requests"):
        values = res.get(kind) or {}
        if not isinstance(values, dict):
            causes.append(invalid_cause(child(path, kind), values, "must be an object"))
            continue
        for name, q in values.items():
            p = f"{path}.{kind}[{name}]"
            try:
                v = quantity.parse_quantity(q)
            except quantity.QuantityError as e:
                causes.append(invalid_cause(p, q, str(e)))
                continue
            if v < 0:
                causes.append(invalid_cause(p, q, "must be greater than or equal to 0"))
            parsed.setdefault(kind, {})[name] = v
    for name, req in parsed.get("requests", {}).items():
        lim = parsed.get("limits", {}).get(name)
        if lim is not None and req > lim:
            causes.append(
                invalid_cause(f"{path}.requests", res["requests"][name], f"must be less than or equal to {name} limit of {res['limits'][name]}")
            )
    return causes


def _validate_probe(p: Any, path: str) -> list[Cause]:
    if p is None:
        return []
    if not isinstance(p, dict):
        return [invalid_cause(path, p, "must be an object")]
    handlers = [h for h in ("exec", "httpGet", "tcpSocket", "grpc") if p.get(h) is not None]
    causes = []
    if not handlers:
        causes.append(required_cause(path, "must specify a handler type"))
    elif len(handlers) > 1:
        causes.append(invalid_cause(path, handlers, "may not specify more than 1 handler type"))
    for f in ("initialDelaySeconds", "timeoutSeconds", "periodSeconds", "successThreshold", "failureThreshold"):
        v = p.get(f)
        if v is not None and (not isinstance(v, int) or v < 0):
            causes.append(invalid_cause(child(path, f), v, "must be greater than or equal to 0"))
    return causes


def _validate_container(c: Any, path: str, volumes: set[str], init: bool, ephemeral: bool = False) -> list[Cause]:
    if not isinstance(c, dict):
        return [invalid_cause(path, c, "must be an object")]
    causes: list[Cause] = []
    name = c.get("name")
    if not name:
        causes.append(required_cause(child(path, "name")))
    else:
        for msg in is_dns1123_label(str(name)):
            causes.append(invalid_cause(child(path, "name"), name, msg))
    image = c.get("image")
    if not image or not isinstance(image, str):
        causes.append(required_cause(child(path, "image")))
    elif image != image.strip():
        causes.append(invalid_cause(child(path, "image"), image, "must not have leading or trailing whitespace"))
    pp = c.get("imagePullPolicy")
    if pp is not None and pp not in PULL_POLICIES:
        causes.append(not_supported_cause(child(path, "imagePullPolicy"), pp, PULL_POLICIES))
    port_names: set[str] = set()
    for i, port in enumerate(c.get("ports") or []):
        pth = index(child(path, "ports"), i)
        if not isinstance(port, dict):
            causes.append(invalid_cause(pth, port, "must be an object"))
            continue
        cp = port.get("containerPort")
        if cp is None:
            causes.append(required_cause(child(pth, "containerPort")))
        else:
            for msg in is_valid_port_num(cp) if isinstance(cp, int) else ["must be an integer"]:
                causes.append(invalid_cause(child(pth, "containerPort"), cp, msg))
        hp = port.get("hostPort")
        if hp not in (None, 0):
            for msg in is_valid_port_num(hp) if isinstance(hp, int) else ["must be an integer"]:
                causes.append(invalid_cause(child(pth, "hostPort"), hp, msg))
        proto = port.get("protocol", "TCP")
        if proto not in PROTOCOLS:
            causes.append(not_supported_cause(child(pth, "protocol"), proto, PROTOCOLS))
        pn = port.get("name")
        if pn:
            for msg in is_valid_port_name(pn):
                causes.append(invalid_cause(child(pth, "name"), pn, msg))
            if pn in port_names:
                causes.append(duplicate_cause(child(pth, "name"), pn))
            port_names.add(pn)
    for i, env in enumerate(c.get("env") or []):
        pth = index(child(path, "env"), i)
        if not isinstance(env, dict):
            causes.append(invalid_cause(pth, env, "must be an object"))
            continue
        en = env.get("name")
        if not en:
            causes.append(required_cause(child(pth, "name")))
        else:
            for msg in is_env_var_name(str(en)):
                causes.append(invalid_cause(child(pth, "name"), en, msg))
        vf = env.get("valueFrom")
        if vf is not None:
            if env.get("value"):
                causes.append(invalid_cause(child(pth, "valueFrom"), "", "may not be specified when `value` is not empty"))
            if not isinstance(vf, dict) or len([k for k in vf if vf[k] is not None]) != 1:
                causes.append(invalid_cause(child(pth, "valueFrom"), "", "may not have more than one field specified at a time"))
            else:
                for ref in ("configMapKeyRef", "secretKeyRef"):
                    r = vf.get(ref)
                    if isinstance(r, dict) and r.get("key") is not None:
                        for msg in is_config_map_key(str(r["key"])):
                            causes.append(invalid_cause(f"{pth}.valueFrom.{ref}.key", r["key"], msg))
    mount_paths: set[str] = set()
    for i, m in enumerate(c.get("volumeMounts") or []):
        pth = index(child(path, "volumeMounts"), i)
        if not isinstance(m, dict):
            causes.append(invalid_cause(pth, m, "must be an object"))
            continue
        mn = m.get("name")
        if not mn:
            causes.append(required_cause(child(pth, "name")))
        elif mn not in volumes:
            causes.append({"reason": "FieldValueNotFound", "message": f'Not found: "{mn}"', "field": child(pth, "name")})
        mp = m.get("mountPath")
        if not mp:
            causes.append(required_cause(child(pth, "mountPath")))
        elif mp in mount_paths:
            causes.append(invalid_cause(child(pth, "mountPath"), mp, "must be unique"))
        else:
            mount_paths.add(mp)
    causes += _validate_resources(c.get("resources"), child(path, "resources"))
    if ephemeral:
        return causes  # probes are forbidden outright (validate_ephemeral_containers)
    restart_policy = c.get("restartPolicy")
    if restart_policy is not None:
        if not init:
            causes.append(forbidden_cause(child(path, "restartPolicy"), "may not be set for non-init containers"))
        elif restart_policy != "Always":
            causes.append(not_supported_cause(child(path, "restartPolicy"), restart_policy, ["Always"]))
    # only sidecars (restartPolicy Always) of the init containers have hooks and probes
    sidecar_only = "may not be set for init containers without restartPolicy=Always"
    if init and c.get("lifecycle") is not None and restart_policy != "Always":
        causes.append(forbidden_cause(child(path, "lifecycle"), sidecar_only))
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        if init and c.get(probe) is not None and restart_policy != "Always":
            causes.append(forbidden_cause(child(path, probe), sidecar_only))
            continue
        causes += _validate_probe(c.get(probe), child(path, probe))
    return causes


VOLUME_SOURCES = (
    "emptyDir", "hostPath", "configMap", "secret", "downwardAPI", "projected", "persistentVolumeClaim",
    "nfs", "ephemeral", "csi", "image",
)


def validate_tolerations(tolerations: Any, path: str) -> list[Cause]:
    causes: list[Cause] = []
    if tolerations is not None and not isinstance(tolerations, list):
        return [invalid_cause(path, tolerations, "must be a list")]
    for i, t in enumerate(tolerations or []):
        pth = index(path, i)
        if not isinstance(t, dict):
            causes.append(invalid_cause(pth, t, "must be an object"))
            continue
        key, op, value = t.get("key") or "", t.get("operator") or "", t.get("value") or ""
        if key:
            causes += validate_qualified_name(str(key), child(pth, "key"))
        elif op != "Exists":  # an empty key with Exists matches every taint
            causes.append(invalid_cause(child(pth, "operator"), op,
                                        'operator must be Exists when `key` is empty, which means "match all values and all keys"'))
        if t.get("tolerationSeconds") is not None and t.get("effect") != "NoExecute":
            causes.append(invalid_cause(child(pth, "effect"), t.get("effect") or "",
                                        "effect must be 'NoExecute' when `tolerationSeconds` is set"))
        if op in ("Equal", ""):
            errs = is_valid_label_value(str(value))
            if errs:
                causes.append(invalid_cause(child(pth, "operator"), value, ";".join(errs)))
        elif op == "Exists":
            if value:
                causes.append(invalid_cause(child(pth, "operator"), value, "value must be empty when `operator` is 'Exists'"))
        else:
            causes.append(not_supported_cause(child(pth, "operator"), op, ("Equal", "Exists")))
        eff = t.get("effect")
        if eff and eff not in ("NoSchedule", "PreferNoSchedule", "NoExecute"):
            causes.append(not_supported_cause(child(pth, "effect"), eff, ("NoExecute", "NoSchedule", "PreferNoSchedule")))
    return causes


REQUIRED_TERMS = "requiredDuringSchedulingIgnoredDuringExecution"
PREFERRED_TERMS = "preferredDuringSchedulingIgnoredDuringExecution"


def _pod_affinity_terms(affinity: Any, path: str) -> Iterator[tuple[Obj, str, Obj | None, str]]:
    """(term, its path, the weighted term holding it or None, that one's path) for every term of
    the pod affinity and anti-affinity, required ones first."""
    if not isinstance(affinity, dict):
        return
    for kind in ("podAffinity", "podAntiAffinity"):
        pa = affinity.get(kind)
        if not isinstance(pa, dict):
            continue
        for i, term in enumerate(as_list(pa.get(REQUIRED_TERMS))):
            yield as_dict(term), index(child(child(path, kind), REQUIRED_TERMS), i), None, ""
        for j, weighted in enumerate(as_list(pa.get(PREFERRED_TERMS))):
            wp = index(child(child(path, kind), PREFERRED_TERMS), j)
            w = as_dict(weighted)
            yield as_dict(w.get("podAffinityTerm")), child(wp, "podAffinityTerm"), w, wp


def validate_affinity(affinity: Any, path: str) -> list[Cause]:
    """upstream validateAffinity: node affinity, then pod (anti-)affinity."""
    causes: list[Cause] = []
    na = affinity.get("nodeAffinity") if isinstance(affinity, dict) else None
    if isinstance(na, dict):
        na_path = child(path, "nodeAffinity")
        if na.get(REQUIRED_TERMS) is not None:
            causes += validate_node_selector(na[REQUIRED_TERMS], child(na_path, REQUIRED_TERMS))
        if na.get(PREFERRED_TERMS):
            causes += validate_preferred_scheduling_terms(na[PREFERRED_TERMS], child(na_path, PREFERRED_TERMS))
    return causes + _validate_pod_affinity(affinity, path)


def _validate_pod_affinity(affinity: Any, path: str) -> list[Cause]:
    """The pod (anti-)affinity part of upstream validateAffinity."""
    causes: list[Cause] = []
    for term, tp, weighted, wp in _pod_affinity_terms(affinity, path):
        if weighted is not None:
            weight = weighted.get("weight")
            if not isinstance(weight, int) or isinstance(weight, bool) or not 1 <= weight <= 100:
                causes.append(invalid_cause(child(wp, "weight"), 0 if weight is None else weight,
                                            "must be in the range 1-100"))
        causes += _validate_pod_affinity_term(term, tp)
    return causes


def _validate_pod_affinity_term(term: Obj, path: str) -> list[Cause]:
    """upstream validatePodAffinityTerm."""
    causes = validate_label_selector(term.get("labelSelector"), child(path, "labelSelector"))
    causes += validate_label_selector(term.get("namespaceSelector"), child(path, "namespaceSelector"))
    for name in as_list(term.get("namespaces")):
        # (upstream's path says "namespace")
        causes += [invalid_cause(child(path, "namespace"), name, m) for m in name_is_dns_label(str(name))]
    causes += _validate_match_label_keys(term, path)
    topology_key = term.get("topologyKey") or ""
    if not topology_key:
        causes.append(required_cause(child(path, "topologyKey"), "can not be empty"))
    return causes + validate_qualified_name(str(topology_key), child(path, "topologyKey"))


def _validate_label_keys(keys: list[Any], selector: Any, path: str) -> list[Cause]:
    """matchLabelKeys / mismatchLabelKeys: label keys, and only next to a labelSelector."""
    if not keys:
        return []
    if selector is None:
        return [forbidden_cause(path, "must not be specified when labelSelector is not set")]
    causes: list[Cause] = []
    for i, k in enumerate(keys):
        causes += validate_qualified_name(k if isinstance(k, str) else str(k), index(path, i))
    return causes


def _validate_match_label_keys(term: Obj, path: str) -> list[Cause]:
    """upstream validateMatchLabelKeysAndMismatchLabelKeys. The pod's labelSelector already holds
    the requirements merged from matchLabelKeys at creation, so a key of matchLabelKeys that the
    selector names twice was in the user's selector too (as upstream, the error's path is the
    term's indexed by the key's position in matchLabelKeys)."""
    selector = term.get("labelSelector")
    match = as_list(term.get("matchLabelKeys"))
    mismatch = as_list(term.get("mismatchLabelKeys"))
    causes = _validate_label_keys(match, selector, child(path, "matchLabelKeys"))
    causes += _validate_label_keys(mismatch, selector, child(path, "mismatchLabelKeys"))
    if isinstance(selector, dict):
        position = {k: i for i, k in enumerate(match) if isinstance(k, str)}  # the last one, as upstream's map
        seen = {k for k in as_dict(selector.get("matchLabels")) if isinstance(k, str)}
        for expr in as_list(selector.get("matchExpressions")):
            k = as_dict(expr).get("key")
            if not isinstance(k, str):
                continue
            if k in position and k in seen:
                causes.append(invalid_cause(index(path, position[k]), k, "exists in both matchLabelKeys and labelSelector"))
            seen.add(k)
    mismatch_keys = {k for k in mismatch if isinstance(k, str)}
    for i, k in enumerate(match):
        if isinstance(k, str) and k in mismatch_keys:
            causes.append(invalid_cause(index(child(path, "matchLabelKeys"), i), k,
                                        "exists in both matchLabelKeys and mismatchLabelKeys"))
    return causes


def apply_match_label_keys(spec: Any, labels: Any) -> None:
    """upstream mutatePodAffinity (pod creation; MatchLabelKeysInPodAffinity, beta and on in 1.31):
    each pod (anti-)affinity term's matchLabelKeys / mismatchLabelKeys become `In` / `NotIn`
    requirements on the pod's own label values, appended to its labelSelector. Keys the pod
    has no label for add nothing; a term without labelSelector (it matches nothing) stays so."""
    if not isinstance(spec, dict) or not isinstance(labels, dict):
        return
    for term, _tp, _weighted, _wp in _pod_affinity_terms(spec.get("affinity"), ""):
        selector = term.get("labelSelector")
        if not isinstance(selector, dict):
            continue
        added = [{"key": k, "operator": op, "values": [labels[k]]}
                 for op, field in (("In", "matchLabelKeys"), ("NotIn", "mismatchLabelKeys"))
                 for k in as_list(term.get(field)) if isinstance(k, str) and k in labels]
        if not added:
            continue
        exprs = selector.get("matchExpressions")
        if exprs is None:
            selector["matchExpressions"] = added
        elif isinstance(exprs, list):
            exprs.extend(added)


def validate_overhead(overhead: Any, path: str) -> list[Cause]:
    """A pod's (or a RuntimeClass's) fixed overhead: checked as the limits of a container's
    resources, as upstream does (so its paths read `<path>.limits[cpu]`)."""
    return _validate_resources({"limits": overhead}, path)


def validate_pod_spec(spec: Any, path: str = "spec") -> list[Cause]:
    if not isinstance(spec, dict):
        return [required_cause(path)]
    causes: list[Cause] = []
    volumes: set[str] = set()
    for i, v in enumerate(spec.get("volumes") or []):
        pth = index(child(path, "volumes"), i)
        if not isinstance(v, dict):
            causes.append(invalid_cause(pth, v, "must be an object"))
            continue
        vn = v.get("name")
        if not vn:
            causes.append(required_cause(child(pth, "name")))
        else:
            for msg in is_dns1123_label(str(vn)):
                causes.append(invalid_cause(child(pth, "name"), vn, msg))
            if vn in volumes:
                causes.append(duplicate_cause(child(pth, "name"), vn))
            volumes.add(vn)
        srcs = [s for s in VOLUME_SOURCES if v.get(s) is not None]
        if len(srcs) > 1:
            causes.append({"reason": "FieldValueForbidden", "message": "Forbidden: may not specify more than 1 volume type", "field": pth})
        for src in ("configMap", "secret"):
            s = v.get(src)
            if isinstance(s, dict):
                mode = s.get("defaultMode")
                if mode is not None and (not isinstance(mode, int) or not 0 <= mode <= 0o777):
                    causes.append(invalid_cause(f"{pth}.{src}.defaultMode", mode, "must be a number between 0 and 0777 (octal), both inclusive"))
        hp = v.get("hostPath")
        if isinstance(hp, dict) and not hp.get("path"):
            causes.append(required_cause(f"{pth}.hostPath.path"))
    containers = spec.get("containers")
    if not containers:
        causes.append(required_cause(child(path, "containers")))
    names: set[str] = set()
    for field, init in (("initContainers", True), ("containers", False)):
        items = spec.get(field) or []
        if not isinstance(items, list):
            causes.append(invalid_cause(child(path, field), items, "must be a list"))
            continue
        for i, c in enumerate(items):
            pth = index(child(path, field), i)
            causes += _validate_container(c, pth, volumes, init)
            n = c.get("name") if isinstance(c, dict) else None
            if n:
                if n in names:
                    causes.append(duplicate_cause(child(pth, "name"), n))
                names.add(n)
    causes += validate_ephemeral_containers(spec, volumes, names, child(path, "ephemeralContainers"))
    rp = spec.get("restartPolicy")
    if rp is not None and rp not in RESTART_POLICIES:
        causes.append(not_supported_cause(child(path, "restartPolicy"), rp, RESTART_POLICIES))
    dp = spec.get("dnsPolicy")
    if dp is not None and dp not in DNS_POLICIES:
        causes.append(not_supported_cause(child(path, "dnsPolicy"), dp, DNS_POLICIES))
    tg = spec.get("terminationGracePeriodSeconds")
    if tg is not None and (not isinstance(tg, int) or tg < 0):
        causes.append(invalid_cause(child(path, "terminationGracePeriodSeconds"), tg, "must be greater than or equal to 0"))
    ads = spec.get("activeDeadlineSeconds")
    if ads is not None and (not isinstance(ads, int) or ads <= 0):
        causes.append(invalid_cause(child(path, "activeDeadlineSeconds"), ads, "must be between 1 and 2147483647, inclusive"))
    for f in ("nodeName", "serviceAccountName", "hostname", "subdomain", "priorityClassName", "runtimeClassName"):
        v = spec.get(f)
        if v or (f == "runtimeClassName" and v is not None):  # a pointer upstream: "" is checked too
            check = is_dns1123_label if f in ("hostname", "subdomain") else is_dns1123_subdomain
            for msg in check(str(v)):
                causes.append(invalid_cause(child(path, f), v, msg))
    causes += validate_tolerations(spec.get("tolerations"), child(path, "tolerations"))
    causes += validate_affinity(spec.get("affinity"), child(path, "affinity"))
    if spec.get("overhead") is not None:
        causes += validate_overhead(spec["overhead"], child(path, "overhead"))
    ns = spec.get("nodeSelector")
    if ns is not None and not isinstance(ns, dict):
        causes.append(invalid_cause(child(path, "nodeSelector"), ns, "must be an object"))
    return causes


#: EphemeralContainerCommon fields an ephemeral container may not set (upstream's
#: allowedEphemeralContainerFields, the false ones and those added since), in struct order
EPHEMERAL_FORBIDDEN_FIELDS = (
    "ports", "resources", "resizePolicy", "restartPolicy", "restartPolicyRules", "livenessProbe",
    "readinessProbe", "startupProbe", "lifecycle",
)
EPHEMERAL_FORBIDDEN = "cannot be set for an Ephemeral Container"


def _is_zero(v: Any) -> bool:
    """Go's zero value as the JSON decoder leaves it: absent, null, "", 0, false, {} or []."""
    return v is None or v == "" or v is False or v == 0 or v == {} or v == []


def validate_ephemeral_containers(spec: Obj, volumes: set[str], other_names: set[str], path: str) -> list[Cause]:
    """upstream validateEphemeralContainers: each one is a valid container with a name unique
    across every container kind, targeting a regular or init container, and setting none of the
    fields that would make the pod depend on it (ports, probes, resources, lifecycle)."""
    items = spec.get("ephemeralContainers") or []
    if not isinstance(items, list):
        return [invalid_cause(path, items, "must be a list")]
    causes: list[Cause] = []
    targets = set(other_names)
    names = set(other_names)
    for i, ec in enumerate(items):
        pth = index(path, i)
        causes += _validate_container(ec, pth, volumes, False, ephemeral=True)
        if not isinstance(ec, dict):
            continue
        name = ec.get("name")
        if name and name in names:
            causes.append(duplicate_cause(child(pth, "name"), name))
        elif name:
            names.add(name)
        target = ec.get("targetContainerName")
        if target and target not in targets:
            causes.append(not_found_cause(child(pth, "targetContainerName"), target))
        for f in EPHEMERAL_FORBIDDEN_FIELDS:
            if not _is_zero(ec.get(f)):
                causes.append(forbidden_cause(child(pth, f), EPHEMERAL_FORBIDDEN))
        for j, vm in enumerate(ec.get("volumeMounts") or []):
            # sub-path bind mounts outlive the container until the pod goes (upstream)
            for f in ("subPath", "subPathExpr"):
                if isinstance(vm, dict) and vm.get(f):
                    causes.append(forbidden_cause(child(index(child(pth, "volumeMounts"), j), f), EPHEMERAL_FORBIDDEN))
    return causes


def diff(old: Obj, new: Obj) -> str:
    """Which fields of a container differ, one `-`/`+` pair each (upstream prints a cmp.Diff)."""
    lines = []
    for k in sorted(set(old) | set(new)):
        if old.get(k) != new.get(k):
            if k in old:
                lines.append(f"-\t{k}: {render_value(old[k])}")
            if k in new:
                lines.append(f"+\t{k}: {render_value(new[k])}")
    return "\n".join(lines)


def qos_class(spec: Obj) -> str:
    """Guaranteed / Burstable / BestEffort from requests and limits (upstream GetPodQOS)."""
    containers = list(spec.get("containers") or []) + list(spec.get("initContainers") or [])
    requests: dict[str, Any] = {}
    limits: dict[str, Any] = {}
    guaranteed = True
    for c in containers:
        res = (c or {}).get("resources") or {}
        req = {k: v for k, v in (res.get("requests") or {}).items() if k in ("cpu", "memory")}
        lim = {k: v for k, v in (res.get("limits") or {}).items() if k in ("cpu", "memory")}
        for k, v in req.items():
            if _nonzero(v):
                requests[k] = v
        for k, v in lim.items():
            if _nonzero(v):
                limits[k] = v
        if set(lim) != {"cpu", "memory"}:
            guaranteed = False
        for k in ("cpu", "memory"):
            if k in req and k in lim and _q(req[k]) != _q(lim[k]):
                guaranteed = False
    if not requests and not limits:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


def _q(v: Any) -> Any:
    try:
        return quantity.parse_quantity(v)
    except Exception:
        return v


def _nonzero(v: Any) -> bool:
    q = _q(v)
    return q != 0 if not isinstance(q, str) else True


# fields of a running pod's spec that updates may change (upstream ValidatePodUpdate)
def mutable_pod_spec_view(spec: Obj) -> Obj:
    """The spec with the fields pod updates may change blanked out, for comparison."""
    s = dict(spec)
    for f in ("containers", "initContainers"):
        s[f] = [{**c, "image": None} for c in spec.get(f) or [] if isinstance(c, dict)]
    s.pop("activeDeadlineSeconds", None)
    s.pop("tolerations", None)
    s.pop("schedulingGates", None)
    s.pop("terminationGracePeriodSeconds", None)
    return s
