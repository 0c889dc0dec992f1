"""Bad input and failures come back as Status objects with upstream's code and reason."""

from __future__ import annotations

import json
import ssl

import httpx
import pytest

from tests.conftest import ControlPlane, wait_for


def status_of(r: httpx.Response, code: int, reason: str) -> dict:
    assert r.status_code == code, r.text
    st = r.json()
    assert st["kind"] == "Status" and st["apiVersion"] == "v1" and st["status"] == "Failure"
    assert st["code"] == code and st["reason"] == reason, st
    return st


def test_400_malformed_json_and_yaml(api: httpx.Client, namespace: str) -> None:
    base = f"/api/v1/namespaces/{namespace}/configmaps"
    st = status_of(api.post(base, content=b'{"apiVersion": "v1", "kind": ', headers={"content-type": "application/json"}), 400, "BadRequest")
    assert "JSON" in st["message"]
    status_of(api.post(base, content=b"kind: [unclosed", headers={"content-type": "application/yaml"}), 400, "BadRequest")
    status_of(api.post(base, content=b"[1, 2]", headers={"content-type": "application/json"}), 400, "BadRequest")
    st = status_of(api.post(base, json={"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"}}), 400, "BadRequest")
    assert "kind" in st["message"]
    st = status_of(api.post(base, json={"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": "other"}}), 400, "BadRequest")
    assert "namespace" in st["message"]
    st = status_of(api.get(f"{base}?labelSelector=a%20in%20(b"), 400, "BadRequest")
    status_of(api.get(f"{base}?limit=ten"), 400, "BadRequest")
    status_of(api.post(f"{base}?dryRun=Some", json={"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}), 400, "BadRequest")
    # nothing was stored by any of these
    assert [i["metadata"]["name"] for i in api.get(base).json()["items"]] in ([], ["kube-root-ca.crt"])


def test_400_yaml_body_accepted(api: httpx.Client, namespace: str) -> None:
    body = b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: fromyaml\ndata:\n  a: '1'\n"
    r = api.post(f"/api/v1/namespaces/{namespace}/configmaps", content=body, headers={"content-type": "application/yaml"})
    assert r.status_code == 201 and r.json()["data"] == {"a": "1"}


def test_401_without_credentials(control_plane: ControlPlane) -> None:
    ctx = ssl.create_default_context(cafile=str(control_plane.pki.ca_cert))
    with httpx.Client(base_url=control_plane.url, verify=ctx) as anon:
        status_of(anon.get("/api/v1/namespaces"), 401, "Unauthorized")
        status_of(anon.get("/api/v1/namespaces", headers={"Authorization": "Bearer not-a-token"}), 401, "Unauthorized")
        status_of(anon.get("/apis"), 401, "Unauthorized")
        assert anon.get("/healthz").status_code == 200  # probes need no credentials


def test_plain_http_is_refused(control_plane: ControlPlane) -> None:
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{control_plane.cfg.apiserver_port}/api/v1/namespaces", timeout=5)


def test_404(api: httpx.Client, namespace: str) -> None:
    st = status_of(api.get(f"/api/v1/namespaces/{namespace}/configmaps/missing"), 404, "NotFound")
    assert st["details"] == {"name": "missing", "kind": "configmaps"}
    st = status_of(api.get(f"/apis/apps/v1/namespaces/{namespace}/deployments/missing"), 404, "NotFound")
    assert st["message"] == 'deployments.apps "missing" not found' and st["details"]["group"] == "apps"
    st = status_of(api.get("/api/v1/frobnicators"), 404, "NotFound")
    # upstream's generic 404 carries empty details: kubectl reads details.name without a nil check
    # (its `debug` panicked on a 404 for an unserved subresource); a missing pod's 404 names it
    assert st["details"] == {} and st["message"] == "the server could not find the requested resource"
    st = status_of(api.patch(f"/api/v1/namespaces/{namespace}/pods/any/ephemeralcontainers", json={},
                             headers={"content-type": "application/strategic-merge-patch+json"}), 404, "NotFound")
    assert st["details"] == {"name": "any", "kind": "pods"}
    status_of(api.get("/apis/nope.example.com/v1"), 404, "NotFound")
    st = status_of(api.get(f"/api/v1/namespaces/{namespace}/pods/p/bogus"), 404, "NotFound")
    assert st["details"] == {}


def test_405(api: httpx.Client, namespace: str) -> None:
    status_of(api.post(f"/api/v1/namespaces/{namespace}/configmaps/named", json={}), 405, "MethodNotAllowed")
    status_of(api.put(f"/api/v1/namespaces/{namespace}/configmaps", json={}), 405, "MethodNotAllowed")


def test_409(api: httpx.Client, namespace: str) -> None:
    base = f"/api/v1/namespaces/{namespace}/configmaps"
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "dup"}}
    first = api.post(base, json=obj).json()
    st = status_of(api.post(base, json=obj), 409, "AlreadyExists")
    assert st["message"] == 'configmaps "dup" already exists' and st["details"]["name"] == "dup"
    api.put(f"{base}/dup", json=dict(first, data={"a": "b"}))
    st = status_of(api.put(f"{base}/dup", json=first), 409, "Conflict")
    assert "the object has been modified" in st["message"]


def test_413_body_over_3mib(api: httpx.Client, namespace: str) -> None:
    big = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "big"}, "data": {"a": "x" * (3 * 1024 * 1024 + 10)}}
    status_of(api.post(f"/api/v1/namespaces/{namespace}/configmaps", content=json.dumps(big).encode(),
                       headers={"content-type": "application/json"}), 413, "RequestEntityTooLarge")
    assert api.get(f"/api/v1/namespaces/{namespace}/configmaps/big").status_code == 404


