"""The API status of a pod from runtime state: phase, conditions, container states."""

from kubelet.podstatus import StatusInputs, comparable, generate_status
from kubelet.runtime import CREATED, EXITED
from tests.unit.kubelet_fakes import container, pod, runtime_status, sandbox


def _conds(status):
    return {c["type"]: c["status"] for c in status["conditions"]}


def _cs(status, name, key="containerStatuses"):
    return next(s for s in status[key] if s["name"] == name)


def test_a_running_ready_pod():
    rs = runtime_status(sandboxes=[sandbox(ip="10.244.0.9")], containers=[container("main", "c1", started=100)])
    status = generate_status(pod(), rs, StatusInputs(host_ip="192.0.2.10", ready={"c1": True}, started={"c1": True}))
    assert status["phase"] == "Running"
    assert status["podIP"] == "10.244.0.9" and status["podIPs"] == [{"ip": "10.244.0.9"}]
    assert status["hostIP"] == "192.0.2.10" and status["qosClass"] == "BestEffort"
    assert _conds(status) == {"PodReadyToStartContainers": "True", "Initialized": "True", "ContainersReady": "True",
                              "Ready": "True", "PodScheduled": "True"}
    s = _cs(status, "main")
    assert s["state"] == {"running": {"startedAt": "1970-01-01T00:01:40Z"}}
    assert s["ready"] and s["started"] and s["containerID"] == "containerd://c1" and s["imageID"] == "sha256:abc"


def test_an_unready_container_makes_the_pod_unready_and_says_which():
    rs = runtime_status(sandboxes=[sandbox()], containers=[container("main", "c1")])
    status = generate_status(pod(), rs, StatusInputs(ready={"c1": False}))
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False" and ready["reason"] == "ContainersNotReady"
    assert ready["message"] == "containers with unready status: [main]"


