"""The client behind an HTTP proxy: https_proxy makes every connection to the
server (control and proxy connections) go through `CONNECT host:port`, with
the URL's credentials as Proxy-Authorization; no_proxy bypasses the proxy.

Two kinds of proxy on loopback: a small CONNECT proxy written here (it records
every request exactly), and the real proxies from Debian, tinyproxy and squid,
each started by the test as its own process with its own configuration in a
temporary folder (their system services are not used). With those: a tunnel
without and with proxy authentication, wrong credentials (407), a proxy that
does not allow the server's port (403), a proxy that is not there; each
failure is reported plainly and the client keeps retrying."""

import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

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
    client.proc.wait_for(rf"through the HTTP proxy 127\.0\.0\.1:{proxy.port}\b")
    assert_hello(client.url())

    # The control connection and the proxy connections all went through it.
    seen = proxy.wait_connects(2, status=200)
    assert {r["target"] for r in seen} == {server.tunnel_addr}, proxy.requests
    assert all(r["line"] == f"CONNECT {server.tunnel_addr} HTTP/1.1" for r in seen)
    m = re.search(r"client connected client=\w+ peer=127\.0\.0\.1:(\d+)", server.proc.text())
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
    assert "Forwarding " not in client.proc.text()
    assert not re.search(r"client connected client=", server.proc.text()), \
        "a client reached the server although the proxy refused every CONNECT"


def test_no_proxy_matching_the_server_bypasses_the_proxy(server, http_backend, start_porthole):
    proxy = ConnectProxy()
    client = start_porthole("http", f"127.0.0.1:{http_backend.port}", "--subdomain", "foo",
                            "--proto", "http", server=server,
                            env=proxy_env(proxy.url, no_proxy="127.0.0.1"))
    assert_hello(client.url())
    assert proxy.connects() == [], proxy.requests
    assert "through the HTTP proxy" not in client.proc.text()


def test_http_proxy_flag_is_used_without_any_environment(server, http_backend, start_porthole):
    proxy = ConnectProxy()
    client = start_porthole("http", f"127.0.0.1:{http_backend.port}", "--subdomain", "foo",
                            "--proto", "http", "--http-proxy", proxy.url, server=server)
    assert_hello(client.url())
    assert {r["target"] for r in proxy.wait_connects(2, status=200)} == {server.tunnel_addr}


def test_http_proxy_flag_wins_over_the_environment(server, http_backend, start_porthole):
    flagged, env_proxy = ConnectProxy(), ConnectProxy()
    client = start_porthole("http", f"127.0.0.1:{http_backend.port}", "--subdomain", "foo",
                            "--proto", "http", "--http-proxy", flagged.url, server=server,
                            env=proxy_env(env_proxy.url))
    assert_hello(client.url())
    flagged.wait_connects(2, status=200)
    assert env_proxy.connects() == [], env_proxy.requests


def test_an_empty_http_proxy_flag_ignores_the_environment(server, http_backend, start_porthole):
    env_proxy = ConnectProxy()
    client = start_porthole("http", f"127.0.0.1:{http_backend.port}", "--subdomain", "foo",
                            "--proto", "http", "--http-proxy", "", server=server,
                            env=proxy_env(env_proxy.url))
    assert_hello(client.url())
    assert env_proxy.connects() == [], env_proxy.requests


def test_http_proxy_from_the_config_file_with_credentials(server, http_backend, home, tmp_path):
    proxy = ConnectProxy(credentials=("user", "secret"))
    conf = tmp_path / "porthole.yml"
    conf.write_text(f"http_proxy: {with_credentials(proxy, 'user', 'secret')}\n"
                    f"tunnels:\n  foo:\n    proto:\n      http: {http_backend.port}\n")
    proc = harness.Process([harness.binary("porthole"), "--config", conf, "--server-addr",
                            server.tunnel_addr, "--trust-ca", server.ca, "--log", "stderr",
                            "--inspect-addr", "disabled", "start", "foo"],
                           name="porthole", env=harness.clean_env(home))
    proc.wait_for(harness.TUNNEL_UP, timeout=harness.TUNNEL_UP_TIMEOUT)
    assert_hello(server.url("foo"))
    seen = proxy.wait_connects(2, status=200)
    assert all(r["auth"] == "Basic dXNlcjpzZWNyZXQ=" for r in seen), seen
    assert "secret" not in proc.text()


