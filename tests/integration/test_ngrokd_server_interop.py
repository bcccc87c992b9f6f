"""The real porthole client against an ngrokd 1.7 server: a scripted server that
answers with the frames recorded from the real ngrokd 1.7.1 (no porthole
extensions) or with frames built in exactly their shape, on a TLS certificate
made here with the openssl CLI: http, https, http+https and tcp tunnels, Ping/Pong,
and porthole falling back to the base protocol when its extension is not answered."""

from __future__ import annotations

import re
import threading

import pytest

import ngrok1
from harness import RawHTTP, register
from ngrok1 import ScriptedNgrokd

TUNNEL_URL = ngrok1.RECORDED_TUNNEL_URL  # http://foo.ngrok.test:26201: only a name here


@pytest.fixture
def ngrokd(tls_files):
    s = ScriptedNgrokd(tls_files["cert"], tls_files["key"])
    register(s)
    return s


def test_porthole_client_works_with_ngrokd17(ngrokd, tls_files, http_backend, start_porthole):
    client = start_porthole("http", f"127.0.0.1:{http_backend.port}", "--subdomain", "foo",
                            "--proto", "http", server_addr=f"127.0.0.1:{ngrokd.port}",
                            trust_ca=tls_files["ca"], authtoken="secret-token", wait_up=False)

    # Control connection: Auth as any ngrok 1.x client sends it.
    ctl, auth = ngrokd.next_connection()
    assert auth["Type"] == "Auth", auth
    a = auth["Payload"]
    assert (a.get("Version"), a.get("MmVersion")) == ("2", "1.7"), a
    assert a.get("User") == "secret-token", a
    assert a.get("ClientId") == "", a
    # ngrokd's answer, byte for byte: no porthole extension keys.
    ctl.send(ngrok1.RECORDED_AUTHRESP)
    ctl.send(ngrok1.RECORDED_REQPROXY)
    ngrokd.serve_control(ctl)

    req = ngrokd.next_control()
    assert req["Type"] == "ReqTunnel", req
    rt = req["Payload"]
    assert rt.get("Protocol") == "http" and rt.get("Subdomain") == "foo", rt
    assert re.fullmatch(r"[0-9a-f]+", rt.get("ReqId", "")), rt
    ctl.send(ngrok1.message("NewTunnel", {"ReqId": rt["ReqId"], "Url": TUNNEL_URL,
                                          "Protocol": "http", "Error": ""}))
    client.proc.wait_for(rf"Forwarding {re.escape(TUNNEL_URL)} -> ", timeout=15)

    # Proxy connection, opened on the ReqProxy.
    proxy, reg = ngrokd.next_connection()
    assert reg["Type"] == "RegProxy", reg
    assert reg["Payload"].get("ClientId") == ngrok1.RECORDED_AUTHRESP_CLIENT_ID, reg

    # A public request, as ngrokd forwards it: StartProxy, then the raw bytes.
    proxy.send(ngrok1.RECORDED_STARTPROXY)
    proxy.send(b"GET /hello HTTP/1.1\r\nHost: foo.ngrok.test:26201\r\n"
               b"User-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n")
    ctl.send(ngrok1.RECORDED_REQPROXY)  # ngrokd refills its pool after a take

    resp = RawHTTP(0, sock=proxy.sock, timeout=15)
    resp.buf = proxy.buf
    r = resp.read_response()
    assert (r.status, r.body) == (200, b"hello")

    # The refill is answered with another proxy connection.
    proxy2, reg2 = ngrokd.next_connection()
    assert reg2["Type"] == "RegProxy", reg2
    assert reg2["Payload"].get("ClientId") == ngrok1.RECORDED_AUTHRESP_CLIENT_ID, reg2
    assert client.proc.running


# --------------------------------------------------------------------------
# Each tunnel protocol, heartbeats and the extension offer, against ngrokd 1.7.
# The scripted server's frames are built by ngrok1's builders, which give back
# the recorded frames byte for byte (checked first).
# --------------------------------------------------------------------------

AUTH_FIELDS = ("Version", "MmVersion", "User", "Password", "OS", "Arch", "ClientId")
REQTUNNEL_FIELDS = ("ReqId", "Protocol", "Hostname", "Subdomain", "HttpAuth", "RemotePort")
HTTPS_URL = "https://foo.ngrok.test:26201"
TCP_URL = ngrok1.RECORDED_TCP_URL  # tcp://ngrok.test:26205: only a name here
CLIENT_ID = ngrok1.RECORDED_AUTHRESP_CLIENT_ID


def test_scripted_server_frames_have_the_recorded_shape():
    assert ngrok1.auth_resp(CLIENT_ID) == ngrok1.RECORDED_AUTHRESP
    assert ngrok1.new_tunnel("aaaa000011112222", TUNNEL_URL, "http") == \
        ngrok1.RECORDED_NEWTUNNEL_HTTP
    assert ngrok1.new_tunnel("aaaa000011112222", HTTPS_URL, "https") == \
        ngrok1.RECORDED_NEWTUNNEL_HTTPS
    assert ngrok1.new_tunnel("bbbb000011112222", TCP_URL, "tcp") == ngrok1.RECORDED_NEWTUNNEL_TCP
    assert ngrok1.start_proxy(TUNNEL_URL, ngrok1.RECORDED_CLIENT_ADDR) == \
        ngrok1.RECORDED_STARTPROXY


