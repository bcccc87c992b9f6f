"""An ngrok 1.7 client against the real portholed: a scripted client that sends
the frames recorded from the real ngrok 1.7.1 client, byte for byte, or frames
built in exactly their shape (Go's key order, every field) for other values:
http, https, http+https and tcp tunnels, Ping/Pong, and a reconnect with the
old ClientId."""

import queue
import re
import socket
import threading
import time
from urllib.parse import urlsplit

import pytest

import ngrok1
from harness import curl, os_port, wait_closed
from ngrok1 import FrameConn, connect_tls


REQPROXY = {"Type": "ReqProxy", "Payload": {}}


class ControlReader:
    """Reads frames from the control connection into a queue, in a thread."""

    def __init__(self, conn: FrameConn):
        self.conn = conn
        conn.shared = True  # the test's thread goes on writing to it
        self.frames: queue.Queue = queue.Queue()
        self.thread = threading.Thread(target=self._run, name="ctl-reader", daemon=True)
        self.thread.start()

    def _run(self):
        try:
            while True:
                self.frames.put(self.conn.read_frame(timeout=120))
        except Exception as e:
            self.frames.put(e)

    def next(self, timeout: float = 10.0) -> dict:
        try:
            item = self.frames.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no frame on the control connection within {timeout}s")
        if isinstance(item, Exception):
            raise AssertionError(f"control connection: {item!r}")
        return item

    def next_not_reqproxy(self, timeout: float = 10.0) -> tuple[dict, int]:
        """The next frame that is not a ReqProxy, and how many ReqProxy came first
        (a server may ask for proxy connections at any time)."""
        skipped = 0
        while True:
            msg = self.next(timeout)
            if msg != REQPROXY:
                return msg, skipped
            skipped += 1

    def count_reqproxy_now(self) -> int:
        """Takes the frames already received; all must be ReqProxy."""
        n = 0
        while True:
            try:
                item = self.frames.get_nowait()
            except queue.Empty:
                return n
            assert item == REQPROXY, f"unexpected on the control connection: {item!r}"
            n += 1


@pytest.fixture
def ngrok_server(start_portholed):
    return start_portholed(authtokens=["secret-token"])


