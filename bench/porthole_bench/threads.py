"""Workload 11: portholed's threads (docs/THREADS.md). The same load through
a portholed at --threads 1 and one at --threads 2, in interleaved rounds,
with portholed as the process that does the most work per request:

  4 wrk (one per tunnel, -t1 -c8, keep-alive, HTTPS, a 64 KiB file)
    -> portholed's public HTTPS port: TLS terminated there (SNI = the
       tunnel's name), the request relayed over the tunnel client's
       multiplexed TLS connection, so portholed runs two TLS hops per byte
    -> 4 porthole http clients (--threads 1: one multiplexed connection
       each, one subdomain each) -> nginx.

portholed sends each client's first multiplexed connection to the next
thread in turn, so at --threads 2 two clients are on each thread, and a
public connection runs on the thread of its tunnel's multiplexed
connection: the load is spread evenly over the threads when each tunnel
gets the same load (one wrk per tunnel; a pinned HTTPS connection serves its
one name, so the tunnels cannot share wrk connections).

Everything runs on the machine's CPUs together (no taskset, no CPU limits):
wrk, the clients and nginx compete with portholed. Reported for each thread
count (the median round by requests/s): requests/s, latency, the CPU time of
portholed (user, system, and each of its threads, from
/proc/PID/task/TID/schedstat), of the clients, nginx and wrk, and what the
whole machine was busy with (/proc/stat), so that the ratio 2 threads / 1
thread can be read against what was free to take.
"""

from __future__ import annotations

import os
import re
import resource
import socket
import ssl
import time

from . import loadgen, services
from .procs import Proc
from .suite import WRK_ROUNDS, _log_summary

THREAD_COUNTS = (1, 2)
CLIENTS = 4  # porthole clients per portholed, one tunnel (subdomain) each
CONNS_PER_TUNNEL = 8  # wrk -c per tunnel: 32 public connections in all, as workload 1
CLIENT_THREADS = 1
# The response body: 64 KiB, so that the bytes, which portholed encrypts and
# decrypts twice (two TLS hops) and the others once, outweigh the per-request
# work that every process on the path has (with 1 KiB portholed does about a
# quarter of the path's CPU work here, with 64 KiB well over a third).
BODY = 64 * 1024
BODY_FILE = "64k.bin"
BUSY_CORES = 0.05  # a thread that used more than this share of a core is "busy"


# --------------------------------------------------------------------------
# CPU readings
# --------------------------------------------------------------------------

def _tasks(pid: int) -> dict[int, tuple[str, int]]:
    """{tid: (name, ns on a CPU)} of each thread of a process
    (/proc/PID/task/TID/schedstat, first field: nanoseconds run)."""
    out = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for t in tids:
        try:
            with open(f"/proc/{pid}/task/{t}/schedstat") as f:
                ns = int(f.read().split()[0])
            with open(f"/proc/{pid}/task/{t}/comm") as f:
                name = f.read().strip()
        except (OSError, ValueError, IndexError):  # a thread that just ended
            continue
        out[int(t)] = (name, ns)
    return out


def _cpu_ns(pid: int) -> int | None:
    t = _tasks(pid)
    return sum(ns for _, ns in t.values()) if t else None


def _user_sys(pid: int) -> tuple[float, float] | None:
    """User and system CPU seconds (/proc/PID/stat, clock ticks)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        tick = os.sysconf("SC_CLK_TCK")
        return int(fields[11]) / tick, int(fields[12]) / tick
    except (OSError, ValueError, IndexError):
        return None


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except (OSError, ValueError):
        return []


def _machine() -> tuple[int, int]:
    """(busy, all) jiffies of all CPUs together, from /proc/stat; idle and
    iowait are not busy."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal (guest is in user)
    return sum(v[:8]) - v[3] - v[4], sum(v[:8])


def _children_rusage() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


class _Snapshot:
    def __init__(self, server: Proc, clients: list[Proc], nginx: Proc):
        self.server_tasks = _tasks(server.pid)
        self.server_us = _user_sys(server.pid)
        self.clients = [_cpu_ns(c.pid) for c in clients]
        self.nginx = sum(_cpu_ns(p) or 0 for p in [nginx.pid, *_children(nginx.pid)])
        self.machine = _machine()
        self.reaped = _children_rusage()  # the wrk processes, once reaped
        self.t = time.monotonic()


