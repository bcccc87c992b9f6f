"""Local services that tunnels point at, each on 127.0.0.1:<port chosen by the OS>,
each served from its own thread. Each has .port, .name, .log_text() and .stop()."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import socket
import socketserver
import struct
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from harness import deterministic_bytes, register

# Chunk sizes of /bytes/N, cycled: unaligned on purpose.
_CHUNK_SIZES = (65536, 1, 4093, 16391, 300000, 7)

# /stream/N: blocks of this size, each a fixed random block whose first 8
# bytes are the block's number, so a lost, repeated or reordered block changes
# the checksum; made as they are sent (no N bytes in memory).
_STREAM_BLOCK = 1 << 20


def stream_chunks(n: int):
    """Yields the body of GET /stream/<n>, block by block."""
    base = deterministic_bytes(_STREAM_BLOCK, seed=7)
    for i, pos in enumerate(range(0, n, _STREAM_BLOCK)):
        yield (i.to_bytes(8, "big") + base[8:])[:min(_STREAM_BLOCK, n - pos)]


def stream_sha256(n: int) -> str:
    """The sha256 hex digest of GET /stream/<n>'s body."""
    h = hashlib.sha256()
    for chunk in stream_chunks(n):
        h.update(chunk)
    return h.hexdigest()


def downloads_intact(urls: list[str], size: int) -> list[str]:
    """A download of /stream/<size> from each URL, all at once (curl); what
    went wrong with each, if anything: an empty list when each arrived whole
    and in order (a block out of place changes its checksum)."""
    from harness import curl
    want = stream_sha256(size)
    problems: list[str] = []

    def one(i: int, url: str) -> None:
        r = curl(f"{url}/stream/{size}")
        if (r.returncode, r.status) != (0, 200):
            problems.append(f"{i} {url}: curl {r.returncode} status {r.status}: {r.stderr}")
        elif hashlib.sha256(r.body).hexdigest() != want:
            problems.append(f"{i} {url}: {len(r.body)} bytes, not the stream sent")

    threads = [threading.Thread(target=one, args=(i, u)) for i, u in enumerate(urls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return problems


def read_chunked(rfile):
    """Yields the data of a chunked body read from rfile."""
    while True:
        line = rfile.readline(1024)
        if not line:
            raise ConnectionError("connection closed inside a chunked body")
        size = int(line.split(b";")[0].strip(), 16)
        if size == 0:
            while rfile.readline(8192) not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return
        remaining = size
        while remaining:
            data = rfile.read(min(remaining, 1 << 16))
            if not data:
                raise ConnectionError("connection closed inside a chunk")
            remaining -= len(data)
            yield data
        rfile.readline(8)  # CRLF after the chunk


# /fetch-page: fetches /echo/0 .. /echo/4 at once and keeps what came back
# in window.__bodies (window.__done once all have).
FETCH_PAGE = b"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>fetches</title></head><body>
<script>
Promise.all([0, 1, 2, 3, 4].map((i) => fetch('/echo/' + i).then((r) => r.text())))
  .then((bodies) => { window.__bodies = bodies; window.__done = true; },
        (e) => { window.__error = String(e); window.__done = true; });
</script></body></html>
"""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "porthole-test-backend"
    disable_nagle_algorithm = True  # head and body are separate writes: no 40 ms stalls

    def log_message(self, fmt, *args):
        self.server.note(f"{self.client_address[0]}:{self.client_address[1]} " + fmt % args)

    def _send(self, status: int, body: bytes, ctype: str = "text/plain") -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        path = self.path.split("?", 1)[0]
        if path == "/hello":
            return self._send(200, b"hello")
        if path == "/fetch-page":
            # A page whose script fetches five resources of the same origin.
            return self._send(200, FETCH_PAGE, "text/html; charset=utf-8")
        if m := re.fullmatch(r"/echo/(.*)", path):
            return self._send(200, m[1].encode())
        if m := re.fullmatch(r"/bytes/(\d+)", path):
            return self._send_bytes(int(m[1]))
        if m := re.fullmatch(r"/close-delimited/(\d+)", path):
            return self._send_until_close(int(m[1]))
        if m := re.fullmatch(r"/stream/(\d+)", path):
            return self._send_stream(int(m[1]))
        if path == "/stall":
            # Reads the request and never answers (until the backend stops).
            self.close_connection = True
            self.server.note("stalling")
            self.server.released.wait(300)
            return None
        if path == "/reset":
            # Resets the connection instead of answering.
            self.close_connection = True
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
            self.connection.close()
            self.server.note("reset a connection")
            return None
        if m := re.fullmatch(r"/cut/(\d+)", path):
            # Promises 2n bytes, sends n, closes.
            n = int(m[1])
            self.close_connection = True
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(2 * n))
            self.end_headers()
            self.wfile.write(deterministic_bytes(n))
            self.server.note(f"cut a response after {n} of {2 * n} bytes")
            return None
        if path == "/headers":
            joined: dict[str, str] = {}
            for k, v in self.headers.items():
                k = k.lower()
                joined[k] = f"{joined[k]}, {v}" if k in joined else v
            body = json.dumps({"headers": joined, "raw": list(self.headers.items()),
                               "peer": self.client_address[0]}).encode()
            return self._send(200, body, "application/json")
        return self._send(404, f"backend has no {path}".encode())

    def do_HEAD(self):
        # The head GET /hello would get (Content-Length 5), and no body.
        path = self.path.split("?", 1)[0]
        status, length = (200, 5) if path == "/hello" else (404, 0)
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(length))
        self.end_headers()

    def _send_until_close(self, n: int) -> None:
        # An HTTP/1.0 response with neither Content-Length nor chunking: the
        # body ends where the connection does.
        self.close_connection = True
        self.wfile.write(b"HTTP/1.0 200 OK\r\nContent-Type: application/octet-stream\r\n"
                         b"Connection: close\r\n\r\n")
        data = deterministic_bytes(n)
        for pos in range(0, n, 65536):
            self.wfile.write(data[pos:pos + 65536])
        self.log_request(200)

    def _send_stream(self, n: int) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(n))
        self.end_headers()
        self.wfile.flush()
        for chunk in stream_chunks(n):
            self.connection.sendall(chunk)

    def _send_bytes(self, n: int) -> None:
        data = deterministic_bytes(n)
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        pos, i = 0, 0
        while pos < n:
            size = min(_CHUNK_SIZES[i % len(_CHUNK_SIZES)], n - pos)
            self.wfile.write(b"%x\r\n" % size + data[pos:pos + size] + b"\r\n")
            pos += size
            i += 1
        self.wfile.write(b"0\r\n\r\n")

    def do_POST(self):
        path = self.path.split("?", 1)[0]
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        h = hashlib.sha256()
        length = 0
        if "chunked" in te:
            for data in read_chunked(self.rfile):
                h.update(data)
                length += len(data)
        else:
            remaining = int(self.headers.get("Content-Length") or 0)
            while remaining:
                data = self.rfile.read(min(remaining, 1 << 16))
                if not data:
                    raise ConnectionError("connection closed inside the body")
                h.update(data)
                length += len(data)
                remaining -= len(data)
        if path != "/upload":
            return self._send(404, f"backend has no {path}".encode())
        body = json.dumps({"length": length, "sha256": h.hexdigest(),
                           "chunked": "chunked" in te}).encode()
        return self._send(200, body, "application/json")


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 512
    allow_reuse_address = True

    def __init__(self, *a, **kw):
        self._log: list[str] = []
        self._log_lock = threading.Lock()
        self.connections = 0
        self.released = threading.Event()  # ends the /stall requests
        super().__init__(*a, **kw)

    def note(self, text: str) -> None:
        with self._log_lock:
            self._log.append(text)

    def process_request(self, request, client_address):
        with self._log_lock:
            self.connections += 1
        super().process_request(request, client_address)


class HTTPBackend:
    """HTTP/1.1 keep-alive backend: GET /hello (and HEAD /hello), GET /echo/<s>,
    GET /bytes/<n> (chunked), GET /close-delimited/<n> (HTTP/1.0, body until the
    connection closes), GET /headers (JSON), POST /upload (JSON {length, sha256}),
    GET /stream/<n> (Content-Length, made as sent: see stream_sha256).
    Faults: GET /stall (no answer until stop()), GET /reset (the connection is
    reset), GET /cut/<n> (Content-Length 2n, n bytes, then the connection closes)."""

    name = "http-backend"

    def __init__(self):
        self.httpd = _HTTPServer(("127.0.0.1", 0), _Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       kwargs={"poll_interval": 0.1},
                                       name="http-backend", daemon=True)
        self.thread.start()
        register(self)

    @property
    def connections(self) -> int:
        return self.httpd.connections

    def log_text(self) -> str:
        with self.httpd._log_lock:
            lines = list(self.httpd._log)
        return f"127.0.0.1:{self.port}, {self.connections} connection(s)\n" + "\n".join(lines)

    def hits(self, request_line: str) -> int:
        """How many times it answered `request_line` (e.g. "GET /echo/x")."""
        return self.log_text().count(f'"{request_line} HTTP/1.1"')

    def stop(self) -> None:
        self.httpd.released.set()
        if self.thread.is_alive():
            self.httpd.shutdown()
            self.thread.join(5)
        self.httpd.server_close()


class WebSocketEchoBackend:
    """A WebSocket server that sends every message back, in its own event loop."""

    name = "websocket-backend"

    def __init__(self):
        import websockets  # the asyncio API of websockets 10

        self._log: list[str] = []
        self.loop = asyncio.new_event_loop()
        started = threading.Event()
        self._failure: BaseException | None = None

        async def echo(ws):
            self._log.append(f"connection from {ws.remote_address}, path {ws.path}")
            try:
                async for msg in ws:
                    await ws.send(msg)
            except websockets.ConnectionClosed:
                pass

        async def serve():
            self.server = await websockets.serve(echo, "127.0.0.1", 0, max_size=None)
            self.port = self.server.sockets[0].getsockname()[1]

        def run():
            asyncio.set_event_loop(self.loop)
            try:
                self.loop.run_until_complete(serve())
            except BaseException as e:
                self._failure = e
                started.set()
                return
            started.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=run, name="websocket-backend", daemon=True)
        self.thread.start()
        if not started.wait(10) or self._failure:
            raise RuntimeError(f"websocket backend did not start: {self._failure!r}")
        register(self)

    def log_text(self) -> str:
        return f"127.0.0.1:{self.port}\n" + "\n".join(self._log)

    def stop(self) -> None:
        if not self.thread.is_alive():
            return

        async def close():
            self.server.close()
            await self.server.wait_closed()

        try:
            asyncio.run_coroutine_threadsafe(close(), self.loop).result(5)
        except Exception:
            pass
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


class _EchoHandler(socketserver.BaseRequestHandler):
    def handle(self):
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.note(f"connection from {self.client_address}")
        n = 0
        try:
            while data := self.request.recv(65536):
                self.request.sendall(data)
                n += len(data)
        except OSError:
            pass
        self.server.note(f"{self.client_address} done after {n} bytes")


class _TCPServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 512  # hundreds of tunnelled connections may arrive at once

    def __init__(self, *a, **kw):
        self._log: list[str] = []
        super().__init__(*a, **kw)

    def note(self, text: str) -> None:
        self._log.append(f"{time.monotonic():.3f} {text}")


class _TCPBackend:
    """A threaded TCP server on 127.0.0.1 with the handler of a subclass."""

    name = "tcp-backend"
    handler: type

    def __init__(self):
        self.server = _TCPServer(("127.0.0.1", 0), self.handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.1},
                                       name=self.name, daemon=True)
        self.thread.start()
        register(self)

    def log_text(self) -> str:
        return f"127.0.0.1:{self.port}\n" + "\n".join(self.server._log)

    def stop(self) -> None:
        if self.thread.is_alive():
            self.server.shutdown()
            self.thread.join(5)
        self.server.server_close()


class TCPEchoBackend(_TCPBackend):
    """A TCP server that sends back every byte it receives."""

    name = "tcp-echo-backend"
    handler = _EchoHandler


def echo_through(port: int, data: bytes, timeout: float = 30.0) -> bytes:
    """Sends data to 127.0.0.1:port and reads as many bytes back (sending and
    reading at once, so neither side's buffers fill up). The connection is not
    half-closed: a tunnel may end both directions on the first EOF."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        errors: list[BaseException] = []

        def send():
            try:
                s.sendall(data)
            except BaseException as e:  # reported by the reader's result
                errors.append(e)

        t = threading.Thread(target=send, daemon=True)
        t.start()
        got = bytearray()
        deadline = time.monotonic() + timeout
        while len(got) < len(data):
            s.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = s.recv(1 << 16)
            except TimeoutError:
                break
            if not chunk:
                break
            got += chunk
        t.join(5)
        if errors and len(got) < len(data):
            raise errors[0]
        return bytes(got)


class _DigestAtEOFHandler(socketserver.BaseRequestHandler):
    def handle(self):
        self.server.note(f"connection from {self.client_address}")
        h = hashlib.sha256()
        n = 0
        try:
            while data := self.request.recv(65536):
                h.update(data)
                n += len(data)
            self.server.note(f"{self.client_address} EOF after {n} bytes; answering")
            self.request.sendall(f"{n} {h.hexdigest()}\n".encode())
        except OSError as e:
            self.server.note(f"{self.client_address} failed after {n} bytes: {e!r}")


class DigestAtEOFBackend(_TCPBackend):
    """A TCP server that reads until the peer half-closes, and only then answers
    "<length> <sha256 hex>\\n" of what it read, and closes. A service like this
    (e.g. one reading a whole upload before replying) needs the half-close to
    reach it: without it, it never answers."""

    name = "digest-at-eof-backend"
    handler = _DigestAtEOFHandler


@dataclass
class RecordedRequest:
    """One request as a RecordingHTTPBackend read it off the wire."""
    method: bytes
    target: bytes
    version: bytes
    headers: list[tuple[bytes, bytes]]  # in order, names as sent, values without OWS
    body: bytes                         # de-chunked when it came chunked


class _RecordingHandler(socketserver.StreamRequestHandler):
    def handle(self):
        self.server.note(f"connection from {self.client_address}")
        try:
            while self._one_request():
                pass
        except (OSError, ValueError) as e:
            self.server.note(f"{self.client_address} failed: {e!r}")

    def _one_request(self) -> bool:
        line = self.rfile.readline(65536)
        if not line:
            return False
        method, target, version = line.rstrip(b"\r\n").split(b" ")
        headers = []
        while (field := self.rfile.readline(65536)) not in (b"\r\n", b"\n", b""):
            name, _, value = field.rstrip(b"\r\n").partition(b":")
            headers.append((name, value.strip(b" \t")))
        lower = {n.lower(): v for n, v in headers}
        if b"chunked" in lower.get(b"transfer-encoding", b"").lower():
            body = b"".join(read_chunked(self.rfile))
        else:
            body = self.rfile.read(int(lower.get(b"content-length", b"0")))
        with self.server.recorded_lock:
            self.server.recorded.append(RecordedRequest(method, target, version, headers, body))
        self.server.note(f"{method.decode()} {target!r}, {len(headers)} fields, "
                         f"{len(body)} body bytes")
        answer = b"recorded %d" % len(body)
        self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                         b"Content-Length: %d\r\n\r\n%s" % (len(answer), answer))
        self.wfile.flush()
        return True


class RecordingHTTPBackend(_TCPBackend):
    """An HTTP/1.1 keep-alive backend that keeps every request byte for byte
    (request line, header fields in order, body) in .recorded, and answers
    each with 200 and "recorded <body length>"."""

    name = "recording-http-backend"
    handler = _RecordingHandler

    def __init__(self):
        super().__init__()
        self.server.recorded: list[RecordedRequest] = []
        self.server.recorded_lock = threading.Lock()

    @property
    def recorded(self) -> list[RecordedRequest]:
        with self.server.recorded_lock:
            return list(self.server.recorded)


class _ReuseHandler(socketserver.StreamRequestHandler):
    """Answers like RecordingHTTPBackend, then does what the server's `mode`
    says with the connection (see ReuseBackend)."""

    def handle(self):
        srv = self.server
        with srv.lock:
            srv.accepted += 1
        self.served = 0
        try:
            while self._one_request():
                self.served += 1
        except (OSError, ValueError) as e:
            srv.note(f"{self.client_address} failed: {e!r}")

    def _reset(self) -> None:
        """Resets the connection now. socket.close() alone would leave the
        descriptor open while rfile and wfile hold it, and the reset would
        come only after handle() returns: after the test was told."""
        self.request.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        os.close(self.request.detach())

    def _one_request(self) -> bool:
        srv = self.server
        if srv.mode == "reset-idle" and self.served > 0:
            self.request.settimeout(srv.idle_reset)
            try:
                line = self.rfile.readline(65536)
            except TimeoutError:
                self._reset()
                with srv.lock:
                    srv.resets += 1
                srv.reset_event.set()
                return False
            self.request.settimeout(None)
        else:
            line = self.rfile.readline(65536)
        if not line:
            return False
        method = line.split(b" ", 1)[0].decode("latin-1")
        length = 0
        while (field := self.rfile.readline(65536)) not in (b"\r\n", b"\n", b""):
            name, _, value = field.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        body = self.rfile.read(length)
        with srv.lock:
            srv.requests.append((method, body))
            n = len(srv.requests)
        if srv.mode == "drop-unanswered":
            self._reset()
            return False
        answer = b"request %d" % n
        close = srv.mode == "connection-close"
        self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                         + (b"Connection: close\r\n" if close else b"")
                         + b"Content-Length: %d\r\n\r\n%s" % (len(answer), answer))
        self.wfile.flush()
        return srv.mode not in ("connection-close", "close-silently")


class ReuseBackend(_TCPBackend):
    """An HTTP/1.1 server that counts the connections it accepts and the
    requests it reads (.accepted, .requests as (method, body) pairs), in one
    of these modes:
      keep-alive        answers and keeps the connection;
      connection-close  answers with Connection: close and closes;
      close-silently    answers as if keeping the connection, then closes it;
      reset-idle        keeps the connection, resets it once idle for
                        `idle_reset` seconds after an answer (.resets counts,
                        .reset_event is set);
      drop-unanswered   reads the request and resets the connection unanswered."""

    name = "reuse-backend"
    handler = _ReuseHandler

    def __init__(self, mode: str = "keep-alive", idle_reset: float = 0.2):
        super().__init__()
        self.server.mode = mode
        self.server.idle_reset = idle_reset
        self.server.lock = threading.Lock()
        self.server.accepted = 0
        self.server.resets = 0
        self.server.reset_event = threading.Event()
        self.server.requests = []

    @property
    def accepted(self) -> int:
        with self.server.lock:
            return self.server.accepted

    @property
    def requests(self) -> list:
        with self.server.lock:
            return list(self.server.requests)

    @property
    def resets(self) -> int:
        with self.server.lock:
            return self.server.resets
