"""Workload 9: portholed's cluster mode (docs/CLUSTER.md). Two nodes share
one tunnel namespace in a real etcd (Debian's etcd-server, /usr/bin/etcd),
on 127.0.0.1 and 127.0.0.2; two tunnel clients are connected to the first:
"c" with --no-standby (one control connection) and "s" as clients run by
default (a second, standby connection to the other node).

  owner    wrk -> n1, whose client "c" holds the tunnel -> client -> nginx
  relayed  wrk -> n2 -> mutual TLS to the owner n1 -> client "c" -> nginx
  standby  wrk -> n2 -> client "s" over its standby connection -> nginx
  direct   wrk -> nginx, for reference

Then the cost of a lost node (kill -9 of the client's node: the time until
the other node answers 200 for the tunnel again), on nodes of its own, for a
client with one connection and for one with two, and what the cluster asks
of etcd, read from etcd's Prometheus /metrics.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from . import loadgen, services
from .procs import Proc, StartError, Supervisor, free_port
from .suite import WRK_ROUNDS, Sampler, _log_summary

ETCD = Path("/usr/bin/etcd")
NODE_IPS = ("127.0.0.1", "127.0.0.2")
IDLE_S = 10  # etcd requests counted over this long with the cluster idle
NEW_TUNNELS = 10  # clients started at once to count etcd requests per new tunnel
FAILOVER_ROUNDS = 3  # for each of FAILOVER_MODES
# A client with one control connection (--no-standby), and one with two (a
# standby connection on the other node, as clients run by default).
FAILOVER_MODES = (("one", False), ("two", True))
FAILOVER_LABELS = {"one": "one connection", "two": "two connections"}
FAILOVER_POLL_S = 0.02
FAILOVER_LIMIT_S = 30
# The counter: every gRPC call etcd starts. portholed speaks etcd's JSON
# gateway (/v3/kv/range, /v3/kv/txn, /v3/lease/keepalive, /v3/watch, ...), and
# the gateway makes one gRPC call to etcd's own server per HTTP request, so a
# request is counted when it starts (a watch that stays open counts once).
COUNTER = "grpc_server_started_total"
COUNTER_DOC = (f"etcd requests: the sum of {COUNTER} over all methods in etcd's /metrics "
               "(one gRPC call per request of the JSON gateway portholed uses, counted when it "
               "starts; a watch that stays open counts once)")

# A fixed Host: with it, public requests name the tunnel whichever node they reach.
DOMAIN = "localhost"


# --------------------------------------------------------------------------
# etcd
# --------------------------------------------------------------------------

@dataclass
class Etcd:
    proc: Proc
    client_url: str  # http://127.0.0.1:P

    @property
    def endpoint(self) -> str:
        return self.client_url.removeprefix("http://")

    def counters(self) -> dict:
        """The request counters of etcd's /metrics: the sums of
        grpc_server_started_total and grpc_server_handled_total, and the
        started ones by method."""
        text = _get(self.client_url + "/metrics")
        sums = {"grpc_server_started_total": 0.0, "grpc_server_handled_total": 0.0}
        by_method: dict[str, float] = {}
        for line in text.splitlines():
            name, _, rest = line.partition("{")
            if name not in sums:
                continue
            value = float(line.rsplit(" ", 1)[1])
            sums[name] += value
            if name == COUNTER and value:
                m = re.search(r'grpc_method="([^"]+)"', rest)
                method = m.group(1) if m else "?"
                by_method[method] = by_method.get(method, 0.0) + value
        return {"started": sums["grpc_server_started_total"],
                "handled": sums["grpc_server_handled_total"], "by_method": by_method,
                "t": time.monotonic()}


def _get(url: str, timeout: float = 5) -> str:
    # No proxy, whatever the environment says: everything here is on loopback.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=timeout) as r:
        return r.read().decode()


def start_etcd(sup: Supervisor, tmp: Path) -> Etcd:
    """One etcd member with its data in the run's temp dir; waits for /health."""
    if not os.access(ETCD, os.X_OK):
        raise StartError(f"{ETCD} is missing: scripts/install-deps installs etcd-server")
    client_url = f"http://127.0.0.1:{free_port()}"
    peer_url = f"http://127.0.0.1:{free_port()}"
    proc = sup.start("etcd", [
        ETCD, "--name", "bench", "--data-dir", tmp / "etcd.data",
        "--listen-client-urls", client_url, "--advertise-client-urls", client_url,
        "--listen-peer-urls", peer_url, "--initial-advertise-peer-urls", peer_url,
        "--initial-cluster", f"bench={peer_url}", "--initial-cluster-state", "new",
        "--initial-cluster-token", "porthole-bench", "--log-level", "warn", "--logger", "zap"])
    deadline = time.monotonic() + 20
    while True:
        try:
            if json.loads(_get(client_url + "/health", timeout=1)).get("health") == "true":
                return Etcd(proc, client_url)
        except (OSError, ValueError):
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise StartError(f"etcd not healthy (exit code {proc.poll()}):\n{proc.tail()}")
        time.sleep(0.1)


