"""The link emulator the fault tests use (linkemu.py): its delay, its loss and
its outage switch are what TCP and UDP on the link see."""

import socket
import time

import pytest

import linkemu

pytestmark = pytest.mark.skipif(linkemu.skip_reason() is not None,
                                reason=f"link emulator: {linkemu.skip_reason()}")


@pytest.fixture
def ns():
    with linkemu.Namespace() as n:
        yield n


def listener_in(ns, addr: str) -> socket.socket:
    with linkemu.in_netns(ns.name):
        return socket.create_server((addr, 0))


def test_delay_applies_each_way_so_a_tcp_handshake_takes_a_round_trip(ns):
    with linkemu.Link(ns, delay_ms=80) as link:
        srv = listener_in(ns, link.ns_addr)
        t0 = time.monotonic()
        with socket.create_connection((link.ns_addr, srv.getsockname()[1]), timeout=5):
            took = time.monotonic() - t0
        srv.close()
    assert 0.16 <= took < 1.0, took


def test_loss_drops_that_share_of_datagrams(ns):
    with linkemu.Link(ns, loss=0.3) as link:
        with linkemu.in_netns(ns.name):
            rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            rx.bind((link.ns_addr, 0))
        rx.settimeout(1.0)
        tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sent = 2000
        got = 0
        for i in range(sent):
            tx.sendto(b"%d" % i, rx.getsockname())
            if i % 100 == 99:  # small bursts: the receive buffer never overflows
                try:
                    while True:
                        rx.settimeout(0.2)
                        rx.recv(64)
                        got += 1
                except TimeoutError:
                    pass
        stats = link.stats()
    assert 0.62 * sent <= got <= 0.78 * sent, (got, stats)
    # (The kernel sends a few packets of its own on a new link: IPv6 router
    # solicitations and the like.)
    assert abs(stats["lost"] - (sent - got)) <= 10, (got, stats)


def test_drop_all_cuts_the_link_until_restored(ns):
    with linkemu.Link(ns) as link:
        srv = listener_in(ns, link.ns_addr)
        port = srv.getsockname()[1]
        link.drop_all()
        with pytest.raises(TimeoutError):
            socket.create_connection((link.ns_addr, port), timeout=1.0)
        link.restore()
        with socket.create_connection((link.ns_addr, port), timeout=5):
            pass
        srv.close()
