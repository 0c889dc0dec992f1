"""Strategies for core/v1 kinds."""

from __future__ import annotations

import base64
import binascii
import copy
from typing import Any

from apimachinery.validation import (
    child,
    duplicate_cause,
    forbidden_cause,
    index,
    invalid_cause,
    is_config_map_key,
    is_dns1123_label,
    is_qualified_name,
    is_valid_label_value,
    is_valid_port_name,
    is_valid_port_num,
    name_is_dns1035_label,
    name_is_dns_label,
    not_supported_cause,
    required_cause,
    too_long_cause,
    validate_object_meta_update,
)
from apiserver.registry import podspec
from apiserver.registry.base import Cause, Obj, Strategy, default_field
from apiserver.registry.services import (
    ServiceAllocations,
    drop_type_dependent_fields,
    externally_accessible,
    needs_health_check_node_port,
    patch_allocated_values,
)

MAX_CONFIG_SIZE = 1024 * 1024  # ConfigMap / Secret data limit


class NamespaceStrategy(Strategy):
    has_status = True
    name_validator = staticmethod(name_is_dns_label)
    selectable_fields = ("status.phase",)

    def initial_status(self, obj: Obj) -> None:
        obj["status"] = {"phase": "Active"}

    def default(self, obj: Obj) -> None:
        meta = obj["metadata"]
        # upstream sets this immutable label on every namespace (since 1.21)
        meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = meta.get("name", "")
        spec = obj.setdefault("spec", {})
        if "finalizers" not in spec and not meta.get("resourceVersion"):
            spec["finalizers"] = ["kubernetes"]

    def prepare_for_create(self, obj: Obj) -> None:
        super().prepare_for_create(obj)
        obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        super().prepare_for_update(new, old)
        # spec.finalizers change only through /finalize
        new.setdefault("spec", {})["finalizers"] = (old.get("spec") or {}).get("finalizers", [])
        if not new["spec"]["finalizers"]:
            new["spec"].pop("finalizers")

    def holds_deletion(self, obj: Obj) -> bool:
        return bool((obj.get("spec") or {}).get("finalizers"))

    def mark_deleting(self, obj: Obj) -> None:
        obj.setdefault("status", {})["phase"] = "Terminating"


