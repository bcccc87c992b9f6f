"""Protocol abuse against portholed, performed for real on loopback: floods of
half-open connections, clients that never authenticate, oversized frames,
ReqTunnel floods, RegProxy with ids that are not the sender's, idle proxy
connections. Each is bounded (closed in time, the server's descriptors back
near where they were, a log line) while an honest tunnel keeps answering.

The attackers connect from 127.0.0.2 and up (all of 127/8 is loopback on
Linux), the honest client and curl from 127.0.0.1, so that per-address limits
hit the attacker and not the honest side."""

import os
import re
import resource
import select
import socket
import ssl
import struct
import time

import pytest

import harness
import ngrok1
from harness import curl

HONEST_PATH = "/hello"


def tunnel_works(url: str) -> None:
    r = curl(f"{url}{HONEST_PATH}", timeout=20)
    assert (r.returncode, r.status, r.body) == (0, 200, b"hello"), r.stderr


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def wait_fds_at_most(pid: int, limit: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    n = fd_count(pid)
    while n > limit and time.monotonic() < deadline:
        time.sleep(0.1)
        n = fd_count(pid)
    return n


@pytest.fixture(autouse=True)
def enough_descriptors():
    """This test process opens thousands of sockets."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, 8192)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def open_from(src_ip: str, port: int, n: int, first_bytes: bytes = b"") -> list[socket.socket]:
    """n TCP connections from src_ip to 127.0.0.1:port that send `first_bytes`
    (a half-open TLS handshake when that is a bare record header) and then nothing."""
    socks = []
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind((src_ip, 0))
        s.settimeout(10)
        s.connect(("127.0.0.1", port))
        if first_bytes:
            s.sendall(first_bytes)
        socks.append(s)
    return socks


def wait_all_closed(socks: list[socket.socket], timeout: float) -> list[socket.socket]:
    """Waits until the server closed every socket (EOF or reset); returns those still open."""
    deadline = time.monotonic() + timeout
    pending = {s.fileno(): s for s in socks}
    poller = select.poll()
    for fd in pending:
        poller.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)
    while pending and time.monotonic() < deadline:
        for fd, _ in poller.poll(100):
            s = pending.get(fd)
            if s is None:
                continue
            try:
                s.setblocking(False)
                data = s.recv(1 << 16)
            except (BlockingIOError, ssl.SSLWantReadError):
                continue  # not closed: nothing (or only TLS session tickets) to read
            except OSError:
                data = b""
            if not data:
                poller.unregister(fd)
                del pending[fd]
    return list(pending.values())


def close_all(socks) -> None:
    for s in socks:
        try:
            s.close()
        except OSError:
            pass


# A TLS record header announcing a ClientHello of 512 bytes, then silence.
PARTIAL_CLIENT_HELLO = b"\x16\x03\x01\x02\x00"


@pytest.fixture
def abuse_server(start_portholed):
    """portholed with short deadlines so that the tests end quickly."""
    return start_portholed("--handshake-timeout", "3", "--first-message-timeout", "3")


@pytest.fixture
def honest(abuse_server, http_backend, start_porthole):
    return start_porthole("http", f"127.0.0.1:{http_backend.port}", "--subdomain", "honest",
                          "--proto", "http", server=abuse_server)


def baseline_fds(server, url: str) -> int:
    tunnel_works(url)
    return fd_count(server.proc.pid)


def test_2000_half_open_tls_connections_from_one_address_are_bounded(abuse_server, honest):
    server = abuse_server
    url = honest.url()
    base = baseline_fds(server, url)
    mark = server.proc.mark()
    t0 = time.monotonic()
    socks = open_from("127.0.0.2", server.tunnel_port, 1000)
    socks += open_from("127.0.0.2", server.tunnel_port, 1000, PARTIAL_CLIENT_HELLO)
    try:
        # Beyond the per-address limit (256), connections are closed at once.
        server.proc.wait_for(r"connection refused: the address has its limit open "
                             r"peer=127\.0\.0\.2:\d+ ip=127\.0\.0\.2 listener=tunnel limit=256 "
                             r"flag=--max-tunnel-conns-per-ip",
                             since=mark)
        tunnel_works(url)  # during
        assert wait_fds_at_most(server.proc.pid, base + 256 + 32, 5) <= base + 256 + 32
        # The rest when their handshake deadline (3 s) passes.
        still_open = wait_all_closed(socks, 3 + 5)
        assert not still_open, f"{len(still_open)} of 2000 still open after {time.monotonic() - t0:.1f}s"
        server.proc.wait_for(r"TLS handshake not done in time; closing peer=127\.0\.0\.2:\d+ "
                             r"timeout=3s",
                             since=mark)
        # A flood of 2000 gives a few lines, not thousands.
        refusals = [l for l in server.proc.lines(since=mark) if "address has its limit open" in l]
        assert 1 <= len(refusals) <= 20, len(refusals)
    finally:
        close_all(socks)
    assert wait_fds_at_most(server.proc.pid, base + 4, 10) <= base + 4
    tunnel_works(url)  # after
    assert server.proc.running and honest.proc.running


def test_half_open_connections_to_public_https_are_closed_at_the_handshake_deadline(
        abuse_server, honest):
    server = abuse_server
    url = honest.url()
    base = baseline_fds(server, url)
    mark = server.proc.mark()
    socks = open_from("127.0.0.3", server.https_port, 300, PARTIAL_CLIENT_HELLO)
    socks += open_from("127.0.0.3", server.http_port, 100, b"GET / HTTP/1.1\r\n")
    try:
        tunnel_works(url)
        still_open = wait_all_closed(socks, 15)
        assert not still_open, f"{len(still_open)} of 400 still open"
        server.proc.wait_for(r"TLS handshake not done in time; closing peer=127\.0\.0\.3:\d+ "
                             r"timeout=3s", since=mark)
    finally:
        close_all(socks)
    assert wait_fds_at_most(server.proc.pid, base + 4, 10) <= base + 4
    tunnel_works(url)


def test_public_connections_over_the_per_address_limit_are_refused_at_once(start_portholed,
                                                                           http_backend,
                                                                           start_porthole):
    server = start_portholed("--max-public-conns-per-ip", "50")
    honest = start_porthole("http", f"127.0.0.1:{http_backend.port}", "--subdomain", "honest",
                            "--proto", "http", server=server)
    mark = server.proc.mark()
    socks = open_from("127.0.0.4", server.http_port, 80)
    try:
        refused = wait_all_closed(socks[50:], 5)
        assert not refused, f"{len(refused)} of the 30 over the limit still open"
        assert len(wait_all_closed(socks[:50], 0.5)) == 50, "connections within the limit closed"
        server.proc.wait_for(r"address has its limit open peer=127\.0\.0\.4:\d+ ip=127\.0\.0\.4 "
                             r"listener=public limit=50 ", since=mark)
        tunnel_works(honest.url())  # other addresses are not affected
    finally:
        close_all(socks)


def test_a_full_handshake_table_cuts_off_the_oldest_so_new_clients_get_in(
        start_portholed, http_backend, start_porthole):
    server = start_portholed("--max-handshakes", "100", "--handshake-timeout", "60")
    first = start_porthole("http", f"127.0.0.1:{http_backend.port}", "--subdomain", "first",
                           "--proto", "http", server=server)
    base = baseline_fds(server, first.url())
    mark = server.proc.mark()
    socks = []
    for i in range(3):
        socks += open_from(f"127.0.0.{10 + i}", server.tunnel_port, 100, PARTIAL_CLIENT_HELLO)
    try:
        server.proc.wait_for(r"connections in their TLS handshake or first message at the limit; "
                             r"cutting off the oldest peer=\S+ limit=100 flag=--max-handshakes "
                             r"oldest=127\.0\.0\.1\d:\d+", since=mark)
        # The 200 oldest are cut off long before their 60 s deadline.
        assert not wait_all_closed(socks[:200], 10)
        # Their descriptors go as the server's cut-off handshakes end (the
        # client may see the shutdown a moment before).
        assert wait_fds_at_most(server.proc.pid, base + 100 + 16, 5) <= base + 100 + 16
        # While 100 half-open connections fill the table, a new client connects.
        second = start_porthole("http", f"127.0.0.1:{http_backend.port}", "--subdomain",
                                "second", "--proto", "http", server=server, name="second")
        tunnel_works(second.url())
        tunnel_works(first.url())
    finally:
        close_all(socks)


def auth_conn(server, client_id: str = "", name: str = "attacker") -> tuple[ngrok1.FrameConn, str]:
    """A raw ngrok 1.7 control connection, authenticated; returns it and its client id."""
    raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    raw.bind(("127.0.0.5", 0))
    raw.settimeout(10)
    raw.connect(("127.0.0.1", server.tunnel_port))
    tls = ngrok1.tls_client_context(server.ca).wrap_socket(raw, server_hostname=server.domain)
    conn = ngrok1.FrameConn(tls, name)
    conn.send(ngrok1.auth(client_id=client_id))
    resp = conn.read_frame()
    assert resp["Type"] == "AuthResp" and resp["Payload"]["Error"] == "", resp
    return conn, resp["Payload"]["ClientId"]


def tls_from(server, src_ip: str) -> ssl.SSLSocket:
    raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    raw.bind((src_ip, 0))
    raw.settimeout(10)
    raw.connect(("127.0.0.1", server.tunnel_port))
    return ngrok1.tls_client_context(server.ca).wrap_socket(raw, server_hostname=server.domain)


def test_clients_that_never_send_auth_are_closed_at_the_first_message_deadline(abuse_server,
                                                                               honest):
    server = abuse_server
    url = honest.url()
    base = baseline_fds(server, url)
    mark = server.proc.mark()
    socks = [tls_from(server, "127.0.0.6") for _ in range(100)]
    try:
        tunnel_works(url)
        assert not wait_all_closed(socks, 3 + 5)
        server.proc.wait_for(r"no first message in time; closing peer=127\.0\.0\.6:\d+ timeout=3s",
                             since=mark)
    finally:
        close_all(socks)
    assert wait_fds_at_most(server.proc.pid, base + 4, 10) <= base + 4
    tunnel_works(url)


def test_an_oversized_frame_after_auth_ends_that_control_connection(abuse_server, honest):
    server = abuse_server
    mark = server.proc.mark()
    conn, client_id = auth_conn(server)
    conn.send(struct.pack("<q", 2**40) + b'{"Type":"Ping","Payload":{')
    try:
        server.proc.wait_for(rf"control connection ended client={client_id} "
                             r"peer=127\.0\.0\.5:\d+ error=", since=mark)
        assert not wait_all_closed([conn.sock], 5)
    finally:
        conn.close()
    tunnel_works(honest.url())


def test_an_unexpected_message_after_auth_closes_the_session_with_a_reason(abuse_server, honest):
    server = abuse_server
    mark = server.proc.mark()
    conn, client_id = auth_conn(server)
    conn.send(ngrok1.start_proxy("http://honest.localhost", "1.2.3.4:5"))
    try:
        server.proc.wait_for(r"unexpected message on the control connection; closing it "
                             rf"client={client_id} peer=127\.0\.0\.5:\d+ type=StartProxy",
                             since=mark)
        assert not wait_all_closed([conn.sock], 5)
    finally:
        conn.close()
    tunnel_works(honest.url())


def test_1000_req_tunnels_get_errors_past_the_limit_and_the_client_stays(abuse_server, honest):
    server = abuse_server
    url = honest.url()
    base = baseline_fds(server, url)
    mark = server.proc.mark()
    conn, client_id = auth_conn(server)
    try:
        for i in range(1000):
            conn.send(ngrok1.req_tunnel(f"r{i}", "http", subdomain=f"flood{i}"))
        replies = []
        while len(replies) < 1000:
            m = conn.read_frame(timeout=20)
            if m["Type"] == "NewTunnel":
                replies.append(m["Payload"])
        ok = [r for r in replies if not r["Error"]]
        refused = [r for r in replies if r["Error"]]
        assert len(ok) == 256
        assert len(refused) == 744
        assert {r["Error"] for r in refused} == \
            {"Too many tunnels: this server allows 256 per client."}
        assert refused[0]["ReqId"] == "r256"
        tunnel_works(url)  # during
        # Still connected: it answers a Ping.
        conn.send(ngrok1.PING)
        while conn.read_frame()["Type"] != "Pong":
            pass
        lines = [l for l in server.proc.lines(since=mark) if 'ReqTunnel refused' in l and 'reason="Too many' in l]
        assert 1 <= len(lines) <= 20, len(lines)
        assert re.search(rf"ReqTunnel refused client={client_id} peer=127\.0\.0\.5:\d+ "
                         r'reason="Too many tunnels', lines[0])
    finally:
        conn.close()
    server.proc.wait_for(rf"client disconnected client={client_id} ", since=mark)
    assert wait_fds_at_most(server.proc.pid, base + 4, 10) <= base + 4
    tunnel_works(url)  # after


def test_reg_proxy_with_an_unknown_client_id_is_refused_and_logged(abuse_server, honest):
    server = abuse_server
    mark = server.proc.mark()
    bogus = "0123456789abcdef" * 2
    s = tls_from(server, "127.0.0.7")
    try:
        s.sendall(ngrok1.reg_proxy(bogus))
        assert not wait_all_closed([s], 5)
        server.proc.wait_for(rf"RegProxy for an unknown client; closing peer=127\.0\.0\.7:\d+ "
                             rf"client={bogus}", since=mark)
    finally:
        s.close()
    # A huge id is refused as well, and never copied whole into the log (its
    # line may be held back by the log's rate limit: a second one within 1 s).
    s = tls_from(server, "127.0.0.7")
    try:
        s.sendall(ngrok1.reg_proxy("x" * 50_000))
        assert not wait_all_closed([s], 5)
    finally:
        s.close()
    tunnel_works(honest.url())
    assert max(len(l) for l in server.proc.lines(since=mark)) < 1000
    tunnel_works(honest.url())


def test_a_client_cannot_choose_a_guessable_id_to_share_with_its_proxies(abuse_server, honest):
    server = abuse_server
    conn, client_id = auth_conn(server, client_id="victim")
    try:
        assert client_id != "victim"
        assert re.fullmatch(r"[0-9a-f]{32}", client_id), client_id
        # A proxy that names the short id is refused: nobody has it.
        mark = server.proc.mark()
        s = tls_from(server, "127.0.0.7")
        s.sendall(ngrok1.reg_proxy("victim"))
        assert not wait_all_closed([s], 5)
        s.close()
        server.proc.wait_for(r"RegProxy for an unknown client; closing .* client=victim", since=mark)
    finally:
        conn.close()


def test_another_clients_id_under_another_authtoken_gets_a_fresh_id(start_portholed):
    server = start_portholed(authtokens=["alice", "mallory"])

    def auth(user, client_id=""):
        s = tls_from(server, "127.0.0.8")
        c = ngrok1.FrameConn(s)
        c.send(ngrok1.auth(user=user, client_id=client_id))
        p = c.read_frame()["Payload"]
        assert p["Error"] == "", p
        return c, p["ClientId"]

    alice, alice_id = auth("alice")
    mallory, mallory_id = auth("mallory", alice_id)
    try:
        assert mallory_id != alice_id
        # Alice is still connected.
        alice.send(ngrok1.PING)
        while alice.read_frame()["Type"] != "Pong":
            pass
    finally:
        alice.close()
        mallory.close()


def test_surplus_and_idle_proxy_connections_are_closed(start_portholed, http_backend,
                                                       start_porthole):
    server = start_portholed("--pool-idle-timeout", "2", "--heartbeat-timeout", "9")
    honest = start_porthole("http", f"127.0.0.1:{http_backend.port}", "--subdomain", "honest",
                            "--proto", "http", server=server)
    url = honest.url()
    base = baseline_fds(server, url)
    mark = server.proc.mark()
    conn, client_id = auth_conn(server)
    proxies = []
    try:
        # 100 proxy connections for a pool of 10 (ngrok 1.7 gets the server's
        # --pool-size, 10): the surplus is closed as it arrives.
        for _ in range(100):
            s = tls_from(server, "127.0.0.5")
            s.sendall(ngrok1.reg_proxy(client_id))
            proxies.append(s)
        server.proc.wait_for(r"more proxy connections than the client's pool \(and takers\); closed "
                             rf"the surplus peer=127\.0\.0\.5:\d+ client={client_id} pool=10 "
                             r"surplus=1", since=mark)
        assert len(wait_all_closed(proxies[:90], 5)) == 0
        conn.send(ngrok1.PING)
        tunnel_works(url)  # during
        # The 10 kept are never used: replaced after the idle limit (2 s,
        # checked every 3 s, a third of the heartbeat time-out).
        assert not wait_all_closed(proxies[90:], 2 + 3 + 3)
    finally:
        close_all(proxies)
        conn.close()
    assert wait_fds_at_most(server.proc.pid, base + 4, 15) <= base + 4
    tunnel_works(url)  # after


def test_tunnel_clients_on_a_port_shared_with_https_have_the_tunnel_ports_limit(
        start_portholed, http_backend, start_porthole):
    port = harness.os_port()
    server = start_portholed("--max-tunnel-conns-per-ip", "20", https_addr=f"127.0.0.1:{port}",
                             tunnel_addr=f"127.0.0.1:{port}")
    honest = start_porthole("http", f"127.0.0.1:{http_backend.port}", "--subdomain", "honest",
                            server=server)
    mark = server.proc.mark()
    # Tunnel clients by SNI (the server's own name): 20 are let in, the rest closed.
    socks = [tls_from(server, "127.0.0.9") for _ in range(30)]
    try:
        server.proc.wait_for(r"address has its limit open peer=127\.0\.0\.9:\d+ ip=127\.0\.0\.9 "
                             r"listener=tunnel limit=20 ", since=mark)
        assert not wait_all_closed(socks[20:], 5)
        # Public HTTPS on the same port, from the same address, is not counted with them.
        r = curl(f"{honest.url('https')}{HONEST_PATH}", "--interface", "127.0.0.9",
                 cacert=server.ca, timeout=20)
        assert (r.returncode, r.status, r.body) == (0, 200, b"hello"), r.stderr
    finally:
        close_all(socks)


@pytest.mark.parametrize("transport", harness.TRANSPORTS, indirect=True)
def test_public_connections_past_the_clients_limit_get_503_and_a_freed_slot_is_reused(
        transport, start_portholed, http_backend, start_porthole):
    server = start_portholed("--max-conns-per-client", "3")
    client = start_porthole("http", f"127.0.0.1:{http_backend.port}", "--subdomain", "busy",
                            "--proto", "http", server=server)
    host = f"busy.localhost:{server.http_port}"
    request = f"GET /hello HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()

    def ask(sock: socket.socket) -> bytes:
        sock.sendall(request)
        got = b""
        while b"\r\n\r\n" not in got or not got.endswith((b"hello", b"</html>\n", b"later.")):
            chunk = sock.recv(65536)
            if not chunk:
                break
            got += chunk
        return got

    # Three keep-alive connections, each answered and held open: the limit.
    held = []
    for _ in range(3):
        s = socket.create_connection(("127.0.0.1", server.http_port), timeout=20)
        held.append(s)
        assert ask(s).startswith(b"HTTP/1.1 200 "), "a connection within the limit"
    mark = server.proc.mark()
    with socket.create_connection(("127.0.0.1", server.http_port), timeout=20) as fourth:
        answer = ask(fourth)
    assert answer.startswith(b"HTTP/1.1 503 "), answer[:200]
    assert b"busy.localhost" in answer and b"as many open connections" in answer, answer
    server.proc.wait_for(r"public connection refused: the client has its limit open "
                         r"url=http://busy\.localhost:\d+ peer=127\.0\.0\.1:\d+ client=\w+ open=3 ",
                         since=mark)
    # The held ones still work; one closed frees its slot for a newcomer.
    assert ask(held[0]).startswith(b"HTTP/1.1 200 ")
    held.pop().close()
    deadline = time.monotonic() + 15
    while True:
        with socket.create_connection(("127.0.0.1", server.http_port), timeout=20) as again:
            answer = ask(again)
        if answer.startswith(b"HTTP/1.1 200 ") or time.monotonic() > deadline:
            break
        time.sleep(0.1)  # the server has not yet seen the close: no event to wait on
    assert answer.startswith(b"HTTP/1.1 200 "), answer[:200]
    close_all(held)
    assert client.proc.running and server.proc.running


def test_tcp_connections_past_the_clients_limit_are_closed_and_counted_once_gone(
        start_portholed, tcp_echo, start_porthole):
    server = start_portholed("--max-conns-per-client", "2", "--tcp-bind-addr", "127.0.0.1")
    client = start_porthole("tcp", f"127.0.0.1:{tcp_echo.port}", server=server)
    port = int(client.urls[0].rsplit(":", 1)[1])

    def echoes(sock: socket.socket) -> bool:
        got = b""
        try:
            sock.sendall(b"ping")
            while len(got) < 4:
                chunk = sock.recv(4)
                if not chunk:
                    return False
                got += chunk
        except ConnectionError:
            return False  # closed by the server (a reset)
        return got == b"ping"

    held = [socket.create_connection(("127.0.0.1", port), timeout=20) for _ in range(2)]
    assert all(echoes(s) for s in held)
    mark = server.proc.mark()
    with socket.create_connection(("127.0.0.1", port), timeout=20) as third:
        assert not echoes(third), "a connection past the limit was carried"
    server.proc.wait_for(r"public connection refused: the client has its limit open "
                         r"url=tcp://localhost:\d+ peer=127\.0\.0\.1:\d+ client=\w+ open=2 ",
                         since=mark)
    assert all(echoes(s) for s in held)
    close_all(held)
    assert client.proc.running and server.proc.running


def test_a_client_that_stops_reading_its_control_connection_is_dropped(abuse_server, honest):
    # Pings answered with Pongs it never reads: once its socket buffers are
    # full, the Pongs queue up in the server, at most 4096 of them.
    server = abuse_server
    mark = server.proc.mark()
    conn, client_id = auth_conn(server)
    conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    batch = ngrok1.PING * 1000
    sent = 0
    try:
        while sent < 2_000_000:
            try:
                conn.send(batch)
            except OSError:
                break  # closed by the server: what this test waits for
            sent += 1000
        server.proc.wait_for(r"messages queued and unread; closing the client's control connection "
                             rf"client={client_id} queued=4096", since=mark, timeout=20)
    finally:
        conn.close()
    tunnel_works(honest.url())
    assert server.proc.running
