"""Strategies for networking.k8s.io/v1: Ingress, IngressClass, NetworkPolicy.

Stored and validated as upstream (pkg/apis/networking/validation); like upstream, nothing in
the control plane acts on them: an ingress controller or a policy-enforcing network plugin does.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from apimachinery.validation import (
    child,
    forbidden_cause,
    index,
    invalid_cause,
    is_dns1123_subdomain,
    is_valid_ip,
    not_supported_cause,
    regex_error,
    required_cause,
    too_long_cause,
    validate_cidr,
    validate_dns1035_label,
    validate_dns1123_label,
    validate_dns1123_subdomain,
    validate_enum,
    validate_immutable,
    validate_label_selector,
    validate_object_meta,
    validate_object_meta_update,
    validate_path_segment_name,
    validate_port,
    validate_port_name,
)
from apiserver.registry.base import Cause, Obj, Strategy

INGRESS_CLASS_ANNOTATION = "kubernetes.io/ingress.class"
PATH_TYPES = ("Exact", "ImplementationSpecific", "Prefix")
PROTOCOLS = ("TCP", "UDP", "SCTP")  # upstream lists them in this order
POLICY_TYPES = ("Ingress", "Egress")

_WILDCARD_FMT = r"\*\.[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
_WILDCARD_RE = re.compile(_WILDCARD_FMT)
_WILDCARD_ERR = ("a wildcard DNS-1123 subdomain must start with '*.', followed by a valid DNS subdomain, which must "
                 "consist of lower case alphanumeric characters, '-' or '.' and end with an alphanumeric character")
#: What Exact and Prefix paths may not contain (upstream's invalidPathSequences + suffixes).
_BAD_PATH_PARTS = ("//", "/./", "/../", "%2f", "%2F")
_BAD_PATH_SUFFIXES = ("/..", "/.")
_PATH_CHARS = re.compile(r"[A-Za-z0-9/\-._~%!$&'()*+,;=:]+")


def _host_causes(host: str, path: str, rule: bool = True) -> list[Cause]:
    """A rule's or TLS entry's host: a DNS name, or a wildcard one when it holds a `*`; a rule's
    host may not be an IP address (upstream reports that and the DNS errors both)."""
    causes = [invalid_cause(path, host, "must be a DNS name, not an IP address")] if rule and not is_valid_ip(host) else []
    if "*" in host:
        if len(host) > 253 or _WILDCARD_RE.fullmatch(host) is None:
            causes.append(invalid_cause(path, host, regex_error(_WILDCARD_ERR, _WILDCARD_FMT, "*.example.com")))
        return causes
    return causes + [invalid_cause(path, host, m) for m in is_dns1123_subdomain(host)]


def _backend_causes(backend: Any, path: str) -> list[Cause]:
    if not isinstance(backend, dict):
        backend = {}
    service, resource = backend.get("service"), backend.get("resource")
    if service is not None and resource is not None:
        return [invalid_cause(path, "", "cannot set both resource and service backends")]
    if resource is not None:
        return _typed_reference_causes(resource, child(path, "resource"))
    if service is None:
        return [invalid_cause(path, "", "resource or service backend is required")]
    sp = child(path, "service")
    causes = validate_dns1035_label(service["name"], child(sp, "name")) if service.get("name") else [
        required_cause(child(sp, "name"))]
    port = service.get("port") or {}
    if port.get("name") and port.get("number"):
        causes.append(invalid_cause(path, "", "cannot set both port name & port number"))
    elif port.get("name"):
        causes += validate_port_name(port["name"], f"{sp}.port.name")
    elif port.get("number"):
        causes += validate_port(port["number"], f"{sp}.port.number")
    else:
        causes.append(required_cause(path, "port name or number is required"))
    return causes


def _typed_reference_causes(ref: Obj, path: str) -> list[Cause]:
    """Upstream validateIngressTypedLocalObjectReference (a resource backend, IngressClass parameters)."""
    causes: list[Cause] = []
    if ref.get("apiGroup") is not None:
        causes += validate_dns1123_subdomain(ref["apiGroup"], child(path, "apiGroup"))
    for f in ("kind", "name"):
        value = ref.get(f) or ""
        if not value:
            causes.append(required_cause(child(path, f), f"{f} is required"))
        else:
            causes += [invalid_cause(child(path, f), value, m) for m in validate_path_segment_name(value)]
    return causes


def _path_causes(p: Obj, path: str) -> list[Cause]:
    ptype = p.get("pathType")
    value = p.get("path") or ""
    if not ptype:
        return [required_cause(child(path, "pathType"), "pathType must be specified")]
    causes: list[Cause] = []
    if ptype in ("Exact", "Prefix"):
        if not value.startswith("/"):
            causes.append(invalid_cause(child(path, "path"), value, "must be an absolute path"))
        for bad in _BAD_PATH_PARTS:
            if bad in value:
                causes.append(invalid_cause(child(path, "path"), value, f"must not contain '{bad}'"))
        for bad in _BAD_PATH_SUFFIXES:
            if value.endswith(bad):
                causes.append(invalid_cause(child(path, "path"), value, f"cannot end with '{bad}'"))
    elif ptype == "ImplementationSpecific":
        if value and not value.startswith("/"):
            causes.append(invalid_cause(child(path, "path"), value, "must be an absolute path"))
    else:
        causes += validate_enum(ptype, PATH_TYPES, child(path, "pathType"))
    return causes + _backend_causes(p.get("backend"), child(path, "backend"))


class IngressStrategy(Strategy):
    has_status = True
    tracks_generation = True

    def validate(self, obj: Obj, namespaced: bool) -> list[Cause]:
        causes = super().validate(obj, namespaced) + _ingress_spec_causes(obj.get("spec") or {})
        # upstream checks the legacy annotation against the class field on create only
        annotation = ((obj.get("metadata") or {}).get("annotations") or {}).get(INGRESS_CLASS_ANNOTATION)
        if annotation is not None and (obj.get("spec") or {}).get("ingressClassName") is not None:
            causes.append(invalid_cause(f"annotations.{INGRESS_CLASS_ANNOTATION}", annotation,
                                        "can not be set when the class field is also set"))
        return causes

    def validate_update(self, new: Obj, old: Obj, namespaced: bool) -> list[Cause]:
        causes = validate_object_meta(new.get("metadata") or {}, namespaced, name_fn=self.name_validator)
        causes += validate_object_meta_update(new.get("metadata") or {}, old.get("metadata") or {})
        return causes + _ingress_spec_causes(new.get("spec") or {})


def _ingress_spec_causes(spec: Obj) -> list[Cause]:
    causes: list[Cause] = []
    rules = spec.get("rules") or []
    if not rules and spec.get("defaultBackend") is None:
        causes.append(invalid_cause("spec", rules or None, "either `defaultBackend` or `rules` must be specified"))
    if spec.get("defaultBackend") is not None:
        causes += _backend_causes(spec["defaultBackend"], "spec.defaultBackend")
    for i, rule in enumerate(rules):
        rp = index("spec.rules", i)
        if rule.get("host"):
            causes += _host_causes(rule["host"], child(rp, "host"))
        http = rule.get("http")
        if http is None:
            continue
        paths = http.get("paths") or []
        if not paths:
            causes.append(required_cause(f"{rp}.http.paths"))
        for j, p in enumerate(paths):
            causes += _path_causes(p, index(f"{rp}.http.paths", j))
    for i, tls in enumerate(spec.get("tls") or []):
        for j, host in enumerate(tls.get("hosts") or []):
            causes += _host_causes(host, index(child(index("spec.tls", i), "hosts"), j), rule=False)
        if tls.get("secretName"):
            causes += validate_dns1123_subdomain(tls["secretName"], child(index("spec.tls", i), "secretName"))
    if spec.get("ingressClassName") is not None:
        causes += validate_dns1123_subdomain(spec["ingressClassName"], "spec.ingressClassName")
    return causes


class IngressClassStrategy(Strategy):
    tracks_generation = True

    def default(self, obj: Obj) -> None:
        params = (obj.get("spec") or {}).get("parameters")
        if isinstance(params, dict):
            params.setdefault("scope", "Cluster")

    def validate(self, obj: Obj, namespaced: bool) -> list[Cause]:
        causes = super().validate(obj, namespaced)
        spec = obj.get("spec") or {}
        controller = spec.get("controller") or ""
        if len(controller) > 250:
            causes.append(too_long_cause("spec.controller", 250))
        causes += _domain_prefixed_path(controller, "spec.controller")
        params = spec.get("parameters")
        if isinstance(params, dict):
            causes += _parameters_causes(params, "spec.parameters")
        return causes

    def validate_update(self, new: Obj, old: Obj, namespaced: bool) -> list[Cause]:
        causes = super().validate_update(new, old, namespaced)
        causes += validate_immutable((new.get("spec") or {}).get("controller"), (old.get("spec") or {}).get("controller"),
                                     "spec.controller")
        return causes


def _parameters_causes(params: Obj, path: str) -> list[Cause]:
    """Upstream validateIngressClassParametersReference."""
    causes = _typed_reference_causes(params, path)
    scope = params.get("scope")
    if scope is None:
        return [*causes, required_cause(child(path, "scope"))]
    if scope not in ("Cluster", "Namespace"):
        return [*causes, not_supported_cause(child(path, "scope"), scope, ("Cluster", "Namespace"))]
    namespace = params.get("namespace")
    if scope == "Namespace":
        if namespace is None:
            causes.append(required_cause(child(path, "namespace"), "`parameters.scope` is set to 'Namespace'"))
        else:
            causes += validate_dns1123_label(namespace, child(path, "namespace"))
    elif namespace is not None:
        causes.append(forbidden_cause(child(path, "namespace"), "`parameters.scope` is set to 'Cluster'"))
    return causes


def _domain_prefixed_path(value: str, path: str) -> list[Cause]:
    """Upstream IsDomainPrefixedPath: `example.com/some-path`."""
    if not value:
        return [required_cause(path)]
    host, _, rest = value.partition("/")
    if not host or not rest:
        return [invalid_cause(path, value, 'must be a domain-prefixed path (such as "acme.io/foo")')]
    causes = [invalid_cause(path, host, m) for m in is_dns1123_subdomain(host)]
    if _PATH_CHARS.fullmatch(rest) is None:
        causes.append(invalid_cause(path, rest, regex_error("Invalid path", _PATH_CHARS.pattern)))
    return causes


class NetworkPolicyStrategy(Strategy):
    tracks_generation = True

    def default(self, obj: Obj) -> None:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return
        for direction in ("ingress", "egress"):
            for rule in spec.get(direction) or []:
                for port in (rule.get("ports") or []) if isinstance(rule, dict) else []:
                    if isinstance(port, dict):
                        port.setdefault("protocol", "TCP")
        if not spec.get("policyTypes"):
            # upstream: Ingress always applies; Egress only when egress rules were given
            spec["policyTypes"] = ["Ingress", "Egress"] if spec.get("egress") else ["Ingress"]

    def validate(self, obj: Obj, namespaced: bool) -> list[Cause]:
        causes = super().validate(obj, namespaced)
        spec = obj.get("spec") or {}
        causes += validate_label_selector(spec.get("podSelector"), "spec.podSelector")
        for direction, peers in (("ingress", "from"), ("egress", "to")):
            for i, rule in enumerate(spec.get(direction) or []):
                rp = index(f"spec.{direction}", i)
                for j, port in enumerate(rule.get("ports") or []):
                    causes += _policy_port_causes(port, index(child(rp, "ports"), j))
                for j, peer in enumerate(rule.get(peers) or []):
                    causes += _peer_causes(peer, index(child(rp, peers), j))
        types = spec.get("policyTypes") or []
        if len(types) > len(POLICY_TYPES):
            return [*causes, invalid_cause("spec.policyTypes", types, "may not specify more than two policyTypes")]
        for i, t in enumerate(types):
            causes += validate_enum(t, POLICY_TYPES, index("spec.policyTypes", i))
        return causes


def _policy_port_causes(port: Obj, path: str) -> list[Cause]:
    causes = validate_enum(port.get("protocol"), PROTOCOLS, child(path, "protocol"), required=False)
    value, end = port.get("port"), port.get("endPort")
    end_path = child(path, "endPort")
    if isinstance(value, str):
        if end is not None:
            causes.append(invalid_cause(end_path, end, "may not be specified when `port` is non-numeric"))
        causes += validate_port_name(value, child(path, "port"))
    elif value is not None:
        causes += validate_port(value, child(path, "port"))
        if end is not None:
            if isinstance(end, int) and isinstance(value, int) and end < value:
                # upstream reports the port's value here, not endPort's
                causes.append(invalid_cause(end_path, value, "must be greater than or equal to `port`"))
            causes += validate_port(end, end_path)
    elif end is not None:
        causes.append(invalid_cause(end_path, end, "may not be specified when `port` is not specified"))
    return causes


def _peer_causes(peer: Obj, path: str) -> list[Cause]:
    causes: list[Cause] = []
    for f in ("podSelector", "namespaceSelector"):
        causes += validate_label_selector(peer.get(f), child(path, f))
    block = peer.get("ipBlock")
    if isinstance(block, dict):
        causes += _ip_block_causes(block, child(path, "ipBlock"))
    given = sum(peer.get(f) is not None for f in ("podSelector", "namespaceSelector", "ipBlock"))
    if not given:
        causes.append(required_cause(path, "must specify a peer"))
    elif given > 1 and block is not None:
        causes.append(forbidden_cause(path, "may not specify both ipBlock and another peer"))
    return causes


def _ip_block_causes(block: Obj, path: str) -> list[Cause]:
    cidr = block.get("cidr") or ""
    if not cidr:
        return [required_cause(child(path, "cidr"))]
    causes = validate_cidr(cidr, child(path, "cidr"))
    if causes:
        return causes
    for k, ex in enumerate(block.get("except") or []):
        ep = index(child(path, "except"), k)
        ex_causes = validate_cidr(ex, ep)
        if ex_causes:
            return causes + ex_causes
        if not _strict_subset(ex, cidr):
            causes.append(invalid_cause(ep, ex, "must be a strict subset of `cidr`"))
    return causes


def _strict_subset(inner: str, outer: str) -> bool:
    a, b = ipaddress.ip_network(inner), ipaddress.ip_network(outer)
    return a.version == b.version and a != b and a.subnet_of(b)  # type: ignore[arg-type]
