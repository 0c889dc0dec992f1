"""The ServiceAccount controller and the root CA publisher over a fake API."""

from __future__ import annotations

import ssl

from certs import ensure_pki
from controller_manager.root_ca_publisher import (
    CONFIGMAP_NAME,
    DESCRIPTION,
    DESCRIPTION_ANNOTATION,
    RootCACertPublisher,
    ca_from_ssl_context,
)
from controller_manager.serviceaccount import ServiceAccountsController
from tests.unit.cm_fakes import FakeAPI, make_context, run_queue

CA = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def namespace(name: str, phase: str = "Active") -> dict:
    return {"metadata": {"name": name}, "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": phase}}


async def test_default_service_account_in_every_active_namespace() -> None:
    api = FakeAPI()
    c = ServiceAccountsController(make_context(api))
    api.seed("v1", "namespaces", namespace("a"))
    api.seed("v1", "namespaces", namespace("gone", "Terminating"))
    await run_queue(c)
    assert api.get_obj("v1", "serviceaccounts", "a", "default") is not None
    assert api.get_obj("v1", "serviceaccounts", "gone", "default") is None
    # deleted: re-created
    sa = api.get_obj("v1", "serviceaccounts", "a", "default")
    api.table("v1", "serviceaccounts").pop(("a", "default"))
    api.informers[("", "serviceaccounts")][0].delete(sa)
    await run_queue(c)
    assert api.get_obj("v1", "serviceaccounts", "a", "default") is not None
    creates = api.writes("create", "serviceaccounts")
    assert len(creates) == 2
    # an existing account is not touched again
    c.queue.add("a")
    await run_queue(c)
    assert len(api.writes("create", "serviceaccounts")) == 2


async def test_a_terminating_namespace_refusal_is_not_an_error() -> None:
    api = FakeAPI()
    c = ServiceAccountsController(make_context(api))
    api.seed("v1", "namespaces", namespace("a"))
    # the informer still says Active, the apiserver already refuses new content
    ns = api.get_obj("v1", "namespaces", None, "a")
    ns["metadata"]["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    await c.sync("a")
    assert api.get_obj("v1", "serviceaccounts", "a", "default") is None


async def test_root_ca_published_and_repaired(tmp_path) -> None:
    ca_file = tmp_path / "ca.crt"
    ca_file.write_text(CA)
    api = FakeAPI()
    c = RootCACertPublisher(make_context(api, root_ca_file=str(ca_file)))
    api.seed("v1", "namespaces", namespace("a"))
    await run_queue(c)
    cm = api.get_obj("v1", "configmaps", "a", CONFIGMAP_NAME)
    assert cm["data"] == {"ca.crt": CA}
    assert cm["metadata"]["annotations"] == {DESCRIPTION_ANNOTATION: DESCRIPTION}
    # someone edits it: the data is put back exactly (extra keys removed)
    api.seed("v1", "configmaps", {**cm, "data": {"ca.crt": "junk", "extra": "x"}})
    await run_queue(c)
    assert api.get_obj("v1", "configmaps", "a", CONFIGMAP_NAME)["data"] == {"ca.crt": CA}
    # someone deletes it: re-created
    cm = api.get_obj("v1", "configmaps", "a", CONFIGMAP_NAME)
    api.table("v1", "configmaps").pop(("a", CONFIGMAP_NAME))
    api.informers[("", "configmaps")][0].delete(cm)
    await run_queue(c)
    assert api.get_obj("v1", "configmaps", "a", CONFIGMAP_NAME)["data"] == {"ca.crt": CA}
    # other configmaps' changes do not concern it
    writes = len(api.writes())
    api.seed("v1", "configmaps", {"metadata": {"name": "mine", "namespace": "a"}, "data": {"k": "v"}})
    await run_queue(c)
    assert len(api.writes()) == writes


def test_ca_from_the_client_tls_context(tmp_path) -> None:
    pki = ensure_pki(tmp_path / "pki")
    ctx = ssl.create_default_context(cafile=str(pki.ca_cert))
    pem = ca_from_ssl_context(ctx)
    assert pem.startswith("-----BEGIN CERTIFICATE-----")
    assert ssl.PEM_cert_to_DER_cert(pem) == ssl.PEM_cert_to_DER_cert(pki.ca_cert.read_text())
    assert ca_from_ssl_context(None) == ""
