"""The PV binder, the PVC/PV protection controllers, the ephemeral volume controller and the
hostpath provisioner over the in-memory fake API (upstream's pv_controller cases)."""

from __future__ import annotations

from typing import Any

from apimachinery.volumebinding import (
    ANN_BIND_COMPLETED,
    ANN_BOUND_BY_CONTROLLER,
    ANN_SELECTED_NODE,
    ANN_STORAGE_PROVISIONER,
    find_best_match,
)
from controller_manager.base import ControllerContext, FakeClock
from controller_manager.ephemeral_volume import EphemeralVolumeController
from controller_manager.fake import FakeAPI, FakeInformerFactory, run_until_idle
from controller_manager.hostpath_provisioner import (
    HELPER_NAMESPACE,
    PROVISIONER,
    HostPathProvisioner,
    base_path_of,
    default_storage_class,
)
from controller_manager.persistentvolume import PersistentVolumeBinderController
from controller_manager.pv_protection import PVProtectionController
from controller_manager.pvc_protection import PVCProtectionController

Obj = dict[str, Any]
NS = "ns"


class World:
    def __init__(self) -> None:
        self.clock = FakeClock()
        self.api = FakeAPI(self.clock)
        self.ctx = ControllerContext(self.api, FakeInformerFactory(self.api), clock=self.clock,  # type: ignore[arg-type]
                                     recorder_factory=self.api.recorder)

    def claim(self, name: str) -> Obj:
        c = self.api.get_object("v1", "persistentvolumeclaims", NS, name)
        assert c is not None
        return c

    def volume(self, name: str) -> Obj | None:
        return self.api.get_object("v1", "persistentvolumes", "", name)

    def reasons(self, name: str) -> list[str]:
        return [e[2] for e in self.api.events if e[0] == name]


def pv(name: str, size: str = "1Gi", modes: tuple[str, ...] = ("ReadWriteOnce",), cls: str = "",
       claim: tuple[str, str] | None = None, labels: dict | None = None, policy: str = "Retain") -> Obj:
    spec: Obj = {"capacity": {"storage": size}, "accessModes": list(modes), "hostPath": {"path": f"/data/{name}"},
                 "persistentVolumeReclaimPolicy": policy}
    if cls:
        spec["storageClassName"] = cls
    if claim:
        spec["claimRef"] = {"namespace": claim[0], "name": claim[1]}
    return {"metadata": {"name": name, "labels": labels or {}}, "spec": spec, "status": {"phase": "Available"}}


def pvc(name: str, size: str = "1Gi", modes: tuple[str, ...] = ("ReadWriteOnce",), cls: str | None = "",
        volume: str = "", selector: dict | None = None) -> Obj:
    spec: Obj = {"accessModes": list(modes), "resources": {"requests": {"storage": size}}}
    if cls is not None:
        spec["storageClassName"] = cls
    if volume:
        spec["volumeName"] = volume
    if selector:
        spec["selector"] = selector
    return {"metadata": {"name": name, "namespace": NS}, "spec": spec, "status": {"phase": "Pending"}}


def storage_class(name: str, provisioner: str = "kubernetes.io/no-provisioner", mode: str = "Immediate",
                  default: bool = False) -> Obj:
    meta: Obj = {"name": name}
    if default:
        meta["annotations"] = {"storageclass.kubernetes.io/is-default-class": "true"}
    return {"metadata": meta, "provisioner": provisioner, "volumeBindingMode": mode, "reclaimPolicy": "Delete"}


# -- matching --------------------------------------------------------------------------

