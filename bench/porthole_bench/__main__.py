"""porthole's benchmark suite: python3 -m porthole_bench BIN_DIR (see bench/README.md)."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import resource
import shutil
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path

from . import cluster, cost, h2, report, services, threads
from .procs import Supervisor
from .suite import Suite

BENCH = Path(__file__).resolve().parents[1]
WORKLOADS = ["keepalive", "newconn", "burst", "bulk", "scale", "memory", "inspect", "screen",
             "cluster", "cost", "threads", "h2"]
TITLES = {
    "keepalive": "1. keep-alive HTTP: wrk -t1 -c32 on a 1 KiB file (http and tcp tunnel)",
    "newconn": "2. a new connection per request: wrk -t1 -c32, Connection: close",
    "burst": "3. burst: 500 connections at once, one request each (3 rounds)",
    "bulk": "4. bulk: iperf3 through a tcp tunnel, 1 GiB curl download through an http tunnel",
    "scale": "5. scale: 10,000 idle public connections, then one request on each",
    "memory": "6. memory: server with 100 one-tunnel clients; one client",
    "inspect": "7. inspector on vs off: workload 1 through a client capturing every exchange",
    "screen": "8. status screen on vs off: workload 1 through a client drawing its screen on a pty",
    "cluster": "9. cluster: two portholed nodes on one etcd; owner, relayed, standby; failover; etcd",
    "cost": "10. cost per request: CPU and system calls of each process under workload 1's load",
    "h2": "12. HTTP/2 and gRPC: h2load -c10 -m10 h2c on a 1 KiB file, direct (nginx h2c) vs "
          "through an http tunnel; gRPC unary ping-pong direct vs through --upstream http2",
    "threads": "11. threads: portholed --threads 1 vs 2, HTTPS keep-alive through 4 one-thread "
               "clients, portholed the busiest process",
}


class Interrupted(BaseException):
    """SIGINT/SIGTERM/SIGHUP: not an Exception, so no workload swallows it."""


def _on_signal(signum, frame):
    raise Interrupted(signal.Signals(signum).name)


def raise_nofile() -> tuple[int, int]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def child_env() -> dict:
    env = {k: v for k, v in os.environ.items()
           if k.lower() not in ("http_proxy", "https_proxy", "all_proxy", "no_proxy")}
    env["NO_PROXY"] = env["no_proxy"] = "*"
    env.setdefault("PATH", "/usr/bin:/bin")
    if "/usr/sbin" not in env["PATH"].split(":"):
        env["PATH"] += ":/usr/sbin:/sbin"
    return env


def _has(w, target: str) -> bool:
    return isinstance(w, dict) and bool(w.get(target))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="bench/run", description=__doc__)
    ap.add_argument("bindir", nargs="?", default="build/bin",
                    help="folder with portholed and porthole (default build/bin)")
    ap.add_argument("--duration", type=int, default=6,
                    help="seconds per measured wrk run (default 6)")
    ap.add_argument("--warmup", type=int, default=1,
                    help="seconds of wrk warm-up before each measured run (default 1)")
    ap.add_argument("--only", default="",
                    help=f"comma-separated subset of {','.join(WORKLOADS)} "
                         "(a partial run does not rewrite bench/RESULTS.md)")
    ap.add_argument("--scale-conns", type=int, default=10000)
    ap.add_argument("--memory-clients", type=int, default=100)
    ap.add_argument("--out-dir", default=str(BENCH / "out"))
    ap.add_argument("--keep-tmp", action="store_true", help="keep the temp dir (configs, logs)")
    ap.add_argument("--threads", type=int, default=None,
                    help="run every portholed and porthole with --threads N (default: their "
                         "own default, one per core; workload 11 sets its own)")
    args = ap.parse_args(argv)

    bindir = Path(args.bindir).resolve()
    for prog in ("portholed", "porthole"):
        if not os.access(bindir / prog, os.X_OK):
            print(f"bench: {bindir / prog} not found: build first (make build)", file=sys.stderr)
            return 2
    only = [w for w in args.only.split(",") if w] or WORKLOADS
    bad = [w for w in only if w not in WORKLOADS]
    if bad:
        print(f"bench: unknown workload(s) {bad}; choose from {WORKLOADS}", file=sys.stderr)
        return 2
    env = child_env()
    os.environ["PATH"] = env["PATH"]
    missing = services.check_tools(["nginx", "wrk", "haproxy", "iperf3", "curl", "openssl",
                                    "truncate"])
    if missing:
        print(f"bench: missing {', '.join(missing)}: run scripts/install-deps --bench "
              "(or make bench)", file=sys.stderr)
        return 2

    nofile = raise_nofile()
    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)

    started = time.monotonic()
    now = datetime.datetime.now().astimezone()
    stamp = now.strftime("%Y-%m-%d-%H%M%S")
    tmp = Path(tempfile.mkdtemp(prefix="porthole-bench-"))
    logdir = tmp / "logs"
    logdir.mkdir()
    # Run a private copy of the binaries: a rebuild of BIN_DIR during the run
    # (others may be building) cannot mix two builds in one set of results.
    runbin = tmp / "bin"
    runbin.mkdir()
    for prog in ("portholed", "porthole"):
        shutil.copy2(bindir / prog, runbin / prog)
    vers = report.versions(runbin)
    vers["bindir"] = str(bindir)
    sup = Supervisor(logdir, env=env)
    sup.threads = args.threads
    suite = Suite(runbin, tmp, sup, args.duration, args.warmup)
    command = os.environ.get("PORTHOLE_BENCH_COMMAND") or " ".join(
        ["bench/run", *(argv if argv is not None else sys.argv[1:])])
    mach = report.machine()
    print(f"porthole benchmark, {now:%Y-%m-%d %H:%M %Z}, {mach['nproc']} CPUs "
          f"({mach['cpu_model']}), {mach['memory_mib']} MiB, kernel {mach['kernel']}")
    print(f"binaries {bindir} ({vers['porthole']}, commit {vers['git_commit']}"
          f"{', uncommitted changes in src/ or apps/' if vers['sources_modified'] else ''}); "
          f"temp dir {tmp}; open files limit {nofile[0]}")
    print(f"short runs: wrk {args.duration:g} s each after a {args.warmup:g} s warm-up, "
          f"iperf3 5 s, burst 3 rounds, scale bounded at ~120 s per target; expect a few "
          f"percent of run-to-run noise on this machine, more on 2 CPUs where the load "
          f"generator shares the cores with what it measures.")
    interrupted = None
    failed = False
    try:
        print("\n== set-up: nginx, iperf3, haproxy tcp and http chains, portholed, porthole "
              "http + tcp")
        suite.setup()
        for w in WORKLOADS:
            if w not in only:
                continue
            print(f"\n== {TITLES[w].replace('10,000', f'{args.scale_conns:,}')}")
            t0 = time.monotonic()
            marks = suite.log_marks()
            try:
                suite.check_tunnels(f"workload {w}")
                if w == "scale":
                    suite.w_scale(args.scale_conns)
                elif w == "memory":
                    suite.w_memory(args.memory_clients)
                elif w == "cluster":
                    cluster.w_cluster(suite)
                elif w == "cost":
                    cost.w_cost(suite)
                elif w == "threads":
                    threads.w_threads(suite)
                elif w == "h2":
                    h2.w_h2(suite)
                else:
                    getattr(suite, f"w_{w}")()
            except Interrupted:
                raise
            except Exception as e:  # record and go on with the next workload
                failed = True
                suite.errors[w] = f"{type(e).__name__}: {e}"
                print(f"  FAILED: {type(e).__name__}: {e}", file=sys.stderr)
                traceback.print_exc()
            logged = suite.log_since(marks)
            if logged:
                suite.results.setdefault("logged_during", {})[w] = logged
                for name, lg in logged.items():
                    print(f"  NOTE: {name} logged during this workload: " + "; ".join(
                        f"{n}x {m[:100]}" for m, n in lg["top"].items()))
            print(f"  ({time.monotonic() - t0:.0f} s)")
    except Interrupted as e:
        interrupted = str(e)
        print(f"\nbench: interrupted ({e}); stopping everything", file=sys.stderr)
    except Exception as e:
        failed = True
        suite.errors["setup"] = f"{type(e).__name__}: {e}"
        print(f"\nbench: set-up failed: {type(e).__name__}: {e}", file=sys.stderr)
    finally:
        # Ignore further signals while stopping what was started.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        errs = sup.stop_all()
        for e in errs:
            print(f"bench: while stopping: {e}", file=sys.stderr)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)

    try:
        suite.results["logs"] = suite.log_summaries()
    except Exception as e:  # noqa: BLE001
        print(f"bench: reading logs: {e!r}", file=sys.stderr)
    wall = time.monotonic() - started
    keep = args.keep_tmp or failed or interrupted
    saved_logs = None
    if keep:
        saved_logs = Path(args.out_dir) / f"logs-{stamp}"
        saved_logs.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(logdir, saved_logs, dirs_exist_ok=True)
        for sub in ("nginx", "haproxy"):
            for f in (tmp / sub).glob("*.c*") if (tmp / sub).exists() else []:
                shutil.copy(f, saved_logs)
    shutil.rmtree(tmp, ignore_errors=True)
    if interrupted:
        print(f"bench: logs kept in {saved_logs}", file=sys.stderr)
        return 130

    if "inspect" in suite.results:
        suite.notes.append(
            "inspector: workload 7 runs two extra http tunnel clients of the main portholed, "
            "one with --inspect-addr disabled and one with --inspect-addr 127.0.0.1:0 "
            "--inspect-db <temp file> (default capture settings: last 1000 kept, bodies up to "
            "1 MiB); every other workload runs its clients with the inspector disabled.")
    if "scale" in suite.results and suite.results["scale"].get("porthole"):
        suite.notes.append(
            "scale: the portholed under test runs with --read-header-timeout 60 (default 10) "
            "so that connections opened first are still idle, not answered 408, when the "
            "last ones open, and with --max-public-conns-per-ip 0 and --max-conns-per-client "
            "0 (no limit; defaults 1024 and 4096): every connection comes from 127.0.0.1 and "
            "goes to one client, and the workload measures holding them, not the limits; "
            "everything else runs with default options.")
    hs = (suite.results.get("scale") or {}).get("haproxy-tcp")
    if hs and hs.get("ok", 0) < hs.get("n", 0):
        suite.notes.append(
            "scale, haproxy-tcp: haproxy sizes its maxconn from the open-file limit (two files per "
            "connection in mode tcp), so under this machine's limit the public haproxy holds "
            "just under 10,000 connections; the connections beyond wait unaccepted, which is "
            "what its timeouts above are.")
    suite.notes.append("scale, RSS per connection: growth of the two processes on the path "
                       "(portholed + porthole; public + inner haproxy) over their RSS before, "
                       "divided by the connections alive in that phase; 'held' is read 6 s "
                       "after the last response (porthole trims its heap every 5 s).")
    if "cluster" in suite.results:
        suite.notes.append(
            "cluster: nodes n1 (127.0.0.1) and n2 (127.0.0.2) on one etcd member "
            f"({suite.results['cluster'].get('etcd_version')}), default lease TTL (5 s) and "
            "options otherwise; each node listens on its own IP, presents the same public dev "
            "CA (n1's, copied), and has a certificate of the run's own cluster CA. The clients "
            "are given n1's address only: \"c\" with --no-standby, \"s\" as by default (its "
            "standby connection on n2). Failover runs on fresh node pairs, one per round, "
            "each under a cluster prefix of its own in the same etcd, three rounds with "
            "--no-standby and three with a standby connection.")
    if any(_has(suite.results.get(w), "haproxy-http") for w in ("keepalive", "newconn",
                                                                 "download")) \
            or "cost" in suite.results:
        suite.notes.append(
            "haproxy-http: two haproxy processes in mode http (default threads), the public "
            "one with option forwardfor and http-reuse always to the inner one over TLS (ssl "
            "verify none), the inner one (bind ... ssl crt) with http-reuse always to nginx; "
            "keep-alive on every hop. haproxy-tcp: the same two hops in mode tcp, one "
            "connection per hop for each public connection (called \"haproxy\" in results "
            "written before haproxy-http was added).")
    if _has(suite.results.get("keepalive"), "porthole-tcp"):
        suite.notes.append(
            "keep-alive, tcp tunnel: the same wrk load through a `porthole tcp` client of the "
            "main portholed whose local service is nginx (porthole-tcp), compared with "
            "haproxy-tcp; the http tunnel's rows compare with both chains.")
    if "cost" in suite.results:
        c = suite.results["cost"]
        suite.notes.append(
            f"cost per request: a fresh portholed with two http tunnel clients (inspector off; "
            f"on, capturing into a temp file), then the haproxy-http chain; each under {c['load']}. "
            f"CPU from {c['cpu_source']}.")
    if "threads" in suite.results:
        t = suite.results["threads"]
        suite.notes.append(
            f"threads: two fresh portholed, --threads 1 and --threads 2 (default options "
            f"otherwise), each with {t['clients']} porthole http clients of nginx (--threads "
            f"{t['client_threads']}, --proto https, a subdomain each); {t['load']}. wrk connects "
            f"to 127.0.0.1 and sends the tunnel's name as SNI and Host (a Lua script resolves "
            f"every name to 127.0.0.1). No taskset or CPU limit: on {t['cpus']} CPUs wrk, the "
            f"clients and nginx share the cores with portholed, so the ratio shows what a "
            f"second thread gains on this machine, not on an otherwise idle server.")
    suite.notes.append("all targets: porthole http tunnels use --proto http (workload 11's "
                       "--proto https); portholed and "
                       "porthole run with their default pool size (10) and log level (info).")

    results = suite.results
    tgt = report.targets(results)
    det = report.details(results)
    durations = (f"wrk {args.duration:g} s per run after a {args.warmup:g} s warm-up; iperf3 "
                 f"5 s; burst 3 rounds of 500; scale {args.scale_conns} connections "
                 f"(open phase <= 40 s, requests <= 45 s); cost: wrk {args.duration:g} s "
                 f"counted, strace {cost.strace_seconds(args.duration)} s; threads: "
                 f"{threads.CLIENTS} wrk at once {args.duration:g} s after {args.warmup:g} s, "
                 f"3 rounds per thread count")
    doc = {"date": now.isoformat(timespec="seconds"), "command": command,
           "wall_time_s": round(wall, 1), "machine": mach, "versions": vers,
           "durations": durations, "config": getattr(suite, "config", None),
           "results": results, "details": det, "targets": tgt, "notes": suite.notes,
           "errors": suite.errors, "logs_kept": str(saved_logs) if saved_logs else None}

    if report.rows(results):
        print("\n== results (ratios: porthole / baseline; for rates higher is better, for "
              "latencies lower is better)\n")
        print(report.render_table(results))
    if results.get("cluster"):
        print("\n== cluster (workload 9): two portholed nodes on one etcd; owner node = the one "
              "the tunnel's client is connected to, relayed = through the other node to a "
              "--no-standby client, standby = through the other node to a client's standby "
              "connection; ratios relayed / owner, standby / owner and owner / direct\n")
        print(report.render_cluster(results))
    if det:
        print()
        for line in det:
            print(line)
    if results.get("cost"):
        print("\n== cost per request (workload 10): each process on the path under workload 1's "
              "keep-alive load, per request (wrk's count); system calls from perf's "
              "tracepoints in the same window, and by name from strace in a shorter window of "
              "its own (which slows the process down)\n")
        print(report.render_cost(results))
    if results.get("h2"):
        print("\n== HTTP/2 and gRPC (workload 12)\n")
        for line in report.h2_lines(results):
            print(f"  {line}")
    if results.get("threads"):
        print("\n== threads (workload 11): portholed --threads 1 vs --threads 2 under the same "
              "HTTPS keep-alive load, each thread count's median round; CPU in seconds over the "
              "wrk run and in cores (CPU s / wall s); ratio 2 threads / 1 thread\n")
        print(report.render_threads(results))
    print("\n== targets\n")
    print(report.render_targets(tgt))
    print("\n== notes\n")
    for n in suite.notes:
        print(f"  - {n}")
    if suite.errors:
        print("\n== workloads that failed to run\n")
        for k, v in suite.errors.items():
            print(f"  - {k}: {v}")

    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    jpath = out_dir / f"results-{stamp}.json"
    jpath.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    print(f"\nJSON: {jpath}")
    if only == WORKLOADS:
        (BENCH / "RESULTS.md").write_text(report.render_markdown(doc))
        print(f"Markdown: {BENCH / 'RESULTS.md'}")
    else:
        print("(partial run: bench/RESULTS.md not rewritten)")
    if saved_logs:
        print(f"logs: {saved_logs}")
    print(f"wall time: {wall:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
