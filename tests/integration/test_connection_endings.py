"""How public connections end, attacked: a 408 whose write is stuck when the
client half-closes (the anonymous use-after-free of issue 16), and a storm of
connections that end at random points (FIN, RST, a reader that stops reading)
amid local answers (401, 404, 408, 431) and proxied ones, on HTTP and HTTPS,
over both transports. portholed must keep serving, end every connection, and
(under `make test-asan`) never touch freed memory: the sanitizer fixture fails
the test on any report."""

from __future__ import annotations

import base64
import os
import random
import re
import socket
import ssl
import struct
import threading
import time

import pytest

import harness
from harness import curl, scaled

USER = "alice:secret"


def metric(server, name: str, labels: str = "") -> float:
    r = curl(f"http://127.0.0.1:{server.admin_port}/metrics", timeout=10)
    assert r.status == 200, r.stderr
    m = re.search(rf"^{name}{re.escape(labels)} (\S+)$", r.body.decode(), re.M)
    assert m, f"no {name}{labels} in /metrics"
    return float(m[1])


def wait_public_connections(server, count: int, timeout: float) -> None:
    """Waits until portholed has `count` public connections open (http and https)."""
    deadline = time.monotonic() + scaled(timeout)
    active = {}
    while time.monotonic() < deadline:
        active = {p: metric(server, "porthole_public_connections_active", f'{{protocol="{p}"}}')
                  for p in ("http", "https")}
        if sum(active.values()) == count:
            return
        time.sleep(0.1)
    raise AssertionError(f"not {count} public connections open after {timeout}s: {active}")


