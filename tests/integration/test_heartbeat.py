"""Heartbeats: the client pings on time, so the server keeps it; a client that
pings too rarely is dropped by the server and comes back by itself."""

import threading

from harness import curl


def test_client_that_pings_on_time_is_never_dropped(start_portholed, http_backend, start_porthole):
    server = start_portholed("--heartbeat-timeout", "3")
    client = start_porthole("http", f"127.0.0.1:{http_backend.port}", "--subdomain", "beat",
                            "--proto", "http", "--heartbeat-interval", "1", server=server)
    # What is asserted is that nothing happens for over twice the server's
    # time-out: there is no event to wait for instead of the clock.
    quiet = threading.Event()
    assert not quiet.wait(7.0)
    assert "no heartbeat" not in server.proc.text()
    assert "reconnecting" not in client.proc.text()
    r = curl(f"{client.url()}/hello")
    assert (r.returncode, r.status, r.body) == (0, 200, b"hello"), r.stderr


def test_client_that_pings_too_rarely_is_dropped_and_reconnects(start_portholed, http_backend,
                                                                 start_porthole):
    server = start_portholed("--heartbeat-timeout", "2")
    client = start_porthole("http", f"127.0.0.1:{http_backend.port}", "--subdomain", "rare",
                            "--proto", "http", "--heartbeat-interval", "30", server=server)
    up_before = client.ready
    server.proc.wait_for(r"no heartbeat in time;.* timeout=2s", timeout=10)
    client.proc.wait_for(r"reconnecting", timeout=10)
    up = client.wait_tunnels(1, since=up_before, timeout=10)
    assert up["tunnels"][0]["url"].startswith("http://rare.localhost:")
    r = curl(f"{client.url()}/hello")
    assert (r.returncode, r.status, r.body) == (0, 200, b"hello"), r.stderr
