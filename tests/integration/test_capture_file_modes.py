"""The client's files hold captured traffic (other people's cookies, tokens and
bodies) and its session ids: only their owner may read them (issue 16, item
6). ~/.porthole is 0700; the capture store and its -wal, -shm and -journal
files 0600, and a client started over looser ones from an older porthole
narrows them and says so."""

import json
import re
import stat
import time
import urllib.request
from pathlib import Path

from harness import curl, scaled

# Runs the client with the usual umask, under which a file is created 0644
# and a folder 0755 unless the program asks for less.
UMASK_022 = ["sh", "-c", 'umask 022 && exec "$0" "$@"']

STORE_FILES = ("captures.db", "captures.db-wal", "captures.db-shm", "captures.db-journal")


def mode(path: Path) -> str:
    return oct(stat.S_IMODE(path.stat().st_mode))


def captured(addr: str, count: int, timeout: float = 10.0) -> list[dict]:
    deadline = time.monotonic() + scaled(timeout)
    while True:
        with urllib.request.urlopen(f"http://{addr}/api/requests/http", timeout=30) as r:
            reqs = json.loads(r.read())["requests"]
        if len(reqs) >= count or time.monotonic() > deadline:
            return reqs
        time.sleep(0.05)


def start_capturing_client(start_porthole, server, http_backend):
    """A client with the web interface on, capturing into the default
    ~/.porthole/captures.db; returns it and the inspector's address."""
    client = start_porthole("http", f"127.0.0.1:{http_backend.port}", "--subdomain", "modes",
                            "--proto", "http", "--inspect-addr", "127.0.0.1:0",
                            server=server, prefix=UMASK_022)
    addr = client.proc.wait_for(r"web interface on http://(?P<addr>\S+)")["addr"]
    return client, addr


def test_capture_store_and_its_folder_are_readable_only_by_their_owner(
        server, http_backend, start_porthole, home):
    client, addr = start_capturing_client(start_porthole, server, http_backend)
    state = home / ".porthole"
    assert client.proc.wait_for(r"capturing HTTP exchanges into (?P<db>\S+)")["db"] == \
        str(state / "captures.db")
    for word in ("a", "b", "c"):
        assert curl(f"{client.url()}/echo/{word}", "-H", "Cookie: session=secret").status == 200
    assert len(captured(addr, 3)) == 3

    assert mode(state) == "0o700"
    present = [f for f in STORE_FILES if (state / f).exists()]
    assert {"captures.db", "captures.db-wal", "captures.db-shm"} <= set(present)  # WAL mode
    assert {f: mode(state / f) for f in present} == {f: "0o600" for f in present}
    sessions = state / "sessions"
    assert mode(sessions) == "0o700"
    ids = list(sessions.glob("*.id"))
    assert ids and all(mode(f) == "0o600" for f in ids)

    client.proc.stop()
    assert mode(state) == "0o700" and mode(state / "captures.db") == "0o600"


def test_looser_files_of_an_older_client_are_narrowed_and_the_change_is_logged(
        server, http_backend, start_porthole, home):
    first, addr = start_capturing_client(start_porthole, server, http_backend)
    curl(f"{first.url()}/echo/kept")
    assert len(captured(addr, 1)) == 1
    first.proc.stop()
    # As an older porthole left them: a 0755 folder, 0644 files (a -wal and
    # -shm left by a client that was killed).
    state = home / ".porthole"
    state.chmod(0o755)
    for f in ("captures.db", "captures.db-wal", "captures.db-shm"):
        (state / f).touch()
        (state / f).chmod(0o644)

    again, addr = start_capturing_client(start_porthole, server, http_backend)

    log = again.proc
    log.wait_for(rf"{re.escape(str(state))}: .*0755 to 0700")
    for f in ("captures.db", "captures.db-wal", "captures.db-shm"):
        log.wait_for(rf"{re.escape(str(state / f))}: .*0644 to 0600")
    assert mode(state) == "0o700"
    present = [f for f in STORE_FILES if (state / f).exists()]
    assert {f: mode(state / f) for f in present} == {f: "0o600" for f in present}
    # The history is still there, and new exchanges are captured.
    curl(f"{again.url()}/echo/new")
    assert [r["request"]["uri"] for r in captured(addr, 2)] == ["/echo/new", "/echo/kept"]


def test_a_new_log_file_is_readable_only_by_its_owner(server, http_backend, start_porthole,
                                                      tmp_path):
    # Log lines carry client ids, the credential of proxy connections (the
    # same code opens portholed's --log FILE).
    client_log = tmp_path / "porthole.log"
    client = start_porthole("http", f"127.0.0.1:{http_backend.port}", "--proto", "http",
                            "--log", str(client_log), server=server, prefix=UMASK_022,
                            wait_up=False)
    deadline = time.monotonic() + scaled(10)
    while "Forwarding" not in (client_log.read_text() if client_log.exists() else ""):
        assert client.proc.running and time.monotonic() < deadline, client.proc.text()
        time.sleep(0.05)
    assert mode(client_log) == "0o600"


def test_a_config_file_holding_the_authtoken_that_others_can_read_is_warned_about(
        server, http_backend, start_porthole, tmp_path):
    config = tmp_path / "porthole.yml"
    config.write_text("authtoken: secret-token\n")
    config.chmod(0o644)
    client = start_porthole("http", f"127.0.0.1:{http_backend.port}", "--proto", "http",
                            "--config", str(config), server=server)
    client.proc.wait_for(rf"{re.escape(str(config))}: other local users can read it "
                         r"\(mode 0644\) and it holds the authtoken; chmod 600")
    assert mode(config) == "0o644"  # the user's file: told, not changed

    config.chmod(0o600)
    quiet = start_porthole("http", f"127.0.0.1:{http_backend.port}", "--proto", "http",
                           "--config", str(config), server=server)
    quiet.proc.stop()
    assert "other local users can read it" not in quiet.proc.text()
