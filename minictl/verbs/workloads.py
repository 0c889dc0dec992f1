"""`minictl scale` and `minictl rollout status|history|undo|restart|pause|resume`."""

from __future__ import annotations

import copy
import datetime as dt
import json
import sys
import time
from typing import Any

import click

from apimachinery.errors import StatusError
from minictl.api import Api, ResourceType
from minictl.describe import Writer, describe_pod_template
from minictl.verbs.common import (
    Target,
    Verb,
    VerbGroup,
    echo,
    fail,
    kube_bool,
    parse_resource_args,
    selector_params,
    session,
    verb,
    with_global_options,
)
from minictl.verbs.get import _complete_types

REVISION = "deployment.kubernetes.io/revision"
CHANGE_CAUSE = "kubernetes.io/change-cause"
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
HASH_LABEL = "pod-template-hash"
# annotations a rollback keeps from the deployment rather than taking from the ReplicaSet (kubectl's list)
_SKIP_ON_ROLLBACK = {"kubectl.kubernetes.io/last-applied-configuration", REVISION,
                     "deployment.kubernetes.io/revision-history", "deployment.kubernetes.io/desired-replicas",
                     "deployment.kubernetes.io/max-replicas", "deprecated.deployment.rollback.to"}
MERGE = "application/merge-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"


def _objects(api: Api, args: tuple[str, ...], selector: str | None, all_: bool, namespace: str) -> list[tuple[ResourceType, dict]]:
    out: list[tuple[ResourceType, dict]] = []
    for t in parse_resource_args(api, args, allow_all=False):
        ns = namespace if t.rtype.namespaced else None
        if t.names:
            out += [(t.rtype, api.get(t.rtype.path(ns, n))) for n in t.names]
        elif selector or all_:
            out += [(t.rtype, o) for o in api.list_all(t.rtype.path(ns), selector_params(selector, None)).get("items") or []]
        else:
            fail("resource(s) were provided, but no name was specified")
    return out


def _name(obj: dict) -> str:
    return (obj.get("metadata") or {}).get("name", "")


# --- scale -----------------------------------------------------------------------------------------


@verb(name="scale")
@click.argument("args", nargs=-1, shell_complete=_complete_types)
@click.option("--replicas", type=int, required=True, help="The new number of replicas.")
@click.option("--current-replicas", type=int, default=-1, help="Precondition: only scale if it has this many now.")
@click.option("--resource-version", default="", help="Precondition: only scale at this resourceVersion.")
@click.option("-l", "--selector", help="Scale the objects matching this label selector.")
@click.option("--all", "all_", is_flag=True, help="Scale every object of the type in the namespace.")
def scale_cmd(args: tuple[str, ...], replicas: int, current_replicas: int, resource_version: str,
              selector: str | None, all_: bool) -> None:
    """Set a new size for a deployment, replica set or stateful set (the scale subresource).

    \b
    Examples:
      minictl scale deploy/web --replicas=3
      minictl scale --current-replicas=2 --replicas=3 deployment web
      minictl scale rs -l app=web --replicas=0
    """
    s = session()
    if replicas < 0:
        fail("The --replicas=COUNT flag is required, and COUNT must be greater than or equal to 0")
    for rtype, obj in _objects(s.api, args, selector, all_, s.namespace):
        if "scale" not in rtype.subresources:
            fail(f"cannot scale {rtype.kind_name}/{_name(obj)}: the server does not serve its scale subresource")
        ns = (obj.get("metadata") or {}).get("namespace")
        path = rtype.path(ns, _name(obj), "scale")
        if current_replicas >= 0 or resource_version:
            scale = s.api.get(path)
            if current_replicas >= 0 and (scale.get("spec") or {}).get("replicas", 0) != current_replicas:
                fail(f"Expected replicas to be {current_replicas}, was {(scale.get('spec') or {}).get('replicas', 0)}")
            if resource_version and (scale.get("metadata") or {}).get("resourceVersion") != resource_version:
                fail(f"Expected resource version to be {resource_version}, was "
                     f"{(scale.get('metadata') or {}).get('resourceVersion')}")
            scale.setdefault("spec", {})["replicas"] = replicas
            s.api.send("PUT", path, scale, {"fieldManager": "kubectl-scale"})
        else:
            s.api.send("PATCH", path, {"spec": {"replicas": replicas}}, {"fieldManager": "kubectl-scale"},
                       content_type=MERGE)
        echo(f"{rtype.kind_name}/{_name(obj)} scaled")


# --- rollout ---------------------------------------------------------------------------------------


@click.group("rollout", cls=VerbGroup, context_settings={"help_option_names": ["-h", "--help"]})
def rollout_group() -> None:
    """Manage the rollout of deployments, daemon sets and stateful sets.

    \b
    Examples:
      minictl rollout status deploy/web
      minictl rollout history deploy/web
      minictl rollout undo deploy/web --to-revision=2
      minictl rollout restart deploy/web
    """


