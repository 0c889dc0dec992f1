"""The generic handler's verbs against a real apiserver + etcd."""

from __future__ import annotations

import httpx

from tests.conftest import wait_for

#: published by the cluster in every namespace, as upstream's root-CA publisher does
SYSTEM_CONFIGMAPS = {"kube-root-ca.crt"}


def user_items(items: list[dict]) -> list[dict]:
    return [i for i in items if i["metadata"]["name"] not in SYSTEM_CONFIGMAPS]


def cm(name: str, data: dict | None = None, **meta) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, **meta}, "data": data or {"k": "v"}}


def pod(name: str, **spec) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "c", "image": "busybox"}], **spec},
    }


def test_create_get_list_delete(api: httpx.Client, namespace: str) -> None:
    base = f"/api/v1/namespaces/{namespace}/configmaps"
    r = api.post(base, json=cm("a"))
    assert r.status_code == 201, r.text
    created = r.json()
    meta = created["metadata"]
    assert meta["namespace"] == namespace
    assert meta["uid"] and meta["creationTimestamp"].endswith("Z")
    assert int(meta["resourceVersion"]) > 0
    assert "generation" not in meta  # configmaps don't track generation

    got = api.get(f"{base}/a").json()
    assert got == created

    items = api.get(base).json()
    assert items["kind"] == "ConfigMapList" and [i["metadata"]["name"] for i in user_items(items["items"])] == ["a"]
    assert int(items["metadata"]["resourceVersion"]) >= int(meta["resourceVersion"])

    r = api.delete(f"{base}/a")
    assert r.status_code == 200
    status = r.json()
    assert status["kind"] == "Status" and status["status"] == "Success"
    assert status["details"] == {"name": "a", "kind": "configmaps", "uid": meta["uid"]}
    assert api.get(f"{base}/a").status_code == 404


def test_generate_name(api: httpx.Client, namespace: str) -> None:
    names = set()
    for _ in range(5):
        r = api.post(f"/api/v1/namespaces/{namespace}/configmaps", json=cm("", generateName="gen-"))
        assert r.status_code == 201, r.text
        name = r.json()["metadata"]["name"]
        assert name.startswith("gen-") and len(name) == len("gen-") + 5
        names.add(name)
    assert len(names) == 5


def test_already_exists_and_conflict(api: httpx.Client, namespace: str) -> None:
    base = f"/api/v1/namespaces/{namespace}/configmaps"
    first = api.post(base, json=cm("x")).json()
    r = api.post(base, json=cm("x"))
    assert r.status_code == 409 and r.json()["reason"] == "AlreadyExists"

    # update with the current resourceVersion works and bumps it
    upd = dict(first, data={"k": "v2"})
    r = api.put(f"{base}/x", json=upd)
    assert r.status_code == 200, r.text
    second = r.json()
    assert int(second["metadata"]["resourceVersion"]) > int(first["metadata"]["resourceVersion"])
    # the same stale resourceVersion again is a conflict, and nothing changes
    r = api.put(f"{base}/x", json=dict(first, data={"k": "stale"}))
    assert r.status_code == 409 and r.json()["reason"] == "Conflict"
    assert api.get(f"{base}/x").json()["data"] == {"k": "v2"}
    # without resourceVersion, last write wins
    nor = dict(second, data={"k": "v3"})
    nor["metadata"] = {k: v for k, v in second["metadata"].items() if k != "resourceVersion"}
    assert api.put(f"{base}/x", json=nor).json()["data"] == {"k": "v3"}


def test_noop_update_keeps_resource_version(api: httpx.Client, namespace: str) -> None:
    base = f"/api/v1/namespaces/{namespace}/configmaps"
    obj = api.post(base, json=cm("same")).json()
    again = api.put(f"{base}/same", json=obj).json()
    assert again["metadata"]["resourceVersion"] == obj["metadata"]["resourceVersion"]


def test_patches(api: httpx.Client, namespace: str) -> None:
    base = f"/api/v1/namespaces/{namespace}/configmaps"
    api.post(base, json=cm("p", {"a": "1", "b": "2"}))
    r = api.patch(f"{base}/p", content=b'{"data":{"a":null,"c":"3"}}', headers={"content-type": "application/merge-patch+json"})
    assert r.status_code == 200 and r.json()["data"] == {"b": "2", "c": "3"}
    r = api.patch(f"{base}/p", content=b'[{"op":"replace","path":"/data/b","value":"B"}]',
                  headers={"content-type": "application/json-patch+json"})
    assert r.status_code == 200 and r.json()["data"] == {"b": "B", "c": "3"}
    r = api.patch(f"{base}/p", content=b'{"metadata":{"labels":{"l":"1"}}}',
                  headers={"content-type": "application/strategic-merge-patch+json"})
    assert r.status_code == 200 and r.json()["metadata"]["labels"] == {"l": "1"}
    # a failing json-patch test op changes nothing
    before = api.get(f"{base}/p").json()
    r = api.patch(f"{base}/p", content=b'[{"op":"test","path":"/data/b","value":"nope"},{"op":"remove","path":"/data/c"}]',
                  headers={"content-type": "application/json-patch+json"})
    assert r.status_code == 422
    assert api.get(f"{base}/p").json() == before


