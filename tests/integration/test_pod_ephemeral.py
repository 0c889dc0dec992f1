"""pods/<name>/ephemeralcontainers against the real apiserver: GET, PUT and the three patch types,
upstream's refusals, and `kubectl debug` adding a debugger (no kubelet here: the API side only)."""

from __future__ import annotations

import json
from typing import Any

import httpx

from tests.conftest import ControlPlane

IMAGE = "localhost/minik8s/busybox:1.35"
SMP = {"content-type": "application/strategic-merge-patch+json"}
MERGE = {"content-type": "application/merge-patch+json"}
JSON_PATCH = {"content-type": "application/json-patch+json"}


def _pod(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": name}},
            "spec": {"containers": [{"name": "c", "image": IMAGE}], **spec}}


def _debugger(name: str = "dbg", **fields: Any) -> dict[str, Any]:
    return {"name": name, "image": IMAGE, "command": ["sh"], **fields}


def _create(api: httpx.Client, ns: str, name: str) -> dict[str, Any]:
    r = api.post(f"/api/v1/namespaces/{ns}/pods", json=_pod(name))
    assert r.status_code == 201, r.text
    return r.json()


def _invalid(r: httpx.Response) -> dict[str, Any]:
    assert r.status_code == 422, r.text
    st = r.json()
    assert st["reason"] == "Invalid" and st["details"]["kind"] == "Pod"
    return st


def test_get_and_strategic_patch_add_a_defaulted_ephemeral_container(api: httpx.Client, namespace: str) -> None:
    created = _create(api, namespace, "p")
    url = f"/api/v1/namespaces/{namespace}/pods/p/ephemeralcontainers"
    got = api.get(url).json()
    assert got["kind"] == "Pod" and got["metadata"]["uid"] == created["metadata"]["uid"]
    # what kubectl debug sends, plus changes outside spec.ephemeralContainers that must be dropped
    patch = {"metadata": {"labels": {"app": "changed"}},
             "spec": {"containers": [{"name": "c", "image": "other:1"}],
                      "ephemeralContainers": [_debugger(resources={}, targetContainerName="c", stdin=True, tty=True)]},
             "status": {"phase": "Failed"}}
    r = api.patch(url, json=patch, headers=SMP)
    assert r.status_code == 200, r.text
    pod = r.json()
    (ec,) = pod["spec"]["ephemeralContainers"]
    assert ec["name"] == "dbg" and ec["targetContainerName"] == "c" and ec["stdin"] and ec["tty"]
    assert (ec["terminationMessagePolicy"], ec["terminationMessagePath"], ec["imagePullPolicy"]) == (
        "File", "/dev/termination-log", "IfNotPresent")
    assert pod["metadata"]["labels"] == {"app": "p"}
    assert pod["spec"]["containers"][0]["image"] == IMAGE and pod["status"]["phase"] == "Pending"
    assert pod["metadata"]["generation"] == 2  # a spec change, as upstream's updatePodGeneration
    assert api.get(f"/api/v1/namespaces/{namespace}/pods/p").json()["spec"]["ephemeralContainers"] == [ec]


