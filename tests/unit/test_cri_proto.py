"""Our trimmed CRI proto must stay wire-compatible with upstream runtime.v1 and match its stubs."""

from __future__ import annotations

from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2

from proto import cri_api_pb2 as pb
from proto import cri_api_pb2_grpc as pb_grpc

PROTO_DIR = Path(__file__).resolve().parents[2] / "proto"

# (message, field, number) as in kubernetes/cri-api pkg/apis/runtime/v1/api.proto.
UPSTREAM_FIELDS = [
    ("ContainerConfig", "metadata", 1),
    ("ContainerConfig", "image", 2),
    ("ContainerConfig", "command", 3),
    ("ContainerConfig", "args", 4),
    ("ContainerConfig", "envs", 6),
    ("ContainerConfig", "mounts", 7),
    ("ContainerConfig", "log_path", 11),
    ("ContainerConfig", "tty", 14),
    ("ContainerConfig", "linux", 15),
    ("PodSandboxConfig", "metadata", 1),
    ("PodSandboxConfig", "log_directory", 3),
    ("PodSandboxConfig", "dns_config", 4),
    ("PodSandboxConfig", "port_mappings", 5),
    ("PodSandboxConfig", "linux", 8),
    ("PodSandboxMetadata", "attempt", 4),
    ("LinuxPodSandboxConfig", "cgroup_parent", 1),
    ("LinuxPodSandboxConfig", "resources", 5),
    ("LinuxContainerResources", "memory_limit_in_bytes", 4),
    ("LinuxContainerResources", "oom_score_adj", 5),
    ("LinuxContainerResources", "unified", 9),
    ("LinuxContainerResources", "memory_swap_limit_in_bytes", 10),
    ("LinuxSandboxSecurityContext", "run_as_group", 8),
    ("LinuxSandboxSecurityContext", "supplemental_groups_policy", 11),
    ("LinuxContainerSecurityContext", "run_as_username", 6),
    ("LinuxContainerSecurityContext", "no_new_privs", 11),
    ("LinuxContainerSecurityContext", "run_as_group", 12),
    ("LinuxContainerSecurityContext", "supplemental_groups_policy", 17),
    ("ImageSpec", "image", 1),
    ("ImageSpec", "user_specified_image", 18),
    ("ImageSpec", "runtime_handler", 19),
    ("Mount", "uidMappings", 6),
    ("Mount", "image_sub_path", 10),
    ("ContainerStatus", "exit_code", 7),
    ("ContainerStatus", "reason", 10),
    ("ContainerStatus", "resources", 16),
    ("ContainerStatus", "image_id", 17),
    ("Container", "image_id", 10),
    ("PodSandboxStatus", "network", 5),
    ("PodSandboxStatus", "runtime_handler", 9),
    ("PodSandboxStatusResponse", "containers_statuses", 3),
    ("PodSandboxStatusResponse", "timestamp", 4),
    ("StopContainerRequest", "timeout", 2),
    ("ExecSyncRequest", "timeout", 3),
    ("ExecSyncResponse", "exit_code", 3),
    ("AttachRequest", "tty", 3),
    ("PullImageRequest", "sandbox_config", 3),
    ("Image", "pinned", 8),
    ("UpdateContainerResourcesRequest", "annotations", 4),
    ("ContainerStats", "swap", 5),
    ("MemoryUsage", "major_page_faults", 7),
    ("StatusResponse", "runtime_handlers", 3),
    ("ImageFsInfoResponse", "container_filesystems", 2),
]


@pytest.mark.parametrize(("message", "field", "number"), UPSTREAM_FIELDS)
def test_field_numbers_match_upstream(message, field, number):
    descriptor = pb.DESCRIPTOR.message_types_by_name[message]
    assert descriptor.fields_by_name[field].number == number


def test_package_and_enums_match_upstream():
    assert pb.DESCRIPTOR.package == "runtime.v1"
    states = [pb.CONTAINER_CREATED, pb.CONTAINER_RUNNING, pb.CONTAINER_EXITED, pb.CONTAINER_UNKNOWN]
    assert states == [0, 1, 2, 3]
    assert [pb.SANDBOX_READY, pb.SANDBOX_NOTREADY] == [0, 1]
    assert [pb.POD, pb.CONTAINER, pb.NODE, pb.TARGET] == [0, 1, 2, 3]
    assert pb.SecurityProfile.Localhost == 2


def test_wire_bytes_use_upstream_tags():
    config = pb.ContainerConfig(image=pb.ImageSpec(image="x"))
    # Field 2, length-delimited (tag 0x12), holding ImageSpec field 1 (tag 0x0a) "x".
    assert config.SerializeToString() == b"\x12\x03\x0a\x01x"


def test_service_method_paths():
    methods = {m.name for m in pb.DESCRIPTOR.services_by_name["RuntimeService"].methods}
    assert {"RunPodSandbox", "CreateContainer", "ExecSync", "ContainerStats", "Status"} <= methods
    images = {m.name for m in pb.DESCRIPTOR.services_by_name["ImageService"].methods}
    assert images == {"ListImages", "ImageStatus", "PullImage", "RemoveImage", "ImageFsInfo"}
    assert pb.DESCRIPTOR.services_by_name["RuntimeService"].full_name == "runtime.v1.RuntimeService"
    assert hasattr(pb_grpc, "RuntimeServiceStub") and hasattr(pb_grpc, "ImageServiceStub")


def _drop_json_names(messages) -> None:
    for message in messages:
        for field in message.field:
            field.ClearField("json_name")
        _drop_json_names(message.nested_type)


def test_committed_stubs_match_the_proto(tmp_path):
    protoc = pytest.importorskip("grpc_tools.protoc")
    out = tmp_path / "cri.pb"
    rc = protoc.main(
        ["protoc", f"-I{PROTO_DIR}", f"--descriptor_set_out={out}", str(PROTO_DIR / "cri_api.proto")]
    )
    assert rc == 0
    compiled = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file[0]
    _drop_json_names(compiled.message_type)  # protoc leaves them out of Python stubs
    committed = descriptor_pb2.FileDescriptorProto.FromString(pb.DESCRIPTOR.serialized_pb)
    assert committed == compiled, "proto/cri_api.proto changed: run `make proto` and commit the stubs"
