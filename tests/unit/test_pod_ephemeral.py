"""Ephemeral containers: the pods/ephemeralcontainers strategy and validation (upstream's
podEphemeralContainersStrategy, ValidatePodEphemeralContainersUpdate, validateEphemeralContainers),
and the kubelet's pure parts (what a sync starts, the status it reports, the CRI config)."""

from __future__ import annotations

import copy
from typing import Any

from apiserver.registry.core import PodStrategy
from kubelet import naming
from kubelet.containerconfig import ConfigBuilder
from kubelet.cri import pb
from kubelet.podactions import compute_pod_actions
from kubelet.podstatus import StatusInputs, generate_status
from kubelet.runtime import EXITED
from tests.unit.kubelet_fakes import container, pod, runtime_status, sandbox

ST = PodStrategy()
FORBIDDEN = "Forbidden: cannot be set for an Ephemeral Container"


def _stored(**spec: Any) -> dict[str, Any]:
    """A pod as the apiserver stores it (defaulted, with a resourceVersion)."""
    obj = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "p", "namespace": "ns", "uid": "u1", "resourceVersion": "5", "labels": {"a": "b"}},
           "spec": {"containers": [{"name": "c", "image": "busybox:1.35"}],
                    "initContainers": [{"name": "init", "image": "busybox:1.35"}],
                    "volumes": [{"name": "v", "emptyDir": {}}], **spec},
           "status": {"phase": "Running"}}
    ST.default(obj)
    return obj


def _ec(name: str = "dbg", **fields: Any) -> dict[str, Any]:
    return {"name": name, "image": "busybox:1.35", **fields}


def _ephemeral_write(old: dict[str, Any], written: dict[str, Any]) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """What update_object does for the subresource: prepare, default, validate."""
    obj = ST.prepare_for_subresource_update("ephemeralcontainers", copy.deepcopy(written), old)
    ST.default(obj)
    causes = ST.validate_subresource_update("ephemeralcontainers", obj, old, True)
    return obj, [(c["field"], c["message"]) for c in causes]


def _with(old: dict[str, Any], *ecs: dict[str, Any]) -> dict[str, Any]:
    new = copy.deepcopy(old)
    new["spec"]["ephemeralContainers"] = list(ecs)
    return new


def test_only_ephemeral_containers_change_through_the_subresource():
    old = _stored()
    written = _with(old, _ec(targetContainerName="c"))
    written["metadata"]["labels"] = {"x": "y"}
    written["spec"]["containers"][0]["image"] = "other"
    written["spec"]["activeDeadlineSeconds"] = 5
    written["status"] = {"phase": "Failed"}
    obj, causes = _ephemeral_write(old, written)
    assert causes == []
    assert obj["metadata"]["labels"] == {"a": "b"} and obj["status"] == old["status"]
    assert obj["spec"]["containers"] == old["spec"]["containers"] and "activeDeadlineSeconds" not in obj["spec"]
    (ec,) = obj["spec"]["ephemeralContainers"]
    # defaulted as a container is (upstream SetDefaults_EphemeralContainer)
    assert (ec["terminationMessagePolicy"], ec["terminationMessagePath"], ec["imagePullPolicy"]) == (
        "File", "/dev/termination-log", "IfNotPresent")
    assert ST.spec_changed(obj, old)  # generation moves, as upstream's updatePodGeneration
    assert old["spec"].get("ephemeralContainers") is None  # the stored pod is left alone


def test_existing_ones_may_not_be_removed_or_changed():
    old = _stored(ephemeralContainers=[_ec("one"), _ec("two")])
    ST.default(old)
    _, causes = _ephemeral_write(old, _with(old, old["spec"]["ephemeralContainers"][1]))
    assert causes == [("spec.ephemeralContainers",
                       'Forbidden: existing ephemeral containers "one" may not be removed\n')]
    changed = copy.deepcopy(old["spec"]["ephemeralContainers"])
    changed[0]["image"] = "other:1"
    _, causes = _ephemeral_write(old, _with(old, *changed))
    assert len(causes) == 1 and causes[0][0] == "spec.ephemeralContainers"
    assert causes[0][1].startswith('Forbidden: existing ephemeral containers "one" may not be changed\n')
    assert '-\timage: "busybox:1.35"' in causes[0][1] and '+\timage: "other:1"' in causes[0][1]
    # reordering (a patch keeps no order) and appending are fine
    _, causes = _ephemeral_write(old, _with(old, *reversed(old["spec"]["ephemeralContainers"]), _ec("three")))
    assert causes == []


