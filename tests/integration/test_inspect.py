"""Capture (issue 5, first part): every HTTP exchange through an http tunnel
is recorded by the client and served by its local API, /api/requests/http;
the history lives in SQLite and survives a restart."""

import json
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from harness import curl


def api_get(addr: str, path: str, host: str | None = None):
    req = urllib.request.Request(f"http://{addr}{path}")
    if host:
        req.add_header("Host", host)
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.load(r)


def wait_for_requests(addr: str, count: int, timeout: float = 10.0) -> list[dict]:
    """The API's list once it holds `count` exchanges (capture is written by
    a thread of its own, just after the response)."""
    deadline = time.monotonic() + timeout
    while True:
        reqs = api_get(addr, "/api/requests/http")["requests"]
        if len(reqs) >= count or time.monotonic() > deadline:
            return reqs
        time.sleep(0.05)


@pytest.fixture
def inspected(server, http_backend, start_porthole, tmp_path):
    def start(db: Path, sub: str = "cap", **kw):
        client = start_porthole("http", f"127.0.0.1:{http_backend.port}", "--subdomain", sub,
                                "--proto", "http", "--inspect-addr", "127.0.0.1:0",
                                "--inspect-db", str(db), server=server, **kw)
        addr = client.proc.wait_for(r"web interface on http://(?P<addr>\S+)")["addr"]
        return client, addr
    return start


def test_exchanges_through_the_tunnel_are_listed_newest_first_with_their_fields(
        inspected, server, tmp_path):
    client, api = inspected(tmp_path / "c.db")
    assert curl(f"{client.url()}/hello", "-H", "X-Trace: one").body == b"hello"
    up = curl(f"{client.url()}/upload", "--data-binary", "payload-123",
              "-H", "Content-Type: text/plain")
    assert up.status == 200
    reqs = wait_for_requests(api, 2)
    assert [r["request"]["method"] for r in reqs] == ["POST", "GET"]
    post, get = reqs
    assert api_get(api, "/api/requests/http")["dropped"] == 0
    assert get["request"]["uri"] == "/hello"
    assert get["request"]["headers"]["X-Trace"] == ["one"]
    assert get["response"]["status_code"] == 200
    assert get["response"]["body"]["size"] == 5
    assert get["tunnel_name"] == "http" and get["public_url"] == client.url()
    assert get["remote_addr"].startswith("127.0.0.1:")
    assert post["request"]["body"]["size"] == len("payload-123")
    assert int(post["id"]) > int(get["id"])

    one = api_get(api, f"/api/requests/http/{post['id']}")
    assert one["request"]["body"]["text"] == "payload-123"
    assert json.loads(one["response"]["body"]["text"])["length"] == 11


def test_history_survives_a_client_restart_and_delete_clears_it(inspected, server, tmp_path):
    db = tmp_path / "keep.db"
    client, api = inspected(db)
    curl(f"{client.url()}/echo/first")
    wait_for_requests(api, 1)
    client.proc.stop()
    assert client.proc.returncode == 0

    # A new client process (the old name is held for the old one a while).
    again, api2 = inspected(db, sub="cap2", name="porthole-again")
    reqs = api_get(api2, "/api/requests/http")["requests"]
    assert [r["request"]["uri"] for r in reqs] == ["/echo/first"]

    req = urllib.request.Request(f"http://{api2}/api/requests/http", method="DELETE")
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 204
    assert api_get(api2, "/api/requests/http")["requests"] == []


def test_unknown_id_is_404_and_a_foreign_host_is_refused(inspected, tmp_path):
    client, api = inspected(tmp_path / "c.db")
    with pytest.raises(urllib.error.HTTPError) as e:
        api_get(api, "/api/requests/http/999")
    assert e.value.code == 404
    with pytest.raises(urllib.error.HTTPError) as e:
        api_get(api, "/api/requests/http", host="evil.example:80")
    assert e.value.code == 403


