"""Workload 12: HTTP/2 and gRPC.

- h2load (Debian nghttp2-client), 10 connections x 10 streams each, h2c with
  prior knowledge on workload 1's 1 KiB file: directly to an nginx that
  speaks h2c itself, and through portholed's public HTTP port to workload
  1's http tunnel (portholed ends HTTP/2; the tunnel and nginx see
  HTTP/1.1). Interleaved rounds, the median round by requests/s; p50 and p99
  from h2load's per-request log.
- gRPC unary ping-pong (Debian python3-grpcio): one client making calls one
  after another, directly to a gRPC server and through an http tunnel with
  --upstream http2 over h2c; calls/s.
"""

from __future__ import annotations

import re
import shutil
import sys
import time
from pathlib import Path

from . import services
from .suite import WRK_ROUNDS

STREAMS = 10   # h2load -m
CONNS = 10     # h2load -c

GRPC_SERVER = r"""
import sys
from concurrent import futures
import grpc
h = grpc.method_handlers_generic_handler("b.Ping", {
    "Ping": grpc.unary_unary_rpc_method_handler(lambda req, ctx: req)})
s = grpc.server(futures.ThreadPoolExecutor(4), handlers=(h,))
print(s.add_insecure_port("127.0.0.1:0"), flush=True)
s.start()
s.wait_for_termination()
"""

GRPC_CLIENT = r"""
import sys, time
import grpc
port, authority, seconds = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
ch = grpc.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.default_authority", authority)])
ping = ch.unary_unary("/b.Ping/Ping")
for _ in range(200):
    ping(b"x" * 64, timeout=10)  # warm-up
n, start = 0, time.monotonic()
while time.monotonic() - start < seconds:
    ping(b"x" * 64, timeout=10)
    n += 1
print(f"calls {n} seconds {time.monotonic() - start:.3f}", flush=True)
"""


def _h2load(suite, port: int, authority: str, seconds: float, log: Path) -> dict:
    log.unlink(missing_ok=True)
    argv = ["h2load", "-c", str(CONNS), "-m", str(STREAMS), "-D", f"{seconds:g}",
            "--warm-up-time", f"{max(suite.warmup, 1):g}", "--log-file", log,
            "-H", f":authority: {authority}", f"http://127.0.0.1:{port}/{services.SMALL_FILE}"]
    rc, out = suite.sup.run("h2load", argv, seconds + suite.warmup + 60)
    m = re.search(r"finished in ([\d.]+)s, ([\d.]+) req/s", out)
    ok = re.search(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed",
                   out)
    if rc != 0 or not m or not ok:
        raise RuntimeError(f"h2load exited with {rc}:\n{out[-800:]}")
    durations = sorted(int(line.split("\t")[2]) for line in log.read_text().splitlines()
                       if line.count("\t") >= 2)
    pct = (lambda q: durations[min(len(durations) - 1, int(q * len(durations)))] / 1000
           if durations else None)
    return {"rps": float(m.group(2)), "succeeded": int(ok.group(2)), "failed": int(ok.group(3)),
            "p50_ms": pct(0.50), "p99_ms": pct(0.99)}


def _grpc_rate(suite, port: int, authority: str, seconds: float) -> float:
    rc, out = suite.sup.run("grpc-ping", [sys.executable, "-c", GRPC_CLIENT, str(port), authority,
                                          f"{seconds:g}"], seconds + 60)
    m = re.search(r"calls (\d+) seconds ([\d.]+)", out)
    if rc != 0 or not m:
        raise RuntimeError(f"the gRPC client exited with {rc}:\n{out[-800:]}")
    return int(m.group(1)) / float(m.group(2))


def w_h2(suite) -> None:
    if not shutil.which("h2load"):
        raise RuntimeError("h2load is not installed (Debian nghttp2-client)")
    direct_port = services.start_nginx(suite.sup, suite.tmp, suite.www, "nginx-h2c",
                                       "http2").port
    targets = {"direct": (direct_port, f"127.0.0.1:{direct_port}"),
               "porthole": (suite.server.http_port, suite.web.host)}
    rounds: dict[str, list[dict]] = {t: [] for t in targets}
    for rnd in range(WRK_ROUNDS):
        for target, (port, authority) in targets.items():
            r = _h2load(suite, port, authority, suite.duration, suite.tmp / f"h2load-{target}.log")
            rounds[target].append(r)
            suite.log(f"  round {rnd + 1}/{WRK_ROUNDS} h2load {target:9s} {r['rps']:10.0f} req/s  "
                      f"p50 {r['p50_ms']:7.2f} ms  p99 {r['p99_ms']:7.2f} ms  "
                      f"failed {r['failed']}")
            time.sleep(1)
    h2 = {}
    for target, rs in rounds.items():
        median = dict(sorted(rs, key=lambda r: r["rps"])[len(rs) // 2])
        median["rounds_rps"] = [round(r["rps"]) for r in rs]
        h2[target] = median

    grpc_server = suite.sup.start("grpc-server", [sys.executable, "-c", GRPC_SERVER])
    gport = int(grpc_server.wait_for(r"^(\d+)$", timeout=20).group(1))
    tunnel = services.start_porthole(suite.sup, suite.bindir, suite.server, "http", gport,
                                     subdomain="grpc", name="porthole-grpc",
                                     upstream="http2")
    grpc_targets = {"direct": (gport, f"127.0.0.1:{gport}"),
                    "porthole": (suite.server.http_port, tunnel.host)}
    grpc_rounds: dict[str, list[float]] = {t: [] for t in grpc_targets}
    for rnd in range(WRK_ROUNDS):
        for target, (port, authority) in grpc_targets.items():
            rate = _grpc_rate(suite, port, authority, suite.duration)
            grpc_rounds[target].append(rate)
            suite.log(f"  round {rnd + 1}/{WRK_ROUNDS} gRPC unary {target:9s} {rate:8.0f} calls/s")
    grpc = {t: {"calls_per_s": sorted(rs)[len(rs) // 2], "rounds": [round(x) for x in rs]}
            for t, rs in grpc_rounds.items()}
    suite.sup.stop(tunnel.proc)
    suite.sup.stop(grpc_server)
    suite.results["h2"] = {
        "h2load": h2, "grpc": grpc, "streams": STREAMS, "conns": CONNS,
        "ratio_rps": h2["porthole"]["rps"] / h2["direct"]["rps"],
        "ratio_p99": (h2["porthole"]["p99_ms"] / h2["direct"]["p99_ms"]
                      if h2["direct"]["p99_ms"] else None),
        "ratio_grpc": grpc["porthole"]["calls_per_s"] / grpc["direct"]["calls_per_s"],
    }
