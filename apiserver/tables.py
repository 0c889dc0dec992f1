"""Server-side printing: `meta.k8s.io/v1 Table` with upstream's columns per kind.

`kubectl get` asks for `Accept: application/json;as=Table;v=v1;g=meta.k8s.io` and prints
these rows as they come, so the columns and cell formats follow upstream's printers
(pkg/printers/internalversion). Priority-1 columns are the `-o wide` ones.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from apimachinery import errors
from apimachinery.duration import human_duration
from apimachinery.meta import parse_time
from apimachinery.podutil import is_restartable_init_container
from apimachinery.selectors import selector_from_label_selector
from apimachinery.volumebinding import is_default_class, storage_class_name

Obj = dict[str, Any]
Column = tuple  # (name, type, format, priority) or (name, type, format, priority, description)


def age(ts: str | None, now: dt.datetime) -> str:
    if not ts:
        return "<unknown>"
    try:
        return human_duration((now - parse_time(ts)).total_seconds())
    except ValueError:
        return "<invalid>"


def _meta(o: Obj) -> Obj:
    return o.get("metadata") or {}


def _containers_images(spec: Obj | None) -> tuple[str, str]:
    cs = ((spec or {}).get("template") or {}).get("spec", {}).get("containers") or []
    return ",".join(c.get("name", "") for c in cs), ",".join(c.get("image", "") for c in cs)


def _selector(sel: Obj | None) -> str:
    from apiserver.subresources import format_label_selector

    return format_label_selector(sel) or "<none>"


def _map_selector(sel: dict[str, str] | None) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted((sel or {}).items())) or "<none>"


# -- pods ----------------------------------------------------------------------------------


def _pod_summary(pod: Obj) -> tuple[int, int, str, int, dt.datetime | None]:
    """(ready, total, STATUS, restarts, last restart) as upstream's printPod: sidecars count as
    containers once started; while init containers run, their restarts are the pod's."""
    status = pod.get("status") or {}
    spec = pod.get("spec") or {}
    reason = status.get("reason") or status.get("phase") or ""
    for c in status.get("conditions") or []:
        if c.get("type") == "PodScheduled" and c.get("reason") == "SchedulingGated":
            reason = "SchedulingGated"
    init_specs = {c.get("name"): c for c in spec.get("initContainers") or []}
    total = len(spec.get("containers") or []) + sum(1 for c in init_specs.values() if is_restartable_init_container(c))
    ready = restarts = sidecar_restarts = 0
    last: dt.datetime | None = None
    sidecar_last: dt.datetime | None = None

    def later(t: dt.datetime | None, cs: Obj) -> dt.datetime | None:
        fin = (((cs.get("lastState") or {}).get("terminated")) or {}).get("finishedAt")
        if not fin:
            return t
        f = parse_time(fin)
        return f if t is None or f > t else t

    initializing = False
    init_statuses = status.get("initContainerStatuses") or []
    for i, cs in enumerate(init_statuses):
        restarts += cs.get("restartCount", 0) or 0
        last = later(last, cs)
        sidecar = is_restartable_init_container(init_specs.get(cs.get("name")))
        if sidecar:
            sidecar_restarts += cs.get("restartCount", 0) or 0
            sidecar_last = later(sidecar_last, cs)
        state = cs.get("state") or {}
        term, wait = state.get("terminated"), state.get("waiting")
        if term and term.get("exitCode") == 0:
            continue
        if sidecar and cs.get("started"):
            ready += bool(cs.get("ready"))
            continue
        if term:
            if term.get("reason"):
                reason = f"Init:{term['reason']}"
            elif term.get("signal"):
                reason = f"Init:Signal:{term['signal']}"
            else:
                reason = f"Init:ExitCode:{term.get('exitCode')}"
        elif wait and wait.get("reason") and wait["reason"] != "PodInitializing":
            reason = f"Init:{wait['reason']}"
        else:
            reason = f"Init:{i}/{len(init_specs)}"
        initializing = True
        break
    initialized = any(c.get("type") == "Initialized" and c.get("status") == "True" for c in status.get("conditions") or [])
    if not initializing or initialized:
        restarts, last = sidecar_restarts, sidecar_last
        has_running = False
        for cs in reversed(status.get("containerStatuses") or []):
            restarts += cs.get("restartCount", 0) or 0
            last = later(last, cs)
            state = cs.get("state") or {}
            wait, term = state.get("waiting"), state.get("terminated")
            if wait and wait.get("reason"):
                reason = wait["reason"]
            elif term and term.get("reason"):
                reason = term["reason"]
            elif term and term.get("signal"):
                reason = f"Signal:{term['signal']}"
            elif term:
                reason = f"ExitCode:{term.get('exitCode')}"
            elif "running" in state and cs.get("ready"):
                has_running = True
                ready += 1
        if reason == "Completed" and has_running:
            pod_ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
            reason = "Running" if pod_ready else "NotReady"
    if _meta(pod).get("deletionTimestamp"):
        if status.get("reason") == "NodeLost":
            reason = "Unknown"
        elif status.get("phase") not in ("Succeeded", "Failed"):
            reason = "Terminating"
    return ready, total, reason, restarts, last


def pod_status_reason(pod: Obj) -> str:
    """The STATUS column (upstream printPod)."""
    return _pod_summary(pod)[2]


def _pod_row(pod: Obj, now: dt.datetime) -> list[Any]:
    status = pod.get("status") or {}
    spec = pod.get("spec") or {}
    ready, total, reason, restarts, last = _pod_summary(pod)
    rs = str(restarts) if not restarts or last is None else f"{restarts} ({human_duration((now - last).total_seconds())} ago)"
    gates = spec.get("readinessGates") or []
    if gates:
        conds = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
        gates_s = f"{sum(1 for g in gates if conds.get(g.get('conditionType')) == 'True')}/{len(gates)}"
    else:
        gates_s = "<none>"
    return [
        _meta(pod).get("name"), f"{ready}/{total}", reason, rs, age(_meta(pod).get("creationTimestamp"), now),
        status.get("podIP") or "<none>", spec.get("nodeName") or "<none>", status.get("nominatedNodeName") or "<none>", gates_s,
    ]


# -- the rest -------------------------------------------------------------------------------


