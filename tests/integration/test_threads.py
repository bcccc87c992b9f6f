"""portholed and porthole serve on several threads (docs/THREADS.md): the
clients' multiplexed connections, and the public connections they carry, are
spread over portholed's threads; a public connection served on another thread
than the main one serves its one tunnel; /metrics adds up what every thread
counted."""

import re
import signal
import threading
import time

import harness
from backends import TCPEchoBackend, downloads_intact, echo_through
from test_metrics import scrape
from harness import RawHTTP, curl, deterministic_bytes

MUX_UP = (r"multiplexed connection up client={id} peer=\S+ connections=\d+ "
          r"thread=(?P<thread>\d+)")


def mux_threads(server, client, count: int) -> list[int]:
    """The portholed threads the client's `count` multiplexed connections went to."""
    lines = server.proc.wait_for_all(MUX_UP.format(id=re.escape(client.client_id)), count,
                                     timeout=10)
    return [int(m["thread"]) for m in lines]


def http_client(start_porthole, server, backend, sub: str, *args: str, proto: str = "http"):
    return start_porthole("http", f"127.0.0.1:{backend.port}", "--subdomain", sub,
                          "--proto", proto, *args, server=server)


def on_thread(start_porthole, server, backend, sub: str, thread: int, proto: str = "http"):
    """A client with one multiplexed connection, on portholed thread `thread`
    (clients take the threads in turn: the ones before it are started here)."""
    while True:
        client = http_client(start_porthole, server, backend, sub, "--threads", "1", proto=proto)
        if mux_threads(server, client, 1)[0] == thread:
            return client
        sub += "x"


def test_clients_go_to_the_servers_threads_in_turn_and_each_thread_carries_one(
        start_portholed, http_backend, start_porthole):
    server = start_portholed("--threads", "3")
    clients = [http_client(start_porthole, server, http_backend, f"c{i}", "--threads", "1")
               for i in range(3)]
    assert [mux_threads(server, c, 1)[0] for c in clients] == [0, 1, 2]
    assert downloads_intact([c.url() for c in clients for _ in range(3)], 4 * 1024 * 1024) == []
    # The bytes of each client were moved by a thread of portholed's own.
    assert harness.busy_threads(server.proc.pid) >= 3


def test_one_clients_connections_go_to_different_threads(start_portholed, http_backend,
                                                         start_porthole):
    server = start_portholed("--threads", "2")
    client = http_client(start_porthole, server, http_backend, "two", "--threads", "2")
    assert sorted(mux_threads(server, client, 2)) == [0, 1]
    assert downloads_intact([client.url()] * 6, 2 * 1024 * 1024) == []


def test_metrics_add_up_what_every_thread_counted(start_portholed, http_backend,
                                                  start_porthole):
    server = start_portholed("--threads", "2")
    client = on_thread(start_porthole, server, http_backend, "counted", 1)
    before = scrape(server)
    n, size = 20, 10000
    for i in range(n):
        r = curl(f"{client.url()}/stream/{size}")
        assert (r.returncode, r.status, len(r.body)) == (0, 200, size)
    after = scrape(server)
    # Streams were opened, and bytes relayed, on thread 1; /metrics shows them.
    assert after["porthole_proxy_pool_hits_total"] - before["porthole_proxy_pool_hits_total"] == n
    out = 'porthole_public_bytes_total{protocol="http",direction="out"}'
    assert after[out] - before[out] >= n * size
    opened = 'porthole_public_connections_opened_total{protocol="http"}'
    assert after[opened] - before[opened] == n


