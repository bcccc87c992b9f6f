"""Public HTTPS with the dev CA, and one port for both tunnel clients and HTTPS."""

import json
from pathlib import Path

import pytest

from harness import TRANSPORTS, curl, os_port


def test_dev_mode_logs_its_ca_certificate(server):
    # Waited for: the server is ready (its ready file) before its reader
    # thread may have read this earlier line.
    m = server.proc.wait_for(r"dev CA certificate;.* path=(\S+)")
    ca = Path(m[1])
    assert ca.resolve() == (server.state_dir / "ca.pem").resolve()
    assert ca.read_text().startswith("-----BEGIN CERTIFICATE-----")


@pytest.mark.parametrize("transport", TRANSPORTS, indirect=True)
def test_https_tunnel_is_served_on_public_https_with_dev_ca(server, http_backend, start_porthole):
    client = start_porthole("http", f"127.0.0.1:{http_backend.port}", "--subdomain", "foo",
                            "--proto", "https", server=server)
    assert client.urls == [f"https://foo.localhost:{server.https_port}"]
    r = curl(f"{client.url('https')}/hello", cacert=server.ca)
    assert (r.returncode, r.status, r.body) == (0, 200, b"hello"), r.stderr


def test_backend_sees_x_forwarded_proto_https(server, http_backend, start_porthole):
    client = start_porthole("http", f"127.0.0.1:{http_backend.port}", "--subdomain", "foo",
                            "--proto", "https", server=server)
    r = curl(f"{client.url('https')}/headers", cacert=server.ca)
    assert (r.returncode, r.status) == (0, 200), r.stderr
    seen = json.loads(r.body)["headers"]
    assert seen.get("x-forwarded-proto") == "https"
    assert seen.get("x-forwarded-for") == "127.0.0.1"
    assert seen.get("x-forwarded-host") == f"foo.localhost:{server.https_port}"


def test_default_proto_serves_http_and_https(server, http_backend, start_porthole):
    client = start_porthole("http", f"127.0.0.1:{http_backend.port}", "--subdomain", "both",
                            server=server)
    assert sorted(client.urls) == sorted([f"http://both.localhost:{server.http_port}",
                                          f"https://both.localhost:{server.https_port}"])
    r = curl(f"{client.url('http')}/hello")
    assert (r.returncode, r.status, r.body) == (0, 200, b"hello"), r.stderr
    r = curl(f"{client.url('https')}/hello", cacert=server.ca)
    assert (r.returncode, r.status, r.body) == (0, 200, b"hello"), r.stderr


def test_one_port_serves_tunnel_clients_and_public_https(start_portholed, http_backend,
                                                         start_porthole):
    port = os_port()
    server = start_portholed(https_addr=f"127.0.0.1:{port}", tunnel_addr=f"127.0.0.1:{port}")
    assert server.tunnel_port == port and server.https_port == port
    client = start_porthole("http", f"127.0.0.1:{http_backend.port}", "--subdomain", "foo",
                            server=server)
    assert f"https://foo.localhost:{port}" in client.urls
    r = curl(f"https://foo.localhost:{port}/hello", cacert=server.ca)
    assert (r.returncode, r.status, r.body) == (0, 200, b"hello"), r.stderr
    r = curl(f"http://foo.localhost:{server.http_port}/hello")
    assert (r.returncode, r.status, r.body) == (0, 200, b"hello"), r.stderr
