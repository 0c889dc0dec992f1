"""Which pods back a Service, and on which ports (upstream pkg/controller/util/endpoint).

Shared by the Endpoints and EndpointSlice controllers.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from apimachinery.meta import key_of
from apimachinery.podutil import sidecars
from apimachinery.selectors import LabelSelector, selector_from_set
from client import Store, deleted_object
from controller_manager.podutil import is_pod_ready, is_pod_terminal, labels_of

Obj = dict[str, Any]

#: pre-1.11 spelling of spec.publishNotReadyAddresses, still honoured upstream
TOLERATE_UNREADY_ANNOTATION = "service.alpha.kubernetes.io/tolerate-unready-endpoints"
HEADLESS_LABEL = "service.kubernetes.io/headless"


class StaleInformer(Exception):
    """The informer has not yet seen this controller's own last writes (retry later)."""


def resource_version(obj: Obj) -> int:
    try:
        return int(obj["metadata"].get("resourceVersion") or 0)
    except ValueError:
        return 0


def service_selector(svc: Obj) -> LabelSelector | None:
    """The service's pod selector; None when it has none (its endpoints are managed by hand)."""
    sel = (svc.get("spec") or {}).get("selector")
    if not sel:
        return None
    return selector_from_set(sel)


def manages_endpoints(svc: Obj) -> bool:
    """True for services these controllers fill: selector set and not ExternalName."""
    spec = svc.get("spec") or {}
    return spec.get("type") != "ExternalName" and bool(spec.get("selector"))


def publish_not_ready(svc: Obj) -> bool:
    if (svc.get("spec") or {}).get("publishNotReadyAddresses"):
        return True
    value = ((svc.get("metadata") or {}).get("annotations") or {}).get(TOLERATE_UNREADY_ANNOTATION, "")
    return value.lower() in ("true", "1", "t")


def is_headless(svc: Obj) -> bool:
    return (svc.get("spec") or {}).get("clusterIP") == "None"


def pod_ip(pod: Obj) -> str:
    status = pod.get("status") or {}
    if status.get("podIP"):
        return status["podIP"]
    ips = status.get("podIPs") or []
    return (ips[0] or {}).get("ip", "") if ips else ""


def should_pod_be_in_endpoints(pod: Obj, include_terminating: bool) -> bool:
    """Not finished, has an IP, and (unless asked to include them) not being deleted."""
    if is_pod_terminal(pod) or not pod_ip(pod):
        return False
    return include_terminating or not (pod.get("metadata") or {}).get("deletionTimestamp")


def find_port(pod: Obj, service_port: Obj) -> int | None:
    """The pod's port for a service port: a numeric targetPort as is, a named one looked up
    among the pod's container ports (same name and protocol); None if the pod has no such port."""
    target = service_port.get("targetPort")
    if target is None or target == "":
        target = service_port.get("port")
    if isinstance(target, int):
        return target
    protocol = service_port.get("protocol") or "TCP"
    spec = pod.get("spec") or {}
    # regular containers, then restartable init containers (sidecars) as upstream does
    containers = list(spec.get("containers") or []) + sidecars(spec)
    for c in containers:
        for p in c.get("ports") or []:
            if p.get("name") == target and (p.get("protocol") or "TCP") == protocol:
                return p.get("containerPort")
    return None


def should_set_hostname(pod: Obj, svc: Obj) -> bool:
    spec = pod.get("spec") or {}
    return bool(spec.get("hostname")) and spec.get("subdomain") == svc["metadata"]["name"] \
        and pod["metadata"].get("namespace") == svc["metadata"].get("namespace")


def target_ref(pod: Obj) -> Obj:
    meta = pod["metadata"]
    return {"kind": "Pod", "namespace": meta.get("namespace", ""), "name": meta["name"], "uid": meta.get("uid", "")}


def services_selecting(services: Store, pod: Obj) -> set[str]:
    """Keys of the services in the pod's namespace whose selector matches its labels."""
    ns = (pod.get("metadata") or {}).get("namespace")
    labels = labels_of(pod)
    out = set()
    for svc in services.by_index("namespace", ns) if ns else ():
        sel = service_selector(svc)
        if sel is not None and sel.matches(labels):
            out.add(key_of(svc))
    return out


def pods_for_service(pods: Store, svc: Obj) -> list[Obj]:
    sel = service_selector(svc)
    if sel is None:
        return []
    return [p for p in pods.by_index("namespace", svc["metadata"]["namespace"]) if sel.matches(labels_of(p))]


def endpoint_relevant(pod: Obj) -> tuple:
    """What of a pod shows in its endpoints: a change elsewhere needs no resync."""
    spec, status, meta = pod.get("spec") or {}, pod.get("status") or {}, pod.get("metadata") or {}
    ports = tuple(
        (p.get("name"), p.get("containerPort"), p.get("protocol"))
        for c in list(spec.get("containers") or []) + list(spec.get("initContainers") or [])
        for p in c.get("ports") or []
    )
    return (
        pod_ip(pod), status.get("podIPs") and tuple(i.get("ip") for i in status["podIPs"]), status.get("phase"),
        is_pod_ready(pod), bool(meta.get("deletionTimestamp")), spec.get("nodeName"), spec.get("hostname"),
        spec.get("subdomain"), ports, meta.get("uid"),
    )


def services_to_update(services: Store, old: Obj | None, new: Obj | None) -> set[str]:
    """The services a pod change concerns: those selecting the old or the new pod, or only
    the changed memberships when nothing endpoint-relevant about the pod changed."""
    old_svcs = services_selecting(services, old) if old is not None else set()
    new_svcs = services_selecting(services, new) if new is not None else set()
    if old is None or new is None:
        return old_svcs | new_svcs
    if endpoint_relevant(old) != endpoint_relevant(new):
        return old_svcs | new_svcs
    return old_svcs ^ new_svcs


class PodEventsToServices:
    """Pod informer handlers shared by the Endpoints and EndpointSlice controllers: a pod change
    enqueues the Services it affects, after the batch period when one is set (upstream's
    --endpoint[slice]-updates-batch-period). Needs `services`, `queue` and `batch_period`."""

    services: Any
    queue: Any
    batch_period: float

    def _enqueue_services(self, keys: set[str]) -> None:
        for key in keys:
            if self.batch_period > 0:
                self.queue.add_after(key, self.batch_period)
            else:
                self.queue.add(key)

    def _pod_added(self, pod: Obj) -> None:
        self._enqueue_services(services_to_update(self.services.store, None, pod))

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        if old["metadata"].get("resourceVersion") == new["metadata"].get("resourceVersion"):
            return
        self._enqueue_services(services_to_update(self.services.store, old, new))

    def _pod_deleted(self, item: Any) -> None:
        self._enqueue_services(services_to_update(self.services.store, deleted_object(item), None))


def addresses_sorted(items: Iterable[Obj]) -> list[Obj]:
    return sorted(items, key=lambda a: (a.get("ip", ""), (a.get("targetRef") or {}).get("uid", "")))
