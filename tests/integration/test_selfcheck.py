"""Self-check of the test harness and backends; needs no porthole binary.

The programs under test are replaced here by small fake scripts that print
log lines and write the ready files of the contract, so the plumbing (start,
wait for a line, read the ports and URLs, stop) is checked on its own."""

import asyncio
import hashlib
import json
import socket
import ssl
import sys
import textwrap
import threading

import pytest
import websockets

import harness
import ngrok1
from backends import echo_through
from harness import Process, RawHTTP, WaitTimeout, curl, deterministic_bytes

FAKE_PORTHOLED = r'''
import json, socket, sys, time, os
args = sys.argv[1:]
def opt(name, default=None):
    return args[args.index(name) + 1] if name in args else default
def listen(addr):
    host, port = addr.rsplit(":", 1)
    s = socket.create_server((host, int(port)))
    return s, s.getsockname()[1]
log = lambda m: print(f"[2024-01-01 00:00:00.000] [info] {m}", file=sys.stderr, flush=True)
socks = []
for what, flag in (("tunnel clients", "--tunnel-addr"), ("public http", "--http-addr"),
                   ("public https", "--https-addr")):
    s, port = listen(opt(flag))
    socks.append(s)
    log(f"listening for {what} addr=127.0.0.1:{port}")
state = opt("--state-dir")
os.makedirs(state, exist_ok=True)
open(os.path.join(state, "ca.pem"), "w").write("-----BEGIN CERTIFICATE-----\n")
log(f"dev CA certificate; clients must trust it path={os.path.join(state, 'ca.pem')}")
log("portholed ready")
addrs = [f"127.0.0.1:{s.getsockname()[1]}" for s in socks]
ready = opt("--ready-file")
with open(ready + ".tmp", "w") as f:
    json.dump({"pid": os.getpid(), "domain": opt("--domain"), "tunnel_addr": addrs[0],
               "https_addr": addrs[2], "http_addr": addrs[1], "admin_addr": None,
               "dev_ca": os.path.join(state, "ca.pem"), "version": "0.0.0"}, f)
os.rename(ready + ".tmp", ready)
time.sleep(3600)
'''

FAKE_PORTHOLE = r'''
import json, os, sys, time
args = sys.argv[1:]
if "--authtoken" in args and args[args.index("--authtoken") + 1] == "bad":
    print("error: server said: invalid authtoken", file=sys.stderr, flush=True)
    sys.exit(1)
port = args[args.index("http") + 1]
print(f"Forwarding http://foo.localhost:1 -> localhost:{port}", flush=True)
print(f"Forwarding https://foo.localhost:2 -> localhost:{port}", flush=True)
ready = args[args.index("--ready-file") + 1]
with open(ready + ".tmp", "w") as f:
    json.dump({"pid": os.getpid(), "client_id": "c0ffee", "server": args[args.index("--server-addr") + 1],
               "transport": "mux", "connection": 1, "inspect_addr": None,
               "tunnels": [{"name": "http", "url": u, "proto": u.split(":")[0],
                            "local": f"localhost:{port}"}
                           for u in ("http://foo.localhost:1", "https://foo.localhost:2")]}, f)
os.rename(ready + ".tmp", ready)
time.sleep(3600)
'''


@pytest.fixture
def fake_bin(tmp_path, monkeypatch):
    d = tmp_path / "bin"
    d.mkdir()
    for name, src in (("portholed", FAKE_PORTHOLED), ("porthole", FAKE_PORTHOLE)):
        p = d / name
        p.write_text(f"#!{sys.executable}\n" + textwrap.dedent(src))
        p.chmod(0o755)
    monkeypatch.setenv("PORTHOLE_BIN_DIR", str(d))
    return d


def test_harness_starts_server_and_parses_its_ports(fake_bin, server):
    assert server.proc.running
    ports = {server.http_port, server.https_port, server.tunnel_port}
    assert len(ports) == 3
    for port in ports:
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    assert server.ca == server.state_dir / "ca.pem"
    assert str(server.state_dir).startswith(str(harness.Path(server.state_dir).parent))


