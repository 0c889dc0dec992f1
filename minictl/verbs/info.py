"""`minictl api-resources`, `api-versions`, `version` and `top`."""

from __future__ import annotations

import datetime as dt
import json
import sys
from importlib import metadata
from typing import Any

import click

from apimachinery.errors import StatusError
from apimachinery.quantity import parse_quantity
from minictl.api import ConnectionFailure
from minictl.printing import dump_yaml, tabwrite
from minictl.verbs.common import VerbGroup, echo, fail, selector_params, session, verb


@verb(name="api-resources")
@click.option("-o", "--output", type=click.Choice(["wide", "name"]), help="wide adds VERBS and CATEGORIES; name only names.")
@click.option("--namespaced", type=bool, default=None, help="true: only namespaced resources; false: only cluster-scoped.")
@click.option("--api-group", default=None, help="Only this group ('' for the core group).")
@click.option("--verbs", default="", help="Only resources supporting all of these verbs (comma-separated).")
@click.option("--sort-by", type=click.Choice(["name", "kind"]), default=None, help="Sort by name or kind.")
@click.option("--no-headers", is_flag=True, help="Do not print the header line.")
@click.option("--cached", is_flag=True, help="Use the discovery cache if it is fresh.")
def api_resources_cmd(output: str | None, namespaced: bool | None, api_group: str | None, verbs: str,
                      sort_by: str | None, no_headers: bool, cached: bool) -> None:
    """Print the resource types the server serves.

    \b
    Examples:
      minictl api-resources
      minictl api-resources --namespaced=false -o wide
      minictl api-resources --api-group=apps
    """
    s = session()
    types = s.api.discovery.types() if cached else s.api.discovery.refresh()
    want_verbs = [v for v in verbs.split(",") if v]
    rows = []
    seen: set[tuple[str, str]] = set()
    for t in types:
        if "/" in t.plural or (t.group, t.plural) in seen:
            continue
        if namespaced is not None and t.namespaced != namespaced:
            continue
        if api_group is not None and t.group != api_group:
            continue
        if any(v not in t.verbs for v in want_verbs):
            continue
        seen.add((t.group, t.plural))
        rows.append(t)
    key = {"name": lambda t: t.plural, "kind": lambda t: t.kind}.get(sort_by or "", lambda t: t.group)
    rows.sort(key=lambda t: (key(t), t.plural))
    if output == "name":
        for t in rows:
            echo(t.group_resource)
        return
    lines = [] if no_headers else ["NAME\tSHORTNAMES\tAPIVERSION\tNAMESPACED\tKIND" + ("\tVERBS\tCATEGORIES" if output else "")]
    for t in rows:
        line = f"{t.plural}\t{','.join(t.short_names)}\t{t.api_version}\t{'true' if t.namespaced else 'false'}\t{t.kind}"
        if output:
            line += f"\t{','.join(sorted(t.verbs))}\t{','.join(t.categories)}"
        lines.append(line)
    sys.stdout.write(tabwrite(lines))


@verb(name="api-versions")
def api_versions_cmd() -> None:
    """Print the group/versions the server serves, one per line.

    \b
    Example:
      minictl api-versions
    """
    s = session()
    versions = {t.api_version for t in s.api.discovery.refresh()}
    for v in sorted(versions):
        echo(v)


def client_version() -> dict[str, Any]:
    try:
        version = metadata.version("minik8s")
    except metadata.PackageNotFoundError:
        version = "0.0.0"
    major, _, rest = version.partition(".")
    return {"gitVersion": f"v{version}", "major": major, "minor": rest.partition(".")[0],
            "compiler": "cpython", "platform": f"{sys.platform}/{_arch()}", "goVersion": f"python{sys.version.split()[0]}"}


def _arch() -> str:
    import platform

    return {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())


