"""HTTP/2 on the public side: ALPN h2 on HTTPS, h2c with prior knowledge on
plain HTTP. Each HTTP/2 request is routed, checked and forwarded as an
HTTP/1.1 one is, and reaches an HTTP/1.1 local service as HTTP/1.1."""

import hashlib
import json
import shutil
import subprocess

import pytest

import harness
from harness import curl, deterministic_bytes
from test_replay_export import api, wait_for

SCHEMES = ["https", "http"]  # h2 by ALPN, h2c by prior knowledge


def h2_args(scheme: str) -> list[str]:
    return ["--http2"] if scheme == "https" else ["--http2-prior-knowledge"]


def get(server, url: str, scheme: str, *args: str) -> harness.CurlResult:
    return curl(url, *h2_args(scheme), *args, cacert=server.ca if scheme == "https" else None)


@pytest.fixture
def tunnel(server, http_backend, start_porthole):
    return start_porthole("http", f"127.0.0.1:{http_backend.port}", "--subdomain", "foo",
                          server=server)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_an_http2_request_reaches_an_http1_service(server, tunnel, http_backend, scheme):
    r = get(server, f"{tunnel.url(scheme)}/hello", scheme)
    assert (r.returncode, r.version, r.status, r.body) == (0, "2", 200, b"hello"), r.stderr
    assert http_backend.hits("GET /hello") == 1, http_backend.log_text()


def test_https_still_speaks_http1_to_a_client_that_asks_for_it(server, tunnel):
    r = curl(f"{tunnel.url('https')}/hello", "--http1.1", cacert=server.ca)
    assert (r.returncode, r.version, r.status, r.body) == (0, "1.1", 200, b"hello"), r.stderr


def test_an_unknown_name_gets_the_404_page_over_h2c(server, tunnel):
    r = get(server, server.url("nope", "http") + "/", "http")
    assert (r.returncode, r.version, r.status) == (0, "2", 404), r.stderr
    assert b"Tunnel nope.localhost not found" in r.body


def test_https_offers_h2_only_for_names_it_serves_to_a_porthole_client(server, tunnel):
    # ALPN is decided in the handshake, by SNI: a name no tunnel serves here
    # (and an ngrok 1.x client's, test_ngrok_client_interop.py) stays HTTP/1.1.
    r = get(server, server.url("nope", "https") + "/", "https")
    assert (r.returncode, r.version, r.status) == (0, "1.1", 404), r.stderr
    r = get(server, f"{tunnel.url('https')}/hello", "https")
    assert (r.returncode, r.version, r.status) == (0, "2", 200), r.stderr


@pytest.mark.parametrize("scheme", SCHEMES)
def test_basic_auth_is_asked_of_every_http2_request(server, http_backend, start_porthole,
                                                    scheme):
    client = start_porthole("http", f"127.0.0.1:{http_backend.port}", "--subdomain", "locked",
                            "--auth", "user:pass", server=server)
    r = get(server, f"{client.url(scheme)}/hello", scheme)
    assert (r.version, r.status) == ("2", 401), r.stderr
    assert (r.header("www-authenticate") or "").lower().startswith("basic")
    r = get(server, f"{client.url(scheme)}/hello", scheme, "-u", "user:pass")
    assert (r.version, r.status, r.body) == ("2", 200, b"hello"), r.stderr


@pytest.mark.parametrize("scheme", SCHEMES)
def test_http2_requests_get_the_forwarded_fields(server, tunnel, scheme):
    r = get(server, f"{tunnel.url(scheme)}/headers", scheme, "-H",
            "X-Forwarded-For: 6.6.6.6", "-H", "Cookie: a=1", "-H", "Cookie: b=2")
    assert (r.version, r.status) == ("2", 200), r.stderr
    seen = json.loads(r.body)["headers"]
    assert seen["x-forwarded-for"] == "6.6.6.6, 127.0.0.1"
    assert seen["x-forwarded-proto"] == scheme
    assert seen["host"] == tunnel.url(scheme).split("://", 1)[1]
    assert seen["cookie"] == "a=1; b=2"


