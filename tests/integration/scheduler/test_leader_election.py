"""Two replicas: one leads; kill it and the standby takes over within the lease; no pod bound twice."""

from __future__ import annotations

import collections
import os
import signal
import time
from pathlib import Path

from tests.conftest import ControlPlane, audited
from tests.integration.scheduler.conftest import Env, SchedulerProcess, wait_until

LEASE = 4.0


def holder(env: Env, lease: str) -> str:
    r = env.api.get(f"/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/{lease}")
    return r.json()["spec"].get("holderIdentity") or "" if r.status_code == 200 else ""


def test_standby_takes_over_and_nothing_is_bound_twice(control_plane: ControlPlane,
                                                       kubeconfigs: dict[str, Path], env: Env) -> None:
    name = f"ha-scheduler-{os.urandom(3).hex()}"
    lease = f"{name}-lease"
    env.scheduler_name = name
    args = ("--leader-elect-resource-name", lease, "--leader-elect-lease-duration", f"{LEASE}s",
            "--leader-elect-renew-deadline", "3s", "--leader-elect-retry-period", "500ms")
    logs = control_plane.cfg.dir / "logs"
    replicas = {ident: SchedulerProcess(kubeconfigs["scheduler"], logs, name, "--identity", ident, *args)
                for ident in ("replica-a", "replica-b")}
    try:
        for p in replicas.values():
            p.wait_ready()
        leader = wait_until(lambda: holder(env, lease), what="a leader")
        standby = ({"replica-a", "replica-b"} - {leader}).pop()
        wait_until(lambda: replicas[leader].metric("leader_election_master_status") == 1, what="leader metric")
        assert replicas[standby].metric("leader_election_master_status") == 0
        env.node("n1", cpu="8")
        env.node("n2", cpu="8")
        before = [f"before-{i}" for i in range(5)]
        for n in before:
            env.pod(n)
        env.wait_bound(*before)
        replicas[leader].stop(signal.SIGKILL)
        killed_at = time.monotonic()
        after = [f"after-{i}" for i in range(5)]
        for n in after:
            env.pod(n)
        env.wait_bound(*after, timeout=LEASE * 4)
        took = time.monotonic() - killed_at
        assert took < LEASE + 5, f"takeover took {took:.1f}s"
        assert holder(env, lease) == standby
        # every pod bound exactly once: one Scheduled event each, no failed binding, one binding request
        wait_until(lambda: all(
            collections.Counter(e["involvedObject"]["name"] for e in env.events(reason="Scheduled"))[n] == 1
            for n in before + after), what="one Scheduled event per pod")
        scheduled = collections.Counter(e["involvedObject"]["name"] for e in env.events(reason="Scheduled"))
        assert all(v == 1 for v in scheduled.values()), scheduled
        assert env.events(reason="FailedScheduling") == []
        bindings = collections.Counter((rec["objectRef"].get("name"), rec["responseStatus"]["code"])
                                       for rec in audited(control_plane.audit_records(), subresource="binding",
                                                          namespace=env.ns))
        assert {k: v for k, v in bindings.items() if v != 1 or k[1] != 201} == {}
        assert sorted(name for name, _ in bindings) == sorted(before + after)
    finally:
        for p in replicas.values():
            p.stop()
        env.api.delete(f"/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/{lease}")
