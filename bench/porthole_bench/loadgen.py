"""Load generators: wrk (parsed from its --latency text output), curl, iperf3,
and two asyncio clients written here: the burst client (N connections at
once, one request each, time to first byte) and the scale client (N idle
connections held open, then one request on each)."""

from __future__ import annotations

import asyncio
import errno
import json
import math
import re
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

from .procs import Supervisor

# --------------------------------------------------------------------------
# wrk
# --------------------------------------------------------------------------

_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def _seconds(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text.strip())
    if not m:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse_wrk(out: str) -> dict:
    """Requests/s, latency percentiles (ms), errors, from `wrk --latency` output."""
    r: dict = {}
    m = re.search(r"^Requests/sec:\s+([\d.]+)", out, re.M)
    if not m:
        raise ValueError("no Requests/sec line in wrk output:\n" + out)
    r["rps"] = float(m.group(1))
    for pct in ("50", "75", "90", "99"):
        m = re.search(rf"^\s+{pct}%\s+(\S+)", out, re.M)
        if m:
            r[f"p{pct}_ms"] = _seconds(m.group(1)) * 1e3
    m = re.search(r"^\s+(\d+) requests in ([\d.]+\w+), ([\d.]+\w+) read", out, re.M)
    if m:
        r["requests"] = int(m.group(1))
        r["duration_s"] = _seconds(m.group(2))
    errors = {}
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        errors.update({k: int(v) for k, v in zip(("connect", "read", "write", "timeout"),
                                                   m.groups()) if int(v)})
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        errors["non_2xx_3xx"] = int(m.group(1))
    r["errors"] = errors
    return r


CLOSE_LUA = 'wrk.headers["Connection"] = "close"\n'


def _wrk_argv(url: str, host: str | None, duration: float, conns: int,
              script: Path | None) -> list:
    argv = ["wrk", "-t1", f"-c{conns}", f"-d{max(1, round(duration))}s", "--latency", "--timeout", "10s"]
    if host:
        argv += ["-H", f"Host: {host}"]
    if script:
        argv += ["-s", script]
    argv.append(url)
    return argv


# For wrk -s: connect to 127.0.0.1 whatever the URL's host. wrk takes the TLS
# SNI name and the Host header from the URL's host, and resolves it first; a
# tunnel's name (sub.localhost) does not resolve here (glibc, files + dns).
LOOPBACK_LUA = """\
function wrk.resolve(host, service)
  wrk.addrs = wrk.lookup("127.0.0.1", service)
end
"""


def wrk_many(sup: Supervisor, urls: list[str], duration: float, conns: int,
             script: Path | None = None) -> list[dict]:
    """One wrk -t1 -c<conns> --latency per URL, all at once (no Host header
    option: each takes its URL's host); their results in the order of
    `urls`."""
    procs = [sup.start("wrk", _wrk_argv(u, None, duration, conns, script)) for u in urls]
    deadline = time.monotonic() + duration + 30
    while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
        time.sleep(0.05)
    rcs = [p.poll() for p in procs]
    for p in procs:
        sup.stop(p)
    out = []
    for p, rc in zip(procs, rcs):
        if rc != 0:
            raise RuntimeError(f"wrk exited with {rc}:\n{p.text()}")
        out.append(parse_wrk(p.text()))
    return out


def wrk(sup: Supervisor, url: str, host: str | None, duration: float, conns: int = 32,
        script: Path | None = None, sample=None) -> dict:
    """Runs wrk -t1 -c<conns> --latency; `sample()` is called every 0.25 s while
    it runs (to watch the memory of the processes under test)."""
    p = sup.start("wrk", _wrk_argv(url, host, duration, conns, script))
    deadline = time.monotonic() + duration + 30
    while p.poll() is None and time.monotonic() < deadline:
        if sample:
            sample()
        time.sleep(0.25)
    rc = p.poll()
    sup.stop(p)
    out = p.text()
    if rc != 0:
        raise RuntimeError(f"wrk exited with {rc}:\n{out}")
    return parse_wrk(out)


# --------------------------------------------------------------------------
# curl and iperf3
# --------------------------------------------------------------------------

def curl_download(sup: Supervisor, url: str, host: str | None, expect_size: int,
                  timeout: float = 45) -> dict:
    argv = ["curl", "-sS", "-o", "/dev/null", "--max-time", str(int(timeout)),
            "-w", "%{http_code} %{size_download} %{time_total}\n"]
    if host:
        argv += ["-H", f"Host: {host}"]
    argv.append(url)
    rc, out = sup.run("curl", argv, timeout + 10)
    m = re.search(r"Operation timed out after (\d+) milliseconds with (\d+) out of (\d+) bytes", out)
    if m:
        return {"ok": False, "error": f"stalled: {int(m.group(2)):,} of {int(m.group(3)):,} bytes "
                                      f"received in {int(m.group(1)) / 1000:.0f} s (curl --max-time)"}
    m = re.search(r"^(\d{3}) (\d+) ([\d.]+)$", out, re.M)
    if rc != 0 or not m:
        return {"ok": False, "error": f"curl exit {rc}: {out.strip()[-300:]}"}
    code, size, secs = int(m.group(1)), int(m.group(2)), float(m.group(3))
    res = {"http_code": code, "bytes": size, "seconds": secs, "MBps": size / secs / 1e6}
    res["ok"] = code == 200 and size == expect_size
    if not res["ok"]:
        res["error"] = f"HTTP {code}, {size} of {expect_size} bytes"
    return res


