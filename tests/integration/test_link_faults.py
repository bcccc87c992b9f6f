"""Faults of the link between porthole and portholed: porthole in a network
namespace of its own, joined to portholed by the user-space link emulator of
linkemu.py (this kernel has no netem), which delays, loses, or drops every
packet. They need root and are skipped otherwise.

The long runs are marked soak and left out of `make test`; run them with
    cd tests/integration && PORTHOLE_BIN_DIR=../../build/bin \\
        /usr/bin/python3 -m pytest -q -s -p no:cacheprovider -o faulthandler_timeout=0 -m soak
"""

from __future__ import annotations

import threading
import time

import pytest

import harness
import linkemu
from backends import HTTPBackend, stream_sha256
from faults import Download, assert_hello, report, usage
from harness import curl, urls_of

MIB = 1024 * 1024

pytestmark = pytest.mark.skipif(linkemu.skip_reason() is not None,
                                reason=f"link faults: {linkemu.skip_reason()}")


# --------------------------------------------------------------------------
# The link: porthole in a namespace of its own, behind the link emulator
# --------------------------------------------------------------------------

class Lan:
    """porthole in namespace `ns`, its local service there too (on the
    namespace's loopback), portholed here with its tunnel listener on the
    emulated link and its public side on loopback."""

    def __init__(self, ns, link, server, ca, backend):
        self.ns, self.link, self.server, self.ca, self.backend = ns, link, server, ca, backend

    def client(self, start_porthole, *args, **kw):
        return start_porthole("http", f"127.0.0.1:{self.backend.port}", *args,
                              server_addr=f"{self.link.root_addr}:{self.server.tunnel_port}",
                              trust_ca=self.ca, prefix=["ip", "netns", "exec", self.ns.name],
                              **kw)


@pytest.fixture
def lan(tmp_path, start_portholed):
    """Factory: lan(delay_ms, loss, *server_flags) -> Lan."""
    made = []

    def make(delay_ms: float = 0.0, loss: float = 0.0, *server_flags: str) -> Lan:
        ns = linkemu.Namespace()
        made.append(ns)
        link = linkemu.Link(ns, delay_ms=delay_ms, loss=loss)
        made.append(link)
        harness.register(link)
        tls = harness.make_tls_files(tmp_path / "tls", extra_names=f",IP:{link.root_addr}")
        server = start_portholed("--tls-cert", tls["cert"], "--tls-key", tls["key"],
                                 *server_flags, dev=False,
                                 tunnel_addr=f"{link.root_addr}:0")
        with linkemu.in_netns(ns.name):
            backend = HTTPBackend()
        return Lan(ns, link, server, tls["ca"], backend)

    yield make
    harness.stop_all()
    for thing in reversed(made):
        thing.stop()


def outage(lan: Lan, start_porthole, seconds: float, client_flags=()) -> dict:
    client = lan.client(start_porthole, "--subdomain", "island", "--proto", "http",
                        *client_flags)
    url = client.url()
    assert_hello(url)
    c_mark, s_mark = client.proc.mark(), lan.server.proc.mark()
    up_before = client.ready
    lan.link.drop_all()
    t_cut = time.monotonic()
    client.proc.wait_for(r"no Pong from the server", timeout=seconds + 10, since=c_mark)
    t_client_saw = time.monotonic() - t_cut
    lan.server.proc.wait_for(r"no heartbeat in time", timeout=seconds + 40, since=s_mark)
    t_server_saw = time.monotonic() - t_cut
    # While it is away, its URL says so.
    r = curl(f"{url}/hello")
    assert r.status == 503, (r.status, r.body[:200])
    left = seconds - (time.monotonic() - t_cut)
    if left > 0:
        threading.Event().wait(left)  # the outage lasts this long: no event to wait for
    lan.link.restore()
    t_restored = time.monotonic()
    up = client.wait_tunnels(1, since=up_before, timeout=60)
    t_back = time.monotonic() - t_restored
    assert urls_of(up) == [url]
    assert client.proc.running
    assert_hello(url)
    figures = {"outage": f"{seconds:g}s", "client_detected_after": f"{t_client_saw:.1f}s",
               "server_detected_after": f"{t_server_saw:.1f}s",
               "tunnel_back_after_restore": f"{t_back:.1f}s", "link": lan.link.stats()}
    return figures


def test_link_outage_is_detected_by_heartbeats_and_the_tunnel_comes_back(lan, start_porthole):
    net = lan(0, 0, "--heartbeat-timeout", "3")
    figures = outage(net, start_porthole, 8, ["--heartbeat-interval", "1"])
    report("link outage (short, heartbeat 1s/3s)", **figures)


@pytest.mark.soak
def test_link_outage_of_60s_with_default_heartbeats(lan, start_porthole):
    net = lan(0, 0)
    figures = outage(net, start_porthole, 60)
    report("link outage (60s, default heartbeats)", **figures)


def slow_download(lan: Lan, start_porthole, size: int) -> dict:
    client = lan.client(start_porthole, "--subdomain", "slow", "--proto", "http")
    pid_s, pid_c = lan.server.proc.pid, client.proc.pid
    before = (usage(pid_s), usage(pid_c))
    t0 = time.monotonic()
    d = Download(lan.server.http_port, "slow.localhost", f"/stream/{size}", timeout=120)
    d.join(3600)
    took = time.monotonic() - t0
    after = (usage(pid_s), usage(pid_c))
    assert d.outcome == "complete", (d.outcome, d.got, d.error)
    assert d.sha256 == stream_sha256(size)
    return {"size": f"{size / MIB:g} MiB", "time": f"{took:.1f}s",
            "throughput": f"{size / took / 1024:.0f} KiB/s", "sha256": d.sha256[:16] + "...",
            "portholed": f"{before[0]} -> {after[0]}", "porthole": f"{before[1]} -> {after[1]}",
            "link": lan.link.stats()}


def test_slow_lossy_link_carries_a_download_intact(lan, start_porthole):
    net = lan(100, 0.01)  # 200 ms round trip, 1% loss each way
    report("slow link (200 ms RTT, 1% loss)", **slow_download(net, start_porthole, 4 * MIB))


@pytest.mark.soak
def test_slow_lossy_link_carries_100mib_intact(lan, start_porthole):
    net = lan(100, 0.01)
    report("slow link (200 ms RTT, 1% loss)", **slow_download(net, start_porthole, 100 * MIB))


