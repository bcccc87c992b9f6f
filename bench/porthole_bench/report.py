"""The table, the targets, the machine description, and the output files."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path


def machine() -> dict:
    cpu = None
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kib = None
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu_model": cpu, "kernel": platform.release(),
            "memory_mib": mem_kib // 1024 if mem_kib else None,
            "os": _os_release(), "open_files_limit": _nofile()}


def _os_release() -> str | None:
    try:
        for line in open("/etc/os-release"):
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return None


def _nofile():
    import resource
    return list(resource.getrlimit(resource.RLIMIT_NOFILE))


def _first_line(argv) -> str | None:
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        return (p.stdout or p.stderr).strip().splitlines()[0]
    except (OSError, subprocess.TimeoutExpired, IndexError):
        return None


def _sha256(path: Path) -> str | None:
    import hashlib
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    except OSError:
        return None


def versions(bindir: Path) -> dict:
    repo = Path(__file__).resolve().parents[2]
    commit = _first_line(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"])
    dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--", "src", "apps"],
                           capture_output=True, text=True).stdout.strip()
    return {"porthole": _first_line([str(bindir / "porthole"), "--version"]),
            "portholed": _first_line([str(bindir / "portholed"), "--version"]),
            "git_commit": commit, "sources_modified": bool(dirty),
            "portholed_sha256": _sha256(bindir / "portholed"),
            "porthole_sha256": _sha256(bindir / "porthole"),
            "nginx": _first_line(["nginx", "-v"]),
            "haproxy": _first_line(["haproxy", "-v"]),
            "wrk": _first_line(["wrk", "-v"]),
            "iperf3": _first_line(["iperf3", "-v"]),
            "curl": _first_line(["curl", "--version"]),
            "openssl": _first_line(["openssl", "version"])}


# --------------------------------------------------------------------------
# Formatting helpers
# --------------------------------------------------------------------------

def _g(d: dict | None, *keys):
    for k in keys:
        if not isinstance(d, dict):
            return None
        d = d.get(k)
    return d


def _t(res: dict | None, key: str, target: str, *sub):
    """res[key][target][sub...]; "haproxy-tcp" is read as "haproxy" from
    results written before the haproxy-http chain was added."""
    w = _g(res, key)
    if isinstance(w, dict) and target == "haproxy-tcp" and target not in w:
        target = "haproxy"
    return _g(w, target, *sub)


def _num(x, fmt):
    return "-" if x is None else fmt.format(x)


def _ratio(a, b):
    if a is None or b is None or not b:
        return None
    return a / b


def _fails(d: dict | None) -> str:
    if not d:
        return "none"
    return "; ".join(f"{v} {k}" for k, v in sorted(d.items(), key=lambda kv: -kv[1]))


# --------------------------------------------------------------------------
# Table
# --------------------------------------------------------------------------

# The table's columns of figures: "porthole" is the tunnel the row is about (an
# http tunnel, or a tcp tunnel where the row says so).
COLUMNS = ("direct", "porthole", "haproxy-tcp", "haproxy-http")
HEAD = ["workload", "metric", "direct", "porthole", "haproxy-tcp", "haproxy-http", "p/direct",
        "p/haproxy-tcp", "p/haproxy-http"]
MARKDOWN_HEAD = ["workload", "metric", "direct", "porthole", "haproxy-tcp", "haproxy-http",
                 "porthole/direct", "porthole/haproxy-tcp", "porthole/haproxy-http"]
ALL_TARGETS = ("direct", "porthole", "porthole-tcp", "haproxy-tcp", "haproxy-http")


def _porthole_only(wl: str, label: str, value: str) -> list[str]:
    return [wl, label, "", value] + [""] * (len(HEAD) - 4)


def rows(res: dict) -> list[list[str]]:
    """[workload, metric, direct, porthole, haproxy-tcp, haproxy-http,
    porthole/direct, porthole/haproxy-tcp, porthole/haproxy-http]"""
    out = []

    def metric(wl, label, key, sub, fmt, ratios=True, get=None, porthole="porthole",
               without=()):
        """One row; `porthole` names the target in the porthole column,
        `without` the columns left empty (no such comparison)."""
        vals = {}
        for col in COLUMNS:
            t = porthole if col == "porthole" else col
            vals[col] = None if col in without else (get(t) if get else _t(res, key, t, sub))
        cells = [_num(vals[c], fmt) if c not in without else "" for c in COLUMNS]
        for base in ("direct", "haproxy-tcp", "haproxy-http"):
            r = _ratio(vals["porthole"], vals[base]) if ratios else None
            cells.append("" if base in without else _num(r, "{:.2f}x"))
        out.append([wl, label] + cells)

    def errors(key, porthole="porthole", without=()):
        metric("", "errors", key, None, "{}", ratios=False, porthole=porthole, without=without,
               get=lambda t: _fails(_t(res, key, t, "errors")) if _t(res, key, t) else None)

    if "keepalive" in res:
        metric("1 keep-alive, http tunnel", "requests/s", "keepalive", "rps", "{:.0f}")
        metric("", "p50 latency ms", "keepalive", "p50_ms", "{:.2f}")
        metric("", "p99 latency ms", "keepalive", "p99_ms", "{:.2f}")
        errors("keepalive")
        if _g(res, "keepalive", "porthole-tcp"):
            tcp = {"porthole": "porthole-tcp", "without": ("haproxy-http",)}
            metric("1 keep-alive, tcp tunnel", "requests/s", "keepalive", "rps", "{:.0f}",
                   **tcp)
            metric("", "p50 latency ms", "keepalive", "p50_ms", "{:.2f}", **tcp)
            metric("", "p99 latency ms", "keepalive", "p99_ms", "{:.2f}", **tcp)
            errors("keepalive", **tcp)
    if "newconn" in res:
        metric("2 new conn/request", "requests/s", "newconn", "rps", "{:.0f}")
        metric("", "p99 latency ms", "newconn", "p99_ms", "{:.2f}")
        errors("newconn")
    if "burst" in res:
        metric("3 burst 500 x3", "succeeded", "burst", None, "{}", ratios=False,
               get=lambda t: f"{_t(res, 'burst', t, 'ok')}/{_t(res, 'burst', t, 'attempted')}"
               if _t(res, "burst", t) else None)
        metric("", "p99 TTFB ms (median of 3)", "burst", "ttfb_p99_ms", "{:.1f}")
    if "iperf3" in res:
        metric("4 bulk TCP iperf3, tcp tunnel", "Gbit/s", "iperf3", "Gbps", "{:.2f}",
               without=("haproxy-http",))
    if "download" in res:
        metric("4 1 GiB HTTP download", "MB/s", "download", "MBps", "{:.0f}")
    if "scale" in res:
        n = next((v.get("n") for v in res["scale"].values() if v), 10000)
        metric(f"5 scale {n} idle", "opened", "scale", "opened", "{}", ratios=False)
        metric("", "succeeded", "scale", "ok", "{}")
        metric("", "RSS KiB/conn idle (2 procs)", "scale", "kib_per_conn_idle", "{:.1f}",
               ratios=False)
        metric("", "RSS KiB/conn held (2 procs)", "scale", "kib_per_conn_held", "{:.1f}",
               ratios=False)
    m = res.get("memory")
    if m:
        dk = m.get("during_keepalive") or {}

        def mib(x):
            return None if x is None else x / 1024
        for i, (label, val) in enumerate([
                (f"server MiB, {m['clients']} 1-tunnel clients", mib(m.get("server_rss_kib"))),
                ("server MiB, no clients", mib(m.get("server_rss_kib_no_clients"))),
                ("one idle client MiB (1 tunnel)", mib(m.get("client_rss_kib_one"))),
                (f"one idle client MiB ({m.get('many_tunnels', 100)} tunnels)",
                 mib(m.get("client_rss_kib_many_tunnels"))),
                ("server MiB peak in workload 1", mib(_g(dk, "peak_kib", "server"))),
                ("client MiB peak in workload 1", mib(_g(dk, "peak_kib", "client")))]):
            out.append(_porthole_only("6 memory" if i == 0 else "", label, _num(val, "{:.1f}")))
    ins = res.get("inspect")
    if ins and ins.get("off") and ins.get("on"):
        out += _on_off_rows("7 inspector", ins)
        cap = ins.get("capture") or {}
        if cap:
            out.append(_porthole_only(
                "", "stored/answered (dropped)",
                f"{cap['stored']}/{cap['requests_sent']} ({cap['dropped']})"))
    scr = res.get("screen")
    if scr and scr.get("off") and scr.get("on"):
        out += _on_off_rows("8 status screen", scr)
    return out


def _on_off_rows(label: str, w: dict) -> list[list[str]]:
    """One target (porthole), two modes: each mode's medians, and on / off."""
    out = []
    for mode in ("off", "on"):
        out.append(_porthole_only(f"{label} {mode}", "requests/s",
                                  _num(_g(w, mode, "rps"), "{:.0f}")))
        out.append(_porthole_only("", "p99 latency ms", _num(_g(w, mode, "p99_ms"), "{:.2f}")))
    out.append(_porthole_only("", "requests/s on/off", _num(w.get("ratio"), "{:.2f}x")))
    return out


