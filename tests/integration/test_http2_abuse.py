"""Hostile HTTP/2 on portholed's public port (docs/SECURITY.md, "HTTP/2"):
each attack is answered as documented while an honest HTTP/2 client keeps
working. Frames are written by hand (h2_frames.py)."""

import socket
import time

import pytest

import h2_frames as h2
import harness
from harness import curl


@pytest.fixture
def tunnel(server, http_backend, start_porthole):
    return start_porthole("http", f"127.0.0.1:{http_backend.port}", "--subdomain", "foo",
                          server=server)


def authority(server) -> str:
    return f"foo.localhost:{server.http_port}"


def honest_client_works(server, tunnel) -> None:
    r = curl(f"{tunnel.url('http')}/hello", "--http2-prior-knowledge")
    assert (r.returncode, r.version, r.status, r.body) == (0, "2", 200, b"hello"), r.stderr


def assert_grew_less_than(server, before_kib: int, bound_kib: int) -> None:
    """The memory bound holds for the real allocator; a sanitizer's (redzones,
    quarantine) multiplies what every allocation costs."""
    grown = rss_kib(server.proc.popen.pid) - before_kib
    if harness.sanitizer() is None:
        assert grown < bound_kib, f"portholed grew by {grown} KiB"


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_rapid_reset_is_cut_off_and_reaches_no_service(server, tunnel, http_backend):
    """CVE-2023-44487: streams opened and reset at once, by the thousand."""
    s = h2.connect(server.http_port)
    block = h2.request_block(authority(server))
    burst = b"".join(h2.frame(h2.HEADERS, h2.END_STREAM | h2.END_HEADERS, i, block) +
                     h2.frame(h2.RST_STREAM, 0, i, (h2.CANCEL).to_bytes(4, "big"))
                     for i in range(1, 2 * 5000, 2))
    try:
        s.sendall(burst)
    except (BrokenPipeError, ConnectionResetError):
        pass  # cut off before all of it went
    frames = h2.read_frames(s, lambda fs: h2.goaway_code(fs) is not None)
    assert h2.goaway_code(frames) is not None, frames[-5:]
    assert h2.closed(s)
    s.close()
    # Far fewer requests reached the service than streams were opened.
    assert http_backend.hits("GET /hello") < 100, http_backend.log_text()
    honest_client_works(server, tunnel)


def test_a_continuation_flood_ends_the_connection(server, tunnel):
    s = h2.connect(server.http_port)
    s.sendall(h2.frame(h2.HEADERS, 0, 1, h2.request_block(authority(server))))
    junk = h2.literal(b"x-junk", b"y" * 100)
    started = time.monotonic()
    sent = 0
    try:
        for _ in range(10000):
            s.sendall(h2.frame(h2.CONTINUATION, 0, 1, junk))
            sent += 1
    except (BrokenPipeError, ConnectionResetError):
        pass
    # nghttp2 allows a few CONTINUATION frames per head; then the connection
    # ends (the peer's error, no GOAWAY needed).
    assert h2.closed(s)
    assert time.monotonic() - started < 5
    s.close()
    honest_client_works(server, tunnel)
    assert sent < 10000, "every CONTINUATION frame was taken"


def test_a_ping_flood_that_reads_nothing_is_cut_off_with_bounded_memory(server, tunnel):
    before = rss_kib(server.proc.popen.pid)
    s = h2.connect(server.http_port)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # and reads nothing
    ping = h2.frame(h2.PING, 0, 0, b"12345678") * 4096
    cut = False
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            s.sendall(ping)
        except (BrokenPipeError, ConnectionResetError):
            cut = True
            break
        except socket.timeout:
            continue
    assert cut, "portholed kept taking PINGs it could not answer"
    s.close()
    assert_grew_less_than(server, before, 64 * 1024)
    honest_client_works(server, tunnel)


