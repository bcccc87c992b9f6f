"""The client survives a server restart, or a cut connection, and gets its
tunnels back."""

import socket
import threading
import time

import pytest

import harness
from harness import curl, urls_of


def test_client_reconnects_after_server_restart_with_same_urls(start_portholed, http_backend,
                                                               start_porthole):
    first = start_portholed()
    client = start_porthole("http", f"127.0.0.1:{http_backend.port}", "--subdomain", "foo",
                            "--proto", "http", server=first)
    urls = sorted(client.urls)
    for url in urls:
        r = curl(f"{url}/hello")
        assert (r.returncode, r.status, r.body) == (0, 200, b"hello"), (url, r.stderr)

    before_loss = client.proc.mark()
    up_before = client.ready
    first.proc.kill()
    client.proc.wait_for(r"reconnecting", timeout=15, since=before_loss)

    # Same ports, same state dir (so the same dev CA).
    second = start_portholed(
        state_dir=first.state_dir,
        http_addr=f"127.0.0.1:{first.http_port}",
        https_addr=f"127.0.0.1:{first.https_port}",
        tunnel_addr=f"127.0.0.1:{first.tunnel_port}")
    assert (second.http_port, second.https_port, second.tunnel_port) == \
        (first.http_port, first.https_port, first.tunnel_port)

    up = client.wait_tunnels(len(urls), since=up_before, timeout=45)
    assert sorted(urls_of(up)) == urls
    assert (up["client_id"], up["connection"]) == (up_before["client_id"],
                                                   up_before["connection"] + 1)
    assert client.proc.running
    for url in urls:
        r = curl(f"{url}/hello")
        assert (r.returncode, r.status, r.body) == (0, 200, b"hello"), (url, r.stderr)


# --------------------------------------------------------------------------
# Reconnect grace: the connection to a running server is cut
# --------------------------------------------------------------------------

class Forwarder:
    """A TCP forwarder on 127.0.0.1:<port chosen by the OS> to 127.0.0.1:<target>.
    cut() closes both sockets of every pair it carries; while held (hold() until
    release()) new connections are accepted but wait before being forwarded."""

    name = "forwarder"

    def __init__(self, target_port: int):
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self._lock = threading.Lock()
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._open = threading.Event()
        self._open.set()
        self._stopped = False
        self._log: list[str] = []
        self.accepted = 0
        self.thread = threading.Thread(target=self._accept_loop, name="forwarder", daemon=True)
        self.thread.start()
        harness.register(self)

    def _note(self, text: str) -> None:
        with self._lock:
            self._log.append(f"{time.monotonic():.3f} {text}")

    def _accept_loop(self) -> None:
        while True:
            try:
                down, peer = self.listener.accept()
            except OSError:
                return
            with self._lock:
                self.accepted += 1
            self._note(f"accepted {peer}")
            threading.Thread(target=self._serve, args=(down,), daemon=True).start()

    def _serve(self, down: socket.socket) -> None:
        if not self._open.wait(30) or self._stopped:
            down.close()
            return
        try:
            up = socket.create_connection(("127.0.0.1", self.target_port), timeout=10)
        except OSError as e:
            self._note(f"cannot reach 127.0.0.1:{self.target_port}: {e}")
            down.close()
            return
        up.settimeout(None)
        with self._lock:
            self._pairs.append((down, up))
        for a, b in ((down, up), (up, down)):
            threading.Thread(target=harness.splice, args=(a, b), daemon=True).start()

    def hold(self) -> None:
        self._open.clear()

    def release(self) -> None:
        self._open.set()

    def cut(self) -> int:
        """Closes both sockets of each pair; returns how many pairs were cut."""
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            for s in pair:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()
        self._note(f"cut {len(pairs)} connection pair(s)")
        return len(pairs)

    def log_text(self) -> str:
        with self._lock:
            return (f"127.0.0.1:{self.port} -> 127.0.0.1:{self.target_port}, "
                    f"{self.accepted} accepted\n" + "\n".join(self._log))

    def stop(self) -> None:
        self._stopped = True
        self._open.set()
        self.listener.close()
        self.cut()


@pytest.fixture
def forwarder(server):
    return Forwarder(server.tunnel_port)


def assert_hello(url: str) -> None:
    r = curl(f"{url}/hello")
    assert (r.returncode, r.status, r.body) == (0, 200, b"hello"), (url, r.stderr)


def test_cut_client_keeps_its_subdomain_during_grace_and_gets_it_back(server, forwarder,
                                                                      http_backend,
                                                                      start_porthole):
    first = start_porthole("http", f"127.0.0.1:{http_backend.port}", "--subdomain", "keep",
                           "--proto", "http", server=server,
                           server_addr=f"127.0.0.1:{forwarder.port}")
    assert first.urls == [f"http://keep.localhost:{server.http_port}"]
    assert_hello(first.url())

    before_client = first.proc.mark()
    before_server = server.proc.mark()
    up_before = first.ready
    forwarder.hold()  # the first client's reconnects wait until release()
    assert forwarder.cut() >= 1
    first.proc.wait_for(r"lost connection to server|reconnecting", timeout=15,
                        since=before_client)
    server.proc.wait_for(r"tunnel down .*url=http://keep\.localhost", timeout=15,
                         since=before_server)

    # While the first client is away, its URL says so rather than "not found".
    r = curl(f"{first.url()}/hello")
    assert r.status == 503, (r.status, r.body[:300])
    assert b"reconnecting" in r.body
    assert "retry-after" in {k.lower() for k in r.headers}, r.headers

    # And its subdomain is still its own.
    second = start_porthole("http", f"127.0.0.1:{http_backend.port}", "--subdomain", "keep",
                            "--proto", "http", server=server, wait_up=False)
    assert second.proc.wait_exit() != 0
    assert "already registered" in second.proc.text("stderr")
    assert "Forwarding " not in second.proc.text()

    forwarder.release()
    up = first.wait_tunnels(1, since=up_before, timeout=45)
    assert urls_of(up) == [first.url()]
    assert first.proc.running
    assert_hello(first.url())


def test_cut_client_gets_its_random_url_back(server, forwarder, http_backend, start_porthole):
    client = start_porthole("http", f"127.0.0.1:{http_backend.port}", "--proto", "http",
                            server=server, server_addr=f"127.0.0.1:{forwarder.port}")
    url = client.url()
    assert_hello(url)

    before = client.proc.mark()
    up_before = client.ready
    assert forwarder.cut() >= 1
    client.proc.wait_for(r"lost connection to server|reconnecting", timeout=15, since=before)
    up = client.wait_tunnels(1, since=up_before, timeout=45)
    assert urls_of(up) == [url]
    assert client.proc.running
    assert_hello(url)
