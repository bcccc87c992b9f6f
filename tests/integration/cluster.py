"""Real etcd members and portholed cluster nodes on loopback, for the
cluster tests: etcd from Debian's etcd-server with its data in a temp dir and
OS-chosen ports, a cluster CA with a certificate per node (openssl), and
nodes listening on 127.0.0.1, .2, .3 ... (all of 127/8 is this machine)."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import harness
from harness import Process, WaitTimeout, clean_env, os_port, scaled

ETCD = "/usr/bin/etcd"
ETCDCTL = "/usr/bin/etcdctl"


@dataclass
class Etcd:
    proc: Process
    name: str
    client_url: str  # http://127.0.0.1:P
    peer_url: str
    data_dir: Path

    @property
    def endpoint(self) -> str:
        return self.client_url.removeprefix("http://")

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.client_url + "/health", timeout=1) as r:
                return json.loads(r.read()).get("health") == "true"
        except OSError:
            return False

    def ctl(self, *args: str) -> str:
        """etcdctl against this member; its output."""
        p = subprocess.run([ETCDCTL, "--endpoints", self.client_url, *args], capture_output=True,
                           text=True, timeout=30, env={"ETCDCTL_API": "3", "PATH": "/usr/bin:/bin"})
        assert p.returncode == 0, f"etcdctl {' '.join(args)}: {p.stderr}"
        return p.stdout


def restart_etcd(e: Etcd) -> Etcd:
    """The same member again (its data dir, its ports), after it was stopped."""
    argv = e.proc.argv
    proc = Process(argv, name=e.name, env=clean_env(e.data_dir.parent / "etcd-home"))
    again = Etcd(proc, e.name, e.client_url, e.peer_url, e.data_dir)
    wait_healthy(again)
    return again


def start_etcd(base: Path, name: str = "etcd0", host: str = "127.0.0.1",
               cluster: str | None = None, peer_port: int | None = None,
               state: str = "new") -> Etcd:
    """One etcd member; alone unless `cluster` names every member
    ("a=http://...,b=http://..."). Waits until /health says true."""
    if not Path(ETCD).exists():
        raise AssertionError(f"{ETCD} is missing: scripts/install-deps installs etcd-server")
    client_port = os_port(host)
    peer_port = peer_port or os_port(host)
    client_url = f"http://{host}:{client_port}"
    peer_url = f"http://{host}:{peer_port}"
    data = base / f"{name}.data"
    argv = [ETCD, "--name", name, "--data-dir", data,
            "--listen-client-urls", client_url, "--advertise-client-urls", client_url,
            "--listen-peer-urls", peer_url, "--initial-advertise-peer-urls", peer_url,
            "--initial-cluster", cluster or f"{name}={peer_url}",
            "--initial-cluster-state", state, "--initial-cluster-token", "porthole-test",
            "--log-level", "warn", "--logger", "zap"]
    proc = Process(argv, name=name, env=clean_env(base / "etcd-home"))
    e = Etcd(proc, name, client_url, peer_url, data)
    if cluster is None:
        wait_healthy(e)
    return e


def start_etcd_cluster(base: Path, members: int = 3) -> list[Etcd]:
    """A cluster of etcd members on 127.0.0.1, all healthy."""
    names = [f"etcd{i}" for i in range(members)]
    peers = {n: os_port() for n in names}
    initial = ",".join(f"{n}=http://127.0.0.1:{peers[n]}" for n in names)
    started = [start_etcd(base, n, cluster=initial, peer_port=peers[n]) for n in names]
    for e in started:
        wait_healthy(e, timeout=30)
    return started


def leader_of(members: list[Etcd]) -> Etcd:
    """The member the others follow, as etcd's maintenance status says."""
    ids = {}
    leader = None
    for e in members:
        if not e.proc.running:
            continue
        req = urllib.request.Request(e.client_url + "/v3/maintenance/status", data=b"{}",
                                     method="POST")
        with urllib.request.urlopen(req, timeout=5) as r:
            status = json.loads(r.read())
        ids[status["header"]["member_id"]] = e
        leader = status["leader"]
    return ids[leader]