def test_a_connection_served_on_another_thread_serves_its_one_tunnel(
        start_portholed, http_backend, start_porthole):
    server = start_portholed("--threads", "2")
    pinned = on_thread(start_porthole, server, http_backend, "pinned", 1, proto="http+https")
    other = on_thread(start_porthole, server, http_backend, "other", 0)
    host = lambda c: c.url().split("://", 1)[1]  # noqa: E731
    with RawHTTP(server.http_port, timeout=20) as c:
        r = c.request("GET", "/echo/one", [("Host", host(pinned))])
        assert (r.status, r.body) == (200, b"one")
        r = c.request("GET", "/echo/two", [("Host", host(other))])
        assert r.status == 421
        assert b"open a new one" in r.body
        assert c.closed_by_peer(5)
    # A new connection is routed afresh.
    with RawHTTP(server.http_port, timeout=20) as c:
        r = c.request("GET", "/echo/three", [("Host", host(other))])
        assert (r.status, r.body) == (200, b"three")
    # HTTPS: routed by its SNI name; a Host of another tunnel is refused.
    name = pinned.url("https").split("://", 1)[1].split(":")[0]
    r = curl(f"https://{name}:{server.https_port}/echo/x",
             "--resolve", f"{name}:{server.https_port}:127.0.0.1", "--cacert", str(server.ca))
    assert (r.status, r.body) == (200, b"x")
    r = curl(f"https://{name}:{server.https_port}/echo/x",
             "--resolve", f"{name}:{server.https_port}:127.0.0.1", "--cacert", str(server.ca),
             "-H", f"Host: {host(other)}")
    assert r.status == 421


def test_tcp_tunnel_relayed_on_another_thread(start_portholed, tcp_range, http_backend,
                                              start_porthole):
    low, high = tcp_range
    server = start_portholed("--threads", "2", "--tcp-bind-addr", "127.0.0.1",
                             "--tcp-ports", f"{low}-{high}")
    on_thread(start_porthole, server, http_backend, "first", 0)
    echo = TCPEchoBackend()
    client = start_porthole("tcp", f"127.0.0.1:{echo.port}", "--threads", "1", server=server)
    assert mux_threads(server, client, 1) == [1]
    port = int(client.url("tcp").rsplit(":", 1)[1])
    data = deterministic_bytes(1024 * 1024, seed=7)
    before = scrape(server)
    assert echo_through(port, data) == data
    after = scrape(server)
    sent = 'porthole_public_bytes_total{protocol="tcp",direction="in"}'
    assert after[sent] - before[sent] == len(data)


def test_server_stopped_with_connections_open_on_its_threads_exits_0(
        start_portholed, http_backend, start_porthole):
    server = start_portholed("--threads", "2")
    client = on_thread(start_porthole, server, http_backend, "busy", 1)
    host = client.url().split("://", 1)[1]
    conns = []
    for _ in range(4):
        c = RawHTTP(server.http_port, timeout=20)
        c.send(f"GET /stall HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        conns.append(c)
    deadline = time.monotonic() + harness.scaled(10)
    while http_backend.log_text().count("stalling") < 4:
        assert time.monotonic() < deadline, http_backend.log_text()
        time.sleep(0.05)
    server.proc.popen.send_signal(signal.SIGTERM)
    rc = server.proc.wait_exit(timeout=10)
    for c in conns:
        c.close()
    assert rc == 0, f"portholed exited with {rc}: {server.proc.final_output()[-2000:]}"


def test_a_held_thread_holds_only_the_connections_it_serves(start_portholed, http_backend,
                                                            start_porthole):
    hold = round(harness.scaled(4))
    server = start_portholed("--threads", "2",
                             env={"PORTHOLE_TEST_HOLD_THREAD": f"1:{hold}"})
    free = on_thread(start_porthole, server, http_backend, "free", 0)
    held = on_thread(start_porthole, server, http_backend, "held", 1)
    mark = server.proc.mark()
    server.proc.popen.send_signal(signal.SIGUSR1)
    server.proc.wait_for(r"test hook: holding a thread thread=1", since=mark)
    finished: dict[str, float] = {}

    def fetch(name: str, url: str) -> None:
        r = curl(f"{url}/stream/{1024 * 1024}")
        assert (r.returncode, r.status) == (0, 200), r
        finished[name] = time.monotonic()

    waiting = threading.Thread(target=fetch, args=("held", held.url()))
    waiting.start()
    # Thread 0 serves its client's connections while thread 1 is held.
    for i in range(10):
        fetch(f"free{i}", free.url())
    assert "held" not in finished, "a connection of the held thread went on"
    assert not any("thread released" in line for line in server.proc.lines()[mark:])
    waiting.join(harness.scaled(30))
    assert "held" in finished
    server.proc.wait_for(r"test hook: thread released thread=1", since=mark)
