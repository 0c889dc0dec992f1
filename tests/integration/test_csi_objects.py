"""storage.k8s.io/v1 CSIDriver, CSINode, VolumeAttachment, CSIStorageCapacity and VolumeAttributesClass: served, defaulted and validated as upstream, with their
kubectl columns — what CSI driver charts create and `kubectl get csidrivers,csinodes` shows. (The
node's CSI machinery itself, volume attachment and the kubelet's plugin registration, is not here.)"""

from __future__ import annotations

import os
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import ControlPlane

STORAGE = "/apis/storage.k8s.io/v1"
TABLE = {"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"}


def causes(r: httpx.Response) -> list[tuple[str, str]]:
    assert r.status_code == 422, r.text
    return [(c["field"], c["message"]) for c in r.json()["details"]["causes"]]


@pytest.fixture
def names(api: httpx.Client) -> Iterator[str]:
    suffix = os.urandom(3).hex()
    yield suffix
    for plural in ("csidrivers", "csinodes"):
        for name in (f"csi-{suffix}.example.com", f"node-{suffix}"):
            api.delete(f"{STORAGE}/{plural}/{name}")


def test_csidriver_defaults_validation_and_columns(api: httpx.Client, names: str) -> None:
    name = f"csi-{names}.example.com"
    r = api.post(f"{STORAGE}/csidrivers", json={"metadata": {"name": name}, "spec": {
        "tokenRequests": [{"audience": "vault"}]}})
    assert r.status_code == 201, r.text
    assert r.json()["spec"] == {"attachRequired": True, "podInfoOnMount": False, "storageCapacity": False,
                                "fsGroupPolicy": "ReadWriteOnceWithFSType", "requiresRepublish": False,
                                "seLinuxMount": False, "volumeLifecycleModes": ["Persistent"],
                                "tokenRequests": [{"audience": "vault"}]}
    table = api.get(f"{STORAGE}/csidrivers/{name}", headers=TABLE).json()
    assert [c["name"] for c in table["columnDefinitions"]] == [
        "Name", "AttachRequired", "PodInfoOnMount", "StorageCapacity", "TokenRequests", "RequiresRepublish", "Modes",
        "Age"]
    assert table["rows"][0]["cells"][:7] == [name, True, False, False, "vault", False, "Persistent"]

    assert causes(api.post(f"{STORAGE}/csidrivers", json={"metadata": {"name": f"bad-{names}"}, "spec": {
        "fsGroupPolicy": "Sometimes", "volumeLifecycleModes": ["Persistent", "Forever"],
        "tokenRequests": [{"audience": "a", "expirationSeconds": 60}, {"audience": "a"},
                          {"audience": "b", "expirationSeconds": 1 << 33}]}})) == [
        ("spec.fsGroupPolicy", 'Unsupported value: "Sometimes": supported values: "File", "None", '
                               '"ReadWriteOnceWithFSType"'),
        ("spec.tokenRequests[0].expirationSeconds", "Invalid value: 60: may not specify a duration less than 10 minutes"),
        ("spec.tokenRequests[1].audience", 'Duplicate value: "a"'),
        ("spec.tokenRequests[2].expirationSeconds",
         "Invalid value: 8589934592: may not specify a duration larger than 2^32 seconds"),
        ("spec.volumeLifecycleModes[1]", 'Unsupported value: "Forever": supported values: "Ephemeral", "Persistent"'),
    ]
    # attachRequired and the lifecycle modes are immutable; podInfoOnMount is not (since v1.29)
    driver = api.get(f"{STORAGE}/csidrivers/{name}").json()
    driver["spec"].update(attachRequired=False, volumeLifecycleModes=["Ephemeral"])
    found = causes(api.put(f"{STORAGE}/csidrivers/{name}", json=driver))
    assert [f for f, _ in found] == ["spec.attachedRequired", "spec.volumeLifecycleModes"], found
    assert all(m.endswith("field is immutable") for _, m in found)
    driver = api.get(f"{STORAGE}/csidrivers/{name}").json()
    driver["spec"]["podInfoOnMount"] = True
    assert api.put(f"{STORAGE}/csidrivers/{name}", json=driver).json()["spec"]["podInfoOnMount"] is True