def test_a_bad_http_proxy_flag_is_an_error_naming_the_flag(server, home):
    r = subprocess.run([str(harness.binary("porthole")), "--server-addr", server.tunnel_addr,
                        "--http-proxy", "socks5://127.0.0.1:1080", "http", "80"],
                       capture_output=True, text=True, env=harness.clean_env(home), timeout=30)
    assert r.returncode == 1
    assert r.stderr.startswith("porthole: --http-proxy: ") and "socks5" in r.stderr, r.stderr


# --------------------------------------------------------------------------
# Real proxies from Debian: tinyproxy and squid
# --------------------------------------------------------------------------

PROXY_START_TIMEOUT = 30.0


class Tinyproxy:
    """tinyproxy -d on 127.0.0.1:<free port>, logging to stderr. CONNECT is
    allowed to `connect_ports` only (tinyproxy answers others `403 Access
    violation`); with credentials it demands them (BasicAuth: 407 without
    credentials, 401 for wrong ones)."""

    name = "tinyproxy configuration"

    def __init__(self, workdir: Path, connect_ports: list[int],
                 credentials: tuple[str, str] | None = None):
        exe = harness.require_program("tinyproxy")
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = harness.os_port()
        self.conf = workdir / "tinyproxy.conf"
        lines = [f"Port {self.port}", "Listen 127.0.0.1", "Allow 127.0.0.1", "Timeout 600",
                 "MaxClients 100", "LogLevel Info", "DisableViaHeader Yes"]
        lines += [f"ConnectPort {p}" for p in connect_ports]
        if credentials:
            lines.append(f"BasicAuth {credentials[0]} {credentials[1]}")
        self.conf.write_text("\n".join(lines) + "\n")
        harness.register(self)
        self.proc = harness.Process([exe, "-d", "-c", self.conf], name="tinyproxy",
                                    env=harness.clean_env(workdir / "home"))
        self.proc.wait_for(r"Accepting connections", PROXY_START_TIMEOUT)

    def url(self, credentials: tuple[str, str] | None = None) -> str:
        auth = f"{credentials[0]}:{credentials[1]}@" if credentials else ""
        return f"http://{auth}127.0.0.1:{self.port}"

    def wait_connect_logged(self, target: str, timeout: float = 10.0) -> None:
        """tinyproxy logs each request as it reads it, then the connection it made."""
        self.proc.wait_for(rf"Request \(file descriptor \d+\): CONNECT {re.escape(target)} ",
                           timeout)
        host = target.rpartition(":")[0]
        self.proc.wait_for(rf'Established connection to host "{re.escape(host)}"', timeout)

    def log_text(self) -> str:
        return f"{self.conf}:\n{self.conf.read_text()}"

    def stop(self) -> None:
        self.proc.stop()