def test_the_smallest_fitting_volume_wins_and_a_prebound_one_wins_over_all() -> None:
    claim = pvc("c", "2Gi")
    claim["metadata"]["uid"] = "u1"
    volumes = [pv("big", "10Gi"), pv("small", "1Gi"), pv("fit", "3Gi"), pv("rwx", "2Gi", ("ReadWriteMany",))]
    assert find_best_match(claim, volumes, False)["metadata"]["name"] == "fit"
    volumes.append(pv("mine", "100Gi", claim=(NS, "c")))
    assert find_best_match(claim, volumes, False)["metadata"]["name"] == "mine"
    # a WaitForFirstConsumer claim with no node only takes a volume pre-bound to it
    assert find_best_match(claim, volumes[:-1], True) is None
    assert find_best_match(claim, volumes, True)["metadata"]["name"] == "mine"


def test_class_selector_mode_and_phase_must_match() -> None:
    claim = pvc("c", "1Gi", cls="fast", selector={"matchLabels": {"tier": "a"}})
    assert find_best_match(claim, [pv("x", cls="slow", labels={"tier": "a"})], False) is None
    assert find_best_match(claim, [pv("x", cls="fast", labels={"tier": "b"})], False) is None
    block = pv("x", cls="fast", labels={"tier": "a"})
    block["spec"]["volumeMode"] = "Block"
    assert find_best_match(claim, [block], False) is None
    released = pv("x", cls="fast", labels={"tier": "a"})
    released["status"]["phase"] = "Released"
    assert find_best_match(claim, [released], False) is None
    assert find_best_match(claim, [pv("x", cls="fast", labels={"tier": "a"})], False) is not None


# -- the binder ------------------------------------------------------------------------

async def test_a_claim_is_bound_to_a_matching_volume_both_ways() -> None:
    w = World()
    binder = PersistentVolumeBinderController(w.ctx)
    w.api.create("v1", "persistentvolumes", pv("small", "1Gi"))
    w.api.create("v1", "persistentvolumes", pv("large", "5Gi"))
    w.api.create("v1", "persistentvolumeclaims", pvc("data", "2Gi"))
    await run_until_idle([binder], raise_errors=True)
    claim = w.claim("data")
    assert claim["spec"]["volumeName"] == "large"
    assert claim["metadata"]["annotations"][ANN_BIND_COMPLETED] == "yes"
    assert claim["metadata"]["annotations"][ANN_BOUND_BY_CONTROLLER] == "yes"
    assert claim["status"] == {"phase": "Bound", "accessModes": ["ReadWriteOnce"], "capacity": {"storage": "5Gi"}}
    large = w.volume("large")
    assert large["spec"]["claimRef"]["uid"] == claim["metadata"]["uid"]
    assert large["status"]["phase"] == "Bound"
    assert w.volume("small")["status"]["phase"] == "Available"


async def test_no_volume_and_no_class_stays_pending_with_upstreams_event() -> None:
    w = World()
    binder = PersistentVolumeBinderController(w.ctx)
    w.api.create("v1", "persistentvolumeclaims", pvc("data"))
    await run_until_idle([binder], raise_errors=True)
    assert w.claim("data")["status"]["phase"] == "Pending"
    assert ("data", "Normal", "FailedBinding",
            "no persistent volumes available for this claim and no storage class is set") in w.api.events


async def test_a_provisioner_class_asks_its_provisioner_and_wffc_waits_for_the_scheduler() -> None:
    w = World()
    binder = PersistentVolumeBinderController(w.ctx)
    w.api.create("storage.k8s.io/v1", "storageclasses", storage_class("now", "example.com/p"))
    w.api.create("storage.k8s.io/v1", "storageclasses", storage_class("later", "example.com/p", "WaitForFirstConsumer"))
    w.api.create("v1", "persistentvolumeclaims", pvc("a", cls="now"))
    w.api.create("v1", "persistentvolumeclaims", pvc("b", cls="later"))
    await run_until_idle([binder], raise_errors=True)
    assert w.claim("a")["metadata"]["annotations"][ANN_STORAGE_PROVISIONER] == "example.com/p"
    assert "ExternalProvisioning" in w.reasons("a")
    assert ANN_STORAGE_PROVISIONER not in (w.claim("b")["metadata"].get("annotations") or {})
    assert "WaitForFirstConsumer" in w.reasons("b")
    # the scheduler picked a node: now the provisioner is asked
    b = w.claim("b")
    b["metadata"]["annotations"] = {ANN_SELECTED_NODE: "n1"}
    w.api.update("v1", "persistentvolumeclaims", b)
    await run_until_idle([binder], raise_errors=True)
    assert w.claim("b")["metadata"]["annotations"][ANN_STORAGE_PROVISIONER] == "example.com/p"