def test_csinode_validation_and_columns(api: httpx.Client, names: str) -> None:
    name = f"node-{names}"
    driver = {"name": f"csi-{names}.example.com", "nodeID": "i-123", "topologyKeys": ["topology.example.com/zone"],
              "allocatable": {"count": 16}}
    r = api.post(f"{STORAGE}/csinodes", json={"metadata": {"name": name}, "spec": {"drivers": [driver]}})
    assert r.status_code == 201, r.text
    table = api.get(f"{STORAGE}/csinodes/{name}", headers=TABLE).json()
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Drivers", "Age"]
    assert table["rows"][0]["cells"][:2] == [name, 1]
    found = causes(api.post(f"{STORAGE}/csinodes", json={"metadata": {"name": f"bad-{names}"}, "spec": {"drivers": [
        {"name": "Bad_Name", "nodeID": "", "topologyKeys": ["", "a/b/c"], "allocatable": {"count": -1}},
        {"name": "x" * 64, "nodeID": "n" * 257}]}}))
    # as upstream, the topology keys' errors name the driver: "" is required (and no qualified name), so is a/b/c
    assert [f for f, _ in found] == [
        "spec.drivers[0].name", "spec.drivers[0].nodeID", "spec.drivers[0].allocatable.count", "spec.drivers[0]",
        "spec.drivers[0]", "spec.drivers[0]", "spec.drivers[0]", "spec.drivers[1].name", "spec.drivers[1].nodeID"], found
    assert next(m for f, m in found if f == "spec.drivers[0]") == "Required value"
    assert dict(found)["spec.drivers[1].nodeID"].endswith("must be 256 characters or less")
    # a registered driver's entry cannot change; adding another driver is fine
    node = api.get(f"{STORAGE}/csinodes/{name}").json()
    node["spec"]["drivers"][0]["nodeID"] = "i-456"
    [(f, m)] = causes(api.put(f"{STORAGE}/csinodes/{name}", json=node))
    assert f == "spec.drivers" and m.endswith("field is immutable")
    node = api.get(f"{STORAGE}/csinodes/{name}").json()
    node["spec"]["drivers"].append({"name": "second.example.com", "nodeID": "i-123"})
    assert len(api.put(f"{STORAGE}/csinodes/{name}", json=node).json()["spec"]["drivers"]) == 2


def test_kubectl_and_python_client(control_plane: ControlPlane, names: str) -> None:
    from kubernetes import client, config

    name = f"csi-{names}.example.com"
    manifest = f"apiVersion: storage.k8s.io/v1\nkind: CSIDriver\nmetadata:\n  name: {name}\nspec:\n  attachRequired: false\n"
    assert f"csidriver.storage.k8s.io/{name} created" in control_plane.kubectl("apply", "-f", "-", input=manifest).stdout
    lines = control_plane.kubectl("get", "csidrivers", name).stdout.splitlines()
    assert lines[0].split() == ["NAME", "ATTACHREQUIRED", "PODINFOONMOUNT", "STORAGECAPACITY", "TOKENREQUESTS",
                                "REQUIRESREPUBLISH", "MODES", "AGE"]
    assert lines[1].split()[:7] == [name, "false", "false", "false", "<unset>", "false", "Persistent"]
    api = client.StorageV1Api(config.new_client_from_config(str(control_plane.kubeconfig)))
    assert api.read_csi_driver(name).spec.attach_required is False
    assert name in [d.metadata.name for d in api.list_csi_driver().items]