def iperf3_client(sup: Supervisor, port: int, seconds: int) -> dict:
    argv = ["iperf3", "-c", "127.0.0.1", "-p", str(port), "-t", str(seconds), "-J"]
    rc, out = sup.run("iperf3-client", argv, seconds + 25)
    if rc is None:
        return {"ok": False, "error": f"no result: iperf3 -t {seconds} still running after "
                                      f"{seconds + 25} s, killed"}
    try:
        j = json.loads(out[out.index("{"):])
    except ValueError:
        return {"ok": False, "error": f"iperf3 exit {rc}: {out.strip()[-300:]}"}
    if j.get("error"):
        return {"ok": False, "error": j["error"]}
    try:
        recv = j["end"]["sum_received"]
        sent = j["end"]["sum_sent"]
    except KeyError:
        return {"ok": False, "error": f"iperf3 exit {rc}: no summary"}
    return {"ok": True, "Gbps": recv["bits_per_second"] / 1e9,
            "bytes": recv["bytes"], "seconds": recv["seconds"],
            "retransmits": sent.get("retransmits")}


# --------------------------------------------------------------------------
# The raw HTTP clients
# --------------------------------------------------------------------------

def _request(host: str, path: str, close: bool) -> bytes:
    conn = "close" if close else "keep-alive"
    return (f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: porthole-bench\r\n"
            f"Connection: {conn}\r\n\r\n").encode()


def _err_kind(e: BaseException) -> str:
    if isinstance(e, (asyncio.TimeoutError, TimeoutError)):
        return "timeout"
    if isinstance(e, OSError) and e.errno:
        return errno.errorcode.get(e.errno, str(e.errno))
    return type(e).__name__


class _Response:
    """Reads one HTTP/1.1 response with a Content-Length (what nginx and
    portholed send here)."""

    def __init__(self):
        self.buf = b""
        self.status = None
        self.length = None
        self.head_len = None

    def feed(self, data: bytes) -> bool:
        """True when the response is complete."""
        self.buf += data
        if self.head_len is None:
            i = self.buf.find(b"\r\n\r\n")
            if i < 0:
                return False
            self.head_len = i + 4
            head = self.buf[:i].decode("latin-1")
            try:
                self.status = int(head.split(" ", 2)[1])
            except (IndexError, ValueError):
                self.status = -1
            m = re.search(r"^content-length:\s*(\d+)", head, re.I | re.M)
            self.length = int(m.group(1)) if m else None
            if self.length is None:
                return False  # read to EOF
        return len(self.buf) - self.head_len >= self.length

    @property
    def body_len(self) -> int:
        return 0 if self.head_len is None else len(self.buf) - self.head_len


def _pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    v = sorted(values)
    k = min(len(v) - 1, max(0, math.ceil(p / 100 * len(v)) - 1))  # nearest rank
    return v[k]


async def _burst_one(port: int, req: bytes, expect_len: int, timeout: float, go: asyncio.Event):
    loop = asyncio.get_running_loop()
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setblocking(False)
    await go.wait()
    t0 = time.perf_counter()
    ttfb = None
    stage = "connect"
    try:
        async with asyncio.timeout(timeout):
            await loop.sock_connect(s, ("127.0.0.1", port))
            stage = "send"
            await loop.sock_sendall(s, req)
            stage = "response"
            resp = _Response()
            while True:
                data = await loop.sock_recv(s, 65536)
                if ttfb is None and data:
                    ttfb = time.perf_counter() - t0
                if not data:
                    break
                if resp.feed(data):
                    break
        if resp.status == 200 and resp.body_len == expect_len:
            return True, ttfb, None
        if resp.status is None:
            return False, ttfb, "response: closed before a response"
        if resp.status != 200:
            return False, ttfb, f"response: HTTP {resp.status}"
        return False, ttfb, "response: short body"
    except Exception as e:  # noqa: BLE001 -- every failure is counted by kind
        return False, ttfb, f"{stage}: {_err_kind(e)}"
    finally:
        s.close()


