"""Admission for certificates.k8s.io CertificateSigningRequests (upstream plugin/pkg/admission/certificates).

* CertificateApproval: writing /approval needs the `approve` verb on `signers` named by the
  request's signerName (or `<domain>/*`), in group certificates.k8s.io;
* CertificateSigning: changing status.certificate through /status needs `sign` on the signer;
* CertificateSubjectRestriction: a kubernetes.io/kube-apiserver-client request may not ask for
  the system:masters group.

The signer name is read from the stored object, so a write cannot pick the signer it is checked
against. Authorization asks the server's own authorizer chain, as for any request.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from apiserver.admission import CREATE, UPDATE, Attributes, Plugin
from apiserver.authz import ALLOW, AuthzAttributes
from certs import csr as csrlib

if TYPE_CHECKING:
    from apiserver.authn import UserInfo
    from apiserver.server import APIServer

GROUP = "certificates.k8s.io"


def _is_csr(a: Attributes) -> bool:
    return a.resource.group == GROUP and a.resource.plural == "certificatesigningrequests"


def _signer(obj: dict[str, Any] | None) -> str:
    spec = (obj or {}).get("spec")
    signer = spec.get("signerName") if isinstance(spec, dict) else None
    return signer if isinstance(signer, str) else ""


async def authorized_for_signer(server: APIServer, user: UserInfo, verb: str, signer: str) -> bool:
    """upstream IsAuthorizedForSignerName: `verb` on signers/<signerName>, else on signers/<domain>/*."""
    for name in (signer, signer.split("/", 1)[0] + "/*"):
        attrs = AuthzAttributes(user, verb, True, GROUP, "*", "", "signers", "", name)
        decision, _ = await server.authz.decide(attrs)
        if decision == ALLOW:
            return True
    return False


class CertificateApproval(Plugin):
    name = "CertificateApproval"

    def __init__(self, server: APIServer) -> None:
        self.server = server

    async def validate(self, a: Attributes) -> None:
        if a.subresource != "approval" or not _is_csr(a) or a.operation != UPDATE:
            return
        signer = _signer(a.old)
        if not await authorized_for_signer(self.server, a.user, "approve", signer):
            raise self.forbidden(a, f'user not permitted to approve requests with signerName "{signer}"')


class CertificateSigning(Plugin):
    name = "CertificateSigning"

    def __init__(self, server: APIServer) -> None:
        self.server = server

    async def validate(self, a: Attributes) -> None:
        if a.subresource != "status" or not _is_csr(a) or a.operation != UPDATE:
            return
        old_cert = ((a.old or {}).get("status") or {}).get("certificate") or ""
        new_cert = ((a.obj or {}).get("status") or {}).get("certificate") or ""
        if old_cert == new_cert:
            return
        signer = _signer(a.old)
        if not await authorized_for_signer(self.server, a.user, "sign", signer):
            raise self.forbidden(a, f'user not permitted to sign requests with signerName "{signer}"')


class CertificateSubjectRestriction(Plugin):
    name = "CertificateSubjectRestriction"

    async def validate(self, a: Attributes) -> None:
        if not _is_csr(a) or a.subresource or a.operation != CREATE:
            return
        if _signer(a.obj) != csrlib.KUBE_APISERVER_CLIENT:
            return
        try:
            req = csrlib.request_of(a.obj or {})
        except ValueError as e:
            raise self.forbidden(a, f"failed to parse CSR: {e}") from None
        if csrlib.MASTERS_GROUP in csrlib.organizations(req):
            raise self.forbidden(
                a, f"use of {csrlib.KUBE_APISERVER_CLIENT} signer with {csrlib.MASTERS_GROUP} group is not allowed")
