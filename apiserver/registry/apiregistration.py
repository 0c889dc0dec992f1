"""apiregistration.k8s.io/v1 APIService: a group/version served by this apiserver ("Local", no
service) or by an extension apiserver behind a Service, which the aggregator
(apiserver/aggregator.py) proxies to. Defaulted and validated as kube-aggregator's.
"""

from __future__ import annotations

from apimachinery.validation import (
    invalid_cause,
    is_dns1035_label,
    is_dns1123_subdomain,
    is_valid_port_num,
    not_supported_cause,
    required_cause,
    validate_path_segment_name,
)
from apiserver.registry.base import Cause, Obj, Strategy, as_dict

#: the label upstream's autoregistration puts on the APIServices it manages itself
AUTOMANAGED = "kube-aggregator.kubernetes.io/automanaged"


def api_service_name(group: str, version: str) -> str:
    return f"{version}.{group}"


def is_local(obj: Obj) -> bool:
    return not as_dict(obj.get("spec")).get("service")


def available_condition(obj: Obj) -> Obj | None:
    return next((c for c in as_dict(obj.get("status")).get("conditions") or []
                 if isinstance(c, dict) and c.get("type") == "Available"), None)


class APIServiceStrategy(Strategy):
    has_status = True
    name_validator = staticmethod(validate_path_segment_name)

    def default(self, obj: Obj) -> None:
        service = as_dict(obj.get("spec")).get("service")
        if isinstance(service, dict) and service.get("port") is None:
            service["port"] = 443

    def validate(self, obj: Obj, namespaced: bool) -> list[Cause]:
        causes = super().validate(obj, namespaced)
        spec = as_dict(obj.get("spec"))
        group, version = spec.get("group") or "", spec.get("version") or ""
        group = group if isinstance(group, str) else ""
        version = version if isinstance(version, str) else ""
        name = as_dict(obj.get("metadata")).get("name") or ""
        required = api_service_name(group, version)
        if name and not validate_path_segment_name(name) and name != required:
            causes.append(invalid_cause("metadata.name", name, f'must be `spec.version+"."+spec.group`: "{required}"'))
        if not group and version != "v1":
            causes.append(required_cause("spec.group", "only v1 may have an empty group and it better be legacy kube"))
        if group:
            causes += [invalid_cause("spec.group", group, m) for m in is_dns1123_subdomain(group)]
        causes += [invalid_cause("spec.version", version, m) for m in is_dns1035_label(version)]
        for field, top, words in (("groupPriorityMinimum", 20000, "must be positive and less than 20000"),
                                  ("versionPriority", 1000, "must be positive and less than 1000")):
            value = spec.get(field)
            if not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= top:
                causes.append(invalid_cause(f"spec.{field}", value if value is not None else 0, words))
        service = spec.get("service")
        ca_bundle = spec.get("caBundle") or ""
        skip_verify = spec.get("insecureSkipTLSVerify") is True
        if not service:
            if ca_bundle:
                causes.append(invalid_cause("spec.caBundle", f"{len(str(ca_bundle))} bytes",
                                            "local APIServices may not have a caBundle"))
            if skip_verify:
                causes.append(invalid_cause("spec.insecureSkipTLSVerify", True,
                                            "local APIServices may not have insecureSkipTLSVerify"))
            return causes
        service = as_dict(service)
        if not service.get("namespace"):
            causes.append(required_cause("spec.service.namespace"))
        if not service.get("name"):
            causes.append(required_cause("spec.service.name"))
        port = service.get("port")
        errs = is_valid_port_num(port) if isinstance(port, int) and not isinstance(port, bool) else [
            "must be between 1 and 65535, inclusive"]
        if errs:
            causes.append(invalid_cause("spec.service.port", port, "port is not valid: " + ", ".join(errs)))
        if skip_verify and ca_bundle:
            causes.append(invalid_cause("spec.insecureSkipTLSVerify", True, "may not be true if caBundle is present"))
        return causes

    def validate_status_update(self, new: Obj, old: Obj) -> list[Cause]:
        causes = []
        for i, c in enumerate(as_dict(new.get("status")).get("conditions") or []):
            status = as_dict(c).get("status")
            if status not in ("True", "False", "Unknown"):
                causes.append(not_supported_cause(f"status.conditions[{i}].status", status, ("True", "False", "Unknown")))
        return causes
