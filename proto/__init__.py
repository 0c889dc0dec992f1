"""Generated protobuf/gRPC stubs (see `make proto`).

protoc's grpc plugin writes `import cri_api_pb2` (a top-level name) into cri_api_pb2_grpc.py.
Registering our package module under that name lets `from proto import cri_api_pb2_grpc` work
without putting proto/ on sys.path, which would load the descriptors twice.
"""

import sys

from . import cri_api_pb2

sys.modules.setdefault("cri_api_pb2", cri_api_pb2)