def test_dry_run_writes_nothing(api: httpx.Client, namespace: str) -> None:
    base = f"/api/v1/namespaces/{namespace}/configmaps"
    r = api.post(f"{base}?dryRun=All", json=cm("dry"))
    assert r.status_code == 201 and r.json()["metadata"]["name"] == "dry"
    assert api.get(f"{base}/dry").status_code == 404
    api.post(base, json=cm("dry2"))
    r = api.delete(f"{base}/dry2?dryRun=All")
    assert r.status_code == 200
    assert api.get(f"{base}/dry2").status_code == 200
    r = api.patch(f"{base}/dry2?dryRun=All", content=b'{"data":{"k":"changed"}}',
                  headers={"content-type": "application/merge-patch+json"})
    assert r.json()["data"]["k"] == "changed"
    assert api.get(f"{base}/dry2").json()["data"]["k"] == "v"


def test_label_and_field_selectors(api: httpx.Client, namespace: str) -> None:
    base = f"/api/v1/namespaces/{namespace}/configmaps"
    for name, labels in [("l1", {"app": "a", "tier": "web"}), ("l2", {"app": "b"}), ("l3", {"app": "a"})]:
        api.post(base, json=cm(name, labels=labels))

    def names(q: str) -> list[str]:
        return [i["metadata"]["name"] for i in user_items(api.get(f"{base}?{q}").json()["items"])]

    assert names("labelSelector=app%3Da") == ["l1", "l3"]
    assert names("labelSelector=app%21%3Da") == ["l2"]
    assert names("labelSelector=app+in+(a,b),tier") == ["l1"]
    assert names("labelSelector=%21tier") == ["l2", "l3"]
    assert names("labelSelector=app+notin+(a)") == ["l2"]
    assert names("fieldSelector=metadata.name%3Dl2") == ["l2"]
    assert names("fieldSelector=metadata.name%21%3Dl2") == ["l1", "l3"]
    r = api.get(f"{base}?fieldSelector=spec.bogus%3D1")
    assert r.status_code == 400 and "field label not supported" in r.json()["message"]


def test_pod_field_selectors(api: httpx.Client, namespace: str) -> None:
    base = f"/api/v1/namespaces/{namespace}/pods"
    api.post(base, json=pod("on-n1", nodeName="n1"))
    api.post(base, json=pod("unbound"))
    got = api.get("/api/v1/pods?fieldSelector=spec.nodeName%3Dn1").json()["items"]
    assert [p["metadata"]["name"] for p in got if p["metadata"]["namespace"] == namespace] == ["on-n1"]
    got = api.get(f"{base}?fieldSelector=spec.nodeName%3D,status.phase%3DPending").json()["items"]
    assert [p["metadata"]["name"] for p in got] == ["unbound"]


def test_pagination_is_consistent(api: httpx.Client, namespace: str) -> None:
    base = f"/api/v1/namespaces/{namespace}/configmaps"
    for i in range(7):
        api.post(base, json=cm(f"page-{i}", labels={"pg": "1"}))
    first = api.get(f"{base}?limit=3&labelSelector=pg%3D1").json()
    assert len(first["items"]) == 3 and first["metadata"]["continue"]
    rv = first["metadata"]["resourceVersion"]
    # a write between pages must not show up: pages are read at the first page's revision
    api.post(base, json=cm("page-late", labels={"pg": "1"}))
    seen = [i["metadata"]["name"] for i in first["items"]]
    token = first["metadata"]["continue"]
    while token:
        page = api.get(f"{base}?limit=3&labelSelector=pg%3D1&continue={token}").json()
        assert page["metadata"]["resourceVersion"] == rv
        seen += [i["metadata"]["name"] for i in page["items"]]
        token = page["metadata"].get("continue")
    assert seen == [f"page-{i}" for i in range(7)]
    r = api.get(f"{base}?limit=3&continue=garbage")
    assert r.status_code == 400


def test_pages_without_selectors_count_what_is_left(api: httpx.Client, namespace: str) -> None:
    base = f"/api/v1/namespaces/{namespace}/configmaps"
    for i in range(5):
        api.post(base, json=cm(f"rest-{i}"))
    counts = []
    page = api.get(f"{base}?limit=2").json()
    while True:
        counts.append(page["metadata"].get("remainingItemCount"))
        if not page["metadata"].get("continue"):
            break
        page = api.get(f"{base}?limit=2&continue={page['metadata']['continue']}").json()
    n = len(api.get(base).json()["items"])  # the namespace's own objects besides ours (e.g. its root CA)
    # each page but the last says how many are left after it; the last has no count
    assert n >= 5 and counts == [n - 2 * (k + 1) for k in range(len(counts) - 1)] + [None]
    # a selector makes the count inexact: upstream leaves it out
    selected = api.get(f"{base}?limit=2&labelSelector=none%21%3Dx").json()
    assert selected["metadata"].get("continue") and "remainingItemCount" not in selected["metadata"]