def test_streams_over_the_concurrency_limit_end_the_connection(server, tunnel):
    s = h2.connect(server.http_port)
    h2.read_frames(s, lambda fs: any(k == h2.SETTINGS and f & h2.ACK for k, f, _, _ in fs))
    block = h2.request_block(authority(server), "/upload", "POST")
    # 101 requests whose bodies never come: all open at once, one over the
    # 100 portholed's SETTINGS allow (nghttp2 makes that a connection error).
    s.sendall(b"".join(h2.frame(h2.HEADERS, h2.END_HEADERS, i, block)
                       for i in range(1, 2 * 101, 2)))
    frames = h2.read_frames(s, lambda fs: h2.goaway_code(fs) is not None)
    assert h2.goaway_code(frames) == h2.PROTOCOL_ERROR, frames
    goaway = next(p for k, _, _, p in frames if k == h2.GOAWAY)
    assert int.from_bytes(goaway[:4], "big") == 199  # the last stream it took
    assert h2.closed(s)
    s.close()
    honest_client_works(server, tunnel)


def test_a_head_over_the_limit_gets_431(server, tunnel):
    big = curl(f"{tunnel.url('http')}/hello", "--http2-prior-knowledge",
               "-H", "X-Big: " + "b" * 40000)
    assert (big.version, big.status) == ("2", 431), big.stderr
    many = curl(f"{tunnel.url('http')}/hello", "--http2-prior-knowledge",
                *[arg for i in range(120) for arg in ("-H", f"X-Field-{i}: {i}")])
    assert (many.version, many.status) == ("2", 431), many.stderr
    honest_client_works(server, tunnel)


def test_an_hpack_table_larger_than_allowed_is_a_compression_error(server, tunnel):
    s = h2.connect(server.http_port)
    # A dynamic table size update (RFC 7541 6.3) to 1 MiB: above the 4096
    # bytes portholed's SETTINGS allow.
    block = h2.integer(1 << 20, 5, 0x20) + h2.request_block(authority(server))
    s.sendall(h2.frame(h2.HEADERS, h2.END_STREAM | h2.END_HEADERS, 1, block))
    frames = h2.read_frames(s, lambda fs: h2.goaway_code(fs) is not None)
    assert h2.goaway_code(frames) == h2.COMPRESSION_ERROR, frames
    s.close()
    honest_client_works(server, tunnel)


def test_streams_that_never_open_their_window_hold_bounded_memory(server, tunnel):
    """Window abuse: a client that asks for big bodies and never reads them."""
    before = rss_kib(server.proc.popen.pid)
    s = h2.connect(server.http_port, window=0)
    h2.read_frames(s, lambda fs: any(k == h2.SETTINGS and f & h2.ACK for k, f, _, _ in fs))
    size = 10 * 1024 * 1024
    block = h2.request_block(authority(server), f"/bytes/{size}")
    s.sendall(b"".join(h2.frame(h2.HEADERS, h2.END_STREAM | h2.END_HEADERS, i, block)
                       for i in range(1, 2 * 100, 2)))
    # Every response's head comes (a window holds back DATA only).
    frames = h2.read_frames(s, lambda fs: sum(k == h2.HEADERS for k, _, _, _ in fs) >= 100,
                            timeout=30)
    assert sum(k == h2.HEADERS for k, _, _, _ in frames) >= 100
    time.sleep(1)  # what the tunnel would push has had time to pile up
    assert_grew_less_than(server, before, 48 * 1024)
    honest_client_works(server, tunnel)
    s.close()


def test_a_head_cut_in_the_middle_closes_the_connection_in_time(start_portholed, http_backend,
                                                                 start_porthole):
    server = start_portholed("--read-header-timeout", "1")
    tunnel = start_porthole("http", f"127.0.0.1:{http_backend.port}", "--subdomain", "foo",
                            server=server)
    s = h2.connect(server.http_port)
    s.sendall(h2.frame(h2.HEADERS, 0, 1, h2.request_block(authority(server))))  # no END_HEADERS
    started = time.monotonic()
    frames = h2.read_frames(s, lambda fs: h2.goaway_code(fs) is not None, timeout=15)
    assert h2.goaway_code(frames) == h2.PROTOCOL_ERROR, frames
    assert h2.closed(s)
    assert time.monotonic() - started < 5
    s.close()
    honest_client_works(server, tunnel)