@pytest.mark.parametrize("scheme", SCHEMES)
def test_ten_mib_each_way_over_http2(server, tunnel, scheme, tmp_path):
    size = 10 * 1024 * 1024
    r = get(server, f"{tunnel.url(scheme)}/bytes/{size}", scheme)
    assert (r.version, r.status, len(r.body)) == ("2", 200, size), r.stderr
    assert r.body == deterministic_bytes(size)

    upload = tmp_path / "upload.bin"
    upload.write_bytes(deterministic_bytes(size, seed=1))
    r = get(server, f"{tunnel.url(scheme)}/upload", scheme, "--data-binary", f"@{upload}")
    assert (r.version, r.status) == ("2", 200), r.stderr
    seen = json.loads(r.body)
    assert seen["length"] == size
    assert seen["sha256"] == hashlib.sha256(deterministic_bytes(size, seed=1)).hexdigest()


def test_a_body_of_unknown_length_reaches_the_service_chunked(server, tunnel, tmp_path):
    # curl sends a body read from stdin without content-length over HTTP/2.
    data = deterministic_bytes(300_000, seed=2)
    p = subprocess.run(["curl", "-q", "-sS", "--noproxy", "*", "--http2", "--cacert",
                        str(server.ca), "--resolve",
                        f"foo.localhost:{server.https_port}:127.0.0.1", "-T", "-", "-X", "POST",
                        f"{tunnel.url('https')}/upload"],
                       input=data, capture_output=True, timeout=60,
                       env=harness.clean_env(tmp_path / "home"))
    assert p.returncode == 0, p.stderr
    seen = json.loads(p.stdout)
    assert seen == {"length": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                    "chunked": True}


@pytest.mark.parametrize("scheme", SCHEMES)
def test_a_hundred_concurrent_streams_on_one_connection(server, tunnel, scheme):
    if not shutil.which("h2load"):
        pytest.skip("h2load (Debian nghttp2-client) is not installed")
    port = server.https_port if scheme == "https" else server.http_port
    # h2load connects to the address in the URL and sends its authority.
    url = f"{scheme}://127.0.0.1:{port}/hello"
    p = subprocess.run(["h2load", "-n", "1000", "-c", "1", "-m", "100",
                        "-H", f":authority: foo.localhost:{port}", url],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "1000 succeeded, 0 failed, 0 errored" in p.stdout, p.stdout
    assert "status codes: 1000 2xx" in p.stdout, p.stdout


def inspected_tunnel(server, http_backend, start_porthole, tmp_path, sub: str):
    """A tunnel to the HTTP/1.1 backend with the inspector on: (client, its address)."""
    client = start_porthole("http", f"127.0.0.1:{http_backend.port}", "--subdomain", sub,
                            "--inspect-addr", "127.0.0.1:0", "--inspect-db",
                            str(tmp_path / "captures.db"), server=server)
    return client, client.proc.wait_for(r"web interface on http://(?P<addr>\S+)")["addr"]


def test_the_inspector_marks_exchanges_that_came_over_http2(server, http_backend,
                                                            start_porthole, tmp_path):
    client, addr = inspected_tunnel(server, http_backend, start_porthole, tmp_path, "seen")
    assert get(server, f"{client.url('http')}/echo/two", "http").version == "2"
    assert curl(f"{client.url('http')}/echo/one", "--http1.1").version == "1.1"
    newest, oldest = wait_for(addr, 2)[:2]
    assert (oldest["request"]["proto"], oldest["response"]["proto"]) == ("HTTP/2", "HTTP/2")
    assert newest["request"]["proto"] == "HTTP/1.1"
    status, _, har = api(addr, "/api/requests/har")
    assert status == 200
    versions = {e["request"]["url"].rsplit("/", 1)[1]: e["request"]["httpVersion"]
                for e in har["log"]["entries"]}
    assert versions == {"two": "HTTP/2", "one": "HTTP/1.1"}


def test_an_exchange_that_came_over_http2_replays_to_an_http1_service(server, http_backend,
                                                                     start_porthole, tmp_path):
    client, addr = inspected_tunnel(server, http_backend, start_porthole, tmp_path, "again")
    assert get(server, f"{client.url('http')}/echo/twice", "http").status == 200
    first = wait_for(addr, 1)[0]
    status, _, replayed = api(addr, "/api/requests/http", "POST", {"id": first["id"]})
    assert status == 201, replayed
    assert replayed["response"]["status_code"] == 200
    assert replayed["response"]["body"]["text"] == "twice"
    assert http_backend.hits("GET /echo/twice") == 2, http_backend.log_text()