def test_generation_and_status_subresource(api: httpx.Client, namespace: str) -> None:
    base = f"/apis/apps/v1/namespaces/{namespace}/deployments"
    dep = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
        "spec": {"selector": {"matchLabels": {"a": "b"}},
                 "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "nginx:1"}]}}},
        "status": {"replicas": 99},
    }
    created = api.post(base, json=dep).json()
    assert created["metadata"]["generation"] == 1
    assert "replicas" not in (created.get("status") or {})  # status is not settable on create
    assert created["spec"]["replicas"] == 1 and created["spec"]["strategy"]["rollingUpdate"]["maxSurge"] == "25%"
    c = created["spec"]["template"]["spec"]["containers"][0]
    assert c["imagePullPolicy"] == "IfNotPresent" and c["terminationMessagePath"] == "/dev/termination-log"

    # status write through /status: spec unchanged, generation unchanged
    st = dict(created, status={"replicas": 3, "observedGeneration": 1})
    st["spec"] = dict(created["spec"], replicas=50)
    r = api.put(f"{base}/d/status", json=st)
    assert r.status_code == 200, r.text
    assert r.json()["status"]["replicas"] == 3 and r.json()["spec"]["replicas"] == 1
    assert r.json()["metadata"]["generation"] == 1
    # main resource writes ignore status and bump generation on spec change
    r = api.patch(f"{base}/d", content=b'{"spec":{"replicas":4},"status":{"replicas":0}}',
                  headers={"content-type": "application/merge-patch+json"})
    assert r.json()["spec"]["replicas"] == 4 and r.json()["status"]["replicas"] == 3
    assert r.json()["metadata"]["generation"] == 2
    # metadata-only change: no generation bump
    r = api.patch(f"{base}/d", content=b'{"metadata":{"labels":{"x":"y"}}}',
                  headers={"content-type": "application/merge-patch+json"})
    assert r.json()["metadata"]["generation"] == 2


def test_scale_subresource(api: httpx.Client, namespace: str) -> None:
    base = f"/apis/apps/v1/namespaces/{namespace}/replicasets"
    rs = {
        "apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "r"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"a": "b"}},
                 "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}},
    }
    api.post(base, json=rs)
    scale = api.get(f"{base}/r/scale").json()
    assert scale["kind"] == "Scale" and scale["apiVersion"] == "autoscaling/v1"
    assert scale["spec"]["replicas"] == 2 and scale["status"]["selector"] == "a=b"
    scale["spec"]["replicas"] = 5
    r = api.put(f"{base}/r/scale", json=scale)
    assert r.status_code == 200 and r.json()["spec"]["replicas"] == 5
    assert api.get(f"{base}/r").json()["spec"]["replicas"] == 5
    r = api.patch(f"{base}/r/scale", content=b'{"spec":{"replicas":1}}', headers={"content-type": "application/merge-patch+json"})
    assert r.json()["spec"]["replicas"] == 1
    # a stale Scale resourceVersion conflicts
    r = api.put(f"{base}/r/scale", json=scale)
    assert r.status_code == 409


def test_binding(api: httpx.Client, namespace: str) -> None:
    base = f"/api/v1/namespaces/{namespace}/pods"
    api.post(base, json=pod("b"))
    binding = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "b"}, "target": {"kind": "Node", "name": "n1"}}
    r = api.post(f"{base}/b/binding", json=binding)
    assert r.status_code == 201, r.text
    p = api.get(f"{base}/b").json()
    assert p["spec"]["nodeName"] == "n1"
    assert {"type": "PodScheduled", "status": "True"}.items() <= p["status"]["conditions"][0].items()
    r = api.post(f"{base}/b/binding", json=dict(binding, target={"kind": "Node", "name": "n2"}))
    assert r.status_code == 409


def test_pod_defaults_and_graceful_delete(api: httpx.Client, namespace: str) -> None:
    base = f"/api/v1/namespaces/{namespace}/pods"
    p = api.post(base, json=pod("g", nodeName="n1")).json()
    spec = p["spec"]
    assert spec["restartPolicy"] == "Always" and spec["dnsPolicy"] == "ClusterFirst"
    assert spec["schedulerName"] == "default-scheduler" and spec["terminationGracePeriodSeconds"] == 30
    assert spec["serviceAccountName"] == "default" and spec["enableServiceLinks"] is True
    assert spec["containers"][0]["imagePullPolicy"] == "Always"  # untagged
    assert p["status"]["phase"] == "Pending" and p["status"]["qosClass"] == "BestEffort"
    keys = {t["key"] for t in spec["tolerations"]}
    assert keys == {"node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"}

    # a bound pod is deleted gracefully: marked, not removed
    r = api.delete(f"{base}/g")
    assert r.status_code == 200
    marked = r.json()
    assert marked["kind"] == "Pod" and marked["metadata"]["deletionTimestamp"]
    assert marked["metadata"]["deletionGracePeriodSeconds"] == 30
    assert api.get(f"{base}/g").status_code == 200
    # the kubelet's final delete with grace 0 removes it
    r = api.delete(f"{base}/g", params={"gracePeriodSeconds": 0})
    assert r.status_code == 200
    assert api.get(f"{base}/g").status_code == 404
    # an unscheduled pod goes at once
    api.post(base, json=pod("u"))
    api.delete(f"{base}/u")
    assert api.get(f"{base}/u").status_code == 404