def test_nothing_is_captured_or_stored_when_the_inspector_is_off(server, http_backend,
                                                                 start_porthole, home):
    # The harness starts clients with --inspect-addr disabled unless told otherwise.
    client = start_porthole("http", f"127.0.0.1:{http_backend.port}", "--proto", "http",
                            server=server)
    assert curl(f"{client.url()}/hello").body == b"hello"
    assert "capturing HTTP exchanges" not in client.proc.text()
    assert "web interface on" not in client.proc.text()
    assert not (home / ".porthole" / "captures.db").exists()


def test_https_exchanges_and_websocket_sessions_are_captured(server, http_backend, ws_backend,
                                                             start_porthole, tmp_path):
    import asyncio
    import socket as sockets

    import websockets

    client = start_porthole("http", f"127.0.0.1:{http_backend.port}", "--subdomain", "sec",
                            "--proto", "https", "--inspect-addr", "127.0.0.1:0",
                            "--inspect-db", str(tmp_path / "s.db"), server=server)
    api = client.proc.wait_for(r"web interface on http://(?P<addr>\S+)")["addr"]
    url = client.url("https")
    assert curl(f"{url}/echo/secret", cacert=server.ca).body == b"secret"
    got = wait_for_requests(api, 1)[0]
    assert got["public_url"] == url and got["request"]["uri"] == "/echo/secret"

    ws_client = start_porthole("http", f"127.0.0.1:{ws_backend.port}", "--subdomain", "wsc",
                               "--proto", "http", "--inspect-addr", "127.0.0.1:0",
                               "--inspect-db", str(tmp_path / "w.db"), server=server,
                               name="porthole-ws")
    ws_api = ws_client.proc.wait_for(r"web interface on http://(?P<addr>\S+)")["addr"]

    async def talk():
        sock = sockets.create_connection(("127.0.0.1", server.http_port), timeout=10)
        async with websockets.connect(ws_client.url().replace("http://", "ws://") + "/echo",
                                      sock=sock, open_timeout=10, close_timeout=5) as ws:
            for m in ("one", "two", "three"):
                await ws.send(m)
                assert await asyncio.wait_for(ws.recv(), 10) == m

    asyncio.run(asyncio.wait_for(talk(), 30))
    session = wait_for_requests(ws_api, 1)[0]
    assert session["response"]["status_code"] == 101
    assert session["websocket"]["messages_in"] >= 3  # the three, and the close
    assert session["websocket"]["messages_out"] >= 3
    assert len(api_get(ws_api, "/api/requests/http")["requests"]) == 1


def test_default_address_moves_to_the_next_free_port_and_a_given_one_does_not(
        server, http_backend, start_porthole, tmp_path, home):
    import socket as sockets

    # Hold 127.0.0.1:4040 (or find it held already): the default must move on.
    holder = sockets.socket()
    try:
        holder.bind(("127.0.0.1", 4040))
        holder.listen()
    except OSError:
        pass  # someone else holds it: the same situation
    try:
        client = start_porthole("http", f"127.0.0.1:{http_backend.port}", "--proto", "http",
                                "--inspect-addr=default", server=server)
        port = int(client.proc.wait_for(r"web interface on http://127\.0\.0\.1:(?P<p>\d+)")["p"])
        assert 4041 <= port <= 4050
        assert "trying port 4041" in client.proc.text()
        # A second client on the machine keeps a history of its own.
        assert f"captures-{port}.db" in client.proc.text()
        assert curl(f"{client.url()}/hello").body == b"hello"
        wait_for_requests(f"127.0.0.1:{port}", 1)
        assert (home / ".porthole" / f"captures-{port}.db").exists()

        given = start_porthole("http", f"127.0.0.1:{http_backend.port}", "--proto", "http",
                               "--inspect-addr", "127.0.0.1:4040",
                               "--inspect-db", str(tmp_path / "g.db"), server=server,
                               name="porthole-given")
        given.proc.wait_for(r"no web interface, so no capture: .*127\.0\.0\.1:4040")
        assert curl(f"{given.url()}/hello").body == b"hello"
        assert "capturing HTTP exchanges" not in given.proc.text()
        assert not (tmp_path / "g.db").exists()
    finally:
        holder.close()
