"""Copy as curl (issue 16, item 3): the command the inspector exports, run by
bash, sends exactly the captured request to the public URL (the same method,
target, header fields and body bytes) and does nothing else: no local file is
read (curl's `@file`), no command substitution runs, no argument becomes an
option, no URL is globbed or normalised, curl adds no header of its own."""

import json
import subprocess
import time
import urllib.request
from urllib.parse import urlsplit

import pytest

import harness
from backends import RecordingHTTPBackend

# Every byte a request target may hold (printable ASCII but space) that means
# something to bash or to curl: command substitution, quotes, history
# expansion, curl's URL globbing ([1-2], {a,b}), dot segments curl squashes,
# and a '#' curl would take for a fragment. Each substitution would create a
# file in the command's working directory.
HOSTILE_TARGET = ("/x/$(touch${IFS}pwned-path)/`touch${IFS}pwned-tick`/'sq'/\"dq\"/@/etc/hostname"
                  "/a/../b[1-2]{c,d}!!\\/%41?q=$(id)&r=`id`&s=@x#frag")

# Header fields of the same kind; the names are tokens (RFC 9110 allows `$!#'|&
# in them), one is an option of curl's, one is empty.
HOSTILE_HEADERS = [
    ("X-At", "@/etc/hostname"),
    ("X-Subst", "$(touch pwned-header) `touch pwned-header2`"),
    ("X-Quotes", "it's \"quoted\" !! \\ done"),
    ("X-`touch`$HOME!#'|&", "a name of tchars"),
    ("-K", "/etc/hostname"),
    ("X-Empty", ""),
    ("Cookie", "a=1; b='$(id)'"),
]

SHELL_TEXT = b"@/etc/hostname\n$(touch pwned-body)\n`touch pwned-body2`\n'\"!!\\\n"

# (body, Content-Type or None)
BODIES = {
    # curl --data-binary '@/etc/hostname' would send the file instead.
    "at-file": (b"@/etc/hostname", None),
    "shell-text-with-newlines": (SHELL_TEXT, "text/plain"),
    # A bash string cannot hold NUL; no trailing newline may be added.
    "binary-with-nul": (b"\x00@/etc/hostname\x00\xff\xfe\r\n$(id)\x00", None),
    # Longer than one argument of a program may be (128 KiB on Linux).
    "large-text": ((SHELL_TEXT * 4000)[:200_000], "application/octet-stream"),
}


def api(addr: str, path: str) -> bytes:
    with urllib.request.urlopen(f"http://{addr}{path}", timeout=30) as r:
        return r.read()


def captured(addr: str, count: int, timeout: float = 10.0) -> list[dict]:
    deadline = time.monotonic() + harness.scaled(timeout)
    while True:
        reqs = json.loads(api(addr, "/api/requests/http"))["requests"]
        if len(reqs) >= count or time.monotonic() > deadline:
            return reqs
        time.sleep(0.05)


def wait_recorded(backend: RecordingHTTPBackend, count: int, timeout: float = 10.0):
    deadline = time.monotonic() + harness.scaled(timeout)
    while len(backend.recorded) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return backend.recorded


@pytest.mark.parametrize("case", BODIES)
def test_exported_curl_sends_exactly_the_captured_request_and_nothing_else(
        case, server, start_porthole, tmp_path):
    body, content_type = BODIES[case]
    backend = RecordingHTTPBackend()
    client = start_porthole("http", f"127.0.0.1:{backend.port}", "--subdomain", "cx",
                            "--proto", "http", "--inspect-addr", "127.0.0.1:0",
                            "--inspect-db", str(tmp_path / "c.db"), server=server)
    addr = client.proc.wait_for(r"web interface on http://(?P<addr>\S+)")["addr"]
    headers = [("Host", urlsplit(client.url()).netloc), *HOSTILE_HEADERS]
    if content_type:
        headers.append(("Content-Type", content_type))
    with harness.RawHTTP(server.http_port) as conn:
        answer = conn.request("POST", HOSTILE_TARGET, headers, body)
    assert answer.status == 200, answer
    [exchange] = captured(addr, 1)
    command = api(addr, f"/api/requests/http/{exchange['id']}/curl").decode()

    # Run as a script, and as pasted into an interactive bash (where !! is
    # history expansion), each in an empty folder with no curl config.
    # (A file, not bash -c: a large body makes the command longer than one
    # argument may be.)
    script = tmp_path / "export.sh"
    script.write_text(command)
    env = harness.clean_env(tmp_path / "curl-home", {"CURL_HOME": None, "XDG_CONFIG_HOME": None})
    runs = {"script": ["bash", "--norc", "--noprofile", str(script)],
            "interactive": ["bash", "--norc", "--noprofile", "-i"]}
    for n, (how, argv) in enumerate(runs.items(), start=2):
        work = tmp_path / f"run-{how}"
        work.mkdir()
        out = subprocess.run(argv, input=command.encode() if how == "interactive" else None,
                             cwd=work, env=env, capture_output=True,
                             timeout=harness.scaled(60))
        assert out.returncode == 0, (how, out.stderr.decode(errors="replace"), command[:2000])
        assert out.stdout.endswith(b"recorded %d" % len(body)), (how, out.stdout[-200:])
        assert sorted(p.name for p in work.iterdir()) == [], f"{how}: a substitution ran"
        recorded = wait_recorded(backend, n)
        assert len(recorded) == n, f"{how}: the backend got {len(recorded)} requests, not {n}"
        original, again = recorded[0], recorded[-1]
        assert original.body == body
        assert again.body == body, (how, again.body[:200])
        assert (again.method, again.target, again.version) == \
            (original.method, original.target, original.version), how
        assert sorted(again.headers) == sorted(original.headers), how
