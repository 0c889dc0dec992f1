"""`describe` text per kind, laid out as kubectl's describers lay it out (k8s.io/kubectl/pkg/describe).

A describer writes "Label:\\tvalue" lines at indentation levels (two spaces each) into a
``Writer``; the text is aligned by the tabwriter (minwidth 0, padding 2) in the blocks kubectl
flushes separately (the events table is its own block). Kinds without a describer here get
kubectl's generic one: every field of the object, recursively, with "smart" labels.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from apimachinery.duration import human_duration
from apimachinery.meta import parse_time
from minictl.api import Api, ResourceType
from minictl.printing import tabwrite

Obj = dict[str, Any]
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
MAX_ANNOTATION_LEN = 140


class Writer:
    """kubectl's PrefixWriter over a tabwriter that can be flushed in blocks."""

    def __init__(self) -> None:
        self.blocks: list[str] = [""]

    def write(self, level: int, text: str) -> None:
        self.blocks[-1] += "  " * level + text

    def line(self, text: str = "") -> None:
        self.blocks[-1] += text + "\n"

    def flush(self) -> None:
        self.blocks.append("")

    def render(self) -> str:
        out = []
        for block in self.blocks:
            if not block:
                continue
            lines = block.split("\n")
            trailing = lines.pop() if lines else ""
            text = tabwrite(lines, minwidth=0, padding=2)
            out.append(text + trailing)
        return "".join(out)


def _meta(o: Obj) -> Obj:
    return o.get("metadata") or {}


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def since(ts: str | None) -> str:
    """translateTimestampSince."""
    if not ts:
        return "<unknown>"
    try:
        return human_duration((_now() - parse_time(ts)).total_seconds())
    except ValueError:
        return "<unknown>"


def rfc1123z(ts: str | None) -> str:
    if not ts:
        return ""
    try:
        return parse_time(ts).astimezone().strftime("%a, %d %b %Y %H:%M:%S %z")
    except ValueError:
        return ts


