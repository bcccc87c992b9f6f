"""Back-pressure: a public client that reads slowly holds up the local
service through the tunnel, so neither portholed nor porthole buffers without
bound (their memory, sampled from /proc, stays flat).

The long runs are marked soak and left out of `make test`; run them with
    cd tests/integration && PORTHOLE_BIN_DIR=../../build/bin \\
        /usr/bin/python3 -m pytest -q -s -p no:cacheprovider -o faulthandler_timeout=0 -m soak
"""

from __future__ import annotations

import time

import pytest

import harness
from backends import stream_sha256
from faults import MEMORY_IS_MEANINGFUL, Download, RSSSampler, report, usage

MIB = 1024 * 1024


def slow_reader(server, client, size: int, rate: float) -> dict:
    pids = {"portholed": server.proc.pid, "porthole": client.proc.pid}
    start = {k: usage(p) for k, p in pids.items()}
    sampler = RSSSampler(pids)
    t0 = time.monotonic()
    d = Download(server.http_port, "trickle.localhost", f"/stream/{size}", rate=rate,
                 rcvbuf=256 * 1024, timeout=60)
    d.join(size / rate * 2 + 120)
    took = time.monotonic() - t0
    samples = sampler.stop()
    end = {k: usage(p) for k, p in pids.items()}
    assert d.outcome == "complete", (d.outcome, d.got)
    assert d.sha256 == stream_sha256(size)
    figures = {"size": f"{size / MIB:g} MiB", "time": f"{took:.1f}s",
               "rate": f"{size / took / MIB:.2f} MiB/s"}
    for name, rss in samples.items():
        # Flat: after the first seconds (buffers reach their size), no growth.
        settled = rss[len(rss) // 5:]
        figures[name] = (f"{start[name]} -> {end[name]}, RSS min/max after warm-up "
                         f"{min(settled) / 1024:.1f}/{max(settled) / 1024:.1f} MiB")
        if MEMORY_IS_MEANINGFUL:
            assert max(settled) - min(settled) < 24 * 1024, (name, min(settled), max(settled))
            assert max(rss) - start[name].rss_kib < 48 * 1024, (name, start[name], max(rss))
    return figures


@pytest.mark.parametrize("transport", harness.TRANSPORTS, indirect=True)
def test_slow_public_reader_keeps_memory_flat_during_a_256mib_download(transport, server,
                                                                        http_backend,
                                                                        start_porthole):
    client = start_porthole("http", f"127.0.0.1:{http_backend.port}", "--subdomain", "trickle",
                            "--proto", "http", server=server)
    report(f"back-pressure ({transport})",
           **slow_reader(server, client, 256 * MIB, 12 * MIB))


@pytest.mark.soak
def test_slow_public_reader_keeps_memory_flat_during_a_1gib_download_at_1mib_s(
        server, http_backend, start_porthole):
    client = start_porthole("http", f"127.0.0.1:{http_backend.port}", "--subdomain", "trickle",
                            "--proto", "http", server=server)
    report("back-pressure (1 GiB at 1 MiB/s)", **slow_reader(server, client, 1024 * MIB, MIB))
