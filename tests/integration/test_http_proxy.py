"""The client behind an HTTP proxy: https_proxy makes every connection to the
server (control and proxy connections) go through `CONNECT host:port`, with
the URL's credentials as Proxy-Authorization; no_proxy bypasses the proxy.

The proxy is a small CONNECT proxy on loopback, written here."""

import re
import socket
import threading
import time

import pytest

import harness
from harness import basic_auth, curl


class ConnectProxy:
    """A minimal HTTP CONNECT proxy on 127.0.0.1:<port chosen by the OS>. It reads
    the request head, records it, answers `200 Connection established` and
    splices bytes both ways. With credentials set, a CONNECT without the right
    `Proxy-Authorization: Basic ...` gets 407."""

    name = "connect-proxy"

    def __init__(self, credentials: tuple[str, str] | None = None):
        self.expected_auth = basic_auth(*credentials) if credentials else None
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self._cond = threading.Condition()
        self.requests: list[dict] = []     # every CONNECT: target, auth, answer
        self.upstream_ports: set[int] = set()  # local ports of the proxy's own connections
        self._socks: list[socket.socket] = []
        self._log: list[str] = []
        self.thread = threading.Thread(target=self._accept_loop, name="connect-proxy",
                                       daemon=True)
        self.thread.start()
        harness.register(self)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _note(self, text: str) -> None:
        with self._cond:
            self._log.append(f"{time.monotonic():.3f} {text}")

    def _track(self, s: socket.socket) -> None:
        with self._cond:
            self._socks.append(s)

    def _accept_loop(self) -> None:
        while True:
            try:
                down, peer = self.listener.accept()
            except OSError:
                return
            self._track(down)
            threading.Thread(target=self._serve, args=(down, peer), daemon=True).start()

    def _serve(self, down: socket.socket, peer) -> None:
        down.settimeout(10)
        head = b""
        try:
            while b"\r\n\r\n" not in head and len(head) < 16384:
                data = down.recv(4096)
                if not data:
                    break
                head += data
        except OSError:
            pass
        if b"\r\n\r\n" not in head:
            self._note(f"{peer}: no complete request head: {head[:200]!r}")
            down.close()
            return
        head, rest = head.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        fields = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            fields[k.strip().lower()] = v.strip()
        m = re.fullmatch(r"CONNECT (\S+) HTTP/1\.[01]", lines[0])
        request = {"line": lines[0], "target": m[1] if m else None,
                   "auth": fields.get("proxy-authorization"), "status": None}
        if not m:
            request["status"] = 405
            self._answer(down, request, b"HTTP/1.1 405 Method Not Allowed\r\n"
                         b"Content-Length: 0\r\nConnection: close\r\n\r\n")
            return
        if self.expected_auth is not None and request["auth"] != self.expected_auth:
            request["status"] = 407
            self._answer(down, request, b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                         b"Proxy-Authenticate: Basic realm=\"test proxy\"\r\n"
                         b"Content-Length: 0\r\nConnection: close\r\n\r\n")
            return
        host, _, port = m[1].rpartition(":")
        try:
            up = socket.create_connection((host.strip("[]"), int(port)), timeout=10)
        except (OSError, ValueError) as e:
            request["status"] = 502
            self._note(f"{peer}: cannot reach {m[1]}: {e}")
            self._answer(down, request, b"HTTP/1.1 502 Bad Gateway\r\n"
                         b"Content-Length: 0\r\nConnection: close\r\n\r\n")
            return
        self._track(up)
        with self._cond:
            self.upstream_ports.add(up.getsockname()[1])
        request["status"] = 200
        self._answer(down, request, b"HTTP/1.1 200 Connection established\r\n\r\n", keep=True)
        down.settimeout(None)
        up.settimeout(None)
        try:
            if rest:
                up.sendall(rest)
        except OSError:
            pass
        for a, b in ((down, up), (up, down)):
            threading.Thread(target=harness.splice, args=(a, b), daemon=True).start()

    def _answer(self, down: socket.socket, request: dict, response: bytes,
                keep: bool = False) -> None:
        with self._cond:
            self.requests.append(request)
            self._cond.notify_all()
        self._note(f"{request['line']!r} -> {request['status']}")
        try:
            down.sendall(response)
        except OSError:
            pass
        if not keep:
            down.close()

    def connects(self, status: int | None = None) -> list[dict]:
        with self._cond:
            return [r for r in self.requests if status in (None, r["status"])]

    def wait_connects(self, n: int, status: int | None = None, timeout: float = 15.0) -> list:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                got = [r for r in self.requests if status in (None, r["status"])]
                if len(got) >= n:
                    return got
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise harness.WaitTimeout(
                        f"the proxy saw {len(got)} CONNECT(s) answered {status}, "
                        f"not {n}, within {timeout:g}s: {self.requests}")
                self._cond.wait(remaining)

    def log_text(self) -> str:
        with self._cond:
            return f"127.0.0.1:{self.port}\n" + "\n".join(self._log)

    def stop(self) -> None:
        self.listener.close()
        with self._cond:
            socks, self._socks = self._socks, []
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()


