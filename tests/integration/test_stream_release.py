"""A keep-alive public connection that waits for its next request gives its
multiplexed stream back after a second (docs/THREADS.md, "Memory"): the
client then holds nothing for it, and the next request on the same public
connection opens a new stream, without a failed or reordered request."""

import random
import threading
import time

import pytest

import harness
from backends import ReuseBackend
from harness import RawHTTP

RELEASE_AFTER = 1.0  # portholed's stream_release_after


def host_of(server) -> str:
    return f"idle.localhost:{server.http_port}"


def tunnel_to(start_porthole, server, backend, *args):
    return start_porthole("http", f"127.0.0.1:{backend.port}", "--subdomain", "idle",
                          "--proto", "http", "--log-level", "debug", *args, server=server)


def stream_ended(c: RawHTTP, requests: int) -> str:
    """The client's line when the stream of public connection `c` ends."""
    host, port = c.local_addr[:2]
    return rf"connection from {host}:{port} ended: {requests} requests"


def test_an_idle_connection_gives_its_stream_back_and_keeps_working(server, start_porthole):
    backend = ReuseBackend("keep-alive")
    client = tunnel_to(start_porthole, server, backend)
    with RawHTTP(server.http_port, timeout=20) as c:
        assert c.request("POST", "/1", [("Host", host_of(server))], b"first").status == 200
        # The client hears the stream end while the public connection stays open.
        client.proc.wait_for(stream_ended(c, 1), timeout=10)
        r = c.request("POST", "/2", [("Host", host_of(server))], b"second")
        assert r.status == 200
        # Two requests sent at once after another release: answered in order.
        client.proc.wait_for_all(stream_ended(c, 1), 2, timeout=10)
        head = f"Host: {host_of(server)}\r\nContent-Length: 5\r\n\r\n"
        c.send(f"POST /3 HTTP/1.1\r\n{head}thirdPOST /4 HTTP/1.1\r\n{head}forth".encode())
        assert [c.read_response("POST").status for _ in range(2)] == [200, 200]
    assert [body for _, body in backend.requests] == [b"first", b"second", b"third", b"forth"]
    # The local connection outlived the streams (kept by the client).
    assert backend.accepted == 1


@pytest.mark.parametrize("transport", harness.TRANSPORTS, indirect=True)
def test_requests_around_the_release_are_all_answered(server, start_porthole, http_backend,
                                                      transport):
    start_porthole("http", f"127.0.0.1:{http_backend.port}", "--subdomain", "idle",
                   "--proto", "http", server=server)
    failures = []

    def talk(k: int):
        pause = random.Random(k)
        try:
            with RawHTTP(server.http_port, timeout=20) as c:
                for i in range(3):
                    r = c.request("GET", f"/echo/{k}-{i}", [("Host", host_of(server))])
                    if (r.status, r.body) != (200, f"{k}-{i}".encode()):
                        failures.append((k, i, r.status, r.body[:80]))
                    # Idle for about the release time: the next request races
                    # the stream's release (the durations are the test).
                    time.sleep(RELEASE_AFTER + pause.uniform(-0.1, 0.1))
        except OSError as e:
            failures.append((k, repr(e)))

    talkers = [threading.Thread(target=talk, args=(k,)) for k in range(24)]
    for t in talkers:
        t.start()
    for t in talkers:
        t.join()
    assert not failures, failures[:5]


def test_a_released_connection_still_counts_against_its_client(start_portholed, start_porthole):
    # One public connection allowed per client: a connection whose stream was
    # given back keeps its place (a second is refused), and gets a new stream.
    srv = start_portholed("--max-conns-per-client", "1")
    backend = ReuseBackend("keep-alive")
    client = tunnel_to(start_porthole, srv, backend)
    with RawHTTP(srv.http_port, timeout=20) as c:
        assert c.request("GET", "/1", [("Host", host_of(srv))]).status == 200
        client.proc.wait_for(stream_ended(c, 1), timeout=10)
        with RawHTTP(srv.http_port, timeout=20) as other:
            assert other.request("GET", "/x", [("Host", host_of(srv))]).status == 503
        assert c.request("GET", "/2", [("Host", host_of(srv))]).status == 200
