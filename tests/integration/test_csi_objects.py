"""storage.k8s.io/v1 CSIDriver and CSINode: served, defaulted and validated as upstream, with their
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
