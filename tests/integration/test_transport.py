"""How public connections travel between portholed and porthole.

By default the two negotiate porthole's "mux" extension: one multiplexed TLS
connection per client, a stream per public connection, with half-close and a
flow-control window per stream. `--no-mux` on either side falls back to the
ngrok 1.x base protocol: a pooled TLS proxy connection per public connection.
The core behaviours run on both (see the tests parametrized on `transport`);
this file holds what is specific to the choice of transport.
"""

import asyncio
import hashlib
import os
import re
import socket
import subprocess
import threading
import time
from urllib.parse import urlsplit

import pytest

from backends import DigestAtEOFBackend, downloads_intact
import harness
from harness import RawHTTP, curl, deterministic_bytes, server_mux_up_line

MUX_ONLY = pytest.mark.parametrize("transport", ["mux"], indirect=True)


@pytest.fixture
def tcp_server(start_portholed):
    """portholed whose tcp tunnels listen on 127.0.0.1, on ports the OS chooses."""
    return start_portholed("--tcp-bind-addr", "127.0.0.1")


def tcp_port_of(url: str) -> int:
    parts = urlsplit(url)
    assert parts.scheme == "tcp" and parts.hostname == "localhost", url
    return parts.port


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def assert_hello_flows(client, n: int = 3) -> None:
    """n requests, each on its own public connection, reach the backend."""
    for i in range(n):
        r = curl(f"{client.url()}/echo/req-{i}")
        assert (r.returncode, r.status, r.body) == (0, 200, f"req-{i}".encode()), r.stderr


# --------------------------------------------------------------------------
# Negotiation
# --------------------------------------------------------------------------

def test_default_client_and_server_both_log_a_multiplexed_connection(server, http_backend,
                                                                     start_porthole):
    client = start_porthole("http", f"127.0.0.1:{http_backend.port}", "--subdomain", "foo",
                            "--proto", "http", server=server)
    m = client.connected()
    assert re.fullmatch(r"porthole \S+, multiplexed", m["how"]), \
        f"the client's connected line does not say multiplexed: {m[0]!r}"
    # The server's line names the same client.
    server.proc.wait_for(server_mux_up_line(m["id"]), timeout=10)
    assert_hello_flows(client)


def test_client_no_mux_connects_without_multiplexing_and_traffic_flows(server, http_backend,
                                                                       start_porthole):
    client = start_porthole("http", f"127.0.0.1:{http_backend.port}", "--subdomain", "foo",
                            "--proto", "http", "--no-mux", server=server)
    m = client.connected()
    assert re.fullmatch(r"porthole \S+", m["how"]), \
        f"with --no-mux the client must connect with the base protocol: {m[0]!r}"
    assert_hello_flows(client)
    # By now a multiplexed connection would have been logged (it is opened
    # right after Auth, before any public connection).
    assert "multiplexed" not in client.proc.text()
    assert "multiplexed" not in server.proc.text()
    # Sequential requests share one kept connection to the service.
    assert http_backend.connections == 1


def test_server_no_mux_makes_default_client_fall_back_and_traffic_flows(start_portholed,
                                                                        http_backend,
                                                                        start_porthole):
    server = start_portholed("--no-mux")
    client = start_porthole("http", f"127.0.0.1:{http_backend.port}", "--subdomain", "foo",
                            "--proto", "http", server=server)
    m = client.connected()
    assert re.fullmatch(r"porthole \S+", m["how"]), \
        f"a server with --no-mux must not grant multiplexing: {m[0]!r}"
    assert_hello_flows(client)
    assert "multiplexed" not in client.proc.text()
    assert "multiplexed" not in server.proc.text()
    # Sequential requests share one kept connection to the service.
    assert http_backend.connections == 1


# --------------------------------------------------------------------------
# What only the multiplexed connection can do
# --------------------------------------------------------------------------