@verb(name="version")
@click.option("--client", "client_only", is_flag=True, help="Only the client's version (no server request).")
@click.option("-o", "--output", type=click.Choice(["yaml", "json"]), help="Print as YAML or JSON.")
def version_cmd(client_only: bool, output: str | None) -> None:
    """Print the client and server versions.

    \b
    Examples:
      minictl version
      minictl version --client -o json
    """
    doc: dict[str, Any] = {"clientVersion": client_version()}
    server_error = None
    if not client_only:
        s = session()
        try:
            doc["serverVersion"] = s.api.get("/version")
        except (StatusError, ConnectionFailure) as e:
            server_error = e
    if output == "json":
        sys.stdout.write(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    elif output == "yaml":
        sys.stdout.write(dump_yaml(doc))
    else:
        echo(f"Client Version: {doc['clientVersion']['gitVersion']} (minictl)")
        if "serverVersion" in doc:
            echo(f"Server Version: {doc['serverVersion'].get('gitVersion', '')}")
    if server_error is not None:
        raise server_error


# --- top ---------------------------------------------------------------------------------------------
# As kubectl top: usage from the metrics.k8s.io API (NodeMetrics, PodMetrics), shares of the nodes'
# allocatable resources from the Node objects.

METRICS = "/apis/metrics.k8s.io/v1beta1"


def _metrics(s: Any, path: str, params: dict[str, str]) -> dict[str, Any]:
    """A NodeMetrics/PodMetrics list or object; the API's absence as kubectl words it."""
    try:
        return s.api.get(f"{METRICS}{path}", params or None)
    except StatusError as e:
        if e.code == 404 and e.reason == "NotFound" and not (e.details or {}).get("name"):
            fail("Metrics API not available")
        raise


def _milli(q: Any) -> int:
    return int(parse_quantity(q) * 1000) if q else 0


def _bytes(q: Any) -> int:
    return int(parse_quantity(q)) if q else 0


def _cpu(milli: int) -> str:
    return f"{milli}m"


def _mem(b: int) -> str:
    return f"{b // (1024 * 1024)}Mi"


def _items(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return doc.get("items") or [] if doc.get("kind", "").endswith("List") else [doc]


METRICS_CREATION_DELAY = 120  # seconds a new pod may go without metrics (kubectl's metricsCreationDelay)


def _no_pod_metrics(s: Any, name: str | None, params: dict[str, str]) -> None:
    """kubectl's verifyEmptyMetrics: no metrics for pods that exist is an error, worded by the
    pods' age. (As kubectl, it looks in the current namespace even with --all-namespaces.)"""
    from apimachinery.duration import format_duration
    from apimachinery.meta import parse_time

    ns = s.namespace
    pods = [s.api.get(f"/api/v1/namespaces/{ns}/pods/{name}")] if name else \
        s.api.get(f"/api/v1/namespaces/{ns}/pods", params).get("items") or []
    if not pods:
        return
    now = dt.datetime.now(dt.UTC)
    for pod in pods:
        meta = pod.get("metadata") or {}
        try:
            age = (now - parse_time(meta.get("creationTimestamp") or "")).total_seconds()
        except ValueError:
            age = 0.0
        if age > METRICS_CREATION_DELAY:
            fail(f"Metrics not available for pod {meta.get('namespace', ns)}/{meta.get('name', '')}, "
                 f"age: {format_duration(int(age * 1e9))}")
    fail("metrics not available yet")


@click.group("top", cls=VerbGroup, context_settings={"help_option_names": ["-h", "--help"]})
def top_group() -> None:
    """Show CPU and memory use of nodes and pods (from the metrics.k8s.io API, as kubectl top).

    \b
    Examples:
      minictl top nodes
      minictl top pods -A
    """


@verb(top_group, name="node")
@click.argument("name", required=False)
@click.option("--no-headers", is_flag=True, help="Do not print the header line.")
@click.option("-l", "--selector", help="Only nodes matching this label selector.")
def top_node(name: str | None, no_headers: bool, selector: str | None) -> None:
    """CPU (cores) and memory (bytes) per node, and their share of the allocatable amount.

    \b
    Example:
      minictl top node
    """
    s = session()
    params = selector_params(selector, None)
    metrics = _items(_metrics(s, f"/nodes/{name}" if name else "/nodes", params))
    if not metrics:
        fail("metrics not available yet")
    nodes = [s.api.get(f"/api/v1/nodes/{name}")] if name else \
        s.api.list_all("/api/v1/nodes", params).get("items") or []
    allocatable = {(n.get("metadata") or {}).get("name"): (n.get("status") or {}).get("allocatable") or {}
                   for n in nodes}
    lines = [] if no_headers else ["NAME\tCPU(cores)\tCPU(%)\tMEMORY(bytes)\tMEMORY(%)\t"]
    shown = set()
    for m in metrics:
        node_name = (m.get("metadata") or {}).get("name", "")
        if node_name not in allocatable:
            continue
        shown.add(node_name)
        usage, alloc = m.get("usage") or {}, allocatable[node_name]
        cpu, mem = _milli(usage.get("cpu")), _bytes(usage.get("memory"))
        cpu_alloc, mem_alloc = _milli(alloc.get("cpu")), _bytes(alloc.get("memory"))
        cpu_pct = f"{cpu * 100 // cpu_alloc}%" if cpu_alloc else "<unknown>"
        mem_pct = f"{mem * 100 // mem_alloc}%" if mem_alloc else "<unknown>"
        lines.append(f"{node_name}\t{_cpu(cpu)}\t{cpu_pct}\t{_mem(mem)}\t{mem_pct}\t")
    for node_name in allocatable:  # nodes the metrics API has nothing for yet
        if node_name not in shown:
            lines.append(f"{node_name}\t<unknown>\t<unknown>\t<unknown>\t<unknown>\t")
    sys.stdout.write(tabwrite(lines))


@verb(top_group, name="pod")
@click.argument("name", required=False)
@click.option("-A", "--all-namespaces", is_flag=True, help="Pods of every namespace.")
@click.option("--containers", is_flag=True, help="One line per container.")
@click.option("--no-headers", is_flag=True, help="Do not print the header line.")
@click.option("-l", "--selector", help="Only pods matching this label selector.")
def top_pod(name: str | None, all_namespaces: bool, containers: bool, no_headers: bool, selector: str | None) -> None:
    """CPU (cores) and memory (bytes) per pod (or per container).

    \b
    Examples:
      minictl top pod
      minictl top pod -A --containers
    """
    s = session()
    params = selector_params(selector, None)
    scope = "" if all_namespaces and not name else f"/namespaces/{s.namespace}"
    metrics = _items(_metrics(s, f"{scope}/pods/{name}" if name else f"{scope}/pods", params))
    if not metrics:
        _no_pod_metrics(s, name, params)
        echo("No resources found" if all_namespaces else f"No resources found in {s.namespace} namespace.", err=True)
        return
    head = (["NAMESPACE"] if all_namespaces else []) + (["POD", "NAME"] if containers else ["NAME"]) + \
        ["CPU(cores)", "MEMORY(bytes)"]
    lines = [] if no_headers else ["\t".join(head) + "\t"]
    for m in metrics:
        meta = m.get("metadata") or {}
        prefix = ([meta.get("namespace", "")] if all_namespaces else []) + [meta.get("name", "")]
        cs = m.get("containers") or []
        if containers:
            for c in cs:
                usage = c.get("usage") or {}
                cells = [*prefix, c.get("name", ""), _cpu(_milli(usage.get("cpu"))), _mem(_bytes(usage.get("memory")))]
                lines.append("\t".join(cells) + "\t")
        else:
            cpu = sum(_milli((c.get("usage") or {}).get("cpu")) for c in cs)
            mem = sum(_bytes((c.get("usage") or {}).get("memory")) for c in cs)
            lines.append("\t".join([*prefix, _cpu(cpu), _mem(mem)]) + "\t")
    sys.stdout.write(tabwrite(lines))


# kubectl accepts both the singular and the plural
top_group.add_command(top_node, "nodes")
top_group.add_command(top_pod, "pods")
