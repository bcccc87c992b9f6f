"""HTTP/2 frames written by hand, for tests that send what no well-behaved
client would (RFC 9113 framing, RFC 7541 HPACK literals only)."""

import socket
import struct
import time

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = \
    0, 1, 3, 4, 6, 7, 8, 9
END_STREAM, ACK, END_HEADERS = 0x1, 0x1, 0x4
SETTINGS_HEADER_TABLE_SIZE, SETTINGS_INITIAL_WINDOW_SIZE = 0x1, 0x4
NO_ERROR, PROTOCOL_ERROR, CANCEL, REFUSED_STREAM = 0x0, 0x1, 0x8, 0x7
COMPRESSION_ERROR, ENHANCE_YOUR_CALM = 0x9, 0xb


def frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + \
        struct.pack(">I", stream & 0x7FFFFFFF) + payload


def settings(**values: int) -> bytes:
    ids = {"header_table_size": SETTINGS_HEADER_TABLE_SIZE,
           "initial_window_size": SETTINGS_INITIAL_WINDOW_SIZE}
    return frame(SETTINGS, 0, 0, b"".join(struct.pack(">HI", ids[k], v)
                                           for k, v in values.items()))


def integer(value: int, prefix_bits: int, first: int = 0) -> bytes:
    """An HPACK integer (RFC 7541 5.1) in a byte starting with `first`."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first | value])
    out = [first | limit]
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def literal(name: bytes, value: bytes) -> bytes:
    """A literal field without indexing, new name (RFC 7541 6.2.2)."""
    return b"\x00" + integer(len(name), 7) + name + integer(len(value), 7) + value


def request_block(authority: str, path: str = "/hello", method: str = "GET",
                  extra: list[tuple[bytes, bytes]] = ()) -> bytes:
    block = literal(b":method", method.encode()) + literal(b":scheme", b"http") + \
        literal(b":path", path.encode()) + literal(b":authority", authority.encode())
    for name, value in extra:
        block += literal(name, value)
    return block


def connect(port: int, *, window: int | None = None) -> socket.socket:
    """An h2c connection to 127.0.0.1:port with the preface and SETTINGS sent."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    opts = {} if window is None else {"initial_window_size": window}
    s.sendall(PREFACE + settings(**opts))
    return s


def read_frames(s: socket.socket, until, timeout: float = 10.0) -> list[tuple[int, int, int, bytes]]:
    """Reads frames (type, flags, stream, payload) until `until(frames)` is true,
    the peer closes, or `timeout`; acknowledges the peer's SETTINGS."""
    frames, buf = [], b""
    deadline = time.monotonic() + timeout
    while not until(frames) and time.monotonic() < deadline:
        s.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            chunk = s.recv(65536)
        except (socket.timeout, ConnectionResetError):
            break
        if not chunk:
            break
        buf += chunk
        while len(buf) >= 9:
            length = int.from_bytes(buf[:3], "big")
            if len(buf) < 9 + length:
                break
            kind, flags = buf[3], buf[4]
            stream = int.from_bytes(buf[5:9], "big") & 0x7FFFFFFF
            frames.append((kind, flags, stream, buf[9:9 + length]))
            if kind == SETTINGS and not flags & ACK:
                try:
                    s.sendall(frame(SETTINGS, ACK, 0))
                except OSError:
                    pass
            buf = buf[9 + length:]
    return frames


def goaway_code(frames) -> int | None:
    for kind, _, _, payload in frames:
        if kind == GOAWAY:
            return int.from_bytes(payload[4:8], "big")
    return None


def closed(s: socket.socket, timeout: float = 10.0) -> bool:
    """True once the peer has closed the connection (reading what it sent)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        s.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            if not s.recv(1 << 20):
                return True
        except socket.timeout:
            continue
        except (ConnectionResetError, BrokenPipeError):
            return True
    return False
