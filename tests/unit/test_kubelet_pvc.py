"""persistentVolumeClaim and generic ephemeral volumes: the kubelet's claim → PV resolution through
its API client (a fake one here, answering as the apiserver does), each error upstream's volume
manager reports, hostPath/local PV sources, read-only claims, and the once-per-pod lookup."""

import os

import pytest

from client.errors import ApiError
from kubelet.config import KubeletConfig
from kubelet.kubelet import Kubelet
from kubelet.volumes import VolumeError

NS = "ns"
PVC_UID = "pvc-uid-1"


class _Resource:
    def __init__(self, api, plural):
        self.api = api
        self.plural = plural

    async def get(self, name, namespace=None, resource_version=None):
        self.api.gets.append((self.plural, namespace, name))
        if self.api.fail is not None:
            raise self.api.fail
        obj = self.api.objects.get((self.plural, namespace, name))
        if obj is None:
            raise ApiError(404, "NotFound", f'{self.plural} "{name}" not found')
        return obj


class _API:
    """What the kubelet's volume setup asks the apiserver, and what it answers."""

    def __init__(self):
        self.objects = {}
        self.gets = []
        self.fail = None

    def resource(self, version, plural):
        return _Resource(self, plural)

    def put(self, plural, obj):
        meta = obj["metadata"]
        self.objects[(plural, meta.get("namespace"), meta["name"])] = obj


class _CRI:
    pass


@pytest.fixture
def api():
    return _API()


@pytest.fixture
def kubelet(tmp_path, api):
    config = KubeletConfig(node_name="n1", node_ip="192.0.2.5", root_dir=str(tmp_path / "root"))
    return Kubelet(config, api, _CRI())


def _pvc(name="data", *, uid=PVC_UID, volume_name="pv1", phase="Bound", **meta):
    spec = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
    if volume_name:
        spec["volumeName"] = volume_name
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": name, "namespace": NS, "uid": uid, **meta},
            "spec": spec, "status": {"phase": phase}}


def _pv(name="pv1", *, claim_uid=PVC_UID, claim="data", **source):
    spec = {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], **source}
    if claim_uid is not None:
        spec["claimRef"] = {"kind": "PersistentVolumeClaim", "namespace": NS, "name": claim, "uid": claim_uid}
    return {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name}, "spec": spec,
            "status": {"phase": "Bound"}}


def _pod(volumes, name="p", uid="pod-uid", **spec):
    return {"metadata": {"name": name, "namespace": NS, "uid": uid},
            "spec": {"containers": [{"name": "c", "image": "busybox"}], "volumes": volumes, **spec}}


def _claim(claim="data", read_only=None, name="vol"):
    src = {"claimName": claim}
    if read_only is not None:
        src["readOnly"] = read_only
    return {"name": name, "persistentVolumeClaim": src}


def _bind(api, path, pvc=None, claim="data", **source):
    """A claim bound to a hostPath PV at `path` (or the given source)."""
    api.put("persistentvolumeclaims", pvc or _pvc())
    api.put("persistentvolumes", _pv(claim=claim, **(source or {"hostPath": {"path": str(path)}})))


async def _error(kubelet, pod) -> str:
    with pytest.raises(VolumeError) as e:
        await kubelet.volumes.setup(pod)
    return str(e.value)


# ------------------------------------------------------------------------------ sources


async def test_host_path_pv_is_mounted_from_its_own_path_read_write(kubelet, api, tmp_path):
    (tmp_path / "pv").mkdir()
    _bind(api, tmp_path / "pv")
    mounted = await kubelet.volumes.setup(_pod([_claim()]))
    vol = mounted["vol"]
    assert vol.host_path == str(tmp_path / "pv") and not vol.read_only
    assert vol.kind == "persistentVolumeClaim"
    assert api.gets == [("persistentvolumeclaims", NS, "data"), ("persistentvolumes", None, "pv1")]
    # nothing of it lives in the pod's directory (teardown's rmtree must never reach the data)
    assert not (kubelet.volumes.pod_dir("pod-uid") / "volumes").exists()


async def test_read_only_claim_source(kubelet, api, tmp_path):
    _bind(api, tmp_path, hostPath={"path": str(tmp_path), "type": "Directory"})
    mounted = await kubelet.volumes.setup(_pod([_claim(read_only=True)]))
    assert mounted["vol"].read_only and mounted["vol"].host_path == str(tmp_path)
    mounted = await kubelet.volumes.setup(_pod([_claim(read_only=False)], uid="other"))
    assert not mounted["vol"].read_only


async def test_host_path_pv_types_use_the_host_path_checks(kubelet, api, tmp_path):
    made = tmp_path / "made" / "here"
    _bind(api, None, hostPath={"path": str(made), "type": "DirectoryOrCreate"})
    mounted = await kubelet.volumes.setup(_pod([_claim()], uid="u1"))
    assert made.is_dir() and mounted["vol"].host_path == str(made)

    f = tmp_path / "sub" / "file"
    _bind(api, None, hostPath={"path": str(f), "type": "FileOrCreate"})
    await kubelet.volumes.setup(_pod([_claim()], uid="u2"))
    assert f.is_file()

    _bind(api, None, hostPath={"path": str(f), "type": "Directory"})
    assert f"hostPath type check failed: {f} is not a directory" in await _error(kubelet, _pod([_claim()], uid="u3"))
    _bind(api, None, hostPath={"path": "relative/dir"})
    assert "must be absolute" in await _error(kubelet, _pod([_claim()], uid="u4"))


