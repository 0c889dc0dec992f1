"""kubectl parity: printing, scale, describe, cascading delete, Python client patch/create_from_yaml."""

from __future__ import annotations

import json

import pytest
from kubernetes import client, config, utils

from tests.conftest import ControlPlane

HEADERS = {
    "pods": "NAME READY STATUS RESTARTS AGE",
    "nodes": "NAME STATUS ROLES AGE VERSION",
    "deployments": "NAME READY UP-TO-DATE AVAILABLE AGE",
    "replicasets": "NAME DESIRED CURRENT READY AGE",
    "daemonsets": "NAME DESIRED CURRENT READY UP-TO-DATE AVAILABLE NODE SELECTOR AGE",
    "statefulsets": "NAME READY AGE",
    "jobs": "NAME STATUS COMPLETIONS DURATION AGE",
    "cronjobs": "NAME SCHEDULE TIMEZONE SUSPEND ACTIVE LAST SCHEDULE AGE",
    "services": "NAME TYPE CLUSTER-IP EXTERNAL-IP PORT(S) AGE",
    "endpoints": "NAME ENDPOINTS AGE",
    "endpointslices": "NAME ADDRESSTYPE PORTS ENDPOINTS AGE",
    "configmaps": "NAME DATA AGE",
    "secrets": "NAME TYPE DATA AGE",
    "serviceaccounts": "NAME SECRETS AGE",
    "namespaces": "NAME STATUS AGE",
    "leases": "NAME HOLDER AGE",
    "roles": "NAME CREATED AT",
    "rolebindings": "NAME ROLE AGE",
    "clusterroles": "NAME CREATED AT",
    "clusterrolebindings": "NAME ROLE AGE",
    "events": "LAST SEEN TYPE REASON OBJECT MESSAGE",
}

OBJECTS = """
apiVersion: v1
kind: Pod
metadata: {name: p}
spec: {containers: [{name: c, image: busybox}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: d}
spec: {selector: {matchLabels: {a: d}}, template: {metadata: {labels: {a: d}}, spec: {containers: [{name: c, image: x}]}}}
---
apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: rs}
spec: {selector: {matchLabels: {a: rs}}, template: {metadata: {labels: {a: rs}}, spec: {containers: [{name: c, image: x}]}}}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: ds}
spec: {selector: {matchLabels: {a: ds}}, template: {metadata: {labels: {a: ds}}, spec: {containers: [{name: c, image: x}]}}}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: sts}
spec: {serviceName: sts, selector: {matchLabels: {a: sts}}, template: {metadata: {labels: {a: sts}}, spec: {containers: [{name: c, image: x}]}}}
---
apiVersion: batch/v1
kind: Job
metadata: {name: j}
spec: {template: {spec: {restartPolicy: Never, containers: [{name: c, image: x}]}}}
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: cj}
spec: {schedule: "*/5 * * * *", jobTemplate: {spec: {template: {spec: {restartPolicy: OnFailure, containers: [{name: c, image: x}]}}}}}
---
apiVersion: v1
kind: Service
metadata: {name: s}
spec: {ports: [{port: 80}]}
---
apiVersion: v1
kind: Endpoints
metadata: {name: s}
subsets: [{addresses: [{ip: 10.244.0.5}], ports: [{port: 80}]}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: s-abc, labels: {kubernetes.io/service-name: s}}
addressType: IPv4
endpoints: [{addresses: [10.244.0.5]}]
ports: [{port: 80}]
---
apiVersion: v1
kind: Secret
metadata: {name: sec}
stringData: {a: b}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: sa}
---
apiVersion: coordination.k8s.io/v1
kind: Lease
metadata: {name: l}
spec: {holderIdentity: me}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: r}
rules: [{apiGroups: [""], resources: [pods], verbs: [get]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: rb}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: r}
subjects: [{kind: User, name: alice, apiGroup: rbac.authorization.k8s.io}]
"""


def test_get_prints_upstream_headers_for_every_kind(control_plane: ControlPlane, namespace: str) -> None:
    k = control_plane.kubectl
    k("-n", namespace, "create", "-f", "-", input=OBJECTS)
    ev = {"apiVersion": "v1", "kind": "Event", "metadata": {"name": "ev1"}, "reason": "Tested", "message": "hello",
          "type": "Normal", "involvedObject": {"kind": "Pod", "name": "p", "namespace": namespace}, "count": 1,
          "firstTimestamp": "2026-01-01T00:00:00Z", "lastTimestamp": "2026-01-01T00:00:00Z"}
    k("-n", namespace, "create", "-f", "-", input=json.dumps(ev))
    for plural, header in HEADERS.items():
        out = k("-n", namespace, "get", plural).stdout if plural not in ("nodes",) else None
        if plural == "nodes":
            k("create", "-f", "-", input='{"apiVersion":"v1","kind":"Node","metadata":{"name":"hdr-node"}}')
            out = k("get", "nodes").stdout
        assert " ".join(out.splitlines()[0].split()) == header, plural


