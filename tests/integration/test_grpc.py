"""gRPC through an http tunnel with `--upstream http2`: a real gRPC server
behind the tunnel, a real gRPC client in front (Debian's python3-grpcio),
over HTTPS (TLS at portholed) and over plain h2c."""

import pytest

grpc = pytest.importorskip("grpc", reason="python3-grpcio (Debian) is not installed")

from grpc_backend import GrpcBackend, channel  # noqa: E402

SCHEMES = ["https", "http"]


@pytest.fixture
def grpc_backend():
    b = GrpcBackend()
    yield b
    b.stop()


@pytest.fixture
def grpc_tunnel(server, grpc_backend, start_porthole):
    return start_porthole("http", f"127.0.0.1:{grpc_backend.port}", "--subdomain", "rpc",
                          "--upstream", "http2", server=server)


def open_channel(server, tunnel, scheme: str) -> grpc.Channel:
    authority = tunnel.url(scheme).split("://", 1)[1]
    port = server.https_port if scheme == "https" else server.http_port
    ca = server.ca.read_bytes() if scheme == "https" else None
    return channel(port, authority, ca)


@pytest.fixture(params=SCHEMES)
def rpc(request, server, grpc_tunnel):
    ch = open_channel(server, grpc_tunnel, request.param)
    yield ch
    ch.close()


def test_unary(rpc):
    assert rpc.unary_unary("/t.Echo/Unary")(b"hi", timeout=10) == b"echo:hi"


def test_server_streaming_of_a_thousand_messages(rpc):
    got = list(rpc.unary_stream("/t.Echo/Server")(b"1000", timeout=20))
    assert got == [b"%d" % i for i in range(1000)]


def test_client_streaming(rpc):
    assert rpc.stream_unary("/t.Echo/Client")(iter([b"ab", b"cde"] * 100), timeout=10) == b"500"


def test_bidirectional_streaming_answers_each_message_as_it_goes(rpc):
    # Each answer is read before the next message is sent: both directions
    # stream at once through the tunnel.
    import queue
    outbox: queue.Queue = queue.Queue()

    def messages():
        while (m := outbox.get()) is not None:
            yield m

    call = rpc.stream_stream("/t.Echo/Bidi")(messages(), timeout=20)
    for word in (b"one", b"two", b"three"):
        outbox.put(word)
        assert next(call) == word.upper()
    outbox.put(None)
    assert list(call) == []


def test_a_four_mib_message_each_way(rpc):
    big = bytes(range(256)) * (4 * 4096)
    assert rpc.unary_unary("/t.Echo/Unary")(big, timeout=30) == b"echo:" + big


def test_an_error_status_with_details_in_trailers(rpc):
    with pytest.raises(grpc.RpcError) as e:
        rpc.unary_unary("/t.Echo/Fail")(b"", timeout=10)
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert e.value.details() == "not today"
    assert dict(e.value.trailing_metadata()) == {"why-bin": b"\x00\x01because"}


def test_deadline_exceeded(rpc):
    with pytest.raises(grpc.RpcError) as e:
        rpc.unary_unary("/t.Echo/Slow")(b"3", timeout=0.5)
    assert e.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    # The channel still serves calls after it.
    assert rpc.unary_unary("/t.Echo/Unary")(b"after", timeout=10) == b"echo:after"


def test_a_cancelled_call_is_cancelled_at_the_service(rpc, grpc_backend):
    call = rpc.unary_stream("/t.Echo/Forever")(b"", timeout=30)
    assert next(call) == b"0"
    call.cancel()
    # The client's RST_STREAM travels to the service as the end of its stream.
    assert grpc_backend.cancelled.wait(10), "the service never saw the call end"


def test_the_inspector_decodes_grpc_messages_and_status(server, grpc_backend, start_porthole,
                                                       tmp_path):
    from test_replay_export import api, wait_for

    client = start_porthole("http", f"127.0.0.1:{grpc_backend.port}", "--subdomain", "seen",
                            "--upstream", "http2", "--inspect-addr", "127.0.0.1:0",
                            "--inspect-db", str(tmp_path / "captures.db"), server=server)
    addr = client.proc.wait_for(r"web interface on http://(?P<addr>\S+)")["addr"]
    ch = open_channel(server, client, "http")
    assert ch.unary_unary("/t.Echo/Unary")(b"hi", timeout=10) == b"echo:hi"
    with pytest.raises(grpc.RpcError):
        ch.unary_unary("/t.Echo/Fail")(b"", timeout=10)
    ch.close()
    # The detail of each exchange (the list has no bodies, so no gRPC frames).
    failed, ok = [api(addr, f"/api/requests/http/{e['id']}")[2] for e in wait_for(addr, 2)[:2]]
    assert ok["request"]["proto"] == "HTTP/2"
    assert ok["request"]["grpc"]["messages"] == [{"length": 2, "compressed": False,
                                                  "whole": True}]
    assert ok["response"]["grpc"]["messages"] == [{"length": 7, "compressed": False,
                                                   "whole": True}]
    assert ok["response"]["grpc"]["status"] == "0"
    assert ok["response"]["trailers"]["grpc-status"] == ["0"]
    assert failed["response"]["grpc"]["status"] == "9"
    assert failed["response"]["grpc"]["status_message"] == "not today"


def test_the_inspector_page_shows_a_failed_calls_status_and_messages(server, grpc_backend,
                                                                     start_porthole, tmp_path):
    import json
    import subprocess

    from harness import clean_env
    from test_inspector_page import BROWSER_DIR, _browser_or_skip
    from test_replay_export import wait_for

    node = _browser_or_skip()
    client = start_porthole("http", f"127.0.0.1:{grpc_backend.port}", "--subdomain", "page",
                            "--upstream", "http2", "--inspect-addr", "127.0.0.1:0",
                            "--inspect-db", str(tmp_path / "captures.db"), server=server)
    addr = client.proc.wait_for(r"web interface on http://(?P<addr>\S+)")["addr"]
    ch = open_channel(server, client, "https")
    with pytest.raises(grpc.RpcError):
        ch.unary_unary("/t.Echo/Fail")(b"question", timeout=10)
    ch.close()
    failed = wait_for(addr, 1)[0]
    p = subprocess.run([node, "grpc_detail.js",
                        json.dumps({"inspector": f"http://{addr}", "id": failed["id"]})],
                       cwd=BROWSER_DIR, capture_output=True, text=True, timeout=60,
                       env=clean_env(tmp_path / "home", {"PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD": "1"}))
    assert p.returncode == 0, p.stderr
    seen = json.loads(p.stdout.strip().splitlines()[-1])
    assert seen["status"] == "grpc-status 9: not today", seen
    assert seen["request_messages"] == ["message 1: 8 B"], seen
    # A trailers-only answer: no message, its status in its head, no trailers.
    assert seen["messages"] == [] and seen["trailers"] is None, seen