def _node_row(n: Obj, now: dt.datetime) -> list[Any]:
    status = n.get("status") or {}
    ready = "Unknown"
    for c in status.get("conditions") or []:
        if c.get("type") == "Ready":
            ready = "Ready" if c.get("status") == "True" else "NotReady"
    st = [ready]
    if (n.get("spec") or {}).get("unschedulable"):
        st.append("SchedulingDisabled")
    labels = _meta(n).get("labels") or {}
    roles = sorted({k.split("/", 1)[1] for k in labels if k.startswith("node-role.kubernetes.io/") and "/" in k}
                   | ({labels["kubernetes.io/role"]} if labels.get("kubernetes.io/role") else set()))
    info = status.get("nodeInfo") or {}
    addrs = {a.get("type"): a.get("address") for a in status.get("addresses") or []}
    return [
        _meta(n).get("name"), ",".join(st), ",".join(roles) or "<none>", age(_meta(n).get("creationTimestamp"), now),
        info.get("kubeletVersion", ""), addrs.get("InternalIP") or "<none>", addrs.get("ExternalIP") or "<none>",
        info.get("osImage") or "<unknown>", info.get("kernelVersion") or "<unknown>", info.get("containerRuntimeVersion") or "<unknown>",
    ]


def _deploy_row(d: Obj, now: dt.datetime) -> list[Any]:
    spec, st = d.get("spec") or {}, d.get("status") or {}
    c, i = _containers_images(spec)
    return [_meta(d).get("name"), f"{st.get('readyReplicas', 0)}/{spec.get('replicas', 0)}", st.get("updatedReplicas", 0),
            st.get("availableReplicas", 0), age(_meta(d).get("creationTimestamp"), now), c, i, _selector(spec.get("selector"))]


def _replicas_row(r: Obj, now: dt.datetime, selector: str) -> list[Any]:
    spec, st = r.get("spec") or {}, r.get("status") or {}
    c, i = _containers_images(spec)
    return [_meta(r).get("name"), spec.get("replicas", 0), st.get("replicas", 0), st.get("readyReplicas", 0),
            age(_meta(r).get("creationTimestamp"), now), c, i, selector]


def _rs_row(r: Obj, now: dt.datetime) -> list[Any]:
    return _replicas_row(r, now, _selector((r.get("spec") or {}).get("selector")))


def _rc_row(r: Obj, now: dt.datetime) -> list[Any]:
    # an RC's selector is a plain label map (upstream labels.FormatLabels)
    return _replicas_row(r, now, _map_selector((r.get("spec") or {}).get("selector")))


def _podtemplate_row(t: Obj, now: dt.datetime) -> list[Any]:
    c, i = _containers_images(t)  # a PodTemplate holds `template` at the top level
    return [_meta(t).get("name"), c, i, _map_selector(((t.get("template") or {}).get("metadata") or {}).get("labels"))]


def _ds_row(r: Obj, now: dt.datetime) -> list[Any]:
    spec, st = r.get("spec") or {}, r.get("status") or {}
    c, i = _containers_images(spec)
    ns = _map_selector(((spec.get("template") or {}).get("spec") or {}).get("nodeSelector"))
    return [_meta(r).get("name"), st.get("desiredNumberScheduled", 0), st.get("currentNumberScheduled", 0),
            st.get("numberReady", 0), st.get("updatedNumberScheduled", 0), st.get("numberAvailable", 0), ns,
            age(_meta(r).get("creationTimestamp"), now), c, i, _selector(spec.get("selector"))]


def _sts_row(r: Obj, now: dt.datetime) -> list[Any]:
    spec, st = r.get("spec") or {}, r.get("status") or {}
    c, i = _containers_images(spec)
    return [_meta(r).get("name"), f"{st.get('readyReplicas', 0)}/{spec.get('replicas', 0)}",
            age(_meta(r).get("creationTimestamp"), now), c, i]


def _job_status(job: Obj) -> str:
    st = job.get("status") or {}
    conds = {c.get("type"): c.get("status") for c in st.get("conditions") or []}
    if conds.get("Complete") == "True":
        return "Complete"
    if conds.get("Failed") == "True":
        return "Failed"
    if _meta(job).get("deletionTimestamp"):
        return "Terminating"
    # upstream 1.31 printJob: no SuccessCriteriaMet status yet (kubectl shows it from 1.34 on)
    if conds.get("Suspended") == "True":
        return "Suspended"
    if conds.get("FailureTarget") == "True":
        return "FailureTarget"
    return "Running"


def _job_row(j: Obj, now: dt.datetime) -> list[Any]:
    spec, st = j.get("spec") or {}, j.get("status") or {}
    completions = spec.get("completions")
    comp = f"{st.get('succeeded', 0)}/{completions}" if completions is not None else (
        f"{st.get('succeeded', 0)}/1 of {spec.get('parallelism', 1)}" if spec.get("parallelism", 1) > 1 else f"{st.get('succeeded', 0)}/1")
    duration = ""
    if st.get("startTime"):
        end = parse_time(st["completionTime"]) if st.get("completionTime") else now
        duration = human_duration((end - parse_time(st["startTime"])).total_seconds())
    c, i = _containers_images(spec)
    return [_meta(j).get("name"), _job_status(j), comp, duration, age(_meta(j).get("creationTimestamp"), now),
            c, i, _selector(spec.get("selector"))]


def _cronjob_row(cj: Obj, now: dt.datetime) -> list[Any]:
    spec, st = cj.get("spec") or {}, cj.get("status") or {}
    c, i = _containers_images((spec.get("jobTemplate") or {}).get("spec"))
    last = age(st.get("lastScheduleTime"), now) if st.get("lastScheduleTime") else "<none>"
    return [_meta(cj).get("name"), spec.get("schedule", ""), spec.get("timeZone") or "<none>",
            "True" if spec.get("suspend") else "False", len(st.get("active") or []), last,
            age(_meta(cj).get("creationTimestamp"), now), c, i, _selector(((spec.get("jobTemplate") or {}).get("spec") or {}).get("selector"))]