def render_table(res: dict) -> str:
    return _text_table(HEAD, rows(res))


def _text_table(head: list[str], body: list[list[str]], left: int = 2) -> str:
    """Columns padded to their widest cell (at most 34 characters); the first
    `left` columns aligned left, the others right."""
    widths = [max(len(r[i]) for r in [head] + body) for i in range(len(head))]
    # keep the table narrow: long cells (error lists) are printed separately
    widths = [min(w, 34) for w in widths]

    def line(r):
        cells = []
        for i, c in enumerate(r):
            c = c if len(c) <= widths[i] else c[:widths[i] - 1] + "…"
            cells.append(c.ljust(widths[i]) if i < left else c.rjust(widths[i]))
        return "  ".join(cells).rstrip()
    sep = "  ".join("-" * w for w in widths)
    return "\n".join([line(head), sep] + [line(r) for r in body])


def _markdown_table(head: list[str], body: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in body:
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in r) + " |")
    return "\n".join(lines)


def render_markdown_table(res: dict) -> str:
    return _markdown_table(MARKDOWN_HEAD, rows(res))


# --------------------------------------------------------------------------
# Workload 9, the cluster: its own targets (owner node, relayed, standby), so its own tables
# --------------------------------------------------------------------------

CLUSTER_TARGETS = ("direct", "owner", "relayed", "standby")
CLUSTER_HEAD = ["workload", "metric", "direct", "owner node", "relayed", "standby",
                "relayed/owner", "standby/owner", "owner/direct"]


