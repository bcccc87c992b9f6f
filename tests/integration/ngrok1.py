"""The ngrok 1.x wire format for scripted peers: frames are an 8-byte signed
little-endian length, then that many bytes of JSON {"Type":..., "Payload":...}.

The RECORDED_* constants are frames recorded on the wire between the real ngrok
1.7.1 programs and a scripted peer (shared/reference/ngrok1-frames.md), copied
byte for byte: scripted peers send them exactly as ngrok 1.7 does.
ScriptedNgrokd is the listening side of a scripted ngrokd 1.7.
"""

from __future__ import annotations

import json
import queue
import select
import socket
import ssl
import struct
import threading
import time
from pathlib import Path

MAX_FRAME = 64 * 1024


def _hex(s: str) -> bytes:
    return bytes.fromhex("".join(s.split()))


# --- sent by the ngrok 1.7.1 client --------------------------------------
RECORDED_AUTH = _hex(
    "89000000000000007b2254797065223a2241757468222c225061796c6f6164223a7b2256657273696f6e223a2232"
    "222c224d6d56657273696f6e223a22312e37222c2255736572223a227365637265742d746f6b656e222c225061"
    "7373776f7264223a22222c224f53223a226c696e7578222c2241726368223a22616d643634222c22436c69656e"
    "744964223a22227d7d")
RECORDED_REQTUNNEL_HTTP = _hex(
    "93000000000000007b2254797065223a2252657154756e6e656c222c225061796c6f6164223a7b225265714964"
    "223a2264383765303831376639333539313337222c2250726f746f636f6c223a2268747470222c22486f73746e"
    "616d65223a22222c22537562646f6d61696e223a22666f6f222c224874747041757468223a22757365723a7061"
    "7373222c2252656d6f7465506f7274223a307d7d")
RECORDED_REQTUNNEL_TCP = _hex(
    "8d000000000000007b2254797065223a2252657154756e6e656c222c225061796c6f6164223a7b225265714964"
    "223a2235343061646263623731373439323566222c2250726f746f636f6c223a22746370222c22486f73746e61"
    "6d65223a22222c22537562646f6d61696e223a2274637074222c224874747041757468223a22222c2252656d6f"
    "7465506f7274223a353535357d7d")
RECORDED_REGPROXY = _hex(
    "4d000000000000007b2254797065223a2252656750726f7879222c225061796c6f6164223a7b22436c69656e74"
    "4964223a223031323334353637383961626364656630313233343536373839616263646566227d7d")
RECORDED_REGPROXY_CLIENT_ID = b"0123456789abcdef0123456789abcdef"

# --- sent by ngrokd 1.7.1 ------------------------------------------------
RECORDED_AUTHRESP = _hex(
    "78000000000000007b2254797065223a224175746852657370222c225061796c6f6164223a7b2256657273696f"
    "6e223a2232222c224d6d56657273696f6e223a22312e37222c22436c69656e744964223a223065666534663664"
    "653030343964386334346236396537316538336439623465222c224572726f72223a22227d7d")
RECORDED_AUTHRESP_CLIENT_ID = "0efe4f6de0049d8c44b69e71e83d9b4e"
RECORDED_REQPROXY = _hex(
    "20000000000000007b2254797065223a2252657150726f7879222c225061796c6f6164223a7b7d7d")
RECORDED_NEWTUNNEL_HTTP = _hex(
    "7c000000000000007b2254797065223a224e657754756e6e656c222c225061796c6f6164223a7b225265714964"
    "223a2261616161303030303131313132323232222c2255726c223a22687474703a2f2f666f6f2e6e67726f6b2e"
    "746573743a3236323031222c2250726f746f636f6c223a2268747470222c224572726f72223a22227d7d")
# The second NewTunnel of the same http+https ReqTunnel (same ReqId, same host).
RECORDED_NEWTUNNEL_HTTPS = _hex(
    "7e000000000000007b2254797065223a224e657754756e6e656c222c225061796c6f6164223a7b22526571496422"
    "3a2261616161303030303131313132323232222c2255726c223a2268747470733a2f2f666f6f2e6e67726f6b2e74"
    "6573743a3236323031222c2250726f746f636f6c223a226874747073222c224572726f72223a22227d7d")
RECORDED_NEWTUNNEL_TCP = _hex(
    "76000000000000007b2254797065223a224e657754756e6e656c222c225061796c6f6164223a7b22526571496422"
    "3a2262626262303030303131313132323232222c2255726c223a227463703a2f2f6e67726f6b2e746573743a3236"
    "323035222c2250726f746f636f6c223a22746370222c224572726f72223a22227d7d")
RECORDED_TCP_URL = "tcp://ngrok.test:26205"
RECORDED_PONG = _hex("1c000000000000007b2254797065223a22506f6e67222c225061796c6f6164223a7b7d7d")
RECORDED_STARTPROXY = _hex(
    "64000000000000007b2254797065223a22537461727450726f7879222c225061796c6f6164223a7b2255726c22"
    "3a22687474703a2f2f666f6f2e6e67726f6b2e746573743a3236323031222c22436c69656e7441646472223a22"
    "3132372e302e302e313a3535333134227d7d")
