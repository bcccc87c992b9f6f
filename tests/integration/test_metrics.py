"""portholed's admin endpoint (--admin-addr): GET /metrics in the Prometheus
text format, GET /healthz; and --log-format json."""

import json
import re
import signal
import socket
import subprocess

import harness
from backends import echo_through
from harness import curl, deterministic_bytes


def admin(server: harness.Server, path: str, *args: str) -> harness.CurlResult:
    assert server.admin_port, f"portholed's ready file has no admin_addr: {server.ready}"
    return curl(f"http://127.0.0.1:{server.admin_port}{path}", *args, timeout=10)


def scrape(server: harness.Server) -> dict[str, float]:
    """The samples of /metrics, by name with labels as written."""
    r = admin(server, "/metrics")
    assert r.status == 200, r
    assert r.header("content-type").startswith("text/plain; version=0.0.4"), r.headers
    samples = {}
    for line in r.body.decode().splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples


def test_metrics_count_tunnels_connections_bytes_and_refusals(start_portholed, tcp_range,
                                                               http_backend, tcp_echo,
                                                               start_porthole):
    low, high = tcp_range
    server = start_portholed("--tcp-bind-addr", "127.0.0.1", "--tcp-ports", f"{low}-{high}",
                             authtokens=["good"])
    web = start_porthole("http", f"127.0.0.1:{http_backend.port}", "--subdomain", "m",
                         "--proto", "http", server=server, authtoken="good")
    tcp = start_porthole("tcp", f"127.0.0.1:{tcp_echo.port}", server=server, authtoken="good")
    bad = start_porthole("http", f"127.0.0.1:{http_backend.port}", "--subdomain", "x",
                         server=server, authtoken="wrong", wait_up=False)
    assert bad.proc.wait_exit() != 0

    body_size = 100_000
    for _ in range(2):
        r = curl(f"{web.url('http')}/bytes/{body_size}")
        assert r.status == 200 and len(r.body) == body_size, r
    data = deterministic_bytes(50_000, seed=9)
    assert echo_through(int(tcp.url("tcp").rsplit(":", 1)[1]), data) == data

    m = scrape(server)
    assert m['porthole_tunnels{protocol="http"}'] == 1
    assert m['porthole_tunnels{protocol="tcp"}'] == 1
    assert m['porthole_tunnels{protocol="https"}'] == 0
    assert m["porthole_clients_connected"] == 2
    assert m['porthole_public_connections_opened_total{protocol="http"}'] >= 2
    assert m['porthole_public_connections_opened_total{protocol="tcp"}'] == 1
    assert m['porthole_public_bytes_total{protocol="http",direction="out"}'] >= 2 * body_size
    assert m['porthole_public_bytes_total{protocol="http",direction="in"}'] > 0
    assert m['porthole_public_bytes_total{protocol="tcp",direction="in"}'] == len(data)
    assert m['porthole_public_bytes_total{protocol="tcp",direction="out"}'] == len(data)
    # Every public connection found a ready stream or proxy connection, or waited.
    assert (m["porthole_proxy_pool_hits_total"] + m["porthole_proxy_pool_misses_total"]
            >= 3)
    assert m["porthole_proxy_pool_hits_total"] >= 1
    assert m['porthole_errors_total{kind="auth_refused"}'] == 1
    assert m['porthole_errors_total{kind="tunnel_not_found"}'] == 0
    assert m['porthole_control_messages_total{type="Auth",direction="in"}'] == 3
    assert m['porthole_control_messages_total{type="ReqTunnel",direction="in"}'] == 2
    assert m['porthole_control_messages_total{type="AuthResp",direction="out"}'] == 3
    # Each public connection was announced once, on a stream or a proxy connection.
    assert (m['porthole_control_messages_total{type="StartProxy",direction="out"}'] ==
            m["porthole_proxy_pool_hits_total"] + m["porthole_proxy_pool_misses_total"])
    assert m["process_open_fds"] > 0

    # A host no tunnel serves is counted as such.
    r = curl(server.url("nothing") + "/")
    assert r.status == 404, r
    assert scrape(server)['porthole_errors_total{kind="tunnel_not_found"}'] == 1


def test_pool_transport_counts_pool_hits_or_misses(server, http_backend, start_porthole):
    web = start_porthole("http", f"127.0.0.1:{http_backend.port}", "--subdomain", "p",
                         "--proto", "http", "--no-mux", server=server)
    for _ in range(3):
        r = curl(f"{web.url('http')}/hello")
        assert r.status == 200, r
    m = scrape(server)
    assert m["porthole_proxy_pool_hits_total"] + m["porthole_proxy_pool_misses_total"] == 3
    assert m['porthole_control_messages_total{type="ReqProxy",direction="out"}'] >= 1
    assert m['porthole_control_messages_total{type="RegProxy",direction="in"}'] >= 1
    # One StartProxy per public connection, on the proxy connection it takes.
    assert m['porthole_control_messages_total{type="StartProxy",direction="out"}'] == 3


