"""Many public connections at once through one tunnel."""

import http.client
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from harness import TRANSPORTS

N = 200


@pytest.mark.parametrize("transport", TRANSPORTS, indirect=True)
def test_200_concurrent_requests_all_succeed_with_their_own_body(server, http_tunnel):
    host = f"foo.localhost:{server.http_port}"
    barrier = threading.Barrier(N, timeout=30)

    def one(i: int):
        conn = http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=60)
        try:
            conn.connect()
            barrier.wait()  # all connections open before any request goes
            conn.request("GET", f"/echo/request-{i}", headers={"Host": host})
            resp = conn.getresponse()
            return resp.status, resp.read()
        except Exception as e:
            barrier.abort()
            return None, repr(e).encode()
        finally:
            conn.close()

    with ThreadPoolExecutor(max_workers=N) as pool:
        results = list(pool.map(one, range(N)))
    bad = [(i, r) for i, r in enumerate(results) if r != (200, f"request-{i}".encode())]
    bad.sort(key=lambda b: b"BrokenBarrierError" in (b[1][1] or b""))  # first causes first
    assert not bad, f"{len(bad)} of {N} requests failed, e.g. {bad[:5]}"
