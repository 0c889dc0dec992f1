"""Approve kubelets' serving certificate requests whose names are the node's own (minik8s's own
controller; upstream leaves kubernetes.io/kubelet-serving requests to the cluster admin or to an
add-on such as kubelet-csr-approver, whose checks these are).

A pending kubernetes.io/kubelet-serving request is approved when
- it is a kubelet serving request (O=system:nodes, CN=system:node:<name>, server usages, no
  email or URI SANs: what the signer would sign),
- its requestor is that node itself (spec.username = CN, in group system:nodes),
- the Node exists and every SAN is the node's name or one of its status.addresses.

A request whose Node is missing or does not (yet) report one of its names is retried with backoff
(the node may register or update its addresses after asking); anything else is left for a human
(`kubectl certificate approve|deny`), with a log line saying why.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from certs import csr as csrlib
from client import is_not_found
from controller_manager.base import Controller, ControllerContext, register
from controller_manager.certificates_approving import approve

Obj = dict[str, Any]
CSR_API = "certificates.k8s.io/v1"
MESSAGE = "Auto approving kubelet serving certificate: the node's own names and addresses."


class NotYet(Exception):
    """The node does not (yet) match the request: retried with backoff."""


def refusal(csr: Obj, req: Any, node: Obj | None) -> str | None:
    """Why this kubelet-serving request is not for automatic approval (None: approve it); raises
    NotYet when the Node may still come to match it."""
    spec = csr.get("spec") or {}
    problem = csrlib.validate_kubelet_serving_csr(req, spec.get("usages") or [])
    if problem:
        return problem
    cn = csrlib.common_name(req)
    if spec.get("username") != cn or csrlib.NODES_GROUP not in (spec.get("groups") or []):
        return f"requested by {spec.get('username')!r}, not by the node {cn!r} itself"
    name = cn[len(csrlib.NODE_USER_PREFIX):]
    if node is None:
        raise NotYet(f"node {name!r} does not exist")
    known = {name} | {a.get("address") for a in (node.get("status") or {}).get("addresses") or []}
    sans = csrlib.requested_sans(req)
    ips = {str(ipaddress.ip_address(ip)) for ip in sans["ip"]}
    unknown = sorted((set(sans["dns"]) | ips) - known)
    if unknown:
        raise NotYet(f"names {unknown} are not the node's name or addresses")
    return None


@register
class KubeletServingApprover(Controller):
    name = "kubelet-serving-approver"
    service_account = "kubelet-serving-approver"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.csrs = self.watch(CSR_API, "certificatesigningrequests")
        self.api = self.client.resource(CSR_API, "certificatesigningrequests")
        self.nodes = self.client.resource("v1", "nodes")

    async def sync(self, key: str) -> None:
        csr = self.csrs.store.get(key)
        if csr is None or (csr.get("spec") or {}).get("signerName") != csrlib.KUBELET_SERVING:
            return
        if csrlib.issued_certificate(csr) or any(csrlib.approval_state(csr)):
            return
        try:
            req = csrlib.request_of(csr)
        except ValueError as e:
            self.log.info("not approving csr %s: unparsable request (%s)", key, e)
            return
        cn = csrlib.common_name(req)
        node = None
        if cn.startswith(csrlib.NODE_USER_PREFIX):
            try:
                node = await self.nodes.get(cn[len(csrlib.NODE_USER_PREFIX):])
            except Exception as e:
                if not is_not_found(e):
                    raise
        try:
            why = refusal(csr, req, node)
        except NotYet as e:
            raise NotYet(f"kubelet serving csr {key}: {e}") from None
        if why:
            self.log.info("not approving kubelet serving csr %s: %s", key, why)
            return
        if await approve(self.api, key, csr, MESSAGE):
            self.log.info("approved kubelet serving csr %s", key)