def proxy_env(url: str, no_proxy: str | None = None) -> dict:
    # clean_env sets NO_PROXY=no_proxy=* for isolation: remove (or replace) both.
    return {"https_proxy": url, "no_proxy": no_proxy, "NO_PROXY": None}


def with_credentials(proxy: ConnectProxy, user: str, password: str) -> str:
    return f"http://{user}:{password}@127.0.0.1:{proxy.port}"


def assert_hello(url: str) -> None:
    r = curl(f"{url}/hello")
    assert (r.returncode, r.status, r.body) == (0, 200, b"hello"), (url, r.stderr)


def test_client_reaches_server_through_https_proxy(server, http_backend, start_porthole):
    proxy = ConnectProxy()
    client = start_porthole("http", f"127.0.0.1:{http_backend.port}", "--subdomain", "foo",
                            "--proto", "http", server=server, env=proxy_env(proxy.url))
    assert re.search(rf"through the HTTP proxy 127\.0\.0\.1:{proxy.port}\b", client.proc.text())
    assert_hello(client.url())

    # The control connection and the proxy connections all went through it.
    seen = proxy.wait_connects(2, status=200)
    assert {r["target"] for r in seen} == {server.tunnel_addr}, proxy.requests
    assert all(r["line"] == f"CONNECT {server.tunnel_addr} HTTP/1.1" for r in seen)
    m = re.search(r"client \w+ connected from 127\.0\.0\.1:(\d+)", server.proc.text())
    assert m, "portholed logged no client connection"
    assert int(m[1]) in proxy.upstream_ports, \
        "the control connection did not come through the proxy"


def test_client_sends_proxy_credentials_from_the_url(server, http_backend, start_porthole):
    proxy = ConnectProxy(credentials=("user", "secret"))
    client = start_porthole("http", f"127.0.0.1:{http_backend.port}", "--subdomain", "foo",
                            "--proto", "http", server=server,
                            env=proxy_env(with_credentials(proxy, "user", "secret")))
    assert_hello(client.url())
    seen = proxy.wait_connects(2, status=200)
    assert all(r["auth"] == "Basic dXNlcjpzZWNyZXQ=" for r in seen), seen
    assert not proxy.connects(status=407), proxy.requests
    assert "secret" not in client.proc.text(), "the client logged the proxy password"


@pytest.mark.parametrize("proxy_url", ["no-credentials", "wrong-password"])
def test_proxy_refusing_credentials_with_407_is_reported_and_no_tunnel_comes_up(
        proxy_url, server, http_backend, start_porthole):
    proxy = ConnectProxy(credentials=("user", "secret"))
    url = proxy.url if proxy_url == "no-credentials" else with_credentials(proxy, "user", "nope")
    client = start_porthole("http", f"127.0.0.1:{http_backend.port}", "--subdomain", "foo",
                            "--proto", "http", server=server, env=proxy_env(url),
                            wait_up=False)
    # The client says the proxy refused it, with the proxy's status (not a
    # port number that happens to hold "407").
    client.proc.wait_for(r"(?i)proxy.*(?<![\d:])407\b", timeout=15)
    proxy.wait_connects(1, status=407)
    assert not proxy.connects(status=200), proxy.requests
    assert "tunnel up:" not in client.proc.text()
    assert not re.search(r"client \w+ connected from", server.proc.text()), \
        "a client reached the server although the proxy refused every CONNECT"


def test_no_proxy_matching_the_server_bypasses_the_proxy(server, http_backend, start_porthole):
    proxy = ConnectProxy()
    client = start_porthole("http", f"127.0.0.1:{http_backend.port}", "--subdomain", "foo",
                            "--proto", "http", server=server,
                            env=proxy_env(proxy.url, no_proxy="127.0.0.1"))
    assert_hello(client.url())
    assert proxy.connects() == [], proxy.requests
    assert "through the HTTP proxy" not in client.proc.text()