@MUX_ONLY
def test_half_close_reaches_a_local_service_that_answers_only_at_eof(tcp_server, start_porthole):
    """A public TCP client sends its request, half-closes (shutdown(SHUT_WR)),
    and waits for the answer; the local service reads until EOF and only then
    answers. With mux, the public EOF travels as a FIN on the stream and the
    client shuts down the sending half of its local connection, so the service
    sees EOF, answers, and the answer reaches the public client.

    Not run with the pool transport: the ngrok 1.x protocol cannot carry a
    half-close over a TLS proxy connection (closing the TLS stream ends both
    directions), so portholed keeps the proxy connection open for the answer
    and the local service never sees EOF -- it would wait until the idle
    time-out and the public client would get no answer."""
    backend = DigestAtEOFBackend()
    client = start_porthole("tcp", f"127.0.0.1:{backend.port}", server=tcp_server)
    port = tcp_port_of(client.url("tcp"))
    data = deterministic_bytes(1024 * 1024, seed=21)
    expected = f"{len(data)} {hashlib.sha256(data).hexdigest()}\n".encode()
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        s.sendall(data)  # the service reads as it arrives
        s.shutdown(socket.SHUT_WR)
        got = bytearray()
        deadline = time.monotonic() + 20
        while True:
            s.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = s.recv(4096)
            except TimeoutError:
                raise AssertionError(f"no EOF within 20s after the half-close; got {bytes(got)!r}"
                                     ) from None
            if not chunk:
                break
            got += chunk
    assert bytes(got) == expected, \
        f"sent {len(data)} bytes then SHUT_WR; expected answer {expected!r}, got {bytes(got)!r}"


@MUX_ONLY
def test_300_concurrent_tcp_connections_echo_64kib_with_one_server_socket_each(
        tcp_server, tcp_echo, start_porthole):
    """300 public TCP connections at once through one tcp tunnel each get their
    own 64 KiB back, and while they are open portholed holds about one socket
    per public connection: with mux they are streams on the one multiplexed
    connection. (With the pool transport each also takes a proxy connection:
    about twice as many sockets, so this is not run for pool.)"""
    n, size = 300, 64 * 1024
    client = start_porthole("tcp", f"127.0.0.1:{tcp_echo.port}", server=tcp_server)
    port = tcp_port_of(client.url("tcp"))
    pid = tcp_server.proc.pid
    before = open_fds(pid)

    async def echo_one(i: int):
        data = deterministic_bytes(size, seed=1000 + i)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(data)
        _, got = await asyncio.gather(writer.drain(), reader.readexactly(size))
        return writer, got == data

    async def run():
        results = await asyncio.gather(*(echo_one(i) for i in range(n)), return_exceptions=True)
        during = open_fds(pid)  # every connection that succeeded is still open
        for r in results:
            if not isinstance(r, BaseException):
                r[0].close()
        return results, during

    results, during = asyncio.run(asyncio.wait_for(run(), 90))
    errors = [(i, r) for i, r in enumerate(results) if isinstance(r, BaseException)]
    wrong = [i for i, r in enumerate(results) if not isinstance(r, BaseException) and not r[1]]
    assert not errors, f"{len(errors)} of {n} connections failed, e.g. {errors[:5]}"
    assert not wrong, f"{len(wrong)} of {n} connections got other bytes back, e.g. {wrong[:5]}"
    # One socket per public connection, no proxy connection: a little slack only.
    assert during - before <= n + 60, \
        (f"portholed had {before} open fds before and {during} with {n} public connections "
         f"open (+{during - before}; at most {n} + 60 expected with mux)")


