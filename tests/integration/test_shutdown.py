"""portholed stops cleanly on SIGTERM or SIGINT while a client has a tunnel up;
the client notices and keeps trying to reconnect instead of exiting. The client
itself exits 0 on the same signals."""

import signal
import time

import pytest

from harness import curl, scaled

STOP_WITHIN = 5.0  # seconds; the server drains connections for up to 2 s


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_server_exits_0_on_signal_and_client_keeps_reconnecting(sig, server, http_tunnel):
    r = curl(f"{http_tunnel.url()}/hello")
    assert (r.returncode, r.status, r.body) == (0, 200, b"hello"), r.stderr

    before = http_tunnel.proc.mark()
    t0 = time.monotonic()
    server.proc.popen.send_signal(sig)
    rc = server.proc.wait_exit(timeout=STOP_WITHIN)
    elapsed = time.monotonic() - t0

    assert rc == 0, f"portholed exited with {rc} on {sig.name}"
    assert elapsed <= STOP_WITHIN
    assert "shutting down" in server.proc.text().lower(), \
        "portholed did not log that it is shutting down"

    # The client says it lost the server, and retries (one failed attempt and
    # a longer back-off later it is still there).
    http_tunnel.proc.wait_for(r"lost connection to server", timeout=10, since=before)
    http_tunnel.proc.wait_for_all(r"reconnecting", 2, timeout=15, since=before)
    assert http_tunnel.proc.running, "the client exited when the server went away"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_client_exits_0_on_signal_with_a_tunnel_up(sig, server, http_tunnel):
    r = curl(f"{http_tunnel.url()}/hello")
    assert (r.returncode, r.status, r.body) == (0, 200, b"hello"), r.stderr
    http_tunnel.proc.popen.send_signal(sig)
    rc = http_tunnel.proc.wait_exit(timeout=STOP_WITHIN)
    # A crash at exit shows as a negative code (killed by SIGSEGV) or 139.
    assert rc == 0, f"porthole exited with {rc} on {sig.name}"
    server.proc.wait_for(r"tunnel down client=", timeout=10)


@pytest.mark.parametrize("transport", ["mux", "pool"], indirect=True)
def test_a_stopped_client_gives_its_url_back_for_the_next_one(server, http_backend,
                                                              start_porthole, transport):
    """Stopped on purpose, a client hands its URLs back (CloseTunnel) instead of
    leaving the server to hold them for a reconnect that will not come: a
    client started again at once gets the same URL."""
    first = start_porthole("http", str(http_backend.port), "--subdomain", "again", "--proto",
                           "http", server=server)
    first.proc.stop()
    assert first.proc.returncode == 0
    assert "gave the tunnels' URLs back to the server" in first.proc.text()
    second = start_porthole("http", str(http_backend.port), "--subdomain", "again", "--proto",
                            "http", server=server)
    assert second.urls == first.urls
    r = curl(f"{second.url()}/hello")
    assert (r.returncode, r.status, r.body) == (0, 200, b"hello"), r.stderr


def open_requests(server, url: str, paths: list[str]) -> list:
    """Public connections left in flight: a keep-alive connection that asked
    nothing, a request whose head never ends, and requests the service has
    not answered (each path of `paths`), on http and https."""
    import socket
    import ssl
    from urllib.parse import urlsplit
    host = urlsplit(url).hostname
    conns = []
    for scheme, port in (("http", server.http_port), ("https", server.https_port)):
        for request in [b"", f"GET /x HTTP/1.1\r\nHost: {host}".encode()] + [
                f"GET {p} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode() for p in paths]:
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            if scheme == "https":
                ctx = ssl.create_default_context(cafile=str(server.ca))
                s = ctx.wrap_socket(s, server_hostname=host)
            s.sendall(request)
            conns.append(s)
    return conns


def wait_stalls(backend, n: int, timeout: float = 10.0) -> None:
    """Waits until the backend holds `n` /stall requests unanswered."""
    deadline = time.monotonic() + scaled(timeout)
    while backend.log_text().count("stalling") < n:
        assert time.monotonic() < deadline, backend.log_text()
        time.sleep(0.05)


def test_server_stopped_with_connections_in_flight_exits_0(server, http_backend,
                                                          start_porthole):
    # Past the two seconds of draining, what is still in flight is dropped:
    # coroutines destroyed unfinished must not touch the server they belonged to.
    tunnel = start_porthole("http", f"127.0.0.1:{http_backend.port}", "--subdomain", "foo",
                            server=server)
    conns = open_requests(server, tunnel.url(), ["/stall"])
    wait_stalls(http_backend, 2)  # one per scheme: the requests are at the service
    server.proc.popen.send_signal(signal.SIGTERM)
    rc = server.proc.wait_exit(timeout=STOP_WITHIN)
    for c in conns:
        c.close()
    assert rc == 0, f"portholed exited with {rc}: {server.proc.final_output()[-2000:]}"


def test_client_stopped_with_connections_in_flight_exits_0(server, http_backend,
                                                          start_porthole):
    tunnel = start_porthole("http", f"127.0.0.1:{http_backend.port}", "--subdomain", "foo",
                            server=server)
    conns = open_requests(server, tunnel.url(), ["/stall"])
    wait_stalls(http_backend, 2)
    tunnel.proc.popen.send_signal(signal.SIGTERM)
    rc = tunnel.proc.wait_exit(timeout=STOP_WITHIN + 10)
    for c in conns:
        c.close()
    assert rc == 0, f"porthole exited with {rc}: {tunnel.proc.final_output()[-2000:]}"
