"""Workload 10, the cost of one request: CPU (cycles and instructions where
the machine has perf counters, CPU time where not) and system calls, per
request, of each process on the path, under workload 1's keep-alive load.

Three paths, one after the other, each with the same load:

  porthole-off   a fresh portholed and a fresh `porthole http` client, inspector off;
  porthole-on    the same portholed and a second client capturing every exchange;
  haproxy-http   the two processes of the haproxy HTTP chain (public, inner).

For each path two windows, both under wrk -t1 -c32 (keep-alive, the 1 KiB
file), after one warm-up:

  strace    `strace -c -f -p PID` of each process, attached before a short
            wrk run and detached after it: system calls by name. strace
            stops the process at every call, so requests/s are far lower in
            this window, and an event loop slowed down this much wakes up
            more often per request: its counts show which calls are made,
            not how many an undisturbed process makes;
  counters  `perf stat -p PID` of each process, started before a wrk run of
            the suite's duration and stopped (SIGINT) after wrk exits, and
            the process's CPU time from /proc over the same span: the whole
            wrk run is inside the window, so every request wrk counts was
            served in it. Where the kernel has them, the raw_syscalls
            tracepoint counts all system calls, and the syscalls:sys_enter_*
            tracepoints of the calls strace saw count each by name, without
            stopping the process.

Requests are wrk's own count ("N requests in ...") of that run.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

from . import loadgen, services
from .procs import Proc

PERF_EVENTS = ("cycles", "instructions", "task-clock", "context-switches",
               "raw_syscalls:sys_enter")
STRACE_TOP = 8
# Counted by name in the counters window besides those strace saw: the calls
# of a relay's data path and of new connections, which a short strace window
# may miss.
BASE_SYSCALLS = ("read", "write", "readv", "writev", "recvfrom", "sendto", "recvmsg",
                 "sendmsg", "epoll_wait", "epoll_pwait", "epoll_ctl", "accept", "accept4",
                 "connect", "socket", "close", "shutdown", "setsockopt", "getsockopt",
                 "getpeername", "getsockname", "ioctl", "fcntl", "futex", "timerfd_settime",
                 "pwrite64", "pread64", "fdatasync", "fsync", "madvise", "mmap", "munmap", "brk")
PATHS = {  # key -> (label, names of its two processes)
    "porthole-off": ("porthole, inspector off", ("portholed", "porthole")),
    "porthole-on": ("porthole, inspector on", ("portholed", "porthole")),
    "haproxy-http": ("haproxy-http chain", ("haproxy public", "haproxy inner")),
}


def perf_support(tmp: Path) -> dict:
    """Which of PERF_EVENTS `perf stat` can count on this machine (a VM often
    has no hardware counters: cycles and instructions are then <not
    supported>)."""
    out = tmp / "perf-probe.txt"
    try:
        p = subprocess.run(["perf", "stat", "-x,", "-o", out, "-e", ",".join(PERF_EVENTS),
                            "--", "true"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as e:
        return {"perf": False, "counted": [], "why": f"perf stat: {e}"}
    counted = _parse_perf(out.read_text() if out.exists() else "")
    ok = [e for e in PERF_EVENTS if counted.get(e) is not None]
    why = None
    if p.returncode != 0 and not ok:
        why = f"perf stat exited {p.returncode}: {p.stderr.strip()[-200:]}"
    elif "cycles" not in ok or "instructions" not in ok:
        why = "cycles and instructions <not supported> (no hardware counters here)"
    return {"perf": bool(ok), "counted": ok, "why": why}


def _parse_perf(text: str) -> dict:
    """`perf stat -x,` lines: value,unit,event,...; None for <not supported>
    and <not counted>."""
    out: dict = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        f = line.split(",")
        if len(f) < 3:
            continue
        try:
            out[f[2]] = float(f[0])
        except ValueError:
            out[f[2]] = None
    return out


def _ctx_switches(pid: int) -> int | None:
    """Voluntary and involuntary context switches of all a process's threads."""
    total = 0
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{tid}/status") as f:
                    for line in f:
                        if line.startswith(("voluntary_ctxt_switches:",
                                            "nonvoluntary_ctxt_switches:")):
                            total += int(line.split()[1])
            except OSError:  # a thread that just ended
                pass
    except OSError:
        return None
    return total