_ROLLOUT_KINDS = {("apps", "Deployment"), ("apps", "DaemonSet"), ("apps", "StatefulSet")}


def _rollout_target(api: Api, args: tuple[str, ...], namespace: str) -> tuple[ResourceType, dict]:
    targets: list[Target] = parse_resource_args(api, args, allow_all=False)
    if len(targets) != 1 or len(targets[0].names) != 1:
        fail("required resource not specified (one TYPE NAME or TYPE/NAME)")
    rtype = targets[0].rtype
    if (rtype.group, rtype.kind) not in _ROLLOUT_KINDS:
        fail(f'no {rtype.kind_name} rollout support: only deployments, daemonsets and statefulsets')
    return rtype, api.get(rtype.path(namespace, targets[0].names[0]))


def _owned(api: Api, obj: dict, path: str) -> list[dict]:
    uid = (obj.get("metadata") or {}).get("uid")
    items = api.list_all(path).get("items") or []
    return [i for i in items if any(r.get("uid") == uid and r.get("controller")
                                    for r in (i.get("metadata") or {}).get("ownerReferences") or [])]


def _revision(obj: dict) -> int:
    try:
        return int(((obj.get("metadata") or {}).get("annotations") or {}).get(REVISION, "0"))
    except ValueError:
        return 0


def _history(api: Api, rtype: ResourceType, obj: dict) -> dict[int, dict]:
    """revision → (ReplicaSet or ControllerRevision)."""
    ns = (obj.get("metadata") or {}).get("namespace", "")
    if rtype.kind == "Deployment":
        return {_revision(rs): rs for rs in _owned(api, obj, f"/apis/apps/v1/namespaces/{ns}/replicasets")}
    return {int(cr.get("revision", 0)): cr for cr in _owned(api, obj, f"/apis/apps/v1/namespaces/{ns}/controllerrevisions")}


def _template_of(rtype: ResourceType, entry: dict) -> dict:
    if rtype.kind == "Deployment":
        return (entry.get("spec") or {}).get("template") or {}
    # ControllerRevision data is a strategic patch holding spec.template
    return ((entry.get("data") or {}).get("spec") or {}).get("template") or {}


@rollout_group.command("history", cls=Verb)
@click.argument("args", nargs=-1, shell_complete=_complete_types)
@click.option("--revision", type=int, default=0, help="Show the pod template of this revision.")
@with_global_options
def rollout_history(args: tuple[str, ...], revision: int) -> None:
    """Show the revisions of a rollout (with their change-cause), or one revision's pod template.

    \b
    Examples:
      minictl rollout history deploy/web
      minictl rollout history deploy/web --revision=2
    """
    s = session()
    rtype, obj = _rollout_target(s.api, args, s.namespace)
    history = _history(s.api, rtype, obj)
    label = f"{rtype.kind_name}/{_name(obj)}"
    if revision > 0:
        entry = history.get(revision)
        if entry is None:
            fail("unable to find the specified revision")
        template = copy.deepcopy(_template_of(rtype, entry))
        cause = ((entry.get("metadata") or {}).get("annotations") or {}).get(CHANGE_CAUSE)
        if cause:  # kubectl shows the revision's change-cause among the template's annotations
            template.setdefault("metadata", {}).setdefault("annotations", {})[CHANGE_CAUSE] = cause
        w = Writer()
        describe_pod_template(w, template)
        sys.stdout.write(f"{label} with revision #{revision}\n" + "".join(w.blocks) + "\n")
        return
    lines = ["REVISION\tCHANGE-CAUSE"]
    for rev in sorted(history):
        cause = ((history[rev].get("metadata") or {}).get("annotations") or {}).get(CHANGE_CAUSE) or "<none>"
        lines.append(f"{rev}\t{cause}")
    from minictl.printing import tabwrite

    sys.stdout.write(f"{label} \n{tabwrite(lines, minwidth=0, padding=2)}\n")


def _deployment_patch_for(rs: dict, deployment: dict) -> list[dict]:
    template = copy.deepcopy((rs.get("spec") or {}).get("template") or {})
    ((template.get("metadata") or {}).get("labels") or {}).pop(HASH_LABEL, None)
    annotations = {k: v for k, v in ((deployment.get("metadata") or {}).get("annotations") or {}).items()
                   if k in _SKIP_ON_ROLLBACK}
    annotations.update({k: v for k, v in ((rs.get("metadata") or {}).get("annotations") or {}).items()
                        if k not in _SKIP_ON_ROLLBACK})
    return [{"op": "replace", "path": "/spec/template", "value": template},
            {"op": "replace", "path": "/metadata/annotations", "value": annotations}]