async def test_fs_group_does_not_chown_host_path_or_local_volumes(kubelet, api, tmp_path):
    d = tmp_path / "owned"
    d.mkdir()
    before = os.stat(d)
    _bind(api, None, hostPath={"path": str(d)})
    await kubelet.volumes.setup(_pod([_claim()], securityContext={"fsGroup": 4321}))
    after = os.stat(d)
    assert (after.st_uid, after.st_gid, after.st_mode) == (before.st_uid, before.st_gid, before.st_mode)


async def test_local_pv_path_must_exist(kubelet, api, tmp_path):
    _bind(api, None, local={"path": str(tmp_path)})
    mounted = await kubelet.volumes.setup(_pod([_claim()], uid="u1"))
    assert mounted["vol"].host_path == str(tmp_path) and not mounted["vol"].read_only

    _bind(api, None, local={"path": str(tmp_path / "missing")})
    message = await _error(kubelet, _pod([_claim()], uid="u2"))
    assert f'local volume path "{tmp_path / "missing"}" of PersistentVolume "pv1" does not exist' in message
    assert not (tmp_path / "missing").exists()  # never created


async def test_unsupported_sources_and_block_mode(kubelet, api, tmp_path):
    _bind(api, None, nfs={"server": "10.0.0.1", "path": "/export"})
    message = await _error(kubelet, _pod([_claim()], uid="u1"))
    assert message == ('MountVolume.SetUp failed for volume "vol" : '
                       'unsupported volume source for PersistentVolume "pv1"')

    _bind(api, None, hostPath={"path": str(tmp_path)}, volumeMode="Block")
    message = await _error(kubelet, _pod([_claim()], uid="u2"))
    assert 'PersistentVolume "pv1" has volumeMode Block' in message and "not supported" in message


async def test_sub_path_resolves_inside_the_pv(kubelet, api, tmp_path):
    from kubelet.volumes import resolve_sub_path

    _bind(api, tmp_path)
    mounted = await kubelet.volumes.setup(_pod([_claim()]))
    assert resolve_sub_path(mounted["vol"].host_path, "a/b") == str(tmp_path / "a" / "b")
    assert (tmp_path / "a" / "b").is_dir()


# ------------------------------------------------------------------------------ errors


async def test_claim_not_found(kubelet, api):
    message = await _error(kubelet, _pod([_claim("nope")]))
    assert message == ('MountVolume.SetUp failed for volume "vol" : error processing PVC ns/nope: '
                       'persistentvolumeclaim "nope" not found')


async def test_claim_being_deleted(kubelet, api, tmp_path):
    _bind(api, tmp_path, pvc=_pvc(deletionTimestamp="2024-01-01T00:00:00Z"))
    assert "error processing PVC ns/data: PVC is being deleted" in await _error(kubelet, _pod([_claim()]))
    assert not any(plural == "persistentvolumes" for plural, _, _ in api.gets)


@pytest.mark.parametrize(("phase", "volume_name"), [("Pending", ""), ("Pending", "pv1"), ("Bound", ""), ("Lost", "pv1")])
async def test_unbound_claims(kubelet, api, tmp_path, phase, volume_name):
    _bind(api, tmp_path, pvc=_pvc(phase=phase, volume_name=volume_name))
    message = await _error(kubelet, _pod([_claim()]))
    assert message.endswith(f'PVC ns/data has non-bound phase ("{phase}") or empty '
                            f'pvc.Spec.VolumeName ("{volume_name}")')


async def test_claim_without_status_is_unbound(kubelet, api, tmp_path):
    pvc = _pvc(volume_name="")
    del pvc["status"]
    _bind(api, tmp_path, pvc=pvc)
    assert 'non-bound phase ("") or empty pvc.Spec.VolumeName ("")' in await _error(kubelet, _pod([_claim()]))


async def test_pv_not_found(kubelet, api):
    api.put("persistentvolumeclaims", _pvc(volume_name="gone"))
    message = await _error(kubelet, _pod([_claim()]))
    assert message.endswith('error processing PVC ns/data: failed to fetch PV gone from API server: '
                            'persistentvolumes "gone" not found')


async def test_pv_claim_ref_must_carry_the_claim_uid(kubelet, api, tmp_path):
    api.put("persistentvolumeclaims", _pvc())
    api.put("persistentvolumes", _pv(claim_uid="someone-else", hostPath={"path": str(tmp_path)}))
    message = await _error(kubelet, _pod([_claim()], uid="u1"))
    assert f"Expected PV's ClaimRef.UID someone-else to match PVC's UID {PVC_UID}" in message

    api.put("persistentvolumes", _pv(claim_uid=None, hostPath={"path": str(tmp_path)}))
    message = await _error(kubelet, _pod([_claim()], uid="u2"))
    assert "found PV object pv1 but it has a nil pv.Spec.ClaimRef" in message


