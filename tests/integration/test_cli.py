"""The command line: a mistake ends the program at once with a message naming
what is wrong (and how to fix it); --help exits 0 and lists the main options.

None of these programs should get as far as listening: where one might, it is
given loopback addresses chosen by the OS, and a bounded wait for its exit."""

import re

import pytest

from harness import Process, binary, clean_env


def run(tmp_path, name: str, *args) -> Process:
    """Starts binary `name` with args and waits (bounded) for it to exit."""
    proc = Process([binary(name), *args], name=name, env=clean_env(tmp_path / "home"),
                   cwd=tmp_path)
    proc.wait_exit()
    return proc


def server_args(tmp_path):
    """Where a portholed that wrongly starts would listen: loopback, OS ports."""
    return ["--state-dir", tmp_path / "state", "--http-addr", "127.0.0.1:0",
            "--https-addr", "127.0.0.1:0", "--tunnel-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0",
            "--log", "stderr"]


# --------------------------------------------------------------------------
# porthole
# --------------------------------------------------------------------------

def test_client_without_server_addr_exits_nonzero_and_says_to_give_one(tmp_path):
    proc = run(tmp_path, "porthole", "http", "8080")
    assert proc.returncode != 0
    err = proc.text("stderr")
    assert "--server-addr" in err, f"stderr does not say to give --server-addr:\n{err}"
    assert "Forwarding " not in proc.text()


def test_client_http_with_non_numeric_port_exits_nonzero_naming_it(tmp_path):
    proc = run(tmp_path, "porthole", "--server-addr", "127.0.0.1:1", "http", "notaport")
    assert proc.returncode != 0
    err = proc.text("stderr")
    assert "notaport" in err, f"stderr does not name the bad port 'notaport':\n{err}"


def test_client_tcp_port_zero_exits_nonzero_naming_it(tmp_path):
    proc = run(tmp_path, "porthole", "--server-addr", "127.0.0.1:1", "tcp", "0")
    assert proc.returncode != 0
    err = proc.text("stderr")
    assert re.search(r"\bport\b", err, re.I) and re.search(r"\b0\b", err), \
        f"stderr does not name the bad local port 0:\n{err}"


def test_client_help_exits_zero_and_lists_main_options(tmp_path):
    proc = run(tmp_path, "porthole", "--help")
    assert proc.returncode == 0
    out = proc.text()
    for word in ("--server-addr", "--authtoken", "--trust-ca", "--pool-size", "--log",
                 "http", "tcp"):
        assert word in out, f"porthole --help does not mention {word}:\n{out}"


@pytest.mark.parametrize("mode, options", [
    ("http", ("--subdomain", "--hostname", "--auth", "--proto")),
    ("tcp", ("--remote-port",)),
])
def test_client_subcommand_help_exits_zero_and_lists_its_options(tmp_path, mode, options):
    proc = run(tmp_path, "porthole", mode, "--help")
    assert proc.returncode == 0
    out = proc.text()
    for word in options:
        assert word in out, f"porthole {mode} --help does not mention {word}:\n{out}"


# --------------------------------------------------------------------------
# portholed
# --------------------------------------------------------------------------

def test_server_with_reversed_tcp_ports_range_exits_nonzero_naming_the_option(tmp_path):
    proc = run(tmp_path, "portholed", "--dev", *server_args(tmp_path), "--tcp-ports", "9000-100")
    assert proc.returncode != 0
    err = proc.text("stderr")
    assert "--tcp-ports" in err, f"stderr does not name --tcp-ports:\n{err}"
    assert "portholed ready" not in proc.text()


def test_server_without_certificate_or_dev_exits_nonzero_saying_what_to_give(tmp_path):
    proc = run(tmp_path, "portholed", *server_args(tmp_path))
    assert proc.returncode != 0
    err = proc.text("stderr")
    for word in ("--tls-cert", "--tls-key", "--dev"):
        assert word in err, f"stderr does not mention {word}:\n{err}"
    assert "portholed ready" not in proc.text()


def test_server_with_missing_certificate_file_exits_nonzero_naming_it(tmp_path, tls_files):
    missing = tmp_path / "missing.pem"
    proc = run(tmp_path, "portholed", *server_args(tmp_path),
               "--tls-cert", missing, "--tls-key", tls_files["key"])
    assert proc.returncode != 0
    err = proc.text("stderr")
    assert "missing.pem" in err, f"stderr does not name the missing file:\n{err}"
    assert "portholed ready" not in proc.text()


def test_server_help_exits_zero_and_lists_main_options(tmp_path):
    proc = run(tmp_path, "portholed", "--help")
    assert proc.returncode == 0
    out = proc.text()
    for word in ("--domain", "--http-addr", "--https-addr", "--tunnel-addr", "--tls-cert",
                 "--tls-key", "--dev", "--state-dir", "--authtokens", "--tcp-ports",
                 "--reconnect-grace", "--log"):
        assert word in out, f"portholed --help does not mention {word}:\n{out}"