def _templates_equal(a: dict, b: dict) -> bool:
    a, b = copy.deepcopy(a), copy.deepcopy(b)
    for t in (a, b):
        ((t.get("metadata") or {}).get("labels") or {}).pop(HASH_LABEL, None)
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


@rollout_group.command("undo", cls=Verb)
@click.argument("args", nargs=-1, shell_complete=_complete_types)
@click.option("--to-revision", type=int, default=0, help="The revision to go back to (default: the previous one).")
@with_global_options
def rollout_undo(args: tuple[str, ...], to_revision: int) -> None:
    """Roll back to a previous revision.

    \b
    Examples:
      minictl rollout undo deploy/web
      minictl rollout undo deploy/web --to-revision=1
    """
    s = session()
    rtype, obj = _rollout_target(s.api, args, s.namespace)
    history = _history(s.api, rtype, obj)
    label = f"{rtype.kind_name}/{_name(obj)}"
    if not history:
        fail(f'no rollout history found for {rtype.kind.lower()} "{_name(obj)}"')
    if to_revision == 0:
        revisions = sorted(history)
        if len(revisions) < 2:
            fail(f'no rollout history found for {rtype.kind.lower()} "{_name(obj)}"')
        to_revision = revisions[-2]
    entry = history.get(to_revision)
    if entry is None:
        fail(f"unable to find specified revision {to_revision} in history")
    ns = (obj.get("metadata") or {}).get("namespace")
    current_template = (obj.get("spec") or {}).get("template") or {}
    target_template = _template_of(rtype, entry)
    if _templates_equal(current_template, target_template):
        echo(f"{label} skipped rollback (current template already matches revision {to_revision})")
        return
    if rtype.kind == "Deployment":
        if (obj.get("spec") or {}).get("paused"):
            fail(f"you cannot rollback a paused deployment; resume it first with 'minictl rollout resume "
                 f"{label}' and try again")
        patch: Any = _deployment_patch_for(entry, obj)
        ctype = "application/json-patch+json"
    else:
        patch = entry.get("data") or {}
        ctype = STRATEGIC
    params = {"fieldManager": "kubectl-rollout"}
    s.api.send("PATCH", rtype.path(ns, _name(obj)), patch, params, content_type=ctype)
    echo(f"{label} rolled back")


@rollout_group.command("restart", cls=Verb)
@click.argument("args", nargs=-1, shell_complete=_complete_types)
@click.option("-l", "--selector", help="Restart the objects matching this label selector.")
@with_global_options
def rollout_restart(args: tuple[str, ...], selector: str | None) -> None:
    """Restart a rollout: new pods replace the old ones (a restartedAt annotation on the pod template).

    \b
    Examples:
      minictl rollout restart deploy/web
      minictl rollout restart deploy -l app=web
    """
    s = session()
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    for rtype, obj in _objects(s.api, args, selector, False, s.namespace):
        if (rtype.group, rtype.kind) not in _ROLLOUT_KINDS:
            fail(f'no {rtype.kind_name} rollout support: only deployments, daemonsets and statefulsets')
        if rtype.kind == "Deployment" and (obj.get("spec") or {}).get("paused"):
            fail("can't restart paused deployment (run rollout resume first)")
        patch = {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: now}}}}}
        ns = (obj.get("metadata") or {}).get("namespace")
        s.api.send("PATCH", rtype.path(ns, _name(obj)), patch, {"fieldManager": "kubectl-rollout"},
                   content_type=STRATEGIC)
        echo(f"{rtype.kind_name}/{_name(obj)} restarted")


def _pause(paused: bool, args: tuple[str, ...]) -> None:
    s = session()
    rtype, obj = _rollout_target(s.api, args, s.namespace)
    if rtype.kind != "Deployment":
        fail(f'{rtype.kind_name}/{_name(obj)} is not supported: only deployments can be paused')
    label = f"{rtype.kind_name}/{_name(obj)}"
    if bool((obj.get("spec") or {}).get("paused")) == paused:
        fail(f"{label} is already {'paused' if paused else 'resumed'}")
    ns = (obj.get("metadata") or {}).get("namespace")
    s.api.send("PATCH", rtype.path(ns, _name(obj)), {"spec": {"paused": paused if paused else None}},
               {"fieldManager": "kubectl-rollout"}, content_type=STRATEGIC)
    echo(f"{label} {'paused' if paused else 'resumed'}")


@rollout_group.command("pause", cls=Verb)
@click.argument("args", nargs=-1, shell_complete=_complete_types)
@with_global_options
def rollout_pause(args: tuple[str, ...]) -> None:
    """Pause a deployment: template changes do not roll out until resumed.

    \b
    Example:
      minictl rollout pause deploy/web
    """
    _pause(True, args)