async def test_a_claim_without_a_class_gets_the_default_class_once_one_exists() -> None:
    w = World()
    binder = PersistentVolumeBinderController(w.ctx)
    w.api.create("v1", "persistentvolumeclaims", pvc("data", cls=None))
    await run_until_idle([binder], raise_errors=True)
    assert "storageClassName" not in w.claim("data")["spec"]
    w.api.create("storage.k8s.io/v1", "storageclasses", storage_class("std", "example.com/p", default=True))
    await run_until_idle([binder], raise_errors=True)
    assert w.claim("data")["spec"]["storageClassName"] == "std"
    assert w.claim("data")["metadata"]["annotations"][ANN_STORAGE_PROVISIONER] == "example.com/p"
    # "" asks for no class: never defaulted
    w.api.create("v1", "persistentvolumeclaims", pvc("none", cls=""))
    await run_until_idle([binder], raise_errors=True)
    assert w.claim("none")["spec"]["storageClassName"] == ""


async def test_prebound_claim_and_prebound_volume() -> None:
    w = World()
    binder = PersistentVolumeBinderController(w.ctx)
    w.api.create("v1", "persistentvolumes", pv("named", "1Gi"))
    w.api.create("v1", "persistentvolumes", pv("held", "1Gi", claim=(NS, "other")))
    w.api.create("v1", "persistentvolumeclaims", pvc("a", volume="named"))
    w.api.create("v1", "persistentvolumeclaims", pvc("other"))
    await run_until_idle([binder], raise_errors=True)
    assert w.claim("a")["spec"]["volumeName"] == "named"
    assert w.volume("named")["metadata"]["annotations"][ANN_BOUND_BY_CONTROLLER] == "yes"
    assert w.claim("other")["spec"]["volumeName"] == "held"
    # the user pre-bound "held": the binder did not mark it as its own
    assert ANN_BOUND_BY_CONTROLLER not in (w.volume("held")["metadata"].get("annotations") or {})
    # a claim naming a volume bound elsewhere waits
    w.api.create("v1", "persistentvolumeclaims", pvc("late", volume="named"))
    await run_until_idle([binder], raise_errors=True)
    assert w.claim("late")["status"]["phase"] == "Pending"
    assert "FailedBinding" in w.reasons("late")


async def test_deleting_the_claim_releases_the_volume_by_reclaim_policy() -> None:
    w = World()
    binder = PersistentVolumeBinderController(w.ctx)
    w.api.create("v1", "persistentvolumes", pv("keep", "1Gi", policy="Retain"))
    w.api.create("v1", "persistentvolumes", pv("drop", "2Gi", policy="Delete"))
    w.api.create("v1", "persistentvolumeclaims", pvc("a", "1Gi"))
    w.api.create("v1", "persistentvolumeclaims", pvc("b", "2Gi"))
    await run_until_idle([binder], raise_errors=True)
    assert w.claim("a")["spec"]["volumeName"] == "keep"
    w.api.delete("v1", "persistentvolumeclaims", "a", NS)
    w.api.delete("v1", "persistentvolumeclaims", "b", NS)
    await run_until_idle([binder], raise_errors=True)
    assert w.volume("keep")["status"]["phase"] == "Released"
    # no deleter for a static hostPath volume: Failed, as upstream
    assert w.volume("drop")["status"]["phase"] == "Failed"
    assert "VolumeFailedDelete" in w.reasons("drop")
    # a released volume is not bound again to a new claim of the same name
    w.api.create("v1", "persistentvolumeclaims", pvc("a", "1Gi"))
    await run_until_idle([binder], raise_errors=True)
    assert not w.claim("a")["spec"].get("volumeName")