def make_pki(d: Path, nodes: int) -> dict[str, Path]:
    """A cluster CA and a certificate per node n1..nN (serverAuth and
    clientAuth, for 127.0.0.N), made with the openssl CLI as docs/CLUSTER.md
    shows."""
    d.mkdir(parents=True, exist_ok=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    def run(cmd):
        p = subprocess.run(cmd, cwd=d, capture_output=True, text=True, timeout=30)
        if p.returncode != 0:
            raise StartError(f"{' '.join(map(str, cmd))}:\n{p.stderr}")

    run(["openssl", "req", "-x509", *ec, "-keyout", "cluster-ca.key", "-out", "cluster-ca.pem",
         "-days", "2", "-subj", "/CN=porthole bench cluster CA",
         "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
    files = {"ca": d / "cluster-ca.pem"}
    for i in range(1, nodes + 1):
        name = f"n{i}"
        (d / f"{name}.ext").write_text(
            f"subjectAltName=DNS:{name},IP:127.0.0.{i}\n"
            "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
            "extendedKeyUsage=serverAuth,clientAuth\n")
        run(["openssl", "req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr",
             "-subj", f"/CN={name}"])
        run(["openssl", "x509", "-req", "-in", f"{name}.csr", "-CA", "cluster-ca.pem",
             "-CAkey", "cluster-ca.key", "-CAcreateserial", "-out", f"{name}.pem", "-days", "2",
             "-extfile", f"{name}.ext"])
        files[f"{name}_cert"], files[f"{name}_key"] = d / f"{name}.pem", d / f"{name}.key"
    return files


# --------------------------------------------------------------------------
# Nodes and clients
# --------------------------------------------------------------------------

@dataclass
class Node:
    proc: Proc
    name: str  # n1, n2
    ip: str
    http_port: int
    tunnel_addr: str
    node_addr: str
    ca: Path  # the public dev CA (the same for every node of a set)
    state_dir: Path
    args: list


@dataclass
class Client:
    proc: Proc
    ready_file: Path
    sub: str

    def host(self, node: Node) -> str:
        return f"{self.sub}.{DOMAIN}:{node.http_port}"

    def standby_on(self, node: Node) -> bool:
        """The ready file says the client's standby connection is to `node`."""
        return (self.ready() or {}).get("standby") == node.tunnel_addr

    def ready(self) -> dict | None:
        try:
            doc = json.loads(self.ready_file.read_text())
        except (OSError, ValueError):
            return None
        return doc if doc.get("pid") == self.proc.pid else None


def _wait_ready(path: Path, proc: Proc, what: str, ok=lambda doc: True,
                timeout: float = 20) -> dict:
    """The ready file a program writes at `path`, once it names this process
    and `ok(doc)` holds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            doc = json.loads(path.read_text())
            if doc.get("pid") == proc.pid and ok(doc):
                return doc
        except (OSError, ValueError):
            pass
        if proc.poll() is not None:
            raise StartError(f"{what} exited with code {proc.poll()}:\n{proc.tail()}")
        if time.monotonic() > deadline:
            raise StartError(f"{what}: not ready after {timeout:.0f} s:\n{proc.tail()}")
        time.sleep(0.05)


def _port(addr: str) -> int:
    return int(addr.rsplit(":", 1)[1])


def start_node(sup: Supervisor, bindir: Path, tmp: Path, etcd: Etcd, pki: dict, i: int,
               prefix: str, tag: str, first: Node | None) -> Node:
    """Node n<i> on 127.0.0.<i>, every listener on port 0 (its ready file says
    which ports). Every node of a set presents the public HTTPS certificate of
    the first one's development CA: its *.pem files are copied into the
    node's state dir before it starts."""
    ip = f"127.0.0.{i}"
    name = f"n{i}"
    state = tmp / f"{tag}-{name}-state"
    state.mkdir(parents=True)
    if first is not None:
        for f in first.state_dir.iterdir():
            if f.is_file() and f.suffix == ".pem":
                shutil.copy2(f, state / f.name)
    ready_file = tmp / f"{tag}-{name}.ready.json"
    args = ["--dev", "--state-dir", state, "--domain", DOMAIN,
            "--http-addr", f"{ip}:0", "--https-addr", f"{ip}:0", "--tunnel-addr", f"{ip}:0",
            "--admin-addr", "127.0.0.1:0", "--ready-file", ready_file, "--log", "stderr",
            "--cluster", f"etcd://{etcd.endpoint}", "--cluster-prefix", prefix,
            "--node-id", name, "--node-addr", f"{ip}:0", "--cluster-ca", pki["ca"],
            "--node-cert", pki[f"{name}_cert"], "--node-key", pki[f"{name}_key"],
            "--tcp-bind-addr", ip]
    proc = sup.start(f"{tag}-portholed-{name}", [bindir / "portholed", *args])
    doc = _wait_ready(ready_file, proc, f"portholed {tag} {name}")
    return Node(proc, name, ip, _port(doc["http_addr"]), doc["tunnel_addr"], doc["node_addr"],
                Path(doc["dev_ca"]), state, [str(a) for a in args])


def start_client(sup: Supervisor, bindir: Path, tmp: Path, node: Node, sub: str,
                 origin_port: int, name: str, wait: bool = True,
                 standby: bool = True) -> Client:
    """`porthole http` of the origin as <sub>.localhost, given one node's address
    only (the node tells it of the others); with --no-standby unless `standby`."""
    ready_file = tmp / f"{name}.ready.json"
    argv = [bindir / "porthole", "--server-addr", node.tunnel_addr, "--trust-ca", node.ca,
            "--inspect-addr", "disabled", "--log", "stdout", "--log-level", "info",
            "--ready-file", ready_file, *([] if standby else ["--no-standby"]),
            "http", f"127.0.0.1:{origin_port}", "--proto", "http", "--subdomain", sub]
    c = Client(sup.start(name, argv), ready_file, sub)
    if wait:
        wait_client(c, name)
    return c


def wait_client(c: Client, what: str, timeout: float = 20) -> dict:
    return _wait_ready(c.ready_file, c.proc, f"porthole {what}",
                       ok=lambda d: len(d.get("tunnels") or []) == 1, timeout=timeout)


def wait_standby(c: Client, node: Node, what: str, timeout: float = 20) -> dict:
    """Until the client's ready file shows its standby connection to `node`."""
    return _wait_ready(c.ready_file, c.proc, f"porthole {what} (standby on {node.name})",
                       ok=lambda d: d.get("standby") == node.tunnel_addr, timeout=timeout)


# --------------------------------------------------------------------------
# One request
# --------------------------------------------------------------------------

async def _get_once(ip: str, port: int, host: str, path: str, timeout: float) -> str:
    """'200' if a whole 1 KiB response came back, else what happened."""
    req = (f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: porthole-bench\r\n"
           "Connection: close\r\n\r\n").encode()
    writer = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(ip, port)
            writer.write(req)
            await writer.drain()
            resp = loadgen._Response()
            while True:
                data = await reader.read(65536)
                if not data or resp.feed(data):
                    break
        if resp.status is None:
            return "closed before a response"
        if resp.status == 200 and resp.body_len == services.SMALL_SIZE:
            return "200"
        return f"HTTP {resp.status}" if resp.status != 200 else "short body"
    except Exception as e:  # noqa: BLE001 -- every failure is counted by kind
        return loadgen._err_kind(e)
    finally:
        if writer is not None:
            writer.close()


def get_once(ip: str, port: int, host: str, timeout: float = 10) -> str:
    return asyncio.run(_get_once(ip, port, host, f"/{services.SMALL_FILE}", timeout))


async def _until_served(node: Node, client: Client, killed_at: float, back_when) -> dict:
    """Requests through `node` one after the other, FAILOVER_POLL_S apart, until
    one is answered 200; meanwhile watches the client's ready file until
    `back_when(doc)` holds (the client is back: reconnected, or promoted)."""
    seen: dict[str, int] = {}
    back: dict = {}

    async def watch_client():
        while True:
            doc = client.ready()
            if doc and back_when(doc):
                back["client_back_s"] = time.monotonic() - killed_at
                back["client_server"] = doc.get("server")
                return
            await asyncio.sleep(FAILOVER_POLL_S)

    watcher = asyncio.create_task(watch_client())
    served_s = None
    attempts = 0
    try:
        while time.monotonic() - killed_at < FAILOVER_LIMIT_S:
            attempts += 1
            t0 = time.monotonic()
            got = await _get_once(node.ip, node.http_port, client.host(node),
                                  f"/{services.SMALL_FILE}", timeout=10)
            if got == "200":
                served_s = time.monotonic() - killed_at
                break
            seen[got] = seen.get(got, 0) + 1
            # A request that waited (the node retries its directory) counts
            # as one attempt; the next one goes out FAILOVER_POLL_S after it.
            if time.monotonic() - t0 < FAILOVER_POLL_S:
                await asyncio.sleep(FAILOVER_POLL_S)
        # Give the ready-file watch a moment if the request won the race.
        for _ in range(int(2 / FAILOVER_POLL_S)):
            if watcher.done():
                break
            await asyncio.sleep(FAILOVER_POLL_S)
    finally:
        watcher.cancel()
    return {"served_s": served_s, "attempts": attempts, "failures": seen, **back}


# --------------------------------------------------------------------------
# The workload
# --------------------------------------------------------------------------

def w_cluster(suite) -> None:
    sup: Supervisor = suite.sup
    tmp: Path = suite.tmp / "cluster"
    tmp.mkdir(exist_ok=True)
    pki = make_pki(tmp / "pki", len(NODE_IPS))
    etcd = start_etcd(sup, tmp)
    res: dict = {"nodes": len(NODE_IPS), "counter": COUNTER, "counter_doc": COUNTER_DOC,
                 "etcd_version": _first_line([ETCD, "--version"])}
    suite.results["cluster"] = res
    try:
        _main_set(suite, etcd, pki, tmp, res)
        _failover(suite, etcd, pki, tmp, res)
    finally:
        sup.stop(etcd.proc)
    ka, nc = res.get("keepalive", {}), res.get("newconn", {})
    one, two = _g(res, "failover", "one") or {}, _g(res, "failover", "two") or {}
    suite.log(f"  keep-alive relayed/owner {_f(ka.get('relayed_over_owner'))}x, standby/owner "
              f"{_f(ka.get('standby_over_owner'))}x; new conn/request relayed/owner "
              f"{_f(nc.get('relayed_over_owner'))}x, standby/owner "
              f"{_f(nc.get('standby_over_owner'))}x")
    suite.log(f"  failover one connection: {_f(one.get('served_s'), '{:.3f}')} s; two "
              f"connections: {_f(two.get('served_s'), '{:.3f}')} s, failures "
              f"{_f(two.get('failures_total'), '{:d}')}, promoted after "
              f"{_f(two.get('client_back_s'), '{:.3f}')} s (medians); etcd "
              f"{_f(_g(res, 'etcd', 'idle_per_s'))} req/s idle, "
              f"{_f(_g(res, 'etcd', 'per_new_tunnel'), '{:.1f}')} per new tunnel")


def _main_set(suite, etcd: Etcd, pki: dict, tmp: Path, res: dict) -> None:
    """Two nodes and two clients on n1, "c" with --no-standby and "s" with its
    standby connection on n2: etcd while idle and per new tunnel, then
    workloads 1 and 2 through the owner, relayed through the other node, and
    through the other node to the standby connection."""
    sup, bindir, nginx = suite.sup, suite.bindir, suite.nginx
    started: list[Proc] = []
    try:
        n1 = start_node(sup, bindir, tmp, etcd, pki, 1, "/bench/", "main", None)
        started.append(n1.proc)
        n2 = start_node(sup, bindir, tmp, etcd, pki, 2, "/bench/", "main", n1)
        started.append(n2.proc)
        time.sleep(1)  # n1 has seen n2 in etcd before it tells the clients of it
        cli = start_client(sup, bindir, tmp, n1, "c", nginx.port, "cluster-porthole",
                           standby=False)
        started.append(cli.proc)
        sby = start_client(sup, bindir, tmp, n1, "s", nginx.port, "cluster-porthole-s")
        started.append(sby.proc)
        wait_standby(sby, n2, "s")
        # Their warnings and errors are shown with the workload's (see
        # Suite.log_since), and in the whole run's summary.
        for k, p in (("cluster-n1", n1.proc), ("cluster-n2", n2.proc),
                     ("cluster-porthole", cli.proc), ("cluster-porthole-s", sby.proc)):
            suite.watched[k] = p
        res["node_args"] = n1.args
        res["client_args"] = cli.proc.argv[1:]
        res["standby_client_args"] = sby.proc.argv[1:]
        for c in (cli, sby):
            for node in (n1, n2):
                got = get_once(node.ip, node.http_port, c.host(node))
                if got != "200":
                    raise RuntimeError(f"a request for {c.sub}.{DOMAIN} through {node.name} "
                                       f"got {got}")
        time.sleep(2)  # pools filled, directories settled
        for c, want in ((cli, None), (sby, n2.tunnel_addr)):
            doc = c.ready() or {}
            if doc.get("server") != n1.tunnel_addr or doc.get("standby") != want:
                raise RuntimeError(f"client {c.sub}: server {doc.get('server')}, standby "
                                   f"{doc.get('standby')}; expected {n1.tunnel_addr}, {want}")

        res["etcd"] = _etcd_figures(suite, etcd, tmp, n1, n2, started)

        targets = {"direct": (f"http://127.0.0.1:{nginx.port}/{services.SMALL_FILE}",
                              f"127.0.0.1:{nginx.port}"),
                   "owner": (f"http://{n1.ip}:{n1.http_port}/{services.SMALL_FILE}",
                             cli.host(n1)),
                   "relayed": (f"http://{n2.ip}:{n2.http_port}/{services.SMALL_FILE}",
                               cli.host(n2)),
                   "standby": (f"http://{n2.ip}:{n2.http_port}/{services.SMALL_FILE}",
                               sby.host(n2))}
        procs = {"n1": n1.proc, "n2": n2.proc, "client": cli.proc, "client_s": sby.proc}
        res["keepalive"] = _wrk_rounds(suite, "keep-alive", targets, None, procs)
        res["newconn"] = _wrk_rounds(suite, "new conn", targets, suite.close_lua, procs)
        res["still_running"] = {k: p.poll() is None for k, p in procs.items()}
        res["standby_client_still_on_n2"] = sby.standby_on(n2)
        res["logs"] = {k: _log_summary(p.text()) for k, p in procs.items()}
    finally:
        _stop(sup, started)


def _etcd_figures(suite, etcd: Etcd, tmp: Path, n1: Node, n2: Node,
                  started: list[Proc]) -> dict:
    """etcd requests per second while idle (two nodes, two tunnels, one of
    them with a standby connection), and per new tunnel: NEW_TUNNELS clients
    of distinct names started at once (every other one on each node, each
    with its standby connection on the other), counted from before the first
    starts until all are up, their standby connections too, and one more
    second has passed."""
    sup = suite.sup
    out: dict = {"counter": COUNTER, "idle_tunnels": 2, "idle_standby_connections": 1}
    a = etcd.counters()
    time.sleep(IDLE_S)
    b = etcd.counters()
    idle = _delta(a, b)
    out["idle_window_s"] = round(b["t"] - a["t"], 2)
    out["idle_requests"] = idle["started"]
    out["idle_per_s"] = idle["started"] / (b["t"] - a["t"])
    out["idle_handled_per_s"] = idle["handled"] / (b["t"] - a["t"])
    out["idle_by_method"] = idle["by_method"]
    suite.log(f"  etcd idle: {idle['started']:.0f} requests in {out['idle_window_s']} s "
              f"({out['idle_per_s']:.2f}/s; {_methods(idle['by_method'])})")

    before = etcd.counters()
    clients = [start_client(sup, suite.bindir, tmp, (n1, n2)[i % 2], f"t{i}",
                            suite.nginx.port, f"cluster-porthole-t{i}", wait=False)
               for i in range(NEW_TUNNELS)]
    started += [c.proc for c in clients]
    try:
        for i, c in enumerate(clients):
            wait_client(c, f"t{i}", timeout=30)
        up = time.monotonic()
        # A client opens its standby connection once its tunnel is up; that
        # node asks etcd whether the client holds the name.
        deadline = up + 10
        while (not all(c.standby_on((n2, n1)[i % 2]) for i, c in enumerate(clients))
               and time.monotonic() < deadline):
            time.sleep(0.05)
        standby_up = time.monotonic()
        time.sleep(1)
        after = etcd.counters()
        new = _delta(before, after)
        window = after["t"] - before["t"]
        out["new_tunnels"] = NEW_TUNNELS
        out["new_window_s"] = round(window, 2)
        out["new_up_s"] = round(up - before["t"], 2)
        out["new_standby_up_s"] = round(standby_up - before["t"], 2)
        out["new_standby_connections"] = sum(c.standby_on((n2, n1)[i % 2])
                                             for i, c in enumerate(clients))
        out["new_requests"] = new["started"]
        out["new_by_method"] = new["by_method"]
        out["per_new_tunnel_raw"] = new["started"] / NEW_TUNNELS
        # Less what the idle cluster would have asked in the same time.
        out["per_new_tunnel"] = (new["started"] - out["idle_per_s"] * window) / NEW_TUNNELS
        out["per_new_tunnel_handled_raw"] = new["handled"] / NEW_TUNNELS
        for i, c in enumerate(clients):
            other = (n2, n1)[i % 2]  # the node this client is not connected to
            got = get_once(other.ip, other.http_port, c.host(other))
            if got != "200":
                out.setdefault("new_tunnel_failures", {})[f"t{i}"] = got
        # And their leaving: SIGTERM, each client gives its name back.
        left0 = etcd.counters()
        sup.stop_many([c.proc for c in clients])
        time.sleep(1)
        left1 = etcd.counters()
        left = _delta(left0, left1)
        out["per_closed_tunnel"] = ((left["started"] - out["idle_per_s"]
                                     * (left1["t"] - left0["t"])) / NEW_TUNNELS)
        out["closed_by_method"] = left["by_method"]
    finally:
        sup.stop_many([c.proc for c in clients])
        for c in clients:
            if c.proc in started:
                started.remove(c.proc)
    suite.log(f"  etcd per new tunnel: {out['per_new_tunnel']:.1f} requests "
              f"({out['new_requests']:.0f} for {NEW_TUNNELS} clients, all up in "
              f"{out['new_up_s']} s, {out['new_standby_connections']} standby connections "
              f"up in {out['new_standby_up_s']} s; less {out['idle_per_s']:.2f}/s idle over "
              f"{window:.1f} s; {_methods(new['by_method'])}); per tunnel closed "
              f"{out['per_closed_tunnel']:.1f} ({_methods(left['by_method'])})")
    return out


def _wrk_rounds(suite, label: str, targets: dict, script: Path | None, procs: dict) -> dict:
    """Workload 1 or 2 through each target in turn, WRK_ROUNDS times over
    (direct, owner, relayed, standby, direct, ...), each target's median round
    reported, with the CPU the nodes and the clients used in each round."""
    rounds: dict[str, list[dict]] = {t: [] for t in targets}
    for rnd in range(WRK_ROUNDS):
        for target, (url, host) in targets.items():
            if suite.warmup:
                loadgen.wrk(suite.sup, url, host, suite.warmup, script=script)
                time.sleep(0.5)
            sampler = Sampler(procs) if target != "direct" else None
            r = loadgen.wrk(suite.sup, url, host, suite.duration, script=script, sample=sampler)
            if sampler:
                r["cpu_s"] = sampler.cpu_used()
                r["rss_peak_kib"] = sampler.peak
            rounds[target].append(r)
            cpu = (" CPU s " + " ".join(f"{k} {_f(v)}" for k, v in r["cpu_s"].items())
                   if sampler else "")
            suite.log(f"  {label} round {rnd + 1}/{WRK_ROUNDS} {target:8s} {r['rps']:10.0f} req/s"
                      f"  p50 {r.get('p50_ms', 0):7.2f} ms  p99 {r.get('p99_ms', 0):7.2f} ms "
                      f" errors {r['errors'] or 'none'}{cpu}")
            time.sleep(1)
    out: dict = {}
    for target, rs in rounds.items():
        ordered = sorted(rs, key=lambda r: r["rps"])
        median = dict(ordered[len(ordered) // 2])
        for metric in ("p50_ms", "p99_ms"):
            values = sorted(r[metric] for r in rs if r.get(metric) is not None)
            if values:
                median[metric] = values[len(values) // 2]
        median["rounds_rps"] = [round(r["rps"]) for r in rs]
        if any("cpu_s" in r for r in rs):
            median["rounds_cpu_s"] = [r.get("cpu_s") for r in rs]
        errors: dict[str, int] = {}
        for r in rs:
            for k, v in (r.get("errors") or {}).items():
                errors[k] = errors.get(k, 0) + v
        median["errors_all_rounds"] = errors
        out[target] = median
    o, rl, sb, d = (_g(out, t, "rps") for t in ("owner", "relayed", "standby", "direct"))
    out["relayed_over_owner"] = rl / o if o and rl is not None else None
    out["standby_over_owner"] = sb / o if o and sb is not None else None
    out["owner_over_direct"] = o / d if d and o is not None else None
    out["relayed_over_direct"] = rl / d if d and rl is not None else None
    out["standby_over_direct"] = sb / d if d and sb is not None else None
    return out


def _failover(suite, etcd: Etcd, pki: dict, tmp: Path, res: dict) -> None:
    """FAILOVER_ROUNDS rounds for a client with one connection (--no-standby)
    and as many for one with two (its standby connection on n2), each on a
    fresh pair of nodes (a cluster prefix of their own) and a fresh client
    given n1's address only: kill -9 n1, then requests through n2 until one
    is answered 200, while the client's ready file is watched until it is
    back (one connection: its next connection, to whichever node; two: its
    "server" is n2, the standby connection promoted)."""
    out: dict = {"poll_s": FAILOVER_POLL_S, "limit_s": FAILOVER_LIMIT_S}
    res["failover"] = out
    for mode, standby in FAILOVER_MODES:
        rounds = [_failover_round(suite, etcd, pki, tmp, mode, standby, rnd)
                  for rnd in range(FAILOVER_ROUNDS)]
        served = sorted(r["served_s"] for r in rounds if r["served_s"] is not None)
        back = sorted(r["client_back_s"] for r in rounds if r.get("client_back_s") is not None)
        out[mode] = {
            "standby": standby,
            "rounds": rounds,
            "served_s": served[len(served) // 2] if len(served) == len(rounds) else None,
            "served_s_rounds": [r["served_s"] for r in rounds],
            "client_back_s": back[len(back) // 2] if len(back) == len(rounds) else None,
            "client_back_s_rounds": [r.get("client_back_s") for r in rounds],
            "failures_total": sum(sum(r["failures"].values()) for r in rounds),
            "all_served": len(served) == len(rounds)}


def _failover_round(suite, etcd: Etcd, pki: dict, tmp: Path, mode: str, standby: bool,
                    rnd: int) -> dict:
    sup, bindir = suite.sup, suite.bindir
    tag = f"failover-{mode}{rnd + 1}"
    label = f"failover {FAILOVER_LABELS[mode]} round {rnd + 1}/{FAILOVER_ROUNDS}"
    started: list[Proc] = []
    try:
        a = start_node(sup, bindir, tmp, etcd, pki, 1, f"/bench-{tag}/", tag, None)
        started.append(a.proc)
        b = start_node(sup, bindir, tmp, etcd, pki, 2, f"/bench-{tag}/", tag, a)
        started.append(b.proc)
        time.sleep(1)  # a has seen b before it tells the client of it
        c = start_client(sup, bindir, tmp, a, f"f{rnd + 1}", suite.nginx.port,
                         f"{tag}-porthole", standby=standby)
        started.append(c.proc)
        if standby:
            wait_standby(c, b, tag)
        time.sleep(1)
        got = get_once(b.ip, b.http_port, c.host(b))
        if got != "200":
            raise RuntimeError(f"{label}: before the kill, a request through n2 got {got}")
        before = c.ready() or {}
        if before.get("standby") != (b.tunnel_addr if standby else None):
            raise RuntimeError(f"{label}: before the kill, the client's standby is "
                               f"{before.get('standby')}")
        connection = before.get("connection", 1)
        if standby:
            def back_when(doc):
                return doc.get("server") == b.tunnel_addr and bool(doc.get("tunnels"))
        else:
            def back_when(doc):
                return doc.get("connection", 0) > connection and bool(doc.get("tunnels"))
        os.kill(a.proc.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        r = asyncio.run(_until_served(b, c, killed_at, back_when))
        r["node_b_log"] = _log_summary(b.proc.text())
        r["client_log"] = _log_summary(c.proc.text())
        r["client_connected_lines"] = re.findall(r"connected to server (\S+)", c.proc.text())
        back = "client promoted to" if standby else "client back on"
        suite.log(f"  {label}: 200 through n2 after {_f(r['served_s'], '{:.3f}')} s "
                  f"({r['attempts']} requests; before it {r['failures'] or 'no failure'}); "
                  f"{back} {r.get('client_server', '?')} after "
                  f"{_f(r.get('client_back_s'), '{:.3f}')} s")
        return r
    finally:
        _stop(sup, started)


def _stop(sup: Supervisor, started: list[Proc]) -> None:
    """Clients first, then nodes: a client stopped with its node logs a lost
    connection that says nothing about the run."""
    clients = [p for p in started if p.argv and Path(p.argv[0]).name == "porthole"]
    sup.stop_many(list(reversed(clients)))
    sup.stop_many([p for p in reversed(started) if p not in clients])


# --------------------------------------------------------------------------

def _delta(a: dict, b: dict) -> dict:
    methods = {m: b["by_method"].get(m, 0) - a["by_method"].get(m, 0) for m in b["by_method"]}
    return {"started": b["started"] - a["started"], "handled": b["handled"] - a["handled"],
            "by_method": {m: int(v) for m, v in sorted(methods.items(), key=lambda kv: -kv[1])
                          if v}}


def _methods(by_method: dict) -> str:
    return ", ".join(f"{m} {v}" for m, v in by_method.items()) or "none"


def _first_line(argv) -> str | None:
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        return (p.stdout or p.stderr).strip().splitlines()[0]
    except (OSError, subprocess.TimeoutExpired, IndexError):
        return None


def _g(d, *keys):
    for k in keys:
        if not isinstance(d, dict):
            return None
        d = d.get(k)
    return d


def _f(x, fmt="{:.2f}"):
    return "-" if x is None else fmt.format(x)
