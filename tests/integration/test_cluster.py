"""Several portholed nodes sharing one tunnel namespace in a real etcd
(docs/CLUSTER.md): any node serves any tunnel, relaying to the node whose
client holds it; a name has one owner, whichever node is asked; the
node-to-node listener takes only the cluster's certificates and the claim's
current revision."""

import asyncio
import http.client
import json
import os
import signal
import socket
import ssl
import struct
import subprocess
import threading
import time
import urllib.parse

import pytest
import websockets

import backends
import cluster
import harness
import ngrok1
from harness import curl


@pytest.fixture
def etcd(tmp_path):
    return cluster.start_etcd(tmp_path)


@pytest.fixture
def nodes(tmp_path, home, etcd):
    """Three nodes n1..n3 on 127.0.0.1..3 joined through one etcd."""
    low = harness.os_port_range(4)
    c = cluster.Cluster(f"etcd://{etcd.endpoint}", cluster.make_cluster_ca(tmp_path / "pki", 3),
                        tmp_path, home, tcp_ports=(low, low + 3))
    for i in (1, 2, 3):
        c.start_node(i)
    return c


def get(node, host, path="/hello", scheme="http", *args, cacert=None):
    return curl(cluster.public_url(node, host, scheme, path), *cluster.resolve(node, host, scheme),
                *args, cacert=cacert, timeout=20)


def test_any_node_serves_an_http_tunnel_held_on_another(nodes, http_backend, start_porthole):
    n1, n2, n3 = nodes.nodes
    start_porthole("http", f"127.0.0.1:{http_backend.port}", "--subdomain", "app",
                   "--proto", "http", server=n1)
    for node in (n1, n2, n3):
        r = get(node, "app.localhost")
        assert (r.returncode, r.status, r.body) == (0, 200, b"hello"), (node.proc.name, r.stderr)
    # The local service is told the public client's address, not a node's.
    r = get(n3, "app.localhost", "/headers")
    assert r.status == 200, r.stderr
    assert json.loads(r.body)["headers"]["x-forwarded-for"] == "127.0.0.1"


def test_https_by_sni_through_another_node(nodes, http_backend, start_porthole):
    n1, n2, _ = nodes.nodes
    start_porthole("http", f"127.0.0.1:{http_backend.port}", "--subdomain", "secure",
                   "--proto", "https", server=n1)
    r = get(n2, "secure.localhost", "/headers", "https", cacert=nodes.ca)
    assert (r.returncode, r.status) == (0, 200), r.stderr
    assert json.loads(r.body)["headers"]["x-forwarded-proto"] == "https"


def test_keep_alive_requests_through_another_node(nodes, http_backend, start_porthole):
    n1, _, n3 = nodes.nodes
    start_porthole("http", f"127.0.0.1:{http_backend.port}", "--subdomain", "ka",
                   "--proto", "http", server=n1)
    with harness.RawHTTP(n3.http_port, host=n3.ip) as conn:
        for _ in range(3):
            r = conn.request("GET", "/hello", {"Host": "ka.localhost"})
            assert (r.status, r.body) == (200, b"hello")


def test_tcp_tunnel_reaches_its_client_through_every_node(nodes, tcp_echo, start_porthole):
    n1, n2, n3 = nodes.nodes
    client = start_porthole("tcp", str(tcp_echo.port), server=n2)
    port = int(client.url("tcp").rsplit(":", 1)[1])
    data = harness.deterministic_bytes(256 * 1024, seed=7)
    for ip in ("127.0.0.1", "127.0.0.2", "127.0.0.3"):
        # Every node opens the port once it learns of the tunnel from etcd.
        # (A relayed connection does not carry a half-close: read the echo
        # back by its length, as over the ngrok 1.x proxy connections.)
        with cluster.connect_when_open((ip, port)) as s:
            s.sendall(data)
            buf = bytearray()
            while len(buf) < len(data) and (chunk := s.recv(65536)):
                buf += chunk
        assert bytes(buf) == data, ip