async def test_api_errors_are_volume_errors(kubelet, api):
    api.fail = ApiError(403, "Forbidden", 'persistentvolumeclaims "data" is forbidden: no relationship found')
    message = await _error(kubelet, _pod([_claim()]))
    assert "error processing PVC ns/data: failed to fetch PVC from API server: 403 Forbidden" in message

    api.fail = None
    api.put("persistentvolumeclaims", _pvc())
    real_get = _Resource.get

    async def pv_forbidden(self, name, namespace=None, resource_version=None):
        if self.plural == "persistentvolumes":
            raise ApiError(403, "Forbidden", f'persistentvolumes "{name}" is forbidden')
        return await real_get(self, name, namespace, resource_version)

    _Resource.get = pv_forbidden
    try:
        message = await _error(kubelet, _pod([_claim()]))
    finally:
        _Resource.get = real_get
    assert "failed to fetch PV pv1 from API server: 403 Forbidden" in message


async def test_empty_claim_name(kubelet, api):
    assert "claimName is empty" in await _error(kubelet, _pod([_claim("")]))
    assert api.gets == []


# ------------------------------------------------------------------------------ ephemeral


def _ephemeral(name="scratch"):
    return {"name": name, "ephemeral": {"volumeClaimTemplate": {"spec": {
        "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}}}


def _owner(uid, controller=True):
    return {"apiVersion": "v1", "kind": "Pod", "name": "p", "uid": uid, "controller": controller,
            "blockOwnerDeletion": True}


async def test_ephemeral_volume_uses_the_pod_owned_claim(kubelet, api, tmp_path):
    _bind(api, tmp_path, pvc=_pvc("p-scratch", ownerReferences=[_owner("pod-uid")]), claim="p-scratch")
    mounted = await kubelet.volumes.setup(_pod([_ephemeral()]))
    assert mounted["scratch"].host_path == str(tmp_path) and not mounted["scratch"].read_only
    assert mounted["scratch"].kind == "ephemeral"
    assert api.gets[0] == ("persistentvolumeclaims", NS, "p-scratch")


@pytest.mark.parametrize("owners", [[], [_owner("another-pod")], [_owner("pod-uid", controller=False)]])
async def test_ephemeral_claim_not_owned_by_the_pod(kubelet, api, tmp_path, owners):
    _bind(api, tmp_path, pvc=_pvc("p-scratch", ownerReferences=owners))
    message = await _error(kubelet, _pod([_ephemeral()]))
    assert message.endswith("PVC ns/p-scratch was not created for pod ns/p (pod is not owner)")
    assert not any(plural == "persistentvolumes" for plural, _, _ in api.gets)


async def test_ephemeral_claim_missing_and_unbound(kubelet, api, tmp_path):
    assert 'persistentvolumeclaim "p-scratch" not found' in await _error(kubelet, _pod([_ephemeral()]))
    api.put("persistentvolumeclaims", _pvc("p-scratch", volume_name="", phase="Pending",
                                           ownerReferences=[_owner("pod-uid")]))
    assert "PVC ns/p-scratch has non-bound phase" in await _error(kubelet, _pod([_ephemeral()]))


# ------------------------------------------------------------------------------ caching


async def test_claim_is_read_once_per_pod_and_forgotten_with_it(kubelet, api, tmp_path):
    _bind(api, tmp_path)
    pod = _pod([_claim(), {"name": "tmp", "emptyDir": {}}])
    first = await kubelet.volumes.setup(pod)
    assert len(api.gets) == 2
    for _ in range(3):  # the periodic resyncs of the running pod
        assert await kubelet.volumes.setup(pod) == first
    assert len(api.gets) == 2
    # another pod on the same claim reads it for itself
    await kubelet.volumes.setup(_pod([_claim()], name="q", uid="q-uid"))
    assert len(api.gets) == 4
    # once the pod is gone (volumes torn down, worker forgotten), a new setup reads them again
    assert kubelet.volumes.teardown("pod-uid")
    await kubelet.volumes.setup(pod)
    assert len(api.gets) == 6
    kubelet._forget("pod-uid")
    await kubelet.volumes.setup(pod)
    assert len(api.gets) == 8


async def test_a_failed_lookup_is_retried_until_the_claim_is_bound(kubelet, api, tmp_path):
    api.put("persistentvolumeclaims", _pvc(volume_name="", phase="Pending"))
    pod = _pod([_claim()])
    for _ in range(2):
        assert "non-bound phase" in await _error(kubelet, pod)
    assert api.gets == [("persistentvolumeclaims", NS, "data")] * 2
    _bind(api, tmp_path)  # the binder did its job
    mounted = await kubelet.volumes.setup(pod)
    assert mounted["vol"].host_path == str(tmp_path)
    assert len(api.gets) == 4