def _user_sys(pid: int) -> tuple[float, float] | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        return int(fields[11]) / ticks, int(fields[12]) / ticks
    except (OSError, ValueError, IndexError):
        return None


def _threads(pid: int) -> int | None:
    try:
        return len(os.listdir(f"/proc/{pid}/task"))
    except OSError:
        return None


def _sigint_and_wait(sup, p: Proc, timeout: float = 15) -> None:
    """perf and strace print their summary when interrupted."""
    if p.poll() is None:
        try:
            os.kill(p.pid, signal.SIGINT)
        except ProcessLookupError:
            pass
        try:
            p.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
    sup.stop(p)


def _syscall_tracepoints(names) -> list[str]:
    """The syscalls:sys_enter_NAME tracepoints this kernel has, of `names`."""
    for d in ("/sys/kernel/tracing/events/syscalls", "/sys/kernel/debug/tracing/events/syscalls"):
        if os.path.isdir(d):
            return [n for n in sorted(names) if os.path.isdir(f"{d}/sys_enter_{n}")]
    return []


def counters_window(suite, procs: dict, url: str, host: str, perf: dict,
                    syscall_names=()) -> dict:
    """One wrk run of suite.duration seconds inside a window of perf stat
    (where perf works) and /proc readings of each of `procs` ({name: Proc}).
    With the raw_syscalls tracepoint, also counts each of `syscall_names`
    (those strace saw, and BASE_SYSCALLS) by its own tracepoint."""
    out_dir = suite.tmp / "cost"
    perfs = {}
    by_name = []
    if perf["perf"]:
        events = list(perf["counted"])
        if "raw_syscalls:sys_enter" in events:
            by_name = _syscall_tracepoints(syscall_names)
            events += [f"syscalls:sys_enter_{n}" for n in by_name]
        for name, p in procs.items():
            f = out_dir / f"perf-{name.replace(' ', '-')}-{p.pid}-{time.monotonic_ns()}.txt"
            perfs[name] = (f, suite.sup.start(f"perf-{name.replace(' ', '-')}", [
                "perf", "stat", "-x,", "-o", f, "-e", ",".join(events), "-p", p.pid]))
        time.sleep(0.5)  # perf attached (it says nothing when it is)
    before = {n: (_user_sys(p.pid), _ctx_switches(p.pid)) for n, p in procs.items()}
    gone = [n for n, (t, _) in before.items() if t is None]
    if gone:
        raise RuntimeError(f"no longer running: {', '.join(gone)}")
    t0 = time.monotonic()
    r = loadgen.wrk(suite.sup, url, host, suite.duration)
    window = time.monotonic() - t0
    after = {n: (_user_sys(p.pid), _ctx_switches(p.pid)) for n, p in procs.items()}
    gone = [n for n, (t, _) in after.items() if t is None]
    if gone:
        raise RuntimeError(f"exited during the load: {', '.join(gone)}")
    for f, pp in perfs.values():
        _sigint_and_wait(suite.sup, pp)
    n = r.get("requests") or 0
    per_proc, per_req = {}, {}
    for name, p in procs.items():
        (u0, s0), c0 = before[name]
        (u1, s1), c1 = after[name]
        d = {"user_s": round(u1 - u0, 3), "sys_s": round(s1 - s0, 3),
             "cpu_s": round(u1 - u0 + s1 - s0, 3), "threads": _threads(p.pid),
             "context_switches_proc": None if c0 is None or c1 is None else c1 - c0}
        if name in perfs:
            f, pp = perfs[name]
            ev = _parse_perf(f.read_text() if f.exists() else "")
            d.update({"cycles": ev.get("cycles"), "instructions": ev.get("instructions"),
                      "task_clock_ms": ev.get("task-clock"),
                      "context_switches": ev.get("context-switches"),
                      "syscalls": ev.get("raw_syscalls:sys_enter")})
            if by_name:
                d["syscalls_by_name"] = {k: ev[f"syscalls:sys_enter_{k}"] for k in by_name
                                         if ev.get(f"syscalls:sys_enter_{k}")}
        per_proc[name] = d
        per_req[name] = _per_request(d, n)
    per_req["both"] = _per_request(_sum(per_proc.values()), n)
    if by_name and n:
        both: dict = {"syscalls": _sum(per_proc.values()).get("syscalls"),
                      "syscalls_by_name": {}}
        for name, d in per_proc.items():
            per_req[name]["syscalls_by_name"] = _by_name_per_request(d, n)
            for k, v in (d.get("syscalls_by_name") or {}).items():
                both["syscalls_by_name"][k] = both["syscalls_by_name"].get(k, 0) + v
        per_req["both"]["syscalls_by_name"] = _by_name_per_request(both, n)
    return {"requests": n, "rps": r["rps"], "wrk_seconds": r.get("duration_s"),
            "window_s": round(window, 2), "errors": r["errors"], "processes": per_proc,
            "per_request": per_req}