def test_websocket_through_another_node(nodes, ws_backend, start_porthole):
    n1, n2, _ = nodes.nodes
    start_porthole("http", f"127.0.0.1:{ws_backend.port}", "--subdomain", "ws",
                   "--proto", "http", server=n1)
    url = f"ws://ws.localhost:{n2.http_port}/echo"
    messages = ["hello", "x" * 100_000, "after a big one"]

    async def talk():
        sock = socket.create_connection((n2.ip, n2.http_port), timeout=10)
        async with websockets.connect(url, sock=sock, open_timeout=10, max_size=None) as ws:
            got = []
            for m in messages:
                await ws.send(m)
                got.append(await asyncio.wait_for(ws.recv(), 10))
            return got

    assert asyncio.run(asyncio.wait_for(talk(), 45)) == messages


def tunnels_up(client) -> int:
    try:
        ready = json.loads(client.ready_file.read_text())
    except (FileNotFoundError, ValueError):
        return 0
    return len(ready["tunnels"]) if ready.get("pid") == client.proc.pid else 0


def up_or_refused(client, timeout: float = 15) -> bool:
    """True once the client has its tunnel, False if it exits (refused)."""
    deadline = time.monotonic() + harness.scaled(timeout)
    while client.proc.running:
        if tunnels_up(client) == 1:
            return True
        assert time.monotonic() < deadline, "the client neither got its tunnel nor gave up"
        time.sleep(0.01)
    return False


def test_a_name_is_won_by_exactly_one_of_two_clients_on_two_nodes(nodes, http_backend,
                                                                   start_porthole):
    n1, n2, _ = nodes.nodes
    for i in range(50):
        sub = f"race{i}"
        args = ("http", f"127.0.0.1:{http_backend.port}", "--subdomain", sub, "--proto", "http")
        pair = [start_porthole(*args, server=n, wait_up=False) for n in (n1, n2)]
        # Until one client has its tunnel and the other has given up.
        deadline = time.monotonic() + harness.scaled(15)
        while True:
            up = [c for c in pair if c.proc.running and tunnels_up(c) == 1]
            out = [c for c in pair if not c.proc.running]
            if len(out) == 2:
                pytest.fail(f"round {i}: neither client kept {sub}: {pair[0].proc.text()}")
            if len(up) == 2:
                pytest.fail(f"round {i}: both clients have {sub}")
            if len(up) == 1 and len(out) == 1:
                break
            assert time.monotonic() < deadline, f"round {i}: no outcome in time"
            time.sleep(0.01)
        winner, loser = up[0], out[0]
        assert loser.proc.wait_exit() != 0
        assert "already registered" in loser.proc.text("stderr"), loser.proc.text()
        r = get(n1 if winner is pair[1] else n2, f"{sub}.localhost")
        assert (r.returncode, r.status) == (0, 200), (i, r.stderr)
        winner.proc.stop()


# ---- losing a node ----

def test_a_client_whose_node_is_killed_is_back_on_another_node_with_its_url(
        nodes, http_backend, start_porthole):
    n1, n2, n3 = nodes.nodes
    # One address given; the node tells the client of the others. One
    # connection: the client reconnects.
    client = start_porthole("http", f"127.0.0.1:{http_backend.port}", "--proto", "http",
                            "--no-standby", server=n1)
    host = urllib.parse.urlsplit(client.url()).hostname
    before = client.ready
    n1.proc.kill()
    killed = time.monotonic()
    after = client.wait_tunnels(1, since=before, timeout=5)
    took = time.monotonic() - killed
    assert urllib.parse.urlsplit(after["tunnels"][0]["url"]).hostname == host
    assert took < 5, took
    for node in (n2, n3):
        r = get(node, host)
        assert (r.returncode, r.status, r.body) == (0, 200, b"hello"), r.stderr


def relays_out(node: harness.Server) -> float:
    r = curl(f"http://127.0.0.1:{node.admin_port}/metrics", timeout=10)
    line = next(x for x in r.body.decode().splitlines()
                if x.startswith('porthole_cluster_relayed_connections_total{direction="out"}'))
    return float(line.rsplit(" ", 1)[1])