def tight_socket(rcvbuf: int = 2048, mss: int = 536) -> socket.socket:
    """A TCP socket that takes little from the server: a small receive window
    and small segments, so what the server writes gets stuck."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, mss)
    return s


def tls_client(server, sock: socket.socket, host: str) -> ssl.SSLSocket:
    ctx = ssl.create_default_context(cafile=str(server.ca))
    return ctx.wrap_socket(sock, server_hostname=host)


@pytest.fixture
def attacked(start_portholed, http_backend, start_porthole, monkeypatch):
    """portholed with a 1 s head time-out (its free()d memory poisoned, so a
    use after free crashes a build without ASan too) and an https tunnel with
    basic auth, foo.localhost."""
    monkeypatch.setenv("MALLOC_PERTURB_", "165")
    server = start_portholed("--read-header-timeout", "1")
    client = start_porthole("http", f"127.0.0.1:{http_backend.port}", "--subdomain", "foo",
                            "--proto", "https", "--auth", USER, server=server)
    return server, client


def test_a_stuck_408_then_a_half_close_does_not_crash_the_server(attacked):
    # Issue 16, finding 1: pipelined unauthenticated requests fill the
    # connection with 401s, a partial head then times out, the 408 cannot be
    # written (the client reads nothing) and the client shuts down its sending
    # side. The 408's write must not outlive the stream it writes to. How many
    # 401s leave the 408 stuck depends on the kernel's buffers, so the
    # connections sweep the depth one by one across the window.
    server, client = attacked
    host = f"foo.localhost:{server.https_port}"
    request = f"GET / HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    mark = server.proc.mark()
    conns = []
    for depth in range(60, 211):
        raw = tight_socket()
        raw.settimeout(scaled(20))
        raw.connect(("127.0.0.1", server.https_port))
        conn = tls_client(server, raw, "foo.localhost")
        conn.sendall(request * depth + b"GET / HTTP/1.1\r\nHost: foo")
        conns.append(conn)
    # The connections whose 401s all went out time out on their partial head
    # one second after it came; the others stay stuck on a 401. Wait until
    # the time-outs stop coming.
    timed_out = r"public request head not complete in time; closing.* status=408"
    server.proc.wait_for(timed_out, timeout=30, since=mark)
    seen = -1
    while (now := len(re.findall(timed_out, "\n".join(server.proc.lines(since=mark))))) != seen:
        seen = now
        time.sleep(scaled(1.5))
    for conn in conns:
        try:
            conn.shutdown(socket.SHUT_WR)  # TLS close_notify, then the TCP FIN
        except OSError:
            pass  # the server may have closed it already
    # Each connection that timed out ends (its 408 is given up a few seconds
    # on); the others wait on their 401 until the close below resets them.
    wait_public_connections(server, len(conns) - seen, 30)
    for conn in conns:
        conn.close()
    wait_public_connections(server, 0, 30)
    assert server.proc.running, server.proc.final_output()[-3000:]
    r = curl(f"{client.url('https')}/hello", "-u", USER, cacert=server.ca)
    assert (r.returncode, r.status) == (0, 200), r.stderr


# ---------------------------------------------------------------------------
# A storm of connections ending at random points
# ---------------------------------------------------------------------------

STORM_SECONDS = float(os.environ.get("PORTHOLE_STORM_SECONDS", "6"))


def storm_requests(rng: random.Random, host: str, other: str) -> tuple[bytes, int]:
    """A pipelined burst mixing proxied requests and ones portholed answers
    itself; returns the bytes and how many requests are proxied."""
    good = "Basic " + base64.b64encode(USER.encode()).decode()
    out = b""
    proxied = 0
    for _ in range(rng.randint(1, 40)):
        kind = rng.choices(["proxied", "401", "404", "431", "body"], [6, 3, 1, 1, 2])[0]
        if kind == "proxied":
            out += f"GET /echo/p{rng.randint(0, 999)} HTTP/1.1\r\nHost: {host}\r\nAuthorization: {good}\r\n\r\n".encode()
            proxied += 1
        elif kind == "401":
            out += f"GET /x HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
        elif kind == "404":
            out += f"GET /x HTTP/1.1\r\nHost: {other}\r\n\r\n".encode()
            break  # portholed closes after a 404
        elif kind == "431":
            out += f"GET /x HTTP/1.1\r\nHost: {host}\r\nX-Big: {'a' * 70000}\r\n\r\n".encode()
            break  # and after a 431
        else:
            body = b"b" * rng.randint(0, 5000)
            out += (f"POST /upload HTTP/1.1\r\nHost: {host}\r\nAuthorization: {good}\r\n"
                    f"Content-Length: {len(body)}\r\n\r\n").encode() + body
            proxied += 1
    if rng.random() < 0.3:
        out += f"GET /partial HTTP/1.1\r\nHost: {host}".encode()[: rng.randint(1, 40)]  # a 408
    return out, proxied


def storm_connection(server, rng: random.Random) -> None:
    scheme = rng.choice(["http", "https"])
    port = server.http_port if scheme == "http" else server.https_port
    host = f"foo.localhost:{port}"
    data, _ = storm_requests(rng, host, f"nobody.localhost:{port}")
    reader = rng.choice(["reads", "reads-some", "never-reads"])
    ending = rng.choice(["fin", "rst", "close", "wait"])
    raw = tight_socket() if reader == "never-reads" else socket.socket()
    raw.settimeout(scaled(10))
    try:
        raw.connect(("127.0.0.1", port))
        conn = tls_client(server, raw, "foo.localhost") if scheme == "https" else raw
        cut = len(data) if rng.random() < 0.6 else rng.randint(0, len(data))
        conn.sendall(data[:cut])
        if reader == "reads":
            deadline = time.monotonic() + rng.uniform(0, 1.5)
            while time.monotonic() < deadline:
                conn.settimeout(max(0.01, deadline - time.monotonic()))
                if not conn.recv(65536):
                    break
        elif reader == "reads-some":
            conn.settimeout(0.2)
            conn.recv(rng.randint(1, 4096))
        else:
            time.sleep(rng.uniform(0, 1.5))
        if ending == "fin":
            conn.shutdown(socket.SHUT_WR)
            time.sleep(rng.uniform(0, 0.5))
        elif ending == "rst":
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        elif ending == "wait":
            time.sleep(rng.uniform(0, 1.5))
    except (OSError, ssl.SSLError):
        pass  # the server may close first: that is one of the endings tested
    finally:
        raw.close()


def run_storm(server, seconds: float, seed: int, workers: int = 12) -> int:
    deadline = time.monotonic() + seconds
    count = [0]
    lock = threading.Lock()

    def worker(n: int) -> None:
        rng = random.Random(seed * 1000 + n)
        while time.monotonic() < deadline:
            storm_connection(server, rng)
            with lock:
                count[0] += 1

    threads = [threading.Thread(target=worker, args=(n,), daemon=True) for n in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + scaled(60))
    assert not any(t.is_alive() for t in threads), "a storm worker hung"
    return count[0]


def storm(start_portholed, http_backend, start_porthole, seconds: float) -> None:
    # Short time-outs: a request cut mid-body is never answered by the
    # service, and ends by the response time-out.
    server = start_portholed("--read-header-timeout", "1", "--response-timeout", "2")
    client = start_porthole("http", f"127.0.0.1:{http_backend.port}", "--subdomain", "foo",
                            "--auth", USER, server=server)
    seed = int(os.environ.get("PORTHOLE_STORM_SEED", random.randrange(1 << 30)))
    print(f"storm seed {seed} (PORTHOLE_STORM_SEED={seed} repeats it)")
    n = run_storm(server, seconds, seed)
    wait_public_connections(server, 0, 20)
    # The storm met every kind of local answer it is made of.
    met = {kind: metric(server, "porthole_errors_total", f'{{kind="{kind}"}}')
           for kind in ("basic_auth_refused", "tunnel_not_found", "bad_request",
                        "header_timeout")}
    print(f"storm: {n} connections, local answers {met}")
    assert all(met.values()), (seed, n, met)
    assert server.proc.running, server.proc.final_output()[-3000:]
    for scheme in ("http", "https"):
        r = curl(f"{client.url(scheme)}/hello", "-u", USER, cacert=server.ca)
        assert (r.returncode, r.status) == (0, 200), (seed, r.stderr)


@pytest.mark.parametrize("transport", harness.TRANSPORTS, indirect=True)
def test_connections_ending_at_random_points_leave_a_server_that_serves(
        start_portholed, http_backend, start_porthole, transport):
    storm(start_portholed, http_backend, start_porthole, STORM_SECONDS)


@pytest.mark.soak
@pytest.mark.parametrize("transport", harness.TRANSPORTS, indirect=True)
def test_a_long_storm_of_connection_endings(start_portholed, http_backend, start_porthole,
                                            transport):
    storm(start_portholed, http_backend, start_porthole, 300)