class PodStrategy(Strategy):
    has_status = True
    tracks_generation = True
    return_deleted_object = True
    selectable_fields = (
        "spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName",
        "spec.hostNetwork", "status.phase", "status.podIP", "status.nominatedNodeName",
    )

    def initial_status(self, obj: Obj) -> None:
        obj["status"] = {"phase": "Pending"}

    def prepare_for_create(self, obj: Obj) -> None:
        super().prepare_for_create(obj)
        meta = obj.get("metadata")
        podspec.apply_match_label_keys(obj.get("spec"), meta.get("labels") if isinstance(meta, dict) else None)

    def default(self, obj: Obj) -> None:
        spec = obj.get("spec")
        podspec.default_pod_spec(spec)
        if isinstance(spec, dict):
            # upstream's SetDefaults_Pod, not SetDefaults_PodSpec: workload templates stay without it
            spec.setdefault("enableServiceLinks", True)
            if spec.get("serviceAccountName") and not spec.get("serviceAccount"):
                spec["serviceAccount"] = spec["serviceAccountName"]
            status = obj.setdefault("status", {})
            if isinstance(status, dict) and "qosClass" not in status:
                status["qosClass"] = podspec.qos_class(spec)

    def validate(self, obj: Obj, namespaced: bool) -> list[Cause]:
        """upstream ValidatePodCreate."""
        causes = self._validate_pod(obj, namespaced)
        spec = obj.get("spec")
        if isinstance(spec, dict) and spec.get("ephemeralContainers"):
            # only the ephemeralcontainers subresource adds them, to a running pod
            causes.append(forbidden_cause("spec.ephemeralContainers", "cannot be set on create"))
        return causes

    def _validate_pod(self, obj: Obj, namespaced: bool) -> list[Cause]:
        """upstream validatePodMetadataAndSpec: what every write of a pod must satisfy."""
        return super().validate(obj, namespaced) + podspec.validate_pod_spec(obj.get("spec"))

    def _validate_pod_update(self, new: Obj, old: Obj, namespaced: bool) -> list[Cause]:
        return self._validate_pod(new, namespaced) + validate_object_meta_update(
            new.get("metadata") or {}, old.get("metadata") or {})

    def validate_update(self, new: Obj, old: Obj, namespaced: bool) -> list[Cause]:
        causes = self._validate_pod_update(new, old, namespaced)
        ns, os_ = new.get("spec") or {}, old.get("spec") or {}
        if podspec.mutable_pod_spec_view(ns) != podspec.mutable_pod_spec_view(os_):
            causes.append(
                forbidden_cause(
                    "spec",
                    "pod updates may not change fields other than `spec.containers[*].image`,"
                    "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` "
                    "(only additions to existing tolerations),`spec.terminationGracePeriodSeconds` "
                    "(allow it to be set to 1 if it was previously negative)",
                )
            )
        old_tol = os_.get("tolerations") or []
        new_tol = ns.get("tolerations") or []
        if any(t not in new_tol for t in old_tol):
            causes.append(forbidden_cause("spec.tolerations", "existing toleration can not be modified except its tolerationSeconds"))
        return causes

    # -- pods/ephemeralcontainers (upstream podEphemeralContainersStrategy) ----------------

    spec_subresources = ("ephemeralcontainers",)

    def prepare_for_subresource_update(self, subresource: str, new: Obj, old: Obj) -> Obj:
        """The stored pod with the writer's spec.ephemeralContainers and nothing else of it
        (upstream dropNonEphemeralContainerUpdates: spec, status and metadata stay as stored)."""
        merged = copy.deepcopy(old)  # defaulting must not reach into the stored pod it is compared with
        spec = merged.setdefault("spec", {})
        wanted = (new.get("spec") or {}).get("ephemeralContainers") if isinstance(new.get("spec"), dict) else None
        if wanted:
            spec["ephemeralContainers"] = wanted
        else:
            spec.pop("ephemeralContainers", None)
        return merged

    def validate_subresource_update(self, subresource: str, new: Obj, old: Obj, namespaced: bool) -> list[Cause]:
        """upstream ValidatePodEphemeralContainersUpdate: a valid pod whose existing ephemeral
        containers are all still there, unchanged; static pods take none."""
        causes = self._validate_pod_update(new, old, namespaced)
        if podspec.MIRROR_ANNOTATION in (old["metadata"].get("annotations") or {}):
            return [forbidden_cause("", "static pods do not support ephemeral containers")]
        path = "spec.ephemeralContainers"
        current = {c.get("name"): c for c in (new.get("spec") or {}).get("ephemeralContainers") or []
                   if isinstance(c, dict)}
        for c in (old.get("spec") or {}).get("ephemeralContainers") or []:
            name = c.get("name")
            if name not in current:
                causes.append(forbidden_cause(path, f'existing ephemeral containers "{name}" may not be removed\n'))
            elif current[name] != c:
                causes.append(forbidden_cause(
                    path, f'existing ephemeral containers "{name}" may not be changed\n{podspec.diff(c, current[name])}'))
        return causes

    def validate_status_update(self, new: Obj, old: Obj) -> list[Cause]:
        phase = (new.get("status") or {}).get("phase")
        allowed = ("Pending", "Running", "Succeeded", "Failed", "Unknown")
        if phase is not None and phase not in allowed:
            return [not_supported_cause("status.phase", phase, allowed)]
        return []

    def grace_period(self, obj: Obj, requested: int | None) -> int:
        spec = obj.get("spec") or {}
        period = requested if requested is not None else spec.get("terminationGracePeriodSeconds", 30)
        if not spec.get("nodeName"):
            return 0  # never scheduled: nothing to stop
        if (obj.get("status") or {}).get("phase") in ("Failed", "Succeeded"):
            return 0
        return max(int(period or 0), 0)


