"""Replay, edit-and-replay, curl and HAR export, bodies, and live events of
the inspector's JSON API (issue 5): driven with real HTTP through a real
tunnel, checked at the backend and through the API."""

import json
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest

import harness
from harness import curl


def api(addr: str, path: str, method: str = "GET", body=None, headers=None):
    """(status, headers, parsed JSON or text) of one API call."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"http://{addr}{path}", data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=40) as r:
            status, head, raw = r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        status, head, raw = e.code, dict(e.headers), e.read()
    ctype = head.get("Content-Type", "")
    if ctype.startswith("application/json") and raw:
        return status, head, json.loads(raw)
    return status, head, raw


def wait_for(addr: str, count: int, timeout: float = 10.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        reqs = api(addr, "/api/requests/http")[2]["requests"]
        if len(reqs) >= count or time.monotonic() > deadline:
            return reqs
        time.sleep(0.05)


@pytest.fixture
def inspected(server, http_backend, start_porthole, tmp_path):
    client = start_porthole("http", f"127.0.0.1:{http_backend.port}", "--subdomain", "rp",
                            "--proto", "http", "--inspect-addr", "127.0.0.1:0",
                            "--inspect-db", str(tmp_path / "c.db"), server=server)
    addr = client.proc.wait_for(r"web interface on http://(?P<addr>\S+)")["addr"]
    return client, addr


def test_replay_reaches_the_backend_again_and_is_recorded_as_a_replay(inspected, http_backend):
    client, addr = inspected
    assert curl(f"{client.url()}/echo/once", "-H", "X-Trace: t1").body == b"once"
    original = wait_for(addr, 1)[0]
    assert http_backend.hits("GET /echo/once") == 1

    status, _, replayed = api(addr, "/api/requests/http", "POST", {"id": original["id"]})

    assert status == 201, replayed
    assert replayed["replay_of"] == original["id"]
    assert int(replayed["id"]) > int(original["id"])
    assert replayed["request"]["uri"] == "/echo/once"
    assert replayed["request"]["headers"]["X-Trace"] == ["t1"]
    assert replayed["response"]["status_code"] == 200
    assert replayed["response"]["body"]["text"] == "once"
    assert replayed["tunnel_name"] == "http" and replayed["remote_addr"] == "replay"
    assert http_backend.hits("GET /echo/once") == 2
    newest = api(addr, "/api/requests/http")[2]["requests"][0]
    assert newest["id"] == replayed["id"] and newest["replay_of"] == original["id"]
    client.proc.wait_for(r"replay of request")  # the log is read by another thread


def test_edit_and_replay_changes_what_the_backend_receives(inspected, http_backend):
    client, addr = inspected
    curl(f"{client.url()}/headers", "-H", "X-Trace: original")
    original = wait_for(addr, 1)[0]
    host = original["request"]["headers"]["Host"]

    status, _, edited = api(addr, "/api/requests/http", "POST", {
        "id": original["id"],
        "modify": {"uri": "/headers?edited=1",
                   "headers": {"Host": host, "X-Trace": ["edited"], "X-New": ["yes"]}}})

    assert status == 201, edited
    seen = json.loads(edited["response"]["body"]["text"])["headers"]
    assert seen["x-trace"] == "edited" and seen["x-new"] == "yes"
    assert http_backend.hits("GET /headers?edited=1") == 1

    # A new body and method: Content-Length follows the new body.
    up = curl(f"{client.url()}/upload", "--data-binary", "first body")
    assert up.status == 200
    post = wait_for(addr, 3)[0]
    assert post["request"]["method"] == "POST"
    status, _, again = api(addr, "/api/requests/http", "POST",
                           {"id": int(post["id"]), "modify": {"body": "a longer second body"}})
    assert status == 201, again
    assert json.loads(again["response"]["body"]["text"])["length"] == len("a longer second body")
    assert again["request"]["headers"]["Content-Length"] == [str(len("a longer second body"))]


def test_replay_says_clearly_when_the_local_service_is_down(inspected, http_backend):
    client, addr = inspected
    curl(f"{client.url()}/echo/x")
    original = wait_for(addr, 1)[0]
    http_backend.stop()

    status, _, answer = api(addr, "/api/requests/http", "POST", {"id": original["id"]})

    assert status == 502
    assert answer["error"].startswith(f"local service localhost:{http_backend.port} is down") or \
        answer["error"].startswith(f"local service 127.0.0.1:{http_backend.port} is down"), answer
    assert "refused" in answer["error"].lower()
    assert len(api(addr, "/api/requests/http")[2]["requests"]) == 1


def test_replay_refuses_bad_requests_with_reasons(inspected):
    client, addr = inspected
    curl(f"{client.url()}/echo/x")
    original = wait_for(addr, 1)[0]

    cases = [
        ({"id": "999999"}, 404, "no captured request with id '999999'"),
        ({"nothing": 1}, 400, "must name the request"),
        ({"id": original["id"], "modify": {"headers": {"X-Bad": "a\r\nInjected: 1"}}}, 400,
         "line break"),
        ({"id": original["id"], "modify": {"method": "GET /x"}}, 400, "is not an HTTP method"),
        ({"id": original["id"], "modify": {"colour": "red"}}, 400, "modify.colour is not known"),
        ({"id": original["id"], "modify": {"body_base64": "not base64!"}}, 400,
         "modify.body_base64 is not base64"),
        ({"id": original["id"], "tunnel_name": "nope"}, 404, "no http tunnel named 'nope'"),
    ]
    for body, code, words in cases:
        status, _, answer = api(addr, "/api/requests/http", "POST", body)
        assert (status, words in answer["error"]) == (code, True), (body, answer)
    req = urllib.request.Request(f"http://{addr}/api/requests/http", data=b"{not json",
                                 method="POST")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=10)
    assert e.value.code == 400


def test_list_limit_and_tunnel_filter(inspected):
    client, addr = inspected
    for word in ("a", "b", "c"):
        curl(f"{client.url()}/echo/{word}")
    wait_for(addr, 3)
    two = api(addr, "/api/requests/http?limit=2")[2]["requests"]
    assert [r["request"]["uri"] for r in two] == ["/echo/c", "/echo/b"]
    assert api(addr, "/api/requests/http?tunnel_name=other")[2]["requests"] == []
    assert len(api(addr, "/api/requests/http?tunnel_name=http")[2]["requests"]) == 3
    for bad in ("0", "abc", "1001", "-5"):
        status, _, answer = api(addr, f"/api/requests/http?limit={bad}")
        assert status == 400 and "limit must be a whole number" in answer["error"], bad


def test_cross_origin_replay_and_clear_are_refused(inspected):
    client, addr = inspected
    curl(f"{client.url()}/echo/x")
    original = wait_for(addr, 1)[0]
    evil = {"Origin": "http://evil.example"}

    assert api(addr, "/api/requests/http", "POST", {"id": original["id"]}, headers=evil)[0] == 403
    assert api(addr, "/api/requests/http", "DELETE", headers=evil)[0] == 403
    assert len(api(addr, "/api/requests/http")[2]["requests"]) == 1
    same = {"Origin": f"http://{addr}"}
    assert api(addr, "/api/requests/http", "POST", {"id": original["id"]}, headers=same)[0] == 201


def test_curl_export_sends_the_same_request_again(inspected, http_backend, tmp_path):
    client, addr = inspected
    curl(f"{client.url()}/upload", "--data-binary", "it's \x01 binary-ish",
         "-H", "X-Quote: it's")
    original = wait_for(addr, 1)[0]

    status, head, command = api(addr, f"/api/requests/http/{original['id']}/curl")

    assert status == 200 and head["Content-Type"].startswith("text/plain")
    command = command.decode()
    assert command.startswith("curl -X 'POST' ")
    out = subprocess.run(["bash", "-c", command.replace("curl ", "curl -sS --noproxy '*' ", 1)],
                         capture_output=True, timeout=30, env=harness.clean_env(tmp_path / "h"))
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["length"] == len("it's \x01 binary-ish")
    again = wait_for(addr, 2)[0]
    assert again["request"]["headers"]["X-Quote"] == ["it's"]
    assert again["request"]["body"]["size"] == original["request"]["body"]["size"]


def test_har_export_holds_the_chosen_exchanges(inspected):
    client, addr = inspected
    for word in ("one", "two", "three"):
        curl(f"{client.url()}/echo/{word}?w={word}")
    reqs = wait_for(addr, 3)
    ids = [r["id"] for r in reqs]

    status, head, har = api(addr, "/api/requests/har")
    assert status == 200
    assert 'filename="porthole.har"' in head["Content-Disposition"]
    log = har["log"]
    assert log["version"] == "1.2" and log["creator"]["name"] == "porthole"
    assert [e["request"]["url"] for e in log["entries"]] == [
        f"{client.url()}/echo/{w}?w={w}" for w in ("one", "two", "three")]
    first = log["entries"][0]
    assert first["response"]["status"] == 200
    assert first["response"]["content"]["text"] == "one"
    assert first["request"]["queryString"] == [{"name": "w", "value": "one"}]

    status, _, some = api(addr, f"/api/requests/har?ids={ids[0]},{ids[2]}")
    assert [e["_id"] for e in some["log"]["entries"]] == [ids[2], ids[0]]
    assert api(addr, "/api/requests/har?ids=12345678")[0] == 404


def test_bodies_are_served_decoded_with_their_type_and_cannot_run_scripts(inspected):
    client, addr = inspected
    curl(f"{client.url()}/bytes/3000")  # chunked by the backend
    e = wait_for(addr, 1)[0]

    status, head, body = api(addr, f"/api/requests/http/{e['id']}/response/body")
    assert status == 200
    assert body == harness.deterministic_bytes(3000)
    assert head["Content-Type"] == "application/octet-stream"
    assert head["Content-Security-Policy"] == "sandbox"
    status, head, raw = api(addr, f"/api/requests/http/{e['id']}/response/body?raw=1&download=1")
    assert raw.endswith(b"0\r\n\r\n") and len(raw) > 3000
    assert "attachment" in head["Content-Disposition"]
    assert api(addr, f"/api/requests/http/{e['id']}/nothing")[0] == 404


def test_the_event_stream_announces_each_exchange_as_it_is_stored(inspected):
    client, addr = inspected
    host, port = addr.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(f"GET /api/events HTTP/1.1\r\nHost: {addr}\r\n\r\n".encode())
        f = s.makefile("rb")
        assert f.readline().startswith(b"HTTP/1.1 200")
        while f.readline() not in (b"\r\n", b""):
            pass
        curl(f"{client.url()}/echo/live")
        event, data = None, None
        while data is None:
            line = f.readline().decode()
            assert line, "the event stream ended"
            if line.startswith("event: "):
                event = line[7:].strip()
            elif line.startswith("data: ") and event == "request":
                data = json.loads(line[6:])
        assert data["request"]["uri"] == "/echo/live"
        assert data["response"]["status_code"] == 200
def test_the_page_is_served_from_the_binary_with_a_strict_policy(inspected):
    client, addr = inspected
    status, head, page = api(addr, "/")
    assert status == 200 and head["Content-Type"].startswith("text/html")
    assert b"/static/app.js" in page
    assert "script-src 'self'" in head["Content-Security-Policy"]
    status, head, script = api(addr, "/static/app.js")
    assert status == 200 and head["Content-Type"].startswith("text/javascript")
    assert len(script) > 1000