def cluster_rows(res: dict) -> list[list[str]]:
    """[workload, metric, direct, owner node, relayed, standby, relayed/owner,
    standby/owner, owner/direct]"""
    c = res.get("cluster") or {}
    out = []
    for key, label in (("keepalive", "9 keep-alive"), ("newconn", "9 new conn/request")):
        w = c.get(key)
        if not w:
            continue
        for i, (metric, sub, fmt) in enumerate((("requests/s", "rps", "{:.0f}"),
                                                ("p50 latency ms", "p50_ms", "{:.2f}"),
                                                ("p99 latency ms", "p99_ms", "{:.2f}"))):
            d, o, r, sb = (_g(w, t, sub) for t in CLUSTER_TARGETS)
            out.append([label if i == 0 else "", metric, _num(d, fmt), _num(o, fmt),
                        _num(r, fmt), _num(sb, fmt), _num(_ratio(r, o), "{:.2f}x"),
                        _num(_ratio(sb, o), "{:.2f}x"), _num(_ratio(o, d), "{:.2f}x")])
        out.append(["", "errors (all rounds)"] + [
            _fails(_g(w, t, "errors_all_rounds")) if _g(w, t) else "-"
            for t in CLUSTER_TARGETS] + ["", "", ""])
    return out


def cluster_figures(res: dict) -> list[list[str]]:
    """[figure, value]: failover and etcd requests."""
    c = res.get("cluster") or {}
    out = []
    one, two = _g(c, "failover", "one"), _g(c, "failover", "two")
    if one:
        out.append(["9 failover, one connection: kill -9 of its node, 200 through the other",
                    _failover_served(one)])
        out.append(["9 failover, one connection: client connected to the other node",
                    _failover_back(one)])
    if two:
        out.append(["9 failover, two connections: kill -9 of its node, 200 through the other",
                    _failover_served(two)])
        out.append(["9 failover, two connections: standby promoted (ready file's server)",
                    _failover_back(two)])
    e = c.get("etcd")
    if e:
        tunnels = e.get("idle_tunnels", 1)
        out.append([f"9 etcd requests/s, idle (2 nodes, {tunnels} tunnel{'s' * (tunnels > 1)}"
                    f"{', 1 standby' if e.get('idle_standby_connections') else ''}, "
                    f"{e['idle_window_s']:.0f} s)",
                    _num(e.get("idle_per_s"), "{:.2f}")])
        out.append([f"9 etcd requests per new tunnel ({e.get('new_tunnels')} clients at once)",
                    f"{_num(e.get('per_new_tunnel'), '{:.1f}')} (raw "
                    f"{_num(e.get('per_new_tunnel_raw'), '{:.1f}')}, less the idle rate)"])
        if e.get("per_closed_tunnel") is not None:
            out.append(["9 etcd requests per tunnel closed (client stopped with SIGTERM)",
                        _num(e.get("per_closed_tunnel"), "{:.1f}")])
        out.append(["9 etcd counter", f"sum of {e.get('counter')} over all methods"])
    return out


def _failover_served(f: dict) -> str:
    rounds = ", ".join(_num(x, "{:.3f}") for x in f.get("served_s_rounds") or [])
    return (f"{_num(f.get('served_s'), '{:.3f}')} s after the kill (median; rounds {rounds}); "
            f"failed requests before it, all rounds: {f.get('failures_total')}")


def _failover_back(f: dict) -> str:
    rounds = ", ".join(_num(x, "{:.3f}") for x in f.get("client_back_s_rounds") or [])
    return f"{_num(f.get('client_back_s'), '{:.3f}')} s after the kill (median; rounds {rounds})"


def render_cluster(res: dict) -> str:
    parts = []
    body = cluster_rows(res)
    if body:
        parts.append(_text_table(CLUSTER_HEAD, body))
    figs = cluster_figures(res)
    if figs:
        width = max(len(r[0]) for r in figs)
        parts.append("\n".join(f"{r[0].ljust(width)}  {r[1]}" for r in figs))
    return "\n\n".join(parts)


def render_markdown_cluster(res: dict) -> str:
    parts = []
    body = cluster_rows(res)
    if body:
        parts.append(_markdown_table(CLUSTER_HEAD, body))
    figs = cluster_figures(res)
    if figs:
        parts.append(_markdown_table(["figure", "value"], figs))
    return "\n\n".join(parts)


# --------------------------------------------------------------------------
# Workload 10, cost per request: its own table and lines
# --------------------------------------------------------------------------

STRACE_TOP_SHOWN = 8
COST_HEAD = ["path", "process", "requests", "req/s", "CPU µs/req", "user µs", "sys µs",
             "cycles/req", "instr/req", "syscalls/req", "ctx sw/req"]


def cost_rows(res: dict) -> list[list[str]]:
    """The counters window of each path: per request, each process and both."""
    c = res.get("cost") or {}
    out = []
    for key, p in (c.get("paths") or {}).items():
        w = p.get("counters") or {}
        for i, (proc, pr) in enumerate((w.get("per_request") or {}).items()):
            first = i == 0
            out.append([p.get("label", key) if first else "", proc,
                        _num(w.get("requests"), "{}") if first else "",
                        _num(w.get("rps"), "{:.0f}") if first else "",
                        _num(pr.get("cpu_us"), "{:.2f}"), _num(pr.get("user_us"), "{:.2f}"),
                        _num(pr.get("sys_us"), "{:.2f}"), _num(pr.get("cycles"), "{:.0f}"),
                        _num(pr.get("instructions"), "{:.0f}"),
                        _num(pr.get("syscalls"), "{:.2f}"),
                        _num(pr.get("context_switches"), "{:.3f}")])
    return out