def node_of(nodes, addr: str) -> harness.Server:
    """The node whose tunnel listener is `addr` (host:port)."""
    return next(n for n in nodes.nodes if n.tunnel_addr == addr)


def standing_by(ready: dict) -> bool:
    return ready.get("standby") is not None and len(ready["tunnels"]) > 0


def test_a_client_keeps_a_standby_connection_that_serves_its_tunnels_on_another_node(
        nodes, http_backend, tcp_echo, start_porthole):
    n1, n2, n3 = nodes.nodes
    web = start_porthole("http", f"127.0.0.1:{http_backend.port}", "--subdomain", "twice",
                         "--proto", "http", server=n1, wait_up=False)
    ready = web.wait_tunnels(standing_by)
    other = node_of(nodes, ready["standby"])
    assert other is not n1 and ready["server"] == n1.tunnel_addr
    # The standby node serves the name from its own connection to the client:
    # no relay to n1.
    relayed_before = relays_out(other)
    for i in range(5):
        r = get(other, "twice.localhost", f"/echo/s{i}")
        assert (r.status, r.body) == (200, f"s{i}".encode()), r.stderr
    assert relays_out(other) == relayed_before
    other.proc.wait_for(r"tunnel standing by client=\S+ url=http://twice\.localhost")
    # A tcp tunnel too.
    ssh = start_porthole("tcp", f"127.0.0.1:{tcp_echo.port}", server=n1, wait_up=False)
    ready = ssh.wait_tunnels(standing_by)
    port = int(ready["tunnels"][0]["url"].rsplit(":", 1)[1])
    standby_node = node_of(nodes, ready["standby"])
    with cluster.connect_when_open((standby_node.ip, port)) as c:
        c.sendall(b"ping\n")
        assert c.recv(16) == b"ping\n"


def test_with_two_connections_the_kill_of_a_node_fails_no_request_started_after_it(
        nodes, http_backend, start_porthole):
    n1, n2, n3 = nodes.nodes
    client = start_porthole("http", f"127.0.0.1:{http_backend.port}", "--subdomain", "steady",
                            "--proto", "http", server=n1, wait_up=False)
    before = client.wait_tunnels(standing_by)
    standby = node_of(nodes, before["standby"])
    third = next(n for n in (n2, n3) if n is not standby)
    results, stop = [], threading.Event()

    def load(node):
        conn = None
        i = 0
        while not stop.is_set():
            started = time.monotonic()
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(node.ip, node.http_port, timeout=10)
                conn.request("GET", f"/echo/{node.proc.name}-{i}",
                             headers={"Host": "steady.localhost"})
                resp = conn.getresponse()
                body = resp.read()
                ok = resp.status == 200 and body == f"{node.proc.name}-{i}".encode()
                results.append((started, ok, f"{node.proc.name}: {resp.status} {body[:120]!r}"))
            except (OSError, http.client.HTTPException) as e:
                results.append((started, False, repr(e)))
                conn = None
            i += 1

    workers = [threading.Thread(target=load, args=(n,)) for n in (standby, third)]
    for w in workers:
        w.start()
    try:
        time.sleep(1)  # load before the kill (a duration of load, not a wait for readiness)
        n1.proc.kill()
        killed = time.monotonic()
        after = client.wait_tunnels(lambda r: r["server"] == standby.tunnel_addr, since=before,
                                    timeout=5)
        noticed = time.monotonic()  # the client says so (its ready file, read every 50 ms)
        took = noticed - killed
        time.sleep(2)  # load after the takeover
    finally:
        stop.set()
        for w in workers:
            w.join()
    assert after["tunnels"] == before["tunnels"]
    # Requests in flight through n1 when it died may fail (one per load
    # thread at most); none started once the client has moved.
    failed_in_flight = [(round(t - killed, 3), why) for t, ok, why in results
                        if killed - 1 <= t < noticed and not ok]
    failed_after = [(round(t - killed, 3), why) for t, ok, why in results
                    if t >= noticed and not ok]
    served_after = [r for r in results if r[0] >= noticed and r[1]]
    assert not failed_after, failed_after[:5]
    assert len(failed_in_flight) <= len(workers), failed_in_flight
    assert len(served_after) > 50
    assert took < 1, took
    standby.proc.wait_for(r"standby connection promoted")
    client.proc.wait_for(r"the standby connection to server \S+ takes over", stream="stderr")
    # A new standby, on the third node.
    again = client.wait_tunnels(standing_by, since=after, timeout=10)
    assert again["standby"] == third.tunnel_addr