async def test_a_bound_claim_whose_volume_is_gone_is_lost() -> None:
    w = World()
    binder = PersistentVolumeBinderController(w.ctx)
    w.api.create("v1", "persistentvolumes", pv("v"))
    w.api.create("v1", "persistentvolumeclaims", pvc("a"))
    await run_until_idle([binder], raise_errors=True)
    w.api.delete("v1", "persistentvolumes", "v", "")
    await run_until_idle([binder], raise_errors=True)
    assert w.claim("a")["status"]["phase"] == "Lost"
    assert "ClaimLost" in w.reasons("a")


async def test_a_conflicting_write_is_retried_and_finishes_the_binding() -> None:
    w = World()
    binder = PersistentVolumeBinderController(w.ctx)
    w.api.create("v1", "persistentvolumes", pv("v"))
    w.api.create("v1", "persistentvolumeclaims", pvc("a"))
    from apimachinery import errors

    w.api.fail_next("update", "persistentvolumeclaims", errors.conflict("persistentvolumeclaims", "a", "modified"))
    await run_until_idle([binder])
    assert w.claim("a")["spec"]["volumeName"] == "v"
    assert w.claim("a")["status"]["phase"] == "Bound"


# -- protection ------------------------------------------------------------------------

def running_pod(name: str, claim: str, phase: str = "Running", node: str = "n1") -> Obj:
    spec: Obj = {"volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": claim}}]}
    if node:
        spec["nodeName"] = node
    return {"metadata": {"name": name, "namespace": NS}, "spec": spec, "status": {"phase": phase}}


async def test_a_claim_in_use_keeps_its_finalizer_until_its_pod_is_gone() -> None:
    w = World()
    c = PVCProtectionController(w.ctx)
    claim = pvc("data")
    claim["metadata"]["finalizers"] = ["kubernetes.io/pvc-protection"]
    w.api.create("v1", "persistentvolumeclaims", claim)
    w.api.create("v1", "pods", running_pod("user", "data"))
    w.api.create("v1", "pods", running_pod("done", "data", "Succeeded"))
    w.api.create("v1", "pods", running_pod("unscheduled", "data", "Pending", node=""))
    w.api.delete("v1", "persistentvolumeclaims", "data", NS)
    await run_until_idle([c], raise_errors=True)
    assert w.claim("data")["metadata"]["finalizers"] == ["kubernetes.io/pvc-protection"]
    w.api.delete("v1", "pods", "user", NS)
    await run_until_idle([c], raise_errors=True)
    # a finished pod still holds its claim, as upstream's podUsesPVC (only its deletion frees it)
    assert w.claim("data")["metadata"]["finalizers"] == ["kubernetes.io/pvc-protection"]
    w.api.delete("v1", "pods", "done", NS)
    await run_until_idle([c], raise_errors=True)
    assert w.api.get_object("v1", "persistentvolumeclaims", NS, "data") is None


def test_an_ephemeral_claim_is_free_once_its_pod_is_shut_down() -> None:
    from controller_manager.pvc_protection import pod_uses_claim

    pod = {"metadata": {"name": "p", "namespace": NS, "uid": "u1"},
           "spec": {"nodeName": "n1", "volumes": [{"name": "s", "ephemeral": {"volumeClaimTemplate": {}}}]}}
    claim = {"metadata": {"name": "p-s", "namespace": NS,
                          "ownerReferences": [{"uid": "u1", "controller": True}]}}
    assert pod_uses_claim(pod, claim)
    assert not pod_uses_claim(pod, {"metadata": {"name": "p-s", "namespace": NS}})  # not the pod's own
    pod["metadata"].update(deletionTimestamp="2024-01-01T00:00:00Z", deletionGracePeriodSeconds=0)
    assert not pod_uses_claim(pod, claim)