RECORDED_TUNNEL_URL = "http://foo.ngrok.test:26201"
RECORDED_CLIENT_ADDR = "127.0.0.1:55314"


def go_json(msg_type: str, payload: dict) -> bytes:
    """A message body as Go's encoder writes it: no spaces, keys in the given order."""
    return json.dumps({"Type": msg_type, "Payload": payload}, separators=(",", ":")).encode()


def frame(body: bytes) -> bytes:
    return struct.pack("<q", len(body)) + body


def message(msg_type: str, payload: dict) -> bytes:
    return frame(go_json(msg_type, payload))


# --- frames built in the shape of the recorded ones ------------------------
# Go's encoder writes a struct's fields in declaration order, every field, no
# spaces: these builders do the same (the interop tests check that they give
# back the recorded frames byte for byte when fed the recorded values).

def auth(user: str = "", client_id: str = "", os_name: str = "linux",
         arch: str = "amd64") -> bytes:
    """Auth as the ngrok 1.7.1 client sends it (ClientId: its previous id on reconnect)."""
    return message("Auth", {"Version": "2", "MmVersion": "1.7", "User": user, "Password": "",
                            "OS": os_name, "Arch": arch, "ClientId": client_id})


def req_tunnel(req_id: str, protocol: str, subdomain: str = "", hostname: str = "",
               http_auth: str = "", remote_port: int = 0) -> bytes:
    """ReqTunnel as the ngrok 1.7.1 client sends it."""
    return message("ReqTunnel", {"ReqId": req_id, "Protocol": protocol, "Hostname": hostname,
                                 "Subdomain": subdomain, "HttpAuth": http_auth,
                                 "RemotePort": remote_port})


def reg_proxy(client_id: str) -> bytes:
    """RegProxy as the ngrok 1.7.1 client sends it, first frame of a proxy connection."""
    return message("RegProxy", {"ClientId": client_id})


# Ping as the ngrok 1.7.1 client sends it: an empty struct.
PING = message("Ping", {})


def auth_resp(client_id: str, error: str = "") -> bytes:
    """AuthResp as ngrokd 1.7.1 sends it (no porthole extension key)."""
    return message("AuthResp", {"Version": "2", "MmVersion": "1.7", "ClientId": client_id,
                                "Error": error})


def new_tunnel(req_id: str, url: str, protocol: str, error: str = "") -> bytes:
    """NewTunnel as ngrokd 1.7.1 sends it (one per protocol of a ReqTunnel)."""
    return message("NewTunnel", {"ReqId": req_id, "Url": url, "Protocol": protocol,
                                 "Error": error})


def start_proxy(url: str, client_addr: str) -> bytes:
    """StartProxy as ngrokd 1.7.1 writes it on a pooled proxy connection."""
    return message("StartProxy", {"Url": url, "ClientAddr": client_addr})


def parse_frame(data: bytes) -> dict:
    (n,) = struct.unpack("<q", data[:8])
    assert n == len(data) - 8, f"length prefix {n} but {len(data) - 8} body bytes"
    return json.loads(data[8:])


class FrameConn:
    """A TLS (or plain) socket spoken in ngrok 1.x frames, with raw access for
    the bytes a proxy connection carries after StartProxy."""

    def __init__(self, sock: socket.socket, name: str = "conn"):
        self.sock = sock
        self.name = name
        self.buf = b""
        # One TLS connection must not be read and written at once by two
        # threads (OpenSSL forbids it; TLS 1.3 tickets make it fail now and
        # then): every socket call holds this lock, and a reader in another
        # thread (shared=True) waits for data without holding it.
        self._lock = threading.Lock()
        self.shared = False
        self.closed = False

    def send(self, data: bytes) -> None:
        """One write per call: one frame goes out in one TLS record."""
        with self._lock:
            self.sock.settimeout(30)
            self.sock.sendall(data)

    def _fill(self, deadline: float) -> None:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{self.name}: nothing more received in time "
                                   f"(have {self.buf[:200]!r})")
            if not self.shared:
                with self._lock:
                    self.sock.settimeout(remaining)
                    data = self.sock.recv(1 << 16)
                break
            pending = isinstance(self.sock, ssl.SSLSocket) and self.sock.pending()
            if not pending:
                select.select([self.sock], [], [], min(remaining, 0.5))
            with self._lock:
                self.sock.settimeout(0)
                try:
                    data = self.sock.recv(1 << 16)
                    break
                except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
                    continue
        if not data:
            self.closed = True
            raise ConnectionError(f"{self.name}: closed by the peer (have {self.buf[:200]!r})")
        self.buf += data

    def read_exact(self, n: int, timeout: float = 10.0) -> bytes:
        deadline = time.monotonic() + timeout
        while len(self.buf) < n:
            self._fill(deadline)
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def read_until(self, marker: bytes, timeout: float = 10.0, limit: int = 1 << 20) -> bytes:
        deadline = time.monotonic() + timeout
        while marker not in self.buf:
            if len(self.buf) > limit:
                raise AssertionError(f"{self.name}: no {marker!r} in {limit} bytes")
            self._fill(deadline)
        i = self.buf.index(marker) + len(marker)
        data, self.buf = self.buf[:i], self.buf[i:]
        return data

    def read_frame_raw(self, timeout: float = 10.0) -> bytes:
        head = self.read_exact(8, timeout)
        (n,) = struct.unpack("<q", head)
        assert 0 < n <= MAX_FRAME, f"{self.name}: bad frame length {n} (header {head.hex()})"
        return head + self.read_exact(n, timeout)

    def read_frame(self, timeout: float = 10.0) -> dict:
        raw = self.read_frame_raw(timeout)
        msg = json.loads(raw[8:])
        assert isinstance(msg, dict) and isinstance(msg.get("Type"), str), \
            f"{self.name}: not a message envelope: {raw[8:]!r}"
        assert isinstance(msg.get("Payload"), dict), f"{self.name}: no Payload object: {msg}"
        return msg

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def tls_client_context(ca) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(ca))
    ctx.check_hostname = True
    return ctx