def test_a_standby_connection_is_refused_what_is_not_its_clients(nodes, http_backend,
                                                                 start_porthole):
    n1, n2, _ = nodes.nodes
    start_porthole("http", f"127.0.0.1:{http_backend.port}", "--subdomain", "mine",
                   "--proto", "http", "--no-standby", server=n1)

    def standby_auth(node, client_id, features=("mux", "standby")):
        raw = socket.create_connection((node.ip, node.tunnel_port), timeout=10)
        tls = ngrok1.tls_client_context(node.ca).wrap_socket(raw, server_hostname=node.domain)
        conn = ngrok1.FrameConn(tls, "standby")
        conn.send(ngrok1.message("Auth", {
            "Version": "2", "MmVersion": "1.7", "User": "", "Password": "", "OS": "linux",
            "Arch": "amd64", "ClientId": client_id,
            "Porthole": {"Version": "0.1.0", "Features": list(features), "Standby": True}}))
        return conn, conn.read_frame()["Payload"]

    # Another client's name: the standby connection is told no.
    conn, resp = standby_auth(n2, "a" * 32)
    assert resp["Error"] == "" and "standby" in resp["Porthole"]["Features"], resp
    conn.send(ngrok1.req_tunnel("r1", "http", subdomain="mine"))
    answer = conn.read_frame()["Payload"]
    assert answer["Error"].startswith("Cannot stand by for http://mine.localhost"), answer
    # Promote of names it does not stand by for claims nothing; the name stays its owner's.
    conn.send(ngrok1.message("Promote", {}))
    r = get(n2, "mine.localhost")
    assert (r.status, r.body) == (200, b"hello"), r.stderr
    # Without mux, or with a made-up short id, no standby at all.
    _, resp = standby_auth(n2, "b" * 32, features=("standby",))
    assert "takes no standby connection" in resp["Error"], resp
    _, resp = standby_auth(n2, "short")
    assert "needs the client id" in resp["Error"], resp


def test_a_single_node_offers_no_standby_connection(start_portholed, http_backend,
                                                    start_porthole):
    server = start_portholed()
    client = start_porthole("http", f"127.0.0.1:{http_backend.port}", server=server)
    assert client.ready["standby"] is None
    raw = socket.create_connection(("127.0.0.1", server.tunnel_port), timeout=10)
    tls = ngrok1.tls_client_context(server.ca).wrap_socket(raw, server_hostname=server.domain)
    conn = ngrok1.FrameConn(tls, "standby")
    conn.send(ngrok1.message("Auth", {
        "Version": "2", "MmVersion": "1.7", "User": "", "Password": "", "OS": "linux",
        "Arch": "amd64", "ClientId": "c" * 32,
        "Porthole": {"Version": "0.1.0", "Features": ["mux", "standby"], "Standby": True}}))
    resp = conn.read_frame()["Payload"]
    assert "takes no standby connection" in resp["Error"], resp


