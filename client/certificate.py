"""Client certificates through the certificates.k8s.io/v1 CertificateSigningRequest API.

What client-go's util/certificate (+ its csr package) does for the kubelet, in asyncio:

- build a PEM CSR for a fresh ECDSA P-256 key (`make_csr`) and request it (`request_certificate`:
  create, or reuse a compatible CSR of the same name after a restart);
- wait for the signed certificate (`wait_for_certificate`: list + watch the one object; Denied
  or Failed is an error that says so);
- keep certificate and key together in one PEM file under `<cert-dir>`, `<pair>-<time>.pem`,
  with the symlink `<pair>-current.pem` swapped atomically (`CertificateStore`);
- renew when 70–90 % of the lifetime has passed (`rotation_deadline`, jittered as upstream), and
  at once a pair that came from outside the store (the kubeconfig's own, upstream's forceRotation),
  and hand the new pair to whoever holds the connection (`CertificateManager`).
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import logging
import os
import random
import secrets
from collections.abc import Awaitable, Callable, Sequence
from contextlib import aclosing
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from certs.csr import (
    KUBE_APISERVER_CLIENT_KUBELET,
    KUBELET_SERVING,
    NODE_USER_PREFIX,
    NODES_GROUP,
    PrivateKey,
    make_csr,
    new_private_key,
    private_key_pem,
    same_key,
)
from client.errors import APIConnectionError, ApiError, is_already_exists, is_gone

log = logging.getLogger("client.certificate")

CERTIFICATES_API = "certificates.k8s.io/v1"
KUBELET_CLIENT_SIGNER = KUBE_APISERVER_CLIENT_KUBELET


class CertificateRequestError(RuntimeError):
    """The CSR was denied, failed, vanished, or no certificate came in time."""


# --- keys and requests --------------------------------------------------------------------------------


def load_private_key(pem: bytes) -> PrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey)):
        raise ValueError(f"unsupported private key type {type(key).__name__}")
    return key


def node_subject(node_name: str) -> tuple[str, tuple[str, ...]]:
    """(CN, O) of a node's client certificate: system:node:<name> in system:nodes."""
    return NODE_USER_PREFIX + node_name, (NODES_GROUP,)


def _key_usages(key: PrivateKey) -> list[str]:
    """Upstream's kubelet certificate managers: key encipherment only for RSA keys."""
    return ["digital signature", "key encipherment"] if isinstance(key, rsa.RSAPrivateKey) else ["digital signature"]


def kubelet_client_usages(key: PrivateKey) -> list[str]:
    return [*_key_usages(key), "client auth"]


def kubelet_serving_usages(key: PrivateKey) -> list[str]:
    return [*_key_usages(key), "server auth"]


def digested_name(public_key: Any, common_name: str, organizations: Sequence[str], usages: Sequence[str],
                  prefix: str = "node-csr-") -> str:
    """The bootstrap CSR's deterministic name: the same key and subject give the same name, so a
    kubelet restarted while waiting finds its own request again (upstream's digestedName)."""
    h = hashlib.new("sha512_256")

    def write(data: bytes) -> None:
        h.update(base64.urlsafe_b64encode(data).rstrip(b"="))
        h.update(b"|")  # not in the base64url alphabet: no two inputs share a stream

    write(public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo))
    write(common_name.encode())
    for o in organizations:
        write(o.encode())
    for u in usages:
        write(u.encode())
    return prefix + base64.urlsafe_b64encode(h.digest()).rstrip(b"=").decode("ascii")


def csr_object(request_pem: bytes, signer_name: str, usages: Sequence[str], *, name: str | None = None,
               generate_name: str = "csr-", expiration_seconds: int | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name} if name else {"generateName": generate_name}
    spec: dict[str, Any] = {
        "request": base64.b64encode(request_pem).decode("ascii"),
        "signerName": signer_name,
        "usages": list(usages),
    }
    if expiration_seconds is not None:
        spec["expirationSeconds"] = expiration_seconds
    return {"apiVersion": CERTIFICATES_API, "kind": "CertificateSigningRequest", "metadata": meta, "spec": spec}


