"""The fields that tell the local service who the public client is (X-Forwarded-*,
Forwarded, X-Real-IP) are portholed's alone: a public client can neither set
them under another spelling nor make a proxy behind the tunnel drop them
(issue 16, items 4 and 5; docs/SECURITY.md, "What the local service is told
about the client").

The public client connects from 127.0.0.2, so that its address differs from
the one the tunnel client connects from (127.0.0.1)."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest

import harness
from harness import TRANSPORTS, RawHTTP

PUBLIC_CLIENT_IP = "127.0.0.2"

# Every field a client may not set, each under its own spelling and with
# underscores (which CGI and WSGI servers merge with the dashed spelling,
# the client's value first), each claiming https, another host or 6.6.6.6.
FORGED_FIELDS = [
    ("X_Forwarded_Proto", "https"),
    ("X_Forwarded_Host", "evil.example"),
    ("X_Forwarded_Port", "443"),
    ("X_Forwarded_For", "6.6.6.6"),
    ("X-Forwarded-Scheme", "https"),
    ("X-Forwarded-Ssl", "on"),
    ("Front-End-Https", "on"),
    ("X-Forwarded-Port", "443"),
    ("X-Real-IP", "6.6.6.6"),
    ("X_Real_IP", "6.6.6.6"),
    ("Forwarded", "for=6.6.6.6;proto=https;host=evil.example"),
    ("True-Client-IP", "6.6.6.6"),
    ("X-Client-IP", "6.6.6.6"),
]

# The Connection header of Traefik's CVE-2024-45410: every forwarding field
# made hop-by-hop, for the next proxy to drop.
STRIPPING_CONNECTION = ("keep-alive, X-Forwarded-For, X-Forwarded-Proto, X-Forwarded-Host, "
                        "X-Forwarded-Port, X-Real-IP, Forwarded")


def public_request(server: harness.Server, path: str,
                   headers: list[tuple[str, str]]) -> harness.Response:
    """GET path on foo.localhost through portholed's public HTTP port, from
    PUBLIC_CLIENT_IP."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(harness.scaled(30))
    sock.bind((PUBLIC_CLIENT_IP, 0))
    sock.connect(("127.0.0.1", server.http_port))
    with RawHTTP(server.http_port, sock=sock) as conn:
        return conn.request("GET", path,
                            [("Host", f"foo.localhost:{server.http_port}"), *headers])


# ---------------------------------------------------------------------------
# A WSGI service (the standard library's wsgiref, which merges the `_` and
# `-` spellings of a field into one HTTP_* variable, the first sent first)
# ---------------------------------------------------------------------------


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, fmt, *args):
        self.server.note(fmt % args)


class _NotingWSGIServer(WSGIServer):
    def note(self, text: str) -> None:
        with self.log_lock:
            self.log.append(text)


class WSGIEnvironBackend:
    """Answers every request with the HTTP_* variables of its WSGI environ, as
    JSON: what a WSGI application (Django, Flask) reads."""

    name = "wsgi-environ-backend"

    def __init__(self):
        def app(environ, start_response):
            body = json.dumps({k: v for k, v in environ.items()
                               if k.startswith("HTTP_")}).encode()
            start_response("200 OK", [("Content-Type", "application/json"),
                                      ("Content-Length", str(len(body)))])
            return [body]

        self.httpd = make_server("127.0.0.1", 0, app, server_class=_NotingWSGIServer,
                                 handler_class=_QuietHandler)
        self.httpd.log = []
        self.httpd.log_lock = threading.Lock()
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, name=self.name,
                                       daemon=True)
        self.thread.start()
        harness.register(self)

    def log_text(self) -> str:
        with self.httpd.log_lock:
            return "\n".join(self.httpd.log)

    def stop(self) -> None:
        if self.thread.is_alive():
            self.httpd.shutdown()
            self.thread.join(5)
        self.httpd.server_close()


@pytest.mark.parametrize("transport", TRANSPORTS, indirect=True)
def test_wsgi_service_sees_only_portholeds_forwarding_fields(server, start_porthole):
    backend = WSGIEnvironBackend()
    start_porthole("http", f"127.0.0.1:{backend.port}", "--subdomain", "foo",
                   "--proto", "http", server=server)
    r = public_request(server, "/", FORGED_FIELDS)
    assert r.status == 200, r.body
    environ = json.loads(r.body)
    host = f"foo.localhost:{server.http_port}"
    assert environ.get("HTTP_X_FORWARDED_FOR") == PUBLIC_CLIENT_IP
    assert environ.get("HTTP_X_FORWARDED_PROTO") == "http"
    assert environ.get("HTTP_X_FORWARDED_HOST") == host
    assert environ.get("HTTP_X_FORWARDED_PORT") == str(server.http_port)
    assert environ.get("HTTP_X_REAL_IP") == PUBLIC_CLIENT_IP
    assert environ.get("HTTP_FORWARDED") == f'for={PUBLIC_CLIENT_IP};proto=http;host="{host}"'
    for forged in ("HTTP_X_FORWARDED_SCHEME", "HTTP_X_FORWARDED_SSL", "HTTP_FRONT_END_HTTPS",
                   "HTTP_TRUE_CLIENT_IP", "HTTP_X_CLIENT_IP"):
        assert forged not in environ, environ
    assert "6.6.6.6" not in r.body.decode() and "evil.example" not in r.body.decode(), environ


