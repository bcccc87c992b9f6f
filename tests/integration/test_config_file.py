"""Many tunnels from one client: the YAML config file, `porthole start`,
`list`, `config check`, and reloading the file (SIGHUP, `porthole reload`)
while tunnels run."""

import json
import signal
import socket
import subprocess
import textwrap
import urllib.request
from pathlib import Path

import pytest

import harness
from backends import HTTPBackend, echo_through
from harness import Process, binary, clean_env, curl

# The example of the ngrok 1.3 announcement, which must load and start as is.
NGROK_13_EXAMPLE = """\
authtoken: "..."
tunnels:
  blog:
    proto:
      http: 4000
      https: 4000
  api:
    auth: "user:password"
    proto:
      https: 8080
  personal:
    hostname: "example.com"
    proto:
      http: 9090
  ssh:
    proto:
      tcp: 22
"""


def run_cli(home: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(binary("porthole")), *map(str, args)], capture_output=True,
                          text=True, env=clean_env(home), timeout=30)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def start_client(home: Path, server: harness.Server, config: Path, *args: str,
                 inspect: str = "disabled", name: str = "porthole") -> Process:
    argv = [binary("porthole"), "--config", config, "--server-addr", server.tunnel_addr,
            "--trust-ca", server.ca, "--log", "stderr", "--log-level", harness.LOG_LEVEL,
            "--inspect-addr", inspect, *args]
    return Process(argv, name=name, env=clean_env(home))


def forwarding(proc: Process, count: int, since: int = 0) -> dict[str, str]:
    """{url: local address} of `count` Forwarding lines."""
    ms = proc.wait_for_all(r"Forwarding (?P<url>\S+) -> (?P<local>\S+) \(tunnel '(?P<name>[^']+)'\)",
                           count, timeout=harness.TUNNEL_UP_TIMEOUT, since=since)
    return {m["url"]: m["local"] for m in ms}


# -- config check and list ---------------------------------------------------

def test_config_check_accepts_the_ngrok_13_example(home, tmp_path):
    f = write(tmp_path / "ngrok.yml", NGROK_13_EXAMPLE)
    r = run_cli(home, "config", "check", f)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"{f}: OK, 4 tunnels (blog, api, personal, ssh)"


def test_config_check_names_file_line_and_column_of_an_error(home, tmp_path):
    f = write(tmp_path / "bad.yml", """\
        server_addr: example.com:443
        tunnels:
          web:
            proto:
              http: 70000
        """)
    r = run_cli(home, "config", "check", f)
    assert r.returncode == 1
    assert f"{f}:5:13:" in r.stderr and "70000" in r.stderr, r.stderr


def test_config_check_reports_an_unknown_key_with_the_valid_ones(home, tmp_path):
    f = write(tmp_path / "typo.yml", """\
        tunnels:
          web:
            subdomian: web
            proto:
              http: 8080
        """)
    r = run_cli(home, "config", "check", f)
    assert r.returncode == 1
    assert f"{f}:3:5:" in r.stderr and "unknown key 'subdomian'" in r.stderr, r.stderr
    assert "subdomain" in r.stderr.split("unknown key", 1)[1]


def test_config_check_of_a_missing_file_fails_naming_it(home, tmp_path):
    r = run_cli(home, "config", "check", tmp_path / "nope.yml")
    assert r.returncode == 1
    assert "nope.yml" in r.stderr


def test_config_check_reads_the_default_file_in_home(home):
    write(home / ".porthole.yml", "tunnels:\n  a:\n    proto:\n      http: 1234\n")
    r = run_cli(home, "config", "check")
    assert r.returncode == 0, r.stderr
    assert "OK, 1 tunnel (a)" in r.stdout


def test_list_prints_each_tunnel_and_protocol(home, tmp_path):
    f = write(tmp_path / "ngrok.yml", NGROK_13_EXAMPLE)
    r = run_cli(home, "--config", f, "list")
    assert r.returncode == 0, r.stderr
    lines = [ln.split() for ln in r.stdout.splitlines()]
    assert [ln[:4] for ln in lines] == [
        ["blog", "http", "->", "localhost:4000"],
        ["blog", "https", "->", "localhost:4000"],
        ["api", "https", "->", "localhost:8080"],
        ["personal", "http", "->", "localhost:9090"],
        ["ssh", "tcp", "->", "localhost:22"],
    ]
    assert "hostname example.com" in r.stdout and "basic auth" in r.stdout


def test_start_without_a_config_file_says_where_it_looked(home):
    r = run_cli(home, "start", "--all")
    assert r.returncode == 1
    assert f"{home}/.porthole.yml does not exist" in r.stderr


