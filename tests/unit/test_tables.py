"""Server-side printing: upstream's columns and cell formats."""

from __future__ import annotations

import datetime as dt

from apimachinery.duration import human_duration, short_human_duration
from apiserver import tables

NOW = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.UTC)


def ts(seconds_ago: int) -> str:
    return (NOW - dt.timedelta(seconds=seconds_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_human_duration_matches_upstream() -> None:
    cases = {0: "0s", 59: "59s", 119: "119s", 120: "2m", 150: "2m30s", 600: "10m", 10799: "179m", 10800: "3h",
             3 * 3600 + 1800: "3h30m", 8 * 3600: "8h", 47 * 3600: "47h", 48 * 3600: "2d", 50 * 3600: "2d2h",
             8 * 86400: "8d", 800 * 86400: "2y70d", 9 * 365 * 86400: "9y"}
    for seconds, want in cases.items():
        assert human_duration(seconds) == want, seconds
    assert human_duration(-5) == "<invalid>"


def test_short_human_duration_matches_upstream() -> None:
    cases = {-2: "<invalid>", -1: "0s", 0: "0s", 59: "59s", 60: "1m", 3599: "59m", 3600: "1h", 86399: "23h",
             86400: "1d", 364 * 86400: "364d", 365 * 86400: "1y", 800 * 86400: "2y"}
    for seconds, want in cases.items():
        assert short_human_duration(seconds) == want, seconds


def pod(phase: str = "Running", **status) -> dict:
    return {"metadata": {"name": "p", "creationTimestamp": ts(90)},
            "spec": {"containers": [{"name": "a"}, {"name": "b"}], "nodeName": "n1"},
            "status": {"phase": phase, "podIP": "10.244.0.5", **status}}


def test_pod_row_columns() -> None:
    p = pod(containerStatuses=[
        {"name": "a", "ready": True, "restartCount": 1, "state": {"running": {}},
         "lastState": {"terminated": {"finishedAt": ts(300)}}},
        {"name": "b", "ready": False, "restartCount": 2, "state": {"waiting": {"reason": "CrashLoopBackOff"}}},
    ])
    t = tables.table("pods", [p], now=NOW)
    assert [c["name"] for c in t["columnDefinitions"]] == ["Name", "Ready", "Status", "Restarts", "Age", "IP", "Node",
                                                           "Nominated Node", "Readiness Gates"]
    assert [c["priority"] for c in t["columnDefinitions"]][:5] == [0] * 5
    assert t["rows"][0]["cells"] == ["p", "1/2", "CrashLoopBackOff", "3 (5m ago)", "90s", "10.244.0.5", "n1", "<none>", "<none>"]
    assert t["rows"][0]["object"]["kind"] == "PartialObjectMetadata"


def test_pod_status_reasons() -> None:
    assert tables.pod_status_reason(pod("Pending")) == "Pending"
    assert tables.pod_status_reason(pod("Succeeded", containerStatuses=[
        {"state": {"terminated": {"reason": "Completed", "exitCode": 0}}}])) == "Completed"
    assert tables.pod_status_reason(pod("Failed", containerStatuses=[
        {"state": {"terminated": {"exitCode": 3}}}])) == "ExitCode:3"
    init = pod("Pending", initContainerStatuses=[{"state": {"running": {}}}])
    init["spec"]["initContainers"] = [{"name": "i"}]
    assert tables.pod_status_reason(init) == "Init:0/1"
    deleting = pod()
    deleting["metadata"]["deletionTimestamp"] = ts(1)
    assert tables.pod_status_reason(deleting) == "Terminating"


def test_other_kinds_and_default() -> None:
    svc = {"metadata": {"name": "web", "creationTimestamp": ts(30)},
           "spec": {"type": "NodePort", "clusterIP": "10.96.0.10", "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}],
                    "selector": {"app": "web"}}}
    assert tables.table("services", [svc], now=NOW)["rows"][0]["cells"] == ["web", "NodePort", "10.96.0.10", "<none>",
                                                                            "80:30080/TCP", "30s", "app=web"]
    dep = {"metadata": {"name": "d", "creationTimestamp": ts(30)},
           "spec": {"replicas": 3, "selector": {"matchLabels": {"a": "b"}},
                    "template": {"spec": {"containers": [{"name": "c", "image": "nginx"}]}}},
           "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}}
    assert tables.table("deployments", [dep], now=NOW)["rows"][0]["cells"] == ["d", "2/3", 3, 2, "30s", "c", "nginx", "a=b"]
    other = tables.table("widgets", [{"metadata": {"name": "w", "creationTimestamp": ts(5)}}], include_object="None", now=NOW)
    assert [c["name"] for c in other["columnDefinitions"]] == ["Name", "Created At"]
    assert "object" not in other["rows"][0]


def test_accept_negotiation() -> None:
    kubectl = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
    assert tables.wants_table(kubectl)
    assert not tables.wants_table("application/json")
    assert not tables.wants_table("application/json, application/json;as=Table;v=v1;g=meta.k8s.io")


def test_persistent_volume_and_claim_rows() -> None:
    pv = {"metadata": {"name": "pv1", "creationTimestamp": ts(90)},
          "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteMany", "ReadWriteOnce"],
                   "persistentVolumeReclaimPolicy": "Delete", "storageClassName": "standard",
                   "claimRef": {"namespace": "default", "name": "data"}, "volumeMode": "Filesystem"},
          "status": {"phase": "Bound"}}
    t = tables.table("persistentvolumes", [pv], now=NOW)
    assert [c["name"] for c in t["columnDefinitions"]] == [
        "Name", "Capacity", "Access Modes", "Reclaim Policy", "Status", "Claim", "StorageClass",
        "VolumeAttributesClass", "Reason", "Age", "VolumeMode"]
    assert t["rows"][0]["cells"] == ["pv1", "1Gi", "RWO,RWX", "Delete", "Bound", "default/data", "standard", "<unset>",
                                     "", "90s", "Filesystem"]
    bound = {"metadata": {"name": "data", "creationTimestamp": ts(30)},
             "spec": {"volumeName": "pv1", "storageClassName": "standard"},
             "status": {"phase": "Bound", "accessModes": ["ReadWriteOnce"], "capacity": {"storage": "1024Mi"}}}
    pending = {"metadata": {"name": "wait", "creationTimestamp": ts(30), "deletionTimestamp": ts(1)},
               "spec": {}, "status": {"phase": "Pending"}}
    rows = [r["cells"] for r in tables.table("persistentvolumeclaims", [bound, pending], now=NOW)["rows"]]
    assert rows == [["data", "Bound", "pv1", "1Gi", "RWO", "standard", "<unset>", "30s", "<unset>"],
                    ["wait", "Terminating", "", "", "", "", "<unset>", "30s", "<unset>"]]


def test_pod_row_with_sidecars() -> None:
    p = pod(containerStatuses=[
        {"name": "a", "ready": True, "restartCount": 0, "state": {"running": {}}},
        {"name": "b", "ready": True, "restartCount": 1, "state": {"running": {}},
         "lastState": {"terminated": {"finishedAt": ts(600)}}},
    ], initContainerStatuses=[
        {"name": "setup", "ready": True, "restartCount": 4, "state": {"terminated": {"exitCode": 0}}},
        {"name": "proxy", "ready": True, "started": True, "restartCount": 2, "state": {"running": {}},
         "lastState": {"terminated": {"finishedAt": ts(120)}}},
    ], conditions=[{"type": "Initialized", "status": "True"}, {"type": "Ready", "status": "True"}])
    p["spec"]["initContainers"] = [{"name": "setup"}, {"name": "proxy", "restartPolicy": "Always"}]
    # the sidecar counts as a container; the finished init container's restarts do not count any more
    assert tables.table("pods", [p], now=NOW)["rows"][0]["cells"][1:4] == ["3/3", "Running", "3 (2m ago)"]
    starting = pod("Pending", initContainerStatuses=[
        {"name": "setup", "restartCount": 1, "state": {"running": {}}},
        {"name": "proxy", "started": False, "ready": False, "restartCount": 0, "state": {"waiting": {"reason": "PodInitializing"}}},
    ])
    starting["spec"]["initContainers"] = p["spec"]["initContainers"]
    assert tables.table("pods", [starting], now=NOW)["rows"][0]["cells"][1:4] == ["0/3", "Init:0/2", "1"]
    finished = pod("Succeeded", containerStatuses=[{"state": {"terminated": {"reason": "Completed", "exitCode": 0}}}])
    finished["metadata"]["deletionTimestamp"] = ts(1)
    assert tables.pod_status_reason(finished) == "Completed"  # a finished pod being deleted is not Terminating


def test_job_status_column_in_upstream_order() -> None:
    """printJob (1.31): Complete, Failed, Terminating, Suspended, FailureTarget, else Running."""
    def status(*conditions: str, deleting: bool = False) -> str:
        j = {"metadata": {"name": "j", "creationTimestamp": ts(60)}, "spec": {"completions": 2, "template": {"spec": {}}},
             "status": {"succeeded": 1, "startTime": ts(50), "conditions": [
                 {"type": c.lstrip("!"), "status": "False" if c.startswith("!") else "True"} for c in conditions]}}
        if deleting:
            j["metadata"]["deletionTimestamp"] = ts(1)
        row = tables.table("jobs", [j], now=NOW)["rows"][0]["cells"]
        assert row[2:4] == ["1/2", "50s"]
        return row[1]

    assert status() == "Running"
    assert status("SuccessCriteriaMet") == "Running"  # kubectl shows it only from 1.34 on
    assert status("SuccessCriteriaMet", "Complete") == "Complete"
    assert status("FailureTarget", "Failed", deleting=True) == "Failed"
    assert status("FailureTarget", "Suspended", deleting=True) == "Terminating"
    assert status("FailureTarget", "Suspended") == "Suspended"
    assert status("FailureTarget", "!Suspended") == "FailureTarget"
    assert status("!Complete", "!Failed") == "Running"