def cost_lines(res: dict) -> list[str]:
    """How it was measured, and the strace window's calls by name."""
    c = res.get("cost") or {}
    if not c:
        return []
    perf = c.get("perf") or {}
    out = [f"load: {c.get('load')}; CPU: {c.get('cpu_source')}"
           + (f" ({perf['why']})" if perf.get("why") else "")
           + (f"; perf stat counted {', '.join(perf['counted'])}" if perf.get("counted")
              else "")]
    for key, p in (c.get("paths") or {}).items():
        pr = _g(p, "counters", "per_request") or {}
        if any(v.get("syscalls_by_name") for v in pr.values()):
            out.append(f"system calls per request by name, {p.get('label', key)}, counted by "
                       f"their tracepoints in the counters window (perf stat; top "
                       f"{STRACE_TOP_SHOWN}, the rest as other):")
            for proc, v in pr.items():
                out.append(f"  {proc}: {_num(v.get('syscalls'), '{:.2f}')} = " + ", ".join(
                    f"{name} {x:.2f}" for name, x in (v.get("syscalls_by_name") or {}).items()))
        st = p.get("strace") or {}
        if not st.get("per_request"):
            continue
        out.append(f"strace -c -f, {p.get('label', key)}: {st['requests']} requests in "
                   f"{st['seconds']} s ({st['rps']:.0f}/s under strace); system calls per "
                   f"request, total and top {len(next(iter(st['per_request'].values()))['top'])}:")
        for proc, pr in st["per_request"].items():
            out.append(f"  {proc}: {pr['total']:.2f} = " + ", ".join(
                f"{name} {v:.2f}" for name, v in pr["top"].items()))
        errs = {proc: d.get("errors") for proc, d in (st.get("processes") or {}).items()
                if d.get("errors")}
        if errs:
            out.append("  failed calls (all, not per request): " + "; ".join(
                f"{proc} " + ", ".join(f"{k} {v}" for k, v in e.items())
                for proc, e in errs.items()))
    return out


def _rendered(head: list, body: list, lines: list[str], left: int | None = None) -> str:
    """A table and the notes under it, as the terminal shows them."""
    table = _text_table(head, body) if left is None else _text_table(head, body, left=left)
    parts = [table] if body else []
    if lines:
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


def _rendered_markdown(head: list, body: list, lines: list[str]) -> str:
    """The same in Markdown: the notes as a list (indented lines nested)."""
    parts = [_markdown_table(head, body)] if body else []
    if lines:
        parts.append("\n".join(f"  - {ln.strip()}" if ln.startswith("  ") else f"- {ln}"
                               for ln in lines))
    return "\n\n".join(parts)


def render_cost(res: dict) -> str:
    return _rendered(COST_HEAD, cost_rows(res), cost_lines(res))


def render_markdown_cost(res: dict) -> str:
    return _rendered_markdown(COST_HEAD, cost_rows(res), cost_lines(res))


# --------------------------------------------------------------------------
# Workload 11, threads: its own table and lines
# --------------------------------------------------------------------------

THREADS_HEAD = ["portholed", "req/s", "MB/s", "p50 ms", "p99 ms", "portholed CPU s", "cores",
                "cores by thread", "µs CPU/req", "clients CPU s", "nginx CPU s", "wrk CPU s",
                "machine busy cores (other)"]


def threads_rows(res: dict) -> list[list[str]]:
    t = res.get("threads") or {}
    by = t.get("by_threads") or {}
    out = []
    for n, d in by.items():
        ph = d.get("portholed") or {}
        out.append([f"--threads {n}", _num(d.get("rps"), "{:.0f}"), _num(d.get("MBps"), "{:.0f}"),
                    _num(d.get("p50_ms"), "{:.2f}"), _num(d.get("p99_ms"), "{:.2f}"),
                    _num(ph.get("cpu_s"), "{:.2f}"), _num(ph.get("cores"), "{:.2f}"),
                    " + ".join(f"{x['cores']:.2f}" for x in ph.get("threads") or []),
                    _num(ph.get("us_per_request"), "{:.1f}"),
                    _num(d.get("clients_cpu_s_total"), "{:.2f}"),
                    _num(d.get("nginx_cpu_s"), "{:.2f}"), _num(d.get("wrk_cpu_s"), "{:.2f}"),
                    _num(d.get("machine_busy_cores"), "{:.2f}")
                    + (f" ({d['other_cpu_s'] / d['window_s']:.2f})"
                       if d.get("other_cpu_s") is not None and d.get("window_s") else "")])
    one, two = by.get("1"), by.get("2")
    if one and two:
        def r(*keys):
            return _num(_ratio(_g(two, *keys), _g(one, *keys)), "{:.2f}x")
        out.append(["2 / 1", r("rps"), r("MBps"), r("p50_ms"), r("p99_ms"), r("portholed", "cpu_s"),
                    r("portholed", "cores"), "", r("portholed", "us_per_request"),
                    r("clients_cpu_s_total"), r("nginx_cpu_s"), r("wrk_cpu_s"),
                    r("machine_busy_cores")])
    return out