def _by_name_per_request(d: dict, n: int) -> dict:
    """Top STRACE_TOP syscalls by their tracepoint counts, per request, and
    the rest of raw_syscalls' total as "other"."""
    counts = {k: v for k, v in (d.get("syscalls_by_name") or {}).items() if v}
    if not n or not counts:
        return {}
    top = sorted(counts.items(), key=lambda kv: -kv[1])
    out = {k: v / n for k, v in top[:STRACE_TOP]}
    total = d.get("syscalls")
    if total is not None:
        out["other"] = max(0.0, total - sum(v for _, v in top[:STRACE_TOP])) / n
    return out


def _sum(ds) -> dict:
    out: dict = {}
    for d in ds:
        for k, v in d.items():
            if k in ("threads", "syscalls_by_name"):
                continue
            if v is None or out.get(k, 0) is None:
                out[k] = None
            else:
                out[k] = out.get(k, 0) + v
    return out


def _per_request(d: dict, n: int) -> dict:
    """CPU in microseconds, the rest in events, per request."""
    if not n:
        return {}

    def per(x, scale=1.0):
        return None if x is None else x * scale / n
    ctx = d.get("context_switches")
    if ctx is None:
        ctx = d.get("context_switches_proc")
    return {"cpu_us": per(d.get("cpu_s"), 1e6), "user_us": per(d.get("user_s"), 1e6),
            "sys_us": per(d.get("sys_s"), 1e6),
            "task_clock_us": per(d.get("task_clock_ms"), 1e3),
            "cycles": per(d.get("cycles")), "instructions": per(d.get("instructions")),
            "syscalls": per(d.get("syscalls")), "context_switches": per(ctx)}


def _parse_strace(text: str) -> dict:
    """`strace -c` summary: {"calls": {name: n}, "errors": {name: n}, "total": n}."""
    calls, errors, total = {}, {}, None
    for line in text.splitlines():
        f = line.split()
        if len(f) < 5 or not re.fullmatch(r"[\d.]+", f[0]):
            continue
        name = f[-1]
        try:
            n = int(f[3])
            e = int(f[4]) if len(f) == 6 else 0
        except ValueError:
            continue
        if name == "total":
            total = n
            continue
        calls[name] = n
        if e:
            errors[name] = e
    if total is None:
        total = sum(calls.values())
    return {"calls": calls, "errors": errors, "total": total}


def strace_window(suite, procs: dict, url: str, host: str, seconds: float) -> dict:
    """One wrk run of `seconds` with `strace -c -f` attached to each of
    `procs`, from before wrk starts until after it exits."""
    out_dir = suite.tmp / "cost"
    traces = {}
    for name, p in procs.items():
        f = out_dir / f"strace-{name.replace(' ', '-')}-{p.pid}-{time.monotonic_ns()}.txt"
        traces[name] = (f, suite.sup.start(f"strace-{name.replace(' ', '-')}", [
            "strace", "-c", "-f", "-S", "calls", "-o", f, "-p", p.pid]))
    for name, (f, tp) in traces.items():
        # "strace: Process N attached with T threads" once every thread is.
        tp.wait_for(r"Process \d+ attached", timeout=15)
    time.sleep(0.2)
    r = loadgen.wrk(suite.sup, url, host, seconds)
    for f, tp in traces.values():
        _sigint_and_wait(suite.sup, tp)
    n = r.get("requests") or 0
    per_proc, per_req = {}, {}
    for name, (f, tp) in traces.items():
        s = _parse_strace(f.read_text() if f.exists() else "")
        if not s["calls"]:
            raise RuntimeError(f"strace of {name} counted nothing:\n{tp.tail()}")
        per_proc[name] = s
        per_req[name] = _strace_per_request(s, n)
    both = {"calls": {}, "errors": {}, "total": 0}
    for s in per_proc.values():
        for k, v in s["calls"].items():
            both["calls"][k] = both["calls"].get(k, 0) + v
        both["total"] += s["total"]
    per_req["both"] = _strace_per_request(both, n)
    return {"requests": n, "rps": r["rps"], "seconds": seconds, "errors": r["errors"],
            "processes": per_proc, "per_request": per_req}