def _svc_row(s: Obj, now: dt.datetime) -> list[Any]:
    spec = s.get("spec") or {}
    t = spec.get("type", "ClusterIP")
    ext = ",".join(spec.get("externalIPs") or [])
    if t == "LoadBalancer":
        ing = [i.get("ip") or i.get("hostname") for i in ((s.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []]
        ext = ",".join([*ing, *(spec.get("externalIPs") or [])]) or "<pending>"
    elif t == "ExternalName":
        ext = spec.get("externalName", "")
    ports = []
    for p in spec.get("ports") or []:
        port = f"{p.get('port')}:{p['nodePort']}" if p.get("nodePort") else str(p.get("port"))
        ports.append(f"{port}/{p.get('protocol', 'TCP')}")
    return [_meta(s).get("name"), t, spec.get("clusterIP") or "<none>", ext or "<none>", ",".join(ports) or "<none>",
            age(_meta(s).get("creationTimestamp"), now), _map_selector(spec.get("selector"))]


def _list_more(items: list[str], limit: int = 3) -> str:
    if not items:
        return "<none>"
    if len(items) > limit:
        return ",".join(items[:limit]) + f" + {len(items) - limit} more..."
    return ",".join(items)


def _ep_row(e: Obj, now: dt.datetime) -> list[Any]:
    eps = []
    for sub in e.get("subsets") or []:
        for a in sub.get("addresses") or []:
            for p in sub.get("ports") or [{}]:
                eps.append(f"{a.get('ip')}:{p['port']}" if p.get("port") else str(a.get("ip")))
    return [_meta(e).get("name"), _list_more(eps), age(_meta(e).get("creationTimestamp"), now)]


def _eps_row(e: Obj, now: dt.datetime) -> list[Any]:
    ports = ",".join(str(p.get("port", "")) for p in e.get("ports") or []) or "<unset>"
    addrs = [a for ep in e.get("endpoints") or [] for a in ep.get("addresses") or []]
    return [_meta(e).get("name"), e.get("addressType", ""), ports, _list_more(addrs), age(_meta(e).get("creationTimestamp"), now)]


def _event_row(e: Obj, now: dt.datetime) -> list[Any]:
    io = e.get("involvedObject") or {}
    last = e.get("lastTimestamp") or e.get("eventTime") or (e.get("series") or {}).get("lastObservedTime")
    first = e.get("firstTimestamp") or e.get("eventTime")
    src = (e.get("source") or {}).get("component") or e.get("reportingComponent") or ""
    host = (e.get("source") or {}).get("host")
    if host:
        src = f"{src}, {host}"
    obj = f"{(io.get('kind') or '').lower()}/{io.get('name', '')}"
    return [age(last, now), e.get("type", ""), e.get("reason", ""), obj, io.get("fieldPath", ""), src,
            e.get("message", "").strip(), age(first, now), e.get("count") or 1, _meta(e).get("name")]


def _binding_subjects(b: Obj, kind: str) -> str:
    out = []
    for s in b.get("subjects") or []:
        if s.get("kind") == kind:
            out.append(f"{s['namespace']}/{s['name']}" if kind == "ServiceAccount" else s.get("name", ""))
    return ", ".join(out)


def _rb_row(b: Obj, now: dt.datetime) -> list[Any]:
    ref = b.get("roleRef") or {}
    return [_meta(b).get("name"), f"{ref.get('kind')}/{ref.get('name')}", age(_meta(b).get("creationTimestamp"), now),
            _binding_subjects(b, "User"), _binding_subjects(b, "Group"), _binding_subjects(b, "ServiceAccount")]


def _named_count(field: str) -> Callable[[Obj, dt.datetime], list[Any]]:
    def row(o: Obj, now: dt.datetime) -> list[Any]:
        v = o.get(field) or {}
        n = len(v) + (len(o.get("binaryData") or {}) if field == "data" else 0)
        return [_meta(o).get("name"), n, age(_meta(o).get("creationTimestamp"), now)]

    return row


def _secret_row(s: Obj, now: dt.datetime) -> list[Any]:
    return [_meta(s).get("name"), s.get("type", "Opaque"), len(s.get("data") or {}), age(_meta(s).get("creationTimestamp"), now)]


def _ns_row(n: Obj, now: dt.datetime) -> list[Any]:
    return [_meta(n).get("name"), (n.get("status") or {}).get("phase", ""), age(_meta(n).get("creationTimestamp"), now)]


def _lease_row(lease: Obj, now: dt.datetime) -> list[Any]:
    return [_meta(lease).get("name"), (lease.get("spec") or {}).get("holderIdentity") or "<none>",
            age(_meta(lease).get("creationTimestamp"), now)]


def _pdb_row(p: Obj, now: dt.datetime) -> list[Any]:
    spec = p.get("spec") or {}
    return [_meta(p).get("name"), str(spec["minAvailable"]) if "minAvailable" in spec else "N/A",
            str(spec["maxUnavailable"]) if "maxUnavailable" in spec else "N/A",
            (p.get("status") or {}).get("disruptionsAllowed", 0), age(_meta(p).get("creationTimestamp"), now)]


def _pc_row(p: Obj, now: dt.datetime) -> list[Any]:
    return [_meta(p).get("name"), p.get("value", 0), bool(p.get("globalDefault")), age(_meta(p).get("creationTimestamp"), now),
            p.get("preemptionPolicy", "PreemptLowerPriority")]


def _runtimeclass_row(r: Obj, now: dt.datetime) -> list[Any]:
    return [_meta(r).get("name"), r.get("handler", ""), age(_meta(r).get("creationTimestamp"), now)]


def _vap_row(p: Obj, now: dt.datetime) -> list[Any]:
    spec = p.get("spec") or {}
    pk = spec.get("paramKind")
    param_kind = f"{pk.get('apiVersion', '')}/{pk.get('kind', '')}" if isinstance(pk, dict) else "<unset>"
    return [_meta(p).get("name"), len(spec.get("validations") or []), param_kind,
            age(_meta(p).get("creationTimestamp"), now)]


def _vapb_row(b: Obj, now: dt.datetime) -> list[Any]:
    spec = b.get("spec") or {}
    pr = spec.get("paramRef")
    param_ref = "<unset>"
    if isinstance(pr, dict) and pr.get("name"):
        param_ref = f"{pr.get('namespace') or '*'}/{pr['name']}"
    elif isinstance(pr, dict) and isinstance(pr.get("selector"), dict):
        try:
            param_ref = str(selector_from_label_selector(pr["selector"])) or "*"
        except ValueError:
            param_ref = "<invalid>"
    return [_meta(b).get("name"), spec.get("policyName", ""), param_ref, age(_meta(b).get("creationTimestamp"), now)]


def _csidriver_row(d: Obj, now: dt.datetime) -> list[Any]:
    spec = d.get("spec") or {}

    def flag(key: str, default: bool) -> bool:
        value = spec.get(key)
        return value if isinstance(value, bool) else default

    requests = spec.get("tokenRequests")
    tokens = ",".join(str((t or {}).get("audience", "")) for t in requests) if isinstance(requests, list) else "<unset>"
    modes = ",".join(str(m) for m in spec.get("volumeLifecycleModes") or []) or "<none>"
    return [_meta(d).get("name"), flag("attachRequired", True), flag("podInfoOnMount", False),
            flag("storageCapacity", False), tokens, flag("requiresRepublish", False), modes,
            age(_meta(d).get("creationTimestamp"), now)]


def _csinode_row(n: Obj, now: dt.datetime) -> list[Any]:
    return [_meta(n).get("name"), len((n.get("spec") or {}).get("drivers") or []),
            age(_meta(n).get("creationTimestamp"), now)]


def _resourcequota_row(q: Obj, now: dt.datetime) -> list[Any]:
    """upstream's printResourceQuota: `resource: used/hard` of each measured hard limit, sorted; limits.* in LIMIT."""
    status = q.get("status") or {}
    used, hard = status.get("used") or {}, status.get("hard") or {}
    request, limit = [], []
    for name in sorted(hard):  # status.hard: empty columns until the quota is first measured (upstream)
        column = limit if name.split(".")[0] == "limits" and "." in name else request
        column.append(f"{name}: {used.get(name, '0')}/{hard.get(name, '0')}")
    return [_meta(q).get("name"), age(_meta(q).get("creationTimestamp"), now), ", ".join(request), ", ".join(limit)]


def _apiservice_row(a: Obj, now: dt.datetime) -> list[Any]:
    """kube-aggregator's columns: the backing service (or Local) and the Available condition."""
    spec = a.get("spec") or {}
    svc = spec.get("service") if isinstance(spec.get("service"), dict) else None
    service = f"{svc.get('namespace', '')}/{svc.get('name', '')}" if svc else "Local"
    cond = next((c for c in (a.get("status") or {}).get("conditions") or []
                 if isinstance(c, dict) and c.get("type") == "Available"), None)
    if cond is None:
        available = "Unknown"
    elif cond.get("status") == "True":
        available = "True"
    else:
        available = f"{cond.get('status')} ({cond.get('reason')})"
    return [_meta(a).get("name"), service, available, age(_meta(a).get("creationTimestamp"), now)]


def _volumeattachment_row(v: Obj, now: dt.datetime) -> list[Any]:
    spec = v.get("spec") or {}
    pv = (spec.get("source") or {}).get("persistentVolumeName") or ""
    return [_meta(v).get("name"), spec.get("attacher", ""), pv, spec.get("nodeName", ""),
            bool((v.get("status") or {}).get("attached")), age(_meta(v).get("creationTimestamp"), now)]


def _csistoragecapacity_row(c: Obj, now: dt.datetime) -> list[Any]:
    capacity = c.get("capacity")
    return [_meta(c).get("name"), c.get("storageClassName", ""), "<unset>" if capacity is None else str(capacity),
            age(_meta(c).get("creationTimestamp"), now)]


def _flow_schema_row(f: Obj, now: dt.datetime) -> list[Any]:
    """upstream's printFlowSchema: MISSINGPL is the Dangling condition's status ("?" before it is set)."""
    spec = f.get("spec") or {}
    method = spec.get("distinguisherMethod")
    missing = next((c.get("status") for c in (f.get("status") or {}).get("conditions") or []
                    if isinstance(c, dict) and c.get("type") == "Dangling"), "?")
    return [_meta(f).get("name"), (spec.get("priorityLevelConfiguration") or {}).get("name", ""),
            spec.get("matchingPrecedence", 0), method.get("type", "") if isinstance(method, dict) else "<none>",
            age(_meta(f).get("creationTimestamp"), now), missing]


def _flow_schema_order(f: Obj) -> tuple[int, str]:
    """Tables list FlowSchemas in matching order (upstream's printFlowSchemaList sorts them)."""
    return (f.get("spec") or {}).get("matchingPrecedence", 0), _meta(f).get("name", "")


def _priority_level_row(p: Obj, now: dt.datetime) -> list[Any]:
    spec = p.get("spec") or {}
    limited = spec.get("limited")
    cells: list[Any] = ["<none>"] * 4
    if isinstance(limited, dict):
        cells[0] = limited.get("nominalConcurrencyShares")
        queuing = (limited.get("limitResponse") or {}).get("queuing")
        if isinstance(queuing, dict):
            cells[1:] = [queuing.get("queues", 0), queuing.get("handSize", 0), queuing.get("queueLengthLimit", 0)]
    return [_meta(p).get("name"), spec.get("type", ""), *cells, age(_meta(p).get("creationTimestamp"), now)]


def _cr_row(r: Obj, now: dt.datetime) -> list[Any]:
    owner = next((o for o in _meta(r).get("ownerReferences") or [] if o.get("controller")), None)
    ctl = f"{owner.get('kind', '').lower()}.{owner.get('apiVersion', '').split('/')[0]}/{owner.get('name')}" if owner else "<none>"
    return [_meta(r).get("name"), ctl, r.get("revision", 0), age(_meta(r).get("creationTimestamp"), now)]


def _ingress_hosts(rules: list[Obj]) -> str:
    """Upstream formatHosts: the first three hosts ("*" for none), then "+ N more..."."""
    hosts = [r.get("host") for r in rules if r.get("host")]
    if not hosts:
        return "*"
    shown = ",".join(hosts[:3])
    return shown + (f" + {len(hosts) - 3} more..." if len(hosts) > 3 else "")


def _load_balancer(status: Obj | None) -> str:
    lb = ((status or {}).get("loadBalancer") or {}).get("ingress") or []
    return ",".join(i.get("ip") or i.get("hostname") or "" for i in lb if i.get("ip") or i.get("hostname"))


def _ingress_row(i: Obj, now: dt.datetime) -> list[Any]:
    spec = i.get("spec") or {}
    return [_meta(i).get("name"), spec.get("ingressClassName") or "<none>", _ingress_hosts(spec.get("rules") or []),
            _load_balancer(i.get("status")), "80, 443" if spec.get("tls") else "80",
            age(_meta(i).get("creationTimestamp"), now)]


def _ingress_class_row(c: Obj, now: dt.datetime) -> list[Any]:
    spec = c.get("spec") or {}
    params = spec.get("parameters")
    shown = "<none>"
    if params:
        shown = params.get("kind", "") + (f".{params['apiGroup']}" if params.get("apiGroup") else "") + f"/{params.get('name', '')}"
    return [_meta(c).get("name"), spec.get("controller", ""), shown, age(_meta(c).get("creationTimestamp"), now)]


def _netpol_row(p: Obj, now: dt.datetime) -> list[Any]:
    return [_meta(p).get("name"), _selector((p.get("spec") or {}).get("podSelector")),
            age(_meta(p).get("creationTimestamp"), now)]


def _storage_class_row(c: Obj, now: dt.datetime) -> list[Any]:
    name = _meta(c).get("name", "") + (" (default)" if is_default_class(c) else "")
    return [name, c.get("provisioner", ""), c.get("reclaimPolicy", "Delete"), c.get("volumeBindingMode", "Immediate"),
            bool(c.get("allowVolumeExpansion")), age(_meta(c).get("creationTimestamp"), now)]


_ACCESS_MODES = {"ReadWriteOnce": "RWO", "ReadOnlyMany": "ROX", "ReadWriteMany": "RWX", "ReadWriteOncePod": "RWOP"}


def _access_modes(modes: Any) -> str:
    """upstream GetAccessModesAsString: the short names, each once, in a fixed order."""
    have = set(modes or [])
    return ",".join(short for mode, short in _ACCESS_MODES.items() if mode in have)


def _pv_row(v: Obj, now: dt.datetime) -> list[Any]:
    spec, status = v.get("spec") or {}, v.get("status") or {}
    phase = "Terminating" if _meta(v).get("deletionTimestamp") else status.get("phase", "")
    ref = spec.get("claimRef") or {}
    claim = f"{ref.get('namespace', '')}/{ref.get('name', '')}" if ref else ""
    storage = (spec.get("capacity") or {}).get("storage")
    return [_meta(v).get("name"), _quantity_text(storage) if storage is not None else "",
            _access_modes(spec.get("accessModes")), spec.get("persistentVolumeReclaimPolicy", ""),
            phase, claim, storage_class_name(v), spec.get("volumeAttributesClassName") or "<unset>",
            status.get("reason", ""), age(_meta(v).get("creationTimestamp"), now), spec.get("volumeMode") or "<unset>"]


def _pvc_row(c: Obj, now: dt.datetime) -> list[Any]:
    spec, status = c.get("spec") or {}, c.get("status") or {}
    phase = "Terminating" if _meta(c).get("deletionTimestamp") else status.get("phase", "")
    storage, modes = "", ""
    if spec.get("volumeName"):
        modes = _access_modes(status.get("accessModes"))
        q = (status.get("capacity") or {}).get("storage")
        storage = _quantity_text(q) if q is not None else ""
    return [_meta(c).get("name"), phase, spec.get("volumeName", ""), storage, modes, storage_class_name(c),
            spec.get("volumeAttributesClassName") or "<unset>", age(_meta(c).get("creationTimestamp"), now),
            spec.get("volumeMode") or "<unset>"]


def _quantity_text(q: Any) -> str:
    """resource.Quantity's String(): canonical, "<nil>" for a missing pointer."""
    from apimachinery.quantity import QuantityError, format_quantity

    if q is None:
        return "<nil>"
    try:
        return format_quantity(q)
    except (QuantityError, TypeError, ValueError):
        return str(q)


_HPA_SOURCES = {"External": "external", "Object": "object", "Pods": "pods", "Resource": "resource",
                "ContainerResource": "containerResource"}


def _hpa_metric(typ: str, source: Obj, status: Obj | None) -> str:
    """One metric of upstream's formatHPAMetrics: "current/target" (the current is `<unknown>` until the
    autoscaler reports it)."""
    target = source.get("target") or {}
    current = (status or {}).get("current") or {}
    if typ in ("Resource", "ContainerResource"):
        name = source.get("name", "")
        if target.get("averageValue") is not None:
            now = "<unknown>" if status is None else _quantity_text(current.get("averageValue"))
            return f"{name}: {now}/{_quantity_text(target['averageValue'])}"
        now = "<unknown>" if current.get("averageUtilization") is None else f"{current['averageUtilization']}%"
        goal = "<auto>" if target.get("averageUtilization") is None else f"{target['averageUtilization']}%"
        return f"{name}: {now}/{goal}"
    if typ == "Pods":
        now = "<unknown>" if status is None else _quantity_text(current.get("averageValue"))
        return f"{now}/{_quantity_text(target.get('averageValue'))}"
    if target.get("averageValue") is not None:  # Object and External per-pod targets
        now = "<unknown>" if current.get("averageValue") is None else _quantity_text(current["averageValue"])
        return f"{now}/{_quantity_text(target['averageValue'])} (avg)"
    now = "<unknown>" if status is None else _quantity_text(current.get("value"))
    return f"{now}/{_quantity_text(target.get('value'))}"


def hpa_targets(specs: list[Obj], statuses: list[Obj]) -> str:
    """The TARGETS column (upstream formatHPAMetrics): the first two metrics, then "+ N more..."."""
    if not specs:
        return "<none>"
    shown = []
    for i, m in enumerate(specs):
        field = _HPA_SOURCES.get(m.get("type") or "")
        if field is None:
            shown.append("<unknown type>")
            continue
        status = (statuses[i] or {}).get(field) if i < len(statuses) else None
        shown.append(_hpa_metric(m["type"], m.get(field) or {}, status))
    text = ", ".join(shown[:2])
    return f"{text} + {len(shown) - 2} more..." if len(shown) > 2 else text


def _hpa_row(h: Obj, now: dt.datetime) -> list[Any]:
    if h.get("apiVersion") == "autoscaling/v1":  # printed from the stored (v2) form, as upstream's internal one
        from apiserver.registry.autoscaling import from_v1

        h = {**from_v1(h), "metadata": _meta(h)}
    spec, status = h.get("spec") or {}, h.get("status") or {}
    ref = spec.get("scaleTargetRef") or {}
    min_pods = "<unset>" if spec.get("minReplicas") is None else str(spec["minReplicas"])
    return [_meta(h).get("name"), f"{ref.get('kind', '')}/{ref.get('name', '')}",
            hpa_targets(spec.get("metrics") or [], status.get("currentMetrics") or []), min_pods,
            spec.get("maxReplicas", 0), status.get("currentReplicas", 0), age(_meta(h).get("creationTimestamp"), now)]


def _created_row(o: Obj, now: dt.datetime) -> list[Any]:
    return [_meta(o).get("name"), _meta(o).get("creationTimestamp")]


# autoscaling/v2 HorizontalPodAutoscalerSpec/Status SwaggerDoc(): the HPA columns' descriptions
_HPA_DOCS = {
    "scaleTargetRef": "scaleTargetRef points to the target resource to scale, and is used to the pods for which "
                      "metrics should be collected, as well as to actually change the replica count.",
    "metrics": "metrics contains the specifications for which to use to calculate the desired replica count (the "
               "maximum replica count across all metrics will be used).  The desired replica count is calculated "
               "multiplying the ratio between the target value and the current value by the current number of "
               "pods.  Ergo, metrics used must decrease as the pod count is increased, and vice-versa.  See the "
               "individual metric source types for more information about how each type of metric must respond. "
               "If not set, the default metric will be set to 80% average CPU utilization.",
    "minReplicas": "minReplicas is the lower limit for the number of replicas to which the autoscaler can scale "
                   "down.  It defaults to 1 pod.  minReplicas is allowed to be 0 if the alpha feature gate "
                   "HPAScaleToZero is enabled and at least one Object or External metric is configured.  Scaling "
                   "is active as long as at least one metric value is available.",
    "maxReplicas": "maxReplicas is the upper limit for the number of replicas to which the autoscaler can scale "
                   "up. It cannot be less that minReplicas.",
    "currentReplicas": "currentReplicas is current number of replicas of pods managed by this autoscaler, as last "
                       "seen by the autoscaler.",
}

#: upstream's column descriptions (the v1 types' field docs)
_FLOWCONTROL_DOCS = {
    "priorityLevel": "`name` is the name of the priority level configuration being referenced Required.",
    "matchingPrecedence": "`matchingPrecedence` is used to choose among the FlowSchemas that match a given request. "
                          "The chosen FlowSchema is among those with the numerically lowest (which we take to be "
                          "logically highest) MatchingPrecedence.  Each MatchingPrecedence value must be ranged in "
                          "[1,10000]. Note that if the precedence is not specified, it will be set to 1000 as "
                          "default.",
    "distinguisherMethod": "`distinguisherMethod` defines how to compute the flow distinguisher for requests that "
                           "match this schema. `nil` specifies that the distinguisher is disabled and thus will "
                           "always be the empty string.",
    "type": "`type` indicates whether this priority level is subject to limitation on request execution.  A value "
            "of `\"Exempt\"` means that requests of this priority level are not subject to a limit (and thus are "
            "never queued) and do not detract from the capacity made available to other priority levels.  A value "
            "of `\"Limited\"` means that (a) requests of this priority level _are_ subject to limits and (b) some "
            "of the server's limited capacity is made available exclusively to this priority level. Required.",
    "nominalConcurrencyShares": "`nominalConcurrencyShares` (NCS) contributes to the computation of the "
                                "NominalConcurrencyLimit (NominalCL) of this level. This is the number of execution "
                                "seats available at this priority level. This is used both for requests dispatched "
                                "from this priority level as well as requests dispatched from other priority levels "
                                "borrowing seats from this level. The server's concurrency limit (ServerCL) is "
                                "divided among the Limited priority levels in proportion to their NCS values:\n\n"
                                "NominalCL(i)  = ceil( ServerCL * NCS(i) / sum_ncs ) sum_ncs = sum[priority level k] "
                                "NCS(k)\n\nBigger numbers mean a larger nominal concurrency limit, at the expense of "
                                "every other priority level.\n\nIf not specified, this field defaults to a value "
                                "of 30.\n\nSetting this field to zero supports the construction of a \"jail\" for "
                                "this priority level that is used to hold some request(s)",
    "queues": "`queues` is the number of queues for this priority level. The queues exist independently at each "
              "apiserver. The value must be positive.  Setting it to 1 effectively precludes shufflesharding and "
              "thus makes the distinguisher method of associated flow schemas irrelevant.  This field has a default "
              "value of 64.",
    "handSize": "`handSize` is a small positive number that configures the shuffle sharding of requests into "
                "queues.  When enqueuing a request at this priority level the request's flow identifier (a string "
                "pair) is hashed and the hash value is used to shuffle the list of queues and deal a hand of the "
                "size specified here.  The request is put into one of the shortest queues in that hand. `handSize` "
                "must be no larger than `queues`, and should be significantly smaller (so that a few heavy flows do "
                "not saturate most of the queues).  See the user-facing documentation for more extensive guidance "
                "on setting this field.  This field has a default value of 8.",
    "queueLengthLimit": "`queueLengthLimit` is the maximum number of requests allowed to be waiting in a given "
                        "queue of this priority level at a time; excess requests are rejected.  This value must be "
                        "positive.  If not specified, it will be defaulted to 50.",
}

NAME = ("Name", "string", "name", 0)
AGE = ("Age", "string", "", 0)
CREATED = [NAME, ("Created At", "date", "", 0)]
WIDE_WORKLOAD = [("Containers", "string", "", 1), ("Images", "string", "", 1), ("Selector", "string", "", 1)]

PRINTERS: dict[str, tuple[list[Column], Callable[[Obj, dt.datetime], list[Any]]]] = {
    "pods": ([NAME, ("Ready", "string", "", 0), ("Status", "string", "", 0), ("Restarts", "string", "", 0), AGE,
              ("IP", "string", "", 1), ("Node", "string", "", 1), ("Nominated Node", "string", "", 1),
              ("Readiness Gates", "string", "", 1)], _pod_row),
    "nodes": ([NAME, ("Status", "string", "", 0), ("Roles", "string", "", 0), AGE, ("Version", "string", "", 0),
               ("Internal-IP", "string", "", 1), ("External-IP", "string", "", 1), ("OS-Image", "string", "", 1),
               ("Kernel-Version", "string", "", 1), ("Container-Runtime", "string", "", 1)], _node_row),
    "deployments": ([NAME, ("Ready", "string", "", 0), ("Up-to-date", "integer", "", 0), ("Available", "integer", "", 0),
                     AGE, *WIDE_WORKLOAD], _deploy_row),
    "replicasets": ([NAME, ("Desired", "integer", "", 0), ("Current", "integer", "", 0), ("Ready", "integer", "", 0),
                     AGE, *WIDE_WORKLOAD], _rs_row),
    "replicationcontrollers": ([NAME, ("Desired", "integer", "", 0), ("Current", "integer", "", 0),
                                ("Ready", "integer", "", 0), AGE, *WIDE_WORKLOAD], _rc_row),
    "podtemplates": ([NAME, ("Containers", "string", "", 0), ("Images", "string", "", 0), ("Pod Labels", "string", "", 0)],
                     _podtemplate_row),
    "daemonsets": ([NAME, ("Desired", "integer", "", 0), ("Current", "integer", "", 0), ("Ready", "integer", "", 0),
                    ("Up-to-date", "integer", "", 0), ("Available", "integer", "", 0), ("Node Selector", "string", "", 0),
                    AGE, *WIDE_WORKLOAD], _ds_row),
    "statefulsets": ([NAME, ("Ready", "string", "", 0), AGE, ("Containers", "string", "", 1), ("Images", "string", "", 1)],
                     _sts_row),
    "jobs": ([NAME, ("Status", "string", "", 0), ("Completions", "string", "", 0), ("Duration", "string", "", 0), AGE,
              *WIDE_WORKLOAD], _job_row),
    "cronjobs": ([NAME, ("Schedule", "string", "", 0), ("Timezone", "string", "", 0), ("Suspend", "boolean", "", 0),
                  ("Active", "integer", "", 0), ("Last Schedule", "string", "", 0), AGE, *WIDE_WORKLOAD], _cronjob_row),
    "services": ([NAME, ("Type", "string", "", 0), ("Cluster-IP", "string", "", 0), ("External-IP", "string", "", 0),
                  ("Port(s)", "string", "", 0), AGE, ("Selector", "string", "", 1)], _svc_row),
    "endpoints": ([NAME, ("Endpoints", "string", "", 0), AGE], _ep_row),
    "endpointslices": ([NAME, ("AddressType", "string", "", 0), ("Ports", "string", "", 0), ("Endpoints", "string", "", 0),
                        AGE], _eps_row),
    "configmaps": ([NAME, ("Data", "integer", "", 0), AGE], _named_count("data")),
    "secrets": ([NAME, ("Type", "string", "", 0), ("Data", "integer", "", 0), AGE], _secret_row),
    "serviceaccounts": ([NAME, ("Secrets", "integer", "", 0), AGE], _named_count("secrets")),
    "namespaces": ([NAME, ("Status", "string", "", 0), AGE], _ns_row),
    "events": ([("Last Seen", "string", "", 0), ("Type", "string", "", 0), ("Reason", "string", "", 0),
                ("Object", "string", "", 0), ("Subobject", "string", "", 1), ("Source", "string", "", 1),
                ("Message", "string", "", 0), ("First Seen", "string", "", 1), ("Count", "string", "", 1),
                ("Name", "string", "", 1)], _event_row),
    "leases": ([NAME, ("Holder", "string", "", 0), AGE], _lease_row),
    "roles": (CREATED, _created_row),
    "clusterroles": (CREATED, _created_row),
    "rolebindings": ([NAME, ("Role", "string", "", 0), AGE, ("Users", "string", "", 1), ("Groups", "string", "", 1),
                      ("ServiceAccounts", "string", "", 1)], _rb_row),
    "clusterrolebindings": ([NAME, ("Role", "string", "", 0), AGE, ("Users", "string", "", 1), ("Groups", "string", "", 1),
                             ("ServiceAccounts", "string", "", 1)], _rb_row),
    "poddisruptionbudgets": ([NAME, ("Min Available", "string", "", 0), ("Max Unavailable", "string", "", 0),
                              ("Allowed Disruptions", "integer", "", 0), AGE], _pdb_row),
    "priorityclasses": ([NAME, ("Value", "integer", "", 0), ("Global-Default", "boolean", "", 0), AGE,
                         ("PreemptionPolicy", "string", "", 1)], _pc_row),
    "runtimeclasses": ([NAME, ("Handler", "string", "", 0), AGE], _runtimeclass_row),
    "csidrivers": ([NAME, ("AttachRequired", "boolean", "", 0), ("PodInfoOnMount", "boolean", "", 0),
                    ("StorageCapacity", "boolean", "", 0), ("TokenRequests", "string", "", 0),
                    ("RequiresRepublish", "boolean", "", 0), ("Modes", "string", "", 0), AGE], _csidriver_row),
    "csinodes": ([NAME, ("Drivers", "integer", "", 0), AGE], _csinode_row),
    "volumeattributesclasses": ([NAME, ("DriverName", "string", "", 0), AGE],
                                lambda v, now: [_meta(v).get("name"), v.get("driverName"),
                                                age(_meta(v).get("creationTimestamp"), now)]),
    "resourcequotas": ([NAME, AGE,
                        ("Request", "string", "", 0,
                         "Request represents a minimum amount of cpu/memory that a container may consume."),
                        ("Limit", "string", "", 0, "Limits control the maximum amount of cpu/memory that a container "
                                                   "may use independent of contention on the node.")],
                       _resourcequota_row),
    "apiservices": ([NAME, ("Service", "string", "", 0), ("Available", "string", "", 0), AGE], _apiservice_row),
    "volumeattachments": ([NAME, ("Attacher", "string", "", 0), ("PV", "string", "", 0), ("Node", "string", "", 0),
                           ("Attached", "boolean", "", 0), AGE], _volumeattachment_row),
    "csistoragecapacities": ([NAME, ("StorageClassName", "string", "", 0), ("Capacity", "string", "", 0), AGE],
                             _csistoragecapacity_row),
    "validatingadmissionpolicies": ([NAME, ("Validations", "integer", "", 0), ("ParamKind", "string", "", 0), AGE],
                                    _vap_row),
    "validatingadmissionpolicybindings": ([NAME, ("PolicyName", "string", "", 0), ("ParamRef", "string", "", 0), AGE],
                                          _vapb_row),
    "flowschemas": ([NAME, ("PriorityLevel", "string", "", 0, _FLOWCONTROL_DOCS["priorityLevel"]),
                     ("MatchingPrecedence", "string", "", 0, _FLOWCONTROL_DOCS["matchingPrecedence"]),
                     ("DistinguisherMethod", "string", "", 0, _FLOWCONTROL_DOCS["distinguisherMethod"]), AGE,
                     ("MissingPL", "string", "", 0, "references a broken or non-existent PriorityLevelConfiguration")],
                    _flow_schema_row),
    "prioritylevelconfigurations": ([NAME, ("Type", "string", "", 0, _FLOWCONTROL_DOCS["type"]),
                                     ("NominalConcurrencyShares", "string", "", 0,
                                      _FLOWCONTROL_DOCS["nominalConcurrencyShares"]),
                                     ("Queues", "string", "", 0, _FLOWCONTROL_DOCS["queues"]),
                                     ("HandSize", "string", "", 0, _FLOWCONTROL_DOCS["handSize"]),
                                     ("QueueLengthLimit", "string", "", 0, _FLOWCONTROL_DOCS["queueLengthLimit"]), AGE],
                                    _priority_level_row),
    "ingresses": ([NAME, ("Class", "string", "", 0), ("Hosts", "string", "", 0), ("Address", "string", "", 0),
                   ("Ports", "string", "", 0), AGE], _ingress_row),
    "ingressclasses": ([NAME, ("Controller", "string", "", 0), ("Parameters", "string", "", 0), AGE], _ingress_class_row),
    "networkpolicies": ([NAME, ("Pod-Selector", "string", "", 0), AGE], _netpol_row),
    "persistentvolumes": ([NAME, ("Capacity", "string", "", 0), ("Access Modes", "string", "", 0),
                           ("Reclaim Policy", "string", "", 0), ("Status", "string", "", 0), ("Claim", "string", "", 0),
                           ("StorageClass", "string", "", 0), ("VolumeAttributesClass", "string", "", 0),
                           ("Reason", "string", "", 0), AGE, ("VolumeMode", "string", "", 1)], _pv_row),
    "persistentvolumeclaims": ([NAME, ("Status", "string", "", 0), ("Volume", "string", "", 0),
                                ("Capacity", "string", "", 0), ("Access Modes", "string", "", 0),
                                ("StorageClass", "string", "", 0), ("VolumeAttributesClass", "string", "", 0), AGE,
                                ("VolumeMode", "string", "", 1)], _pvc_row),
    "storageclasses": ([NAME, ("Provisioner", "string", "", 0), ("ReclaimPolicy", "string", "", 0),
                        ("VolumeBindingMode", "string", "", 0), ("AllowVolumeExpansion", "string", "", 0), AGE],
                       _storage_class_row),
    "controllerrevisions": ([NAME, ("Controller", "string", "", 0), ("Revision", "integer", "", 0), AGE], _cr_row),
    # upstream declares every HPA column a string, MaxPods and Replicas (integers) included
    "horizontalpodautoscalers": ([NAME, ("Reference", "string", "", 0, _HPA_DOCS["scaleTargetRef"]),
                                  ("Targets", "string", "", 0, _HPA_DOCS["metrics"]),
                                  ("MinPods", "string", "", 0, _HPA_DOCS["minReplicas"]),
                                  ("MaxPods", "string", "", 0, _HPA_DOCS["maxReplicas"]),
                                  ("Replicas", "string", "", 0, _HPA_DOCS["currentReplicas"]), AGE], _hpa_row),
}

#: kinds whose tables list their rows in an order of their own
ORDERS: dict[str, Callable[[Obj], Any]] = {"flowschemas": _flow_schema_order}

DESCRIPTIONS = {"Name": "Name must be unique within a namespace. Is required when creating resources, although some "
                        "resources may allow a client to request the generation of an appropriate name automatically.",
                "Age": "CreationTimestamp is a timestamp representing the server time when this object was created.",
                "Created At": "CreationTimestamp is a timestamp representing the server time when this object was created."}


def partial_metadata(obj: Obj) -> Obj:
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj.get("metadata") or {}}


Printer = tuple[list[Column], Callable[[Obj, dt.datetime], list[Any]]]


def printer_for(res: Any) -> Printer | None:
    """A resource's own printer (custom resources' additionalPrinterColumns), if it has one."""
    own = getattr(res.strategy, "table_printer", None)
    return own() if own is not None else None


def table(plural: str, objects: list[Obj], include_object: str = "Metadata", resource_version: str = "",
          continue_token: str = "", now: dt.datetime | None = None, printer: Printer | None = None) -> Obj:
    """Build the Table for `objects` of resource `plural` (any kind: unknown ones get Name/Created At).

    A column is (name, type, format, priority) or, with its own description, 5 long."""
    now = now or dt.datetime.now(dt.UTC)
    columns, row_fn = printer or PRINTERS.get(plural, (CREATED, _created_row))
    order = ORDERS.get(plural) if printer is None else None
    if order is not None:
        objects = sorted(objects, key=order)
    rows = []
    for o in objects:
        row: Obj = {"cells": row_fn(o, now)}
        if include_object == "Object":
            row["object"] = o
        elif include_object != "None":
            row["object"] = partial_metadata(o)
        rows.append(row)
    meta: Obj = {"resourceVersion": resource_version} if resource_version else {}
    if continue_token:
        meta["continue"] = continue_token
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": meta,
        "columnDefinitions": [
            {"name": c[0], "type": c[1], "format": c[2],
             "description": c[4] if len(c) > 4 else DESCRIPTIONS.get(c[0], ""), "priority": c[3]}
            for c in columns
        ],
        "rows": rows,
    }