def threads_lines(res: dict) -> list[str]:
    t = res.get("threads") or {}
    by = t.get("by_threads") or {}
    if not by:
        return []
    out = [f"load: {t.get('load')}; {t.get('clients')} porthole clients per portholed "
           f"(--threads {t.get('client_threads')}); {t.get('cpus')} CPUs, no taskset or CPU "
           f"limit"]
    out.append(f"requests/s, 2 threads / 1 thread: {_num(t.get('ratio_rps'), '{:.2f}x')}; "
               f"portholed CPU (cores): {_num(t.get('ratio_portholed_cores'), '{:.2f}x')}; "
               f"portholed CPU per request: {_num(t.get('ratio_us_per_request'), '{:.2f}x')}")
    for n, d in by.items():
        ph = d.get("portholed") or {}
        out.append(f"--threads {n}: requests/s by round {d.get('rounds_rps')}, portholed cores "
                   f"{d.get('rounds_portholed_cores')}, machine busy cores "
                   f"{d.get('rounds_machine_busy_cores')}; wrk errors (all rounds): "
                   f"{_fails(d.get('errors_all_rounds'))}")
        out.append(f"  median round ({d.get('window_s')} s): tunnels' requests/s "
                   f"{d.get('per_tunnel_rps')}; multiplexed connections per portholed thread "
                   f"{d.get('mux_per_thread')}; portholed user {ph.get('user_s')} s, system "
                   f"{ph.get('sys_s')} s; its threads: " + ", ".join(
                       f"{x['role']} ({x['name']}, tid {x['tid']}) {x['cpu_s']:.2f} s = "
                       f"{x['cores']:.2f} cores" for x in ph.get("threads") or [])
                   + f" ({ph.get('busy_threads')} busy)")
        out.append(f"  clients CPU s {d.get('clients_cpu_s')}; nginx {d.get('nginx_cpu_s')} s; "
                   f"wrk {d.get('wrk_cpu_s')} s; machine busy {d.get('machine_busy_s')} of "
                   f"{d.get('machine_cpu_s')} CPU s, of which {d.get('other_cpu_s')} s by other "
                   f"processes (the suite, its idle servers, anything else on the machine)")
    for name, lg in (t.get("logs") or {}).items():
        out.append(f"{name} logged {lg['total']} warnings/errors: " + "; ".join(
            f"{n}x {m[:100]}" for m, n in list(lg["top"].items())[:3]))
    return out


# Workload 12, HTTP/2 and gRPC: lines of its own

def h2_lines(res: dict) -> list[str]:
    h = res.get("h2") or {}
    if not h:
        return []
    d, p = h["h2load"]["direct"], h["h2load"]["porthole"]
    g = h["grpc"]
    return [
        f"h2load -c{h['conns']} -m{h['streams']} (h2c): direct {d['rps']:.0f} req/s "
        f"(p50 {_num(d.get('p50_ms'), '{:.2f}')} ms, p99 {_num(d.get('p99_ms'), '{:.2f}')} ms), "
        f"through porthole {p['rps']:.0f} req/s (p50 {_num(p.get('p50_ms'), '{:.2f}')} ms, "
        f"p99 {_num(p.get('p99_ms'), '{:.2f}')} ms): {h['ratio_rps']:.2f}x the requests/s, "
        f"{_num(h.get('ratio_p99'), '{:.2f}x')} the p99; rounds {d['rounds_rps']} and "
        f"{p['rounds_rps']}",
        f"gRPC unary ping-pong (one client, calls one after another): direct "
        f"{g['direct']['calls_per_s']:.0f} calls/s, through porthole (--upstream http2, h2c) "
        f"{g['porthole']['calls_per_s']:.0f} calls/s: {h['ratio_grpc']:.2f}x; rounds "
        f"{g['direct']['rounds']} and {g['porthole']['rounds']}",
    ]


def render_threads(res: dict) -> str:
    return _rendered(THREADS_HEAD, threads_rows(res), threads_lines(res), left=1)


def render_markdown_threads(res: dict) -> str:
    return _rendered_markdown(THREADS_HEAD, threads_rows(res), threads_lines(res))


