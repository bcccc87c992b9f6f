"""The client's proxy connections are taken one per public connection and
refilled: many public connections one after another all get through, also
when the pool holds a single connection."""

import pytest

from harness import RawHTTP

N = 30


@pytest.mark.parametrize("pool_args", [[], ["--pool-size", "1"]], ids=["default-pool", "pool-of-1"])
def test_30_sequential_connection_close_requests_all_succeed(pool_args, server, http_backend,
                                                             start_porthole):
    client = start_porthole("http", f"127.0.0.1:{http_backend.port}", "--subdomain", "foo",
                            "--proto", "http", "--threads", "1", *pool_args, server=server)
    host = f"foo.localhost:{server.http_port}"
    failures = []
    for i in range(N):
        try:
            with RawHTTP(server.http_port, timeout=20) as c:
                resp = c.request("GET", f"/echo/request-{i}",
                                 [("Host", host), ("Connection", "close")])
                if (resp.status, resp.body) != (200, f"request-{i}".encode()):
                    failures.append((i, resp.status, resp.body[:200]))
                elif not c.closed_by_peer(5):
                    failures.append((i, "connection not closed after Connection: close"))
        except OSError as e:
            failures.append((i, repr(e)))
    assert not failures, f"{len(failures)} of {N} requests failed: {failures[:5]}"
    # Each public connection used its own proxy connection; the connection to
    # the service is kept across them (Connection: close is the public one's).
    assert http_backend.connections == 1
    assert client.proc.running


def test_proxy_connections_resume_the_tls_session(server, http_backend, start_porthole):
    """With ngrok proxy connections (no mux), each new proxy connection offers
    the server's latest session ticket instead of a full handshake."""
    client = start_porthole("http", f"127.0.0.1:{http_backend.port}", "--subdomain", "resume",
                            "--proto", "http", "--no-mux", "--log-level", "trace", server=server)
    host = f"resume.localhost:{server.http_port}"
    for i in range(5):
        with RawHTTP(server.http_port, timeout=20) as c:
            resp = c.request("GET", f"/echo/r{i}", [("Host", host), ("Connection", "close")])
            assert (resp.status, resp.body) == (200, f"r{i}".encode())
    # The pool's refills after those five takes resumed (the first connection cannot).
    client.proc.wait_for_all(r"TLS session resumed", 5, timeout=10)
