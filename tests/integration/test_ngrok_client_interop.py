"""An ngrok 1.7 client against the real portholed: a scripted client that sends
the frames recorded from the real ngrok 1.7.1 client, byte for byte."""

import queue
import re
import threading

import pytest

import ngrok1
from harness import curl
from ngrok1 import FrameConn, connect_tls


REQPROXY = {"Type": "ReqProxy", "Payload": {}}


class ControlReader:
    """Reads frames from the control connection into a queue, in a thread."""

    def __init__(self, conn: FrameConn):
        self.conn = conn
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