def test_put_json_and_merge_patches_append_and_keep_what_exists(api: httpx.Client, namespace: str) -> None:
    _create(api, namespace, "p")
    url = f"/api/v1/namespaces/{namespace}/pods/p/ephemeralcontainers"
    pod = api.get(url).json()
    pod["spec"]["ephemeralContainers"] = [_debugger("one")]
    r = api.put(url, json=pod)
    assert r.status_code == 200, r.text
    stale = pod  # its resourceVersion is now old
    stale["spec"]["ephemeralContainers"].append(_debugger("late"))
    r = api.put(url, json=stale)
    assert r.status_code == 409 and r.json()["reason"] == "Conflict", r.text
    r = api.patch(url, json=[{"op": "add", "path": "/spec/ephemeralContainers/-", "value": _debugger("two")}],
                  headers=JSON_PATCH)
    assert r.status_code == 200, r.text
    current = r.json()["spec"]["ephemeralContainers"]
    r = api.patch(url, json={"spec": {"ephemeralContainers": [*current, _debugger("three")]}}, headers=MERGE)
    assert r.status_code == 200, r.text
    assert [c["name"] for c in r.json()["spec"]["ephemeralContainers"]] == ["one", "two", "three"]
    # applying the same list again changes nothing (no write, same resourceVersion)
    again = api.patch(url, json={"spec": {"ephemeralContainers": r.json()["spec"]["ephemeralContainers"]}},
                      headers=MERGE)
    assert again.json()["metadata"]["resourceVersion"] == r.json()["metadata"]["resourceVersion"]


def test_existing_ephemeral_containers_may_not_be_removed_or_changed(api: httpx.Client, namespace: str) -> None:
    _create(api, namespace, "p")
    url = f"/api/v1/namespaces/{namespace}/pods/p/ephemeralcontainers"
    assert api.patch(url, json={"spec": {"ephemeralContainers": [_debugger()]}}, headers=SMP).status_code == 200
    st = _invalid(api.patch(url, json={"spec": {"ephemeralContainers": [_debugger("other")]}}, headers=MERGE))
    assert st["message"] == ('Pod "p" is invalid: spec.ephemeralContainers: Forbidden: '
                             'existing ephemeral containers "dbg" may not be removed\n')
    assert st["details"]["causes"] == [{"reason": "FieldValueForbidden", "field": "spec.ephemeralContainers",
                                        "message": 'Forbidden: existing ephemeral containers "dbg" may not be removed\n'}]
    st = _invalid(api.patch(url, json={"spec": {"ephemeralContainers": [{"name": "dbg", "image": "other:2"}]}},
                            headers=SMP))
    assert st["message"].startswith(
        'Pod "p" is invalid: spec.ephemeralContainers: Forbidden: existing ephemeral containers "dbg" may not be changed\n')
    assert '"other:2"' in st["message"]


def test_invalid_ephemeral_containers_are_refused_as_upstream(api: httpx.Client, namespace: str) -> None:
    _create(api, namespace, "p")
    url = f"/api/v1/namespaces/{namespace}/pods/p/ephemeralcontainers"

    def refused(ec: dict[str, Any]) -> list[tuple[str, str]]:
        st = _invalid(api.patch(url, json={"spec": {"ephemeralContainers": [ec]}}, headers=SMP))
        return [(c["field"], c["message"]) for c in st["details"]["causes"]]

    forbidden = "Forbidden: cannot be set for an Ephemeral Container"
    assert refused(_debugger(ports=[{"containerPort": 80}], lifecycle={"preStop": {"exec": {"command": ["true"]}}},
                             readinessProbe={"exec": {"command": ["true"]}})) == [
        ("spec.ephemeralContainers[0].ports", forbidden),
        ("spec.ephemeralContainers[0].readinessProbe", forbidden),
        ("spec.ephemeralContainers[0].lifecycle", forbidden),
    ]
    assert refused(_debugger(resources={"limits": {"cpu": "1"}})) == [("spec.ephemeralContainers[0].resources", forbidden)]
    assert refused(_debugger(targetContainerName="nope")) == [
        ("spec.ephemeralContainers[0].targetContainerName", 'Not found: "nope"')]
    assert refused(_debugger("c")) == [("spec.ephemeralContainers[0].name", 'Duplicate value: "c"')]
    assert refused({"name": "dbg"}) == [("spec.ephemeralContainers[0].image", "Required value")]
    st = _invalid(api.patch(url, json={"spec": {"ephemeralContainers": [_debugger(restartPolicy="Always")]}},
                            headers=SMP))
    assert st["message"] == ('Pod "p" is invalid: spec.ephemeralContainers[0].restartPolicy: '
                             'Forbidden: cannot be set for an Ephemeral Container')
    # nothing of that was stored
    assert "ephemeralContainers" not in api.get(url).json()["spec"]