def test_workload_templates_get_pod_spec_defaults_but_not_pod_ones(api: httpx.Client, namespace: str) -> None:
    """Upstream defaults a template's PodSpec (SetDefaults_PodSpec) but not what SetDefaults_Pod adds."""
    body = {"metadata": {"name": "d"}, "spec": {"selector": {"matchLabels": {"a": "d"}}, "template": {
        "metadata": {"labels": {"a": "d"}}, "spec": {"containers": [{"name": "c", "image": "x:1"}]}}}}
    r = api.post(f"/apis/apps/v1/namespaces/{namespace}/deployments", json=body)
    assert r.status_code == 201, r.text
    spec = r.json()["spec"]["template"]["spec"]
    assert spec["restartPolicy"] == "Always" and spec["dnsPolicy"] == "ClusterFirst"
    assert "enableServiceLinks" not in spec


def test_finalizers_hold_deletion(api: httpx.Client, namespace: str) -> None:
    base = f"/api/v1/namespaces/{namespace}/configmaps"
    api.post(base, json=cm("f", finalizers=["example.com/hold"]))
    r = api.delete(f"{base}/f")
    assert r.status_code == 200 and r.json()["metadata"]["deletionTimestamp"]
    held = api.get(f"{base}/f").json()
    assert held["metadata"]["deletionTimestamp"]
    r = api.patch(f"{base}/f", content=b'{"metadata":{"finalizers":null}}', headers={"content-type": "application/merge-patch+json"})
    assert r.status_code == 200
    assert api.get(f"{base}/f").status_code == 404


def test_delete_preconditions_and_propagation(api: httpx.Client, namespace: str) -> None:
    base = f"/api/v1/namespaces/{namespace}/configmaps"
    obj = api.post(base, json=cm("pre")).json()
    r = api.request("DELETE", f"{base}/pre", json={"kind": "DeleteOptions", "apiVersion": "v1",
                                                    "preconditions": {"uid": "not-the-uid"}})
    assert r.status_code == 409
    r = api.request("DELETE", f"{base}/pre", json={"kind": "DeleteOptions", "apiVersion": "v1",
                                                    "propagationPolicy": "Foreground"})
    assert r.status_code == 200
    held = api.get(f"{base}/pre").json()
    assert held["metadata"]["finalizers"] == ["foregroundDeletion"] and held["metadata"]["deletionTimestamp"]
    r = api.request("DELETE", f"{base}/pre", json={"kind": "DeleteOptions", "apiVersion": "v1",
                                                    "preconditions": {"uid": obj["metadata"]["uid"]}})
    assert r.status_code == 200


def test_a_job_deleted_without_a_policy_keeps_its_pods(api: httpx.Client, namespace: str) -> None:
    """batch/v1 orphans by default (upstream's DefaultGarbageCollectionPolicy) and says so."""
    base = f"/apis/batch/v1/namespaces/{namespace}/jobs"
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "kept"},
           "spec": {"template": {"spec": {"restartPolicy": "Never",
                                          "containers": [{"name": "c", "image": "busybox"}]}}}}
    api.post(base, json=job)
    r = api.delete(f"{base}/kept")
    assert r.status_code == 200
    assert "child pods are preserved by default when jobs are deleted" in r.headers["warning"]
    assert r.json()["metadata"]["finalizers"] == ["orphan"]  # the garbage collector orphans, then deletes
    api.post(base, json={**job, "metadata": {"name": "gone"}})
    r = api.request("DELETE", f"{base}/gone", json={"propagationPolicy": "Background"})
    assert r.status_code == 200 and "warning" not in r.headers
    assert api.get(f"{base}/gone").status_code == 404
    # an explicit finalizer already on the object decides, as upstream
    api.post(base, json={**job, "metadata": {"name": "fg", "finalizers": ["foregroundDeletion"]}})
    assert api.delete(f"{base}/fg").json()["metadata"]["finalizers"] == ["foregroundDeletion"]
    # other kinds keep deleting dependents in the background without a warning
    api.post(f"/api/v1/namespaces/{namespace}/configmaps", json=cm("plain"))
    r = api.delete(f"/api/v1/namespaces/{namespace}/configmaps/plain")
    assert r.status_code == 200 and "warning" not in r.headers


def test_deletecollection(api: httpx.Client, namespace: str) -> None:
    base = f"/api/v1/namespaces/{namespace}/configmaps"
    for i in range(4):
        api.post(base, json=cm(f"dc{i}", labels={"grp": "x" if i < 3 else "y"}))
    r = api.delete(f"{base}?labelSelector=grp%3Dx")
    assert r.status_code == 200 and len(r.json()["items"]) == 3
    assert [i["metadata"]["name"] for i in user_items(api.get(base).json()["items"])] == ["dc3"]


