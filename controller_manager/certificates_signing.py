"""The CSR signing controller: issue certificates for approved CertificateSigningRequests of the
well-known signers with the cluster CA (upstream pkg/controller/certificates/signer, "csrsigning").

Signers and their CA (flags as upstream's): `--cluster-signing-cert-file/--cluster-signing-key-file`
serve all four; `--cluster-signing-{kubelet-serving,kubelet-client,kube-apiserver-client,
legacy-unknown}-{cert,key}-file` give one signer its own CA (not together with the former). Without
any, the controller runs idle, as upstream skips it. A CA file is re-read when it changes.

An approved request that is not failed and has no certificate yet is checked against its signer's
rules (certs.csr.signer_rule_error); a request breaking them gets a `Failed` condition
(SignerValidationFailure), otherwise the certificate is written through /status. Its lifetime is
`--cluster-signing-duration` (1 year), or spec.expirationSeconds when shorter (at least 10 minutes).
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import os
from typing import Any

from apimachinery.meta import now
from certs import csr as csrlib
from client import is_not_found
from controller_manager.base import Controller, ControllerContext, register

Obj = dict[str, Any]
CSR_API = "certificates.k8s.io/v1"

#: signer name → (option prefix of its own cert/key flags)
SIGNER_OPTIONS = {
    csrlib.KUBELET_SERVING: "cluster_signing_kubelet_serving",
    csrlib.KUBE_APISERVER_CLIENT_KUBELET: "cluster_signing_kubelet_client",
    csrlib.KUBE_APISERVER_CLIENT: "cluster_signing_kube_apiserver_client",
    csrlib.LEGACY_UNKNOWN: "cluster_signing_legacy_unknown",
}


class CAFiles:
    """A CA certificate and key on disk, loaded again whenever either file changes."""

    def __init__(self, cert_file: str, key_file: str) -> None:
        self.cert_file, self.key_file = cert_file, key_file
        self._stamp: tuple[float, float] | None = None
        self._ca: tuple[Any, Any] | None = None

    def current(self) -> tuple[Any, Any]:
        stamp = (os.stat(self.cert_file).st_mtime, os.stat(self.key_file).st_mtime)
        if self._ca is None or stamp != self._stamp:
            self._ca = csrlib.load_signer(self.cert_file, self.key_file)
            self._stamp = stamp
        return self._ca


def signers_from_options(options: Any) -> dict[str, CAFiles]:
    """The signers to serve and their CA files (ValueError for flags that contradict each other)."""
    common = (options.cluster_signing_cert_file, options.cluster_signing_key_file)
    own = {name: (getattr(options, f"{prefix}_cert_file"), getattr(options, f"{prefix}_key_file"))
           for name, prefix in SIGNER_OPTIONS.items()}
    for (cert, key), what in [(common, "--cluster-signing")] + [
            (v, "--" + SIGNER_OPTIONS[k].replace("_", "-")) for k, v in own.items()]:
        if bool(cert) != bool(key):
            raise ValueError(f"{what}-cert-file and {what}-key-file must be given together")
    if any(common) and any(any(v) for v in own.values()):
        raise ValueError("cannot specify --cluster-signing-{cert,key}-file and other "
                         "--cluster-signing-*-file flags at the same time")
    if any(common):
        return dict.fromkeys(SIGNER_OPTIONS, CAFiles(*common))  # one CA, loaded once for all four
    return {name: CAFiles(*files) for name, files in own.items() if all(files)}


@register
class CSRSigningController(Controller):
    name = "csrsigning-controller"
    aliases = ("csrsigning",)
    service_account = "certificate-controller"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.signers = signers_from_options(self.options)
        self.ttl = dt.timedelta(seconds=self.options.cluster_signing_duration)
        self.csrs = self.watch(CSR_API, "certificatesigningrequests")
        self.api = self.client.resource(CSR_API, "certificatesigningrequests")
        if not self.signers:
            self.log.info("skipping CSR signer controller because no csr cert/key was specified")

    async def sync(self, key: str) -> None:
        csr = self.csrs.store.get(key)
        if csr is None or not self.signers or csrlib.issued_certificate(csr):
            return
        if not csrlib.is_approved(csr) or csrlib.has_true_condition(csr, csrlib.FAILED):
            return
        spec = csr.get("spec") or {}
        ca_files = self.signers.get(spec.get("signerName") or "")
        if ca_files is None:
            return  # another signer's request
        try:
            req = csrlib.request_of(csr)
        except ValueError as e:
            raise RuntimeError(f'unable to parse csr "{key}": {e}') from None
        usages = [u for u in spec.get("usages") or [] if isinstance(u, str)]
        new = copy.deepcopy(csr)
        status = new.setdefault("status", {})
        problem = csrlib.signer_rule_error(spec["signerName"], req, usages)
        if problem is not None:
            status.setdefault("conditions", []).append({
                "type": csrlib.FAILED, "status": "True", "reason": "SignerValidationFailure",
                "message": problem, "lastUpdateTime": now(),
            })
            what = "failure condition"
        else:
            ca_cert, ca_key = ca_files.current()
            exp = spec.get("expirationSeconds")
            ttl = csrlib.duration_for(exp if isinstance(exp, int) else None, self.ttl)
            pem = csrlib.sign(req, usages, ca_cert, ca_key, ttl, self.clock.now())
            status["certificate"] = base64.b64encode(pem).decode()
            what = "signature"
        try:
            await self.api.update_status(new)
        except Exception as e:
            if is_not_found(e):
                return
            raise RuntimeError(f"error updating {what} for csr: {e}") from e
        self.log.info("%s csr %s (%s)", "failed" if problem else "signed", key, problem or spec["signerName"])