def test_crash_loop_shows_waiting_with_the_last_termination():
    rs = runtime_status(sandboxes=[sandbox()], containers=[
        container("main", "c2", EXITED, exit_code=1, restart=2, created=3, finished=50),
        container("main", "c1", EXITED, exit_code=1, restart=1, created=2, finished=40),
    ])
    waiting = {"main": ("CrashLoopBackOff", "back-off 20s restarting failed container=main pod=web_default(uid-web)")}
    status = generate_status(pod(), rs, StatusInputs(waiting=waiting))
    s = _cs(status, "main")
    assert s["restartCount"] == 2
    assert s["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert s["lastState"]["terminated"]["exitCode"] == 1 and s["lastState"]["terminated"]["reason"] == "Error"
    assert s["lastState"]["terminated"]["containerID"] == "containerd://c2"
    assert status["phase"] == "Running"


def test_phases_by_restart_policy():
    ok = container("main", "c1", EXITED, exit_code=0)
    bad = container("main", "c1", EXITED, exit_code=3)
    rs_ok = runtime_status(sandboxes=[sandbox(ready=False)], containers=[ok])
    rs_bad = runtime_status(sandboxes=[sandbox(ready=False)], containers=[bad])
    assert generate_status(pod(restartPolicy="Never"), rs_ok, StatusInputs())["phase"] == "Succeeded"
    assert generate_status(pod(restartPolicy="Never"), rs_bad, StatusInputs())["phase"] == "Failed"
    assert generate_status(pod(restartPolicy="OnFailure"), rs_ok, StatusInputs())["phase"] == "Succeeded"
    assert generate_status(pod(restartPolicy="OnFailure"), rs_bad, StatusInputs())["phase"] == "Running"
    assert generate_status(pod(restartPolicy="Always"), rs_ok, StatusInputs())["phase"] == "Running"
    # deleted pods end terminal whatever their restart policy
    assert generate_status(pod(), rs_bad, StatusInputs(terminating=True))["phase"] == "Failed"
    assert generate_status(pod(), rs_ok, StatusInputs(terminating=True))["phase"] == "Succeeded"
    succeeded = generate_status(pod(restartPolicy="Never"), rs_ok, StatusInputs())
    assert next(c for c in succeeded["conditions"] if c["type"] == "Ready")["reason"] == "PodCompleted"
    terminated = _cs(succeeded, "main")["state"]["terminated"]
    assert terminated["reason"] == "Completed" and terminated["exitCode"] == 0


def test_a_terminal_phase_is_final():
    p = pod()
    p["status"] = {"phase": "Failed", "reason": "Evicted", "message": "low on memory"}
    rs = runtime_status(sandboxes=[sandbox()], containers=[container("main", "c1")])
    status = generate_status(p, rs, StatusInputs())
    assert status["phase"] == "Failed" and status["reason"] == "Evicted"


def test_init_containers_pending_and_failed():
    p = pod(initContainers=[{"name": "init", "image": "x"}])
    rs = runtime_status(sandboxes=[sandbox()], containers=[container("init", "i1", init=True)])
    status = generate_status(p, rs, StatusInputs())
    assert status["phase"] == "Pending"
    assert _cs(status, "main")["state"]["waiting"]["reason"] == "PodInitializing"
    init = next(c for c in status["conditions"] if c["type"] == "Initialized")
    assert init["status"] == "False" and init["message"] == "containers with incomplete status: [init]"
    failed = runtime_status(sandboxes=[sandbox()], containers=[container("init", "i1", EXITED, exit_code=1, init=True)])
    never = pod(initContainers=[{"name": "init", "image": "x"}], restartPolicy="Never")
    assert generate_status(never, failed, StatusInputs())["phase"] == "Failed"
    assert generate_status(p, failed, StatusInputs())["phase"] == "Pending"


def test_waiting_reasons_before_anything_runs():
    status = generate_status(pod(), runtime_status(), StatusInputs(waiting={"main": ("ErrImagePull", "no such image")}))
    assert _cs(status, "main")["state"] == {"waiting": {"reason": "ErrImagePull", "message": "no such image"}}
    plain = generate_status(pod(), runtime_status(), StatusInputs())
    assert _cs(plain, "main")["state"] == {"waiting": {"reason": "ContainerCreating"}}
    created = runtime_status(sandboxes=[sandbox()], containers=[container("main", "c1", CREATED)])
    assert "waiting" in _cs(generate_status(pod(), created, StatusInputs()), "main")["state"]


def test_transition_times_and_foreign_conditions_are_kept():
    p = pod()
    p["status"] = {"startTime": "2020-01-01T00:00:00Z", "conditions": [
        {"type": "Ready", "status": "True", "lastTransitionTime": "2020-01-01T00:00:05Z"},
        {"type": "DisruptionTarget", "status": "True", "reason": "EvictionByEvictionAPI"},
    ]}
    rs = runtime_status(sandboxes=[sandbox()], containers=[container("main", "c1")])
    status = generate_status(p, rs, StatusInputs(ready={"c1": True}))
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["lastTransitionTime"] == "2020-01-01T00:00:05Z"
    assert status["startTime"] == "2020-01-01T00:00:00Z"
    assert any(c["type"] == "DisruptionTarget" for c in status["conditions"])
    # the same inputs give the same comparable status: nothing to write
    again = generate_status({**p, "status": status}, rs, StatusInputs(ready={"c1": True}))
    assert comparable(again) == comparable(status)


def test_readiness_gates():
    p = pod(readinessGates=[{"conditionType": "example.com/lb"}])
    rs = runtime_status(sandboxes=[sandbox()], containers=[container("main", "c1")])
    status = generate_status(p, rs, StatusInputs(ready={"c1": True}))
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False" and ready["reason"] == "ReadinessGatesNotReady"
    p["status"]["conditions"] = [{"type": "example.com/lb", "status": "True"}]
    assert _conds(generate_status(p, rs, StatusInputs(ready={"c1": True})))["Ready"] == "True"


def test_termination_messages_and_oom():
    oom = container("main", "c1", EXITED, exit_code=137, reason="OOMKilled")
    rs = runtime_status(sandboxes=[sandbox()], containers=[oom])
    status = generate_status(pod(restartPolicy="Never"), rs, StatusInputs(termination_messages={"c1": "bye"}))
    terminated = _cs(status, "main")["state"]["terminated"]
    assert terminated == {**terminated, "reason": "OOMKilled", "exitCode": 137, "message": "bye"}


SIDECAR = {"name": "proxy", "image": "x", "restartPolicy": "Always"}


def test_a_sidecar_is_a_running_container_once_started():
    p = pod(initContainers=[SIDECAR])
    rs = runtime_status(sandboxes=[sandbox()], containers=[container("proxy", "s1", init=True)])
    # started, ready (no probes): the pod is initialized while the main container is created
    status = generate_status(p, rs, StatusInputs(ready={"s1": True}))
    s = _cs(status, "proxy", "initContainerStatuses")
    assert s["started"] and s["ready"] and "running" in s["state"]
    assert _conds(status)["Initialized"] == "True"
    assert _cs(status, "main")["state"]["waiting"]["reason"] == "ContainerCreating"
    assert status["phase"] == "Pending"  # main is still waiting
    # a startup probe that has not passed keeps the pod initializing
    status = generate_status(p, rs, StatusInputs(ready={"s1": True}, started={"s1": False}))
    s = _cs(status, "proxy", "initContainerStatuses")
    assert not s["started"] and not s["ready"]
    init = next(c for c in status["conditions"] if c["type"] == "Initialized")
    assert init["status"] == "False" and init["message"] == "containers with incomplete status: [proxy]"
    assert _cs(status, "main")["state"]["waiting"]["reason"] == "PodInitializing"


def test_an_unready_sidecar_makes_the_pod_unready():
    p = pod(initContainers=[SIDECAR])
    rs = runtime_status(sandboxes=[sandbox()], containers=[
        container("proxy", "s1", init=True), container("main", "c1", created=2)])
    status = generate_status(p, rs, StatusInputs(ready={"s1": False, "c1": True}))
    assert status["phase"] == "Running"
    ready = next(c for c in status["conditions"] if c["type"] == "ContainersReady")
    assert ready["status"] == "False" and ready["message"] == "containers with unready status: [proxy]"
    assert _conds(generate_status(p, rs, StatusInputs(ready={"s1": True, "c1": True})))["Ready"] == "True"


def test_a_restarting_sidecar_neither_fails_nor_un_initializes_the_pod():
    p = pod(initContainers=[SIDECAR], restartPolicy="Never")
    rs = runtime_status(sandboxes=[sandbox()], containers=[
        container("proxy", "s1", EXITED, exit_code=1, init=True, finished=20), container("main", "c1", created=2)])
    waiting = {"proxy": ("CrashLoopBackOff", "back-off 10s")}
    status = generate_status(p, rs, StatusInputs(ready={"c1": True}, waiting=waiting))
    s = _cs(status, "proxy", "initContainerStatuses")
    assert s["state"]["waiting"]["reason"] == "CrashLoopBackOff" and s["lastState"]["terminated"]["exitCode"] == 1
    assert status["phase"] == "Running" and _conds(status)["Initialized"] == "True"


def test_a_pod_whose_regular_containers_finished_succeeds_whatever_its_sidecar_did():
    p = pod(initContainers=[SIDECAR], restartPolicy="Never")
    running_sidecar = runtime_status(sandboxes=[sandbox()], containers=[
        container("proxy", "s1", init=True), container("main", "c1", EXITED, created=2)])
    assert generate_status(p, running_sidecar, StatusInputs(ready={"s1": True}))["phase"] == "Running"
    stopped = runtime_status(sandboxes=[sandbox(ready=False)], containers=[
        container("proxy", "s1", EXITED, exit_code=143, init=True), container("main", "c1", EXITED, created=2)])
    status = generate_status(p, stopped, StatusInputs())
    assert status["phase"] == "Succeeded"
    init = next(c for c in status["conditions"] if c["type"] == "Initialized")
    assert init["status"] == "True" and init["reason"] == "PodCompleted"
    failed = runtime_status(sandboxes=[sandbox(ready=False)], containers=[
        container("proxy", "s1", EXITED, exit_code=0, init=True), container("main", "c1", EXITED, exit_code=2, created=2)])
    status = generate_status(p, failed, StatusInputs())
    assert status["phase"] == "Failed"
    assert next(c for c in status["conditions"] if c["type"] == "Ready")["reason"] == "PodFailed"