class NodeStrategy(Strategy):
    has_status = True
    selectable_fields = ("spec.unschedulable",)

    def prepare_for_create(self, obj: Obj) -> None:
        # nodes register with their status (the kubelet sends it on create)
        pass

    def default(self, obj: Obj) -> None:
        if obj.get("spec") is None:
            obj["spec"] = {}  # upstream's NodeSpec struct is always written, empty or not

    def validate(self, obj: Obj, namespaced: bool) -> list[Cause]:
        causes = super().validate(obj, namespaced)
        for i, t in enumerate((obj.get("spec") or {}).get("taints") or []):
            pth = index("spec.taints", i)
            if not isinstance(t, dict) or not t.get("key"):
                causes.append(required_cause(child(pth, "key")))
                continue
            for msg in is_qualified_name(t["key"]):
                causes.append(invalid_cause(child(pth, "key"), t["key"], msg))
            eff = t.get("effect")
            if eff not in ("NoSchedule", "PreferNoSchedule", "NoExecute"):
                causes.append(not_supported_cause(child(pth, "effect"), eff, ("NoExecute", "NoSchedule", "PreferNoSchedule")))
        return causes


class ServiceStrategy(ServiceAllocations, Strategy):
    has_status = True
    return_deleted_object = True
    selectable_fields = ("spec.clusterIP", "spec.type")
    name_validator = staticmethod(name_is_dns1035_label)

    def initial_status(self, obj: Obj) -> None:
        obj["status"] = {"loadBalancer": {}}

    def default(self, obj: Obj) -> None:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return
        t = default_field(spec, "type", "ClusterIP")
        default_field(spec, "sessionAffinity", "None")
        if spec["sessionAffinity"] == "ClientIP":
            cfg = spec.setdefault("sessionAffinityConfig", {}).setdefault("clientIP", {})
            cfg.setdefault("timeoutSeconds", 10800)
        for p in spec.get("ports") or []:
            if isinstance(p, dict):
                default_field(p, "protocol", "TCP")
                if p.get("targetPort") in (None, 0, "") and "port" in p:  # upstream: unset, 0 or ""
                    p["targetPort"] = p["port"]
        if t != "ExternalName":
            spec.setdefault("internalTrafficPolicy", "Cluster")
            spec.setdefault("ipFamilyPolicy", "SingleStack")
            spec.setdefault("ipFamilies", ["IPv4"])
        if t in ("NodePort", "LoadBalancer"):
            default_field(spec, "externalTrafficPolicy", "Cluster")
        if t == "LoadBalancer":
            spec.setdefault("allocateLoadBalancerNodePorts", True)

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        super().prepare_for_update(new, old)
        # Before defaulting and validation see the object (upstream: beginUpdate's
        # patchAllocatedValues, then PrepareForUpdate's dropTypeDependentFields), so that
        # e.g. NodePort -> ClusterIP with the old nodePorts still in the body is accepted.
        patch_allocated_values(new, old)
        drop_type_dependent_fields(new, old)

    def validate(self, obj: Obj, namespaced: bool) -> list[Cause]:
        causes = super().validate(obj, namespaced)
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return [*causes, required_cause("spec")]
        t = spec.get("type", "ClusterIP")
        types = ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName")
        if t not in types:
            causes.append(not_supported_cause("spec.type", t, types))
        ports = spec.get("ports") or []
        headless = spec.get("clusterIP") == "None"
        if not ports and t != "ExternalName" and not headless:
            causes.append(required_cause("spec.ports"))
        if t == "ExternalName":
            if not spec.get("externalName"):
                causes.append(required_cause("spec.externalName"))
            # what an update left as stored was dropped before this (drop_type_dependent_fields)
            if spec.get("clusterIP") or spec.get("clusterIPs"):
                causes.append(forbidden_cause("spec.clusterIPs", "may not be set for ExternalName services"))
            for f in ("ipFamilies", "ipFamilyPolicy"):
                if spec.get(f):
                    causes.append(forbidden_cause(f"spec.{f}", "may not be set for ExternalName services"))
        seen_names: set[str] = set()
        seen_ports: set[tuple] = set()
        for i, p in enumerate(ports):
            pth = index("spec.ports", i)
            if not isinstance(p, dict):
                causes.append(invalid_cause(pth, p, "must be an object"))
                continue
            name = p.get("name", "")
            if len(ports) > 1 and not name:
                causes.append(required_cause(child(pth, "name")))
            if name:
                for msg in is_dns1123_label(name):
                    causes.append(invalid_cause(child(pth, "name"), name, msg))
                if name in seen_names:
                    causes.append(duplicate_cause(child(pth, "name"), name))
                seen_names.add(name)
            port = p.get("port")
            if not isinstance(port, int) or isinstance(port, bool):
                causes.append(required_cause(child(pth, "port")) if port is None else invalid_cause(child(pth, "port"), port, "must be an integer"))
            else:
                for msg in is_valid_port_num(port):
                    causes.append(invalid_cause(child(pth, "port"), port, msg))
            proto = p.get("protocol", "TCP")
            if proto not in podspec.PROTOCOLS:
                causes.append(not_supported_cause(child(pth, "protocol"), proto, podspec.PROTOCOLS))
            key = (port, proto)
            if key in seen_ports:
                causes.append(duplicate_cause(pth, {"port": port, "protocol": proto}))
            seen_ports.add(key)
            tp = p.get("targetPort")
            if isinstance(tp, int) and not isinstance(tp, bool):
                for msg in is_valid_port_num(tp):
                    causes.append(invalid_cause(child(pth, "targetPort"), tp, msg))
            elif isinstance(tp, str):
                for msg in is_valid_port_name(tp):
                    causes.append(invalid_cause(child(pth, "targetPort"), tp, msg))
            np = p.get("nodePort")
            if np and t not in ("NodePort", "LoadBalancer"):
                causes.append(forbidden_cause(child(pth, "nodePort"), "may not be used when `type` is 'ClusterIP'"))
        for k, v in (spec.get("selector") or {}).items():
            for msg in is_qualified_name(k):
                causes.append(invalid_cause("spec.selector", k, msg))
            for msg in is_valid_label_value(str(v)):
                causes.append(invalid_cause("spec.selector", v, msg))
        sa = spec.get("sessionAffinity", "None")
        if sa not in ("None", "ClientIP"):
            causes.append(not_supported_cause("spec.sessionAffinity", sa, ("ClientIP", "None")))
        for f in ("externalTrafficPolicy", "internalTrafficPolicy"):
            v = spec.get(f)
            if v is not None and v not in ("Cluster", "Local"):
                causes.append(not_supported_cause(f"spec.{f}", v, ("Cluster", "Local")))
        td = spec.get("trafficDistribution")
        if td is not None and td != "PreferClose":  # 1.31's one value
            causes.append(not_supported_cause("spec.trafficDistribution", td, ("PreferClose",)))
        # fields of other types that an update left as stored were dropped before this
        etp = spec.get("externalTrafficPolicy")
        if etp and not externally_accessible(spec):
            causes.append(invalid_cause("spec.externalTrafficPolicy", etp, "may only be set for externally-accessible services"))
        hc = spec.get("healthCheckNodePort")
        if hc and not needs_health_check_node_port(spec):
            causes.append(invalid_cause(
                "spec.healthCheckNodePort", hc, "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'"))
        if t != "LoadBalancer":
            for f in ("allocateLoadBalancerNodePorts", "loadBalancerClass"):
                if spec.get(f) is not None:
                    causes.append(forbidden_cause(f"spec.{f}", "may only be used when `type` is 'LoadBalancer'"))
        return causes

    def validate_update(self, new: Obj, old: Obj, namespaced: bool) -> list[Cause]:
        causes = super().validate_update(new, old, namespaced)
        ns, os_ = new.get("spec") or {}, old.get("spec") or {}
        if "ExternalName" not in (ns.get("type"), os_.get("type")) and ns.get("clusterIP") != os_.get("clusterIP"):
            causes.append(invalid_cause("spec.clusterIPs[0]", ns.get("clusterIP"), "may not change once set"))
        return causes