def test_ngrok17_client_gets_tunnel_and_proxied_request(ngrok_server):
    server = ngrok_server
    ctl = FrameConn(connect_tls(server.tunnel_port, server.ca), "control")
    proxy = None
    try:
        # Auth, exactly as ngrok 1.7.1 sends it (User = the authtoken).
        ctl.send(ngrok1.RECORDED_AUTH)
        resp = ctl.read_frame()
        assert resp["Type"] == "AuthResp", resp
        p = resp["Payload"]
        assert (p.get("Version"), p.get("MmVersion"), p.get("Error")) == ("2", "1.7", ""), p
        client_id = p.get("ClientId")
        assert isinstance(client_id, str) and re.fullmatch(r"[0-9a-f]{32}", client_id), p
        first = ctl.read_frame()
        assert first == REQPROXY, first

        reader = ControlReader(ctl)  # from here on, frames are read in the background

        # ReqTunnel http, subdomain foo, HttpAuth user:pass, exactly as recorded.
        ctl.send(ngrok1.RECORDED_REQTUNNEL_HTTP)
        url = f"http://foo.localhost:{server.http_port}"
        nt, _ = reader.next_not_reqproxy()
        assert nt["Type"] == "NewTunnel", nt
        fields = {k: nt["Payload"].get(k) for k in ("ReqId", "Url", "Protocol", "Error")}
        assert fields == {"ReqId": "d87e0817f9359137", "Url": url, "Protocol": "http",
                          "Error": ""}, nt

        # The proxy connection, as the ngrok client opens it on ReqProxy.
        proxy = FrameConn(connect_tls(server.tunnel_port, server.ca), "proxy")
        proxy.send(ngrok1.RECORDED_REGPROXY.replace(ngrok1.RECORDED_REGPROXY_CLIENT_ID,
                                                    client_id.encode()))

        # A public request, in the background (curl waits for the answer).
        reader.count_reqproxy_now()  # asked for before the take: not the refill
        result = {}
        public = threading.Thread(target=lambda: result.update(r=curl(
            f"{url}/public-path", "-u", "user:pass", "-H", "X-Test: 1", timeout=30)))
        public.start()

        sp = proxy.read_frame(timeout=15)
        assert sp["Type"] == "StartProxy", sp
        assert sp["Payload"].get("Url") == url, sp
        assert re.fullmatch(r"127\.0\.0\.1:\d+", sp["Payload"].get("ClientAddr", "")), sp

        # Right after StartProxy: the public request's bytes, nothing in between.
        head = proxy.read_until(b"\r\n\r\n", timeout=10)
        assert head.startswith(b"GET /public-path HTTP/1.1\r\n"), head
        lines = head.decode("latin-1").split("\r\n")
        assert f"Host: foo.localhost:{server.http_port}" in lines, head
        assert "X-Test: 1" in lines, head

        body = b"hello from a scripted ngrok 1.7 client"
        proxy.send(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n"
                   b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        public.join(40)
        assert not public.is_alive(), "curl did not finish"
        r = result["r"]
        assert (r.returncode, r.status, r.body) == (0, 200, body), r.stderr

        # The take is followed by a ReqProxy to refill the pool.
        refill = reader.next(timeout=10)
        assert refill == REQPROXY, refill
    finally:
        if proxy:
            proxy.close()
        ctl.close()


# --------------------------------------------------------------------------
# Each tunnel protocol, heartbeats and reconnect, as an ngrok 1.7 client does
# them. Frames are built by ngrok1's builders, which give back the recorded
# frames byte for byte (checked first).
# --------------------------------------------------------------------------

AUTHTOKEN = "secret-token"
PONG = {"Type": "Pong", "Payload": {}}


def test_scripted_client_frames_have_the_recorded_shape():
    assert ngrok1.auth(AUTHTOKEN) == ngrok1.RECORDED_AUTH
    assert ngrok1.req_tunnel("d87e0817f9359137", "http", "foo",
                             http_auth="user:pass") == ngrok1.RECORDED_REQTUNNEL_HTTP
    assert ngrok1.req_tunnel("540adbcb7174925f", "tcp", "tcpt",
                             remote_port=5555) == ngrok1.RECORDED_REQTUNNEL_TCP
    assert ngrok1.reg_proxy(ngrok1.RECORDED_REGPROXY_CLIENT_ID.decode()) == \
        ngrok1.RECORDED_REGPROXY
    assert ngrok1.PING == ngrok1.frame(b'{"Type":"Ping","Payload":{}}')


@pytest.fixture
def conns():
    """FrameConns and sockets a test opens; closed at teardown."""
    opened: list = []
    yield opened
    for c in reversed(opened):
        c.close()


@pytest.fixture
def tcp_ngrok_server(start_portholed):
    # TCP tunnels listen on loopback only; ports are chosen by the OS.
    return start_portholed("--tcp-bind-addr", "127.0.0.1", authtokens=[AUTHTOKEN])


class Ngrok17Client:
    """A scripted ngrok 1.7 client: one control connection (read in the
    background once logged in) and the proxy connections it opens."""

    def __init__(self, server, conns: list, client_id: str = "", name: str = "control"):
        self.server = server
        self.conns = conns
        self.ctl = FrameConn(connect_tls(server.tunnel_port, server.ca), name)
        conns.append(self.ctl)
        self.ctl.send(ngrok1.auth(AUTHTOKEN, client_id))
        resp = self.ctl.read_frame()
        assert resp["Type"] == "AuthResp", resp
        p = resp["Payload"]
        # An ngrok client gets exactly what ngrokd sends: these four, no extension key.
        assert set(p) == {"Version", "MmVersion", "ClientId", "Error"}, p
        assert (p["Version"], p["MmVersion"], p["Error"]) == ("2", "1.7", ""), p
        assert re.fullmatch(r"[0-9a-f]{32}", p["ClientId"]), p
        self.client_id = p["ClientId"]
        first = self.ctl.read_frame()
        assert first == REQPROXY, first
        self.reader = ControlReader(self.ctl)

    def request(self, req_id: str, protocol: str, subdomain: str,
                remote_port: int = 0) -> dict[str, dict]:
        """Sends ReqTunnel; returns the NewTunnel payloads by protocol (one per
        protocol of `protocol`, each with this ReqId)."""
        self.ctl.send(ngrok1.req_tunnel(req_id, protocol, subdomain, remote_port=remote_port))
        got: dict[str, dict] = {}
        for _ in protocol.split("+"):
            nt, _ = self.reader.next_not_reqproxy()
            assert nt["Type"] == "NewTunnel", nt
            p = nt["Payload"]
            assert set(p) == {"ReqId", "Url", "Protocol", "Error"}, nt
            assert p["Error"] == "" and p["ReqId"] == req_id, nt
            assert p["Protocol"] not in got, f"two NewTunnel for {p['Protocol']}: {got} {nt}"
            got[p["Protocol"]] = p
        assert sorted(got) == sorted(protocol.split("+")), got
        return got

    def open_proxy(self) -> FrameConn:
        """A proxy connection, as the ngrok client opens one on ReqProxy."""
        proxy = FrameConn(connect_tls(self.server.tunnel_port, self.server.ca), "proxy")
        self.conns.append(proxy)
        proxy.send(ngrok1.reg_proxy(self.client_id))
        return proxy

    def serve_public_request(self, url: str, path: str, cacert=None) -> tuple[dict, list[str]]:
        """Opens a proxy connection, has curl send GET url+path, expects StartProxy
        for `url` then the request on that connection and answers it; checks curl
        gets the answer. Returns the StartProxy and the request head's lines."""
        proxy = self.open_proxy()
        result = {}
        public = threading.Thread(target=lambda: result.update(r=curl(
            f"{url}{path}", "-H", "X-Test: 1", cacert=cacert, timeout=30)))
        public.start()
        try:
            sp = proxy.read_frame(timeout=15)
            assert sp["Type"] == "StartProxy", sp
            assert set(sp["Payload"]) == {"Url", "ClientAddr"}, sp
            assert sp["Payload"]["Url"] == url, sp
            assert re.fullmatch(r"127\.0\.0\.1:\d+", sp["Payload"]["ClientAddr"]), sp
            # Right after StartProxy: the request as plain HTTP.
            head = proxy.read_until(b"\r\n\r\n", timeout=10)
            assert head.startswith(f"GET {path} HTTP/1.1\r\n".encode()), head
            lines = head.decode("latin-1").split("\r\n")
            body = f"answered by a scripted ngrok 1.7 client for {url}".encode()
            proxy.send(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n"
                       b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        finally:
            public.join(40)
        assert not public.is_alive(), "curl did not finish"
        r = result["r"]
        assert (r.returncode, r.status, r.body) == (0, 200, body), r.stderr
        return sp, lines


def header_values(lines: list[str], name: str) -> list[str]:
    return [l.split(":", 1)[1].strip() for l in lines
            if ":" in l and l.split(":", 1)[0].strip().lower() == name.lower()]


def test_ngrok17_client_https_tunnel_gets_plain_http_with_forwarded_proto(ngrok_server, conns):
    server = ngrok_server
    client = Ngrok17Client(server, conns)
    url = f"https://sec.localhost:{server.https_port}"
    got = client.request("5ec0a1b2c3d4e5f6", "https", "sec")
    assert got["https"]["Url"] == url, got

    # portholed terminates TLS: the proxy connection carries plain HTTP.
    _, lines = client.serve_public_request(url, "/secure-path", cacert=server.ca)
    assert f"Host: sec.localhost:{server.https_port}" in lines, lines
    assert header_values(lines, "X-Forwarded-Proto") == ["https"], lines
    assert "X-Test: 1" in lines, lines


def test_ngrok17_client_http_plus_https_gets_two_new_tunnels(ngrok_server, conns):
    server = ngrok_server
    client = Ngrok17Client(server, conns)
    got = client.request("b0b0c0c0d0d0e0e0", "http+https", "both")
    assert got["http"]["Url"] == f"http://both.localhost:{server.http_port}", got
    assert got["https"]["Url"] == f"https://both.localhost:{server.https_port}", got
    assert urlsplit(got["http"]["Url"]).hostname == urlsplit(got["https"]["Url"]).hostname

    # Each URL leads to this client, and StartProxy names the URL it came in on
    # (the ngrok client finds the tunnel by it).
    _, lines = client.serve_public_request(got["http"]["Url"], "/plain")
    assert header_values(lines, "X-Forwarded-Proto") == ["http"], lines
    _, lines = client.serve_public_request(got["https"]["Url"], "/secure", cacert=server.ca)
    assert header_values(lines, "X-Forwarded-Proto") == ["https"], lines


def _tcp_round_trip(client: Ngrok17Client, url: str, port: int, conns: list) -> None:
    """A public TCP client on `port`: StartProxy{url, its address} and then its
    bytes arrive on a proxy connection; bytes written back reach it; closing the
    proxy connection ends the public one."""
    proxy = client.open_proxy()
    public = socket.create_connection(("127.0.0.1", port), timeout=10)
    conns.append(public)
    sent = b"bytes from a public tcp client\x00\xff\r\n"
    public.sendall(sent)
    sp = proxy.read_frame(timeout=15)
    assert sp == {"Type": "StartProxy",
                  "Payload": {"Url": url,
                              "ClientAddr": "127.0.0.1:%d" % public.getsockname()[1]}}, sp
    assert proxy.read_exact(len(sent), timeout=10) == sent
    back = b"answer from the scripted ngrok client\n" * 100
    proxy.send(back)
    got = b""
    public.settimeout(10)
    while len(got) < len(back):
        chunk = public.recv(65536)
        assert chunk, f"public connection closed after {len(got)} of {len(back)} bytes"
        got += chunk
    assert got == back
    proxy.close()
    assert wait_closed(public, 10), "closing the proxy connection did not end the public one"


def test_ngrok17_client_tcp_tunnel_on_server_chosen_port(tcp_ngrok_server, conns):
    server = tcp_ngrok_server
    client = Ngrok17Client(server, conns)
    # As the real client sends it: the tunnel's name as Subdomain, RemotePort 0.
    got = client.request("7c9a000011112222", "tcp", "tcpt", remote_port=0)
    url = got["tcp"]["Url"]
    m = re.fullmatch(r"tcp://localhost:(\d+)", url)
    assert m, got
    _tcp_round_trip(client, url, int(m[1]), conns)


def test_ngrok17_client_tcp_tunnel_on_requested_remote_port(tcp_ngrok_server, conns):
    server = tcp_ngrok_server
    client = Ngrok17Client(server, conns)
    wanted = os_port()
    got = client.request("7c9a333344445555", "tcp", "tcpfixed", remote_port=wanted)
    url = got["tcp"]["Url"]
    assert url == f"tcp://localhost:{wanted}", got
    _tcp_round_trip(client, url, wanted, conns)


def test_ngrok17_client_ping_gets_pong_and_control_keeps_working(ngrok_server, conns):
    server = ngrok_server
    client = Ngrok17Client(server, conns)
    client.request("9a9a000000000001", "http", "pinger")
    for _ in range(3):
        client.ctl.send(ngrok1.PING)
        pong, _ = client.reader.next_not_reqproxy()
        assert pong == PONG, pong
    # Still a working control connection: another tunnel, and a request to it.
    got = client.request("9a9a000000000002", "http", "pinger2")
    url = f"http://pinger2.localhost:{server.http_port}"
    assert got["http"]["Url"] == url, got
    client.serve_public_request(url, "/after-pings")


def test_ngrok17_client_reconnecting_with_its_client_id_replaces_the_old_control(
        ngrok_server, conns):
    server = ngrok_server
    first = Ngrok17Client(server, conns, name="control#1")
    url = f"http://again.localhost:{server.http_port}"
    assert first.request("a9a1000000000001", "http", "again")["http"]["Url"] == url

    # The ngrok client reconnects with Auth{ClientId: its id} and asks again.
    second = Ngrok17Client(server, conns, client_id=first.client_id, name="control#2")
    assert second.client_id == first.client_id

    # The server closes the first control connection (ReqProxy may come before).
    seen = []
    deadline = time.monotonic() + 10
    while True:
        try:
            item = first.reader.frames.get(timeout=max(0.01, deadline - time.monotonic()))
        except queue.Empty:
            raise AssertionError(f"the replaced control connection is still open after 10 s; "
                                 f"frames on it: {seen}") from None
        if isinstance(item, Exception):
            break
        assert item == REQPROXY, f"unexpected on the replaced control connection: {item}"
        seen.append(item)

    got = second.request("a9a1000000000002", "http", "again")
    assert got["http"]["Url"] == url, got
    second.serve_public_request(url, "/after-reconnect")
