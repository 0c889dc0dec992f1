"""What a sync must do to move a pod's containers toward its spec (upstream computePodActions).

Pure: the pod, the runtime status and the probe failures go in, a PodActions comes out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from apimachinery.podutil import is_restartable_init_container
from kubelet import naming
from kubelet.podstatus import should_restart
from kubelet.runtime import CREATED, RUNNING, UNKNOWN, PodRuntimeStatus


@dataclass
class PodActions:
    kill_pod: bool = False
    create_sandbox: bool = False
    sandbox_id: str = ""
    attempt: int = 0
    # init containers to start, in spec order: the next one of the init sequence and sidecars
    # (restartPolicy Always init containers) to restart
    start_init: list[str] = field(default_factory=list)
    initialized: bool = False  # the init sequence is done: regular containers may run
    init_failed: bool = False  # an init container failed and the pod will not restart it
    start: list[str] = field(default_factory=list)  # regular containers to start, in spec order
    ephemeral: list[str] = field(default_factory=list)  # ephemeral containers to start (once, never again)
    kill: dict[str, str] = field(default_factory=dict)  # container id -> why


def sandbox_changed(pod: dict[str, Any], rs: PodRuntimeStatus) -> tuple[bool, int, str]:
    """(needs a new sandbox?, its attempt, the current sandbox id)."""
    if not rs.sandboxes:
        return True, 0, ""
    newest = rs.sandboxes[0]
    ready = [s for s in rs.sandboxes if s.ready]
    if len(ready) > 1:
        return True, newest.attempt + 1, newest.id
    if not newest.ready:
        return True, newest.attempt + 1, newest.id
    if not (pod.get("spec") or {}).get("hostNetwork") and not newest.ip:
        return True, newest.attempt + 1, newest.id
    return False, newest.attempt, newest.id


#: upstream's Killing message for a container the runtime reports in an unknown state
UNKNOWN_STATE_MESSAGE = 'Container is in "unknown" state, try killing it before restart'


def compute_pod_actions(
    pod: dict[str, Any], rs: PodRuntimeStatus, probe_failures: dict[str, tuple[str, str]],
    startup_passed: frozenset[str] | set[str] = frozenset(),
) -> PodActions:
    """`probe_failures`: container id -> (probe kind, message) of failed liveness/startup
    probes; `startup_passed`: ids of running containers whose startup probe succeeded."""
    spec = pod.get("spec") or {}
    policy = spec.get("restartPolicy", "Always")
    changed, attempt, sandbox_id = sandbox_changed(pod, rs)
    actions = PodActions(kill_pod=changed, create_sandbox=changed, sandbox_id=sandbox_id, attempt=attempt)
    inits = spec.get("initContainers") or []
    containers = spec.get("containers") or []

    if changed:
        if policy != "Always" and attempt != 0 and rs.containers:
            # a finished pod that must not restart: nothing to recreate (upstream)
            actions.create_sandbox = False
            return actions
        if inits:
            actions.start_init = [inits[0]["name"]]
            return actions
        actions.initialized = True
        for c in containers:
            latest = rs.latest(c["name"])
            if policy == "OnFailure" and latest is not None and latest.exited and latest.exit_code == 0:
                continue
            actions.start.append(c["name"])
        return actions

    # Ephemeral containers run once, even while init containers do (upstream): one that has
    # ever been created is never started again, whatever became of it.
    actions.ephemeral = [c["name"] for c in spec.get("ephemeralContainers") or [] if rs.latest(c["name"]) is None]

    actions.initialized = _init_actions(spec, rs, probe_failures, startup_passed, actions)
    if actions.kill_pod or not actions.initialized:
        return actions

    keep = 0
    for c in containers:
        name = c["name"]
        latest = rs.latest(name)
        if latest is None or latest.state != RUNNING:
            if latest is not None and latest.exited and not should_restart(policy, latest.exit_code):
                continue
            if latest is not None and latest.state == UNKNOWN:
                actions.kill[latest.id] = UNKNOWN_STATE_MESSAGE
            actions.start.append(name)
            continue
        restart = policy != "Never"
        failure = probe_failures.get(latest.id)
        if latest.hash and latest.hash != naming.container_hash(c):
            reason = f"Container {name} definition changed"
            restart = True  # as upstream, whatever the restart policy: the spec asks for another container
        elif failure is not None:
            reason = f"Container {name} failed {failure[0]} probe"
        else:
            keep += 1
            continue
        if restart:
            reason += ", will be restarted"
            actions.start.append(name)
        actions.kill[latest.id] = reason
    if keep == 0 and not actions.start:
        # nothing runs and nothing will: stop the sandbox too — sidecars do not keep a pod alive
        actions.kill_pod = True
        actions.start_init = []
    return actions


def _init_actions(
    spec: dict[str, Any], rs: PodRuntimeStatus, probe_failures: dict[str, tuple[str, str]],
    startup_passed: frozenset[str] | set[str], actions: PodActions,
) -> bool:
    """Upstream's computeInitContainerActions: which init containers to (re)start, which to kill;
    True once the pod is initialized.

    Walks the init containers from the last: the furthest one that ever ran tells where the
    sequence stands (earlier ones may have been removed since); before it, only sidecars matter
    (they are kept running). A sidecar counts as done once it runs and its startup probe, if
    any, passed; a regular init container once it exited 0.
    """
    inits = spec.get("initContainers") or []
    if not inits:
        return True
    # a regular container that runs means the pod was initialized before (its init containers
    # may be gone from the runtime): only sidecars are brought back then
    initialized = any(
        latest is not None and latest.state in (CREATED, RUNNING)
        for latest in (rs.latest(c["name"]) for c in spec.get("containers") or [])
    )
    restart_on_failure = spec.get("restartPolicy", "Always") != "Never"
    reached = initialized  # a later init container has run already
    to_start: list[str] = []  # in reverse order
    last = len(inits) - 1
    for i in range(last, -1, -1):
        c = inits[i]
        name = c["name"]
        sidecar = is_restartable_init_container(c)
        latest = rs.latest(name)
        if latest is None:
            if reached and sidecar:
                to_start.append(name)  # its container is gone: bring it back
            continue
        if reached and not sidecar:
            continue
        if latest.state == CREATED:
            to_start.append(name)  # created but never started: start it again
        elif latest.state == RUNNING:
            if sidecar:
                initialized = _running_sidecar(inits, i, reached, latest, probe_failures, startup_passed,
                                               actions, to_start) or initialized
        elif latest.exited:
            if sidecar:
                to_start.append(name)
            elif latest.exit_code != 0:
                if not restart_on_failure:
                    actions.init_failed = True
                    actions.kill_pod = True
                    actions.start_init = []
                    return False
                to_start.append(name)
            elif i == last:
                initialized = True
            else:
                to_start.append(inits[i + 1]["name"])
        else:  # unknown: kill what is left of it, then start it again
            if not sidecar and not restart_on_failure:
                actions.init_failed = True
                actions.kill_pod = True
                actions.start_init = []
                return False
            actions.kill[latest.id] = f'Init container is in "{latest.state}" state, try killing it before restart'
            to_start.append(name)
        reached = True
    if not reached:
        to_start.append(inits[0]["name"])
    actions.start_init = list(reversed(to_start))
    return initialized


def _running_sidecar(
    inits: list[dict[str, Any]], i: int, reached: bool, latest: Any, probe_failures: dict[str, tuple[str, str]],
    startup_passed: frozenset[str] | set[str], actions: PodActions, to_start: list[str],
) -> bool:
    """A running sidecar: the next init container may start once its startup probe (if any)
    passed; a failed startup or liveness probe or a changed spec restarts it. True when it was
    the last init container, so the pod is initialized."""
    c = inits[i]
    name = c["name"]
    failure = probe_failures.get(latest.id)
    if c.get("startupProbe") and latest.id not in startup_passed:
        if failure is not None and failure[0] == "startup":
            actions.kill[latest.id] = f"Init container {name} failed startup probe"
            to_start.append(name)
        return False  # wait for the probe
    if i < len(inits) - 1 and not reached:
        to_start.append(inits[i + 1]["name"])  # first time through: the sequence goes on
    if latest.hash and latest.hash != naming.container_hash(c):
        actions.kill[latest.id] = f"Init container {name} definition changed"
        to_start.append(name)
    elif failure is not None and failure[0] == "liveness":
        actions.kill[latest.id] = f"Init container {name} failed liveness probe"
        to_start.append(name)
    return i == len(inits) - 1