def test_forbidden_fields_and_their_zero_values():
    old = _stored()
    probe = {"exec": {"command": ["true"]}}
    bad = _ec(ports=[{"containerPort": 80}], resources={"limits": {"cpu": "1"}}, resizePolicy=[{"resourceName": "cpu"}],
              restartPolicy="Always", livenessProbe=probe, readinessProbe=probe, startupProbe=probe,
              lifecycle={"postStart": probe})
    _, causes = _ephemeral_write(old, _with(old, bad))
    assert causes == [(f"spec.ephemeralContainers[0].{f}", FORBIDDEN) for f in (
        "ports", "resources", "resizePolicy", "restartPolicy", "livenessProbe", "readinessProbe", "startupProbe",
        "lifecycle")]
    # what kubectl debug sends: Go's zero values, not set as far as upstream is concerned
    _, causes = _ephemeral_write(old, _with(old, _ec(resources={}, ports=[], stdin=True, tty=True,
                                                     securityContext={"capabilities": {"add": ["SYS_PTRACE"]}})))
    assert causes == []


def test_names_targets_images_and_mounts():
    old = _stored()
    cases = [
        (_ec("c"), ("spec.ephemeralContainers[0].name", 'Duplicate value: "c"')),
        (_ec("init"), ("spec.ephemeralContainers[0].name", 'Duplicate value: "init"')),
        (_ec("Bad_Name"), ("spec.ephemeralContainers[0].name", "Invalid value: \"Bad_Name\": a lowercase RFC 1123 "
                           "label must consist of lower case alphanumeric characters or '-', and must start and end "
                           "with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation "
                           "is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')")),
        ({"name": "dbg"}, ("spec.ephemeralContainers[0].image", "Required value")),
        (_ec(targetContainerName="nope"), ("spec.ephemeralContainers[0].targetContainerName", 'Not found: "nope"')),
        (_ec(volumeMounts=[{"name": "v", "mountPath": "/v", "subPath": "x"}]),
         ("spec.ephemeralContainers[0].volumeMounts[0].subPath", FORBIDDEN)),
        (_ec(volumeMounts=[{"name": "gone", "mountPath": "/v"}]),
         ("spec.ephemeralContainers[0].volumeMounts[0].name", 'Not found: "gone"')),
    ]
    for ec, cause in cases:
        _, causes = _ephemeral_write(old, _with(old, ec))
        assert causes == [cause], ec
    # an init container is a valid target; another ephemeral container is not (upstream)
    _, causes = _ephemeral_write(old, _with(old, _ec(targetContainerName="init")))
    assert causes == []
    _, causes = _ephemeral_write(old, _with(old, _ec("one"), _ec("two", targetContainerName="one"), _ec("one")))
    assert causes == [("spec.ephemeralContainers[1].targetContainerName", 'Not found: "one"'),
                      ("spec.ephemeralContainers[2].name", 'Duplicate value: "one"')]


def test_static_pods_take_none():
    old = _stored()
    old["metadata"]["annotations"] = {"kubernetes.io/config.mirror": "hash"}
    _, causes = _ephemeral_write(old, _with(old, _ec()))
    assert causes == [("", "Forbidden: static pods do not support ephemeral containers")]


def test_create_and_ordinary_updates_may_not_set_them():
    new = _stored(ephemeralContainers=[_ec()])
    assert [(c["field"], c["message"]) for c in ST.validate(new, True)] == [
        ("spec.ephemeralContainers", "Forbidden: cannot be set on create")]
    old = _stored()
    causes = ST.validate_update(_with(old, _ec()), old, True)
    assert [c["field"] for c in causes] == ["spec"]
    assert causes[0]["message"].startswith("Forbidden: pod updates may not change fields other than ")
    # a pod that has them (added through the subresource) updates normally
    has = _with(old, _ec())
    ST.default(has)
    relabeled = copy.deepcopy(has)
    relabeled["metadata"]["labels"] = {"new": "label"}
    assert ST.validate_update(relabeled, has, True) == []


# -- the kubelet ---------------------------------------------------------------------------------


