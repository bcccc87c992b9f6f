"""The soak run: bench/soak BIN_DIR (see bench/README.md, "Soak").

One long-lived tunnel takes a million requests (keep-alive and a new
connection per request, from wrk) while other clients keep connecting,
serving a few requests and leaving, half of them killed with SIGKILL. Open
files and resident memory of portholed and of the long-lived client are
read after a warm-up and again at the end, each time with no churn running
and the server's reconnect grace elapsed: a leak of anything per request,
per connection or per client shows up as a difference.
"""

from __future__ import annotations

import argparse
import datetime
import http.client
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import services
from .__main__ import child_env, raise_nofile
from .loadgen import CLOSE_LUA, wrk
from .procs import Supervisor, open_fds, rss_kib

BENCH = Path(__file__).resolve().parents[1]
GRACE_S = 3  # the soak server's --reconnect-grace: killed clients' URLs are freed quickly
# What "equal" means at the end: a few descriptors (a pooled proxy connection
# being replaced, a log file) and a little memory (allocator caches) of slack.
FD_MARGIN = 4
RSS_MARGIN_KIB = 2048
RSS_MARGIN_RATIO = 0.10


@dataclass
class Churn:
    """Clients that come and go beside the long-lived one."""
    next: int = 0  # the last client's number: each has its own subdomain
    started: int = 0
    killed: int = 0
    stopped: int = 0
    requests: int = 0
    failures: list = field(default_factory=list)