def test_scale_describe_and_cascading_delete(control_plane: ControlPlane, namespace: str) -> None:
    k = control_plane.kubectl
    k("-n", namespace, "create", "deployment", "web", "--image=nginx", "--replicas=2")
    k("-n", namespace, "scale", "deployment", "web", "--replicas=5")
    d = json.loads(k("-n", namespace, "get", "deploy", "web", "-o", "json").stdout)
    assert d["spec"]["replicas"] == 5 and d["metadata"]["generation"] == 2

    k("-n", namespace, "run", "p", "--image=busybox", "--restart=Never")
    uid = k("-n", namespace, "get", "pod", "p", "-o", "jsonpath={.metadata.uid}").stdout
    ev = {"apiVersion": "v1", "kind": "Event", "metadata": {"name": "p.1"}, "reason": "Pulled",
          "message": "Container image pulled", "type": "Normal", "count": 1, "source": {"component": "kubelet"},
          "involvedObject": {"kind": "Pod", "name": "p", "namespace": namespace, "apiVersion": "v1", "uid": uid},
          "firstTimestamp": "2026-01-01T00:00:00Z", "lastTimestamp": "2026-01-01T00:00:00Z"}
    k("-n", namespace, "create", "-f", "-", input=json.dumps(ev))
    described = k("-n", namespace, "describe", "pod", "p").stdout
    assert "Events:" in described and "Pulled" in described and "Container image pulled" in described

    for mode, finalizer in (("foreground", "foregroundDeletion"), ("orphan", "orphan")):
        name = f"del-{mode}"
        k("-n", namespace, "create", "deployment", name, "--image=nginx")
        k("-n", namespace, "delete", "deployment", name, f"--cascade={mode}", "--wait=false")
        held = json.loads(k("-n", namespace, "get", "deploy", name, "-o", "json").stdout)
        # without a garbage collector running here the finalizer holds the object: it shows the policy sent
        assert held["metadata"]["finalizers"] == [finalizer] and held["metadata"]["deletionTimestamp"]
    k("-n", namespace, "create", "deployment", "del-bg", "--image=nginx")
    k("-n", namespace, "delete", "deployment", "del-bg", "--cascade=background")
    assert k("-n", namespace, "get", "deploy", "del-bg", check=False).returncode != 0


def test_python_client_strategic_patch_and_create_from_yaml(control_plane: ControlPlane, namespace: str, tmp_path) -> None:
    api = config.new_client_from_config(config_file=str(control_plane.kubeconfig))
    manifest = tmp_path / "multi.yaml"
    manifest.write_text(OBJECTS.split("---")[1] + "---\n" + "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: fromyaml}\ndata: {a: '1'}\n")
    created = utils.create_from_yaml(api, str(manifest), namespace=namespace)
    assert len(created) == 2
    apps = client.AppsV1Api(api)
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "y"}, {"name": "new", "image": "z"}]}}}}
    out = apps.patch_namespaced_deployment("d", namespace, patch)  # the client sends strategic-merge-patch
    names = [(c.name, c.image) for c in out.spec.template.spec.containers]
    assert sorted(names) == [("c", "y"), ("new", "z")]


def test_bad_input_changes_nothing(control_plane: ControlPlane, namespace: str) -> None:
    k = control_plane.kubectl
    bad = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: strict}\ndata: {a: '1'}\nbogus: 1\n"
    r = k("-n", namespace, "create", "--validate=strict", "-f", "-", input=bad, check=False)
    assert r.returncode != 0 and "bogus" in r.stderr
    assert k("-n", namespace, "get", "cm", "strict", check=False).returncode != 0
    k("-n", namespace, "create", "configmap", "pt", "--from-literal=a=1")
    before = k("-n", namespace, "get", "cm", "pt", "-o", "json").stdout
    for patch_type, patch in (("merge", "{not json"), ("json", '[{"op":"frobnicate","path":"/data/a"}]'),
                              ("json", '[{"op":"remove","path":"/data/missing"}]')):
        r = k("-n", namespace, "patch", "cm", "pt", "--type", patch_type, "-p", patch, check=False)
        assert r.returncode != 0, patch
    assert k("-n", namespace, "get", "cm", "pt", "-o", "json").stdout == before


@pytest.mark.parametrize("what", ["deployment.spec.strategy", "pod.spec.containers.image"])
def test_explain(control_plane: ControlPlane, what: str) -> None:
    out = control_plane.kubectl("explain", what).stdout
    assert "DESCRIPTION:" in out and len(out.split("DESCRIPTION:")[1].strip()) > 20
