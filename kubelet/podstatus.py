"""The API status of a pod from what the runtime reports (upstream's generateAPIPodStatus).

Pure functions: the runtime status, the probe results, the waiting reasons of the last sync
and the pod's current API status go in; the new `status` dict comes out.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from apimachinery.meta import now as now_rfc3339
from apimachinery.podutil import has_any_regular_container_started, is_restartable_init_container
from kubelet import naming
from kubelet.qos import qos_class
from kubelet.runtime import ContainerInfo, PodRuntimeStatus

PENDING, RUNNING, SUCCEEDED, FAILED = "Pending", "Running", "Succeeded", "Failed"
TERMINAL_PHASES = (SUCCEEDED, FAILED)
KUBELET_CONDITIONS = ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled")


def rfc3339(ns: int) -> str | None:
    if ns <= 0:
        return None
    return dt.datetime.fromtimestamp(ns / 1e9, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class StatusInputs:
    """What besides the runtime status decides the API status."""

    host_ip: str = ""
    ready: dict[str, bool] = field(default_factory=dict)  # container id -> readiness probe result
    started: dict[str, bool] = field(default_factory=dict)  # container id -> startup probe passed
    waiting: dict[str, tuple[str, str]] = field(default_factory=dict)  # container name -> (reason, message)
    terminating: bool = False  # deletion requested: stopped containers make the pod terminal
    termination_messages: dict[str, str] = field(default_factory=dict)  # container id -> message
    pod_condition_override: dict[str, Any] | None = None  # e.g. eviction's DisruptionTarget


def should_restart(restart_policy: str, exit_code: int) -> bool:
    if restart_policy == "Always":
        return True
    if restart_policy == "OnFailure":
        return exit_code != 0
    return False


def terminated_state(c: ContainerInfo, message: str = "") -> dict[str, Any]:
    reason = c.reason or ("Completed" if c.exit_code == 0 else "Error")
    out: dict[str, Any] = {
        "exitCode": c.exit_code,
        "reason": reason,
        "startedAt": rfc3339(c.started_at),
        "finishedAt": rfc3339(c.finished_at),
        "containerID": naming.container_id(c.id),
    }
    msg = message or c.message
    if msg:
        out["message"] = msg
    return out


def _container_status(
    spec: dict[str, Any], instances: list[ContainerInfo], inputs: StatusInputs, restart_policy: str,
    default_waiting: str, init: bool,
) -> dict[str, Any]:
    name = spec["name"]
    latest = instances[0] if instances else None
    status: dict[str, Any] = {
        "name": name,
        "image": spec.get("image", ""),
        "imageID": "",
        "ready": False,
        "restartCount": latest.restart_count if latest else 0,
        "started": False,
        "state": {},
        "lastState": {},
    }
    waiting = inputs.waiting.get(name)
    if latest is None:
        reason, message = waiting or (default_waiting, "")
        status["state"] = {"waiting": {"reason": reason, **({"message": message} if message else {})}}
        return status
    status["imageID"] = latest.image_ref
    status["containerID"] = naming.container_id(latest.id)
    previous = next((c for c in instances[1:] if c.exited), None)
    if latest.running:
        status["state"] = {"running": {"startedAt": rfc3339(latest.started_at)}}
        status["started"] = inputs.started.get(latest.id, True)
        status["ready"] = inputs.ready.get(latest.id, False) and status["started"]
        if previous is not None:
            status["lastState"] = {"terminated": terminated_state(previous, inputs.termination_messages.get(previous.id, ""))}
        return status
    if latest.exited:
        terminated = terminated_state(latest, inputs.termination_messages.get(latest.id, ""))
        will_restart = should_restart(restart_policy, latest.exit_code) and not inputs.terminating
        if init and latest.exit_code == 0:
            will_restart = False
        if waiting is not None and will_restart:
            status["state"] = {"waiting": {"reason": waiting[0], **({"message": waiting[1]} if waiting[1] else {})}}
            status["lastState"] = {"terminated": terminated}
        elif will_restart and waiting is None:
            # about to be restarted right now (no back-off yet): upstream shows the termination
            status["state"] = {"terminated": terminated}
            if previous is not None:
                status["lastState"] = {"terminated": terminated_state(previous)}
        else:
            status["state"] = {"terminated": terminated}
            if previous is not None:
                status["lastState"] = {"terminated": terminated_state(previous)}
        return status
    # created but never started, or unknown
    reason, message = waiting or (default_waiting, "")
    status["state"] = {"waiting": {"reason": reason, **({"message": message} if message else {})}}
    if previous is not None:
        status["lastState"] = {"terminated": terminated_state(previous)}
    return status


def _ephemeral_status(spec: dict[str, Any], rs: PodRuntimeStatus, inputs: StatusInputs,
                      default_waiting: str) -> dict[str, Any]:
    """An ephemeral container's status: as a container's that is never restarted, never ready
    (no probes) and has no `started` (upstream leaves it unset)."""
    status = _container_status(spec, rs.instances(spec["name"]), inputs, "Never", default_waiting, False)
    status["ready"] = False
    status.pop("started", None)
    return status


def _phase(
    spec: dict[str, Any], init_statuses: list[dict[str, Any]], statuses: list[dict[str, Any]], terminating: bool
) -> str:
    """upstream getPhase: regular init containers gate the pod; a sidecar counts as a running
    container (pending until started); a stopped sidecar does not count at all."""
    restart_policy = spec.get("restartPolicy", "Always")
    init_specs = spec.get("initContainers") or []
    pending_init = failed_init = 0
    running = waiting = stopped = succeeded = 0
    for c, s in zip(init_specs, init_statuses, strict=True):
        state, last = s["state"], s.get("lastState") or {}
        if is_restartable_init_container(c):
            if "running" in state:
                running += 1
                if not s.get("started"):
                    pending_init += 1
            elif "waiting" in state and "terminated" not in last:
                pending_init += 1
                waiting += 1
            continue
        if "terminated" in state:
            failed_init += state["terminated"]["exitCode"] != 0
        elif "waiting" in state and "terminated" in last:
            failed_init += last["terminated"]["exitCode"] != 0
        else:
            pending_init += 1
    for s in statuses:
        state = s["state"]
        if "running" in state:
            running += 1
        elif "terminated" in state:
            stopped += 1
            if state["terminated"]["exitCode"] == 0:
                succeeded += 1
        elif "waiting" in state:
            if "terminated" in s.get("lastState", {}):
                stopped += 1
            else:
                waiting += 1
    if failed_init and restart_policy == "Never":
        return FAILED
    # a pod whose regular containers ran stays out of Pending while a sidecar restarts
    if (pending_init and not has_any_regular_container_started(spec, statuses)) or waiting > 0:
        return PENDING
    if running > 0:
        return RUNNING
    if stopped > 0:
        if terminating:
            return SUCCEEDED if stopped == succeeded else FAILED
        if restart_policy == "Always":
            return RUNNING
        if stopped == succeeded:
            return SUCCEEDED
        if restart_policy == "OnFailure":
            return RUNNING
        return FAILED
    return PENDING


def _condition(old: dict[str, dict[str, Any]], ctype: str, status: bool, reason: str = "", message: str = "") -> dict[str, Any]:
    value = "True" if status else "False"
    previous = old.get(ctype)
    changed_at = previous.get("lastTransitionTime") if previous and previous.get("status") == value else None
    cond: dict[str, Any] = {
        "type": ctype,
        "status": value,
        "lastProbeTime": None,
        "lastTransitionTime": changed_at or now_rfc3339(),
    }
    if reason:
        cond["reason"] = reason
    if message:
        cond["message"] = message
    return cond


def generate_status(pod: dict[str, Any], rs: PodRuntimeStatus, inputs: StatusInputs) -> dict[str, Any]:
    spec = pod.get("spec") or {}
    old = pod.get("status") or {}
    restart_policy = spec.get("restartPolicy", "Always")
    init_specs = spec.get("initContainers") or []
    init_statuses = []
    for c in init_specs:
        if is_restartable_init_container(c):
            # a sidecar: restarted whatever the pod's policy; started and ready from its probes
            init_statuses.append(_container_status(c, rs.instances(c["name"]), inputs, "Always", "PodInitializing",
                                                   False))
            continue
        s = _container_status(c, rs.instances(c["name"]), inputs, restart_policy, "PodInitializing", True)
        s["ready"] = "terminated" in s["state"] and s["state"]["terminated"]["exitCode"] == 0
        s["started"] = "running" in s["state"]
        init_statuses.append(s)
    # upstream's isInitContainerInitialized: a sidecar once started, the others once they exited 0
    incomplete = [
        s["name"] for c, s in zip(init_specs, init_statuses, strict=True)
        if not (s["started"] if is_restartable_init_container(c) else s["ready"])
    ]
    default_waiting = "PodInitializing" if incomplete else "ContainerCreating"
    statuses = [
        _container_status(c, rs.instances(c["name"]), inputs, restart_policy, default_waiting, False)
        for c in spec.get("containers") or []
    ]
    phase = _phase(spec, init_statuses, statuses, inputs.terminating)
    if old.get("phase") in TERMINAL_PHASES:
        phase = old["phase"]  # a terminal phase is final

    old_conditions = {c.get("type"): c for c in old.get("conditions") or [] if isinstance(c, dict)}
    sandbox = rs.sandbox
    sandbox_ready = sandbox is not None and sandbox.ready and (bool(sandbox.ip) or bool(spec.get("hostNetwork")))
    conditions = [_condition(old_conditions, "PodReadyToStartContainers", sandbox_ready)]
    if phase == SUCCEEDED:
        conditions.append(_condition(old_conditions, "Initialized", True, "PodCompleted"))
    elif not incomplete or has_any_regular_container_started(spec, statuses):
        conditions.append(_condition(old_conditions, "Initialized", True))
    else:
        conditions.append(_condition(old_conditions, "Initialized", False, "ContainersNotInitialized",
                                     f"containers with incomplete status: [{' '.join(incomplete)}]"))
    unready = [s["name"] for c, s in zip(init_specs, init_statuses, strict=True)
               if is_restartable_init_container(c) and not s["ready"]]
    unready += [s["name"] for s in statuses if not s["ready"]]
    gates = [g.get("conditionType") for g in spec.get("readinessGates") or []]
    gates_ok = all((old_conditions.get(g) or {}).get("status") == "True" for g in gates)
    if phase == SUCCEEDED:
        ready = False
        reason, message = "PodCompleted", ""
    elif phase == FAILED:
        ready = False
        reason, message = "PodFailed", ""
    elif unready:
        ready = False
        reason, message = "ContainersNotReady", f"containers with unready status: [{' '.join(unready)}]"
    else:
        ready, reason, message = True, "", ""
    conditions.append(_condition(old_conditions, "ContainersReady", ready and phase == RUNNING, reason, message))
    pod_ready = ready and gates_ok and phase == RUNNING
    if ready and not gates_ok:
        missing = [g for g in gates if (old_conditions.get(g) or {}).get("status") != "True"]
        reason, message = "ReadinessGatesNotReady", f"corresponding condition of pod readiness gate \"{missing[0]}\" does not exist."
    conditions.append(_condition(old_conditions, "Ready", pod_ready, reason, message))
    conditions.append(_condition(old_conditions, "PodScheduled", True))
    # conditions owned by others (DisruptionTarget, readiness gates' conditions) are kept
    for ctype, cond in old_conditions.items():
        if ctype not in KUBELET_CONDITIONS:
            conditions.append(cond)
    if inputs.pod_condition_override is not None:
        conditions = [c for c in conditions if c["type"] != inputs.pod_condition_override["type"]]
        conditions.append(inputs.pod_condition_override)

    status: dict[str, Any] = {
        "phase": phase,
        "conditions": conditions,
        "hostIP": inputs.host_ip,
        "hostIPs": [{"ip": inputs.host_ip}] if inputs.host_ip else [],
        "startTime": old.get("startTime") or now_rfc3339(),
        "qosClass": old.get("qosClass") or qos_class(spec),
        "containerStatuses": statuses,
    }
    if init_statuses:
        status["initContainerStatuses"] = init_statuses
    ephemeral = spec.get("ephemeralContainers") or []
    if ephemeral:
        status["ephemeralContainerStatuses"] = [_ephemeral_status(c, rs, inputs, default_waiting) for c in ephemeral]
    ip = inputs.host_ip if spec.get("hostNetwork") else (sandbox.ip if sandbox is not None and sandbox.ready else "")
    ips = [inputs.host_ip] if spec.get("hostNetwork") else (sandbox.ips if sandbox is not None and sandbox.ready else [])
    if not ip and old.get("podIP") and phase in TERMINAL_PHASES:
        ip, ips = old["podIP"], [p.get("ip") for p in old.get("podIPs") or []]
    if ip:
        status["podIP"] = ip
        status["podIPs"] = [{"ip": i} for i in ips or [ip]]
    for key in ("reason", "message", "nominatedNodeName", "resize", "resourceClaimStatuses"):
        if old.get(key):
            status[key] = old[key]
    return status


def comparable(status: dict[str, Any]) -> dict[str, Any]:
    """The status without the fields that change on every computation (for 'did it change?')."""
    out = dict(status)
    out["conditions"] = sorted(
        ({k: v for k, v in c.items() if k not in ("lastProbeTime",)} for c in status.get("conditions") or []),
        key=lambda c: c.get("type", ""),
    )
    return out
