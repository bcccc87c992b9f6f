"""WebSocket upgrades pass through an http tunnel."""

import asyncio
import socket

import pytest
import websockets

from harness import TRANSPORTS


@pytest.mark.parametrize("transport", TRANSPORTS, indirect=True)
def test_websocket_echo_through_http_tunnel(server, ws_backend, start_porthole):
    client = start_porthole("http", f"127.0.0.1:{ws_backend.port}", "--subdomain", "ws",
                            "--proto", "http", server=server)
    url = client.url().replace("http://", "ws://") + "/echo"
    messages = ["hello", "x" * 200_000, bytes(range(256)) * 64, "after a big one"]

    async def talk():
        sock = socket.create_connection(("127.0.0.1", server.http_port), timeout=10)
        async with websockets.connect(url, sock=sock, open_timeout=10, close_timeout=5,
                                      max_size=None) as ws:
            got = []
            for m in messages:
                await ws.send(m)
                got.append(await asyncio.wait_for(ws.recv(), 10))
            return got

    got = asyncio.run(asyncio.wait_for(talk(), 45))
    assert got == messages