def test_services_allocate_cluster_ip_and_node_ports(api: httpx.Client, namespace: str) -> None:
    base = f"/api/v1/namespaces/{namespace}/services"
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s1"},
           "spec": {"selector": {"app": "a"}, "ports": [{"port": 80}]}}
    s1 = api.post(base, json=svc).json()
    ip = s1["spec"]["clusterIP"]
    assert ip.startswith("10.96.") and ip != "10.96.0.1" and s1["spec"]["clusterIPs"] == [ip]
    assert s1["spec"]["ports"][0]["targetPort"] == 80 and s1["spec"]["ports"][0]["protocol"] == "TCP"
    # asking for a taken IP fails with 422 naming the field
    dup = {**svc, "metadata": {"name": "s2"}, "spec": {**svc["spec"], "clusterIP": ip}}
    r = api.post(base, json=dup)
    assert r.status_code == 422 and r.json()["details"]["causes"][0]["field"] == "spec.clusterIPs"
    np = {**svc, "metadata": {"name": "np"}, "spec": {**svc["spec"], "type": "NodePort"}}
    created = api.post(base, json=np).json()
    port = created["spec"]["ports"][0]["nodePort"]
    assert 30000 <= port <= 32767
    clash = {**np, "metadata": {"name": "np2"}, "spec": {**np["spec"], "ports": [{"port": 80, "nodePort": port}]}}
    r = api.post(base, json=clash)
    assert r.status_code == 422 and "already allocated" in r.json()["message"]
    # deleting frees both; the IP can be claimed again
    api.delete(f"{base}/s1")
    r = api.post(base, json={**dup, "metadata": {"name": "s3"}})
    assert r.status_code == 201 and r.json()["spec"]["clusterIP"] == ip
    # clusterIP is immutable
    s3 = r.json()
    s3["spec"]["clusterIP"] = "10.96.200.200"
    s3["spec"]["clusterIPs"] = ["10.96.200.200"]
    assert api.put(f"{base}/s3", json=s3).status_code == 422


MERGE = {"Content-Type": "application/merge-patch+json"}
STRATEGIC = {"Content-Type": "application/strategic-merge-patch+json"}


def _service(name: str, **spec) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"selector": {"app": "a"}, "ports": [{"port": 80}], **spec}}


def test_nodeport_to_clusterip_drops_and_frees_node_ports(api: httpx.Client, namespace: str) -> None:
    """kubectl patch svc x -p '{"spec":{"type":"ClusterIP"}}': upstream drops the unchanged
    nodePorts (and externalTrafficPolicy) instead of refusing them, and frees the ports."""
    base = f"/api/v1/namespaces/{namespace}/services"
    two = [{"name": "http", "port": 80}, {"name": "dns", "port": 53, "protocol": "UDP"}]
    r = api.post(base, json=_service("np", type="NodePort", externalTrafficPolicy="Local", ports=two))
    assert r.status_code == 201, r.text
    before = r.json()
    held = [p["nodePort"] for p in before["spec"]["ports"]]
    assert all(held) and before["spec"]["externalTrafficPolicy"] == "Local"

    r = api.patch(f"{base}/np", json={"spec": {"type": "ClusterIP"}}, headers=MERGE)
    assert r.status_code == 200, r.text
    spec = r.json()["spec"]
    assert spec["type"] == "ClusterIP" and spec["clusterIP"] == before["spec"]["clusterIP"]
    assert all("nodePort" not in p for p in spec["ports"])
    assert "externalTrafficPolicy" not in spec
    assert api.get(f"{base}/np").json()["spec"] == spec

    # the released ports are free at once for another service
    r = api.post(base, json=_service("taker", type="NodePort", ports=[
        {"name": "a", "port": 80, "nodePort": held[0]}, {"name": "b", "port": 81, "nodePort": held[1]}]))
    assert r.status_code == 201, r.text
    assert [p["nodePort"] for p in r.json()["spec"]["ports"]] == held


def test_put_to_clusterip_with_old_node_ports_is_accepted(api: httpx.Client, namespace: str) -> None:
    """A PUT (kubectl replace / edit) of the read object with only `type` changed."""
    base = f"/api/v1/namespaces/{namespace}/services"
    svc = api.post(base, json=_service("put", type="NodePort")).json()
    port = svc["spec"]["ports"][0]["nodePort"]
    svc["spec"]["type"] = "ClusterIP"
    r = api.put(f"{base}/put", json=svc)
    assert r.status_code == 200, r.text
    assert "nodePort" not in r.json()["spec"]["ports"][0]
    # a PUT that leaves clusterIP out keeps it, as upstream (not "may not change once set")
    body = r.json()
    ip = body["spec"].pop("clusterIP")
    body["spec"].pop("clusterIPs")
    body["metadata"].pop("resourceVersion")
    r = api.put(f"{base}/put", json=body)
    assert r.status_code == 200, r.text
    assert r.json()["spec"]["clusterIP"] == ip and r.json()["spec"]["clusterIPs"] == [ip]
    r = api.post(base, json=_service("put2", type="NodePort", ports=[{"port": 80, "nodePort": port}]))
    assert r.status_code == 201, r.text


