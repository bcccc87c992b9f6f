"""The status screen: porthole run in a real terminal (tmux), as a user sees it.

Each test types the command into a shell in a tmux pane, reads the pane, and
checks that the shell gets its terminal back as it was (`stty -a` before and
after, the alternate screen left)."""

from __future__ import annotations

import re
import subprocess

import pytest

import harness
from harness import curl
from terminal import Terminal

COLOUR = re.compile(r"\x1b\[[0-9;]*3[0-7]m")


def version() -> str:
    out = subprocess.run([harness.binary("porthole"), "--version"], capture_output=True,
                         text=True, check=True).stdout
    return out.strip().split()[-1]


def porthole(server: harness.Server, *args, inspect: str = "disabled") -> list:
    return [harness.binary("porthole"), "--server-addr", server.tunnel_addr, "--trust-ca",
            server.ca, "--inspect-addr", inspect, *args]


@pytest.fixture
def term(tmp_path, home) -> Terminal:
    return Terminal(tmp_path / "term", home)


def field(screen: str, label: str) -> list[str]:
    """The values shown for `label` (one per line that has it)."""
    return [m[1].rstrip() for m in re.finditer(rf"^{re.escape(label)} +(\S.*)$", screen, re.M)]


def assert_shell_back(term: Terminal, tag: str) -> None:
    assert not term.alternate_on(), "the alternate screen is still on"
    assert term.modes_changed(tag) == "", "the terminal's modes changed"
    assert "Tunnel Status" not in term.history(), "the status screen was drawn on the shell's"


def test_screen_shows_status_tunnels_and_requests_newest_first(server, http_backend, term):
    term.run_and_record(porthole(server, "http", f"127.0.0.1:{http_backend.port}",
                                 "--subdomain", "screen", inspect="127.0.0.1:0"), "run")
    term.wait_for(r"^Tunnel Status +online")
    screen = term.wait_for(r"Forwarding +https://").string
    assert field(screen, "Version") == [f"{version()}/{version()}"]
    local = f"127.0.0.1:{http_backend.port}"
    assert field(screen, "Forwarding") == [
        f"http://screen.localhost:{server.http_port} -> {local}",
        f"https://screen.localhost:{server.https_port} -> {local}"]
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", field(screen, "Web Interface")[0])
    assert field(screen, "Connections") == ["0 open, 0 total"]
    assert screen.splitlines()[0].startswith("porthole ")
    assert screen.splitlines()[0].rstrip().endswith("(q or Ctrl+C to quit)")

    url = f"http://screen.localhost:{server.http_port}"
    assert curl(f"{url}/echo/first-request").status == 200
    assert curl(f"{url}/no-such-page").status == 404
    # The newer request's row is drawn last: once it shows, both do.
    term.wait_for(r"^GET +/echo/first-request +200 OK +\d")
    screen = term.wait_for(r"^GET +/no-such-page +404 ").string
    rows = [l for l in screen.splitlines() if re.match(r"^GET +/", l)]
    assert re.match(r"^GET +/no-such-page +404 ", rows[0]), rows  # newest first
    assert re.match(r"^GET +/echo/first-request +200 OK +[\d.]+ (ms|s)$", rows[1]), rows
    screen = term.wait_for(r"^Connections +0 open, 2 total$").string
    assert re.fullmatch(r"2 total, [\d.]+/s over the last minute", field(screen, "Requests")[0])

    term.press("q")
    assert term.wait_exit("run") == 0
    assert_shell_back(term, "run")

    # Started again at once, it gets the same URLs: quitting gave them back.
    term.run_and_record(porthole(server, "http", f"127.0.0.1:{http_backend.port}",
                                 "--subdomain", "screen"), "again")
    screen = term.wait_for(r"Forwarding +https://").string
    assert field(screen, "Tunnel Status") == ["online"]
    assert field(screen, "Forwarding")[0] == f"http://screen.localhost:{server.http_port} -> {local}"
    term.press("q")
    assert term.wait_exit("again") == 0