def _compatible(existing: dict[str, Any], want: dict[str, Any], key: PrivateKey) -> str:
    """Why an existing CSR of our name cannot be reused ("" if it can): upstream's ensureCompatible."""
    spec, wspec = existing.get("spec") or {}, want["spec"]
    if spec.get("signerName") != wspec["signerName"]:
        return f"its signer is {spec.get('signerName')!r}"
    if sorted(spec.get("usages") or []) != sorted(wspec["usages"]):
        return f"its usages are {spec.get('usages')}"
    try:
        theirs = x509.load_pem_x509_csr(base64.b64decode(spec.get("request") or ""))
        ours = x509.load_pem_x509_csr(base64.b64decode(wspec["request"]))
    except ValueError as e:
        return f"its request cannot be parsed: {e}"
    if theirs.subject != ours.subject:
        return f"its subject is {theirs.subject.rfc4514_string()}"
    if not same_key(theirs, key):
        return "it is for another key"
    return ""


async def request_certificate(api: Any, request_pem: bytes, key: PrivateKey, signer_name: str,
                              usages: Sequence[str], *, name: str | None = None,
                              expiration_seconds: int | None = None) -> tuple[str, str]:
    """Create the CSR (or find our earlier one of the same name) → (name, uid)."""
    csrs = api.resource(CERTIFICATES_API, "certificatesigningrequests")
    want = csr_object(request_pem, signer_name, usages, name=name, expiration_seconds=expiration_seconds)
    try:
        created = await csrs.create(want)
    except ApiError as e:
        if not (name and is_already_exists(e)):
            raise
        existing = await csrs.get(name)
        why = _compatible(existing, want, key)
        if why:
            raise CertificateRequestError(f"certificate signing request {name} exists and cannot be reused: {why}") from e
        log.info("reusing the certificate signing request %s", name)
        return name, existing["metadata"]["uid"]
    return created["metadata"]["name"], created["metadata"]["uid"]