@rollout_group.command("resume", cls=Verb)
@click.argument("args", nargs=-1, shell_complete=_complete_types)
@with_global_options
def rollout_resume(args: tuple[str, ...]) -> None:
    """Resume a paused deployment.

    \b
    Example:
      minictl rollout resume deploy/web
    """
    _pause(False, args)


def rollout_status_message(rtype: ResourceType, obj: dict) -> tuple[str, bool]:
    """(message, done) as kubectl's status viewers word them."""
    spec, status, meta = obj.get("spec") or {}, obj.get("status") or {}, obj.get("metadata") or {}
    name = meta.get("name", "")
    if rtype.kind == "Deployment":
        if meta.get("generation", 0) > status.get("observedGeneration", 0):
            return "Waiting for deployment spec update to be observed...", False
        for c in status.get("conditions") or []:
            if c.get("type") == "Progressing" and c.get("reason") == "ProgressDeadlineExceeded":
                raise click.ClickException(f'deployment "{name}" exceeded its progress deadline')
        replicas = spec.get("replicas", 1)
        updated = status.get("updatedReplicas", 0)
        if updated < replicas:
            return (f'Waiting for deployment "{name}" rollout to finish: {updated} out of {replicas} new replicas '
                    "have been updated..."), False
        if status.get("replicas", 0) > updated:
            return (f'Waiting for deployment "{name}" rollout to finish: {status.get("replicas", 0) - updated} old '
                    "replicas are pending termination..."), False
        if status.get("availableReplicas", 0) < updated:
            return (f'Waiting for deployment "{name}" rollout to finish: {status.get("availableReplicas", 0)} of '
                    f"{updated} updated replicas are available..."), False
        return f'deployment "{name}" successfully rolled out', True
    if rtype.kind == "DaemonSet":
        if meta.get("generation", 0) > status.get("observedGeneration", 0):
            return "Waiting for daemon set spec update to be observed...", False
        desired = status.get("desiredNumberScheduled", 0)
        updated = status.get("updatedNumberScheduled", 0)
        if updated < desired:
            return (f'Waiting for daemon set "{name}" rollout to finish: {updated} out of {desired} new pods have '
                    "been updated..."), False
        available = status.get("numberAvailable", 0)
        if available < desired:
            return (f'Waiting for daemon set "{name}" rollout to finish: {available} of {desired} updated pods are '
                    "available..."), False
        return f'daemon set "{name}" successfully rolled out', True
    # StatefulSet
    if meta.get("generation", 0) > status.get("observedGeneration", 0):
        return "Waiting for statefulset spec update to be observed...", False
    replicas = spec.get("replicas", 1)
    ready = status.get("readyReplicas", 0)
    if ready < replicas:
        return f"Waiting for {replicas - ready} pods to be ready...", False
    if status.get("updateRevision") != status.get("currentRevision"):
        return (f"waiting for statefulset rolling update to complete {status.get('updatedReplicas', 0)} pods at "
                f"revision {status.get('updateRevision')}..."), False
    return f"statefulset rolling update complete {replicas} pods at revision {status.get('currentRevision')}...", True


@rollout_group.command("status", cls=Verb)
@click.argument("args", nargs=-1, shell_complete=_complete_types)
@kube_bool("--watch", True, "Wait until the rollout finishes.", short="-w")
@click.option("--timeout", type=float, default=0, help="Seconds to wait (0: up to an hour).")
@with_global_options
def rollout_status(args: tuple[str, ...], watch: bool, timeout: float) -> None:
    """Show the status of a rollout, and by default wait until it is done.

    \b
    Examples:
      minictl rollout status deploy/web
      minictl rollout status ds/agent --timeout=60
    """
    s = session()
    rtype, obj = _rollout_target(s.api, args, s.namespace)
    ns = (obj.get("metadata") or {}).get("namespace")
    deadline = time.monotonic() + (timeout if timeout > 0 else 3600)
    last = ""
    while True:
        msg, done = rollout_status_message(rtype, obj)
        if msg != last:
            echo(msg)
            last = msg
        if done or not watch:
            return
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            fail("timed out waiting for the condition")
        rv = (obj.get("metadata") or {}).get("resourceVersion", "")
        params = {"fieldSelector": f"metadata.name={_name(obj)}", "resourceVersion": rv,
                  "timeoutSeconds": max(1, int(min(remaining, 60)))}
        try:
            for event in s.api.watch(rtype.path(ns), params):
                if event.get("type") in ("ADDED", "MODIFIED"):
                    obj = event["object"]
                    break
                if event.get("type") == "DELETED":
                    fail("object has been deleted")
        except StatusError as e:
            if e.code != 410:
                raise
            obj = s.api.get(rtype.path(ns, _name(obj)))