async def test_a_bound_volume_keeps_its_finalizer_until_released() -> None:
    w = World()
    c = PVProtectionController(w.ctx)
    volume = pv("v")
    volume["metadata"]["finalizers"] = ["kubernetes.io/pv-protection"]
    volume["status"]["phase"] = "Bound"
    w.api.create("v1", "persistentvolumes", volume)
    w.api.delete("v1", "persistentvolumes", "v", "")
    await run_until_idle([c], raise_errors=True)
    assert w.volume("v") is not None
    v = w.volume("v")
    v["status"]["phase"] = "Released"
    w.api.update("v1", "persistentvolumes", v, status=True)
    await run_until_idle([c], raise_errors=True)
    assert w.volume("v") is None


# -- ephemeral volumes -----------------------------------------------------------------

async def test_an_ephemeral_volume_gets_a_claim_owned_by_its_pod() -> None:
    w = World()
    c = EphemeralVolumeController(w.ctx)
    template = {"metadata": {"labels": {"a": "b"}}, "spec": {"accessModes": ["ReadWriteOnce"],
                                                               "resources": {"requests": {"storage": "1Gi"}}}}
    pod = w.api.create("v1", "pods", {"metadata": {"name": "p", "namespace": NS}, "spec": {"volumes": [
        {"name": "scratch", "ephemeral": {"volumeClaimTemplate": template}}]}})
    w.api.create("v1", "persistentvolumeclaims", pvc("p2-scratch"))  # someone else's, same shape of name
    await run_until_idle([c], raise_errors=True)
    claim = w.claim("p-scratch")
    assert claim["metadata"]["labels"] == {"a": "b"}
    assert claim["metadata"]["ownerReferences"][0]["uid"] == pod["metadata"]["uid"]
    assert claim["metadata"]["ownerReferences"][0]["controller"] is True
    assert claim["spec"]["resources"] == {"requests": {"storage": "1Gi"}}


async def test_an_ephemeral_claim_name_taken_by_another_claim_is_reported() -> None:
    w = World()
    c = EphemeralVolumeController(w.ctx)
    w.api.create("v1", "persistentvolumeclaims", pvc("p-scratch"))
    w.api.create("v1", "pods", {"metadata": {"name": "p", "namespace": NS}, "spec": {"volumes": [
        {"name": "scratch", "ephemeral": {"volumeClaimTemplate": {"spec": {}}}}]}})
    await run_until_idle([c], raise_errors=True)
    assert any(e[2] == "FailedBinding" and "pod is not owner" in e[3] for e in w.api.events)


# -- the hostpath provisioner ----------------------------------------------------------

def ready_node(name: str) -> Obj:
    return {"metadata": {"name": name}, "status": {"conditions": [{"type": "Ready", "status": "True"}]}}


def finish_helpers(w: World, phase: str = "Succeeded") -> int:
    n = 0
    for pod in w.api.list_objects("v1", "pods", HELPER_NAMESPACE):
        if (pod.get("status") or {}).get("phase") == "Pending":
            pod["status"] = {"phase": phase, "containerStatuses": [
                {"name": "helper", "state": {"terminated": {"exitCode": 0 if phase == "Succeeded" else 1,
                                                            "message": "rm: permission denied"}}}]}
            w.api.update("v1", "pods", pod, HELPER_NAMESPACE, status=True)
            n += 1
    return n


def hostpath_world(mode: str = "WaitForFirstConsumer") -> tuple[World, PersistentVolumeBinderController,
                                                               HostPathProvisioner]:
    """Binder and provisioner, a Ready node n1 and the default class (base /srv/vols) in `mode`."""
    w = World()
    binder, prov = PersistentVolumeBinderController(w.ctx), HostPathProvisioner(w.ctx)
    w.api.create("v1", "nodes", ready_node("n1"))
    cls = default_storage_class("/srv/vols")
    cls["volumeBindingMode"] = mode
    w.api.create("storage.k8s.io/v1", "storageclasses", cls)
    return w, binder, prov