class EndpointsStrategy(Strategy):
    allow_create_on_update = True


def _validate_data_keys(obj: Obj) -> list[Cause]:
    causes: list[Cause] = []
    data = obj.get("data") or {}
    binary = obj.get("binaryData") or {}
    if not isinstance(data, dict):
        return [invalid_cause("data", "", "must be an object")]
    size = 0
    for field, values in (("data", data), ("binaryData", binary)):
        for k, v in values.items():
            for msg in is_config_map_key(k):
                causes.append(invalid_cause(f"{field}[{k}]", k, msg))
            if not isinstance(v, str):
                causes.append(invalid_cause(f"{field}[{k}]", v, "must be a string"))
                continue
            size += len(k) + len(v)
    for k in set(data) & set(binary):
        causes.append(duplicate_cause(f"data[{k}]", k))
    if size > MAX_CONFIG_SIZE:
        causes.append(too_long_cause("", MAX_CONFIG_SIZE))
    return causes


class ConfigMapStrategy(Strategy):
    def validate(self, obj: Obj, namespaced: bool) -> list[Cause]:
        return super().validate(obj, namespaced) + _validate_data_keys(obj)

    def validate_update(self, new: Obj, old: Obj, namespaced: bool) -> list[Cause]:
        causes = super().validate_update(new, old, namespaced)
        if old.get("immutable"):
            if new.get("immutable") is not True:
                causes.append(forbidden_cause("immutable", "field is immutable when `immutable` is set"))
            if new.get("data") != old.get("data") or new.get("binaryData") != old.get("binaryData"):
                causes.append(forbidden_cause("data", "field is immutable when `immutable` is set"))
        return causes


