"""The real porthole client against an ngrokd 1.7 server: a scripted server that
answers with the frames recorded from the real ngrokd 1.7.1 (no porthole
extensions), on a TLS certificate made here with the openssl CLI."""

from __future__ import annotations

import re

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
    client.proc.wait_for(rf"tunnel up: {re.escape(TUNNEL_URL)} -> ", timeout=15)

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
