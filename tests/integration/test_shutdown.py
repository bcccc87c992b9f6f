"""portholed stops cleanly on SIGTERM or SIGINT while a client has a tunnel up;
the client notices and keeps trying to reconnect instead of exiting. The client
itself exits 0 on the same signals."""

import signal
import time

import pytest

from harness import curl

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
