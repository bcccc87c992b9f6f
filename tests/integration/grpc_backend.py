"""A real gRPC server (Debian's python3-grpcio) on loopback, with generic
handlers on raw bytes (no protobuf): service t.Echo."""

import threading
import time
from concurrent import futures

import grpc

MAX_MESSAGE = 8 << 20
OPTIONS = [("grpc.max_receive_message_length", MAX_MESSAGE),
           ("grpc.max_send_message_length", MAX_MESSAGE)]


class GrpcBackend:
    def __init__(self):
        self.cancelled = threading.Event()  # a Forever call saw its client go
        handlers = grpc.method_handlers_generic_handler("t.Echo", {
            "Unary": grpc.unary_unary_rpc_method_handler(self._unary),
            "Server": grpc.unary_stream_rpc_method_handler(self._server_stream),
            "Client": grpc.stream_unary_rpc_method_handler(self._client_stream),
            "Bidi": grpc.stream_stream_rpc_method_handler(self._bidi),
            "Fail": grpc.unary_unary_rpc_method_handler(self._fail),
            "Slow": grpc.unary_unary_rpc_method_handler(self._slow),
            "Forever": grpc.unary_stream_rpc_method_handler(self._forever),
        })
        self.server = grpc.server(futures.ThreadPoolExecutor(16), handlers=(handlers,),
                                  options=OPTIONS)
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    @staticmethod
    def _unary(request, context):
        return b"echo:" + request

    @staticmethod
    def _server_stream(request, context):
        for i in range(int(request)):
            yield b"%d" % i

    @staticmethod
    def _client_stream(requests, context):
        return b"%d" % sum(len(r) for r in requests)

    @staticmethod
    def _bidi(requests, context):
        for r in requests:
            yield r.upper()

    @staticmethod
    def _fail(request, context):
        context.set_trailing_metadata((("why-bin", b"\x00\x01because"),))
        context.abort(grpc.StatusCode.FAILED_PRECONDITION, "not today")

    @staticmethod
    def _slow(request, context):
        time.sleep(float(request or b"3"))
        return b"late"

    def _forever(self, request, context):
        context.add_callback(self.cancelled.set)
        i = 0
        while context.is_active():
            yield b"%d" % i
            i += 1
            time.sleep(0.01)

    def stop(self) -> None:
        self.server.stop(0)


def channel(port: int, authority: str, ca: bytes | None = None) -> grpc.Channel:
    """A channel to 127.0.0.1:port that says `authority` (the tunnel's host:port);
    over TLS trusting `ca` when given, else h2c."""
    options = OPTIONS + [("grpc.default_authority", authority)]
    if ca is None:
        return grpc.insecure_channel(f"127.0.0.1:{port}", options=options)
    host = authority.rsplit(":", 1)[0]
    return grpc.secure_channel(f"127.0.0.1:{port}", grpc.ssl_channel_credentials(ca),
                               options=options + [("grpc.ssl_target_name_override", host)])