def test_loadbalancer_to_clusterip_drops_load_balancer_fields(api: httpx.Client, namespace: str) -> None:
    base = f"/api/v1/namespaces/{namespace}/services"
    r = api.post(base, json=_service("lb", type="LoadBalancer", loadBalancerClass="example.com/lb",
                                     externalTrafficPolicy="Local", healthCheckNodePort=31999))
    assert r.status_code == 201, r.text
    spec = r.json()["spec"]
    assert spec["allocateLoadBalancerNodePorts"] is True and spec["ports"][0]["nodePort"]
    port = spec["ports"][0]["nodePort"]
    status = {"loadBalancer": {"ingress": [{"ip": "192.0.2.10"}]}}
    r = api.patch(f"{base}/lb/status", json={"status": status}, headers=MERGE)
    assert r.status_code == 200, r.text

    r = api.patch(f"{base}/lb", json={"spec": {"type": "ClusterIP"}}, headers=STRATEGIC)
    assert r.status_code == 200, r.text
    got = r.json()
    for f in ("allocateLoadBalancerNodePorts", "loadBalancerClass", "externalTrafficPolicy", "healthCheckNodePort"):
        assert f not in got["spec"], f
    assert "nodePort" not in got["spec"]["ports"][0]
    assert got["status"] == {"loadBalancer": {}}
    r = api.post(base, json=_service("lb2", type="NodePort", ports=[{"port": 80, "nodePort": port}]))
    assert r.status_code == 201, r.text


def test_clusterip_with_a_changed_node_port_is_refused(api: httpx.Client, namespace: str) -> None:
    """Only unchanged nodePorts are dropped: asking for a new one on a ClusterIP service is
    an error (upstream: sameNodePorts fails, validation forbids the field), and nothing is freed."""
    base = f"/api/v1/namespaces/{namespace}/services"
    svc = api.post(base, json=_service("chg", type="NodePort")).json()
    port = svc["spec"]["ports"][0]["nodePort"]
    other = 30000 + (port - 30000 + 1) % 2768
    r = api.patch(f"{base}/chg", json={"spec": {"type": "ClusterIP", "ports": [{"port": 80, "nodePort": other}]}},
                  headers=STRATEGIC)
    assert r.status_code == 422, r.text
    causes = r.json()["details"]["causes"]
    assert causes == [{"reason": "FieldValueForbidden", "field": "spec.ports[0].nodePort",
                       "message": "Forbidden: may not be used when `type` is 'ClusterIP'"}]
    stored = api.get(f"{base}/chg").json()
    assert stored["spec"]["type"] == "NodePort" and stored["spec"]["ports"][0]["nodePort"] == port
    r = api.post(base, json=_service("chg2", type="NodePort", ports=[{"port": 80, "nodePort": port}]))
    assert r.status_code == 422 and "already allocated" in r.json()["message"]
    # a changed externalTrafficPolicy is not dropped either
    r = api.patch(f"{base}/chg", json={"spec": {"type": "ClusterIP", "externalTrafficPolicy": "Local"}}, headers=MERGE)
    assert r.status_code == 422, r.text
    assert [c["field"] for c in r.json()["details"]["causes"]] == ["spec.externalTrafficPolicy"]


def test_clusterip_to_externalname_drops_ips(api: httpx.Client, namespace: str) -> None:
    base = f"/api/v1/namespaces/{namespace}/services"
    svc = api.post(base, json=_service("ext")).json()
    ip = svc["spec"]["clusterIP"]
    assert svc["spec"]["ipFamilies"] == ["IPv4"] and svc["spec"]["ipFamilyPolicy"] == "SingleStack"

    r = api.patch(f"{base}/ext", json={"spec": {"type": "ExternalName", "externalName": "example.com"}}, headers=MERGE)
    assert r.status_code == 200, r.text
    spec = r.json()["spec"]
    for f in ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy", "internalTrafficPolicy"):
        assert f not in spec, f
    assert spec["externalName"] == "example.com"
    # the IP is free again
    r = api.post(base, json=_service("ip-reuse", clusterIP=ip))
    assert r.status_code == 201, r.text
    # a later update of the ExternalName service is fine, and back to ClusterIP gets a new IP
    r = api.patch(f"{base}/ext", json={"metadata": {"labels": {"x": "y"}}}, headers=MERGE)
    assert r.status_code == 200, r.text
    r = api.patch(f"{base}/ext", json={"spec": {"type": "ClusterIP", "externalName": None}}, headers=MERGE)
    assert r.status_code == 200, r.text
    assert r.json()["spec"]["clusterIP"] not in (None, "", ip) and r.json()["spec"]["ipFamilies"] == ["IPv4"]
    # new IP fields on an ExternalName service are refused, on create and on update
    r = api.post(base, json=_service("ext2", type="ExternalName", externalName="example.com", ipFamilies=["IPv4"]))
    assert r.status_code == 422 and r.json()["details"]["causes"][0]["field"] == "spec.ipFamilies"
    r = api.patch(f"{base}/ext", json={"spec": {"type": "ExternalName", "externalName": "example.com",
                                                "clusterIP": "10.96.123.123", "clusterIPs": ["10.96.123.123"]}},
                  headers=MERGE)
    assert r.status_code == 422 and r.json()["details"]["causes"][0]["field"] == "spec.clusterIPs", r.text