class SecretStrategy(ConfigMapStrategy):
    selectable_fields = ("type",)
    SECRET_TYPES_REQUIRING = {
        "kubernetes.io/service-account-token": ("metadata.annotations", "kubernetes.io/service-account.name"),
    }

    def default(self, obj: Obj) -> None:
        default_field(obj, "type", "Opaque")
        # stringData is write-only: merged into data, base64-encoded (upstream conversion)
        sd = obj.pop("stringData", None)
        if isinstance(sd, dict):
            data = obj.setdefault("data", {}) or {}
            for k, v in sd.items():
                data[k] = base64.b64encode(str(v).encode()).decode()
            obj["data"] = data

    def validate(self, obj: Obj, namespaced: bool) -> list[Cause]:
        causes = super().validate(obj, namespaced)
        for k, v in (obj.get("data") or {}).items():
            if isinstance(v, str):
                try:
                    base64.b64decode(v, validate=True)
                except (binascii.Error, ValueError):
                    causes.append(invalid_cause(f"data[{k}]", "<secret contents redacted>", "illegal base64 data"))
        t = obj.get("type", "Opaque")
        if t == "kubernetes.io/service-account-token":
            if not ((obj["metadata"].get("annotations") or {}).get("kubernetes.io/service-account.name")):
                causes.append(required_cause("metadata.annotations[kubernetes.io/service-account.name]"))
        if t == "kubernetes.io/tls":
            for k in ("tls.crt", "tls.key"):
                if k not in (obj.get("data") or {}):
                    causes.append(required_cause(f"data[{k}]"))
        return causes

    def validate_update(self, new: Obj, old: Obj, namespaced: bool) -> list[Cause]:
        causes = super().validate_update(new, old, namespaced)
        if new.get("type") != old.get("type"):
            causes.append(invalid_cause("type", new.get("type"), "field is immutable"))
        return causes