def test_start_of_an_undefined_name_fails_naming_it_and_the_file(home, tmp_path, server):
    f = write(tmp_path / "c.yml", "tunnels:\n  web:\n    proto:\n      http: 8080\n")
    r = run_cli(home, "--config", f, "--server-addr", server.tunnel_addr, "start", "wbe")
    assert r.returncode == 1
    assert str(f) in r.stderr and "'wbe'" in r.stderr, r.stderr


def test_start_needs_names_or_all(home, tmp_path):
    f = write(tmp_path / "c.yml", "tunnels:\n  web:\n    proto:\n      http: 8080\n")
    r = run_cli(home, "--config", f, "start")
    assert r.returncode != 0
    assert "--all" in r.stderr


# -- start ---------------------------------------------------------------------

def test_start_opens_named_tunnels_over_one_connection(home, tmp_path, tcp_server, http_backend,
                                                        tcp_echo):
    f = write(tmp_path / "c.yml", f"""\
        tunnels:
          blog:
            proto:
              http: {http_backend.port}
              https: {http_backend.port}
          ssh:
            proto:
              tcp: 127.0.0.1:{tcp_echo.port}
          unused:
            proto:
              http: 1
        """)
    client = start_client(home, tcp_server, f, "start", "blog", "ssh")
    urls = forwarding(client, 3)
    http_url = tcp_server.url("blog")
    https_url = tcp_server.url("blog", "https")
    assert urls[http_url] == urls[https_url] == f"localhost:{http_backend.port}"
    [tcp_url] = [u for u in urls if u.startswith("tcp://")]
    assert urls[tcp_url] == f"127.0.0.1:{tcp_echo.port}"
    assert curl(http_url + "/hello").body == b"hello"
    assert curl(https_url + "/hello", cacert=tcp_server.ca).body == b"hello"
    data = harness.deterministic_bytes(100_000, seed=9)
    assert echo_through(int(tcp_url.rsplit(":", 1)[1]), data) == data
    # One control connection carried all three.
    assert len(client.wait_for_all(harness.CONNECTED, 1)) == 1
    assert len(tcp_server.proc.lines()) and \
        sum("client connected" in ln for ln in tcp_server.proc.lines()) == 1
    assert "Forwarding http://unused" not in client.text()


def test_start_all_serves_the_ngrok_style_name_as_subdomain_with_auth(home, tmp_path, server,
                                                                       http_backend):
    f = write(tmp_path / "c.yml", f"""\
        tunnels:
          api:
            auth: "user:secret"
            proto:
              http: {http_backend.port}
          web:
            proto:
              http: {http_backend.port}
        """)
    client = start_client(home, server, f, "start", "--all")
    urls = forwarding(client, 2)
    assert set(urls) == {server.url("api"), server.url("web")}
    assert curl(server.url("api") + "/hello").status == 401
    assert curl(server.url("api") + "/hello", "-u", "user:secret").body == b"hello"
    assert curl(server.url("web") + "/hello").body == b"hello"


def test_command_line_flags_override_the_file(home, tmp_path, server, http_backend):
    # The file names a server that is not there; --server-addr wins.
    f = write(tmp_path / "c.yml", f"""\
        server_addr: 127.0.0.1:1
        log_level: error
        tunnels:
          web:
            proto:
              http: {http_backend.port}
        """)
    client = start_client(home, server, f, "start", "web")  # passes --server-addr, --log-level
    forwarding(client, 1)
    assert curl(server.url("web") + "/hello").body == b"hello"


def test_a_refused_tunnel_does_not_stop_the_others(home, tmp_path, server, http_backend):
    holder = start_client(home, server, write(tmp_path / "h.yml", f"""\
        tunnels:
          taken:
            proto:
              http: {http_backend.port}
        """), "start", "taken", name="holder")
    forwarding(holder, 1)
    f = write(tmp_path / "c.yml", f"""\
        tunnels:
          taken:
            proto:
              http: {http_backend.port}
          free:
            proto:
              http: {http_backend.port}
        """)
    client = start_client(home, server, f, "start", "--all")
    client.wait_for(r"the server refused tunnel 'taken' \(http\): The tunnel http://taken\.\S+ "
                    r"is already registered")
    forwarding(client, 1)
    assert curl(server.url("free") + "/hello").body == b"hello"
    assert client.running


@pytest.fixture
def example_server(start_portholed, tcp_range):
    """tcp_server that also lets clients have the hostname example.com (outside its domain)."""
    low, high = tcp_range
    return start_portholed("--tcp-bind-addr", "127.0.0.1", "--tcp-ports", f"{low}-{high}",
                           "--allow-hostname", "example.com")