def test_concurrent_service_creates_get_distinct_ips(control_plane, namespace: str) -> None:
    import asyncio

    async def run() -> list[str]:
        async with control_plane.async_client() as c:
            async def one(i: int) -> str:
                r = await c.post(f"/api/v1/namespaces/{namespace}/services", json={
                    "apiVersion": "v1", "kind": "Service", "metadata": {"name": f"c{i}"},
                    "spec": {"ports": [{"port": 80}], "type": "NodePort"}})
                assert r.status_code == 201, r.text
                return r.json()["spec"]["clusterIP"] + "/" + str(r.json()["spec"]["ports"][0]["nodePort"])
            return await asyncio.gather(*(one(i) for i in range(30)))

    got = asyncio.run(run())
    ips = {g.split("/")[0] for g in got}
    ports = {g.split("/")[1] for g in got}
    assert len(ips) == 30 and len(ports) == 30


def test_namespaces_lifecycle(api: httpx.Client) -> None:
    names = {n["metadata"]["name"] for n in api.get("/api/v1/namespaces").json()["items"]}
    assert {"default", "kube-system", "kube-public", "kube-node-lease"} <= names
    r = api.post("/api/v1/namespaces/nope-missing/configmaps", json=cm("x"))
    assert r.status_code == 404 and r.json()["details"]["kind"] == "namespaces"
    api.post("/api/v1/namespaces", json={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "doomed"}})
    ns = api.get("/api/v1/namespaces/doomed").json()
    assert ns["spec"]["finalizers"] == ["kubernetes"] and ns["status"]["phase"] == "Active"
    assert ns["metadata"]["labels"]["kubernetes.io/metadata.name"] == "doomed"
    r = api.delete("/api/v1/namespaces/doomed")
    assert r.status_code == 200 and r.json()["status"]["phase"] == "Terminating"
    r = api.post("/api/v1/namespaces/doomed/configmaps", json=cm("x"))
    assert r.status_code == 403 and "being terminated" in r.json()["message"]
    # the namespace controller's last step: clear spec.finalizers through /finalize
    ns = api.get("/api/v1/namespaces/doomed").json()
    ns["spec"]["finalizers"] = []
    r = api.put("/api/v1/namespaces/doomed/finalize", json=ns)
    assert r.status_code == 200
    wait_for(lambda: api.get("/api/v1/namespaces/doomed").status_code == 404, what="namespace gone")
    assert api.delete("/api/v1/namespaces/kube-system").status_code == 403


def test_kubernetes_service_and_endpoints(api: httpx.Client, control_plane) -> None:
    svc = api.get("/api/v1/namespaces/default/services/kubernetes").json()
    assert svc["spec"]["clusterIP"] == "10.96.0.1" and svc["spec"]["ports"][0]["port"] == 443
    ep = api.get("/api/v1/namespaces/default/endpoints/kubernetes").json()
    assert ep["subsets"][0]["ports"][0]["port"] == control_plane.cfg.apiserver_port


def test_system_priority_classes_exist_and_pods_may_use_them(api: httpx.Client, namespace: str) -> None:
    classes = {c["metadata"]["name"]: c for c in api.get("/apis/scheduling.k8s.io/v1/priorityclasses").json()["items"]}
    assert classes["system-node-critical"]["value"] == 2000001000
    assert classes["system-cluster-critical"]["value"] == 2000000000
    assert classes["system-cluster-critical"]["preemptionPolicy"] == "PreemptLowerPriority"
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "critical"},
           "spec": {"priorityClassName": "system-cluster-critical", "containers": [{"name": "c", "image": "busybox"}]}}
    created = api.post(f"/api/v1/namespaces/{namespace}/pods", json=pod).json()
    assert created["spec"]["priority"] == 2000000000


def test_events_k8s_io_shares_storage_with_core_events(api: httpx.Client, namespace: str) -> None:
    ev = {"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e1"},
          "eventTime": "2026-01-01T00:00:00.000000Z", "reason": "Tested", "note": "hello", "type": "Normal",
          "action": "Test", "reportingController": "tests", "reportingInstance": "t1",
          "regarding": {"kind": "Pod", "name": "p", "namespace": namespace}}
    r = api.post(f"/apis/events.k8s.io/v1/namespaces/{namespace}/events", json=ev)
    assert r.status_code == 201, r.text
    assert r.json()["note"] == "hello" and r.json()["regarding"]["name"] == "p"
    core = api.get(f"/api/v1/namespaces/{namespace}/events/e1").json()
    assert core["message"] == "hello" and core["involvedObject"]["name"] == "p"
    sel = api.get(f"/api/v1/namespaces/{namespace}/events?fieldSelector=involvedObject.name%3Dp").json()["items"]
    assert [e["metadata"]["name"] for e in sel] == ["e1"]


