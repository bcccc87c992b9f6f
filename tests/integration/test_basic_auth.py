"""A tunnel with --auth user:pass: HTTP basic auth checked on every request."""

import pytest

from harness import TRANSPORTS, RawHTTP, basic_auth, curl

GOOD = basic_auth("user", "pass")


@pytest.fixture
def auth_tunnel(server, http_backend, start_porthole):
    return start_porthole("http", f"127.0.0.1:{http_backend.port}", "--subdomain", "foo",
                          "--proto", "http", "--auth", "user:pass", server=server)


def test_request_without_credentials_gets_401_with_basic_challenge(server, auth_tunnel):
    r = curl(f"{auth_tunnel.url()}/hello")
    assert (r.returncode, r.status) == (0, 401), r.stderr
    assert (r.header("www-authenticate") or "").lower().startswith("basic")
    assert r.body != b"hello"


def test_wrong_credentials_get_401(server, auth_tunnel):
    r = curl(f"{auth_tunnel.url()}/hello", "-u", "user:wrong")
    assert (r.returncode, r.status) == (0, 401), r.stderr


def test_right_credentials_reach_the_backend(server, auth_tunnel):
    r = curl(f"{auth_tunnel.url()}/hello", "-u", "user:pass")
    assert (r.returncode, r.status, r.body) == (0, 200, b"hello"), r.stderr


@pytest.mark.parametrize("transport", TRANSPORTS, indirect=True)
def test_every_request_on_a_keepalive_connection_is_checked(server, auth_tunnel):
    host = f"foo.localhost:{server.http_port}"
    with RawHTTP(server.http_port, timeout=10) as c:
        local = c.sock.getsockname()
        for i in range(100):
            if i == 50:
                # No credentials in the middle of the connection: refused, connection kept.
                resp = c.request("GET", "/hello", [("Host", host)])
                assert resp.status == 401, f"request {i} without credentials"
                assert (resp.header("WWW-Authenticate") or "").lower().startswith("basic")
                assert (resp.header("Connection") or "").lower() != "close"
                continue
            resp = c.request("GET", f"/echo/{i}", [("Host", host), ("Authorization", GOOD)])
            assert (resp.status, resp.body) == (200, str(i).encode()), f"request {i}"
            assert (resp.header("Connection") or "").lower() != "close", f"request {i}"
        # All 100 responses came on the one connection this test opened.
        assert c.sock.getsockname() == local
        assert not c.closed_by_peer(0.2), "the server closed the kept-alive connection"
