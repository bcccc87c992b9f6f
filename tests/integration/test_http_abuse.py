"""Abuse of the public HTTP and HTTPS ports: slow heads, huge heads, header
floods and request smuggling shapes. Each is refused by portholed with a small
error page and a closed connection, logged once, and not one byte of it reaches
the local service, which keeps serving everyone else."""

from __future__ import annotations

import re
import selectors
import socket
import ssl
import threading
import time

import pytest

from harness import RawHTTP, curl, register

# ---------------------------------------------------------------------------
# A local service that records every byte it receives
# ---------------------------------------------------------------------------


class RecordingBackend:
    """Answers each request "200 ok <target>" once its body came, and keeps every byte it received, so a test can assert what got through."""

    name = "recording-backend"

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0), backlog=256)
        self.port = self.sock.getsockname()[1]
        self._lock = threading.Lock()
        self._received: list[bytes] = []
        self._stopped = False
        self.thread = threading.Thread(target=self._accept, name=self.name, daemon=True)
        self.thread.start()
        register(self)

    @property
    def received(self) -> bytes:
        with self._lock:
            return b"".join(self._received)

    def _accept(self) -> None:
        while not self._stopped:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        buf = b""
        with conn:
            while True:
                try:
                    data = conn.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                with self._lock:
                    self._received.append(data)
                buf += data
                while b"\r\n\r\n" in buf:
                    head, rest = buf.split(b"\r\n\r\n", 1)
                    m = re.search(rb"\r\ncontent-length:\s*(\d+)", head, re.I)
                    length = int(m[1]) if m else 0
                    if re.search(rb"\r\ntransfer-encoding:", head, re.I):
                        # Answered only once the last chunk came (none of the
                        # requests here carry data in their chunks).
                        end = rest.find(b"0\r\n\r\n")
                        if end < 0:
                            break
                        length = end + 5
                    if len(rest) < length:
                        break
                    buf = rest[length:]
                    target = head.split(b" ")[1] if b" " in head else b"?"
                    body = b"ok " + target
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s"
                                 % (len(body), body))

    def log_text(self) -> str:
        return f"127.0.0.1:{self.port} received:\n{self.received[:4000]!r}"

    def stop(self) -> None:
        self._stopped = True
        self.sock.close()


@pytest.fixture
def recorder() -> RecordingBackend:
    return RecordingBackend()


@pytest.fixture
def tunnel(server, recorder, start_porthole):
    """foo.localhost on http and https -> the recording backend."""
    return start_porthole("http", f"127.0.0.1:{recorder.port}", "--subdomain", "foo",
                          server=server)


def host_of(server, scheme: str = "http") -> str:
    return f"foo.localhost:{server.http_port if scheme == 'http' else server.https_port}"


def connect(server, scheme: str, timeout: float = 15.0) -> RawHTTP:
    if scheme == "http":
        return RawHTTP(server.http_port, timeout=timeout)
    ctx = ssl.create_default_context(cafile=str(server.ca))
    raw = socket.create_connection(("127.0.0.1", server.https_port), timeout=timeout)
    return RawHTTP(0, sock=ctx.wrap_socket(raw, server_hostname="foo.localhost"), timeout=timeout)


def assert_tunnel_serves(server, tunnel) -> None:
    r = curl(f"{tunnel.url()}/still-here")
    assert (r.returncode, r.status, r.body) == (0, 200, b"ok /still-here"), r.stderr


# ---------------------------------------------------------------------------
# Request smuggling shapes and other malformed heads
# ---------------------------------------------------------------------------

