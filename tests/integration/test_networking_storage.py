"""networking.k8s.io/v1 (Ingress, IngressClass, NetworkPolicy) and storage.k8s.io/v1 StorageClass:
served, validated and defaulted as upstream, printed with upstream's columns, usable from
unmodified kubectl (client-side validation on) and the official Python client."""

from __future__ import annotations

import os

import httpx
import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from tests.conftest import ControlPlane

NET = "/apis/networking.k8s.io/v1"
STORAGE = "/apis/storage.k8s.io/v1"

MANIFESTS = """
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: CLASS, annotations: {ingressclass.kubernetes.io/is-default-class: "true"}}
spec:
  controller: example.com/ingress-controller
  parameters: {apiGroup: k8s.example.com, kind: IngressParameters, name: external-lb}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web}
spec:
  ingressClassName: CLASS
  tls: [{hosts: [a.example.com], secretName: web-tls}]
  rules:
  - host: a.example.com
    http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}]}
  - host: "*.b.example.com"
    http: {paths: [{path: /api, pathType: Exact, backend: {service: {name: api, port: {name: http}}}}]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db}
spec:
  podSelector: {matchLabels: {role: db}}
  ingress:
  - from:
    - ipBlock: {cidr: 172.17.0.0/16, except: [172.17.1.0/24]}
    - namespaceSelector: {matchLabels: {project: myproject}}
      podSelector: {matchLabels: {role: frontend}}
    ports: [{port: 6379}, {port: 32000, endPort: 32768}]
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: CLASS-sc, annotations: {storageclass.kubernetes.io/is-default-class: "true"}}
provisioner: example.com/local
parameters: {type: fast}
"""


@pytest.fixture
def cls_name(api: httpx.Client):
    name = f"c-{os.urandom(3).hex()}"
    yield name
    api.delete(f"{NET}/ingressclasses/{name}")
    api.delete(f"{STORAGE}/storageclasses/{name}-sc")


def test_kubectl_applies_gets_and_prints_them(control_plane: ControlPlane, api: httpx.Client, namespace: str,
                                              cls_name: str) -> None:
    r = control_plane.kubectl("apply", "-n", namespace, "-f", "-", input=MANIFESTS.replace("CLASS", cls_name))
    assert r.stdout.split("\n")[:4] == [
        f"ingressclass.networking.k8s.io/{cls_name} created", "ingress.networking.k8s.io/web created",
        "networkpolicy.networking.k8s.io/db created", f"storageclass.storage.k8s.io/{cls_name}-sc created"]

    lines = control_plane.kubectl("get", "ing", "-n", namespace).stdout.splitlines()
    assert lines[0].split() == ["NAME", "CLASS", "HOSTS", "ADDRESS", "PORTS", "AGE"]
    assert lines[1].split()[:5] == ["web", cls_name, "a.example.com,*.b.example.com", "80,", "443"]
    lines = control_plane.kubectl("get", "ingressclass", cls_name).stdout.splitlines()
    assert lines[0].split() == ["NAME", "CONTROLLER", "PARAMETERS", "AGE"]
    assert lines[1].split()[:3] == [cls_name, "example.com/ingress-controller", "IngressParameters.k8s.example.com/external-lb"]
    lines = control_plane.kubectl("get", "netpol", "-n", namespace).stdout.splitlines()
    assert lines[0].split() == ["NAME", "POD-SELECTOR", "AGE"] and lines[1].split()[:2] == ["db", "role=db"]
    lines = control_plane.kubectl("get", "sc", f"{cls_name}-sc").stdout.splitlines()
    assert lines[0].split() == ["NAME", "PROVISIONER", "RECLAIMPOLICY", "VOLUMEBINDINGMODE", "ALLOWVOLUMEEXPANSION", "AGE"]
    assert lines[1].split()[:6] == [f"{cls_name}-sc", "(default)", "example.com/local", "Delete", "Immediate", "false"]

    # upstream's defaults
    np = api.get(f"{NET}/namespaces/{namespace}/networkpolicies/db").json()
    assert np["spec"]["policyTypes"] == ["Ingress"]
    assert [p["protocol"] for p in np["spec"]["ingress"][0]["ports"]] == ["TCP", "TCP"]
    assert np["metadata"]["generation"] == 1
    ic = api.get(f"{NET}/ingressclasses/{cls_name}").json()
    assert ic["spec"]["parameters"]["scope"] == "Cluster"

    # status is written through /status only
    status = {"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.10"}]}}}
    r = api.patch(f"{NET}/namespaces/{namespace}/ingresses/web", json=status,
                  headers={"Content-Type": "application/merge-patch+json"})
    assert r.status_code == 200 and "loadBalancer" not in (r.json().get("status") or {})
    r = api.patch(f"{NET}/namespaces/{namespace}/ingresses/web/status", json=status,
                  headers={"Content-Type": "application/merge-patch+json"})
    assert r.status_code == 200, r.text
    assert control_plane.kubectl("get", "ing", "web", "-n", namespace).stdout.splitlines()[1].split()[3] == "192.0.2.10"

    api_resources = control_plane.kubectl("api-resources", "--api-group", "networking.k8s.io").stdout
    assert "ingresses" in api_resources and "netpol" in api_resources and "ingressclasses" in api_resources
    assert "sc " in control_plane.kubectl("api-resources", "--api-group", "storage.k8s.io").stdout
    control_plane.kubectl("delete", "-n", namespace, "-f", "-", input=MANIFESTS.replace("CLASS", cls_name))


