"""The server refuses a client: bad authtoken, subdomain already taken."""

import pytest

from harness import curl


@pytest.fixture
def token_server(start_portholed):
    return start_portholed(authtokens=["good-token", "other-token"])


def test_bad_authtoken_is_refused(token_server, http_backend, start_porthole):
    client = start_porthole("http", f"127.0.0.1:{http_backend.port}", "--subdomain", "foo",
                            "--proto", "http", server=token_server, authtoken="bad-token",
                            wait_up=False)
    assert client.proc.wait_exit() != 0
    assert "invalid authtoken" in client.proc.text("stderr")
    assert "Forwarding " not in client.proc.text()


def test_good_authtoken_is_accepted(token_server, http_backend, start_porthole):
    client = start_porthole("http", f"127.0.0.1:{http_backend.port}", "--subdomain", "foo",
                            "--proto", "http", server=token_server, authtoken="other-token")
    assert client.urls == [f"http://foo.localhost:{token_server.http_port}"]
    r = curl(f"{client.url()}/hello")
    assert (r.returncode, r.status, r.body) == (0, 200, b"hello"), r.stderr


def test_taken_subdomain_is_refused_and_first_client_keeps_working(server, http_backend,
                                                                   start_porthole):
    first = start_porthole("http", f"127.0.0.1:{http_backend.port}", "--subdomain", "foo",
                           "--proto", "http", server=server)
    second = start_porthole("http", f"127.0.0.1:{http_backend.port}", "--subdomain", "foo",
                            "--proto", "http", server=server, wait_up=False)
    assert second.proc.wait_exit() != 0
    assert "already registered" in second.proc.text("stderr")
    assert "Forwarding " not in second.proc.text()
    assert first.proc.running
    r = curl(f"{first.url()}/hello")
    assert (r.returncode, r.status, r.body) == (0, 200, b"hello"), r.stderr
