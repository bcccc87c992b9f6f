"""An http tunnel keeps its connections to the local service between requests,
as a reverse proxy does: a new public connection costs no local dial, and a
service that closes or resets its connections costs no failed request."""

import pytest

import harness
from backends import ReuseBackend
from harness import RawHTTP

N = 60


def host_of(server, sub: str = "reuse") -> str:
    return f"{sub}.localhost:{server.http_port}"


def tunnel_to(start_porthole, server, backend, *args, threads=1):
    # Each thread keeps its own connections: with one, the counts below are exact.
    return start_porthole("http", f"127.0.0.1:{backend.port}", "--subdomain", "reuse",
                          "--proto", "http", "--threads", str(threads), *args, server=server)


def one_request(server, method="GET", path="/", body=b"", close=False):
    """One request on a new public connection; (status, body)."""
    headers = [("Host", host_of(server))]
    if close:
        headers.append(("Connection", "close"))
    with RawHTTP(server.http_port, timeout=20) as c:
        r = c.request(method, path, headers, body)
        return r.status, r.body


@pytest.mark.parametrize("transport", harness.TRANSPORTS, indirect=True)
def test_new_public_connections_reuse_one_local_connection(server, start_porthole, transport):
    backend = ReuseBackend("keep-alive")
    tunnel_to(start_porthole, server, backend)
    got = [one_request(server, path=f"/{i}") for i in range(N)]
    assert [status for status, _ in got] == [200] * N
    assert len(backend.requests) == N
    # Sequential requests: the one kept connection serves them all.
    assert backend.accepted <= 2, f"{backend.accepted} local connections for {N} requests"


def test_each_thread_keeps_its_own_local_connection(server, start_porthole):
    backend = ReuseBackend("keep-alive")
    tunnel_to(start_porthole, server, backend, threads=3)
    got = [one_request(server, path=f"/{i}") for i in range(N)]
    assert [status for status, _ in got] == [200] * N
    # Public connections come on the three threads' multiplexed connections,
    # and each thread dials the service once at most.
    assert backend.accepted <= 3, f"{backend.accepted} local connections for {N} requests"


def test_local_idle_conns_zero_dials_for_every_public_connection(server, start_porthole):
    backend = ReuseBackend("keep-alive")
    tunnel_to(start_porthole, server, backend, "--local-idle-conns", "0")
    got = [one_request(server) for _ in range(10)]
    assert [status for status, _ in got] == [200] * 10
    assert backend.accepted == 10


def test_one_public_connection_many_requests_one_local_connection(server, start_porthole):
    backend = ReuseBackend("keep-alive")
    tunnel_to(start_porthole, server, backend)
    with RawHTTP(server.http_port, timeout=20) as c:
        for i in range(20):
            r = c.request("POST", f"/{i}", [("Host", host_of(server))], f"body {i}".encode())
            assert r.status == 200
    assert [body for _, body in backend.requests] == [f"body {i}".encode() for i in range(20)]
    assert backend.accepted == 1


def test_service_answering_connection_close_costs_no_failed_request(server, start_porthole):
    backend = ReuseBackend("connection-close")
    tunnel_to(start_porthole, server, backend)
    got = [one_request(server, "POST", body=f"post {i}".encode()) for i in range(20)]
    assert [status for status, _ in got] == [200] * 20
    # Each POST reached the service once, on a connection of its own.
    assert [body for _, body in backend.requests] == [f"post {i}".encode() for i in range(20)]
    assert backend.accepted == 20


def test_public_connection_close_ends_the_public_connection_not_the_local_one(server,
                                                                             start_porthole):
    backend = ReuseBackend("keep-alive")
    tunnel_to(start_porthole, server, backend)
    for i in range(10):
        with RawHTTP(server.http_port, timeout=20) as c:
            r = c.request("POST", "/", [("Host", host_of(server)), ("Connection", "close")],
                          f"post {i}".encode())
            assert r.status == 200
            # The answer says so (the service was not asked to close).
            assert r.header("Connection") == "close"
            assert c.closed_by_peer(5)
    # Connection: close was the public connection's: the service kept its one.
    assert [body for _, body in backend.requests] == [f"post {i}".encode() for i in range(10)]
    assert backend.accepted == 1


def test_service_closing_silently_after_each_response_costs_no_failed_get(server,
                                                                          start_porthole):
    backend = ReuseBackend("close-silently")
    tunnel_to(start_porthole, server, backend)
    got = [one_request(server, path=f"/{i}") for i in range(N)]
    assert [status for status, _ in got] == [200] * N
    assert backend.accepted >= N


def test_service_resetting_idle_connections_costs_no_failed_post(server, start_porthole):
    # Long enough that a new connection gets its request in first, even under load.
    backend = ReuseBackend("reset-idle", idle_reset=harness.scaled(0.5))
    tunnel_to(start_porthole, server, backend)
    for i in range(8):
        backend.server.reset_event.clear()
        status, _ = one_request(server, "POST", body=f"post {i}".encode())
        assert status == 200, f"request {i}"
        # The service resets the kept connection before the next request.
        assert backend.server.reset_event.wait(harness.scaled(10))
    assert [body for _, body in backend.requests] == [f"post {i}".encode() for i in range(8)]
    assert backend.resets == 8


def test_post_is_not_sent_again_when_the_service_drops_it(server, start_porthole):
    backend = ReuseBackend("keep-alive")
    tunnel_to(start_porthole, server, backend)
    assert one_request(server)[0] == 200  # a connection is kept now
    backend.server.mode = "drop-unanswered"
    status, _ = one_request(server, "POST", body=b"pay once")
    assert status == 502
    assert [r for r in backend.requests if r[0] == "POST"] == [("POST", b"pay once")]


def test_get_is_sent_again_once_when_a_kept_connection_dies_unanswered(server, start_porthole):
    backend = ReuseBackend("keep-alive")
    tunnel_to(start_porthole, server, backend)
    assert one_request(server, path="/first")[0] == 200
    backend.server.mode = "drop-unanswered"
    status, _ = one_request(server, path="/second")
    assert status == 502
    # Once on the kept connection, once more on a new one; never a third time.
    assert [m for m, _ in backend.requests] == ["GET", "GET", "GET"]
    assert backend.accepted == 2
