"""Faults of processes and of local services: a client or a server killed, a
local service that stalls, resets or stops half-way, a public client that
half-closes. Each test says what a public client sees, and that nothing is
held after (descriptors and memory from /proc). The link faults are in
test_link_faults.py, back-pressure in test_backpressure.py.
"""

from __future__ import annotations

import collections
import hashlib
import re
import socket
import threading
import time

import pytest

import harness
from backends import echo_through, stream_sha256
from faults import MEMORY_IS_MEANINGFUL, Download, assert_hello, report, usage, wait_fds
from harness import curl, urls_of

MIB = 1024 * 1024


# --------------------------------------------------------------------------
# A client killed in the middle of 50 transfers
# --------------------------------------------------------------------------

@pytest.mark.parametrize("transport", harness.TRANSPORTS, indirect=True)
def test_client_killed_during_50_transfers_frees_everything_and_a_restarted_one_gets_its_url(
        transport, server, http_backend, start_porthole):
    args = ("http", f"127.0.0.1:{http_backend.port}", "--subdomain", "crash", "--proto", "http")
    client = start_porthole(*args, server=server)
    url = client.url()
    assert_hello(url)
    pid = server.proc.pid
    rounds = []
    for n in range(2):
        idle = usage(pid)
        release = threading.Event()
        downloads = [Download(server.http_port, "crash.localhost", f"/stream/{64 * MIB}",
                              hold=release, timeout=30) for _ in range(50)]
        for d in downloads:
            assert d.started_body.wait(30), "a download got no response in time"
        busy = usage(pid)
        t_kill = time.monotonic()
        client.proc.kill()
        release.set()
        for d in downloads:
            d.join(45)
        t_closed = time.monotonic() - t_kill
        outcomes = collections.Counter(d.outcome for d in downloads)
        # Mid-body, a public client can only see its connection end early.
        assert set(outcomes) <= {"closed", "reset", "status 502"}, outcomes
        assert not any(d.is_alive() for d in downloads)

        # A client started again at once gets its URL back (it is held for
        # the killed one during the reconnect grace period).
        t_restart = time.monotonic()
        client = start_porthole(*args, server=server)
        t_up = time.monotonic() - t_restart
        assert client.urls == [url]
        assert_hello(url)
        after = wait_fds(pid, idle.fds)
        rounds.append((idle, busy, after))
        report(f"client SIGKILL round {n + 1} ({transport})", outcomes=dict(outcomes),
               closed_within=f"{t_closed:.2f}s", restarted_up_in=f"{t_up:.2f}s",
               server_idle=idle, server_busy=busy, server_after=after)
        assert after.fds <= idle.fds, f"portholed holds {after.fds - idle.fds} more descriptors"
    # Memory: the second round leaves no more behind than the first did.
    (_, _, first), (_, _, second) = rounds
    if MEMORY_IS_MEANINGFUL:
        assert second.rss_kib - first.rss_kib < 16 * 1024, (first, second)


def test_killed_client_started_again_resumes_its_session_and_random_url(server, http_backend,
                                                                        start_porthole):
    args = ("http", f"127.0.0.1:{http_backend.port}", "--proto", "http")
    first = start_porthole(*args, server=server)
    url = first.url()
    first_id = first.client_id
    mark = server.proc.mark()
    first.proc.kill()
    server.proc.wait_for(r"tunnel down .*url=" + re.escape(url), timeout=15, since=mark)

    again = start_porthole(*args, server=server)
    assert again.urls == [url]
    assert again.client_id == first_id
    assert_hello(url)
    # A second client started alike while it runs is another client.
    other = start_porthole(*args, server=server)
    assert other.client_id != first_id
    assert other.urls != [url]
    assert_hello(other.url())


def test_killed_tcp_client_started_again_gets_the_port_the_server_chose(start_portholed,
                                                                        tcp_echo,
                                                                        start_porthole):
    server = start_portholed("--tcp-bind-addr", "127.0.0.1")  # ports chosen by the OS
    first = start_porthole("tcp", f"127.0.0.1:{tcp_echo.port}", server=server)
    url = first.url("tcp")
    mark = server.proc.mark()
    first.proc.kill()
    server.proc.wait_for(r"tunnel down .*url=" + re.escape(url), timeout=15, since=mark)
    again = start_porthole("tcp", f"127.0.0.1:{tcp_echo.port}", server=server)
    assert again.urls == [url]
    data = harness.deterministic_bytes(65536, seed=9)
    assert echo_through(int(url.rsplit(":", 1)[1]), data) == data


