"""What a sync must do to move a pod's containers toward its spec (upstream computePodActions).

Pure: the pod, the runtime status and the probe failures go in, a PodActions comes out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kubelet import naming
from kubelet.podstatus import should_restart
from kubelet.runtime import CREATED, RUNNING, UNKNOWN, PodRuntimeStatus


@dataclass
class PodActions:
    kill_pod: bool = False
    create_sandbox: bool = False
    sandbox_id: str = ""
    attempt: int = 0
    next_init: str | None = None  # the init container to start next
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
    pod: dict[str, Any], rs: PodRuntimeStatus, probe_failures: dict[str, tuple[str, str]]
) -> PodActions:
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
            actions.next_init = inits[0]["name"]
            return actions
        for c in containers:
            latest = rs.latest(c["name"])
            if policy == "OnFailure" and latest is not None and latest.exited and latest.exit_code == 0:
                continue
            actions.start.append(c["name"])
        return actions

    # Ephemeral containers run once, even while init containers do (upstream): one that has
    # ever been created is never started again, whatever became of it.
    actions.ephemeral = [c["name"] for c in spec.get("ephemeralContainers") or [] if rs.latest(c["name"]) is None]

    # init containers, in order
    for c in inits:
        latest = rs.latest(c["name"])
        if latest is None or latest.state in (CREATED, UNKNOWN):
            if latest is not None and latest.state == UNKNOWN:
                actions.kill[latest.id] = UNKNOWN_STATE_MESSAGE
            actions.next_init = c["name"]
            return actions
        if latest.state == RUNNING:
            return actions  # wait for it to finish
        if latest.exit_code == 0:
            continue
        if policy == "Never":
            actions.init_failed = True
            actions.kill_pod = True
            return actions
        actions.next_init = c["name"]
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
        # nothing runs and nothing will: stop the sandbox too
        actions.kill_pod = True
    return actions
