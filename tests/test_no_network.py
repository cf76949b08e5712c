"""The conftest's guard: a test that tries to reach the network is refused and named."""

from __future__ import annotations

import os
import socket

import pytest


def test_a_remote_name_or_address_is_refused_and_recorded(_no_network: list[str]) -> None:
    with pytest.raises(socket.gaierror, match="tests never reach the network"):
        socket.getaddrinfo("api.binance.com", 443)
    with socket.socket() as s, pytest.raises(OSError, match="tests never reach the network"):
        s.connect(("192.0.2.1", 443))  # TEST-NET-1: never routed
    assert _no_network == ["resolve api.binance.com", "connect 192.0.2.1:443"]
    _no_network.clear()  # this test meant it: do not fail it at teardown


def test_loopback_stays_open_and_offline_is_set() -> None:
    assert socket.getaddrinfo("localhost", 80)
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        with socket.create_connection(server.getsockname(), timeout=5):
            pass
    assert os.environ["REBALANCER_OFFLINE"] == "1"  # "auto" paper prices: no attempt