def connect_tls(port: int, ca, server_hostname: str = "localhost",
                timeout: float = 10.0) -> ssl.SSLSocket:
    """TLS to 127.0.0.1:port, verifying the certificate against ca."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        return tls_client_context(ca).wrap_socket(raw, server_hostname=server_hostname)
    except BaseException:
        raw.close()
        raise


class ScriptedNgrokd:
    """The listening side of ngrokd 1.7's tunnel port. Accepts TLS connections in
    a thread and queues each with its first frame; answers Ping with Pong on the
    control connection once the test hands it over with serve_control()."""

    name = "scripted-ngrokd"

    def __init__(self, cert: Path, key: Path):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(str(cert), str(key))
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.accepted: queue.Queue = queue.Queue()
        self.control_frames: queue.Queue = queue.Queue()
        self.log: list[str] = []
        self.conns: list[FrameConn] = []
        # Every connection's first message, in order of arrival.
        self.first_frames: list[dict] = []
        # Connections that gave no readable first frame: "addr: error".
        self.failed_connections: list[str] = []
        # Every message read on the control connection once served (Ping included).
        self.control_messages: list[dict] = []
        # Each Ping answered by serve_control: (time.monotonic() of the Pong, the Ping).
        self.pongs: queue.Queue = queue.Queue()
        self._stop = threading.Event()
        self.threads = [threading.Thread(target=self._accept, name="ngrokd-accept", daemon=True)]
        self.threads[0].start()

    def _accept(self):
        while not self._stop.is_set():
            try:
                raw, addr = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                raw.settimeout(10)
                conn = FrameConn(self.ctx.wrap_socket(raw, server_side=True), f"conn{addr}")
                self.conns.append(conn)
                first = conn.read_frame(timeout=10)
                self.log.append(f"{addr}: first frame {first}")
                self.first_frames.append(first)
                self.accepted.put((conn, first))
            except Exception as e:
                self.log.append(f"{addr}: {e!r}")
                self.failed_connections.append(f"{addr}: {e!r}")
                raw.close()

    def next_connection(self, timeout: float = 15.0) -> tuple[FrameConn, dict]:
        try:
            return self.accepted.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no connection from porthole within {timeout}s; "
                                 f"log: {self.log}") from None

    def serve_control(self, ctl: FrameConn) -> None:
        ctl.shared = True  # read here, written by the test's thread too

        def run():
            try:
                while not self._stop.is_set():
                    msg = ctl.read_frame(timeout=120)
                    self.log.append(f"control: {msg}")
                    self.control_messages.append(msg)
                    if msg["Type"] == "Ping":
                        ctl.send(RECORDED_PONG)
                        self.log.append("control: sent Pong")
                        self.pongs.put((time.monotonic(), msg))
                    else:
                        self.control_frames.put(msg)
            except Exception as e:
                self.log.append(f"control reader: {e!r}")

        t = threading.Thread(target=run, name="ngrokd-control", daemon=True)
        t.start()
        self.threads.append(t)

    def next_control(self, timeout: float = 15.0) -> dict:
        try:
            return self.control_frames.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no message on the control connection within {timeout}s; "
                                 f"log: {self.log}") from None

    def next_pong(self, timeout: float = 15.0) -> tuple[float, dict]:
        """(when, the Ping) of the next Pong serve_control sent."""
        try:
            return self.pongs.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no Ping from porthole within {timeout}s; "
                                 f"log: {self.log}") from None

    def log_text(self) -> str:
        return f"127.0.0.1:{self.port}\n" + "\n".join(self.log)

    def stop(self):
        self._stop.set()
        self.listener.close()
        for c in self.conns:
            c.close()
        for t in self.threads:
            t.join(5)