def _strace_per_request(s: dict, n: int) -> dict:
    if not n:
        return {}
    top = sorted(s["calls"].items(), key=lambda kv: -kv[1])[:STRACE_TOP]
    return {"total": s["total"] / n, "top": {k: v / n for k, v in top}}


def strace_seconds(duration: float) -> int:
    """The strace window: half the counted run, 1 to 3 s."""
    return max(1, min(3, round(duration / 2)))


def w_cost(suite) -> None:
    missing = services.check_tools(["strace"])
    if missing:
        raise RuntimeError("strace is missing: run scripts/install-deps --bench")
    perf = perf_support(suite.tmp) if not services.check_tools(["perf"]) else {
        "perf": False, "counted": [], "why": "perf is missing (scripts/install-deps --bench)"}
    (suite.tmp / "cost").mkdir(exist_ok=True)
    strace_s = strace_seconds(suite.duration)
    db = suite.tmp / "cost-captures.db"
    # A fresh portholed: its cost does not depend on what ran before it.
    srv = services.start_portholed(suite.sup, suite.bindir, suite.tmp, name="portholed-cost")
    clients = {}
    try:
        clients["porthole-off"] = services.start_porthole(
            suite.sup, suite.bindir, srv, "http", suite.nginx.port, subdomain="cost-off",
            name="porthole-cost-off")
        clients["porthole-on"] = services.start_porthole(
            suite.sup, suite.bindir, srv, "http", suite.nginx.port, subdomain="cost-on",
            name="porthole-cost-on", inspect=["--inspect-addr", "127.0.0.1:0",
                                              "--inspect-db", db])
        time.sleep(1)  # proxy pools filled
        paths = {}
        for key, (label, names) in PATHS.items():
            if key == "haproxy-http":
                procs = {names[0]: suite.hchain.public, names[1]: suite.hchain.inner}
                port, host = suite.http_endpoint("haproxy-http")
            else:
                procs = {names[0]: srv.proc, names[1]: clients[key].proc}
                port, host = srv.http_port, clients[key].host
            url = f"http://127.0.0.1:{port}/{services.SMALL_FILE}"
            if suite.warmup:
                loadgen.wrk(suite.sup, url, host, suite.warmup)
                time.sleep(0.5)
            # strace first: the calls it sees are then counted by name, by
            # their tracepoints, in the undisturbed counters window.
            st = strace_window(suite, procs, url, host, strace_s)
            time.sleep(1)
            seen = {k for d in st["processes"].values() for k in d["calls"]}
            c = counters_window(suite, procs, url, host, perf, seen | set(BASE_SYSCALLS))
            time.sleep(1)
            paths[key] = {"label": label, "counters": c, "strace": st}
            b = c["per_request"].get("both", {})
            suite.log(f"  {key:12s} {c['requests']} requests ({c['rps']:.0f}/s): "
                      f"{_f(b.get('cpu_us'))} us CPU/request"
                      + (f", {_f(b.get('cycles'), '{:.0f}')} cycles" if b.get("cycles") else "")
                      + (f", {_f(b.get('syscalls'))} syscalls" if b.get("syscalls") else "")
                      + f" (both processes); strace {strace_s} s: {st['requests']} requests "
                      f"({st['rps']:.0f}/s), {_f(st['per_request']['both']['total'])} "
                      f"syscalls/request")
    finally:
        suite.sup.stop_many([t.proc for t in clients.values()] + [srv.proc])
    suite.results["cost"] = {
        "load": (f"wrk -t1 -c32 keep-alive, the 1 KiB file, {suite.duration:g} s after a "
                 f"{suite.warmup:g} s warm-up; strace window {strace_s} s"),
        "perf": perf, "strace_window_s": strace_s,
        "cpu_source": ("perf stat cycles/instructions and /proc CPU time"
                       if perf["perf"] and "cycles" in perf["counted"]
                       else "/proc CPU time (utime + stime): no perf cycles/instructions here"),
        "portholed_args": srv.args, "paths": paths}


def _f(x, fmt="{:.2f}"):
    return "-" if x is None else fmt.format(x)