def invalid(r: httpx.Response) -> list[tuple[str, str]]:
    assert r.status_code == 422, r.text
    st = r.json()
    assert st["reason"] == "Invalid"
    return [(c["field"], c["message"]) for c in st["details"]["causes"]]


def test_ingress_validation(api: httpx.Client, namespace: str) -> None:
    url = f"{NET}/namespaces/{namespace}/ingresses"
    assert invalid(api.post(url, json={"metadata": {"name": "a"}, "spec": {}})) == [
        ("spec", "Invalid value: null: either `defaultBackend` or `rules` must be specified")]
    causes = invalid(api.post(url, json={"metadata": {"name": "a"}, "spec": {"rules": [
        {"host": "10.0.0.1", "http": {"paths": [{"path": "api", "pathType": "Prefix",
                                                  "backend": {"service": {"name": "s"}}}]}},
        {"host": "x.example.com", "http": {"paths": [{"path": "/", "backend": {}},
                                                     {"path": "/", "pathType": "Exact", "backend": {}}]}},
        {"http": {"paths": []}},
    ]}}))
    # upstream's validateHTTPIngressPath: a path without pathType is not checked further
    assert causes == [
        ("spec.rules[0].host", 'Invalid value: "10.0.0.1": must be a DNS name, not an IP address'),
        ("spec.rules[0].http.paths[0].path", 'Invalid value: "api": must be an absolute path'),
        ("spec.rules[0].http.paths[0].backend", "Required value: port name or number is required"),
        ("spec.rules[1].http.paths[0].pathType", "Required value: pathType must be specified"),
        ("spec.rules[1].http.paths[1].backend", 'Invalid value: "": resource or service backend is required'),
        ("spec.rules[2].http.paths", "Required value"),
    ]
    body = {"metadata": {"name": "a", "annotations": {"kubernetes.io/ingress.class": "nginx"}},
            "spec": {"ingressClassName": "other", "defaultBackend": {"service": {"name": "s", "port": {"number": 80}}}}}
    assert invalid(api.post(url, json=body)) == [
        ("annotations.kubernetes.io/ingress.class", 'Invalid value: "nginx": can not be set when the class field is also set')]


