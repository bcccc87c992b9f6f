"""tcp tunnels: `porthole tcp`, with ports from portholed's --tcp-ports range."""

import re
import socket
import threading
import time
from urllib.parse import urlsplit

import pytest

from backends import TCPEchoBackend, echo_through
from harness import TRANSPORTS, deterministic_bytes, os_port

ONE_MIB = 1024 * 1024


def tcp_port_of(url: str) -> int:
    parts = urlsplit(url)
    assert parts.scheme == "tcp" and parts.hostname == "localhost", url
    return parts.port


@pytest.mark.parametrize("transport", TRANSPORTS, indirect=True)
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
    assert "Forwarding " not in client.proc.text()


def test_remote_port_outside_range_is_refused_naming_the_range(tcp_server, tcp_range, tcp_echo,
                                                               start_porthole):
    low, high = tcp_range
    outside = high + 1 if high < 65535 else low - 1
    client = start_porthole("tcp", f"127.0.0.1:{tcp_echo.port}", "--remote-port", str(outside),
                            server=tcp_server, wait_up=False)
    assert client.proc.wait_exit() != 0
    err = client.proc.text("stderr")
    assert f"{low}-{high}" in err, f"stderr does not name the range {low}-{high}:\n{err}"
    assert "Forwarding " not in client.proc.text()


def test_two_clients_get_distinct_ports_from_the_range(tcp_server, tcp_range, start_porthole):
    backends = [TCPEchoBackend(), TCPEchoBackend()]
    clients = [start_porthole("tcp", f"127.0.0.1:{b.port}", server=tcp_server) for b in backends]
    ports = [tcp_port_of(c.url("tcp")) for c in clients]
    assert ports[0] != ports[1], f"both clients got port {ports[0]}"
    assert all(tcp_range[0] <= p <= tcp_range[1] for p in ports), (ports, tcp_range)
    for i, port in enumerate(ports):
        data = deterministic_bytes(64 * 1024, seed=10 + i)
        assert echo_through(port, data) == data, f"client {i} on port {port}"
    # Each port led to its own client's backend.
    for b in backends:
        assert "connection from" in b.log_text(), f"{b.name} on {b.port} saw no connection"


def test_public_client_that_half_closes_still_gets_the_full_echo(tcp_server, tcp_echo,
                                                                 start_porthole):
    client = start_porthole("tcp", f"127.0.0.1:{tcp_echo.port}", server=tcp_server)
    port = tcp_port_of(client.url("tcp"))
    data = deterministic_bytes(ONE_MIB, seed=11)
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        errors: list[BaseException] = []

        def send_then_half_close():
            try:
                s.sendall(data)
                s.shutdown(socket.SHUT_WR)  # "that is all": the answer may still come
            except BaseException as e:
                errors.append(e)

        sender = threading.Thread(target=send_then_half_close, daemon=True)
        sender.start()
        got = bytearray()
        deadline = time.monotonic() + 30
        while len(got) < len(data):
            s.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = s.recv(1 << 16)
            except (TimeoutError, ConnectionError):
                break
            if not chunk:
                break
            got += chunk
        sender.join(10)
    assert not errors, errors
    assert len(got) == len(data), f"got {len(got)} of {len(data)} bytes back after half-close"
    assert bytes(got) == data


# Issue 16, finding 7: a tunnel client must not be able to map the server's
# listening ports by asking for them.

def refusal_of(start_porthole, server, backend, port: int) -> str:
    client = start_porthole("tcp", f"127.0.0.1:{backend.port}", "--remote-port", str(port),
                            server=server, wait_up=False)
    assert client.proc.wait_exit() != 0
    assert "Forwarding " not in client.proc.text()
    m = re.search(r"Remote port \d+ is not[^\n]*", client.proc.text("stderr"))
    assert m, client.proc.text("stderr")
    return m[0]


@pytest.fixture
def open_server(start_portholed):
    """portholed without --tcp-ports: any port a client asks for, on 127.0.0.1."""
    return start_portholed("--tcp-bind-addr", "127.0.0.1")


def test_a_port_a_server_service_listens_on_reads_like_a_port_another_tunnel_holds(
        open_server, tcp_echo, start_porthole, tmp_path):
    server = open_server
    holder = start_porthole("tcp", f"127.0.0.1:{tcp_echo.port}", server=server)
    held = tcp_port_of(holder.url("tcp"))
    admin = server.admin_port  # portholed's own loopback-only admin endpoint
    said = {port: refusal_of(start_porthole, server, tcp_echo, port)
            for port in (held, admin)}
    assert said[held] == said[admin].replace(str(admin), str(held)), said
    assert said[admin] == (f"Remote port {admin} is not available; ask for another, or for "
                           "none and the server chooses."), said


def test_a_privileged_port_is_refused_without_a_range(open_server, tcp_echo, start_porthole):
    for port in (22, 80, 1023):
        said = refusal_of(start_porthole, open_server, tcp_echo, port)
        assert said == (f"Remote port {port} is not one this server gives out: without "
                        "--tcp-ports it gives ports 1024-65535."), said


def test_a_free_unprivileged_port_is_given_without_a_range(open_server, tcp_echo,
                                                          start_porthole):
    wanted = os_port()
    client = start_porthole("tcp", f"127.0.0.1:{tcp_echo.port}", "--remote-port", str(wanted),
                            server=open_server)
    assert client.urls == [f"tcp://localhost:{wanted}"]
    data = deterministic_bytes(64 * 1024, seed=5)
    assert echo_through(wanted, data) == data