def test_415_unknown_content_type(api: httpx.Client, namespace: str) -> None:
    base = f"/api/v1/namespaces/{namespace}/configmaps"
    api.post(base, json={"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ct"}})
    status_of(api.patch(f"{base}/ct", content=b"{}", headers={"content-type": "text/plain"}), 415, "UnsupportedMediaType")
    status_of(api.post(base, content=b"<xml/>", headers={"content-type": "application/xml"}), 415, "UnsupportedMediaType")


def test_422_names_each_bad_field(api: httpx.Client, namespace: str) -> None:
    bad = {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "Bad_Name"},
        "spec": {"restartPolicy": "Sometimes",
                 "containers": [{"name": "c", "image": "x", "ports": [{"containerPort": 70000}]},
                                {"name": "c", "image": ""}]},
    }
    st = status_of(api.post(f"/api/v1/namespaces/{namespace}/pods", json=bad), 422, "Invalid")
    fields = {c["field"] for c in st["details"]["causes"]}
    assert {"metadata.name", "spec.restartPolicy", "spec.containers[0].ports[0].containerPort",
            "spec.containers[1].name", "spec.containers[1].image"} <= fields
    assert st["details"]["kind"] == "Pod" and st["details"]["name"] == "Bad_Name"
    assert st["message"].startswith('Pod "Bad_Name" is invalid: [')
    dep = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
           "spec": {"selector": {"matchLabels": {"a": "b"}},
                    "template": {"metadata": {"labels": {"a": "c"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}}}
    st = status_of(api.post(f"/apis/apps/v1/namespaces/{namespace}/deployments", json=dep), 422, "Invalid")
    assert st["details"]["causes"][0]["field"] == "spec.template.metadata.labels"
    assert api.get(f"/api/v1/namespaces/{namespace}/pods").json()["items"] == []


def test_garbage_never_500(api: httpx.Client, namespace: str) -> None:
    base = f"/api/v1/namespaces/{namespace}"
    bodies = [b"null", b"1", b'"s"', b"{}", b'{"metadata": 5}', b'{"metadata": {"name": 5}}',
              b'{"metadata": {"name": "x", "labels": "no"}}', b'{"spec": []}', b'{"metadata":{"name":"x"},"spec":{"containers":"no"}}',
              b'{"metadata":{"name":"x"},"spec":{"containers":[1,2]}}', b'{"metadata":{"name":"x"},"data":[1]}',
              b'{"metadata":{"name":"x"},"spec":{"ports":[{"port":"http"}]}}', b"\xff\xfe", b"{" * 10000]
    for plural in ("configmaps", "pods", "services", "secrets", "events"):
        for body in bodies:
            r = api.post(f"{base}/{plural}", content=body, headers={"content-type": "application/json"})
            # unknown fields are dropped (fieldValidation=Warn), so some of these may be created
            assert r.status_code in (201, 400, 404, 409, 422), (plural, body[:40], r.status_code, r.text)
            if r.status_code >= 400:
                assert r.json()["kind"] == "Status"
    for body in (b"[{}]", b'[{"op":"move"}]', b'[{"op":"add","path":"nope"}]', b"{}"):
        api.post(f"{base}/configmaps", json={"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "g"}})
        r = api.patch(f"{base}/configmaps/g", content=body, headers={"content-type": "application/json-patch+json"})
        assert r.status_code in (400, 422), (body, r.text)


def test_deep_or_aliased_input_is_a_400(api: httpx.Client, namespace: str) -> None:
    base = f"/api/v1/namespaces/{namespace}/configmaps"
    api.post(base, json={"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "deep"}})
    deep_yaml = b"data:\n" + b"".join(b"  " * i + b"- \n" for i in range(1, 1500))
    deep_json = b'{"data":{"a":' + b'{"b":' * 900 + b"1" + b"}" * 900 + b"}}"  # under the JSON decoder's limit
    laughs = b'a: &a ["x","x","x","x","x","x","x","x","x"]\n' + b"".join(
        f"{c}: &{c} [{', '.join(['*' + p] * 9)}]\n".encode() for p, c in zip("abcdefgh", "bcdefghi", strict=True))
    cases = [
        ("POST", base, deep_yaml, "application/yaml"),
        ("PATCH", f"{base}/deep?fieldManager=t", deep_yaml, "application/apply-patch+yaml"),
        ("PATCH", f"{base}/deep", deep_json, "application/merge-patch+json"),
        ("PATCH", f"{base}/deep", deep_json, "application/strategic-merge-patch+json"),
        ("POST", base, b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: laughs}\n" + laughs, "application/yaml"),
    ]
    # 900 levels of JSON sit near Python's recursion limit in our recursive walkers: the patch either
    # stops there ("nested too deeply") or goes through and the result is refused as no ConfigMap
    # (upstream's answer to this input) — a 400 either way, depending on the stack depth at the time
    type_error = ('ConfigMap in version "v1" cannot be handled as a ConfigMap: json: cannot unmarshal object into '
                  'Go struct field ConfigMap.data.a of type string')
    for method, url, body, ct in cases:
        st = status_of(api.request(method, url, content=body, headers={"content-type": ct}), 400, "BadRequest")
        assert "nested too deeply" in st["message"] or "excessive aliasing" in st["message"] or (
            body is deep_json and st["message"] == type_error), (ct, st)
    assert api.get(f"{base}/deep").json().get("data") is None  # nothing was changed
    assert api.get(f"{base}/laughs").status_code == 404


def test_list_options_and_subresource_bodies_are_validated(api: httpx.Client, namespace: str) -> None:
    base = f"/api/v1/namespaces/{namespace}"
    status_of(api.get(f"{base}/configmaps?limit=99999999999999999999"), 400, "BadRequest")
    st = status_of(api.get(f"{base}/configmaps?resourceVersionMatch=Bogus"), 422, "Invalid")
    assert st["details"]["kind"] == "ListOptions" and st["details"]["group"] == "meta.k8s.io"
    assert [c["reason"] for c in st["details"]["causes"]] == ["FieldValueForbidden", "FieldValueNotSupported"]
    st = status_of(api.get(f"{base}/configmaps?resourceVersion=0&resourceVersionMatch=Exact"), 422, "Invalid")
    assert 'forbidden for resourceVersion "0"' in st["message"]
    st = status_of(api.get(f"{base}/configmaps?watch=1&resourceVersion=1&resourceVersionMatch=NotOlderThan"), 422, "Invalid")
    assert "forbidden for watch unless sendInitialEvents is provided" in st["message"]
    status_of(api.get(f"{base}/configmaps?sendInitialEvents=true"), 422, "Invalid")
    st = status_of(api.get(f"{base}/configmaps?watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan"),
                   422, "Invalid")
    assert [c["field"] for c in st["details"]["causes"]] == ["allowWatchBookmarks"]
    assert "sendInitialEvents requires setting allowWatchBookmarks to true" in st["message"]
    api.post(f"{base}/pods", json={"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "sub"},
                                   "spec": {"containers": [{"name": "c", "image": "busybox"}]}})
    json_ct = {"content-type": "application/json"}
    for url, body in ((f"{base}/pods/sub/binding", b'{"metadata": 5, "target": {"name": "n"}}'),
                      (f"{base}/pods/sub/binding", b'{"target": 5}'),
                      (f"{base}/pods/sub/eviction", b'{"metadata": 5}')):
        status_of(api.post(url, content=body, headers=json_ct), 400, "BadRequest")
    api.post(f"/apis/apps/v1/namespaces/{namespace}/deployments", json={
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "sub"},
        "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {
            "metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}})
    scale = f"/apis/apps/v1/namespaces/{namespace}/deployments/sub/scale"
    for body in (b'{"metadata": 5}', b'{"spec": 5}'):
        status_of(api.put(scale, content=body, headers=json_ct), 400, "BadRequest")
    status_of(api.patch(scale, content=b'{"metadata": 5}', headers={"content-type": "application/merge-patch+json"}),
              400, "BadRequest")
    assert api.get(f"{base}/pods/sub").json()["spec"].get("nodeName") is None


def test_typed_nulls_and_mistyped_request_bodies(api: httpx.Client, namespace: str) -> None:
    apps = f"/apis/apps/v1/namespaces/{namespace}/deployments"
    template = {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
    # a typed field set to null is its zero value, as upstream's typed decoding makes it
    r = api.post(apps, json={"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "nulls"},
                             "spec": {"selector": {"matchLabels": {"a": "b"}}, "strategy": None, "template": template}})
    assert r.status_code == 201, r.text
    assert r.json()["spec"]["strategy"]["type"] == "RollingUpdate"
    st = status_of(api.post(apps, json={"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "nullsel"},
                                        "spec": {"selector": {"matchLabels": {"a": None}}, "template": template}}),
                   422, "Invalid")
    assert "selector" in st["message"]
    r = api.post(f"/api/v1/namespaces/{namespace}/configmaps",
                 json={"metadata": {"name": "nullmeta", "labels": {"a": None}, "annotations": {"b": None}}})
    assert r.status_code == 201, r.text
    assert (r.json()["metadata"]["labels"], r.json()["metadata"]["annotations"]) == ({"a": ""}, {"b": ""})
    assert api.post("/api/v1/namespaces", json={"apiVersion": "v1", "kind": "Namespace",
                                                "metadata": {"name": f"{namespace}-n"}, "spec": None}).status_code == 201
    api.delete(f"/api/v1/namespaces/{namespace}-n")
    # bodies that are no stored objects are type-checked too
    sar = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
           "spec": {"user": "u", "groups": 5, "resourceAttributes": {"verb": "get", "resource": "pods"}}}
    st = status_of(api.post("/apis/authorization.k8s.io/v1/subjectaccessreviews", json=sar), 400, "BadRequest")
    assert "spec.groups" in st["message"]
    api.post(f"/api/v1/namespaces/{namespace}/serviceaccounts", json={"metadata": {"name": "typed"}})
    st = status_of(api.post(f"/api/v1/namespaces/{namespace}/serviceaccounts/typed/token",
                            json={"spec": {"audiences": 5}}), 400, "BadRequest")
    assert "spec.audiences" in st["message"]
    api.post(f"/api/v1/namespaces/{namespace}/configmaps", json={"metadata": {"name": "del"}})
    st = status_of(api.request("DELETE", f"/api/v1/namespaces/{namespace}/configmaps/del", json={"dryRun": 5}),
                   400, "BadRequest")
    assert "dryRun" in st["message"]
    assert api.get(f"/api/v1/namespaces/{namespace}/configmaps/del").status_code == 200  # still there
    r = api.request("DELETE", f"/api/v1/namespaces/{namespace}/configmaps/del",
                    json={"apiVersion": "meta.k8s.io/v1", "kind": "DeleteOptions", "propagationPolicy": "Background",
                          "somethingNew": 1})
    assert r.status_code == 200, r.text


ODD_VALUES = [None, 5, -1, "x", "", [], {}, [1], {"a": 1}, True, 1.5]


def each_field_replaced(base: dict) -> list[dict]:
    """`base` with one field at a time (at any depth) set to each of ODD_VALUES."""
    out: list[dict] = []

    def walk(node: object, path: list) -> None:
        children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, child in list(children):
            for value in ODD_VALUES:
                variant = json.loads(json.dumps(base))
                target = variant
                for step in path:
                    target = target[step]
                target[key] = value
                out.append(variant)
            walk(child, [*path, key])

    walk(base, [])
    return out


def test_every_field_mistyped_is_never_a_500(api: httpx.Client, namespace: str) -> None:
    """Each field of a few rich bodies set to each odd JSON value: a Status below 500, every time."""
    ns = namespace
    api.post(f"/api/v1/namespaces/{ns}/serviceaccounts", json={"metadata": {"name": "odd"}})
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "odd", "labels": {"a": "b"}},
           "spec": {"containers": [{"name": "c", "image": "i", "ports": [{"containerPort": 80}],
                                    "env": [{"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                                    "resources": {"limits": {"cpu": "1"}}, "livenessProbe": {"httpGet": {"port": 80}}}],
                    "tolerations": [{"key": "k", "operator": "Exists"}]}}
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "odd"},
                  "spec": {"replicas": 1, "selector": {"matchLabels": {"a": "b"}},
                           "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}},
                           "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}}
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "odd"},
               "spec": {"selector": {"a": "b"}, "ports": [{"port": 80, "targetPort": 8080}], "type": "NodePort"}}
    token = {"spec": {"audiences": ["a"], "expirationSeconds": 3600, "boundObjectRef": {"kind": "Pod", "name": "p"}}}
    review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
              "spec": {"user": "u", "groups": ["g"], "resourceAttributes": {"verb": "get", "resource": "pods"}}}
    delete = {"kind": "DeleteOptions", "gracePeriodSeconds": 0, "preconditions": {"uid": "u"}, "dryRun": ["All"]}
    cases = [("POST", f"/api/v1/namespaces/{ns}/pods", pod), ("POST", f"/apis/apps/v1/namespaces/{ns}/deployments", deployment),
             ("POST", f"/api/v1/namespaces/{ns}/services", service),
             ("POST", f"/api/v1/namespaces/{ns}/serviceaccounts/odd/token", token),
             ("POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", review),
             ("DELETE", f"/api/v1/namespaces/{ns}/serviceaccounts/missing", delete)]
    seen = 0
    for method, url, base in cases:
        for body in each_field_replaced(base):
            stored = base in (pod, deployment, service)
            r = api.request(method, f"{url}?dryRun=All" if stored else url, json=body)  # nothing is kept
            assert r.status_code < 500 and (r.status_code < 400 or r.json()["kind"] == "Status"), (url, body, r.text)
            seen += 1
    assert seen > 900  # every field of every body, eleven ways


def test_health_endpoints_as_upstream(control_plane: ControlPlane, api: httpx.Client) -> None:
    r = api.get("/livez", params={"verbose": ""})
    assert r.status_code == 200 and r.text.startswith("[+]ping ok\n[+]log ok\n[+]etcd ok\n")
    assert r.text.endswith("livez check passed\n")
    r = api.get("/readyz", params={"verbose": ""})
    names = [line[3:].split()[0] for line in r.text.splitlines()[:-1]]
    assert names[:5] == ["ping", "log", "etcd", "etcd-readiness", "informer-sync"] and names[-1] == "shutdown"
    assert api.get("/healthz", params={"verbose": ""}).text.endswith("healthz check passed\n")
    r = api.get("/readyz", params={"verbose": "", "exclude": ["etcd", "nope"]})
    assert "[+]etcd excluded: ok\n" in r.text and 'no matches for "nope"' in r.text
    for path in ("/readyz/etcd", "/livez/ping", "/healthz/etcd", "/readyz/poststarthook/bootstrap-controller"):
        r = api.get(path)
        assert (r.status_code, r.text) == (200, "ok"), path
    assert api.get("/readyz/nothing").status_code == 404
    ctx = ssl.create_default_context(cafile=str(control_plane.pki.ca_cert))
    with httpx.Client(base_url=control_plane.url, verify=ctx) as anon:
        # the aggregate answer needs no credentials, single checks do (system:monitoring, as upstream)
        assert anon.get("/readyz").status_code == 200 and anon.get("/readyz/etcd").status_code == 401


def test_503_while_etcd_is_down(control_plane: ControlPlane, api: httpx.Client) -> None:
    control_plane.stop("etcd")
    try:
        r = wait_for(lambda: (lambda r: r if r.status_code == 503 else None)(api.get("/api/v1/namespaces/default/configmaps/x")),
                     timeout=20, what="503 from the apiserver")
        st = status_of(r, 503, "ServiceUnavailable")
        assert "etcd" in st["message"]
        wait_for(lambda: api.get("/readyz").status_code == 500, timeout=10, what="readyz failing")
        r = api.get("/readyz")  # upstream's healthz handler: the checks, the failed ones withheld
        assert "[-]etcd failed: reason withheld\n" in r.text and r.text.endswith("readyz check failed\n")
        r = api.get("/readyz/etcd")
        assert r.status_code == 500 and r.text == "internal server error: etcd check failed\n"
        assert api.get("/livez").status_code == 500 and api.get("/livez/ping").text == "ok"
        assert api.get("/readyz", params={"exclude": ["etcd", "etcd-readiness"]}).status_code == 200
    finally:
        control_plane.start_etcd()
    wait_for(lambda: api.get("/readyz").status_code == 200, timeout=30, what="readyz recovering")
    assert api.get("/api/v1/namespaces/default").status_code == 200


def test_etcd_socket_survives_a_killed_etcd(control_plane: ControlPlane, api: httpx.Client) -> None:
    """The apiserver reaches etcd through the data dir's socket; an etcd killed with -9 leaves the
    socket file behind and must still come back on it."""
    import signal

    socket = control_plane.cfg.etcd_socket
    assert socket is not None and socket.is_socket()
    assert socket.parent.stat().st_mode & 0o777 == 0o700
    cmdline = open(f"/proc/{control_plane.procs['apiserver'].pid}/cmdline", "rb").read().split(b"\0")
    assert cmdline[cmdline.index(b"--etcd-servers") + 1] == f"unix://{socket}".encode()
    control_plane.stop("etcd", sig=signal.SIGKILL)
    try:
        assert socket.exists()  # nobody removed it
        wait_for(lambda: api.get("/readyz").status_code == 500, timeout=20, what="readyz failing")
    finally:
        control_plane.start_etcd()
    wait_for(lambda: api.get("/readyz").status_code == 200, timeout=30, what="readyz recovering")
    r = api.post("/api/v1/namespaces/default/configmaps", json={"metadata": {"generateName": "after-kill-"}})
    assert r.status_code == 201, r.text


def test_a_request_cut_off_by_shutdown_gets_a_status(tmp_path) -> None:
    """etcd hangs (stopped, not gone): a write waits on it; SIGTERM ends the apiserver within its
    2 s graceful period and the write is answered 503 with a Status, not uvicorn's bare 500."""
    import signal
    import threading

    cp = ControlPlane(tmp_path / "cluster")
    try:
        cp.start_etcd()
        cp.start_apiserver()
        cp.wait_ready()
        answers: list[httpx.Response] = []
        cp.procs["etcd"].send_signal(signal.SIGSTOP)

        def write() -> None:
            with cp.client(timeout=30) as c:
                answers.append(c.post("/api/v1/namespaces/default/configmaps", json={"metadata": {"name": "cut"}}))

        writer = threading.Thread(target=write)
        writer.start()
        with cp.client() as c:
            wait_for(lambda: 'apiserver_current_inflight_requests{request_kind="mutating"} 1'
                     in c.get("/metrics").text, 10, 0.05, "the write to wait on etcd")
        apiserver = cp.procs["apiserver"]
        apiserver.send_signal(signal.SIGTERM)
        apiserver.wait(8)
        writer.join(10)
        st = status_of(answers[0], 503, "ServiceUnavailable")
        assert "shutting down" in st["message"]
        assert "Traceback" not in cp.cfg.log("apiserver").read_text()
    finally:
        if "etcd" in cp.procs:
            cp.procs["etcd"].send_signal(signal.SIGCONT)
        cp.stop_all()