def _debug_pod(**spec: Any) -> dict[str, Any]:
    return pod(ephemeralContainers=[{"name": "dbg", "image": "busybox", "targetContainerName": "main"}], **spec)


def test_a_sync_starts_an_ephemeral_container_once():
    p = _debug_pod()
    rs = runtime_status(sandboxes=[sandbox()], containers=[container("main", "c1")])
    actions = compute_pod_actions(p, rs, {})
    assert actions.ephemeral == ["dbg"] and not actions.start and not actions.kill_pod
    for state in ("running", EXITED):  # once created it is never started again, whatever became of it
        ran = runtime_status(sandboxes=[sandbox()], containers=[container("main", "c1"), container("dbg", "e1", state)])
        assert compute_pod_actions(p, ran, {}).ephemeral == []
    # even while an init container runs (upstream), but not into a sandbox about to be replaced
    initing = _debug_pod(initContainers=[{"name": "i", "image": "x"}])
    rs = runtime_status(sandboxes=[sandbox()], containers=[container("i", "c0", init=True)])
    assert compute_pod_actions(initing, rs, {}).ephemeral == ["dbg"]
    assert compute_pod_actions(p, runtime_status(), {}).ephemeral == []


def test_status_reports_ephemeral_containers_apart():
    p = _debug_pod()
    rs = runtime_status(sandboxes=[sandbox()], containers=[container("main", "c1"), container("dbg", "e1", created=2)])
    status = generate_status(p, rs, StatusInputs(ready={"c1": True, "e1": True}))
    (s,) = status["ephemeralContainerStatuses"]
    assert s["name"] == "dbg" and "running" in s["state"] and s["ready"] is False and "started" not in s
    assert s["containerID"] == "containerd://e1" and s["restartCount"] == 0
    assert [c["name"] for c in status["containerStatuses"]] == ["main"] and status["phase"] == "Running"
    # an exited one stays terminated (never restarted) and does not touch the pod's phase or readiness
    rs = runtime_status(sandboxes=[sandbox()], containers=[
        container("main", "c1"), container("dbg", "e1", EXITED, exit_code=3, created=2, finished=20)])
    status = generate_status(p, rs, StatusInputs(ready={"c1": True}))
    (s,) = status["ephemeralContainerStatuses"]
    assert s["state"]["terminated"]["exitCode"] == 3 and s["state"]["terminated"]["reason"] == "Error"
    assert status["phase"] == "Running"
    assert {c["type"]: c["status"] for c in status["conditions"]}["Ready"] == "True"
    # not created yet: waiting, with the sync's reason when there is one
    rs = runtime_status(sandboxes=[sandbox()], containers=[container("main", "c1")])
    status = generate_status(p, rs, StatusInputs(waiting={"dbg": ("ErrImagePull", "no such image")}))
    assert status["ephemeralContainerStatuses"][0]["state"] == {
        "waiting": {"reason": "ErrImagePull", "message": "no such image"}}
    assert "ephemeralContainerStatuses" not in generate_status(pod(), rs, StatusInputs())


def test_cri_config_joins_the_targets_pid_namespace(tmp_path):
    p = _debug_pod(shareProcessNamespace=False)
    ec = p["spec"]["ephemeralContainers"][0]
    builder = ConfigBuilder("node1", ["10.96.0.10"], "cluster.local", "", tmp_path, 1 << 30)
    kw: dict[str, Any] = {"init": False, "restart_count": 0, "image_ref": "sha256:img", "env": [], "command": ["sh"],
                          "args": [], "mounts": [], "termination_file": ""}
    config = builder.container_config(p, ec, target_id="abc123", **kw)
    ns = config.linux.security_context.namespace_options
    assert (ns.pid, ns.target_id, ns.network, ns.ipc) == (pb.TARGET, "abc123", pb.POD, pb.POD)
    assert config.labels[naming.CONTAINER_TYPE] == "ephemeral" and config.log_path == "dbg/0.log"
    plain = builder.container_config(p, ec, **kw).linux.security_context.namespace_options
    assert (plain.pid, plain.target_id) == (pb.CONTAINER, "")
    shared = builder.container_config(_debug_pod(shareProcessNamespace=True), ec, **kw)
    assert shared.linux.security_context.namespace_options.pid == pb.POD