def _condition(csr: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for c in (csr.get("status") or {}).get("conditions") or []:
        if c.get("type") == kind and c.get("status", "True") == "True":
            return c
    return None


def issued_certificate(csr: dict[str, Any], uid: str) -> bytes | None:
    """The certificate PEM once the CSR is approved and signed; None while pending; raises when
    it was denied, failed or replaced by another object of the same name."""
    name = (csr.get("metadata") or {}).get("name", "")
    if uid and (csr.get("metadata") or {}).get("uid") != uid:
        raise CertificateRequestError(f"certificate signing request {name} was deleted and created again")
    for kind, verb in (("Denied", "denied"), ("Failed", "failed")):
        c = _condition(csr, kind)
        if c is not None:
            raise CertificateRequestError(
                f"certificate signing request {name} was {verb}: reason {c.get('reason') or '<none>'}, "
                f"message {c.get('message') or '<none>'}")
    cert = (csr.get("status") or {}).get("certificate")
    if _condition(csr, "Approved") is not None and cert:
        try:
            return base64.b64decode(cert, validate=True)
        except ValueError as e:
            raise CertificateRequestError(f"certificate signing request {name}: status.certificate is not base64") from e
    return None


async def wait_for_certificate(api: Any, name: str, uid: str, timeout: float = 3600.0) -> bytes:
    """Watch the CSR until it carries a certificate (list first, then watch from there; a broken
    or expired watch is reopened)."""
    csrs = api.resource(CERTIFICATES_API, "certificatesigningrequests")

    async def watch() -> bytes:
        delay = 0.2
        while True:
            try:
                page = await csrs.list(field_selector=f"metadata.name={name}")
                items = page.get("items") or []
                if not items:
                    raise CertificateRequestError(f"certificate signing request {name} was deleted")
                pem = issued_certificate(items[0], uid)
                if pem is not None:
                    return pem
                rv = (page.get("metadata") or {}).get("resourceVersion")
                async with aclosing(csrs.watch(resource_version=rv, name=name, timeout_seconds=300)) as events:
                    async for ev in events:
                        if ev["type"] == "DELETED":
                            raise CertificateRequestError(f"certificate signing request {name} was deleted")
                        if ev["type"] in ("ADDED", "MODIFIED"):
                            pem = issued_certificate(ev["object"], uid)
                            if pem is not None:
                                return pem
                delay = 0.2
            except APIConnectionError as e:
                log.warning("waiting for certificate signing request %s: %s", name, e)
            except ApiError as e:
                if not is_gone(e):
                    raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    try:
        return await asyncio.wait_for(watch(), timeout)
    except TimeoutError:
        raise CertificateRequestError(
            f"no certificate for certificate signing request {name} after {timeout:.0f}s: is it approved "
            f"(kubectl get csr {name}) and does the controller-manager sign it?") from None


# --- the certificate store ----------------------------------------------------------------------------


def split_pem(data: bytes) -> tuple[bytes, bytes]:
    """(certificate chain PEM, private key PEM) of a combined PEM file."""
    certs: list[bytes] = []
    key = b""
    block: list[bytes] = []
    kind = ""
    for line in data.splitlines(keepends=True):
        if line.startswith(b"-----BEGIN "):
            kind = line.strip()[11:-5].decode(errors="replace")
            block = [line]
        elif line.startswith(b"-----END "):
            block.append(line)
            if kind == "CERTIFICATE":
                certs.append(b"".join(block))
            elif kind.endswith("PRIVATE KEY"):
                key = b"".join(block)
            block, kind = [], ""
        elif block:
            block.append(line)
    return b"".join(certs), key


class CertificateStore:
    """upstream's certificate.FileStore: `<dir>/<pair>-current.pem` → `<pair>-<time>.pem` (cert + key)."""

    def __init__(self, directory: Path | str, pair_name: str = "kubelet-client") -> None:
        self.dir = Path(directory)
        self.pair = pair_name

    @property
    def current_path(self) -> Path:
        return self.dir / f"{self.pair}-current.pem"

    def load(self) -> tuple[x509.Certificate, bytes, bytes] | None:
        """(certificate, cert PEM, key PEM) of the current pair, or None if missing or unreadable."""
        try:
            data = self.current_path.read_bytes()
        except OSError:
            return None
        cert_pem, key_pem = split_pem(data)
        if not cert_pem or not key_pem:
            return None
        try:
            cert = x509.load_pem_x509_certificate(cert_pem)
            key = load_private_key(key_pem)
        except ValueError:
            return None
        if not same_key(cert, key):
            return None
        return cert, cert_pem, key_pem

    def update(self, cert_pem: bytes, key_pem: bytes, now: dt.datetime | None = None) -> Path:
        """Write a new pair and point `<pair>-current.pem` at it (symlink swapped by rename).
        A certificate that is not for this key is refused (as tls.X509KeyPair would)."""
        cert = x509.load_pem_x509_certificate(cert_pem)  # refuse garbage before it becomes "current"
        if not same_key(cert, load_private_key(key_pem)):
            raise ValueError("the certificate is not for this private key")
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        stamp = (now or dt.datetime.now(dt.UTC)).strftime("%Y-%m-%d-%H-%M-%S")
        target = self.dir / f"{self.pair}-{stamp}.pem"
        if target.exists():
            target = self.dir / f"{self.pair}-{stamp}-{secrets.token_hex(3)}.pem"
        data = cert_pem.rstrip(b"\n") + b"\n" + key_pem
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        link_tmp = self.dir / f".{self.pair}-current.{secrets.token_hex(4)}"
        os.symlink(target.name, link_tmp)
        os.replace(link_tmp, self.current_path)
        return self.current_path


# --- rotation -----------------------------------------------------------------------------------------


def rotation_deadline(cert: x509.Certificate, rand: Callable[[], float] = random.random) -> dt.datetime:
    """When to renew: after 70–90 % of the certificate's lifetime (upstream's jitteryDuration:
    Jitter(total, 0.2) − 0.3·total)."""
    not_before, not_after = cert.not_valid_before_utc, cert.not_valid_after_utc
    total = (not_after - not_before).total_seconds()
    return not_before + dt.timedelta(seconds=total * (0.7 + 0.2 * rand()))


RotatedCallback = Callable[[bytes, bytes], Awaitable[None]]


class CertificateManager:
    """Keeps a certificate fresh: at the rotation deadline a new key and CSR (authenticated with
    the API client's credentials), the signed pair into the store, then `on_rotated(cert, key)`.

    Client certificates by default; the kubelet's serving certificate with its signer, usages and
    SANs (`request_at_once`: an empty store means requesting one now, as upstream's server TLS
    bootstrap)."""

    def __init__(self, api: Any, store: CertificateStore, common_name: str, organizations: Sequence[str], *,
                 signer_name: str = KUBELET_CLIENT_SIGNER,
                 usages: Callable[[PrivateKey], list[str]] = kubelet_client_usages,
                 on_rotated: RotatedCallback | None = None, initial: tuple[bytes, bytes] | None = None,
                 wait_timeout: float = 900.0, clock: Callable[[], dt.datetime] | None = None,
                 rand: Callable[[], float] = random.random, dns_names: Sequence[str] = (),
                 ip_addresses: Sequence[str] = (), request_at_once: bool = False) -> None:
        self.api = api
        self.store = store
        self.common_name = common_name
        self.organizations = tuple(organizations)
        self.signer_name = signer_name
        self.usages = usages
        self.on_rotated = on_rotated
        self.wait_timeout = wait_timeout
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self.rand = rand
        self.dns_names, self.ip_addresses = tuple(dns_names), tuple(ip_addresses)
        self.kind = "serving" if signer_name == KUBELET_SERVING else "client"  # for the log
        self.cert: x509.Certificate | None = None
        self.rotations = 0
        self.failures = 0
        # upstream's getCurrentCertificateOrBootstrap: the store's pair while it is valid, else the
        # one given some other way (the kubeconfig's own), which is rotated into the store
        loaded = store.load()
        if loaded is not None and (initial is None or loaded[0].not_valid_after_utc > self.clock()):
            self.cert, self.cert_pem, self.key_pem = loaded
            self.deadline = rotation_deadline(self.cert, self.rand)
        elif initial is not None:
            self.cert_pem, self.key_pem = initial
            self.cert = x509.load_pem_x509_certificate(initial[0])
            # upstream's forceRotation: a pair from outside the store is replaced at once by one
            # the store holds (and rotates from then on)
            self.deadline = self.clock()
        elif request_at_once:
            self.cert_pem, self.key_pem = b"", b""
            self.deadline = self.clock()
        else:
            raise ValueError(f"no client certificate in {store.current_path} to rotate")

    def seconds_until_rotation(self) -> float:
        return max(0.0, (self.deadline - self.clock()).total_seconds())

    async def rotate(self) -> None:
        """One renewal: new key, CSR, wait, store, hand over."""
        key = new_private_key()
        request = make_csr(key, self.common_name, self.organizations, self.dns_names, self.ip_addresses)
        name, uid = await request_certificate(self.api, request, key, self.signer_name, self.usages(key))
        log.info("certificate signing request %s created for rotation of %s", name, self.common_name)
        cert_pem = await wait_for_certificate(self.api, name, uid, self.wait_timeout)
        key_pem = private_key_pem(key)
        self.store.update(cert_pem, key_pem)
        self.cert_pem, self.key_pem = cert_pem, key_pem
        self.cert = x509.load_pem_x509_certificate(cert_pem)
        self.deadline = rotation_deadline(self.cert, self.rand)
        self.rotations += 1
        log.info("%s certificate rotated: valid until %s, next rotation after %s", self.kind,
                 self.cert.not_valid_after_utc.isoformat(), self.deadline.isoformat())
        if self.on_rotated is not None:
            await self.on_rotated(cert_pem, key_pem)

    async def run(self, stop: asyncio.Event) -> None:
        if self.cert is not None:
            log.info("%s certificate valid until %s; rotation after %s", self.kind,
                     self.cert.not_valid_after_utc.isoformat(), self.deadline.isoformat())
        else:
            log.info("no %s certificate yet: requesting one", self.kind)
        backoff = 2.0
        while not stop.is_set():
            wait = self.seconds_until_rotation()
            if wait > 0:
                # re-check at least hourly: the wall clock may jump
                try:
                    await asyncio.wait_for(stop.wait(), min(wait, 3600.0))
                except TimeoutError:
                    pass
                continue
            try:
                await self.rotate()
                backoff = 2.0
            except asyncio.CancelledError:
                raise
            except Exception as e:
                self.failures += 1
                log.error("rotating the %s certificate failed (retry in %.0fs): %s", self.kind, backoff, e)
                try:
                    await asyncio.wait_for(stop.wait(), backoff)
                except TimeoutError:
                    pass
                backoff = min(backoff * 2, 300.0)
