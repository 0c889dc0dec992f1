"""Container runtime foundation: CRI client and the cluster's own containerd instance.

`pb` is the CRI `runtime.v1` message module, for building PodSandboxConfig/ContainerConfig.
"""

from proto import cri_api_pb2 as pb

from .client import CRIClient, CRIError

__all__ = ["CRIClient", "CRIError", "pb"]
