"""portholed tells systemd (a Type=notify unit) when it is ready: READY=1 once
every listener is bound, so `systemctl start` returns only when the ports answer,
and STOPPING=1 when a signal makes it shut down. The service manager is played
by a datagram socket named in $NOTIFY_SOCKET, as systemd does."""

import json
import signal
import socket

from harness import Process, binary, clean_env, port_of, scaled

NOTIFY_WITHIN = scaled(15.0)


def _notify_socket(path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(NOTIFY_WITHIN)
    return sock


def test_ready_once_listening_then_stopping_on_sigterm(tmp_path, home):
    sock = _notify_socket(tmp_path / "notify")
    env = clean_env(home, {"NOTIFY_SOCKET": str(tmp_path / "notify")})
    ready_file = tmp_path / "ready.json"
    proc = Process([binary("portholed"), "--dev", "--domain", "localhost",
                    "--state-dir", tmp_path / "state", "--http-addr", "127.0.0.1:0",
                    "--https-addr", "127.0.0.1:0", "--tunnel-addr", "127.0.0.1:0",
                    "--ready-file", ready_file, "--log", "stderr"], name="portholed", env=env)

    assert sock.recv(256) == b"READY=1"
    # Ready means bound, and the ready file written: the public HTTP port it
    # names answers at once.
    ready = json.loads(ready_file.read_text())
    with socket.create_connection(("127.0.0.1", port_of(ready["http_addr"])), timeout=5) as conn:
        conn.sendall(b"GET / HTTP/1.1\r\nHost: nobody.localhost\r\n\r\n")
        assert conn.recv(64).startswith(b"HTTP/1.1 404")

    proc.popen.send_signal(signal.SIGTERM)
    assert sock.recv(256) == b"STOPPING=1"
    assert proc.wait_exit() == 0
    assert not ready_file.exists()


def test_without_a_service_manager_it_starts_and_stops_all_the_same(tmp_path, home):
    proc = Process([binary("portholed"), "--dev", "--domain", "localhost",
                    "--state-dir", tmp_path / "state", "--http-addr", "127.0.0.1:0",
                    "--https-addr", "127.0.0.1:0", "--tunnel-addr", "127.0.0.1:0",
                    "--log", "stderr"], name="portholed", env=clean_env(home))
    proc.wait_for(r"portholed ready")
    proc.popen.send_signal(signal.SIGTERM)
    assert proc.wait_exit() == 0