class Squid:
    """squid -N on 127.0.0.1:<free port>, with its pid file, cache.log and
    access.log in a folder of its own. CONNECT is allowed to `connect_ports`
    only (`http_access deny CONNECT !SSL_ports`: 403 Forbidden for the others);
    with credentials it demands them (basic_ncsa_auth, 407 without).

    Started as root, squid runs as its cache_effective_user (Debian's `proxy`),
    so its folder is then made outside pytest's private temporary folder and
    given to that user."""

    name = "squid configuration and logs"

    def __init__(self, tmp_path: Path, connect_ports: list[int],
                 credentials: tuple[str, str] | None = None):
        exe = harness.require_program("squid")
        self.port = harness.os_port()
        owner = None
        if os.geteuid() == 0:
            try:
                owner = pwd.getpwnam("proxy")
            except KeyError:
                pytest.fail("squid runs as the user 'proxy', which does not exist: run "
                            "scripts/install-deps (as root) to install squid", pytrace=False)
            self.dir = Path(tempfile.mkdtemp(prefix="porthole-squid-"))
        else:
            self.dir = tmp_path / "squid"
            self.dir.mkdir()
        self.conf = self.dir / "squid.conf"
        self.cache_log = harness.LogFile(self.dir / "cache.log")
        self.access_log = harness.LogFile(self.dir / "access.log")
        d = self.dir
        lines = [
            f"http_port 127.0.0.1:{self.port}",
            f"pid_filename {d}/squid.pid",
            f"cache_log {d}/cache.log",
            f"access_log stdio:{d}/access.log squid",
            "cache_store_log none",
            f"coredump_dir {d}",
            "cache deny all",
            "cache_mem 8 MB",
            "pinger_enable off",
            "shutdown_lifetime 0 seconds",
            "visible_hostname porthole-test-proxy",
            # Nothing here needs a name resolved; none may leave the machine.
            "dns_nameservers 127.0.0.1",
        ]
        if owner is not None:
            lines.append(f"cache_effective_user {owner.pw_name}")
        lines += [f"acl SSL_ports port {' '.join(str(p) for p in connect_ports)}",
                  "acl CONNECT method CONNECT"]
        allow = "http_access allow localhost"
        if credentials:
            user, password = credentials
            hashed = subprocess.run(["openssl", "passwd", "-apr1", password], check=True,
                                    capture_output=True, text=True).stdout.strip()
            (d / "passwd").write_text(f"{user}:{hashed}\n")
            helper = Path("/usr/lib/squid/basic_ncsa_auth")
            if not helper.exists():
                pytest.fail(f"{helper} is missing: run scripts/install-deps (as root) to "
                            "install squid", pytrace=False)
            lines += [f"auth_param basic program {helper} {d}/passwd",
                      "auth_param basic children 2",
                      "auth_param basic realm porthole test proxy",
                      "acl authenticated proxy_auth REQUIRED"]
            allow += " authenticated"
        lines += ["http_access deny CONNECT !SSL_ports", allow, "http_access deny all"]
        self.conf.write_text("\n".join(lines) + "\n")
        if owner is not None:
            for path in [d, *d.iterdir()]:
                os.chown(path, owner.pw_uid, owner.pw_gid)
        harness.register(self)
        self.proc = harness.Process([exe, "-N", "-d", "1", "-f", self.conf], name="squid",
                                    env=harness.clean_env(d / "home"), cwd=d)
        self.proc.wait_for(rf"Accepting HTTP Socket connections at .*local=127\.0\.0\.1:"
                           rf"{self.port}\b", PROXY_START_TIMEOUT)

    def url(self, credentials: tuple[str, str] | None = None) -> str:
        auth = f"{credentials[0]}:{credentials[1]}@" if credentials else ""
        return f"http://{auth}127.0.0.1:{self.port}"

    def wait_connect_logged(self, target: str, timeout: float = 10.0) -> None:
        """squid logs a tunnel in access.log when it ends: stop the client first."""
        self.access_log.wait_for(rf" TCP_TUNNEL/200 \d+ CONNECT {re.escape(target)} ", timeout)

    def log_text(self) -> str:
        return (f"{self.conf}:\n{self.conf.read_text() if self.conf.exists() else ''}\n"
                f"access.log:\n{self.access_log.text()}\ncache.log:\n{self.cache_log.text()}")

    def stop(self) -> None:
        self.proc.stop()
        if self.dir.is_relative_to(tempfile.gettempdir()) and "porthole-squid-" in self.dir.name:
            self.access_log.save()
            self.cache_log.save()
            shutil.rmtree(self.dir, ignore_errors=True)


PROXIES = {"tinyproxy": lambda tmp_path, ports, credentials=None:
           Tinyproxy(tmp_path / "tinyproxy", ports, credentials),
           "squid": Squid}

CREDENTIALS = ("porthole-user", "s3cret-pw")

# The client's line when a connection to the server fails, and the one before
# each new attempt.
CANNOT_REACH = r"cannot reach server 127\.0\.0\.1:\d+: "
RETRYING = r"reconnecting in \d+s"


def start_client_through(proxy_url: str, server, http_backend, start_porthole, **kw):
    return start_porthole("http", f"127.0.0.1:{http_backend.port}", "--subdomain", "foo",
                          "--proto", "http", server=server, env=proxy_env(proxy_url), **kw)


def assert_keeps_retrying(client, failure: str) -> None:
    """The client said `failure` on two attempts, each followed by a retry, and
    is still running: a proxy failure is neither fatal nor a crash."""
    client.proc.wait_for_all(failure, 2, timeout=20)
    client.proc.wait_for_all(RETRYING, 2, timeout=5)
    assert client.proc.running, f"the client exited (code {client.proc.returncode})"
    text = client.proc.text()
    assert "Forwarding " not in text
    for crash in ("terminate called", "Aborted", "Segmentation fault", "AddressSanitizer",
                  "runtime error:"):
        assert crash not in text, f"the client crashed: {crash!r}"


