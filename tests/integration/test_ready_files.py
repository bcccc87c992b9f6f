"""portholed --ready-file and porthole --ready-file: what they say is what a
user finds (the ports answer, the URLs carry traffic), they are replaced whole,
they go when the program stops, and a path that cannot be written stops the
program before anything listens."""

import json
import re
import signal
import stat
import subprocess
import textwrap
import urllib.request

import harness
from backends import echo_through
from harness import Process, binary, clean_env, curl, port_of, urls_of


def version_of(program: str) -> str:
    return subprocess.run([str(binary(program)), "--version"], capture_output=True, text=True,
                          timeout=30).stdout.strip()


# --------------------------------------------------------------------------
# portholed
# --------------------------------------------------------------------------

def test_the_servers_ready_file_names_the_ports_that_answer_and_the_dev_ca(server, http_backend,
                                                                           start_porthole):
    ready = json.loads(server.ready_file.read_text())
    assert set(ready) == {"pid", "domain", "tunnel_addr", "https_addr", "http_addr",
                          "admin_addr", "node_addr", "dev_ca", "version"}
    assert ready["node_addr"] is None  # not a node of a cluster
    assert ready["pid"] == server.proc.pid
    assert ready["domain"] == "localhost"
    assert ready["version"] == version_of("portholed")
    for key in ("tunnel_addr", "https_addr", "http_addr", "admin_addr"):
        assert re.fullmatch(r"127\.0\.0\.1:\d+", ready[key]), (key, ready)
    assert len({ready["tunnel_addr"], ready["https_addr"], ready["http_addr"]}) == 3
    assert stat.S_IMODE(server.ready_file.stat().st_mode) == 0o644
    assert not server.ready_file.with_name(server.ready_file.name + ".tmp").exists()

    # The admin endpoint answers where the file says.
    r = curl(f"http://{ready['admin_addr']}/healthz", timeout=10)
    assert (r.returncode, r.status, r.body) == (0, 200, b"ok\n"), (r.stderr, r.status, r.body)
    # A client reaches the tunnel address with the CA the file names, and the
    # public ports serve its tunnel over http and https (trusting that CA).
    assert ready["dev_ca"].startswith("/") and "BEGIN CERTIFICATE" in open(ready["dev_ca"]).read()
    client = start_porthole("http", f"127.0.0.1:{http_backend.port}", "--subdomain", "named",
                            server_addr=ready["tunnel_addr"], trust_ca=ready["dev_ca"])
    http_url = f"http://named.localhost:{port_of(ready['http_addr'])}"
    https_url = f"https://named.localhost:{port_of(ready['https_addr'])}"
    assert sorted(client.urls) == [http_url, https_url]
    assert curl(f"{http_url}/hello").body == b"hello"
    r = curl(f"{https_url}/hello", cacert=ready["dev_ca"])
    assert (r.returncode, r.body) == (0, b"hello"), r.stderr


def test_one_port_for_tunnel_clients_and_https_is_both_addresses(start_portholed):
    port = harness.os_port()
    server = start_portholed(https_addr=f"127.0.0.1:{port}", tunnel_addr=f"127.0.0.1:{port}")
    assert server.ready["tunnel_addr"] == server.ready["https_addr"] == f"127.0.0.1:{port}"


def test_disabled_listeners_are_null_and_so_is_the_ca_of_a_server_with_its_own_cert(
        start_portholed, tls_files):
    server = start_portholed("--tls-cert", tls_files["cert"], "--tls-key", tls_files["key"],
                             "--admin-addr", "", dev=False, http_addr="")
    assert (server.ready["http_addr"], server.ready["admin_addr"],
            server.ready["dev_ca"]) == (None, None, None)
    assert port_of(server.ready["tunnel_addr"])


def test_the_servers_ready_file_is_gone_after_sigterm(server):
    assert server.ready_file.exists()
    server.proc.popen.send_signal(signal.SIGTERM)
    assert server.proc.wait_exit() == 0
    assert not server.ready_file.exists()


def test_a_server_ready_file_in_a_missing_folder_is_an_error_before_anything_listens(tmp_path,
                                                                                     home):
    path = tmp_path / "no-such-folder" / "ready.json"
    proc = Process([binary("portholed"), "--dev", "--state-dir", tmp_path / "state",
                    "--http-addr", "127.0.0.1:0", "--https-addr", "127.0.0.1:0",
                    "--tunnel-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0",
                    "--ready-file", path, "--log", "stderr"], name="portholed",
                   env=clean_env(home))
    assert proc.wait_exit() == 1
    assert f"portholed: cannot write the ready file {path}: cannot create {path}.tmp: " \
           "No such file or directory" in proc.text("stderr")
    assert "listening" not in proc.text() and "portholed ready" not in proc.text()


# --------------------------------------------------------------------------
# porthole
# --------------------------------------------------------------------------