async def test_hostpath_provisioning_and_deletion_through_helper_pods() -> None:
    w, binder, prov = hostpath_world()
    w.api.create("v1", "persistentvolumeclaims", pvc("data", "3Gi", cls="standard"))
    await run_until_idle([binder, prov], settle=lambda: finish_helpers(w), raise_errors=True)
    assert not w.api.list_objects("v1", "persistentvolumes")  # WaitForFirstConsumer: no node chosen yet
    claim = w.claim("data")
    claim["metadata"].setdefault("annotations", {})[ANN_SELECTED_NODE] = "n1"
    w.api.update("v1", "persistentvolumeclaims", claim)
    created_helpers: list[Obj] = []

    def settle() -> None:
        created_helpers.extend(p for p in w.api.list_objects("v1", "pods", HELPER_NAMESPACE)
                               if p not in created_helpers)
        finish_helpers(w)

    await run_until_idle([binder, prov], settle=settle, raise_errors=True)
    claim = w.claim("data")
    name = f"pvc-{claim['metadata']['uid']}"
    volume = w.volume(name)
    assert claim["spec"]["volumeName"] == name and claim["status"]["phase"] == "Bound"
    assert volume["spec"]["hostPath"]["path"] == f"/srv/vols/{name}_{NS}_data"
    assert volume["spec"]["capacity"] == {"storage": "3Gi"}
    assert volume["spec"]["persistentVolumeReclaimPolicy"] == "Delete"
    assert volume["metadata"]["annotations"]["pv.kubernetes.io/provisioned-by"] == PROVISIONER
    terms = volume["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"]
    assert terms == [{"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": ["n1"]}]}]
    create = next(p for p in created_helpers if p["metadata"]["name"] == f"hostpath-create-{name}")
    assert create["spec"]["nodeName"] == "n1"
    assert create["spec"]["volumes"][0]["hostPath"]["path"] == "/srv/vols"
    assert create["spec"]["containers"][0]["env"] == [{"name": "DIR", "value": f"{name}_{NS}_data"}]
    assert not w.api.list_objects("v1", "pods", HELPER_NAMESPACE)  # helpers removed when done
    assert ["Provisioning", "ProvisioningSucceeded"] == [r for r in w.reasons("data") if r.startswith("Provisioning")]

    # the claim goes: the volume is released, its directory removed on n1, then the volume deleted
    w.api.delete("v1", "persistentvolumeclaims", "data", NS)
    await run_until_idle([binder, prov], settle=settle, raise_errors=True)
    assert w.volume(name) is None
    delete = next(p for p in created_helpers if p["metadata"]["name"] == f"hostpath-delete-{name}")
    assert delete["spec"]["nodeName"] == "n1" and 'rm -rf "/data/$DIR"' in delete["spec"]["containers"][0]["command"][2]


async def test_a_failed_helper_is_reported_and_retried() -> None:
    w, binder, prov = hostpath_world("Immediate")
    w.api.create("v1", "persistentvolumeclaims", pvc("data", cls="standard"))
    await run_until_idle([binder, prov], settle=lambda: finish_helpers(w, "Failed"), raise_errors=True)
    assert not w.api.list_objects("v1", "persistentvolumes")
    failed = [e for e in w.api.events if e[2] == "ProvisioningFailed"]
    assert failed and "exited with 1: rm: permission denied" in failed[0][3]
    assert not w.api.list_objects("v1", "pods", HELPER_NAMESPACE)  # the failed helper is gone
    await prov.sync(f"claim/{NS}/data")  # the retry (queued after RETRY_AFTER) starts a new helper
    assert [p["metadata"]["name"] for p in w.api.list_objects("v1", "pods", HELPER_NAMESPACE)] == [
        f"hostpath-create-pvc-{w.claim('data')['metadata']['uid']}"]