def _get(port: int, host: str, n: int) -> int:
    """n keep-alive GETs of the small file; returns how many got 200."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    ok = 0
    try:
        for _ in range(n):
            conn.request("GET", "/" + services.SMALL_FILE, headers={"Host": host})
            r = conn.getresponse()
            r.read()
            ok += r.status == 200
    finally:
        conn.close()
    return ok


def churn_loop(sup: Supervisor, bindir: Path, server, origin: int, stop: threading.Event,
               churn: Churn, per_client: int = 50) -> None:
    while not stop.is_set():
        churn.next += 1
        i = churn.next
        name = f"churn{i}"
        extra = ["--no-mux"] if i % 3 == 0 else []
        try:
            t = services.start_porthole(sup, bindir, server, "http", origin, subdomain=name,
                                        name=name, extra=extra)
        except Exception as e:
            churn.failures.append(f"{name}: did not come up: {e}")
            continue
        churn.started += 1
        try:
            ok = _get(t.public_port, t.host, per_client)
            churn.requests += ok
            if ok != per_client:
                churn.failures.append(f"{name}: {per_client - ok} of {per_client} not 200")
        except Exception as e:
            churn.failures.append(f"{name}: {e!r}")
        if i % 2:
            os.kill(t.proc.pid, signal.SIGKILL)
            churn.killed += 1
        else:
            churn.stopped += 1
        sup.stop(t.proc)


def settle(pid: int, quiet_s: float = 2.0, timeout: float = 30.0) -> int:
    """Waits until a process's open-file count has not changed for quiet_s (its
    connections closed, time-outs run); returns that count."""
    deadline = time.monotonic() + timeout
    last, since = open_fds(pid), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.2)
        now = open_fds(pid)
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            break
    return last


def snapshot(procs: dict) -> dict:
    # The reconnect grace of the last killed client must run out first.
    time.sleep(GRACE_S + 1)
    return {name: {"fds": settle(p.pid), "rss_kib": rss_kib(p.pid)} for name, p in procs.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="bench/soak", description=__doc__.split("\n\n")[0])
    ap.add_argument("bindir", nargs="?", default="build/bin")
    ap.add_argument("--requests", type=int, default=1_000_000,
                    help="requests through the long-lived tunnel (default 1,000,000)")
    ap.add_argument("--round", type=int, default=10, help="seconds per wrk round (default 10)")
    ap.add_argument("--out-dir", default=str(BENCH / "out"))
    args = ap.parse_args(argv)
    bindir = Path(args.bindir).resolve()
    missing = services.check_tools(["nginx", "wrk"])
    if missing:
        print(f"soak: missing {', '.join(missing)}: run scripts/install-deps --bench",
              file=sys.stderr)
        return 2
    env = child_env()
    os.environ["PATH"] = env["PATH"]
    raise_nofile()
    tmp = Path(tempfile.mkdtemp(prefix="porthole-soak-"))
    (tmp / "logs").mkdir()
    runbin = tmp / "bin"
    runbin.mkdir()
    for prog in ("portholed", "porthole"):
        shutil.copy2(bindir / prog, runbin / prog)
    sup = Supervisor(tmp / "logs", env=env)
    stop = threading.Event()
    churn = Churn()
    t0 = time.monotonic()
    ok = False
    try:
        www = tmp / "www"
        www.mkdir()
        (www / services.SMALL_FILE).write_bytes(bytes(i % 251 for i in range(services.SMALL_SIZE)))
        for p in (tmp, www):
            p.chmod(0o755)
        (www / services.SMALL_FILE).chmod(0o644)
        nginx = services.start_nginx(sup, tmp, www)
        server = services.start_portholed(sup, runbin, tmp,
                                          extra=["--reconnect-grace", str(GRACE_S)])
        tunnel = services.start_porthole(sup, runbin, server, "http", nginx.port,
                                         subdomain="soak", name="porthole")
        url = f"http://127.0.0.1:{tunnel.public_port}/{services.SMALL_FILE}"
        close_lua = tmp / "close.lua"
        close_lua.write_text(CLOSE_LUA)
        watched = {"portholed": server.proc, "porthole": tunnel.proc}

        def load_round(n: int) -> dict:
            # Every fourth round opens a new connection per request.
            if n % 4 == 3:
                return wrk(sup, url, tunnel.host, args.round, conns=16, script=close_lua)
            return wrk(sup, url, tunnel.host, args.round, conns=32)

        def churn_round(n: int) -> dict:
            stop.clear()
            th = threading.Thread(target=churn_loop,
                                  args=(sup, runbin, server, nginx.port, stop, churn))
            th.start()
            try:
                return load_round(n)
            finally:
                stop.set()
                th.join()

        # Warm-up: one round of each kind, with churn; then the baseline.
        rounds, total, errors = 0, 0, {}
        for n in (0, 3):
            r = churn_round(n)
            total += r["requests"]
            rounds += 1
        warm = snapshot(watched)
        warm_requests = total
        print(f"soak: warm-up {total} requests, {churn.started} churn clients; "
              f"baseline {json.dumps(warm)}", flush=True)
        measured = 0
        while measured < args.requests:
            r = churn_round(rounds)
            rounds += 1
            measured += r["requests"]
            for k, v in r["errors"].items():
                errors[k] = errors.get(k, 0) + v
            print(f"soak: round {rounds}: {r['requests']} requests at {r['rps']:.0f}/s"
                  f"{' (new connection each)' if (rounds - 1) % 4 == 3 else ''}; "
                  f"{measured}/{args.requests}; churn clients {churn.started}", flush=True)
        end = snapshot(watched)
        elapsed = time.monotonic() - t0
        verdicts = {}
        for name in watched:
            w, e = warm[name], end[name]
            limit = w["rss_kib"] * (1 + RSS_MARGIN_RATIO) + RSS_MARGIN_KIB
            verdicts[name] = {
                "fds_ok": e["fds"] - w["fds"] <= FD_MARGIN,
                "rss_ok": e["rss_kib"] <= limit,
                "fds_ratio": e["fds"] / w["fds"],
                "rss_ratio": e["rss_kib"] / w["rss_kib"],
            }
        ok = (all(v["fds_ok"] and v["rss_ok"] for v in verdicts.values()) and not errors
              and not churn.failures and all(p.poll() is None for p in watched.values()))
        result = {
            "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "requests_measured": measured, "requests_warmup": warm_requests,
            "churn": churn.__dict__, "wrk_errors": errors, "elapsed_s": round(elapsed, 1),
            "warm": warm, "end": end, "verdicts": verdicts, "ok": ok,
        }
        out = Path(args.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        path = out / f"soak-{datetime.datetime.now():%Y-%m-%d-%H%M%S}.json"
        path.write_text(json.dumps(result, indent=2))
        print(f"\nsoak: {measured:,} requests through one tunnel (+{warm_requests:,} warm-up) "
              f"in {elapsed:.0f} s; {churn.started} other clients came and went "
              f"({churn.killed} killed, {churn.stopped} stopped), {churn.requests:,} requests "
              f"through them")
        print(f"{'process':<10} {'fds warm':>9} {'fds end':>8} {'ratio':>6}   "
              f"{'RSS warm':>10} {'RSS end':>10} {'ratio':>6}")
        for name in watched:
            w, e, v = warm[name], end[name], verdicts[name]
            print(f"{name:<10} {w['fds']:>9} {e['fds']:>8} {v['fds_ratio']:>5.2f}x   "
                  f"{w['rss_kib'] / 1024:>7.1f} MiB {e['rss_kib'] / 1024:>6.1f} MiB "
                  f"{v['rss_ratio']:>5.2f}x  {'ok' if v['fds_ok'] and v['rss_ok'] else 'GREW'}")
        if errors:
            print(f"wrk errors: {errors}")
        for f in churn.failures[:10]:
            print(f"churn failure: {f}")
        print(f"soak: {'passed' if ok else 'FAILED'} (margins: +{FD_MARGIN} fds, "
              f"+{RSS_MARGIN_RATIO:.0%} +{RSS_MARGIN_KIB // 1024} MiB RSS); details in {path}")
    except KeyboardInterrupt:
        print("soak: interrupted", file=sys.stderr)
    finally:
        stop.set()
        sup.stop_all()
        if ok:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"soak: logs kept in {tmp / 'logs'}", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
