"""The web inspector's page (issue 5), used in a real browser: headless Chromium
(Debian's /usr/bin/chromium) driven by tests/browser/inspector_page.js through
playwright-core, against the real portholed, porthole and a local service.

The browser script and this test talk in lines: the script prints
"ASK <what>" when this side has to act (send a request through the tunnel
while the page is open, stop the local service) and waits for "OK" on its
stdin. A screenshot of the page goes to $PORTHOLE_ARTIFACTS_DIR/inspector.png,
else to <build dir>/artifacts/inspector.png."""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import pytest

import harness
from harness import curl

BROWSER_DIR = harness.REPO / "tests" / "browser"
CHROMIUM = Path("/usr/bin/chromium")
SCRIPT_TIMEOUT = 45.0
# A request header that would run script if the page put it in as HTML.
TRACE = '<img src=x onerror="window.__pwned=1">browser-1'


def _browser_or_skip() -> str:
    """node's path, or a skip saying what is missing (scripts/install-deps
    installs all of it, and `make test` runs it)."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: run scripts/install-deps (as root)")
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is not installed: run scripts/install-deps (as root)")
    if not (BROWSER_DIR / "node_modules" / "playwright-core").is_dir():
        pytest.skip(f"{BROWSER_DIR}/node_modules has no playwright-core: run "
                    "scripts/install-deps (as root), or `npm ci` in that folder")
    return node


@pytest.fixture
def node() -> str:
    """node's path; asked for before the programs under test are started, so a
    skip starts nothing."""
    return _browser_or_skip()


def _screenshot_path() -> Path:
    folder = os.environ.get("PORTHOLE_ARTIFACTS_DIR")
    d = (Path(folder) if folder else harness.bin_dir().parent / "artifacts").resolve()
    d.mkdir(parents=True, exist_ok=True)
    return d / "inspector.png"


class BrowserScript:
    """node inspector_page.js, its stdout lines in a queue, its stdin open for
    the answers; registered with the harness (stopped at teardown, its output
    shown when the test fails)."""

    name = "browser"

    def __init__(self, node: str, args: dict, home: Path):
        self.argv = [node, "inspector_page.js", json.dumps(args)]
        self.popen = subprocess.Popen(
            self.argv, cwd=BROWSER_DIR, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, bufsize=1,
            env=harness.clean_env(home, {"PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD": "1"}))
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.out: list[str] = []
        self.err: list[str] = []
        self._readers = [
            threading.Thread(target=self._read, args=(self.popen.stdout, self.out, True),
                             daemon=True),
            threading.Thread(target=self._read, args=(self.popen.stderr, self.err, False),
                             daemon=True),
        ]
        for t in self._readers:
            t.start()
        harness.register(self)

    def _read(self, pipe, into: list[str], queued: bool) -> None:
        for line in iter(pipe.readline, ""):
            into.append(line.rstrip("\n"))
            if queued:
                self.lines.put(line.rstrip("\n"))
        if queued:
            self.lines.put(None)

    def next_line(self, deadline: float) -> str | None:
        """The next stdout line; None once the script has exited."""
        try:
            return self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise harness.WaitTimeout(
                f"the browser script said nothing more within {SCRIPT_TIMEOUT:g}s:\n"
                + self.log_text()) from None

    def answer(self, text: str) -> None:
        self.popen.stdin.write(text + "\n")
        self.popen.stdin.flush()

    def log_text(self) -> str:
        return ("$ " + " ".join(self.argv) + "\n" + "\n".join(self.out)
                + "\nstderr:\n" + "\n".join(self.err) + "\n")

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
        self.popen.wait(10)
        for t in self._readers:
            t.join(5)


def _api(addr: str, path: str):
    with urllib.request.urlopen(f"http://{addr}{path}", timeout=10) as r:
        return json.load(r)


def _wait_for_exchanges(addr: str, count: int, timeout: float = 10.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        reqs = _api(addr, "/api/requests/http")["requests"]
        if len(reqs) >= count:
            return reqs
        if time.monotonic() > deadline:
            raise harness.WaitTimeout(f"{len(reqs)} exchange(s) captured, not {count}")
        time.sleep(0.05)


def _backend_saw(backend, request_line: str) -> int:
    return backend.log_text().count(f'"{request_line}"')


def test_the_inspector_page_lists_shows_replays_filters_and_exports_exchanges(
        node, server, http_backend, start_porthole, tmp_path):
    client = start_porthole("http", f"127.0.0.1:{http_backend.port}", "--subdomain", "web",
                            "--proto", "http", "--inspect-addr", "127.0.0.1:0",
                            "--inspect-db", str(tmp_path / "c.db"), server=server)
    api = client.proc.wait_for(r"web interface on http://(?P<addr>\S+)")["addr"]

    # An exchange from before the page opens.
    # Its header is hostile markup: the page must show it as text.
    assert curl(f"{client.url()}/echo/first-path", "-H", f"X-Trace: {TRACE}").body \
        == b"first-path"
    _wait_for_exchanges(api, 1)

    shot = _screenshot_path()
    shot.unlink(missing_ok=True)
    script = BrowserScript(node, {
        "inspector": f"http://{api}",
        "public_url": client.url(),
        "first_path": "/echo/first-path",
        "first_body": "first-path",
        "trace": TRACE,
        "live_path": "/upload",
        "edited_path": "/echo/edited-path",
        "screenshot": str(shot),
    }, tmp_path / "browser-home")

    deadline = time.monotonic() + SCRIPT_TIMEOUT
    while (line := script.next_line(deadline)) != "DONE":
        if line is None:
            script.popen.wait(10)
            pytest.fail(f"the browser script failed (exit code {script.popen.returncode}):\n"
                        + script.log_text(), pytrace=False)
        if line == "ASK live":
            # Sent while the page is open: it must appear without a reload.
            up = curl(f"{client.url()}/upload", "--data-binary", '{"hello": "browser"}',
                      "-H", "Content-Type: application/json")
            assert up.status == 200
            script.answer("OK")
        elif line == "ASK stop-service":
            http_backend.stop()
            script.answer("OK")
        elif line.startswith("ASK "):
            script.answer(f"unknown request {line!r}")
    script.popen.stdin.close()
    assert script.popen.wait(15) == 0, script.log_text()

    # What the page did reached the local service: the first request, its
    # replay, and the edited replay with its new path.
    assert _backend_saw(http_backend, "GET /echo/first-path HTTP/1.1") == 2
    assert _backend_saw(http_backend, "GET /echo/edited-path HTTP/1.1") == 1
    # The page's Clear emptied the history on the server side too.
    assert _api(api, "/api/requests/http")["requests"] == []
    assert shot.stat().st_size > 0
    print(script.log_text())
    print(f"screenshot: {shot}")
