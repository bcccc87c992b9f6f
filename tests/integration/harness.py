"""Process and network helpers for porthole's integration tests.

Everything here talks to loopback only. Programs under test are started as real
processes whose stdout and stderr are read line by line in reader threads, so a
test can wait for a log line (with a deadline) instead of sleeping, and the
captured lines can be shown when the test fails. What the harness itself needs
to know of them (ports, the dev CA, URLs, the client id) it reads from their
--ready-file, not from their log, whose wording is for people.
"""

from __future__ import annotations

import functools
import itertools
import json
import os
import random
import re
import signal
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parents[2]

# The server's domain in the tests: public URLs are http://<sub>.localhost:<port>.
DOMAIN = "localhost"

# Log level of the programs under test; PORTHOLE_TEST_LOG_LEVEL=debug for more.
LOG_LEVEL = os.environ.get("PORTHOLE_TEST_LOG_LEVEL", "info")

# Every deadline below is multiplied by PORTHOLE_TEST_TIME_SCALE (default 1),
# for slower builds: the sanitized ones set it (tests/integration/CMakeLists.txt).
TIME_SCALE = float(os.environ.get("PORTHOLE_TEST_TIME_SCALE") or 1)


def scaled(seconds: float) -> float:
    """A deadline of the tests, in seconds, for this build (see TIME_SCALE)."""
    return seconds * TIME_SCALE


# Default deadlines (seconds).
STARTUP_TIMEOUT = 30.0
TUNNEL_UP_TIMEOUT = 20.0
EXIT_TIMEOUT = 15.0

_PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "ftp_proxy", "no_proxy",
               "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "FTP_PROXY", "NO_PROXY")


class WaitTimeout(AssertionError):
    """A bounded wait ran out (shown by pytest as a test failure)."""


# --------------------------------------------------------------------------
# Binaries and environment
# --------------------------------------------------------------------------

def bin_dir() -> Path:
    return Path(os.environ.get("PORTHOLE_BIN_DIR") or REPO / "build" / "bin")


# Mixed runs (make test-cross) take the server and the client from different
# builds, e.g. an ARM client against the x86-64 server.
_BIN_DIR_VARS = {"portholed": "PORTHOLE_SERVER_BIN_DIR", "porthole": "PORTHOLE_CLIENT_BIN_DIR"}


def binary(name: str) -> Path:
    own = os.environ.get(_BIN_DIR_VARS.get(name, ""))
    path = (Path(own) if own else bin_dir()) / name
    if not (path.is_file() and os.access(path, os.X_OK)):
        import pytest
        pytest.fail(f"{name} not found at {path}: build the project first, or set "
                    f"PORTHOLE_BIN_DIR to the folder holding portholed and porthole",
                    pytrace=False)
    return path


def require_program(name: str) -> Path:
    """The path of a program the tests run (a proxy, a server from Debian), looked
    up in PATH and in the sbin folders where Debian installs daemons. A missing
    program fails the test (it is not skipped): scripts/install-deps installs
    every one of them, and `make test` runs it."""
    import shutil
    search = os.pathsep.join([os.environ.get("PATH", ""), "/usr/local/sbin", "/usr/sbin",
                              "/sbin"])
    found = shutil.which(name, path=search)
    if found is None:
        import pytest
        pytest.fail(f"{name} is not installed: run scripts/install-deps (as root) to install "
                    "the programs the tests need", pytrace=False)
    return Path(found)


def clean_env(home: Path | None = None,
              overrides: dict[str, str | None] | None = None) -> dict[str, str]:
    """The environment for child processes: no proxy variables (so nothing can be
    sent to a proxy off this machine) and, if given, a private HOME. Then each of
    `overrides` is set, or removed if its value is None: a test that runs its own
    proxy on loopback sets https_proxy and removes NO_PROXY and no_proxy."""
    env = {k: v for k, v in os.environ.items() if k not in _PROXY_VARS}
    env["NO_PROXY"] = env["no_proxy"] = "*"
    if home is not None:
        home.mkdir(parents=True, exist_ok=True)
        env["HOME"] = str(home)
    for k, v in (overrides or {}).items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = v
    return env


# --------------------------------------------------------------------------
# Sanitizers (make test-asan, make test-tsan; see docs/TESTING.md)
# --------------------------------------------------------------------------

SANITIZER_OPTION_VARS = ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS", "TSAN_OPTIONS")


