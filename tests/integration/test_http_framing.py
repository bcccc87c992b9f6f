"""HTTP/1.x message framing through an http tunnel: pipelining, HEAD, Expect:
100-continue, bodies delimited by the connection's close, and HTTP/1.0."""

import hashlib
import json
import time

from harness import RawHTTP, curl, deterministic_bytes

TWO_MIB = 2 * 1024 * 1024


def host_of(server) -> str:
    return f"foo.localhost:{server.http_port}"


def test_three_pipelined_gets_get_three_responses_in_order(server, http_tunnel):
    host = host_of(server)
    with RawHTTP(server.http_port, timeout=15) as c:
        c.send("".join(f"GET /echo/{word} HTTP/1.1\r\nHost: {host}\r\n\r\n"
                       for word in ("one", "two", "three")).encode())
        bodies = []
        for _ in range(3):
            resp = c.read_response()
            assert resp.status == 200
            bodies.append(resp.body)
        assert bodies == [b"one", b"two", b"three"]
        assert c.buf == b"", f"bytes after the third response: {c.buf[:200]!r}"


def test_head_gets_headers_without_body_and_next_request_works(server, http_tunnel):
    host = host_of(server)
    with RawHTTP(server.http_port, timeout=15) as c:
        resp = c.request("HEAD", "/hello", [("Host", host)])
        assert resp.status == 200
        assert resp.header("Content-Length") == "5"
        # The next response on the connection is GET's own: had a body
        # followed the HEAD response, it would be read here instead.
        resp = c.request("GET", "/echo/after-head", [("Host", host)])
        assert (resp.status, resp.body) == (200, b"after-head")
        assert c.buf == b""


def test_post_over_1mib_with_expect_100_continue_succeeds(server, http_tunnel, tmp_path):
    data = deterministic_bytes(TWO_MIB, seed=21)
    f = tmp_path / "upload.bin"
    f.write_bytes(data)
    t0 = time.monotonic()
    # curl sends Expect: 100-continue for a body this large; said explicitly so
    # that it does whatever curl's version, and curl waits up to 30 s for the 100.
    r = curl(f"{http_tunnel.url()}/upload", "--data-binary", f"@{f}",
             "-H", "Expect: 100-continue", "--expect100-timeout", "30",
             "-H", "Content-Type: application/octet-stream")
    elapsed = time.monotonic() - t0
    assert (r.returncode, r.status) == (0, 200), r.stderr
    got = json.loads(r.body)
    assert got["length"] == TWO_MIB
    assert got["sha256"] == hashlib.sha256(data).hexdigest()
    assert elapsed < 15, f"the upload took {elapsed:.1f}s: the 100 Continue did not come through"


def test_expect_100_continue_gets_interim_response_before_the_body_is_sent(server, http_tunnel):
    host = host_of(server)
    body = deterministic_bytes(300_000, seed=22)
    with RawHTTP(server.http_port, timeout=15) as c:
        c.send((f"POST /upload HTTP/1.1\r\nHost: {host}\r\nExpect: 100-continue\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode())
        status_line = c._read_line().decode("latin-1")
        assert status_line.startswith("HTTP/1.1 100"), status_line
        assert c._read_line() == b"", "the 100 Continue response has header fields or no end"
        c.send(body)
        resp = c.read_response("POST")
        assert resp.status == 200
        got = json.loads(resp.body)
        assert (got["length"], got["sha256"]) == (len(body), hashlib.sha256(body).hexdigest())


def test_response_delimited_by_backend_close_is_delivered_complete(server, http_tunnel):
    n = 1024 * 1024 + 3
    r = curl(f"{http_tunnel.url()}/close-delimited/{n}")
    assert (r.returncode, r.status) == (0, 200), r.stderr
    assert r.header("content-length") is None
    assert len(r.body) == n, f"got {len(r.body)} of {n} bytes"
    assert r.body == deterministic_bytes(n)


def test_response_delimited_by_backend_close_ends_the_public_connection(server, http_tunnel):
    n = 100_000
    with RawHTTP(server.http_port, timeout=15) as c:
        c.send(f"GET /close-delimited/{n} HTTP/1.1\r\nHost: {host_of(server)}\r\n\r\n".encode())
        resp = c.read_response()  # no length: reads until the server closes
    assert resp.status == 200
    assert resp.body == deterministic_bytes(n)


def test_http10_request_without_host_gets_400_naming_host(server, http_tunnel):
    with RawHTTP(server.http_port, timeout=15) as c:
        c.send(b"GET /hello HTTP/1.0\r\n\r\n")
        resp = c.read_response()
        assert resp.status == 400
        assert b"Host" in resp.body, f"the 400 does not name the missing Host: {resp.body!r}"
        assert c.closed_by_peer(5)