# name -> (request with {host} for the Host value, the status the attacker gets,
#          the rule portholed logs). Each request carries the marker SMUGGLED
#          in its target or body, which must never reach the local service.
SHAPES = {
    "cl_and_te": (b"POST /SMUGGLED HTTP/1.1\r\nHost: {host}\r\nContent-Length: 6\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nG", 400,
                  "content_length_and_transfer_encoding"),
    "te_and_cl": (b"POST /SMUGGLED HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\n"
                  b"Content-Length: 6\r\n\r\n0\r\n\r\nG", 400,
                  "content_length_and_transfer_encoding"),
    "duplicate_cl_equal": (b"POST /SMUGGLED HTTP/1.1\r\nHost: {host}\r\nContent-Length: 3\r\n"
                           b"Content-Length: 3\r\n\r\nabc", 400, "duplicate_content_length"),
    "duplicate_cl_differ": (b"POST /SMUGGLED HTTP/1.1\r\nHost: {host}\r\nContent-Length: 3\r\n"
                            b"Content-Length: 30\r\n\r\nabc", 400, "duplicate_content_length"),
    "cl_list": (b"POST /SMUGGLED HTTP/1.1\r\nHost: {host}\r\nContent-Length: 3, 3\r\n\r\nabc",
                400, "duplicate_content_length"),
    "te_chunked_identity": (b"POST /SMUGGLED HTTP/1.1\r\nHost: {host}\r\n"
                            b"Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n", 400,
                            "bad_transfer_encoding"),
    "te_xchunked": (b"POST /SMUGGLED HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: xchunked"
                    b"\r\n\r\n0\r\n\r\n", 400, "bad_transfer_encoding"),
    "te_twice": (b"POST /SMUGGLED HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\n"
                 b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, "bad_transfer_encoding"),
    "te_gzip_chunked": (b"POST /SMUGGLED HTTP/1.1\r\nHost: {host}\r\n"
                        b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501,
                        "unsupported_transfer_coding"),
    "te_in_http10": (b"POST /SMUGGLED HTTP/1.0\r\nHost: {host}\r\nTransfer-Encoding: chunked"
                     b"\r\n\r\n0\r\n\r\n", 400, "transfer_encoding_in_http10"),
    "obs_fold": (b"GET /SMUGGLED HTTP/1.1\r\nHost: {host}\r\nX-A: one\r\n Transfer-Encoding: "
                 b"chunked\r\n\r\n", 400, "obs_fold"),
    "bare_lf": (b"GET /SMUGGLED HTTP/1.1\nHost: {host}\n\n", 400, "bare_line_ending"),
    "bare_lf_in_field": (b"GET /SMUGGLED HTTP/1.1\r\nHost: {host}\r\nX-A: a\nContent-Length: 5"
                         b"\r\n\r\n", 400, "bare_line_ending"),
    "space_before_colon": (b"POST /SMUGGLED HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding : "
                           b"chunked\r\n\r\n0\r\n\r\n", 400, "space_before_colon"),
    "cl_plus": (b"POST /SMUGGLED HTTP/1.1\r\nHost: {host}\r\nContent-Length: +3\r\n\r\nabc", 400,
                "bad_content_length"),
    "cl_hex": (b"POST /SMUGGLED HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0x10\r\n\r\nabc", 400,
               "bad_content_length"),
    "cl_two_numbers": (b"POST /SMUGGLED HTTP/1.1\r\nHost: {host}\r\nContent-Length:  5 5\r\n\r\n",
                       400, "bad_content_length"),
    "cl_negative": (b"POST /SMUGGLED HTTP/1.1\r\nHost: {host}\r\nContent-Length: -1\r\n\r\n", 400,
                    "bad_content_length"),
    "cl_overflow": (b"POST /SMUGGLED HTTP/1.1\r\nHost: {host}\r\n"
                    b"Content-Length: 18446744073709551617\r\n\r\n", 400, "bad_content_length"),
    "nul_in_value": (b"GET /SMUGGLED HTTP/1.1\r\nHost: {host}\r\nX-A: a\x00b\r\n\r\n", 400,
                     "bad_field_value"),
    "control_in_value": (b"GET /SMUGGLED HTTP/1.1\r\nHost: {host}\r\nX-A: a\x1bb\r\n\r\n", 400,
                         "bad_field_value"),
    "nul_in_name": (b"GET /SMUGGLED HTTP/1.1\r\nHost: {host}\r\nX\x00A: b\r\n\r\n", 400,
                    "bad_field_name"),
    "missing_version": (b"GET /SMUGGLED\r\nHost: {host}\r\n\r\n", 400, "bad_request_line"),
    "http2_version": (b"GET /SMUGGLED HTTP/2.0\r\nHost: {host}\r\n\r\n", 505,
                      "unsupported_version"),
    "h2_preface": (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505, "unsupported_version"),
    "space_in_target": (b"GET /a /SMUGGLED HTTP/1.1\r\nHost: {host}\r\n\r\n", 400,
                        "bad_request_line"),
    "absolute_form_other_host": (b"GET http://other.localhost/SMUGGLED HTTP/1.1\r\n"
                                 b"Host: {host}\r\n\r\n", 400, "host_mismatch"),
    "missing_host": (b"GET /SMUGGLED HTTP/1.1\r\nX-A: b\r\n\r\n", 400, "missing_host"),
    "two_hosts": (b"GET /SMUGGLED HTTP/1.1\r\nHost: {host}\r\nHost: bar.localhost\r\n\r\n", 400,
                  "duplicate_host"),
    "host_list": (b"GET /SMUGGLED HTTP/1.1\r\nHost: {host}, bar.localhost\r\n\r\n", 400,
                  "bad_host"),
}