@functools.cache
def sanitizer() -> str | None:
    """"address" or "thread" when portholed and porthole were built with
    PORTHOLE_SANITIZE (read from the sanitizer library they load), else None."""
    p = subprocess.run(["readelf", "-d", str(binary("portholed"))], capture_output=True,
                       text=True, timeout=30)
    if "libasan.so" in p.stdout:
        return "address"
    if "libtsan.so" in p.stdout:
        return "thread"
    return None


# ELF e_machine of the programs this machine runs natively.
_HOST_MACHINE = {"x86_64": 62, "aarch64": 183, "armv7l": 40, "armv8l": 40}


@functools.cache
def emulated(name: str) -> bool:
    """True when `name` (portholed or porthole) is built for another CPU than
    this machine's and so runs under qemu-user (make test-cross)."""
    with open(binary(name), "rb") as f:
        header = f.read(20)
    host = _HOST_MACHINE.get(os.uname().machine)
    return host is not None and int.from_bytes(header[18:20], "little") != host


def sanitizer_log_options(report_dir: Path) -> dict[str, str]:
    """The sanitizers' option variables of the environment, with log_path added:
    every report of a program started with them lands in a file of
    `report_dir` (report.<pid>), whatever the program does with its stderr."""
    log_path = f"log_path={report_dir / 'report'}"
    return {var: f"{os.environ[var]}:{log_path}" if os.environ.get(var) else log_path
            for var in SANITIZER_OPTION_VARS}


# UndefinedBehaviorSanitizer, unlike the others, ignores log_path in GCC 12's
# runtime and writes to stderr: "file:line:col: runtime error: ...".
UBSAN_REPORT = re.compile(r"^\S+:\d+:\d+: runtime error: ", re.M)


def sanitizer_reports(report_dir: Path, objs: Iterable = ()) -> list[str]:
    """The reports written in `report_dir` (see sanitizer_log_options), and
    the UBSan reports in the output of `objs` (what a test started and
    stopped: each with .name and, once stopped, .final_output())."""
    reports = []
    if report_dir.is_dir():
        reports += [f"{f.name}:\n{f.read_text('utf-8', 'replace')}"
                    for f in sorted(report_dir.iterdir()) if f.is_file()]
    for obj in objs:
        text = obj.final_output() if hasattr(obj, "final_output") else ""
        if m := UBSAN_REPORT.search(text):
            reports.append(f"{obj.name}:\n{text[m.start():]}")
    return reports


# --------------------------------------------------------------------------
# Registry of what the current test started (stopped at teardown, logs shown
# on failure: see conftest.py)
# --------------------------------------------------------------------------

_registry: list = []
_registry_lock = threading.Lock()


def register(obj) -> None:
    """Registers something with .name, .log_text() and .stop()."""
    with _registry_lock:
        _registry.append(obj)


def registered() -> list:
    with _registry_lock:
        return list(_registry)


def reset_registry() -> None:
    with _registry_lock:
        _registry.clear()


def stop_all() -> list[str]:
    """Stops everything registered, newest first; returns the errors met."""
    errors = []
    for obj in reversed(registered()):
        try:
            obj.stop()
        except Exception as e:  # keep stopping the others
            errors.append(f"{obj.name}: {e!r}")
    return errors


# --------------------------------------------------------------------------
# Process wrapper
# --------------------------------------------------------------------------

@dataclass
class Line:
    t: float       # seconds since the process started
    stream: str    # "stdout" or "stderr"
    text: str