def details(res: dict) -> list[str]:
    """What the table has no room for: failures by kind, memory, logs."""
    out = []
    for key, label in (("keepalive", "keep-alive"), ("newconn", "new conn/request")):
        spread = [f"{t} {_t(res, key, t, 'rounds_rps')}" for t in ALL_TARGETS
                  if _t(res, key, t, "rounds_rps")]
        if spread:
            out.append(f"{label} requests/s by round (the table shows each target's median): "
                       + ", ".join(spread))
    ins = res.get("inspect") or {}
    if ins.get("off") and ins.get("on"):
        out.append("inspector requests/s by round (the table shows each mode's median): "
                   f"off {ins['off']['rounds_rps']}, on {ins['on']['rounds_rps']}; client CPU s "
                   f"per round (median): off {ins['off'].get('client_cpu_s')}, "
                   f"on {ins['on'].get('client_cpu_s')}")
        cap = ins.get("capture") or {}
        if cap:
            out.append(f"inspector on: {cap['requests_sent']} requests answered through the "
                       f"capturing client (warm-ups included), {cap['stored']} exchanges stored "
                       f"({cap['rows']} still in the file), {cap['dropped']} dropped because the "
                       f"capture queue was full, {cap['failed']} failed to be written, "
                       f"{cap['unaccounted']} unaccounted for")
        for mode in ("off", "on"):
            e = _g(ins, mode, "errors")
            if e:
                out.append(f"inspector {mode}: wrk errors: {_fails(e)}")
    scr = res.get("screen") or {}
    if scr.get("off") and scr.get("on"):
        out.append("status screen requests/s by round (the table shows each mode's median): "
                   f"off {scr['off']['rounds_rps']}, on {scr['on']['rounds_rps']}; client CPU s "
                   f"per round (median): off {scr['off'].get('client_cpu_s')}, "
                   f"on {scr['on'].get('client_cpu_s')}")
    spread = [f"{t} {_t(res, 'iperf3', t, 'rounds_Gbps')}" for t in ALL_TARGETS
              if _t(res, "iperf3", t, "rounds_Gbps")]
    if spread:
        out.append("iperf3 Gbit/s by round (the table shows each target's median): "
                   + ", ".join(spread))
    for t in ("direct", "porthole", "haproxy-tcp"):
        d = _t(res, "scale", t)
        if not d:
            continue
        rss = d.get("rss_kib") or {}
        fds = d.get("open_fds") or {}
        out.append(f"scale {t}: opened {d['opened']}/{d['n']} in {d['open_s']:.1f} s, "
                   f"{d['closed_while_idle']} closed while idle, {d['ok']} answered 200 "
                   f"(requests took {d['request_s']:.1f} s); failures: {_fails(d['failures'])}")
        if rss.get("before"):
            who = ("portholed/porthole" if t == "porthole" else "haproxy public/inner")
            names = ({"server": "public", "client": "inner"} if t == "haproxy-tcp"
                     else {"server": "server", "client": "client"})
            out.append(f"  {who} RSS KiB before/idle/held: " + ", ".join(
                f"{names[k]} {_g(rss, 'before', k)}/{_g(rss, 'idle', k)}/{_g(rss, 'held', k)}"
                for k in ("server", "client")) + "; open fds before/idle/held: " + ", ".join(
                f"{names[k]} {_g(fds, 'before', k)}/{_g(fds, 'idle', k)}/{_g(fds, 'held', k)}"
                for k in ("server", "client")))
        logs = d.get("logs")
        if logs:
            for k in ("server", "client"):
                lg = logs[k]
                if lg["total"]:
                    out.append(f"  {k} log: {lg['total']} warnings/errors, e.g. " + "; ".join(
                        f"{n}x {m[:110]}" for m, n in list(lg["top"].items())[:3]))
                else:
                    out.append(f"  {k} log: no warnings or errors")
        if t == "porthole":
            if d.get("portholed_extra_args"):
                out.append(f"  portholed options besides the suite's: "
                           f"{' '.join(d['portholed_extra_args'])}")
            if not all((d.get("still_running") or {}).values()):
                out.append(f"  processes still running afterwards: {d.get('still_running')}")
    for key, label in (("keepalive", "keep-alive"), ("newconn", "new conn/request")):
        for t in ALL_TARGETS:
            e = _t(res, key, t, "errors")
            if e:
                out.append(f"{label} {t}: wrk errors: {_fails(e)}")
    for t in ALL_TARGETS:
        b = _t(res, "burst", t)
        if b and b["failures"]:
            out.append(f"burst {t}: failures: {_fails(b['failures'])}")
        for k in ("iperf3", "download"):
            r = _t(res, k, t)
            if r and not r.get("ok"):
                out.append(f"{k} {t}: FAILED: {r.get('error')}")
    for w, procs in (res.get("logged_during") or {}).items():
        for name, lg in procs.items():
            out.append(f"during workload {w}, {name} logged: " + "; ".join(
                f"{n}x {msg[:100]}" for msg, n in lg["top"].items()))
    for name, lg in (res.get("logs") or {}).items():
        if lg["total"]:
            out.append(f"{name} log (whole run): {lg['total']} warnings/errors: " + "; ".join(
                f"{n}x {msg[:120]}" for msg, n in list(lg["top"].items())[:4]))
    out += _cluster_details(res.get("cluster") or {})
    m = res.get("memory")
    if m:
        out.append(f"memory, {m['clients']} porthole clients of one tunnel each: server "
                   f"{m['server_rss_kib_no_clients'] / 1024:.1f} MiB with none, "
                   f"{m['server_rss_kib'] / 1024:.1f} MiB with all "
                   f"({m['server_kib_per_client']} KiB per client, {m['server_open_fds']} fds); "
                   f"one idle client {m['client_rss_kib_one'] / 1024:.1f} MiB "
                   f"(min {m['client_rss_kib_min'] / 1024:.1f}, max "
                   f"{m['client_rss_kib_max'] / 1024:.1f})")
        if m.get("client_rss_kib_many_tunnels"):
            out.append(f"memory, one client with {m['many_tunnels']} tunnels (start --all): "
                       f"{m['client_rss_kib_many_tunnels'] / 1024:.1f} MiB")
        dk = m.get("during_keepalive") or {}
        if dk.get("peak_kib"):
            out.append("memory during workload 1 (keep-alive, porthole): " + ", ".join(
                f"{k} {dk['idle_kib'][k] / 1024:.1f} MiB idle -> {dk['peak_kib'][k] / 1024:.1f} "
                f"MiB peak, {dk['cpu_s'][k]} CPU s" for k in ("server", "client")))
    return out


def _cluster_details(c: dict) -> list[str]:
    out = []
    for key, label in (("keepalive", "keep-alive"), ("newconn", "new conn/request")):
        w = c.get(key) or {}
        spread = [f"{t} {w[t]['rounds_rps']}" for t in CLUSTER_TARGETS
                  if _g(w, t, "rounds_rps")]
        if spread:
            out.append(f"cluster {label} requests/s by round (the table shows each target's "
                       "median): " + ", ".join(spread))
        for t in CLUSTER_TARGETS[1:]:
            cpus = _g(w, t, "rounds_cpu_s") or []
            if cpus and all(cpus):
                out.append(f"  {t}: CPU s per round: " + "; ".join(
                    ", ".join(f"{k} {v}" for k, v in r.items()) for r in cpus))
    e = c.get("etcd") or {}
    if e:
        out.append(f"cluster etcd requests by method: idle {e['idle_window_s']} s "
                   f"{_methods(e.get('idle_by_method'))}; {e.get('new_tunnels')} new tunnels "
                   f"({e.get('new_window_s')} s, all up after {e.get('new_up_s')} s, "
                   f"{e.get('new_standby_connections')} standby connections up after "
                   f"{e.get('new_standby_up_s')} s) "
                   f"{_methods(e.get('new_by_method'))}; their closing "
                   f"{_methods(e.get('closed_by_method'))}")
        if e.get("new_tunnel_failures"):
            out.append(f"cluster new tunnels: requests through the other node failed: "
                       f"{e['new_tunnel_failures']}")
    for mode, label, back in (("one", "one connection", "client connected to"),
                              ("two", "two connections", "standby promoted, client on")):
        for i, r in enumerate(_g(c, "failover", mode, "rounds") or []):
            line = (f"cluster failover, {label}, round {i + 1}: {r['attempts']} request(s) "
                    f"through the other node, failures before the first 200: "
                    f"{_fails(r.get('failures'))}; {back} {r.get('client_server', '?')} after "
                    f"{_num(r.get('client_back_s'), '{:.3f}')} s")
            lg = r.get("node_b_log") or {}
            if lg.get("total"):
                line += "; the other node logged: " + "; ".join(
                    f"{n}x {m[:100]}" for m, n in list(lg["top"].items())[:3])
            out.append(line)
    if c.get("still_running") and not all(c["still_running"].values()):
        out.append(f"cluster: processes still running after the wrk rounds: "
                   f"{c['still_running']}")
    if c.get("counter_doc"):
        out.append(f"cluster {c['counter_doc']}; {c.get('etcd_version')}")
    return out