async def burst(port: int, host: str, path: str, n: int, expect_len: int,
                timeout: float = 20.0) -> dict:
    """n connections opened at once (all tasks are ready, then released
    together), one request each with Connection: close. TTFB is measured per
    connection from the start of its connect to the first response byte."""
    req = _request(host, path, close=True)
    go = asyncio.Event()
    tasks = [asyncio.create_task(_burst_one(port, req, expect_len, timeout, go))
             for _ in range(n)]
    await asyncio.sleep(0.05)  # every task is now waiting on `go`
    t0 = time.perf_counter()
    go.set()
    results = await asyncio.gather(*tasks)
    wall = time.perf_counter() - t0
    ttfbs = [t for ok, t, _ in results if ok]
    fails: dict[str, int] = {}
    for ok, _, kind in results:
        if not ok:
            fails[kind] = fails.get(kind, 0) + 1
    return {"n": n, "ok": len(ttfbs), "failures": fails, "wall_s": wall,
            "ttfb_p50_ms": _ms(_pct(ttfbs, 50)), "ttfb_p99_ms": _ms(_pct(ttfbs, 99)),
            "ttfb_max_ms": _ms(max(ttfbs) if ttfbs else None)}


def _ms(x):
    return None if x is None else x * 1e3


@dataclass
class ScaleResult:
    n: int
    opened: int = 0
    closed_while_idle: int = 0
    ok: int = 0
    failures: dict = field(default_factory=dict)
    open_s: float = 0.0
    request_s: float = 0.0
    phases: dict = field(default_factory=dict)

    def fail(self, kind: str, count: int = 1):
        self.failures[kind] = self.failures.get(kind, 0) + count


HELD_SETTLE_S = 6


async def scale(port: int, host: str, path: str, n: int, expect_len: int, on_phase,
                batch: int = 500, open_deadline: float = 40.0,
                request_deadline: float = 45.0) -> ScaleResult:
    """Opens n connections in batches (sending nothing), then, once all are
    open, sends one request on each and reads the responses, keeping the
    connections open. on_phase(name) is called (synchronously) when all are
    open and idle ("idle"), and when all responses are in and the connections
    are still held ("held"), so the caller can read memory."""
    loop = asyncio.get_running_loop()
    res = ScaleResult(n)
    socks: list[socket.socket] = []
    t0 = time.perf_counter()
    deadline = t0 + open_deadline

    async def connect_one():
        try:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        except OSError as e:
            res.fail(f"connect: {_err_kind(e)} (in this client)")
            return
        s.setblocking(False)
        try:
            async with asyncio.timeout(10):
                await loop.sock_connect(s, ("127.0.0.1", port))
            socks.append(s)
        except Exception as e:  # noqa: BLE001
            s.close()
            res.fail(f"connect: {_err_kind(e)}")

    try:
        for start in range(0, n, batch):
            if time.perf_counter() > deadline:
                res.fail(f"not opened: open phase over {open_deadline:.0f} s", n - start)
                break
            await asyncio.gather(*(connect_one() for _ in range(min(batch, n - start))))
        res.opened = len(socks)
        res.open_s = time.perf_counter() - t0

        # All open, nothing sent. Let the server settle, then see how many it
        # already closed (or answered) on its own.
        await asyncio.sleep(2)
        alive = []
        for s in socks:
            try:
                data = s.recv(1, socket.MSG_PEEK)
                if data:
                    res.fail("closed or answered by the server while idle (before any request)")
                    continue
                res.fail("closed by the server while idle (before any request)")
            except BlockingIOError:
                alive.append(s)
                continue
            except OSError as e:
                res.fail(f"idle: {_err_kind(e)}")
        res.closed_while_idle = len(socks) - len(alive)
        on_phase("idle")

        req = _request(host, path, close=False)
        t1 = time.perf_counter()

        async def request_one(s):
            stage = "send"
            try:
                await loop.sock_sendall(s, req)
                stage = "response"
                resp = _Response()
                while True:
                    data = await loop.sock_recv(s, 65536)
                    if not data:
                        break
                    if resp.feed(data):
                        break
                if resp.status == 200 and resp.body_len == expect_len:
                    return True
                if resp.status is None:
                    res.fail("response: closed before a response")
                elif resp.status != 200:
                    res.fail(f"response: HTTP {resp.status}")
                else:
                    res.fail("response: short body")
            except Exception as e:  # noqa: BLE001
                res.fail(f"{stage}: {_err_kind(e)}")
            return False

        tasks = [asyncio.create_task(request_one(s)) for s in alive]
        done, pending = await asyncio.wait(tasks, timeout=request_deadline)
        for t in pending:
            t.cancel()
        if pending:
            res.fail(f"response: none within {request_deadline:.0f} s", len(pending))
            await asyncio.gather(*pending, return_exceptions=True)
        res.ok = sum(1 for t in done if not t.cancelled() and t.result())
        res.request_s = time.perf_counter() - t1
        # Held, idle again: measured after 6 s, longer than portholed's and
        # porthole's 5 s heap trim period, so that memory freed by the burst
        # of requests is counted as given back (it was a 13 or 16 KiB coin
        # toss with 2 s).
        await asyncio.sleep(HELD_SETTLE_S)
        on_phase("held")
    finally:
        for s in socks:
            s.close()
    return res