def test_the_clients_ready_file_lists_the_urls_that_carry_traffic(server, http_backend,
                                                                  start_porthole):
    client = start_porthole("http", f"127.0.0.1:{http_backend.port}", "--subdomain", "shown",
                            "--inspect-addr", "127.0.0.1:0", server=server)
    ready = json.loads(client.ready_file.read_text())
    assert set(ready) == {"pid", "client_id", "server", "transport", "connection", "standby",
                          "inspect_addr", "tunnels"}
    assert ready["standby"] is None  # a single node takes no second connection
    assert ready["pid"] == client.proc.pid
    assert ready["server"] == server.tunnel_addr
    assert (ready["transport"], ready["connection"]) == ("mux", 1)
    assert ready["tunnels"] == [
        {"name": "http", "url": server.url("shown"), "proto": "http",
         "local": f"127.0.0.1:{http_backend.port}"},
        {"name": "http", "url": server.url("shown", "https"), "proto": "https",
         "local": f"127.0.0.1:{http_backend.port}"}]
    assert stat.S_IMODE(client.ready_file.stat().st_mode) == 0o644
    # What the user sees: the URLs answer, the log names the same client, and
    # the local API lists the same tunnels.
    assert curl(f"{server.url('shown')}/hello").body == b"hello"
    r = curl(f"{server.url('shown', 'https')}/hello", cacert=server.ca)
    assert (r.returncode, r.body) == (0, b"hello"), r.stderr
    assert client.connected()["id"] == ready["client_id"]
    with urllib.request.urlopen(f"http://{ready['inspect_addr']}/api/tunnels", timeout=10) as r:
        api = json.load(r)
    assert [t["public_url"] for t in api["tunnels"]] == urls_of(ready)


def test_a_tcp_tunnel_is_listed_with_its_port(tcp_server, tcp_echo, start_porthole):
    client = start_porthole("tcp", f"127.0.0.1:{tcp_echo.port}", server=tcp_server)
    [tunnel] = client.ready["tunnels"]
    assert (tunnel["name"], tunnel["proto"]) == ("tcp", "tcp")
    assert re.fullmatch(r"tcp://localhost:\d+", tunnel["url"]), tunnel
    assert client.ready["inspect_addr"] is None  # the harness disables the web interface
    data = harness.deterministic_bytes(10_000, seed=5)
    assert echo_through(port_of(tunnel["url"]), data) == data


def test_the_transport_is_pool_without_the_multiplexed_connection(start_portholed, http_backend,
                                                                  start_porthole):
    server = start_portholed("--no-mux")
    client = start_porthole("http", f"127.0.0.1:{http_backend.port}", "--proto", "http",
                            server=server)
    assert client.ready["transport"] == "pool"
    assert curl(f"{client.url()}/hello").body == b"hello"


def test_a_reload_writes_the_next_version_with_the_added_tunnel(server, http_backend,
                                                                 start_porthole, tmp_path):
    # The config file's ready_file key, relative to the file's folder; the
    # harness's own --ready-file on the command line wins over it.
    config = tmp_path / "c.yml"
    config.write_text(textwrap.dedent(f"""\
        ready_file: from-the-file.json
        tunnels:
          one:
            proto:
              http: {http_backend.port}
        """))
    client = start_porthole("start", "--all", "--config", str(config), server=server,
                            wait_up=False)
    first = client.wait_tunnels(1)
    assert not (tmp_path / "from-the-file.json").exists()
    config.write_text(config.read_text() + f"  two:\n    proto:\n      http: {http_backend.port}\n")
    client.proc.popen.send_signal(signal.SIGHUP)
    second = client.wait_tunnels(2, since=first)
    assert [t["name"] for t in second["tunnels"]] == ["one", "two"]
    assert (second["client_id"], second["connection"]) == (first["client_id"], 1)
    assert curl(f"{server.url('two')}/hello").body == b"hello"


def test_the_ready_file_key_of_the_clients_config_file(server, http_backend, home, tmp_path):
    config = tmp_path / "c.yml"
    config.write_text(textwrap.dedent(f"""\
        ready_file: run.json
        tunnels:
          keyed:
            proto:
              http: {http_backend.port}
        """))
    proc = Process([binary("porthole"), "--config", config, "--server-addr", server.tunnel_addr,
                    "--trust-ca", server.ca, "--log", "stderr", "--inspect-addr", "disabled",
                    "start", "keyed"], name="porthole", env=clean_env(home))
    ready = harness.wait_ready_file(proc, tmp_path / "run.json", timeout=harness.TUNNEL_UP_TIMEOUT)
    assert urls_of(ready) == [server.url("keyed")]
    assert curl(f"{server.url('keyed')}/hello").body == b"hello"


def test_the_clients_ready_file_is_gone_after_sigterm(server, http_backend, start_porthole):
    client = start_porthole("http", f"127.0.0.1:{http_backend.port}", "--proto", "http",
                            server=server)
    assert client.ready_file.exists()
    client.proc.popen.send_signal(signal.SIGTERM)
    assert client.proc.wait_exit() == 0
    assert not client.ready_file.exists()


def test_a_client_ready_file_in_a_missing_folder_is_an_error_before_anything_listens(
        server, tmp_path, home):
    path = tmp_path / "no-such-folder" / "ready.json"
    proc = Process([binary("porthole"), "--server-addr", server.tunnel_addr, "--trust-ca",
                    server.ca, "--log", "stderr", "--inspect-addr", "127.0.0.1:0",
                    "--ready-file", path, "http", "8080"], name="porthole", env=clean_env(home))
    assert proc.wait_exit() == 1
    assert f"porthole: cannot write the ready file {path}: cannot create {path}.tmp: " \
           "No such file or directory" in proc.text("stderr")
    assert "web interface on" not in proc.text() and "connected to server" not in proc.text()
    assert "client connected" not in server.proc.text()