@pytest.mark.parametrize("kind", PROXIES)
def test_client_tunnels_through_a_real_proxy_whose_log_shows_the_connect(
        kind, tmp_path, server, http_backend, start_porthole):
    proxy = PROXIES[kind](tmp_path, [server.tunnel_port])
    client = start_client_through(proxy.url(), server, http_backend, start_porthole)
    client.proc.wait_for(rf"through the HTTP proxy 127\.0\.0\.1:{proxy.port}\b")
    assert_hello(client.url())
    assert_hello(client.url())
    # squid writes a tunnel to its log when the tunnel ends.
    client.proc.stop()
    proxy.wait_connect_logged(server.tunnel_addr)


@pytest.mark.parametrize("kind", PROXIES)
def test_client_tunnels_through_a_real_proxy_demanding_credentials(
        kind, tmp_path, server, http_backend, start_porthole):
    proxy = PROXIES[kind](tmp_path, [server.tunnel_port], CREDENTIALS)
    client = start_client_through(proxy.url(CREDENTIALS), server, http_backend, start_porthole)
    assert_hello(client.url())
    assert CREDENTIALS[1] not in client.proc.text(), "the client logged the proxy password"
    client.proc.stop()
    proxy.wait_connect_logged(server.tunnel_addr)
    if kind == "squid":
        # The tunnel was opened by the authenticated user.
        proxy.access_log.wait_for(rf" CONNECT {re.escape(server.tunnel_addr)} "
                                  rf"{re.escape(CREDENTIALS[0])} ")


@pytest.mark.parametrize("kind", PROXIES)
@pytest.mark.parametrize("given", ["wrong-password", "no-credentials"])
def test_a_real_proxy_refusing_credentials_is_reported_as_407_and_the_client_retries(
        kind, given, tmp_path, server, http_backend, start_porthole):
    proxy = PROXIES[kind](tmp_path, [server.tunnel_port], CREDENTIALS)
    url = proxy.url((CREDENTIALS[0], "wrong-pw")) if given == "wrong-password" else proxy.url()
    client = start_client_through(url, server, http_backend, start_porthole, wait_up=False)
    # tinyproxy 1.11 answers wrong credentials with 401, not 407: the client
    # explains both the same way.
    status = ("401 Unauthorized" if (kind, given) == ("tinyproxy", "wrong-password")
              else "407 Proxy Authentication Required")
    refused = (CANNOT_REACH + rf"HTTP proxy 127\.0\.0\.1:{proxy.port} refused CONNECT "
               rf"{re.escape(server.tunnel_addr)}: {status} "
               r"\(proxy authentication needed or refused: check user:password in the proxy "
               r"URL\)$")
    assert_keeps_retrying(client, refused)
    assert "wrong-pw" not in client.proc.text(), "the client logged the proxy password"
    assert not re.search(r"client connected client=", server.proc.text()), \
        "a client reached the server although the proxy refused every CONNECT"
    if kind == "squid":
        proxy.access_log.wait_for(rf" TCP_DENIED/407 \d+ CONNECT "
                                  rf"{re.escape(server.tunnel_addr)} ")


@pytest.mark.parametrize("kind,reason", [("tinyproxy", "Access violation"),
                                         ("squid", "Forbidden")])
def test_a_real_proxy_denying_the_server_port_is_reported_as_403_and_the_client_retries(
        kind, reason, tmp_path, server, http_backend, start_porthole):
    # A corporate proxy that lets CONNECT out to port 443 only.
    proxy = PROXIES[kind](tmp_path, [443])
    client = start_client_through(proxy.url(), server, http_backend, start_porthole,
                                  wait_up=False)
    target = re.escape(server.tunnel_addr)
    denied = (CANNOT_REACH + rf"HTTP proxy 127\.0\.0\.1:{proxy.port} refused CONNECT {target}: "
              rf"403 {reason} \(the proxy does not allow connections to {target}\)$")
    assert_keeps_retrying(client, denied)
    assert not re.search(r"client connected client=", server.proc.text())


def test_an_unreachable_proxy_is_reported_and_the_client_retries(
        server, http_backend, start_porthole):
    closed = harness.dead_port()
    try:
        port = closed.getsockname()[1]
        client = start_client_through(f"http://127.0.0.1:{port}", server, http_backend,
                                      start_porthole, wait_up=False)
        assert_keeps_retrying(client, CANNOT_REACH + rf"cannot reach the HTTP proxy "
                                                     rf"127\.0\.0\.1:{port}: Connection refused$")
    finally:
        closed.close()
