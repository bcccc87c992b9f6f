"""Processes the suite starts, and stops again whatever happens.

Every program (servers and load generators alike) is started through a
Supervisor: in its own session (so a Ctrl-C at the terminal reaches only the
suite, which then stops everything in order), with PR_SET_PDEATHSIG so that it
is killed even if the suite itself is killed hard, and with its output in a log
file of the run's temporary directory. stop_all() stops them newest first,
each by its own PID: SIGTERM, then SIGKILL after a grace period.

No threads are used anywhere in the suite, so preexec_fn is safe.
"""

from __future__ import annotations

import ctypes
import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

_PR_SET_PDEATHSIG = 1
try:
    _libc = ctypes.CDLL(None, use_errno=True)
except OSError:  # pragma: no cover
    _libc = None


def _child_setup() -> None:
    if _libc is not None:
        _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


class StartError(RuntimeError):
    pass


def free_port() -> int:
    """A free loopback TCP port: bind port 0 and ask the kernel which it gave."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 10.0, proc: "Proc | None" = None) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            pass
        if proc is not None and proc.poll() is not None:
            raise StartError(f"{proc.name} exited with code {proc.poll()} before "
                             f"listening on {port}:\n{proc.tail()}")
        if time.monotonic() > deadline:
            raise StartError(f"nothing listening on 127.0.0.1:{port} after {timeout:.0f} s"
                             + (f"; {proc.name} log:\n{proc.tail()}" if proc else ""))
        time.sleep(0.05)


def listening(port: int) -> bool:
    """Whether something listens on 127.0.0.1:port (from /proc/net/tcp: no
    connection is made, so nothing is forwarded to an origin by a proxy)."""
    want = f"0100007F:{port:04X}"
    try:
        with open("/proc/net/tcp") as f:
            next(f)
            for line in f:
                parts = line.split()
                if parts[1] == want and parts[3] == "0A":
                    return True
    except (OSError, StopIteration, IndexError):
        pass
    return False


def wait_listening(port: int, timeout: float = 10.0, proc: "Proc | None" = None) -> None:
    deadline = time.monotonic() + timeout
    while not listening(port):
        if proc is not None and proc.poll() is not None:
            raise StartError(f"{proc.name} exited with code {proc.poll()} before "
                             f"listening on {port}:\n{proc.tail()}")
        if time.monotonic() > deadline:
            raise StartError(f"nothing listening on 127.0.0.1:{port} after {timeout:.0f} s"
                             + (f"; {proc.name} log:\n{proc.tail()}" if proc else ""))
        time.sleep(0.05)


def _status_kib(pid: int, key: str) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def rss_kib(pid: int) -> int | None:
    """Resident memory of a process (VmRSS), KiB; None if it is gone."""
    return _status_kib(pid, "VmRSS")


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time a process has used so far, seconds."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / ticks
    except (OSError, ValueError, IndexError):
        return None


def open_fds(pid: int) -> int | None:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


class Proc:
    def __init__(self, name: str, argv: list, log_path: Path, env=None, cwd=None):
        self.name = name
        self.argv = [str(a) for a in argv]
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.popen = subprocess.Popen(
            self.argv, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
            env=env, cwd=cwd, start_new_session=True, preexec_fn=_child_setup)
        self.pid = self.popen.pid

    def poll(self):
        return self.popen.poll()

    def text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def tail(self, n: int = 30) -> str:
        lines = self.text().splitlines()[-n:]
        return "\n".join("    | " + l for l in lines) or "    | (no output)"

    def wait_for(self, pattern: str, timeout: float = 15.0) -> re.Match:
        """Waits until the process's log has a line matching `pattern`."""
        rx = re.compile(pattern, re.M)
        deadline = time.monotonic() + timeout
        while True:
            m = rx.search(self.text())
            if m:
                return m
            if self.poll() is not None:
                raise StartError(f"{self.name} exited with code {self.poll()} while the "
                                 f"suite waited for /{pattern}/:\n{self.tail()}")
            if time.monotonic() > deadline:
                raise StartError(f"{self.name}: no line matching /{pattern}/ after "
                                 f"{timeout:.0f} s:\n{self.tail()}")
            time.sleep(0.05)

    def rss_kib(self):
        return rss_kib(self.pid)

    def cpu_seconds(self):
        return cpu_seconds(self.pid)

    def stop(self, grace: float = 5.0) -> None:
        if self.popen.poll() is None:
            try:
                os.kill(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                try:
                    os.kill(self.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.popen.wait(5)
        self._log.close()


class Supervisor:
    """Starts processes and remembers them; stop_all() stops every one."""

    def __init__(self, logdir: Path, env: dict | None = None):
        self.logdir = logdir
        self.env = env
        self.procs: list[Proc] = []
        self._count = 0

    #: `--threads N` for every portholed and porthole started (bench/run
    #: --threads N), unless the workload chose itself; None: their default.
    threads: int | None = None

    def start(self, name: str, argv: list, cwd=None) -> Proc:
        if (self.threads is not None and Path(str(argv[0])).name in ("portholed", "porthole")
                and "--threads" not in [str(a) for a in argv]):
            argv = [argv[0], "--threads", str(self.threads), *argv[1:]]
        self._count += 1
        log = self.logdir / f"{self._count:03d}-{name}.log"
        p = Proc(name, argv, log, env=self.env, cwd=cwd)
        self.procs.append(p)
        return p

    def stop(self, proc: Proc) -> None:
        proc.stop()
        if proc in self.procs:
            self.procs.remove(proc)

    def stop_many(self, procs: list[Proc], grace: float = 5.0) -> None:
        """SIGTERM to all first, then waits: quicker than one by one."""
        for p in procs:
            if p.poll() is None:
                try:
                    os.kill(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for p in procs:
            self.stop(p)

    def run(self, name: str, argv: list, timeout: float) -> tuple[int | None, str]:
        """Runs a program to completion (a load generator); returns (exit code or
        None on timeout, its output). Killed at the timeout."""
        p = self.start(name, argv)
        try:
            rc = p.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            rc = None
        self.stop(p)
        return rc, p.text()

    def stop_all(self) -> list[str]:
        """Newest first, one after the other (so that clients go before their
        server and log no lost connection)."""
        errors = []
        for p in list(reversed(self.procs)):
            try:
                self.stop(p)
            except Exception as e:  # keep stopping the others
                errors.append(f"{p.name} (pid {p.pid}): {e!r}")
        return errors
