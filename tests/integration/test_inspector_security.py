"""The client's web inspector against hostile web pages: it listens on loopback
unless told otherwise, answers only Host headers that name it (DNS rebinding),
refuses writes from other origins, and lets no other origin read what it has
captured. Driven with curl sending the headers a hostile page's browser would."""

from __future__ import annotations

import time

import pytest

from harness import curl


@pytest.fixture
def inspected(server, http_backend, start_porthole, tmp_path):
    client = start_porthole("http", f"127.0.0.1:{http_backend.port}", "--subdomain", "sec",
                            "--proto", "http", "--inspect-addr", "127.0.0.1:0",
                            "--inspect-db", str(tmp_path / "c.db"), server=server)
    addr = client.proc.wait_for(r"web interface on http://(?P<addr>\S+)")["addr"]
    r = curl(f"{client.url()}/echo/captured")
    assert r.status == 200, r.stderr
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        listed = curl(f"http://{addr}/api/requests/http")
        if b"/echo/captured" in listed.body:
            break
        time.sleep(0.05)
    else:
        raise AssertionError(f"the request was not captured: {listed.body[:300]!r}")
    return client, addr


def captured_id(addr: str) -> int:
    import json
    return json.loads(curl(f"http://{addr}/api/requests/http").body)["requests"][0]["id"]


def replay(addr: str, *headers: str, content_type: str = "application/json"):
    args = ["-X", "POST", "--data", f'{{"id": {captured_id(addr)}}}',
            "-H", f"Content-Type: {content_type}"]
    for h in headers:
        args += ["-H", h]
    return curl(f"http://{addr}/api/requests/http", *args)


def test_inspector_listens_on_loopback_by_default_without_warning(server, http_backend,
                                                                  start_porthole, tmp_path):
    client = start_porthole("http", f"127.0.0.1:{http_backend.port}", "--subdomain", "sec",
                            "--proto", "http", "--inspect-addr=default",
                            "--inspect-db", str(tmp_path / "c.db"), server=server)
    addr = client.proc.wait_for(r"web interface on http://(?P<addr>\S+)")["addr"]
    assert addr.startswith("127.0.0.1:404"), addr
    assert "not on loopback" not in client.proc.text()


def test_inspector_on_all_interfaces_warns(server, http_backend, start_porthole, tmp_path):
    client = start_porthole("http", f"127.0.0.1:{http_backend.port}", "--subdomain", "sec",
                            "--proto", "http", "--inspect-addr", "0.0.0.0:0",
                            "--inspect-db", str(tmp_path / "c.db"), server=server)
    line = client.proc.wait_for(r"web interface: listening on 0\.0\.0\.0:\d+, not on loopback")
    assert "replay requests" in line.string


@pytest.mark.parametrize("host", ["evil.example:{port}", "evil.example",
                                  "127.0.0.1.evil.example:{port}",
                                  "localhost.evil.example:{port}", "127.0.0.1:1", "[::2]:{port}"])
@pytest.mark.parametrize("path", ["/", "/api/requests/http", "/api/tunnels"])
def test_foreign_host_header_gets_403_naming_dns_rebinding(host, path, inspected):
    _, addr = inspected
    port = addr.rsplit(":", 1)[1]
    r = curl(f"http://{addr}{path}", "-H", f"Host: {host.format(port=port)}")
    assert r.status == 403, (r.status, r.body)
    assert b"DNS rebinding" in r.body
    assert b"/echo/captured" not in r.body


@pytest.mark.parametrize("host", ["localhost:{port}", "127.0.0.1:{port}", "LOCALHOST:{port}"])
def test_own_host_names_are_served(host, inspected):
    _, addr = inspected
    port = addr.rsplit(":", 1)[1]
    r = curl(f"http://{addr}/api/requests/http", "-H", f"Host: {host.format(port=port)}")
    assert r.status == 200 and b"/echo/captured" in r.body


def test_replay_with_foreign_host_is_refused_and_nothing_is_replayed(inspected, http_backend):
    _, addr = inspected
    before = http_backend.hits("GET /echo/captured")
    r = replay(addr, "Host: evil.example")
    assert r.status == 403 and b"DNS rebinding" in r.body
    assert http_backend.hits("GET /echo/captured") == before


@pytest.mark.parametrize("headers", [
    ["Origin: http://evil.example"],
    ["Origin: null"],
    ["Origin: http://localhost:1"],
    ["Origin: http://{addr}.evil.example"],
    ["Sec-Fetch-Site: cross-site"],
    ["Sec-Fetch-Site: same-site"],
    ["Origin: http://evil.example", "Sec-Fetch-Site: cross-site"],
], ids=["foreign", "null", "other_port", "suffix", "cross_site", "same_site", "both"])
@pytest.mark.parametrize("content_type", ["application/json", "text/plain"])
def test_cross_origin_replay_is_refused_and_nothing_is_replayed(headers, content_type, inspected,
                                                                http_backend):
    _, addr = inspected
    before = http_backend.hits("GET /echo/captured")
    r = replay(addr, *[h.format(addr=addr) for h in headers], content_type=content_type)
    assert r.status == 403, (r.status, r.body)
    assert b"cross-origin POST refused" in r.body
    assert r.header("access-control-allow-origin") is None
    assert http_backend.hits("GET /echo/captured") == before


def test_same_origin_replay_is_served(inspected, http_backend):
    _, addr = inspected
    before = http_backend.hits("GET /echo/captured")
    r = replay(addr, f"Origin: http://{addr}", "Sec-Fetch-Site: same-origin")
    assert r.status == 201, (r.status, r.body)
    deadline = time.monotonic() + 10
    while http_backend.hits("GET /echo/captured") == before:
        assert time.monotonic() < deadline, "the replay never reached the backend"
        time.sleep(0.05)


def test_cross_origin_clear_is_refused_and_the_captures_stay(inspected):
    _, addr = inspected
    r = curl(f"http://{addr}/api/requests/http", "-X", "DELETE",
             "-H", "Origin: http://evil.example")
    assert r.status == 403
    assert b"/echo/captured" in curl(f"http://{addr}/api/requests/http").body


def test_captured_data_is_not_readable_cross_origin(inspected):
    _, addr = inspected
    r = curl(f"http://{addr}/api/requests/http", "-H", "Origin: http://evil.example",
             "-H", "Sec-Fetch-Site: cross-site", "-H", "Sec-Fetch-Mode: cors")
    assert r.header("access-control-allow-origin") is None
    assert r.header("access-control-allow-credentials") is None
    assert r.header("cross-origin-resource-policy") == "same-origin"
    preflight = curl(f"http://{addr}/api/requests/http", "-X", "OPTIONS",
                     "-H", "Origin: http://evil.example",
                     "-H", "Access-Control-Request-Method: POST",
                     "-H", "Access-Control-Request-Headers: content-type")
    assert preflight.header("access-control-allow-origin") is None
    assert preflight.header("access-control-allow-methods") is None
    assert preflight.status >= 400, preflight.status