def test_ingress_class_validation(api: httpx.Client) -> None:
    body = {"metadata": {"name": f"ic-{os.urandom(3).hex()}"}, "spec": {
        "controller": "no-slash", "parameters": {"name": "p", "scope": "Namespace"}}}
    assert invalid(api.post(f"{NET}/ingressclasses", json=body)) == [
        ("spec.controller", 'Invalid value: "no-slash": must be a domain-prefixed path (such as "acme.io/foo")'),
        ("spec.parameters.kind", "Required value: kind is required"),
        ("spec.parameters.namespace", "Required value: `parameters.scope` is set to 'Namespace'"),
    ]


def test_network_policy_and_storage_class_validation(api: httpx.Client, namespace: str) -> None:
    url = f"{NET}/namespaces/{namespace}/networkpolicies"
    causes = invalid(api.post(url, json={"metadata": {"name": "n"}, "spec": {"podSelector": {}, "ingress": [{
        "from": [{}, {"ipBlock": {"cidr": "10.0.0.0/16", "except": ["10.1.0.0/24"]}, "podSelector": {}},
                 {"ipBlock": {"cidr": "10.0.0.0/16", "except": ["10.1.0.0/24"]}}],
        "ports": [{"port": "http", "endPort": 90}, {"port": 100, "endPort": 90}, {"protocol": "ICMP"}]}],
        "policyTypes": ["Sideways"]}}))
    # as upstream's ValidateNetworkPolicyPort, the endPort < port error shows the port's value
    assert causes == [
        ("spec.ingress[0].ports[0].endPort", "Invalid value: 90: may not be specified when `port` is non-numeric"),
        ("spec.ingress[0].ports[1].endPort", "Invalid value: 100: must be greater than or equal to `port`"),
        ("spec.ingress[0].ports[2].protocol", 'Unsupported value: "ICMP": supported values: "TCP", "UDP", "SCTP"'),
        ("spec.ingress[0].from[0]", "Required value: must specify a peer"),
        ("spec.ingress[0].from[1].ipBlock.except[0]", 'Invalid value: "10.1.0.0/24": must be a strict subset of `cidr`'),
        ("spec.ingress[0].from[1]", "Forbidden: may not specify both ipBlock and another peer"),
        ("spec.ingress[0].from[2].ipBlock.except[0]", 'Invalid value: "10.1.0.0/24": must be a strict subset of `cidr`'),
        ("spec.policyTypes[0]", 'Unsupported value: "Sideways": supported values: "Ingress", "Egress"'),
    ]
    r = api.post(url, json={"metadata": {"name": "n"}, "spec": {"podSelector": {}, "ingress": [{"ports": [{"endPort": 9}]}],
                                                                "policyTypes": ["Ingress", "Egress", "Ingress"]}})
    assert invalid(r) == [
        ("spec.ingress[0].ports[0].endPort", "Invalid value: 9: may not be specified when `port` is not specified"),
        ("spec.policyTypes", 'Invalid value: ["Ingress","Egress","Ingress"]: may not specify more than two policyTypes')]

    name = f"sc-{os.urandom(3).hex()}"
    assert invalid(api.post(f"{STORAGE}/storageclasses", json={"metadata": {"name": name}, "reclaimPolicy": "Recycle"})) == [
        ("provisioner", "Required value"),
        ("reclaimPolicy", 'Unsupported value: "Recycle": supported values: "Delete", "Retain"')]
    r = api.post(f"{STORAGE}/storageclasses", json={"metadata": {"name": name}, "provisioner": "a.io/b"})
    assert r.status_code == 201 and r.json()["reclaimPolicy"] == "Delete"
    try:
        r = api.patch(f"{STORAGE}/storageclasses/{name}", json={"provisioner": "c.io/d", "allowVolumeExpansion": True},
                      headers={"Content-Type": "application/merge-patch+json"})
        assert invalid(r) == [("provisioner", "Forbidden: updates to provisioner are forbidden.")]
        r = api.patch(f"{STORAGE}/storageclasses/{name}", json={"allowVolumeExpansion": True},
                      headers={"Content-Type": "application/merge-patch+json"})
        assert r.status_code == 200 and r.json()["allowVolumeExpansion"] is True
    finally:
        api.delete(f"{STORAGE}/storageclasses/{name}")