def test_the_list_shows_as_many_requests_as_fit(server, http_backend, term):
    term.run_and_record(porthole(server, "http", f"127.0.0.1:{http_backend.port}",
                                 "--subdomain", "many", "--proto", "http"), "run")
    term.wait_for(r"^Forwarding +http://")
    url = f"http://many.localhost:{server.http_port}"
    for i in range(40):
        assert curl(f"{url}/echo/r{i}").status == 200
    lines = term.wait_for(r"^GET +/echo/r39 ").string.splitlines()
    cols, rows = term.size()
    assert len(lines) >= rows
    # The last line of the screen is a request (r39 newest, at the top).
    assert re.match(r"^GET +/echo/r\d+ +200 OK", lines[rows - 1]), lines
    shown = [int(m[1]) for l in lines if (m := re.match(r"^GET +/echo/r(\d+) ", l))]
    assert shown == list(range(39, 39 - len(shown), -1))
    assert all(len(l) <= cols for l in lines)
    term.press("q")
    assert term.wait_exit("run") == 0
    assert_shell_back(term, "run")


def test_ctrl_c_quits_cleanly_and_a_log_file_is_kept_beside_the_screen(server, http_backend,
                                                                       term, tmp_path):
    log = tmp_path / "porthole.log"
    term.run_and_record(porthole(server, "--log", log, "http", str(http_backend.port),
                                 "--subdomain", "cc"), "run")
    term.wait_for(r"^Tunnel Status +online")
    term.wait_for(r"^Forwarding +https://cc\.")
    assert re.search(r"\[info\] Forwarding https://cc\.localhost:\d+ -> ", log.read_text())
    term.press("C-c")
    assert term.wait_exit("run") == 0
    assert_shell_back(term, "run")


@pytest.mark.parametrize("sig", ["TERM", "INT"])
def test_sigterm_and_sigint_end_it_cleanly(sig, server, http_backend, term):
    term.run_and_record(porthole(server, "http", str(http_backend.port), "--subdomain",
                                 "signal-test"), "run")
    term.wait_for(r"^Tunnel Status +online")
    subprocess.run(["pkill", f"-{sig}", "-f", "--", "--subdomain signal-test"], check=True)
    assert term.wait_exit("run") == 0
    assert_shell_back(term, "run")


def test_with_keys_from_elsewhere_ctrl_c_still_quits(server, http_backend, term):
    """stdin not the terminal: no keys are read, so the terminal keeps sending
    SIGINT for Ctrl-C."""
    term.run_and_record(porthole(server, "http", str(http_backend.port), "--subdomain",
                                 "nokeys"), "run", stdin="/dev/null")
    term.wait_for(r"^Tunnel Status +online")
    term.press("C-c")
    assert term.wait_exit("run") == 0
    assert_shell_back(term, "run")


def test_a_lost_server_shows_reconnecting_with_the_countdown(server, http_backend, term):
    term.run_and_record(porthole(server, "http", str(http_backend.port), "--subdomain", "lost"),
                        "run")
    term.wait_for(r"^Tunnel Status +online")
    server.proc.stop()
    term.wait_for(r"^Tunnel Status +reconnecting \(retry in \d+s\)")
    # Why, once the next try has failed too.
    term.wait_for(r"^Last Problem +\d\d:\d\d:\d\d  cannot reach server 127\.0\.0\.1:\d+: .*refused")
    term.press("q")
    assert term.wait_exit("run") == 0
    assert_shell_back(term, "run")


def test_a_refused_authtoken_shows_offline_in_plain_words(start_portholed, http_backend, term):
    server = start_portholed(authtokens=["good-token"])
    term.run_and_record(porthole(server, "--authtoken", "bad-token", "http",
                                 str(http_backend.port)), "run")
    screen = term.wait_for(r"^Tunnel Status +offline: the server refused the client: ").string
    assert "invalid authtoken" in screen.lower(), screen
    term.press("q")
    assert term.wait_exit("run") == 1
    assert "porthole: the server refused the client:" in term.history()
    assert_shell_back(term, "run")


