"""A control plane nodes can join: anonymous reads of cluster-info, the CSR approving/signing
and bootstrap-signer controllers, and kubeadm's node bootstrap RBAC (as `minictl cluster up`)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from minictl.kubeadm import setup_node_joining_sync
from tests.conftest import ControlPlane, private_control_plane

JOIN_CONTROLLERS = ("serviceaccount-controller,root-ca-certificate-publisher-controller,"
                    "csrapproving,csrsigning,bootstrapsigner,tokencleaner,kubelet-serving-approver")


@contextlib.contextmanager
def joinable_control_plane(prefix: str, signing_duration: str = "") -> Iterator[ControlPlane]:
    with private_control_plane(prefix, controller_manager=False, anonymous_auth=True) as cp:
        extra = ["--cluster-signing-cert-file", str(cp.pki.ca_cert), "--cluster-signing-key-file", str(cp.pki.ca_key)]
        if signing_duration:
            extra += ["--cluster-signing-duration", signing_duration]
        cp.start_controller_manager(JOIN_CONTROLLERS, extra)
        cp.wait_namespace_ready("default")
        setup_node_joining_sync(cp.kubeconfig, cp.url, cp.pki.ca_cert)
        yield cp
