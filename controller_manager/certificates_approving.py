"""The CSR approving controller: approve kubelets' client certificate requests when the requestor
may (upstream pkg/controller/certificates/approver, "csrapproving", its sarApprover).

A pending kubernetes.io/kube-apiserver-client-kubelet request whose CSR is a kubelet client
certificate (O=system:nodes, CN=system:node:<name>, no SANs, client usages) is approved if a
SubjectAccessReview for its requestor (spec.username/uid/groups/extra) allows `create` on
`certificatesigningrequests/selfnodeclient` (a node renewing its own certificate: CN = requestor)
or `certificatesigningrequests/nodeclient` (bootstrap tokens, granted by the
system:certificates.k8s.io:certificatesigningrequests:nodeclient ClusterRole). A recognized request
that no review allows is retried with backoff, as upstream's ignorable errors are; other requests
are left alone.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from certs import csr as csrlib
from client import is_not_found
from controller_manager.base import Controller, ControllerContext, register

Obj = dict[str, Any]
CSR_API = "certificates.k8s.io/v1"


def is_node_client_cert(csr: Obj, req: Any) -> bool:
    spec = csr.get("spec") or {}
    if spec.get("signerName") != csrlib.KUBE_APISERVER_CLIENT_KUBELET:
        return False
    return csrlib.validate_kubelet_client_csr(req, spec.get("usages") or []) is None


def is_self_node_client_cert(csr: Obj, req: Any) -> bool:
    if (csr.get("spec") or {}).get("username") != csrlib.common_name(req):
        return False
    return is_node_client_cert(csr, req)


#: (recognizer, subresource of the permission, approval message), tried in this order
RECOGNIZERS: list[tuple[Callable[[Obj, Any], bool], str, str]] = [
    (is_self_node_client_cert, "selfnodeclient",
     "Auto approving self kubelet client certificate after SubjectAccessReview."),
    (is_node_client_cert, "nodeclient", "Auto approving kubelet client certificate after SubjectAccessReview."),
]


async def approve(api: Any, key: str, csr: Obj, message: str) -> bool:
    """Add the Approved condition (reason AutoApproved) through `/approval`; False if the CSR is gone."""
    new = copy.deepcopy(csr)
    new.setdefault("status", {}).setdefault("conditions", []).append(
        {"type": csrlib.APPROVED, "status": "True", "reason": "AutoApproved", "message": message})
    try:
        await api.update_subresource(key, "approval", new)
    except Exception as e:
        if is_not_found(e):
            return False
        raise RuntimeError(f"error updating approval for csr: {e}") from e
    return True


class NotApproved(Exception):
    """A recognized request whose requestor is not (yet) allowed: retried with backoff."""


@register
class CSRApprovingController(Controller):
    name = "csrapproving-controller"
    aliases = ("csrapproving",)
    service_account = "certificate-controller"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.csrs = self.watch(CSR_API, "certificatesigningrequests")
        self.api = self.client.resource(CSR_API, "certificatesigningrequests")
        self.sars = self.client.resource("authorization.k8s.io/v1", "subjectaccessreviews")

    async def authorize(self, csr: Obj, subresource: str) -> bool:
        spec = csr.get("spec") or {}
        review = {
            "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
            "spec": {
                "user": spec.get("username") or "", "uid": spec.get("uid") or "",
                "groups": spec.get("groups") or [], "extra": spec.get("extra") or {},
                "resourceAttributes": {"group": "certificates.k8s.io", "version": "*", "verb": "create",
                                       "resource": "certificatesigningrequests", "subresource": subresource},
            },
        }
        out = await self.sars.create(review)
        return bool((out.get("status") or {}).get("allowed"))

    async def sync(self, key: str) -> None:
        csr = self.csrs.store.get(key)
        if csr is None or csrlib.issued_certificate(csr):
            return
        approved, denied = csrlib.approval_state(csr)
        if approved or denied:
            return
        try:
            req = csrlib.request_of(csr)
        except ValueError as e:
            raise RuntimeError(f'unable to parse csr "{key}": {e}') from None
        tried = []
        for recognize, subresource, message in RECOGNIZERS:
            if not recognize(csr, req):
                continue
            tried.append(subresource)
            if not await self.authorize(csr, subresource):
                continue
            if await approve(self.api, key, csr, message):
                self.log.info("approved csr %s (%s)", key, subresource)
            return
        if tried:
            raise NotApproved(f'recognized csr "{key}" as [{" ".join(tried)}] but subject access review was not approved')