def test_a_node_stopped_past_its_lease_never_answers_for_a_name_it_lost(
        nodes, start_porthole, tmp_path):
    n1, n2, n3 = nodes.nodes
    old, new = backends.HTTPBackend(), backends.HTTPBackend()
    start_porthole("http", f"127.0.0.1:{old.port}", "--subdomain", "moved", "--proto", "http",
                   server=n1)
    os.kill(n1.proc.pid, signal.SIGSTOP)
    try:
        # A request that reaches n1 while it is stopped waits in its backlog.
        queued = subprocess.Popen(
            ["curl", "-s", "-o", "-", "-w", "\n%{http_code}", *cluster.resolve(n1, "moved.localhost"),
             cluster.public_url(n1, "moved.localhost", "http", "/echo/queued")],
            stdout=subprocess.PIPE, text=True)
        # Once n1's lease has run out in etcd, the name is free for another client.
        deadline = time.monotonic() + harness.scaled(4 * nodes.lease_ttl)
        while True:
            taker = start_porthole("http", f"127.0.0.1:{new.port}", "--subdomain", "moved",
                                   "--proto", "http", server=n2, wait_up=False)
            if up_or_refused(taker):
                break
            assert time.monotonic() < deadline, "the name never became free"
            time.sleep(0.2)
    finally:
        os.kill(n1.proc.pid, signal.SIGCONT)
    out, _ = queued.communicate(timeout=30)
    body, code = out.rsplit("\n", 1)
    # Answered by the new owner, or refused while n1 was unsure: never by the old one.
    assert old.hits("GET /echo/queued") == 0
    assert code in ("200", "503"), out
    n1.proc.wait_for(r"this node lost its names node=n1")
    for i, node in enumerate((n1, n2, n3, n1)):
        r = get(node, "moved.localhost", f"/echo/after-{i}")
        assert (r.status, r.body) == (200, f"after-{i}".encode()), (node.proc.name, r.stderr)
        assert old.hits(f"GET /echo/after-{i}") == 0


def test_while_etcd_is_down_tunnels_serve_and_a_new_one_waits_for_it(
        nodes, etcd, http_backend, start_porthole):
    n1, n2, n3 = nodes.nodes
    start_porthole("http", f"127.0.0.1:{http_backend.port}", "--subdomain", "steady",
                   "--proto", "http", server=n1)
    etcd.proc.kill()
    down = time.monotonic()
    newcomer = start_porthole("http", f"127.0.0.1:{http_backend.port}", "--subdomain", "fresh",
                              "--proto", "http", server=n2, wait_up=False)
    newcomer.proc.wait_for(r"cannot open tunnel 'http' \(http\) now: The cluster registry is "
                           r"unavailable .*trying again", stream="stderr")
    # The tunnels already up serve all along, through every node.
    failures, i = [], 0
    while time.monotonic() - down < harness.scaled(10):
        for node in (n1, n2, n3):
            r = get(node, "steady.localhost", f"/echo/down-{i}")
            if (r.status, r.body) != (200, f"down-{i}".encode()):
                failures.append((node.proc.name, r.status, r.stderr))
            i += 1
    assert not failures, failures[:5]
    assert newcomer.proc.running
    cluster.restart_etcd(etcd)
    newcomer.wait_tunnels(1, timeout=30)
    for node in (n1, n2, n3):
        assert get(node, "fresh.localhost").status == 200
        assert get(node, "steady.localhost").status == 200


def test_the_etcd_leader_killed_under_load_loses_no_request_and_no_name(
        tmp_path, home, http_backend, start_porthole):
    members = cluster.start_etcd_cluster(tmp_path / "etcd", 3)
    low = harness.os_port_range(4)
    c = cluster.Cluster("etcd://" + ",".join(m.endpoint for m in members),
                        cluster.make_cluster_ca(tmp_path / "pki", 3), tmp_path, home,
                        tcp_ports=(low, low + 3))
    n1, n2, n3 = (c.start_node(i) for i in (1, 2, 3))
    start_porthole("http", f"127.0.0.1:{http_backend.port}", "--subdomain", "busy",
                   "--proto", "http", server=n1)
    failures, done = [], threading.Event()
    sent = [0]

    def load():
        while not done.is_set():
            for node in (n1, n2, n3):
                r = get(node, "busy.localhost")
                sent[0] += 1
                if (r.status, r.body) != (200, b"hello"):
                    failures.append((node.proc.name, r.status, r.stderr))

    worker = threading.Thread(target=load)
    worker.start()
    try:
        leader = cluster.leader_of(members)
        leader.proc.kill()
        # A race for one name during the election: one winner.
        args = ("http", f"127.0.0.1:{http_backend.port}", "--subdomain", "contested",
                "--proto", "http")
        pair = [start_porthole(*args, server=n, wait_up=False) for n in (n2, n3)]
        outcomes = [up_or_refused(p, timeout=30) for p in pair]
        assert sorted(outcomes) == [False, True], outcomes
        # New claims work again with two members of three.
        start_porthole("http", f"127.0.0.1:{http_backend.port}", "--subdomain", "later",
                       "--proto", "http", server=n3)
        assert get(n1, "later.localhost").status == 200
    finally:
        done.set()
        worker.join(60)
    assert sent[0] > 0
    assert not failures, failures[:5]