def _methods(by_method: dict | None) -> str:
    return "(" + (", ".join(f"{m} {v}" for m, v in (by_method or {}).items()) or "none") + ")"


# --------------------------------------------------------------------------
# Targets
# --------------------------------------------------------------------------

ISSUE_18 = "issue 18: porthole vs the haproxy 2-hop chains"
OTHER_GOALS = "other goals"


def targets(res: dict) -> list[dict]:
    out = []

    def add(name, goal, measured, met, group=OTHER_GOALS):
        out.append({"target": name, "goal": goal, "measured": measured, "met": met,
                    "group": group})

    def cmp(a, b, f):
        return None if a is None or b is None else bool(f(a, b))

    def at_least(name, key, target, base, times, group=ISSUE_18, sub="rps"):
        p, b = _t(res, key, target, sub), _t(res, key, base, sub)
        add(name, f">= {times:g}x" if times != 1 else ">= 1.0x", _num(_ratio(p, b), "{:.2f}x"),
            cmp(p, b, lambda x, y: x >= times * y), group)

    # Issue 18's targets: each tunnel against the haproxy chain that does the
    # same job (an http tunnel against haproxy in mode http, a tcp tunnel
    # against haproxy in mode tcp).
    if _t(res, "keepalive", "haproxy-http"):
        at_least("http tunnel keep-alive req/s vs haproxy-http (inspector off)", "keepalive",
                 "porthole", "haproxy-http", 1.0)
    if _t(res, "newconn", "haproxy-http"):
        at_least("new conn/request req/s vs haproxy-http", "newconn", "porthole",
                 "haproxy-http", 1.0)
    ins = res.get("inspect")
    if ins and ins.get("off") and ins.get("on"):
        r = ins.get("ratio")
        add("keep-alive req/s, inspector on vs off", ">= 0.9x", _num(r, "{:.2f}x"),
            None if r is None else r >= 0.9, ISSUE_18)
    if _t(res, "keepalive", "porthole-tcp"):
        at_least("tcp tunnel keep-alive req/s vs haproxy-tcp", "keepalive", "porthole-tcp",
                 "haproxy-tcp", 1.0)
    ip = res.get("iperf3")
    if ip:
        if _g(ip, "porthole") and not _g(ip, "porthole", "ok"):
            add("bulk TCP (iperf3) vs haproxy-tcp", ">= 1.0x",
                f"porthole failed: {_g(ip, 'porthole', 'error')}", False, ISSUE_18)
        else:
            at_least("bulk TCP (iperf3) vs haproxy-tcp", "iperf3", "porthole", "haproxy-tcp",
                     1.0, sub="Gbps")

    ka = res.get("keepalive")
    if ka:
        at_least("http tunnel keep-alive req/s vs direct", "keepalive", "porthole", "direct",
                 0.45, OTHER_GOALS)
        pp, hp = _t(res, "keepalive", "porthole", "p99_ms"), _t(res, "keepalive",
                                                                "haproxy-http", "p99_ms")
        if hp is not None:
            add("http tunnel keep-alive p99 vs haproxy-http", "<= haproxy-http",
                f"{_num(pp, '{:.2f}')} ms vs {_num(hp, '{:.2f}')} ms",
                cmp(pp, hp, lambda a, b: a <= b))
    if res.get("newconn"):
        at_least("new conn/request req/s vs direct", "newconn", "porthole", "direct", 0.25,
                 OTHER_GOALS)
    b = res.get("burst")
    if b and b.get("porthole"):
        bp = b["porthole"]
        add("burst 500: all succeed", "500/500 every round", f"{bp['ok']}/{bp['attempted']}",
            bp["all_ok"])
        p, d = bp.get("ttfb_p99_ms"), _g(b, "direct", "ttfb_p99_ms")
        add("burst 500: p99 TTFB vs direct", "<= 3x", _num(_ratio(p, d), "{:.2f}x"),
            cmp(p, d, lambda a, b: a <= 3 * b))
    sc = _g(res, "scale", "porthole")
    if sc:
        fails = sc["n"] - sc["ok"]
        add(f"{sc['n']} connections, none failed", "0 failed",
            f"{sc['ok']} ok, {fails} failed", fails == 0)
        per = sc.get("kib_per_conn_held")
        idle = sc.get("kib_per_conn_idle")
        meas = (f"{_num(per, '{:.1f}')} KiB held after a request ({sc['ok']} conns), "
                f"{_num(idle, '{:.1f}')} KiB idle before any request")
        met = None
        if per is not None and sc["ok"] > 0:
            met = per < 16 and (idle is None or idle < 16)
        add("server+client RSS per idle proxied conn", "< 16 KiB", meas, met)
    if ins and ins.get("off") and ins.get("on"):
        cap = ins.get("capture") or {}
        if cap:
            add("inspector on: no exchange lost silently", "0 unaccounted",
                f"{cap['stored']} stored, {cap['dropped']} dropped (counted), "
                f"{cap['unaccounted']} unaccounted", cap["unaccounted"] == 0)
    ck = _g(res, "cluster", "keepalive")
    if ck:
        r = ck.get("relayed_over_owner")
        add("cluster: keep-alive req/s relayed vs owner node", ">= 0.7x", _num(r, "{:.2f}x"),
            None if r is None else r >= 0.7)
        r = ck.get("standby_over_owner")
        add("cluster: keep-alive req/s standby vs owner node, informative", ">= 0.9x",
            _num(r, "{:.2f}x"), None if r is None else r >= 0.9)
    m = res.get("memory")
    if m:
        many = m.get("client_rss_kib_many_tunnels")
        add(f"idle client RSS with {m.get('many_tunnels', 100)} tunnels", "< 20 MiB",
            _num(None if many is None else many / 1024, "{:.1f} MiB"),
            None if many is None else many < 20 * 1024)
    return out