def test_a_refused_tunnel_is_shown_while_the_others_work(server, http_backend, start_porthole,
                                                         term, tmp_path):
    start_porthole("http", str(http_backend.port), "--subdomain", "taken", "--proto", "http",
                   server=server)
    config = tmp_path / "porthole.yml"
    config.write_text(f"""\
tunnels:
  web:
    subdomain: taken
    proto:
      http: {http_backend.port}
  api:
    subdomain: free
    proto:
      http: {http_backend.port}
""")
    term.run_and_record(porthole(server, "--config", config, "start", "web", "api"), "run")
    # The server's words, wrapped in the value column.
    term.wait_for(r"^Refused +web \(http\): The tunnel http://taken\.localhost:\d+ is already"
                  r"\s+registered\.$")
    screen = term.wait_for(r"^Forwarding +http://free\.").string
    assert field(screen, "Tunnel Status") == ["online"]
    assert curl(f"http://free.localhost:{server.http_port}/hello").status == 200
    term.press("q")
    assert term.wait_exit("run") == 0
    assert_shell_back(term, "run")


def test_colours_only_where_terminfo_has_them_and_never_with_no_color(server, http_backend,
                                                                     tmp_path, home):
    coloured = Terminal(tmp_path / "colour", home, name="colour-terminal")
    coloured.run_and_record(porthole(server, "http", str(http_backend.port), "--subdomain",
                                     "colour"), "run")
    coloured.wait_for(r"^Tunnel Status +online")
    assert COLOUR.search(coloured.screen(escapes=True)), "no colour on a colour terminal"
    coloured.press("q")
    assert coloured.wait_exit("run") == 0

    plain = Terminal(tmp_path / "plain", home, env={"NO_COLOR": "1"}, name="no-color-terminal")
    plain.run_and_record(porthole(server, "http", str(http_backend.port), "--subdomain",
                                  "nocolour"), "run")
    plain.wait_for(r"^Tunnel Status +online")
    assert not COLOUR.search(plain.screen(escapes=True)), plain.screen(escapes=True)
    plain.press("q")
    assert plain.wait_exit("run") == 0

    # A terminal that terminfo says has no colours (a VT100).
    vt100 = porthole(server, "http", str(http_backend.port), "--subdomain", "vt100")
    plain.run_and_record(["env", "-u", "NO_COLOR", "TERM=vt100", *vt100], "vt100")
    plain.wait_for(r"^Tunnel Status +online")
    assert not COLOUR.search(plain.screen(escapes=True)), plain.screen(escapes=True)
    plain.press("q")
    assert plain.wait_exit("vt100") == 0


def test_the_screen_follows_a_resize(server, http_backend, term):
    term.run_and_record(porthole(server, "http", str(http_backend.port), "--subdomain",
                                 "resize"), "run")
    term.wait_for(r"^Tunnel Status +online")
    term.resize(64, 16)
    # The quit hint moves to the new right edge.
    term.wait_for(r"\Aporthole {35}\(q or Ctrl\+C to quit\)$")
    lines = term.screen().splitlines()
    assert all(len(l) <= 64 for l in lines), lines
    assert field("\n".join(lines), "Tunnel Status") == ["online"]
    term.press("q")
    assert term.wait_exit("run") == 0
    assert not term.alternate_on()


def test_not_a_terminal_gives_plain_log_lines(server, http_backend, home):
    """stdout a pipe and no --log: the log on stdout, no escape sequences."""
    proc = harness.Process(porthole(server, "http", str(http_backend.port), "--subdomain",
                                    "piped", "--proto", "http"),
                           name="porthole", env=harness.clean_env(home, {"TERM": "xterm-256color"}))
    proc.wait_for(r"Forwarding http://piped\.localhost:\d+ -> ", stream="stdout")
    assert curl(f"http://piped.localhost:{server.http_port}/hello").status == 200
    proc.stop()
    out = proc.text()
    assert re.search(r"^\[\d{4}-\d\d-\d\d [\d:.]+\] \[info\] connected to server", out, re.M)
    assert "\x1b" not in out, repr(out)