def test_a_rolling_restart_behind_haproxy_fails_no_request(tmp_path, home, etcd, http_backend,
                                                            start_porthole):
    harness.require_program("haproxy")
    ports = {i: cluster.fixed_ports(i) for i in (1, 2, 3)}
    c = cluster.Cluster(f"etcd://{etcd.endpoint}", cluster.make_cluster_ca(tmp_path / "pki", 3),
                        tmp_path, home)
    for i in (1, 2, 3):
        c.start_node(i, ports=ports[i])
    _, front, stats = cluster.start_haproxy(tmp_path, ports)
    start_porthole("http", f"127.0.0.1:{http_backend.port}", "--subdomain", "busy",
                   "--proto", "http", server=c.nodes[0])

    def wait_all_up():
        deadline = time.monotonic() + harness.scaled(15)
        while cluster.haproxy_up(stats) != {"n1", "n2", "n3"}:
            assert time.monotonic() < deadline, cluster.haproxy_up(stats)
            time.sleep(0.05)

    wait_all_up()
    done = threading.Event()
    answered, failures = [0], []

    def get_once(conn):
        conn.request("GET", "/hello", headers={"Host": "busy.localhost"})
        r = conn.getresponse()
        return r.status, r.read()

    def load():
        # Keep-alive connections to haproxy, as browsers and webhooks make;
        # and as they do, a GET that a reused connection dropped without any
        # answer is sent once more on a new connection (RFC 9110, 9.2.2):
        # haproxy closes the client's connection that way when a node closed
        # the idle connection the request went out on.
        conn = http.client.HTTPConnection("127.0.0.1", front, timeout=20)
        while not done.is_set():
            try:
                try:
                    status, body = get_once(conn)
                except http.client.RemoteDisconnected:
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", front, timeout=20)
                    status, body = get_once(conn)
                if (status, body) != (200, b"hello"):
                    failures.append((status, body[:200]))
                answered[0] += 1
            except (OSError, http.client.HTTPException) as e:
                failures.append(repr(e))
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", front, timeout=20)
            time.sleep(0.004)

    workers = [threading.Thread(target=load) for _ in range(3)]
    started = time.monotonic()
    for w in workers:
        w.start()
    try:
        for i in (1, 2, 3):
            node = c.nodes[i - 1]
            node.proc.stop()  # SIGTERM: stop accepting, clients move, drain, exit
            assert node.proc.returncode == 0, node.proc.text()
            c.start_node(i, ports=ports[i])
            wait_all_up()
    finally:
        done.set()
        for w in workers:
            w.join(30)
    rate = answered[0] / (time.monotonic() - started)
    assert not failures, (len(failures), failures[:5])
    assert rate >= 200, rate


# ---- the node-to-node listener under attack ----

def node_addr(node) -> tuple[str, int]:
    ip, port = node.ready["node_addr"].rsplit(":", 1)
    return ip, int(port)


def node_context(tls, name="n3"):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.load_verify_locations(tls["ca"])
    if name:
        ctx.load_cert_chain(tls[f"{name}_cert"], tls[f"{name}_key"])
    return ctx


def relay_request(ctx, ip, request: dict) -> dict | None:
    with socket.create_connection(ip, timeout=10) as raw:
        with ctx.wrap_socket(raw) as s:
            body = json.dumps(request).encode()
            s.sendall(struct.pack(">I", len(body)) + body)
            head = s.recv(4)
            if len(head) < 4:
                return None
            (n,) = struct.unpack(">I", head)
            return json.loads(s.recv(n))