def _cpu_used(a: _Snapshot, b: _Snapshot, server_pid: int) -> dict:
    window = b.t - a.t
    threads = []
    for i, tid in enumerate(sorted(b.server_tasks)):
        name, ns1 = b.server_tasks[tid]
        ns0 = a.server_tasks.get(tid, (name, 0))[1]
        s = (ns1 - ns0) / 1e9
        threads.append({"tid": tid, "name": name, "role": "main" if tid == server_pid
                        else f"thread {i}", "cpu_s": round(s, 3),
                        "cores": round(s / window, 3)})
    srv = sum(t["cpu_s"] for t in threads)
    (u0, s0), (u1, s1) = a.server_us, b.server_us
    clients = [None if x is None or y is None else round((y - x) / 1e9, 3)
               for x, y in zip(a.clients, b.clients)]
    nginx = round((b.nginx - a.nginx) / 1e9, 3)
    wrk = round(b.reaped - a.reaped, 3)
    tick = os.sysconf("SC_CLK_TCK")
    busy = (b.machine[0] - a.machine[0]) / tick
    capacity = (b.machine[1] - a.machine[1]) / tick
    known = srv + sum(c or 0 for c in clients) + nginx + wrk
    return {"window_s": round(window, 3),
            "portholed": {"cpu_s": round(srv, 3), "user_s": round(u1 - u0, 2),
                          "sys_s": round(s1 - s0, 2), "cores": round(srv / window, 3),
                          "threads": threads,
                          "busy_threads": sum(1 for t in threads
                                              if t["cores"] >= BUSY_CORES)},
            "clients_cpu_s": clients, "clients_cpu_s_total": round(sum(c or 0 for c in clients), 3),
            "nginx_cpu_s": nginx, "wrk_cpu_s": wrk,
            "machine_busy_s": round(busy, 2), "machine_cpu_s": round(capacity, 2),
            "machine_busy_cores": round(busy / window, 3),
            # What the machine did besides the processes of the path and wrk:
            # the suite's other (idle) servers, the suite itself, and anything
            # else running on the machine.
            "other_cpu_s": round(max(0.0, busy - known), 2)}


# --------------------------------------------------------------------------
# The set-up: one portholed per thread count, CLIENTS clients each
# --------------------------------------------------------------------------

