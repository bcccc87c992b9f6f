"""The services under test, with configs generated into the run's temp dir:
nginx (the origin), iperf3 (a bulk TCP origin), the two-hop haproxy TLS
chains (the baselines: one in mode tcp, one in mode http), and portholed /
porthole."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .procs import Proc, StartError, Supervisor, free_port, wait_listening  # noqa: F401

SMALL_FILE = "1k.bin"
BIG_FILE = "1g.bin"
SMALL_SIZE = 1024
BIG_SIZE = 1 << 30


_BUF = bytearray(1 << 20)


def make_site(tmp: Path) -> Path:
    www = tmp / "www"
    www.mkdir()
    (www / SMALL_FILE).write_bytes(bytes((i * 7 + 13) % 251 for i in range(SMALL_SIZE)))
    # 1 GiB, sparse: no disk space is used, nginx serves zeros.
    subprocess.run(["truncate", "-s", str(BIG_SIZE), str(www / BIG_FILE)], check=True)
    # Read it once: the first read of a hole fills the page cache (about
    # 0.5 GB/s here), which would otherwise be charged to the first download.
    with open(www / BIG_FILE, "rb") as f:
        while f.readinto(_BUF):
            pass
    # nginx workers run as nobody: let them read the site.
    for p in (tmp, www):
        p.chmod(0o755)
    for f in www.iterdir():
        f.chmod(0o644)
    return www


@dataclass
class Nginx:
    proc: Proc
    port: int


def start_nginx(sup: Supervisor, tmp: Path, www: Path, name: str = "nginx",
                listen: str = "backlog=4096") -> Nginx:
    """nginx serving `www` on a port of its own; `listen` are the listen
    directive's options ("http2" for h2c)."""
    port = free_port()
    prefix = tmp / name
    prefix.mkdir()
    for d in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (prefix / d).mkdir()
    conf = prefix / "nginx.conf"
    conf.write_text(f"""\
worker_processes 1;
worker_rlimit_nofile 20000;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
daemon off;
events {{
    worker_connections 20000;
    use epoll;
}}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_requests 100000000;
    keepalive_timeout 600s;
    default_type application/octet-stream;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    server {{
        listen 127.0.0.1:{port} {listen};
        server_name _;
        root {www};
    }}
}}
""")
    proc = sup.start(name, ["nginx", "-p", prefix, "-e", prefix / "error.log", "-c", conf])
    wait_listening(port, proc=proc)
    return Nginx(proc, port)


@dataclass
class Iperf3:
    proc: Proc
    port: int


def start_iperf3(sup: Supervisor) -> Iperf3:
    port = free_port()
    proc = sup.start("iperf3-server",
                     ["iperf3", "-s", "-B", "127.0.0.1", "-p", port, "--forceflush"])
    proc.wait_for(r"Server listening on", timeout=10)
    return Iperf3(proc, port)


def make_cert(tmp: Path) -> Path:
    """A self-signed certificate for haproxy's TLS hop, made with the openssl
    CLI. EC P-256, the same key type as portholed's --dev certificate."""
    d = tmp / "haproxy"
    d.mkdir(exist_ok=True)
    bundle = d / "bundle.pem"
    if bundle.exists():  # one certificate for both chains
        return bundle
    key, crt = d / "key.pem", d / "crt.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", crt,
                    "-days", "2", "-subj", "/CN=localhost"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    bundle.write_bytes(crt.read_bytes() + key.read_bytes())
    return bundle


@dataclass
class HaproxyChain:
    public: Proc
    inner: Proc
    ports: dict  # origin name -> public port of the chain
    public_cfg: str
    inner_cfg: str


_HAPROXY_DEFAULTS = """\
defaults
    mode {mode}
    timeout connect 10s
    timeout client 600s
    timeout server 600s
    maxconn 100000
"""


def start_haproxy_chain(sup: Supervisor, tmp: Path, origins: dict) -> HaproxyChain:
    """haproxy-tcp: two haproxy processes, both mode tcp:
        public haproxy (plain port) --TLS, ssl verify none--> inner haproxy
        (bind ... ssl crt) --> origin,
    one such path per origin ({name: port}). This is the work any TLS tunnel
    does: a public side, a TLS hop, a private side; one connection on each
    hop per public connection, as a tcp tunnel."""
    public, inner = [], []
    for name, origin_port in origins.items():
        public.append((name, f"""\
backend tls_{name}
    server inner 127.0.0.1:{{inner_port}} ssl verify none
"""))
        inner.append((name, f"""\
backend origin_{name}
    server origin 127.0.0.1:{origin_port}
"""))
    return _start_chain(sup, tmp, "tcp", public, inner)


def start_haproxy_http_chain(sup: Supervisor, tmp: Path, origins: dict) -> HaproxyChain:
    """haproxy-http: the same two hops in mode http, as an HTTP tunnel's two
    machines would run them: the public haproxy parses each request, adds
    X-Forwarded-For (option forwardfor) and sends it over TLS to the inner
    haproxy on a server connection it keeps and shares between clients
    (http-reuse always); the inner haproxy does the same towards the origin.
    Keep-alive on every hop (haproxy's default, option http-keep-alive), so a
    public connection closed after one request does not close the hops
    behind it. Default threads (one per CPU), as haproxy-tcp."""
    public, inner = [], []
    for name, origin_port in origins.items():
        public.append((name, f"""\
    option forwardfor
backend tls_{name}
    http-reuse always
    server inner 127.0.0.1:{{inner_port}} ssl verify none
"""))
        inner.append((name, f"""\
backend origin_{name}
    http-reuse always
    server origin 127.0.0.1:{origin_port}
"""))
    return _start_chain(sup, tmp, "http", public, inner)