def test_ephemeral_containers_only_through_the_subresource(api: httpx.Client, namespace: str) -> None:
    base = f"/api/v1/namespaces/{namespace}/pods"
    st = _invalid(api.post(base, json=_pod("born", ephemeralContainers=[_debugger()])))
    assert st["message"] == 'Pod "born" is invalid: spec.ephemeralContainers: Forbidden: cannot be set on create'
    pod = _create(api, namespace, "p")
    pod["spec"]["ephemeralContainers"] = [_debugger()]
    st = _invalid(api.put(f"{base}/p", json=pod))
    assert st["message"].startswith('Pod "p" is invalid: spec: Forbidden: pod updates may not change fields other than ')
    st = _invalid(api.patch(f"{base}/p", json={"spec": {"ephemeralContainers": [_debugger()]}}, headers=SMP))
    assert "pod updates may not change fields other than" in st["message"]
    # once added through the subresource, ordinary updates carry them along untouched
    r = api.patch(f"{base}/p/ephemeralcontainers", json={"spec": {"ephemeralContainers": [_debugger()]}}, headers=SMP)
    assert r.status_code == 200, r.text
    r = api.patch(f"{base}/p", json={"metadata": {"labels": {"more": "x"}}}, headers=MERGE)
    assert r.status_code == 200 and r.json()["spec"]["ephemeralContainers"][0]["name"] == "dbg", r.text


def test_missing_pod_and_static_pods(api: httpx.Client, namespace: str) -> None:
    r = api.patch(f"/api/v1/namespaces/{namespace}/pods/missing/ephemeralcontainers",
                  json={"spec": {"ephemeralContainers": [_debugger()]}}, headers=SMP)
    assert r.status_code == 404, r.text
    # a real pod's 404 names it: kubectl debug tells it from a disabled feature by details.name
    assert r.json()["details"] == {"name": "missing", "kind": "pods"}
    mirror = _pod("mirror", nodeName="n1")
    mirror["metadata"]["annotations"] = {"kubernetes.io/config.mirror": "abc"}
    assert api.post(f"/api/v1/namespaces/{namespace}/pods", json=mirror).status_code == 201
    st = _invalid(api.patch(f"/api/v1/namespaces/{namespace}/pods/mirror/ephemeralcontainers",
                            json={"spec": {"ephemeralContainers": [_debugger()]}}, headers=SMP))
    assert st["details"]["causes"][0]["message"] == "Forbidden: static pods do not support ephemeral containers"


def test_kubectl_debug_adds_a_debugger(control_plane: ControlPlane, api: httpx.Client, namespace: str) -> None:
    _create(api, namespace, "web")
    k = control_plane.kubectl
    out = k("-n", namespace, "debug", "web", f"--image={IMAGE}", "-c", "dbg", "--target=c", "--", "sh", "-c", "echo hi")
    assert out.returncode == 0, out.stderr
    # a second one: kubectl's strategic merge patch now carries $setElementOrder for the list
    k("-n", namespace, "debug", "web", f"--image={IMAGE}", "-c", "dbg2", "--", "true")
    pod = json.loads(k("-n", namespace, "get", "pod", "web", "-o", "json").stdout)
    first, second = pod["spec"]["ephemeralContainers"]
    assert (first["name"], first["targetContainerName"], first["command"]) == ("dbg", "c", ["sh", "-c", "echo hi"])
    assert second["name"] == "dbg2" and "targetContainerName" not in second
    r = k("-n", namespace, "debug", "web", f"--image={IMAGE}", "-c", "c", "--", "true", check=False)
    assert r.returncode != 0 and 'spec.ephemeralContainers[2].name: Duplicate value: "c"' in r.stderr