def _https_status(port: int, name: str, path: str, timeout: float = 10) -> str:
    """The status line's code of one HTTPS GET to 127.0.0.1:port with SNI
    and Host `name` (the dev CA is not checked: wrk does not check it)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw:
        with ctx.wrap_socket(raw, server_hostname=name) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: {name}:{port}\r\n"
                      f"Connection: close\r\n\r\n".encode())
            head = b""
            while b"\r\n" not in head:
                data = s.recv(4096)
                if not data:
                    break
                head += data
    parts = head.split(b" ", 2)
    return parts[1].decode() if len(parts) > 1 else "(no response)"


def _mux_threads(server: Proc, n: int, timeout: float = 10) -> dict:
    """{client id: portholed thread} from portholed's log lines
    'multiplexed connection up client=ID ... thread=K', once there are n."""
    rx = re.compile(r"multiplexed connection up client=(\w+).*?\bthread=(\d+)")
    deadline = time.monotonic() + timeout
    while True:
        got = {m.group(1): int(m.group(2)) for m in rx.finditer(server.text())}
        if len(got) >= n or time.monotonic() > deadline:
            return got
        time.sleep(0.1)


def _start_set(suite, threads: int) -> dict:
    srv = services.start_portholed(suite.sup, suite.bindir, suite.tmp,
                                   name=f"portholed-threads{threads}",
                                   extra=["--threads", str(threads)])
    started = [srv.proc]
    try:
        clients = []
        for i in range(1, CLIENTS + 1):
            t = services.start_porthole(suite.sup, suite.bindir, srv, "http", suite.nginx.port,
                                        subdomain=f"th{threads}c{i}",
                                        name=f"porthole-threads{threads}-c{i}",
                                        extra=["--threads", str(CLIENT_THREADS)],
                                        proto="https")
            started.append(t.proc)
            clients.append(t)
        urls = []
        for t in clients:
            if not t.url.startswith("https://"):
                raise RuntimeError(f"client {t.proc.name}: no https URL ({t.url})")
            name = t.host.rsplit(":", 1)[0]
            got = _https_status(srv.tunnel_port, name, f"/{BODY_FILE}")
            if got != "200":
                raise RuntimeError(f"GET https://{t.host}/{BODY_FILE} (SNI {name}) "
                                   f"got {got}")
            urls.append(f"https://{t.host}/{BODY_FILE}")
        mux = _mux_threads(srv.proc, CLIENTS)
    except BaseException:
        suite.sup.stop_many(started[1:])
        suite.sup.stop(srv.proc)
        raise
    per_thread: dict[int, int] = {}
    for k in mux.values():
        per_thread[k] = per_thread.get(k, 0) + 1
    suite.watched[f"portholed-threads{threads}"] = srv.proc
    for t in clients:
        suite.watched[t.proc.name] = t.proc
    return {"server": srv, "clients": clients, "urls": urls, "procs": started,
            "mux_per_thread": {str(k): v for k, v in sorted(per_thread.items())},
            "mux_connections": len(mux)}


# --------------------------------------------------------------------------
# The rounds
# --------------------------------------------------------------------------

def _measure(suite, s: dict, script) -> dict:
    srv, clients = s["server"].proc, [t.proc for t in s["clients"]]
    a = _Snapshot(srv, clients, suite.nginx.proc)
    rs = loadgen.wrk_many(suite.sup, s["urls"], suite.duration, CONNS_PER_TUNNEL, script)
    b = _Snapshot(srv, clients, suite.nginx.proc)
    for p in [srv, *clients]:
        if p.poll() is not None:
            raise RuntimeError(f"{p.name} exited (code {p.poll()}) during the load:\n{p.tail()}")
    errors: dict[str, int] = {}
    for r in rs:
        for k, v in r["errors"].items():
            errors[k] = errors.get(k, 0) + v
    p50s = sorted(r["p50_ms"] for r in rs if r.get("p50_ms") is not None)
    p99s = [r["p99_ms"] for r in rs if r.get("p99_ms") is not None]
    n = sum(r.get("requests") or 0 for r in rs)
    out = {"rps": sum(r["rps"] for r in rs), "requests": n,
           "per_tunnel_rps": [round(r["rps"]) for r in rs],
           "p50_ms": p50s[len(p50s) // 2] if p50s else None,  # the tunnels' median
           "p99_ms": max(p99s) if p99s else None,  # the worst tunnel's
           "errors": errors}
    out.update(_cpu_used(a, b, srv.pid))
    ph = out["portholed"]
    ph["us_per_request"] = round(ph["cpu_s"] * 1e6 / n, 2) if n else None
    out["MBps"] = out["rps"] * BODY / 1e6
    return out


def _median(rs: list[dict]) -> dict:
    ordered = sorted(rs, key=lambda r: r["rps"])
    m = dict(ordered[len(ordered) // 2])  # every CPU figure from this same round
    for metric in ("p50_ms", "p99_ms"):
        values = sorted(r[metric] for r in rs if r.get(metric) is not None)
        if values:
            m[metric] = values[len(values) // 2]
    m["rounds_rps"] = [round(r["rps"]) for r in rs]
    m["rounds_portholed_cores"] = [r["portholed"]["cores"] for r in rs]
    m["rounds_machine_busy_cores"] = [r["machine_busy_cores"] for r in rs]
    errors: dict[str, int] = {}
    for r in rs:
        for k, v in r["errors"].items():
            errors[k] = errors.get(k, 0) + v
    m["errors_all_rounds"] = errors
    return m


def w_threads(suite) -> None:
    f = suite.www / BODY_FILE
    f.write_bytes(bytes((i * 7 + 13) % 251 for i in range(BODY)))
    f.chmod(0o644)
    script = suite.tmp / "loopback.lua"
    script.write_text(loadgen.LOOPBACK_LUA)
    sets: dict[int, dict] = {}
    try:
        for n in THREAD_COUNTS:
            sets[n] = _start_set(suite, n)
            suite.log(f"  portholed --threads {n}: {CLIENTS} clients (--threads "
                      f"{CLIENT_THREADS}), multiplexed connections per portholed thread "
                      f"{sets[n]['mux_per_thread']}")
        time.sleep(1)  # pools filled
        rounds: dict[int, list[dict]] = {n: [] for n in THREAD_COUNTS}
        for rnd in range(WRK_ROUNDS):
            for n in THREAD_COUNTS:
                s = sets[n]
                if suite.warmup:
                    loadgen.wrk_many(suite.sup, s["urls"], suite.warmup, CONNS_PER_TUNNEL,
                                     script)
                    time.sleep(0.5)
                r = _measure(suite, s, script)
                rounds[n].append(r)
                ph = r["portholed"]
                suite.log(f"  round {rnd + 1}/{WRK_ROUNDS} --threads {n}  {r['rps']:8.0f} req/s "
                          f"(tunnels {r['per_tunnel_rps']})  p99 {_f(r['p99_ms'])} ms  "
                          f"portholed {_f(ph['cpu_s'])} CPU s = {_f(ph['cores'])} cores "
                          f"(threads " + " ".join(f"{t['cores']:.2f}" for t in ph["threads"])
                          + f"), machine busy {_f(r['machine_busy_cores'])} cores, "
                          f"errors {r['errors'] or 'none'}")
                time.sleep(1)
        res: dict = {"by_threads": {str(n): _median(rs) for n, rs in rounds.items()}}
        for n in THREAD_COUNTS:
            res["by_threads"][str(n)]["mux_per_thread"] = sets[n]["mux_per_thread"]
        res["logs"] = {p.name: _log_summary(p.text()) for s in sets.values()
                       for p in s["procs"] if _log_summary(p.text())["total"]}
    finally:
        # The clients first (they give their tunnels back), then the servers.
        suite.sup.stop_many([p for s in sets.values() for p in s["procs"][1:]])
        suite.sup.stop_many([s["procs"][0] for s in sets.values()])
    one, two = res["by_threads"]["1"], res["by_threads"]["2"]
    res["ratio_rps"] = two["rps"] / one["rps"] if one["rps"] else None
    res["ratio_portholed_cores"] = (two["portholed"]["cores"] / one["portholed"]["cores"]
                                    if one["portholed"]["cores"] else None)
    res["ratio_us_per_request"] = (two["portholed"]["us_per_request"]
                                   / one["portholed"]["us_per_request"]
                                   if one["portholed"]["us_per_request"] else None)
    res.update({
        "load": (f"{CLIENTS} wrk at once, one per tunnel (-t1 -c{CONNS_PER_TUNNEL}, keep-alive, "
                 f"HTTPS to portholed's public port, a {BODY // 1024} KiB file), {suite.duration:g} s "
                 f"after a {suite.warmup:g} s warm-up; {WRK_ROUNDS} interleaved rounds"),
        "clients": CLIENTS, "client_threads": CLIENT_THREADS, "body_bytes": BODY,
        "conns_per_tunnel": CONNS_PER_TUNNEL, "cpus": os.cpu_count(),
        "portholed_args": {str(n): s["server"].args for n, s in sets.items()},
        "client_args": sets[1]["clients"][0].proc.argv[1:],
        "taskset": None})
    suite.results["threads"] = res
    suite.log(f"  median: --threads 1 {one['rps']:.0f} req/s, portholed "
              f"{_f(one['portholed']['cores'])} cores; --threads 2 {two['rps']:.0f} req/s, "
              f"portholed {_f(two['portholed']['cores'])} cores; 2/1: "
              f"{_f(res['ratio_rps'])}x req/s, {_f(res['ratio_portholed_cores'])}x portholed CPU")


def _f(x, fmt="{:.2f}"):
    return "-" if x is None else fmt.format(x)