# --------------------------------------------------------------------------
# The server killed and started again
# --------------------------------------------------------------------------

def test_server_killed_and_restarted_clients_come_back_alone_with_backoff_and_same_urls(
        start_portholed, tcp_range, http_backend, tcp_echo, start_porthole):
    low, high = tcp_range
    first = start_portholed("--tcp-bind-addr", "127.0.0.1", "--tcp-ports", f"{low}-{high}")
    web = start_porthole("http", f"127.0.0.1:{http_backend.port}", "--subdomain", "phoenix",
                         "--proto", "http", server=first)
    raw = start_porthole("tcp", f"127.0.0.1:{tcp_echo.port}", server=first)
    tcp_port = int(raw.url("tcp").rsplit(":", 1)[1])
    assert_hello(web.url())
    data = harness.deterministic_bytes(MIB, seed=3)
    assert echo_through(tcp_port, data) == data

    marks = {id(c): c.proc.mark() for c in (web, raw)}
    ups_before = {id(c): c.ready for c in (web, raw)}
    first.proc.kill()
    # Backoff: 1 s, then 2 s, then 4 s between attempts.
    delays = [int(m["s"]) for m in web.proc.wait_for_all(r"reconnecting in (?P<s>\d+)s", 3,
                                                         timeout=30, since=marks[id(web)])]
    assert delays == [1, 2, 4], delays
    t_start = time.monotonic()
    second = start_portholed(
        "--tcp-bind-addr", "127.0.0.1", "--tcp-ports", f"{low}-{high}",
        state_dir=first.state_dir, http_addr=f"127.0.0.1:{first.http_port}",
        https_addr=f"127.0.0.1:{first.https_port}", tunnel_addr=f"127.0.0.1:{first.tunnel_port}")
    t_ready = time.monotonic()
    for c in (web, raw):
        up = c.wait_tunnels(1, since=ups_before[id(c)], timeout=45)
        assert urls_of(up) == c.urls
        assert c.proc.running
    t_back = time.monotonic() - t_ready
    assert_hello(web.url())
    assert echo_through(tcp_port, data) == data
    report("server SIGKILL", backoff=delays, server_start=f"{t_ready - t_start:.2f}s",
           tunnels_back_after_ready=f"{t_back:.2f}s", server=usage(second.proc.pid))
    # The next attempt comes at most 8 s (the next backoff step) after the server is back.
    assert t_back < 8 + 5


def test_server_restarted_a_random_url_comes_back_or_a_new_one_when_another_client_took_it(
        start_portholed, http_backend, start_porthole):
    first = start_portholed()
    kept = start_porthole("http", f"127.0.0.1:{http_backend.port}", "--proto", "http",
                          server=first)
    lost = start_porthole("http", f"127.0.0.1:{http_backend.port}", "--proto", "http",
                          server=first)
    kept_url, lost_url = kept.url(), lost.url()
    assert kept_url != lost_url
    lost_name = lost_url.split("://", 1)[1].split(".", 1)[0]
    marks = {id(c): c.proc.mark() for c in (kept, lost)}
    ups_before = {id(c): c.ready for c in (kept, lost)}
    first.proc.kill()
    # Both clients are now waiting 8 s before their next attempt: time enough
    # for the new server to start and for a third client to take lost's name.
    for c in (kept, lost):
        c.proc.wait_for_all(r"reconnecting in 8s", 1, timeout=40, since=marks[id(c)])
    second = start_portholed(
        state_dir=first.state_dir, http_addr=f"127.0.0.1:{first.http_port}",
        https_addr=f"127.0.0.1:{first.https_port}", tunnel_addr=f"127.0.0.1:{first.tunnel_port}")
    thief = start_porthole("http", f"127.0.0.1:{http_backend.port}", "--proto", "http",
                           "--subdomain", lost_name, server=second)
    assert thief.url() == lost_url
    # The restarted server knows nothing of the first two: kept asks for the
    # name it had and gets it; lost's is taken, so it takes a new one.
    assert urls_of(kept.wait_tunnels(1, since=ups_before[id(kept)], timeout=30)) == [kept_url]
    lost.proc.wait_for(r"cannot have its earlier URL back \(.*already registered.*\); "
                       r"asking for a new one", timeout=30, since=marks[id(lost)])
    [new_url] = urls_of(lost.wait_tunnels(1, since=ups_before[id(lost)], timeout=30))
    assert new_url not in (lost_url, kept_url)
    for url in (kept_url, new_url, lost_url):
        assert_hello(url)
    assert kept.proc.running and lost.proc.running


