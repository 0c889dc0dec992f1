"""Where the apiserver finds etcd: a root-only unix socket when both share a host, TLS otherwise."""

from __future__ import annotations

import pytest

from apiserver.storage import EtcdStore
from minictl.components import ETCD_SOCKET_NAME, ClusterConfig, apiserver_command, etcd_command


def _flag(cmd: list[str], name: str) -> str:
    return cmd[cmd.index(name) + 1]


def test_colocated_apiserver_uses_etcd_socket(tmp_path) -> None:
    cfg = ClusterConfig(str(tmp_path), etcd_client_port=2379)
    etcd = etcd_command(cfg)
    # etcd's unix listener wants host:port and creates the socket in its working directory
    assert etcd[:3] == ["env", "-C", str(tmp_path / "etcd-socket")]
    assert _flag(etcd, "--listen-client-urls") == f"https://127.0.0.1:2379,unix://{ETCD_SOCKET_NAME}"
    assert _flag(etcd, "--advertise-client-urls") == "https://127.0.0.1:2379"
    assert (tmp_path / "etcd-socket").stat().st_mode & 0o777 == 0o700
    assert _flag(apiserver_command(cfg), "--etcd-servers") == f"unix://{tmp_path}/etcd-socket/{ETCD_SOCKET_NAME}"


def test_remote_etcd_keeps_tls(tmp_path) -> None:
    cfg = ClusterConfig(str(tmp_path), etcd_host="etcd", etcd_client_port=2379)  # compose: its own container
    etcd = etcd_command(cfg)
    assert etcd[0] != "env"
    assert _flag(etcd, "--listen-client-urls") == "https://etcd:2379"
    assert _flag(apiserver_command(cfg), "--etcd-servers") == "https://etcd:2379"
    assert not (tmp_path / "etcd-socket").exists()


def test_too_deep_data_dir_falls_back_to_tls(tmp_path) -> None:
    deep = tmp_path / ("d" * 100)
    cfg = ClusterConfig(str(deep), etcd_client_port=2379)
    assert cfg.etcd_socket is None
    assert _flag(apiserver_command(cfg), "--etcd-servers") == "https://127.0.0.1:2379"
    assert "unix://" not in _flag(etcd_command(cfg), "--listen-client-urls")


@pytest.mark.parametrize(("endpoint", "target"), [
    ("unix:///run/x/etcd.sock:0", "unix:/run/x/etcd.sock:0"),
    ("http://127.0.0.1:2379", "127.0.0.1:2379"),
    ("127.0.0.1:2379", "127.0.0.1:2379"),
])
def test_store_channel_target(endpoint: str, target: str, monkeypatch) -> None:
    from unittest import mock

    import grpc.aio

    seen: list[str] = []
    monkeypatch.setattr(grpc.aio, "insecure_channel", lambda t, options=None: seen.append(t) or mock.MagicMock())
    EtcdStore(endpoint).connect()
    assert seen == [target]


def test_free_port_is_below_the_ephemeral_range_and_skips_a_taken_port(monkeypatch) -> None:
    import socket

    from minictl import components

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        port = components.free_port()
        assert components.PORT_BAND_FLOOR <= port < 30000 and port != busy
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))  # nobody has it
        # a candidate someone listens on is passed over
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            free = probe.getsockname()[1]
        candidates = iter([busy, free])
        monkeypatch.setattr(components.random, "randrange", lambda a, b: next(candidates))
        assert components.free_port() == free
    # an ephemeral range that leaves no band below it: the kernel's choice
    monkeypatch.setattr(components, "_ephemeral_port_range", lambda: (1024, 65535))
    assert components.free_port() >= 1024