def test_volumeattachment(api: httpx.Client, names: str) -> None:
    url = f"{STORAGE}/volumeattachments"
    name = f"csi-{names}"
    body = {"metadata": {"name": name}, "spec": {"attacher": "csi.example.com", "nodeName": "node-1",
                                                  "source": {"persistentVolumeName": "pv-1"}}}
    try:
        r = api.post(url, json=body)
        assert r.status_code == 201 and "status" not in r.json(), r.text
        assert causes(api.post(url, json={"metadata": {"name": f"bad-{names}"}, "spec": {
            "attacher": "Bad_Attacher", "nodeName": "Node_1", "source": {}}})) == [
            ("spec.source", "Required value: must specify exactly one of inlineVolumeSpec and persistentVolumeName"),
            ("spec.nodeName", causes_of_name("Node_1")),
            ("spec.attacher", causes_of_name("bad_attacher", "Bad_Attacher")),
        ]
        found = causes(api.post(url, json={"metadata": {"name": f"inline-{names}"}, "spec": {
            "attacher": "csi.example.com", "nodeName": "node-1", "source": {"inlineVolumeSpec": {
                "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "hostPath": {"path": "/x"}}}}}))
        assert [f for f, _ in found] == ["spec.source.inlineVolumeSpec.capacity", "spec.source.inlineVolumeSpec.csi"]
        # the spec never changes; the attacher reports through /status
        va = api.get(f"{url}/{name}").json()
        va["spec"]["nodeName"] = "node-2"
        [(field, message)] = causes(api.put(f"{url}/{name}", json=va))
        assert field == "spec" and message.endswith("field is immutable")
        va = api.get(f"{url}/{name}").json()
        va["status"] = {"attached": True, "attachmentMetadata": {"devicePath": "/dev/sdb"}}
        r = api.put(f"{url}/{name}/status", json=va)
        assert r.status_code == 200 and r.json()["status"]["attached"] is True, r.text
        table = api.get(f"{url}/{name}", headers=TABLE).json()
        assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Attacher", "PV", "Node", "Attached", "Age"]
        assert table["rows"][0]["cells"][:5] == [name, "csi.example.com", "pv-1", "node-1", True]
    finally:
        api.delete(f"{url}/{name}")


def causes_of_name(lower: str, shown: str | None = None) -> str:
    """The DNS-subdomain message a bad name gets (upstream's IsDNS1123Subdomain)."""
    from apimachinery.validation import is_dns1123_subdomain

    return f'Invalid value: "{shown or lower}": ' + is_dns1123_subdomain(lower)[0]


def test_csistoragecapacity(api: httpx.Client, namespace: str) -> None:
    url = f"{STORAGE}/namespaces/{namespace}/csistoragecapacities"
    body = {"metadata": {"name": "fast-zone-a"}, "storageClassName": "fast", "capacity": "100Gi",
            "nodeTopology": {"matchLabels": {"topology.example.com/zone": "a"}}}
    assert api.post(url, json=body).status_code == 201
    assert causes(api.post(url, json={"metadata": {"name": "bad"}, "storageClassName": "Fast", "capacity": "-1"})) == [
        ("storageClassName", causes_of_name("Fast")),
        ("capacity", 'Invalid value: "-1": must be greater than or equal to 0'),
    ]
    stored = api.get(f"{url}/fast-zone-a").json()
    stored["storageClassName"] = "slow"
    [(field, message)] = causes(api.put(f"{url}/fast-zone-a", json=stored))
    assert field == "storageClassName" and message.endswith("field is immutable")
    stored = api.get(f"{url}/fast-zone-a").json()
    stored["capacity"] = "50Gi"  # what the driver reports changes
    assert api.put(f"{url}/fast-zone-a", json=stored).json()["capacity"] == "50Gi"
    table = api.get(f"{url}/fast-zone-a", headers=TABLE).json()
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "StorageClassName", "Capacity", "Age"]
    assert table["rows"][0]["cells"][:3] == ["fast-zone-a", "fast", "50Gi"]


def test_volumeattributesclass(control_plane: ControlPlane, api: httpx.Client, names: str) -> None:
    name = f"gold-{names}"
    body = {"metadata": {"name": name}, "driverName": "csi.example.com", "parameters": {"iops": "3000"}}
    r = api.post(f"{STORAGE}/volumeattributesclasses", json=body)
    assert r.status_code == 201, r.text
    try:
        out = control_plane.kubectl("get", "vac", name).stdout.splitlines()
        assert out[0].split() == ["NAME", "DRIVERNAME", "AGE"] and out[1].split()[:2] == [name, "csi.example.com"]
        # driverName and parameters never change
        r = api.patch(f"{STORAGE}/volumeattributesclasses/{name}", json={"parameters": {"iops": "6000"}},
                      headers={"content-type": "application/merge-patch+json"})
        assert causes(r) == [("parameters", "Forbidden: updates to parameters are forbidden.")]
        r = api.patch(f"{STORAGE}/volumeattributesclasses/{name}", json={"driverName": "other.example.com"},
                      headers={"content-type": "application/merge-patch+json"})
        assert causes(r) == [("driverName", "Forbidden: updates to driverName are forbidden.")]
        r = api.post(f"{STORAGE}/volumeattributesclasses", json={"metadata": {"name": f"x-{names}"},
                                                                  "parameters": {"": "v"}})
        assert causes(r) == [("driverName", "Required value"),
                             ("parameters", 'Invalid value: "": field can not be empty.')]
        r = api.post(f"{STORAGE}/volumeattributesclasses", json={"metadata": {"name": f"x-{names}"},
                                                                  "driverName": "Bad_Driver!"})
        assert [f for f, _ in causes(r)] == ["driverName", "parameters"]
        assert causes(r)[1] == ("parameters", "Required value: must contain at least one key/value pair")
        from kubernetes import client, config

        config.load_kube_config(str(control_plane.kubeconfig))
        vac = client.StorageV1Api().read_volume_attributes_class(name)
        assert vac.driver_name == "csi.example.com" and vac.parameters == {"iops": "3000"}
    finally:
        api.delete(f"{STORAGE}/volumeattributesclasses/{name}")
