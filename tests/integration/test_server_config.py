"""portholed --config FILE: every flag a key, the command line over the file,
--print-config, and errors that name FILE:LINE:COLUMN."""

import textwrap
from pathlib import Path

import pytest

import harness
from harness import Process, binary, clean_env, curl

# Everything a test server needs, from the file alone. The state dir and the
# ready file are relative: to the file's directory, not to where portholed runs.
SERVER_YML = f"""\
dev: true
domain: cfg.test
state-dir: state
ready-file: portholed-ready.json
http-addr: 127.0.0.1:0
https-addr: 127.0.0.1:0
tunnel-addr: 127.0.0.1:0
log: stderr
log-level: {harness.LOG_LEVEL}
max-header-fields: 8
"""


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "etc" / "portholed.yml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def run_portholed(tmp_path: Path, *args) -> Process:
    """portholed started in a directory of its own (not the config file's), waited for."""
    cwd = tmp_path / "cwd"
    cwd.mkdir(exist_ok=True)
    proc = Process([binary("portholed"), *args], env=clean_env(tmp_path / "home"), cwd=cwd)
    proc.wait_exit()
    return proc


def start_from_config(tmp_path: Path, config: Path, *flags: str) -> harness.Server:
    cwd = tmp_path / "cwd"
    cwd.mkdir(exist_ok=True)
    proc = Process([binary("portholed"), "--config", config, *flags],
                   env=clean_env(tmp_path / "home"), cwd=cwd)
    return harness.server_of(proc, config.parent / "state", config.parent / "portholed-ready.json")


def get_with_headers(url: str, n: int) -> harness.CurlResult:
    return curl(url, *[a for i in range(n) for a in ("-H", f"X-Extra-{i}: {i}")])


def test_settings_in_the_file_take_effect(tmp_path, http_backend, start_porthole):
    server = start_from_config(tmp_path, write_config(tmp_path, SERVER_YML))
    assert (tmp_path / "etc" / "state" / "ca.pem").is_file(), \
        "the relative state-dir was not taken relative to the config file's directory"
    assert server.domain == "cfg.test" and server.ca == tmp_path / "etc" / "state" / "ca.pem"
    client = start_porthole("http", f"127.0.0.1:{http_backend.port}", "--subdomain", "foo",
                            "--proto", "http", server=server)
    assert client.urls == [f"http://foo.cfg.test:{server.http_port}"]
    r = curl(f"{client.url()}/hello")
    assert (r.returncode, r.status, r.body) == (0, 200, b"hello"), r.stderr
    # max-header-fields: 8 -- curl sends Host, User-Agent and Accept besides.
    assert get_with_headers(f"{client.url()}/hello", 10).status == 431


def test_a_flag_on_the_command_line_overrides_the_file(tmp_path, http_backend, start_porthole):
    server = start_from_config(tmp_path, write_config(tmp_path, SERVER_YML),
                               "--max-header-fields", "50")
    client = start_porthole("http", f"127.0.0.1:{http_backend.port}", "--subdomain", "foo",
                            "--proto", "http", server=server)
    r = get_with_headers(f"{client.url()}/hello", 10)
    assert (r.returncode, r.status, r.body) == (0, 200, b"hello"), r.stderr


def test_print_config_shows_every_key_with_file_flag_and_default_values(tmp_path):
    config = write_config(tmp_path, SERVER_YML + 'allow-hostname: [a.example.org, "*.example.net"]\n')
    proc = run_portholed(tmp_path, "--config", config, "--print-config", "--pool-size", "3")
    assert proc.returncode == 0, proc.text()
    settings = dict(line.split(": ", 1) for line in proc.text("stdout").splitlines())
    assert settings["domain"] == "cfg.test"  # the file
    assert settings["pool-size"] == "3"  # the command line
    assert settings["reconnect-grace"] == "60"  # the default
    assert settings["dev"] == "true"
    assert settings["state-dir"] == str(tmp_path / "etc" / "state")
    assert settings["ready-file"] == str(tmp_path / "etc" / "portholed-ready.json")
    assert settings["allow-hostname"] == '[a.example.org, "*.example.net"]'
    assert "config" not in settings and "help" not in settings and "version" not in settings
    assert "portholed ready" not in proc.text()


def test_an_empty_file_is_no_settings(tmp_path):
    proc = run_portholed(tmp_path, "--config", write_config(tmp_path, ""), "--print-config")
    assert proc.returncode == 0, proc.text()
    assert "domain: localhost" in proc.text("stdout").splitlines()


# (file text, "LINE:COLUMN: what portholed says")
BAD_FILES = {
    "validator": ("domain: a.test\nmax-pool-size: 5000\n",
                  "2:16: max-pool-size: Value 5000 not in range 1 to 1000"),
    "syntax": ("domain: [a.test\n", "2:1: YAML syntax error: "),
    "not-a-map": ("- domain\n", "1:1: expected a map of settings"),
    "unknown-key": ("domian: a.test\n", "1:1: unknown key 'domian'; did you mean 'domain'?"),
    "duplicate": ("domain: a.test\ndomain: b.test\n",
                  "2:1: 'domain' given twice (first on line 1)"),
    "list-for-one-value": ("domain: [a.test, b.test]\n", "1:9: domain: expected one value, not a list"),
    "not-a-bool": ("dev: sometimes\n", "1:6: dev: expected true or false (got 'sometimes')"),
    "missing-cert": ("tls-cert: tls/missing.pem\n", "1:11: tls-cert: File does not exist: {dir}/tls/missing.pem"),
    "program-check": ("allow-hostname: [ok.example.org, 'bad name']\n",
                      "1:34: allow-hostname: wants a host name or *.suffix (got 'bad name')"),
    "loops-yaml-cpp": (",:", "1:1: "),
}


@pytest.mark.parametrize("kind", BAD_FILES)
def test_a_bad_file_is_named_at_file_line_column_and_portholed_exits_nonzero(tmp_path, kind):
    text, said = BAD_FILES[kind]
    config = write_config(tmp_path, text)
    proc = run_portholed(tmp_path, "--config", config, "--dev", "--state-dir", tmp_path / "state",
                         "--http-addr", "127.0.0.1:0", "--https-addr", "127.0.0.1:0",
                         "--tunnel-addr", "127.0.0.1:0")
    assert proc.returncode not in (0, None)
    expected = f"portholed: {config}:" + said.format(dir=config.parent)
    assert expected in proc.text("stderr"), f"expected {expected!r} in:\n{proc.text()}"
    assert "portholed ready" not in proc.text()


def test_a_missing_file_is_named_and_portholed_exits_nonzero(tmp_path):
    missing = tmp_path / "nowhere.yml"
    proc = run_portholed(tmp_path, "--config", missing)
    assert proc.returncode not in (0, None)
    assert f"portholed: {missing}: cannot open: No such file or directory" in proc.text("stderr")


def test_help_mentions_config(tmp_path):
    proc = run_portholed(tmp_path, "--help")
    assert proc.returncode == 0
    assert "--config" in proc.text() and "--print-config" in proc.text()