def test_the_base_path_must_be_a_clean_absolute_directory() -> None:
    assert base_path_of({"parameters": {"path": "/srv/v/"}}) == "/srv/v"
    assert base_path_of({}) == "/var/lib/minik8s/volumes"
    for bad in ("relative", "/", "/a/../b"):
        try:
            base_path_of({"parameters": {"path": bad}})
        except ValueError as e:
            assert "normalized absolute directory" in str(e)
        else:
            raise AssertionError(f"{bad!r} accepted")


async def test_finished_helpers_nobody_waits_for_are_removed_running_ones_left() -> None:
    w = World()
    prov = HostPathProvisioner(w.ctx)
    from controller_manager.hostpath_provisioner import HELPER_FOR, helper_pod

    for name, phase in (("done", "Succeeded"), ("busy", "Running")):
        pod = helper_pod("delete", name, "n1", "/srv", name, "volume/gone")
        pod["status"] = {"phase": phase}
        w.api.create("v1", "pods", pod, HELPER_NAMESPACE)
    assert all(p["metadata"]["annotations"][HELPER_FOR] == "volume/gone"
               for p in w.api.list_objects("v1", "pods", HELPER_NAMESPACE))
    await prov.sync("volume/gone")
    assert [p["metadata"]["name"] for p in w.api.list_objects("v1", "pods", HELPER_NAMESPACE)] == ["hostpath-delete-busy"]


async def _provisioned(created_helpers: list[Obj]) -> tuple[World, list[Any], Any, str]:
    """A claim `data` bound to a volume provisioned on n1; → (world, controllers, settle, volume name)."""
    w, binder, prov = hostpath_world("Immediate")
    controllers = [binder, prov]
    w.api.create("v1", "persistentvolumeclaims", pvc("data", cls="standard"))

    def settle() -> None:
        created_helpers.extend(p for p in w.api.list_objects("v1", "pods", HELPER_NAMESPACE)
                               if p not in created_helpers)
        finish_helpers(w)

    await run_until_idle(controllers, settle=settle, raise_errors=True)
    return w, controllers, settle, f"pvc-{w.claim('data')['metadata']['uid']}"


async def test_a_volume_deleted_directly_still_gets_its_directory_removed_first() -> None:
    from controller_manager.hostpath_provisioner import FINALIZER

    helpers: list[Obj] = []
    w, controllers, settle, name = await _provisioned(helpers)
    assert w.volume(name)["metadata"]["finalizers"] == [FINALIZER]
    w.api.delete("v1", "persistentvolumes", name, "")  # by a user, while its claim still uses it
    await run_until_idle(controllers, settle=settle, raise_errors=True)
    volume = w.volume(name)
    assert volume is not None and volume["metadata"]["deletionTimestamp"] and volume["status"]["phase"] == "Bound"
    assert not [p for p in helpers if p["metadata"]["name"].startswith("hostpath-delete-")]
    w.api.delete("v1", "persistentvolumeclaims", "data", NS)  # released: the directory goes, then the volume
    await run_until_idle(controllers, settle=settle, raise_errors=True)
    assert w.volume(name) is None
    assert [p["metadata"]["name"] for p in helpers if p["metadata"]["name"].startswith("hostpath-delete-")] == [
        f"hostpath-delete-{name}"]
    assert not w.api.list_objects("v1", "pods", HELPER_NAMESPACE)


async def test_a_volume_switched_to_retain_loses_the_finalizer_and_keeps_its_directory() -> None:
    helpers: list[Obj] = []
    w, controllers, settle, name = await _provisioned(helpers)
    volume = w.volume(name)
    volume["spec"]["persistentVolumeReclaimPolicy"] = "Retain"
    w.api.update("v1", "persistentvolumes", volume)
    await run_until_idle(controllers, settle=settle, raise_errors=True)
    assert not w.volume(name)["metadata"].get("finalizers")
    w.api.delete("v1", "persistentvolumeclaims", "data", NS)
    await run_until_idle(controllers, settle=settle, raise_errors=True)
    assert w.volume(name)["status"]["phase"] == "Released"  # kept, as Retain says
    assert not [p for p in helpers if p["metadata"]["name"].startswith("hostpath-delete-")]


