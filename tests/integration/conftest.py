"""Fixtures of porthole's integration tests.

Binaries come from $PORTHOLE_BIN_DIR (default <repo>/build/bin); for mixed runs
$PORTHOLE_SERVER_BIN_DIR and $PORTHOLE_CLIENT_BIN_DIR override it for portholed and
porthole. Every process,
backend and socket server a test starts is registered in harness and stopped at
the test's teardown; when a test fails, the captured output of each is added to
the failure report.
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402
from backends import HTTPBackend, TCPEchoBackend, WebSocketEchoBackend  # noqa: E402


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        for obj in harness.registered():
            try:
                text = obj.log_text()
            except Exception as e:  # a broken log must not hide the failure
                text = f"(no log: {e!r})"
            rep.sections.append((f"{rep.when}: {obj.name}", text))


@pytest.fixture
def _sanitizer_reports(tmp_path: Path, monkeypatch):
    """In a sanitized build, any report from any program the test ran (portholed
    and porthole, in a pipe or a terminal) fails the test once all are stopped.
    The programs write their reports to files (log_path), not to stderr."""
    report_dir = tmp_path / "sanitizer-reports"
    report_dir.mkdir()
    for var, value in harness.sanitizer_log_options(report_dir).items():
        monkeypatch.setenv(var, value)
    yield
    reports = harness.sanitizer_reports(report_dir, harness.registered())
    if reports:
        pytest.fail(f"{len(reports)} sanitizer report(s):\n" + "\n".join(reports), pytrace=False)


@pytest.fixture(autouse=True)
def _stop_everything_at_teardown(_sanitizer_reports):
    harness.reset_registry()
    yield
    errors = harness.stop_all()
    assert not errors, f"could not stop: {errors}"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A private HOME for the programs under test (no ~/.porthole of the user)."""
    return tmp_path / "home"


@pytest.fixture
def start_portholed(tmp_path: Path, home: Path):
    """Factory: start_portholed(*extra_flags, **kw) -> harness.Server.

    Defaults: --dev --domain localhost --state-dir <tmp>/state and 127.0.0.1:0 for
    --http-addr, --https-addr and --tunnel-addr; kw as harness.start_server
    (authtokens=[...] writes an --authtokens file; state_dir= reuses a state dir).
    """
    counter = itertools.count(1)

    def start(*extra: str, state_dir: Path | None = None, **kw) -> harness.Server:
        n = next(counter)
        if state_dir is None:
            state_dir = tmp_path / ("state" if n == 1 else f"state{n}")
        kw.setdefault("name", "portholed" if n == 1 else f"portholed#{n}")
        return harness.start_server(*extra, state_dir=state_dir, home=home, **kw)

    return start


@pytest.fixture
def server(start_portholed) -> harness.Server:
    """portholed --dev --domain localhost with its listeners on 127.0.0.1:0, ready."""
    return start_portholed()


@pytest.fixture
def transport(request) -> str | None:
    """How public connections travel between portholed and porthole (see
    harness.TRANSPORTS): None (the programs' defaults) unless a test asks, with
    @pytest.mark.parametrize("transport", harness.TRANSPORTS, indirect=True)."""
    return getattr(request, "param", None)


@pytest.fixture
def start_porthole(home: Path, transport):
    """Factory: start_porthole(mode, target, *args, server=..., authtoken=None,
    wait_up=True, env=None) -> harness.Client with the URLs of its `Forwarding`
    lines. env={"https_proxy": ..., "no_proxy": None} overrides the clean
    environment (None removes a variable).

    With a `transport` (see that fixture), "pool" adds --no-mux, and a client
    started with wait_up is checked to use that transport ("mux": also waits
    for the server's `multiplexed connection up` line)."""
    counter = itertools.count(1)

    def start(mode: str, target, *args: str, server: harness.Server | None = None,
              server_addr: str | None = None, trust_ca: Path | None = None,
              **kw) -> harness.Client:
        n = next(counter)
        kw.setdefault("name", "porthole" if n == 1 else f"porthole#{n}")
        if server is not None:
            server_addr = server_addr or server.tunnel_addr
            trust_ca = trust_ca or server.ca
        assert server_addr, "start_porthole needs server= or server_addr="
        kw.setdefault("home", home)  # another home: another user's client (its own session)
        client = harness.start_client(mode, target, *args, *harness.transport_args(transport),
                                      server_addr=server_addr, trust_ca=trust_ca, **kw)
        if kw.get("wait_up", True):
            harness.await_transport(client, transport, server)
        return client

    return start


@pytest.fixture
def http_backend() -> HTTPBackend:
    return HTTPBackend()


@pytest.fixture
def ws_backend() -> WebSocketEchoBackend:
    return WebSocketEchoBackend()


@pytest.fixture
def tcp_echo() -> TCPEchoBackend:
    return TCPEchoBackend()


@pytest.fixture
def http_tunnel(server, http_backend, start_porthole) -> harness.Client:
    """An http tunnel foo.localhost -> the HTTP backend (--proto http)."""
    return start_porthole("http", f"127.0.0.1:{http_backend.port}", "--subdomain", "foo",
                          "--proto", "http", server=server)


@pytest.fixture
def tls_files(tmp_path: Path) -> dict[str, Path]:
    """A CA and a server certificate for localhost and 127.0.0.1 (openssl CLI)."""
    return harness.make_tls_files(tmp_path / "tls")


@pytest.fixture
def tcp_range() -> tuple[int, int]:
    """Two consecutive free ports for portholed's --tcp-ports."""
    low = harness.os_port_range(2)
    return low, low + 1


@pytest.fixture
def tcp_server(start_portholed, tcp_range) -> harness.Server:
    """portholed that opens tcp tunnels on 127.0.0.1, in the ports of tcp_range."""
    low, high = tcp_range
    return start_portholed("--tcp-bind-addr", "127.0.0.1", "--tcp-ports", f"{low}-{high}")