def test_forwarded_for_keeps_the_clients_list_with_portholeds_entry_last(
        server, http_backend, start_porthole):
    start_porthole("http", f"127.0.0.1:{http_backend.port}", "--subdomain", "foo",
                   "--proto", "http", server=server)
    r = public_request(server, "/headers", [("X-Forwarded-For", "198.51.100.1, 198.51.100.2")])
    assert r.status == 200, r.body
    seen = json.loads(r.body)["headers"]
    assert seen.get("x-forwarded-for") == f"198.51.100.1, 198.51.100.2, {PUBLIC_CLIENT_IP}"
    assert seen.get("x-real-ip") == PUBLIC_CLIENT_IP


# ---------------------------------------------------------------------------
# A reverse proxy between the tunnel client and the service
# ---------------------------------------------------------------------------

APACHE_START_TIMEOUT = 30.0
APACHE_MODULES = Path("/usr/lib/apache2/modules")


class Apache:
    """Debian's Apache httpd as a reverse proxy (mod_proxy_http, its default
    ProxyAddHeaders On) to 127.0.0.1:<backend_port>, on 127.0.0.1:<free port>,
    in the foreground (-X: one process, no daemon) with its own configuration;
    the package's service is not used. Like every RFC 9110 proxy (and Go's
    httputil.ReverseProxy, Traefik, Envoy), it drops the request fields that
    Connection names. (nginx and HAProxy do not, so they cannot show this.)

    Started as root, Apache serves as `nobody`; its folder is then made outside
    pytest's private temporary folder."""

    name = "apache2 configuration"

    def __init__(self, tmp_path: Path, backend_port: int):
        exe = harness.require_program("apache2")
        if not (APACHE_MODULES / "mod_proxy_http.so").exists():
            pytest.fail(f"{APACHE_MODULES}/mod_proxy_http.so is missing: run scripts/install-deps "
                        "(as root) to install apache2-bin", pytrace=False)
        self.port = harness.os_port()
        if os.geteuid() == 0:
            nobody = pwd.getpwnam("nobody")
            self.dir = Path(tempfile.mkdtemp(prefix="porthole-apache-"))
            user = [f"User {nobody.pw_name}", f"Group #{nobody.pw_gid}"]
        else:
            self.dir = tmp_path / "apache"
            self.dir.mkdir()
            user = []
        self.conf = self.dir / "httpd.conf"
        lines = [
            f"ServerRoot {self.dir}",
            *(f"LoadModule {m}_module {APACHE_MODULES}/mod_{m}.so"
              for m in ("mpm_event", "authz_core", "proxy", "proxy_http")),
            *user,
            "ServerName localhost",
            f"Listen 127.0.0.1:{self.port}",
            f"PidFile {self.dir}/httpd.pid",
            "ErrorLog /dev/stderr",
            "LogLevel info",
            "Mutex posixsem",
            "ProxyPreserveHost On",
            f"ProxyPass / http://127.0.0.1:{backend_port}/",
        ]
        self.conf.write_text("\n".join(lines) + "\n")
        harness.register(self)
        self.proc = harness.Process([exe, "-X", "-d", self.dir, "-f", self.conf], name="apache2",
                                    env=harness.clean_env(self.dir / "home"), cwd=self.dir)
        self._wait_listening(harness.scaled(APACHE_START_TIMEOUT))

    def _wait_listening(self, timeout: float) -> None:
        # In the foreground (-X) Apache logs nothing once it listens.
        deadline = time.monotonic() + timeout
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if not self.proc.running or time.monotonic() > deadline:
                    raise AssertionError(f"apache2 is not listening on {self.port}: "
                                         f"{self.proc.text()[-2000:]}") from None
                time.sleep(0.05)

    def log_text(self) -> str:
        return f"{self.conf}:\n{self.conf.read_text() if self.conf.exists() else ''}"

    def stop(self) -> None:
        self.proc.stop()
        if self.dir.name.startswith("porthole-apache-"):
            shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def proxied_tunnel(server, http_backend, start_porthole, tmp_path):
    """foo.localhost -> porthole -> Apache -> the HTTP backend."""
    apache = Apache(tmp_path, http_backend.port)
    return start_porthole("http", f"127.0.0.1:{apache.port}", "--subdomain", "foo",
                          "--proto", "http", server=server)


def forwarded_list(value: str | None) -> list[str]:
    return [v.strip() for v in value.split(",")] if value else []


def test_service_behind_a_proxy_sees_the_public_client(server, proxied_tunnel):
    r = public_request(server, "/headers", [])
    assert r.status == 200, r.body
    seen = json.loads(r.body)["headers"]
    # portholed's entry, then Apache's (the tunnel client's address).
    assert forwarded_list(seen.get("x-forwarded-for")) == [PUBLIC_CLIENT_IP, "127.0.0.1"]
    assert seen.get("x-forwarded-proto") == "http"


@pytest.mark.parametrize("transport", TRANSPORTS, indirect=True)
def test_connection_header_cannot_make_a_proxy_behind_the_tunnel_drop_forwarded_fields(
        server, proxied_tunnel):
    r = public_request(server, "/headers", [("Connection", STRIPPING_CONNECTION)])
    assert r.status == 200, r.body
    seen = json.loads(r.body)["headers"]
    host = f"foo.localhost:{server.http_port}"
    # Without portholed's fields the service would see only Apache's hop: a
    # request from 127.0.0.1, over plain http only because nothing said https.
    assert forwarded_list(seen.get("x-forwarded-for")) == [PUBLIC_CLIENT_IP, "127.0.0.1"]
    assert seen.get("x-forwarded-proto") == "http"
    assert forwarded_list(seen.get("x-forwarded-host"))[0] == host
    assert seen.get("x-forwarded-port") == str(server.http_port)
    assert seen.get("x-real-ip") == PUBLIC_CLIENT_IP
    assert seen.get("forwarded") == f'for={PUBLIC_CLIENT_IP};proto=http;host="{host}"'
