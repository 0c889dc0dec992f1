"""The apiserver's identity Lease in kube-system, as kube-apiserver keeps it (APIServerIdentity)."""

from __future__ import annotations

import socket

from apiserver.identity import apiserver_id
from tests.conftest import private_control_plane, wait_for

LEASES = "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases"
SELECTOR = {"labelSelector": "apiserver.kubernetes.io/identity=kube-apiserver"}


def test_the_apiserver_keeps_an_identity_lease_and_drops_it_when_it_stops() -> None:
    name = apiserver_id(socket.gethostname())
    with private_control_plane("mk8s-identity-", controller_manager=False) as cp, cp.client() as api:
        items = wait_for(lambda: api.get(LEASES, params=SELECTOR).json()["items"], 20, 0.1, "the identity lease")
        assert [i["metadata"]["name"] for i in items] == [name]
        lease = items[0]
        assert lease["metadata"]["labels"] == {"apiserver.kubernetes.io/identity": "kube-apiserver",
                                               "kubernetes.io/hostname": socket.gethostname()}
        holder = lease["spec"]["holderIdentity"]
        assert holder.startswith(f"{name}_") and lease["spec"]["leaseDurationSeconds"] == 3600
        # renewed every 10 s
        first = lease["spec"]["renewTime"]
        wait_for(lambda: api.get(f"{LEASES}/{name}").json()["spec"]["renewTime"] != first, 20, 0.5, "a renewal")
        # kubectl lists it as upstream's does
        out = cp.kubectl("get", "leases", "-n", "kube-system", "-l", SELECTOR["labelSelector"]).stdout
        assert name in out and holder in out

        # a graceful stop deletes it; the next start has a new holder
        cp.stop("apiserver")
        assert cp.etcdctl("get", f"/registry/leases/kube-system/{name}", "--keys-only").strip() == ""
        cp.start_apiserver()
        cp.wait_ready()
        again = wait_for(lambda: api.get(f"{LEASES}/{name}").json() if api.get(f"{LEASES}/{name}").status_code == 200
                         else None, 20, 0.1, "the new identity lease")
        assert again["spec"]["holderIdentity"].startswith(f"{name}_") and again["spec"]["holderIdentity"] != holder