def test_eviction_respects_disruption_budget(api: httpx.Client, namespace: str) -> None:
    pods = f"/api/v1/namespaces/{namespace}/pods"
    for name in ("e1", "e2"):
        p = pod(name, nodeName="n1")
        p["metadata"]["labels"] = {"app": "e"}
        api.post(pods, json=p)
        st = api.get(f"{pods}/{name}").json()
        st["status"] = {"phase": "Running"}
        assert api.put(f"{pods}/{name}/status", json=st).status_code == 200
    pdbs = f"/apis/policy/v1/namespaces/{namespace}/poddisruptionbudgets"
    api.post(pdbs, json={"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "pdb"},
                         "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "e"}}}})
    eviction = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "e1"}}
    # no status from a disruption controller yet: nothing may be disrupted
    r = api.post(f"{pods}/e1/eviction", json=eviction)
    assert r.status_code == 429 and r.json()["details"]["causes"][0]["reason"] == "DisruptionBudget"
    pdb = api.get(f"{pdbs}/pdb").json()
    pdb["status"] = {"observedGeneration": 1, "disruptionsAllowed": 1, "currentHealthy": 2, "desiredHealthy": 1,
                     "expectedPods": 2}
    assert api.put(f"{pdbs}/pdb/status", json=pdb).status_code == 200
    r = api.post(f"{pods}/e1/eviction", json=eviction)
    assert r.status_code == 201, r.text
    assert api.get(f"{pods}/e1").json()["metadata"]["deletionTimestamp"]  # graceful deletion began
    status = api.get(f"{pdbs}/pdb").json()["status"]
    assert status["disruptionsAllowed"] == 0 and "e1" in status["disruptedPods"]
    r = api.post(f"{pods}/e2/eviction", json={**eviction, "metadata": {"name": "e2"}})
    assert r.status_code == 429
    assert not api.get(f"{pods}/e2").json()["metadata"].get("deletionTimestamp")


def test_aggregated_discovery_has_an_etag_and_revalidates(api: httpx.Client) -> None:
    accept = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"
    for path, groups in (("/api", {""}), ("/apis", {"apps", "batch", "rbac.authorization.k8s.io"})):
        r = api.get(path, headers={"Accept": accept})
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("application/json;g=apidiscovery.k8s.io;v=v2")
        doc = r.json()
        assert doc["kind"] == "APIGroupDiscoveryList"
        assert groups <= {g["metadata"].get("name", "") for g in doc["items"]}
        etag = r.headers["etag"]
        again = api.get(path, headers={"Accept": accept, "If-None-Match": etag})
        assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
        changed = api.get(path, headers={"Accept": accept, "If-None-Match": '"other"'})
        assert changed.status_code == 200 and changed.json() == doc
    # the legacy document stays what a client without the aggregated Accept gets
    assert api.get("/apis").json()["kind"] == "APIGroupList"


def test_the_bindings_resource_binds_the_pod_it_names(api: httpx.Client, namespace: str, control_plane) -> None:
    base = f"/api/v1/namespaces/{namespace}"
    api.post(f"{base}/pods", json={"metadata": {"name": "p"}, "spec": {
        "containers": [{"name": "c", "image": "busybox"}]}}).raise_for_status()
    r = api.post(f"{base}/bindings", json={"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"},
                                          "target": {"apiVersion": "v1", "kind": "Node", "name": "n1"}})
    assert r.status_code == 201, r.text
    pod = api.get(f"{base}/pods/p").json()
    assert pod["spec"]["nodeName"] == "n1"
    assert any(c["type"] == "PodScheduled" and c["status"] == "True" for c in pod["status"]["conditions"])
    r = api.post(f"{base}/bindings", json={"metadata": {"name": "p"}, "target": {"name": "n2"}})
    assert r.status_code == 409 and 'already assigned to node "n1"' in r.json()["message"]
    assert api.post(f"{base}/bindings", json={"metadata": {"name": "nope"}, "target": {"name": "n1"}}).status_code == 404
    r = api.post(f"{base}/bindings", json={"target": {"name": "n1"}})
    assert r.status_code == 422 and r.json()["details"]["causes"][0]["field"] == "metadata.name"
    assert api.get(f"{base}/bindings").status_code == 405
    r = api.post(f"{base}/bindings", json={"metadata": {"name": "p", "namespace": "other"}, "target": {"name": "n1"}})
    assert r.status_code == 400 and "namespace of the provided object does not match" in r.json()["message"]
    assert api.post("/api/v1/bindings", json={"metadata": {"name": "p"}, "target": {"name": "n1"}}).status_code == 404
    resources = {r["name"]: r for r in api.get("/api/v1").json()["resources"]}
    assert resources["bindings"]["verbs"] == ["create"] and resources["bindings"]["kind"] == "Binding"
    assert "bindings" in control_plane.kubectl("api-resources", "--api-group=", "-o", "name").stdout.split()
