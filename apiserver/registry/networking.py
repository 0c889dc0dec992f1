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
    regex_error,
    required_cause,
    too_long_cause,
    too_many_cause,
    validate_cidr,
    validate_dns1035_label,
    validate_dns1123_subdomain,
    validate_enum,
    validate_immutable,
    validate_label_selector,
    validate_object_meta,
    validate_object_meta_update,
    validate_port,
    validate_port_name,
)
from apiserver.registry.base import Cause, Obj, Strategy

INGRESS_CLASS_ANNOTATION = "kubernetes.io/ingress.class"
PATH_TYPES = ("Exact", "ImplementationSpecific", "Prefix")
PROTOCOLS = ("SCTP", "TCP", "UDP")
POLICY_TYPES = ("Ingress", "Egress")

_WILDCARD_FMT = r"\*\.[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
_WILDCARD_RE = re.compile(_WILDCARD_FMT)
_WILDCARD_ERR = ("a wildcard DNS-1123 subdomain must start with '*.', followed by a valid DNS subdomain, which must "
                 "consist of lower case alphanumeric characters, '-' or '.' and end with an alphanumeric character")
#: What Exact and Prefix paths may not contain (upstream's invalidPathSequences + suffixes).
_BAD_PATH_PARTS = ("//", "/./", "/../", "%2f", "%2F")
_BAD_PATH_SUFFIXES = ("/..", "/.")
_PATH_CHARS = re.compile(r"[A-Za-z0-9/\-._~%!$&'()*+,;=:]+")


def _host_causes(host: str, path: str, allow_wildcard: bool = True) -> list[Cause]:
    """An Ingress host: a DNS name (a leading `*.` allowed), never an IP address."""
    if not is_valid_ip(host):
        return [invalid_cause(path, host, "must be a DNS name, not an IP address")]
    if allow_wildcard and host.startswith("*"):
        if len(host) > 253 or _WILDCARD_RE.fullmatch(host) is None:
            return [invalid_cause(path, host, regex_error(_WILDCARD_ERR, _WILDCARD_FMT, "*.example.com"))]
        return []
    return [invalid_cause(path, host, m) for m in is_dns1123_subdomain(host)]


def _backend_causes(backend: Any, path: str) -> list[Cause]:
    if not isinstance(backend, dict):
        return [required_cause(path)]
    service, resource = backend.get("service"), backend.get("resource")
    if service is None and resource is None:
        return [invalid_cause(path, "", "one backend type must be specified")]
    if service is not None and resource is not None:
        return [invalid_cause(path, "", "cannot set both resource and service backends")]
    if resource is not None:
        causes = []
        for f in ("kind", "name"):
            if not resource.get(f):
                causes.append(required_cause(child(child(path, "resource"), f)))
        return causes
    sp = child(path, "service")
    causes = validate_dns1035_label(service.get("name") or "", child(sp, "name")) if service.get("name") else [
        required_cause(child(sp, "name"))]
    port = service.get("port") or {}
    pp = child(sp, "port")
    if port.get("name") and port.get("number"):
        causes.append(invalid_cause(pp, port, "cannot set both port name & port number"))
    elif port.get("name"):
        causes += validate_port_name(port["name"], child(pp, "name"))
    elif port.get("number") is not None:
        causes += validate_port(port["number"], child(pp, "number"))
    else:
        causes.append(required_cause(pp, "port name or number is required"))
    return causes


def _path_causes(p: Obj, path: str) -> list[Cause]:
    causes: list[Cause] = []
    ptype = p.get("pathType")
    value = p.get("path") or ""
    if not ptype:
        causes.append(required_cause(child(path, "pathType"), "pathType must be specified"))
    elif ptype not in PATH_TYPES:
        causes.append(validate_enum(ptype, PATH_TYPES, child(path, "pathType"))[0])
    elif ptype in ("Exact", "Prefix"):
        if not value.startswith("/"):
            causes.append(invalid_cause(child(path, "path"), value, "must be an absolute path"))
        for bad in _BAD_PATH_PARTS:
            if bad in value:
                causes.append(invalid_cause(child(path, "path"), value, f"must not contain '{bad}'"))
        for bad in _BAD_PATH_SUFFIXES:
            if value.endswith(bad):
                causes.append(invalid_cause(child(path, "path"), value, f"cannot end with '{bad}'"))
    elif value and not value.startswith("/"):
        causes.append(invalid_cause(child(path, "path"), value, "must be an absolute path"))
    causes += _backend_causes(p.get("backend"), child(path, "backend"))
    return causes