def test_silent_client_and_refused_tunnel_are_counted(start_portholed, http_backend,
                                                       start_porthole):
    server = start_portholed("--heartbeat-timeout", "2")
    start_porthole("http", f"127.0.0.1:{http_backend.port}", "--subdomain", "rare",
                   "--proto", "http", "--heartbeat-interval", "30", server=server)
    server.proc.wait_for(r"no heartbeat in time;.* timeout=2s", timeout=10)
    # Another client asks for a name outside the domain: refused, and counted.
    start_porthole("http", f"127.0.0.1:{http_backend.port}", "--hostname", "www.example.org",
                   server=server, wait_up=False)
    server.proc.wait_for(r"ReqTunnel refused", timeout=10)
    m = scrape(server)
    assert m['porthole_errors_total{kind="heartbeat_timeout"}'] >= 1
    assert m['porthole_errors_total{kind="tunnel_refused"}'] >= 1


def test_healthz_is_ok_other_paths_404_other_methods_405(server):
    r = admin(server, "/healthz")
    assert (r.status, r.body) == (200, b"ok\n")
    assert admin(server, "/nope").status == 404
    assert admin(server, "/metrics", "-X", "POST").status == 405


def test_healthz_is_503_while_the_server_stops(start_portholed):
    """After SIGTERM portholed drains its public connections (up to 2 s); a load
    balancer asking /healthz meanwhile is told to send no more."""
    server = start_portholed()
    assert admin(server, "/healthz").status == 200
    # A public connection with half a request keeps the drain going.
    held = socket.create_connection(("127.0.0.1", server.http_port), timeout=5)
    held.sendall(b"GET / HTTP/1.1\r\n")
    mark = server.proc.mark()
    server.proc.popen.send_signal(signal.SIGTERM)
    server.proc.wait_for(r"shutting down signal=SIGTERM", since=mark)
    r = admin(server, "/healthz")
    assert (r.status, r.body) == (503, b"shutting down\n"), r
    assert server.proc.wait_exit() == 0
    held.close()


def test_portholed_stops_cleanly_with_an_admin_connection_kept_open(start_portholed):
    """A scraper's keep-alive connection is still open when portholed stops:
    its coroutine is destroyed unfinished, and the endpoint must not reach
    its stream afterwards (make test-asan reports such a read)."""
    server = start_portholed()
    with socket.create_connection(("127.0.0.1", server.admin_port), timeout=5) as kept:
        kept.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = b""
        while not answer.endswith(b"ok\n"):
            chunk = kept.recv(4096)
            assert chunk, answer
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 200"), answer
        server.proc.popen.send_signal(signal.SIGTERM)
        assert server.proc.wait_exit() == 0, server.proc.text()


def test_admin_endpoint_can_be_disabled(start_portholed):
    server = start_portholed("--admin-addr", "")
    assert server.admin_port is None
    assert "listening for admin" not in server.proc.text()


def test_admin_port_in_use_is_a_clear_fatal_error(tmp_path):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        p = subprocess.run([str(harness.binary("portholed")), "--dev", "--state-dir",
                            str(tmp_path / "state"), "--http-addr", "127.0.0.1:0",
                            "--https-addr", "127.0.0.1:0", "--tunnel-addr", "127.0.0.1:0",
                            "--admin-addr", f"127.0.0.1:{port}"],
                           capture_output=True, text=True, timeout=30,
                           env=harness.clean_env(tmp_path / "home"))
    assert p.returncode == 1, p
    assert f"cannot listen for the admin endpoint on 127.0.0.1:{port}: Address already in use" \
        in p.stderr, p.stderr


def test_text_log_quotes_a_value_with_a_space(server):
    # The ready file can come before the log's reader has the line.
    line = server.proc.wait_for("listening for admin").string
    assert re.search(r'\[info\] listening for admin addr=127\.0\.0\.1:\d+ paths="/metrics /healthz"$',
                     line), line


def test_text_log_lines_are_a_message_then_key_value_fields(server, http_tunnel):
    """Each event: a fixed message, then the values as key=value (logfmt)."""
    [client] = re.findall(r"client connected client=(\w+) peer=127\.0\.0\.1:\d+ "
                          r'agent="porthole [^"]+" os=\w+ arch=\w+ protocol=porthole$',
                          server.proc.text(), re.M)
    server.proc.wait_for(rf"tunnel up client={client} url={re.escape(http_tunnel.url())}( |$)")
    assert re.search(r"\[info\] portholed ready domain=localhost$", server.proc.text(), re.M)


def test_json_log_is_one_object_per_line(start_portholed):
    server = start_portholed("--log-format", "json")
    server.proc.wait_for("portholed ready")
    lines = [l for l in server.proc.lines() if l.strip()]
    assert len(lines) >= 5, lines
    events = [json.loads(l) for l in lines]
    for e in events:
        assert {"time", "level", "msg"} <= e.keys(), e
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", e["time"]), e
    assert any(e["msg"].startswith("portholed ready") and e["level"] == "info" for e in events)
    admin_line = next(e for e in events if e["msg"] == "listening for admin")
    assert admin_line["paths"] == "/metrics /healthz"
    assert re.fullmatch(r"127\.0\.0\.1:\d+", admin_line["addr"]), admin_line
    ready = next(e for e in events if e["msg"] == "portholed ready")
    assert ready["domain"] == "localhost", ready