def start_against_ngrokd(start_porthole, ngrokd, tls_files, mode, target, *args):
    return start_porthole(mode, target, *args, server_addr=f"127.0.0.1:{ngrokd.port}",
                          trust_ca=tls_files["ca"], authtoken="secret-token", wait_up=False)


def accept_control(ngrokd) -> tuple[ngrok1.FrameConn, dict]:
    """Takes porthole's control connection and answers as ngrokd 1.7 does:
    AuthResp (no extension key) and one ReqProxy. Returns it and Auth's payload."""
    ctl, auth = ngrokd.next_connection()
    assert auth["Type"] == "Auth", auth
    a = auth["Payload"]
    assert all(k in a for k in AUTH_FIELDS), f"Auth without every base field: {a}"
    assert (a["Version"], a["MmVersion"], a["User"], a["ClientId"]) == \
        ("2", "1.7", "secret-token", ""), a
    ctl.send(ngrok1.RECORDED_AUTHRESP)
    ctl.send(ngrok1.RECORDED_REQPROXY)
    ngrokd.serve_control(ctl)
    return ctl, a


def next_req_tunnel(ngrokd) -> dict:
    req = ngrokd.next_control()
    assert req["Type"] == "ReqTunnel", req
    rt = req["Payload"]
    assert all(k in rt for k in REQTUNNEL_FIELDS), f"ReqTunnel without every field: {rt}"
    assert re.fullmatch(r"[0-9a-f]+", rt["ReqId"]), rt
    return rt


def next_reg_proxy(ngrokd) -> ngrok1.FrameConn:
    proxy, reg = ngrokd.next_connection()
    assert reg == {"Type": "RegProxy", "Payload": {"ClientId": CLIENT_ID}}, reg
    return proxy


def get_through(proxy: ngrok1.FrameConn, url: str, path: str, host: str):
    """As ngrokd forwards a public HTTP request: StartProxy, then the bytes."""
    proxy.send(ngrok1.start_proxy(url, ngrok1.RECORDED_CLIENT_ADDR))
    proxy.send(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: curl/7.88.1\r\n"
               f"Accept: */*\r\n\r\n".encode())
    resp = RawHTTP(0, sock=proxy.sock, timeout=15)
    resp.buf, proxy.buf = proxy.buf, b""
    return resp.read_response()


def test_porthole_tcp_tunnel_with_ngrokd17(ngrokd, tls_files, tcp_echo, start_porthole):
    client = start_against_ngrokd(start_porthole, ngrokd, tls_files, "tcp", str(tcp_echo.port))
    ctl, _ = accept_control(ngrokd)
    rt = next_req_tunnel(ngrokd)
    assert rt["Protocol"] == "tcp" and rt["RemotePort"] == 0, rt
    ctl.send(ngrok1.new_tunnel(rt["ReqId"], TCP_URL, "tcp"))
    client.proc.wait_for(rf"Forwarding {re.escape(TCP_URL)} -> ", timeout=15)

    proxy = next_reg_proxy(ngrokd)
    # A public TCP connection, as ngrokd forwards it: StartProxy, then its bytes.
    proxy.send(ngrok1.start_proxy(TCP_URL, ngrok1.RECORDED_CLIENT_ADDR))
    data = b"through ngrokd to the echo backend\x00\xff\r\n" * 50
    proxy.send(data)
    ctl.send(ngrok1.RECORDED_REQPROXY)  # ngrokd refills its pool after a take
    assert proxy.read_exact(len(data), timeout=15) == data
    # Later bytes too.
    proxy.send(b"second write")
    assert proxy.read_exact(len(b"second write"), timeout=15) == b"second write"
    assert "connection from" in tcp_echo.log_text()

    next_reg_proxy(ngrokd)  # the refill is answered
    assert client.proc.running


def test_porthole_https_tunnel_with_ngrokd17(ngrokd, tls_files, http_backend, start_porthole):
    client = start_against_ngrokd(start_porthole, ngrokd, tls_files, "http",
                                  f"127.0.0.1:{http_backend.port}", "--subdomain", "foo",
                                  "--proto", "https")
    ctl, _ = accept_control(ngrokd)
    rt = next_req_tunnel(ngrokd)
    assert rt["Protocol"] == "https" and rt["Subdomain"] == "foo", rt
    ctl.send(ngrok1.new_tunnel(rt["ReqId"], HTTPS_URL, "https"))
    client.proc.wait_for(rf"Forwarding {re.escape(HTTPS_URL)} -> ", timeout=15)

    # ngrokd terminates TLS: the proxy connection carries plain HTTP.
    r = get_through(next_reg_proxy(ngrokd), HTTPS_URL, "/hello", "foo.ngrok.test:26201")
    assert (r.status, r.body) == (200, b"hello")
    assert client.proc.running


