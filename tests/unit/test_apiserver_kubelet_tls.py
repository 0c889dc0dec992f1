"""The apiserver's connection to kubelets: with --kubelet-certificate-authority the kubelet's
certificate must be signed by that CA and name the address dialled (upstream's TLS verification)."""

from __future__ import annotations

import asyncio
import ssl
from types import SimpleNamespace

import aiohttp
import pytest

from apiserver.podproxy import PodProxy
from certs import ensure_pki


async def _serve(context: ssl.SSLContext) -> tuple[asyncio.Server, int]:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        await writer.drain()
        writer.close()

    first = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=context)
    port = first.sockets[0].getsockname()[1]
    first.close()
    await first.wait_closed()
    # one port on two loopback addresses: the certificate names the first only
    server = await asyncio.start_server(answer, ["127.0.0.1", "127.0.0.2"], port, ssl=context)
    return server, port


def test_the_kubelet_certificate_must_name_the_address_dialled(tmp_path):
    pki = ensure_pki(tmp_path / "pki", node_names=["n1"])
    cert, key = pki.kubelet_serving("n1")  # names n1, 127.0.0.1 and the host's addresses; not 127.0.0.2
    serving = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    serving.load_cert_chain(cert, key)

    async def run() -> None:
        server, port = await _serve(serving)
        verified = PodProxy(SimpleNamespace(opts=SimpleNamespace(kubelet_certificate_authority=str(pki.ca_cert))))
        unverified = PodProxy(SimpleNamespace(opts=SimpleNamespace()))
        try:
            async with verified.session().get(f"https://127.0.0.1:{port}/") as r:
                assert (r.status, await r.text()) == (200, "ok")
            with pytest.raises(aiohttp.ClientConnectorCertificateError, match=r"127\.0\.0\.2"):
                async with verified.session().get(f"https://127.0.0.2:{port}/"):
                    pass
            # without a kubelet CA nothing is verified (upstream's default, kubeadm's setup)
            async with unverified.session().get(f"https://127.0.0.2:{port}/") as r:
                assert r.status == 200
        finally:
            await verified.close()
            await unverified.close()
            server.close()
            await server.wait_closed()

    asyncio.run(run())