def test_python_client(control_plane: ControlPlane, namespace: str) -> None:
    with client.ApiClient(config.new_client_from_config(str(control_plane.kubeconfig)).configuration) as k8s:
        net = client.NetworkingV1Api(k8s)
        body = client.V1Ingress(
            metadata=client.V1ObjectMeta(name="py"),
            spec=client.V1IngressSpec(default_backend=client.V1IngressBackend(
                service=client.V1IngressServiceBackend(name="s", port=client.V1ServiceBackendPort(number=8080)))))
        created = net.create_namespaced_ingress(namespace, body)
        assert created.spec.default_backend.service.port.number == 8080
        assert [i.metadata.name for i in net.list_namespaced_ingress(namespace).items] == ["py"]
        policy = net.create_namespaced_network_policy(namespace, client.V1NetworkPolicy(
            metadata=client.V1ObjectMeta(name="deny-all"),
            spec=client.V1NetworkPolicySpec(pod_selector=client.V1LabelSelector(), policy_types=["Ingress", "Egress"])))
        assert policy.spec.policy_types == ["Ingress", "Egress"]
        net.delete_namespaced_ingress("py", namespace)
        with pytest.raises(ApiException) as e:
            net.read_namespaced_ingress("py", namespace)
        assert e.value.status == 404
        classes = client.StorageV1Api(k8s).list_storage_class()
        assert classes.kind == "StorageClassList"


