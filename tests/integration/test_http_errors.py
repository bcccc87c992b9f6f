"""What a public HTTP client sees when something is wrong."""

import time

import pytest

from harness import TRANSPORTS, RawHTTP, curl, dead_port


def test_unknown_host_gets_404_naming_the_host(server):
    r = curl(f"http://nosuchtunnel.localhost:{server.http_port}/hello")
    assert (r.returncode, r.status) == (0, 404), r.stderr
    assert b"nosuchtunnel.localhost" in r.body


@pytest.mark.parametrize("transport", TRANSPORTS, indirect=True)
def test_local_service_down_gets_502_naming_the_local_address(server, start_porthole):
    dead = dead_port()  # bound, not listening: connections are refused
    try:
        port = dead.getsockname()[1]
        client = start_porthole("http", str(port), "--subdomain", "down", "--proto", "http",
                                server=server)
        r = curl(f"{client.url()}/hello")
        assert (r.returncode, r.status) == (0, 502), r.stderr
        assert f"localhost:{port}".encode() in r.body
        assert client.proc.running, "the client must survive a dead local service"
    finally:
        dead.close()


def test_request_head_over_32kib_gets_431(server, http_tunnel):
    with RawHTTP(server.http_port) as c:
        big = "a" * (40 * 1024)
        c.send((f"GET /hello HTTP/1.1\r\nHost: foo.localhost:{server.http_port}\r\n"
                f"X-Big: {big}\r\n\r\n").encode())
        resp = c.read_response()
    assert resp.status == 431


def test_head_that_stops_half_way_gets_408(start_portholed, http_backend, start_porthole):
    server = start_portholed("--read-header-timeout", "1")
    start_porthole("http", f"127.0.0.1:{http_backend.port}", "--subdomain", "foo",
                   "--proto", "http", server=server)
    with RawHTTP(server.http_port, timeout=15) as c:
        t0 = time.monotonic()
        c.send(f"GET /hello HTTP/1.1\r\nHost: foo.localhost:{server.http_port}\r\nX-Half: "
               .encode())
        resp = c.read_response()
        elapsed = time.monotonic() - t0
        assert resp.status == 408
        assert 0.5 <= elapsed <= 10, f"408 after {elapsed:.2f}s with --read-header-timeout 1"
        assert c.closed_by_peer(5), "the connection must be closed after a 408"