def test_porthole_default_http_plus_https_with_ngrokd17(ngrokd, tls_files, http_backend,
                                                        start_porthole):
    client = start_against_ngrokd(start_porthole, ngrokd, tls_files, "http",
                                  f"127.0.0.1:{http_backend.port}", "--subdomain", "foo")
    ctl, _ = accept_control(ngrokd)
    rt = next_req_tunnel(ngrokd)
    assert rt["Protocol"] == "http+https" and rt["Subdomain"] == "foo", rt
    # As ngrokd answers: one NewTunnel per protocol, same ReqId, same host.
    ctl.send(ngrok1.new_tunnel(rt["ReqId"], TUNNEL_URL, "http"))
    ctl.send(ngrok1.new_tunnel(rt["ReqId"], HTTPS_URL, "https"))
    ups = client.proc.wait_for_all(r"Forwarding (?P<url>\S+) -> ", 2, timeout=15)
    assert sorted(m["url"] for m in ups) == sorted([TUNNEL_URL, HTTPS_URL]), \
        [m[0] for m in ups]

    # Each URL leads to the backend (the client finds the tunnel by StartProxy.Url).
    r = get_through(next_reg_proxy(ngrokd), HTTPS_URL, "/hello", "foo.ngrok.test:26201")
    assert (r.status, r.body) == (200, b"hello")
    ctl.send(ngrok1.RECORDED_REQPROXY)
    r = get_through(next_reg_proxy(ngrokd), TUNNEL_URL, "/echo/plain", "foo.ngrok.test:26201")
    assert (r.status, r.body) == (200, b"plain")
    assert client.proc.running


def test_porthole_heartbeat_with_ngrokd17_pong(ngrokd, tls_files, http_backend, start_porthole):
    client = start_against_ngrokd(start_porthole, ngrokd, tls_files, "http",
                                  f"127.0.0.1:{http_backend.port}", "--subdomain", "foo",
                                  "--proto", "http", "--heartbeat-interval", "1")
    ctl, _ = accept_control(ngrokd)
    rt = next_req_tunnel(ngrokd)
    ctl.send(ngrok1.new_tunnel(rt["ReqId"], TUNNEL_URL, "http"))
    client.proc.wait_for(rf"Forwarding {re.escape(TUNNEL_URL)} -> ", timeout=15)

    for _ in range(2):
        _, ping = ngrokd.next_pong(timeout=10)
        assert ping == {"Type": "Ping", "Payload": {}}, ping
    # What is asserted is that nothing goes wrong for 3 s after the second
    # Pong: there is no event to wait for instead of the clock.
    quiet = threading.Event()
    assert not quiet.wait(3.0)
    assert client.proc.running
    assert "reconnecting" not in client.proc.text()
    assert [f["Type"] for f in ngrokd.first_frames].count("Auth") == 1, ngrokd.first_frames
    assert ngrokd.pongs.qsize() >= 2, "porthole stopped pinging every second"


def test_porthole_offers_extension_but_uses_base_protocol_with_ngrokd17(
        ngrokd, tls_files, http_backend, start_porthole):
    client = start_against_ngrokd(start_porthole, ngrokd, tls_files, "http",
                                  f"127.0.0.1:{http_backend.port}", "--subdomain", "foo",
                                  "--proto", "http")
    ctl, auth = accept_control(ngrokd)  # answered without the "Porthole" key
    ext = auth.get("Porthole")
    assert isinstance(ext, dict), f"Auth offers no Porthole extension: {auth}"
    assert isinstance(ext.get("Version"), str) and ext["Version"], ext
    assert isinstance(ext.get("Features"), list) and "mux" in ext["Features"], ext

    rt = next_req_tunnel(ngrokd)
    ctl.send(ngrok1.new_tunnel(rt["ReqId"], TUNNEL_URL, "http"))
    client.proc.wait_for(rf"Forwarding {re.escape(TUNNEL_URL)} -> ", timeout=15)
    how = client.connected()["how"]
    assert "multiplexed" not in how, f"porthole says it is multiplexed with ngrokd: {how!r}"

    # Public requests go over pooled proxy connections.
    r = get_through(next_reg_proxy(ngrokd), TUNNEL_URL, "/hello", "foo.ngrok.test:26201")
    assert (r.status, r.body) == (200, b"hello")
    ctl.send(ngrok1.RECORDED_REQPROXY)
    next_reg_proxy(ngrokd)

    # Give porthole time to open anything else it would (nothing to wait for
    # instead of the clock), then: every connection it opened started with Auth
    # or RegProxy, and nothing it sent was a RegMux.
    quiet = threading.Event()
    assert not quiet.wait(2.0)
    assert not ngrokd.failed_connections, ngrokd.failed_connections
    firsts = [f["Type"] for f in ngrokd.first_frames]
    assert set(firsts) <= {"Auth", "RegProxy"}, ngrokd.first_frames
    assert firsts.count("Auth") == 1, ngrokd.first_frames
    assert not [m for m in ngrokd.control_messages if m["Type"] == "RegMux"], \
        ngrokd.control_messages
    assert client.proc.running