def shape_bytes(name: str, host: str) -> bytes:
    return SHAPES[name][0].replace(b"{host}", host.encode())


def refusals_of(server, port: int) -> list[str]:
    return [line for line in server.proc.lines()
            if "request refused" in line and f"127.0.0.1:{port}" in line]


def assert_refused(server, c: RawHTTP, scheme: str, status: int, rule: str) -> None:
    resp = c.read_response()
    assert resp.status == status, resp
    assert b"<html>" in resp.body and len(resp.body) < 2000, resp.body
    assert resp.header("Connection") == "close"
    assert c.closed_by_peer(5), "the connection must be closed after a refusal"
    port = c.local_addr[1]
    line = server.proc.wait_for(rf"public request refused; closing peer=127\.0\.0\.1:{port} "
                                rf"scheme={scheme} status={status} rule={rule} ")
    assert len(refusals_of(server, port)) == 1, f"logged more than once: {line}"


@pytest.mark.parametrize("shape", [s for s in SHAPES if s != "h2_preface"])
def test_smuggling_shape_is_refused_and_nothing_reaches_the_service(shape, server, tunnel,
                                                                     recorder):
    _, status, rule = SHAPES[shape]
    with connect(server, "http") as c:
        c.send(shape_bytes(shape, host_of(server)))
        assert_refused(server, c, "http", status, rule)
    assert_tunnel_serves(server, tunnel)
    assert b"SMUGGLED" not in recorder.received
    assert b"/still-here" in recorder.received


def test_the_h2_preface_followed_by_http1_bytes_reaches_no_service(server, tunnel, recorder):
    """A connection's first bytes that are the HTTP/2 preface make it HTTP/2
    (h2c); HTTP/1.1 after the preface is not a SETTINGS frame, and ends it."""
    with connect(server, "http") as c:
        c.send(SHAPES["h2_preface"][0] +
               f"GET /SMUGGLED HTTP/1.1\r\nHost: {host_of(server)}\r\n\r\n".encode())
        assert c.closed_by_peer(5), "the connection must be closed"
    assert_tunnel_serves(server, tunnel)
    assert b"SMUGGLED" not in recorder.received


@pytest.mark.parametrize("scheme", ["http", "https"])
@pytest.mark.parametrize("shape", ["cl_and_te", "duplicate_cl_equal", "te_chunked_identity",
                                   "obs_fold", "bare_lf", "cl_plus", "nul_in_value",
                                   "absolute_form_other_host", "two_hosts", "http2_version",
                                   "h2_preface"])