class _PacedHTTP(RawHTTP):
    """A RawHTTP whose reads are paced (16 KiB per 20 ms, about 800 KB/s) until
    `fast` is set: a public client that reads slowly. `received` counts the
    bytes read; wait_received() waits for a count."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.fast = threading.Event()
        self.progress = threading.Condition()
        self.received = 0
        self.ended = False

    def _fill(self) -> bool:
        if not self.fast.is_set():
            self.fast.wait(0.02)  # the pace of a slow reader, not a wait for readiness
        data = self.sock.recv(65536 if self.fast.is_set() else 16384)
        with self.progress:
            self.received += len(data)
            self.ended = self.ended or not data
            self.progress.notify_all()
        if not data:
            return False
        self.buf += data
        return True

    def end(self) -> None:
        with self.progress:
            self.ended = True
            self.progress.notify_all()

    def wait_received(self, n: int, timeout: float) -> bool:
        with self.progress:
            return self.progress.wait_for(lambda: self.received >= n or self.ended, timeout)


@MUX_ONLY
def test_small_request_completes_while_a_slowly_read_50mib_download_is_in_flight(
        server, http_tunnel):
    """No head-of-line blocking between streams: a public client downloads 50 MiB
    (chunked by the backend) and reads it slowly, so the big stream's windows and
    buffers stay full; meanwhile small requests on other public connections,
    over the same multiplexed connection, are each answered within seconds."""
    big = 50 * 1024 * 1024
    host = f"foo.localhost:{server.http_port}"
    slow = _PacedHTTP(server.http_port, timeout=60)
    outcome: dict = {}

    def download():
        try:
            outcome["resp"] = slow.request("GET", f"/bytes/{big}", [("Host", host)])
        except BaseException as e:
            outcome["error"] = e
        finally:
            slow.end()

    t = threading.Thread(target=download, name="slow-download", daemon=True)
    t.start()
    timings = []
    try:
        for i in range(4):
            # Each small request a little further into the big download.
            mark = (i + 1) * 128 * 1024
            assert slow.wait_received(mark, 20), \
                f"the big download got only {slow.received} bytes in 20s (waiting for {mark})"
            assert "error" not in outcome, outcome
            t0 = time.monotonic()
            with RawHTTP(server.http_port, timeout=10) as c:
                resp = c.request("GET", f"/echo/small-{i}", [("Host", host)])
            elapsed = time.monotonic() - t0
            timings.append((round(elapsed, 3), slow.received))
            assert (resp.status, resp.body) == (200, f"small-{i}".encode()), f"small request {i}"
            assert elapsed < 5, f"small request {i} took {elapsed:.2f}s beside the big download"
            assert not slow.ended and slow.received < big, \
                "the big download was no longer in flight"
    finally:
        slow.fast.set()
    t.join(60)
    slow.close()
    assert not t.is_alive(), f"the big download did not finish within 60s ({slow.received} bytes)"
    assert "error" not in outcome, \
        f"big download failed after {slow.received} bytes: {outcome.get('error')!r}"
    resp = outcome["resp"]
    assert resp.status == 200
    assert len(resp.body) == big
    assert hashlib.sha256(resp.body).digest() == \
        hashlib.sha256(deterministic_bytes(big)).digest(), "the big download arrived corrupted"
    print(f"small requests (seconds, big bytes read by then): {timings}")


# --------------------------------------------------------------------------
# Several multiplexed connections (--mux-conns, extension "muxes")
# --------------------------------------------------------------------------

MUX_UP = r"multiplexed connection up client={id} peer=127\.0\.0\.1:(?P<port>\d+) connections=(?P<n>\d+)"


def mux_up_lines(server, client_id: str, count: int, since: int = 0) -> list:
    return server.proc.wait_for_all(MUX_UP.format(id=re.escape(client_id)), count, timeout=10,
                                    since=since)


def test_client_holds_several_multiplexed_connections_and_streams_keep_their_order(
        server, http_backend, start_porthole):
    client = start_porthole("http", f"127.0.0.1:{http_backend.port}", "--subdomain", "foo",
                            "--proto", "http", "--mux-conns", "3", server=server)
    lines = mux_up_lines(server, client.client_id, 3)
    assert sorted(int(m["n"]) for m in lines) == [1, 2, 3]
    assert len({m["port"] for m in lines}) == 3, "three connections from three ports"
    # Twelve 4 MiB downloads at once, spread over the three: each arrives whole
    # and in order (a block out of place changes its checksum).
    assert downloads_intact([client.url()] * 12, 4 * 1024 * 1024) == []
    # The server spread them: each connection carried at least one download
    # (the bytes the client sent on it).
    tunnel_port = server.tunnel_addr.rsplit(":", 1)[1]
    for m in lines:
        out = subprocess.run(["ss", "-tinH", "src", f"127.0.0.1:{m['port']}", "dport", "=",
                              tunnel_port], capture_output=True, text=True).stdout
        sent = re.search(r"bytes_acked:(\d+)", out)
        assert sent and int(sent[1]) >= 4 * 1024 * 1024, (m["port"], out)


def test_losing_one_of_several_multiplexed_connections_leaves_the_tunnel_serving(
        server, http_backend, start_porthole):
    client = start_porthole("http", f"127.0.0.1:{http_backend.port}", "--subdomain", "foo",
                            "--proto", "http", "--mux-conns", "2", server=server)
    cid = client.client_id
    lines = mux_up_lines(server, cid, 2)
    mark = server.proc.mark()
    victim = lines[0]["port"]
    tunnel_port = server.tunnel_addr.rsplit(":", 1)[1]
    # The client's end of one of them, cut as a dropped link would be.
    r = subprocess.run(["ss", "-K", "src", "127.0.0.1", "sport", "=", victim,
                        "dport", "=", tunnel_port], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    server.proc.wait_for(rf"multiplexed connection lost client={re.escape(cid)} "
                         rf"peer=127\.0\.0\.1:{victim} connections=1", since=mark)
    # The other one carries the traffic meanwhile, and the client opens the
    # lost one again.
    assert downloads_intact([client.url()] * 4, 1024 * 1024) == []
    again = mux_up_lines(server, cid, 1, since=mark)
    assert again[0]["n"] == "2" and again[0]["port"] != victim
    assert downloads_intact([client.url()] * 4, 1024 * 1024) == []


def test_a_client_holds_one_multiplexed_connection_per_thread(server, http_backend,
                                                               start_porthole):
    client = start_porthole("http", f"127.0.0.1:{http_backend.port}", "--subdomain", "foo",
                            "--proto", "http", "--threads", "3", server=server)
    lines = mux_up_lines(server, client.client_id, 3)
    assert sorted(int(m["n"]) for m in lines) == [1, 2, 3]
    assert downloads_intact([client.url()] * 12, 4 * 1024 * 1024) == []
    assert "connections=4" not in server.proc.text()
    # Each connection's bytes were moved by a thread of its own.
    assert harness.busy_threads(client.proc.pid) >= 3


def test_one_thread_holds_one_multiplexed_connection(server, http_backend, start_porthole):
    client = start_porthole("http", f"127.0.0.1:{http_backend.port}", "--subdomain", "foo",
                            "--proto", "http", "--threads", "1", server=server)
    (line,) = mux_up_lines(server, client.client_id, 1)
    assert line["n"] == "1"
    assert downloads_intact([client.url()] * 3, 1024 * 1024) == []
    assert "connections=2" not in server.proc.text()


def test_by_default_a_client_holds_at_most_four_multiplexed_connections(server, http_backend,
                                                                         start_porthole):
    # Each is a connection the server counts against the client's address.
    client = start_porthole("http", f"127.0.0.1:{http_backend.port}", "--subdomain", "foo",
                            "--proto", "http", "--threads", "6", server=server)
    assert sorted(int(m["n"]) for m in mux_up_lines(server, client.client_id, 4)) == [1, 2, 3, 4]
    assert downloads_intact([client.url()] * 8, 1024 * 1024) == []
    assert "connections=5" not in server.proc.text()