def test_default_classes_are_filled_in(api: httpx.Client, namespace: str) -> None:
    """DefaultIngressClass / DefaultStorageClass admission: the newest default class is used when none is named."""
    suffix = os.urandom(3).hex()
    older, newer = f"old-{suffix}", f"new-{suffix}"
    default = {"ingressclass.kubernetes.io/is-default-class": "true"}
    try:
        for name in (older, newer):
            r = api.post(f"{NET}/ingressclasses", json={"metadata": {"name": name, "annotations": default},
                                                        "spec": {"controller": "example.com/c"}})
            assert r.status_code == 201, r.text
            r = api.post(f"{STORAGE}/storageclasses", json={"provisioner": "example.com/p", "metadata": {
                "name": name, "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}}})
            assert r.status_code == 201, r.text

        def expected(plural: str) -> str:
            """The newest of the two; created in the same second, the first name (timestamps have seconds)."""
            stamps = {n: api.get(f"{NET if plural == 'ingressclasses' else STORAGE}/{plural}/{n}").json()["metadata"]
                      ["creationTimestamp"] for n in (older, newer)}
            return newer if stamps[newer] > stamps[older] else min(older, newer)

        backend = {"service": {"name": "s", "port": {"number": 80}}}
        url = f"{NET}/namespaces/{namespace}/ingresses"
        r = api.post(url, json={"metadata": {"name": "a"}, "spec": {"defaultBackend": backend}})
        assert r.json()["spec"]["ingressClassName"] == expected("ingressclasses")
        r = api.post(url, json={"metadata": {"name": "b"}, "spec": {"defaultBackend": backend, "ingressClassName": "x"}})
        assert r.json()["spec"]["ingressClassName"] == "x"
        r = api.post(url, json={"metadata": {"name": "c", "annotations": {"kubernetes.io/ingress.class": "nginx"}},
                                "spec": {"defaultBackend": backend}})
        assert "ingressClassName" not in r.json()["spec"]

        pvc = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
        url = f"/api/v1/namespaces/{namespace}/persistentvolumeclaims"
        r = api.post(url, json={"metadata": {"name": "a"}, "spec": pvc})
        assert r.status_code == 201, r.text
        assert r.json()["spec"]["storageClassName"] == expected("storageclasses")
        r = api.post(url, json={"metadata": {"name": "b"}, "spec": {**pvc, "storageClassName": ""}})
        assert r.json()["spec"]["storageClassName"] == ""
    finally:
        for name in (older, newer):
            api.delete(f"{NET}/ingressclasses/{name}")
            api.delete(f"{STORAGE}/storageclasses/{name}")


def test_persistent_volumes_and_claims_validated_defaulted_and_protected(control_plane: ControlPlane,
                                                                           api: httpx.Client, namespace: str) -> None:
    claims = f"/api/v1/namespaces/{namespace}/persistentvolumeclaims"
    pv_name = f"pv-{namespace}"
    try:
        # upstream's messages for the usual mistakes; nothing is stored
        r = api.post(claims, json={"metadata": {"name": "bad"}, "spec": {"resources": {"requests": {"storage": "0"}}}})
        assert r.status_code == 422, r.text
        messages = [c["field"] + ": " + c["message"] for c in r.json()["details"]["causes"]]
        assert "spec.accessModes: Required value: at least 1 access mode is required" in messages
        assert 'spec.resources[storage]: Invalid value: "0": must be greater than zero' in messages
        r = api.post(claims, json={"metadata": {"name": "bad"}, "spec": {"accessModes": ["ReadWriteSometimes"]}})
        messages = [c["field"] + ": " + c["message"] for c in r.json()["details"]["causes"]]
        assert any(m.startswith('spec.accessModes: Unsupported value: "ReadWriteSometimes"') for m in messages)
        assert "spec.resources[storage]: Required value" in messages
        r = api.post("/api/v1/persistentvolumes", json={"metadata": {"name": pv_name},
                                                        "spec": {"accessModes": ["ReadWriteOnce"],
                                                                 "capacity": {"storage": "1Gi"}}})
        assert r.status_code == 422 and "spec: Required value: must specify a volume type" in r.text
        assert api.get(f"{claims}/bad").status_code == 404

        # defaults and the StorageObjectInUseProtection finalizers
        r = api.post("/api/v1/persistentvolumes", json={"metadata": {"name": pv_name}, "spec": {
            "accessModes": ["ReadWriteOnce"], "capacity": {"storage": "2Gi"}, "hostPath": {"path": "/tmp/x"},
            "claimRef": {"namespace": namespace, "name": "data"}, "storageClassName": ""}})
        assert r.status_code == 201, r.text
        pv = r.json()
        assert pv["spec"]["persistentVolumeReclaimPolicy"] == "Retain" and pv["spec"]["volumeMode"] == "Filesystem"
        assert pv["metadata"]["finalizers"] == ["kubernetes.io/pv-protection"]
        assert pv["status"]["phase"] == "Pending" and pv["status"]["lastPhaseTransitionTime"].endswith("Z")
        # a phase change stamps lastPhaseTransitionTime, unless the writer brings a new one
        stamped = {**pv, "status": {"phase": "Available", "lastPhaseTransitionTime": "2020-01-01T00:00:00Z"}}
        r = api.put(f"/api/v1/persistentvolumes/{pv_name}/status", json=stamped)
        assert r.status_code == 200 and r.json()["status"]["lastPhaseTransitionTime"] == "2020-01-01T00:00:00Z"
        r = api.put(f"/api/v1/persistentvolumes/{pv_name}/status", json={**r.json(), "status": {
            "phase": "Pending", "lastPhaseTransitionTime": "2020-01-01T00:00:00Z"}})
        assert r.status_code == 200 and r.json()["status"]["lastPhaseTransitionTime"] > "2020-01-01T00:00:00Z"
        r = api.post(claims, json={"metadata": {"name": "data"}, "spec": {
            "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}, "storageClassName": ""}})
        assert r.status_code == 201, r.text
        claim = r.json()
        assert claim["metadata"]["finalizers"] == ["kubernetes.io/pvc-protection"]
        assert claim["spec"]["volumeMode"] == "Filesystem"

        # data sources: dataSource and dataSourceRef say the same; kinds beyond the legacy two only
        # through dataSourceRef (upstream's AnyVolumeDataSource)
        def claim_with(name: str, **sources) -> httpx.Response:
            return api.post(claims, json={"metadata": {"name": name}, "spec": {
                "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}, **sources}})

        r = claim_with("cloned", dataSourceRef={"kind": "PersistentVolumeClaim", "name": "data"})
        assert r.status_code == 201 and r.json()["spec"]["dataSource"] == {"kind": "PersistentVolumeClaim", "name": "data"}
        populated = {"apiGroup": "example.com", "kind": "Populator", "name": "p"}
        r = claim_with("populated", dataSource=populated)
        assert r.status_code == 201 and "dataSource" not in r.json()["spec"] and "dataSourceRef" not in r.json()["spec"]
        r = claim_with("mismatched", dataSource={"kind": "PersistentVolumeClaim", "name": "data"}, dataSourceRef=populated)
        assert r.status_code == 422
        assert [c["field"] + ": " + c["message"] for c in r.json()["details"]["causes"]] == [
            'spec: Invalid value: "spec.dataSource": must match dataSourceRef']
        r = claim_with("unnamed", dataSourceRef={"kind": "Populator"})
        assert r.status_code == 422
        # (copied into dataSource before validation, as upstream: both are named)
        wrong_kind = "Invalid value: \"Populator\": must be 'PersistentVolumeClaim' when referencing the default apiGroup"
        assert sorted(c["field"] + ": " + c["message"] for c in r.json()["details"]["causes"]) == [
            "spec.dataSource.name: Required value", f"spec.dataSource: {wrong_kind}",
            "spec.dataSourceRef.name: Required value", f"spec.dataSourceRef: {wrong_kind}"]
        for name in ("cloned", "populated"):
            api.patch(f"{claims}/{name}", json={"metadata": {"finalizers": None}},
                      headers={"Content-Type": "application/merge-patch+json"})
            assert api.delete(f"{claims}/{name}").status_code == 200

        # a claim's spec is immutable but for binding it (volumeName, once) and resizing a bound one
        claim["spec"]["accessModes"] = ["ReadWriteMany"]
        r = api.put(f"{claims}/data", json=claim)
        assert r.status_code == 422 and "spec is immutable after creation" in r.text
        claim["spec"]["accessModes"] = ["ReadWriteOnce"]
        claim["spec"]["volumeName"] = pv_name
        r = api.put(f"{claims}/data", json=claim)
        assert r.status_code == 200, r.text
        # the volume source of a PV is immutable
        pv = api.get(f"/api/v1/persistentvolumes/{pv_name}").json()
        pv["spec"]["hostPath"]["path"] = "/tmp/y"
        r = api.put(f"/api/v1/persistentvolumes/{pv_name}", json=pv)
        assert r.status_code == 422 and "spec.persistentvolumesource is immutable after creation" in r.text

        # kubectl prints upstream's columns
        out = control_plane.kubectl("get", "pv", pv_name).stdout
        assert out.split("\n")[0].split() == ["NAME", "CAPACITY", "ACCESS", "MODES", "RECLAIM", "POLICY", "STATUS",
                                              "CLAIM", "STORAGECLASS", "VOLUMEATTRIBUTESCLASS", "REASON", "AGE"]
        assert f"{namespace}/data" in out and "RWO" in out and "Retain" in out
        out = control_plane.kubectl("get", "pvc", "-n", namespace).stdout
        assert out.split("\n")[0].split() == ["NAME", "STATUS", "VOLUME", "CAPACITY", "ACCESS", "MODES",
                                              "STORAGECLASS", "VOLUMEATTRIBUTESCLASS", "AGE"]
        assert out.split("\n")[1].split()[:3] == ["data", "Pending", pv_name]

        # with no controller-manager here, the finalizer keeps a deleted claim (Terminating)
        assert api.delete(f"{claims}/data").status_code == 200
        out = control_plane.kubectl("get", "pvc", "data", "-n", namespace).stdout
        assert "Terminating" in out
    finally:
        for path in (f"{claims}/data", f"/api/v1/persistentvolumes/{pv_name}"):
            api.patch(path, json={"metadata": {"finalizers": None}},
                      headers={"Content-Type": "application/merge-patch+json"})
            api.delete(path)