def _start_chain(sup: Supervisor, tmp: Path, mode: str, public: list, inner: list
                 ) -> HaproxyChain:
    """One haproxy process per hop: `inner` listens with TLS and connects to
    the origin, `public` listens on a plain port and connects to `inner` over
    TLS. public and inner are [(origin name, the frontend's tail and its
    backend)]; "{inner_port}" in public's text is the inner hop's port."""
    bundle = make_cert(tmp)
    d = tmp / "haproxy"
    defaults = _HAPROXY_DEFAULTS.format(mode=mode)
    pub_cfg, inner_cfg = ["global\n", defaults], ["global\n", defaults]
    pub_ports, inner_ports = {}, {}
    for (name, pub_text), (_, inner_text) in zip(public, inner):
        pub_ports[name], inner_ports[name] = free_port(), free_port()
        pub_cfg.append(f"""\
frontend pub_{name}
    bind 127.0.0.1:{pub_ports[name]}
    default_backend tls_{name}
""" + pub_text.replace("{inner_port}", str(inner_ports[name])))
        inner_cfg.append(f"""\
frontend tls_{name}
    bind 127.0.0.1:{inner_ports[name]} ssl crt {bundle}
    default_backend origin_{name}
""" + inner_text)
    pub_path, inner_path = d / f"public-{mode}.cfg", d / f"inner-{mode}.cfg"
    pub_path.write_text("".join(pub_cfg))
    inner_path.write_text("".join(inner_cfg))
    inner_proc = sup.start(f"haproxy-{mode}-inner", ["haproxy", "-db", "-f", inner_path])
    for p in inner_ports.values():
        wait_listening(p, proc=inner_proc)
    public_proc = sup.start(f"haproxy-{mode}-public", ["haproxy", "-db", "-f", pub_path])
    for p in pub_ports.values():
        wait_listening(p, proc=public_proc)
    return HaproxyChain(public_proc, inner_proc, pub_ports, pub_path.read_text(),
                        inner_path.read_text())


@dataclass
class Portholed:
    proc: Proc
    http_port: int
    tunnel_port: int
    ca: Path
    args: list


def start_portholed(sup: Supervisor, bindir: Path, tmp: Path, name: str = "portholed",
                    extra: list | None = None) -> Portholed:
    state = tmp / f"{name}-state"
    http_port, tunnel_port = free_port(), free_port()
    args = ["--dev", "--state-dir", state, "--domain", "localhost",
            "--http-addr", f"127.0.0.1:{http_port}",
            "--https-addr", f"127.0.0.1:{tunnel_port}",
            "--tunnel-addr", f"127.0.0.1:{tunnel_port}",
            "--admin-addr", "127.0.0.1:0",
            "--log", "stderr", *(extra or [])]
    proc = sup.start(name, [bindir / "portholed", *args])
    proc.wait_for(r"portholed ready", timeout=20)
    return Portholed(proc, http_port, tunnel_port, state / "ca.pem", [str(a) for a in args])


@dataclass
class Tunnel:
    proc: Proc
    url: str
    public_port: int
    host: str  # the Host header public requests need


def start_porthole(sup: Supervisor, bindir: Path, server: Portholed, kind: str,
                   local_port: int, subdomain: str | None = None, name: str = "porthole",
                   timeout: float = 20.0, inspect: list | None = None,
                   extra: list | None = None, proto: str = "http",
                   upstream: str | None = None) -> Tunnel:
    """A tunnel client; with the inspector off unless `inspect` gives its
    options (e.g. ["--inspect-addr", "127.0.0.1:0", "--inspect-db", path]).
    An http tunnel's public schemes are `proto` (http, https, http+https);
    its url and host are the first the client prints."""
    argv = [bindir / "porthole", "--server-addr", f"localhost:{server.tunnel_port}",
            *(inspect or ["--inspect-addr", "disabled"]),
            "--trust-ca", server.ca, "--log", "stdout", "--log-level", "info", *(extra or [])]
    if kind == "http":
        argv += ["http", f"127.0.0.1:{local_port}", "--proto", proto]
        if upstream:
            argv += ["--upstream", upstream]
        if subdomain:
            argv += ["--subdomain", subdomain]
    else:
        argv += ["tcp", f"127.0.0.1:{local_port}"]
    proc = sup.start(name, argv)
    m = proc.wait_for(r"Forwarding ((\w+)://([^/\s:]+):(\d+))", timeout=timeout)
    url, host, port = m.group(1), m.group(3), int(m.group(4))
    return Tunnel(proc, url, port, f"{host}:{port}")


def check_tools(names: list[str]) -> list[str]:
    missing = []
    for n in names:
        if not any(os.access(os.path.join(d, n), os.X_OK)
                   for d in os.environ.get("PATH", "").split(":") + ["/usr/sbin", "/sbin"]):
            missing.append(n)
    return missing


__all__ = ["StartError"]