def test_the_ngrok_13_example_starts_its_four_tunnels_and_each_carries_traffic(
        home, tmp_path, example_server, http_backend, tcp_echo):
    tcp_server = example_server
    # The announcement's file, its ports pointed at the test's backends.
    text = (NGROK_13_EXAMPLE.replace("4000", str(http_backend.port))
            .replace("8080", str(http_backend.port)).replace("9090", str(http_backend.port))
            .replace("tcp: 22", f"tcp: {tcp_echo.port}"))
    f = write(tmp_path / "ngrok.yml", text)
    client = start_client(home, tcp_server, f, "start", "--all")
    urls = forwarding(client, 5)
    s = tcp_server
    assert {u for u in urls if not u.startswith("tcp://")} == {
        s.url("blog"), s.url("blog", "https"), s.url("api", "https"),
        f"http://example.com:{s.http_port}"}
    assert curl(s.url("blog") + "/hello").body == b"hello"
    assert curl(s.url("blog", "https") + "/hello", cacert=s.ca).body == b"hello"
    # api demands basic auth.
    assert curl(s.url("api", "https") + "/hello", cacert=s.ca).status == 401
    assert curl(s.url("api", "https") + "/hello", "-u", "user:password",
                cacert=s.ca).body == b"hello"
    # personal answers on its own hostname.
    assert curl(f"http://example.com:{s.http_port}/echo/personal").body == b"personal"
    [tcp_url] = [u for u in urls if u.startswith("tcp://")]
    data = harness.deterministic_bytes(64_000, seed=13)
    assert echo_through(int(tcp_url.rsplit(":", 1)[1]), data) == data


# -- reload --------------------------------------------------------------------

def config_text(http_port: int, tunnels: dict[str, str]) -> str:
    out = "tunnels:\n"
    for name, extra in tunnels.items():
        out += f"  {name}:\n    proto:\n      http: {http_port}\n{extra}"
    return out


def test_sighup_adds_removes_and_changes_tunnels_leaving_the_others_alone(
        home, tmp_path, server, http_backend):
    other = HTTPBackend()
    f = tmp_path / "c.yml"
    f.write_text(config_text(http_backend.port, {"keep": "", "drop": "", "change": ""}))
    client = start_client(home, server, f, "start", "--all")
    forwarding(client, 3)
    # A keep-alive connection through the untouched tunnel, open across the reload.
    with harness.RawHTTP(server.http_port) as conn:
        first = conn.request("GET", "/hello", {"Host": f"keep.{server.domain}"})
        assert first.status == 200 and first.body == b"hello"

        f.write_text(config_text(http_backend.port, {"keep": ""}) +
                     f"  change:\n    auth: \"u:p\"\n    proto:\n      http: {other.port}\n"
                     f"  new:\n    proto:\n      http: {http_backend.port}\n")
        mark = client.mark()
        client.popen.send_signal(signal.SIGHUP)
        client.wait_for(r"reloaded .*: 1 added \(new/http\), 1 removed \(drop/http\), 1 changed "
                        r"\(change/http\), 1 unchanged", since=mark)
        urls = forwarding(client, 2, since=mark)
        assert set(urls) == {server.url("new"), server.url("change")}
        assert urls[server.url("change")] == f"localhost:{other.port}"

        second = conn.request("GET", "/hello", {"Host": f"keep.{server.domain}"})
        assert second.status == 200 and second.body == b"hello"
    assert http_backend.connections >= 1
    assert curl(server.url("new") + "/hello").body == b"hello"
    assert curl(server.url("drop") + "/hello").status == 404
    assert curl(server.url("change") + "/hello").status == 401
    changed = curl(server.url("change") + "/echo/moved", "-u", "u:p")
    assert changed.status == 200 and changed.body == b"moved"
    assert other.connections >= 1
    server.proc.wait_for(r"tunnel down .*url=http://drop\.")


def test_a_bad_file_on_reload_is_reported_and_tunnels_stay(home, tmp_path, server, http_backend):
    f = tmp_path / "c.yml"
    f.write_text(config_text(http_backend.port, {"web": ""}))
    client = start_client(home, server, f, "start", "--all")
    forwarding(client, 1)
    f.write_text("tunnels:\n  web:\n    proto:\n      http: nope\n")
    mark = client.mark()
    client.popen.send_signal(signal.SIGHUP)
    client.wait_for(rf"reload failed, tunnels unchanged: {f}:4:13: ", since=mark)
    assert curl(server.url("web") + "/hello").body == b"hello"
    assert client.running