class IngressStrategy(Strategy):
    has_status = True
    tracks_generation = True

    def validate(self, obj: Obj, namespaced: bool) -> list[Cause]:
        causes = super().validate(obj, namespaced) + _ingress_spec_causes(obj.get("spec") or {})
        # upstream checks the legacy annotation against the class field on create only
        annotation = ((obj.get("metadata") or {}).get("annotations") or {}).get(INGRESS_CLASS_ANNOTATION)
        if annotation is not None and (obj.get("spec") or {}).get("ingressClassName"):
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
            causes += _host_causes(host, index(child(index("spec.tls", i), "hosts"), j))
        if tls.get("secretName"):
            causes += validate_dns1123_subdomain(tls["secretName"], child(index("spec.tls", i), "secretName"))
    if spec.get("ingressClassName"):
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
        if not controller:
            causes.append(required_cause("spec.controller"))
        elif len(controller) > 250:
            causes.append(too_long_cause("spec.controller", 250))
        else:
            causes += _domain_prefixed_path(controller, "spec.controller")
        params = spec.get("parameters")
        if isinstance(params, dict):
            pp = "spec.parameters"
            for f in ("kind", "name"):
                if not params.get(f):
                    causes.append(required_cause(child(pp, f)))
            scope = params.get("scope")
            causes += validate_enum(scope, ("Cluster", "Namespace"), child(pp, "scope"))
            if scope == "Namespace" and not params.get("namespace"):
                causes.append(required_cause(child(pp, "namespace"), "`parameters.scope` is set to 'Namespace'"))
            if scope == "Cluster" and params.get("namespace"):
                causes.append(forbidden_cause(child(pp, "namespace"), "`parameters.scope` is set to 'Cluster'"))
        return causes

    def validate_update(self, new: Obj, old: Obj, namespaced: bool) -> list[Cause]:
        causes = super().validate_update(new, old, namespaced)
        causes += validate_immutable((new.get("spec") or {}).get("controller"), (old.get("spec") or {}).get("controller"),
                                     "spec.controller")
        return causes


def _domain_prefixed_path(value: str, path: str) -> list[Cause]:
    """Upstream IsDomainPrefixedPath: `example.com/some-path`."""
    host, sep, rest = value.partition("/")
    if not sep:
        return [invalid_cause(path, value, 'must be a domain-prefixed path (such as "acme.io/foo")')]
    causes = [invalid_cause(path, host, m) for m in is_dns1123_subdomain(host)]
    if _PATH_CHARS.fullmatch(rest) is None:
        causes.append(invalid_cause(path, rest, "Invalid path"))
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
            causes.append(too_many_cause("spec.policyTypes", len(types), len(POLICY_TYPES)))
        for i, t in enumerate(types):
            causes += validate_enum(t, POLICY_TYPES, index("spec.policyTypes", i))
        return causes


def _policy_port_causes(port: Obj, path: str) -> list[Cause]:
    causes = validate_enum(port.get("protocol"), PROTOCOLS, child(path, "protocol"), required=False)
    value, end = port.get("port"), port.get("endPort")
    if isinstance(value, str):
        causes += validate_port_name(value, child(path, "port"))
        if end is not None:
            causes.append(invalid_cause(child(path, "endPort"), end, "may not be specified when `port` is non-numeric"))
    elif value is not None:
        causes += validate_port(value, child(path, "port"))
        if end is not None:
            causes += validate_port(end, child(path, "endPort"))
            if isinstance(end, int) and isinstance(value, int) and end < value:
                causes.append(invalid_cause(child(path, "endPort"), end, "must be greater than or equal to `port`"))
    elif end is not None:
        causes.append(required_cause(child(path, "port"), "must be specified when `endPort` is specified"))
    return causes


def _peer_causes(peer: Obj, path: str) -> list[Cause]:
    given = [f for f in ("podSelector", "namespaceSelector", "ipBlock") if peer.get(f) is not None]
    if not given:
        return [required_cause(path, "must specify a peer")]
    if "ipBlock" in given and len(given) > 1:
        return [forbidden_cause(path, "may not specify both ipBlock and another peer")]
    causes: list[Cause] = []
    for f in ("podSelector", "namespaceSelector"):
        causes += validate_label_selector(peer.get(f), child(path, f))
    block = peer.get("ipBlock")
    if isinstance(block, dict):
        bp = child(path, "ipBlock")
        cidr = block.get("cidr") or ""
        if not cidr:
            return [*causes, required_cause(child(bp, "cidr"))]
        cidr_causes = validate_cidr(cidr, child(bp, "cidr"))
        causes += cidr_causes
        for k, ex in enumerate(block.get("except") or []):
            ep = index(child(bp, "except"), k)
            ex_causes = validate_cidr(ex, ep)
            causes += ex_causes
            if not cidr_causes and not ex_causes and not _strict_subset(ex, cidr):
                causes.append(invalid_cause(ep, ex, "must be a strict subset of `cidr`"))
    return causes


def _strict_subset(inner: str, outer: str) -> bool:
    a, b = ipaddress.ip_network(inner), ipaddress.ip_network(outer)
    return a.version == b.version and a != b and a.subnet_of(b)  # type: ignore[arg-type]
