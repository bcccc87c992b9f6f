"""HTTP through an http tunnel: bodies in both directions, forwarded headers."""

import hashlib
import json

import pytest

from harness import TRANSPORTS, curl, deterministic_bytes

TEN_MIB = 10 * 1024 * 1024


def test_tunnel_up_line_names_public_url_and_local_address(server, http_backend, start_porthole):
    client = start_porthole("http", str(http_backend.port), "--subdomain", "foo",
                            "--proto", "http", server=server)
    assert client.urls == [f"http://foo.localhost:{server.http_port}"]
    assert client.locals == [f"localhost:{http_backend.port}"]


@pytest.mark.parametrize("transport", TRANSPORTS, indirect=True)
def test_get_returns_backend_response(server, http_tunnel):
    r = curl(f"{http_tunnel.url()}/hello")
    assert (r.returncode, r.status, r.body) == (0, 200, b"hello"), r.stderr


@pytest.mark.parametrize("transport", TRANSPORTS, indirect=True)
def test_post_10mib_body_arrives_intact(server, http_tunnel, tmp_path):
    data = deterministic_bytes(TEN_MIB, seed=1)
    f = tmp_path / "upload.bin"
    f.write_bytes(data)
    r = curl(f"{http_tunnel.url()}/upload", "--data-binary", f"@{f}",
             "-H", "Content-Type: application/octet-stream")
    assert (r.returncode, r.status) == (0, 200), r.stderr
    got = json.loads(r.body)
    assert got["length"] == TEN_MIB
    assert got["sha256"] == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("transport", TRANSPORTS, indirect=True)
def test_chunked_upload_10mib_arrives_intact(server, http_tunnel, tmp_path):
    data = deterministic_bytes(TEN_MIB, seed=2)
    f = tmp_path / "upload.bin"
    f.write_bytes(data)
    r = curl(f"{http_tunnel.url()}/upload", "--data-binary", f"@{f}",
             "-H", "Transfer-Encoding: chunked", "-H", "Content-Type: application/octet-stream")
    assert (r.returncode, r.status) == (0, 200), r.stderr
    got = json.loads(r.body)
    assert got["length"] == TEN_MIB
    assert got["sha256"] == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("transport", TRANSPORTS, indirect=True)
def test_chunked_download_10mib_arrives_intact(server, http_tunnel):
    r = curl(f"{http_tunnel.url()}/bytes/{TEN_MIB}")
    assert (r.returncode, r.status) == (0, 200), r.stderr
    assert len(r.body) == TEN_MIB
    assert hashlib.sha256(r.body).digest() == hashlib.sha256(deterministic_bytes(TEN_MIB)).digest()


def test_backend_sees_x_forwarded_headers(server, http_tunnel):
    r = curl(f"{http_tunnel.url()}/headers")
    assert (r.returncode, r.status) == (0, 200), r.stderr
    seen = json.loads(r.body)["headers"]
    assert seen.get("x-forwarded-for") == "127.0.0.1"
    assert seen.get("x-forwarded-proto") == "http"
    assert seen.get("x-forwarded-host") == f"foo.localhost:{server.http_port}"


def test_host_header_port_is_ignored_for_routing(server, http_tunnel):
    # Routing is by the Host name only: a Host with another port reaches the same tunnel.
    r = curl(f"{http_tunnel.url()}/hello", "-H", "Host: foo.localhost:1")
    assert (r.returncode, r.status, r.body) == (0, 200, b"hello"), r.stderr
