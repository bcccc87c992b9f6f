"""The workloads. Each is measured against these targets in the same run:

  direct        the client talks to the origin (nginx or iperf3) itself;
  porthole      through portholed and a porthole client (public port -> TLS
                tunnel -> local origin), an http tunnel for HTTP and a tcp
                tunnel for iperf3;
  porthole-tcp  (keep-alive only) HTTP through a porthole tcp tunnel;
  haproxy-tcp   through the two-hop haproxy chain in mode tcp (public
                haproxy -> TLS -> inner haproxy, bind ssl -> origin): the
                cost any TLS tunnel pays, the baseline of a tcp tunnel;
  haproxy-http  (HTTP workloads) the same two hops in mode http, with
                X-Forwarded-For and connections kept and reused on each hop:
                the baseline of an http tunnel.
"""

from __future__ import annotations

import asyncio
import re
import shlex
import sqlite3
import subprocess
import time
from dataclasses import asdict
from pathlib import Path

from . import loadgen, services
from .procs import Supervisor, cpu_seconds, open_fds, rss_kib

WRK_ROUNDS = 3  # interleaved rounds per wrk workload; the median is reported
# Targets by workload, in the order of the interleaved rounds. "haproxy-tcp"
# was called "haproxy" in results written before haproxy-http was added.
TARGETS = ("direct", "porthole", "haproxy-tcp")  # burst, iperf3, scale
HTTP_TARGETS = ("direct", "porthole", "haproxy-tcp", "haproxy-http")  # newconn, download
KEEPALIVE_TARGETS = ("direct", "porthole", "porthole-tcp", "haproxy-tcp", "haproxy-http")


class Sampler:
    """Peak resident memory of some processes, sampled while a load runs, and
    the CPU time they used."""

    def __init__(self, procs: dict):
        self.procs = procs
        self.peak = {k: 0 for k in procs}
        self.cpu0 = {k: p.cpu_seconds() for k, p in procs.items()}

    def __call__(self):
        for k, p in self.procs.items():
            r = p.rss_kib()
            if r and r > self.peak[k]:
                self.peak[k] = r

    def cpu_used(self) -> dict:
        out = {}
        for k, p in self.procs.items():
            c = p.cpu_seconds()
            out[k] = None if c is None or self.cpu0[k] is None else round(c - self.cpu0[k], 2)
        return out


class _Pid:
    """A process the suite did not start itself (a child of one it did)."""

    def __init__(self, pid: int):
        self.pid = pid

    def rss_kib(self):
        return rss_kib(self.pid)

    def cpu_seconds(self):
        return cpu_seconds(self.pid)


def _log_summary(text: str, limit: int = 6) -> dict:
    """Distinct warning/error messages in a log, with counts (timestamps,
    numbers and addresses folded so that repeats group together)."""
    counts: dict[str, int] = {}
    for line in text.splitlines():
        if not re.search(r"\[(warning|error|critical)\]", line):
            continue
        if "no --authtokens file" in line:  # expected: the suite runs without tokens
            continue
        msg = re.sub(r"^\[[^\]]*\]\s*", "", line)
        msg = re.sub(r"\b[0-9a-f]{32}\b", "<id>", msg)
        msg = re.sub(r"\d+(\.\d+)*(:\d+)?", "N", msg)
        counts[msg] = counts.get(msg, 0) + 1
    top = sorted(counts.items(), key=lambda kv: -kv[1])[:limit]
    return {"distinct": len(counts), "total": sum(counts.values()), "top": dict(top)}