async def test_a_selected_node_that_is_gone_is_handed_back_to_the_scheduler() -> None:
    w, binder, prov = hostpath_world()
    claim = pvc("data", cls="standard")
    claim["metadata"]["annotations"] = {ANN_SELECTED_NODE: "n-gone"}  # chosen, then the node was deleted
    w.api.create("v1", "persistentvolumeclaims", claim)
    await run_until_idle([binder, prov], settle=lambda: finish_helpers(w), raise_errors=True)
    assert ANN_SELECTED_NODE not in (w.claim("data")["metadata"].get("annotations") or {})
    assert not w.api.list_objects("v1", "pods", HELPER_NAMESPACE) and not w.api.list_objects("v1", "persistentvolumes")
    failed = [e[3] for e in w.api.events if e[2] == "ProvisioningFailed"]
    assert failed == ['node "n-gone" not found: the scheduler will choose another']


async def test_a_volume_named_by_a_claim_is_checked_as_upstreams_check_volume_satisfy_claim() -> None:
    w = World()
    binder = PersistentVolumeBinderController(w.ctx)
    w.api.create("v1", "persistentvolumes", pv("small", "1Gi"))
    w.api.create("v1", "persistentvolumes", pv("labelled", "2Gi", labels={"tier": "b"}))
    w.api.create("v1", "persistentvolumeclaims", pvc("big", "2Gi", volume="small"))
    # asked for by name: the claim's selector does not count
    w.api.create("v1", "persistentvolumeclaims", pvc("picky", "2Gi", volume="labelled",
                                                     selector={"matchLabels": {"tier": "a"}}))
    await run_until_idle([binder], raise_errors=True)
    assert w.claim("big")["status"]["phase"] == "Pending"
    assert ('Cannot bind to requested volume "small": requested PV is too small'
            in [e[3] for e in w.api.events if e[0] == "big" and e[2] == "VolumeMismatch"])
    assert w.claim("picky")["spec"]["volumeName"] == "labelled"


async def test_a_user_prebound_volume_whose_claim_bound_elsewhere_keeps_only_the_name() -> None:
    w = World()
    binder = PersistentVolumeBinderController(w.ctx)
    w.api.create("v1", "persistentvolumes", pv("mine", "1Gi"))
    w.api.create("v1", "persistentvolumeclaims", pvc("a", volume="mine"))
    await run_until_idle([binder], raise_errors=True)
    claim = w.claim("a")
    # the user pre-binds a second volume to the same claim (uid included), which is bound to "mine"
    w.api.create("v1", "persistentvolumes", pv("spare", "1Gi", claim=(NS, "a")))
    spare = w.volume("spare")
    spare["spec"]["claimRef"]["uid"] = claim["metadata"]["uid"]
    w.api.update("v1", "persistentvolumes", spare)
    await run_until_idle([binder], raise_errors=True)
    spare = w.volume("spare")
    assert spare["status"]["phase"] == "Available"
    assert spare["spec"]["claimRef"]["name"] == "a" and not spare["spec"]["claimRef"].get("uid")


async def test_a_deleted_ephemeral_claim_is_made_again_for_its_pod() -> None:
    w = World()
    c = EphemeralVolumeController(w.ctx)
    w.api.create("v1", "pods", {"metadata": {"name": "p", "namespace": NS}, "spec": {"volumes": [
        {"name": "scratch", "ephemeral": {"volumeClaimTemplate": {"spec": {"accessModes": ["ReadWriteOnce"]}}}}]}})
    await run_until_idle([c], raise_errors=True)
    first = w.claim("p-scratch")["metadata"]["uid"]
    w.api.delete("v1", "persistentvolumeclaims", "p-scratch", NS)
    await run_until_idle([c], raise_errors=True)
    assert w.claim("p-scratch")["metadata"]["uid"] != first
