"""computePodActions: what one sync of a pod must do, from its spec and runtime status."""

from kubelet.podactions import compute_pod_actions, sandbox_changed
from kubelet.runtime import EXITED
from tests.unit.kubelet_fakes import container, pod, runtime_status, sandbox


def test_a_new_pod_gets_a_sandbox_and_all_its_containers():
    p = pod(containers=[{"name": "a", "image": "x"}, {"name": "b", "image": "x"}])
    actions = compute_pod_actions(p, runtime_status(), {})
    assert actions.create_sandbox and actions.kill_pod and actions.attempt == 0
    assert actions.start == ["a", "b"] and actions.start_init == []


def test_init_containers_run_first_one_at_a_time():
    spec_init = [{"name": "i1", "image": "x"}, {"name": "i2", "image": "x"}]
    p = pod(initContainers=spec_init)
    assert compute_pod_actions(p, runtime_status(), {}).start_init == ["i1"]
    rs = runtime_status(sandboxes=[sandbox()], containers=[container("i1", "c1", EXITED, exit_code=0, init=True)])
    actions = compute_pod_actions(p, rs, {})
    assert actions.start_init == ["i2"] and not actions.start and not actions.create_sandbox
    running_init = runtime_status(sandboxes=[sandbox()], containers=[container("i1", "c1", init=True)])
    actions = compute_pod_actions(p, running_init, {})
    assert actions.start_init == [] and not actions.start  # wait for it
    done = runtime_status(sandboxes=[sandbox()], containers=[
        container("i1", "c1", EXITED, init=True), container("i2", "c2", EXITED, created=2, init=True)])
    assert compute_pod_actions(p, done, {}).start == ["main"]


def test_a_failed_init_container_is_retried_unless_restart_policy_never():
    p = pod(initContainers=[{"name": "i1", "image": "x"}])
    rs = runtime_status(sandboxes=[sandbox()], containers=[container("i1", "c1", EXITED, exit_code=1, init=True)])
    assert compute_pod_actions(p, rs, {}).start_init == ["i1"]
    never = pod(initContainers=[{"name": "i1", "image": "x"}], restartPolicy="Never")
    actions = compute_pod_actions(never, rs, {})
    assert actions.init_failed and actions.kill_pod and actions.start_init == []


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


# -- sidecars: init containers with restartPolicy Always ---------------------------------------

SIDECAR = {"name": "proxy", "image": "x", "restartPolicy": "Always"}
INIT = {"name": "setup", "image": "x"}


def test_a_sidecar_starts_first_and_the_sequence_goes_on_while_it_runs():
    p = pod(initContainers=[SIDECAR, INIT])
    assert compute_pod_actions(p, runtime_status(), {}).start_init == ["proxy"]
    running = runtime_status(sandboxes=[sandbox()], containers=[container("proxy", "s1", init=True, spec=SIDECAR)])
    actions = compute_pod_actions(p, running, {})
    assert actions.start_init == ["setup"] and not actions.initialized and not actions.start
    done = runtime_status(sandboxes=[sandbox()], containers=[
        container("proxy", "s1", init=True, spec=SIDECAR), container("setup", "i1", EXITED, created=2, init=True)])
    actions = compute_pod_actions(p, done, {})
    assert actions.initialized and actions.start_init == [] and actions.start == ["main"] and not actions.kill_pod


def test_a_sidecar_with_a_startup_probe_holds_the_sequence_until_it_passed():
    probed = {**SIDECAR, "startupProbe": {"exec": {"command": ["true"]}}}
    p = pod(initContainers=[probed, INIT])
    rs = runtime_status(sandboxes=[sandbox()], containers=[container("proxy", "s1", init=True, spec=probed)])
    assert compute_pod_actions(p, rs, {}).start_init == []
    assert compute_pod_actions(p, rs, {}, {"s1"}).start_init == ["setup"]
    failed = compute_pod_actions(p, rs, {"s1": ("startup", "no")})
    assert failed.kill == {"s1": "Init container proxy failed startup probe"} and failed.start_init == ["proxy"]


def test_a_last_sidecar_running_initializes_the_pod():
    p = pod(initContainers=[INIT, SIDECAR])
    rs = runtime_status(sandboxes=[sandbox()], containers=[
        container("setup", "i1", EXITED, init=True), container("proxy", "s1", created=2, init=True, spec=SIDECAR)])
    actions = compute_pod_actions(p, rs, {})
    assert actions.initialized and actions.start == ["main"] and actions.start_init == []


def test_an_exited_sidecar_is_restarted_whatever_the_pods_policy_and_the_regular_ones_keep_running():
    p = pod(initContainers=[INIT, SIDECAR], restartPolicy="Never")
    rs = runtime_status(sandboxes=[sandbox()], containers=[
        container("setup", "i1", EXITED, init=True), container("proxy", "s1", EXITED, exit_code=1, created=2, init=True),
        container("main", "c1", created=3)])
    actions = compute_pod_actions(p, rs, {})
    assert actions.start_init == ["proxy"] and actions.initialized and not actions.kill_pod
    assert actions.kill == {} and actions.start == []
    # the regular init container that ran before is never run again
    assert "setup" not in actions.start_init


def test_a_sidecar_whose_container_is_gone_is_brought_back():
    p = pod(initContainers=[INIT, SIDECAR])
    rs = runtime_status(sandboxes=[sandbox()], containers=[container("main", "c1")])
    actions = compute_pod_actions(p, rs, {})
    assert actions.start_init == ["proxy"] and "setup" not in actions.start_init


def test_liveness_failures_and_spec_changes_restart_a_sidecar():
    p = pod(initContainers=[SIDECAR])
    rs = runtime_status(sandboxes=[sandbox()], containers=[
        container("proxy", "s1", init=True, spec=SIDECAR), container("main", "c1", created=2)])
    actions = compute_pod_actions(p, rs, {"s1": ("liveness", "down")})
    assert actions.kill == {"s1": "Init container proxy failed liveness probe"} and actions.start_init == ["proxy"]
    changed = pod(initContainers=[{**SIDECAR, "image": "y"}])
    actions = compute_pod_actions(changed, rs, {})
    assert actions.kill == {"s1": "Init container proxy definition changed"} and actions.start_init == ["proxy"]


def test_sidecars_do_not_keep_a_finished_pod_alive():
    p = pod(initContainers=[SIDECAR], restartPolicy="Never")
    rs = runtime_status(sandboxes=[sandbox()], containers=[
        container("proxy", "s1", init=True, spec=SIDECAR), container("main", "c1", EXITED, created=2)])
    actions = compute_pod_actions(p, rs, {})
    assert actions.kill_pod and actions.start_init == [] and actions.start == []
    # afterwards (the sandbox stopped with them) the sidecar is not brought back
    stopped = runtime_status(sandboxes=[sandbox(ready=False)], containers=[
        container("proxy", "s1", EXITED, exit_code=143, init=True), container("main", "c1", EXITED, created=2)])
    actions = compute_pod_actions(p, stopped, {})
    assert not actions.create_sandbox and actions.start_init == [] and actions.start == []