# --------------------------------------------------------------------------
# A local service that stalls, resets, or stops half-way
# --------------------------------------------------------------------------

@pytest.mark.parametrize("transport", harness.TRANSPORTS, indirect=True)
def test_local_service_faults_end_only_their_own_connection(transport, start_portholed,
                                                            http_backend, start_porthole):
    server = start_portholed("--response-timeout", "2")
    client = start_porthole("http", f"127.0.0.1:{http_backend.port}", "--subdomain", "flaky",
                            "--proto", "http", server=server)
    url = client.url()
    # A big download keeps going on the same tunnel through all the faults.
    bystander = Download(server.http_port, "flaky.localhost", f"/stream/{32 * MIB}",
                         rate=4 * MIB, timeout=60)
    t_stall = time.monotonic()
    stalled = Download(server.http_port, "flaky.localhost", "/stall", timeout=20)

    reset = curl(f"{url}/reset", timeout=20)
    assert (reset.returncode, reset.status) == (0, 502), (reset.returncode, reset.status,
                                                          reset.stderr)
    cut = curl(f"{url}/cut/{MIB}", timeout=20)
    assert cut.returncode == 18, (cut.returncode, cut.stderr)  # curl: partial file
    assert (cut.status, len(cut.body)) == (200, MIB)
    assert_hello(url)

    stalled.join(30)
    t_stall = time.monotonic() - t_stall
    # Nothing came from the service: after --response-timeout, a 504 page.
    assert stalled.outcome == "status 504", (stalled.outcome, stalled.error)
    assert 2 <= t_stall < 6, t_stall
    bystander.join(60)
    assert bystander.outcome == "complete", (bystander.outcome, bystander.got)
    assert bystander.sha256 == stream_sha256(32 * MIB)
    report(f"local service faults ({transport})", reset=f"{reset.status}",
           cut=f"curl exit {cut.returncode} after {len(cut.body)} of {2 * MIB} bytes",
           stall=f"{stalled.status} after {t_stall:.1f}s", bystander=bystander.outcome,
           server=usage(server.proc.pid))


# --------------------------------------------------------------------------
# Half-close and back-pressure
# --------------------------------------------------------------------------

def answer_backend():
    """A TCP service: reads "n\\n", sends n deterministic bytes, closes."""
    import socketserver

    from backends import _TCPBackend

    class Handler(socketserver.StreamRequestHandler):
        def handle(self):
            n = int(self.rfile.readline())
            data = harness.deterministic_bytes(n, seed=5)
            self.wfile.write(data)

    class AnswerBackend(_TCPBackend):
        name = "answer-backend"
        handler = Handler

    return AnswerBackend()


@pytest.mark.parametrize("transport", harness.TRANSPORTS, indirect=True)
def test_tcp_client_that_half_closes_receives_the_whole_8mib_answer(transport, tcp_server,
                                                                    start_porthole):
    backend = answer_backend()
    client = start_porthole("tcp", f"127.0.0.1:{backend.port}", server=tcp_server)
    port = int(client.url("tcp").rsplit(":", 1)[1])
    n = 8 * MIB
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(b"%d\n" % n)
        s.shutdown(socket.SHUT_WR)
        h = hashlib.sha256()
        got = 0
        while data := s.recv(65536):
            got += len(data)
            h.update(data)
    assert got == n
    assert h.hexdigest() == hashlib.sha256(harness.deterministic_bytes(n, seed=5)).hexdigest()