def test_a_relay_with_a_stale_revision_is_refused(nodes, http_backend, start_porthole):
    n1 = nodes.nodes[0]
    start_porthole("http", f"127.0.0.1:{http_backend.port}", "--subdomain", "fenced",
                   "--proto", "http", server=n1)
    answer = relay_request(node_context(nodes.tls), node_addr(n1),
                           {"name": "fenced.localhost", "scheme": "http", "revision": 1,
                            "client_ip": "203.0.113.9", "from_node": "n3"})
    assert answer == {"error": "not served here", "stale": True}
    n1.proc.wait_for(r"relay refused: not this node's claim at that revision name=fenced.localhost")


def test_the_node_listener_refuses_a_peer_without_a_cluster_certificate(nodes, tmp_path):
    n1 = nodes.nodes[0]
    port = node_addr(n1)
    with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
        relay_request(node_context(nodes.tls, name=None), port,
                      {"name": "x.localhost", "scheme": "http", "revision": 1})
    # A certificate of another CA is refused as well.
    other = tmp_path / "other-pki"
    cluster.make_cluster_ca(other, 1)
    with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
        relay_request(node_context({"ca": nodes.tls["ca"], "n1_cert": other / "n1.pem",
                                    "n1_key": other / "n1.key"}, "n1"), port,
                      {"name": "x.localhost", "scheme": "http", "revision": 1})
    r = get(n1, "nothing.localhost")
    assert r.status == 404  # still serving


def test_a_second_node_with_the_same_id_is_refused(nodes, tmp_path):
    nodes.tls |= cluster.make_node_cert(tmp_path / "pki", "n4", "127.0.0.4")
    with pytest.raises(harness.WaitTimeout) as failed:
        nodes.start_node(4, node_id="n1", timeout=10)
    assert "another live node of the cluster has the node id 'n1'" in str(failed.value)
    r = get(nodes.nodes[0], "nothing.localhost")
    assert r.status == 404  # n1 itself is unharmed


@pytest.mark.parametrize("args,says", [
    (["--cluster", "etcd://127.0.0.1:2379"], "--cluster needs --node-addr"),
    (["--cluster", "etcd://127.0.0.1:nope", "--node-addr", "127.0.0.1:0", "--cluster-ca", "CA",
      "--node-cert", "CA", "--node-key", "CA"], "--cluster: "),
    (["--cluster", "etcd://127.0.0.1:2379", "--node-addr", "0.0.0.0:7000", "--cluster-ca", "CA",
      "--node-cert", "CA", "--node-key", "CA"], "--node-addr 0.0.0.0:7000"),
    (["--node-addr", "127.0.0.1:7000"], "give --cluster"),
])
def test_cluster_flags_that_do_not_go_together_are_refused(tmp_path, args, says):
    (tmp_path / "CA").write_text("x")
    args = [str(tmp_path / "CA") if a == "CA" else a for a in args]
    p = subprocess.run([harness.binary("portholed"), "--dev", "--state-dir", tmp_path / "s",
                        "--http-addr", "127.0.0.1:0", "--https-addr", "127.0.0.1:0",
                        "--tunnel-addr", "127.0.0.1:0", "--admin-addr", "", *args],
                       capture_output=True, text=True, timeout=20)
    assert p.returncode == 1, p.stderr
    assert says in p.stderr, p.stderr


def test_http2_requests_for_a_name_of_another_node_are_relayed(nodes, http_backend,
                                                               start_porthole):
    """h2c on a node whose name's client is on another node (no standby):
    each HTTP/2 request goes to that node as HTTP/1.1, and back."""
    n1, n2, _ = nodes.nodes
    start_porthole("http", f"127.0.0.1:{http_backend.port}", "--subdomain", "app2",
                   "--proto", "http", "--no-standby", server=n1)
    r = get(n2, "app2.localhost", "/headers", "http", "--http2-prior-knowledge")
    assert (r.returncode, r.version, r.status) == (0, "2", 200), r.stderr
    assert json.loads(r.body)["headers"]["x-forwarded-for"] == "127.0.0.1"
    r = get(n2, "app2.localhost", "/hello", "http", "--http2-prior-knowledge")
    assert (r.version, r.status, r.body) == ("2", 200, b"hello"), r.stderr