def test_harness_client_factory_returns_urls(fake_bin, server, start_porthole):
    client = start_porthole("http", "8080", "--subdomain", "foo", server=server)
    assert client.urls == ["http://foo.localhost:1", "https://foo.localhost:2"]
    assert client.locals == ["localhost:8080", "localhost:8080"]
    assert (client.client_id, client.transport) == ("c0ffee", "mux")
    refused = start_porthole("http", "8080", server=server, authtoken="bad", wait_up=False)
    assert refused.proc.wait_exit() == 1
    assert "invalid authtoken" in refused.proc.text("stderr")


def test_harness_stops_processes_at_teardown(fake_bin, server):
    # The autouse fixture stops everything registered; check it here by hand.
    harness.stop_all()
    assert not server.proc.running


def test_process_wait_for_reports_exit_and_timeout():
    p = Process([sys.executable, "-c", "print('one'); import sys; print('two', file=sys.stderr)"])
    assert p.wait_for(r"tw(o)", timeout=10)[1] == "o"
    with pytest.raises(WaitTimeout, match="exited"):
        p.wait_for("three", timeout=10)
    q = Process([sys.executable, "-c", "import time; print('up', flush=True); time.sleep(60)"])
    q.wait_for("up", timeout=10)
    with pytest.raises(WaitTimeout, match="within"):
        q.wait_for("never", timeout=0.3)
    mark = q.mark()
    with pytest.raises(WaitTimeout):
        q.wait_for("up", timeout=0.2, since=mark)
    q.stop()
    assert q.returncode is not None


def test_wait_ready_file_takes_the_next_version_and_reports_exit_and_timeout(tmp_path):
    path = tmp_path / "ready.json"
    writer = textwrap.dedent(f"""
        import json, os, sys, time
        for n in (1, 2):
            time.sleep(0.3)
            with open({str(path)!r} + ".tmp", "w") as f:
                json.dump({{"pid": os.getpid(), "n": n}}, f)
            os.rename({str(path)!r} + ".tmp", {str(path)!r})
        print("written", flush=True)
        time.sleep(float(sys.argv[1]))
        """)
    p = Process([sys.executable, "-c", writer, "60"])
    first = harness.wait_ready_file(p, path, timeout=10)
    assert first["pid"] == p.pid
    assert harness.wait_ready_file(p, path, since={"pid": p.pid, "n": 1}, timeout=10)["n"] == 2
    with pytest.raises(WaitTimeout, match=r"within .*its last version: .*\"n\": 2"):
        harness.wait_ready_file(p, path, lambda ready: ready["n"] == 3, timeout=0.3)
    p.stop()
    q = Process([sys.executable, "-c", writer, "0"])
    with pytest.raises(WaitTimeout, match="(?s)exited .*written"):
        harness.wait_ready_file(q, path, lambda ready: ready["n"] == 3, timeout=10)


def test_backend_get_and_keepalive(http_backend):
    with RawHTTP(http_backend.port) as c:
        for i in range(5):
            r = c.request("GET", f"/echo/{i}", {"Host": "x"})
            assert (r.status, r.body) == (200, str(i).encode())
        r = c.request("GET", "/hello", {"Host": "x"})
        assert (r.status, r.body) == (200, b"hello")
    assert http_backend.connections == 1


def test_backend_upload_plain_and_chunked(http_backend, tmp_path):
    data = deterministic_bytes(3 * 1024 * 1024 + 17, seed=9)
    f = tmp_path / "d"
    f.write_bytes(data)
    url = f"http://127.0.0.1:{http_backend.port}/upload"
    for extra in ([], ["-H", "Transfer-Encoding: chunked"]):
        r = curl(url, "--data-binary", f"@{f}", *extra)
        assert r.status == 200, r.stderr
        got = json.loads(r.body)
        assert got["length"] == len(data)
        assert got["sha256"] == hashlib.sha256(data).hexdigest()
        assert got["chunked"] == bool(extra)


