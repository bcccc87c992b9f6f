"""Tools of the fault tests (test_faults.py): what a process holds, as /proc
says, and public clients that download through a tunnel slowly, or hold a
download half-way, and say how it ended."""

from __future__ import annotations

import hashlib
import socket
import threading
import time
from dataclasses import dataclass

import harness
from harness import curl

# Under a sanitizer, freed memory waits in its quarantine (256 MiB by
# AddressSanitizer's default) and shadow memory grows with use: resident
# memory then says nothing about what porthole buffers, so the memory
# assertions apply to the plain build only (descriptor counts apply always).
MEMORY_IS_MEANINGFUL = harness.sanitizer() is None


@dataclass
class Usage:
    fds: int
    rss_kib: int

    def __str__(self) -> str:
        return f"{self.fds} fds, {self.rss_kib / 1024:.1f} MiB RSS"


def usage(pid: int) -> Usage:
    """Open file descriptors (/proc/<pid>/fd) and resident memory (VmRSS)."""
    import os
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    rss = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    return Usage(fds, rss)


def wait_fds(pid: int, want: int, timeout: float = 20.0) -> Usage:
    """Waits until the process holds at most `want` descriptors (connections
    are closed asynchronously); returns its usage then, or at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        u = usage(pid)
        if u.fds <= want or time.monotonic() >= deadline:
            return u
        time.sleep(0.1)


class RSSSampler:
    """Samples the resident memory of some processes every `every` seconds."""

    def __init__(self, pids: dict[str, int], every: float = 0.25):
        self.pids = pids
        self.samples: dict[str, list[int]] = {name: [] for name in pids}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(every,), daemon=True)
        self._thread.start()

    def _run(self, every: float) -> None:
        while not self._stop.wait(every):
            for name, pid in self.pids.items():
                try:
                    self.samples[name].append(usage(pid).rss_kib)
                except OSError:
                    pass

    def stop(self) -> dict[str, list[int]]:
        self._stop.set()
        self._thread.join(5)
        return self.samples


class Download(threading.Thread):
    """GET <path> from the public HTTP port with Host <host>, on its own
    connection. The body is read at `rate` bytes/s (None: as fast as it
    comes); with `hold`, only the first bytes are read, then nothing until
    hold is set. Afterwards:
      outcome: "complete" (the whole Content-Length), "closed" (EOF before
      it), "reset", "timeout" (nothing for `timeout` seconds), or
      "status <n>" for a response other than 200 (its body read);
      got: body bytes read; sha256: of the body read; head_at, done_at."""

    def __init__(self, port: int, host: str, path: str, rate: float | None = None,
                 hold: threading.Event | None = None, timeout: float = 60.0,
                 rcvbuf: int | None = None):
        super().__init__(daemon=True)
        self.port, self.host, self.path = port, host, path
        self.rate, self.hold, self.timeout, self.rcvbuf = rate, hold, timeout, rcvbuf
        self.started_body = threading.Event()
        self.outcome = "not started"
        self.status = 0
        self.length: int | None = None
        self.got = 0
        self.sha256 = ""
        self.error = ""
        self.start()

    def run(self) -> None:
        h = hashlib.sha256()
        try:
            s = socket.socket()
            if self.rcvbuf:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf)
            s.settimeout(self.timeout)
            s.connect(("127.0.0.1", self.port))
            with s:
                s.sendall(f"GET {self.path} HTTP/1.1\r\nHost: {self.host}\r\n"
                          f"Connection: close\r\n\r\n".encode())
                buf = b""
                while b"\r\n\r\n" not in buf:
                    data = s.recv(65536)
                    if not data:
                        self.outcome = "closed before a response"
                        return
                    buf += data
                head, body = buf.split(b"\r\n\r\n", 1)
                lines = head.decode("latin-1").split("\r\n")
                self.status = int(lines[0].split()[1])
                for line in lines[1:]:
                    k, _, v = line.partition(":")
                    if k.strip().lower() == "content-length":
                        self.length = int(v)
                t0 = time.monotonic()
                self.got = len(body)
                h.update(body)
                self.started_body.set()
                if self.hold is not None:
                    self.hold.wait(self.timeout)
                while self.length is None or self.got < self.length:
                    if self.rate:
                        ahead = self.got / self.rate - (time.monotonic() - t0)
                        if ahead > 0:
                            time.sleep(ahead)
                    data = s.recv(65536)
                    if not data:
                        break
                    self.got += len(data)
                    h.update(data)
        except TimeoutError:
            self.outcome = "timeout"
            return
        except ConnectionResetError:
            self.outcome = "reset"
            return
        except OSError as e:
            self.outcome = "error"
            self.error = repr(e)
            return
        finally:
            self.sha256 = h.hexdigest()
            self.started_body.set()
        if self.status != 200:
            self.outcome = f"status {self.status}"
        elif self.length is not None and self.got == self.length:
            self.outcome = "complete"
        else:
            self.outcome = "closed"


def report(what: str, **figures) -> None:
    """Prints a test's figures (shown with pytest -s, and kept in the log)."""
    print(f"\n[faults] {what}: " + ", ".join(f"{k}={v}" for k, v in figures.items()))


def assert_hello(url: str) -> None:
    r = curl(f"{url}/hello")
    assert (r.returncode, r.status, r.body) == (0, 200, b"hello"), (url, r.status, r.stderr)
