"""A real browser over HTTP/2 through an https tunnel: headless Chromium
(Debian's /usr/bin/chromium) driven by tests/browser/h2_page.js through
playwright-core loads a page whose script makes fetch calls; the page and
the calls go over h2, on one connection to portholed."""

import json
import re
import subprocess
import urllib.request

import pytest

from harness import clean_env
from test_inspector_page import BROWSER_DIR, _browser_or_skip


@pytest.fixture
def node() -> str:
    return _browser_or_skip()


def opened_https_connections(server) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{server.admin_port}/metrics", timeout=10) as r:
        text = r.read().decode()
    m = re.search(r'^porthole_public_connections_opened_total\{protocol="https"\} (\S+)$', text,
                  re.M)
    assert m, text
    return float(m.group(1))


def test_a_page_and_its_fetch_calls_go_over_one_h2_connection(node, server, http_backend,
                                                              start_porthole, tmp_path):
    client = start_porthole("http", f"127.0.0.1:{http_backend.port}", "--subdomain", "page",
                            server=server)
    before = opened_https_connections(server)
    p = subprocess.run([node, "h2_page.js",
                        json.dumps({"url": f"{client.url('https')}/fetch-page"})],
                       cwd=BROWSER_DIR, capture_output=True, text=True, timeout=60,
                       env=clean_env(tmp_path / "home", {"PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD": "1"}))
    assert p.returncode == 0, p.stderr
    seen = json.loads(p.stdout.strip().splitlines()[-1])
    assert seen["error"] is None, seen
    assert seen["bodies"] == ["0", "1", "2", "3", "4"], seen
    assert seen["page"] == "h2", seen
    # The five fetches (and whatever else the page loaded, a favicon) all on h2.
    assert len(seen["fetches"]) >= 5 and set(seen["fetches"]) == {"h2"}, seen
    # The page and its five fetches: one public HTTPS connection.
    assert opened_https_connections(server) - before == 1