def test_backend_chunked_download_and_headers(http_backend):
    n = 1_000_003
    r = curl(f"http://127.0.0.1:{http_backend.port}/bytes/{n}")
    assert r.status == 200 and r.header("transfer-encoding") == "chunked"
    assert r.body == deterministic_bytes(n)
    r = curl(f"http://127.0.0.1:{http_backend.port}/headers", "-H", "X-Forwarded-For: 10.0.0.1")
    assert json.loads(r.body)["headers"]["x-forwarded-for"] == "10.0.0.1"


def test_websocket_and_tcp_echo_backends(ws_backend, tcp_echo):
    async def talk():
        async with websockets.connect(f"ws://127.0.0.1:{ws_backend.port}/x",
                                      open_timeout=5) as ws:
            await ws.send("ping")
            return await asyncio.wait_for(ws.recv(), 5)
    assert asyncio.run(talk()) == "ping"
    data = deterministic_bytes(1024 * 1024, seed=5)
    assert echo_through(tcp_echo.port, data) == data


def test_recorded_frames_decode():
    for name in dir(ngrok1):
        value = getattr(ngrok1, name)
        if name.startswith("RECORDED_") and isinstance(value, bytes) \
                and not name.endswith("_CLIENT_ID"):
            msg = ngrok1.parse_frame(value)
            assert set(msg) == {"Type", "Payload"}, name
    assert ngrok1.parse_frame(ngrok1.RECORDED_AUTH)["Payload"]["User"] == "secret-token"
    assert ngrok1.message("ReqProxy", {}) == ngrok1.RECORDED_REQPROXY
    assert ngrok1.message("Pong", {}) == ngrok1.RECORDED_PONG
    assert ngrok1.message("StartProxy", {"Url": ngrok1.RECORDED_TUNNEL_URL,
                                         "ClientAddr": ngrok1.RECORDED_CLIENT_ADDR}) \
        == ngrok1.RECORDED_STARTPROXY


def test_scripted_ngrokd_tls_and_frames(tls_files):
    s = ngrok1.ScriptedNgrokd(tls_files["cert"], tls_files["key"])
    harness.register(s)
    for host in ("localhost", "127.0.0.1"):
        conn = ngrok1.FrameConn(ngrok1.connect_tls(s.port, tls_files["ca"], host), "c")
        conn.send(ngrok1.RECORDED_AUTH)
        srv, first = s.next_connection()
        assert first["Type"] == "Auth"
        srv.send(ngrok1.RECORDED_AUTHRESP)
        assert conn.read_frame()["Payload"]["ClientId"] == ngrok1.RECORDED_AUTHRESP_CLIENT_ID
        s.serve_control(srv)
        conn.send(ngrok1.message("Ping", {}))
        assert conn.read_frame() == {"Type": "Pong", "Payload": {}}
        conn.close()
    # The certificate is checked: a name it does not hold is refused.
    with pytest.raises(ssl.SSLCertVerificationError):
        ngrok1.connect_tls(s.port, tls_files["ca"], "foo.example")


def test_clean_env_drops_proxies_and_applies_overrides(tmp_path, monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    env = harness.clean_env(tmp_path / "home")
    assert "HTTPS_PROXY" not in env and env["no_proxy"] == env["NO_PROXY"] == "*"
    env = harness.clean_env(tmp_path / "home", {"https_proxy": "http://127.0.0.1:1",
                                                "no_proxy": None, "NO_PROXY": None})
    assert env["https_proxy"] == "http://127.0.0.1:1"
    assert "no_proxy" not in env and "NO_PROXY" not in env and "HTTPS_PROXY" not in env
    p = Process([sys.executable, "-c", "import os; print(os.environ.get('https_proxy'))"],
                env=env)
    p.wait_for(r"^http://127\.0\.0\.1:1$", timeout=10)


def test_wait_closed_sees_server_close():
    srv = socket.create_server(("127.0.0.1", 0))
    c = socket.create_connection(srv.getsockname(), timeout=5)
    a, _ = srv.accept()
    assert not harness.wait_closed(c, 0.2)
    threading.Timer(0.2, a.close).start()
    assert harness.wait_closed(c, 5)
    c.close()
    srv.close()