def wait_healthy(e: Etcd, timeout: float = 20) -> None:
    deadline = time.monotonic() + scaled(timeout)
    while not e.healthy():
        if not e.proc.running:
            raise WaitTimeout(f"etcd {e.name} exited:\n{e.proc._tail()}")
        if time.monotonic() > deadline:
            raise WaitTimeout(f"etcd {e.name} not healthy in {timeout}s:\n{e.proc._tail()}")
        time.sleep(0.05)


def make_cluster_ca(d: Path, nodes: int) -> dict[str, Path]:
    """A cluster CA and a certificate per node (n1, n2, ...: serverAuth and
    clientAuth, for 127.0.0.N), made with openssl into d."""
    d.mkdir(parents=True, exist_ok=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    env = clean_env(d / "home")

    def run(cmd):
        p = subprocess.run(cmd, cwd=d, capture_output=True, text=True, timeout=30, env=env)
        assert p.returncode == 0, f"{' '.join(cmd)}:\n{p.stderr}"

    run(["openssl", "req", "-x509", *ec, "-keyout", "cluster-ca.key", "-out", "cluster-ca.pem",
         "-days", "2", "-subj", "/CN=porthole test cluster CA",
         "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
    files = {"ca": d / "cluster-ca.pem", "ca_key": d / "cluster-ca.key"}
    for i in range(1, nodes + 1):
        files |= make_node_cert(d, f"n{i}", f"127.0.0.{i}")
    return files


def make_node_cert(d: Path, name: str, ip: str, ca: str = "cluster-ca") -> dict[str, Path]:
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    env = clean_env(d / "home")
    (d / f"{name}.ext").write_text(
        f"subjectAltName=DNS:{name},IP:{ip}\n"
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature\n"
        "extendedKeyUsage=serverAuth,clientAuth\n")
    for cmd in (["openssl", "req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr",
                 "-subj", f"/CN={name}"],
                ["openssl", "x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem",
                 "-CAkey", f"{ca}.key", "-CAcreateserial", "-out", f"{name}.pem", "-days", "2",
                 "-extfile", f"{name}.ext"]):
        p = subprocess.run(cmd, cwd=d, capture_output=True, text=True, timeout=30, env=env)
        assert p.returncode == 0, f"{' '.join(cmd)}:\n{p.stderr}"
    return {f"{name}_cert": d / f"{name}.pem", f"{name}_key": d / f"{name}.key"}


@dataclass
class Cluster:
    etcd_url: str  # etcd://host:port,...
    tls: dict[str, Path]
    base: Path
    home: Path
    nodes: list[harness.Server] = field(default_factory=list)
    lease_ttl: int = 3
    # TCP tunnel ports: a range free on 127.0.0.1 (likely on .2 and .3 too),
    # so that a port one node picks is not another program's on another IP.
    tcp_ports: tuple[int, int] | None = None

    @property
    def ca(self) -> Path:
        """The CA of the public HTTPS certificate every node presents."""
        return self.nodes[0].ca

    def node_args(self, i: int, node_id: str | None = None, node_port: int = 0) -> list[str]:
        ip = f"127.0.0.{i}"
        return ["--cluster", self.etcd_url, "--node-id", node_id or f"n{i}",
                "--node-addr", f"{ip}:{node_port}",
                "--cluster-ca", self.tls["ca"], "--node-cert", self.tls[f"n{i}_cert"],
                "--node-key", self.tls[f"n{i}_key"], "--cluster-lease-ttl", str(self.lease_ttl),
                "--tcp-bind-addr", ip,
                *(["--tcp-ports", f"{self.tcp_ports[0]}-{self.tcp_ports[1]}"]
                  if self.tcp_ports else [])]

    def start_node(self, i: int, *extra: str, node_id: str | None = None,
                   ports: dict | None = None, **kw) -> harness.Server:
        """Node n<i> on 127.0.0.<i>; every node presents the public HTTPS
        certificate of the first node's development CA."""
        ip = f"127.0.0.{i}"
        state = self.base / f"n{i}-state"
        if self.nodes and not state.exists():
            state.mkdir(parents=True)
            for f in self.nodes[0].state_dir.iterdir():
                if f.is_file() and f.suffix == ".pem":
                    shutil.copy2(f, state / f.name)
        kw.setdefault("name", f"portholed-n{i}")
        p = ports or {}
        admin = ["--admin-addr", f"127.0.0.1:{p['admin']}"] if "admin" in p else []
        node = harness.start_server(*self.node_args(i, node_id, p.get("node", 0)), *admin, *extra,
                                    state_dir=state, home=self.home,
                                    http_addr=f"{ip}:{p.get('http', 0)}",
                                    https_addr=f"{ip}:{p.get('https', 0)}",
                                    tunnel_addr=f"{ip}:{p.get('tunnel', 0)}", **kw)
        if i - 1 < len(self.nodes):
            self.nodes[i - 1] = node
        else:
            self.nodes.append(node)
        return node


def connect_when_open(addr: tuple[str, int], timeout: float = 5) -> socket.socket:
    """A connection to addr, retried while it is refused (a port a node opens
    when it learns of a tcp tunnel), for at most `timeout` seconds."""
    deadline = time.monotonic() + scaled(timeout)
    while True:
        try:
            return socket.create_connection(addr, timeout=20)
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def fixed_ports(i: int) -> dict:
    """Ports for node i that stay the same across its restarts."""
    ip = f"127.0.0.{i}"
    return {"http": os_port(ip), "https": os_port(ip), "tunnel": os_port(ip), "node": os_port(ip),
            "admin": os_port()}


def start_haproxy(base: Path, nodes: dict[int, dict]) -> tuple[Process, int, int]:
    """haproxy (Debian's) in front of the nodes' public HTTP ports, checking
    each node's /healthz, retrying a request a node did not take on another:
    (process, public port, stats port)."""
    front, stats = os_port(), os_port()
    servers = "\n".join(
        f"  server n{i} 127.0.0.{i}:{p['http']} check port {p['admin']} addr 127.0.0.1 "
        f"inter 100ms fall 1 rise 2" for i, p in nodes.items())
    cfg = base / "haproxy.cfg"
    cfg.write_text(f"""global
  maxconn 2000
defaults
  mode http
  timeout connect 2s
  timeout client 30s
  timeout server 30s
  retries 3
  option redispatch 1
  retry-on conn-failure empty-response
frontend public
  bind 127.0.0.1:{front}
  default_backend nodes
backend nodes
  balance roundrobin
  option httpchk GET /healthz
{servers}
listen stats
  bind 127.0.0.1:{stats}
  stats enable
  stats uri /stats
""")
    proc = Process(["/usr/sbin/haproxy", "-db", "-f", cfg], name="haproxy",
                   env=clean_env(base / "haproxy-home"))
    deadline = time.monotonic() + scaled(10)
    while True:
        try:
            socket.create_connection(("127.0.0.1", stats), timeout=1).close()
            break
        except OSError:
            assert proc.running, proc.text()
            assert time.monotonic() < deadline, "haproxy did not listen"
            time.sleep(0.02)
    return proc, front, stats


def haproxy_up(stats: int) -> set[str]:
    """The servers haproxy's checks say are up."""
    with urllib.request.urlopen(f"http://127.0.0.1:{stats}/stats;csv", timeout=5) as r:
        rows = r.read().decode().splitlines()
    head = rows[0].lstrip("# ").split(",")
    up = set()
    for row in rows[1:]:
        cells = dict(zip(head, row.split(",")))
        if (cells.get("pxname") == "nodes" and cells.get("svname") != "BACKEND"
                and cells.get("status") == "UP"):
            up.add(cells["svname"])
    return up


def public_url(node: harness.Server, host: str, scheme: str = "http", path: str = "/") -> str:
    port = node.http_port if scheme == "http" else node.https_port
    return f"{scheme}://{host}:{port}{path}"


def resolve(node: harness.Server, host: str, scheme: str = "http") -> list[str]:
    """curl arguments that send `host` to this node (as DNS would)."""
    port = node.http_port if scheme == "http" else node.https_port
    return ["--resolve", f"{host}:{port}:{node.ip}"]