def render_targets(ts: list[dict]) -> str:
    lines = []
    group = None
    for t in ts:
        if t.get("group") != group:
            group = t.get("group")
            lines.append(f"  {group}:" if lines == [] else f"\n  {group}:")
        mark = {True: "MET    ", False: "NOT MET", None: "n/a    "}[t["met"]]
        lines.append(f"  [{mark}] {t['target']} ({t['goal']}): {t['measured']}")
    return "\n".join(lines)


def render_markdown(doc: dict) -> str:
    m = doc["machine"]
    v = doc["versions"]
    out = [
        "# porthole benchmark results",
        "",
        "Written by `make bench` (`bench/run build/bin`); overwritten on every full run. "
        "See [README.md](README.md) for what each workload measures and how to read the ratios.",
        "",
        f"- Date: {doc['date']}",
        f"- Command: `{doc['command']}`",
        f"- Wall time of the whole run: {doc['wall_time_s']:.0f} s",
        f"- Machine: {m['nproc']} CPUs ({m['cpu_model']}), {m['memory_mib']} MiB RAM, "
        f"kernel {m['kernel']}, {m['os']}; open files limit {m['open_files_limit'][0]}",
        f"- porthole: {v.get('porthole')} (commit {v.get('git_commit')}"
        f"{', with uncommitted source changes' if v.get('sources_modified') else ''})",
        f"- Tools: {v.get('nginx')}; {v.get('haproxy')}; {v.get('wrk')}; {v.get('iperf3')}; "
        f"{v.get('openssl')}",
        f"- Durations: {doc['durations']}",
        "",
        "## Results",
        "",
        "Ratios are porthole divided by the baseline: above 1 is better for rates "
        "(requests/s, Gbit/s, MB/s), below 1 is better for latencies.",
        "",
        render_markdown_table(doc["results"]),
        "",
    ]
    if doc["results"].get("cluster"):
        out += ["## Cluster (workload 9)", "",
                "Two portholed nodes on one etcd, two tunnel clients connected to the first "
                "(the owner node). relayed: a client with --no-standby, through the other "
                "node, which hands each connection to the owner over mutual TLS; standby: a "
                "client as run by default, through the other node, which serves it over the "
                "client's standby connection.", "",
                render_markdown_cluster(doc["results"]), ""]
    if doc["results"].get("cost"):
        out += ["## Cost per request (workload 10)", "",
                "Each process on the path under workload 1's keep-alive load, per request "
                "(wrk's count): CPU, and system calls (from perf's tracepoints in the same "
                "window; by name also from strace in a shorter window of its own, which "
                "slows the process down).", "",
                render_markdown_cost(doc["results"]), ""]
    if doc["results"].get("h2"):
        out += ["## HTTP/2 and gRPC (workload 12)", ""]
        out += [f"- {line}" for line in h2_lines(doc["results"])] + [""]
    if doc["results"].get("threads"):
        out += ["## Threads (workload 11)", "",
                "portholed --threads 1 and --threads 2 under the same HTTPS keep-alive load "
                "through 4 one-thread clients, each thread count's median round; CPU in "
                "seconds over the wrk run and in cores (CPU s / wall s); ratio 2 threads / "
                "1 thread.", "",
                render_markdown_threads(doc["results"]), ""]
    out += [
        "## Details",
        "",
    ]
    out += [f"  - {line.strip()}" if line.startswith("  ") else f"- {line}"
            for line in doc["details"]]
    out += ["", "## Targets", "", "| | target | goal | measured |", "|---|---|---|---|"]
    group = None
    for t in doc["targets"]:
        if t.get("group") != group:
            group = t.get("group")
            out.append(f"| | *{group}* | | |")
        mark = {True: "met", False: "**not met**", None: "n/a"}[t["met"]]
        out.append(f"| {mark} | {t['target']} | {t['goal']} | {t['measured']} |")
    out += ["", "## Notes", ""] + [f"- {n}" for n in doc["notes"]]
    if doc.get("errors"):
        out += ["", "## Workloads that failed to run", ""]
        out += [f"- {k}: {v}" for k, v in doc["errors"].items()]
    return "\n".join(out) + "\n"