class OutputForm:
    """What a client asked the object to be turned into: a Table or PartialObjectMetadata."""

    __slots__ = ("as_kind", "content_type", "include_object", "version")

    def __init__(self, as_kind: str, version: str, include_object: str) -> None:
        self.as_kind = as_kind  # "Table" | "PartialObjectMetadata" | "PartialObjectMetadataList"
        self.version = version  # "v1" | "v1beta1"
        self.include_object = include_object
        self.content_type = f"application/json;as={as_kind};v={version};g=meta.k8s.io".encode()

    @property
    def api_version(self) -> str:
        return f"meta.k8s.io/{self.version}"

    def one(self, res: Any, obj: Obj, rv: str = "", headers: bool = True) -> Obj:
        if self.as_kind == "Table":
            t = table(res.plural, [obj], self.include_object, rv, printer=printer_for(res))
            t["apiVersion"] = self.api_version
            if not headers:
                t["columnDefinitions"] = []  # only the first watch event carries them (upstream)
            return t
        return {"kind": "PartialObjectMetadata", "apiVersion": self.api_version, "metadata": obj.get("metadata") or {}}

    def many(self, res: Any, objs: list[Obj], rv: str, cont: str) -> Obj:
        if self.as_kind == "Table":
            t = table(res.plural, objs, self.include_object, rv, cont, printer=printer_for(res))
            t["apiVersion"] = self.api_version
            return t
        meta: Obj = {"resourceVersion": rv}
        if cont:
            meta["continue"] = cont
        return {"kind": "PartialObjectMetadataList", "apiVersion": self.api_version, "metadata": meta,
                "items": [{"kind": "PartialObjectMetadata", "apiVersion": self.api_version,
                           "metadata": o.get("metadata") or {}} for o in objs]}


def output_form(accept: str, include_object: str = "") -> OutputForm | None:
    """The first acceptable media type decides; a plain JSON (or any other) type → None."""
    for part in accept.split(","):
        params = dict(p.split("=", 1) for p in part.replace(" ", "").split(";")[1:] if "=" in p)
        as_kind = params.get("as")
        if as_kind in ("Table", "PartialObjectMetadata", "PartialObjectMetadataList") and params.get("g") == "meta.k8s.io" \
                and params.get("v") in ("v1", "v1beta1") and part.strip().startswith("application/json"):
            return OutputForm(as_kind, params["v"], include_object or "Metadata")
        if part.strip():
            return None
    return None


def output_form_of(req: Any) -> OutputForm | None:
    """Table / PartialObjectMetadata when the request's Accept header asks for them."""
    accept = req.header(b"accept")
    if "as=" not in accept:
        return None
    include = req.query.get("includeObject", "")
    if include not in ("", "None", "Metadata", "Object"):
        raise errors.bad_request(f'unrecognized includeObject value: "{include}"')
    return output_form(accept, include)


def wants_table(accept: str) -> bool:
    form = output_form(accept)
    return form is not None and form.as_kind == "Table"
