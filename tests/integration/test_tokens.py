"""Authtokens of <state-dir>/tokens.db, managed with `portholed token ...`:
a client needs one, a revoked one is refused and its clients dropped,
reserved subdomains go only to their token, limits count all the clients of
a token together; an --authtokens file keeps working beside them."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from harness import RawHTTP, binary, clean_env, curl, scaled


def token_cmd(state: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([binary("portholed"), "token", *args, "--state-dir", state],
                          capture_output=True, text=True, timeout=scaled(30),
                          env=clean_env(state.parent / "admin-home"))


def add_token(state: Path, *args: str) -> str:
    r = token_cmd(state, "add", *args)
    assert r.returncode == 0, r.stderr
    token = r.stdout.strip()
    assert token.startswith("ph_"), r.stdout
    return token


def listed(state: Path) -> list[dict]:
    r = token_cmd(state, "list", "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "state"


def http_client(start_porthole, server, backend, token, *args, **kw):
    return start_porthole("http", f"127.0.0.1:{backend.port}", "--proto", "http", *args,
                          server=server, authtoken=token, **kw)


def test_client_with_an_added_token_gets_a_tunnel_and_its_use_is_recorded(
        state, start_portholed, http_backend, start_porthole):
    token = add_token(state, "--name", "laptop")
    server = start_portholed(state_dir=state)
    client = http_client(start_porthole, server, http_backend, token)
    r = curl(f"{client.url()}/hello")
    assert (r.returncode, r.status, r.body) == (0, 200, b"hello"), r.stderr
    deadline = time.monotonic() + scaled(10)
    while listed(state)[0]["last_used"] is None:
        assert time.monotonic() < deadline, "token list shows no last-used time"
        time.sleep(0.1)


def test_add_shows_the_client_flag_and_list_shows_the_token_without_its_secret(state):
    r = token_cmd(state, "add", "--name", "ci", "--subdomains", "Blog,api", "--max-tunnels", "3")
    assert r.returncode == 0, r.stderr
    token = r.stdout.strip()
    assert f"porthole --authtoken {token}" in r.stderr
    table = token_cmd(state, "list")
    assert table.returncode == 0, table.stderr
    assert "ci" in table.stdout and "api,blog" in table.stdout and token[:9] in table.stdout
    assert token not in table.stdout
    [entry] = listed(state)
    assert (entry["name"], entry["subdomains"], entry["max_tunnels"], entry["max_conns"]) == \
        ("ci", ["api", "blog"], 3, None)


def test_the_database_holds_no_token_in_plain_text(state, start_portholed, http_backend,
                                                    start_porthole):
    token = add_token(state)
    server = start_portholed(state_dir=state)
    http_client(start_porthole, server, http_backend, token)
    files = [p for p in state.iterdir() if p.name.startswith("tokens.db")]
    assert files
    for p in files:
        data = p.read_bytes()
        assert token.encode() not in data, f"{p.name} holds the token"
        assert token[3:].encode() not in data, f"{p.name} holds the token's digits"


def test_wrong_token_is_refused(state, start_portholed, http_backend, start_porthole):
    add_token(state)
    server = start_portholed(state_dir=state)
    client = http_client(start_porthole, server, http_backend, "ph_" + "0" * 48, wait_up=False)
    assert client.proc.wait_exit() != 0
    assert "invalid authtoken" in client.proc.text("stderr")
    assert "Forwarding " not in client.proc.text()


def test_revoking_a_token_drops_its_live_client_and_refuses_it_again(
        state, start_portholed, http_backend, start_porthole):
    token = add_token(state, "--name", "leaked")
    keep = add_token(state, "--name", "kept")
    server = start_portholed(state_dir=state)
    doomed = http_client(start_porthole, server, http_backend, token)
    kept = http_client(start_porthole, server, http_backend, keep, home=state.parent / "home2")
    r = token_cmd(state, "revoke", "leaked")
    assert r.returncode == 0, r.stderr
    server.proc.wait_for(r"token revoked; closing .* token=\"token \d+ 'leaked'\"", timeout=scaled(10))
    assert doomed.proc.wait_exit(timeout=scaled(30)) != 0
    assert "invalid authtoken" in doomed.proc.text("stderr")
    assert kept.proc.running
    r = curl(f"{kept.url()}/hello")
    assert (r.returncode, r.status) == (0, 200), r.stderr
    again = http_client(start_porthole, server, http_backend, token, wait_up=False,
                        home=state.parent / "home3")
    assert again.proc.wait_exit() != 0
    assert "invalid authtoken" in again.proc.text("stderr")


def test_revoke_of_an_unknown_or_ambiguous_token_fails_saying_why(state):
    add_token(state, "--name", "twin")
    add_token(state, "--name", "twin")
    r = token_cmd(state, "revoke", "nobody")
    assert r.returncode != 0 and "no token has the name 'nobody'" in r.stderr, r.stderr
    r = token_cmd(state, "revoke", "twin")
    assert r.returncode != 0 and "ambiguous" in r.stderr, r.stderr
    assert len(listed(state)) == 2


def test_subdomain_reserved_by_another_token_is_refused_at_add(state):
    add_token(state, "--name", "owner", "--subdomains", "blog")
    r = token_cmd(state, "add", "--subdomains", "BLOG")
    assert r.returncode != 0
    assert "'blog' is already reserved by token 1 'owner'" in r.stderr, r.stderr
    r = token_cmd(state, "add", "--subdomains", "a.b")
    assert r.returncode != 0 and "'a.b' is not valid" in r.stderr, r.stderr
    assert len(listed(state)) == 1


def test_reserved_subdomain_goes_to_its_token_only(state, start_portholed, http_backend,
                                                   start_porthole):
    owner = add_token(state, "--subdomains", "blog")
    other = add_token(state)
    server = start_portholed(state_dir=state)
    thief = http_client(start_porthole, server, http_backend, other, "--subdomain", "Blog",
                        wait_up=False, home=state.parent / "home2")
    assert thief.proc.wait_exit() != 0
    assert "subdomain blog is reserved" in thief.proc.text("stderr")
    client = http_client(start_porthole, server, http_backend, owner, "--subdomain", "blog")
    assert client.urls == [f"http://blog.localhost:{server.http_port}"]
    r = curl(f"{client.url()}/hello")
    assert (r.returncode, r.status, r.body) == (0, 200, b"hello"), r.stderr


def test_names_below_a_reserved_subdomain_go_to_its_token_only(state, start_portholed,
                                                              http_backend, start_porthole):
    add_token(state, "--subdomains", "blog")
    other = add_token(state)
    server = start_portholed("--allow-any-hostname", state_dir=state)
    thief = http_client(start_porthole, server, http_backend, other, "--hostname",
                        "x.blog.localhost", wait_up=False)
    assert thief.proc.wait_exit() != 0
    assert "subdomain blog is reserved" in thief.proc.text("stderr")


def test_tunnel_limit_counts_every_client_of_the_token(state, start_portholed, http_backend,
                                                       start_porthole):
    token = add_token(state, "--max-tunnels", "1")
    server = start_portholed(state_dir=state)
    first = http_client(start_porthole, server, http_backend, token)
    second = http_client(start_porthole, server, http_backend, token, wait_up=False,
                         home=state.parent / "home2")
    assert second.proc.wait_exit() != 0
    err = second.proc.text("stderr")
    assert "Too many tunnels" in err and "--max-tunnels" in err, err
    assert first.proc.running


def test_server_flag_sets_the_default_tcp_port_limit(state, start_portholed, tcp_echo,
                                                     start_porthole):
    token = add_token(state)
    server = start_portholed("--max-tcp-ports-per-token", "1", "--tcp-bind-addr", "127.0.0.1",
                             state_dir=state)
    start_porthole("tcp", f"127.0.0.1:{tcp_echo.port}", server=server, authtoken=token)
    second = start_porthole("tcp", f"127.0.0.1:{tcp_echo.port}", server=server, authtoken=token,
                            wait_up=False, home=state.parent / "home2")
    assert second.proc.wait_exit() != 0
    assert "--max-tcp-ports-per-token" in second.proc.text("stderr")


def test_connection_limit_of_a_token_answers_503_beyond(state, start_portholed, http_backend,
                                                       start_porthole):
    token = add_token(state, "--max-conns", "1")
    server = start_portholed(state_dir=state)
    client = http_client(start_porthole, server, http_backend, token, "--subdomain", "one")
    with RawHTTP(server.http_port) as held:
        r = held.request("GET", "/hello", {"Host": f"one.localhost:{server.http_port}"})
        assert r.status == 200
        over = curl(f"{client.url()}/hello")
        assert (over.returncode, over.status) == (0, 503), over.stderr
        server.proc.wait_for(r"the token's clients have its limit open .* token=\"token \d+"
                             r"[^\"]*\" open=1 flag=\"its own --max-conns\"")
    # The held connection is gone: the next one gets through.
    deadline = time.monotonic() + scaled(10)
    while curl(f"{client.url()}/hello").status != 200:
        assert time.monotonic() < deadline, "the connection slot was never given back"
        time.sleep(0.1)


def test_authtokens_file_works_beside_the_database(state, start_portholed, http_backend,
                                                   start_porthole):
    db_token = add_token(state)
    server = start_portholed(state_dir=state, authtokens=["file-token"])
    a = http_client(start_porthole, server, http_backend, "file-token")
    b = http_client(start_porthole, server, http_backend, db_token, home=state.parent / "home2")
    for c in (a, b):
        r = curl(f"{c.url()}/hello")
        assert (r.returncode, r.status, r.body) == (0, 200, b"hello"), r.stderr
    bad = http_client(start_porthole, server, http_backend, "other", wait_up=False,
                      home=state.parent / "home3")
    assert bad.proc.wait_exit() != 0
    assert "invalid authtoken" in bad.proc.text("stderr")


def test_server_without_tokens_warns_that_it_is_open(start_portholed):
    server = start_portholed()
    assert "any client may open tunnels on this server" in server.proc.text()


def test_state_directory_from_systemd_is_the_default(tmp_path):
    state = tmp_path / "from-systemd"
    r = subprocess.run([binary("portholed"), "token", "add"], capture_output=True, text=True,
                       timeout=scaled(30),
                       env=clean_env(tmp_path / "home", {"STATE_DIRECTORY": str(state)}))
    assert r.returncode == 0, r.stderr
    assert (state / "tokens.db").is_file()


def test_token_commands_use_the_state_dir_of_the_config_file(tmp_path):
    """`portholed --config FILE token ...` works on the tokens of the server that reads FILE;
    a --state-dir given to the subcommand still wins."""
    conf = tmp_path / "portholed.yml"
    conf.write_text("domain: tunnel.example.com\nstate-dir: from-config\n")
    env = clean_env(tmp_path / "home")

    def portholed(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([binary("portholed"), *args], capture_output=True, text=True,
                              timeout=scaled(30), env=env)

    r = portholed("--config", conf, "token", "add", "--name", "laptop")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "from-config" / "tokens.db").is_file()
    assert "laptop" in portholed("--config", conf, "token", "list").stdout
    r = portholed("--config", conf, "token", "add", "--name", "other", "--state-dir",
                  tmp_path / "given")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "given" / "tokens.db").is_file()
    assert "other" not in portholed("--config", conf, "token", "list").stdout
    conf.write_text("state-dir: [not, one]\n")
    r = portholed("--config", conf, "token", "list")
    assert r.returncode == 1 and "portholed.yml:1:" in r.stderr and "state-dir" in r.stderr, r.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can create a file for another user")
def test_root_gives_a_new_database_to_the_owner_of_the_state_dir(state):
    state.mkdir()
    os.chown(state, 65534, 65534)
    add_token(state)
    st = (state / "tokens.db").stat()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (65534, 65534, 0o600)
