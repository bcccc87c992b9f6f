"""Hostile input on the tunnel port: the server closes the offending connection
and keeps serving a working tunnel before, during and after."""

import socket
import struct
import time

import pytest

from harness import curl, wait_closed
from ngrok1 import connect_tls, frame

# What a hostile peer sends after the TLS handshake.
HOSTILE = {
    "garbage_bytes": b"this is not a frame at all, just bytes\r\n" * 4 + bytes(range(256)),
    "length_2_pow_40": struct.pack("<q", 2**40) + b'{"Type":"Auth","Payload":{',
    "length_over_64kib": struct.pack("<q", 64 * 1024 + 1) + b'{"Type":"Auth","Payload":{',
    "negative_length": struct.pack("<q", -5) + b'{"Type":"Auth"}',
    "invalid_json": frame(b'{"Type":"Auth","Payload":{"Version":"2",,, not json'),
    "unknown_type": frame(b'{"Type":"Bogus","Payload":{}}'),
}
PROMPT_CLOSE = 5.0      # the server refuses these as soon as it has read them
SILENT_CLOSE = 10 + 5   # ngrokd allows 10 s for the first message; plus a margin


def tunnel_works(url: str) -> None:
    r = curl(f"{url}/hello", timeout=20)
    assert (r.returncode, r.status, r.body) == (0, 200, b"hello"), r.stderr


@pytest.mark.parametrize("kind", list(HOSTILE))
def test_tunnel_port_closes_connection_on_bad_first_frame(kind, server, http_tunnel):
    url = http_tunnel.url()
    tunnel_works(url)  # before
    with connect_tls(server.tunnel_port, server.ca) as hostile:
        try:
            hostile.sendall(HOSTILE[kind])
        except OSError:
            pass  # already refused: fine
        tunnel_works(url)  # during
        assert wait_closed(hostile, PROMPT_CLOSE), f"connection still open after {kind}"
    tunnel_works(url)  # after
    assert server.proc.running and http_tunnel.proc.running


def test_tunnel_port_closes_silent_connection(server, http_tunnel):
    url = http_tunnel.url()
    tunnel_works(url)  # before
    with connect_tls(server.tunnel_port, server.ca) as silent:
        t0 = time.monotonic()
        tunnel_works(url)  # during
        assert wait_closed(silent, SILENT_CLOSE), \
            f"a silent connection was still open after {SILENT_CLOSE}s"
        elapsed = time.monotonic() - t0
    tunnel_works(url)  # after
    assert elapsed <= SILENT_CLOSE
    assert server.proc.running and http_tunnel.proc.running


def test_tunnel_port_closes_plaintext_connection(server, http_tunnel):
    url = http_tunnel.url()
    tunnel_works(url)
    with socket.create_connection(("127.0.0.1", server.tunnel_port), timeout=10) as plain:
        plain.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n" + b"\x00" * 64)
        tunnel_works(url)
        assert wait_closed(plain, PROMPT_CLOSE), "a plaintext connection was not closed"
    tunnel_works(url)
    assert server.proc.running and http_tunnel.proc.running