class Process:
    """A program under test. Its output lines are captured by reader threads."""

    def __init__(self, argv: Iterable, name: str | None = None,
                 env: dict[str, str] | None = None, cwd: Path | None = None):
        self.argv = [str(a) for a in argv]
        self.name = name or Path(self.argv[0]).name
        self._lines: list[Line] = []
        self._cond = threading.Condition()
        self._open_streams = 2
        self._t0 = time.monotonic()
        self.popen = subprocess.Popen(
            self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, env=env, cwd=cwd)
        self.pid = self.popen.pid
        self._readers = [
            threading.Thread(target=self._read, args=(self.popen.stdout, "stdout"),
                             name=f"{self.name}-stdout", daemon=True),
            threading.Thread(target=self._read, args=(self.popen.stderr, "stderr"),
                             name=f"{self.name}-stderr", daemon=True),
        ]
        for r in self._readers:
            r.start()
        register(self)

    # -- capture ------------------------------------------------------------

    def _read(self, pipe, stream: str) -> None:
        try:
            for raw in iter(pipe.readline, b""):
                text = raw.decode("utf-8", "replace").rstrip("\r\n")
                with self._cond:
                    self._lines.append(Line(time.monotonic() - self._t0, stream, text))
                    self._cond.notify_all()
        finally:
            with self._cond:
                self._open_streams -= 1
                self._cond.notify_all()

    def lines(self, stream: str | None = None, since: int = 0) -> list[str]:
        with self._cond:
            return [l.text for l in self._lines[since:] if stream in (None, l.stream)]

    def text(self, stream: str | None = None) -> str:
        return "\n".join(self.lines(stream))

    def final_output(self) -> str:
        """Its stderr (for sanitizer reports)."""
        return self.text("stderr")

    def mark(self) -> int:
        """A position in the captured output; pass it as since= to wait_for."""
        with self._cond:
            return len(self._lines)

    def log_text(self) -> str:
        with self._cond:
            body = "\n".join(f"{l.t:8.3f} {l.stream[3]} | {l.text}" for l in self._lines)
        rc = self.popen.poll()
        state = "running" if rc is None else f"exited with code {rc}"
        return f"$ {' '.join(self.argv)}\n({state})\n{body}\n"

    def _tail(self, n: int = 60) -> str:
        with self._cond:
            tail = self._lines[-n:]
        return "\n".join(f"  {l.stream[3]} | {l.text}" for l in tail) or "  (no output)"

    # -- waiting --------------------------------------------------------------

    def wait_for_all(self, pattern: str, count: int, timeout: float = 10.0,
                     since: int = 0, stream: str | None = None) -> list[re.Match]:
        """Waits until `count` lines after `since` match `pattern` (re.search).
        Fails at once if the process has exited and its output is all read."""
        rx = re.compile(pattern)
        timeout = scaled(timeout)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = []
                for l in self._lines[since:]:
                    if stream in (None, l.stream):
                        m = rx.search(l.text)
                        if m:
                            found.append(m)
                            if len(found) == count:
                                return found
                if self._open_streams == 0:
                    self.popen.wait()
                    raise WaitTimeout(
                        f"{self.name} exited (code {self.popen.returncode}) before printing "
                        f"{count} line(s) matching /{pattern}/ (saw {len(found)}); its output:\n"
                        f"{self._tail()}")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise WaitTimeout(
                        f"no {count} line(s) matching /{pattern}/ from {self.name} within "
                        f"{timeout:g}s (saw {len(found)}); its last output:\n{self._tail()}")
                self._cond.wait(min(remaining, 0.5))

    def wait_for(self, pattern: str, timeout: float = 10.0, since: int = 0,
                 stream: str | None = None) -> re.Match:
        return self.wait_for_all(pattern, 1, timeout, since, stream)[0]

    def wait_exit(self, timeout: float = EXIT_TIMEOUT) -> int:
        """Waits for the process to exit by itself and for its output to be read."""
        timeout = scaled(timeout)
        try:
            rc = self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            raise WaitTimeout(f"{self.name} still running after {timeout:g}s; "
                              f"its last output:\n{self._tail()}") from None
        for r in self._readers:
            r.join(5)
        return rc

    @property
    def running(self) -> bool:
        return self.popen.poll() is None

    @property
    def returncode(self) -> int | None:
        return self.popen.poll()

    # -- stopping -------------------------------------------------------------

    def kill(self) -> None:
        """SIGKILL, as in a crash."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(10)
        for r in self._readers:
            r.join(5)

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM, then SIGKILL after `grace` seconds."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(scaled(grace))
            except subprocess.TimeoutExpired:
                self.popen.send_signal(signal.SIGKILL)
                self.popen.wait(10)
        for r in self._readers:
            r.join(5)


class LogFile:
    """A log file that a program under test writes (e.g. a proxy's access log):
    read as it grows, so a test can wait for a line with a deadline."""

    def __init__(self, path: Path, name: str | None = None):
        self.path = Path(path)
        self.name = name or self.path.name
        self._saved: str | None = None

    def text(self) -> str:
        if self._saved is not None:
            return self._saved
        try:
            return self.path.read_text("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def save(self) -> None:
        """Keeps the current content, for a file about to be removed."""
        self._saved = self.text()

    def wait_for_all(self, pattern: str, count: int, timeout: float = 10.0) -> list[re.Match]:
        """Waits until `count` lines match `pattern` (re.search), polling the file."""
        rx = re.compile(pattern)
        timeout = scaled(timeout)
        deadline = time.monotonic() + timeout
        while True:
            found = [m for line in self.text().splitlines() if (m := rx.search(line))]
            if len(found) >= count:
                return found[:count]
            if time.monotonic() >= deadline:
                tail = "\n".join(f"  | {l}" for l in self.text().splitlines()[-40:])
                raise WaitTimeout(f"no {count} line(s) matching /{pattern}/ in {self.path} "
                                  f"within {timeout:g}s (saw {len(found)}):\n"
                                  f"{tail or '  (empty)'}")
            time.sleep(0.05)

    def wait_for(self, pattern: str, timeout: float = 10.0) -> re.Match:
        return self.wait_for_all(pattern, 1, timeout)[0]


# --------------------------------------------------------------------------
# portholed and porthole
# --------------------------------------------------------------------------

_ADDR = r"(?P<host>\[[^\]]*\]|[^\s\[\]]+?):(?P<port>\d+)"

_ready_files = itertools.count(1)


def ready_file_path(folder: Path, name: str) -> Path:
    """A path for the --ready-file of the program `name` in `folder`, used by
    no other program of this run (the folder is created)."""
    folder.mkdir(parents=True, exist_ok=True)
    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", name)
    return folder / f"{stem}-ready-{next(_ready_files)}.json"


def wait_ready_file(proc: Process, path: Path, want: Callable[[dict], bool] | None = None,
                    since: dict | None = None, timeout: float = STARTUP_TIMEOUT) -> dict:
    """Waits until `path`, the --ready-file of `proc`, holds a version that
    `proc` wrote (its pid), that is not `since` (an earlier version: wait for
    the next one) and that `want` accepts; returns it, parsed. Fails at once if
    the process exits first, and on a time-out, with its last output."""
    timeout = scaled(timeout)
    deadline = time.monotonic() + timeout
    seen = None
    while True:
        try:
            data = json.loads(path.read_text("utf-8"))
        except (FileNotFoundError, ValueError):
            data = None  # not written yet (each version is renamed into place whole)
        if isinstance(data, dict) and data.get("pid") == proc.pid:
            seen = data
            if data != since and (want is None or want(data)):
                return data
        last = f"its last version: {json.dumps(seen)}" if seen else "it never appeared"
        if not proc.running:
            for r in proc._readers:
                r.join(5)
            raise WaitTimeout(f"{proc.name} exited (code {proc.returncode}) before writing the "
                              f"ready file {path} waited for ({last}); its output:\n"
                              f"{proc._tail()}")
        if time.monotonic() >= deadline:
            raise WaitTimeout(f"{proc.name} did not write the ready file {path} waited for "
                              f"within {timeout:g}s ({last}); its last output:\n{proc._tail()}")
        time.sleep(0.05)


def port_of(addr: str | None) -> int | None:
    """The port of an "ip:port" of a ready file (None for null)."""
    return None if addr is None else int(addr.rsplit(":", 1)[1])


@dataclass
class Server:
    proc: Process
    state_dir: Path
    domain: str
    http_port: int
    https_port: int
    tunnel_port: int
    ca: Path
    extra_args: list[str] = field(default_factory=list)
    admin_port: int | None = None  # the admin endpoint (/metrics, /healthz)
    ready_file: Path | None = None  # its --ready-file
    ready: dict = field(default_factory=dict)  # what that file said

    @property
    def tunnel_addr(self) -> str:
        """Where its clients connect, as its ready file says."""
        return self.ready.get("tunnel_addr") or f"127.0.0.1:{self.tunnel_port}"

    @property
    def ip(self) -> str:
        """The address its listeners are bound to (a cluster node's own 127.0.0.N)."""
        return self.tunnel_addr.rsplit(":", 1)[0].strip("[]")

    def url(self, sub: str, scheme: str = "http") -> str:
        port = self.http_port if scheme == "http" else self.https_port
        return f"{scheme}://{sub}.{self.domain}:{port}"


def start_server(*extra: str, state_dir: Path, home: Path, domain: str = DOMAIN,
                 http_addr: str = "127.0.0.1:0", https_addr: str = "127.0.0.1:0",
                 tunnel_addr: str = "127.0.0.1:0", dev: bool = True,
                 authtokens: list[str] | None = None, name: str = "portholed",
                 timeout: float = STARTUP_TIMEOUT,
                 env: dict[str, str | None] | None = None) -> Server:
    """Starts portholed and waits for its ready file (beside state_dir), which
    gives its ports and its dev CA. A disabled listener's port is None; with
    one port for tunnel clients and public https, both ports are that one."""
    ready_file = ready_file_path(state_dir.parent, name)
    argv = [binary("portholed")]
    if dev:
        argv.append("--dev")
    argv += ["--domain", domain, "--state-dir", state_dir,
             "--http-addr", http_addr, "--https-addr", https_addr,
             "--tunnel-addr", tunnel_addr, "--admin-addr", "127.0.0.1:0",
             "--ready-file", ready_file, "--log", "stderr", "--log-level", LOG_LEVEL]
    if authtokens is not None:
        tokens_file = state_dir.parent / f"{name}-authtokens.txt"
        tokens_file.write_text("".join(t + "\n" for t in authtokens))
        argv += ["--authtokens", tokens_file]
    argv += list(extra)
    argv += forced_threads(extra)
    proc = Process(argv, name=name, env=clean_env(home, env))
    return server_of(proc, state_dir, ready_file, extra, timeout)


def server_of(proc: Process, state_dir: Path, ready_file: Path, extra: Iterable[str] = (),
              timeout: float = STARTUP_TIMEOUT) -> Server:
    """The Server of a portholed started with --ready-file `ready_file`, once
    that file is written."""
    ready = wait_ready_file(proc, ready_file, timeout=timeout)
    ca = Path(ready["dev_ca"]) if ready["dev_ca"] else state_dir / "ca.pem"
    return Server(proc, state_dir, ready["domain"], port_of(ready["http_addr"]),
                  port_of(ready["https_addr"]), port_of(ready["tunnel_addr"]), ca, list(extra),
                  port_of(ready["admin_addr"]), ready_file, ready)


# porthole's log line for each public URL it got (for tests of what the log
# says; the harness reads the URLs from the client's ready file).
TUNNEL_UP = r"Forwarding (?P<url>\S+) -> (?P<local>\S+)"

# The client's line once the server accepted it, e.g. "connected to server
# 127.0.0.1:4443 as client <id> (porthole 0.1.0, multiplexed)"; "how" is
# "porthole X" (base protocol), "porthole X, multiplexed" or "ngrok 1.x protocol".
CONNECTED = r"connected to server (?P<server>\S+) as client (?P<id>[0-9a-fA-F]+) \((?P<how>[^)]*)\)"

# How public connections travel between portholed and porthole:
#  - "mux": porthole's negotiated extension (the default): one multiplexed TLS
#    connection per client, a stream per public connection;
#  - "pool": the ngrok 1.x base protocol, forced with `porthole --no-mux`: a
#    pooled TLS proxy connection per public connection.
# The client's ready file says which one it uses ("transport").
TRANSPORTS = ("mux", "pool")


def server_mux_up_line(client_id: str) -> str:
    """The pattern of portholed's line once a client's multiplexed connection is
    up (nothing machine-readable says so: the client's ready file may come first)."""
    return rf"multiplexed connection up client={re.escape(client_id)}"


def urls_of(ready: dict) -> list[str]:
    """The public URLs of a client's ready file, in its order."""
    return [t["url"] for t in ready["tunnels"]]


@dataclass
class Client:
    proc: Process
    urls: list[str]
    locals: list[str]
    ready_file: Path | None = None  # its --ready-file
    ready: dict | None = None  # the newest version of that file seen (see wait_tunnels)

    def url(self, scheme: str = "http") -> str:
        for u in self.urls:
            if u.startswith(scheme + "://"):
                return u
        raise AssertionError(f"no {scheme} URL among {self.urls}")

    def wait_tunnels(self, want: int | Callable[[dict], bool] | None = None,
                     since: dict | None = None, timeout: float = TUNNEL_UP_TIMEOUT) -> dict:
        """Waits for a version of the client's ready file that is not `since`
        and whose tunnels `want` accepts: their number, or a predicate taking
        the whole file (a dict; see urls_of); returns it, and keeps it as
        `ready`. The client writes the file when its tunnels settle, again
        after each reconnect even with the same URLs ("connection" counts up):
        since=<the version before> waits for the next one. `urls` and `locals`
        stay those of the start."""
        if isinstance(want, int):
            count = want
            want = lambda ready: len(ready["tunnels"]) == count  # noqa: E731
        assert self.ready_file is not None, f"{self.proc.name} was started without a ready file"
        self.ready = wait_ready_file(self.proc, self.ready_file, want, since, timeout)
        return self.ready

    def connected(self, timeout: float = TUNNEL_UP_TIMEOUT) -> re.Match:
        """The client's `connected to server ...` log line (waited for), for
        tests of what the log says; the harness reads the ready file."""
        return self.proc.wait_for(CONNECTED, timeout)

    @property
    def client_id(self) -> str:
        return (self.ready or self.wait_tunnels())["client_id"]

    @property
    def transport(self) -> str:
        """"mux", "pool" or "ngrok", as the client's ready file says."""
        return (self.ready or self.wait_tunnels())["transport"]


def transport_args(transport: str | None) -> list[str]:
    """Client flags for a transport (None: the programs' defaults)."""
    assert transport in (None, *TRANSPORTS), transport
    return ["--no-mux"] if transport == "pool" else []


def await_transport(client: Client, transport: str | None, server: Server | None,
                    timeout: float = TUNNEL_UP_TIMEOUT) -> None:
    """Makes sure a started client carries public connections the way `transport`
    says, so a test parametrized on it tests what its name says:
     - "mux": the client's ready file says mux and, when its server is known,
       the server has logged the multiplexed connection up (before that the
       server would fall back to asking for proxy connections);
     - "pool": the client's ready file does not say mux."""
    if transport is None:
        return
    said = client.transport
    if transport == "mux":
        assert said == "mux", f"transport mux, but the client's ready file says {said!r}"
        if server is not None:
            server.proc.wait_for(server_mux_up_line(client.client_id), timeout)
    else:
        assert said != "mux", "transport pool (--no-mux), but the client's ready file says mux"


def expected_up_lines(mode: str, args: Iterable[str]) -> int:
    if mode == "tcp":
        return 1
    args = list(args)
    proto = "http+https"
    for i, a in enumerate(args):
        if a == "--proto" and i + 1 < len(args):
            proto = args[i + 1]
        elif a.startswith("--proto="):
            proto = a.split("=", 1)[1]
    return len(proto.split("+"))


def start_client(mode: str, target: str | int, *args: str, server_addr: str, trust_ca: Path | None,
                 home: Path, authtoken: str | None = None, wait_up: bool = True,
                 name: str = "porthole", timeout: float = TUNNEL_UP_TIMEOUT,
                 env: dict[str, str | None] | None = None,
                 prefix: Iterable[str] = ()) -> Client:
    """Starts `porthole <mode> <target> <args>` with a ready file (beside
    `home`) and, if wait_up, waits for it to list every public URL asked for
    and returns them. `env` overrides the clean environment (see clean_env;
    None removes a variable). `prefix` goes before the program (e.g. `ip netns
    exec NS`: it execs it, so the process keeps its pid, which the ready file
    names)."""
    ready_file = ready_file_path(home.parent, name)
    argv = [*prefix, binary("porthole"), "--server-addr", server_addr, "--log", "stderr",
            "--log-level", LOG_LEVEL, "--ready-file", ready_file]
    if trust_ca is not None:
        argv += ["--trust-ca", trust_ca]
    if authtoken is not None:
        argv += ["--authtoken", authtoken]
    if "--inspect-addr=default" in args:
        # The test wants the program's own default address: pass no flag.
        args = tuple(a for a in args if a != "--inspect-addr=default")
    elif not any(a == "--inspect-addr" or a.startswith("--inspect-addr=") for a in args):
        # Many clients run at once: none takes the default 127.0.0.1:4040.
        argv += ["--inspect-addr", "disabled"]
    argv += forced_threads(args)
    argv += [mode, str(target), *args]
    proc = Process(argv, name=name, env=clean_env(home, env))
    client = Client(proc, [], [], ready_file)
    if not wait_up:
        return client
    ready = client.wait_tunnels(expected_up_lines(mode, args), timeout=timeout)
    client.urls = urls_of(ready)
    client.locals = [t["local"] for t in ready["tunnels"]]
    return client


# --------------------------------------------------------------------------
# Ports
# --------------------------------------------------------------------------

def os_port(host: str = "127.0.0.1") -> int:
    """A port the OS says is free now (bound to port 0 and released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def splice(src: socket.socket, dst: socket.socket) -> None:
    """Copies src to dst until src ends, then shuts both down (for the
    forwarders and proxies that tests put in the client's path)."""
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    for s in (src, dst):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def os_port_range(n: int, attempts: int = 1000) -> int:
    """The first of n consecutive ports that are all free now; the first one is
    chosen by the OS."""
    for _ in range(attempts):
        socks = []
        try:
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
            low = s.getsockname()[1]
            if low + n - 1 > 65535:
                continue
            for p in range(low + 1, low + n):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", p))
            return low
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError(f"found no {n} consecutive free ports")


def dead_port() -> socket.socket:
    """A socket bound to a loopback port but not listening: connections to that
    port are refused, and no one else can take it while the socket is open."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    return s


# --------------------------------------------------------------------------
# Deterministic data
# --------------------------------------------------------------------------

_data_cache: dict[tuple[int, int], bytes] = {}


def deterministic_bytes(n: int, seed: int = 0) -> bytes:
    key = (n, seed)
    if key not in _data_cache:
        _data_cache[key] = random.Random(f"porthole-{seed}").randbytes(n)
    return _data_cache[key]


# --------------------------------------------------------------------------
# curl
# --------------------------------------------------------------------------

@dataclass
class CurlResult:
    returncode: int
    status: int
    headers: dict[str, list[str]]   # lower-cased names, of the last response
    body: bytes
    stderr: str
    version: str = ""  # of the last response: "1.1", "2", ...

    def header(self, name: str) -> str | None:
        v = self.headers.get(name.lower())
        return v[-1] if v else None


def curl(url: str, *args: str, cacert: Path | None = None, timeout: float = 60.0,
         resolve_to: str = "127.0.0.1") -> CurlResult:
    """Runs curl against url, pinning its host to loopback with --resolve."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    with tempfile.TemporaryDirectory(prefix="curl-") as d:
        body_file = Path(d) / "body"
        head_file = Path(d) / "head"
        argv = ["curl", "-q", "-sS", "--noproxy", "*", "--max-time", str(timeout),
                "--resolve", f"{parts.hostname}:{port}:{resolve_to}",
                "-o", body_file, "-D", head_file, "-w", "%{http_code}"]
        if cacert is not None:
            argv += ["--cacert", cacert]
        argv += [*args, url]
        p = subprocess.run([str(a) for a in argv], capture_output=True,
                           env=clean_env(Path(d) / "home"), timeout=timeout + 15)
        body = body_file.read_bytes() if body_file.exists() else b""
        head = head_file.read_text("latin-1") if head_file.exists() else ""
    headers: dict[str, list[str]] = {}
    version = ""
    # -D holds every response (100 Continue, ...): keep the last one's headers.
    blocks = [b for b in re.split(r"\r?\n\r?\n", head) if b.strip()]
    if blocks:
        version = blocks[-1].split(" ", 1)[0].removeprefix("HTTP/")
        for line in blocks[-1].splitlines()[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                headers.setdefault(k.strip().lower(), []).append(v.strip())
    try:
        status = int(p.stdout.decode().strip() or 0)
    except ValueError:
        status = 0
    return CurlResult(p.returncode, status, headers, body, p.stderr.decode("utf-8", "replace"),
                      version)


# --------------------------------------------------------------------------
# A raw HTTP/1.1 client on one connection
# --------------------------------------------------------------------------

@dataclass
class Response:
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        for k, v in reversed(self.headers):
            if k.lower() == name.lower():
                return v
        return None


class RawHTTP:
    """One TCP connection to 127.0.0.1:port; requests are written as given and
    responses read strictly, so a test sees whether the connection is kept."""

    def __init__(self, port: int, host: str = "127.0.0.1", timeout: float = 30.0,
                 sock: socket.socket | None = None):
        self.sock = sock or socket.create_connection((host, port), timeout=timeout)
        self.sock.settimeout(timeout)
        self.buf = b""
        self.local_addr = self.sock.getsockname()

    def close(self) -> None:
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def request(self, method: str, path: str, headers: list[tuple[str, str]] | dict,
                body: bytes = b"") -> Response:
        if isinstance(headers, dict):
            headers = list(headers.items())
        head = f"{method} {path} HTTP/1.1\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers)
        if body or method in ("POST", "PUT"):
            head += f"Content-Length: {len(body)}\r\n"
        head += "\r\n"
        self.send(head.encode("latin-1") + body)
        return self.read_response(method)

    def _fill(self) -> bool:
        data = self.sock.recv(65536)
        if not data:
            return False
        self.buf += data
        return True

    def _read_line(self) -> bytes:
        while b"\r\n" not in self.buf:
            if not self._fill():
                raise ConnectionError(f"connection closed by the server "
                                      f"(unread: {self.buf[:200]!r})")
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _read_exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            if not self._fill():
                raise ConnectionError(f"connection closed with {n - len(self.buf)} "
                                      "body bytes missing")
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def read_response(self, method: str = "GET") -> Response:
        while True:
            status_line = self._read_line().decode("latin-1")
            m = re.match(r"HTTP/1\.[01] (\d{3}) ?(.*)", status_line)
            if not m:
                raise AssertionError(f"not an HTTP status line: {status_line!r}")
            status, reason = int(m[1]), m[2]
            headers = []
            while True:
                line = self._read_line().decode("latin-1")
                if not line:
                    break
                k, _, v = line.partition(":")
                headers.append((k.strip(), v.strip()))
            if 100 <= status < 200 and status != 101:
                continue  # interim response
            break
        resp = Response(status, reason, headers, b"")
        te = (resp.header("Transfer-Encoding") or "").lower()
        cl = resp.header("Content-Length")
        if method == "HEAD" or status in (204, 304) or status == 101:
            return resp
        if "chunked" in te:
            chunks = []
            while True:
                size = int(self._read_line().split(b";")[0].strip(), 16)
                if size == 0:
                    while self._read_line():
                        pass
                    break
                chunks.append(self._read_exact(size))
                self._read_line()
            resp.body = b"".join(chunks)
        elif cl is not None:
            resp.body = self._read_exact(int(cl))
        else:
            while self._fill():
                pass
            resp.body, self.buf = self.buf, b""
        return resp

    def closed_by_peer(self, timeout: float) -> bool:
        """True if the server closes the connection within timeout."""
        return wait_closed(self.sock, timeout)


def wait_closed(sock: socket.socket, timeout: float, max_bytes: int = 1 << 20) -> bool:
    """Reads and discards until the peer closes (True) or timeout (False)."""
    import ssl
    deadline = time.monotonic() + timeout
    got = 0
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        sock.settimeout(remaining)
        try:
            data = sock.recv(65536)
        except TimeoutError:
            return False
        except (ConnectionError, ssl.SSLError):
            return True  # reset, or TLS stream cut without close_notify
        if not data:
            return True
        got += len(data)
        if got > max_bytes:
            return False


def basic_auth(user: str, password: str) -> str:
    import base64
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


# --------------------------------------------------------------------------
# TLS files made with the openssl CLI
# --------------------------------------------------------------------------

def make_tls_files(d: Path, extra_names: str = "") -> dict[str, Path]:
    """A CA and a server certificate for localhost and 127.0.0.1 (and
    extra_names, e.g. ",IP:10.0.0.1"), made with openssl into d:
    {"ca": ca.pem, "cert": server.pem, "key": server.key}."""
    d.mkdir(parents=True, exist_ok=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    (d / "server.ext").write_text(
        f"subjectAltName=DNS:localhost,IP:127.0.0.1{extra_names}\n"
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature\n"
        "extendedKeyUsage=serverAuth\n"
        "subjectKeyIdentifier=hash\n"
        "authorityKeyIdentifier=keyid,issuer\n")
    cmds = [
        ["openssl", "req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
         "-subj", "/CN=scripted ngrokd test CA",
         "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
        ["openssl", "req", *ec, "-keyout", "server.key", "-out", "server.csr",
         "-subj", "/CN=localhost"],
        ["openssl", "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
         "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "server.ext"],
    ]
    for cmd in cmds:
        p = subprocess.run(cmd, cwd=d, capture_output=True, text=True, timeout=30,
                           env=clean_env(d / "home"))
        assert p.returncode == 0, f"{' '.join(cmd)}:\n{p.stderr}"
    return {"ca": d / "ca.pem", "cert": d / "server.pem", "key": d / "server.key"}


def busy_threads(pid: int, at_least_ms: float = 2.0) -> int:
    """How many of a process's threads have run at least `at_least_ms` of CPU
    time (/proc/PID/task/TID/schedstat: nanoseconds, unlike stat's ticks)."""
    busy = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/schedstat") as f:
            ran_ns = int(f.read().split()[0])
        busy += ran_ns >= at_least_ms * 1e6
    return busy


def forced_threads(args) -> list[str]:
    """`--threads N` when PORTHOLE_TEST_THREADS=N asks every program started
    here to run N threads (both programs default to one per core), unless
    the test chose itself."""
    n = os.environ.get("PORTHOLE_TEST_THREADS")
    if not n or any(str(a) == "--threads" or str(a).startswith("--threads=") for a in args):
        return []
    return ["--threads", n]