def _go_value(v: Any) -> str:
    if v is None:
        return "<nil>"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if isinstance(v, list):
        return "[" + " ".join(_go_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "map[" + " ".join(f"{k}:{_go_value(v[k])}" for k in sorted(v)) + "]"
    return str(v)


def print_labels(w: Writer, title: str, labels: dict[str, str] | None, initial_indent: str = "",
                 inner_indent: str = "\t") -> None:
    w.write(0, f"{initial_indent}{title}:{inner_indent}")
    keys = sorted(labels or {})
    if not keys:
        w.line("<none>")
        return
    for i, key in enumerate(keys):
        if i:
            w.write(0, initial_indent + inner_indent)
        w.write(0, f"{key}={labels[key]}\n")  # type: ignore[index]


def print_annotations(w: Writer, title: str, annotations: dict[str, str] | None) -> None:
    w.write(0, f"{title}:\t")
    keys = sorted(k for k in (annotations or {}) if k != LAST_APPLIED)
    if not keys:
        w.line("<none>")
        return
    for i, key in enumerate(keys):
        if i:
            w.write(0, "\t")
        value = annotations[key].removesuffix("\n")  # type: ignore[index]
        if len(value) + len(key) + 2 > MAX_ANNOTATION_LEN or "\n" in value:
            w.write(0, f"{key}:\n")
            for part in value.split("\n"):
                short = part if len(part) <= MAX_ANNOTATION_LEN - 2 else part[:MAX_ANNOTATION_LEN - 2] + "..."
                w.write(0, f"\t  {short}\n")
        else:
            w.write(0, f"{key}: {value}\n")


def describe_events(w: Writer, events: list[Obj] | None) -> None:
    if events is None:
        return
    if not events:
        w.write(0, "Events:\t<none>\n")
        return
    w.flush()
    events = sorted(events, key=lambda e: e.get("lastTimestamp") or "")
    w.write(0, "Events:\n  Type\tReason\tAge\tFrom\tMessage\n")
    w.write(1, "----\t------\t----\t----\t-------\n")
    for e in events:
        first = since(e.get("eventTime")) if e.get("eventTime") else since(e.get("firstTimestamp"))
        series = e.get("series")
        if series:
            interval = f"{since(series.get('lastObservedTime'))} (x{series.get('count', 0)} over {first})"
        elif (e.get("count") or 0) > 1:
            interval = f"{since(e.get('lastTimestamp'))} (x{e['count']} over {first})"
        else:
            interval = first
        source = (e.get("source") or {}).get("component") or e.get("reportingComponent") or ""
        w.write(1, f"{e.get('type', '')}\t{e.get('reason', '')}\t{interval}\t{source}\t"
                   f"{(e.get('message') or '').strip()}\n")


def search_events(api: Api, obj: Obj, kind: str | None) -> list[Obj]:
    meta = _meta(obj)
    fields = [f"involvedObject.name={meta.get('name', '')}"]
    ns = meta.get("namespace") or ""
    if ns:
        fields.append(f"involvedObject.namespace={ns}")
    if kind:
        fields.append(f"involvedObject.kind={kind}")
    if meta.get("uid"):
        fields.append(f"involvedObject.uid={meta['uid']}")
    path = f"/api/v1/namespaces/{ns}/events" if ns else "/api/v1/events"
    try:
        return api.list_all(path, {"fieldSelector": ",".join(fields)}).get("items") or []
    except Exception:  # events are best effort, as in kubectl
        return []


# --- generic ----------------------------------------------------------------------------------


def _camel_split(s: str) -> list[str]:
    """github.com/fatih/camelcase Split: runs of lower, upper, digit and other characters."""
    runs: list[list[str]] = []
    last = None
    for ch in s:
        cls = "l" if ch.islower() else "u" if ch.isupper() else "d" if ch.isdigit() else "o"
        if cls == last:
            runs[-1].append(ch)
        else:
            runs.append([ch])
        last = cls
    # an upper run followed by a lower run gives its last letter to the lower run
    for i in range(len(runs) - 1):
        if runs[i] and runs[i][0].isupper() and runs[i + 1][0].islower():
            runs[i + 1].insert(0, runs[i].pop())
    return ["".join(r) for r in runs if r]


def smart_label(field: str) -> str:
    if any(not (ch.isalpha() or ch == "-") for ch in field):
        return field
    parts = _camel_split(field)
    merged: list[str] = []
    i = 0
    while i < len(parts):
        part = parts[i]
        if i < len(parts) - 1:
            nxt = parts[i + 1]
            if len(part) >= 2 and all(not c.isalpha() or c.isupper() for c in part) and nxt[:1].isupper():
                merged.append(part + nxt)
                i += 2
                continue
        merged.append(part)
        i += 1
    out = []
    for part in merged:
        if part == "_":
            continue
        if part.upper() in ("API", "URL", "UID", "GUID"):
            part = part.upper()
        elif part.lower() == part:
            part = part[:1].upper() + part[1:]
        out.append(part)
    return " ".join(out)


_GENERIC_SKIP = {".metadata.managedFields", ".metadata.name", ".metadata.namespace", ".metadata.labels",
                 ".metadata.annotations"}


def _unstructured(w: Writer, level: int, content: Obj, prefix: str) -> None:
    for field in sorted(content):
        value = content[field]
        expr = f"{prefix}.{field}"
        if expr in _GENERIC_SKIP:
            continue
        if isinstance(value, dict):
            w.write(level, f"{smart_label(field)}:\n")
            _unstructured(w, level + 1, value, expr)
        elif isinstance(value, list):
            w.write(level, f"{smart_label(field)}:\n")
            for child in value:
                if isinstance(child, dict):
                    _unstructured(w, level + 1, child, expr)
                else:
                    w.write(level + 1, f"{_go_value(child)}\n")
        else:
            w.write(level, f"{smart_label(field)}:\t{_go_value(value)}\n")


def describe_generic(obj: Obj, events: list[Obj] | None, w: Writer, _api: Api) -> None:
    meta = _meta(obj)
    w.write(0, f"Name:\t{meta.get('name', '')}\n")
    w.write(0, f"Namespace:\t{meta.get('namespace', '')}\n")
    print_labels(w, "Labels", meta.get("labels"))
    print_annotations(w, "Annotations", meta.get("annotations"))
    _unstructured(w, 0, obj, "")
    describe_events(w, events)


# --- core kinds ---------------------------------------------------------------------------------


def _header(w: Writer, obj: Obj, namespace: bool = True) -> None:
    meta = _meta(obj)
    w.write(0, f"Name:\t{meta.get('name', '')}\n")
    if namespace:
        w.write(0, f"Namespace:\t{meta.get('namespace', '')}\n")


def describe_configmap(obj: Obj, events: list[Obj] | None, w: Writer, _api: Api) -> None:
    _header(w, obj)
    print_labels(w, "Labels", _meta(obj).get("labels"))
    print_annotations(w, "Annotations", _meta(obj).get("annotations"))
    w.write(0, "\nData\n====\n")
    for k in sorted(obj.get("data") or {}):
        w.write(0, f"{k}:\n----\n")
        w.write(0, f"{obj['data'][k]}\n")
        w.write(0, "\n")
    w.write(0, "\nBinaryData\n====\n")
    for k in sorted(obj.get("binaryData") or {}):
        import base64

        w.write(0, f"{k}: {len(base64.b64decode(obj['binaryData'][k]))} bytes\n")
    w.write(0, "\n")
    describe_events(w, events)


def describe_secret(obj: Obj, events: list[Obj] | None, w: Writer, _api: Api) -> None:
    import base64

    meta = _meta(obj)
    _header(w, obj)
    print_labels(w, "Labels", meta.get("labels"))
    print_annotations(w, "Annotations", meta.get("annotations"))
    w.write(0, f"\nType:\t{obj.get('type', '')}\n")
    w.write(0, "\nData\n====\n")
    for k in sorted(obj.get("data") or {}):
        w.write(0, f"{k}:\t{len(base64.b64decode(obj['data'][k]))} bytes\n")


def describe_namespace(obj: Obj, events: list[Obj] | None, w: Writer, api: Api) -> None:
    meta = _meta(obj)
    w.write(0, f"Name:\t{meta.get('name', '')}\n")
    print_labels(w, "Labels", meta.get("labels"))
    print_annotations(w, "Annotations", meta.get("annotations"))
    w.write(0, f"Status:\t{(obj.get('status') or {}).get('phase', '')}\n")
    name = meta.get("name", "")
    try:
        quotas = api.list_all(f"/api/v1/namespaces/{name}/resourcequotas").get("items") or []
        limits = api.list_all(f"/api/v1/namespaces/{name}/limitranges").get("items") or []
    except Exception:
        quotas, limits = [], []
    w.write(0, "\n" if not quotas else "")
    if not quotas:
        w.write(0, "No resource quota.\n")
    for q in quotas:
        w.write(0, "\nResource Quotas\n")
        w.write(1, f"Name:\t{_meta(q).get('name', '')}\n")
        w.write(1, "Resource\tUsed\tHard\n")
        w.write(1, "--------\t---\t---\n")
        hard = (q.get("status") or {}).get("hard") or {}
        used = (q.get("status") or {}).get("used") or {}
        for r in sorted(hard):
            w.write(1, f"{r}\t{used.get(r, '0')}\t{hard[r]}\n")
    if not limits:
        w.write(0, "\nNo LimitRange resource.\n")
    for lr in limits:
        w.write(0, "\nResource Limits\n")
        w.write(1, "Type\tResource\tMin\tMax\tDefault Request\tDefault Limit\tMax Limit/Request Ratio\n")
        w.write(1, "----\t--------\t---\t---\t---------------\t-------------\t-----------------------\n")
        for item in (lr.get("spec") or {}).get("limits") or []:
            keys = set()
            for f in ("min", "max", "default", "defaultRequest", "maxLimitRequestRatio"):
                keys |= set(item.get(f) or {})
            for r in sorted(keys):
                vals = [str((item.get(f) or {}).get(r, "-")) for f in
                        ("min", "max", "defaultRequest", "default", "maxLimitRequestRatio")]
                w.write(1, f"{item.get('type', '')}\t{r}\t" + "\t".join(vals) + "\n")


def _ports(ports: list[Obj] | None, field: str) -> str:
    out = []
    for p in ports or []:
        s = f"{p.get(field, 0)}/{p.get('protocol', 'TCP')}"
        if p.get("name"):
            s += f" ({p['name']})"
        out.append(s)
    return ", ".join(out)


def _describe_state(w: Writer, title: str, state: Obj) -> None:
    if state.get("running") is not None:
        w.write(2, f"{title}:\tRunning\n")
        w.write(3, f"Started:\t{rfc1123z(state['running'].get('startedAt'))}\n")
    elif state.get("waiting") is not None:
        w.write(2, f"{title}:\tWaiting\n")
        w.write(3, f"Reason:\t{state['waiting'].get('reason', '')}\n")
        if state["waiting"].get("message"):
            w.write(3, f"Message:\t{state['waiting']['message']}\n")
    elif state.get("terminated") is not None:
        t = state["terminated"]
        w.write(2, f"{title}:\tTerminated\n")
        w.write(3, f"Reason:\t{t.get('reason', '')}\n")
        if t.get("message"):
            w.write(3, f"Message:\t{t['message']}\n")
        w.write(3, f"Exit Code:\t{t.get('exitCode', 0)}\n")
        if t.get("signal"):
            w.write(3, f"Signal:\t{t['signal']}\n")
        w.write(3, f"Started:\t{rfc1123z(t.get('startedAt'))}\n")
        w.write(3, f"Finished:\t{rfc1123z(t.get('finishedAt'))}\n")
    else:
        w.write(2, f"{title}:\tWaiting\n")


def _describe_probe(p: Obj) -> str:
    attrs = (f"delay={p.get('initialDelaySeconds', 0)}s timeout={p.get('timeoutSeconds', 1)}s "
             f"period={p.get('periodSeconds', 10)}s #success={p.get('successThreshold', 1)} "
             f"#failure={p.get('failureThreshold', 3)}")
    if p.get("exec"):
        return f"exec {p['exec'].get('command') or []} {attrs}".replace("', '", " ").replace("['", "[").replace("']", "]")
    if p.get("httpGet"):
        h = p["httpGet"]
        scheme = (h.get("scheme") or "HTTP").lower()
        return f"http-get {scheme}://{h.get('host', '')}:{h.get('port')}{h.get('path', '')} {attrs}"
    if p.get("tcpSocket"):
        return f"tcp-socket {p['tcpSocket'].get('host', '')}:{p['tcpSocket'].get('port')} {attrs}"
    if p.get("grpc"):
        return f"grpc <pod>:{p['grpc'].get('port')} {p['grpc'].get('service', '')} {attrs}"
    return f"unknown {attrs}"


def describe_containers(w: Writer, label: str, containers: list[Obj], statuses: list[Obj] | None,
                        space: str) -> None:
    by_name = {s.get("name"): s for s in statuses or []}
    w.write(0, f"{space}{label}:{'' if containers else ' <none>'}\n")
    for c in containers:
        st = by_name.get(c.get("name"))
        w.write(1, f"{' ' if space else ''}{c.get('name')}:\n")
        if st is not None:
            w.write(2, f"Container ID:\t{st.get('containerID', '')}\n")
        w.write(2, f"Image:\t{c.get('image', '')}\n")
        if st is not None:
            w.write(2, f"Image ID:\t{st.get('imageID', '')}\n")
        ports = _ports(c.get("ports"), "containerPort")
        w.write(2, f"Ports:\t{ports}\n" if "," in ports else f"Port:\t{ports or '<none>'}\n")
        host_ports = _ports(c.get("ports"), "hostPort")
        w.write(2, f"Host Ports:\t{host_ports}\n" if "," in host_ports else f"Host Port:\t{host_ports or '<none>'}\n")
        for title, key in (("Command", "command"), ("Args", "args")):
            if c.get(key):
                w.write(2, f"{title}:\n")
                for item in c[key]:
                    for part in str(item).split("\n"):
                        w.write(3, f"{part}\n")
        if st is not None:
            _describe_state(w, "State", st.get("state") or {})
            if (st.get("lastState") or {}).get("terminated"):
                _describe_state(w, "Last State", st["lastState"])
            w.write(2, f"Ready:\t{'True' if st.get('ready') else 'False'}\n")
            w.write(2, f"Restart Count:\t{st.get('restartCount', 0)}\n")
        res = c.get("resources") or {}
        for title, key in (("Limits", "limits"), ("Requests", "requests")):
            if res.get(key):
                w.write(2, f"{title}:\n")
                for name in sorted(res[key]):
                    w.write(3, f"{name}:\t{res[key][name]}\n")
        for title, key in (("Liveness", "livenessProbe"), ("Readiness", "readinessProbe"),
                           ("Startup", "startupProbe")):
            if c.get(key):
                w.write(2, f"{title}:\t{_describe_probe(c[key])}\n")
        if c.get("envFrom"):
            w.write(2, "Environment Variables from:\n")
            for ef in c["envFrom"]:
                ref = ef.get("configMapRef") or ef.get("secretRef") or {}
                what = "ConfigMap" if ef.get("configMapRef") else "Secret"
                optional = "true" if ref.get("optional") else "false"
                prefix = f" with prefix '{ef['prefix']}'" if ef.get("prefix") else ""
                w.write(3, f"{ref.get('name', '')}\t{what}{prefix}\tOptional: {optional}\n")
        env = c.get("env") or []
        w.write(2, f"Environment:{'' if env else chr(9) + '<none>'}\n")
        for e in env:
            vf = e.get("valueFrom")
            if not vf:
                for i, part in enumerate(str(e.get("value", "")).split("\n")):
                    w.write(3, f"{e.get('name')}:\t{part}\n" if i == 0 else f"\t{part}\n")
            elif vf.get("fieldRef"):
                w.write(3, f"{e.get('name')}:\t ({vf['fieldRef'].get('apiVersion', 'v1')}:{vf['fieldRef'].get('fieldPath')})\n")
            elif vf.get("resourceFieldRef"):
                w.write(3, f"{e.get('name')}:\t ({vf['resourceFieldRef'].get('resource')})\n")
            elif vf.get("secretKeyRef"):
                r = vf["secretKeyRef"]
                w.write(3, f"{e.get('name')}:\t<set to the key '{r.get('key')}' in secret '{r.get('name')}'>\t"
                           f"Optional: {'true' if r.get('optional') else 'false'}\n")
            elif vf.get("configMapKeyRef"):
                r = vf["configMapKeyRef"]
                w.write(3, f"{e.get('name')}:\t<set to the key '{r.get('key')}' of config map '{r.get('name')}'>\t"
                           f"Optional: {'true' if r.get('optional') else 'false'}\n")
        mounts = sorted(c.get("volumeMounts") or [], key=lambda m: m.get("mountPath", ""))
        w.write(2, f"Mounts:{'' if mounts else chr(9) + '<none>'}\n")
        for m in mounts:
            flags = ["ro" if m.get("readOnly") else "rw"]
            if m.get("subPath"):
                flags.append(f'path="{m["subPath"]}"')
            w.write(3, f"{m.get('mountPath')} from {m.get('name')} ({','.join(flags)})\n")


_VOLUME_TYPES: list[tuple[str, Callable[[Obj], str]]] = [
    ("hostPath", lambda v: "Type:\tHostPath (bare host directory volume)\n"
                           f"    Path:\t{v.get('path', '')}\n    HostPathType:\t{v.get('type') or '<none>'}\n"),
    ("emptyDir", lambda v: "Type:\tEmptyDir (a temporary directory that shares a pod's lifetime)\n"
                           f"    Medium:\t{v.get('medium', '')}\n    SizeLimit:\t{v.get('sizeLimit') or '<unset>'}\n"),
    ("secret", lambda v: "Type:\tSecret (a volume populated by a Secret)\n"
                         f"    SecretName:\t{v.get('secretName', '')}\n"
                         f"    Optional:\t{'true' if v.get('optional') else 'false'}\n"),
    ("configMap", lambda v: "Type:\tConfigMap (a volume populated by a ConfigMap)\n"
                            f"    Name:\t{v.get('name', '')}\n    Optional:\t{'true' if v.get('optional') else 'false'}\n"),
    ("persistentVolumeClaim", lambda v: "Type:\tPersistentVolumeClaim (a reference to a PersistentVolumeClaim in the "
                                        "same namespace)\n"
                                        f"    ClaimName:\t{v.get('claimName', '')}\n"
                                        f"    ReadOnly:\t{'true' if v.get('readOnly') else 'false'}\n"),
    ("downwardAPI", lambda v: "Type:\tDownwardAPI (a volume populated by information about the pod)\n    Items:\n"
                              + "".join(f"      {(i.get('fieldRef') or {}).get('fieldPath') or (i.get('resourceFieldRef') or {}).get('resource', '')}"
                                        f" -> {i.get('path', '')}\n" for i in v.get("items") or [])),
]


def _projected(v: Obj) -> str:
    out = "Type:\tProjected (a volume that contains injected data from multiple sources)\n"
    for src in v.get("sources") or []:
        if src.get("secret") is not None:
            out += (f"    SecretName:\t{src['secret'].get('name', '')}\n"
                    f"    Optional:\t{'true' if src['secret'].get('optional') else 'false'}\n")
        elif src.get("downwardAPI") is not None:
            out += "    DownwardAPI:\ttrue\n"
        elif src.get("configMap") is not None:
            out += (f"    ConfigMapName:\t{src['configMap'].get('name', '')}\n"
                    f"    Optional:\t{'true' if src['configMap'].get('optional') else 'false'}\n")
        elif src.get("serviceAccountToken") is not None:
            out += f"    TokenExpirationSeconds:\t{src['serviceAccountToken'].get('expirationSeconds', 3600)}\n"
    return out


def describe_volumes(w: Writer, volumes: list[Obj] | None, space: str) -> None:
    if not volumes:
        w.write(0, f"{space}Volumes:\t<none>\n")
        return
    w.write(0, f"{space}Volumes:\n")
    for v in volumes:
        w.write(1, f"{' ' if space else ''}{v.get('name')}:\n")
        for key, fmt in [*_VOLUME_TYPES, ("projected", _projected)]:
            if v.get(key) is not None:
                w.write(2, fmt(v[key]))
                break
        else:
            w.write(1, "<unknown>\n")


def _tolerations(w: Writer, title: str, tolerations: list[Obj] | None, space: str = "") -> None:
    w.write(0, f"{space}{title}:\t")
    if not tolerations:
        w.line("<none>")
        return
    for i, t in enumerate(tolerations):
        if i:
            w.write(0, f"{space}\t")
        s = t.get("key", "")
        if t.get("value"):
            s += f"={t['value']}"
        if t.get("effect"):
            s += f":{t['effect']}"
        if t.get("operator") == "Exists" and not t.get("value"):
            s += " op=Exists"
        if t.get("tolerationSeconds") is not None:
            s += f" for {t['tolerationSeconds']}s"
        w.write(0, s + "\n")


def _qos(pod: Obj) -> str:
    status = (pod.get("status") or {}).get("qosClass")
    if status:
        return status
    requests, limits = {}, {}
    for c in (pod.get("spec") or {}).get("containers") or []:
        r = c.get("resources") or {}
        requests.update(r.get("requests") or {})
        limits.update(r.get("limits") or {})
    if not requests and not limits:
        return "BestEffort"
    return "Burstable"


def _controller(obj: Obj) -> str:
    for ref in _meta(obj).get("ownerReferences") or []:
        if ref.get("controller"):
            return f"{ref.get('kind')}/{ref.get('name')}"
    return ""


def describe_pod(pod: Obj, events: list[Obj] | None, w: Writer, _api: Api) -> None:
    meta, spec, status = _meta(pod), pod.get("spec") or {}, pod.get("status") or {}
    _header(w, pod)
    if spec.get("priority") is not None:
        w.write(0, f"Priority:\t{spec['priority']}\n")
    if spec.get("priorityClassName"):
        w.write(0, f"Priority Class Name:\t{spec['priorityClassName']}\n")
    if spec.get("runtimeClassName"):
        w.write(0, f"Runtime Class Name:\t{spec['runtimeClassName']}\n")
    if spec.get("serviceAccountName"):
        w.write(0, f"Service Account:\t{spec['serviceAccountName']}\n")
    w.write(0, f"Node:\t{spec['nodeName'] + '/' + status.get('hostIP', '')}\n" if spec.get("nodeName")
            else "Node:\t<none>\n")
    if status.get("startTime"):
        w.write(0, f"Start Time:\t{rfc1123z(status['startTime'])}\n")
    print_labels(w, "Labels", meta.get("labels"))
    print_annotations(w, "Annotations", meta.get("annotations"))
    if meta.get("deletionTimestamp") and status.get("phase") not in ("Failed", "Succeeded"):
        w.write(0, f"Status:\tTerminating (lasts {since(meta['deletionTimestamp'])})\n")
        w.write(0, f"Termination Grace Period:\t{meta.get('deletionGracePeriodSeconds', 0)}s\n")
    else:
        w.write(0, f"Status:\t{status.get('phase', '')}\n")
    if status.get("reason"):
        w.write(0, f"Reason:\t{status['reason']}\n")
    if status.get("message"):
        w.write(0, f"Message:\t{status['message']}\n")
    w.write(0, f"IP:\t{status.get('podIP', '')}\n")
    if status.get("podIPs"):
        w.write(0, "IPs:\n")
        for ip in status["podIPs"]:
            w.write(1, f"IP:\t{ip.get('ip', '')}\n")
    else:
        w.write(0, "IPs:\t<none>\n")
    if _controller(pod):
        w.write(0, f"Controlled By:\t{_controller(pod)}\n")
    if status.get("nominatedNodeName"):
        w.write(0, f"NominatedNodeName:\t{status['nominatedNodeName']}\n")
    if spec.get("initContainers"):
        describe_containers(w, "Init Containers", spec["initContainers"], status.get("initContainerStatuses"), "")
    describe_containers(w, "Containers", spec.get("containers") or [], status.get("containerStatuses"), "")
    if spec.get("readinessGates"):
        w.write(0, "Readiness Gates:\n  Type\tStatus\n")
        conds = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
        for g in spec["readinessGates"]:
            w.write(1, f"{g.get('conditionType')} \t{conds.get(g.get('conditionType'), '<none>')} \n")
    if status.get("conditions"):
        w.write(0, "Conditions:\n  Type\tStatus\n")
        for c in status["conditions"]:
            w.write(1, f"{c.get('type')} \t{c.get('status')} \n")
    describe_volumes(w, spec.get("volumes"), "")
    w.write(0, f"QoS Class:\t{_qos(pod)}\n")
    print_labels(w, "Node-Selectors", spec.get("nodeSelector"))
    _tolerations(w, "Tolerations", spec.get("tolerations"))
    describe_events(w, events)


def describe_pod_template(w: Writer, template: Obj | None) -> None:
    w.write(0, "Pod Template:\n")
    if not template:
        w.write(1, "<unset>")
        return
    meta, spec = template.get("metadata") or {}, template.get("spec") or {}
    print_labels(w, "  Labels", meta.get("labels"))
    if meta.get("annotations"):
        print_annotations(w, "  Annotations", meta["annotations"])
    if spec.get("serviceAccountName"):
        w.write(1, f"Service Account:\t{spec['serviceAccountName']}\n")
    if spec.get("initContainers"):
        describe_containers(w, "Init Containers", spec["initContainers"], None, "  ")
    describe_containers(w, "Containers", spec.get("containers") or [], None, "  ")
    describe_volumes(w, spec.get("volumes"), "  ")
    if spec.get("priorityClassName"):
        w.write(1, f"Priority Class Name:\t{spec['priorityClassName']}\n")
    print_labels(w, "  Node-Selectors", spec.get("nodeSelector"))
    _tolerations(w, "Tolerations", spec.get("tolerations"), "  ")


def format_label_selector(sel: Obj | None) -> str:
    if not sel:
        return "<none>"
    parts = [f"{k}={v}" for k, v in sorted((sel.get("matchLabels") or {}).items())]
    for e in sel.get("matchExpressions") or []:
        op, key, vals = e.get("operator"), e.get("key"), e.get("values") or []
        if op == "In":
            parts.append(f"{key} in ({','.join(vals)})")
        elif op == "NotIn":
            parts.append(f"{key} notin ({','.join(vals)})")
        elif op == "Exists":
            parts.append(key)
        elif op == "DoesNotExist":
            parts.append(f"!{key}")
    return ",".join(parts) or "<none>"


def _owned_by(api: Api, obj: Obj, rtype_path: str) -> list[Obj]:
    uid = _meta(obj).get("uid")
    items = api.list_all(rtype_path).get("items") or []
    return [i for i in items if any(r.get("uid") == uid and r.get("controller")
                                    for r in _meta(i).get("ownerReferences") or [])]


def _pod_status_counts(api: Api, obj: Obj) -> str:
    ns = _meta(obj).get("namespace", "")
    try:
        pods = _owned_by(api, obj, f"/api/v1/namespaces/{ns}/pods")
    except Exception:
        pods = []
    counts = {"Running": 0, "Pending": 0, "Succeeded": 0, "Failed": 0}
    for p in pods:
        phase = (p.get("status") or {}).get("phase", "Pending")
        if phase in counts:
            counts[phase] += 1
    return (f"{counts['Running']} Running / {counts['Pending']} Waiting / {counts['Succeeded']} Succeeded / "
            f"{counts['Failed']} Failed")


def describe_replicaset(rs: Obj, events: list[Obj] | None, w: Writer, api: Api) -> None:
    meta, spec, status = _meta(rs), rs.get("spec") or {}, rs.get("status") or {}
    _header(w, rs)
    w.write(0, f"Selector:\t{format_label_selector(spec.get('selector'))}\n")
    print_labels(w, "Labels", meta.get("labels"))
    print_annotations(w, "Annotations", meta.get("annotations"))
    if _controller(rs):
        w.write(0, f"Controlled By:\t{_controller(rs)}\n")
    w.write(0, f"Replicas:\t{status.get('replicas', 0)} current / {spec.get('replicas', 1)} desired\n")
    w.write(0, f"Pods Status:\t{_pod_status_counts(api, rs)}\n")
    describe_pod_template(w, spec.get("template"))
    if status.get("conditions"):
        w.write(0, "Conditions:\n  Type\tStatus\tReason\n")
        w.write(1, "----\t------\t------\n")
        for c in status["conditions"]:
            w.write(1, f"{c.get('type')} \t{c.get('status')}\t{c.get('reason', '')}\n")
    describe_events(w, events)


def _rs_list_text(items: list[Obj]) -> str:
    if not items:
        return "<none>"
    return ", ".join(f"{_meta(r).get('name')} ({(r.get('status') or {}).get('replicas', 0)}/"
                     f"{(r.get('spec') or {}).get('replicas', 1)} replicas created)" for r in items)


def describe_deployment(d: Obj, events: list[Obj] | None, w: Writer, api: Api) -> None:
    meta, spec, status = _meta(d), d.get("spec") or {}, d.get("status") or {}
    _header(w, d)
    w.write(0, f"CreationTimestamp:\t{rfc1123z(meta.get('creationTimestamp'))}\n")
    print_labels(w, "Labels", meta.get("labels"))
    print_annotations(w, "Annotations", meta.get("annotations"))
    w.write(0, f"Selector:\t{format_label_selector(spec.get('selector'))}\n")
    w.write(0, f"Replicas:\t{spec.get('replicas', 1)} desired | {status.get('updatedReplicas', 0)} updated | "
               f"{status.get('replicas', 0)} total | {status.get('availableReplicas', 0)} available | "
               f"{status.get('unavailableReplicas', 0)} unavailable\n")
    strategy = spec.get("strategy") or {}
    w.write(0, f"StrategyType:\t{strategy.get('type', '')}\n")
    w.write(0, f"MinReadySeconds:\t{spec.get('minReadySeconds', 0)}\n")
    if strategy.get("rollingUpdate") is not None:
        ru = strategy["rollingUpdate"]
        w.write(0, f"RollingUpdateStrategy:\t{ru.get('maxUnavailable', '25%')} max unavailable, "
                   f"{ru.get('maxSurge', '25%')} max surge\n")
    describe_pod_template(w, spec.get("template"))
    if status.get("conditions"):
        w.write(0, "Conditions:\n  Type\tStatus\tReason\n")
        w.write(1, "----\t------\t------\n")
        for c in status["conditions"]:
            w.write(1, f"{c.get('type')} \t{c.get('status')}\t{c.get('reason', '')}\n")
    try:
        owned = _owned_by(api, d, f"/apis/apps/v1/namespaces/{meta.get('namespace', '')}/replicasets")
    except Exception:
        owned = None
    if owned:
        template = spec.get("template") or {}
        new = [r for r in owned if _template_equal((r.get("spec") or {}).get("template") or {}, template)][:1]
        old = [r for r in owned if r not in new]
        w.write(0, f"OldReplicaSets:\t{_rs_list_text(old)}\n")
        w.write(0, f"NewReplicaSet:\t{_rs_list_text(new)}\n")
    describe_events(w, events)


def _template_equal(a: Obj, b: Obj) -> bool:
    import copy

    a, b = copy.deepcopy(a), copy.deepcopy(b)
    for t in (a, b):
        ((t.get("metadata") or {}).get("labels") or {}).pop("pod-template-hash", None)
    return a == b


def describe_service(svc: Obj, events: list[Obj] | None, w: Writer, api: Api) -> None:
    meta, spec, status = _meta(svc), svc.get("spec") or {}, svc.get("status") or {}
    _header(w, svc)
    print_labels(w, "Labels", meta.get("labels"))
    print_annotations(w, "Annotations", meta.get("annotations"))
    sel = spec.get("selector") or {}
    w.write(0, f"Selector:\t{','.join(f'{k}={v}' for k, v in sorted(sel.items()))}\n")
    w.write(0, f"Type:\t{spec.get('type', 'ClusterIP')}\n")
    if spec.get("ipFamilyPolicy"):
        w.write(0, f"IP Family Policy:\t{spec['ipFamilyPolicy']}\n")
    if spec.get("ipFamilies"):
        w.write(0, f"IP Families:\t{','.join(spec['ipFamilies'])}\n")
    w.write(0, f"IP:\t{spec.get('clusterIP', '')}\n")
    if spec.get("clusterIPs"):
        w.write(0, f"IPs:\t{','.join(spec['clusterIPs'])}\n")
    if spec.get("externalIPs"):
        w.write(0, f"External IPs:\t{','.join(spec['externalIPs'])}\n")
    ingress = (status.get("loadBalancer") or {}).get("ingress") or []
    if ingress:
        w.write(0, f"LoadBalancer Ingress:\t{', '.join(i.get('ip') or i.get('hostname', '') for i in ingress)}\n")
    if spec.get("type") == "ExternalName":
        w.write(0, f"External Name:\t{spec.get('externalName', '')}\n")
    try:
        ep = api.get(f"/api/v1/namespaces/{meta.get('namespace', '')}/endpoints/{meta.get('name', '')}")
    except Exception:
        ep = {}
    for p in spec.get("ports") or []:
        name = p.get("name") or "<unset>"
        w.write(0, f"Port:\t{name}\t{p.get('port')}/{p.get('protocol', 'TCP')}\n")
        target = p.get("targetPort", p.get("port"))
        w.write(0, f"TargetPort:\t{target}/{p.get('protocol', 'TCP')}\n")
        if p.get("nodePort"):
            w.write(0, f"NodePort:\t{name}\t{p['nodePort']}/{p.get('protocol', 'TCP')}\n")
        addrs = []
        for sub in ep.get("subsets") or []:
            for sp in sub.get("ports") or []:
                if (sp.get("name") or "") == (p.get("name") or ""):
                    addrs += [f"{a.get('ip')}:{sp.get('port')}" for a in sub.get("addresses") or []]
        w.write(0, f"Endpoints:\t{','.join(addrs) or '<none>'}\n")
    w.write(0, f"Session Affinity:\t{spec.get('sessionAffinity', 'None')}\n")
    if spec.get("externalTrafficPolicy"):
        w.write(0, f"External Traffic Policy:\t{spec['externalTrafficPolicy']}\n")
    if spec.get("internalTrafficPolicy"):
        w.write(0, f"Internal Traffic Policy:\t{spec['internalTrafficPolicy']}\n")
    describe_events(w, events)


def describe_node(node: Obj, events: list[Obj] | None, w: Writer, api: Api) -> None:
    meta, spec, status = _meta(node), node.get("spec") or {}, node.get("status") or {}
    w.write(0, f"Name:\t{meta.get('name', '')}\n")
    labels = meta.get("labels") or {}
    roles = sorted({k.split("/", 1)[1] for k in labels if k.startswith("node-role.kubernetes.io/")})
    w.write(0, f"Roles:\t{','.join(roles) or '<none>'}\n")
    print_labels(w, "Labels", labels)
    print_annotations(w, "Annotations", meta.get("annotations"))
    w.write(0, f"CreationTimestamp:\t{rfc1123z(meta.get('creationTimestamp'))}\n")
    taints = spec.get("taints") or []
    w.write(0, "Taints:\t")
    if not taints:
        w.line("<none>")
    for i, t in enumerate(taints):
        if i:
            w.write(0, "\t")
        w.write(0, f"{t.get('key')}{'=' + t['value'] if t.get('value') else ''}:{t.get('effect')}\n")
    w.write(0, f"Unschedulable:\t{'true' if spec.get('unschedulable') else 'false'}\n")
    if status.get("conditions"):
        w.write(0, "Conditions:\n  Type\tStatus\tLastHeartbeatTime\tLastTransitionTime\tReason\tMessage\n")
        w.write(1, "----\t------\t-----------------\t------------------\t------\t-------\n")
        for c in status["conditions"]:
            w.write(1, f"{c.get('type')} \t{c.get('status')} \t{rfc1123z(c.get('lastHeartbeatTime'))} \t"
                       f"{rfc1123z(c.get('lastTransitionTime'))} \t{c.get('reason', '')} \t{c.get('message', '')}\n")
    w.write(0, "Addresses:\n")
    for a in status.get("addresses") or []:
        w.write(1, f"{a.get('type')}:\t{a.get('address')}\n")
    for title, key in (("Capacity", "capacity"), ("Allocatable", "allocatable")):
        if status.get(key):
            w.write(0, f"{title}:\n")
            for r in sorted(status[key]):
                w.write(1, f"{r}:\t{status[key][r]}\n")
    info = status.get("nodeInfo") or {}
    w.write(0, "System Info:\n")
    for label, key in (("Machine ID", "machineID"), ("System UUID", "systemUUID"), ("Boot ID", "bootID"),
                       ("Kernel Version", "kernelVersion"), ("OS Image", "osImage"), ("Operating System", "operatingSystem"),
                       ("Architecture", "architecture"), ("Container Runtime Version", "containerRuntimeVersion"),
                       ("Kubelet Version", "kubeletVersion"), ("Kube-Proxy Version", "kubeProxyVersion")):
        w.write(1, f"{label}:\t{info.get(key, '')}\n")
    if spec.get("podCIDR"):
        w.write(0, f"PodCIDR:\t{spec['podCIDR']}\n")
    if spec.get("podCIDRs"):
        w.write(0, f"PodCIDRs:\t{','.join(spec['podCIDRs'])}\n")
    try:
        pods = api.list_all("/api/v1/pods", {"fieldSelector": f"spec.nodeName={meta.get('name', '')},"
                                                               "status.phase!=Succeeded,status.phase!=Failed"})
        items = pods.get("items") or []
        w.write(0, f"Non-terminated Pods:\t({len(items)} in total)\n")
        w.write(1, "Namespace\tName\tAge\n")
        w.write(1, "---------\t----\t---\n")
        for p in items:
            w.write(1, f"{_meta(p).get('namespace')}\t{_meta(p).get('name')}\t{since(_meta(p).get('creationTimestamp'))}\n")
    except Exception:
        pass
    describe_events(w, events)


def describe_serviceaccount(sa: Obj, events: list[Obj] | None, w: Writer, _api: Api) -> None:
    meta = _meta(sa)
    _header(w, sa)
    print_labels(w, "Labels", meta.get("labels"))
    print_annotations(w, "Annotations", meta.get("annotations"))
    names = [s.get("name", "") for s in sa.get("imagePullSecrets") or []]
    w.write(0, "Image pull secrets:\t")
    if not names:
        w.line("<none>")
    for i, n in enumerate(names):
        w.write(0, ("\t" if i else "") + n + "\n")
    describe_events(w, events)


def describe_binding(b: Obj, events: list[Obj] | None, w: Writer, _api: Api) -> None:
    meta = _meta(b)
    w.write(0, f"Name:\t{meta.get('name', '')}\n")
    print_labels(w, "Labels", meta.get("labels"))
    print_annotations(w, "Annotations", meta.get("annotations"))
    ref = b.get("roleRef") or {}
    w.write(0, "Role:\n")
    w.write(1, f"Kind:\t{ref.get('kind', '')}\n")
    w.write(1, f"Name:\t{ref.get('name', '')}\n")
    w.write(0, "Subjects:\n")
    w.write(1, "Kind\tName\tNamespace\n")
    w.write(1, "----\t----\t---------\n")
    for sub in b.get("subjects") or []:
        w.write(1, f"{sub.get('kind', '')}\t{sub.get('name', '')}\t{sub.get('namespace', '')}\n")


def _brackets(items: list[str] | None) -> str:
    return "[" + " ".join(items or []) + "]"


def describe_role(r: Obj, events: list[Obj] | None, w: Writer, _api: Api) -> None:
    meta = _meta(r)
    w.write(0, f"Name:\t{meta.get('name', '')}\n")
    print_labels(w, "Labels", meta.get("labels"))
    print_annotations(w, "Annotations", meta.get("annotations"))
    w.write(0, "PolicyRule:\n")
    w.write(1, "Resources\tNon-Resource URLs\tResource Names\tVerbs\n")
    w.write(1, "---------\t-----------------\t--------------\t-----\n")
    for rule in r.get("rules") or []:
        verbs = _brackets(rule.get("verbs"))
        if rule.get("nonResourceURLs"):
            w.write(1, f"\t{_brackets(rule['nonResourceURLs'])}\t[]\t{verbs}\n")
            continue
        for group in rule.get("apiGroups") or [""]:
            for res in rule.get("resources") or []:
                name = f"{res}.{group}" if group else res
                w.write(1, f"{name}\t[]\t{_brackets(rule.get('resourceNames'))}\t{verbs}\n")


DESCRIBERS: dict[tuple[str, str], Callable[[Obj, list[Obj] | None, Writer, Api], None]] = {
    ("", "Pod"): describe_pod,
    ("", "ConfigMap"): describe_configmap,
    ("", "Secret"): describe_secret,
    ("", "Namespace"): describe_namespace,
    ("", "Service"): describe_service,
    ("", "Node"): describe_node,
    ("", "ServiceAccount"): describe_serviceaccount,
    ("rbac.authorization.k8s.io", "RoleBinding"): describe_binding,
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"): describe_binding,
    ("rbac.authorization.k8s.io", "Role"): describe_role,
    ("rbac.authorization.k8s.io", "ClusterRole"): describe_role,
    ("apps", "Deployment"): describe_deployment,
    ("apps", "ReplicaSet"): describe_replicaset,
}

# kinds whose describer does not show events (as kubectl)
_NO_EVENTS = {("", "Secret"), ("", "Namespace"), ("rbac.authorization.k8s.io", "RoleBinding"),
              ("rbac.authorization.k8s.io", "ClusterRoleBinding"), ("rbac.authorization.k8s.io", "Role"),
              ("rbac.authorization.k8s.io", "ClusterRole")}


# kubectl 1.37 leaves the events out for these kinds when they come from a list (describe TYPE)
_NO_EVENTS_WHEN_LISTED = {("apps", "Deployment"), ("", "ConfigMap")}


def describe(api: Api, rtype: ResourceType, obj: Obj, show_events: bool = True, listed: bool = False) -> str:
    key = (rtype.group, rtype.kind)
    fn = DESCRIBERS.get(key, describe_generic)
    events = None
    if show_events and key not in _NO_EVENTS and not (listed and key in _NO_EVENTS_WHEN_LISTED):
        # kubectl leaves the kind out of the event search for pods (mirror pods)
        events = search_events(api, obj, None if key == ("", "Pod") else rtype.kind)
    w = Writer()
    fn(obj, events, w, api)
    return w.render()

