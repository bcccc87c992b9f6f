"""tcp tunnels: `porthole tcp`, with ports from portholed's --tcp-ports range."""

import re
import socket
from urllib.parse import urlsplit

import pytest

from backends import echo_through
from harness import deterministic_bytes, os_port_range

ONE_MIB = 1024 * 1024


@pytest.fixture
def tcp_range():
    low = os_port_range(2)
    return low, low + 1


@pytest.fixture
def tcp_server(start_portholed, tcp_range):
    low, high = tcp_range
    return start_portholed("--tcp-bind-addr", "127.0.0.1", "--tcp-ports", f"{low}-{high}")


def tcp_port_of(url: str) -> int:
    parts = urlsplit(url)
    assert parts.scheme == "tcp" and parts.hostname == "localhost", url
    return parts.port


def test_tcp_tunnel_on_server_chosen_port_echoes_1mib(tcp_server, tcp_range, tcp_echo,
                                                      start_porthole):
    client = start_porthole("tcp", f"127.0.0.1:{tcp_echo.port}", server=tcp_server)
    port = tcp_port_of(client.url("tcp"))
    assert tcp_range[0] <= port <= tcp_range[1]
    data = deterministic_bytes(ONE_MIB, seed=3)
    assert echo_through(port, data) == data


def test_tcp_tunnel_on_requested_remote_port_echoes_1mib(tcp_server, tcp_range, tcp_echo,
                                                         start_porthole):
    wanted = tcp_range[1]
    client = start_porthole("tcp", f"127.0.0.1:{tcp_echo.port}", "--remote-port", str(wanted),
                            server=tcp_server)
    assert client.urls == [f"tcp://localhost:{wanted}"]
    data = deterministic_bytes(ONE_MIB, seed=4)
    assert echo_through(wanted, data) == data


def test_tcp_tunnel_up_line_names_local_address(tcp_server, tcp_echo, start_porthole):
    client = start_porthole("tcp", str(tcp_echo.port), server=tcp_server)
    assert client.locals == [f"localhost:{tcp_echo.port}"]


def test_remote_port_in_use_is_refused_with_clear_message(tcp_server, tcp_range, tcp_echo,
                                                          start_porthole):
    taken = tcp_range[0]
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", taken))
        holder.listen()
        client = start_porthole("tcp", f"127.0.0.1:{tcp_echo.port}", "--remote-port", str(taken),
                                server=tcp_server, wait_up=False)
        rc = client.proc.wait_exit()
    assert rc != 0
    err = client.proc.text("stderr")
    # A clear message: it names the port, or says it is in use.
    assert re.search(rf"\b{taken}\b|in use|not available|unavailable", err, re.I), \
        f"stderr says neither port {taken} nor 'in use':\n{err}"
    assert "tunnel up:" not in client.proc.text()