def test_porthole_reload_asks_the_running_client_through_its_local_api(home, tmp_path, server,
                                                                        http_backend):
    f = tmp_path / "c.yml"
    f.write_text(config_text(http_backend.port, {"one": ""}))
    client = start_client(home, server, f, "start", "--all", inspect="127.0.0.1:0")
    forwarding(client, 1)
    api = client.wait_for(r"web interface on http://(?P<addr>\S+)")["addr"]

    tunnels = json.load(urllib.request.urlopen(f"http://{api}/api/tunnels", timeout=10))
    assert tunnels == {"tunnels": [{"name": "one", "public_url": server.url("one"),
                                    "proto": "http",
                                    "config": {"addr": f"localhost:{http_backend.port}"}}]}

    # The inspector's page learns of the new tunnel from its event stream.
    host, port = api.rsplit(":", 1)
    events = socket.create_connection((host, int(port)), timeout=10)
    events.sendall(f"GET /api/events HTTP/1.1\r\nHost: {api}\r\n\r\n".encode())
    stream = events.makefile("rb")
    assert stream.readline().startswith(b"HTTP/1.1 200")

    f.write_text(config_text(http_backend.port, {"one": "", "two": ""}))
    mark = client.mark()
    r = run_cli(home, "--inspect-addr", api, "reload")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "reloaded: 1 added (two/http), 0 removed, 0 changed, 1 unchanged"
    forwarding(client, 1, since=mark)
    assert curl(server.url("two") + "/hello").body == b"hello"
    event = None
    while True:
        line = stream.readline().decode()
        assert line, "the event stream ended before a tunnels event"
        if line.startswith("event: "):
            event = line[7:].strip()
        elif line.startswith("data: ") and event == "tunnels":
            names = [t["name"] for t in json.loads(line[6:])["tunnels"]]
            if names == ["one", "two"]:
                break
    events.close()

    f.write_text("tunnels: [")
    r = run_cli(home, "--inspect-addr", api, "reload")
    assert r.returncode == 1
    assert f"reload failed: {f}:1:" in r.stderr


def test_porthole_reload_with_no_client_running_says_so(home):
    closed = harness.dead_port()
    addr = f"127.0.0.1:{closed.getsockname()[1]}"
    r = run_cli(home, "--inspect-addr", addr, "reload")
    assert r.returncode == 1
    assert f"no porthole client answers on {addr}" in r.stderr


def test_reload_closes_a_started_name_removed_from_the_file(home, tmp_path, server, http_backend):
    f = tmp_path / "c.yml"
    f.write_text(config_text(http_backend.port, {"a": "", "b": "", "c": ""}))
    client = start_client(home, server, f, "start", "a", "b")
    forwarding(client, 2)
    # b removed; c (not started by name) stays unserved; a untouched.
    f.write_text(config_text(http_backend.port, {"a": "", "c": ""}))
    mark = client.mark()
    client.popen.send_signal(signal.SIGHUP)
    client.wait_for(r"reloaded .*: 0 added, 1 removed \(b/http\), 0 changed, 1 unchanged",
                    since=mark)
    assert curl(server.url("b") + "/hello").status == 404
    assert curl(server.url("c") + "/hello").status == 404
    assert curl(server.url("a") + "/hello").body == b"hello"


def read_chunked_body(sock: socket.socket, buf: bytes) -> bytes:
    """Reads a chunked body whose first bytes are in `buf`, to its end."""
    body = bytearray()
    while True:
        while b"\r\n" not in buf:
            buf += sock.recv(1 << 20)
        size_line, buf = buf.split(b"\r\n", 1)
        size = int(size_line, 16)
        while len(buf) < size + 2:
            more = sock.recv(1 << 20)
            assert more, "connection closed inside a chunk"
            buf += more
        if size == 0:
            return bytes(body)
        body += buf[:size]
        buf = buf[size + 2:]


def test_a_long_download_on_an_untouched_tunnel_survives_a_reload(home, tmp_path, server,
                                                                  http_backend):
    f = tmp_path / "c.yml"
    f.write_text(config_text(http_backend.port, {"keep": "", "drop": ""}))
    client = start_client(home, server, f, "start", "--all")
    forwarding(client, 2)
    size = 64 * 1024 * 1024  # far more than the socket buffers and windows on the path hold
    with socket.create_connection(("127.0.0.1", server.http_port), timeout=30) as sock:
        sock.sendall(f"GET /bytes/{size} HTTP/1.1\r\nHost: keep.{server.domain}\r\n"
                     f"Connection: close\r\n\r\n".encode())
        # Read the head and the first bytes, then stop reading: flow control
        # holds the rest of the download in the tunnel and the backend.
        buf = b""
        while b"\r\n\r\n" not in buf:
            buf += sock.recv(65536)
        head, buf = buf.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 200"), head

        f.write_text(config_text(http_backend.port, {"keep": "", "added": ""}))
        mark = client.mark()
        client.popen.send_signal(signal.SIGHUP)
        client.wait_for(r"reloaded .*: 1 added \(added/http\), 1 removed \(drop/http\)",
                        since=mark)
        forwarding(client, 1, since=mark)

        body = read_chunked_body(sock, buf)
    assert len(body) == size
    assert body == harness.deterministic_bytes(size)