class Suite:
    def __init__(self, bindir: Path, tmp: Path, sup: Supervisor, duration: float,
                 warmup: float, log=print):
        self.bindir = bindir
        self.tmp = tmp
        self.sup = sup
        self.duration = duration
        self.warmup = warmup
        self.log = log
        self.results: dict = {}
        self.notes: list[str] = []
        self.errors: dict[str, str] = {}

    # -- set-up -------------------------------------------------------------

    def setup(self) -> None:
        t0 = time.monotonic()
        self.www = services.make_site(self.tmp)
        self.nginx = services.start_nginx(self.sup, self.tmp, self.www)
        self.iperf = services.start_iperf3(self.sup)
        self.chain = services.start_haproxy_chain(
            self.sup, self.tmp, {"web": self.nginx.port, "iperf": self.iperf.port})
        self.hchain = services.start_haproxy_http_chain(self.sup, self.tmp,
                                                        {"web": self.nginx.port})
        self.server = services.start_portholed(self.sup, self.bindir, self.tmp)
        self.web = services.start_porthole(self.sup, self.bindir, self.server, "http",
                                           self.nginx.port, subdomain="b", name="porthole-http")
        self.tcp = services.start_porthole(self.sup, self.bindir, self.server, "tcp",
                                           self.iperf.port, name="porthole-tcp")
        # Workload 1's HTTP through a tcp tunnel: a client of its own, to nginx.
        self.tcpweb = services.start_porthole(self.sup, self.bindir, self.server, "tcp",
                                              self.nginx.port, name="porthole-tcp-web")
        self.watched = {"portholed": self.server.proc, "porthole-http": self.web.proc,
                        "porthole-tcp": self.tcp.proc, "porthole-tcp-web": self.tcpweb.proc}
        self.close_lua = self.tmp / "close.lua"
        self.close_lua.write_text(loadgen.CLOSE_LUA)
        time.sleep(1)  # proxy pools filled
        self.log(f"set-up done in {time.monotonic() - t0:.1f} s: nginx :{self.nginx.port}, "
                 f"iperf3 :{self.iperf.port}, haproxy-tcp chain :{self.chain.ports['web']} "
                 f"(web) :{self.chain.ports['iperf']} (iperf3), haproxy-http chain "
                 f":{self.hchain.ports['web']}, portholed http "
                 f":{self.server.http_port} tunnel :{self.server.tunnel_port}, "
                 f"tunnels {self.web.url}, {self.tcp.url} (iperf3) and {self.tcpweb.url} "
                 f"(nginx)")
        self.config = {
            "portholed_args": self.server.args,
            "porthole_http": self.web.proc.argv[1:],
            "porthole_tcp": self.tcp.proc.argv[1:],
            "porthole_tcp_web": self.tcpweb.proc.argv[1:],
            "nginx_conf": (self.tmp / "nginx" / "nginx.conf").read_text(),
            # haproxy-tcp's (the keys of the time it was the only chain)
            "haproxy_public_cfg": self.chain.public_cfg,
            "haproxy_inner_cfg": self.chain.inner_cfg,
            "haproxy_http_public_cfg": self.hchain.public_cfg,
            "haproxy_http_inner_cfg": self.hchain.inner_cfg,
        }

    def check_tunnels(self, before: str) -> None:
        """Before each workload: the main portholed and both tunnel clients must
        still run. One that has exited is reported (with the last line of its
        log) and started again, so one failure does not void later workloads."""
        if self.server.proc.poll() is not None:
            raise RuntimeError(f"portholed exited (code {self.server.proc.poll()}) before "
                               f"{before}:\n{self.server.proc.tail(10)}")
        for attr, kind, port, sub, name in (
                ("web", "http", self.nginx.port, "b", "porthole-http"),
                ("tcp", "tcp", self.iperf.port, None, "porthole-tcp"),
                ("tcpweb", "tcp", self.nginx.port, None, "porthole-tcp-web")):
            t = getattr(self, attr)
            rc = t.proc.poll()
            if rc is None:
                continue
            last = (t.proc.text().strip().splitlines() or ["(no output)"])[-1]
            msg = (f"{name} client exited with code {rc} before {before} "
                   f"(last log line: {last.strip()}); restarted it")
            self.notes.append(msg)
            self.log(f"  NOTE: {msg}")
            nt = services.start_porthole(self.sup, self.bindir, self.server, kind, port,
                                         subdomain=sub, name=name)
            setattr(self, attr, nt)
            self.watched[f"{name} (restart {len(self.watched)})"] = nt.proc
            time.sleep(1)

    def log_marks(self) -> dict:
        return {name: len(p.text()) for name, p in getattr(self, "watched", {}).items()}

    def log_since(self, marks: dict) -> dict:
        """Warnings and errors the main portholed and tunnel clients logged
        since log_marks(): a reconnect in the middle of a measurement."""
        out = {}
        for name, p in getattr(self, "watched", {}).items():
            lg = _log_summary(p.text()[marks.get(name, 0):])
            if lg["total"]:
                out[name] = lg
        return out

    def log_summaries(self) -> dict:
        return {name: _log_summary(p.text()) for name, p in getattr(self, "watched", {}).items()}

    def http_endpoint(self, target: str) -> tuple[int, str]:
        """(public port, Host header) of the web origin through `target`."""
        if target == "direct":
            return self.nginx.port, f"127.0.0.1:{self.nginx.port}"
        if target == "porthole":
            return self.server.http_port, self.web.host
        if target == "porthole-tcp":
            return self.tcpweb.public_port, f"127.0.0.1:{self.tcpweb.public_port}"
        if target == "haproxy-tcp":
            return self.chain.ports["web"], f"127.0.0.1:{self.chain.ports['web']}"
        if target == "haproxy-http":
            return self.hchain.ports["web"], f"127.0.0.1:{self.hchain.ports['web']}"
        raise ValueError(f"no such target: {target}")

    def tunnel_procs(self, target: str = "porthole") -> dict:
        client = self.tcpweb if target == "porthole-tcp" else self.web
        return {"server": self.server.proc, "client": client.proc}

    # -- 1 and 2: wrk --------------------------------------------------------

    def _wrk_workload(self, key: str, script: Path | None, targets: tuple) -> None:
        """Runs wrk against each target in turn, WRK_ROUNDS times over
        (direct, porthole, ..., haproxy-http, direct, ...), and reports each
        target's median round: on a shared machine one run of one target can
        be off by a third, and interleaving spreads slow spells over all
        targets."""
        rounds: dict[str, list[dict]] = {t: [] for t in targets}
        for rnd in range(WRK_ROUNDS):
            for target in targets:
                port, host = self.http_endpoint(target)
                url = f"http://127.0.0.1:{port}/{services.SMALL_FILE}"
                if self.warmup:
                    loadgen.wrk(self.sup, url, host, self.warmup, script=script)
                    time.sleep(0.5)
                sampler = None
                if target in ("porthole", "porthole-tcp"):
                    procs = self.tunnel_procs(target)
                    idle = {k: p.rss_kib() for k, p in procs.items()}
                    sampler = Sampler(procs)
                r = loadgen.wrk(self.sup, url, host, self.duration, script=script,
                                sample=sampler)
                if sampler:
                    r["rss_idle_kib"] = idle
                    r["rss_peak_kib"] = sampler.peak
                    r["cpu_s"] = sampler.cpu_used()
                rounds[target].append(r)
                self.log(f"  round {rnd + 1}/{WRK_ROUNDS} {target:12s} {r['rps']:10.0f} req/s  "
                         f"p50 {r.get('p50_ms', 0):7.2f} ms  p99 {r.get('p99_ms', 0):7.2f} ms  "
                         f"errors {r['errors'] or 'none'}")
                time.sleep(1)
        out = {}
        for target, rs in rounds.items():
            ordered = sorted(rs, key=lambda r: r["rps"])
            median = dict(ordered[len(ordered) // 2])
            for metric in ("p50_ms", "p99_ms"):
                values = sorted(r[metric] for r in rs if r.get(metric) is not None)
                if values:
                    median[metric] = values[len(values) // 2]
            median["rounds_rps"] = [round(r["rps"]) for r in rs]
            out[target] = median
        self.results[key] = out

    def w_keepalive(self):
        self._wrk_workload("keepalive", None, KEEPALIVE_TARGETS)

    def w_newconn(self):
        self._wrk_workload("newconn", self.close_lua, HTTP_TARGETS)

    # -- 3: burst -------------------------------------------------------------

    def w_burst(self, n: int = 500, rounds: int = 3):
        out = {}
        for target in TARGETS:
            port, host = self.http_endpoint(target)
            runs = []
            for _ in range(rounds):
                runs.append(asyncio.run(loadgen.burst(
                    port, host, f"/{services.SMALL_FILE}", n, services.SMALL_SIZE)))
                time.sleep(1)
            fails: dict[str, int] = {}
            for r in runs:
                for k, v in r["failures"].items():
                    fails[k] = fails.get(k, 0) + v
            p99s = sorted(r["ttfb_p99_ms"] for r in runs if r["ttfb_p99_ms"] is not None)
            agg = {"n": n, "rounds": rounds, "ok": sum(r["ok"] for r in runs),
                   "attempted": n * rounds, "failures": fails,
                   "all_ok": all(r["ok"] == n for r in runs),
                   "ttfb_p99_ms": p99s[len(p99s) // 2] if p99s else None,
                   "ttfb_p99_ms_rounds": [r["ttfb_p99_ms"] for r in runs],
                   "ttfb_p50_ms_rounds": [r["ttfb_p50_ms"] for r in runs],
                   "wall_s_rounds": [round(r["wall_s"], 3) for r in runs]}
            out[target] = agg
            self.log(f"  {target:12s} ok {agg['ok']}/{agg['attempted']}  p99 TTFB per round "
                     f"{', '.join(_f(x) for x in agg['ttfb_p99_ms_rounds'])} ms  "
                     f"failures {fails or 'none'}")
        self.results["burst"] = out

    # -- 4: bulk --------------------------------------------------------------

    def w_bulk(self, seconds: int = 5):
        ip = {}
        ports = {"direct": self.iperf.port, "porthole": self.tcp.public_port,
                 "haproxy-tcp": self.chain.ports["iperf"]}
        # Interleaved rounds, median reported, as for wrk (see _wrk_workload).
        runs: dict[str, list[dict]] = {t: [] for t in TARGETS}
        for rnd in range(WRK_ROUNDS):
            for target in TARGETS:
                r = loadgen.iperf3_client(self.sup, ports[target], seconds)
                runs[target].append(r)
                self.log(f"  round {rnd + 1}/{WRK_ROUNDS} iperf3 {target:12s} " +
                         (f"{r['Gbps']:7.2f} Gbit/s" if r["ok"] else f"FAILED: {r['error']}"))
                time.sleep(1)
        for target, rs in runs.items():
            failed = [r for r in rs if not r["ok"]]
            if failed:
                ip[target] = failed[0]
                continue
            ordered = sorted(rs, key=lambda r: r["Gbps"])
            ip[target] = dict(ordered[len(ordered) // 2])
            ip[target]["rounds_Gbps"] = [round(r["Gbps"], 2) for r in rs]
        dl = {}
        for target in HTTP_TARGETS:
            port, host = self.http_endpoint(target)
            r = loadgen.curl_download(self.sup, f"http://127.0.0.1:{port}/{services.BIG_FILE}",
                                      host, services.BIG_SIZE)
            dl[target] = r
            self.log(f"  1 GiB    {target:12s} " + (f"{r['MBps']:7.0f} MB/s" if r["ok"]
                                                     else f"FAILED: {r['error']}"))
            time.sleep(0.5)
        self.results["iperf3"] = ip
        self.results["download"] = dl

    # -- 5: scale --------------------------------------------------------------

    def w_scale(self, n: int = 10000):
        out = {}
        for target in TARGETS:
            t0 = time.monotonic()
            if target == "porthole":
                # A fresh server and client: memory deltas are this workload's own.
                # Its limits are set to what is measured: all n connections
                # come from 127.0.0.1 (past the default per-address limit,
                # 1024) and go to one client (past the default per-client
                # limit, 4096); connections opened first must still be idle,
                # not answered 408, when the last ones open.
                extra = scale_portholed_args()
                srv = services.start_portholed(self.sup, self.bindir, self.tmp,
                                               name="portholed-scale", extra=extra)
                cli = services.start_porthole(self.sup, self.bindir, srv, "http",
                                              self.nginx.port, subdomain="s",
                                              name="porthole-scale")
                time.sleep(2)
                procs = {"server": srv.proc, "client": cli.proc}
                port, host = srv.http_port, cli.host
            elif target == "haproxy-tcp":
                procs = {"server": self.chain.public, "client": self.chain.inner}
                port, host = self.http_endpoint(target)
            else:
                procs = {}
                port, host = self.http_endpoint(target)
            mem = {"before": {k: p.rss_kib() for k, p in procs.items()}}
            fds = {"before": {k: open_fds(p.pid) for k, p in procs.items()}}

            def on_phase(name, procs=procs, mem=mem, fds=fds):
                mem[name] = {k: p.rss_kib() for k, p in procs.items()}
                fds[name] = {k: open_fds(p.pid) for k, p in procs.items()}

            r = asyncio.run(loadgen.scale(port, host, f"/{services.SMALL_FILE}", n,
                                          services.SMALL_SIZE, on_phase))
            d = asdict(r)
            d["rss_kib"] = mem
            d["open_fds"] = fds
            alive_idle = r.opened - r.closed_while_idle
            if procs and all(mem.get(ph) for ph in ("before", "idle", "held")):
                def per_conn(phase, count):
                    if not count or any(mem[phase][k] is None or mem["before"][k] is None
                                        for k in procs):
                        return None
                    delta = sum(mem[phase][k] - mem["before"][k] for k in procs)
                    return round(delta / count, 2)
                d["kib_per_conn_idle"] = per_conn("idle", alive_idle)
                d["kib_per_conn_held"] = per_conn("held", r.ok)
            if target == "porthole":
                d["logs"] = {"server": _log_summary(srv.proc.text()),
                             "client": _log_summary(cli.proc.text())}
                d["still_running"] = {"server": srv.proc.poll() is None,
                                      "client": cli.proc.poll() is None}
                d["portholed_extra_args"] = extra
                self.sup.stop_many([cli.proc, srv.proc])
            d["wall_s"] = round(time.monotonic() - t0, 1)
            out[target] = d
            self.log(f"  {target:12s} opened {r.opened}/{n} in {r.open_s:.1f} s, ok {r.ok}/{n}, "
                     f"failures {r.failures or 'none'}, {d['wall_s']} s"
                     + (f", RSS/conn idle {d.get('kib_per_conn_idle')} KiB held "
                        f"{d.get('kib_per_conn_held')} KiB" if procs else ""))
            time.sleep(2)
        self.results["scale"] = out

    # -- 6: memory -------------------------------------------------------------

    def w_memory(self, clients: int = 100):
        # 100 clients from one address, each with a connection per thread:
        # the workload measures memory, not --max-tunnel-conns-per-ip.
        srv = services.start_portholed(self.sup, self.bindir, self.tmp, name="portholed-mem",
                                       extra=["--max-tunnel-conns-per-ip", "0"])
        time.sleep(0.5)
        base = srv.proc.rss_kib()
        tunnels = []
        try:
            for start in range(0, clients, 10):
                batch = [self.sup.start(f"porthole-m{i}", [
                    self.bindir / "porthole", "--server-addr", f"localhost:{srv.tunnel_port}", "--inspect-addr", "disabled",
                    "--trust-ca", srv.ca, "--log", "stdout", "http",
                    f"127.0.0.1:{self.nginx.port}", "--proto", "http", "--subdomain", f"m{i}"])
                    for i in range(start, min(clients, start + 10))]
                for p in batch:
                    p.wait_for(r"Forwarding ", timeout=30)
                tunnels += batch
            time.sleep(3)  # every pool filled
            srv_rss = srv.proc.rss_kib()
            cli_rss = sorted(p.rss_kib() or 0 for p in tunnels)
            one_fresh = tunnels[0].rss_kib()
            res = {"clients": clients, "tunnels_per_client": 1,
                   "server_rss_kib_no_clients": base, "server_rss_kib": srv_rss,
                   "server_kib_per_client": round((srv_rss - base) / clients, 1),
                   "server_open_fds": open_fds(srv.proc.pid),
                   "client_rss_kib_one": one_fresh,
                   "client_rss_kib_min": cli_rss[0], "client_rss_kib_max": cli_rss[-1],
                   "client_rss_kib_mean": round(sum(cli_rss) / len(cli_rss), 1)}
        finally:
            self.sup.stop_many(tunnels)
        try:
            res.update(self._one_client_many_tunnels(srv, clients))
        finally:
            self.sup.stop(srv.proc)
        ka = self.results.get("keepalive", {}).get("porthole", {})
        res["during_keepalive"] = {"idle_kib": ka.get("rss_idle_kib"),
                                   "peak_kib": ka.get("rss_peak_kib"),
                                   "cpu_s": ka.get("cpu_s")}
        self.results["memory"] = res
        self.notes.append(
            f"memory: 'idle client with {clients} tunnels' is one porthole process started with "
            f"`porthole start --all` on a config file of {clients} http tunnels, RSS 3 s after "
            f"the last came up; the server is also measured with {clients} client processes of "
            f"one tunnel each (--proto http, default pool size).")
        self.log(f"  server {base / 1024:.1f} MiB with no clients, {srv_rss / 1024:.1f} MiB with "
                 f"{clients} clients; one client {one_fresh / 1024:.1f} MiB "
                 f"(min {cli_rss[0] / 1024:.1f}, max {cli_rss[-1] / 1024:.1f})")

    def _one_client_many_tunnels(self, srv, n: int) -> dict:
        """One porthole process serving n http tunnels from a config file."""
        conf = self.tmp / f"porthole-{n}-tunnels.yml"
        conf.write_text("tunnels:\n" + "".join(
            f"  t{i}:\n    proto:\n      http: 127.0.0.1:{self.nginx.port}\n" for i in range(n)))
        p = self.sup.start(f"porthole-{n}-tunnels", [
            self.bindir / "porthole", "--config", conf, "--server-addr",
            f"localhost:{srv.tunnel_port}", "--inspect-addr", "disabled", "--trust-ca", srv.ca,
            "--log", "stdout", "start", "--all"])
        try:
            deadline = time.monotonic() + 60
            while p.text().count("Forwarding ") < n:
                if time.monotonic() > deadline or p.poll() is not None:
                    raise RuntimeError(f"{n}-tunnel client: only {p.text().count('Forwarding ')} "
                                       f"tunnels up; last output:\n{p.tail()}")
                time.sleep(0.1)
            time.sleep(3)
            rss = p.rss_kib()
        finally:
            self.sup.stop(p)
        self.log(f"  one client with {n} tunnels: {rss / 1024:.1f} MiB")
        return {"many_tunnels": n, "client_rss_kib_many_tunnels": rss}

    # -- 7: inspector on vs off -------------------------------------------------

    def w_inspect(self):
        """Workload 1 (keep-alive, 1 KiB, wrk -c32) through two fresh http
        tunnel clients of the main portholed, one with the inspector off and
        one capturing every exchange into a capture file of its own, in
        interleaved rounds (off, on, off, ...); each mode's median round is
        reported. Afterwards the capture file is read: every request wrk sent
        through the capturing client must be stored, or counted as dropped."""
        flag = self.inspector_flag()
        if not flag:
            self.notes.append("inspector on/off: skipped, the client has no --inspect-db.")
            self.log("  skipped: the client has no --inspect-db")
            return
        db = self.tmp / "inspect-captures.db"
        clients = {
            "off": services.start_porthole(self.sup, self.bindir, self.server, "http",
                                           self.nginx.port, subdomain="inspect-off",
                                           name="porthole-inspect-off"),
            "on": services.start_porthole(self.sup, self.bindir, self.server, "http",
                                          self.nginx.port, subdomain="inspect-on",
                                          name="porthole-inspect-on",
                                          inspect=["--inspect-addr", "127.0.0.1:0",
                                                   "--inspect-db", db]),
        }
        try:
            out, sent = self._on_off_rounds(clients, "inspector", counted="on")
            capture = _capture_counts(db, clients["on"].proc.text())
            # The capture writer stores what is still queued: wait for the
            # count to settle (bounded).
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                time.sleep(1)
                settled = _capture_counts(db, clients["on"].proc.text())
                if settled == capture:
                    break
                capture = settled
        finally:
            self.sup.stop_many([t.proc for t in clients.values()])
        capture["requests_sent"] = sent
        # wrk counts only the requests answered before it stopped; those still
        # in flight then are captured too (complete, or with an error).
        capture["unaccounted"] = max(0, sent - capture["stored"] - capture["dropped"]
                                     - capture["failed"])
        out["capture"] = capture
        self.results["inspect"] = out
        self.log(f"  median: off {out['off']['rps']:.0f} req/s, on {out['on']['rps']:.0f} req/s, "
                 f"on/off {_f(out['ratio'])}x")
        self.log(f"  capture: {sent} requests answered through the capturing client, "
                 f"{capture['stored']} exchanges stored ({capture['rows']} kept in the file), "
                 f"{capture['dropped']} dropped (queue full), {capture['failed']} failed, "
                 f"{capture['unaccounted']} unaccounted for")

    def _on_off_rounds(self, clients: dict, what: str, counted: str | None = None,
                       cpu_of: dict | None = None) -> tuple[dict, int]:
        """Workload 1's wrk rounds through each of `clients` ({"off": Tunnel,
        "on": Tunnel}), interleaved (off, on, off, ...); returns each mode's
        median round (with every round's req/s), and the requests answered
        through the `counted` client, warm-ups included. `cpu_of` names the
        process whose CPU counts as the client's, where it is not the
        Tunnel's own (a client behind a pty)."""
        url = f"http://127.0.0.1:{self.server.http_port}/{services.SMALL_FILE}"
        rounds: dict[str, list[dict]] = {m: [] for m in clients}
        sent = 0
        time.sleep(1)  # proxy pools filled
        for rnd in range(WRK_ROUNDS):
            for mode, t in clients.items():
                if self.warmup:
                    w = loadgen.wrk(self.sup, url, t.host, self.warmup)
                    sent += w.get("requests", 0) if mode == counted else 0
                    time.sleep(0.5)
                sampler = Sampler({"client": (cpu_of or {}).get(mode, t.proc)})
                r = loadgen.wrk(self.sup, url, t.host, self.duration, sample=sampler)
                r["client_cpu_s"] = sampler.cpu_used()["client"]
                r["client_rss_peak_kib"] = sampler.peak["client"]
                sent += r.get("requests", 0) if mode == counted else 0
                rounds[mode].append(r)
                self.log(f"  round {rnd + 1}/{WRK_ROUNDS} {what} {mode:3s} "
                         f"{r['rps']:10.0f} req/s  p50 {r.get('p50_ms', 0):7.2f} ms  "
                         f"p99 {r.get('p99_ms', 0):7.2f} ms  client CPU "
                         f"{_f(r['client_cpu_s'])} s  errors {r['errors'] or 'none'}")
                time.sleep(1)
        out: dict = {}
        for mode, rs in rounds.items():
            ordered = sorted(rs, key=lambda r: r["rps"])
            median = dict(ordered[len(ordered) // 2])
            for metric in ("p50_ms", "p99_ms", "client_cpu_s"):
                values = sorted(r[metric] for r in rs if r.get(metric) is not None)
                if values:
                    median[metric] = values[len(values) // 2]
            median["rounds_rps"] = [round(r["rps"]) for r in rs]
            out[mode] = median
        out["ratio"] = out["on"]["rps"] / out["off"]["rps"] if out["off"]["rps"] else None
        return out, sent

    # -- 8: status screen on vs off ----------------------------------------------

    def w_screen(self):
        """Workload 1 through two fresh http tunnel clients (inspector off),
        one logging to a pipe (no terminal, no screen) and one on a terminal,
        a pty that util-linux `script` holds, drawing its status screen with
        every request in its list; interleaved rounds, medians."""
        base = [self.bindir / "porthole", "--server-addr", f"localhost:{self.server.tunnel_port}",
                "--inspect-addr", "disabled", "--trust-ca", self.server.ca, "http",
                f"127.0.0.1:{self.nginx.port}", "--proto", "http"]
        off = services.start_porthole(self.sup, self.bindir, self.server, "http",
                                      self.nginx.port, subdomain="screen-off",
                                      name="porthole-screen-off")
        log = self.tmp / "screen-on.log"
        cmd = shlex.join(["env", "TERM=xterm-256color", *map(str, base),
                          "--subdomain", "screen-on", "--log", str(log)])
        pty = self.sup.start("porthole-screen-on", ["script", "-qfec", cmd, "/dev/null"])
        try:
            deadline = time.monotonic() + 20
            m = None
            while m is None:
                text = log.read_text() if log.exists() else ""
                m = re.search(r"Forwarding ((\w+)://([^/\s:]+):(\d+))", text)
                if m is None and (time.monotonic() > deadline or pty.poll() is not None):
                    raise RuntimeError(f"screen client: no tunnel; log:\n{text}\n"
                                       f"terminal:\n{pty.tail()}")
                time.sleep(0.1)
            on = services.Tunnel(pty, m.group(1), int(m.group(4)),
                                 f"{m.group(3)}:{m.group(4)}")
            if "Tunnel Status" not in pty.text():
                raise RuntimeError("screen client: no status screen drawn on its terminal")
            client_pid = int(subprocess.run(["pgrep", "-P", str(pty.pid), "porthole"],
                                            capture_output=True, text=True).stdout.split()[0])
            out, _ = self._on_off_rounds({"off": off, "on": on}, "status screen",
                                         cpu_of={"on": _Pid(client_pid)})
        finally:
            self.sup.stop_many([off.proc, pty])
        self.results["screen"] = out
        self.log(f"  median: off {out['off']['rps']:.0f} req/s, on {out['on']['rps']:.0f} req/s, "
                 f"on/off {_f(out['ratio'])}x")

    def inspector_flag(self) -> str | None:
        text = ""
        for prog, args in (("portholed", ["--help"]), ("porthole", ["--help"]),
                           ("porthole", ["http", "--help"])):
            try:
                text += subprocess.run([self.bindir / prog, *args], capture_output=True,
                                       text=True, timeout=10).stdout
            except (OSError, subprocess.TimeoutExpired):
                pass
        # Capture comes with its store (--inspect-db); --inspect-addr alone only
        # serves the local API.
        m = re.search(r"--inspect-db", text)
        return m.group(0) if m else None


def scale_portholed_args() -> list[str]:
    """The options the scale workload's portholed runs with, besides the
    suite's usual ones (README, workload 5)."""
    return ["--read-header-timeout", "60", "--max-public-conns-per-ip", "0",
            "--max-conns-per-client", "0"]


def _capture_counts(db: Path, log: str) -> dict:
    """What a capturing client did with its exchanges: stored (ids only grow,
    by one per exchange, from 1 in a new file, so the highest id counts every
    exchange ever stored even after the oldest were pruned), still in the file,
    and dropped or failed as its log says."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        top, rows = con.execute("SELECT coalesce(max(id), 0), count(*) FROM exchange").fetchone()
    finally:
        con.close()
    # The client logs drops each second with the count since its start, and
    # each batch the store failed to write.
    dropped = [int(n) for n in re.findall(r"\((\d+) since start\)", log)]
    failed = [int(n) for n in re.findall(r"(\d+) exchange\(s\) were not captured: ", log)]
    return {"stored": top, "rows": rows, "dropped": max(dropped, default=0),
            "failed": sum(failed)}


def _f(x, fmt="{:.2f}"):
    return "-" if x is None else fmt.format(x)
