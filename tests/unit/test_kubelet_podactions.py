"""computePodActions: what one sync of a pod must do, from its spec and runtime status."""

from kubelet.podactions import compute_pod_actions, sandbox_changed
from kubelet.runtime import EXITED
from tests.unit.kubelet_fakes import container, pod, runtime_status, sandbox


def test_a_new_pod_gets_a_sandbox_and_all_its_containers():
    p = pod(containers=[{"name": "a", "image": "x"}, {"name": "b", "image": "x"}])
    actions = compute_pod_actions(p, runtime_status(), {})
    assert actions.create_sandbox and actions.kill_pod and actions.attempt == 0
    assert actions.start == ["a", "b"] and actions.next_init is None


def test_init_containers_run_first_one_at_a_time():
    spec_init = [{"name": "i1", "image": "x"}, {"name": "i2", "image": "x"}]
    p = pod(initContainers=spec_init)
    assert compute_pod_actions(p, runtime_status(), {}).next_init == "i1"
    rs = runtime_status(sandboxes=[sandbox()], containers=[container("i1", "c1", EXITED, exit_code=0, init=True)])
    actions = compute_pod_actions(p, rs, {})
    assert actions.next_init == "i2" and not actions.start and not actions.create_sandbox
    running_init = runtime_status(sandboxes=[sandbox()], containers=[container("i1", "c1", init=True)])
    actions = compute_pod_actions(p, running_init, {})
    assert actions.next_init is None and not actions.start  # wait for it
    done = runtime_status(sandboxes=[sandbox()], containers=[
        container("i1", "c1", EXITED, init=True), container("i2", "c2", EXITED, created=2, init=True)])
    assert compute_pod_actions(p, done, {}).start == ["main"]


def test_a_failed_init_container_is_retried_unless_restart_policy_never():
    p = pod(initContainers=[{"name": "i1", "image": "x"}])
    rs = runtime_status(sandboxes=[sandbox()], containers=[container("i1", "c1", EXITED, exit_code=1, init=True)])
    assert compute_pod_actions(p, rs, {}).next_init == "i1"
    never = pod(initContainers=[{"name": "i1", "image": "x"}], restartPolicy="Never")
    actions = compute_pod_actions(never, rs, {})
    assert actions.init_failed and actions.kill_pod and actions.next_init is None


def test_restart_policies_for_exited_containers():
    spec = {"name": "main", "image": "busybox"}
    failed = runtime_status(sandboxes=[sandbox()], containers=[container("main", "c1", EXITED, exit_code=2)])
    succeeded = runtime_status(sandboxes=[sandbox()], containers=[container("main", "c1", EXITED, exit_code=0)])
    assert compute_pod_actions(pod(containers=[spec]), failed, {}).start == ["main"]
    assert compute_pod_actions(pod(containers=[spec]), succeeded, {}).start == ["main"]
    on_failure = pod(containers=[spec], restartPolicy="OnFailure")
    assert compute_pod_actions(on_failure, failed, {}).start == ["main"]
    done = compute_pod_actions(on_failure, succeeded, {})
    assert done.start == [] and done.kill_pod  # nothing left to run: stop the sandbox
    never = pod(containers=[spec], restartPolicy="Never")
    actions = compute_pod_actions(never, failed, {})
    assert actions.start == [] and actions.kill_pod


def test_a_stopped_sandbox_of_a_finished_pod_is_not_recreated():
    never = pod(restartPolicy="Never")
    rs = runtime_status(sandboxes=[sandbox(ready=False)], containers=[container("main", "c1", EXITED)])
    actions = compute_pod_actions(never, rs, {})
    assert not actions.create_sandbox
    always = compute_pod_actions(pod(), rs, {})
    assert always.create_sandbox and always.attempt == 1 and always.start == ["main"]


def test_liveness_failures_and_spec_changes_kill_and_restart():
    spec = {"name": "main", "image": "busybox"}
    rs = runtime_status(sandboxes=[sandbox()], containers=[container("main", "c1", spec=spec)])
    assert compute_pod_actions(pod(containers=[spec]), rs, {}).kill == {}
    actions = compute_pod_actions(pod(containers=[spec]), rs, {"c1": ("liveness", "boom")})
    assert actions.kill == {"c1": "Container main failed liveness probe, will be restarted"}
    assert actions.start == ["main"]
    changed = {"name": "main", "image": "busybox:2"}
    actions = compute_pod_actions(pod(containers=[changed]), rs, {})
    assert actions.kill == {"c1": "Container main definition changed, will be restarted"} and actions.start == ["main"]
    never = compute_pod_actions(pod(containers=[spec], restartPolicy="Never"), rs, {"c1": ("liveness", "x")})
    assert never.kill == {"c1": "Container main failed liveness probe"} and never.start == []
    # a changed spec restarts the container whatever the restart policy (upstream's computePodActions)
    never_changed = compute_pod_actions(pod(containers=[changed], restartPolicy="Never"), rs, {})
    assert never_changed.kill == {"c1": "Container main definition changed, will be restarted"}
    assert never_changed.start == ["main"] and not never_changed.kill_pod


def test_sandbox_changes():
    assert sandbox_changed(pod(), runtime_status()) == (True, 0, "")
    assert sandbox_changed(pod(), runtime_status(sandboxes=[sandbox("s1")])) == (False, 0, "s1")
    no_ip = runtime_status(sandboxes=[sandbox("s1", ip="")])
    assert sandbox_changed(pod(), no_ip)[0] is True
    assert sandbox_changed(pod(hostNetwork=True), no_ip)[0] is False
    two = runtime_status(sandboxes=[sandbox("s2", attempt=1), sandbox("s1")])
    assert sandbox_changed(pod(), two) == (True, 2, "s2")