class ServiceAccountStrategy(Strategy):
    pass


class EventStrategy(Strategy):
    allow_create_on_update = True
    selectable_fields = (
        "involvedObject.kind", "involvedObject.namespace", "involvedObject.name", "involvedObject.uid",
        "involvedObject.apiVersion", "involvedObject.resourceVersion", "involvedObject.fieldPath",
        "reason", "reportingComponent", "source", "type",
    )

    def fields(self, obj: Obj) -> dict[str, str]:
        f = super().fields(obj)
        f["source"] = (obj.get("source") or {}).get("component") or obj.get("reportingComponent") or ""
        return f

    def validate(self, obj: Obj, namespaced: bool) -> list[Cause]:
        causes = super().validate(obj, namespaced)
        io = obj.get("involvedObject")
        if not isinstance(io, dict):
            causes.append(required_cause("involvedObject"))
        elif io.get("namespace") and io["namespace"] != obj["metadata"].get("namespace") and obj["metadata"].get("namespace") != "default":
            causes.append(invalid_cause("involvedObject.namespace", io["namespace"], "does not match event.namespace"))
        t = obj.get("type")
        if t and t not in ("Normal", "Warning"):
            causes.append(not_supported_cause("type", t, ("Normal", "Warning")))
        return causes

    def to_storage(self, res: Any, obj: Obj) -> Obj:
        return events_v1_to_core(obj) if res.group == "events.k8s.io" else obj

    def output_converter(self, res: Any) -> Any:
        return core_to_events_v1 if res.group == "events.k8s.io" else None


def core_to_events_v1(e: Obj) -> Obj:
    """core/v1 Event (stored form) → events.k8s.io/v1 Event."""
    out: Obj = {"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": e.get("metadata", {})}
    mapping = {
        "eventTime": "eventTime", "action": "action", "reason": "reason", "type": "type",
        "reportingComponent": "reportingController", "reportingInstance": "reportingInstance",
        "involvedObject": "regarding", "related": "related", "message": "note",
        "firstTimestamp": "deprecatedFirstTimestamp", "lastTimestamp": "deprecatedLastTimestamp",
        "count": "deprecatedCount", "source": "deprecatedSource",
    }
    for src, dst in mapping.items():
        if e.get(src) is not None:
            out[dst] = e[src]
    if e.get("series"):
        out["series"] = e["series"]
    out.setdefault("eventTime", None)
    return out


def events_v1_to_core(e: Obj) -> Obj:
    """events.k8s.io/v1 Event → core/v1 Event (stored form)."""
    out: Obj = {"apiVersion": "v1", "kind": "Event", "metadata": e.get("metadata", {})}
    mapping = {
        "eventTime": "eventTime", "action": "action", "reason": "reason", "type": "type",
        "reportingController": "reportingComponent", "reportingInstance": "reportingInstance",
        "regarding": "involvedObject", "related": "related", "note": "message",
        "deprecatedFirstTimestamp": "firstTimestamp", "deprecatedLastTimestamp": "lastTimestamp",
        "deprecatedCount": "count", "deprecatedSource": "source",
    }
    for src, dst in mapping.items():
        if e.get(src) is not None:
            out[dst] = e[src]
    if e.get("series"):
        out["series"] = e["series"]
    out.setdefault("involvedObject", {})
    return out


class LimitRangeStrategy(Strategy):
    pass


class ResourceQuotaStrategy(Strategy):
    has_status = True

    def prepare_for_create(self, obj: Obj) -> None:
        obj.pop("status", None)