def test_smuggling_shape_on_second_keep_alive_request_is_refused(shape, scheme, server, tunnel,
                                                                 recorder):
    _, status, rule = SHAPES[shape]
    host = host_of(server, scheme)
    with connect(server, scheme) as c:
        # The first request is answered before the second is sent: what the
        # service then receives is the first request, and nothing more.
        c.send(f"GET /first HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        first = c.read_response()
        assert (first.status, first.body) == (200, b"ok /first")
        c.send(shape_bytes(shape, host))
        assert_refused(server, c, scheme, status, rule)
    received = recorder.received
    assert received.startswith(b"GET /first HTTP/1.1\r\n"), received
    assert b"SMUGGLED" not in received
    assert received.count(b"\r\n\r\n") == 1, received
    assert_tunnel_serves(server, tunnel)


def test_smuggling_shape_pipelined_behind_a_good_request_is_refused(server, tunnel, recorder):
    host = host_of(server)
    with connect(server, "http") as c:
        c.send(f"GET /first HTTP/1.1\r\nHost: {host}\r\n\r\n".encode() +
               shape_bytes("te_and_cl", host))
        first = c.read_response()
        assert (first.status, first.body) == (200, b"ok /first")
        assert_refused(server, c, "http", 400, "content_length_and_transfer_encoding")
    assert b"SMUGGLED" not in recorder.received


@pytest.mark.parametrize("body, rule", [
    (b"zz\r\nSMUGGLED\r\n0\r\n\r\n", "bad_chunk"),
    (b"10000000000000000\r\nSMUGGLED\r\n0\r\n\r\n", "bad_chunk"),
    (b"3\r\nabcSMUGGLED\r\n0\r\n\r\n", "bad_chunk"),
], ids=["invalid_size", "size_overflow", "no_crlf_after_data"])
def test_bad_chunked_body_is_refused_with_400_and_the_service_connection_dropped(
        body, rule, server, tunnel, recorder):
    with connect(server, "http") as c:
        c.send(f"POST /upload HTTP/1.1\r\nHost: {host_of(server)}\r\n"
               "Transfer-Encoding: chunked\r\n\r\n".encode() + body)
        resp = c.read_response()
        assert resp.status == 400
        assert c.closed_by_peer(5)
    server.proc.wait_for(rf"public request refused;.* scheme=http status=400 rule={rule} ")
    assert b"SMUGGLED" not in recorder.received
    assert_tunnel_serves(server, tunnel)


# ---------------------------------------------------------------------------
# Huge heads and header floods
# ---------------------------------------------------------------------------

def test_head_that_never_ends_gets_431_at_the_limit_without_waiting(server, tunnel, recorder):
    with connect(server, "http") as c:
        t0 = time.monotonic()
        c.send(f"GET /SMUGGLED HTTP/1.1\r\nHost: {host_of(server)}\r\n".encode())
        c.send(b"X-Flood: " + b"a" * (33 * 1024))
        resp = c.read_response()
        assert resp.status == 431
        assert time.monotonic() - t0 < 5, "the 431 waited for the head's time-out"
        assert c.closed_by_peer(5)
    server.proc.wait_for(r"status=431 rule=header_limit")
    assert recorder.received == b""
    assert_tunnel_serves(server, tunnel)


def test_more_than_100_header_fields_get_431(server, tunnel, recorder):
    host = host_of(server)
    fields = "".join(f"X-{i}: v\r\n" for i in range(99))
    with connect(server, "http") as c:  # 100 fields with Host: served
        c.send(f"GET /hundred HTTP/1.1\r\nHost: {host}\r\n{fields}\r\n".encode())
        assert c.read_response().status == 200
    with connect(server, "http") as c:
        c.send(f"GET /SMUGGLED HTTP/1.1\r\nHost: {host}\r\n{fields}X-99: v\r\n\r\n".encode())
        assert_refused(server, c, "http", 431, "too_many_fields")
    assert b"SMUGGLED" not in recorder.received


def test_max_header_fields_flag_sets_the_limit(start_portholed, recorder, start_porthole):
    server = start_portholed("--max-header-fields", "5")
    start_porthole("http", f"127.0.0.1:{recorder.port}", "--subdomain", "foo",
                   "--proto", "http", server=server)
    fields = "".join(f"X-{i}: v\r\n" for i in range(5))
    with connect(server, "http") as c:
        c.send(f"GET /SMUGGLED HTTP/1.1\r\nHost: {host_of(server)}\r\n{fields}\r\n".encode())
        assert_refused(server, c, "http", 431, "too_many_fields")
    assert recorder.received == b""


def test_header_limit_flag_sets_the_limit(start_portholed, recorder, start_porthole):
    server = start_portholed("--header-limit", "2048")
    start_porthole("http", f"127.0.0.1:{recorder.port}", "--subdomain", "foo",
                   "--proto", "http", server=server)
    with connect(server, "http") as c:
        c.send(f"GET /SMUGGLED HTTP/1.1\r\nHost: {host_of(server)}\r\nX-Big: {'a' * 2100}"
               "\r\n\r\n".encode())
        assert_refused(server, c, "http", 431, "header_limit")
    assert recorder.received == b""


# ---------------------------------------------------------------------------
# Slow heads (slowloris)
# ---------------------------------------------------------------------------

def test_head_sent_a_byte_a_second_is_cut_at_the_deadline(start_portholed, recorder,
                                                          start_porthole):
    server = start_portholed("--read-header-timeout", "3")
    start_porthole("http", f"127.0.0.1:{recorder.port}", "--subdomain", "foo",
                   "--proto", "http", server=server)
    head = f"GET /SMUGGLED HTTP/1.1\r\nHost: {host_of(server)}\r\nX-Slow: {'a' * 100}\r\n\r\n"
    with connect(server, "http") as c:
        t0 = time.monotonic()
        sent = 0
        c.sock.settimeout(0.5)
        closed = False
        while time.monotonic() - t0 < 15:
            try:
                c.sock.sendall(head[sent].encode())
                sent += 1
            except OSError:
                closed = True
                break
            try:
                data = c.sock.recv(65536)
            except TimeoutError:
                continue
            c.buf += data
            break
        elapsed = time.monotonic() - t0
        c.sock.settimeout(5)
        assert not closed, "closed without an answer"
        assert c.read_response().status == 408
        # Every byte is activity, yet the head as a whole had 3 s.
        assert 2.5 <= elapsed <= 6, f"408 after {elapsed:.1f}s with --read-header-timeout 3"
        assert sent < len(head)
    assert recorder.received == b""


def test_second_keep_alive_request_has_its_own_head_deadline(start_portholed, recorder,
                                                             start_porthole):
    server = start_portholed("--read-header-timeout", "2")
    start_porthole("http", f"127.0.0.1:{recorder.port}", "--subdomain", "foo",
                   "--proto", "http", server=server)
    host = host_of(server)
    with connect(server, "http") as c:
        c.send(f"GET /first HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        assert c.read_response().status == 200
        # Idle between requests is not the head's time: the next head's
        # deadline starts with its first byte.
        time.sleep(2.5)
        t0 = time.monotonic()
        c.send(f"GET /SMUGGLED HTTP/1.1\r\nHost: {host}\r\n".encode())
        resp = c.read_response()
        elapsed = time.monotonic() - t0
        assert resp.status == 408
        assert 1.5 <= elapsed <= 6, f"408 after {elapsed:.1f}s"
        assert c.closed_by_peer(5)
    assert b"SMUGGLED" not in recorder.received


def test_connection_that_sends_nothing_is_closed_at_the_head_deadline(start_portholed, recorder,
                                                                      start_porthole):
    server = start_portholed("--read-header-timeout", "2")
    start_porthole("http", f"127.0.0.1:{recorder.port}", "--subdomain", "foo",
                   "--proto", "http", server=server)
    with socket.create_connection(("127.0.0.1", server.http_port), timeout=15) as s:
        t0 = time.monotonic()
        assert s.recv(100) == b"", "nothing was asked: nothing is answered"
        elapsed = time.monotonic() - t0
    assert 1.5 <= elapsed <= 6, f"closed after {elapsed:.1f}s with --read-header-timeout 2"


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_200_slowloris_connections_are_closed_by_the_deadline_while_curl_is_served(
        scheme, start_portholed, recorder, start_porthole):
    timeout = 3
    server = start_portholed("--read-header-timeout", str(timeout))
    tunnel = start_porthole("http", f"127.0.0.1:{recorder.port}", "--subdomain", "foo",
                            server=server)
    host = host_of(server, scheme)
    head = f"GET /SMUGGLED HTTP/1.1\r\nHost: {host}\r\nX-Slow: {'a' * 200}\r\n\r\n".encode()
    n = 200
    conns: list[RawHTTP] = []
    try:
        t0 = time.monotonic()
        started = []
        for _ in range(n):
            started.append(time.monotonic())
            c = connect(server, scheme, timeout=20)
            c.send(head[:1])  # each connection's head starts at once
            conns.append(c)
        sel = selectors.DefaultSelector()
        for i, c in enumerate(conns):
            c.sock.setblocking(False)
            sel.register(c.sock, selectors.EVENT_READ, i)
        sent = [1] * n
        ended: dict[int, float] = {}
        answers: dict[int, bytes] = {}
        served_during = []
        next_byte = time.monotonic()
        while len(ended) < n and time.monotonic() - t0 < 30:
            now = time.monotonic()
            if now >= next_byte:  # one byte on every open connection, every 0.5 s
                for i, c in enumerate(conns):
                    if i not in ended:
                        try:
                            c.sock.send(head[sent[i]:sent[i] + 1])
                            sent[i] += 1
                        except (BlockingIOError, ssl.SSLWantWriteError):
                            pass
                        except OSError:
                            ended.setdefault(i, time.monotonic())
                next_byte = now + 0.5
                if not served_during and now - t0 > 1:
                    r = curl(f"{tunnel.url(scheme)}/during", cacert=server.ca, timeout=10)
                    served_during.append((r.returncode, r.status, r.body))
            for key, _ in sel.select(timeout=0.1):
                i = key.data
                try:
                    data = conns[i].sock.recv(65536)
                except (BlockingIOError, ssl.SSLWantReadError):
                    continue
                except OSError:
                    data = b""
                if data:
                    answers[i] = answers.get(i, b"") + data
                else:
                    ended.setdefault(i, time.monotonic())
                    sel.unregister(conns[i].sock)
        assert len(ended) == n, f"{n - len(ended)} slow connections still open after 30 s"
        assert served_during == [(0, 200, b"ok /during")], served_during
        late = {i: ended[i] - started[i] for i in ended if ended[i] - started[i] > timeout + 4}
        assert not late, f"closed long after the {timeout}s deadline: {late}"
        early = {i: ended[i] - started[i] for i in ended if ended[i] - started[i] < timeout - 1}
        assert not early, f"closed before the deadline: {early}"
        not_408 = [i for i in range(n) if not answers.get(i, b"").startswith(b"HTTP/1.1 408 ")]
        assert not not_408, f"{len(not_408)} got no 408, e.g. {answers.get(not_408[0])!r}"
        assert all(s < len(head) for s in sent)
    finally:
        for c in conns:
            c.close()
    assert b"SMUGGLED" not in recorder.received
    assert_tunnel_serves(server, tunnel)


# ---------------------------------------------------------------------------
# The local service's responses
# ---------------------------------------------------------------------------

class RawResponseBackend:
    """Answers every request with the same raw bytes, then closes."""

    name = "raw-response-backend"

    def __init__(self, response: bytes):
        self.response = response
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()
        register(self)

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                buf = b""
                while b"\r\n\r\n" not in buf:
                    data = conn.recv(65536)
                    if not data:
                        break
                    buf += data
                conn.sendall(self.response)
                time.sleep(0.5)

    def log_text(self) -> str:
        return f"127.0.0.1:{self.port} answers {self.response[:200]!r}"

    def stop(self) -> None:
        self.sock.close()


@pytest.mark.parametrize("response", [
    b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok",
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok",
    b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\nok",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nok\r\n0\r\n\r\n",
], ids=["bare_lf", "cl_and_te", "conflicting_cl", "bad_cl", "bad_chunk"])
def test_malformed_response_from_the_service_gets_502_and_both_sides_survive(
        response, server, start_porthole):
    backend = RawResponseBackend(response)
    client = start_porthole("http", f"127.0.0.1:{backend.port}", "--subdomain", "bad",
                            "--proto", "http", server=server)
    with RawHTTP(server.http_port, timeout=15) as c:
        c.send(f"GET /x HTTP/1.1\r\nHost: bad.localhost:{server.http_port}\r\n\r\n".encode())
        status_line = c._read_line()
        if b"chunked" in response and b"zz" in response:
            # The head was valid and went out; the body can only be cut.
            assert status_line.startswith(b"HTTP/1.1 200"), status_line
        else:
            assert status_line.startswith(b"HTTP/1.1 502"), status_line
        assert c.closed_by_peer(5)
    server.proc.wait_for(r"the local service's response is not valid HTTP")
    assert server.proc.running and client.proc.running
    # The client's capture of the exchange stopped, and the client goes on
    # relaying: the next request gets the same answer.
    r = curl(f"http://bad.localhost:{server.http_port}/again")
    assert r.status in (200, 502), r.stderr
    assert server.proc.running and client.proc.running
